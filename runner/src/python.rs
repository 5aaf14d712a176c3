//! marimo notebooks: a `.py` file's cells, analysed by `python-notebook`,
//! as core cells of language [`PYTHON`].
//!
//! A cell's references leave out the names Python resolves by itself
//! (`print`, `len`, `__file__`) unless a cell of the notebook defines them,
//! so that `--strict` and the graph see only what cells provide.

use std::collections::HashSet;
use std::path::Path;

use executor_core::{AnalysedCell, CellError, CellSource, ErrorKind, Notebook, PYTHON};
use python_notebook::{analyze, intended_defs, is_builtin, CellKind, PyCellSource};

/// Whether `path` names a marimo notebook rather than a Rhai one.
pub(crate) fn is_python_notebook(path: &Path) -> bool {
    path.extension().is_some_and(|extension| extension == "py")
}

/// A marimo notebook's cells, with the warnings the format gives.
///
/// # Errors
/// The file is not a marimo notebook, has a syntax error outside every
/// cell, or names two cells alike.
pub(crate) fn compile(text: &str) -> Result<(Notebook, Vec<String>), python_notebook::FormatError> {
    let parsed = python_notebook::parse_notebook(text)?;
    let analysed: Vec<(PyCellSource, AnalysedCell)> = parsed
        .cells
        .into_iter()
        .map(|cell| {
            let analysed = analyse(&cell);
            (cell, analysed)
        })
        .collect();
    let defined: HashSet<&str> = analysed
        .iter()
        .flat_map(|(_, cell)| cell.defs.iter().map(String::as_str))
        .collect();
    let defined: HashSet<String> = defined.into_iter().map(str::to_owned).collect();
    let cells = analysed
        .into_iter()
        .map(|(_, mut cell)| {
            cell.refs
                .retain(|name| !is_builtin(name) || defined.contains(name));
            cell
        })
        .collect();
    Ok((Notebook::from_analysed(PYTHON, cells), parsed.warnings))
}

/// The notebook of one cell sent to `cellrun worker`: the cell analysed
/// as [`compile`] analyses a notebook's cells, its marker options kept.
/// A name Python resolves by itself stays out of its references unless
/// `provided` (the globals its request brings) has it.
pub(crate) fn worker_notebook(
    name: &str,
    code: &str,
    first_line: u32,
    options: Vec<(String, String)>,
    provided: &dyn Fn(&str) -> bool,
) -> Notebook {
    let cell = PyCellSource {
        name: name.to_owned(),
        code: code.to_owned(),
        first_line,
        column_offset: 0,
        kind: CellKind::Cell,
        is_async: false,
        disabled: false,
    };
    let mut analysed = analyse(&cell);
    analysed.source.options = options;
    analysed
        .refs
        .retain(|name| !is_builtin(name) || provided(name));
    Notebook::from_analysed(PYTHON, vec![analysed])
}

/// One cell's analysis, with errors placed in the notebook.
fn analyse(cell: &PyCellSource) -> AnalysedCell {
    let mut options = Vec::new();
    if cell.is_async {
        options.push(("async".to_owned(), "true".to_owned()));
    }
    if cell.disabled {
        options.push(("disabled".to_owned(), "true".to_owned()));
    }
    if cell.kind != CellKind::Cell {
        options.push(("kind".to_owned(), kind_name(cell.kind).to_owned()));
    }
    let source = CellSource {
        options,
        ..CellSource::new(cell.name.clone(), cell.code.clone(), cell.first_line)
    };
    match analyze(&cell.code) {
        Ok(analysis) => AnalysedCell {
            source,
            language: PYTHON,
            defs: analysis.defs,
            private_defs: analysis.private_defs,
            refs: analysis.refs,
            syntax_error: None,
        },
        Err(error) => {
            let line = cell.first_line + error.line.saturating_sub(1);
            let column = error.column + cell.column_offset;
            AnalysedCell {
                defs: intended_defs(&cell.code),
                source,
                language: PYTHON,
                private_defs: Vec::new(),
                refs: Vec::new(),
                syntax_error: Some(
                    CellError::new(ErrorKind::Syntax, error.message).at(Some(line), Some(column)),
                ),
            }
        }
    }
}

fn kind_name(kind: CellKind) -> &'static str {
    match kind {
        CellKind::Setup => "setup",
        CellKind::Cell => "cell",
        CellKind::Function => "function",
        CellKind::Class => "class",
        CellKind::Unparsable => "unparsable",
    }
}

/// What to do when no executor runs `language`: for Python, where the
/// python plugin was looked for and the command that builds it.
pub(crate) fn missing_executor_hint(language: &str) -> String {
    if language != PYTHON {
        return format!("install an executor plugin that runs {language} cells");
    }
    let looked: Vec<String> = crate::plugins::bundled_candidates(language)
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    // A release build of cellrun looks beside itself in target/release.
    let release = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.file_name().map(|dir| dir == "release"))
        .unwrap_or(false);
    format!(
        "the python executor plugin was not found (looked for {}); build it with `cargo build{} -p plugin-python` \
         (it needs Python 3 with its shared library), or pass --plugin-dir DIR with a directory holding it",
        looked.join(" and "),
        if release { " --release" } else { "" }
    )
}
