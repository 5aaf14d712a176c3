//! The [`Lifecycle`] trait: code that wraps each cell's body.

use crate::{Cell, CellError, Globals, RunContext, RunOutcome, RunResult};

/// What a lifecycle's setup decided.
///
/// `Skip` is an expected outcome, not an error: a cache hit, or a strict
/// check that already knows the answer, supplies the cell's whole result and
/// the body does not run.
#[derive(Debug)]
pub enum Setup {
    /// Go on with the next lifecycle, then the body.
    Continue,
    /// Do not run the body; this is the cell's result.
    Skip(RunResult),
}

/// Setup and teardown around each cell's body, composed by the
/// [`Evaluator`](crate::Evaluator).
///
/// The evaluator guarantees, for one evaluation of a cell:
/// - `setup` is called at most once, in composition order, and only if every
///   earlier lifecycle's setup returned [`Setup::Continue`];
/// - `teardown` is called exactly once if and only if this lifecycle's setup
///   completed (returned `Continue` or `Skip`), in reverse composition order,
///   with the final result of the evaluation so far.
///
/// Calls for different cells may interleave when a parallel scheduler runs:
/// keep per-cell state keyed by the cell's id.
///
/// Cells that never reach the evaluator (cancelled, interrupted before they
/// ran, or failed statically: syntax, cycle, multiple definitions) are
/// reported through [`Lifecycle::cell_not_run`] instead, once each.
///
/// # Errors
/// A setup error stops the chain: the body does not run and this lifecycle
/// is not torn down. A teardown error replaces the result's error; the
/// replaced error is logged.
///
/// # Overriding default impls
/// The run-level calls and [`Lifecycle::cell_not_run`] do nothing.
pub trait Lifecycle: Send + Sync {
    /// The lifecycle's name, as shown to users and in `run_started`.
    fn name(&self) -> &str;

    /// Prepares `cell`'s evaluation, or skips its body.
    fn setup(&self, cell: &Cell, globals: &mut Globals) -> Result<Setup, CellError>;

    /// Finishes `cell`'s evaluation, seeing its `result`.
    fn teardown(
        &self,
        cell: &Cell,
        globals: &mut Globals,
        result: &RunResult,
    ) -> Result<(), CellError>;

    /// `cell` did not run; `result` says why (its error's kind is
    /// `cancelled`, `interrupted` or a static kind).
    fn cell_not_run(&self, cell: &Cell, result: &RunResult) {
        let _ = (cell, result);
    }

    /// A run is about to start.
    fn run_started(&self, run: &RunContext) {
        let _ = run;
    }

    /// The run ended as `outcome` says.
    fn run_finished(&self, outcome: &RunOutcome) {
        let _ = outcome;
    }
}
