//! Tests of the cell cache with the real evaluator, default executor and directory.

use std::sync::Arc;

use executor_core::{CancelToken, DefaultExecutor, ErrorKind, Evaluator, Limits};

use super::*;
use crate::testutil::{int, notebook, run_all, CountingExecutor, TestDir};
use crate::value::decode;
use crate::StrictLifecycle;
use serde_json::Value;

/// A notebook's cells run through a cache in one directory, counting bodies.
struct Fixture {
    notebook: Notebook,
    cache: Arc<CachedLifecycle>,
    executor: Arc<CountingExecutor>,
}

impl Fixture {
    fn new(codes: &[&str], dir: &Path) -> Fixture {
        let notebook = notebook(codes);
        let cache = Arc::new(CachedLifecycle::new(dir.to_owned(), &notebook).unwrap());
        Fixture {
            notebook,
            cache,
            executor: CountingExecutor::new(),
        }
    }

    /// Runs every cell with fresh globals, returning the results and the globals.
    fn run(&self) -> (Vec<RunResult>, Globals) {
        let mut globals = Globals::new();
        let results = self.run_with(&mut globals);
        (results, globals)
    }

    fn run_with(&self, globals: &mut Globals) -> Vec<RunResult> {
        run_all(
            &self.notebook,
            self.executor.clone(),
            vec![self.cache.clone()],
            globals,
        )
    }

    /// Evaluates only the cell at `index`.
    fn evaluate(&self, index: usize, globals: &mut Globals) -> RunResult {
        let evaluator = Evaluator::new(self.executor.clone(), vec![self.cache.clone()]);
        evaluator.evaluate(&self.notebook.cells()[index], globals, &CancelToken::new())
    }
}

/// Which results were restored from the cache.
fn cached(results: &[RunResult]) -> Vec<bool> {
    results.iter().map(|result| result.cached).collect()
}

/// The paths of the entries in `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    cache_files(dir)
        .unwrap()
        .into_iter()
        .filter(|(_, kind)| *kind == FileKind::Entry)
        .map(|(path, _)| path)
        .collect()
}

/// Checks that every entry in `dir` is whole and decodes.
#[track_caller]
fn assert_entries_decode(dir: &Path) {
    for path in entries(dir) {
        let json: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(json["format"], FORMAT, "{name}");
        assert_eq!(format!("{}.json", json["key"].as_str().unwrap()), name);
        assert!(decode(&json["output"]).is_ok(), "{name}");
        for (def, encoded) in json["defs"].as_object().unwrap() {
            assert!(decode(encoded).is_ok(), "{name}: {def}");
        }
    }
}

const PRINTING: [&str; 2] = ["let n = 2;", r#"print("computing"); let m = n * 10; m + 1"#];

#[test]
fn values_too_deep_to_read_back_are_not_stored() {
    let dir = TestDir::new("deep");
    let deep = format!("let v = {}1{};", "[".repeat(70), "]".repeat(70));
    let notebook = notebook(&[deep.as_str()]);
    let cache = Arc::new(CachedLifecycle::new(dir.path().to_path_buf(), &notebook).unwrap());
    let evaluator = Evaluator::new(
        Arc::new(DefaultExecutor::new(&Limits::default())),
        vec![cache],
    );
    let result = evaluator.evaluate(
        &notebook.cells()[0],
        &mut Globals::new(),
        &CancelToken::new(),
    );
    assert!(result.is_ok(), "{:?}", result.error);
    assert_eq!(
        cache_info(dir.path()).unwrap().entries,
        0,
        "such an entry would never hit"
    );
}

#[test]
fn a_second_run_with_the_same_inputs_is_a_hit_and_skips_the_body() {
    let dir = TestDir::new("hit");
    let fixture = Fixture::new(&PRINTING, dir.path());
    let (first, _) = fixture.run();
    assert_eq!(cached(&first), [false, false]);
    assert_eq!(fixture.executor.runs(), 2);

    let (second, globals) = fixture.run();
    assert_eq!(cached(&second), [true, true]);
    assert_eq!(fixture.executor.runs(), 2, "no body ran");
    assert_eq!(second[1].output.as_int(), Ok(21));
    assert_eq!(second[1].stdout, "computing\n", "printed text is restored");
    assert!(second.iter().all(RunResult::is_ok));
    assert_eq!(
        (int(&globals, "n"), int(&globals, "m")),
        (Some(2), Some(20))
    );
}

#[test]
fn failed_runs_are_never_stored() {
    let dir = TestDir::new("errors");
    let fixture = Fixture::new(&["let a = 1;", r#"let b = a; throw "no";"#], dir.path());
    for expected in [[false, false], [true, false]] {
        let (results, _) = fixture.run();
        assert_eq!(results[1].error.as_ref().unwrap().kind, ErrorKind::Runtime);
        assert_eq!(cached(&results), expected);
    }
    assert_eq!(
        fixture.executor.runs(),
        3,
        "the failing cell ran both times, the other once"
    );
    assert_eq!(cache_info(dir.path()).unwrap().entries, 1);
}

#[test]
fn a_changed_upstream_value_invalidates_the_cells_reading_it() {
    let dir = TestDir::new("upstream");
    let fixture = Fixture::new(&PRINTING, dir.path());
    let (_, mut globals) = fixture.run();
    assert!(fixture.evaluate(1, &mut globals).cached);
    globals.set("n", Dynamic::from_int(3));
    let changed = fixture.evaluate(1, &mut globals);
    assert!(!changed.cached);
    assert_eq!(changed.output.as_int(), Ok(31));
    globals.set("n", Dynamic::from_int(2));
    assert_eq!(
        fixture.evaluate(1, &mut globals).output.as_int(),
        Ok(21),
        "the old entry is still there"
    );
    assert_eq!(fixture.executor.runs(), 3);
}

#[test]
fn a_changed_function_in_another_cell_invalidates_its_callers() {
    let dir = TestDir::new("functions");
    let callers = ["let base = 1;", "let y = helper(base);", "let z = y * 2;"];
    let run = |helper: &str| {
        let fixture = Fixture::new(&[helper, callers[0], callers[1], callers[2]], dir.path());
        let (results, globals) = fixture.run();
        (cached(&results), int(&globals, "z"))
    };
    assert_eq!(
        run("fn helper(x) { inner(x) + 1 } fn inner(x) { x }").1,
        Some(4)
    );
    assert_eq!(
        run("fn helper(x) { inner(x) + 1 } fn inner(x) { x }"),
        (vec![true, true, true, true], Some(4))
    );
    let (changed, z) = run("fn helper(x) { inner(x) + 2 } fn inner(x) { x }");
    assert_eq!(
        changed,
        [false, true, false, false],
        "helper's cell, its callers and theirs miss"
    );
    assert_eq!(z, Some(6));
}

#[test]
fn a_function_reached_through_another_function_is_part_of_the_key() {
    let dir = TestDir::new("transitive");
    let run = |inner: &str| {
        let fixture = Fixture::new(
            &[inner, "fn outer(x) { inner(x) * 10 }", "let v = outer(1);"],
            dir.path(),
        );
        let (results, globals) = fixture.run();
        (cached(&results), int(&globals, "v"))
    };
    assert_eq!(run("fn inner(x) { x }").1, Some(10));
    assert_eq!(
        run("fn inner(x) { x + 1 }"),
        (vec![false, false, false], Some(20)),
        "outer's cell calls inner, and v's cell reaches inner through outer"
    );
}

#[test]
fn closures_run_live_and_are_not_stored() {
    let dir = TestDir::new("closures");
    let fixture = Fixture::new(
        &[
            "let k = 2; let add = |x| x + k;",
            "add.call(1)",
            "let t = 5;",
        ],
        dir.path(),
    );
    let (first, _) = fixture.run();
    let (second, _) = fixture.run();
    assert_eq!(second[1].output.as_int(), Ok(3));
    assert_eq!(cached(&first), [false, false, false]);
    assert_eq!(cached(&second), [false, false, true]);
    assert_eq!(fixture.executor.runs(), 5);
    assert_eq!(
        cache_info(dir.path()).unwrap().entries,
        1,
        "only the cell without closures"
    );
}

#[test]
fn unusable_entries_are_run_live_and_rewritten() {
    type Damage = fn(Vec<u8>) -> Vec<u8>;
    let cases: [(&str, Damage); 5] = [
        ("garbage", |_| b"\x00\xffnot json".to_vec()),
        ("truncated", |bytes| bytes[..bytes.len() / 2].to_vec()),
        ("empty", |_| Vec::new()),
        ("wrong key", |bytes| {
            let text = String::from_utf8(bytes).unwrap();
            let key_at = text.find("\"key\":\"").unwrap() + 7;
            let mut text = text.into_bytes();
            text[key_at] = if text[key_at] == b'0' { b'1' } else { b'0' };
            text
        }),
        ("bad value", |bytes| {
            String::from_utf8(bytes)
                .unwrap()
                .replace(r#"{"int":42}"#, r#"{"int":"42"}"#)
                .into_bytes()
        }),
    ];
    for (label, damage) in cases {
        let dir = TestDir::new("damaged");
        let fixture = Fixture::new(&["let x = 40 + 2; x"], dir.path());
        fixture.run();
        let [entry] = &entries(dir.path())[..] else {
            panic!("{label}: expected one entry");
        };
        let intact = fs::read(entry).unwrap();
        fs::write(entry, damage(intact.clone())).unwrap();

        let (results, globals) = fixture.run();
        assert!(!results[0].cached, "{label}");
        assert_eq!(results[0].output.as_int(), Ok(42), "{label}");
        assert_eq!(int(&globals, "x"), Some(42), "{label}");
        assert_eq!(
            fs::read(entry).unwrap(),
            intact,
            "{label}: the entry is rewritten"
        );
        assert!(fixture.run().0[0].cached, "{label}: and used again");
        assert_eq!(fixture.executor.runs(), 2, "{label}");
    }
}

#[test]
fn temporary_files_are_ignored_and_cleared() {
    let dir = TestDir::new("temps");
    let fixture = Fixture::new(&["let x = 1;"], dir.path());
    fixture.run();
    let entry = entries(dir.path()).remove(0);
    let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
    // A writer killed before its rename left this behind.
    fs::write(dir.path().join(format!("{name}.99-0-0-0.tmp")), b"{\"half").unwrap();
    fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
    fs::write(
        dir.path().join(format!("{}.json", "g".repeat(64))),
        b"not ours either",
    )
    .unwrap();

    assert!(fixture.run().0[0].cached);
    let info = cache_info(dir.path()).unwrap();
    assert_eq!((info.entries, info.temp_files), (1, 1));
    assert_eq!(info.bytes, fs::metadata(&entry).unwrap().len());

    assert_eq!(cache_clear(dir.path()).unwrap(), 2);
    assert_eq!(cache_info(dir.path()).unwrap(), CacheInfo::default());
    assert!(dir.path().join("notes.txt").exists(), "other files stay");
    assert!(!fixture.run().0[0].cached, "a cleared cache misses");
}

#[test]
fn a_missing_directory_is_an_empty_cache() {
    let dir = TestDir::new("missing");
    assert_eq!(cache_info(dir.path()).unwrap(), CacheInfo::default());
    assert_eq!(cache_clear(dir.path()).unwrap(), 0);
}

#[test]
fn cache_info_counts_entries_and_their_bytes() {
    let dir = TestDir::new("info");
    let fixture = Fixture::new(
        &["let a = 1;", "let b = a + 1;", "let c = [a, b];"],
        dir.path(),
    );
    fixture.run();
    let info = cache_info(dir.path()).unwrap();
    let bytes: u64 = entries(dir.path())
        .iter()
        .map(|path| fs::metadata(path).unwrap().len())
        .sum();
    assert_eq!(
        info,
        CacheInfo {
            entries: 3,
            bytes,
            temp_files: 0
        }
    );
}

#[test]
fn file_names_are_classified_strictly() {
    let key = "0123456789abcdef".repeat(4);
    let cases = [
        (format!("{key}.json"), FileKind::Entry),
        (format!("{key}.json.1-2-3-4.tmp"), FileKind::Temp),
        (format!("{key}.json.tmp"), FileKind::Other),
        (format!("{key}.jsonx"), FileKind::Other),
        (format!("{}.json", key.to_uppercase()), FileKind::Other),
        (format!("{}.json", &key[1..]), FileKind::Other),
        ("é".repeat(40), FileKind::Other),
    ];
    for (name, kind) in cases {
        assert_eq!(classify(&name), kind, "{name}");
    }
}

#[test]
fn concurrent_runs_sharing_a_directory_never_corrupt_it() {
    let dir = TestDir::new("concurrent");
    let codes = [
        "let xs = [1, 2, 3];",
        "let total = xs.reduce(|sum, x| sum + x, 0);",
        r#"let label = `total ${total}`; print(label); label"#,
        "let m = #{total: total, xs: xs};",
    ];
    let fixture = Fixture::new(&codes, dir.path());
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let fixture = &fixture;
            let dir = dir.path();
            scope.spawn(move || {
                for round in 0..15 {
                    let (results, globals) = fixture.run();
                    assert!(
                        results.iter().all(RunResult::is_ok),
                        "thread {thread} round {round}"
                    );
                    assert_eq!(results[2].stdout, "total 6\n");
                    assert_eq!(int(&globals, "total"), Some(6));
                    if round % 5 == 4 {
                        // Clearing while others read and write is a miss for them, never an error.
                        cache_clear(dir).unwrap();
                    }
                }
            });
        }
    });
    // Separate lifecycles over the same directory behave like separate processes.
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let dir = dir.path();
            scope.spawn(move || {
                let own = Fixture::new(&codes, dir);
                for _ in 0..10 {
                    assert!(own.run().0.iter().all(RunResult::is_ok));
                }
            });
        }
    });
    assert_entries_decode(dir.path());
    let info = cache_info(dir.path()).unwrap();
    assert_eq!((info.entries, info.temp_files), (4, 0));
}

#[test]
fn under_strict_a_hit_restores_defs_and_keys_on_isolated_inputs() {
    let dir = TestDir::new("strict");
    let notebook = notebook(&[
        "let arr = [1, 2, 3];",
        "arr.push(4); let n = arr.len();",
        "arr.len()",
    ]);
    let cache: Arc<dyn Lifecycle> =
        Arc::new(CachedLifecycle::new(dir.path().to_owned(), &notebook).unwrap());
    let strict: Arc<dyn Lifecycle> = Arc::new(StrictLifecycle::new(&notebook));
    let executor = CountingExecutor::new();
    for round in 0..2 {
        let mut globals = Globals::new();
        let results = run_all(
            &notebook,
            executor.clone(),
            vec![strict.clone(), cache.clone()],
            &mut globals,
        );
        assert!(results.iter().all(|result| result.cached == (round == 1)));
        assert_eq!(results[2].output.as_int(), Ok(3));
        assert_eq!(int(&globals, "n"), Some(4));
        assert!(!globals.is_restricted());
    }
    assert_eq!(executor.runs(), 3);
}

#[test]
fn a_cell_from_another_notebook_runs_live() {
    let dir = TestDir::new("foreign");
    let small = Fixture::new(&["let a = 1;"], dir.path());
    let other = notebook(&["let a = 1;", "let b = 2;"]);
    let evaluator = Evaluator::new(small.executor.clone(), vec![small.cache.clone()]);
    let result = evaluator.evaluate(&other.cells()[1], &mut Globals::new(), &CancelToken::new());
    assert!(result.is_ok() && !result.cached);
    assert_eq!(cache_info(dir.path()).unwrap().entries, 0);
}

#[test]
fn creating_the_cache_in_an_unusable_place_fails() {
    let dir = TestDir::new("blocked");
    fs::create_dir_all(dir.path()).unwrap();
    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let error = CachedLifecycle::new(file.join("cache"), &notebook(&["1"]))
        .err()
        .unwrap();
    assert!(matches!(error, CacheError::CreateDir { .. }), "{error:#}");
    assert!(matches!(cache_info(&file), Err(CacheError::ReadDir { .. })));
}

#[test]
fn a_restored_function_pointer_still_calls_its_function() {
    let dir = TestDir::new("fnptr");
    let run = |call: &str| {
        let fixture = Fixture::new(
            &["fn times(x) { x * 3 }", "let g = times;", call],
            dir.path(),
        );
        let (results, _) = fixture.run();
        (cached(&results), results[2].output.as_int())
    };
    assert_eq!(run("g.call(2)"), (vec![false, false, false], Ok(6)));
    assert_eq!(
        run("g.call(5)"),
        (vec![true, true, false], Ok(15)),
        "`g` came from the cache"
    );
}

// See: issue 12, point 10: a cell whose dependencies the code does not show
// is never a stale hit.
#[test]
fn issue_12_calls_the_code_cannot_show_are_never_stale() {
    let dir = TestDir::new("dynamic-calls");
    let run = |double: &str, last: &str| {
        let fixture = Fixture::new(
            &[
                double,
                "let name = \"dou\" + \"ble\";",
                "let p = Fn(\"double\");",
                last,
            ],
            dir.path(),
        );
        let (results, globals) = fixture.run();
        (cached(&results), int(&globals, "r"))
    };
    // Through a computed name: never cached.
    let computed = "let r = Fn(name).call(5);";
    assert_eq!(run("fn double(x) { x * 2 }", computed).1, Some(10));
    assert_eq!(
        run("fn double(x) { x * 2 }", computed),
        (vec![true, true, true, false], Some(10))
    );
    assert_eq!(run("fn double(x) { x * 3 }", computed).1, Some(15));
    // Through a function pointer among the inputs: its function's code is
    // part of the key.
    let pointer = "let r = p.call(5);";
    assert_eq!(run("fn double(x) { x * 2 }", pointer).1, Some(10));
    assert!(run("fn double(x) { x * 2 }", pointer).0[3]);
    assert_eq!(
        run("fn double(x) { x * 4 }", pointer),
        (vec![false, true, false, false], Some(20)),
        "`Fn(\"double\")` reads `double`, and the pointer's reader follows it"
    );
    // A function that hides what it calls makes its callers uncacheable.
    let hidden = "fn double(x) { call(Fn(\"tri\" + \"ple\"), x) } fn triple(x) { x * 3 }";
    assert_eq!(run(hidden, "let r = double(5);").1, Some(15));
    assert!(!run(hidden, "let r = double(5);").0[3]);
}

// See: issue 12, point 4: caching a medium value streams it, in both
// directions, and gives back the same value.
#[test]
fn issue_12_a_medium_value_round_trips_through_the_cache() {
    let dir = TestDir::new("medium");
    let codes = [
        "let xs = []; for i in 0..50000 { xs.push(if i % 3 == 0 { i } else { `s${i}` }); }",
        "let n = xs.len() + xs[49998];",
    ];
    let fixture = Fixture::new(&codes, dir.path());
    let (first, globals) = fixture.run();
    assert_eq!(cached(&first), [false, false]);
    assert_eq!(int(&globals, "n"), Some(50000 + 49998));
    let (second, warm) = Fixture::new(&codes, dir.path()).run();
    assert_eq!(cached(&second), [true, true]);
    assert_eq!(int(&warm, "n"), Some(50000 + 49998));
    let xs = warm
        .get("xs")
        .unwrap()
        .read_lock::<rhai::Array>()
        .unwrap()
        .clone();
    assert_eq!(xs.len(), 50000);
    assert_eq!(xs[5].clone().into_string().unwrap(), "s5");
}

/// What each cell of one run cached, and its output or error message.
type BoxRun = (Vec<bool>, Vec<String>);

/// Runs the counter cells `cells` twice through caches on `dir` (a fresh
/// lifecycle and fresh globals each time, as two processes would), with the
/// owner's decoder when `decoder`; returns what each run cached and output,
/// the last run's globals, and how many bodies ran in all.
fn run_boxes_twice(
    cells: &[(&str, &[&str], &[&str])],
    dir: &Path,
    decoder: bool,
) -> (Vec<BoxRun>, Globals, usize) {
    let notebook = crate::testutil::Boxes::notebook(cells);
    let executor = Arc::new(crate::testutil::Boxes::default());
    let mut runs = Vec::new();
    let mut globals = Globals::new();
    for _ in 0..2 {
        let mut cache = CachedLifecycle::new(dir.to_owned(), &notebook).unwrap();
        if decoder {
            cache = cache.with_foreign_decoder(crate::testutil::Counter::decoder());
        }
        globals = Globals::new();
        let results = run_all(
            &notebook,
            executor.clone(),
            vec![Arc::new(cache)],
            &mut globals,
        );
        let outputs = results
            .iter()
            .map(|result| match &result.error {
                Some(error) => error.message.clone(),
                None => format!("{:?}", result.output),
            })
            .collect();
        runs.push((cached(&results), outputs));
    }
    (runs, globals, executor.runs())
}

#[test]
fn plugin_owned_values_key_by_fingerprint_and_come_back_through_their_owner() {
    let dir = TestDir::new("foreign");
    let cells: [(&str, &[&str], &[&str]); 2] = [("new x 41", &["x"], &[]), ("get x", &[], &["x"])];
    let (runs, globals, bodies) = run_boxes_twice(&cells, dir.path(), true);
    assert_eq!(
        runs[0],
        (vec![false, false], vec!["()".into(), "41".into()])
    );
    assert_eq!(runs[1], (vec![true, true], vec!["()".into(), "41".into()]));
    assert_eq!(bodies, 2, "the second run ran no body");
    assert_eq!(
        crate::testutil::Counter::value(globals.get("x").unwrap()),
        Some(41),
        "the definition came back as its owner's value"
    );
    let entry = entries(dir.path())
        .into_iter()
        .map(|path| fs::read_to_string(path).unwrap())
        .find(|text| text.contains("\"x\""))
        .unwrap();
    assert!(
        entry.contains(
            r#"{"foreign":{"owner":"boxes","type":"Counter","data":"2900000000000000"}}"#
        ),
        "{entry}"
    );

    // A changed value upstream changes the key of its readers.
    let changed: [(&str, &[&str], &[&str]); 2] = [("new x 7", &["x"], &[]), ("get x", &[], &["x"])];
    let (runs, _, _) = run_boxes_twice(&changed, dir.path(), true);
    assert_eq!(runs[0].0, [false, false]);
    assert_eq!(runs[0].1[1], "7");
}

#[test]
fn plugin_owned_values_without_an_encoding_run_live() {
    let dir = TestDir::new("foreign-live");
    let cells: [(&str, &[&str], &[&str]); 3] = [
        ("fixed x 1", &["x"], &[]),
        ("get x", &[], &["x"]),
        ("new y 2", &["y"], &[]),
    ];
    let (runs, _, bodies) = run_boxes_twice(&cells, dir.path(), true);
    assert_eq!(
        runs[1].0,
        [false, false, true],
        "only the storable cell hits"
    );
    assert_eq!(runs[1].1[1], "1");
    assert_eq!(bodies, 5);
}

#[test]
fn an_entry_with_plugin_owned_values_and_no_decoder_is_a_miss() {
    let dir = TestDir::new("foreign-no-decoder");
    let cells: [(&str, &[&str], &[&str]); 1] = [("new x 3", &["x"], &[])];
    let (runs, globals, bodies) = run_boxes_twice(&cells, dir.path(), false);
    assert_eq!(runs[1].0, [false], "the entry cannot be read back");
    assert_eq!(bodies, 2);
    assert_eq!(
        crate::testutil::Counter::value(globals.get("x").unwrap()),
        Some(3)
    );
}

#[test]
fn a_hit_restores_the_rich_display() {
    let dir = TestDir::new("display");
    let notebook = notebook(&["1 + 1"]);
    let cache = CachedLifecycle::new(dir.path().to_owned(), &notebook).unwrap();
    let cell = &notebook.cells()[0];
    let mut globals = Globals::new();
    assert!(matches!(
        cache.setup(cell, &mut globals),
        Ok(Setup::Continue)
    ));
    let mut result = RunResult::ok(Dynamic::from_int(2));
    result.display = Some(Display {
        mime: "text/html".to_owned(),
        data: "<b>2</b>".to_owned(),
    });
    cache.teardown(cell, &mut globals, &result).unwrap();
    match cache.setup(cell, &mut globals) {
        Ok(Setup::Skip(hit)) => {
            assert!(hit.cached);
            assert_eq!(hit.display, result.display);
            assert_eq!(hit.output.as_int(), Ok(2));
        }
        other => panic!("expected a hit, got {other:?}"),
    }
}
