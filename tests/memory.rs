//! Memory is bounded by live flows, not by capture size: the analyzer's
//! state follows the connections that are open and is empty at the end.

mod common;

use wstap::capture::file::FileSource;
use wstap::capture::{Next, PacketSource};
use wstap::cli::Args;

#[test]
fn state_follows_live_connections_and_empties_at_the_end() {
    for name in ["nginx-bench", "nginx-healthy", "nginx-mass-close", "nginx-idle-60", "chain-haproxy-nginx"] {
        let path = common::capture(name);
        let args = Args { read: Some(path.to_string_lossy().into()), ..Args::default() };
        let mut p = wstap::app::build_pipeline(&args).unwrap();
        let mut src = FileSource::open(path.to_str().unwrap(), None).unwrap();
        let lt = src.linktype();
        let mut max_ratio = 0.0f64;
        let mut sink = wstap::sink::Collect::default();
        while let Next::Packet(pk) = src.next_packet().unwrap() {
            let missing = pk.missing();
            p.packet(lt, pk.ts, pk.data, missing);
            p.drain_to(&mut sink).unwrap();
            let live = p.flows.live().max(1) as f64;
            let (conns, txns, ws, sessions) = p.analysis.correlation.live_state();
            assert!(conns <= p.flows.live(), "{name}: analyzer knows more connections than are live");
            assert!(ws <= p.flows.live() + 16, "{name}: upgraded state outlives its connections");
            max_ratio = max_ratio.max((txns + sessions) as f64 / live);
        }
        assert!(max_ratio <= 4.0, "{name}: {max_ratio} requests+sessions per live connection");
        p.finish();
        assert_eq!(p.analysis.correlation.live_state(), (0, 0, 0, 0), "{name}: state left after the end");
        assert_eq!(p.flows.live(), 0);
    }
}

/// Many short sessions (the real nginx-healthy capture: 3 WebSocket
/// sessions of 0.3 s and plain requests through the proxy, both hops)
/// replayed as `copies` copies, each with its own addresses, a copy
/// starting every 0.7 s (about 4 copies at once; each with WebSocket keys
/// of its own). Returns the most state the
/// analysis retained at any packet: connections, requests and sessions in
/// correlation, and the bytes of records held for time order; and the
/// sessions reported, to show the copies were analysed.
fn short_sessions_peak(copies: u32) -> (usize, usize, u64) {
    let r = replay(copies, 700_000);
    (r.peak_state, r.peak_held, r.sessions)
}

/// What [`replay`] saw.
struct Replay {
    peak_state: usize,
    peak_held: usize,
    sessions: u64,
    /// Records written with an earlier stamp than one written before them.
    out_of_order: usize,
    written_early: u64,
}

/// The template replayed as `copies` copies, one starting every
/// `spacing_us` of packet time.
fn replay(copies: u32, spacing_us: i64) -> Replay {
    let path = common::capture("nginx-healthy");
    let mut src = FileSource::open(path.to_str().unwrap(), None).unwrap();
    let lt = src.linktype();
    let mut tpl: Vec<(i64, Vec<u8>)> = Vec::new();
    while let Next::Packet(pk) = src.next_packet().unwrap() {
        tpl.push((pk.ts.0, pk.data.to_vec()));
    }
    let t0 = tpl[0].0;
    let key_of_accept =
        common::wskeys::key_of_accept(tpl.iter().flat_map(|(_, d)| common::wskeys::keys(d)).map(|(_, k)| k));
    let args = Args::default();
    let mut p = wstap::app::build_pipeline(&args).unwrap();
    let mut sink = wstap::sink::Collect::default();
    // (time, copy, index): copies merged in time order.
    let mut heap = std::collections::BinaryHeap::new();
    for k in 0..copies {
        heap.push(std::cmp::Reverse((k as i64 * spacing_us + tpl[0].0 - t0, k, 0usize)));
    }
    let (mut peak_state, mut peak_held) = (0usize, 0usize);
    let (mut out_of_order, mut last_stamp) = (0usize, i64::MIN);
    let mut buf = Vec::new();
    while let Some(std::cmp::Reverse((t, k, i))) = heap.pop() {
        buf.clear();
        buf.extend_from_slice(&tpl[i].1);
        // Ethernet + IPv4 (the template's): both addresses 10.k.k.k.
        common::readdress_v4(&mut buf, [10u8, (k >> 16) as u8, (k >> 8) as u8, k as u8]);
        common::rekey(&mut buf, k, &key_of_accept);
        p.packet(lt, wstap::time::Ts(1_800_000_000_000_000 + t), &buf, 0);
        p.drain_to(&mut sink).unwrap();
        for r in sink.0.drain(..) {
            let stamp = wstap::analysis::order::stamp_us(&r);
            out_of_order += usize::from(stamp < last_stamp);
            last_stamp = last_stamp.max(stamp);
        }
        let (conns, txns, ws, sessions) = p.analysis.correlation.live_state();
        peak_state = peak_state.max(conns + txns + ws + sessions);
        peak_held = peak_held.max(p.analysis.held_bytes());
        if i + 1 < tpl.len() {
            heap.push(std::cmp::Reverse((k as i64 * spacing_us + tpl[i + 1].0 - t0, k, i + 1)));
        }
    }
    let written_early = p.analysis.written_early_for_memory();
    let s = p.finish();
    Replay { peak_state, peak_held, sessions: s.sessions, out_of_order, written_early }
}

/// A dense capture: a copy every 0.5 ms (each with WebSocket keys of its
/// own), 4,500 sessions ending within about a second of packet time. Records wait for time order until
/// nothing pending can precede them, taken at each tick (once a second of
/// packet time) and whenever 4 MiB more have come since
/// (`analysis::order::RELEASE_EVERY_BYTES`): what is held stays near that
/// rather than growing with what a second brings, and the records still
/// come out in time order.
#[test]
fn records_held_for_time_order_stay_bounded_within_a_second() {
    let r = replay(1500, 500);
    assert_eq!(r.sessions, 4500, "every copy's sessions were found");
    assert_eq!((r.out_of_order, r.written_early), (0, 0), "records in time order, none written early");
    let bound = 2 * wstap::analysis::order::RELEASE_EVERY_BYTES;
    assert!(r.peak_held <= bound, "{} bytes of records held (at most {bound})", r.peak_held);
    eprintln!("peak held: {} bytes", r.peak_held);
}

/// Retained state does not grow with the length of the capture: ten times
/// as many short sessions (15,000 against 1,500) are analysed with the same
/// peak of retained connections, requests, sessions and held records.
#[test]
fn retained_state_is_flat_with_many_short_sessions() {
    let (state_s, held_s, sessions_s) = short_sessions_peak(500);
    let (state_l, held_l, sessions_l) = short_sessions_peak(5000);
    assert_eq!((sessions_s, sessions_l), (1500, 15000), "every copy's sessions were found");
    assert!(state_s > 0 && held_s > 0);
    assert!(
        state_l <= state_s + state_s / 10 && held_l <= held_s + held_s / 10,
        "retained state grew with capture length: {state_s} -> {state_l} objects, {held_s} -> {held_l} held bytes"
    );
    eprintln!("peak retained: {state_s} -> {state_l} objects, {held_s} -> {held_l} held bytes");
}
