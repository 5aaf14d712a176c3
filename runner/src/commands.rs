//! The subcommands: `run`, `check`, `graph`, `cache` and `plugins` (`watch`
//! lives in `watch.rs`).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use anyhow::{bail, Context};
use executor_core::{
    Cell, CellId, Concurrency, DefaultExecutor, Executor, ExecutorRegistry, Globals, Limits,
    NameFilter, Notebook, RunContext, CELL_THREAD_STACK, RHAI,
};
use lifecycles::{cache_clear, cache_info};
use scheduler::{
    DataflowGraph, Hooks, Pipeline, Plan, ReadyScheduler, RunControl, RunSummary,
    SequentialScheduler,
};
use serde_json::json;

use crate::cli::{CacheAction, Cli, Command, GraphFormat, PluginArgs, RunArgs};
use crate::output;
use crate::plugins::{self, PluginConfig};
use crate::session::Session;

/// Exit status when the run was interrupted.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

pub(crate) fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run(args),
        Command::Watch(args) => crate::watch::watch(args),
        Command::Check { notebook, json } => check(&notebook, json),
        Command::Report { events, output } => crate::report::from_file(&events, &output),
        Command::Graph { notebook, format } => graph(&notebook, format),
        Command::Cache { action } => cache(action),
        Command::Plugins { plugins, json } => list_plugins(&plugins, json),
        Command::Worker { max_memory, python } => crate::worker::run(max_memory, python),
    }
}

/// A notebook read, split, compiled and analysed.
pub(crate) struct Loaded {
    pub(crate) path: String,
    pub(crate) text: String,
    pub(crate) notebook: Notebook,
    pub(crate) graph: DataflowGraph,
}

/// The cell language of the notebook at `path`, from its name: `python`
/// for a marimo `.py` file, else `rhai`.
pub(crate) fn language_of(path: &Path) -> &'static str {
    if crate::python::is_python_notebook(path) {
        executor_core::PYTHON
    } else {
        executor_core::RHAI
    }
}

/// Reads, splits and compiles the notebook at `path`.
pub(crate) fn load(path: &Path, limits: &Limits) -> anyhow::Result<Loaded> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read notebook {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|error| {
        anyhow::anyhow!(
            "notebook {} is not UTF-8 (invalid byte at offset {})",
            path.display(),
            error.utf8_error().valid_up_to()
        )
    })?;
    let notebook = if crate::python::is_python_notebook(path) {
        let (notebook, warnings) = crate::python::compile(&text)
            .with_context(|| format!("notebook {}", path.display()))?;
        for warning in warnings {
            tracing::warn!("{}: {warning}", path.display());
        }
        notebook
    } else {
        let sources =
            crate::format::split(&text).with_context(|| format!("notebook {}", path.display()))?;
        Notebook::compile(sources, limits)
    };
    let graph = DataflowGraph::of(&notebook);
    Ok(Loaded {
        path: path.display().to_string(),
        text,
        notebook,
        graph,
    })
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let limits = crate::session::limits(&args);
    // The plugins load before the notebook is analysed: an executor that
    // starts a runtime (the python plugin's CPython) starts it meanwhile.
    let session = Session::new(&args, limits.clone(), language_of(&args.notebook))?;
    let loaded = load(&args.notebook, &limits)?;
    let selected = select_cells(&loaded.notebook, &args.cells, &loaded.path)?;
    let plan = Plan::new(&loaded.notebook, &loaded.graph, selected.as_deref());

    // The report file is created first, so a bad path fails before the run.
    let report = args
        .report
        .as_deref()
        .map(crate::report::ReportFile::create)
        .transpose()?;
    session.check_language(&loaded)?;
    let (evaluator, cache_warnings) =
        session.evaluator(&loaded.notebook, |lifecycle| lifecycle, |executor| executor);
    let header = session.header(&loaded, &evaluator, &plan);
    let sink = &session.sink;
    let mut hooks = Hooks::new();
    if let Some(events) = session.events() {
        output::json_hooks(&mut hooks, events, &header);
    }
    if !args.json {
        output::human_hooks(&mut hooks, sink, &header);
    }
    crate::last_words::arm(&mut hooks, sink, args.json, header.names.clone());
    session.print_warnings();
    for warning in &cache_warnings {
        session.warn(warning);
    }

    let control = Arc::new(session.control());
    install_interrupt_handler(control.clone());
    // Nobody reads the rest of a run whose output cannot be written.
    let stop = control.clone();
    sink.on_failure(move || stop.interrupt());
    let jobs = session.jobs();
    let context = RunContext {
        jobs,
        ..run_context(&loaded, session.timeout())
    };
    let pipeline = Pipeline {
        notebook: &loaded.notebook,
        graph: &loaded.graph,
        plan: &plan,
        evaluator: &evaluator,
        control: &control,
        context: &context,
    };
    let summary = thread::scope(|scope| {
        let worker = thread::Builder::new()
            .name("cellrun-cells".into())
            .stack_size(CELL_THREAD_STACK)
            .spawn_scoped(scope, || {
                let mut globals = Globals::new();
                let order = plan.order().to_vec();
                let summary = if jobs > 1 {
                    let mut scheduler = ReadyScheduler::new(&loaded.graph, order, plan.n_errored());
                    pipeline.run_parallel(&mut scheduler, &mut hooks, &mut globals)
                } else {
                    // Exactly the sequential run: one cell at a time, in queue order.
                    let mut scheduler = SequentialScheduler::new(&loaded.graph, order);
                    pipeline.run(&mut scheduler, &mut hooks, &mut globals)
                };
                // Freeing every value one by one only delays the exit.
                std::mem::forget(globals);
                summary
            })
            .context("cannot start the thread that runs cells")?;
        worker.join().map_err(|payload| {
            anyhow::anyhow!(
                "internal error: {}",
                executor_core::panic_message(payload.as_ref())
            )
        })
    })?;
    // The report first: a closed standard output loses no more than it must.
    if let (Some(report), Some(events)) = (report, session.events()) {
        report.write(&events.take_recorded())?;
    }
    if let Some(error) = sink.take_error() {
        return Err(error.into());
    }
    // The process ends next: leave the notebook's memory to the OS rather
    // than freeing thousands of cells (a fifth of a 20,000-cell run).
    // Plugins are dropped as usual: a lifecycle may write its output then.
    drop(evaluator);
    drop(session);
    std::mem::forget(plan);
    std::mem::forget(loaded);
    Ok(exit_code(&summary))
}

/// The exit status of a finished run: 130 when interrupted, 1 when a cell
/// failed, was cancelled or was interrupted, 0 otherwise.
pub(crate) fn exit_code(summary: &RunSummary) -> ExitCode {
    ExitCode::from(if summary.was_interrupted {
        EXIT_INTERRUPTED
    } else if summary.error + summary.cancelled + summary.interrupted > 0 {
        1
    } else {
        0
    })
}

/// What the executor and lifecycles learn of a run of `loaded`: a new run
/// id, the notebook's path and hash, its cells and graph.
pub(crate) fn run_context(loaded: &Loaded, timeout: Option<std::time::Duration>) -> RunContext {
    RunContext {
        run_id: new_run_id(),
        timeout,
        notebook_path: loaded.path.clone(),
        notebook_hash: blake3::hash(loaded.text.as_bytes()).to_hex().to_string(),
        ..scheduler::run_context(&loaded.notebook, &loaded.graph)
    }
}

/// How many cells a run may have in flight: `--jobs` (or `CELLRUN_JOBS`),
/// by default the number of cores; 1 when the executor runs one cell at a
/// time, with a warning when more were asked for.
pub(crate) fn run_jobs(
    requested: Option<u32>,
    executor: &dyn Executor,
    warnings: &mut Vec<String>,
) -> usize {
    let jobs = requested.map_or_else(
        || thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        |jobs| jobs as usize,
    );
    if jobs > 1 && executor.concurrency() == Concurrency::Sequential {
        if requested.is_some() {
            warnings.push(format!(
                "executor `{}` runs one cell at a time: running the cells one by one, not {jobs} at a time",
                executor.name()
            ));
        }
        return 1;
    }
    jobs
}

/// A run id unique on this machine: the time, the process id and a counter.
fn new_run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    format!(
        "{nanos:x}-{:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The executor filter from `CELLRUN_EXECUTOR_ALLOWLIST` and `_DENYLIST`.
pub(crate) fn executor_filter() -> NameFilter {
    NameFilter::from_lists(
        std::env::var("CELLRUN_EXECUTOR_ALLOWLIST").ok().as_deref(),
        std::env::var("CELLRUN_EXECUTOR_DENYLIST").ok().as_deref(),
    )
}

/// `cellrun plugins`: every library found, whether it is usable, and the
/// executor a run would select. Constructs nothing.
fn list_plugins(args: &PluginArgs, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = PluginConfig::new(&args.plugin_dirs, args.allow_untrusted_plugins, Vec::new());
    let mut inventory = plugins::discover(&config);
    plugins::check_layouts(&mut inventory);
    let mut registry = ExecutorRegistry::new();
    let default = Arc::new(DefaultExecutor::new(&Limits::default()));
    plugins::register_executors(&mut registry, &inventory, &config, &default, RHAI);
    let selected = registry
        .candidate(&executor_filter())
        .unwrap_or(DefaultExecutor::NAME)
        .to_owned();
    let lifecycle_filter = plugins::lifecycle_filter();
    let lifecycles: Vec<&str> = inventory
        .plugins
        .iter()
        .filter(|(name, plugin)| {
            plugin.kind() == executor_abi::FfiPluginKind::LIFECYCLE
                && lifecycle_filter.permits(name)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    if as_json {
        let libraries: Vec<_> = inventory
            .reports
            .iter()
            .map(|report| {
                json!({
                    "path": report.path.display().to_string(),
                    "name": report.name,
                    "kind": report.kind,
                    "abi_version": report.abi_version,
                    "description": report.description,
                    "compatible": report.problem.is_none(),
                    "problem": report.problem,
                })
            })
            .collect();
        let dir_warnings: Vec<&String> = inventory
            .warnings
            .iter()
            .filter(|warning| warning.starts_with("plugin directory"))
            .collect();
        let document = json!({
            "abi_version": executor_abi::ABI_VERSION,
            "libraries": libraries,
            "executor": selected,
            "lifecycles": lifecycles,
            "warnings": dir_warnings,
        });
        output::print(&format!("{document}\n"))?;
    } else {
        for warning in inventory
            .warnings
            .iter()
            .filter(|warning| warning.starts_with("plugin directory"))
        {
            eprintln!("cellrun: warning: {warning}");
        }
        let mut text = format!(
            "executor-abi {} (loads every 1.x)\n",
            executor_abi::ABI_VERSION
        );
        for report in &inventory.reports {
            let status = report.problem.as_deref().unwrap_or("compatible");
            text.push_str(&format!(
                "{}\n  name: {}\n  kind: {}\n  abi: {}\n  description: {}\n  status: {status}\n",
                report.path.display(),
                report.name.as_deref().unwrap_or("-"),
                report.kind.unwrap_or("-"),
                report.abi_version.as_deref().unwrap_or("-"),
                report.description.as_deref().unwrap_or("-"),
            ));
        }
        text.push_str(&format!(
            "{} libraries; a run would use executor `{selected}`\n",
            inventory.reports.len()
        ));
        if !lifecycles.is_empty() {
            text.push_str(&format!("and lifecycles {}\n", lifecycles.join(", ")));
        }
        output::print(&output::terminal_safe_lines(&text))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, SIGTERM and SIGHUP interrupt the run (the summary and
/// `run_finished` still come); a second one exits at once.
fn install_interrupt_handler(control: Arc<RunControl>) {
    let result = ctrlc::set_handler(move || {
        if control.is_interrupted() {
            std::process::exit(i32::from(EXIT_INTERRUPTED));
        }
        control.interrupt();
    });
    if let Err(error) = result {
        tracing::warn!(%error, "cannot handle Ctrl-C or SIGTERM; a signal will kill the run");
    }
}

/// The cells named by `--cell`, or `None` for all.
fn select_cells(
    notebook: &Notebook,
    names: &[String],
    path: &str,
) -> anyhow::Result<Option<Vec<CellId>>> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        match notebook.find(name) {
            Some(cell) => ids.push(cell.id()),
            None => {
                let known: Vec<&str> = notebook.cells().iter().map(Cell::name).collect();
                bail!(
                    "no cell named `{name}` in {path}; its cells are: {}",
                    known.join(", ")
                );
            }
        }
    }
    Ok(Some(ids))
}

fn check(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let loaded = load(path, &Limits::default())?;
    let plan = Plan::new(&loaded.notebook, &loaded.graph, None);
    let notebook = &loaded.notebook;
    let name = |id: &CellId| notebook.cell(*id).name().to_owned();
    let mut n_errors = 0;
    let mut cells = Vec::new();
    let mut text = String::new();
    for cell in notebook.cells() {
        let parents: Vec<String> = loaded.graph.parents(cell.id()).iter().map(name).collect();
        let error = plan.static_error(cell.id());
        n_errors += usize::from(error.is_some());
        cells.push(json!({
            "name": cell.name(),
            "line": cell.first_line(),
            "defs": cell.defs(),
            "refs": cell.refs(),
            "parents": parents,
            "error": error.map(|error| json!({
                "kind": error.kind.as_str(),
                "message": error.message,
                "line": error.line,
                "blamed": error.blamed.map(|id| name(&id)),
            })),
        }));
        text.push_str(&format!(
            "{} (line {})\n  defs: {}\n  refs: {}\n  parents: {}\n",
            output::terminal_safe(cell.name()),
            cell.first_line(),
            output::terminal_safe(&cell.defs().join(", ")),
            output::terminal_safe(&cell.refs().join(", ")),
            output::terminal_safe(&parents.join(", "))
        ));
        if let Some(error) = error {
            text.push_str(&format!(
                "  error: {}\n",
                output::terminal_safe(&error.to_string())
            ));
        }
    }
    if as_json {
        let document = json!({"notebook": loaded.path, "cells": cells, "errors": n_errors});
        output::print(&format!("{document}\n"))?;
    } else {
        text.push_str(&format!(
            "{}, {n_errors} with errors\n",
            output::cells(notebook.len())
        ));
        output::print(&text)?;
    }
    Ok(ExitCode::from(u8::from(n_errors > 0)))
}

fn graph(path: &Path, format: GraphFormat) -> anyhow::Result<ExitCode> {
    let loaded = load(path, &Limits::default())?;
    let notebook = &loaded.notebook;
    let edges: Vec<(&Cell, &Cell)> = notebook
        .cells()
        .iter()
        .flat_map(|cell| {
            loaded
                .graph
                .children(cell.id())
                .iter()
                .map(move |child| (cell, notebook.cell(*child)))
        })
        .collect();
    let mut text = String::new();
    match format {
        GraphFormat::Dot => {
            text.push_str("digraph notebook {\n  rankdir=TB;\n");
            for cell in notebook.cells() {
                text.push_str(&format!("  {};\n", dot_quote(cell.name())));
            }
            for (parent, child) in &edges {
                text.push_str(&format!(
                    "  {} -> {};\n",
                    dot_quote(parent.name()),
                    dot_quote(child.name())
                ));
            }
            text.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            text.push_str("flowchart TD\n");
            for cell in notebook.cells() {
                text.push_str(&format!(
                    "  c{}[{}]\n",
                    cell.id().index(),
                    mermaid_quote(cell.name())
                ));
            }
            for (parent, child) in &edges {
                text.push_str(&format!(
                    "  c{} --> c{}\n",
                    parent.id().index(),
                    child.id().index()
                ));
            }
        }
        GraphFormat::Json => {
            let levels = parallel_levels(&loaded.graph);
            let nodes: Vec<_> = notebook
                .cells()
                .iter()
                .map(|cell| json!({"name": cell.name(), "line": cell.first_line(), "defs": cell.defs(), "level": levels[cell.id().index()]}))
                .collect();
            let n_levels = levels.iter().max().map_or(0, |level| level + 1);
            let mut together: Vec<Vec<&str>> = vec![Vec::new(); n_levels];
            for cell in notebook.cells() {
                together[levels[cell.id().index()]].push(cell.name());
            }
            let edges: Vec<_> = edges
                .iter()
                .map(|(parent, child)| json!({"from": parent.name(), "to": child.name()}))
                .collect();
            text = json!({"nodes": nodes, "edges": edges, "levels": together}).to_string();
            text.push('\n');
        }
    }
    output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Each cell's level: 0 for a cell without parents, else one more than its
/// highest parent. Cells of one level never depend on each other, so a
/// run with enough jobs may run them at the same time. Cells on a cycle
/// count only the parents ranked before them.
fn parallel_levels(graph: &DataflowGraph) -> Vec<usize> {
    let mut by_rank: Vec<CellId> = (0..graph.len()).map(CellId::new).collect();
    by_rank.sort_unstable_by_key(|cell| graph.topo_rank(*cell));
    let mut levels = vec![0; graph.len()];
    for cell in by_rank {
        let rank = graph.topo_rank(cell);
        levels[cell.index()] = graph
            .parents(cell)
            .iter()
            .filter(|parent| graph.topo_rank(**parent) < rank)
            .map(|parent| levels[parent.index()] + 1)
            .max()
            .unwrap_or(0);
    }
    levels
}

/// Creates the cache directory `dir` if needed (writable by its owner
/// only) and applies the plugin directories' trust rule to it: entries are
/// read back as results, so nobody else may be able to write them.
pub(crate) fn prepare_cache_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(dir).map_err(|error| {
        format!(
            "cannot create the cache directory {}: {error}",
            dir.display()
        )
    })?;
    match crate::libfile::distrust_dir(dir) {
        Some(reason) => Err(format!(
            "not using the cache directory {}: {reason}",
            dir.display()
        )),
        None => Ok(()),
    }
}

/// The cache directory used when none is given: `.cellrun/cache` beside the
/// notebook, or in the current directory.
pub(crate) fn default_cache_dir(notebook: Option<&Path>) -> std::path::PathBuf {
    let base = notebook.map_or(Path::new("."), crate::session::notebook_dir);
    base.join(".cellrun").join("cache")
}

fn cache(action: CacheAction) -> anyhow::Result<ExitCode> {
    match action {
        CacheAction::Info { dir } => {
            let dir = dir.unwrap_or_else(|| default_cache_dir(None));
            // The cache's errors name the directory already.
            let info = cache_info(&dir)?;
            let missing = if dir.exists() {
                ""
            } else {
                " (no such directory)"
            };
            let mut text = format!(
                "{}: {} entries, {} bytes{missing}\n",
                dir.display(),
                info.entries,
                info.bytes
            );
            if info.temp_files > 0 {
                text.push_str(&format!(
                    "{} unfinished temporary files (removed by `cellrun cache clear`)\n",
                    info.temp_files
                ));
            }
            output::print(&output::terminal_safe_lines(&text))?;
        }
        CacheAction::Clear { dir } => {
            let dir = dir.unwrap_or_else(|| default_cache_dir(None));
            let removed = cache_clear(&dir)?;
            output::print(&output::terminal_safe_lines(&format!(
                "{}: removed {removed} files\n",
                dir.display()
            )))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A cell name as a quoted Graphviz ID.
fn dot_quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// A cell name as a quoted Mermaid label (Mermaid escapes with entities).
fn mermaid_quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        match c {
            '"' => quoted.push_str("#quot;"),
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
