//! Helpers for running the `cellrun` binary in a scratch directory.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
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
    ///
    /// A `run` that does not choose its `--jobs` runs one cell at a time;
    /// it runs a second time with `--jobs 4`, in a copy of the directory
    /// made before either run, and the two must give the same exit code,
    /// statuses, outputs, errors and blame (see [`same_outcome`]).
    pub(crate) fn cellrun(&self, args: &[&str]) -> Output {
        let parallel = self.parallel_twin(args);
        let output = cellrun_command(self.path()).args(args).output().unwrap();
        if let Some(parallel) = parallel {
            same_outcome(args, &output, &parallel);
        }
        output
    }

    /// Runs `args` with `--jobs 4` in a copy of this directory, when they
    /// are a `run` that does not choose its jobs.
    fn parallel_twin(&self, args: &[&str]) -> Option<Output> {
        if args.first() != Some(&"run") || args.iter().any(|arg| arg.starts_with("--jobs")) {
            return None;
        }
        let twin = self.path.with_file_name(format!(
            "{}-jobs4",
            self.path.file_name().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_dir_all(&twin);
        copy_dir(&self.path, &twin);
        let output = cellrun_command(&twin)
            .args(args)
            .args(["--jobs", "4"])
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&twin);
        Some(output)
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

/// Copies the directory `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Asserts that a run with `--jobs 4` (`parallel`) ended as the same run
/// with one cell at a time (`sequential`): the same exit code and, per
/// cell, the same status, output, printed text, error and blame. Orders
/// may differ where the graph allows, and durations always do.
#[track_caller]
fn same_outcome(args: &[&str], sequential: &Output, parallel: &Output) {
    let json = args.contains(&"--json");
    let outcome = |output: &Output| {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut lines: Vec<String> = if json {
            stdout
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .filter(|event| {
                    event["event"] == "cell_finished" || event["event"] == "run_finished"
                })
                .map(|mut event| {
                    for volatile in ["duration_ms", "at_ms", "cached"] {
                        event.as_object_mut().unwrap().remove(volatile);
                    }
                    // Where a timeout or an interrupt stops a body is a
                    // matter of timing (before its first statement: no line).
                    if let Some(error) = event["error"].as_object_mut() {
                        if matches!(error["kind"].as_str(), Some("timeout" | "interrupted")) {
                            error.remove("line");
                        }
                    }
                    event.to_string()
                })
                .collect()
        } else {
            stdout.lines().skip(1).map(without_durations).collect()
        };
        lines.sort();
        (output.status.code(), lines)
    };
    assert_eq!(
        outcome(parallel),
        outcome(sequential),
        "`cellrun {}` with --jobs 4 differs from one cell at a time; stderr with --jobs 4:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&parallel.stderr)
    );
}

/// A human output line with its durations (`1.2 ms`, `cached`) blanked.
fn without_durations(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut kept = Vec::with_capacity(words.len());
    let mut at = 0;
    while at < words.len() {
        let is_number = words[at].parse::<f64>().is_ok();
        let unit = words.get(at + 1).copied();
        if is_number && matches!(unit, Some("µs" | "ms" | "s")) {
            kept.push("T");
            at += 2;
        } else {
            kept.push(if words[at] == "cached" {
                "T"
            } else {
                words[at]
            });
            at += 1;
        }
    }
    kept.join(" ")
}

/// A `cellrun` command with a clean environment for tests.
///
/// Runs use one cell at a time unless a test says otherwise, so their
/// lines come in queue order.
pub(crate) fn cellrun_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cellrun"));
    clean_env(&mut command, dir);
    command
}

/// Runs `command` in `dir` without the environment variables that change
/// what `cellrun` does, and with `NO_COLOR` set.
pub(crate) fn clean_env(command: &mut Command, dir: &Path) {
    command
        .current_dir(dir)
        .env_remove("CELLRUN_LOG")
        .env_remove("CELLRUN_EXECUTOR_ALLOWLIST")
        .env_remove("CELLRUN_EXECUTOR_DENYLIST")
        .env_remove("CELLRUN_LIFECYCLE_ALLOWLIST")
        .env_remove("CELLRUN_LIFECYCLE_DENYLIST")
        .env_remove("CELLRUN_PLUGIN_PATH")
        .env("CELLRUN_JOBS", "1")
        .env("NO_COLOR", "1");
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
/// How long a test waits for an event before it fails: generous, since the
/// machine may be busy; a passing test never waits this long.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// A `cellrun watch --json` process and the events it printed.
pub(crate) struct Watching {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    events: std::sync::mpsc::Receiver<Value>,
    /// Every event received so far, for failure messages.
    seen: Vec<Value>,
}

impl Watching {
    /// Writes `notebook` as `nb.rhai` in `dir` and starts watching it with
    /// `--json` and `args`.
    pub(crate) fn start(dir: &Dir, notebook: &str, args: &[&str]) -> Watching {
        dir.write("nb.rhai", notebook);
        let mut command = cellrun_command(dir.path());
        command.args(["watch", "nb.rhai", "--json"]).args(args);
        Watching::spawn(command)
    }

    /// Starts `command`, a `cellrun watch ... --json`, and follows its events.
    pub(crate) fn spawn(mut command: Command) -> Watching {
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|error| panic!("bad JSON line {line:?}: {error}"));
                if sender.send(event).is_err() {
                    return;
                }
            }
        });
        Watching {
            stdin: child.stdin.take(),
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The next event, waiting for it.
    pub(crate) fn next(&mut self) -> Value {
        match self.events.recv_timeout(DEADLINE) {
            Ok(event) => {
                self.seen.push(event.clone());
                event
            }
            Err(_) => panic!("no event within {DEADLINE:?}; so far: {:#?}", self.seen),
        }
    }

    /// Events up to and including the first that `stop` accepts.
    pub(crate) fn until(&mut self, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.next();
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        }
    }

    /// The events of the next run, up to its `run_finished`.
    pub(crate) fn run(&mut self) -> Run {
        let events = self.until(|event| event["event"] == "run_finished");
        Run {
            code: 0,
            events,
            stderr: String::new(),
        }
    }

    /// Waits for the next `rerun_started` and returns it with its run.
    pub(crate) fn rerun(&mut self) -> (Value, Run) {
        let before = self.until(|event| event["event"] == "rerun_started");
        let started = before.last().unwrap().clone();
        (started, self.run())
    }

    /// Sends a command line (`r`, `q`) on stdin.
    pub(crate) fn send(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub(crate) fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end and returns its exit code.
    pub(crate) fn wait(mut self) -> i32 {
        wait_with_deadline(&mut self.child, DEADLINE)
    }

    /// Sends `q` and returns the exit code.
    pub(crate) fn quit(mut self) -> i32 {
        self.send("q");
        self.wait()
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The names in a JSON array of strings.
pub(crate) fn names(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|name| name.as_str().unwrap())
        .collect()
}

/// A started command printing `--json` events, read up to one cell's
/// `cell_started`.
pub(crate) struct Started {
    pub(crate) child: Child,
    stdout: BufReader<ChildStdout>,
    /// Everything printed so far.
    pub(crate) seen: String,
}

impl Started {
    /// Starts `command` with piped output and reads its events until `cell`
    /// starts.
    pub(crate) fn new(mut command: Command, cell: &str) -> Started {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let marker = format!(r#"{{"event":"cell_started","cell":"{cell}","#);
        while !seen.lines().any(|line| line.starts_with(&marker)) {
            assert!(
                stdout.read_line(&mut seen).unwrap() > 0,
                "ended before {cell} started: {seen}"
            );
        }
        Started {
            child,
            stdout,
            seen,
        }
    }

    /// Sends `signal` (`INT`, `KILL`) to process `pid`.
    pub(crate) fn signal(&self, pid: u32, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process and returns its run: exit code, every event, stderr.
    pub(crate) fn finish(mut self) -> Run {
        let code = wait_with_deadline(&mut self.child, DEADLINE);
        self.stdout.read_to_string(&mut self.seen).unwrap();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).unwrap();
        }
        let mut run = Run::from_output(Output {
            status: std::os::unix::process::ExitStatusExt::from_raw(0),
            stdout: self.seen.into_bytes(),
            stderr: stderr.into_bytes(),
        });
        run.code = code;
        run
    }
}
