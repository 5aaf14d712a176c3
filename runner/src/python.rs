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
    let analysed = analyse_all(&parsed.cells);
    let defined: HashSet<&str> = analysed
        .iter()
        .flat_map(|cell| cell.defs.iter().map(String::as_str))
        .collect();
    let defined: HashSet<String> = defined.into_iter().map(str::to_owned).collect();
    let cells = analysed
        .into_iter()
        .map(|mut cell| {
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

/// From how many cells a notebook's cells are analysed on several threads.
/// Below, the analysis takes less time than the python plugin's
/// interpreter takes to start beside it, and a second thread would only
/// compete with that start (paired runs of the 1,000-cell fan-out: 1.08x).
/// `cellrun check` of fan-outs of 5,000 and 10,000 cells: 0.91x and 0.92x
/// (medians of 9 runs); their runs, 0.97x and 0.99x.
const PARALLEL_CELLS: usize = 2000;

/// Each cell's analysis, in order. A cell's analysis depends on no other
/// cell's, so a large notebook's are shared out among the machine's cores
/// (four at most), in runs of neighbouring cells; a thread that cannot be
/// started leaves its run to this one.
fn analyse_all(cells: &[PyCellSource]) -> Vec<AnalysedCell> {
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get().min(4));
    if threads < 2 || cells.len() < PARALLEL_CELLS {
        return cells.iter().map(analyse).collect();
    }
    let run = cells.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut runs = cells.chunks(run);
        let mine = runs.next().unwrap_or_default();
        let others: Vec<_> = runs
            .map(|cells| {
                let spawned = std::thread::Builder::new()
                    .name("cellrun-analyse".into())
                    .spawn_scoped(scope, move || cells.iter().map(analyse).collect::<Vec<_>>());
                (cells, spawned)
            })
            .collect();
        let mut analysed: Vec<AnalysedCell> = mine.iter().map(analyse).collect();
        for (cells, spawned) in others {
            match spawned {
                Ok(thread) => analysed.extend(
                    thread
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                ),
                Err(_) => analysed.extend(cells.iter().map(analyse)),
            }
        }
        analysed
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A notebook large enough to be analysed on several threads gives
    /// the cells, in order, and the errors one thread gives.
    #[test]
    fn cells_analysed_on_several_threads_are_those_of_one() {
        let mut text = String::from("import marimo\napp = marimo.App()\n");
        let count = PARALLEL_CELLS + 777;
        for index in 0..count {
            let body = match index {
                0 => "x_0 = 0".to_owned(),
                1234 => "yield 1".to_owned(),
                2345 => "return 5".to_owned(),
                _ => format!("x_{index} = x_{} + 1", index - 1),
            };
            text.push_str(&format!(
                "\n\n@app.cell\ndef c{index}():\n    {body}\n    return\n"
            ));
        }
        let parsed = python_notebook::parse_notebook(&text).unwrap();
        assert_eq!(parsed.cells.len(), count);
        let one: Vec<AnalysedCell> = parsed.cells.iter().map(analyse).collect();
        let several = analyse_all(&parsed.cells);
        assert_eq!(several, one);
        assert_eq!(several[2000].defs, ["x_2000"]);
        assert_eq!(several[2000].refs, ["x_1999"]);
        let errors: Vec<(usize, u32)> = several
            .iter()
            .enumerate()
            .filter_map(|(index, cell)| Some((index, cell.syntax_error.as_ref()?.line?)))
            .collect();
        // Two lines of header, then six a cell, its body the fifth.
        let line = |index: usize| 7 + 6 * index as u32;
        assert_eq!(errors, [(1234, line(1234)), (2345, line(2345))]);
    }
}
