//! WebSocket activity per upgraded connection, and the session record built
//! from one or two hops of it when they end.

use crate::event::{ConnId, ConnSummary};
use crate::flow::FlowKey;
use crate::proto::{Dir, Frame, ws::opcode};
use crate::record::{Close, CloseCodes, Dirs, Heartbeat, HopSession, Session};
use crate::time::{Ts, round_us, round3};

/// Recent intervals between events of one kind, for heartbeat detection.
#[derive(Debug, Clone, Default)]
pub struct Intervals {
    last: Option<Ts>,
    ring: [f32; 16],
    n: usize,
    pub count: u64,
}

impl Intervals {
    pub fn push(&mut self, ts: Ts) {
        if let Some(l) = self.last {
            self.ring[self.n % 16] = ts.since(l) as f32;
            self.n += 1;
        }
        self.last = Some(ts);
        self.count += 1;
    }

    /// Median of the recent intervals, with at least `min` of them.
    pub fn median(&self, min: usize) -> Option<f64> {
        let k = self.n.min(16);
        if k < min.max(1) {
            return None;
        }
        let mut v: Vec<f32> = self.ring[..k].to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(v[k / 2] as f64)
    }

    /// Intervals are regular: max/min within a factor of 1.5.
    pub fn regular(&self, min: usize) -> bool {
        let k = self.n.min(16);
        if k < min {
            return false;
        }
        let s = &self.ring[..k];
        let lo = s.iter().cloned().fold(f32::MAX, f32::min);
        let hi = s.iter().cloned().fold(0.0f32, f32::max);
        lo > 0.0 && hi / lo <= 1.5
    }
}

/// WebSocket activity on one upgraded connection.
#[derive(Debug, Clone)]
pub struct WsStats {
    pub conn: ConnId,
    pub flow: FlowKey,
    pub upgraded_ts: Ts,
    pub frames: [u64; 2],
    pub bytes: [u64; 2],
    pub messages: [u64; 2],
    pub pings: [u64; 2],
    pub pongs: [u64; 2],
    pub compressed: bool,
    pub unmasked_client: u64,
    pub oversized_control: u64,
    /// Last frame other than a close frame, per direction.
    pub last_frame: [Option<Ts>; 2],
    /// Same, but only frames before this connection began to close.
    pub last_frame_before_close: Option<Ts>,
    /// The activity before that one (a heartbeat that crossed the close
    /// hides the silence that preceded it).
    pub prev_frame_before_close: Option<Ts>,
    pub close_frame: [Option<(Ts, Option<u16>, String)>; 2],
    pub ping_iv: [Intervals; 2],
    pub data_iv: [Intervals; 2],
    /// First FIN/RST/close frame on this connection.
    pub first_close: Option<(Ts, Dir, &'static str)>,
    pub summary: Option<Box<ConnSummary>>,
    /// Frames not yet seen on the session's other hop: (ts, length).
    unrelayed: [std::collections::VecDeque<(Ts, u64)>; 2],
}

impl WsStats {
    pub fn new(conn: ConnId, flow: FlowKey, ts: Ts) -> WsStats {
        WsStats {
            conn,
            flow,
            upgraded_ts: ts,
            frames: [0; 2],
            bytes: [0; 2],
            messages: [0; 2],
            pings: [0; 2],
            pongs: [0; 2],
            compressed: false,
            unmasked_client: 0,
            oversized_control: 0,
            last_frame: [None; 2],
            last_frame_before_close: None,
            prev_frame_before_close: None,
            close_frame: [None, None],
            ping_iv: Default::default(),
            data_iv: Default::default(),
            first_close: None,
            summary: None,
            unrelayed: Default::default(),
        }
    }

    /// Remembers a frame awaiting its copy on the other hop (bounded).
    pub fn push_unrelayed(&mut self, ts: Ts, dir: Dir, len: u64) {
        let q = &mut self.unrelayed[dir.index()];
        if q.len() >= 64 {
            q.pop_front();
        }
        q.push_back((ts, len));
    }

    /// The oldest frame of this direction and length, if any, removing it
    /// and every older one (they were not relayed as such).
    pub fn take_unrelayed(&mut self, dir: Dir, len: u64) -> Option<Ts> {
        let q = &mut self.unrelayed[dir.index()];
        let i = q.iter().position(|&(_, l)| l == len)?;
        let (t, _) = q[i];
        q.drain(..=i);
        Some(t)
    }

    pub fn frame(&mut self, ts: Ts, dir: Dir, f: &Frame) {
        let d = dir.index();
        self.frames[d] += 1;
        self.bytes[d] += f.len;
        if f.compressed() {
            self.compressed = true;
        }
        if dir == Dir::ToServer && !f.masked {
            self.unmasked_client += 1;
        }
        if f.oversized_control() {
            self.oversized_control += 1;
        }
        match f.opcode {
            opcode::CLOSE => {
                if self.close_frame[d].is_none() {
                    let (code, reason) =
                        f.close.as_ref().map(|c| (c.code, c.reason.clone())).unwrap_or((None, String::new()));
                    self.close_frame[d] = Some((ts, code, reason));
                }
                self.closing(ts, dir, "close-frame");
                return;
            }
            opcode::PING => {
                self.pings[d] += 1;
                self.ping_iv[d].push(ts);
            }
            opcode::PONG => self.pongs[d] += 1,
            _ => {
                if f.fin {
                    self.messages[d] += 1;
                }
                if f.opcode != opcode::CONTINUATION {
                    self.data_iv[d].push(ts);
                }
            }
        }
        self.last_frame[d] = Some(ts);
        if self.first_close.is_none() {
            if self.last_frame_before_close.is_some_and(|l| l < ts) {
                self.prev_frame_before_close = self.last_frame_before_close;
            }
            self.last_frame_before_close = Some(ts);
        }
    }

    pub fn closing(&mut self, ts: Ts, dir: Dir, how: &'static str) {
        if self.first_close.is_none() {
            self.first_close = Some((ts, dir, how));
        }
    }

    pub fn closed(&self) -> bool {
        self.summary.is_some()
    }

    /// Latest frame in either direction before the close began.
    pub fn last_activity(&self) -> Ts {
        self.last_frame_before_close.unwrap_or(self.upgraded_ts).max(self.upgraded_ts)
    }

    /// When this connection ended (last FIN/RST or last packet).
    pub fn end_ts(&self) -> Option<Ts> {
        let s = self.summary.as_ref()?;
        Some(s.last_ts)
    }
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
pub fn build(id: u64, chain: u64, hop_index: u32, handshake: u64, path: &str, hops: &[(Role, &WsStats)]) -> Session {
    let front = hops[0].1;
    let start = hops.iter().map(|(_, w)| w.upgraded_ts).min().unwrap_or(front.upgraded_ts);
    let end = hops.iter().filter_map(|(_, w)| w.end_ts()).max().unwrap_or(start);
    let open = hops.iter().any(|(_, w)| {
        w.summary.as_ref().is_none_or(|s| s.end == crate::event::EndReason::EndOfCapture) && w.first_close.is_none()
    });
    // The earliest closing action across hops.
    let first = hops.iter().filter_map(|(r, w)| w.first_close.map(|(t, d, how)| (t, *r, d, how))).min_by_key(|x| x.0);
    let first_close_frame = hops
        .iter()
        .filter_map(|(_, w)| w.close_frame.iter().flatten().min_by_key(|c| c.0).cloned())
        .min_by_key(|c| c.0);
    let clean = hops.iter().all(|(_, w)| w.close_frame[0].is_some() && w.close_frame[1].is_some());
    let idle_s = first.map(|(t, ..)| {
        let last = hops.iter().map(|(_, w)| w.last_activity()).max().unwrap_or(start).min(t);
        round3(t.since(last))
    });
    let close = Close {
        by: first.map(|(_, r, d, how)| attribute(r, d, how)),
        code: first_close_frame.as_ref().and_then(|c| c.1),
        reason: first_close_frame.as_ref().map(|c| c.2.clone()).filter(|r| !r.is_empty()),
        clean,
        idle_s,
        how: first.map_or("end-of-capture", |f| f.3),
    };
    let heartbeat = heartbeat(front);
    let hop_records = hops
        .iter()
        .map(|(r, w)| {
            let s = w.summary.as_deref();
            let closed = s.and_then(|s| s.first_close());
            HopSession {
                role: r.name(),
                flow: w.flow.to_string(),
                frames: dirs(w.frames),
                bytes: dirs(w.bytes),
                close_frames: CloseCodes {
                    to_server: w.close_frame[0].as_ref().map(|c| c.1.unwrap_or(0)),
                    to_client: w.close_frame[1].as_ref().map(|c| c.1.unwrap_or(0)),
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
        client_flow: hops.iter().find(|h| h.0 == Role::Client).map(|h| h.1.flow.to_string()),
        upstream_flow: hops.iter().find(|h| h.0 == Role::Upstream).map(|h| h.1.flow.to_string()),
        frames: dirs(front.frames),
        bytes: dirs(front.bytes),
        messages: dirs(front.messages),
        pings: dirs(front.pings),
        pongs: dirs(front.pongs),
        compressed: hops.iter().any(|(_, w)| w.compressed),
        heartbeat,
        close,
        open,
        hops: hop_records,
    }
}

/// Heartbeats on a hop: periodic pings, else periodic small data frames.
pub fn heartbeat(w: &WsStats) -> Option<Heartbeat> {
    let side = |d: usize| if d == 0 { "client" } else { "server" };
    for d in 0..2 {
        if let Some(iv) = w.ping_iv[d].median(1) {
            return Some(Heartbeat { kind: "ping", interval_s: round3(iv), from: side(d) });
        }
    }
    for d in 0..2 {
        if w.data_iv[d].regular(3) {
            if let Some(iv) = w.data_iv[d].median(3) {
                return Some(Heartbeat { kind: "data", interval_s: round3(iv), from: side(d) });
            }
        }
    }
    None
}
