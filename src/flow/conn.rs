//! One TCP connection seen from the wire.
//!
//! A passive observer cannot know the endpoints' real state, so the state
//! kept here is what the capture proves:
//!
//! | state        | entered when                                          |
//! |--------------|-------------------------------------------------------|
//! | `SynSent`    | the initiator's SYN was seen                          |
//! | `Established`| the SYN-ACK was seen                                  |
//! | `Partial`    | data or ACKs without a SYN (capture started mid-way)  |
//! | `Closed`     | both FINs delivered, or a RST, or the SYN was refused |
//!
//! Orientation: the initiator sent the SYN. Without a SYN, the side with
//! the lower port is guessed to be the server, and the first payload
//! settles it: whoever sends a request line is the client.

use super::assembler::{Assembler, Chunk, ReassemblyStats, SegKind};
use super::key::FlowKey;
use crate::budget::{self, Class};
use crate::decode::{Segment, flags};
use crate::event::{ConnId, ConnSummary, EndReason, Event, EventKind};
use crate::proto::h2::{self, StreamEvent};
use crate::proto::{App, Dir, ProtoEvent, http};
use crate::time::Ts;

/// An optional timestamp in one word (the connection state is per
/// connection, and the table holds it inline: every byte counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct At(i64);

impl At {
    const NONE: At = At(i64::MIN);
    fn get(self) -> Option<Ts> {
        (self.0 != i64::MIN).then_some(Ts(self.0))
    }
    fn is_none(self) -> bool {
        self.0 == i64::MIN
    }
    fn is_some(self) -> bool {
        !self.is_none()
    }
}

impl Default for At {
    fn default() -> At {
        At::NONE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    SynSent,
    Established,
    Partial,
    Closed,
}

#[derive(Debug, Default)]
struct Half {
    asm: Assembler,
    packets: u64,
    bytes: u64,
    last_data: At,
    fin: At,
    rst: At,
}

#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    pub key: FlowKey,
    pub state: TcpState,
    halves: [Half; 2],
    app: App,
    pub first_ts: Ts,
    pub last_ts: Ts,
    syn: bool,
    /// Orientation is settled (SYN seen or first payload seen).
    oriented: bool,
    opened: bool,
    refused: bool,
    /// The flow table's bookkeeping: eviction class, recently active (the
    /// eviction queues give such a connection a second chance), in the
    /// queue of buffer holders, and what is charged to the memory budget.
    pub(super) class: Class,
    /// Counted in its class (not closed, in the table's counts).
    pub(super) counted: bool,
    pub(super) referenced: bool,
    /// 0: holds no buffer; 1: in the queue of small holders; 2: of big ones.
    pub(super) holding: u8,
    pub(super) charged_state: u32,
    pub(super) charged_buffers: u32,
    /// Listed among the connections holding TLS records for their keys.
    pub(super) waiting_keys: bool,
}

impl Conn {
    pub fn new(id: ConnId, ts: Ts, seg: &Segment<'_>, verbose: bool, keys: &crate::proto::tls::Keys) -> Conn {
        let mut key = FlowKey { src: seg.src, dst: seg.dst };
        let syn_only = seg.has(flags::SYN) && !seg.has(flags::ACK);
        let synack = seg.has(flags::SYN) && seg.has(flags::ACK);
        if synack || (!syn_only && seg.src.port < seg.dst.port) {
            key = key.reversed();
        }
        Conn {
            id,
            key,
            state: if syn_only { TcpState::SynSent } else { TcpState::Partial },
            halves: Default::default(),
            app: if verbose { App::DetectVerbose(keys.clone()) } else { App::Detect(keys.clone()) },
            first_ts: ts,
            last_ts: ts,
            syn: false,
            oriented: syn_only || synack,
            opened: false,
            refused: false,
            class: Class::Unconfirmed,
            counted: false,
            referenced: true,
            holding: 0,
            charged_state: 0,
            charged_buffers: 0,
            waiting_keys: false,
        }
    }

    /// Eviction class: seen in one direction only, established, or
    /// upgraded to WebSocket.
    #[inline]
    pub fn current_class(&self) -> Class {
        if self.halves[0].packets == 0 || self.halves[1].packets == 0 {
            Class::Unconfirmed
        } else if self.app.is_websocket() {
            Class::Upgraded
        } else {
            Class::Established
        }
    }

    /// Per-connection state outside the flow table, for the budget.
    #[inline]
    pub fn state_cost(&self) -> u64 {
        budget::PER_CONN + self.app.state_cost()
    }

    /// Buffers this connection holds (or makes the analyzer hold): data
    /// held ahead of holes, partial heads, unanswered requests.
    #[inline]
    pub fn buffered(&self) -> u64 {
        (self.halves[0].asm.held_memory() + self.halves[1].asm.held_memory() + self.app.buffered()) as u64
    }

    /// Memory pressure: gives up held data (holes become gaps) and partial
    /// heads. Returns the bytes freed.
    pub fn shed(&mut self, ts: Ts, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) -> u64 {
        if self.is_closed() {
            return 0;
        }
        let mut freed = 0;
        for dir in [Dir::ToServer, Dir::ToClient] {
            let (halves, app) = (&mut self.halves, &mut self.app);
            let mut fin = false;
            freed += halves[dir.index()].asm.shed(&mut |c| feed(app, dir, ts, c, scratch, &mut fin));
            self.after_delivery(dir, ts, fin, out, scratch);
        }
        freed += self.app.shed(ts, scratch);
        self.after_delivery(Dir::ToServer, ts, false, out, scratch);
        freed as u64
    }

    pub fn is_closed(&self) -> bool {
        self.state == TcpState::Closed
    }

    pub fn is_websocket(&self) -> bool {
        self.app.is_websocket()
    }

    /// The connection's WebSocket activity so far, if it was upgraded.
    pub fn activity(&self) -> Option<&crate::proto::activity::WsActivity> {
        self.app.activity()
    }

    /// A new connection on the same 4-tuple: a SYN after this one closed,
    /// or a SYN whose ISN is not this connection's.
    pub fn is_reused_by(&self, seg: &Segment<'_>) -> bool {
        if !seg.has(flags::SYN) || seg.has(flags::ACK) {
            return false;
        }
        if self.state == TcpState::Closed {
            return true;
        }
        match self.halves[Dir::ToServer.index()].asm.next_seq() {
            Some(next) if self.syn => seg.seq + 1 != next && self.halves[0].bytes > 0,
            _ => false,
        }
    }

    /// Adds this connection's reassembly counters to `total`.
    pub fn add_reassembly_stats(&self, total: &mut ReassemblyStats) {
        total.add(&self.halves[0].asm.stats);
        total.add(&self.halves[1].asm.stats);
    }

    fn dir_of(&self, seg: &Segment<'_>) -> Dir {
        if seg.src == self.key.src && seg.dst == self.key.dst { Dir::ToServer } else { Dir::ToClient }
    }

    fn swap(&mut self) {
        self.key = self.key.reversed();
        self.halves.swap(0, 1);
    }

    fn open(&mut self, ts: Ts, out: &mut Vec<Event>) {
        if !self.opened {
            self.opened = true;
            out.push(Event { conn: self.id, ts, kind: EventKind::Open { flow: self.key, syn: self.syn } });
        }
    }

    fn emit(&mut self, ts: Ts, kind: EventKind, out: &mut Vec<Event>) {
        self.open(ts, out);
        out.push(Event { conn: self.id, ts, kind });
    }

    pub fn segment(&mut self, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.last_ts = ts;
        if self.state == TcpState::Closed {
            return; // lingering: late retransmissions and ACKs
        }
        let mut dir = self.dir_of(seg);
        if seg.has(flags::SYN) {
            if !seg.has(flags::ACK) {
                if dir == Dir::ToClient && !self.syn {
                    self.swap();
                    dir = Dir::ToServer;
                }
                self.syn = true;
                self.oriented = true;
                self.halves[dir.index()].asm.syn(seg.seq);
                self.open(ts, out);
            } else {
                if dir == Dir::ToServer && !self.syn {
                    self.swap();
                    dir = Dir::ToClient;
                }
                self.oriented = true;
                self.halves[dir.index()].asm.syn(seg.seq);
                if self.state != TcpState::Established {
                    self.state = TcpState::Established;
                    self.emit(ts, EventKind::Established, out);
                }
            }
        }
        if !self.oriented && !seg.payload.is_empty() {
            // First payload of a connection picked up mid-way.
            let swap = match dir {
                Dir::ToServer => http::looks_like_response(seg.payload),
                Dir::ToClient => http::looks_like_request(seg.payload),
            };
            if swap {
                self.swap();
                dir = dir.flip();
            }
            self.oriented = true;
        }
        let h = &mut self.halves[dir.index()];
        h.packets += 1;

        if seg.has(flags::RST) {
            self.reset(dir, ts, out, scratch);
            return;
        }

        if !seg.is_empty() || seg.has(flags::FIN) {
            if !seg.is_empty() {
                self.open(ts, out);
            }
            if self.app.is_opaque() {
                let h = &mut self.halves[dir.index()];
                let kind = h.asm.segment(seg.seq, seg.payload, seg.missing, seg.has(flags::FIN), &mut |_| {});
                if matches!(kind, SegKind::New | SegKind::OutOfOrder) {
                    h.bytes += seg.len() as u64;
                    h.last_data = At(ts.0);
                }
                if seg.has(flags::FIN) && h.fin.is_none() {
                    h.fin = At(ts.0);
                    self.closing(dir, ts, "fin", out, scratch);
                    self.emit(ts, EventKind::Fin { dir }, out);
                }
            } else {
                self.deliver(dir, ts, seg, out, scratch);
            }
        }
        if seg.has(flags::ACK) && !self.app.is_opaque() && self.halves[dir.flip().index()].asm.has_held() {
            let other = dir.flip();
            let (halves, app) = (&mut self.halves, &mut self.app);
            let mut fin = false;
            halves[other.index()].asm.peer_acked(seg.ack, &mut |c| {
                feed(app, other, ts, c, scratch, &mut fin);
            });
            self.after_delivery(other, ts, fin, out, scratch);
        }
        let both_fin = self.halves[0].fin.is_some() && self.halves[1].fin.is_some();
        if both_fin {
            self.close(ts, EndReason::Closed, out, scratch);
        }
    }

    fn deliver(&mut self, dir: Dir, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        let (halves, app) = (&mut self.halves, &mut self.app);
        let h = &mut halves[dir.index()];
        let mut fin = false;
        let kind = h.asm.segment(seg.seq, seg.payload, seg.missing, seg.has(flags::FIN), &mut |c| {
            feed(app, dir, ts, c, scratch, &mut fin);
        });
        if matches!(kind, SegKind::New | SegKind::OutOfOrder) {
            h.bytes += seg.len() as u64;
            h.last_data = At(ts.0);
        }
        self.after_delivery(dir, ts, fin, out, scratch);
    }

    /// Turns what the analyzers reported into events, then the FIN.
    fn after_delivery(&mut self, dir: Dir, ts: Ts, fin: bool, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        if !scratch.is_empty() {
            self.open(ts, out);
            for pe in scratch.drain(..) {
                push_event(self.id, self.key, pe, EndReason::Closed, out);
            }
        }
        if fin && self.halves[dir.index()].fin.is_none() {
            self.halves[dir.index()].fin = At(ts.0);
            self.closing(dir, ts, "fin", out, scratch);
            self.emit(ts, EventKind::Fin { dir }, out);
        }
    }

    /// The app learns that `dir` closed (a TLS connection may read records
    /// it held for keys then).
    fn closing(&mut self, dir: Dir, ts: Ts, how: &'static str, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.app.closing(dir, ts, how, scratch);
        if !scratch.is_empty() {
            self.open(ts, out);
            for pe in scratch.drain(..) {
                push_event(self.id, self.key, pe, EndReason::Closed, out);
            }
        }
    }

    /// Records are held until this connection's TLS keys arrive.
    pub fn holds_for_keys(&self) -> bool {
        self.app.holds_for_keys()
    }

    /// The key store changed: held records may be read now (their events
    /// carry their own packet times).
    pub fn keys_changed(&mut self, ts: Ts, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.app.keys_changed(ts, scratch);
        if !scratch.is_empty() {
            self.open(ts, out);
            for pe in scratch.drain(..) {
                push_event(self.id, self.key, pe, EndReason::Closed, out);
            }
        }
    }

    /// HTTP/2 counters of this connection, if it is HTTP/2.
    pub fn h2_stats(&self) -> Option<crate::proto::h2::H2Stats> {
        self.app.h2().map(|h| h.stats())
    }

    /// The WebSocket activity of one of its HTTP/2 streams, while open.
    pub fn stream_activity(&self, stream: u32) -> Option<&crate::proto::activity::WsActivity> {
        self.app.h2()?.stream_activity(stream)
    }

    /// TLS counters of this connection, if it is TLS.
    pub fn tls_stats(&self) -> Option<crate::proto::tls::TlsStats> {
        self.app.tls().map(|t| t.stats())
    }

    fn reset(&mut self, dir: Dir, ts: Ts, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.halves[dir.index()].rst = At(ts.0);
        let refused = self.state == TcpState::SynSent && dir == Dir::ToClient;
        self.refused = refused;
        self.flush(ts, out, scratch);
        self.closing(dir, ts, "rst", out, scratch);
        self.emit(ts, EventKind::Rst { dir }, out);
        self.close(ts, if refused { EndReason::Refused } else { EndReason::Reset }, out, scratch);
    }

    /// Delivers held data (with gaps) in both directions.
    fn flush(&mut self, ts: Ts, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        for dir in [Dir::ToServer, Dir::ToClient] {
            let (halves, app) = (&mut self.halves, &mut self.app);
            let mut fin = false;
            halves[dir.index()].asm.flush(&mut |c| feed(app, dir, ts, c, scratch, &mut fin));
            self.after_delivery(dir, ts, fin, out, scratch);
        }
    }

    /// Ends the connection: a `Close` event with its summary. Idempotent.
    pub fn close(&mut self, ts: Ts, reason: EndReason, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        if self.state == TcpState::Closed {
            return;
        }
        if !matches!(reason, EndReason::Closed | EndReason::Reset | EndReason::Refused) {
            self.flush(ts, out, scratch);
        }
        // HTTP/2: the streams still open end with the connection.
        self.app.finish(scratch);
        if !scratch.is_empty() {
            self.open(ts, out);
            for pe in scratch.drain(..) {
                push_event(self.id, self.key, pe, reason, out);
            }
        }
        let summary = ConnSummary {
            flow: self.key,
            end: reason,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            syn: self.syn,
            established: self.state == TcpState::Established,
            packets: [self.halves[0].packets, self.halves[1].packets],
            bytes: [self.halves[0].bytes, self.halves[1].bytes],
            last_data: [self.halves[0].last_data.get(), self.halves[1].last_data.get()],
            fin: [self.halves[0].fin.get(), self.halves[1].fin.get()],
            rst: [self.halves[0].rst.get(), self.halves[1].rst.get()],
            keepalives: self.halves[0].asm.stats.keepalives as u64 + self.halves[1].asm.stats.keepalives as u64,
            gaps: self.halves[0].asm.stats.gaps as u64 + self.halves[1].asm.stats.gaps as u64,
            ws: self.app.take_activity(),
            h2: None,
        };
        self.state = TcpState::Closed;
        self.emit(ts, EventKind::Close(Box::new(summary)), out);
    }
}

fn feed(app: &mut App, dir: Dir, ts: Ts, c: Chunk<'_>, out: &mut Vec<ProtoEvent>, fin: &mut bool) {
    match c {
        Chunk::Data(d) => app.data(dir, ts, d, out),
        Chunk::Gap(n) => app.gap(dir, ts, n, out),
        Chunk::Fin => *fin = true,
    }
}

/// Turns a parser's fact into events: an HTTP/2 stream's facts go to the
/// stream's own id ([`h2::stream_conn`]), as a connection of its own;
/// `conn_end` is why a stream the connection's end closed ended.
fn push_event(conn: ConnId, flow: FlowKey, pe: ProtoEvent, conn_end: EndReason, out: &mut Vec<Event>) {
    let (ts, kind) = match pe {
        ProtoEvent::Request { ts, req } => (ts, EventKind::Request(req)),
        ProtoEvent::Response { ts, resp } => (ts, EventKind::Response(resp)),
        ProtoEvent::Upgraded { ts, websocket } => (ts, EventKind::Upgraded { websocket }),
        ProtoEvent::Frame { dir, ts, frame } => (ts, EventKind::Frame { dir, frame }),
        ProtoEvent::RelaySample { dir, ts, ordinal } => (ts, EventKind::RelaySample { dir, ordinal }),
        ProtoEvent::Anomaly { dir, ts, what } => (ts, EventKind::Anomaly { dir, what }),
        ProtoEvent::Tls { ts, sni } => (ts, EventKind::Tls { sni }),
        ProtoEvent::TlsInfo { ts, info } => (ts, EventKind::TlsInfo(info)),
        ProtoEvent::TlsTurn { dir, ts } => (ts, EventKind::TlsTurn { dir }),
        ProtoEvent::H2 { ts, fact } => (ts, EventKind::H2(fact)),
        ProtoEvent::H2Stream { stream, ts, ev } => {
            let id = h2::stream_conn(conn, stream);
            let kind = match ev {
                StreamEvent::Open => {
                    out.push(Event { conn: id, ts, kind: EventKind::Open { flow, syn: false } });
                    EventKind::H2Stream { parent: conn, stream }
                }
                StreamEvent::Request(req) => EventKind::Request(req),
                StreamEvent::Response(resp) => EventKind::Response(resp),
                StreamEvent::Upgraded => EventKind::Upgraded { websocket: true },
                StreamEvent::Frame { dir, frame } => EventKind::Frame { dir, frame },
                StreamEvent::RelaySample { dir, ordinal } => EventKind::RelaySample { dir, ordinal },
                StreamEvent::End { dir } => EventKind::Fin { dir },
                StreamEvent::Reset { dir, .. } => EventKind::Rst { dir },
                StreamEvent::Closed(s) => EventKind::Close(Box::new(stream_summary(flow, *s, conn_end))),
            };
            out.push(Event { conn: id, ts, kind });
            return;
        }
    };
    out.push(Event { conn, ts, kind });
}

/// A stream's summary in the form of a connection's.
fn stream_summary(flow: FlowKey, s: h2::StreamSummary, conn_end: EndReason) -> ConnSummary {
    let end = if s.reset_code.is_some() {
        EndReason::Reset
    } else if s.ended_by_connection || s.fin.iter().any(Option::is_none) {
        conn_end
    } else {
        EndReason::Closed
    };
    ConnSummary {
        flow,
        end,
        first_ts: s.first_ts,
        last_ts: s.last_ts,
        syn: false,
        established: true,
        packets: s.frames,
        bytes: s.bytes,
        last_data: s.last_data,
        fin: s.fin,
        rst: s.rst,
        keepalives: 0,
        gaps: s.gaps,
        ws: s.ws,
        h2: Some(Box::new(crate::event::StreamEnd {
            stream: s.stream,
            reset_code: s.reset_code,
            reset_by: s.reset_by,
            by_connection: s.ended_by_connection,
            overruns: s.overruns,
        })),
    }
}
