//! [`Outcome`]: what an executor's body produced, with builders.

use abi_stable::std_types::{ROption, RString, RVec};

use crate::{
    FfiCell, FfiCellContext, FfiCellError, FfiDisplay, FfiErrorKind, FfiOutcome, FfiOwnedRef,
    FfiRunResult, FfiValue,
};

use super::StopReason;

/// What a cell's body produced: output, printed text, error, and a rich
/// display; the SDK's form of [`FfiOutcome`].
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The value of the cell's last expression, or unit.
    pub output: FfiValue,
    /// The output when it is a value the plugin owns (id, type name).
    pub owned_output: Option<(u64, String)>,
    /// What the cell printed.
    pub stdout: String,
    /// Why the cell failed, if it did.
    pub error: Option<FfiCellError>,
    /// A rich form of the output: MIME type and data.
    pub display: Option<(String, String)>,
}

impl Outcome {
    /// A success with `output`.
    pub fn ok(output: FfiValue) -> Outcome {
        Outcome {
            output,
            owned_output: None,
            stdout: String::new(),
            error: None,
            display: None,
        }
    }

    /// A failure of `kind` with `message` at notebook line `line`.
    pub fn failed(kind: FfiErrorKind, message: impl Into<String>, line: Option<u32>) -> Outcome {
        Outcome {
            error: Some(FfiCellError {
                kind,
                message: message.into().into(),
                line: line.into(),
                column: ROption::RNone,
                blamed: ROption::RNone,
                missing_name: ROption::RNone,
            }),
            ..Outcome::ok(FfiValue::Unit)
        }
    }

    /// The failure a stopped cell reports: kind `interrupted`, `timeout`,
    /// or a runtime error naming the memory limit.
    pub fn stopped(reason: StopReason) -> Outcome {
        match reason {
            StopReason::Interrupted => {
                Outcome::failed(FfiErrorKind::INTERRUPTED, "interrupted", None)
            }
            StopReason::Timeout => {
                Outcome::failed(FfiErrorKind::TIMEOUT, "cell ran past the time limit", None)
            }
            StopReason::Memory => Outcome::failed(
                FfiErrorKind::RUNTIME,
                "cell stopped: the run went over its memory limit",
                None,
            ),
        }
    }

    /// The same outcome with `stdout` as its printed text.
    pub fn with_stdout(mut self, stdout: impl Into<String>) -> Outcome {
        self.stdout = stdout.into();
        self
    }

    /// The same outcome with a rich display.
    pub fn with_display(mut self, mime: impl Into<String>, data: impl Into<String>) -> Outcome {
        self.display = Some((mime.into(), data.into()));
        self
    }

    /// Whether the cell succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// The FFI form.
    pub fn into_ffi(self) -> FfiOutcome {
        FfiOutcome {
            result: FfiRunResult {
                output: self.output,
                stdout: self.stdout.into(),
                error: self.error.into(),
                cached: false,
            },
            display: self
                .display
                .map(|(mime, data)| FfiDisplay {
                    mime: mime.into(),
                    data: data.into(),
                })
                .into(),
            owned_output: self
                .owned_output
                .map(|(id, type_name)| FfiOwnedRef {
                    id,
                    type_name: type_name.into(),
                })
                .into(),
        }
    }

    /// The SDK form of `outcome`.
    pub fn from_ffi(outcome: FfiOutcome) -> Outcome {
        Outcome {
            display: outcome
                .display
                .into_option()
                .map(|display| (display.mime.into_string(), display.data.into_string())),
            owned_output: outcome
                .owned_output
                .into_option()
                .map(|owned| (owned.id, owned.type_name.into_string())),
            ..Outcome::from_result(outcome.result)
        }
    }

    /// The SDK form of a 1.0 result.
    pub fn from_result(result: FfiRunResult) -> Outcome {
        Outcome {
            output: result.output,
            owned_output: None,
            stdout: result.stdout.into_string(),
            error: result.error.into_option(),
            display: None,
        }
    }
}

/// The 1.2 context of a cell an older host described in its 1.0 form: what
/// that form lacks (language, functions, parents, run) is empty.
pub fn cell_from_legacy(cell: &FfiCell) -> FfiCellContext {
    FfiCellContext {
        id: cell.id,
        name: cell.name.clone(),
        language: RString::from("rhai"),
        code: cell.code.clone(),
        first_line: cell.first_line,
        defs: cell.defs.clone(),
        refs: cell.refs.clone(),
        functions: RVec::new(),
        fn_refs: RVec::new(),
        parents: RVec::new(),
        options: RVec::new(),
        notebook_path: RString::new(),
        notebook_hash: RString::new(),
        run_id: RString::new(),
        timeout_ms: ROption::RNone,
        deadline_unix_ms: ROption::RNone,
    }
}
