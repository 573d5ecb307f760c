//! The streaming pipeline, identical for files and live capture:
//! packets -> decode -> flow table (reassembly, HTTP/WebSocket parsers)
//! -> events -> analysis (correlation, facts, detectors) -> records -> sinks.

use crate::analysis::Analysis;
use crate::capture::{Next, PacketSource};
use crate::correlate::Config;
use crate::decode::{self, LinkType, Skip};
use crate::detect::Detectors;
use crate::error::Result;
use crate::event::Event;
use crate::flow::{FlowTable, Limits};
use crate::record::{self, Record, Summary};
use crate::sink::Sink;
use crate::time::{Ts, round_us};

/// How an input ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEnd {
    Complete,
    /// The file ended inside a packet record (libpcap's message).
    Truncated(String),
    /// The file is damaged part-way; what follows the damage was not read.
    Damaged(String),
}

#[derive(Debug, Default, Clone)]
pub struct PacketStats {
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub skips: [u64; Skip::ALL.len()],
    pub first_ts: Option<Ts>,
    pub last_ts: Option<Ts>,
    pub truncated: bool,
    pub damaged: bool,
}

pub struct Pipeline {
    pub flows: FlowTable,
    pub analysis: Analysis,
    /// IP fragments being reassembled.
    pub defrag: decode::frag::Defrag,
    events: Vec<Event>,
    pub stats: PacketStats,
    /// Packet time never goes backwards for expiry (merged captures can).
    pub(crate) now: Ts,
    /// The flow table's limits (the workers' tables are made with them).
    pub(crate) limits: Limits,
    /// Flow-sharded workers for capture files (`--threads`; 1: this
    /// thread does everything).
    pub threads: usize,
    /// `--cpus`: worker i is pinned to the list's i-th CPU (in turn).
    pub cpus: Option<crate::cpus::Cpus>,
    /// Secrets are masked in every record before it reaches a sink.
    redact: crate::redact::Redactor,
    /// Live capture on the command line: say on stderr, while it happens,
    /// that the memory budget is giving state up (at most every 10 s).
    pub warn_on_evictions: bool,
    warned: (u64, Option<Ts>),
    /// What the analysis' output buffer is charged to the budget now.
    output_charged: usize,
    /// A tick passed since the sinks were last offered the runtime numbers.
    runtime_due: bool,
    /// `-e`: each connection's first link-level header, for the text sink.
    pub links: Option<decode::linkaddr::SharedLinks>,
}

impl Pipeline {
    pub fn new(cfg: Config, detectors: Detectors, limits: Limits) -> Pipeline {
        let redact = cfg.redact;
        let flows = FlowTable::new(limits);
        let threads = 1;
        let mut analysis = Analysis::new(cfg, detectors);
        // Records held for time order: a quarter of the buffers' share.
        analysis.set_output_cap((flows.budget().buffer_cap() / 4) as usize);
        Pipeline {
            redact,
            warn_on_evictions: false,
            warned: (0, None),
            output_charged: 0,
            runtime_due: false,
            flows,
            analysis,
            defrag: Default::default(),
            events: Vec::with_capacity(64),
            stats: PacketStats::default(),
            now: Ts::ZERO,
            limits,
            threads,
            cpus: None,
            links: None,
        }
    }

    /// Packet time now (never goes backwards).
    pub fn now(&self) -> Ts {
        self.now
    }

    /// Feeds one captured frame.
    #[inline]
    pub fn packet(&mut self, linktype: LinkType, ts: Ts, data: &[u8], missing: u32) {
        let st = &mut self.stats;
        st.packets += 1;
        st.bytes += data.len() as u64 + missing as u64;
        if st.first_ts.is_none() {
            st.first_ts = Some(ts);
        }
        st.last_ts = Some(ts);
        if ts > self.now {
            self.now = ts;
        }
        self.flows.number_next(st.packets);
        match decode::decode(linktype, data, missing) {
            Ok(seg) => {
                st.tcp_packets += 1;
                if let Some(links) = &self.links {
                    Self::see_link(links, linktype, data, &seg);
                }
                self.flows.packet(self.now, &seg, &mut self.events);
            }
            Err(Skip::IpFragment) => self.fragment(linktype, data, missing),
            Err(skip) => {
                st.skips[Skip::ALL.iter().position(|s| *s == skip).unwrap_or(0)] += 1;
                self.flows.expire(self.now, &mut self.events);
            }
        }
        if !self.events.is_empty() {
            for ev in self.events.drain(..) {
                self.analysis.event(ev);
            }
        }
        self.tick();
        self.charge_output();
    }

    /// `-e`: remembers the link-level header of a connection's first packet.
    #[cold]
    fn see_link(links: &decode::linkaddr::SharedLinks, linktype: LinkType, data: &[u8], seg: &decode::Segment) {
        use decode::flags::{ACK, SYN};
        if let Some(h) = decode::linkaddr::LinkHeader::parse(linktype, data)
            && let Ok(mut t) = links.lock()
        {
            let key = crate::flow::FlowKey { src: seg.src, dst: seg.dst };
            t.see(key, seg.has(SYN) && !seg.has(ACK), h);
        }
    }

    /// The analysis' output buffer, charged to the budget's buffers.
    #[inline]
    fn charge_output(&mut self) {
        let held = self.analysis.held_bytes();
        if held != self.output_charged {
            self.flows.charge_buffers(held as i64 - self.output_charged as i64);
            self.output_charged = held;
        }
    }

    /// An IP fragment: reassembled (decode/frag.rs); a complete datagram
    /// goes on as any packet.
    #[cold]
    fn fragment(&mut self, linktype: LinkType, data: &[u8], missing: u32) {
        use decode::frag::Outcome;
        let frag_skip = Skip::ALL.iter().position(|s| *s == Skip::IpFragment).unwrap_or(0);
        let Ok(ip) = decode::link_payload(linktype, data) else {
            self.stats.skips[frag_skip] += 1;
            return;
        };
        let cap = (self.flows.budget().buffer_cap() / 4) as usize;
        let before = self.defrag.held as i64;
        let outcome = self.defrag.push(self.now, ip, missing, cap);
        self.flows.charge_buffers(self.defrag.held as i64 - before);
        self.stats.skips[frag_skip] += self.defrag.take_lost_frames();
        match outcome {
            Outcome::Held => self.flows.expire(self.now, &mut self.events),
            Outcome::Lost { frames } => {
                self.stats.skips[frag_skip] += frames;
                self.flows.expire(self.now, &mut self.events);
            }
            Outcome::Complete(datagram) => match decode::decode_ip(&datagram, 0, 0) {
                Ok(seg) => {
                    self.stats.tcp_packets += 1;
                    self.flows.packet(self.now, &seg, &mut self.events);
                }
                Err(skip) => {
                    self.stats.skips[Skip::ALL.iter().position(|s| *s == skip).unwrap_or(0)] += 1;
                    self.flows.expire(self.now, &mut self.events);
                }
            },
        }
    }

    /// Once per second of packet time: detectors' timers (and, live, the
    /// open sessions for early warnings).
    #[inline]
    fn tick(&mut self) {
        if self.analysis.tick_due(self.now) {
            let rows = if self.analysis.wants_rows() { self.session_rows() } else { Vec::new() };
            self.analysis.tick(self.now, &rows);
            self.runtime_due = true;
            if self.warn_on_evictions {
                self.warn_evictions();
            }
        }
    }

    /// One stderr line when the budget gave state up since the last one.
    fn warn_evictions(&mut self) {
        let st = &self.flows.budget().stats;
        let losses = st.evicted.total()
            + st.dropped
            + st.shed_connections
            + self.analysis.written_early_for_memory()
            + self.analysis.correlation.h2_forgotten();
        if losses <= self.warned.0 || self.warned.1.is_some_and(|t| self.now.since(t) < 10.0) {
            return;
        }
        self.warned = (losses, Some(self.now));
        let m = memory_of(&self.flows, &self.analysis);
        if let Some(line) = crate::sink::text::memory_line(&m) {
            eprintln!("wstap: warning: {line} so far (an attack, or raise --memcap)");
        }
    }

    /// Open WebSocket sessions with their current activity.
    pub fn session_rows(&self) -> Vec<crate::facts::SessionRow> {
        self.analysis.correlation.session_rows(&self.flows)
    }

    /// The redaction policy every record gets before a sink.
    pub fn redactor(&self) -> crate::redact::Redactor {
        self.redact
    }

    /// Packet time advanced without packets (live capture, idle link).
    pub fn idle(&mut self, now: Ts) {
        if now > self.now {
            self.now = now;
        }
        self.flows.expire(self.now, &mut self.events);
        for ev in self.events.drain(..) {
            self.analysis.event(ev);
        }
        self.tick();
        self.charge_output();
    }

    /// Hands produced records to the sink.
    pub fn drain_to(&mut self, sink: &mut dyn Sink) -> std::io::Result<()> {
        if !self.analysis.has_output() {
            return Ok(());
        }
        let redact = self.redact.enabled;
        for mut r in self.analysis.drain() {
            if redact {
                crate::redact::record(&mut r);
            }
            sink.record(&r)?;
        }
        Ok(())
    }

    /// End of input: ends every connection and session, then the summary.
    pub fn finish(&mut self) -> Summary {
        let now = self.now;
        let held = self.defrag.held as i64;
        let lost = self.defrag.finish();
        self.flows.charge_buffers(-held);
        self.stats.skips[Skip::ALL.iter().position(|s| *s == Skip::IpFragment).unwrap_or(0)] += lost;
        self.flows.finish(now, &mut self.events);
        for ev in self.events.drain(..) {
            self.analysis.event(ev);
        }
        self.analysis.finish(now);
        self.charge_output();
        self.summary()
    }

    pub fn summary(&self) -> Summary {
        summary_of(&self.stats, &self.defrag.stats, &self.flows, &self.analysis, self.redact)
    }

    /// The session keys TLS connections are decrypted with (`--keylog`,
    /// pcapng Decryption Secrets Blocks).
    pub fn keys(&self) -> &crate::proto::tls::Keys {
        self.flows.keys()
    }

    /// Once per tick: the runtime numbers to the sinks that want them now
    /// (crate::runtime; the metrics endpoint).
    #[cold]
    fn offer_runtime(&mut self, src: &mut dyn PacketSource, sink: &mut dyn Sink) {
        self.runtime_due = false;
        if sink.wants_runtime() {
            sink.runtime(&crate::runtime::RuntimeSnapshot::of(self, src.stats()));
        }
    }

    /// Reads a whole source through the pipeline into `sink`, the summary
    /// last; returns how the input ended. A truncated or damaged file is
    /// not an error here: everything before the cut or the damage is
    /// analysed, open sessions are ended and the summary is written.
    pub fn run(&mut self, src: &mut dyn PacketSource, sink: &mut dyn Sink) -> Result<InputEnd> {
        sink.begin();
        if self.threads > 1 {
            let ending = crate::shard::run(self, self.threads, src, sink)?;
            return self.end_run(src, sink, ending);
        }
        let linktype = src.linktype();
        let mut ending = InputEnd::Complete;
        loop {
            match src.next_packet()? {
                Next::Packet(p) => {
                    let missing = p.missing();
                    self.packet(linktype, p.ts, p.data, missing);
                }
                Next::Idle(now) => {
                    self.idle(now);
                }
                Next::End => break,
                Next::Truncated(msg) => {
                    self.stats.truncated = true;
                    ending = InputEnd::Truncated(msg);
                    break;
                }
                Next::Damaged(msg) => {
                    self.stats.damaged = true;
                    ending = InputEnd::Damaged(msg);
                    break;
                }
            }
            self.drain_to(sink)?;
            if self.runtime_due {
                self.offer_runtime(src, sink);
            }
        }
        self.end_run(src, sink, ending)
    }

    /// The end of a run: open sessions ended, the summary written.
    fn end_run(&mut self, src: &mut dyn PacketSource, sink: &mut dyn Sink, ending: InputEnd) -> Result<InputEnd> {
        let mut summary = self.finish();
        summary.capture = src.stats();
        (summary.host, summary.system) = (src.host(), src.system());
        self.drain_to(sink)?;
        sink.runtime(&crate::runtime::RuntimeSnapshot::of(self, summary.capture.clone()));
        sink.record(&Record::Summary(summary))?;
        sink.flush()?;
        Ok(ending)
    }
}

/// The summary from its parts: the reader's counts `st` and fragments,
/// the flow table `flows` (with workers: theirs summed,
/// [`FlowTable::mirror`]), the analysis. One pipeline's
/// [`Pipeline::summary`], and the dashboard's with workers (shard.rs).
pub(crate) fn summary_of(
    st: &PacketStats,
    defrag: &decode::frag::DefragStats,
    flows: &FlowTable,
    analysis: &Analysis,
    redact: crate::redact::Redactor,
) -> Summary {
    let mut decode_errors = std::collections::BTreeMap::new();
    let mut skipped = std::collections::BTreeMap::new();
    for (i, s) in Skip::ALL.iter().enumerate() {
        if st.skips[i] > 0 {
            if s.is_error() {
                decode_errors.insert(s.name(), st.skips[i]);
            } else {
                skipped.insert(s.name(), st.skips[i]);
            }
        }
    }
    let r = &flows.stats.reassembly;
    let a = &analysis.correlation.stats;
    Summary {
        ty: "summary",
        schema: record::Schema,
        host: None,
        system: None,
        packets: st.packets,
        bytes: st.bytes,
        tcp_packets: st.tcp_packets,
        flows: flows.stats.flows,
        decode_errors,
        skipped,
        reassembly: record::Reassembly {
            gaps: r.gaps,
            gap_bytes: r.gap_bytes,
            retransmits: r.retransmits,
            out_of_order: r.out_of_order,
            keepalives: r.keepalives,
            limit_hits: r.limit_hits,
            rexmit_inconsistent: r.rexmit_inconsistent,
        },
        http_anomalies: a.anomalies.clone(),
        http_requests: a.http_requests,
        handshakes: a.handshakes.clone(),
        sessions: a.sessions,
        findings: analysis.findings().by_kind.clone(),
        paths: a
            .metrics
            .paths()
            .into_iter()
            .map(|mut r| {
                r.key = redact.path(&r.key);
                r
            })
            .collect(),
        upstreams: a.metrics.upstreams(),
        latency_ms: record::Latencies {
            client: a.metrics.latency.client.percentiles(),
            upstream: a.metrics.latency.upstream.percentiles(),
            overhead: a.metrics.latency.overhead.percentiles(),
            relay: a.metrics.latency.relay.percentiles(),
        },
        first_ts: st.first_ts.map(|t| round_us(t.secs())),
        last_ts: st.last_ts.map(|t| round_us(t.secs())),
        elapsed_s: match (st.first_ts, st.last_ts) {
            (Some(a), Some(b)) => round_us(b.since(a)),
            _ => 0.0,
        },
        truncated: st.truncated,
        damaged: st.damaged,
        defrag: *defrag,
        memory: memory_of(flows, analysis),
        capture: None,
        tls: tls_summary(flows),
        h2: record::H2Summary::of(&flows.stats.h2),
    }
}

fn tls_summary(flows: &FlowTable) -> Option<record::TlsSummary> {
    let t = &flows.stats.tls;
    let k = flows.keys().stats();
    let keys_given = k.files > 0 || k.dsb > 0;
    if t.connections == 0 && !keys_given {
        return None;
    }
    let mut not_decrypted = std::collections::BTreeMap::new();
    for (r, n) in crate::proto::tls::Undecrypted::ALL.iter().zip(t.not_decrypted) {
        if n > 0 {
            not_decrypted.insert(r.name(), n);
        }
    }
    Some(record::TlsSummary {
        connections: t.connections,
        decrypted: t.decrypted,
        not_decrypted,
        records: t.records,
        bytes: t.bytes,
        auth_failures: t.auth_failures,
        key_updates: t.key_updates,
        late_keys: t.late_keys,
        held_dropped: t.held_dropped,
        keylog: keys_given.then_some(record::KeyLogSummary {
            files: k.files,
            dsb: k.dsb,
            lines: k.lines,
            secrets: k.secrets,
            malformed: k.malformed,
            ignored: k.ignored,
            evicted: k.evicted,
            read_errors: k.read_errors,
        }),
    })
}

/// What the memory budget gave up, and its numbers (the summary's
/// `memory`; with workers, also the live warning: shard.rs).
pub(crate) fn memory_of(flows: &FlowTable, analysis: &Analysis) -> record::Memory {
    let b = flows.budget();
    let gave_up = analysis.detectors_gave_up();
    record::Memory {
        budget_bytes: b.limit,
        peak_bytes: b.peak,
        max_connections: flows.max_flows() as u64,
        evicted: b.stats.evicted,
        dropped_connections: b.stats.dropped,
        shed_connections: b.stats.shed_connections,
        shed_bytes: b.stats.shed_bytes,
        records_written_early: analysis.written_early_for_memory(),
        h2_connections_forgotten: analysis.correlation.h2_forgotten(),
        closes_judged_early: gave_up.closes_judged_early,
        socketio_sessions_forgotten: gave_up.socketio_sessions_forgotten,
    }
}
