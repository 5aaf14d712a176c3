//! `cellrun worker` through the real binary: requests written to its input,
//! answers read from its output, signals sent to the process.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

use crate::util::{cellrun_command, wait_with_deadline, Dir};

/// How long a test waits for one line before it fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running worker.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
    _dir: Dir,
}

impl Worker {
    /// Starts `cellrun worker` with `args` and reads its ready line.
    fn start(args: &[&str]) -> Worker {
        let dir = Dir::new("worker");
        let mut command = cellrun_command(dir.path());
        command.arg("worker").args(args);
        let mut worker = Worker::spawn(&mut command, dir);
        let ready = worker.read();
        assert_eq!(ready["protocol"], 1);
        assert_eq!(ready["ready"], true);
        worker
    }

    /// Starts `command` (which starts a worker) with piped streams and
    /// debug logs on its standard error.
    fn spawn(command: &mut std::process::Command, dir: Dir) -> Worker {
        let mut child = command
            .env("CELLRUN_LOG", "cellrun=debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Worker {
            lines: reader(child.stdout.take().unwrap()),
            stderr: reader(child.stderr.take().unwrap()),
            stdin: child.stdin.take(),
            child,
            _dir: dir,
        }
    }

    /// Writes `line` as one line of input.
    fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("input open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next answer line.
    fn read(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .expect("the worker answers");
        serde_json::from_str(&line).unwrap_or_else(|error| panic!("{line}: {error}"))
    }

    /// Sends `request` and returns its answer.
    fn ask(&mut self, request: &Value) -> Value {
        self.send_line(&request.to_string());
        let answer = self.read();
        assert_eq!(answer["protocol"], 1);
        assert_eq!(answer["id"], request["id"]);
        answer
    }

    /// Waits until the worker logs `text` on its standard error.
    fn wait_for_log(&self, text: &str) {
        loop {
            let line = self.stderr.recv_timeout(PATIENCE).expect("the worker logs");
            if line.contains(text) {
                return;
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Closes the worker's input and returns its exit code.
    fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        wait_with_deadline(&mut self.child, PATIENCE)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `stream`, read on a thread of their own.
fn reader(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// A request to run `code` as cell `name` starting at notebook line `first_line`.
fn request(id: u64, name: &str, code: &str, first_line: u32) -> Value {
    json!({
        "protocol": 1,
        "id": id,
        "cell": {"name": name, "language": "rhai", "code": code, "first_line": first_line},
    })
}

#[test]
fn a_cell_calls_functions_other_cells_define_without_running_their_statements() {
    let mut worker = Worker::start(&[]);
    let mut ask = request(1, "total", "print(\"total ran\");\ntwice(k)", 20);
    ask["functions"] = json!([
        {"name": "scale", "cell": "helpers", "first_line": 3,
         "code": "print(\"helpers ran\");\nfn scale(x) { x * k }"},
        {"name": "twice", "cell": "more", "first_line": 9,
         "code": "let unused = 1;\nfn twice(x) { scale(scale(x)) }"},
    ]);
    ask["inputs"] = json!({"k": {"int": 3}});
    let answer = worker.ask(&ask);
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["output"], json!({"int": 27}));
    assert_eq!(answer["output_json"], 27);
    assert_eq!(
        answer["stdout"], "total ran\n",
        "defining cells' statements never run"
    );
    assert_eq!(answer["defs"], json!({}));
    assert_eq!(worker.finish(), 0);
}

#[test]
fn a_closure_made_in_one_request_is_called_in_the_next() {
    let mut worker = Worker::start(&[]);
    let made = worker.ask(&request(
        1,
        "make",
        "let k = [1, 2, 3];\nlet add = |x| x * 10 + k.len();\nconst LIMIT = 2.5;",
        4,
    ));
    assert_eq!(made["status"], "ok", "{made}");
    let add = &made["defs"]["add"];
    assert!(add["closure"]["name"]
        .as_str()
        .unwrap()
        .starts_with("anon$"));
    assert_eq!(
        made["defs"]["LIMIT"],
        json!({"const": {"float": "4004000000000000"}})
    );
    let mut call = request(2, "use", "add.call(4) + LIMIT.to_int()", 9);
    call["inputs"] = json!({"add": add, "LIMIT": made["defs"]["LIMIT"]});
    let called = worker.ask(&call);
    assert_eq!(called["status"], "ok", "{called}");
    assert_eq!(called["output"], json!({"int": 45}));
    // The closure passed through a cell comes back with its source.
    let mut again = request(3, "pass", "let add2 = add;", 12);
    again["inputs"] = json!({"add": add});
    let passed = worker.ask(&again);
    assert_eq!(passed["defs"]["add2"], *add);
}

#[test]
fn inputs_changed_in_place_come_back_and_the_others_do_not() {
    let mut worker = Worker::start(&[]);
    let mut ask = request(
        1,
        "mutate",
        "xs.push(3);\nbook.b = 2;\nlet copy = n;\ncopy += 1;\nlabel.len()",
        5,
    );
    ask["inputs"] = json!({
        "xs": {"array": [{"int": 1}, {"int": 2}]},
        "book": {"map": {"a": {"int": 1}}},
        "n": {"int": 7},
        "label": {"str": "same"},
        "blob": {"blob": "00ff"},
    });
    let answer = worker.ask(&ask);
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(
        answer["changed"],
        json!({
            "xs": {"array": [{"int": 1}, {"int": 2}, {"int": 3}]},
            "book": {"map": {"a": {"int": 1}, "b": {"int": 2}}},
        }),
        "only what the cell changed in place, not what it only read"
    );
    assert_eq!(answer["defs"], json!({"copy": {"int": 8}}));
    assert_eq!(worker.finish(), 0);
}

#[test]
fn errors_carry_notebook_lines_also_inside_other_cells_functions() {
    let mut worker = Worker::start(&[]);
    let missing = worker.ask(&request(1, "a", "let a = 1;\nlet b = a + nope;", 10));
    assert_eq!(missing["status"], "error");
    let error = &missing["error"];
    assert_eq!(
        (&error["kind"], &error["line"], &error["missing_name"]),
        (&json!("runtime"), &json!(11), &json!("nope")),
        "{missing}"
    );
    assert_eq!(
        missing["defs"],
        json!({"a": {"int": 1}}),
        "definitions before the error stay"
    );

    let mut thrown = request(2, "b", "\nboom()", 30);
    thrown["functions"] = json!([
        {"name": "boom", "code": "// helpers\n\nfn boom() {\n    throw \"bad\";\n}", "first_line": 20},
    ]);
    let thrown = worker.ask(&thrown);
    assert_eq!(thrown["error"]["line"], 23, "{thrown}");
    assert!(thrown["error"]["message"]
        .as_str()
        .unwrap()
        .contains("in fn `boom`"));

    let syntax = worker.ask(&request(3, "c", "let x = 1;\nlet y = ;", 7));
    assert_eq!(syntax["error"]["kind"], "syntax");
    assert_eq!(syntax["error"]["line"], 8);

    let stamp = worker.ask(&request(4, "d", "let ok = 1;\nlet t = timestamp();", 40));
    assert_eq!(stamp["status"], "error");
    assert_eq!(stamp["defs"], json!({"ok": {"int": 1}}));
    assert!(stamp["no_wire"]["t"]
        .as_str()
        .unwrap()
        .starts_with("a value of type `timestamp` has no wire form"));
    assert!(stamp["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("definition `t` cannot leave the worker"));
}

#[test]
fn a_cell_past_its_timeout_stops_and_the_worker_goes_on() {
    let mut worker = Worker::start(&[]);
    let mut slow = request(1, "slow", "let n = 0;\nloop {\n    n += 1;\n}", 2);
    slow["timeout_ms"] = json!(300);
    let answer = worker.ask(&slow);
    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(answer["error"]["kind"], "timeout");
    let line = answer["error"]["line"].as_u64().unwrap();
    assert!(
        (2..=5).contains(&line),
        "a notebook line of the cell: {answer}"
    );
    let mut past = request(2, "past", "loop {}", 2);
    past["deadline_unix_ms"] = json!(1000);
    assert_eq!(worker.ask(&past)["error"]["kind"], "timeout");
    let next = worker.ask(&request(3, "next", "1 + 1", 5));
    assert_eq!(next["output"], json!({"int": 2}));
    assert_eq!(worker.finish(), 0);
}

#[test]
fn a_signal_interrupts_the_running_cell_and_a_signal_when_idle_ends_the_worker() {
    for signal in ["INT", "TERM"] {
        let mut worker = Worker::start(&[]);
        worker.send_line(&request(1, "busy", "loop {}", 3).to_string());
        worker.wait_for_log("worker: cell started");
        worker.signal(signal);
        let answer = worker.read();
        assert_eq!(answer["status"], "interrupted", "SIG{signal}: {answer}");
        assert_eq!(answer["error"]["kind"], "interrupted");
        let next = worker.ask(&request(2, "after", "40 + 2", 1));
        assert_eq!(next["output"], json!({"int": 42}), "the worker goes on");
        worker.signal(signal);
        let code = wait_with_deadline(&mut worker.child, PATIENCE);
        assert_eq!(code, 130, "SIG{signal} while idle");
    }
}

#[test]
fn malformed_requests_get_an_error_line_and_the_worker_goes_on() {
    let mut worker = Worker::start(&[]);
    let cases: [(&str, &str); 7] = [
        ("not json", "not a JSON line"),
        ("{\"cell\":{}}", "a request needs `\"protocol\":1`"),
        ("{\"protocol\":2,\"id\":5}", "protocol 2 is not spoken here"),
        ("{\"protocol\":1,\"id\":\"x\"}", "a request needs a `cell` object"),
        (
            "{\"protocol\":1,\"cell\":{\"name\":\"a\",\"code\":\"1\"}}",
            "the cell needs a positive `first_line`",
        ),
        (
            "{\"protocol\":1,\"cell\":{\"name\":\"a\",\"code\":\"1\",\"first_line\":1,\"language\":\"cobol\"}}",
            "the worker runs rhai and python cells, not cobol cells",
        ),
        (
            "{\"protocol\":1,\"cell\":{\"name\":\"a\",\"code\":\"x\",\"first_line\":1},\"inputs\":{\"x\":{\"int\":\"1\"}}}",
            "input `x`: not a wire form: bad int",
        ),
    ];
    for (line, message) in cases {
        worker.send_line(line);
        let answer = worker.read();
        assert_eq!(answer["status"], "error", "{line}");
        assert_eq!(answer["error"]["kind"], "protocol", "{line}");
        let got = answer["error"]["message"].as_str().unwrap();
        assert!(got.starts_with(message), "{line}: {got}");
    }
    worker.send_line("");
    let fine = worker.ask(&request(9, "fine", "\"still here\"", 1));
    assert_eq!(fine["output"], json!({"str": "still here"}));
    assert_eq!(worker.finish(), 0, "end of input ends the worker");
}

#[test]
fn globals_are_kept_between_requests_only_when_asked() {
    let mut worker = Worker::start(&[]);
    let mut first = request(1, "a", "let x = base + 1;", 1);
    first["inputs"] = json!({"base": {"int": 1}});
    first["keep"] = json!(true);
    assert_eq!(worker.ask(&first)["status"], "ok");
    let mut bad = request(7, "bad", "x", 2);
    bad["inputs"] = json!({"y": {"nope": 1}});
    assert_eq!(worker.ask(&bad)["error"]["kind"], "protocol");
    let second = worker.ask(&request(2, "b", "x + base", 3));
    assert_eq!(
        second["output"],
        json!({"int": 3}),
        "kept across a request that could not be read: {second}"
    );
    let third = worker.ask(&request(3, "c", "x", 5));
    assert_eq!(third["error"]["missing_name"], "x", "{third}");
}

#[test]
fn a_cell_over_the_memory_limit_is_stopped_and_loses_its_definitions() {
    let mut worker = Worker::start(&["--max-memory", "64"]);
    let answer = worker.ask(&request(
        1,
        "hog",
        "let xs = [];\nloop { xs.push(blob(1000000)); }",
        2,
    ));
    assert_eq!(answer["status"], "error", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory limit"),
        "{answer}"
    );
    assert_eq!(answer["defs"], json!({}));
    let next = worker.ask(&request(2, "small", "[1, 2].len()", 5));
    assert_eq!(next["output"], json!({"int": 2}));
}

/// Whether process `pid` still exists (a zombie counts as gone).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        stat.rsplit(')')
            .next()
            .map(str::trim_start)
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

#[test]
fn a_worker_whose_parent_dies_ends_even_in_the_middle_of_a_cell() {
    // A shell starts the worker and is then killed; the worker's input stays
    // open (this test holds it), so only the parent's death can end it.
    let mut shell = std::process::Command::new("sh");
    shell.arg("-c").arg(format!(
        "exec 3<&0; \"{}\" worker <&3 3<&- & echo $!; wait",
        env!("CARGO_BIN_EXE_cellrun")
    ));
    let dir = Dir::new("worker-orphan");
    shell.current_dir(dir.path());
    let mut worker = Worker::spawn(&mut shell, dir);
    let pid = worker
        .lines
        .recv_timeout(PATIENCE)
        .expect("the shell names the worker");
    assert_eq!(worker.read()["ready"], true);
    worker.send_line(&request(1, "busy", "loop {}", 1).to_string());
    worker.wait_for_log("worker: cell started");
    assert!(alive(&pid));
    worker.child.kill().unwrap();
    worker.child.wait().unwrap();
    let start = std::time::Instant::now();
    while alive(&pid) {
        assert!(
            start.elapsed() < PATIENCE,
            "the orphaned worker {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn values_of_other_plugins_pass_through_a_worker_unchanged() {
    let mut worker = Worker::start(&[]);
    let frame =
        json!({"foreign": {"owner": "python", "type": "pandas.DataFrame", "data": "80049501"}});
    let mut ask = request(1, "pass", "let copy = frame;\nframe", 1);
    ask["inputs"] = json!({"frame": frame});
    let answer = worker.ask(&ask);
    assert_eq!(answer["status"], "ok", "{answer}");
    assert_eq!(answer["defs"]["copy"], frame);
    assert_eq!(answer["output"], frame);
    assert_eq!(answer["output_json"], "<pandas.DataFrame of python>");
}

/// A worker for Python cells: the python plugin built beside `cellrun`,
/// marimo's environment active; `None` when it is missing and
/// `CELLRUN_SKIP_MARIMO` asks to skip.
fn python_worker() -> Option<Worker> {
    let python = crate::python::marimo_python()?;
    let venv = python.parent().and_then(std::path::Path::parent).unwrap();
    crate::python_run::plugin_dir();
    let dir = Dir::new("worker-python");
    let mut command = cellrun_command(dir.path());
    command.arg("worker").env("VIRTUAL_ENV", venv);
    let mut worker = Worker::spawn(&mut command, dir);
    assert_eq!(worker.read()["ready"], true);
    Some(worker)
}

fn python_request(id: u64, name: &str, code: &str, first_line: u32, inputs: Value) -> Value {
    json!({
        "protocol": 1,
        "id": id,
        "cell": {"name": name, "language": "python", "code": code, "first_line": first_line},
        "inputs": inputs,
    })
}

#[test]
fn python_cells_send_pickles_back_and_functions_travel_by_value() {
    let Some(mut worker) = python_worker() else {
        return;
    };
    let code = "xs = [1, 2]\nk = 10\ndef f(v):\n    return v * k\nprint('made')\nxs";
    let first = worker.ask(&python_request(1, "a", code, 5, json!({})));
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["output_json"], json!([1, 2]));
    assert_eq!(first["stdout"], "made\n");
    let defs = &first["defs"];
    assert_eq!(defs["xs"]["foreign"]["owner"], "python", "{first}");
    assert_eq!(defs["xs"]["foreign"]["type"], "list");
    assert_eq!(defs["f"]["foreign"]["type"], "function", "{first}");
    // The worker keeps nothing: the function arrives as an input, by value,
    // with the global it reads; the list is changed in place.
    let inputs = json!({"f": defs["f"].clone(), "xs": defs["xs"].clone()});
    let second = worker.ask(&python_request(
        2,
        "b",
        "xs.append(3)\ny = f(len(xs))\ny",
        20,
        inputs,
    ));
    assert_eq!(second["status"], "ok", "{second}");
    assert_eq!(second["output_json"], 30);
    assert_eq!(second["defs"]["y"]["foreign"]["type"], "int");
    assert_eq!(
        second["changed"]["xs"]["foreign"]["type"], "list",
        "{second}"
    );
    let third = worker.ask(&python_request(
        3,
        "c",
        "len(xs)",
        30,
        json!({"xs": second["changed"]["xs"].clone()}),
    ));
    assert_eq!(third["output_json"], 3, "the change came back: {third}");
    let failed = worker.ask(&python_request(4, "d", "x = 1\nx / 0", 40, json!({})));
    assert_eq!(failed["status"], "error");
    assert_eq!(
        failed["error"]["message"],
        "ZeroDivisionError: division by zero"
    );
    assert_eq!(failed["error"]["line"], 41);
    let unparsable = worker.ask(&python_request(5, "e", "x = (1", 50, json!({})));
    assert_eq!(unparsable["error"]["kind"], "syntax", "{unparsable}");
    assert_eq!(unparsable["error"]["line"], 50);
    assert_eq!(worker.finish(), 0);
}
