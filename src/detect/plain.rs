//! Plain HTTP through the proxy: a hard-coded `Connection: upgrade`, and
//! Socket.IO/Engine.IO sessions that never leave long-polling.

use serde_json::json;

use super::diagnosis::{Diagnosis, finding, flows};
use super::proxy::Proxy;
use super::{Finding, Severity};
use crate::correlate::{Exchange, Txn};
use crate::flow::key::FxHashMap;
use crate::record::Outcome;
use crate::time::Ts;

/// Engine.IO sessions tracked at most (oldest forgotten first).
const MAX_SIO: usize = 10_000;
/// A Socket.IO session quiet this long is judged.
const SIO_QUIET_S: f64 = 60.0;

#[derive(Debug, Clone)]
pub(super) struct SioSession {
    first: Ts,
    last: Ts,
    polls: u32,
    attempts: u32,
    upgraded: bool,
    statuses: Vec<u16>,
    path: String,
    flows: Vec<String>,
    proxy: Proxy,
}

#[derive(Debug, Default)]
pub(super) struct SocketIo {
    by_sid: FxHashMap<String, SioSession>,
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    let q = target.split_once('?')?.1;
    q.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v))
}

fn is_engine_io(t: &Txn) -> bool {
    let p = t.req.path();
    (p.contains("/socket.io") || p.contains("/engine.io")) && query_param(&t.req.target, "EIO").is_some()
}

impl Diagnosis {
    pub(super) fn plain(&mut self, x: &Exchange<'_>, proxy: Proxy, out: &mut Vec<Finding>) {
        // A forwarded plain request with `Connection: upgrade` but no Upgrade.
        let Some(u) = x.upstream else { return };
        let client_upgrading = x.client.is_some_and(|c| c.req.headers.has("upgrade"));
        if client_upgrading || u.req.headers.has("upgrade") || !u.req.headers.has_token("connection", "upgrade") {
            return;
        }
        let msg = format!(
            "{} forwarded the plain request {} {} to {} with Connection: {} but no Upgrade: a hard-coded header on a location that also serves plain HTTP; it defeats upstream keep-alive and confuses backends",
            proxy.name(),
            u.req.method,
            x.path,
            u.flow.dst,
            u.req.headers.joined("connection").unwrap_or_default()
        );
        let d = json!({
            "connection": u.req.headers.joined("connection"),
            "client_connection": x.client.and_then(|c| c.req.headers.joined("connection")),
            "status": u.status(),
        });
        out.push(finding(
            "connection-upgrade-on-plain",
            Severity::Warning,
            x.ts,
            flows(&[x.client, Some(u)]),
            Some(x.path),
            msg,
            proxy,
            None,
            d,
        ));
    }

    /// Follows Engine.IO sessions by `sid`: polling requests, and whether
    /// a `transport=websocket` upgrade ever got its 101.
    pub(super) fn socketio_exchange(&mut self, x: &Exchange<'_>) {
        let Some(t) = x.client.or(x.upstream) else { return };
        if !is_engine_io(t) {
            return;
        }
        let Some(sid) = query_param(&t.req.target, "sid") else { return };
        let transport = query_param(&t.req.target, "transport").unwrap_or("");
        if !self.socketio.by_sid.contains_key(sid)
            && self.socketio.by_sid.len() >= MAX_SIO
            && let Some(oldest) = self.socketio.by_sid.iter().min_by_key(|(_, s)| s.last).map(|(k, _)| k.clone())
        {
            self.socketio.by_sid.remove(&oldest);
        }
        let proxy = x.client.and_then(|c| self.known_proxy_at(c.flow.dst)).unwrap_or(Proxy::Unknown);
        let s = self.socketio.by_sid.entry(sid.to_string()).or_insert_with(|| SioSession {
            first: t.req_ts,
            last: t.req_ts,
            polls: 0,
            attempts: 0,
            upgraded: false,
            statuses: Vec::new(),
            path: t.req.path().to_string(),
            flows: Vec::new(),
            proxy,
        });
        s.last = s.last.max(t.req_ts);
        match transport {
            "polling" => s.polls += 1,
            "websocket" => {
                s.attempts += 1;
                if let Some(st) = t.status() {
                    s.statuses.push(st);
                }
                if x.outcome == Outcome::Upgraded {
                    s.upgraded = true;
                }
            }
            _ => {}
        }
        let f = t.flow.to_string();
        if s.flows.len() < 8 && !s.flows.contains(&f) {
            s.flows.push(f);
        }
    }

    /// Judges Socket.IO sessions that went quiet (or all, at the end).
    pub(super) fn socketio_tick(&mut self, now: Ts, all: bool, out: &mut Vec<Finding>) {
        let done: Vec<String> = self
            .socketio
            .by_sid
            .iter()
            .filter(|(_, s)| all || now.since(s.last) > SIO_QUIET_S)
            .map(|(k, _)| k.clone())
            .collect();
        let mut done: Vec<(String, SioSession)> =
            done.into_iter().filter_map(|k| self.socketio.by_sid.remove(&k).map(|s| (k, s))).collect();
        done.sort_by_key(|(_, s)| s.first);
        for (sid, s) in done {
            if s.upgraded || s.polls < 2 {
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
                "a Socket.IO session on {} stayed on HTTP long-polling for {:.1} s ({} polls): {why}",
                s.path,
                s.last.since(s.first),
                s.polls
            );
            let d = json!({
                "sid": self.redact.target(&format!("?sid={sid}")).trim_start_matches("?sid=").to_string(),
                "polls": s.polls,
                "upgrade_attempts": s.attempts,
                "upgrade_statuses": s.statuses,
                "duration_s": (s.last.since(s.first) * 1000.0).round() / 1000.0,
            });
            out.push(finding(
                "socketio-no-upgrade",
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
}
