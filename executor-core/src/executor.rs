//! The [`Executor`] trait: what runs a cell's body.

use crate::{
    CancelToken, Cell, Concurrency, ForeignValue, Globals, RunContext, RunOutcome, RunResult, RHAI,
};

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
/// # Deadline
/// With a time limit, `token` carries the cell's deadline
/// ([`CancelToken::deadline`]); the watchdog stops the token when it passes.
///
/// # Run-level calls
/// [`Executor::run_started`] comes once before the first cell of a run and
/// [`Executor::run_finished`] once after the last, before the run's summary
/// is printed, so warnings logged there reach the output in time.
///
/// # Panics
/// Never panic. A panic in an in-process executor is caught by the evaluator
/// and reported as an `internal` error; across the plugin boundary the SDK
/// turns it into a `plugin` error.
///
/// # Overriding default impls
/// An executor runs Rhai cells one at a time unless it says otherwise
/// ([`Executor::languages`], [`Executor::concurrency`]); the run-level calls
/// do nothing; it decodes no plugin-owned value
/// ([`Executor::decode_foreign`]). An executor wrapping another forwards
/// `decode_foreign` to it.
pub trait Executor: Send + Sync {
    /// The executor's name, as shown to users and in `run_started`.
    fn name(&self) -> &str;

    /// Runs `cell`'s body and reports its result.
    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult;

    /// The cell languages this executor runs ([`RHAI`], [`PYTHON`](crate::PYTHON), ...).
    fn languages(&self) -> Vec<String> {
        vec![RHAI.to_owned()]
    }

    /// Whether `execute` may be called for several cells at once.
    fn concurrency(&self) -> Concurrency {
        Concurrency::Sequential
    }

    /// A run is about to start.
    fn run_started(&self, run: &RunContext) {
        let _ = run;
    }

    /// The run ended as `outcome` says.
    fn run_finished(&self, outcome: &RunOutcome) {
        let _ = outcome;
    }

    /// The value that `data`, an encoding of a value of type `type_name`
    /// owned by plugin `owner` ([`ForeignObject::encode`]), stands for, made
    /// by the executor that owns such values; `None` when this executor does
    /// not own values of `owner`. The cache reads its entries through it.
    ///
    /// # Errors
    /// The owner's reason when it cannot decode `data`.
    ///
    /// [`ForeignObject::encode`]: crate::ForeignObject::encode
    fn decode_foreign(
        &self,
        owner: &str,
        type_name: &str,
        data: &[u8],
    ) -> Option<Result<ForeignValue, String>> {
        let _ = (owner, type_name, data);
        None
    }
}
