//! The [`Evaluator`]: lifecycle setups, the executor, lifecycle teardowns.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::{
    CancelToken, Cell, CellError, ErrorKind, Executor, Globals, Lifecycle, RunContext, RunOutcome,
    RunResult, Setup,
};

/// Composes lifecycles around an executor, with marimo's rules:
///
/// 1. Setups run in composition order. A [`Setup::Skip`] stops the chain and
///    its result becomes the cell's result; the body does not run. A setup
///    error stops the chain too: the body does not run, and the failing
///    lifecycle is not torn down.
/// 2. Otherwise the executor runs the body.
/// 3. Teardowns run in reverse order over every lifecycle whose setup
///    completed, the skipping one included, all of them even when one fails.
///    A teardown error replaces the result's error (the replaced error is
///    logged); when several fail, the last to run wins.
///
/// A panic in a lifecycle or the executor is caught and becomes an
/// `internal` error of the cell, handled by the same rules.
pub struct Evaluator {
    executor: Arc<dyn Executor>,
    lifecycles: Vec<Arc<dyn Lifecycle>>,
}

impl Evaluator {
    /// An evaluator running bodies with `executor` inside `lifecycles` (outermost first).
    pub fn new(executor: Arc<dyn Executor>, lifecycles: Vec<Arc<dyn Lifecycle>>) -> Evaluator {
        Evaluator {
            executor,
            lifecycles,
        }
    }

    /// The executor that runs bodies.
    pub fn executor(&self) -> &Arc<dyn Executor> {
        &self.executor
    }

    /// The lifecycles, outermost first.
    pub fn lifecycles(&self) -> &[Arc<dyn Lifecycle>] {
        &self.lifecycles
    }

    /// Tells the executor, then each lifecycle, that a run starts.
    ///
    /// A panic in one is logged and the others are still told.
    pub fn run_started(&self, run: &RunContext) {
        let executor = &self.executor;
        notify(executor.name(), "run_started", || executor.run_started(run));
        for lifecycle in &self.lifecycles {
            notify(lifecycle.name(), "run_started", || {
                lifecycle.run_started(run)
            });
        }
    }

    /// Tells each lifecycle, innermost first, then the executor, that the run ended.
    ///
    /// A panic in one is logged and the others are still told.
    pub fn run_finished(&self, outcome: &RunOutcome) {
        for lifecycle in self.lifecycles.iter().rev() {
            notify(lifecycle.name(), "run_finished", || {
                lifecycle.run_finished(outcome)
            });
        }
        let executor = &self.executor;
        notify(executor.name(), "run_finished", || {
            executor.run_finished(outcome)
        });
    }

    /// Tells each lifecycle that `cell` did not run, with the result saying why.
    pub fn cell_not_run(&self, cell: &Cell, result: &RunResult) {
        for lifecycle in &self.lifecycles {
            notify(lifecycle.name(), "cell_not_run", || {
                lifecycle.cell_not_run(cell, result)
            });
        }
    }

    /// Evaluates `cell` and returns its final result.
    pub fn evaluate(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        let mut completed = 0;
        let mut result = None;
        for lifecycle in &self.lifecycles {
            let setup = guard(lifecycle.name(), "setup", || lifecycle.setup(cell, globals));
            match setup {
                Ok(Setup::Continue) => completed += 1,
                Ok(Setup::Skip(skipped)) => {
                    completed += 1;
                    result = Some(skipped);
                    break;
                }
                Err(error) => {
                    result = Some(RunResult::failed(error));
                    break;
                }
            }
        }
        let mut result = result.unwrap_or_else(|| {
            let executor = &self.executor;
            guard(executor.name(), "execute", || {
                Ok(executor.execute(cell, globals, token))
            })
            .unwrap_or_else(RunResult::failed)
        });
        for lifecycle in self.lifecycles[..completed].iter().rev() {
            let teardown = guard(lifecycle.name(), "teardown", || {
                lifecycle.teardown(cell, globals, &result)
            });
            if let Err(error) = teardown {
                if let Some(replaced) = &result.error {
                    tracing::warn!(
                        lifecycle = lifecycle.name(),
                        replaced = %replaced,
                        "teardown error replaces the cell's error"
                    );
                }
                result.error = Some(error);
            }
        }
        result
    }
}

/// Runs `f`, turning a panic into an `internal` error naming `who` and `what`.
fn guard<T>(
    who: &str,
    what: &str,
    f: impl FnOnce() -> Result<T, CellError>,
) -> Result<T, CellError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let reason = panic_message(payload.as_ref());
        Err(CellError::new(
            ErrorKind::Internal,
            format!("`{who}` panicked in {what}: {reason}"),
        ))
    })
}

/// Runs a notification, logging a panic instead of letting it through.
fn notify(who: &str, what: &str, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        tracing::warn!(
            plugin = who,
            "`{who}` panicked in {what}: {}",
            panic_message(payload.as_ref())
        );
    }
}

/// The text of a panic payload, when it has one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::testutil::{one_cell, Recorder, Script};

    /// Evaluates a one-cell notebook with lifecycles scripted by `scripts`,
    /// returning the call log and the final result.
    fn check(scripts: &[(&'static str, Script)], body_fails: bool) -> (Vec<String>, RunResult) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let lifecycles: Vec<Arc<dyn Lifecycle>> = scripts
            .iter()
            .map(|(name, script)| {
                Arc::new(Recorder::new(name, script.clone(), log.clone())) as Arc<dyn Lifecycle>
            })
            .collect();
        let executor = Arc::new(crate::testutil::RecordingExecutor {
            log: log.clone(),
            fails: body_fails,
        });
        let evaluator = Evaluator::new(executor, lifecycles);
        let notebook = one_cell("let x = 1;");
        let result = evaluator.evaluate(
            &notebook.cells()[0],
            &mut Globals::new(),
            &CancelToken::new(),
        );
        let log = log.lock().unwrap().clone();
        (log, result)
    }

    fn message(result: &RunResult) -> Option<&str> {
        result.error.as_ref().map(|error| error.message.as_str())
    }

    #[test]
    fn setups_in_order_body_then_teardowns_in_reverse() {
        let ok = Script::default();
        let (log, result) = check(&[("A", ok.clone()), ("B", ok.clone()), ("C", ok)], false);
        assert_eq!(
            log,
            [
                "setup A",
                "setup B",
                "setup C",
                "body",
                "teardown C",
                "teardown B",
                "teardown A"
            ]
        );
        assert!(result.is_ok());
    }

    #[test]
    fn teardowns_see_the_final_result() {
        let ok = Script::default();
        let (log, _) = check(&[("A", ok.clone()), ("B", ok)], true);
        assert_eq!(
            log,
            [
                "setup A",
                "setup B",
                "body",
                "teardown B (saw body failed)",
                "teardown A (saw body failed)"
            ]
        );
    }

    #[test]
    fn skip_stops_the_chain_and_the_body_and_is_torn_down() {
        let skip = Script {
            skip_with: Some(42),
            ..Script::default()
        };
        let (log, result) = check(&[("A", skip), ("B", Script::default())], false);
        assert_eq!(log, ["setup A", "teardown A"]);
        assert_eq!(
            result.output.as_int(),
            Ok(42),
            "the skip's result is the cell's result"
        );
        assert_eq!(
            result.stdout, "skipped by A\n",
            "every field of the skip's result is kept"
        );
    }

    #[test]
    fn setup_error_stops_the_chain_and_its_lifecycle_is_not_torn_down() {
        let fail = Script {
            setup_fails: true,
            ..Script::default()
        };
        let ok = Script::default();
        let (log, result) = check(&[("A", ok.clone()), ("B", fail), ("C", ok)], false);
        assert_eq!(
            log,
            ["setup A", "setup B", "teardown A (saw setup B failed)"]
        );
        assert_eq!(message(&result), Some("setup B failed"));
    }

    #[test]
    fn teardown_error_replaces_the_body_error() {
        let fail = Script {
            teardown_fails: true,
            ..Script::default()
        };
        let (log, result) = check(&[("A", fail)], true);
        assert_eq!(log, ["setup A", "body", "teardown A (saw body failed)"]);
        assert_eq!(message(&result), Some("teardown A failed"));
    }

    #[test]
    fn when_several_teardowns_fail_the_last_to_run_wins_and_all_run() {
        let fail = Script {
            teardown_fails: true,
            ..Script::default()
        };
        let (log, result) = check(
            &[("A", Script::default()), ("B", fail.clone()), ("C", fail)],
            false,
        );
        assert_eq!(
            log,
            [
                "setup A",
                "setup B",
                "setup C",
                "body",
                "teardown C",
                "teardown B (saw teardown C failed)",
                "teardown A (saw teardown B failed)"
            ]
        );
        assert_eq!(message(&result), Some("teardown B failed"));
    }

    #[test]
    fn teardown_error_on_success_makes_the_cell_fail() {
        let fail = Script {
            teardown_fails: true,
            ..Script::default()
        };
        let (_, result) = check(&[("A", fail)], false);
        assert_eq!(message(&result), Some("teardown A failed"));
    }

    #[test]
    fn panics_in_lifecycles_become_internal_errors_under_the_same_rules() {
        let panics = Script {
            setup_panics: true,
            ..Script::default()
        };
        let (log, result) = check(&[("A", Script::default()), ("B", panics)], false);
        assert_eq!(
            log,
            [
                "setup A",
                "setup B",
                "teardown A (saw `B` panicked in setup: boom)"
            ]
        );
        let error = result.error.unwrap();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert_eq!(error.message, "`B` panicked in setup: boom");
    }
}
