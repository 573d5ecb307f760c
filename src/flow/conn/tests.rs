//! The state machine, state by state (smoltcp's layout: a section per
//! state, segments sent at explicit times, events read back as short
//! lines).

use super::*;
use crate::flow::key::Endpoint;
use crate::flow::seq::Seq;

const CLIENT: ([u8; 4], u16) = ([10, 0, 0, 1], 40000);
const SERVER: ([u8; 4], u16) = ([10, 0, 0, 2], 80);
const SYN: u8 = flags::SYN;
const ACK: u8 = flags::ACK;
const FIN: u8 = flags::FIN;
const RST: u8 = flags::RST;

fn ep(e: ([u8; 4], u16)) -> Endpoint {
    Endpoint::new(e.0.into(), e.1)
}

/// One connection on the wire: segments in at explicit times (ms), the
/// events they produced out, one short line each.
struct Wire {
    conn: Option<Conn>,
    scratch: Vec<ProtoEvent>,
    keys: crate::proto::tls::Keys,
}

impl Wire {
    fn new() -> Wire {
        Wire { conn: None, scratch: Vec::new(), keys: Default::default() }
    }

    /// `from` sends `to` a segment at `ms`; the events it caused.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        ms: i64,
        from: ([u8; 4], u16),
        to: ([u8; 4], u16),
        fl: u8,
        seq: u32,
        ack: u32,
        payload: &[u8],
    ) -> Vec<String> {
        let seg = Segment {
            src: ep(from),
            dst: ep(to),
            seq: Seq::new(seq),
            ack: Seq::new(ack),
            flags: fl,
            window: 65535,
            payload,
            missing: 0,
        };
        let ts = Ts(ms * 1000);
        let mut out = Vec::new();
        let c = self.conn.get_or_insert_with(|| Conn::new(1, ts, &seg, false, &self.keys, &mut out));
        c.segment(ts, &seg, &mut out, &mut self.scratch);
        out.iter().map(describe).collect()
    }

    /// From the client (the side at port 40000).
    fn c(&mut self, ms: i64, fl: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<String> {
        self.send(ms, CLIENT, SERVER, fl, seq, ack, payload)
    }

    /// From the server (port 80).
    fn s(&mut self, ms: i64, fl: u8, seq: u32, ack: u32, payload: &[u8]) -> Vec<String> {
        self.send(ms, SERVER, CLIENT, fl, seq, ack, payload)
    }

    fn conn(&self) -> &Conn {
        self.conn.as_ref().expect("a segment was sent")
    }

    fn state(&self) -> TcpState {
        self.conn().state()
    }

    /// Ends the connection from outside (expiry, eviction, end of input).
    fn end(&mut self, ms: i64, reason: EndReason) -> Vec<String> {
        let mut out = Vec::new();
        let c = self.conn.as_mut().expect("a segment was sent");
        c.close(Ts(ms * 1000), reason, &mut out, &mut self.scratch);
        out.iter().map(describe).collect()
    }

    /// The three-way handshake (client ISN 100, server ISN 500).
    fn handshake(&mut self) {
        self.c(0, SYN, 100, 0, b"");
        self.s(1, SYN | ACK, 500, 101, b"");
        self.c(2, ACK, 101, 501, b"");
    }
}

fn side(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "client",
        Dir::ToClient => "server",
    }
}

/// An event as a short line: "open 10.0.0.1:40000->10.0.0.2:80 syn",
/// "fin client", "close reset established", "request GET /a".
fn describe(e: &Event) -> String {
    match &e.kind {
        EventKind::Open { flow, syn } => format!("open {flow}{}", if *syn { " syn" } else { "" }),
        EventKind::Established => "established".into(),
        EventKind::Fin { dir } => format!("fin {}", side(*dir)),
        EventKind::Rst { dir } => format!("rst {}", side(*dir)),
        EventKind::Close(s) => format!(
            "close {}{}{}",
            s.end.name(),
            if s.established { " established" } else { "" },
            if s.syn { " syn" } else { "" }
        ),
        EventKind::Request(r) => format!("request {} {}", r.method, r.target),
        EventKind::Response(r) => format!("response {}", r.status),
        EventKind::Anomaly { what, .. } => format!("anomaly {what}"),
        other => format!("{other:?}"),
    }
}

const OPEN: &str = "open 10.0.0.1:40000->10.0.0.2:80";
const OPEN_SYN: &str = "open 10.0.0.1:40000->10.0.0.2:80 syn";

#[test]
fn steps_are_taken_in_order_and_a_rst_ends_the_segment() {
    let seg = |fl: u8, payload: &'static [u8]| Segment {
        src: ep(CLIENT),
        dst: ep(SERVER),
        seq: Seq::new(1),
        ack: Seq::new(1),
        flags: fl,
        window: 0,
        payload,
        missing: 0,
    };
    let steps = |fl, p, st| Steps::of(&seg(fl, p), st).collect::<Vec<_>>();
    assert_eq!(steps(SYN, b"", TcpState::SynSent), [Step::Syn]);
    assert_eq!(steps(SYN | ACK, b"x", TcpState::Partial), [Step::SynAck, Step::Data, Step::Ack]);
    assert_eq!(steps(SYN | ACK, b"x", TcpState::Unoriented), [Step::SynAck, Step::FirstPayload, Step::Data, Step::Ack]);
    assert_eq!(steps(ACK | FIN, b"", TcpState::Established), [Step::Data, Step::Ack]);
    assert_eq!(steps(ACK | RST, b"bye", TcpState::Established), [Step::Rst]);
    assert_eq!(steps(SYN | RST, b"", TcpState::SynSent), [Step::Syn, Step::Rst]);
    assert_eq!(steps(ACK, b"", TcpState::Established), [Step::Ack]);
}

/// `Conn::segment` takes most segments without building the set of steps:
/// it must take the very steps the set would hold.
#[test]
fn the_common_path_takes_the_steps_the_set_would() {
    for fl in 0..=0x3fu8 {
        if fl & (SYN | RST) != 0 {
            continue;
        }
        for state in [TcpState::SynSent, TcpState::Established, TcpState::Partial] {
            for payload in [&b""[..], b"x"] {
                let seg = Segment {
                    src: ep(CLIENT),
                    dst: ep(SERVER),
                    seq: Seq::new(1),
                    ack: Seq::new(1),
                    flags: fl,
                    window: 0,
                    payload,
                    missing: 0,
                };
                let mut fast = Vec::new();
                if !seg.is_empty() || seg.has(FIN) {
                    fast.push(Step::Data);
                }
                if seg.has(ACK) {
                    fast.push(Step::Ack);
                }
                assert_eq!(Steps::of(&seg, state).collect::<Vec<_>>(), fast, "flags {fl:#x} in {state}");
            }
        }
    }
}

// =========================================================================
// Tests for the SYN-SENT state.
// =========================================================================

#[test]
fn syn_sent_a_syn_opens_toward_its_receiver_whatever_the_ports() {
    let mut w = Wire::new();
    assert_eq!(w.c(0, SYN, 100, 0, b""), [OPEN_SYN]);
    assert_eq!(w.state(), TcpState::SynSent);
    // The client may have the lower port: the SYN says who it is.
    let mut w = Wire::new();
    assert_eq!(w.s(0, SYN, 100, 0, b""), ["open 10.0.0.2:80->10.0.0.1:40000 syn"]);
}

#[test]
fn syn_sent_a_retransmitted_syn_changes_nothing() {
    let mut w = Wire::new();
    w.c(0, SYN, 100, 0, b"");
    assert!(w.c(1000, SYN, 100, 0, b"").is_empty());
    assert_eq!(w.state(), TcpState::SynSent);
    assert_eq!(w.conn().halves[0].packets, 2);
}

#[test]
fn syn_sent_a_syn_ack_establishes() {
    let mut w = Wire::new();
    w.c(0, SYN, 100, 0, b"");
    assert_eq!(w.s(1, SYN | ACK, 500, 101, b""), ["established"]);
    assert_eq!(w.state(), TcpState::Established);
}

#[test]
fn syn_sent_a_rst_from_the_server_refuses() {
    let mut w = Wire::new();
    w.c(0, SYN, 100, 0, b"");
    assert_eq!(w.s(1, RST | ACK, 0, 101, b""), ["rst server", "close refused syn"]);
    assert_eq!(w.state(), TcpState::Closed);
}

#[test]
fn syn_sent_a_rst_from_the_client_resets() {
    let mut w = Wire::new();
    w.c(0, SYN, 100, 0, b"");
    assert_eq!(w.c(1, RST, 101, 0, b""), ["rst client", "close reset syn"]);
}

// =========================================================================
// Tests for the ESTABLISHED state.
// =========================================================================

#[test]
fn established_data_both_ways_then_both_fins_close() {
    let mut w = Wire::new();
    w.handshake();
    assert_eq!(w.c(3, ACK, 101, 501, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), ["request GET /a"]);
    assert_eq!(w.s(4, ACK, 501, 129, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), ["response 200"]);
    assert_eq!(w.c(5, ACK | FIN, 129, 539, b""), ["fin client"]);
    assert_eq!(w.state(), TcpState::Established, "one half closed: still open");
    assert_eq!(w.s(6, ACK | FIN, 539, 130, b""), ["fin server", "close closed established syn"]);
    assert_eq!(w.state(), TcpState::Closed);
}

#[test]
fn established_a_retransmitted_syn_ack_is_not_a_second_establishment() {
    let mut w = Wire::new();
    w.c(0, SYN, 100, 0, b"");
    w.s(1, SYN | ACK, 500, 101, b"");
    assert!(w.s(300, SYN | ACK, 500, 101, b"").is_empty());
    assert_eq!(w.state(), TcpState::Established);
}

#[test]
fn established_a_fin_counts_once_the_data_before_it_is_in() {
    let mut w = Wire::new();
    w.handshake();
    // The FIN arrives before the request it follows (reordered).
    assert!(w.c(3, ACK | FIN, 129, 501, b"").is_empty(), "not yet: bytes 101..129 missing");
    assert_eq!(w.c(4, ACK, 101, 501, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), ["request GET /a", "fin client"]);
}

#[test]
fn established_an_ack_past_a_hole_turns_it_into_a_gap() {
    let mut w = Wire::new();
    w.handshake();
    // Bytes 101..111 never captured; a request after them is held.
    assert!(w.c(3, ACK, 111, 501, b"GET /b HTTP/1.1\r\n\r\n").is_empty());
    // The server acknowledges everything: the hole will never be filled.
    let ev = w.s(4, ACK, 501, 130, b"");
    assert_eq!(ev, ["request GET /b"], "after the gap the parser resynchronises at the request line");
    assert_eq!(w.conn().halves[0].asm.stats.gaps, 1);
}

#[test]
fn established_a_rst_delivers_what_is_held_then_resets() {
    let mut w = Wire::new();
    w.handshake();
    w.c(3, ACK, 111, 501, b"GET /b HTTP/1.1\r\n\r\n");
    assert_eq!(w.s(4, RST, 501, 0, b""), ["request GET /b", "rst server", "close reset established syn"]);
}

#[test]
fn established_a_syn_with_another_isn_is_a_new_connection() {
    let mut w = Wire::new();
    w.handshake();
    let seg = |isn: u32| Segment {
        src: ep(CLIENT),
        dst: ep(SERVER),
        seq: Seq::new(isn),
        ack: Seq::new(0),
        flags: SYN,
        window: 0,
        payload: b"",
        missing: 0,
    };
    assert!(!w.conn().is_reused_by(&seg(9000)), "no data yet: a SYN is not taken for a new connection");
    w.c(3, ACK, 101, 501, b"GET / HTTP/1.1\r\n\r\n");
    assert!(w.conn().is_reused_by(&seg(9000)));
    assert!(
        !w.conn().is_reused_by(&seg(118)),
        "a SYN whose ISN + 1 is the next byte expected is not taken for a new one"
    );
}

// =========================================================================
// Tests for the PARTIAL state (picked up mid-way, sides known).
// =========================================================================

#[test]
fn partial_the_first_payload_tells_the_client() {
    // The server's response is the first packet seen: it is turned round.
    let mut w = Wire::new();
    let ev = w.s(0, ACK, 2000, 1000, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(ev[0], OPEN);
    assert_eq!(w.state(), TcpState::Partial);
    // A request from the higher port: as guessed.
    let mut w = Wire::new();
    assert_eq!(w.c(0, ACK, 1000, 2000, b"GET / HTTP/1.1\r\n\r\n"), [OPEN, "request GET /"]);
    // A request from the lower port: turned round.
    let mut w = Wire::new();
    assert_eq!(
        w.s(0, ACK, 1000, 2000, b"GET / HTTP/1.1\r\n\r\n"),
        ["open 10.0.0.2:80->10.0.0.1:40000", "request GET /"]
    );
}

#[test]
fn partial_a_syn_ack_first_is_established_toward_its_receiver() {
    let mut w = Wire::new();
    assert_eq!(w.s(0, SYN | ACK, 500, 101, b""), [OPEN, "established"]);
    assert_eq!(w.c(1, ACK | FIN, 101, 501, b""), ["fin client"]);
    assert_eq!(w.s(2, ACK | FIN, 501, 102, b""), ["fin server", "close closed established"]);
}

#[test]
fn partial_a_late_syn_is_recorded_and_stays_partial() {
    let mut w = Wire::new();
    w.c(0, ACK, 101, 501, b"GET / HTTP/1.1\r\n\r\n");
    assert!(w.c(1, SYN, 100, 0, b"").is_empty());
    assert_eq!(w.state(), TcpState::Partial);
    assert_eq!(w.end(2, EndReason::EndOfCapture), ["close end-of-capture syn"]);
}

#[test]
fn partial_is_not_established_when_it_ends() {
    let mut w = Wire::new();
    w.c(0, ACK, 1000, 2000, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(w.s(1, RST, 2000, 0, b""), ["rst server", "close reset"]);
}

// =========================================================================
// Tests for the UNORIENTED state (a FIN alone first: sides guessed).
// =========================================================================

#[test]
fn unoriented_a_fin_alone_is_guessed_by_the_ports() {
    let mut w = Wire::new();
    assert_eq!(w.s(0, ACK | FIN, 2000, 1000, b""), [OPEN, "fin server"]);
    assert_eq!(w.state(), TcpState::Unoriented);
}

#[test]
fn unoriented_the_first_payload_turns_a_wrong_guess_round() {
    let mut w = Wire::new();
    w.s(0, ACK | FIN, 2000, 1000, b"");
    // The "client" (higher port) sends a response line: it is the server.
    w.c(1, ACK, 1000, 2001, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(w.state(), TcpState::Partial);
    assert_eq!(w.conn().key.to_string(), "10.0.0.2:80->10.0.0.1:40000");
    // The packets counted so far moved with their halves.
    assert_eq!((w.conn().halves[0].packets, w.conn().halves[1].packets), (1, 1));
}

#[test]
fn unoriented_a_syn_settles_the_sides() {
    let mut w = Wire::new();
    w.s(0, ACK | FIN, 2000, 1000, b"");
    w.s(1, SYN, 7, 0, b"");
    assert_eq!(w.state(), TcpState::Partial);
    assert_eq!(w.conn().key.to_string(), "10.0.0.2:80->10.0.0.1:40000", "the SYN's sender is the client");
}

// =========================================================================
// Tests for the CLOSED state.
// =========================================================================

#[test]
fn closed_late_segments_change_nothing() {
    let mut w = Wire::new();
    w.handshake();
    w.c(3, RST, 101, 0, b"");
    assert!(w.s(4, ACK, 501, 101, b"HTTP/1.1 200 OK\r\n\r\n").is_empty());
    assert!(w.c(5, SYN, 100, 0, b"").is_empty());
    assert!(w.end(6, EndReason::Idle).is_empty(), "closing is idempotent");
    assert_eq!(w.conn().last_ts, Ts(5000), "lingering packets still count as seen");
    assert_eq!(w.conn().halves[1].packets, 1, "but not as the connection's packets");
}

#[test]
fn closed_by_expiry_delivers_held_data_with_gaps() {
    let mut w = Wire::new();
    w.handshake();
    w.c(3, ACK, 111, 501, b"GET /late HTTP/1.1\r\n\r\n");
    assert_eq!(w.end(60_000, EndReason::Idle), ["request GET /late", "close idle established syn"]);
    assert_eq!(w.conn().halves[0].asm.stats.gap_bytes, 10);
}

#[test]
fn closed_state_names_are_rfc_9293_s() {
    assert_eq!(TcpState::SynSent.to_string(), "SYN-SENT");
    assert_eq!(TcpState::Established.to_string(), "ESTABLISHED");
    assert_eq!(TcpState::Closed.to_string(), "CLOSED");
}

/// Closed, a connection only lingers for late packets: its parsers go at
/// once (its charge falls to a bare connection's), and the counters the
/// table adds up when it leaves stay.
#[test]
fn closed_its_parsers_go_and_their_counters_stay() {
    let mut w = Wire::new();
    w.handshake();
    let req: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let resp: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let (c, s) = (101 + req.len() as u32, 501 + resp.len() as u32);
    w.c(3, ACK, 101, 501, req);
    w.s(4, ACK, 501, c, resp);
    assert!(w.conn().is_websocket());
    assert!(w.conn().state_cost() > budget::PER_CONN, "a WebSocket's parsers are charged");
    w.c(5, ACK | FIN, c, s, b"");
    w.s(6, ACK | FIN, s, c + 1, b"");
    assert_eq!(w.state(), TcpState::Closed);
    assert_eq!(w.conn().state_cost(), budget::PER_CONN);
    assert!(!w.conn().is_websocket());

    // HTTP/2 in clear (the client preface, then SETTINGS): its counters
    // are the table's `h2` totals.
    let mut h = Wire::new();
    h.handshake();
    h.c(3, ACK, 101, 501, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
    let open = h.conn().h2_stats();
    assert_eq!(open.map(|s| s.connections), Some(1));
    assert!(h.conn().state_cost() > budget::PER_CONN);
    h.end(10, EndReason::Idle);
    assert_eq!(h.state(), TcpState::Closed);
    assert_eq!(h.conn().state_cost(), budget::PER_CONN);
    assert_eq!(h.conn().h2_stats(), open);
}
