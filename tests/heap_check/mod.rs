//! The heap checked against the memory budget: a counting global
//! allocator and the allowance for the engine's bounded caches. Shared by
//! tests/hostile_memory.rs and the fuzzer's `budget` target (fuzz/src/lib.rs
//! includes this file), each of which installs it as its global allocator
//! over a counter of its own:
//!
//! ```ignore
//! static LIVE: AtomicUsize = AtomicUsize::new(0);
//! #[global_allocator]
//! static A: Counting = Counting(&LIVE);
//! ```
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The engine's bounded caches outside the budget (latency histograms,
/// per-path statistics, detector memory, relay samples, event and record
/// buffers).
pub const ALLOWANCE: usize = 6 << 20;

/// The system allocator, counting the bytes allocated and not freed.
pub struct Counting(pub &'static AtomicUsize);

// SAFETY: forwards to the system allocator, counting what is live.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            self.0.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        self.0.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            self.0.fetch_sub(l.size(), Ordering::Relaxed);
            self.0.fetch_add(new, Ordering::Relaxed);
        }
        q
    }
}
