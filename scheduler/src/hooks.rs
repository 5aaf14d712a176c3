//! Hooks: the four notification points of a run, with priorities.

use std::time::Duration;

use executor_core::{Cell, CellId, Notebook, RunResult, Status};

use crate::DataflowGraph;

/// When a hook runs relative to the other hooks of its phase.
///
/// Hooks run by priority, then in the order they were added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Before the normal hooks.
    Early,
    /// The default.
    Normal,
    /// After the normal hooks.
    Late,
    /// Last of all.
    Final,
}

/// What the preparation hooks see: the run about to start.
#[derive(Clone, Copy)]
pub struct RunInfo<'a> {
    /// The notebook being run.
    pub notebook: &'a Notebook,
    /// Its dataflow graph.
    pub graph: &'a DataflowGraph,
    /// The cells of the run, in queue order.
    pub order: &'a [CellId],
}

/// What the completion hooks see: one cell's final status.
pub struct CellOutcome<'a> {
    /// The cell.
    pub cell: &'a Cell,
    /// Its final status.
    pub status: Status,
    /// Its result; for cells that did not run, the error says why.
    pub result: &'a RunResult,
    /// How long its evaluation took (zero when it did not run).
    pub duration: Duration,
    /// Whether the cell went through the evaluator (its pending hooks ran).
    pub evaluated: bool,
}

/// What the on-finish hooks see: the whole run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Cells that finished ok.
    pub ok: usize,
    /// Cells that failed.
    pub error: usize,
    /// Cells cancelled because an ancestor failed.
    pub cancelled: usize,
    /// Cells interrupted while running or before they could run.
    pub interrupted: usize,
    /// Whether the run was interrupted.
    pub was_interrupted: bool,
    /// Each failing cell with the cells its failure cancelled, in run order.
    pub cancellations: Vec<(CellId, Vec<CellId>)>,
}

impl RunSummary {
    /// How many cells the run reported.
    pub fn total(&self) -> usize {
        self.ok + self.error + self.cancelled + self.interrupted
    }
}

type Preparation = Box<dyn FnMut(&RunInfo<'_>) + Send>;
type PreExecution = Box<dyn FnMut(&Cell) + Send>;
type PostExecution = Box<dyn FnMut(&CellOutcome<'_>) + Send>;
type OnFinish = Box<dyn FnMut(&RunSummary) + Send>;

/// The hooks of a run, by phase:
///
/// - preparation: once, before the first cell;
/// - pre-execution (the pending notification): before each cell that goes
///   through the evaluator;
/// - post-execution (the completion notification): once for every cell of
///   the run when its status is final, whether it ran, failed statically,
///   was cancelled or was interrupted;
/// - on-finish: once, always, also after an interrupt.
#[derive(Default)]
pub struct Hooks {
    preparation: Vec<(Priority, Preparation)>,
    pre_execution: Vec<(Priority, PreExecution)>,
    post_execution: Vec<(Priority, PostExecution)>,
    on_finish: Vec<(Priority, OnFinish)>,
}

/// Inserts after every hook of the same or an earlier priority, keeping
/// insertion order within a priority.
fn insert<T>(hooks: &mut Vec<(Priority, T)>, priority: Priority, hook: T) {
    let at = hooks.partition_point(|(existing, _)| *existing <= priority);
    hooks.insert(at, (priority, hook));
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Hooks {
        Hooks::default()
    }

    /// Adds a preparation hook.
    pub fn on_preparation(
        &mut self,
        priority: Priority,
        hook: impl FnMut(&RunInfo<'_>) + Send + 'static,
    ) {
        insert(&mut self.preparation, priority, Box::new(hook));
    }

    /// Adds a pre-execution hook.
    pub fn on_pre_execution(
        &mut self,
        priority: Priority,
        hook: impl FnMut(&Cell) + Send + 'static,
    ) {
        insert(&mut self.pre_execution, priority, Box::new(hook));
    }

    /// Adds a post-execution hook.
    pub fn on_post_execution(
        &mut self,
        priority: Priority,
        hook: impl FnMut(&CellOutcome<'_>) + Send + 'static,
    ) {
        insert(&mut self.post_execution, priority, Box::new(hook));
    }

    /// Adds an on-finish hook.
    pub fn on_finish(
        &mut self,
        priority: Priority,
        hook: impl FnMut(&RunSummary) + Send + 'static,
    ) {
        insert(&mut self.on_finish, priority, Box::new(hook));
    }

    pub(crate) fn preparation(&mut self, info: &RunInfo<'_>) {
        self.preparation.iter_mut().for_each(|(_, hook)| hook(info));
    }

    pub(crate) fn pre_execution(&mut self, cell: &Cell) {
        self.pre_execution
            .iter_mut()
            .for_each(|(_, hook)| hook(cell));
    }

    pub(crate) fn post_execution(&mut self, outcome: &CellOutcome<'_>) {
        self.post_execution
            .iter_mut()
            .for_each(|(_, hook)| hook(outcome));
    }

    pub(crate) fn finish(&mut self, summary: &RunSummary) {
        self.on_finish
            .iter_mut()
            .for_each(|(_, hook)| hook(summary));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn hooks_run_by_priority_then_insertion_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut hooks = Hooks::new();
        for (name, priority) in [
            ("n1", Priority::Normal),
            ("final", Priority::Final),
            ("early", Priority::Early),
            ("n2", Priority::Normal),
            ("late", Priority::Late),
        ] {
            let log = log.clone();
            hooks.on_finish(priority, move |_| log.lock().unwrap().push(name));
        }
        hooks.finish(&RunSummary::default());
        assert_eq!(*log.lock().unwrap(), ["early", "n1", "n2", "late", "final"]);
    }
}
