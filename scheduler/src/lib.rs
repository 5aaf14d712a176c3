//! Ordering and running the cells of a notebook.
//!
//! [`DataflowGraph`] holds the edges between cells (parent defines a name
//! the child reads) and finds cycles and names defined twice. A [`Plan`]
//! picks the cells of a run and their queue order; a [`Scheduler`] hands
//! them out and cancels the descendants of a failure. [`Pipeline::run`] is
//! the run loop: hooks, lifecycles and executor for every cell.
//!
//! This crate sees only `executor_core` traits: it never learns whether an
//! executor came from a plugin.

#![warn(missing_docs)]

mod control;
mod graph;
mod hooks;
mod queue;
mod ready;
mod run;
mod shared;

pub use crate::{
    control::{CellMemory, MemoryLimit, RunControl},
    graph::{DataflowGraph, StaticError},
    hooks::{CellOutcome, Hooks, Priority, RunInfo, RunSummary},
    queue::{Scheduler, SequentialScheduler},
    ready::ReadyScheduler,
    run::{run_context, Pipeline, Plan},
};
