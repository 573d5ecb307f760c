//! Dashboard state (the model): what the operator sees and where the
//! cursor is. Records and snapshots from the worker are applied here.
//!
//! No drawing here (ui.rs and views/ render a `&App`), no key handling
//! (keys.rs) and no I/O (the worker in feed.rs and the input thread produce
//! the messages applied here). Anything derived from the data (sorted and
//! filtered session rows, finding groups: rows.rs) is rebuilt when the
//! data changes, never per frame.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::feed::{Snapshot, Source, UiMsg, Update};
pub use super::keys::{Action, key};
pub use super::rows::{FindingGroup, Latencies, Metric, SessionLine, SortBy};
use super::rows::{GroupKey, sort_sessions};
use crate::record::{Finding, FindingKind, Handshake, Outcome, Record, Severity};

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

    pub(super) fn index(self) -> usize {
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

/// Nginx's `proxy_read_timeout` default: the boundary used for idle
/// colours when neither `--timeout` nor the capture gives one.
pub const DEFAULT_IDLE_BOUNDARY_S: f64 = 60.0;
/// Closed sessions kept for the Sessions view.
pub const RECENT_SESSIONS: usize = 1000;
/// Occurrences kept per finding group (the count covers all).
pub const GROUP_OCCURRENCES: usize = 20;
/// Handshake records kept for the session detail and exports (the
/// newest; a record with both hops' heads is 1-3 KB).
pub const KEPT_HANDSHAKES: usize = 4096;
/// Sessions and handshakes whose findings are kept for the session detail
/// (the newest ids; a finding with its evidence is a few KB).
pub const KEPT_FINDING_LINKS: usize = 2048;
/// `-v`: frames kept per connection (the newest) for the session
/// detail's timeline, and connections kept (the most recently started).
pub const FRAMES_PER_CONNECTION: usize = 32;
pub const FRAME_CONNECTIONS: usize = 2048;
/// Records buffered while paused; beyond this the oldest are dropped.
pub const PAUSE_BUFFER: usize = 200_000;
/// Seconds of per-second handshake outcomes kept for the sparkline.
pub const RATE_HISTORY_S: usize = 86_400;

/// Updates held back while paused.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) records: VecDeque<Record>,
    pub(super) snapshot: Option<Snapshot>,
    pub(super) dropped: u64,
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
    pub(super) pending: Pending,
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
    /// `r`: the sort (sessions) or the order (findings) reversed.
    pub sort_reverse: bool,
    /// Session detail: the session shown (kept when rows move).
    pub detail_session: Option<u64>,
    /// Handshake records by id (the newest `KEPT_HANDSHAKES`), for the
    /// session detail.
    pub handshakes: BTreeMap<u64, Handshake>,
    /// The idle boundary the latest timeout finding was judged against
    /// (`detail.boundary_s`, `detail.boundary_source`): the dashboard
    /// names the boundary as the findings do.
    pub finding_boundary: Option<(f64, crate::detect::boundary::Source)>,
    /// Lead findings about a session (`detail.session`, `detail.sessions`)
    /// and about a handshake (`detail.handshake`), bounded.
    pub findings_by_session: BTreeMap<u64, Vec<Finding>>,
    pub findings_by_handshake: BTreeMap<u64, Vec<Finding>>,
    /// `-v`: the newest frames of each connection (initiator first), and
    /// how many were seen, for the session detail's timeline; connections
    /// in the order they were first seen (the oldest forgotten first).
    pub frames: HashMap<crate::flow::FlowKey, (VecDeque<crate::record::FrameLine>, u64)>,
    frame_order: VecDeque<crate::flow::FlowKey>,
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
    /// A line for the status bar (what an export wrote, or why not).
    pub message: Option<String>,
    /// Where the renderer put things, for the mouse: each tab (x, width,
    /// view), and the current list's rows (area, first row shown, lines
    /// per row).
    pub tab_hits: RefCell<Vec<(u16, u16, View)>>,
    pub list_hits: Cell<Option<(ratatui::layout::Rect, usize, u16)>>,
    /// Where exports are written (the working directory by default).
    pub export_dir: std::path::PathBuf,
    /// The capture file, for a pcap export of a session's or finding's
    /// connections (offline only: a live capture keeps no packets).
    pub capture_file: Option<String>,
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
            sort_reverse: false,
            detail_session: None,
            handshakes: BTreeMap::new(),
            finding_boundary: None,
            findings_by_session: BTreeMap::new(),
            findings_by_handshake: BTreeMap::new(),
            frames: HashMap::new(),
            frame_order: VecDeque::new(),
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
            message: None,
            tab_hits: RefCell::new(Vec::new()),
            list_hits: Cell::new(None),
            export_dir: std::path::PathBuf::from("."),
            capture_file: None,
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

    pub(super) fn apply(&mut self, records: impl IntoIterator<Item = Record>, mut snap: Snapshot) {
        // The table's indices go stale as the rows change below: note the
        // selected session first.
        let keep = self.selected_session().map(|s| s.id);
        let mut findings_changed = false;
        let mut closed: HashSet<u64> = HashSet::new();
        for r in records {
            match r {
                Record::Handshake(h) => {
                    self.on_handshake(&h);
                    self.handshakes.insert(h.id, h);
                    while self.handshakes.len() > KEPT_HANDSHAKES {
                        self.handshakes.pop_first();
                    }
                }
                Record::Session(s) => {
                    closed.insert(s.id);
                    self.closed_sessions.push_back(SessionLine::from_record(s));
                    if self.closed_sessions.len() > RECENT_SESSIONS {
                        self.closed_sessions.pop_front();
                    }
                }
                Record::Finding(f) => {
                    self.on_finding(f);
                    findings_changed = true;
                }
                Record::Frame(fr) => self.on_frame(fr),
                Record::Http(_) | Record::Summary(_) => {}
            }
        }
        for ms in &snap.relay_ms {
            self.latency.relay_ms(*ms);
        }
        self.boundary_s = self.boundary_of(&snap).map(|b| b.0).filter(|b| *b > 0.0).unwrap_or(DEFAULT_IDLE_BOUNDARY_S);
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
        self.link_finding(&f);
        // The servers in the order the request met them (proxy, then
        // backend), as the text output lists them.
        let mut servers: Vec<String> = Vec::new();
        for fl in &f.flows {
            let s = fl.dst.to_string();
            if !servers.contains(&s) {
                servers.push(s);
            }
        }
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

    fn on_frame(&mut self, fr: crate::record::FrameLine) {
        let conn = if fr.dir == crate::proto::Dir::ToServer { fr.flow } else { fr.flow.reversed() };
        let e = self.frames.entry(conn).or_insert_with(|| {
            self.frame_order.push_back(conn);
            (VecDeque::new(), 0)
        });
        e.1 += 1;
        e.0.push_back(fr);
        if e.0.len() > FRAMES_PER_CONNECTION {
            e.0.pop_front();
        }
        while self.frame_order.len() > FRAME_CONNECTIONS {
            if let Some(old) = self.frame_order.pop_front() {
                self.frames.remove(&old);
            }
        }
    }

    /// Files a lead finding under the sessions and the handshake it is
    /// about, for the session detail.
    fn link_finding(&mut self, f: &Finding) {
        let d = &f.detail;
        if let (Some(b), Some(src)) = (
            d.get("boundary_s").and_then(|v| v.as_f64()),
            d.get("boundary_source").and_then(|v| v.as_str()).and_then(crate::detect::boundary::Source::from_name),
        ) {
            self.finding_boundary = Some((b, src));
        }
        let mut sessions: Vec<u64> = d.get("session").and_then(|v| v.as_u64()).into_iter().collect();
        if let Some(list) = d.get("sessions").and_then(|v| v.as_array()) {
            sessions.extend(list.iter().filter_map(|v| v.as_u64()));
        }
        for id in sessions {
            self.findings_by_session.entry(id).or_default().push(f.clone());
        }
        if let Some(h) = d.get("handshake").and_then(|v| v.as_u64()) {
            self.findings_by_handshake.entry(h).or_default().push(f.clone());
        }
        for m in [&mut self.findings_by_session, &mut self.findings_by_handshake] {
            while m.len() > KEPT_FINDING_LINKS {
                m.pop_first();
            }
        }
    }

    /// The session the detail shows: its row, and its record once closed.
    pub fn detail_session_line(&self) -> Option<&SessionLine> {
        let id = self.detail_session?;
        self.open_sessions.iter().chain(self.closed_sessions.iter()).rev().find(|s| s.id == id)
    }

    /// The findings a session belongs to: about it, or about the handshake
    /// that opened it.
    pub fn findings_of_session(&self, s: &SessionLine) -> Vec<&Finding> {
        let mut v: Vec<&Finding> = self.findings_by_session.get(&s.id).into_iter().flatten().collect();
        if let Some(h) = s.handshake {
            v.extend(self.findings_by_handshake.get(&h).into_iter().flatten());
        }
        v.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        v
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
    pub(super) fn rebuild_sessions(&mut self, keep: Option<u64>) {
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
            if self.sort_reverse {
                part.reverse();
            }
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

    pub(super) fn session_table_len(&self) -> usize {
        self.session_table.len()
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
    pub(super) fn rebuild_findings(&mut self) {
        let keep = self.group_order.get(self.finding_sel).copied();
        let terms = self.terms();
        let mut order: Vec<usize> = (0..self.groups.len()).filter(|i| self.groups[*i].matches(&terms)).collect();
        order.sort_by(|a, b| self.groups[*a].last_ts.total_cmp(&self.groups[*b].last_ts).then(a.cmp(b)));
        if self.sort_reverse {
            order.reverse();
        }
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

    /// The idle boundary in the words the findings use ("60 s boundary")
    /// and where it comes from: `known` (a product default: a cut learned
    /// at 59.9 s is nginx's 60 s), `configured` (`--timeout`), `learned`
    /// from this capture, or `default` (nginx's, assumed: nothing said).
    pub fn boundary_words(&self) -> (String, &'static str) {
        use crate::detect::boundary::{Source, words};
        match self.boundary_of(&self.snap) {
            Some((b, src)) => (words(b, src), src.name()),
            None => (words(self.boundary_s, Source::Known), "default"),
        }
    }

    /// The boundary sessions are expected to hit, and its source: one you
    /// stated, else the one the latest timeout finding was judged against,
    /// else the one learned from the capture.
    fn boundary_of(&self, snap: &Snapshot) -> Option<(f64, crate::detect::boundary::Source)> {
        use crate::detect::boundary::Source;
        let stated = snap.expected_boundary.filter(|b| b.1 == Source::Configured);
        stated.or(self.finding_boundary).or(snap.expected_boundary).or(snap.idle_boundary.map(|b| (b, Source::Learned)))
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

    /// Sets the filter (path, address or kind) and applies it.
    pub fn set_filter(&mut self, f: String) {
        self.filter = f;
        let keep = self.selected_session().map(|s| s.id);
        self.rebuild_sessions(keep);
        self.rebuild_findings();
    }
}
