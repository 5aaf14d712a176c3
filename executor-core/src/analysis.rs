//! Static analysis of one cell: which names it defines and which names it reads.
//!
//! The analysis works on the Rhai AST rather than on the text of the cell. A cell is
//! compiled without optimisation, its statements and the bodies of its script
//! functions are walked with a stack of block scopes, and only afterwards is the AST
//! optimised for execution, because the optimiser deletes dead reads that still count
//! as dependencies.
//!
//! Closures deserve a note. Rhai compiles a closure into an anonymous script function
//! (named `anon$…`) in the AST's function library; the closure expression itself becomes
//! a function-pointer constant, and when the closure captures variables the constant is
//! wrapped in a `curry(...)` call whose extra arguments read the captured variables at
//! the creation site. Reading those arguments in the enclosing scope therefore gives
//! exactly the closure's dependencies, and the closure body is walked only for the
//! functions it calls (and, defensively, for any names it still reads without binding).
//!
//! The body of a script function is held in a type that rhai does not re-export, so it
//! cannot be matched on directly. Each body is reached by putting the function alone into
//! a fresh [`Module`], building an [`AST`] from it and walking that AST, keeping only the
//! nodes whose path has length one: the top-level statements of the body.

use std::collections::{HashMap, HashSet};

use rhai::{
    ASTNode, CustomExpr, Engine, Expr, FnCallExpr, FnPtr, Module, OptimizationLevel, Position,
    ScriptFuncDef, Shared, Stmt, AST,
};

/// The prefix rhai gives to the names of the script functions that closures compile into.
const ANON_PREFIX: &str = "anon$";

/// The name of the function that turns a string into a function pointer.
const FN_PTR_KEYWORD: &str = "Fn";

/// The custom-syntax marker for an identifier input.
const MARKER_IDENT: &str = "$ident$";

/// The custom-syntax marker for raw characters, the only marker that produces no input.
const MARKER_RAW: &str = "$raw$";

/// Result of analysing one cell.
#[derive(Debug, Clone)]
pub(crate) struct Analysis {
    /// The compiled cell (statements and the cell's own script functions).
    ///
    /// It is compiled with [`OptimizationLevel::None`] and kept that way: the analysis must see
    /// the AST as written (the optimiser deletes dead reads), and optimising afterwards cost
    /// about a tenth of compiling a notebook of small cells for no measurable gain at run time.
    pub(crate) ast: AST,
    /// Names bound at the cell's top level by `let` and `const`, and names of the `fn`s the
    /// cell defines, in order of first appearance, without duplicates, excluding names that
    /// start with `_`.
    pub(crate) defs: Vec<String>,
    /// Top-level `let` and `const` names that start with `_` (cell-private), in order of first
    /// appearance, without duplicates.
    pub(crate) private_defs: Vec<String>,
    /// Free variables the cell reads, in order of first appearance, without duplicates.
    ///
    /// A name is free when it is read before being bound in the cell, honouring block scopes,
    /// loop variables, catch variables, closure parameters and function parameters. The free
    /// variables of the bodies of the `fn`s the cell defines are included too: a function body
    /// cannot see the cell's variables, so every name it reads that is not a parameter or a
    /// local is resolved by the runtime from the notebook globals. Assigning to a name that is
    /// not bound in the cell also counts as reading it. Names starting with `_` are included;
    /// namespace-qualified names (`m::x`) and `this` are not. A bare read of the name of a
    /// function the cell defines is a function-pointer reference, not a free variable.
    pub(crate) refs: Vec<String>,
    /// Public names the cell assigns to outside its functions (`x = …`, `x += …`) without
    /// binding them itself, in order of first appearance, without duplicates.
    ///
    /// Rebinding a name is defining it, as in Python: when another cell defines the name
    /// too, both are in conflict. Mutating a value in place (`x[0] = …`, `x.f = …`,
    /// `x.push(…)`) is not rebinding. These names are in [`Analysis::refs`] as well.
    pub(crate) rebound: Vec<String>,
    /// Names of the functions the cell calls anywhere, in order of first appearance, without
    /// duplicates.
    ///
    /// Calls at the top level, inside the cell's `fn` bodies and inside closure bodies all
    /// count, as do method calls (`x.helper()` gives `helper`), `Fn("name")` and other
    /// function-pointer constants. Closure functions (`anon$…`), namespace-qualified calls and
    /// functions the cell itself defines are excluded. Operators and built-in functions (`+`,
    /// `print`, `push`) appear as well; the caller keeps only names another cell defines.
    pub(crate) calls: Vec<String>,
    /// One entry per named script function the cell defines (closures excluded), in order of
    /// appearance in the cell.
    pub(crate) functions: Vec<FnInfo>,
    /// Why some of what the cell reaches cannot be known from its code, if so: the first
    /// `import` or `Fn(...)` of a computed name, anywhere in the cell (its functions and
    /// closures included).
    pub(crate) opaque: Option<String>,
    /// For each name the cell defines or rebinds, the 1-based line in the cell's code of its
    /// first definition, where rhai knows it.
    pub(crate) def_lines: Vec<(String, usize)>,
}

/// What the analysis learnt about one named script function of a cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FnInfo {
    /// The function's name.
    pub(crate) name: String,
    /// The number of parameters the function takes.
    pub(crate) arity: usize,
    /// Free variables of the function body, including those of closures created inside it, in
    /// order of first appearance, without duplicates.
    pub(crate) free_vars: Vec<String>,
    /// Functions the body calls, with the same rules as [`Analysis::calls`] except that only
    /// closure functions (`anon$…`) are excluded, in order of first appearance, without
    /// duplicates.
    pub(crate) calls: Vec<String>,
}

/// A cell that does not parse.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    /// Rhai's message for the parse error, without the `" (line L, position C)"` suffix.
    pub(crate) message: String,
    /// The 1-based line of the error, relative to the cell's code, when rhai knows it.
    pub(crate) line: Option<usize>,
    /// The 1-based column of the error, when rhai knows it.
    pub(crate) column: Option<usize>,
}

/// Compiles and analyses the code of one cell.
///
/// The engine must have its optimisation level set to [`OptimizationLevel::None`]: the
/// analysis needs the AST exactly as written, and `Engine` is not `Clone`, so the level cannot
/// be changed here. Debug builds assert this precondition.
///
/// # Errors
/// Returns a [`SyntaxError`] when the code does not parse.
pub(crate) fn analyze(engine: &Engine, code: &str) -> Result<Analysis, SyntaxError> {
    debug_assert_eq!(
        engine.optimization_level(),
        OptimizationLevel::None,
        "analyze needs an engine whose optimisation level is None"
    );

    let ast = engine.compile(code).map_err(|err| SyntaxError {
        message: err.err_type().to_string(),
        line: err.position().line(),
        column: err.position().position(),
    })?;

    let mut named_fns: Vec<Shared<ScriptFuncDef>> = Vec::new();
    let mut env = Env::default();
    for fn_def in ast.iter_fn_def() {
        if fn_def.name.starts_with(ANON_PREFIX) {
            env.closures
                .insert(fn_def.name.to_string(), Shared::clone(fn_def));
        } else {
            env.own_fns.insert(fn_def.name.to_string());
            named_fns.push(Shared::clone(fn_def));
        }
    }
    named_fns.sort_by_key(|fn_def| key(fn_def.body.start_position()));

    // The top level of the cell.
    let mut top = Walker::new(&mut env, Vec::new(), true);
    for stmt in ast.statements() {
        top.stmt(stmt);
    }
    let mut free = std::mem::take(&mut top.free);
    let mut calls = std::mem::take(&mut top.calls);
    let mut defs = std::mem::take(&mut top.defs);
    let rebound = std::mem::take(&mut top.rebound);
    let mut opaque: Vec<(Key, String)> = top.opaque.take().into_iter().collect();

    // The bodies of the named functions.
    let mut functions = Vec::with_capacity(named_fns.len());
    for fn_def in &named_fns {
        let params = fn_def.params.iter().map(|p| p.to_string()).collect();
        let mut walker = Walker::new(&mut env, params, false);
        walker.body(fn_def);
        let fn_free = std::mem::take(&mut walker.free);
        let fn_calls = std::mem::take(&mut walker.calls);
        opaque.extend(walker.opaque.take());
        functions.push(FnInfo {
            name: fn_def.name.to_string(),
            arity: fn_def.params.len(),
            free_vars: ordered_unique(fn_free.clone()),
            calls: ordered_unique(fn_calls.clone()),
        });
        free.extend(fn_free);
        calls.extend(fn_calls);
        if !fn_def.name.starts_with('_') {
            defs.push((key(fn_def.body.start_position()), fn_def.name.to_string()));
        }
    }

    // Closures whose creation site was never reached are attributed to the cell itself, so
    // that nothing they call or read is lost.
    let mut leftovers: Vec<Shared<ScriptFuncDef>> = env
        .closures
        .iter()
        .filter(|(name, _)| !env.walked_closures.contains(*name))
        .map(|(_, fn_def)| Shared::clone(fn_def))
        .collect();
    leftovers.sort_by_key(|fn_def| key(fn_def.body.start_position()));
    for fn_def in &leftovers {
        let params = fn_def.params.iter().map(|p| p.to_string()).collect();
        let mut walker = Walker::new(&mut env, params, false);
        walker.body(fn_def);
        free.append(&mut walker.free);
        calls.append(&mut walker.calls);
        opaque.extend(walker.opaque.take());
    }

    // Only `let` and `const` names can start with `_` here: such function names were skipped.
    let (private, public): (Vec<_>, Vec<_>) = defs
        .into_iter()
        .partition(|(_, name)| name.starts_with('_'));
    let calls = ordered_unique(
        calls
            .into_iter()
            .filter(|(_, name)| !env.own_fns.contains(name))
            .collect(),
    );
    let mut positioned: Vec<(Key, String)> = public.iter().chain(&rebound).cloned().collect();
    positioned.sort_by_key(|(at, _)| *at);
    let mut def_lines: Vec<(String, usize)> = Vec::new();
    for ((line, _), name) in positioned {
        if line != usize::MAX && !def_lines.iter().any(|(known, _)| *known == name) {
            def_lines.push((name, line));
        }
    }

    Ok(Analysis {
        ast,
        defs: ordered_unique(public),
        private_defs: ordered_unique(private),
        refs: ordered_unique(free),
        rebound: ordered_unique(
            rebound
                .into_iter()
                .filter(|(_, name)| !name.starts_with('_'))
                .collect(),
        ),
        calls,
        functions,
        opaque: opaque
            .into_iter()
            .min_by_key(|(at, _)| *at)
            .map(|(_, what)| what),
        def_lines,
    })
}

/// Best-effort names that a cell which fails to parse meant to define.
///
/// For each line whose trimmed text starts with `let `, `const ` or `fn ` (optionally after
/// `export ` or `private `) followed by an identifier, at brace depth zero, the identifier is
/// taken. Braces are counted outside strings, characters and comments, roughly. For
/// `fn Type.method(...)` the method name is taken. Names starting with `_` are excluded and
/// duplicates dropped; the order is that of the lines.
pub(crate) fn intended_defs(code: &str) -> Vec<String> {
    let mut scanner = BraceScanner::default();
    let mut names: Vec<String> = Vec::new();
    for line in code.lines() {
        if scanner.depth == 0 && scanner.mode == Mode::Code {
            if let Some(name) = declared_name(line.trim()) {
                if !name.starts_with('_') && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        scanner.feed_line(line);
    }
    names
}

/// A sortable source position; positions rhai does not know sort last.
type Key = (usize, usize);

/// Turns a position into a sort key (line, then column).
fn key(pos: Position) -> Key {
    match pos.line() {
        Some(line) => (line, pos.position().unwrap_or(0)),
        None => (usize::MAX, usize::MAX),
    }
}

/// Sorts positioned names by position (stably) and keeps the first occurrence of each name.
fn ordered_unique(mut items: Vec<(Key, String)>) -> Vec<String> {
    items.sort_by_key(|(k, _)| *k);
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter_map(|(_, name)| seen.insert(name.clone()).then_some(name))
        .collect()
}

/// Calls `f` on each top-level statement of a script function's body.
///
/// The body's type is not re-exported by rhai, so the function is put alone into a fresh
/// module, the module is turned into an AST, and the AST is walked; only paths of length one
/// are top-level statements of the body.
fn for_each_body_stmt(fn_def: &Shared<ScriptFuncDef>, mut f: impl FnMut(&Stmt)) {
    let mut module = Module::new();
    module.set_script_fn(Shared::clone(fn_def));
    let ast = AST::new_from_module(module);
    ast.walk(&mut |path: &[ASTNode]| {
        if let [ASTNode::Stmt(stmt)] = path {
            f(stmt);
        }
        true
    });
}

/// State shared by all walkers of one cell.
#[derive(Default)]
struct Env {
    /// Names of the named script functions the cell defines.
    own_fns: HashSet<String>,
    /// The closure functions of the cell, by name.
    closures: HashMap<String, Shared<ScriptFuncDef>>,
    /// Closures whose bodies have been walked at least once.
    walked_closures: HashSet<String>,
    /// Closures being walked right now, as a guard against runaway recursion.
    active_closures: Vec<String>,
}

/// Walks statements and expressions of one context (the cell's top level, a function body or
/// a closure body) with a stack of block scopes.
struct Walker<'e> {
    /// The state shared by the walkers of the cell.
    env: &'e mut Env,
    /// The stack of scopes; the first one holds parameters or the cell's top-level names.
    scopes: Vec<Vec<String>>,
    /// Free names read, with the positions of the reads.
    free: Vec<(Key, String)>,
    /// Names of called functions, with the positions of the calls.
    calls: Vec<(Key, String)>,
    /// Whether this walker is at the cell's top level, where `let` and `const` define names.
    records_defs: bool,
    /// Top-level `let` and `const` names, with their positions.
    defs: Vec<(Key, String)>,
    /// The first construct hiding what the code reaches, with its position.
    opaque: Option<(Key, String)>,
    /// Names outside any function that the cell assigns to (`x = …`, `x += …`) without
    /// binding them first, with their positions.
    rebound: Vec<(Key, String)>,
}

impl<'e> Walker<'e> {
    /// Creates a walker whose outermost scope holds `bound`.
    fn new(env: &'e mut Env, bound: Vec<String>, records_defs: bool) -> Self {
        Walker {
            env,
            scopes: vec![bound],
            free: Vec::new(),
            calls: Vec::new(),
            records_defs,
            defs: Vec::new(),
            rebound: Vec::new(),
            opaque: None,
        }
    }

    /// Records that the construct at `pos` hides what the code reaches.
    fn opaque(&mut self, what: &str, pos: Position) {
        if self.opaque.is_none() {
            let at = pos
                .line()
                .map(|line| format!(" at line {line} of the cell"))
                .unwrap_or_default();
            self.opaque = Some((key(pos), format!("{what}{at}")));
        }
    }

    /// Walks the body of a script function in the outermost scope.
    fn body(&mut self, fn_def: &Shared<ScriptFuncDef>) {
        for_each_body_stmt(fn_def, |stmt| self.stmt(stmt));
    }

    /// Whether `name` is bound in any enclosing scope.
    fn is_bound(&self, name: &str) -> bool {
        self.scopes
            .iter()
            .rev()
            .any(|scope| scope.iter().any(|n| n == name))
    }

    /// Binds `name` in the innermost scope.
    fn bind(&mut self, name: &str) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.push(name.to_string());
        }
    }

    /// Records a read of the variable `name`.
    fn read(&mut self, name: &str, pos: Position) {
        if name.is_empty() || name == "this" || self.is_bound(name) {
            return;
        }
        if self.env.own_fns.contains(name) {
            // Rhai resolves an unbound name that matches a script function to a function
            // pointer, so this is a reference to one of the cell's own functions.
            self.call(name, pos);
        } else {
            self.free.push((key(pos), name.to_string()));
        }
    }

    /// Records a call of, or a function pointer to, the function `name`.
    fn call(&mut self, name: &str, pos: Position) {
        if !name.is_empty() && !name.starts_with(ANON_PREFIX) {
            self.calls.push((key(pos), name.to_string()));
        }
    }

    /// Walks statements in a new block scope.
    fn block<'s>(&mut self, stmts: impl IntoIterator<Item = &'s Stmt>) {
        self.scopes.push(Vec::new());
        for stmt in stmts {
            self.stmt(stmt);
        }
        self.scopes.pop();
    }

    /// Walks one statement.
    fn stmt(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::If(flow, ..) => {
                self.expr(&flow.expr);
                self.block(&flow.body);
                self.block(&flow.branch);
            }
            Stmt::Switch(switch, ..) => {
                let (subject, cases) = &**switch;
                self.expr(subject);
                // Every case, range case and the default case index into this list; the left
                // side is the case's condition and the right side its result.
                for case in &cases.expressions {
                    self.expr(&case.lhs);
                    self.expr(&case.rhs);
                }
            }
            Stmt::While(flow, ..) => {
                self.expr(&flow.expr);
                self.block(&flow.body);
            }
            Stmt::Do(flow, ..) => {
                // The condition is evaluated after the body's scope is gone.
                self.block(&flow.body);
                self.expr(&flow.expr);
            }
            Stmt::For(for_loop, ..) => {
                let (var, counter, flow) = &**for_loop;
                self.expr(&flow.expr);
                let mut loop_scope = vec![var.name.to_string()];
                if let Some(counter) = counter {
                    loop_scope.push(counter.name.to_string());
                }
                self.scopes.push(loop_scope);
                self.block(&flow.body);
                self.scopes.pop();
            }
            Stmt::Var(var, _, pos) => {
                let (ident, init, _) = &**var;
                self.expr(init);
                if self.records_defs && self.scopes.len() == 1 {
                    let def_pos = if ident.pos.is_none() { *pos } else { ident.pos };
                    self.defs.push((key(def_pos), ident.name.to_string()));
                }
                self.bind(&ident.name);
            }
            Stmt::Assignment(assignment) => {
                // The target's root variable is read (the cell mutates a value it must
                // already have), and so are index expressions inside the target.
                let (_, target) = &**assignment;
                if let Expr::Variable(var, _, pos) = &target.lhs {
                    if self.records_defs && var.2.is_empty() && !self.is_bound(&var.1) {
                        self.rebound.push((key(*pos), var.1.to_string()));
                    }
                }
                self.expr(&target.lhs);
                self.expr(&target.rhs);
            }
            Stmt::FnCall(call, pos) => self.fn_call(call, *pos),
            Stmt::Block(block) => self.block(block.statements()),
            Stmt::TryCatch(flow, ..) => {
                self.block(&flow.body);
                // The catch variable is stored as a variable expression, but it binds.
                let mut catch_scope = Vec::new();
                if let Expr::Variable(var, ..) = &flow.expr {
                    catch_scope.push(var.1.to_string());
                }
                self.scopes.push(catch_scope);
                self.block(&flow.branch);
                self.scopes.pop();
            }
            Stmt::Expr(expr) => self.expr(expr),
            Stmt::BreakLoop(value, ..) | Stmt::Return(value, ..) => {
                if let Some(value) = value {
                    self.expr(value);
                }
            }
            Stmt::Import(import, pos) => {
                // The alias names a module, not a variable, so it binds nothing here.
                self.opaque(
                    "an `import` (the module's code is not part of the notebook)",
                    *pos,
                );
                self.expr(&import.0);
            }
            Stmt::Export(export, ..) => {
                let (var, _) = &**export;
                self.read(&var.name, var.pos);
            }
            Stmt::Share(shared) => {
                for (var, _) in shared.iter() {
                    self.read(&var.name, var.pos);
                }
            }
            Stmt::Noop(..) => {}
            _ => {}
        }
    }

    /// Walks one expression.
    fn expr(&mut self, expr: &Expr) {
        match expr {
            Expr::DynamicConstant(value, pos) => {
                // Closures and some function pointers are stored as `FnPtr` constants.
                let fn_name = value
                    .read_lock::<FnPtr>()
                    .map(|fn_ptr| fn_ptr.fn_name().to_string());
                if let Some(name) = fn_name {
                    self.fn_pointer(&name, *pos);
                }
            }
            Expr::InterpolatedString(parts, ..) | Expr::Array(parts, ..) => {
                for part in parts.iter() {
                    self.expr(part);
                }
            }
            Expr::Map(map, ..) => {
                for (_, value) in &map.0 {
                    self.expr(value);
                }
            }
            Expr::Variable(var, _, pos) => {
                let (_, name, namespace, _) = &**var;
                if namespace.is_empty() {
                    self.read(name, *pos);
                }
            }
            Expr::MethodCall(call, pos) | Expr::FnCall(call, pos) => self.fn_call(call, *pos),
            Expr::Stmt(block) => self.block(block.statements()),
            Expr::Dot(binary, ..) | Expr::Index(binary, ..) => {
                // Property names on the right of `.` are `Expr::Property`, not variables.
                self.expr(&binary.lhs);
                self.expr(&binary.rhs);
            }
            Expr::And(operands, ..) | Expr::Or(operands, ..) | Expr::Coalesce(operands, ..) => {
                for operand in operands.iter() {
                    self.expr(operand);
                }
            }
            Expr::Custom(custom, ..) => self.custom(custom),
            Expr::BoolConstant(..)
            | Expr::IntegerConstant(..)
            | Expr::FloatConstant(..)
            | Expr::CharConstant(..)
            | Expr::StringConstant(..)
            | Expr::Unit(..)
            | Expr::ThisPtr(..)
            | Expr::Property(..) => {}
            _ => {}
        }
    }

    /// Walks a function or method call: records the callee and walks the arguments.
    fn fn_call(&mut self, call: &FnCallExpr, pos: Position) {
        if !call.is_qualified() {
            self.call(&call.name, pos);
            if call.name == FN_PTR_KEYWORD && call.args.len() == 1 {
                if let Expr::StringConstant(target, target_pos) = &call.args[0] {
                    self.call(target, *target_pos);
                } else {
                    self.opaque("`Fn(...)` of a computed name", pos);
                }
            }
        }
        for arg in call.args.iter() {
            self.expr(arg);
        }
    }

    /// Handles a function-pointer constant: a closure is walked, a named pointer is a call.
    fn fn_pointer(&mut self, name: &str, pos: Position) {
        if !name.starts_with(ANON_PREFIX) {
            self.call(name, pos);
            return;
        }
        let Some(fn_def) = self.env.closures.get(name).map(Shared::clone) else {
            return;
        };
        if self.env.active_closures.iter().any(|n| n == name) {
            return;
        }
        self.env.walked_closures.insert(name.to_string());
        self.env.active_closures.push(name.to_string());

        // The closure's parameters are its captured variables followed by its own parameters,
        // and the captures are read at the creation site through `curry(...)`. Whatever the
        // body still reads unbound is resolved from the globals when the closure runs, so it
        // is free in the enclosing context as well, whatever that context binds.
        let params = fn_def.params.iter().map(|p| p.to_string()).collect();
        let mut inner = Walker::new(&mut *self.env, params, false);
        inner.body(&fn_def);
        let mut free = std::mem::take(&mut inner.free);
        let mut calls = std::mem::take(&mut inner.calls);
        self.free.append(&mut free);
        self.calls.append(&mut calls);

        self.env.active_closures.pop();
    }

    /// Walks a custom-syntax expression.
    ///
    /// Inputs line up with the marker tokens (every `$…$` token except `$raw$`); any inputs
    /// left over, such as a syntax-variant string, come last. An `$ident$` input is a bare
    /// name whose meaning belongs to the custom syntax: when the syntax may change the scope
    /// the name is taken to be declared (bound, though not a def), otherwise it is ignored.
    /// All other inputs are walked as expressions.
    fn custom(&mut self, custom: &CustomExpr) {
        let mut inputs = custom.inputs.iter();
        for token in custom.tokens.iter() {
            let is_marker = token.len() > 2
                && token.starts_with('$')
                && token.ends_with('$')
                && token.as_str() != MARKER_RAW;
            if !is_marker {
                continue;
            }
            let Some(input) = inputs.next() else {
                return;
            };
            if token.as_str() == MARKER_IDENT {
                if let Expr::Variable(var, ..) = input {
                    if custom.scope_may_be_changed {
                        self.bind(&var.1);
                    }
                    continue;
                }
            }
            self.expr(input);
        }
        for input in inputs {
            self.expr(input);
        }
    }
}

/// Where the brace scanner of [`intended_defs`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// In code.
    Code,
    /// In a block comment, with its nesting depth.
    BlockComment(usize),
    /// In a double-quoted string.
    Str,
    /// In a back-tick (multi-line) string.
    Backtick,
    /// In a character literal.
    Char,
}

/// Counts brace depth line by line, roughly skipping strings and comments.
#[derive(Debug)]
struct BraceScanner {
    /// The number of `{` not yet closed.
    depth: usize,
    /// What the scanner is in at the current point.
    mode: Mode,
}

impl Default for BraceScanner {
    fn default() -> Self {
        BraceScanner {
            depth: 0,
            mode: Mode::Code,
        }
    }
}

impl BraceScanner {
    /// Advances the scanner over one line (without its line break).
    fn feed_line(&mut self, line: &str) {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            match self.mode {
                Mode::Code => match (c, next) {
                    ('/', Some('/')) => break,
                    ('/', Some('*')) => {
                        self.mode = Mode::BlockComment(1);
                        i += 1;
                    }
                    ('"', _) => self.mode = Mode::Str,
                    ('`', _) => self.mode = Mode::Backtick,
                    ('\'', _) => self.mode = Mode::Char,
                    ('{', _) => self.depth += 1,
                    ('}', _) => self.depth = self.depth.saturating_sub(1),
                    _ => {}
                },
                Mode::BlockComment(level) => match (c, next) {
                    ('/', Some('*')) => {
                        self.mode = Mode::BlockComment(level + 1);
                        i += 1;
                    }
                    ('*', Some('/')) => {
                        self.mode = if level <= 1 {
                            Mode::Code
                        } else {
                            Mode::BlockComment(level - 1)
                        };
                        i += 1;
                    }
                    _ => {}
                },
                Mode::Str | Mode::Char => match c {
                    '\\' => i += 1,
                    '"' if self.mode == Mode::Str => self.mode = Mode::Code,
                    '\'' if self.mode == Mode::Char => self.mode = Mode::Code,
                    _ => {}
                },
                Mode::Backtick => {
                    if c == '`' {
                        self.mode = Mode::Code;
                    }
                }
            }
            i += 1;
        }
        // Only back-tick strings and block comments span lines; a double-quoted string may
        // continue onto the next line only after a trailing backslash.
        match self.mode {
            Mode::Str if line.ends_with('\\') => {}
            Mode::Str | Mode::Char => self.mode = Mode::Code,
            _ => {}
        }
    }
}

/// The name a trimmed line declares with `let`, `const` or `fn`, if any.
fn declared_name(line: &str) -> Option<String> {
    let line = strip_keyword(line, "export")
        .or_else(|| strip_keyword(line, "private"))
        .unwrap_or(line);
    if let Some(rest) = strip_keyword(line, "let").or_else(|| strip_keyword(line, "const")) {
        return identifier(rest).map(|(name, _)| name.to_string());
    }
    let rest = strip_keyword(line, "fn")?;
    // A method on a type, `fn Type.method(...)` or `fn "Type".method(...)`, is named by the
    // identifier after the dot.
    let after_type = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.find('"').map(|end| &quoted[end + 1..])
    } else {
        None
    };
    let (first, tail) = match after_type {
        Some(tail) => ("", tail),
        None => identifier(rest)?,
    };
    match tail.trim_start().strip_prefix('.') {
        Some(method) => identifier(method).map(|(name, _)| name.to_string()),
        None if !first.is_empty() => Some(first.to_string()),
        None => None,
    }
}

/// Strips a keyword followed by whitespace from the start of `line`, returning the rest with
/// leading whitespace removed.
fn strip_keyword<'a>(line: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(keyword)?;
    rest.starts_with(char::is_whitespace)
        .then(|| rest.trim_start())
}

/// Splits a leading identifier off `text` (after leading whitespace), returning it and the
/// rest.
fn identifier(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    let mut chars = text.char_indices();
    let (_, first) = chars.next()?;
    if !(first.is_alphabetic() || first == '_') {
        return None;
    }
    let end = chars
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(text.len(), |(i, _)| i);
    Some((&text[..end], &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An engine as the caller configures it: no optimisation at compile time.
    fn engine() -> Engine {
        let mut engine = Engine::new();
        engine.set_optimization_level(OptimizationLevel::None);
        engine
    }

    /// Analyses `code` with a fresh engine, panicking on a syntax error.
    fn analyse(code: &str) -> Analysis {
        analyze(&engine(), code).unwrap_or_else(|err| panic!("{code:?} failed to parse: {err:?}"))
    }

    /// Analyses `code` and checks its defs and refs, returning the analysis for more checks.
    fn check(code: &str, expect_defs: &[&str], expect_refs: &[&str]) -> Analysis {
        let analysis = analyse(code);
        assert_eq!(analysis.defs, expect_defs, "defs of {code:?}");
        assert_eq!(analysis.refs, expect_refs, "refs of {code:?}");
        analysis
    }

    /// Whether `analysis.calls` contains `name`.
    fn calls(analysis: &Analysis, name: &str) -> bool {
        analysis.calls.iter().any(|c| c == name)
    }

    #[test]
    fn plain_defs() {
        let a = check(
            "let a = 1; const B = 2; fn f(x) { x }",
            &["a", "B", "f"],
            &[],
        );
        assert!(a.private_defs.is_empty());
        check("let a = 1; let a = a + 1; a", &["a"], &[]);
        check(
            "fn g() { 1 }\nlet z = 2;\nfn h(p, q) { p + q }",
            &["g", "z", "h"],
            &[],
        );
    }

    #[test]
    fn private_defs() {
        let a = check("let _t = 1; let a = _t + 1; const _K = 3;", &["a"], &[]);
        assert_eq!(a.private_defs, ["_t", "_K"]);
        check("let b = _u + 1;", &["b"], &["_u"]);
        // A function whose name starts with `_` is in neither list, but it is described.
        let a = check("fn _hidden() { 1 }", &[], &[]);
        assert!(a.private_defs.is_empty());
        assert_eq!(a.functions[0].name, "_hidden");
    }

    #[test]
    fn block_scope() {
        check("{ let t = 5; t + u }; t", &[], &["u", "t"]);
        check("if c { let y = 1; y } let z = 2; y", &["z"], &["c", "y"]);
        check("let v = { let w = 1; w + 1 }; w", &["v"], &["w"]);
    }

    #[test]
    fn read_after_let_is_not_a_ref() {
        check("let a = 1; a + 1", &["a"], &[]);
        check("print(a); let a = 1; a", &["a"], &["a"]);
    }

    #[test]
    fn self_reference() {
        check("let x = x + 1; x", &["x"], &["x"]);
    }

    #[test]
    fn for_loops() {
        check(
            "for (v, i) in items { total += v * i; }",
            &[],
            &["items", "total"],
        );
        check("for x in 0..n { print(x) } x", &[], &["n", "x"]);
        check(
            "let s = 0; for x in xs { let d = x; s += d; } d",
            &["s"],
            &["xs", "d"],
        );
    }

    #[test]
    fn assignment_to_unbound_name_is_a_ref() {
        let a = check(
            "x = 1; y[i] = 2; z.f = 3; w += 1; let q = 0; q = 5; q.g = r;",
            &["q"],
            &["x", "y", "i", "z", "w", "r"],
        );
        assert_eq!(a.rebound, ["x", "w"], "only whole-name assignments rebind");
    }

    #[test]
    fn rebinding_is_recorded_in_blocks_but_not_in_functions() {
        let a = check(
            "for i in 0..3 { total += i; } fn f() { inside = 1; } _p = 2;",
            &["f"],
            &["total", "inside", "_p"],
        );
        assert_eq!(a.rebound, ["total"]);
    }

    #[test]
    fn closures() {
        check("let a = 1; let f = |x| x + a + b;", &["a", "f"], &["b"]);
        check(
            "let f = || later; let later = 1;",
            &["f", "later"],
            &["later"],
        );
        let a = check("let f = |x| helper2(x);", &["f"], &[]);
        assert!(calls(&a, "helper2"));
        assert!(a.calls.iter().all(|c| !c.starts_with("anon$")));
        assert!(a.functions.is_empty());
        check("let f = || { let inner = 1; inner + o };", &["f"], &["o"]);
    }

    #[test]
    fn nested_closures() {
        check("let f = |x| |y| x + y + z;", &["f"], &["z"]);
        check("let g = || { let w = 1; || w + q };", &["g"], &["q"]);
        check("let a = 1; let g = || || a;", &["a", "g"], &[]);
    }

    #[test]
    fn fn_bodies() {
        let a = check("fn f(a) { let l = a * 2; l + g + h(a) }", &["f"], &["g"]);
        assert!(calls(&a, "h"));
        assert_eq!(
            a.functions,
            [FnInfo {
                name: "f".into(),
                arity: 1,
                free_vars: vec!["g".into()],
                calls: a.functions[0].calls.clone(),
            }]
        );
        assert!(a.functions[0].calls.iter().any(|c| c == "h"));
        // A fn body cannot see the cell's variables.
        check("let k = 1; fn f() { k }", &["k", "f"], &["k"]);
        // Free names of closures created inside a fn belong to the fn.
        let a = check(
            "fn f(p) { let c = |x| x + p + outer; c }",
            &["f"],
            &["outer"],
        );
        assert_eq!(a.functions[0].free_vars, ["outer"]);
        // `this` is not a variable.
        let a = check("fn double() { this * 2 }", &["double"], &[]);
        assert!(a.functions[0].free_vars.is_empty());
        // Recursion and sibling calls appear in the fn's calls but not in the cell's.
        let a = check(
            "fn f(n) { if n > 0 { f(n - 1) } else { g() } } fn g() { 0 }",
            &["f", "g"],
            &[],
        );
        assert!(a.functions[0].calls.iter().any(|c| c == "f"));
        assert!(a.functions[0].calls.iter().any(|c| c == "g"));
        assert!(!calls(&a, "f") && !calls(&a, "g"));
    }

    #[test]
    fn dead_reads_still_count() {
        // The optimiser would delete this branch; the analysis runs before it.
        check("if false { dead_var } let k = 1;", &["k"], &["dead_var"]);
    }

    #[cfg(debug_assertions)]
    #[test]
    fn optimising_engine_is_rejected_in_debug_builds() {
        let outcome = std::panic::catch_unwind(|| analyze(&Engine::new(), "1").is_ok());
        let payload = outcome.expect_err("an optimising engine is a caller bug");
        let message = crate::panic_message(payload.as_ref());
        assert!(message.contains("optimisation level"), "{message}");
    }

    #[test]
    fn refs_are_in_source_order() {
        check("fn f() { zz } let y = aa;", &["f", "y"], &["zz", "aa"]);
    }

    #[test]
    fn own_fn_used_as_a_value() {
        let a = check("fn f() { 1 } let p = f; p.call()", &["f", "p"], &[]);
        assert!(!calls(&a, "f"));
        let a = check(
            "fn f() { 1 } fn g() { let p = f; p.call() }",
            &["f", "g"],
            &[],
        );
        assert!(a.functions[1].calls.iter().any(|c| c == "f"));
    }

    #[test]
    fn method_and_fn_pointer_calls() {
        let a = check(
            "let r = x.helper(1); let p = Fn(\"other\"); p.call(); call(Fn(\"tool\"))",
            &["r", "p"],
            &["x"],
        );
        for name in ["helper", "other", "call", "tool", "Fn"] {
            assert!(calls(&a, name), "{name} missing from {:?}", a.calls);
        }
        let a = check("fn own() { 1 } own(); y.own()", &["own"], &["y"]);
        assert!(!calls(&a, "own"));
    }

    #[test]
    fn switch() {
        check(
            "switch v { 1 => a, 2 if c => { let t = b; t }, 3..5 => e, _ => d }",
            &[],
            &["v", "a", "c", "b", "e", "d"],
        );
    }

    #[test]
    fn try_catch() {
        check(
            "try { risky(x) } catch (err) { print(err); e2 }",
            &[],
            &["x", "e2"],
        );
        check("try { 1 } catch (err) { 2 } err", &[], &["err"]);
        check("try { let t = 1; } catch { t }", &[], &["t"]);
    }

    #[test]
    fn other_constructs() {
        check("let s = `${a} and ${b.len()}`;", &["s"], &["a", "b"]);
        check(
            "let m = #{ k: m1, l: [n, o.p] };",
            &["m"],
            &["m1", "n", "o"],
        );
        check(
            "let c = u ?? v; let d = p && q || r;",
            &["c", "d"],
            &["u", "v", "p", "q", "r"],
        );
        check("do { let i = 0; } while i < lim;", &[], &["i", "lim"]);
        check("do { work(); } until done", &[], &["done"]);
        check("let n = 0; while n < lim { n += 1; }", &["n"], &["lim"]);
        check("loop { break brk; }", &[], &["brk"]);
        check(
            "let o = obj.field.sub; arr[idx].prop",
            &["o"],
            &["obj", "arr", "idx"],
        );
        check(
            "let o = obj?.field ?? 1; arr?[idx]",
            &["o"],
            &["obj", "arr", "idx"],
        );
        let a = check(
            "fn g() { if c { throw err_v } return ret_v; }",
            &["g"],
            &["c", "err_v", "ret_v"],
        );
        assert_eq!(a.functions[0].free_vars, ["c", "err_v", "ret_v"]);
    }

    #[test]
    fn qualified_names_are_excluded() {
        let a = check("let v = m::x + m::f(y);", &["v"], &["y"]);
        assert!(!calls(&a, "f"));
        check("import \"mod\" as m; let v = m::x;", &["v"], &[]);
    }

    #[test]
    fn custom_syntax_inputs() {
        let mut engine = engine();
        engine
            .register_custom_syntax(["twice", "$expr$"], false, |ctx, inputs| {
                let v = ctx.eval_expression_tree(&inputs[0])?.as_int().unwrap_or(0);
                Ok((v * 2).into())
            })
            .unwrap();
        engine
            .register_custom_syntax(
                ["declare", "$ident$", "=", "$expr$"],
                true,
                |ctx, inputs| {
                    let name = inputs[0].get_string_value().unwrap_or_default().to_string();
                    let value = ctx.eval_expression_tree(&inputs[1])?;
                    ctx.scope_mut().push(name, value);
                    Ok(rhai::Dynamic::UNIT)
                },
            )
            .unwrap();
        let a = analyze(&engine, "let r = twice y;").unwrap();
        assert_eq!(a.refs, ["y"]);
        let a = analyze(&engine, "declare q = w; q + 1").unwrap();
        assert_eq!(a.refs, ["w"]);
        assert!(a.defs.is_empty());
    }

    #[test]
    fn syntax_error_position() {
        let err = analyze(&engine(), "let a = 1;\nlet b = ;").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.column, Some(9));
        assert_eq!(err.message, "Unexpected ';'");
    }

    #[test]
    fn intended_defs_of_broken_code() {
        let code = "let a = 1;\nfn f(x) {\n  let inner = 2;\n}\nconst C = ;\nlet _p = 3;\n\
                    // let c = 1\n  let d = \"{\";\n/* { */ let e = 1\nlet a = 2;\n\
                    fn int.double() { }\nexport const X = 1;\nlet = 5;\n`\nlet in_string = 1\n`";
        assert_eq!(intended_defs(code), ["a", "f", "C", "d", "double", "X"]);
    }

    #[test]
    fn ast_still_evaluates() {
        let engine = engine();
        let a = analyze(&engine, "let a = 40; let b = a + 2; b").unwrap();
        assert_eq!(engine.eval_ast::<i64>(&a.ast).unwrap(), 42);
        let a = analyze(
            &engine,
            "fn f(x) { x * 2 } let g = |y| f(y) + 1; g.call(20)",
        )
        .unwrap();
        assert_eq!(engine.eval_ast::<i64>(&a.ast).unwrap(), 41);
        assert_eq!(a.functions.len(), 1);
        assert!(a.ast.iter_functions().any(|f| f.name == "f"));
        let a = analyze(&engine, "fn f(x) { x * 2 } f(21)").unwrap();
        assert_eq!(engine.eval_ast::<i64>(&a.ast).unwrap(), 42);
    }
}
