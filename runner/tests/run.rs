//! `cellrun run`: statuses, outputs, cancellation, JSON events, exit codes.

use serde_json::json;

use crate::util::{cellrun_command, Dir, Run};

#[test]
fn events_follow_the_documented_sequence() {
    let dir = Dir::new("sequence");
    let run = dir.run_json("// %% a\nlet x = 1;\n// %% b\nx + 1\n", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let kinds: Vec<&str> = run
        .events
        .iter()
        .map(|event| event["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "cell_started",
            "cell_finished",
            "cell_started",
            "cell_finished",
            "run_finished"
        ]
    );
    let started = &run.events[0];
    assert_eq!(started["notebook"], "nb.rhai");
    assert_eq!(started["executor"], "default");
    assert_eq!(started["lifecycles"], json!([]));
    assert_eq!(started["cells"], json!(["a", "b"]));
    let b = run.finished("b");
    assert_eq!(b["status"], "ok");
    assert_eq!(b["output"], 2);
    assert_eq!(b["stdout"], "");
    assert_eq!(b["error"], json!(null));
    assert!(b["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(run.counts(), (2, 0, 0, 0));
}

#[test]
fn ready_cells_run_earliest_in_the_file_first() {
    let dir = Dir::new("order");
    let run = dir.run_json(
        "// %% c0\nlet y = x;\n// %% c1\nlet z = 1;\n// %% c2\nlet x = 0;\n",
        &[],
    );
    assert_eq!(run.events[0]["cells"], json!(["c1", "c2", "c0"]));
    assert_eq!(run.started(), ["c1", "c2", "c0"]);
    let run = dir.run_json(
        "// %% a\nlet x = 0;\n// %% b\nlet y = x;\n// %% c\nlet w = 1;\n",
        &[],
    );
    assert_eq!(
        run.started(),
        ["a", "b", "c"],
        "a min-heap on file position, not breadth-first layers"
    );
}

#[test]
fn failure_cancels_descendants_only_and_keeps_earlier_definitions() {
    let dir = Dir::new("failure");
    let notebook = "\
// %% c0
let x = 0;
// %% c1
let y = x;
let boom = 1 / x;
// %% c2
let z = y;
// %% c3
let w = x;
// %% c4
y
";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(run.code, 1);
    assert_eq!(run.status("c0"), "ok");
    assert_eq!(run.status("c1"), "error");
    assert_eq!(run.status("c2"), "cancelled");
    assert_eq!(run.status("c3"), "ok");
    assert_eq!(
        run.status("c4"),
        "cancelled",
        "c4 reads y, defined by the failing c1"
    );
    assert_eq!(
        run.started(),
        ["c0", "c1", "c3"],
        "cancelled cells never start"
    );
    let error = &run.finished("c1")["error"];
    assert_eq!(error["kind"], "runtime");
    assert_eq!(error["line"], 5);
    assert_eq!(error["blamed"], json!(null));
    let cancelled = &run.finished("c2")["error"];
    assert_eq!(cancelled["kind"], "cancelled");
    assert_eq!(cancelled["blamed"], "c1");
    assert_eq!(run.counts(), (2, 1, 2, 0));
}

#[test]
fn definitions_made_before_a_failure_stay() {
    let dir = Dir::new("partial");
    let notebook = "// %% a\nlet kept = 41;\nthrow \"stop\";\n// %% b\nlet other = 1;\n";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(run.status("a"), "error");
    // `b` does not read `kept`, so it runs; a cell reading `kept` would be cancelled.
    assert_eq!(run.status("b"), "ok");
    assert_eq!(run.finished("a")["error"]["line"], 3);
}

#[test]
fn outputs_map_to_json_and_prints_are_captured_per_cell() {
    let dir = Dir::new("outputs");
    let notebook = "\
// %% map
print(\"one\");
debug(\"two\");
#{ list: [1, 2.5, \"s\", true, ()], nested: #{ c: 'c' } }
// %% unit
let q = 3;
// %% quiet
print(\"only mine\");
Fn(\"abs\")
";
    let run = dir.run_json(notebook, &[]);
    let map = run.finished("map");
    assert_eq!(
        map["output"],
        json!({"list": [1, 2.5, "s", true, null], "nested": {"c": "c"}})
    );
    assert_eq!(map["stdout"], "one\n\"two\"\n");
    assert_eq!(run.finished("unit")["output"], json!(null));
    let quiet = run.finished("quiet");
    assert_eq!(quiet["stdout"], "only mine\n");
    assert_eq!(
        quiet["output"], "Fn(abs)",
        "a value with no JSON form is its display string"
    );
}

#[test]
fn functions_are_callable_across_cells_and_see_globals() {
    let dir = Dir::new("functions");
    let notebook = "\
// %% settings
let factor = 3;
// %% helpers
fn scale(x) { x * factor }
// %% use
[scale(1), scale(2)]
";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(run.code, 0, "{:#?}", run.events);
    assert_eq!(run.finished("use")["output"], json!([3, 6]));
    assert_eq!(run.started(), ["settings", "helpers", "use"]);
}

#[test]
fn missing_name_is_blamed_on_the_cell_expected_to_define_it() {
    let dir = Dir::new("blame");
    let notebook = "\
// %% maybe
let early = true;
if early { return; }
let late = 1;
// %% late_reader
late + 1
// %% reader
let y = undefined_name;
// %% private_reader
let z = _secret;
// %% owner
let _secret = 1;
";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(
        run.status("maybe"),
        "ok",
        "an early return is not a failure"
    );
    let late = &run.finished("late_reader")["error"];
    assert_eq!(late["blamed"], "maybe");
    assert!(
        late["message"].as_str().unwrap().contains("`maybe`"),
        "{late}"
    );
    let error = &run.finished("reader")["error"];
    assert_eq!(error["kind"], "runtime");
    assert_eq!(error["blamed"], json!(null), "no cell defines it");
    let private = &run.finished("private_reader")["error"];
    assert_eq!(private["blamed"], "owner");
    assert!(
        private["message"].as_str().unwrap().contains("private"),
        "{private}"
    );
}

#[test]
fn selected_cells_run_with_ancestors_and_descendants_only() {
    let dir = Dir::new("select");
    let notebook = "\
// %% a
let x = 1;
// %% b
let y = x + 1;
// %% c
let z = y + 1;
// %% other
let w = 0;
";
    let run = dir.run_json(notebook, &["--cell", "b"]);
    assert_eq!(run.code, 0);
    assert_eq!(run.events[0]["cells"], json!(["a", "b", "c"]));
    assert_eq!(run.statuses().len(), 3);
    let run = dir.run_json(notebook, &["--cell", "other", "--cell", "a"]);
    assert_eq!(run.events[0]["cells"], json!(["a", "b", "c", "other"]));
}

#[test]
fn human_output_shows_statuses_errors_with_carets_and_a_summary() {
    let dir = Dir::new("human");
    dir.write(
        "nb.rhai",
        "// %% ok\nlet x = 2;\nx * 21\n// %% bad\nlet y = x / 0;\n// %% child\ny\n",
    );
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("cellrun nb.rhai (3 cells) with executor `default`\n"),
        "{text}"
    );
    assert!(text.contains("✓ ok"), "{text}");
    assert!(
        text.contains(" 42\n"),
        "compact output on the cell's line: {text}"
    );
    assert!(text.contains("✗ bad"), "{text}");
    assert!(text.contains("nb.rhai:5:"), "error location: {text}");
    assert!(text.contains("5 | let y = x / 0;"), "excerpt: {text}");
    assert!(text.contains('^'), "caret: {text}");
    assert!(text.contains("○ child"), "{text}");
    assert!(
        text.contains("3 cells: 1 ok, 1 error, 1 cancelled"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour under NO_COLOR or off a terminal: {text}"
    );
}

#[test]
fn bundled_examples_run_as_documented() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let run = |name: &str| {
        let output = cellrun_command(&examples)
            .args(["run", name, "--json"])
            .output()
            .unwrap();
        Run::from_output(output)
    };
    let tour = run("tour.rhai");
    assert_eq!(tour.code, 1, "the tour fails one cell on purpose");
    assert_eq!(tour.status("risky"), "error");
    assert_eq!(tour.status("uses_ratio"), "cancelled");
    assert_eq!(tour.status("report"), "ok");
    assert_eq!(
        tour.finished("report")["stdout"],
        "HELLO! 5 numbers add up to 15\n"
    );
    assert_eq!(tour.finished("numbers")["output"], json!([3, 6, 9, 12, 15]));
    let stats = run("stats.rhai");
    assert_eq!(stats.code, 0, "{:#?}", stats.events);
    assert_eq!(stats.finished("warmest")["output"], "Cairo");
}

#[test]
fn colour_only_on_a_terminal_and_never_under_no_color() {
    // `script` gives the run a terminal; without one, output is plain.
    let dir = Dir::new("colour");
    dir.write("nb.rhai", "// %% a\n1 + 1\n");
    let on_terminal = |no_color: Option<&str>| {
        let mut command = std::process::Command::new("script");
        command
            .args([
                "-qec",
                &format!("{} run nb.rhai", env!("CARGO_BIN_EXE_cellrun")),
                "/dev/null",
            ])
            .current_dir(dir.path())
            .env_remove("NO_COLOR");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let output = command
            .output()
            .expect("`script` (util-linux) runs the test's terminal");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let coloured = on_terminal(None);
    assert!(
        coloured.contains("\x1b[32m"),
        "a terminal gets colour: {coloured:?}"
    );
    assert!(coloured.contains("1 cell: "), "{coloured:?}");
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("✓ a"), "{plain:?}");
    assert!(
        !plain.contains('\x1b'),
        "NO_COLOR turns colour off: {plain:?}"
    );
}
