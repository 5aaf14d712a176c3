//! Plugins linked as plain crates, run through both generations of adapters.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use executor_abi::sdk::{
    executor_for_tests, lifecycle_for_tests, new_executor, testing, ExecutorPlugin, Host,
    LifecyclePlugin, Logger, Options, Outcome, OwnedTable, OwnedValue, OwnedValues, PluginError,
};
use executor_abi::{FfiCellContext, FfiErrorKind, FfiRunResult, FfiSetup, FfiValue};
use executor_core::{
    CancelToken, CellSource, DefaultExecutor, ErrorKind, Evaluator, Executor, ForeignValue,
    Globals, Limits, Notebook, RunContext, RunResult, Status, StopReason,
};

use crate::{PluginExecutor, PluginExecutor2, PluginLifecycle2};

/// Runs bodies with the host's evaluation, doubles an integer output and
/// records the names it saw in the global `seen`; panics on cell `panics`.
struct Doubler;

impl ExecutorPlugin for Doubler {
    const NAME: &'static str = "doubler";

    fn new(_options: &Options, _logger: Logger) -> Result<Doubler, PluginError> {
        Ok(Doubler)
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        if cell.name.as_str() == "panics" {
            panic!("asked to");
        }
        let mut outcome = host.run_default()?;
        if let FfiValue::Int(value) = outcome.output {
            outcome.output = FfiValue::Int(value * 2);
        }
        let mut names = host.names();
        names.sort();
        host.set("seen", FfiValue::Str(names.join(",").into()));
        Ok(outcome)
    }
}

fn notebook(sources: &[(&str, &str)]) -> Notebook {
    Notebook::compile(
        sources
            .iter()
            .enumerate()
            .map(|(index, (name, code))| CellSource::new(*name, *code, index as u32 + 1))
            .collect(),
        &Limits::default(),
    )
}

fn run_all(executor: Arc<dyn Executor>, notebook: &Notebook) -> (Vec<RunResult>, Globals) {
    let evaluator = Evaluator::new(executor, Vec::new());
    let mut globals = Globals::new();
    let results = notebook
        .cells()
        .iter()
        .map(|cell| evaluator.evaluate(cell, &mut globals, &CancelToken::new()))
        .collect();
    (results, globals)
}

fn default() -> Arc<DefaultExecutor> {
    Arc::new(DefaultExecutor::new(&Limits::default()))
}

#[test]
fn a_plugin_runs_the_same_through_its_1_0_and_its_1_2_form() {
    let cells = notebook(&[("a", "let x = 20; x"), ("b", "x + 1"), ("panics", "1")]);
    let legacy = PluginExecutor::new(
        "doubler".into(),
        new_executor::<Doubler>(Default::default(), testing::logger("doubler"))
            .into_result()
            .unwrap(),
        default(),
    );
    let current = PluginExecutor2::new(
        "doubler".into(),
        executor_for_tests::<Doubler>(&[]).unwrap(),
        default(),
        vec!["rhai".into()],
    );
    for executor in [Arc::new(legacy) as Arc<dyn Executor>, Arc::new(current)] {
        let (results, globals) = run_all(executor, &cells);
        assert_eq!(results[0].output.as_int(), Ok(40));
        assert_eq!(results[1].output.as_int(), Ok(42));
        assert_eq!(globals.get("x").unwrap().as_int(), Ok(20));
        assert_eq!(
            globals.get("seen").unwrap().clone().into_string().unwrap(),
            "seen,x"
        );
        let panicked = results[2].error.as_ref().unwrap();
        assert_eq!(panicked.kind, ErrorKind::Plugin);
        assert!(
            panicked.message.starts_with("plugin `doubler` panicked in"),
            "{}",
            panicked.message
        );
    }
}

/// Reports what it was told of the cell and the run, and checks the stop
/// reason and deadline.
#[derive(Default)]
struct Inspector {
    seen: Mutex<Vec<String>>,
}

impl ExecutorPlugin for Inspector {
    const NAME: &'static str = "inspector";
    const CONCURRENCY: u32 = 4;

    fn new(_options: &Options, _logger: Logger) -> Result<Inspector, PluginError> {
        Ok(Inspector::default())
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let functions: Vec<String> = cell
            .functions
            .iter()
            .map(|function| format!("{}@{}", function.name, function.cell))
            .collect();
        let parents: Vec<&str> = cell.parents.iter().map(|name| name.as_str()).collect();
        self.seen.lock().unwrap().push(format!(
            "{} lang={} fns={functions:?} fn_refs={:?} parents={parents:?} run={} hash={} deadline={}",
            cell.name,
            cell.language,
            cell.fn_refs.iter().map(|name| name.as_str()).collect::<Vec<_>>(),
            cell.run_id,
            cell.notebook_hash,
            cell.deadline_unix_ms.is_some(),
        ));
        if let Some(reason) = host.stop_reason() {
            return Ok(Outcome::stopped(reason));
        }
        if cell.name.as_str() == "spin" {
            // The body stops at the deadline given here.
            let deadline = SystemTime::now() + Duration::from_millis(50);
            return host.run_default_until(Some(deadline));
        }
        host.run_default()
    }
}

#[test]
fn a_1_2_executor_sees_the_cell_context_the_stop_reason_and_can_set_a_deadline() {
    let cells = notebook(&[
        ("k", "let k = 3;"),
        ("f", "fn scale(x) { x * k }"),
        ("use", "scale(2)"),
        ("spin", "loop {}"),
    ]);
    let plugin = PluginExecutor2::new(
        "inspector".into(),
        executor_for_tests::<Inspector>(&[]).unwrap(),
        default(),
        vec!["rhai".into()],
    );
    assert_eq!(plugin.concurrency(), executor_core::Concurrency::Parallel);
    plugin.run_started(&RunContext {
        run_id: "r7".into(),
        notebook_hash: "abc".into(),
        cell_names: vec!["k".into(), "f".into(), "use".into(), "spin".into()],
        parents: vec![vec![], vec![], vec![executor_core::CellId::new(1)], vec![]],
        ..RunContext::default()
    });
    let mut globals = Globals::new();
    let results: Vec<RunResult> = cells
        .cells()
        .iter()
        .map(|cell| {
            let token =
                CancelToken::with_deadline(std::time::Instant::now() + Duration::from_secs(60));
            plugin.execute(cell, &mut globals, &token)
        })
        .collect();
    assert_eq!(results[2].output.as_int(), Ok(6));
    let spun = results[3].error.as_ref().expect("stopped at the deadline");
    assert_eq!(spun.kind, ErrorKind::Timeout, "{spun:?}");

    let stopped = CancelToken::new();
    stopped.stop(StopReason::TimedOut);
    let result = plugin.execute(
        cells.cell(executor_core::CellId::new(2)),
        &mut globals,
        &stopped,
    );
    assert_eq!(result.error.unwrap().kind, ErrorKind::Timeout);
}

/// A value living in the plugin: a list of numbers.
#[derive(Clone)]
struct Numbers(Vec<i64>);

impl OwnedValue for Numbers {
    const TYPE_NAME: &'static str = "demo.Numbers";
    fn display(&self) -> String {
        format!("Numbers({:?})", self.0)
    }
    fn json(&self) -> Option<String> {
        Some(format!("{:?}", self.0))
    }
    fn deep_copy(&self) -> Option<Numbers> {
        Some(self.clone())
    }
}

/// Cell `make` defines `ns`, a value it owns; cell `grow` appends to it in place.
struct Owner {
    table: OwnedTable<Numbers>,
}

impl ExecutorPlugin for Owner {
    const NAME: &'static str = "owner";

    fn new(_options: &Options, _logger: Logger) -> Result<Owner, PluginError> {
        Ok(Owner {
            table: OwnedTable::new(),
        })
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        match cell.name.as_str() {
            "make" => {
                let id = self.table.insert(Numbers(vec![1, 2]));
                host.set_owned("ns", id, Numbers::TYPE_NAME)?;
                let mut outcome = Outcome::ok(FfiValue::Unit);
                outcome.owned_output = Some((id, Numbers::TYPE_NAME.into()));
                Ok(outcome)
            }
            _ => {
                let id = host.get_owned("ns").ok_or("`ns` is not mine")?;
                let value = self.table.get(id).ok_or("dropped")?;
                Ok(Outcome::ok(FfiValue::Int(value.0.iter().sum())))
            }
        }
    }

    fn owned(&self) -> Option<&dyn OwnedValues> {
        Some(&self.table)
    }
}

#[test]
fn plugin_owned_values_stay_valid_across_cells_and_answer_for_themselves() {
    let cells = notebook(&[("make", "0"), ("sum", "0")]);
    let (results, globals) = run_all(
        Arc::new(PluginExecutor2::new(
            "owner".into(),
            executor_for_tests::<Owner>(&[]).unwrap(),
            default(),
            vec!["rhai".into()],
        )),
        &cells,
    );
    assert_eq!(results[1].output.as_int(), Ok(3), "{:?}", results[1].error);
    let owned = ForeignValue::from_dynamic(globals.get("ns").unwrap()).expect("a foreign value");
    let object = owned.object();
    assert_eq!(
        (object.type_name(), object.owner()),
        ("demo.Numbers", "owner")
    );
    assert_eq!(object.display(), "Numbers([1, 2])");
    assert_eq!(object.to_json().as_deref(), Some("[1, 2]"));
    let copy = object.deep_copy().expect("the plugin copies it");
    assert_eq!(copy.object().display(), "Numbers([1, 2])");
    assert!(object.encode().is_none());
    let output = ForeignValue::from_dynamic(&results[0].output).expect("an owned output");
    assert_eq!(output.object().display(), "Numbers([1, 2])");
    let any: &dyn Any = object.as_any();
    assert!(
        !any.is::<Numbers>(),
        "the host holds a handle, not the value"
    );
}

/// Skips the cell named `skipped` with output 7; fails tearing down `bad`;
/// records the cells it hears did not run.
#[derive(Default)]
struct Skipper {
    not_run: Mutex<Vec<String>>,
}

impl LifecyclePlugin for Skipper {
    const NAME: &'static str = "skipper";

    fn new(_options: &Options, _logger: Logger) -> Result<Skipper, PluginError> {
        Ok(Skipper::default())
    }

    fn setup(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<FfiSetup, PluginError> {
        if cell.name.as_str() != "skipped" {
            return Ok(FfiSetup::Continue);
        }
        let refused = host.run_default().expect_err("not for lifecycles");
        assert!(refused.message().contains("outside an executor"));
        Ok(FfiSetup::Skip(FfiRunResult {
            output: FfiValue::Int(7),
            stdout: "".into(),
            error: abi_stable::std_types::ROption::RNone,
            cached: true,
        }))
    }

    fn teardown(
        &self,
        cell: &FfiCellContext,
        _result: &FfiRunResult,
        _host: &mut Host<'_>,
    ) -> Result<(), PluginError> {
        if cell.name.as_str() == "bad" {
            return Err("teardown refused".into());
        }
        Ok(())
    }

    fn cell_not_run(&self, cell: &FfiCellContext, result: &FfiRunResult) {
        let kind = result
            .error
            .as_ref()
            .into_option()
            .map_or(FfiErrorKind(255), |error| error.kind);
        self.not_run
            .lock()
            .unwrap()
            .push(format!("{} {}", cell.name, kind.0));
    }
}

#[test]
fn a_1_2_lifecycle_skips_fails_and_hears_of_cells_that_did_not_run() {
    let lifecycle = Arc::new(PluginLifecycle2::new(
        "skipper".into(),
        lifecycle_for_tests::<Skipper>(&[]).unwrap(),
    ));
    let cells = notebook(&[("a", "let x = 20; x"), ("skipped", "x + 1"), ("bad", "2")]);
    let evaluator = Evaluator::new(default(), vec![lifecycle.clone()]);
    let mut globals = Globals::new();
    let results: Vec<RunResult> = cells
        .cells()
        .iter()
        .map(|cell| evaluator.evaluate(cell, &mut globals, &CancelToken::new()))
        .collect();
    assert_eq!(results[1].output.as_int(), Ok(7));
    assert!(results[1].cached);
    assert_eq!(Status::of(&results[2]), Status::Error);
    assert_eq!(
        results[2].error.as_ref().unwrap().message,
        "plugin `skipper` failed in teardown: teardown refused"
    );
    evaluator.cell_not_run(
        cells.cell(executor_core::CellId::new(2)),
        &RunResult::failed(executor_core::CellError::new(
            ErrorKind::Cancelled,
            "not run",
        )),
    );
}

#[test]
fn reading_a_large_global_through_a_view_copies_nothing() {
    /// Reads the length and the last item of `xs` a hundred times.
    struct Reader;
    impl ExecutorPlugin for Reader {
        const NAME: &'static str = "reader";
        fn new(_options: &Options, _logger: Logger) -> Result<Reader, PluginError> {
            Ok(Reader)
        }
        fn execute(
            &self,
            _cell: &FfiCellContext,
            host: &mut Host<'_>,
        ) -> Result<Outcome, PluginError> {
            let mut total = 0;
            for _ in 0..100 {
                let view = host.view("xs").ok_or("no xs")?;
                total += view.index(view.len() - 1).as_int().ok_or("not an int")?;
            }
            Ok(Outcome::ok(FfiValue::Int(total)))
        }
    }
    let cells = notebook(&[
        ("make", "let xs = []; for i in 0..1000000 { xs.push(i) }"),
        ("read", "xs"),
    ]);
    let mut globals = Globals::new();
    let evaluator = Evaluator::new(default(), Vec::new());
    evaluator.evaluate(
        cells.cell(executor_core::CellId::new(0)),
        &mut globals,
        &CancelToken::new(),
    );
    let reader = PluginExecutor2::new(
        "reader".into(),
        executor_for_tests::<Reader>(&[]).unwrap(),
        default(),
        vec!["rhai".into()],
    );
    let result = reader.execute(
        cells.cell(executor_core::CellId::new(1)),
        &mut globals,
        &CancelToken::new(),
    );
    assert_eq!(result.output.as_int(), Ok(999_999 * 100));
}
