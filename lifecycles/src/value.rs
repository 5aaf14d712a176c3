//! Value handling shared by the lifecycles: isolated deep copies and the
//! canonical encoding the cache stores and hashes.
//!
//! Both walk a value through its shared cells (reading them through their
//! locks) and keep the shared cells on the current path, so a value that
//! contains itself (a closure that captured the array holding it) is
//! reported instead of recursing forever.
//!
//! # Encoding
//! Every value is a JSON object with exactly one key, the tag of its type:
//!
//! | value | encoding |
//! |---|---|
//! | unit | `{"unit":null}` |
//! | bool | `{"bool":true}` |
//! | int | `{"int":-3}` |
//! | float | `{"float":"400921fb54442d18"}`, the IEEE 754 bits in hex |
//! | char | `{"char":"é"}` |
//! | string | `{"str":"text"}` |
//! | blob | `{"blob":"00ff"}`, lowercase hex |
//! | array | `{"array":[...]}` |
//! | map | `{"map":{"key":...}}`, keys sorted |
//! | function pointer | `{"fn":"name"}`, named and with no curried values |
//! | constant | `{"const":...}` around the value |
//! | tagged value | `{"tag":[7,...]}` around the value |
//!
//! | plugin-owned value | `{"foreign":{"owner":"python","type":"list","data":"80059..."}}`, the hex of its owner's encoding |
//!
//! The encoding is canonical: equal values encode to the same text, so it
//! can be hashed. Closures, anonymous functions, timestamps and custom
//! types are not storable, nor is a value a plugin owns when the plugin
//! gives it no encoding.
//!
//! A cache key takes a plugin-owned value's fingerprint instead of its
//! encoding ([`Purpose::Key`]): the owner's bytes that are equal exactly
//! when the values are, length first, straight into the hash.

use std::collections::HashMap;
use std::fmt;

use executor_core::wire::ForeignDecoder;
use executor_core::ForeignValue;
use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map};
#[cfg(test)]
use serde_json::Value;

/// Why a value cannot be copied or encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Unsupported {
    /// The value contains itself through a shared cell.
    Cycle,
    /// A shared cell could not be read: another thread holds it for writing.
    Locked,
    /// The encoding has no form for this kind of value.
    Kind(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Cycle => f.write_str("the value contains itself"),
            Unsupported::Locked => f.write_str("a shared value is locked by another thread"),
            Unsupported::Kind(kind) => f.write_str(kind),
        }
    }
}

/// Why stored JSON is not a valid encoded value.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

#[cfg(test)]
impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shared cells on the path from the root to the value being visited.
type Path = Vec<*const Dynamic>;

/// Makes copies that share no mutable state with their originals, while
/// keeping the sharing among the copies: every shared cell inside the
/// originals (a variable a closure captured, nested array items, map
/// values) becomes one new shared cell, the same for every copy this copier
/// makes. So a counter closure and the closures beside it that captured
/// the same variable still count together, and mutating a copy in place
/// never shows through an original.
///
/// Scalars, strings (copy on write), blobs, timestamps and custom types are
/// cloned. Tags and constness are kept. A value a plugin owns is copied by
/// its owner ([`ForeignObject::deep_copy`]), once per value: two places
/// holding the same handle get the same copy. A plugin value its owner
/// cannot copy is refused.
///
/// [`ForeignObject::deep_copy`]: executor_core::ForeignObject::deep_copy
#[derive(Default)]
pub(crate) struct IsolatedCopier {
    /// The new shared cell of each original one, by the address of the
    /// original's contents (alive while the originals are).
    copies: HashMap<*const Dynamic, Dynamic>,
    /// The copy of each plugin-owned value, by the address of its object.
    foreign_copies: HashMap<*const (), Dynamic>,
    path: Path,
}

impl IsolatedCopier {
    /// A copy of `value` (see the type's docs).
    pub(crate) fn copy(&mut self, value: &Dynamic) -> Result<Dynamic, Unsupported> {
        if !value.is_shared() {
            return self.copy_unshared(value);
        }
        let inner = value.read_lock::<Dynamic>().ok_or(Unsupported::Locked)?;
        let address: *const Dynamic = &*inner;
        if let Some(copy) = self.copies.get(&address) {
            return Ok(copy.clone());
        }
        if self.path.contains(&address) {
            return Err(Unsupported::Cycle);
        }
        self.path.push(address);
        let copied = self.copy_unshared(&inner);
        self.path.pop();
        let shared = copied?.into_shared();
        self.copies.insert(address, shared.clone());
        Ok(shared)
    }

    fn copy_unshared(&mut self, value: &Dynamic) -> Result<Dynamic, Unsupported> {
        let mut copy = if let Some(array) = value.read_lock::<Array>() {
            let items = array
                .iter()
                .map(|item| self.copy(item))
                .collect::<Result<Array, _>>()?;
            Dynamic::from_array(items)
        } else if let Some(map) = value.read_lock::<Map>() {
            let entries = map
                .iter()
                .map(|(key, item)| Ok((key.clone(), self.copy(item)?)))
                .collect::<Result<Map, _>>()?;
            Dynamic::from_map(entries)
        } else if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
            let mut fn_ptr = fn_ptr.clone();
            for curried in fn_ptr.iter_curry_mut() {
                *curried = self.copy(curried)?;
            }
            Dynamic::from(fn_ptr)
        } else if let Some(foreign) = value.read_lock::<ForeignValue>() {
            self.copy_foreign(&foreign)?
        } else {
            return Ok(value.clone());
        };
        copy.set_tag(value.tag());
        if value.is_read_only() {
            copy = copy.into_read_only();
        }
        Ok(copy)
    }
}

impl IsolatedCopier {
    /// The owner's copy of a plugin-owned value, made once per value.
    fn copy_foreign(&mut self, value: &ForeignValue) -> Result<Dynamic, Unsupported> {
        let address = std::sync::Arc::as_ptr(value.arc()).cast::<()>();
        if let Some(copy) = self.foreign_copies.get(&address) {
            return Ok(copy.clone());
        }
        let object = value.object();
        let copy = object
            .deep_copy()
            .ok_or_else(|| {
                Unsupported::Kind(format!(
                    "a value of type `{}` that plugin `{}` cannot copy",
                    object.type_name(),
                    object.owner()
                ))
            })?
            .into_dynamic();
        self.foreign_copies.insert(address, copy.clone());
        Ok(copy)
    }
}

/// A copy of `value` that shares no mutable state with it (see
/// [`IsolatedCopier`]).
#[cfg(test)]
pub(crate) fn isolated_copy(value: &Dynamic) -> Result<Dynamic, Unsupported> {
    IsolatedCopier::default().copy(value)
}

/// Why a value cannot be written in the encoding.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// The value has no encoding.
    Value(Unsupported),
    /// It nests deeper than the reader of the encoding could follow.
    TooDeep(usize),
    /// The output failed.
    Io(std::io::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Value(reason) => reason.fmt(f),
            EncodeError::TooDeep(max) => write!(f, "the values nest deeper than {max} levels"),
            EncodeError::Io(error) => write!(f, "cannot write: {error}"),
        }
    }
}

impl From<Unsupported> for EncodeError {
    fn from(reason: Unsupported) -> EncodeError {
        EncodeError::Value(reason)
    }
}

impl From<std::io::Error> for EncodeError {
    fn from(error: std::io::Error) -> EncodeError {
        EncodeError::Io(error)
    }
}

/// What an [`Encoder`] writes for: a cache key or a cache entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A key: plugin-owned values are their fingerprints, as raw bytes, so
    /// the output is fit for a hash and nothing else.
    Key,
    /// An entry: plugin-owned values are their encodings, and the output is
    /// JSON text that decodes back.
    Entry,
}

/// Writes values in the canonical encoding (see the module docs) as JSON
/// text, straight to `W` (a hasher, a file): nothing is built in memory, so
/// encoding a large value costs time proportional to it and no more memory
/// than a small buffer.
pub(crate) struct Encoder<W: std::io::Write> {
    out: W,
    purpose: Purpose,
    path: Path,
    /// JSON arrays and objects open now.
    depth: usize,
    max_depth: usize,
    /// The names of the functions the written values point to.
    fn_names: Vec<String>,
}

impl<W: std::io::Write> Encoder<W> {
    /// An encoder writing to `out` for `purpose` that refuses values nesting
    /// JSON arrays and objects deeper than `max_depth`, counting the `open`
    /// already around them.
    pub(crate) fn new(out: W, purpose: Purpose, open: usize, max_depth: usize) -> Encoder<W> {
        Encoder {
            out,
            purpose,
            path: Path::new(),
            depth: open,
            max_depth,
            fn_names: Vec::new(),
        }
    }

    /// The output, for writing what surrounds the values.
    pub(crate) fn out(&mut self) -> &mut W {
        &mut self.out
    }

    /// The names of the functions the values written so far point to
    /// (`Fn("name")`), in order, with repeats.
    pub(crate) fn fn_names(&self) -> &[String] {
        &self.fn_names
    }

    /// Ends the encoder, returning its output.
    pub(crate) fn finish(self) -> W {
        self.out
    }

    /// Writes `value`'s encoding.
    pub(crate) fn value(&mut self, value: &Dynamic) -> Result<(), EncodeError> {
        self.value_in(value, false)
    }

    /// Writes `value`, an item of a constant container when `in_const`.
    fn value_in(&mut self, value: &Dynamic, in_const: bool) -> Result<(), EncodeError> {
        if !value.is_shared() {
            return self.wrapped(value, in_const);
        }
        let inner = value.read_lock::<Dynamic>().ok_or(Unsupported::Locked)?;
        let address: *const Dynamic = &*inner;
        if self.path.contains(&address) {
            return Err(Unsupported::Cycle.into());
        }
        self.path.push(address);
        let written = self.wrapped(&inner, in_const);
        self.path.pop();
        written
    }

    /// Writes an unshared `value` with its constness and tag around it.
    fn wrapped(&mut self, value: &Dynamic, in_const: bool) -> Result<(), EncodeError> {
        let read_only = value.is_read_only();
        // Making a container constant makes every item in it constant, so
        // only the outermost constant of a nest records it.
        let constant = read_only && !in_const;
        if constant {
            self.open(b"{\"const\":")?;
        }
        let tag = value.tag();
        if tag != 0 {
            self.open(b"{\"tag\":[")?;
            write!(self.out, "{tag},")?;
        }
        self.plain(value, read_only)?;
        if tag != 0 {
            self.close(b"]}")?;
        }
        if constant {
            self.close(b"}")?;
        }
        Ok(())
    }

    /// Writes `text`, which opens JSON arrays or objects.
    fn open(&mut self, text: &[u8]) -> Result<(), EncodeError> {
        self.depth += text
            .iter()
            .filter(|byte| matches!(byte, b'{' | b'['))
            .count();
        if self.depth > self.max_depth {
            return Err(EncodeError::TooDeep(self.max_depth));
        }
        self.out.write_all(text)?;
        Ok(())
    }

    /// Writes `text`, which only closes JSON arrays or objects.
    fn close(&mut self, text: &[u8]) -> Result<(), EncodeError> {
        self.depth -= text.len();
        self.out.write_all(text)?;
        Ok(())
    }

    /// Writes `{"kind":`, then `body`, then `}`.
    fn tagged(
        &mut self,
        kind: &str,
        body: impl FnOnce(&mut Self) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        self.open(b"{")?;
        self.string(kind)?;
        self.out.write_all(b":")?;
        body(self)?;
        self.close(b"}")
    }

    fn string(&mut self, text: &str) -> Result<(), EncodeError> {
        serde_json::to_writer(&mut self.out, text).map_err(|error| EncodeError::Io(error.into()))
    }

    /// Writes an unshared `value` without its tag and constness.
    fn plain(&mut self, value: &Dynamic, read_only: bool) -> Result<(), EncodeError> {
        if value.is_unit() {
            return self.tagged("unit", |this| Ok(this.out.write_all(b"null")?));
        }
        if let Ok(flag) = value.as_bool() {
            return self.tagged("bool", |this| Ok(write!(this.out, "{flag}")?));
        }
        if let Ok(int) = value.as_int() {
            return self.tagged("int", |this| Ok(write!(this.out, "{int}")?));
        }
        if let Ok(float) = value.as_float() {
            return self.tagged("float", |this| {
                Ok(write!(this.out, "\"{:016x}\"", float.to_bits())?)
            });
        }
        if let Ok(char) = value.as_char() {
            return self.tagged("char", |this| this.string(char.encode_utf8(&mut [0; 4])));
        }
        if let Some(string) = value.read_lock::<ImmutableString>() {
            return self.tagged("str", |this| this.string(&string));
        }
        if let Some(blob) = value.read_lock::<Blob>() {
            return self.tagged("blob", |this| {
                this.out.write_all(b"\"")?;
                for chunk in blob.chunks(4096) {
                    this.out.write_all(hex(chunk).as_bytes())?;
                }
                Ok(this.out.write_all(b"\"")?)
            });
        }
        if let Some(array) = value.read_lock::<Array>() {
            return self.tagged("array", |this| {
                this.open(b"[")?;
                for (index, item) in array.iter().enumerate() {
                    if index > 0 {
                        this.out.write_all(b",")?;
                    }
                    this.value_in(item, read_only)?;
                }
                this.close(b"]")
            });
        }
        if let Some(map) = value.read_lock::<Map>() {
            // A Rhai map iterates its keys in order, as the encoding sorts them.
            return self.tagged("map", |this| {
                this.open(b"{")?;
                for (index, (key, item)) in map.iter().enumerate() {
                    if index > 0 {
                        this.out.write_all(b",")?;
                    }
                    this.string(key)?;
                    this.out.write_all(b":")?;
                    this.value_in(item, read_only)?;
                }
                this.close(b"}")
            });
        }
        if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
            if fn_ptr.is_curried() {
                return Err(Unsupported::Kind(format!(
                    "a closure over captured values (`{}`)",
                    fn_ptr.fn_name()
                ))
                .into());
            }
            if fn_ptr.is_anonymous() {
                return Err(Unsupported::Kind("an anonymous function".to_owned()).into());
            }
            self.fn_names.push(fn_ptr.fn_name().to_owned());
            return self.tagged("fn", |this| this.string(fn_ptr.fn_name()));
        }
        if let Some(foreign) = value.read_lock::<ForeignValue>() {
            return self.foreign(&foreign);
        }
        Err(Unsupported::Kind(format!("a value of type `{}`", value.type_name())).into())
    }

    /// Writes a plugin-owned value: its fingerprint for a key, its encoding
    /// for an entry, as its owner gives them.
    fn foreign(&mut self, value: &ForeignValue) -> Result<(), EncodeError> {
        let object = value.object();
        let refused = |what: &str| {
            Unsupported::Kind(format!(
                "a value of type `{}` that plugin `{}` {what}",
                object.type_name(),
                object.owner()
            ))
        };
        match self.purpose {
            Purpose::Key => {
                let fingerprint = object
                    .fingerprint()
                    .ok_or_else(|| refused("cannot fingerprint"))?;
                self.out.write_all(b"{\"foreign\":")?;
                self.string(object.owner())?;
                self.string(object.type_name())?;
                self.out
                    .write_all(&(fingerprint.len() as u64).to_le_bytes())?;
                self.out.write_all(&fingerprint)?;
                Ok(self.out.write_all(b"}")?)
            }
            Purpose::Entry => {
                let data = object.encode().ok_or_else(|| refused("cannot store"))?;
                self.tagged("foreign", |this| {
                    this.open(b"{")?;
                    this.out.write_all(b"\"owner\":")?;
                    this.string(object.owner())?;
                    this.out.write_all(b",\"type\":")?;
                    this.string(object.type_name())?;
                    this.out.write_all(b",\"data\":\"")?;
                    for chunk in data.chunks(4096) {
                        this.out.write_all(hex(chunk).as_bytes())?;
                    }
                    this.out.write_all(b"\"")?;
                    this.close(b"}")
                })
            }
        }
    }
}

/// The canonical encoding of `value` as a JSON value (see the module docs).
#[cfg(test)]
pub(crate) fn encode(value: &Dynamic) -> Result<Value, Unsupported> {
    let mut encoder = Encoder::new(Vec::new(), Purpose::Entry, 0, usize::MAX);
    match encoder.value(value) {
        Ok(()) => Ok(serde_json::from_slice(&encoder.finish()).expect("the encoder writes JSON")),
        Err(EncodeError::Value(reason)) => Err(reason),
        Err(other) => panic!("{other}"),
    }
}

/// The value `encoded` stands for (the inverse of the encoding), without
/// plugin-owned values.
#[cfg(test)]
pub(crate) fn decode(encoded: &Value) -> Result<Dynamic, DecodeError> {
    use serde::de::DeserializeSeed;
    DecodeSeed::new(None)
        .deserialize(encoded)
        .map_err(|error| DecodeError(error.to_string()))
}

/// Reads a value from its encoding, straight from JSON text (no JSON tree
/// in between); plugin-owned values are made by `foreign`, their owners'
/// decoder, and without it are an error.
#[derive(Clone, Copy)]
pub(crate) struct DecodeSeed<'a> {
    foreign: Option<&'a ForeignDecoder>,
}

impl<'a> DecodeSeed<'a> {
    /// A seed decoding plugin-owned values with `foreign`.
    pub(crate) fn new(foreign: Option<&'a ForeignDecoder>) -> DecodeSeed<'a> {
        DecodeSeed { foreign }
    }
}

/// The kind of an encoded value: its object's one key.
enum Kind {
    Unit,
    Bool,
    Int,
    Float,
    Char,
    Str,
    Blob,
    Array,
    Map,
    Fn,
    Const,
    Tag,
    Foreign,
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Kind, D::Error> {
        struct KindVisitor;
        impl serde::de::Visitor<'_> for KindVisitor {
            type Value = Kind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the kind of an encoded value")
            }
            fn visit_str<E: serde::de::Error>(self, kind: &str) -> Result<Kind, E> {
                Ok(match kind {
                    "unit" => Kind::Unit,
                    "bool" => Kind::Bool,
                    "int" => Kind::Int,
                    "float" => Kind::Float,
                    "char" => Kind::Char,
                    "str" => Kind::Str,
                    "blob" => Kind::Blob,
                    "array" => Kind::Array,
                    "map" => Kind::Map,
                    "fn" => Kind::Fn,
                    "const" => Kind::Const,
                    "tag" => Kind::Tag,
                    "foreign" => Kind::Foreign,
                    other => return Err(E::custom(format!("unknown kind `{other}`"))),
                })
            }
        }
        deserializer.deserialize_str(KindVisitor)
    }
}

/// A plugin-owned value as stored: its owner, its type and the hex of its
/// owner's encoding.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredForeign {
    owner: String,
    #[serde(rename = "type")]
    type_name: String,
    data: String,
}

impl<'de> serde::de::DeserializeSeed<'de> for DecodeSeed<'_> {
    type Value = Dynamic;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Dynamic, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DecodeSeed<'_> {
    type Value = Dynamic;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an encoded value: an object with one key")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Dynamic, A::Error> {
        use serde::de::Error;
        let bad = |what: &str| A::Error::custom(format!("bad {what}"));
        let kind: Kind = map
            .next_key()?
            .ok_or_else(|| A::Error::custom("expected an object with one key"))?;
        let value = match kind {
            Kind::Unit => {
                map.next_value::<()>()?;
                Dynamic::UNIT
            }
            Kind::Bool => Dynamic::from_bool(map.next_value()?),
            Kind::Int => Dynamic::from_int(map.next_value()?),
            Kind::Float => {
                let text: String = map.next_value()?;
                let bits = (text.len() == 16)
                    .then(|| u64::from_str_radix(&text, 16).ok())
                    .flatten()
                    .ok_or_else(|| bad("float"))?;
                Dynamic::from_float(f64::from_bits(bits))
            }
            Kind::Char => {
                let text: String = map.next_value()?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(char), None) => Dynamic::from_char(char),
                    _ => return Err(bad("char")),
                }
            }
            Kind::Str => Dynamic::from(map.next_value::<String>()?),
            Kind::Blob => {
                let text: String = map.next_value()?;
                Dynamic::from_blob(unhex(&text).ok_or_else(|| bad("blob"))?)
            }
            Kind::Array => Dynamic::from_array(map.next_value_seed(ArraySeed(self))?),
            Kind::Map => Dynamic::from_map(map.next_value_seed(MapSeed(self))?),
            Kind::Fn => {
                let name: String = map.next_value()?;
                Dynamic::from(FnPtr::new(name).map_err(|_| bad("function name"))?)
            }
            Kind::Const => map.next_value_seed(self)?.into_read_only(),
            Kind::Tag => {
                let (tag, mut value) = map.next_value_seed(TagSeed(self))?;
                value.set_tag(tag.try_into().map_err(|_| bad("tag"))?);
                value
            }
            Kind::Foreign => {
                let stored: StoredForeign = map.next_value()?;
                let data = unhex(&stored.data).ok_or_else(|| bad("foreign value data"))?;
                let decode = self.foreign.ok_or_else(|| {
                    A::Error::custom(format!(
                        "a value of type `{}` owned by plugin `{}`, and no plugin decodes it",
                        stored.type_name, stored.owner
                    ))
                })?;
                decode(&stored.owner, &stored.type_name, data).map_err(|reason| {
                    A::Error::custom(format!(
                        "a value of type `{}` owned by plugin `{}` does not decode: {reason}",
                        stored.type_name, stored.owner
                    ))
                })?
            }
        };
        if map.next_key::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::custom("expected an object with one key"));
        }
        Ok(value)
    }
}

/// Reads an encoded array's items straight into a Rhai array.
struct ArraySeed<'a>(DecodeSeed<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for ArraySeed<'_> {
    type Value = Array;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Array, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ArraySeed<'_> {
    type Value = Array;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of encoded values")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Array, A::Error> {
        let mut items = Array::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

/// Reads an encoded map's entries straight into a Rhai map.
struct MapSeed<'a>(DecodeSeed<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for MapSeed<'_> {
    type Value = Map;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Map, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for MapSeed<'_> {
    type Value = Map;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of encoded values")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Map, A::Error> {
        let mut map = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let item = entries.next_value_seed(self.0)?;
            map.insert(key.into(), item);
        }
        Ok(map)
    }
}

/// Reads a tagged value's `[tag, value]` pair.
struct TagSeed<'a>(DecodeSeed<'a>);

impl<'de> serde::de::DeserializeSeed<'de> for TagSeed<'_> {
    type Value = (i64, Dynamic);

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<(i64, Dynamic), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for TagSeed<'_> {
    type Value = (i64, Dynamic);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tag and an encoded value")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<(i64, Dynamic), A::Error> {
        use serde::de::Error;
        let tag = seq
            .next_element::<i64>()?
            .ok_or_else(|| A::Error::invalid_length(0, &self))?;
        let value = seq
            .next_element_seed(self.0)?
            .ok_or_else(|| A::Error::invalid_length(1, &self))?;
        if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
            return Err(A::Error::invalid_length(3, &self));
        }
        Ok((tag, value))
    }
}

/// `bytes` as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
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

#[cfg(test)]
mod tests {
    use rhai::Engine;

    use super::*;

    /// The value of the Rhai expression `code`.
    fn eval(code: &str) -> Dynamic {
        Engine::new()
            .eval::<Dynamic>(code)
            .unwrap_or_else(|error| panic!("`{code}` failed: {error}"))
    }

    /// Checks that `code`'s value encodes to `expected` and decodes back to
    /// a value with the same encoding.
    #[track_caller]
    fn check_round_trip(code: &str, expected: &str) {
        let encoded = encode(&eval(code)).unwrap();
        assert_eq!(encoded.to_string(), expected, "encoding of `{code}`");
        let decoded = decode(&encoded).unwrap();
        assert_eq!(encode(&decoded).unwrap(), encoded, "round trip of `{code}`");
    }

    #[test]
    fn storable_values_round_trip_canonically() {
        let cases = [
            ("()", r#"{"unit":null}"#),
            ("true", r#"{"bool":true}"#),
            (
                "-9223372036854775807 - 1",
                r#"{"int":-9223372036854775808}"#,
            ),
            ("1.5", r#"{"float":"3ff8000000000000"}"#),
            ("-0.0", r#"{"float":"8000000000000000"}"#),
            ("'é'", r#"{"char":"é"}"#),
            (r#""a\"b""#, r#"{"str":"a\"b"}"#),
            ("let b = blob(2, 255); b", r#"{"blob":"ffff"}"#),
            (
                "[1, [2.0], #{}]",
                r#"{"array":[{"int":1},{"array":[{"float":"4000000000000000"}]},{"map":{}}]}"#,
            ),
            (
                "#{b: 1, a: 'x'}",
                r#"{"map":{"a":{"char":"x"},"b":{"int":1}}}"#,
            ),
            ("Fn(\"foo\")", r#"{"fn":"foo"}"#),
            ("let x = 5; x.tag = 7; x", r#"{"tag":[7,{"int":5}]}"#),
        ];
        for (code, expected) in cases {
            check_round_trip(code, expected);
        }
    }

    #[test]
    fn floats_keep_their_exact_bits() {
        for float in [
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            0.1,
        ] {
            let decoded = decode(&encode(&Dynamic::from_float(float)).unwrap()).unwrap();
            assert_eq!(decoded.as_float().unwrap().to_bits(), float.to_bits());
        }
    }

    #[test]
    fn constants_stay_constant() {
        let constant = Dynamic::from_array(vec![Dynamic::from_int(1)]).into_read_only();
        let encoded = encode(&constant).unwrap();
        assert_eq!(encoded.to_string(), r#"{"const":{"array":[{"int":1}]}}"#);
        assert!(decode(&encoded).unwrap().is_read_only());
    }

    #[test]
    fn shared_values_are_read_through_their_lock() {
        let inner = Dynamic::from_array(vec![Dynamic::from_int(1)]).into_shared();
        let outer = Dynamic::from_array(vec![inner.clone(), inner]).into_shared();
        assert_eq!(
            encode(&outer).unwrap().to_string(),
            r#"{"array":[{"array":[{"int":1}]},{"array":[{"int":1}]}]}"#,
            "a cell shared twice is not a cycle"
        );
    }

    #[test]
    fn closures_timestamps_and_anonymous_functions_are_not_storable() {
        let cases = [
            ("let k = 1; |x| x + k", "a closure over captured values"),
            ("|x| x + 1", "an anonymous function"),
            ("timestamp()", "a value of type"),
            (
                "[1, #{f: Fn(\"foo\").curry(1)}]",
                "a closure over captured values",
            ),
        ];
        for (code, reason) in cases {
            let error = encode(&eval(code)).unwrap_err();
            assert!(
                error.to_string().starts_with(reason),
                "`{code}` gave {error}"
            );
        }
    }

    #[test]
    fn malformed_encodings_are_rejected() {
        let cases = [
            "1",
            r#"{"int":1,"bool":true}"#,
            r#"{"int":"1"}"#,
            r#"{"float":"12"}"#,
            r#"{"char":"ab"}"#,
            r#"{"blob":"0g"}"#,
            r#"{"array":[{"what":1}]}"#,
            r#"{"tag":[1]}"#,
            r#"{"tag":[99999999999,{"unit":null}]}"#,
        ];
        for case in cases {
            let json: Value = serde_json::from_str(case).unwrap();
            assert!(decode(&json).is_err(), "{case} decoded");
        }
    }

    #[test]
    fn isolated_copies_share_nothing_with_the_original() {
        let nested = Dynamic::from_array(vec![Dynamic::from_int(1)]).into_shared();
        let closure = eval("let k = [1]; |x| x + k.len()");
        let original = Dynamic::from_array(vec![nested.clone(), closure]).into_shared();
        let mut copy = isolated_copy(&original).unwrap();
        {
            let mut items = copy.write_lock::<Array>().unwrap();
            items[0]
                .write_lock::<Array>()
                .unwrap()
                .push(Dynamic::from_int(2));
            let fn_ptr = items[1].read_lock::<FnPtr>().unwrap();
            assert!(fn_ptr.is_curried());
        }
        assert_eq!(nested.read_lock::<Array>().unwrap().len(), 1);
        assert_eq!(
            copy.read_lock::<Array>().unwrap()[0]
                .read_lock::<Array>()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_value_containing_itself_is_reported() {
        let array = Dynamic::from_array(Vec::new()).into_shared();
        let itself = array.clone();
        array.clone().write_lock::<Array>().unwrap().push(itself);
        assert_eq!(isolated_copy(&array).unwrap_err(), Unsupported::Cycle);
        assert_eq!(encode(&array).unwrap_err(), Unsupported::Cycle);
        // Break the cycle so the test does not leak.
        array.clone().write_lock::<Array>().unwrap().clear();
    }
}
