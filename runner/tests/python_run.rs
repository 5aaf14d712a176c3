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
pub(crate) fn plugin_dir() -> &'static Path {
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

/// Errors only CPython's compiler finds (ruff parses the cell) are placed
/// at their notebook line too, not at the line within the cell; those of
/// CPython's symbol table are found before the run, as marimo finds them.
#[test]
fn compile_errors_of_cpython_alone_are_at_their_notebook_line() {
    let dir = Dir::new("py-compile-errors");
    let text = notebook(&[
        ("base", "x = 1"),
        ("bad", "y = x\n\nasync def f():\n    yield 1\n    return y"),
        ("after", "w = x + 1\nw"),
        ("unbound", "def g():\n    nonlocal zz"),
    ]);
    let Some(run) = run_py(&dir, &text, &[]) else {
        return;
    };
    let error = &run.finished("bad")["error"];
    assert_eq!(
        error["message"], "SyntaxError: 'return' with value in async generator",
        "{error}"
    );
    assert_eq!(
        error["kind"], "runtime",
        "found as the cell compiles: {error}"
    );
    let line = |needle: &str| text.lines().position(|line| line.contains(needle)).unwrap() + 1;
    assert_eq!(error["line"], json!(line("return y")), "{error}");
    assert_eq!(run.finished("after")["output"], 2);
    let error = &run.finished("unbound")["error"];
    assert_eq!(
        error["message"], "no binding for nonlocal 'zz' found",
        "{error}"
    );
    assert_eq!(error["kind"], "syntax", "found before the run: {error}");
    assert_eq!(error["line"], json!(line("nonlocal zz")), "{error}");
}

/// The plugin compiles, runs and captures cells through CPython's C API;
/// each of these is what `compile` of a `str` and `exec` give in marimo.
#[test]
fn cells_compile_and_print_as_compile_and_exec_do() {
    let dir = Dir::new("py-compile-exec");
    let text = notebook(&[
        // A coding cookie in a cell is ignored: the code is text already.
        ("cookie", "# -*- coding: latin-1 -*-\ns = \"é\"\nlen(s)"),
        // A compile-time warning is printed in the cell's output.
        ("warns", "literal = 1\nliteral is 1"),
        // Nested code is shifted to its notebook lines too.
        ("nested", "def boom():\n    return 1 / 0\n\nboom()"),
        // stdout and stderr together, in the order written.
        (
            "streams",
            "import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c')",
        ),
        // A cell rebinding sys.stdout has it put back after it.
        (
            "rebinds",
            "import io\nimport sys as _sys\n_sys.stdout = io.StringIO()\nprint('hidden')",
        ),
        ("after_rebind", "x = 1\nprint('shown')"),
    ]);
    let Some(run) = run_py(&dir, &text, &[]) else {
        return;
    };
    assert_eq!(run.finished("cookie")["output"], 1, "{:#?}", run.events);
    let warns = run.finished("warns");
    assert_eq!(warns["output"], true);
    assert!(
        warns["stdout"]
            .as_str()
            .unwrap()
            .contains("SyntaxWarning: \"is\" with a literal"),
        "{warns}"
    );
    let line = |needle: &str| text.lines().position(|line| line.contains(needle)).unwrap() + 1;
    let error = &run.finished("nested")["error"];
    assert_eq!(error["message"], "ZeroDivisionError: division by zero");
    assert_eq!(error["line"], json!(line("return 1 / 0")), "{error}");
    let traceback = run.finished("nested")["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        traceback.contains(&format!("line {}, in boom", line("return 1 / 0"))),
        "{traceback}"
    );
    assert_eq!(run.finished("streams")["stdout"], "a\nb\nc\n");
    assert_eq!(run.finished("rebinds")["stdout"], "");
    assert_eq!(run.finished("after_rebind")["stdout"], "shown\n");
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

#[test]
fn strict_isolates_in_place_mutation_of_python_values() {
    let dir = Dir::new("py-strict");
    let text = notebook(&[
        ("make", "items = [1]"),
        // A function that reads the global when called, defined before the
        // mutation: it must see the original again afterwards.
        ("helper", "def count():\n    return len(items)"),
        ("mutates", "items.append(2)\nlen(items)"),
        ("calls", "count()"),
        ("reads", "len(items)"),
    ]);
    let Some(plain) = run_py(&dir, &text, &[]) else {
        return;
    };
    assert_eq!(plain.finished("mutates")["output"], 2);
    assert_eq!(
        (
            &plain.finished("calls")["output"],
            &plain.finished("reads")["output"]
        ),
        (&json!(2), &json!(2)),
        "without strict the mutation is shared, as in marimo"
    );
    let strict = run_py(&dir, &text, &["--strict"]).unwrap();
    assert_eq!(strict.code, 0, "{:#?}", strict.events);
    assert_eq!(strict.events[0]["lifecycles"], json!(["strict"]));
    assert_eq!(
        strict.finished("mutates")["output"],
        2,
        "the cell sees its own change"
    );
    assert_eq!(
        strict.finished("reads")["output"],
        1,
        "{:#?}",
        strict.events
    );
    assert_eq!(
        strict.finished("calls")["output"],
        1,
        "a function reading the global sees the original, not the copy"
    );

    // A value `copy.deepcopy` refuses is a strict error of the reading cell.
    let text = notebook(&[
        ("gen", "g = (i for i in range(3))"),
        ("uses", "next(g)"),
        ("other", "o = 1\no"),
    ]);
    let strict = run_py(&dir, &text, &["--strict"]).unwrap();
    let error = &strict.finished("uses")["error"];
    assert_eq!(error["kind"], "strict", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("cannot copy `g` for the cell: a value of type `generator`"),
        "{error}"
    );
    assert_eq!(strict.finished("other")["output"], 1);
}

/// The cells of the cache test; `data` and `double` as given.
fn cache_notebook(data: &str, double: &str) -> String {
    notebook(&[
        ("imports", "import math"),
        ("data", &format!("xs = {data}\nprint('computing')")),
        ("total", "t = sum(xs)\nt"),
        ("fn", &format!("def double(v):\n    return {double}")),
        ("uses_fn", "double(t) + math.floor(2.5)"),
        ("gen", "g = (i for i in range(3))"),
        ("mix", "len(xs) + next(g)"),
        ("mod", "import marimo as mo"),
        ("md", "mo.md(f'# total {t}')"),
    ])
}

#[test]
fn cache_reuses_python_results_and_runs_unstorable_values_live() {
    let dir = Dir::new("py-cache");
    let cache = dir.path().join("cache");
    let cache_arg = format!("--cache={}", cache.display());
    let text = cache_notebook("[1, 2, 3]", "2 * v");
    let Some(first) = run_py(&dir, &text, &[&cache_arg]) else {
        return;
    };
    assert_eq!(first.code, 0, "{:#?}", first.events);
    let second = run_py(&dir, &text, &[&cache_arg]).unwrap();
    assert_eq!(second.code, 0, "{:#?}", second.events);
    let cached = |run: &Run| -> Vec<(String, bool)> {
        run.events("cell_finished")
            .iter()
            .map(|event| {
                (
                    event["cell"].as_str().unwrap().to_owned(),
                    event["cached"].as_bool().unwrap(),
                )
            })
            .collect()
    };
    let hits = |run: &Run| -> Vec<String> {
        cached(run)
            .into_iter()
            .filter(|(_, cached)| *cached)
            .map(|(cell, _)| cell)
            .collect()
    };
    assert_eq!(
        hits(&second),
        ["imports", "data", "total", "uses_fn", "mod", "md"],
        "the cells defining a function or a generator, and the one reading the generator, run live"
    );
    for (cell, _) in cached(&first) {
        let (live, restored) = (first.finished(&cell), second.finished(&cell));
        for field in ["output", "stdout", "display", "status"] {
            assert_eq!(live[field], restored[field], "{cell}: {field}");
        }
    }
    assert_eq!(second.finished("data")["stdout"], "computing\n");
    assert_eq!(second.finished("uses_fn")["output"], 14);
    assert_eq!(
        second.finished("mix")["output"],
        3,
        "a live cell reads the definitions restored from the cache"
    );
    assert_eq!(second.finished("md")["display"]["mime"], "text/markdown");
    let warnings: Vec<&str> = second
        .events("warning")
        .iter()
        .map(|warning| warning["message"].as_str().unwrap())
        .collect();
    assert!(
        warnings.iter().any(|warning| warning.contains("cell `gen`")
            && warning.contains("`g` is not storable: a value of type `generator`")),
        "{warnings:#?}"
    );
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("cell `mix` runs live: its input `g`")),
        "{warnings:#?}"
    );

    // A changed input misses in every cell it reaches, and only there.
    let changed = run_py(&dir, &cache_notebook("[1, 2, 4]", "2 * v"), &[&cache_arg]).unwrap();
    assert_eq!(hits(&changed), ["imports", "mod"], "{:#?}", changed.events);
    assert_eq!(changed.finished("uses_fn")["output"], 16);
    // A changed function body misses in its callers, though its name is the same.
    let text = cache_notebook("[1, 2, 4]", "3 * v");
    let body = run_py(&dir, &text, &[&cache_arg]).unwrap();
    assert_eq!(
        hits(&body),
        ["imports", "data", "total", "mod", "md"],
        "{:#?}",
        body.events
    );
    assert_eq!(body.finished("uses_fn")["output"], 23);
}

#[test]
fn the_memory_limit_stops_a_python_cell_allocating_past_it() {
    let dir = Dir::new("py-memory");
    let text = notebook(&[
        // Three gigabytes if nothing stopped it, a megabyte at a time.
        (
            "hog",
            "blocks = []\nfor _ in range(3000):\n    blocks.append(bytearray(10**6))",
        ),
        ("reader", "len(blocks)"),
        ("after", "z = 1\nz"),
    ]);
    let Some(run) = run_py(&dir, &text, &["--max-memory", "300"]) else {
        return;
    };
    let error = &run.finished("hog")["error"];
    assert_eq!(error["kind"], "runtime", "{:#?}", run.events);
    assert_eq!(
        error["message"], "cell stopped: the run went over its memory limit",
        "{error}"
    );
    assert_eq!(run.status("reader"), "cancelled");
    assert_eq!(
        run.finished("after")["output"],
        1,
        "the hog's definitions are dropped, so later cells run"
    );
}

#[test]
fn one_python_allocation_above_the_memory_limit_is_refused_before_it_is_made() {
    let dir = Dir::new("py-one-allocation");
    let text = notebook(&[
        // Two gigabytes in one C call: no bytecode boundary to stop it at.
        ("huge", "blob = b\"x\" * (2 * 2**30)"),
        ("reader", "len(blob)"),
        (
            "careful",
            "try:\n    big = bytearray(2**31)\nexcept MemoryError:\n    big = None\nbig is None",
        ),
        ("after", "z = [0] * 1000\nlen(z)"),
    ]);
    let Some(run) = run_py(&dir, &text, &["--max-memory", "300"]) else {
        return;
    };
    let error = &run.finished("huge")["error"];
    assert_eq!(error["kind"], "runtime", "{:#?}", run.events);
    assert_eq!(
        error["message"],
        "MemoryError: one allocation of 2147483681 bytes is larger than the run's memory limit (300 MiB)",
        "{error}"
    );
    assert_eq!(run.status("reader"), "cancelled");
    assert_eq!(
        run.finished("careful")["output"],
        true,
        "a cell may catch the refusal"
    );
    assert_eq!(run.finished("after")["output"], 1000);
}

/// A directory holding a copy of the `cellrun` binary (a hard link when it
/// can), and the python plugin beside it when `with_plugin`.
fn cellrun_elsewhere(dir: &Dir, with_plugin: bool) -> PathBuf {
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link_or_copy = |from: &Path, to: &Path| {
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to).unwrap();
        }
    };
    let cellrun = bin.join("cellrun");
    link_or_copy(Path::new(env!("CARGO_BIN_EXE_cellrun")), &cellrun);
    if with_plugin {
        link_or_copy(
            &plugin_dir().join("libplugin_python.so"),
            &bin.join("libplugin_python.so"),
        );
    }
    cellrun
}

#[test]
fn the_python_plugin_is_found_beside_cellrun_without_a_flag() {
    let Some(python) = marimo_python() else {
        return;
    };
    let venv = python
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    // Built where `cargo build` puts it: beside the test's `cellrun`.
    plugin_dir();
    let dir = Dir::new("py-default-plugin");
    dir.write("nb.py", &notebook(&[("a", "x = 20 + 1\nx")]));
    let run = |cellrun: &Path| {
        let mut command = Command::new(cellrun);
        crate::util::clean_env(&mut command, dir.path());
        command
            .env("VIRTUAL_ENV", &venv)
            .args(["run", "nb.py", "--json"]);
        Run::from_output(command.output().unwrap())
    };
    let here = run(Path::new(env!("CARGO_BIN_EXE_cellrun")));
    assert_eq!(here.code, 0, "{}", here.stderr);
    assert_eq!(here.events[0]["executor"], "python");
    assert_eq!(here.finished("a")["output"], 21);
    assert!(
        here.events("warning").is_empty(),
        "only the python plugin is loaded from beside cellrun, not the other libraries there: {:#?}",
        here.events("warning")
    );

    let elsewhere = Dir::new("py-default-plugin-copy");
    let with_plugin = run(&cellrun_elsewhere(&elsewhere, true));
    assert_eq!(
        with_plugin.finished("a")["output"],
        21,
        "{}",
        with_plugin.stderr
    );

    let bare = Dir::new("py-default-plugin-missing");
    let cellrun = cellrun_elsewhere(&bare, false);
    let missing = run(&cellrun);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    let looked = cellrun.with_file_name("libplugin_python.so");
    assert!(
        missing
            .stderr
            .contains(&format!("looked for {}", looked.display()))
            && missing.stderr.contains("cargo build -p plugin-python"),
        "{}",
        missing.stderr
    );
}

#[test]
fn python_flag_chooses_the_interpreter() {
    let Some(python) = marimo_python() else {
        return;
    };
    let dir = Dir::new("py-python-flag");
    dir.write(
        "nb.py",
        &notebook(&[("a", "import marimo\nversion = marimo.__version__\nversion")]),
    );
    let run = |python: &Path| {
        let mut command = cellrun_command(dir.path());
        command
            .env_remove("VIRTUAL_ENV")
            .args(["run", "--plugin-dir"])
            .arg(plugin_dir())
            .arg("--python")
            .arg(python)
            .args(["nb.py", "--json"]);
        Run::from_output(command.output().unwrap())
    };
    // marimo is installed only in the environment `--python` names.
    let chosen = run(&python);
    assert_eq!(chosen.code, 0, "{}", chosen.stderr);
    assert_eq!(chosen.finished("a")["output"], "0.25.2");
    let missing = dir.path().join("no-such-python");
    let run = run(&missing);
    assert_ne!(run.code, 0);
    let error = &run.finished("a")["error"]["message"];
    assert!(
        error
            .as_str()
            .is_some_and(|message| message
                .contains(&format!("--python {}: no such file", missing.display()))),
        "{error}"
    );
}

#[test]
fn watch_reruns_a_python_notebook_on_save() {
    let dir = Dir::new("py-watch");
    let text = notebook(&[("_", "x = 1"), ("_", "y = x + 1\ny")]);
    dir.write("nb.py", &text);
    let Some(command) = python_cellrun(dir.path()) else {
        return;
    };
    // `python_cellrun` says `run`; the watch takes the same options.
    let args: Vec<std::ffi::OsString> = command.get_args().skip(1).map(ToOwned::to_owned).collect();
    let mut watch = cellrun_command(dir.path());
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            watch.env(key, value);
        }
    }
    watch.arg("watch").args(args).args(["nb.py", "--json"]);
    let mut watching = crate::util::Watching::spawn(watch);
    let first = watching.run();
    assert_eq!(first.counts(), (2, 0, 0, 0));
    assert_eq!(first.finished("cell-2")["output"], 2);
    dir.write("nb.py", &text.replace("x = 1", "x = 10"));
    let (rerun, run) = watching.rerun();
    assert_eq!(rerun["reason"], "save");
    assert_eq!(run.started(), ["cell-1", "cell-2"]);
    assert_eq!(run.finished("cell-2")["output"], 11);
    assert_eq!(watching.quit(), 0);
}

/// The cells of `cells_compiled_ahead_give_what_cells_compiled_in_place_give`:
/// a slow first cell, so that the helper has compiled the rest when they run.
fn ahead_notebook() -> String {
    let mut cells = vec![(
        "slow".to_owned(),
        "import time\ntime.sleep(2)\nstep_0 = 0".to_owned(),
    )];
    for index in 1..=40 {
        let body = match index {
            7 => format!(
                "step_{index} = step_{} + 1\nprint('seven', step_{index})",
                index - 1
            ),
            13 => format!(
                "step_{index} = step_{} + 1\nrisky_{index} = 1 / 0",
                index - 1
            ),
            14 => format!("step_{index} = step_12 + 2\n[step_{index}, 'x']"),
            _ => format!("step_{index} = step_{} + 1\nstep_{index} * 10", index - 1),
        };
        cells.push((format!("c{index}"), body));
    }
    let borrowed: Vec<(&str, &str)> = cells
        .iter()
        .map(|(name, body)| (name.as_str(), body.as_str()))
        .collect();
    notebook(&borrowed)
}

#[test]
fn cells_compiled_ahead_give_what_cells_compiled_in_place_give() {
    let dir = Dir::new("py-ahead");
    let text = ahead_notebook();
    dir.write("nb.py", &text);
    let run = |mode: &str| {
        let mut command = python_cellrun(dir.path())?;
        command
            .env("CELLRUN_LOG", "plugin=debug,cellrun=warn")
            .args(["nb.py", "--json", "--plugin-opt"])
            .arg(format!("python.precompile={mode}"));
        Some(Run::from_output(command.output().unwrap()))
    };
    let (Some(ahead), Some(in_place)) = (run("always"), run("never")) else {
        return;
    };
    let compiled_ahead = |run: &Run| {
        run.stderr.lines().find_map(|line| {
            let (count, _) = line.split_once(" cells ran code compiled ahead")?;
            count.rsplit(' ').next()?.parse::<usize>().ok()
        })
    };
    // Every cell after the slow one: c1..c40 but c14's parent c13 fails,
    // and c14 reads step_12 only, so all 40 run. The slow cell itself may
    // be compiled too: the helper starts beside the run's interpreter and
    // may answer before the interpreter is up.
    let count = compiled_ahead(&ahead);
    assert!(
        matches!(count, Some(40 | 41)),
        "{count:?}: {}",
        ahead.stderr
    );
    // `never` keeps no state of compiling ahead, so it has nothing to count.
    assert_eq!(compiled_ahead(&in_place), None, "{}", in_place.stderr);
    let seen = |run: &Run| {
        run.events("cell_finished")
            .iter()
            .map(|event| {
                (
                    event["cell"].clone(),
                    event["status"].clone(),
                    event["output"].clone(),
                    event["stdout"].clone(),
                    event["error"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(seen(&ahead), seen(&in_place));
    assert_eq!(ahead.finished("c3")["output"], json!(30));
    assert_eq!(ahead.finished("c7")["stdout"], "seven 7\n");
    assert_eq!(ahead.finished("c14")["output"], json!([14, "x"]));
    let error = &ahead.finished("c13")["error"];
    assert_eq!(error["message"], "ZeroDivisionError: division by zero");
    let line = text
        .lines()
        .position(|line| line.contains("risky_13 = 1 / 0"))
        .unwrap()
        + 1;
    assert_eq!(error["line"], json!(line));
}
