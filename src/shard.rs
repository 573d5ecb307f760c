//! Flow-sharded workers (`--threads N`, N > 1), for capture files and
//! live capture.
//!
//! The per-packet work (decode, flow table, reassembly, HTTP / WebSocket /
//! TLS / HTTP/2 parsers) is spread over N workers by a keyed hash of the
//! connection's two ends in order: both directions of a connection, and
//! every reuse of its 4-tuple, land on the same worker, which owns its
//! flow table and parsers and emits events. Correlation and detectors stay on
//! one thread (the correlator), fed with the workers' events merged into
//! exactly the order one flow table would have produced them, so that the
//! output does not depend on N. Four stages: the reader (the calling
//! thread), N workers, the correlator (correlation, detectors, records
//! redacted) and the writer (the records to the sinks, in order):
//!
//! - The reader (the calling thread) numbers every input step (a packet,
//!   or an idle tick), decodes each packet once (the worker gets the TCP
//!   header's fields and a copy of the payload only), and hands batches
//!   of steps, shared, to every worker.
//!   A packet goes to its connection's worker; every worker sees every
//!   step's time and expires its own connections at the same steps one
//!   table would (the expiry sweep runs at the same packet-time instants
//!   everywhere).
//! - Connection ids are the number of the packet that created the
//!   connection (flow::FlowTable::number_next), the same for any N.
//! - Each worker's output is a list of runs of events, keyed
//!   `(step, phase, connection id)`: phase 0 the connections the step
//!   expired (one run per connection, in id order, as one table's sweep
//!   sorts them), phase 1 the packet's own events, phase 2 the end of
//!   input (every live connection, in id order). Runs are merged by key;
//!   two workers never produce the same key.
//! - Packet-time ticks (correlation's timers, detectors' decisions, once
//!   per second of packet time) are decided by the reader from the step
//!   times and run after the events of their step, as in one thread.
//!
//! The watermark that says what is safe to release is the batch: a batch
//! is correlated once every worker has returned its part (every worker
//! has passed its last step), and batches are correlated in input order,
//! at most [`IN_FLIGHT`] behind the reader.
//!
//! Memory: each worker's table has `--memcap / N` (connections, state and
//! buffers each get their share of that, as one table's do); the records
//! held for time order (correlator) and IP fragments (reader) are bounded
//! by the shares one table gives them; the batches in flight and the one being
//! filled hold at most `(IN_FLIGHT + 2) x BATCH_BYTES` (1.5 MiB) of packets
//! besides, and their events.
//!
//! Live capture (the source is the live queue, this thread its reader): a
//! batch goes out as soon as the queue holds nothing more (`lull`) or at an
//! idle tick, the writer writes records as soon as they are correlated, and at
//! each tick's step the workers copy their connections' WebSocket activity
//! for the open sessions' rows the detectors read (one table's
//! `session_rows`).
//!
//! The dashboard (`Sink::view_every`): the reader ends a batch when a view
//! is due by wall time and marks it; the workers copy their activity at
//! its last step and the correlator makes the view after it.
//!
//! Where the budget has to give state up, which connections go depends on
//! each worker's share (a flood on one worker's hash evicts there), so
//! under memory pressure the output may depend on N; it never does
//! otherwise. The hash is keyed ([`Shards`]): fixed for capture files (the
//! same output at every run), drawn at start live (no one can aim a flood
//! at one worker's share).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::analysis::Analysis;
use crate::capture::{Next, PacketSource};
use crate::decode::{self, LinkType, Segment, Skip};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::flow::key::{Endpoint, FxHashMap};
use crate::flow::table::{Activity, TableCounts};
use crate::flow::{FlowTable, Limits};
use crate::pipeline::{InputEnd, Pipeline};
use crate::record::Record;
use crate::sink::Sink;
use crate::time::Ts;

/// Steps per batch, at most.
pub const BATCH: usize = 4096;
/// Packet bytes per batch, at most (a batch ends at the first step past it).
pub const BATCH_BYTES: usize = 256 << 10;
/// The dashboard: steps between two looks at the wall clock for a view
/// that is due (besides the end of each batch).
pub const VIEW_CHECK: usize = 512;
/// Batches handed to the workers and not yet correlated, at most.
pub const IN_FLIGHT: usize = 4;
/// The default `--threads`: the cores available, at most this many.
pub const MAX_DEFAULT_THREADS: usize = 8;
/// `--threads` at most.
pub const MAX_THREADS: usize = 64;

/// Capture files smaller than this are read with one thread unless
/// `--threads` says otherwise: they are analysed in milliseconds either way.
pub const AUTO_MIN_BYTES: u64 = 64 << 20;

/// The default number of workers: the available cores (or the CPUs
/// `--cpus` lists, `cores`), capped.
pub fn default_threads(cores: Option<usize>) -> usize {
    cores.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).clamp(1, MAX_DEFAULT_THREADS)
}

/// The default for an input: [`default_threads`] for a capture file of
/// [`AUTO_MIN_BYTES`] or more, else one (small files, standard input, and
/// live capture, which uses one analysis thread behind its capture thread
/// unless asked: docs/design.md "Threads").
pub fn default_threads_for(read: Option<&str>, cores: Option<usize>) -> usize {
    match read {
        Some(f) if f != "-" && std::fs::metadata(f).is_ok_and(|m| m.len() >= AUTO_MIN_BYTES) => default_threads(cores),
        _ => 1,
    }
}

/// One step of the input.
struct Step {
    /// Packet time as one pipeline sees it (never going backwards).
    now: Ts,
    /// The packet's number (ids of the connections it creates).
    packet_no: u64,
    /// The TCP segment, decoded by the reader (decoded once), its payload
    /// at `off..off + len` of the batch's data; `None`: a step that only
    /// advances time (a skipped packet, a fragment held, an idle tick).
    seg: Option<Segment<'static>>,
    off: u32,
    len: u32,
    /// The worker whose packet it is.
    owner: u16,
}

#[derive(Default)]
struct Batch {
    /// Number of the batch's first step.
    first: u64,
    steps: Vec<Step>,
    data: Vec<u8>,
    /// Steps after which a packet-time tick is due, with its time.
    ticks: Vec<(u64, Ts)>,
    /// When the sinks take the runtime numbers (the metrics endpoint) or
    /// the dashboard its view: the reader's counts, packet time and the
    /// capture's own numbers at the batch's end.
    end: Option<Box<End>>,
    /// The dashboard's view is made after this batch, of the state at its
    /// last step (the reader cuts a batch when one is due, by wall time).
    view: bool,
}

impl Batch {
    /// The number of the batch's last step.
    fn last_step(&self) -> u64 {
        self.first + self.steps.len().saturating_sub(1) as u64
    }
}

/// The reader's side at a batch's end (its last tick, or the step a view
/// was due at).
struct End {
    stats: crate::pipeline::PacketStats,
    now: Ts,
    capture: Option<crate::record::Capture>,
    defrag: decode::frag::DefragStats,
}

impl End {
    /// Packet time then, none before the first packet.
    fn clock(&self) -> Option<Ts> {
        self.stats.last_ts.map(|_| self.now)
    }
}

enum Job {
    Batch(Arc<Batch>),
    Finish(Ts),
}

/// A run of a worker's events: `(step, phase, connection id)` and where
/// it ends in `Output::events`.
#[derive(Clone, Copy)]
struct Run {
    key: (u64, u8, u64),
    end: usize,
}

#[derive(Default)]
struct Output {
    runs: Vec<Run>,
    events: Vec<Event>,
    /// Live capture: at each tick's step, copies of the WebSocket activity
    /// of the worker's open connections (the open sessions' rows).
    acts: Vec<(u64, Vec<Activity>)>,
    /// The worker's table after its part of the batch (live capture: the
    /// runtime numbers are the sums over workers).
    table: TableCounts,
}

/// Which worker a connection belongs to: the same for both directions and
/// every reuse of its 4-tuple (a keyed hash of its two ends in order),
/// taken from the hash's high bits.
///
/// The key: capture files use a fixed one, so that a file gives the same
/// output at every run, under memory pressure too. Live capture draws one
/// at start, as Suricata seeds its flow hash (`hash_rand`): each worker's
/// table has its share of the budget, and with a hash anyone can compute,
/// a flood whose tuples were chosen to land on one worker would fill that
/// share alone and evict the connections there while the others idle.
#[derive(Clone)]
struct Shards {
    n: u64,
    hash: foldhash::fast::FixedState,
}

/// The fixed key of capture files.
const FILE_KEY: u64 = 0x7773_7461_705f_7368;

impl Shards {
    fn new(n: usize, live: bool) -> Shards {
        use std::hash::BuildHasher;
        let key = if live { foldhash::fast::RandomState::default().hash_one(FILE_KEY) } else { FILE_KEY };
        Shards { n: n as u64, hash: foldhash::fast::FixedState::with_seed(key) }
    }

    #[inline]
    fn of(&self, a: Endpoint, b: Endpoint) -> usize {
        use std::hash::BuildHasher;
        let ends = if a <= b { (a, b) } else { (b, a) };
        let x = self.hash.hash_one(ends);
        (((x >> 32) * self.n) >> 32) as usize
    }
}

/// Closes runs for the events `expire` (or `finish`) pushed since `start`:
/// what came before the first mark (key log arrivals) as connection 0,
/// then one run per connection closed.
fn close_marked(flows: &mut FlowTable, out: &mut Output, start: usize, step: u64, phase: u8) {
    let Some(marks) = flows.marks.as_mut() else { return };
    if out.events.len() == start {
        marks.clear();
        return;
    }
    let first = marks.first().map_or(out.events.len(), |m| m.1);
    if first > start {
        out.runs.push(Run { key: (step, phase, 0), end: first });
    }
    for (i, &(id, at)) in marks.iter().enumerate() {
        let end = marks.get(i + 1).map_or(out.events.len(), |m| m.1);
        if end > at {
            out.runs.push(Run { key: (step, phase, id), end });
        }
    }
    marks.clear();
}

fn work(
    me: u16,
    acts_at_ticks: bool,
    mut flows: FlowTable,
    rx: Receiver<Job>,
    tx: SyncSender<Output>,
    spare: Receiver<Output>,
) -> FlowTable {
    flows.marks = Some(Vec::new());
    while let Ok(job) = rx.recv() {
        // The vectors of an output the correlator is done with.
        let mut out = spare.try_recv().unwrap_or_default();
        match job {
            Job::Batch(b) => {
                let mut t = 0;
                for (i, s) in b.steps.iter().enumerate() {
                    let step = b.first + i as u64;
                    let start = out.events.len();
                    flows.expire(s.now, &mut out.events);
                    close_marked(&mut flows, &mut out, start, step, 0);
                    if let Some(head) = s.seg.filter(|_| s.owner == me) {
                        let mid = out.events.len();
                        let seg = Segment { payload: &b.data[s.off as usize..(s.off + s.len) as usize], ..head };
                        flows.number_next(s.packet_no);
                        flows.packet(s.now, &seg, &mut out.events);
                        if out.events.len() > mid {
                            out.runs.push(Run { key: (step, 1, 0), end: out.events.len() });
                        }
                    }
                    // The open sessions' activity as one table has it when
                    // the tick after this step runs.
                    if acts_at_ticks && b.ticks.get(t).is_some_and(|k| k.0 == step) {
                        t += 1;
                        let mut acts = Vec::new();
                        flows.activities(&mut acts);
                        out.acts.push((step, acts));
                    }
                }
                // The dashboard's view: the activity at the batch's end.
                let last = b.last_step();
                if b.view && out.acts.last().is_none_or(|a| a.0 != last) {
                    let mut acts = Vec::new();
                    flows.activities(&mut acts);
                    out.acts.push((last, acts));
                }
            }
            Job::Finish(now) => {
                flows.finish(now, &mut out.events);
                close_marked(&mut flows, &mut out, 0, u64::MAX, 2);
            }
        }
        out.table = flows.counts();
        if tx.send(out).is_err() {
            break;
        }
    }
    flows
}

/// The reader's side: what one pipeline does before the flow table, with
/// the packet handed to its worker instead.
/// What of the pipeline the reader uses (the correlator has the rest).
struct Front<'a> {
    stats: &'a mut crate::pipeline::PacketStats,
    defrag: &'a mut decode::frag::Defrag,
    flows: &'a mut FlowTable,
    now: &'a mut Ts,
}

struct Reader {
    shards: Shards,
    batch: Batch,
    /// A correlated batch's buffers, for the next.
    spare: Option<Batch>,
    next_step: u64,
    last_tick: Option<Ts>,
    /// The sinks take the runtime numbers: each batch carries its end's,
    /// and a batch ends at each tick (`tick_cut`), so the numbers are
    /// those of the tick's instant, as with one thread.
    runtime: bool,
    tick_cut: bool,
    /// The dashboard: its view at most this often (wall time paces the
    /// screen only; what is shown is of packet time), and when it was last
    /// asked for.
    view_every: Option<std::time::Duration>,
    last_view: Option<std::time::Instant>,
}

impl Reader {
    fn step(&mut self, p: &mut Front<'_>, seg: Option<&Segment<'_>>) {
        let b = &mut self.batch;
        let off = b.data.len() as u32;
        let (head, len, owner) = match seg {
            Some(seg) => {
                b.data.extend_from_slice(seg.payload);
                let head = Segment { payload: &[], ..*seg };
                (Some(head), seg.payload.len() as u32, self.shards.of(seg.src, seg.dst) as u16)
            }
            None => (None, 0, 0),
        };
        let now = *p.now;
        b.steps.push(Step { now, packet_no: p.stats.packets, seg: head, off, len, owner });
        let step = self.next_step;
        self.next_step += 1;
        if self.last_tick.is_none_or(|t| now.0 - t.0 >= 1_000_000) {
            self.last_tick = Some(now);
            b.ticks.push((step, now));
            self.tick_cut = self.runtime;
        }
    }

    /// One captured frame: counted and decoded as `Pipeline::packet` does.
    fn packet(&mut self, p: &mut Front<'_>, linktype: LinkType, ts: Ts, data: &[u8], missing: u32) {
        let st = &mut *p.stats;
        st.packets += 1;
        st.bytes += data.len() as u64 + missing as u64;
        if st.first_ts.is_none() {
            st.first_ts = Some(ts);
        }
        st.last_ts = Some(ts);
        if ts > *p.now {
            *p.now = ts;
        }
        match decode::decode(linktype, data, missing) {
            Ok(seg) => {
                p.stats.tcp_packets += 1;
                self.step(p, Some(&seg));
            }
            Err(Skip::IpFragment) => self.fragment(p, linktype, data, missing),
            Err(skip) => {
                p.stats.skips[Skip::ALL.iter().position(|s| *s == skip).unwrap_or(0)] += 1;
                self.step(p, None);
            }
        }
    }

    /// An IP fragment, reassembled here as `Pipeline` does.
    #[cold]
    fn fragment(&mut self, p: &mut Front<'_>, linktype: LinkType, data: &[u8], missing: u32) {
        use decode::frag::Outcome;
        let frag_skip = Skip::ALL.iter().position(|s| *s == Skip::IpFragment).unwrap_or(0);
        let Ok(ip) = decode::link_payload(linktype, data) else {
            p.stats.skips[frag_skip] += 1;
            return;
        };
        let cap = (p.flows.budget().buffer_cap() / 4) as usize;
        let before = p.defrag.held as i64;
        let outcome = p.defrag.push(*p.now, ip, missing, cap);
        p.flows.charge_buffers(p.defrag.held as i64 - before);
        p.stats.skips[frag_skip] += p.defrag.take_lost_frames();
        match outcome {
            Outcome::Held => self.step(p, None),
            Outcome::Lost { frames } => {
                p.stats.skips[frag_skip] += frames;
                self.step(p, None);
            }
            Outcome::Complete(datagram) => match decode::decode_ip(&datagram, 0, 0) {
                Ok(seg) => {
                    p.stats.tcp_packets += 1;
                    self.step(p, Some(&seg));
                }
                Err(skip) => {
                    p.stats.skips[Skip::ALL.iter().position(|s| *s == skip).unwrap_or(0)] += 1;
                    self.step(p, None);
                }
            },
        }
    }

    /// The dashboard's view is due: looked at every [`VIEW_CHECK`] steps
    /// and when the batch goes out anyway (`going`). A due view ends the
    /// batch.
    fn view_due(&mut self, going: bool) -> bool {
        let Some(every) = self.view_every else { return false };
        let n = self.batch.steps.len();
        if n == 0 || !(going || n.is_multiple_of(VIEW_CHECK)) {
            return false;
        }
        let now = std::time::Instant::now();
        if self.last_view.is_some_and(|at| now.duration_since(at) < every) {
            return false;
        }
        self.last_view = Some(now);
        self.batch.view = true;
        true
    }

    fn take(&mut self, p: &Front<'_>, src: &mut dyn PacketSource) -> Batch {
        let first = self.next_step;
        let next = self.spare.take().unwrap_or_default();
        let mut b = std::mem::replace(&mut self.batch, next);
        b.first = first - b.steps.len() as u64;
        // (Only a batch with a tick, or a view, makes a snapshot; live,
        // most batches have neither, and the capture's numbers are a
        // system call.)
        if (self.runtime && !b.ticks.is_empty()) || b.view {
            b.end = Some(Box::new(End {
                stats: p.stats.clone(),
                now: *p.now,
                capture: src.stats(),
                defrag: p.defrag.stats,
            }));
        }
        self.tick_cut = false;
        b
    }
}

/// The workers' copies of their connections' activity at a batch's ticks.
type Acts = Vec<Vec<(u64, Vec<Activity>)>>;

/// Feeds the workers' outputs for one batch to the analysis in one
/// pipeline's order, with the batch's ticks after their steps; returns
/// the workers' activity copies.
fn correlate(analysis: &mut Analysis, outs: &mut [Output], ticks: &[(u64, Ts)]) -> Acts {
    let acts: Acts = outs.iter_mut().map(|o| std::mem::take(&mut o.acts)).collect();
    let mut runs: Vec<std::iter::Peekable<std::slice::Iter<'_, Run>>> = Vec::with_capacity(outs.len());
    let mut events = Vec::with_capacity(outs.len());
    let mut at = vec![0usize; outs.len()];
    for o in outs.iter_mut() {
        runs.push(o.runs.iter().peekable());
        events.push(o.events.drain(..));
    }
    let mut t = 0;
    loop {
        let mut best: Option<(usize, (u64, u8, u64))> = None;
        for (w, it) in runs.iter_mut().enumerate() {
            if let Some(r) = it.peek()
                && best.is_none_or(|b| r.key < b.1)
            {
                best = Some((w, r.key));
            }
        }
        let Some((w, key)) = best else { break };
        while t < ticks.len() && ticks[t].0 < key.0 {
            tick(analysis, ticks[t], &acts);
            t += 1;
        }
        let run = *runs[w].next().expect("a run");
        for ev in events[w].by_ref().take(run.end - at[w]) {
            analysis.event(ev);
        }
        at[w] = run.end;
    }
    drop(events);
    for &k in &ticks[t..] {
        tick(analysis, k, &acts);
    }
    for o in outs.iter_mut() {
        o.runs.clear();
    }
    acts
}

/// The activity copies taken at `step`, by connection.
fn acts_at(acts: &Acts, step: u64) -> FxHashMap<((Endpoint, Endpoint), u64), &crate::proto::activity::WsActivity> {
    let mut by = FxHashMap::default();
    for (k, a) in acts.iter().flatten().filter(|a| a.0 == step).flat_map(|a| &a.1) {
        by.insert(*k, a);
    }
    by
}

/// The runtime numbers after a batch: the reader's counts at its end, the
/// workers' tables summed (`tables`), the analysis, and the open
/// sessions' activity as copied at the batch's last tick.
fn snapshot(
    analysis: &Analysis,
    tables: &FlowTable,
    b: &Batch,
    acts: &Acts,
) -> Option<Box<crate::runtime::RuntimeSnapshot>> {
    let e = b.end.as_deref()?;
    let &(step, _) = b.ticks.last()?;
    let by = acts_at(acts, step);
    let live = |flow: crate::flow::FlowKey, conn| by.get(&(flow.canonical(), conn)).copied();
    Some(Box::new(crate::runtime::RuntimeSnapshot::from_parts(
        &e.stats,
        e.clock(),
        tables,
        analysis,
        live,
        e.capture.clone(),
    )))
}

/// The dashboard's state after a batch: the summary from its parts, and
/// the open sessions' rows from the workers' copies of their activity at
/// the batch's last step (as one pipeline's at that instant).
fn view(
    analysis: &mut Analysis,
    tables: &FlowTable,
    b: &Batch,
    acts: &Acts,
    redact: crate::redact::Redactor,
) -> Option<Box<crate::tui::feed::Snapshot>> {
    let e = b.end.as_deref()?;
    let by = acts_at(acts, b.last_step());
    let rows = analysis.correlation.session_rows_by(|flow, conn| by.get(&(flow.canonical(), conn)).copied());
    let summary = crate::pipeline::summary_of(&e.stats, &e.defrag, tables, analysis, redact);
    Some(Box::new(crate::tui::feed::snapshot_of(summary, rows, analysis, redact, e.capture.clone(), e.clock())))
}

/// The packet-time tick after `step`; live, with the open sessions' rows
/// made from the workers' copies of their activity at that step.
fn tick(analysis: &mut Analysis, (step, now): (u64, Ts), acts: &Acts) {
    if !analysis.wants_rows() || !analysis.tick_due(now) {
        analysis.tick(now, &[]);
        return;
    }
    let by = acts_at(acts, step);
    let rows = analysis.correlation.session_rows_by(|flow, conn| by.get(&(flow.canonical(), conn)).copied());
    analysis.tick(now, &rows);
}

/// Live capture: one stderr line when the budget gave state up since the
/// last one (at most every 10 s of packet time), as `Pipeline` says it
/// with one thread; read from the workers' tables summed.
struct Warn {
    last: (u64, Option<Ts>),
}

impl Warn {
    fn check(&mut self, analysis: &Analysis, tables: &FlowTable, now: Ts) {
        let m = crate::pipeline::memory_of(tables, analysis);
        let losses = m.evicted.total()
            + m.dropped_connections
            + m.shed_connections
            + m.records_written_early
            + m.h2_connections_forgotten;
        if losses <= self.last.0 || self.last.1.is_some_and(|t| now.since(t) < 10.0) {
            return;
        }
        self.last = (losses, Some(now));
        if let Some(line) = crate::sink::text::memory_line(&m) {
            eprintln!("wstap: warning: {line} so far (an attack, or raise --memcap)");
        }
    }
}

/// Reads `src` through N workers and one correlator (this thread) into
/// `sink`, up to the end of input: every connection ended and its events
/// correlated; `Pipeline::run` then finishes as with one thread.
pub fn run(p: &mut Pipeline, n: usize, src: &mut dyn PacketSource, sink: &mut dyn Sink) -> Result<InputEnd> {
    let linktype = src.linktype();
    let limits = Limits { memcap: (p.limits.memcap / n as u64).max(1), ..p.limits };
    let keys = p.flows.keys().clone();
    let redact = p.redactor();
    let cpus = p.cpus.clone();
    // Live capture: batches go out as soon as the capture has nothing more
    // queued, records are written as soon as they are correlated, and the
    // open sessions' rows are made for the detectors at each tick.
    let live = p.analysis.wants_rows();
    // The metrics endpoint: the runtime numbers after each batch with a
    // tick, as one thread offers them at each tick.
    let runtime = sink.wants_runtime();
    // The dashboard: its view about this often (wall time; shown: packet time).
    let view_every = sink.view_every();
    let snapshots = runtime || view_every.is_some();
    let mut warn = p.warn_on_evictions.then_some(Warn { last: (0, None) });
    // Live, or for the runtime numbers: the workers' tables as one (their
    // numbers summed after each batch).
    let mut tables = (live || snapshots).then(|| {
        let mut t = FlowTable::new(p.limits);
        t.share_keys(keys.clone());
        t
    });
    let Pipeline { analysis, stats, defrag, flows, now, .. } = p;
    let mut front = Front { stats, defrag, flows, now };
    std::thread::scope(|scope| {
        let mut to = Vec::with_capacity(n);
        let mut from = Vec::with_capacity(n);
        let mut spares = Vec::with_capacity(n);
        let mut handles = Vec::with_capacity(n);
        for w in 0..n {
            let (jtx, jrx) = sync_channel::<Job>(IN_FLIGHT + 1);
            let (otx, orx) = sync_channel::<Output>(IN_FLIGHT + 1);
            let (stx, srx) = sync_channel::<Output>(2);
            let mut table = FlowTable::new(limits);
            table.share_keys(keys.clone());
            let cpus = cpus.clone();
            let h = std::thread::Builder::new()
                .name(format!("wstap-worker-{w}"))
                .spawn_scoped(scope, move || {
                    if let Some(c) = &cpus {
                        crate::cpus::pin_worker(c, w);
                    }
                    work(w as u16, live || runtime, table, jrx, otx, srx)
                })
                .map_err(|e| Error::msg(format!("cannot start a worker thread: {e}")))?;
            to.push(jtx);
            from.push(orx);
            spares.push(stx);
            handles.push(h);
        }
        // The correlator: the workers' outputs for each batch merged into
        // the analysis, its records (redacted) on to the writer.
        type Snapshot = Option<Box<crate::runtime::RuntimeSnapshot>>;
        type View = Option<Box<crate::tui::feed::Snapshot>>;
        let (ctx, crx) = sync_channel::<Option<Arc<Batch>>>(IN_FLIGHT + 2);
        let (rtx, rrx) = sync_channel::<(Vec<Box<Record>>, Option<Arc<Batch>>, Snapshot, View)>(IN_FLIGHT + 2);
        let correlator = std::thread::Builder::new()
            .name("wstap-correlator".into())
            .spawn_scoped(scope, move || {
                while let Ok(b) = crx.recv() {
                    let mut outs = Vec::with_capacity(n);
                    for rx in &from {
                        let Ok(o) = rx.recv() else { return };
                        outs.push(o);
                    }
                    let acts = correlate(analysis, &mut outs, b.as_ref().map_or(&[], |b| &b.ticks));
                    let (mut snap, mut shown) = (None, None);
                    if let Some(t) = tables.as_mut() {
                        let parts: Vec<TableCounts> = outs.iter().map(|o| o.table).collect();
                        t.mirror(&parts);
                        if let (Some(w), Some(b)) = (warn.as_mut(), b.as_ref())
                            && let Some(&(_, now)) = b.ticks.last()
                        {
                            w.check(analysis, t, now);
                        }
                        if runtime && let Some(b) = b.as_ref() {
                            snap = snapshot(analysis, t, b, &acts);
                        }
                        if let Some(b) = b.as_ref().filter(|b| b.view) {
                            shown = view(analysis, t, b, &acts, redact);
                        }
                    }
                    drop(acts);
                    // The vectors go back to their workers (dropped when they have one).
                    for (o, tx) in outs.into_iter().zip(&spares) {
                        let _ = tx.try_send(o);
                    }
                    let mut records: Vec<Box<Record>> =
                        if analysis.has_output() { analysis.drain().collect() } else { Vec::new() };
                    if redact.enabled {
                        for r in &mut records {
                            crate::redact::record(r);
                        }
                    }
                    let last = b.is_none();
                    if rtx.send((records, b, snap, shown)).is_err() || last {
                        return;
                    }
                }
            })
            .map_err(|e| Error::msg(format!("cannot start the correlator thread: {e}")))?;
        // The writer: the records to the sinks (formatting them is a third
        // to half of what stays serial), then each batch back to the reader,
        // done with (its buffers hold a later batch). Live, records are out
        // as soon as they are correlated.
        let (dtx, drx) = sync_channel::<Option<Arc<Batch>>>(IN_FLIGHT + 2);
        let writer = std::thread::Builder::new()
            .name("wstap-writer".into())
            .spawn_scoped(scope, move || -> Result<()> {
                while let Ok((records, b, snap, shown)) = rrx.recv() {
                    for r in &records {
                        sink.record(r)?;
                    }
                    drop(records);
                    if let Some(snap) = snap
                        && sink.wants_runtime()
                    {
                        sink.runtime(&snap);
                    }
                    if let Some(v) = shown {
                        sink.view(v);
                    }
                    let last = b.is_none();
                    if dtx.send(b).is_err() || last {
                        break;
                    }
                }
                Ok(())
            })
            .map_err(|e| Error::msg(format!("cannot start the writer thread: {e}")))?;
        let mut reader = Reader {
            shards: Shards::new(n, live),
            batch: Batch::default(),
            spare: None,
            next_step: 0,
            last_tick: None,
            runtime,
            tick_cut: false,
            view_every,
            last_view: None,
        };
        let mut in_flight = 0usize;
        // A batch written (waiting for one, or, `ready_only`, only if one
        // is: false when none is).
        let done = |reader: &mut Reader, ready_only: bool| -> bool {
            let b = if ready_only {
                match drx.try_recv() {
                    Ok(b) => b,
                    Err(_) => return false,
                }
            } else {
                match drx.recv() {
                    Ok(b) => b,
                    Err(_) => return false,
                }
            };
            if let Some(b) = b
                && let Ok(mut old) = Arc::try_unwrap(b)
                && reader.spare.is_none()
            {
                old.steps.clear();
                old.data.clear();
                old.ticks.clear();
                old.end = None;
                old.view = false;
                reader.spare = Some(old);
            }
            true
        };
        // Reads and dispatches up to the end of input; false: a thread
        // behind this one stopped (the writer's error, or a panic, says why).
        let mut ending = InputEnd::Complete;
        let read = (|| -> Result<bool> {
            loop {
                let mut end = false;
                match src.next_packet()? {
                    Next::Packet(pk) => {
                        let missing = pk.missing();
                        reader.packet(&mut front, linktype, pk.ts, pk.data, missing);
                    }
                    Next::Idle(t) => {
                        if t > *front.now {
                            *front.now = t;
                        }
                        reader.step(&mut front, None);
                    }
                    Next::End => end = true,
                    Next::Truncated(msg) => {
                        front.stats.truncated = true;
                        ending = InputEnd::Truncated(msg);
                        end = true;
                    }
                    Next::Damaged(msg) => {
                        front.stats.damaged = true;
                        ending = InputEnd::Damaged(msg);
                        end = true;
                    }
                }
                let full =
                    reader.batch.steps.len() >= BATCH || reader.batch.data.len() >= BATCH_BYTES || reader.tick_cut;
                // Live: nothing more queued by the capture (or an idle tick).
                let lull = live && src.lull();
                let view = reader.view_due(full || end || lull);
                if full || view || ((end || lull) && !reader.batch.steps.is_empty()) {
                    let b = Arc::new(reader.take(&front, src));
                    for tx in &to {
                        if tx.send(Job::Batch(b.clone())).is_err() {
                            return Ok(false);
                        }
                    }
                    if ctx.send(Some(b)).is_err() {
                        return Ok(false);
                    }
                    in_flight += 1;
                    while in_flight > IN_FLIGHT {
                        if !done(&mut reader, false) {
                            return Ok(false);
                        }
                        in_flight -= 1;
                    }
                }
                if lull {
                    while in_flight > 0 && done(&mut reader, true) {
                        in_flight -= 1;
                    }
                }
                if end {
                    break;
                }
            }
            // The end of input: every worker's live connections, in id order.
            for tx in &to {
                if tx.send(Job::Finish(*front.now)).is_err() {
                    return Ok(false);
                }
            }
            if ctx.send(None).is_err() {
                return Ok(false);
            }
            for _ in 0..=in_flight {
                if !done(&mut reader, false) {
                    return Ok(false);
                }
            }
            Ok(true)
        })();
        // Every thread ends once its input does: the writer's error (a
        // closed pipe) first, then a thread that panicked.
        drop(to);
        drop(ctx);
        drop(drx);
        let wrote = writer.join().map_err(|_| Error::msg("the writer thread panicked"))?;
        let correlated = correlator.join();
        let mut tables = Vec::with_capacity(n);
        let mut worker_panicked = false;
        for h in handles {
            match h.join() {
                Ok(t) => tables.push(t),
                Err(_) => worker_panicked = true,
            }
        }
        wrote?;
        let finished = read?;
        if correlated.is_err() {
            return Err(Error::msg("the correlator thread panicked"));
        }
        if worker_panicked {
            return Err(Error::msg("a worker thread panicked"));
        }
        if !finished {
            return Err(Error::msg("a worker thread stopped"));
        }
        front.flows.absorb(&tables);
        Ok(ending)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    fn v4(a: u32, port: u16) -> Endpoint {
        Endpoint { ip: IpAddr::V4(Ipv4Addr::from_bits(a)), port }
    }

    fn v6(a: u128, port: u16) -> Endpoint {
        Endpoint { ip: IpAddr::V6(Ipv6Addr::from_bits(a)), port }
    }

    /// Per worker, how many of `tuples` land there.
    fn counts(s: &Shards, n: usize, tuples: &[(Endpoint, Endpoint)]) -> Vec<usize> {
        let mut c = vec![0; n];
        for &(a, b) in tuples {
            c[s.of(a, b)] += 1;
        }
        c
    }

    /// A SYN flood's sources against one proxy port.
    fn flood() -> Vec<(Endpoint, Endpoint)> {
        let proxy = v4(0x0a00_0001, 443);
        (0..10_000u32)
            .map(|i| (v4(0xc633_6400 ^ i.wrapping_mul(2_654_435_761), 1024 + (i % 60_000) as u16), proxy))
            .collect()
    }

    #[test]
    fn both_directions_land_on_one_worker() {
        for live in [false, true] {
            let s = Shards::new(4, live);
            for (a, b) in flood().into_iter().take(1000) {
                assert_eq!(s.of(a, b), s.of(b, a));
            }
        }
    }

    #[test]
    fn connections_spread_over_the_workers() {
        for n in [2, 4, 8] {
            let c = counts(&Shards::new(n, false), n, &flood());
            let fair = 10_000 / n;
            assert!(c.iter().all(|&k| k > fair * 8 / 10 && k < fair * 12 / 10), "{n} workers: {c:?}");
        }
    }

    /// Sources in one IPv6 /48 that an unkeyed fold of the address
    /// (`lo ^ rotl(hi, 17)`, the hash before this one) maps to one value,
    /// so to one worker whatever the mix after it: the keyed hash of the
    /// whole address spreads them.
    #[test]
    fn addresses_made_to_collide_do_not_pick_the_worker() {
        let net: u128 = 0x2001_0db8_00aa << 80;
        let proxy = v6(0x2001_0db8_ffff << 80 | 1, 443);
        let tuples: Vec<_> = (0..4096u128)
            .map(|i| {
                let hi_low16 = i << 64; // the /48's own bits of the high word
                let lo = i << 17; // cancels them in the fold
                (v6(net | hi_low16 | lo, 40_000), proxy)
            })
            .collect();
        let fold = |a: u128| (a as u64) ^ ((a >> 64) as u64).rotate_left(17);
        assert!(tuples.windows(2).all(|w| {
            let (IpAddr::V6(x), IpAddr::V6(y)) = (w[0].0.ip, w[1].0.ip) else { return false };
            fold(x.to_bits()) == fold(y.to_bits())
        }));
        for live in [false, true] {
            let c = counts(&Shards::new(2, live), 2, &tuples);
            assert!(c.iter().all(|&k| k > 1500), "{c:?}");
        }
    }

    /// Live capture draws its key: the workers it picks are not those a
    /// capture file's fixed key gives (64 connections agreeing by chance:
    /// one in 2^64).
    #[test]
    fn live_capture_draws_its_own_key() {
        let tuples: Vec<_> = flood().into_iter().take(64).collect();
        let file = Shards::new(2, false);
        let live = Shards::new(2, true);
        assert!(tuples.iter().any(|&(a, b)| file.of(a, b) != live.of(a, b)));
        let again = Shards::new(2, false);
        assert!(tuples.iter().all(|&(a, b)| file.of(a, b) == again.of(a, b)));
    }
}
