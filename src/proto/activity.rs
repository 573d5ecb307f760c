//! WebSocket activity of one upgraded connection, kept by the connection's
//! own analyzer as frames are parsed (no event per frame: per-frame work
//! stays in the cache lines of the connection being processed).

use super::Dir;
use super::ws::{Frame, opcode};
use crate::time::Ts;

/// Recent intervals between events of one kind, for heartbeat detection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Intervals {
    last: Option<Ts>,
    ring: [f32; 8],
    n: u32,
}

impl Intervals {
    pub fn push(&mut self, ts: Ts) {
        if let Some(l) = self.last {
            self.ring[(self.n % 8) as usize] = ts.since(l) as f32;
            self.n += 1;
        }
        self.last = Some(ts);
    }

    fn recent(&self) -> &[f32] {
        &self.ring[..(self.n as usize).min(8)]
    }

    /// Median of the recent intervals, with at least `min` of them.
    pub fn median(&self, min: usize) -> Option<f64> {
        let r = self.recent();
        if r.len() < min.max(1) {
            return None;
        }
        let mut v = r.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(v[v.len() / 2] as f64)
    }

    /// Intervals are regular: max/min within a factor of 1.5.
    pub fn regular(&self, min: usize) -> bool {
        let r = self.recent();
        if r.len() < min {
            return false;
        }
        let lo = r.iter().cloned().fold(f32::MAX, f32::min);
        let hi = r.iter().cloned().fold(0.0f32, f32::max);
        lo > 0.0 && hi / lo <= 1.5
    }
}

/// A close frame seen in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseSeen {
    pub ts: Ts,
    pub code: Option<u16>,
    pub reason: String,
}

/// Counters and timestamps of an upgraded connection, per direction
/// (index 0: from the HTTP client, 1: from the server).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WsActivity {
    pub upgraded_ts: Ts,
    pub frames: [u64; 2],
    pub bytes: [u64; 2],
    pub messages: [u64; 2],
    pub pings: [u64; 2],
    pub pongs: [u64; 2],
    pub compressed: bool,
    pub unmasked_client: u64,
    /// Frames from the server side that were masked (RFC 6455 5.1: a
    /// server must not mask).
    pub masked_server: u64,
    pub oversized_control: u64,
    /// Last frame other than a close frame, per direction.
    pub last_frame: [Option<Ts>; 2],
    /// Same, either direction, only before the connection began to close.
    pub last_frame_before_close: Option<Ts>,
    /// The activity before that one (a heartbeat that crossed the close
    /// hides the silence that preceded it).
    pub prev_frame_before_close: Option<Ts>,
    pub close_frame: [Option<Box<CloseSeen>>; 2],
    pub ping_iv: [Intervals; 2],
    pub data_iv: [Intervals; 2],
    /// First closing action on this connection: close frame, FIN or RST.
    pub first_close: Option<(Ts, Dir, &'static str)>,
}

impl WsActivity {
    pub fn new(ts: Ts) -> WsActivity {
        WsActivity { upgraded_ts: ts, ..Default::default() }
    }

    pub fn frame(&mut self, ts: Ts, dir: Dir, f: &Frame) {
        let d = dir.index();
        self.frames[d] += 1;
        // `bytes` is set by the frame parser from the payload actually
        // seen (a header may claim any length).
        if f.compressed() {
            self.compressed = true;
        }
        if dir == Dir::ToServer && !f.masked {
            self.unmasked_client += 1;
        }
        if dir == Dir::ToClient && f.masked {
            self.masked_server += 1;
        }
        if f.oversized_control() {
            self.oversized_control += 1;
        }
        match f.opcode {
            opcode::CLOSE => {
                if self.close_frame[d].is_none() {
                    let (code, reason) =
                        f.close.as_ref().map(|c| (c.code, c.reason.clone())).unwrap_or((None, String::new()));
                    self.close_frame[d] = Some(Box::new(CloseSeen { ts, code, reason }));
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

    /// A closing action (close frame, FIN, RST); the first one counts.
    pub fn closing(&mut self, ts: Ts, dir: Dir, how: &'static str) {
        if self.first_close.is_none() {
            self.first_close = Some((ts, dir, how));
        }
    }

    /// Latest frame in either direction before the close began.
    pub fn last_activity(&self) -> Ts {
        self.last_frame_before_close.unwrap_or(self.upgraded_ts).max(self.upgraded_ts)
    }

    /// Latest frame in either direction.
    pub fn last_frame_any(&self) -> Ts {
        self.last_frame[0].max(self.last_frame[1]).unwrap_or(self.upgraded_ts)
    }
}
