//! How upgraded sessions end: idle timeouts at a boundary, heartbeats that
//! race a boundary, mass closes (reloads), and other abnormal ends.
//!
//! A session that ends without a close handshake is judged a little later
//! (packet time), so that sessions closed in the same instant can be seen
//! together: a proxy reload closes everything at once whatever its idle
//! time, while a timeout closes each session its own boundary after its
//! last data.

use serde_json::json;

use super::diagnosis::finding;
use super::proxy::Proxy;
use super::{DECIDE_WITHIN_S, Finding, FindingKind, Severity};
use crate::facts::{SessionEnd, SessionRow};
use crate::flow::key::{FxHashMap, FxHashSet};
use crate::flow::{Endpoint, FlowKey};
use crate::proto::activity::WsActivity;
use crate::record::{CloseHow, Closer, Heartbeat, Role, Session, Side};
use crate::time::{Ts, round3};

/// Idle timeouts of well-known products, seconds, and who uses them.
pub const KNOWN_BOUNDARIES: &[(f64, &str)] = &[
    (30.0, "a common proxy/load-balancer idle timeout (HAProxy examples use 30 s)"),
    (55.0, "Heroku's 55 s idle window"),
    (60.0, "nginx proxy_read_timeout default, AWS ALB idle timeout default"),
    (90.0, "a common load-balancer idle timeout"),
    (100.0, "Cloudflare's 100 s idle timeout"),
    (240.0, "Azure Load Balancer's 4 min default"),
    (270.0, "a common load-balancer idle timeout"),
    (300.0, "Envoy's 5 min stream idle default"),
    (400.0, "a common load-balancer idle timeout"),
    (3600.0, "a common 1 h maximum"),
];

/// Sessions closing within this long of each other are "the same instant".
const SAME_INSTANT_S: f64 = 1.0;
/// Wait this long (packet time) after a close before judging it.
const SETTLE_S: f64 = 2.0;
/// Sessions closed together that make a mass close.
const MASS_MIN: usize = 3;
/// Abnormal closes sharing an idle time that make a learned boundary.
const LEARN_MIN: usize = 3;
/// Sessions with heartbeats kept for the end-of-capture race check.
const MAX_SURVIVORS: usize = 1000;
/// Closes waiting for their judgement at most (a flood of reset sessions
/// must not hold memory for `DECIDE_WITHIN_S`): past it the oldest instant
/// is judged now, with what is known by then, and counted.
pub const MAX_PENDING: usize = 4096;
/// Paths whose heartbeat interval is remembered at most.
const MAX_PATH_HEARTBEATS: usize = 512;

/// With both hops seen, the end that closed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstClosed {
    /// The upstream hop's responder, before the client hop closed.
    Backend,
    /// The client hop's initiator, before the upstream hop closed.
    Client,
}

impl FirstClosed {
    fn name(self) -> &'static str {
        match self {
            FirstClosed::Backend => "backend",
            FirstClosed::Client => "client",
        }
    }
}

/// With both hops seen: which end closed first, and its address.
fn first_closed(r: &Session) -> Option<(FirstClosed, Endpoint)> {
    let hop = |role: Role| r.hops.iter().find(|h| h.role == role);
    let (c, u) = (hop(Role::Client)?, hop(Role::Upstream)?);
    let (ct, ut) = (c.closed_at.unwrap_or(f64::INFINITY), u.closed_at.unwrap_or(f64::INFINITY));
    match (c.closed_by, u.closed_by) {
        (_, Some(Side::Responder)) if ut <= ct => Some((FirstClosed::Backend, u.flow.dst)),
        (Some(Side::Initiator), _) if ct <= ut => Some((FirstClosed::Client, c.flow.src)),
        _ => None,
    }
}

/// Timer granularity and scheduling slack allowed around a boundary.
pub fn tolerance(b: f64) -> f64 {
    (0.03 * b).max(1.0)
}

#[derive(Debug, Clone)]
struct Ended {
    id: u64,
    path: String,
    flows: Vec<FlowKey>,
    /// When the close began (first FIN, RST on any hop).
    close_ts: Ts,
    idle: f64,
    /// Idle time ignoring activity in the last 100 ms before the close: a
    /// heartbeat that crossed the proxy's FIN did not reset its timer.
    idle_alt: f64,
    by: Option<Closer>,
    how: CloseHow,
    heartbeat: Option<Heartbeat>,
    proxy: Proxy,
    /// The proxy closed both of its legs together (both hops visible).
    both_legs_by_proxy: bool,
    /// Both hops visible and one end closed first: ("backend", its
    /// address) when the upstream's responder did, ("client", its address)
    /// when the client hop's initiator did.
    first_closed: Option<(FirstClosed, Endpoint)>,
    /// The session's hops, for the finding's detail (closes to judge only).
    hops: Vec<crate::record::HopSession>,
    /// Closed by the proxy's own close frames (not relayed): only ever part
    /// of a mass close, never a finding alone.
    proxy_close: bool,
    code: Option<u16>,
    /// An HTTP/2 stream's end, in words (h2.rs).
    stream_note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Configured,
    Known,
    Learned,
    Observed,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Configured => "configured",
            Source::Known => "known",
            Source::Learned => "learned",
            Source::Observed => "observed",
        }
    }
}

pub struct Lifecycle {
    configured: Vec<f64>,
    live: bool,
    /// In the order sessions ended (nearly close-time order).
    pending: std::collections::VecDeque<Ended>,
    /// Closes judged before their time because `MAX_PENDING` were waiting.
    pub judged_early: u64,
    /// Sessions with heartbeats that ended cleanly or stayed open: judged
    /// for heartbeat races once a boundary is known.
    heartbeats: Vec<Ended>,
    learned: Vec<f64>,
    /// Heartbeat interval seen on each path (from any session there).
    path_heartbeat: FxHashMap<String, Heartbeat>,
    warned: FxHashSet<u64>,
}

impl Lifecycle {
    pub fn new(configured: Vec<f64>, live: bool) -> Lifecycle {
        Lifecycle {
            configured,
            live,
            pending: Default::default(),
            judged_early: 0,
            heartbeats: Vec::new(),
            learned: Vec::new(),
            path_heartbeat: FxHashMap::default(),
            warned: FxHashSet::default(),
        }
    }

    pub fn learned_boundary(&self) -> Option<f64> {
        self.learned.iter().copied().reduce(f64::min)
    }

    pub fn session_ended(&mut self, s: &SessionEnd<'_>, proxy: Proxy, bad_handshake: bool, out: &mut Vec<Finding>) {
        let r = s.session;
        let abnormal = !r.open && matches!(r.close.how, CloseHow::Fin | CloseHow::Rst);
        // The proxy closed the session itself with close frames (a reload):
        // a clean close, but one of several at once is a mass close.
        let proxy_close = !r.open && r.close.how == CloseHow::CloseFrame && r.close.by == Some(Closer::Proxy);
        if let Some(hb) = &r.heartbeat
            && self.path_heartbeat.get(&r.path).is_none_or(|h| h != hb)
            && (self.path_heartbeat.len() < MAX_PATH_HEARTBEATS || self.path_heartbeat.contains_key(&r.path))
        {
            self.path_heartbeat.insert(r.path.clone(), hb.clone());
        }
        if bad_handshake || !(abnormal || proxy_close || r.heartbeat.is_some()) {
            return;
        }
        let hops: Vec<&WsActivity> = [s.client, s.upstream].into_iter().flatten().collect();
        let first_close = hops.iter().filter_map(|w| w.first_close.map(|c| c.0)).min();
        let close_ts = first_close.unwrap_or(Ts::from_secs_f64(r.end));
        let idle = r.close.idle_s.unwrap_or(0.0);
        let quiet_before = close_ts.add_secs(-0.1);
        let earlier = hops
            .iter()
            .flat_map(|w| [w.last_frame_before_close, w.prev_frame_before_close, Some(w.upgraded_ts)])
            .flatten()
            .filter(|&t| t <= quiet_before)
            .max();
        let idle_alt = earlier.map_or(idle, |t| close_ts.since(t).max(idle));
        let e = Ended {
            id: r.id,
            path: r.path.clone(),
            flows: [&r.client_flow, &r.upstream_flow].into_iter().flatten().cloned().collect(),
            close_ts,
            idle,
            idle_alt,
            by: r.close.by,
            how: r.close.how,
            heartbeat: r.heartbeat.clone(),
            proxy,
            both_legs_by_proxy: both_legs_by_proxy(r),
            first_closed: first_closed(r),
            // Evidence only for closes that will be judged; survivors stay small.
            hops: if abnormal { r.hops.clone() } else { Vec::new() },
            proxy_close,
            code: r.close.code,
            stream_note: super::h2::stream_close_note(r),
        };
        if abnormal || proxy_close {
            self.pending.push_back(e);
            if self.pending.len() > MAX_PENDING {
                self.judge_oldest_instant(out);
            }
        } else if e.heartbeat.is_some() && self.heartbeats.len() < MAX_SURVIVORS {
            self.heartbeats.push(e);
        }
    }

    /// Too many closes wait: the oldest instant's are judged now (a mass
    /// close if they make one, else each with what is known), as their
    /// time being up would. O(1) amortised: each close is judged once.
    #[cold]
    fn judge_oldest_instant(&mut self, out: &mut Vec<Finding>) {
        let Some(first) = self.pending.front().map(|e| e.close_ts) else { return };
        let mut n = 0;
        while n < self.pending.len() && self.pending[n].close_ts.since(first) <= SAME_INSTANT_S {
            n += 1;
        }
        let group: Vec<Ended> = self.pending.drain(..n.max(1)).collect();
        self.judged_early += group.len() as u64;
        if group.len() >= MASS_MIN && spread_says_mass(&group) {
            out.push(mass_close(&group));
            return;
        }
        for e in group.iter().filter(|e| !e.proxy_close) {
            if let Some(f) = self.judge(e, true) {
                out.push(f);
            }
        }
    }

    /// The boundary a close is at: one the user stated, else a known
    /// product default, else one learned from this capture; the closest
    /// within tolerance at the first level that has one.
    fn match_boundary(&self, idle: f64) -> Option<(f64, Source)> {
        let closest = |cands: &mut dyn Iterator<Item = f64>| {
            cands
                .filter(|b| (idle - b).abs() <= tolerance(*b))
                .min_by(|a, b| (idle - a).abs().total_cmp(&(idle - b).abs()))
        };
        closest(&mut self.configured.iter().copied())
            .map(|b| (b, Source::Configured))
            .or_else(|| closest(&mut KNOWN_BOUNDARIES.iter().map(|k| k.0)).map(|b| (b, Source::Known)))
            .or_else(|| closest(&mut self.learned.iter().copied()).map(|b| (b, Source::Learned)))
    }

    /// A heartbeat interval at or just under a boundary races it.
    fn races(interval: f64, b: f64) -> bool {
        interval >= 0.85 * b && interval <= b + tolerance(b)
    }

    fn learn(&mut self, b: f64) {
        let b = (b * 10.0).round() / 10.0;
        if !self.learned.iter().any(|&x| (x - b).abs() <= tolerance(b)) {
            self.learned.push(b);
        }
    }

    pub fn tick(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        self.classify(now, false, out);
        if self.live {
            self.warn_open(now, open, out);
        }
    }

    pub fn finish(&mut self, now: Ts, out: &mut Vec<Finding>) {
        self.classify(now, true, out);
    }

    /// The earliest close not judged yet (its finding will carry its time).
    pub fn pending_since(&self) -> Option<Ts> {
        self.pending.iter().chain(&self.heartbeats).map(|e| e.close_ts).min()
    }

    /// Sessions with heartbeats that survived: once the closes around their
    /// end are in (`SETTLE_S`, or at the end), flagged when their interval
    /// races a boundary stated or found in the capture by then.
    fn judge_survivors(&mut self, now: Ts, all: bool, out: &mut Vec<Finding>) {
        if self.heartbeats.is_empty() {
            return;
        }
        let bounds: Vec<(f64, Source)> = self
            .configured
            .iter()
            .map(|&b| (b, Source::Configured))
            .chain(self.learned.iter().map(|&b| (b, Source::Learned)))
            .collect();
        let mut keep = Vec::new();
        for e in std::mem::take(&mut self.heartbeats) {
            if !all && now.since(e.close_ts) < SETTLE_S {
                keep.push(e);
                continue;
            }
            let Some(hb) = &e.heartbeat else { continue };
            if let Some(&(b, src)) = bounds.iter().find(|(b, _)| Self::races(hb.interval_s, *b)) {
                let msg = format!(
                    "the WebSocket session on {} sends {} {}s every {:.1} s, at or just under the {:.1} s idle timeout {} on this path: it survived this time, but any delay makes it miss the boundary and be cut (the client sees 1006)",
                    e.path,
                    hb.from,
                    hb.kind,
                    hb.interval_s,
                    b,
                    if src == Source::Configured { "you stated" } else { "seen" }
                );
                let d = json!({"session": e.id, "heartbeat": hb, "boundary_s": b, "boundary_source": src.name(), "cut": false});
                out.push(finding(
                    FindingKind::HeartbeatRace,
                    Severity::Warning,
                    e.close_ts,
                    e.flows.clone(),
                    Some(&e.path),
                    msg,
                    e.proxy,
                    Some(b),
                    d,
                ));
            }
        }
        self.heartbeats = keep;
    }

    /// The heartbeats that decide between a race and a plain idle close
    /// are known: the session's own, or others' on its path.
    fn heartbeat_known(&self, e: &Ended) -> bool {
        e.heartbeat.is_some() || self.path_heartbeat.contains_key(&e.path)
    }

    /// Closes are judged the same way live and offline, each within
    /// `DECIDE_WITHIN_S` of its time: once settled (other closes of the same
    /// instant seen) if a boundary explains it and the heartbeats of its
    /// path are known; otherwise when that time is up, with what the
    /// capture taught by then (boundaries learned from other closes).
    fn classify(&mut self, now: Ts, all: bool, out: &mut Vec<Finding>) {
        self.judge_survivors(now, all, out);
        if self.pending.is_empty() {
            return;
        }
        // Nearly sorted already (sessions end in time order): a linear pass.
        self.pending.make_contiguous().sort_by_key(|e| (e.close_ts, e.id));
        // 1. Mass closes: groups closed in the same instant.
        let mut i = 0;
        let mut keep = Vec::new();
        let pending = Vec::from(std::mem::take(&mut self.pending));
        while i < pending.len() {
            let mut j = i + 1;
            while j < pending.len() && pending[j].close_ts.since(pending[i].close_ts) <= SAME_INSTANT_S {
                j += 1;
            }
            let group = &pending[i..j];
            let settled = all || now.since(group[group.len() - 1].close_ts) >= SETTLE_S;
            if settled && group.len() >= MASS_MIN && spread_says_mass(group) {
                out.push(mass_close(group));
            } else {
                keep.extend_from_slice(group);
            }
            i = j;
        }
        // 2. One by one: explained by a boundary and ready.
        let mut waiting = Vec::new();
        let mut undecided = Vec::new();
        for e in keep {
            let age = now.since(e.close_ts);
            if !all && age < SETTLE_S {
                waiting.push(e);
                continue;
            }
            if e.proxy_close {
                continue;
            }
            let due = all || age >= DECIDE_WITHIN_S;
            if self.boundary_for(&e).is_some() {
                if due || self.heartbeat_known(&e) {
                    out.push(self.judge(&e, false).expect("a boundary explains it"));
                } else {
                    waiting.push(e);
                }
            } else {
                undecided.push(e);
            }
        }
        // 3. Learn a boundary from several closes after the same idle time.
        let mut idles: Vec<f64> = undecided.iter().filter(|e| e.idle >= 1.0).map(|e| e.idle).collect();
        idles.sort_by(f64::total_cmp);
        for w in idles.windows(LEARN_MIN) {
            if w[LEARN_MIN - 1] - w[0] <= tolerance(w[0]) {
                self.learn(w[LEARN_MIN / 2]);
            }
        }
        for e in undecided {
            let due = all || now.since(e.close_ts) >= DECIDE_WITHIN_S;
            if self.boundary_for(&e).is_some() && (due || self.heartbeat_known(&e)) {
                out.push(self.judge(&e, false).expect("a boundary explains it"));
            } else if due {
                out.push(self.judge(&e, true).expect("forced judgement"));
            } else {
                waiting.push(e);
            }
        }
        self.pending = waiting.into();
    }

    /// The silence that led to a close: normally `idle`; when a frame
    /// crossed the close (idle under a second), the silence before it.
    fn silence(e: &Ended) -> f64 {
        if e.idle < 1.0 && e.idle_alt >= 1.0 { e.idle_alt } else { e.idle }
    }

    /// The boundary a close is at, if one explains it.
    fn boundary_for(&self, e: &Ended) -> Option<(f64, Source)> {
        let idle = Self::silence(e);
        let observed = (e.both_legs_by_proxy && idle >= 1.0).then_some((idle, Source::Observed));
        self.match_boundary(idle).or(observed)
    }

    /// Judges one abnormal close; `force` ends in abnormal-close when
    /// nothing else fits.
    fn judge(&mut self, e: &Ended, force: bool) -> Option<Finding> {
        let idle = Self::silence(e);
        let boundary = self.boundary_for(e);
        // Heartbeats (this session's, or its path's when it died before its
        // first one) that race the boundary it died at.
        let hb = e.heartbeat.clone().or_else(|| self.path_heartbeat.get(&e.path).cloned());
        if let (Some(hb), Some((b, src))) = (&hb, boundary)
            && Self::races(hb.interval_s, b)
        {
            if src == Source::Observed {
                self.learn(b);
            }
            return Some(self.timeout_finding(e, idle, Some(hb), FindingKind::HeartbeatRace, Severity::Error, b, src));
        }
        if let Some((b, src)) = boundary {
            if src == Source::Observed {
                self.learn(b);
            }
            return Some(self.timeout_finding(
                e,
                idle,
                e.heartbeat.as_ref(),
                FindingKind::IdleTimeoutClose,
                Severity::Error,
                b,
                src,
            ));
        }
        if !force {
            return None;
        }
        let proxy_name = if e.proxy == Proxy::Unknown { "the proxy" } else { e.proxy.name() };
        let who = match (&e.first_closed, e.by) {
            (Some((FirstClosed::Backend, addr)), _) => format!(
                "the backend {addr} closed the upstream connection first ({}), then {proxy_name} closed the client's without a close frame; the client saw 1006: look at the backend (crash, restart, its own timeout)",
                e.how.name().to_uppercase()
            ),
            (Some((_, addr)), _) => format!(
                "the client {addr} dropped its connection first ({}; page closed, network change or crash), then {proxy_name} closed the upstream one; the backend saw 1006",
                e.how.name().to_uppercase()
            ),
            (None, Some(Closer::Client)) => "the client closed the connection without a close frame (page closed, network change or crash); the backend saw 1006".to_string(),
            (None, Some(Closer::Server)) => "the server side closed the connection without a close frame; the client saw 1006".to_string(),
            (None, Some(_)) => "the proxy closed the connection without a close frame; the client saw 1006".to_string(),
            (None, None) => "the connection ended without a close frame".to_string(),
        };
        let msg = format!(
            "the WebSocket session on {} ended without a close handshake ({} after {:.1} s idle, not at a known timeout): {who}",
            e.path,
            e.how.name().to_uppercase(),
            e.idle
        );
        let d = json!({"session": e.id, "closed_by": e.by, "first_closed": e.first_closed.as_ref().map(|f| f.0.name()), "how": e.how, "idle_s": round3(e.idle), "hops": e.hops});
        Some(finding(
            FindingKind::AbnormalClose,
            Severity::Warning,
            e.close_ts,
            e.flows.clone(),
            Some(&e.path),
            msg,
            e.proxy,
            None,
            d,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn timeout_finding(
        &self,
        e: &Ended,
        idle: f64,
        hb: Option<&Heartbeat>,
        kind: FindingKind,
        sev: Severity,
        b: f64,
        src: Source,
    ) -> Finding {
        let name = KNOWN_BOUNDARIES.iter().find(|(k, _)| *k == b).map(|(_, n)| *n);
        let which = match src {
            Source::Configured => format!("the {b:.0} s timeout you stated"),
            Source::Known => format!("a {b:.0} s boundary ({})", name.unwrap_or("a common idle timeout")),
            Source::Learned => format!("the {b:.1} s boundary other sessions in this capture were cut at"),
            Source::Observed => format!("an idle timeout of about {b:.1} s"),
        };
        let closer = match (e.by, e.both_legs_by_proxy) {
            (_, true) => format!(
                "{} closed both legs together",
                if e.proxy == Proxy::Unknown { "the proxy" } else { e.proxy.name() }
            ),
            (Some(Closer::Client), _) => {
                "the hop in front (a load balancer or the client's side) closed it".to_string()
            }
            (Some(Closer::Server), _) => "the server side closed it".to_string(),
            (Some(x), _) => format!("the {x} closed it"),
            (None, _) => "it was closed".to_string(),
        };
        let closer = match &e.stream_note {
            Some(n) => format!("{closer} ({n})"),
            None => closer,
        };
        let hb_text = match hb {
            Some(h) => format!("{} {}s every {:.1} s", h.from, h.kind, h.interval_s),
            None => "no heartbeats".to_string(),
        };
        let msg = if kind == FindingKind::HeartbeatRace {
            format!(
                "the WebSocket session on {} was cut after {:.1} s without data at {which}: the heartbeats on this path ({hb_text}) are at or just under the boundary, so sessions die intermittently; {closer} without a close frame (the client saw 1006)",
                e.path, idle
            )
        } else {
            format!(
                "the WebSocket session on {} was closed after {:.1} s without data, at {which}; {closer} without a close frame (the client saw 1006); {hb_text}",
                e.path, idle
            )
        };
        let d = json!({
            "session": e.id,
            "idle_s": round3(idle),
            "boundary_s": round3(b),
            "boundary_source": src.name(),
            "closed_by": e.by,
            "how": e.how,
            "heartbeat": hb,
            "hops": e.hops,
        });
        finding(kind, sev, e.close_ts, e.flows.clone(), Some(&e.path), msg, e.proxy, Some(b), d)
    }

    /// Live: warn once about open sessions idle for most of a boundary.
    fn warn_open(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        let (b, src) = match self.configured.iter().copied().reduce(f64::min) {
            Some(b) => (b, Source::Configured),
            None => match self.learned_boundary() {
                Some(b) => (b, Source::Learned),
                None => (60.0, Source::Known),
            },
        };
        let open_ids: FxHashSet<u64> = open.iter().map(|r| r.id).collect();
        self.warned.retain(|id| open_ids.contains(id));
        for r in open {
            let idle = now.since(r.last_activity);
            if idle < 0.8 * b || self.warned.contains(&r.id) {
                continue;
            }
            self.warned.insert(r.id);
            let msg = format!(
                "the WebSocket session on {} has been idle {:.1} s, close to the {:.0} s idle timeout ({}): it will be cut without a close frame unless data or a ping crosses soon",
                r.path,
                idle,
                b,
                src.name()
            );
            let d = json!({"session": r.id, "idle_s": round3(idle), "boundary_s": b, "boundary_source": src.name()});
            let flows = [&r.client_flow, &r.upstream_flow].into_iter().flatten().cloned().collect();
            out.push(finding(
                FindingKind::IdleTimeoutImminent,
                Severity::Warning,
                now,
                flows,
                Some(&r.path),
                msg,
                Proxy::Unknown,
                Some(b),
                d,
            ));
        }
    }
}

/// The proxy (responder of the client hop, initiator of the upstream hop)
/// closed both hops within a second of each other.
fn both_legs_by_proxy(r: &Session) -> bool {
    let c = r.hops.iter().find(|h| h.role == Role::Client);
    let u = r.hops.iter().find(|h| h.role == Role::Upstream);
    match (c, u) {
        (Some(c), Some(u)) => {
            c.closed_by == Some(Side::Responder)
                && u.closed_by == Some(Side::Initiator)
                && match (c.closed_at, u.closed_at) {
                    (Some(a), Some(b)) => (a - b).abs() <= 1.0,
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Closed in the same instant, but after idle times that differ more than
/// the closing times do: they did not each reach a timeout.
fn spread_says_mass(g: &[Ended]) -> bool {
    let close_span = g[g.len() - 1].close_ts.since(g[0].close_ts);
    let (lo, hi) = g.iter().fold((f64::MAX, 0.0f64), |(lo, hi), e| (lo.min(e.idle), hi.max(e.idle)));
    hi - lo > (3.0 * close_span).max(0.05)
}

fn mass_close(g: &[Ended]) -> Finding {
    let proxy = g[0].proxy;
    let (lo, hi) = g.iter().fold((f64::MAX, 0.0f64), |(lo, hi), e| (lo.min(e.idle), hi.max(e.idle)));
    let paths: Vec<String> = {
        let mut p: Vec<String> = g.iter().map(|e| e.path.clone()).collect();
        p.sort();
        p.dedup();
        p
    };
    let pname = if proxy == Proxy::Unknown { "the proxy" } else { proxy.name() };
    let own_frames = g.iter().all(|e| e.proxy_close);
    let msg = if own_frames {
        let codes: Vec<String> = {
            let mut c: Vec<String> = g.iter().map(|e| e.code.map_or("no code".into(), |c| c.to_string())).collect();
            c.dedup();
            c
        };
        format!(
            "{} WebSocket sessions were closed in the same instant by {pname} itself, with its own close frames to both legs (close {}, not relayed from either end), after different idle times ({:.1}-{:.1} s): {pname} reloaded or shut down; every client saw that close",
            g.len(),
            codes.join(", "),
            lo,
            hi
        )
    } else {
        format!(
            "{} WebSocket sessions were closed in the same instant without close frames, after different idle times ({:.1}-{:.1} s): {pname} reloaded or restarted (not an idle timeout); every client saw 1006",
            g.len(),
            lo,
            hi
        )
    };
    let d = json!({
        "count": g.len(),
        "sessions": g.iter().map(|e| e.id).collect::<Vec<_>>(),
        "idle_s": g.iter().map(|e| round3(e.idle)).collect::<Vec<_>>(),
        "closed_by": g.iter().map(|e| e.by).collect::<Vec<_>>(),
        "paths": paths,
        "close_frames_by_proxy": own_frames,
    });
    let flows = g.iter().flat_map(|e| e.flows.iter().cloned()).collect();
    let path = if paths.len() == 1 { Some(paths[0].as_str()) } else { None };
    finding(FindingKind::MassClose, Severity::Warning, g[0].close_ts, flows, path, msg, proxy, None, d)
}
