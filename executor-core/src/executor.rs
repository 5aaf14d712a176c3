//! The [`Executor`] trait: what runs a cell's body.

use crate::{CancelToken, Cell, Globals, RunResult};

/// Runs the body of one [`Cell`] against the notebook's [`Globals`].
///
/// The [`Evaluator`](crate::Evaluator) calls `execute` once per evaluation of
/// a cell, after every lifecycle setup completed without a skip. Calls for
/// independent cells may come from different threads, one cell at a time
/// per `Globals`.
///
/// An executor is responsible for:
/// - reading the cell's inputs from `globals` and writing the names the cell
///   defines back into it, including the definitions made before a failure;
/// - capturing what the cell prints into [`RunResult::stdout`];
/// - turning every failure of the body into [`RunResult::error`]: the only
///   way out of `execute` is a result.
///
/// # Cancellation
/// Poll `token` between units of work and return promptly once it is
/// stopped, with an error of kind `interrupted` or `timeout` as the
/// [`StopReason`](crate::StopReason) says.
///
/// # Panics
/// Never panic. A panic in an in-process executor is caught by the evaluator
/// and reported as an `internal` error; across the plugin boundary the SDK
/// turns it into a `plugin` error.
pub trait Executor: Send + Sync {
    /// The executor's name, as shown to users and in `run_started`.
    fn name(&self) -> &str;

    /// Runs `cell`'s body and reports its result.
    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult;
}
