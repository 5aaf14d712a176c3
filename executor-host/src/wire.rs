//! The host's side of the wire form (see `executor_abi::sdk::wire` for the
//! format): Rhai values to JSON text and back.
//!
//! Encoding streams into one string, so a large array costs one pass and
//! no intermediate tree.

use std::fmt::Write as _;

use executor_core::ForeignValue;
use rhai::{Array, Blob, Dynamic, FnPtr, ImmutableString, Map};
use serde_json::Value as Json;

/// The wire form of `value`, or why it has none.
pub(crate) fn encode(value: &Dynamic) -> Result<String, String> {
    let mut out = String::new();
    write_value(value, &mut out, 0)?;
    Ok(out)
}

const MAX_DEPTH: usize = 512;

fn write_value(value: &Dynamic, out: &mut String, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "a value nested deeper than {MAX_DEPTH} levels has no wire form"
        ));
    }
    if value.is_shared() {
        let inner = value
            .read_lock::<Dynamic>()
            .ok_or("a shared value is locked by another thread")?;
        return write_value(&inner, out, depth + 1);
    }
    if value.is_unit() {
        out.push_str(r#"{"unit":null}"#);
    } else if let Ok(flag) = value.as_bool() {
        let _ = write!(out, r#"{{"bool":{flag}}}"#);
    } else if let Ok(int) = value.as_int() {
        let _ = write!(out, r#"{{"int":{int}}}"#);
    } else if let Ok(float) = value.as_float() {
        let _ = write!(out, r#"{{"float":"{:016x}"}}"#, float.to_bits());
    } else if let Ok(char) = value.as_char() {
        out.push_str(r#"{"char":"#);
        write_str(&char.to_string(), out);
        out.push('}');
    } else if let Some(text) = value.read_lock::<ImmutableString>() {
        out.push_str(r#"{"str":"#);
        write_str(&text, out);
        out.push('}');
    } else if let Some(blob) = value.read_lock::<Blob>() {
        out.push_str(r#"{"blob":""#);
        for byte in blob.iter() {
            let _ = write!(out, "{byte:02x}");
        }
        out.push_str("\"}");
    } else if let Some(array) = value.read_lock::<Array>() {
        out.push_str(r#"{"array":["#);
        for (index, item) in array.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_value(item, out, depth + 1)?;
        }
        out.push_str("]}");
    } else if let Some(map) = value.read_lock::<Map>() {
        out.push_str(r#"{"map":{"#);
        for (index, (key, item)) in map.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_str(key, out);
            out.push(':');
            write_value(item, out, depth + 1)?;
        }
        out.push_str("}}");
    } else if let Some(fn_ptr) = value.read_lock::<FnPtr>() {
        if fn_ptr.is_curried() || fn_ptr.is_anonymous() {
            return Err(format!(
                "a closure (`{}`) has no wire form in this host",
                fn_ptr.fn_name()
            ));
        }
        out.push_str(r#"{"fn":"#);
        write_str(fn_ptr.fn_name(), out);
        out.push('}');
    } else if let Some(foreign) = ForeignValue::from_dynamic(value) {
        let object = foreign.object();
        let Some(bytes) = object.encode() else {
            return Err(format!(
                "a `{}` value of plugin `{}` has no encoding, so no wire form",
                object.type_name(),
                object.owner()
            ));
        };
        out.push_str(r#"{"foreign":{"owner":"#);
        write_str(object.owner(), out);
        out.push_str(r#","type":"#);
        write_str(object.type_name(), out);
        out.push_str(r#","data":""#);
        for byte in bytes {
            let _ = write!(out, "{byte:02x}");
        }
        out.push_str("\"}}");
    } else {
        return Err(format!(
            "a value of type `{}` has no wire form",
            value.type_name()
        ));
    }
    Ok(())
}

fn write_str(text: &str, out: &mut String) {
    // serde_json's escaping, without building a tree.
    out.push_str(&Json::String(text.to_owned()).to_string());
}

/// The value whose wire form is `text`.
pub(crate) fn decode(text: &str) -> Result<Dynamic, String> {
    let json: Json = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    from_json(&json, 0)
}

fn from_json(json: &Json, depth: usize) -> Result<Dynamic, String> {
    let fail = |what: &str| format!("{what} in a wire form");
    if depth > MAX_DEPTH {
        return Err(fail("nesting too deep"));
    }
    let Some((tag, payload)) = json
        .as_object()
        .filter(|object| object.len() == 1)
        .and_then(|object| object.iter().next())
    else {
        return Err(fail("expected an object with one key"));
    };
    Ok(match tag.as_str() {
        "unit" => Dynamic::UNIT,
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
            let bytes = (0..text.len())
                .step_by(2)
                .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
                .filter(|_| text.len() % 2 == 0)
                .ok_or_else(|| fail("bad blob"))?;
            Dynamic::from_blob(bytes)
        }
        "array" => Dynamic::from_array(
            payload
                .as_array()
                .ok_or_else(|| fail("bad array"))?
                .iter()
                .map(|item| from_json(item, depth + 1))
                .collect::<Result<Array, _>>()?,
        ),
        "map" => Dynamic::from_map(
            payload
                .as_object()
                .ok_or_else(|| fail("bad map"))?
                .iter()
                .map(|(key, item)| Ok((key.as_str().into(), from_json(item, depth + 1)?)))
                .collect::<Result<Map, String>>()?,
        ),
        "fn" => {
            let name = payload.as_str().ok_or_else(|| fail("bad function"))?;
            Dynamic::from(FnPtr::new(name).map_err(|_| fail("bad function name"))?)
        }
        other => {
            return Err(format!(
                "the wire kind `{other}` cannot be read by this host"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_bit_for_bit() {
        let mut map = Map::new();
        map.insert("z".into(), Dynamic::from_float(-0.0));
        map.insert("n".into(), Dynamic::from_float(f64::NAN));
        let value = Dynamic::from_array(vec![
            Dynamic::UNIT,
            Dynamic::from_int(i64::MIN),
            Dynamic::from_float(0.1 + 0.2),
            Dynamic::from_char('é'),
            Dynamic::from("a\"\n".to_owned()),
            Dynamic::from_blob(vec![0, 255]),
            Dynamic::from_map(map).into_shared(),
            Dynamic::from(FnPtr::new("scale").unwrap()),
        ]);
        let text = encode(&value).unwrap();
        assert_eq!(encode(&decode(&text).unwrap()).unwrap(), text);
    }

    #[test]
    fn the_sdk_reads_what_the_host_writes() {
        let value = Dynamic::from_array(vec![
            Dynamic::from_float(1.0 / 3.0),
            Dynamic::from_char('x'),
        ]);
        let text = encode(&value).unwrap();
        let sdk = executor_abi::sdk::wire::decode(&text).unwrap();
        assert_eq!(executor_abi::sdk::wire::encode(&sdk), text);
    }

    #[test]
    fn a_value_without_a_wire_form_says_what_it_is() {
        let error = encode(&Dynamic::from(std::time::Instant::now())).unwrap_err();
        assert!(error.contains("has no wire form"), "{error}");
    }
}
