//! [`RunControl`]: interrupting a run and timing out its cells.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use executor_core::{CancelToken, StopReason};

/// A bound on the process's memory while cells run.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLimit {
    /// The most bytes the process may hold while a cell runs.
    pub bytes: usize,
    /// Reports the bytes the process holds now (for instance from a
    /// counting allocator). Called every few milliseconds while a cell runs.
    pub probe: fn() -> usize,
}

/// How often the watchdog looks at the running cell's clock and memory.
///
/// The watchdog polls instead of being woken per cell: arming it is then a
/// store under an uncontended lock, with no system call, which matters when
/// thousands of trivial cells run.
const POLL: Duration = Duration::from_millis(5);

/// Controls a run from outside: interrupts it, and stops cells that run too
/// long or take too much memory.
///
/// [`RunControl::interrupt`] may be called from any thread, such as a
/// signal handler's: it halts the queue and stops the running cell. With a
/// timeout or a memory limit, one watchdog thread, polling every few
/// milliseconds, stops a cell that goes past it; arming it per cell is a
/// store under an uncontended lock.
pub struct RunControl {
    interrupted: AtomicBool,
    active: Mutex<Option<CancelToken>>,
    watchdog: Option<Watchdog>,
}

impl RunControl {
    /// A control with an optional per-cell time limit.
    pub fn new(timeout: Option<Duration>) -> RunControl {
        RunControl::with_limits(timeout, None)
    }

    /// A control with an optional per-cell time limit and memory limit.
    pub fn with_limits(timeout: Option<Duration>, memory: Option<MemoryLimit>) -> RunControl {
        let watchdog =
            (timeout.is_some() || memory.is_some()).then(|| Watchdog::spawn(timeout, memory));
        RunControl {
            interrupted: AtomicBool::new(false),
            active: Mutex::new(None),
            watchdog,
        }
    }

    /// Interrupts the run: the running cell is stopped, and no other starts.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(token) = active.as_ref() {
            token.stop(StopReason::Interrupted);
        }
    }

    /// Whether [`RunControl::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// A token for a cell about to run, armed for interrupts and the limits.
    pub(crate) fn begin(&self) -> CancelToken {
        let timeout = self.watchdog.as_ref().and_then(|watchdog| watchdog.timeout);
        let token = match timeout {
            Some(timeout) => CancelToken::with_deadline(Instant::now() + timeout),
            None => CancelToken::new(),
        };
        *self.active.lock().unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        if self.is_interrupted() {
            token.stop(StopReason::Interrupted);
        }
        if let Some(watchdog) = &self.watchdog {
            watchdog.arm(token.clone());
        }
        token
    }

    /// Disarms the token of the cell that just finished, after checking the
    /// limits once more: a cell shorter than the watchdog's period is
    /// checked too, and a cell that ends over the memory limit is the one
    /// blamed, not the next one.
    pub(crate) fn end(&self, token: &CancelToken) {
        if let Some(watchdog) = &self.watchdog {
            let watched = watchdog.disarm();
            if let Some(cell) = watched {
                if let Some(reason) = cell.over_limit(Instant::now(), watchdog.memory) {
                    token.stop(reason);
                }
            }
        }
        *self.active.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Default for RunControl {
    fn default() -> RunControl {
        RunControl::new(None)
    }
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunControl")
            .field("interrupted", &self.is_interrupted())
            .field(
                "timeout",
                &self.watchdog.as_ref().and_then(|watchdog| watchdog.timeout),
            )
            .finish()
    }
}

/// The cell the watchdog is watching, if any.
#[derive(Default)]
struct Watched {
    token: Option<WatchedCell>,
    shutdown: bool,
}

/// One running cell's limits.
struct WatchedCell {
    deadline: Option<Instant>,
    /// The heap the cell may leave the process holding: the limit, or what
    /// the process held when the cell started if that was more (the cell
    /// that crossed the limit is blamed, not the cells after it).
    max_bytes: usize,
    token: CancelToken,
}

impl WatchedCell {
    /// Why the cell must stop at `now`, if it must.
    fn over_limit(&self, now: Instant, memory: Option<MemoryLimit>) -> Option<StopReason> {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            Some(StopReason::TimedOut)
        } else if memory.is_some_and(|memory| (memory.probe)() > self.max_bytes) {
            Some(StopReason::MemoryLimit)
        } else {
            None
        }
    }
}

/// One thread that stops the watched cell at its deadline or over the memory limit.
struct Watchdog {
    timeout: Option<Duration>,
    memory: Option<MemoryLimit>,
    shared: Arc<(Mutex<Watched>, Condvar)>,
}

impl Watchdog {
    fn spawn(timeout: Option<Duration>, memory: Option<MemoryLimit>) -> Watchdog {
        let shared = Arc::new((Mutex::new(Watched::default()), Condvar::new()));
        let thread_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name("cellrun-watchdog".into())
            .spawn(move || watch(&thread_shared, memory));
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the watchdog; cells will not time out or be stopped over the memory limit");
        }
        Watchdog {
            timeout,
            memory,
            shared,
        }
    }

    fn arm(&self, token: CancelToken) {
        let (lock, _) = &*self.shared;
        let deadline = token.deadline();
        let max_bytes = self
            .memory
            .map_or(usize::MAX, |memory| memory.bytes.max((memory.probe)()));
        lock.lock().unwrap_or_else(PoisonError::into_inner).token = Some(WatchedCell {
            deadline,
            max_bytes,
            token,
        });
    }

    /// Stops watching; returns the cell watched, unless the watchdog already
    /// stopped it.
    fn disarm(&self) -> Option<WatchedCell> {
        let (lock, _) = &*self.shared;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .token
            .take()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock.lock().unwrap_or_else(PoisonError::into_inner).shutdown = true;
        wake.notify_one();
    }
}

fn watch(shared: &(Mutex<Watched>, Condvar), memory: Option<MemoryLimit>) {
    let (lock, wake) = shared;
    let mut watched = lock.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if watched.shutdown {
            return;
        }
        let Some(cell) = &watched.token else {
            watched = wake
                .wait_timeout(watched, POLL)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        };
        let now = Instant::now();
        if let Some(reason) = cell.over_limit(now, memory) {
            cell.token.stop(reason);
            watched.token = None;
            continue;
        }
        let wait = cell
            .deadline
            .map_or(POLL, |deadline| (deadline - now).min(POLL));
        watched = wake
            .wait_timeout(watched, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupt_stops_the_active_cell_and_later_ones() {
        let control = RunControl::new(None);
        let token = control.begin();
        control.interrupt();
        assert_eq!(token.reason(), Some(StopReason::Interrupted));
        control.end(&token);
        assert_eq!(control.begin().reason(), Some(StopReason::Interrupted));
    }

    #[test]
    fn watchdog_stops_a_cell_over_the_memory_limit() {
        static HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let limit = MemoryLimit {
            bytes: 1000,
            probe: || HELD.load(Ordering::SeqCst),
        };
        let control = RunControl::with_limits(None, Some(limit));
        let token = control.begin();
        HELD.store(5000, Ordering::SeqCst);
        let start = Instant::now();
        while !token.is_stopped() && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(token.reason(), Some(StopReason::MemoryLimit));
        control.end(&token);
    }

    // See: issue 12, point 11.
    #[test]
    fn issue_12_limits_are_checked_when_a_cell_ends_and_blame_the_cell_that_crossed() {
        let control = RunControl::new(Some(Duration::from_nanos(1)));
        let token = control.begin();
        control.end(&token);
        assert_eq!(token.reason(), Some(StopReason::TimedOut));

        static HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let limit = MemoryLimit {
            bytes: 1000,
            probe: || HELD.load(Ordering::SeqCst),
        };
        let control = RunControl::with_limits(None, Some(limit));
        let grower = control.begin();
        HELD.store(5000, Ordering::SeqCst);
        control.end(&grower);
        assert_eq!(grower.reason(), Some(StopReason::MemoryLimit));
        // The next cell starts over the limit without adding to it.
        let next = control.begin();
        control.end(&next);
        assert_eq!(next.reason(), None);
        let adds_more = control.begin();
        HELD.store(6000, Ordering::SeqCst);
        control.end(&adds_more);
        assert_eq!(adds_more.reason(), Some(StopReason::MemoryLimit));
    }

    #[test]
    fn watchdog_stops_a_cell_past_its_deadline_only() {
        let control = RunControl::new(Some(Duration::from_millis(500)));
        let quick = control.begin();
        control.end(&quick);
        let slow = control.begin();
        let start = Instant::now();
        while !slow.is_stopped() && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(slow.reason(), Some(StopReason::TimedOut));
        assert_eq!(quick.reason(), None, "a disarmed token never times out");
    }
}
