//! One TCP connection seen from the wire: a state machine for a passive
//! observer, read with RFC 9293 (which obsoletes RFC 793) in hand.
//!
//! An observer cannot know the endpoints' real state, so the state kept
//! here is what the capture proves:
//!
//! | state         | entered when                                             |
//! |---------------|----------------------------------------------------------|
//! | `SynSent`     | the initiator's SYN was seen (the client's SYN-SENT)     |
//! | `Established` | the responder's SYN-ACK was seen                         |
//! | `Partial`     | picked up mid-way (no handshake seen), sides known       |
//! | `Unoriented`  | picked up mid-way by a FIN alone: sides guessed          |
//! | `Closed`      | both FINs delivered, a RST, a refusal, or ended (expiry, |
//! |               | eviction, end of input); lingers for late packets        |
//!
//! A segment is taken apart into [`Step`]s, in a fixed order (RFC 9293
//! 3.10.7.4 checks a segment's bits in a fixed order too; an observer's
//! order is its own): the SYN first, because it settles which side is the
//! client and everything after depends on that; the first payload of a
//! connection whose sides are guessed; the RST; the text and FIN, to
//! reassembly; the ACK, which may release the other direction's data held
//! ahead of a hole. Each step goes through [`Conn::step`], one `match` over
//! (state, step) with a comment per arm; every change of state goes through
//! [`Conn::set_state`]. A FIN counts once it is delivered in sequence
//! (RFC 9293 3.10.7.4, eighth: after all the data before it), and the
//! connection is closed once both directions' FINs are, checked after the
//! whole segment is taken.
//!
//! Orientation: the initiator sent the SYN (whoever answers with a SYN-ACK
//! is the server). Without a handshake, the side with the lower port is
//! guessed to be the server, and the first payload settles it: whoever
//! sends a request line is the client.

mod emit;
#[cfg(test)]
mod tests;

use self::emit::push_event;
use super::assembler::{Assembler, Chunk, ReassemblyStats, SegKind};
use super::key::FlowKey;
use crate::budget::{self, Class};
use crate::decode::{Segment, flags};
use crate::event::{ConnId, ConnSummary, EndReason, Event, EventKind};
use crate::proto::{App, Dir, ProtoEvent, sniff};
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

/// What the capture proves of a connection (the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpState {
    SynSent,
    Established,
    Partial,
    Unoriented,
    Closed,
}

impl TcpState {
    /// The name RFC 9293 (or, for an observer's own states, Zeek) uses.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::SynSent => "SYN-SENT",
            TcpState::Established => "ESTABLISHED",
            TcpState::Partial => "PARTIAL",
            TcpState::Unoriented => "PARTIAL (sides guessed)",
            TcpState::Closed => "CLOSED",
        }
    }
}

impl std::fmt::Display for TcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One part of a segment, taken in this order (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// SYN without ACK: the initiator opens.
    Syn,
    /// SYN with ACK: the responder answers.
    SynAck,
    /// Payload on a connection whose sides are guessed: it tells them.
    FirstPayload,
    /// RST.
    Rst,
    /// Payload (captured or cut by the snap length) or FIN: to reassembly.
    Data,
    /// ACK: the peer has everything below it.
    Ack,
}

/// The steps of one segment, as a set kept in [`Step`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Steps(u8);

impl Steps {
    const ORDER: [Step; 6] = [Step::Syn, Step::SynAck, Step::FirstPayload, Step::Rst, Step::Data, Step::Ack];

    #[inline]
    fn of(seg: &Segment<'_>, state: TcpState) -> Steps {
        let bit = |s: Step| 1u8 << s as u8;
        let mut b = 0;
        if seg.has(flags::SYN) {
            b |= if seg.has(flags::ACK) { bit(Step::SynAck) } else { bit(Step::Syn) };
        }
        if state == TcpState::Unoriented && !seg.payload.is_empty() {
            b |= bit(Step::FirstPayload);
        }
        if seg.has(flags::RST) {
            // A RST ends the connection: nothing after it is taken.
            b |= bit(Step::Rst);
        } else {
            if !seg.is_empty() || seg.has(flags::FIN) {
                b |= bit(Step::Data);
            }
            if seg.has(flags::ACK) {
                b |= bit(Step::Ack);
            }
        }
        Steps(b)
    }
}

impl Iterator for Steps {
    type Item = Step;
    #[inline]
    fn next(&mut self) -> Option<Step> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros();
        self.0 &= self.0 - 1;
        Some(Steps::ORDER[i as usize])
    }
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
    /// Changed only by [`Conn::set_state`].
    state: TcpState,
    halves: [Half; 2],
    app: App,
    pub first_ts: Ts,
    pub last_ts: Ts,
    /// When it ended on the wire (both FINs, or a RST) while its end waits
    /// behind TLS records held for keys ([`Conn::end_waiting_for_keys`]).
    ended_at: At,
    /// The initiator's SYN was seen (history, reported with the
    /// connection: a connection picked up mid-way may see it late).
    syn: bool,
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
    /// A connection for its first segment, oriented as that segment says
    /// (a SYN's sender, a SYN-ACK's receiver, a request line's sender is
    /// the client; else the higher port), and opened: an `Open` event,
    /// before any other of the connection's. The segment itself is then
    /// taken by [`Conn::segment`].
    pub fn new(
        id: ConnId,
        ts: Ts,
        seg: &Segment<'_>,
        verbose: bool,
        keys: &crate::proto::tls::Keys,
        out: &mut Vec<Event>,
    ) -> Conn {
        let syn_only = seg.has(flags::SYN) && !seg.has(flags::ACK);
        let synack = seg.has(flags::SYN) && seg.has(flags::ACK);
        let key = FlowKey { src: seg.src, dst: seg.dst };
        // Without a SYN, the lower port is guessed to be the server's.
        let key = if synack || (!syn_only && seg.src.port < seg.dst.port) { key.reversed() } else { key };
        let state = if syn_only {
            TcpState::SynSent
        } else if synack {
            // Established by the SYN-ACK step, in a moment.
            TcpState::Partial
        } else {
            TcpState::Unoriented
        };
        let mut c = Conn {
            id,
            key,
            state,
            halves: Default::default(),
            app: if verbose { App::DetectVerbose(keys.clone()) } else { App::Detect(keys.clone()) },
            first_ts: ts,
            last_ts: ts,
            syn: false,
            ended_at: At::NONE,
            class: Class::Unconfirmed,
            counted: false,
            referenced: true,
            holding: 0,
            charged_state: 0,
            charged_buffers: 0,
            waiting_keys: false,
        };
        if c.state == TcpState::Unoriented && !seg.payload.is_empty() {
            // Picked up mid-way: the first payload tells the client.
            let mut dir = c.dir_of(seg);
            c.orient_by_payload(&mut dir, seg.payload);
        }
        out.push(Event { conn: id, ts, kind: EventKind::Open { flow: c.key, syn: syn_only } });
        c
    }

    /// What the capture proves of the connection now.
    #[inline]
    pub fn state(&self) -> TcpState {
        self.state
    }

    /// The one place the state changes.
    #[inline]
    fn set_state(&mut self, to: TcpState) {
        self.state = to;
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
    /// or a SYN whose ISN is not this connection's (RFC 9293 3.10.7.4:
    /// a SYN in a synchronized state is not part of this connection).
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

    /// The other side is the client after all: the key and the halves turn
    /// round (`dir`, the segment's direction, with them).
    fn turn(&mut self, dir: &mut Dir) {
        self.key = self.key.reversed();
        self.halves.swap(0, 1);
        *dir = dir.flip();
    }

    fn emit(&mut self, ts: Ts, kind: EventKind, out: &mut Vec<Event>) {
        out.push(Event { conn: self.id, ts, kind });
    }

    /// Takes one segment (the module's doc: steps in order, then the end
    /// of the connection when both FINs are in).
    #[inline]
    pub fn segment(&mut self, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.last_ts = ts;
        if self.state == TcpState::Closed {
            // Lingering: late retransmissions and ACKs change nothing.
            return;
        }
        let mut dir = self.dir_of(seg);
        // Counted on the sender's half (a turn below moves it along).
        self.halves[dir.index()].packets += 1;
        if seg.flags & (flags::SYN | flags::RST) == 0 && self.state != TcpState::Unoriented {
            // Most segments: text (or a FIN) and an ACK, sides known. The
            // same steps as below, without building the set.
            if !seg.is_empty() || seg.has(flags::FIN) {
                self.step(Step::Data, &mut dir, ts, seg, out, scratch);
            }
            if seg.has(flags::ACK) {
                self.step(Step::Ack, &mut dir, ts, seg, out, scratch);
            }
        } else {
            for step in Steps::of(seg, self.state) {
                self.step(step, &mut dir, ts, seg, out, scratch);
                if self.state == TcpState::Closed {
                    return;
                }
            }
        }
        // RFC 9293 3.6: each side's FIN, delivered after all its data,
        // closes its half; both closed, the connection is over. (The ACK
        // step may deliver the other side's FIN, so this comes last.) A TLS
        // connection whose records wait for keys from a live key log ends
        // once they are read (`keys_changed`), or at the table's bound
        // (`end_waiting_for_keys`).
        if self.halves[0].fin.is_some() && self.halves[1].fin.is_some() {
            if !self.app.close_waits_for_keys() {
                self.close(ts, EndReason::Closed, out, scratch);
            } else if self.ended_at.is_none() {
                self.ended_at = At(ts.0);
            }
        }
    }

    /// One step of a segment in one state: the state machine.
    #[inline(always)]
    fn step(
        &mut self,
        step: Step,
        dir: &mut Dir,
        ts: Ts,
        seg: &Segment<'_>,
        out: &mut Vec<Event>,
        scratch: &mut Vec<ProtoEvent>,
    ) {
        use TcpState::*;
        match (self.state, step) {
            // A closed connection takes nothing more ([`Conn::segment`]
            // stops at it; listed for completeness).
            (Closed, _) => {}

            // The initiator's SYN (RFC 9293 3.5, the first segment of the
            // three-way handshake): its sender is the client, and its ISN
            // fixes where the client's data starts (ISN + 1). Seen first,
            // it made the connection: the client is in SYN-SENT.
            // Seen again (a retransmission), it changes nothing.
            (SynSent | Established, Step::Syn) => self.initiator_syn(dir, seg),
            // A SYN on a connection picked up mid-way: late (the capture
            // began between it and the answer, or merged files are out of
            // order), it still tells which side is the client.
            (Partial | Unoriented, Step::Syn) => {
                self.initiator_syn(dir, seg);
                self.set_state(Partial);
            }

            // The responder's SYN-ACK (RFC 9293 3.5, second segment): its
            // receiver is the client, its ISN fixes where the server's data
            // starts, and the connection is established: an observer does
            // not wait for the client's ACK (the answer proves the server
            // took the connection).
            (SynSent | Partial | Unoriented, Step::SynAck) => {
                self.responder_syn(dir, seg);
                self.set_state(Established);
                self.emit(ts, EventKind::Established, out);
            }
            // A retransmitted SYN-ACK (its ACK was lost): nothing new.
            (Established, Step::SynAck) => self.responder_syn(dir, seg),

            // The first payload of a connection whose sides were guessed
            // from its ports: a response line from the "client", or a
            // request line from the "server", turns it round.
            (Unoriented, Step::FirstPayload) => self.orient_by_payload(dir, seg.payload),
            // Sides already known (a SYN in this segment told them).
            (SynSent | Established | Partial, Step::FirstPayload) => {}

            // RFC 9293 3.10.7.3: in SYN-SENT, a RST from the server answers
            // the SYN: the connection is refused (no listener).
            (SynSent, Step::Rst) if *dir == Dir::ToClient => self.reset(*dir, ts, EndReason::Refused, out, scratch),
            // RFC 9293 3.10.7.4, second, "check the RST bit": in any other
            // state a RST aborts the connection. Held data is delivered
            // with gaps for the holes first.
            (SynSent | Established | Partial | Unoriented, Step::Rst) => {
                self.reset(*dir, ts, EndReason::Reset, out, scratch)
            }

            // Segment text and FIN (RFC 9293 3.10.7.4, seventh and eighth):
            // to reassembly, which delivers bytes in sequence, gaps for
            // what the capture lost, and the FIN after everything before
            // it. A connection whose parser gave up (a tunnel, TLS without
            // keys) is only counted: the FIN is taken as it arrives.
            (SynSent | Established | Partial | Unoriented, Step::Data) => self.data(*dir, ts, seg, out, scratch),

            // An ACK (RFC 9293 3.10.7.4, fifth) for bytes the other
            // direction still misses while it holds later ones: the peer
            // received them, the capture did not, and they will never come.
            // The hole becomes a gap now rather than at the end.
            (SynSent | Established | Partial | Unoriented, Step::Ack) => self.ack(*dir, ts, seg, out, scratch),
        }
    }

    /// The first payload, from `dir`, of a connection whose sides were
    /// guessed: a response line from the "client", or a request line from
    /// the "server", turns it round. The sides are known from then on.
    fn orient_by_payload(&mut self, dir: &mut Dir, payload: &[u8]) {
        let turn = match *dir {
            Dir::ToServer => sniff::looks_like_response(payload),
            Dir::ToClient => sniff::looks_like_request(payload),
        };
        if turn {
            self.turn(dir);
        }
        self.set_state(TcpState::Partial);
    }

    /// The initiator's SYN from `dir`: the sender is the client unless a
    /// SYN already said otherwise.
    fn initiator_syn(&mut self, dir: &mut Dir, seg: &Segment<'_>) {
        if *dir == Dir::ToClient && !self.syn {
            self.turn(dir);
        }
        self.syn = true;
        self.halves[dir.index()].asm.syn(seg.seq);
    }

    /// The responder's SYN-ACK from `dir`: the sender is the server unless
    /// the initiator's SYN said otherwise.
    fn responder_syn(&mut self, dir: &mut Dir, seg: &Segment<'_>) {
        if *dir == Dir::ToServer && !self.syn {
            self.turn(dir);
        }
        self.halves[dir.index()].asm.syn(seg.seq);
    }

    /// Segment text and FIN from `dir` (the data step).
    #[inline(always)]
    fn data(&mut self, dir: Dir, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        if !self.app.is_opaque() {
            self.deliver(dir, ts, seg, out, scratch);
            return;
        }
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
    }

    /// An ACK from `dir` (the ACK step): releases what the other direction
    /// holds below it.
    #[inline(always)]
    fn ack(&mut self, dir: Dir, ts: Ts, seg: &Segment<'_>, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        let other = dir.flip();
        if self.halves[other.index()].asm.has_held() && !self.app.is_opaque() {
            self.release_held(other, ts, seg, out, scratch);
        }
    }

    /// The peer acknowledged `seg.ack`: what `other` holds below it is lost.
    #[inline(never)]
    fn release_held(
        &mut self,
        other: Dir,
        ts: Ts,
        seg: &Segment<'_>,
        out: &mut Vec<Event>,
        scratch: &mut Vec<ProtoEvent>,
    ) {
        let (halves, app) = (&mut self.halves, &mut self.app);
        let mut fin = false;
        halves[other.index()].asm.peer_acked(seg.ack, &mut |c| {
            feed(app, other, ts, c, scratch, &mut fin);
        });
        self.after_delivery(other, ts, fin, out, scratch);
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
    #[inline]
    fn after_delivery(&mut self, dir: Dir, ts: Ts, fin: bool, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.take_facts(EndReason::Closed, out, scratch);
        if fin && self.halves[dir.index()].fin.is_none() {
            self.halves[dir.index()].fin = At(ts.0);
            self.closing(dir, ts, "fin", out, scratch);
            self.emit(ts, EventKind::Fin { dir }, out);
        }
    }

    /// The parsers' facts, as events (`conn_end`: why an HTTP/2 stream the
    /// connection's end closed ended).
    #[inline(always)]
    fn take_facts(&mut self, conn_end: EndReason, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        if !scratch.is_empty() {
            self.push_facts(conn_end, out, scratch);
        }
    }

    #[inline(never)]
    fn push_facts(&mut self, conn_end: EndReason, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        for pe in scratch.drain(..) {
            push_event(self.id, self.key, pe, conn_end, out);
        }
    }

    /// The app learns that `dir` closed (a TLS connection may read records
    /// it held for keys then).
    fn closing(&mut self, dir: Dir, ts: Ts, how: &'static str, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.app.closing(dir, ts, how, scratch);
        self.take_facts(EndReason::Closed, out, scratch);
    }

    /// Records are held until this connection's TLS keys arrive.
    pub fn holds_for_keys(&self) -> bool {
        self.app.holds_for_keys()
    }

    /// The key store changed: held records may be read now (their events
    /// carry their own packet times).
    pub fn keys_changed(&mut self, ts: Ts, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.app.keys_changed(ts, scratch);
        self.take_facts(EndReason::Closed, out, scratch);
        // It was reset, or both sides had closed, while its records
        // waited: it ends now, stamped when it ended.
        if let Some((at, reason)) = self.ended()
            && self.state != TcpState::Closed
            && !self.app.close_waits_for_keys()
        {
            self.close(at, reason, out, scratch);
        }
    }

    /// How the connection ended on the wire while its end waited: when
    /// it would have closed, and why (a RST, or both sides' FINs).
    fn ended(&self) -> Option<(Ts, EndReason)> {
        let at = self.ended_at.get()?;
        let reset = self.halves[0].rst.is_some() || self.halves[1].rst.is_some();
        Some((at, if reset { EndReason::Reset } else { EndReason::Closed }))
    }

    /// It ended on the wire while records wait for keys (a live key log):
    /// when, and how. The table ends such a connection after a bounded
    /// wait ([`Self::close`] with these).
    pub fn end_waiting_for_keys(&self) -> Option<(Ts, EndReason)> {
        if self.state == TcpState::Closed || !self.app.close_waits_for_keys() {
            return None;
        }
        self.ended()
    }

    /// HTTP/2 counters of this connection, if it is HTTP/2.
    pub fn h2_stats(&self) -> Option<crate::proto::h2::H2Stats> {
        self.app.h2_stats()
    }

    /// The WebSocket activity of one of its HTTP/2 streams, while open.
    /// Every open HTTP/2 stream's WebSocket activity, by stream.
    pub fn stream_activities(&self) -> impl Iterator<Item = (u32, &crate::proto::activity::WsActivity)> {
        self.app.h2().into_iter().flat_map(|h| h.stream_activities())
    }

    pub fn stream_activity(&self, stream: u32) -> Option<&crate::proto::activity::WsActivity> {
        self.app.h2()?.stream_activity(stream)
    }

    /// TLS counters of this connection, if it is TLS.
    pub fn tls_stats(&self) -> Option<crate::proto::tls::TlsStats> {
        self.app.tls_stats()
    }

    /// A RST from `dir` ends the connection for `reason`: what is held is
    /// delivered (gaps for the holes), the parsers hear of it, then `Rst`
    /// and `Close`.
    fn reset(&mut self, dir: Dir, ts: Ts, reason: EndReason, out: &mut Vec<Event>, scratch: &mut Vec<ProtoEvent>) {
        self.halves[dir.index()].rst = At(ts.0);
        self.flush(ts, out, scratch);
        self.closing(dir, ts, "rst", out, scratch);
        self.emit(ts, EventKind::Rst { dir }, out);
        // Records held for keys from a live key log came before the RST:
        // the end waits behind them, as a FIN's does (`keys_changed`).
        if !self.app.close_waits_for_keys() {
            self.close(ts, reason, out, scratch);
        } else if self.ended_at.is_none() {
            self.ended_at = At(ts.0);
        }
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
        // Closes that waited behind records held for keys go on first.
        self.app.replay_closings(scratch);
        // HTTP/2: the streams still open end with the connection.
        self.app.finish(scratch);
        self.take_facts(reason, out, scratch);
        let summary = ConnSummary {
            flow: self.key,
            end: reason,
            first_ts: self.first_ts,
            // (An end that waited for keys: what it was when it ended.)
            last_ts: self.ended_at.get().map_or(self.last_ts, |t| t.min(self.last_ts)),
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
        self.set_state(TcpState::Closed);
        self.emit(ts, EventKind::Close(Box::new(summary)), out);
        // Lingering, it reads nothing more (late packets change nothing:
        // `segment`): its parsers and their state (an HTTP/2 connection's
        // HPACK tables and streams, a WebSocket's frame parsers, partial
        // heads) go now rather than when it leaves the table, and their
        // charge to the budget with them (the table settles a connection
        // after its packet); their counters stay for the table's totals.
        self.app.retire();
    }
}

fn feed(app: &mut App, dir: Dir, ts: Ts, c: Chunk<'_>, out: &mut Vec<ProtoEvent>, fin: &mut bool) {
    match c {
        Chunk::Data(d) => app.data(dir, ts, d, out),
        Chunk::Gap(n) => app.gap(dir, ts, n, out),
        Chunk::Fin => *fin = true,
    }
}
