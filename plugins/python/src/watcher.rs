//! Stops running cells from another thread.
//!
//! A cell's code runs on the thread that asked for it, which is busy in
//! Python until the code returns and cannot poll the host. One watcher
//! thread per process polls the stop check of every running cell each
//! [`STOP_POLL`] and, when one is set, raises `KeyboardInterrupt` in that
//! cell's thread (again at each poll, until the code returns: a blocking C
//! call first returns, then the next bytecode raises).
//!
//! Lock order: the GIL, then the watch list. The watcher polls the list
//! without the GIL, then takes the GIL and re-checks, under both, that the
//! cell it found stopped is still registered before it interrupts it; a
//! cell registers and deregisters holding the GIL (the calling thread holds
//! it for the whole cell, releasing it only while the cell's own code
//! lets it go), so an interrupt meant for one cell never reaches the next.

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use pyo3::Python;

use crate::Interpreter;

/// How often the watcher checks the running cells: well under the 100 ms
/// an interrupt may take.
const STOP_POLL: Duration = Duration::from_millis(5);

/// Whether a running cell must stop; asked from the watcher's thread.
///
/// The watcher asks while it holds the list of running cells, so an answer
/// must come at once: it must not block, nor take the GIL (the cell's
/// thread may hold the GIL while it waits for that list).
pub trait StopCheck: Sync {
    /// Whether the cell must stop now (Ctrl-C, its time limit, the memory limit).
    fn should_stop(&self) -> bool;
}

impl<F: Fn() -> bool + Sync> StopCheck for F {
    fn should_stop(&self) -> bool {
        self()
    }
}

/// One running cell.
struct Watched {
    key: u64,
    /// The thread running the cell (`pthread_self`, which is CPython's
    /// thread id on this platform).
    thread: u64,
    /// Valid while the cell is registered: it deregisters, under the lock,
    /// before the check it lent goes away.
    check: *const (dyn StopCheck + 'static),
}

// SAFETY: `check` points at a `StopCheck`, which is `Sync`, and is read
// only under the lock while its owner keeps it alive (see `Watched`).
unsafe impl Send for Watched {}

#[derive(Default)]
struct State {
    cells: Vec<Watched>,
    next_key: u64,
    /// The watcher sleeps until a cell registers.
    parked: bool,
}

struct Watcher {
    state: Mutex<State>,
    wake: Condvar,
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `run` (a cell's code, on this thread) while the watcher stops it
/// with `KeyboardInterrupt` once `stop` says so.
///
/// # Errors
/// When the watcher thread could not be started: nothing could stop the
/// cell, so it does not run.
pub(crate) fn run_watched<R>(
    interpreter: &'static Interpreter,
    stop: &dyn StopCheck,
    run: impl FnOnce() -> R,
) -> Result<R, String> {
    let watcher = watcher(interpreter)?;
    // SAFETY: only the lifetime is erased; the registration ends (in
    // `Registered::drop`, under the lock) before `stop` goes out of scope,
    // and the watcher reads the pointer only under that lock.
    let check: *const (dyn StopCheck + 'static) =
        unsafe { std::mem::transmute::<*const dyn StopCheck, _>(std::ptr::from_ref(stop)) };
    let key = {
        let mut state = watcher.lock();
        state.next_key += 1;
        let key = state.next_key;
        state.cells.push(Watched {
            key,
            // SAFETY: pthread_self has no preconditions.
            thread: unsafe { libc::pthread_self() } as u64,
            check,
        });
        if state.parked {
            watcher.wake.notify_one();
        }
        key
    };
    let _registered = Registered { watcher, key };
    Ok(run())
}

/// Deregisters a cell when its run ends, whichever way it ends.
struct Registered {
    watcher: &'static Watcher,
    key: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.watcher
            .lock()
            .cells
            .retain(|cell| cell.key != self.key);
    }
}

/// The process's watcher, started with the first watched cell, or why it
/// could not start.
fn watcher(interpreter: &'static Interpreter) -> Result<&'static Watcher, String> {
    static WATCHER: OnceLock<Watcher> = OnceLock::new();
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    let watcher = WATCHER.get_or_init(|| Watcher {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    });
    STARTED
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("cellrun-python-stop".into())
                .spawn(move || watch(interpreter, watcher))
                .map(drop)
                .map_err(|error| {
                    format!("cannot start the thread that stops Python cells (Ctrl-C, timeouts, the memory limit): {error}")
                })
        })
        .clone()?;
    Ok(watcher)
}

fn watch(interpreter: &'static Interpreter, watcher: &'static Watcher) {
    interpreter.keep_thread_state();
    loop {
        {
            let mut state = watcher.lock();
            while state.cells.is_empty() {
                state.parked = true;
                state = watcher
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
                state.parked = false;
            }
        }
        std::thread::sleep(STOP_POLL);
        let stopped: Vec<(u64, u64)> = watcher
            .lock()
            .cells
            .iter()
            // SAFETY: the cell is registered, so its check is alive (see `Watched`).
            .filter(|cell| unsafe { &*cell.check }.should_stop())
            .map(|cell| (cell.key, cell.thread))
            .collect();
        if stopped.is_empty() {
            continue;
        }
        Python::attach(|_py| {
            let state = watcher.lock();
            for (key, thread) in stopped {
                if state.cells.iter().any(|cell| cell.key == key) {
                    interpreter.interrupter().interrupt_thread(thread);
                }
            }
        });
    }
}
