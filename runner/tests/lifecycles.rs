//! `--strict` and `--cache`: isolation, reuse, and a cache that survives kills.

use crate::util::Dir;

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
    assert_eq!(lax.finished("read")["output"], 4, "without strict the mutation is shared");
    let strict = dir.run_json(notebook, &["--strict"]);
    assert_eq!(strict.events[0]["lifecycles"], serde_json::json!(["strict"]));
    assert_eq!(strict.finished("mutate")["output"], 4);
    assert_eq!(strict.finished("read")["output"], 3, "a cell mutates only its own copy");

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
    assert!(error["message"].as_str().unwrap().contains("`made`"), "{error}");
    assert!(!strict.started().is_empty());
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
    assert_eq!(derived["stdout"], "computing\n", "what the cell printed is restored too");
    assert_eq!(second.finished("fails")["cached"], false, "errors are never cached");
    assert!(dir.path().join(".cellrun/cache").is_dir(), "the default cache sits beside the notebook");

    let changed = dir.run_json(&notebook(5), &["--cache"]);
    assert_eq!(changed.finished("source")["cached"], false);
    assert_eq!(changed.finished("derived")["cached"], false, "a changed upstream value invalidates it");
    assert_eq!(changed.finished("derived")["output"], 10);

    let info = String::from_utf8(dir.cellrun(&["cache", "info", ".cellrun/cache"]).stdout).unwrap();
    assert!(info.contains("4 entries"), "{info}");
    let cleared = dir.cellrun(&["cache", "clear", ".cellrun/cache"]);
    assert_eq!(cleared.status.code(), Some(0));
    let info = String::from_utf8(dir.cellrun(&["cache", "info", ".cellrun/cache"]).stdout).unwrap();
    assert!(info.contains("0 entries"), "{info}");
}
