//! Test fixture: an executor plugin (`ctor-error`) whose constructor fails.

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::FfiCellContext;

/// Never built: its constructor always fails.
#[derive(Debug)]
pub struct CtorError;

impl ExecutorPlugin for CtorError {
    const NAME: &'static str = "ctor-error";

    fn new(_options: &Options, _logger: Logger) -> Result<CtorError, PluginError> {
        Err("this fixture never starts".into())
    }

    fn execute(&self, _cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        host.run_default()
    }
}

executor_abi::export_executor!(CtorError);
