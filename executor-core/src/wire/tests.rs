//! Tests of the wire form: round trips, exact floats, functions with their
//! source, values without a wire form, malformed texts.

use std::any::Any;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, FnPtr};

use super::*;
use crate::{CancelToken, CellSource, DefaultExecutor, Evaluator, Globals, RunResult};

/// The value of the Rhai expression `code`, on a plain engine.
fn eval(code: &str) -> Dynamic {
    Engine::new()
        .eval::<Dynamic>(code)
        .unwrap_or_else(|error| panic!("`{code}` failed: {error}"))
}

/// Decodes `text` with a fresh decoder.
fn decode(text: &str) -> Result<Dynamic, WireError> {
    Decoder::new().decode(text)
}

/// Checks that `value` encodes to `expected` and decodes back to a value
/// with the same encoding.
#[track_caller]
fn check_round_trip(value: &Dynamic, expected: &str) {
    let encoded = encode(value, &NoSources).unwrap();
    assert_eq!(encoded, expected);
    let parsed: serde_json::Value = serde_json::from_str(&encoded).expect("valid JSON");
    assert!(parsed.is_object());
    let decoded = decode(&encoded).unwrap();
    assert_eq!(encode(&decoded, &NoSources).unwrap(), encoded, "round trip");
}

/// A notebook of cells `c0`, `c1`, ... with `codes`, cell `i` at line `10 * i + 1`.
fn notebook(codes: &[&str]) -> Notebook {
    let sources = codes
        .iter()
        .enumerate()
        .map(|(index, code)| CellSource::new(format!("c{index}"), *code, 10 * index as u32 + 1))
        .collect();
    Notebook::compile(sources, &Limits::default())
}

/// Runs every cell of `notebook` in order from `globals`; returns the results.
fn run_all(notebook: &Notebook, globals: &mut Globals) -> Vec<RunResult> {
    let evaluator = Evaluator::new(
        Arc::new(DefaultExecutor::new(&Limits::default())),
        Vec::new(),
    );
    notebook
        .cells()
        .iter()
        .map(|cell| evaluator.evaluate(cell, globals, &CancelToken::new()))
        .collect()
}

#[test]
fn storable_values_have_the_cache_encodings_text() {
    let cases = [
        ("()", r#"{"unit":null}"#),
        ("true", r#"{"bool":true}"#),
        (
            "-9223372036854775807 - 1",
            r#"{"int":-9223372036854775808}"#,
        ),
        ("1.5", r#"{"float":"3ff8000000000000"}"#),
        ("'é'", r#"{"char":"é"}"#),
        (r#""a\"b""#, r#"{"str":"a\"b"}"#),
        ("let b = blob(2, 255); b", r#"{"blob":"ffff"}"#),
        (
            "[1, [2.0], #{}]",
            r#"{"array":[{"int":1},{"array":[{"float":"4000000000000000"}]},{"map":{}}]}"#,
        ),
        (
            "#{b: 1, a: 'x'}",
            r#"{"map":{"a":{"char":"x"},"b":{"int":1}}}"#,
        ),
        ("Fn(\"abs\")", r#"{"fn":"abs"}"#),
        ("let x = 5; x.tag = 7; x", r#"{"tag":[7,{"int":5}]}"#),
    ];
    for (code, expected) in cases {
        check_round_trip(&eval(code), expected);
    }
    let constant = Dynamic::from_array(vec![Dynamic::from_int(1)]).into_read_only();
    check_round_trip(&constant, r#"{"const":{"array":[{"int":1}]}}"#);
    assert!(decode(r#"{"const":{"int":1}}"#).unwrap().is_read_only());
}

#[test]
fn strings_with_every_kind_of_character_round_trip() {
    let text = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} del \u{7f} é 😀";
    let encoded = encode(&Dynamic::from(text), &NoSources).unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&encoded).unwrap();
    assert_eq!(parsed["str"].as_str(), Some(text));
    let decoded = decode(&encoded).unwrap();
    assert_eq!(decoded.into_immutable_string().unwrap().as_str(), text);
    let every_ascii: String = (0..=0x7f_u8).map(char::from).collect();
    let encoded = encode(&Dynamic::from(every_ascii.clone()), &NoSources).unwrap();
    let by_serde = serde_json::json!({ "str": every_ascii }).to_string();
    assert_eq!(
        encoded, by_serde,
        "the same text as serde_json's, so hashes agree"
    );
    let key_map = eval("#{\"a\\nb\": 1}");
    check_round_trip(&key_map, r#"{"map":{"a\nb":{"int":1}}}"#);
}

#[test]
fn floats_keep_their_exact_bits() {
    for float in [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_0000_dead_beef),
        f64::INFINITY,
        f64::NEG_INFINITY,
        -0.0,
        0.0,
        f64::from_bits(1),
        f64::MIN_POSITIVE / 3.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        0.1,
    ] {
        let encoded = encode(&Dynamic::from_float(float), &NoSources).unwrap();
        let decoded = decode(&encoded).unwrap();
        assert_eq!(
            decoded.as_float().unwrap().to_bits(),
            float.to_bits(),
            "{float:e} as {encoded}"
        );
    }
}

#[test]
fn nested_shared_containers_round_trip_unshared() {
    let inner =
        Dynamic::from_array(vec![Dynamic::from_int(1), Dynamic::from_float(-0.0)]).into_shared();
    let mut map = Map::new();
    map.insert("again".into(), inner.clone());
    map.insert(
        "deeper".into(),
        Dynamic::from_array(vec![inner.clone()]).into_shared(),
    );
    let outer =
        Dynamic::from_array(vec![inner.clone(), inner, Dynamic::from_map(map)]).into_shared();
    let item = r#"{"array":[{"int":1},{"float":"8000000000000000"}]}"#;
    let expected = format!(
        r#"{{"array":[{item},{item},{{"map":{{"again":{item},"deeper":{{"array":[{item}]}}}}}}]}}"#
    );
    check_round_trip(&outer, &expected);
    let decoded = decode(&expected).unwrap();
    assert!(!decoded.is_shared());
}

#[test]
fn a_million_element_array_round_trips() {
    let array: Array = (0..1_000_000_i64)
        .map(|index| {
            if index % 2 == 0 {
                Dynamic::from_int(index)
            } else {
                Dynamic::from_float(index as f64 / 3.0)
            }
        })
        .collect();
    let value = Dynamic::from_array(array).into_shared();
    let encoded = encode(&value, &NoSources).unwrap();
    assert!(encoded.starts_with(r#"{"array":[{"int":0},{"float":"3fd5555555555555"},"#));
    let decoded = decode(&encoded).unwrap();
    let items = decoded.read_lock::<Array>().unwrap();
    assert_eq!(items.len(), 1_000_000);
    assert_eq!(items[999_998].as_int(), Ok(999_998));
    assert_eq!(
        items[999_999].as_float().unwrap().to_bits(),
        (999_999.0_f64 / 3.0).to_bits()
    );
    drop(items);
    assert_eq!(encode(&decoded, &NoSources).unwrap(), encoded);
}

#[test]
fn encoding_appends_and_leaves_the_buffer_alone_on_error() {
    let mut out = String::from("x=");
    encode_into(&Dynamic::from_int(3), &NoSources, &mut out).unwrap();
    assert_eq!(out, r#"x={"int":3}"#);
    let error = encode_into(&eval("[1, timestamp()]"), &NoSources, &mut out).unwrap_err();
    assert!(matches!(error, WireError::NoWireForm { .. }), "{error}");
    assert_eq!(out, r#"x={"int":3}"#);
}

#[test]
fn anonymous_functions_are_named_from_their_code_alone() {
    // The name of the closure `f` that the last of `codes` makes.
    let name = |codes: &[&str]| -> String {
        let book = notebook(codes);
        let mut globals = Globals::new();
        let results = run_all(&book, &mut globals);
        assert!(results.iter().all(RunResult::is_ok));
        let f = globals
            .get("f")
            .unwrap()
            .read_lock::<FnPtr>()
            .unwrap()
            .clone();
        assert!(f.is_anonymous());
        f.fn_name().to_owned()
    };
    let code = "let k = 2; let f = |x| x * k;";
    assert_eq!(
        name(&[code]),
        name(&[code]),
        "two compiles of the same code agree"
    );
    assert_eq!(
        name(&[code]),
        name(&["let other = |y| y;", code]),
        "the cell's place in its notebook does not matter"
    );
    assert_ne!(name(&[code]), name(&["let k = 2; let f = |x| x * k + 1;"]));
    assert_ne!(name(&[code]), name(&["let k = 2; let f = |y| y * k;"]));
    assert_ne!(
        name(&[code]),
        name(&["let k = 2;  let f = |x| x * k;"]),
        "positions count"
    );
}

#[test]
fn a_closure_made_in_one_cell_is_called_from_its_wire_form_in_a_fresh_notebook() {
    // The host: one cell makes a closure over a captured array and a function.
    let host = notebook(&[
        "fn scale(x) { x * 10 }",
        "print(\"defining cell ran\"); let k = [1, 2]; let f = |x| scale(x) + k.len();",
    ]);
    let mut globals = Globals::new();
    assert!(run_all(&host, &mut globals).iter().all(RunResult::is_ok));
    let wire = encode(globals.get("f").unwrap(), &host).unwrap();
    let json: serde_json::Value = serde_json::from_str(&wire).unwrap();
    let closure = &json["closure"];
    assert!(closure["name"].as_str().unwrap().starts_with("anon$"));
    assert_eq!(
        closure["curry"],
        serde_json::json!([{"array": [{"int": 1}, {"int": 2}]}])
    );
    assert_eq!(closure["line"], 11);
    assert_eq!(closure["code"].as_str(), Some(host.cells()[1].code()));

    // Elsewhere: only the wire form, the code it carries and the caller.
    let mut decoder = Decoder::new();
    let f = decoder.decode(&wire).unwrap();
    let sources = decoder.sources().to_vec();
    assert_eq!(sources.len(), 1);
    let mut cells: Vec<CellSource> = sources
        .iter()
        .enumerate()
        .map(|(index, source)| {
            CellSource::new(format!("def{index}"), &*source.code, source.first_line)
        })
        .collect();
    cells.insert(0, CellSource::new("fns", "fn scale(x) { x * 10 }", 1));
    cells.push(CellSource::new("caller", "f.call(4)", 30));
    let remote = Notebook::compile(cells, &Limits::default());
    let caller = remote.find("caller").unwrap();
    let mut remote_globals = Globals::new();
    remote_globals.set("f", f);
    let evaluator = Evaluator::new(
        Arc::new(DefaultExecutor::new(&Limits::default())),
        Vec::new(),
    );
    let result = evaluator.evaluate(caller, &mut remote_globals, &CancelToken::new());
    assert!(result.is_ok(), "{:?}", result.error);
    assert_eq!(result.output.as_int(), Ok(42));
    assert_eq!(
        result.stdout, "",
        "the defining cell's statements did not run"
    );
}

#[test]
fn function_pointers_carry_their_source_unless_built_in() {
    let host = notebook(&[
        "fn scale(x) { x * 10 }",
        "let g = Fn(\"scale\"); let h = Fn(\"max\").curry(3);",
    ]);
    let mut globals = Globals::new();
    assert!(run_all(&host, &mut globals).iter().all(RunResult::is_ok));
    let cell = &host.cells()[1];
    let g = encode(globals.get("g").unwrap(), cell).unwrap();
    assert_eq!(
        g,
        r#"{"closure":{"name":"scale","curry":[],"code":"fn scale(x) { x * 10 }","line":1}}"#
    );
    let h = encode(globals.get("h").unwrap(), cell).unwrap();
    assert_eq!(h, r#"{"closure":{"name":"max","curry":[{"int":3}]}}"#);
    let decoded = decode(&h).unwrap();
    let fn_ptr = decoded.read_lock::<FnPtr>().unwrap();
    assert_eq!(fn_ptr.fn_name(), "max");
    assert_eq!(fn_ptr.curry().len(), 1);
    assert_eq!(fn_ptr.curry()[0].as_int(), Ok(3));
}

#[test]
fn values_without_a_wire_form_say_what_they_are() {
    let cases = [
        (
            eval("[1, #{t: timestamp()}]"),
            "a value of type `timestamp` has no wire form: it is a point on one process's clock",
        ),
        (
            eval("|x| x + 1"),
            "a value of type `Fn` has no wire form: the code of anonymous function",
        ),
        (
            ForeignValue::new(Frame(None)).into_dynamic(),
            "a value of type `demo.Frame` has no wire form: its owner `demo` gives it no encoding",
        ),
    ];
    for (value, message) in cases {
        let error = encode(&value, &NoSources).unwrap_err();
        assert!(
            error.to_string().starts_with(message),
            "{value:?} gave: {error}"
        );
    }
    let array = Dynamic::from_array(Vec::new()).into_shared();
    let itself = array.clone();
    array.clone().write_lock::<Array>().unwrap().push(itself);
    assert_eq!(encode(&array, &NoSources).unwrap_err(), WireError::Cycle);
    // Break the cycle so the test does not leak.
    array.clone().write_lock::<Array>().unwrap().clear();
}

#[test]
fn deep_nesting_is_refused_when_encoding_not_crashed_on() {
    let nest = |depth: usize| {
        let mut value = Dynamic::from_int(1);
        for _ in 0..depth {
            value = Dynamic::from_array(vec![value]);
        }
        value
    };
    let shallow = encode(&nest(50), &NoSources).unwrap();
    assert!(decode(&shallow).is_ok(), "what encodes also decodes");
    assert_eq!(
        encode(&nest(200), &NoSources).unwrap_err(),
        WireError::TooDeep
    );
}

/// A plugin-owned value, with an encoding when it has bytes.
struct Frame(Option<Vec<u8>>);

impl ForeignObject for Frame {
    fn type_name(&self) -> &str {
        "demo.Frame"
    }
    fn owner(&self) -> &str {
        "demo"
    }
    fn display(&self) -> String {
        "Frame".to_owned()
    }
    fn encode(&self) -> Option<Vec<u8>> {
        self.0.clone()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[test]
fn foreign_values_travel_as_their_owners_encoding() {
    let frame = ForeignValue::new(Frame(Some(vec![0, 1, 254]))).into_dynamic();
    let wire = encode(&Dynamic::from_array(vec![frame]), &NoSources).unwrap();
    assert_eq!(
        wire,
        r#"{"array":[{"foreign":{"owner":"demo","type":"demo.Frame","data":"0001fe"}}]}"#
    );
    // Without its owner it can only be passed on, unchanged.
    let opaque = decode(&wire).unwrap();
    assert_eq!(encode(&opaque, &NoSources).unwrap(), wire);
    // With its owner's decoder it is the owner's value again.
    let mut decoder = Decoder::new().with_foreign(Box::new(|owner, type_name, data| {
        assert_eq!((owner, type_name), ("demo", "demo.Frame"));
        Ok(ForeignValue::new(Frame(Some(data))).into_dynamic())
    }));
    let value = decoder.decode(&wire).unwrap();
    let items = value.read_lock::<Array>().unwrap();
    let back = ForeignValue::from_dynamic(&items[0]).unwrap();
    let frame = back.object().as_any().downcast_ref::<Frame>().unwrap();
    assert_eq!(frame.0.as_deref(), Some(&[0, 1, 254][..]));
    let mut refusing = Decoder::new().with_foreign(Box::new(|_, _, _| Err("gone".to_owned())));
    let error = refusing.decode(&wire).unwrap_err();
    assert!(
        error.to_string().contains("does not decode: gone"),
        "{error}"
    );
}

#[test]
fn malformed_wire_forms_are_rejected() {
    let cases = [
        "1",
        "not json",
        r#"{"int":1,"bool":true}"#,
        r#"{"int":"1"}"#,
        r#"{"float":"12"}"#,
        r#"{"char":"ab"}"#,
        r#"{"blob":"0g"}"#,
        r#"{"array":[{"what":1}]}"#,
        r#"{"tag":[1]}"#,
        r#"{"tag":[99999999999,{"unit":null}]}"#,
        r#"{"closure":{"name":"f"}}"#,
        r#"{"closure":{"name":"f","curry":[],"code":"fn f( {"}}"#,
        r#"{"foreign":{"owner":"demo","type":"t","data":"0"}}"#,
    ];
    for case in cases {
        let error = decode(case).unwrap_err();
        assert!(matches!(error, WireError::Malformed(_)), "{case}: {error}");
    }
    let error = decode(r#"{"closure":{"name":"anon$0","curry":[],"code":"fn g() {}","line":3}}"#)
        .unwrap_err();
    assert_eq!(
        error,
        WireError::MissingFunction {
            name: "anon$0".to_owned()
        }
    );
}
