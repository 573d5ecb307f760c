//! Sessions: upgraded connections followed until they end, the session an
//! upgrade opens on one or two of them, its end (a fact, with its record),
//! and the frame relay delay between its hops.

use super::{Correlator, h2pair};
use crate::event::{ConnId, ConnSummary};
use crate::facts::{Fact, FactSink, SessionEnd, SessionRow};
use crate::flow::FlowKey;
use crate::proto::Dir;
use crate::proto::activity::WsActivity;
use crate::record::Record;
pub use crate::record::Role;
use crate::record::{
    Close, CloseCodes, CloseHow, Closer, Dirs, Heartbeat, HeartbeatKind, HopSession, Join, Peer, Session, Side,
};
use crate::time::{Ts, round_us, round3};

/// An upgraded connection, as correlation follows it: its activity
/// arrives with its summary when it ends (the connection layer keeps the
/// counters while it is open).
#[derive(Debug, Clone)]
pub struct WsStats {
    pub conn: ConnId,
    pub flow: FlowKey,
    pub upgraded_ts: Ts,
    pub summary: Option<Box<ConnSummary>>,
    /// The session's other hop, once the session exists (frame relay).
    pub peer: Option<ConnId>,
    /// A TLS client hop: its frames cannot be read.
    pub encrypted: bool,
}

impl WsStats {
    pub fn new(conn: ConnId, flow: FlowKey, ts: Ts) -> WsStats {
        WsStats { conn, flow, upgraded_ts: ts, summary: None, peer: None, encrypted: false }
    }

    pub fn closed(&self) -> bool {
        self.summary.is_some()
    }

    /// The activity, once the connection ended.
    pub fn activity(&self) -> Option<&WsActivity> {
        self.summary.as_ref()?.ws.as_deref()
    }
}

/// Closed upgraded connections waiting to be part of a session, at most.
const MAX_ORPHANS: usize = 1024;
/// Relay samples waiting for their other hop, at most.
const MAX_RELAY_PENDING: usize = 10_000;

/// A session open on one or two upgraded hops.
#[derive(Debug)]
pub(super) struct PendingSession {
    id: u64,
    chain: u64,
    hop_index: u32,
    handshake: u64,
    pub(super) path: String,
    pub(super) hops: Vec<(Role, ConnId)>,
    pub(super) start: Ts,
    /// First FIN or RST on one of its hops: its record (stamped with its
    /// end) cannot be stamped earlier.
    pub(super) closing_since: Option<Ts>,
    /// The handshake's join fields (boxed: most of a session's life is
    /// spent waiting, and this is only read at its end).
    join: Box<Join>,
}

/// What a reported exchange leaves for its session: the hops whose
/// request was answered with an upgrade, and a TLS client hop in front of
/// an upgraded forward.
pub(super) struct Opening {
    /// The handshake record, when the exchange was a WebSocket attempt.
    pub handshake: Option<u64>,
    pub chain: u64,
    pub hop_index: u32,
    pub path: String,
    /// The client hop and the upstream hop, when upgraded.
    pub hops: [Option<(Role, ConnId)>; 2],
    pub tls_front: Option<ConnId>,
    /// The handshake's join fields, for the session record.
    pub join: Join,
}

impl Correlator {
    /// The session an exchange opened, if its hops switched to WebSocket;
    /// it ends at once when they all closed already.
    pub(super) fn open_session(&mut self, o: Opening, out: &mut dyn FactSink) {
        let mut hops: Vec<(Role, ConnId)> =
            o.hops.into_iter().flatten().filter(|(_, c)| self.ws.contains_key(c)).collect();
        // A TLS client hop: followed at the TCP level as the session's
        // client hop (its frames cannot be read), and done with requests.
        let upgraded_at = hops.iter().filter_map(|(_, c)| self.ws.get(c).map(|w| w.upgraded_ts)).min();
        if let Some(tf) = o.tls_front
            && let Some(at) = upgraded_at
            && let Some(c) = self.conns.get_mut(&tf)
        {
            c.tls_upgraded = true;
            let mut w = WsStats::new(tf, c.flow, at);
            w.encrypted = true;
            self.ws.insert(tf, w);
            hops.insert(0, (Role::Client, tf));
        }
        let start = hops.iter().filter_map(|(_, c)| self.ws.get(c).map(|w| w.upgraded_ts)).min();
        let (Some(hid), Some(start)) = (o.handshake, start) else { return };
        let sid = self.next_session;
        self.next_session += 1;
        for (_, conn) in &hops {
            self.conn_sessions.entry(*conn).or_default().push(sid);
        }
        if let [(_, a), (_, b)] = hops[..]
            && !self.ws.get(&a).is_some_and(|w| w.encrypted)
        {
            if let Some(w) = self.ws.get_mut(&a) {
                w.peer = Some(b);
            }
            if let Some(w) = self.ws.get_mut(&b) {
                w.peer = Some(a);
            }
        }
        self.sessions.insert(
            sid,
            PendingSession {
                id: sid,
                chain: o.chain,
                hop_index: o.hop_index,
                handshake: hid,
                path: o.path,
                hops,
                start,
                closing_since: None,
                join: Box::new(o.join),
            },
        );
        self.try_end_session(sid, false, out);
    }

    /// Ends a session whose hops all closed (or every session, `force`, at
    /// the end of the capture): its record and its end.
    pub(super) fn try_end_session(&mut self, sid: u64, force: bool, out: &mut dyn FactSink) {
        let Some(s) = self.sessions.get(&sid) else { return };
        let all_closed = s.hops.iter().all(|(_, c)| self.ws.get(c).is_none_or(|w| w.closed()));
        if !all_closed && !force {
            return;
        }
        let s = self.sessions.remove(&sid).expect("present");
        let empty = WsActivity::default();
        let hops: Vec<HopView<'_>> = s
            .hops
            .iter()
            .filter_map(|(r, c)| {
                let w = self.ws.get(c)?;
                Some(HopView {
                    role: *r,
                    flow: w.flow,
                    summary: w.summary.as_deref(),
                    act: w.activity().unwrap_or(&empty),
                    encrypted: w.encrypted,
                })
            })
            .collect();
        if hops.is_empty() {
            return;
        }
        let mut rec = build(s.id, s.chain, s.hop_index, s.handshake, &s.path, &hops);
        rec.join = *s.join;
        self.stats.sessions += 1;
        self.stats.relayed_ended.add(&super::Relayed {
            frames: [rec.frames.to_server, rec.frames.to_client],
            bytes: [rec.bytes.to_server, rec.bytes.to_client],
            messages: [rec.messages.to_server, rec.messages.to_client],
        });
        out.fact(Fact::SessionEnded(&SessionEnd {
            session: &rec,
            client: hops.iter().find(|h| h.role == Role::Client && !h.encrypted).map(|h| h.act),
            upstream: hops.iter().find(|h| h.role == Role::Upstream).map(|h| h.act),
        }));
        out.record(Record::Session(rec));
        for (_, conn) in &s.hops {
            let ids = self.conn_sessions.entry(*conn).or_default();
            ids.retain(|&x| x != sid);
            if ids.is_empty() {
                self.conn_sessions.remove(conn);
                if self.ws.get(conn).is_some_and(|w| w.closed()) || force {
                    self.ws.remove(conn);
                }
            }
        }
        out.settle();
    }

    /// A hop of an open session began to close.
    pub(super) fn session_closing(&mut self, conn: ConnId, ts: Ts) {
        if let Some(ids) = self.conn_sessions.get(&conn) {
            for sid in ids {
                if let Some(s) = self.sessions.get_mut(sid) {
                    s.closing_since.get_or_insert(ts);
                }
            }
        }
    }

    /// An upgraded connection ended: its sessions may end with it.
    pub(super) fn upgraded_closed(&mut self, conn: ConnId, ts: Ts, summary: Box<ConnSummary>, out: &mut dyn FactSink) {
        let Some(w) = self.ws.get_mut(&conn) else { return };
        let mut summary = summary;
        if w.encrypted && summary.ws.is_none() {
            // Only its TCP ends are known: its first FIN or RST.
            let mut a = WsActivity::new(w.upgraded_ts);
            if let Some((d, t)) = summary.first_close() {
                a.closing(t, d, if summary.rst[d.index()] == Some(t) { "rst" } else { "fin" });
            }
            summary.ws = Some(Box::new(a));
        }
        w.summary = Some(summary);
        let ids = self.conn_sessions.get(&conn).cloned().unwrap_or_default();
        if ids.is_empty() {
            // Upgraded but in no session yet: its exchange may still be
            // reported (an upstream hop whose client waits); forgotten
            // after a while if it never is.
            if self.orphans.len() >= MAX_ORPHANS {
                // Bounded: 101s without a request (or never paired)
                // are cheap to send by the thousand.
                if let Some((_, old)) = self.orphans.pop_front()
                    && !self.conn_sessions.contains_key(&old)
                {
                    self.ws.remove(&old);
                }
            }
            self.orphans.push_back((ts, conn));
        }
        for sid in ids {
            self.try_end_session(sid, false, out);
        }
    }

    /// Open sessions with their activity (read from the connections in
    /// `flows`), in id order.
    pub fn session_rows(&self, flows: &crate::flow::FlowTable) -> Vec<SessionRow> {
        self.session_rows_by(|flow, conn| Self::live_activity(flows, flow, conn))
    }

    /// [`Self::session_rows`], the activity of connections still open
    /// looked up by `live` (flow-sharded live capture: the workers' copies).
    pub fn session_rows_by<'a>(
        &'a self,
        live: impl Fn(crate::flow::FlowKey, ConnId) -> Option<&'a WsActivity>,
    ) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self
            .sessions
            .values()
            .map(|s| {
                let hops: Vec<(Role, &WsStats, Option<&WsActivity>)> = s
                    .hops
                    .iter()
                    .filter_map(|(r, c)| {
                        let w = self.ws.get(c)?;
                        let act = w.activity().or_else(|| live(w.flow, w.conn));
                        Some((*r, w, act))
                    })
                    .collect();
                let front = hops.first().and_then(|h| h.2);
                let flow = |role| hops.iter().find(|h| h.0 == role).map(|h| h.1.flow);
                SessionRow {
                    id: s.id,
                    handshake: s.handshake,
                    path: s.path.clone(),
                    client_flow: flow(Role::Client),
                    client_stream: hops.iter().find(|h| h.0 == Role::Client).and_then(|h| h2pair::stream_of(h.1.conn)),
                    upstream_flow: flow(Role::Upstream),
                    start: s.start,
                    last_activity: hops.iter().filter_map(|h| h.2.map(|a| a.last_frame_any())).max().unwrap_or(s.start),
                    frames: front.map(|w| dirs(w.frames)).unwrap_or_default(),
                    bytes: front.map(|w| dirs(w.bytes)).unwrap_or_default(),
                }
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// Open sessions now (once a tick, for metrics; nothing is built):
    /// how many, how many have been idle (no frame on any hop) for `lo`
    /// to `hi` seconds at `now`, and their traffic so far, read as
    /// [`Self::session_rows`] reads activity and counted on the hop a
    /// session record counts (so that, added to
    /// [`super::Stats::relayed_ended`], it only grows). `live` finds the
    /// activity of connections still open (in the flow table, or in the
    /// flow-sharded workers' copies).
    pub fn open_sessions_now<'a>(
        &'a self,
        live: impl Fn(crate::flow::FlowKey, ConnId) -> Option<&'a WsActivity>,
        now: Ts,
        lo: f64,
        hi: f64,
    ) -> OpenNow {
        let mut o = OpenNow { sessions: self.sessions.len(), ..OpenNow::default() };
        for s in self.sessions.values() {
            let hops = || {
                s.hops.iter().filter_map(|(_, c)| {
                    let w = self.ws.get(c)?;
                    Some((w, w.activity().or_else(|| live(w.flow, w.conn))))
                })
            };
            let last = hops().filter_map(|(_, a)| a.map(|a| a.last_frame_any())).max().unwrap_or(s.start);
            let idle = now.since(last);
            if idle >= lo && idle <= hi {
                o.near += 1;
            }
            let front = hops().find(|(w, _)| !w.encrypted).or_else(|| hops().next()).and_then(|(_, a)| a);
            if let Some(a) = front {
                o.relayed.add(&super::Relayed { frames: a.frames, bytes: a.bytes, messages: a.messages });
            }
        }
        o
    }

    /// Frame relay delay: the same frame ordinal in the same direction on
    /// the session's two hops (a proxy relays frames in order and
    /// unchanged).
    pub(super) fn relay(&mut self, conn: ConnId, peer: ConnId, ts: Ts, dir: Dir, ordinal: u64) {
        let key = (conn.min(peer), dir.index() as u8, ordinal);
        match self.relay_pending.remove(&key) {
            Some((other, t0)) if other == peer => {
                let ms = ts.millis_since(t0).abs();
                self.stats.metrics.latency.relay.record_ms(ms);
                if self.relay_samples.len() < 100_000 {
                    self.relay_samples.push(ms);
                }
            }
            _ => {
                if self.relay_pending.len() >= MAX_RELAY_PENDING {
                    self.relay_pending.clear();
                }
                self.relay_pending.insert(key, (conn, ts));
            }
        }
    }
}

/// Open sessions at one instant ([`Correlator::open_sessions_now`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenNow {
    pub sessions: usize,
    /// Idle within the bounds asked.
    pub near: usize,
    /// Their traffic so far.
    pub relayed: super::Relayed,
}

/// One hop of a session being built: its role, flow, summary, activity.
pub struct HopView<'a> {
    pub role: Role,
    pub flow: FlowKey,
    pub summary: Option<&'a ConnSummary>,
    pub act: &'a WsActivity,
    /// A TLS hop: its TCP ends are known, its frames are not.
    pub encrypted: bool,
}

fn dirs(v: [u64; 2]) -> Dirs {
    Dirs { to_server: v[0], to_client: v[1] }
}

/// Who is behind the first closing action on a hop. `relayed`: for a
/// close frame the proxy sent, whether the same close came from the other
/// end on the other hop first (None: the other hop is not in view).
fn attribute(role: Role, dir: Dir, how: CloseHow, relayed: Option<bool>) -> Closer {
    match (role, dir) {
        (Role::Client, Dir::ToServer) => Closer::Client,
        (Role::Upstream, Dir::ToClient) => Closer::Server,
        // The proxy's side of a hop. A close frame it sends was relayed
        // from the other end if that end's close came first on the other
        // hop; one that appears on this hop alone is the proxy's own (caddy
        // closes both legs with 1001 on a reload). Without the other hop in
        // view, a close frame is taken as relayed.
        (_, _) if how == CloseHow::CloseFrame && relayed == Some(false) => Closer::Proxy,
        (Role::Upstream, Dir::ToServer) if how == CloseHow::CloseFrame => Closer::Client,
        (Role::Client, Dir::ToClient) if how == CloseHow::CloseFrame => Closer::Server,
        _ => Closer::Proxy,
    }
}

/// Whether a close frame the proxy sent at `t` on the `role` hop crossed
/// from the other end: that end's close frame on the other hop came first.
fn relayed(hops: &[HopView<'_>], role: Role, dir: Dir, t: Ts) -> Option<bool> {
    let other = hops.iter().find(|h| h.role != role && !h.encrypted)?;
    let from_end = match (role, dir) {
        // to the backend: did the client's close reach the proxy first?
        (Role::Upstream, Dir::ToServer) => other.act.close_frame[0].as_ref(),
        // to the client: did the backend's close reach the proxy first?
        (Role::Client, Dir::ToClient) => other.act.close_frame[1].as_ref(),
        _ => return None,
    };
    Some(from_end.is_some_and(|c| c.ts <= t))
}

/// Close frames the proxy made itself (not relayed from the other end), as
/// (role of the hop, code), in time order. Both hops must be in view.
pub fn proxy_made_closes(hops: &[HopView<'_>]) -> Vec<(Role, Option<u16>)> {
    let mut v = Vec::new();
    for h in hops.iter().filter(|h| !h.encrypted) {
        let d = match h.role {
            Role::Upstream => Dir::ToServer,
            Role::Client => Dir::ToClient,
        };
        if let Some(c) = &h.act.close_frame[d.index()]
            && relayed(hops, h.role, d, c.ts) == Some(false)
        {
            v.push((c.ts, h.role, c.code));
        }
    }
    v.sort_by_key(|x| x.0);
    v.into_iter().map(|(_, r, c)| (r, c)).collect()
}

/// Builds the session record from its hops (client hop first).
pub fn build(id: u64, chain: u64, hop_index: u32, handshake: u64, path: &str, hops: &[HopView<'_>]) -> Session {
    // Frames are counted on the hop nearest the client that can be read.
    let front = hops.iter().find(|h| !h.encrypted).unwrap_or(&hops[0]).act;
    let readable = || hops.iter().filter(|h| !h.encrypted);
    let start = hops.iter().map(|h| h.act.upgraded_ts).min().unwrap_or(front.upgraded_ts);
    let end = hops.iter().filter_map(|h| h.summary.map(|s| s.last_ts)).max().unwrap_or(start);
    let open = hops.iter().any(|h| h.summary.is_none_or(|s| s.end.is_unfinished()) && h.act.first_close.is_none());
    // The earliest closing action across hops.
    let first = hops
        .iter()
        .filter_map(|h| h.act.first_close.map(|(t, d, how)| (t, h.role, d, CloseHow::of_activity(how))))
        .min_by_key(|x| x.0);
    let first_close_frame = hops
        .iter()
        .filter_map(|h| h.act.close_frame.iter().flatten().min_by_key(|c| c.ts).cloned())
        .min_by_key(|c| c.ts);
    let clean = readable().all(|h| h.act.close_frame[0].is_some() && h.act.close_frame[1].is_some());
    let idle_s = first.map(|(t, ..)| {
        let last = readable().map(|h| h.act.last_activity()).max().unwrap_or(start).min(t);
        round3(t.since(last))
    });
    let close = Close {
        by: first.map(|(t, r, d, how)| attribute(r, d, how, relayed(hops, r, d, t))),
        code: first_close_frame.as_ref().and_then(|c| c.code),
        reason: first_close_frame.as_ref().map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
        clean,
        idle_s,
        how: first.map_or(CloseHow::EndOfCapture, |f| f.3),
    };
    let heartbeat = heartbeat(front);
    let hop_records = hops
        .iter()
        .map(|h| {
            let s = h.summary;
            let closed = s.and_then(|s| s.first_close());
            let w = h.act;
            HopSession {
                role: h.role,
                flow: h.flow,
                frames: dirs(w.frames),
                bytes: dirs(w.bytes),
                close_frames: CloseCodes {
                    to_server: w.close_frame[0].as_ref().map(|c| c.code.unwrap_or(0)),
                    to_client: w.close_frame[1].as_ref().map(|c| c.code.unwrap_or(0)),
                },
                closed_by: closed.map(|(d, _)| Side::sending(d)),
                closed_with: closed.and_then(|(d, t)| {
                    let s = s?;
                    Some(if s.rst[d.index()] == Some(t) { CloseHow::Rst } else { CloseHow::Fin })
                }),
                closed_at: closed.map(|(_, t)| round_us(t.secs())),
                last_data: s.and_then(|s| s.last_data_any()).map(|t| round_us(t.secs())),
                keepalives: s.map_or(0, |s| s.keepalives),
                unmasked_client_frames: w.unmasked_client,
                oversized_control_frames: w.oversized_control,
                masked_server_frames: w.masked_server,
                encrypted: h.encrypted,
                stream_id: s.and_then(|s| s.h2.as_ref()).map(|x| x.stream),
                reset: s
                    .and_then(|s| s.h2.as_ref())
                    .and_then(|x| x.reset_code)
                    .map(crate::proto::h2::frame::error_name),
            }
        })
        .collect();
    let flow_of = |role| hops.iter().find(|h| h.role == role).map(|h| h.flow);
    Session {
        ty: "session",
        id,
        chain,
        hop_index,
        handshake,
        path: path.to_string(),
        start: round_us(start.secs()),
        end: round_us(end.secs()),
        duration_s: round3(end.since(start)),
        client_flow: flow_of(Role::Client),
        upstream_flow: flow_of(Role::Upstream),
        frames: dirs(front.frames),
        bytes: dirs(front.bytes),
        messages: dirs(front.messages),
        pings: dirs(front.pings),
        pongs: dirs(front.pongs),
        compressed: hops.iter().any(|h| h.act.compressed),
        heartbeat,
        close,
        open,
        hops: hop_records,
        join: Join::default(),
    }
}

/// Heartbeats on a hop: periodic pings, else periodic small data frames.
pub fn heartbeat(w: &WsActivity) -> Option<Heartbeat> {
    let side = |d: usize| if d == 0 { Peer::Client } else { Peer::Server };
    for d in 0..2 {
        if let Some(iv) = w.ping_iv[d].median(1) {
            return Some(Heartbeat { kind: HeartbeatKind::Ping, interval_s: round3(iv), from: side(d) });
        }
    }
    for d in 0..2 {
        if w.data_iv[d].regular(3)
            && let Some(iv) = w.data_iv[d].median(3)
        {
            return Some(Heartbeat { kind: HeartbeatKind::Data, interval_s: round3(iv), from: side(d) });
        }
    }
    None
}
