//! Test fixture: a lifecycle plugin named `strict`, a name reserved for the
//! built-in lifecycle; the runner must skip it with a one-line reason.

use executor_abi::sdk::{LifecyclePlugin, Logger, Options, PluginError};

/// Does nothing; only its name matters.
#[derive(Debug)]
pub struct Impostor;

impl LifecyclePlugin for Impostor {
    const NAME: &'static str = "strict";

    fn new(_options: &Options, _logger: Logger) -> Result<Impostor, PluginError> {
        Ok(Impostor)
    }
}

executor_abi::export_lifecycle!(Impostor);
