//! `cargo xtask fuzz [--seconds N] [--seed N]`: runs `cellrun` on random
//! notebooks for a time budget and fails on the first run that misbehaves.
//!
//! Notebooks alternate between Rhai (percent format) and marimo's Python
//! format. Rhai cells come from a small grammar of fragments, valid and
//! broken: definitions, functions, closures, loops, throws, `sleep`, large
//! allocations, computed calls, imports, terminal escapes, stray markers and
//! every kind of line break. Python notebooks mix every kind of marimo cell
//! (`@app.cell` with and without arguments, `async`, `@app.function`,
//! `@app.class_definition`, the setup cell, unparsable cells, stray
//! statements) with statements that fail, loop, sleep, allocate, recurse,
//! print, await, read stdin, exit, nest past CPython's limits or do not
//! parse; they run with the python plugin built beside `cellrun`. Each
//! notebook runs through `cellrun run --json` (with a timeout and a memory limit, and
//! sometimes `--strict` or `--cache`) and `cellrun check --json`. A run
//! misbehaves when it dies from a signal, takes longer than its limits
//! allow, exits with a code the docs do not list, prints a panic or an
//! internal error, or breaks the JSON contract (a line that is not JSON,
//! not exactly one `cell_finished` per planned cell, not exactly one
//! `run_finished` last). The offending notebook is kept under
//! `target/fuzz/failures/`, and `--seed` replays a sequence.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{cargo, project_root};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds: u64 = flag(args, "--seconds").unwrap_or(Ok(60))?;
    let seed: u64 = match flag(args, "--seed") {
        Some(seed) => seed?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64 | 1),
    };
    let root = project_root();
    // The python plugin beside `cellrun`, where a run finds it by default.
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "runner", "--bin", "cellrun"])
        .args(["-p", "plugin-python"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("building cellrun and the python plugin failed");
    }
    // The environment `.ci/run` makes, when there is one (marimo imports).
    let venv = root.join("target/py-venv");
    let cellrun = root.join("target/release/cellrun");
    let work = root.join("target/fuzz");
    let failures = work.join("failures");
    fs::create_dir_all(&failures)?;
    println!("fuzzing cellrun for {seconds} s with --seed {seed}");

    let mut random = Random(seed);
    let budget = Duration::from_secs(seconds);
    let started = Instant::now();
    let mut n_runs = 0u64;
    while started.elapsed() < budget {
        let (name, notebook) = if n_runs % 2 == 0 {
            ("nb.rhai", rhai_notebook(&mut random))
        } else {
            ("nb.py", python_notebook(&mut random))
        };
        fs::write(work.join(name), &notebook)?;
        let mut extra: Vec<String> = Vec::new();
        if random.below(4) == 0 {
            extra.push("--strict".to_owned());
        }
        if random.below(4) == 0 {
            extra.push(format!("--cache={}", work.join("cache").display()));
        }
        let run = Cellrun {
            path: &cellrun,
            dir: &work,
            venv: venv.is_dir().then_some(venv.as_path()),
        };
        let problem = check_run(&run, name, &extra)
            .and_then(|()| check_check(&run, name))
            .err();
        n_runs += 1;
        if let Some(problem) = problem {
            let kept = failures.join(format!("{seed}-{n_runs}-{name}"));
            fs::write(&kept, &notebook)?;
            bail!(
                "run {n_runs} misbehaved: {problem:#}\nnotebook kept as {} (flags {extra:?}); replay with --seed {seed}",
                kept.display()
            );
        }
    }
    println!(
        "{n_runs} notebooks in {:.0} s, no misbehaviour",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The value of `--name N`, if given.
fn flag(args: &[String], name: &str) -> Option<anyhow::Result<u64>> {
    let at = args.iter().position(|arg| arg == name)?;
    Some(
        args.get(at + 1)
            .with_context(|| format!("{name} needs a number"))
            .and_then(|text| {
                text.parse()
                    .with_context(|| format!("{name} takes a number, not `{text}`"))
            }),
    )
}

/// A small xorshift generator: reproducible from its seed, no dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Statements a cell is made of; `N` is replaced by a small number and `V`
/// by a variable name.
const STATEMENTS: &[&str] = &[
    "let V = N;",
    "let V = [N, V, \"s\"];",
    "const V = #{a: N, b: [V]};",
    "V += N;",
    "V.push(N);",
    "fn fV(x) { x * V + N }",
    "fV(N)",
    "let V = |y| y + V;",
    "let V = Fn(\"fV\");",
    "call(Fn(\"f\" + \"V\"), N)",
    "import \"nowhere\" as m;",
    "for i in 0..N { V += i; }",
    "while V < N { V += 1; }",
    "loop { V += 1; if V > N { break; } }",
    "throw \"boom N\";",
    "throw;",
    "V / 0",
    "print(`V is ${V}`);",
    "debug(V);",
    "print(\"\\x1b[31mred\\x1b]0;title\\x07\");",
    "sleep(0.0N);",
    "blob(N000000000);",
    "let V = blob(N00000);",
    "let s = \"x\"; s.pad(N0000000, 'y');",
    "let a = []; a.pad(N000000, 0);",
    "fn deep(n) { deep(n + 1) } deep(0)",
    "let V = `multi",
    "line`;",
    "V.len()",
    "let V = 1 +",
    "{",
    "}",
    "eval(\"1\")",
    "let _p = N;",
    "V",
];

/// A random Rhai notebook of up to 12 cells.
fn rhai_notebook(random: &mut Random) -> String {
    let breaks = ["\n", "\n", "\n", "\r\n", "\r"];
    let newline = random.pick(&breaks);
    let mut text = String::new();
    if random.below(8) == 0 {
        text.push('\u{feff}');
    }
    for index in 0..=random.below(12) {
        let marker = match random.below(6) {
            0 => "// %%".to_owned(),
            1 => format!("  // %% c{index} [opt: k=v]"),
            2 => "// %% dup".to_owned(),
            3 => format!("// %% c{index}\u{1b}[2J"),
            _ => format!("// %% c{index}"),
        };
        text.push_str(&marker);
        text.push_str(newline);
        for _ in 0..=random.below(4) {
            let statement = random
                .pick(STATEMENTS)
                .replace('V', random.pick(&["x", "y", "z", "total", "_q"]))
                .replace('N', &(1 + random.below(9)).to_string());
            text.push_str(&statement);
            text.push_str(if random.below(10) == 0 { "\r" } else { newline });
        }
    }
    text
}

/// Python statements a cell is made of; `N` is replaced by a small number
/// and `V` by a variable name (no other capital V or N appears). None ends
/// the process itself (`os._exit`, a signal to itself): a cell may do that,
/// and no runner survives it.
const PY_STATEMENTS: &[&str] = &[
    "V = N",
    "V = [N, V, 's']",
    "V += N",
    "V.append(N)",
    "def fV(x):\n    return x * V + N",
    "fV(N)",
    "V = lambda y: y + V",
    "class KV:\n    value = N\n    def get(self):\n        return self.value + V",
    "KV().get()",
    "import math\nV = math.sqrt(N)",
    "import nowhere_to_be_found",
    "from os import path as V",
    "import marimo as mo\nmo.md(f'**{V}**')",
    "for i in range(N):\n    V += i",
    "while V < N:\n    V += 1",
    "while True:\n    V += 1",
    "raise RuntimeError('boom N')",
    "raise SystemExit(N)",
    "import sys\nsys.exit(N)",
    "V / 0",
    "print(f'V is {V}')",
    "print('\\x1b[31mred\\x1b]0;title\\x07')",
    "import sys\nsys.stderr.write('to stderr N\\n')",
    "import time\ntime.sleep(0.0N)",
    "V = bytearray(N00000000)",
    "V = [0] * N0000000",
    "def deep(n):\n    return deep(n + 1)\ndeep(0)",
    "import asyncio\nawait asyncio.sleep(0.0N)",
    "input()",
    "V = (yield N)",
    "return N",
    "nonlocal V",
    "global V\nV = N",
    "del V",
    "(V := N)",
    "[V for V in range(N)]",
    "try:\n    V = 1 / 0\nexcept ZeroDivisionError as _e:\n    V = N",
    "V = {",
    "V = (N,",
    "if V:\n  pass\n    broken = N",
    "V = '''multi\nline'''",
    "_private = N",
    "V",
    "V;",
    "N +",
    "𝔘 = N",
    "V = '\\u0000'",
    "import gc\ngc.collect()",
];

/// A random marimo notebook of up to 10 cells, sometimes with a broken
/// header or statements outside the cells.
fn python_notebook(random: &mut Random) -> String {
    let newline = random.pick(&["\n", "\n", "\n", "\r\n"]);
    let mut text = String::new();
    if random.below(8) == 0 {
        text.push('\u{feff}');
    }
    match random.below(10) {
        0 => {}
        1 => text.push_str("import marimo\napp = marimo.App(width=\n"),
        _ => text.push_str("import marimo\n\n__generated_with = \"0.25.2\"\napp = marimo.App()\n"),
    }
    if random.below(4) == 0 {
        text.push_str("\nwith app.setup:\n    import math\n    base = 2\n");
    }
    for index in 0..=random.below(10) {
        let header = match random.below(12) {
            0 => format!("@app.cell(hide_code=True)\ndef c{index}(x, y):"),
            1 => "@app.cell\ndef _():".to_owned(),
            2 => format!("@app.cell\nasync def c{index}():"),
            3 => "@app.cell\ndef dup():".to_owned(),
            4 => format!("@app.function\ndef f{index}(v):"),
            5 => format!("@app.class_definition\nclass K{index}:"),
            6 => {
                text.push_str(&format!(
                    "\napp._unparsable_cell(\n    r\"\"\"\n    not python {index}\n    \"\"\",\n    name=\"u{index}\"\n)\n"
                ));
                continue;
            }
            7 => {
                text.push_str(&format!("\nstray_{index} = 1\n"));
                continue;
            }
            _ => format!("@app.cell\ndef c{index}():"),
        };
        text.push_str("\n\n");
        text.push_str(&header);
        text.push('\n');
        for _ in 0..=random.below(4) {
            let name = random.pick(&["x", "y", "z", "total", "_q", "base"]);
            let number = (1 + random.below(9)).to_string();
            let statement = match random.below(40) {
                0 => format!("{name} = {}0{}", "[".repeat(201), "]".repeat(201)),
                1 => {
                    let mut block = String::new();
                    for level in 0..100 {
                        block.push_str(&" ".repeat(level));
                        block.push_str("if True:\n");
                    }
                    block.push_str(&" ".repeat(100));
                    block.push_str("pass");
                    block
                }
                2 => format!("{name} = {}1", "-".repeat(20_000)),
                _ => random
                    .pick(PY_STATEMENTS)
                    .replace('V', name)
                    .replace('N', &number),
            };
            for line in statement.split('\n') {
                text.push_str("    ");
                text.push_str(line);
                text.push_str(newline);
            }
        }
        text.push_str(random.pick(&["    return\n", "    return (x,)\n", "    return x\n", ""]));
    }
    if random.below(2) == 0 {
        text.push_str("\n\nif __name__ == \"__main__\":\n    app.run()\n");
    }
    text
}

/// What `cellrun` printed and how it ended.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// The `cellrun` under test, the directory it runs in and the virtual
/// environment its Python notebooks see.
struct Cellrun<'a> {
    path: &'a Path,
    dir: &'a Path,
    venv: Option<&'a Path>,
}

/// Runs `cellrun ARGS` in its directory with no input, killing it past
/// `deadline`.
fn cellrun(cellrun: &Cellrun<'_>, args: &[String], deadline: Duration) -> anyhow::Result<Finished> {
    let started = Instant::now();
    let mut command = Command::new(cellrun.path);
    match cellrun.venv {
        Some(venv) => command.env("VIRTUAL_ENV", venv),
        None => command.env_remove("VIRTUAL_ENV"),
    };
    let mut child = command
        .args(args)
        .current_dir(cellrun.dir)
        .env("NO_COLOR", "1")
        .env_remove("CELLRUN_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start cellrun")?;
    let out = read_all(child.stdout.take());
    let err = read_all(child.stderr.take());
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("cellrun {args:?} did not end within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let finished = Finished {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: started.elapsed(),
    };
    if finished.code.is_none() {
        bail!(
            "cellrun {args:?} died from a signal ({status}); stderr: {}",
            finished.stderr
        );
    }
    for sign in ["panicked", "internal error", "RUST_BACKTRACE"] {
        if finished.stderr.contains(sign) {
            bail!("cellrun {args:?} printed `{sign}`: {}", finished.stderr);
        }
    }
    Ok(finished)
}

/// Reads `pipe` to its end on a thread of its own (so a full pipe never
/// blocks the child).
fn read_all<R: std::io::Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// `cellrun run NOTEBOOK --json` keeps its contract.
fn check_run(under_test: &Cellrun<'_>, notebook: &str, extra: &[String]) -> anyhow::Result<()> {
    let mut args: Vec<String> = [
        "run",
        notebook,
        "--json",
        "--timeout",
        "2",
        "--max-memory",
        "256",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend_from_slice(extra);
    let run = cellrun(under_test, &args, Duration::from_secs(120))?;
    match run.code {
        Some(0 | 1) => {}
        // A notebook that cannot be split (two cells of one name, a bad option).
        Some(2) if run.stdout.is_empty() => return Ok(()),
        other => bail!("exit code {other:?}; stderr: {}", run.stderr),
    }
    let events: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).with_context(|| format!("not JSON: {line:?}")))
        .collect::<anyhow::Result<_>>()?;
    let kind = |event: &Value| event["event"].as_str().unwrap_or_default().to_owned();
    // Warnings about the notebook itself come before the run starts.
    let Some(started) = events
        .iter()
        .find(|event| kind(event) != "warning")
        .filter(|event| kind(event) == "run_started")
    else {
        bail!("the first event but warnings is not run_started");
    };
    let planned: Vec<&str> = started["cells"]
        .as_array()
        .context("run_started has no cells")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut finished: Vec<&str> = events
        .iter()
        .filter(|event| kind(event) == "cell_finished")
        .filter_map(|event| event["cell"].as_str())
        .collect();
    finished.sort_unstable();
    let mut expected = planned.clone();
    expected.sort_unstable();
    if finished != expected {
        bail!("cell_finished events {finished:?} for planned cells {expected:?}");
    }
    let ends: Vec<&Value> = events
        .iter()
        .filter(|event| kind(event) == "run_finished")
        .collect();
    if ends.len() != 1 || kind(events.last().unwrap_or(&Value::Null)) != "run_finished" {
        bail!("not exactly one run_finished, last");
    }
    // Every cell may take the timeout, and the run some more.
    let allowed = Duration::from_secs(2 * planned.len() as u64 + 30);
    if run.elapsed > allowed {
        bail!("the run took {:?} for {} cells", run.elapsed, planned.len());
    }
    Ok(())
}

/// `cellrun check NOTEBOOK --json` prints one JSON document or a usage error.
fn check_check(under_test: &Cellrun<'_>, notebook: &str) -> anyhow::Result<()> {
    let args = ["check", notebook, "--json"].map(str::to_owned);
    let check = cellrun(under_test, &args, Duration::from_secs(60))?;
    match check.code {
        Some(0 | 1) => {
            serde_json::from_str::<Value>(check.stdout.trim())
                .with_context(|| format!("check printed no JSON document: {:?}", check.stdout))?;
            Ok(())
        }
        Some(2) if check.stdout.is_empty() => Ok(()),
        other => bail!("check exit code {other:?}; stderr: {}", check.stderr),
    }
}
