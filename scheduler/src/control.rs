//! [`RunControl`]: interrupting a run and timing out its cells, one or several at a time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Heap accounting per running cell, so that with several cells running the
/// one that grew the heap is the one stopped over the memory limit.
///
/// A counting allocator keeps one counter per slot and adds what the
/// thread holding the slot allocates (and subtracts what it frees).
#[derive(Clone, Copy, Debug)]
pub struct CellMemory {
    /// Starts counting for a cell that runs on the calling thread; returns
    /// the slot, or `None` when every slot is taken (the cell then counts
    /// as having grown nothing).
    pub enter: fn() -> Option<usize>,
    /// The bytes allocated under `slot` since `enter`, less those freed.
    pub held_by: fn(usize) -> isize,
    /// Stops counting under `slot` (on the thread that entered it).
    pub leave: fn(usize),
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
/// signal handler's: it halts the queue and stops every running cell. With a
/// timeout or a memory limit, one watchdog thread, polling every few
/// milliseconds, stops a cell that goes past it; arming it per cell is a
/// store under an uncontended lock.
///
/// Several cells may be active at once (a parallel run): each has its own
/// token and deadline. The memory limit is the run's: when the process goes
/// over it, the running cell that grew the heap most is stopped, one at a
/// time, when [`RunControl::with_cell_memory`] says who holds what; without
/// it, every running cell that started below the limit is stopped.
pub struct RunControl {
    interrupted: AtomicBool,
    active: Mutex<Vec<(u64, CancelToken)>>,
    next_key: AtomicU64,
    watchdog: Option<Watchdog>,
}

/// The token of a cell that [`RunControl::begin`] armed, until
/// [`RunControl::end`] disarms it.
#[derive(Debug)]
pub(crate) struct ActiveCell {
    key: u64,
    slot: Option<usize>,
    token: CancelToken,
}

impl std::ops::Deref for ActiveCell {
    type Target = CancelToken;

    fn deref(&self) -> &CancelToken {
        &self.token
    }
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
            active: Mutex::new(Vec::new()),
            next_key: AtomicU64::new(0),
            watchdog,
        }
    }

    /// Counts the heap per running cell with `accounting`.
    pub fn with_cell_memory(self, accounting: CellMemory) -> RunControl {
        if let Some(watchdog) = &self.watchdog {
            let (lock, _) = &*watchdog.shared;
            lock.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .accounting = Some(accounting);
        }
        self
    }

    /// Interrupts the run: every running cell is stopped, and no other starts.
    pub fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        let active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        for (_, token) in active.iter() {
            token.stop(StopReason::Interrupted);
        }
    }

    /// Whether [`RunControl::interrupt`] was called.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// A token for a cell about to run, armed for interrupts and the limits.
    pub(crate) fn begin(&self) -> ActiveCell {
        let timeout = self.watchdog.as_ref().and_then(|watchdog| watchdog.timeout);
        let token = match timeout {
            Some(timeout) => CancelToken::with_deadline(Instant::now() + timeout),
            None => CancelToken::new(),
        };
        let key = self.next_key.fetch_add(1, Ordering::Relaxed);
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((key, token.clone()));
        // Checked after the token is listed: an interrupt either sees the
        // token or is seen here.
        if self.is_interrupted() {
            token.stop(StopReason::Interrupted);
        }
        let slot = self
            .watchdog
            .as_ref()
            .and_then(|watchdog| watchdog.arm(key, token.clone()));
        ActiveCell { key, slot, token }
    }

    /// [`end_releasing`](RunControl::end_releasing) with nothing to free.
    #[cfg(test)]
    pub(crate) fn end(&self, cell: &ActiveCell) {
        self.end_releasing(cell, |_| {});
    }

    /// Disarms the token of the cell that just finished, after checking the
    /// limits once more: a cell shorter than the watchdog's period is
    /// checked too, and a cell that ends over the memory limit is the one
    /// blamed, not the next one. `release` is called with the cell's final
    /// token before the watch lets go: a cell stopped over the memory limit
    /// frees what it held there, and until then no other running cell is
    /// stopped for memory the stopped one still holds.
    pub(crate) fn end_releasing(&self, cell: &ActiveCell, release: impl FnOnce(&CancelToken)) {
        if let Some(watchdog) = &self.watchdog {
            if let Some(reason) = watchdog.disarm(cell.key, cell.slot) {
                cell.token.stop(reason);
            }
        }
        release(&cell.token);
        if let Some(watchdog) = &self.watchdog {
            watchdog.released(cell.key);
        }
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = active.iter().position(|(key, _)| *key == cell.key) {
            active.swap_remove(at);
        }
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

/// The cells the watchdog is watching.
#[derive(Default)]
struct Watched {
    cells: Vec<WatchedCell>,
    accounting: Option<CellMemory>,
    /// The cell stopped over the memory limit that has not ended yet: no
    /// other is stopped for memory before it frees what it held.
    memory_stop: Option<u64>,
    shutdown: bool,
}

impl Watched {
    /// Whether `cell`, ending over its memory bound, is what put the
    /// process over it: without what it grew the heap by, the process
    /// would be within the bound. Uncounted, the ending cell is blamed.
    fn crossed(&self, cell: &WatchedCell, memory: Option<MemoryLimit>) -> bool {
        let (Some(accounting), Some(memory)) = (self.accounting, memory) else {
            return true;
        };
        let growth = cell.slot.map_or(0, accounting.held_by);
        let held = (memory.probe)() as isize;
        held.saturating_sub(growth) <= cell.max_bytes as isize
    }

    /// Whether `cell` grew the heap by at least its share of how far
    /// `held` is over its bound, `n_over` cells being over theirs.
    fn grew_share(&self, cell: &WatchedCell, held: Option<usize>, n_over: usize) -> bool {
        let (Some(accounting), Some(held)) = (self.accounting, held) else {
            return true;
        };
        let growth = cell.slot.map_or(0, accounting.held_by);
        let excess = held.saturating_sub(cell.max_bytes) as isize;
        growth > 0 && growth.saturating_mul(n_over as isize) >= excess
    }

    /// Stops, over the memory limit, the watched cell that grew the heap
    /// most; no other is stopped for memory before it frees what it held.
    fn stop_the_biggest(&mut self) {
        let Some(accounting) = self.accounting else {
            return;
        };
        let biggest = self
            .cells
            .iter()
            .enumerate()
            .max_by_key(|(_, cell)| cell.slot.map_or(0, accounting.held_by))
            .map(|(at, _)| at);
        if let Some(at) = biggest {
            let cell = self.cells.swap_remove(at);
            self.memory_stop = Some(cell.key);
            cell.token.stop(StopReason::MemoryLimit);
        }
    }

    /// Whether, of the cells over their memory bound at `held` bytes, the
    /// one to stop is `cell`: it grew the heap at least as much as every
    /// other watched cell, or nobody counts per cell.
    fn grew_most(&self, cell: &WatchedCell) -> bool {
        let Some(accounting) = self.accounting else {
            return true;
        };
        let growth = |cell: &WatchedCell| cell.slot.map_or(0, accounting.held_by);
        let own = growth(cell);
        self.cells.iter().all(|other| growth(other) <= own)
    }
}

/// One running cell's limits.
struct WatchedCell {
    key: u64,
    /// The cell's heap counter, when counted.
    slot: Option<usize>,
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
        self.over_limit_holding(now, memory.map(|memory| (memory.probe)()))
    }

    /// Why the cell must stop at `now` with the process holding `held` bytes.
    fn over_limit_holding(&self, now: Instant, held: Option<usize>) -> Option<StopReason> {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            Some(StopReason::TimedOut)
        } else if held.is_some_and(|held| held > self.max_bytes) {
            Some(StopReason::MemoryLimit)
        } else {
            None
        }
    }
}

/// One thread that stops the watched cells at their deadlines or over the memory limit.
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

    /// Watches the cell of `token` under `key`; returns its heap counter's
    /// slot when cells are counted.
    fn arm(&self, key: u64, token: CancelToken) -> Option<usize> {
        let (lock, _) = &*self.shared;
        let deadline = token.deadline();
        let max_bytes = self
            .memory
            .map_or(usize::MAX, |memory| memory.bytes.max((memory.probe)()));
        let mut watched = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = watched
            .accounting
            .and_then(|accounting| (accounting.enter)());
        watched.cells.push(WatchedCell {
            key,
            slot,
            deadline,
            max_bytes,
            token,
        });
        slot
    }

    /// Stops watching the cell armed under `key`, and says why it must stop
    /// as it ends (past its deadline, or over the memory limit having grown
    /// the heap most), unless the watchdog already stopped it.
    fn disarm(&self, key: u64, slot: Option<usize>) -> Option<StopReason> {
        let (lock, _) = &*self.shared;
        let mut watched = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let reason = match watched.cells.iter().position(|cell| cell.key == key) {
            None => None,
            Some(at) => {
                let cell = watched.cells.swap_remove(at);
                let reason = match cell.over_limit(Instant::now(), self.memory) {
                    // Another cell was stopped for the memory and has not
                    // freed it yet, or this one did not cross the bound.
                    Some(StopReason::MemoryLimit)
                        if watched.memory_stop.is_some()
                            || !watched.crossed(&cell, self.memory) =>
                    {
                        None
                    }
                    // Another running cell grew the heap more: it is the
                    // one stopped, not this one that added a little.
                    Some(StopReason::MemoryLimit) if !watched.grew_most(&cell) => {
                        watched.stop_the_biggest();
                        None
                    }
                    reason => reason,
                };
                if reason == Some(StopReason::MemoryLimit) {
                    watched.memory_stop = Some(key);
                }
                reason
            }
        };
        if let (Some(slot), Some(accounting)) = (slot, watched.accounting) {
            (accounting.leave)(slot);
        }
        reason
    }
}

impl Watchdog {
    /// The cell armed under `key` freed what it held: if it was stopped over
    /// the memory limit, other cells may be stopped for memory again.
    fn released(&self, key: u64) {
        let (lock, _) = &*self.shared;
        let mut watched = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if watched.memory_stop == Some(key) {
            watched.memory_stop = None;
        }
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
        let now = Instant::now();
        let held = (!watched.cells.is_empty())
            .then(|| memory.map(|memory| (memory.probe)()))
            .flatten();
        // Cells past their deadline stop, and, over the memory limit, the
        // cell that grew the heap most (or, uncounted, every cell over
        // its bound). Stopped cells leave the watch.
        let mut wait = POLL;
        let mut stopped = Vec::new();
        for cell in &watched.cells {
            match cell.over_limit_holding(now, None) {
                Some(reason) => stopped.push((cell.key, reason)),
                None => {
                    if let Some(deadline) = cell.deadline {
                        wait = wait.min(deadline - now);
                    }
                }
            }
        }
        let over_memory = |cell: &&WatchedCell| held.is_some_and(|held| held > cell.max_bytes);
        if watched.accounting.is_none() {
            stopped.extend(
                watched
                    .cells
                    .iter()
                    .filter(over_memory)
                    .map(|cell| (cell.key, StopReason::MemoryLimit)),
            );
        } else if watched.memory_stop.is_none() {
            // Memory a finished cell left until its definitions are dropped
            // is nobody's growth: a culprit grew its share of the excess.
            let over: Vec<&WatchedCell> = watched.cells.iter().filter(over_memory).collect();
            let culprit = over
                .iter()
                .find(|cell| watched.grew_most(cell) && watched.grew_share(cell, held, over.len()))
                .map(|cell| cell.key);
            if let Some(key) = culprit {
                stopped.push((key, StopReason::MemoryLimit));
                watched.memory_stop = Some(key);
            }
        }
        for (key, reason) in stopped {
            if let Some(at) = watched.cells.iter().position(|cell| cell.key == key) {
                watched.cells.swap_remove(at).token.stop(reason);
            }
        }
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

    #[test]
    fn interrupt_stops_every_active_cell() {
        let control = RunControl::new(None);
        let first = control.begin();
        let second = control.begin();
        control.end(&first);
        let third = control.begin();
        control.interrupt();
        assert_eq!(first.reason(), None, "an ended cell is not stopped");
        assert_eq!(second.reason(), Some(StopReason::Interrupted));
        assert_eq!(third.reason(), Some(StopReason::Interrupted));
        control.end(&second);
        control.end(&third);
    }

    #[test]
    fn each_active_cell_has_its_own_deadline() {
        let control = RunControl::new(Some(Duration::from_millis(300)));
        let slow = control.begin();
        let start = Instant::now();
        while !slow.is_stopped() && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
        // A cell that starts after the first one timed out gets a fresh deadline.
        let fresh = control.begin();
        assert_eq!(slow.reason(), Some(StopReason::TimedOut));
        assert!(fresh.deadline().unwrap() > slow.deadline().unwrap());
        assert_eq!(fresh.reason(), None);
        control.end(&slow);
        control.end(&fresh);
        assert_eq!(
            fresh.reason(),
            None,
            "ending before the deadline never times out"
        );
    }

    #[test]
    fn going_over_the_memory_limit_stops_every_cell_that_started_below_it() {
        static HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let limit = MemoryLimit {
            bytes: 1000,
            probe: || HELD.load(Ordering::SeqCst),
        };
        let control = RunControl::with_limits(None, Some(limit));
        let first = control.begin();
        let second = control.begin();
        HELD.store(5000, Ordering::SeqCst);
        let start = Instant::now();
        while !(first.is_stopped() && second.is_stopped())
            && start.elapsed() < Duration::from_secs(10)
        {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(first.reason(), Some(StopReason::MemoryLimit));
        assert_eq!(second.reason(), Some(StopReason::MemoryLimit));
        control.end(&first);
        control.end(&second);
    }

    /// Declares `$held` (the process's heap) and `$growth` (each cell's
    /// share, slot by slot) as statics of the calling test, and binds
    /// `$control` to a run control with a 1,000-byte limit counting cells
    /// through them.
    macro_rules! counted_control {
        ($control:ident, $held:ident, $growth:ident, $n:literal) => {
            static $held: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            static $growth: [std::sync::atomic::AtomicIsize; $n] =
                [const { std::sync::atomic::AtomicIsize::new(0) }; $n];
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let limit = MemoryLimit {
                bytes: 1000,
                probe: || $held.load(Ordering::SeqCst),
            };
            let accounting = CellMemory {
                enter: || Some(NEXT.fetch_add(1, Ordering::SeqCst)),
                held_by: |slot| $growth[slot].load(Ordering::SeqCst),
                leave: |_| {},
            };
            let $control = RunControl::with_limits(None, Some(limit)).with_cell_memory(accounting);
        };
    }

    #[test]
    fn counted_per_cell_the_cell_that_grew_the_heap_is_stopped_alone() {
        counted_control!(control, HELD, GROWTH, 3);
        let quiet = control.begin();
        let hog = control.begin();
        GROWTH[1].store(5000, Ordering::SeqCst);
        HELD.store(5000, Ordering::SeqCst);
        let start = Instant::now();
        while !hog.is_stopped() && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(hog.reason(), Some(StopReason::MemoryLimit));
        control.end(&quiet);
        assert_eq!(quiet.reason(), None, "the quiet cell is not blamed");
        control.end(&hog);
        // Ending over the limit, the cell that grew most is blamed.
        let grower = control.begin();
        GROWTH[2].store(7000, Ordering::SeqCst);
        HELD.store(12000, Ordering::SeqCst);
        control.end(&grower);
        assert_eq!(grower.reason(), Some(StopReason::MemoryLimit));
    }

    #[test]
    fn a_cell_ending_while_another_holds_the_excess_is_not_blamed() {
        counted_control!(control, HELD, GROWTH, 2);
        let hog = control.begin();
        GROWTH[0].store(5000, Ordering::SeqCst);
        HELD.store(5000, Ordering::SeqCst);
        // Starting over the limit, `late` may leave the heap where it found
        // it; it adds a little and ends, before or after the watchdog looks.
        let late = control.begin();
        GROWTH[1].store(10, Ordering::SeqCst);
        HELD.store(5010, Ordering::SeqCst);
        control.end(&late);
        assert_eq!(
            late.reason(),
            None,
            "the cell that added a little is not blamed"
        );
        let start = Instant::now();
        while !hog.is_stopped() && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(hog.reason(), Some(StopReason::MemoryLimit));
        // Until the hog frees what it held, nobody else is stopped for it.
        let bystander = control.begin();
        thread::sleep(POLL * 3);
        assert_eq!(bystander.reason(), None);
        control.end_releasing(&hog, |_| HELD.store(10, Ordering::SeqCst));
        control.end(&bystander);
        assert_eq!(bystander.reason(), None);
    }
}
