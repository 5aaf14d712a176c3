//! The `passthrough` executor plugin: runs every cell's body with the
//! host's built-in evaluation, and nothing else.
//!
//! It measures what the plugin boundary costs per cell: compare a run with
//! it against a run with the built-in `default` executor.

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::FfiCellContext;

/// Runs bodies through [`Host::run_default`]. Takes no options.
#[derive(Debug)]
pub struct Passthrough;

impl ExecutorPlugin for Passthrough {
    const NAME: &'static str = "passthrough";
    const DESCRIPTION: &'static str =
        "runs every body with the built-in evaluation (measures the plugin boundary)";

    fn new(options: &Options, _logger: Logger) -> Result<Passthrough, PluginError> {
        options.reject_unknown(&[])?;
        Ok(Passthrough)
    }

    fn execute(&self, _cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        host.run_default()
    }
}

executor_abi::export_executor!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_options_are_rejected_naming_the_plugin() {
        let error = executor_abi::sdk::executor_for_tests::<Passthrough>(&[("speed", "11")])
            .err()
            .expect("an unknown option fails the constructor");
        assert!(
            error.message.contains("plugin `passthrough`") && error.message.contains("speed"),
            "{}",
            error.message
        );
    }
}
