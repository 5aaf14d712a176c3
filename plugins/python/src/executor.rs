//! [`PythonPlugin`]: the `python` executor plugin, for cells of language
//! `python`, with their values owned by the plugin as Python objects.
//!
//! The host keeps each value as an id of [`PythonValues`]; it prints them
//! through their display and JSON forms and asks them for copies
//! (`--strict`) and pickles (`--cache`), so Python objects never have to
//! take a host form.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use executor_abi::sdk::{
    ffi_to_json, ExecutorPlugin, Host, Logger, Options, Outcome, OwnedValues, PluginError,
    StopReason,
};
use executor_abi::{FfiCellContext, FfiErrorKind, FfiRunInfo, FfiRunOutcome, FfiValue};
use pyo3::prelude::*;

use crate::ahead::{Ahead, Precompile};
use crate::{
    choose_python, run_cell, CellCode, Description, FailureKind, HostGlobals, Interpreter,
    StopCheck,
};

/// Runs marimo notebook cells in the process's embedded CPython.
pub struct PythonPlugin {
    /// The notebook's absolute path, for tracebacks and `__file__`.
    notebook: Mutex<String>,
    values: PythonValues,
    /// `python.precompile`.
    precompile: Precompile,
    /// The current run's cells compiled ahead by a helper process.
    ahead: Mutex<Option<Arc<Ahead>>>,
    logger: Logger,
}

impl PythonPlugin {
    fn interpreter(&self) -> Result<&'static Interpreter, String> {
        self.values.interpreter()
    }

    fn ahead(&self) -> Option<Arc<Ahead>> {
        self.ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn notebook_path(&self) -> String {
        self.notebook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ExecutorPlugin for PythonPlugin {
    const NAME: &'static str = "python";
    const DESCRIPTION: &'static str = "runs marimo notebooks' Python cells in an embedded CPython";
    const LANGUAGES: &'static [&'static str] = &["python"];

    fn new(options: &Options, logger: Logger) -> Result<PythonPlugin, PluginError> {
        options.reject_unknown(&["python", "portable", "max_memory", "precompile"])?;
        let precompile = options
            .get("precompile")
            .map_or(Ok(Precompile::Auto), Precompile::parse)
            .map_err(PluginError::new)?;
        if let Some(mib) = options.get("max_memory") {
            let bytes = mib
                .parse::<u64>()
                .ok()
                .filter(|mib| *mib > 0)
                .and_then(|mib| mib.checked_mul(1 << 20))
                .and_then(|bytes| usize::try_from(bytes).ok())
                .ok_or_else(|| {
                    PluginError::new(format!(
                        "python.max_memory is a positive number of MiB, not `{mib}`"
                    ))
                })?;
            crate::memory::set_limit(bytes);
        }
        let portable = match options.get("portable") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(PluginError::new(format!(
                    "python.portable is `true` or `false`, not `{other}`"
                )))
            }
        };
        let python = options.get("python").map(PathBuf::from);
        if let Ok(chosen) = choose_python(python.as_deref()) {
            crate::warm_up(&chosen);
        }
        Ok(PythonPlugin {
            notebook: Mutex::new("<notebook>".to_owned()),
            values: PythonValues {
                python,
                portable,
                ..PythonValues::default()
            },
            precompile,
            ahead: Mutex::new(None),
            logger,
        })
    }

    fn run_started(&self, run: &FfiRunInfo) -> Result<(), PluginError> {
        let path = Path::new(run.notebook_path.as_str());
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let filename = absolute.display().to_string();
        // With `never`, no run state at all: its cells do not look it up.
        let ahead = self.precompile.min_cells().and_then(|min_cells| {
            let python = choose_python(self.values.python.as_deref()).ok()?;
            Some(Ahead::start(&python, &absolute, &filename, min_cells))
        });
        *self.notebook.lock().unwrap_or_else(PoisonError::into_inner) = filename;
        let previous = std::mem::replace(
            &mut *self.ahead.lock().unwrap_or_else(PoisonError::into_inner),
            ahead,
        );
        if let Some(previous) = previous {
            previous.stop();
        }
        Ok(())
    }

    fn run_finished(&self, _outcome: &FfiRunOutcome) {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(ahead) = ahead {
            ahead.stop();
            self.logger
                .debug(&format!("{} cells ran code compiled ahead", ahead.used()));
        }
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        if cell.language.as_str() != "python" {
            return Err(PluginError::new(format!(
                "the python executor runs python cells, not {} cells",
                cell.language
            )));
        }
        let interpreter = self.interpreter().map_err(PluginError::new)?;
        let notebook = self.notebook_path();
        interpreter.set_file(&notebook);
        let private_defs = if may_define_private(cell.code.as_str()) {
            python_notebook::analyze(cell.code.as_str())
                .map(|analysis| analysis.private_defs)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let private_defs: Vec<&str> = private_defs.iter().map(String::as_str).collect();
        let refs: Vec<&str> = cell.refs.iter().map(|name| name.as_str()).collect();
        let defs: Vec<&str> = cell.defs.iter().map(|name| name.as_str()).collect();
        let compiled = self
            .ahead()
            .and_then(|ahead| ahead.take(cell.first_line, cell.code.as_str()));
        let code = CellCode {
            compiled: compiled.as_deref(),
            code: cell.code.as_str(),
            first_line: cell.first_line,
            refs: &refs,
            defs: &defs,
            private_defs: &private_defs,
        };
        let mut globals = Globals {
            host,
            values: &self.values,
            interpreter,
        };
        let run = run_cell(interpreter, &notebook, &code, &mut globals);
        let mut outcome = Outcome::ok(FfiValue::Unit).with_stdout(run.stdout);
        if let Some(output) = run.output {
            let held = Held::new(interpreter, output);
            let description = held.describe();
            if let Some((mime, data)) = description.rich {
                outcome = outcome.with_display(mime, data);
            }
            let type_name = description.type_name;
            let id = self.values.insert(held);
            outcome.owned_output = Some((id, type_name));
        }
        if let Some(failure) = run.failure {
            let reason = globals.host.stop_reason();
            let mut failed = match (failure.kind, reason) {
                (FailureKind::Interrupted, Some(reason)) => Outcome::stopped(reason),
                _ => {
                    // The traceback goes where Python prints it, after what
                    // the cell wrote; the error itself is one line.
                    outcome.stdout.push_str(&failure.traceback);
                    let mut failed =
                        Outcome::failed(FfiErrorKind::RUNTIME, failure.message, failure.line);
                    if let Some(error) = failed.error.as_mut() {
                        error.missing_name = failure.missing_name.map(Into::into).into();
                    }
                    failed
                }
            };
            if let Some(error) = failed.error.as_mut() {
                if error.line.is_none() {
                    error.line = failure.line.into();
                }
            }
            failed.stdout = outcome.stdout;
            outcome = failed;
        }
        Ok(outcome)
    }

    fn owned(&self) -> Option<&dyn OwnedValues> {
        Some(&self.values)
    }
}

/// Whether `code` may define a private name: it has a name starting with
/// `_`. Most cells have none, and are then not parsed again here.
pub(crate) fn may_define_private(code: &str) -> bool {
    let bytes = code.as_bytes();
    bytes.iter().enumerate().any(|(index, byte)| {
        *byte == b'_'
            && (index == 0 || {
                let before = bytes[index - 1];
                !(before.is_ascii_alphanumeric() || before == b'_' || before >= 0x80)
            })
    })
}

/// The host's globals as a cell run sees them.
struct Globals<'h, 'a> {
    host: &'h mut Host<'a>,
    values: &'h PythonValues,
    interpreter: &'static Interpreter,
}

impl HostGlobals for Globals<'_, '_> {
    fn get(&self, name: &str) -> Option<Py<PyAny>> {
        if let Some(id) = self.host.get_owned(name) {
            return self.values.object(id);
        }
        // A value the host holds in its own form (restored from the cache,
        // or made by another executor) comes in through its JSON form.
        let value = self.host.get(name)?;
        let json = ffi_to_json(&value).to_string();
        self.interpreter.from_json(&json).ok()
    }

    fn watch_stop(&self, run: &mut dyn FnMut(&dyn StopCheck)) {
        let signal = self.host.stop_signal();
        run(&move || signal.reason().is_some());
    }

    fn original(&self, name: &str) -> Option<Py<PyAny>> {
        // Without `--strict` no value is a copy: nothing to look up.
        if !self.values.copied.load(Ordering::Acquire) {
            return None;
        }
        let held = self.values.held(self.host.get_owned(name)?)?;
        let original = held.original.as_ref()?;
        Some(Python::attach(|py| original.clone_ref(py)))
    }

    fn drops_definitions(&self) -> bool {
        self.host.stop_reason() == Some(StopReason::Memory)
    }

    fn set(&mut self, name: &str, value: Py<PyAny>) {
        let type_name = self.interpreter.type_name(&value);
        let held = Held::new(self.interpreter, value);
        let id = self.values.insert(held);
        let _ = self.host.set_owned(name, id, &type_name);
    }
}

/// One Python object the host holds.
///
/// Its forms are computed when asked, since a later cell may mutate it in
/// place, as in marimo.
struct Held {
    object: Py<PyAny>,
    /// The object this one is a `--strict` copy of.
    original: Option<Py<PyAny>>,
    interpreter: &'static Interpreter,
}

impl Held {
    fn new(interpreter: &'static Interpreter, object: Py<PyAny>) -> Held {
        Held {
            object,
            original: None,
            interpreter,
        }
    }

    fn describe(&self) -> Description {
        self.interpreter.describe(&self.object)
    }
}

/// The Python objects the host holds, by id.
#[derive(Default)]
pub struct PythonValues {
    next: AtomicU64,
    values: Mutex<HashMap<u64, Arc<Held>>>,
    /// `--python PATH` (the plugin option `python.python`), when given.
    python: Option<PathBuf>,
    /// The plugin option `python.portable`: encodings go to another process
    /// (`cellrun worker`), so notebook functions and classes travel by value.
    portable: bool,
    interpreter: OnceLock<Result<&'static Interpreter, String>>,
    /// Whether a value was ever copied for a cell (`--strict`).
    copied: AtomicBool,
}

impl PythonValues {
    /// The interpreter, started on first use: by the first cell, or by the
    /// first value read back from the cache before any cell ran.
    fn interpreter(&self) -> Result<&'static Interpreter, String> {
        self.interpreter
            .get_or_init(|| {
                let python = choose_python(self.python.as_deref())?;
                Interpreter::get(&python)
            })
            .clone()
    }

    /// The interpreter, when a value exists that it made.
    fn started(&self) -> Option<&'static Interpreter> {
        self.interpreter.get()?.as_ref().ok().copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Held>>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn insert(&self, held: Held) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().insert(id, Arc::new(held));
        id
    }

    fn held(&self, id: u64) -> Option<Arc<Held>> {
        self.lock().get(&id).cloned()
    }

    fn object(&self, id: u64) -> Option<Py<PyAny>> {
        let held = self.held(id)?;
        Some(Python::attach(|py| held.object.clone_ref(py)))
    }
}

impl OwnedValues for PythonValues {
    /// The text of a rich display in a text type (`_mime_`,
    /// `_repr_html_`, ...) when the value has one, else `repr`.
    fn display(&self, id: u64) -> String {
        let Some(held) = self.held(id) else {
            return "<dropped python object>".to_owned();
        };
        let description = held.describe();
        match description.rich {
            Some((mime, data)) if mime.starts_with("text/") || mime == "image/svg+xml" => data,
            _ => description.display,
        }
    }

    fn json(&self, id: u64) -> Option<String> {
        self.held(id)?.describe().json
    }

    fn copy(&self, id: u64) -> Option<u64> {
        let interpreter = self.started()?;
        let held = self.held(id)?;
        let copy = interpreter.deep_copy(&held.object)?;
        self.copied.store(true, Ordering::Release);
        let original = Python::attach(|py| held.object.clone_ref(py));
        Some(self.insert(Held {
            original: Some(original),
            ..Held::new(interpreter, copy)
        }))
    }

    fn fingerprint(&self, id: u64) -> Option<Vec<u8>> {
        self.started()?.fingerprint(&self.held(id)?.object)
    }

    fn encode(&self, id: u64) -> Option<Vec<u8>> {
        let object = &self.held(id)?.object;
        if self.portable {
            self.started()?.encode_portable(object)
        } else {
            self.started()?.encode(object)
        }
    }

    fn decode(&self, _type_name: &str, bytes: &[u8]) -> Option<u64> {
        let interpreter = self.interpreter().ok()?;
        let object = interpreter.decode(bytes).ok()?;
        Some(self.insert(Held::new(interpreter, object)))
    }

    fn drop_value(&self, id: u64) {
        let held = self.lock().remove(&id);
        if let Some(held) = held {
            // Dropping a Python reference needs the interpreter.
            Python::attach(|_py| drop(held));
        }
    }
}
