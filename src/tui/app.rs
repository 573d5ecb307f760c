//! Dashboard state: what the operator sees and where the cursor is.
//!
//! No drawing here (ui.rs and views/ render a `&App`) and no I/O (the
//! worker in feed.rs and the input thread produce the messages applied
//! here). Keys map to small methods that return an [`Action`] for the main
//! loop. Anything derived from the data (sorted and filtered session rows,
//! finding groups) is rebuilt when the data changes, never per frame.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::feed::{Snapshot, Source, UiMsg, Update};
use crate::facts::SessionRow;
use crate::flow::{Endpoint, FlowKey};
use crate::latency::LatencyHist;
use crate::record::{CloseHow, Dirs, Finding, FindingKind, Handshake, Outcome, Record, Role, Session, Severity};

/// The four views, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overview,
    Findings,
    Sessions,
    Latency,
}

impl View {
    pub const ALL: [View; 4] = [View::Overview, View::Findings, View::Sessions, View::Latency];

    pub fn title(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Findings => "Findings",
            View::Sessions => "Sessions",
            View::Latency => "Latency",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// What keys act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Moving around a view.
    Browse,
    /// A finding group's detail (Findings view).
    Detail,
    /// Typing a filter after `/`.
    Filter,
}

/// What the main loop does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing changed.
    None,
    /// The screen changed.
    Redraw,
    /// Pause (true) or resume (false): the replay stops; the view stops
    /// taking updates.
    Pause(bool),
    Quit,
}

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

    fn next(self) -> SortBy {
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

/// Nginx's `proxy_read_timeout` default: the boundary used for idle
/// colours when neither `--timeout` nor the capture gives one.
pub const DEFAULT_IDLE_BOUNDARY_S: f64 = 60.0;
/// Closed sessions kept for the Sessions view.
pub const RECENT_SESSIONS: usize = 1000;
/// Occurrences kept per finding group (the count covers all).
pub const GROUP_OCCURRENCES: usize = 20;
/// Records buffered while paused; beyond this the oldest are dropped.
pub const PAUSE_BUFFER: usize = 200_000;
/// Seconds of per-second handshake outcomes kept for the sparkline.
pub const RATE_HISTORY_S: usize = 86_400;

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
}

impl SessionLine {
    fn from_row(r: SessionRow) -> SessionLine {
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
        }
    }

    fn from_record(s: &Session) -> SessionLine {
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
            close: Some(close_short(s)),
            close_detail: Some(close_reason(s)),
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

    fn matches(&self, terms: &[String]) -> bool {
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
fn close_reason(s: &Session) -> String {
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
        out.push_str(&format!(" after {idle:.1}s idle"));
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

    fn matches(&self, terms: &[String]) -> bool {
        terms.iter().all(|t| {
            contains_ci(self.kind.name(), t)
                || self.path.as_deref().is_some_and(|p| contains_ci(p, t))
                || self.servers.iter().any(|s| contains_ci(s, t))
                || self.recent.iter().any(|f| f.flows.iter().any(|fl| contains_ci(&fl.to_string(), t)))
        })
    }
}

type GroupKey = (FindingKind, Option<String>, Vec<String>);

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

    fn relay_ms(&mut self, ms: f64) {
        self.0.relay.record_ms(ms);
    }

    fn handshake(&mut self, h: &Handshake) {
        self.0.handshake(h);
    }
}

/// Updates held back while paused.
#[derive(Default)]
struct Pending {
    records: VecDeque<Record>,
    snapshot: Option<Snapshot>,
    dropped: u64,
}

/// How the source is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedState {
    Running,
    /// The source ended; `truncated` when the file was cut in a packet.
    Done {
        truncated: Option<String>,
    },
    Failed(String),
}

pub struct App {
    pub source: Source,
    pub feed: FeedState,
    pub view: View,
    pub mode: Mode,
    /// The help overlay, over any view or mode.
    pub help: bool,
    pub paused: bool,
    pending: Pending,
    /// Updates dropped because the pause buffer was full.
    pub dropped_while_paused: u64,

    /// The latest engine state.
    pub snap: Snapshot,
    /// The idle timeout, for colours.
    pub boundary_s: f64,

    // Sessions.
    open_sessions: Vec<SessionLine>,
    closed_sessions: VecDeque<SessionLine>,
    /// Open sessions first, then recent closed ones, each sorted by
    /// `sort`; filtered.
    /// Indices: below `open_sessions.len()` an open session, above it a
    /// closed one (newest first). Rows are never copied, so a snapshot of
    /// 10,000 sessions costs one sort of integers.
    session_table: Vec<u32>,
    pub sort: SortBy,
    /// Open sessions idle past 75% and past 90% of the boundary.
    pub idle_amber: usize,
    pub idle_red: usize,
    pub session_sel: usize,
    /// First visible row, kept by the renderer (like ratatui's TableState).
    pub session_offset: Cell<usize>,

    // Findings.
    pub groups: Vec<FindingGroup>,
    group_index: HashMap<GroupKey, usize>,
    /// Indices into `groups`: filtered, newest occurrence last.
    pub group_order: Vec<usize>,
    pub finding_sel: usize,
    pub finding_offset: Cell<usize>,
    /// Severity of each kind seen (for the Overview's by-kind list).
    pub kind_severity: BTreeMap<FindingKind, Severity>,
    /// Detail: which occurrence (0 = latest) and the scroll.
    pub detail_occurrence: usize,
    pub detail_scroll: u16,

    // Latency and rates.
    pub latency: Latencies,
    pub metric_sel: usize,
    /// Per second of capture time: (upgraded, handshakes).
    pub rate: BTreeMap<i64, (u32, u32)>,

    /// The filter being typed or applied (lowercase terms, all must match).
    pub filter: String,
    /// Rows per page in the last drawn list (PgUp/PgDn).
    pub page: Cell<usize>,
}

impl App {
    pub fn new(source: Source) -> App {
        App {
            source,
            feed: FeedState::Running,
            view: View::Overview,
            mode: Mode::Browse,
            help: false,
            paused: false,
            pending: Pending::default(),
            dropped_while_paused: 0,
            snap: Snapshot::default(),
            boundary_s: DEFAULT_IDLE_BOUNDARY_S,
            open_sessions: Vec::new(),
            closed_sessions: VecDeque::new(),
            session_table: Vec::new(),
            sort: SortBy::Idle,
            idle_amber: 0,
            idle_red: 0,
            session_sel: 0,
            session_offset: Cell::new(0),
            groups: Vec::new(),
            group_index: HashMap::new(),
            group_order: Vec::new(),
            finding_sel: 0,
            finding_offset: Cell::new(0),
            kind_severity: BTreeMap::new(),
            detail_occurrence: 0,
            detail_scroll: 0,
            latency: Latencies::default(),
            metric_sel: 0,
            rate: BTreeMap::new(),
            filter: String::new(),
            page: Cell::new(10),
        }
    }

    // ---- Messages from the worker ----

    /// Applies one worker message; returns whether the screen changed.
    /// Input messages are the main loop's business.
    pub fn on_msg(&mut self, msg: UiMsg) -> bool {
        match msg {
            UiMsg::Update(u) => self.update(*u),
            UiMsg::Done(r) => {
                self.feed = match r {
                    Ok(truncated) => FeedState::Done { truncated },
                    Err(e) => FeedState::Failed(e),
                };
                true
            }
            UiMsg::Input(_) | UiMsg::InputError(_) => false,
        }
    }

    /// New records and state. While paused they wait (bounded).
    pub fn update(&mut self, u: Update) -> bool {
        if self.paused {
            let p = &mut self.pending;
            p.records.extend(u.records);
            while p.records.len() > PAUSE_BUFFER {
                p.records.pop_front();
                p.dropped += 1;
            }
            let mut snap = u.snapshot;
            if let Some(old) = p.snapshot.take() {
                // Relay samples are deltas: keep them all (bounded).
                let mut relay = old.relay_ms;
                relay.extend(snap.relay_ms);
                relay.truncate(PAUSE_BUFFER);
                snap.relay_ms = relay;
            }
            p.snapshot = Some(snap);
            return false;
        }
        self.apply(u.records, u.snapshot);
        true
    }

    fn apply(&mut self, records: impl IntoIterator<Item = Record>, mut snap: Snapshot) {
        // The table's indices go stale as the rows change below: note the
        // selected session first.
        let keep = self.selected_session().map(|s| s.id);
        let mut findings_changed = false;
        let mut closed: HashSet<u64> = HashSet::new();
        for r in records {
            match r {
                Record::Handshake(h) => self.on_handshake(&h),
                Record::Session(s) => {
                    closed.insert(s.id);
                    self.closed_sessions.push_back(SessionLine::from_record(&s));
                    if self.closed_sessions.len() > RECENT_SESSIONS {
                        self.closed_sessions.pop_front();
                    }
                }
                Record::Finding(f) => {
                    self.on_finding(f);
                    findings_changed = true;
                }
                Record::Http(_) | Record::Frame(_) | Record::Summary(_) => {}
            }
        }
        for ms in &snap.relay_ms {
            self.latency.relay_ms(*ms);
        }
        self.boundary_s = snap.idle_boundary.filter(|b| *b > 0.0).unwrap_or(DEFAULT_IDLE_BOUNDARY_S);
        let rows = std::mem::take(&mut snap.sessions);
        self.open_sessions = rows.into_iter().filter(|r| !closed.contains(&r.id)).map(SessionLine::from_row).collect();
        snap.relay_ms = Vec::new();
        self.snap = snap;
        self.rebuild_sessions(keep);
        if findings_changed {
            self.rebuild_findings();
        }
    }

    fn on_handshake(&mut self, h: &Handshake) {
        self.latency.handshake(h);
        let sec = h.ts.floor() as i64;
        let e = self.rate.entry(sec).or_insert((0, 0));
        e.1 += 1;
        if h.outcome == Outcome::Upgraded {
            e.0 += 1;
        }
        while self.rate.len() > RATE_HISTORY_S {
            self.rate.pop_first();
        }
    }

    fn on_finding(&mut self, f: Finding) {
        // One fault, one group: the lead finding names the other kinds it
        // is also filed under (`also`), shown with it.
        if !f.primary {
            return;
        }
        let mut servers: Vec<String> = f.flows.iter().map(|fl| fl.dst.to_string()).collect();
        servers.sort();
        servers.dedup();
        let key: GroupKey = (f.kind, f.path.clone(), servers.clone());
        let sev = self.kind_severity.entry(f.kind).or_insert(f.severity);
        *sev = (*sev).max(f.severity);
        let i = match self.group_index.get(&key) {
            Some(i) => *i,
            None => {
                self.groups.push(FindingGroup {
                    kind: f.kind,
                    severity: f.severity,
                    path: f.path.clone(),
                    servers,
                    count: 0,
                    first_ts: f.ts,
                    last_ts: f.ts,
                    recent: VecDeque::new(),
                });
                self.group_index.insert(key, self.groups.len() - 1);
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[i];
        g.count += 1;
        g.severity = g.severity.max(f.severity);
        g.first_ts = g.first_ts.min(f.ts);
        g.last_ts = g.last_ts.max(f.ts);
        g.recent.push_back(f);
        if g.recent.len() > GROUP_OCCURRENCES {
            g.recent.pop_front();
        }
    }

    /// Feeds records directly (tests, or a caller without a worker), with
    /// the snapshot that goes with them.
    pub fn ingest(&mut self, records: Vec<Record>, snapshot: Snapshot) {
        self.update(Update { records, snapshot });
    }

    fn terms(&self) -> Vec<String> {
        self.filter.split_whitespace().map(str::to_lowercase).collect()
    }

    /// Re-sorts and re-filters the sessions table, keeping the cursor on
    /// session `keep` if it is still there. Rows may have changed since
    /// the table was built: the caller reads `keep` before changing them.
    fn rebuild_sessions(&mut self, keep: Option<u64>) {
        let terms = self.terms();
        let now = self.now();
        let b = self.boundary_s;
        let (mut amber, mut red) = (0, 0);
        for s in &self.open_sessions {
            let idle = now - s.last_activity;
            if idle >= 0.9 * b {
                red += 1;
            } else if idle >= 0.75 * b {
                amber += 1;
            }
        }
        (self.idle_amber, self.idle_red) = (amber, red);
        let n_open = self.open_sessions.len();
        let n = n_open + self.closed_sessions.len();
        let mut table: Vec<u32> = (0..n as u32).filter(|i| self.session_line(*i).matches(&terms)).collect();
        let split = table.partition_point(|i| (*i as usize) < n_open);
        let (open, closed) = table.split_at_mut(split);
        closed.reverse();
        for part in [open, closed] {
            sort_sessions(part, |i| self.session_line(i), self.sort, now);
        }
        self.session_table = table;
        self.session_sel = keep
            .and_then(|id| self.session_table.iter().position(|i| self.session_line(*i).id == id))
            .unwrap_or(self.session_sel)
            .min(self.session_table.len().saturating_sub(1));
    }

    fn session_line(&self, i: u32) -> &SessionLine {
        let i = i as usize;
        match self.open_sessions.get(i) {
            Some(s) => s,
            None => &self.closed_sessions[i - self.open_sessions.len()],
        }
    }

    /// Rows in the Sessions table (after the filter).
    pub fn shown_sessions(&self) -> usize {
        self.session_table.len()
    }

    /// The `i`-th row of the Sessions table.
    pub fn shown_session(&self, i: usize) -> Option<&SessionLine> {
        self.session_table.get(i).map(|k| self.session_line(*k))
    }

    /// Rows `range` of the Sessions table.
    pub fn shown_range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = &SessionLine> {
        self.session_table[range].iter().map(|k| self.session_line(*k))
    }

    /// The session under the cursor.
    pub fn selected_session(&self) -> Option<&SessionLine> {
        self.shown_session(self.session_sel)
    }

    /// Re-filters and orders finding groups (newest occurrence last),
    /// keeping the cursor on the same group.
    fn rebuild_findings(&mut self) {
        let keep = self.group_order.get(self.finding_sel).copied();
        let terms = self.terms();
        let mut order: Vec<usize> = (0..self.groups.len()).filter(|i| self.groups[*i].matches(&terms)).collect();
        order.sort_by(|a, b| self.groups[*a].last_ts.total_cmp(&self.groups[*b].last_ts).then(a.cmp(b)));
        self.group_order = order;
        self.finding_sel = keep
            .and_then(|g| self.group_order.iter().position(|x| *x == g))
            .unwrap_or(self.finding_sel)
            .min(self.group_order.len().saturating_sub(1));
    }

    // ---- Derived values for the views ----

    /// Packet-time now, seconds.
    pub fn now(&self) -> f64 {
        self.snap.clock.or(self.snap.summary.last_ts).unwrap_or(0.0)
    }

    /// The selected finding group, if any.
    pub fn selected_group(&self) -> Option<&FindingGroup> {
        self.group_order.get(self.finding_sel).and_then(|i| self.groups.get(*i))
    }

    /// The occurrence the detail shows.
    pub fn detail_finding(&self) -> Option<&Finding> {
        let g = self.selected_group()?;
        g.recent.iter().rev().nth(self.detail_occurrence.min(g.recent.len().saturating_sub(1)))
    }

    pub fn open_session_count(&self) -> usize {
        self.open_sessions.len()
    }

    /// Recent closed sessions kept (at most `RECENT_SESSIONS`).
    pub fn closed_session_count(&self) -> usize {
        self.closed_sessions.len()
    }

    pub fn metric(&self) -> Metric {
        Metric::ALL[self.metric_sel.min(Metric::ALL.len() - 1)]
    }

    /// Upgrade success per `bucket_s` seconds of capture time, the last
    /// `n` buckets ending now: `None` where no handshake was seen.
    pub fn success_series(&self, bucket_s: i64, n: usize) -> Vec<Option<u64>> {
        let Some((first, last)) = self.rate_span().filter(|_| bucket_s > 0) else { return Vec::new() };
        let newest = last.div_euclid(bucket_s);
        let oldest = first.div_euclid(bucket_s).max(newest - n as i64 + 1);
        let mut acc = vec![(0u64, 0u64); (newest - oldest + 1) as usize];
        for (sec, (ok, total)) in self.rate.range(oldest * bucket_s..) {
            let b = (sec.div_euclid(bucket_s) - oldest) as usize;
            if let Some(slot) = acc.get_mut(b) {
                slot.0 += *ok as u64;
                slot.1 += *total as u64;
            }
        }
        acc.into_iter().map(|(ok, total)| (total > 0).then(|| ok * 100 / total)).collect()
    }

    /// From the first second with a handshake to now (so a quiet spell
    /// shows as empty buckets at the end), in whole seconds.
    fn rate_span(&self) -> Option<(i64, i64)> {
        let first = *self.rate.keys().next()?;
        let last = *self.rate.keys().next_back()?;
        Some((first, last.max(self.now().floor() as i64)))
    }

    /// Seconds per sparkline bucket so the whole history fits `width`.
    pub fn success_bucket(&self, width: usize) -> i64 {
        let Some((first, last)) = self.rate_span() else { return 1 };
        let span = last - first + 1;
        let w = width.max(1) as i64;
        let raw = (span + w - 1) / w;
        // Round up to a readable step.
        [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].into_iter().find(|s| *s >= raw).unwrap_or(raw)
    }

    // ---- Keys ----

    /// Maps a key to a change of state.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if self.mode == Mode::Filter {
            return self.filter_key(key);
        }
        if self.help {
            return match key.code {
                KeyCode::Char('q') => Action::Quit,
                KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => {
                    self.help = false;
                    Action::Redraw
                }
                _ => Action::None,
            };
        }
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('?') => {
                self.help = true;
                Action::Redraw
            }
            KeyCode::Char('p') => {
                self.set_paused(!self.paused);
                Action::Pause(self.paused)
            }
            KeyCode::Tab => self.switch((self.view.index() + 1) % View::ALL.len()),
            KeyCode::BackTab => self.switch((self.view.index() + View::ALL.len() - 1) % View::ALL.len()),
            KeyCode::Char(c @ '1'..='4') => self.switch(c as usize - '1' as usize),
            KeyCode::Char('/') => {
                self.mode = Mode::Filter;
                Action::Redraw
            }
            KeyCode::Esc => self.escape(),
            KeyCode::Enter => self.enter(),
            KeyCode::Char('s') if self.view == View::Sessions => {
                self.sort = self.sort.next();
                self.session_sel = 0;
                self.rebuild_sessions(None);
                Action::Redraw
            }
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::PageUp => self.move_by(-(self.page.get().max(1) as isize)),
            KeyCode::PageDown => self.move_by(self.page.get().max(1) as isize),
            KeyCode::Home | KeyCode::Char('g') => self.move_by(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_by(isize::MAX / 2),
            KeyCode::Left | KeyCode::Char('h') if self.mode == Mode::Detail => self.occurrence(1),
            KeyCode::Right | KeyCode::Char('l') if self.mode == Mode::Detail => self.occurrence(-1),
            _ => Action::None,
        }
    }

    /// Pausing holds updates back; resuming applies what was held.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if !paused {
            let p = std::mem::take(&mut self.pending);
            self.dropped_while_paused += p.dropped;
            if let Some(snap) = p.snapshot {
                self.apply(p.records, snap);
            }
        }
    }

    fn switch(&mut self, i: usize) -> Action {
        self.view = View::ALL[i];
        if self.mode == Mode::Detail && self.view != View::Findings {
            self.mode = Mode::Browse;
        }
        Action::Redraw
    }

    fn escape(&mut self) -> Action {
        if self.mode == Mode::Detail {
            self.mode = Mode::Browse;
            return Action::Redraw;
        }
        if !self.filter.is_empty() {
            self.set_filter(String::new());
            return Action::Redraw;
        }
        Action::None
    }

    fn enter(&mut self) -> Action {
        if self.view == View::Findings && self.mode == Mode::Browse && self.selected_group().is_some() {
            self.mode = Mode::Detail;
            self.detail_occurrence = 0;
            self.detail_scroll = 0;
            return Action::Redraw;
        }
        Action::None
    }

    fn move_by(&mut self, delta: isize) -> Action {
        let step = |sel: usize, len: usize| -> usize {
            if len == 0 { 0 } else { (sel as isize).saturating_add(delta).clamp(0, len as isize - 1) as usize }
        };
        match (self.view, self.mode) {
            (View::Findings, Mode::Detail) => {
                self.detail_scroll = (self.detail_scroll as isize).saturating_add(delta).clamp(0, 1000) as u16;
            }
            (View::Findings, _) => self.finding_sel = step(self.finding_sel, self.group_order.len()),
            (View::Sessions, _) => self.session_sel = step(self.session_sel, self.shown_sessions()),
            (View::Latency, _) => self.metric_sel = step(self.metric_sel, Metric::ALL.len()),
            (View::Overview, _) => return Action::None,
        }
        Action::Redraw
    }

    /// Detail: `delta` = 1 goes to an older occurrence.
    fn occurrence(&mut self, delta: isize) -> Action {
        let n = self.selected_group().map_or(0, |g| g.recent.len());
        if n == 0 {
            return Action::None;
        }
        self.detail_occurrence = (self.detail_occurrence as isize + delta).clamp(0, n as isize - 1) as usize;
        self.detail_scroll = 0;
        Action::Redraw
    }

    fn filter_key(&mut self, key: KeyEvent) -> Action {
        match key.code {
            KeyCode::Enter => self.mode = Mode::Browse,
            KeyCode::Esc => {
                self.mode = Mode::Browse;
                self.set_filter(String::new());
            }
            KeyCode::Backspace => {
                let mut f = self.filter.clone();
                f.pop();
                self.set_filter(f);
            }
            KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                let mut f = self.filter.clone();
                f.push(c);
                self.set_filter(f);
            }
            _ => return Action::None,
        }
        Action::Redraw
    }

    /// Sets the filter (path, address or kind) and applies it.
    pub fn set_filter(&mut self, f: String) {
        self.filter = f;
        let keep = self.selected_session().map(|s| s.id);
        self.rebuild_sessions(keep);
        self.rebuild_findings();
    }
}

/// Sorts row indices by a column; ties by id, so the order is stable
/// across snapshots.
fn sort_sessions<'a>(v: &mut [u32], line: impl Fn(u32) -> &'a SessionLine, by: SortBy, now: f64) {
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

/// Builds a key event (tests and the tmux-free key paths).
pub fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}
