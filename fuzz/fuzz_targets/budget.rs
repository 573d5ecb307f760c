//! The memory bound under hostile traffic (input format and checks:
//! `wstap_fuzz::budget`), with a counting global allocator.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::Ordering;

use libfuzzer_sys::fuzz_target;
use wstap_fuzz::budget::LIVE;

struct Counting;

// SAFETY: forwards to the system allocator, counting what is live.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            LIVE.fetch_add(new, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static A: Counting = Counting;

fuzz_target!(|data: &[u8]| wstap_fuzz::budget::run(data));
