//! Test support for plugin authors: a mock host and an in-process harness.
//!
//! A plugin's tests run it without the runner and without loading a
//! library: [`Harness`] constructs the plugin as the runner would, runs
//! cells through it against a [`MockHost`] holding the globals, and returns
//! each cell's [`Outcome`].
//!
//! ```
//! use executor_abi::sdk::testing::{Harness, TestCell};
//! use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError, Value};
//! use executor_abi::{FfiCellContext, FfiValue};
//!
//! /// Doubles the integer global its cell reads into the global it defines.
//! struct Doubler;
//!
//! impl ExecutorPlugin for Doubler {
//!     const NAME: &'static str = "doubler";
//!     fn new(_options: &Options, _logger: Logger) -> Result<Doubler, PluginError> {
//!         Ok(Doubler)
//!     }
//!     fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
//!         let input = host.view(&cell.refs[0]).and_then(|view| view.as_int()).unwrap_or(0);
//!         host.set(&cell.defs[0], FfiValue::Int(input * 2));
//!         Ok(Outcome::ok(FfiValue::Int(input * 2)))
//!     }
//! }
//!
//! let mut harness = Harness::new::<Doubler>(&[]).unwrap();
//! harness.host().define("x", Value::Int(21));
//! let outcomes = harness.run(&[TestCell::new("a", "y = 2 * x").defs(&["y"]).refs(&["x"])]);
//! assert_eq!(outcomes[0].output, FfiValue::Int(42));
//! assert_eq!(harness.host().value("y"), Some(Value::Int(42)));
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::SystemTime;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RResult, RSlice, RStr, RString, RVec},
};

use super::host::{kind_of, len_of, unix_ms, walk};
use super::{ffi_options, new_executor2, wire, ExecutorPlugin, Outcome, Value};
use crate::{
    FfiCellContext, FfiError, FfiExecutor2Box, FfiHost2, FfiHost2_TO, FfiLog, FfiLogLevel,
    FfiLog_TO, FfiLogger, FfiOutcome, FfiOwnedRef, FfiRunInfo, FfiRunOutcome, FfiStep,
    FfiStopReason, FfiValue, FfiValueKind,
};

/// Prints a plugin's log lines to stderr, which the test harness captures.
struct StderrLog {
    plugin: String,
}

impl FfiLog for StderrLog {
    fn log(&self, level: FfiLogLevel, message: RStr<'_>) {
        eprintln!("[{} log {}] {}", self.plugin, level.0, message.as_str());
    }
}

/// A logger for tests: lines go to stderr, prefixed with the plugin's name.
pub fn logger(plugin: &str) -> FfiLogger {
    FfiLog_TO::from_ptr(
        RArc::new(StderrLog {
            plugin: plugin.to_owned(),
        }),
        TD_Opaque,
    )
}

/// What [`MockHost`] runs when a plugin asks for the built-in evaluation.
pub type DefaultBody =
    Box<dyn FnMut(&FfiCellContext, &mut BTreeMap<String, Value>) -> Outcome + Send>;

/// A host for tests: globals in a map, logs collected, a stop reason the
/// test sets, and an optional stand-in for the built-in evaluation (the
/// real one needs the runner; this crate does not link a cell language).
#[derive(Default)]
pub struct MockHost {
    globals: BTreeMap<String, Value>,
    owned: BTreeMap<String, FfiOwnedRef>,
    stop: Option<FfiStopReason>,
    logs: RefCell<Vec<(FfiLogLevel, String)>>,
    default_body: Option<DefaultBody>,
    cell: Option<FfiCellContext>,
    in_executor: bool,
}

impl MockHost {
    /// An empty host.
    pub fn new() -> MockHost {
        MockHost::default()
    }

    /// Defines a global before the cells run.
    pub fn define(&mut self, name: &str, value: Value) {
        self.owned.remove(name);
        self.globals.insert(name.to_owned(), value);
    }

    /// The value of a global, if defined (owned values are not here: see [`MockHost::owned`]).
    pub fn value(&self, name: &str) -> Option<Value> {
        self.globals.get(name).cloned()
    }

    /// The owned value a global holds, if it holds one.
    pub fn owned(&self, name: &str) -> Option<(u64, String)> {
        self.owned
            .get(name)
            .map(|owned| (owned.id, owned.type_name.as_str().to_owned()))
    }

    /// The lines the plugin logged through the host, in order.
    pub fn logs(&self) -> Vec<(FfiLogLevel, String)> {
        self.logs.borrow().clone()
    }

    /// Makes every later stop check see `reason` (`None` clears it).
    pub fn stop(&mut self, reason: Option<FfiStopReason>) {
        self.stop = reason;
    }

    /// What `run_default` runs: `body` sees the cell and the globals.
    pub fn with_default_body(&mut self, body: DefaultBody) {
        self.default_body = Some(body);
    }

    /// This host as the object a plugin call receives, for `cell`.
    pub fn as_ffi(
        &mut self,
        cell: Option<&FfiCellContext>,
        in_executor: bool,
    ) -> FfiHost2_TO<'_, abi_stable::sabi_types::RMut<'_, ()>> {
        self.cell = cell.cloned();
        self.in_executor = in_executor;
        FfiHost2_TO::from_ptr(self, TD_Opaque)
    }

    fn ffi_value(&self, name: &str) -> Option<FfiValue> {
        self.globals.get(name).and_then(Value::to_ffi)
    }
}

impl FfiHost2 for MockHost {
    fn get(&self, name: RStr<'_>) -> ROption<FfiValue> {
        self.ffi_value(name.as_str()).into()
    }

    fn set(&mut self, name: RStr<'_>, value: FfiValue) {
        let value = Value::from_ffi(&value).unwrap_or(Value::Unit);
        self.define(name.as_str(), value);
    }

    fn remove(&mut self, name: RStr<'_>) -> bool {
        let plain = self.globals.remove(name.as_str()).is_some();
        self.owned.remove(name.as_str()).is_some() || plain
    }

    fn names(&self) -> RVec<RString> {
        self.globals
            .keys()
            .chain(self.owned.keys())
            .map(|name| RString::from(name.as_str()))
            .collect()
    }

    fn value_kind(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> FfiValueKind {
        if path.is_empty() && self.owned.contains_key(name.as_str()) {
            return FfiValueKind::OWNED;
        }
        let value = self.ffi_value(name.as_str());
        value
            .as_ref()
            .and_then(|value| walk(value, path.as_slice()))
            .map_or(FfiValueKind::MISSING, kind_of)
    }

    fn value_len(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> u64 {
        self.value_get(name, path)
            .into_option()
            .map_or(0, |value| len_of(&value))
    }

    fn value_keys(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> RVec<RString> {
        match self.value_get(name, path).into_option() {
            Some(FfiValue::Map(entries)) => {
                let mut keys: Vec<RString> =
                    entries.iter().map(|entry| entry.key.clone()).collect();
                keys.sort();
                keys.into()
            }
            _ => RVec::new(),
        }
    }

    fn value_get(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> ROption<FfiValue> {
        let value = self.ffi_value(name.as_str());
        value
            .as_ref()
            .and_then(|value| walk(value, path.as_slice()))
            .cloned()
            .into()
    }

    fn get_wire(&self, name: RStr<'_>) -> RResult<ROption<RString>, FfiError> {
        RResult::ROk(
            self.globals
                .get(name.as_str())
                .map(|value| RString::from(wire::encode(value)))
                .into(),
        )
    }

    fn set_wire(&mut self, name: RStr<'_>, text: RStr<'_>) -> RResult<(), FfiError> {
        match wire::decode(text.as_str()) {
            Ok(value) => {
                self.define(name.as_str(), value);
                RResult::ROk(())
            }
            Err(error) => RResult::RErr(FfiError {
                message: error.to_string().into(),
            }),
        }
    }

    fn get_owned(&self, name: RStr<'_>) -> ROption<FfiOwnedRef> {
        self.owned.get(name.as_str()).cloned().into()
    }

    fn set_owned(&mut self, name: RStr<'_>, value: FfiOwnedRef) {
        self.globals.remove(name.as_str());
        self.owned.insert(name.as_str().to_owned(), value);
    }

    fn stop_reason(&self) -> FfiStopReason {
        self.stop.unwrap_or(FfiStopReason::NONE)
    }

    fn log(&self, level: FfiLogLevel, message: RStr<'_>) {
        self.logs
            .borrow_mut()
            .push((level, message.as_str().to_owned()));
    }

    fn run_default_until(
        &mut self,
        deadline_unix_ms: ROption<u64>,
    ) -> RResult<FfiOutcome, FfiError> {
        if !self.in_executor {
            return RResult::RErr(FfiError {
                message: "run_default is only for executors".into(),
            });
        }
        if let ROption::RSome(deadline) = deadline_unix_ms {
            if deadline <= unix_ms(SystemTime::now()) {
                return RResult::ROk(Outcome::stopped(super::StopReason::Timeout).into_ffi());
            }
        }
        let (Some(body), Some(cell)) = (self.default_body.as_mut(), self.cell.as_ref()) else {
            return RResult::RErr(FfiError {
                message: "the mock host has no built-in evaluation; give one with MockHost::with_default_body".into(),
            });
        };
        RResult::ROk(body(cell, &mut self.globals).into_ffi())
    }
}

/// A cell for [`Harness::run`]: name, code, and the analysis a notebook
/// format would have made (the harness links no cell language).
#[derive(Clone, Debug)]
pub struct TestCell {
    context: FfiCellContext,
}

impl TestCell {
    /// A Rhai cell named `name` with `code`, defining and reading nothing.
    pub fn new(name: &str, code: &str) -> TestCell {
        let mut context = super::cell_from_legacy(&crate::FfiCell {
            id: 0,
            name: name.into(),
            code: code.into(),
            defs: RVec::new(),
            refs: RVec::new(),
            first_line: 1,
        });
        context.run_id = "test-run".into();
        TestCell { context }
    }

    /// The same cell defining `defs`.
    pub fn defs(mut self, defs: &[&str]) -> TestCell {
        self.context.defs = defs.iter().map(|name| RString::from(*name)).collect();
        self
    }

    /// The same cell reading `refs`.
    pub fn refs(mut self, refs: &[&str]) -> TestCell {
        self.context.refs = refs.iter().map(|name| RString::from(*name)).collect();
        self
    }

    /// The same cell in `language`.
    pub fn language(mut self, language: &str) -> TestCell {
        self.context.language = language.into();
        self
    }

    /// The same cell starting at notebook line `line`.
    pub fn first_line(mut self, line: u32) -> TestCell {
        self.context.first_line = line;
        self
    }

    /// The cell's full context, to adjust any field.
    pub fn context_mut(&mut self) -> &mut FfiCellContext {
        &mut self.context
    }
}

/// Runs cells through an executor plugin in-process, as the runner would:
/// `run_started`, then `submit` and `complete` for each cell in order, then
/// `run_finished`, all against one [`MockHost`].
pub struct Harness {
    executor: FfiExecutor2Box,
    host: MockHost,
}

impl Harness {
    /// Constructs `P` with `options` (`--plugin-opt` keys without the name).
    ///
    /// # Errors
    /// What the constructor returns, naming the plugin.
    pub fn new<P: ExecutorPlugin>(options: &[(&str, &str)]) -> Result<Harness, FfiError> {
        let executor = new_executor2::<P>(ffi_options(options), logger(P::NAME)).into_result()?;
        Ok(Harness {
            executor,
            host: MockHost::new(),
        })
    }

    /// The host the cells run against.
    pub fn host(&mut self) -> &mut MockHost {
        &mut self.host
    }

    /// The executor, for calls the harness does not make.
    pub fn executor(&self) -> &FfiExecutor2Box {
        &self.executor
    }

    /// Runs `cells` in order; an error of a call becomes the cell's
    /// `plugin` error, as in the runner.
    pub fn run(&mut self, cells: &[TestCell]) -> Vec<Outcome> {
        let info = FfiRunInfo {
            run_id: "test-run".into(),
            notebook_path: "test.rhai".into(),
            notebook_hash: "0".into(),
            language: "rhai".into(),
            jobs: 1,
        };
        if let RResult::RErr(error) = self.executor.run_started(&info) {
            eprintln!("run_started failed: {}", error.message);
        }
        let mut outcomes = Vec::new();
        let mut tally = FfiRunOutcome {
            ok: 0,
            error: 0,
            cancelled: 0,
            interrupted: 0,
            was_interrupted: false,
        };
        for (index, cell) in cells.iter().enumerate() {
            let mut context = cell.context.clone();
            context.id = index as u32;
            let submitted = self
                .executor
                .submit(&context, self.host.as_ffi(Some(&context), true));
            let outcome = match submitted.into_result().and_then(|ticket| {
                self.executor
                    .complete(ticket, self.host.as_ffi(Some(&context), true))
                    .into_result()
            }) {
                Ok(outcome) => Outcome::from_ffi(outcome),
                Err(error) => Outcome::failed(
                    crate::FfiErrorKind::PLUGIN,
                    error.message.into_string(),
                    None,
                ),
            };
            if outcome.is_ok() {
                tally.ok += 1;
            } else {
                tally.error += 1;
            }
            outcomes.push(outcome);
        }
        self.executor.run_finished(&tally);
        outcomes
    }
}
