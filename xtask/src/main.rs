//! Maintainer tasks, run as `cargo xtask <task>`.
//!
//! - `abi-check [--baseline REF]`: loads the plugins built at the last ABI
//!   release, and the current ones, in the current `cellrun`, and checks the
//!   version policy; `abi-check --layout` checks the committed ABI layout
//!   snapshot.
//! - `bench`: end-to-end timings of `cellrun run` on generated notebooks and
//!   the in-process pipeline benchmarks; results under `target/bench/`.
//! - `build-plugins [--release] [--out DIR]`: builds every plugin crate and
//!   copies each library into DIR (default `target/plugins`).
//! - `tidy`: the repository checks (also run by `cargo test`).

mod abi_check;
mod bench;
mod plugins;
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
  bench [--quick]   time `cellrun run` on generated chains and fan-outs, and the pipeline benchmarks
  build-plugins [--release] [--out DIR]
                    build every plugin and copy the libraries into DIR (default target/plugins)
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
