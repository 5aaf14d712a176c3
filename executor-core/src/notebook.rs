//! A compiled notebook: every cell parsed, analysed and linked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::analysis::{self, Analysis};
use crate::lang::new_engine;
use crate::{Cell, CellError, CellId, ErrorKind, Limits};

/// One cell's source, as the notebook format split it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellSource {
    /// The cell's name, unique in the notebook.
    pub name: String,
    /// The cell's code.
    pub code: String,
    /// The 1-based notebook line of the code's first line.
    pub first_line: u32,
}

/// The cells of a notebook, compiled and analysed, in file order.
///
/// Compiling never fails: a cell that does not parse carries a `syntax`
/// error and no program, and the others are unaffected.
pub struct Notebook {
    cells: Vec<Cell>,
}

/// Where the code of a script function lives, to map error positions.
pub(crate) type FnHomes = HashMap<String, u32>;

/// The runnable form of a parsed cell.
#[derive(Clone)]
pub(crate) struct Program {
    /// The cell's statements with every function of the notebook attached.
    pub(crate) ast: rhai::AST,
    /// Globals that the functions this cell calls read, transitively.
    pub(crate) fn_globals: Vec<String>,
    /// First line of the cell defining each script function, by function name.
    pub(crate) fn_homes: Arc<FnHomes>,
    /// The cell's public definitions.
    pub(crate) defs: Arc<[String]>,
}

impl Notebook {
    /// Compiles `sources` (in file order) with the engine rules of `limits`.
    pub fn compile(sources: Vec<CellSource>, limits: &Limits) -> Notebook {
        let _span = tracing::debug_span!("compile", n_cells = sources.len()).entered();
        let engine = new_engine(limits);
        let analyses = analyze_all(&engine, &sources);

        let mut lib = rhai::AST::empty();
        let mut fn_homes = FnHomes::new();
        let mut fn_index: HashMap<&str, Vec<&analysis::FnInfo>> = HashMap::new();
        for (source, analysis) in sources.iter().zip(&analyses) {
            let Ok(analysis) = analysis else { continue };
            if !analysis.ast.has_functions() {
                continue;
            }
            lib.combine(analysis.ast.clone_functions_only());
            for function in analysis.ast.iter_functions() {
                fn_homes
                    .entry(function.name.to_owned())
                    .or_insert(source.first_line);
            }
            for function in &analysis.functions {
                fn_index
                    .entry(function.name.as_str())
                    .or_default()
                    .push(function);
            }
        }
        let lib = lib.shared_lib().clone();
        let fn_homes = Arc::new(fn_homes);
        let all_fn_globals: Vec<Vec<String>> = analyses
            .iter()
            .map(|analysis| {
                analysis
                    .as_ref()
                    .map(|analysis| fn_globals(analysis, &fn_index))
                    .unwrap_or_default()
            })
            .collect();
        drop(fn_index);

        let cells = sources
            .into_iter()
            .zip(analyses)
            .zip(all_fn_globals)
            .enumerate()
            .map(|(index, ((source, analysis), fn_globals))| {
                let id = CellId::new(index);
                match analysis {
                    Ok(mut analysis) => {
                        // Move the statements under the shared library: the
                        // cell's own functions are in the library already, and
                        // combining into an empty body moves instead of cloning.
                        let mut statements =
                            std::mem::replace(&mut analysis.ast, rhai::AST::empty());
                        statements.clear_functions();
                        let mut ast = rhai::AST::new(Vec::new(), lib.clone());
                        ast.combine(statements);
                        let program = Program {
                            ast,
                            fn_globals,
                            fn_homes: fn_homes.clone(),
                            defs: analysis.defs.clone().into(),
                        };
                        Cell::parsed(id, source, analysis, program)
                    }
                    Err(error) => Cell::broken(id, source, error),
                }
            })
            .collect();
        Notebook { cells }
    }

    /// The cells, in file order; a cell's id is its index here.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The cell with `id`.
    ///
    /// # Panics
    /// When `id` does not belong to this notebook.
    pub fn cell(&self, id: CellId) -> &Cell {
        &self.cells[id.index()]
    }

    /// The cell named `name`.
    pub fn find(&self, name: &str) -> Option<&Cell> {
        self.cells.iter().find(|cell| cell.name() == name)
    }

    /// How many cells the notebook has.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the notebook has no cell.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

/// The globals read by the functions a cell calls or defines, transitively.
fn fn_globals(
    analysis: &Analysis,
    fn_index: &HashMap<&str, Vec<&analysis::FnInfo>>,
) -> Vec<String> {
    let mut seen_fns: HashSet<&str> = HashSet::new();
    let mut pending: Vec<&str> = analysis
        .calls
        .iter()
        .map(String::as_str)
        .chain(
            analysis
                .functions
                .iter()
                .map(|function| function.name.as_str()),
        )
        .collect();
    let mut names = Vec::new();
    let mut seen_names: HashSet<&str> = HashSet::new();
    while let Some(name) = pending.pop() {
        if !seen_fns.insert(name) {
            continue;
        }
        for function in fn_index.get(name).into_iter().flatten() {
            for free in &function.free_vars {
                if seen_names.insert(free) {
                    names.push(free.clone());
                }
            }
            pending.extend(function.calls.iter().map(String::as_str));
        }
    }
    names
}

/// Cells per thread below which compiling in parallel is not worth a thread.
const PARALLEL_CHUNK: usize = 512;

/// Parses and analyses every cell, on several threads for large notebooks.
///
/// Cells are independent until linking, and the engine is shared read-only,
/// so chunks of cells compile in parallel; the results keep file order.
fn analyze_all(engine: &rhai::Engine, sources: &[CellSource]) -> Vec<Result<Analysis, CellError>> {
    let analyze_one = |source: &CellSource| {
        analysis::analyze(engine, &source.code).map_err(|error| {
            let line = error.line.map(|line| source.first_line + line as u32 - 1);
            CellError::new(ErrorKind::Syntax, error.message)
                .at(line, error.column.map(|column| column as u32))
        })
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(sources.len() / PARALLEL_CHUNK)
        .max(1);
    if threads == 1 {
        return sources.iter().map(analyze_one).collect();
    }
    let chunk = sources.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = sources
            .chunks(chunk)
            .map(|chunk| scope.spawn(move || chunk.iter().map(analyze_one).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(analyses) => analyses,
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect()
    })
}
