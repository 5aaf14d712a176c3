//! Test fixture: an executor plugin (`ctor-panic`) whose constructor panics.

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::FfiCellContext;

/// Never built: its constructor panics.
#[derive(Debug)]
pub struct CtorPanic;

impl ExecutorPlugin for CtorPanic {
    const NAME: &'static str = "ctor-panic";

    fn new(_options: &Options, _logger: Logger) -> Result<CtorPanic, PluginError> {
        panic!("constructor exploded")
    }

    fn execute(&self, _cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        host.run_default()
    }
}

executor_abi::export_executor!(CtorPanic);
