//! The executor's side of `cellrun worker` protocol 1 (README, "Remote
//! execution"): the request line for one cell, built from its context and
//! the host's wire form of its inputs, and the answer line, read and written
//! back into the host.
//!
//! An executor plugin that runs cells in another process (the `subprocess`
//! plugin, through pipes) or on another machine (the `slurm` plugin, through
//! a cluster job's files) moves these lines; this crate knows what is in
//! them. It depends on the SDK only, so a plugin using it still builds no
//! Rhai engine.
//!
//! ```no_run
//! # use executor_abi::sdk::{Host, Outcome, PluginError};
//! # use executor_abi::FfiCellContext;
//! # fn send_and_wait(line: &str) -> String { unimplemented!() }
//! fn execute(cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
//!     let request = worker_client::Request::for_cell(cell, host, 1)?;
//!     let line = send_and_wait(&request.to_line());
//!     let answer = worker_client::Answer::parse(&line).map_err(PluginError::new)?;
//!     answer.apply(host)
//! }
//! ```

use executor_abi::abi_stable::std_types::{RNone, ROption, RString};
use std::io::{self, Write};
use std::path::PathBuf;

use executor_abi::sdk::{wire, Host, Options, Outcome, PluginError, Value as SdkValue};
use executor_abi::{FfiCellContext, FfiCellError, FfiErrorKind, FfiValue};
use serde_json::{json, Value};

/// The protocol this crate speaks.
pub const PROTOCOL: u64 = 1;

/// A global name no cell can define (it has a space), under which the host
/// holds an output for the one call that turns it into a value.
const OUTPUT_SLOT: &str = " worker output";

/// The `cellrun` to start as `cellrun worker`: the plugin's option
/// `cellrun` when given, else the `cellrun` running the plugin.
///
/// # Errors
/// When the running program cannot be found; the message asks for the option.
pub fn cellrun_binary(options: &Options) -> Result<PathBuf, PluginError> {
    match options.get("cellrun") {
        Some(path) => Ok(PathBuf::from(path)),
        None => std::env::current_exe().map_err(|err| {
            PluginError::new(format!(
                "cannot find the running cellrun ({err}); give option `cellrun`"
            ))
        }),
    }
}

/// What a worker needs to run one cell: the request line's content.
#[derive(Clone, Debug)]
pub struct Request {
    /// Echoed in the answer, to match the two.
    pub id: u64,
    /// The cell's name.
    pub name: String,
    /// The cell's language: `rhai` or `python`.
    pub language: String,
    /// The cell's code.
    pub code: String,
    /// The options the notebook gives the cell, in order.
    pub options: Vec<(String, String)>,
    /// The notebook's absolute path, for tracebacks that show its lines
    /// when the worker's machine sees the file at that path.
    pub notebook: String,
    /// The notebook line of the code's first line.
    pub first_line: u32,
    /// The inputs, each as the host's wire-form text.
    pub inputs: Vec<(String, String)>,
    /// The notebook functions the cell reaches: name, defining cell, that
    /// cell's code and its first notebook line.
    pub functions: Vec<(String, String, String, u32)>,
    /// When the cell must have finished (wall clock), if it must.
    pub deadline_unix_ms: Option<u64>,
}

impl Request {
    /// The request for `cell`, its inputs (the names it and the functions
    /// it reaches read) taken from `host` in the wire form.
    ///
    /// A name the host does not define is left out: the worker then fails
    /// the cell as the built-in evaluation would.
    ///
    /// # Errors
    /// When an input has no wire form (a timestamp); the message names it.
    pub fn for_cell(
        cell: &FfiCellContext,
        host: &Host<'_>,
        id: u64,
    ) -> Result<Request, PluginError> {
        let mut inputs: Vec<(String, String)> = Vec::new();
        for name in cell.refs.iter().chain(cell.fn_refs.iter()) {
            if inputs.iter().any(|(seen, _)| seen == name.as_str()) {
                continue;
            }
            if let Some(text) = host.get_wire(name)? {
                inputs.push((name.to_string(), text));
            }
        }
        Ok(Request {
            id,
            name: cell.name.to_string(),
            language: cell.language.to_string(),
            code: cell.code.to_string(),
            options: cell
                .options
                .iter()
                .map(|option| (option.key.to_string(), option.value.to_string()))
                .collect(),
            notebook: std::path::absolute(cell.notebook_path.as_str()).map_or_else(
                |_| cell.notebook_path.to_string(),
                |path| path.display().to_string(),
            ),
            first_line: cell.first_line,
            inputs,
            functions: cell
                .functions
                .iter()
                .map(|function| {
                    (
                        function.name.to_string(),
                        function.cell.to_string(),
                        function.code.to_string(),
                        function.first_line,
                    )
                })
                .collect(),
            deadline_unix_ms: cell.deadline_unix_ms.into_option(),
        })
    }

    /// The request as one line of JSON, with its line break.
    ///
    /// The inputs' wire texts are copied in as they are, never parsed.
    pub fn to_line(&self) -> String {
        let mut line = Vec::with_capacity(self.size_hint());
        self.write_to(&mut line)
            .expect("writing to a vector does not fail");
        String::from_utf8(line).expect("the line is made of UTF-8 strings")
    }

    /// Writes the request line to `out`, the inputs' wire texts as they
    /// are: a large input is never copied into a line first.
    ///
    /// # Errors
    /// When `out` fails.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let functions: Vec<Value> = self
            .functions
            .iter()
            .map(|(name, cell, code, first_line)| {
                json!({"name": name, "cell": cell, "code": code, "first_line": first_line})
            })
            .collect();
        let head = json!({
            "protocol": PROTOCOL,
            "id": self.id,
            "cell": {
                "name": self.name,
                "language": self.language,
                "code": self.code,
                "first_line": self.first_line,
                "options": self.options,
            },
            "functions": functions,
            "notebook": self.notebook,
            "deadline_unix_ms": self.deadline_unix_ms,
        })
        .to_string();
        // `head` is an object: reopen it to add the inputs.
        out.write_all(&head.as_bytes()[..head.len() - 1])?;
        out.write_all(b",\"inputs\":{")?;
        for (index, (name, text)) in self.inputs.iter().enumerate() {
            if index > 0 {
                out.write_all(b",")?;
            }
            out.write_all(Value::from(name.as_str()).to_string().as_bytes())?;
            out.write_all(b":")?;
            out.write_all(text.as_bytes())?;
        }
        out.write_all(b"}}\n")?;
        out.flush()
    }

    fn size_hint(&self) -> usize {
        let inputs: usize = self.inputs.iter().map(|(n, t)| n.len() + t.len() + 4).sum();
        let functions: usize = self.functions.iter().map(|f| f.2.len() + 64).sum();
        256 + self.code.len() + inputs + functions
    }
}

/// Whether `line` is a worker's `ready` line.
pub fn is_ready_line(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|value| value["ready"] == json!(true) && value["protocol"] == json!(PROTOCOL))
}

/// The worker's answer about one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The request's id, as echoed.
    pub id: Value,
    /// The cell's definitions, each as wire-form text.
    pub defs: Vec<(String, String)>,
    /// The inputs the cell changed in place, each as wire-form text.
    pub changed: Vec<(String, String)>,
    /// The cell's value in the wire form, if it has one.
    pub output: Option<Value>,
    /// The JSON rendering of the cell's value, for a value without a wire form.
    pub output_json: Value,
    /// What the cell printed.
    pub stdout: String,
    /// The rich display of the output: MIME type and data.
    pub display: Option<(String, String)>,
    /// Why the cell failed, if it did, with notebook lines.
    pub error: Option<FfiCellError>,
}

impl Answer {
    /// Reads one answer line.
    ///
    /// # Errors
    /// When the line is not protocol 1 JSON.
    pub fn parse(line: &str) -> Result<Answer, String> {
        let answer: Value = serde_json::from_str(line)
            .map_err(|err| format!("the worker's answer is not JSON: {err}"))?;
        if answer["protocol"] != json!(PROTOCOL) {
            return Err(format!(
                "the worker answered in protocol {}",
                answer["protocol"]
            ));
        }
        let texts = |key: &str| -> Vec<(String, String)> {
            match &answer[key] {
                Value::Object(map) => map
                    .iter()
                    .map(|(name, wire)| (name.clone(), wire.to_string()))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let display = match (
            answer["display"]["mime"].as_str(),
            answer["display"]["data"].as_str(),
        ) {
            (Some(mime), Some(data)) => Some((mime.to_owned(), data.to_owned())),
            _ => None,
        };
        Ok(Answer {
            id: answer["id"].clone(),
            defs: texts("defs"),
            changed: texts("changed"),
            output: (!answer["output"].is_null()).then(|| answer["output"].clone()),
            output_json: answer["output_json"].clone(),
            stdout: answer["stdout"].as_str().unwrap_or_default().to_owned(),
            display,
            error: match &answer["error"] {
                Value::Null => None,
                error => Some(cell_error(error)),
            },
        })
    }

    /// Reads the answer in what a one-request worker wrote: its `ready`
    /// line, then the answer line.
    ///
    /// # Errors
    /// When there is no answer line or it is not protocol 1 JSON.
    pub fn after_ready(text: &str) -> Result<Answer, String> {
        let line = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .find(|line| !is_ready_line(line))
            .ok_or("the worker wrote no answer")?;
        Answer::parse(line)
    }

    /// Writes the answer into the host: the changed inputs and the
    /// definitions, then the outcome (output, printed text, display, error).
    ///
    /// # Errors
    /// When the host refuses a wire form (a worker of another build).
    pub fn apply(self, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        for (name, text) in self.changed.iter().chain(&self.defs) {
            host.set_wire(name, text)?;
        }
        let output = match &self.output {
            // A plugin's value (a Python object) lives in the worker's
            // process: its JSON rendering stands for it here.
            Some(wire) if wire.get("foreign").is_some() => SdkValue::from_json(&self.output_json)
                .to_ffi()
                .unwrap_or(FfiValue::Unit),
            Some(wire) => output_value(wire, host)?,
            None if self.output_json.is_null() => FfiValue::Unit,
            // No wire form (a timestamp): its JSON rendering stands in.
            None => SdkValue::from_json(&self.output_json)
                .to_ffi()
                .unwrap_or(FfiValue::Unit),
        };
        let mut outcome = Outcome {
            error: self.error,
            ..Outcome::ok(output).with_stdout(self.stdout)
        };
        if let Some((mime, data)) = self.display {
            outcome = outcome.with_display(mime, data);
        }
        Ok(outcome)
    }
}

/// The FFI value of an output's wire form: plain values directly, the
/// others (characters, function pointers, closures) as a handle on the
/// value the host decodes, which the outcome hands back to it.
fn output_value(wire: &Value, host: &mut Host<'_>) -> Result<FfiValue, PluginError> {
    if let Some(plain) = wire::from_wire_json(wire)
        .ok()
        .and_then(|value| value.to_ffi())
    {
        return Ok(plain);
    }
    host.set_wire(OUTPUT_SLOT, &wire.to_string())
        .map_err(|error| PluginError::new(format!("the cell's value: {error}")))?;
    let value = host.get(OUTPUT_SLOT).unwrap_or(FfiValue::Unit);
    host.remove(OUTPUT_SLOT);
    Ok(value)
}

/// The FFI form of an answer's `error`.
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

#[cfg(test)]
mod tests;
