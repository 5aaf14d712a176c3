//! `cellrun watch`: runs a notebook, then re-runs what each save changes.
//!
//! The loop lives on the main thread and waits on one channel for events:
//! a debounced change of the notebook file (from `notify`, watching the
//! notebook's directory, so that editors saving through a rename are
//! followed), a key, Ctrl-C, or the end of a run. Runs happen one at a time
//! on a thread of their own, against globals kept from one run to the next.
//!
//! Which cells a save re-runs follows marimo's kernel: the cells whose code
//! changed or that are new, the cells whose static error appeared, changed
//! or went away, the former children of deleted and changed cells, and the
//! descendants of all of these. With `--lazy` only the changed cells (and
//! their stale ancestors) run; the others become stale until `r`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context};
use executor_core::{
    CancelToken, Cell, CellError, CellId, Concurrency, Evaluator, Executor, ForeignValue, Globals,
    Lifecycle, Notebook, RunContext, RunOutcome, RunResult, Setup, Status, CELL_THREAD_STACK,
};
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{new_debouncer, DebounceEventResult, DebouncedEventKind};
use scheduler::{
    Hooks, Pipeline, Plan, Priority, ReadyScheduler, RunControl, RunSummary, SequentialScheduler,
};
use serde::Serialize;

use crate::cli::WatchArgs;
use crate::commands::{self, Loaded, EXIT_INTERRUPTED};
use crate::output::{self, use_color, Style};
use crate::session::{notebook_dir, Session};
use crate::tui::{self, Key, Screen};

/// What the loop waits for.
enum Event {
    /// The notebook file changed and then stayed quiet for the debounce time.
    Saved,
    /// The file watcher failed.
    WatchFailed(String),
    /// A key (or a command line on stdin).
    Key(Key),
    /// Ctrl-C.
    Interrupt,
    /// The run in progress ended.
    Finished(Box<Finished>),
    /// The thread of the run in progress panicked, with this message.
    Crashed(String),
}

/// What a run hands back.
struct Finished {
    globals: Globals,
    summary: RunSummary,
    statuses: Vec<(CellId, Status)>,
}

/// One version of the notebook, as a save left it.
struct Version {
    loaded: Loaded,
    /// Each cell's static error, as text.
    errors: Vec<Option<String>>,
}

impl Version {
    fn new(loaded: Loaded) -> Version {
        let all: Vec<CellId> = loaded.notebook.cells().iter().map(Cell::id).collect();
        let plan = Plan::of_members(&loaded.notebook, &loaded.graph, &[]);
        let errors = all
            .iter()
            .map(|id| plan.static_error(*id).map(ToString::to_string))
            .collect();
        Version { loaded, errors }
    }

    fn notebook(&self) -> &Notebook {
        &self.loaded.notebook
    }

    fn names(&self, ids: &[CellId]) -> Vec<String> {
        ids.iter()
            .map(|id| self.notebook().cell(*id).name().to_owned())
            .collect()
    }
}

/// The `rerun_started` event, printed before each re-run under `--json`.
#[derive(Serialize)]
#[serde(tag = "event", rename = "rerun_started")]
struct RerunStarted<'a> {
    /// `save`, or `stale` for the `r` key.
    reason: &'a str,
    /// The cells about to run, in queue order.
    cells: &'a [String],
    /// The cells that are stale after this save (`--lazy`).
    stale: &'a [String],
    /// The cells this save deleted.
    removed: &'a [String],
}

/// `cellrun watch`.
pub(crate) fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    if !args.run.cells.is_empty() {
        bail!("`cellrun watch` runs the whole notebook; `--cell` is for `cellrun run`");
    }
    if args.run.report.is_some() {
        bail!("`--report` is for `cellrun run`; `cellrun report` makes one from a saved `--json` stream");
    }
    let limits = crate::session::limits(&args.run);
    let path = args.run.notebook.clone();
    let loaded = commands::load(&path, &limits)?;
    let session = Session::new(&args.run, limits, loaded.notebook.language())?;
    session.check_language(&loaded)?;
    let (sender, events) = mpsc::channel();
    let _watcher = watch_file(&path, Duration::from_millis(args.debounce), sender.clone())?;
    let ui = if session.is_json() {
        Ui::Json
    } else if session.sink.is_terminal() {
        Ui::Screen(Screen::new(
            session.sink.clone(),
            Style::new(use_color(&session.sink)),
            &loaded.path,
            args.lazy,
        ))
    } else {
        Ui::Plain
    };
    let key_sender = sender.clone();
    let terminal = tui::listen_keys(move |key| {
        let _ = key_sender.send(Event::Key(key));
    });
    // Nobody reads a watch whose output cannot be written: it ends.
    let failure_sender = sender.clone();
    session.sink.on_failure(move || {
        let _ = failure_sender.send(Event::Key(Key::Quit));
    });
    let interrupt_sender = sender.clone();
    if let Err(error) = ctrlc::set_handler(move || {
        let _ = interrupt_sender.send(Event::Interrupt);
    }) {
        tracing::warn!(%error, "cannot handle Ctrl-C; an interrupt will end the watch at once");
    }

    let version = Arc::new(Version::new(loaded));
    let n_cells = version.notebook().len();
    let mut watch = Watch {
        session: &session,
        lazy: args.lazy,
        ui,
        path,
        current: version,
        globals: Some(Globals::new()),
        running: None,
        reload_after_run: false,
        stale_after_run: false,
        stale: vec![false; n_cells],
        retired: Retired::default(),
        sender,
    };
    watch.ui.show_version(&watch.current, &[]);
    for warning in session.warnings() {
        watch.ui.notice(&session, warning);
    }
    let all: Vec<CellId> = watch
        .current
        .notebook()
        .cells()
        .iter()
        .map(Cell::id)
        .collect();
    watch.start(all, None, &[]);
    let code = watch.serve(&events);
    if let Some(terminal) = terminal {
        terminal.restore();
    }
    watch.ui.close();
    if let Some(error) = session.sink.take_error() {
        return Err(error.into());
    }
    Ok(code)
}

/// Starts watching the directory of `notebook`, sending [`Event::Saved`]
/// once a burst of changes to the file is over.
///
/// The directory is watched rather than the file: an editor that saves by
/// writing a new file and renaming it over the old one replaces the inode.
fn watch_file(
    notebook: &Path,
    debounce: Duration,
    sender: Sender<Event>,
) -> anyhow::Result<
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
> {
    let dir = notebook_dir(notebook)
        .canonicalize()
        .with_context(|| format!("cannot watch the directory of {}", notebook.display()))?;
    let file_name = notebook
        .file_name()
        .with_context(|| format!("{} is not a file name", notebook.display()))?
        .to_owned();
    let mut debouncer = new_debouncer(debounce, move |result: DebounceEventResult| {
        match result {
            Ok(events) => {
                // `AnyContinuous` reports a burst still going on: wait for its end.
                let saved = events.iter().any(|event| {
                    event.kind == DebouncedEventKind::Any
                        && event.path.file_name() == Some(file_name.as_os_str())
                });
                if saved {
                    let _ = sender.send(Event::Saved);
                }
            }
            Err(error) => {
                let _ = sender.send(Event::WatchFailed(error.to_string()));
            }
        }
    })
    .context("cannot start the file watcher")?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    Ok(debouncer)
}

/// The state of the loop.
struct Watch<'s> {
    session: &'s Session,
    lazy: bool,
    ui: Ui,
    path: PathBuf,
    /// The version the last run started with.
    current: Arc<Version>,
    /// The globals, or `None` while a run holds them.
    globals: Option<Globals>,
    running: Option<Running>,
    /// A save came during a run: reload once it ends.
    reload_after_run: bool,
    /// `r` came during a run: run the stale cells once it ends.
    stale_after_run: bool,
    /// Whether each cell of the current version is stale.
    stale: Vec<bool>,
    /// Names that no cell defines any more, with the reason; shared with
    /// the wrappers that explain errors about them.
    retired: Retired,
    sender: Sender<Event>,
}

/// The run in progress.
struct Running {
    control: Arc<RunControl>,
    interrupted: bool,
    /// Set by the run's last hooks, before its end is printed: a Ctrl-C
    /// after that has nothing to interrupt, even if the loop has not heard
    /// of the end yet.
    done: Arc<AtomicBool>,
}

impl Watch<'_> {
    /// Handles events until `q` or a Ctrl-C with nothing to interrupt;
    /// returns the exit status.
    fn serve(&mut self, events: &Receiver<Event>) -> ExitCode {
        while let Ok(event) = events.recv() {
            match event {
                Event::Saved => {
                    if let Some(running) = &self.running {
                        // Only a real change interrupts the run.
                        let changed = std::fs::read(&self.path)
                            .map_or(true, |bytes| bytes != self.current.loaded.text.as_bytes());
                        if changed {
                            running.control.interrupt();
                            self.reload_after_run = true;
                        }
                    } else {
                        self.reload();
                    }
                }
                Event::WatchFailed(message) => {
                    self.ui
                        .notice(self.session, &format!("file watcher: {message}"));
                }
                Event::Key(Key::RunStale) => {
                    if self.running.is_some() {
                        self.stale_after_run = true;
                    } else {
                        self.run_stale();
                    }
                }
                Event::Key(Key::Quit) => return self.quit(events, ExitCode::SUCCESS),
                Event::Interrupt => match &mut self.running {
                    Some(running)
                        if !running.interrupted && !running.done.load(Ordering::SeqCst) =>
                    {
                        running.interrupted = true;
                        running.control.interrupt();
                        self.ui.notice(
                            self.session,
                            "interrupted; still watching (Ctrl-C again or `q` quits)",
                        );
                    }
                    _ => return self.quit(events, ExitCode::from(EXIT_INTERRUPTED)),
                },
                Event::Crashed(message) => {
                    self.running = None;
                    self.ui.close();
                    eprintln!(
                        "cellrun: internal error: {}",
                        crate::output::terminal_safe(&message)
                    );
                    return ExitCode::from(2);
                }
                Event::Finished(finished) => {
                    self.finished(*finished);
                    if std::mem::take(&mut self.reload_after_run) {
                        self.reload();
                    } else if std::mem::take(&mut self.stale_after_run) {
                        self.run_stale();
                    }
                }
            }
        }
        ExitCode::SUCCESS
    }

    /// Stops the run in progress, if any, waiting a little for it to end so
    /// plugins see their teardowns; returns `code`.
    fn quit(&mut self, events: &Receiver<Event>, code: ExitCode) -> ExitCode {
        if let Some(running) = &self.running {
            running.control.interrupt();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match events.recv_timeout(left) {
                    Ok(Event::Finished(finished)) => {
                        self.finished(*finished);
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        code
    }

    /// Books the end of a run: globals back, stale cells updated.
    fn finished(&mut self, finished: Finished) {
        let interrupted_raisers: HashSet<CellId> = finished
            .statuses
            .iter()
            .filter(|(_, status)| *status == Status::Interrupted)
            .map(|(id, _)| *id)
            .collect();
        let mut raiser_of = HashMap::new();
        for (raiser, victims) in &finished.summary.cancellations {
            for victim in victims {
                raiser_of.insert(*victim, *raiser);
            }
        }
        for (id, status) in &finished.statuses {
            // What an interrupt kept from running is stale: it runs again
            // with the next save, or with `r` under `--lazy`.
            self.stale[id.index()] = match status {
                Status::Ok | Status::Error => false,
                Status::Interrupted => true,
                Status::Cancelled => raiser_of
                    .get(id)
                    .is_some_and(|raiser| interrupted_raisers.contains(raiser)),
            };
        }
        self.globals = Some(finished.globals);
        self.running = None;
        self.ui.after_run(&self.stale);
    }

    /// Re-reads the notebook and re-runs what the save changed.
    fn reload(&mut self) {
        let loaded = match commands::load(&self.path, &self.session.limits) {
            Ok(loaded) => loaded,
            Err(error) => {
                self.ui.notice(
                    self.session,
                    &format!("{error:#}; still watching, with the last version that loaded"),
                );
                return;
            }
        };
        if loaded.text == self.current.loaded.text {
            return;
        }
        if loaded.text.trim().is_empty() {
            // Editors that save in place truncate the file first: an empty
            // notebook is a save still under way, not a deletion of every cell.
            return;
        }
        let new = Arc::new(Version::new(loaded));
        let old = std::mem::replace(&mut self.current, new.clone());
        let matching = match_cells(old.notebook(), new.notebook());
        let rerun = self.rerun_of(&old, &new, &matching);

        // Forget what the changed and deleted cells defined, and what the
        // cells about to run define, unless a cell that does not run defines
        // it now.
        let members: HashSet<CellId> = rerun.members.iter().copied().collect();
        let kept: HashSet<&str> = new
            .notebook()
            .cells()
            .iter()
            .filter(|cell| !members.contains(&cell.id()))
            .flat_map(|cell| cell.graph_defs().iter().map(String::as_str))
            .collect();
        let mut forgotten: Vec<&str> = Vec::new();
        for old_id in matching.deleted.iter().chain(&matching.changed_old) {
            forgotten.extend(
                old.notebook()
                    .cell(*old_id)
                    .defs()
                    .iter()
                    .map(String::as_str),
            );
        }
        for id in &rerun.members {
            forgotten.extend(new.notebook().cell(*id).defs().iter().map(String::as_str));
        }
        if let Some(globals) = &mut self.globals {
            for name in forgotten {
                if !kept.contains(name) {
                    globals.remove(name);
                }
            }
        }
        self.retire(&old, &new, &matching);

        self.stale = rerun.stale;
        let removed = old.names(&matching.deleted);
        self.ui.show_version(&new, &matching.old_of);
        self.start(rerun.members, Some("save"), &removed);
    }

    /// Records the names the old version defined and the new one does not.
    fn retire(&mut self, old: &Version, new: &Version, matching: &Matching) {
        let defined: HashSet<&str> = new
            .notebook()
            .cells()
            .iter()
            .flat_map(|cell| cell.graph_defs().iter().map(String::as_str))
            .collect();
        let mut retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.retain(|name, _| !defined.contains(name.as_str()));
        let mut new_of_old = vec![None; old.notebook().len()];
        for (new_id, old_id) in matching.old_of.iter().enumerate() {
            if let Some(old_id) = old_id {
                new_of_old[old_id.index()] = Some(CellId::new(new_id));
            }
        }
        for cell in old.notebook().cells() {
            for def in cell.defs() {
                if defined.contains(def.as_str()) {
                    continue;
                }
                let reason = match new_of_old[cell.id().index()] {
                    None => format!("cell `{}`, which defined it, was deleted", cell.name()),
                    Some(id) => format!(
                        "cell `{}` does not define it any more",
                        new.notebook().cell(id).name()
                    ),
                };
                retired.insert(def.clone(), reason);
            }
        }
    }

    /// Which cells of `new` run after the save from `old`, and which are
    /// stale.
    fn rerun_of(&self, old: &Version, new: &Version, matching: &Matching) -> Rerun {
        let n = new.notebook().len();
        let mut new_of_old = vec![None; old.notebook().len()];
        for (new_id, old_id) in matching.old_of.iter().enumerate() {
            if let Some(old_id) = old_id {
                new_of_old[old_id.index()] = Some(CellId::new(new_id));
            }
        }
        let carried_stale: Vec<CellId> = (0..old.notebook().len())
            .filter(|index| self.stale.get(*index).copied().unwrap_or(false))
            .filter_map(|index| new_of_old[index])
            .collect();
        let mut error_changed = Vec::new();
        for (new_index, old_id) in matching.old_of.iter().enumerate() {
            if let Some(old_id) = old_id {
                if old.errors[old_id.index()] != new.errors[new_index] {
                    error_changed.push(CellId::new(new_index));
                }
            }
        }
        let old_children: Vec<CellId> = matching
            .deleted
            .iter()
            .chain(&matching.changed_old)
            .flat_map(|old_id| old.loaded.graph.children(*old_id))
            .filter_map(|child| new_of_old[child.index()])
            .collect();
        let graph = &new.loaded.graph;
        let mut stale = vec![false; n];
        let members = if self.lazy {
            let mut seeds = matching.changed.clone();
            seeds.extend(
                error_changed
                    .iter()
                    .copied()
                    .filter(|id| new.errors[id.index()].is_some()),
            );
            let carried: HashSet<CellId> = carried_stale.iter().copied().collect();
            let mut members = seeds.clone();
            members.extend(
                graph
                    .ancestors(&seeds)
                    .into_iter()
                    .filter(|id| carried.contains(id)),
            );
            members.sort_unstable();
            members.dedup();
            for id in graph
                .descendants(&seeds)
                .into_iter()
                .chain(carried_stale)
                .chain(old_children)
                .chain(error_changed)
            {
                stale[id.index()] = true;
            }
            for id in &members {
                stale[id.index()] = false;
            }
            members
        } else {
            let mut seeds = matching.changed.clone();
            seeds.extend(error_changed);
            seeds.extend(old_children);
            seeds.extend(carried_stale);
            graph.descendants(&seeds)
        };
        Rerun { members, stale }
    }

    /// Runs the stale cells (the `r` key).
    fn run_stale(&mut self) {
        let members: Vec<CellId> = (0..self.stale.len())
            .filter(|index| self.stale[*index])
            .map(CellId::new)
            .collect();
        self.start(members, Some("stale"), &[]);
    }

    /// The evaluator for `version`, explaining errors about retired names;
    /// its warnings (a cache that cannot be used) are shown.
    fn evaluator(&self, version: &Version) -> Evaluator {
        let retired = self.retired.clone();
        let for_lifecycles = retired.clone();
        let (evaluator, warnings) = self.session.evaluator(
            version.notebook(),
            move |inner| {
                Arc::new(Explained {
                    inner,
                    retired: for_lifecycles.clone(),
                }) as Arc<dyn Lifecycle>
            },
            move |inner| Arc::new(Explained { inner, retired }) as Arc<dyn Executor>,
        );
        for warning in &warnings {
            self.ui.notice(self.session, warning);
        }
        evaluator
    }

    /// Starts a run of `members` of the current version on the cell thread.
    fn start(&mut self, members: Vec<CellId>, reason: Option<&str>, removed: &[String]) {
        let version = self.current.clone();
        let evaluator = self.evaluator(&version);
        let plan = Plan::of_members(version.notebook(), &version.loaded.graph, &members);
        let header = self.session.header(&version.loaded, &evaluator, &plan);
        let mut hooks = Hooks::new();
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let record = statuses.clone();
        hooks.on_post_execution(Priority::Early, move |outcome| {
            record
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((outcome.cell.id(), outcome.status));
        });
        let done = Arc::new(AtomicBool::new(false));
        let finishing = done.clone();
        hooks.on_finish(Priority::Late, move |_| {
            finishing.store(true, Ordering::SeqCst)
        });
        let stale_names: Vec<String> = version.names(
            &(0..self.stale.len())
                .filter(|index| self.stale[*index])
                .map(CellId::new)
                .collect::<Vec<_>>(),
        );
        match &self.ui {
            Ui::Json => {
                if let Some(reason) = reason {
                    self.session.sink.event(&RerunStarted {
                        reason,
                        cells: &header.cells,
                        stale: &stale_names,
                        removed,
                    });
                }
                output::json_hooks(&mut hooks, &self.session.sink, &header);
            }
            Ui::Plain => {
                if let Some(reason) = reason {
                    let mut line = if reason == "stale" {
                        format!(
                            "cellrun: running the stale cells: {}",
                            list_or_none(&header.cells)
                        )
                    } else {
                        format!(
                            "cellrun: {} changed: re-running {}",
                            version.loaded.path,
                            list_or_none(&header.cells)
                        )
                    };
                    if !stale_names.is_empty() {
                        line.push_str(&format!("; stale: {}", stale_names.join(", ")));
                    }
                    if !removed.is_empty() {
                        line.push_str(&format!("; removed: {}", removed.join(", ")));
                    }
                    line.push('\n');
                    self.session.sink.write(&line);
                }
                output::human_hooks(&mut hooks, &self.session.sink, &header);
            }
            Ui::Screen(screen) => screen.attach(&mut hooks, &header, plan.order(), &self.stale),
        }
        let control = Arc::new(self.session.control());
        let jobs = self.session.jobs();
        let context = RunContext {
            jobs,
            ..commands::run_context(&version.loaded, self.session.timeout())
        };
        let globals = self.globals.take().unwrap_or_default();
        let sender = self.sender.clone();
        let run_control = control.clone();
        let spawned = thread::Builder::new()
            .name("cellrun-cells".into())
            .stack_size(CELL_THREAD_STACK)
            .spawn(move || {
                // The cells run inside the evaluator's guard; this one is
                // for the rest of the pipeline, so the loop never waits for
                // a run that died.
                let crash = sender.clone();
                let guarded = std::panic::AssertUnwindSafe(move || {
                    let mut globals = globals;
                    let pipeline = Pipeline {
                        notebook: version.notebook(),
                        graph: &version.loaded.graph,
                        plan: &plan,
                        evaluator: &evaluator,
                        control: &run_control,
                        context: &context,
                    };
                    let order = plan.order().to_vec();
                    let summary = if jobs > 1 {
                        let mut scheduler =
                            ReadyScheduler::new(&version.loaded.graph, order, plan.n_errored());
                        pipeline.run_parallel(&mut scheduler, &mut hooks, &mut globals)
                    } else {
                        let mut scheduler = SequentialScheduler::new(&version.loaded.graph, order);
                        pipeline.run(&mut scheduler, &mut hooks, &mut globals)
                    };
                    // Everything of the run goes before its end is told: once
                    // the loop hears of it, the process may exit, and a plugin
                    // lifecycle writes its output when its last handle drops.
                    drop(hooks);
                    drop(evaluator);
                    let statuses = std::mem::take(
                        &mut *statuses.lock().unwrap_or_else(PoisonError::into_inner),
                    );
                    let _ = sender.send(Event::Finished(Box::new(Finished {
                        globals,
                        summary,
                        statuses,
                    })));
                });
                if let Err(payload) = std::panic::catch_unwind(guarded) {
                    let message = executor_core::panic_message(payload.as_ref());
                    let _ = crash.send(Event::Crashed(message));
                }
            });
        match spawned {
            Ok(_) => {
                self.running = Some(Running {
                    control,
                    interrupted: false,
                    done,
                });
            }
            Err(error) => {
                self.globals = Some(Globals::new());
                self.ui.notice(
                    self.session,
                    &format!("cannot start the thread that runs cells: {error}"),
                );
            }
        }
    }
}

/// `a, b` or `nothing`.
fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

/// The cells a save runs, and which cells are stale afterwards.
struct Rerun {
    members: Vec<CellId>,
    stale: Vec<bool>,
}

/// How the cells of a new version relate to those of the previous one.
#[derive(Debug, PartialEq, Eq)]
struct Matching {
    /// For each new cell, the old cell it continues, if any.
    old_of: Vec<Option<CellId>>,
    /// New cells whose code differs from their old cell's, or that have none.
    changed: Vec<CellId>,
    /// The old cells of the changed cells that have one.
    changed_old: Vec<CellId>,
    /// Old cells that no new cell continues.
    deleted: Vec<CellId>,
}

/// Matches the cells of `new` to those of `old`: first a cell with the same
/// name and code, then one with the same code (a renamed or moved cell,
/// which does not re-run), then one with the same name (an edited cell).
/// Within each step, cells pair up in file order.
fn match_cells(old: &Notebook, new: &Notebook) -> Matching {
    let mut old_of: Vec<Option<CellId>> = vec![None; new.len()];
    let mut taken = vec![false; old.len()];
    let old_by_name: HashMap<&str, &Cell> =
        old.cells().iter().map(|cell| (cell.name(), cell)).collect();
    for cell in new.cells() {
        if let Some(previous) = old_by_name.get(cell.name()) {
            if previous.code() == cell.code() {
                old_of[cell.id().index()] = Some(previous.id());
                taken[previous.id().index()] = true;
            }
        }
    }
    let mut by_code: HashMap<&str, Vec<CellId>> = HashMap::new();
    for cell in old.cells().iter().rev() {
        if !taken[cell.id().index()] {
            by_code.entry(cell.code()).or_default().push(cell.id());
        }
    }
    for cell in new.cells() {
        if old_of[cell.id().index()].is_some() {
            continue;
        }
        if let Some(previous) = by_code.get_mut(cell.code()).and_then(Vec::pop) {
            old_of[cell.id().index()] = Some(previous);
            taken[previous.index()] = true;
        }
    }
    let mut changed = Vec::new();
    let mut changed_old = Vec::new();
    for cell in new.cells() {
        if old_of[cell.id().index()].is_some() {
            continue;
        }
        changed.push(cell.id());
        if let Some(previous) = old_by_name.get(cell.name()) {
            if !taken[previous.id().index()] {
                old_of[cell.id().index()] = Some(previous.id());
                taken[previous.id().index()] = true;
                changed_old.push(previous.id());
            }
        }
    }
    let deleted = old
        .cells()
        .iter()
        .map(Cell::id)
        .filter(|id| !taken[id.index()])
        .collect();
    Matching {
        old_of,
        changed,
        changed_old,
        deleted,
    }
}

/// Wraps an executor or a lifecycle so that an error about a name no cell
/// defines any more says so, and why.
struct Explained<T: ?Sized> {
    inner: Arc<T>,
    retired: Retired,
}

/// Names that no cell defines any more, each with the reason.
type Retired = Arc<Mutex<HashMap<String, String>>>;

impl<T: ?Sized> Explained<T> {
    fn explain(&self, error: &mut CellError) {
        let Some(name) = error.missing_name.as_deref() else {
            return;
        };
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reason) = retired.get(name) {
            error.message = format!("`{name}` is no longer defined: {reason}");
        }
    }

    fn explain_result(&self, mut result: RunResult) -> RunResult {
        if let Some(error) = &mut result.error {
            self.explain(error);
        }
        result
    }
}

impl Executor for Explained<dyn Executor> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        self.explain_result(self.inner.execute(cell, globals, token))
    }

    fn languages(&self) -> Vec<String> {
        self.inner.languages()
    }

    fn concurrency(&self) -> Concurrency {
        self.inner.concurrency()
    }

    fn decode_foreign(
        &self,
        owner: &str,
        type_name: &str,
        data: &[u8],
    ) -> Option<Result<ForeignValue, String>> {
        self.inner.decode_foreign(owner, type_name, data)
    }

    fn run_started(&self, run: &RunContext) {
        self.inner.run_started(run);
    }

    fn run_finished(&self, outcome: &RunOutcome) {
        self.inner.run_finished(outcome);
    }
}

impl Lifecycle for Explained<dyn Lifecycle> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn setup(&self, cell: &Cell, globals: &mut Globals) -> Result<Setup, CellError> {
        match self.inner.setup(cell, globals) {
            Ok(Setup::Skip(result)) => Ok(Setup::Skip(self.explain_result(result))),
            Ok(Setup::Continue) => Ok(Setup::Continue),
            Err(mut error) => {
                self.explain(&mut error);
                Err(error)
            }
        }
    }

    fn teardown(
        &self,
        cell: &Cell,
        globals: &mut Globals,
        result: &RunResult,
    ) -> Result<(), CellError> {
        self.inner.teardown(cell, globals, result)
    }

    fn cell_not_run(&self, cell: &Cell, result: &RunResult) {
        self.inner.cell_not_run(cell, result);
    }

    fn run_started(&self, run: &RunContext) {
        self.inner.run_started(run);
    }

    fn run_finished(&self, outcome: &RunOutcome) {
        self.inner.run_finished(outcome);
    }
}

/// Where the watch's output goes.
enum Ui {
    /// NDJSON events.
    Json,
    /// Plain lines, as `run` prints them, one run after another.
    Plain,
    /// One status line per cell, updated in place.
    Screen(Screen),
}

impl Ui {
    fn notice(&self, session: &Session, message: &str) {
        match self {
            Ui::Screen(screen) => screen.notice(message),
            Ui::Json | Ui::Plain => session.warn(message),
        }
    }

    fn show_version(&self, version: &Version, old_of: &[Option<CellId>]) {
        if let Ui::Screen(screen) = self {
            screen.show_version(&version.loaded, old_of);
        }
    }

    fn after_run(&self, stale: &[bool]) {
        if let Ui::Screen(screen) = self {
            screen.mark_stale(stale);
        }
    }

    fn close(&self) {
        if let Ui::Screen(screen) = self {
            screen.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use executor_core::Limits;

    use super::*;

    /// A notebook of `(name, code)` cells, through the notebook format.
    fn notebook(cells: &[(&str, &str)]) -> Notebook {
        let text: String = cells
            .iter()
            .map(|(name, code)| format!("// %% {name}\n{code}\n"))
            .collect();
        Notebook::compile(crate::format::split(&text).unwrap(), &Limits::default())
    }

    fn ids(indices: &[usize]) -> Vec<CellId> {
        indices.iter().map(|index| CellId::new(*index)).collect()
    }

    #[test]
    fn cells_match_by_name_and_code_then_code_then_name() {
        let old = notebook(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
        // `a` unchanged, `b` renamed to `bb` and moved, `c` edited, `d`
        // deleted, `e` new.
        let new = notebook(&[("a", "1"), ("c", "33"), ("bb", "2"), ("e", "5")]);
        let matching = match_cells(&old, &new);
        assert_eq!(
            matching,
            Matching {
                old_of: vec![
                    Some(CellId::new(0)),
                    Some(CellId::new(2)),
                    Some(CellId::new(1)),
                    None
                ],
                changed: ids(&[1, 3]),
                changed_old: ids(&[2]),
                deleted: ids(&[3]),
            }
        );
    }

    #[test]
    fn cells_with_the_same_code_pair_up_in_file_order() {
        let old = notebook(&[("cell-1", "let x = 1;"), ("cell-2", "1"), ("cell-3", "1")]);
        // A cell inserted at the top shifts every generated name.
        let new = notebook(&[
            ("cell-1", "0"),
            ("cell-2", "let x = 1;"),
            ("cell-3", "1"),
            ("cell-4", "1"),
        ]);
        let matching = match_cells(&old, &new);
        assert_eq!(
            matching.old_of,
            vec![
                None,
                Some(CellId::new(0)),
                Some(CellId::new(2)),
                Some(CellId::new(1))
            ]
        );
        assert_eq!(matching.changed, ids(&[0]));
        assert!(matching.deleted.is_empty());
    }
}
