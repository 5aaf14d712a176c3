//! `--strict` and `--cache`: isolation, reuse, and a cache that survives kills.

use std::process::Stdio;
use std::time::Duration;

use crate::util::{cellrun_command, Dir, Run};

#[test]
fn strict_isolates_mutations_and_reports_unresolved_references() {
    let dir = Dir::new("strict");
    let notebook = "\
// %% data
let xs = [1, 2, 3];
// %% mutate
xs.push(4);
xs.len()
// %% read
xs.len()
";
    let lax = dir.run_json(notebook, &[]);
    assert_eq!(
        lax.finished("read")["output"],
        4,
        "without strict the mutation is shared"
    );
    let strict = dir.run_json(notebook, &["--strict"]);
    assert_eq!(
        strict.events[0]["lifecycles"],
        serde_json::json!(["strict"])
    );
    assert_eq!(strict.finished("mutate")["output"], 4);
    assert_eq!(
        strict.finished("read")["output"],
        3,
        "a cell mutates only its own copy"
    );

    let unresolved = "\
// %% maker
let early = true;
if early { return; }
let made = 1;
// %% user
made + 1
// %% child
let u = 1;
";
    let lax = dir.run_json(unresolved, &[]);
    assert_eq!(lax.finished("user")["error"]["kind"], "runtime");
    let strict = dir.run_json(unresolved, &["--strict"]);
    let error = &strict.finished("user")["error"];
    assert_eq!(error["kind"], "strict");
    assert_eq!(error["blamed"], "maker");
    assert!(
        error["message"].as_str().unwrap().contains("`made`"),
        "{error}"
    );
    assert_eq!(
        strict.started(),
        ["maker", "child"],
        "a body skipped by strict never starts"
    );
}

#[test]
fn cache_reuses_unchanged_cells_and_invalidates_downstream() {
    let dir = Dir::new("cache");
    let notebook = |value: i64| {
        format!("// %% source\nlet base = {value};\n// %% derived\nprint(\"computing\");\nlet twice = base * 2;\ntwice\n// %% fails\nthrow \"no\";\n")
    };
    let first = dir.run_json(&notebook(1), &["--cache"]);
    assert_eq!(first.events[0]["lifecycles"], serde_json::json!(["cache"]));
    assert_eq!(first.finished("derived")["cached"], false);
    let second = dir.run_json(&notebook(1), &["--cache"]);
    let derived = second.finished("derived");
    assert_eq!(derived["cached"], true);
    assert_eq!(derived["status"], "ok");
    assert_eq!(derived["output"], 2);
    assert_eq!(
        derived["stdout"], "computing\n",
        "what the cell printed is restored too"
    );
    assert_eq!(
        second.started(),
        ["fails"],
        "a reused cell's body never starts"
    );
    assert_eq!(
        second.finished("fails")["cached"],
        false,
        "errors are never cached"
    );
    assert!(
        dir.path().join(".cellrun/cache").is_dir(),
        "the default cache sits beside the notebook"
    );

    let changed = dir.run_json(&notebook(5), &["--cache"]);
    assert_eq!(changed.finished("source")["cached"], false);
    assert_eq!(
        changed.finished("derived")["cached"],
        false,
        "a changed upstream value invalidates it"
    );
    assert_eq!(changed.finished("derived")["output"], 10);

    let info = String::from_utf8(dir.cellrun(&["cache", "info", ".cellrun/cache"]).stdout).unwrap();
    assert!(info.contains("4 entries"), "{info}");
    let cleared = dir.cellrun(&["cache", "clear", ".cellrun/cache"]);
    assert_eq!(cleared.status.code(), Some(0));
    let info = String::from_utf8(dir.cellrun(&["cache", "info", ".cellrun/cache"]).stdout).unwrap();
    assert!(info.contains("0 entries"), "{info}");
}

/// Many cells with sizeable outputs, so a run spends its time writing entries.
fn writing_notebook() -> String {
    let mut text = String::from("// %% base\nlet base = [];\nbase.pad(4000, 7);\n");
    for i in 0..30 {
        text.push_str(&format!(
            "// %% c{i}\nlet v{i} = base.map(|x| x + {i});\nv{i}.len()\n"
        ));
    }
    text
}

/// Runs the notebook once more against the cache: it must succeed with no
/// warning about a bad entry, reusing what earlier runs stored.
fn assert_cache_is_sound(dir: &Dir) -> usize {
    let run = dir.run_json(&writing_notebook(), &["--cache"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("warn"),
        "no entry may be corrupt: {}",
        run.stderr
    );
    run.events("cell_finished")
        .iter()
        .filter(|event| event["cached"] == true)
        .count()
}

#[test]
fn a_run_killed_while_writing_the_cache_leaves_no_broken_entry() {
    let dir = Dir::new("cache-kill");
    dir.write("nb.rhai", &writing_notebook());
    for delay_ms in [10, 30, 60, 120] {
        let mut child = cellrun_command(dir.path())
            .args(["run", "nb.rhai", "--cache"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_cache_is_sound(&dir);
    let cached = assert_cache_is_sound(&dir);
    assert_eq!(cached, 31, "after one complete run every cell is reused");
}

#[test]
fn two_runs_sharing_a_cache_directory_do_not_corrupt_it() {
    let dir = Dir::new("cache-shared");
    dir.write("nb.rhai", &writing_notebook());
    let children: Vec<_> = (0..2)
        .map(|_| {
            cellrun_command(dir.path())
                .args(["run", "nb.rhai", "--cache", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let run = Run::from_output(output);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(!run.stderr.contains("warn"), "{}", run.stderr);
    }
    assert_eq!(assert_cache_is_sound(&dir), 31);
}

#[test]
fn a_corrupt_cache_entry_is_a_warning_event_and_the_cell_runs_live() {
    let dir = Dir::new("cache-corrupt");
    let notebook = "// %% only\nlet x = 40 + 2;\nx\n";
    assert_eq!(dir.run_json(notebook, &["--cache"]).code, 0);
    let cache = dir.path().join(".cellrun/cache");
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"{ not json").unwrap();
    }
    let run = dir.run_json(notebook, &["--cache"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.finished("only")["cached"], false);
    assert_eq!(run.finished("only")["output"], 42);
    let warnings = run.events("warning");
    assert_eq!(warnings.len(), 1, "{:#?}", run.events);
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("unusable entry"),
        "{}",
        warnings[0]
    );
    assert!(
        run.stderr.contains("unusable entry"),
        "the log has it too: {}",
        run.stderr
    );
    // See: issue 12, point 16: one warning style for everything.
    assert!(
        run.stderr.starts_with("cellrun: warning: "),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\x1b'),
        "no colour off a terminal: {}",
        run.stderr
    );
    let again = dir.run_json(notebook, &["--cache"]);
    assert_eq!(
        again.finished("only")["cached"],
        true,
        "the entry was rewritten"
    );
}
