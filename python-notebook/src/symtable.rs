//! The syntax errors CPython raises for code that parses, before it runs
//! any: those of its symbol table (a `global` or `nonlocal` declaration of
//! a name its scope already uses, binds, annotates or takes as a parameter,
//! a name both `global` and `nonlocal`, a `nonlocal` name no enclosing
//! function binds, `nonlocal` at the top level, a duplicate parameter, an
//! assignment expression in a comprehension's iterable, rebinding its
//! iteration variable or reaching a class body) and a few of its
//! compiler's (`break` and `continue` outside a loop, `return` and `yield`
//! outside a function, a class body included, `await` outside an `async`
//! function, an awaiting comprehension outside one). `import *` inside a
//! function is one too, but marimo refuses every `import *` first.
//!
//! marimo compiles each cell, so it reports these as the cell's syntax
//! error before anything runs; CPython raises the symbol table's before
//! the compiler's. Scopes are CPython's: functions, lambdas and
//! comprehensions bind for what they enclose, classes do not.

use std::collections::HashMap;

use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{self as ast, Expr, ExprContext, Parameters, Pattern, Stmt};
use ruff_text_size::{Ranged, TextSize};

/// What a scope knows of one name (CPython's `DEF_*` flags).
const PARAM: u8 = 1;
const LOCAL: u8 = 1 << 1;
const USE: u8 = 1 << 2;
const GLOBAL: u8 = 1 << 3;
const NONLOCAL: u8 = 1 << 4;
const ANNOTATED: u8 = 1 << 5;
const IMPORTED: u8 = 1 << 6;
/// Bound as a comprehension's iteration variable.
const ITERATED: u8 = 1 << 7;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Module,
    /// A function or a lambda.
    Function,
    Class,
    /// A comprehension: a function's scope, but an assignment expression
    /// in it binds in the nearest scope that is no comprehension.
    Comprehension,
}

struct Scope {
    kind: Kind,
    /// Names in the order first met, with their flags and where their
    /// first `global` or `nonlocal` declaration is.
    names: Vec<(String, u8, Option<TextSize>)>,
    index: HashMap<String, usize>,
    children: Vec<usize>,
    /// What a comprehension's scope is, as CPython words it ("list
    /// comprehension"); empty for other scopes.
    comprehension: &'static str,
}

impl Scope {
    fn new(kind: Kind) -> Scope {
        Scope {
            kind,
            names: Vec::new(),
            index: HashMap::new(),
            children: Vec::new(),
            comprehension: "",
        }
    }

    fn flags(&self, name: &str) -> u8 {
        self.index.get(name).map_or(0, |at| self.names[*at].1)
    }

    fn add(&mut self, name: &str, flags: u8, directive: Option<TextSize>) {
        let at = *self.index.entry(name.to_owned()).or_insert_with(|| {
            self.names.push((name.to_owned(), 0, None));
            self.names.len() - 1
        });
        let entry = &mut self.names[at];
        entry.1 |= flags;
        if entry.2.is_none() {
            entry.2 = directive;
        }
    }
}

/// The first such error in `body`, a cell's statements, as CPython would
/// report it: its offset in the code and its message.
pub(crate) fn first_error(body: &[Stmt]) -> Option<(TextSize, String)> {
    let mut table = Table {
        scopes: vec![Scope::new(Kind::Module)],
        stack: vec![0],
        in_target: false,
        in_iterable: 0,
        error: None,
    };
    for stmt in body {
        table.visit_stmt(stmt);
    }
    if table.error.is_some() {
        return table.error;
    }
    table.unbound_nonlocal(0, None)
}

struct Table {
    scopes: Vec<Scope>,
    /// Indices of the scopes around the node being visited, innermost last.
    stack: Vec<usize>,
    /// Visiting a comprehension's iteration target.
    in_target: bool,
    /// How many comprehension iterables are around the node being
    /// visited, lambdas and comprehensions in them included.
    in_iterable: usize,
    error: Option<(TextSize, String)>,
}

impl Table {
    fn current(&mut self) -> &mut Scope {
        let at = self.stack[self.stack.len() - 1];
        &mut self.scopes[at]
    }

    fn fail(&mut self, at: TextSize, message: String) {
        if self.error.is_none() {
            self.error = Some((at, message));
        }
    }

    /// Runs `visit` in a new scope of `kind`, nested in the current one.
    fn in_scope(&mut self, kind: Kind, visit: impl FnOnce(&mut Table)) {
        let at = self.scopes.len();
        self.scopes.push(Scope::new(kind));
        let parent = self.stack[self.stack.len() - 1];
        self.scopes[parent].children.push(at);
        self.stack.push(at);
        let in_target = std::mem::replace(&mut self.in_target, false);
        visit(self);
        self.in_target = in_target;
        self.stack.pop();
    }

    /// A `global` or `nonlocal` statement at `at` declaring `names`.
    fn declare(&mut self, names: &[ast::Identifier], flag: u8, at: TextSize) {
        let word = if flag == GLOBAL { "global" } else { "nonlocal" };
        for name in names {
            let name = name.as_str();
            let flags = self.current().flags(name);
            let message = if flags & PARAM != 0 {
                Some(format!("name '{name}' is parameter and {word}"))
            } else if flags & USE != 0 {
                Some(format!("name '{name}' is used prior to {word} declaration"))
            } else if flags & ANNOTATED != 0 {
                Some(format!("annotated name '{name}' can't be {word}"))
            } else if flags & LOCAL != 0 {
                Some(format!(
                    "name '{name}' is assigned to before {word} declaration"
                ))
            } else {
                None
            };
            if let Some(message) = message {
                self.fail(at, message);
            }
            self.current().add(name, flag, Some(at));
            // A name declared `global` anywhere is global at the top level
            // too (which makes a top-level `nonlocal` of it "nonlocal and
            // global").
            if flag == GLOBAL {
                self.scopes[0].add(name, GLOBAL, None);
            }
        }
    }

    /// Names `nonlocal` in the scope at `at` or below that neither it nor
    /// an enclosing function binds (`bound`; none at the top level, where
    /// `nonlocal` is not allowed), or that are `global` too: CPython's
    /// analysis after its symbol table is built, scope by scope.
    fn unbound_nonlocal(&self, at: usize, bound: Option<&[&str]>) -> Option<(TextSize, String)> {
        let scope = &self.scopes[at];
        for (name, flags, directive) in &scope.names {
            let directive = directive.unwrap_or_default();
            if flags & GLOBAL != 0 && flags & NONLOCAL != 0 {
                return Some((directive, format!("name '{name}' is nonlocal and global")));
            }
            if flags & NONLOCAL != 0 {
                match bound {
                    None => {
                        let message = "nonlocal declaration not allowed at module level";
                        return Some((directive, message.to_owned()));
                    }
                    Some(bound) if !bound.contains(&name.as_str()) => {
                        return Some((
                            directive,
                            format!("no binding for nonlocal '{name}' found"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut inner: Vec<&str> = bound.unwrap_or_default().to_vec();
        if matches!(scope.kind, Kind::Function | Kind::Comprehension) {
            inner.extend(
                scope
                    .names
                    .iter()
                    .filter(|(_, flags, _)| {
                        flags & (PARAM | LOCAL | IMPORTED) != 0 && flags & (GLOBAL | NONLOCAL) == 0
                    })
                    .map(|(name, _, _)| name.as_str()),
            );
        }
        scope
            .children
            .iter()
            .find_map(|child| self.unbound_nonlocal(*child, Some(&inner)))
    }

    fn bind(&mut self, name: &str, flags: u8) {
        self.current().add(name, flags, None);
    }

    /// A function's or lambda's defaults and annotations, visited where it
    /// is defined.
    fn visit_signature(&mut self, parameters: &Parameters) {
        for parameter in parameters.iter_non_variadic_params() {
            if let Some(default) = parameter.default() {
                self.visit_expr(default);
            }
        }
        for parameter in parameters.iter() {
            if let Some(annotation) = parameter.annotation() {
                self.visit_expr(annotation);
            }
        }
    }

    fn bind_parameters(&mut self, parameters: &Parameters) {
        for parameter in parameters.iter() {
            let name = parameter.name();
            if self.current().flags(name.as_str()) & PARAM != 0 {
                self.fail(
                    name.start(),
                    format!("duplicate argument '{name}' in function definition"),
                );
            }
            self.bind(name.as_str(), PARAM);
        }
    }

    /// A comprehension's scope: its first iterable belongs to the scope
    /// around it, the rest to its own.
    fn visit_comprehension_scope(
        &mut self,
        what: &'static str,
        generators: &[ast::Comprehension],
        elements: &[&Expr],
    ) {
        let Some(first) = generators.first() else {
            return;
        };
        self.visit_iterable(&first.iter);
        self.in_scope(Kind::Comprehension, |table| {
            table.current().comprehension = what;
            inner_parts(generators, elements, |part, kind| match kind {
                Part::Iterable => table.visit_iterable(part),
                Part::Target => {
                    table.in_target = true;
                    table.visit_expr(part);
                    table.in_target = false;
                }
                Part::Other => table.visit_expr(part),
            });
        });
    }

    /// A comprehension's iterable, where an assignment expression is an
    /// error.
    fn visit_iterable(&mut self, iterable: &Expr) {
        self.in_iterable += 1;
        self.visit_expr(iterable);
        self.in_iterable -= 1;
    }

    /// An assignment expression's target: bound in the nearest scope that
    /// is no comprehension, where it may not rebind a comprehension's
    /// iteration variable or land in a class body.
    fn bind_assignment_target(&mut self, named: &ast::ExprNamed) {
        let Expr::Name(target) = &*named.target else {
            return;
        };
        let name = target.id.as_str();
        if self.in_iterable > 0 {
            let message =
                "assignment expression cannot be used in a comprehension iterable expression";
            self.fail(named.start(), message.to_owned());
        }
        let mut at = 0;
        let mut rebinds = false;
        for index in self.stack.iter().rev().copied() {
            let scope = &self.scopes[index];
            if scope.kind != Kind::Comprehension {
                at = index;
                break;
            }
            rebinds |= scope.flags(name) & ITERATED != 0;
        }
        if rebinds {
            let message = format!(
                "assignment expression cannot rebind comprehension iteration variable '{name}'"
            );
            self.fail(named.start(), message);
        }
        let in_comprehension = self.current().kind == Kind::Comprehension;
        if in_comprehension && self.scopes[at].kind == Kind::Class {
            let message =
                "assignment expression within a comprehension cannot be used in a class body";
            self.fail(named.start(), message.to_owned());
        }
        self.visit_expr(&named.value);
        // From a comprehension, a target at the top level is a global
        // (CPython declares it so rather than binding it there).
        let binding = if in_comprehension && self.scopes[at].kind == Kind::Module {
            GLOBAL
        } else {
            LOCAL
        };
        self.scopes[at].add(name, binding, None);
    }

    fn visit_stmt_here(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::FunctionDef(function) => {
                for decorator in &function.decorator_list {
                    self.visit_expr(&decorator.expression);
                }
                self.visit_signature(&function.parameters);
                if let Some(returns) = &function.returns {
                    self.visit_expr(returns);
                }
                self.bind(function.name.as_str(), LOCAL);
                self.in_scope(Kind::Function, |table| {
                    table.bind_parameters(&function.parameters);
                    for stmt in &function.body {
                        table.visit_stmt(stmt);
                    }
                });
            }
            Stmt::ClassDef(class) => {
                for decorator in &class.decorator_list {
                    self.visit_expr(&decorator.expression);
                }
                if let Some(arguments) = &class.arguments {
                    self.visit_arguments(arguments);
                }
                self.bind(class.name.as_str(), LOCAL);
                self.in_scope(Kind::Class, |table| {
                    for stmt in &class.body {
                        table.visit_stmt(stmt);
                    }
                });
            }
            Stmt::Global(global) => self.declare(&global.names, GLOBAL, global.start()),
            Stmt::Nonlocal(nonlocal) => self.declare(&nonlocal.names, NONLOCAL, nonlocal.start()),
            Stmt::AnnAssign(assign) => {
                if let (Expr::Name(name), true) = (&*assign.target, assign.simple) {
                    let flags = self.current().flags(name.id.as_str());
                    // At the top level a `global` name is the module's own.
                    let top_level = self.current().kind == Kind::Module;
                    if flags & (GLOBAL | NONLOCAL) != 0 && !top_level {
                        let word = if flags & GLOBAL != 0 {
                            "global"
                        } else {
                            "nonlocal"
                        };
                        self.fail(
                            assign.start(),
                            format!("annotated name '{}' can't be {word}", name.id),
                        );
                    }
                    self.bind(name.id.as_str(), ANNOTATED | LOCAL);
                } else {
                    self.visit_expr(&assign.target);
                }
                self.visit_expr(&assign.annotation);
                if let Some(value) = &assign.value {
                    self.visit_expr(value);
                }
            }
            Stmt::Import(import) => {
                for alias in &import.names {
                    let bound = alias.asname.as_ref().unwrap_or(&alias.name).as_str();
                    let first = bound.split('.').next().unwrap_or(bound);
                    self.bind(first, IMPORTED);
                }
            }
            Stmt::ImportFrom(import) => {
                for alias in import
                    .names
                    .iter()
                    .filter(|alias| alias.name.as_str() != "*")
                {
                    let bound = alias.asname.as_ref().unwrap_or(&alias.name);
                    self.bind(bound.as_str(), IMPORTED);
                }
            }
            Stmt::Try(try_) => {
                for stmt in &try_.body {
                    self.visit_stmt(stmt);
                }
                for handler in &try_.handlers {
                    let ast::ExceptHandler::ExceptHandler(handler) = handler;
                    if let Some(kind) = &handler.type_ {
                        self.visit_expr(kind);
                    }
                    if let Some(name) = &handler.name {
                        self.bind(name.as_str(), LOCAL);
                    }
                    for stmt in &handler.body {
                        self.visit_stmt(stmt);
                    }
                }
                for stmt in try_.orelse.iter().chain(&try_.finalbody) {
                    self.visit_stmt(stmt);
                }
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr_here(&mut self, expr: &Expr) {
        match expr {
            Expr::Name(name) => {
                let flags = match name.ctx {
                    ExprContext::Load => USE,
                    _ if self.in_target => LOCAL | ITERATED,
                    _ => LOCAL,
                };
                self.bind(name.id.as_str(), flags);
            }
            Expr::Lambda(lambda) => {
                if let Some(parameters) = &lambda.parameters {
                    self.visit_signature(parameters);
                }
                self.in_scope(Kind::Function, |table| {
                    if let Some(parameters) = &lambda.parameters {
                        table.bind_parameters(parameters);
                    }
                    table.visit_expr(&lambda.body);
                });
            }
            Expr::ListComp(comp) => {
                self.visit_comprehension_scope(
                    "list comprehension",
                    &comp.generators,
                    &[&comp.elt],
                );
            }
            Expr::SetComp(comp) => {
                self.visit_comprehension_scope("set comprehension", &comp.generators, &[&comp.elt]);
            }
            Expr::Generator(comp) => {
                self.visit_comprehension_scope(
                    "generator expression",
                    &comp.generators,
                    &[&comp.elt],
                );
            }
            Expr::Yield(_) | Expr::YieldFrom(_) if self.current().kind == Kind::Comprehension => {
                let what = self.current().comprehension;
                self.fail(expr.start(), format!("'yield' inside {what}"));
                visitor::walk_expr(self, expr);
            }
            Expr::DictComp(comp) => {
                let key = comp.key.as_deref().into_iter();
                let parts: Vec<&Expr> = key.chain([&*comp.value]).collect();
                self.visit_comprehension_scope("dict comprehension", &comp.generators, &parts);
            }
            Expr::Named(named) => match &*named.target {
                Expr::Name(_) => self.bind_assignment_target(named),
                _ => visitor::walk_expr(self, expr),
            },
            _ => visitor::walk_expr(self, expr),
        }
    }
}

impl<'a> Visitor<'a> for Table {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        crate::deep::guarded(|| self.visit_stmt_here(stmt));
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        crate::deep::guarded(|| self.visit_expr_here(expr));
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        let name = match pattern {
            Pattern::MatchAs(pattern) => pattern.name.as_ref(),
            Pattern::MatchStar(pattern) => pattern.name.as_ref(),
            Pattern::MatchMapping(pattern) => pattern.rest.as_ref(),
            _ => None,
        };
        if let Some(name) = name {
            self.bind(name.as_str(), LOCAL);
        }
        crate::deep::guarded(|| visitor::walk_pattern(self, pattern));
    }
}

/// Where a statement or expression is, for the compiler's checks.
#[derive(Clone, Copy)]
struct Place {
    /// Inside a loop's body, in the same function.
    in_loop: bool,
    /// The innermost function around: none at the cell's top level (where
    /// `await` is allowed), or whether it is `async`; `Class` in a class body.
    function: Around,
    /// Inside a comprehension, whose `await` rules are not checked here.
    in_comprehension: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Around {
    TopLevel,
    Function { is_async: bool },
    Class,
}

/// The first error CPython's compiler (after its symbol table) raises for
/// `body` that this crate finds without CPython: `break` or `continue`
/// outside a loop, `return` or `yield` outside a function, `await` outside
/// an `async` function (the cell's top level allows it).
pub(crate) fn first_compiler_error(body: &[Stmt]) -> Option<(TextSize, String)> {
    let mut checker = Checker {
        place: Place {
            in_loop: false,
            function: Around::TopLevel,
            in_comprehension: false,
        },
        error: None,
    };
    for stmt in body {
        checker.visit_stmt(stmt);
    }
    checker.error
}

struct Checker {
    place: Place,
    error: Option<(TextSize, String)>,
}

impl Checker {
    fn fail(&mut self, at: TextSize, message: &str) {
        if self.error.is_none() {
            self.error = Some((at, message.to_owned()));
        }
    }

    fn within(&mut self, place: Place, visit: impl FnOnce(&mut Checker)) {
        let outer = std::mem::replace(&mut self.place, place);
        visit(self);
        self.place = outer;
    }

    fn body(&mut self, body: &[Stmt], place: Place) {
        self.within(place, |checker| {
            for stmt in body {
                checker.visit_stmt(stmt);
            }
        });
    }

    fn visit_stmt_here(&mut self, stmt: &Stmt) {
        let place = self.place;
        let unlooped = Place {
            in_loop: false,
            ..place
        };
        let outside_function = matches!(place.function, Around::TopLevel | Around::Class);
        match stmt {
            Stmt::Return(_) if outside_function => {
                self.fail(stmt.start(), "'return' outside function");
                visitor::walk_stmt(self, stmt);
            }
            Stmt::Break(_) if !place.in_loop => self.fail(stmt.start(), "'break' outside loop"),
            Stmt::Continue(_) if !place.in_loop => {
                self.fail(stmt.start(), "'continue' not properly in loop");
            }
            Stmt::For(for_) => {
                self.visit_expr(&for_.target);
                self.visit_expr(&for_.iter);
                self.body(
                    &for_.body,
                    Place {
                        in_loop: true,
                        ..place
                    },
                );
                self.body(&for_.orelse, place);
            }
            Stmt::While(while_) => {
                self.visit_expr(&while_.test);
                self.body(
                    &while_.body,
                    Place {
                        in_loop: true,
                        ..place
                    },
                );
                self.body(&while_.orelse, place);
            }
            Stmt::FunctionDef(function) => {
                for decorator in &function.decorator_list {
                    self.visit_expr(&decorator.expression);
                }
                self.visit_parameters(&function.parameters);
                if let Some(returns) = &function.returns {
                    self.visit_expr(returns);
                }
                let inside = Place {
                    function: Around::Function {
                        is_async: function.is_async,
                    },
                    in_comprehension: false,
                    ..unlooped
                };
                self.body(&function.body, inside);
            }
            Stmt::ClassDef(class) => {
                for decorator in &class.decorator_list {
                    self.visit_expr(&decorator.expression);
                }
                if let Some(arguments) = &class.arguments {
                    self.visit_arguments(arguments);
                }
                let inside = Place {
                    function: Around::Class,
                    in_comprehension: false,
                    ..unlooped
                };
                self.body(&class.body, inside);
            }
            _ => visitor::walk_stmt(self, stmt),
        }
    }

    fn visit_expr_here(&mut self, expr: &Expr) {
        let place = self.place;
        match expr {
            Expr::Yield(_) | Expr::YieldFrom(_)
                if !place.in_comprehension
                    && matches!(place.function, Around::TopLevel | Around::Class) =>
            {
                self.fail(expr.start(), "'yield' outside function");
                visitor::walk_expr(self, expr);
            }
            Expr::Await(await_) if !place.in_comprehension => {
                match place.function {
                    Around::TopLevel | Around::Function { is_async: true } => {}
                    Around::Function { is_async: false } => {
                        self.fail(expr.start(), "'await' outside async function");
                    }
                    Around::Class => self.fail(expr.start(), "'await' outside function"),
                }
                self.visit_expr(&await_.value);
            }
            Expr::Lambda(lambda) => {
                if let Some(parameters) = &lambda.parameters {
                    self.visit_parameters(parameters);
                }
                let inside = Place {
                    function: Around::Function { is_async: false },
                    in_comprehension: false,
                    ..place
                };
                self.within(inside, |checker| checker.visit_expr(&lambda.body));
            }
            Expr::ListComp(comp) => self.comprehension(expr, &comp.generators, &[&comp.elt]),
            Expr::SetComp(comp) => self.comprehension(expr, &comp.generators, &[&comp.elt]),
            Expr::DictComp(comp) => {
                let key = comp.key.as_deref().into_iter();
                let parts: Vec<&Expr> = key.chain([&*comp.value]).collect();
                self.comprehension(expr, &comp.generators, &parts);
            }
            Expr::Generator(comp) => self.comprehension(expr, &comp.generators, &[&comp.elt]),
            _ => visitor::walk_expr(self, expr),
        }
    }
}

impl Checker {
    /// A comprehension: its first iterable is evaluated where it stands,
    /// the rest inside it. A list, set or dict comprehension that awaits
    /// must be in an `async` function (or at the cell's top level, or in
    /// another comprehension, which is then the one that awaits).
    fn comprehension(
        &mut self,
        expr: &Expr,
        generators: &[ast::Comprehension],
        elements: &[&Expr],
    ) {
        let Some(first) = generators.first() else {
            return;
        };
        self.visit_expr(&first.iter);
        let place = self.place;
        let outside_async = matches!(
            place.function,
            Around::Function { is_async: false } | Around::Class
        );
        if !matches!(expr, Expr::Generator(_))
            && !place.in_comprehension
            && outside_async
            && awaits(generators, elements)
        {
            self.fail(
                expr.start(),
                "asynchronous comprehension outside of an asynchronous function",
            );
        }
        let inside = Place {
            in_comprehension: true,
            ..place
        };
        self.within(inside, |checker| {
            inner_parts(generators, elements, |part, _| checker.visit_expr(part));
        });
    }
}

/// Whether a comprehension awaits: `async for`, or `await` in it (its
/// first iterable aside), nested list, set and dict comprehensions
/// included, functions and generator expressions not.
fn awaits(generators: &[ast::Comprehension], elements: &[&Expr]) -> bool {
    struct Finder(bool);
    impl<'a> Visitor<'a> for Finder {
        fn visit_expr(&mut self, expr: &'a Expr) {
            match expr {
                Expr::Await(_) => self.0 = true,
                Expr::Lambda(_) | Expr::Generator(_) => {}
                Expr::ListComp(ast::ExprListComp { generators, .. })
                | Expr::SetComp(ast::ExprSetComp { generators, .. })
                | Expr::DictComp(ast::ExprDictComp { generators, .. })
                    if generators.iter().any(|generator| generator.is_async) =>
                {
                    self.0 = true;
                }
                _ if !self.0 => crate::deep::guarded(|| visitor::walk_expr(self, expr)),
                _ => {}
            }
        }
    }
    if generators.iter().any(|generator| generator.is_async) {
        return true;
    }
    let mut finder = Finder(false);
    inner_parts(generators, elements, |part, _| finder.visit_expr(part));
    finder.0
}

/// What a part of a comprehension is, for [`inner_parts`].
#[derive(Clone, Copy)]
enum Part {
    /// An iterable (after the first).
    Iterable,
    /// An iteration variable's target.
    Target,
    /// A condition or an element.
    Other,
}

/// The parts of a comprehension evaluated in its own scope, in CPython's
/// order: each iterable but the first, each target and condition, then
/// the elements.
fn inner_parts<'a>(
    generators: &'a [ast::Comprehension],
    elements: &[&'a Expr],
    mut visit: impl FnMut(&'a Expr, Part),
) {
    for (index, generator) in generators.iter().enumerate() {
        if index > 0 {
            visit(&generator.iter, Part::Iterable);
        }
        visit(&generator.target, Part::Target);
        for condition in &generator.ifs {
            visit(condition, Part::Other);
        }
    }
    for element in elements {
        visit(element, Part::Other);
    }
}

impl<'a> Visitor<'a> for Checker {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        crate::deep::guarded(|| self.visit_stmt_here(stmt));
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        crate::deep::guarded(|| self.visit_expr_here(expr));
    }
}

#[cfg(test)]
mod tests {
    use crate::analyze;

    /// Each message, line and column is CPython 3.11's for the same code.
    #[test]
    fn the_symbol_tables_errors_are_cpythons() {
        // The code, and CPython's message, line and column, if it errs.
        type Case<'a> = (&'a str, Option<(&'a str, u32, u32)>);
        let cases: &[Case<'_>] = &[
            ("def f(x):\n    global x\n", Some(("name 'x' is parameter and global", 2, 5))),
            ("def f():\n    print(x)\n    global x\n", Some(("name 'x' is used prior to global declaration", 3, 5))),
            ("def f():\n    x = 1\n    global x\n", Some(("name 'x' is assigned to before global declaration", 3, 5))),
            ("def f():\n    import os\n    global os\n", None),
            ("x = 1\nglobal x\n", Some(("name 'x' is assigned to before global declaration", 2, 1))),
            ("print(x)\nglobal x\n", Some(("name 'x' is used prior to global declaration", 2, 1))),
            ("def f():\n    nonlocal zz\n", Some(("no binding for nonlocal 'zz' found", 2, 5))),
            ("zz = 1\ndef f():\n    nonlocal zz\n", Some(("no binding for nonlocal 'zz' found", 3, 5))),
            (
                "def f():\n    class C:\n        y = 1\n        def g():\n            nonlocal y\n",
                Some(("no binding for nonlocal 'y' found", 5, 13)),
            ),
            ("def f():\n    def g():\n        nonlocal x\n    x = 1\n", None),
            (
                "def f():\n    x = 1\n    def g():\n        global x\n        nonlocal x\n",
                Some(("name 'x' is nonlocal and global", 4, 9)),
            ),
            ("def f():\n    x: int = 1\n    global x\n", Some(("annotated name 'x' can't be global", 3, 5))),
            ("def f():\n    global x\n    x: int = 1\n", Some(("annotated name 'x' can't be global", 3, 5))),
            ("def f():\n    x += 1\n    global x\n", Some(("name 'x' is assigned to before global declaration", 3, 5))),
            ("def f():\n    del x\n    global x\n", Some(("name 'x' is assigned to before global declaration", 3, 5))),
            ("def f():\n    for x in []: pass\n    global x\n", Some(("name 'x' is assigned to before global declaration", 3, 5))),
            ("def f(x):\n    def g(x):\n        nonlocal x\n", Some(("name 'x' is parameter and nonlocal", 3, 9))),
            ("def f():\n    g = lambda: x\n    global x\n", None),
            ("def f():\n    [x for _ in ()]\n    global x\n", None),
            ("def f():\n    def g():\n        return x\n    global x\n", None),
            ("return 1\ndef f():\n    x = 1\n    global x\n", Some(("name 'x' is assigned to before global declaration", 4, 5))),
            ("class C:\n    x = 1\n    global x\n", Some(("name 'x' is assigned to before global declaration", 3, 5))),
            ("def f():\n    [y := 1 for _ in ()]\n    global y\n", Some(("name 'y' is assigned to before global declaration", 3, 5))),
            ("def f():\n    @d(x)\n    def g(): pass\n    global x\n", Some(("name 'x' is used prior to global declaration", 4, 5))),
            ("def f():\n    [y for y in x]\n    global x\n", Some(("name 'x' is used prior to global declaration", 3, 5))),
            (
                "def f():\n    try:\n        pass\n    except E as x:\n        pass\n    global x\n",
                Some(("name 'x' is assigned to before global declaration", 6, 5)),
            ),
            (
                "def f():\n    from os import *\n",
                Some(("importing symbols with `import *` is not allowed in a notebook cell", 2, 5)),
            ),
            (
                "def f():\n    [lambda: y for y in ()]\n    def g():\n        nonlocal y\n",
                Some(("no binding for nonlocal 'y' found", 4, 9)),
            ),
            ("def f():\n    x = 1\n    class C:\n        def g(self):\n            nonlocal x\n", None),
            (
                "def f(v):\n    match v:\n        case [a]:\n            pass\n    global a\n",
                Some(("name 'a' is assigned to before global declaration", 5, 5)),
            ),
            ("def f():\n    (y := 1)\n    global y\n", Some(("name 'y' is assigned to before global declaration", 3, 5))),
            ("nonlocal x\n", Some(("nonlocal declaration not allowed at module level", 1, 1))),
            ("global a\na: int = 1\n", None),
            (
                "[x for x in (y := [1])]\n",
                Some(("assignment expression cannot be used in a comprehension iterable expression", 1, 14)),
            ),
            (
                "[x for x in a for z in (y := x)]\n",
                Some(("assignment expression cannot be used in a comprehension iterable expression", 1, 25)),
            ),
            (
                "[x for x in (lambda: (y := 1))()]\n",
                Some(("assignment expression cannot be used in a comprehension iterable expression", 1, 23)),
            ),
            (
                "[(x := 1) for x in a]\n",
                Some(("assignment expression cannot rebind comprehension iteration variable 'x'", 1, 3)),
            ),
            (
                "class C:\n    [(y := 1) for x in a]\n",
                Some(("assignment expression within a comprehension cannot be used in a class body", 2, 7)),
            ),
            ("class C:\n    (y := 1)\n", None),
            ("[(y := x) for x in a]\nprint(y)\n", None),
            ("x: int = 1\nglobal x\n", Some(("annotated name 'x' can't be global", 2, 1))),
            ("nonlocal b\nb: int = 1\n", Some(("nonlocal declaration not allowed at module level", 1, 1))),
            ("def f():\n    global a\nnonlocal a\n", Some(("name 'a' is nonlocal and global", 3, 1))),
            ("nonlocal a\ndef f():\n    global a\n", Some(("name 'a' is nonlocal and global", 1, 1))),
            (
                "x = 1\nnonlocal x\n",
                Some(("name 'x' is assigned to before nonlocal declaration", 2, 1)),
            ),
            (
                "nonlocal b\nclass C:\n    del a\n    nonlocal a\n",
                Some(("name 'a' is assigned to before nonlocal declaration", 4, 5)),
            ),
            ("def f(a, a):\n    pass\n", Some(("duplicate argument 'a' in function definition", 1, 10))),
            ("def f():\n    def g(a, b, a): pass\n", Some(("duplicate argument 'a' in function definition", 2, 17))),
            ("def f():\n    await x\n", Some(("'await' outside async function", 2, 5))),
            ("class C:\n    await x\n", Some(("'await' outside function", 2, 5))),
            ("async def f():\n    def g():\n        await x\n", Some(("'await' outside async function", 3, 9))),
            ("async def f():\n    lambda: (await x)\n", Some(("'await' outside async function", 2, 14))),
            ("async def f():\n    class C:\n        await x\n", Some(("'await' outside function", 3, 9))),
            ("await x\n", None),
            ("[x for x in (await y)]\n", None),
            ("async def f():\n    await x\n", None),
            ("break\n", Some(("'break' outside loop", 1, 1))),
            ("x = 1\ncontinue\n", Some(("'continue' not properly in loop", 2, 1))),
            ("for i in x:\n    def f():\n        break\n", Some(("'break' outside loop", 3, 9))),
            ("while x:\n    class C:\n        continue\n", Some(("'continue' not properly in loop", 3, 9))),
            ("for x in y:\n    pass\nelse:\n    break\n", Some(("'break' outside loop", 4, 5))),
            ("while x:\n    try:\n        pass\n    finally:\n        break\n", None),
            ("for x in y:\n    with z:\n        continue\n", None),
            ("return 1\nbreak\n", Some(("'return' outside function", 1, 1))),
            ("break\nreturn 1\n", Some(("'break' outside loop", 1, 1))),
            (
                "def f():\n    [await y for y in z]\n",
                Some(("asynchronous comprehension outside of an asynchronous function", 2, 5)),
            ),
            ("def f():\n    (await y for y in z)\n", None),
            (
                "def f():\n    [y async for y in z]\n",
                Some(("asynchronous comprehension outside of an asynchronous function", 2, 5)),
            ),
            (
                "def f():\n    {await y: 1 for y in z}\n",
                Some(("asynchronous comprehension outside of an asynchronous function", 2, 5)),
            ),
            ("[await y for y in z]\n", None),
            ("[(yield) for x in y]\n", Some(("'yield' inside list comprehension", 1, 3))),
            ("def f():\n    ((yield) for x in y)\n", Some(("'yield' inside generator expression", 2, 7))),
            ("{(yield): 1 for x in y}\n", Some(("'yield' inside dict comprehension", 1, 3))),
            ("[x for x in (yield)]\n", Some(("'yield' outside function", 1, 14))),
            ("return 1\n", Some(("'return' outside function", 1, 1))),
            ("yield 1\n", Some(("'yield' outside function", 1, 1))),
            (
                "async def f():\n    class C:\n        return 1\n    break\n",
                Some(("'return' outside function", 3, 9)),
            ),
            ("def f():\n    class C:\n        yield 1\n", Some(("'yield' outside function", 3, 9))),
            ("[(b := 1) for y in a]\nglobal b\n", None),
            ("def f():\n    [(b := 1) for y in a]\n    global b\n", Some(("name 'b' is assigned to before global declaration", 3, 5))),
            ("[lambda y: (await a) for y in z]\n", Some(("'await' outside async function", 1, 13))),
            (
                "def f():\n    [[await y for y in z] for w in v]\n",
                Some(("asynchronous comprehension outside of an asynchronous function", 2, 5)),
            ),
            (
                "class C:\n    [await y for y in z]\n",
                Some(("asynchronous comprehension outside of an asynchronous function", 2, 5)),
            ),
            (
                "async def f():\n    def g():\n        [await y for y in z]\n",
                Some(("asynchronous comprehension outside of an asynchronous function", 3, 9)),
            ),
            ("def f():\n    [y for y in await z]\n", Some(("'await' outside async function", 2, 17))),
            ("async def f():\n    [await y for y in z]\n", None),
        ];
        for (code, expected) in cases {
            let found = analyze(code)
                .err()
                .map(|error| (error.message, error.line, error.column));
            let expected =
                expected.map(|(message, line, column)| (message.to_owned(), line, column));
            assert_eq!(found, expected, "{code:?}");
        }
    }
}
