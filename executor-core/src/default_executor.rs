//! [`DefaultExecutor`]: runs cell bodies with one shared Rhai engine.

use std::cell::RefCell;
use std::collections::HashMap;

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope};

use crate::lang::new_engine;
use crate::notebook::Program;
use crate::{
    CancelToken, Cell, CellError, ErrorKind, Executor, Globals, Limits, RunResult, StopReason,
};

/// The built-in executor: evaluates a cell's compiled program with one
/// shared Rhai engine.
///
/// - Inputs: the cell's refs are pushed into a fresh scope from the globals.
///   Containers are shared there, so pushing one clones a pointer.
/// - Functions: every cell's program carries the whole notebook's function
///   library, so a `fn` defined in one cell is callable from all of them.
///   Notebook globals a function body reads are resolved at run time.
/// - Outputs: the value of the last statement; the top-level definitions
///   the body made, also before a failure, are written back to the globals.
/// - Print and debug output are captured per cell.
/// - The cancel token is polled on every Rhai operation.
pub struct DefaultExecutor {
    engine: Engine,
}

/// Per-thread state of the cell being evaluated, seen by the engine's callbacks.
#[derive(Default)]
struct Control {
    token: Option<CancelToken>,
    stdout: String,
    fn_env: HashMap<String, Dynamic>,
}

thread_local! {
    static CONTROL: RefCell<Control> = RefCell::new(Control::default());
}

/// Installs a cell's control on this thread for the guard's lifetime,
/// restoring the previous one after (executors may nest).
struct ControlGuard {
    previous: Option<Control>,
}

impl ControlGuard {
    fn install(control: Control) -> ControlGuard {
        let previous = CONTROL.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), control));
        ControlGuard {
            previous: Some(previous),
        }
    }

    fn finish(mut self) -> String {
        let previous = self.previous.take().unwrap_or_default();
        CONTROL.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), previous).stdout)
    }
}

impl Drop for ControlGuard {
    fn drop(&mut self) {
        if let Some(previous) = self.previous.take() {
            CONTROL.with(|slot| *slot.borrow_mut() = previous);
        }
    }
}

impl DefaultExecutor {
    /// The executor's name.
    pub const NAME: &'static str = "default";

    /// An executor whose engine enforces `limits`.
    pub fn new(limits: &Limits) -> DefaultExecutor {
        let mut engine = new_engine(limits);
        engine.on_progress(|_operations| {
            CONTROL.with(|slot| {
                let control = slot.borrow();
                let reason = control.token.as_ref()?.reason()?;
                Some(Dynamic::from(match reason {
                    StopReason::Interrupted => "interrupted",
                    StopReason::TimedOut => "timed out",
                }))
            })
        });
        engine.on_print(|text| {
            CONTROL.with(|slot| {
                let mut control = slot.borrow_mut();
                control.stdout.push_str(text);
                control.stdout.push('\n');
            });
        });
        engine.on_debug(|text, _source, _position| {
            CONTROL.with(|slot| {
                let mut control = slot.borrow_mut();
                control.stdout.push_str(text);
                control.stdout.push('\n');
            });
        });
        // Function bodies cannot see the caller's scope; give them the
        // notebook globals they read. Locals and parameters come first.
        #[allow(deprecated)]
        engine.on_var(|name, index, context| {
            if index > 0 || context.call_level() == 0 || context.scope().contains(name) {
                return Ok(None);
            }
            Ok(CONTROL.with(|slot| slot.borrow().fn_env.get(name).cloned()))
        });
        DefaultExecutor { engine }
    }

    fn run(
        &self,
        cell: &Cell,
        program: &Program,
        globals: &mut Globals,
        token: &CancelToken,
    ) -> RunResult {
        let mut scope = Scope::with_capacity(cell.refs().len() + cell.defs().len());
        for name in cell.refs() {
            if cell.defs().contains(name) {
                continue;
            }
            if let Some(value) = globals.get(name) {
                scope.push_dynamic(name.as_str(), value.clone());
            }
        }
        let base = scope.len();
        let fn_env = program
            .fn_globals
            .iter()
            .filter_map(|name| Some((name.clone(), globals.get(name)?.clone())))
            .collect();
        let guard = ControlGuard::install(Control {
            token: Some(token.clone()),
            stdout: String::new(),
            fn_env,
        });
        let evaluated = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &program.ast);
        let stdout = guard.finish();
        for (name, value, _) in scope.into_iter().skip(base) {
            if !name.starts_with('_') {
                globals.set(name, value);
            }
        }
        match evaluated {
            Ok(output) => RunResult {
                output,
                stdout,
                error: None,
                cached: false,
            },
            Err(error) => RunResult {
                output: Dynamic::UNIT,
                stdout,
                error: Some(cell_error(*error, cell, program, token)),
                cached: false,
            },
        }
    }
}

impl Executor for DefaultExecutor {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        match cell.program() {
            Some(program) => self.run(cell, program, globals, token),
            None => RunResult::failed(
                cell.syntax_error()
                    .cloned()
                    .unwrap_or_else(|| CellError::new(ErrorKind::Internal, "cell has no program")),
            ),
        }
    }
}

/// Turns a Rhai error into a cell error with a notebook position.
///
/// Errors inside functions are reported where the innermost function's code
/// is, which may be another cell than the one that called it.
fn cell_error(
    mut error: EvalAltResult,
    cell: &Cell,
    program: &Program,
    token: &CancelToken,
) -> CellError {
    let mut innermost_fn = None;
    while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = error {
        innermost_fn = Some(name);
        error = *inner;
    }
    let position = error.take_position();
    let first_line = innermost_fn
        .as_deref()
        .and_then(|name| program.fn_homes.get(name).copied())
        .unwrap_or(cell.first_line());
    let (line, column) = notebook_position(position, first_line);
    let mut cell_error = match &error {
        EvalAltResult::ErrorTerminated(..) => match token.reason() {
            Some(StopReason::TimedOut) => {
                CellError::new(ErrorKind::Timeout, "cell ran past the time limit")
            }
            _ => CellError::new(ErrorKind::Interrupted, "interrupted"),
        },
        EvalAltResult::ErrorVariableNotFound(name, _) => {
            let mut missing = CellError::new(ErrorKind::Runtime, error.to_string());
            missing.missing_name = Some(name.clone());
            missing
        }
        _ => CellError::new(ErrorKind::Runtime, error.to_string()),
    };
    if let Some(name) = innermost_fn.filter(|name| !is_closure(name)) {
        cell_error.message = format!("{} (in fn `{name}`)", cell_error.message);
    }
    cell_error.at(line, column)
}

/// Whether a script function name is the name Rhai gives a closure.
fn is_closure(name: &str) -> bool {
    name.starts_with("anon$")
}

/// Maps a position inside code starting at notebook line `first_line`.
fn notebook_position(position: Position, first_line: u32) -> (Option<u32>, Option<u32>) {
    let line = position.line().map(|line| first_line + line as u32 - 1);
    (line, position.position().map(|column| column as u32))
}
