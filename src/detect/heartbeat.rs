//! `heartbeat-race` for sessions that survived: a session whose heartbeats
//! (pings, or regular small messages) come at or just under an idle timeout
//! stated or learned from the capture lives by luck: any delay makes it
//! miss the boundary and be cut. Judged once the closes around its end are
//! in (boundaries are learned from them), or at the end of the capture.
//! (A session that was cut at such a boundary is `closes.rs`'s.)

use serde_json::json;

use super::boundary::{Source, races};
use super::proxy::Proxy;
use super::{Config, Context, Detector, Finding, FindingKind, Severity, finding};
use crate::facts::{Fact, SessionEnd, SessionRow};
use crate::flow::FlowKey;
use crate::record::{CloseHow, Closer, Heartbeat as Beat};
use crate::time::Ts;

/// Sessions with heartbeats kept for the race check, at most.
const MAX_SURVIVORS: usize = 1000;
/// Wait this long (packet time) after a session's end before judging it.
const SETTLE_S: f64 = 2.0;

/// A session with heartbeats that ended cleanly or stayed open.
#[derive(Debug, Clone)]
struct Survivor {
    id: u64,
    path: String,
    flows: Vec<FlowKey>,
    close_ts: Ts,
    heartbeat: Beat,
    proxy: Proxy,
}

#[derive(Default)]
pub struct Heartbeat {
    survivors: Vec<Survivor>,
}

impl Detector for Heartbeat {
    fn new(_: &Config) -> Heartbeat {
        Heartbeat::default()
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::HeartbeatRace]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, _out: &mut Vec<Finding>) {
        if let Fact::SessionEnded(s) = fact {
            self.session_ended(s, cx);
        }
    }

    fn on_tick(&mut self, now: Ts, _open: &[SessionRow], cx: &mut Context, out: &mut Vec<Finding>) {
        self.judge(now, false, cx, out);
    }

    fn finish(&mut self, now: Ts, cx: &mut Context, out: &mut Vec<Finding>) {
        self.judge(now, true, cx, out);
    }

    fn pending_since(&self) -> Option<Ts> {
        self.survivors.iter().map(|e| e.close_ts).min()
    }
}

impl Heartbeat {
    fn session_ended(&mut self, s: &SessionEnd<'_>, cx: &Context) {
        let r = s.session;
        let abnormal = !r.open && matches!(r.close.how, CloseHow::Fin | CloseHow::Rst);
        let proxy_close = !r.open && r.close.how == CloseHow::CloseFrame && r.close.by == Some(Closer::Proxy);
        let Some(hb) = &r.heartbeat else { return };
        if cx.bad_handshake(r.handshake) || abnormal || proxy_close || self.survivors.len() >= MAX_SURVIVORS {
            return;
        }
        self.survivors.push(Survivor {
            id: r.id,
            path: r.path.clone(),
            flows: [r.client_flow, r.upstream_flow].into_iter().flatten().collect(),
            close_ts: s.close_ts(),
            heartbeat: hb.clone(),
            proxy: cx.session_proxy(s),
        });
    }

    /// Sessions with heartbeats that survived: once the closes around their
    /// end are in (`SETTLE_S`, or at the end), flagged when their interval
    /// races a boundary stated or found in the capture by then.
    fn judge(&mut self, now: Ts, all: bool, cx: &Context, out: &mut Vec<Finding>) {
        if self.survivors.is_empty() {
            return;
        }
        let bounds: Vec<(f64, Source)> = cx
            .boundaries
            .configured
            .iter()
            .map(|&b| (b, Source::Configured))
            .chain(cx.boundaries.all_learned().iter().map(|&b| (b, Source::Learned)))
            .collect();
        let mut keep = Vec::new();
        for e in std::mem::take(&mut self.survivors) {
            if !all && now.since(e.close_ts) < SETTLE_S {
                keep.push(e);
                continue;
            }
            let hb = &e.heartbeat;
            if let Some(&(b, src)) = bounds.iter().find(|(b, _)| races(hb.interval_s, *b)) {
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
        self.survivors = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::Heartbeat;
    use crate::record::{FindingKind, Peer, Severity};

    /// Pings every 58 s against the 60 s timeout the user stated: the
    /// session survived, by luck.
    #[test]
    fn heartbeats_just_under_a_stated_timeout() {
        let mut d = One::new::<Heartbeat>(Config { timeouts: vec![60.0], ..Config::default() });
        let mut s = session(1, "/feed", 0.0, 300.0, clean());
        s.heartbeat = Some(pings(58.0, Peer::Client));
        assert!(d.session(&s, None, None).is_empty());
        assert!(d.tick(301.0, &[]).is_empty(), "the closes around it may still teach a boundary");
        let fs = d.tick(303.0, &[]);
        assert_eq!(kinds(&fs), ["heartbeat-race"]);
        assert_eq!((fs[0].kind, fs[0].severity), (FindingKind::HeartbeatRace, Severity::Warning));
        assert!(
            fs[0].message.contains("client pings every 58.0 s, at or just under the 60.0 s idle timeout you stated"),
            "{}",
            fs[0].message
        );
        assert_eq!(fs[0].detail["cut"], false);
    }

    /// Far under the boundary, or no boundary known: nothing.
    #[test]
    fn heartbeats_with_room_to_spare() {
        let mut d = One::new::<Heartbeat>(Config { timeouts: vec![60.0], ..Config::default() });
        let mut s = session(1, "/feed", 0.0, 300.0, clean());
        s.heartbeat = Some(pings(20.0, Peer::Server));
        d.session(&s, None, None);
        assert!(d.finish(400.0).is_empty());
    }
}
