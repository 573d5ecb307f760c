//! WebSocket activity per upgraded connection, and the session record built
//! from one or two hops of it when they end.

use crate::event::{ConnId, ConnSummary};
use crate::flow::FlowKey;
use crate::proto::Dir;
use crate::proto::activity::WsActivity;
use crate::record::{Close, CloseCodes, Dirs, Heartbeat, HopSession, Session};
use crate::time::{Ts, round_us, round3};

/// An upgraded connection, as the analyzer follows it: its activity
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
}

impl WsStats {
    pub fn new(conn: ConnId, flow: FlowKey, ts: Ts) -> WsStats {
        WsStats { conn, flow, upgraded_ts: ts, summary: None, peer: None }
    }

    pub fn closed(&self) -> bool {
        self.summary.is_some()
    }

    /// The activity, once the connection ended.
    pub fn activity(&self) -> Option<&WsActivity> {
        self.summary.as_ref()?.ws.as_deref()
    }
}

/// One hop of a session being built: its role, flow, summary, activity.
pub struct HopView<'a> {
    pub role: Role,
    pub flow: FlowKey,
    pub summary: Option<&'a ConnSummary>,
    pub act: &'a WsActivity,
}

/// Role of a hop within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Upstream,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Upstream => "upstream",
        }
    }
}

fn dirs(v: [u64; 2]) -> Dirs {
    Dirs { to_server: v[0], to_client: v[1] }
}

/// Who is behind the first closing action on a hop.
fn attribute(role: Role, dir: Dir, how: &str) -> &'static str {
    match (role, dir) {
        (Role::Client, Dir::ToServer) => "client",
        (Role::Upstream, Dir::ToClient) => "server",
        // The proxy's side of a hop. A proxy relays close frames but does
        // not originate them (nginx, haproxy, apache never do).
        (Role::Upstream, Dir::ToServer) if how == "close-frame" => "client",
        (Role::Client, Dir::ToClient) if how == "close-frame" => "server",
        _ => "proxy",
    }
}

/// Builds the session record from its hops (client hop first).
pub fn build(id: u64, chain: u64, hop_index: u32, handshake: u64, path: &str, hops: &[HopView<'_>]) -> Session {
    let front = hops[0].act;
    let start = hops.iter().map(|h| h.act.upgraded_ts).min().unwrap_or(front.upgraded_ts);
    let end = hops.iter().filter_map(|h| h.summary.map(|s| s.last_ts)).max().unwrap_or(start);
    let open = hops.iter().any(|h| h.summary.is_none_or(|s| s.end.is_unfinished()) && h.act.first_close.is_none());
    // The earliest closing action across hops.
    let first =
        hops.iter().filter_map(|h| h.act.first_close.map(|(t, d, how)| (t, h.role, d, how))).min_by_key(|x| x.0);
    let first_close_frame = hops
        .iter()
        .filter_map(|h| h.act.close_frame.iter().flatten().min_by_key(|c| c.ts).cloned())
        .min_by_key(|c| c.ts);
    let clean = hops.iter().all(|h| h.act.close_frame[0].is_some() && h.act.close_frame[1].is_some());
    let idle_s = first.map(|(t, ..)| {
        let last = hops.iter().map(|h| h.act.last_activity()).max().unwrap_or(start).min(t);
        round3(t.since(last))
    });
    let close = Close {
        by: first.map(|(_, r, d, how)| attribute(r, d, how)),
        code: first_close_frame.as_ref().and_then(|c| c.code),
        reason: first_close_frame.as_ref().map(|c| c.reason.clone()).filter(|r| !r.is_empty()),
        clean,
        idle_s,
        how: first.map_or("end-of-capture", |f| f.3),
    };
    let heartbeat = heartbeat(front);
    let hop_records = hops
        .iter()
        .map(|h| {
            let s = h.summary;
            let closed = s.and_then(|s| s.first_close());
            let w = h.act;
            HopSession {
                role: h.role.name(),
                flow: h.flow.to_string(),
                frames: dirs(w.frames),
                bytes: dirs(w.bytes),
                close_frames: CloseCodes {
                    to_server: w.close_frame[0].as_ref().map(|c| c.code.unwrap_or(0)),
                    to_client: w.close_frame[1].as_ref().map(|c| c.code.unwrap_or(0)),
                },
                closed_by: closed.map(|(d, _)| if d == Dir::ToServer { "initiator" } else { "responder" }),
                closed_with: closed.and_then(|(d, t)| {
                    let s = s?;
                    Some(if s.rst[d.index()] == Some(t) { "rst" } else { "fin" })
                }),
                closed_at: closed.map(|(_, t)| round_us(t.secs())),
                last_data: s.and_then(|s| s.last_data_any()).map(|t| round_us(t.secs())),
                keepalives: s.map_or(0, |s| s.keepalives),
                unmasked_client_frames: w.unmasked_client,
                oversized_control_frames: w.oversized_control,
            }
        })
        .collect();
    let flow_of = |role| hops.iter().find(|h| h.role == role).map(|h| h.flow.to_string());
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
    }
}

/// Heartbeats on a hop: periodic pings, else periodic small data frames.
pub fn heartbeat(w: &WsActivity) -> Option<Heartbeat> {
    let side = |d: usize| if d == 0 { "client" } else { "server" };
    for d in 0..2 {
        if let Some(iv) = w.ping_iv[d].median(1) {
            return Some(Heartbeat { kind: "ping", interval_s: round3(iv), from: side(d) });
        }
    }
    for d in 0..2 {
        if w.data_iv[d].regular(3)
            && let Some(iv) = w.data_iv[d].median(3)
        {
            return Some(Heartbeat { kind: "data", interval_s: round3(iv), from: side(d) });
        }
    }
    None
}
