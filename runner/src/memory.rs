//! Counting the process's heap, so a runaway cell is stopped before the
//! machine runs out of memory.
//!
//! Rhai's own size limits walk a container after every mutation, which makes
//! building large arrays quadratic, so cellrun leaves them off and bounds the
//! heap instead: the global allocator counts live bytes, and the run's
//! watchdog stops the running cell when the count goes over the limit.
//! It also counts per running cell (what the cell's thread allocated less
//! what it freed), so that with several cells running the one that grew
//! the heap is the one stopped.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

use mimalloc::MiMalloc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};

/// mimalloc, counting the bytes it holds.
///
/// mimalloc rather than the system allocator: compiling a notebook makes
/// many small allocations, and a 20,000-cell run took 88 ms instead of
/// 131 ms with it (best of 8, alternating).
pub(crate) struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many cells can be counted at once; a run has at most one per job.
const SLOTS: usize = 256;

/// A counter on a cache line of its own, so threads counting side by side
/// do not slow each other down.
#[repr(align(64))]
struct Counter(AtomicIsize);

/// The bytes each running cell's thread allocated, less those it freed.
static CELL_BYTES: [Counter; SLOTS] = [const { Counter(AtomicIsize::new(0)) }; SLOTS];
static SLOT_TAKEN: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

thread_local! {
    /// The slot of the cell running on this thread (`SLOTS`: none).
    /// Constant-initialised without a destructor, so the allocator may
    /// read it at any time.
    static SLOT: Cell<usize> = const { Cell::new(SLOTS) };
}

/// Adds `delta` bytes to the process's count and to the running cell's.
#[inline]
fn count(delta: isize) {
    if delta >= 0 {
        HELD.fetch_add(delta as usize, Ordering::Relaxed);
    } else {
        HELD.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
    let slot = SLOT.try_with(Cell::get).unwrap_or(SLOTS);
    if let Some(bytes) = CELL_BYTES.get(slot) {
        bytes.0.fetch_add(delta, Ordering::Relaxed);
    }
}

/// Counting per cell, for the run's watchdog.
pub(crate) const CELL_MEMORY: scheduler::CellMemory = scheduler::CellMemory {
    enter,
    held_by,
    leave,
};

/// Starts counting what this thread allocates under a free slot.
fn enter() -> Option<usize> {
    let slot = SLOT_TAKEN.iter().position(|taken| {
        taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })?;
    CELL_BYTES[slot].0.store(0, Ordering::Relaxed);
    let _ = SLOT.try_with(|current| current.set(slot));
    Some(slot)
}

fn held_by(slot: usize) -> isize {
    CELL_BYTES
        .get(slot)
        .map_or(0, |bytes| bytes.0.load(Ordering::Relaxed))
}

fn leave(slot: usize) {
    let _ = SLOT.try_with(|current| {
        if current.get() == slot {
            current.set(SLOTS);
        }
    });
    if let Some(taken) = SLOT_TAKEN.get(slot) {
        taken.store(false, Ordering::Release);
    }
}

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
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let pointer = unsafe { MiMalloc.alloc_zeroed(layout) };
        if pointer.is_null() {
            crate::last_words::allocation_failed(layout.size());
        } else {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { MiMalloc.dealloc(pointer, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let moved = unsafe { MiMalloc.realloc(pointer, layout, new_size) };
        if moved.is_null() {
            crate::last_words::allocation_failed(new_size);
        } else {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

/// The heap bytes the process holds now.
pub(crate) fn held() -> usize {
    HELD.load(Ordering::Relaxed)
}

/// The smallest memory limit of this process's runs, in bytes (0 while
/// none is known): below it, [`held_by_process`] may answer with a cheap
/// upper bound instead of the exact figure.
static SMALLEST_LIMIT: AtomicUsize = AtomicUsize::new(0);

/// The memory limit in bytes of a run given `--max-memory max_memory_mib`
/// (the default limit without it); noted, so that the probe knows the
/// bound it is compared with.
pub(crate) fn limit_bytes(max_memory_mib: Option<u64>) -> usize {
    let bytes = max_memory_mib
        .unwrap_or_else(default_limit_mib)
        .checked_mul(1 << 20)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .unwrap_or(usize::MAX);
    let _ = SMALLEST_LIMIT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |smallest| {
        (smallest == 0 || bytes < smallest).then_some(bytes)
    });
    bytes
}

/// The most memory the process has held at once (its peak resident set,
/// file-backed pages included), from one `getrusage` call.
///
/// On Linux the calling thread's usage has the same `ru_maxrss` as the
/// process's (the address space's peak, which its threads share) without
/// adding up the CPU time of every thread, which the process's needs: a
/// call each time a cell starts and ends.
fn peak_resident() -> Option<usize> {
    #[cfg(target_os = "linux")]
    const WHO: libc::c_int = libc::RUSAGE_THREAD;
    #[cfg(not(target_os = "linux"))]
    const WHO: libc::c_int = libc::RUSAGE_SELF;
    // SAFETY: a zeroed rusage is a valid value for getrusage to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(WHO, &mut usage) } != 0 {
        return None;
    }
    // Kibibytes on Linux, bytes on macOS.
    let unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    usize::try_from(usage.ru_maxrss).ok()?.checked_mul(unit)
}

/// The memory the process holds now, wherever it was allocated: the
/// larger of the counted heap and the process's resident anonymous memory
/// (resident pages less those backed by files), which covers what libraries
/// allocate outside this allocator, such as an embedded Python's objects.
///
/// Reads `/proc/self/statm` through a file kept open, one `pread` per call;
/// where it cannot be read, the counted heap alone. While the process's
/// peak resident set and the counted heap are both within every run's
/// memory limit ([`limit_bytes`]), it answers the larger of those two
/// instead, an upper bound that a `getrusage` call gives at a fraction of
/// the cost: it is compared only with bounds at or above that limit, and
/// every such comparison comes out as with the exact figure.
pub(crate) fn held_by_process() -> usize {
    use std::os::unix::fs::FileExt;
    let smallest = SMALLEST_LIMIT.load(Ordering::Relaxed);
    if smallest != 0 {
        if let Some(peak) = peak_resident() {
            let bound = peak.max(held());
            if bound <= smallest {
                return bound;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::peak_resident;

    /// The peak read on one thread counts what another thread touched: the
    /// probe runs on the cell thread while cells may allocate elsewhere.
    #[test]
    fn the_peak_read_on_one_thread_counts_memory_another_thread_touched() {
        const SIZE: usize = 256 << 20;
        let before = peak_resident().expect("getrusage answers");
        std::thread::spawn(|| {
            let mut block = vec![0_u8; SIZE];
            // Touch every page, so it is resident, not only reserved.
            for page in block.chunks_mut(4096) {
                page[0] = 1;
            }
            std::hint::black_box(&block);
        })
        .join()
        .expect("the allocating thread ends");
        let after = peak_resident().expect("getrusage answers");
        assert!(
            after >= before.max(SIZE),
            "peak {after} bytes after touching {SIZE} bytes on another thread (before: {before})"
        );
    }
}
