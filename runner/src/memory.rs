//! Counting the process's heap, so a runaway cell is stopped before the
//! machine runs out of memory.
//!
//! Rhai's own size limits walk a container after every mutation, which makes
//! building large arrays quadratic, so cellrun leaves them off and bounds the
//! heap instead: the global allocator counts live bytes, and the run's
//! watchdog stops the running cell when the count goes over the limit.

use std::alloc::{GlobalAlloc, Layout};

use mimalloc::MiMalloc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// mimalloc, counting the bytes it holds.
///
/// mimalloc rather than the system allocator: compiling a notebook makes
/// many small allocations, and a 20,000-cell run took 88 ms instead of
/// 131 ms with it (best of 8, alternating).
pub(crate) struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `MiMalloc` with the same arguments and only
// adds bookkeeping on an atomic counter; on a failed allocation it may end
// the process (see `last_words`), which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let pointer = unsafe { MiMalloc.alloc(layout) };
        if pointer.is_null() {
            crate::last_words::allocation_failed(layout.size());
        } else {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let pointer = unsafe { MiMalloc.alloc_zeroed(layout) };
        if pointer.is_null() {
            crate::last_words::allocation_failed(layout.size());
        } else {
            HELD.fetch_add(layout.size(), Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { MiMalloc.dealloc(pointer, layout) };
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let moved = unsafe { MiMalloc.realloc(pointer, layout, new_size) };
        if moved.is_null() {
            crate::last_words::allocation_failed(new_size);
        } else {
            HELD.fetch_add(new_size, Ordering::Relaxed);
            HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }
}

/// The heap bytes the process holds now.
pub(crate) fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The memory the process holds now, wherever it was allocated: the
/// larger of the counted heap and the process's resident anonymous memory
/// (resident pages less those backed by files), which covers what libraries
/// allocate outside this allocator, such as an embedded Python's objects.
///
/// Reads `/proc/self/statm` through a file kept open, one `pread` per call;
/// where it cannot be read, the counted heap alone.
pub(crate) fn held_by_process() -> usize {
    use std::os::unix::fs::FileExt;
    static STATM: std::sync::OnceLock<Option<(std::fs::File, usize)>> = std::sync::OnceLock::new();
    let statm = STATM.get_or_init(|| {
        // SAFETY: sysconf only reads a configuration value.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let file = std::fs::File::open("/proc/self/statm").ok()?;
        Some((file, usize::try_from(page).ok().filter(|page| *page > 0)?))
    });
    let anonymous = statm.as_ref().and_then(|(file, page)| {
        let mut buffer = [0_u8; 128];
        let read = file.read_at(&mut buffer, 0).ok()?;
        let text = std::str::from_utf8(&buffer[..read]).ok()?;
        let mut fields = text.split_ascii_whitespace().skip(1);
        let resident: usize = fields.next()?.parse().ok()?;
        let shared: usize = fields.next()?.parse().ok()?;
        Some(resident.saturating_sub(shared) * page)
    });
    held().max(anonymous.unwrap_or(0))
}

/// The default memory limit: a quarter of the memory the process may use
/// (so a cell that doubles a value past the limit in one step still fits),
/// at least 512 MiB; 4 GiB when that memory is unknown.
///
/// The memory the process may use is the machine's, or its control group's
/// limit when that is lower (in a container).
pub(crate) fn default_limit_mib() -> u64 {
    let machine = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
            let kib = line.split_whitespace().nth(1)?.parse::<u64>().ok()?;
            Some(kib * 1024)
        });
    let group = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    });
    let usable = match (machine, group) {
        (Some(machine), Some(group)) => Some(machine.min(group)),
        (machine, group) => machine.or(group),
    };
    match usable {
        Some(bytes) => ((bytes / 4) >> 20).max(512),
        None => 4096,
    }
}
