//! `cargo xtask build-plugins [--release] [--out DIR]`: builds every plugin
//! crate under `plugins/` and copies each shared library into DIR (default
//! `target/plugins`), so that copying one file into a plugin directory
//! installs one plugin. The test fixtures, which misbehave on purpose, go
//! to `DIR/testing/`, out of the way of `--plugin-dir DIR`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::{cargo, project_root};

/// A plugin crate: its package name and the name of its library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PluginCrate {
    pub(crate) package: String,
    pub(crate) lib: String,
}

impl PluginCrate {
    /// The library's file name on this platform, e.g. `libplugin_trace.so`.
    pub(crate) fn file_name(&self) -> String {
        format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            self.lib,
            std::env::consts::DLL_SUFFIX
        )
    }
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut release = false;
    let mut out = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--release" => release = true,
            "--out" => {
                let dir = args.next().context("`--out` needs a directory")?;
                out = Some(PathBuf::from(dir));
            }
            other => bail!("unknown argument `{other}` (expected --release or --out DIR)"),
        }
    }
    let root = project_root();
    let target = workspace_target_dir(&root);
    let out = out.unwrap_or_else(|| target.join("plugins"));
    let profile = if release { "release" } else { "debug" };
    let crates = build(&root, &target, profile, &[])?;
    let fixtures = find_plugins(&root.join("plugins").join("testing"))?;
    let fixture_dir = out.join("testing");
    for dir in [&out, &fixture_dir] {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for plugin in &crates {
        let from = target.join(profile).join(plugin.file_name());
        let dir = if fixtures.contains(plugin) {
            &fixture_dir
        } else {
            &out
        };
        let to = dir.join(plugin.file_name());
        fs::copy(&from, &to)
            .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
        println!("{}", to.display());
    }
    Ok(())
}

/// The target directory of the workspace at `root`: `CARGO_TARGET_DIR` or `root/target`.
pub(crate) fn workspace_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Builds every plugin crate of the workspace at `root`, plus the
/// `extra` packages, into `target` with `profile` (`debug` or `release`),
/// in one cargo invocation. The libraries end up in `target/<profile>/`.
pub(crate) fn build(
    root: &Path,
    target: &Path,
    profile: &str,
    extra: &[&str],
) -> anyhow::Result<Vec<PluginCrate>> {
    let crates = find_plugins(&root.join("plugins"))?;
    if crates.is_empty() {
        bail!("no plugin crates under {}", root.join("plugins").display());
    }
    let mut command = Command::new(cargo());
    command
        .current_dir(root)
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target);
    if profile == "release" {
        command.arg("--release");
    }
    for package in crates
        .iter()
        .map(|plugin| plugin.package.as_str())
        .chain(extra.iter().copied())
    {
        command.args(["-p", package]);
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "building the plugins of {} failed ({status})",
            root.display()
        );
    }
    Ok(crates)
}

/// Every crate under `dir` (recursively) whose manifest builds a cdylib.
pub(crate) fn find_plugins(dir: &Path) -> anyhow::Result<Vec<PluginCrate>> {
    let mut crates = Vec::new();
    let manifest = dir.join("Cargo.toml");
    if manifest.is_file() {
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        if let Some(plugin) = parse_manifest(&text) {
            crates.push(plugin);
        }
        return Ok(crates);
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    entries.sort();
    for entry in entries {
        crates.extend(find_plugins(&entry)?);
    }
    Ok(crates)
}

/// The package and library names of a plugin manifest, if it builds a cdylib.
fn parse_manifest(text: &str) -> Option<PluginCrate> {
    let mut section = "";
    let mut package = None;
    let mut lib = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        let value = |line: &str| {
            let (key, value) = line.split_once('=')?;
            (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
        };
        match section {
            "[package]" => package = package.or_else(|| value(line)),
            "[lib]" => lib = lib.or_else(|| value(line)),
            _ => {}
        }
    }
    if !text.contains("cdylib") {
        return None;
    }
    let package = package?;
    let lib = lib.unwrap_or_else(|| package.replace('-', "_"));
    Some(PluginCrate { package, lib })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_give_package_and_library_names() {
        let text = "[package]\nname = \"plugin-trace\"\n\n[lib]\nname = \"plugin_trace\"\ncrate-type = [\"cdylib\", \"rlib\"]\n";
        assert_eq!(
            parse_manifest(text),
            Some(PluginCrate {
                package: "plugin-trace".into(),
                lib: "plugin_trace".into()
            })
        );
        assert_eq!(parse_manifest("[package]\nname = \"x\"\n"), None);
    }

    #[test]
    fn every_plugin_crate_is_found_fixtures_included() {
        let crates = find_plugins(&project_root().join("plugins")).unwrap();
        let packages: Vec<&str> = crates
            .iter()
            .map(|plugin| plugin.package.as_str())
            .collect();
        for expected in [
            "plugin-retry",
            "plugin-trace",
            "plugin-passthrough",
            "plugin-not-a-plugin",
        ] {
            assert!(packages.contains(&expected), "{packages:?}");
        }
    }
}
