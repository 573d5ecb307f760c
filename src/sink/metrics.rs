//! The Prometheus endpoint (`--metrics ADDR`): what the records and the
//! engine's runtime numbers add up to, served at `/metrics` in the
//! Prometheus text format, or OpenMetrics when the scraper asks for it
//! (docs/metrics.md is the contract: every name, label and bound).
//!
//! The packet path never waits on a scrape. This sink counts the records
//! it is handed in plain integers it alone owns, and publishes a copy of
//! them (with the latest [`RuntimeSnapshot`]) on the pipeline's tick (a
//! second of packet time) when records came since the last copy, or when
//! that copy is older than [`PUBLISH_EVERY`] of wall time, by swapping an
//! `Arc` under a mutex it only *tries* to take: if a scrape happens to
//! hold it (for the time of an `Arc` clone) the copy waits for the next
//! tick. The port is bound by [`serve`] before the capture starts; the
//! server thread (tiny_http) starts in [`Sink::begin`], once privileges
//! are dropped, and encodes what was last published with the
//! `prometheus-client` encoders, one thread per request (requests of at
//! most [`MAX_IN_FLIGHT`] connections at once), so a scraper that
//! connects and never reads holds only its own thread.
//!
//! Label values come from closed sets (outcomes, roles, finding kinds,
//! severities, known proxies, close kinds) except `path`, which is the
//! first [`TOP_PATHS`] distinct paths seen and `other` for the rest:
//! a path scan adds one series at most.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::{Options, Sink};
use crate::decode::Skip;
use crate::proto::tls::Undecrypted;
use crate::record::{CloseHow, Closer, FindingKind, Outcome, Record, Role, Severity};
use crate::runtime::RuntimeSnapshot;

/// Paths with a label of their own; the others are `other`.
pub const TOP_PATHS: usize = 20;
/// Published at most this often (wall time), and at the end.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Connections answered at once (a scraper that stops reading holds
/// one); beyond, a new connection gets `503`.
pub const MAX_IN_FLIGHT: usize = 16;

/// Idle time before a close, seconds: fine around the idle timeouts
/// proxies and load balancers default to (30 s, 55 s, 60 s, 90 s, 100 s),
/// so that a cut just after 60 s is told from one at 55 s.
pub const IDLE_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 15.0, 20.0, 25.0, 29.0, 31.0, 45.0, 54.0, 56.0, 59.0, 61.0, 75.0, 89.0, 91.0, 99.0, 101.0, 120.0,
    180.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Handshake latencies, seconds: from half a millisecond, and the same
/// resolution as [`IDLE_BUCKETS`] around the timeouts a proxy waits on a
/// backend for (`proxy_read_timeout` 60 s, haproxy's `timeout server`).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 29.0, 31.0, 54.0, 56.0, 59.0,
    61.0, 89.0, 91.0, 99.0, 101.0, 120.0,
];

/// The proxies a finding's `proxy` label may name, and `unknown`.
fn proxy_label(detail: &serde_json::Value) -> &'static str {
    detail
        .get("proxy")
        .and_then(|v| v.as_str())
        .and_then(crate::detect::proxy::Proxy::named)
        .map_or("unknown", |p| p.name())
}

/// Longest `path` label, in characters (longer paths are cut there).
pub const PATH_LABEL_MAX: usize = 128;

/// A path as a label: without its query string or fragment, cut at
/// [`PATH_LABEL_MAX`] characters, terminal-unsafe characters escaped (a
/// scrape read in a terminal shows no raw byte from the wire; quotes,
/// backslashes and newlines are the encoder's to escape).
pub fn path_label(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let cut: String = path.chars().take(PATH_LABEL_MAX).collect();
    crate::escape::text(&cut).into_owned()
}

/// A histogram with fixed buckets (counts per bucket, not cumulative; the
/// last one is `+Inf`).
#[derive(Debug, Clone)]
pub struct Hist {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Hist {
    pub fn new(bounds: &'static [f64]) -> Hist {
        Hist { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }
    pub fn observe(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds.iter().copied().chain([f64::INFINITY]).zip(self.counts.iter().copied()).collect()
    }
}

/// Everything the endpoint shows: counted from records, plus the last
/// runtime snapshot.
#[derive(Debug, Clone)]
pub struct Counts {
    /// Handshakes by outcome ([`Outcome::ALL`]) and the role of the hop
    /// the outcome was seen on ([`Role::ALL`]).
    pub handshakes: [[u64; 2]; 4],
    /// The first [`TOP_PATHS`] paths, by outcome; then `other`.
    pub paths: Vec<(String, [u64; 4])>,
    pub other_paths: [u64; 4],
    /// Findings by kind ([`FindingKind::ALL`] order).
    pub findings: Vec<u64>,
    /// Findings by kind, severity and proxy.
    pub findings_detail: BTreeMap<(FindingKind, Severity, &'static str), u64>,
    /// Sessions ended, by how ([`CloseHow::ALL`]) and by whom
    /// ([`Closer::ALL`], then unknown).
    pub sessions: [[u64; 4]; 4],
    /// Idle time before the close, by how the session ended.
    pub idle: [Hist; 4],
    /// Handshake latency on the client hop, the upstream hop, and what the
    /// proxy added (client minus upstream).
    pub latency: [Hist; 2],
    pub overhead: Hist,
    /// The engine's numbers at the last tick.
    pub runtime: RuntimeSnapshot,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts {
            handshakes: Default::default(),
            paths: Vec::new(),
            other_paths: [0; 4],
            findings: vec![0; FindingKind::ALL.len()],
            findings_detail: BTreeMap::new(),
            sessions: Default::default(),
            idle: std::array::from_fn(|_| Hist::new(IDLE_BUCKETS)),
            latency: std::array::from_fn(|_| Hist::new(LATENCY_BUCKETS)),
            overhead: Hist::new(LATENCY_BUCKETS),
            runtime: RuntimeSnapshot::default(),
        }
    }
}

fn index<T: PartialEq>(all: &[T], x: &T) -> usize {
    all.iter().position(|a| a == x).unwrap_or(0)
}

impl Counts {
    /// Counts one record.
    pub fn record(&mut self, r: &Record) {
        match r {
            Record::Handshake(h) => {
                let o = index(&Outcome::ALL, &h.outcome);
                let role = if h.client.is_some() { Role::Client } else { Role::Upstream };
                self.handshakes[o][index(Role::ALL, &role)] += 1;
                let path = path_label(&h.path);
                match self.paths.iter().position(|(p, _)| *p == path) {
                    Some(i) => self.paths[i].1[o] += 1,
                    None if self.paths.len() < TOP_PATHS => {
                        let mut n = [0; 4];
                        n[o] = 1;
                        self.paths.push((path, n));
                    }
                    None => self.other_paths[o] += 1,
                }
                let ms = |v: Option<f64>| v.filter(|v| v.is_finite() && *v >= 0.0);
                let (c, u) = (ms(h.latency_ms.client), ms(h.latency_ms.upstream));
                if let Some(c) = c {
                    self.latency[0].observe(c / 1000.0);
                }
                if let Some(u) = u {
                    self.latency[1].observe(u / 1000.0);
                }
                if let (Some(c), Some(u)) = (c, u) {
                    self.overhead.observe((c - u).max(0.0) / 1000.0);
                }
            }
            Record::Finding(f) => {
                self.findings[index(FindingKind::ALL, &f.kind)] += 1;
                *self.findings_detail.entry((f.kind, f.severity, proxy_label(&f.detail))).or_default() += 1;
            }
            Record::Session(s) => {
                let how = index(CloseHow::ALL, &s.close.how);
                let by = s.close.by.map_or(Closer::ALL.len(), |b| index(Closer::ALL, &b));
                self.sessions[how][by] += 1;
                if let Some(idle) = s.close.idle_s {
                    self.idle[how].observe(idle);
                }
            }
            _ => {}
        }
    }

    /// The exposition, in the Prometheus text format (`openmetrics`:
    /// OpenMetrics 1.0, `# EOF` included).
    pub fn exposition(self: &Arc<Self>, openmetrics: bool) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Exporter(Arc::clone(self))));
        let mut out = String::with_capacity(32 * 1024);
        let r = if openmetrics {
            prometheus_client::encoding::text::encode(&mut out, &registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        };
        if r.is_err() {
            out.clear();
        }
        out
    }
}

/// What the sink and the server share: the counts last published.
#[derive(Debug, Default)]
pub struct Shared {
    current: Mutex<Arc<Counts>>,
}

impl Shared {
    /// The counts last published (the lock is held for an `Arc` clone).
    pub fn current(&self) -> Arc<Counts> {
        match self.current.lock() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }
}

/// The endpoint, bound (before capture starts, so that a bad address or a
/// port in use is one line and exit 2) and serving.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub shared: Arc<Shared>,
    pub addr: SocketAddr,
    /// The socket, bound and listening; served from [`Sink::begin`] on,
    /// once privileges are dropped (a thread started before the drop would
    /// keep the capabilities and `no_new_privs` the drop sets per thread).
    listener: Arc<Mutex<Option<std::net::TcpListener>>>,
}

/// The sink, when `--metrics` asked for it.
pub fn build(o: &Options) -> Option<Box<dyn Sink + Send>> {
    o.metrics.as_ref().map(|e| Box::new(MetricsSink::serving(e)) as Box<dyn Sink + Send>)
}

pub struct MetricsSink {
    counts: Counts,
    shared: Arc<Shared>,
    /// When the counts were last published, and whether records came since.
    published: Option<Instant>,
    dirty: bool,
    /// The socket to serve, until the server thread starts.
    listener: Option<Arc<Mutex<Option<std::net::TcpListener>>>>,
}

impl MetricsSink {
    /// Counts published to `shared`, served by nobody (tests, embedding).
    pub fn new(shared: Arc<Shared>) -> MetricsSink {
        MetricsSink { counts: Counts::default(), shared, published: None, dirty: true, listener: None }
    }

    /// Counts served at the endpoint (from [`Sink::begin`]).
    pub fn serving(e: &Endpoint) -> MetricsSink {
        MetricsSink { listener: Some(e.listener.clone()), ..MetricsSink::new(e.shared.clone()) }
    }

    /// Starts the server thread (once).
    fn start(&mut self) {
        let Some(l) = self.listener.take() else { return };
        let Some(listener) = l.lock().ok().and_then(|mut g| g.take()) else { return };
        let shared = self.shared.clone();
        let started = tiny_http::Server::from_listener(listener, None).map_err(|e| e.to_string()).and_then(|server| {
            std::thread::Builder::new()
                .name("wstap-metrics".into())
                .spawn(move || run_server(server, shared))
                .map_err(|e| e.to_string())
        });
        if let Err(e) = started {
            eprintln!("wstap: warning: --metrics: cannot serve: {e}");
        }
    }

    /// Publishes a copy of the counts; `wait`: even if a scrape holds the
    /// lock (at the end, when nothing is waiting for packets any more).
    fn publish(&mut self, wait: bool) {
        let copy = Arc::new(self.counts.clone());
        let guard = if wait {
            Some(self.shared.current.lock().unwrap_or_else(|p| p.into_inner()))
        } else {
            self.shared.current.try_lock().ok()
        };
        if let Some(mut g) = guard {
            *g = copy;
            self.dirty = false;
            self.published = Some(Instant::now());
        }
    }
}

impl Sink for MetricsSink {
    fn begin(&mut self) {
        self.start();
    }
    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        self.counts.record(r);
        self.dirty = true;
        if let Record::Summary(_) = r {
            self.publish(true);
        }
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.dirty {
            self.publish(true);
        }
        Ok(())
    }
    fn wants_runtime(&self) -> bool {
        // Records came since the last copy (an input that stops short of
        // the next tick must not hide them), or the gauges are old.
        self.dirty || self.published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY)
    }
    fn runtime(&mut self, s: &RuntimeSnapshot) {
        self.counts.runtime = s.clone();
        self.publish(false);
    }
}

/// Binds `addr` now (before the capture starts and privileges are
/// dropped: a port below 1024 can be used, and a port in use is an error
/// before any packet); `/metrics` is served on a thread of its own from
/// the sink's [`Sink::begin`].
pub fn serve(addr: SocketAddr) -> crate::error::Result<Endpoint> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| crate::error::Error::usage(format!("--metrics {addr}: cannot listen: {e}")))?;
    let addr = listener.local_addr().unwrap_or(addr);
    Ok(Endpoint { shared: Arc::new(Shared::default()), addr, listener: Arc::new(Mutex::new(Some(listener))) })
}

fn run_server(server: tiny_http::Server, shared: Arc<Shared>) {
    // Requests being answered, by connection (tiny_http reads a
    // connection's next request only once the last one is answered, so a
    // connection has one at a time, and one that stops reading holds one
    // thread, blocked in its write).
    let in_flight: Arc<Mutex<HashMap<Option<SocketAddr>, usize>>> = Arc::default();
    for req in server.incoming_requests() {
        let peer = req.remote_addr().copied();
        {
            let mut m = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if !m.contains_key(&peer) && m.len() >= MAX_IN_FLIGHT {
                drop(m);
                // A new connection: its first answer cannot block.
                let _ = req.respond(tiny_http::Response::from_string("busy\n").with_status_code(503));
                continue;
            }
            *m.entry(peer).or_default() += 1;
        }
        let (shared, in_flight) = (shared.clone(), in_flight.clone());
        let _ = std::thread::Builder::new().name("wstap-scrape".into()).spawn(move || {
            respond(req, &shared);
            let mut m = in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = m.get_mut(&peer) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&peer);
                }
            }
        });
    }
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics before the text format.
pub fn wants_openmetrics(accept: &str) -> bool {
    let q = |kind: &str| {
        accept
            .split(',')
            .filter(|part| part.trim_start().starts_with(kind))
            .map(|part| {
                part.split(';')
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .find_map(|q| q.parse::<f64>().ok())
                    .unwrap_or(1.0)
            })
            .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))))
    };
    match (q("application/openmetrics-text"), q("text/plain")) {
        (Some(om), Some(text)) => om > 0.0 && om >= text,
        (Some(om), None) => om > 0.0,
        _ => false,
    }
}

fn respond(req: tiny_http::Request, shared: &Shared) {
    use tiny_http::{Header, Method, Response};
    let header = |k: &str, v: &str| Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("a valid header");
    let path = req.url().split('?').next().unwrap_or("");
    let get = matches!(req.method(), Method::Get | Method::Head);
    let r = match (path, get) {
        ("/metrics", true) => {
            let accept = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Accept"))
                .map(|h| h.value.as_str().to_string())
                .unwrap_or_default();
            let om = wants_openmetrics(&accept);
            let body = shared.current().exposition(om);
            let ty = if om { OPENMETRICS } else { prometheus_client::encoding::prometheus_text::CONTENT_TYPE };
            req.respond(Response::from_string(body).with_header(header("Content-Type", ty)))
        }
        ("/", true) => req.respond(
            Response::from_string("<html><body><a href=\"/metrics\">/metrics</a></body></html>\n")
                .with_header(header("Content-Type", "text/html; charset=utf-8")),
        ),
        (_, false) => req.respond(Response::from_string("GET only\n").with_status_code(405)),
        _ => req.respond(Response::from_string("not found; see /metrics\n").with_status_code(404)),
    };
    let _ = r;
}

/// The `prometheus-client` collector over one published copy.
#[derive(Debug)]
struct Exporter(Arc<Counts>);

type Enc<'a> = DescriptorEncoder<'a>;
type FmtResult = Result<(), std::fmt::Error>;

fn counter(e: &mut Enc, name: &str, help: &str, v: u64) -> FmtResult {
    e.encode_descriptor(name, help, None, MetricType::Counter)?.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(e: &mut Enc, name: &str, help: &str, v: f64) -> FmtResult {
    e.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&v)
}

fn counters<L: EncodeLabelSet>(
    e: &mut Enc,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> FmtResult {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in rows {
        m.encode_family(&l)?.encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

fn gauges<L: EncodeLabelSet>(
    e: &mut Enc,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> FmtResult {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (l, v) in rows {
        m.encode_family(&l)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn histograms<'h, L: EncodeLabelSet>(
    e: &mut Enc,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, &'h Hist)>,
) -> FmtResult {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (l, h) in rows {
        m.encode_family(&l)?.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None)?;
    }
    Ok(())
}

impl Collector for Exporter {
    fn encode(&self, mut e: DescriptorEncoder) -> FmtResult {
        let c = &*self.0;
        let rt = &c.runtime;
        let e = &mut e;
        gauges(
            e,
            "wstap_build_info",
            "wstap's version (always 1).",
            [([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;

        // Handshakes.
        counters(
            e,
            "wstap_handshakes",
            "WebSocket handshakes by outcome, and the role of the hop the outcome was seen on (client: the hop nearest the client; upstream: a proxy's forward seen alone).",
            Outcome::ALL.iter().enumerate().flat_map(|(o, out)| {
                Role::ALL
                    .iter()
                    .enumerate()
                    .map(move |(r, role)| ([("outcome", out.name()), ("role", role.name())], c.handshakes[o][r]))
            }),
        )?;
        counters(
            e,
            "wstap_path_handshakes",
            "WebSocket handshakes by path (the first 20 paths seen, without query; the rest are 'other') and outcome.",
            c.paths.iter().map(|(p, n)| (p.as_str(), n)).chain([("other", &c.other_paths)]).flat_map(|(p, n)| {
                Outcome::ALL.iter().enumerate().map(move |(o, out)| ([("path", p), ("outcome", out.name())], n[o]))
            }),
        )?;
        histograms(
            e,
            "wstap_handshake_latency_seconds",
            "Time from a handshake's request to its response, on the client hop and on the upstream hop.",
            Role::ALL.iter().zip(&c.latency).map(|(r, h)| ([("hop", r.name())], h)),
        )?;
        histograms(
            e,
            "wstap_handshake_proxy_overhead_seconds",
            "What the proxy added to a handshake: the client hop's latency minus the upstream hop's.",
            [(NoLabels, &c.overhead)],
        )?;

        // Findings.
        counters(
            e,
            "wstap_findings",
            "Findings by kind (docs/findings.md); every kind is present from the start.",
            FindingKind::ALL.iter().zip(&c.findings).map(|(k, n)| ([("kind", k.name())], *n)),
        )?;
        counters(
            e,
            "wstap_findings_by_severity",
            "Findings by kind, severity and the proxy recognised in front ('unknown' when none); a series appears with its first finding.",
            c.findings_detail
                .iter()
                .map(|((k, s, p), n)| ([("kind", k.name()), ("severity", s.name()), ("proxy", *p)], *n)),
        )?;

        // Sessions.
        counters(
            e,
            "wstap_sessions_closed",
            "WebSocket sessions ended, by what ended them first (close-frame, fin, rst, end-of-capture) and by whom (client, server, proxy, unknown).",
            CloseHow::ALL.iter().enumerate().flat_map(|(h, how)| {
                Closer::ALL
                    .iter()
                    .map(|b| b.name())
                    .chain(["unknown"])
                    .enumerate()
                    .map(move |(b, by)| ([("how", how.name()), ("by", by)], c.sessions[h][b]))
            }),
        )?;
        histograms(
            e,
            "wstap_session_idle_before_close_seconds",
            "How long a session had been silent (no frame on any hop) when it was closed, by what closed it.",
            CloseHow::ALL.iter().zip(&c.idle).map(|(h, hist)| ([("how", h.name())], hist)),
        )?;
        let dirs = |v: &[u64; 2]| [([("direction", "to_server")], v[0]), ([("direction", "to_client")], v[1])];
        let r = &rt.relayed;
        counters(
            e,
            "wstap_frames",
            "WebSocket frames relayed in sessions (open ones included), by direction.",
            dirs(&r.frames),
        )?;
        counters(
            e,
            "wstap_payload_bytes",
            "WebSocket payload bytes relayed in sessions (open ones included), by direction.",
            dirs(&r.bytes),
        )?;
        counters(
            e,
            "wstap_messages",
            "WebSocket messages relayed in sessions (open ones included), by direction.",
            dirs(&r.messages),
        )?;
        gauge(e, "wstap_sessions_open", "WebSocket sessions open now.", rt.sessions_open as f64)?;
        gauge(
            e,
            "wstap_sessions_near_idle_boundary",
            "Open sessions silent for 80% to 120% of the idle boundary (wstap_idle_boundary_seconds): about to be cut, or being.",
            rt.sessions_near_boundary as f64,
        )?;
        gauges(
            e,
            "wstap_idle_boundary_seconds",
            "The idle timeout open sessions are measured against, and where it comes from (configured: --timeout; learned: from sessions cut after the same silence; default: 60 s).",
            [([("source", rt.boundary.1.name())], rt.boundary.0)],
        )?;

        // Capture and engine.
        counter(e, "wstap_packets", "Frames read from the capture.", rt.packets)?;
        counter(e, "wstap_packet_bytes", "Bytes of the frames read, as on the wire.", rt.bytes)?;
        counter(e, "wstap_tcp_packets", "TCP segments among them.", rt.tcp_packets)?;
        counters(
            e,
            "wstap_packets_skipped",
            "Frames not analysed, by reason (malformed ones included).",
            Skip::ALL.iter().zip(rt.skipped).map(|(s, n)| ([("reason", s.name())], n)),
        )?;
        let cap = rt.capture.clone().unwrap_or_default();
        counter(
            e,
            "wstap_capture_received",
            "Packets the kernel's filter accepted (live capture).",
            cap.received.unwrap_or(0),
        )?;
        counters(
            e,
            "wstap_capture_dropped",
            "Packets lost before analysis: by the kernel (buffer full), the interface, or wstap's own queue (analysis too slow).",
            [
                ([("where", "kernel")], cap.dropped_kernel.unwrap_or(0)),
                ([("where", "interface")], cap.dropped_interface.unwrap_or(0)),
                ([("where", "queue")], cap.dropped_queue.unwrap_or(0)),
            ],
        )?;
        if let Some(rings) = &cap.rings {
            counters(
                e,
                "wstap_capture_ring_packets",
                "Packets taken from each kernel ring (--fanout): how evenly the kernel's flow hash spreads them.",
                rings.iter().enumerate().map(|(i, n)| ([("ring", i.to_string())], *n)),
            )?;
        }
        counter(e, "wstap_connections", "TCP connections seen.", rt.connections)?;
        const CLASSES: [&str; 3] = ["half_open", "established", "upgraded"];
        gauges(
            e,
            "wstap_flow_table_connections",
            "Connections followed now, by class (half_open: seen one way only).",
            CLASSES.iter().zip(rt.connections_open).map(|(c, n)| ([("class", *c)], n as f64)),
        )?;
        gauge(
            e,
            "wstap_flow_table_capacity",
            "Connections the table holds at most under the memory budget.",
            rt.max_connections as f64,
        )?;
        if !rt.workers.is_empty() {
            counters(
                e,
                "wstap_worker_packets",
                "TCP segments each analysis worker took (--threads; one thread is worker 0): how evenly the flow hash spreads the load.",
                rt.workers.iter().enumerate().map(|(i, w)| ([("worker", i.to_string())], w.packets)),
            )?;
            gauges(
                e,
                "wstap_worker_connections",
                "Connections each analysis worker follows now.",
                rt.workers.iter().enumerate().map(|(i, w)| ([("worker", i.to_string())], w.connections_open as f64)),
            )?;
        }
        let ev = &rt.mem.evicted;
        counters(
            e,
            "wstap_connections_evicted",
            "Connections no longer followed to stay within the memory budget, by class.",
            CLASSES.iter().zip([ev.half_open, ev.established, ev.upgraded]).map(|(c, n)| ([("class", *c)], n)),
        )?;
        counter(
            e,
            "wstap_connections_dropped",
            "New connections not followed at all: no room could be made.",
            rt.mem.dropped,
        )?;
        counter(e, "wstap_buffers_shed_bytes", "Buffered bytes given up for the memory budget.", rt.mem.shed_bytes)?;
        counters(
            e,
            "wstap_state_forgotten",
            "What other bounds gave up: records written out of time order, HTTP/2 connection views, closes judged early, Socket.IO sessions.",
            [
                ([("what", "records_written_early")], rt.records_written_early),
                ([("what", "h2_connections")], rt.h2_connections_forgotten),
                ([("what", "closes_judged_early")], rt.closes_judged_early),
                ([("what", "socketio_sessions")], rt.socketio_sessions_forgotten),
            ],
        )?;
        gauge(e, "wstap_memory_budget_bytes", "The memory budget (--memcap).", rt.memory_limit as f64)?;
        gauge(e, "wstap_memory_used_bytes", "Memory charged against the budget now.", rt.memory_used as f64)?;
        gauge(e, "wstap_memory_peak_bytes", "Highest memory charged against the budget.", rt.memory_peak as f64)?;
        counter(e, "wstap_http_requests", "HTTP requests seen.", rt.http_requests)?;
        counter(
            e,
            "wstap_reassembly_gap_bytes",
            "Stream bytes the capture missed (gaps in reassembly).",
            rt.gap_bytes,
        )?;
        counters(
            e,
            "wstap_tls_connections",
            "TLS connections ended, by result: decrypted, or why not (docs/tls.md).",
            std::iter::once(([("result", "decrypted")], rt.tls_decrypted))
                .chain(Undecrypted::ALL.iter().zip(rt.tls_not_decrypted).map(|(u, n)| ([("result", u.name())], n))),
        )?;
        counter(e, "wstap_h2_connections", "HTTP/2 connections ended.", rt.h2_connections)?;
        counter(e, "wstap_h2_streams", "HTTP/2 streams.", rt.h2_streams)?;
        counters(
            e,
            "wstap_h2_websocket_streams",
            "RFC 8441 WebSocket streams (extended CONNECT), by whether they were accepted.",
            [
                ([("accepted", "true")], rt.h2_websocket_accepted),
                ([("accepted", "false")], rt.h2_websocket_streams.saturating_sub(rt.h2_websocket_accepted)),
            ],
        )?;
        if let Some(t) = rt.now {
            gauge(
                e,
                "wstap_last_packet_timestamp_seconds",
                "Packet time of the last packet or idle tick (seconds since the epoch).",
                t,
            )?;
        }
        Ok(())
    }
}

/// An empty label set (for a histogram without labels).
#[derive(Debug, Clone, Copy)]
struct NoLabels;

impl EncodeLabelSet for NoLabels {
    fn encode(&self, _: &mut prometheus_client::encoding::LabelSetEncoder) -> FmtResult {
        Ok(())
    }
}

/// The exposition's series, counted (`# ` lines left out): what a scrape
/// costs Prometheus (docs/metrics.md states the bound).
pub fn series(exposition: &str) -> usize {
    exposition.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most series one host can expose: every path label taken, every
    /// kind with every severity and proxy (docs/metrics.md states it).
    #[test]
    fn series_are_bounded() {
        let mut c = Counts::default();
        let fresh = series(&Arc::new(c.clone()).exposition(false));
        for i in 0..1000 {
            let path = format!("/scan/{i}");
            match c.paths.iter().position(|(p, _)| *p == path) {
                Some(_) => {}
                None if c.paths.len() < TOP_PATHS => c.paths.push((path, [1; 4])),
                None => c.other_paths[0] += 1,
            }
        }
        let proxies: Vec<&'static str> =
            crate::detect::proxy::KNOWN.iter().map(|p| p.name()).chain(["unknown"]).collect();
        for k in FindingKind::ALL {
            for s in [Severity::Info, Severity::Warning, Severity::Error] {
                for p in &proxies {
                    c.findings_detail.insert((*k, s, p), 1);
                }
            }
        }
        c.runtime.now = Some(1.0);
        let most = series(&Arc::new(c).exposition(false));
        assert_eq!(fresh, 296, "a fresh endpoint (no packet yet)");
        assert_eq!(most, fresh + 1 + TOP_PATHS * 4 + FindingKind::ALL.len() * 3 * proxies.len());
        assert!(most <= 900, "{most}");
        // --fanout: one series per ring, from the start.
        let mut c = Counts::default();
        c.runtime.capture =
            Some(crate::record::Capture { rings: Some(vec![3, 5, 0]), ..crate::record::Capture::default() });
        let text = Arc::new(c).exposition(false);
        assert_eq!(series(&text), fresh + 3);
        for l in ["{ring=\"0\"} 3", "{ring=\"1\"} 5", "{ring=\"2\"} 0"] {
            assert!(text.contains(&format!("wstap_capture_ring_packets_total{l}\n")), "{l}: {text}");
        }
        let mut c = Counts::default();
        c.runtime.capture = Some(crate::record::Capture {
            rings: Some(vec![1; crate::capture::live::MAX_RINGS]),
            ..crate::record::Capture::default()
        });
        assert_eq!(
            series(&Arc::new(c).exposition(false)),
            fresh + crate::capture::live::MAX_RINGS,
            "docs/metrics.md: 16 more series with --fanout 16"
        );
        // Two series per analysis worker, once the first numbers are in
        // (the default --threads: at most 8).
        let mut c = Counts::default();
        let w = crate::runtime::WorkerNumbers { packets: 7, connections_open: 2 };
        c.runtime.workers = vec![w; crate::shard::MAX_DEFAULT_THREADS];
        let text = Arc::new(c).exposition(false);
        assert_eq!(series(&text), fresh + 2 * crate::shard::MAX_DEFAULT_THREADS, "docs/metrics.md: 16 with 8 workers");
        assert!(text.contains("wstap_worker_packets_total{worker=\"7\"} 7\n"), "{text}");
        assert!(text.contains("wstap_worker_connections{worker=\"0\"} 2.0\n"), "{text}");
    }

    #[test]
    fn hostile_paths_make_a_valid_exposition() {
        let mut c = Counts::default();
        for p in ["/a\"b\\c\nd\u{1b}[2J\u{202e}?token=x", &format!("/{}", "x".repeat(5000))] {
            c.paths.push((path_label(p), [1, 0, 0, 0]));
        }
        let text = Arc::new(c).exposition(false);
        assert!(text.contains(r#"path="/a\"b\\c\\x0ad\\x1b[2J\\u202e",outcome="upgraded"} 1"#), "{text}");
        assert!(!text.lines().any(|l| l.chars().any(crate::escape::is_unsafe)));
        assert!(text.contains(&format!("path=\"/{}\"", "x".repeat(PATH_LABEL_MAX - 1))));
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.rsplit_once(' ').is_some_and(|(_, v)| v.parse::<f64>().is_ok()), "{l}");
        }
    }

    #[test]
    fn accept_headers() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0.2,text/plain"));
        assert!(!wants_openmetrics("application/openmetrics-text;q=0"));
    }

    #[test]
    fn buckets_take_their_upper_bound() {
        let mut h = Hist::new(IDLE_BUCKETS);
        for v in [60.0, 60.2, 55.1, 3600.5, f64::NAN] {
            h.observe(v);
        }
        let b = h.buckets();
        let at = |le: f64| b.iter().find(|(u, _)| *u == le).unwrap().1;
        assert_eq!((at(61.0), at(56.0), at(f64::INFINITY)), (2, 1, 1));
        assert_eq!(h.count, 4);
    }
}
