//! The embedded CPython: chosen, started once per process, never finalised.
//!
//! The interpreter is the one the user would get by typing `python`: the
//! active virtual environment's (`VIRTUAL_ENV`), else the first `python3` on
//! `PATH`, unless a path is given. It is started with that program's path as
//! its program name, so CPython finds the environment's `pyvenv.cfg` and
//! `site-packages` by itself. Python's own signal handlers stay off: Ctrl-C
//! belongs to the runner, which stops a cell through [`Interrupter`].

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyModule, PyTuple};
use pyo3::{ffi, intern};

/// The `major.minor` version of the libpython this plugin was built against.
pub const LINKED_VERSION: &str = env!("CELLRUN_PYTHON_VERSION");

/// The Python helper that compiles and runs a cell.
const CELL_RUNNER: &CStr =
    match CStr::from_bytes_with_nul(concat!(include_str!("cell_runner.py"), "\0").as_bytes()) {
        Ok(code) => code,
        Err(_) => panic!("cell_runner.py contains a NUL byte"),
    };

/// [`CELL_RUNNER`] compiled by the interpreter the plugin was built with
/// (a `marshal` dump of its code object), or nothing when the build had no
/// interpreter to run.
pub(crate) const CELL_RUNNER_COMPILED: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/cell_runner.marshal"));

/// Loads the cell runner as module `_cellrun`: from its code compiled at
/// build time when that loads, else from its source.
fn load_cell_runner(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    if !CELL_RUNNER_COMPILED.is_empty() {
        let code = PyModule::import(py, "marshal")
            .and_then(|marshal| marshal.getattr("loads"))
            .and_then(|loads| loads.call1((pyo3::types::PyBytes::new(py, CELL_RUNNER_COMPILED),)));
        if let Ok(code) = code {
            // SAFETY: the GIL is held; `code` is a code object (marshal
            // read it back), and the call returns a new reference or null
            // with an exception set.
            let module = unsafe {
                Bound::from_owned_ptr_or_err(
                    py,
                    ffi::PyImport_ExecCodeModuleEx(
                        c"_cellrun".as_ptr(),
                        code.as_ptr(),
                        c"<cellrun>".as_ptr(),
                    ),
                )
            };
            if let Ok(module) =
                module.and_then(|module| module.cast_into::<PyModule>().map_err(Into::into))
            {
                return Ok(module);
            }
        }
    }
    PyModule::from_code(py, CELL_RUNNER, c"<cellrun>", c"_cellrun")
}

/// The started interpreter: the helper module and the notebook's globals.
pub struct Interpreter {
    python: PathBuf,
    helper: Py<PyModule>,
    /// The cell runner's `_Capture`, the stream a cell's prints go to.
    capture: Py<PyAny>,
    /// The interpreter's minor version: the grammar a compile accepts.
    minor: i32,
    /// `sys.__dict__`, where a cell's prints are redirected.
    sys: Py<PyDict>,
    /// The keyword names of the `code.replace` calls that shift code.
    shift_names: Py<PyTuple>,
    shift_nested_names: Py<PyTuple>,
    globals: Py<PyDict>,
    /// The Python thread ids of the threads running a cell; locked while a
    /// cell starts or ends, so an interrupt never hits the gap.
    running: Mutex<Vec<u64>>,
}

static INTERPRETER: OnceLock<Result<Interpreter, String>> = OnceLock::new();

/// The interpreter a user would get: `explicit`, else the active virtual
/// environment's, else the first `python3` on `PATH`.
///
/// # Errors
/// A sentence saying what was looked for, when nothing is found.
pub fn choose_python(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("--python {}: no such file", path.display()))
        };
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|venv| !venv.is_empty()) {
        let python = Path::new(&venv).join("bin").join("python");
        if python.is_file() {
            return Ok(python);
        }
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("python3"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            "no Python found: activate a virtual environment, put python3 on PATH or pass --python PATH"
                .to_owned()
        })
}

/// What [`probe`] tells of a Python program: its `major.minor` version
/// and real executable, or why it could not be asked.
type Probe = Result<(String, PathBuf), String>;

/// `python`'s `major.minor` version and its real executable, asked once
/// per process (see [`probe`]): the interpreter's start and the helper
/// that compiles ahead both need them, on two threads at once.
pub(crate) fn probed(python: &Path) -> Probe {
    static PROBED: Mutex<Vec<(PathBuf, Probe)>> = Mutex::new(Vec::new());
    // Held while probing, so the second thread waits for the first's answer.
    let mut known = PROBED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, answer)) = known.iter().find(|(path, _)| path == python) {
        return answer.clone();
    }
    let answer = probe(python);
    known.push((python.to_path_buf(), answer.clone()));
    answer
}

/// Asks `python` for its `major.minor` version and its real executable
/// (a launcher such as pyenv's shim resolves to the interpreter it runs; a
/// virtual environment's `python` stays itself).
fn probe(python: &Path) -> Probe {
    if let Some(version) = venv_version(python) {
        return Ok((version, python.to_path_buf()));
    }
    let output = Command::new(python)
        .args([
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)",
        ])
        .output()
        .map_err(|error| format!("cannot run {}: {error}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let version = lines.next().unwrap_or_default().trim().to_owned();
    let executable = lines
        .next()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map_or_else(|| python.to_path_buf(), PathBuf::from);
    Ok((version, executable))
}

/// The `major.minor` version a virtual environment's `pyvenv.cfg` states,
/// when `python` is `<venv>/bin/python`: no process to start.
pub(crate) fn venv_version(python: &Path) -> Option<String> {
    let venv = python.parent()?.parent()?;
    let config = std::fs::read_to_string(venv.join("pyvenv.cfg")).ok()?;
    config.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim() != "version" && key.trim() != "version_info" {
            return None;
        }
        let mut parts = value.trim().split('.');
        Some(format!("{}.{}", parts.next()?, parts.next()?))
    })
}

/// Makes libpython's symbols global, so C extension modules (`math`,
/// `_json`, numpy) that expect them resolve; the plugin itself was opened
/// with `RTLD_LOCAL`.
fn promote_libpython() {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let symbol = ffi::Py_IsInitialized as *const libc::c_void;
    // SAFETY: `dladdr` only reads the address and fills `info`.
    if unsafe { libc::dladdr(symbol, &mut info) } == 0 || info.dli_fname.is_null() {
        return;
    }
    // SAFETY: the name comes from the loader; RTLD_NOLOAD only re-opens a
    // library already loaded, here to change its visibility.
    unsafe {
        libc::dlopen(
            info.dli_fname,
            libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD,
        );
    }
}

impl Interpreter {
    /// The process's interpreter, started on first use from `python`.
    ///
    /// Later calls return the same interpreter whatever `python` says: an
    /// interpreter cannot be restarted.
    ///
    /// # Errors
    /// When `python` is a different version from the libpython this plugin
    /// was built against, or CPython does not start.
    pub fn get(python: &Path) -> Result<&'static Interpreter, String> {
        INTERPRETER
            .get_or_init(|| Interpreter::start(python))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Pre-initialises CPython on the calling thread: the locale, and its
    /// coercion, which may set environment variables. The rest of the
    /// start may then run on another thread without racing this process's
    /// reads of the environment (`setenv` and `getenv` are not safe at
    /// once). Does nothing once CPython is (pre-)initialised.
    pub fn preinitialize() {
        // SAFETY: a zeroed PyPreConfig is what PyPreConfig_InitPythonConfig
        // expects to fill; pre-initialising an initialised runtime is a no-op.
        unsafe {
            if ffi::Py_IsInitialized() == 0 {
                let mut preconfig: ffi::PyPreConfig = std::mem::zeroed();
                ffi::PyPreConfig_InitPythonConfig(&mut preconfig);
                // As the configuration `start` gives: no command line to parse.
                preconfig.parse_argv = 0;
                let _ = ffi::Py_PreInitialize(&preconfig);
            }
        }
    }

    fn start(python: &Path) -> Result<Interpreter, String> {
        let (version, executable) = probed(python)?;
        if version != LINKED_VERSION {
            return Err(format!(
                "{} is Python {version}, but the python plugin was built for Python {LINKED_VERSION}; \
                 rebuild it with that interpreter (PYO3_PYTHON={} cargo xtask build-plugins) or pass --python",
                python.display(),
                python.display()
            ));
        }
        promote_libpython();
        // SAFETY: a zeroed PyConfig is what PyConfig_InitPythonConfig expects
        // to fill; every call below follows CPython's initialisation protocol
        // and runs once per process (guarded by the OnceLock).
        unsafe {
            if ffi::Py_IsInitialized() == 0 {
                let mut config: ffi::PyConfig = std::mem::zeroed();
                ffi::PyConfig_InitPythonConfig(&mut config);
                config.install_signal_handlers = 0;
                config.parse_argv = 0;
                let program = CString::new(executable.as_os_str().as_encoded_bytes())
                    .map_err(|_| "the Python path contains a NUL byte".to_owned())?;
                let status = ffi::PyConfig_SetBytesString(
                    &mut config,
                    &mut config.program_name,
                    program.as_ptr(),
                );
                if ffi::PyStatus_Exception(status) != 0 {
                    ffi::PyConfig_Clear(&mut config);
                    return Err(status_message(status));
                }
                let status = ffi::Py_InitializeFromConfig(&config);
                ffi::PyConfig_Clear(&mut config);
                if ffi::PyStatus_Exception(status) != 0 {
                    return Err(status_message(status));
                }
                // The memory limit refuses a single allocation above it.
                crate::memory::install();
                // Release the GIL this thread holds after initialising, so
                // any thread can attach (and interrupt) from now on.
                ffi::PyEval_SaveThread();
            }
        }
        Python::attach(|py| {
            let helper = load_cell_runner(py)
                .map_err(|error| format!("cannot load the cell runner: {error}"))?;
            // The cells run in `__main__`'s own dictionary, as a script
            // does, so classes defined in cells pickle by reference.
            let globals = PyModule::import(py, "__main__")
                .map(|main| main.dict())
                .map_err(|error| format!("cannot prepare the globals: {error}"))?;
            let capture = helper
                .getattr("_Capture")
                .map_err(|error| format!("cannot load the cell runner: {error}"))?;
            let sys = PyModule::import(py, "sys")
                .map(|sys| sys.dict())
                .map_err(|error| format!("cannot prepare the cell runner: {error}"))?;
            let names = |names: &[&str]| PyTuple::new(py, names).map(Bound::unbind);
            let (shift_names, shift_nested_names) = names(&["co_firstlineno"])
                .and_then(|one| Ok((one, names(&["co_firstlineno", "co_consts"])?)))
                .map_err(|error| format!("cannot prepare the cell runner: {error}"))?;
            Ok(Interpreter {
                python: python.to_path_buf(),
                capture: capture.unbind(),
                minor: i32::from(py.version_info().minor),
                sys: sys.unbind(),
                shift_names,
                shift_nested_names,
                helper: helper.unbind(),
                globals: globals.unbind(),
                running: Mutex::new(Vec::new()),
            })
        })
    }

    /// Gives the calling thread a Python thread state for as long as the
    /// thread lives, without holding the GIL.
    ///
    /// Without it every attach of a thread that has none creates a thread
    /// state and destroys it again on release, with its frame stack (an
    /// `mmap` and a `munmap`), several times per cell; a kept one makes an
    /// attach a lock.
    pub fn keep_thread_state(&self) {
        thread_local! {
            static KEPT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        KEPT.with(|kept| {
            if !kept.get() {
                // SAFETY: the interpreter is initialised (`self` exists).
                // Ensure makes this thread's state and takes the GIL; saving
                // the thread releases the GIL and keeps the state, which
                // later Ensure calls on this thread find and reuse.
                unsafe {
                    let _ = ffi::PyGILState_Ensure();
                    ffi::PyEval_SaveThread();
                }
                kept.set(true);
            }
        });
    }

    /// The interpreter's program path.
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The dictionary every cell runs in.
    pub fn globals<'py>(&self, py: Python<'py>) -> &Bound<'py, PyDict> {
        self.globals.bind(py)
    }

    /// The helper module (`to_json`, `display`, `rich_display`).
    pub fn helper<'py>(&self, py: Python<'py>) -> &Bound<'py, PyModule> {
        self.helper.bind(py)
    }

    /// Runs one cell's code in the shared globals.
    ///
    /// `filename` and `first_line` place the code in the notebook, for
    /// tracebacks. The thread is interruptible through [`Interrupter`]
    /// while the code runs.
    ///
    /// The code is cut before its output expression here, with Rust's
    /// parser, so Python compiles the source as it is instead of building a
    /// syntax tree of Python objects and compiling that. Compiling, running
    /// and capturing are done here through CPython's C API, as the cell
    /// runner's `run_cell` does them: its Python frames cost more than a
    /// one-line cell's own code. Code that does not parse, or holds a NUL
    /// byte, goes to `run_cell` whole, to fail with Python's own error.
    ///
    /// `compiled`, the code compiled ahead as `marshal` data, replaces
    /// the compile (and the cut) when it loads.
    pub fn run(
        &self,
        source: &str,
        filename: &str,
        first_line: u32,
        compiled: Option<&[u8]>,
    ) -> CellRun {
        Python::attach(|py| {
            // Loaded here, not by a call into the cell runner; data that
            // does not load leaves the cell to compile its source.
            let compiled = compiled
                .and_then(|data| pyo3::marshal::loads(py, data).ok())
                .and_then(|loaded| {
                    let (body, output) = loaded
                        .extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>()
                        .ok()?;
                    Some(Code::Compiled {
                        body,
                        output: (!output.is_none()).then_some(output),
                    })
                });
            let code = compiled.or_else(|| {
                let split = python_notebook::split_output(source)?;
                let holds_nul = |part: &str| part.contains('\0');
                if holds_nul(split.body) || split.output.is_some_and(holds_nul) {
                    return None;
                }
                Some(Code::Source(split))
            });
            // SAFETY: reads the current thread's id; the GIL is held.
            let ident = unsafe { ffi::PyThread_get_thread_ident() } as u64;
            self.running_cells().push(ident);
            let result = match code {
                Some(code) => self.run_here(py, code, filename, first_line),
                None => self.run_in_cell_runner(py, source, filename, first_line),
            };
            {
                let mut running = self.running_cells();
                running.retain(|running| *running != ident);
                // SAFETY: clears an interrupt that arrived after the code
                // finished, so it cannot fire in whatever runs next.
                unsafe {
                    ffi::PyThreadState_SetAsyncExc(ident as libc::c_long, std::ptr::null_mut());
                }
            }
            match result {
                Ok(run) => run,
                // An interrupt that landed in the helper itself, outside the
                // cell's code (as it starts or ends), is still an interrupt.
                Err(error) if error.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
                    CellRun::failed(FailureKind::Interrupted, "KeyboardInterrupt")
                }
                Err(error) => CellRun::failed(
                    FailureKind::Runtime,
                    format!("the cell runner failed: {error}"),
                ),
            }
        })
    }

    /// Runs code that parsed (or came compiled) with its prints captured:
    /// what the cell runner's `run_cell` does, without its frames.
    fn run_here<'py>(
        &self,
        py: Python<'py>,
        code: Code<'py, '_>,
        filename: &str,
        first_line: u32,
    ) -> PyResult<CellRun> {
        let capture = self.capture.bind(py).call0()?;
        let sys = self.sys.bind(py);
        let names = [intern!(py, "stdout"), intern!(py, "stderr")];
        let saved = names.map(|name| sys.get_item(name).ok().flatten());
        let ran = names
            .iter()
            .try_for_each(|name| sys.set_item(name, &capture))
            .and_then(|()| self.compile_and_run(py, code, filename, first_line));
        for (name, stream) in names.into_iter().zip(saved) {
            // As the cell runner's `finally`: what was there before, even
            // nothing.
            let _ = match stream {
                Some(stream) => sys.set_item(name, stream),
                None => sys.del_item(name),
            };
        }
        let (output, failure) = match ran {
            Ok(output) => (
                output.filter(|value| !value.is_none()).map(Bound::unbind),
                None,
            ),
            Err(error) => {
                let failure = self.helper_call(py, "_failure", (error.into_value(py), filename))?;
                (None, Some(Failure::from_dict(py, &failure)))
            }
        };
        let stdout = capture
            .call_method0(intern!(py, "getvalue"))?
            .extract::<String>()?;
        Ok(CellRun {
            output,
            stdout,
            failure,
        })
    }

    /// Compiles `code` (unless it came compiled) and runs it in the
    /// globals: the value of its output expression, or what it raised
    /// (a syntax error placed at its notebook line).
    fn compile_and_run<'py>(
        &self,
        py: Python<'py>,
        code: Code<'py, '_>,
        filename: &str,
        first_line: u32,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let (body, output) = match code {
            Code::Compiled { body, output } => (body, output),
            Code::Source(split) => {
                let filename = pyo3::types::PyString::new(py, filename);
                let delta = first_line - 1;
                let body = self.compile(py, split.body, &filename, ffi::Py_file_input, delta)?;
                let output = split
                    .output
                    .map(|output| {
                        let delta = delta + split.output_line as u32;
                        self.compile(py, output, &filename, ffi::Py_eval_input, delta)
                    })
                    .transpose()?;
                (body, output)
            }
        };
        let globals = self.globals(py);
        // What `exec` does before it runs code in a dictionary.
        if !globals.contains(intern!(py, "__builtins__"))? {
            // SAFETY: the GIL is held; returns a borrowed reference.
            let builtins = unsafe { Bound::from_borrowed_ptr(py, ffi::PyEval_GetBuiltins()) };
            globals.set_item(intern!(py, "__builtins__"), builtins)?;
        }
        self.evaluate(py, &body)?;
        output.map(|output| self.evaluate(py, &output)).transpose()
    }

    /// Runs a code object in the globals; a coroutine (top-level `await`)
    /// runs to its end on the cell runner's event loop.
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        code: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let flags = code.getattr(intern!(py, "co_flags"))?.extract::<i32>()?;
        if flags & ffi::CO_COROUTINE != 0 {
            return self.helper_call(py, "_evaluate", (code, self.globals(py)));
        }
        let globals = self.globals(py).as_ptr();
        // SAFETY: the GIL is held; `code` is a code object (compiled here or
        // loaded by marshal) and the call returns a new reference or null
        // with an exception set.
        unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyEval_EvalCode(code.as_ptr(), globals, globals))
        }
    }

    /// `source` compiled as `compile(source, filename, mode,
    /// flags=PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)` does, for code
    /// starting `delta` lines into the notebook: its lines (and those of a
    /// syntax error) are the notebook's.
    fn compile<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        filename: &Bound<'py, pyo3::types::PyString>,
        start: std::ffi::c_int,
        delta: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        // `run` gives code holding a NUL byte to the cell runner, whose
        // `compile` raises what this Python raises for it.
        let source = CString::new(source).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err("source code string cannot contain null bytes")
        })?;
        // `compile` of a `str`: UTF-8 text, any coding cookie ignored.
        let mut flags = ffi::PyCompilerFlags {
            cf_flags: PY_CF_SOURCE_IS_UTF8 | PY_CF_IGNORE_COOKIE | PY_CF_ALLOW_TOP_LEVEL_AWAIT,
            cf_feature_version: self.minor,
        };
        // SAFETY: the GIL is held; `source` is NUL-terminated and `filename`
        // a str; the call returns a new reference or null with an exception.
        let compiled = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::Py_CompileStringObject(
                    source.as_ptr(),
                    filename.as_ptr(),
                    start,
                    &mut flags,
                    -1,
                ),
            )
        };
        match compiled {
            Ok(code) => self.shifted(py, code, delta),
            Err(error) if error.is_instance_of::<pyo3::exceptions::PySyntaxError>(py) => {
                let error = error.into_value(py);
                self.helper_call(py, "_placed", (&error, delta))?;
                Err(PyErr::from_value(error.into_bound(py).into_any()))
            }
            Err(error) => Err(error),
        }
    }

    /// `code` with every line number `delta` lines further, nested code
    /// too, as the cell runner's `_shifted` makes it: shifting each code
    /// object's first line moves its whole line table.
    fn shifted<'py>(
        &self,
        py: Python<'py>,
        code: Bound<'py, PyAny>,
        delta: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        if delta == 0 {
            return Ok(code);
        }
        // SAFETY: reads the type of a live object; the GIL is held.
        let is_code = |value: &Bound<'_, PyAny>| unsafe { ffi::PyCode_Check(value.as_ptr()) != 0 };
        let consts = code
            .getattr(intern!(py, "co_consts"))?
            .cast_into::<PyTuple>()?;
        let consts = if consts.iter().any(|value| is_code(&value)) {
            let shifted = consts
                .iter()
                .map(|value| {
                    if is_code(&value) {
                        self.shifted(py, value, delta)
                    } else {
                        Ok(value)
                    }
                })
                .collect::<PyResult<Vec<_>>>()?;
            Some(PyTuple::new(py, shifted)?)
        } else {
            None
        };
        let first_line = code
            .getattr(intern!(py, "co_firstlineno"))?
            .extract::<u32>()?;
        let first_line = (first_line + delta).into_pyobject(py)?;
        let (names, args) = match &consts {
            Some(consts) => (
                &self.shift_nested_names,
                [code.as_ptr(), first_line.as_ptr(), consts.as_ptr()],
            ),
            None => (
                &self.shift_names,
                [code.as_ptr(), first_line.as_ptr(), std::ptr::null_mut()],
            ),
        };
        // `code.replace(co_firstlineno=..., co_consts=...)`: `self`, then
        // one value per keyword name.
        // SAFETY: the GIL is held; `args` holds live objects for `self`
        // and each name of `names`, and the call returns a new reference or
        // null with an exception set.
        unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyObject_VectorcallMethod(
                    intern!(py, "replace").as_ptr(),
                    args.as_ptr(),
                    1,
                    names.as_ptr(),
                ),
            )
        }
    }

    /// Runs code in the cell runner's `run_cell`, which compiles it whole.
    fn run_in_cell_runner(
        &self,
        py: Python<'_>,
        source: &str,
        filename: &str,
        first_line: u32,
    ) -> PyResult<CellRun> {
        let tuple = self.helper_call(
            py,
            "run_cell",
            (source, filename, first_line, self.globals(py)),
        )?;
        Ok(CellRun::from_tuple(py, &tuple))
    }

    /// Calls the helper's function `name` with `args`.
    fn helper_call<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.helper(py).getattr(name)?.call1(args)
    }

    /// Sets `__file__` for the cells, as a script run of the notebook has
    /// it, unless it is that already (a cell may have rebound it).
    pub fn set_file(&self, path: &str) {
        Python::attach(|py| {
            let globals = self.globals(py);
            let current = globals.get_item(intern!(py, "__file__")).ok().flatten();
            if !current.is_some_and(|current| {
                current
                    .extract::<&str>()
                    .is_ok_and(|current| current == path)
            }) {
                let _ = globals.set_item(intern!(py, "__file__"), path);
            }
        });
    }

    /// Binds `name` to `value` in the globals.
    pub fn set_global(&self, name: &str, value: &Py<PyAny>) {
        Python::attach(|py| {
            let _ = self.globals(py).set_item(name, value.bind(py));
        });
    }

    /// The value bound to `name` in the globals.
    pub fn global(&self, name: &str) -> Option<Py<PyAny>> {
        Python::attach(|py| {
            self.globals(py)
                .get_item(name)
                .ok()
                .flatten()
                .map(Bound::unbind)
        })
    }

    /// Unbinds `name` from the globals, when bound.
    pub fn remove_global(&self, name: &str) {
        Python::attach(|py| {
            let globals = self.globals(py);
            if globals.contains(name).unwrap_or(false) {
                let _ = globals.del_item(name);
            }
        });
    }

    /// Runs Python's cycle collector, so what a dropped cell made is freed.
    pub fn collect_garbage(&self) {
        Python::attach(|py| {
            let _ = py.import("gc").and_then(|gc| gc.call_method0("collect"));
        });
    }

    /// The value's type as `module.Qualname` (builtins unqualified).
    pub fn type_name(&self, value: &Py<PyAny>) -> String {
        Python::attach(|py| type_name_of(value.bind(py)))
    }

    /// What printing a value needs: its type, display form, JSON and rich forms.
    pub fn describe(&self, value: &Py<PyAny>) -> Description {
        Python::attach(|py| {
            let value = value.bind(py);
            let text = |name: &str| {
                self.helper_call(py, name, (value,))
                    .ok()
                    .and_then(|text| text.extract::<Option<String>>().ok())
                    .flatten()
            };
            let rich = self
                .helper_call(py, "rich_display", (value,))
                .ok()
                .and_then(|rich| rich.extract::<Option<(String, String)>>().ok())
                .flatten();
            Description {
                type_name: type_name_of(value),
                display: text("display").unwrap_or_default(),
                json: text("to_json"),
                rich,
            }
        })
    }

    /// An independent copy of `value` (modules, functions and classes are
    /// shared), or `None` when it cannot be copied.
    pub fn deep_copy(&self, value: &Py<PyAny>) -> Option<Py<PyAny>> {
        Python::attach(|py| {
            self.helper_call(py, "deep_copy", (value.bind(py),))
                .ok()
                .filter(|copy| !copy.is_none())
                .map(Bound::unbind)
        })
    }

    /// Bytes equal exactly when values are equal (a pickle), or `None`.
    pub fn fingerprint(&self, value: &Py<PyAny>) -> Option<Vec<u8>> {
        self.bytes_of("fingerprint", value)
    }

    /// A pickle that [`Interpreter::decode`] turns back into the value, or
    /// `None` when the value cannot be stored.
    pub fn encode(&self, value: &Py<PyAny>) -> Option<Vec<u8>> {
        self.bytes_of("encode", value)
    }

    /// A pickle for another process: like [`Interpreter::encode`], but a
    /// function or class the notebook defines travels by value (with
    /// cloudpickle, when the environment has it).
    pub fn encode_portable(&self, value: &Py<PyAny>) -> Option<Vec<u8>> {
        self.bytes_of("encode_portable", value)
    }

    fn bytes_of(&self, function: &str, value: &Py<PyAny>) -> Option<Vec<u8>> {
        Python::attach(|py| {
            self.helper_call(py, function, (value.bind(py),))
                .ok()
                .and_then(|bytes| bytes.extract::<Option<Vec<u8>>>().ok())
                .flatten()
        })
    }

    /// The Python value of JSON text (`json.loads`).
    ///
    /// # Errors
    /// The parse error, as text.
    pub fn from_json(&self, json: &str) -> Result<Py<PyAny>, String> {
        Python::attach(|py| {
            py.import("json")
                .and_then(|module| module.getattr("loads"))
                .and_then(|loads| loads.call1((json,)))
                .map(Bound::unbind)
                .map_err(|error| error.to_string())
        })
    }

    /// The value an [`Interpreter::encode`] encoding stands for.
    ///
    /// # Errors
    /// The unpickling error, as text.
    pub fn decode(&self, data: &[u8]) -> Result<Py<PyAny>, String> {
        Python::attach(|py| {
            self.helper_call(py, "decode", (pyo3::types::PyBytes::new(py, data),))
                .map(Bound::unbind)
                .map_err(|error| error.to_string())
        })
    }

    fn running_cells(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A handle that stops the running cell from another thread.
    pub fn interrupter(&'static self) -> Interrupter {
        Interrupter { interpreter: self }
    }
}

/// The type of `value` as `module.Qualname`, builtins unqualified.
///
/// The names of static types (builtins, C extensions' types), which live
/// as long as the process and cannot be renamed, are kept by address: most
/// values a cell defines are of such a type, and the name is asked of
/// each.
fn type_name_of(value: &Bound<'_, PyAny>) -> String {
    static STATIC_NAMES: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let kind = value.get_type();
    let address = kind.as_type_ptr();
    // SAFETY: `address` is the live type of a live object; the GIL is held.
    let is_static = unsafe { ffi::PyType_GetFlags(address) } & ffi::Py_TPFLAGS_HEAPTYPE == 0;
    if !is_static {
        return name_of_type(&kind);
    }
    let mut known = STATIC_NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, name)) = known.iter().find(|(known, _)| *known == address as usize) {
        return name.clone();
    }
    let name = name_of_type(&kind);
    known.push((address as usize, name.clone()));
    name
}

fn name_of_type(kind: &Bound<'_, pyo3::types::PyType>) -> String {
    let text = |attribute: &Bound<'_, pyo3::types::PyString>| attribute.to_string();
    let name = kind
        .qualname()
        .or_else(|_| kind.name())
        .map(|name| text(&name))
        .unwrap_or_else(|_| "object".to_owned());
    match kind.module().map(|module| text(&module)) {
        Ok(module) if !module.is_empty() && module != "builtins" => format!("{module}.{name}"),
        _ => name,
    }
}

fn status_message(status: ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        return "Python failed to start".to_owned();
    }
    // SAFETY: CPython sets err_msg to a static NUL-terminated string.
    let message = unsafe { CStr::from_ptr(status.err_msg) };
    format!("Python failed to start: {}", message.to_string_lossy())
}

/// How a value shows: what the host prints and stores as JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// `module.Qualname` of the value's type (`int`, `pandas.DataFrame`).
    pub type_name: String,
    /// `repr` of the value.
    pub display: String,
    /// JSON text, for None, bool, int, float, str, lists, tuples and dicts
    /// with str keys of those.
    pub json: Option<String>,
    /// MIME type and data from marimo's `_mime_` or a `_repr_*_` method.
    pub rich: Option<(String, String)>,
}

/// A cell's code as [`Interpreter::run`] runs it.
enum Code<'py, 'a> {
    /// Compiled ahead: the statements and the output expression.
    Compiled {
        body: Bound<'py, PyAny>,
        output: Option<Bound<'py, PyAny>>,
    },
    /// Source text, cut before its output expression.
    Source(python_notebook::OutputSplit<'a>),
}

/// `compile`'s flags (CPython's `PyCF_*`, which the FFI crate leaves out).
const PY_CF_SOURCE_IS_UTF8: std::ffi::c_int = 0x0100;
const PY_CF_IGNORE_COOKIE: std::ffi::c_int = 0x0800;
const PY_CF_ALLOW_TOP_LEVEL_AWAIT: std::ffi::c_int = 0x2000;

/// What running a cell's code gave.
pub struct CellRun {
    /// The value of the last expression, when the code ends with one not
    /// followed by `;` and it is not `None`.
    pub output: Option<Py<PyAny>>,
    /// What the code printed to stdout and stderr, in order.
    pub stdout: String,
    /// The exception the code raised, if it did.
    pub failure: Option<Failure>,
}

impl CellRun {
    /// A run that failed before or around the cell's code, with `message`.
    pub fn failed(kind: FailureKind, message: impl Into<String>) -> CellRun {
        CellRun {
            output: None,
            stdout: String::new(),
            failure: Some(Failure {
                kind,
                message: message.into(),
                line: None,
                traceback: String::new(),
                missing_name: None,
            }),
        }
    }

    fn from_tuple(py: Python<'_>, tuple: &Bound<'_, PyAny>) -> CellRun {
        let parts = tuple.cast::<PyTuple>().ok();
        let item = |index: usize| parts.and_then(|parts| parts.get_item(index).ok());
        let output = item(0).filter(|value| !value.is_none()).map(Bound::unbind);
        let stdout = item(1)
            .and_then(|value| value.extract::<String>().ok())
            .unwrap_or_default();
        let failure = item(2)
            .filter(|value| !value.is_none())
            .map(|value| Failure::from_dict(py, &value));
        CellRun {
            output,
            stdout,
            failure,
        }
    }
}

/// Whether a cell failed by its own exception or was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The code raised an exception.
    Runtime,
    /// `KeyboardInterrupt`: an interrupt or a timeout stopped the code.
    Interrupted,
}

/// An exception raised by a cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Runtime error or interruption.
    pub kind: FailureKind,
    /// The exception's last line: `ZeroDivisionError: division by zero`.
    pub message: String,
    /// The notebook line of the innermost notebook frame.
    pub line: Option<u32>,
    /// The traceback limited to notebook frames.
    pub traceback: String,
    /// The undefined name, for a `NameError`.
    pub missing_name: Option<String>,
}

impl Failure {
    fn from_dict(_py: Python<'_>, value: &Bound<'_, PyAny>) -> Failure {
        let field = |key: &str| value.get_item(key).ok();
        let text = |key: &str| {
            field(key)
                .and_then(|value| value.extract::<String>().ok())
                .unwrap_or_default()
        };
        Failure {
            kind: if text("kind") == "interrupted" {
                FailureKind::Interrupted
            } else {
                FailureKind::Runtime
            },
            message: text("message"),
            line: field("line").and_then(|value| value.extract::<u32>().ok()),
            traceback: text("traceback"),
            missing_name: field("missing_name").and_then(|value| value.extract::<String>().ok()),
        }
    }
}

/// Stops the cell running in the interpreter, from any thread.
#[derive(Clone, Copy)]
pub struct Interrupter {
    interpreter: &'static Interpreter,
}

impl Interrupter {
    /// Raises `KeyboardInterrupt` in the cell that thread `thread` runs
    /// (`pthread_self`), at its next bytecode; nothing when that thread
    /// runs no cell now.
    ///
    /// A blocking call in C (`time.sleep`, a socket read) returns first.
    pub fn interrupt_thread(&self, thread: u64) {
        Python::attach(|_py| {
            if self.interpreter.running_cells().contains(&thread) {
                // SAFETY: the GIL is held and `thread` names a live thread
                // that is inside `Interpreter::run`.
                unsafe {
                    ffi::PyThreadState_SetAsyncExc(
                        thread as libc::c_long,
                        ffi::PyExc_KeyboardInterrupt,
                    );
                }
            }
        });
    }
}
