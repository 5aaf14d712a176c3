//! The `subprocess` executor plugin end to end: real `cellrun` runs whose
//! cells run in real `cellrun worker` processes, compared event by event
//! with the built-in executor on every example and every notebook of these
//! tests, and the processes watched through the process table.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::control::BUSY;
use crate::plugins::plugin_dirs;
use crate::util::{cellrun_command, Dir, Run, Started, DEADLINE};

/// A `cellrun run nb.rhai --json` command in `dir` with `extra`, through
/// the subprocess executor (with `options`) when `subprocess`.
fn run_command(dir: &Dir, subprocess: Option<&[&str]>, extra: &[&str]) -> Command {
    let mut command = cellrun_command(dir.path());
    command.args(["run", "nb.rhai", "--json"]).args(extra);
    if let Some(options) = subprocess {
        // The only executor plugin given, so the one the run selects.
        command.args(plugin_dirs(&["subprocess"]));
        for option in options {
            command.args(["--plugin-opt", &format!("subprocess.{option}")]);
        }
    }
    command
}

fn run(dir: &Dir, subprocess: Option<&[&str]>, extra: &[&str]) -> Run {
    Run::from_output(run_command(dir, subprocess, extra).output().unwrap())
}

/// The events without what differs between any two runs (times, and the
/// executor's name).
fn comparable(run: &Run) -> Vec<Value> {
    run.events
        .iter()
        .map(|event| {
            let mut event = event.clone();
            if let Some(object) = event.as_object_mut() {
                for key in ["at_ms", "duration_ms", "started_at", "executor"] {
                    object.remove(key);
                }
            }
            event
        })
        .collect()
}

/// The first difference between the two runs' events, if any.
///
/// With `in_order`, the events must come in the same order; else (a run of
/// several jobs, where independent cells may finish in either order) only
/// the same events must come.
fn difference(built_in: &Run, subprocess: &Run, in_order: bool) -> Option<String> {
    let (mut left, mut right) = (comparable(built_in), comparable(subprocess));
    if !in_order {
        let key = |event: &Value| event.to_string();
        left.sort_by_key(key);
        right.sort_by_key(key);
    }
    for index in 0..left.len().max(right.len()) {
        if left.get(index) != right.get(index) {
            return Some(format!(
                "event {index}:\n  built-in:   {}\n  subprocess: {}",
                left.get(index)
                    .map_or("(none)".to_owned(), Value::to_string),
                right
                    .get(index)
                    .map_or("(none)".to_owned(), Value::to_string)
            ));
        }
    }
    (built_in.code != subprocess.code).then(|| {
        format!(
            "exit code {} with the built-in executor, {} with subprocess ({})",
            built_in.code, subprocess.code, subprocess.stderr
        )
    })
}

/// The memory limit every comparison runs under, in the runner and in the
/// workers alike: small, so runaway notebooks stop early, and below what
/// the tests' large values need in any process, so both executors refuse
/// them alike (a value crossing to a worker needs a few times its size
/// while it travels as text).
const MEMORY: &[&str] = &["--max-memory", "64"];
const WORKER_MEMORY: &str = "max-memory=64";

/// A time limit no terminating notebook of these tests comes near, even in
/// a debug build on a busy machine.
const GENEROUS: &str = "5";

/// The time limit for notebooks that run until they are stopped: enough
/// for a debug worker to start on a busy machine.
const SHORT: &str = "2";

/// Runs `notebook` with `cellrun run`'s arguments `extra`, with the built-in
/// executor and through the subprocess executor (with `options`), and
/// returns the first difference.
///
/// A notebook with a cell that runs until stopped (it timed out under the
/// generous limit) is compared under a short one, so each such cell costs
/// two seconds, not the generous limit twice.
fn compare(dir: &Dir, notebook: &str, options: &[&str], extra: &[&str]) -> Option<String> {
    dir.write("nb.rhai", notebook);
    // One cell at a time unless `extra` says otherwise: then the order of
    // the events is the queue's, the same for both executors.
    let in_order = !extra.iter().any(|arg| arg.starts_with("--jobs"));
    let extra = if in_order {
        [extra, &["--jobs", "1"]].concat()
    } else {
        extra.to_vec()
    };
    let extra = extra.as_slice();
    let mut options = options.to_vec();
    options.push(WORKER_MEMORY);
    let mut limit = GENEROUS;
    let mut built_in = run(dir, None, &[&["--timeout", limit], MEMORY, extra].concat());
    let timed_out = built_in
        .events("cell_finished")
        .iter()
        .any(|event| event["error"]["kind"] == "timeout");
    if timed_out {
        limit = SHORT;
        built_in = run(dir, None, &[&["--timeout", limit], MEMORY, extra].concat());
    }
    let subprocess = run(
        dir,
        Some(&options),
        &[&["--timeout", limit], MEMORY, extra].concat(),
    );
    // A notebook the runner refuses (a repeated cell name) has no run.
    let used = |run: &Run| {
        run.events("run_started")
            .first()
            .map(|started| started["executor"].clone())
    };
    if used(&built_in).is_some() && used(&subprocess) != Some(Value::from("subprocess")) {
        return Some(format!(
            "the run did not use the subprocess executor: {}",
            subprocess.stderr
        ));
    }
    difference(&built_in, &subprocess, in_order)
}

/// Every string literal in the Rust source `text` that holds a notebook (a
/// `// %%` marker), unescaped: normal and raw strings, line continuations.
fn notebooks_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut at = 0;
    let starts = |at: usize, prefix: &str| {
        chars[at..]
            .iter()
            .take(prefix.len())
            .copied()
            .eq(prefix.chars())
    };
    while at < chars.len() {
        let c = chars[at];
        let after_ident = at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
        if starts(at, "//") {
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
        } else if c == 'r' && !after_ident && (starts(at + 1, "\"") || starts(at + 1, "#")) {
            let hashes = chars[at + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(at + 1 + hashes) != Some(&'"') {
                at += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let body = at + 2 + hashes;
            let mut end = body;
            while end < chars.len() && !starts(end, &close) {
                end += 1;
            }
            found.push(chars[body..end].iter().collect());
            at = end + close.len();
        } else if c == '"' {
            let mut literal = String::new();
            at += 1;
            while at < chars.len() && chars[at] != '"' {
                if chars[at] != '\\' {
                    literal.push(chars[at]);
                    at += 1;
                    continue;
                }
                let escaped = chars.get(at + 1).copied().unwrap_or('\\');
                at += 2;
                match escaped {
                    'n' => literal.push('\n'),
                    't' => literal.push('\t'),
                    'r' => literal.push('\r'),
                    '0' => literal.push('\0'),
                    '\n' => {
                        while at < chars.len() && chars[at].is_whitespace() {
                            at += 1;
                        }
                    }
                    'x' => {
                        let hex: String = chars[at..at + 2].iter().collect();
                        literal.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
                        at += 2;
                    }
                    'u' => {
                        let close = at + chars[at..].iter().position(|c| *c == '}').unwrap();
                        let hex: String = chars[at + 1..close].iter().collect();
                        literal
                            .push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                        at = close + 1;
                    }
                    other => literal.push(other),
                }
            }
            at += 1;
            found.push(literal);
        } else if c == '\'' {
            // A character literal ('x', '\n', '"'), else a lifetime.
            if chars.get(at + 1) == Some(&'\\') {
                at += 3;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                at += 1;
            } else if chars.get(at + 2) == Some(&'\'') {
                at += 3;
            } else {
                at += 1;
            }
        } else {
            at += 1;
        }
    }
    found.retain(|literal| literal.contains("// %%"));
    found
}

/// The notebooks of every end-to-end test of the runner, each once.
fn test_notebooks() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    files.sort();
    let mut notebooks: Vec<(String, String)> = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for notebook in notebooks_in(&std::fs::read_to_string(&file).unwrap()) {
            if !notebooks.iter().any(|(_, seen)| *seen == notebook) {
                notebooks.push((name.clone(), notebook));
            }
        }
    }
    notebooks
}

/// The examples under `examples/`.
fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut examples: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rhai"))
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    examples.sort();
    examples
}

/// Compares every notebook of `notebooks`; fails naming each that differs.
fn check_all(notebooks: &[(String, String)], options: &[&str], extra: &[&str]) {
    let dir = Dir::new("subprocess-same");
    let mut failures = Vec::new();
    for (source, notebook) in notebooks {
        if let Some(difference) = compare(&dir, notebook, options, extra) {
            failures.push(format!(
                "--- a notebook of {source}:\n{notebook}\n{difference}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} notebooks differ with options {options:?} and {extra:?}:\n{}",
        failures.len(),
        notebooks.len(),
        failures.join("\n")
    );
}

#[test]
fn the_examples_give_the_built_in_executors_events_with_reused_and_fresh_workers_strict_and_jobs() {
    let examples = examples();
    assert!(examples.len() >= 3, "{examples:?}");
    check_all(&examples, &[], &[]);
    check_all(&examples, &["reuse=false"], &[]);
    check_all(&examples, &[], &["--strict"]);
    check_all(&examples, &[], &["--jobs", "4"]);
}

#[test]
fn every_test_notebook_gives_the_built_in_executors_events() {
    let notebooks = test_notebooks();
    assert!(
        notebooks.len() > 50,
        "the notebooks of the tests are found: {}",
        notebooks.len()
    );
    check_all(&notebooks, &[], &[]);
}

#[test]
fn the_test_notebooks_are_found_in_every_kind_of_literal() {
    let source = r####"
        let a = "// %% a\nlet x = 1;\n";
        let b = "\
// %% b
let s = \"\x41\u{e9}\";
";
        let c = r#"// %% c
'c'"#;
        let lifetime: &'static str = "no marker";
        let d = '"'; // "// %% not a notebook, a comment"
        let e = "// %% e\n";
    "####;
    assert_eq!(
        notebooks_in(source),
        [
            "// %% a\nlet x = 1;\n",
            "// %% b\nlet s = \"Aé\";\n",
            "// %% c\n'c'",
            "// %% e\n",
        ]
    );
}

/// Functions, closures and function pointers crossing cells, an error
/// inside a function defined in another cell, an input changed in place.
const ACROSS: &str = "\
// %% helpers
let k = 10;
fn scale(x) { x * k }
fn fail(x) {
    throw `bad ${x}`;
}
// %% closures
let add = |x| x + k;
let pointer = Fn(\"scale\");
let letter = 'q';
[add.call(1), pointer.call(2), letter]
// %% use
let total = add.call(scale(1)) + pointer.call(3);
#{ total: total, f: add, p: pointer, c: letter }
// %% failing
let before = 1;
fail(before)
// %% shared
let xs = [1, 2];
// %% mutate
xs.push(3);
// %% read
xs.len() + total
";

#[test]
fn functions_closures_errors_and_mutations_cross_cells_as_in_one_process() {
    let dir = Dir::new("subprocess-across");
    assert_eq!(compare(&dir, ACROSS, &[], &[]), None);
    assert_eq!(compare(&dir, ACROSS, &[], &["--strict"]), None);
    let run = run(&dir, Some(&[]), &[]);
    assert_eq!(run.finished("use")["output"]["total"], 50);
    let error = &run.finished("failing")["error"];
    assert_eq!(error["message"], "thrown: bad 1 (in fn `fail`)");
    assert_eq!(
        error["line"], 5,
        "the line of the function's body, in the cell defining it"
    );
    assert_eq!(
        run.finished("read")["output"],
        53,
        "the push is seen by a later cell"
    );
}

/// The ids of the living processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the command may hold spaces.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1) == Some(&pid.to_string().as_str()) && fields[0] != "Z" {
            children.push(child);
        }
    }
    children
}

/// Whether process `pid` exists (a zombie counts: it was not waited for).
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether process `pid` still runs (exists and is not a zombie).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// The command line of process `pid`.
fn command_line(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

/// Waits (bounded) until `cellrun` has a `cellrun worker` child, and
/// returns its pid.
fn worker_of(cellrun: &Child) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(worker) = children_of(cellrun.id())
            .into_iter()
            .find(|pid| command_line(*pid).contains("worker"))
        {
            return worker;
        }
        assert!(start.elapsed() < DEADLINE, "no worker process started");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ctrl_c_interrupts_the_cell_in_its_worker_and_leaves_no_worker_behind() {
    let dir = Dir::new("subprocess-sigint");
    dir.write("nb.rhai", BUSY);
    let mut runs = Vec::new();
    for subprocess in [None, Some(&[][..])] {
        let started = Started::new(run_command(&dir, subprocess, &["--jobs", "1"]), "busy");
        let worker = subprocess.map(|_| worker_of(&started.child));
        started.signal(started.child.id(), "INT");
        let run = started.finish();
        assert_eq!(run.code, 130, "{}", run.stderr);
        if let Some(worker) = worker {
            assert!(!exists(worker), "worker {worker} outlived the run");
        }
        runs.push(run);
    }
    assert_eq!(runs[1].status("busy"), "interrupted");
    assert_eq!(difference(&runs[0], &runs[1], true), None);
}

#[test]
fn a_worker_whose_cellrun_is_killed_ends_by_itself() {
    let dir = Dir::new("subprocess-orphan");
    dir.write("nb.rhai", BUSY);
    let mut started = Started::new(run_command(&dir, Some(&[]), &["--jobs", "1"]), "busy");
    let worker = worker_of(&started.child);
    started.signal(started.child.id(), "KILL");
    let _ = started.child.wait();
    let start = Instant::now();
    while is_running(worker) {
        assert!(
            start.elapsed() < DEADLINE,
            "worker {worker} runs on without its cellrun"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_worker_killed_from_outside_fails_its_cell_by_name_and_the_run_goes_on() {
    let dir = Dir::new("subprocess-sigkill");
    dir.write(
        "nb.rhai",
        "// %% a\nlet x = 1;\n// %% doomed\nlet n = 0;\nloop { n += 1; }\n// %% child\nn + 1\n// %% other\nx + 1\n",
    );
    // One cell at a time: the worker that runs `doomed` is the only one.
    let started = Started::new(run_command(&dir, Some(&[]), &["--jobs", "1"]), "doomed");
    let worker = worker_of(&started.child);
    started.signal(worker, "KILL");
    let run = started.finish();
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = &run.finished("doomed")["error"];
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "the worker process running cell `doomed` (pid {worker}) was killed by signal 9 (SIGKILL)"
        )),
        "{message}"
    );
    assert_eq!(error["kind"], "runtime");
    assert_eq!(run.status("child"), "cancelled");
    assert_eq!(run.status("other"), "ok", "a new worker runs the next cell");
    assert_eq!(run.finished("other")["output"], 2);
}

#[test]
fn a_timeout_reaches_the_worker_and_a_worker_that_ignores_it_is_killed() {
    let dir = Dir::new("subprocess-timeout");
    // A worker that says it is ready, ignores SIGINT and never answers.
    let pid_file = dir.path().join("worker.pid");
    let script = dir.write(
        "silent-worker",
        &format!(
            "#!/bin/sh\ntrap '' INT\necho $$ > {}\necho '{{\"protocol\":1,\"ready\":true}}'\nexec sleep 600\n",
            pid_file.display()
        ),
    );
    crate::plugins::set_mode(&script, 0o755);
    dir.write("nb.rhai", "// %% a\nlet x = 1;\n");
    let option = format!("cellrun={}", script.display());
    let started = Instant::now();
    let run = run(&dir, Some(&[&option]), &["--timeout", "1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.finished("a")["error"]["kind"], "timeout");
    assert!(
        started.elapsed() < DEADLINE,
        "killed after the deadline and its grace, not left to sleep"
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !exists(pid),
        "the silent worker {pid} was killed and waited for"
    );
}

#[test]
fn a_worker_that_cannot_start_fails_each_cell_and_a_bad_option_stops_the_run() {
    let dir = Dir::new("subprocess-broken");
    // A program that ends at once, without a ready line.
    let script = dir.write(
        "not-a-worker",
        "#!/bin/sh\necho 'no such command' >&2\nexit 3\n",
    );
    crate::plugins::set_mode(&script, 0o755);
    dir.write("nb.rhai", "// %% a\nlet x = 1;\n// %% b\n2\n");
    let option = format!("cellrun={}", script.display());
    let broken = run(&dir, Some(&[&option]), &[]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    let message = broken.finished("b")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("running cell `b`")
            && message.contains("exited with status 3")
            && message.contains("no such command"),
        "{message}"
    );
    let bad = run(
        &dir,
        Some(&["max-memory=lots"]),
        &["--executor", "subprocess"],
    );
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("max-memory=lots"), "{}", bad.stderr);
}

#[test]
fn with_jobs_independent_cells_run_in_workers_at_the_same_time() {
    let dir = Dir::new("subprocess-jobs");
    dir.write(
        "nb.rhai",
        "// %% a\nlet x = 1;\n// %% spin1\nlet n1 = x;\nloop { n1 += 1; }\n\
         // %% spin2\nlet n2 = x;\nloop { n2 += 1; }\n// %% spin3\nlet n3 = x;\nloop { n3 += 1; }\n",
    );
    let started = Started::new(
        run_command(&dir, Some(&[]), &["--jobs", "4", "--timeout", "5"]),
        "spin1",
    );
    let cellrun = started.child.id();
    let workers = |child: u32| {
        children_of(child)
            .into_iter()
            .filter(|pid| command_line(*pid).contains("worker"))
            .collect::<Vec<_>>()
    };
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 3 {
        seen = workers(cellrun);
        assert!(
            start.elapsed() < DEADLINE && exists(cellrun),
            "never three workers at once: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let run = started.finish();
    assert_eq!(run.code, 1, "{}", run.stderr);
    for spin in ["spin1", "spin2", "spin3"] {
        assert_eq!(run.finished(spin)["error"]["kind"], "timeout", "{spin}");
    }
    for worker in seen {
        assert!(!exists(worker), "worker {worker} outlived the run");
    }
}
