//! How sessions end without a close handshake: at an idle timeout
//! (`idle-timeout-close`), at a boundary their heartbeats race
//! (`heartbeat-race`, cut), all at once (`mass-close`: a reload), or else
//! (`abnormal-close`).
//!
//! A session that ends without a close handshake is judged a little later
//! (packet time), so that sessions closed in the same instant can be seen
//! together: a proxy reload closes everything at once whatever its idle
//! time, while a timeout closes each session its own boundary after its
//! last data. Boundaries learned here (several closes after the same
//! silence) go to the context, for the other detectors.

use serde_json::json;

use super::boundary::{KNOWN_BOUNDARIES, Source, races, tolerance};
use super::proxy::Proxy;
use super::{Config, Context, DECIDE_WITHIN_S, Detector, Finding, FindingKind, GaveUp, Severity, finding};
use crate::facts::{Fact, SessionEnd, SessionRow};
use crate::flow::key::FxHashMap;
use crate::flow::{Endpoint, FlowKey};
use crate::proto::activity::WsActivity;
use crate::record::{CloseHow, Closer, Heartbeat, Role, Session, Side};
use crate::time::{Ts, round3};

/// Sessions closing within this long of each other are "the same instant".
const SAME_INSTANT_S: f64 = 1.0;
/// Wait this long (packet time) after a close before judging it.
const SETTLE_S: f64 = 2.0;
/// Sessions closed together that make a mass close.
const MASS_MIN: usize = 3;
/// Abnormal closes sharing an idle time that make a learned boundary.
const LEARN_MIN: usize = 3;
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
    /// An HTTP/2 stream's end, in words.
    stream_note: Option<String>,
}

#[derive(Default)]
pub struct Closes {
    /// In the order sessions ended (nearly close-time order).
    pending: std::collections::VecDeque<Ended>,
    /// Closes judged before their time because `MAX_PENDING` were waiting.
    judged_early: u64,
    /// Heartbeat interval seen on each path (from any session there).
    path_heartbeat: FxHashMap<String, Heartbeat>,
}

impl Detector for Closes {
    fn new(_: &Config) -> Closes {
        Closes::default()
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::IdleTimeoutClose, FindingKind::HeartbeatRace, FindingKind::MassClose, FindingKind::AbnormalClose]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        if let Fact::SessionEnded(s) = fact {
            self.session_ended(s, cx, out);
        }
    }

    fn on_tick(&mut self, now: Ts, _open: &[SessionRow], cx: &mut Context, out: &mut Vec<Finding>) {
        self.classify(now, false, cx, out);
    }

    fn finish(&mut self, now: Ts, cx: &mut Context, out: &mut Vec<Finding>) {
        self.classify(now, true, cx, out);
    }

    /// The earliest close not judged yet (its finding will carry its time).
    fn pending_since(&self) -> Option<Ts> {
        self.pending.iter().map(|e| e.close_ts).min()
    }

    fn gave_up(&self, b: &mut GaveUp) {
        b.closes_judged_early += self.judged_early;
    }
}

impl Closes {
    fn session_ended(&mut self, s: &SessionEnd<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
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
        if cx.bad_handshake(r.handshake) || !(abnormal || proxy_close) {
            return;
        }
        let hops: Vec<&WsActivity> = [s.client, s.upstream].into_iter().flatten().collect();
        let close_ts = s.close_ts();
        let idle = r.close.idle_s.unwrap_or(0.0);
        let quiet_before = close_ts.add_secs(-0.1);
        let earlier = hops
            .iter()
            .flat_map(|w| [w.last_frame_before_close, w.prev_frame_before_close, Some(w.upgraded_ts)])
            .flatten()
            .filter(|&t| t <= quiet_before)
            .max();
        let idle_alt = earlier.map_or(idle, |t| close_ts.since(t).max(idle));
        self.pending.push_back(Ended {
            id: r.id,
            path: r.path.clone(),
            flows: [r.client_flow, r.upstream_flow].into_iter().flatten().collect(),
            close_ts,
            idle,
            idle_alt,
            by: r.close.by,
            how: r.close.how,
            heartbeat: r.heartbeat.clone(),
            proxy: cx.session_proxy(s),
            both_legs_by_proxy: both_legs_by_proxy(r),
            first_closed: first_closed(r),
            // Evidence only for closes that will be judged.
            hops: if abnormal { r.hops.clone() } else { Vec::new() },
            proxy_close,
            code: r.close.code,
            stream_note: stream_close_note(r),
        });
        if self.pending.len() > MAX_PENDING {
            self.judge_oldest_instant(cx, out);
        }
    }

    /// Too many closes wait: the oldest instant's are judged now (a mass
    /// close if they make one, else each with what is known), as their
    /// time being up would. O(1) amortised: each close is judged once.
    #[cold]
    fn judge_oldest_instant(&mut self, cx: &mut Context, out: &mut Vec<Finding>) {
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
            if let Some(f) = self.judge(e, true, cx) {
                out.push(f);
            }
        }
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
    fn classify(&mut self, now: Ts, all: bool, cx: &mut Context, out: &mut Vec<Finding>) {
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
            if self.boundary_for(&e, cx).is_some() {
                if due || self.heartbeat_known(&e) {
                    out.push(self.judge(&e, false, cx).expect("a boundary explains it"));
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
                cx.boundaries.learn(w[LEARN_MIN / 2]);
            }
        }
        for e in undecided {
            let due = all || now.since(e.close_ts) >= DECIDE_WITHIN_S;
            if self.boundary_for(&e, cx).is_some() && (due || self.heartbeat_known(&e)) {
                out.push(self.judge(&e, false, cx).expect("a boundary explains it"));
            } else if due {
                out.push(self.judge(&e, true, cx).expect("forced judgement"));
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
    fn boundary_for(&self, e: &Ended, cx: &Context) -> Option<(f64, Source)> {
        let idle = Self::silence(e);
        let observed = (e.both_legs_by_proxy && idle >= 1.0).then_some((idle, Source::Observed));
        cx.boundaries.matching(idle).or(observed)
    }

    /// Judges one abnormal close; `force` ends in abnormal-close when
    /// nothing else fits.
    fn judge(&self, e: &Ended, force: bool, cx: &mut Context) -> Option<Finding> {
        let idle = Self::silence(e);
        let boundary = self.boundary_for(e, cx);
        // Heartbeats (this session's, or its path's when it died before its
        // first one) that race the boundary it died at.
        let hb = e.heartbeat.clone().or_else(|| self.path_heartbeat.get(&e.path).cloned());
        if let (Some(hb), Some((b, src))) = (&hb, boundary)
            && races(hb.interval_s, b)
        {
            if src == Source::Observed {
                cx.boundaries.learn(b);
            }
            return Some(Self::timeout_finding(e, idle, Some(hb), FindingKind::HeartbeatRace, Severity::Error, b, src));
        }
        if let Some((b, src)) = boundary {
            if src == Source::Observed {
                cx.boundaries.learn(b);
            }
            return Some(Self::timeout_finding(
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
        let proxy_name = e.proxy.name();
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
            (_, true) => format!("{} closed both legs together", e.proxy.name()),
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
    let pname = proxy.name();
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

/// For an idle close of an HTTP/2 stream: what the connection did, in
/// words ("the proxy reset stream 3 (RST_STREAM CANCEL) and left the
/// HTTP/2 connection open"), from the session's client hop.
fn stream_close_note(s: &Session) -> Option<String> {
    let c = s.hops.iter().find(|h| h.role == Role::Client)?;
    let id = c.stream_id?;
    Some(match (c.closed_with, c.reset) {
        (Some(CloseHow::Rst), Some(code)) => format!(
            "stream {id} was reset with RST_STREAM {code} by the {} while the HTTP/2 connection and its other streams stayed open",
            if c.closed_by == Some(Side::Responder) { "proxy" } else { "client" }
        ),
        (Some(CloseHow::Fin), _) => {
            format!("stream {id} was ended (END_STREAM) while the HTTP/2 connection stayed open")
        }
        _ => format!("on HTTP/2 stream {id}"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::Closes;
    use crate::record::{CloseHow, Closer, FindingKind, Severity};

    /// Cut after 60 s of silence, nginx's default: an idle timeout, once
    /// it is known whether heartbeats on its path race the boundary (none
    /// seen: when its time is up).
    #[test]
    fn a_cut_at_a_known_boundary_is_an_idle_timeout() {
        let mut d = One::new::<Closes>(Config::default());
        let mut s = session(1, "/ws", 0.0, 100.0, cut(Closer::Proxy, CloseHow::Fin, 60.0));
        proxy_closed_both(&mut s, 100.0, CloseHow::Fin);
        let a = activity(0.0, Some(40.0), 100.0, "fin");
        assert!(d.session(&s, Some(&a), Some(&a)).is_empty(), "judged a little later");
        assert!(d.tick(103.0, &[]).is_empty(), "the heartbeats on /ws are not known yet");
        assert_eq!(d.0.pending_since(), Some(t(100.0)));
        let fs = d.tick(160.0, &[]);
        assert_eq!(kinds(&fs), ["idle-timeout-close"]);
        assert_eq!(fs[0].severity, Severity::Error);
        assert_eq!(fs[0].detail["boundary_s"], 60.0);
        assert_eq!(fs[0].detail["boundary_source"], "known");
        assert!(fs[0].message.contains("the proxy closed both legs together"), "{}", fs[0].message);
    }

    /// Three sessions closed in the same instant after different silences:
    /// a reload, not three timeouts.
    #[test]
    fn sessions_cut_together_after_different_silences_are_a_mass_close() {
        let mut d = One::new::<Closes>(Config::default());
        for (i, idle) in [(1, 5.0), (2, 17.0), (3, 33.0)] {
            let s = session(i, "/ws", 0.0, 200.0, cut(Closer::Proxy, CloseHow::Fin, idle));
            let a = activity(0.0, None, 200.0 + i as f64 * 0.01, "fin");
            d.session(&s, Some(&a), None);
        }
        let fs = d.tick(203.0, &[]);
        assert_eq!(kinds(&fs), ["mass-close"]);
        assert_eq!(fs[0].detail["count"], 3);
        assert!(fs[0].message.starts_with("3 WebSocket sessions were closed in the same instant"));
    }

    /// Nothing explains a client's RST after 7 s: judged within 60 s as an
    /// abnormal close, naming who closed.
    #[test]
    fn an_unexplained_cut_is_an_abnormal_close() {
        let mut d = One::new::<Closes>(Config::default());
        let s = session(1, "/ws", 0.0, 50.0, cut(Closer::Client, CloseHow::Rst, 7.0));
        let a = activity(0.0, Some(43.0), 50.0, "rst");
        d.session(&s, Some(&a), None);
        assert!(d.tick(60.0, &[]).is_empty(), "a boundary may still be learned");
        let fs = d.tick(111.0, &[]);
        assert_eq!(kinds(&fs), ["abnormal-close"]);
        assert_eq!((fs[0].kind, fs[0].severity), (FindingKind::AbnormalClose, Severity::Warning));
        assert!(fs[0].message.contains("the client closed the connection without a close frame"), "{}", fs[0].message);
    }

    /// Closes after the same unknown silence teach a boundary the others
    /// (and the dashboard) then use.
    #[test]
    fn closes_after_the_same_silence_teach_a_boundary() {
        let mut d = One::new::<Closes>(Config::default());
        for (i, at) in [(1u64, 100.0), (2, 150.0), (3, 200.0)] {
            let s = session(i, "/ws", 0.0, at, cut(Closer::Server, CloseHow::Fin, 42.0));
            let a = activity(0.0, None, at, "fin");
            d.session(&s, Some(&a), None);
        }
        let fs = d.finish(300.0);
        assert_eq!(kinds(&fs), ["idle-timeout-close", "idle-timeout-close", "idle-timeout-close"]);
        assert_eq!(fs[0].detail["boundary_source"], "learned");
        assert_eq!(d.0.learned_boundary(), Some(42.0));
    }
}
