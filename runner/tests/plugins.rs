//! Plugins end to end: the plugin crates are built once through cargo, each
//! library is copied into a plugin directory of its own, and `cellrun` runs
//! with the directories a test combines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::{cellrun_command, Dir, Run};

/// The plugin packages the tests use, by library name.
const PLUGINS: &[&str] = &[
    "passthrough",
    "retry",
    "slurm",
    "subprocess",
    "trace",
    "ctor_error",
    "ctor_panic",
    "execute_panic",
    "setup_panic",
    "teardown_panic",
    "abi_two",
    "abi_1_0",
    "abi_1_1",
    "reserved_name",
    "bad_layout",
    "not_a_plugin",
];

/// The workspace's target directory, where the test binary itself was built.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Builds every plugin once (debug profile, the workspace target dir) and
/// returns where each library was copied: `<root>/<name>/lib<name>.so`, one
/// directory per plugin so tests can combine them.
pub(crate) fn built_plugins() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = Command::new(cargo);
        command
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["build", "--quiet"]);
        for plugin in PLUGINS {
            command.args(["-p", &format!("plugin-{}", plugin.replace('_', "-"))]);
        }
        let output = command.output().expect("cargo runs");
        assert!(
            output.status.success(),
            "building the plugins failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let root = target_dir().join("test-plugins");
        let _ = std::fs::remove_dir_all(&root);
        for plugin in PLUGINS {
            let file = library_file(plugin);
            let dir = root.join(plugin);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(target_dir().join("debug").join(&file), dir.join(&file)).unwrap();
            set_mode(&dir, 0o755);
            set_mode(&dir.join(&file), 0o755);
        }
        root
    })
}

pub(crate) fn library_file(plugin: &str) -> String {
    format!(
        "{}plugin_{plugin}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `--plugin-dir` arguments for `plugins`.
pub(crate) fn plugin_dirs(plugins: &[&str]) -> Vec<String> {
    plugins
        .iter()
        .flat_map(|plugin| {
            [
                "--plugin-dir".to_owned(),
                built_plugins().join(plugin).display().to_string(),
            ]
        })
        .collect()
}

/// Runs `notebook` with `--json`, the plugins, and `extra` arguments.
fn run_with(dir: &Dir, notebook: &str, plugins: &[&str], extra: &[&str]) -> Run {
    let mut args: Vec<String> = plugin_dirs(plugins);
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    dir.run_json(notebook, &args)
}

pub(crate) fn warnings(run: &Run) -> Vec<String> {
    run.events("warning")
        .iter()
        .map(|event| event["message"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn run_started(run: &Run) -> &Value {
    run.events("run_started")[0]
}

/// `a` feeds `boom`, which feeds `child`; `other` stands alone.
const BOOM: &str = "\
// %% a
let x = 1;
// %% boom
let y = x + 1;
// %% child
let z = y * 2;
// %% other
let w = 10;
w
";

#[test]
fn a_panic_in_execute_fails_that_cell_with_kind_plugin_and_the_run_goes_on() {
    let dir = Dir::new("execute-panic");
    let run = run_with(&dir, BOOM, &["execute_panic"], &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "execute-panic");
    let boom = run.finished("boom");
    assert_eq!(boom["status"], "error");
    assert_eq!(boom["error"]["kind"], "plugin");
    let message = boom["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("execute-panic")
            && message.contains("refusing to run the cell named boom"),
        "{message}"
    );
    assert_eq!(run.status("a"), "ok");
    assert_eq!(run.status("child"), "cancelled");
    assert_eq!(run.status("other"), "ok");
    assert_eq!(run.finished("other")["output"], 10);
    assert_eq!(run.counts(), (2, 1, 1, 0));
}

#[test]
fn a_failing_or_panicking_constructor_falls_back_to_the_default_executor() {
    for (plugin, name, reason) in [
        ("ctor_error", "ctor-error", "this fixture never starts"),
        ("ctor_panic", "ctor-panic", "constructor exploded"),
    ] {
        let dir = Dir::new(plugin);
        let run = run_with(&dir, BOOM, &[plugin], &[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run_started(&run)["executor"], "default");
        let warnings = warnings(&run);
        assert!(
            warnings
                .iter()
                .any(|warning| warning.contains(&format!("`{name}`")) && warning.contains(reason)),
            "{warnings:?}"
        );
        assert_eq!(run.counts(), (4, 0, 0, 0));
    }
}

#[test]
fn only_the_first_executor_alphabetically_is_constructed() {
    let dir = Dir::new("alphabetical");
    // `ctor-panic` would be selected first; denying it picks `passthrough`,
    // and `retry` is named in a warning without being constructed.
    let mut command = cellrun_command(dir.path());
    dir.write("nb.rhai", BOOM);
    command
        .args(["run", "nb.rhai", "--json"])
        .args(plugin_dirs(&["ctor_panic", "passthrough", "retry"]))
        .env("CELLRUN_EXECUTOR_DENYLIST", "ctor-panic");
    let run = Run::from_output(command.output().unwrap());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "passthrough");
    let warnings = warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("retry"), "{warnings:?}");
}

#[test]
fn an_incompatible_abi_major_is_one_friendly_warning() {
    let dir = Dir::new("abi-two");
    let run = run_with(&dir, BOOM, &["abi_two"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        warnings(&run),
        [format!(
            "plugin {} skipped: plugin {} was built against executor-abi 2.0.0; this cellrun loads 1.x",
            built_plugins().join("abi_two").join(library_file("abi_two")).display(),
            library_file("abi_two")
        )]
    );
    assert_eq!(run_started(&run)["executor"], "default");
}

// See: issue 4, "ABI compatibility tooling": a plugin built against
// executor-abi 1.0 loads and runs in a cellrun on 1.1, whose root module
// gained a field (abi_stable alone rejects it with "too many fields").
#[test]
fn issue_4_plugins_built_against_1_0_load_in_1_1() {
    let dir = Dir::new("abi-1-0");
    let mut args = vec!["plugins".to_owned(), "--json".to_owned()];
    args.extend(plugin_dirs(&["abi_1_0", "passthrough"]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = dir.cellrun(&args);
    assert!(output.status.success());
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_ne!(document["abi_version"], "1.0.0", "the runner is past 1.0");
    let libraries = document["libraries"].as_array().unwrap();
    let old = libraries
        .iter()
        .find(|library| library["name"] == "abi-1-0")
        .unwrap_or_else(|| panic!("{libraries:#?}"));
    assert_eq!(old["abi_version"], "1.0.0");
    assert_eq!(old["compatible"], true, "{old:#?}");
    assert_eq!(document["executor"], "abi-1-0");

    let run = run_with(&dir, BOOM, &["abi_1_0"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(warnings(&run).is_empty(), "{:?}", warnings(&run));
    assert_eq!(run_started(&run)["executor"], "abi-1-0");
    for cell in ["a", "boom", "child", "other"] {
        let finished = run.finished(cell);
        assert_eq!(finished["status"], "ok", "{finished:#?}");
        assert!(
            finished["stdout"]
                .as_str()
                .unwrap()
                .ends_with("ran by abi-1-0\n"),
            "{finished:#?}"
        );
    }
    assert_eq!(run.finished("other")["output"], 10);
}

#[test]
fn a_layout_mismatch_is_caught_before_construction_and_falls_back() {
    let dir = Dir::new("bad-layout");
    let run = run_with(&dir, BOOM, &["bad_layout"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "default");
    let warnings = warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("`bad-layout`") && warnings[0].contains("layout check failed"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].lines().count() == 1,
        "the layout report stays at debug level"
    );
}

#[test]
fn a_library_that_is_not_a_plugin_and_a_missing_directory_are_warnings() {
    let dir = Dir::new("not-a-plugin");
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("libjunk.so"), "not a library").unwrap();
    let run = run_with(
        &dir,
        BOOM,
        &["not_a_plugin", "passthrough"],
        &["--plugin-dir", "garbage", "--plugin-dir", "missing"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "passthrough");
    let warnings = warnings(&run);
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings
        .iter()
        .any(|warning| warning.contains("libplugin_not_a_plugin")
            && warning.contains("not a cellrun plugin")));
    assert!(warnings.iter().any(
        |warning| warning.contains("libjunk.so") && warning.contains("not a loadable library")
    ));
    assert!(warnings
        .iter()
        .any(|warning| warning.contains("missing") && warning.contains("does not exist")));
}

#[test]
fn untrusted_plugins_are_refused_unless_allowed() {
    let dir = Dir::new("untrusted");
    let source = built_plugins()
        .join("passthrough")
        .join(library_file("passthrough"));
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let copy = plugins.join(library_file("passthrough"));
    std::fs::copy(source, &copy).unwrap();
    set_mode(&copy, 0o775);
    let run = dir.run_json(BOOM, &["--plugin-dir", "plugins"]);
    assert_eq!(run_started(&run)["executor"], "default");
    let warnings = warnings(&run);
    assert!(
        warnings.len() == 1
            && warnings[0].contains("refusing untrusted plugin")
            && warnings[0].contains("writable by group or others"),
        "{warnings:?}"
    );
    let run = dir.run_json(
        BOOM,
        &["--plugin-dir", "plugins", "--allow-untrusted-plugins"],
    );
    assert_eq!(run_started(&run)["executor"], "passthrough");
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn plugin_directories_come_from_the_environment_too() {
    let dir = Dir::new("plugin-path");
    dir.write("nb.rhai", BOOM);
    let path = std::env::join_paths([
        built_plugins().join("trace"),
        built_plugins().join("passthrough"),
    ])
    .unwrap();
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--plugin-opt", "trace.path=t.json"])
        .env("CELLRUN_PLUGIN_PATH", path)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let first = stdout.lines().next().unwrap();
    assert!(
        first.contains("with executor `passthrough` and lifecycles trace"),
        "{first}"
    );
}

#[test]
fn lifecycle_panics_fail_the_cell_with_kind_plugin() {
    for (plugin, name, phase) in [
        ("setup_panic", "setup-panic", "setup"),
        ("teardown_panic", "teardown-panic", "teardown"),
    ] {
        let dir = Dir::new(plugin);
        let run = run_with(&dir, BOOM, &[plugin], &[]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert_eq!(run_started(&run)["lifecycles"], serde_json::json!([name]));
        let boom = run.finished("boom");
        assert_eq!(boom["error"]["kind"], "plugin");
        let message = boom["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("plugin `{name}` panicked in {phase}")),
            "{message}"
        );
        assert_eq!(run.status("child"), "cancelled");
        assert_eq!(run.status("other"), "ok");
    }
}

#[test]
fn denied_lifecycles_are_not_composed() {
    let dir = Dir::new("lifecycle-deny");
    dir.write("nb.rhai", BOOM);
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--json"])
        .args(plugin_dirs(&["setup_panic", "teardown_panic"]))
        .env("CELLRUN_LIFECYCLE_DENYLIST", "Setup-Panic")
        .output()
        .unwrap();
    let run = Run::from_output(output);
    assert_eq!(
        run_started(&run)["lifecycles"],
        serde_json::json!(["teardown-panic"])
    );
}

/// `state` is mutated in place by `flaky`, which fails until its third try.
const FLAKY: &str = "\
// %% counter
let state = #{tries: 0};
// %% flaky
state.tries += 1;
if state.tries < 3 { throw \"not yet\"; }
state.tries
";

#[test]
fn retry_runs_a_failing_cell_again_and_logs_through_the_host() {
    let dir = Dir::new("retry");
    dir.write("nb.rhai", FLAKY);
    let output = cellrun_command(dir.path())
        .args(["run", "nb.rhai", "--json"])
        .args(plugin_dirs(&["retry"]))
        .args([
            "--plugin-opt",
            "retry.attempts=3",
            "--plugin-opt",
            "retry.backoff_ms=1",
        ])
        .env("CELLRUN_LOG", "plugin=info")
        .output()
        .unwrap();
    let run = Run::from_output(output);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "retry");
    assert_eq!(run.finished("flaky")["output"], 3);
    assert!(
        run.stderr.contains("retrying cell `flaky` (retry 2 of 3)")
            && run.stderr.contains("plugin=\"retry\""),
        "{}",
        run.stderr
    );

    let run = run_with(
        &dir,
        FLAKY,
        &["retry"],
        &["--plugin-opt", "retry.attempts=1"],
    );
    assert_eq!(run.status("flaky"), "error");

    let run = run_with(
        &dir,
        FLAKY,
        &["retry"],
        &["--plugin-opt", "retry.attempts=lots"],
    );
    assert_eq!(run_started(&run)["executor"], "default");
    assert!(
        warnings(&run)
            .iter()
            .any(|warning| warning.contains("attempts=lots")),
        "{:?}",
        warnings(&run)
    );
}

#[test]
fn trace_writes_one_complete_event_per_cell() {
    let dir = Dir::new("trace");
    let run = run_with(
        &dir,
        BOOM,
        &["trace"],
        &["--plugin-opt", "trace.path=trace.json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(dir.path().join("trace.json")).unwrap();
    let trace: Value = serde_json::from_str(&text).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    let cells: Vec<&Value> = events
        .iter()
        .filter(|event| event["cat"] == "cell")
        .collect();
    let names: Vec<&str> = cells
        .iter()
        .map(|event| event["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "boom", "child", "other"]);
    for event in &cells {
        assert_eq!(event["ph"], "X");
        assert!(event["dur"].as_f64().unwrap() >= 0.0);
        assert_eq!(event["args"]["status"], "ok");
    }
    assert_eq!(
        events.len(),
        4 * 4,
        "a cell span and three phase spans per cell"
    );

    // Without its path the lifecycle is left out with a warning.
    let run = run_with(&dir, BOOM, &["trace"], &[]);
    assert_eq!(run_started(&run)["lifecycles"], serde_json::json!([]));
    assert!(warnings(&run)
        .iter()
        .any(|warning| warning.contains("trace.path")));
}

#[test]
fn plugins_lists_every_library_and_the_executor_a_run_would_use() {
    let dir = Dir::new("list");
    let mut args = vec!["plugins".to_owned(), "--json".to_owned()];
    args.extend(plugin_dirs(&[
        "abi_two",
        "not_a_plugin",
        "retry",
        "trace",
        "passthrough",
    ]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = dir.cellrun(&args);
    assert!(output.status.success());
    let document: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(document["executor"], "passthrough");
    assert_eq!(document["lifecycles"], serde_json::json!(["trace"]));
    let libraries = document["libraries"].as_array().unwrap();
    assert_eq!(libraries.len(), 5);
    let by_name = |name: &str| {
        libraries
            .iter()
            .find(|library| library["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {libraries:#?}"))
    };
    assert_eq!(by_name("retry")["kind"], "executor");
    assert_eq!(by_name("retry")["abi_version"], document["abi_version"]);
    assert_eq!(by_name("retry")["compatible"], true);
    assert_eq!(by_name("trace")["kind"], "lifecycle");
    let two = libraries
        .iter()
        .find(|library| library["abi_version"] == "2.0.0")
        .unwrap();
    assert_eq!(two["compatible"], false);
    assert!(two["problem"]
        .as_str()
        .unwrap()
        .contains("this cellrun loads 1.x"));

    let output = dir.cellrun(&["plugins", "--plugin-dir", "nowhere"]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("a run would use executor `default`"),
        "{stdout}"
    );
}

#[test]
fn a_duplicate_plugin_name_is_a_warning_naming_both_files() {
    let dir = Dir::new("duplicate");
    let source = built_plugins()
        .join("passthrough")
        .join(library_file("passthrough"));
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for copy in ["a", "b"] {
        let path = plugins.join(format!("{copy}{}", library_file("passthrough")));
        std::fs::copy(&source, &path).unwrap();
    }
    set_mode(&plugins, 0o755);
    let run = dir.run_json(BOOM, &["--plugin-dir", "plugins"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "passthrough");
    let warnings = warnings(&run);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("duplicate name `passthrough`")
            && warnings[0].contains(&format!("b{}", library_file("passthrough")))
            && warnings[0].contains(&format!("a{}", library_file("passthrough"))),
        "{warnings:?}"
    );
}

#[test]
fn plugins_load_once_for_a_whole_watch() {
    let dir = Dir::new("watch-trace");
    let mut args = plugin_dirs(&["trace"]);
    args.extend([
        "--plugin-opt".to_owned(),
        "trace.path=trace.json".to_owned(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut watching = crate::util::Watching::start(&dir, BOOM, &args);
    let first = watching.run();
    assert_eq!(
        run_started(&first)["lifecycles"],
        serde_json::json!(["trace"])
    );
    dir.write("nb.rhai", &BOOM.replace("x + 1", "x + 2"));
    let (rerun, _) = watching.rerun();
    assert_eq!(crate::util::names(&rerun["cells"]), ["boom", "child"]);
    assert_eq!(watching.quit(), 0);

    // One trace, written when the watch ends, with the spans of both runs.
    let text = std::fs::read_to_string(dir.path().join("trace.json")).unwrap();
    let trace: Value = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["cat"] == "cell")
        .map(|event| event["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "boom", "child", "other", "boom", "child"]);
}

// See: issue 8 (plugins built against 1.1 keep loading after 1.2).
#[test]
fn issue_8_plugins_built_against_1_1_load_in_1_2() {
    let dir = Dir::new("abi-1-1");
    let run = run_with(&dir, BOOM, &["abi_1_1"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["executor"], "abi-1-1");
    assert!(run_started(&run)["fallback"].is_null());
    for cell in ["a", "boom", "child", "other"] {
        let finished = run.finished(cell);
        assert_eq!(finished["status"], "ok", "{finished:#?}");
        assert!(finished["stdout"]
            .as_str()
            .unwrap()
            .ends_with("ran by abi-1-1\n"));
    }
}

// See: issue 8 (a fallback is loud; a named executor has no fallback).
#[test]
fn issue_8_a_fallback_is_in_run_started_and_a_named_executor_that_fails_stops_the_run() {
    let dir = Dir::new("fallback");
    let run = run_with(&dir, BOOM, &["ctor_error"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let started = run_started(&run);
    assert_eq!(started["executor"], "default");
    assert_eq!(started["fallback"]["from"], "ctor-error", "{started:#?}");
    assert!(started["fallback"]["reason"]
        .as_str()
        .unwrap()
        .contains("this fixture never starts"));

    let named = run_with(&dir, BOOM, &["ctor_error"], &["--executor", "ctor-error"]);
    assert_eq!(named.code, 2, "{}", named.stderr);
    assert!(named.events("cell_finished").is_empty(), "no cell runs");
    assert!(
        named
            .stderr
            .contains("executor `ctor-error` could not be constructed")
            && named.stderr.contains("no cell was run"),
        "{}",
        named.stderr
    );
    let unknown = run_with(&dir, BOOM, &["passthrough"], &["--executor", "nope"]);
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("no executor named `nope`")
            && unknown.stderr.contains("passthrough"),
        "{}",
        unknown.stderr
    );
    let chosen = run_with(
        &dir,
        BOOM,
        &["passthrough", "retry"],
        &["--executor", "retry"],
    );
    assert_eq!(chosen.code, 0, "{}", chosen.stderr);
    assert_eq!(run_started(&chosen)["executor"], "retry");
    let builtin = run_with(&dir, BOOM, &["passthrough"], &["--executor", "default"]);
    assert_eq!(run_started(&builtin)["executor"], "default");
}

// See: issue 8 (reserved names are refused at load).
#[test]
fn issue_8_a_plugin_taking_a_built_in_name_is_skipped_with_a_reason() {
    let dir = Dir::new("reserved");
    let run = run_with(&dir, BOOM, &["reserved_name"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run_started(&run)["lifecycles"].as_array().unwrap().len(), 0);
    let warnings = warnings(&run);
    assert!(
        warnings.iter().any(
            |warning| warning.contains("`strict` is reserved for cellrun's built-in lifecycle")
        ),
        "{warnings:?}"
    );
}
