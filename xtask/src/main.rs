//! Maintainer tasks, run as `cargo xtask <task>`.
//!
//! - `abi-check [--baseline REF]`: loads the plugins built at the last ABI
//!   release, and the current ones, in the current `cellrun`, and checks the
//!   version policy; `abi-check --layout` checks the committed ABI layout
//!   snapshot.
//! - `bench`: end-to-end timings of `cellrun run` on generated notebooks and
//!   the in-process pipeline benchmarks; results under `target/bench/`.
//! - `fuzz [--seconds N] [--seed N]`: runs `cellrun` on random Rhai and Python notebooks for
//!   a time budget and fails on the first crash, hang, panic or broken JSON
//!   stream, keeping the notebook under `target/fuzz/failures/`.
//! - `build-plugins [--release] [--out DIR]`: builds every plugin crate and
//!   copies each library into DIR (default `target/plugins`).
//! - `new-plugin NAME --kind executor|lifecycle --out DIR`: a plugin crate
//!   outside this workspace; `template-check` builds one as a third party
//!   would and loads it.
//! - `slurm up|down|status|env|bench`: a one-node Slurm cluster on loopback
//!   under `target/slurm/`, for the slurm executor's tests, and the latency
//!   of submitting work to it.
//! - `tidy`: the repository checks (also run by `cargo test`).

mod abi_check;
mod bench;
mod fuzz;
mod interrupt_bench;
mod new_plugin;
mod plugins;
mod python_bench;
mod slurm;
mod slurm_bench;
mod tidy;

use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("abi-check") => abi_check::run(&rest),
        Some("bench") => bench::run(&rest),
        Some("build-plugins") => plugins::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("new-plugin") => new_plugin::run(&rest),
        Some("template-check") => new_plugin::check(&rest),
        Some("slurm") => slurm::run(&rest),
        Some("tidy") => tidy::run(),
        _ => {
            print_help();
            if task.is_some() {
                anyhow::bail!("unknown task `{}`", task.unwrap_or_default());
            }
            Ok(())
        }
    }
}

fn print_help() {
    eprintln!(
        "Tasks:
  abi-check [--baseline REF]
                    load the plugins built at REF (default: executor-abi/ABI_BASELINE) and now
                    in the current cellrun; fail when the ABI version policy is broken
  abi-check --layout
                    check and update the committed ABI layout snapshot (executor-abi/abi-layout.txt)
  bench [--quick] [medium-cache|watch|report|plugin-reads|subprocess|python|parallel|interrupt]
                    time `cellrun run` on generated chains and fan-outs, and the pipeline benchmarks
                    (`medium-cache`: only the cache on a 1,000,000-integer array;
                    `watch`: only the save-to-result latency of `cellrun watch`;
                    `report`: only `--report` and opening its page in headless Chromium)
  fuzz [--seconds N] [--seed N]
                    run cellrun on random notebooks for N seconds (default 60); fail on a crash,
                    a hang, a panic or a broken JSON stream, keeping the notebook in target/fuzz/failures
  build-plugins [--release] [--out DIR]
                    build every plugin and copy the libraries into DIR (default target/plugins)
  new-plugin NAME [--kind executor|lifecycle] [--out DIR] [--sdk PATH|GIT-URL]
                    write a plugin crate of its own (outside this workspace) that builds with
                    `cargo build --release` and loads in cellrun
  template-check    build a new-plugin crate out of tree, check it has no rhai, load and run it,
                    and check that a panic = \"abort\" build of it is refused (CI runs it)
  slurm up|down|status|env
                    start, stop or query a one-node Slurm cluster on loopback (files under
                    target/slurm/; installs slurm-wlm and munge with apt-get when missing);
                    env prints the SLURM_CONF line its client commands need
  slurm bench [--quick]
                    latency of srun, sbatch, afterok chains and job arrays on that cluster
  slurm bench --executor
                    the slurm executor against the built-in one and the srun floor
  tidy              repository checks (also run by `cargo test -p xtask`)"
    );
}

/// The workspace root.
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(1)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The cargo that runs this task.
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}
