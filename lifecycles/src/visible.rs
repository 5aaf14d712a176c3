//! What a cell may see of the globals, and per-evaluation bookkeeping.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, ThreadId};

use executor_core::{Cell, CellId};

/// The globals `cell` reads while it runs: its refs, then the globals read
/// by the functions it calls, without duplicates and without the names the
/// cell defines itself, in that order.
pub(crate) fn visible_names(cell: &Cell) -> Vec<&str> {
    let mut seen = HashSet::new();
    cell.refs()
        .iter()
        .chain(cell.fn_refs())
        .map(String::as_str)
        .filter(|name| !cell.defs().iter().any(|def| def == name))
        .filter(|name| seen.insert(*name))
        .collect()
}

/// State a lifecycle keeps from a cell's setup to its teardown.
///
/// The evaluator calls both on the thread that evaluates the cell, so
/// entries are keyed by thread and cell: one lifecycle can serve several
/// runs at once, each on its own thread with its own globals.
pub(crate) struct Pending<T> {
    entries: Mutex<HashMap<(ThreadId, CellId), T>>,
}

impl<T> Pending<T> {
    pub(crate) fn new() -> Pending<T> {
        Pending {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers `state` for the evaluation of `cell` on this thread.
    pub(crate) fn insert(&self, cell: CellId, state: T) {
        self.lock().insert((thread::current().id(), cell), state);
    }

    /// Takes what was remembered for the evaluation of `cell` on this thread.
    pub(crate) fn take(&self, cell: CellId) -> Option<T> {
        self.lock().remove(&(thread::current().id(), cell))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(ThreadId, CellId), T>> {
        // The map stays consistent even if a holder panicked: every
        // operation on it is a single insert or remove.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
