//! Output in packet-time order.
//!
//! Each record carries a time stamp (a handshake: its request's first byte;
//! a session: its end; a finding: the time of what it is about; `-v` lines:
//! their packet). Records are produced when their facts are complete, which
//! can be later than their stamp (a handshake waits for its answer, a close
//! is judged once the closes around it are known). They are held here and
//! written in stamp order once nothing stamped earlier can still come: the
//! *watermark* is the earliest stamp still pending (requests waiting for an
//! answer, sessions closing, findings a detector has not decided), never
//! more than [`MAX_HOLD_S`] behind packet time. It is taken at each tick
//! and whenever [`RELEASE_EVERY_BYTES`] more have come since the last.
//!
//! Memory: what is held is counted in bytes as records come and go (an
//! estimate of each record's heap, made once when it comes), charged to
//! the memory budget's buffers, and bounded by a share of it
//! ([`Reorder::set_byte_cap`]); past it the oldest records are written
//! early (out of order, never lost) and counted (`memory.records_written_early`).

use std::collections::BTreeMap;

use crate::record::Record;
use crate::time::Ts;

/// No record is held longer than this (packet time). Decisions are taken
/// within `detect::DECIDE_WITHIN_S`; only an answer that takes longer (an
/// upgrade left waiting for minutes, a connection that expired silently)
/// is written out of order, when it comes.
pub const MAX_HOLD_S: f64 = 90.0;
/// Records held at most; past it the oldest are written (memory bound).
pub const MAX_HELD: usize = 50_000;
/// Records are released at each tick (once a second of packet time) and,
/// between ticks, each time this many bytes more are held than after the
/// last release: a dense capture (thousands of sessions ending within a
/// second of packet time) holds what one second brings otherwise.
pub const RELEASE_EVERY_BYTES: usize = 4 << 20;

/// The time a record is ordered by, in microseconds.
pub fn stamp_us(r: &Record) -> i64 {
    let s = match r {
        Record::Handshake(h) => h.ts,
        Record::Session(s) => s.end,
        Record::Finding(f) => f.ts,
        Record::Http(m) => m.ts,
        Record::Frame(f) => f.ts,
        Record::Summary(_) => return i64::MAX,
    };
    (s * 1e6).round() as i64
}

/// Sizes the estimate below was calibrated with (64-bit), when records held
/// their flows and names as text: a record, a handshake hop, a JSON value,
/// a session hop, a finding. Records are smaller since they are typed; the
/// estimate stays as it was (so it errs high, and the memory accounting,
/// `memory.peak_bytes` included, is what it was).
const RECORD: usize = 1136;
const HOP: usize = 456;
const VALUE: usize = 32;
const HOP_SESSION: usize = 208;
const FINDING: usize = 208;

/// The bytes a flow printed as text takes.
fn flow_text(f: &crate::flow::FlowKey) -> usize {
    use std::net::IpAddr;
    match (f.src.ip, f.dst.ip) {
        // One write: exactly its length.
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let digits = |v: u32| {
                if v >= 10_000 {
                    5
                } else if v >= 1000 {
                    4
                } else if v >= 100 {
                    3
                } else if v >= 10 {
                    2
                } else {
                    1
                }
            };
            let ip = |a: std::net::Ipv4Addr| a.octets().iter().map(|o| digits(*o as u32)).sum::<usize>() + 3;
            ip(a) + ip(b) + digits(f.src.port as u32) + digits(f.dst.port as u32) + 4
        }
        _ => f.to_string().capacity(),
    }
}

/// Bytes a record costs while held: its own size, the map's share and
/// the heap its strings and lists take.
pub fn record_bytes(r: &Record) -> usize {
    fn o(s: &Option<String>) -> usize {
        s.as_ref().map_or(0, String::capacity)
    }
    fn hop(h: &crate::record::Hop) -> usize {
        HOP + flow_text(&h.flow)
            + [&h.method, &h.target, &h.upgrade, &h.connection, &h.key, &h.reason, &h.accept, &h.server, &h.sni]
                .into_iter()
                .map(o)
                .sum::<usize>()
            + o(&h.protocol)
            + h.tls.as_ref().map_or(0, |t| 64 + o(&t.cipher) + o(&t.sni) + o(&t.alpn))
    }
    fn value(v: &serde_json::Value) -> usize {
        use serde_json::Value;
        VALUE
            + match v {
                Value::String(s) => s.capacity(),
                Value::Array(a) => a.iter().map(value).sum(),
                Value::Object(m) => m.iter().map(|(k, v)| 48 + k.capacity() + value(v)).sum(),
                _ => 0,
            }
    }
    let flow = |f: &Option<crate::flow::FlowKey>| f.as_ref().map_or(0, flow_text);
    let heap = match r {
        Record::Http(m) => {
            flow_text(&m.flow)
                + o(&m.method)
                + o(&m.target)
                + o(&m.reason)
                + m.headers.iter().map(|(n, v)| 48 + n.capacity() + v.capacity()).sum::<usize>()
        }
        Record::Frame(f) => flow_text(&f.flow) + o(&f.close_reason),
        Record::Handshake(h) => {
            h.path.capacity() + [&h.client, &h.upstream].into_iter().flatten().map(hop).sum::<usize>()
        }
        Record::Session(s) => {
            s.path.capacity()
                + flow(&s.client_flow)
                + flow(&s.upstream_flow)
                + o(&s.close.reason)
                + s.hops.iter().map(|h| HOP_SESSION + flow_text(&h.flow)).sum::<usize>()
        }
        Record::Finding(f) => {
            FINDING
                + f.message.capacity()
                + o(&f.path)
                + o(&f.fix)
                + f.flows.iter().map(|x| 24 + flow_text(x)).sum::<usize>()
                + 16 * f.also.len()
                + value(&f.detail)
        }
        Record::Summary(_) => 4096,
    };
    // The entry in the B-tree (key, value, node slack).
    RECORD * 3 / 2 + 32 + heap
}

pub struct Reorder {
    /// Boxed: a B-tree moves its values within a node on every insert and
    /// removal, and a record is hundreds of bytes.
    held: BTreeMap<(i64, u64), (Box<Record>, u32)>,
    seq: u64,
    /// Still boxed: a record is over a kilobyte, and by the time it is
    /// released its box has gone cold. Moving it out (into this list, then
    /// out to the sink) cost three times its size in cache misses, 6% of a
    /// one-thread run's last-level misses on small packets.
    #[allow(clippy::vec_box)]
    ready: Vec<Box<Record>>,
    /// Records written before an earlier-stamped one could come (held too
    /// long or over the count bound).
    pub forced: u64,
    /// Of those, written early to stay within the memory budget.
    pub forced_memory: u64,
    /// Bytes held ([`record_bytes`]), and at most.
    bytes: usize,
    byte_cap: usize,
}

impl Default for Reorder {
    fn default() -> Self {
        Reorder {
            held: BTreeMap::new(),
            seq: 0,
            ready: Vec::new(),
            forced: 0,
            forced_memory: 0,
            bytes: 0,
            byte_cap: usize::MAX,
        }
    }
}

impl Reorder {
    /// A record whose facts are complete. Records with the same stamp keep
    /// the order they were produced in (a handshake before its findings).
    pub fn push(&mut self, r: Record) {
        let k = (stamp_us(&r), self.seq);
        self.seq += 1;
        let n = record_bytes(&r).min(u32::MAX as usize);
        self.bytes += n;
        self.held.insert(k, (Box::new(r), n as u32));
        while self.held.len() > MAX_HELD {
            self.force_oldest();
        }
        while self.bytes > self.byte_cap && !self.held.is_empty() {
            self.force_oldest();
            self.forced_memory += 1;
        }
    }

    fn force_oldest(&mut self) {
        if let Some((_, (r, n))) = self.held.pop_first() {
            self.bytes -= n as usize;
            self.forced += 1;
            self.ready.push(r);
        }
    }

    /// Bytes held at most (a share of the memory budget).
    pub fn set_byte_cap(&mut self, cap: usize) {
        self.byte_cap = cap;
    }

    /// Bytes held now (charged to the memory budget).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Releases every record stamped at or before `watermark`.
    pub fn release(&mut self, watermark: Ts) {
        let w = watermark.0;
        while let Some(e) = self.held.first_entry() {
            if e.key().0 > w {
                break;
            }
            let (r, n) = e.remove();
            self.bytes -= n as usize;
            self.ready.push(r);
        }
    }

    pub fn release_all(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.bytes = 0;
        self.ready.extend(held.into_values().map(|(r, _)| r));
    }

    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, Box<Record>> {
        self.ready.drain(..)
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> crate::flow::Endpoint {
        let sa: std::net::SocketAddr = s.parse().unwrap();
        crate::flow::Endpoint::new(sa.ip(), sa.port())
    }

    #[test]
    fn records_are_released_in_stamp_order_up_to_the_watermark() {
        use crate::record::FrameLine;
        let line = |ts: f64| {
            Record::Frame(FrameLine {
                ty: "frame",
                ts,
                flow: crate::flow::FlowKey { src: ep("10.0.0.1:1"), dst: ep("10.0.0.2:2") },
                dir: crate::proto::Dir::ToServer,
                opcode: crate::proto::ws::opcode::TEXT,
                fin: true,
                rsv1: false,
                masked: true,
                len: 0,
                close_code: None,
                close_reason: None,
                stream_id: None,
            })
        };
        let mut o = Reorder::default();
        o.push(line(3.0));
        o.push(line(1.0));
        o.push(line(2.0));
        o.release(Ts::from_secs_f64(2.0));
        let got: Vec<f64> = o.drain().map(|r| if let Record::Frame(f) = *r { f.ts } else { 0.0 }).collect();
        assert_eq!(got, [1.0, 2.0]);
        o.release_all();
        assert_eq!(o.drain().count(), 1);
    }
}
