//! What running a cell produces: its output, what it printed, and its error.

use std::fmt;

use crate::CellId;

/// The kind of a cell error, as reported to users and tools.
///
/// The string forms ([`ErrorKind::as_str`]) are part of the JSON event
/// format and never change; new kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The cell does not parse.
    Syntax,
    /// The cell's body failed while running.
    Runtime,
    /// The cell is on a dependency cycle.
    Cycle,
    /// The cell defines a name that another cell defines too.
    MultipleDefinitions,
    /// The cell ran longer than the run's time limit.
    Timeout,
    /// The run was interrupted (Ctrl-C) while the cell ran or waited.
    Interrupted,
    /// The cell did not run because an ancestor failed.
    Cancelled,
    /// A plugin (executor or lifecycle) failed or panicked.
    Plugin,
    /// Strict execution could not resolve a reference.
    Strict,
    /// A bug in cellrun itself, caught before it took the run down.
    Internal,
}

impl ErrorKind {
    /// The stable snake_case name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Runtime => "runtime",
            ErrorKind::Cycle => "cycle",
            ErrorKind::MultipleDefinitions => "multiple_definitions",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Strict => "strict",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a cell did not produce a normal result.
///
/// Positions are notebook positions (1-based line and column in the whole
/// file), not positions inside the cell's code.
#[derive(Clone, Debug, PartialEq)]
pub struct CellError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// A one-line description, lowercase, without a trailing period.
    pub message: String,
    /// The notebook line the error points at, when known.
    pub line: Option<u32>,
    /// The notebook column the error points at, when known.
    pub column: Option<u32>,
    /// The cell held responsible, when it is another cell than the failing one.
    pub blamed: Option<CellId>,
    /// The undefined variable a runtime error is about, when it is one.
    ///
    /// The run loop uses it to blame the cell that should have defined it.
    pub missing_name: Option<String>,
}

impl CellError {
    /// An error of `kind` with `message` and no position or blame.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> CellError {
        CellError {
            kind,
            message: message.into(),
            line: None,
            column: None,
            blamed: None,
            missing_name: None,
        }
    }

    /// The same error pointing at a notebook position.
    pub fn at(mut self, line: Option<u32>, column: Option<u32>) -> CellError {
        self.line = line;
        self.column = column;
        self
    }

    /// The same error blaming `cell`.
    pub fn blaming(mut self, cell: CellId) -> CellError {
        self.blamed = Some(cell);
        self
    }
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// The outcome of evaluating one cell: output, captured text, and error.
///
/// A result with `error: None` is a success. A failed result may still carry
/// an output and captured text (what the cell printed before failing).
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// The value of the cell's last statement when it is an expression, else unit.
    pub output: rhai::Dynamic,
    /// What the cell printed with `print` and `debug`, one line per call.
    pub stdout: String,
    /// Why the cell failed, if it did.
    pub error: Option<CellError>,
    /// Whether the result was restored from a cache instead of running the body.
    pub cached: bool,
    /// A rich form of the output, when the executor produced one (HTML,
    /// Markdown, an image), for reports and front ends.
    pub display: Option<Display>,
}

/// A rich rendering of a cell's output: a MIME type and its data.
///
/// Text types (`text/html`, `text/markdown`, `image/svg+xml`,
/// `text/plain`) carry the text itself; binary types (`image/png`,
/// `image/jpeg`) carry it base64-encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Display {
    /// The MIME type, for example `text/html`.
    pub mime: String,
    /// The data, as text or base64 (see the type's docs).
    pub data: String,
}

impl RunResult {
    /// A successful result with `output`.
    pub fn ok(output: rhai::Dynamic) -> RunResult {
        RunResult {
            output,
            stdout: String::new(),
            error: None,
            cached: false,
            display: None,
        }
    }

    /// A failed result with no output.
    pub fn failed(error: CellError) -> RunResult {
        RunResult {
            output: rhai::Dynamic::UNIT,
            stdout: String::new(),
            error: Some(error),
            cached: false,
            display: None,
        }
    }

    /// Whether the cell succeeded.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// The result of a cell whose token was stopped for `reason`: a stop is
    /// never ok, whatever the executor returned (it may have missed it, or
    /// the limits were crossed by the end), so a result without an error
    /// becomes the stop's error, keeping what the cell printed.
    pub fn stopped(self, reason: crate::StopReason) -> RunResult {
        if self.error.is_some() {
            return self;
        }
        RunResult {
            stdout: self.stdout,
            ..RunResult::failed(reason.cell_error())
        }
    }
}

/// The final status of a cell in a run.
///
/// Precedence when several apply: interrupted > cancelled > error > ok.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The cell ran (or was reused) without error.
    Ok,
    /// The cell failed, statically or while running.
    Error,
    /// The cell did not run because an ancestor failed.
    Cancelled,
    /// The run was interrupted before or while the cell ran.
    Interrupted,
}

impl Status {
    /// The stable lowercase name used in JSON events.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }

    /// The status a result's error kind suggests: interrupted or cancelled
    /// for those kinds, error for any other error, ok without one.
    ///
    /// The run loop does not trust a result this far: it marks a cell
    /// interrupted only when its cancel token was really interrupted.
    pub fn of(result: &RunResult) -> Status {
        match &result.error {
            None => Status::Ok,
            Some(error) if error.kind == ErrorKind::Interrupted => Status::Interrupted,
            Some(error) if error.kind == ErrorKind::Cancelled => Status::Cancelled,
            Some(_) => Status::Error,
        }
    }
}
