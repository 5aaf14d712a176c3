//! Repository checks that must always hold.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::project_root;

pub(crate) fn run() -> anyhow::Result<()> {
    let problems = check(&project_root())?;
    if problems.is_empty() {
        println!("tidy: ok");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("{} problem(s)", problems.len())
}

/// Every problem found under `root`.
fn check(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut files = Vec::new();
    collect(root, &mut files)?;
    for file in &files {
        let relative = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        let text = fs::read_to_string(file).with_context(|| format!("cannot read {relative}"))?;
        if name.ends_with(".rs") {
            if !text.trim_start().starts_with("//!") {
                problems.push(format!(
                    "{relative}: missing a `//!` module doc comment at the top"
                ));
            }
            if text.contains(&["#[should", "_panic"].concat()) {
                problems.push(format!(
                    "{relative}: tests assert errors with `matches!`, not by expecting a panic"
                ));
            }
            if text.contains(&["#[", "ignore]"].concat()) {
                problems.push(format!(
                    "{relative}: no test is ignored; fix it or assert the current behaviour"
                ));
            }
        }
        if name == "Cargo.toml" && file.parent() != Some(root) {
            if !text.contains("[lints]\nworkspace = true") {
                problems.push(format!("{relative}: missing `[lints] workspace = true`"));
            }
            let in_plugins = file.strip_prefix(root.join("plugins")).is_ok();
            if in_plugins && !text.contains(r#"crate-type = ["cdylib", "rlib"]"#) {
                problems.push(format!(
                    "{relative}: a plugin is built as `crate-type = [\"cdylib\", \"rlib\"]`"
                ));
            }
        }
    }
    Ok(problems)
}

/// Rust sources and manifests of the workspace, skipping build output.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | ".cellrun") && !name.starts_with('.') {
                collect(&path, files)?;
            }
        } else if name.ends_with(".rs") || name == "Cargo.toml" {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_is_tidy() {
        let problems = check(&project_root()).unwrap();
        assert!(
            problems.is_empty(),
            "tidy problems:\n{}",
            problems.join("\n")
        );
    }
}
