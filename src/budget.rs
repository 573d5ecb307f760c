//! The memory budget for flow state (`--memcap`): one number bounds
//! everything wstap keeps per connection, whatever the traffic.
//!
//! It is split the way Suricata splits its stream and reassembly memcaps,
//! so that one attack cannot take the memory another kind of state needs:
//!
//! | share | holds | when it is full |
//! |---|---|---|
//! | 7/16 table | the connection table (slots, growth included) | at most [`Budget::max_flows`] connections: new ones take the place of the oldest unanswered SYN, then of the least recently active established connection |
//! | 5/16 state | per-connection state outside the table: the analyzer's view of each connection, parsers, WebSocket activity, sessions | least recently active connections are evicted: unanswered first, then established, upgraded WebSockets last |
//! | 4/16 buffers | out-of-order segments held for reassembly, partial HTTP heads, bytes held during an upgrade, heads of requests awaiting their response, IP fragments | the oldest big holders (16 KB or more), then the oldest small ones, give their buffers up (holes become gaps, partial heads are dropped); a connection still holding more than [`SHED_EVICT_BYTES`] in unanswered requests is evicted |
//!
//! Connections that were only ever seen in one direction (a SYN nobody
//! answered, a one-sided data flood) may fill half of the table at most;
//! beyond that a new one takes the place of the oldest (the kernel's SYN
//! queue and Suricata's emergency mode do the same): during a SYN flood, a
//! real handshake's SYN survives as long as it takes the flood to send
//! that many SYNs, far longer than a SYN-ACK takes.
//!
//! Every eviction and every dropped buffer is counted ([`MemStats`]) and
//! reported in the summary, the dashboard and, live, on stderr.

use serde::Serialize;

/// The default: the sum of Suricata's default stream (64 MB) and
/// reassembly (256 MB) memcaps, rounded up so that the table holds 114,688
/// connections; affordable on any proxy host.
pub const DEFAULT_MEMCAP: u64 = 384 << 20;
/// The smallest budget accepted: room for a few hundred connections.
pub const MIN_MEMCAP: u64 = 1 << 20;

/// A connection still holding this much in requests awaiting their
/// response after its buffers were shed is evicted.
pub const SHED_EVICT_BYTES: u64 = 64 * 1024;

/// State outside the table that every connection costs: the analyzer's
/// connection entry and its queues, the eviction queues, the lingering
/// queue (measured with a counting allocator: tests/hostile_memory.rs).
pub const PER_CONN: u64 = 512;
/// An HTTP connection's parser.
pub const PER_HTTP: u64 = std::mem::size_of::<crate::proto::http::HttpConn>() as u64 + 64;
/// An upgraded connection: its frame parsers and activity, the analyzer's
/// per-WebSocket and per-session state.
pub const PER_WEBSOCKET: u64 = std::mem::size_of::<crate::proto::http::WsState>() as u64 + 1024;

/// A TLS connection: its record layer, handshake state and record keys
/// (the parser of its plaintext is charged as for a plaintext one).
pub const PER_TLS: u64 = std::mem::size_of::<crate::proto::tls::TlsConn>() as u64 + 1536;
/// An HTTP/2 connection without its streams and HPACK tables (charged as
/// they grow: proto/h2/conn.rs): its state, two HPACK decoders, the
/// analyzer's view of it.
pub const PER_H2: u64 = std::mem::size_of::<crate::proto::h2::H2Conn>() as u64 + 1024;

/// Eviction classes, in the order they are given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Seen in one direction only: an unanswered SYN, a one-sided flood.
    Unconfirmed = 0,
    /// Both directions seen, not upgraded.
    Established = 1,
    /// Upgraded to WebSocket: what wstap is for, evicted last.
    Upgraded = 2,
}

/// What the budget had to give up, for the summary (`memory` in the JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Evicted {
    /// Connections seen in one direction only (unanswered SYNs).
    pub half_open: u64,
    pub established: u64,
    pub upgraded: u64,
}

impl Evicted {
    pub fn total(&self) -> u64 {
        self.half_open + self.established + self.upgraded
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MemStats {
    /// Connections no longer followed to make room, by class.
    pub evicted: Evicted,
    /// New connections not followed at all: no room could be made.
    pub dropped: u64,
    /// Connections whose buffers were given up, and the bytes freed.
    pub shed_connections: u64,
    pub shed_bytes: u64,
}

impl MemStats {
    /// Adds another budget's counters (flow-sharded workers' sums).
    pub fn add(&mut self, f: &MemStats) {
        self.evicted.half_open += f.evicted.half_open;
        self.evicted.established += f.evicted.established;
        self.evicted.upgraded += f.evicted.upgraded;
        self.dropped += f.dropped;
        self.shed_connections += f.shed_connections;
        self.shed_bytes += f.shed_bytes;
    }
}

/// The budget and what is charged against it, in bytes.
#[derive(Debug, Clone)]
pub struct Budget {
    pub limit: u64,
    /// Connections the table may hold (from its share of the budget).
    pub max_flows: usize,
    /// The table's allocation as it is now.
    pub table: u64,
    /// Per-connection state outside the table.
    pub state: u64,
    /// Buffers.
    pub buffers: u64,
    /// Highest total seen.
    pub peak: u64,
    pub stats: MemStats,
    /// The shares, computed once (checked on every packet).
    state_cap: u64,
    buffer_cap: u64,
}

/// Bytes charged for one slot of the connection table: its key and
/// connection (at most [`SLOT`] - 1 bytes, checked when compiling), and the
/// map's control byte. A fixed charge rather than the size of the day, so
/// that the memory the summary reports does not move each time a field of
/// `Conn` is added or removed; raise it when the check fails.
pub const SLOT: u64 = 417;
const _: () = assert!(
    (std::mem::size_of::<((crate::flow::Endpoint, crate::flow::Endpoint), crate::flow::conn::Conn)>() as u64) < SLOT,
    "a connection table slot outgrew budget::SLOT"
);

impl Budget {
    pub fn new(limit: u64) -> Budget {
        let limit = limit.max(MIN_MEMCAP);
        // The table grows by doubling; while it does, the old and the new
        // allocation both exist (1.5 times the final size). Its largest
        // size is the largest power of two of slots whose growth fits its
        // share; it holds 7/16 of that many connections at most, so that
        // deleted slots can always be reclaimed in place, never by growing.
        let share = limit / 16 * 7;
        let mut buckets: u64 = 16;
        while (buckets * 2) * SLOT * 3 / 2 <= share {
            buckets *= 2;
        }
        let max_flows = (buckets * 7 / 16) as usize;
        Budget {
            limit,
            max_flows,
            table: 0,
            state: 0,
            buffers: 0,
            peak: 0,
            stats: MemStats::default(),
            state_cap: limit / 16 * 5,
            buffer_cap: limit / 4,
        }
    }

    #[inline]
    pub fn state_cap(&self) -> u64 {
        self.state_cap
    }

    #[inline]
    pub fn buffer_cap(&self) -> u64 {
        self.buffer_cap
    }

    /// Connections seen in one direction only, at most.
    pub fn unconfirmed_cap(&self) -> usize {
        (self.max_flows / 2).max(1)
    }

    pub fn total(&self) -> u64 {
        self.table + self.state + self.buffers
    }

    #[inline]
    pub fn note_peak(&mut self) {
        let t = self.total();
        if t > self.peak {
            self.peak = t;
        }
    }

    /// Buffers or state over their share.
    #[inline]
    pub fn over(&self) -> bool {
        self.buffers > self.buffer_cap || self.state > self.state_cap
    }

    /// The table's allocation for a capacity as the standard library's
    /// hash map reports it (7/8 of a power of two of slots).
    pub fn table_bytes(capacity: usize) -> u64 {
        if capacity == 0 {
            return 0;
        }
        let buckets = ((capacity as u64 * 8).div_ceil(7)).next_power_of_two();
        buckets * SLOT
    }
}

/// Parses a `--memcap` size: a number with an optional unit (`k`, `m`,
/// `g`, with or without `b`/`ib`, any case); a bare number is MiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("--memcap {s}: expected a size such as 256M or 1G"))?;
    let mult: u64 = match unit.trim() {
        "" | "m" | "mb" | "mib" => 1 << 20,
        "k" | "kb" | "kib" => 1 << 10,
        "g" | "gb" | "gib" => 1 << 30,
        "b" => 1,
        _ => return Err(format!("--memcap {s}: unknown unit '{unit}' (use k, M or G)")),
    };
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < MIN_MEMCAP as f64 {
        return Err(format!("--memcap {s}: at least 1M is needed"));
    }
    if bytes > (1u64 << 50) as f64 {
        return Err(format!("--memcap {s}: too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_like_suricata_memcaps() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("64mb").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("512").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("2048k").unwrap(), 2 << 20);
        assert!(parse_size("12q").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("100k").is_err(), "below the minimum");
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn the_table_and_its_growth_fit_its_share() {
        for mb in [1u64, 8, 32, 100, 384, 1000, 4096] {
            let b = Budget::new(mb << 20);
            let buckets = (b.max_flows as u64 * 16 / 7).next_power_of_two();
            assert!(buckets * SLOT * 3 / 2 <= b.limit / 16 * 7 || buckets <= 32, "{mb} MB");
            assert!(b.max_flows >= 7, "{mb} MB");
        }
        assert!(Budget::new(DEFAULT_MEMCAP).max_flows >= 100_000, "{}", Budget::new(DEFAULT_MEMCAP).max_flows);
    }
}
