//! Rhai values as JSON.

use rhai::Dynamic;
use serde_json::Value;

/// The most values (scalars, items, entries) an output renders as JSON.
pub(crate) const MAX_JSON_VALUES: usize = 1_000_000;

/// The most bytes of text an output renders as JSON, over all its strings.
pub(crate) const MAX_JSON_TEXT: usize = 64 << 20;

/// The JSON form of a Rhai value.
///
/// Maps become objects, arrays and blobs arrays, unit null, numbers numbers,
/// strings and characters strings. A value with no JSON form (a function
/// pointer, a timestamp, a non-finite float, a custom type) becomes its
/// display string.
#[cfg(test)]
pub(crate) fn to_json(value: &Dynamic) -> Value {
    to_json_bounded(value).0
}

/// [`to_json`] in bounded time and memory: after [`MAX_JSON_VALUES`] values
/// or [`MAX_JSON_TEXT`] bytes of text, containers and strings are cut
/// short; the flag says whether anything was.
pub(crate) fn to_json_bounded(value: &Dynamic) -> (Value, bool) {
    to_json_budget(value, MAX_JSON_VALUES, MAX_JSON_TEXT)
}

/// [`to_json_bounded`] with a budget of `values` values and `text` bytes.
fn to_json_budget(value: &Dynamic, values: usize, text: usize) -> (Value, bool) {
    let mut budget = Budget {
        values,
        text,
        cut: false,
    };
    let json = to_json_within(value, &mut budget);
    (json, budget.cut)
}

/// What is left to render.
struct Budget {
    values: usize,
    text: usize,
    cut: bool,
}

impl Budget {
    /// Takes one value; `false` when none is left.
    fn take(&mut self) -> bool {
        if self.values == 0 {
            self.cut = true;
            return false;
        }
        self.values -= 1;
        true
    }

    /// The part of `text` that fits.
    fn text<'a>(&mut self, text: &'a str) -> &'a str {
        let fits = prefix(text, self.text);
        self.text -= fits.len();
        self.cut |= fits.len() < text.len();
        fits
    }
}

/// The longest prefix of `text` of at most `bytes` bytes, whole characters only.
fn prefix(text: &str, bytes: usize) -> &str {
    if text.len() <= bytes {
        return text;
    }
    let mut end = bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn to_json_within(value: &Dynamic, budget: &mut Budget) -> Value {
    if let Some(array) = value.read_lock::<rhai::Array>() {
        let mut items = Vec::with_capacity(array.len().min(budget.values));
        for item in array.iter() {
            if !budget.take() {
                break;
            }
            items.push(to_json_within(item, budget));
        }
        return Value::Array(items);
    }
    if let Some(blob) = value.read_lock::<rhai::Blob>() {
        let n_bytes = blob.len().min(budget.values);
        budget.values -= n_bytes;
        budget.cut |= n_bytes < blob.len();
        return Value::Array(
            blob[..n_bytes]
                .iter()
                .map(|byte| Value::from(*byte))
                .collect(),
        );
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        let mut entries = serde_json::Map::new();
        for (key, item) in map.iter() {
            if !budget.take() {
                break;
            }
            let key = budget.text(key).to_owned();
            entries.insert(key, to_json_within(item, budget));
        }
        return Value::Object(entries);
    }
    if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        return Value::String(budget.text(&text).to_owned());
    }
    if value.is_shared() {
        return to_json_within(&value.flatten_clone(), budget);
    }
    if let Some(foreign) = executor_core::ForeignValue::from_dynamic(value) {
        return foreign_json(foreign.object(), budget);
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
    } else if let Ok(char) = value.as_char() {
        Value::String(char.to_string())
    } else {
        Value::String(budget.text(&value.to_string()).to_owned())
    }
}

/// A plugin's value as its JSON form when it has one that fits the budget,
/// else its display string.
fn foreign_json(object: &dyn executor_core::ForeignObject, budget: &mut Budget) -> Value {
    let parsed = object
        .to_json()
        .filter(|text| text.len() <= budget.text)
        .and_then(|text| {
            serde_json::from_str::<Value>(&text)
                .ok()
                .map(|json| (json, text.len()))
        });
    match parsed {
        Some((json, len)) => {
            budget.text -= len;
            json
        }
        None => Value::String(budget.text(&object.display()).to_owned()),
    }
}

/// A one-line rendering of a value, at most `width` characters.
///
/// It renders only as much of the value as fits: a cell returning a
/// million-element array costs a few elements to show, not the array.
pub(crate) fn compact(value: &Dynamic, width: usize) -> String {
    let mut text = String::new();
    if let Some(string) = value.read_lock::<rhai::ImmutableString>() {
        // Four bytes a character is enough to fill `width` characters.
        text = prefix(&string, width.saturating_mul(4) + 4).to_owned();
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
        let mut budget = Budget {
            values: 1,
            text: limit.saturating_sub(out.len()),
            cut: false,
        };
        out.push_str(&to_json_within(value, &mut budget).to_string());
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

    struct Frame(Option<&'static str>);

    impl executor_core::ForeignObject for Frame {
        fn type_name(&self) -> &str {
            "demo.Frame"
        }
        fn owner(&self) -> &str {
            "demo"
        }
        fn display(&self) -> String {
            "Frame(2 rows)".to_owned()
        }
        fn to_json(&self) -> Option<String> {
            self.0.map(str::to_owned)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn plugin_values_render_as_their_json_form_or_display() {
        let with_json = executor_core::ForeignValue::new(Frame(Some("[1,2]"))).into_dynamic();
        assert_eq!(to_json(&with_json), serde_json::json!([1, 2]));
        let bad_json = executor_core::ForeignValue::new(Frame(Some("[1,"))).into_dynamic();
        assert_eq!(to_json(&bad_json), serde_json::json!("Frame(2 rows)"));
        let without = executor_core::ForeignValue::new(Frame(None)).into_dynamic();
        assert_eq!(to_json(&without), serde_json::json!("Frame(2 rows)"));
        assert_eq!(compact(&without, 72), "\"Frame(2 rows)\"");
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

    // See: issue 12, point 2.
    #[test]
    fn issue_12_huge_values_render_in_bounded_memory() {
        let (json, cut) = to_json_budget(&eval("blob(3000, 1)"), 1000, 100);
        assert!(cut);
        assert_eq!(json.as_array().map(Vec::len), Some(1000));
        let (json, cut) = to_json_budget(&eval("[\"éééé\", \"éééé\", 1, 2]"), 3, 11);
        assert!(cut);
        assert_eq!(json, serde_json::json!(["éééé", "é", 1]));
        let (json, cut) = to_json_bounded(&eval("[[1, 2], #{a: \"x\"}]"));
        assert!(!cut);
        assert_eq!(json, serde_json::json!([[1, 2], {"a": "x"}]));
        let long = eval("let s = \"\"; s.pad(5000000, 'x'); s");
        assert_eq!(compact(&long, 8), "xxxxxxx…");
    }

    #[test]
    fn compact_truncates_long_values() {
        let text = compact(&eval("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"), 10);
        assert_eq!(text.chars().count(), 10);
        assert!(text.ends_with('…'));
    }
}
