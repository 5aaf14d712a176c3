//! The run loop: the pipeline every cell of a run goes through.

use std::time::{Duration, Instant};

use executor_core::{
    Cell, CellError, CellId, ErrorKind, Evaluator, Globals, Notebook, RunContext, RunOutcome,
    RunResult, Status, StopReason,
};

use crate::{
    CellOutcome, DataflowGraph, Hooks, RunControl, RunInfo, RunSummary, Scheduler, StaticError,
};

/// The cells of one run and the static errors among them.
#[derive(Clone, Debug)]
pub struct Plan {
    order: Vec<CellId>,
    errors: Vec<Option<CellError>>,
}

impl Plan {
    /// Plans a run of `selected` cells with their ancestors and descendants,
    /// or of every cell when `selected` is `None`.
    ///
    /// Cells with a static error (syntax, multiple definitions, cycle) come
    /// first, in file order; the others follow in topological order, the
    /// earliest in the file first among the ready ones.
    pub fn new(notebook: &Notebook, graph: &DataflowGraph, selected: Option<&[CellId]>) -> Plan {
        let members: Vec<CellId> = match selected {
            None => notebook.cells().iter().map(Cell::id).collect(),
            Some(seeds) => {
                let mut members = graph.ancestors(seeds);
                members.extend(graph.descendants(seeds));
                members
            }
        };
        Plan::of_members(notebook, graph, &members)
    }

    /// Plans a run of exactly `members` (any order, duplicates allowed), in
    /// the same queue order as [`Plan::new`]: a re-run of changed cells and
    /// their descendants, say, against the globals an earlier run left.
    ///
    /// # Panics
    /// When a member is not in `graph`.
    pub fn of_members(notebook: &Notebook, graph: &DataflowGraph, members: &[CellId]) -> Plan {
        let errors = static_errors(notebook, graph);
        let errored: Vec<CellId> = members
            .iter()
            .copied()
            .filter(|id| errors[id.index()].is_some())
            .collect();
        let order = graph.run_order(members, &errored);
        Plan { order, errors }
    }

    /// The cells of the run, in queue order.
    pub fn order(&self) -> &[CellId] {
        &self.order
    }

    /// The static error of `cell`, if it has one.
    pub fn static_error(&self, cell: CellId) -> Option<&CellError> {
        self.errors[cell.index()].as_ref()
    }
}

/// Each cell's static error: syntax first, then multiple definitions, then cycle.
fn static_errors(notebook: &Notebook, graph: &DataflowGraph) -> Vec<Option<CellError>> {
    let name = |id: CellId| notebook.cell(id).name();
    let mut errors: Vec<Option<CellError>> = notebook
        .cells()
        .iter()
        .map(|cell| cell.syntax_error().cloned())
        .collect();
    for (id, error) in graph.static_errors() {
        let slot = &mut errors[id.index()];
        if slot.is_some() {
            continue;
        }
        let cell = notebook.cell(*id);
        let at_cell = Some(cell.first_line());
        *slot = Some(match error {
            StaticError::MultipleDefinitions { name: def, others } => {
                let others: Vec<String> = others
                    .iter()
                    .map(|other| format!("`{}`", name(*other)))
                    .collect();
                CellError::new(
                    ErrorKind::MultipleDefinitions,
                    format!("`{def}` is also defined by {}", others.join(", ")),
                )
                .at(cell.def_line(def).or(at_cell), None)
            }
            StaticError::Cycle { cycle } => {
                let mut path: Vec<&str> = cycle.iter().map(|id| name(*id)).collect();
                path.push(path[0]);
                CellError::new(
                    ErrorKind::Cycle,
                    format!("dependency cycle: {}", path.join(" -> ")),
                )
                .at(at_cell, None)
            }
        });
    }
    errors
}

/// The [`RunContext`] of a run of `notebook`: its cells' names, parents and
/// language; the caller fills in the run's id, the notebook's path and hash,
/// and the number of jobs.
pub fn run_context(notebook: &Notebook, graph: &DataflowGraph) -> RunContext {
    RunContext {
        language: notebook.language(),
        jobs: 1,
        cell_names: notebook
            .cells()
            .iter()
            .map(|cell| cell.name().to_owned())
            .collect(),
        parents: notebook
            .cells()
            .iter()
            .map(|cell| graph.parents(cell.id()).to_vec())
            .collect(),
        ..RunContext::default()
    }
}

/// Everything a run needs besides its queue and globals.
pub struct Pipeline<'a> {
    /// The notebook.
    pub notebook: &'a Notebook,
    /// Its dataflow graph.
    pub graph: &'a DataflowGraph,
    /// The plan of this run.
    pub plan: &'a Plan,
    /// Lifecycles and executor.
    pub evaluator: &'a Evaluator,
    /// Interrupts and timeouts.
    pub control: &'a RunControl,
    /// What executors and lifecycles are told about the run.
    pub context: &'a RunContext,
}

impl Pipeline<'_> {
    /// Runs the planned cells through the pipeline:
    /// scheduling, pending hooks, lifecycle setups, the body, lifecycle
    /// teardowns, completion hooks; then the on-finish hooks, always.
    ///
    /// A failing cell cancels its queued descendants and the run goes on; an
    /// interrupt stops the running cell, cancels its descendants, halts the
    /// queue and reports every cell that did not run as interrupted.
    ///
    /// The executor and lifecycles are told when the run starts (before the
    /// preparation hooks) and when it finishes (before the on-finish hooks),
    /// and lifecycles of each cell that did not run.
    pub fn run(
        &self,
        scheduler: &mut dyn Scheduler,
        hooks: &mut Hooks,
        globals: &mut Globals,
    ) -> RunSummary {
        let _span = tracing::info_span!("run", n_cells = self.plan.order().len()).entered();
        let mut summary = RunSummary::default();
        self.evaluator.run_started(self.context);
        hooks.preparation(&RunInfo {
            notebook: self.notebook,
            graph: self.graph,
            order: self.plan.order(),
        });
        // Cells with static errors head the queue. Report them all before
        // cancelling anything, so that one of them (a cycle member, a
        // conflicting definer) is never reported as another's cancellation.
        let n_static = self
            .plan
            .order()
            .iter()
            .take_while(|id| self.plan.static_error(**id).is_some())
            .count();
        let mut failed_statically = Vec::with_capacity(n_static);
        while failed_statically.len() < n_static {
            let Some(id) = scheduler.next() else { break };
            let cell = self.notebook.cell(id);
            let error = self.plan.static_error(id).cloned().unwrap_or_else(|| {
                CellError::new(
                    ErrorKind::Internal,
                    "static error expected at the head of the queue",
                )
            });
            let result = RunResult::failed(error);
            report(
                self.evaluator,
                hooks,
                &mut summary,
                cell,
                Status::Error,
                &result,
                Duration::ZERO,
                false,
            );
            scheduler.complete(id);
            failed_statically.push(cell);
        }
        for cell in failed_statically {
            self.cancel(scheduler, hooks, &mut summary, cell, "failed");
        }
        loop {
            if self.control.is_interrupted() && !scheduler.is_interrupted() {
                scheduler.interrupt();
            }
            let Some(id) = scheduler.next() else { break };
            let cell = self.notebook.cell(id);
            let (result, status, duration, evaluated) = match self.plan.static_error(id) {
                Some(error) => (
                    RunResult::failed(error.clone()),
                    Status::Error,
                    Duration::ZERO,
                    false,
                ),
                None => {
                    hooks.pre_execution(cell);
                    let token = self.control.begin();
                    let start = Instant::now();
                    let mut result = self.evaluator.evaluate(cell, globals, &token);
                    let duration = start.elapsed();
                    self.control.end(&token);
                    if let Some(reason) = token.reason() {
                        // A stop is never ok: the executor may have missed
                        // it (a plugin, a native call), or the limits were
                        // crossed by the end.
                        if result.error.is_none() {
                            let stdout = std::mem::take(&mut result.stdout);
                            result = RunResult::failed(reason.cell_error());
                            result.stdout = stdout;
                        }
                        if reason == StopReason::MemoryLimit {
                            // What filled the memory would stop every later cell.
                            for def in cell.defs() {
                                globals.remove(def);
                            }
                        }
                    }
                    let mut status = Status::Ok;
                    if let Some(error) = &mut result.error {
                        self.sanitize(error);
                        self.blame_missing_name(cell, error);
                        // The status comes from what the run saw, not from
                        // what an executor or a lifecycle claims: only a
                        // real interrupt halts the run, and any other error
                        // cancels the cell's descendants.
                        status = if error.kind == ErrorKind::Interrupted
                            && token.reason() == Some(StopReason::Interrupted)
                        {
                            Status::Interrupted
                        } else {
                            Status::Error
                        };
                    }
                    (result, status, duration, true)
                }
            };
            report(
                self.evaluator,
                hooks,
                &mut summary,
                cell,
                status,
                &result,
                duration,
                evaluated,
            );
            match status {
                Status::Ok | Status::Cancelled => {}
                Status::Error => self.cancel(scheduler, hooks, &mut summary, cell, "failed"),
                Status::Interrupted => {
                    scheduler.interrupt();
                    self.cancel(scheduler, hooks, &mut summary, cell, "was interrupted");
                }
            }
            scheduler.complete(id);
        }
        if scheduler.is_interrupted() || self.control.is_interrupted() {
            let pending = scheduler.pending();
            // A Ctrl-C after the last cell interrupted nothing.
            summary.was_interrupted = summary.interrupted > 0 || !pending.is_empty();
            let result = RunResult::failed(CellError::new(
                ErrorKind::Interrupted,
                "not run: the run was interrupted",
            ));
            for id in pending {
                let cell = self.notebook.cell(id);
                report(
                    self.evaluator,
                    hooks,
                    &mut summary,
                    cell,
                    Status::Interrupted,
                    &result,
                    Duration::ZERO,
                    false,
                );
            }
        }
        self.evaluator.run_finished(&RunOutcome {
            ok: summary.ok,
            error: summary.error,
            cancelled: summary.cancelled,
            interrupted: summary.interrupted,
            was_interrupted: summary.was_interrupted,
        });
        hooks.finish(&summary);
        summary
    }

    /// Cancels the queued descendants of `raiser` and reports each of them.
    fn cancel(
        &self,
        scheduler: &mut dyn Scheduler,
        hooks: &mut Hooks,
        summary: &mut RunSummary,
        raiser: &Cell,
        what: &str,
    ) {
        let cancelled = scheduler.cancel(raiser.id());
        if cancelled.is_empty() {
            return;
        }
        let result = RunResult::failed(
            CellError::new(
                ErrorKind::Cancelled,
                format!("not run: ancestor `{}` {what}", raiser.name()),
            )
            .blaming(raiser.id()),
        );
        for id in &cancelled {
            let cell = self.notebook.cell(*id);
            report(
                self.evaluator,
                hooks,
                summary,
                cell,
                Status::Cancelled,
                &result,
                Duration::ZERO,
                false,
            );
        }
        summary.cancellations.push((raiser.id(), cancelled));
    }

    /// Drops the parts of an error that point nowhere (a plugin may send
    /// anything): a blamed cell outside the notebook, a line 0.
    fn sanitize(&self, error: &mut CellError) {
        if error
            .blamed
            .is_some_and(|id| id.index() >= self.notebook.len())
        {
            error.blamed = None;
        }
        if error.line == Some(0) {
            error.line = None;
            error.column = None;
        }
    }

    /// Points an undefined-name error at the cell that should define the name.
    fn blame_missing_name(&self, cell: &Cell, error: &mut CellError) {
        let Some(name) = error.missing_name.as_deref() else {
            return;
        };
        if let Some(definer) = self
            .graph
            .definers(name)
            .iter()
            .find(|id| **id != cell.id())
        {
            error.message = format!(
                "{}; it was expected to be defined by cell `{}`",
                error.message,
                self.notebook.cell(*definer).name()
            );
            error.blamed = Some(*definer);
        } else if let Some(owner) = self.notebook.cells().iter().find(|other| {
            other.id() != cell.id() && other.private_defs().iter().any(|def| def == name)
        }) {
            error.message = format!(
                "{}; names starting with `_` are private to the cell that defines them (`{}`)",
                error.message,
                owner.name()
            );
            error.blamed = Some(owner.id());
        }
    }
}

/// Counts a cell's final status and notifies the completion hooks, and the
/// lifecycles when the cell did not run.
#[allow(clippy::too_many_arguments)]
fn report(
    evaluator: &Evaluator,
    hooks: &mut Hooks,
    summary: &mut RunSummary,
    cell: &Cell,
    status: Status,
    result: &RunResult,
    duration: Duration,
    evaluated: bool,
) {
    match status {
        Status::Ok => summary.ok += 1,
        Status::Error => summary.error += 1,
        Status::Cancelled => summary.cancelled += 1,
        Status::Interrupted => summary.interrupted += 1,
    }
    if !evaluated {
        evaluator.cell_not_run(cell, result);
    }
    hooks.post_execution(&CellOutcome {
        cell,
        status,
        result,
        duration,
        evaluated,
    });
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use executor_core::{CancelToken, CellSource, Executor, Limits};

    use super::*;
    use crate::SequentialScheduler;

    /// An executor whose results claim whatever the test says, like a
    /// misbehaving plugin.
    struct Claims(CellError);

    impl Executor for Claims {
        fn name(&self) -> &str {
            "claims"
        }

        fn execute(&self, cell: &Cell, _globals: &mut Globals, _token: &CancelToken) -> RunResult {
            if cell.name() == "parent" {
                RunResult::failed(self.0.clone())
            } else {
                RunResult::default()
            }
        }
    }

    /// A notebook of `(name, code)` cells, one marker line before each.
    fn notebook(cells: &[(&str, &str)]) -> Notebook {
        let sources = cells
            .iter()
            .enumerate()
            .map(|(index, (name, code))| CellSource {
                name: (*name).into(),
                code: (*code).into(),
                first_line: 2 * index as u32 + 2,
                options: Vec::new(),
            })
            .collect();
        Notebook::compile(sources, &Limits::default())
    }

    /// Runs `parent` → `child`, plus an unrelated `other`, with `claim` as
    /// the parent's error; returns each cell's status and error.
    fn run_with_claim(claim: CellError) -> Vec<(String, Status, Option<CellError>)> {
        let notebook = notebook(&[("parent", "let x = 1;"), ("child", "x + 1"), ("other", "2")]);
        let graph = DataflowGraph::of(&notebook);
        let plan = Plan::new(&notebook, &graph, None);
        let evaluator = Evaluator::new(Arc::new(Claims(claim)), Vec::new());
        let control = RunControl::new(None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = Hooks::new();
        let record = seen.clone();
        hooks.on_post_execution(crate::Priority::Normal, move |outcome| {
            record.lock().unwrap().push((
                outcome.cell.name().to_owned(),
                outcome.status,
                outcome.result.error.clone(),
            ));
        });
        let pipeline = Pipeline {
            notebook: &notebook,
            graph: &graph,
            plan: &plan,
            evaluator: &evaluator,
            control: &control,
            context: &RunContext::default(),
        };
        let mut scheduler = SequentialScheduler::new(&graph, plan.order().to_vec());
        let summary = pipeline.run(&mut scheduler, &mut hooks, &mut Globals::new());
        assert!(
            !summary.was_interrupted,
            "only a real interrupt halts the run"
        );
        let seen = seen.lock().unwrap().clone();
        seen
    }

    fn status_of(seen: &[(String, Status, Option<CellError>)], name: &str) -> Status {
        seen.iter()
            .find(|(cell, ..)| cell == name)
            .map(|(_, status, _)| *status)
            .unwrap()
    }

    #[test]
    fn a_claimed_interrupt_or_cancellation_is_an_error_that_cancels_descendants() {
        for kind in [ErrorKind::Interrupted, ErrorKind::Cancelled] {
            let seen = run_with_claim(CellError::new(kind, "claimed"));
            assert_eq!(status_of(&seen, "parent"), Status::Error, "{kind}");
            assert_eq!(status_of(&seen, "child"), Status::Cancelled, "{kind}");
            assert_eq!(status_of(&seen, "other"), Status::Ok, "{kind}");
        }
    }

    #[test]
    fn a_plan_of_members_runs_exactly_those_cells_errors_first() {
        let notebook = notebook(&[
            ("a", "let x = 1;"),
            ("b", "let y = x;"),
            ("c", "let z = y;"),
            ("d", "let"),
        ]);
        let graph = DataflowGraph::of(&notebook);
        let ids = |indices: &[usize]| -> Vec<CellId> {
            indices.iter().map(|i| CellId::new(*i)).collect()
        };
        let plan = Plan::of_members(&notebook, &graph, &ids(&[2, 1, 3, 2]));
        assert_eq!(plan.order(), ids(&[3, 1, 2]));
        assert!(plan.static_error(CellId::new(3)).is_some());
        assert!(plan.static_error(CellId::new(0)).is_none());
    }

    #[test]
    fn errors_pointing_outside_the_notebook_are_dropped() {
        let mut claim = CellError::new(ErrorKind::Plugin, "bad").at(Some(0), Some(3));
        claim.blamed = Some(CellId::new(999));
        let seen = run_with_claim(claim);
        let error = seen[0].2.clone().unwrap();
        assert_eq!((error.line, error.column, error.blamed), (None, None, None));
    }

    /// Records the run-level calls and the cells it hears did not run.
    #[derive(Default)]
    struct Listener {
        log: Mutex<Vec<String>>,
    }

    impl executor_core::Lifecycle for Listener {
        fn name(&self) -> &str {
            "listener"
        }
        fn setup(
            &self,
            _cell: &Cell,
            _globals: &mut Globals,
        ) -> Result<executor_core::Setup, CellError> {
            Ok(executor_core::Setup::Continue)
        }
        fn teardown(
            &self,
            cell: &Cell,
            _globals: &mut Globals,
            _result: &RunResult,
        ) -> Result<(), CellError> {
            self.log
                .lock()
                .unwrap()
                .push(format!("ran {}", cell.name()));
            Ok(())
        }
        fn cell_not_run(&self, cell: &Cell, result: &RunResult) {
            let kind = result
                .error
                .as_ref()
                .map_or("none", |error| error.kind.as_str());
            self.log
                .lock()
                .unwrap()
                .push(format!("not run {} ({kind})", cell.name()));
        }
        fn run_started(&self, run: &RunContext) {
            let parents: Vec<&str> = run.parent_names(CellId::new(1)).collect();
            self.log
                .lock()
                .unwrap()
                .push(format!("start {} {parents:?}", run.run_id));
        }
        fn run_finished(&self, outcome: &RunOutcome) {
            self.log.lock().unwrap().push(format!(
                "finish ok={} error={} cancelled={}",
                outcome.ok, outcome.error, outcome.cancelled
            ));
        }
    }

    #[test]
    fn lifecycles_hear_of_the_run_and_of_cells_that_did_not_run() {
        let sources = [
            ("a", "let x = 1;"),
            ("b", "let y = x + z;"),
            ("c", "y"),
            ("d", "let = ;"),
        ]
        .iter()
        .enumerate()
        .map(|(index, (name, code))| CellSource::new(*name, *code, index as u32 + 1))
        .collect();
        let notebook = Notebook::compile(sources, &Limits::default());
        let graph = DataflowGraph::of(&notebook);
        let plan = Plan::new(&notebook, &graph, None);
        let listener = Arc::new(Listener::default());
        let evaluator = Evaluator::new(
            Arc::new(executor_core::DefaultExecutor::new(&Limits::default())),
            vec![listener.clone()],
        );
        let context = RunContext {
            run_id: "r1".into(),
            ..run_context(&notebook, &graph)
        };
        let pipeline = Pipeline {
            notebook: &notebook,
            graph: &graph,
            plan: &plan,
            evaluator: &evaluator,
            control: &RunControl::new(None),
            context: &context,
        };
        let mut scheduler = SequentialScheduler::new(&graph, plan.order().to_vec());
        pipeline.run(&mut scheduler, &mut Hooks::new(), &mut Globals::new());
        assert_eq!(
            *listener.log.lock().unwrap(),
            [
                r#"start r1 ["a"]"#,
                "not run d (syntax)",
                "ran a",
                "ran b",
                "not run c (cancelled)",
                "finish ok=1 error=2 cancelled=1",
            ]
        );
    }
}
