//! `cellrun watch`: scripted saves to a notebook, asserting from the
//! `--json` stream which cells re-ran, and the terminal screen under a real
//! terminal (`script`, from util-linux).
//!
//! Tests wait on the output stream for the event or text they expect, with
//! a generous deadline; none sleeps to let the watcher catch up.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

use crate::util::{clean_env, names, wait_with_deadline, Dir, Watching, DEADLINE};

/// `a` → `b` → `c`, and `d` alone.
const CHAIN: &str = "\
// %% a
let x = 1;
// %% b
let y = x + 1;
y
// %% c
let z = y * 10;
z
// %% d
let w = 5;
w
";

/// `CHAIN` with the code of cell `name` replaced by `code`.
fn chain_with(name: &str, code: &str) -> String {
    let mut text = String::new();
    for part in CHAIN.split("// %% ").filter(|part| !part.is_empty()) {
        let (cell, body) = part.split_once('\n').unwrap();
        let body = if cell == name {
            format!("{code}\n")
        } else {
            body.to_owned()
        };
        text.push_str(&format!("// %% {cell}\n{body}"));
    }
    text
}

fn cells(rerun: &Value) -> Vec<&str> {
    names(&rerun["cells"])
}

fn output(run: &crate::util::Run, cell: &str) -> Value {
    run.finished(cell)["output"].clone()
}

#[test]
fn an_edit_reruns_the_cell_and_its_descendants_and_a_rename_reruns_nothing() {
    let dir = Dir::new("watch-edit");
    let mut watching = Watching::start(&dir, CHAIN, &[]);
    let first = watching.run();
    assert_eq!(first.counts(), (4, 0, 0, 0));
    assert!(
        first.events("rerun_started").is_empty(),
        "the first run is a plain run"
    );

    dir.write("nb.rhai", &chain_with("a", "let x = 2;"));
    let (rerun, run) = watching.rerun();
    assert_eq!(rerun["reason"], "save");
    assert_eq!(cells(&rerun), ["a", "b", "c"]);
    assert_eq!(run.started(), ["a", "b", "c"]);
    assert_eq!(
        (output(&run, "b"), output(&run, "c")),
        (3.into(), 30.into())
    );

    // Only `c` changes: it reads `y` from the globals `b` left.
    dir.write(
        "nb.rhai",
        &chain_with("a", "let x = 2;").replace("y * 10", "y * 100"),
    );
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["c"]);
    assert_eq!(output(&run, "c"), 300);

    // Renaming a cell without touching its code runs nothing.
    dir.write(
        "nb.rhai",
        &chain_with("a", "let x = 2;")
            .replace("y * 10", "y * 100")
            .replace("// %% d", "// %% dd"),
    );
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), Vec::<&str>::new());
    assert_eq!(run.counts(), (0, 0, 0, 0));
    assert_eq!(watching.quit(), 0);
}

#[test]
fn added_cells_run_and_deleted_definitions_are_no_longer_defined() {
    let dir = Dir::new("watch-add-delete");
    let mut watching = Watching::start(&dir, CHAIN, &[]);
    watching.run();

    let added = format!("{CHAIN}// %% e\nlet v = w * 2;\nv\n");
    dir.write("nb.rhai", &added);
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["e"]);
    assert_eq!(output(&run, "e"), 10);

    let without_a = added.replace("// %% a\nlet x = 1;\n", "");
    dir.write("nb.rhai", &without_a);
    let (rerun, run) = watching.rerun();
    assert_eq!(names(&rerun["removed"]), ["a"]);
    assert_eq!(cells(&rerun), ["b", "c"], "the former descendants of `a`");
    assert_eq!(run.status("b"), "error");
    assert_eq!(
        run.finished("b")["error"]["message"],
        "`x` is no longer defined: cell `a`, which defined it, was deleted"
    );
    assert_eq!(run.status("c"), "cancelled");

    // A cell defining `x` again brings the chain back.
    dir.write(
        "nb.rhai",
        &format!("// %% x again\nlet x = 7;\n{without_a}"),
    );
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["x again", "b", "c"]);
    assert_eq!(output(&run, "c"), 80);
    assert_eq!(watching.quit(), 0);
}

#[test]
fn static_errors_come_and_go_with_edits() {
    let dir = Dir::new("watch-static");
    let mut watching = Watching::start(&dir, CHAIN, &[]);
    watching.run();

    // `a` now reads `y`, which `b` defines from `x`: a cycle.
    dir.write("nb.rhai", &chain_with("a", "let x = y;"));
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["a", "b", "c"]);
    assert_eq!(run.finished("a")["error"]["kind"], "cycle");
    assert_eq!(run.finished("b")["error"]["kind"], "cycle");
    assert_eq!(run.status("c"), "cancelled");

    // Breaking the cycle re-runs its cells.
    dir.write("nb.rhai", &chain_with("a", "let x = 5;"));
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["a", "b", "c"]);
    assert_eq!(output(&run, "c"), 60);

    // A syntax error, then its fix.
    dir.write("nb.rhai", &chain_with("b", "let y = ;"));
    let (rerun, run) = watching.rerun();
    assert_eq!(
        cells(&rerun),
        ["b", "a", "c"],
        "static errors head the queue"
    );
    assert_eq!(run.finished("b")["error"]["kind"], "syntax");
    assert_eq!(run.status("c"), "cancelled");
    dir.write("nb.rhai", CHAIN);
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["b", "c"]);
    assert_eq!(output(&run, "c"), 20);
    assert_eq!(watching.quit(), 0);
}

/// `busy` loops until it is interrupted.
const BUSY: &str = "\
// %% a
let x = 1;
// %% busy
let s = x;
let n = 0;
loop { n += 1; }
// %% after
let t = s + 1;
t
// %% other
let o = 3;
";

#[test]
fn a_save_during_a_long_cell_interrupts_it_and_runs_the_new_version() {
    let dir = Dir::new("watch-busy");
    let mut watching = Watching::start(&dir, BUSY, &[]);
    watching.until(|event| event["event"] == "cell_started" && event["cell"] == "busy");
    dir.write(
        "nb.rhai",
        &BUSY.replace("let n = 0;\nloop { n += 1; }", "s"),
    );
    let first = watching.run();
    assert_eq!(first.status("busy"), "interrupted");
    assert_eq!(first.status("after"), "cancelled");
    let (rerun, run) = watching.rerun();
    assert_eq!(
        cells(&rerun),
        ["busy", "after", "other"],
        "the changed cell and what the interrupt kept from running"
    );
    assert_eq!(run.counts(), (3, 0, 0, 0));
    assert_eq!(output(&run, "after"), 2);
    assert_eq!(watching.quit(), 0);
}

#[test]
fn ctrl_c_interrupts_the_running_cells_and_a_second_one_exits() {
    let dir = Dir::new("watch-sigint");
    let mut watching = Watching::start(&dir, BUSY, &[]);
    watching.until(|event| event["event"] == "cell_started" && event["cell"] == "busy");
    watching.interrupt();
    let first = watching.run();
    assert_eq!(first.status("busy"), "interrupted");
    // The notice comes as soon as the interrupt does, maybe before the end
    // of the run.
    let mut notices = first
        .events("warning")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    if notices.is_empty() {
        notices = watching.until(|event| event["event"] == "warning");
    }
    let notice = notices.last().unwrap();
    assert!(
        notice["message"]
            .as_str()
            .is_some_and(|message| message.contains("still watching")),
        "{notice}"
    );

    // Still watching: a save runs the new version.
    dir.write(
        "nb.rhai",
        &BUSY.replace("let n = 0;\nloop { n += 1; }", "s"),
    );
    let (_, run) = watching.rerun();
    assert_eq!(output(&run, "after"), 2);
    watching.interrupt();
    assert_eq!(watching.wait(), 130);
}

#[test]
fn a_burst_of_writes_is_one_save_and_renames_over_the_file_count() {
    let dir = Dir::new("watch-burst");
    // A long debounce makes the burst below one save on any machine.
    let mut watching = Watching::start(&dir, CHAIN, &["--debounce", "1000"]);
    watching.run();

    // Two writes in quick succession, the second through a rename, as
    // editors save.
    dir.write("nb.rhai", &chain_with("a", "let x = 10;"));
    dir.write("nb.rhai.tmp", &chain_with("a", "let x = 20;"));
    std::fs::rename(dir.path().join("nb.rhai.tmp"), dir.path().join("nb.rhai")).unwrap();
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["a", "b", "c"]);
    assert_eq!(output(&run, "b"), 21, "the last write wins");

    // The next re-run is the next save's: the burst made only one.
    dir.write(
        "nb.rhai",
        &chain_with("a", "let x = 20;").replace("let w = 5;", "let w = 6;"),
    );
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["d"]);
    assert_eq!(output(&run, "d"), 6);
    assert_eq!(watching.quit(), 0);
}

#[test]
fn lazy_runs_the_changed_cell_marks_descendants_stale_and_r_runs_them() {
    let dir = Dir::new("watch-lazy");
    let mut watching = Watching::start(&dir, CHAIN, &["--lazy"]);
    watching.run();

    dir.write("nb.rhai", &chain_with("a", "let x = 2;"));
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["a"]);
    assert_eq!(names(&rerun["stale"]), ["b", "c"]);
    assert_eq!(run.started(), ["a"]);

    // An edit to a stale cell runs its stale ancestors first, not its
    // descendants.
    dir.write(
        "nb.rhai",
        &chain_with("a", "let x = 2;").replace("y * 10", "y * 100"),
    );
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["b", "c"]);
    assert_eq!(output(&run, "c"), 300);
    assert_eq!(names(&rerun["stale"]), Vec::<&str>::new());

    dir.write(
        "nb.rhai",
        &chain_with("a", "let x = 3;").replace("y * 10", "y * 100"),
    );
    let (rerun, _) = watching.rerun();
    assert_eq!(names(&rerun["stale"]), ["b", "c"]);
    watching.send("r");
    let (rerun, run) = watching.rerun();
    assert_eq!(rerun["reason"], "stale");
    assert_eq!(cells(&rerun), ["b", "c"]);
    assert_eq!(output(&run, "c"), 400);
    assert_eq!(watching.quit(), 0);
}

#[test]
fn strict_and_cache_work_as_in_run() {
    let dir = Dir::new("watch-strict-cache");
    let notebook = "// %% a\nlet x = 1;\n// %% b\nlet y = x + 1;\ny\n";
    let mut watching = Watching::start(&dir, notebook, &["--strict", "--cache"]);
    let first = watching.run();
    assert_eq!(
        first.events("run_started")[0]["lifecycles"],
        serde_json::json!(["strict", "cache"])
    );

    dir.write("nb.rhai", &notebook.replace("x + 1", "x + 2"));
    let (_, run) = watching.rerun();
    assert_eq!(
        (output(&run, "b"), run.finished("b")["cached"].clone()),
        (3.into(), false.into())
    );

    // Back to the first version: the cache has it.
    dir.write("nb.rhai", notebook);
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["b"]);
    assert_eq!(
        (output(&run, "b"), run.finished("b")["cached"].clone()),
        (2.into(), true.into())
    );

    dir.write("nb.rhai", "// %% b\nlet y = x + 1;\ny\n");
    let (_, run) = watching.rerun();
    let error = &run.finished("b")["error"];
    assert_eq!(error["kind"], "strict");
    assert_eq!(
        error["message"],
        "`x` is no longer defined: cell `a`, which defined it, was deleted"
    );
    assert_eq!(watching.quit(), 0);
}

#[test]
fn a_notebook_that_stops_loading_keeps_the_last_version() {
    let dir = Dir::new("watch-broken");
    let mut watching = Watching::start(&dir, CHAIN, &[]);
    watching.run();
    dir.write("nb.rhai", &CHAIN.replace("// %% d", "// %% a"));
    let warning = watching.until(|event| event["event"] == "warning");
    let message = warning.last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("two cells are named `a`") && message.contains("still watching"),
        "{message}"
    );
    dir.write("nb.rhai", &chain_with("d", "let w = 9;\nw"));
    let (rerun, run) = watching.rerun();
    assert_eq!(
        cells(&rerun),
        ["d"],
        "compared with the last version that loaded"
    );
    assert_eq!(output(&run, "d"), 9);
    assert_eq!(watching.quit(), 0);
}

/// A process whose output arrives in chunks on a channel.
struct Screen {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    chunks: mpsc::Receiver<String>,
    text: String,
}

impl Screen {
    /// Runs `cellrun watch nb.rhai ARGS` in `dir` under `script`, which
    /// gives it a terminal, or with stdout a pipe when `terminal` is false.
    fn start(dir: &Dir, args: &str, no_color: bool, terminal: bool) -> Screen {
        let binary = env!("CARGO_BIN_EXE_cellrun");
        let mut command = if terminal {
            let mut command = Command::new("script");
            command.args([
                "-qfec",
                &format!("exec {binary} watch nb.rhai {args}"),
                "/dev/null",
            ]);
            command
        } else {
            let mut command = Command::new(binary);
            command.args(["watch", "nb.rhai"]);
            command
        };
        clean_env(&mut command, dir.path());
        if !no_color {
            command.env_remove("NO_COLOR");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("`script` (util-linux) gives the test a terminal");
        let mut stdout = child.stdout.take().unwrap();
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n) = stdout.read(&mut buffer) {
                if n == 0
                    || sender
                        .send(String::from_utf8_lossy(&buffer[..n]).into_owned())
                        .is_err()
                {
                    return;
                }
            }
        });
        Screen {
            stdin: child.stdin.take().unwrap(),
            child,
            chunks,
            text: String::new(),
        }
    }

    /// Waits until the output shows `expected`, and returns the output from
    /// `from` on.
    fn wait_for(&mut self, expected: &str, from: usize) -> String {
        while !self.text[from..].contains(expected) {
            match self.chunks.recv_timeout(DEADLINE) {
                Ok(chunk) => self.text.push_str(&chunk),
                Err(_) => panic!("no {expected:?} on the screen: {:?}", self.text),
            }
        }
        self.text[from..].to_owned()
    }

    fn press(&mut self, keys: &str) {
        self.stdin.write_all(keys.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn exit_code(mut self) -> i32 {
        wait_with_deadline(&mut self.child, DEADLINE)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `text` sets a colour or a style (an SGR sequence, `ESC [ … m`).
fn has_colour(text: &str) -> bool {
    text.split('\x1b').skip(1).any(|sequence| {
        sequence
            .strip_prefix('[')
            .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';'))
            .is_some_and(|rest| rest.starts_with('m'))
    })
}

#[test]
fn the_terminal_screen_updates_each_cell_line_in_place_in_colour() {
    let dir = Dir::new("watch-screen");
    dir.write("nb.rhai", CHAIN);
    let mut screen = Screen::start(&dir, "", false, true);
    let first = screen.wait_for("watching for changes", 0);
    assert!(first.contains("\x1b[32m✓\x1b[0m c"), "{first:?}");
    assert!(has_colour(&first));
    let mark = screen.text.len();
    dir.write("nb.rhai", &chain_with("c", "let z = y * 10;\nz.nope()"));
    let after = screen.wait_for("1 error", mark);
    // The block is redrawn over itself: cursor up, erase below.
    assert!(after.contains("A\x1b[J"), "{after:?}");
    assert!(after.contains("\x1b[31m✗\x1b[0m c"), "{after:?}");
    assert!(
        after.contains("nb.rhai:8:3"),
        "the excerpt of the failing cell: {after:?}"
    );
    screen.press("q");
    assert_eq!(screen.exit_code(), 0);
}

#[test]
fn the_terminal_screen_without_colour_shows_stale_cells_and_takes_keys() {
    let dir = Dir::new("watch-screen-lazy");
    dir.write("nb.rhai", CHAIN);
    let mut screen = Screen::start(&dir, "--lazy", true, true);
    screen.wait_for("watching for changes", 0);
    let mark = screen.text.len();
    dir.write("nb.rhai", &chain_with("a", "let x = 2;"));
    let after = screen.wait_for("~ c stale", mark);
    assert!(after.contains("~ b stale"), "{after:?}");
    let mark = screen.text.len();
    screen.press("r");
    screen.wait_for("✓ c ok", mark);
    assert!(
        !has_colour(&screen.text) && screen.text.contains("\x1b[J"),
        "NO_COLOR: no colour, only cursor movement: {:?}",
        screen.text
    );
    // Ctrl-C with nothing running ends the watch.
    screen.press("\x03");
    assert_eq!(screen.exit_code(), 130);
}

#[test]
fn without_a_terminal_the_runs_are_plain_lines() {
    let dir = Dir::new("watch-plain");
    dir.write("nb.rhai", CHAIN);
    let mut screen = Screen::start(&dir, "", true, false);
    screen.wait_for("4 cells: 4 ok", 0);
    let mark = screen.text.len();
    dir.write("nb.rhai", &chain_with("a", "let x = 2;"));
    let after = screen.wait_for("3 cells: 3 ok", mark);
    assert!(
        after.contains("nb.rhai changed: re-running a, b, c"),
        "{after:?}"
    );
    assert!(after.contains("✓ c"), "{after:?}");
    assert!(!screen.text.contains('\x1b'), "{:?}", screen.text);
    screen.press("q\n");
    assert_eq!(screen.exit_code(), 0);
}

/// `a`, then `b` and `c` reading it, independent of each other.
const FAN: &str = "\
// %% a
let x = 1;
// %% b
let s = 0;
for i in 0..20000 { s += i; }
s + x
// %% c
let t = 0;
for i in 0..20000 { t += i; }
t + x * 2
";

#[test]
fn with_jobs_a_rerun_starts_independent_cells_together() {
    let dir = Dir::new("watch-jobs");
    let mut watching = Watching::start(&dir, FAN, &["--jobs", "2"]);
    let first = watching.run();
    assert_eq!(first.events("run_started")[0]["jobs"], 2);
    assert_eq!(first.counts(), (3, 0, 0, 0));

    dir.write("nb.rhai", &FAN.replace("let x = 1;", "let x = 10;"));
    let (rerun, run) = watching.rerun();
    assert_eq!(cells(&rerun), ["a", "b", "c"]);
    assert_eq!(run.events("run_started")[0]["jobs"], 2);
    // Both siblings start before either finishes: they are in flight at once.
    let kinds: Vec<String> = run
        .events
        .iter()
        .filter(|event| event["cell"] == "b" || event["cell"] == "c")
        .map(|event| event["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        &kinds[..2],
        ["cell_started", "cell_started"],
        "{:#?}",
        run.events
    );
    let sum: i64 = (0..20000).sum();
    assert_eq!(
        (output(&run, "b"), output(&run, "c")),
        ((sum + 10).into(), (sum + 20).into())
    );
    assert_eq!(watching.quit(), 0);
}
