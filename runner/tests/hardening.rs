//! Hostile input: each test closes a class of crash, lost result or
//! misleading message with an example of its own.
//!
//! See: issue 12.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::plugins::{built_plugins, library_file, set_mode};
use crate::util::{cellrun_command, wait_with_deadline, Dir, Run, Started};

/// A cell that never ends on its own, between two that do.
const BUSY: &str = "\
// %% before
let a = 1;
// %% busy
let n = 0;
loop { n += 1; }
// %% child
let c = n;
";

/// Starts `cellrun run nb.rhai --json ARGS` on `notebook` and waits for
/// the `cell_started` of `cell`.
fn start_until(dir: &Dir, notebook: &str, args: &[&str], cell: &str) -> Started {
    dir.write("nb.rhai", notebook);
    let mut command = cellrun_command(dir.path());
    command.args(["run", "nb.rhai", "--json"]).args(args);
    Started::new(command, cell)
}

// Point 5: SIGTERM (a CI timeout) and SIGHUP (a closed terminal) stop the
// run like Ctrl-C: the running cell is interrupted and reported, the summary
// comes.
#[test]
fn issue_12_sigterm_and_sighup_end_the_run_with_its_summary() {
    for signal in ["TERM", "HUP"] {
        let dir = Dir::new("sigterm");
        let started = start_until(&dir, BUSY, &[], "busy");
        started.signal(started.child.id(), signal);
        let run = started.finish();
        assert_eq!(run.code, 130, "SIG{signal}: {}", run.stderr);
        assert_eq!(run.status("before"), "ok");
        assert_eq!(run.status("busy"), "interrupted");
        assert_eq!(run.counts().0, 1, "SIG{signal}");
    }
}

/// A notebook of `n` cells, each defining one name.
fn many_cells(n: usize) -> String {
    (0..n)
        .map(|index| format!("// %% cell{index}\nlet v{index} = {index};\n"))
        .collect()
}

// Point 6: a reader that goes away ends the command quietly; a full disk is
// an error and a non-zero exit.
#[test]
fn issue_12_a_closed_pipe_is_quiet_and_a_full_disk_is_an_error() {
    let dir = Dir::new("pipes");
    dir.write("nb.rhai", &many_cells(3000));
    for args in [
        &["check", "nb.rhai"][..],
        &["graph", "nb.rhai", "--format", "json"],
        &["run", "nb.rhai"],
        &["run", "nb.rhai", "--json"],
    ] {
        let mut child = cellrun_command(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let code = wait_with_deadline(&mut child, Duration::from_secs(60));
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!((code, stderr.as_str()), (0, ""), "{args:?}");
    }
    if !Path::new("/dev/full").exists() {
        return;
    }
    for args in [&["check", "nb.rhai"][..], &["run", "nb.rhai", "--json"]] {
        let output = cellrun_command(dir.path())
            .args(args)
            .stdout(std::fs::File::create("/dev/full").unwrap())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("cellrun: cannot write to standard output")
                && stderr.contains("No space left"),
            "{args:?}: {stderr}"
        );
    }
}

/// A copy of the passthrough plugin's library, its first `len` bytes, in a
/// new plugin directory.
fn truncated_plugin(dir: &Dir, len: usize) -> std::path::PathBuf {
    let whole = std::fs::read(
        built_plugins()
            .join("passthrough")
            .join(library_file("passthrough")),
    )
    .unwrap();
    let plugins = dir.path().join(format!("cut-{len}"));
    std::fs::create_dir_all(&plugins).unwrap();
    set_mode(&plugins, 0o755);
    let file = plugins.join(library_file("cut"));
    std::fs::write(&file, &whole[..len.min(whole.len() - 1)]).unwrap();
    set_mode(&file, 0o644);
    plugins
}

/// Runs `nb.rhai` in `dir` with `--json` and one plugin directory.
fn run_with_plugin_dir(dir: &Dir, plugin_dir: &Path) -> Run {
    Run::from_output(dir.cellrun(&[
        "run",
        "nb.rhai",
        "--json",
        "--plugin-dir",
        plugin_dir.to_str().unwrap(),
    ]))
}

// Point 1: a library file cut short (a copy interrupted, a full disk) is
// skipped with one line, never a crash inside the loader.
#[test]
fn issue_12_truncated_plugin_libraries_are_skipped_with_a_reason() {
    let dir = Dir::new("truncated");
    let whole = std::fs::metadata(
        built_plugins()
            .join("passthrough")
            .join(library_file("passthrough")),
    )
    .unwrap()
    .len() as usize;
    dir.write("nb.rhai", "// %% a\n40 + 2\n");
    for len in [64, 4096, 300_000, whole / 2, whole - 100] {
        let plugins = truncated_plugin(&dir, len);
        let listed = dir.cellrun(&["plugins", "--plugin-dir", plugins.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&listed.stdout);
        assert_eq!(listed.status.code(), Some(0), "cut at {len}: {stdout}");
        assert!(
            stdout.contains("skipped: truncated or damaged library")
                || stdout.contains("skipped: not a loadable library"),
            "cut at {len}: {stdout}"
        );
        let run = run_with_plugin_dir(&dir, &plugins);
        assert_eq!(run.code, 0, "cut at {len}: {}", run.stderr);
        assert_eq!(run.finished("a")["output"], 42);
        assert_eq!(run.events("warning").len(), 1, "cut at {len}");
    }
}

// Point 7: the trust check looks at the real file and every directory on its
// real path.
#[test]
fn issue_12_plugins_reached_through_untrusted_directories_are_refused() {
    let dir = Dir::new("symlinks");
    let library = built_plugins()
        .join("passthrough")
        .join(library_file("passthrough"));
    let place = |parent: &Path, mode: u32| {
        std::fs::create_dir_all(parent.join("sub")).unwrap();
        set_mode(parent, mode);
        set_mode(&parent.join("sub"), 0o755);
        let file = parent.join("sub").join(library_file("passthrough"));
        std::fs::copy(&library, &file).unwrap();
        set_mode(&file, 0o644);
        file
    };
    // A symlink in a trusted directory to a file in a directory anyone can
    // write to.
    let open = place(&dir.path().join("open"), 0o777);
    let trusted = dir.path().join("trusted");
    std::fs::create_dir_all(&trusted).unwrap();
    set_mode(&trusted, 0o755);
    std::os::unix::fs::symlink(&open, trusted.join(library_file("passthrough"))).unwrap();
    // A plugin directory whose parent anyone can write to (it could be
    // renamed and replaced).
    let parent_open = open.parent().unwrap().to_owned();
    // A sticky parent (like /tmp) is fine.
    let sticky = place(&dir.path().join("sticky"), 0o1777);
    dir.write("nb.rhai", "// %% a\n1\n");
    for (plugin_dir, refused) in [
        (trusted.as_path(), true),
        (parent_open.as_path(), true),
        (sticky.parent().unwrap(), false),
    ] {
        let run = run_with_plugin_dir(&dir, plugin_dir);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let executor = &run.events("run_started")[0]["executor"];
        let warnings: Vec<String> = run
            .events("warning")
            .iter()
            .map(|event| event["message"].as_str().unwrap().to_owned())
            .collect();
        if refused {
            assert_eq!(executor, "default", "{plugin_dir:?}");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("refusing untrusted plugin")
                    && warnings[0].contains(&format!(
                        "{} is writable by group or others",
                        dir.path().join("open").display()
                    )),
                "{warnings:?}"
            );
        } else {
            assert_eq!(executor, "passthrough", "{warnings:?}");
        }
    }
}

// Point 9: cache entries are results read back, so the cache directory gets
// the plugin directories' trust rule; a cache that cannot be used (writable
// by others, a file, impossible to create) makes the run live.
#[test]
fn issue_12_an_unusable_cache_directory_makes_the_run_live() {
    let dir = Dir::new("cache-trust");
    let notebook = "// %% a\nlet x = 6 * 7;\nx\n";
    let open = dir.path().join("open-cache");
    std::fs::create_dir_all(&open).unwrap();
    set_mode(&open, 0o777);
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    for (cache, reason) in [
        ("--cache=open-cache", "is writable by group or others"),
        ("--cache=a-file", "cannot create the cache directory"),
        ("--cache=a-file/below", "cannot create the cache directory"),
    ] {
        for _ in 0..2 {
            let run = dir.run_json(notebook, &[cache]);
            assert_eq!(run.code, 0, "{cache}: {}", run.stderr);
            assert_eq!(run.finished("a")["cached"], false, "{cache}");
            assert_eq!(run.finished("a")["output"], 42);
            let warnings = run.events("warning");
            assert_eq!(warnings.len(), 1, "{cache}: {warnings:?}");
            let message = warnings[0]["message"].as_str().unwrap();
            assert!(
                message.contains(reason) && message.ends_with("running without the cache"),
                "{cache}: {message}"
            );
        }
    }
    assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);
}

/// Whether `text` holds an escape or another control character but a line
/// break or tab.
fn has_controls(text: &str) -> bool {
    text.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
}

// Point 8: nothing a notebook controls reaches the terminal raw: not the
// path, a cell name, an error message, an output or a source excerpt.
#[test]
fn issue_12_terminal_escapes_from_a_notebook_are_neutralised() {
    let dir = Dir::new("escapes");
    let name = "nb\x1b]0;owned\x07.rhai";
    dir.write(
        name,
        "// %% red\x1b[31m\nlet s = \"\\x1b[2J\";\ns\n\
         // %% thrower\nthrow \"\\x1b[1A\\x1b[Kall good\";\n\
         // %% broken\nlet y = 1 +; // \x1b[5m\n",
    );
    for args in [&["run", name][..], &["check", name]] {
        let output = cellrun_command(dir.path()).args(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stdout}{stderr}");
        assert!(!has_controls(&stdout), "{args:?}: {stdout:?}");
        assert!(!has_controls(&stderr), "{args:?}: {stderr:?}");
        assert!(stdout.contains("red\u{fffd}[31m"), "{args:?}: {stdout}");
    }
    // The JSON stream keeps the text exactly: JSON escapes it.
    let run = Run::from_output(
        cellrun_command(dir.path())
            .args(["run", name, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(run.finished("red\x1b[31m")["output"], "\x1b[2J");
}

// Point 13: lone carriage returns end lines, so an old Mac file has its cells
// and its errors.
#[test]
fn issue_12_carriage_return_line_endings_split_cells() {
    let dir = Dir::new("cr");
    let run = dir.run_json(
        "// %% first\rlet a = 2;\r// %% second\rlet b = a *;\r// %% third\ra + 1\r",
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.status("first"), "ok");
    let second = run.finished("second");
    assert_eq!(second["error"]["kind"], "syntax");
    assert_eq!(second["error"]["line"], 4);
    assert_eq!(run.finished("third")["output"], 3);
}

// Point 14: the documented rule: a marker line starts a cell even inside a
// multi-line string, and the string cut short is a syntax error of its cell.
#[test]
fn issue_12_a_marker_inside_a_multi_line_string_starts_a_cell() {
    let dir = Dir::new("marker-in-string");
    let run = dir.run_json(
        "// %% text\nlet t = `one\n// %% not a cell\ntwo`;\n// %% after\n1\n",
        &[],
    );
    assert_eq!(run.status("text"), "error");
    assert_eq!(run.finished("text")["error"]["kind"], "syntax");
    assert_eq!(run.status("not a cell"), "error");
    assert_eq!(run.finished("after")["output"], 1);
}

// Point 16: messages about arguments and setup.
#[test]
fn issue_12_argument_and_setup_messages() {
    let dir = Dir::new("messages");
    dir.write("nb.rhai", "// %% only\n1\n");
    let text = |args: &[&str], env: Option<(&str, &str)>| {
        let mut command = cellrun_command(dir.path());
        command.args(args);
        if let Some((key, value)) = env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = text(&["run", "--strict", "--cache", "nb.rhai"], None);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("`--cache` took `nb.rhai` as its DIR"),
        "{stderr}"
    );
    let (code, _, stderr) = text(&["chek", "nb.rhai"], None);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("similar subcommand exists"), "{stderr}");
    let (code, stdout, _) = text(&["--help"], None);
    assert_eq!(code, Some(0));
    for needle in [
        "Exit codes:",
        "130",
        "CELLRUN_LOG",
        "CELLRUN_PLUGIN_PATH",
        "NO_COLOR",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
    let (code, _, stderr) = text(&["check", "nb.rhai"], Some(("CELLRUN_LOG", "cache=loud")));
    assert_eq!(code, Some(0));
    assert!(
        stderr.starts_with("cellrun: warning: CELLRUN_LOG=`cache=loud` is not a valid filter"),
        "{stderr}"
    );
    let (_, stdout, _) = text(&["check", "nb.rhai"], None);
    assert!(stdout.ends_with("1 cell, 0 with errors\n"), "{stdout}");
}

// Point 2: one native call cannot escape the limits: an allocation its
// argument sizes is refused before it runs, `sleep` stops at a timeout.
#[test]
fn issue_12_single_native_calls_stay_within_the_limits() {
    let dir = Dir::new("native-calls");
    let run = dir.run_json(
        "// %% bytes\nlet b = blob(300000000, 7);\n\
         // %% text\nlet t = \"ab\";\nt.pad(200000000, \"xyz\");\n\
         // %% slots\nlet a = [];\na.pad(20000000, [1]);\n\
         // %% fine\nlet f = blob(1000);\nf.len()\n",
        &["--max-memory", "64"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    for cell in ["bytes", "text", "slots"] {
        let error = &run.finished(cell)["error"];
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("over the run's memory limit of 67108864 bytes"),
            "{cell}: {message}"
        );
    }
    assert_eq!(run.finished("fine")["output"], 1000);

    let started = std::time::Instant::now();
    let run = dir.run_json(
        "// %% nap\nsleep(40.5);\n// %% after\n1\n// %% long\nsleep(100)\n",
        &["--timeout", "0.2"],
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run.finished("nap")["error"]["kind"], "timeout");
    assert_eq!(run.finished("long")["error"]["kind"], "timeout");
    assert_eq!(run.status("after"), "ok");

    let started = start_until(&dir, "// %% nap\nsleep(1e9);\n", &[], "nap");
    started.signal(started.child.id(), "INT");
    let run = started.finish();
    assert_eq!(run.code, 130);
    assert_eq!(run.status("nap"), "interrupted");
}

// Point 2: printers render a large value in bounded memory; `--json` says
// when it cut one.
#[test]
fn issue_12_large_outputs_are_cut_in_json() {
    let dir = Dir::new("large-output");
    let run = dir.run_json("// %% big\nblob(2500000, 1)\n// %% small\n[1, 2]\n", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let big = run.finished("big");
    assert_eq!(big["output_truncated"], true);
    assert_eq!(big["output"].as_array().unwrap().len(), 1_000_000);
    assert!(run.finished("small").get("output_truncated").is_none());
}

// Point 3: an allocation that fails ends the run with what it had: the
// results already produced, a last `run_finished`, a message.
#[test]
fn issue_12_a_failed_allocation_keeps_the_results_so_far() {
    let dir = Dir::new("alloc-failure");
    dir.write(
        "nb.rhai",
        "// %% early\nlet e = 41 + 1;\ne\n// %% huge\nlet h = blob(7000000000, 1);\n// %% late\n1\n",
    );
    for json in [true, false] {
        // An address-space limit makes the allocation fail where the memory
        // limit (set far above) would not stop it.
        let output = std::process::Command::new("sh")
            .current_dir(dir.path())
            .args([
                "-c",
                &format!(
                    "ulimit -v 4000000 && exec \"$0\" run nb.rhai --max-memory 100000 {}",
                    if json { "--json" } else { "" }
                ),
                env!("CARGO_BIN_EXE_cellrun"),
            ])
            // One cell at a time: the cells before `huge` have finished.
            .env("CELLRUN_JOBS", "1")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(2), "{stdout}{stderr}");
        assert!(
            stderr.contains(
                "cellrun: out of memory: an allocation of 7000000000 bytes failed while cell `huge` ran"
            ),
            "{stderr}"
        );
        if json {
            let run = Run::from_output(output);
            assert_eq!(run.finished("early")["output"], 42);
            let finished = run.events("run_finished");
            assert_eq!(finished.len(), 1, "{stdout}");
            assert_eq!(finished[0]["ok"], 1);
            assert_eq!(finished[0]["error"], 1);
            assert_eq!(finished[0]["aborted"]["cell"], "huge");
        } else {
            assert!(stdout.contains("✓ early"), "{stdout}");
        }
    }
}

// Point 11: the memory limit blames the cell that crossed it, and limits are
// checked when a cell ends, however short it was.
#[test]
fn issue_12_limits_blame_the_cell_that_crossed_them() {
    let dir = Dir::new("blame");
    let run = dir.run_json(
        "// %% grower\nlet g1 = blob(40000000);\nlet g2 = blob(40000000);\n\
         // %% next\nlet n = [1, 2, 3];\nn.len()\n// %% reader\ng1.len()\n",
        &["--max-memory", "64"],
    );
    assert_eq!(run.status("grower"), "error", "{:#?}", run.events);
    assert!(run.finished("grower")["error"]["message"]
        .as_str()
        .unwrap()
        .contains("memory limit"));
    assert_eq!(run.finished("next")["output"], 3);
    assert_eq!(run.status("reader"), "cancelled");

    let run = dir.run_json("// %% quick\n1 + 1\n", &["--timeout", "0.0000001"]);
    assert_eq!(run.finished("quick")["error"]["kind"], "timeout");
    assert_eq!(run.code, 1);
}

// Point 15: carets, excerpts and messages say where and what.
#[test]
fn issue_12_carets_and_messages_point_at_the_cause() {
    let dir = Dir::new("carets");
    let run = dir.run_json(
        "// %% open\nlet m = #{\n  a: [1, 2,\n\n// %% dangling\nlet s = 2 *\n\n\
         // %% first\nlet q = 1;\n// %% second\nlet other = 0;\nlet q = 2;\n\
         // %% bare\nthrow;\n// %% deep\nfn down(n) { down(n + 1) }\ndown(0)\n",
        &[],
    );
    let error = |cell: &str| run.finished(cell)["error"].clone();
    assert_eq!(error("open")["line"], 3, "{}", error("open"));
    assert!(error("open")["message"]
        .as_str()
        .unwrap()
        .ends_with("before the cell ends"));
    assert_eq!(error("dangling")["line"], 6);
    assert_eq!(
        error("dangling")["message"],
        "the cell ends in the middle of a statement before the cell ends"
    );
    assert_eq!(error("second")["kind"], "multiple_definitions");
    assert_eq!(error("second")["line"], 12, "the `let q` line");
    assert_eq!(error("first")["line"], 9);
    assert_eq!(error("bare")["message"], "`throw` without a value");
    assert!(error("deep")["message"]
        .as_str()
        .unwrap()
        .starts_with("more than 256 nested function calls (the call depth limit)"));

    // A very long line is shown around its column, not whole.
    // Rhai counts columns in 16 bits: the line stays under 65,536 characters.
    let long = format!("// %% long\nlet x = [{}1 +];\n", "1, ".repeat(20_000));
    dir.write("long.rhai", &long);
    let output = cellrun_command(dir.path())
        .args(["run", "long.rhai"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.len() < 2_000, "{} bytes", stdout.len());
    let code_line = stdout.lines().find(|line| line.contains("2 |")).unwrap();
    let caret_line = stdout
        .lines()
        .find(|line| line.trim_end().ends_with('^'))
        .unwrap();
    assert!(code_line.contains('…'), "{code_line}");
    let column = |line: &str, c: char| line.chars().position(|x| x == c).unwrap();
    assert_eq!(
        code_line.chars().nth(column(caret_line, '^')),
        Some(']'),
        "the caret is under the error:\n{code_line}\n{caret_line}"
    );
}

// Point 10: a cell whose code reaches what the cache cannot see (an
// imported module file) is never a cache hit, and neither are the cells
// reading what it defines once the module changed.
#[test]
fn issue_12_an_imported_module_is_never_a_stale_cache_hit() {
    let dir = Dir::new("cache-import");
    let notebook = "// %% uses\nimport \"m\" as m;\nlet r = m::f();\n// %% below\nr + 10\n";
    dir.write("m.rhai", "fn f() { 1 }");
    let first = dir.run_json(notebook, &["--cache=c"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.finished("below")["output"], 11);
    let second = dir.run_json(notebook, &["--cache=c"]);
    assert_eq!(
        second.finished("uses")["cached"],
        false,
        "an import runs live"
    );
    assert_eq!(
        second.finished("below")["cached"],
        true,
        "its inputs did not change"
    );
    dir.write("m.rhai", "fn f() { 2 }");
    let changed = dir.run_json(notebook, &["--cache=c"]);
    assert_eq!(changed.finished("uses")["cached"], false);
    assert_eq!(changed.finished("below")["cached"], false);
    assert_eq!(
        changed.finished("below")["output"],
        12,
        "the module's new value"
    );
}

// Python cells nesting tens of thousands of levels deep: the syntax tree is
// walked and dropped on stacks that grow (it overflowed the stack, which
// aborts, at 50,000 nested lists); brackets past CPython's 200 levels are
// the syntax error CPython and marimo give.
#[test]
fn issue_12_deeply_nested_python_cells_are_analysed_without_a_crash() {
    let dir = Dir::new("py-deep");
    let depth = 100_000;
    let cells = [
        (
            "lists",
            format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
        ),
        ("negations", format!("{}1", "-".repeat(depth))),
        ("sums", vec!["1"; depth].join(" + ")),
        ("plain", "1".to_owned()),
    ];
    let mut text = String::from("import marimo\n\napp = marimo.App()\n");
    for (name, value) in &cells {
        text.push_str(&format!(
            "\n\n@app.cell\ndef {name}():\n    {name}_value = {value}\n    return\n"
        ));
    }
    dir.write("deep.py", &text);
    let output = dir.cellrun(&["check", "--json", "deep.py"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code().is_some(),
        "killed by a signal: {stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {stderr}"));
    let cell = |name: &str| {
        report["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|cell| cell["name"] == name)
            .unwrap_or_else(|| panic!("no cell {name}: {report}"))
            .clone()
    };
    let lists = cell("lists");
    assert_eq!(lists["error"]["kind"], "syntax", "{lists}");
    assert_eq!(lists["error"]["message"], "too many nested parentheses");
    assert_eq!(lists["error"]["line"], 8);
    for name in ["negations", "sums", "plain"] {
        let cell = cell(name);
        assert!(cell["error"].is_null(), "{cell}");
        assert_eq!(cell["defs"], serde_json::json!([format!("{name}_value")]));
    }
}
