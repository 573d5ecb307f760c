//! The engine's runtime numbers at one instant, published once per tick (a
//! second of packet time, and at the end) to the sinks that ask for them
//! ([`crate::sink::Sink::wants_runtime`]: the metrics endpoint).
//!
//! One type, built in one place ([`RuntimeSnapshot::of`]) from what the
//! pipeline and the capture source hold: counters that only grow (packets,
//! drops, evictions) and levels of the moment (connections in the table,
//! open sessions, memory in use). Whoever splits the pipeline into several
//! workers keeps this correct by summing their parts here; the sinks never
//! reach into the pipeline themselves. Building it costs a pass over the
//! open sessions (for the idle-boundary gauge) and nothing per packet.

use crate::decode::Skip;
use crate::pipeline::Pipeline;
use crate::proto::tls::Undecrypted;
use crate::record::Capture;

/// Open sessions idle for at least this share of the idle boundary, and at
/// most the boundary plus this share, are "near" it.
pub const NEAR_BOUNDARY: f64 = 0.2;
/// The idle timeout assumed when none was stated (`--timeout`) nor learned:
/// nginx's `proxy_read_timeout` default, as the live warning assumes.
pub const DEFAULT_BOUNDARY_S: f64 = 60.0;

/// Where the idle boundary of the gauge comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BoundarySource {
    /// `--timeout`.
    Configured,
    /// Several sessions cut after the same silence in this capture.
    Learned,
    /// Nothing stated nor learned: nginx's default.
    #[default]
    Default,
}

impl BoundarySource {
    pub const ALL: [BoundarySource; 3] = [BoundarySource::Configured, BoundarySource::Learned, BoundarySource::Default];
    pub fn name(self) -> &'static str {
        match self {
            BoundarySource::Configured => "configured",
            BoundarySource::Learned => "learned",
            BoundarySource::Default => "default",
        }
    }
}

/// Runtime numbers at one instant. Counters are totals since the start.
#[derive(Debug, Clone, Default)]
pub struct RuntimeSnapshot {
    /// Packet time of the snapshot, seconds since the epoch (None before
    /// the first packet).
    pub now: Option<f64>,
    /// Frames read from the source, their bytes on the wire, TCP segments.
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    /// Frames not analysed, by reason ([`Skip::ALL`] order).
    pub skipped: [u64; Skip::ALL.len()],
    /// Live capture: received and dropped where (kernel, interface, queue).
    pub capture: Option<Capture>,
    /// Connections seen since the start.
    pub connections: u64,
    /// Connections followed now, by class: seen one way only, established,
    /// upgraded.
    pub connections_open: [u64; 3],
    /// Connections the table holds at most.
    pub max_connections: u64,
    /// Memory: the budget, charged now, the highest charged.
    pub memory_limit: u64,
    pub memory_used: u64,
    pub memory_peak: u64,
    /// Given up for the budget (docs/design.md "Memory").
    pub mem: crate::budget::MemStats,
    /// Records written out of time order to stay within the budget, and
    /// what the other bounds gave up.
    pub records_written_early: u64,
    pub h2_connections_forgotten: u64,
    pub closes_judged_early: u64,
    pub socketio_sessions_forgotten: u64,
    /// HTTP requests seen.
    pub http_requests: u64,
    /// Reassembly: bytes lost to capture gaps.
    pub gap_bytes: u64,
    /// WebSocket sessions open now, and those idle within
    /// [`NEAR_BOUNDARY`] of the idle boundary.
    pub sessions_open: u64,
    pub sessions_near_boundary: u64,
    /// WebSocket frames, payload bytes and messages of every session so
    /// far, ended or open (counted on the hop nearest the client that can
    /// be read, as session records count them): only grows.
    pub relayed: crate::correlate::Relayed,
    /// The idle boundary used for that, seconds, and where it comes from.
    pub boundary: (f64, BoundarySource),
    /// TLS connections ended: all, decrypted, not decrypted by reason
    /// ([`Undecrypted::ALL`] order).
    pub tls_connections: u64,
    pub tls_decrypted: u64,
    pub tls_not_decrypted: [u64; Undecrypted::ALL.len()],
    /// HTTP/2 connections ended, their streams, RFC 8441 WebSocket streams
    /// and those accepted.
    pub h2_connections: u64,
    pub h2_streams: u64,
    pub h2_websocket_streams: u64,
    pub h2_websocket_accepted: u64,
    /// Each analysis worker's share (`--threads N`: N of them; one
    /// thread: one), in worker order.
    pub workers: Vec<WorkerNumbers>,
}

/// One analysis worker's share of the flow table: how evenly the flow hash
/// spreads the load (an elephant flow keeps one worker busy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerNumbers {
    /// TCP segments it took.
    pub packets: u64,
    /// Connections it follows now.
    pub connections_open: u64,
}

impl RuntimeSnapshot {
    /// The numbers of `p` now; `capture` is the source's statistics
    /// (`PacketSource::stats`, live capture only).
    pub fn of(p: &Pipeline, capture: Option<Capture>) -> RuntimeSnapshot {
        let now = p.stats.last_ts.map(|_| p.now());
        let live = |flow, conn| crate::correlate::Correlator::live_activity(&p.flows, flow, conn);
        RuntimeSnapshot::from_parts(&p.stats, now, &p.flows, &p.analysis, live, capture)
    }

    /// The numbers from their parts: the reader's counts `st`, packet time
    /// `now` (none before the first packet), the flow table `flows` (with
    /// workers: theirs summed, [`crate::flow::FlowTable::mirror`]), the
    /// analysis, and where the activity of connections still open is read.
    pub fn from_parts<'a>(
        st: &crate::pipeline::PacketStats,
        now: Option<crate::time::Ts>,
        flows: &crate::flow::FlowTable,
        a: &'a crate::analysis::Analysis,
        live: impl Fn(crate::flow::FlowKey, crate::event::ConnId) -> Option<&'a crate::proto::activity::WsActivity>,
        capture: Option<Capture>,
    ) -> RuntimeSnapshot {
        let b = flows.budget();
        let counts = flows.class_counts();
        let gave_up = a.detectors_gave_up();
        let boundary = match a.idle_boundary_stated() {
            Some(t) => (t, BoundarySource::Configured),
            None => match a.learned_boundary() {
                Some(t) => (t, BoundarySource::Learned),
                None => (DEFAULT_BOUNDARY_S, BoundarySource::Default),
            },
        };
        let mut relayed = a.correlation.stats.relayed_ended;
        let (open, near) = match now {
            Some(now) => {
                let o = a.correlation.open_sessions_now(
                    live,
                    now,
                    boundary.0 * (1.0 - NEAR_BOUNDARY),
                    boundary.0 * (1.0 + NEAR_BOUNDARY),
                );
                relayed.add(&o.relayed);
                (o.sessions, o.near)
            }
            None => (a.correlation.live_state().3, 0),
        };
        let tls = &flows.stats.tls;
        let h2 = &flows.stats.h2;
        RuntimeSnapshot {
            now: now.map(|t| t.secs()),
            packets: st.packets,
            bytes: st.bytes,
            tcp_packets: st.tcp_packets,
            skipped: st.skips,
            capture,
            connections: flows.stats.flows,
            connections_open: counts.map(|n| n as u64),
            max_connections: flows.max_flows() as u64,
            memory_limit: b.limit,
            memory_used: b.total(),
            memory_peak: b.peak,
            mem: b.stats,
            records_written_early: a.written_early_for_memory(),
            h2_connections_forgotten: a.correlation.h2_forgotten(),
            closes_judged_early: gave_up.closes_judged_early,
            socketio_sessions_forgotten: gave_up.socketio_sessions_forgotten,
            http_requests: a.correlation.stats.http_requests,
            gap_bytes: flows.stats.reassembly.gap_bytes,
            sessions_open: open as u64,
            relayed,
            sessions_near_boundary: near as u64,
            boundary,
            tls_connections: tls.connections,
            tls_decrypted: tls.decrypted,
            tls_not_decrypted: tls.not_decrypted,
            h2_connections: h2.connections,
            h2_streams: h2.streams,
            h2_websocket_streams: h2.websocket_streams,
            h2_websocket_accepted: h2.websocket_accepted,
            workers: flows
                .workers()
                .iter()
                .map(|w| WorkerNumbers {
                    packets: w.stats.packets,
                    connections_open: w.classes.iter().sum::<usize>() as u64,
                })
                .collect(),
        }
    }
}
