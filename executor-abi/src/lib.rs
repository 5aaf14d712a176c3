//! The stable plugin ABI of cellrun, and the SDK plugin authors build on.
//!
//! A plugin is a shared library that exports one root module, a
//! [`PluginMod`], through abi_stable. The module names the plugin, says
//! whether it provides an executor or a lifecycle ([`FfiPluginKind`]) and
//! holds the constructors. Everything that crosses the boundary is an
//! FFI-safe mirror of an [`executor_core`] type, prefixed `Ffi`:
//! [`FfiCell`], [`FfiRunResult`], [`FfiCellError`], [`FfiValue`], and the
//! `#[sabi_trait]` objects [`FfiExecutor`], [`FfiLifecycle`], [`FfiHost`]
//! and [`FfiLog`].
//!
//! The crate plays abi_stable's role of an *interface crate*: plugins
//! (implementation crates) and the runner (the user crate) both link it.
//!
//! - Plugin authors use the [`sdk`]: implement [`sdk::ExecutorPlugin`] or
//!   [`sdk::LifecyclePlugin`] and write one [`export_executor!`] or
//!   [`export_lifecycle!`] line.
//! - The runner uses [`host`]: [`host::PluginExecutor`] and
//!   [`host::PluginLifecycle`] turn loaded objects into core executors and
//!   lifecycles, and give plugins the globals, the built-in evaluation, the
//!   cancellation check and a log callback.
//!
//! # Design decisions
//! - Globals cross as a handle ([`FfiHost`]) the plugin calls, never as a
//!   copy of the whole map: a cell costs what the plugin reads.
//! - No panic crosses the boundary: abi_stable exits the process on one.
//!   The SDK catches every panic inside the plugin and returns an error
//!   naming the plugin.
//! - Plugins are never unloaded; abi_stable does not support unloading.
//! - Older minor versions stay loadable: [`generations`] keeps the root
//!   module of each older minor, and the runner checks a library against
//!   the generation its header names. [`layout`] renders the layout the
//!   committed snapshot `abi-layout.txt` pins.
//! - Every type here is part of the ABI. Prefix types ([`PluginMod`], the
//!   trait vtables) only ever grow at their end; see `README.md` for the
//!   version policy.
//!
//! # Example
//! ```
//! use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, PluginError};
//! use executor_abi::{FfiCell, FfiRunResult};
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
//!     fn execute(&self, _cell: &FfiCell, host: &mut Host<'_>) -> Result<FfiRunResult, PluginError> {
//!         host.run_default()
//!     }
//! }
//!
//! executor_abi::export_executor!(Echo);
//! # fn main() {}
//! ```

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub use abi_stable;

mod convert;
mod ffi;
pub mod generations;
pub mod host;
pub mod layout;
pub mod sdk;

pub use crate::{
    convert::HandleTable,
    ffi::{
        FfiCell, FfiCellError, FfiEntry, FfiError, FfiErrorKind, FfiExecutor, FfiExecutorBox,
        FfiExecutor_TO, FfiHost, FfiHostMut, FfiHost_TO, FfiLifecycle, FfiLifecycleBox,
        FfiLifecycle_TO, FfiLog, FfiLogLevel, FfiLog_TO, FfiLogger, FfiOption, FfiPluginKind,
        FfiRunResult, FfiSetup, FfiValue, NewExecutorFn, NewLifecycleFn, PluginMod, PluginMod_Ref,
        ABI_VERSION,
    },
};
