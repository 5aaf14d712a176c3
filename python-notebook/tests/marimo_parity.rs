//! Parity with marimo itself: the same notebooks split and analysed by this
//! crate and by marimo (`parse_notebook` and `compile_cell`) give the same
//! cells, code, definitions and references.
//!
//! marimo runs from the virtual environment `.ci/run` creates at
//! `target/py-venv`. When it is missing the test fails and names the command
//! that creates it; set `CELLRUN_SKIP_MARIMO=1` to skip it instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is inside the workspace")
        .to_path_buf()
}

/// The virtual environment's Python with marimo, or `None` when the test is skipped.
fn marimo_python() -> Option<PathBuf> {
    let python = workspace_root().join("target/py-venv/bin/python");
    let has_marimo = Command::new(&python)
        .args(["-c", "import marimo"])
        .output()
        .is_ok_and(|output| output.status.success());
    if has_marimo {
        return Some(python);
    }
    if std::env::var_os("CELLRUN_SKIP_MARIMO").is_some() {
        eprintln!(
            "skipped: CELLRUN_SKIP_MARIMO is set and {} has no marimo",
            python.display()
        );
        return None;
    }
    panic!(
        "{} cannot import marimo; create the environment with `bash .ci/run` or \
         `python3 -m venv target/py-venv && target/py-venv/bin/pip install marimo` \
         (or set CELLRUN_SKIP_MARIMO=1 to skip this test)",
        python.display()
    );
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The code's tokens without comments and layout: marimo sometimes joins a
/// trailing comment to the line before it, which changes no token.
fn normalized(code: &str) -> Vec<String> {
    use ruff_python_ast::token::TokenKind;
    use ruff_text_size::Ranged;
    let parsed = ruff_python_parser::parse_unchecked(
        code,
        ruff_python_parser::ParseOptions::from(ruff_python_parser::Mode::Module),
    );
    parsed
        .tokens()
        .iter()
        .filter(|token| {
            !matches!(
                token.kind(),
                TokenKind::Comment
                    | TokenKind::NonLogicalNewline
                    | TokenKind::Newline
                    | TokenKind::Indent
                    | TokenKind::Dedent
                    | TokenKind::EndOfFile
            )
        })
        .map(|token| code[token.range()].to_owned())
        .collect()
}

/// The differences between marimo's view of `path` and ours, one per line.
fn differences(python: &Path, path: &Path) -> Vec<String> {
    let script = workspace_root().join("python-notebook/tests/parity/marimo_cells.py");
    let output = Command::new(python)
        .arg(&script)
        .arg(path)
        .output()
        .expect("run marimo");
    assert!(
        output.status.success(),
        "marimo failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<Value> = serde_json::from_slice(&output.stdout).expect("marimo's JSON");
    let text = std::fs::read_to_string(path).expect("read notebook");
    let ours = python_notebook::parse_notebook(&text).expect("our parse");
    let mut differences = Vec::new();
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    let our_names: Vec<&str> = ours.cells.iter().map(|cell| cell.name.as_str()).collect();
    let their_names: Vec<&str> = theirs
        .iter()
        .filter_map(|cell| cell["name"].as_str())
        .collect();
    if our_names != their_names {
        differences.push(format!(
            "{file}: cells {our_names:?} vs marimo's {their_names:?}"
        ));
        return differences;
    }
    for (cell, theirs) in ours.cells.iter().zip(&theirs) {
        let name = &cell.name;
        let their_code = theirs["code"].as_str().unwrap_or_default();
        if normalized(&cell.code) != normalized(their_code) {
            differences.push(format!(
                "{file} {name}: code\n{}\n--- vs marimo's ---\n{}",
                cell.code, their_code
            ));
        }
        match (
            python_notebook::analyze(&cell.code),
            theirs.get("syntax_error"),
        ) {
            (Ok(analysis), None) => {
                for (what, mine) in [
                    ("defs", sorted(&analysis.defs)),
                    ("refs", sorted(&analysis.refs)),
                    ("deleted_refs", sorted(&analysis.deleted_refs)),
                ] {
                    let their = strings(&theirs[what]);
                    if mine != their {
                        differences.push(format!(
                            "{file} {name}: {what} {mine:?} vs marimo's {their:?}"
                        ));
                    }
                }
            }
            (Err(error), Some(their)) => {
                // marimo's own refusals (`import *`) come without a line;
                // ours have one.
                let their_line = their["line"].as_u64();
                if let Some(their_line) = their_line.filter(|line| u64::from(error.line) != *line) {
                    differences.push(format!(
                        "{file} {name}: syntax error at line {} vs marimo's {their_line}",
                        error.line
                    ));
                }
            }
            (Ok(_), Some(their)) => {
                differences.push(format!(
                    "{file} {name}: marimo finds a syntax error: {their}"
                ));
            }
            (Err(error), None) => {
                differences.push(format!(
                    "{file} {name}: we find a syntax error marimo does not: {error}"
                ));
            }
        }
    }
    differences
}

#[test]
fn notebooks_split_and_analyse_as_marimo_does() {
    let Some(python) = marimo_python() else {
        return;
    };
    let dir = workspace_root().join("python-notebook/tests/parity/notebooks");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no notebooks in {}", dir.display());
    let differences: Vec<String> = paths
        .iter()
        .flat_map(|path| differences(&python, path))
        .collect();
    assert!(
        differences.is_empty(),
        "{} differences from marimo:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[test]
fn every_builtin_of_the_environment_is_known() {
    let Some(python) = marimo_python() else {
        return;
    };
    let output = Command::new(python)
        .args(["-c", "import builtins; print('\\n'.join(dir(builtins)))"])
        .output()
        .expect("run python");
    let unknown: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|name| !python_notebook::is_builtin(name))
        .map(str::to_owned)
        .collect();
    assert!(
        unknown.is_empty(),
        "builtins missing from the list: {unknown:?}"
    );
}

/// Random cells (`parity/random_cells.py`: nested functions, classes,
/// loops, comprehensions, `await`, `global`, `nonlocal`, most of them
/// refused) fail here exactly where CPython's compile, which marimo calls,
/// refuses them: never a cell CPython compiles, never one it refuses
/// passed, each refusal at CPython's line with its message (but for
/// parse errors, which CPython words as "invalid syntax").
#[test]
fn random_cells_are_refused_where_cpython_refuses_them() {
    let Some(python) = marimo_python() else {
        return;
    };
    let script = workspace_root().join("python-notebook/tests/parity/random_cells.py");
    let output = Command::new(&python)
        .arg(&script)
        .args(["20261203", "1500"])
        .output()
        .expect("the venv's Python runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cells: Vec<Value> = serde_json::from_slice(&output.stdout).expect("the script's JSON");
    let mut differences = Vec::new();
    let mut refused = 0;
    for cell in &cells {
        let code = cell["code"].as_str().unwrap_or_default();
        let theirs = cell["error"].as_array().map(|error| {
            (
                error[0].as_str().unwrap_or_default().to_owned(),
                error[1].as_u64().unwrap_or_default(),
            )
        });
        let ours = python_notebook::analyze(code)
            .err()
            .map(|error| (error.message, u64::from(error.line)));
        refused += usize::from(theirs.is_some());
        let same = match (&ours, &theirs) {
            (None, None) => true,
            (Some((mine, my_line)), Some((their, their_line))) => {
                my_line == their_line && (mine == their || their == "invalid syntax")
            }
            _ => false,
        };
        if !same {
            differences.push(format!("{code:?}: ours {ours:?}, CPython's {theirs:?}"));
        }
    }
    assert!(refused > 500, "only {refused} of the cells are refused");
    assert!(
        differences.is_empty(),
        "{} of {} cells differ:\n{}",
        differences.len(),
        cells.len(),
        differences.join("\n")
    );
}
