//! Static errors: syntax, multiple definitions, cycles, and what depends on them.

use serde_json::json;

use crate::util::Dir;

#[test]
fn syntax_error_reports_notebook_line_and_column_and_cancels_readers() {
    let dir = Dir::new("syntax");
    let notebook = "\
// %% fine
let a = 1;
// %% broken
let b = a +;
let c = 2;
// %% reads_c
c * 2
// %% independent
a + 1
";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(run.code, 1);
    let error = &run.finished("broken")["error"];
    assert_eq!(error["kind"], "syntax");
    assert_eq!(error["line"], 4);
    assert_eq!(run.status("reads_c"), "cancelled");
    assert_eq!(run.finished("reads_c")["error"]["blamed"], "broken");
    assert_eq!(run.status("independent"), "ok");
    assert!(
        !run.started().contains(&"broken".to_owned()),
        "a cell that does not parse never starts"
    );
}

#[test]
fn a_name_defined_twice_errors_every_definer_and_cancels_readers() {
    let dir = Dir::new("multiple");
    let notebook = "\
// %% one
let x = 1;
// %% two
let x = 2;
// %% reader
x
// %% fine
let ok = 1;
";
    let run = dir.run_json(notebook, &[]);
    for cell in ["one", "two"] {
        let error = &run.finished(cell)["error"];
        assert_eq!(error["kind"], "multiple_definitions", "{cell}");
        let other = if cell == "one" { "`two`" } else { "`one`" };
        assert!(
            error["message"].as_str().unwrap().contains(other),
            "{error}"
        );
    }
    assert_eq!(run.status("reader"), "cancelled");
    assert_eq!(run.status("fine"), "ok");
    assert_eq!(
        run.started(),
        ["fine"],
        "none of the conflicting cells runs"
    );
}

#[test]
fn cycle_members_error_and_list_the_cycle() {
    let dir = Dir::new("cycle");
    let notebook = "\
// %% c0
let x = y;
// %% c1
let y = x;
// %% c2
let z = x + 1;
// %% c3
let w = 1;
";
    let run = dir.run_json(notebook, &[]);
    for cell in ["c0", "c1"] {
        let error = &run.finished(cell)["error"];
        assert_eq!(error["kind"], "cycle");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("c0") && message.contains("c1"),
            "{message}"
        );
    }
    assert_eq!(run.status("c2"), "cancelled");
    assert_eq!(run.status("c3"), "ok");
    assert_eq!(run.counts(), (1, 2, 1, 0));
    assert_eq!(run.events[0]["cells"], json!(["c0", "c1", "c2", "c3"]));
}

#[test]
fn private_names_never_conflict_or_make_edges() {
    let dir = Dir::new("private");
    let notebook = "\
// %% a
let _tmp = 1;
let keep = _tmp + 1;
// %% b
let _tmp = 10;
_tmp + keep
";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(run.code, 0, "{:#?}", run.events);
    assert_eq!(run.finished("b")["output"], 12);
}

#[test]
fn rebinding_another_cells_name_is_a_conflict_but_mutating_it_is_not() {
    let dir = Dir::new("rebinding");
    let notebook = "\
// %% owner
let n = 1;
let xs = [1];
// %% rebinder
n = 5;
// %% mutator
xs.push(2);
xs.len()
";
    let run = dir.run_json(notebook, &[]);
    assert_eq!(
        run.finished("owner")["error"]["kind"],
        "multiple_definitions"
    );
    assert_eq!(
        run.finished("rebinder")["error"]["kind"],
        "multiple_definitions"
    );
    assert_eq!(
        run.status("mutator"),
        "cancelled",
        "its input comes from a conflicting cell"
    );
}
