//! `cargo xtask abi-check [--baseline REF]` and `cargo xtask abi-check --layout`.
//!
//! The first builds the plugins at the last released ABI (the commit in
//! `executor-abi/ABI_BASELINE`, or REF) in a git worktree under
//! `target/abi-baseline/`, builds the current plugins, and loads every
//! library in the current `cellrun` (`cellrun plugins --json`); the plugins
//! that load and are not failure fixtures also run a small notebook. It
//! prints a matrix plugin × (built at the baseline, built now) and fails
//! when the version policy is broken: a plugin that must load is rejected
//! or does not run, or an incompatible fixture loads. The reverse direction,
//! the current plugins in the baseline's `cellrun`, is printed for
//! information.
//!
//! The second compares the ABI's layout with the committed snapshot
//! `executor-abi/abi-layout.txt`, and fails when it changed while the
//! version of `executor-abi` did not.
//!
//! The worktree and its target directory are kept, so a second run only
//! rebuilds what changed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::plugins::{self, PluginCrate};
use crate::{cargo, project_root};

/// Fixtures the policy expects every cellrun to refuse at load.
const MUST_REJECT: &[&str] = &[
    "plugin-abi-two",
    "plugin-bad-layout",
    "plugin-not-a-plugin",
    "plugin-reserved-name",
];

/// Plugins that load here but cannot run the check's Rhai notebook on this
/// machine: `python` serves Python notebooks only (its runs are covered by
/// `runner/tests/python_run.rs`), `slurm` needs a cluster (covered by
/// `runner/tests/slurm.rs` against a real Slurm). They must load, and are not run.
const LOAD_ONLY: &[&str] = &["plugin-python", "plugin-slurm"];

/// Fixtures that load but fail on purpose when constructed or called: they
/// must load, and are not run.
const FAIL_ON_PURPOSE: &[&str] = &[
    "plugin-ctor-error",
    "plugin-ctor-panic",
    "plugin-execute-panic",
    "plugin-setup-panic",
    "plugin-teardown-panic",
];

/// The notebook a loaded plugin runs; `b`'s output must be 21.
const NOTEBOOK: &str = "// %% a\nlet x = 20;\n// %% b\nx + 1\n";

/// Environment variables of `cellrun` that would change what it loads.
const CELLRUN_VARS: &[&str] = &[
    "CELLRUN_PLUGIN_PATH",
    "CELLRUN_EXECUTOR_ALLOWLIST",
    "CELLRUN_EXECUTOR_DENYLIST",
    "CELLRUN_LIFECYCLE_ALLOWLIST",
    "CELLRUN_LIFECYCLE_DENYLIST",
];

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut baseline = None;
    let mut layout = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--layout" => layout = true,
            "--baseline" => baseline = Some(args.next().context("`--baseline` needs a REF")?),
            other => bail!("unknown argument `{other}` (expected --baseline REF or --layout)"),
        }
    }
    let root = project_root();
    if layout {
        return check_layout(&root);
    }
    let baselines = match baseline {
        Some(reference) => vec![reference.clone()],
        None => read_baselines(&root)?,
    };
    for baseline in &baselines {
        check_compatibility(&root, baseline)?;
    }
    Ok(())
}

/// The commits recorded in `executor-abi/ABI_BASELINE`, one per released
/// minor: its lines that are neither empty nor `#` comments.
fn read_baselines(root: &Path) -> anyhow::Result<Vec<String>> {
    let path = root.join("executor-abi/ABI_BASELINE");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let baselines = baselines_from(&text);
    if baselines.is_empty() {
        bail!("{} names no commit", path.display());
    }
    Ok(baselines)
}

fn baselines_from(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------
// The layout snapshot.

/// Runs the `abi_layout` example of executor-abi with `args`: a snapshot.
fn render_layout(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(cargo())
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "-p",
            "executor-abi",
            "--example",
            "abi_layout",
            "--",
        ])
        .args(args)
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!(
            "rendering the layout failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The version in a snapshot's first line (see `executor_abi::layout`).
fn snapshot_version(snapshot: &str) -> Option<&str> {
    snapshot
        .lines()
        .next()?
        .strip_prefix("# executor-abi ")?
        .split_whitespace()
        .next()
}

/// A snapshot without its first line.
fn snapshot_body(snapshot: &str) -> &str {
    snapshot.split_once('\n').map_or("", |(_, body)| body)
}

/// What to do with a layout snapshot, given the committed one and the
/// current one.
#[derive(Debug, PartialEq, Eq)]
enum LayoutVerdict {
    Unchanged,
    /// Write the current snapshot: the version moved (with or without a layout change).
    Update,
    /// The layout changed but the version did not move enough; the message says why.
    Fail(String),
}

fn judge_layout(committed: &str, current: &str) -> LayoutVerdict {
    if committed == current {
        return LayoutVerdict::Unchanged;
    }
    let parse = |snapshot| snapshot_version(snapshot).and_then(parse_version);
    let (Some(old), Some(new)) = (parse(committed), parse(current)) else {
        return LayoutVerdict::Update;
    };
    if snapshot_body(committed) == snapshot_body(current) {
        return LayoutVerdict::Update;
    }
    if (new.0, new.1) > (old.0, old.1) {
        LayoutVerdict::Update
    } else {
        LayoutVerdict::Fail(format!(
            "the ABI's layout changed but executor-abi's version did not (snapshot taken at {}.{}.{}, now {}.{}.{}): \
             bump the minor for fields appended to PluginMod or methods appended to a trait, the major for anything else \
             (executor-abi/README.md), then run `cargo xtask abi-check --layout` again",
            old.0, old.1, old.2, new.0, new.1, new.2
        ))
    }
}

fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.split('-').next()?.split('.').map(str::parse::<u64>);
    Some((
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ))
}

/// `abi-check --layout`: compares and writes `executor-abi/abi-layout.txt`,
/// and checks that the frozen generations kept their layout.
fn check_layout(root: &Path) -> anyhow::Result<()> {
    let path = root.join("executor-abi/abi-layout.txt");
    let current = render_layout(root, &[])?;
    let committed = fs::read_to_string(&path).unwrap_or_default();
    match judge_layout(&committed, &current) {
        LayoutVerdict::Unchanged => {
            println!("abi-check --layout: {} is up to date", path.display())
        }
        LayoutVerdict::Update => {
            fs::write(&path, &current)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!(
                "abi-check --layout: wrote {} ({}); commit it with the version bump",
                path.display(),
                current.lines().next().unwrap_or_default()
            );
        }
        LayoutVerdict::Fail(reason) => bail!("{reason}"),
    }
    let generation = root.join("executor-abi/abi-layout-1.0.txt");
    let frozen = fs::read_to_string(&generation)
        .with_context(|| format!("cannot read {}", generation.display()))?;
    if render_layout(root, &["v1_0"])? != frozen {
        bail!(
            "the frozen 1.0 generation (executor_abi::generations::v1_0) no longer has the released 1.0 layout ({}); generations must never change",
            generation.display()
        );
    }
    println!("abi-check --layout: the 1.0 generation keeps the released layout");
    Ok(())
}

// ---------------------------------------------------------------------------
// Loading plugins across versions.

/// What one `cellrun` did with one library.
#[derive(Debug, Clone)]
struct Outcome {
    loaded: bool,
    abi_version: String,
    /// The one-line reason when rejected.
    reason: String,
    /// `None` when not run; else whether the run went as expected, and why not.
    ran: Option<Result<(), String>>,
}

impl Outcome {
    fn cell(&self) -> String {
        let mut text = if self.loaded {
            format!("loaded ({})", self.abi_version)
        } else {
            "rejected".to_owned()
        };
        match &self.ran {
            Some(Ok(())) => text.push_str(", ran"),
            Some(Err(_)) => text.push_str(", RUN FAILED"),
            None => {}
        }
        text
    }
}

/// The libraries of one build: package → (crate, directory holding only its library).
type Libraries = BTreeMap<String, (PluginCrate, PathBuf)>;

fn check_compatibility(root: &Path, reference: &str) -> anyhow::Result<()> {
    let target = plugins::workspace_target_dir(root);
    let commit = resolve_commit(root, reference)?;
    let short = &commit[..commit.len().min(10)];
    let work = target.join("abi-baseline").join(short);
    let worktree = prepare_worktree(root, &work.join("worktree"), &commit)?;
    let baseline_version = abi_version_at(&worktree)?;
    let current_version = abi_version_at(root)?;

    eprintln!("abi-check: building the plugins and cellrun at the baseline {short} (executor-abi {baseline_version})");
    let baseline_target = work.join("target");
    let baseline_crates = plugins::build(&worktree, &baseline_target, "debug", &["runner"])?;
    let baseline_libs = install(
        &baseline_crates,
        &baseline_target.join("debug"),
        &work.join("libs/baseline"),
    )?;
    let baseline_cellrun = baseline_target.join("debug").join(exe("cellrun"));

    eprintln!(
        "abi-check: building the current plugins and cellrun (executor-abi {current_version})"
    );
    let current_crates = plugins::build(root, &target, "debug", &["runner"])?;
    let current_libs = install(
        &current_crates,
        &target.join("debug"),
        &work.join("libs/current"),
    )?;
    let current_cellrun = target.join("debug").join(exe("cellrun"));

    let scratch = work.join("run");
    fs::create_dir_all(&scratch)?;
    fs::write(scratch.join("nb.rhai"), NOTEBOOK)?;

    let mut packages: Vec<&String> = baseline_libs.keys().chain(current_libs.keys()).collect();
    packages.sort();
    packages.dedup();

    println!();
    println!(
        "Plugins in the current cellrun (executor-abi {current_version}), built at the baseline {short} (executor-abi {baseline_version}) and now"
    );
    println!(
        "{:<22} {:<30} {:<30}",
        "plugin", "built at baseline", "built now"
    );
    let mut failures = Vec::new();
    let (mut n_loaded, mut n_rejected, mut n_libraries) = (0, 0, 0);
    for package in &packages {
        let mut cells = Vec::new();
        let mut notes = Vec::new();
        for (side, libs) in [("baseline", &baseline_libs), ("now", &current_libs)] {
            let Some((plugin, dir)) = libs.get(*package) else {
                cells.push("-".to_owned());
                continue;
            };
            n_libraries += 1;
            let run = !MUST_REJECT.contains(&package.as_str())
                && !FAIL_ON_PURPOSE.contains(&package.as_str())
                && !LOAD_ONLY.contains(&package.as_str());
            let outcome = load(&current_cellrun, plugin, dir, run.then_some(&scratch))?;
            if outcome.loaded {
                n_loaded += 1;
            } else {
                n_rejected += 1;
                notes.push(format!("{side}: {}", outcome.reason));
            }
            if let Some(Err(reason)) = &outcome.ran {
                notes.push(format!("{side}: run: {reason}"));
            }
            let must_reject = MUST_REJECT.contains(&package.as_str());
            if must_reject && outcome.loaded {
                failures.push(format!(
                    "{package} built {side} loads, but the policy says it must be refused"
                ));
            } else if !must_reject && !outcome.loaded {
                failures.push(format!(
                    "{package} built {side} is rejected, but the policy says it must load: {}",
                    outcome.reason
                ));
            } else if let Some(Err(reason)) = &outcome.ran {
                failures.push(format!(
                    "{package} built {side} loads but does not run: {reason}"
                ));
            }
            let mut cell = outcome.cell();
            if must_reject && !outcome.loaded {
                cell.push_str(" (expected)");
            }
            cells.push(cell);
        }
        println!(
            "{:<22} {:<30} {:<30}",
            short_name(package),
            cells[0],
            cells[1]
        );
        for note in notes {
            println!("    {note}");
        }
    }

    println!();
    println!(
        "Reverse direction, for information: the current plugins (executor-abi {current_version}) in the baseline cellrun (executor-abi {baseline_version})"
    );
    let (mut reverse_loaded, mut reverse_rejected) = (0, 0);
    for (package, (plugin, dir)) in &current_libs {
        let outcome = load(&baseline_cellrun, plugin, dir, None)?;
        if outcome.loaded {
            reverse_loaded += 1;
            println!("{:<22} {}", short_name(package), outcome.cell());
        } else {
            reverse_rejected += 1;
            println!("{:<22} rejected: {}", short_name(package), outcome.reason);
        }
    }

    println!();
    println!(
        "totals: {n_libraries} libraries in the current cellrun: {n_loaded} loaded, {n_rejected} rejected, {} against the policy; reverse (informative): {reverse_loaded} loaded, {reverse_rejected} rejected",
        failures.len()
    );
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("abi-check: {failure}");
        }
        bail!(
            "{} plugin libraries break the ABI version policy",
            failures.len()
        );
    }
    Ok(())
}

/// `plugin-trace` → `trace`.
fn short_name(package: &str) -> &str {
    package.strip_prefix("plugin-").unwrap_or(package)
}

fn exe(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

/// The full commit `reference` names, or a clear error when this clone lacks it.
fn resolve_commit(root: &Path, reference: &str) -> anyhow::Result<String> {
    let output = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{reference}^{{commit}}"))
        .output()
        .context("cannot run git")?;
    if !output.status.success() {
        bail!(
            "the ABI baseline `{reference}` is not a commit of this clone; abi-check needs the history up to the last ABI release \
             (clone without --depth, or run `git fetch --unshallow`), or pass --baseline REF"
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// A git worktree of `commit` at `path`: reused when it is already there,
/// made (again) otherwise. The path stays the same, so the baseline's
/// target directory stays warm.
fn prepare_worktree(root: &Path, path: &Path, commit: &str) -> anyhow::Result<PathBuf> {
    if path.join(".git").exists() {
        let head = Command::new("git")
            .current_dir(path)
            .args(["rev-parse", "HEAD"])
            .output()
            .context("cannot run git")?;
        let clean = Command::new("git")
            .current_dir(path)
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .context("cannot run git")?;
        if head.status.success()
            && String::from_utf8_lossy(&head.stdout).trim() == commit
            && clean.status.success()
            && clean.stdout.is_empty()
        {
            return Ok(path.to_owned());
        }
        git(
            root,
            &["worktree", "remove", "--force", &path.display().to_string()],
        )?;
    }
    // A worktree whose directory was deleted is still registered; forget it.
    git(root, &["worktree", "prune"])?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    git(
        root,
        &[
            "worktree",
            "add",
            "--detach",
            "--quiet",
            &path.display().to_string(),
            commit,
        ],
    )?;
    Ok(path.to_owned())
}

fn git(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("git")
        .current_dir(root)
        .args(args)
        .status()
        .context("cannot run git")?;
    if !status.success() {
        bail!("`git {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The `version` of `executor-abi/Cargo.toml` in the tree at `root`.
fn abi_version_at(root: &Path) -> anyhow::Result<String> {
    let path = root.join("executor-abi/Cargo.toml");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .map(str::trim)
        .find_map(|line| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "version").then(|| value.trim().trim_matches('"').to_owned())
        })
        .with_context(|| format!("{} has no version", path.display()))
}

/// Copies each library of `crates` from `from` into a directory of its own
/// under `to` (mode 0755, as cellrun's trust check wants).
fn install(crates: &[PluginCrate], from: &Path, to: &Path) -> anyhow::Result<Libraries> {
    let _ = fs::remove_dir_all(to);
    let mut libraries = Libraries::new();
    for plugin in crates {
        let dir = to.join(&plugin.lib);
        fs::create_dir_all(&dir)?;
        let source = from.join(plugin.file_name());
        let copy = dir.join(plugin.file_name());
        fs::copy(&source, &copy)
            .with_context(|| format!("cannot copy {} to {}", source.display(), copy.display()))?;
        set_mode(&dir, 0o755)?;
        set_mode(&copy, 0o755)?;
        libraries.insert(plugin.package.clone(), (plugin.clone(), dir));
    }
    Ok(libraries)
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> anyhow::Result<()> {
    Ok(())
}

fn cellrun_command(cellrun: &Path) -> Command {
    let mut command = Command::new(cellrun);
    for var in CELLRUN_VARS {
        command.env_remove(var);
    }
    command
}

/// Loads the library in `dir` with `cellrun plugins --json`; when it loads
/// and `scratch` is given, runs the notebook there with it.
fn load(
    cellrun: &Path,
    plugin: &PluginCrate,
    dir: &Path,
    scratch: Option<&PathBuf>,
) -> anyhow::Result<Outcome> {
    let output = cellrun_command(cellrun)
        .args(["plugins", "--json", "--plugin-dir"])
        .arg(dir)
        .output()
        .with_context(|| format!("cannot run {}", cellrun.display()))?;
    if !output.status.success() {
        bail!(
            "`{} plugins --json` failed: {}",
            cellrun.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let document: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("`{} plugins --json` printed no JSON", cellrun.display()))?;
    let file = plugin.file_name();
    let library = document["libraries"]
        .as_array()
        .and_then(|libraries| {
            libraries.iter().find(|library| {
                library["path"]
                    .as_str()
                    .is_some_and(|path| path.ends_with(&file))
            })
        })
        .with_context(|| format!("`cellrun plugins` does not list {file}"))?;
    let loaded = library["compatible"].as_bool() == Some(true);
    let mut outcome = Outcome {
        loaded,
        abi_version: library["abi_version"].as_str().unwrap_or("?").to_owned(),
        reason: one_line_reason(library["problem"].as_str().unwrap_or("")),
        ran: None,
    };
    if let (true, Some(scratch)) = (loaded, scratch) {
        let name = library["name"].as_str().unwrap_or_default();
        let kind = library["kind"].as_str().unwrap_or_default();
        outcome.ran = Some(run_notebook(cellrun, dir, scratch, name, kind)?);
    }
    Ok(outcome)
}

/// `plugin /path/lib.so skipped: REASON` → `REASON`.
fn one_line_reason(problem: &str) -> String {
    let reason = problem
        .split_once(" skipped: ")
        .map_or(problem, |(_, reason)| reason);
    reason.lines().next().unwrap_or_default().to_owned()
}

/// Runs the notebook with the plugin in `dir`: the plugin must be in use
/// and both cells must succeed, `b` with output 21.
fn run_notebook(
    cellrun: &Path,
    dir: &Path,
    scratch: &Path,
    name: &str,
    kind: &str,
) -> anyhow::Result<Result<(), String>> {
    let trace = scratch.join("trace.json");
    let output = cellrun_command(cellrun)
        .current_dir(scratch)
        .args(["run", "nb.rhai", "--json", "--plugin-dir"])
        .arg(dir)
        .arg("--plugin-opt")
        .arg(format!("trace.path={}", trace.display()))
        .output()
        .with_context(|| format!("cannot run {}", cellrun.display()))?;
    let events: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let event = |name: &'static str| events.iter().filter(move |event| event["event"] == name);
    if !output.status.success() {
        return Ok(Err(format!("exit status {}", output.status)));
    }
    let in_use = event("run_started").any(|started| match kind {
        "executor" => started["executor"] == name,
        _ => started["lifecycles"]
            .as_array()
            .is_some_and(|lifecycles| lifecycles.iter().any(|lifecycle| lifecycle == name)),
    });
    if !in_use {
        return Ok(Err(format!("the run did not use {kind} `{name}`")));
    }
    let finished: Vec<&Value> = event("cell_finished").collect();
    let ok = finished.len() == 2
        && finished.iter().all(|cell| cell["status"] == "ok")
        && finished
            .iter()
            .any(|cell| cell["cell"] == "b" && cell["output"] == 21);
    if !ok {
        return Ok(Err(format!("unexpected cell results: {finished:?}")));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(version: &str, body: &str) -> String {
        format!("# executor-abi {version} root module layout (…)\n{body}")
    }

    #[test]
    fn a_layout_change_needs_a_minor_or_major_bump() {
        let old = snapshot("1.0.0", "a\n");
        assert_eq!(judge_layout(&old, &old), LayoutVerdict::Unchanged);
        assert_eq!(
            judge_layout(&old, &snapshot("1.1.0", "a\nb\n")),
            LayoutVerdict::Update
        );
        assert_eq!(
            judge_layout(&old, &snapshot("2.0.0", "c\n")),
            LayoutVerdict::Update
        );
        assert_eq!(
            judge_layout(&old, &snapshot("1.0.1", "a\n")),
            LayoutVerdict::Update
        );
        assert!(matches!(
            judge_layout(&old, &snapshot("1.0.0", "a\nb\n")),
            LayoutVerdict::Fail(_)
        ));
        assert!(matches!(
            judge_layout(&old, &snapshot("1.0.1", "a\nb\n")),
            LayoutVerdict::Fail(_)
        ));
    }

    #[test]
    fn the_baseline_file_names_a_commit() {
        assert_eq!(
            baselines_from("# comment\n\n abc123 \n def456\n")
                .first()
                .map(String::as_str),
            Some("abc123")
        );
        assert!(baselines_from("# only a comment\n").is_empty());
        let recorded = read_baselines(&project_root()).unwrap().remove(0);
        assert_eq!(recorded.len(), 40, "a full commit id: {recorded}");
    }

    #[test]
    fn reasons_lose_the_path_prefix() {
        assert_eq!(
            one_line_reason("plugin /x/libp.so skipped: built against 2.0.0\nmore"),
            "built against 2.0.0"
        );
    }

    #[test]
    fn the_committed_snapshot_header_matches_executor_abis_version() {
        let root = project_root();
        let snapshot = fs::read_to_string(root.join("executor-abi/abi-layout.txt")).unwrap();
        assert_eq!(
            snapshot_version(&snapshot).map(str::to_owned),
            Some(abi_version_at(&root).unwrap()),
            "run `cargo xtask abi-check --layout`"
        );
    }
}
