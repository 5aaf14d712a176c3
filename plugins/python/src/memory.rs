//! The run's memory limit inside CPython: one allocation larger than the
//! limit is refused before it takes any memory.
//!
//! The runner stops a Python cell when the process's memory goes over the
//! limit, but it looks only every few milliseconds and the stop takes effect
//! between bytecodes: a single call such as `b"x" * 10**11` would take all
//! that memory first, and the machine with it. Hooks on CPython's `MEM` and
//! `OBJ` allocator domains (the ones Python objects come from; large objects
//! reach the raw allocator through them) refuse any single request above
//! the limit, so the cell gets `MemoryError` at once, and remember the size
//! for the error message. Smaller allocations pass straight through to the
//! allocators that were installed before.

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use pyo3::ffi::{self, PyMemAllocatorDomain, PyMemAllocatorEx};

/// The largest single allocation let through, in bytes.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// The size of the latest refused allocation, 0 when none since it was read.
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Sets the run's memory limit, in bytes; allocations above it are refused
/// from now on.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The run's memory limit, when one is set.
pub fn limit() -> Option<usize> {
    Some(LIMIT.load(Ordering::Relaxed)).filter(|limit| *limit != usize::MAX)
}

/// The size of the allocation refused since the last call, if any.
pub fn take_refused() -> Option<usize> {
    Some(REFUSED.swap(0, Ordering::Relaxed)).filter(|size| *size != 0)
}

fn refuses(size: usize) -> bool {
    if size > LIMIT.load(Ordering::Relaxed) {
        REFUSED.store(size, Ordering::Relaxed);
        true
    } else {
        false
    }
}

/// Wraps the `MEM` and `OBJ` domains' allocators with the limit check.
///
/// # Safety
/// The interpreter is initialised, this thread holds the GIL, and it is
/// called once per process: the hooks forward to the allocators they
/// replace, which stay valid for the process's life.
pub unsafe fn install() {
    for domain in [
        PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
        PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
    ] {
        // SAFETY: a zeroed allocator is what PyMem_GetAllocator fills.
        let mut original: PyMemAllocatorEx = unsafe { std::mem::zeroed() };
        // SAFETY: as the caller promises; `original` is a valid pointer.
        unsafe { ffi::PyMem_GetAllocator(domain, &mut original) };
        // The hooks' context: the allocator they forward to, for ever.
        let inner: &'static PyMemAllocatorEx = Box::leak(Box::new(original));
        let mut hooked = PyMemAllocatorEx {
            ctx: ptr::from_ref(inner).cast_mut().cast::<c_void>(),
            malloc: Some(hooked_malloc),
            calloc: Some(hooked_calloc),
            realloc: Some(hooked_realloc),
            free: Some(hooked_free),
        };
        // SAFETY: as the caller promises; CPython copies the struct.
        unsafe { ffi::PyMem_SetAllocator(domain, &mut hooked) };
    }
}

/// The allocator a hook forwards to.
fn inner(ctx: *mut c_void) -> &'static PyMemAllocatorEx {
    // SAFETY: every hook's context is the leaked allocator of `install`.
    unsafe { &*ctx.cast::<PyMemAllocatorEx>() }
}

extern "C" fn hooked_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    if refuses(size) {
        return ptr::null_mut();
    }
    let inner = inner(ctx);
    inner
        .malloc
        .map_or(ptr::null_mut(), |malloc| malloc(inner.ctx, size))
}

extern "C" fn hooked_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    if refuses(nelem.saturating_mul(elsize)) {
        return ptr::null_mut();
    }
    let inner = inner(ctx);
    inner
        .calloc
        .map_or(ptr::null_mut(), |calloc| calloc(inner.ctx, nelem, elsize))
}

extern "C" fn hooked_realloc(ctx: *mut c_void, old: *mut c_void, size: usize) -> *mut c_void {
    if refuses(size) {
        return ptr::null_mut();
    }
    let inner = inner(ctx);
    inner
        .realloc
        .map_or(ptr::null_mut(), |realloc| realloc(inner.ctx, old, size))
}

extern "C" fn hooked_free(ctx: *mut c_void, old: *mut c_void) {
    let inner = inner(ctx);
    if let Some(free) = inner.free {
        free(inner.ctx, old);
    }
}
