//! Core traits and types of the cellrun pipeline.
//!
//! A notebook is a list of [`Cell`]s compiled into a [`Notebook`]. Each run
//! of a cell goes through an [`Evaluator`]: the setups of its
//! [`Lifecycle`]s, the body run by an [`Executor`], then the teardowns. The
//! result is a [`RunResult`]; the cell's definitions land in the
//! [`Globals`]. The built-in executor is [`DefaultExecutor`]; others are
//! chosen through an [`ExecutorRegistry`].
//!
//! This crate does no IO and knows nothing of FFI, graphs or the CLI: the
//! `scheduler` crate orders cells, `executor-abi` carries these traits
//! across a stable ABI, and the `runner` binary reads files.
//!
//! # Design decisions
//! - [`Setup::Skip`] is a result, not an error: a cache hit is an expected
//!   way for a cell to finish, with a full result of its own.
//! - Cancellation is cooperative ([`CancelToken`]): a plugin boundary cannot
//!   be unwound through, so executors poll a flag instead.
//! - The cell language is Rhai. One engine is shared by every cell; cells
//!   are compiled once and their programs reused.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use executor_core::{CancelToken, CellSource, DefaultExecutor, Evaluator, Globals, Limits, Notebook};
//!
//! let limits = Limits::default();
//! let notebook = Notebook::compile(
//!     vec![
//!         CellSource::new("a", "let x = 20;", 2),
//!         CellSource::new("b", "x * 2 + 2", 4),
//!     ],
//!     &limits,
//! );
//! let evaluator = Evaluator::new(Arc::new(DefaultExecutor::new(&limits)), Vec::new());
//! let mut globals = Globals::new();
//! for cell in notebook.cells() {
//!     let result = evaluator.evaluate(cell, &mut globals, &CancelToken::new());
//!     assert!(result.is_ok());
//! }
//! assert_eq!(globals.get("x").unwrap().as_int(), Ok(20));
//! ```

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod analysis;
mod bounded;
mod cancel;
mod cell;
mod context;
mod default_executor;
mod evaluator;
mod executor;
mod foreign;
mod globals;
mod lang;
mod lifecycle;
mod notebook;
mod registry;
mod result;
#[cfg(test)]
mod testutil;
pub mod wire;

pub use crate::{
    cancel::{CancelToken, StopReason},
    cell::{Cell, CellId, CellNames},
    context::{Concurrency, RunContext, RunOutcome},
    default_executor::DefaultExecutor,
    evaluator::{panic_message, Evaluator},
    executor::Executor,
    foreign::{ForeignObject, ForeignValue},
    globals::Globals,
    lang::{Limits, CELL_THREAD_STACK},
    lifecycle::{Lifecycle, Setup},
    notebook::{AnalysedCell, CellSource, FnSource, Notebook, NotebookCompiler, PYTHON, RHAI},
    registry::{ExecutorFactory, ExecutorRegistry, NameFilter, Selection},
    result::{CellError, Display, ErrorKind, RunResult, Status},
};
