//! A metering allocator for tests that bound memory (the config fuzz targets): it wraps the
//! system allocator, records per thread the peak of live bytes and the largest single
//! allocation, and refuses any single allocation above a cap, so a test sees an exhaustion as
//! a number (or, above the cap, an abort naming its thread) instead of swapping the host.
//! Install it in a test binary with `#[global_allocator]`; the emperor never uses it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The allocator; see the module comment.
pub struct MeteredAlloc;

/// What one thread allocated while [`measure`] ran a closure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The most bytes that were live at once (allocated by this thread and not yet freed).
    pub peak_live: usize,
    /// The largest single allocation.
    pub largest: usize,
}

thread_local! {
    // const-initialized Cells without destructors: reading them never allocates, so the
    // allocator may use them.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    // Only while `measure` runs: a thread that makes what others free would grow for ever.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

static REFUSE_SINGLE: AtomicUsize = AtomicUsize::new(usize::MAX);
static REFUSE_LIVE: AtomicUsize = AtomicUsize::new(usize::MAX);

/// From now on, an allocation fails when it is larger than `single` bytes or, in [`measure`],
/// would bring its thread's live bytes over `live` (Rust then aborts with "memory allocation of N bytes
/// failed"; the meter first prints the thread's name).
pub fn refuse_above(single: usize, live: usize) {
    REFUSE_SINGLE.store(single, Ordering::Relaxed);
    REFUSE_LIVE.store(live, Ordering::Relaxed);
}

/// Runs `f` with this thread's meter reset; its usage. Memory freed by `f` that was allocated
/// before counts as negative, so the peak is never overstated.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, Usage) {
    LIVE.set(0);
    PEAK.set(0);
    LARGEST.set(0);
    MEASURING.set(true);
    let value = f();
    MEASURING.set(false);
    let usage = Usage {
        peak_live: PEAK.get().max(0) as usize,
        largest: LARGEST.get(),
    };
    (value, usage)
}

fn measuring() -> bool {
    MEASURING.try_with(Cell::get).unwrap_or(false)
}

fn note_alloc(size: usize) {
    if !measuring() {
        return;
    }
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(size as isize);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
    });
}

fn note_free(size: usize) {
    if !measuring() {
        return;
    }
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size as isize)));
}

/// Whether `size` is over the cap; if so, says which thread asked, on stderr, without
/// allocating (a fixed buffer and write(2)).
fn refused(size: usize) -> bool {
    let cap = REFUSE_SINGLE.load(Ordering::Relaxed);
    let live = if measuring() {
        LIVE.try_with(Cell::get).unwrap_or(0).max(0) as usize
    } else {
        0
    };
    let live_cap = REFUSE_LIVE.load(Ordering::Relaxed);
    if size <= cap && live.saturating_add(size) <= live_cap {
        return false;
    }
    let mut buffer = FixedBuffer::default();
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    let _ = std::fmt::Write::write_fmt(
        &mut buffer,
        format_args!(
            "alloc_meter: refused {size} bytes ({live} live; caps {cap} and {live_cap}) in thread '{name}'\n"
        ),
    );
    let text = buffer.as_bytes();
    let _ = crate::sys::write(2, text);
    true
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged (or returns
// null, which the GlobalAlloc contract allows for a failed allocation); the bookkeeping touches
// only const thread-locals and an atomic, never the heap.
unsafe impl GlobalAlloc for MeteredAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        note_alloc(layout.size());
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires of it.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        note_alloc(layout.size());
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: `ptr` was allocated by `System` (through us) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if refused(new_size) {
            return std::ptr::null_mut();
        }
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: `ptr` was allocated by `System` (through us) with `layout`; the caller
        // guarantees `new_size` is valid for it.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// A message buffer on the stack: the allocator must not allocate to report.
struct FixedBuffer {
    bytes: [u8; 256],
    len: usize,
}

impl Default for FixedBuffer {
    fn default() -> Self {
        FixedBuffer {
            bytes: [0; 256],
            len: 0,
        }
    }
}

impl FixedBuffer {
    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl std::fmt::Write for FixedBuffer {
    /// Keeps what fits; a long thread name is cut, not an error.
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_peak_and_largest_of_this_thread() {
        // Not installed as the global allocator in this binary: exercise the bookkeeping.
        note_alloc(1000); // not measuring: not counted
        let ((), usage) = measure(|| {
            note_alloc(100);
            note_alloc(50);
            note_free(100);
            note_alloc(10);
        });
        assert_eq!(
            usage,
            Usage {
                peak_live: 150,
                largest: 100
            }
        );
        let mut buffer = FixedBuffer::default();
        std::fmt::Write::write_str(&mut buffer, &"x".repeat(300)).unwrap();
        assert_eq!(buffer.as_bytes().len(), 256);
    }
}
