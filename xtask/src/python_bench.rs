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

use crate::cargo;

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

fn time(mut command: Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("cannot start the benchmark command")?;
    let elapsed = start.elapsed();
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(elapsed)
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
    let python = root.join("target/py-venv/bin/python");
    if !python.is_file() {
        writeln!(
            report,
            "Skipped: {} is missing (`bash .ci/run` creates it).",
            python.display()
        )?;
        return Ok(());
    }
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "plugin-python"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the python plugin failed");
    }
    let plugin_dir = out_dir.join("python-plugin");
    fs::create_dir_all(&plugin_dir)?;
    fs::copy(
        root.join("target/release/libplugin_python.so"),
        plugin_dir.join("libplugin_python.so"),
    )?;
    let cellrun_sizes: &[usize] = if quick {
        &[1_000, 2_000]
    } else {
        &[1_000, 2_000, 10_000]
    };
    let marimo_sizes: &[usize] = if quick { &[1_000] } else { &[1_000, 2_000] };
    writeln!(
        report,
        "`cellrun run nb.py` (embedded CPython, best of 3) against marimo's script mode `python nb.py` (one run: it takes minutes) on the same notebooks.\n"
    )?;
    writeln!(
        report,
        "| shape | cells | cellrun | per cell | marimo | per cell | marimo / cellrun |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|")?;
    for chain in [true, false] {
        let shape = if chain { "chain" } else { "fan" };
        for &n in cellrun_sizes {
            let path = out_dir.join(format!("py_{shape}_{n}.py"));
            fs::write(&path, generate(chain, n))?;
            let mut best = Duration::MAX;
            for _ in 0..3 {
                let mut command = Command::new(cellrun);
                command
                    .arg("run")
                    .arg(&path)
                    .arg("--plugin-dir")
                    .arg(&plugin_dir)
                    .env("VIRTUAL_ENV", root.join("target/py-venv"));
                best = best.min(time(command)?);
            }
            let ours = best.as_secs_f64();
            let (theirs, per_theirs, ratio) = if marimo_sizes.contains(&n) {
                let mut command = Command::new(&python);
                command.arg(&path);
                let theirs = time(command)?.as_secs_f64();
                (
                    format!("{theirs:.1} s"),
                    format!("{:.2} ms", theirs * 1e3 / n as f64),
                    format!("{:.0}x", theirs / ours),
                )
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
    }
    Ok(())
}
