//! The `python` executor plugin: runs marimo notebook cells in an embedded
//! CPython, through PyO3.
//!
//! [`Interpreter`] starts the interpreter a user expects (the active virtual
//! environment's, else `python3` on `PATH`, or `--python PATH`) once per
//! process, with one globals dictionary shared by every cell, and runs a
//! cell's code with its output, captured prints and exception.
//! The `cellrun` binary never links libpython: only this plugin does, so a
//! Rhai notebook runs on a machine without Python.

pub mod ahead;
mod cells;
mod executor;
mod interpreter;
pub mod memory;
mod watcher;

pub use crate::executor::{PythonPlugin, PythonValues};

executor_abi::export_executor!(PythonPlugin);
pub use crate::cells::{run_cell, warm_up, CellCode, HostGlobals};
pub use crate::interpreter::{
    choose_python, CellRun, Description, Failure, FailureKind, Interpreter, Interrupter,
    LINKED_VERSION,
};
pub use crate::watcher::StopCheck;

#[cfg(test)]
mod tests;
