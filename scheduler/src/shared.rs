//! `SharedInputs`: cells of a parallel run that read the same shared value
//! take turns, in the sequential order.
//!
//! Globals store arrays, maps and blobs shared, so handing one to a cell
//! copies a pointer. Rhai lets one thread at a time use a shared value (a
//! method call locks it, even to read), and a cell may mutate what it reads
//! in place. So two cells reading the same shared value never run at the
//! same time, and they run in the order a sequential run gives them: then
//! an in-place mutation is seen exactly as with one cell at a time, and no
//! cell waits on another thread's lock. Cells reading only numbers and
//! strings, or different shared values, run side by side.

use std::collections::HashMap;

use executor_core::{Cell, CellId, Globals, Notebook};
use foldhash::fast::RandomState;

/// The readers of each name, in queue order, and which have concluded.
pub(crate) struct SharedInputs<'a> {
    readers: HashMap<&'a str, Readers, RandomState>,
    concluded: Vec<bool>,
}

/// The cells reading one name, in queue order, and the first of them that
/// has not concluded (or a later one).
struct Readers {
    cells: Vec<CellId>,
    next: usize,
}

impl<'a> SharedInputs<'a> {
    /// The readers of every name the cells of `order` read.
    pub(crate) fn new(notebook: &'a Notebook, order: &[CellId]) -> SharedInputs<'a> {
        let mut readers: HashMap<&str, Readers, RandomState> = HashMap::default();
        for &id in order {
            let cell = notebook.cell(id);
            for name in inputs(cell) {
                let entry = readers.entry(name).or_insert_with(|| Readers {
                    cells: Vec::new(),
                    next: 0,
                });
                if entry.cells.last() != Some(&id) {
                    entry.cells.push(id);
                }
            }
        }
        SharedInputs {
            readers,
            concluded: vec![false; notebook.len()],
        }
    }

    /// Whether `cell` may start now: for each of its inputs holding a
    /// shared value in `globals`, every reader of it before `cell` in queue
    /// order has concluded.
    pub(crate) fn may_start(&mut self, cell: &Cell, globals: &Globals) -> bool {
        for name in inputs(cell) {
            if !globals.get(name).is_some_and(|value| value.is_shared()) {
                continue;
            }
            let Some(readers) = self.readers.get_mut(name) else {
                continue;
            };
            while readers
                .cells
                .get(readers.next)
                .is_some_and(|reader| self.concluded[reader.index()])
            {
                readers.next += 1;
            }
            if readers.cells.get(readers.next) != Some(&cell.id()) {
                return false;
            }
        }
        true
    }

    /// Records that `cell` will not touch its inputs any more: it finished,
    /// or it will not run.
    pub(crate) fn conclude(&mut self, cell: CellId) {
        self.concluded[cell.index()] = true;
    }
}

/// The names `cell` reads from the globals while it runs, without its own
/// definitions.
fn inputs(cell: &Cell) -> impl Iterator<Item = &str> {
    cell.refs()
        .iter()
        .chain(cell.fn_refs())
        .map(String::as_str)
        .filter(|name| !cell.defs().iter().any(|def| def == name))
}
