//! A compiled notebook: every cell parsed, analysed and linked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::analysis::{self, Analysis};
use crate::lang::new_engine;
use crate::{Cell, CellError, CellId, ErrorKind, Limits};

/// The language of Rhai cells, run by the built-in executor.
pub const RHAI: &str = "rhai";

/// The language of Python cells (marimo notebooks), run by an executor plugin.
pub const PYTHON: &str = "python";

/// One cell's source, as the notebook format split it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellSource {
    /// The cell's name, unique in the notebook.
    pub name: String,
    /// The cell's code.
    pub code: String,
    /// The 1-based notebook line of the code's first line.
    pub first_line: u32,
    /// Options the notebook gives the cell (`key=value` on its marker line,
    /// for example resources a cluster executor reads), in the order written.
    pub options: Vec<(String, String)>,
}

impl CellSource {
    /// A cell named `name` with `code` starting at notebook line `first_line`, without options.
    pub fn new(name: impl Into<String>, code: impl Into<String>, first_line: u32) -> CellSource {
        CellSource {
            name: name.into(),
            code: code.into(),
            first_line,
            options: Vec::new(),
        }
    }
}

/// A cell of a language other than Rhai, analysed outside this crate.
///
/// The notebook format that reads the language computes what the cell
/// defines and reads; executors that declare the language run it.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysedCell {
    /// The cell's source.
    pub source: CellSource,
    /// The language, for example [`PYTHON`].
    pub language: &'static str,
    /// Public names the cell defines, in order.
    pub defs: Vec<String>,
    /// Cell-private names the cell defines.
    pub private_defs: Vec<String>,
    /// Names the cell reads that it does not define first, in order.
    pub refs: Vec<String>,
    /// Why the cell does not parse, with a notebook position; then `defs`
    /// are the names it appears to mean to define.
    pub syntax_error: Option<CellError>,
}

/// The cells of a notebook, compiled and analysed, in file order.
///
/// Compiling never fails: a cell that does not parse carries a `syntax`
/// error and no program, and the others are unaffected.
pub struct Notebook {
    cells: Vec<Cell>,
    language: &'static str,
    fn_homes: Arc<FnHomes>,
}

/// Where the code of each script function lives (named and anonymous), by
/// function name: to map error positions and to carry functions elsewhere.
pub(crate) type FnHomes = HashMap<String, FnHome>;

/// The cell defining a script function.
#[derive(Clone, Debug)]
pub(crate) struct FnHome {
    /// The notebook line of the cell's first line.
    pub(crate) first_line: u32,
    /// The whole code of the cell.
    pub(crate) code: Arc<str>,
}

/// The runnable form of a parsed cell.
#[derive(Clone)]
pub(crate) struct Program {
    /// The cell's statements with every function of the notebook attached.
    pub(crate) ast: rhai::AST,
    /// Globals that the functions this cell calls read, transitively.
    pub(crate) fn_globals: Vec<String>,
    /// The cell defining each script function, by function name.
    pub(crate) fn_homes: Arc<FnHomes>,
    /// The cell's public definitions.
    pub(crate) defs: Arc<[String]>,
}

/// Compiles notebooks with one engine, built once.
///
/// Building the engine costs far more than compiling a cell: a process that
/// compiles many small notebooks (a worker, one per request) keeps one
/// compiler; [`Notebook::compile`] builds its own.
pub struct NotebookCompiler {
    engine: rhai::Engine,
}

impl NotebookCompiler {
    /// A compiler with the engine rules of `limits`.
    pub fn new(limits: &Limits) -> NotebookCompiler {
        NotebookCompiler {
            engine: new_engine(limits),
        }
    }

    /// Compiles `sources` (in file order), as [`Notebook::compile`] does.
    pub fn compile(&self, sources: Vec<CellSource>) -> Notebook {
        Notebook::compile_with(&self.engine, sources)
    }
}

impl Notebook {
    /// Compiles `sources` (in file order) with the engine rules of `limits`.
    pub fn compile(sources: Vec<CellSource>, limits: &Limits) -> Notebook {
        NotebookCompiler::new(limits).compile(sources)
    }

    fn compile_with(engine: &rhai::Engine, sources: Vec<CellSource>) -> Notebook {
        let _span = tracing::debug_span!("compile", n_cells = sources.len()).entered();
        let analyses = analyze_all(engine, &sources);

        let codes: Vec<Arc<str>> = sources
            .iter()
            .map(|source| Arc::from(source.code.as_str()))
            .collect();
        let mut lib = rhai::AST::empty();
        let mut fn_homes = FnHomes::new();
        let mut fn_index: HashMap<&str, Vec<&analysis::FnInfo>> = HashMap::new();
        for (index, (source, analysis)) in sources.iter().zip(&analyses).enumerate() {
            let Ok(analysis) = analysis else { continue };
            if !analysis.ast.has_functions() {
                continue;
            }
            lib.combine(analysis.ast.clone_functions_only());
            for function in analysis.ast.iter_functions() {
                fn_homes
                    .entry(function.name.to_owned())
                    .or_insert_with(|| FnHome {
                        first_line: source.first_line,
                        code: codes[index].clone(),
                    });
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
        let fn_cells: HashMap<&str, usize> = sources
            .iter()
            .zip(&analyses)
            .enumerate()
            .filter_map(|(index, (_, analysis))| Some((index, analysis.as_ref().ok()?)))
            .flat_map(|(index, analysis)| {
                analysis
                    .functions
                    .iter()
                    .map(move |function| (function.name.as_str(), index))
            })
            .collect();
        let all_fn_globals: Vec<(Vec<String>, Vec<FnSource>)> = analyses
            .iter()
            .map(|analysis| {
                analysis
                    .as_ref()
                    .map(|analysis| {
                        let (names, reached) = fn_globals(analysis, &fn_index);
                        let reached = reached
                            .into_iter()
                            .filter_map(|name| {
                                let home = *fn_cells.get(name.as_str())?;
                                Some(FnSource {
                                    name,
                                    cell: CellId::new(home),
                                    code: codes[home].clone(),
                                })
                            })
                            .collect();
                        (names, reached)
                    })
                    .unwrap_or_default()
            })
            .collect();
        drop(fn_index);
        drop(fn_cells);

        let cells = sources
            .into_iter()
            .zip(analyses)
            .zip(all_fn_globals)
            .enumerate()
            .map(|(index, ((source, analysis), (fn_globals, functions)))| {
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
                        Cell::parsed(id, source, analysis, program, functions)
                    }
                    Err(error) => Cell::broken(id, source, error),
                }
            })
            .collect();
        Notebook {
            cells,
            language: RHAI,
            fn_homes,
        }
    }

    /// A notebook of cells in `language` that a notebook format analysed
    /// (see [`AnalysedCell`]), in file order.
    ///
    /// Such cells have no Rhai program: only an executor declaring their
    /// language runs them.
    pub fn from_analysed(language: &'static str, cells: Vec<AnalysedCell>) -> Notebook {
        let cells = cells
            .into_iter()
            .enumerate()
            .map(|(index, cell)| Cell::analysed(CellId::new(index), cell))
            .collect();
        Notebook {
            cells,
            language,
            fn_homes: Arc::default(),
        }
    }

    /// The language of the notebook's cells ([`RHAI`] or a language a
    /// notebook format analysed).
    pub fn language(&self) -> &'static str {
        self.language
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

    pub(crate) fn fn_homes(&self) -> &FnHomes {
        &self.fn_homes
    }
}

/// A script function a cell reaches, with the code that defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FnSource {
    /// The function's name.
    pub name: String,
    /// The cell defining it.
    pub cell: CellId,
    /// The whole code of that cell: compiling it yields the function (and
    /// the closures it creates); its statements are not meant to run.
    pub code: Arc<str>,
}

/// The globals read by the functions a cell calls or defines, transitively,
/// and the names of those functions (the notebook's, in order reached).
fn fn_globals(
    analysis: &Analysis,
    fn_index: &HashMap<&str, Vec<&analysis::FnInfo>>,
) -> (Vec<String>, Vec<String>) {
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
    let mut reached = Vec::new();
    let mut seen_names: HashSet<&str> = HashSet::new();
    while let Some(name) = pending.pop() {
        if !seen_fns.insert(name) {
            continue;
        }
        if fn_index.contains_key(name) {
            reached.push(name.to_owned());
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
    (names, reached)
}

/// The cell error of a parse error in `source`.
///
/// Rhai reports a construct left open at the end of the code (an unclosed
/// brace, a dangling operator) at the end of the input, which is the next
/// cell's marker line, or nowhere: such an error points just after the
/// cell's last non-blank line instead.
fn syntax_error(source: &CellSource, error: analysis::SyntaxError) -> CellError {
    let last = source
        .code
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .last();
    let past_the_end = match (error.line, last) {
        (None, _) => true,
        (Some(line), Some((index, _))) => line > index + 1,
        (Some(_), None) => false,
    };
    let mut message = error.message;
    if message == "Script is incomplete" {
        message = "the cell ends in the middle of a statement".to_owned();
    }
    match last {
        Some((index, text)) if past_the_end => {
            let line = source.first_line + index as u32;
            let column = text.trim_end().chars().count() as u32 + 1;
            CellError::new(ErrorKind::Syntax, format!("{message} before the cell ends"))
                .at(Some(line), Some(column))
        }
        _ => {
            let line = error.line.map(|line| source.first_line + line as u32 - 1);
            CellError::new(ErrorKind::Syntax, message)
                .at(line, error.column.map(|column| column as u32))
        }
    }
}

/// Cells per thread below which compiling in parallel is not worth a thread.
const PARALLEL_CHUNK: usize = 512;

/// Parses and analyses every cell, on several threads for large notebooks.
///
/// Cells are independent until linking, and the engine is shared read-only,
/// so chunks of cells compile in parallel; the results keep file order.
fn analyze_all(engine: &rhai::Engine, sources: &[CellSource]) -> Vec<Result<Analysis, CellError>> {
    let analyze_one = |source: &CellSource| {
        analysis::analyze(engine, &source.code).map_err(|error| syntax_error(source, error))
    };
    // Asking for the parallelism reads cgroup files: not for a small notebook.
    let threads = if sources.len() < 2 * PARALLEL_CHUNK {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(sources.len() / PARALLEL_CHUNK)
    };
    if threads <= 1 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(codes: &[&str]) -> Notebook {
        let sources = codes
            .iter()
            .enumerate()
            .map(|(index, code)| CellSource::new(format!("c{index}"), *code, index as u32 + 1))
            .collect();
        Notebook::compile(sources, &Limits::default())
    }

    #[test]
    fn a_cell_knows_the_functions_it_reaches_with_their_code_and_globals() {
        let notebook = compile(&[
            "let k = 3;",
            "fn scale(x) { x * k }",
            "fn twice(x) { scale(scale(x)) }",
            "twice(2)",
            "1 + 1",
        ]);
        let caller = notebook.cell(CellId::new(3));
        let mut reached: Vec<(&str, CellId)> = caller
            .functions()
            .iter()
            .map(|function| (function.name.as_str(), function.cell))
            .collect();
        reached.sort();
        assert_eq!(
            reached,
            [("scale", CellId::new(1)), ("twice", CellId::new(2))]
        );
        let scale = &caller
            .functions()
            .iter()
            .find(|f| f.name == "scale")
            .unwrap();
        assert_eq!(&*scale.code, "fn scale(x) { x * k }");
        assert_eq!(caller.fn_refs(), ["k"]);
        assert!(notebook.cell(CellId::new(4)).functions().is_empty());
        assert_eq!(caller.language(), RHAI);
        assert_eq!(notebook.language(), RHAI);
    }

    #[test]
    fn analysed_cells_of_another_language_carry_their_analysis_and_no_program() {
        let ok = AnalysedCell {
            source: CellSource {
                options: vec![("cpus".into(), "2".into())],
                ..CellSource::new("a", "x = 1", 3)
            },
            language: PYTHON,
            defs: vec!["x".into()],
            private_defs: vec!["_t".into()],
            refs: vec!["print".into()],
            syntax_error: None,
        };
        let broken = AnalysedCell {
            source: CellSource::new("b", "y = (", 5),
            language: PYTHON,
            defs: vec!["y".into()],
            private_defs: Vec::new(),
            refs: vec!["x".into()],
            syntax_error: Some(
                CellError::new(ErrorKind::Syntax, "unclosed (").at(Some(5), Some(5)),
            ),
        };
        let notebook = Notebook::from_analysed(PYTHON, vec![ok, broken]);
        assert_eq!(notebook.language(), PYTHON);
        let a = notebook.cell(CellId::new(0));
        assert_eq!(
            (a.language(), a.defs(), a.refs()),
            (PYTHON, &["x".to_owned()][..], &["print".to_owned()][..])
        );
        assert_eq!(a.inputs(), a.refs());
        assert_eq!(a.options(), [("cpus".to_owned(), "2".to_owned())]);
        assert!(a.syntax_error().is_none());
        let b = notebook.cell(CellId::new(1));
        assert!(
            b.defs().is_empty(),
            "a broken cell defines nothing at run time"
        );
        assert_eq!(
            b.graph_defs(),
            ["y"],
            "but its readers are cancelled through it"
        );
        assert!(b.refs().is_empty());
        assert_eq!(b.syntax_error().unwrap().line, Some(5));
    }

    /// Words Rhai cells are made of, valid or not in any order.
    const WORDS: &[&str] = &[
        "let",
        "const",
        "fn",
        "x",
        "y",
        "_p",
        "f",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "=",
        "+",
        ";",
        ",",
        "1",
        "2.5",
        "\"s\"",
        "`t${x}`",
        "`",
        "Fn(\"f\")",
        "Fn(x)",
        "import \"m\" as m;",
        "|a| a",
        "|| x",
        "if",
        "else",
        "while",
        "loop",
        "break",
        "return",
        "throw",
        "try",
        "catch",
        "this",
        "\n",
        ".push(1)",
        "#{a: 1}",
        "m::z",
        "x.len()",
        "call(",
        "curry(",
        "// c",
        "/*",
        "*/",
        "'c'",
        "private",
        "export",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]

        // See: issue 12 (fuzzing the analysis): compiling any cells never
        // panics; each cell has a program or a syntax error pointing inside
        // the cell; definitions lie inside the cell.
        #[test]
        fn issue_12_analysis_of_any_cells_is_consistent(
            cells in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(WORDS), 0..24),
                1..5,
            )
        ) {
            let mut line = 1;
            let sources: Vec<CellSource> = cells
                .iter()
                .enumerate()
                .map(|(index, words)| {
                    let code = words.join(" ");
                    let source = CellSource::new(format!("c{index}"), code.clone(), line + 1);
                    line += code.lines().count() as u32 + 1;
                    source
                })
                .collect();
            let notebook = Notebook::compile(sources.clone(), &Limits::default());
            for (cell, source) in notebook.cells().iter().zip(&sources) {
                let last = source.first_line + source.code.lines().count().max(1) as u32 - 1;
                let within = |at: u32| (source.first_line..=last).contains(&at);
                proptest::prop_assert_eq!(cell.program().is_some(), cell.syntax_error().is_none());
                if let Some(error) = cell.syntax_error() {
                    proptest::prop_assert!(error.line.is_none_or(within), "{:?} in {:?}", error, source.code);
                }
                for def in cell.defs() {
                    proptest::prop_assert!(!def.starts_with('_'));
                    proptest::prop_assert!(cell.def_line(def).is_none_or(within));
                }
                for def in cell.private_defs() {
                    proptest::prop_assert!(def.starts_with('_'));
                }
            }
        }
    }
}
