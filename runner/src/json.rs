//! Rhai values as JSON.

use rhai::Dynamic;
use serde_json::Value;

/// The JSON form of a Rhai value.
///
/// Maps become objects, arrays and blobs arrays, unit null, numbers numbers,
/// strings and characters strings. A value with no JSON form (a function
/// pointer, a timestamp, a non-finite float, a custom type) becomes its
/// display string.
pub(crate) fn to_json(value: &Dynamic) -> Value {
    if value.is_shared() {
        return to_json(&value.flatten_clone());
    }
    if value.is_unit() {
        Value::Null
    } else if let Ok(boolean) = value.as_bool() {
        Value::Bool(boolean)
    } else if let Ok(int) = value.as_int() {
        Value::from(int)
    } else if let Ok(float) = value.as_float() {
        serde_json::Number::from_f64(float)
            .map_or_else(|| Value::String(float.to_string()), Value::Number)
    } else if value.is_string() {
        Value::String(value.to_string())
    } else if let Ok(char) = value.as_char() {
        Value::String(char.to_string())
    } else if let Some(array) = value.read_lock::<rhai::Array>() {
        Value::Array(array.iter().map(to_json).collect())
    } else if let Some(blob) = value.read_lock::<rhai::Blob>() {
        Value::Array(blob.iter().map(|byte| Value::from(*byte)).collect())
    } else if let Some(map) = value.read_lock::<rhai::Map>() {
        Value::Object(
            map.iter()
                .map(|(key, value)| (key.to_string(), to_json(value)))
                .collect(),
        )
    } else {
        Value::String(value.to_string())
    }
}

/// A one-line rendering of a value, at most `width` characters.
///
/// It renders only as much of the value as fits: a cell returning a
/// million-element array costs a few elements to show, not the array.
pub(crate) fn compact(value: &Dynamic, width: usize) -> String {
    let mut text = String::new();
    if value.is_string() {
        text = value.to_string();
    } else {
        // Four bytes a character is enough to fill `width` characters.
        write_bounded(value, &mut text, width.saturating_mul(4) + 1);
    }
    if text.chars().count() <= width {
        return text.replace('\n', " ");
    }
    let mut short: String = text.chars().take(width.saturating_sub(1)).collect();
    short = short.replace('\n', " ");
    short.push('…');
    short
}

/// Writes `value` as compact JSON into `out`, stopping soon after `out`
/// reaches `limit` bytes.
fn write_bounded(value: &Dynamic, out: &mut String, limit: usize) {
    if out.len() >= limit {
        return;
    }
    if value.is_shared() {
        return write_bounded(&value.flatten_clone(), out, limit);
    }
    if let Some(array) = value.read_lock::<rhai::Array>() {
        out.push('[');
        for (index, item) in array.iter().enumerate() {
            if out.len() >= limit {
                return;
            }
            if index > 0 {
                out.push(',');
            }
            write_bounded(item, out, limit);
        }
        out.push(']');
    } else if let Some(map) = value.read_lock::<rhai::Map>() {
        out.push('{');
        for (index, (key, item)) in map.iter().enumerate() {
            if out.len() >= limit {
                return;
            }
            if index > 0 {
                out.push(',');
            }
            out.push_str(&Value::String(key.to_string()).to_string());
            out.push(':');
            write_bounded(item, out, limit);
        }
        out.push('}');
    } else {
        out.push_str(&to_json(value).to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> Dynamic {
        rhai::Engine::new().eval::<Dynamic>(code).unwrap()
    }

    #[test]
    fn values_map_to_natural_json() {
        assert_eq!(to_json(&eval("()")), Value::Null);
        assert_eq!(
            to_json(&eval("[1, 2.5, \"x\", true]")),
            serde_json::json!([1, 2.5, "x", true])
        );
        assert_eq!(
            to_json(&eval("#{b: [1], a: #{c: ()}}")),
            serde_json::json!({"a": {"c": null}, "b": [1]})
        );
        assert_eq!(to_json(&eval("'c'")), serde_json::json!("c"));
        assert_eq!(to_json(&eval("blob(2, 7)")), serde_json::json!([7, 7]));
    }

    #[test]
    fn values_without_json_form_become_display_strings() {
        assert_eq!(to_json(&eval("0.0 / 0.0")), serde_json::json!("NaN"));
        assert_eq!(to_json(&eval("Fn(\"abs\")")), serde_json::json!("Fn(abs)"));
    }

    #[test]
    fn shared_values_are_read_through() {
        let shared = eval("[1, 2]").into_shared();
        assert_eq!(to_json(&shared), serde_json::json!([1, 2]));
    }

    #[test]
    fn compact_renders_like_json_and_stops_early_on_huge_values() {
        assert_eq!(
            compact(&eval("#{b: [1, 2.5], a: \"x\"}"), 72),
            r#"{"a":"x","b":[1,2.5]}"#
        );
        assert_eq!(compact(&eval("\"plain text\""), 72), "plain text");
        let huge = eval("let xs = []; xs.pad(1000000, 7); xs");
        let text = compact(&huge, 20);
        assert_eq!(text, "[7,7,7,7,7,7,7,7,7,…");
    }

    #[test]
    fn compact_truncates_long_values() {
        let text = compact(&eval("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"), 10);
        assert_eq!(text.chars().count(), 10);
        assert!(text.ends_with('…'));
    }
}
