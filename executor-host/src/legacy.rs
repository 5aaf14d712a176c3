//! Plugins of the 1.0 and 1.1 interface (and 1.2 plugins in their 1.0
//! form): their objects as core executors and lifecycles, and the
//! [`FfiHost`] and [`FfiLog`] objects given to them.

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

use executor_abi::{
    FfiError, FfiExecutorBox, FfiHost, FfiHost_TO, FfiLifecycleBox, FfiLog, FfiLogLevel, FfiLog_TO,
    FfiLogger, FfiRunResult, FfiValue,
};

use crate::convert::{ffi_cell, HandleTable};

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
        let ffi_cell = ffi_cell(cell);
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
        let ffi_cell = ffi_cell(cell);
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
        let ffi_cell = ffi_cell(cell);
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
