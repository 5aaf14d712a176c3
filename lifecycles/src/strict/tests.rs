//! Tests of strict execution with the real evaluator and default executor.

use std::sync::{Arc, Mutex};

use executor_core::{CancelToken, DefaultExecutor, Evaluator, Executor, Limits};

use super::*;
use crate::testutil::{int, notebook, run_all, CountingExecutor};

/// One line per result: the output's debug form, or `kind: message` of the
/// error, then what the cell printed, if anything.
fn render(result: &RunResult) -> String {
    let mut line = match &result.error {
        Some(error) => format!("{}: {}", error.kind, error.message),
        None => format!("{:?}", result.output),
    };
    if !result.stdout.is_empty() {
        line.push_str(&format!(" | printed {:?}", result.stdout));
    }
    line
}

/// Runs the cells `codes` in order, under strict execution when `strict`,
/// returning one rendered line per cell and the final globals.
fn check(codes: &[&str], strict: bool) -> (Vec<String>, Globals) {
    let notebook = notebook(codes);
    let lifecycles: Vec<Arc<dyn Lifecycle>> = if strict {
        vec![Arc::new(StrictLifecycle::new(&notebook))]
    } else {
        Vec::new()
    };
    let mut globals = Globals::new();
    let results = run_all(&notebook, CountingExecutor::new(), lifecycles, &mut globals);
    assert!(!globals.is_restricted(), "teardown lifts the restriction");
    (results.iter().map(render).collect(), globals)
}

#[test]
fn in_place_mutation_of_an_input_stays_in_the_mutating_cell() {
    let codes = [
        "let arr = [1, 2, 3];",
        "arr.push(4); arr.len()",
        "arr.len()",
    ];
    let (strict, globals) = check(&codes, true);
    assert_eq!(strict, ["()", "4", "3"]);
    let arr = globals.get("arr").unwrap().as_array_ref().unwrap().len();
    assert_eq!(arr, 3);
    let (lax, _) = check(&codes, false);
    assert_eq!(
        lax,
        ["()", "4", "4"],
        "without strict the mutation is shared"
    );
}

#[test]
fn nested_containers_and_closure_captures_are_copied_too() {
    let (nested, _) = check(
        &[
            "let m = #{xs: [1]};",
            "m.xs.push(2); m.xs.len()",
            "m.xs.len()",
        ],
        true,
    );
    assert_eq!(nested, ["()", "2", "1"]);
    let closure = [
        "let k = [1]; let grow = |x| { k.push(x); k.len() };",
        "grow.call(5)",
        "k.len()",
    ];
    assert_eq!(check(&closure, true).0, ["()", "2", "1"]);
    assert_eq!(check(&closure, false).0, ["()", "2", "2"]);
}

#[test]
fn functions_see_the_globals_they_read() {
    let (lines, _) = check(
        &[
            "let k = 3;",
            "fn times(x) { x * k }",
            "times(2)",
            "let g = times; g",
        ],
        true,
    );
    assert_eq!(
        lines,
        ["()", "()", "6", r#"Fn*("times")"#],
        "a function read by name resolves without a global"
    );
}

/// An executor that records which globals its body can see, and defines `seen`.
struct Peeking {
    seen: Mutex<Vec<String>>,
}

impl Executor for Peeking {
    fn name(&self) -> &str {
        "peeking"
    }

    fn execute(&self, _cell: &Cell, globals: &mut Globals, _token: &CancelToken) -> RunResult {
        globals.set("seen", Dynamic::from_int(1));
        let mut names: Vec<String> = globals.names().map(str::to_owned).collect();
        names.sort_unstable();
        names.push(format!("b visible: {}", globals.get("b").is_some()));
        *self.seen.lock().unwrap() = names;
        RunResult::default()
    }
}

#[test]
fn a_body_sees_only_what_the_cell_reads_whatever_the_executor() {
    let notebook = notebook(&["let a = 1; let b = 2; let c = 3;", "a + c"]);
    let strict: Arc<dyn Lifecycle> = Arc::new(StrictLifecycle::new(&notebook));
    let limits = Limits::default();
    let mut globals = Globals::new();
    let token = CancelToken::new();
    let defining = Evaluator::new(
        Arc::new(DefaultExecutor::new(&limits)),
        vec![strict.clone()],
    );
    assert!(defining
        .evaluate(&notebook.cells()[0], &mut globals, &token)
        .is_ok());
    let peeking = Arc::new(Peeking {
        seen: Mutex::new(Vec::new()),
    });
    let reading = Evaluator::new(peeking.clone(), vec![strict]);
    assert!(reading
        .evaluate(&notebook.cells()[1], &mut globals, &token)
        .is_ok());
    assert_eq!(
        *peeking.seen.lock().unwrap(),
        ["a", "c", "seen", "b visible: false"]
    );
    let mut after: Vec<&str> = globals.names().collect();
    after.sort_unstable();
    assert_eq!(
        after,
        ["a", "b", "c", "seen"],
        "everything is visible after the cell"
    );
}

#[test]
fn a_def_not_produced_on_a_rerun_is_removed() {
    for strict in [true, false] {
        let notebook = notebook(&["let d = 2;", "let a = 1; let b = 10 / d; let c = 3;"]);
        let lifecycles: Vec<Arc<dyn Lifecycle>> = if strict {
            vec![Arc::new(StrictLifecycle::new(&notebook))]
        } else {
            Vec::new()
        };
        let evaluator = Evaluator::new(CountingExecutor::new(), lifecycles);
        let mut globals = Globals::new();
        let token = CancelToken::new();
        for cell in notebook.cells() {
            assert!(evaluator.evaluate(cell, &mut globals, &token).is_ok());
        }
        assert_eq!(int(&globals, "c"), Some(3));
        globals.set("d", Dynamic::from_int(0));
        let rerun = evaluator.evaluate(&notebook.cells()[1], &mut globals, &token);
        assert_eq!(rerun.error.unwrap().kind, ErrorKind::Runtime);
        assert_eq!(
            int(&globals, "a"),
            Some(1),
            "defs made before the failure stay"
        );
        let stale = (int(&globals, "b"), int(&globals, "c"));
        if strict {
            assert_eq!(stale, (None, None), "defs the rerun did not make are gone");
        } else {
            assert_eq!(stale, (Some(5), Some(3)), "without strict they linger");
        }
    }
}

#[test]
fn an_unresolved_ref_skips_the_body_and_blames_the_cell_meant_to_define_it() {
    let codes = [r#"throw "no x"; let x = 1;"#, r#"print("ran"); x + 1"#];
    let notebook = notebook(&codes);
    let executor = CountingExecutor::new();
    let mut globals = Globals::new();
    let lifecycles: Vec<Arc<dyn Lifecycle>> = vec![Arc::new(StrictLifecycle::new(&notebook))];
    let results = run_all(&notebook, executor.clone(), lifecycles, &mut globals);
    assert_eq!(executor.runs(), 1, "the second body does not run");
    let error = results[1].error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::Strict);
    assert_eq!(
        error.message,
        "cannot resolve `x`: it is not defined; it was expected to be defined by cell `c0`"
    );
    assert_eq!(error.blamed, Some(CellId::new(0)));
    assert_eq!(results[1].stdout, "");

    let (lax, _) = check(&codes, false);
    assert!(
        lax[1].starts_with("runtime: Variable not found: x"),
        "{}",
        lax[1]
    );
    assert!(lax[1].ends_with("printed \"ran\\n\""), "{}", lax[1]);
}

#[test]
fn unresolved_refs_are_reported_in_read_order_with_the_right_cause() {
    let cases: [(&[&str], &str); 3] = [
        (&["b + a"], "strict: cannot resolve `b`: it is not defined"),
        (
            &["let _p = 1;", "_p"],
            "strict: cannot resolve `_p`: it is not defined; names starting with `_` are private to the cell that defines them (`c0`)",
        ),
        (&["fn f() { missing }", "f()"], "strict: cannot resolve `missing`: it is not defined"),
    ];
    for (codes, expected) in cases {
        let (lines, _) = check(codes, true);
        assert_eq!(lines.last().unwrap(), expected, "{codes:?}");
    }
}

#[test]
fn an_unresolved_ref_leaves_the_globals_untouched() {
    let notebook = notebook(&["let z = q;"]);
    let mut globals = Globals::new();
    globals.set("z", Dynamic::from_int(9));
    let lifecycles: Vec<Arc<dyn Lifecycle>> = vec![Arc::new(StrictLifecycle::new(&notebook))];
    let results = run_all(&notebook, CountingExecutor::new(), lifecycles, &mut globals);
    assert_eq!(results[0].error.as_ref().unwrap().kind, ErrorKind::Strict);
    assert_eq!(
        int(&globals, "z"),
        Some(9),
        "the cell's old def was not removed"
    );
    assert!(!globals.is_restricted());
}

#[test]
fn inputs_are_restored_after_a_failure() {
    let (lines, globals) = check(
        &[
            "let arr = [1, 2, 3];",
            r#"arr.push(4); let half = 1; throw "boom";"#,
            "arr.len()",
        ],
        true,
    );
    assert_eq!(lines, ["()", "runtime: thrown: boom", "3"]);
    assert_eq!(
        int(&globals, "half"),
        Some(1),
        "defs made before the failure stay"
    );
}

#[test]
fn a_value_containing_itself_is_a_strict_error() {
    let notebook = notebook(&["a.len()"]);
    let array = Dynamic::from_array(Vec::new()).into_shared();
    let mut closure = rhai::FnPtr::new("f").unwrap();
    closure.add_curry(array.clone());
    array
        .clone()
        .write_lock::<rhai::Array>()
        .unwrap()
        .push(Dynamic::from(closure));
    let mut globals = Globals::new();
    globals.set("a", array.clone());
    let lifecycles: Vec<Arc<dyn Lifecycle>> = vec![Arc::new(StrictLifecycle::new(&notebook))];
    let results = run_all(&notebook, CountingExecutor::new(), lifecycles, &mut globals);
    assert_eq!(
        render(&results[0]),
        "strict: cannot copy `a` for the cell: the value contains itself"
    );
    // Break the cycle so the test does not leak.
    array.clone().write_lock::<rhai::Array>().unwrap().clear();
}

// See: issue 12, point 12: the copies keep each closure's captured state
// shared within the cell.
#[test]
fn issue_12_closures_keep_their_shared_state_in_the_copies() {
    let codes = [
        "let total = 0; let add = |n| { total += n; total }; let peek = || total;",
        "let seen = [add.call(2), add.call(3), peek.call()]; seen",
        "[add.call(1), peek.call()]",
    ];
    for strict in [true, false] {
        let (lines, _) = check(&codes, strict);
        assert_eq!(lines[1], "[2, 5, 5]", "strict: {strict}");
        let third = if strict { "[1, 1]" } else { "[6, 6]" };
        assert_eq!(lines[2], third, "strict: {strict}");
    }
}

/// Runs the counter cells `cells` under strict execution when `strict`.
fn run_boxes(cells: &[(&str, &[&str], &[&str])], strict: bool) -> (Vec<String>, Globals) {
    let notebook = crate::testutil::Boxes::notebook(cells);
    let lifecycles: Vec<Arc<dyn Lifecycle>> = if strict {
        vec![Arc::new(StrictLifecycle::new(&notebook))]
    } else {
        Vec::new()
    };
    let mut globals = Globals::new();
    let results = run_all(
        &notebook,
        Arc::new(crate::testutil::Boxes::default()),
        lifecycles,
        &mut globals,
    );
    (results.iter().map(render).collect(), globals)
}

#[test]
fn plugin_owned_inputs_are_copied_by_their_owner_and_restored() {
    let cells: [(&str, &[&str], &[&str]); 3] = [
        ("new x 1", &["x"], &[]),
        ("bump x", &[], &["x"]),
        ("get x", &[], &["x"]),
    ];
    let (strict, globals) = run_boxes(&cells, true);
    assert_eq!(strict, ["()", "2", "1"], "the bump changed a copy only");
    assert_eq!(
        crate::testutil::Counter::value(globals.get("x").unwrap()),
        Some(1),
        "the original is back in the globals"
    );
    let (lax, _) = run_boxes(&cells, false);
    assert_eq!(lax, ["()", "2", "2"], "without strict the bump is shared");
}

#[test]
fn a_plugin_owned_input_its_owner_cannot_copy_is_a_strict_error() {
    let cells: [(&str, &[&str], &[&str]); 2] =
        [("fixed x 1", &["x"], &[]), ("bump x", &[], &["x"])];
    let (strict, globals) = run_boxes(&cells, true);
    assert_eq!(
        strict[1],
        "strict: cannot copy `x` for the cell: a value of type `Counter` that plugin `boxes` cannot copy"
    );
    assert_eq!(
        crate::testutil::Counter::value(globals.get("x").unwrap()),
        Some(1),
        "the body did not run"
    );
}
