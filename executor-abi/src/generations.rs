//! Frozen interface generations: the root module of every released minor
//! version older than the current one, linked side by side with it.
//!
//! abi_stable accepts a library built against a *newer* minor than the
//! host, but rejects one built against an *older* minor once the host's root
//! module gained a field ("too many fields"). So for each released minor
//! whose root module differs from the current one, this module keeps that
//! minor's root module as it was; the runner reads the version in a
//! library's header, picks the generation of that minor and runs abi_stable's
//! layout check against it.
//!
//! A generation only freezes the root module: everything else (the 1.0
//! trait objects, the cell and result mirrors) is shared with the current
//! version and never changes. New capabilities come as new types (1.2's
//! `FfiExecutor2`, `FfiHost2`, ...) reached only from root-module fields
//! appended after the older generations' last field, so an older library is
//! checked against a root module that does not mention them.
//!
//! # Rules
//! - A generation is a copy of the released root module: same type name,
//!   same field names, types and order, same `#[sabi]` attributes. Its
//!   layout is pinned by a snapshot test (`abi-layout-1.0.txt`).
//! - Never change a generation. Add one when a minor version appends a
//!   field to [`PluginMod`](crate::PluginMod).
//! - Never append a method to a released trait: the layout check rejects a
//!   library whose vtable is shorter than the host's. Add a new trait,
//!   reached from a new root-module field, instead.

#![allow(non_camel_case_types, non_local_definitions)]

/// The root module of ABI 1.0, frozen.
pub mod v1_0 {
    use abi_stable::{
        declare_root_module_statics,
        library::RootModule,
        prefix_type::PrefixTypeTrait,
        sabi_types::VersionStrings,
        std_types::{RResult, RStr, RVec},
        StableAbi,
    };

    use crate::sdk::{self, ExecutorPlugin, LifecyclePlugin};
    use crate::{FfiError, FfiExecutorBox, FfiLifecycleBox, FfiLogger, FfiOption, FfiPluginKind};

    /// The version this generation stands for.
    pub const VERSION: &str = "1.0.0";

    /// The root module of a plugin library built against executor-abi 1.0:
    /// [`crate::PluginMod`] without the fields appended since.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        /// The plugin's name.
        pub name: RStr<'static>,
        /// Whether the plugin is an executor or a lifecycle.
        pub kind: FfiPluginKind,
        /// Builds the executor of an executor plugin.
        pub new_executor: extern "C" fn(
            options: RVec<FfiOption>,
            logger: FfiLogger,
        ) -> RResult<FfiExecutorBox, FfiError>,
        /// Builds the lifecycle of a lifecycle plugin.
        #[sabi(last_prefix_field)]
        pub new_lifecycle: extern "C" fn(
            options: RVec<FfiOption>,
            logger: FfiLogger,
        ) -> RResult<FfiLifecycleBox, FfiError>,
    }

    impl RootModule for PluginMod_Ref {
        declare_root_module_statics! {PluginMod_Ref}
        const BASE_NAME: &'static str = "cellrun_plugin";
        const NAME: &'static str = "cellrun plugin";
        const VERSION_STRINGS: VersionStrings = VersionStrings::new(VERSION);
    }

    /// The layout snapshot of this generation (see [`crate::layout`]).
    pub fn snapshot() -> String {
        crate::layout::snapshot::<PluginMod_Ref>(VERSION)
    }

    /// A 1.0 root module for executor plugin `P`.
    ///
    /// Only for the regression fixture `plugins/testing/abi-1-0`, which
    /// stands for a plugin built against 1.0; the SDK's export macros
    /// always write the current version.
    #[doc(hidden)]
    pub fn executor_module<P: ExecutorPlugin>() -> PluginMod_Ref {
        sdk::install_panic_hook();
        PluginMod {
            name: RStr::from_str(P::NAME),
            kind: FfiPluginKind::EXECUTOR,
            new_executor: sdk::new_executor::<P>,
            new_lifecycle: sdk::no_lifecycle::<P>,
        }
        .leak_into_prefix()
    }

    /// A 1.0 root module for lifecycle plugin `P`; see [`executor_module`].
    #[doc(hidden)]
    pub fn lifecycle_module<P: LifecyclePlugin>() -> PluginMod_Ref {
        sdk::install_panic_hook();
        PluginMod {
            name: RStr::from_str(P::NAME),
            kind: FfiPluginKind::LIFECYCLE,
            new_executor: sdk::no_executor::<P>,
            new_lifecycle: sdk::new_lifecycle::<P>,
        }
        .leak_into_prefix()
    }
}

/// The root module of ABI 1.1, frozen: 1.0's plus `description`.
pub mod v1_1 {
    use abi_stable::{
        declare_root_module_statics,
        library::RootModule,
        prefix_type::PrefixTypeTrait,
        sabi_types::VersionStrings,
        std_types::{RResult, RStr, RVec},
        StableAbi,
    };

    use crate::sdk::{self, ExecutorPlugin, LifecyclePlugin};
    use crate::{FfiError, FfiExecutorBox, FfiLifecycleBox, FfiLogger, FfiOption, FfiPluginKind};

    /// The version this generation stands for.
    pub const VERSION: &str = "1.1.0";

    /// The root module of a plugin library built against executor-abi 1.1.
    #[repr(C)]
    #[derive(StableAbi)]
    #[sabi(kind(Prefix(prefix_ref = PluginMod_Ref)))]
    #[sabi(missing_field(panic))]
    pub struct PluginMod {
        /// The plugin's name.
        pub name: RStr<'static>,
        /// Whether the plugin is an executor or a lifecycle.
        pub kind: FfiPluginKind,
        /// Builds the executor of an executor plugin.
        pub new_executor: extern "C" fn(
            options: RVec<FfiOption>,
            logger: FfiLogger,
        ) -> RResult<FfiExecutorBox, FfiError>,
        /// Builds the lifecycle of a lifecycle plugin.
        #[sabi(last_prefix_field)]
        pub new_lifecycle: extern "C" fn(
            options: RVec<FfiOption>,
            logger: FfiLogger,
        ) -> RResult<FfiLifecycleBox, FfiError>,
        /// One line saying what the plugin does.
        #[sabi(missing_field(option))]
        pub description: RStr<'static>,
    }

    impl RootModule for PluginMod_Ref {
        declare_root_module_statics! {PluginMod_Ref}
        const BASE_NAME: &'static str = "cellrun_plugin";
        const NAME: &'static str = "cellrun plugin";
        const VERSION_STRINGS: VersionStrings = VersionStrings::new(VERSION);
    }

    /// The layout snapshot of this generation (see [`crate::layout`]).
    pub fn snapshot() -> String {
        crate::layout::snapshot::<PluginMod_Ref>(VERSION)
    }

    /// A 1.1 root module for executor plugin `P`, for the regression
    /// fixture `plugins/testing/abi-1-1`.
    #[doc(hidden)]
    pub fn executor_module<P: ExecutorPlugin>() -> PluginMod_Ref {
        sdk::install_panic_hook();
        PluginMod {
            name: RStr::from_str(P::NAME),
            kind: FfiPluginKind::EXECUTOR,
            new_executor: sdk::new_executor::<P>,
            new_lifecycle: sdk::no_lifecycle::<P>,
            description: RStr::from_str(P::DESCRIPTION),
        }
        .leak_into_prefix()
    }

    /// A 1.1 root module for lifecycle plugin `P`; see [`executor_module`].
    #[doc(hidden)]
    pub fn lifecycle_module<P: LifecyclePlugin>() -> PluginMod_Ref {
        sdk::install_panic_hook();
        PluginMod {
            name: RStr::from_str(P::NAME),
            kind: FfiPluginKind::LIFECYCLE,
            new_executor: sdk::no_executor::<P>,
            new_lifecycle: sdk::new_lifecycle::<P>,
            description: RStr::from_str(P::DESCRIPTION),
        }
        .leak_into_prefix()
    }
}

#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    #[test]
    fn the_1_0_generation_keeps_the_released_layout() {
        let committed = include_str!("../abi-layout-1.0.txt");
        assert!(
            super::v1_0::snapshot() == committed,
            "the frozen 1.0 root module no longer has the layout released as 1.0 \
             (executor-abi/abi-layout-1.0.txt); generations must never change"
        );
    }

    #[test]
    fn the_1_1_generation_keeps_the_released_layout() {
        let committed = include_str!("../abi-layout-1.1.txt");
        assert!(
            super::v1_1::snapshot() == committed,
            "the frozen 1.1 root module no longer has the layout released as 1.1 \
             (executor-abi/abi-layout-1.1.txt); generations must never change"
        );
    }
}
