//! [`StrictLifecycle`]: each cell sees only what it reads, through private copies.

use std::collections::{HashMap, HashSet};

use executor_core::{
    Cell, CellError, CellId, ErrorKind, Globals, Lifecycle, Notebook, RunResult, Setup,
};
use rhai::Dynamic;

use crate::value::IsolatedCopier;
use crate::visible::{visible_names, Pending};

/// Strict execution, as in marimo's strict mode: a cell's body sees only
/// the globals it reads, as deep copies, and its definitions are exactly
/// what its latest run produced.
///
/// For each evaluation of a cell:
/// - The visible names are the cell's [`refs`](Cell::refs) and
///   [`fn_refs`](Cell::fn_refs), less the names it defines. If one of them
///   is not a global (nor a notebook function), setup skips the body with a
///   `strict` error naming the first such name in read order, blaming the
///   first other cell meant to define it, and leaves the globals untouched.
/// - Otherwise each visible global is replaced by a copy that shares no
///   mutable state with anything else, so mutating it in place changes
///   nothing another cell sees; the cell's own definitions are removed; and
///   the globals are [restricted](Globals::restrict) to the visible names
///   for the body, whichever executor runs it.
/// - Teardown, also after a failure, lifts the restriction and restores
///   the original visible values. The definitions the body made stay; one
///   the cell made on an earlier run but not on this one stays removed.
///
/// Put it first among the lifecycles, so the others see the restricted
/// globals too.
pub struct StrictLifecycle {
    /// For each name cells define (or meant to, when they do not parse), the
    /// defining cells in file order.
    definers: HashMap<String, Vec<CellId>>,
    /// For each private name, the cells that define it, in file order.
    private_owners: HashMap<String, Vec<CellId>>,
    /// Names of the notebook's script functions, which resolve without a global.
    functions: HashSet<String>,
    /// Cell names, by id.
    cell_names: Vec<String>,
    /// The original values of the visible names, per evaluation.
    backups: Pending<Vec<(String, Dynamic)>>,
}

impl StrictLifecycle {
    /// The lifecycle's name.
    pub const NAME: &'static str = "strict";

    /// A strict lifecycle for the cells of `notebook`.
    pub fn new(notebook: &Notebook) -> StrictLifecycle {
        let mut definers: HashMap<String, Vec<CellId>> = HashMap::new();
        let mut private_owners: HashMap<String, Vec<CellId>> = HashMap::new();
        let mut functions = HashSet::new();
        for cell in notebook.cells() {
            for def in cell.graph_defs() {
                definers.entry(def.clone()).or_default().push(cell.id());
            }
            for def in cell.private_defs() {
                private_owners
                    .entry(def.clone())
                    .or_default()
                    .push(cell.id());
            }
            functions.extend(cell.fn_names().iter().cloned());
        }
        StrictLifecycle {
            definers,
            private_owners,
            functions,
            cell_names: notebook
                .cells()
                .iter()
                .map(|cell| cell.name().to_owned())
                .collect(),
            backups: Pending::new(),
        }
    }

    /// The error for `cell` reading `name`, which is not defined.
    fn unresolved(&self, cell: &Cell, name: &str) -> CellError {
        let other = |cells: Option<&Vec<CellId>>| {
            cells
                .into_iter()
                .flatten()
                .copied()
                .find(|id| *id != cell.id())
        };
        let message = format!("cannot resolve `{name}`: it is not defined");
        if let Some(definer) = other(self.definers.get(name)) {
            CellError::new(
                ErrorKind::Strict,
                format!(
                    "{message}; it was expected to be defined by cell `{}`",
                    self.cell_name(definer)
                ),
            )
            .blaming(definer)
        } else if let Some(owner) = other(self.private_owners.get(name)) {
            CellError::new(
                ErrorKind::Strict,
                format!(
                    "{message}; names starting with `_` are private to the cell that defines them (`{}`)",
                    self.cell_name(owner)
                ),
            )
            .blaming(owner)
        } else {
            // Nothing blames another cell: the run loop (or the runner) may.
            let mut error = CellError::new(ErrorKind::Strict, message);
            error.missing_name = Some(name.to_owned());
            error
        }
    }

    fn cell_name(&self, id: CellId) -> &str {
        self.cell_names.get(id.index()).map_or("?", String::as_str)
    }
}

impl Lifecycle for StrictLifecycle {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn setup(&self, cell: &Cell, globals: &mut Globals) -> Result<Setup, CellError> {
        let visible = visible_names(cell);
        let unresolved = visible
            .iter()
            .find(|name| !globals.contains(name) && !self.functions.contains(**name));
        if let Some(name) = unresolved {
            tracing::debug!(cell = cell.name(), name, "strict: unresolved reference");
            return Ok(Setup::Skip(RunResult::failed(self.unresolved(cell, name))));
        }
        let mut copies = Vec::with_capacity(visible.len());
        // One copier for all the inputs: closures that captured the same
        // variable still share it in the copies.
        let mut copier = IsolatedCopier::default();
        for name in &visible {
            let Some(value) = globals.get(name) else {
                continue;
            };
            match copier.copy(value) {
                Ok(copy) => copies.push((*name, copy)),
                Err(reason) => {
                    let error = CellError::new(
                        ErrorKind::Strict,
                        format!("cannot copy `{name}` for the cell: {reason}"),
                    );
                    return Ok(Setup::Skip(RunResult::failed(error)));
                }
            }
        }
        let mut originals = Vec::with_capacity(copies.len());
        for (name, copy) in copies {
            if let Some(original) = globals.set(name, copy) {
                originals.push((name.to_owned(), original));
            }
        }
        for def in cell.defs() {
            globals.remove(def);
        }
        globals.restrict(visible.iter().map(|name| (*name).to_owned()));
        self.backups.insert(cell.id(), originals);
        Ok(Setup::Continue)
    }

    fn teardown(
        &self,
        cell: &Cell,
        globals: &mut Globals,
        _result: &RunResult,
    ) -> Result<(), CellError> {
        // No backup means setup skipped the body without touching anything.
        let Some(originals) = self.backups.take(cell.id()) else {
            return Ok(());
        };
        globals.unrestrict();
        for (name, original) in originals {
            globals.set(name, original);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
