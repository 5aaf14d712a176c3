//! The `retry` executor plugin: runs each cell's body with the host's
//! built-in evaluation and runs it again when it fails.
//!
//! Options (`--plugin-opt retry.KEY=VALUE`):
//! - `attempts`: how many times a failed cell is run again (default 2);
//! - `backoff_ms`: milliseconds to wait before each new try (default 0).
//!
//! A cell that was interrupted or timed out is never retried. Definitions a
//! failed try made stay in the globals for the next try.

use std::time::{Duration, Instant};

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::{FfiCellContext, FfiErrorKind, FfiLogLevel};

/// Retries failed cells; see the crate docs for the options.
#[derive(Debug)]
pub struct Retry {
    attempts: u32,
    backoff: Duration,
}

impl ExecutorPlugin for Retry {
    const NAME: &'static str = "retry";
    const DESCRIPTION: &'static str = "retries a failed cell (retry.attempts, retry.backoff_ms)";

    fn new(options: &Options, _logger: Logger) -> Result<Retry, PluginError> {
        options.reject_unknown(&["attempts", "backoff_ms"])?;
        Ok(Retry {
            attempts: options.parse_or("attempts", 2)?,
            backoff: Duration::from_millis(options.parse_or("backoff_ms", 0)?),
        })
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let mut result = host.run_default()?;
        for attempt in 1..=self.attempts {
            let retryable = result.error.as_ref().is_some_and(|error| {
                !matches!(
                    error.kind,
                    FfiErrorKind::INTERRUPTED | FfiErrorKind::TIMEOUT
                )
            });
            if !retryable || !wait(self.backoff, host) {
                break;
            }
            host.log(
                FfiLogLevel::INFO,
                &format!(
                    "retrying cell `{}` (retry {attempt} of {})",
                    cell.name, self.attempts
                ),
            );
            result = host.run_default()?;
        }
        Ok(result)
    }
}

/// Sleeps for `backoff` in short steps; false when the cell was cancelled.
fn wait(backoff: Duration, host: &Host<'_>) -> bool {
    let deadline = Instant::now() + backoff;
    loop {
        if host.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
    }
}

executor_abi::export_executor!(Retry);

#[cfg(test)]
mod tests {
    use super::*;
    use executor_abi::sdk::executor_for_tests;

    #[test]
    fn options_are_parsed_and_bad_ones_rejected() {
        let retry = Retry::new(
            &Options::new([
                ("attempts".into(), "5".into()),
                ("backoff_ms".into(), "20".into()),
            ]),
            executor_abi::sdk::Logger::new(executor_abi::sdk::testing::logger("retry")),
        )
        .unwrap();
        assert_eq!(retry.attempts, 5);
        assert_eq!(retry.backoff, Duration::from_millis(20));
        let error = executor_for_tests::<Retry>(&[("attempts", "many")])
            .err()
            .unwrap();
        assert!(error.message.contains("attempts=many"), "{}", error.message);
    }
}
