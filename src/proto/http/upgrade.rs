//! After the hand-off: the WebSocket state of an upgraded connection (a
//! 101 on HTTP/1.1) or stream (an HTTP/2 extended CONNECT, RFC 8441): one
//! frame parser per direction and the connection's activity, in one
//! allocation.

use crate::proto::activity::WsActivity;
use crate::proto::ws::FrameParser;
use crate::proto::{Dir, ProtoEvent};
use crate::time::Ts;

/// Every this many frames per direction, a relay sample is reported.
pub const RELAY_SAMPLE_EVERY: u64 = 8;

/// One frame parser per direction and the connection's activity.
#[derive(Debug)]
pub struct WsState {
    pub(super) parsers: [FrameParser; 2],
    pub(super) act: WsActivity,
    /// Requests pipelined before the upgrade and never answered: their
    /// heads stay downstream until the connection ends (memory budget).
    pub stranded: u64,
    /// Taken at the end (moved into the connection summary).
    pub(super) taken: bool,
    /// Report every frame (`-v`).
    pub(super) verbose: bool,
}

impl WsState {
    /// Frames from `ts` on (an HTTP/2 stream's DATA after a 2xx to its
    /// extended CONNECT).
    pub fn new(ts: Ts, verbose: bool) -> WsState {
        WsState { parsers: Default::default(), act: WsActivity::new(ts), stranded: 0, taken: false, verbose }
    }

    pub fn feed(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        let WsState { parsers, act, verbose, .. } = self;
        let verbose = *verbose;
        let p = &mut parsers[dir as usize];
        let was = p.desynced();
        p.feed(data, &mut |frame| {
            act.frame(ts, dir, frame);
            let ordinal = act.frames[dir as usize];
            if ordinal % RELAY_SAMPLE_EVERY == 0 {
                out.push(ProtoEvent::RelaySample { dir, ts, ordinal });
            }
            if verbose {
                out.push(ProtoEvent::Frame { dir, ts, frame: frame.clone() });
            }
        });
        act.bytes[dir as usize] = p.payload_seen();
        if !was && p.desynced() {
            // An invalid header (a 64-bit length with its top bit set).
            out.push(ProtoEvent::Anomaly { dir, ts, what: "ws-desync" });
        }
    }

    pub fn gap(&mut self, dir: Dir, len: u32, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let p = &mut self.parsers[dir as usize];
        let was = p.desynced();
        p.gap(len);
        if !was && p.desynced() {
            out.push(ProtoEvent::Anomaly { dir, ts, what: "ws-desync" });
        }
    }

    pub fn activity(&self) -> Option<&WsActivity> {
        (!self.taken).then_some(&self.act)
    }

    pub fn activity_mut(&mut self) -> Option<&mut WsActivity> {
        (!self.taken).then_some(&mut self.act)
    }

    pub fn take_activity(&mut self) -> Option<Box<WsActivity>> {
        if self.taken {
            return None;
        }
        self.taken = true;
        Some(Box::new(std::mem::take(&mut self.act)))
    }
}
