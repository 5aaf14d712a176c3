//! Helpers for running the `cellrun` binary in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory for one test, removed when dropped.
pub(crate) struct Dir {
    path: PathBuf,
}

impl Dir {
    pub(crate) fn new(name: &str) -> Dir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "cellrun-test-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `text` to `name` in the directory and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `cellrun` with `args` in this directory.
    pub(crate) fn cellrun(&self, args: &[&str]) -> Output {
        cellrun_command(self.path()).args(args).output().unwrap()
    }

    /// Writes `notebook` as `nb.rhai`, runs it with `--json` and `extra`, and
    /// returns the exit code and the events.
    pub(crate) fn run_json(&self, notebook: &str, extra: &[&str]) -> Run {
        self.write("nb.rhai", notebook);
        let mut args = vec!["run", "nb.rhai", "--json"];
        args.extend_from_slice(extra);
        Run::from_output(self.cellrun(&args))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A `cellrun` command with a clean environment for tests.
pub(crate) fn cellrun_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cellrun"));
    command
        .current_dir(dir)
        .env_remove("CELLRUN_LOG")
        .env_remove("CELLRUN_EXECUTOR_ALLOWLIST")
        .env_remove("CELLRUN_EXECUTOR_DENYLIST")
        .env_remove("CELLRUN_LIFECYCLE_ALLOWLIST")
        .env_remove("CELLRUN_LIFECYCLE_DENYLIST")
        .env_remove("CELLRUN_PLUGIN_PATH")
        .env("NO_COLOR", "1");
    command
}

/// The outcome of `cellrun run --json`.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) events: Vec<Value>,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn from_output(output: Output) -> Run {
        let stdout = String::from_utf8(output.stdout).unwrap();
        let events = stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("bad JSON line {line:?}: {error}"))
            })
            .collect();
        Run {
            code: output.status.code().unwrap_or(-1),
            events,
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Events of one kind.
    pub(crate) fn events(&self, kind: &str) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|event| event["event"] == kind)
            .collect()
    }

    /// The `cell_finished` event of `cell`, asserting there is exactly one.
    pub(crate) fn finished(&self, cell: &str) -> &Value {
        let matching: Vec<&Value> = self
            .events("cell_finished")
            .into_iter()
            .filter(|event| event["cell"] == cell)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "cell_finished events for {cell}: {:#?}",
            self.events
        );
        matching[0]
    }

    /// `cell`'s status.
    pub(crate) fn status(&self, cell: &str) -> &str {
        self.finished(cell)["status"].as_str().unwrap()
    }

    /// Every cell's status, in the order the events came.
    pub(crate) fn statuses(&self) -> Vec<(String, String)> {
        self.events("cell_finished")
            .iter()
            .map(|event| {
                (
                    event["cell"].as_str().unwrap().to_owned(),
                    event["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The names of the cells that started, in order.
    pub(crate) fn started(&self) -> Vec<String> {
        self.events("cell_started")
            .iter()
            .map(|event| event["cell"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The `run_finished` counts as (ok, error, cancelled, interrupted).
    pub(crate) fn counts(&self) -> (u64, u64, u64, u64) {
        let finished = self.events("run_finished");
        assert_eq!(finished.len(), 1, "one run_finished: {:#?}", self.events);
        let count = |key: &str| finished[0][key].as_u64().unwrap();
        (
            count("ok"),
            count("error"),
            count("cancelled"),
            count("interrupted"),
        )
    }
}

/// Waits for `child` at most `deadline` (then kills it and fails) and
/// returns its exit code.
pub(crate) fn wait_with_deadline(child: &mut Child, deadline: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            panic!("cellrun did not stop within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
