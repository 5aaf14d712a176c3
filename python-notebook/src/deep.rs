//! Syntax trees of any depth, parsed, walked and dropped without running
//! out of stack.
//!
//! ruff's parser grows its stack as it recurses, but the tree it returns is
//! as deep as the code nests, and walking or dropping it recurses once per
//! level: a cell of 50,000 nested lists overflowed a thread's stack, which
//! aborts the process. Every parse here goes through [`Tree`], whose drop
//! runs on a stack as large as the tree needs, and every recursive walk
//! calls [`guarded`] at each level.

use std::mem::ManuallyDrop;
use std::ops::Deref;

use ruff_python_ast::token::{TokenKind, Tokens};
use ruff_python_ast::visitor::{self, Visitor};
use ruff_python_ast::{Expr, Mod, Pattern, Stmt};
use ruff_python_parser::{parse_unchecked, Mode, ParseOptions, Parsed};
use ruff_text_size::{Ranged, TextSize};

/// How deep brackets may nest: CPython's tokenizer refuses the 201st level
/// ("too many nested parentheses"), so marimo cannot compile such a cell.
pub(crate) const MAX_BRACKET_DEPTH: usize = 200;

/// How many blocks may nest: CPython's tokenizer refuses the 100th level of
/// indentation ("too many levels of indentation").
pub(crate) const MAX_INDENT_DEPTH: usize = 99;

/// Stack a walk must have left before it descends one more level.
const RED_ZONE: usize = 128 * 1024;

/// The size of each stack segment a walk adds when it runs short.
const SEGMENT: usize = 2 * 1024 * 1024;

/// A bound on the stack one level of a tree takes while it is dropped
/// (the drops measured here took under 100 bytes a level).
const DROP_BYTES_PER_LEVEL: usize = 512;

/// Trees nesting deeper than this are not dropped but left to the process's
/// end: only hostile input nests this deep, and the stack their drop would
/// need (hundreds of megabytes) may not be there.
const MAX_DROPPED_DEPTH: usize = 1 << 20;

/// Runs `walk`, one level of a recursive walk of a tree, on a stack with
/// room for it: the current one, or a new segment when that runs short.
#[inline]
pub(crate) fn guarded<R>(walk: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, SEGMENT, walk)
}

/// `code` parsed as a module, errors recovered (ruff's `parse_unchecked`).
pub(crate) fn parse_module(code: &str) -> Tree {
    Tree {
        parsed: ManuallyDrop::new(parse_unchecked(code, ParseOptions::from(Mode::Module))),
        code_len: code.len(),
    }
}

/// A parse result whose tree is dropped on a stack large enough for it.
pub(crate) struct Tree {
    parsed: ManuallyDrop<Parsed<Mod>>,
    /// The parsed code's length in bytes, which bounds the tree's depth
    /// (every level of the tree spans at least one byte more than the next,
    /// but for a few wrappers of the same span).
    code_len: usize,
}

impl Deref for Tree {
    type Target = Parsed<Mod>;

    fn deref(&self) -> &Parsed<Mod> {
        &self.parsed
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        // SAFETY: `parsed` is taken once, here, and never used again.
        let parsed = unsafe { ManuallyDrop::take(&mut self.parsed) };
        let remaining = stacker::remaining_stack().unwrap_or(0);
        let bound = self
            .code_len
            .saturating_mul(4 * DROP_BYTES_PER_LEVEL)
            .saturating_add(RED_ZONE);
        if bound <= remaining {
            return drop(parsed);
        }
        let depth = depth(&parsed);
        let needed = depth
            .saturating_mul(DROP_BYTES_PER_LEVEL)
            .saturating_add(RED_ZONE);
        if needed <= remaining {
            drop(parsed);
        } else if depth <= MAX_DROPPED_DEPTH {
            stacker::grow(needed, move || drop(parsed));
        } else {
            std::mem::forget(parsed);
        }
    }
}

/// The first place where the code passes one of the nesting limits of
/// CPython 3.11's tokenizer, with CPython's message: brackets (`(`, `[`,
/// `{` outside f-strings and t-strings, whose text is one token there)
/// nested more than [`MAX_BRACKET_DEPTH`] deep, or blocks indented more
/// than [`MAX_INDENT_DEPTH`] levels.
pub(crate) fn past_tokenizer_limits(tokens: &Tokens) -> Option<(TextSize, &'static str)> {
    let mut brackets = 0usize;
    let mut indents = 0usize;
    let mut in_strings = 0usize;
    for token in tokens.iter() {
        match token.kind() {
            TokenKind::FStringStart | TokenKind::TStringStart => in_strings += 1,
            TokenKind::FStringEnd | TokenKind::TStringEnd => {
                in_strings = in_strings.saturating_sub(1);
            }
            _ if in_strings > 0 => {}
            TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                brackets += 1;
                if brackets > MAX_BRACKET_DEPTH {
                    return Some((token.start(), "too many nested parentheses"));
                }
            }
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => {
                brackets = brackets.saturating_sub(1);
            }
            TokenKind::Indent => {
                indents += 1;
                if indents > MAX_INDENT_DEPTH {
                    return Some((token.start(), "too many levels of indentation"));
                }
            }
            TokenKind::Dedent => indents = indents.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// How many statements, expressions and patterns deep the tree nests.
pub(crate) fn depth(parsed: &Parsed<Mod>) -> usize {
    let mut walk = Depth::default();
    match parsed.syntax() {
        Mod::Module(module) => walk.visit_body(&module.body),
        Mod::Expression(expression) => walk.visit_expr(&expression.body),
    }
    walk.deepest
}

#[derive(Default)]
struct Depth {
    current: usize,
    deepest: usize,
}

impl Depth {
    fn level(&mut self, walk: impl FnOnce(&mut Depth)) {
        self.current += 1;
        self.deepest = self.deepest.max(self.current);
        guarded(|| walk(self));
        self.current -= 1;
    }
}

impl<'a> Visitor<'a> for Depth {
    fn visit_stmt(&mut self, stmt: &'a Stmt) {
        self.level(|walk| visitor::walk_stmt(walk, stmt));
    }

    fn visit_expr(&mut self, expr: &'a Expr) {
        self.level(|walk| visitor::walk_expr(walk, expr));
    }

    fn visit_pattern(&mut self, pattern: &'a Pattern) {
        self.level(|walk| visitor::walk_pattern(walk, pattern));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nested_statements_expressions_and_patterns() {
        let depth_of = |code: &str| depth(&parse_module(code));
        assert_eq!(depth_of(""), 0);
        assert_eq!(depth_of("x"), 2);
        assert_eq!(depth_of("x = [[1]]"), 4);
        assert_eq!(depth_of("if a:\n    if b:\n        c\n"), 4);
        assert_eq!(depth_of("match x:\n    case [1]:\n        pass\n"), 4);
    }

    #[test]
    fn nesting_past_cpython_s_tokenizer_limits_is_found_where_it_starts() {
        let at = |code: &str| {
            past_tokenizer_limits(parse_module(code).tokens())
                .map(|(offset, message)| (usize::from(offset), message))
        };
        let brackets = |n: usize| format!("x = {}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(at(&brackets(MAX_BRACKET_DEPTH)), None);
        assert_eq!(
            at(&brackets(MAX_BRACKET_DEPTH + 1)),
            Some((4 + MAX_BRACKET_DEPTH, "too many nested parentheses"))
        );
        // Braces of f-strings' replacement fields are not brackets to 3.11.
        let fields = format!("x = {}1{}", "f'{".repeat(150), "}'".repeat(150));
        assert_eq!(
            at(&format!("{}{fields}{}", "(".repeat(100), ")".repeat(100))),
            None
        );
        let blocks = |n: usize| {
            let mut code: String = (0..n)
                .map(|i| format!("{}if 1:\n", " ".repeat(i)))
                .collect();
            code.push_str(&format!("{}x = 1\n", " ".repeat(n)));
            code
        };
        assert_eq!(at(&blocks(MAX_INDENT_DEPTH)), None);
        let deep = blocks(MAX_INDENT_DEPTH + 1);
        let last_line = deep.trim_end().rfind('\n').unwrap() + 1;
        assert_eq!(
            at(&deep),
            Some((last_line, "too many levels of indentation"))
        );
    }
}
