//! Tests against the real embedded interpreter (one per test process).

use std::path::Path;

use pyo3::prelude::*;

use crate::{choose_python, FailureKind, Interpreter};

/// The interpreter, held by one test at a time: an interrupt stops every
/// running cell and captures are process-wide, as with one cell at a time
/// in a run.
fn interpreter() -> (std::sync::MutexGuard<'static, ()>, &'static Interpreter) {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let python = choose_python(None).expect("a python3 on PATH");
    (
        guard,
        Interpreter::get(&python).expect("the interpreter starts"),
    )
}

const NB: &str = "/notebooks/nb.py";

#[test]
fn cells_share_one_globals_dictionary_and_return_the_last_expression() {
    let (_one, interpreter) = interpreter();
    let first = interpreter.run("shared_list = [1, 2]\n", NB, 10, None);
    assert!(first.failure.is_none() && first.output.is_none());
    let second = interpreter.run("shared_list.append(3)\nlen(shared_list)\n", NB, 20, None);
    let value: usize = Python::attach(|py| second.output.unwrap().extract(py).unwrap());
    assert_eq!(value, 3);
    let quiet = interpreter.run("len(shared_list);\n", NB, 30, None);
    assert!(quiet.output.is_none(), "a trailing ; suppresses the output");
}

#[test]
fn prints_are_captured_per_cell() {
    let run = interpreter().1.run(
        "import sys\nprint('out')\nsys.stderr.write('err\\n')\n",
        NB,
        1,
        None,
    );
    assert_eq!(run.stdout, "out\nerr\n");
    assert!(interpreter()
        .1
        .run("x_quiet = 1\n", NB, 1, None)
        .stdout
        .is_empty());
}

#[test]
fn exceptions_name_the_error_and_the_notebook_line() {
    let run = interpreter()
        .1
        .run("a_val = 1\n\nb_val = a_val / 0\n", NB, 40, None);
    let failure = run.failure.expect("a failure");
    assert_eq!(failure.kind, FailureKind::Runtime);
    assert_eq!(failure.message, "ZeroDivisionError: division by zero");
    assert_eq!(failure.line, Some(42));
    assert!(
        failure.traceback.contains("line 42"),
        "{}",
        failure.traceback
    );
    assert!(
        !failure.traceback.contains("cellrun"),
        "{}",
        failure.traceback
    );
}

#[test]
fn top_level_await_runs() {
    let run = interpreter().1.run(
        "import asyncio\nawait asyncio.sleep(0)\n41 + 1\n",
        NB,
        1,
        None,
    );
    assert!(run.failure.is_none(), "{:?}", run.failure);
    let value: i64 = Python::attach(|py| run.output.unwrap().extract(py).unwrap());
    assert_eq!(value, 42);
}

#[test]
fn c_extensions_import() {
    let run = interpreter().1.run(
        "import math, json, _contextvars\nmath.sqrt(16.0)\n",
        NB,
        1,
        None,
    );
    assert!(run.failure.is_none(), "{:?}", run.failure);
}

#[test]
fn an_interrupt_stops_a_running_loop() {
    let (_one, interpreter) = interpreter();
    let interrupter = interpreter.interrupter();
    // The cell runs on this thread.
    // SAFETY: pthread_self has no preconditions.
    let this_thread = unsafe { libc::pthread_self() } as u64;
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = started.clone();
    let stopper = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // The cell sets the flag from inside its loop; interrupting until
        // the run returns covers the moment before the loop is entered.
        interrupter.interrupt_thread(this_thread);
    });
    let _ = Path::new(NB);
    let code = "import builtins\nwhile True:\n    builtins._cellrun_started()\n";
    Python::attach(|py| {
        let started = started.clone();
        let callback =
            pyo3::types::PyCFunction::new_closure(py, None, None, move |_args, _kwargs| {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
            })
            .unwrap();
        py.import("builtins")
            .unwrap()
            .setattr("_cellrun_started", callback)
            .unwrap();
    });
    let run = interpreter.run(code, NB, 1, None);
    stopper.join().unwrap();
    let failure = run.failure.expect("interrupted");
    assert_eq!(failure.kind, FailureKind::Interrupted);
    assert!(
        failure.message.contains("KeyboardInterrupt"),
        "{}",
        failure.message
    );
    let after = interpreter.run("1 + 1\n", NB, 1, None);
    assert!(
        after.failure.is_none(),
        "an interrupt never leaks into the next cell"
    );
}

#[test]
fn values_describe_themselves_copy_and_pickle() {
    let (_one, interpreter) = interpreter();
    let run = interpreter.run(
        "class Html:\n    def _repr_html_(self):\n        return '<b>hi</b>'\n\ndescribed = [{'a': (1, 2.5, None, True)}, 'x']\nrich = Html()\n",
        NB,
        1, None
    );
    assert!(run.failure.is_none(), "{:?}", run.failure);
    let described = interpreter.global("described").expect("bound");
    let description = interpreter.describe(&described);
    assert_eq!(description.type_name, "list");
    assert_eq!(
        description.json.as_deref(),
        Some(r#"[{"a": [1, 2.5, null, true]}, "x"]"#)
    );
    assert_eq!(description.display, "[{'a': (1, 2.5, None, True)}, 'x']");
    let rich = interpreter.describe(&interpreter.global("rich").unwrap());
    assert_eq!(
        rich.rich,
        Some(("text/html".to_owned(), "<b>hi</b>".to_owned()))
    );
    assert_eq!(
        (rich.type_name.as_str(), rich.json),
        ("__main__.Html", None)
    );

    let copy = interpreter.deep_copy(&described).expect("copyable");
    Python::attach(|py| assert!(!copy.bind(py).is(described.bind(py))));
    let encoded = interpreter.encode(&described).expect("picklable");
    let decoded = interpreter.decode(&encoded).unwrap();
    assert_eq!(interpreter.describe(&decoded).json, description.json);
    assert_eq!(
        interpreter.fingerprint(&decoded),
        interpreter.fingerprint(&described)
    );

    interpreter.run(
        "unpicklable = lambda: 1\nimport json as json_module\n",
        NB,
        1,
        None,
    );
    assert_eq!(
        interpreter.encode(&interpreter.global("unpicklable").unwrap()),
        None
    );
    let module = interpreter.global("json_module").unwrap();
    let stored = interpreter
        .encode(&module)
        .expect("a module is stored by its name");
    Python::attach(|py| {
        let back = interpreter.decode(&stored).unwrap();
        assert!(back.bind(py).is(module.bind(py)), "and imported again");
    });
    assert!(interpreter.fingerprint(&module).is_some());

    // A function the notebook defines is not stored (only its cell defines
    // it on a later run), and its fingerprint covers its code and the
    // globals it reads, which pickling by name would not.
    interpreter.run(
        "offset = 1
def shift(v):
    return v + offset
",
        NB,
        1,
        None,
    );
    let shift = interpreter.global("shift").unwrap();
    assert_eq!(interpreter.encode(&shift), None);
    let before = interpreter.fingerprint(&shift).expect("a fingerprint");
    interpreter.run(
        "offset = 2
",
        NB,
        1,
        None,
    );
    assert_ne!(interpreter.fingerprint(&shift).unwrap(), before);
    interpreter.run(
        "def shift(v):
    return v - offset
",
        NB,
        1,
        None,
    );
    let changed = interpreter.global("shift").unwrap();
    assert_ne!(
        interpreter.fingerprint(&changed),
        interpreter.fingerprint(&shift),
        "another body, another fingerprint"
    );
    // Sets fingerprint by their items, whatever their order.
    interpreter.run(
        "s1 = {'a', 'b', 'c'}
s2 = {'c', 'b', 'a'}
",
        NB,
        1,
        None,
    );
    assert_eq!(
        interpreter.fingerprint(&interpreter.global("s1").unwrap()),
        interpreter.fingerprint(&interpreter.global("s2").unwrap())
    );
    Python::attach(|py| {
        let copy = interpreter.deep_copy(&module).unwrap();
        assert!(
            copy.bind(py).is(module.bind(py)),
            "modules are shared, not copied"
        );
    });
    interpreter.remove_global("unpicklable");
    assert!(interpreter.global("unpicklable").is_none());
}

/// Host globals kept in a map, as the runner's would be, and a stop flag
/// another thread may set.
#[derive(Default)]
struct MapHost(
    std::collections::HashMap<String, Py<PyAny>>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
);

impl crate::HostGlobals for MapHost {
    fn get(&self, name: &str) -> Option<Py<PyAny>> {
        Python::attach(|py| self.0.get(name).map(|value| value.clone_ref(py)))
    }
    fn set(&mut self, name: &str, value: Py<PyAny>) {
        self.0.insert(name.to_owned(), value);
    }
    fn watch_stop(&self, run: &mut dyn FnMut(&dyn crate::StopCheck)) {
        run(&|| self.1.load(std::sync::atomic::Ordering::SeqCst));
    }
}

#[test]
fn a_cell_reads_inputs_from_the_host_and_hands_back_its_definitions() {
    let (_one, interpreter) = interpreter();
    let mut host = MapHost::default();
    let producer = crate::CellCode {
        compiled: None,
        code: "host_in = 20\n_temp = 1\n",
        first_line: 1,
        refs: &[],
        defs: &["host_in"],
        private_defs: &["_temp"],
    };
    let run = crate::run_cell(interpreter, NB, &producer, &mut host);
    assert!(run.failure.is_none());
    assert!(host.0.contains_key("host_in"));
    assert!(
        interpreter.global("_temp").is_none(),
        "private names are unbound after the cell"
    );
    // The host's value wins over the dictionary's: a strict copy or a cache
    // restore reaches the code.
    let replaced = Python::attach(|py| 21_i64.into_pyobject(py).unwrap().into_any().unbind());
    host.0.insert("host_in".to_owned(), replaced);
    let consumer = crate::CellCode {
        compiled: None,
        code: "host_out = host_in * 2\nhost_out\n",
        first_line: 5,
        refs: &["host_in"],
        defs: &["host_out"],
        private_defs: &[],
    };
    let run = crate::run_cell(interpreter, NB, &consumer, &mut host);
    let value: i64 = Python::attach(|py| run.output.unwrap().extract(py).unwrap());
    assert_eq!(value, 42);
    assert!(host.0.contains_key("host_out"));
}

#[test]
fn a_stop_request_interrupts_a_sleeping_cell() {
    let (_one, interpreter) = interpreter();
    let mut host = MapHost(Default::default(), std::sync::Arc::new(true.into()));
    let cell = crate::CellCode {
        compiled: None,
        code: "import time\nfor _ in range(1000):\n    time.sleep(0.05)\n",
        first_line: 1,
        refs: &[],
        defs: &[],
        private_defs: &[],
    };
    let run = crate::run_cell(interpreter, NB, &cell, &mut host);
    assert_eq!(run.failure.expect("stopped").kind, FailureKind::Interrupted);
}

#[test]
fn a_stop_while_python_code_runs_interrupts_that_cell_and_not_the_next() {
    let (_one, interpreter) = interpreter();
    let mut host = MapHost::default();
    let spin = crate::CellCode {
        compiled: None,
        code: "spins = 0\nwhile True:\n    spins += 1\n",
        first_line: 1,
        refs: &[],
        defs: &["spins"],
        private_defs: &[],
    };
    let quick = crate::CellCode {
        compiled: None,
        code: "after_stop = sum(range(100_000))\n",
        first_line: 10,
        refs: &[],
        defs: &["after_stop"],
        private_defs: &[],
    };
    let stop = host.1.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let run = crate::run_cell(interpreter, NB, &spin, &mut host);
    stopper.join().unwrap();
    assert_eq!(run.failure.expect("stopped").kind, FailureKind::Interrupted);
    assert!(
        host.0.contains_key("spins"),
        "what ran before the stop is kept"
    );
    host.1.store(false, std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        let run = crate::run_cell(interpreter, NB, &quick, &mut host);
        assert!(run.failure.is_none(), "{:?}", run.failure);
    }
}

#[test]
fn a_virtual_environment_states_its_version_without_starting_python() {
    let dir = std::env::temp_dir().join(format!("cellrun-venv-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(
        dir.join("pyvenv.cfg"),
        "home = /usr/bin\nversion = 3.12.4\n",
    )
    .unwrap();
    assert_eq!(
        crate::interpreter::venv_version(&dir.join("bin/python")).as_deref(),
        Some("3.12")
    );
    assert_eq!(
        crate::interpreter::venv_version(Path::new("/usr/bin/python3")),
        None
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_cells_with_a_name_starting_with_an_underscore_are_parsed_for_private_names() {
    use crate::executor::may_define_private;
    assert!(!may_define_private("x_1 = x_0 + 1"));
    assert!(!may_define_private("c_12 = root + 12"));
    assert!(may_define_private("_scratch = 1"));
    assert!(may_define_private("y = f(_z)"));
    assert!(may_define_private("for _ in range(3):\n    pass"));
    assert!(may_define_private("print(__file__)"));
}

/// A marimo notebook of `cells` written to a folder of the system's
/// temporary directory named after `tag`: its path and its parsed cells.
fn notebook_file(tag: &str, cells: &[&str]) -> (std::path::PathBuf, python_notebook::PyNotebook) {
    let dir = std::env::temp_dir().join(format!("cellrun-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let notebook = dir.join("nb.py");
    let mut text = String::from("import marimo\n\napp = marimo.App()\n");
    for (index, code) in cells.iter().enumerate() {
        text.push_str(&format!("\n\n@app.cell\ndef cell_{index}():\n"));
        for line in code.lines() {
            text.push_str(&format!("    {line}\n"));
        }
        text.push_str("    return\n");
    }
    std::fs::write(&notebook, &text).unwrap();
    (notebook, python_notebook::parse_notebook(&text).unwrap())
}

#[test]
fn cells_compiled_ahead_run_as_cells_compiled_in_place() {
    let (_one, interpreter) = interpreter();
    let (notebook, parsed) = notebook_file(
        "ahead",
        &[
            "ahead_a = 20\n",
            "ahead_b = ahead_a + 1\nahead_b * 2\n",
            "import asyncio\nawait asyncio.sleep(0)\n'awaited'\n",
            "ahead_q = 1\nahead_q / 0\n",
            "ahead_w = 1 is 1\n",
        ],
    );
    let filename = notebook.display().to_string();
    let ahead = crate::ahead::Ahead::start(
        interpreter.python(),
        &notebook,
        &filename,
        crate::ahead::Precompile::Always.min_cells().unwrap(),
    );
    ahead.wait_done();
    let mut runs = Vec::new();
    for cell in &parsed.cells {
        let compiled = ahead.take(cell.first_line, &cell.code);
        let inline = interpreter.run(&cell.code, &filename, cell.first_line, None);
        let ahead_run =
            interpreter.run(&cell.code, &filename, cell.first_line, compiled.as_deref());
        runs.push((compiled.is_some(), inline, ahead_run));
    }
    let shown = |run: &crate::CellRun| {
        Python::attach(|py| {
            (
                run.output
                    .as_ref()
                    .map(|value| value.bind(py).repr().unwrap().to_string()),
                run.stdout.clone(),
                run.failure.as_ref().map(|failure| {
                    (
                        failure.message.clone(),
                        failure.line,
                        failure.traceback.clone(),
                    )
                }),
            )
        })
    };
    let used: Vec<bool> = runs.iter().map(|(used, _, _)| *used).collect();
    // The cell whose compile warns is compiled in place, to show the warning.
    assert_eq!(used, [true, true, true, true, false]);
    for (_, inline, ahead_run) in &runs {
        assert_eq!(shown(inline), shown(ahead_run));
    }
    let (output, _, _) = shown(&runs[1].2);
    assert_eq!(output.as_deref(), Some("42"));
    let (output, _, _) = shown(&runs[2].2);
    assert_eq!(output.as_deref(), Some("'awaited'"));
    let (_, _, failure) = shown(&runs[3].2);
    let (message, line, traceback) = failure.expect("a failure");
    assert_eq!(message, "ZeroDivisionError: division by zero");
    assert_eq!(line, Some(parsed.cells[3].first_line + 1));
    assert!(traceback.contains(&filename), "{traceback}");
    assert!(shown(&runs[4].1).1.contains("SyntaxWarning"));
    // A cell whose code changed since the file was read compiles in place.
    assert!(ahead
        .take(parsed.cells[0].first_line, "changed = 1\n")
        .is_none());
    std::fs::remove_dir_all(notebook.parent().unwrap()).unwrap();
}

#[test]
fn type_names_of_static_types_are_kept_and_those_of_classes_asked_each_time() {
    let (_one, interpreter) = interpreter();
    let run = interpreter.run(
        "import collections\nclass Renamed:\n    pass\n\nnamed_int = 3\nnamed_deque = collections.deque()\nnamed_obj = Renamed()\n",
        NB,
        1,
        None,
    );
    assert!(run.failure.is_none(), "{:?}", run.failure);
    let name = |global: &str| interpreter.type_name(&interpreter.global(global).expect("bound"));
    // Asked twice: the second answer comes from what the first kept.
    for _ in 0..2 {
        assert_eq!(name("named_int"), "int");
        assert_eq!(name("named_deque"), "collections.deque");
        assert_eq!(name("named_obj"), "__main__.Renamed");
    }
    // A class can be renamed; its instances then name the new name.
    let run = interpreter.run("Renamed.__qualname__ = 'Other'\n", NB, 20, None);
    assert!(run.failure.is_none(), "{:?}", run.failure);
    assert_eq!(name("named_obj"), "__main__.Other");
}

/// Sets the run's memory limit for one test, and lifts it again however
/// the test ends.
struct MemoryLimit;

impl MemoryLimit {
    fn set(bytes: usize) -> MemoryLimit {
        crate::memory::set_limit(bytes);
        MemoryLimit
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        crate::memory::set_limit(usize::MAX);
    }
}

#[test]
fn the_compile_helper_stays_within_the_run_s_memory_limit() {
    let (_one, interpreter) = interpreter();
    // Compiling a list display of 200,000 items takes CPython about 150 MB.
    let big = format!("limit_big = [{}]\n", vec!["0"; 200_000].join(", "));
    let (notebook, parsed) = notebook_file("ahead-limit", &["limit_small = 1\n", &big]);
    let filename = notebook.display().to_string();
    let compiled_ahead = || {
        let ahead = crate::ahead::Ahead::start(interpreter.python(), &notebook, &filename, 1);
        ahead.wait_done();
        parsed
            .cells
            .iter()
            .map(|cell| ahead.take(cell.first_line, &cell.code).is_some())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        compiled_ahead(),
        [true, true],
        "without a limit both compile"
    );
    let limited = MemoryLimit::set(64 << 20);
    assert_eq!(
        compiled_ahead(),
        [true, false],
        "under 64 MiB the big cell is left to compile in place"
    );
    drop(limited);
    std::fs::remove_dir_all(notebook.parent().unwrap()).unwrap();
}
