//! The table with hand-built segments: reuse, orientation, expiry, and
//! what the budget gives up first.

use super::*;
use crate::decode::{decode_ip, flags as F};
use crate::event::EventKind;

fn seg(src: ([u8; 4], u16), dst: ([u8; 4], u16), seq: u32, ack: u32, fl: u8, payload: &[u8]) -> Vec<u8> {
    let mut tcp = etherparse::TcpHeader::new(src.1, dst.1, seq, 65535);
    tcp.syn = fl & F::SYN != 0;
    tcp.ack = fl & F::ACK != 0;
    tcp.fin = fl & F::FIN != 0;
    tcp.rst = fl & F::RST != 0;
    tcp.acknowledgment_number = ack;
    let mut out = Vec::new();
    etherparse::PacketBuilder::ipv4(src.0, dst.0, 64).tcp_header(tcp).write(&mut out, payload).unwrap();
    out
}

const C: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
const S: ([u8; 4], u16) = ([10, 0, 0, 2], 80);

fn feed(t: &mut FlowTable, pkts: &[Vec<u8>]) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, p) in pkts.iter().enumerate() {
        let s = decode_ip(p, 0, 0).unwrap();
        t.packet(Ts(1_000_000 + i as i64 * 1000), &s, &mut out);
    }
    out
}

fn opens(ev: &[Event]) -> Vec<(u64, String)> {
    ev.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Open { flow, .. } => Some((e.conn, flow.to_string())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reused_four_tuple_is_a_new_connection() {
    let mut t = FlowTable::new(Limits::default());
    let ev = feed(
        &mut t,
        &[
            seg(C, S, 100, 0, F::SYN, b""),
            seg(S, C, 500, 101, F::SYN | F::ACK, b""),
            seg(C, S, 101, 501, F::ACK | F::FIN, b""),
            seg(S, C, 501, 102, F::ACK | F::FIN, b""),
            // Same ports again, new ISN.
            seg(C, S, 9000, 0, F::SYN, b""),
            seg(S, C, 7000, 9001, F::SYN | F::ACK, b""),
        ],
    );
    let o = opens(&ev);
    assert_eq!(o.len(), 2);
    assert_ne!(o[0].0, o[1].0);
    assert_eq!(t.stats.flows, 2);
    assert!(ev.iter().any(|e| e.conn == o[0].0 && matches!(e.kind, EventKind::Close(_))));
}

#[test]
fn midstream_start_is_oriented_by_the_request() {
    // First packet seen is the server's data; then the client's request.
    let mut t = FlowTable::new(Limits::default());
    let ev = feed(
        &mut t,
        &[
            seg(C, S, 1000, 2000, F::ACK, b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"),
            seg(S, C, 2000, 1029, F::ACK, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ],
    );
    assert_eq!(opens(&ev)[0].1, "10.0.0.1:40000->10.0.0.2:80");
    // Orientation from the response when the server speaks first.
    let mut t = FlowTable::new(Limits::default());
    let ev = feed(
        &mut t,
        &[seg(([10, 0, 0, 2], 8080), ([10, 0, 0, 1], 9000), 1, 1, F::ACK, b"HTTP/1.1 101 Switching Protocols\r\n\r\n")],
    );
    assert_eq!(opens(&ev)[0].1, "10.0.0.1:9000->10.0.0.2:8080");
}

#[test]
fn refused_and_stray_packets() {
    let mut t = FlowTable::new(Limits::default());
    let ev = feed(&mut t, &[seg(C, S, 100, 0, F::SYN, b""), seg(S, C, 0, 101, F::RST | F::ACK, b"")]);
    let end = ev.iter().find_map(|e| match &e.kind {
        EventKind::Close(s) => Some(s.end),
        _ => None,
    });
    assert_eq!(end, Some(EndReason::Refused));
    // A lone RST or pure ACK for an unknown connection creates nothing.
    let mut t = FlowTable::new(Limits::default());
    let ev = feed(&mut t, &[seg(S, C, 5, 5, F::RST, b""), seg(C, S, 5, 5, F::ACK, b"")]);
    assert!(ev.is_empty());
    assert_eq!(t.stats.strays, 2);
}

#[test]
fn unanswered_syn_expires_by_packet_time() {
    let mut t = FlowTable::new(Limits::default());
    let mut out = Vec::new();
    let p = seg(C, S, 100, 0, F::SYN, b"");
    t.packet(Ts(0), &decode_ip(&p, 0, 0).unwrap(), &mut out);
    // Unrelated traffic 45 s later advances packet time.
    let q = seg(([10, 0, 0, 9], 1), ([10, 0, 0, 8], 2), 1, 0, F::SYN, b"");
    t.packet(Ts(45_000_000), &decode_ip(&q, 0, 0).unwrap(), &mut out);
    let end = out.iter().find_map(|e| match &e.kind {
        EventKind::Close(s) => Some(s.end),
        _ => None,
    });
    assert_eq!(end, Some(EndReason::Unanswered));
    assert_eq!(t.live(), 1);
}

#[test]
fn a_full_table_gives_the_oldest_unanswered_syn_up_for_a_new_one() {
    let mut t = FlowTable::new(Limits { max_flows: 2, ..Limits::default() });
    let ev = feed(
        &mut t,
        &[
            seg(C, S, 1, 0, F::SYN, b""),
            seg(S, C, 9, 2, F::SYN | F::ACK, b""),
            seg(([10, 0, 0, 3], 1), S, 1, 0, F::SYN, b""),
            seg(([10, 0, 0, 4], 1), S, 1, 0, F::SYN, b""),
        ],
    );
    assert_eq!(t.live(), 2);
    let e = t.budget().stats.evicted;
    assert_eq!((e.half_open, e.established, e.upgraded), (1, 0, 0));
    let ends: Vec<EndReason> = ev
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Close(s) => Some(s.end),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [EndReason::Evicted]);
    // The established connection is still there; the newest SYN too.
    assert_eq!(t.class_counts(), [1, 1, 0]);
}

#[test]
fn buffers_are_taken_from_big_holders_before_a_pending_request() {
    // 1 MiB budget: a quarter for buffers.
    let mut t = FlowTable::new(Limits { memcap: 1 << 20, ..Limits::default() });
    // An old keep-alive connection with one request awaiting its answer
    // (a long poll): a small holder.
    let lp = ([10, 0, 0, 5], 5000);
    let mut pkts = vec![
        seg(lp, S, 1, 0, F::SYN, b""),
        seg(S, lp, 9, 2, F::SYN | F::ACK, b""),
        seg(lp, S, 2, 10, F::ACK | F::PSH, b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n"),
    ];
    // Then hogs: data held ahead of a hole, 64 KB each.
    for i in 0..20u8 {
        let h = ([10, 1, 0, i], 6000);
        pkts.push(seg(h, S, 1, 0, F::SYN, b""));
        pkts.push(seg(S, h, 9, 2, F::SYN | F::ACK, b""));
        for k in 0..16u32 {
            pkts.push(seg(h, S, 100 + k * 4000, 10, F::ACK, &[b'x'; 4000]));
        }
    }
    let ev = feed(&mut t, &pkts);
    let b = t.budget();
    assert!(b.buffers <= b.buffer_cap(), "{} over {}", b.buffers, b.buffer_cap());
    assert!(b.stats.shed_connections > 0);
    // The long poll is still followed, its request still waiting.
    let lp_id = opens(&ev).iter().find(|o| o.1.starts_with("10.0.0.5")).unwrap().0;
    assert!(!ev.iter().any(|e| e.conn == lp_id && matches!(e.kind, EventKind::Close(_))));
    assert!(t.map.values().any(|c| c.id == lp_id && c.charged_buffers > 0));
}

#[test]
fn established_connections_outlive_a_syn_flood() {
    let mut t = FlowTable::new(Limits { max_flows: 100, ..Limits::default() });
    let mut pkts = vec![seg(C, S, 1, 0, F::SYN, b""), seg(S, C, 9, 2, F::SYN | F::ACK, b"")];
    for i in 0..10_000u32 {
        pkts.push(seg(([11, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1000), S, i, 0, F::SYN, b""));
    }
    // A real handshake in the middle of the flood is still seen.
    pkts.push(seg(([10, 9, 9, 9], 5555), S, 77, 0, F::SYN, b""));
    for i in 0..40u32 {
        pkts.push(seg(([12, 0, 0, i as u8], 1000), S, i, 0, F::SYN, b""));
    }
    pkts.push(seg(S, ([10, 9, 9, 9], 5555), 500, 78, F::SYN | F::ACK, b""));
    let ev = feed(&mut t, &pkts);
    assert!(t.live() <= 100);
    assert_eq!(t.budget().stats.evicted.established, 0);
    assert!(t.budget().stats.evicted.half_open >= 9_900);
    let established = ev.iter().filter(|e| matches!(e.kind, EventKind::Established)).count();
    assert_eq!(established, 2, "both real handshakes were seen");
    assert_eq!(t.class_counts()[1], 2);
}

/// Flow-sharded live capture reads the runtime numbers from one table that
/// mirrors the workers': what one table that saw every packet counts
/// (connections, classes, evictions, stats), as sums.
#[test]
fn a_mirror_counts_what_its_parts_count_as_one_table_would() {
    let limits = Limits { max_flows: 2, ..Limits::default() };
    let (a, b) = (
        vec![seg(C, S, 1, 0, F::SYN, b""), seg(S, C, 9, 2, F::SYN | F::ACK, b"")],
        vec![
            seg(([10, 0, 0, 3], 1), S, 1, 0, F::SYN, b""),
            seg(([10, 0, 0, 4], 1), S, 1, 0, F::SYN, b""),
            seg(([10, 0, 0, 5], 1), S, 1, 0, F::SYN, b""),
        ],
    );
    let (mut ta, mut tb) = (FlowTable::new(limits), FlowTable::new(limits));
    feed(&mut ta, &a);
    feed(&mut tb, &b);
    let mut m = FlowTable::new(limits);
    // Numbers taken twice: the second replaces the first, never adds to it.
    m.mirror(&[ta.counts(), tb.counts()]);
    m.mirror(&[ta.counts(), tb.counts()]);
    assert_eq!(m.class_counts(), [2, 1, 0]);
    assert_eq!(m.stats.flows, ta.stats.flows + tb.stats.flows);
    assert!(m.stats.flows >= 3);
    assert_eq!(m.budget().stats.evicted.half_open, 1);
    assert_eq!(m.max_flows(), 4);
    assert_eq!(m.budget().total(), ta.budget().total() + tb.budget().total());
    assert!(m.budget().total() > 0);
    assert_eq!(m.budget().peak, ta.budget().peak + tb.budget().peak);
}

#[test]
fn the_hash_is_keyed_so_colliding_tuples_cannot_be_built_offline() {
    // The same 300 connections (a SYN each, as a spoofed flood sends them)
    // land in different slots of two tables: each hash has a random seed
    // of its own, so no list of 4-tuples collides in every run. What the
    // tables report does not depend on it: the same connections, ended in
    // the same order.
    let pkts: Vec<Vec<u8>> =
        (0..300u16).map(|i| seg(([10, 1, (i >> 8) as u8, i as u8], 40000 + i), S, 1, 0, F::SYN, b"")).collect();
    let (mut a, mut b) = (FlowTable::new(Limits::default()), FlowTable::new(Limits::default()));
    let (ea, eb) = (feed(&mut a, &pkts), feed(&mut b, &pkts));
    assert_eq!(a.map.len(), 300);
    let slots = |t: &FlowTable| t.map.keys().copied().collect::<Vec<_>>();
    assert_ne!(slots(&a), slots(&b), "two tables placed 300 connections alike: the flow hash is not keyed");
    assert_eq!(opens(&ea), opens(&eb));
    let ended = |t: &mut FlowTable| {
        let mut out = Vec::new();
        t.finish(Ts(9_000_000), &mut out);
        out.iter().filter(|e| matches!(e.kind, EventKind::Close(_))).map(|e| e.conn).collect::<Vec<_>>()
    };
    let (fa, fb) = (ended(&mut a), ended(&mut b));
    assert_eq!(fa.len(), 300);
    assert_eq!(fa, fb);
}
