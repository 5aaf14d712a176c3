//! Mistakes a user makes: bad flags, missing files, broken notebooks.

use crate::util::Dir;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn missing_notebook_is_exit_2_naming_the_file() {
    let dir = Dir::new("missing");
    let output = dir.cellrun(&["run", "nope.rhai"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot read notebook nope.rhai"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let dir = Dir::new("flags");
    dir.write("nb.rhai", "1\n");
    for args in [
        &["run", "nb.rhai", "--bogus"][..],
        &["run", "nb.rhai", "--timeout", "soon"],
        &["run", "nb.rhai", "--timeout", "-1"],
        &["graph", "nb.rhai", "--format", "png"],
        &["fly"],
    ] {
        let output = dir.cellrun(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn unknown_cell_name_is_a_usage_error_listing_the_cells() {
    let dir = Dir::new("unknown-cell");
    dir.write("nb.rhai", "// %% a\n1\n// %% b\n2\n");
    let output = dir.cellrun(&["run", "nb.rhai", "--cell", "c"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no cell named `c`"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("a, b"), "{}", stderr(&output));
}

#[test]
fn duplicate_cell_names_name_both_lines() {
    let dir = Dir::new("duplicate");
    dir.write("nb.rhai", "// %% a\n1\n// %% a\n2\n");
    let output = dir.cellrun(&["run", "nb.rhai"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("two cells are named `a`: at line 1 and at line 3"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_notebook_that_is_not_utf8_is_rejected_clearly() {
    let dir = Dir::new("binary");
    std::fs::write(dir.path().join("nb.rhai"), b"let x = 1;\n\xff\xfe\n").unwrap();
    let output = dir.cellrun(&["run", "nb.rhai"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not UTF-8"), "{}", stderr(&output));
}

#[test]
fn an_empty_notebook_runs_nothing_and_succeeds() {
    let dir = Dir::new("empty");
    let run = dir.run_json("", &[]);
    assert_eq!(run.code, 0);
    assert_eq!(run.counts(), (0, 0, 0, 0));
}
