//! `cargo xtask new-plugin NAME --kind executor|lifecycle --out DIR`: a
//! plugin crate of its own, outside this workspace, and
//! `cargo xtask template-check`, which builds one as a third party would
//! and loads it in `cellrun`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::{cargo, project_root};

/// Parses the arguments and writes the crate.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut name = None;
    let mut kind = "executor".to_owned();
    let mut out = None;
    let mut sdk = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kind" => {
                kind = args
                    .next()
                    .context("`--kind` needs executor or lifecycle")?
                    .clone()
            }
            "--out" => out = Some(PathBuf::from(args.next().context("`--out` needs a DIR")?)),
            "--sdk" => {
                sdk = Some(
                    args.next()
                        .context("`--sdk` needs a path or a git URL")?
                        .clone(),
                )
            }
            other if other.starts_with('-') => bail!("unknown flag `{other}`"),
            other if name.is_none() => name = Some(other.to_owned()),
            other => bail!("unexpected argument `{other}`"),
        }
    }
    let name =
        name.context("usage: cargo xtask new-plugin NAME --kind executor|lifecycle --out DIR")?;
    let out = out.unwrap_or_else(|| PathBuf::from(format!("plugin-{name}")));
    let sdk = sdk.unwrap_or_else(|| project_root().join("executor-abi").display().to_string());
    let dir = write(&name, &kind, &out, &sdk)?;
    eprintln!(
        "new-plugin: wrote {} ({kind} `{name}`); build it with `cargo build --release` there and copy target/release/{} into a plugin directory",
        dir.display(),
        library_file(&name)
    );
    Ok(())
}

/// The file name of plugin `name`'s library on this platform.
pub(crate) fn library_file(name: &str) -> String {
    let stem = format!("plugin_{}", name.replace('-', "_"));
    if cfg!(target_os = "macos") {
        format!("lib{stem}.dylib")
    } else if cfg!(windows) {
        format!("{stem}.dll")
    } else {
        format!("lib{stem}.so")
    }
}

/// Writes the crate of plugin `name` into `out`, depending on the SDK at
/// `sdk` (a path, or a git URL).
pub(crate) fn write(name: &str, kind: &str, out: &Path, sdk: &str) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.chars().all(|char| {
            char.is_ascii_lowercase() || char.is_ascii_digit() || char == '-' || char == '_'
        })
        && !["default", "strict", "cache"].contains(&name);
    if !valid {
        bail!("`{name}` cannot be a plugin name: use lowercase letters, digits, `-` and `_`, and not default, strict or cache");
    }
    if out.exists()
        && out
            .read_dir()
            .map(|mut dir| dir.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} exists and is not empty", out.display());
    }
    let type_name = name
        .split(['-', '_'])
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<String>();
    let dependency = if sdk.contains("://") {
        format!("executor-abi = {{ git = \"{sdk}\" }}")
    } else {
        format!("executor-abi = {{ path = {:?} }}", sdk)
    };
    let source = match kind {
        "executor" => EXECUTOR,
        "lifecycle" => LIFECYCLE,
        other => bail!("`--kind {other}`: expected executor or lifecycle"),
    };
    std::fs::create_dir_all(out.join("src"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{Type}}", &type_name)
            .replace("{{lib}}", &format!("plugin_{}", name.replace('-', "_")))
            .replace("{{dependency}}", &dependency)
    };
    std::fs::write(out.join("Cargo.toml"), fill(CARGO_TOML))?;
    std::fs::write(out.join("src/lib.rs"), fill(source))?;
    std::fs::write(out.join(".gitignore"), "/target\n")?;
    Ok(out.to_path_buf())
}

const CARGO_TOML: &str = r#"[package]
name = "plugin-{{name}}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
name = "{{lib}}"
# cdylib: the library cellrun loads; rlib: for this crate's own tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
{{dependency}}

# A crate of its own, not a member of any workspace around it.
[workspace]

[profile.release]
# cellrun refuses plugins that abort on panic: keep the default.
panic = "unwind"
"#;

const EXECUTOR: &str = r#"//! The `{{name}}` executor plugin for cellrun.
//!
//! It runs each cell's body with cellrun's built-in evaluation and counts
//! the cells it ran; replace `execute` with your own way of running a cell
//! (another process, another runtime, a cluster).

use std::sync::atomic::{AtomicU64, Ordering};

use executor_abi::sdk::{ExecutorPlugin, Host, Logger, Options, Outcome, PluginError};
use executor_abi::{FfiCellContext, FfiLogLevel};

/// The executor; `{{name}}.verbose=true` logs every cell.
pub struct {{Type}} {
    verbose: bool,
    cells: AtomicU64,
}

impl ExecutorPlugin for {{Type}} {
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "runs cells with the built-in evaluation ({{name}}.verbose)";
    const LANGUAGES: &'static [&'static str] = &["rhai"];

    fn new(options: &Options, _logger: Logger) -> Result<{{Type}}, PluginError> {
        options.reject_unknown(&["verbose"])?;
        Ok({{Type}} {
            verbose: options.parse_or("verbose", false)?,
            cells: AtomicU64::new(0),
        })
    }

    fn execute(&self, cell: &FfiCellContext, host: &mut Host<'_>) -> Result<Outcome, PluginError> {
        let count = self.cells.fetch_add(1, Ordering::Relaxed) + 1;
        if self.verbose {
            host.log(FfiLogLevel::INFO, &format!("cell {} ({count} so far)", cell.name));
        }
        host.run_default()
    }
}

executor_abi::export_executor!({{Type}});

#[cfg(test)]
mod tests {
    use executor_abi::sdk::testing::{Harness, TestCell};
    use executor_abi::sdk::Value;
    use executor_abi::FfiValue;

    use super::*;

    #[test]
    fn cells_run_through_the_built_in_evaluation() {
        let mut harness = Harness::new::<{{Type}}>(&[("verbose", "true")]).unwrap();
        // The harness links no cell language: stand in for the evaluation.
        harness.host().with_default_body(Box::new(|cell, globals| {
            globals.insert(cell.defs[0].to_string(), Value::Int(42));
            Outcome::ok(FfiValue::Int(42))
        }));
        let outcomes = harness.run(&[TestCell::new("a", "let x = 42; x").defs(&["x"])]);
        assert_eq!(outcomes[0].output, FfiValue::Int(42));
        assert_eq!(harness.host().value("x"), Some(Value::Int(42)));
        assert!(harness.host().logs()[0].1.contains("cell a"));
    }

    #[test]
    fn unknown_options_are_refused() {
        assert!(Harness::new::<{{Type}}>(&[("speed", "11")]).is_err());
    }
}
"#;

const LIFECYCLE: &str = r#"//! The `{{name}}` lifecycle plugin for cellrun.
//!
//! It counts the cells that ran and the cells that did not, and logs the
//! tally when the run ends; replace the bodies with your own setup and
//! teardown around each cell.

use std::sync::atomic::{AtomicU64, Ordering};

use executor_abi::sdk::{LifecyclePlugin, Logger, Options, PluginError, Host};
use executor_abi::{FfiCellContext, FfiRunOutcome, FfiRunResult};

/// The lifecycle.
pub struct {{Type}} {
    logger: Logger,
    ran: AtomicU64,
    not_run: AtomicU64,
}

impl LifecyclePlugin for {{Type}} {
    const NAME: &'static str = "{{name}}";
    const DESCRIPTION: &'static str = "counts the cells that ran and that did not";

    fn new(options: &Options, logger: Logger) -> Result<{{Type}}, PluginError> {
        options.reject_unknown(&[])?;
        Ok({{Type}} {
            logger,
            ran: AtomicU64::new(0),
            not_run: AtomicU64::new(0),
        })
    }

    fn teardown(
        &self,
        _cell: &FfiCellContext,
        _result: &FfiRunResult,
        _host: &mut Host<'_>,
    ) -> Result<(), PluginError> {
        self.ran.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn cell_not_run(&self, _cell: &FfiCellContext, _result: &FfiRunResult) {
        self.not_run.fetch_add(1, Ordering::Relaxed);
    }

    fn run_finished(&self, _outcome: &FfiRunOutcome) {
        self.logger.info(&format!(
            "{} cells ran, {} did not",
            self.ran.load(Ordering::Relaxed),
            self.not_run.load(Ordering::Relaxed)
        ));
    }
}

executor_abi::export_lifecycle!({{Type}});

#[cfg(test)]
mod tests {
    use executor_abi::sdk::lifecycle_for_tests;

    use super::*;

    #[test]
    fn it_builds_as_the_runner_builds_it() {
        assert!(lifecycle_for_tests::<{{Type}}>(&[]).is_ok());
        assert!(lifecycle_for_tests::<{{Type}}>(&[("x", "1")]).is_err());
    }
}
"#;

/// `cargo xtask template-check`: writes an executor plugin with
/// `new-plugin` outside the workspace, checks that its dependencies hold no
/// Rhai, runs its tests, builds it with plain `cargo build --release`,
/// loads and runs it in this `cellrun`, then builds it again with
/// `panic = "abort"` and checks that `cellrun` refuses it.
pub(crate) fn check(_args: &[String]) -> anyhow::Result<()> {
    let root = project_root();
    let work = root.join("target").join("template-check");
    let crate_dir = work.join("plugin-hello");
    if crate_dir.exists() {
        std::fs::remove_dir_all(&crate_dir)?;
    }
    std::fs::create_dir_all(&work)?;
    write(
        "hello",
        "executor",
        &crate_dir,
        &root.join("executor-abi").display().to_string(),
    )?;
    let target = work.join("target");
    let in_crate = |args: &[&str], envs: &[(&str, &str)]| -> anyhow::Result<String> {
        let mut command = Command::new(cargo());
        command
            .args(args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS");
        for (key, value) in envs {
            command.env(key, value);
        }
        let output = command
            .output()
            .with_context(|| format!("cannot run cargo {args:?}"))?;
        if !output.status.success() {
            bail!(
                "cargo {} failed in {}:\n{}",
                args.join(" "),
                crate_dir.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let tree = in_crate(&["tree", "--prefix", "none"], &[])?;
    if tree
        .lines()
        .any(|line| line.starts_with("rhai ") || line.starts_with("executor-core "))
    {
        bail!("the plugin's dependencies pull in the cell language:\n{tree}");
    }
    eprintln!("template-check: `cargo tree` of the plugin has no rhai and no executor-core");
    in_crate(&["test", "--quiet"], &[])?;
    eprintln!("template-check: the template's own tests pass");
    in_crate(&["build", "--release", "--quiet"], &[])?;
    let cellrun = cellrun_binary(&root)?;
    let plugins = work.join("plugins");
    install(
        &target.join("release").join(library_file("hello")),
        &plugins,
    )?;
    let listed = run_cellrun(&cellrun, &["plugins", "--plugin-dir"], &plugins)?;
    if !listed.contains("name: hello") || !listed.contains("status: compatible") {
        bail!("cellrun does not list the template plugin as compatible:\n{listed}");
    }
    let notebook = root.join("examples").join("stats.rhai");
    let ran = Command::new(&cellrun)
        .arg("run")
        .arg(&notebook)
        .args(["--json", "--executor", "hello", "--plugin-dir"])
        .arg(&plugins)
        .output()?;
    let events = String::from_utf8_lossy(&ran.stdout);
    if !events.contains(r#""executor":"hello""#) || !ran.status.success() {
        bail!(
            "cellrun did not run examples/stats.rhai with the template plugin:\n{events}{}",
            String::from_utf8_lossy(&ran.stderr)
        );
    }
    eprintln!("template-check: built out of tree, listed as compatible, ran examples/stats.rhai");
    let abort_target = work.join("target-abort");
    let mut command = Command::new(cargo());
    let built = command
        .args(["build", "--release", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &abort_target)
        .env("CARGO_PROFILE_RELEASE_PANIC", "abort")
        .status()?;
    if !built.success() {
        bail!("cannot build the template with panic = \"abort\"");
    }
    let aborting = work.join("plugins-abort");
    install(
        &abort_target.join("release").join(library_file("hello")),
        &aborting,
    )?;
    let listed = run_cellrun(&cellrun, &["plugins", "--plugin-dir"], &aborting)?;
    if !listed.contains("panic = \"abort\"") {
        bail!("cellrun does not refuse the template built with panic = \"abort\":\n{listed}");
    }
    eprintln!("template-check: the same plugin built with panic = \"abort\" is refused");
    Ok(())
}

/// Builds this workspace's `cellrun` (debug) and returns its path.
fn cellrun_binary(root: &Path) -> anyhow::Result<PathBuf> {
    let status = Command::new(cargo())
        .args(["build", "--quiet", "-p", "runner"])
        .current_dir(root)
        .status()
        .context("cannot run cargo build -p runner")?;
    if !status.success() {
        bail!("cargo build -p runner failed");
    }
    let name = if cfg!(windows) {
        "cellrun.exe"
    } else {
        "cellrun"
    };
    Ok(crate::plugins::workspace_target_dir(root)
        .join("debug")
        .join(name))
}

fn install(library: &Path, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    let to = dir.join(library.file_name().context("a library file")?);
    std::fs::copy(library, &to).with_context(|| format!("cannot copy {}", library.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

fn run_cellrun(cellrun: &Path, args: &[&str], dir: &Path) -> anyhow::Result<String> {
    let output = Command::new(cellrun).args(args).arg(dir).output()?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_a_crate_of_its_own_with_the_names_filled_in() {
        let dir = std::env::temp_dir().join(format!("cellrun-new-plugin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write("my-exec", "executor", &dir, "/sdk/executor-abi").unwrap();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"plugin-my-exec\""));
        assert!(manifest.contains("name = \"plugin_my_exec\""));
        assert!(manifest.contains("[workspace]"));
        assert!(manifest.contains("executor-abi = { path = \"/sdk/executor-abi\" }"));
        let source = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(source.contains("pub struct MyExec"));
        assert!(source.contains("const NAME: &'static str = \"my-exec\";"));
        assert!(!source.contains("{{"));
        assert!(
            write("my-exec", "executor", &dir, "x").is_err(),
            "a non-empty directory is refused"
        );
        assert!(write("Bad.Name", "executor", &dir.join("y"), "x").is_err());
        assert!(write("ok", "neither", &dir.join("z"), "x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
