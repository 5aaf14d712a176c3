//! marimo's notebook file: a Python module whose decorated functions are cells.
//!
//! The file is parsed as Python once; each top-level statement is then one of
//! the header (`import marimo`, `__generated_with`, `app = marimo.App(...)`),
//! the setup cell (`with app.setup:`), a cell (`@app.cell`, `@app.function`,
//! `@app.class_definition`, `app._unparsable_cell(...)`), or the run guard.
//! A cell's code is the text of its body, dedented, with its comments; the
//! parameters and the returned tuple marimo writes are not read, since a
//! cell's definitions and references come from its body.

use ruff_python_ast::token::{TokenKind, Tokens};
use ruff_python_ast::{self as ast, Expr, Stmt};
use ruff_text_size::{Ranged, TextRange, TextSize};

use crate::analysis::syntax_error;

/// How a cell is written in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// `with app.setup:`: runs first; its names are visible everywhere.
    Setup,
    /// `@app.cell` on a `def` or `async def`.
    Cell,
    /// `@app.function`: a top-level function that is its own cell.
    Function,
    /// `@app.class_definition`: a top-level class that is its own cell.
    Class,
    /// `app._unparsable_cell("...")`: code marimo saved as a string.
    Unparsable,
}

/// One cell of a marimo notebook, as written in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyCellSource {
    /// The cell's name, unique in the notebook: the function's name,
    /// `cell-N` (1-based position) for `_`, `setup` for the setup cell.
    pub name: String,
    /// The cell's code, dedented.
    pub code: String,
    /// The 1-based notebook line of the code's first line.
    pub first_line: u32,
    /// The columns removed from the front of each line by dedenting (or the
    /// column where the code starts, for a body on its `def` line).
    pub column_offset: u32,
    /// How the cell is written.
    pub kind: CellKind,
    /// Whether the cell is an `async def`.
    pub is_async: bool,
    /// Whether the cell is marked `disabled=True`.
    pub disabled: bool,
}

/// A notebook file split into cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PyNotebook {
    /// The cells in file order (the setup cell first when there is one).
    pub cells: Vec<PyCellSource>,
    /// Statements that are neither header nor cells, which marimo ignores too,
    /// each as a sentence naming its line.
    pub warnings: Vec<String>,
}

/// A file that cannot be read as a marimo notebook.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// The file has no `app = marimo.App(...)` and no cell.
    #[error("not a marimo notebook: no `app = marimo.App()` and no `@app.cell`")]
    NotMarimo,
    /// Python cannot parse the file outside any cell.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        /// What is wrong.
        message: String,
        /// The 1-based notebook line.
        line: u32,
        /// The 1-based column.
        column: u32,
    },
    /// Two cells have the same name.
    #[error("two cells are named `{name}`: at line {first_line} and at line {second_line}")]
    DuplicateName {
        /// The name.
        name: String,
        /// The first cell's line.
        first_line: u32,
        /// The second cell's line.
        second_line: u32,
    },
}

/// Splits a marimo notebook's text into its cells, in file order.
///
/// A cell whose body does not parse is still returned, with its text, so its
/// analysis reports the error at its notebook line.
///
/// # Errors
/// [`FormatError`] when the file is not a marimo notebook, has a syntax error
/// outside every cell, or names two cells alike.
pub fn parse_notebook(text: &str) -> Result<PyNotebook, FormatError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed = crate::deep::parse_module(text);
    let Some(module) = parsed.syntax().as_module() else {
        return Err(FormatError::NotMarimo);
    };
    let file = File::new(text, parsed.tokens());
    let mut notebook = PyNotebook::default();
    let mut cell_ranges = Vec::new();
    let mut has_app = false;
    for stmt in &module.body {
        match file.statement(stmt) {
            Statement::Cell(cell) => {
                notebook.cells.push(cell);
                cell_ranges.push(stmt.range());
            }
            Statement::App => has_app = true,
            Statement::Header => {}
            Statement::Ignored(warning) => notebook.warnings.push(warning),
        }
    }
    for error in parsed.errors() {
        let at = error.location.start();
        if !cell_ranges.iter().any(|range| range.contains_inclusive(at)) {
            let position = syntax_error(text, at, error.error.to_string());
            return Err(FormatError::Syntax {
                message: position.message,
                line: position.line,
                column: position.column,
            });
        }
    }
    if !has_app && notebook.cells.is_empty() {
        return Err(FormatError::NotMarimo);
    }
    name_cells(&mut notebook.cells)?;
    Ok(notebook)
}

/// The cells among `part`, a run of whole top-level statements of a
/// notebook whose first line is the notebook's line `first_line`
/// (1-based), with the notebook's line numbers; a cell without a name
/// keeps `_`. Nothing when the part does not parse: this reads the cells
/// of a part of a large notebook quickly (as the python plugin's compile
/// helper does, from the end), and checks nothing.
pub fn parse_cells_in(part: &str, first_line: u32) -> Vec<PyCellSource> {
    let parsed = crate::deep::parse_module(part);
    let Some(module) = parsed.syntax().as_module() else {
        return Vec::new();
    };
    if !parsed.errors().is_empty() {
        return Vec::new();
    }
    let file = File::new(part, parsed.tokens());
    module
        .body
        .iter()
        .filter_map(|stmt| match file.statement(stmt) {
            Statement::Cell(mut cell) => {
                cell.first_line += first_line - 1;
                Some(cell)
            }
            _ => None,
        })
        .collect()
}

/// What a top-level statement of a notebook is.
enum Statement {
    /// A cell.
    Cell(PyCellSource),
    /// `app = marimo.App(...)`.
    App,
    /// An import of marimo, `__generated_with` or the `__main__` guard.
    Header,
    /// Anything else, with the warning that says it is ignored.
    Ignored(String),
}

/// Gives unnamed cells their positional name and rejects duplicates.
fn name_cells(cells: &mut [PyCellSource]) -> Result<(), FormatError> {
    let mut seen: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (index, cell) in cells.iter_mut().enumerate() {
        if cell.name == "_" || cell.name == "__" {
            cell.name = format!("cell-{}", index + 1);
        }
        if let Some(first_line) = seen.insert(cell.name.clone(), cell.first_line) {
            return Err(FormatError::DuplicateName {
                name: cell.name.clone(),
                first_line,
                second_line: cell.first_line,
            });
        }
    }
    Ok(())
}

/// Whether `expr` is `app.<attr>` for one of `attrs`, or a call of it.
fn app_attribute<'a>(expr: &'a Expr, attrs: &[&'a str]) -> Option<&'a str> {
    let expr = match expr {
        Expr::Call(call) => &*call.func,
        expr => expr,
    };
    let Expr::Attribute(attribute) = expr else {
        return None;
    };
    let Expr::Name(base) = &*attribute.value else {
        return None;
    };
    let attr = attribute.attr.as_str();
    (base.id.as_str() == "app" && attrs.contains(&attr)).then_some(attr)
}

/// The cell decorator among `decorators` and which one it is.
fn app_decorator(decorators: &[ast::Decorator]) -> Option<(&ast::Decorator, &str)> {
    decorators.iter().find_map(|decorator| {
        app_attribute(
            &decorator.expression,
            &["cell", "function", "class_definition"],
        )
        .map(|attr| (decorator, attr))
    })
}

fn is_setup(with: &ast::StmtWith) -> bool {
    with.items.len() == 1 && app_attribute(&with.items[0].context_expr, &["setup"]).is_some()
}

fn unparsable_call(expr: &Expr) -> Option<&ast::ExprCall> {
    let Expr::Call(call) = expr else {
        return None;
    };
    (app_attribute(&call.func, &["_unparsable_cell"]).is_some() && call.arguments.args.len() == 1)
        .then_some(call)
}

fn is_app_assignment(assign: &ast::StmtAssign) -> bool {
    let [Expr::Name(target)] = assign.targets.as_slice() else {
        return false;
    };
    let Expr::Call(call) = &*assign.value else {
        return false;
    };
    let Expr::Attribute(attribute) = &*call.func else {
        return false;
    };
    target.id.as_str() == "app" && attribute.attr.as_str() == "App"
}

/// The statements marimo writes around the cells: imports, the version,
/// docstrings and the `if __name__ == "__main__":` guard.
fn is_header_or_guard(stmt: &Stmt) -> bool {
    match stmt {
        Stmt::Import(_) | Stmt::ImportFrom(_) => true,
        Stmt::Expr(expr) => matches!(&*expr.value, Expr::StringLiteral(_)),
        Stmt::Assign(assign) => matches!(
            assign.targets.as_slice(),
            [Expr::Name(name)] if name.id.as_str() == "__generated_with"
        ),
        Stmt::If(if_) => matches!(
            &*if_.test,
            Expr::Compare(compare) if matches!(&*compare.left, Expr::Name(name) if name.id.as_str() == "__name__")
        ),
        _ => false,
    }
}

/// The notebook's text with its line starts and string tokens.
struct File<'a> {
    text: &'a str,
    tokens: &'a Tokens,
    line_starts: Vec<usize>,
    /// Ranges of string literals that span lines, in file order and
    /// disjoint: their inner lines keep their indentation.
    multiline_strings: Vec<TextRange>,
}

impl<'a> File<'a> {
    fn new(text: &'a str, tokens: &'a Tokens) -> File<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        let mut multiline_strings = Vec::new();
        let mut open: Option<(usize, TextSize)> = None;
        for token in tokens.iter() {
            match token.kind() {
                TokenKind::String => multiline_strings.push(token.range()),
                TokenKind::FStringStart | TokenKind::TStringStart => {
                    open = match open {
                        Some((depth, start)) => Some((depth + 1, start)),
                        None => Some((1, token.start())),
                    };
                }
                TokenKind::FStringEnd | TokenKind::TStringEnd => {
                    open = match open {
                        Some((1, start)) => {
                            multiline_strings.push(TextRange::new(start, token.end()));
                            None
                        }
                        Some((depth, start)) => Some((depth - 1, start)),
                        None => None,
                    };
                }
                _ => {}
            }
        }
        multiline_strings.retain(|range| text[*range].contains('\n'));
        // A string inside an f-string's field comes before the f-string:
        // in file order, nested ranges merged into the outer one.
        multiline_strings.sort_by_key(|range| range.start());
        multiline_strings.dedup_by(|next, kept| {
            let nested = next.start() < kept.end();
            if nested {
                *kept = kept.cover(*next);
            }
            nested
        });
        File {
            text,
            tokens,
            line_starts,
            multiline_strings,
        }
    }

    /// What `stmt`, a top-level statement of this file, is.
    fn statement(&self, stmt: &Stmt) -> Statement {
        if let Stmt::Expr(expr) = stmt {
            if let Some(call) = unparsable_call(&expr.value) {
                return Statement::Cell(self.unparsable_cell(call));
            }
        }
        match stmt {
            Stmt::With(with) if is_setup(with) => Statement::Cell(self.setup_cell(with)),
            Stmt::FunctionDef(function) => match app_decorator(&function.decorator_list) {
                Some((decorator, "cell")) => {
                    Statement::Cell(self.function_cell(function, decorator))
                }
                Some((decorator, "function")) => Statement::Cell(self.whole_cell(
                    stmt,
                    decorator,
                    function.name.as_str(),
                    CellKind::Function,
                    &function.body,
                )),
                _ => Statement::Ignored(self.ignored(stmt)),
            },
            Stmt::ClassDef(class) => match app_decorator(&class.decorator_list) {
                Some((decorator, "class_definition")) => Statement::Cell(self.whole_cell(
                    stmt,
                    decorator,
                    class.name.as_str(),
                    CellKind::Class,
                    &class.body,
                )),
                _ => Statement::Ignored(self.ignored(stmt)),
            },
            Stmt::Assign(assign) if is_app_assignment(assign) => Statement::App,
            _ if is_header_or_guard(stmt) => Statement::Header,
            _ => Statement::Ignored(self.ignored(stmt)),
        }
    }

    /// The 0-based line of byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset) - 1
    }

    fn line_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The end of `line`'s text, before its newline.
    fn line_end(&self, line: usize) -> usize {
        match self.line_starts.get(line + 1) {
            Some(next) => next - 1,
            None => self.text.len(),
        }
    }

    fn line_text(&self, line: usize) -> &'a str {
        &self.text[self.line_start(line)..self.line_end(line)]
    }

    fn ignored(&self, stmt: &Stmt) -> String {
        format!(
            "line {}: a statement outside any cell is ignored",
            self.line_of(stmt.start().into()) + 1
        )
    }

    /// The end of the colon that ends the header of a block whose body starts at `body`.
    fn header_end(&self, body: TextSize) -> usize {
        let before = self.tokens.partition_point(|token| token.start() < body);
        self.tokens[..before]
            .iter()
            .rev()
            .find(|token| token.kind() == TokenKind::Colon)
            .map_or(usize::from(body), |token| token.end().into())
    }

    /// Extends `end` (the end of a block's last statement) over the comment
    /// and blank lines after it that are indented like the block's body.
    fn trailing_comments(&self, end: usize, body_start: usize) -> usize {
        let body_line = self.line_text(self.line_of(body_start));
        let indent = leading(body_line);
        if indent.is_empty() {
            return end;
        }
        let mut end = end;
        let mut line = self.line_of(end) + 1;
        while line < self.line_starts.len() {
            let text = self.line_text(line);
            if text.trim().is_empty() {
                line += 1;
                continue;
            }
            if text.starts_with(indent) && text.trim_start().starts_with('#') {
                end = self.line_end(line);
                line += 1;
                continue;
            }
            break;
        }
        end
    }

    /// The code between byte offsets `start` and `end`, dedented as
    /// marimo's `fixed_dedent` does, with the first line's number and the
    /// removed indentation.
    ///
    /// The indentation removed is the first code line's; a code line
    /// indented less (a comment at column 0, say) is left as it is. The
    /// inner lines of a string that spans lines are dedented with the code
    /// unless one of them is indented less, which would change the string:
    /// then the string's lines stay as they are.
    fn code(&self, start: usize, end: usize) -> (String, u32, u32) {
        let end = end.max(start);
        let first = self.line_of(start);
        let on_header_line = !self.text[self.line_start(first)..start].trim().is_empty();
        let mut lines: Vec<(&str, bool)> = Vec::new();
        let mut at = start;
        while at < end {
            let line_end = self.text[at..end].find('\n').map_or(end, |i| at + i);
            lines.push((&self.text[at..line_end], self.in_multiline_string(at)));
            at = line_end + 1;
        }
        while lines.last().is_some_and(|(line, _)| line.trim().is_empty()) {
            lines.pop();
        }
        let base = if on_header_line {
            ""
        } else {
            lines
                .iter()
                .find(|(line, inside)| !inside && !line.trim().is_empty())
                .map_or("", |(line, _)| leading(line))
        };
        let shift = base.chars().count();
        let mut code = String::new();
        // Each string's inner lines come as one group, every other line alone.
        for group in lines.chunk_by(|(_, before), (_, after)| *before && *after) {
            let kept_string = group[0].1
                && group.iter().any(|(line, _)| {
                    !line.trim().is_empty() && leading(line).chars().count() < shift
                });
            for (line, inside) in group {
                let kept = if kept_string {
                    line
                } else if *inside || line.starts_with(base) {
                    strip_indent(line, shift)
                } else {
                    line
                };
                // Blank lines of code keep no whitespace.
                if *inside || !kept.trim().is_empty() {
                    code.push_str(kept);
                }
                code.push('\n');
            }
        }
        let column = if on_header_line {
            self.text[self.line_start(first)..start].chars().count()
        } else {
            shift
        };
        (code, first as u32 + 1, column as u32)
    }

    /// Whether the line starting at byte `offset` is an inner line of a
    /// string that spans lines (it starts after the string opens).
    fn in_multiline_string(&self, offset: usize) -> bool {
        let offset = TextSize::try_from(offset).unwrap_or_default();
        // In file order and disjoint: the one that could hold `offset` is
        // the last to start before it.
        let before = self
            .multiline_strings
            .partition_point(|range| range.start() < offset);
        before > 0 && offset < self.multiline_strings[before - 1].end()
    }

    fn cell(&self, name: &str, kind: CellKind, start: usize, end: usize) -> PyCellSource {
        let (code, first_line, column_offset) = self.code(start, end);
        PyCellSource {
            name: name.to_owned(),
            code,
            first_line,
            column_offset,
            kind,
            is_async: false,
            disabled: false,
        }
    }

    /// Where a block's body text starts: after the header's colon, on the
    /// next line unless the body shares the header's line.
    fn body_start(&self, body: &[Stmt], fallback: usize) -> usize {
        let Some(first) = body.first() else {
            return fallback;
        };
        let colon = self.header_end(first.start());
        if self.line_of(colon) == self.line_of(first.start().into()) {
            colon + leading(&self.text[colon..]).len()
        } else {
            self.line_start(self.line_of(colon) + 1)
        }
    }

    fn setup_cell(&self, with: &ast::StmtWith) -> PyCellSource {
        let start = self.body_start(&with.body, with.end().into());
        let end = self.trailing_comments(with.end().into(), start);
        let mut cell = self.cell("setup", CellKind::Setup, start, end);
        if let Some(code) = cell.code.strip_suffix("\npass\n") {
            cell.code = format!("{code}\n");
        }
        cell
    }

    fn function_cell(
        &self,
        function: &ast::StmtFunctionDef,
        decorator: &ast::Decorator,
    ) -> PyCellSource {
        let start = self.body_start(&function.body, function.end().into());
        let end = match function.body.split_last() {
            Some((Stmt::Return(ret), rest)) => {
                let ret_start = usize::from(ret.start());
                let shares_line = rest.last().is_some_and(|previous| {
                    self.line_of(previous.end().into()) == self.line_of(ret_start)
                }) || self.line_of(ret_start) == self.line_of(start);
                if shares_line {
                    ret_start
                } else {
                    self.line_start(self.line_of(ret_start))
                }
            }
            _ => self.trailing_comments(function.end().into(), start),
        };
        let mut cell = self.cell(function.name.as_str(), CellKind::Cell, start, end);
        cell.is_async = function.is_async;
        cell.disabled = decorator_flag(decorator, "disabled");
        cell
    }

    /// A cell whose code is the whole definition after the app decorator.
    fn whole_cell(
        &self,
        stmt: &Stmt,
        decorator: &ast::Decorator,
        name: &str,
        kind: CellKind,
        body: &[Stmt],
    ) -> PyCellSource {
        let start = self.line_start(self.line_of(decorator.end().into()) + 1);
        let body_start = self.body_start(body, stmt.end().into());
        let end = self.trailing_comments(stmt.end().into(), body_start);
        let mut cell = self.cell(name, kind, start, end);
        cell.disabled = decorator_flag(decorator, "disabled");
        cell
    }

    fn unparsable_cell(&self, call: &ast::ExprCall) -> PyCellSource {
        let name = call
            .arguments
            .keywords
            .iter()
            .find(|keyword| {
                keyword
                    .arg
                    .as_ref()
                    .is_some_and(|arg| arg.as_str() == "name")
            })
            .and_then(|keyword| match &keyword.value {
                Expr::StringLiteral(name) => Some(name.value.to_str().to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| "_".to_owned());
        let (raw, literal_line) = match &call.arguments.args[0] {
            Expr::StringLiteral(literal) => (
                literal.value.to_str().to_owned(),
                self.line_of(literal.start().into()),
            ),
            other => (String::new(), self.line_of(other.start().into())),
        };
        let leading_lines = leading(&raw).matches('\n').count();
        let (code, column_offset) = dedent(&raw);
        PyCellSource {
            name,
            code,
            first_line: (literal_line + leading_lines) as u32 + 1,
            column_offset,
            kind: CellKind::Unparsable,
            is_async: false,
            disabled: false,
        }
    }
}

/// Whether the decorator is a call with `flag=True`.
fn decorator_flag(decorator: &ast::Decorator, flag: &str) -> bool {
    let Expr::Call(call) = &decorator.expression else {
        return false;
    };
    call.arguments.keywords.iter().any(|keyword| {
        keyword.arg.as_ref().is_some_and(|arg| arg.as_str() == flag)
            && matches!(
                keyword.value,
                Expr::BooleanLiteral(ast::ExprBooleanLiteral { value: true, .. })
            )
    })
}

/// The whitespace `line` starts with.
fn leading(line: &str) -> &str {
    &line[..line.len() - line.trim_start().len()]
}

/// `line` without up to `shift` of its leading spaces and tabs, as marimo
/// strips indentation.
fn strip_indent(line: &str, shift: usize) -> &str {
    let cut = line
        .bytes()
        .take(shift)
        .take_while(|byte| *byte == b' ' || *byte == b'\t')
        .count();
    &line[cut..]
}

/// Strips blank lines around `text` and the indentation its lines share.
fn dedent(text: &str) -> (String, u32) {
    let lines: Vec<&str> = text.trim_matches('\n').lines().collect();
    let indent = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| leading(line).len())
        .min()
        .unwrap_or(0);
    let mut code = String::new();
    for line in &lines {
        if !line.trim().is_empty() {
            code.push_str(line.get(indent..).unwrap_or(line.trim_start()));
        }
        code.push('\n');
    }
    let code = code.trim_end().to_owned() + "\n";
    (code, indent as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "import marimo\n\n__generated_with = \"0.25.2\"\napp = marimo.App()\n\n";

    fn cells(body: &str) -> Vec<PyCellSource> {
        parse_notebook(&format!("{HEADER}{body}"))
            .expect("a notebook")
            .cells
    }

    #[test]
    fn cells_are_named_by_function_position_or_setup() {
        let cells = cells(
            "with app.setup:\n    import math\n\n@app.cell\ndef _():\n    a = 1\n    return (a,)\n\n@app.cell\ndef named(a):\n    b = a\n    return\n\n@app.cell\ndef __():\n    c = 3\n    return\n",
        );
        let names: Vec<&str> = cells.iter().map(|cell| cell.name.as_str()).collect();
        assert_eq!(names, ["setup", "cell-2", "named", "cell-4"]);
        assert_eq!(cells[0].kind, CellKind::Setup);
        assert_eq!(
            (cells[0].code.as_str(), cells[0].first_line),
            ("import math\n", 7)
        );
        assert_eq!(
            (
                cells[1].code.as_str(),
                cells[1].first_line,
                cells[1].column_offset
            ),
            ("a = 1\n", 11, 4)
        );
    }

    #[test]
    fn body_code_keeps_comments_and_drops_the_return() {
        let cells = cells(
            "@app.cell\ndef f(a,\n      b):  # sig\n    # lead\n\n    x = a + b\n    # before return\n    return (x,)\n",
        );
        assert_eq!(cells[0].code, "# lead\n\nx = a + b\n# before return\n");
        assert_eq!(cells[0].first_line, 9);
    }

    #[test]
    fn a_body_on_the_def_line_starts_after_the_colon() {
        let cells = cells("@app.cell\ndef one(a): c = a + 1; return (c,)\n");
        assert_eq!(cells[0].code.trim(), "c = a + 1;");
        assert_eq!((cells[0].first_line, cells[0].column_offset), (7, 12));
    }

    #[test]
    fn multiline_strings_keep_their_indentation() {
        let plain = cells(
            "@app.cell\ndef f():\n    s = \"\"\"\nno indent\n      six\"\"\"\n    return (s,)\n",
        );
        assert_eq!(plain[0].code, "s = \"\"\"\nno indent\n      six\"\"\"\n");
        // As marimo dedents: a string whose inner lines are all indented
        // at least as the code is dedented with it; one with an inner line
        // indented less (the f-string's field) stays as it is; a code line
        // indented less (a comment at column 0) too.
        let mixed = cells(concat!(
            "@app.cell\ndef f():\n    a = f\"\"\"{'''\n  in field'''}\n    kept\"\"\"\n",
            "    b = '''\n        two'''\n# at column 0\n    return\n\n\n",
            "@app.cell\ndef g():\n    c = '''\n    own\n\n      more'''\n    d = 1\n    return\n",
        ));
        assert_eq!(
            mixed[0].code,
            "a = f\"\"\"{'''\n  in field'''}\n    kept\"\"\"\nb = '''\n    two'''\n# at column 0\n"
        );
        assert_eq!(mixed[1].code, "c = '''\nown\n\n  more'''\nd = 1\n");
    }

    #[test]
    fn async_disabled_functions_classes_and_unparsable_cells() {
        let cells = cells(
            "@app.cell(disabled=True)\nasync def a():\n    await x\n    return\n\n@app.function\ndef f(n):\n    return n\n\n@app.class_definition\nclass K:\n    v = 1\n\napp._unparsable_cell(\n    r\"\"\"\n    not python\n    \"\"\",\n    name=\"bad\"\n)\n",
        );
        assert!(cells[0].is_async && cells[0].disabled);
        assert_eq!(
            (
                cells[1].kind,
                cells[1].name.as_str(),
                cells[1].code.as_str()
            ),
            (CellKind::Function, "f", "def f(n):\n    return n\n")
        );
        assert_eq!(
            (cells[2].kind, cells[2].name.as_str()),
            (CellKind::Class, "K")
        );
        assert_eq!(
            (
                cells[3].kind,
                cells[3].name.as_str(),
                cells[3].code.as_str()
            ),
            (CellKind::Unparsable, "bad", "not python\n")
        );
        assert_eq!(cells[3].first_line, 21);
    }

    #[test]
    fn a_syntax_error_inside_a_cell_is_left_to_its_analysis() {
        let cells = cells("@app.cell\ndef f():\n    x = (\n    return\n\n@app.cell\ndef g():\n    y = 1\n    return\n");
        assert!(cells.iter().any(|cell| cell.name == "f"));
    }

    #[test]
    fn bad_files_are_errors() {
        assert_eq!(
            parse_notebook("print('hello')\n"),
            Err(FormatError::NotMarimo)
        );
        let error = parse_notebook(&format!("{HEADER}x = (\n")).unwrap_err();
        assert!(
            matches!(error, FormatError::Syntax { line: 7, .. }),
            "{error}"
        );
        let error = parse_notebook(&format!(
            "{HEADER}@app.cell\ndef a():\n    return\n\n@app.cell\ndef a():\n    return\n"
        ))
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "two cells are named `a`: at line 8 and at line 12"
        );
    }

    #[test]
    fn stray_statements_are_warnings() {
        let notebook = parse_notebook(&format!(
            "{HEADER}x = 1\n\n@app.cell\ndef a():\n    return\n"
        ))
        .unwrap();
        assert_eq!(
            notebook.warnings,
            ["line 6: a statement outside any cell is ignored"]
        );
    }

    /// Any run of a notebook's cells, read from the lines their decorators
    /// start, gives the cells (code and lines) reading the whole file gives.
    #[test]
    fn cells_read_in_parts_are_those_of_the_whole_file() {
        for text in [
            include_str!("../tests/parity/notebooks/tricky.py"),
            include_str!("../tests/parity/notebooks/layout.py"),
            include_str!("../tests/parity/notebooks/nesting.py"),
            include_str!("../../examples/tour.py"),
        ] {
            let whole = parse_notebook(text).unwrap();
            let key = |cell: &PyCellSource| (cell.first_line, cell.code.clone(), cell.kind);
            let starts: Vec<usize> = text
                .match_indices("\n@app.")
                .map(|(at, _)| at + 1)
                .collect();
            assert!(starts.len() > 3);
            let line = |at: usize| text[..at].matches('\n').count() as u32 + 1;
            for (index, from) in starts.iter().enumerate() {
                for to in starts[index + 1..].iter().chain([&text.len()]) {
                    for cell in parse_cells_in(&text[*from..*to], line(*from)) {
                        assert!(
                            whole.cells.iter().any(|known| key(known) == key(&cell)),
                            "{cell:?} from {from}..{to}"
                        );
                    }
                }
            }
            let from_each: Vec<_> = starts
                .iter()
                .zip(starts.iter().skip(1).chain([&text.len()]))
                .flat_map(|(from, to)| parse_cells_in(&text[*from..*to], line(*from)))
                .map(|cell| key(&cell))
                .collect();
            // Every cell from the first decorator on.
            let first_line = line(starts[0]);
            let after: Vec<_> = whole
                .cells
                .iter()
                .filter(|cell| cell.first_line > first_line)
                .map(key)
                .collect();
            assert_eq!(from_each, after);
        }
        assert!(parse_cells_in("x = (\n", 1).is_empty());
    }
}
