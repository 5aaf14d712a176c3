//! Fakes for this crate's unit tests.

use std::sync::{Arc, Mutex};

use crate::{
    CancelToken, Cell, CellError, CellSource, DefaultExecutor, ErrorKind, Evaluator, Executor,
    Globals, Lifecycle, Limits, Notebook, RunResult, Setup,
};

/// A notebook of one cell with `code`.
pub(crate) fn one_cell(code: &str) -> Notebook {
    cells(&[code])
}

/// A notebook of cells named `c0`, `c1`, ... with `codes`, one line each.
pub(crate) fn cells(codes: &[&str]) -> Notebook {
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

/// An evaluator running bodies with the [`DefaultExecutor`] and no lifecycle.
pub(crate) fn default_evaluator() -> Evaluator {
    Evaluator::new(
        Arc::new(DefaultExecutor::new(&Limits::default())),
        Vec::new(),
    )
}

/// Runs the cells of [`cells`]`(codes)` in file order with the
/// [`DefaultExecutor`], one fresh token per cell, starting from `globals`.
pub(crate) fn run_in(globals: &mut Globals, codes: &[&str]) -> Vec<RunResult> {
    let notebook = cells(codes);
    let evaluator = default_evaluator();
    notebook
        .cells()
        .iter()
        .map(|cell| evaluator.evaluate(cell, globals, &CancelToken::new()))
        .collect()
}

/// Runs the cells of [`cells`]`(codes)` in file order from empty globals,
/// returning each cell's result and the final globals.
pub(crate) fn run_cells(codes: &[&str]) -> (Vec<RunResult>, Globals) {
    let mut globals = Globals::new();
    let results = run_in(&mut globals, codes);
    (results, globals)
}

/// Runs [`one_cell`]`(code)` with `token`, starting from `globals`.
pub(crate) fn run_one(globals: &mut Globals, code: &str, token: &CancelToken) -> RunResult {
    let notebook = one_cell(code);
    default_evaluator().evaluate(&notebook.cells()[0], globals, token)
}

/// What a [`Recorder`] lifecycle does.
#[derive(Clone, Default)]
pub(crate) struct Script {
    pub(crate) skip_with: Option<i64>,
    pub(crate) setup_fails: bool,
    pub(crate) setup_panics: bool,
    pub(crate) teardown_fails: bool,
}

/// A lifecycle that logs its calls and follows its script.
pub(crate) struct Recorder {
    name: String,
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    pub(crate) fn new(name: &str, script: Script, log: Arc<Mutex<Vec<String>>>) -> Recorder {
        Recorder {
            name: name.to_owned(),
            script,
            log,
        }
    }

    fn push(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
}

impl Lifecycle for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn setup(&self, _cell: &Cell, _globals: &mut Globals) -> Result<Setup, CellError> {
        self.push(format!("setup {}", self.name));
        if self.script.setup_panics {
            panic!("boom");
        }
        if self.script.setup_fails {
            return Err(CellError::new(
                ErrorKind::Runtime,
                format!("setup {} failed", self.name),
            ));
        }
        Ok(match self.script.skip_with {
            Some(value) => Setup::Skip(RunResult {
                output: value.into(),
                stdout: format!("skipped by {}\n", self.name),
                error: None,
                cached: false,
                display: None,
            }),
            None => Setup::Continue,
        })
    }

    fn teardown(
        &self,
        _cell: &Cell,
        _globals: &mut Globals,
        result: &RunResult,
    ) -> Result<(), CellError> {
        match &result.error {
            Some(error) => self.push(format!("teardown {} (saw {})", self.name, error.message)),
            None => self.push(format!("teardown {}", self.name)),
        }
        if self.script.teardown_fails {
            return Err(CellError::new(
                ErrorKind::Runtime,
                format!("teardown {} failed", self.name),
            ));
        }
        Ok(())
    }
}

/// An executor that logs `body` and fails when told to.
pub(crate) struct RecordingExecutor {
    pub(crate) log: Arc<Mutex<Vec<String>>>,
    pub(crate) fails: bool,
}

impl Executor for RecordingExecutor {
    fn name(&self) -> &str {
        "recording"
    }

    fn execute(&self, _cell: &Cell, _globals: &mut Globals, _token: &CancelToken) -> RunResult {
        self.log.lock().unwrap().push("body".to_owned());
        if self.fails {
            RunResult::failed(CellError::new(ErrorKind::Runtime, "body failed"))
        } else {
            RunResult::default()
        }
    }
}

/// An executor that only has a name; its bodies succeed with unit.
pub(crate) struct NamedExecutor(pub(crate) String);

impl Executor for NamedExecutor {
    fn name(&self) -> &str {
        &self.0
    }

    fn execute(&self, _cell: &Cell, _globals: &mut Globals, _token: &CancelToken) -> RunResult {
        RunResult::default()
    }
}
