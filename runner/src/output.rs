//! What a run prints: hooks that write human lines or NDJSON events.

use std::io::{self, BufWriter, IsTerminal, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use executor_core::{
    CancelToken, Cell, CellError, Concurrency, Executor, ForeignValue, Globals, Notebook,
    RunContext, RunOutcome, RunResult, Status,
};
use scheduler::{CellOutcome, DataflowGraph, Hooks, Priority, RunSummary};
use serde::Serialize;

use crate::json::{compact, to_json_bounded};

/// Standard output, buffered, flushed at least every 50 ms by a background
/// thread and at once on a terminal, so lines appear as cells finish
/// without a system call per line on long runs.
#[derive(Clone)]
pub(crate) struct Sink {
    inner: Arc<SinkInner>,
    /// Events kept in memory for a report, when this sink records.
    record: Option<Arc<Record>>,
}

/// The NDJSON lines a recording sink kept.
struct Record {
    lines: Mutex<String>,
    /// Whether events also go to standard output.
    echo: bool,
}

struct SinkInner {
    out: Mutex<BufWriter<Stdout>>,
    dirty: AtomicBool,
    terminal: bool,
    /// The first write error; nothing is written after it.
    failed: OnceLock<io::Error>,
    /// Called once, at the first write error (it stops the run).
    on_failure: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl SinkInner {
    /// Records the outcome of a write or flush; the first error stops
    /// further output and calls the failure callback.
    fn check(&self, outcome: io::Result<()>) {
        if let Err(error) = outcome {
            if self.failed.set(error).is_ok() {
                if let Some(callback) = self.on_failure.get() {
                    callback();
                }
            }
        }
    }

    fn flush_now(&self) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if self.failed.get().is_none() {
            let outcome = out.flush();
            self.check(outcome);
        }
    }
}

/// A write error on standard output: the caller exits quietly on a closed
/// pipe and with this message otherwise.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {source}")]
pub(crate) struct StdoutError {
    #[source]
    pub(crate) source: io::Error,
}

/// Writes `text` to standard output at once, for the commands that print
/// one document.
pub(crate) fn print(text: &str) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| StdoutError { source })
}

impl Sink {
    pub(crate) fn new() -> Sink {
        let stdout = io::stdout();
        let terminal = stdout.is_terminal();
        let inner = Arc::new(SinkInner {
            out: Mutex::new(BufWriter::with_capacity(64 << 10, stdout)),
            dirty: AtomicBool::new(false),
            terminal,
            failed: OnceLock::new(),
            on_failure: OnceLock::new(),
        });
        if !terminal {
            let weak = Arc::downgrade(&inner);
            let _ = thread::Builder::new()
                .name("cellrun-flush".into())
                .spawn(move || loop {
                    thread::sleep(Duration::from_millis(50));
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.dirty.swap(false, Ordering::AcqRel) {
                        inner.flush_now();
                    }
                });
        }
        Sink {
            inner,
            record: None,
        }
    }

    /// A sink on the same standard output that keeps every event in
    /// memory (see [`Sink::recorded`]) and also prints it when `echo`.
    pub(crate) fn recording(&self, echo: bool) -> Sink {
        Sink {
            inner: self.inner.clone(),
            record: Some(Arc::new(Record {
                lines: Mutex::new(String::new()),
                echo,
            })),
        }
    }

    /// The NDJSON events recorded so far, taken out of the sink.
    pub(crate) fn take_recorded(&self) -> String {
        self.record.as_ref().map_or_else(String::new, |record| {
            std::mem::take(&mut *record.lines.lock().unwrap_or_else(PoisonError::into_inner))
        })
    }

    pub(crate) fn is_terminal(&self) -> bool {
        self.inner.terminal
    }

    /// Writes `text` (whole lines).
    pub(crate) fn write(&self, text: &str) {
        let mut out = self
            .inner
            .out
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.inner.failed.get().is_some() {
            return;
        }
        let mut outcome = out.write_all(text.as_bytes());
        if self.inner.terminal {
            outcome = outcome.and_then(|()| out.flush());
        } else {
            self.inner.dirty.store(true, Ordering::Release);
        }
        self.inner.check(outcome);
    }

    /// Calls `callback` once, at the first write error on standard output
    /// (a closed pipe, a full disk).
    pub(crate) fn on_failure(&self, callback: impl Fn() + Send + Sync + 'static) {
        let _ = self.inner.on_failure.set(Box::new(callback));
    }

    /// The first write error, if writing failed; it ends the run.
    pub(crate) fn take_error(&self) -> Option<StdoutError> {
        self.flush();
        let error = self.inner.failed.get()?;
        Some(StdoutError {
            source: io::Error::new(error.kind(), error.to_string()),
        })
    }

    /// Writes one JSON event as a line.
    pub(crate) fn event<T: Serialize>(&self, event: &T) {
        let mut line = serde_json::to_string(event).unwrap_or_else(|error| {
            serde_json::json!({"event": "warning", "message": format!("cannot encode event: {error}")}).to_string()
        });
        line.push('\n');
        if let Some(record) = &self.record {
            record
                .lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&line);
            if !record.echo {
                return;
            }
        }
        self.write(&line);
    }

    /// Writes out what is buffered now (the sink stays usable: `watch`
    /// writes one run after another).
    pub(crate) fn flush(&self) {
        self.inner.flush_now();
    }

    /// Flushes what is buffered, for a process about to exit from any state
    /// (an allocation just failed): allocates nothing, and waits for the
    /// output lock only a little.
    pub(crate) fn flush_for_exit(&self) {
        self.with_lock_for_exit(|out| {
            let _ = out.flush();
        });
    }

    /// Writes `bytes` and flushes, like [`Sink::flush_for_exit`].
    pub(crate) fn write_for_exit(&self, bytes: &[u8]) {
        self.with_lock_for_exit(|out| {
            let _ = out.get_mut().write_all(bytes);
            let _ = out.get_mut().flush();
        });
    }

    fn with_lock_for_exit(&self, f: impl FnOnce(&mut BufWriter<Stdout>)) {
        for _ in 0..1000 {
            match self.inner.out.try_lock() {
                Ok(mut out) => return f(&mut out),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    return f(&mut poisoned.into_inner())
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    thread::sleep(Duration::from_micros(100));
                }
            }
        }
    }
}

/// Whether to colour: only on a terminal, and never under `NO_COLOR`.
pub(crate) fn use_color(stdout: &Sink) -> bool {
    stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// ANSI styles, or nothing when colour is off.
#[derive(Clone, Copy)]
pub(crate) struct Style {
    color: bool,
}

impl Style {
    pub(crate) fn new(color: bool) -> Style {
        Style { color }
    }

    pub(crate) fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// The facts of a run the printers need.
pub(crate) struct RunHeader {
    pub(crate) notebook: String,
    pub(crate) executor: String,
    /// How many cells may run at once.
    pub(crate) jobs: usize,
    pub(crate) lifecycles: Vec<String>,
    pub(crate) cells: Vec<String>,
    /// Every cell's name, by cell id.
    pub(crate) names: Arc<Vec<String>>,
    /// The notebook's text, for error excerpts.
    pub(crate) text: Arc<str>,
    /// The executor that could not be constructed, and why, when the
    /// built-in one runs instead.
    pub(crate) fallback: Option<(String, String)>,
    /// When the run started: `at_ms` fields count from here.
    pub(crate) clock: RunClock,
    /// The same moment as an ISO 8601 UTC date.
    pub(crate) started_at: String,
    /// The notebook's language (`rhai`, `python`).
    pub(crate) language: &'static str,
    /// Every cell in file order, for reports.
    pub(crate) sources: Vec<CellSourceJson>,
}

/// A cell as `run_started` lists it in `notebook_cells`.
#[derive(Serialize)]
pub(crate) struct CellSourceJson {
    pub(crate) name: String,
    pub(crate) line: u32,
    pub(crate) code: String,
    pub(crate) parents: Vec<String>,
}

#[derive(Serialize)]
struct Fallback<'a> {
    from: &'a str,
    reason: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "event", rename = "run_started")]
struct RunStarted<'a> {
    notebook: &'a str,
    executor: &'a str,
    jobs: usize,
    lifecycles: &'a [String],
    cells: &'a [String],
    fallback: Option<Fallback<'a>>,
    started_at: &'a str,
    language: &'a str,
    notebook_cells: &'a [CellSourceJson],
}

#[derive(Serialize)]
#[serde(tag = "event", rename = "cell_started")]
struct CellStarted<'a> {
    cell: &'a str,
    at_ms: f64,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    kind: &'a str,
    message: &'a str,
    line: Option<u32>,
    blamed: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "event", rename = "cell_finished")]
struct CellFinished<'a> {
    cell: &'a str,
    status: &'a str,
    output: serde_json::Value,
    /// Only when the output was too large to render whole.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    output_truncated: bool,
    stdout: &'a str,
    error: Option<ErrorJson<'a>>,
    duration_ms: f64,
    cached: bool,
    at_ms: f64,
    /// A rich form of the output, when the executor gave one.
    display: Option<DisplayJson<'a>>,
}

/// The `display` of a `cell_finished` event: a MIME type and its data.
#[derive(Serialize)]
struct DisplayJson<'a> {
    mime: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "event", rename = "warning")]
pub(crate) struct Warning<'a> {
    pub(crate) message: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "event", rename = "run_finished")]
struct RunFinished {
    ok: usize,
    error: usize,
    cancelled: usize,
    interrupted: usize,
    duration_ms: f64,
}

/// Adds the hooks that print NDJSON events, and prints `run_started`.
pub(crate) fn json_hooks(hooks: &mut Hooks, stdout: &Sink, header: &RunHeader) {
    stdout.event(&RunStarted {
        notebook: &header.notebook,
        executor: &header.executor,
        jobs: header.jobs,
        lifecycles: &header.lifecycles,
        cells: &header.cells,
        fallback: header
            .fallback
            .as_ref()
            .map(|(from, reason)| Fallback { from, reason }),
        started_at: &header.started_at,
        language: header.language,
        notebook_cells: &header.sources,
    });
    let out = stdout.clone();
    let names = header.names.clone();
    let started = header.clock.clone();
    hooks.on_post_execution(Priority::Normal, move |outcome| {
        let error = outcome.result.error.as_ref().map(|error| ErrorJson {
            kind: error.kind.as_str(),
            message: &error.message,
            line: error.line,
            blamed: error
                .blamed
                .and_then(|id| names.get(id.index()))
                .map(String::as_str),
        });
        let (output, output_truncated) = to_json_bounded(&outcome.result.output);
        out.event(&CellFinished {
            cell: outcome.cell.name(),
            status: outcome.status.as_str(),
            output,
            output_truncated,
            stdout: &outcome.result.stdout,
            error,
            duration_ms: millis(outcome.duration),
            cached: outcome.result.cached,
            at_ms: started.ms(),
            display: outcome.result.display.as_ref().map(|display| DisplayJson {
                mime: &display.mime,
                data: &display.data,
            }),
        });
    });
    let out = stdout.clone();
    let started = header.clock.clone();
    hooks.on_finish(Priority::Final, move |summary| {
        out.event(&RunFinished {
            ok: summary.ok,
            error: summary.error,
            cancelled: summary.cancelled,
            interrupted: summary.interrupted,
            duration_ms: started.ms(),
        });
        out.flush();
    });
}

/// Adds the hooks that print human lines (and a progress bar on a terminal
/// during long runs), and prints the first line.
pub(crate) fn human_hooks(hooks: &mut Hooks, stdout: &Sink, header: &RunHeader) {
    let style = Style::new(use_color(stdout));
    let mut first = format!(
        "{} {} ({}) with executor `{}`",
        style.paint("1", "cellrun"),
        terminal_safe(&header.notebook),
        cells(header.cells.len()),
        terminal_safe(&header.executor)
    );
    if !header.lifecycles.is_empty() {
        first.push_str(&format!(
            " and lifecycles {}",
            terminal_safe(&header.lifecycles.join(", "))
        ));
    }
    if header.jobs > 1 {
        first.push_str(&format!(", up to {} cells at a time", header.jobs));
    }
    first.push('\n');
    stdout.write(&first);

    let progress = Progress::new(header.cells.len() as u64);
    let width = header
        .cells
        .iter()
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    let started = Instant::now();
    let pre_progress = progress.clone();
    hooks.on_pre_execution(Priority::Normal, move |cell| {
        pre_progress.starting(cell.name())
    });
    let out = stdout.clone();
    let names = header.names.clone();
    let source = header.text.clone();
    let notebook = header.notebook.clone();
    let post_progress = progress.clone();
    hooks.on_post_execution(Priority::Normal, move |outcome| {
        let text = render_cell(outcome, style, width, &names, &source, &notebook);
        post_progress.suspend(|| out.write(&text));
        post_progress.finished(outcome.cell.name(), outcome.evaluated);
    });
    let out = stdout.clone();
    hooks.on_finish(Priority::Final, move |summary| {
        progress.clear();
        out.write(&render_summary(summary, started.elapsed(), style));
        out.flush();
    });
}

fn render_cell(
    outcome: &CellOutcome<'_>,
    style: Style,
    width: usize,
    names: &[String],
    source: &str,
    notebook: &str,
) -> String {
    let (mark, color) = match outcome.status {
        Status::Ok => ("✓", "32"),
        Status::Error => ("✗", "31"),
        Status::Cancelled => ("○", "33"),
        Status::Interrupted => ("■", "35"),
    };
    let mut text = format!(
        "{} {:<width$}",
        style.paint(color, mark),
        terminal_safe(outcome.cell.name())
    );
    if outcome.result.cached {
        text.push_str(&style.paint("2", &format!(" {:>9}", "cached")));
    } else if outcome.evaluated {
        text.push_str(&style.paint("2", &format!(" {:>9}", format_duration(outcome.duration))));
    } else {
        text.push_str(&format!(" {:>9}", ""));
    }
    match &outcome.result.error {
        None => {
            if !outcome.result.output.is_unit() {
                text.push_str("  ");
                text.push_str(&terminal_safe(&compact(&outcome.result.output, 72)));
            }
        }
        Some(error) => {
            text.push_str("  ");
            text.push_str(&style.paint(
                color,
                &format!("{}: {}", error.kind, terminal_safe(&error.message)),
            ));
            if let Some(blamed) = error
                .blamed
                .filter(|_| error.kind != executor_core::ErrorKind::Cancelled)
            {
                if let Some(name) = names.get(blamed.index()) {
                    text.push_str(&format!(" (blames `{}`)", terminal_safe(name)));
                }
            }
        }
    }
    text.push('\n');
    for line in outcome.result.stdout.lines() {
        text.push_str(&format!(
            "    {} {}\n",
            style.paint("2", "│"),
            terminal_safe(line)
        ));
    }
    if let Some(error) = &outcome.result.error {
        text.push_str(&excerpt(error, source, notebook, style));
    }
    text
}

/// Text a notebook controls, made safe for a terminal: every control
/// character but a tab becomes U+FFFD, so a cell name, a message or a value
/// cannot move the cursor, recolour the runner's lines or retitle the
/// window.
pub(crate) fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    replace_controls(text, "\t")
}

/// [`terminal_safe`] for text of several lines: line breaks stay.
pub(crate) fn terminal_safe_lines(text: &str) -> std::borrow::Cow<'_, str> {
    replace_controls(text, "\t\n")
}

fn replace_controls<'a>(text: &'a str, keep: &str) -> std::borrow::Cow<'a, str> {
    let unsafe_char = |c: char| c.is_control() && !keep.contains(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars()
        .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
        .collect()
}

/// How many characters of a source line an excerpt shows at most.
const EXCERPT_WIDTH: usize = 120;

/// The part of `code` an excerpt shows: at most [`EXCERPT_WIDTH`]
/// characters around 1-based `column`, with `…` where text was cut; and the
/// column within that part.
fn excerpt_window(code: &str, column: Option<u32>) -> (String, Option<usize>) {
    let n_chars = code.chars().count();
    let column = column.map(|column| (column.max(1) as usize).min(n_chars + 1));
    if n_chars <= EXCERPT_WIDTH {
        return (code.to_owned(), column);
    }
    let at = column.unwrap_or(1) - 1;
    let start = at
        .saturating_sub(EXCERPT_WIDTH / 2)
        .min(n_chars - EXCERPT_WIDTH);
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(code.chars().skip(start).take(EXCERPT_WIDTH));
    if start + EXCERPT_WIDTH < n_chars {
        shown.push('…');
    }
    let column = column.map(|column| column - start + usize::from(start > 0));
    (shown, column)
}

/// The notebook line an error points at, with a caret under its column.
pub(crate) fn excerpt(error: &CellError, source: &str, notebook: &str, style: Style) -> String {
    let Some(line) = error.line else {
        return String::new();
    };
    // Errors are few: finding the line on demand beats keeping every line.
    let Some(code) = crate::format::lines(source).nth((line as usize).saturating_sub(1)) else {
        return String::new();
    };
    let (code, column) = excerpt_window(code, error.column);
    let code = terminal_safe(&code);
    let number = line.to_string();
    let pad = " ".repeat(number.len());
    let mut text = format!(
        "    {pad}{} {}:{line}{}\n",
        style.paint("34", "-->"),
        terminal_safe(notebook),
        error
            .column
            .map(|column| format!(":{column}"))
            .unwrap_or_default()
    );
    text.push_str(&format!(
        "    {} {code}\n",
        style.paint("34", &format!("{number} |"))
    ));
    if let Some(column) = column {
        let indent: String = code
            .chars()
            .take(column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        text.push_str(&format!(
            "    {pad} {} {indent}{}\n",
            style.paint("34", "|"),
            style.paint("31", "^")
        ));
    }
    text
}

pub(crate) fn render_summary(summary: &RunSummary, elapsed: Duration, style: Style) -> String {
    let mut parts = vec![style.paint("32", &format!("{} ok", summary.ok))];
    for (count, label, color) in [
        (summary.error, "error", "31"),
        (summary.cancelled, "cancelled", "33"),
        (summary.interrupted, "interrupted", "35"),
    ] {
        if count > 0 {
            parts.push(style.paint(color, &format!("{count} {label}")));
        }
    }
    let head = if summary.was_interrupted {
        "interrupted: "
    } else {
        ""
    };
    format!(
        "{head}{}: {} in {}\n",
        cells(summary.total()),
        parts.join(", "),
        format_duration(elapsed)
    )
}

pub(crate) fn format_duration(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.0} µs")
    } else if micros < 1e6 {
        format!("{:.1} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}

/// How long a run goes before its progress bar shows.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A progress bar on stderr that shows itself only on a terminal, once a
/// run has gone on for a second, with the names of the running cells.
#[derive(Clone)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    shown: Arc<AtomicBool>,
    /// The cells between their pending and completion hooks, in start order.
    running: Arc<Mutex<Vec<String>>>,
}

/// How many characters of running cells' names the bar shows.
const RUNNING_WIDTH: usize = 60;

/// The bar's message: the running cells' names, cut to a width.
fn running_message(running: &[String]) -> String {
    let mut message = String::new();
    for (at, name) in running.iter().enumerate() {
        let name = terminal_safe(name);
        let sep = if at == 0 { "" } else { ", " };
        if message.chars().count() + sep.len() + name.chars().count() > RUNNING_WIDTH {
            message.push_str(&format!(" +{}", running.len() - at));
            break;
        }
        message.push_str(sep);
        message.push_str(&name);
    }
    message
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::hidden(),
            );
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let progress = Progress {
            bar,
            started: Instant::now(),
            shown: Arc::new(AtomicBool::new(false)),
            running: Arc::new(Mutex::new(Vec::new())),
        };
        // A single long cell fires no hook for a while: show the bar from a
        // timer too.
        if progress.bar.is_some() {
            let timer = progress.clone();
            let _ = thread::Builder::new()
                .name("cellrun-progress".into())
                .spawn(move || {
                    thread::sleep(SHOW_AFTER + Duration::from_millis(20));
                    if let Some(bar) = &timer.bar {
                        timer.maybe_show(bar);
                    }
                });
        }
        progress
    }

    fn maybe_show(&self, bar: &indicatif::ProgressBar) {
        if self.started.elapsed() > SHOW_AFTER
            && self
                .shown
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
        }
    }

    fn starting(&self, name: &str) {
        if let Some(bar) = &self.bar {
            self.maybe_show(bar);
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            running.push(name.to_owned());
            bar.set_message(running_message(&running));
        }
    }

    fn finished(&self, name: &str, evaluated: bool) {
        if let Some(bar) = &self.bar {
            if evaluated {
                let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(at) = running.iter().position(|running| running == name) {
                    running.remove(at);
                }
                bar.set_message(running_message(&running));
            }
            bar.inc(1);
            self.maybe_show(bar);
        }
    }

    fn suspend(&self, f: impl FnOnce()) {
        match &self.bar {
            Some(bar) if self.shown.load(Ordering::Relaxed) => bar.suspend(f),
            _ => f(),
        }
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            // A timer that has not shown the bar yet never will.
            let _ = self
                .shown
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
            bar.finish_and_clear();
        }
    }
}

/// Wraps `executor` so that, when a body starts, the last words learn which
/// cell runs on the thread and, with a `sink` (under `--json`), a
/// `cell_started` event is printed.
///
/// The pending hooks run before the lifecycles, which may skip the body;
/// the event is printed here, where the body really starts (on the thread
/// that runs it, through the sink's lock, so lines stay whole).
pub(crate) fn announce_body_start(
    executor: Arc<dyn Executor>,
    sink: Option<&Sink>,
    clock: &RunClock,
) -> Arc<dyn Executor> {
    Arc::new(AnnounceStart {
        inner: executor,
        sink: sink.cloned(),
        clock: clock.clone(),
    })
}

/// An executor that marks and announces each body, and delegates.
struct AnnounceStart {
    inner: Arc<dyn Executor>,
    sink: Option<Sink>,
    clock: RunClock,
}

impl Executor for AnnounceStart {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn execute(&self, cell: &Cell, globals: &mut Globals, token: &CancelToken) -> RunResult {
        let _running = crate::last_words::body_runs(cell);
        if let Some(sink) = &self.sink {
            sink.event(&CellStarted {
                cell: cell.name(),
                at_ms: self.clock.ms(),
            });
        }
        self.inner.execute(cell, globals, token)
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

/// Every cell of `notebook` in file order, with its parents' names.
pub(crate) fn cell_sources(notebook: &Notebook, graph: &DataflowGraph) -> Vec<CellSourceJson> {
    notebook
        .cells()
        .iter()
        .map(|cell| CellSourceJson {
            name: cell.name().to_owned(),
            line: cell.first_line(),
            code: cell.code().to_owned(),
            parents: graph
                .parents(cell.id())
                .iter()
                .map(|parent| notebook.cell(*parent).name().to_owned())
                .collect(),
        })
        .collect()
}

/// When the current run started, shared by everything that stamps its
/// events with `at_ms`; a watch restarts it for each run.
#[derive(Clone)]
pub(crate) struct RunClock(Arc<Mutex<Instant>>);

impl RunClock {
    pub(crate) fn new() -> RunClock {
        RunClock(Arc::new(Mutex::new(Instant::now())))
    }

    /// Starts counting from now.
    pub(crate) fn restart(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Milliseconds since the start, to the microsecond.
    pub(crate) fn ms(&self) -> f64 {
        millis(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .elapsed(),
        )
    }
}

/// A duration in milliseconds, to the microsecond.
fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e3
}

/// "1 cell", "2 cells".
pub(crate) fn cells(count: usize) -> String {
    if count == 1 {
        "1 cell".to_owned()
    } else {
        format!("{count} cells")
    }
}
