//! What a run says when an allocation fails.
//!
//! The process cannot go on after the allocator returned nothing, and Rust
//! would abort it, losing every line stdout still buffers, the
//! `cell_finished` of cells that had finished among them. So the counting
//! allocator calls [`allocation_failed`] first: it flushes stdout, writes
//! a last `run_finished` (under `--json`, with the counts so far and an
//! `aborted` object) or a message on stderr, and exits with status 2.
//!
//! Nothing here allocates once armed: messages are written through
//! fixed-size buffers, and the output lock is only tried, never waited for
//! long.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use executor_core::{Cell, Status};
use scheduler::{Hooks, Priority};

use crate::output::Sink;

/// What the last words need, set once a run's output is ready.
struct Armed {
    sink: Sink,
    json: bool,
    names: Arc<Vec<String>>,
    /// ok, error, cancelled, interrupted.
    counts: [AtomicUsize; 4],
    /// The index of the cell running now, plus one (`0`: none).
    running: AtomicUsize,
}

static ARMED: OnceLock<Armed> = OnceLock::new();
static DYING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The index of the cell whose body runs on this thread, plus one
    /// (`0`: none); with several cells running, it names the right one.
    static BODY: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Records that `cell`'s body runs on this thread until the returned
/// value is dropped, so that a failed allocation in it names that cell,
/// also when several cells run at once.
pub(crate) fn body_runs(cell: &Cell) -> impl Drop {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = BODY.try_with(|body| body.set(self.0));
        }
    }
    Restore(BODY.with(|body| body.replace(cell.id().index() + 1)))
}

/// Arms the last words for a run printing to `sink`, and adds the hooks that
/// keep its counts.
pub(crate) fn arm(hooks: &mut Hooks, sink: &Sink, json: bool, names: Arc<Vec<String>>) {
    let _ = ARMED.set(Armed {
        sink: sink.clone(),
        json,
        names,
        counts: Default::default(),
        running: AtomicUsize::new(0),
    });
    hooks.on_pre_execution(Priority::Early, |cell| {
        if let Some(armed) = ARMED.get() {
            armed
                .running
                .store(cell.id().index() + 1, Ordering::Relaxed);
        }
    });
    hooks.on_post_execution(Priority::Late, |outcome| {
        if let Some(armed) = ARMED.get() {
            let slot = match outcome.status {
                Status::Ok => 0,
                Status::Error => 1,
                Status::Cancelled => 2,
                Status::Interrupted => 3,
            };
            armed.counts[slot].fetch_add(1, Ordering::Relaxed);
            armed.running.store(0, Ordering::Relaxed);
        }
    });
}

/// Called by the allocator when an allocation of `bytes` failed. Returns
/// only when no run is armed (the caller then lets Rust abort); otherwise
/// ends the process.
pub(crate) fn allocation_failed(bytes: usize) {
    let Some(armed) = ARMED.get() else {
        return;
    };
    if DYING.swap(true, Ordering::SeqCst) {
        // Another thread is saying the last words; wait for its exit.
        loop {
            // SAFETY: pause has no preconditions; it returns on a signal.
            unsafe { libc::pause() };
        }
    }
    armed.sink.flush_for_exit();
    let running = match BODY.try_with(std::cell::Cell::get) {
        Ok(body) if body > 0 => body,
        _ => armed.running.load(Ordering::Relaxed),
    };
    let cell = running
        .checked_sub(1)
        .and_then(|index| armed.names.get(index))
        .map(String::as_str);
    let mut buffer = [0u8; 1024];
    let mut out = std::io::Cursor::new(&mut buffer[..]);
    if armed.json {
        let count = |slot: usize| armed.counts[slot].load(Ordering::Relaxed);
        let _ = write!(
            out,
            r#"{{"event":"run_finished","ok":{},"error":{},"cancelled":{},"interrupted":{},"aborted":{{"reason":"out of memory","bytes":{bytes},"cell":"#,
            count(0),
            count(1) + usize::from(cell.is_some()),
            count(2),
            count(3),
        );
        let _ = match cell {
            Some(name) => serde_json::to_writer(&mut out, name),
            None => out.write_all(b"null").map_err(serde_json::Error::io),
        };
        let _ = out.write_all(b"}}\n");
        let written = out.position() as usize;
        armed.sink.write_for_exit(&buffer[..written]);
        out = std::io::Cursor::new(&mut buffer[..]);
    }
    let _ = write!(
        out,
        "cellrun: out of memory: an allocation of {bytes} bytes failed"
    );
    if let Some(name) = cell {
        let _ = out.write_all(b" while cell `");
        for c in name.chars() {
            let c = if c.is_control() { '\u{fffd}' } else { c };
            let _ = write!(out, "{c}");
        }
        let _ = out.write_all(b"` ran");
    }
    let _ = out.write_all(b"; the results above are complete up to there\n");
    let written = out.position() as usize;
    let _ = std::io::stderr().write_all(&buffer[..written]);
    // SAFETY: _exit ends the process at once; nothing runs after it.
    unsafe { libc::_exit(2) };
}
