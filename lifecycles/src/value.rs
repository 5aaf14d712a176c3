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
//! The encoding is canonical: equal values encode to the same text, so it
//! can be hashed. Closures, anonymous functions, timestamps and custom
//! types are not storable.

use std::fmt;

use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map};
use serde_json::{json, Value};

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The shared cells on the path from the root to the value being visited.
type Path = Vec<*const Dynamic>;

/// Runs `visit` on the value `value` holds, looking through a shared cell.
fn through_shared<T>(
    value: &Dynamic,
    path: &mut Path,
    visit: impl FnOnce(&Dynamic, &mut Path) -> Result<T, Unsupported>,
) -> Result<T, Unsupported> {
    if !value.is_shared() {
        return visit(value, path);
    }
    let inner = value.read_lock::<Dynamic>().ok_or(Unsupported::Locked)?;
    let address: *const Dynamic = &*inner;
    if path.contains(&address) {
        return Err(Unsupported::Cycle);
    }
    path.push(address);
    let visited = visit(&inner, path);
    path.pop();
    visited
}

/// A copy of `value` that shares no mutable state with it.
///
/// Every shared cell inside (nested array items, map values, the curried
/// values of closures) is replaced by a private copy of its contents, so
/// mutating the copy in place never shows through the original. Scalars,
/// strings (copy on write), blobs, timestamps and custom types are cloned.
/// Tags and constness are kept.
pub(crate) fn isolated_copy(value: &Dynamic) -> Result<Dynamic, Unsupported> {
    copy_with(value, &mut Path::new())
}

fn copy_with(value: &Dynamic, path: &mut Path) -> Result<Dynamic, Unsupported> {
    through_shared(value, path, |value, path| {
        let mut copy = if let Some(array) = value.read_lock::<Array>() {
            let items = array
                .iter()
                .map(|item| copy_with(item, path))
                .collect::<Result<Array, _>>()?;
            Dynamic::from_array(items)
        } else if let Some(map) = value.read_lock::<Map>() {
            let entries = map
                .iter()
                .map(|(key, item)| Ok((key.clone(), copy_with(item, path)?)))
                .collect::<Result<Map, _>>()?;
            Dynamic::from_map(entries)
        } else if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
            let mut fn_ptr = fn_ptr.clone();
            for curried in fn_ptr.iter_curry_mut() {
                *curried = copy_with(curried, path)?;
            }
            Dynamic::from(fn_ptr)
        } else {
            return Ok(value.clone());
        };
        copy.set_tag(value.tag());
        if value.is_read_only() {
            copy = copy.into_read_only();
        }
        Ok(copy)
    })
}

/// The canonical encoding of `value` (see the module docs).
pub(crate) fn encode(value: &Dynamic) -> Result<Value, Unsupported> {
    encode_with(value, &mut Path::new(), false)
}

/// Encodes `value`, an item of a constant container when `in_const`.
fn encode_with(value: &Dynamic, path: &mut Path, in_const: bool) -> Result<Value, Unsupported> {
    through_shared(value, path, |value, path| {
        let read_only = value.is_read_only();
        let mut encoded = encode_plain(value, path, read_only)?;
        if value.tag() != 0 {
            encoded = json!({ "tag": [value.tag(), encoded] });
        }
        // Making a container constant makes every item in it constant, so
        // only the outermost constant of a nest records it.
        if read_only && !in_const {
            encoded = json!({ "const": encoded });
        }
        Ok(encoded)
    })
}

/// The encoding of an unshared `value`, without its tag and constness.
fn encode_plain(value: &Dynamic, path: &mut Path, read_only: bool) -> Result<Value, Unsupported> {
    if value.is_unit() {
        return Ok(json!({ "unit": null }));
    }
    if let Ok(flag) = value.as_bool() {
        return Ok(json!({ "bool": flag }));
    }
    if let Ok(int) = value.as_int() {
        return Ok(json!({ "int": int }));
    }
    if let Ok(float) = value.as_float() {
        return Ok(json!({ "float": format!("{:016x}", float.to_bits()) }));
    }
    if let Ok(char) = value.as_char() {
        return Ok(json!({ "char": char.to_string() }));
    }
    if let Some(string) = value.read_lock::<ImmutableString>() {
        return Ok(json!({ "str": string.as_str() }));
    }
    if let Some(blob) = value.read_lock::<Blob>() {
        return Ok(json!({ "blob": hex(&blob) }));
    }
    if let Some(array) = value.read_lock::<Array>() {
        let items = array
            .iter()
            .map(|item| encode_with(item, path, read_only))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(json!({ "array": items }));
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut entries = serde_json::Map::new();
        for (key, item) in map.iter() {
            entries.insert(key.to_string(), encode_with(item, path, read_only)?);
        }
        return Ok(json!({ "map": entries }));
    }
    if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
        if fn_ptr.is_curried() {
            return Err(Unsupported::Kind(format!(
                "a closure over captured values (`{}`)",
                fn_ptr.fn_name()
            )));
        }
        if fn_ptr.is_anonymous() {
            return Err(Unsupported::Kind("an anonymous function".to_owned()));
        }
        return Ok(json!({ "fn": fn_ptr.fn_name() }));
    }
    Err(Unsupported::Kind(format!(
        "a value of type `{}`",
        value.type_name()
    )))
}

/// The value `encoded` stands for (the inverse of [`encode`]).
pub(crate) fn decode(encoded: &Value) -> Result<Dynamic, DecodeError> {
    let fail = |what: &str| DecodeError(format!("{what} in {}", abbreviate(encoded)));
    let (tag, payload) = match encoded.as_object() {
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
            Dynamic::from_array(items.iter().map(decode).collect::<Result<Array, _>>()?)
        }
        "map" => {
            let entries = payload.as_object().ok_or_else(|| fail("bad map"))?;
            let map = entries
                .iter()
                .map(|(key, item)| Ok((key.as_str().into(), decode(item)?)))
                .collect::<Result<Map, DecodeError>>()?;
            Dynamic::from_map(map)
        }
        "fn" => {
            let name = payload.as_str().ok_or_else(|| fail("bad function name"))?;
            let fn_ptr = FnPtr::new(name).map_err(|_| fail("bad function name"))?;
            Dynamic::from(fn_ptr)
        }
        "const" => decode(payload)?.into_read_only(),
        "tag" => match payload.as_array().map(Vec::as_slice) {
            Some([tag, inner]) => {
                let tag = tag
                    .as_i64()
                    .and_then(|tag| tag.try_into().ok())
                    .ok_or_else(|| fail("bad tag"))?;
                let mut value = decode(inner)?;
                value.set_tag(tag);
                value
            }
            _ => return Err(fail("bad tag")),
        },
        _ => return Err(fail("unknown kind")),
    };
    Ok(value)
}

/// The start of `encoded`, for error messages.
fn abbreviate(encoded: &Value) -> String {
    let text = encoded.to_string();
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
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
        assert!(!copy.is_shared());
        {
            let mut items = copy.write_lock::<Array>().unwrap();
            assert!(!items[0].is_shared(), "nested shared values are unshared");
            items[0]
                .write_lock::<Array>()
                .unwrap()
                .push(Dynamic::from_int(2));
            let fn_ptr = items[1].read_lock::<FnPtr>().unwrap();
            assert!(fn_ptr.is_curried());
            assert!(fn_ptr.iter_curry().all(|curried| !curried.is_shared()));
        }
        assert_eq!(nested.read_lock::<Array>().unwrap().len(), 1);
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
