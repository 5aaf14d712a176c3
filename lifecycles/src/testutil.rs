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

/// A plugin-owned value for the tests: a counter that cells bump in place.
///
/// A counter made `fixed` has no deep copy, no fingerprint and no encoding,
/// as a value its owner cannot copy or store.
pub(crate) struct Counter {
    value: std::sync::Mutex<i64>,
    fixed: bool,
}

impl Counter {
    pub(crate) fn value(value: &rhai::Dynamic) -> Option<i64> {
        let foreign = executor_core::ForeignValue::from_dynamic(value)?;
        let counter = foreign.object().as_any().downcast_ref::<Counter>()?;
        let value = *counter.value.lock().unwrap();
        Some(value)
    }

    fn dynamic(value: i64, fixed: bool) -> rhai::Dynamic {
        executor_core::ForeignValue::new(Counter {
            value: std::sync::Mutex::new(value),
            fixed,
        })
        .into_dynamic()
    }

    /// Makes a counter from what [`ForeignObject::encode`] gave, as the
    /// owner's decoder does.
    pub(crate) fn decoder() -> executor_core::wire::ForeignDecoder {
        Box::new(|owner, type_name, data| {
            if owner != "boxes" || type_name != "Counter" {
                return Err(format!("not a counter: {owner} {type_name}"));
            }
            let bytes: [u8; 8] = data.try_into().map_err(|_| "bad length".to_owned())?;
            Ok(Counter::dynamic(i64::from_le_bytes(bytes), false))
        })
    }
}

impl executor_core::ForeignObject for Counter {
    fn type_name(&self) -> &str {
        "Counter"
    }

    fn owner(&self) -> &str {
        "boxes"
    }

    fn display(&self) -> String {
        format!("Counter({})", self.value.lock().unwrap())
    }

    fn deep_copy(&self) -> Option<executor_core::ForeignValue> {
        let value = *self.value.lock().unwrap();
        (!self.fixed)
            .then(|| executor_core::ForeignValue::from_dynamic(&Counter::dynamic(value, false)))?
    }

    fn fingerprint(&self) -> Option<Vec<u8>> {
        (!self.fixed).then(|| self.value.lock().unwrap().to_le_bytes().to_vec())
    }

    fn encode(&self) -> Option<Vec<u8>> {
        self.fingerprint()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// An executor whose cells hold counters, as a plugin owning its values
/// would; a cell's code is one command:
/// - `new NAME N` defines `NAME` as a counter at `N` (`fixed NAME N`: one
///   that cannot be copied or stored);
/// - `bump NAME` adds one to the counter in place and outputs its value;
/// - `get NAME` outputs the counter's value.
///
/// It counts the bodies it ran.
#[derive(Default)]
pub(crate) struct Boxes {
    runs: AtomicUsize,
}

impl Boxes {
    /// How many bodies ran so far.
    pub(crate) fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// A notebook of `cells`, each `(code, defs, refs)`, named `c0`, `c1`, ...
    pub(crate) fn notebook(cells: &[(&str, &[&str], &[&str])]) -> Notebook {
        let names = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        let cells = cells
            .iter()
            .enumerate()
            .map(|(index, (code, defs, refs))| executor_core::AnalysedCell {
                source: CellSource::new(format!("c{index}"), *code, index as u32 + 1),
                language: "boxes",
                defs: names(defs),
                private_defs: Vec::new(),
                refs: names(refs),
                syntax_error: None,
            })
            .collect();
        Notebook::from_analysed("boxes", cells)
    }
}

impl Executor for Boxes {
    fn name(&self) -> &str {
        "boxes"
    }

    fn languages(&self) -> Vec<String> {
        vec!["boxes".to_owned()]
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, _token: &CancelToken) -> RunResult {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let words: Vec<&str> = cell.code().split_whitespace().collect();
        let counter = |name: &str| {
            let foreign = globals
                .get(name)
                .and_then(executor_core::ForeignValue::from_dynamic)?;
            foreign
                .object()
                .as_any()
                .downcast_ref::<Counter>()
                .map(|counter| *counter.value.lock().unwrap())
                .map(|value| (foreign.clone(), value))
        };
        match words.as_slice() {
            [command @ ("new" | "fixed"), name, value] => {
                let value = value.parse().unwrap();
                globals.set(*name, Counter::dynamic(value, *command == "fixed"));
                RunResult::ok(rhai::Dynamic::UNIT)
            }
            ["bump", name] => match counter(name) {
                Some((foreign, _)) => {
                    let counter = foreign.object().as_any().downcast_ref::<Counter>().unwrap();
                    let mut value = counter.value.lock().unwrap();
                    *value += 1;
                    RunResult::ok(rhai::Dynamic::from_int(*value))
                }
                None => RunResult::failed(executor_core::CellError::new(
                    executor_core::ErrorKind::Runtime,
                    format!("no counter `{name}`"),
                )),
            },
            ["get", name] => match counter(name) {
                Some((_, value)) => RunResult::ok(rhai::Dynamic::from_int(value)),
                None => RunResult::failed(executor_core::CellError::new(
                    executor_core::ErrorKind::Runtime,
                    format!("no counter `{name}`"),
                )),
            },
            _ => panic!("unknown command `{}`", cell.code()),
        }
    }
}
