//! The wire form: a self-describing JSON text for every value the host can
//! send to another process and take back.
//!
//! A remote executor (a worker process, a cluster job) receives a cell's
//! inputs and returns its definitions in this form. It extends the cache's
//! canonical encoding (the same tags, the same text for the values both
//! have) with function pointers carried with their source and with values
//! plugins own.
//!
//! # Encoding
//! Every value is a JSON object with exactly one key, the tag of its type:
//!
//! | value | wire form |
//! |---|---|
//! | unit | `{"unit":null}` |
//! | bool | `{"bool":true}` |
//! | int | `{"int":-3}` |
//! | float | `{"float":"400921fb54442d18"}`, the IEEE 754 bits in hex, so every float (NaN payloads, `-0.0`, subnormals) comes back exactly |
//! | char | `{"char":"é"}` |
//! | string | `{"str":"text"}` |
//! | blob | `{"blob":"00ff"}`, lowercase hex |
//! | array | `{"array":[...]}` |
//! | map | `{"map":{"key":...}}`, keys sorted |
//! | function pointer | `{"fn":"name"}`: a pointer with no curried values to a function no cell defines (a built-in) |
//! | function with its source | `{"closure":{"name":"anon$…","curry":[...],"code":"…","line":4}}` (see below) |
//! | constant | `{"const":...}` around the value |
//! | tagged value | `{"tag":[7,...]}` around the value |
//! | foreign value | `{"foreign":{"owner":"python","type":"pandas.DataFrame","data":"…"}}`, `data` the hex of the owner's encoding |
//!
//! A function pointer to a function a cell defines (a named `fn`, an
//! anonymous function, a closure) is a `closure`: its name, its curried
//! values (a closure's captured variables) in the wire form, and `code`, the
//! whole code of the cell defining it, with `line`, that cell's first
//! notebook line. Compiling that code yields the function: a process that
//! adds it to the program it runs can call the pointer. A built-in function
//! with curried values is a `closure` without `code` and `line`.
//!
//! Rhai names an anonymous function `anon$` and a hash of its parameters
//! and body (positions included), so compiling the same code gives the same
//! name; the hash's keys are fixed when cellrun is built, so the names agree
//! between processes of the same build. Decoding checks that the code
//! defines the named function and says so when it does not (a process of
//! another build).
//!
//! Sharing is not kept: a container reached twice is encoded twice and
//! decodes as two containers; a value that contains itself has no wire form.
//! Containers nest at most [`MAX_DEPTH`] JSON levels deep, within what
//! JSON parsers accept.
//!
//! Timestamps have no wire form (a timestamp is a point on one process's
//! monotonic clock), and neither do values of other native types or
//! foreign values whose owner gives no encoding: encoding one is an error
//! naming its type.
//!
//! Decoding a `foreign` value gives back its owner's value through the
//! decoder's hook ([`Decoder::with_foreign`]); without one, an opaque
//! value that a cell can pass on and that encodes to the same text.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map, AST};
use serde_json::Value;

use crate::lang::new_engine;
use crate::notebook::FnHomes;
use crate::{Cell, ForeignObject, ForeignValue, Limits, Notebook};

/// The deepest JSON nesting an encoded value may reach.
///
/// JSON parsers bound nesting (`serde_json` at 128 levels); this leaves room
/// for the message a value travels in.
pub const MAX_DEPTH: usize = 112;

/// Why a value has no wire form, or a text is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The value, or a value inside it, is of a kind the wire form does not carry.
    #[error("a value of type `{type_name}` has no wire form{reason}")]
    NoWireForm {
        /// The type of the value (`timestamp`, `pandas.DataFrame`).
        type_name: String,
        /// Why, when more can be said, starting with `: `.
        reason: String,
    },
    /// The value contains itself through a shared cell.
    #[error("the value contains itself, which has no wire form")]
    Cycle,
    /// A shared cell could not be read: another thread holds it for writing.
    #[error("a shared value is locked by another thread")]
    Locked,
    /// Containers nest deeper than [`MAX_DEPTH`].
    #[error("the value nests containers deeper than the wire form allows ({MAX_DEPTH} levels)")]
    TooDeep,
    /// The text is not a wire form.
    #[error("not a wire form: {0}")]
    Malformed(String),
    /// A function's code does not define it.
    #[error(
        "function `{name}` is not defined by the code sent with it \
         (was it encoded by another build of cellrun?)"
    )]
    MissingFunction {
        /// The function's name.
        name: String,
    },
}

/// Where the code of a notebook's script functions is: what encoding a
/// function pointer needs.
pub trait FnSources {
    /// The whole code of the cell defining script function `name` (named or
    /// anonymous) and that cell's first notebook line.
    fn fn_source(&self, name: &str) -> Option<(Arc<str>, u32)>;
}

fn home_of(homes: &FnHomes, name: &str) -> Option<(Arc<str>, u32)> {
    homes
        .get(name)
        .map(|home| (home.code.clone(), home.first_line))
}

/// Every function of the notebook, anonymous ones included.
impl FnSources for Notebook {
    fn fn_source(&self, name: &str) -> Option<(Arc<str>, u32)> {
        home_of(self.fn_homes(), name)
    }
}

/// Every function of the cell's notebook, anonymous ones included (a cell
/// that does not parse knows none).
impl FnSources for Cell {
    fn fn_source(&self, name: &str) -> Option<(Arc<str>, u32)> {
        home_of(&self.program()?.fn_homes, name)
    }
}

/// No function is known: only built-in function pointers encode.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSources;

impl FnSources for NoSources {
    fn fn_source(&self, _name: &str) -> Option<(Arc<str>, u32)> {
        None
    }
}

/// The wire form of `value`; function pointers take their code from `sources`.
///
/// # Errors
/// When the value, or a value inside it, has no wire form.
pub fn encode(value: &Dynamic, sources: &dyn FnSources) -> Result<String, WireError> {
    let mut out = String::new();
    encode_into(value, sources, &mut out)?;
    Ok(out)
}

/// Appends the wire form of `value` to `out`, in one pass and without
/// building a tree: an array of a million numbers costs one growing string.
///
/// # Errors
/// When the value has no wire form; `out` is then as it was.
pub fn encode_into(
    value: &Dynamic,
    sources: &dyn FnSources,
    out: &mut String,
) -> Result<(), WireError> {
    let start = out.len();
    let mut encoder = Encoder {
        out,
        sources,
        path: Vec::new(),
        depth: 0,
    };
    let encoded = encoder.value(value, false);
    if encoded.is_err() {
        out.truncate(start);
    }
    encoded
}

struct Encoder<'a> {
    out: &'a mut String,
    sources: &'a dyn FnSources,
    /// The shared cells on the path from the root to the value being encoded.
    path: Vec<*const Dynamic>,
    /// The JSON nesting of the value being encoded.
    depth: usize,
}

impl Encoder<'_> {
    /// Opens `levels` levels of JSON nesting.
    fn enter(&mut self, levels: usize) -> Result<(), WireError> {
        self.depth += levels;
        if self.depth > MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        Ok(())
    }

    /// Encodes `value`, an item of a constant container when `in_const`.
    fn value(&mut self, value: &Dynamic, in_const: bool) -> Result<(), WireError> {
        if !value.is_shared() {
            return self.unshared(value, in_const);
        }
        let inner = value.read_lock::<Dynamic>().ok_or(WireError::Locked)?;
        let address: *const Dynamic = &*inner;
        if self.path.contains(&address) {
            return Err(WireError::Cycle);
        }
        self.path.push(address);
        let encoded = self.unshared(&inner, in_const);
        self.path.pop();
        encoded
    }

    fn unshared(&mut self, value: &Dynamic, in_const: bool) -> Result<(), WireError> {
        let depth = self.depth;
        let read_only = value.is_read_only();
        // Making a container constant makes every item in it constant, so
        // only the outermost constant of a nest records it.
        let is_const = read_only && !in_const;
        if is_const {
            self.enter(1)?;
            self.out.push_str("{\"const\":");
        }
        let tag = value.tag();
        if tag != 0 {
            self.enter(2)?;
            write!(self.out, "{{\"tag\":[{tag},").ok();
        }
        self.plain(value, read_only)?;
        if tag != 0 {
            self.out.push_str("]}");
        }
        if is_const {
            self.out.push('}');
        }
        self.depth = depth;
        Ok(())
    }

    /// Encodes `value` without its tag and constness.
    fn plain(&mut self, value: &Dynamic, read_only: bool) -> Result<(), WireError> {
        let depth = self.depth;
        self.enter(1)?;
        if value.is_unit() {
            self.out.push_str("{\"unit\":null}");
        } else if let Ok(flag) = value.as_bool() {
            write!(self.out, "{{\"bool\":{flag}}}").ok();
        } else if let Ok(int) = value.as_int() {
            write!(self.out, "{{\"int\":{int}}}").ok();
        } else if let Ok(float) = value.as_float() {
            write!(self.out, "{{\"float\":\"{:016x}\"}}", float.to_bits()).ok();
        } else if let Ok(char) = value.as_char() {
            self.out.push_str("{\"char\":");
            let mut buffer = [0; 4];
            push_json_string(self.out, char.encode_utf8(&mut buffer));
            self.out.push('}');
        } else if let Some(string) = value.read_lock::<ImmutableString>() {
            self.out.push_str("{\"str\":");
            push_json_string(self.out, &string);
            self.out.push('}');
        } else if let Some(blob) = value.read_lock::<Blob>() {
            self.out.push_str("{\"blob\":\"");
            push_hex(self.out, &blob);
            self.out.push_str("\"}");
        } else if let Some(array) = value.read_lock::<Array>() {
            self.enter(1)?;
            self.out.push_str("{\"array\":[");
            for (index, item) in array.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                self.value(item, read_only)?;
            }
            self.out.push_str("]}");
        } else if let Some(map) = value.read_lock::<Map>() {
            self.enter(1)?;
            self.out.push_str("{\"map\":{");
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                push_json_string(self.out, key);
                self.out.push(':');
                self.value(item, read_only)?;
            }
            self.out.push_str("}}");
        } else if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
            self.fn_ptr(&fn_ptr)?;
        } else if let Some(foreign) = value.read_lock::<ForeignValue>() {
            self.foreign(foreign.object())?;
        } else {
            let type_name = value.type_name();
            let reason = if type_name == "timestamp" {
                ": it is a point on one process's clock"
            } else {
                ""
            };
            return Err(WireError::NoWireForm {
                type_name: type_name.to_owned(),
                reason: reason.to_owned(),
            });
        }
        self.depth = depth;
        Ok(())
    }

    fn fn_ptr(&mut self, fn_ptr: &FnPtr) -> Result<(), WireError> {
        let name = fn_ptr.fn_name();
        let source = self.sources.fn_source(name);
        if source.is_none() && !fn_ptr.is_curried() && !fn_ptr.is_anonymous() {
            self.out.push_str("{\"fn\":");
            push_json_string(self.out, name);
            self.out.push('}');
            return Ok(());
        }
        if source.is_none() && fn_ptr.is_anonymous() {
            return Err(WireError::NoWireForm {
                type_name: "Fn".to_owned(),
                reason: format!(": the code of anonymous function `{name}` is unknown"),
            });
        }
        self.enter(2)?;
        self.out.push_str("{\"closure\":{\"name\":");
        push_json_string(self.out, name);
        self.out.push_str(",\"curry\":[");
        for (index, curried) in fn_ptr.iter_curry().enumerate() {
            if index > 0 {
                self.out.push(',');
            }
            self.value(curried, false)?;
        }
        self.out.push(']');
        if let Some((code, line)) = source {
            self.out.push_str(",\"code\":");
            push_json_string(self.out, &code);
            write!(self.out, ",\"line\":{line}").ok();
        }
        self.out.push_str("}}");
        Ok(())
    }

    fn foreign(&mut self, object: &dyn ForeignObject) -> Result<(), WireError> {
        let Some(data) = object.encode() else {
            return Err(WireError::NoWireForm {
                type_name: object.type_name().to_owned(),
                reason: format!(": its owner `{}` gives it no encoding", object.owner()),
            });
        };
        self.enter(1)?;
        self.out.push_str("{\"foreign\":{\"owner\":");
        push_json_string(self.out, object.owner());
        self.out.push_str(",\"type\":");
        push_json_string(self.out, object.type_name());
        self.out.push_str(",\"data\":\"");
        push_hex(self.out, &data);
        self.out.push_str("\"}}");
        Ok(())
    }
}

/// Appends `text` as a JSON string, escaped as `serde_json` escapes it.
fn push_json_string(out: &mut String, text: &str) {
    out.reserve(text.len() + 2);
    out.push('"');
    let mut clean = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[clean..at]);
        if escape.is_empty() {
            write!(out, "\\u{byte:04x}").ok();
        } else {
            out.push_str(escape);
        }
        clean = at + 1;
    }
    out.push_str(&text[clean..]);
    out.push('"');
}

/// Appends `bytes` as lowercase hex.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
}

/// The bytes lowercase hex `text` stands for.
fn unhex(text: &str) -> Option<Vec<u8>> {
    fn digit(byte: u8) -> Option<u8> {
        match byte {
            b'0'..=b'9' => Some(byte - b'0'),
            b'a'..=b'f' => Some(byte - b'a' + 10),
            _ => None,
        }
    }
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The code of a cell defining functions that decoded values point to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireSource {
    /// The cell's whole code.
    pub code: Arc<str>,
    /// The cell's first notebook line.
    pub first_line: u32,
}

/// Makes a plugin's value from its owner, type name and encoded bytes.
pub type ForeignDecoder = Box<dyn Fn(&str, &str, Vec<u8>) -> Result<Dynamic, String> + Send + Sync>;

/// Turns wire forms back into values.
///
/// It compiles the code sent with function pointers (once per distinct
/// code) to check that it defines them, and records that code
/// ([`Decoder::sources`]) so a process can add the functions to the program
/// it runs.
#[derive(Default)]
pub struct Decoder {
    engine: Option<rhai::Engine>,
    compiled: HashMap<Arc<str>, AST>,
    sources: Vec<WireSource>,
    foreign: Option<ForeignDecoder>,
}

impl Decoder {
    /// A decoder that keeps foreign values opaque.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// The same decoder, making foreign values with `decode` (owner, type
    /// name, bytes); an error of `decode` fails the decoding.
    pub fn with_foreign(mut self, decode: ForeignDecoder) -> Decoder {
        self.foreign = Some(decode);
        self
    }

    /// The value wire form `text` stands for.
    ///
    /// # Errors
    /// When `text` is not a wire form, or a function's code does not define it.
    pub fn decode(&mut self, text: &str) -> Result<Dynamic, WireError> {
        let json: Value = serde_json::from_str(text)
            .map_err(|error| WireError::Malformed(format!("invalid JSON: {error}")))?;
        self.decode_json(&json)
    }

    /// The value the parsed wire form `json` stands for.
    ///
    /// # Errors
    /// As [`Decoder::decode`].
    pub fn decode_json(&mut self, json: &Value) -> Result<Dynamic, WireError> {
        let fail = |what: &str| WireError::Malformed(format!("{what} in {}", abbreviate(json)));
        let (tag, payload) = match json.as_object() {
            Some(object) if object.len() == 1 => match object.iter().next() {
                Some(pair) => pair,
                None => return Err(fail("expected an object with one key")),
            },
            _ => return Err(fail("expected an object with one key")),
        };
        let value = match tag.as_str() {
            "unit" if payload.is_null() => Dynamic::UNIT,
            "bool" => Dynamic::from_bool(payload.as_bool().ok_or_else(|| fail("bad bool"))?),
            "int" => Dynamic::from_int(payload.as_i64().ok_or_else(|| fail("bad int"))?),
            "float" => {
                let bits = payload
                    .as_str()
                    .filter(|text| text.len() == 16)
                    .and_then(|text| u64::from_str_radix(text, 16).ok())
                    .ok_or_else(|| fail("bad float"))?;
                Dynamic::from_float(f64::from_bits(bits))
            }
            "char" => {
                let text = payload.as_str().ok_or_else(|| fail("bad char"))?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(char), None) => Dynamic::from_char(char),
                    _ => return Err(fail("bad char")),
                }
            }
            "str" => Dynamic::from(
                payload
                    .as_str()
                    .ok_or_else(|| fail("bad string"))?
                    .to_owned(),
            ),
            "blob" => {
                let text = payload.as_str().ok_or_else(|| fail("bad blob"))?;
                Dynamic::from_blob(unhex(text).ok_or_else(|| fail("bad blob"))?)
            }
            "array" => {
                let items = payload.as_array().ok_or_else(|| fail("bad array"))?;
                let mut array = Array::with_capacity(items.len());
                for item in items {
                    array.push(self.decode_json(item)?);
                }
                Dynamic::from_array(array)
            }
            "map" => {
                let entries = payload.as_object().ok_or_else(|| fail("bad map"))?;
                let mut map = Map::new();
                for (key, item) in entries {
                    map.insert(key.as_str().into(), self.decode_json(item)?);
                }
                Dynamic::from_map(map)
            }
            "fn" => {
                let name = payload.as_str().ok_or_else(|| fail("bad function name"))?;
                Dynamic::from(FnPtr::new(name).map_err(|_| fail("bad function name"))?)
            }
            "closure" => self.closure(payload).map_err(|error| match error {
                WireError::Malformed(what) => fail(&what),
                other => other,
            })?,
            "foreign" => self
                .foreign(payload)
                .ok_or_else(|| fail("bad foreign value"))??,
            "const" => self.decode_json(payload)?.into_read_only(),
            "tag" => match payload.as_array().map(Vec::as_slice) {
                Some([tag, inner]) => {
                    let tag = tag
                        .as_i64()
                        .and_then(|tag| tag.try_into().ok())
                        .ok_or_else(|| fail("bad tag"))?;
                    let mut value = self.decode_json(inner)?;
                    value.set_tag(tag);
                    value
                }
                _ => return Err(fail("bad tag")),
            },
            _ => return Err(fail("unknown kind")),
        };
        Ok(value)
    }

    /// The code of the cells defining the functions of the values decoded so
    /// far, each once, in the order first met.
    pub fn sources(&self) -> &[WireSource] {
        &self.sources
    }

    fn closure(&mut self, payload: &Value) -> Result<Dynamic, WireError> {
        let bad = || WireError::Malformed("bad closure".to_owned());
        let name = payload["name"].as_str().ok_or_else(bad)?;
        let curry = payload["curry"].as_array().ok_or_else(bad)?;
        let mut fn_ptr = match payload.get("code") {
            None => FnPtr::new(name).map_err(|_| bad())?,
            Some(code) => {
                let code = code.as_str().ok_or_else(bad)?;
                let line = match payload.get("line") {
                    None => 1,
                    Some(line) => line
                        .as_u64()
                        .and_then(|line| u32::try_from(line).ok())
                        .ok_or_else(bad)?,
                };
                self.defined(name, code, line)?
            }
        };
        for curried in curry {
            fn_ptr.add_curry(self.decode_json(curried)?);
        }
        Ok(Dynamic::from(fn_ptr))
    }

    /// A pointer to the function `name` that `code` defines.
    fn defined(&mut self, name: &str, code: &str, line: u32) -> Result<FnPtr, WireError> {
        let code: Arc<str> = Arc::from(code);
        if !self.compiled.contains_key(&code) {
            let engine = self
                .engine
                .get_or_insert_with(|| new_engine(&Limits::default()));
            let ast = engine
                .compile(&*code)
                .map_err(|error| WireError::Malformed(format!("function code: {error}")))?;
            self.compiled.insert(code.clone(), ast);
        }
        if !self.sources.iter().any(|source| source.code == code) {
            self.sources.push(WireSource {
                code: code.clone(),
                first_line: line,
            });
        }
        self.compiled[&code]
            .iter_fn_def()
            .find(|def| def.name == name)
            .map(|def| FnPtr::from(def.clone()))
            .ok_or_else(|| WireError::MissingFunction {
                name: name.to_owned(),
            })
    }

    fn foreign(&mut self, payload: &Value) -> Option<Result<Dynamic, WireError>> {
        let owner = payload.get("owner")?.as_str()?;
        let type_name = payload.get("type")?.as_str()?;
        let data = unhex(payload.get("data")?.as_str()?)?;
        Some(match &self.foreign {
            Some(decode) => decode(owner, type_name, data).map_err(|error| {
                WireError::Malformed(format!(
                    "a value of type `{type_name}` owned by `{owner}` does not decode: {error}"
                ))
            }),
            None => Ok(ForeignValue::new(Opaque {
                owner: owner.to_owned(),
                type_name: type_name.to_owned(),
                data,
            })
            .into_dynamic()),
        })
    }
}

/// A foreign value decoded without its owner: it can only be passed on.
struct Opaque {
    owner: String,
    type_name: String,
    data: Vec<u8>,
}

impl ForeignObject for Opaque {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn owner(&self) -> &str {
        &self.owner
    }

    fn display(&self) -> String {
        format!("<{} of {}>", self.type_name, self.owner)
    }

    fn encode(&self) -> Option<Vec<u8>> {
        Some(self.data.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The start of `json`, for error messages.
fn abbreviate(json: &Value) -> String {
    let text = json.to_string();
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests;
