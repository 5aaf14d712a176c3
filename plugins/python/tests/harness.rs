//! The plugin as the runner drives it, through the SDK's harness: cells in
//! order against a host holding the globals, values owned as Python objects.
//!
//! The interpreter is the virtual environment's of `.ci/run`
//! (`target/py-venv`), where marimo is installed; without it the test that
//! needs marimo fails naming the command that creates it, unless
//! `CELLRUN_SKIP_MARIMO=1` is set.

use std::path::{Path, PathBuf};

use executor_abi::sdk::testing::{Harness, TestCell};
use executor_abi::{FfiErrorKind, FfiStopReason};
use plugin_python::PythonPlugin;

fn venv_python() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-venv/bin/python")
}

/// One harness at a time: the process has one interpreter, and a stop
/// request interrupts whatever it runs.
fn harness() -> (std::sync::MutexGuard<'static, ()>, Harness) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let python = venv_python();
    let options: Vec<(&str, &str)> = if python.is_file() {
        vec![("python", python.to_str().expect("a UTF-8 path"))]
    } else {
        Vec::new()
    };
    (
        guard,
        Harness::new::<PythonPlugin>(&options).expect("the plugin builds"),
    )
}

fn cell(name: &str, code: &str, defs: &[&str], refs: &[&str]) -> TestCell {
    TestCell::new(name, code)
        .language("python")
        .defs(defs)
        .refs(refs)
}

#[test]
fn cells_pass_python_objects_through_the_host() {
    let (_one, mut harness) = harness();
    let outcomes = harness.run(&[
        cell("a", "numbers = [1, 2]\n", &["numbers"], &[]),
        cell(
            "b",
            "numbers.append(3)\ntotal = sum(numbers)\ntotal * 2\n",
            &["total"],
            &["numbers"],
        ),
        cell(
            "c",
            "print('total is', total)\n{'total': total, 'ok': True}\n",
            &[],
            &["total"],
        ),
        cell("d", "total / 0\n", &[], &["total"]),
    ]);
    assert!(
        outcomes[0].is_ok() && outcomes[1].is_ok() && outcomes[2].is_ok(),
        "{outcomes:?}"
    );
    let (id, type_name) = harness.host().owned("numbers").expect("an owned value");
    assert_eq!(type_name, "list");
    let json = harness
        .executor()
        .owned_json(id)
        .into_option()
        .expect("a JSON form");
    assert_eq!(
        json.as_str(),
        "[1, 2, 3]",
        "mutation in place is visible, as in marimo"
    );
    let (output, output_type) = outcomes[1].owned_output.clone().expect("an output");
    assert_eq!(output_type, "int");
    assert_eq!(
        harness
            .executor()
            .owned_json(output)
            .into_option()
            .unwrap()
            .as_str(),
        "12"
    );
    assert_eq!(outcomes[2].stdout, "total is 6\n");
    let (output, _) = outcomes[2].owned_output.clone().unwrap();
    assert_eq!(
        harness
            .executor()
            .owned_json(output)
            .into_option()
            .unwrap()
            .as_str(),
        r#"{"total": 6, "ok": true}"#
    );
    let error = outcomes[3].error.as_ref().expect("a failure");
    assert_eq!(error.kind, FfiErrorKind::RUNTIME);
    assert!(
        error
            .message
            .starts_with("ZeroDivisionError: division by zero"),
        "{}",
        error.message
    );
    assert_eq!(error.line.into_option(), Some(1));
}

#[test]
fn a_stopped_cell_is_interrupted_or_timed_out() {
    let (_one, mut harness) = harness();
    harness.host().stop(Some(FfiStopReason::TIMEOUT));
    let outcomes = harness.run(&[cell("slow", "while True:\n    pass\n", &[], &[])]);
    let error = outcomes[0].error.as_ref().expect("stopped");
    assert_eq!(error.kind, FfiErrorKind::TIMEOUT, "{}", error.message);
    harness.host().stop(Some(FfiStopReason::INTERRUPTED));
    let outcomes = harness.run(&[cell(
        "sleepy",
        "import time\nwhile True:\n    time.sleep(0.01)\n",
        &[],
        &[],
    )]);
    assert_eq!(
        outcomes[0].error.as_ref().unwrap().kind,
        FfiErrorKind::INTERRUPTED
    );
    harness.host().stop(None);
    let outcomes = harness.run(&[cell("after", "1 + 1\n", &[], &[])]);
    assert!(
        outcomes[0].is_ok(),
        "no interrupt leaks into the next cell: {outcomes:?}"
    );
}

#[test]
fn marimo_markdown_renders_as_html() {
    if !venv_python().is_file() {
        assert!(
            std::env::var_os("CELLRUN_SKIP_MARIMO").is_some(),
            "{} is missing: create it with `bash .ci/run` or `python3 -m venv target/py-venv && \
             target/py-venv/bin/pip install marimo==0.25.2` (or set CELLRUN_SKIP_MARIMO=1)",
            venv_python().display()
        );
        return;
    }
    let (_one, mut harness) = harness();
    let outcomes = harness.run(&[
        cell("imports", "import marimo as mo\n", &["mo"], &[]),
        cell("text", "mo.md('# Title')\n", &[], &["mo"]),
    ]);
    assert!(
        outcomes.iter().all(|outcome| outcome.is_ok()),
        "{outcomes:?}"
    );
    let (mime, data) = outcomes[1].display.clone().expect("a rich display");
    // marimo's own `_mime_` decides the type.
    assert!(mime == "text/markdown" || mime == "text/html", "{mime}");
    assert!(data.contains("Title"), "{data}");
    let (id, _) = outcomes[1].owned_output.clone().unwrap();
    assert!(harness
        .executor()
        .owned_display(id)
        .as_str()
        .contains("Title"));
}

#[test]
fn owned_values_copy_and_pickle_for_strict_and_cache() {
    let (_one, mut harness) = harness();
    let outcomes = harness.run(&[
        cell("make", "shared = {'k': [1, 2]}\n", &["shared"], &[]),
        cell("fn", "f = lambda: 1\n", &["f"], &[]),
    ]);
    assert!(
        outcomes.iter().all(|outcome| outcome.is_ok()),
        "{outcomes:?}"
    );
    let (id, _) = harness.host().owned("shared").unwrap();
    let executor = harness.executor();
    let copy = executor.owned_copy(id).into_option().expect("a copy");
    assert_ne!(copy, id);
    assert_eq!(
        executor.owned_json(copy).into_option().unwrap().as_str(),
        r#"{"k": [1, 2]}"#
    );
    let encoded = executor.owned_encode(id).into_option().expect("a pickle");
    let decoded = executor
        .owned_decode("dict".into(), encoded.as_slice().into())
        .into_option()
        .expect("decoded");
    assert_eq!(
        executor.owned_json(decoded).into_option().unwrap().as_str(),
        r#"{"k": [1, 2]}"#
    );
    assert_eq!(
        executor.owned_fingerprint(decoded).into_option(),
        executor.owned_fingerprint(id).into_option(),
        "equal values, equal fingerprints"
    );
    let (lambda, _) = harness.host().owned("f").unwrap();
    assert!(
        harness
            .executor()
            .owned_encode(lambda)
            .into_option()
            .is_none(),
        "a lambda cannot be stored"
    );
}
