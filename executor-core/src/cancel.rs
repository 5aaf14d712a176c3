//! Cooperative cancellation of a running cell.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// Why a cell was asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The user interrupted the run (Ctrl-C).
    Interrupted,
    /// The cell ran past the run's time limit.
    TimedOut,
    /// The process went over its memory limit while the cell ran.
    MemoryLimit,
}

impl StopReason {
    /// The error of a cell stopped for this reason.
    pub fn cell_error(self) -> crate::CellError {
        use crate::{CellError, ErrorKind};
        match self {
            StopReason::Interrupted => CellError::new(ErrorKind::Interrupted, "interrupted"),
            StopReason::TimedOut => {
                CellError::new(ErrorKind::Timeout, "cell ran past the time limit")
            }
            StopReason::MemoryLimit => CellError::new(
                ErrorKind::Runtime,
                "cell stopped: the run went over its memory limit",
            ),
        }
    }
}

const RUNNING: u8 = 0;
const INTERRUPTED: u8 = 1;
const TIMED_OUT: u8 = 2;
const MEMORY_LIMIT: u8 = 3;

impl StopReason {
    /// The stable lowercase name: `interrupted`, `timeout` or `memory`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Interrupted => "interrupted",
            StopReason::TimedOut => "timeout",
            StopReason::MemoryLimit => "memory",
        }
    }
}

/// A flag an executor polls while a cell runs; another thread sets it.
///
/// Cancellation is cooperative: nothing unwinds the running code. The
/// executor checks [`CancelToken::reason`] between units of work (the Rhai
/// executor checks it on every operation) and returns promptly with an
/// error of the matching kind. Clones share the flag. The first stop
/// request wins; later ones do not change the reason.
///
/// A token may carry the cell's deadline ([`CancelToken::deadline`]) when the
/// run has a time limit: the watchdog stops the token with
/// [`StopReason::TimedOut`] once it passes, and an executor that hands the
/// cell to another scheduler (a cluster job's time limit) can pass it on.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    state: Arc<AtomicU8>,
    deadline: Arc<OnceLock<Instant>>,
}

impl CancelToken {
    /// A token that has not been stopped.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the cell to stop for `reason`, unless it was already asked.
    pub fn stop(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Interrupted => INTERRUPTED,
            StopReason::TimedOut => TIMED_OUT,
            StopReason::MemoryLimit => MEMORY_LIMIT,
        };
        let _ = self
            .state
            .compare_exchange(RUNNING, code, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Why the cell was asked to stop, or `None` while it may run.
    #[inline]
    pub fn reason(&self) -> Option<StopReason> {
        match self.state.load(Ordering::Acquire) {
            RUNNING => None,
            INTERRUPTED => Some(StopReason::Interrupted),
            TIMED_OUT => Some(StopReason::TimedOut),
            _ => Some(StopReason::MemoryLimit),
        }
    }

    /// Whether the cell was asked to stop.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.state.load(Ordering::Relaxed) != RUNNING
    }

    /// A token that has not been stopped, whose cell must end by `deadline`.
    pub fn with_deadline(deadline: Instant) -> CancelToken {
        let token = CancelToken::new();
        let _ = token.deadline.set(deadline);
        token
    }

    /// When the cell must have finished, if the run has a time limit.
    ///
    /// Passing it does not stop the token by itself: the run's watchdog does.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_stop_reason_wins_and_clones_share_it() {
        let token = CancelToken::new();
        let clone = token.clone();
        assert_eq!(token.reason(), None);
        clone.stop(StopReason::TimedOut);
        token.stop(StopReason::Interrupted);
        assert_eq!(token.reason(), Some(StopReason::TimedOut));
        assert!(token.is_stopped());
    }

    #[test]
    fn a_deadline_is_shared_by_clones_and_does_not_stop_by_itself() {
        let at = Instant::now();
        let token = CancelToken::with_deadline(at);
        assert_eq!(token.clone().deadline(), Some(at));
        assert!(!token.is_stopped());
        assert_eq!(CancelToken::new().deadline(), None);
        assert_eq!(StopReason::TimedOut.as_str(), "timeout");
    }
}
