//! The plugin SDK of cellrun, and the stable ABI under it.
//!
//! # Writing a plugin
//! Implement [`sdk::ExecutorPlugin`] (runs cell bodies) or
//! [`sdk::LifecyclePlugin`] (wraps them) and write one [`export_executor!`]
//! or [`export_lifecycle!`] line. During each call the plugin gets a
//! [`sdk::Host`]: the cell's globals (copies, zero-copy [`sdk::View`]s, the
//! [`sdk::wire`] form), values it owns, why the cell must stop, and the
//! built-in evaluation. [`sdk::Value`] is a plain Rust form of every value;
//! [`sdk::testing`] runs a plugin in-process against a mock host, with no
//! runner and no library loading. `cargo xtask new-plugin` writes a crate to
//! start from; `plugins/README.md` walks through one.
//!
//! ```
//! use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
//! use executor_abi::FfiCellContext;
//!
//! /// Runs every cell with the host's built-in evaluation.
//! struct Echo;
//!
//! impl ExecutorPlugin for Echo {
//!     const NAME: &'static str = "echo";
//!     fn new(options: &Options, _logger: Logger) -> Result<Echo, PluginError> {
//!         options.reject_unknown(&[])?;
//!         Ok(Echo)
//!     }
//!     fn execute(&self, _cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
//!         host.run_default()
//!     }
//! }
//!
//! executor_abi::export_executor!(Echo);
//! # fn main() {}
//! ```
//!
//! This crate links no cell language and no part of the runner: a plugin
//! depending on it builds `abi_stable` and `serde_json`, nothing more.
//!
//! # The ABI
//! A plugin is a shared library exporting one root module, a [`PluginMod`],
//! through abi_stable: the plugin's name, kind ([`FfiPluginKind`]),
//! version, the cellrun it needs, the languages it runs, whether it unwinds
//! on panic, and its constructors. What crosses the boundary is prefixed
//! `Ffi`: [`FfiCellContext`], [`FfiOutcome`], [`FfiValue`], and the
//! `#[sabi_trait]` objects [`FfiExecutor2`], [`FfiLifecycle2`], [`FfiHost2`]
//! and [`FfiLog`] (1.2), beside the 1.0 ones ([`FfiExecutor`],
//! [`FfiLifecycle`], [`FfiHost`], [`FfiCell`]) that older plugins use.
//! The runner's side lives in the `executor-host` crate.
//!
//! # Design decisions
//! - Globals cross as a handle ([`FfiHost2`]) the plugin calls, never as a
//!   copy of the whole map: a cell costs what the plugin reads.
//! - No panic crosses the boundary: abi_stable exits the process on one.
//!   The SDK catches every panic inside the plugin and returns an error
//!   naming the plugin; the runner refuses libraries built to abort.
//! - Plugins are never unloaded; abi_stable does not support unloading.
//! - Older minor versions stay loadable: [`generations`] keeps the root
//!   module of each older minor, and the runner checks a library against
//!   the generation its header names. Released traits never grow (the
//!   layout check would reject older libraries); a minor adds new types
//!   reached from new root-module fields. [`layout`] renders the layout the
//!   committed snapshot `abi-layout.txt` pins; see `README.md` for the
//!   version policy.

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub use abi_stable;

pub mod sdk;

mod ffi;
pub mod generations;
pub mod layout;

pub use crate::ffi::{
    FfiCell, FfiCellContext, FfiCellError, FfiDisplay, FfiEntry, FfiError, FfiErrorKind,
    FfiExecutor, FfiExecutor2, FfiExecutor2Box, FfiExecutor2_TO, FfiExecutorBox, FfiExecutor_TO,
    FfiFunction, FfiHost, FfiHost2, FfiHost2Mut, FfiHost2_TO, FfiHostMut, FfiHost_TO, FfiLifecycle,
    FfiLifecycle2, FfiLifecycle2Box, FfiLifecycle2_TO, FfiLifecycleBox, FfiLifecycle_TO, FfiLog,
    FfiLogLevel, FfiLog_TO, FfiLogger, FfiOption, FfiOutcome, FfiOwnedRef, FfiPluginKind,
    FfiRunInfo, FfiRunOutcome, FfiRunResult, FfiSetup, FfiStep, FfiStopReason, FfiValue,
    FfiValueKind, NewExecutor2Fn, NewExecutorFn, NewLifecycle2Fn, NewLifecycleFn, PluginMod,
    PluginMod_Ref, ABI_VERSION,
};
