//! `cellrun check` and `cellrun graph`.

use serde_json::{json, Value};

use crate::util::Dir;

const NOTEBOOK: &str = "\
// %% data
let xs = [1, 2, 3];
let _scratch = 0;
// %% helpers
fn total(values) { values.reduce(|sum, x| sum + x, 0) }
// %% report
let t = total(xs);
t
";

#[test]
fn check_reports_defs_refs_and_parents() {
    let dir = Dir::new("check");
    dir.write("nb.rhai", NOTEBOOK);
    let output = dir.cellrun(&["check", "nb.rhai", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["errors"], 0);
    let cells = document["cells"].as_array().unwrap();
    assert_eq!(cells[0]["name"], "data");
    assert_eq!(cells[0]["defs"], json!(["xs"]));
    assert_eq!(cells[1]["defs"], json!(["total"]));
    assert_eq!(cells[2]["defs"], json!(["t"]));
    assert_eq!(cells[2]["refs"], json!(["xs"]));
    assert_eq!(cells[2]["parents"], json!(["data", "helpers"]));
    assert_eq!(cells[2]["line"], 7);
}

#[test]
fn check_exits_1_on_static_errors() {
    let dir = Dir::new("check-errors");
    dir.write(
        "nb.rhai",
        "// %% a\nlet x = 1;\n// %% b\nlet x = 2;\n// %% c\nlet = ;\n",
    );
    let output = dir.cellrun(&["check", "nb.rhai", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["errors"], 3);
    assert_eq!(document["cells"][2]["error"]["kind"], "syntax");
    assert_eq!(document["cells"][2]["error"]["line"], 6);
    let text = String::from_utf8(dir.cellrun(&["check", "nb.rhai"]).stdout).unwrap();
    assert!(text.contains("multiple_definitions"), "{text}");
}

#[test]
fn graph_prints_dot_mermaid_and_json() {
    let dir = Dir::new("graph");
    dir.write("nb.rhai", NOTEBOOK);
    let dot =
        String::from_utf8(dir.cellrun(&["graph", "nb.rhai", "--format", "dot"]).stdout).unwrap();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("\"data\" -> \"report\""), "{dot}");
    assert!(dot.contains("\"helpers\" -> \"report\""), "{dot}");
    let mermaid = String::from_utf8(
        dir.cellrun(&["graph", "nb.rhai", "--format", "mermaid"])
            .stdout,
    )
    .unwrap();
    assert!(mermaid.starts_with("flowchart TD"), "{mermaid}");
    assert!(mermaid.contains("c0 --> c2"), "{mermaid}");
    let json: Value = serde_json::from_slice(
        &dir.cellrun(&["graph", "nb.rhai", "--format", "json"])
            .stdout,
    )
    .unwrap();
    assert_eq!(
        json["edges"],
        json!([{"from": "data", "to": "report"}, {"from": "helpers", "to": "report"}])
    );
}
