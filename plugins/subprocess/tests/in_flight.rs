//! Several cells in flight at once through the plugin's submit/complete
//! contract, each in a real `cellrun worker` process, completed in another
//! order than submitted, against the SDK's mock host.

use std::path::PathBuf;
use std::process::Command;

use executor_abi::sdk::testing::{MockHost, TestCell};
use executor_abi::sdk::{executor_for_tests, Outcome, Value};
use executor_abi::FfiValue;
use plugin_subprocess::{Subprocess, MAX_IN_FLIGHT};

/// The workspace's `cellrun` binary, built once.
fn cellrun() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "runner", "--bin", "cellrun"])
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "building cellrun failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join("cellrun")
}

#[test]
fn cells_submitted_together_complete_in_any_order_each_in_its_worker() {
    let cellrun = cellrun();
    let executor =
        executor_for_tests::<Subprocess>(&[("cellrun", cellrun.to_str().unwrap())]).unwrap();
    assert_eq!(executor.concurrency(), MAX_IN_FLIGHT);
    let mut host = MockHost::new();
    host.define("x", Value::Int(4));
    let mut cells: Vec<_> = [
        ("a", "let a = x + 1;\na"),
        ("b", "let b = x * 10;\nb"),
        ("c", "print(`c ${x}`);\nlet c = [x];"),
    ]
    .into_iter()
    .map(|(name, code)| {
        let mut cell = TestCell::new(name, code).defs(&[name]).refs(&["x"]);
        cell.context_mut().clone()
    })
    .collect();
    let tickets: Vec<u64> = cells
        .iter()
        .map(|cell| {
            executor
                .submit(cell, host.as_ffi(Some(cell), true))
                .into_result()
                .unwrap()
        })
        .collect();
    // The last one submitted completes first: no cell waits for another.
    let mut outcomes: Vec<Outcome> = Vec::new();
    for (cell, ticket) in cells.iter_mut().zip(&tickets).rev() {
        let outcome = executor
            .complete(*ticket, host.as_ffi(Some(cell), true))
            .into_result()
            .unwrap();
        outcomes.push(Outcome::from_ffi(outcome));
    }
    assert!(outcomes.iter().all(Outcome::is_ok), "{outcomes:?}");
    assert_eq!(outcomes[0].stdout, "c 4\n");
    assert_eq!(outcomes[1].output, FfiValue::Int(40));
    assert_eq!(outcomes[2].output, FfiValue::Int(5));
    assert_eq!(host.value("a"), Some(Value::Int(5)));
    assert_eq!(host.value("b"), Some(Value::Int(40)));
    assert_eq!(host.value("c"), Some(Value::Array(vec![Value::Int(4)])));
    executor.run_finished(&executor_abi::FfiRunOutcome {
        ok: 3,
        error: 0,
        cancelled: 0,
        interrupted: 0,
        was_interrupted: false,
    });
}
