//! The host side of the ABI: loaded plugin objects as core executors and
//! lifecycles, and the [`FfiHost`] and [`FfiLog`] objects given to plugins.
//!
//! The runner finds and loads libraries; this module only adapts what it
//! loaded, so it can be tested against plugins linked as plain Rust crates.

use std::cell::RefCell;
use std::sync::Arc;

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, ROption, RResult, RStr, RString, RVec},
};
use executor_core::{
    CancelToken, Cell, CellError, DefaultExecutor, ErrorKind, Executor, Globals, Lifecycle,
    RunResult, Setup,
};

use crate::{
    FfiCell, FfiError, FfiExecutorBox, FfiHost, FfiHost_TO, FfiLifecycleBox, FfiLog, FfiLogLevel,
    FfiLog_TO, FfiLogger, FfiRunResult, FfiValue, HandleTable,
};

/// Re-emits a plugin's log line through `tracing`, with the plugin's name
/// as the `plugin` field and `plugin` as the target.
pub fn emit_log(plugin: &str, level: FfiLogLevel, message: &str) {
    match level {
        FfiLogLevel::ERROR => tracing::error!(target: "plugin", plugin, "{message}"),
        FfiLogLevel::WARN => tracing::warn!(target: "plugin", plugin, "{message}"),
        FfiLogLevel::INFO => tracing::info!(target: "plugin", plugin, "{message}"),
        FfiLogLevel::DEBUG => tracing::debug!(target: "plugin", plugin, "{message}"),
        _ => tracing::trace!(target: "plugin", plugin, "{message}"),
    }
}

/// The log callback of one plugin: [`emit_log`] with its name.
struct HostLog {
    plugin: String,
}

impl FfiLog for HostLog {
    fn log(&self, level: FfiLogLevel, message: RStr<'_>) {
        emit_log(&self.plugin, level, message.as_str());
    }
}

/// The logger handed to `plugin`'s constructor.
pub fn logger(plugin: &str) -> FfiLogger {
    FfiLog_TO::from_ptr(
        RArc::new(HostLog {
            plugin: plugin.to_owned(),
        }),
        TD_Opaque,
    )
}

/// The error a plugin call becomes: kind `plugin`, naming the plugin.
///
/// Messages from the SDK already name the plugin; others get its name in front.
pub fn plugin_error(plugin: &str, error: &FfiError) -> CellError {
    let message = error.message.as_str();
    let message = if message.starts_with(&format!("plugin `{plugin}`")) {
        message.to_owned()
    } else {
        format!("plugin `{plugin}`: {message}")
    };
    CellError::new(ErrorKind::Plugin, message)
}

/// What a plugin sees of the host during one call.
struct CallHost<'a> {
    plugin: &'a str,
    cell: &'a Cell,
    globals: &'a mut Globals,
    /// The built-in evaluation and the cell's token, for executors only.
    body: Option<(&'a DefaultExecutor, &'a CancelToken)>,
    handles: RefCell<HandleTable>,
}

impl FfiHost for CallHost<'_> {
    fn get(&self, name: RStr<'_>) -> ROption<FfiValue> {
        let value = self.globals.get(name.as_str());
        value
            .map(|value| self.handles.borrow_mut().to_ffi(value))
            .into()
    }

    fn set(&mut self, name: RStr<'_>, value: FfiValue) -> ROption<FfiValue> {
        let value = self.handles.borrow().to_dynamic(&value);
        let previous = self.globals.set(name.as_str(), value);
        previous
            .map(|previous| self.handles.borrow_mut().to_ffi(&previous))
            .into()
    }

    fn remove(&mut self, name: RStr<'_>) -> ROption<FfiValue> {
        let previous = self.globals.remove(name.as_str());
        previous
            .map(|previous| self.handles.borrow_mut().to_ffi(&previous))
            .into()
    }

    fn names(&self) -> RVec<RString> {
        self.globals.names().map(RString::from).collect()
    }

    fn run_default(&mut self) -> RResult<FfiRunResult, FfiError> {
        let Some((executor, token)) = self.body else {
            return RResult::RErr(FfiError {
                message: format!(
                    "plugin `{}` called run_default outside an executor",
                    self.plugin
                )
                .into(),
            });
        };
        // A panic must not unwind out of this `extern "C"` callback (the
        // process would abort): it becomes the cell's internal error.
        let (cell, globals) = (self.cell, &mut *self.globals);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            executor.execute(cell, globals, token)
        }))
        .unwrap_or_else(|payload| {
            RunResult::failed(CellError::new(
                ErrorKind::Internal,
                format!(
                    "the built-in evaluation panicked: {}",
                    executor_core::panic_message(payload.as_ref())
                ),
            ))
        });
        RResult::ROk(self.handles.borrow_mut().result_to_ffi(&result))
    }

    fn is_cancelled(&self) -> bool {
        self.body.is_some_and(|(_, token)| token.is_stopped())
    }

    fn log(&self, level: FfiLogLevel, message: RStr<'_>) {
        emit_log(self.plugin, level, message.as_str());
    }
}

/// An executor plugin as a core [`Executor`].
///
/// Its host object runs bodies with `default`, the built-in executor.
pub struct PluginExecutor {
    name: String,
    inner: FfiExecutorBox,
    default: Arc<DefaultExecutor>,
}

impl PluginExecutor {
    /// Wraps `inner`, the executor built by the plugin called `name`.
    pub fn new(
        name: String,
        inner: FfiExecutorBox,
        default: Arc<DefaultExecutor>,
    ) -> PluginExecutor {
        PluginExecutor {
            name,
            inner,
            default,
        }
    }
}

impl Executor for PluginExecutor {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        let ffi_cell = FfiCell::from(cell);
        let mut host = CallHost {
            plugin: &self.name,
            cell,
            globals,
            body: Some((&self.default, token)),
            handles: RefCell::default(),
        };
        let res = self
            .inner
            .execute(&ffi_cell, FfiHost_TO::from_ptr(&mut host, TD_Opaque));
        match res {
            RResult::ROk(result) => host.handles.borrow().result_from_ffi(&result),
            RResult::RErr(error) => RunResult::failed(plugin_error(&self.name, &error)),
        }
    }
}

/// A lifecycle plugin as a core [`Lifecycle`].
pub struct PluginLifecycle {
    name: String,
    inner: FfiLifecycleBox,
}

impl PluginLifecycle {
    /// Wraps `inner`, the lifecycle built by the plugin called `name`.
    pub fn new(name: String, inner: FfiLifecycleBox) -> PluginLifecycle {
        PluginLifecycle { name, inner }
    }
}

impl Lifecycle for PluginLifecycle {
    fn name(&self) -> &str {
        &self.name
    }

    fn setup(&self, cell: &Cell, globals: &mut Globals) -> Result<Setup, CellError> {
        let ffi_cell = FfiCell::from(cell);
        let mut host = CallHost {
            plugin: &self.name,
            cell,
            globals,
            body: None,
            handles: RefCell::default(),
        };
        let res = self
            .inner
            .setup(&ffi_cell, FfiHost_TO::from_ptr(&mut host, TD_Opaque));
        match res {
            RResult::ROk(setup) => Ok(host.handles.borrow().setup_from_ffi(&setup)),
            RResult::RErr(error) => Err(plugin_error(&self.name, &error)),
        }
    }

    fn teardown(
        &self,
        cell: &Cell,
        globals: &mut Globals,
        result: &RunResult,
    ) -> Result<(), CellError> {
        let ffi_cell = FfiCell::from(cell);
        let mut handles = HandleTable::new();
        let ffi_result = handles.result_to_ffi(result);
        let mut host = CallHost {
            plugin: &self.name,
            cell,
            globals,
            body: None,
            handles: RefCell::new(handles),
        };
        let res = self.inner.teardown(
            &ffi_cell,
            &ffi_result,
            FfiHost_TO::from_ptr(&mut host, TD_Opaque),
        );
        match res {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(error) => Err(plugin_error(&self.name, &error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use executor_core::{CellSource, Evaluator, Limits, Notebook, Status};

    use super::*;
    use crate::sdk::{
        executor_for_tests, lifecycle_for_tests, ExecutorPlugin, Host, LifecyclePlugin, Logger,
        Options, PluginError,
    };
    use crate::{FfiSetup, FfiValue};

    /// Runs bodies with the host's evaluation, then doubles an integer
    /// output and records the names it saw in the global `seen`.
    struct Doubler;

    impl ExecutorPlugin for Doubler {
        const NAME: &'static str = "doubler";

        fn new(_options: &Options, _logger: Logger) -> Result<Doubler, PluginError> {
            Ok(Doubler)
        }

        fn execute(
            &self,
            cell: &FfiCell,
            host: &mut Host<'_>,
        ) -> Result<FfiRunResult, PluginError> {
            if cell.name.as_str() == "panics" {
                panic!("asked to");
            }
            let mut result = host.run_default()?;
            if let FfiValue::Int(value) = result.output {
                result.output = FfiValue::Int(value * 2);
            }
            let mut names = host.names();
            names.sort();
            host.set("seen", FfiValue::Str(names.join(",").into()));
            Ok(result)
        }
    }

    /// Skips the cell named `skipped` with output 7; fails tearing down `bad`.
    struct Skipper;

    impl LifecyclePlugin for Skipper {
        const NAME: &'static str = "skipper";

        fn new(_options: &Options, _logger: Logger) -> Result<Skipper, PluginError> {
            Ok(Skipper)
        }

        fn setup(&self, cell: &FfiCell, host: &mut Host<'_>) -> Result<FfiSetup, PluginError> {
            if cell.name.as_str() != "skipped" {
                return Ok(FfiSetup::Continue);
            }
            let mut result = host.run_default().expect_err("not for lifecycles");
            result = PluginError::new(format!("{result} (as expected)"));
            assert!(result.message().contains("outside an executor"));
            Ok(FfiSetup::Skip(FfiRunResult {
                output: FfiValue::Int(7),
                stdout: "".into(),
                error: abi_stable::std_types::ROption::RNone,
                cached: true,
            }))
        }

        fn teardown(
            &self,
            cell: &FfiCell,
            _result: &FfiRunResult,
            _host: &mut Host<'_>,
        ) -> Result<(), PluginError> {
            if cell.name.as_str() == "bad" {
                return Err("teardown refused".into());
            }
            Ok(())
        }
    }

    #[test]
    fn plugin_executors_and_lifecycles_run_through_the_host() {
        let limits = Limits::default();
        let default = Arc::new(DefaultExecutor::new(&limits));
        let executor = PluginExecutor::new(
            "doubler".into(),
            executor_for_tests::<Doubler>(&[]).unwrap(),
            default,
        );
        let lifecycle = PluginLifecycle::new(
            "skipper".into(),
            lifecycle_for_tests::<Skipper>(&[]).unwrap(),
        );
        let sources = [
            ("a", "let x = 20; x"),
            ("skipped", "x + 1"),
            ("panics", "1"),
            ("bad", "2"),
        ];
        let notebook = Notebook::compile(
            sources
                .iter()
                .enumerate()
                .map(|(index, (name, code))| CellSource {
                    name: (*name).into(),
                    code: (*code).into(),
                    first_line: index as u32 + 1,
                    options: Vec::new(),
                })
                .collect(),
            &limits,
        );
        let evaluator = Evaluator::new(Arc::new(executor), vec![Arc::new(lifecycle)]);
        let mut globals = Globals::new();
        let token = CancelToken::new();
        let results: Vec<RunResult> = notebook
            .cells()
            .iter()
            .map(|cell| evaluator.evaluate(cell, &mut globals, &token))
            .collect();
        assert_eq!(results[0].output.as_int(), Ok(40));
        assert_eq!(globals.get("x").unwrap().as_int(), Ok(20));
        assert_eq!(
            globals.get("seen").unwrap().clone().into_string().unwrap(),
            "seen,x",
            "the last cell run by the plugin saw both globals"
        );
        assert_eq!(results[1].output.as_int(), Ok(7));
        assert!(results[1].cached);
        let panicked = results[2].error.as_ref().unwrap();
        assert_eq!(panicked.kind, ErrorKind::Plugin);
        assert_eq!(
            panicked.message,
            "plugin `doubler` panicked in execute: asked to"
        );
        assert_eq!(Status::of(&results[3]), Status::Error);
        assert_eq!(
            results[3].error.as_ref().unwrap().message,
            "plugin `skipper` failed in teardown: teardown refused"
        );
    }
}
