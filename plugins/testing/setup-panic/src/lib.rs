//! Test fixture: a lifecycle plugin (`setup-panic`) that panics in the
//! setup of the cell named `boom`.

use executor_abi::sdk::{Host, LifecyclePlugin, Logger, Options, PluginError};
use executor_abi::{FfiCellContext, FfiSetup};

/// Panics setting up the cell named `boom`.
#[derive(Debug)]
pub struct SetupPanic;

impl LifecyclePlugin for SetupPanic {
    const NAME: &'static str = "setup-panic";

    fn new(_options: &Options, _logger: Logger) -> Result<SetupPanic, PluginError> {
        Ok(SetupPanic)
    }

    fn setup(&self, cell: &FfiCellContext, _host: &mut Host<'_>) -> Result<FfiSetup, PluginError> {
        if cell.name.as_str() == "boom" {
            panic!("setup refuses the cell named boom");
        }
        Ok(FfiSetup::Continue)
    }
}

executor_abi::export_lifecycle!(SetupPanic);
