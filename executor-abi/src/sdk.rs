//! The plugin SDK: implement a plain Rust trait, write one export line.
//!
//! - An executor plugin implements [`ExecutorPlugin`] and writes
//!   `executor_abi::export_executor!(MyExecutor);`.
//! - A lifecycle plugin implements [`LifecyclePlugin`] and writes
//!   `executor_abi::export_lifecycle!(MyLifecycle);`.
//!
//! The macro exports the library's root module. The SDK catches every panic
//! in the plugin's code (constructor, execute, setup, teardown, drop) and
//! returns it as an error naming the plugin: abi_stable would otherwise exit
//! the whole process. Build plugins with `panic = "unwind"` (the default);
//! with `panic = "abort"` nothing can be caught.

use std::fmt;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::{Arc, Once, OnceLock};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{RResult, RStr, RString, RVec},
};

use crate::{
    FfiCell, FfiError, FfiExecutor, FfiExecutorBox, FfiExecutor_TO, FfiHostMut, FfiLifecycle,
    FfiLifecycleBox, FfiLifecycle_TO, FfiLogLevel, FfiLogger, FfiOption, FfiPluginKind,
    FfiRunResult, FfiSetup, FfiValue, PluginMod, PluginMod_Ref,
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

/// The host during one call: globals, the built-in evaluation, the
/// cancellation check and logging. Valid for that call only.
pub struct Host<'a> {
    inner: FfiHostMut<'a>,
}

impl<'a> Host<'a> {
    /// Wraps the host object of a call.
    pub fn new(inner: FfiHostMut<'a>) -> Host<'a> {
        Host { inner }
    }

    /// The value of a visible global.
    pub fn get(&self, name: &str) -> Option<FfiValue> {
        self.inner.get(RStr::from_str(name)).into_option()
    }

    /// Defines a global, returning its previous value.
    pub fn set(&mut self, name: &str, value: FfiValue) -> Option<FfiValue> {
        self.inner.set(RStr::from_str(name), value).into_option()
    }

    /// Removes a global, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<FfiValue> {
        self.inner.remove(RStr::from_str(name)).into_option()
    }

    /// The visible global names, in no particular order.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .names()
            .into_iter()
            .map(RString::into_string)
            .collect()
    }

    /// Runs the cell's body with the host's built-in evaluation.
    ///
    /// # Errors
    /// Outside an executor's `execute`. A failing body is not an error: it
    /// is a result whose `error` is set.
    pub fn run_default(&mut self) -> Result<FfiRunResult, PluginError> {
        self.inner
            .run_default()
            .into_result()
            .map_err(|error| PluginError::from(error.message.into_string()))
    }

    /// Whether the cell was asked to stop; return promptly when it was.
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Emits `message` at `level` through the runner's log.
    pub fn log(&self, level: FfiLogLevel, message: &str) {
        self.inner.log(level, RStr::from_str(message));
    }
}

/// An executor shipped as a plugin.
///
/// The runner constructs at most one executor plugin per run (the first
/// name alphabetically), and only that one; then it calls
/// [`execute`](ExecutorPlugin::execute) once per cell whose lifecycles did
/// not skip it.
///
/// The implementor is responsible for:
/// - running the body, usually through [`Host::run_default`], and returning
///   its result;
/// - writing the cell's definitions into the globals (`run_default` does);
/// - checking [`Host::is_cancelled`] during long work.
///
/// # Errors
/// An error from `new` leaves the plugin out and the run uses the built-in
/// executor; an error from `execute` fails the cell with kind `plugin`. A
/// panic counts as an error, with its message.
pub trait ExecutorPlugin: Send + Sync + Sized + 'static {
    /// The plugin's name (lowercase, no spaces).
    const NAME: &'static str;

    /// One line saying what the plugin does, shown by `cellrun plugins`
    /// (ABI 1.1); empty says nothing.
    const DESCRIPTION: &'static str = "";

    /// Builds the executor from its options; reject unknown or bad ones.
    fn new(options: &Options, logger: Logger) -> Result<Self, PluginError>;

    /// Runs `cell`'s body.
    fn execute(&self, cell: &FfiCell, host: &mut Host<'_>) -> Result<FfiRunResult, PluginError>;
}

/// A lifecycle shipped as a plugin, composed after the built-in ones.
///
/// Same guarantees as [`executor_core::Lifecycle`]: `setup` at most once per
/// evaluation of a cell, `teardown` exactly once when this setup completed.
///
/// # Overriding default impls
/// Both methods default to doing nothing.
///
/// # Errors
/// An error from `new` leaves the lifecycle out of the run; an error from
/// `setup` or `teardown` fails the cell with kind `plugin`. A panic counts as
/// an error, with its message.
pub trait LifecyclePlugin: Send + Sync + Sized + 'static {
    /// The plugin's name (lowercase, no spaces).
    const NAME: &'static str;

    /// One line saying what the plugin does, shown by `cellrun plugins`
    /// (ABI 1.1); empty says nothing.
    const DESCRIPTION: &'static str = "";

    /// Builds the lifecycle from its options; reject unknown or bad ones.
    fn new(options: &Options, logger: Logger) -> Result<Self, PluginError>;

    /// Prepares `cell`'s evaluation, or skips its body.
    fn setup(&self, cell: &FfiCell, host: &mut Host<'_>) -> Result<FfiSetup, PluginError> {
        let _ = (cell, host);
        Ok(FfiSetup::Continue)
    }

    /// Finishes `cell`'s evaluation, seeing its `result`.
    fn teardown(
        &self,
        cell: &FfiCell,
        result: &FfiRunResult,
        host: &mut Host<'_>,
    ) -> Result<(), PluginError> {
        let _ = (cell, result, host);
        Ok(())
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
            executor_core::panic_message(payload.as_ref())
        ),
    };
    RResult::RErr(FfiError {
        message: message.into(),
    })
}

/// Owns a plugin value; dropping it catches a panic in its `Drop`.
struct Guarded<P>(ManuallyDrop<P>);

impl<P> Drop for Guarded<P> {
    fn drop(&mut self) {
        // SAFETY: the value is taken once, here, and never used again.
        let value = unsafe { ManuallyDrop::take(&mut self.0) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
    }
}

impl<P: ExecutorPlugin> FfiExecutor for Guarded<P> {
    fn execute(&self, cell: &FfiCell, host: FfiHostMut<'_>) -> RResult<FfiRunResult, FfiError> {
        guard(P::NAME, "execute", || {
            self.0.execute(cell, &mut Host::new(host))
        })
    }
}

impl<P: LifecyclePlugin> FfiLifecycle for Guarded<P> {
    fn setup(&self, cell: &FfiCell, host: FfiHostMut<'_>) -> RResult<FfiSetup, FfiError> {
        guard(P::NAME, "setup", || {
            self.0.setup(cell, &mut Host::new(host))
        })
    }

    fn teardown(
        &self,
        cell: &FfiCell,
        result: &FfiRunResult,
        host: FfiHostMut<'_>,
    ) -> RResult<(), FfiError> {
        guard(P::NAME, "teardown", || {
            self.0.teardown(cell, result, &mut Host::new(host))
        })
    }
}

fn wrong_kind<T>(name: &str, kind: &str) -> RResult<T, FfiError> {
    RResult::RErr(FfiError {
        message: format!("plugin `{name}` is not {kind}").into(),
    })
}

pub(crate) extern "C" fn new_executor<P: ExecutorPlugin>(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiExecutorBox, FfiError> {
    guard(P::NAME, "its constructor", || {
        let logger = Logger::new(logger);
        let _ = PANIC_LOGGER.set(logger.clone());
        let plugin = P::new(&Options::from(options), logger)?;
        Ok(FfiExecutor_TO::from_value(
            Guarded(ManuallyDrop::new(plugin)),
            TD_Opaque,
        ))
    })
}

pub(crate) extern "C" fn new_lifecycle<P: LifecyclePlugin>(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiLifecycleBox, FfiError> {
    guard(P::NAME, "its constructor", || {
        let logger = Logger::new(logger);
        let _ = PANIC_LOGGER.set(logger.clone());
        let plugin = P::new(&Options::from(options), logger)?;
        Ok(FfiLifecycle_TO::from_value(
            Guarded(ManuallyDrop::new(plugin)),
            TD_Opaque,
        ))
    })
}

pub(crate) extern "C" fn no_executor<P: LifecyclePlugin>(
    _options: RVec<FfiOption>,
    _logger: FfiLogger,
) -> RResult<FfiExecutorBox, FfiError> {
    wrong_kind(P::NAME, "an executor")
}

pub(crate) extern "C" fn no_lifecycle<P: ExecutorPlugin>(
    _options: RVec<FfiOption>,
    _logger: FfiLogger,
) -> RResult<FfiLifecycleBox, FfiError> {
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
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if let Some(logger) = PANIC_LOGGER.get() {
                logger.debug(&format!("panic: {info}"));
            }
        }));
    });
}

/// The root module of an executor plugin; [`export_executor!`](crate::export_executor) calls it.
pub fn executor_module<P: ExecutorPlugin>() -> PluginMod_Ref {
    install_panic_hook();
    PluginMod {
        name: RStr::from_str(P::NAME),
        kind: FfiPluginKind::EXECUTOR,
        new_executor: new_executor::<P>,
        new_lifecycle: no_lifecycle::<P>,
        description: RStr::from_str(P::DESCRIPTION),
    }
    .leak_into_prefix()
}

/// The root module of a lifecycle plugin; [`export_lifecycle!`](crate::export_lifecycle) calls it.
pub fn lifecycle_module<P: LifecyclePlugin>() -> PluginMod_Ref {
    install_panic_hook();
    PluginMod {
        name: RStr::from_str(P::NAME),
        kind: FfiPluginKind::LIFECYCLE,
        new_executor: no_executor::<P>,
        new_lifecycle: new_lifecycle::<P>,
        description: RStr::from_str(P::DESCRIPTION),
    }
    .leak_into_prefix()
}

/// Builds `P` as the runner would, for tests of a plugin crate without
/// loading a library: options as key/value pairs, logs re-emitted through
/// the caller's `tracing`.
///
/// # Errors
/// What the constructor returns, naming the plugin.
pub fn executor_for_tests<P: ExecutorPlugin>(
    options: &[(&str, &str)],
) -> Result<FfiExecutorBox, FfiError> {
    new_executor::<P>(ffi_options(options), crate::host::logger(P::NAME)).into_result()
}

/// Builds `P` as the runner would, for tests; see [`executor_for_tests`].
///
/// # Errors
/// What the constructor returns, naming the plugin.
pub fn lifecycle_for_tests<P: LifecyclePlugin>(
    options: &[(&str, &str)],
) -> Result<FfiLifecycleBox, FfiError> {
    new_lifecycle::<P>(ffi_options(options), crate::host::logger(P::NAME)).into_result()
}

fn ffi_options(options: &[(&str, &str)]) -> RVec<FfiOption> {
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
        $crate::__export_root_module!($crate::sdk::executor_module::<$plugin>);
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
        $crate::__export_root_module!($crate::sdk::lifecycle_module::<$plugin>);
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
