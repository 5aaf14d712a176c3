//! [`DefaultExecutor`]: runs cell bodies with one shared Rhai engine.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope};

use crate::lang::new_engine;
use crate::notebook::Program;
use crate::{
    CancelToken, Cell, CellError, Concurrency, ErrorKind, Executor, Globals, Limits, RunResult,
    StopReason, RHAI,
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
    /// The notebook globals, moved here for the duration of the body so
    /// function bodies can read them.
    globals: Globals,
    /// The running cell's own definitions: invisible inside functions.
    own_defs: Arc<[String]>,
    /// A deadline a caller gave the body ([`DefaultExecutor::execute_until`]).
    deadline: Option<Instant>,
    /// Whether the body was stopped at that deadline.
    deadline_hit: bool,
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

    /// Restores the previous control and returns the captured text, the
    /// globals, and whether the body was stopped at its deadline.
    fn finish(mut self) -> (String, Globals, bool) {
        let previous = self.previous.take().unwrap_or_default();
        let control = CONTROL.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), previous));
        (control.stdout, control.globals, control.deadline_hit)
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
        crate::bounded::register(&mut engine, limits.max_alloc_bytes, || {
            CONTROL.with(|slot| {
                slot.borrow()
                    .token
                    .as_ref()
                    .is_some_and(CancelToken::is_stopped)
            })
        });
        engine.on_progress(|operations| {
            CONTROL.with(|slot| {
                let mut control = slot.borrow_mut();
                if let Some(deadline) = control.deadline {
                    if operations % 128 == 0 && Instant::now() >= deadline {
                        control.deadline_hit = true;
                        return Some(Dynamic::from("timed out"));
                    }
                }
                let reason = control.token.as_ref()?.reason()?;
                Some(Dynamic::from(match reason {
                    StopReason::Interrupted => "interrupted",
                    StopReason::TimedOut => "timed out",
                    StopReason::MemoryLimit => "out of memory",
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
        // Function bodies cannot see the caller's scope; let them read the
        // notebook globals defined by other cells. Locals and parameters
        // come first; the top level reads its inputs from its own scope.
        #[allow(deprecated)]
        engine.on_var(|name, index, context| {
            if index > 0 || context.call_level() == 0 || context.scope().contains(name) {
                return Ok(None);
            }
            Ok(CONTROL.with(|slot| {
                let control = slot.borrow();
                if control.own_defs.iter().any(|def| def == name) {
                    return None;
                }
                control.globals.get(name).cloned()
            }))
        });
        DefaultExecutor { engine }
    }

    fn run(
        &self,
        cell: &Cell,
        program: &Program,
        globals: &mut Globals,
        token: &CancelToken,
        deadline: Option<Instant>,
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
        let guard = ControlGuard::install(Control {
            token: Some(token.clone()),
            stdout: String::new(),
            globals: std::mem::take(globals),
            own_defs: program.defs.clone(),
            deadline,
            deadline_hit: false,
        });
        let evaluated = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, &program.ast);
        let (stdout, restored, deadline_hit) = guard.finish();
        *globals = restored;
        // Definitions made before a failure stay, except after the memory
        // limit stopped the cell: keeping what filled the memory would stop
        // every later cell too.
        if token.reason() != Some(StopReason::MemoryLimit) {
            for (name, value, _) in scope.into_iter().skip(base) {
                if !name.starts_with('_') {
                    globals.set(name, value);
                }
            }
        }
        match evaluated {
            Ok(output) => RunResult {
                output,
                stdout,
                error: None,
                cached: false,
                display: None,
            },
            Err(error) => RunResult {
                output: Dynamic::UNIT,
                stdout,
                error: Some({
                    let error = cell_error(
                        *error,
                        cell,
                        program,
                        token,
                        self.engine.max_call_levels(),
                        &|name| globals.contains(name),
                    );
                    if deadline_hit {
                        CellError::new(
                            ErrorKind::Timeout,
                            "cell ran past the deadline its executor set",
                        )
                        .at(error.line, error.column)
                    } else {
                        error
                    }
                }),
                cached: false,
                display: None,
            },
        }
    }
}

impl DefaultExecutor {
    /// Runs `cell`'s body as [`Executor::execute`] does, and stops it at
    /// `deadline` too: then its error has kind `timeout`. The token still
    /// stops it earlier.
    pub fn execute_until(
        &self,
        cell: &Cell,
        globals: &mut Globals,
        token: &CancelToken,
        deadline: Option<Instant>,
    ) -> RunResult {
        match (cell.program(), deadline) {
            (Some(program), Some(_)) => self.run(cell, program, globals, token, deadline),
            _ => self.execute(cell, globals, token),
        }
    }
}

impl Executor for DefaultExecutor {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        match cell.program() {
            Some(program) => self.run(cell, program, globals, token, None),
            None if cell.language() != RHAI => RunResult::failed(CellError::new(
                ErrorKind::Internal,
                format!(
                    "the built-in executor runs Rhai cells, not {} cells",
                    cell.language()
                ),
            )),
            None => RunResult::failed(
                cell.syntax_error()
                    .cloned()
                    .unwrap_or_else(|| CellError::new(ErrorKind::Internal, "cell has no program")),
            ),
        }
    }

    fn concurrency(&self) -> Concurrency {
        // One engine, per-thread state: cells on different threads with
        // their own globals do not interfere.
        Concurrency::Parallel
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
    max_call_depth: usize,
    is_global: &dyn Fn(&str) -> bool,
) -> CellError {
    let mut innermost_fn = None;
    while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = error {
        innermost_fn = Some(name);
        error = *inner;
    }
    let position = error.take_position();
    let first_line = innermost_fn
        .as_deref()
        .and_then(|name| program.fn_homes.get(name).map(|home| home.first_line))
        .unwrap_or(cell.first_line());
    let (line, column) = notebook_position(position, first_line);
    let mut cell_error = match &error {
        EvalAltResult::ErrorTerminated(..) => token
            .reason()
            .unwrap_or(StopReason::Interrupted)
            .cell_error(),
        EvalAltResult::ErrorDataTooLarge(what, _)
            if what.contains(crate::bounded::MEMORY_LIMIT) =>
        {
            CellError::new(ErrorKind::Runtime, what.clone())
        }
        EvalAltResult::ErrorVariableNotFound(name, _) => {
            let mut missing = CellError::new(ErrorKind::Runtime, error.to_string());
            missing.missing_name = Some(name.clone());
            missing
        }
        // Inside a function, a notebook global is read-only: Rhai calls it
        // a constant, which the notebook never declared.
        EvalAltResult::ErrorAssignmentToConstant(name, _)
            if innermost_fn.is_some() && is_global(name) =>
        {
            CellError::new(
                ErrorKind::Runtime,
                format!(
                    "a function cannot assign to the notebook global `{name}`: functions read globals; return the new value instead"
                ),
            )
        }
        EvalAltResult::ErrorStackOverflow(..) => CellError::new(
            ErrorKind::Runtime,
            format!(
                "more than {} nested function calls (the call depth limit): endless recursion?",
                max_call_depth
            ),
        ),
        EvalAltResult::ErrorRuntime(value, _) => {
            let text = value.to_string();
            if value.is_unit() || text.is_empty() {
                CellError::new(ErrorKind::Runtime, "`throw` without a value")
            } else {
                CellError::new(ErrorKind::Runtime, format!("thrown: {text}"))
            }
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

#[cfg(test)]
mod tests {
    use std::thread;
    use std::time::Duration;

    use super::*;
    use crate::testutil::{one_cell, run_cells, run_in, run_one};
    use crate::{CellSource, Notebook, CELL_THREAD_STACK};

    /// One line per result: the output's debug form, or `kind: message`.
    fn describe(result: &RunResult) -> String {
        match &result.error {
            None => format!("{:?}", result.output),
            Some(error) => format!("{}: {}", error.kind, error.message),
        }
    }

    /// Runs `codes` as cells c0, c1, ... in order and compares each result
    /// with `expect` (see [`describe`]); returns the final globals.
    #[track_caller]
    fn check(codes: &[&str], expect: &[&str]) -> Globals {
        let (results, globals) = run_cells(codes);
        let got: Vec<String> = results.iter().map(describe).collect();
        assert_eq!(got, expect);
        globals
    }

    /// The error of `result`, which must have failed.
    #[track_caller]
    fn error_of(result: &RunResult) -> &CellError {
        match &result.error {
            Some(error) => error,
            None => panic!("expected an error, the cell returned {:?}", result.output),
        }
    }

    /// The error of the last of `codes` run as cells, which must have failed.
    #[track_caller]
    fn last_error(codes: &[&str]) -> CellError {
        let (results, _) = run_cells(codes);
        error_of(results.last().expect("at least one cell")).clone()
    }

    /// Runs `f` on a thread with the stack the runner gives cell threads.
    fn on_cell_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        thread::Builder::new()
            .stack_size(CELL_THREAD_STACK)
            .spawn(f)
            .expect("spawn a cell thread")
            .join()
            .expect("the cell thread does not panic")
    }

    #[test]
    fn output_is_the_last_expression_or_unit() {
        check(
            &["1 + 2", "let q = 3;", "\"a\" + \"b\""],
            &["3", "()", "\"ab\""],
        );
    }

    #[test]
    fn defs_flow_to_later_cells() {
        let globals = check(&["let a = 1; const B = 2;", "a + B"], &["()", "3"]);
        assert_eq!(globals.get("a").map(Dynamic::as_int), Some(Ok(1)));
        assert_eq!(globals.get("B").map(Dynamic::as_int), Some(Ok(2)));
    }

    #[test]
    fn private_defs_never_reach_the_globals() {
        let globals = check(&["let _p = 2; let a = _p + 1;", "a"], &["()", "3"]);
        assert!(!globals.contains("_p"));
        let error = last_error(&["let _p = 2;", "_p"]);
        assert_eq!(error.missing_name.as_deref(), Some("_p"));
    }

    #[test]
    fn fn_defined_in_one_cell_is_callable_from_another() {
        check(&["fn double(x) { x * 2 }", "double(21)"], &["()", "42"]);
    }

    #[test]
    fn fn_body_reads_a_global_defined_in_a_third_cell() {
        check(
            &["let factor = 3;", "fn scale(x) { x * factor }", "scale(2)"],
            &["()", "()", "6"],
        );
        // The defining cell may come before the global's.
        check(
            &["fn scale(x) { x * factor }", "let factor = 3;", "scale(2)"],
            &["()", "()", "6"],
        );
        // Through another fn.
        check(
            &[
                "let factor = 3;",
                "fn scale(x) { x * factor }",
                "fn twice(x) { scale(x) * 2 }",
                "twice(1)",
            ],
            &["()", "()", "()", "6"],
        );
    }

    #[test]
    fn fn_parameters_and_locals_shadow_globals() {
        check(
            &[
                "let x = 100;",
                "fn f(x) { x + 1 }",
                "fn g() { let x = 5; x }",
                "f(1) + g() + x",
            ],
            &["()", "()", "()", "107"],
        );
    }

    #[test]
    fn closures_stored_in_globals_are_callable_from_another_cell() {
        check(
            &["let k = 10; let add = |y| y + k;", "add.call(5)"],
            &["()", "15"],
        );
        check(
            &[
                "fn double(x) { x * 2 }",
                "let d = |y| double(y) + 1;",
                "d.call(4)",
            ],
            &["()", "()", "9"],
        );
    }

    #[test]
    fn fn_reached_through_a_global_reads_the_globals_its_body_needs() {
        let defs = ["let factor = 3;", "fn scale(x) { x * factor }"];
        for (make, call) in [
            ("let c = |y| scale(y);", "c.call(2)"),
            ("let p = Fn(\"scale\");", "p.call(2)"),
        ] {
            check(&[defs[0], defs[1], make, call], &["()", "()", "()", "6"]);
        }
    }

    #[test]
    fn fn_body_cannot_see_the_calling_cells_own_variables() {
        // As in Rhai, a function body sees no variable of the cell running
        // it; it reads notebook globals defined by other cells only, so a
        // re-run never reads a stale value of the cell's own definition.
        let missing = "runtime: Variable not found: factor (in fn `scale`)";
        check(
            &["let factor = 3; fn scale(x) { x * factor } scale(2)"],
            &[missing],
        );
        check(
            &["fn scale(x) { x * factor }", "let factor = 3; scale(2)"],
            &["()", missing],
        );
        let mut globals = Globals::new();
        globals.set("factor", Dynamic::from(10_i64));
        let results = run_in(
            &mut globals,
            &["let factor = 3; fn scale(x) { x * factor } scale(2)"],
        );
        assert_eq!(
            describe(&results[0]),
            missing,
            "never the previous run's value"
        );
    }

    #[test]
    fn definitions_made_before_a_failure_stay() {
        let (results, globals) = run_cells(&["let a = 1; let b = 1 / 0;"]);
        assert_eq!(error_of(&results[0]).kind, ErrorKind::Runtime);
        assert_eq!(globals.get("a").map(Dynamic::as_int), Some(Ok(1)));
        assert!(!globals.contains("b"));
    }

    #[test]
    fn print_and_debug_are_captured_per_cell() {
        let (results, _) = run_cells(&[
            "print(\"one\"); debug(\"two\"); 1",
            "print(3);",
            "print(\"before\"); 1 / 0",
        ]);
        let stdout: Vec<&str> = results
            .iter()
            .map(|result| result.stdout.as_str())
            .collect();
        assert_eq!(stdout, ["one\n\"two\"\n", "3\n", "before\n"]);
        assert!(
            results[2].error.is_some(),
            "a failed cell keeps what it printed"
        );
    }

    #[test]
    fn runtime_errors_point_at_the_notebook_line_and_column() {
        let error = last_error(&["let a = 1;", "let b = 2;\nlet c = b / 0;"]);
        assert_eq!(error.kind, ErrorKind::Runtime);
        assert_eq!((error.line, error.column), (Some(5), Some(11)));
        assert_eq!(error.missing_name, None);
    }

    #[test]
    fn errors_inside_a_fn_point_at_the_cell_defining_it() {
        let error = last_error(&["fn boom(x) {\n  x / 0\n}", "let y = 1;\nboom(y)"]);
        assert_eq!(error.kind, ErrorKind::Runtime);
        assert_eq!(error.line, Some(3), "line 2 of c0, which starts at line 2");
        assert!(
            error.message.ends_with("(in fn `boom`)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn undefined_variables_set_missing_name() {
        let error = last_error(&["let a = 1;", "a + nope"]);
        assert_eq!(error.kind, ErrorKind::Runtime);
        assert_eq!(error.missing_name.as_deref(), Some("nope"));
        assert_eq!(error.line, Some(4));
        let error = last_error(&["fn f() { ghost }", "f()"]);
        assert_eq!(error.missing_name.as_deref(), Some("ghost"));
    }

    #[test]
    fn self_reference_does_not_read_a_previous_value() {
        let (results, _) = run_cells(&["let x = x + 1;"]);
        assert_eq!(error_of(&results[0]).missing_name.as_deref(), Some("x"));
        // Not even the value a previous run left in the globals.
        let mut globals = Globals::new();
        globals.set("x", Dynamic::from(1_i64));
        let results = run_in(&mut globals, &["let x = x + 1;"]);
        assert_eq!(error_of(&results[0]).missing_name.as_deref(), Some("x"));
    }

    /// Runs `code` with a token stopped for `reason`, before the run or
    /// from another thread while it runs; returns the result and globals.
    fn run_stopped(code: &str, reason: StopReason, while_running: bool) -> (RunResult, Globals) {
        let token = CancelToken::new();
        let stopper = if while_running {
            let token = token.clone();
            Some(thread::spawn(move || {
                thread::sleep(Duration::from_millis(20));
                token.stop(reason);
            }))
        } else {
            token.stop(reason);
            None
        };
        let mut globals = Globals::new();
        let result = run_one(&mut globals, code, &token);
        if let Some(stopper) = stopper {
            stopper.join().expect("the stopping thread does not panic");
        }
        (result, globals)
    }

    /// The kind of the error of `code` run as in [`run_stopped`].
    fn stopped_kind(code: &str, reason: StopReason, while_running: bool) -> ErrorKind {
        error_of(&run_stopped(code, reason, while_running).0).kind
    }

    #[test]
    fn a_stopped_token_ends_even_an_endless_loop() {
        assert_eq!(
            stopped_kind("loop {}", StopReason::Interrupted, false),
            ErrorKind::Interrupted
        );
        assert_eq!(
            stopped_kind("loop {}", StopReason::TimedOut, false),
            ErrorKind::Timeout
        );
    }

    #[test]
    fn a_token_stopped_from_another_thread_ends_a_running_loop() {
        assert_eq!(
            stopped_kind("loop {}", StopReason::Interrupted, true),
            ErrorKind::Interrupted
        );
        assert_eq!(
            stopped_kind("loop {}", StopReason::TimedOut, true),
            ErrorKind::Timeout
        );
        let in_fn = "fn spin() { loop {} } spin()";
        assert_eq!(
            stopped_kind(in_fn, StopReason::Interrupted, true),
            ErrorKind::Interrupted
        );
    }

    #[test]
    fn definitions_made_before_an_interruption_stay() {
        // The cell signals through a shared global that `a` is defined; the
        // other thread waits for that before stopping it.
        let mut globals = Globals::new();
        globals.set("started", Dynamic::from_array(rhai::Array::new()));
        let started = globals.get("started").expect("just set").clone();
        let token = CancelToken::new();
        let stopper = {
            let token = token.clone();
            thread::spawn(move || {
                while started
                    .read_lock::<rhai::Array>()
                    .is_none_or(|flag| flag.is_empty())
                {
                    thread::yield_now();
                }
                token.stop(StopReason::Interrupted);
            })
        };
        let result = run_one(
            &mut globals,
            "let a = 1; started.push(true); loop {}",
            &token,
        );
        stopper.join().expect("the stopping thread does not panic");
        assert_eq!(error_of(&result).kind, ErrorKind::Interrupted);
        assert_eq!(globals.get("a").map(Dynamic::as_int), Some(Ok(1)));
    }

    // See: issue 12, point 15.
    #[test]
    fn issue_12_assigning_a_global_inside_a_function_says_so() {
        let error = last_error(&["let level = 1;", "fn bump() { level += 1; }", "bump()"]);
        assert!(
            error
                .message
                .starts_with("a function cannot assign to the notebook global `level`"),
            "{}",
            error.message
        );
    }

    #[test]
    fn unbounded_recursion_is_a_runtime_error() {
        let result = on_cell_thread(|| run_cells(&["fn f(n) { f(n + 1) }", "f(0)"]).0.remove(1));
        let error = error_of(&result);
        assert_eq!(error.kind, ErrorKind::Runtime);
        assert!(
            error
                .message
                .contains("nested function calls (the call depth limit)"),
            "{}",
            error.message
        );
    }

    #[test]
    fn explicit_size_limits_turn_growth_into_a_runtime_error() {
        // The default limits leave sizes unbounded (the runner bounds memory
        // instead); limits set explicitly are enforced.
        let limits = Limits {
            string_size: 1 << 20,
            array_size: 1 << 16,
            ..Limits::default()
        };
        let executor = DefaultExecutor::new(&limits);
        for code in [
            "let s = \"x\"; loop { s += s; }",
            "let xs = [1]; loop { xs += xs; }",
        ] {
            let notebook = Notebook::compile(
                vec![CellSource {
                    name: "c0".into(),
                    code: code.into(),
                    first_line: 1,
                    options: Vec::new(),
                }],
                &limits,
            );
            let result = executor.execute(
                &notebook.cells()[0],
                &mut Globals::new(),
                &CancelToken::new(),
            );
            let error = error_of(&result);
            assert_eq!(error.kind, ErrorKind::Runtime);
            assert!(error.message.contains("too large"), "{}", error.message);
        }
    }

    #[test]
    fn default_limits_do_not_make_building_an_array_quadratic() {
        // With any size limit set, Rhai walks the array after every push.
        assert_eq!(Limits::default().array_size, 0);
        assert_eq!(Limits::default().string_size, 0);
        assert_eq!(Limits::default().map_size, 0);
        check(
            &["let xs = []; for i in 0..200000 { xs.push(i); } xs.len()"],
            &["200000"],
        );
    }

    #[test]
    fn long_legitimate_computations_do_not_trip_limits() {
        check(
            &["let sum = 0; for i in 0..1000000 { sum += i; } sum"],
            &["499999500000"],
        );
    }

    #[test]
    fn eval_is_a_syntax_error() {
        let notebook = one_cell("eval(\"1\")");
        let cell = &notebook.cells()[0];
        let error = cell.syntax_error().expect("eval does not parse");
        assert_eq!(error.kind, ErrorKind::Syntax);
        assert_eq!(error.line, Some(2));
        let result = DefaultExecutor::new(&Limits::default()).execute(
            cell,
            &mut Globals::new(),
            &CancelToken::new(),
        );
        assert_eq!(
            result.error.as_ref(),
            Some(error),
            "running it reports the syntax error"
        );
    }

    #[test]
    fn rebinding_a_global_is_a_definition_the_graph_rejects() {
        // Rebinding another cell's name (`n = 5`) counts as defining it, so
        // the dataflow graph reports both cells as defining `n` and neither
        // runs; only in-place mutation of a read value reaches other cells.
        let notebook =
            crate::testutil::cells(&["let xs = [1]; let n = 1;", "xs = [9]; n += 5; xs.push(2);"]);
        assert_eq!(notebook.cells()[1].graph_defs(), ["xs", "n"]);
        assert!(
            notebook.cells()[1].defs().is_empty(),
            "rebinding is not a `let`"
        );
    }

    #[test]
    fn reading_a_global_container_does_not_copy_it() {
        let globals = check(
            &["let xs = [1, 2, 3];", "xs.push(4); xs.len()", "xs.len()"],
            &["()", "4", "4"],
        );
        let xs = globals.get("xs").expect("xs is defined");
        assert!(xs.is_shared());
        assert_eq!(xs.clone().into_array().map(|xs| xs.len()), Ok(4));
    }
}
