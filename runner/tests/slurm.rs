//! The `slurm` executor plugin end to end, against the real one-node cluster
//! that `cargo xtask slurm up` runs on loopback (CI's `.ci/run` starts it;
//! outside CI the first test here starts it and leaves it running).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::plugins::{plugin_dirs, run_started, warnings};
use crate::util::{cellrun_command, Dir, Run};

/// The local cluster's `slurm.conf`, once the cluster answers.
fn cluster() -> &'static PathBuf {
    static CONF: OnceLock<PathBuf> = OnceLock::new();
    CONF.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        // Idempotent: a cluster that answers is left as it is.
        let output = Command::new(cargo)
            .current_dir(root)
            .args(["run", "--quiet", "-p", "xtask", "--", "slurm", "up"])
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "`cargo xtask slurm up` failed (it needs root to install slurm-wlm and munge):\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let conf = stdout
            .lines()
            .find_map(|line| line.strip_prefix("export SLURM_CONF="))
            .expect("`slurm up` prints the SLURM_CONF line");
        PathBuf::from(conf)
    })
}

const TWO_CELLS: &str = "// %% a\nlet x = 20;\n// %% b\nx + 1\n";

#[test]
fn an_unreachable_cluster_fails_construction_and_the_run_falls_back_loudly() {
    let dir = Dir::new("slurm-unreachable");
    // The local cluster's configuration with a controller port nothing
    // listens on: every client command gets "connection refused".
    let conf = std::fs::read_to_string(cluster()).unwrap();
    let conf: String = conf
        .lines()
        .map(|line| {
            if line.starts_with("SlurmctldPort=") {
                "SlurmctldPort=9".to_owned()
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    let unreachable = dir.write("slurm.conf", &conf);
    dir.write("nb.rhai", TWO_CELLS);
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--json"])
        .args(plugin_dirs(&["slurm"]))
        .env("SLURM_CONF", &unreachable)
        .output()
        .unwrap();
    let run = Run::from_output(output);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "default");
    let warnings = warnings(&run);
    assert!(
        warnings.iter().any(|warning| warning.contains("`slurm`")
            && warning.contains("the Slurm cluster does not answer")
            && warning.contains("Unable to contact slurm controller")),
        "{warnings:?}"
    );
    assert_eq!(run.counts(), (2, 0, 0, 0));
}
