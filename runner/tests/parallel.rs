//! `--jobs N`: independent cells at the same time, with the sequential
//! run's statuses, interrupts, limits, lifecycles and events.

use serde_json::Value;

use crate::control::interrupt_when_printed;
use crate::plugins::{plugin_dirs, warnings};
use crate::util::{cellrun_command, Dir, Run};

/// A fan-out and a join.
const FAN: &str = "\
// %% root
let n = 3;
// %% left
let left = n + 1;
// %% right
let right = n * 2;
// %% both
left + right
";

fn run_started(run: &Run) -> &Value {
    run.events("run_started")[0]
}

#[test]
fn run_started_carries_the_jobs_and_each_cell_finishes_once() {
    let dir = Dir::new("jobs-fan");
    let run = dir.run_json(FAN, &["--jobs", "2"]);
    assert_eq!(run.code, 0, "{:#?}", run.events);
    assert_eq!(run_started(&run)["jobs"], 2);
    assert_eq!(run.finished("both")["output"], 10);
    assert_eq!(run.events("cell_finished").len(), 4);
    let run = dir.run_json(FAN, &["--jobs", "1"]);
    assert_eq!(run_started(&run)["jobs"], 1);
    assert_eq!(run.started(), ["root", "left", "right", "both"]);
}

#[test]
fn cells_mutating_a_shared_input_see_it_as_in_the_sequential_run() {
    let dir = Dir::new("jobs-mutators");
    let run = dir.run_json(MUTATORS, &["--jobs", "4"]);
    assert_eq!(run.code, 0, "{:#?}", run.events);
    assert_eq!(
        run.finished("sum")["output"],
        9,
        "4 then 5, as with --jobs 1"
    );
}

#[test]
fn jobs_come_from_the_environment_and_must_be_positive() {
    let dir = Dir::new("jobs-env");
    dir.write("nb.rhai", "// %% a\n1\n");
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--json"])
        .env("CELLRUN_JOBS", "3")
        .output()
        .unwrap();
    let run = Run::from_output(output);
    assert_eq!(run_started(&run)["jobs"], 3);
    let output = dir.cellrun(&["run", "nb.rhai", "--jobs", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--jobs"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

const BUSY_SIBLINGS: &str = "\
// %% before
let a = 1;
// %% busy1
let n = 0;
loop { n += 1; }
// %% busy2
let m = a;
loop { m += 1; }
// %% child
let c = n + m;
// %% later
let d = a + 1;
";

#[test]
fn ctrl_c_interrupts_every_running_cell_and_reports_the_rest() {
    let dir = Dir::new("jobs-sigint");
    // SIGINT comes once both busy cells started; neither can finish: they
    // run at the same time, and their events interleave.
    let (code, seen, stderr) = interrupt_when_printed(
        &dir,
        BUSY_SIBLINGS,
        &["--json", "--jobs", "2"],
        &[
            r#"{"event":"cell_started","cell":"busy1","#,
            r#"{"event":"cell_started","cell":"busy2","#,
        ],
    );
    let events = seen
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let run = Run {
        code,
        events,
        stderr,
    };
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(run.status("before"), "ok");
    assert_eq!(run.status("busy1"), "interrupted");
    assert_eq!(run.status("busy2"), "interrupted");
    assert_eq!(run.status("child"), "cancelled");
    assert_eq!(run.status("later"), "interrupted", "queued, not run");
    assert_eq!(run.counts(), (1, 0, 1, 3));
}

#[test]
fn the_timeout_applies_to_each_cell_and_a_failure_spares_running_siblings() {
    let dir = Dir::new("jobs-timeout");
    let notebook = "\
// %% root
let a = 1;
// %% stuck
let n = a;
loop { n += 1; }
// %% below
n
// %% quick
let q = a + 1;
// %% slow
let s = 0;
for i in 0..20000 { s += i; }
s + q
";
    let run = dir.run_json(notebook, &["--jobs", "2", "--timeout", "1"]);
    assert_eq!(run.status("stuck"), "error");
    assert_eq!(run.finished("stuck")["error"]["kind"], "timeout");
    assert_eq!(run.status("below"), "cancelled");
    assert_eq!(run.finished("below")["error"]["blamed"], "stuck");
    assert_eq!(run.status("quick"), "ok");
    assert_eq!(run.status("slow"), "ok");
    assert_eq!(run.finished("slow")["output"], 199990002);
}

/// A fan-out whose cells mutate what they read in place.
const MUTATORS: &str = "\
// %% base
let xs = [1, 2, 3];
// %% first
xs.push(4);
let a = xs.len();
// %% second
xs.push(5);
let b = xs.len();
// %% sum
a + b
";

#[test]
fn strict_and_cache_work_under_jobs() {
    let dir = Dir::new("jobs-lifecycles");
    let strict = dir.run_json(MUTATORS, &["--jobs", "4", "--strict"]);
    assert_eq!(strict.code, 0, "{:#?}", strict.events);
    // Each cell mutates its own copy.
    assert_eq!(strict.finished("sum")["output"], 8);

    let first = dir.run_json(MUTATORS, &["--jobs", "4", "--strict", "--cache=cache"]);
    let again = dir.run_json(MUTATORS, &["--jobs", "4", "--strict", "--cache=cache"]);
    for cell in ["base", "first", "second", "sum"] {
        assert_eq!(first.finished(cell)["cached"], false, "{cell}");
        assert_eq!(again.finished(cell)["cached"], true, "{cell}");
        assert_eq!(
            again.finished(cell)["output"],
            first.finished(cell)["output"]
        );
    }
    let entries = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert_eq!(
        entries, 4,
        "one whole entry per cell, no temporary file left"
    );
}

#[test]
fn a_sequential_plugin_executor_makes_the_run_sequential_with_one_warning() {
    let dir = Dir::new("jobs-sequential-executor");
    let mut args = plugin_dirs(&["passthrough"]);
    args.extend(["--jobs".to_owned(), "4".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = dir.run_json(
        "// %% a\nlet x = 1;\n// %% b\nlet y = 2;\n// %% c\nx + y\n",
        &args,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "passthrough");
    assert_eq!(run_started(&run)["jobs"], 1);
    assert_eq!(
        warnings(&run),
        ["executor `passthrough` runs one cell at a time: running the cells one by one, not 4 at a time"]
    );
    assert_eq!(run.started(), ["a", "b", "c"]);
}

#[test]
fn human_output_says_how_many_cells_run_at_once() {
    let dir = Dir::new("jobs-human");
    dir.write("nb.rhai", FAN);
    let output = dir.cellrun(&["run", "nb.rhai", "--jobs", "2"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    let first = stdout.lines().next().unwrap();
    assert!(first.ends_with(", up to 2 cells at a time"), "{first}");
    assert_eq!(
        stdout.lines().count(),
        6,
        "one whole line per cell: {stdout}"
    );
}

#[test]
fn graph_json_groups_the_cells_that_can_run_together() {
    let dir = Dir::new("jobs-graph");
    dir.write("nb.rhai", FAN);
    let output = dir.cellrun(&["graph", "nb.rhai", "--format", "json"]);
    assert!(output.status.success());
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        document["levels"],
        serde_json::json!([["root"], ["left", "right"], ["both"]])
    );
    assert_eq!(document["nodes"][3]["level"], 2);
}
