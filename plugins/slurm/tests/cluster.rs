//! The Slurm-facing half of the plugin against the real local cluster that
//! `cargo xtask slurm up` starts (CI's `.ci/run` starts it; outside CI a
//! test starts it when it does not answer and leaves it running).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use plugin_slurm::job::{self, JobFailure, JobFiles, JobSpec, StopCause};
use plugin_slurm::resources::Resources;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Makes sure the local cluster answers, starting it outside CI.
fn cluster() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        if std::env::var_os("SLURM_CONF").is_none() {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace().join("target"));
            // Set before any test spawns a Slurm command: every test waits here first.
            std::env::set_var("SLURM_CONF", target.join("slurm/slurm.conf"));
        }
        if job::probe().is_ok() {
            return;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the local Slurm cluster does not answer; `cargo xtask slurm up` starts it (.ci/run does)"
        );
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .current_dir(workspace())
            .args(["run", "--quiet", "-p", "xtask", "--", "slurm", "up"])
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "`cargo xtask slurm up` failed; it needs root to install slurm-wlm and munge"
        );
        eprintln!("started the local Slurm cluster; `cargo xtask slurm down` stops it");
        job::probe().expect("the local Slurm cluster answers after `cargo xtask slurm up`");
    });
}

/// A fresh job directory and a job name unique to this test run.
fn job(test: &str, command: &[&str]) -> JobSpec {
    let dir = workspace()
        .join("target/slurm-tests")
        .join(format!("{test}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    JobSpec {
        name: format!("cellrun-test{}-{test}", std::process::id()),
        comment: test.to_owned(),
        files: JobFiles::new(&dir),
        resources: Resources::default(),
        command: command.iter().map(|arg| (*arg).to_owned()).collect(),
    }
}

#[test]
fn a_job_reads_its_request_and_writes_its_response_in_the_job_directory() {
    cluster();
    let spec = job("echo", &["sh", "-c", "tr a-z A-Z; echo note >&2"]);
    fs::write(spec.files.request(), "hello\n").unwrap();
    let finished = spec.start().unwrap().wait(|| None).unwrap();
    assert!(
        finished.status.success(),
        "{}",
        job::tail(&spec.files.srun_log(), 5)
    );
    assert_eq!(finished.stopped, None);
    assert_eq!(
        fs::read_to_string(spec.files.response()).unwrap(),
        "HELLO\n"
    );
    assert_eq!(job::tail(&spec.files.log(), 1), "note");
    let state =
        job::final_state(&spec.name, Duration::from_secs(30)).expect("slurm remembers the job");
    assert_eq!(
        (state.state.as_str(), state.exit_code.as_str()),
        ("COMPLETED", "0:0")
    );
}

#[test]
fn a_failing_job_reports_its_state_and_exit_code() {
    cluster();
    let spec = job("fail", &["sh", "-c", "echo broken >&2; exit 3"]);
    fs::write(spec.files.request(), "").unwrap();
    let finished = spec.start().unwrap().wait(|| None).unwrap();
    assert_eq!(finished.status.code(), Some(3));
    let state =
        job::final_state(&spec.name, Duration::from_secs(30)).expect("slurm remembers the job");
    assert_eq!(
        state.to_string(),
        format!(
            "slurm job {} FAILED (exit code 3:0, reason NonZeroExitCode)",
            state.id
        )
    );
    assert_eq!(job::tail(&spec.files.log(), 1), "broken");
}

#[test]
fn a_stop_request_cancels_the_job_and_srun_returns() {
    cluster();
    let spec = job("stop", &["sh", "-c", "echo started; exec sleep 300"]);
    fs::write(spec.files.request(), "").unwrap();
    let response = spec.files.response();
    let running = spec.start().unwrap();
    // Stop once the job's task has started (its first line is written).
    let finished = running
        .wait(|| {
            fs::read_to_string(&response)
                .is_ok_and(|text| text.starts_with("started"))
                .then_some(StopCause::Interrupted)
        })
        .unwrap();
    assert_eq!(finished.stopped, Some(StopCause::Interrupted));
    assert!(!finished.status.success());
    let state =
        job::final_state(&spec.name, Duration::from_secs(30)).expect("slurm remembers the job");
    assert_eq!(state.state, "CANCELLED", "{state}");
}

#[test]
fn cancelling_a_run_cancels_its_pending_and_running_jobs() {
    cluster();
    let prefix = format!("cellrun-test{}-run-", std::process::id());
    let mut running = Vec::new();
    // More jobs than the node has CPUs, so some are still pending.
    for index in 0..4 {
        let mut spec = job(&format!("run-{index}"), &["sleep", "300"]);
        spec.name = format!("{prefix}{index}");
        fs::write(spec.files.request(), "").unwrap();
        running.push(spec.start().unwrap());
    }
    let waited = Instant::now();
    while job::active_jobs(&prefix).unwrap().len() < 4 {
        assert!(
            waited.elapsed().as_secs() < 60,
            "the jobs never reached the queue"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(job::cancel_run(&prefix), 4);
    // Every srun returns, and Slurm has every job cancelled. (srun's own
    // exit status is no witness: a pending job that a cancelled one's CPU
    // went to just before its own cancel can see its step aborted before
    // launch, and srun 22.05 then exits 0.)
    for (index, job) in running.into_iter().enumerate() {
        job.wait(|| None).unwrap();
        let name = format!("{prefix}{index}");
        let state =
            job::final_state(&name, Duration::from_secs(30)).expect("slurm remembers the job");
        assert_eq!(state.state, "CANCELLED", "{name}: {state}");
    }
    // A cancelled job may still be completing (its processes being killed)
    // when its srun returns; it leaves the queue soon after.
    let waited = Instant::now();
    while !job::active_jobs(&prefix).unwrap().is_empty() {
        assert!(
            waited.elapsed().as_secs() < 60,
            "jobs left behind: {:?}",
            job::active_jobs(&prefix)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn running_a_job_returns_its_response_or_says_how_it_failed() {
    cluster();
    let echo = job("run-ok", &["cat"]);
    assert_eq!(
        echo.run(b"request bytes", || None).unwrap(),
        b"request bytes"
    );
    let fail = job(
        "run-fail",
        &["sh", "-c", "echo 'cannot decode the request' >&2; exit 4"],
    );
    let Err(JobFailure::Failed { state, message }) = fail.run(b"", || None) else {
        panic!("a job that exits with 4 fails");
    };
    assert_eq!(state.as_deref(), Some("FAILED"));
    let first = message.lines().next().unwrap();
    assert!(
        first.starts_with("slurm job ")
            && first.ends_with(" FAILED (exit code 4:0, reason NonZeroExitCode)"),
        "{message}"
    );
    assert!(message.contains("job log ("), "{message}");
    assert!(
        message.contains("\ncannot decode the request\n"),
        "{message}"
    );
    assert!(
        message.contains("task 0: Exited with exit code 4"),
        "{message}"
    );
}
