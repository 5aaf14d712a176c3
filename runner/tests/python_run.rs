//! Running marimo notebooks end to end: the real `cellrun` with the python
//! executor plugin, in the virtual environment with marimo that `.ci/run`
//! creates; outputs compared with marimo's own `app.run()`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::python::marimo_python;
use crate::util::{cellrun_command, Dir, Run, Started};

const HEADER: &str = "import marimo\n\n__generated_with = \"0.25.2\"\napp = marimo.App()\n";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The python plugin, built once, alone in a directory of its own.
fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "plugin-python"])
            .output()
            .expect("cargo runs");
        assert!(
            output.status.success(),
            "building the python plugin failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let dir = target.join("test-plugins-python");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            target.join("debug/libplugin_python.so"),
            dir.join("libplugin_python.so"),
        )
        .unwrap();
        dir
    })
}

/// `cellrun` for a Python notebook: the plugin, and marimo's environment
/// active as a user would have it.
fn python_cellrun(dir: &Path) -> Option<Command> {
    let python = marimo_python()?;
    let venv = python
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let mut command = cellrun_command(dir);
    command
        .env("VIRTUAL_ENV", venv)
        .arg("run")
        .arg("--plugin-dir")
        .arg(plugin_dir());
    Some(command)
}

fn run_py(dir: &Dir, text: &str, extra: &[&str]) -> Option<Run> {
    dir.write("nb.py", text);
    let mut command = python_cellrun(dir.path())?;
    command.args(["nb.py", "--json"]).args(extra);
    Some(Run::from_output(command.output().unwrap()))
}

fn notebook(cells: &[(&str, &str)]) -> String {
    let mut text = HEADER.to_owned();
    for (name, body) in cells {
        let (decorator, name) = match name.strip_prefix("async ") {
            Some(name) => ("async def", name),
            None => ("def", *name),
        };
        text.push_str(&format!("\n\n@app.cell\n{decorator} {name}():\n"));
        for line in body.lines() {
            text.push_str(&format!("    {line}\n"));
        }
        text.push_str("    return\n");
    }
    text.push_str("\n\nif __name__ == \"__main__\":\n    app.run()\n");
    text
}

#[test]
fn the_python_tour_runs_as_documented() {
    let dir = Dir::new("py-tour");
    let tour = std::fs::read_to_string(workspace_root().join("examples/tour.py")).unwrap();
    let Some(run) = run_py(&dir, &tour, &[]) else {
        return;
    };
    assert_eq!(
        run.code, 1,
        "the tour fails one cell on purpose: {:#?}",
        run.events
    );
    assert_eq!(run.status("risky"), "error");
    let error = &run.finished("risky")["error"];
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("ZeroDivisionError: division by zero"),
        "{error}"
    );
    assert_eq!(error["line"], 61);
    assert_eq!(run.status("uses_ratio"), "cancelled");
    assert_eq!(
        run.finished("report")["stdout"],
        "HELLO! 5 numbers add up to 15\n"
    );
    assert_eq!(run.finished("numbers")["output"], json!([3, 6, 9, 12, 15]));
    assert_eq!(run.finished("report")["output"], 45);
    assert_eq!(run.finished("_private")["output"], 17);
}

/// Each cell's output as `cellrun run --json` reports it, by name.
fn outputs(run: &Run) -> Vec<(String, Value)> {
    run.events("cell_finished")
        .iter()
        .map(|event| {
            (
                event["cell"].as_str().unwrap().to_owned(),
                event.get("output").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

#[test]
fn outputs_match_marimos_app_run() {
    let Some(python) = marimo_python() else {
        return;
    };
    let script = workspace_root().join("runner/tests/python/marimo_run.py");
    for example in ["examples/inventory.py"] {
        let path = workspace_root().join(example);
        let theirs = Command::new(&python)
            .arg(&script)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            theirs.status.success(),
            "{}",
            String::from_utf8_lossy(&theirs.stderr)
        );
        let theirs: Vec<(String, Value)> = serde_json::from_slice(&theirs.stdout).unwrap();
        let dir = Dir::new("py-parity");
        let text = std::fs::read_to_string(&path).unwrap();
        let run = run_py(&dir, &text, &[]).unwrap();
        assert_eq!(run.code, 0, "{:#?}", run.events);
        let ours = outputs(&run);
        for (name, value) in theirs {
            let mine = ours
                .iter()
                .find(|(cell, _)| *cell == name)
                .map(|(_, output)| output.clone())
                .unwrap_or_else(|| panic!("no result for {name}"));
            assert_eq!(mine, value, "{example} {name}");
        }
    }
}

#[test]
fn errors_cancel_descendants_and_the_rest_runs() {
    let dir = Dir::new("py-errors");
    let text = notebook(&[
        ("base", "x = 1"),
        ("fails", "y = x / 0"),
        ("child", "z = y + 1"),
        ("unrelated", "w = x + 1\nw"),
        ("missing", "undefined_name + 1"),
    ]);
    let Some(run) = run_py(&dir, &text, &[]) else {
        return;
    };
    assert_eq!(run.code, 1);
    assert_eq!(run.status("fails"), "error");
    assert_eq!(run.finished("fails")["error"]["line"], 15);
    assert_eq!(run.status("child"), "cancelled");
    assert_eq!(run.finished("unrelated")["output"], 2);
    let missing = &run.finished("missing")["error"];
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .starts_with("NameError"),
        "{missing}"
    );
}

#[test]
fn order_follows_the_graph_not_the_file() {
    let dir = Dir::new("py-order");
    let text = notebook(&[("uses", "b = a + 1\nb"), ("defines", "a = 41")]);
    let Some(run) = run_py(&dir, &text, &[]) else {
        return;
    };
    assert_eq!(run.started(), ["defines", "uses"]);
    assert_eq!(run.finished("uses")["output"], 42);
}

#[test]
fn async_cells_await_at_the_top_level() {
    let dir = Dir::new("py-async");
    let text = notebook(&[(
        "async waits",
        "import asyncio\nawait asyncio.sleep(0)\nvalue = 7\nvalue * 6",
    )]);
    let Some(run) = run_py(&dir, &text, &[]) else {
        return;
    };
    assert_eq!(run.finished("waits")["output"], 42, "{:#?}", run.events);
}

#[test]
fn cell_selects_a_cell_and_its_ancestors() {
    let dir = Dir::new("py-cell");
    let text = notebook(&[("a", "x = 1"), ("b", "y = x + 1\ny"), ("c", "z = 3")]);
    let Some(run) = run_py(&dir, &text, &["--cell", "b"]) else {
        return;
    };
    assert_eq!(run.started(), ["a", "b"]);
    assert_eq!(run.finished("b")["output"], 2);
}

#[test]
fn sigint_interrupts_a_running_python_cell() {
    let dir = Dir::new("py-sigint");
    dir.write(
        "nb.py",
        &notebook(&[
            (
                "busy",
                "print('started', flush=True)\nwhile True:\n    pass",
            ),
            ("other", "q = 1"),
        ]),
    );
    let Some(mut command) = python_cellrun(dir.path()) else {
        return;
    };
    command.args(["nb.py", "--json"]);
    let started = Started::new(command, "busy");
    started.signal(started.child.id(), "INT");
    let run = started.finish();
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert_eq!(run.status("busy"), "interrupted");
}

#[test]
fn timeout_stops_a_python_cell() {
    let dir = Dir::new("py-timeout");
    let text = notebook(&[("slow", "while True:\n    pass"), ("fast", "f = 1\nf")]);
    let Some(run) = run_py(&dir, &text, &["--timeout", "0.5"]) else {
        return;
    };
    assert_eq!(
        run.finished("slow")["error"]["kind"],
        "timeout",
        "{:#?}",
        run.events
    );
    assert_eq!(run.finished("fast")["output"], 1);
}

#[test]
fn marimo_markdown_is_displayed() {
    let dir = Dir::new("py-md");
    let text = notebook(&[
        ("imports", "import marimo as mo"),
        ("text", "mo.md('# Hello')"),
    ]);
    let Some(run) = run_py(&dir, &text, &[]) else {
        return;
    };
    // The value's display form is marimo's own rendering of the Markdown.
    let finished = run.finished("text");
    let output = finished["output"].as_str().unwrap_or_default();
    assert!(
        output.contains("<h1") && output.contains("Hello"),
        "{finished}"
    );
    // The rich form reaches the event as marimo's own `_mime_` gives it:
    // `mo.md` reports `text/markdown` with the rendered HTML as its data.
    assert_eq!(finished["display"]["mime"], "text/markdown", "{finished}");
    assert!(finished["display"]["data"]
        .as_str()
        .unwrap()
        .contains("Hello"));
}
