//! The job's side of `cellrun worker` protocol 1: the request line a job
//! reads on its standard input and the answer it writes on its standard
//! output (README, "Remote execution").
//!
//! A job's input is one request line; the worker answers it after its
//! `ready` line and ends at the end of its input.

use serde_json::{json, Map, Value};

use executor_abi::abi_stable::std_types::{RNone, ROption, RString, RVec};
use executor_abi::{FfiCellError, FfiEntry, FfiErrorKind, FfiValue};

/// The protocol this plugin speaks.
const PROTOCOL: u64 = 1;

/// What a job needs to run one cell.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// The cell's name.
    pub name: String,
    /// The cell's code.
    pub code: String,
    /// The notebook line of the code's first line.
    pub first_line: u32,
    /// The inputs, each in the wire form.
    pub inputs: Vec<(String, Value)>,
    /// The notebook functions the cell reaches, as protocol 1 objects.
    pub functions: Vec<Value>,
    /// When the cell must have finished (wall clock), if it must.
    pub deadline_unix_ms: Option<u64>,
}

impl Request {
    /// The request as one line of JSON, with its line break.
    pub fn to_line(&self) -> String {
        let inputs: Map<String, Value> = self.inputs.iter().cloned().collect();
        let mut request = json!({
            "protocol": PROTOCOL,
            "id": 0,
            "cell": {
                "name": self.name,
                "language": "rhai",
                "code": self.code,
                "first_line": self.first_line,
            },
            "functions": self.functions,
            "inputs": inputs,
        });
        if let Some(deadline) = self.deadline_unix_ms {
            request["deadline_unix_ms"] = json!(deadline);
        }
        format!("{request}\n")
    }
}

/// The worker's answer about one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The cell's definitions in the wire form.
    pub defs: Vec<(String, Value)>,
    /// The cell's value in the wire form, if it has one.
    pub output: Option<Value>,
    /// What the cell printed.
    pub stdout: String,
    /// Why the cell failed, if it did.
    pub error: Option<FfiCellError>,
}

/// Reads the answer in what a job wrote: the worker's `ready` line, then
/// the answer line.
///
/// # Errors
/// When there is no answer line or it is not protocol 1 JSON.
pub fn parse_response(text: &str) -> Result<Answer, String> {
    let line = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .find(|line| !line.contains("\"ready\""))
        .ok_or("the worker wrote no answer")?;
    let answer: Value = serde_json::from_str(line)
        .map_err(|err| format!("the worker's answer is not JSON: {err}"))?;
    if answer["protocol"] != json!(PROTOCOL) {
        return Err(format!(
            "the worker answered in protocol {}",
            answer["protocol"]
        ));
    }
    let defs = match &answer["defs"] {
        Value::Object(defs) => defs.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    };
    let output = (!answer["output"].is_null()).then(|| answer["output"].clone());
    let error = match &answer["error"] {
        Value::Null => None,
        error => Some(cell_error(error)),
    };
    Ok(Answer {
        defs,
        output,
        stdout: answer["stdout"].as_str().unwrap_or_default().to_owned(),
        error,
    })
}

fn cell_error(error: &Value) -> FfiCellError {
    let kind = match error["kind"].as_str().unwrap_or_default() {
        "syntax" => FfiErrorKind::SYNTAX,
        "timeout" => FfiErrorKind::TIMEOUT,
        "interrupted" => FfiErrorKind::INTERRUPTED,
        "cancelled" => FfiErrorKind::CANCELLED,
        "strict" => FfiErrorKind::STRICT,
        "internal" | "protocol" => FfiErrorKind::INTERNAL,
        _ => FfiErrorKind::RUNTIME,
    };
    let number = |key: &str| -> ROption<u32> {
        error[key]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .into()
    };
    FfiCellError {
        kind,
        message: RString::from(error["message"].as_str().unwrap_or("the worker failed")),
        line: number("line"),
        column: number("column"),
        blamed: RNone,
        missing_name: error["missing_name"].as_str().map(RString::from).into(),
    }
}

/// `value` in the wire form, or the reason it has none here.
///
/// # Errors
/// For a handle: a value the host keeps (a function pointer, a closure, a
/// character) that this ABI does not hand over.
pub fn to_wire(value: &FfiValue) -> Result<Value, String> {
    Ok(match value {
        FfiValue::Unit => json!({"unit": null}),
        FfiValue::Bool(b) => json!({"bool": b}),
        FfiValue::Int(n) => json!({"int": n}),
        FfiValue::Float(x) => json!({"float": format!("{:016x}", x.to_bits())}),
        FfiValue::Str(s) => json!({"str": s.as_str()}),
        FfiValue::Bytes(bytes) => json!({"blob": hex(bytes)}),
        FfiValue::Array(items) => {
            json!({"array": items.iter().map(to_wire).collect::<Result<Vec<_>, _>>()?})
        }
        FfiValue::Map(entries) => {
            let mut map = Map::new();
            for entry in entries.iter() {
                map.insert(entry.key.to_string(), to_wire(&entry.value)?);
            }
            json!({"map": map})
        }
        FfiValue::Handle(_) => {
            return Err("a function pointer, closure or character cannot leave the host through executor-abi 1.1".to_owned())
        }
    })
}

/// The value `wire` stands for.
///
/// # Errors
/// For a kind this ABI cannot hand to the host (functions, characters,
/// foreign values) or a malformed value.
pub fn from_wire(wire: &Value) -> Result<FfiValue, String> {
    let Some((tag, inner)) = wire.as_object().and_then(|map| map.iter().next()) else {
        return Err(format!("not a wire value: {wire}"));
    };
    let bad = || format!("malformed wire value: {wire}");
    Ok(match tag.as_str() {
        "unit" => FfiValue::Unit,
        "bool" => FfiValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "int" => FfiValue::Int(inner.as_i64().ok_or_else(bad)?),
        "float" => {
            let bits =
                u64::from_str_radix(inner.as_str().ok_or_else(bad)?, 16).map_err(|_| bad())?;
            FfiValue::Float(f64::from_bits(bits))
        }
        "str" => FfiValue::Str(RString::from(inner.as_str().ok_or_else(bad)?)),
        "blob" => FfiValue::Bytes(unhex(inner.as_str().ok_or_else(bad)?).ok_or_else(bad)?),
        "array" => FfiValue::Array(
            inner
                .as_array()
                .ok_or_else(bad)?
                .iter()
                .map(from_wire)
                .collect::<Result<RVec<_>, _>>()?,
        ),
        "map" => FfiValue::Map(
            inner
                .as_object()
                .ok_or_else(bad)?
                .iter()
                .map(|(key, value)| {
                    Ok(FfiEntry {
                        key: RString::from(key.as_str()),
                        value: from_wire(value)?,
                    })
                })
                .collect::<Result<RVec<_>, String>>()?,
        ),
        "const" | "tag" => {
            return Err(format!(
                "a `{tag}` value cannot enter the host through executor-abi 1.1"
            ))
        }
        other => {
            return Err(format!(
                "a `{other}` value cannot enter the host through executor-abi 1.1"
            ))
        }
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<RVec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_values_cross_in_the_wire_form_exactly() {
        let value = FfiValue::Map(RVec::from(vec![
            FfiEntry {
                key: "xs".into(),
                value: FfiValue::Array(RVec::from(vec![
                    FfiValue::Int(-3),
                    FfiValue::Float(0.1 + 0.2),
                    FfiValue::Float(-0.0),
                ])),
            },
            FfiEntry {
                key: "s".into(),
                value: FfiValue::Str("é".into()),
            },
            FfiEntry {
                key: "b".into(),
                value: FfiValue::Bytes(RVec::from(vec![0, 255])),
            },
        ]));
        let wire = to_wire(&value).unwrap();
        assert_eq!(wire["map"]["b"], json!({"blob": "00ff"}));
        let back = from_wire(&wire).unwrap();
        let FfiValue::Map(entries) = &back else {
            panic!("a map")
        };
        let FfiValue::Array(xs) = &entries.iter().find(|e| e.key == "xs").unwrap().value else {
            panic!("an array")
        };
        assert!(matches!(xs[1], FfiValue::Float(x) if x.to_bits() == (0.1f64 + 0.2).to_bits()));
        assert!(matches!(xs[2], FfiValue::Float(x) if x.to_bits() == (-0.0f64).to_bits()));
        assert!(to_wire(&FfiValue::Handle(3)).is_err());
        assert!(from_wire(&json!({"closure": {}}))
            .unwrap_err()
            .contains("closure"));
    }

    #[test]
    fn the_answer_follows_the_ready_line() {
        let text = "{\"protocol\":1,\"ready\":true,\"cellrun\":\"0.1.0\"}\n\
            {\"protocol\":1,\"id\":0,\"status\":\"error\",\"defs\":{\"x\":{\"int\":1}},\"no_wire\":{},\
            \"output\":null,\"stdout\":\"hi\\n\",\"display\":null,\
            \"error\":{\"kind\":\"runtime\",\"message\":\"boom\",\"line\":7,\"column\":3,\"missing_name\":null}}\n";
        let answer = parse_response(text).unwrap();
        assert_eq!(answer.defs, [("x".to_owned(), json!({"int": 1}))]);
        assert_eq!(answer.output, None);
        assert_eq!(answer.stdout, "hi\n");
        let error = answer.error.unwrap();
        assert_eq!(
            (error.kind, error.message.as_str()),
            (FfiErrorKind::RUNTIME, "boom")
        );
        assert_eq!(
            (error.line, error.column),
            (ROption::RSome(7), ROption::RSome(3))
        );
        assert_eq!(
            parse_response("").unwrap_err(),
            "the worker wrote no answer"
        );
    }

    #[test]
    fn the_request_is_one_protocol_1_line() {
        let request = Request {
            name: "b".into(),
            code: "x + 1\n".into(),
            first_line: 4,
            inputs: vec![("x".into(), json!({"int": 20}))],
            functions: Vec::new(),
            deadline_unix_ms: Some(5),
        };
        let line = request.to_line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["protocol"], 1);
        assert_eq!(value["cell"]["first_line"], 4);
        assert_eq!(value["inputs"]["x"], json!({"int": 20}));
        assert_eq!(value["deadline_unix_ms"], 5);
    }
}
