//! 1.2 plugins: executors and lifecycles built by `new_executor2` and
//! `new_lifecycle2`, and the [`FfiHost2`] object of each call.

use std::any::Any;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
};
use executor_abi::{
    FfiCellContext, FfiError, FfiExecutor2Box, FfiFunction, FfiHost2, FfiHost2_TO,
    FfiLifecycle2Box, FfiLogLevel, FfiOption, FfiOutcome, FfiOwnedRef, FfiRunInfo, FfiRunOutcome,
    FfiStep, FfiStopReason, FfiValue, FfiValueKind,
};
use executor_core::wire::FnSources;
use executor_core::{
    CancelToken, Cell, CellError, Concurrency, DefaultExecutor, Display, ErrorKind, Executor,
    ForeignObject, ForeignValue, Globals, Lifecycle, RunContext, RunOutcome, RunResult, Setup,
    StopReason,
};
use rhai::Dynamic;

use crate::convert::HandleTable;
use crate::legacy::{emit_log, plugin_error};
use crate::paths;

/// Milliseconds since the Unix epoch of the instant `at`.
fn unix_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = if at >= now {
        SystemTime::now() + (at - now)
    } else {
        SystemTime::now() - (now - at)
    };
    wall.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// The instant of `ms` milliseconds since the Unix epoch.
fn instant_of(ms: u64) -> Instant {
    let wall = UNIX_EPOCH + Duration::from_millis(ms);
    let now = Instant::now();
    match wall.duration_since(SystemTime::now()) {
        Ok(ahead) => now + ahead,
        Err(behind) => now.checked_sub(behind.duration()).unwrap_or(now),
    }
}

fn strings(names: &[String]) -> RVec<RString> {
    names
        .iter()
        .map(|name| RString::from(name.as_str()))
        .collect()
}

/// The 1.2 context of `cell` in `run`.
fn cell_context(cell: &Cell, run: Option<&RunContext>, token: &CancelToken) -> FfiCellContext {
    let name_of = |index: usize| {
        run.and_then(|run| run.cell_names.get(index))
            .cloned()
            .unwrap_or_else(|| format!("cell-{}", index + 1))
    };
    FfiCellContext {
        id: cell.id().index() as u32,
        name: cell.name().into(),
        language: cell.language().into(),
        code: cell.code().into(),
        first_line: cell.first_line(),
        defs: strings(cell.defs()),
        refs: strings(cell.refs()),
        functions: cell
            .functions()
            .iter()
            .map(|function| FfiFunction {
                name: function.name.as_str().into(),
                cell: name_of(function.cell.index()).into(),
                code: (*function.code).into(),
                first_line: cell
                    .fn_source(&function.name)
                    .map_or(1, |(_, first_line)| first_line),
            })
            .collect(),
        fn_refs: strings(cell.fn_refs()),
        parents: run
            .map(|run| run.parent_names(cell.id()).map(RString::from).collect())
            .unwrap_or_default(),
        options: cell
            .options()
            .iter()
            .map(|(key, value)| FfiOption {
                key: key.as_str().into(),
                value: value.as_str().into(),
            })
            .collect(),
        notebook_path: run
            .map(|run| run.notebook_path.as_str())
            .unwrap_or_default()
            .into(),
        notebook_hash: run
            .map(|run| run.notebook_hash.as_str())
            .unwrap_or_default()
            .into(),
        run_id: run
            .map(|run| run.run_id.as_str())
            .unwrap_or_default()
            .into(),
        timeout_ms: run
            .and_then(|run| run.timeout)
            .map(|timeout| timeout.as_millis() as u64)
            .into(),
        deadline_unix_ms: token.deadline().map(unix_ms).into(),
    }
}

fn run_info(run: &RunContext) -> FfiRunInfo {
    FfiRunInfo {
        run_id: run.run_id.as_str().into(),
        notebook_path: run.notebook_path.as_str().into(),
        notebook_hash: run.notebook_hash.as_str().into(),
        language: run.language.into(),
        jobs: u32::try_from(run.jobs).unwrap_or(u32::MAX),
    }
}

fn run_outcome(outcome: &RunOutcome) -> FfiRunOutcome {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    FfiRunOutcome {
        ok: count(outcome.ok),
        error: count(outcome.error),
        cancelled: count(outcome.cancelled),
        interrupted: count(outcome.interrupted),
        was_interrupted: outcome.was_interrupted,
    }
}

/// A value a 1.2 executor plugin owns, held in the globals.
///
/// The host asks the plugin, by id, for what it needs of the value, and
/// tells it when the last copy of the handle is dropped.
struct OwnedHandle {
    plugin: String,
    executor: Arc<FfiExecutor2Box>,
    id: u64,
    type_name: String,
}

impl ForeignObject for OwnedHandle {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn owner(&self) -> &str {
        &self.plugin
    }

    fn display(&self) -> String {
        self.executor.owned_display(self.id).into_string()
    }

    fn to_json(&self) -> Option<String> {
        self.executor
            .owned_json(self.id)
            .into_option()
            .map(RString::into_string)
    }

    fn deep_copy(&self) -> Option<ForeignValue> {
        let id = self.executor.owned_copy(self.id).into_option()?;
        Some(self.sibling(id))
    }

    fn fingerprint(&self) -> Option<Vec<u8>> {
        self.executor
            .owned_fingerprint(self.id)
            .into_option()
            .map(RVec::into_vec)
    }

    fn encode(&self) -> Option<Vec<u8>> {
        self.executor
            .owned_encode(self.id)
            .into_option()
            .map(RVec::into_vec)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl OwnedHandle {
    fn sibling(&self, id: u64) -> ForeignValue {
        ForeignValue::new(OwnedHandle {
            plugin: self.plugin.clone(),
            executor: self.executor.clone(),
            id,
            type_name: self.type_name.clone(),
        })
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        self.executor.owned_drop(self.id);
    }
}

/// What a 1.2 plugin sees of the host during one call.
struct CallHost2<'a> {
    plugin: &'a str,
    cell: &'a Cell,
    globals: &'a mut Globals,
    /// The built-in evaluation and the cell's token, for executors only.
    body: Option<(&'a DefaultExecutor, &'a CancelToken)>,
    /// The executor, to make handles of the values it owns.
    owner: Option<&'a Arc<FfiExecutor2Box>>,
    handles: RefCell<HandleTable>,
}

impl CallHost2<'_> {
    fn read<T>(
        &self,
        name: RStr<'_>,
        path: RSlice<'_, FfiStep>,
        mut read: impl FnMut(&Dynamic) -> T,
    ) -> Option<T> {
        let value = self.globals.get(name.as_str())?;
        paths::at_path(value, path.as_slice(), &mut read)
    }
}

impl FfiHost2 for CallHost2<'_> {
    fn get(&self, name: RStr<'_>) -> ROption<FfiValue> {
        let value = self.globals.get(name.as_str());
        value
            .map(|value| self.handles.borrow_mut().to_ffi(value))
            .into()
    }

    fn set(&mut self, name: RStr<'_>, value: FfiValue) {
        let value = self.handles.borrow().to_dynamic(&value);
        self.globals.set(name.as_str(), value);
    }

    fn remove(&mut self, name: RStr<'_>) -> bool {
        self.globals.remove(name.as_str()).is_some()
    }

    fn names(&self) -> RVec<RString> {
        self.globals.names().map(RString::from).collect()
    }

    fn value_kind(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> FfiValueKind {
        self.read(name, path, paths::kind)
            .unwrap_or(FfiValueKind::MISSING)
    }

    fn value_len(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> u64 {
        self.read(name, path, paths::len).unwrap_or(0)
    }

    fn value_keys(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> RVec<RString> {
        self.read(name, path, paths::keys)
            .unwrap_or_default()
            .into_iter()
            .map(RString::from)
            .collect()
    }

    fn value_get(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> ROption<FfiValue> {
        let handles = &self.handles;
        self.read(name, path, |value| handles.borrow_mut().to_ffi(value))
            .into()
    }

    fn get_wire(&self, name: RStr<'_>) -> RResult<ROption<RString>, FfiError> {
        let Some(value) = self.globals.get(name.as_str()) else {
            return RResult::ROk(ROption::RNone);
        };
        match crate::wire::encode(value, self.cell) {
            Ok(text) => RResult::ROk(ROption::RSome(text.into())),
            Err(message) => RResult::RErr(FfiError {
                message: format!("global `{name}`: {message}").into(),
            }),
        }
    }

    fn set_wire(&mut self, name: RStr<'_>, wire: RStr<'_>) -> RResult<(), FfiError> {
        match crate::wire::decode(wire.as_str()) {
            Ok(value) => {
                self.globals.set(name.as_str(), value);
                RResult::ROk(())
            }
            Err(message) => RResult::RErr(FfiError {
                message: format!("global `{name}`: {message}").into(),
            }),
        }
    }

    fn get_owned(&self, name: RStr<'_>) -> ROption<FfiOwnedRef> {
        let owned = self
            .globals
            .get(name.as_str())
            .and_then(ForeignValue::from_dynamic);
        owned
            .and_then(|value| {
                let handle = value.object().as_any().downcast_ref::<OwnedHandle>()?;
                (handle.plugin == self.plugin).then(|| FfiOwnedRef {
                    id: handle.id,
                    type_name: handle.type_name.as_str().into(),
                })
            })
            .into()
    }

    fn set_owned(&mut self, name: RStr<'_>, value: FfiOwnedRef) {
        let Some(executor) = self.owner else {
            emit_log(
                self.plugin,
                FfiLogLevel::WARN,
                "set_owned from a lifecycle is ignored: only executors own values",
            );
            return;
        };
        let handle = OwnedHandle {
            plugin: self.plugin.to_owned(),
            executor: executor.clone(),
            id: value.id,
            type_name: value.type_name.into_string(),
        };
        self.globals
            .set(name.as_str(), ForeignValue::new(handle).into_dynamic());
    }

    fn stop_reason(&self) -> FfiStopReason {
        match self.body.and_then(|(_, token)| token.reason()) {
            None => FfiStopReason::NONE,
            Some(StopReason::Interrupted) => FfiStopReason::INTERRUPTED,
            Some(StopReason::TimedOut) => FfiStopReason::TIMEOUT,
            Some(StopReason::MemoryLimit) => FfiStopReason::MEMORY,
        }
    }

    fn log(&self, level: FfiLogLevel, message: RStr<'_>) {
        emit_log(self.plugin, level, message.as_str());
    }

    fn run_default_until(
        &mut self,
        deadline_unix_ms: ROption<u64>,
    ) -> RResult<FfiOutcome, FfiError> {
        let Some((executor, token)) = self.body else {
            return RResult::RErr(FfiError {
                message: format!(
                    "plugin `{}` called run_default outside an executor",
                    self.plugin
                )
                .into(),
            });
        };
        let deadline = deadline_unix_ms.into_option().map(instant_of);
        // A panic must not unwind out of this `extern "C"` callback (the
        // process would abort): it becomes the cell's internal error.
        let (cell, globals) = (self.cell, &mut *self.globals);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            executor.execute_until(cell, globals, token, deadline)
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
        RResult::ROk(outcome_to_ffi(&mut self.handles.borrow_mut(), &result))
    }
}

/// The FFI form of a core result.
fn outcome_to_ffi(handles: &mut HandleTable, result: &RunResult) -> FfiOutcome {
    let owned_output = ForeignValue::from_dynamic(&result.output).and_then(|value| {
        let handle = value.object().as_any().downcast_ref::<OwnedHandle>()?;
        Some(FfiOwnedRef {
            id: handle.id,
            type_name: handle.type_name.as_str().into(),
        })
    });
    FfiOutcome {
        result: handles.result_to_ffi(result),
        display: result
            .display
            .as_ref()
            .map(|display| executor_abi::FfiDisplay {
                mime: display.mime.as_str().into(),
                data: display.data.as_str().into(),
            })
            .into(),
        owned_output: owned_output.into(),
    }
}

/// A 1.2 executor plugin as a core [`Executor`].
///
/// Each cell goes through the plugin's `submit`, then `complete`, on the
/// thread the scheduler runs it on; a plugin declaring concurrency above 0
/// is called for several cells at once.
pub struct PluginExecutor2 {
    name: String,
    inner: Arc<FfiExecutor2Box>,
    default: Arc<DefaultExecutor>,
    languages: Vec<String>,
    run: Mutex<Option<Arc<RunContext>>>,
}

impl PluginExecutor2 {
    /// Wraps `inner`, the executor built by the plugin called `name`, which
    /// runs `languages`.
    pub fn new(
        name: String,
        inner: FfiExecutor2Box,
        default: Arc<DefaultExecutor>,
        languages: Vec<String>,
    ) -> PluginExecutor2 {
        PluginExecutor2 {
            name,
            inner: Arc::new(inner),
            default,
            languages,
            run: Mutex::new(None),
        }
    }

    fn result_from_ffi(&self, handles: &HandleTable, outcome: &FfiOutcome) -> RunResult {
        let mut result = handles.result_from_ffi(&outcome.result);
        if let ROption::RSome(owned) = &outcome.owned_output {
            result.output = ForeignValue::new(OwnedHandle {
                plugin: self.name.clone(),
                executor: self.inner.clone(),
                id: owned.id,
                type_name: owned.type_name.as_str().to_owned(),
            })
            .into_dynamic();
        }
        result.display = outcome
            .display
            .as_ref()
            .into_option()
            .map(|display| Display {
                mime: display.mime.as_str().to_owned(),
                data: display.data.as_str().to_owned(),
            });
        result
    }
}

impl Executor for PluginExecutor2 {
    fn name(&self) -> &str {
        &self.name
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        let run = self
            .run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let context = cell_context(cell, run.as_deref(), token);
        let mut host = CallHost2 {
            plugin: &self.name,
            cell,
            globals,
            body: Some((&self.default, token)),
            owner: Some(&self.inner),
            handles: RefCell::default(),
        };
        let submitted = self
            .inner
            .submit(&context, FfiHost2_TO::from_ptr(&mut host, TD_Opaque));
        let completed = match submitted {
            RResult::ROk(ticket) => self
                .inner
                .complete(ticket, FfiHost2_TO::from_ptr(&mut host, TD_Opaque)),
            RResult::RErr(error) => RResult::RErr(error),
        };
        match completed {
            RResult::ROk(outcome) => self.result_from_ffi(&host.handles.borrow(), &outcome),
            RResult::RErr(error) => RunResult::failed(plugin_error(&self.name, &error)),
        }
    }

    fn languages(&self) -> Vec<String> {
        self.languages.clone()
    }

    fn concurrency(&self) -> Concurrency {
        if self.inner.concurrency() > 0 {
            Concurrency::Parallel
        } else {
            Concurrency::Sequential
        }
    }

    fn run_started(&self, run: &RunContext) {
        *self.run.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(run.clone()));
        if let RResult::RErr(error) = self.inner.run_started(&run_info(run)) {
            tracing::warn!(plugin = %self.name, "{}", error.message);
        }
    }

    fn run_finished(&self, outcome: &RunOutcome) {
        self.inner.run_finished(&run_outcome(outcome));
    }

    fn decode_foreign(
        &self,
        owner: &str,
        type_name: &str,
        data: &[u8],
    ) -> Option<Result<ForeignValue, String>> {
        if owner != self.name {
            return None;
        }
        Some(
            match self.inner.owned_decode(type_name.into(), data.into()) {
                ROption::RSome(id) => Ok(ForeignValue::new(OwnedHandle {
                    plugin: self.name.clone(),
                    executor: self.inner.clone(),
                    id,
                    type_name: type_name.to_owned(),
                })),
                ROption::RNone => Err(format!("plugin `{}` cannot decode it", self.name)),
            },
        )
    }
}

/// A 1.2 lifecycle plugin as a core [`Lifecycle`].
pub struct PluginLifecycle2 {
    name: String,
    inner: FfiLifecycle2Box,
    run: Mutex<Option<Arc<RunContext>>>,
}

impl PluginLifecycle2 {
    /// Wraps `inner`, the lifecycle built by the plugin called `name`.
    pub fn new(name: String, inner: FfiLifecycle2Box) -> PluginLifecycle2 {
        PluginLifecycle2 {
            name,
            inner,
            run: Mutex::new(None),
        }
    }

    fn context(&self, cell: &Cell) -> FfiCellContext {
        let run = self
            .run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        cell_context(cell, run.as_deref(), &CancelToken::new())
    }
}

impl Lifecycle for PluginLifecycle2 {
    fn name(&self) -> &str {
        &self.name
    }

    fn setup(&self, cell: &Cell, globals: &mut Globals) -> Result<Setup, CellError> {
        let context = self.context(cell);
        let mut host = CallHost2 {
            plugin: &self.name,
            cell,
            globals,
            body: None,
            owner: None,
            handles: RefCell::default(),
        };
        let res = self
            .inner
            .setup(&context, FfiHost2_TO::from_ptr(&mut host, TD_Opaque));
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
        let context = self.context(cell);
        let mut handles = HandleTable::new();
        let ffi_result = handles.result_to_ffi(result);
        let mut host = CallHost2 {
            plugin: &self.name,
            cell,
            globals,
            body: None,
            owner: None,
            handles: RefCell::new(handles),
        };
        let res = self.inner.teardown(
            &context,
            &ffi_result,
            FfiHost2_TO::from_ptr(&mut host, TD_Opaque),
        );
        match res {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(error) => Err(plugin_error(&self.name, &error)),
        }
    }

    fn cell_not_run(&self, cell: &Cell, result: &RunResult) {
        let context = self.context(cell);
        let ffi_result = HandleTable::new().result_to_ffi(result);
        self.inner.cell_not_run(&context, &ffi_result);
    }

    fn run_started(&self, run: &RunContext) {
        *self.run.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(run.clone()));
        if let RResult::RErr(error) = self.inner.run_started(&run_info(run)) {
            tracing::warn!(plugin = %self.name, "{}", error.message);
        }
    }

    fn run_finished(&self, outcome: &RunOutcome) {
        self.inner.run_finished(&run_outcome(outcome));
    }
}
