//! The plugin SDK: implement a plain Rust trait, write one export line.
//!
//! - An executor plugin implements [`ExecutorPlugin`] and writes
//!   `executor_abi::export_executor!(MyExecutor);`.
//! - A lifecycle plugin implements [`LifecyclePlugin`] and writes
//!   `executor_abi::export_lifecycle!(MyLifecycle);`.
//!
//! During a call the plugin talks to the runner through a [`Host`]: globals
//! (copies, zero-copy [`View`]s, the wire form), values it owns, the stop
//! reason, and the built-in evaluation. [`Value`] and [`wire`] are the value
//! helpers; [`testing`] has a mock host and an in-process harness, so a
//! plugin's tests need no runner and no library loading.
//!
//! The macro exports the library's root module. The SDK catches every panic
//! in the plugin's code (constructor, execute, setup, teardown, drop) and
//! returns it as an error naming the plugin: abi_stable would otherwise exit
//! the whole process. Build plugins with `panic = "unwind"` (the default);
//! the runner refuses a library built with `panic = "abort"`.

mod host;
mod outcome;
pub mod testing;
mod value;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
};

pub use self::host::{Host, StopReason, StopSignal, View};
pub use self::outcome::{cell_from_legacy, Outcome};
pub use self::value::{ffi_to_json, Value};
use crate::{
    FfiCell, FfiCellContext, FfiError, FfiExecutor, FfiExecutor2, FfiExecutor2Box, FfiExecutor2_TO,
    FfiExecutorBox, FfiExecutor_TO, FfiHost2Mut, FfiHostMut, FfiLifecycle, FfiLifecycle2,
    FfiLifecycle2Box, FfiLifecycle2_TO, FfiLifecycleBox, FfiLifecycle_TO, FfiLogLevel, FfiLogger,
    FfiOption, FfiOutcome, FfiPluginKind, FfiRunInfo, FfiRunOutcome, FfiRunResult, FfiSetup,
    PluginMod, PluginMod_Ref,
};

/// Why a plugin call failed, in one line (lowercase, no trailing period).
///
/// The runner shows it naming the plugin; a failed constructor makes the
/// runner leave the plugin out, a failed call fails the cell with kind
/// `plugin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    message: String,
}

impl PluginError {
    /// An error saying `message`.
    pub fn new(message: impl fmt::Display) -> PluginError {
        PluginError {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<String> for PluginError {
    fn from(message: String) -> PluginError {
        PluginError { message }
    }
}

impl From<&str> for PluginError {
    fn from(message: &str) -> PluginError {
        PluginError::new(message)
    }
}

/// The options given to a plugin: every `--plugin-opt NAME.KEY=VALUE` for
/// its NAME, as key and value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    entries: Vec<(String, String)>,
}

impl Options {
    /// Options from key/value pairs; a later key wins over an earlier one.
    pub fn new(entries: impl IntoIterator<Item = (String, String)>) -> Options {
        Options {
            entries: entries.into_iter().collect(),
        }
    }

    /// The value of `key`, if given (the last one when given several times).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `key` parsed as a `T`, or `default` when not given.
    ///
    /// # Errors
    /// When the value does not parse; the message names the key and value.
    pub fn parse_or<T>(&self, key: &str, default: T) -> Result<T, PluginError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|error| PluginError::new(format!("option `{key}={text}`: {error}"))),
        }
    }

    /// Fails when an option other than `known` was given.
    ///
    /// # Errors
    /// Names the first unknown key and the known ones.
    pub fn reject_unknown(&self, known: &[&str]) -> Result<(), PluginError> {
        match self
            .entries
            .iter()
            .find(|(key, _)| !known.contains(&key.as_str()))
        {
            None => Ok(()),
            Some((key, _)) => Err(PluginError::new(format!(
                "unknown option `{key}` (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))),
        }
    }

    /// The keys and values in the order given.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl From<RVec<FfiOption>> for Options {
    fn from(options: RVec<FfiOption>) -> Options {
        Options::new(
            options
                .into_iter()
                .map(|option| (option.key.into_string(), option.value.into_string())),
        )
    }
}

/// The host's log callback, to keep for the plugin's lifetime.
///
/// Lines reach the runner's log output with the plugin's name. A plugin's
/// own `tracing` or `log` calls do not: a shared library links its own copy.
#[derive(Clone)]
pub struct Logger {
    inner: Arc<FfiLogger>,
}

impl Logger {
    /// Wraps the host's logger object.
    pub fn new(inner: FfiLogger) -> Logger {
        Logger {
            inner: Arc::new(inner),
        }
    }

    /// Emits `message` at `level`.
    pub fn log(&self, level: FfiLogLevel, message: &str) {
        self.inner.log(level, RStr::from_str(message));
    }

    /// Emits `message` at the warning level.
    pub fn warn(&self, message: &str) {
        self.log(FfiLogLevel::WARN, message);
    }

    /// Emits `message` at the info level.
    pub fn info(&self, message: &str) {
        self.log(FfiLogLevel::INFO, message);
    }

    /// Emits `message` at the debug level.
    pub fn debug(&self, message: &str) {
        self.log(FfiLogLevel::DEBUG, message);
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger").finish_non_exhaustive()
    }
}

/// An executor shipped as a plugin.
///
/// The runner constructs at most one executor plugin per run (the first
/// name alphabetically among those running the notebook's language, or the
/// one `--executor` names), and only that one. Then, for each cell whose
/// lifecycles did not skip it, it calls [`execute`](ExecutorPlugin::execute)
/// (or, for a plugin with [`TWO_PHASE`](ExecutorPlugin::TWO_PHASE),
/// [`submit`](ExecutorPlugin::submit) and later
/// [`complete`](ExecutorPlugin::complete)).
///
/// The implementor is responsible for:
/// - running the body (elsewhere, or through [`Host::run_default`]) and
///   returning what it produced;
/// - writing the cell's definitions into the globals ([`Host::set`],
///   [`Host::set_wire`], [`Host::set_owned`]; `run_default` does it);
/// - checking [`Host::stop_reason`] during long work and returning promptly
///   with an error of the matching kind ([`Outcome::stopped`]).
///
/// With [`CONCURRENCY`](ExecutorPlugin::CONCURRENCY) above 0, calls for
/// independent cells come from several threads at once.
///
/// # Errors
/// An error from `new` leaves the plugin out (the run falls back to the
/// built-in executor, loudly, or stops when the user named this executor);
/// an error from `execute` fails the cell with kind `plugin`. A panic counts
/// as an error, with its message.
///
/// # Overriding default impls
/// Only `NAME`, `new` and `execute` are required.
pub trait ExecutorPlugin: Send + Sync + Sized + 'static {
    /// The plugin's name: lowercase letters, digits, `-` and `_`; not
    /// `default`, `strict` or `cache`.
    const NAME: &'static str;

    /// One line saying what the plugin does, shown by `cellrun plugins`.
    const DESCRIPTION: &'static str = "";

    /// The oldest cellrun version this plugin works with (semver), or empty.
    const MIN_CELLRUN: &'static str = "";

    /// The cell languages the plugin runs.
    const LANGUAGES: &'static [&'static str] = &["rhai"];

    /// How many cells may be in flight at once; 0 means one at a time.
    const CONCURRENCY: u32 = 0;

    /// Whether the runner calls [`submit`](ExecutorPlugin::submit) and
    /// [`complete`](ExecutorPlugin::complete) instead of `execute`.
    const TWO_PHASE: bool = false;

    /// Builds the executor from its options; reject unknown or bad ones.
    fn new(options: &Options, logger: Logger) -> Result<Self, PluginError>;

    /// Runs `cell`'s body.
    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError>;

    /// Starts `cell` and returns a ticket for it; read its inputs now, the
    /// host is valid only during this call.
    fn submit(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<u64, PluginError> {
        let _ = (cell, host);
        Err(PluginError::new(
            "TWO_PHASE is set but submit is not implemented",
        ))
    }

    /// Waits for the cell of `ticket` and writes its definitions.
    fn complete(&self, ticket: u64, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let _ = (ticket, host);
        Err(PluginError::new(
            "TWO_PHASE is set but complete is not implemented",
        ))
    }

    /// A run is about to start (connect to a cluster, open a session).
    ///
    /// # Errors
    /// Logged as a warning; the run goes on.
    fn run_started(&self, run: &FfiRunInfo) -> Result<(), PluginError> {
        let _ = run;
        Ok(())
    }

    /// The run ended (disconnect, flush). Warnings logged here reach the
    /// run's output before its summary.
    fn run_finished(&self, outcome: &FfiRunOutcome) {
        let _ = outcome;
    }

    /// The values the plugin put into the globals with [`Host::set_owned`];
    /// `None` when it owns none.
    fn owned(&self) -> Option<&dyn OwnedValues> {
        None
    }
}

/// What the host asks of the values an executor owns, by id.
///
/// [`OwnedTable`] implements it for values of one type.
pub trait OwnedValues: Send + Sync {
    /// A one-line human form.
    fn display(&self, id: u64) -> String;
    /// The JSON form, if any.
    fn json(&self, id: u64) -> Option<String> {
        let _ = id;
        None
    }
    /// An independent copy, as a new id (for `--strict`).
    fn copy(&self, id: u64) -> Option<u64> {
        let _ = id;
        None
    }
    /// Bytes equal exactly when the values are equal (for `--cache` keys).
    fn fingerprint(&self, id: u64) -> Option<Vec<u8>> {
        let _ = id;
        None
    }
    /// A self-contained encoding that [`OwnedValues::decode`] reads back.
    fn encode(&self, id: u64) -> Option<Vec<u8>> {
        let _ = id;
        None
    }
    /// Decodes what [`OwnedValues::encode`] produced, as a new id.
    fn decode(&self, type_name: &str, bytes: &[u8]) -> Option<u64> {
        let _ = (type_name, bytes);
        None
    }
    /// The host no longer holds the value.
    fn drop_value(&self, id: u64);
}

/// What an [`OwnedTable`] needs of its values.
pub trait OwnedValue: Send + Sync + 'static {
    /// The type name the host shows.
    const TYPE_NAME: &'static str;
    /// A one-line human form.
    fn display(&self) -> String;
    /// The JSON form, if any.
    fn json(&self) -> Option<String> {
        None
    }
    /// An independent copy.
    fn deep_copy(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }
    /// A self-contained encoding.
    fn encode(&self) -> Option<Vec<u8>> {
        None
    }
    /// The value `bytes` encodes.
    fn decode(bytes: &[u8]) -> Option<Self>
    where
        Self: Sized,
    {
        let _ = bytes;
        None
    }
}

/// A table of values of type `T` an executor owns, by id: the usual
/// [`OwnedValues`].
pub struct OwnedTable<T> {
    next: AtomicU64,
    values: Mutex<HashMap<u64, Arc<T>>>,
}

impl<T: OwnedValue> Default for OwnedTable<T> {
    fn default() -> Self {
        OwnedTable {
            next: AtomicU64::new(1),
            values: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: OwnedValue> OwnedTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `value`; returns its id.
    pub fn insert(&self, value: T) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Arc::new(value));
        id
    }

    /// The value of `id`, while the host holds it.
    pub fn get(&self, id: u64) -> Option<Arc<T>> {
        self.lock().get(&id).cloned()
    }

    /// How many values the host still holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the host holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<T>>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T: OwnedValue> OwnedValues for OwnedTable<T> {
    fn display(&self, id: u64) -> String {
        self.get(id).map_or_else(
            || format!("<dropped {}>", T::TYPE_NAME),
            |value| value.display(),
        )
    }
    fn json(&self, id: u64) -> Option<String> {
        self.get(id)?.json()
    }
    fn copy(&self, id: u64) -> Option<u64> {
        let copy = self.get(id)?.deep_copy()?;
        Some(self.insert(copy))
    }
    fn fingerprint(&self, id: u64) -> Option<Vec<u8>> {
        self.get(id)?.encode()
    }
    fn encode(&self, id: u64) -> Option<Vec<u8>> {
        self.get(id)?.encode()
    }
    fn decode(&self, type_name: &str, bytes: &[u8]) -> Option<u64> {
        if type_name != T::TYPE_NAME {
            return None;
        }
        Some(self.insert(T::decode(bytes)?))
    }
    fn drop_value(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// A lifecycle shipped as a plugin, composed after the built-in ones.
///
/// Same guarantees as the core lifecycle: `setup` at most once per
/// evaluation of a cell, `teardown` exactly once when this setup completed;
/// `cell_not_run` once for each cell that never reached the evaluator.
///
/// # Overriding default impls
/// Every method defaults to doing nothing.
///
/// # Errors
/// An error from `new` leaves the lifecycle out of the run; an error from
/// `setup` or `teardown` fails the cell with kind `plugin`. A panic counts as
/// an error, with its message.
pub trait LifecyclePlugin: Send + Sync + Sized + 'static {
    /// The plugin's name (see [`ExecutorPlugin::NAME`]).
    const NAME: &'static str;

    /// One line saying what the plugin does, shown by `cellrun plugins`.
    const DESCRIPTION: &'static str = "";

    /// The oldest cellrun version this plugin works with (semver), or empty.
    const MIN_CELLRUN: &'static str = "";

    /// Builds the lifecycle from its options; reject unknown or bad ones.
    fn new(options: &Options, logger: Logger) -> Result<Self, PluginError>;

    /// Prepares `cell`'s evaluation, or skips its body.
    fn setup(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<FfiSetup, PluginError> {
        let _ = (cell, host);
        Ok(FfiSetup::Continue)
    }

    /// Finishes `cell`'s evaluation, seeing its `result`.
    fn teardown(
        &self,
        cell: &FfiCellContext,
        result: &FfiRunResult,
        host: &mut Host<'_>,
    ) -> Result<(), PluginError> {
        let _ = (cell, result, host);
        Ok(())
    }

    /// `cell` did not run; `result`'s error says why.
    fn cell_not_run(&self, cell: &FfiCellContext, result: &FfiRunResult) {
        let _ = (cell, result);
    }

    /// A run is about to start.
    ///
    /// # Errors
    /// Logged as a warning; the run goes on.
    fn run_started(&self, run: &FfiRunInfo) -> Result<(), PluginError> {
        let _ = run;
        Ok(())
    }

    /// The run ended. Warnings logged here reach the run's output before its summary.
    fn run_finished(&self, outcome: &FfiRunOutcome) {
        let _ = outcome;
    }
}

/// Runs `f` for plugin `name`'s `what`, turning errors and panics into an
/// [`FfiError`] naming the plugin.
pub fn guard<T>(
    name: &str,
    what: &str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> RResult<T, FfiError> {
    let message = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return RResult::ROk(value),
        Ok(Err(error)) => format!("plugin `{name}` failed in {what}: {error}"),
        Err(payload) => format!(
            "plugin `{name}` panicked in {what}: {}",
            panic_message(payload.as_ref())
        ),
    };
    RResult::RErr(FfiError {
        message: message.into(),
    })
}

/// Runs `f`, which cannot fail, returning `fallback` if it panics.
fn quietly<T>(f: impl FnOnce() -> T, fallback: T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// The text of a panic payload, when it has one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Owns a plugin value; dropping it catches a panic in its `Drop`.
struct Guarded<P> {
    plugin: ManuallyDrop<P>,
    /// Results of `execute` run at `submit`, for plugins without `TWO_PHASE`.
    pending: Mutex<HashMap<u64, RResult<Outcome, FfiError>>>,
    next: AtomicU64,
}

impl<P> Guarded<P> {
    fn new(plugin: P) -> Guarded<P> {
        Guarded {
            plugin: ManuallyDrop::new(plugin),
            pending: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
        }
    }
}

impl<P> Drop for Guarded<P> {
    fn drop(&mut self) {
        // SAFETY: the value is taken once, here, and never used again.
        let value = unsafe { ManuallyDrop::take(&mut self.plugin) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
}

/// The 1.0 form of an executor plugin, for hosts older than 1.2.
impl<P: ExecutorPlugin> FfiExecutor for Guarded<P> {
    fn execute(&self, cell: &FfiCell, host: FfiHostMut<'_>) -> RResult<FfiRunResult, FfiError> {
        guard(P::NAME, "execute", || {
            let context = cell_from_legacy(cell);
            let outcome = self.plugin.execute(&context, &mut Host::legacy(host))?;
            Ok(outcome.into_ffi().result)
        })
    }
}

impl<P: ExecutorPlugin> FfiExecutor2 for Guarded<P> {
    fn concurrency(&self) -> u32 {
        P::CONCURRENCY
    }

    fn run_started(&self, run: &FfiRunInfo) -> RResult<(), FfiError> {
        guard(P::NAME, "run_started", || self.plugin.run_started(run))
    }

    fn run_finished(&self, outcome: &FfiRunOutcome) {
        let _ = guard(P::NAME, "run_finished", || {
            self.plugin.run_finished(outcome);
            Ok(())
        });
    }

    fn submit(&self, cell: &FfiCellContext, host: FfiHost2Mut<'_>) -> RResult<u64, FfiError> {
        let mut host = Host::new(host);
        if P::TWO_PHASE {
            return guard(P::NAME, "submit", || self.plugin.submit(cell, &mut host));
        }
        let outcome = guard(P::NAME, "execute", || self.plugin.execute(cell, &mut host));
        let ticket = self.next.fetch_add(1, Ordering::Relaxed);
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ticket, outcome);
        RResult::ROk(ticket)
    }

    fn complete(&self, ticket: u64, host: FfiHost2Mut<'_>) -> RResult<FfiOutcome, FfiError> {
        if P::TWO_PHASE {
            return guard(P::NAME, "complete", || {
                Ok(self
                    .plugin
                    .complete(ticket, &mut Host::new(host))?
                    .into_ffi())
            });
        }
        let stored = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ticket);
        match stored {
            Some(outcome) => outcome.map(Outcome::into_ffi),
            None => RResult::RErr(FfiError {
                message: format!("plugin `{}`: unknown ticket {ticket}", P::NAME).into(),
            }),
        }
    }

    fn owned_display(&self, id: u64) -> RString {
        quietly(
            || {
                self.plugin
                    .owned()
                    .map_or_else(|| format!("<value {id}>"), |owned| owned.display(id))
            },
            format!("<value {id}>"),
        )
        .into()
    }

    fn owned_json(&self, id: u64) -> ROption<RString> {
        quietly(
            || self.plugin.owned().and_then(|owned| owned.json(id)),
            None,
        )
        .map(RString::from)
        .into()
    }

    fn owned_copy(&self, id: u64) -> ROption<u64> {
        quietly(
            || self.plugin.owned().and_then(|owned| owned.copy(id)),
            None,
        )
        .into()
    }

    fn owned_fingerprint(&self, id: u64) -> ROption<RVec<u8>> {
        quietly(
            || self.plugin.owned().and_then(|owned| owned.fingerprint(id)),
            None,
        )
        .map(RVec::from)
        .into()
    }

    fn owned_encode(&self, id: u64) -> ROption<RVec<u8>> {
        quietly(
            || self.plugin.owned().and_then(|owned| owned.encode(id)),
            None,
        )
        .map(RVec::from)
        .into()
    }

    fn owned_decode(&self, type_name: RStr<'_>, bytes: RSlice<'_, u8>) -> ROption<u64> {
        quietly(
            || {
                self.plugin
                    .owned()
                    .and_then(|owned| owned.decode(type_name.as_str(), bytes.as_slice()))
            },
            None,
        )
        .into()
    }

    fn owned_drop(&self, id: u64) {
        quietly(
            || {
                if let Some(owned) = self.plugin.owned() {
                    owned.drop_value(id);
                }
            },
            (),
        );
    }
}

/// The 1.0 form of a lifecycle plugin, for hosts older than 1.2.
impl<P: LifecyclePlugin> FfiLifecycle for Guarded<P> {
    fn setup(&self, cell: &FfiCell, host: FfiHostMut<'_>) -> RResult<FfiSetup, FfiError> {
        guard(P::NAME, "setup", || {
            self.plugin
                .setup(&cell_from_legacy(cell), &mut Host::legacy(host))
        })
    }

    fn teardown(
        &self,
        cell: &FfiCell,
        result: &FfiRunResult,
        host: FfiHostMut<'_>,
    ) -> RResult<(), FfiError> {
        guard(P::NAME, "teardown", || {
            self.plugin
                .teardown(&cell_from_legacy(cell), result, &mut Host::legacy(host))
        })
    }
}

impl<P: LifecyclePlugin> FfiLifecycle2 for Guarded<P> {
    fn setup(&self, cell: &FfiCellContext, host: FfiHost2Mut<'_>) -> RResult<FfiSetup, FfiError> {
        guard(P::NAME, "setup", || {
            self.plugin.setup(cell, &mut Host::new(host))
        })
    }

    fn teardown(
        &self,
        cell: &FfiCellContext,
        result: &FfiRunResult,
        host: FfiHost2Mut<'_>,
    ) -> RResult<(), FfiError> {
        guard(P::NAME, "teardown", || {
            self.plugin.teardown(cell, result, &mut Host::new(host))
        })
    }

    fn cell_not_run(&self, cell: &FfiCellContext, result: &FfiRunResult) {
        quietly(|| self.plugin.cell_not_run(cell, result), ());
    }

    fn run_started(&self, run: &FfiRunInfo) -> RResult<(), FfiError> {
        guard(P::NAME, "run_started", || self.plugin.run_started(run))
    }

    fn run_finished(&self, outcome: &FfiRunOutcome) {
        quietly(|| self.plugin.run_finished(outcome), ());
    }
}

fn wrong_kind<T>(name: &str, kind: &str) -> RResult<T, FfiError> {
    RResult::RErr(FfiError {
        message: format!("plugin `{name}` is not {kind}").into(),
    })
}

/// Runs a plugin constructor with its panics caught and the panic logger set.
fn construct<P, T>(
    name: &str,
    options: RVec<FfiOption>,
    logger: FfiLogger,
    build: impl FnOnce(&Options, Logger) -> Result<P, PluginError>,
    wrap: impl FnOnce(Guarded<P>) -> T,
) -> RResult<T, FfiError> {
    guard(name, "its constructor", || {
        let logger = Logger::new(logger);
        let _ = PANIC_LOGGER.set(logger.clone());
        let plugin = build(&Options::from(options), logger)?;
        Ok(wrap(Guarded::new(plugin)))
    })
}

#[doc(hidden)]
pub extern "C" fn new_executor<P: ExecutorPlugin>(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiExecutorBox, FfiError> {
    construct(P::NAME, options, logger, P::new, |plugin| {
        FfiExecutor_TO::from_value(plugin, TD_Opaque)
    })
}

#[doc(hidden)]
pub extern "C" fn new_executor2<P: ExecutorPlugin>(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiExecutor2Box, FfiError> {
    construct(P::NAME, options, logger, P::new, |plugin| {
        FfiExecutor2_TO::from_value(plugin, TD_Opaque)
    })
}

#[doc(hidden)]
pub extern "C" fn new_lifecycle<P: LifecyclePlugin>(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiLifecycleBox, FfiError> {
    construct(P::NAME, options, logger, P::new, |plugin| {
        FfiLifecycle_TO::from_value(plugin, TD_Opaque)
    })
}

#[doc(hidden)]
pub extern "C" fn new_lifecycle2<P: LifecyclePlugin>(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiLifecycle2Box, FfiError> {
    construct(P::NAME, options, logger, P::new, |plugin| {
        FfiLifecycle2_TO::from_value(plugin, TD_Opaque)
    })
}

#[doc(hidden)]
pub extern "C" fn no_executor<P: LifecyclePlugin>(
    _options: RVec<FfiOption>,
    _logger: FfiLogger,
) -> RResult<FfiExecutorBox, FfiError> {
    wrong_kind(P::NAME, "an executor")
}

#[doc(hidden)]
pub extern "C" fn no_executor2<P: LifecyclePlugin>(
    _options: RVec<FfiOption>,
    _logger: FfiLogger,
) -> RResult<FfiExecutor2Box, FfiError> {
    wrong_kind(P::NAME, "an executor")
}

#[doc(hidden)]
pub extern "C" fn no_lifecycle<P: ExecutorPlugin>(
    _options: RVec<FfiOption>,
    _logger: FfiLogger,
) -> RResult<FfiLifecycleBox, FfiError> {
    wrong_kind(P::NAME, "a lifecycle")
}

#[doc(hidden)]
pub extern "C" fn no_lifecycle2<P: ExecutorPlugin>(
    _options: RVec<FfiOption>,
    _logger: FfiLogger,
) -> RResult<FfiLifecycle2Box, FfiError> {
    wrong_kind(P::NAME, "a lifecycle")
}

/// The logger panics are reported to, once a constructor ran.
static PANIC_LOGGER: OnceLock<Logger> = OnceLock::new();

/// Replaces the library's panic hook: panic messages go to the host's log
/// at debug level instead of the library's own stderr printing (the message
/// also comes back as the call's error).
///
/// Called only from the exported root module, so in a shared library it
/// changes that library's own copy of std, never the runner's.
#[doc(hidden)]
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if let Some(logger) = PANIC_LOGGER.get() {
                logger.debug(&format!("panic: {info}"));
            }
        }));
    });
}

/// What the export macros know about the plugin crate.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Build {
    /// The plugin crate's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// Whether the plugin crate was built with `panic = "unwind"`.
    pub unwinds: bool,
}

fn leak_languages(languages: &'static [&'static str]) -> RSlice<'static, RStr<'static>> {
    let strs: Vec<RStr<'static>> = languages.iter().map(|text| RStr::from_str(text)).collect();
    RSlice::from_slice(Box::leak(strs.into_boxed_slice()))
}

/// The root module of an executor plugin; [`export_executor!`](crate::export_executor) calls it.
#[doc(hidden)]
pub fn executor_module<P: ExecutorPlugin>(build: Build) -> PluginMod_Ref {
    install_panic_hook();
    PluginMod {
        name: RStr::from_str(P::NAME),
        kind: FfiPluginKind::EXECUTOR,
        new_executor: new_executor::<P>,
        new_lifecycle: no_lifecycle::<P>,
        description: RStr::from_str(P::DESCRIPTION),
        version: RStr::from_str(build.version),
        min_cellrun: RStr::from_str(P::MIN_CELLRUN),
        unwinds: build.unwinds,
        languages: leak_languages(P::LANGUAGES),
        new_executor2: new_executor2::<P>,
        new_lifecycle2: no_lifecycle2::<P>,
    }
    .leak_into_prefix()
}

/// The root module of a lifecycle plugin; [`export_lifecycle!`](crate::export_lifecycle) calls it.
#[doc(hidden)]
pub fn lifecycle_module<P: LifecyclePlugin>(build: Build) -> PluginMod_Ref {
    install_panic_hook();
    PluginMod {
        name: RStr::from_str(P::NAME),
        kind: FfiPluginKind::LIFECYCLE,
        new_executor: no_executor::<P>,
        new_lifecycle: new_lifecycle::<P>,
        description: RStr::from_str(P::DESCRIPTION),
        version: RStr::from_str(build.version),
        min_cellrun: RStr::from_str(P::MIN_CELLRUN),
        unwinds: build.unwinds,
        languages: RSlice::from_slice(&[]),
        new_executor2: no_executor2::<P>,
        new_lifecycle2: new_lifecycle2::<P>,
    }
    .leak_into_prefix()
}

/// Builds `P`'s 1.2 executor as the runner would, for tests without
/// loading a library (see also [`testing::Harness`]).
///
/// # Errors
/// What the constructor returns, naming the plugin.
pub fn executor_for_tests<P: ExecutorPlugin>(
    options: &[(&str, &str)],
) -> Result<FfiExecutor2Box, FfiError> {
    new_executor2::<P>(ffi_options(options), testing::logger(P::NAME)).into_result()
}

/// Builds `P`'s 1.2 lifecycle as the runner would, for tests.
///
/// # Errors
/// What the constructor returns, naming the plugin.
pub fn lifecycle_for_tests<P: LifecyclePlugin>(
    options: &[(&str, &str)],
) -> Result<FfiLifecycle2Box, FfiError> {
    new_lifecycle2::<P>(ffi_options(options), testing::logger(P::NAME)).into_result()
}

/// `--plugin-opt`-style options as the FFI list.
pub fn ffi_options(options: &[(&str, &str)]) -> RVec<FfiOption> {
    options
        .iter()
        .map(|(key, value)| FfiOption {
            key: RString::from(*key),
            value: RString::from(*value),
        })
        .collect()
}

/// Exports an [`ExecutorPlugin`] as the library's root module.
///
/// Use it once per plugin crate, at any module level:
///
/// ```text
/// executor_abi::export_executor!(MyExecutor);
/// ```
#[macro_export]
macro_rules! export_executor {
    ($plugin:ty) => {
        $crate::__export_root_module!(|| $crate::sdk::executor_module::<$plugin>(
            $crate::__build!()
        ));
    };
}

/// Exports a [`LifecyclePlugin`] as the library's root module.
///
/// Use it once per plugin crate, at any module level:
///
/// ```text
/// executor_abi::export_lifecycle!(MyLifecycle);
/// ```
#[macro_export]
macro_rules! export_lifecycle {
    ($plugin:ty) => {
        $crate::__export_root_module!(|| $crate::sdk::lifecycle_module::<$plugin>(
            $crate::__build!()
        ));
    };
}

/// The [`Build`] facts of the crate the export macro expands in.
#[doc(hidden)]
#[macro_export]
macro_rules! __build {
    () => {
        $crate::sdk::Build {
            version: env!("CARGO_PKG_VERSION"),
            unwinds: cfg!(panic = "unwind"),
        }
    };
}

/// What abi_stable's `#[export_root_module]` writes, through this crate's
/// re-export of abi_stable so plugins need no direct dependency on it: the
/// library header under [`ROOT_MODULE_LOADER_NAME`], whose constructor
/// builds the root module with panics caught.
///
/// [`ROOT_MODULE_LOADER_NAME`]: abi_stable::library::ROOT_MODULE_LOADER_NAME
#[doc(hidden)]
#[macro_export]
macro_rules! __export_root_module {
    ($module:expr) => {
        $crate::__export_root_module!($module, $crate::PluginMod_Ref);
    };
    ($module:expr, $root:ty) => {
        /// The library header cellrun's loader reads (abi_stable's root module loader).
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi_stable::library::LibHeader = {
            extern "C" fn erased_module() -> $crate::abi_stable::library::RootModuleResult {
                fn module() -> $root {
                    $module()
                }
                $crate::abi_stable::library::__call_root_module_loader(module)
            }
            // SAFETY: `erased_module` returns a `$root`, the type named here.
            unsafe {
                $crate::abi_stable::library::LibHeader::from_constructor::<$root>(
                    erased_module,
                    $crate::abi_stable::library::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exported_header_has_abi_stables_loader_name() {
        // `__export_root_module!` spells the name out; it must be abi_stable's.
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }

    #[test]
    fn guard_names_the_plugin_for_errors_and_panics() {
        let failed = guard::<()>("demo", "execute", || Err("bad input".into()));
        assert_eq!(
            failed.into_result().unwrap_err().message.as_str(),
            "plugin `demo` failed in execute: bad input"
        );
        let panicked = guard::<()>("demo", "setup", || panic!("boom"));
        assert_eq!(
            panicked.into_result().unwrap_err().message.as_str(),
            "plugin `demo` panicked in setup: boom"
        );
    }

    #[test]
    fn options_take_the_last_value_and_reject_unknown_keys() {
        let options = Options::new([
            ("n".to_owned(), "1".to_owned()),
            ("n".to_owned(), "2".to_owned()),
        ]);
        assert_eq!(options.get("n"), Some("2"));
        assert_eq!(options.parse_or("n", 0_u32), Ok(2));
        assert_eq!(options.parse_or("m", 7_u32), Ok(7));
        assert!(options.reject_unknown(&["n"]).is_ok());
        let error = options.reject_unknown(&[]).unwrap_err();
        assert_eq!(error.message(), "unknown option `n` (known: none)");
    }
}
