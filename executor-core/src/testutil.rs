//! Fakes for this crate's unit tests.

use std::sync::{Arc, Mutex};

use crate::{
    CancelToken, Cell, CellError, CellSource, ErrorKind, Executor, Globals, Lifecycle, Limits, Notebook, RunResult,
    Setup,
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
        })
        .collect();
    Notebook::compile(sources, &Limits::default())
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
            return Err(CellError::new(ErrorKind::Runtime, format!("setup {} failed", self.name)));
        }
        Ok(match self.script.skip_with {
            Some(value) => Setup::Skip(RunResult {
                output: value.into(),
                stdout: format!("skipped by {}\n", self.name),
                error: None,
                cached: false,
            }),
            None => Setup::Continue,
        })
    }

    fn teardown(&self, _cell: &Cell, _globals: &mut Globals, result: &RunResult) -> Result<(), CellError> {
        match &result.error {
            Some(error) => self.push(format!("teardown {} (saw {})", self.name, error.message)),
            None => self.push(format!("teardown {}", self.name)),
        }
        if self.script.teardown_fails {
            return Err(CellError::new(ErrorKind::Runtime, format!("teardown {} failed", self.name)));
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
