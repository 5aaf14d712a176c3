//! One cell as one Slurm job: the `srun` command line, waiting for it while
//! honouring a stop request, what Slurm says about the job afterwards, and
//! cancelling every job of a run.
//!
//! A job is one blocking `srun` (allocation and one step): measured on the
//! local cluster it starts 10 to 15 times faster than a batch job, which
//! waits for the controller's scheduling pass (see BENCHMARKS.md). The
//! job's standard streams are files in its job directory, so a shared
//! directory carries the request and the response and the log stays
//! readable after the job.
//!
//! Every job of a run has a name starting with the run's prefix
//! (`cellrun-<run>-`), so the run's jobs can be found and cancelled even
//! before their ids are known.

use std::fmt;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::resources::Resources;

/// How long a client command (`sinfo`, `squeue`, `scontrol`, `scancel`) may
/// take. Against a controller that is not there, Slurm's clients retry for
/// about 9 seconds before they fail.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `srun` may take to return after its job was cancelled, before
/// it is killed.
const CANCEL_GRACE: Duration = Duration::from_secs(30);

/// The prefix of every job name of the run `run_id`: `cellrun-ID.`, the id
/// kept to ASCII letters and digits, so the `.` ends it and no run's prefix
/// is the start of another run's job names.
pub fn run_prefix(run_id: &str) -> String {
    let id: String = run_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    format!("cellrun-{id}.")
}

/// The name of the job running cell `index` (named `cell`) in the run with
/// `prefix`: unique in the run through the index, readable through the
/// cell's name (kept to characters Slurm shows as they are).
pub fn job_name(prefix: &str, index: u32, cell: &str) -> String {
    let readable: String = cell
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{prefix}{index}-{readable}")
}

/// The files of one job, all in its own directory of the shared work
/// directory.
#[derive(Clone, Debug)]
pub struct JobFiles {
    dir: PathBuf,
}

impl JobFiles {
    /// The files of a job in `dir`, which the caller creates.
    pub fn new(dir: &Path) -> JobFiles {
        JobFiles {
            dir: dir.to_path_buf(),
        }
    }

    /// The job's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The job's standard input.
    pub fn request(&self) -> PathBuf {
        self.dir.join("request")
    }

    /// The job's standard output.
    pub fn response(&self) -> PathBuf {
        self.dir.join("response")
    }

    /// The job's standard error.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// What `srun` itself printed (its errors and Slurm's notices).
    pub fn srun_log(&self) -> PathBuf {
        self.dir.join("srun.log")
    }
}

/// Everything `srun` needs to run one cell.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// The job's name, unique within the cluster's queue: the run's prefix
    /// and the cell.
    pub name: String,
    /// The cell's name, as the job's comment, for people reading `squeue`.
    pub comment: String,
    /// The job's files.
    pub files: JobFiles,
    /// What the cell asks for, defaults applied.
    pub resources: Resources,
    /// The program and arguments the job runs on the node.
    pub command: Vec<String>,
}

impl JobSpec {
    /// The arguments of the `srun` that runs this job.
    pub fn srun_args(&self) -> Vec<String> {
        let path = |path: PathBuf| path.display().to_string();
        let mut args = vec![
            format!("--job-name={}", self.name),
            format!("--comment={}", self.comment),
            format!("--chdir={}", path(self.files.dir().to_path_buf())),
            "--nodes=1".to_owned(),
            "--ntasks=1".to_owned(),
            format!("--input={}", path(self.files.request())),
            format!("--output={}", path(self.files.response())),
            format!("--error={}", path(self.files.log())),
        ];
        args.extend(self.resources.srun_args());
        args.push("--".to_owned());
        args.extend(self.command.iter().cloned());
        args
    }

    /// Starts the job: `srun` runs in its own process group, so a Ctrl-C in
    /// the terminal reaches cellrun (which cancels the job) and not `srun`
    /// (which would only print a notice).
    ///
    /// # Errors
    /// When `srun` cannot be started.
    pub fn start(&self) -> Result<RunningJob, JobError> {
        let srun_log = fs::File::create(self.files.srun_log()).map_err(|source| JobError::Io {
            what: format!("cannot create {}", self.files.srun_log().display()),
            source,
        })?;
        let srun_err = srun_log.try_clone().map_err(|source| JobError::Io {
            what: "cannot duplicate a file handle".to_owned(),
            source,
        })?;
        let child = Command::new("srun")
            .args(self.srun_args())
            .stdin(Stdio::null())
            .stdout(srun_log)
            .stderr(srun_err)
            .process_group(0)
            .spawn()
            .map_err(|source| JobError::Io {
                what: "cannot run `srun` (is Slurm's client installed and on PATH?)".to_owned(),
                source,
            })?;
        Ok(RunningJob {
            spec: self.clone(),
            child,
        })
    }
}

/// Why a job was stopped before it finished by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// The run was interrupted (Ctrl-C).
    Interrupted,
    /// The cell reached its deadline.
    Timeout,
    /// Another reason given by the host.
    Other,
}

/// A job whose `srun` runs.
#[derive(Debug)]
pub struct RunningJob {
    spec: JobSpec,
    child: Child,
}

/// A job whose `srun` returned.
#[derive(Debug)]
pub struct FinishedJob {
    /// How `srun` exited: the exit status of the job's task when it ran.
    pub status: ExitStatus,
    /// Set when this side cancelled the job.
    pub stopped: Option<StopCause>,
}

impl RunningJob {
    /// Waits until `srun` returns, calling `stop` about every 10 ms; when
    /// `stop` says why the job must end, the job is cancelled with
    /// `scancel` and `srun` is given time to report it.
    ///
    /// # Errors
    /// When waiting for `srun` fails.
    pub fn wait(
        mut self,
        mut stop: impl FnMut() -> Option<StopCause>,
    ) -> Result<FinishedJob, JobError> {
        let mut stopped: Option<(StopCause, Instant)> = None;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|source| JobError::Io {
                what: "cannot wait for `srun`".to_owned(),
                source,
            })? {
                return Ok(FinishedJob {
                    status,
                    stopped: stopped.map(|(cause, _)| cause),
                });
            }
            match stopped {
                None => {
                    if let Some(cause) = stop() {
                        cancel_by_names(&[self.spec.name.clone()]);
                        stopped = Some((cause, Instant::now()));
                    }
                }
                Some((_, since)) if since.elapsed() > CANCEL_GRACE => {
                    // `srun` did not return after the cancel: end it here.
                    let _ = self.child.kill();
                }
                Some(_) => {}
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How long to wait for a job whose `srun` returned to leave `COMPLETING`.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many lines of a failed job's logs its error shows.
const LOG_LINES: usize = 10;

/// Why a job gave no response.
#[derive(Debug)]
pub enum JobFailure {
    /// This side stopped it (interrupt or deadline).
    Stopped(StopCause),
    /// It failed, was cancelled or timed out on the cluster.
    Failed {
        /// Slurm's state of the job (`FAILED`, `TIMEOUT`, ...), when Slurm
        /// still knew the job.
        state: Option<String>,
        /// Slurm's state and exit code, or `srun`'s exit status, then the
        /// tails of the job's logs.
        message: String,
    },
    /// It could not be started or waited for.
    Job(JobError),
}

impl JobSpec {
    /// Writes `request` as the job's standard input, runs the job, and
    /// returns its standard output when it succeeded; calls `stop` while
    /// it runs (see [`RunningJob::wait`]).
    ///
    /// # Errors
    /// See [`JobFailure`].
    pub fn run(
        &self,
        request: &[u8],
        stop: impl FnMut() -> Option<StopCause>,
    ) -> Result<Vec<u8>, JobFailure> {
        fs::write(self.files.request(), request).map_err(|source| {
            JobFailure::Job(JobError::Io {
                what: format!("cannot write {}", self.files.request().display()),
                source,
            })
        })?;
        let finished = self
            .start()
            .map_err(JobFailure::Job)?
            .wait(stop)
            .map_err(JobFailure::Job)?;
        if let Some(cause) = finished.stopped {
            return Err(JobFailure::Stopped(cause));
        }
        if !finished.status.success() {
            return Err(self.failure(finished.status));
        }
        fs::read(self.files.response()).map_err(|source| {
            JobFailure::Job(JobError::Io {
                what: format!("cannot read {}", self.files.response().display()),
                source,
            })
        })
    }

    /// Runs the job's command here, without Slurm, on the same files:
    /// what a cell the routing keeps on this machine does when the built-in
    /// evaluation does not run its language. `stop` is called about every
    /// 10 ms; when it says why, the process is killed.
    ///
    /// # Errors
    /// As [`JobSpec::run`]; a failure carries the tail of the log.
    pub fn run_here(
        &self,
        request: &[u8],
        mut stop: impl FnMut() -> Option<StopCause>,
    ) -> Result<Vec<u8>, JobFailure> {
        let io = |what: String| move |source| JobFailure::Job(JobError::Io { what, source });
        fs::write(self.files.request(), request).map_err(io(format!(
            "cannot write {}",
            self.files.request().display()
        )))?;
        let open = |path: PathBuf, create: bool| {
            let file = if create {
                fs::File::create(&path)
            } else {
                fs::File::open(&path)
            };
            file.map_err(io(format!("cannot open {}", path.display())))
        };
        let (program, args) = self.command.split_first().ok_or_else(|| {
            JobFailure::Job(JobError::Io {
                what: "the job has no command".to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })
        })?;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(self.files.dir())
            .stdin(open(self.files.request(), false)?)
            .stdout(open(self.files.response(), true)?)
            .stderr(open(self.files.log(), true)?)
            .process_group(0)
            .spawn()
            .map_err(io(format!("cannot run {program}")))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(source) => {
                    return Err(JobFailure::Job(JobError::Io {
                        what: format!("cannot wait for {program}"),
                        source,
                    }))
                }
            }
            if let Some(cause) = stop() {
                let _ = child.kill();
                let _ = child.wait();
                return Err(JobFailure::Stopped(cause));
            }
            thread::sleep(Duration::from_millis(10));
        };
        if !status.success() {
            let mut message = format!("`{program} worker` on this machine failed: {status}");
            let tail = tail(&self.files.log(), LOG_LINES);
            if !tail.trim().is_empty() {
                message.push_str(&format!("\nlog ({}):\n{tail}", self.files.log().display()));
            }
            return Err(JobFailure::Failed {
                state: None,
                message,
            });
        }
        fs::read(self.files.response()).map_err(io(format!(
            "cannot read {}",
            self.files.response().display()
        )))
    }

    /// Says why the job failed: Slurm's view of it when Slurm still knows
    /// it, `srun`'s exit status otherwise, then the tails of its logs.
    fn failure(&self, status: ExitStatus) -> JobFailure {
        let state = final_state(&self.name, STATE_TIMEOUT);
        let mut message = match &state {
            Some(state) => state.to_string(),
            None => format!("slurm job `{}` failed: srun {status}", self.name),
        };
        for (what, path) in [
            ("job log", self.files.log()),
            ("srun", self.files.srun_log()),
        ] {
            let tail = tail(&path, LOG_LINES);
            if !tail.trim().is_empty() {
                message.push_str(&format!("\n{what} ({}):\n{tail}", path.display()));
            }
        }
        JobFailure::Failed {
            state: state.map(|state| state.state),
            message,
        }
    }
}

/// What Slurm says about a job after it left the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobState {
    /// The job id.
    pub id: String,
    /// Slurm's state: `COMPLETED`, `FAILED`, `TIMEOUT`, `CANCELLED`,
    /// `OUT_OF_MEMORY`, `NODE_FAIL`, ...
    pub state: String,
    /// Slurm's reason for the state, e.g. `NonZeroExitCode`.
    pub reason: String,
    /// `EXIT:SIGNAL`, as Slurm writes it, e.g. `3:0` or `0:15`.
    pub exit_code: String,
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "slurm job {} {} (exit code {}",
            self.id, self.state, self.exit_code
        )?;
        if !self.reason.is_empty() && self.reason != "None" {
            write!(f, ", reason {}", self.reason)?;
        }
        f.write_str(")")
    }
}

/// Reads the fields of a `scontrol -o show job` line.
///
/// Values never contain blanks for the keys read here; the comment, which
/// may, is not read.
pub fn parse_scontrol_job(line: &str) -> Option<JobState> {
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_owned)
    };
    Some(JobState {
        id: field("JobId")?,
        state: field("JobState")?,
        reason: field("Reason").unwrap_or_default(),
        exit_code: field("ExitCode").unwrap_or_default(),
    })
}

/// What Slurm knows about the job named `name`, while it still remembers
/// it (without accounting storage, for `MinJobAge` seconds after it ended).
pub fn job_state(name: &str) -> Option<JobState> {
    let ids = client(
        "squeue",
        &["-h", "-t", "all", &format!("--name={name}"), "-o", "%i"],
    )
    .ok()?;
    let id = ids.split_whitespace().last()?.to_owned();
    let line = client("scontrol", &["-o", "show", "job", &id]).ok()?;
    parse_scontrol_job(&line)
}

/// The states a job ends in.
const FINAL_STATES: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "CANCELLED",
    "OUT_OF_MEMORY",
    "NODE_FAIL",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
];

impl JobState {
    /// Whether the job has ended (a job whose `srun` returned may still be
    /// `COMPLETING` while its processes are cleaned up).
    pub fn is_final(&self) -> bool {
        FINAL_STATES.contains(&self.state.as_str())
    }
}

/// The state the job named `name` ended in, waiting up to `timeout` for it
/// to leave `COMPLETING`; the last state seen when it does not in time, and
/// `None` when Slurm does not know the job.
pub fn final_state(name: &str, timeout: Duration) -> Option<JobState> {
    let deadline = Instant::now() + timeout;
    loop {
        let state = job_state(name)?;
        if state.is_final() || Instant::now() >= deadline {
            return Some(state);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Cancels every job of this user whose name starts with `prefix`, pending
/// or running; returns how many there were.
pub fn cancel_run(prefix: &str) -> usize {
    let Ok(listing) = client("squeue", &["-h", "--me", "-o", "%j"]) else {
        return 0;
    };
    let names: Vec<String> = listing
        .lines()
        .map(str::trim)
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect();
    cancel_by_names(&names);
    names.len()
}

/// The names of this user's jobs that are pending, running or completing
/// and start with `prefix`.
pub fn active_jobs(prefix: &str) -> Result<Vec<String>, ClusterError> {
    let listing = client("squeue", &["-h", "--me", "-t", "PD,R,CG,S", "-o", "%j"])?;
    Ok(listing
        .lines()
        .map(str::trim)
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect())
}

fn cancel_by_names(names: &[String]) {
    for name in names {
        let _ = client("scancel", &["--me", &format!("--name={name}")]);
    }
}

/// The partitions the cluster offers, which proves that it answers.
///
/// # Errors
/// When Slurm's client is missing, or the controller does not answer
/// within [`CLIENT_TIMEOUT`].
pub fn probe() -> Result<Vec<String>, ClusterError> {
    let listing = client("sinfo", &["-h", "-o", "%P"])?;
    Ok(listing.split_whitespace().map(str::to_owned).collect())
}

/// The cluster cannot be asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A client command cannot be run at all.
    #[error("cannot run `{program}` (is Slurm's client installed and on PATH?)")]
    Missing {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A client command failed.
    #[error("`{command}` failed: {message}")]
    Failed { command: String, message: String },
    /// A client command did not answer in time.
    #[error("`{command}` did not answer within {} s", timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
}

/// A job cannot be started or waited for.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs a Slurm client command and returns what it printed on success.
fn client(program: &str, args: &[&str]) -> Result<String, ClusterError> {
    let command = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ClusterError::Missing {
            program: program.to_owned(),
            source,
        })?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ClusterError::Timeout {
                    command,
                    timeout: CLIENT_TIMEOUT,
                });
            }
        }
    }
    // The clients print little, so the pipes never filled while waiting.
    let output = child
        .wait_with_output()
        .map_err(|source| ClusterError::Missing {
            program: program.to_owned(),
            source,
        })?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        return Err(ClusterError::Failed { command, message });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The last `n` lines of the file at `path`, or nothing when it cannot be
/// read.
pub fn tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_srun_line_names_the_job_files_and_resources() {
        let spec = JobSpec {
            name: "cellrun-ab12-3".to_owned(),
            comment: "train".to_owned(),
            files: JobFiles::new(Path::new("/shared/run/3")),
            resources: crate::resources::parse_options("cpus=2 time=5").unwrap(),
            command: vec!["/opt/cellrun".to_owned(), "worker".to_owned()],
        };
        assert_eq!(
            spec.srun_args().join(" "),
            "--job-name=cellrun-ab12-3 --comment=train --chdir=/shared/run/3 --nodes=1 --ntasks=1 \
             --input=/shared/run/3/request --output=/shared/run/3/response --error=/shared/run/3/log \
             --cpus-per-task=2 --time=5 -- /opt/cellrun worker"
        );
    }

    #[test]
    fn job_names_start_with_their_runs_prefix_and_no_other() {
        let prefix = run_prefix("9f3a-77");
        assert_eq!(prefix, "cellrun-9f3a77.");
        assert_eq!(
            job_name(&prefix, 3, "load data"),
            "cellrun-9f3a77.3-load_data"
        );
        let other = run_prefix("9f3a");
        assert!(!job_name(&prefix, 3, "x").starts_with(&other));
    }

    #[test]
    fn scontrol_lines_give_state_reason_and_exit_code() {
        let line = "JobId=189 JobName=cellrun-abc-1-x UserId=root(0) JobState=FAILED \
                    Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:00 \
                    Comment=cell x  Power=";
        let state = parse_scontrol_job(line).unwrap();
        assert_eq!(
            state,
            JobState {
                id: "189".into(),
                state: "FAILED".into(),
                reason: "NonZeroExitCode".into(),
                exit_code: "3:0".into()
            }
        );
        assert_eq!(
            state.to_string(),
            "slurm job 189 FAILED (exit code 3:0, reason NonZeroExitCode)"
        );
        let cancelled = parse_scontrol_job("JobId=7 JobState=CANCELLED Reason=None ExitCode=0:15");
        assert_eq!(
            cancelled.unwrap().to_string(),
            "slurm job 7 CANCELLED (exit code 0:15)"
        );
        assert_eq!(
            parse_scontrol_job("slurm_load_jobs error: Invalid job id"),
            None
        );
    }

    #[test]
    fn the_tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("plugin-slurm-tail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc");
        assert_eq!(tail(&dir.join("missing"), 2), "");
        fs::remove_dir_all(&dir).unwrap();
    }
}
