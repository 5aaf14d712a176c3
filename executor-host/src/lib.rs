//! The host side of cellrun's plugin ABI: what the runner does with plugin
//! objects it loaded.
//!
//! [`PluginExecutor2`] and [`PluginLifecycle2`] turn 1.2 plugin objects into
//! core [`Executor`](executor_core::Executor)s and
//! [`Lifecycle`](executor_core::Lifecycle)s and give plugins the [`FfiHost2`]
//! of each call: globals (copies, zero-copy paths, the wire form), owned
//! values, the stop reason, the built-in evaluation with a deadline.
//! [`legacy`] does the same for 1.0 and 1.1 plugins.
//!
//! The runner finds and loads libraries; this crate only adapts what it
//! loaded, so it is tested against plugins linked as plain Rust crates.
//! It is a crate of its own, not part of `executor-abi`, so that plugins,
//! which depend on `executor-abi`, never compile the Rhai engine or
//! `executor-core`.
//!
//! [`FfiHost2`]: executor_abi::FfiHost2

#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

mod convert;
mod current;
pub mod legacy;
mod paths;
#[cfg(test)]
mod tests;
mod wire;

pub use crate::{
    convert::{core_error, ffi_cell, ffi_error, HandleTable},
    current::{PluginExecutor2, PluginLifecycle2},
    legacy::{emit_log, logger, plugin_error, PluginExecutor, PluginLifecycle},
};
