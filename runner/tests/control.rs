//! Interrupts, timeouts and safety limits.

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use crate::util::{cellrun_command, wait_with_deadline, Dir, Run};

pub(crate) const BUSY: &str = "\
// %% before
let a = 1;
// %% busy
let n = 0;
loop { n += 1; }
// %% child
let c = n;
// %% later
let d = a + 1;
";

/// Starts `cellrun run nb.rhai ARGS` on `notebook`, waits until a line
/// containing each of `markers` was printed, sends SIGINT, and returns the
/// exit code and everything the run printed on stdout and stderr.
pub(crate) fn interrupt_when_printed(
    dir: &Dir,
    notebook: &str,
    args: &[&str],
    markers: &[&str],
) -> (i32, String, String) {
    dir.write("nb.rhai", notebook);
    let mut child = cellrun_command(dir.path())
        .args(["run", "nb.rhai"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut missing: Vec<&str> = markers.to_vec();
    // A marker that never comes must fail the test, not hang it: after a
    // minute the run is killed, which ends its output.
    let waiting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pid = child.id().to_string();
    let guard = {
        let waiting = waiting.clone();
        std::thread::spawn(move || {
            for _ in 0..600 {
                std::thread::sleep(Duration::from_millis(100));
                if !waiting.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
            }
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
        })
    };
    while !missing.is_empty() {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("cellrun ended before printing {missing:?}: {seen}");
        }
        seen.push_str(&line);
        missing.retain(|marker| !line.contains(marker));
    }
    waiting.store(false, std::sync::atomic::Ordering::SeqCst);
    guard.join().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = wait_with_deadline(&mut child, Duration::from_secs(30));
    stdout.read_to_string(&mut seen).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (code, seen, stderr)
}

#[test]
fn sigint_interrupts_the_busy_cell_and_reports_the_rest() {
    let dir = Dir::new("sigint-json");
    let (code, stdout, stderr) = interrupt_when_printed(
        &dir,
        BUSY,
        &["--json"],
        &[r#"{"event":"cell_started","cell":"busy","#],
    );
    assert_eq!(code, 130, "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let run = Run {
        code,
        events,
        stderr,
    };
    assert_eq!(run.status("before"), "ok");
    assert_eq!(run.status("busy"), "interrupted");
    assert_eq!(run.finished("busy")["error"]["kind"], "interrupted");
    assert_eq!(
        run.status("child"),
        "cancelled",
        "the interrupted cell's descendants are cancelled"
    );
    assert_eq!(
        run.status("later"),
        "interrupted",
        "cells that did not run are reported as interrupted"
    );
    assert_eq!(run.counts(), (1, 0, 1, 2));
    assert!(!run.started().contains(&"later".to_owned()));
}

#[test]
fn sigint_still_prints_the_summary() {
    let dir = Dir::new("sigint-human");
    let (code, stdout, _) = interrupt_when_printed(&dir, BUSY, &[], &["✓ before"]);
    assert_eq!(code, 130);
    assert!(stdout.contains("■ busy"), "{stdout}");
    assert!(
        stdout.contains("interrupted: 4 cells: 1 ok, 1 cancelled, 2 interrupted"),
        "{stdout}"
    );
}

#[test]
fn timeout_fails_the_slow_cell_and_the_run_goes_on() {
    let dir = Dir::new("timeout");
    let run = dir.run_json(BUSY, &["--timeout", "0.2"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.status("busy"), "error");
    assert_eq!(run.finished("busy")["error"]["kind"], "timeout");
    assert_eq!(run.status("child"), "cancelled");
    assert_eq!(run.status("later"), "ok");
}

#[test]
fn runaway_cells_fail_without_taking_the_runner_down() {
    let dir = Dir::new("limits");
    let notebook = "\
// %% recursion
fn down(n) { down(n + 1) }
down(0)
// %% doubling
let s = \"x\";
loop { s += s; }
// %% growing
let xs = [1];
loop { xs.pad(xs.len() * 2, 0); }
// %% legit
let total = 0;
for i in 0..300000 { total += i; }
total
";
    let run = dir.run_json(notebook, &["--max-memory", "256"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for cell in ["recursion", "doubling", "growing"] {
        assert_eq!(run.status(cell), "error", "{cell}");
        assert_eq!(run.finished(cell)["error"]["kind"], "runtime", "{cell}");
    }
    let message = |cell: &str| {
        run.finished(cell)["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        message("recursion").contains("the call depth limit"),
        "{}",
        message("recursion")
    );
    assert!(
        message("doubling").contains("memory limit"),
        "{}",
        message("doubling")
    );
    assert!(
        message("growing").contains("memory limit"),
        "{}",
        message("growing")
    );
    assert_eq!(
        run.status("legit"),
        "ok",
        "legitimate computations do not trip the limits"
    );
    assert_eq!(run.finished("legit")["output"], 44999850000_i64);
}
