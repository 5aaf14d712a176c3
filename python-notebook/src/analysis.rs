//! Definitions and references of one Python cell, by marimo's scoping rules.
//!
//! The walk mirrors marimo's `ScopedVisitor`: a stack of blocks (the cell's
//! top level, then one per function, class, lambda and comprehension), a
//! name bound in any block of the stack is not a reference, and a name bound
//! at the top level after a nested scope read it removes that read.
//! Children are visited in the field order of Python's own `ast` module,
//! because that order decides some outcomes (`for x in x:` binds `x` before
//! reading it, decorators are read after the body they decorate).

use std::collections::{HashMap, HashSet};

use ruff_python_ast::token::TokenKind;
use ruff_python_ast::{
    self as ast, ExceptHandler, Expr, ExprContext, InterpolatedStringElement, Parameters, Pattern,
    Stmt, TypeParam,
};
use ruff_text_size::{Ranged, TextSize};

/// What one cell defines and reads.
///
/// Names are listed once each, in the order of their first occurrence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Public names bound at the cell's top level: the cell's outputs.
    pub defs: Vec<String>,
    /// Private names (`_x`, and `__` exactly) bound at the top level; they
    /// never leave the cell.
    pub private_defs: Vec<String>,
    /// Free names the cell reads, builtins included (as marimo lists them);
    /// private names are never references.
    pub refs: Vec<String>,
    /// References the cell deletes with `del`.
    pub deleted_refs: Vec<String>,
    /// Whether the cell's top level awaits (`await`, `async for`, `async with`).
    pub top_level_await: bool,
}

/// A cell that is not valid Python, with its position in the cell's code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {column})")]
pub struct SyntaxError {
    /// What is wrong, without the position.
    pub message: String,
    /// The 1-based line in the cell's code.
    pub line: u32,
    /// The 1-based column, in characters.
    pub column: u32,
}

/// Whether `name` is private to its cell: `_x` or exactly `__`, not a dunder.
pub fn is_private(name: &str) -> bool {
    name == "__" || (name.starts_with('_') && !name.starts_with("__"))
}

/// The names Python resolves without any cell defining them: the
/// `builtins` module's (Python 3.9 to 3.14) and the module attributes every
/// script has.
const BUILTINS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BaseExceptionGroup",
    "BlockingIOError",
    "BrokenPipeError",
    "BufferError",
    "BytesWarning",
    "ChildProcessError",
    "ConnectionAbortedError",
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "DeprecationWarning",
    "EOFError",
    "Ellipsis",
    "EncodingWarning",
    "EnvironmentError",
    "Exception",
    "ExceptionGroup",
    "False",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "FutureWarning",
    "GeneratorExit",
    "IOError",
    "ImportError",
    "ImportWarning",
    "IndentationError",
    "IndexError",
    "InterruptedError",
    "IsADirectoryError",
    "KeyError",
    "KeyboardInterrupt",
    "LookupError",
    "MemoryError",
    "ModuleNotFoundError",
    "NameError",
    "None",
    "NotADirectoryError",
    "NotImplemented",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PendingDeprecationWarning",
    "PermissionError",
    "ProcessLookupError",
    "PythonFinalizationError",
    "RecursionError",
    "ReferenceError",
    "ResourceWarning",
    "RuntimeError",
    "RuntimeWarning",
    "StopAsyncIteration",
    "StopIteration",
    "SyntaxError",
    "SyntaxWarning",
    "SystemError",
    "SystemExit",
    "TabError",
    "TimeoutError",
    "True",
    "TypeError",
    "UnboundLocalError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "UnicodeError",
    "UnicodeTranslateError",
    "UnicodeWarning",
    "UserWarning",
    "ValueError",
    "Warning",
    "ZeroDivisionError",
    "__build_class__",
    "__builtin__",
    "__builtins__",
    "__class__",
    "__debug__",
    "__doc__",
    "__file__",
    "__import__",
    "__loader__",
    "__name__",
    "__package__",
    "__spec__",
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "bool",
    "breakpoint",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "classmethod",
    "compile",
    "complex",
    "copyright",
    "credits",
    "delattr",
    "dict",
    "dir",
    "divmod",
    "enumerate",
    "eval",
    "exec",
    "exit",
    "filter",
    "float",
    "format",
    "frozenset",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "license",
    "list",
    "locals",
    "map",
    "max",
    "memoryview",
    "min",
    "next",
    "object",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "property",
    "quit",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "setattr",
    "slice",
    "sorted",
    "staticmethod",
    "str",
    "sum",
    "super",
    "tuple",
    "type",
    "vars",
    "zip",
];

/// Whether Python resolves `name` by itself (`print`, `len`, `__file__`),
/// so that a read of it needs no cell to define it.
pub fn is_builtin(name: &str) -> bool {
    BUILTINS.binary_search(&name).is_ok()
}

/// Parses and analyses one cell's code.
///
/// # Errors
/// A [`SyntaxError`] for code Python would not compile as a cell: a parse
/// error, nesting past CPython's tokenizer limits (200 brackets, 99 indented
/// blocks), `import *` (which marimo refuses), the errors of CPython's
/// symbol table (a `global` or `nonlocal` declaration after the name's use,
/// binding or annotation or of a parameter, a `nonlocal` name nothing
/// binds, `nonlocal` at the top level, a duplicate parameter), `return`,
/// `yield` or `await` outside a function (or an `async` one), `break` or
/// `continue` outside a loop.
pub fn analyze(code: &str) -> Result<Analysis, SyntaxError> {
    let parsed = crate::deep::parse_module(code);
    // Whichever CPython meets first (its tokenizer counts nesting as it
    // goes); the nesting limit when both are at one place.
    let limit = crate::deep::past_tokenizer_limits(parsed.tokens())
        .map(|(at, message)| (at, message.to_owned()));
    let parse_error = parsed
        .errors()
        .first()
        .map(|error| (error.location.start(), error.error.to_string()));
    if let Some((at, message)) = [limit, parse_error]
        .into_iter()
        .flatten()
        .min_by_key(|(at, _)| *at)
    {
        return Err(syntax_error(code, at, message));
    }
    let Some(module) = parsed.syntax().as_module() else {
        return Err(syntax_error(code, TextSize::new(0), "not a module".into()));
    };
    let mut visitor = Visitor::new();
    visitor.visit_body(&module.body);
    // In marimo's order: its own refusal of `import *`, then what CPython's
    // symbol table raises, then its compiler (`return` outside a function).
    if let Some(offset) = visitor.star_import {
        let message = "importing symbols with `import *` is not allowed in a notebook cell";
        return Err(syntax_error(code, offset, message.to_owned()));
    }
    // Each of these errors needs one of these keywords in the code: most
    // cells have none, and skip the walks.
    let (mut declares, mut jumps) = (false, false);
    for token in parsed.tokens() {
        match token.kind() {
            TokenKind::Global
            | TokenKind::Nonlocal
            | TokenKind::Def
            | TokenKind::Lambda
            | TokenKind::ColonEqual => {
                declares = true;
            }
            // In a comprehension, the symbol table's error; elsewhere, the
            // compiler's.
            TokenKind::Yield => (declares, jumps) = (true, true),
            TokenKind::Break
            | TokenKind::Continue
            | TokenKind::Await
            | TokenKind::Async
            | TokenKind::Return => {
                jumps = true;
            }
            _ => {}
        }
    }
    if declares {
        if let Some((offset, message)) = crate::symtable::first_error(&module.body) {
            return Err(syntax_error(code, offset, message));
        }
    }
    if jumps {
        if let Some((offset, message)) = crate::symtable::first_compiler_error(&module.body) {
            return Err(syntax_error(code, offset, message));
        }
    }
    Ok(visitor.finish())
}

/// A cell's code cut before its last statement when that statement is an
/// expression whose value is the cell's output (no `;` after it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputSplit<'a> {
    /// Everything before the last statement.
    pub body: &'a str,
    /// The last statement's expression, when it is the cell's output.
    pub output: Option<&'a str>,
    /// How many lines of the code come before `output`'s first line.
    pub output_line: usize,
}

/// `code` cut into its statements and the expression whose value is its
/// output, as marimo shows a cell's last expression; `None` when the code
/// does not parse.
///
/// One line that starts an assignment or a statement keyword (`x = ...`,
/// `import ...`) has no output whatever follows, so it comes back whole
/// without being parsed (a third of what a one-line cell costs the plugin
/// besides CPython's compile); should it not parse, compiling it fails as
/// it would have.
pub fn split_output(code: &str) -> Option<OutputSplit<'_>> {
    let whole = OutputSplit {
        body: code,
        output: None,
        output_line: 0,
    };
    if is_one_silent_line(code) {
        return Some(whole);
    }
    let parsed = crate::deep::parse_module(code);
    if !parsed.errors().is_empty() {
        return None;
    }
    let Some(Stmt::Expr(last)) = parsed.syntax().as_module()?.body.last() else {
        return Some(whole);
    };
    let (start, end) = (usize::from(last.start()), usize::from(last.end()));
    if code[end..]
        .trim_start_matches([' ', '\t', '\x0c'])
        .starts_with(';')
    {
        return Some(whole);
    }
    Some(OutputSplit {
        body: &code[..start],
        output: Some(&code[start..end]),
        output_line: code[..start].matches('\n').count(),
    })
}

/// Keywords that start a statement which is not an expression.
const STATEMENT_KEYWORDS: &[&str] = &[
    "assert", "async", "break", "class", "continue", "def", "del", "for", "from", "global", "if",
    "import", "nonlocal", "pass", "raise", "return", "try", "while", "with",
];

/// Python's other keywords: a line starting with one of them may be an
/// expression (`not x`, `lambda: 0`, `await f()`) or a syntax error.
const OTHER_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "await", "elif", "else", "except", "finally", "in", "is",
    "lambda", "not", "or", "yield",
];

/// Augmented assignment operators, longest first.
const AUGMENTED: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "+=", "-=", "*=", "/=", "%=", "&=", "^=", "|=", "@=",
];

/// Whether `code` is one line (no `;`, no continuation) whose statement
/// cannot be an expression, judged from how it starts: a statement
/// keyword, or a plain name followed by `=`, an augmented assignment or
/// an annotation's `:`. Anything else (`x == 1`, `x := 1`, `a.b = 1`,
/// `lambda: 0`) says no, and the caller parses.
fn is_one_silent_line(code: &str) -> bool {
    let line = code.trim_end_matches([' ', '\t', '\n']);
    if line.contains(['\n', '\r', ';', '\\']) {
        return false;
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    if !word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return false;
    }
    if STATEMENT_KEYWORDS.contains(&word) {
        return true;
    }
    if OTHER_KEYWORDS.contains(&word) {
        return false;
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    (rest.starts_with('=') && !rest.starts_with("=="))
        || (rest.starts_with(':') && !rest.starts_with(":="))
        || AUGMENTED.iter().any(|operator| rest.starts_with(operator))
}

/// The public names a cell that does not parse appears to mean to define,
/// from the syntax tree the parser recovers.
///
/// Cells reading them can then be cancelled with a clear cause instead of
/// failing on an undefined name.
pub fn intended_defs(code: &str) -> Vec<String> {
    let parsed = crate::deep::parse_module(code);
    let Some(module) = parsed.syntax().as_module() else {
        return Vec::new();
    };
    let mut visitor = Visitor::new();
    visitor.visit_body(&module.body);
    visitor.finish().defs
}

/// Builds a [`SyntaxError`] at byte `offset` of `code`.
pub(crate) fn syntax_error(code: &str, offset: TextSize, message: String) -> SyntaxError {
    let offset = usize::from(offset).min(code.len());
    let before = &code[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |at| at + 1);
    let column = before[line_start..].chars().count() + 1;
    SyntaxError {
        message,
        line: line as u32,
        column: column as u32,
    }
}

/// One scope of the block stack.
struct Block {
    /// Identity of the block, unique within one analysis.
    id: usize,
    defs: HashSet<String>,
    globals: HashSet<String>,
    is_comprehension: bool,
}

/// One read of a name that no enclosing block binds.
struct RefSite {
    block: usize,
    /// Ids of the blocks enclosing `block`.
    parents: Vec<usize>,
    deleted: bool,
}

struct Visitor {
    blocks: Vec<Block>,
    next_block: usize,
    /// Reads by name; a name is a reference while it has a site.
    refs: HashMap<String, Vec<RefSite>>,
    /// Names in the order of their first read.
    ref_order: Vec<String>,
    /// Top-level definitions in order of first binding.
    def_order: Vec<String>,
    /// Names of the `except ... as name` handlers being visited.
    obscured: Vec<String>,
    /// Functions and lambdas around the current node.
    function_depth: usize,
    top_level_await: bool,
    /// The first `import *`, which marimo refuses before compiling.
    star_import: Option<TextSize>,
}

impl Visitor {
    fn new() -> Visitor {
        Visitor {
            blocks: vec![Block {
                id: 0,
                defs: HashSet::new(),
                globals: HashSet::new(),
                is_comprehension: false,
            }],
            next_block: 1,
            refs: HashMap::new(),
            ref_order: Vec::new(),
            def_order: Vec::new(),
            obscured: Vec::new(),
            function_depth: 0,
            top_level_await: false,
            star_import: None,
        }
    }

    fn finish(self) -> Analysis {
        let (private_defs, defs) = self
            .def_order
            .into_iter()
            .partition(|name| is_private(name));
        let mut refs = Vec::new();
        let mut deleted_refs = Vec::new();
        for name in self.ref_order {
            let Some(sites) = self.refs.get(&name) else {
                continue;
            };
            if sites.iter().any(|site| site.deleted) {
                deleted_refs.push(name.clone());
            }
            refs.push(name);
        }
        Analysis {
            defs,
            private_defs,
            refs,
            deleted_refs,
            top_level_await: self.top_level_await,
        }
    }

    fn push_block(&mut self, is_comprehension: bool) {
        self.blocks.push(Block {
            id: self.next_block,
            defs: HashSet::new(),
            globals: HashSet::new(),
            is_comprehension,
        });
        self.next_block += 1;
    }

    fn pop_block(&mut self) {
        self.blocks.pop();
    }

    fn is_defined(&self, name: &str) -> bool {
        self.blocks.iter().any(|block| block.defs.contains(name))
    }

    fn add_ref(&mut self, name: &str, deleted: bool) {
        let current = self.blocks.last().map_or(0, |block| block.id);
        let sites = match self.refs.get_mut(name) {
            Some(sites) => sites,
            None => {
                if !self.ref_order.iter().any(|seen| seen == name) {
                    self.ref_order.push(name.to_owned());
                }
                self.refs.entry(name.to_owned()).or_default()
            }
        };
        if let Some(site) = sites.iter_mut().find(|site| site.block == current) {
            site.deleted |= deleted;
        } else {
            let parents = self.blocks[..self.blocks.len() - 1]
                .iter()
                .map(|block| block.id)
                .collect();
            sites.push(RefSite {
                block: current,
                parents,
                deleted,
            });
        }
    }

    /// Binds `name` in the block at `index` of the stack.
    ///
    /// Reads of `name` made in scopes nested in that block were captures,
    /// not references, so they are dropped.
    fn define_in(&mut self, name: &str, index: usize) {
        let block = &mut self.blocks[index];
        let id = block.id;
        if block.defs.insert(name.to_owned()) && index == 0 {
            self.def_order.push(name.to_owned());
        }
        if let Some(sites) = self.refs.get_mut(name) {
            sites.retain(|site| !site.parents.contains(&id));
            if sites.is_empty() {
                self.refs.remove(name);
            }
        }
    }

    /// Binds `name` in the current block, or at the top level when the
    /// current block declared it `global`.
    fn define(&mut self, name: &str) {
        let last = self.blocks.len() - 1;
        let index = if self.blocks[last].globals.contains(name) {
            0
        } else {
            last
        };
        self.define_in(name, index);
    }

    fn visit_body(&mut self, body: &[Stmt]) {
        for stmt in body {
            self.visit_stmt(stmt);
        }
    }

    fn visit_opt(&mut self, expr: Option<&Expr>) {
        if let Some(expr) = expr {
            self.visit_expr(expr);
        }
    }

    fn visit_stmt(&mut self, stmt: &Stmt) {
        crate::deep::guarded(|| self.visit_stmt_here(stmt));
    }

    fn visit_stmt_here(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::FunctionDef(function) => self.visit_function(function),
            Stmt::ClassDef(class) => self.visit_class(class),
            Stmt::Return(ret) => self.visit_opt(ret.value.as_deref()),
            Stmt::Delete(delete) => {
                for target in &delete.targets {
                    self.visit_expr(target);
                }
            }
            Stmt::TypeAlias(alias) => {
                self.visit_expr(&alias.name);
                self.push_block(false);
                self.visit_type_params(alias.type_params.as_deref());
                self.visit_expr(&alias.value);
                self.pop_block();
            }
            Stmt::Assign(assign) => {
                self.visit_expr(&assign.value);
                for target in &assign.targets {
                    self.visit_expr(target);
                }
            }
            Stmt::AugAssign(assign) => {
                self.visit_expr(&assign.value);
                self.visit_expr(&assign.target);
            }
            Stmt::AnnAssign(assign) => {
                self.visit_opt(assign.value.as_deref());
                self.visit_expr(&assign.annotation);
                self.visit_expr(&assign.target);
            }
            Stmt::For(for_) => {
                if for_.is_async {
                    self.note_await();
                }
                self.visit_expr(&for_.target);
                self.visit_expr(&for_.iter);
                self.visit_body(&for_.body);
                self.visit_body(&for_.orelse);
            }
            Stmt::While(while_) => {
                self.visit_expr(&while_.test);
                self.visit_body(&while_.body);
                self.visit_body(&while_.orelse);
            }
            Stmt::If(if_) => {
                self.visit_expr(&if_.test);
                self.visit_body(&if_.body);
                for clause in &if_.elif_else_clauses {
                    self.visit_opt(clause.test.as_ref());
                    self.visit_body(&clause.body);
                }
            }
            Stmt::With(with) => {
                if with.is_async {
                    self.note_await();
                }
                for item in &with.items {
                    self.visit_expr(&item.context_expr);
                    self.visit_opt(item.optional_vars.as_deref());
                }
                self.visit_body(&with.body);
            }
            Stmt::Match(match_) => {
                self.visit_expr(&match_.subject);
                for case in &match_.cases {
                    self.visit_pattern(&case.pattern);
                    self.visit_opt(case.guard.as_deref());
                    self.visit_body(&case.body);
                }
            }
            Stmt::Raise(raise) => {
                self.visit_opt(raise.exc.as_deref());
                self.visit_opt(raise.cause.as_deref());
            }
            Stmt::Try(try_) => {
                self.visit_body(&try_.body);
                for handler in &try_.handlers {
                    let ExceptHandler::ExceptHandler(handler) = handler;
                    let name = handler.name.as_ref().map(|name| name.id.to_string());
                    let obscures = name.is_some();
                    if let Some(name) = name {
                        self.obscured.push(name);
                    }
                    self.visit_opt(handler.type_.as_deref());
                    self.visit_body(&handler.body);
                    if obscures {
                        self.obscured.pop();
                    }
                }
                self.visit_body(&try_.orelse);
                self.visit_body(&try_.finalbody);
            }
            Stmt::Assert(assert) => {
                self.visit_expr(&assert.test);
                self.visit_opt(assert.msg.as_deref());
            }
            Stmt::Import(import) => {
                for alias in &import.names {
                    self.visit_alias(alias, import.start());
                }
            }
            Stmt::ImportFrom(import) => {
                for alias in &import.names {
                    self.visit_alias(alias, import.start());
                }
            }
            Stmt::Global(global) => {
                for name in &global.names {
                    let name = name.id.as_str();
                    if let Some(block) = self.blocks.last_mut() {
                        block.globals.insert(name.to_owned());
                    }
                    if !self.blocks[0].defs.contains(name) && !is_private(name) {
                        self.add_ref(name, false);
                    }
                }
            }
            Stmt::Expr(expr) => self.visit_expr(&expr.value),
            Stmt::Nonlocal(_)
            | Stmt::Pass(_)
            | Stmt::Break(_)
            | Stmt::Continue(_)
            | Stmt::IpyEscapeCommand(_) => {}
        }
    }

    /// Records an `await` when it is at the cell's top level.
    fn note_await(&mut self) {
        if self.function_depth == 0 {
            self.top_level_await = true;
        }
    }

    fn visit_alias(&mut self, alias: &ast::Alias, statement: TextSize) {
        let name = match &alias.asname {
            Some(asname) => asname.id.to_string(),
            None => {
                let full = alias.name.id.as_str();
                let base = full.split('.').next().unwrap_or(full);
                if base == "*" {
                    self.star_import.get_or_insert(statement);
                    return;
                }
                base.to_owned()
            }
        };
        self.define(&name);
    }

    /// A `def`: its signature and decorators once on their own (what the
    /// definition reads from outside), then the whole function, as marimo does.
    fn visit_function(&mut self, function: &ast::StmtFunctionDef) {
        for with_body in [false, true] {
            self.push_block(false);
            self.visit_type_params(function.type_params.as_deref());
            self.visit_parameters(&function.parameters);
            if with_body {
                self.function_depth += 1;
                self.visit_body(&function.body);
                self.function_depth -= 1;
            }
            for decorator in &function.decorator_list {
                self.visit_expr(&decorator.expression);
            }
            self.visit_opt(function.returns.as_deref());
            self.pop_block();
        }
        self.define(function.name.id.as_str());
    }

    fn visit_class(&mut self, class: &ast::StmtClassDef) {
        for with_body in [false, true] {
            self.push_block(false);
            if let Some(arguments) = &class.arguments {
                self.visit_arguments(arguments);
            }
            if with_body {
                self.visit_body(&class.body);
            }
            for decorator in &class.decorator_list {
                self.visit_expr(&decorator.expression);
            }
            self.visit_type_params(class.type_params.as_deref());
            self.pop_block();
        }
        self.define(class.name.id.as_str());
    }

    fn visit_arguments(&mut self, arguments: &ast::Arguments) {
        for arg in &arguments.args {
            self.visit_expr(arg);
        }
        for keyword in &arguments.keywords {
            self.visit_expr(&keyword.value);
        }
    }

    /// Default values first (they are read before any parameter is bound),
    /// then each parameter and its annotation.
    fn visit_parameters(&mut self, parameters: &Parameters) {
        for parameter in &parameters.kwonlyargs {
            self.visit_opt(parameter.default.as_deref());
        }
        for parameter in parameters.posonlyargs.iter().chain(&parameters.args) {
            self.visit_opt(parameter.default.as_deref());
        }
        let bind = |visitor: &mut Visitor, parameter: &ast::Parameter| {
            visitor.define(parameter.name.id.as_str());
            visitor.visit_opt(parameter.annotation.as_deref());
        };
        for parameter in parameters.posonlyargs.iter().chain(&parameters.args) {
            bind(self, &parameter.parameter);
        }
        for parameter in &parameters.kwonlyargs {
            bind(self, &parameter.parameter);
        }
        if let Some(parameter) = &parameters.vararg {
            bind(self, parameter);
        }
        if let Some(parameter) = &parameters.kwarg {
            bind(self, parameter);
        }
    }

    fn visit_type_params(&mut self, type_params: Option<&ast::TypeParams>) {
        let Some(type_params) = type_params else {
            return;
        };
        for param in &type_params.type_params {
            match param {
                TypeParam::TypeVar(var) => {
                    self.define(var.name.id.as_str());
                    self.visit_opt(var.bound.as_deref());
                }
                TypeParam::ParamSpec(spec) => self.define(spec.name.id.as_str()),
                TypeParam::TypeVarTuple(tuple) => self.define(tuple.name.id.as_str()),
            }
        }
    }

    fn visit_comprehensions(&mut self, generators: &[ast::Comprehension]) {
        for generator in generators {
            self.visit_expr(&generator.iter);
            self.visit_expr(&generator.target);
            for condition in &generator.ifs {
                self.visit_expr(condition);
            }
        }
    }

    fn visit_pattern(&mut self, pattern: &Pattern) {
        crate::deep::guarded(|| self.visit_pattern_here(pattern));
    }

    fn visit_pattern_here(&mut self, pattern: &Pattern) {
        match pattern {
            Pattern::MatchValue(value) => self.visit_expr(&value.value),
            Pattern::MatchSingleton(_) => {}
            Pattern::MatchSequence(sequence) => {
                for pattern in &sequence.patterns {
                    self.visit_pattern(pattern);
                }
            }
            Pattern::MatchMapping(mapping) => {
                if let Some(rest) = &mapping.rest {
                    self.define(rest.id.as_str());
                }
                for key in &mapping.keys {
                    self.visit_expr(key);
                }
                for pattern in &mapping.patterns {
                    self.visit_pattern(pattern);
                }
            }
            Pattern::MatchClass(class) => {
                self.visit_expr(&class.cls);
                for pattern in &class.arguments.patterns {
                    self.visit_pattern(pattern);
                }
                for keyword in &class.arguments.keywords {
                    self.visit_pattern(&keyword.pattern);
                }
            }
            Pattern::MatchStar(star) => {
                if let Some(name) = &star.name {
                    self.define(name.id.as_str());
                }
            }
            Pattern::MatchAs(as_) => {
                if let Some(name) = &as_.name {
                    self.define(name.id.as_str());
                }
                if let Some(pattern) = &as_.pattern {
                    self.visit_pattern(pattern);
                }
            }
            Pattern::MatchOr(or) => {
                for pattern in &or.patterns {
                    self.visit_pattern(pattern);
                }
            }
        }
    }

    fn visit_interpolations(&mut self, elements: &[InterpolatedStringElement]) {
        for element in elements {
            if let InterpolatedStringElement::Interpolation(interpolation) = element {
                self.visit_expr(&interpolation.expression);
                if let Some(spec) = &interpolation.format_spec {
                    self.visit_interpolations(&spec.elements);
                }
            }
        }
    }

    fn visit_name(&mut self, name: &ast::ExprName) {
        let id = name.id.as_str();
        if self.obscured.iter().any(|obscured| obscured == id) {
            return;
        }
        match name.ctx {
            ExprContext::Store => self.define(id),
            ExprContext::Load if !self.is_defined(id) && !is_private(id) => {
                self.add_ref(id, false);
            }
            ExprContext::Del if !self.is_defined(id) && !is_private(id) => {
                self.add_ref(id, true);
            }
            _ => {}
        }
    }

    fn visit_expr(&mut self, expr: &Expr) {
        crate::deep::guarded(|| self.visit_expr_here(expr));
    }

    fn visit_expr_here(&mut self, expr: &Expr) {
        match expr {
            Expr::BoolOp(op) => {
                for value in &op.values {
                    self.visit_expr(value);
                }
            }
            Expr::Named(named) => {
                self.visit_expr(&named.value);
                let in_comprehension = self.blocks.last().is_some_and(|b| b.is_comprehension);
                match &*named.target {
                    Expr::Name(target) if in_comprehension => {
                        let index = self
                            .blocks
                            .iter()
                            .rposition(|block| !block.is_comprehension)
                            .unwrap_or(0);
                        self.define_in(target.id.as_str(), index);
                    }
                    target => self.visit_expr(target),
                }
            }
            Expr::BinOp(op) => {
                self.visit_expr(&op.left);
                self.visit_expr(&op.right);
            }
            Expr::UnaryOp(op) => self.visit_expr(&op.operand),
            Expr::Lambda(lambda) => {
                self.push_block(false);
                if let Some(parameters) = &lambda.parameters {
                    self.visit_parameters(parameters);
                }
                self.function_depth += 1;
                self.visit_expr(&lambda.body);
                self.function_depth -= 1;
                self.pop_block();
            }
            Expr::If(if_) => {
                self.visit_expr(&if_.test);
                self.visit_expr(&if_.body);
                self.visit_expr(&if_.orelse);
            }
            Expr::Dict(dict) => {
                for item in &dict.items {
                    self.visit_opt(item.key.as_ref());
                }
                for item in &dict.items {
                    self.visit_expr(&item.value);
                }
            }
            Expr::Set(set) => {
                for elt in &set.elts {
                    self.visit_expr(elt);
                }
            }
            Expr::ListComp(comp) => {
                self.push_block(true);
                self.visit_comprehensions(&comp.generators);
                self.visit_expr(&comp.elt);
                self.pop_block();
            }
            Expr::SetComp(comp) => {
                self.push_block(true);
                self.visit_comprehensions(&comp.generators);
                self.visit_expr(&comp.elt);
                self.pop_block();
            }
            Expr::Generator(comp) => {
                self.push_block(true);
                self.visit_comprehensions(&comp.generators);
                self.visit_expr(&comp.elt);
                self.pop_block();
            }
            Expr::DictComp(comp) => {
                self.push_block(true);
                self.visit_comprehensions(&comp.generators);
                self.visit_expr(&comp.value);
                self.visit_opt(comp.key.as_deref());
                self.pop_block();
            }
            Expr::Await(await_) => {
                self.note_await();
                self.visit_expr(&await_.value);
            }
            Expr::Yield(yield_) => self.visit_opt(yield_.value.as_deref()),
            Expr::YieldFrom(yield_) => self.visit_expr(&yield_.value),
            Expr::Compare(compare) => {
                self.visit_expr(&compare.left);
                for comparator in &compare.comparators {
                    self.visit_expr(comparator);
                }
            }
            Expr::Call(call) => {
                self.visit_expr(&call.func);
                self.visit_arguments(&call.arguments);
            }
            Expr::FString(fstring) => {
                for part in fstring.value.iter() {
                    if let ast::FStringPart::FString(part) = part {
                        self.visit_interpolations(&part.elements);
                    }
                }
            }
            Expr::TString(tstring) => {
                for part in tstring.value.iter() {
                    self.visit_interpolations(&part.elements);
                }
            }
            Expr::StringLiteral(_)
            | Expr::BytesLiteral(_)
            | Expr::NumberLiteral(_)
            | Expr::BooleanLiteral(_)
            | Expr::NoneLiteral(_)
            | Expr::EllipsisLiteral(_)
            | Expr::IpyEscapeCommand(_) => {}
            Expr::Attribute(attribute) => self.visit_expr(&attribute.value),
            Expr::Subscript(subscript) => {
                self.visit_expr(&subscript.value);
                self.visit_expr(&subscript.slice);
            }
            Expr::Starred(starred) => self.visit_expr(&starred.value),
            Expr::Name(name) => self.visit_name(name),
            Expr::List(list) => {
                for elt in &list.elts {
                    self.visit_expr(elt);
                }
            }
            Expr::Tuple(tuple) => {
                for elt in &tuple.elts {
                    self.visit_expr(elt);
                }
            }
            Expr::Slice(slice) => {
                self.visit_opt(slice.lower.as_deref());
                self.visit_opt(slice.upper.as_deref());
                self.visit_opt(slice.step.as_deref());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts the sorted defs and refs of `code`.
    #[track_caller]
    fn check(code: &str, defs: &[&str], refs: &[&str]) {
        let analysis = analyze(code).unwrap_or_else(|error| panic!("{code:?}: {error}"));
        let mut got_defs = analysis.defs.clone();
        got_defs.sort();
        let mut got_refs = analysis.refs.clone();
        got_refs.sort();
        let mut want_defs: Vec<&str> = defs.to_vec();
        want_defs.sort();
        let mut want_refs: Vec<&str> = refs.to_vec();
        want_refs.sort();
        assert_eq!(
            (got_defs, got_refs),
            (
                want_defs.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                want_refs.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            ),
            "{code}"
        );
    }

    #[test]
    fn assignments_define_and_values_read() {
        check("x = y", &["x"], &["y"]);
        check("a, (b, *c) = 1, (2, 3)", &["a", "b", "c"], &[]);
        check("x = 1\nx += y", &["x"], &["y"]);
        // An augmented assignment binds its target without reading it, as in marimo.
        check("x += 1", &["x"], &[]);
        check("x: int = 0", &["x"], &["int"]);
        check("x: T", &["x"], &["T"]);
        check("a = b = c", &["a", "b"], &["c"]);
    }

    #[test]
    fn attribute_and_subscript_targets_are_reads() {
        check("x.a = 1", &[], &["x"]);
        check("x.a.b = 1", &[], &["x"]);
        check("x[i] = 1", &[], &["x", "i"]);
        check("x = 1\nx.a = 2", &["x"], &[]);
    }

    #[test]
    fn imports_define_their_first_component_or_alias() {
        check("import a.b.c", &["a"], &[]);
        check("import a.b as c", &["c"], &[]);
        check("from a.b import c, d as e", &["c", "e"], &[]);
        check("from . import sibling", &["sibling"], &[]);
        let error = analyze("from a import *").unwrap_err();
        assert!(error.message.contains("import *"), "{error}");
    }

    #[test]
    fn function_bodies_read_free_names_only() {
        check("def f(a):\n    return a + b", &["f"], &["b"]);
        check("def f():\n    x = 0\n    return x", &["f"], &[]);
        check("def f():\n    return x\nx = 0", &["f", "x"], &[]);
        check("async def f():\n    await g()", &["f"], &["g"]);
    }

    #[test]
    fn defaults_annotations_and_decorators_are_read_outside() {
        check("def f(x=x):\n    pass", &["f"], &["x"]);
        check(
            "def f(a, *, k=kd, **kw) -> R:\n    pass",
            &["f"],
            &["kd", "R"],
        );
        check("@dec(arg)\ndef f():\n    pass", &["f"], &["dec", "arg"]);
        check("def f(a: A):\n    pass", &["f"], &["A"]);
        // The decorator is read before the body binds its name.
        check("@d\ndef f():\n    d = 1", &["f"], &["d"]);
    }

    #[test]
    fn classes_bodies_are_a_scope() {
        check(
            "class A(B, metaclass=M):\n    x = 1\n    y = x + z",
            &["A"],
            &["B", "M", "z"],
        );
        check("class A:\n    x = x", &["A"], &["x"]);
        check(
            "class A:\n    def m(self):\n        return self.v + w",
            &["A"],
            &["w"],
        );
    }

    #[test]
    fn loops_and_withs_bind_their_targets() {
        check("for i in items:\n    pass", &["i"], &["items"]);
        check(
            "for i, (j, k) in xs:\n    t = i",
            &["i", "j", "k", "t"],
            &["xs"],
        );
        check(
            "with open(p) as f, l:\n    pass",
            &["f"],
            &["open", "p", "l"],
        );
        // The target is bound before the iterable is read, as marimo visits it.
        check("for x in x:\n    pass", &["x"], &[]);
    }

    #[test]
    fn comprehensions_are_scopes_but_walrus_leaks() {
        check("[i for i in range(n)]", &[], &["range", "n"]);
        check("{k: v for k, v in d.items()}", &[], &["d"]);
        check("[x for x in x]", &[], &["x"]);
        check("[y for v in vs if (y := v)]", &["y"], &["vs"]);
        check("[[w := q for q in row] for row in grid]", &["w"], &["grid"]);
        check("if (n := len(d)) > 1:\n    pass", &["n"], &["len", "d"]);
        check("def f():\n    [y := 1 for _ in r]", &["f"], &["r"]);
    }

    #[test]
    fn lambdas_are_scopes() {
        check("f = lambda a, b=d: a + b + c", &["f"], &["d", "c"]);
        check("g = lambda: h", &["g"], &["h"]);
    }

    #[test]
    fn except_names_do_not_outlive_the_handler() {
        check(
            "try:\n    f()\nexcept E as e:\n    m = e\nprint(e)",
            &["m"],
            &["f", "E", "print", "e"],
        );
        check("try:\n    pass\nexcept* E as e:\n    pass", &[], &["E"]);
    }

    #[test]
    fn deletes_are_deleted_references() {
        let analysis = analyze("del x").unwrap();
        assert_eq!(
            (analysis.refs.clone(), analysis.deleted_refs.clone()),
            (vec!["x".to_owned()], vec!["x".to_owned()])
        );
        let analysis = analyze("x = 1\ndel x").unwrap();
        assert_eq!(
            (analysis.defs, analysis.deleted_refs),
            (vec!["x".to_owned()], vec![])
        );
        let analysis = analyze("def f():\n    global x\n    del x").unwrap();
        assert_eq!(analysis.deleted_refs, ["x"]);
    }

    #[test]
    fn private_names_stay_in_the_cell() {
        let analysis = analyze("_x = 1\n__ = 2\n__y = _x + _z\nimport _thread").unwrap();
        assert_eq!(analysis.defs, ["__y"]);
        assert_eq!(analysis.private_defs, ["_x", "__", "_thread"]);
        assert!(analysis.refs.is_empty(), "{:?}", analysis.refs);
        assert!(is_private("_") && is_private("_a") && is_private("__") && !is_private("__a"));
    }

    #[test]
    fn global_declarations_define_at_the_top_level() {
        check("def f(a):\n    global x\n    x = 0", &["f", "x"], &[]);
        check("x = 0\ndef f():\n    global x", &["f", "x"], &[]);
        check("def f():\n    global x\nx = 0", &["f", "x"], &[]);
        check(
            "def f():\n    global x\n    print(x)",
            &["f"],
            &["x", "print"],
        );
        check(
            "def f():\n    x = 0\n    def g():\n        global x\n        x = 1",
            &["f", "x"],
            &[],
        );
        check(
            "def f():\n    global x\n    def g():\n        x = 10\n    print(x)",
            &["f"],
            &["x", "print"],
        );
    }

    #[test]
    fn top_level_reads_before_definitions_are_references() {
        check("print(x)\nx = 1", &["x"], &["print", "x"]);
        check(
            "def f():\n    x\n    def g():\n        def h():\n            x\n        x = 0",
            &["f"],
            &["x"],
        );
    }

    #[test]
    fn match_binds_every_capture() {
        check(
            "match c:\n    case [a, *rest]:\n        pass\n    case {'k': v, **others}:\n        pass\n    case P(x=px) as p:\n        pass\n    case C.RED:\n        pass",
            &["a", "rest", "v", "others", "px", "p"],
            &["c", "P", "C"],
        );
    }

    #[test]
    fn fstrings_read_their_expressions() {
        check("s = f'{a!r} {b:{w}}'", &["s"], &["a", "b", "w"]);
    }

    #[test]
    fn type_parameters_are_local() {
        check("def f[T](x: T) -> T:\n    return x", &["f"], &[]);
        check("type Alias[T] = list[T]", &["Alias"], &["list"]);
    }

    #[test]
    fn a_broken_cell_still_shows_what_it_means_to_define() {
        assert_eq!(intended_defs("a = 1\nb = (\n"), ["a", "b"]);
    }

    #[test]
    fn builtins_are_known_and_sorted() {
        assert!(BUILTINS.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(is_builtin("print") && is_builtin("__file__") && is_builtin("ExceptionGroup"));
        assert!(!is_builtin("numpy") && !is_builtin("x"));
    }

    #[test]
    fn top_level_await_is_noted() {
        assert!(analyze("x = await f()").unwrap().top_level_await);
        assert!(
            analyze("async for i in s:\n    pass")
                .unwrap()
                .top_level_await
        );
        assert!(
            !analyze("async def f():\n    await g()")
                .unwrap()
                .top_level_await
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let error = analyze("x = 1\ny = (\n").unwrap_err();
        assert_eq!(error.line, 3, "{error}");
        let error = analyze("x = 1\n  return x\n").unwrap_err();
        assert_eq!((error.line, error.column), (2, 1), "{error}");
        let error = analyze("return 1").unwrap_err();
        assert_eq!(
            (error.message.as_str(), error.line, error.column),
            ("'return' outside function", 1, 1)
        );
        let error = analyze("yield 1").unwrap_err();
        assert_eq!(error.message, "'yield' outside function");
        let error = analyze("nonlocal x").unwrap_err();
        assert_eq!(error.line, 1);
    }

    #[test]
    fn the_output_is_the_last_expression_unless_a_semicolon_follows() {
        let split = split_output("x = 1\ny = 2\n(x +\n y)  # sum\n").unwrap();
        assert_eq!(split.body, "x = 1\ny = 2\n");
        assert_eq!(split.output, Some("(x +\n y)"));
        assert_eq!(split.output_line, 2);
        let split = split_output("a = 1; a").unwrap();
        assert_eq!((split.body, split.output), ("a = 1; ", Some("a")));
        for silent in ["a = 1", "a = 1\na ;", "a;  # quiet", "for i in x:\n    i\n"] {
            let split = split_output(silent).unwrap();
            assert_eq!((split.body, split.output), (silent, None), "{silent:?}");
        }
        assert_eq!(split_output("a = (\nb").map(|split| split.output), None);
        assert_eq!(
            split_output("await f()").unwrap().output,
            Some("await f()"),
            "a top-level await is an expression too"
        );
    }

    /// The one-line shortcut says "no output" only where the parser does.
    #[test]
    fn one_silent_line_agrees_with_the_parser() {
        let starts = [
            "x", "_x", "match", "type", "case", "print", "lambda", "not", "await", "None", "True",
            "import", "from", "del", "pass", "global", "assert", "raise", "if", "for", "while",
            "with", "try", "def", "class", "async", "return", "yield", "a.b", "a[0]", "a, b",
            "(a)", "1", "é", "x1",
        ];
        let middles = [
            " = ", "=", " == ", " := ", ": int = ", ": ", " += ", " -= ", " *= ", " **= ", " //= ",
            " >>= ", " <<= ", " <= ", " >= ", " != ", " @= ", " |= ", "(", " ", ".y = ", "[0] = ",
            " = y = ", " < ", "* ", " in ",
        ];
        let ends = [
            "1",
            "(1,\n 2)",
            "f(x)",
            "x; x",
            "lambda: 0",
            "'a = b'",
            "\"s\"  # c = d",
            "",
            "1 \\\n+ 2",
            "y\n",
            "y\n\n",
            "y\r\nz",
            "y\nz",
            "x:\n    pass",
            "os.path",
            "os",
            "y if z else w",
        ];
        let mut shortcuts = 0;
        for start in starts {
            for middle in middles {
                for end in ends {
                    let code = format!("{start}{middle}{end}");
                    if !is_one_silent_line(&code) {
                        continue;
                    }
                    shortcuts += 1;
                    let parsed = crate::deep::parse_module(&code);
                    if !parsed.errors().is_empty() {
                        continue;
                    }
                    let module = parsed.syntax().as_module().unwrap();
                    assert!(
                        !matches!(module.body.last(), Some(Stmt::Expr(_))),
                        "{code:?} ends with an expression"
                    );
                }
            }
        }
        assert!(shortcuts > 500, "{shortcuts} codes took the shortcut");
        for code in [
            "x = 1",
            "import os",
            "x += 1",
            "x: int = 1",
            "from a import b\n",
        ] {
            assert!(is_one_silent_line(code), "{code:?}");
        }
        for code in [
            "x == 1",
            "x := 1",
            "lambda: 0",
            "x = 1; x",
            "a.b = 1",
            "x = (1,\n2)",
        ] {
            assert!(!is_one_silent_line(code), "{code:?}");
        }
    }
}
