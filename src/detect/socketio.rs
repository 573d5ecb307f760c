//! `socketio-no-upgrade`: Socket.IO / Engine.IO sessions (followed by
//! their `sid`, whatever path the app or a proxy mounted them on) that
//! keep long-polling and never get the 101 of their `transport=websocket`
//! upgrade: the upgrade fails somewhere (a location without the upgrade
//! headers, the client's transports option). Judged once quiet, or once
//! polling for `DECIDE_WITHIN_S`.

use serde_json::json;

use super::proxy::Proxy;
use super::{Config, Context, DECIDE_WITHIN_S, Detector, Finding, FindingKind, GaveUp, Severity, finding};
use crate::facts::{Exchange, Fact, HopRequest, SessionRow};
use crate::flow::FlowKey;
use crate::flow::key::FxHashMap;
use crate::record::Outcome;
use crate::time::Ts;

/// Engine.IO sessions tracked at most (oldest forgotten first).
const MAX_SIO: usize = 10_000;
/// A Socket.IO session quiet this long is judged.
const SIO_QUIET_S: f64 = 60.0;

#[derive(Debug, Clone)]
struct SioSession {
    first: Ts,
    last: Ts,
    polls: u32,
    attempts: u32,
    upgraded: bool,
    statuses: Vec<u16>,
    /// The path on the hop nearest the client, and the one the backend saw
    /// when a proxy rewrote it (location /rt/ { proxy_pass .../socket.io/; }).
    path: String,
    upstream_path: Option<String>,
    flows: Vec<FlowKey>,
    proxy: Proxy,
    /// Cache-busting `t` tokens of requests counted: a request seen on both
    /// hops but not paired is still one poll.
    seen: Vec<String>,
    handshakes: Vec<u64>,
    /// Reported already (still polling after `DECIDE_WITHIN_S`).
    judged: bool,
}

#[derive(Debug, Default)]
pub struct SocketIo {
    by_sid: FxHashMap<String, SioSession>,
    /// Sessions in the order they were last looked at for eviction, with
    /// their `last` then: the oldest goes first unless it was active since
    /// (then it goes to the back once, a "clock"). Entries of sessions gone
    /// are skipped, and dropped when they outnumber the live ones.
    order: std::collections::VecDeque<(String, Ts)>,
    /// Sessions forgotten for the bound before they were judged.
    forgotten: u64,
}

/// Longest `sid` kept as it is (Engine.IO's are 20 characters); a longer
/// one is cut at a character boundary (the wire decides its length).
const MAX_SID: usize = 64;

impl SocketIo {
    /// Makes room for one more session: O(1) amortised, no scan.
    fn make_room(&mut self) {
        while self.by_sid.len() >= MAX_SIO {
            let Some((k, at)) = self.order.pop_front() else { return };
            match self.by_sid.get(&k) {
                None => {}
                Some(s) if s.last > at => {
                    let last = s.last;
                    self.order.push_back((k, last));
                }
                Some(_) => {
                    self.by_sid.remove(&k);
                    self.forgotten += 1;
                }
            }
        }
    }

    fn enqueue(&mut self, sid: &str, at: Ts) {
        self.order.push_back((sid.to_string(), at));
        if self.order.len() > 2 * self.by_sid.len() + 1024 {
            let m = &self.by_sid;
            self.order.retain(|(k, _)| m.contains_key(k));
        }
    }
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

/// An Engine.IO request, whatever path the app or a proxy mounted it on:
/// its query names the protocol revision and the transport.
fn is_engine_io(t: &HopRequest) -> bool {
    query_param(&t.req.target, "EIO").is_some() && query_param(&t.req.target, "transport").is_some()
}

impl Detector for SocketIo {
    fn new(_: &Config) -> SocketIo {
        SocketIo::default()
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::SocketioNoUpgrade]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, _out: &mut Vec<Finding>) {
        if let Fact::Exchange(x) = fact {
            self.exchange(x, cx);
        }
    }

    fn on_tick(&mut self, now: Ts, _open: &[SessionRow], cx: &mut Context, out: &mut Vec<Finding>) {
        self.judge(now, false, cx, out);
    }

    fn finish(&mut self, now: Ts, cx: &mut Context, out: &mut Vec<Finding>) {
        self.judge(now, true, cx, out);
    }

    /// The first request of the earliest Socket.IO session not judged yet
    /// that may still be reported (one that upgraded never is).
    fn pending_since(&self) -> Option<Ts> {
        self.pending()
    }

    fn gave_up(&self, b: &mut GaveUp) {
        b.socketio_sessions_forgotten += self.forgotten;
    }
}

impl SocketIo {
    /// Follows Engine.IO sessions by `sid`: polling requests, and whether
    /// a `transport=websocket` upgrade ever got its 101.
    fn exchange(&mut self, x: &Exchange<'_>, cx: &Context) {
        let Some(t) = x.client.or(x.upstream) else { return };
        if !is_engine_io(t) && !x.upstream.is_some_and(is_engine_io) {
            return;
        }
        let upstream_path = x.upstream.map(|u| u.req.path()).filter(|p| *p != t.req.path()).map(str::to_string);
        let Some(sid) = query_param(&t.req.target, "sid") else { return };
        let mut cut = sid.len().min(MAX_SID);
        while !sid.is_char_boundary(cut) {
            cut -= 1;
        }
        let sid = &sid[..cut];
        let transport = query_param(&t.req.target, "transport").unwrap_or("");
        if !self.by_sid.contains_key(sid) {
            self.make_room();
            self.enqueue(sid, t.req_ts);
        }
        let proxy = x.client.and_then(|c| cx.proxy_at(c.flow.dst)).unwrap_or(Proxy::UNKNOWN);
        let s = self.by_sid.entry(sid.to_string()).or_insert_with(|| SioSession {
            first: t.req_ts,
            last: t.req_ts,
            polls: 0,
            attempts: 0,
            upgraded: false,
            statuses: Vec::new(),
            path: t.req.path().to_string(),
            upstream_path: None,
            flows: Vec::new(),
            proxy,
            seen: Vec::new(),
            handshakes: Vec::new(),
            judged: false,
        });
        if !s.proxy.is_known() {
            s.proxy = proxy;
        }
        if x.client.is_some() && s.path != t.req.path() {
            // Seen first on the upstream hop alone: the client's path wins.
            s.upstream_path = Some(std::mem::replace(&mut s.path, t.req.path().to_string()));
        }
        if s.upstream_path.is_none() {
            s.upstream_path = upstream_path;
        }
        s.first = s.first.min(t.req_ts);
        s.last = s.last.max(t.req_ts);
        if let Some(tok) = query_param(&t.req.target, "t") {
            if s.seen.iter().any(|x| x == tok) {
                return;
            }
            if s.seen.len() >= 16 {
                s.seen.remove(0);
            }
            s.seen.push(tok.to_string());
        }
        match transport {
            "polling" => s.polls += 1,
            "websocket" => {
                s.attempts += 1;
                if let Some(h) = x.handshake
                    && s.handshakes.len() < 8
                {
                    s.handshakes.push(h);
                }
                if let Some(st) = t.status()
                    && s.statuses.len() < 16
                {
                    s.statuses.push(st);
                }
                if x.outcome == Outcome::Upgraded {
                    s.upgraded = true;
                }
            }
            _ => {}
        }
        let f = t.flow;
        if s.flows.len() < 8 && !s.flows.contains(&f) {
            s.flows.push(f);
        }
    }

    /// The first request of the earliest Socket.IO session not judged yet
    /// that may still be reported (one that upgraded never is).
    fn pending(&self) -> Option<Ts> {
        self.by_sid.values().filter(|s| !s.upgraded && !s.judged).map(|s| s.first).min()
    }

    /// Judges Socket.IO sessions that went quiet, or that polled for
    /// `DECIDE_WITHIN_S` without ever upgrading (or all, at the end).
    fn judge(&mut self, now: Ts, all: bool, cx: &Context, out: &mut Vec<Finding>) {
        // Quiet sessions are forgotten (judged first if not yet).
        let quiet: Vec<String> = self
            .by_sid
            .iter()
            .filter(|(_, s)| all || now.since(s.last) > SIO_QUIET_S)
            .map(|(k, _)| k.clone())
            .collect();
        let mut done: Vec<(String, SioSession)> =
            quiet.into_iter().filter_map(|k| self.by_sid.remove(&k).map(|s| (k, s))).collect();
        // Sessions still polling after DECIDE_WITHIN_S are judged now, once.
        for (k, s) in self.by_sid.iter_mut() {
            if !s.upgraded && !s.judged && now.since(s.first) >= DECIDE_WITHIN_S {
                s.judged = true;
                let mut c = s.clone();
                c.judged = false;
                done.push((k.clone(), c));
            }
        }
        done.sort_by_key(|(_, s)| s.first);
        for (sid, s) in done {
            if s.upgraded || s.judged || s.polls < 2 {
                continue;
            }
            let why = if s.attempts == 0 {
                "the client never attempted the websocket transport (transports option, or the upgrade probe never reached the backend)".to_string()
            } else {
                format!(
                    "{} websocket upgrade attempt(s) failed ({})",
                    s.attempts,
                    s.statuses.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
                )
            };
            let msg = format!(
                "a Socket.IO session on {}{} stayed on HTTP long-polling for {:.1} s ({} polls): {why}",
                s.path,
                s.upstream_path.as_deref().map(|p| format!(" (the backend's {p})")).unwrap_or_default(),
                s.last.since(s.first),
                s.polls
            );
            let d = json!({
                "sid": cx.redact.target(&format!("?sid={sid}")).trim_start_matches("?sid=").to_string(),
                "polls": s.polls,
                "upgrade_attempts": s.attempts,
                "upgrade_statuses": s.statuses,
                "duration_s": (s.last.since(s.first) * 1000.0).round() / 1000.0,
                "upstream_path": s.upstream_path,
                "upgrade_handshakes": s.handshakes,
            });
            out.push(finding(
                FindingKind::SocketioNoUpgrade,
                Severity::Warning,
                s.first,
                s.flows,
                Some(&s.path),
                msg,
                s.proxy,
                None,
                d,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params() {
        let t = "/socket.io/?EIO=4&transport=polling&t=abc&sid=Xy_1";
        assert_eq!(query_param(t, "sid"), Some("Xy_1"));
        assert_eq!(query_param(t, "transport"), Some("polling"));
        assert_eq!(query_param(t, "nope"), None);
        assert_eq!(query_param("/x", "sid"), None);
    }

    /// Polls of one Engine.IO session (the same sid), never a websocket
    /// transport: judged once quiet.
    #[test]
    fn a_session_that_only_polls() {
        use super::super::Config;
        use super::super::testing::*;
        use crate::proto::Version;
        let mut d = One::new::<SocketIo>(Config::default());
        for (i, at) in [(1u64, 1.0), (2, 26.0), (3, 51.0)] {
            let target = format!("/socket.io/?EIO=4&transport=polling&t=T{i}&sid=abc");
            let c = hop(i, "198.51.100.7:51000->10.0.0.1:80", request("GET", &target, Version::Http11, &[]), at)
                .answered(response(200, &[]), at + 25.0);
            assert!(d.exchange(&exchange(None, Some(&c), None)).is_empty());
        }
        assert_eq!(d.0.pending_since(), Some(t(1.0)));
        let fs = d.tick(112.0, &[]);
        assert_eq!(kinds(&fs), ["socketio-no-upgrade"]);
        assert_eq!(fs[0].detail["polls"], 3);
        assert!(fs[0].message.contains("the client never attempted the websocket transport"), "{}", fs[0].message);
    }
}
