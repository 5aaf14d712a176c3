//! Test fixture: a lifecycle plugin (`teardown-panic`) that panics in the
//! teardown of the cell named `boom`.

use executor_abi::sdk::{Host, LifecyclePlugin, Logger, Options, PluginError};
use executor_abi::{FfiCellContext, FfiRunResult};

/// Panics tearing down the cell named `boom`.
#[derive(Debug)]
pub struct TeardownPanic;

impl LifecyclePlugin for TeardownPanic {
    const NAME: &'static str = "teardown-panic";

    fn new(_options: &Options, _logger: Logger) -> Result<TeardownPanic, PluginError> {
        Ok(TeardownPanic)
    }

    fn teardown(
        &self,
        cell: &FfiCellContext,
        _result: &FfiRunResult,
        _host: &mut Host<'_>,
    ) -> Result<(), PluginError> {
        if cell.name.as_str() == "boom" {
            panic!("teardown refuses the cell named boom");
        }
        Ok(())
    }
}

executor_abi::export_lifecycle!(TeardownPanic);
