//! `cargo xtask fuzz [--seconds N] [--seed N]`: runs `cellrun` on random
//! notebooks for a time budget and fails on the first run that misbehaves.
//!
//! Notebooks are made of random cells from a small grammar of Rhai
//! fragments, valid and broken: definitions, functions, closures, loops,
//! throws, `sleep`, large allocations, computed calls, imports, terminal
//! escapes, stray markers and every kind of line break. Each notebook runs
//! through `cellrun run --json` (with a timeout and a memory limit, and
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
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "runner", "--bin", "cellrun"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("building cellrun failed");
    }
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
        let notebook = notebook(&mut random);
        let path = work.join("nb.rhai");
        fs::write(&path, &notebook)?;
        let mut extra: Vec<String> = Vec::new();
        if random.below(4) == 0 {
            extra.push("--strict".to_owned());
        }
        if random.below(4) == 0 {
            extra.push(format!("--cache={}", work.join("cache").display()));
        }
        let problem = check_run(&cellrun, &work, &extra)
            .and_then(|()| check_check(&cellrun, &work))
            .err();
        n_runs += 1;
        if let Some(problem) = problem {
            let kept = failures.join(format!("{seed}-{n_runs}.rhai"));
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

/// A random notebook of up to 12 cells.
fn notebook(random: &mut Random) -> String {
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

/// What `cellrun` printed and how it ended.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cellrun ARGS` in `dir` with no input, killing it past `deadline`.
fn cellrun(
    cellrun: &Path,
    dir: &Path,
    args: &[String],
    deadline: Duration,
) -> anyhow::Result<Finished> {
    let started = Instant::now();
    let mut child = Command::new(cellrun)
        .args(args)
        .current_dir(dir)
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

/// `cellrun run nb.rhai --json` keeps its contract.
fn check_run(path: &Path, dir: &Path, extra: &[String]) -> anyhow::Result<()> {
    let mut args: Vec<String> = [
        "run",
        "nb.rhai",
        "--json",
        "--timeout",
        "2",
        "--max-memory",
        "256",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend_from_slice(extra);
    let run = cellrun(path, dir, &args, Duration::from_secs(120))?;
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
    let Some(started) = events.first().filter(|event| kind(event) == "run_started") else {
        bail!("the first event is not run_started");
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

/// `cellrun check nb.rhai --json` prints one JSON document or a usage error.
fn check_check(path: &Path, dir: &Path) -> anyhow::Result<()> {
    let args = ["check", "nb.rhai", "--json"].map(str::to_owned);
    let check = cellrun(path, dir, &args, Duration::from_secs(60))?;
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
