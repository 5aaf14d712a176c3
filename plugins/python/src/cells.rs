//! One cell's run: inputs in, code, definitions out, with interrupts.
//!
//! The host's globals are the truth between cells: before a cell runs, the
//! values of the names it reads are bound in the interpreter's dictionary
//! (so `--strict` copies and cache restores reach the code); after it runs,
//! its definitions go back to the host as Python objects, and its private
//! names are unbound, as marimo deletes them.

use pyo3::prelude::*;

use crate::{CellRun, FailureKind, Interpreter, StopCheck};

/// What the plugin needs of a cell.
pub struct CellCode<'a> {
    /// The cell's code.
    pub code: &'a str,
    /// The code compiled ahead (see [`crate::ahead`]), when it was.
    pub compiled: Option<&'a [u8]>,
    /// The notebook line of the code's first line.
    pub first_line: u32,
    /// Names the cell reads.
    pub refs: &'a [&'a str],
    /// Public names the cell defines.
    pub defs: &'a [&'a str],
    /// Private names the cell defines.
    pub private_defs: &'a [&'a str],
}

/// The host's globals, as far as Python values go.
pub trait HostGlobals {
    /// The Python object bound to `name`, when the host has one.
    fn get(&self, name: &str) -> Option<Py<PyAny>>;
    /// Binds `name` to a Python object.
    fn set(&mut self, name: &str, value: Py<PyAny>);
    /// Calls `run` with what says, from any thread, whether the running
    /// cell must stop (Ctrl-C, a timeout, the memory limit); while `run`
    /// runs nothing else of the host is used.
    fn watch_stop(&self, run: &mut dyn FnMut(&dyn StopCheck));
    /// When the object bound to `name` is a copy made for this cell alone
    /// (`--strict`), the object it copies, which the name is bound to again
    /// once the cell ran: a function of another cell that reads the name
    /// when called must not see the copy.
    fn original(&self, name: &str) -> Option<Py<PyAny>> {
        let _ = name;
        None
    }
    /// Whether the cell's definitions must be dropped rather than kept: it
    /// was stopped over the memory limit, and what it made would stop the
    /// cells after it too.
    fn drops_definitions(&self) -> bool {
        false
    }
}

/// Runs `cell` from `notebook` (its path, for tracebacks) against `host`.
///
/// The code runs on the calling thread: no hand-over to another thread,
/// which would cost more than a small cell. The plugin's watcher thread
/// polls the host's stop check meanwhile and raises `KeyboardInterrupt` in
/// the code when it turns true (see [`crate::watcher`]).
pub fn run_cell(
    interpreter: &'static Interpreter,
    notebook: &str,
    cell: &CellCode<'_>,
    host: &mut dyn HostGlobals,
) -> CellRun {
    interpreter.keep_thread_state();
    // One hold of the GIL for the whole cell: the calls below that attach
    // again only count up.
    Python::attach(|_py| run_holding_the_gil(interpreter, notebook, cell, host))
}

fn run_holding_the_gil(
    interpreter: &'static Interpreter,
    notebook: &str,
    cell: &CellCode<'_>,
    host: &mut dyn HostGlobals,
) -> CellRun {
    // A refusal before this cell is not this cell's.
    let _ = crate::memory::take_refused();
    for name in cell.refs {
        if let Some(value) = host.get(name) {
            interpreter.set_global(name, &value);
        }
    }
    let mut run = None;
    host.watch_stop(&mut |stop| {
        run = Some(
            crate::watcher::run_watched(interpreter, stop, || {
                interpreter.run(cell.code, notebook, cell.first_line, cell.compiled)
            })
            .unwrap_or_else(|message| CellRun::failed(FailureKind::Runtime, message)),
        );
    });
    let mut run = run.unwrap_or_else(|| {
        CellRun::failed(
            FailureKind::Runtime,
            "the host gave the cell no stop check, so it did not run",
        )
    });
    if let Some(failure) = &mut run.failure {
        if failure.message.starts_with("MemoryError") {
            if let (Some(size), Some(limit)) =
                (crate::memory::take_refused(), crate::memory::limit())
            {
                failure.message = format!(
                    "MemoryError: one allocation of {size} bytes is larger than the run's memory limit ({} MiB)",
                    limit >> 20
                );
            }
        }
    }
    for name in cell.refs {
        if !cell.defs.contains(name) {
            if let Some(original) = host.original(name) {
                interpreter.set_global(name, &original);
            }
        }
    }
    if host.drops_definitions() {
        for name in cell.defs.iter().chain(cell.private_defs) {
            interpreter.remove_global(name);
        }
        interpreter.collect_garbage();
        return run;
    }
    for name in cell.defs {
        if let Some(value) = interpreter.global(name) {
            host.set(name, value);
        }
    }
    for name in cell.private_defs {
        interpreter.remove_global(name);
    }
    run
}

/// Starts the interpreter for `python` on a thread of its own and returns
/// at once: the runner analyses the notebook meanwhile, and the first cell
/// waits only for what is left of the start.
pub fn warm_up(python: &std::path::Path) {
    Interpreter::preinitialize();
    let python = python.to_path_buf();
    let started = std::thread::Builder::new()
        .name("cellrun-python-start".into())
        .spawn(move || {
            // A failed start is kept: the first cell gets its error.
            let _ = Interpreter::get(&python);
        });
    if let Err(error) = started {
        eprintln!("cellrun python plugin: cannot start the interpreter in the background: {error}");
    }
}
