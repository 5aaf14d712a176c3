//! Test fixture: an executor plugin as built against executor-abi 1.1.
//!
//! Its library header claims 1.1.0 and its root module is the frozen 1.1
//! generation (`executor_abi::generations::v1_1`), whose layout is pinned to
//! the released 1.1 by a snapshot test. A runner on a later 1.x must load
//! and run it, which abi_stable alone refuses once the root module grew
//! (see issue 8). `cargo xtask abi-check` shows the same for the plugins
//! really built at the 1.1 release.
//!
//! It runs every body with the host's evaluation and adds one line to the
//! cell's printed output, so a test can tell that it ran.

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::FfiCellContext;

/// Runs bodies through [`Host::run_default`] and says so in the stdout.
#[derive(Debug)]
pub struct AbiOneOne;

impl ExecutorPlugin for AbiOneOne {
    const NAME: &'static str = "abi-1-1";

    fn new(options: &Options, _logger: Logger) -> Result<AbiOneOne, PluginError> {
        options.reject_unknown(&[])?;
        Ok(AbiOneOne)
    }

    fn execute(&self, _cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let mut result = host.run_default()?;
        result.stdout.push_str("ran by abi-1-1\n");
        Ok(result)
    }
}

executor_abi::__export_root_module!(
    executor_abi::generations::v1_1::executor_module::<AbiOneOne>,
    executor_abi::generations::v1_1::PluginMod_Ref
);
