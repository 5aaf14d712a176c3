//! The stable plugin ABI of cellrun.
//!
//! This crate is a placeholder: the abi_stable mirror of [`executor_core`]'s
//! traits, the root module of a plugin library and the plugin SDK land here
//! with the plugin work. Nothing depends on it yet.
