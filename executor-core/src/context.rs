//! What executors and lifecycles learn about a run as a whole.

use crate::CellId;

/// A run about to start, as executors and lifecycles see it.
///
/// The runner builds it once per run; [`Executor::run_started`] and
/// [`Lifecycle::run_started`] receive it before any cell runs. An executor
/// that runs cells elsewhere keeps what it needs (a session per notebook,
/// keyed by [`RunContext::notebook_hash`]).
///
/// [`Executor::run_started`]: crate::Executor::run_started
/// [`Lifecycle::run_started`]: crate::Lifecycle::run_started
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunContext {
    /// A unique id of this run (distinct between runs, also concurrent ones).
    pub run_id: String,
    /// The notebook's path as the user gave it.
    pub notebook_path: String,
    /// A hex content hash of the notebook file (equal files, equal hashes).
    pub notebook_hash: String,
    /// The notebook's language.
    pub language: &'static str,
    /// How many cells may run at once.
    pub jobs: usize,
    /// The run's per-cell time limit, if it has one.
    pub timeout: Option<std::time::Duration>,
    /// Every cell's name, by cell index.
    pub cell_names: Vec<String>,
    /// Every cell's parents in the dataflow graph, by cell index.
    pub parents: Vec<Vec<CellId>>,
}

impl RunContext {
    /// The names of `cell`'s parents, in id order.
    pub fn parent_names(&self, cell: CellId) -> impl Iterator<Item = &str> {
        self.parents
            .get(cell.index())
            .into_iter()
            .flatten()
            .filter_map(|parent| self.cell_names.get(parent.index()))
            .map(String::as_str)
    }
}

/// How a run ended, as executors and lifecycles see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
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
}

/// Whether an executor may be called for several cells at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// One cell at a time: a parallel scheduler runs the notebook
    /// sequentially with one warning.
    Sequential,
    /// `execute` may be called from several threads at once, for cells that
    /// do not depend on each other, each with its own [`Globals`](crate::Globals).
    Parallel,
}
