//! Helpers for this crate's unit tests: notebooks, runs and scratch directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use executor_core::{
    CancelToken, Cell, CellSource, DefaultExecutor, Evaluator, Executor, Globals, Lifecycle,
    Limits, Notebook, RunResult,
};

/// A notebook of cells named `c0`, `c1`, ... with `codes`.
pub(crate) fn notebook(codes: &[&str]) -> Notebook {
    let sources = codes
        .iter()
        .enumerate()
        .map(|(index, code)| CellSource {
            name: format!("c{index}"),
            code: (*code).to_owned(),
            first_line: 2 * index as u32 + 2,
            options: Vec::new(),
        })
        .collect();
    Notebook::compile(sources, &Limits::default())
}

/// The default executor, counting how many bodies it ran.
pub(crate) struct CountingExecutor {
    inner: DefaultExecutor,
    runs: AtomicUsize,
}

impl CountingExecutor {
    pub(crate) fn new() -> Arc<CountingExecutor> {
        Arc::new(CountingExecutor {
            inner: DefaultExecutor::new(&Limits::default()),
            runs: AtomicUsize::new(0),
        })
    }

    /// How many bodies ran so far.
    pub(crate) fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Executor for CountingExecutor {
    fn name(&self) -> &str {
        "counting"
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(cell, globals, token)
    }
}

/// Evaluates every cell of `notebook` in file order with `executor` inside
/// `lifecycles`, returning each cell's result.
pub(crate) fn run_all(
    notebook: &Notebook,
    executor: Arc<dyn Executor>,
    lifecycles: Vec<Arc<dyn Lifecycle>>,
    globals: &mut Globals,
) -> Vec<RunResult> {
    let evaluator = Evaluator::new(executor, lifecycles);
    notebook
        .cells()
        .iter()
        .map(|cell| evaluator.evaluate(cell, globals, &CancelToken::new()))
        .collect()
}

/// The integer value of `name` in `globals`, if it holds one.
pub(crate) fn int(globals: &Globals, name: &str) -> Option<i64> {
    globals.get(name)?.as_int().ok()
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub(crate) struct TestDir {
    path: PathBuf,
}

impl TestDir {
    pub(crate) fn new(label: &str) -> TestDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "cellrun-lifecycles-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        // A leftover from an earlier process with the same id would skew counts.
        let _ = std::fs::remove_dir_all(&path);
        TestDir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
