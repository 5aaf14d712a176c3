//! The wire form of values: self-describing JSON text, the same on both
//! sides of the boundary and between processes.
//!
//! Every value is a JSON object with one key, the tag of its kind:
//!
//! | value | wire form |
//! |---|---|
//! | unit | `{"unit":null}` |
//! | bool | `{"bool":true}` |
//! | int | `{"int":-3}` |
//! | float | `{"float":"400921fb54442d18"}`, the IEEE 754 bits in hex (exact) |
//! | char | `{"char":"é"}` |
//! | string | `{"str":"text"}` |
//! | blob | `{"blob":"00ff"}`, lowercase hex |
//! | array | `{"array":[...]}` |
//! | map | `{"map":{"key":...}}` |
//! | function pointer | `{"fn":"name"}` |
//!
//! The host adds kinds this SDK keeps as [`Value::Wire`] without looking
//! inside: closures (with the code that defines them), plugin-owned values
//! (`{"foreign":...}`), constants (`{"const":...}`) and tagged values
//! (`{"tag":[7,...]}`). A value with no wire form is refused by the host
//! with an error naming its type.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{json, Value as Json};

use super::Value;

/// Why text is not a valid wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError(String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WireError {}

/// The wire form of `value`, as JSON text.
pub fn encode(value: &Value) -> String {
    to_wire_json(value).to_string()
}

/// The wire form of `value`, as a JSON tree.
pub fn to_wire_json(value: &Value) -> Json {
    match value {
        Value::Unit => json!({ "unit": null }),
        Value::Bool(flag) => json!({ "bool": flag }),
        Value::Int(int) => json!({ "int": int }),
        Value::Float(float) => json!({ "float": format!("{:016x}", float.to_bits()) }),
        Value::Char(char) => json!({ "char": char.to_string() }),
        Value::Str(text) => json!({ "str": text }),
        Value::Blob(bytes) => json!({ "blob": hex(bytes) }),
        Value::Array(items) => {
            json!({ "array": items.iter().map(to_wire_json).collect::<Vec<_>>() })
        }
        Value::Map(entries) => {
            let map: serde_json::Map<String, Json> = entries
                .iter()
                .map(|(key, value)| (key.clone(), to_wire_json(value)))
                .collect();
            json!({ "map": map })
        }
        Value::Fn(name) => json!({ "fn": name }),
        Value::Wire(wire) => wire.clone(),
    }
}

/// The value whose wire form is `text`.
///
/// # Errors
/// When `text` is not JSON or not a wire form.
pub fn decode(text: &str) -> Result<Value, WireError> {
    let json: Json =
        serde_json::from_str(text).map_err(|error| WireError(format!("not JSON: {error}")))?;
    from_wire_json(&json)
}

/// The value whose wire form is the JSON tree `json`.
///
/// # Errors
/// When `json` is not a wire form.
pub fn from_wire_json(json: &Json) -> Result<Value, WireError> {
    let fail = |what: &str| WireError(format!("{what} in wire form {}", abbreviate(json)));
    let Some((tag, payload)) = json
        .as_object()
        .filter(|object| object.len() == 1)
        .and_then(|object| object.iter().next())
    else {
        return Err(fail("expected an object with one key"));
    };
    Ok(match tag.as_str() {
        "unit" => Value::Unit,
        "bool" => Value::Bool(payload.as_bool().ok_or_else(|| fail("bad bool"))?),
        "int" => Value::Int(payload.as_i64().ok_or_else(|| fail("bad int"))?),
        "float" => {
            let bits = payload
                .as_str()
                .filter(|text| text.len() == 16)
                .and_then(|text| u64::from_str_radix(text, 16).ok())
                .ok_or_else(|| fail("bad float"))?;
            Value::Float(f64::from_bits(bits))
        }
        "char" => {
            let text = payload.as_str().ok_or_else(|| fail("bad char"))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(char), None) => Value::Char(char),
                _ => return Err(fail("bad char")),
            }
        }
        "str" => Value::Str(
            payload
                .as_str()
                .ok_or_else(|| fail("bad string"))?
                .to_owned(),
        ),
        "blob" => Value::Blob(
            payload
                .as_str()
                .and_then(unhex)
                .ok_or_else(|| fail("bad blob"))?,
        ),
        "array" => Value::Array(
            payload
                .as_array()
                .ok_or_else(|| fail("bad array"))?
                .iter()
                .map(from_wire_json)
                .collect::<Result<_, _>>()?,
        ),
        "map" => Value::Map(
            payload
                .as_object()
                .ok_or_else(|| fail("bad map"))?
                .iter()
                .map(|(key, value)| Ok((key.clone(), from_wire_json(value)?)))
                .collect::<Result<BTreeMap<_, _>, WireError>>()?,
        ),
        "fn" => Value::Fn(
            payload
                .as_str()
                .ok_or_else(|| fail("bad function"))?
                .to_owned(),
        ),
        _ => Value::Wire(json.clone()),
    })
}

fn abbreviate(json: &Json) -> String {
    let text = json.to_string();
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text,
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_exactly() {
        let mut map = BTreeMap::new();
        map.insert("n".to_owned(), Value::Float(f64::NAN));
        map.insert("z".to_owned(), Value::Float(-0.0));
        let value = Value::Array(vec![
            Value::Unit,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Float(0.1 + 0.2),
            Value::Float(5e-324),
            Value::Char('é'),
            Value::Str("a\"b".into()),
            Value::Blob(vec![0, 255]),
            Value::Map(map),
            Value::Fn("scale".into()),
            Value::Wire(json!({"closure": {"fn": "anon$1", "curried": []}})),
        ]);
        let text = encode(&value);
        let back = decode(&text).unwrap();
        assert_eq!(encode(&back), text, "bit-exact, NaN included");
    }

    #[test]
    fn bad_wire_forms_are_errors_saying_what_is_wrong() {
        assert!(decode("{").unwrap_err().to_string().starts_with("not JSON"));
        assert!(decode(r#"{"float":"12"}"#)
            .unwrap_err()
            .to_string()
            .contains("bad float"));
        assert!(decode(r#"{"a":1,"b":2}"#)
            .unwrap_err()
            .to_string()
            .contains("one key"));
    }
}
