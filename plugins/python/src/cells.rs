//! One cell's run: inputs in, code, definitions out, with interrupts.
//!
//! The host's globals are the truth between cells: before a cell runs, the
//! values of the names it reads are bound in the interpreter's dictionary
//! (so `--strict` copies and cache restores reach the code); after it runs,
//! its definitions go back to the host as Python objects, and its private
//! names are unbound, as marimo deletes them.

use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::{CellRun, Failure, FailureKind, Interpreter};

/// How often a running cell checks for a stop request: well under the
/// 100 ms an interrupt may take.
const STOP_POLL: Duration = Duration::from_millis(5);

/// How long a thread waiting for the other one (for a cell's result, for
/// the next cell) looks before it sleeps: a trivial cell takes less, and a
/// sleep and wake-up on each side costs more than the cell itself. The look
/// yields the core between tries, so it takes nothing from a thread that
/// has work.
const LOOK_BEFORE_SLEEP: Duration = Duration::from_micros(50);

/// Waits up to [`LOOK_BEFORE_SLEEP`] for a message on `receiver`, spinning
/// for the first few tries (a message that is microseconds away arrives
/// without a system call) and yielding the core between the later ones:
/// the message, or the reason none came.
fn look<T>(receiver: &mpsc::Receiver<T>) -> Result<T, TryRecvError> {
    let until = Instant::now() + LOOK_BEFORE_SLEEP;
    let mut tries = 0_u32;
    loop {
        match receiver.try_recv() {
            Err(TryRecvError::Empty) if Instant::now() < until => {
                tries += 1;
                if tries < 64 {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            other => return other,
        }
    }
}

/// What the plugin needs of a cell.
pub struct CellCode<'a> {
    /// The cell's code.
    pub code: &'a str,
    /// The notebook line of the code's first line.
    pub first_line: u32,
    /// Names the cell reads.
    pub refs: &'a [String],
    /// Public names the cell defines.
    pub defs: &'a [String],
    /// Private names the cell defines.
    pub private_defs: &'a [String],
}

/// The host's globals, as far as Python values go.
pub trait HostGlobals {
    /// The Python object bound to `name`, when the host has one.
    fn get(&self, name: &str) -> Option<Py<PyAny>>;
    /// Binds `name` to a Python object.
    fn set(&mut self, name: &str, value: Py<PyAny>);
    /// Whether the running cell must stop (Ctrl-C, a timeout).
    fn should_stop(&self) -> bool {
        false
    }
    /// When the object bound to `name` is a copy made for this cell alone
    /// (`--strict`), the object it copies, which the name is bound to again
    /// once the cell ran: a function of another cell that reads the name
    /// when called must not see the copy.
    fn original(&self, name: &str) -> Option<Py<PyAny>> {
        let _ = name;
        None
    }
    /// Whether the cell's definitions must be dropped rather than kept: it
    /// was stopped over the memory limit, and what it made would stop the
    /// cells after it too.
    fn drops_definitions(&self) -> bool {
        false
    }
}

/// Runs `cell` from `notebook` (its path, for tracebacks) against `host`.
///
/// The code runs on the plugin's one Python thread, the same for every
/// cell, while the calling thread polls [`HostGlobals::should_stop`]; when
/// it turns true the code
/// gets `KeyboardInterrupt`, repeated until it returns (a blocking C call
/// first returns, then the next bytecode raises).
pub fn run_cell(
    interpreter: &'static Interpreter,
    notebook: &str,
    cell: &CellCode<'_>,
    host: &mut dyn HostGlobals,
) -> CellRun {
    interpreter.keep_thread_state();
    // A refusal before this cell is not this cell's.
    let _ = crate::memory::take_refused();
    for name in cell.refs {
        if let Some(value) = host.get(name) {
            interpreter.set_global(name, &value);
        }
    }
    let (reply, replies) = mpsc::channel();
    let job = Job {
        code: cell.code.to_owned(),
        filename: notebook.to_owned(),
        first_line: cell.first_line,
        reply,
    };
    let run = match python_thread(interpreter).send(job) {
        Err(_) => None,
        Ok(()) => loop {
            let reply = match look(&replies) {
                Ok(run) => Ok(run),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => replies.recv_timeout(STOP_POLL),
            };
            match reply {
                Ok(run) => break Some(run),
                Err(RecvTimeoutError::Timeout) => {
                    if host.should_stop() {
                        interpreter.interrupter().interrupt();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break None,
            }
        },
    };
    let mut run = run.unwrap_or_else(|| CellRun {
        output: None,
        stdout: String::new(),
        failure: Some(Failure {
            kind: FailureKind::Runtime,
            message: "the Python thread stopped".to_owned(),
            line: None,
            traceback: String::new(),
            missing_name: None,
        }),
    });
    if let Some(failure) = &mut run.failure {
        if failure.message.starts_with("MemoryError") {
            if let (Some(size), Some(limit)) =
                (crate::memory::take_refused(), crate::memory::limit())
            {
                failure.message = format!(
                    "MemoryError: one allocation of {size} bytes is larger than the run's memory limit ({} MiB)",
                    limit >> 20
                );
            }
        }
    }
    for name in cell.refs {
        if !cell.defs.contains(name) {
            if let Some(original) = host.original(name) {
                interpreter.set_global(name, &original);
            }
        }
    }
    if host.drops_definitions() {
        for name in cell.defs.iter().chain(cell.private_defs) {
            interpreter.remove_global(name);
        }
        interpreter.collect_garbage();
        return run;
    }
    for name in cell.defs {
        if let Some(value) = interpreter.global(name) {
            host.set(name, value);
        }
    }
    for name in cell.private_defs {
        interpreter.remove_global(name);
    }
    run
}

/// A cell's code for the Python thread.
struct Job {
    code: String,
    filename: String,
    first_line: u32,
    reply: mpsc::Sender<CellRun>,
}

/// The thread every cell's code runs on, started with the first cell.
fn python_thread(interpreter: &'static Interpreter) -> mpsc::Sender<Job> {
    static THREAD: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    THREAD
        .get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Job>();
            let started = std::thread::Builder::new()
                .name("cellrun-python".into())
                .stack_size(PYTHON_STACK)
                .spawn(move || {
                    interpreter.keep_thread_state();
                    loop {
                        let job = match look(&queue) {
                            Ok(job) => job,
                            Err(TryRecvError::Disconnected) => break,
                            Err(TryRecvError::Empty) => match queue.recv() {
                                Ok(job) => job,
                                Err(_) => break,
                            },
                        };
                        let run = interpreter.run(&job.code, &job.filename, job.first_line);
                        let _ = job.reply.send(run);
                    }
                });
            if let Err(error) = started {
                tracing_free_warning(&error);
            }
            Mutex::new(jobs)
        })
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

/// The Python thread's stack: deep recursion hits Python's recursion
/// limit long before it.
const PYTHON_STACK: usize = 64 << 20;

fn tracing_free_warning(error: &std::io::Error) {
    eprintln!("cellrun python plugin: cannot start the Python thread: {error}");
}
