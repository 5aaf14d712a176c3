//! Compiling cells ahead, in a second Python process.
//!
//! CPython compiles a one-line cell in about 10 µs, most of what a small
//! cell costs, and it compiles under the GIL, so no thread of this process
//! can do it while a cell runs. A helper process (`python -I -S`, the
//! interpreter the cells run in) can: when a run starts, a thread reads the
//! notebook from its end, sends the helper each cell's code cut before its output
//! expression, and the helper sends back the compiled code objects as
//! `marshal` data, which loads in under a microsecond. A cell whose code
//! arrived runs it; any other cell (not compiled yet, compiled with a
//! warning, changed since the file was read) compiles as before, so the
//! helper changes how fast a cell starts and nothing else.
//!
//! Protocol, little-endian `u32` lengths and counts:
//! - to the helper: the cell runner's code object as `marshal` data, when
//!   the build compiled it (else the helper was started with its source);
//!   the notebook's path; then batches, each its length in
//!   bytes and then `count, (first_line, output_line, body, output or
//!   u32::MAX)*` (a text is its length and its UTF-8 bytes);
//! - from the helper: its `sys.version`; then per batch
//!   `count, (first_line, marshal data, empty when it did not compile)*`.
//!
//! The helper exits when its input ends; a run that ends first kills it.

use std::collections::{HashMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use pyo3::ffi;

/// What `python.precompile` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precompile {
    /// A helper for notebooks of [`AUTO_CELLS`] cells or more.
    Auto,
    /// A helper for every notebook.
    Always,
    /// No helper: every cell compiles as it starts.
    Never,
}

impl Precompile {
    /// The option's value: `auto`, `always` or `never`.
    ///
    /// # Errors
    /// A sentence naming the value, when it is none of those.
    pub fn parse(value: &str) -> Result<Precompile, String> {
        match value {
            "auto" => Ok(Precompile::Auto),
            "always" | "true" => Ok(Precompile::Always),
            "never" | "false" => Ok(Precompile::Never),
            other => Err(format!(
                "python.precompile is `auto`, `always` or `never`, not `{other}`"
            )),
        }
    }

    /// The fewest cells a notebook needs for a helper; `None` for `never`.
    pub fn min_cells(self) -> Option<usize> {
        match self {
            Precompile::Auto => Some(AUTO_CELLS),
            Precompile::Always => Some(1),
            Precompile::Never => None,
        }
    }
}

/// The fewest cells for which `auto` starts a helper. The helper starts
/// beside the run's own interpreter, and a cell that finds its code
/// compiled takes about half the time of one that compiles; from some
/// thousands of one-line cells the helper pays for its start and for the
/// second core it takes. Paired runs of `precompile=always` against
/// `never` (medians of 11 to 21 pairs), fan-out and chain: 1.03x and 1.01x
/// at 1,000 cells, 1.01x and 1.03x at 1,500, 0.97x and 0.91x at 2,000,
/// 0.84x and 0.95x at 3,000. (With the cell runner's Python frames still
/// around each cell it paid from 750.)
pub const AUTO_CELLS: usize = 2000;

/// How many cells go to the helper in one write, and come back in one.
const BATCH: usize = 16;

/// How many batches may be on their way at once. The sender keeps no
/// further ahead, so a cell that started meanwhile is still left out.
const IN_FLIGHT: usize = 2;

/// The helper's program (run with `-I -S`: nothing of the environment):
/// the cell runner, whose `serve_compiles` compiles as a cell run does.
/// Used when the build did not compile the cell runner.
const HELPER: &str = concat!(include_str!("cell_runner.py"), "\nserve_compiles()\n");

/// The helper's program when the build compiled the cell runner: it reads
/// the runner's code object from its input and runs it, which starts it
/// about 5 ms sooner than compiling the runner's source (paired starts).
const HELPER_LOADER: &str = "import marshal, sys\n\
    _input = sys.stdin.buffer\n\
    exec(marshal.loads(_input.read(int.from_bytes(_input.read(4), 'little'))))\n\
    serve_compiles()\n";

/// One run's cells compiled ahead, by their first notebook line.
pub struct Ahead {
    state: Mutex<State>,
    /// Signalled when a batch comes back or the helper ends.
    progress: Condvar,
}

#[derive(Default)]
struct State {
    /// Code sent to the helper and not back yet.
    sent: HashMap<u32, String>,
    /// Code compiled by the helper: the cell's code and the marshal data.
    ready: HashMap<u32, (String, Vec<u8>)>,
    /// Cells that started, whether they found their code here or not.
    started: HashSet<u32>,
    /// Batches sent, and batches back.
    batches_sent: usize,
    batches_back: usize,
    /// The helper ended, failed or was stopped.
    over: bool,
    /// The helper's process id, while it runs.
    pid: Option<u32>,
    /// How many cells found their code here.
    used: usize,
}

impl Ahead {
    /// Starts compiling the cells of `notebook` (read now, from disk) in a
    /// helper running `python`, whose code objects name `filename`.
    /// Returns at once; a notebook of fewer than `min_cells` cells (see
    /// [`Precompile::min_cells`]), one that does not parse or a helper that
    /// cannot start leaves the run compiling each cell itself.
    pub fn start(python: &Path, notebook: &Path, filename: &str, min_cells: usize) -> Arc<Ahead> {
        let ahead = Arc::new(Ahead {
            state: Mutex::new(State::default()),
            progress: Condvar::new(),
        });
        let job = Job {
            python: python.to_path_buf(),
            notebook: notebook.to_path_buf(),
            filename: filename.to_owned(),
            min_cells,
        };
        let sender = Arc::clone(&ahead);
        let spawned = std::thread::Builder::new()
            .name("cellrun-python-ahead".into())
            .spawn(move || {
                // Once a reader runs, it marks the end when the helper ends.
                if !sender.send(job) {
                    sender.finish();
                }
            });
        if spawned.is_err() {
            ahead.lock().over = true;
        }
        ahead
    }

    /// The compiled code of the cell at `first_line`, when the helper
    /// compiled exactly `code` for it; marks the cell started either way.
    pub fn take(&self, first_line: u32, code: &str) -> Option<Vec<u8>> {
        let mut state = self.lock();
        state.started.insert(first_line);
        let (compiled_code, data) = state.ready.remove(&first_line)?;
        if compiled_code != code || data.is_empty() {
            return None;
        }
        state.used += 1;
        Some(data)
    }

    /// How many cells found their code compiled ahead so far.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// Stops the helper, if it still runs.
    pub fn stop(&self) {
        let mut state = self.lock();
        state.over = true;
        if let Some(pid) = state.pid.take() {
            // SAFETY: sends a signal to a child this process started and has
            // not reaped (the reader reaps it after `pid` is cleared).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        self.progress.notify_all();
    }

    /// Waits until the helper answered every cell sent and ended, or was
    /// never started (tests).
    pub fn wait_done(&self) {
        let mut state = self.lock();
        while !state.over {
            state = self
                .progress
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the helper over, waking whoever waits.
    fn finish(&self) {
        self.lock().over = true;
        self.progress.notify_all();
    }

    /// Reads the notebook, starts the helper and sends it the cells that
    /// have not started, last first, at most [`IN_FLIGHT`] batches ahead
    /// of its answers.
    ///
    /// Last first: the run starts with the first cells and compiles them
    /// itself while the helper starts, then runs into the cells the helper
    /// compiled from the end, and neither compiles a cell twice.
    ///
    /// Returns whether a reader of the helper's answers started.
    fn send(self: &Arc<Ahead>, job: Job) -> bool {
        let Ok(text) = std::fs::read_to_string(&job.notebook) else {
            return false;
        };
        // Counted before the helper starts, parsed while it does.
        if text.matches("\n@app.").count() < job.min_cells {
            return false;
        }
        // The interpreter the cells run in, not a launcher that finds it
        // (pyenv's shims take tens of milliseconds). Asked without waiting
        // for the interpreter of this process, which starts meanwhile: the
        // helper starts beside it, not after it.
        let Ok((version, executable)) = crate::interpreter::probed(&job.python) else {
            return false;
        };
        // A Python of another version will not run the cells either.
        if version != crate::LINKED_VERSION {
            return false;
        }
        let Some((mut input, output, child)) = spawn(&executable) else {
            return false;
        };
        self.lock().pid = Some(child.id());
        let reader = Arc::clone(self);
        let reading = std::thread::Builder::new()
            .name("cellrun-python-ahead-read".into())
            .spawn(move || reader.receive(output, child));
        if reading.is_err() {
            self.stop();
            return false;
        }
        if write_bytes(&mut input, job.filename.as_bytes()).is_err() {
            self.stop();
            return true;
        }
        let mut batch = Vec::new();
        let mut cells = cells_from_the_end(&text).peekable();
        while cells.peek().is_some() {
            {
                let mut state = self.lock();
                while !state.over && state.batches_sent >= state.batches_back + IN_FLIGHT {
                    state = self
                        .progress
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if state.over {
                    return true;
                }
            }
            batch.clear();
            let mut count = 0u32;
            let mut codes = Vec::new();
            while count < BATCH as u32 {
                let Some(cell) = cells.next() else { break };
                if self.lock().started.contains(&cell.first_line) {
                    continue;
                }
                let Some(split) = python_notebook::split_output(&cell.code) else {
                    continue;
                };
                encode_cell(&mut batch, cell.first_line, &split);
                count += 1;
                codes.push((cell.first_line, cell.code));
            }
            if count == 0 {
                continue;
            }
            {
                let mut state = self.lock();
                state.sent.extend(codes);
                state.batches_sent += 1;
            }
            // The batch's length first: the helper reads it whole.
            let mut frame = Vec::with_capacity(batch.len() + 8);
            frame.extend_from_slice(&(batch.len() as u32 + 4).to_le_bytes());
            frame.extend_from_slice(&count.to_le_bytes());
            frame.extend_from_slice(&batch);
            if input
                .write_all(&frame)
                .and_then(|()| input.flush())
                .is_err()
            {
                return true;
            }
        }
        // The helper exits once its input ends, after its last answer.
        drop(input);
        true
    }

    /// Reads the helper's answers until it ends, then reaps it.
    fn receive(&self, output: ChildStdout, mut child: Child) {
        let mut output = BufReader::with_capacity(1 << 16, output);
        if read_bytes(&mut output).is_some_and(|version| same_version(&version)) {
            while let Some(count) = read_u32(&mut output) {
                let mut answers = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let (Some(first_line), Some(data)) =
                        (read_u32(&mut output), read_bytes(&mut output))
                    else {
                        break;
                    };
                    answers.push((first_line, data));
                }
                let mut state = self.lock();
                for (first_line, data) in answers {
                    if let Some(code) = state.sent.remove(&first_line) {
                        if !state.started.contains(&first_line) {
                            state.ready.insert(first_line, (code, data));
                        }
                    }
                }
                state.batches_back += 1;
                drop(state);
                self.progress.notify_all();
            }
        }
        let pid = self.lock().pid.take();
        if pid.is_some() {
            let _ = child.kill();
        }
        let _ = child.wait();
        self.finish();
    }
}

/// How many cells the sender reads at a time, from the end.
const PART: usize = 64;

/// A cell as the sender reads it.
#[derive(Debug, PartialEq, Eq)]
struct ReadCell {
    /// The notebook line of its code's first line.
    first_line: u32,
    code: String,
}

/// The notebook's decorated cells, last first, read [`PART`] cells at a
/// time from the lines their decorators start on (`@app.` at the start of
/// a line): the first batch goes out once its cells are read, not once the
/// whole notebook is, and cells the run reached first are never read.
/// A part whose cells are all simple ([`simple_cell`]) is read from its
/// lines; any other is parsed, and gives no cells when it does not parse
/// (a decorator line inside a string). A cell read wrongly is only
/// compiled for nothing: the run takes a compiled cell only for the very
/// code it has.
fn cells_from_the_end(text: &str) -> impl Iterator<Item = ReadCell> + '_ {
    // Each decorator line's offset and notebook line, in one pass.
    let mut starts: Vec<(usize, u32)> = Vec::new();
    let (mut counted, mut line) = (0, 1);
    for (at, _) in text.match_indices("\n@app.") {
        line += text[counted..=at].matches('\n').count() as u32;
        counted = at + 1;
        starts.push((at + 1, line));
    }
    let mut upper = starts.len();
    let mut read: Vec<ReadCell> = Vec::new();
    std::iter::from_fn(move || loop {
        if let Some(cell) = read.pop() {
            return Some(cell);
        }
        if upper == 0 {
            return None;
        }
        let lower = upper.saturating_sub(PART);
        let end = |index: usize| starts.get(index).map_or(text.len(), |(at, _)| *at);
        let simple: Option<Vec<ReadCell>> = (lower..upper)
            .map(|index| {
                let (from, line) = starts[index];
                simple_cell(&text[from..end(index + 1)], line)
            })
            .collect();
        read = simple.unwrap_or_else(|| {
            let (from, line) = starts[lower];
            python_notebook::parse_cells_in(&text[from..end(upper)], line)
                .into_iter()
                .map(|cell| ReadCell {
                    first_line: cell.first_line,
                    code: cell.code,
                })
                .collect()
        });
        upper = lower;
    })
}

/// The `@app.cell` cell whose lines are `part`, starting at notebook line
/// `line`, read from them as the notebook's parser reads it, when it is
/// simple: a one-line decorator and signature, a body of lines indented
/// by four spaces at least (the first not blank, no string spanning lines,
/// no line continued with `\\`), and a last line `return` or `return ...`.
/// Its code is the body before that line, four spaces off each line.
fn simple_cell(part: &str, line: u32) -> Option<ReadCell> {
    let mut lines = part.lines();
    let decorator = lines.next()?;
    let signature = lines.next()?;
    let is_cell = decorator == "@app.cell"
        || (decorator.starts_with("@app.cell(") && decorator.ends_with(')'));
    let is_def = (signature.starts_with("def ") || signature.starts_with("async def "))
        && signature.ends_with("):");
    if !is_cell || !is_def {
        return None;
    }
    let mut body: Vec<&str> = lines.collect();
    let trim_blank = |body: &mut Vec<&str>| {
        while body.last().is_some_and(|line| line.trim().is_empty()) {
            body.pop();
        }
    };
    trim_blank(&mut body);
    let last = body.pop()?;
    if last != "    return" && !last.starts_with("    return ") {
        return None;
    }
    trim_blank(&mut body);
    let plain = |line: &&str| {
        (line.is_empty() || line.starts_with("    "))
            && !line.contains("\"\"\"")
            && !line.contains("'''")
            && !line.ends_with('\\')
            && !line.contains(['\t', '\r'])
    };
    let blank_first = body.first().is_none_or(|first| first.trim().is_empty());
    if blank_first || !body.iter().all(plain) {
        return None;
    }
    let mut code = String::with_capacity(part.len());
    for line in body {
        code.push_str(line.get(4..).unwrap_or(""));
        code.push('\n');
    }
    Some(ReadCell {
        first_line: line + 2,
        code,
    })
}

/// What the sending thread needs.
struct Job {
    python: PathBuf,
    notebook: PathBuf,
    filename: String,
    min_cells: usize,
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the helper with piped input and output.
///
/// Its one argument is the run's memory limit in bytes (0 for none), which
/// the helper sets as its own address-space limit before it reads a cell:
/// compiling a cell cannot take it past what a cell run may hold, and a
/// compile that would fails there and happens in place instead.
fn spawn(python: &Path) -> Option<(BufWriter<ChildStdin>, ChildStdout, Child)> {
    let limit = crate::memory::limit().unwrap_or(0).to_string();
    let compiled = crate::interpreter::CELL_RUNNER_COMPILED;
    let program = if compiled.is_empty() {
        HELPER
    } else {
        HELPER_LOADER
    };
    let mut child = Command::new(python)
        .args(["-I", "-S", "-c", program, &limit])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut input = BufWriter::new(child.stdin.take()?);
    let output = child.stdout.take()?;
    // The helper reads this first, before it writes anything.
    if !compiled.is_empty() && write_bytes(&mut input, compiled).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    Some((input, output, child))
}

/// Whether the helper's `sys.version` is this process's interpreter's: the
/// same release compiles to the same bytecode.
fn same_version(helper: &[u8]) -> bool {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may
    // be called at any time.
    let ours = unsafe { std::ffi::CStr::from_ptr(ffi::Py_GetVersion()) };
    let release = |text: &[u8]| text.split(|byte| *byte == b' ').next().map(<[u8]>::to_vec);
    release(ours.to_bytes()).is_some_and(|ours| Some(ours) == release(helper))
}

fn encode_cell(out: &mut Vec<u8>, first_line: u32, split: &python_notebook::OutputSplit<'_>) {
    out.extend_from_slice(&first_line.to_le_bytes());
    out.extend_from_slice(&(split.output_line as u32).to_le_bytes());
    put_bytes(out, split.body.as_bytes());
    match split.output {
        Some(output) => put_bytes(out, output.as_bytes()),
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn write_bytes(out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(bytes.len() + 4);
    put_bytes(&mut frame, bytes);
    out.write_all(&frame)
}

fn read_u32(input: &mut impl Read) -> Option<u32> {
    let mut bytes = [0; 4];
    input.read_exact(&mut bytes).ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn read_bytes(input: &mut impl Read) -> Option<Vec<u8>> {
    let size = read_u32(input)? as usize;
    let mut bytes = vec![0; size];
    input.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cells of many shapes: the simple ones are read from their lines,
    /// the others parsed.
    fn shapes() -> String {
        let bodies = [
            "x_{i} = {i}",
            "y_{i} = 1\n\nz_{i} = 2",
            "# a comment\nc_{i} = 3",
            "d_{i} = [\n    1,\n    2,\n]",
            "if True:\n    e_{i} = 1\nelse:\n    e_{i} = 2",
            "s_{i} = \"\"\"\n  text\n\"\"\"",
            "t_{i} = 1 + \\\n    2",
            "u_{i} = 1\n# trailing comment",
            "v_{i} = 1\n\n",
        ];
        let mut text = String::from("import marimo\n\napp = marimo.App()\n");
        for i in 0..200 {
            let body = bodies[i % bodies.len()].replace("{i}", &i.to_string());
            let indented: String = body
                .lines()
                .map(|line| {
                    if line.is_empty() {
                        "\n".to_owned()
                    } else {
                        format!("    {line}\n")
                    }
                })
                .collect();
            let decorator = if i % 7 == 3 {
                "@app.cell(hide_code=True)"
            } else {
                "@app.cell"
            };
            let ret = if i % 5 == 1 {
                "    return (x,)\n"
            } else {
                "    return\n"
            };
            text.push_str(&format!(
                "\n\n{decorator}\ndef cell_{i}():\n{indented}{ret}"
            ));
        }
        text.push_str("\n\nif __name__ == \"__main__\":\n    app.run()\n");
        text
    }

    #[test]
    fn cells_read_from_the_end_are_the_parsers() {
        let generated = shapes();
        for text in [
            generated.as_str(),
            include_str!("../../../examples/tour.py"),
            include_str!("../../../examples/inventory.py"),
            include_str!("../../../python-notebook/tests/parity/notebooks/tricky.py"),
            include_str!("../../../python-notebook/tests/parity/notebooks/layout.py"),
            include_str!("../../../python-notebook/tests/parity/notebooks/nesting.py"),
        ] {
            let whole = python_notebook::parse_notebook(text).unwrap();
            let mut read: Vec<ReadCell> = cells_from_the_end(text).collect();
            read.reverse();
            for cell in &read {
                assert!(
                    whole
                        .cells
                        .iter()
                        .any(|known| known.first_line == cell.first_line && known.code == cell.code),
                    "{cell:?}"
                );
            }
            // Each cell alone, simple or not: the simple ones agree too.
            let starts: Vec<usize> = text
                .match_indices("\n@app.")
                .map(|(at, _)| at + 1)
                .collect();
            let mut simple = 0;
            for (index, from) in starts.iter().enumerate() {
                let to = starts.get(index + 1).copied().unwrap_or(text.len());
                let line = text[..*from].matches('\n').count() as u32 + 1;
                if let Some(cell) = simple_cell(&text[*from..to], line) {
                    simple += 1;
                    assert!(
                        whole
                            .cells
                            .iter()
                            .any(|known| known.first_line == cell.first_line
                                && known.code == cell.code),
                        "{cell:?}"
                    );
                }
            }
            if text == generated {
                assert_eq!(read.len(), 200);
                assert!(simple > 100, "{simple} simple cells");
            }
        }
    }
}
