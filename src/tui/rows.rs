//! What the views list, made from records and snapshots when they come
//! (never per frame): session rows, finding groups, latency series. Their
//! text (flows, close reasons) is made here, once.

use std::collections::VecDeque;

use crate::facts::SessionRow;
use crate::flow::{Endpoint, FlowKey};
use crate::latency::LatencyHist;
use crate::record::{CloseHow, Dirs, Finding, FindingKind, Handshake, Role, Session, Severity};

/// Sessions table sort column (`s` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Longest idle first (default).
    Idle,
    /// Oldest first.
    Age,
    Path,
    Client,
    /// Most frames first.
    Frames,
    /// Most bytes first.
    Bytes,
}

impl SortBy {
    pub const ALL: [SortBy; 6] =
        [SortBy::Idle, SortBy::Age, SortBy::Path, SortBy::Client, SortBy::Frames, SortBy::Bytes];

    pub fn name(self) -> &'static str {
        match self {
            SortBy::Idle => "idle",
            SortBy::Age => "age",
            SortBy::Path => "path",
            SortBy::Client => "client",
            SortBy::Frames => "frames",
            SortBy::Bytes => "bytes",
        }
    }

    pub(super) fn next(self) -> SortBy {
        let i = SortBy::ALL.iter().position(|s| *s == self).unwrap_or(0);
        SortBy::ALL[(i + 1) % SortBy::ALL.len()]
    }
}

/// The four latency series (Latency view rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Client request to the 101 the client saw.
    Client,
    /// Forwarded request to the upstream's response.
    Upstream,
    /// Client time minus upstream time, for paired handshakes.
    Overhead,
    /// A frame on one hop to its copy on the other.
    Relay,
}

impl Metric {
    pub const ALL: [Metric; 4] = [Metric::Client, Metric::Upstream, Metric::Overhead, Metric::Relay];

    pub fn title(self) -> &'static str {
        match self {
            Metric::Client => "client handshake",
            Metric::Upstream => "upstream handshake",
            Metric::Overhead => "proxy overhead",
            Metric::Relay => "frame relay",
        }
    }
}

/// One row of the Sessions table: an open session from the engine's
/// snapshot, or a recent session record.
#[derive(Debug, Clone)]
pub struct SessionLine {
    pub id: u64,
    pub open: bool,
    pub path: String,
    /// The client hop's flow as shown (an HTTP/2 stream with its id).
    pub client_flow: Option<String>,
    pub upstream_flow: Option<String>,
    /// The client's address, and the backend's (the Client and Upstream
    /// columns).
    pub client: Option<Endpoint>,
    pub upstream: Option<Endpoint>,
    pub start: f64,
    pub last_activity: f64,
    /// Closed sessions: when, and the idle time before the close began.
    pub end: Option<f64>,
    pub closed_idle_s: Option<f64>,
    pub frames: Dirs,
    pub bytes: Dirs,
    /// Closed sessions: code and who closed ("1000 client", "rst proxy").
    pub close: Option<String>,
    /// Closed sessions: the whole story ("1000 bye, by client (fin)").
    pub close_detail: Option<String>,
    /// The handshake record that opened it.
    pub handshake: Option<u64>,
    /// Its connections (client hop, upstream hop), for exports.
    pub flows: Vec<FlowKey>,
    /// Each hop's connection, when seen.
    pub client_key: Option<FlowKey>,
    pub upstream_key: Option<FlowKey>,
    /// Closed sessions: the record (both hops, closes), for the detail.
    pub record: Option<Box<Session>>,
}

impl SessionLine {
    pub(super) fn from_row(r: SessionRow) -> SessionLine {
        SessionLine {
            id: r.id,
            open: true,
            path: r.path,
            client_flow: with_stream(r.client_flow, r.client_stream),
            upstream_flow: r.upstream_flow.map(|f| f.to_string()),
            client: r.client_flow.map(|f| f.src),
            upstream: r.upstream_flow.map(|f| f.dst),
            start: r.start.secs(),
            last_activity: r.last_activity.secs(),
            end: None,
            closed_idle_s: None,
            frames: r.frames,
            bytes: r.bytes,
            close: None,
            close_detail: None,
            handshake: Some(r.handshake),
            flows: r.client_flow.into_iter().chain(r.upstream_flow).collect(),
            client_key: r.client_flow,
            upstream_key: r.upstream_flow,
            record: None,
        }
    }

    pub(super) fn from_record(s: Session) -> SessionLine {
        SessionLine {
            id: s.id,
            open: false,
            path: s.path.clone(),
            client_flow: with_stream(
                s.client_flow,
                s.hops.iter().find(|h| h.role == Role::Client).and_then(|h| h.stream_id),
            ),
            upstream_flow: s.upstream_flow.map(|f| f.to_string()),
            client: s.client_flow.map(|f| f.src),
            upstream: s.upstream_flow.map(|f| f.dst),
            start: s.start,
            last_activity: s.end,
            end: Some(s.end),
            closed_idle_s: s.close.idle_s,
            frames: s.frames,
            bytes: s.bytes,
            close: Some(close_short(&s)),
            close_detail: Some(close_reason(&s)),
            handshake: Some(s.handshake),
            flows: s.hops.iter().map(|h| h.flow).collect(),
            client_key: s.client_flow,
            upstream_key: s.upstream_flow,
            record: Some(Box::new(s)),
        }
    }

    /// Seconds since the session started (its duration once closed).
    pub fn age(&self, now: f64) -> f64 {
        (self.end.unwrap_or(now) - self.start).max(0.0)
    }

    /// Seconds without frames: until now when open, before the close
    /// when closed.
    pub fn idle(&self, now: f64) -> Option<f64> {
        if self.open { Some((now - self.last_activity).max(0.0)) } else { self.closed_idle_s }
    }

    pub(super) fn matches(&self, terms: &[String]) -> bool {
        terms.iter().all(|t| {
            contains_ci(&self.path, t)
                || self.client_flow.as_deref().is_some_and(|f| contains_ci(f, t))
                || self.upstream_flow.as_deref().is_some_and(|f| contains_ci(f, t))
        })
    }
}

/// "1000 client", "rst proxy", "open at end": fits a narrow column.
fn close_short(s: &Session) -> String {
    let c = &s.close;
    if s.open || c.how == CloseHow::EndOfCapture {
        return "open at end".into();
    }
    let what = c.code.map_or(c.how.to_string(), |code| code.to_string());
    match c.by {
        Some(by) => format!("{what} {by}"),
        None => what,
    }
}

/// `close 1000 "bye" by client`, `rst by proxy after 60.0s idle`, ...
pub fn close_reason(s: &Session) -> String {
    let c = &s.close;
    if s.open || c.how == CloseHow::EndOfCapture {
        return "still open when the capture ended".into();
    }
    let mut out = match c.code {
        Some(code) => match c.reason.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => format!("close {code} \"{r}\""),
            None => format!("close {code}"),
        },
        None => c.how.to_string(),
    };
    if let Some(by) = c.by {
        out.push_str(&format!(" by {by}"));
    }
    if c.code.is_some() && c.how != CloseHow::CloseFrame {
        out.push_str(&format!(" ({})", c.how));
    }
    if let Some(idle) = c.idle_s.filter(|i| *i >= 1.0) {
        out.push_str(&format!(" after {idle:.1} s idle"));
    }
    out
}

/// Findings with the same kind, path and server endpoints, counted.
#[derive(Debug, Clone)]
pub struct FindingGroup {
    pub kind: FindingKind,
    pub severity: Severity,
    pub path: Option<String>,
    /// The responder side of each flow ("10.0.0.5:443"), deduplicated.
    pub servers: Vec<String>,
    pub count: u64,
    pub first_ts: f64,
    pub last_ts: f64,
    /// The latest occurrences, oldest first (at most `GROUP_OCCURRENCES`).
    pub recent: VecDeque<Finding>,
}

impl FindingGroup {
    pub fn latest(&self) -> Option<&Finding> {
        self.recent.back()
    }

    pub(super) fn matches(&self, terms: &[String]) -> bool {
        terms.iter().all(|t| {
            contains_ci(self.kind.name(), t)
                || self.path.as_deref().is_some_and(|p| contains_ci(p, t))
                || self.servers.iter().any(|s| contains_ci(s, t))
                || self.recent.iter().any(|f| f.flows.iter().any(|fl| contains_ci(&fl.to_string(), t)))
        })
    }
}

/// What makes findings one group: kind, path, server endpoints.
pub(super) type GroupKey = (FindingKind, Option<String>, Vec<String>);

/// A flow as shown; an HTTP/2 stream is a session of its own: its client
/// flow shows the stream ("127.0.0.1:5000->127.0.0.1:443 #3").
fn with_stream(flow: Option<FlowKey>, stream: Option<u32>) -> Option<String> {
    match (flow, stream) {
        (Some(f), Some(s)) => Some(format!("{f} #{s}")),
        (f, _) => f.map(|f| f.to_string()),
    }
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    hay.to_lowercase().contains(needle_lower)
}

/// Handshake latencies and frame relay delays (the Latency view).
#[derive(Default)]
pub struct Latencies(crate::latency::Latencies);

impl Latencies {
    pub fn get(&self, m: Metric) -> &LatencyHist {
        let l = &self.0;
        match m {
            Metric::Client => &l.client,
            Metric::Upstream => &l.upstream,
            Metric::Overhead => &l.overhead,
            Metric::Relay => &l.relay,
        }
    }

    pub(super) fn relay_ms(&mut self, ms: f64) {
        self.0.relay.record_ms(ms);
    }

    pub(super) fn handshake(&mut self, h: &Handshake) {
        self.0.handshake(h);
    }
}

/// Sorts row indices by a column; ties by id, so the order is stable
/// across snapshots.
pub(super) fn sort_sessions<'a>(v: &mut [u32], line: impl Fn(u32) -> &'a SessionLine, by: SortBy, now: f64) {
    let total = |d: Dirs| d.to_server + d.to_client;
    v.sort_by(|a, b| {
        let (a, b) = (line(*a), line(*b));
        let ord = match by {
            SortBy::Idle => b.idle(now).unwrap_or(-1.0).total_cmp(&a.idle(now).unwrap_or(-1.0)),
            SortBy::Age => b.age(now).total_cmp(&a.age(now)),
            SortBy::Path => a.path.cmp(&b.path),
            SortBy::Client => a.client_flow.cmp(&b.client_flow),
            SortBy::Frames => total(b.frames).cmp(&total(a.frames)),
            SortBy::Bytes => total(b.bytes).cmp(&total(a.bytes)),
        };
        ord.then(a.id.cmp(&b.id))
    });
}
