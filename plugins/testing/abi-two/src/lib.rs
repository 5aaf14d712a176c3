//! Test fixture: a library built against an incompatible ABI major.
//!
//! It stands for a plugin built against a future executor-abi 2.0.0: an
//! abi_stable library whose header claims that version, with a root module
//! of its own. The runner must refuse it with one friendly line before any
//! layout check.

// abi_stable names the generated prefix reference `PluginMod_Ref`.
#![allow(non_camel_case_types)]

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RStr, StableAbi,
};

/// The root module of the imaginary ABI 2.0.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
pub struct PluginMod {
    /// The plugin's name.
    #[sabi(last_prefix_field)]
    pub name: RStr<'static>,
}

impl RootModule for PluginMod_Ref {
    declare_root_module_statics! {PluginMod_Ref}
    const BASE_NAME: &'static str = "cellrun_plugin";
    const NAME: &'static str = "cellrun plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("2.0.0");
}

/// The library's root module.
#[export_root_module]
pub fn cellrun_root_module() -> PluginMod_Ref {
    PluginMod {
        name: RStr::from_str("abi-two"),
    }
    .leak_into_prefix()
}
