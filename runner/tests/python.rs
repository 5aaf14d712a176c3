//! marimo notebooks (`.py`): `check`, `graph` and the static errors, and
//! parity of `cellrun check --json` with marimo's own analysis.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::util::Dir;

const HEADER: &str = "import marimo\n\n__generated_with = \"0.25.2\"\napp = marimo.App()\n";

/// A marimo notebook of `cells`, each `(name, body)` with a 4-space body.
fn notebook(cells: &[(&str, &str)]) -> String {
    let mut text = HEADER.to_owned();
    for (name, body) in cells {
        text.push_str(&format!("\n\n@app.cell\ndef {name}():\n"));
        for line in body.lines() {
            text.push_str(&format!("    {line}\n"));
        }
        text.push_str("    return\n");
    }
    text.push_str("\n\nif __name__ == \"__main__\":\n    app.run()\n");
    text
}

fn check(dir: &Dir, text: &str) -> (i32, Value) {
    dir.write("nb.py", text);
    let output = dir.cellrun(&["check", "nb.py", "--json"]);
    let document = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "check printed no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), document)
}

#[test]
fn a_py_file_is_checked_as_a_marimo_notebook() {
    let dir = Dir::new("py-check");
    let text = notebook(&[
        ("data", "xs = [1, 2, 3]\n_scratch = len(xs)"),
        ("_", "def total(values):\n    return sum(values) + offset"),
        ("report", "t = total(xs)\nprint(t)\nt"),
        ("settings", "offset = 10"),
    ]);
    let (code, document) = check(&dir, &text);
    assert_eq!(code, 0, "{document}");
    let cells = document["cells"].as_array().unwrap();
    let names: Vec<&str> = cells
        .iter()
        .map(|cell| cell["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["data", "cell-2", "report", "settings"]);
    assert_eq!(cells[0]["defs"], json!(["xs"]));
    assert_eq!(cells[0]["line"], 9);
    assert_eq!(cells[1]["defs"], json!(["total"]));
    assert_eq!(
        cells[1]["refs"],
        json!(["offset"]),
        "builtins are not references"
    );
    assert_eq!(cells[1]["parents"], json!(["settings"]));
    assert_eq!(cells[2]["refs"], json!(["total", "xs"]));
    assert_eq!(cells[2]["parents"], json!(["data", "cell-2"]));
}

#[test]
fn static_errors_of_a_python_notebook() {
    let dir = Dir::new("py-static");
    let text = notebook(&[
        ("one", "x = 1"),
        ("two", "x = 2"),
        ("loop_a", "a = b"),
        ("loop_b", "b = a"),
        ("broken", "y = (1,\nz = 2"),
        ("uses_y", "w = y"),
    ]);
    let (code, document) = check(&dir, &text);
    assert_eq!(code, 1);
    let error = |cell: usize| &document["cells"][cell]["error"];
    assert_eq!(error(0)["kind"], "multiple_definitions");
    assert_eq!(error(1)["kind"], "multiple_definitions");
    assert_eq!(error(2)["kind"], "cycle");
    assert_eq!(error(3)["kind"], "cycle");
    assert_eq!(error(4)["kind"], "syntax");
    // The body starts on line 33; the parser stops at the `=` of its second line.
    assert_eq!(error(4)["line"], 34, "{}", error(4));
    assert_eq!(document["cells"][5]["parents"], json!(["broken"]));
}

#[test]
fn an_unparsable_cell_is_a_syntax_error_at_its_line() {
    let dir = Dir::new("py-unparsable");
    let text = format!(
        "{HEADER}\n\napp._unparsable_cell(\n    r\"\"\"\n    x = 1\n    y = = 2\n    \"\"\",\n    name=\"bad\",\n)\n"
    );
    let (code, document) = check(&dir, &text);
    assert_eq!(code, 1);
    let cell = &document["cells"][0];
    assert_eq!(cell["name"], "bad");
    assert_eq!(cell["error"]["kind"], "syntax");
    assert_eq!(cell["error"]["line"], 10, "{cell}");
}

#[test]
fn graph_of_a_python_notebook() {
    let dir = Dir::new("py-graph");
    dir.write("nb.py", &notebook(&[("a", "x = 1"), ("b", "y = x + 1")]));
    let output = dir.cellrun(&["graph", "nb.py", "--format", "dot"]);
    assert_eq!(output.status.code(), Some(0));
    let dot = String::from_utf8(output.stdout).unwrap();
    assert!(dot.contains("\"a\" -> \"b\""), "{dot}");
}

#[test]
fn a_py_file_that_is_not_a_notebook_is_refused() {
    let dir = Dir::new("py-not-marimo");
    dir.write("script.py", "print('hello')\n");
    let output = dir.cellrun(&["check", "script.py"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a marimo notebook"), "{stderr}");
    assert!(stderr.contains("script.py"), "{stderr}");
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python of the virtual environment with marimo that `.ci/run`
/// creates, or `None` when `CELLRUN_SKIP_MARIMO` asks to skip.
pub(crate) fn marimo_python() -> Option<PathBuf> {
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
         `python3 -m venv target/py-venv && target/py-venv/bin/pip install marimo==0.25.2 cloudpickle==3.1.3` \
         (or set CELLRUN_SKIP_MARIMO=1 to skip this test)",
        python.display()
    );
}

#[test]
fn check_json_matches_marimo_on_the_corpus() {
    let Some(python) = marimo_python() else {
        return;
    };
    let corpus = workspace_root().join("python-notebook/tests/parity/notebooks");
    let script = workspace_root().join("python-notebook/tests/parity/marimo_cells.py");
    let mut differences = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap()
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "py"))
        .collect();
    paths.sort();
    for path in &paths {
        let output = Command::new(&python)
            .arg(&script)
            .arg(path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
        let ours = crate::util::cellrun_command(&corpus)
            .args(["check", "--json"])
            .arg(path)
            .output()
            .unwrap();
        let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
        let ours = ours["cells"].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{}", path.display());
        let is_builtin = |name: &str| python_builtin(&python, name);
        for (mine, theirs) in ours.iter().zip(&theirs) {
            let name = mine["name"].as_str().unwrap();
            assert_eq!(Some(name), theirs["name"].as_str());
            if theirs.get("syntax_error").is_some() {
                if mine["error"]["kind"] != "syntax" {
                    differences.push(format!("{name}: marimo finds a syntax error, we do not"));
                }
                continue;
            }
            for what in ["defs", "refs"] {
                let mut mine: Vec<String> = strings(&mine[what]);
                let mut their: Vec<String> = strings(&theirs[what]);
                their.retain(|name| !is_builtin(name));
                mine.sort();
                their.sort();
                if mine != their {
                    differences.push(format!("{name}: {what} {mine:?} vs marimo's {their:?}"));
                }
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect()
}

/// Whether marimo counts `name` among the builtins (its `BUILTINS` set).
fn python_builtin(python: &Path, name: &str) -> bool {
    use std::collections::HashSet;
    use std::sync::OnceLock;
    static BUILTINS: OnceLock<HashSet<String>> = OnceLock::new();
    BUILTINS
        .get_or_init(|| {
            let output = Command::new(python)
                .args([
                    "-c",
                    "from marimo._ast.variables import BUILTINS; print('\\n'.join(sorted(BUILTINS)))",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .contains(name)
}
