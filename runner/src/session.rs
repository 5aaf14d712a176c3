//! What the runs of one process share: plugins, the executor, the output.
//!
//! `cellrun run` makes one run of a [`Session`]; `cellrun watch` makes one
//! per save, each against the notebook as it was then.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::bail;
use executor_core::wire::ForeignDecoder;
use executor_core::{
    DefaultExecutor, Evaluator, Executor, ExecutorRegistry, ForeignValue, Lifecycle, Limits,
    Notebook, Selection, PYTHON, RHAI,
};
use lifecycles::{CachedLifecycle, StrictLifecycle};
use scheduler::{MemoryLimit, Plan, RunControl};

use crate::cli::RunArgs;
use crate::commands::Loaded;
use crate::output::{self, RunClock, RunHeader, Sink, Warning};
use crate::plugins::{self, PluginConfig};

/// The executor of a run of a notebook in `language`: the one `named`
/// (`--executor`), with no fallback; or the first alphabetically among the
/// plugins running the language, falling back (loudly) to the built-in
/// executor when it cannot be constructed.
///
/// # Errors
/// When the named executor cannot be loaded or constructed, or no executor
/// runs the language; the run then stops before any cell.
fn select_executor(
    registry: ExecutorRegistry,
    named: Option<&str>,
    language: &str,
    default: &Arc<DefaultExecutor>,
) -> anyhow::Result<Selection> {
    let filter = crate::commands::executor_filter();
    match named {
        Some(DefaultExecutor::NAME) if language == RHAI => Ok(Selection {
            executor: default.clone(),
            selected: None,
            warnings: Vec::new(),
            fallback: None,
        }),
        Some(name) => registry
            .select_named(name, &filter)
            .map_err(|reason| anyhow::anyhow!("{reason}; no cell was run")),
        None if language != RHAI && registry.candidate(&filter).is_none() => bail!(
            "no executor runs {language} notebooks; {}",
            crate::python::missing_executor_hint(language)
        ),
        None => {
            let selection = registry.select(&filter, || default.clone());
            if language != RHAI {
                if let Some((name, reason)) = &selection.fallback {
                    bail!(
                        "executor `{name}` could not be constructed ({reason}), and the built-in executor does not run {language} cells; no cell was run"
                    );
                }
            }
            Ok(selection)
        }
    }
}

/// The parts of a run that do not depend on the notebook's text: the
/// plugins loaded, the executor selected, the plugin lifecycles
/// constructed (once, so a lifecycle that writes its output when dropped
/// writes it once), the output sink and the limits.
pub(crate) struct Session {
    pub(crate) sink: Sink,
    /// Where NDJSON events go: standard output under `--json`, kept in
    /// memory too for `--report`; none for human output alone.
    events: Option<Sink>,
    /// When the current run started, for the events' `at_ms`.
    clock: RunClock,
    pub(crate) limits: Limits,
    json: bool,
    strict: bool,
    cache_dir: Option<PathBuf>,
    timeout: Option<Duration>,
    max_memory_mib: Option<u64>,
    /// What the memory limit counts (see [`memory_probe`]).
    memory_probe: fn() -> usize,
    /// Whether the allocator's per-cell counts say which cell grew the heap.
    count_per_cell: bool,
    executor: Arc<dyn Executor>,
    /// How many cells may run at once.
    jobs: usize,
    plugin_lifecycles: Vec<Arc<dyn Lifecycle>>,
    warnings: Vec<String>,
    /// The executor that could not be constructed, and why, when the
    /// built-in one runs instead.
    fallback: Option<(String, String)>,
}

impl Session {
    /// Discovers and loads plugins and selects the executor for `args` and
    /// a notebook in `language`. Problems become warnings, printed by
    /// [`Session::print_warnings`].
    ///
    /// # Errors
    /// When the executor `--executor` names cannot be loaded or
    /// constructed, or no executor runs `language`: no cell may run then.
    pub(crate) fn new(args: &RunArgs, limits: Limits, language: &str) -> anyhow::Result<Session> {
        let sink = Sink::new();
        let events = match (&args.report, args.json) {
            (Some(_), json) => Some(sink.recording(json)),
            (None, true) => Some(sink.clone()),
            (None, false) => None,
        };
        if let Some(events) = &events {
            crate::logging::forward_warnings_to(events);
        }
        let clock = RunClock::new();
        let mut plugin_config = PluginConfig::new(
            &args.plugins.plugin_dirs,
            args.plugins.allow_untrusted_plugins,
            args.plugin_opts.clone(),
        );
        let mut inventory = plugins::discover(&plugin_config);
        if language != RHAI {
            // The plugin cellrun ships for the language, beside the
            // executable, when no plugin directory has one; when it is
            // missing too, selecting the executor says what to build.
            let _ = plugins::add_bundled(&mut inventory, &plugin_config, language);
        }
        let mut warnings = inventory.warnings.clone();
        warnings.extend(plugins::unknown_option_warnings(&plugin_config, &inventory));
        if inventory.plugins.contains_key(PYTHON) {
            plugin_config.options = with_python_memory_limit(
                std::mem::take(&mut plugin_config.options),
                args.max_memory,
            );
            if let Some(python) = &args.python {
                plugin_config.options.push((
                    PYTHON.to_owned(),
                    "python".to_owned(),
                    python.display().to_string(),
                ));
            }
        }
        let default = Arc::new(DefaultExecutor::new(&limits));
        let mut registry = ExecutorRegistry::new();
        plugins::register_executors(
            &mut registry,
            &inventory,
            &plugin_config,
            &default,
            language,
        );
        let selection = select_executor(registry, args.executor.as_deref(), language, &default)?;
        warnings.extend(selection.warnings.iter().cloned());
        let fallback = selection.fallback.clone();
        let plugin_lifecycles = plugins::lifecycles(
            &inventory,
            &plugin_config,
            &plugins::lifecycle_filter(),
            &mut warnings,
        );
        // `cell_started` means the body starts: a cell a lifecycle skips (a
        // cache hit, a strict error) never gets one.
        let executor = output::announce_body_start(selection.executor, events.as_ref(), &clock);
        let jobs = crate::commands::run_jobs(args.jobs, executor.as_ref(), &mut warnings);
        Ok(Session {
            sink,
            events,
            clock,
            limits,
            json: args.json,
            strict: args.strict,
            cache_dir: args.cache.as_ref().map(|dir| {
                dir.clone()
                    .unwrap_or_else(|| crate::commands::default_cache_dir(Some(&args.notebook)))
            }),
            timeout: args.timeout.map(Duration::from_secs_f64),
            max_memory_mib: args.max_memory,
            memory_probe: memory_probe(language),
            count_per_cell: language == RHAI,
            executor,
            jobs,
            plugin_lifecycles,
            warnings,
            fallback,
        })
    }

    /// Fails when the selected executor does not run the language of
    /// `loaded`'s cells, saying what would.
    pub(crate) fn check_language(&self, loaded: &Loaded) -> anyhow::Result<()> {
        let language = loaded.notebook.language();
        let languages = self.executor.languages();
        if !languages.iter().any(|known| known == language) {
            bail!(
                "{} is a {language} notebook, and executor `{}` runs only {}; {}",
                loaded.path,
                self.executor.name(),
                languages.join(", "),
                crate::python::missing_executor_hint(language)
            );
        }
        Ok(())
    }

    /// Whether the output is NDJSON events.
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// The sink of NDJSON events, when the run prints or records them.
    pub(crate) fn events(&self) -> Option<&Sink> {
        self.events.as_ref()
    }

    /// Prints a warning: a `warning` event under `--json` (or for the
    /// report), and a line on stderr unless under `--json`.
    pub(crate) fn warn(&self, message: &str) {
        tracing::debug!(message, "warning");
        if let Some(events) = &self.events {
            events.event(&Warning { message });
        }
        if !self.json {
            eprintln!("cellrun: warning: {}", output::terminal_safe(message));
        }
    }

    /// The warnings collected while loading plugins.
    pub(crate) fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Prints the warnings collected while loading plugins.
    pub(crate) fn print_warnings(&self) {
        for warning in &self.warnings {
            self.warn(warning);
        }
    }

    /// The executor inside the lifecycles for `notebook`: strict first, then
    /// the cache, then the plugins' lifecycles. Each lifecycle is wrapped by
    /// `wrap`, the executor by `executor` (the identity for `run`).
    ///
    /// A cache that cannot be used leaves the cache out, with a warning
    /// among those returned, as a bad entry makes its cell run live.
    pub(crate) fn evaluator(
        &self,
        notebook: &Notebook,
        wrap: impl Fn(Arc<dyn Lifecycle>) -> Arc<dyn Lifecycle>,
        executor: impl FnOnce(Arc<dyn Executor>) -> Arc<dyn Executor>,
    ) -> (Evaluator, Vec<String>) {
        let mut warnings = Vec::new();
        let mut lifecycles: Vec<Arc<dyn Lifecycle>> = Vec::new();
        if self.strict {
            lifecycles.push(Arc::new(StrictLifecycle::new(notebook)));
        }
        if let Some(dir) = &self.cache_dir {
            match crate::commands::prepare_cache_dir(dir) {
                Err(reason) => warnings.push(format!("{reason}; running without the cache")),
                Ok(()) => match CachedLifecycle::new(dir.clone(), notebook) {
                    Ok(cache) => lifecycles.push(Arc::new(
                        cache.with_foreign_decoder(foreign_decoder(self.executor.clone())),
                    )),
                    Err(error) => warnings.push(format!(
                        "cannot use the cache directory ({:#}); running without the cache",
                        anyhow::Error::from(error)
                    )),
                },
            }
        }
        lifecycles.extend(self.plugin_lifecycles.iter().cloned());
        let lifecycles = lifecycles.into_iter().map(wrap).collect();
        (
            Evaluator::new(executor(self.executor.clone()), lifecycles),
            warnings,
        )
    }

    /// The facts the printers need about a run of `plan` over `loaded`;
    /// the run's clock starts now.
    pub(crate) fn header(&self, loaded: &Loaded, evaluator: &Evaluator, plan: &Plan) -> RunHeader {
        self.clock.restart();
        RunHeader {
            notebook: loaded.path.clone(),
            executor: evaluator.executor().name().to_owned(),
            jobs: self.jobs,
            lifecycles: evaluator
                .lifecycles()
                .iter()
                .map(|lifecycle| lifecycle.name().to_owned())
                .collect(),
            cells: plan
                .order()
                .iter()
                .map(|id| loaded.notebook.cell(*id).name().to_owned())
                .collect(),
            names: Arc::new(
                loaded
                    .notebook
                    .cells()
                    .iter()
                    .map(|cell| cell.name().to_owned())
                    .collect(),
            ),
            text: Arc::from(loaded.text.as_str()),
            fallback: self.fallback.clone(),
            clock: self.clock.clone(),
            started_at: crate::report::iso_date(SystemTime::now()),
            language: loaded.notebook.language(),
            sources: output::cell_sources(&loaded.notebook, &loaded.graph),
        }
    }

    /// How many cells may run at once (`--jobs`, 1 for an executor that
    /// runs one at a time).
    pub(crate) fn jobs(&self) -> usize {
        self.jobs
    }

    /// The per-cell time limit.
    pub(crate) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// A fresh control for one run, with the time and memory limits.
    pub(crate) fn control(&self) -> RunControl {
        let memory = MemoryLimit {
            probe: self.memory_probe,
            ..memory_limit(self.max_memory_mib)
        };
        let control = RunControl::with_limits(self.timeout, Some(memory));
        // The allocator counts per running cell only what cellrun itself
        // allocates: the heap of a Rhai notebook, not an embedded runtime's.
        if self.count_per_cell {
            control.with_cell_memory(crate::memory::CELL_MEMORY)
        } else {
            control
        }
    }
}

/// What the memory limit counts for a notebook in `language`: the heap of
/// cellrun's own allocator for Rhai, whose values it allocates; for other
/// languages, whose plugins allocate with allocators of their own (an
/// embedded Python), every anonymous page the process holds.
fn memory_probe(language: &str) -> fn() -> usize {
    if language == RHAI {
        crate::memory::held
    } else {
        crate::memory::held_by_process
    }
}

/// Makes plugin-owned values (from cache entries, from a worker's request)
/// through `executor`, which asks the plugin owning them.
pub(crate) fn foreign_decoder(executor: Arc<dyn Executor>) -> ForeignDecoder {
    Box::new(
        move |owner, type_name, data| match executor.decode_foreign(owner, type_name, &data) {
            Some(decoded) => decoded.map(ForeignValue::into_dynamic),
            None => Err(format!(
                "the run's executor `{}` does not own values of plugin `{owner}`",
                executor.name()
            )),
        },
    )
}

/// `options` with the run's memory limit for the python plugin
/// (`python.max_memory`, in MiB), unless they give it: the plugin refuses a
/// single Python allocation above it.
pub(crate) fn with_python_memory_limit(
    mut options: Vec<(String, String, String)>,
    max_memory_mib: Option<u64>,
) -> Vec<(String, String, String)> {
    let given = options
        .iter()
        .any(|(plugin, key, _)| plugin == "python" && key == "max_memory");
    if !given {
        let mib = max_memory_mib.unwrap_or_else(crate::memory::default_limit_mib);
        options.push((
            "python".to_owned(),
            "max_memory".to_owned(),
            mib.to_string(),
        ));
    }
    options
}

/// The memory limit of `--max-memory MIB` (default: a quarter of the
/// machine's memory).
fn memory_limit(max_memory_mib: Option<u64>) -> MemoryLimit {
    MemoryLimit {
        bytes: crate::memory::limit_bytes(max_memory_mib),
        probe: crate::memory::held,
    }
}

/// The engine limits of a run with `args`: one built-in call may not
/// allocate past the memory limit either.
pub(crate) fn limits(args: &RunArgs) -> Limits {
    Limits {
        max_alloc_bytes: memory_limit(args.max_memory).bytes,
        ..Limits::default()
    }
}

/// The notebook's directory, or the current one.
pub(crate) fn notebook_dir(notebook: &Path) -> &Path {
    notebook
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
