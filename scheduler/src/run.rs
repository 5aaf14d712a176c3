//! The run loop: the pipeline every cell of a run goes through.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use executor_core::{
    Cell, CellError, CellId, ErrorKind, Evaluator, Globals, Notebook, RunContext, RunOutcome,
    RunResult, Status, StopReason, CELL_THREAD_STACK,
};

use crate::shared::SharedInputs;
use crate::{
    CellOutcome, DataflowGraph, Hooks, ReadyScheduler, RunControl, RunInfo, RunSummary, Scheduler,
    StaticError,
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

    /// How many cells at the head of the order have a static error: they
    /// are reported before any cell runs.
    pub fn n_errored(&self) -> usize {
        self.order
            .iter()
            .take_while(|id| self.errors[id.index()].is_some())
            .count()
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
    /// Runs the planned cells through the pipeline, one at a time, in the
    /// scheduler's order:
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
        let mut summary = self.start(scheduler, hooks);
        loop {
            if self.control.is_interrupted() && !scheduler.is_interrupted() {
                scheduler.interrupt();
            }
            let Some(id) = scheduler.next() else { break };
            let cell = self.notebook.cell(id);
            if self.conclude_static_error(scheduler, hooks, &mut summary, cell) {
                continue;
            }
            hooks.pre_execution(cell);
            let token = self.control.begin();
            let start = Instant::now();
            let result = self.evaluator.evaluate(cell, globals, &token);
            let duration = start.elapsed();
            self.control.end_releasing(&token, |token| {
                if token.reason() == Some(StopReason::MemoryLimit) {
                    // What filled the memory would stop every later cell.
                    for def in cell.defs() {
                        globals.remove(def);
                    }
                }
            });
            let settled = self.settle(cell, result, token.reason(), duration);
            self.conclude(scheduler, hooks, &mut summary, cell, &settled);
        }
        self.finish(scheduler, hooks, summary, &[])
    }

    /// Runs the planned cells like [`Pipeline::run`], with up to
    /// `self.context.jobs` of them at a time.
    ///
    /// The calling thread coordinates: it owns the queue and the globals and
    /// calls every hook, so hooks never run concurrently and always on this
    /// thread. A cell handed to a worker thread (with a stack of
    /// [`CELL_THREAD_STACK`] bytes) is evaluated (lifecycle setups, body,
    /// teardowns) against globals of its own holding only what the cell
    /// may read (its refs and the globals its functions read, which its
    /// ancestors define) and its own earlier definitions; values are
    /// shared, not copied. When the cell finishes, its definitions are
    /// merged into `globals` (anything else it set is dropped). So a cell
    /// never sees a definition of a cell that is not its ancestor, whatever
    /// runs beside it.
    ///
    /// When one cell is ready and none is running, the coordinator
    /// evaluates it itself: nothing could start beside it, and a chain of
    /// cells pays no hand-over between threads. It also evaluates ready
    /// cells itself during a streak of cells that took less than
    /// [`QUICK_CELL`], about what handing a cell to a worker costs, with a
    /// few slower ones among them ([`Pace`] says when):
    /// parallelism cannot win on such cells, and a run of thousands of
    /// them would otherwise be slower than with one job. A cell taking
    /// [`SLOW_CELL`] or more ends the streak at once, so at most that one
    /// cell holds the others back; cells in between end it after a few in
    /// a row. The coordinator evaluates against the run's globals, scoped
    /// to what the cell may read ([`Globals::scope_to`]): no copy, and the
    /// same names visible as on a worker; as in a sequential run, what the
    /// cell sets beyond its definitions stays.
    ///
    /// The statuses are those of a sequential run: a failure cancels the
    /// queued descendants of the cell (running cells go on), an interrupt
    /// stops every running cell and reports the queued ones as
    /// interrupted; only the order of independent cells differs.
    pub fn run_parallel(
        &self,
        scheduler: &mut ReadyScheduler<'_>,
        hooks: &mut Hooks,
        globals: &mut Globals,
    ) -> RunSummary {
        let jobs = self.context.jobs.max(1);
        let _span = tracing::info_span!("run", n_cells = self.plan.order().len(), jobs).entered();
        let mut summary = self.start(scheduler, hooks);
        let mut shared = SharedInputs::new(self.notebook, self.plan.order());
        let mut n_concluded = 0;
        let mut record = |shared: &mut SharedInputs<'_>, summary: &RunSummary| {
            for (_, cancelled) in &summary.cancellations[n_concluded..] {
                cancelled.iter().for_each(|id| shared.conclude(*id));
            }
            n_concluded = summary.cancellations.len();
        };
        for &id in &self.plan.order()[..self.plan.n_errored()] {
            shared.conclude(id);
        }
        record(&mut shared, &summary);
        // Ready cells waiting for a shared value another cell reads first,
        // in file order.
        let mut waiting: Vec<CellId> = Vec::new();
        let exchange = Exchange::default();
        let mut pace = Pace::default();
        thread::scope(|scope| {
            let mut workers = 0;
            let mut max_in_flight = jobs;
            let mut in_flight = 0;
            loop {
                if self.control.is_interrupted() && !scheduler.is_interrupted() {
                    scheduler.interrupt();
                }
                // After an interrupt no cell starts, not even a waiting one.
                let mut candidates = if scheduler.is_interrupted() {
                    Vec::new().into_iter()
                } else {
                    std::mem::take(&mut waiting).into_iter()
                };
                let mut ran_here = false;
                while in_flight < max_in_flight {
                    let id = match candidates.next() {
                        Some(id) => id,
                        None if scheduler.is_interrupted() => break,
                        None => match scheduler.next() {
                            Some(id) => id,
                            None => break,
                        },
                    };
                    let cell = self.notebook.cell(id);
                    if self.conclude_static_error(scheduler, hooks, &mut summary, cell) {
                        shared.conclude(id);
                        record(&mut shared, &summary);
                        continue;
                    }
                    if !shared.may_start(cell, globals) {
                        let at = waiting.partition_point(|other| *other < id);
                        waiting.insert(at, id);
                        continue;
                    }
                    hooks.pre_execution(cell);
                    let alone =
                        (in_flight == 0 && !scheduler.has_ready()) || pace.cells_are_quick();
                    if !alone && workers < max_in_flight {
                        let spawned = thread::Builder::new()
                            .name(format!("cellrun-worker-{workers}"))
                            .stack_size(CELL_THREAD_STACK)
                            .spawn_scoped(scope, || self.work(&exchange));
                        match spawned {
                            Ok(_) => workers += 1,
                            Err(error) => {
                                tracing::warn!(%error, workers, "cannot start another worker thread; running fewer cells at a time");
                                max_in_flight = workers.max(1);
                            }
                        }
                    }
                    if alone || workers == 0 {
                        // Against the run's globals, scoped to what the
                        // cell may read: the workers' cells have globals of
                        // their own, so nothing else touches these.
                        globals.scope_to(cell.scope_names().clone());
                        let (result, duration, stop) = self.evaluate_in(cell, globals);
                        globals.unscope();
                        let evaluated = Evaluated {
                            cell: id,
                            result,
                            globals: None,
                            duration,
                            stop,
                        };
                        pace.saw(evaluated.duration);
                        self.merge(scheduler, hooks, &mut summary, globals, evaluated);
                        shared.conclude(id);
                        record(&mut shared, &summary);
                        // What the workers finished meanwhile may free
                        // cells to hand them.
                        ran_here = true;
                        break;
                    }
                    exchange.submit(Job {
                        cell: id,
                        globals: visible_globals(cell, globals),
                    });
                    in_flight += 1;
                }
                waiting.extend(candidates);
                waiting.sort_unstable();
                if in_flight == 0 {
                    if ran_here {
                        continue;
                    }
                    break;
                }
                let finished = if ran_here {
                    exchange.take_finished()
                } else {
                    exchange.wait_finished()
                };
                for evaluated in finished {
                    in_flight -= 1;
                    pace.saw(evaluated.duration);
                    let id = evaluated.cell;
                    self.merge(scheduler, hooks, &mut summary, globals, evaluated);
                    shared.conclude(id);
                    record(&mut shared, &summary);
                }
            }
            exchange.close();
        });
        // Cells that waited for a shared value when the run was interrupted
        // did not run either.
        self.finish(scheduler, hooks, summary, &waiting)
    }

    /// Tells the run has started, calls the preparation hooks and reports
    /// the cells with static errors, which head the queue.
    fn start(&self, scheduler: &mut dyn Scheduler, hooks: &mut Hooks) -> RunSummary {
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
        let n_static = self.plan.n_errored();
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
        summary
    }

    /// Reports the cells an interrupt kept from running, tells the run has
    /// finished and calls the on-finish hooks.
    fn finish(
        &self,
        scheduler: &mut dyn Scheduler,
        hooks: &mut Hooks,
        mut summary: RunSummary,
        held_back: &[CellId],
    ) -> RunSummary {
        if scheduler.is_interrupted() || self.control.is_interrupted() {
            let mut pending = held_back.to_vec();
            pending.extend(scheduler.pending());
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

    /// Evaluates `cell` on this thread against `globals`, its own.
    fn evaluate_alone(&self, cell: &Cell, mut globals: Globals) -> Evaluated {
        let (result, duration, stop) = self.evaluate_in(cell, &mut globals);
        Evaluated {
            cell: cell.id(),
            result,
            globals: Some(globals),
            duration,
            stop,
        }
    }

    /// Evaluates `cell` on this thread against `globals`: its result, how
    /// long it took, and why the run stopped it, if it did.
    fn evaluate_in(
        &self,
        cell: &Cell,
        globals: &mut Globals,
    ) -> (RunResult, Duration, Option<StopReason>) {
        let token = self.control.begin();
        let start = Instant::now();
        let result = self.evaluator.evaluate(cell, globals, &token);
        let duration = start.elapsed();
        self.control.end_releasing(&token, |token| {
            if token.reason() == Some(StopReason::MemoryLimit) {
                // What filled the memory would stop every later cell; until
                // it is freed, no other running cell is stopped for it.
                for def in cell.defs() {
                    drop(globals.remove(def));
                }
            }
        });
        (result, duration, token.reason())
    }

    /// A worker's loop: evaluates cells until the exchange closes.
    fn work(&self, exchange: &Exchange) {
        while let Some(job) = exchange.next_job() {
            let cell = job.cell;
            // A bug here must fail the cell, not leave the coordinator
            // waiting for a cell that never finishes.
            let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.evaluate_alone(self.notebook.cell(cell), job.globals)
            }))
            .unwrap_or_else(|payload| Evaluated {
                cell,
                result: RunResult::failed(CellError::new(
                    ErrorKind::Internal,
                    format!(
                        "internal error: {}",
                        executor_core::panic_message(payload.as_ref())
                    ),
                )),
                globals: Some(Globals::new()),
                duration: Duration::ZERO,
                stop: None,
            });
            exchange.finished(evaluated);
        }
    }

    /// Merges the definitions of an evaluated cell into the run's globals
    /// (unless it ran against them) and concludes it.
    fn merge(
        &self,
        scheduler: &mut dyn Scheduler,
        hooks: &mut Hooks,
        summary: &mut RunSummary,
        globals: &mut Globals,
        evaluated: Evaluated,
    ) {
        let cell = self.notebook.cell(evaluated.cell);
        let own = evaluated.globals.map(|mut own| {
            for def in cell.defs() {
                match own.remove_entry(def) {
                    // What filled the memory would stop every later cell.
                    Some((name, value)) if evaluated.stop != Some(StopReason::MemoryLimit) => {
                        globals.set(name, value);
                    }
                    _ => {
                        globals.remove(def);
                    }
                }
            }
            own
        });
        let settled = self.settle(cell, evaluated.result, evaluated.stop, evaluated.duration);
        self.conclude(scheduler, hooks, summary, cell, &settled);
        // Freeing a cell's leftovers one by one only delays the run, unless
        // they may be what filled the memory.
        if evaluated.stop == Some(StopReason::MemoryLimit) {
            drop(own);
        } else {
            std::mem::forget(own);
        }
    }

    /// The final result and status of an evaluated cell.
    ///
    /// The status comes from what the run saw, not from what an executor or
    /// a lifecycle claims: only a real interrupt halts the run, and any
    /// other error cancels the cell's descendants.
    fn settle(
        &self,
        cell: &Cell,
        mut result: RunResult,
        stop: Option<StopReason>,
        duration: Duration,
    ) -> Settled {
        if let Some(reason) = stop {
            result = result.stopped(reason);
        }
        let mut status = Status::Ok;
        if let Some(error) = &mut result.error {
            self.sanitize(error);
            self.blame_missing_name(cell, error);
            status =
                if error.kind == ErrorKind::Interrupted && stop == Some(StopReason::Interrupted) {
                    Status::Interrupted
                } else {
                    Status::Error
                };
        }
        Settled {
            result,
            status,
            duration,
            evaluated: true,
        }
    }

    /// Concludes `cell` as failed when it has a static error; says whether it had.
    fn conclude_static_error(
        &self,
        scheduler: &mut dyn Scheduler,
        hooks: &mut Hooks,
        summary: &mut RunSummary,
        cell: &Cell,
    ) -> bool {
        let Some(error) = self.plan.static_error(cell.id()) else {
            return false;
        };
        let result = RunResult::failed(error.clone());
        self.conclude(scheduler, hooks, summary, cell, &Settled::not_run(result));
        true
    }

    /// Reports a cell's final status, cancels what its failure or interrupt
    /// stops, and completes it in the queue.
    fn conclude(
        &self,
        scheduler: &mut dyn Scheduler,
        hooks: &mut Hooks,
        summary: &mut RunSummary,
        cell: &Cell,
        settled: &Settled,
    ) {
        report(
            self.evaluator,
            hooks,
            summary,
            cell,
            settled.status,
            &settled.result,
            settled.duration,
            settled.evaluated,
        );
        match settled.status {
            Status::Ok | Status::Cancelled => {}
            Status::Error => self.cancel(scheduler, hooks, summary, cell, "failed"),
            Status::Interrupted => {
                scheduler.interrupt();
                self.cancel(scheduler, hooks, summary, cell, "was interrupted");
            }
        }
        scheduler.complete(cell.id());
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

/// A cell's final result and status, about to be reported.
struct Settled {
    result: RunResult,
    status: Status,
    duration: Duration,
    evaluated: bool,
}

impl Settled {
    /// A cell that failed without being evaluated (a static error).
    fn not_run(result: RunResult) -> Settled {
        Settled {
            result,
            status: Status::Error,
            duration: Duration::ZERO,
            evaluated: false,
        }
    }
}

/// The globals `cell` may read while it runs on its own: its refs, the
/// globals its functions read, and its own earlier definitions (which a
/// lifecycle may remove). Values are shared, so this copies no data.
fn visible_globals(cell: &Cell, globals: &Globals) -> Globals {
    let names = cell.scope_names();
    let mut visible = Globals::with_capacity(names.iter().count());
    for name in names.iter() {
        if let Some(value) = globals.get(name) {
            visible.set(name.as_str(), value.clone());
        }
    }
    visible
}

/// A cell handed to a worker.
struct Job {
    cell: CellId,
    globals: Globals,
}

/// A cell a worker (or the coordinator) evaluated.
struct Evaluated {
    cell: CellId,
    result: RunResult,
    /// The cell's own globals after the evaluation, or `None` when it was
    /// evaluated against the run's (its definitions are in place).
    globals: Option<Globals>,
    duration: Duration,
    /// Why the run stopped the cell, if it did.
    stop: Option<StopReason>,
}

/// A cell evaluated faster than this gains nothing from another thread:
/// handing it over and back costs about as much.
const QUICK_CELL: Duration = Duration::from_micros(50);

/// A cell that takes this long ends a streak of quick cells at once: the
/// cells after it may run beside each other again.
const SLOW_CELL: Duration = Duration::from_millis(1);

/// How many quick cells in a row make the coordinator evaluate the next
/// ready cells itself (see [`Pipeline::run_parallel`]).
const QUICK_STREAK: usize = 16;

/// The most quick cells [`Pace`] remembers: how far above the streak's
/// threshold a long run of quick cells gets.
const QUICK_MEMORY: usize = 2 * QUICK_STREAK;

/// What a cell between quick and slow takes off the count of quick cells.
const MIDDLING_COST: usize = 4;

/// How long the latest cells of a parallel run took, as far as deciding
/// where the next one runs needs.
///
/// A quick cell adds one to a count (up to [`QUICK_MEMORY`]), a slow one
/// empties it, and one in between takes [`MIDDLING_COST`] off: a trivial
/// cell that a page fault or the machine's other work made take a few
/// hundred microseconds does not end a streak of thousands (which would
/// hand the next cells to workers for nothing), while a few such cells in
/// a row do, and any slow cell does at once.
#[derive(Default)]
struct Pace {
    quick: usize,
}

impl Pace {
    fn saw(&mut self, duration: Duration) {
        self.quick = if duration < QUICK_CELL {
            (self.quick + 1).min(QUICK_MEMORY)
        } else if duration < SLOW_CELL {
            self.quick.saturating_sub(MIDDLING_COST)
        } else {
            0
        };
    }

    fn cells_are_quick(&self) -> bool {
        self.quick >= QUICK_STREAK
    }
}

/// How long a thread waiting at the exchange keeps looking (spinning on
/// an atomic count, without the lock) before it sleeps. Trivial cells finish in a
/// few microseconds, less than a sleep and a wake-up cost; waits for longer
/// cells lose at most this much CPU time.
const LOOK_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// Where the coordinator leaves cells for the workers and the workers
/// leave what they evaluated.
#[derive(Default)]
struct Exchange {
    state: Mutex<ExchangeState>,
    /// Signalled when a job arrives or the exchange closes.
    work: Condvar,
    /// Signalled when a cell is evaluated while the coordinator waits.
    done: Condvar,
    /// How many jobs wait, or `usize::MAX` once closed: read without the
    /// lock while a worker looks for work.
    n_jobs: AtomicUsize,
    /// How many evaluated cells wait: read without the lock while the
    /// coordinator looks for them.
    n_finished: AtomicUsize,
}

#[derive(Default)]
struct ExchangeState {
    jobs: VecDeque<Job>,
    finished: Vec<Evaluated>,
    idle_workers: usize,
    coordinator_waits: bool,
    closed: bool,
}

impl Exchange {
    fn lock(&self) -> MutexGuard<'_, ExchangeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(&self, job: Job) {
        let mut state = self.lock();
        state.jobs.push_back(job);
        self.n_jobs.store(state.jobs.len(), Ordering::Release);
        if state.idle_workers > 0 {
            self.work.notify_one();
        }
    }

    /// The next job, waiting for one; `None` once the exchange is closed.
    fn next_job(&self) -> Option<Job> {
        look_before_sleep(&self.n_jobs);
        let mut state = self.lock();
        loop {
            if let Some(job) = state.jobs.pop_front() {
                if !state.closed {
                    self.n_jobs.store(state.jobs.len(), Ordering::Release);
                }
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.idle_workers += 1;
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.idle_workers -= 1;
        }
    }

    fn finished(&self, evaluated: Evaluated) {
        let mut state = self.lock();
        state.finished.push(evaluated);
        self.n_finished
            .store(state.finished.len(), Ordering::Release);
        if state.coordinator_waits {
            self.done.notify_one();
        }
    }

    /// Every cell evaluated since the last call, without waiting.
    fn take_finished(&self) -> Vec<Evaluated> {
        if self.n_finished.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        let mut state = self.lock();
        self.n_finished.store(0, Ordering::Release);
        std::mem::take(&mut state.finished)
    }

    /// Every cell evaluated since the last call, waiting for at least one.
    fn wait_finished(&self) -> Vec<Evaluated> {
        look_before_sleep(&self.n_finished);
        let mut state = self.lock();
        while state.finished.is_empty() {
            state.coordinator_waits = true;
            state = self
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.coordinator_waits = false;
        self.n_finished.store(0, Ordering::Release);
        std::mem::take(&mut state.finished)
    }

    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.n_jobs.store(usize::MAX, Ordering::Release);
        drop(state);
        self.work.notify_all();
    }
}

/// Returns once `count` is not zero or [`LOOK_BEFORE_SLEEP`] has passed,
/// spinning between looks.
fn look_before_sleep(count: &AtomicUsize) {
    if count.load(Ordering::Acquire) != 0 {
        return;
    }
    let start = Instant::now();
    while count.load(Ordering::Acquire) == 0 && start.elapsed() < LOOK_BEFORE_SLEEP {
        for _ in 0..64 {
            std::hint::spin_loop();
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
    use std::sync::{Arc, Condvar, Mutex};

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

    /// A notebook of `(name, code)` cells, each on its own line.
    fn notebook_of(cells: &[(&str, &str)]) -> Notebook {
        let sources = cells
            .iter()
            .enumerate()
            .map(|(index, (name, code))| CellSource::new(*name, *code, index as u32 + 1))
            .collect();
        Notebook::compile(sources, &Limits::default())
    }

    /// Runs every cell of `notebook` with `evaluator`, `jobs` at a time
    /// (1: the sequential loop).
    fn run_all(
        notebook: &Notebook,
        evaluator: &Evaluator,
        jobs: usize,
        hooks: &mut Hooks,
        globals: &mut Globals,
    ) -> RunSummary {
        let graph = DataflowGraph::of(notebook);
        let plan = Plan::new(notebook, &graph, None);
        let context = RunContext {
            jobs,
            ..run_context(notebook, &graph)
        };
        let pipeline = Pipeline {
            notebook,
            graph: &graph,
            plan: &plan,
            evaluator,
            control: &RunControl::new(None),
            context: &context,
        };
        let order = plan.order().to_vec();
        if jobs == 1 {
            pipeline.run(&mut SequentialScheduler::new(&graph, order), hooks, globals)
        } else {
            let mut scheduler = ReadyScheduler::new(&graph, order, plan.n_errored());
            pipeline.run_parallel(&mut scheduler, hooks, globals)
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
        let expected = [
            r#"start r1 ["a"]"#,
            "not run d (syntax)",
            "ran a",
            "ran b",
            "not run c (cancelled)",
            "finish ok=1 error=2 cancelled=1",
        ];
        let mut scheduler = SequentialScheduler::new(&graph, plan.order().to_vec());
        pipeline.run(&mut scheduler, &mut Hooks::new(), &mut Globals::new());
        assert_eq!(*listener.log.lock().unwrap(), expected);

        listener.log.lock().unwrap().clear();
        let parallel = RunContext {
            jobs: 4,
            ..context.clone()
        };
        let pipeline = Pipeline {
            context: &parallel,
            ..pipeline
        };
        let mut scheduler = ReadyScheduler::new(&graph, plan.order().to_vec(), plan.n_errored());
        pipeline.run_parallel(&mut scheduler, &mut Hooks::new(), &mut Globals::new());
        assert_eq!(
            *listener.log.lock().unwrap(),
            expected,
            "the same under --jobs 4"
        );
    }

    /// An executor that records the globals each cell sees and the thread
    /// it runs on, defines the cell's defs, and makes the cells named
    /// `meet*` wait until all of them run at the same time.
    struct Probe {
        seen: Mutex<Vec<(String, Vec<String>, thread::ThreadId)>>,
        meeting: (Mutex<usize>, Condvar),
        n_meeting: usize,
    }

    impl Executor for Probe {
        fn name(&self) -> &str {
            "probe"
        }

        fn execute(&self, cell: &Cell, globals: &mut Globals, _token: &CancelToken) -> RunResult {
            let mut names: Vec<String> = globals.names().map(str::to_owned).collect();
            names.sort_unstable();
            self.seen
                .lock()
                .unwrap()
                .push((cell.name().to_owned(), names, thread::current().id()));
            if cell.name().starts_with("meet") {
                let (count, all_here) = &self.meeting;
                let mut count = count.lock().unwrap();
                *count += 1;
                all_here.notify_all();
                let deadline = Instant::now() + Duration::from_secs(60);
                while *count < self.n_meeting {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return RunResult::failed(CellError::new(
                            ErrorKind::Runtime,
                            "the other cells never ran at the same time",
                        ));
                    }
                    count = all_here.wait_timeout(count, left).unwrap().0;
                }
            }
            if cell.name().starts_with("slow") {
                thread::sleep(SLOW_CELL);
            }
            for def in cell.defs() {
                globals.set(def.as_str(), executor_core::RunResult::default().output);
            }
            RunResult::default()
        }

        fn concurrency(&self) -> executor_core::Concurrency {
            executor_core::Concurrency::Parallel
        }
    }

    #[test]
    fn independent_cells_run_at_once_and_see_only_their_ancestors() {
        let notebook = notebook_of(&[
            ("meet1", "let a = 1;"),
            ("meet2", "let b = 2;"),
            ("meet3", "let c = 3;"),
            ("join", "let d = a + b;"),
            ("last", "d + c"),
        ]);
        let probe = Arc::new(Probe {
            seen: Mutex::new(Vec::new()),
            meeting: (Mutex::new(0), Condvar::new()),
            n_meeting: 3,
        });
        let evaluator = Evaluator::new(probe.clone(), Vec::new());
        let mut globals = Globals::new();
        let summary = run_all(&notebook, &evaluator, 3, &mut Hooks::new(), &mut globals);
        assert_eq!((summary.ok, summary.error), (5, 0));
        let seen = probe.seen.lock().unwrap();
        let visible = |name: &str| {
            seen.iter()
                .find(|(cell, ..)| cell == name)
                .map(|(_, names, _)| names.clone())
                .unwrap()
        };
        assert_eq!(visible("meet3"), Vec::<String>::new());
        assert_eq!(visible("join"), ["a", "b"]);
        assert_eq!(visible("last"), ["c", "d"]);
        let threads: std::collections::HashSet<_> = seen[..3].iter().map(|(.., id)| *id).collect();
        assert_eq!(threads.len(), 3, "the meeting cells ran on three threads");
        let mut names: Vec<&str> = globals.names().collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c", "d"], "definitions are merged back");
    }

    #[test]
    fn a_middling_cell_keeps_a_long_streak_and_a_slow_one_ends_it() {
        let quick = QUICK_CELL / 2;
        let middling = (QUICK_CELL + SLOW_CELL) / 2;
        let mut pace = Pace::default();
        for _ in 0..QUICK_STREAK - 1 {
            pace.saw(quick);
        }
        assert!(!pace.cells_are_quick());
        for _ in 0..QUICK_MEMORY {
            pace.saw(quick);
        }
        assert!(pace.cells_are_quick());
        pace.saw(middling);
        assert!(pace.cells_are_quick(), "one page fault ends no streak");
        let mut in_a_row = 1;
        while pace.cells_are_quick() {
            pace.saw(middling);
            in_a_row += 1;
        }
        assert!(
            (2..=QUICK_STREAK / MIDDLING_COST + 1).contains(&in_a_row),
            "{in_a_row}"
        );
        for _ in 0..QUICK_MEMORY {
            pace.saw(quick);
        }
        pace.saw(SLOW_CELL);
        assert!(
            !pace.cells_are_quick(),
            "a slow cell ends the streak at once"
        );
    }

    #[test]
    fn quick_cells_stay_on_the_coordinator_and_slow_ones_spread_again() {
        let quick: Vec<(String, String)> = (0..QUICK_STREAK * 8)
            .map(|i| (format!("quick{i}"), format!("let q{i} = {i};")))
            .collect();
        let mut cells: Vec<(&str, &str)> = quick
            .iter()
            .map(|(name, code)| (name.as_str(), code.as_str()))
            .collect();
        cells.extend([
            ("slow", "let s = 1;"),
            ("meet1", "let a = 1;"),
            ("meet2", "let b = 2;"),
        ]);
        let notebook = notebook_of(&cells);
        let probe = Arc::new(Probe {
            seen: Mutex::new(Vec::new()),
            meeting: (Mutex::new(0), Condvar::new()),
            n_meeting: 2,
        });
        let evaluator = Evaluator::new(probe.clone(), Vec::new());
        let summary = run_all(
            &notebook,
            &evaluator,
            2,
            &mut Hooks::new(),
            &mut Globals::new(),
        );
        assert_eq!((summary.ok, summary.error), (cells.len(), 0));
        let seen = probe.seen.lock().unwrap();
        let coordinator = thread::current().id();
        let on_coordinator = seen
            .iter()
            .filter(|(name, _, id)| name.starts_with("quick") && *id == coordinator)
            .count();
        // A preempted cell may look slow and end a streak: ask for one.
        assert!(
            on_coordinator > 0,
            "after a streak of quick cells the coordinator evaluates them"
        );
        let meeting: std::collections::HashSet<_> = seen
            .iter()
            .filter(|(name, ..)| name.starts_with("meet"))
            .map(|(.., id)| *id)
            .collect();
        assert_eq!(
            meeting.len(),
            2,
            "after a slow cell, cells run side by side again"
        );
    }

    #[test]
    fn a_failure_cancels_queued_descendants_while_siblings_finish() {
        let notebook = notebook_of(&[
            ("root", "let x = 1;"),
            ("bad", "let y = x + undefined_name;"),
            ("below", "y"),
            ("sibling", "let z = x * 2;"),
            ("after", "z"),
        ]);
        let evaluator = Evaluator::new(
            Arc::new(executor_core::DefaultExecutor::new(&Limits::default())),
            Vec::new(),
        );
        let run = |jobs: usize| {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let record = seen.clone();
            let mut hooks = Hooks::new();
            hooks.on_post_execution(crate::Priority::Normal, move |outcome| {
                let blamed = outcome.result.error.as_ref().and_then(|error| error.blamed);
                record.lock().unwrap().push((
                    outcome.cell.name().to_owned(),
                    outcome.status,
                    blamed,
                ));
            });
            let summary = run_all(&notebook, &evaluator, jobs, &mut hooks, &mut Globals::new());
            let mut seen = seen.lock().unwrap().clone();
            seen.sort_by(|a, b| a.0.cmp(&b.0));
            (seen, summary.cancellations)
        };
        let sequential = run(1);
        assert_eq!(sequential.1, [(CellId::new(1), vec![CellId::new(2)])]);
        assert_eq!(run(4), sequential);
    }

    #[test]
    fn cells_reading_one_shared_value_take_turns_in_the_sequential_order() {
        // Each mutates the shared array in place and reads it back: only
        // the sequential order gives 4, 5 and 6, and two cells at once
        // would collide on the array's lock.
        let mut cells = vec![("base", "let xs = [1, 2, 3];".to_owned())];
        let names = ["first", "second", "third"];
        for (at, name) in names.iter().enumerate() {
            cells.push((
                name,
                format!("xs.push({at}); let n{at} = xs.len(); let _w = xs.map(|x| x + 1);"),
            ));
        }
        cells.push(("free", "let f = 40 + 2;".to_owned()));
        let cells: Vec<(&str, &str)> = cells
            .iter()
            .map(|(name, code)| (*name, code.as_str()))
            .collect();
        let notebook = notebook_of(&cells);
        let evaluator = Evaluator::new(
            Arc::new(executor_core::DefaultExecutor::new(&Limits::default())),
            Vec::new(),
        );
        let mut globals = Globals::new();
        let summary = run_all(&notebook, &evaluator, 4, &mut Hooks::new(), &mut globals);
        assert_eq!(summary.ok, 5, "{summary:?}");
        let value = |name: &str| globals.get(name).unwrap().as_int().unwrap();
        assert_eq!(
            (value("n0"), value("n1"), value("n2"), value("f")),
            (4, 5, 6, 42)
        );
    }

    /// One run of a random DAG as a notebook: each cell's status and output,
    /// by name, and whether some cell started before a parent finished ok.
    fn run_dag(
        dag: &crate::graph::testing::RandomDag,
        failing: &[bool],
        jobs: usize,
    ) -> (Vec<(String, Status, String)>, Vec<String>) {
        // Cell `c{i}` defines `v{i}`, the sum of its parents' values plus i,
        // after spinning a little so that siblings overlap.
        let codes: Vec<(String, String)> = (0..dag.n)
            .map(|i| {
                let cell = CellId::new(i);
                let mut sum = format!("{i}");
                for parent in dag.parents(cell) {
                    sum.push_str(&format!(" + v{}", parent.index()));
                }
                let fail = if failing[i] { "throw \"boom\";" } else { "" };
                let code = format!(
                    "let s = 0; for k in 0..200 {{ s += k; }} {fail} let v{i} = {sum}; v{i}"
                );
                (format!("c{i}"), code)
            })
            .collect();
        let cells: Vec<(&str, &str)> = codes
            .iter()
            .map(|(name, code)| (name.as_str(), code.as_str()))
            .collect();
        let notebook = notebook_of(&cells);
        let evaluator = Evaluator::new(
            Arc::new(executor_core::DefaultExecutor::new(&Limits::default())),
            Vec::new(),
        );
        let finished: Arc<Mutex<Vec<(String, Status, String)>>> = Arc::default();
        let early: Arc<Mutex<Vec<String>>> = Arc::default();
        let ok: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
        let mut hooks = Hooks::new();
        {
            let (early, ok) = (early.clone(), ok.clone());
            let parents: Vec<Vec<String>> = (0..dag.n)
                .map(|i| {
                    dag.parents(CellId::new(i))
                        .iter()
                        .map(|parent| format!("c{}", parent.index()))
                        .collect()
                })
                .collect();
            hooks.on_pre_execution(crate::Priority::Normal, move |cell| {
                let ok = ok.lock().unwrap();
                for parent in &parents[cell.id().index()] {
                    if !ok.contains(parent) {
                        early
                            .lock()
                            .unwrap()
                            .push(format!("{} before {parent}", cell.name()));
                    }
                }
            });
        }
        {
            let (finished, ok) = (finished.clone(), ok.clone());
            hooks.on_post_execution(crate::Priority::Normal, move |outcome| {
                if outcome.status == Status::Ok {
                    ok.lock().unwrap().insert(outcome.cell.name().to_owned());
                }
                finished.lock().unwrap().push((
                    outcome.cell.name().to_owned(),
                    outcome.status,
                    outcome.result.output.to_string(),
                ));
            });
        }
        run_all(&notebook, &evaluator, jobs, &mut hooks, &mut Globals::new());
        let mut finished = finished.lock().unwrap().clone();
        finished.sort_by(|a, b| a.0.cmp(&b.0));
        let early = early.lock().unwrap().clone();
        (finished, early)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Real Rhai cells on worker threads: `--jobs 4` gives every cell the
        /// status and output of `--jobs 1`, and no cell starts before all its
        /// parents finished.
        #[test]
        fn random_notebooks_end_alike_with_one_or_four_jobs(
            dag in crate::graph::testing::random_dag(16),
            failing in proptest::collection::vec(proptest::bool::weighted(0.2), 16),
        ) {
            let (sequential, early) = run_dag(&dag, &failing, 1);
            proptest::prop_assert!(early.is_empty(), "{:?}", early);
            let (parallel, early) = run_dag(&dag, &failing, 4);
            proptest::prop_assert!(early.is_empty(), "{:?}", early);
            proptest::prop_assert_eq!(parallel, sequential);
        }
    }
}
