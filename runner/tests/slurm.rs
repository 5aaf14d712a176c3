//! The `slurm` executor plugin end to end, against the real one-node cluster
//! that `cargo xtask slurm up` runs on loopback (CI's `.ci/run` starts it;
//! outside CI the first test here starts it and leaves it running).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::plugins::{plugin_dirs, run_started, warnings};
use crate::util::{cellrun_command, Dir, Run, Started};

/// The local cluster's `slurm.conf`, once the cluster answers.
fn cluster() -> &'static PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        // Idempotent: a cluster that answers is left as it is.
        let output = Command::new(cargo)
            .current_dir(root)
            .args(["run", "--quiet", "-p", "xtask", "--", "slurm", "up"])
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "`cargo xtask slurm up` failed (it needs root to install slurm-wlm and munge):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let conf = stdout
            .lines()
            .find_map(|line| line.strip_prefix("export SLURM_CONF="))
            .expect("`slurm up` prints the SLURM_CONF line");
        PathBuf::from(conf)
    })
}

const TWO_CELLS: &str = "// %% a\nlet x = 20;\n// %% b\nx + 1\n";

#[test]
fn an_unreachable_cluster_fails_construction_and_the_run_falls_back_loudly() {
    let dir = Dir::new("slurm-unreachable");
    // The local cluster's configuration with a controller port nothing
    // listens on: every client command gets "connection refused".
    let conf = std::fs::read_to_string(cluster()).unwrap();
    let conf: String = conf
        .lines()
        .map(|line| {
            if line.starts_with("SlurmctldPort=") {
                "SlurmctldPort=9".to_owned()
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    let unreachable = dir.write("slurm.conf", &conf);
    dir.write("nb.rhai", TWO_CELLS);
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--json"])
        .args(plugin_dirs(&["slurm"]))
        .env("SLURM_CONF", &unreachable)
        .output()
        .unwrap();
    let run = Run::from_output(output);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "default");
    let warnings = warnings(&run);
    assert!(
        warnings.iter().any(|warning| warning.contains("`slurm`")
            && warning.contains("the Slurm cluster does not answer")
            && warning.contains("Unable to contact slurm controller")),
        "{warnings:?}"
    );
    assert_eq!(run.counts(), (2, 0, 0, 0));
}

/// What must match between executors for each cell: status, output,
/// printed text and error (kind, message, line, blamed), without timings.
fn outcome(run: &Run) -> Vec<Value> {
    run.events("cell_finished")
        .iter()
        .map(|event| {
            serde_json::json!({
                "cell": event["cell"],
                "status": event["status"],
                "output": event["output"],
                "stdout": event["stdout"],
                "error": event["error"],
            })
        })
        .collect()
}

/// A `cellrun run nb.rhai --json` command in `dir`, on the cluster when
/// `slurm`.
fn run_command(dir: &Dir, slurm: bool, extra: &[&str]) -> Command {
    let mut command = cellrun_command(dir.path());
    command.args(["run", "nb.rhai", "--json"]).args(extra);
    if slurm {
        // The only executor plugin given, so the one a run selects.
        command
            .args(plugin_dirs(&["slurm"]))
            .env("SLURM_CONF", cluster());
    }
    command
}

fn run(dir: &Dir, slurm: bool, extra: &[&str]) -> Run {
    Run::from_output(run_command(dir, slurm, extra).output().unwrap())
}

/// The names of this user's jobs Slurm still knows (finished ones too,
/// for `MinJobAge`), with their states.
fn jobs() -> Vec<(String, String)> {
    let output = Command::new("squeue")
        .args(["-h", "--me", "-t", "all", "-o", "%j %T"])
        .env("SLURM_CONF", cluster())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, state)| (name.to_owned(), state.to_owned()))
        .collect()
}

/// The states of the jobs that ran cells named `cell`.
fn job_states(cell: &str) -> Vec<String> {
    jobs()
        .into_iter()
        .filter(|(name, _)| name.ends_with(&format!("-{cell}")))
        .map(|(_, state)| state)
        .collect()
}

/// A cell name no other test run uses, so its jobs can be told apart.
fn unique(cell: &str) -> String {
    format!("{cell}_{}", std::process::id())
}

#[test]
fn plain_data_notebooks_give_the_built_in_executors_results() {
    let dir = Dir::new("slurm-same");
    let (first, last) = (unique("numbers"), unique("last"));
    dir.write(
        "nb.rhai",
        &format!(
            r#"// %% {first}
let xs = [1, 2, 3];
let ratio = 0.1 + 0.2;
let name = "cellrun";
let blob_len = 0;
// %% stats
let total = xs.reduce(|sum, x| sum + x, 0);
print(`total ${{total}}`);
#{{ total: total, ratio: ratio, name: name }}
// %% broken
let bad = total + missing_name;
// %% after_broken
bad * 2
// %% {last}
total * 10
"#
        ),
    );
    let local = run(&dir, false, &[]);
    let remote = run(&dir, true, &[]);
    assert_eq!(
        run_started(&remote)["executor"],
        "slurm",
        "{}",
        remote.stderr
    );
    assert_eq!(remote.code, local.code, "{}", remote.stderr);
    assert_eq!(outcome(&remote), outcome(&local), "{}", remote.stderr);
    assert_eq!(remote.status("broken"), "error");
    // Every cell that ran became a job that completed on the cluster.
    wait_until_no_job_runs(&first);
    wait_until_no_job_runs(&last);
    assert_eq!(job_states(&first), ["COMPLETED"]);
    assert_eq!(job_states(&last), ["COMPLETED"]);
}

#[test]
fn a_job_slurm_refuses_fails_its_cell_with_slurms_reason_and_the_run_goes_on() {
    let dir = Dir::new("slurm-refused");
    dir.write(
        "nb.rhai",
        "// %% a\nlet x = 1;\n// %% nowhere\n// slurm: partition=nowhere\nlet y = x;\n// %% c\nx + 1\n",
    );
    let run = run(&dir, true, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let error = &run.finished("nowhere")["error"];
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("srun"), "{message}");
    assert!(
        message.contains("Invalid partition name specified"),
        "{message}"
    );
    assert_eq!(run.status("c"), "ok");
    assert_eq!(run.finished("c")["output"], 2);
}

#[test]
fn a_job_that_fails_on_the_node_reports_its_state_exit_code_and_log() {
    let dir = Dir::new("slurm-failed");
    dir.write("nb.rhai", "// %% a\nlet x = 1;\n");
    // The node cannot start the worker: the job fails there.
    let run = run(
        &dir,
        true,
        &["--plugin-opt", "slurm.cellrun=/nonexistent/cellrun"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let message = run.finished("a")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("slurm job "), "{message}");
    assert!(message.contains(" FAILED (exit code "), "{message}");
    assert!(message.contains("/nonexistent/cellrun"), "{message}");
}

#[test]
fn marked_routing_sends_only_marked_cells_to_the_cluster() {
    let dir = Dir::new("slurm-route");
    let (here, there) = (unique("here"), unique("there"));
    dir.write(
        "nb.rhai",
        &format!("// %% {here}\nlet x = 20;\n// %% {there}\n// slurm: cpus=1\nx + 1\n"),
    );
    let run = run(&dir, true, &["--plugin-opt", "slurm.route=marked"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.finished(&there)["output"], 21);
    wait_until_no_job_runs(&there);
    assert_eq!(job_states(&there), ["COMPLETED"]);
    assert_eq!(job_states(&here), Vec::<String>::new());
}

#[test]
fn a_timeout_fails_the_cell_and_cancels_its_job() {
    let dir = Dir::new("slurm-timeout");
    let slow = unique("slow");
    dir.write(
        "nb.rhai",
        &format!("// %% {slow}\nlet n = 0;\nloop {{ n += 1; }}\n// %% other\n1 + 1\n"),
    );
    let run = run(&dir, true, &["--timeout", "3"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        run.finished(&slow)["error"]["kind"],
        "timeout",
        "{}",
        run.stderr
    );
    assert_eq!(run.status("other"), "ok");
    wait_until_no_job_runs(&slow);
    // The worker stops the cell at the deadline it was given (the job then
    // completes with a timeout answer) unless cellrun's own timeout cancels
    // the job first; either way no job is left behind.
    let states = job_states(&slow);
    assert!(
        states == ["CANCELLED"] || states == ["COMPLETED"],
        "{states:?}"
    );
}

/// Waits (bounded) until no job of cells named `cell` is pending, running
/// or completing.
/// Waits until a job that runs cell `cell` is RUNNING on the node.
fn wait_until_running(cell: &str) {
    let start = Instant::now();
    while !job_states(cell).iter().any(|state| state == "RUNNING") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the job never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_until_no_job_runs(cell: &str) {
    let start = Instant::now();
    loop {
        let states = job_states(cell);
        if !states
            .iter()
            .any(|state| matches!(state.as_str(), "PENDING" | "RUNNING" | "COMPLETING"))
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jobs left behind: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctrl_c_cancels_the_runs_job_and_reports_the_cells() {
    let dir = Dir::new("slurm-sigint");
    let busy = unique("busy");
    dir.write(
        "nb.rhai",
        &format!("// %% {busy}\nlet n = 0;\nloop {{ n += 1; }}\n// %% after\nn + 1\n"),
    );
    let started = Started::new(run_command(&dir, true, &[]), &busy);
    // Interrupt once the job runs on the node.
    wait_until_running(&busy);
    started.signal(started.child.id(), "INT");
    let run = started.finish();
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(run.status(&busy), "interrupted");
    wait_until_no_job_runs(&busy);
    assert_eq!(job_states(&busy), ["CANCELLED"]);
}

#[test]
fn the_rhai_examples_give_the_built_in_executors_results() {
    let dir = Dir::new("slurm-example");
    // The tour fails one cell on purpose.
    for (example, code) in [("cluster.rhai", 0), ("stats.rhai", 0), ("tour.rhai", 1)] {
        let path = format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR"));
        dir.write("nb.rhai", &std::fs::read_to_string(path).unwrap());
        let local = run(&dir, false, &["--jobs", "1"]);
        let remote = run(&dir, true, &["--jobs", "1"]);
        assert_eq!(
            run_started(&remote)["executor"],
            "slurm",
            "{}",
            remote.stderr
        );
        assert_eq!(
            (remote.code, local.code),
            (code, code),
            "{example}: {}",
            remote.stderr
        );
        assert_eq!(
            outcome(&remote),
            outcome(&local),
            "{example}: {}",
            remote.stderr
        );
    }
}

#[test]
fn with_jobs_two_independent_cells_are_jobs_on_the_cluster_at_once() {
    let dir = Dir::new("slurm-jobs");
    let (left, right) = (unique("left"), unique("right"));
    dir.write(
        "nb.rhai",
        &format!(
            "// %% base\nlet x = 1;\n// %% {left} [slurm: cpus=1]\nsleep(4);\nlet l = x + 1;\nl\n\
             // %% {right} [slurm: cpus=1]\nsleep(4);\nlet r = x + 2;\nr\n// %% both\nl + r\n"
        ),
    );
    let mut child = run_command(&dir, true, &["--jobs", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both cells' jobs are seen running together in the cluster's queue.
    let start = Instant::now();
    let together = loop {
        let states: Vec<(String, String)> = jobs();
        let running = |cell: &str| {
            states
                .iter()
                .any(|(name, state)| name.ends_with(&format!("-{cell}")) && state == "RUNNING")
        };
        if running(&left) && running(&right) {
            break true;
        }
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let run = Run::from_output(child.wait_with_output().unwrap());
    assert!(
        together,
        "the two jobs never ran at once: {:#?}",
        run.events
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["jobs"], 2);
    assert_eq!(run.finished("both")["output"], 5);
    assert_eq!(
        (
            run.finished(&left)["output"].clone(),
            run.finished(&right)["output"].clone()
        ),
        (2.into(), 3.into())
    );
    wait_until_no_job_runs(&left);
    wait_until_no_job_runs(&right);
}

#[test]
fn functions_defined_in_one_cell_are_callable_in_a_job() {
    let dir = Dir::new("slurm-functions");
    let (define, call) = (unique("define"), unique("call"));
    dir.write(
        "nb.rhai",
        &format!(
            "// %% {define}\nlet factor = 3;\nfn scale(v) {{ v * 2 }}\nlet add = |v| v + 1;\n\
             // %% {call}\nlet y = scale(20) + factor + add.call(0);\ny\n"
        ),
    );
    let here = run(&dir, false, &[]);
    let there = run(&dir, true, &[]);
    assert_eq!(there.code, 0, "{}", there.stderr);
    assert_eq!(run_started(&there)["executor"], "slurm");
    assert_eq!(there.finished(&call)["output"], 44);
    assert_eq!(outcome(&there), outcome(&here));
    wait_until_no_job_runs(&call);
    assert_eq!(job_states(&call), ["COMPLETED"]);
}

#[test]
fn naming_slurm_with_an_unreachable_cluster_stops_before_any_cell() {
    let dir = Dir::new("slurm-named");
    let conf: String = std::fs::read_to_string(cluster())
        .unwrap()
        .lines()
        .map(|line| {
            if line.starts_with("SlurmctldPort=") {
                "SlurmctldPort=9\n".to_owned()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    let conf = dir.write("slurm.conf", &conf);
    dir.write("nb.rhai", "// %% a\n1 + 1\n");
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--json", "--executor", "slurm"])
        .args(plugin_dirs(&["slurm"]))
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap();
    let run = Run::from_output(output);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.events("cell_finished").is_empty(), "{:#?}", run.events);
    assert!(run.stderr.contains("slurm"), "{}", run.stderr);
}

/// `cellrun run nb.py --json` in `dir`, on the cluster (`--executor
/// slurm`, the python plugin beside `cellrun` for the workers) or here by
/// the python plugin, with marimo's environment active; `None` when that
/// environment is missing and `CELLRUN_SKIP_MARIMO` asks to skip.
fn python_command(dir: &Dir, slurm: bool, extra: &[&str]) -> Option<Command> {
    let python = crate::python::marimo_python()?;
    let venv = python.parent().and_then(std::path::Path::parent).unwrap();
    // Builds the plugin into target/debug, beside the `cellrun` the jobs run.
    let python_plugin = crate::python_run::plugin_dir();
    let mut command = cellrun_command(dir.path());
    command
        .args(["run", "nb.py", "--json"])
        .args(extra)
        .env("VIRTUAL_ENV", venv);
    if slurm {
        command
            .args(plugin_dirs(&["slurm"]))
            .args(["--executor", "slurm"])
            .env("SLURM_CONF", cluster());
    } else {
        command.arg("--plugin-dir").arg(python_plugin);
    }
    Some(command)
}

fn run_python(dir: &Dir, slurm: bool, extra: &[&str]) -> Option<Run> {
    let mut command = python_command(dir, slurm, extra)?;
    Some(Run::from_output(command.output().unwrap()))
}

/// Outcomes in the order of their cells' names: with `--jobs 2` cells
/// that do not depend on each other finish in either order.
fn by_cell(mut outcomes: Vec<Value>) -> Vec<Value> {
    outcomes.sort_by(|a, b| a["cell"].as_str().cmp(&b["cell"].as_str()));
    outcomes
}

#[test]
fn python_notebooks_give_the_python_executors_results_on_the_cluster() {
    let dir = Dir::new("slurm-python");
    for example in ["tour.py", "inventory.py"] {
        let path = format!("{}/../examples/{example}", env!("CARGO_MANIFEST_DIR"));
        dir.write("nb.py", &std::fs::read_to_string(path).unwrap());
        let Some(here) = run_python(&dir, false, &[]) else {
            return;
        };
        let there = run_python(&dir, true, &["--jobs", "2"]).unwrap();
        assert_eq!(run_started(&there)["executor"], "slurm", "{}", there.stderr);
        assert_eq!(there.code, here.code, "{example}: {}", there.stderr);
        assert_eq!(
            by_cell(outcome(&there)),
            by_cell(outcome(&here)),
            "{example}: {}",
            there.stderr
        );
    }
    // Functions, closures and classes cross between jobs by value; a failure
    // on a node cancels its descendants and shows the notebook's line.
    let (define, call) = (unique("py_define"), unique("py_call"));
    dir.write(
        "nb.py",
        &format!(
            r#"import marimo

app = marimo.App()


@app.cell
def {define}():
    rate = 3

    def scale(v):
        return v * rate

    class Point:
        def __init__(self, x):
            self.x = x

        def norm(self):
            return abs(self.x)

    p = Point(-4)
    return Point, p, rate, scale


@app.function
def double(v):
    return v * 2


@app.cell
def {call}(Point, p, scale):
    y = scale(10) + double(1) + p.norm() + Point(5).norm()
    print("y =", y)
    y
    return (y,)


@app.cell
def broken(y):
    z = y / 0
    return (z,)


@app.cell
def after(z):
    z + 1
    return


if __name__ == "__main__":
    app.run()
"#
        ),
    );
    let here = run_python(&dir, false, &[]).unwrap();
    let there = run_python(&dir, true, &["--jobs", "2"]).unwrap();
    assert_eq!(there.code, 1, "{}", there.stderr);
    assert_eq!(there.finished(&call)["output"], 41, "{}", there.stderr);
    assert_eq!(there.finished(&call)["stdout"], "y = 41\n");
    let broken = there.finished("broken");
    assert_eq!(
        broken["error"]["message"],
        "ZeroDivisionError: division by zero"
    );
    assert_eq!(broken["error"]["line"], 39);
    assert_eq!(there.status("after"), "cancelled");
    assert_eq!(
        by_cell(outcome(&there)),
        by_cell(outcome(&here)),
        "{}",
        there.stderr
    );
    wait_until_no_job_runs(&call);
    assert_eq!(job_states(&call), ["COMPLETED"]);
}

#[test]
fn python_cells_time_out_on_the_cluster_and_marked_routing_keeps_the_others_here() {
    let dir = Dir::new("slurm-python-route");
    let (here_cell, there_cell, busy) = (unique("py_here"), unique("py_there"), unique("py_busy"));
    dir.write(
        "nb.py",
        &format!(
            "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef {here_cell}():\n    \
             xs = [1, 2]\n    return (xs,)\n\n\n@app.cell\ndef {there_cell}(xs):\n    \
             # slurm: cpus=1\n    total = sum(xs) * 10\n    total\n    return (total,)\n\n\n\
             @app.cell\ndef {busy}(total):\n    # slurm: cpus=1\n    n = total\n    \
             while True:\n        n += 1\n    return (n,)\n"
        ),
    );
    let Some(run) = run_python(
        &dir,
        true,
        &["--plugin-opt", "slurm.route=marked", "--timeout", "2"],
    ) else {
        return;
    };
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.finished(&there_cell)["output"], 30, "{}", run.stderr);
    let timed_out = run.finished(&busy);
    assert_eq!(timed_out["status"], "error");
    assert_eq!(timed_out["error"]["kind"], "timeout", "{timed_out}");
    wait_until_no_job_runs(&there_cell);
    wait_until_no_job_runs(&busy);
    assert_eq!(job_states(&there_cell), ["COMPLETED"]);
    assert_eq!(job_states(&here_cell), Vec::<String>::new());
}

#[test]
fn ctrl_c_cancels_a_python_cells_job() {
    let dir = Dir::new("slurm-python-sigint");
    let busy = unique("py_spin");
    dir.write(
        "nb.py",
        &format!(
            "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef {busy}():\n    n = 0\n    \
             while True:\n        n += 1\n    return (n,)\n\n\n@app.cell\ndef later(n):\n    \
             n + 1\n    return\n"
        ),
    );
    let Some(command) = python_command(&dir, true, &[]) else {
        return;
    };
    let started = Started::new(command, &busy);
    wait_until_running(&busy);
    started.signal(started.child.id(), "INT");
    let run = started.finish();
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(run.status(&busy), "interrupted");
    assert_eq!(run.status("later"), "cancelled");
    wait_until_no_job_runs(&busy);
    assert_eq!(job_states(&busy), ["CANCELLED"]);
}
