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
    std_types::{RArc, RBox, ROption, RResult, RSlice, RStr, RString, RVec},
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
/// - 1.1: `description`;
/// - 1.2: `version`, `min_cellrun`, `unwinds`, `languages`, `new_executor2`,
///   `new_lifecycle2`.
///
/// The 1.0 and 1.1 layouts are kept, frozen, in [`generations`](crate::generations):
/// the runner checks a 1.0 or 1.1 library against its own.
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
    /// The plugin's own version (semver), shown by `cellrun plugins`.
    ///
    /// Added in 1.2, like every field below.
    #[sabi(missing_field(option))]
    pub version: RStr<'static>,
    /// The oldest cellrun the plugin works with (semver), or empty.
    #[sabi(missing_field(option))]
    pub min_cellrun: RStr<'static>,
    /// Whether the library was built with `panic = "unwind"`: the runner
    /// refuses a library that would abort the process on a panic.
    #[sabi(missing_field(option))]
    pub unwinds: bool,
    /// The cell languages an executor plugin runs (`rhai`, `python`, ...);
    /// read before construction, to select among executors.
    #[sabi(missing_field(option))]
    pub languages: RSlice<'static, RStr<'static>>,
    /// Builds the 1.2 executor of an executor plugin ([`FfiExecutor2`]).
    #[sabi(missing_field(option))]
    pub new_executor2: extern "C" fn(
        options: RVec<FfiOption>,
        logger: FfiLogger,
    ) -> RResult<FfiExecutor2Box, FfiError>,
    /// Builds the 1.2 lifecycle of a lifecycle plugin ([`FfiLifecycle2`]).
    #[sabi(missing_field(option))]
    pub new_lifecycle2: extern "C" fn(
        options: RVec<FfiOption>,
        logger: FfiLogger,
    ) -> RResult<FfiLifecycle2Box, FfiError>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "cellrun_plugin";
    const NAME: &'static str = "cellrun plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The FFI mirror of `executor_core::Cell`: what a plugin sees of a cell.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiCell {
    /// The cell's index in its notebook (its `executor_core::CellId`).
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

/// The kind of an [`FfiCellError`], mirroring `executor_core::ErrorKind`.
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

/// The FFI mirror of `executor_core::CellError`.
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

/// The FFI mirror of `executor_core::RunResult`.
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

/// The FFI mirror of `executor_core::Setup`.
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
    ///
    /// Any thread may call it while the call that received the host runs,
    /// concurrently with the other methods: an implementation must read an
    /// atomic flag (or immutable data) and nothing else, or the SDK's
    /// `StopSignal`, which relies on this, is unsound.
    fn is_cancelled(&self) -> bool;
    /// Emits a log line through the runner's `tracing`, naming the plugin.
    #[sabi(last_prefix_field)]
    fn log(&self, level: FfiLogLevel, message: RStr<'_>);
}

/// The [`FfiHost`] object of one call.
pub type FfiHostMut<'a> = FfiHost_TO<'a, RMut<'a, ()>>;

/// A cell executor living in a plugin: the FFI side of
/// `executor_core::Executor`.
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
/// `executor_core::Lifecycle`, with the same guarantees about calls.
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

// ---------------------------------------------------------------------------
// Added in 1.2: the contract a real executor needs.
//
// These types are new rather than grown versions of the 1.0 ones: abi_stable
// rejects a library whose vtables have fewer methods than the host's, so the
// 1.0 traits stay exactly as released and 1.2 plugins implement these.
// ---------------------------------------------------------------------------

/// Builds a plugin's 1.2 executor from its options and a logger.
pub type NewExecutor2Fn = extern "C" fn(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiExecutor2Box, FfiError>;

/// Builds a plugin's 1.2 lifecycle from its options and a logger.
pub type NewLifecycle2Fn = extern "C" fn(
    options: RVec<FfiOption>,
    logger: FfiLogger,
) -> RResult<FfiLifecycle2Box, FfiError>;

/// A notebook function a cell reaches, with the code that defines it.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiFunction {
    /// The function's name.
    pub name: RString,
    /// The name of the cell defining it.
    pub cell: RString,
    /// The whole code of that cell; compiling it yields the function.
    pub code: RString,
    /// The 1-based notebook line of that code's first line, so errors
    /// inside the function carry notebook lines.
    pub first_line: u32,
}

/// Everything about the cell being run that an executor needs to rebuild
/// and run it elsewhere, without the notebook file or the host's arguments.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiCellContext {
    /// The cell's index in its notebook.
    pub id: u32,
    /// The cell's name, unique in its notebook.
    pub name: RString,
    /// The cell's language (`rhai`, `python`).
    pub language: RString,
    /// The cell's code.
    pub code: RString,
    /// The 1-based notebook line of the code's first line.
    pub first_line: u32,
    /// Public names the cell defines.
    pub defs: RVec<RString>,
    /// Names the cell reads.
    pub refs: RVec<RString>,
    /// The notebook functions the cell calls or defines, transitively.
    pub functions: RVec<FfiFunction>,
    /// Globals the bodies of those functions read.
    pub fn_refs: RVec<RString>,
    /// The names of the cell's parents in the dataflow graph.
    pub parents: RVec<RString>,
    /// The options the notebook gives the cell (its marker line).
    pub options: RVec<FfiOption>,
    /// The notebook's path as the user gave it.
    pub notebook_path: RString,
    /// A hex content hash of the notebook.
    pub notebook_hash: RString,
    /// The run's unique id.
    pub run_id: RString,
    /// The per-cell time limit of the run, in milliseconds.
    pub timeout_ms: ROption<u64>,
    /// When the cell must have finished, in milliseconds since the Unix epoch.
    pub deadline_unix_ms: ROption<u64>,
}

/// A run about to start.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiRunInfo {
    /// The run's unique id.
    pub run_id: RString,
    /// The notebook's path as the user gave it.
    pub notebook_path: RString,
    /// A hex content hash of the notebook.
    pub notebook_hash: RString,
    /// The notebook's language.
    pub language: RString,
    /// How many cells may run at once.
    pub jobs: u32,
}

/// How a run ended.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub struct FfiRunOutcome {
    /// Cells that finished ok.
    pub ok: u32,
    /// Cells that failed.
    pub error: u32,
    /// Cells cancelled because an ancestor failed.
    pub cancelled: u32,
    /// Cells interrupted.
    pub interrupted: u32,
    /// Whether the run was interrupted.
    pub was_interrupted: bool,
}

/// A rich form of a cell's output: a MIME type and its data (text, or
/// base64 for binary types such as `image/png`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiDisplay {
    /// The MIME type.
    pub mime: RString,
    /// The data.
    pub data: RString,
}

/// A value a plugin owns, by its id in the plugin's own table.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiOwnedRef {
    /// The plugin's id for the value.
    pub id: u64,
    /// The value's type, as the plugin names it.
    pub type_name: RString,
}

/// What a 1.2 executor's body produced.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct FfiOutcome {
    /// Output, printed text, error, cached mark.
    pub result: FfiRunResult,
    /// A rich form of the output.
    pub display: ROption<FfiDisplay>,
    /// The output, when it is a value the plugin owns (then
    /// `result.output` is its plain stand-in, usually unit).
    pub owned_output: ROption<FfiOwnedRef>,
}

/// Why the cell must stop: a transparent byte with named values.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FfiStopReason(pub u8);

#[allow(missing_docs)]
impl FfiStopReason {
    pub const NONE: FfiStopReason = FfiStopReason(0);
    pub const INTERRUPTED: FfiStopReason = FfiStopReason(1);
    pub const TIMEOUT: FfiStopReason = FfiStopReason(2);
    pub const MEMORY: FfiStopReason = FfiStopReason(3);
}

/// One step into a container: an array index or a map key.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq, Eq)]
pub struct FfiStep {
    /// The index, when `key` is none.
    pub index: u64,
    /// The map key.
    pub key: ROption<RString>,
}

/// The kind of the value at a path, as [`FfiHost2::value_kind`] reports it.
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FfiValueKind(pub u8);

#[allow(missing_docs)]
impl FfiValueKind {
    pub const MISSING: FfiValueKind = FfiValueKind(0);
    pub const UNIT: FfiValueKind = FfiValueKind(1);
    pub const BOOL: FfiValueKind = FfiValueKind(2);
    pub const INT: FfiValueKind = FfiValueKind(3);
    pub const FLOAT: FfiValueKind = FfiValueKind(4);
    pub const STR: FfiValueKind = FfiValueKind(5);
    pub const ARRAY: FfiValueKind = FfiValueKind(6);
    pub const MAP: FfiValueKind = FfiValueKind(7);
    pub const BLOB: FfiValueKind = FfiValueKind(8);
    pub const OWNED: FfiValueKind = FfiValueKind(9);
    pub const OTHER: FfiValueKind = FfiValueKind(10);
}

/// What the host offers a 1.2 plugin during one call.
///
/// The object lives for the call it is passed to and must not be kept.
/// Besides 1.0's calls it gives zero-copy reads of large values (the
/// `value_*` calls walk a path into a global without copying what is not
/// asked for), the wire form of values, values the plugin owns, the stop
/// reason and a built-in body with a deadline.
///
/// # Evolution
/// Methods are only appended, after `run_default_until`, with default bodies.
#[sabi_trait]
pub trait FfiHost2 {
    /// A copy of the value of a visible global.
    fn get(&self, name: RStr<'_>) -> ROption<FfiValue>;
    /// Defines a global.
    fn set(&mut self, name: RStr<'_>, value: FfiValue);
    /// Removes a global; whether it was defined.
    fn remove(&mut self, name: RStr<'_>) -> bool;
    /// The visible global names, in no particular order.
    fn names(&self) -> RVec<RString>;
    /// The kind of the value at `path` inside global `name`.
    fn value_kind(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> FfiValueKind;
    /// The length of the array, map, string or blob at `path`.
    fn value_len(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> u64;
    /// The keys of the map at `path`, sorted.
    fn value_keys(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> RVec<RString>;
    /// A copy of the value at `path` (only of that part).
    fn value_get(&self, name: RStr<'_>, path: RSlice<'_, FfiStep>) -> ROption<FfiValue>;
    /// The wire form (JSON text) of a global; an error names a value without one.
    fn get_wire(&self, name: RStr<'_>) -> RResult<ROption<RString>, FfiError>;
    /// Defines a global from its wire form.
    fn set_wire(&mut self, name: RStr<'_>, wire: RStr<'_>) -> RResult<(), FfiError>;
    /// The value of a global when it is a value this plugin owns.
    fn get_owned(&self, name: RStr<'_>) -> ROption<FfiOwnedRef>;
    /// Defines a global as a value this plugin owns (see `FfiExecutor2`'s `owned_*`).
    fn set_owned(&mut self, name: RStr<'_>, value: FfiOwnedRef);
    /// Why the cell must stop, or [`FfiStopReason::NONE`].
    ///
    /// Any thread may call it while the call that received the host runs,
    /// concurrently with the other methods: an implementation must read an
    /// atomic flag (or immutable data) and nothing else, or the SDK's
    /// `StopSignal`, which relies on this, is unsound.
    fn stop_reason(&self) -> FfiStopReason;
    /// Emits a log line through the runner's `tracing`, naming the plugin.
    fn log(&self, level: FfiLogLevel, message: RStr<'_>);
    /// Runs the current cell's body with the host's built-in evaluation,
    /// stopping it at `deadline_unix_ms` if given (or at the cell's own
    /// deadline, whichever comes first). Executors only.
    #[sabi(last_prefix_field)]
    fn run_default_until(
        &mut self,
        deadline_unix_ms: ROption<u64>,
    ) -> RResult<FfiOutcome, FfiError>;
}

/// The [`FfiHost2`] object of one call.
pub type FfiHost2Mut<'a> = FfiHost2_TO<'a, RMut<'a, ()>>;

/// A 1.2 cell executor living in a plugin.
///
/// The host calls `run_started` once, then for each cell `submit` and,
/// later, `complete` with the ticket `submit` returned, then
/// `run_finished`. With `concurrency() > 0` several cells may be between
/// `submit` and `complete` at once, from different threads; with 0 there is
/// one at a time. `complete` blocks until the cell is done and must return
/// promptly once the host's `stop_reason` is set.
///
/// Values the plugin puts into the globals with `set_owned` stay the
/// plugin's: the host asks it, by id, for what it needs (`owned_*`), and
/// calls `owned_drop` when the host no longer holds the value.
///
/// # Evolution
/// Methods are only appended, after `owned_drop`, with default bodies.
#[sabi_trait]
pub trait FfiExecutor2: Send + Sync {
    /// How many cells may be in flight at once; 0 means one at a time.
    fn concurrency(&self) -> u32;
    /// A run is about to start.
    fn run_started(&self, run: &FfiRunInfo) -> RResult<(), FfiError>;
    /// The run ended.
    fn run_finished(&self, outcome: &FfiRunOutcome);
    /// Starts `cell`, reading its inputs through `host`; returns a ticket.
    fn submit(&self, cell: &FfiCellContext, host: FfiHost2Mut<'_>) -> RResult<u64, FfiError>;
    /// Waits for the cell of `ticket`, writes its definitions through `host`
    /// and returns what its body produced.
    fn complete(&self, ticket: u64, host: FfiHost2Mut<'_>) -> RResult<FfiOutcome, FfiError>;
    /// A one-line human form of an owned value.
    fn owned_display(&self, id: u64) -> RString;
    /// The JSON text of an owned value, if it has one.
    fn owned_json(&self, id: u64) -> ROption<RString>;
    /// An independent copy of an owned value (`--strict`), as a new id.
    fn owned_copy(&self, id: u64) -> ROption<u64>;
    /// Bytes equal exactly when the values are equal (`--cache` keys).
    fn owned_fingerprint(&self, id: u64) -> ROption<RVec<u8>>;
    /// A self-contained encoding the plugin can decode (`--cache` entries).
    fn owned_encode(&self, id: u64) -> ROption<RVec<u8>>;
    /// Decodes what `owned_encode` produced, as a new id.
    fn owned_decode(&self, type_name: RStr<'_>, bytes: RSlice<'_, u8>) -> ROption<u64>;
    /// The host no longer holds the value.
    #[sabi(last_prefix_field)]
    fn owned_drop(&self, id: u64);
}

/// An owned [`FfiExecutor2`] object.
pub type FfiExecutor2Box = FfiExecutor2_TO<'static, RBox<()>>;

/// A 1.2 lifecycle living in a plugin, with the guarantees of the core
/// lifecycle; it also hears of the run and of cells that did not run.
///
/// # Evolution
/// Methods are only appended, after `run_finished`, with default bodies.
#[sabi_trait]
pub trait FfiLifecycle2: Send + Sync {
    /// Prepares the cell's evaluation, or skips its body.
    fn setup(&self, cell: &FfiCellContext, host: FfiHost2Mut<'_>) -> RResult<FfiSetup, FfiError>;
    /// Finishes the cell's evaluation, seeing its `result`.
    fn teardown(
        &self,
        cell: &FfiCellContext,
        result: &FfiRunResult,
        host: FfiHost2Mut<'_>,
    ) -> RResult<(), FfiError>;
    /// The cell did not run (cancelled, interrupted, or a static error); `result` says why.
    fn cell_not_run(&self, cell: &FfiCellContext, result: &FfiRunResult);
    /// A run is about to start.
    fn run_started(&self, run: &FfiRunInfo) -> RResult<(), FfiError>;
    /// The run ended.
    #[sabi(last_prefix_field)]
    fn run_finished(&self, outcome: &FfiRunOutcome);
}

/// An owned [`FfiLifecycle2`] object.
pub type FfiLifecycle2Box = FfiLifecycle2_TO<'static, RBox<()>>;
