//! The `budget` target: the memory bound, not only "no panic". The input
//! drives the hostile traffic model of the integration tests
//! (tests/hostile_gen, `Traffic`) through the whole engine with a small
//! memory budget; the target's counting allocator checks, after every
//! packet, that the heap stays under the budget plus a fixed allowance,
//! and that the budget's own account stays under it.
//!
//! ```text
//! [memcap MiB - 1, low 3 bits][seed u32 LE]
//! then steps [kind u8][repeat u8][r u64 LE][dt u8]
//! ```
//! `kind % 10`: flood, open, head, hole, pipeline, respond, upgrade,
//! frames, fragment, reset (see `Traffic::step`), done `repeat + 1` times
//! (`r` varied each time: short inputs make heavy traffic); `dt`:
//! microseconds of packet time before each of its frames (255: 31 s, so
//! unanswered SYNs and fragments expire).

use std::sync::atomic::{AtomicUsize, Ordering};

use wstap::decode::LinkType;
use wstap::time::Ts;

use crate::Reader;
use crate::hostile_gen::Traffic;

/// Bytes allocated and not freed, kept by the target's global allocator.
pub static LIVE: AtomicUsize = AtomicUsize::new(0);

pub use crate::heap_check::ALLOWANCE;

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let memcap_mb = 1 + (r.u8() & 7) as u64;
    let seed = r.u32() as u64;
    let args = wstap::cli::Args { memcap: Some(format!("{memcap_mb}M")), ..Default::default() };
    let mut p = wstap::app::build_pipeline(&args).expect("pipeline");
    let limit = p.flows.budget().limit;
    let base = LIVE.load(Ordering::Relaxed);
    let mut t = Traffic::new(seed);
    let mut now = 1_700_000_000_000_000i64;
    let mut sink = wstap::sink::Collect::default();
    while !r.is_empty() {
        let kind = r.u8();
        let repeat = r.u8() as u64 + 1;
        let rnd = r.u32() as u64 | (r.u32() as u64) << 32;
        let dt = match r.u8() {
            255 => 31_000_000,
            d => d as i64,
        };
        for i in 0..repeat {
            t.step(kind, rnd.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        }
        for f in std::mem::take(&mut t.frames) {
            now += dt;
            p.packet(LinkType::ETHERNET, Ts(now), &f, 0);
            p.drain_to(&mut sink).expect("collect");
            sink.0.clear();
            let b = p.flows.budget();
            assert!(b.total() <= limit + (2 << 20), "accounted {} over the budget {limit}", b.total());
            let live = LIVE.load(Ordering::Relaxed).saturating_sub(base);
            assert!(live <= limit as usize + ALLOWANCE, "{live} bytes allocated, budget {limit}");
        }
    }
    p.finish();
    p.drain_to(&mut sink).expect("collect");
    let b = p.flows.budget();
    assert_eq!((b.state, b.buffers), (0, 0), "every charge released at the end");
}
