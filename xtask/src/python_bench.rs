//! Python notebooks in `cargo xtask bench`: cellrun against marimo's own
//! script mode (`python nb.py`) on the same generated marimo notebooks.
//!
//! Needs the virtual environment with marimo that `.ci/run` creates
//! (`target/py-venv`) and the python executor plugin; without them the
//! section says what is missing instead of a figure.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A marimo notebook of `n` trivial cells: a chain (`x_i = x_{i-1} + 1`)
/// or a fan-out (`c_i = root + i`).
pub(crate) fn generate(chain: bool, n: usize) -> String {
    let mut text =
        String::from("import marimo\n\n__generated_with = \"0.25.2\"\napp = marimo.App()\n");
    for i in 0..n {
        let body = match (chain, i) {
            (true, 0) => "x_0 = 0".to_owned(),
            (true, i) => format!("x_{i} = x_{} + 1", i - 1),
            (false, 0) => "root = 0".to_owned(),
            (false, i) => format!("c_{i} = root + {i}"),
        };
        let _ = write!(
            text,
            "\n\n@app.cell\ndef cell_{i}():\n    {body}\n    return\n"
        );
    }
    text.push_str("\n\nif __name__ == \"__main__\":\n    app.run()\n");
    text
}

/// Runs `command` to its end, or kills it after `limit`: its wall time, or
/// `None` when it ran out of time.
///
/// The calling thread waits for the process itself, so the time is exact
/// to the process's exit; a second thread kills it at the limit.
fn time(mut command: Command, limit: Duration) -> anyhow::Result<Option<Duration>> {
    let start = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the benchmark command")?;
    let pid = child.id().to_string();
    let (finished, wait_for_finish) = mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        let late = wait_for_finish.recv_timeout(limit).is_err();
        if late {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        late
    });
    let status = child.wait()?;
    let elapsed = start.elapsed();
    let _ = finished.send(());
    if killer.join().unwrap_or(false) {
        return Ok(None);
    }
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(Some(elapsed))
}

/// How long marimo may take on one notebook before it is stopped and
/// reported as slower than that: its chains grow quadratically.
const MARIMO_LIMIT: Duration = Duration::from_secs(600);

/// The least of `runs` results of `run`, in seconds.
fn best_of(runs: usize, mut run: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..runs {
        best = best.min(run()?);
    }
    Ok(best)
}

/// Appends the Python section to `report`.
pub(crate) fn run(
    root: &Path,
    cellrun: &Path,
    out_dir: &Path,
    quick: bool,
    report: &mut String,
) -> anyhow::Result<()> {
    writeln!(report, "\n## Python notebooks\n")?;
    let venv = root.join("target/py-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        writeln!(
            report,
            "Skipped: {} is missing (`bash .ci/run` creates it).",
            python.display()
        )?;
        return Ok(());
    }
    // Built beside the release `cellrun`, where it finds the plugin itself.
    crate::bench::release_plugin(root, "python")?;
    let sizes: &[usize] = if quick {
        &[1_000, 2_000]
    } else {
        &[1_000, 2_000, 5_000, 10_000]
    };
    let marimo_sizes: &[usize] = if quick { &[1_000] } else { &[1_000, 10_000] };
    let repeats = if quick { 3 } else { 5 };
    // marimo's runs of 1,000 cells take seconds: a few, for a best; those of
    // 10,000 take minutes: one.
    let marimo_repeats = |n: usize| if n <= 1_000 { 3 } else { 1 };
    let cellrun_with = |path: &Path, extra: &[&str]| -> anyhow::Result<f64> {
        let mut command = Command::new(cellrun);
        command
            .arg("run")
            .arg(path)
            .args(extra)
            .env("VIRTUAL_ENV", &venv);
        Ok(time(command, MARIMO_LIMIT)?
            .context("cellrun ran past the time limit")?
            .as_secs_f64())
    };
    let cellrun_run = |path: &Path| cellrun_with(path, &[]);
    let marimo_run = |path: &Path| -> anyhow::Result<Option<f64>> {
        let mut command = Command::new(&python);
        command.arg(path);
        Ok(time(command, MARIMO_LIMIT)?.map(|elapsed| elapsed.as_secs_f64()))
    };
    let one = out_dir.join("py_one.py");
    fs::write(&one, generate(false, 1))?;
    let ours_one = best_of(repeats, || cellrun_run(&one))?;
    let theirs_one = best_of(3, || marimo_run(&one).map(|run| run.unwrap_or(f64::MAX)))?;
    writeln!(
        report,
        "`cellrun run nb.py` (the python plugin, embedded CPython; best of {repeats}) against marimo's script mode `python nb.py` (best of 3 up to 1,000 cells, one run beyond; stopped after {} s) with the virtual environment's Python, on the same files.",
        MARIMO_LIMIT.as_secs()
    )?;
    writeln!(
        report,
        "A notebook of one cell takes cellrun {:.1} ms and marimo {:.2} s (start-up: CPython, and for marimo `import marimo`). *Per cell* is the whole run over the cells; *beyond start-up* is `(T(N) - T(1)) / (N - 1)`, the time each further cell adds, and the ratio compares that.\n",
        ours_one * 1e3,
        theirs_one
    )?;
    writeln!(
        report,
        "| shape | cells | cellrun | per cell | beyond start-up | marimo | per cell | beyond start-up | marimo / cellrun beyond start-up (whole run) |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|---|---|")?;
    let beyond = |whole: f64, start: f64, n: usize| (whole - start).max(0.0) / (n - 1) as f64;
    for chain in [true, false] {
        let shape = if chain { "chain" } else { "fan-out" };
        let mut ours_by_size = Vec::new();
        for &n in sizes {
            let path = out_dir.join(format!("py_{}_{n}.py", if chain { "chain" } else { "fan" }));
            fs::write(&path, generate(chain, n))?;
            let ours = best_of(repeats, || cellrun_run(&path))?;
            ours_by_size.push((n, ours));
            let ours_beyond = beyond(ours, ours_one, n);
            let (theirs, per_theirs, beyond_theirs, ratio) = if marimo_sizes.contains(&n) {
                let runs = marimo_repeats(n);
                match best_of(runs, || {
                    marimo_run(&path).map(|run| run.unwrap_or(f64::MAX))
                })? {
                    theirs if theirs < f64::MAX => {
                        let theirs_beyond = beyond(theirs, theirs_one, n);
                        (
                            format!("{theirs:.1} s"),
                            format!("{:.2} ms", theirs * 1e3 / n as f64),
                            format!("{:.2} ms", theirs_beyond * 1e3),
                            format!(
                                "{:.0}x ({:.0}x)",
                                theirs_beyond / ours_beyond,
                                theirs / ours
                            ),
                        )
                    }
                    _ => (
                        format!("> {} s", MARIMO_LIMIT.as_secs()),
                        format!("> {:.0} ms", MARIMO_LIMIT.as_secs_f64() * 1e3 / n as f64),
                        "-".to_owned(),
                        format!("> {:.0}x", MARIMO_LIMIT.as_secs_f64() / ours),
                    ),
                }
            } else {
                (
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                    "-".to_owned(),
                )
            };
            writeln!(
                report,
                "| {shape} | {n} | {:.1} ms | {:.1} µs | {:.1} µs | {theirs} | {per_theirs} | {beyond_theirs} | {ratio} |",
                ours * 1e3,
                ours * 1e6 / n as f64,
                ours_beyond * 1e6
            )?;
        }
        for pair in ours_by_size.windows(2) {
            let ((n1, t1), (n2, t2)) = (pair[0], pair[1]);
            // Twice the cells: also the median ratio of runs taken in
            // pairs, steadier than the ratio of two bests on a shared machine.
            let paired = if n2 == 2 * n1 {
                let name = if chain { "chain" } else { "fan" };
                let small = out_dir.join(format!("py_{name}_{n1}.py"));
                let large = out_dir.join(format!("py_{name}_{n2}.py"));
                let pairs = alternate(PAIRS, || cellrun_run(&small), || cellrun_run(&large))?;
                let ratios = pairs.iter().map(|(a, b)| b / a).collect();
                format!("{:.2}x (median of {PAIRS} pairs)", median(ratios))
            } else {
                String::new()
            };
            writeln!(
                report,
                "| {shape} ratio | {n2}/{n1} = {:.1}x cells | {:.2}x time (bests) | {paired} | | | | | |",
                n2 as f64 / n1 as f64,
                t2 / t1
            )?;
        }
    }
    // What compiling ahead in a second process gives: the same files with
    // the helper and without, in alternating pairs.
    writeln!(
        report,
        "\nCompiled ahead (`python.precompile=always`; `auto`, the default, from 2,000 cells) against compiled in place (`=never`), median of {AHEAD_PAIRS} alternating pairs:\n"
    )?;
    writeln!(
        report,
        "| shape | cells | ahead: median | in place: median | ratio (median pair) |"
    )?;
    writeln!(report, "|---|---|---|---|---|")?;
    let in_place = |path: &Path| cellrun_with(path, &["--plugin-opt", "python.precompile=never"]);
    let ahead = |path: &Path| cellrun_with(path, &["--plugin-opt", "python.precompile=always"]);
    for chain in [true, false] {
        let name = if chain { "chain" } else { "fan" };
        for &n in [1_000, *sizes.last().unwrap_or(&1_000)]
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            let path = out_dir.join(format!("py_{name}_{n}.py"));
            let pairs = alternate(AHEAD_PAIRS, || ahead(&path), || in_place(&path))?;
            let with = pairs.iter().map(|(a, _)| *a).collect();
            let place = pairs.iter().map(|(_, b)| *b).collect();
            let ratios = pairs.iter().map(|(a, b)| a / b).collect();
            writeln!(
                report,
                "| {} | {n} | {:.1} ms | {:.1} ms | {:.2}x |",
                if chain { "chain" } else { "fan-out" },
                median(with) * 1e3,
                median(place) * 1e3,
                median(ratios)
            )?;
        }
    }
    Ok(())
}

/// `rounds` pairs of results of `first` and `second`, taken alternately
/// first-then-second and second-then-first, so neither always runs on the
/// machine the other left.
fn alternate(
    rounds: usize,
    mut first: impl FnMut() -> anyhow::Result<f64>,
    mut second: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut pairs = Vec::with_capacity(rounds);
    for round in 0..rounds {
        pairs.push(if round % 2 == 0 {
            let a = first()?;
            (a, second()?)
        } else {
            let b = second()?;
            (first()?, b)
        });
    }
    Ok(pairs)
}

/// The middle value of `values` (the upper one of two).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// How many pairs of runs compare compiling ahead with compiling in place.
const AHEAD_PAIRS: usize = 9;

/// How many pairs of runs give the paired ratio of twice the cells.
const PAIRS: usize = 11;
