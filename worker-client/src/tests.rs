//! The request and answer lines, against the SDK's mock host.

use executor_abi::abi_stable::std_types::{ROption, RVec};
use executor_abi::sdk::testing::{MockHost, TestCell};
use executor_abi::sdk::{Host, Value as SdkValue};
use executor_abi::FfiFunction;

use super::*;

#[test]
fn the_request_is_one_line_with_the_inputs_and_functions_the_cell_reaches() {
    let mut host = MockHost::new();
    host.define("x", SdkValue::Int(20));
    host.define("factor", SdkValue::Float(0.1 + 0.2));
    let mut cell = TestCell::new("b", "scale(x) + 1\n")
        .refs(&["x", "undefined"])
        .first_line(4);
    cell.context_mut().fn_refs = RVec::from(vec!["factor".into(), "x".into()]);
    cell.context_mut().functions = RVec::from(vec![FfiFunction {
        name: "scale".into(),
        cell: "helpers".into(),
        code: "fn scale(v) { v * factor }\n".into(),
        first_line: 2,
    }]);
    cell.context_mut().deadline_unix_ms = ROption::RSome(5);
    let request = {
        let context = cell.context_mut().clone();
        let host = Host::new(host.as_ffi(Some(&context), true));
        Request::for_cell(&context, &host, 7).unwrap()
    };
    let line = request.to_line();
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let value: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["protocol"], 1);
    assert_eq!(value["id"], 7);
    assert_eq!(value["cell"]["first_line"], 4);
    assert_eq!(value["cell"]["code"], "scale(x) + 1\n");
    assert_eq!(
        value["inputs"],
        json!({"x": {"int": 20}, "factor": {"float": format!("{:016x}", (0.1f64 + 0.2).to_bits())}}),
        "each name once, an undefined one left out for the worker to report"
    );
    assert_eq!(
        value["functions"],
        json!([{"name": "scale", "cell": "helpers", "code": "fn scale(v) { v * factor }\n", "first_line": 2}])
    );
    assert_eq!(value["deadline_unix_ms"], 5);
}

#[test]
fn the_answer_follows_the_ready_line_and_keeps_notebook_positions() {
    let text = "{\"protocol\":1,\"ready\":true,\"cellrun\":\"0.1.0\"}\n\
        {\"protocol\":1,\"id\":3,\"status\":\"error\",\"defs\":{\"x\":{\"int\":1}},\"no_wire\":{},\
        \"changed\":{\"xs\":{\"array\":[]}},\"output\":null,\"output_json\":null,\"stdout\":\"hi\\n\",\
        \"display\":null,\"error\":{\"kind\":\"runtime\",\"message\":\"boom\",\"line\":7,\"column\":3,\
        \"missing_name\":\"y\"}}\n";
    let answer = Answer::after_ready(text).unwrap();
    assert_eq!(answer.id, json!(3));
    assert_eq!(answer.defs, [("x".to_owned(), "{\"int\":1}".to_owned())]);
    assert_eq!(
        answer.changed,
        [("xs".to_owned(), "{\"array\":[]}".to_owned())]
    );
    assert_eq!(answer.output, None);
    assert_eq!(answer.stdout, "hi\n");
    let error = answer.error.unwrap();
    assert_eq!(
        (error.kind, error.message.as_str()),
        (FfiErrorKind::RUNTIME, "boom")
    );
    assert_eq!(
        (error.line, error.column),
        (ROption::RSome(7), ROption::RSome(3))
    );
    assert_eq!(error.missing_name, ROption::RSome("y".into()));
    assert_eq!(
        Answer::after_ready("").unwrap_err(),
        "the worker wrote no answer"
    );
    assert!(Answer::parse("{\"protocol\":2}")
        .unwrap_err()
        .contains("protocol 2"));
    assert!(is_ready_line(text.lines().next().unwrap()));
}

#[test]
fn applying_an_answer_writes_definitions_changed_inputs_and_the_outcome() {
    let mut host = MockHost::new();
    host.define("xs", SdkValue::Array(vec![SdkValue::Int(1)]));
    let line = r#"{"protocol":1,"id":1,"status":"ok","defs":{"y":{"float":"3fd3333333333334"}},"no_wire":{},"changed":{"xs":{"array":[{"int":1},{"int":2}]}},"output":{"map":{"n":{"int":2}}},"output_json":{"n":2},"stdout":"p\n","display":{"mime":"text/html","data":"<b>2</b>"},"error":null}"#;
    let outcome = {
        let context = TestCell::new("c", "").context_mut().clone();
        let mut host = Host::new(host.as_ffi(Some(&context), true));
        Answer::parse(line).unwrap().apply(&mut host).unwrap()
    };
    assert_eq!(host.value("y"), Some(SdkValue::Float(0.1 + 0.2)));
    assert_eq!(
        host.value("xs"),
        Some(SdkValue::Array(vec![SdkValue::Int(1), SdkValue::Int(2)]))
    );
    assert_eq!(outcome.stdout, "p\n");
    assert_eq!(
        outcome.display,
        Some(("text/html".to_owned(), "<b>2</b>".to_owned()))
    );
    assert!(outcome.is_ok());
    let FfiValue::Map(entries) = &outcome.output else {
        panic!("a map: {:?}", outcome.output)
    };
    assert_eq!(entries[0].value, FfiValue::Int(2));
    assert_eq!(host.value(OUTPUT_SLOT), None, "nothing is left behind");
}

#[test]
fn an_output_without_a_wire_form_comes_back_as_its_json_rendering() {
    let mut host = MockHost::new();
    let line = r#"{"protocol":1,"id":1,"status":"ok","defs":{},"output":null,"output_no_wire":"a value of type `timestamp` has no wire form","output_json":"<timestamp>","stdout":"","display":null,"error":null}"#;
    let context = TestCell::new("c", "").context_mut().clone();
    let mut host = Host::new(host.as_ffi(Some(&context), true));
    let outcome = Answer::parse(line).unwrap().apply(&mut host).unwrap();
    assert_eq!(outcome.output, FfiValue::Str("<timestamp>".into()));
}
