//! The `subprocess` executor plugin: runs every cell in a `cellrun worker`
//! process of its own, never in the runner's process.
//!
//! Each cell goes to a worker as one request line (its code, the code of
//! the functions it reaches, its inputs in the wire form, its deadline) and
//! comes back as one answer line (definitions, inputs it changed in place,
//! output, printed text, error with notebook lines), through
//! [`worker_client`]. The worker keeps nothing between requests, so a
//! worker that answered is reused for a later cell by default: the results
//! are those of a fresh process, without paying a process start per cell
//! (`reuse=false` starts one per cell anyway). See [`pool`] for the
//! processes' lifetime: stops, kills, and what is left when a run ends.
//!
//! Options (`--plugin-opt subprocess.KEY=VALUE`):
//! - `reuse`: `true` (default) reuses a worker that answered; `false`
//!   starts a new worker process for every cell;
//! - `max-memory`: each worker's memory limit in MiB (`cellrun worker
//!   --max-memory`; default: the worker's own default), since the run's
//!   `--max-memory` bounds the runner's process only;
//! - `cellrun`: the `cellrun` binary to start as `cellrun worker`
//!   (default: the one running).

pub mod pool;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError, StopReason};
use executor_abi::{FfiCellContext, FfiErrorKind, FfiRunInfo, FfiRunOutcome};
use worker_client::{Answer, Request};

use crate::pool::{Pool, Waited, Worker};

/// The most cells in flight at once, so the most worker processes.
pub const MAX_IN_FLIGHT: u32 = 64;

/// The executor's settings, from its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The `cellrun` binary started as `cellrun worker`.
    pub cellrun: PathBuf,
    /// Whether a worker that answered serves later cells.
    pub reuse: bool,
    /// Each worker's memory limit in MiB, when given.
    pub max_memory_mib: Option<u64>,
}

impl Config {
    /// Reads the options.
    ///
    /// # Errors
    /// On an unknown option, a bad value, or a `cellrun` that is not a file.
    pub fn from_options(options: &Options) -> Result<Config, PluginError> {
        options.reject_unknown(&["reuse", "max-memory", "cellrun"])?;
        let reuse = options.parse_or("reuse", true)?;
        let max_memory_mib = match options.get("max-memory") {
            None => None,
            Some(text) => match text.parse::<u64>() {
                Ok(mib) if mib > 0 => Some(mib),
                _ => {
                    return Err(PluginError::new(format!(
                        "option `max-memory={text}`: expected a positive number of MiB"
                    )))
                }
            },
        };
        let cellrun = worker_client::cellrun_binary(options)?;
        if !cellrun.is_file() {
            return Err(PluginError::new(format!(
                "option `cellrun`: {} is not a file",
                cellrun.display()
            )));
        }
        Ok(Config {
            cellrun,
            reuse,
            max_memory_mib,
        })
    }
}

/// A cell sent to a worker, waiting for `complete`.
struct InFlight {
    worker: Worker,
    cell: String,
}

/// Runs every cell in a `cellrun worker` process; see the crate docs.
pub struct Subprocess {
    pool: Pool,
    in_flight: Mutex<HashMap<u64, InFlight>>,
    next_ticket: AtomicU64,
}

impl Subprocess {
    fn take(&self, ticket: u64) -> Option<InFlight> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ticket)
    }
}

impl ExecutorPlugin for Subprocess {
    const NAME: &'static str = "subprocess";
    const DESCRIPTION: &'static str =
        "runs every cell in a `cellrun worker` process (subprocess.reuse, subprocess.max-memory)";
    const CONCURRENCY: u32 = MAX_IN_FLIGHT;
    const TWO_PHASE: bool = true;

    fn new(options: &Options, logger: Logger) -> Result<Subprocess, PluginError> {
        Ok(Subprocess {
            pool: Pool::new(Config::from_options(options)?, logger),
            in_flight: Mutex::new(HashMap::new()),
            next_ticket: AtomicU64::new(1),
        })
    }

    /// For hosts older than executor-abi 1.2, which call `execute` only.
    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let ticket = self.submit(cell, host)?;
        self.complete(ticket, host)
    }

    /// Sends the cell to a worker (an idle one, or a new one).
    fn submit(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<u64, PluginError> {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let request = Request::for_cell(cell, host, ticket)?;
        let worker = self
            .pool
            .send(&request)
            .map_err(|error| PluginError::new(format!("cannot start `cellrun worker`: {error}")))?;
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                ticket,
                InFlight {
                    worker,
                    cell: cell.name.to_string(),
                },
            );
        Ok(ticket)
    }

    /// Waits for the worker's answer and writes it into the host; a stop
    /// the host asks for reaches the worker (see [`pool`]).
    fn complete(&self, ticket: u64, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let Some(InFlight { mut worker, cell }) = self.take(ticket) else {
            return Err(PluginError::new(format!("unknown ticket {ticket}")));
        };
        match worker.wait_answer(|| host.stop_reason()) {
            Waited::Answer { line, stopped } => {
                let answer = match Answer::parse(&line) {
                    Ok(answer) if answer.id == ticket => answer,
                    Ok(answer) => {
                        self.pool.discard(worker);
                        return Err(PluginError::new(format!(
                            "the worker running cell `{cell}` answered request {} instead of {ticket}",
                            answer.id
                        )));
                    }
                    Err(reason) => {
                        self.pool.discard(worker);
                        return Err(PluginError::new(format!(
                            "the worker running cell `{cell}`: {reason}"
                        )));
                    }
                };
                self.pool.release(worker);
                let mut outcome = answer.apply(host)?;
                // A worker told to stop says `interrupted`; the host's
                // reason (a timeout, the memory limit) is the cell's.
                if let Some(reason) = stopped.filter(|reason| *reason != StopReason::Interrupted) {
                    if outcome
                        .error
                        .as_ref()
                        .is_some_and(|error| error.kind == FfiErrorKind::INTERRUPTED)
                    {
                        outcome.error = Outcome::stopped(reason).error;
                    }
                }
                Ok(outcome)
            }
            Waited::Stopped(reason) => {
                self.pool.discard(worker);
                Ok(Outcome::stopped(reason))
            }
            Waited::Died(how) => {
                self.pool.discard(worker);
                Ok(Outcome::failed(
                    FfiErrorKind::RUNTIME,
                    format!("the worker process running cell `{cell}` {how}"),
                    None,
                ))
            }
        }
    }

    /// Starts the first worker, so the first cell does not wait for it.
    fn run_started(&self, _run: &FfiRunInfo) -> Result<(), PluginError> {
        self.pool
            .warm()
            .map_err(|error| PluginError::new(format!("cannot start `cellrun worker`: {error}")))
    }

    /// Ends every worker: none outlives the run.
    fn run_finished(&self, _outcome: &FfiRunOutcome) {
        let abandoned: Vec<InFlight> = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .map(|(_, in_flight)| in_flight)
            .collect();
        for in_flight in abandoned {
            self.pool.discard(in_flight.worker);
        }
        self.pool.shutdown();
    }
}

executor_abi::export_executor!(Subprocess);

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn options_are_read_and_bad_ones_are_named() {
        let this = std::env::current_exe().unwrap();
        let this = this.to_str().unwrap();
        let config = Config::from_options(&options(&[("cellrun", this)])).unwrap();
        assert!(config.reuse);
        assert_eq!(config.max_memory_mib, None);
        let config = Config::from_options(&options(&[
            ("cellrun", this),
            ("reuse", "false"),
            ("max-memory", "256"),
        ]))
        .unwrap();
        assert_eq!((config.reuse, config.max_memory_mib), (false, Some(256)));
        let error = Config::from_options(&options(&[("max-memory", "0")])).unwrap_err();
        assert_eq!(
            error.message(),
            "option `max-memory=0`: expected a positive number of MiB"
        );
        let error = Config::from_options(&options(&[("reuse", "sometimes")])).unwrap_err();
        assert!(
            error.message().starts_with("option `reuse=sometimes`"),
            "{error}"
        );
        let error =
            Config::from_options(&options(&[("cellrun", "/nonexistent/cellrun")])).unwrap_err();
        assert_eq!(
            error.message(),
            "option `cellrun`: /nonexistent/cellrun is not a file"
        );
        assert!(Config::from_options(&options(&[("workers", "2")])).is_err());
    }
}
