//! `cargo xtask slurm bench [--quick]`: what each way of handing work to
//! the local cluster costs, measured against the running cluster.
//!
//! Times a blocking `srun true`; `sbatch` of one job until it leaves the
//! queue, both polled and with `sbatch --wait`; a chain of jobs linked by
//! `--dependency=afterok`; a job array; and the same number of independent
//! jobs submitted at once. Results go to `target/bench/slurm.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench::Shape;
use crate::plugins::workspace_target_dir;
use crate::slurm::{output_within, wait_for, Cluster};
use crate::{cargo, project_root};

/// How long one measured job may take before the benchmark gives up.
const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// How many jobs the chain, the array and the batch of independent jobs have.
const WIDTH: usize = 8;

pub(crate) fn run(cluster: &Cluster, repeats: usize) -> anyhow::Result<()> {
    let jobs_dir = workspace_target_dir(&project_root()).join("slurm/bench-jobs");
    fs::create_dir_all(&jobs_dir)?;
    if let Err(err) =
        output_within(&mut cluster.client("sinfo"), Duration::from_secs(10)).and_then(|out| {
            if out.success {
                Ok(())
            } else {
                bail!("{}", out.stderr.trim())
            }
        })
    {
        bail!("slurm does not answer ({err:#}); start it with `cargo xtask slurm up`");
    }
    let bench = Bench {
        cluster,
        jobs_dir: jobs_dir.display().to_string(),
    };
    let mut rows = Vec::new();
    rows.push(Row::new(
        "`srun true` (blocking, one job step)",
        1,
        bench.times(repeats, || bench.srun_true())?,
    ));
    rows.push(Row::new(
        "`srun` with its streams as files in a shared directory (the slurm executor's job)",
        1,
        bench.times(repeats, || bench.srun_files())?,
    ));
    rows.push(Row::new(
        "`sbatch` one job, poll `squeue` until it left",
        1,
        bench.times(repeats, || bench.sbatch_polled())?,
    ));
    rows.push(Row::new(
        "`sbatch --wait` one job",
        1,
        bench.times(repeats.div_ceil(2), || bench.sbatch_wait())?,
    ));
    rows.push(Row::new(
        &format!("`sbatch` chain of {WIDTH} jobs, `--dependency=afterok`"),
        WIDTH,
        bench.times(repeats.div_ceil(2), || bench.chain(WIDTH))?,
    ));
    rows.push(Row::new(
        &format!("`sbatch --array=0-{}` ({WIDTH} tasks)", WIDTH - 1),
        WIDTH,
        bench.times(repeats.div_ceil(2), || bench.array(WIDTH))?,
    ));
    rows.push(Row::new(
        &format!("{WIDTH} independent `sbatch` jobs at once"),
        WIDTH,
        bench.times(repeats.div_ceil(2), || bench.independent(WIDTH))?,
    ));
    rows.push(Row::new(
        &format!("{WIDTH} `srun true` one after another"),
        WIDTH,
        bench.times(repeats.div_ceil(2), || {
            (0..WIDTH).try_for_each(|_| bench.srun_true())
        })?,
    ));

    let mut report = String::from("# Slurm submission latency on the local cluster\n\n");
    writeln!(report, "Wall time from the first command until every job of the case left the queue; {repeats} runs (half for multi-job cases).\n")?;
    writeln!(
        report,
        "| case | jobs | median | min | max | median per job |"
    )?;
    writeln!(report, "|---|---|---|---|---|---|")?;
    for row in &rows {
        writeln!(
            report,
            "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            row.name,
            row.jobs,
            ms(row.median()),
            ms(row.times[0]),
            ms(row.times[row.times.len() - 1]),
            ms(row.median()) / row.jobs as f64
        )?;
    }
    print!("{report}");
    let out_dir = workspace_target_dir(&project_root()).join("bench");
    fs::create_dir_all(&out_dir)?;
    fs::write(out_dir.join("slurm.md"), &report)?;
    Ok(())
}

struct Row {
    name: String,
    jobs: usize,
    /// Sorted ascending.
    times: Vec<Duration>,
}

impl Row {
    fn new(name: &str, jobs: usize, mut times: Vec<Duration>) -> Row {
        times.sort();
        Row {
            name: name.to_owned(),
            jobs,
            times,
        }
    }

    fn median(&self) -> Duration {
        self.times[self.times.len() / 2]
    }
}

struct Bench<'a> {
    cluster: &'a Cluster,
    jobs_dir: String,
}

impl Bench<'_> {
    fn times(
        &self,
        repeats: usize,
        mut case: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<Vec<Duration>> {
        (0..repeats.max(1))
            .map(|_| {
                let start = Instant::now();
                case()?;
                Ok(start.elapsed())
            })
            .collect()
    }

    fn client(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd: Command = self.cluster.client(program);
        cmd.args(args).current_dir(&self.jobs_dir);
        let out = output_within(&mut cmd, JOB_TIMEOUT)?;
        if !out.success {
            bail!(
                "`{program} {}` failed: {}",
                args.join(" "),
                out.stderr.trim()
            );
        }
        Ok(out.stdout)
    }

    fn srun_true(&self) -> anyhow::Result<()> {
        self.client("srun", &["true"]).map(drop)
    }

    fn srun_files(&self) -> anyhow::Result<()> {
        let dir = &self.jobs_dir;
        fs::write(format!("{dir}/request"), "request\n")?;
        let input = format!("--input={dir}/request");
        let output = format!("--output={dir}/response");
        let error = format!("--error={dir}/log");
        self.client("srun", &[&input, &output, &error, "cat"])?;
        if fs::read_to_string(format!("{dir}/response"))? != "request\n" {
            bail!("the job did not copy its request to its response");
        }
        Ok(())
    }

    fn sbatch(&self, extra: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["--parsable", "--output=/dev/null"];
        args.extend(extra);
        args.extend(["--wrap", "true"]);
        let out = self.client("sbatch", &args)?;
        // `--parsable` prints `ID` or `ID;CLUSTER`.
        let id = out.trim().split(';').next().unwrap_or_default().to_owned();
        if id.is_empty() {
            bail!("sbatch printed no job id");
        }
        Ok(id)
    }

    /// Waits until none of `ids` is pending, running or completing.
    fn wait_gone(&self, ids: &[String]) -> anyhow::Result<()> {
        let list = ids.join(",");
        let mut failure = None;
        wait_for("jobs to finish", JOB_TIMEOUT, || {
            match self.client(
                "squeue",
                &["-h", "-t", "PD,R,CG,S", "-j", &list, "-o", "%i"],
            ) {
                Ok(out) => out.trim().is_empty(),
                Err(err) => {
                    failure = Some(err);
                    true
                }
            }
        })?;
        match failure {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn sbatch_polled(&self) -> anyhow::Result<()> {
        let id = self.sbatch(&[])?;
        self.wait_gone(&[id])
    }

    fn sbatch_wait(&self) -> anyhow::Result<()> {
        self.sbatch(&["--wait"]).map(drop)
    }

    fn chain(&self, n: usize) -> anyhow::Result<()> {
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..n {
            let dependency = ids.last().map(|id| format!("--dependency=afterok:{id}"));
            let extra: Vec<&str> = dependency.iter().map(String::as_str).collect();
            ids.push(self.sbatch(&extra)?);
        }
        self.wait_gone(&ids)
    }

    fn array(&self, n: usize) -> anyhow::Result<()> {
        let range = format!("--array=0-{}", n - 1);
        let id = self.sbatch(&[&range])?;
        self.wait_gone(&[id])
    }

    fn independent(&self, n: usize) -> anyhow::Result<()> {
        let ids = (0..n)
            .map(|_| self.sbatch(&[]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.wait_gone(&ids).context("independent jobs")
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// `cargo xtask slurm bench --executor`: only [`executor`], with a release
/// `cellrun`; the report goes to `target/bench/slurm-executor.md`.
pub(crate) fn executor_only() -> anyhow::Result<()> {
    let root = project_root();
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "runner", "--bin", "cellrun"])
        .current_dir(&root)
        .status()?;
    if !status.success() {
        bail!("building cellrun failed");
    }
    let out_dir = workspace_target_dir(&root).join("bench");
    fs::create_dir_all(&out_dir)?;
    let cellrun = workspace_target_dir(&root).join("release/cellrun");
    let mut report = String::new();
    executor(&root, &cellrun, &out_dir, &mut report)?;
    print!("{report}");
    fs::write(out_dir.join("slurm-executor.md"), &report)?;
    Ok(())
}

/// The slurm executor against the built-in one and against the bare `srun`
/// floor, on 20-cell chains and fan-outs, and a fan-out of CPU-bound cells
/// with `--jobs 2` against `--jobs 1`; appended to `report`.
///
/// Skipped, with a line saying so, when the local cluster does not answer.
pub(crate) fn executor(
    root: &Path,
    cellrun: &Path,
    out_dir: &Path,
    report: &mut String,
) -> anyhow::Result<()> {
    let cluster = Cluster::new(&workspace_target_dir(root).join("slurm"));
    let answers = output_within(&mut cluster.client("sinfo"), Duration::from_secs(15))
        .is_ok_and(|out| out.success);
    if !answers {
        writeln!(
            report,
            "\nThe slurm executor: not measured, the local cluster does not answer (`cargo xtask slurm up`)."
        )?;
        return Ok(());
    }
    let status = Command::new(cargo())
        .args(["build", "--release", "-p", "plugin-slurm"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the slurm plugin failed");
    }
    let library = format!(
        "{}plugin_slurm{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let plugin_dir = out_dir.join("plugins-slurm");
    let _ = fs::remove_dir_all(&plugin_dir);
    fs::create_dir_all(&plugin_dir)?;
    fs::copy(
        workspace_target_dir(root).join("release").join(&library),
        plugin_dir.join(&library),
    )?;
    let bench = Bench {
        cluster: &cluster,
        jobs_dir: out_dir.display().to_string(),
    };
    let repeats = 3;
    let floor = bench.times(repeats, || (0..20).try_for_each(|_| bench.srun_true()))?;
    let floor = floor.iter().min().copied().unwrap_or_default();
    // The environment a Python notebook's runs use, here and on the node;
    // Rhai runs ignore it.
    let venv = root.join("target/py-venv");
    let run = |notebook: &Path, extra: &[&str], slurm: bool| -> anyhow::Result<Duration> {
        let mut best = Duration::MAX;
        for _ in 0..repeats {
            let mut command = cluster.client(&cellrun.display().to_string());
            command
                .arg("run")
                .arg(notebook)
                .args(extra)
                .env("VIRTUAL_ENV", &venv);
            if slurm {
                command
                    .arg(format!("--plugin-dir={}", plugin_dir.display()))
                    .args(["--executor", "slurm"]);
            }
            let start = Instant::now();
            let out = output_within(&mut command, JOB_TIMEOUT * 5)?;
            best = best.min(start.elapsed());
            if !out.success {
                bail!(
                    "cellrun run {} failed: {}",
                    notebook.display(),
                    out.stderr.trim()
                );
            }
        }
        Ok(best)
    };
    writeln!(
        report,
        "\nThe slurm executor on the local cluster, best of {repeats}; the floor is 20 `srun true` one after another ({:.0} ms, {:.0} ms each):\n",
        ms(floor),
        ms(floor) / 20.0
    )?;
    writeln!(
        report,
        "| notebook | built-in | slurm | slurm per cell | over the floor per cell |"
    )?;
    writeln!(report, "|---|---|---|---|---|")?;
    let mut notebooks = Vec::new();
    for (name, text) in [
        ("20-cell chain", Shape::Chain.generate(20)),
        ("20-cell fan-out", Shape::Fan.generate(20)),
    ] {
        let path = out_dir.join(format!("slurm_{}.rhai", name.replace(' ', "_")));
        fs::write(&path, text)?;
        notebooks.push((name, path));
    }
    // Python cells on the cluster: the worker on the node starts CPython
    // and the python plugin for every job.
    if venv.join("bin/python").is_file() {
        crate::bench::release_plugin(root, "python")?;
        let path = out_dir.join("slurm_chain_20.py");
        fs::write(&path, crate::python_bench::generate(true, 20))?;
        notebooks.push(("20-cell Python chain (python plugin here)", path));
    }
    for (name, path) in notebooks {
        let local = run(&path, &[], false)?;
        let slurm = run(&path, &[], true)?;
        writeln!(
            report,
            "| {name} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            ms(local),
            ms(slurm),
            ms(slurm) / 20.0,
            (ms(slurm) - ms(floor)) / 20.0
        )?;
    }
    let help = Command::new(cellrun).args(["run", "--help"]).output()?;
    if !String::from_utf8_lossy(&help.stdout).contains("--jobs") {
        writeln!(
            report,
            "\nCPU-bound fan-out with `--jobs`: not measured, this cellrun has no `--jobs`."
        )?;
        return Ok(());
    }
    let heavy = out_dir.join("slurm_cpu_fan.rhai");
    let mut text = String::from("// %% root\nlet n = 3000000;\n");
    for i in 0..4 {
        writeln!(
            text,
            "// %% work{i}\nlet total{i} = 0;\nfor k in 0..n {{ total{i} += k % 7; }}"
        )?;
    }
    fs::write(&heavy, text)?;
    let one = run(&heavy, &["--jobs", "1"], true)?;
    let two = run(&heavy, &["--jobs", "2"], true)?;
    writeln!(
        report,
        "\nA fan-out of 4 CPU-bound cells on the cluster: `--jobs 1` {:.0} ms, `--jobs 2` {:.0} ms ({:.2}x).",
        ms(one),
        ms(two),
        one.as_secs_f64() / two.as_secs_f64()
    )?;
    Ok(())
}
