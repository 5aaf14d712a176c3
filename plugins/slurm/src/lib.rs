//! The `slurm` executor plugin: runs cells as jobs on a Slurm cluster.
//!
//! Each cell sent to the cluster becomes one blocking `srun` job that runs
//! `cellrun worker` on a node; the request and the response are files in
//! the job's directory under the shared work directory ([`job`]). A cell
//! asks for resources with a `slurm:` comment ([`resources`]) or with
//! `[slurm: ...]` options on its marker line; `--timeout` caps the job's
//! time limit. Up to `--jobs` cells are in flight at once, one `srun` each.
//!
//! Options (`--plugin-opt slurm.KEY=VALUE`):
//! - `partition`, `cpus`, `mem`, `time`: defaults for every cell's job,
//!   with the values a `slurm:` directive takes;
//! - `workdir`: the shared directory for the jobs' files (default
//!   `.cellrun/slurm` beside the notebook);
//! - `route`: `all` (default) sends every cell to the cluster, `marked`
//!   only the cells with a `slurm:` directive or marker options; the others run here with the
//!   built-in evaluation;
//! - `cellrun`: the `cellrun` binary on the nodes (default: the one running);
//! - `python`: the Python program of the environment the nodes run Python
//!   cells in (`cellrun worker --python`; default: the job's `VIRTUAL_ENV`,
//!   else `python3` on its PATH, as Slurm passes the environment on).
//!
//! Python cells run on the nodes like Rhai cells, in the python plugin
//! cellrun ships; their values stay pickles here. With `route=marked`, a
//! Python cell that stays here runs in a `cellrun worker` on this machine.
//!
//! Constructing the executor asks the cluster for its partitions; when it
//! does not answer, construction fails and says why.

pub mod job;
pub mod resources;
pub mod run;

use std::path::PathBuf;

use executor_abi::abi_stable::std_types::{RNone, ROption, RSome, RString};
use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError, StopReason};
use executor_abi::{FfiCellContext, FfiCellError, FfiErrorKind, FfiValue};

use crate::job::{JobFailure, StopCause};
use crate::resources::{find_directive, Resources};
use crate::run::RunJobs;

/// Which cells leave the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Every cell runs on the cluster.
    All,
    /// Only cells with a `slurm:` directive run on the cluster.
    Marked,
}

/// The executor's settings, from its options.
#[derive(Clone, Debug)]
pub struct Config {
    /// Resources for cells that do not ask for them.
    pub defaults: Resources,
    /// The shared directory for the jobs' files, when given.
    pub workdir: Option<PathBuf>,
    /// Which cells run on the cluster.
    pub route: Route,
    /// The `cellrun` binary the nodes run.
    pub cellrun: PathBuf,
    /// The Python program the nodes' workers run Python cells with, when
    /// given (`slurm.python`); else theirs is found as `cellrun run` finds it.
    pub python: Option<PathBuf>,
}

impl Config {
    /// Reads the options.
    ///
    /// # Errors
    /// On an unknown option or a bad value, naming it.
    pub fn from_options(options: &Options) -> Result<Config, PluginError> {
        options.reject_unknown(&[
            "partition",
            "cpus",
            "mem",
            "time",
            "workdir",
            "route",
            "cellrun",
            "python",
        ])?;
        let mut defaults = Resources::default();
        for key in ["partition", "cpus", "mem", "time"] {
            if let Some(value) = options.get(key) {
                defaults
                    .set(key, value)
                    .map_err(|err| PluginError::new(format!("option `{key}`: {err}")))?;
            }
        }
        let route = match options.get("route") {
            None | Some("all") => Route::All,
            Some("marked") => Route::Marked,
            Some(other) => {
                return Err(PluginError::new(format!(
                    "option `route={other}`: expected `all` or `marked`"
                )))
            }
        };
        let cellrun = worker_client::cellrun_binary(options)?;
        Ok(Config {
            defaults,
            workdir: options.get("workdir").map(PathBuf::from),
            route,
            cellrun,
            python: options.get("python").map(PathBuf::from),
        })
    }
}

/// Where a cell runs, and with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Here, with the built-in evaluation.
    Local,
    /// On the cluster, with these resources (defaults applied).
    Cluster(Resources),
}

/// Decides where `cell` runs under `config`.
///
/// # Errors
/// When the cell's `slurm:` directive is invalid: a cell error at the
/// directive's notebook line.
pub fn place(config: &Config, cell: &FfiCellContext) -> Result<Placement, FfiCellError> {
    let error_at = |line: u32, message: String| FfiCellError {
        kind: FfiErrorKind::RUNTIME,
        message: RString::from(message),
        line: RSome(line),
        column: RNone,
        blamed: RNone,
        missing_name: ROption::RNone,
    };
    let directive = find_directive(&cell.code)
        .map_err(|err| error_at(cell.first_line + err.line as u32, err.to_string()))?
        .map(|directive| directive.resources);
    // The marker line's `[slurm: ...]` options, one line above the code.
    let marker = marker_resources(cell)
        .map_err(|message| error_at(cell.first_line.saturating_sub(1).max(1), message))?;
    let asked = match (marker, directive) {
        (Some(marker), Some(directive)) => Some(marker.or(&directive)),
        (marker, directive) => marker.or(directive),
    };
    Ok(match (asked, config.route) {
        (Some(asked), _) => Placement::Cluster(asked.or(&config.defaults)),
        (None, Route::All) => Placement::Cluster(config.defaults.clone()),
        (None, Route::Marked) => Placement::Local,
    })
}

/// The resources the cell's marker options ask for (`slurm.cpus=2`, as
/// `// %% name [slurm: cpus=2]` gives them), or `None` when it names none.
fn marker_resources(cell: &FfiCellContext) -> Result<Option<Resources>, String> {
    let mut resources = None;
    for option in cell.options.iter() {
        let Some(key) = option.key.as_str().strip_prefix("slurm.") else {
            continue;
        };
        resources
            .get_or_insert_with(Resources::default)
            .set(key, option.value.as_str())
            .map_err(|error| error.to_string())?;
    }
    Ok(resources)
}

/// Runs cells on a Slurm cluster; see the crate docs.
#[derive(Debug)]
pub struct Slurm {
    config: Config,
    /// The jobs of this run: one executor is constructed per run.
    run: RunJobs,
}

impl Slurm {
    /// Runs `cell` as one job and brings its definitions back.
    fn run_on_cluster(
        &self,
        cell: &FfiCellContext,
        host: &mut Host<'_>,
        resources: Resources,
    ) -> Result<Outcome, PluginError> {
        self.run_worker(cell, host, Some(resources))
    }

    /// Runs `cell` in `cellrun worker`: as a job on the cluster with
    /// `resources`, or here without them (a cell the routing keeps here
    /// whose language the built-in evaluation does not run).
    fn run_worker(
        &self,
        cell: &FfiCellContext,
        host: &mut Host<'_>,
        resources: Option<Resources>,
    ) -> Result<Outcome, PluginError> {
        let here = resources.is_none();
        let resources = resources.unwrap_or_default();
        // The job's time limit backs up the cell's deadline (`--timeout`).
        let resources = match cell.deadline_unix_ms.into_option() {
            Some(deadline) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| {
                        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                    });
                resources.within(std::time::Duration::from_millis(
                    deadline.saturating_sub(now),
                ))
            }
            None => resources,
        };
        let request = worker_client::Request::for_cell(cell, host, 0)?;
        let mut command = vec![
            self.config.cellrun.display().to_string(),
            "worker".to_owned(),
        ];
        if let Some(python) = &self.config.python {
            command.push("--python".to_owned());
            command.push(python.display().to_string());
        }
        let spec = self
            .run
            .job(cell.id, &cell.name, resources, command)
            .map_err(|err| PluginError::new(format!("cannot create the job directory: {err}")))?;
        let stop = || {
            host.stop_reason().map(|reason| match reason {
                StopReason::Timeout => StopCause::Timeout,
                StopReason::Interrupted => StopCause::Interrupted,
                StopReason::Memory => StopCause::Other,
            })
        };
        let line = request.to_line();
        let ran = if here {
            spec.run_here(line.as_bytes(), stop)
        } else {
            spec.run(line.as_bytes(), stop)
        };
        let response = match ran {
            Ok(response) => response,
            Err(JobFailure::Stopped(cause)) => {
                let reason = host.stop_reason().unwrap_or(match cause {
                    StopCause::Timeout => StopReason::Timeout,
                    _ => StopReason::Interrupted,
                });
                return Ok(Outcome::stopped(reason));
            }
            Err(JobFailure::Failed { state, message }) => {
                let kind = match state.as_deref() {
                    Some("TIMEOUT") => FfiErrorKind::TIMEOUT,
                    _ => FfiErrorKind::RUNTIME,
                };
                return Ok(failed(FfiCellError {
                    kind,
                    message: RString::from(message),
                    line: RNone,
                    column: RNone,
                    blamed: RNone,
                    missing_name: RNone,
                }));
            }
            Err(JobFailure::Job(err)) => return Err(PluginError::new(format!("{err}"))),
        };
        let text = String::from_utf8_lossy(&response);
        let answer = worker_client::Answer::after_ready(&text).map_err(|reason| {
            PluginError::new(format!(
                "{reason} (job files in {})",
                spec.files.dir().display()
            ))
        })?;
        let outcome = answer.apply(host)?;
        let _ = std::fs::remove_dir_all(spec.files.dir());
        Ok(outcome)
    }
}

impl ExecutorPlugin for Slurm {
    const NAME: &'static str = "slurm";
    /// Each cell in flight is one blocking `srun` on its own thread: up to
    /// `--jobs` of them at once, the cluster's scheduler placing them.
    const CONCURRENCY: u32 = 256;
    const DESCRIPTION: &'static str =
        "runs cells as jobs on a Slurm cluster (slurm.partition, slurm.route, slurm.workdir)";
    const LANGUAGES: &'static [&'static str] = &["rhai", "python"];

    fn new(options: &Options, _logger: Logger) -> Result<Slurm, PluginError> {
        let config = Config::from_options(options)?;
        job::probe()
            .map_err(|err| PluginError::new(format!("the Slurm cluster does not answer: {err}")))?;
        // Executor-abi 1.1 gives no run id and no notebook path: the run is
        // named after this process, its files go under the working directory.
        let run_id = format!(
            "{}x{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_millis())
                .unwrap_or_default()
        );
        let workdir = config
            .workdir
            .clone()
            .unwrap_or_else(|| PathBuf::from(".cellrun").join("slurm"));
        let workdir = std::path::absolute(&workdir).unwrap_or(workdir);
        Ok(Slurm {
            run: RunJobs::new(&run_id, &workdir),
            config,
        })
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        match place(&self.config, cell) {
            Err(error) => Ok(failed(error)),
            Ok(Placement::Local) if cell.language.as_str() == "rhai" => host.run_default(),
            Ok(Placement::Local) => self.run_worker(cell, host, None),
            Ok(Placement::Cluster(resources)) => self.run_on_cluster(cell, host, resources),
        }
    }
}

fn failed(error: FfiCellError) -> Outcome {
    Outcome {
        error: Some(error),
        ..Outcome::ok(FfiValue::Unit)
    }
}

executor_abi::export_executor!(Slurm);

#[cfg(test)]
mod tests {
    use super::*;
    use executor_abi::abi_stable::std_types::RVec;

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn cell(code: &str) -> FfiCellContext {
        executor_abi::sdk::cell_from_legacy(&executor_abi::FfiCell {
            id: 0,
            name: "c".into(),
            code: code.into(),
            defs: RVec::new(),
            refs: RVec::new(),
            first_line: 10,
        })
    }

    #[test]
    fn options_give_defaults_and_bad_ones_are_named() {
        let config =
            Config::from_options(&options(&[("partition", "debug"), ("cpus", "2")])).unwrap();
        assert_eq!(
            config.defaults.srun_args(),
            ["--cpus-per-task=2", "--partition=debug"]
        );
        assert_eq!(config.route, Route::All);
        let err = Config::from_options(&options(&[("cpus", "many")])).unwrap_err();
        assert_eq!(
            err.message(),
            "option `cpus`: slurm option `cpus=many`: expected a positive integer"
        );
        let err = Config::from_options(&options(&[("route", "some")])).unwrap_err();
        assert_eq!(
            err.message(),
            "option `route=some`: expected `all` or `marked`"
        );
        assert!(Config::from_options(&options(&[("nodes", "2")])).is_err());
    }

    #[test]
    fn marked_routing_keeps_unmarked_cells_here() {
        let all = Config::from_options(&options(&[("partition", "debug")])).unwrap();
        let marked = Config::from_options(&options(&[("route", "marked")])).unwrap();
        let plain = cell("let x = 1;\n");
        let asks = cell("// slurm: cpus=2\nlet x = 1;\n");
        assert_eq!(
            place(&all, &plain).unwrap(),
            Placement::Cluster(all.defaults.clone())
        );
        assert_eq!(place(&marked, &plain).unwrap(), Placement::Local);
        let Placement::Cluster(resources) = place(&all, &asks).unwrap() else {
            panic!("a marked cell runs on the cluster");
        };
        assert_eq!(
            resources.srun_args(),
            ["--cpus-per-task=2", "--partition=debug"]
        );
    }

    #[test]
    fn a_bad_directive_fails_the_cell_at_its_notebook_line() {
        let config = Config::from_options(&options(&[])).unwrap();
        let error = place(&config, &cell("// about\n// slurm: gpus=1\n")).unwrap_err();
        assert_eq!(error.line, RSome(11));
        assert!(
            error.message.contains("unknown slurm option `gpus`"),
            "{}",
            error.message
        );
    }

    #[test]
    fn marker_options_ask_for_resources_and_a_bad_one_names_the_marker_line() {
        let config = Config::from_options(&options(&[("route", "marked")])).unwrap();
        let mut marked = cell("let x = 1;\n");
        marked.options = RVec::from(vec![
            executor_abi::FfiOption {
                key: "slurm.cpus".into(),
                value: "2".into(),
            },
            executor_abi::FfiOption {
                key: "other.flag".into(),
                value: "x".into(),
            },
        ]);
        let Placement::Cluster(resources) = place(&config, &marked).unwrap() else {
            panic!("a cell with marker resources runs on the cluster");
        };
        assert_eq!(resources.srun_args(), ["--cpus-per-task=2"]);
        marked.options = RVec::from(vec![executor_abi::FfiOption {
            key: "slurm.gpus".into(),
            value: "1".into(),
        }]);
        let error = place(&config, &marked).unwrap_err();
        assert_eq!(
            error.line,
            RSome(9),
            "the marker is the line above the code"
        );
        assert!(error.message.contains("unknown slurm option `gpus`"));
    }
}
