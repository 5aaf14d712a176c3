//! Test fixture: an executor plugin (`execute-panic`) that panics running
//! the cell named `boom` and runs every other cell normally.

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::FfiCellContext;

/// Panics on the cell named `boom`.
#[derive(Debug)]
pub struct ExecutePanic;

impl ExecutorPlugin for ExecutePanic {
    const NAME: &'static str = "execute-panic";

    fn new(_options: &Options, _logger: Logger) -> Result<ExecutePanic, PluginError> {
        Ok(ExecutePanic)
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        if cell.name.as_str() == "boom" {
            panic!("refusing to run the cell named boom");
        }
        host.run_default()
    }
}

executor_abi::export_executor!(ExecutePanic);
