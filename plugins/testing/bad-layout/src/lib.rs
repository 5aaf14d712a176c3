//! Test fixture: a library that claims executor-abi 1.0.0 but whose root
//! module has another layout (an executor constructor of the wrong type).
//!
//! Its name and kind read fine; abi_stable's layout check must refuse it
//! before its constructor is ever called.

// abi_stable names the generated prefix reference `PluginMod_Ref`.
#![allow(non_camel_case_types)]

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_extern_fn, sabi_types::VersionStrings, std_types::RStr,
    StableAbi,
};

/// A root module that looks like executor-abi 1.0's in its first fields only.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
pub struct PluginMod {
    /// The plugin's name.
    pub name: RStr<'static>,
    /// The plugin's kind: 0, an executor.
    pub kind: u8,
    /// Not executor-abi's constructor.
    #[sabi(last_prefix_field)]
    pub new_executor: extern "C" fn(u64) -> u64,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "cellrun_plugin";
    const NAME: &'static str = "cellrun plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("1.0.0");
}

#[sabi_extern_fn]
fn new_executor(value: u64) -> u64 {
    value
}

/// The library's root module.
#[export_root_module]
pub fn cellrun_root_module() -> PluginMod_Ref {
    PluginMod {
        name: RStr::from_str("bad-layout"),
        kind: 0,
        new_executor,
    }
    .leak_into_prefix()
}
