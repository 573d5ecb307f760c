//! `idle-timeout-imminent` (live capture): an open session idle for most
//! of the idle timeout stated, learned, or nginx's 60 s default: it will be
//! cut without a close frame unless data or a ping crosses soon. Warned
//! once per session.

use serde_json::json;

use super::boundary::Source;
use super::proxy::Proxy;
use super::{Config, Context, Detector, Finding, FindingKind, Severity, finding};
use crate::facts::SessionRow;
use crate::flow::key::FxHashSet;
use crate::time::{Ts, round3};

#[derive(Default)]
pub struct Imminent {
    warned: FxHashSet<u64>,
}

impl Detector for Imminent {
    fn new(_: &Config) -> Imminent {
        Imminent::default()
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::IdleTimeoutImminent]
    }

    /// Live: warn once about open sessions idle for most of a boundary.
    fn on_tick(&mut self, now: Ts, open: &[SessionRow], cx: &mut Context, out: &mut Vec<Finding>) {
        if !cx.live {
            return;
        }
        let (b, src) = match cx.boundaries.configured.iter().copied().reduce(f64::min) {
            Some(b) => (b, Source::Configured),
            None => match cx.boundaries.learned() {
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
                Proxy::UNKNOWN,
                Some(b),
                d,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::Imminent;

    /// Live: a session idle 50 s of nginx's default 60 is warned about, once.
    #[test]
    fn an_open_session_near_the_timeout_is_warned_about_once() {
        let mut d = One::new::<Imminent>(Config { live: true, ..Config::default() });
        let open = [open_row(1, "/ws", 0.0, 10.0), open_row(2, "/chat", 0.0, 50.0)];
        let fs = d.tick(60.0, &open);
        assert_eq!(kinds(&fs), ["idle-timeout-imminent"]);
        assert_eq!(fs[0].detail["session"], 1);
        assert_eq!(fs[0].fix, None, "a warning about the future");
        assert!(d.tick(61.0, &open).is_empty(), "once");
    }

    /// Offline there is no "soon".
    #[test]
    fn offline_nothing() {
        let mut d = One::new::<Imminent>(Config::default());
        assert!(d.tick(60.0, &[open_row(1, "/ws", 0.0, 10.0)]).is_empty());
    }
}
