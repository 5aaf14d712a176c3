//! [`Value`]: a plain Rust form of every value the host stores, with
//! conversions from and to [`FfiValue`], the wire form and natural JSON.

use std::collections::BTreeMap;

use abi_stable::std_types::RString;
use serde_json::{json, Map as JsonMap, Value as Json};

use crate::{FfiEntry, FfiValue};

/// A value as a plugin works with it.
///
/// Every value the host can store has a form here. Kinds with no [`FfiValue`]
/// form (characters, function pointers, closures, plugin-owned values,
/// constants, tagged values) are kept as they came in the wire form
/// ([`Value::Wire`]), so they go back unchanged.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Unit (`()`, Python's `None`).
    Unit,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float; kept bit for bit.
    Float(f64),
    /// A character.
    Char(char),
    /// A string.
    Str(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A map, keys sorted.
    Map(BTreeMap<String, Value>),
    /// A named function pointer.
    Fn(String),
    /// A value this SDK does not model, in its wire form (a closure, a
    /// plugin-owned value, a constant or tagged value).
    Wire(Json),
}

impl Value {
    /// The natural JSON form: unit is null, maps are objects, floats keep
    /// every digit (non-finite floats become `"NaN"`, `"inf"`, `"-inf"`),
    /// blobs are arrays of bytes, other kinds their wire form.
    pub fn to_json(&self) -> Json {
        match self {
            Value::Unit => Json::Null,
            Value::Bool(flag) => Json::Bool(*flag),
            Value::Int(int) => json!(int),
            Value::Float(float) => float_json(*float),
            Value::Char(char) => Json::String(char.to_string()),
            Value::Str(text) => Json::String(text.clone()),
            Value::Blob(bytes) => json!(bytes),
            Value::Array(items) => Json::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), value.to_json()))
                    .collect(),
            ),
            Value::Fn(name) => json!({ "fn": name }),
            Value::Wire(wire) => wire.clone(),
        }
    }

    /// The value of natural JSON `json`: null is unit, numbers that are
    /// integers are ints, other numbers floats, objects maps.
    pub fn from_json(json: &Json) -> Value {
        match json {
            Json::Null => Value::Unit,
            Json::Bool(flag) => Value::Bool(*flag),
            Json::Number(number) => number.as_i64().map_or_else(
                || Value::Float(number.as_f64().unwrap_or(f64::NAN)),
                Value::Int,
            ),
            Json::String(text) => Value::Str(text.clone()),
            Json::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            Json::Object(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(key, value)| (key.clone(), Value::from_json(value)))
                    .collect(),
            ),
        }
    }

    /// The FFI form; kinds without one are `None`.
    pub fn to_ffi(&self) -> Option<FfiValue> {
        Some(match self {
            Value::Unit => FfiValue::Unit,
            Value::Bool(flag) => FfiValue::Bool(*flag),
            Value::Int(int) => FfiValue::Int(*int),
            Value::Float(float) => FfiValue::Float(*float),
            Value::Str(text) => FfiValue::Str(RString::from(text.as_str())),
            Value::Blob(bytes) => FfiValue::Bytes(bytes.clone().into()),
            Value::Array(items) => FfiValue::Array(
                items
                    .iter()
                    .map(Value::to_ffi)
                    .collect::<Option<Vec<_>>>()?
                    .into(),
            ),
            Value::Map(entries) => FfiValue::Map(
                entries
                    .iter()
                    .map(|(key, value)| {
                        Some(FfiEntry {
                            key: key.as_str().into(),
                            value: value.to_ffi()?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?
                    .into(),
            ),
            Value::Char(_) | Value::Fn(_) | Value::Wire(_) => return None,
        })
    }

    /// The value of an FFI value; a handle (a host value lent for one call)
    /// has no plain form and is `None`.
    pub fn from_ffi(value: &FfiValue) -> Option<Value> {
        Some(match value {
            FfiValue::Unit => Value::Unit,
            FfiValue::Bool(flag) => Value::Bool(*flag),
            FfiValue::Int(int) => Value::Int(*int),
            FfiValue::Float(float) => Value::Float(*float),
            FfiValue::Str(text) => Value::Str(text.as_str().to_owned()),
            FfiValue::Bytes(bytes) => Value::Blob(bytes.to_vec()),
            FfiValue::Array(items) => {
                Value::Array(items.iter().map(Value::from_ffi).collect::<Option<_>>()?)
            }
            FfiValue::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|entry| {
                        Some((
                            entry.key.as_str().to_owned(),
                            Value::from_ffi(&entry.value)?,
                        ))
                    })
                    .collect::<Option<_>>()?,
            ),
            FfiValue::Handle(_) => return None,
        })
    }
}

/// A float as natural JSON, exactly: serde_json writes the shortest text
/// that reads back to the same bits.
fn float_json(float: f64) -> Json {
    if float.is_nan() {
        Json::String("NaN".to_owned())
    } else if float.is_infinite() {
        Json::String(if float > 0.0 { "inf" } else { "-inf" }.to_owned())
    } else {
        json!(float)
    }
}

/// The natural JSON form of `value` (see [`Value::to_json`]); a handle is
/// `{"handle": ID}`.
pub fn ffi_to_json(value: &FfiValue) -> Json {
    match value {
        FfiValue::Handle(id) => json!({ "handle": id }),
        FfiValue::Array(items) => Json::Array(items.iter().map(ffi_to_json).collect()),
        FfiValue::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|entry| (entry.key.as_str().to_owned(), ffi_to_json(&entry.value)))
                .collect::<JsonMap<_, _>>(),
        ),
        other => Value::from_ffi(other).map_or(Json::Null, |value| value.to_json()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_keep_their_last_digit_in_json() {
        for float in [0.1 + 0.2, 1.0 / 3.0, f64::MIN_POSITIVE, 5e-324, 1e300] {
            let text = Value::Float(float).to_json().to_string();
            let back: f64 = text.parse().unwrap();
            assert_eq!(back.to_bits(), float.to_bits(), "{text}");
        }
        assert_eq!(Value::Float(f64::NAN).to_json(), json!("NaN"));
    }

    #[test]
    fn ffi_values_round_trip_and_handles_have_no_plain_form() {
        let mut map = BTreeMap::new();
        map.insert(
            "k".to_owned(),
            Value::Array(vec![Value::Int(1), Value::Float(-0.0)]),
        );
        let value = Value::Map(map);
        let ffi = value.to_ffi().unwrap();
        assert_eq!(Value::from_ffi(&ffi), Some(value.clone()));
        assert_eq!(Value::from_ffi(&FfiValue::Handle(3)), None);
        assert_eq!(Value::Char('x').to_ffi(), None);
        assert_eq!(value.to_json(), json!({"k": [1, -0.0]}));
        assert_eq!(
            Value::from_json(&json!({"a": [1, 2.5, null]})).to_json(),
            json!({"a": [1, 2.5, null]})
        );
    }
}
