//! `cellrun worker`: the host side of remote execution.
//!
//! A worker runs cells for another process (an executor plugin that runs
//! every cell elsewhere, a cluster job): it reads requests on standard input
//! and answers on standard output, one JSON object a line, in order. It runs
//! each cell with the built-in executor, under the worker's memory limit and
//! the request's time limit, and sends the cell's definitions back in the
//! wire form ([`executor_core::wire`]).
//!
//! # Protocol 1
//! Every line the worker writes has `"protocol":1`. The first one says it is
//! ready: `{"protocol":1,"ready":true,"cellrun":"0.1.0"}`. Then each request
//! line gets exactly one answer line.
//!
//! A request:
//!
//! ```json
//! {"protocol":1,"id":7,
//!  "cell":{"name":"total","language":"rhai","code":"scale(k)","first_line":12,
//!          "defs":[],"refs":["k"],"options":[["cpus","2"]]},
//!  "functions":[{"name":"scale","cell":"helpers","code":"fn scale(x) { x * 2 }","first_line":4}],
//!  "inputs":{"k":{"int":21}},
//!  "timeout_ms":5000,"deadline_unix_ms":1767225600000,"keep":false}
//! ```
//!
//! - `id` is any JSON value, echoed in the answer (null when absent).
//! - `cell`: `name`, `code` and `first_line` (the notebook line of the
//!   code's first line, so errors carry notebook lines) are required;
//!   `language` is `rhai` (the default) or `python`. The worker analyses the
//!   code itself: `defs` and `refs` are informational; `options` (pairs) go
//!   to the cell.
//! - A `python` cell runs in the python executor plugin cellrun ships (found
//!   as `cellrun run` finds it, beside the executable), loaded on the first
//!   such request, in the interpreter of `--python`, else of the active
//!   virtual environment, else `python3` on PATH. Its values cross as
//!   `foreign` wire values holding a pickle; functions and classes the
//!   notebook defines travel by value when that Python has cloudpickle.
//!   Python cells of one worker share the interpreter's `__main__`: a name
//!   an earlier request bound there stays visible, whatever `keep` says.
//! - `notebook`: the notebook's path (optional), which a Python cell's
//!   tracebacks name (and show lines of, when the file is there).
//! - `functions`: the notebook functions the cell reaches, each with the
//!   whole code of the cell defining it and that cell's `first_line` (1 when
//!   absent). The worker compiles that code for its functions only: the
//!   statements of defining cells never run.
//! - `inputs`: the globals the cell and its functions read, in the wire
//!   form. Closures among them bring the code defining them, compiled the
//!   same way.
//! - `timeout_ms` (from when the worker starts the cell) and
//!   `deadline_unix_ms` (wall clock) stop the cell with a `timeout` error;
//!   the earlier wins. Neither: no time limit.
//! - `keep`: keep this request's globals (its inputs and the cell's
//!   definitions) for the next request, which adds its own inputs to them.
//!   Without it the worker keeps nothing between requests.
//!
//! An answer:
//!
//! ```json
//! {"protocol":1,"id":7,"status":"ok",
//!  "defs":{},"no_wire":{},"changed":{},
//!  "output":{"int":42},"output_json":42,"output_cut":false,
//!  "stdout":"","display":null,"error":null}
//! ```
//!
//! - `status`: `ok`, `error` or `interrupted`.
//! - `defs`: the cell's definitions in the wire form; `no_wire`: the
//!   definitions without one, each with the reason (the cell then fails
//!   with an error naming the first, keeping the rest).
//! - `changed`: the inputs the cell changed in place (pushed to an array,
//!   set a key of a map), in the wire form, so that the host can bring its
//!   own value up to date as a run in one process would have shared the
//!   change; empty after the memory limit stopped the cell.
//! - `output`: the cell's value in the wire form, or null when it has none
//!   (then `output_no_wire` says why); `output_json`: its JSON rendering
//!   (bounded; `output_cut` says whether it was cut short).
//! - `stdout`: what the cell printed; `display`: `{"mime","data"}` or null.
//! - `error`: null, or `{"kind","message","line","column","missing_name"}`
//!   with notebook positions. Kinds are those of `--json` events, plus
//!   `protocol` for a request the worker could not read (then nothing ran).
//!
//! # Lifetime
//! End of input ends the worker with exit status 0. SIGINT, SIGTERM or
//! SIGHUP while a request is in hand interrupt its cell (the answer has
//! status and kind `interrupted`) and the worker goes on; a second one, or
//! one while the worker waits for a request, ends it with status 130 (once
//! the answer in hand, if any, is written). The
//! worker also ends when its parent process goes away. It starts no process.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use executor_core::wire::{self, Decoder, WireSource};
use executor_core::{
    CancelToken, CellError, CellSource, DefaultExecutor, ErrorKind, Evaluator, Executor,
    ForeignValue, Globals, Limits, Notebook, NotebookCompiler, RunResult, StopReason,
    CELL_THREAD_STACK, PYTHON,
};
use rhai::Dynamic;
use serde_json::{json, Value};

use crate::json::to_json_bounded;

/// The protocol version this worker speaks.
const PROTOCOL: u64 = 1;

/// Exit status when a signal ends the worker.
const EXIT_INTERRUPTED: u8 = 130;

/// How often the watchdog looks at the running cell's clock and memory.
const POLL: Duration = Duration::from_millis(5);

/// The largest request buffer kept between requests, in bytes.
const LINE_KEEP: usize = 1 << 20;

/// How often an idle watchdog checks that the parent is still there.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// `cellrun worker`: serves requests until the end of standard input.
pub(crate) fn run(
    max_memory_mib: Option<u64>,
    python: Option<std::path::PathBuf>,
) -> anyhow::Result<ExitCode> {
    let max_bytes = crate::memory::limit_bytes(max_memory_mib);
    let state = Arc::new(State::default());
    let signals = state.clone();
    ctrlc::set_handler(move || signals.signal())
        .context("cannot handle SIGINT and SIGTERM in the worker")?;
    let watchdog = Watchdog::spawn(max_bytes);
    let served = thread::Builder::new()
        .name("cellrun-worker".into())
        .stack_size(CELL_THREAD_STACK)
        .spawn(move || serve(&state, &watchdog, max_bytes, python))
        .context("cannot start the worker thread")?
        .join()
        .map_err(|payload| {
            anyhow::anyhow!(
                "internal error: {}",
                executor_core::panic_message(payload.as_ref())
            )
        })?;
    match served {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The host went away: nobody reads the answers.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(anyhow::Error::from(error).context("worker input or output failed")),
    }
}

/// What the worker is doing, as the signal handler sees it.
#[derive(Default)]
struct State {
    inner: Mutex<Phase>,
}

#[derive(Default)]
enum Phase {
    /// Waiting for a request.
    #[default]
    Idle,
    /// A request is in hand; `token` once its cell runs.
    Busy {
        token: Option<CancelToken>,
        interrupted: bool,
    },
    /// The cell is done and its answer being written; `exit` once a signal
    /// asked to end the worker after it.
    Answering { exit: bool },
}

impl State {
    /// A signal arrived.
    fn signal(&self) {
        let mut phase = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *phase {
            Phase::Busy { token, interrupted } if !*interrupted => {
                *interrupted = true;
                if let Some(token) = token {
                    token.stop(StopReason::Interrupted);
                }
            }
            Phase::Answering { exit } if !*exit => *exit = true,
            _ => std::process::exit(i32::from(EXIT_INTERRUPTED)),
        }
    }

    /// A request is in hand.
    fn busy(&self) {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner) = Phase::Busy {
            token: None,
            interrupted: false,
        };
    }

    /// Registers the token of the cell about to run; stops it at once when
    /// the request was interrupted already.
    fn running(&self, cell_token: &CancelToken) {
        let mut phase = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Phase::Busy { token, interrupted } = &mut *phase {
            if *interrupted {
                cell_token.stop(StopReason::Interrupted);
            }
            *token = Some(cell_token.clone());
        }
    }

    /// The answer is about to be written: a signal now ends the worker once
    /// it is.
    fn answering(&self) {
        let mut phase = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !matches!(*phase, Phase::Answering { .. }) {
            *phase = Phase::Answering { exit: false };
        }
    }

    /// The answer is written; ends the worker when a signal asked to.
    fn idle(&self) {
        let mut phase = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*phase, Phase::Answering { exit: true }) {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        *phase = Phase::Idle;
    }
}

/// Reads requests and writes answers until the end of input.
fn serve(
    state: &State,
    watchdog: &Watchdog,
    max_bytes: usize,
    python: Option<std::path::PathBuf>,
) -> io::Result<()> {
    let limits = Limits {
        max_alloc_bytes: max_bytes,
        ..Limits::default()
    };
    let default = Arc::new(DefaultExecutor::new(&limits));
    let evaluator = Evaluator::new(default.clone(), Vec::new());
    let python = Python {
        program: python,
        default,
        max_bytes,
        runtime: std::sync::OnceLock::new(),
        notebook: Mutex::new(String::new()),
    };
    let compiler = NotebookCompiler::new(&limits);
    let mut stdout = io::stdout().lock();
    let ready = json!({"protocol": PROTOCOL, "ready": true, "cellrun": env!("CARGO_PKG_VERSION")});
    writeln!(stdout, "{ready}")?;
    stdout.flush()?;
    let mut stdin = io::stdin().lock();
    let mut line = String::new();
    let mut kept: Option<Globals> = None;
    loop {
        line.clear();
        if stdin.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        state.busy();
        let answer = match serde_json::from_str::<Value>(&line) {
            Err(error) => protocol_error(&Value::Null, &format!("not a JSON line: {error}")),
            Ok(request) => {
                let server = Server {
                    state,
                    watchdog,
                    evaluator: &evaluator,
                    compiler: &compiler,
                    python: &python,
                };
                server.answer(&request, &mut kept)
            }
        };
        // A large request's buffer would stay held for the worker's life.
        if line.capacity() > LINE_KEEP {
            line = String::new();
        }
        state.answering();
        stdout.write_all(answer.as_bytes())?;
        stdout.write_all(b"\n")?;
        stdout.flush()?;
        state.idle();
    }
}

/// What answering a request needs.
struct Server<'a> {
    state: &'a State,
    watchdog: &'a Watchdog,
    evaluator: &'a Evaluator,
    compiler: &'a NotebookCompiler,
    python: &'a Python,
}

/// The python executor and an evaluator around it.
type PythonRuntime = (Arc<dyn Executor>, Evaluator);

/// The python executor plugin, loaded on the first Python request.
struct Python {
    /// `--python`.
    program: Option<std::path::PathBuf>,
    /// What the plugin's host falls back to (its built-in body).
    default: Arc<DefaultExecutor>,
    /// The worker's memory limit, in bytes.
    max_bytes: usize,
    runtime: std::sync::OnceLock<Result<PythonRuntime, String>>,
    /// The notebook path the executor was last told of.
    notebook: Mutex<String>,
}

impl Python {
    /// Tells the executor the notebook's path (as a run's start does), when
    /// it changed since the last request.
    fn notebook(&self, evaluator: &Evaluator, path: &str) {
        let mut told = self.notebook.lock().unwrap_or_else(PoisonError::into_inner);
        if *told == path {
            return;
        }
        path.clone_into(&mut told);
        evaluator.run_started(&executor_core::RunContext {
            run_id: format!("worker-{}", std::process::id()),
            notebook_path: path.to_owned(),
            notebook_hash: String::new(),
            language: PYTHON,
            jobs: 1,
            timeout: None,
            cell_names: Vec::new(),
            parents: Vec::new(),
        });
    }

    /// The python executor and an evaluator around it, or why there is none.
    fn runtime(&self) -> Result<&PythonRuntime, &str> {
        self.runtime
            .get_or_init(|| {
                let executor = load_python(self.program.as_deref(), &self.default, self.max_bytes)?;
                let evaluator = Evaluator::new(executor.clone(), Vec::new());
                Ok((executor, evaluator))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Loads the python plugin cellrun ships and constructs its executor,
/// encoding values for another process (`python.portable`). A worker runs
/// a few of the notebook's cells, so it compiles each where it runs
/// (`python.precompile=never`) rather than the whole notebook ahead.
fn load_python(
    program: Option<&std::path::Path>,
    default: &Arc<DefaultExecutor>,
    max_bytes: usize,
) -> Result<Arc<dyn Executor>, String> {
    use crate::plugins::{self, PluginConfig};

    let mut options = crate::session::with_python_memory_limit(
        vec![
            (
                "python".to_owned(),
                "portable".to_owned(),
                "true".to_owned(),
            ),
            (
                "python".to_owned(),
                "precompile".to_owned(),
                "never".to_owned(),
            ),
        ],
        Some(u64::try_from(max_bytes >> 20).unwrap_or(u64::MAX).max(1)),
    );
    if let Some(program) = program {
        options.push((
            "python".to_owned(),
            "python".to_owned(),
            program.display().to_string(),
        ));
    }
    let config = PluginConfig::new(&[], false, options);
    let mut inventory = plugins::Inventory::default();
    if plugins::add_bundled(&mut inventory, &config, PYTHON).is_err() {
        return Err(crate::python::missing_executor_hint(PYTHON));
    }
    if let Some(problem) = inventory.warnings.first() {
        return Err(problem.clone());
    }
    let mut registry = executor_core::ExecutorRegistry::new();
    plugins::register_executors(&mut registry, &inventory, &config, default, PYTHON);
    registry
        .select_named("python", &executor_core::NameFilter::from_lists(None, None))
        .map(|selection| selection.executor)
}

/// A request's cell, read and checked.
struct Request<'a> {
    name: &'a str,
    /// `rhai` or `python`.
    language: &'a str,
    code: &'a str,
    first_line: u32,
    /// The cell's options, for a Python cell.
    options: Vec<(String, String)>,
    /// The notebook's path, when given.
    notebook: Option<&'a str>,
    functions: Vec<WireSource>,
    /// The time limit, counted from when the cell starts.
    timeout: Option<Duration>,
    /// The wall-clock deadline, on this process's clock.
    deadline: Option<Instant>,
    keep: bool,
}

impl Server<'_> {
    /// The answer line to `request`; `kept` holds the globals a request asked to keep.
    fn answer(&self, request: &Value, kept: &mut Option<Globals>) -> String {
        let id = request.get("id").unwrap_or(&Value::Null);
        let parsed = match read_request(request) {
            Ok(parsed) => parsed,
            Err(message) => return protocol_error(id, &message),
        };
        let python = if parsed.language == PYTHON {
            match self.python.runtime() {
                Ok(runtime) => Some(runtime),
                Err(reason) => {
                    return protocol_error(
                        id,
                        &format!("this worker cannot run python cells: {reason}"),
                    )
                }
            }
        } else {
            None
        };
        let mut decoder = Decoder::new();
        if let Some((executor, _)) = python {
            decoder = decoder.with_foreign(crate::session::foreign_decoder(executor.clone()));
        }
        let mut inputs = Vec::new();
        if let Some(wires) = request.get("inputs") {
            let Some(wires) = wires.as_object() else {
                return protocol_error(id, "`inputs` must be an object of wire forms");
            };
            for (name, wire) in wires {
                match decoder.decode_json(wire) {
                    Ok(value) => inputs.push((name.as_str(), value)),
                    Err(error) => return protocol_error(id, &format!("input `{name}`: {error}")),
                }
            }
        }
        let mut globals = kept.take().unwrap_or_default();
        // What each input holds as it arrives, to tell the ones the cell
        // changes in place without encoding any that it does not.
        let mut sent = Vec::with_capacity(inputs.len());
        for (name, value) in inputs {
            sent.push((name, fingerprint(&value)));
            globals.set(name, value);
        }
        let notebook = match python {
            Some(_) => crate::python::worker_notebook(
                parsed.name,
                parsed.code,
                parsed.first_line,
                parsed.options.clone(),
                &|name| globals.get(name).is_some(),
            ),
            None => compile(&parsed, decoder.sources(), self.compiler),
        };
        // Python allocates outside the counting allocator: its memory is
        // the process's.
        let (evaluator, probe): (&Evaluator, fn() -> usize) = match python {
            Some((_, evaluator)) => {
                if let Some(path) = parsed.notebook {
                    self.python.notebook(evaluator, path);
                }
                (evaluator, crate::memory::held_by_process)
            }
            None => (self.evaluator, crate::memory::held),
        };
        let Some(cell) = notebook.cells().last() else {
            return protocol_error(id, "internal error: the cell is missing after compiling");
        };
        let by_timeout = parsed.timeout.map(|timeout| Instant::now() + timeout);
        let deadline = match (by_timeout, parsed.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let token = match deadline {
            Some(deadline) => CancelToken::with_deadline(deadline),
            None => CancelToken::new(),
        };
        self.state.running(&token);
        tracing::debug!(cell = parsed.name, "worker: cell started");
        self.watchdog.arm(&token, probe);
        // A cell that does not parse never runs, as in a run of the
        // notebook: its error is the analysis's, at its notebook line.
        let mut result = match cell.syntax_error() {
            Some(error) => RunResult::failed(error.clone()),
            None => evaluator.evaluate(cell, &mut globals, &token),
        };
        self.watchdog.disarm(&token);
        self.state.answering();
        if let Some(reason) = token.reason() {
            result = result.stopped(reason);
            if reason == StopReason::MemoryLimit {
                for def in cell.defs() {
                    globals.remove(def);
                }
            }
        }
        let interrupted = token.reason() == Some(StopReason::Interrupted);
        // After the memory limit, what the cell grew stays here.
        let changed = if token.reason() == Some(StopReason::MemoryLimit) {
            serde_json::Map::new()
        } else {
            changed_inputs(&sent, cell.defs(), &globals, &notebook)
        };
        let line = answer_line(
            id,
            &notebook,
            cell.defs(),
            &globals,
            &changed,
            result,
            interrupted,
        );
        if parsed.keep {
            *kept = Some(globals);
        }
        line
    }
}

/// The request's cell and limits, or why the request cannot be served.
fn read_request(request: &Value) -> Result<Request<'_>, String> {
    match request.get("protocol").and_then(Value::as_u64) {
        Some(PROTOCOL) => {}
        Some(other) => {
            return Err(format!(
                "protocol {other} is not spoken here (this worker speaks protocol {PROTOCOL})"
            ))
        }
        None => return Err(format!("a request needs `\"protocol\":{PROTOCOL}`")),
    }
    let cell = request
        .get("cell")
        .filter(|cell| cell.is_object())
        .ok_or("a request needs a `cell` object")?;
    let text = |field: &str| {
        cell.get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the cell needs a string `{field}`"))
    };
    let name = text("name")?;
    let code = text("code")?;
    let first_line = line_of(cell).ok_or("the cell needs a positive `first_line`")?;
    let language = match cell.get("language") {
        None | Some(Value::Null) => executor_core::RHAI,
        Some(language) => match language.as_str() {
            Some(known @ (executor_core::RHAI | PYTHON)) => known,
            other => {
                return Err(format!(
                    "the worker runs rhai and python cells, not {} cells",
                    other.unwrap_or("such")
                ))
            }
        },
    };
    let mut options = Vec::new();
    if let Some(Value::Array(pairs)) = cell.get("options") {
        for pair in pairs {
            if let Some([Value::String(key), Value::String(value)]) =
                pair.as_array().map(Vec::as_slice)
            {
                options.push((key.clone(), value.clone()));
            }
        }
    }
    let mut functions = Vec::new();
    if let Some(list) = request.get("functions") {
        let list = list.as_array().ok_or("`functions` must be an array")?;
        for function in list {
            let code = function
                .get("code")
                .and_then(Value::as_str)
                .ok_or("each function needs a string `code`")?;
            let first_line = match function.get("first_line") {
                None => 1,
                Some(_) => line_of(function).ok_or("a function's `first_line` must be positive")?,
            };
            functions.push(WireSource {
                code: code.into(),
                first_line,
            });
        }
    }
    let millis = |field: &str| match request.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("`{field}` must be a whole number of milliseconds")),
    };
    let timeout = millis("timeout_ms")?.map(Duration::from_millis);
    let deadline = millis("deadline_unix_ms")?.map(|ms| {
        let now = Instant::now();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(ms);
        match at.duration_since(SystemTime::now()) {
            Ok(left) => now + left,
            Err(_) => now,
        }
    });
    let keep = match request.get("keep") {
        None | Some(Value::Null) => false,
        Some(value) => value.as_bool().ok_or("`keep` must be true or false")?,
    };
    Ok(Request {
        name,
        language,
        code,
        first_line,
        options,
        notebook: request.get("notebook").and_then(Value::as_str),
        functions,
        timeout,
        deadline,
        keep,
    })
}

/// The positive `first_line` of `object`.
fn line_of(object: &Value) -> Option<u32> {
    object
        .get("first_line")?
        .as_u64()
        .and_then(|line| u32::try_from(line).ok())
        .filter(|line| *line > 0)
}

/// A notebook of the cell, last, and before it the cells defining the
/// functions it reaches (its request's and its inputs'), each code once.
/// Only the cell is ever run.
fn compile(
    request: &Request<'_>,
    from_inputs: &[WireSource],
    compiler: &NotebookCompiler,
) -> Notebook {
    let mut sources: Vec<CellSource> = Vec::new();
    let mut seen: Vec<&str> = vec![request.code];
    for function in request.functions.iter().chain(from_inputs) {
        if seen.contains(&&*function.code) {
            continue;
        }
        seen.push(&function.code);
        sources.push(CellSource::new(
            format!(" functions {}", sources.len()),
            &*function.code,
            function.first_line,
        ));
    }
    sources.push(CellSource::new(
        request.name,
        request.code,
        request.first_line,
    ));
    compiler.compile(sources)
}

/// The inputs the cell changed in place (pushed to an array it read, set a
/// key of a map), in the wire form: those whose contents no longer have
/// the fingerprint they arrived with.
fn changed_inputs(
    sent: &[(&str, blake3::Hash)],
    defs: &[String],
    globals: &Globals,
    notebook: &Notebook,
) -> serde_json::Map<String, Value> {
    let mut changed = serde_json::Map::new();
    for (name, before) in sent {
        if defs.iter().any(|def| def == name) {
            continue;
        }
        let Some(value) = globals.get(name) else {
            continue;
        };
        if fingerprint(value) == *before {
            continue;
        }
        if let Some(now) = wire::encode(value, notebook)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
        {
            changed.insert((*name).to_owned(), now);
        }
    }
    changed
}

/// A digest of what `value` holds, read in place (shared containers
/// included) without encoding or copying it.
fn fingerprint(value: &Dynamic) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    digest(value, &mut hasher, 0);
    hasher.finalize()
}

fn digest(value: &Dynamic, hasher: &mut blake3::Hasher, depth: usize) {
    let length = |hasher: &mut blake3::Hasher, n: usize| {
        hasher.update(&(n as u64).to_le_bytes());
    };
    if depth > wire::MAX_DEPTH {
        // Deeper than any wire form: its encoding fails anyway.
        hasher.update(b"deep");
    } else if value.is_unit() {
        hasher.update(b"u");
    } else if let Ok(flag) = value.as_bool() {
        hasher.update(&[b'b', u8::from(flag)]);
    } else if let Ok(int) = value.as_int() {
        hasher.update(b"i").update(&int.to_le_bytes());
    } else if let Ok(float) = value.as_float() {
        hasher.update(b"f").update(&float.to_bits().to_le_bytes());
    } else if let Ok(char) = value.as_char() {
        hasher.update(b"c").update(&u32::from(char).to_le_bytes());
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        hasher.update(b"s");
        length(hasher, text.len());
        hasher.update(text.as_bytes());
    } else if let Some(blob) = value.read_lock::<rhai::Blob>() {
        hasher.update(b"B");
        length(hasher, blob.len());
        hasher.update(&blob);
    } else if let Some(array) = value.read_lock::<rhai::Array>() {
        hasher.update(b"a");
        length(hasher, array.len());
        for item in array.iter() {
            digest(item, hasher, depth + 1);
        }
    } else if let Some(map) = value.read_lock::<rhai::Map>() {
        hasher.update(b"m");
        length(hasher, map.len());
        for (key, item) in map.iter() {
            length(hasher, key.len());
            hasher.update(key.as_bytes());
            digest(item, hasher, depth + 1);
        }
    } else if let Some(foreign) = value.read_lock::<ForeignValue>() {
        // A plugin's value: what its owner says it holds.
        let object = foreign.object();
        hasher.update(b"F");
        match object.fingerprint().or_else(|| object.encode()) {
            Some(bytes) => {
                length(hasher, bytes.len());
                hasher.update(&bytes);
            }
            None => {
                hasher.update(object.type_name().as_bytes());
            }
        }
    } else if let Some(pointer) = value.read_lock::<rhai::FnPtr>() {
        hasher.update(b"p");
        length(hasher, pointer.fn_name().len());
        hasher.update(pointer.fn_name().as_bytes());
        length(hasher, pointer.curry().len());
        for item in pointer.curry() {
            digest(item, hasher, depth + 1);
        }
    } else {
        // Other values are not looked into: their type stands for them.
        hasher.update(b"?").update(value.type_name().as_bytes());
    }
}

/// The answer line of a cell that ran.
fn answer_line(
    id: &Value,
    notebook: &Notebook,
    defs: &[String],
    globals: &Globals,
    changed: &serde_json::Map<String, Value>,
    mut result: RunResult,
    interrupted: bool,
) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(&format!(
        "{{\"protocol\":{PROTOCOL},\"id\":{id},\"defs\":{{"
    ));
    let mut no_wire = serde_json::Map::new();
    let mut first = true;
    for name in defs {
        let Some(value) = globals.get(name) else {
            continue;
        };
        let before = out.len();
        if !first {
            out.push(',');
        }
        out.push_str(&Value::from(name.as_str()).to_string());
        out.push(':');
        match wire::encode_into(value, notebook, &mut out) {
            Ok(()) => first = false,
            Err(error) => {
                out.truncate(before);
                no_wire.insert(name.clone(), Value::from(no_wire_reason(value, &error)));
            }
        }
    }
    out.push('}');
    if result.error.is_none() {
        if let Some((name, reason)) = no_wire.iter().next() {
            let cell = notebook.cells().last();
            result.error = Some(
                CellError::new(
                    ErrorKind::Runtime,
                    format!(
                        "definition `{name}` cannot leave the worker: {}",
                        reason.as_str().unwrap_or_default()
                    ),
                )
                .at(cell.map(|cell| cell.first_line()), None),
            );
        }
    }
    out.push_str(",\"no_wire\":");
    out.push_str(&Value::Object(no_wire).to_string());
    out.push_str(",\"changed\":");
    out.push_str(&serde_json::to_string(changed).unwrap_or_else(|_| "{}".to_owned()));
    out.push_str(",\"output\":");
    if let Err(error) = wire::encode_into(&result.output, notebook, &mut out) {
        out.push_str("null,\"output_no_wire\":");
        out.push_str(&Value::from(error.to_string()).to_string());
    }
    let (rendered, cut) = to_json_bounded(&result.output);
    let status = match &result.error {
        None => "ok",
        Some(error) if interrupted && error.kind == ErrorKind::Interrupted => "interrupted",
        Some(_) => "error",
    };
    let rest = json!({
        "output_json": rendered,
        "output_cut": cut,
        "stdout": result.stdout,
        "display": result.display.as_ref().map(|display| json!({"mime": display.mime, "data": display.data})),
        "error": result.error.as_ref().map(error_json),
        "status": status,
    });
    // Splice the remaining fields into the object being written.
    let rest = rest.to_string();
    out.push(',');
    out.push_str(&rest[1..]);
    out
}

/// Why a definition has no wire form, with what to install when it is a
/// Python function or class.
fn no_wire_reason(value: &Dynamic, error: &wire::WireError) -> String {
    let by_value = value.read_lock::<ForeignValue>().is_some_and(|foreign| {
        foreign.object().owner() == PYTHON
            && matches!(foreign.object().type_name(), "function" | "type")
    });
    if by_value {
        format!(
            "{error}; a function or class the notebook defines leaves the worker by value with \
             cloudpickle: install it in the worker's Python environment (pip install cloudpickle)"
        )
    } else {
        error.to_string()
    }
}

fn error_json(error: &CellError) -> Value {
    json!({
        "kind": error.kind.as_str(),
        "message": error.message,
        "line": error.line,
        "column": error.column,
        "missing_name": error.missing_name,
    })
}

/// The answer to a request that could not be served: nothing ran.
fn protocol_error(id: &Value, message: &str) -> String {
    json!({
        "protocol": PROTOCOL,
        "id": id,
        "status": "error",
        "defs": {},
        "no_wire": {},
        "changed": {},
        "output": null,
        "output_json": null,
        "output_cut": false,
        "stdout": "",
        "display": null,
        "error": {"kind": "protocol", "message": message, "line": null, "column": null, "missing_name": null},
    })
    .to_string()
}

/// One thread that stops the running cell at its deadline or over the
/// memory limit, and ends the worker when its parent goes away.
struct Watchdog {
    shared: Arc<(Mutex<Option<Watched>>, Condvar)>,
    max_bytes: usize,
}

struct Watched {
    token: CancelToken,
    deadline: Option<Instant>,
    max_bytes: usize,
    /// The memory the worker holds, as its cell's language counts it.
    held: fn() -> usize,
}

impl Watched {
    fn over_limit(&self) -> Option<StopReason> {
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            Some(StopReason::TimedOut)
        } else if (self.held)() > self.max_bytes {
            Some(StopReason::MemoryLimit)
        } else {
            None
        }
    }
}

impl Watchdog {
    fn spawn(max_bytes: usize) -> Watchdog {
        let shared = Arc::new((Mutex::new(None::<Watched>), Condvar::new()));
        let watched = shared.clone();
        let parent = parent_pid();
        let spawned = thread::Builder::new()
            .name("cellrun-watchdog".into())
            .spawn(move || watch(&watched, parent));
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the worker's watchdog; cells will not time out");
        }
        Watchdog { shared, max_bytes }
    }

    fn arm(&self, token: &CancelToken, held: fn() -> usize) {
        let (lock, wake) = &*self.shared;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(Watched {
            token: token.clone(),
            deadline: token.deadline(),
            // A cell is blamed only for memory above what the worker held
            // when it started.
            max_bytes: self.max_bytes.max(held()),
            held,
        });
        wake.notify_one();
    }

    /// Stops watching, after checking the limits once more.
    fn disarm(&self, token: &CancelToken) {
        let (lock, _) = &*self.shared;
        if let Some(watched) = lock.lock().unwrap_or_else(PoisonError::into_inner).take() {
            if let Some(reason) = watched.over_limit() {
                token.stop(reason);
            }
        }
    }
}

fn watch(shared: &(Mutex<Option<Watched>>, Condvar), parent: Option<u32>) {
    let (lock, wake) = shared;
    let mut watched = lock.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if parent.is_some() && parent_pid() != parent {
            // Nobody will read the answer, nor close the input.
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        let wait = match &*watched {
            None => IDLE_POLL,
            Some(cell) => {
                if let Some(reason) = cell.over_limit() {
                    cell.token.stop(reason);
                    *watched = None;
                    continue;
                }
                cell.deadline.map_or(POLL, |deadline| {
                    deadline.saturating_duration_since(Instant::now()).min(POLL)
                })
            }
        };
        watched = wake
            .wait_timeout(watched, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// The parent process's id, when it is a real parent (not init).
fn parent_pid() -> Option<u32> {
    #[cfg(unix)]
    {
        // SAFETY: `getppid` has no preconditions and cannot fail.
        let parent = unsafe { libc::getppid() };
        u32::try_from(parent).ok().filter(|pid| *pid > 1)
    }
    #[cfg(not(unix))]
    {
        None
    }
}
