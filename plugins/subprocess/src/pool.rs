//! The worker processes: starting them, talking to them, stopping them.
//!
//! A worker is `cellrun worker` with its standard streams piped: requests
//! go to its input, a thread reads its answers, another keeps the end of
//! what it writes on its standard error for error messages. Each worker is
//! in a process group of its own, so a Ctrl-C at the terminal reaches the
//! runner only, and the runner decides what the worker hears.
//!
//! - A cell in flight has a worker of its own; an idle worker serves the
//!   next cell (with `reuse`), else a new one starts, so there are as many
//!   workers as cells in flight, never a queue in which a cell could wait
//!   for another one's completion. Without `reuse`, a worker that answered
//!   has its input closed and is reaped once it has ended, off the path of
//!   the next cell.
//! - When the host asks a cell to stop, its worker gets SIGINT (at once for
//!   an interrupt or the memory limit; [`TIMEOUT_SLACK`] after a timeout,
//!   since the worker has the same deadline and stops by itself; never
//!   before its `ready` line, when it has no handler yet), and the answer
//!   it then writes is the cell's. A worker that has not answered
//!   [`GRACE`] after the stop is killed (SIGKILL) and the cell reports the
//!   host's reason.
//! - A worker whose output ends before its answer (killed from outside,
//!   crashed) fails its cell with how it ended and the last lines it wrote
//!   on its standard error; the next cell gets a new worker.
//! - When the run finishes, every worker's input is closed and each is
//!   waited for (killed after [`GRACE`]), so no worker outlives the run. A
//!   worker whose runner dies without that (SIGKILL, a second Ctrl-C) ends
//!   by itself when it sees its parent gone.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, BufWriter, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use executor_abi::sdk::{Logger, StopReason};
use worker_client::{is_ready_line, Request};

use crate::Config;

/// How often a waiting cell looks at the host's stop reason.
const POLL: Duration = Duration::from_millis(5);

/// How long after a timeout the worker may take to report it itself.
pub const TIMEOUT_SLACK: Duration = Duration::from_millis(200);

/// How long a worker may take to answer after a stop, or to end once its
/// input is closed, before it is killed.
pub const GRACE: Duration = Duration::from_secs(2);

/// How much of a worker's standard error is kept for messages.
const STDERR_TAIL: usize = 2048;

/// How waiting for a worker's answer ended.
#[derive(Debug)]
pub enum Waited {
    /// The worker answered with this line; `stopped` is the host's reason
    /// when the host asked the cell to stop meanwhile.
    Answer {
        /// The answer line.
        line: String,
        /// The host's stop reason, if it asked for a stop.
        stopped: Option<StopReason>,
    },
    /// The host asked the cell to stop and the worker did not answer in
    /// time: it was killed.
    Stopped(StopReason),
    /// The worker ended without answering; says how ("was killed by
    /// signal 9 (SIGKILL) before it answered").
    Died(String),
}

/// One `cellrun worker` process.
pub struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    /// The thread reading standard error, until the process ends.
    stderr_reader: Option<thread::JoinHandle<()>>,
    ready: bool,
    /// Whether the process was waited for.
    reaped: bool,
}

impl Worker {
    /// Starts a worker; its `ready` line is read with the first answer.
    ///
    /// # Errors
    /// When the process cannot start.
    pub fn spawn(config: &Config, logger: &Logger) -> io::Result<Worker> {
        let mut command = Command::new(&config.cellrun);
        command.arg("worker");
        if let Some(mib) = config.max_memory_mib {
            command.arg("--max-memory").arg(mib.to_string());
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("{}: {error}", config.cellrun.display()),
                )
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the worker's streams are not piped"));
        };
        let (send, lines) = mpsc::channel();
        thread::Builder::new()
            .name("subprocess-answers".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { return };
                    if send.send(line).is_err() {
                        return;
                    }
                }
            })?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        let kept = tail.clone();
        let logger = logger.clone();
        let pid = child.id();
        let stderr_reader = thread::Builder::new()
            .name("subprocess-stderr".into())
            .spawn(move || keep_tail(stderr, &kept, &logger, pid))?;
        Ok(Worker {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: tail,
            stderr_reader: Some(stderr_reader),
            ready: false,
            reaped: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one request line.
    ///
    /// # Errors
    /// When the worker's input is closed (the worker ended).
    pub fn send(&mut self, request: &Request) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        request.write_to(&mut BufWriter::with_capacity(1 << 16, stdin))
    }

    /// Whether the process is still running; reaps it once it ended.
    fn is_running(&mut self) -> bool {
        if !self.reaped && !matches!(self.child.try_wait(), Ok(None)) {
            self.reaped = true;
        }
        !self.reaped
    }

    /// Waits for the answer to the request sent, passing on the stops
    /// `stop` reports (see the module docs).
    pub fn wait_answer(&mut self, stop: impl Fn() -> Option<StopReason>) -> Waited {
        let mut stopped: Option<(StopReason, Instant, bool)> = None;
        loop {
            match self.lines.recv_timeout(POLL) {
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) if !self.ready && is_ready_line(&line) => {
                    self.ready = true;
                    continue;
                }
                Ok(line) => {
                    return Waited::Answer {
                        line,
                        stopped: stopped.map(|(reason, _, _)| reason),
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return match stopped {
                        // Told to stop, it ended instead of answering.
                        Some((reason, _, _)) => {
                            self.wait_for(GRACE);
                            Waited::Stopped(reason)
                        }
                        None => Waited::Died(self.death()),
                    };
                }
            }
            if stopped.is_none() {
                stopped = stop().map(|reason| (reason, Instant::now(), false));
            }
            if let Some((reason, since, signalled)) = &mut stopped {
                let waited = since.elapsed();
                if waited >= GRACE {
                    self.kill();
                    return Waited::Stopped(*reason);
                }
                // Before its ready line the worker has no handler yet, and
                // SIGINT would end it instead of interrupting the cell.
                let due = *reason != StopReason::Timeout || waited >= TIMEOUT_SLACK;
                if !*signalled && due && self.ready {
                    self.interrupt();
                    *signalled = true;
                }
            }
        }
    }

    /// Sends SIGINT: the worker interrupts its cell and answers.
    fn interrupt(&self) {
        if self.reaped {
            // Its pid may name another process by now.
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: `kill` has no memory-safety preconditions; the pid is
            // our child's, not yet waited for, so it names no other process.
            unsafe {
                libc::kill(pid, libc::SIGINT);
            }
        }
    }

    /// Kills the process and waits for it.
    fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }

    /// How the process ended, once its output ended: "was killed by signal
    /// 9 (SIGKILL) before it answered", with the end of its standard error.
    fn death(&mut self) -> String {
        let status = self.wait_for(GRACE);
        let how = match status {
            Some(status) => describe(status),
            None => "stopped answering".to_owned(),
        };
        // The process ended, so its standard error did: read to the end.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let tail = self.stderr_tail();
        if tail.is_empty() {
            format!("(pid {}) {how} before it answered", self.pid())
        } else {
            format!(
                "(pid {}) {how} before it answered; it said: {tail}",
                self.pid()
            )
        }
    }

    /// Waits at most `patience` for the process to end, then kills it; the
    /// status when it ended by itself.
    fn wait_for(&mut self, patience: Duration) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        let start = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    return Some(status);
                }
                Ok(None) if start.elapsed() < patience => thread::sleep(POLL),
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    /// Closes the input (the worker then ends) and waits for the process,
    /// killing it after [`GRACE`].
    pub fn close(mut self) {
        drop(self.stdin.take());
        self.wait_for(GRACE);
    }

    /// The last lines the worker wrote on its standard error, on one line.
    fn stderr_tail(&self) -> String {
        let bytes: Vec<u8> = self
            .stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        let text = String::from_utf8_lossy(&bytes);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps the last [`STDERR_TAIL`] bytes of `stderr`, logging each line at
/// debug level.
fn keep_tail(stderr: impl Read, tail: &Mutex<VecDeque<u8>>, logger: &Logger, pid: u32) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        logger.debug(&format!("worker {pid}: {line}"));
        let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.extend(line.bytes().chain([b'\n']));
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
    }
}

/// "was killed by signal 9 (SIGKILL)", "exited with status 2".
fn describe(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGINT => " (SIGINT)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGBUS => " (SIGBUS)",
            _ => "",
        };
        format!("was killed by signal {signal}{name}")
    } else {
        match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("ended ({status})"),
        }
    }
}

/// The workers of one executor.
pub struct Pool {
    config: Config,
    logger: Logger,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Workers that answered and wait for a cell (with `reuse`).
    idle: Vec<Worker>,
    /// Workers whose input is closed, ending (without `reuse`): reaped as
    /// they end, not while a cell waits.
    retiring: Vec<Worker>,
}

impl Pool {
    /// A pool starting workers as `config` says.
    pub fn new(config: Config, logger: Logger) -> Pool {
        Pool {
            config,
            logger,
            state: Mutex::new(State::default()),
        }
    }

    /// Sends `request` to an idle worker, or to a new one, and returns it.
    ///
    /// An idle worker that ended meanwhile (a signal from outside) is
    /// dropped and the next one tried.
    ///
    /// # Errors
    /// When a new worker cannot start.
    pub fn send(&self, request: &Request) -> io::Result<Worker> {
        self.lock().retiring.retain_mut(Worker::is_running);
        while let Some(mut worker) = self.lock().idle.pop() {
            if worker.is_running() && worker.send(request).is_ok() {
                return Ok(worker);
            }
        }
        let mut worker = Worker::spawn(&self.config, &self.logger)?;
        // A new worker that cannot take the request has ended: waiting for
        // its answer says how, with what it wrote on its standard error.
        let _ = worker.send(request);
        Ok(worker)
    }

    /// Starts a worker for the first cell when none is idle, so that its
    /// start overlaps with what the run does before that cell.
    ///
    /// # Errors
    /// When the worker cannot start.
    pub fn warm(&self) -> io::Result<()> {
        if self.lock().idle.is_empty() {
            let worker = Worker::spawn(&self.config, &self.logger)?;
            self.lock().idle.push(worker);
        }
        Ok(())
    }

    /// Takes back a worker that answered.
    pub fn release(&self, mut worker: Worker) {
        if self.config.reuse {
            self.lock().idle.push(worker);
        } else {
            drop(worker.stdin.take());
            self.lock().retiring.push(worker);
        }
    }

    /// Ends a worker that must not serve again.
    pub fn discard(&self, worker: Worker) {
        drop(worker);
    }

    /// Ends every idle worker and waits for the ending ones.
    pub fn shutdown(&self) {
        let (idle, retiring) = {
            let mut state = self.lock();
            (
                std::mem::take(&mut state.idle),
                std::mem::take(&mut state.retiring),
            )
        };
        // Close every input first, so the workers end together.
        let closing: Vec<Worker> = idle
            .into_iter()
            .chain(retiring)
            .map(|mut worker| {
                drop(worker.stdin.take());
                worker
            })
            .collect();
        for worker in closing {
            worker.close();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
