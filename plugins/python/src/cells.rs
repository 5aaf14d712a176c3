//! One cell's run: inputs in, code, definitions out, with interrupts.
//!
//! The host's globals are the truth between cells: before a cell runs, the
//! values of the names it reads are bound in the interpreter's dictionary
//! (so `--strict` copies and cache restores reach the code); after it runs,
//! its definitions go back to the host as Python objects, and its private
//! names are unbound, as marimo deletes them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;

use crate::{CellRun, Interpreter};

/// How often a running cell checks for a stop request: well under the
/// 100 ms an interrupt may take.
const STOP_POLL: Duration = Duration::from_millis(5);

/// What the plugin needs of a cell.
pub struct CellCode<'a> {
    /// The cell's code.
    pub code: &'a str,
    /// The notebook line of the code's first line.
    pub first_line: u32,
    /// Names the cell reads.
    pub refs: &'a [String],
    /// Public names the cell defines.
    pub defs: &'a [String],
    /// Private names the cell defines.
    pub private_defs: &'a [String],
}

/// The host's globals, as far as Python values go.
pub trait HostGlobals {
    /// The Python object bound to `name`, when the host has one.
    fn get(&self, name: &str) -> Option<Py<PyAny>>;
    /// Binds `name` to a Python object.
    fn set(&mut self, name: &str, value: Py<PyAny>);
}

/// Runs `cell` from `notebook` (its path, for tracebacks) against `host`.
///
/// `stop` is polled while the code runs; when it turns true the code gets
/// `KeyboardInterrupt`, repeated until it returns (a blocking C call first
/// returns, then the next bytecode raises).
pub fn run_cell(
    interpreter: &'static Interpreter,
    notebook: &str,
    cell: &CellCode<'_>,
    host: &mut dyn HostGlobals,
    stop: &(dyn Fn() -> bool + Sync),
) -> CellRun {
    for name in cell.refs {
        if let Some(value) = host.get(name) {
            interpreter.set_global(name, &value);
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let run = std::thread::scope(|scope| {
        let watcher_done = done.clone();
        let interrupter = interpreter.interrupter();
        scope.spawn(move || {
            while !watcher_done.load(Ordering::SeqCst) {
                if stop() {
                    interrupter.interrupt();
                }
                std::thread::sleep(STOP_POLL);
            }
        });
        let run = interpreter.run(cell.code, notebook, cell.first_line);
        done.store(true, Ordering::SeqCst);
        run
    });
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
