//! The cell language: how the Rhai engine is configured.

use rhai::{Engine, OptimizationLevel};

/// Safety limits applied to every cell, so a runaway cell becomes a cell
/// error instead of a crash or an out-of-memory of the runner.
///
/// Rhai's own defaults differ between debug and release builds; these are
/// always set explicitly. Nothing limits the number of operations or the
/// wall time by default: long legitimate computations must finish (use a
/// run's timeout for wall time).
///
/// The size limits default to `0`, unlimited, on purpose: once any size
/// limit is set, Rhai measures a container after every mutation by walking
/// it, so building an array of `n` elements with `push` costs O(n²) (40,000
/// pushes took 4 s in a debug build). The runner bounds memory instead: a
/// cell that makes the process exceed its memory limit is stopped with an
/// error (see `StopReason::MemoryLimit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of function calls (recursion depth).
    pub call_depth: usize,
    /// Deepest expression nesting at the top level of a cell.
    pub expr_depth: usize,
    /// Deepest expression nesting inside a function body.
    pub fn_expr_depth: usize,
    /// Longest string, in bytes (`0`: unlimited).
    pub string_size: usize,
    /// Most elements of an array or bytes of a blob, nested ones included (`0`: unlimited).
    pub array_size: usize,
    /// Most entries of an object map, nested ones included (`0`: unlimited).
    pub map_size: usize,
    /// Most bytes one built-in call may allocate (`blob(n)`, `pad(n, ...)`),
    /// checked before the call runs (`0`: unlimited). The runner sets it to
    /// the run's memory limit, which is otherwise checked only between
    /// operations.
    pub max_alloc_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            call_depth: 256,
            expr_depth: 256,
            fn_expr_depth: 128,
            string_size: 0,
            array_size: 0,
            map_size: 0,
            max_alloc_bytes: 0,
        }
    }
}

/// The stack a thread running cells needs for [`Limits::default`]'s call depth.
///
/// Deep Rhai recursion uses the native stack; run cells on a thread with at
/// least this much.
pub const CELL_THREAD_STACK: usize = 256 << 20;

/// An engine configured with `limits` and the cell-language rules.
///
/// `eval` is disabled: code it would run is invisible to the static
/// analysis. The engine does not optimise at compile time, so the analysis
/// sees every read; the analysis optimises the AST itself afterwards.
pub(crate) fn new_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_optimization_level(OptimizationLevel::None)
        .set_max_call_levels(limits.call_depth)
        .set_max_expr_depths(limits.expr_depth, limits.fn_expr_depth)
        .set_max_string_size(limits.string_size)
        .set_max_array_size(limits.array_size)
        .set_max_map_size(limits.map_size)
        .set_max_operations(0)
        // Interning identifiers costs more than it saves when thousands of
        // small cells are compiled once each.
        .set_max_strings_interned(0)
        .disable_symbol("eval");
    engine
}
