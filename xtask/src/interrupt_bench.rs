//! `cargo xtask bench interrupt`: how long Ctrl-C takes to stop the cells
//! that are running.
//!
//! Each case runs `cellrun run --json` on a notebook whose cells never end,
//! waits until every cell that can run at once has started (and 100 ms more),
//! sends SIGINT and reads the events as they arrive: the figure is the time
//! from the signal to the last running cell's `cell_finished` with status
//! `interrupted`, and to the process's exit (which must be status 130).
//! The signal is sent by `kill -INT`, whose own start (about a millisecond)
//! is inside the figures.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One notebook and how it is run.
struct Case {
    name: &'static str,
    file: &'static str,
    text: String,
    jobs: usize,
    /// The cells running when the signal is sent.
    running: usize,
}

/// A Rhai notebook of `n` independent cells that never end, after a root.
fn rhai_busy(n: usize) -> String {
    let mut text = String::from("// %% root\nlet n = 0;\n");
    for i in 0..n {
        let _ = writeln!(text, "// %% busy{i}\nlet s{i} = n;\nloop {{ s{i} += 1; }}");
    }
    text
}

/// A marimo notebook of one Python cell that never ends, and one reading it.
fn python_busy() -> String {
    "import marimo\n\napp = marimo.App()\n\n\n@app.cell\ndef busy():\n    s = 0\n    \
     while True:\n        s += 1\n    return (s,)\n\n\n@app.cell\ndef after(s):\n    t = s\n    \
     return\n\n\nif __name__ == \"__main__\":\n    app.run()\n"
        .to_owned()
}

/// Appends the interrupt section to `report`. The Python case needs the
/// python plugin beside `cellrun` and the virtual environment of `.ci/run`;
/// without them it is left out with a line saying so.
pub(crate) fn run(
    root: &Path,
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    let mut cases = vec![
        Case {
            name: "Rhai, 1 cell running, --jobs 1",
            file: "interrupt_1.rhai",
            text: rhai_busy(2),
            jobs: 1,
            running: 1,
        },
        Case {
            name: "Rhai, 2 cells running, --jobs 2",
            file: "interrupt_2.rhai",
            text: rhai_busy(2),
            jobs: 2,
            running: 2,
        },
        Case {
            name: "Rhai, 4 cells running, 2 queued, --jobs 4",
            file: "interrupt_4.rhai",
            text: rhai_busy(6),
            jobs: 4,
            running: 4,
        },
    ];
    let venv = root.join("target/py-venv");
    let python_ready = venv.join("bin/python").is_file()
        && cellrun
            .with_file_name(format!(
                "{}plugin_python{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            ))
            .is_file();
    if python_ready {
        cases.push(Case {
            name: "Python, 1 cell running Python code",
            file: "interrupt_python.py",
            text: python_busy(),
            jobs: 1,
            running: 1,
        });
    }
    writeln!(
        report,
        "\nCtrl-C (SIGINT) while cells run: from the signal to the last running \
         cell's `interrupted` event and to the exit, {repeats} runs each.\n"
    )?;
    writeln!(
        report,
        "| case | to last cell interrupted: median | max | to exit: median | max |"
    )?;
    writeln!(report, "|---|---|---|---|---|")?;
    for case in &cases {
        let path = out_dir.join(case.file);
        fs::write(&path, &case.text)?;
        let mut stopped = Vec::with_capacity(repeats);
        let mut exited = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let (to_stop, to_exit) = once(cellrun, &venv, &path, case)
                .with_context(|| format!("case `{}`", case.name))?;
            stopped.push(to_stop);
            exited.push(to_exit);
        }
        stopped.sort();
        exited.sort();
        writeln!(
            report,
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
            case.name,
            crate::bench::ms(stopped[repeats / 2]),
            crate::bench::ms(stopped[repeats - 1]),
            crate::bench::ms(exited[repeats / 2]),
            crate::bench::ms(exited[repeats - 1]),
        )?;
    }
    if !python_ready {
        writeln!(
            report,
            "\nThe Python case needs `target/py-venv` and the python plugin beside the \
             release `cellrun`; it was left out."
        )?;
    }
    Ok(())
}

/// One run of `case`: the times from SIGINT to the last running cell's
/// `interrupted` event and to the exit.
fn once(
    cellrun: &Path,
    venv: &Path,
    path: &Path,
    case: &Case,
) -> anyhow::Result<(Duration, Duration)> {
    let mut child = Command::new(cellrun)
        .arg("run")
        .arg(path)
        .args(["--json", "--jobs", &case.jobs.to_string()])
        .env("VIRTUAL_ENV", venv)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", cellrun.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (send, lines) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let mut started = 0;
    while started < case.running {
        let (_, line) = lines
            .recv_timeout(Duration::from_secs(30))
            .context("the busy cells did not start")?;
        if line.starts_with(r#"{"event":"cell_started""#) && line.contains(r#""cell":"busy"#) {
            started += 1;
        }
    }
    thread::sleep(Duration::from_millis(100));
    let signal = Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("kill -INT failed");
    }
    let mut interrupted = 0;
    let mut last = None;
    while let Ok((at, line)) = lines.recv_timeout(Duration::from_secs(30)) {
        if line.starts_with(r#"{"event":"cell_finished""#)
            && line.contains(r#""cell":"busy"#)
            && line.contains(r#""status":"interrupted""#)
        {
            interrupted += 1;
            if interrupted == case.running {
                last = Some(at - signal);
            }
        }
    }
    let exit = child.wait()?;
    let to_exit = signal.elapsed();
    let _ = reader.join();
    if exit.code() != Some(130) {
        bail!("cellrun exited with {exit}, not 130");
    }
    let to_stop = last.with_context(|| {
        format!(
            "{interrupted} of {} running cells were reported interrupted",
            case.running
        )
    })?;
    Ok((to_stop, to_exit))
}
