//! The FFI-safe types of the ABI: the root module, the mirrors of the core
//! types, and the trait objects.
//!
//! Every item here is part of ABI 1.x. Structs and enums are frozen: a
//! change to one is a major version. Prefix types ([`PluginMod`] and the
//! vtables of the `#[sabi_trait]` traits) may grow at their end in a minor
//! version, and only there.

// abi_stable names the generated prefix reference `PluginMod_Ref`, and its
// `#[sabi_trait]` expansion puts impls inside a constant.
#![allow(non_camel_case_types, non_local_definitions)]

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::{RMut, VersionStrings},
    std_types::{RArc, RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

/// The version of this ABI, the version of the `executor-abi` package.
///
/// A library's header carries the version it was built against
/// ([`RootModule::VERSION_STRINGS`]); the runner reads it before the layout
/// check.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether a plugin provides an executor or a lifecycle.
///
/// A transparent byte with named values rather than an enum, so a later
/// minor version can add kinds without changing the layout.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FfiPluginKind(pub u8);

impl FfiPluginKind {
    /// The plugin runs cell bodies ([`FfiExecutor`]).
    pub const EXECUTOR: FfiPluginKind = FfiPluginKind(0);
    /// The plugin wraps cell bodies ([`FfiLifecycle`]).
    pub const LIFECYCLE: FfiPluginKind = FfiPluginKind(1);

    /// `executor`, `lifecycle`, or `unknown` for a kind this version does not know.
    pub fn as_str(self) -> &'static str {
        match self {
            FfiPluginKind::EXECUTOR => "executor",
            FfiPluginKind::LIFECYCLE => "lifecycle",
            _ => "unknown",
        }
    }
}

/// One `--plugin-opt NAME.KEY=VALUE` for this plugin, without the `NAME.` prefix.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiOption {
    /// The option's key.
    pub key: RString,
    /// The option's value, as written.
    pub value: RString,
}

/// Builds a plugin's executor from its options and a logger.
pub type NewExecutorFn =
    extern "C" fn(options: RVec<FfiOption>, logger: FfiLogger) -> RResult<FfiExecutorBox, FfiError>;

/// Builds a plugin's lifecycle from its options and a logger.
pub type NewLifecycleFn = extern "C" fn(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiLifecycleBox, FfiError>;

/// The root module of a plugin library.
///
/// Reading `name` and `kind` constructs nothing: the constructors run only
/// when the runner selects the plugin. A library of kind
/// [`FfiPluginKind::EXECUTOR`] answers `new_lifecycle` with an error, and
/// the other way round.
///
/// # Evolution
/// This is a prefix type. A minor version may append fields after
/// `new_lifecycle` (the `#[sabi(last_prefix_field)]` of 1.0); fields are
/// never removed, reordered or retyped. Appended so far:
/// - 1.1: `description`.
///
/// The 1.0 layout is kept, frozen, as
/// [`generations::v1_0::PluginMod`](crate::generations::v1_0::PluginMod):
/// the runner checks a 1.0 library against it.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginMod {
    /// The plugin's name: what users select, allow, deny and pass options to.
    pub name: RStr<'static>,
    /// Whether the plugin is an executor or a lifecycle.
    pub kind: FfiPluginKind,
    /// Builds the executor of an executor plugin ([`NewExecutorFn`]).
    pub new_executor: extern "C" fn(
        options: RVec<FfiOption>,
        logger: FfiLogger,
    ) -> RResult<FfiExecutorBox, FfiError>,
    /// Builds the lifecycle of a lifecycle plugin ([`NewLifecycleFn`]).
    #[sabi(last_prefix_field)]
    pub new_lifecycle: extern "C" fn(
        options: RVec<FfiOption>,
        logger: FfiLogger,
    ) -> RResult<FfiLifecycleBox, FfiError>,
    /// One line saying what the plugin does, shown by `cellrun plugins`;
    /// empty when the plugin says nothing.
    ///
    /// Added in 1.1. The accessor returns `None` for a module without it,
    /// though the runner reads 1.0 libraries through the 1.0 generation.
    #[sabi(missing_field(option))]
    pub description: RStr<'static>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "cellrun_plugin";
    const NAME: &'static str = "cellrun plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The FFI mirror of [`executor_core::Cell`]: what a plugin sees of a cell.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiCell {
    /// The cell's index in its notebook (its [`executor_core::CellId`]).
    pub id: u32,
    /// The cell's name, unique in its notebook.
    pub name: RString,
    /// The cell's code.
    pub code: RString,
    /// Public names the cell defines at its top level.
    pub defs: RVec<RString>,
    /// Free variables the cell reads.
    pub refs: RVec<RString>,
    /// The 1-based notebook line of the code's first line.
    pub first_line: u32,
}

/// A value crossing the boundary: the FFI mirror of a Rhai value.
///
/// `Handle` stands for a value with no FFI form (a function pointer, a
/// closure, a character, a host type). The host keeps the value and hands
/// out the id; giving the handle back (as a global, an output or inside a
/// container) gives back the very value. A handle is valid for the call that
/// produced it.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum FfiValue {
    /// Rhai's `()`.
    Unit,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(RString),
    /// An array.
    Array(RVec<FfiValue>),
    /// An object map, in key order.
    Map(RVec<FfiEntry>),
    /// A blob of bytes.
    Bytes(RVec<u8>),
    /// A host-side value with no FFI form, by id.
    Handle(u64),
}

/// One key and value of an [`FfiValue::Map`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiEntry {
    /// The key.
    pub key: RString,
    /// The value.
    pub value: FfiValue,
}

/// The kind of an [`FfiCellError`], mirroring [`executor_core::ErrorKind`].
///
/// A transparent byte with named values, so new kinds do not change the
/// layout; an unknown value reads as `plugin`.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FfiErrorKind(pub u8);

#[allow(missing_docs)]
impl FfiErrorKind {
    pub const SYNTAX: FfiErrorKind = FfiErrorKind(0);
    pub const RUNTIME: FfiErrorKind = FfiErrorKind(1);
    pub const CYCLE: FfiErrorKind = FfiErrorKind(2);
    pub const MULTIPLE_DEFINITIONS: FfiErrorKind = FfiErrorKind(3);
    pub const TIMEOUT: FfiErrorKind = FfiErrorKind(4);
    pub const INTERRUPTED: FfiErrorKind = FfiErrorKind(5);
    pub const CANCELLED: FfiErrorKind = FfiErrorKind(6);
    pub const PLUGIN: FfiErrorKind = FfiErrorKind(7);
    pub const STRICT: FfiErrorKind = FfiErrorKind(8);
    pub const INTERNAL: FfiErrorKind = FfiErrorKind(9);
}

/// The FFI mirror of [`executor_core::CellError`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiCellError {
    /// What went wrong.
    pub kind: FfiErrorKind,
    /// A one-line description, lowercase, without a trailing period.
    pub message: RString,
    /// The notebook line the error points at.
    pub line: ROption<u32>,
    /// The notebook column the error points at.
    pub column: ROption<u32>,
    /// The index of the cell held responsible, when another cell is.
    pub blamed: ROption<u32>,
    /// The undefined variable a runtime error is about.
    pub missing_name: ROption<RString>,
}

/// The FFI mirror of [`executor_core::RunResult`].
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiRunResult {
    /// The value of the cell's last expression, or unit.
    pub output: FfiValue,
    /// What the cell printed.
    pub stdout: RString,
    /// Why the cell failed, if it did.
    pub error: ROption<FfiCellError>,
    /// Whether the result was restored instead of running the body.
    pub cached: bool,
}

/// The FFI mirror of [`executor_core::Setup`].
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum FfiSetup {
    /// Go on with the next lifecycle, then the body.
    Continue,
    /// Do not run the body; this is the cell's result.
    Skip(FfiRunResult),
}

/// Why a call into a plugin failed: a message naming the plugin.
///
/// It becomes a cell error of kind `plugin` (or a construction failure).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiError {
    /// One line, lowercase, without a trailing period.
    pub message: RString,
}

/// The level of a plugin's log line.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FfiLogLevel(pub u8);

#[allow(missing_docs)]
impl FfiLogLevel {
    pub const ERROR: FfiLogLevel = FfiLogLevel(0);
    pub const WARN: FfiLogLevel = FfiLogLevel(1);
    pub const INFO: FfiLogLevel = FfiLogLevel(2);
    pub const DEBUG: FfiLogLevel = FfiLogLevel(3);
    pub const TRACE: FfiLogLevel = FfiLogLevel(4);
}

/// The host's log callback, given to a plugin's constructor to keep.
///
/// A cdylib links its own `tracing`, whose events never reach the runner's
/// subscriber; lines sent here are re-emitted by the runner with the
/// plugin's name.
///
/// # Evolution
/// Methods are only appended, after `log`, with default bodies.
#[sabi_trait]
pub trait FfiLog: Send + Sync {
    /// Emits `message` at `level`.
    #[sabi(last_prefix_field)]
    fn log(&self, level: FfiLogLevel, message: RStr<'_>);
}

/// A shared [`FfiLog`] object.
pub type FfiLogger = FfiLog_TO<'static, RArc<()>>;

/// What the host offers a plugin during one call: the notebook globals,
/// the built-in evaluation, the cancellation check and logging.
///
/// The object lives for the call it is passed to and must not be kept.
///
/// # Evolution
/// Methods are only appended, after `log`, with default bodies.
#[sabi_trait]
pub trait FfiHost {
    /// The value of a visible global.
    fn get(&self, name: RStr<'_>) -> ROption<FfiValue>;
    /// Defines a global, returning its previous value.
    fn set(&mut self, name: RStr<'_>, value: FfiValue) -> ROption<FfiValue>;
    /// Removes a global, returning its value.
    fn remove(&mut self, name: RStr<'_>) -> ROption<FfiValue>;
    /// The visible global names, in no particular order.
    fn names(&self) -> RVec<RString>;
    /// Runs the current cell's body with the host's built-in evaluation
    /// (the `default` executor), writing its definitions into the globals.
    ///
    /// Only an executor's `execute` may call it; elsewhere it is an error.
    fn run_default(&mut self) -> RResult<FfiRunResult, FfiError>;
    /// Whether the cell was asked to stop (interrupt, timeout, memory).
    fn is_cancelled(&self) -> bool;
    /// Emits a log line through the runner's `tracing`, naming the plugin.
    #[sabi(last_prefix_field)]
    fn log(&self, level: FfiLogLevel, message: RStr<'_>);
}

/// The [`FfiHost`] object of one call.
pub type FfiHostMut<'a> = FfiHost_TO<'a, RMut<'a, ()>>;

/// A cell executor living in a plugin: the FFI side of
/// [`executor_core::Executor`].
///
/// # Evolution
/// Methods are only appended, after `execute`, with default bodies.
#[sabi_trait]
pub trait FfiExecutor: Send + Sync {
    /// Runs `cell`'s body. An error becomes the cell's error of kind `plugin`.
    #[sabi(last_prefix_field)]
    fn execute(&self, cell: &FfiCell, host: FfiHostMut<'_>) -> RResult<FfiRunResult, FfiError>;
}

/// An owned [`FfiExecutor`] object.
pub type FfiExecutorBox = FfiExecutor_TO<'static, RBox<()>>;

/// A lifecycle living in a plugin: the FFI side of
/// [`executor_core::Lifecycle`], with the same guarantees about calls.
///
/// # Evolution
/// Methods are only appended, after `teardown`, with default bodies.
#[sabi_trait]
pub trait FfiLifecycle: Send + Sync {
    /// Prepares `cell`'s evaluation, or skips its body.
    fn setup(&self, cell: &FfiCell, host: FfiHostMut<'_>) -> RResult<FfiSetup, FfiError>;
    /// Finishes `cell`'s evaluation, seeing its `result`.
    #[sabi(last_prefix_field)]
    fn teardown(
        &self,
        cell: &FfiCell,
        result: &FfiRunResult,
        host: FfiHostMut<'_>,
    ) -> RResult<(), FfiError>;
}

/// An owned [`FfiLifecycle`] object.
pub type FfiLifecycleBox = FfiLifecycle_TO<'static, RBox<()>>;
