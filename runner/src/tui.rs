//! The terminal side of `cellrun watch`: keys, and one status line per cell
//! updated in place.
//!
//! Only plain ANSI sequences are used (cursor up, erase to the end of the
//! screen, colours through [`Style`]), so the screen works over ssh and in
//! any terminal emulator; no alternate screen is taken, so the last state
//! stays in the scrollback when the watch ends.

use std::io::{self, BufRead, IsTerminal, Read};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use executor_core::{CellId, ErrorKind, Status};
use scheduler::{Hooks, Priority};

use crate::commands::Loaded;
use crate::json::compact;
use crate::output::{cells, excerpt, format_duration, render_summary, RunHeader, Sink, Style};

/// A command from the keyboard, or from a line on stdin when it is not a
/// terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    /// `r`: run the stale cells.
    RunStale,
    /// `q`: quit.
    Quit,
}

/// The terminal's settings before the watch changed them.
pub(crate) struct TerminalMode {
    original: libc::termios,
}

impl TerminalMode {
    /// Puts the terminal back as it was.
    pub(crate) fn restore(&self) {
        // SAFETY: `original` came from `tcgetattr` on the same descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.original);
        }
    }
}

/// Reads commands from stdin on a thread of its own and hands each to `send`.
///
/// On a terminal, single keys count (`r`, `q`) without Enter and without
/// echo; Ctrl-C still raises SIGINT. Otherwise each line is a command
/// (`r` or `q`), and the end of stdin ends nothing. Returns the terminal's
/// original mode when it was changed, to be restored before exiting.
pub(crate) fn listen_keys(send: impl Fn(Key) + Send + 'static) -> Option<TerminalMode> {
    let stdin = io::stdin();
    let mode = if stdin.is_terminal() {
        single_keys()
    } else {
        None
    };
    let by_key = mode.is_some();
    let _ = thread::Builder::new()
        .name("cellrun-keys".into())
        .spawn(move || {
            let stdin = io::stdin();
            if by_key {
                for byte in stdin.lock().bytes() {
                    let Ok(byte) = byte else { return };
                    match byte {
                        b'r' | b'R' => send(Key::RunStale),
                        b'q' | b'Q' => send(Key::Quit),
                        _ => {}
                    }
                }
            } else {
                for line in stdin.lock().lines() {
                    let Ok(line) = line else { return };
                    match line.trim() {
                        "r" => send(Key::RunStale),
                        "q" => send(Key::Quit),
                        _ => {}
                    }
                }
            }
        });
    mode
}

/// Turns off line buffering and echo on the terminal on stdin.
fn single_keys() -> Option<TerminalMode> {
    // SAFETY: `termios` is plain data; `tcgetattr` fills it or fails.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a valid pointer.
    if unsafe { libc::tcgetattr(libc::STDIN_FILENO, &mut original) } != 0 {
        return None;
    }
    let mut keys = original;
    keys.c_lflag &= !(libc::ICANON | libc::ECHO);
    keys.c_cc[libc::VMIN] = 1;
    keys.c_cc[libc::VTIME] = 0;
    // SAFETY: a valid descriptor and settings derived from its own.
    if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &keys) } != 0 {
        return None;
    }
    Some(TerminalMode { original })
}

/// The terminal's size as (columns, rows), or 80 × 24 when unknown.
fn terminal_size() -> (usize, usize) {
    // SAFETY: `winsize` is plain data, filled by the ioctl or left zeroed.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    let columns = if ok && size.ws_col > 0 {
        size.ws_col
    } else {
        80
    };
    let rows = if ok && size.ws_row > 0 {
        size.ws_row
    } else {
        24
    };
    (usize::from(columns), usize::from(rows))
}

/// Where a cell stands, as its status line shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not run yet.
    New,
    Queued,
    Running,
    Ok,
    Error,
    Cancelled,
    Interrupted,
    Stale,
}

impl State {
    /// The mark, its colour and the word.
    fn looks(self) -> (&'static str, &'static str, &'static str) {
        match self {
            State::New => (" ", "2", ""),
            State::Queued => ("·", "2", "queued"),
            State::Running => ("▶", "36", "running"),
            State::Ok => ("✓", "32", "ok"),
            State::Error => ("✗", "31", "error"),
            State::Cancelled => ("○", "33", "cancelled"),
            State::Interrupted => ("■", "35", "interrupted"),
            State::Stale => ("~", "33", "stale"),
        }
    }
}

/// One cell's line.
#[derive(Clone, Debug)]
struct Row {
    name: String,
    state: State,
    /// The compact output, or the error.
    detail: String,
    /// The error excerpt, already styled, one entry per line.
    excerpt: Vec<String>,
    /// How long the last run took, or when the running cell started.
    duration: Option<Duration>,
    started: Option<Instant>,
    cached: bool,
}

impl Row {
    fn new(name: &str) -> Row {
        Row {
            name: name.to_owned(),
            state: State::New,
            detail: String::new(),
            excerpt: Vec::new(),
            duration: None,
            started: None,
            cached: false,
        }
    }
}

/// What is on the screen, shared with the hooks and the redraw thread.
struct Board {
    sink: Sink,
    style: Style,
    title: String,
    rows: Vec<Row>,
    footer: String,
    notice: Option<String>,
    /// Lines drawn last time, to move back over.
    drawn: usize,
    dirty: bool,
    closed: bool,
}

/// The status block of `cellrun watch` on a terminal: a title, one line per
/// cell (ok / error / stale / running / cancelled / interrupted / queued)
/// with its compact output or error, the excerpt under a failing cell, and
/// a summary of the last run. A thread redraws it at most every 50 ms while
/// something changed, and every half second while a cell runs.
pub(crate) struct Screen {
    shared: Arc<(Mutex<Board>, Condvar)>,
}

/// How often the redraw thread looks for changes.
const FRAME: Duration = Duration::from_millis(50);

impl Screen {
    pub(crate) fn new(sink: Sink, style: Style, notebook: &str, lazy: bool) -> Screen {
        let mode = if lazy { " (lazy)" } else { "" };
        let title = format!(
            "{} {notebook}{mode}  {}",
            style.paint("1", "cellrun watch"),
            style.paint("2", "r: run stale · q: quit · Ctrl-C: interrupt")
        );
        let board = Board {
            sink,
            style,
            title,
            rows: Vec::new(),
            footer: String::new(),
            notice: None,
            drawn: 0,
            dirty: true,
            closed: false,
        };
        let shared = Arc::new((Mutex::new(board), Condvar::new()));
        let redraw = shared.clone();
        let _ = thread::Builder::new()
            .name("cellrun-screen".into())
            .spawn(move || {
                let (lock, wake) = &*redraw;
                let mut board = lock.lock().unwrap_or_else(PoisonError::into_inner);
                let mut last = Instant::now();
                loop {
                    board = wake
                        .wait_timeout(board, FRAME)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    if board.closed {
                        return;
                    }
                    let running = board.rows.iter().any(|row| row.state == State::Running);
                    if board.dirty || (running && last.elapsed() >= Duration::from_millis(500)) {
                        board.draw();
                        last = Instant::now();
                    }
                }
            });
        Screen { shared }
    }

    fn with(&self, f: impl FnOnce(&mut Board)) {
        let mut board = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut board);
        board.dirty = true;
    }

    /// Shows the cells of a newly loaded version; `old_of` maps each cell
    /// to the row it continues (empty for the first version).
    pub(crate) fn show_version(&self, loaded: &Loaded, old_of: &[Option<CellId>]) {
        self.with(|board| {
            let old = std::mem::take(&mut board.rows);
            board.rows = loaded
                .notebook
                .cells()
                .iter()
                .enumerate()
                .map(|(index, cell)| {
                    match old_of
                        .get(index)
                        .copied()
                        .flatten()
                        .and_then(|id| old.get(id.index()))
                    {
                        Some(row) => Row {
                            name: cell.name().to_owned(),
                            ..row.clone()
                        },
                        None => Row::new(cell.name()),
                    }
                })
                .collect();
            board.notice = None;
        });
    }

    /// Shows `notice` under the cells until the next version loads.
    pub(crate) fn notice(&self, notice: &str) {
        self.with(|board| board.notice = Some(notice.to_owned()));
    }

    /// Marks the stale cells that are not shown as interrupted already.
    pub(crate) fn mark_stale(&self, stale: &[bool]) {
        self.with(|board| {
            for (row, stale) in board.rows.iter_mut().zip(stale) {
                if *stale && !matches!(row.state, State::Interrupted | State::Cancelled) {
                    row.state = State::Stale;
                }
            }
        });
    }

    /// Shows the run of `order` about to start and adds the hooks that
    /// follow it.
    pub(crate) fn attach(
        &self,
        hooks: &mut Hooks,
        header: &RunHeader,
        order: &[CellId],
        stale: &[bool],
    ) {
        self.mark_stale(stale);
        self.with(|board| {
            for id in order {
                if let Some(row) = board.rows.get_mut(id.index()) {
                    row.state = State::Queued;
                }
            }
            board.footer = format!("running {}", cells(order.len()));
        });
        let screen = self.shared.clone();
        hooks.on_pre_execution(Priority::Normal, move |cell| {
            let mut board = screen.0.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(row) = board.rows.get_mut(cell.id().index()) {
                row.state = State::Running;
                row.started = Some(Instant::now());
            }
            board.dirty = true;
        });
        let screen = self.shared.clone();
        let names = header.names.clone();
        let text = header.text.clone();
        let notebook = header.notebook.clone();
        hooks.on_post_execution(Priority::Normal, move |outcome| {
            let mut board = screen.0.lock().unwrap_or_else(PoisonError::into_inner);
            let style = board.style;
            let Some(row) = board.rows.get_mut(outcome.cell.id().index()) else {
                return;
            };
            row.state = match outcome.status {
                Status::Ok => State::Ok,
                Status::Error => State::Error,
                Status::Cancelled => State::Cancelled,
                Status::Interrupted => State::Interrupted,
            };
            row.started = None;
            row.duration = outcome.evaluated.then_some(outcome.duration);
            row.cached = outcome.result.cached;
            row.excerpt.clear();
            row.detail = match &outcome.result.error {
                None if !outcome.result.output.is_unit() => compact(&outcome.result.output, 200),
                None => outcome
                    .result
                    .stdout
                    .lines()
                    .last()
                    .map(|line| format!("│ {line}"))
                    .unwrap_or_default(),
                Some(error) => {
                    let mut detail = format!("{}: {}", error.kind, error.message);
                    if error.kind != ErrorKind::Cancelled {
                        if let Some(name) = error.blamed.and_then(|id| names.get(id.index())) {
                            detail.push_str(&format!(" (blames `{name}`)"));
                        }
                        row.excerpt = excerpt(error, &text, &notebook, style)
                            .lines()
                            .map(str::to_owned)
                            .collect();
                    }
                    detail
                }
            };
            board.dirty = true;
        });
        let screen = self.shared.clone();
        let started = Instant::now();
        hooks.on_finish(Priority::Final, move |summary| {
            let mut board = screen.0.lock().unwrap_or_else(PoisonError::into_inner);
            let summary = render_summary(summary, started.elapsed(), board.style);
            board.footer = format!("{}; watching for changes", summary.trim_end());
            board.dirty = true;
            screen.1.notify_one();
        });
    }

    /// Draws the final state and stops redrawing.
    pub(crate) fn close(&self) {
        let mut board = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner);
        board.draw();
        board.closed = true;
        self.shared.1.notify_one();
    }
}

impl Board {
    /// Redraws the block in place: back to its first line, erase to the end
    /// of the screen, print every line cut to the terminal's width.
    fn draw(&mut self) {
        let (columns, rows) = terminal_size();
        let style = self.style;
        let width = self
            .rows
            .iter()
            .map(|row| row.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(28);
        let mut lines = vec![self.title.clone()];
        for row in &self.rows {
            let (mark, color, word) = row.state.looks();
            let time = if row.cached {
                "cached".to_owned()
            } else if let Some(started) = row.started {
                format_duration(started.elapsed())
            } else {
                row.duration.map(format_duration).unwrap_or_default()
            };
            let mut line = format!(
                "{} {:<width$} {} {}",
                style.paint(color, mark),
                row.name,
                style.paint(color, &format!("{word:<11}")),
                style.paint("2", &format!("{time:>9}")),
            );
            if !row.detail.is_empty() {
                line.push_str("  ");
                let detail = if row.state == State::Error {
                    style.paint("31", &row.detail)
                } else {
                    row.detail.clone()
                };
                line.push_str(&detail);
            }
            lines.push(line);
            lines.extend(row.excerpt.iter().cloned());
        }
        if let Some(notice) = &self.notice {
            lines.push(style.paint("33", notice));
        }
        lines.push(self.footer.clone());
        // Keep the block on the screen, so moving back over it works.
        let room = rows.saturating_sub(1).max(2);
        if lines.len() > room {
            let hidden = lines.len() - (room - 1);
            let footer = lines.pop().unwrap_or_default();
            lines.truncate(room - 2);
            lines.push(style.paint(
                "2",
                &format!("… {hidden} more lines (a taller terminal shows them)"),
            ));
            lines.push(footer);
        }
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\r\x1b[{}A", self.drawn));
        }
        text.push_str("\x1b[J");
        for line in &lines {
            text.push_str(&cut(line, columns.saturating_sub(1)));
            text.push('\n');
        }
        self.sink.write(&text);
        self.drawn = lines.len();
        self.dirty = false;
    }
}

/// `line` cut to `width` visible characters; escape sequences count for
/// nothing and a cut line ends with a reset.
fn cut(line: &str, width: usize) -> String {
    let mut out = String::with_capacity(line.len());
    let mut visible = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            out.push(c);
            if chars.peek() == Some(&'[') {
                for next in chars.by_ref() {
                    out.push(next);
                    if next != '[' && ('\x40'..='\x7e').contains(&next) {
                        break;
                    }
                }
            }
            continue;
        }
        if visible == width {
            if line.contains('\x1b') {
                out.push_str("\x1b[0m");
            }
            return out;
        }
        // A cell's output must not move the cursor.
        out.push(if c.is_control() { ' ' } else { c });
        visible += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_counts_visible_characters_only() {
        assert_eq!(cut("abcdef", 4), "abcd");
        assert_eq!(cut("ab", 4), "ab");
        assert_eq!(cut("\x1b[32m✓\x1b[0m abc", 3), "\x1b[32m✓\x1b[0m a\x1b[0m");
        assert_eq!(cut("a\tb\x07c", 10), "a b c");
    }
}
