//! `cargo xtask bench`: how fast the pipeline is, measured end to end.
//!
//! Times `cellrun run` (release build, stdout discarded) on generated
//! linear chains and fan-outs of trivial cells at several sizes, reports the
//! time per cell and the ratio between sizes, then runs the in-process
//! benchmarks of the `scheduler` crate (pipeline without Rhai evaluation,
//! analysis and graph of 100,000 cells). Results go to
//! `target/bench/results.md`. `--jobs 2` is compared with `--jobs 1` on
//! CPU-bound and trivial cells.
//!
//! One section alone: `cargo xtask bench report|watch|medium-cache|plugin-reads|subprocess|parallel`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{cargo, project_root};

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let quick = args.iter().any(|arg| arg == "--quick");
    let root = project_root();
    let out_dir = root.join("target/bench");
    fs::create_dir_all(&out_dir)?;

    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "runner", "--bin", "cellrun"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("building cellrun failed");
    }
    let cellrun = root.join("target/release/cellrun");
    if args.iter().any(|arg| arg == "report") {
        let mut report = String::new();
        html_report(&cellrun, &out_dir, if quick { 3 } else { 5 }, &mut report)?;
        print!("{report}");
        return Ok(());
    }
    if args.iter().any(|arg| arg == "watch") {
        let mut report = String::new();
        watch_latency(&cellrun, &out_dir, if quick { 5 } else { 15 }, &mut report)?;
        print!("{report}");
        return Ok(());
    }
    if args.iter().any(|arg| arg == "plugin-reads") {
        let mut report = String::new();
        plugin_reads(&root, &mut report)?;
        print!("{report}");
        return Ok(());
    }
    if args.iter().any(|arg| arg == "subprocess") {
        let mut report = String::new();
        subprocess(
            &root,
            &cellrun,
            &out_dir,
            if quick { 3 } else { 5 },
            &mut report,
        )?;
        print!("{report}");
        return Ok(());
    }
    if args.iter().any(|arg| arg == "python") {
        // The Python section alone: it takes minutes, most of them marimo's.
        let mut report = String::new();
        crate::python_bench::run(&root, &cellrun, &out_dir, quick, &mut report)?;
        print!("{report}");
        return Ok(());
    }
    if args.iter().any(|arg| arg == "interrupt") {
        if root.join("target/py-venv/bin/python").is_file() {
            release_plugin(&root, "python")?;
        }
        let mut report = String::new();
        crate::interrupt_bench::run(
            &root,
            &cellrun,
            &out_dir,
            if quick { 5 } else { 15 },
            &mut report,
        )?;
        print!("{report}");
        return Ok(());
    }
    if args.iter().any(|arg| arg == "medium-cache") {
        // One case alone, for a quick figure.
        let mut report = String::new();
        medium_cache(&cellrun, &out_dir, if quick { 3 } else { 5 }, &mut report)?;
        print!("{report}");
        return Ok(());
    }
    if args
        .iter()
        .any(|arg| arg == "parallel" || arg == "--parallel")
    {
        let mut report = String::from("# cellrun benchmarks: --jobs\n");
        parallel(&cellrun, &out_dir, if quick { 3 } else { 7 }, &mut report)?;
        print!("{report}");
        let results = out_dir.join("parallel.md");
        fs::write(&results, report)?;
        println!("\nwritten to {}", results.display());
        return Ok(());
    }

    let sizes: &[usize] = if quick {
        &[1_000, 2_000]
    } else {
        &[5_000, 10_000, 20_000]
    };
    let repeats = if quick { 3 } else { 7 };
    let mut report = String::from("# cellrun benchmarks\n\n");
    writeln!(
        report,
        "End to end: `cellrun run NOTEBOOK > /dev/null`, best and median of {repeats} runs.\n"
    )?;
    writeln!(report, "| shape | cells | best | median | best per cell |")?;
    writeln!(report, "|---|---|---|---|---|")?;
    for shape in [Shape::Chain, Shape::Fan] {
        let mut per_size = Vec::new();
        for &n in sizes {
            let path = out_dir.join(format!("{}_{n}.rhai", shape.name()));
            fs::write(&path, shape.generate(n))?;
            let times = time_runs(&cellrun, &path, &[], repeats)?;
            let best = times[0];
            let median = times[times.len() / 2];
            let per_cell = best.as_secs_f64() * 1e6 / n as f64;
            writeln!(
                report,
                "| {} | {n} | {:.1} ms | {:.1} ms | {per_cell:.2} µs |",
                shape.name(),
                ms(best),
                ms(median)
            )?;
            per_size.push((n, best));
        }
        for pair in per_size.windows(2) {
            let ((n1, t1), (n2, t2)) = (pair[0], pair[1]);
            writeln!(
                report,
                "| {} ratio | {n2}/{n1} = {:.1}x cells | {:.2}x time | | |",
                shape.name(),
                n2 as f64 / n1 as f64,
                t2.as_secs_f64() / t1.as_secs_f64()
            )?;
        }
    }
    reads_and_cache(&cellrun, &out_dir, repeats, &mut report)?;
    parallel(&cellrun, &out_dir, repeats, &mut report)?;
    crate::interrupt_bench::run(&root, &cellrun, &out_dir, repeats, &mut report)?;
    plugins(&root, &cellrun, &out_dir, repeats, &mut report)?;
    plugin_reads(&root, &mut report)?;
    subprocess(&root, &cellrun, &out_dir, repeats.min(5), &mut report)?;
    if let Err(err) = crate::slurm_bench::executor(&root, &cellrun, &out_dir, &mut report) {
        writeln!(report, "\nThe slurm executor: not measured: {err:#}")?;
    }
    watch_latency(&cellrun, &out_dir, repeats, &mut report)?;
    html_report(&cellrun, &out_dir, repeats.min(5), &mut report)?;
    crate::python_bench::run(&root, &cellrun, &out_dir, quick, &mut report)?;
    print!("{report}");

    println!("\nIn-process benchmarks (divan):");
    let output = Command::new(cargo())
        .args(["bench", "-p", "scheduler", "--bench", "pipeline"])
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()?;
    let divan = String::from_utf8_lossy(&output.stdout);
    print!("{divan}");
    if !output.status.success() {
        bail!("the pipeline benchmarks failed");
    }
    writeln!(
        report,
        "\nIn-process (`cargo bench -p scheduler --bench pipeline`):\n\n```text\n{divan}```"
    )?;
    let results = out_dir.join("results.md");
    fs::write(&results, report)?;
    println!("\nwritten to {}", results.display());
    Ok(())
}

#[derive(Clone, Copy)]
pub(crate) enum Shape {
    /// `x_i = x_{i-1} + 1`: depth n.
    Chain,
    /// `c_i = root + i`: depth 2.
    Fan,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::Fan => "fan",
        }
    }

    pub(crate) fn generate(self, n: usize) -> String {
        let mut text = String::with_capacity(n * 32);
        for i in 0..n {
            let _ = match (self, i) {
                (Shape::Chain, 0) => writeln!(text, "// %% c0\nlet x_0 = 0;"),
                (Shape::Chain, i) => writeln!(text, "// %% c{i}\nlet x_{i} = x_{} + 1;", i - 1),
                (Shape::Fan, 0) => writeln!(text, "// %% root\nlet root = 0;"),
                (Shape::Fan, i) => writeln!(text, "// %% c{i}\nlet c_{i} = root + {i};"),
            };
        }
        text
    }
}

/// Reading a large value from many cells, and the cell cache.
fn reads_and_cache(
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    // A 1,000,000-element array read by 1 cell and by 100 cells.
    let readers = |n: usize| {
        let mut text = String::from("// %% make\nlet xs = [];\nxs.pad(1000000, 1);\n");
        for i in 0..n {
            let _ = writeln!(text, "// %% read{i}\nlet n{i} = xs.len() + xs[{i}];");
        }
        text
    };
    let one = out_dir.join("read_1.rhai");
    let hundred = out_dir.join("read_100.rhai");
    fs::write(&one, readers(1))?;
    fs::write(&hundred, readers(100))?;
    let t1 = time_runs(cellrun, &one, &[], repeats)?[0];
    let t100 = time_runs(cellrun, &hundred, &[], repeats)?[0];
    writeln!(
        report,
        "\nA 1,000,000-element array read by 1 cell: {:.1} ms; by 100 cells: {:.1} ms ({:.2}x).",
        ms(t1),
        ms(t100),
        t100.as_secs_f64() / t1.as_secs_f64()
    )?;

    // A heavy cell (about a second) re-run from the cache.
    let heavy = out_dir.join("heavy.rhai");
    fs::write(&heavy, "// %% heavy\nlet total = 0;\nfor i in 0..12000000 { total += i % 7; }\ntotal\n// %% after\ntotal + 1\n")?;
    let cache_dir = out_dir.join("cache");
    let _ = fs::remove_dir_all(&cache_dir);
    let cache_arg = format!("--cache={}", cache_dir.display());
    let cold = time_runs(cellrun, &heavy, &[&cache_arg], 1)?[0];
    let warm = time_runs(cellrun, &heavy, &[&cache_arg], repeats)?[0];
    writeln!(
        report,
        "Heavy cell: first run {:.1} ms, from the cache {:.1} ms ({:.0}x faster).",
        ms(cold),
        ms(warm),
        cold.as_secs_f64() / warm.as_secs_f64()
    )?;

    // The cache's cost on 1,000 trivial cells (warm cache) against no cache.
    let trivial = out_dir.join("chain_1000.rhai");
    fs::write(&trivial, Shape::Chain.generate(1000))?;
    let _ = fs::remove_dir_all(&cache_dir);
    let plain = time_runs(cellrun, &trivial, &[], repeats)?[0];
    time_runs(cellrun, &trivial, &[&cache_arg], 1)?;
    let cached = time_runs(cellrun, &trivial, &[&cache_arg], repeats)?[0];
    writeln!(
        report,
        "1,000 trivial cells: {:.1} ms without the cache, {:.1} ms from a warm cache ({:.2}x).",
        ms(plain),
        ms(cached),
        cached.as_secs_f64() / plain.as_secs_f64()
    )?;
    let _ = fs::remove_dir_all(&cache_dir);
    medium_cache(cellrun, out_dir, repeats, report)
}

/// The cache on a medium value: a 1,000,000-integer array computed by one
/// cell and read by another, live, stored (cold) and restored (warm), with
/// the peak resident memory of each run where `/usr/bin/time` can tell it.
fn medium_cache(
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    let notebook = out_dir.join("medium.rhai");
    fs::write(
        &notebook,
        "// %% make\nlet xs = [];\nfor i in 0..1000000 { xs.push(i * 7); }\n// %% use\nxs.len() + xs[999999]\n",
    )?;
    let cache_dir = out_dir.join("cache-medium");
    let _ = fs::remove_dir_all(&cache_dir);
    let cache_arg = format!("--cache={}", cache_dir.display());
    let live = time_runs(cellrun, &notebook, &[], repeats)?[0];
    let live_rss = peak_rss(cellrun, &notebook, &[]);
    let cold = time_runs(cellrun, &notebook, &[&cache_arg], 1)?[0];
    let _ = fs::remove_dir_all(&cache_dir);
    let cold_rss = peak_rss(cellrun, &notebook, &[&cache_arg]);
    let warm = time_runs(cellrun, &notebook, &[&cache_arg], repeats)?[0];
    let warm_rss = peak_rss(cellrun, &notebook, &[&cache_arg]);
    let rss = |kib: Option<u64>| {
        kib.map_or_else(
            || "-".to_owned(),
            |kib| format!("{:.0} MiB", kib as f64 / 1024.0),
        )
    };
    writeln!(
        report,
        "\nA 1,000,000-integer array: live {:.1} ms (peak {}), first run with the cache {:.1} ms ({:.2}x, peak {}), from the cache {:.1} ms ({:.2}x, peak {}).",
        ms(live),
        rss(live_rss),
        ms(cold),
        cold.as_secs_f64() / live.as_secs_f64(),
        rss(cold_rss),
        ms(warm),
        warm.as_secs_f64() / live.as_secs_f64(),
        rss(warm_rss),
    )?;
    let _ = fs::remove_dir_all(&cache_dir);
    Ok(())
}

/// The peak resident memory of one run in KiB, from `/usr/bin/time`, if
/// it is there.
fn peak_rss(cellrun: &Path, notebook: &Path, args: &[&str]) -> Option<u64> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(cellrun)
        .arg("run")
        .arg(notebook)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// Builds `plugins/NAME` in release and returns its library.
pub(crate) fn release_plugin(root: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", &format!("plugin-{name}")])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the {name} plugin failed");
    }
    Ok(root.join("target/release").join(format!(
        "{}plugin_{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )))
}

/// The cost of plugins: loading many libraries, and running through one.
fn plugins(
    root: &Path,
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    let library = release_plugin(root, "passthrough")?;
    let one_dir = out_dir.join("plugins-1");
    let fifty_dir = out_dir.join("plugins-50");
    for dir in [&one_dir, &fifty_dir] {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir)?;
    }
    fs::copy(
        &library,
        one_dir.join(library.file_name().unwrap_or_default()),
    )?;
    for i in 0..50 {
        let name = format!(
            "{}plugin_{i:02}{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        fs::copy(&library, fifty_dir.join(name))?;
    }
    let single = out_dir.join("one_cell.rhai");
    fs::write(&single, "// %% only\n1 + 1\n")?;
    let plugin_dir = |dir: &Path| format!("--plugin-dir={}", dir.display());
    let bare = time_runs(cellrun, &single, &[], repeats * 3)?[0];
    let fifty = time_runs(cellrun, &single, &[&plugin_dir(&fifty_dir)], repeats * 3)?[0];
    writeln!(
        report,
        "\nA one-cell run: {:.1} ms without plugins, {:.1} ms inspecting 50 plugin libraries and constructing one (+{:.1} ms).",
        ms(bare),
        ms(fifty),
        ms(fifty.saturating_sub(bare))
    )?;

    // The 10,000-cell chain through the passthrough plugin and the built-in
    // executor, alternating, best of each.
    let chain = out_dir.join("chain_10000.rhai");
    fs::write(&chain, Shape::Chain.generate(10_000))?;
    let (mut best_default, mut best_plugin) = (Duration::MAX, Duration::MAX);
    for _ in 0..repeats {
        best_default = best_default.min(time_runs(cellrun, &chain, &[], 1)?[0]);
        best_plugin = best_plugin.min(time_runs(cellrun, &chain, &[&plugin_dir(&one_dir)], 1)?[0]);
    }
    writeln!(
        report,
        "10,000-cell chain: built-in `default` {:.1} ms, `passthrough` plugin {:.1} ms ({:+.1}%).",
        ms(best_default),
        ms(best_plugin),
        (best_plugin.as_secs_f64() / best_default.as_secs_f64() - 1.0) * 100.0
    )?;
    Ok(())
}

/// A plugin reading a 1,000,000-element array once and 100 times in one
/// call, through views, as a value it owns, and as copies: the in-process
/// benchmark `executor-host/benches/reads.rs`.
fn plugin_reads(root: &Path, report: &mut String) -> anyhow::Result<()> {
    let output = Command::new(cargo())
        .args(["bench", "-p", "executor-host", "--bench", "reads"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        bail!("the plugin read benchmark failed");
    }
    writeln!(
        report,
        "\nA plugin reading a 1,000,000-element array (its length and one item) in one call, best of several calls (`cargo bench -p executor-host --bench reads`):\n"
    )?;
    report.push_str(&String::from_utf8_lossy(&output.stdout));
    Ok(())
}

/// The `subprocess` executor on a 1,000-cell chain against the built-in
/// executor: each cell in a reused worker, and in a worker of its own.
fn subprocess(
    root: &Path,
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    let library = release_plugin(root, "subprocess")?;
    let dir = out_dir.join("plugins-subprocess");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    fs::copy(&library, dir.join(library.file_name().unwrap_or_default()))?;
    let n = 1_000;
    let chain = out_dir.join("chain_1000.rhai");
    fs::write(&chain, Shape::Chain.generate(n))?;
    let plugin_dir = format!("--plugin-dir={}", dir.display());
    let (mut built_in, mut reused, mut fresh) = (Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..repeats {
        built_in = built_in.min(time_runs(cellrun, &chain, &[], 1)?[0]);
        reused = reused.min(time_runs(cellrun, &chain, &[&plugin_dir], 1)?[0]);
        fresh = fresh.min(
            time_runs(
                cellrun,
                &chain,
                &[&plugin_dir, "--plugin-opt", "subprocess.reuse=false"],
                1,
            )?[0],
        );
    }
    let per_cell = |total: Duration| total.saturating_sub(built_in).as_secs_f64() * 1e6 / n as f64;
    writeln!(
        report,
        "\n`subprocess` executor, {n}-cell chain, best of {repeats}: built-in `default` {:.1} ms; \
         reused workers {:.1} ms (+{:.0} µs a cell); a worker per cell {:.1} ms (+{:.0} µs a cell).",
        ms(built_in),
        ms(reused),
        per_cell(reused),
        ms(fresh),
        per_cell(fresh)
    )?;
    Ok(())
}

/// How long `cellrun watch` takes from a save to the end of its re-run, on
/// a 1,000-cell chain: an edit of the last cell re-runs one cell, an edit of
/// the first re-runs all of them. The debounce is part of the figure.
fn watch_latency(
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Write as _};

    let n = 1_000;
    let path = out_dir.join("watch_chain.rhai");
    let base = Shape::Chain.generate(n);
    writeln!(
        report,
        "\n`cellrun watch --json` on a {n}-cell chain: from writing the file to the \
         re-run's `run_finished`, best and median of {repeats} saves.\n"
    )?;
    writeln!(report, "| edit | cells re-run | debounce | best | median |")?;
    writeln!(report, "|---|---|---|---|---|")?;
    for debounce in [20, 100] {
        fs::write(&path, &base)?;
        let mut child = Command::new(cellrun)
            .arg("watch")
            .arg(&path)
            .args(["--json", "--debounce", &debounce.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", cellrun.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        let mut until_finished = || -> anyhow::Result<()> {
            for line in lines.by_ref() {
                if line?.starts_with(r#"{"event":"run_finished""#) {
                    return Ok(());
                }
            }
            bail!("cellrun watch ended early")
        };
        until_finished()?;
        let last = format!("let x_{} = x_{} + 1;", n - 1, n - 2);
        for (edit, cells) in [("last cell", 1), ("first cell", n)] {
            let mut times = Vec::with_capacity(repeats);
            for k in 1..=repeats {
                let text = if cells == 1 {
                    base.replace(&last, &format!("let x_{} = x_{} + {k};", n - 1, n - 2))
                } else {
                    base.replacen("let x_0 = 0;", &format!("let x_0 = {k};"), 1)
                };
                let start = Instant::now();
                fs::write(&path, text)?;
                until_finished()?;
                times.push(start.elapsed());
            }
            times.sort();
            writeln!(
                report,
                "| {edit} | {cells} | {debounce} ms | {:.1} ms | {:.1} ms |",
                ms(times[0]),
                ms(times[times.len() / 2])
            )?;
        }
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = writeln!(stdin, "q");
        }
        child.wait()?;
    }
    Ok(())
}

/// Wall times of `repeats` runs of `cellrun run NOTEBOOK ARGS`, sorted.
fn time_runs(
    cellrun: &Path,
    notebook: &Path,
    args: &[&str],
    repeats: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        let status = Command::new(cellrun)
            .arg("run")
            .arg(notebook)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", cellrun.display()))?;
        times.push(start.elapsed());
        if !status.success() {
            bail!("cellrun run {} failed with {status}", notebook.display());
        }
    }
    times.sort();
    Ok(times)
}

/// `--report` on notebooks of 1,000 and 10,000 cells with outputs and
/// printed text: the cost in the run, the page's size, and how long
/// headless Chromium takes to load and paint it (its start-up on an empty
/// page measured apart).
fn html_report(
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    writeln!(report, "\nHTML report (`--report`), best of {repeats}:\n")?;
    writeln!(
        report,
        "| cells | run | run with --report | page | Chromium: load and screenshot |"
    )?;
    writeln!(report, "|---|---|---|---|---|")?;
    let chromium = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("chromium"))
            .find(|path| path.is_file())
    });
    let open = |page: &Path| -> anyhow::Result<Option<Duration>> {
        let Some(chromium) = &chromium else {
            return Ok(None);
        };
        let mut best = Duration::MAX;
        for round in 0..repeats {
            let profile = out_dir.join(format!("chromium-profile-{round}"));
            let _ = fs::remove_dir_all(&profile);
            let start = Instant::now();
            let status = Command::new(chromium)
                .args([
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,1600",
                ])
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg(format!(
                    "--screenshot={}",
                    out_dir.join("report.png").display()
                ))
                .arg(format!("file://{}", page.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            best = best.min(start.elapsed());
            let _ = fs::remove_dir_all(&profile);
            if !status.success() {
                bail!("chromium failed on {} with {status}", page.display());
            }
        }
        Ok(Some(best))
    };
    let empty = out_dir.join("empty.html");
    fs::write(&empty, "<!DOCTYPE html><title>empty</title>")?;
    let baseline = open(&empty)?;
    for n in [1_000, 10_000] {
        let mut text = String::with_capacity(n * 64);
        for i in 0..n {
            if i == 0 {
                writeln!(text, "// %% c0\nlet x_0 = 0;\nx_0")?;
            } else {
                writeln!(
                    text,
                    "// %% c{i}\nlet x_{i} = x_{} + 1;\nprint(`step {i}`);\nx_{i}",
                    i - 1
                )?;
            }
        }
        let notebook = out_dir.join(format!("report_{n}.rhai"));
        fs::write(&notebook, text)?;
        let page = out_dir.canonicalize()?.join(format!("report_{n}.html"));
        let plain = time_runs(cellrun, &notebook, &[], repeats)?[0];
        let page_arg = page.display().to_string();
        let with_report = time_runs(cellrun, &notebook, &["--report", &page_arg], repeats)?[0];
        let size = fs::metadata(&page)?.len();
        let opened = match (open(&page)?, baseline) {
            (Some(opened), Some(baseline)) => format!(
                "{:.0} ms ({:.0} ms more than an empty page)",
                ms(opened),
                ms(opened.saturating_sub(baseline))
            ),
            _ => "not measured: no `chromium` on PATH".to_owned(),
        };
        writeln!(
            report,
            "| {n} | {:.1} ms | {:.1} ms | {:.1} MiB | {opened} |",
            ms(plain),
            ms(with_report),
            size as f64 / f64::from(1u32 << 20)
        )?;
    }
    Ok(())
}

/// Loop iterations of a CPU-bound cell: about half a second in a release
/// build on the development machine.
const CPU_CELL_ITERATIONS: usize = 2_500_000;

/// `--jobs 2` against `--jobs 1`: eight CPU-bound cells of a fan-out, and
/// 10,000-cell chains and fan-outs of trivial cells. Runs alternate between
/// the two settings so that a change in the machine's load hits both.
fn parallel(
    cellrun: &Path,
    out_dir: &Path,
    repeats: usize,
    report: &mut String,
) -> anyhow::Result<()> {
    let mut cpu = String::from("// %% root\nlet n = 0;\n");
    for i in 0..8 {
        let _ = writeln!(
            cpu,
            "// %% busy{i}\nlet s{i} = n;\nfor i in 0..{CPU_CELL_ITERATIONS} {{ s{i} += i; }}"
        );
    }
    let cpu_path = out_dir.join("cpu_fan_8.rhai");
    fs::write(&cpu_path, cpu)?;
    let mut cases = vec![(
        "fan-out of 8 CPU-bound cells".to_owned(),
        cpu_path,
        repeats.min(5),
    )];
    for shape in [Shape::Chain, Shape::Fan] {
        let path = out_dir.join(format!("{}_10000.rhai", shape.name()));
        fs::write(&path, shape.generate(10_000))?;
        cases.push((
            format!("{} of 10,000 trivial cells", shape.name()),
            path,
            repeats * 4,
        ));
    }
    writeln!(
        report,
        "\n`--jobs 2` against `--jobs 1`: runs in pairs, one of each, the order alternating from pair to pair; best and median of each, and the median of the pairs' ratios (on a shared machine the least disturbed by load that comes and goes):\n"
    )?;
    writeln!(
        report,
        "| case | pairs | --jobs 1 best | median | --jobs 2 best | median | speed-up (best) | speed-up (median) | speed-up (median pair) |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|---|---|---|")?;
    for (name, path, runs) in cases {
        let mut one = Vec::with_capacity(runs);
        let mut two = Vec::with_capacity(runs);
        let mut pairs = Vec::with_capacity(runs);
        for pair in 0..runs {
            let order: [&str; 2] = if pair % 2 == 0 {
                ["1", "2"]
            } else {
                ["2", "1"]
            };
            let mut times = [Duration::ZERO; 2];
            for jobs in order {
                let time = time_runs(cellrun, &path, &["--jobs", jobs], 1)?[0];
                times[usize::from(jobs == "2")] = time;
            }
            one.push(times[0]);
            two.push(times[1]);
            pairs.push(times[0].as_secs_f64() / times[1].as_secs_f64());
        }
        one.sort();
        two.sort();
        pairs.sort_by(f64::total_cmp);
        let (best1, median1) = (one[0], one[runs / 2]);
        let (best2, median2) = (two[0], two[runs / 2]);
        writeln!(
            report,
            "| {name} | {runs} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}x | {:.2}x | {:.2}x |",
            ms(best1),
            ms(median1),
            ms(best2),
            ms(median2),
            best1.as_secs_f64() / best2.as_secs_f64(),
            median1.as_secs_f64() / median2.as_secs_f64(),
            pairs[runs / 2],
        )?;
    }
    Ok(())
}

pub(crate) fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
