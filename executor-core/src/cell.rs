//! Cells: the unit of code, analysis and execution.

use std::fmt;
use std::sync::Arc;

use crate::analysis::{intended_defs, Analysis};
use crate::notebook::{FnSource, Program, RHAI};
use crate::{AnalysedCell, CellError, CellSource};

/// Position of a cell in its notebook, counted from zero in file order.
///
/// Ids are dense: a notebook of `n` cells uses exactly `0..n`, so an id is
/// also an index into any per-cell vector. Comparing two ids compares file
/// positions, which is the tie-breaker of the topological order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CellId(u32);

impl CellId {
    /// The id of the cell at `index` in file order.
    ///
    /// # Panics
    /// When `index` does not fit in a `u32` (a notebook of over four billion cells).
    pub fn new(index: usize) -> CellId {
        CellId(u32::try_from(index).expect("cell index fits in u32"))
    }

    /// The zero-based file position of the cell.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One cell of a notebook: its source, what it defines and reads, and its
/// compiled program.
///
/// Invariant: a Rhai cell has a program if and only if it has no syntax
/// error; a cell of another language never has one.
pub struct Cell {
    id: CellId,
    name: String,
    code: Arc<str>,
    first_line: u32,
    language: &'static str,
    options: Vec<(String, String)>,
    functions: Vec<FnSource>,
    /// Its refs, the globals its functions read and its defs.
    names: Arc<CellNames>,
    private_defs: Vec<String>,
    fn_names: Vec<String>,
    graph_defs: Vec<String>,
    inputs: Vec<String>,
    opaque: Option<String>,
    /// Notebook lines of the definitions, by name.
    def_lines: Vec<(String, u32)>,
    syntax_error: Option<CellError>,
    program: Option<Program>,
}

/// The globals a cell may see while other cells run: its refs, the
/// globals its functions read and its defs (which a lifecycle may remove
/// before the body). Shared, so a scope over the run's globals
/// ([`Globals::scope_to`](crate::Globals::scope_to)) costs a pointer.
#[derive(Debug, Default)]
pub struct CellNames {
    refs: Vec<String>,
    fn_refs: Vec<String>,
    defs: Vec<String>,
    /// Every name once, sorted, for lookups in a cell with many names;
    /// made on first use.
    sorted: std::sync::OnceLock<Box<[String]>>,
}

/// Up to this many names, a lookup scans the lists.
const SCAN_NAMES: usize = 16;

impl CellNames {
    fn new(refs: Vec<String>, fn_refs: Vec<String>, defs: Vec<String>) -> CellNames {
        CellNames {
            refs,
            fn_refs,
            defs,
            sorted: std::sync::OnceLock::new(),
        }
    }

    fn lists(&self) -> impl Iterator<Item = &String> {
        self.refs.iter().chain(&self.fn_refs).chain(&self.defs)
    }

    fn n_listed(&self) -> usize {
        self.refs.len() + self.fn_refs.len() + self.defs.len()
    }

    fn sorted(&self) -> &[String] {
        self.sorted.get_or_init(|| {
            let mut names: Vec<String> = self.lists().cloned().collect();
            names.sort_unstable();
            names.dedup();
            names.into()
        })
    }

    /// Names of a cell that reads `refs` and defines `defs`.
    #[cfg(test)]
    pub(crate) fn for_test(refs: &[&str], defs: &[&str]) -> CellNames {
        let owned = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        CellNames::new(owned(refs), Vec::new(), owned(defs))
    }

    /// Whether `name` is one of them.
    pub fn contains(&self, name: &str) -> bool {
        if self.n_listed() <= SCAN_NAMES {
            self.lists().any(|listed| listed == name)
        } else {
            self.sorted()
                .binary_search_by(|listed| listed.as_str().cmp(name))
                .is_ok()
        }
    }

    /// Each name once, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &String> {
        let scan = self.n_listed() <= SCAN_NAMES;
        let small = scan.then(|| {
            self.lists()
                .enumerate()
                .filter(|(at, name)| !self.lists().take(*at).any(|before| before == *name))
                .map(|(_, name)| name)
        });
        let big = (!scan).then(|| self.sorted().iter());
        small.into_iter().flatten().chain(big.into_iter().flatten())
    }
}

impl Cell {
    pub(crate) fn parsed(
        id: CellId,
        source: CellSource,
        analysis: Analysis,
        program: Program,
        functions: Vec<FnSource>,
    ) -> Cell {
        let mut graph_defs = analysis.defs.clone();
        for name in &analysis.rebound {
            if !graph_defs.contains(name) {
                graph_defs.push(name.clone());
            }
        }
        let mut inputs = analysis.refs.clone();
        for call in &analysis.calls {
            if !inputs.contains(call) {
                inputs.push(call.clone());
            }
        }
        Cell {
            id,
            name: source.name,
            code: source.code.into(),
            first_line: source.first_line,
            language: RHAI,
            options: source.options,
            functions,
            names: Arc::new(CellNames::new(
                analysis.refs,
                program.fn_globals.clone(),
                analysis.defs,
            )),
            private_defs: analysis.private_defs,
            fn_names: analysis
                .functions
                .iter()
                .map(|function| function.name.clone())
                .collect(),
            graph_defs,
            inputs,
            opaque: analysis.opaque,
            def_lines: analysis
                .def_lines
                .into_iter()
                .map(|(name, line)| (name, source.first_line + line as u32 - 1))
                .collect(),
            syntax_error: None,
            program: Some(program),
        }
    }

    pub(crate) fn broken(id: CellId, source: CellSource, error: CellError) -> Cell {
        let intended_defs = intended_defs(&source.code);
        Cell {
            id,
            name: source.name,
            code: source.code.into(),
            first_line: source.first_line,
            language: RHAI,
            options: source.options,
            functions: Vec::new(),
            names: Arc::default(),
            private_defs: Vec::new(),
            fn_names: Vec::new(),
            graph_defs: intended_defs,
            inputs: Vec::new(),
            opaque: None,
            def_lines: Vec::new(),
            syntax_error: Some(error),
            program: None,
        }
    }

    pub(crate) fn analysed(id: CellId, cell: AnalysedCell) -> Cell {
        let AnalysedCell {
            source,
            language,
            defs,
            private_defs,
            refs,
            syntax_error,
        } = cell;
        let (defs, graph_defs, refs) = match syntax_error {
            None => (defs.clone(), defs, refs),
            Some(_) => (Vec::new(), defs, Vec::new()),
        };
        Cell {
            id,
            name: source.name,
            code: source.code.into(),
            first_line: source.first_line,
            language,
            options: source.options,
            functions: Vec::new(),
            inputs: refs.clone(),
            names: Arc::new(CellNames::new(refs, Vec::new(), defs)),
            private_defs,
            fn_names: Vec::new(),
            graph_defs,
            opaque: None,
            def_lines: Vec::new(),
            syntax_error,
            program: None,
        }
    }

    /// The cell's id (its position in the notebook).
    pub fn id(&self) -> CellId {
        self.id
    }

    /// The cell's name, unique in its notebook.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cell's code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The 1-based notebook line of the code's first line.
    pub fn first_line(&self) -> u32 {
        self.first_line
    }

    /// The cell's language: [`RHAI`](crate::RHAI) or the language of the
    /// notebook format that analysed it.
    pub fn language(&self) -> &'static str {
        self.language
    }

    /// Options the notebook gives the cell, in the order written.
    pub fn options(&self) -> &[(String, String)] {
        &self.options
    }

    /// The notebook's script functions this cell calls or defines,
    /// transitively, each with the code of the cell defining it.
    ///
    /// With [`Cell::fn_refs`] (the globals those bodies read) this is what an
    /// executor running the cell elsewhere needs besides the cell's code.
    pub fn functions(&self) -> &[FnSource] {
        &self.functions
    }

    /// Public names the cell defines at its top level (`let`, `const`, `fn`), in order.
    pub fn defs(&self) -> &[String] {
        &self.names.defs
    }

    /// Names starting with `_` that the cell defines: private to it.
    pub fn private_defs(&self) -> &[String] {
        &self.private_defs
    }

    /// Free variables the cell reads, its functions' bodies included, in order.
    pub fn refs(&self) -> &[String] {
        &self.names.refs
    }

    /// Names of the script functions the cell defines (public and private).
    pub fn fn_names(&self) -> &[String] {
        &self.fn_names
    }

    /// The names that make edges in the dataflow graph: `refs` plus the
    /// functions the cell calls.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }

    /// The notebook line where the cell first defines or rebinds `name`, if
    /// known.
    pub fn def_line(&self, name: &str) -> Option<u32> {
        self.def_lines
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, line)| *line)
    }

    /// Why what the cell reaches cannot be known from its code alone, if so:
    /// an `import`, or `Fn(...)` of a computed name, in the cell or in its
    /// functions. Such a cell's dependencies are not all in [`Cell::inputs`].
    pub fn opaque(&self) -> Option<&str> {
        self.opaque.as_deref()
    }

    /// The names the dataflow graph treats as defined by the cell.
    ///
    /// For a cell that does not parse these are the names it appears to mean
    /// to define, so the cells reading them are cancelled with a clear cause
    /// rather than failing on an undefined name.
    ///
    /// For a cell that parses these are its defs plus the names it rebinds
    /// (`x = …` on a name it did not bind), since rebinding a name another
    /// cell defines is a conflict, as in Python.
    pub fn graph_defs(&self) -> &[String] {
        &self.graph_defs
    }

    /// Notebook globals read by the bodies of the functions the cell calls
    /// or defines, transitively.
    ///
    /// These are visible to the cell while it runs, besides its [`Cell::refs`].
    pub fn fn_refs(&self) -> &[String] {
        self.program
            .as_ref()
            .map_or(&[], |program| program.fn_globals.as_slice())
    }

    /// The globals the cell may see while other cells run: its refs, the
    /// globals its functions read ([`Cell::fn_refs`]) and its own defs;
    /// shared.
    pub fn scope_names(&self) -> &Arc<CellNames> {
        &self.names
    }

    /// The parse error, when the cell does not parse.
    pub fn syntax_error(&self) -> Option<&CellError> {
        self.syntax_error.as_ref()
    }

    /// The notebook line of a line of this cell's code (1-based in both).
    pub fn notebook_line(&self, code_line: usize) -> u32 {
        self.first_line + code_line.saturating_sub(1) as u32
    }

    pub(crate) fn program(&self) -> Option<&Program> {
        self.program.as_ref()
    }
}

impl fmt::Debug for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cell")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("first_line", &self.first_line)
            .field("defs", &self.names.defs)
            .field("refs", &self.names.refs)
            .field("syntax_error", &self.syntax_error)
            .finish_non_exhaustive()
    }
}
