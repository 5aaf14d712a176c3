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
fn time(mut command: Command, limit: Duration) -> anyhow::Result<Option<Duration>> {
    let start = Instant::now();
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the benchmark command")?;
    loop {
        if let Some(status) = child.try_wait()? {
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{command:?} failed with {status}");
            }
            return Ok(Some(elapsed));
        }
        if start.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How long marimo may take on one notebook before it is stopped and
/// reported as slower than that: its chains grow quadratically.
const MARIMO_LIMIT: Duration = Duration::from_secs(600);

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
    writeln!(
        report,
        "`cellrun run nb.py` (the python plugin, embedded CPython; best of {repeats}) against marimo's script mode `python nb.py` (one run each, stopped after {} s) with the virtual environment's Python, on the same files.\n",
        MARIMO_LIMIT.as_secs()
    )?;
    writeln!(
        report,
        "| shape | cells | cellrun | per cell | marimo | per cell | marimo / cellrun per cell |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    for chain in [true, false] {
        let shape = if chain { "chain" } else { "fan-out" };
        let mut ours_by_size = Vec::new();
        for &n in sizes {
            let path = out_dir.join(format!("py_{}_{n}.py", if chain { "chain" } else { "fan" }));
            fs::write(&path, generate(chain, n))?;
            let mut best = Duration::MAX;
            for _ in 0..repeats {
                let mut command = Command::new(cellrun);
                command.arg("run").arg(&path).env("VIRTUAL_ENV", &venv);
                let elapsed =
                    time(command, MARIMO_LIMIT)?.context("cellrun ran past the time limit")?;
                best = best.min(elapsed);
            }
            let ours = best.as_secs_f64();
            ours_by_size.push((n, ours));
            let (theirs, per_theirs, ratio) = if marimo_sizes.contains(&n) {
                let mut command = Command::new(&python);
                command.arg(&path);
                match time(command, MARIMO_LIMIT)? {
                    Some(elapsed) => {
                        let theirs = elapsed.as_secs_f64();
                        (
                            format!("{theirs:.1} s"),
                            format!("{:.2} ms", theirs * 1e3 / n as f64),
                            format!("{:.0}x", theirs / ours),
                        )
                    }
                    None => (
                        format!("> {} s", MARIMO_LIMIT.as_secs()),
                        format!("> {:.0} ms", MARIMO_LIMIT.as_secs_f64() * 1e3 / n as f64),
                        format!("> {:.0}x", MARIMO_LIMIT.as_secs_f64() / ours),
                    ),
                }
            } else {
                ("-".to_owned(), "-".to_owned(), "-".to_owned())
            };
            writeln!(
                report,
                "| {shape} | {n} | {:.1} ms | {:.1} µs | {theirs} | {per_theirs} | {ratio} |",
                ours * 1e3,
                ours * 1e6 / n as f64
            )?;
        }
        for pair in ours_by_size.windows(2) {
            let ((n1, t1), (n2, t2)) = (pair[0], pair[1]);
            writeln!(
                report,
                "| {shape} ratio | {n2}/{n1} = {:.1}x cells | {:.2}x time | | | | |",
                n2 as f64 / n1 as f64,
                t2 / t1
            )?;
        }
    }
    Ok(())
}
