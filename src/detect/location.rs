//! Whether an `upgrade-stripped` fault is a location-block mistake: the
//! other paths through the same front whose upgrades keep their headers
//! say so ("/ws falls into a location/route without them"). This detector
//! reports no kind of its own: it remembers the paths that went through
//! intact and annotates the `upgrade-stripped` fault the detectors before
//! it found (and tied). Offline, the fault waits [`HINT_WAIT_S`] (packet
//! time, bounded) for paths seen a little later; live, it goes at once.

use serde_json::json;

use super::context::MAX_REMEMBERED;
use super::{Config, Context, Detector, Finding, FindingKind};
use crate::facts::{Fact, SessionRow};
use crate::flow::Endpoint;
use crate::flow::key::{FxHashMap, FxHashSet};
use crate::time::Ts;

/// Offline, an upgrade-stripped fault waits this long (packet time) for
/// other paths through the same front before it is written.
pub const HINT_WAIT_S: f64 = 10.0;

pub struct Location {
    /// Paths whose upgrade headers survived, per front.
    intact_paths: FxHashMap<Endpoint, FxHashSet<String>>,
    /// Offline: faults wait for the end of [`HINT_WAIT_S`].
    hold: bool,
    /// Faults waiting (the lead finding first, then those tied to it), and
    /// their front.
    held: Vec<(Vec<Finding>, Endpoint)>,
}

impl Detector for Location {
    fn new(cfg: &Config) -> Location {
        Location { intact_paths: FxHashMap::default(), hold: !cfg.live, held: Vec::new() }
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, _cx: &mut Context, out: &mut Vec<Finding>) {
        let Fact::Exchange(x) = fact else { return };
        if !x.is_websocket() {
            return;
        }
        let Some(c) = x.client else { return };
        let front = c.flow.dst;
        if let Some(u) = x.upstream
            && c.upgrade().intact()
            && u.upgrade().intact()
        {
            if self.intact_paths.len() >= MAX_REMEMBERED && !self.intact_paths.contains_key(&front) {
                self.intact_paths.clear();
            }
            let paths = self.intact_paths.entry(front).or_default();
            if !paths.contains(x.path) {
                paths.insert(x.path.to_string());
            }
        }
        // The fault whose lead is (or is filed with) upgrade-stripped.
        let stripped = out.iter().position(|f| {
            f.primary && (f.kind == FindingKind::UpgradeStripped || f.also.contains(&FindingKind::UpgradeStripped))
        });
        let Some(i) = stripped else { return };
        let n = 1 + out[i + 1..].iter().take_while(|f| !f.primary).count();
        let mut group: Vec<Finding> = out.drain(i..i + n).collect();
        if self.hold {
            self.held.push((group, front));
        } else {
            self.annotate(&mut group[0], front);
            out.append(&mut group);
        }
    }

    fn on_tick(&mut self, now: Ts, _open: &[SessionRow], _cx: &mut Context, out: &mut Vec<Finding>) {
        self.release(now, false, out);
    }

    fn finish(&mut self, now: Ts, _cx: &mut Context, out: &mut Vec<Finding>) {
        self.release(now, true, out);
    }

    fn pending_since(&self) -> Option<Ts> {
        self.held.iter().map(|(g, _)| Ts::from_secs_f64(g[0].ts)).min()
    }
}

impl Location {
    /// Held faults whose wait is over (all at the end).
    fn release(&mut self, now: Ts, all: bool, out: &mut Vec<Finding>) {
        let held = std::mem::take(&mut self.held);
        for (mut group, front) in held {
            if all || now.since(Ts::from_secs_f64(group[0].ts)) >= HINT_WAIT_S {
                self.annotate(&mut group[0], front);
                out.append(&mut group);
            } else {
                self.held.push((group, front));
            }
        }
    }

    /// Names the paths through the same front that keep their headers.
    fn annotate(&self, f: &mut Finding, front: Endpoint) {
        let path = f.path.clone().unwrap_or_default();
        let mut others: Vec<String> = self
            .intact_paths
            .get(&front)
            .map(|s| s.iter().filter(|p| **p != path).cloned().collect())
            .unwrap_or_default();
        others.sort();
        if !others.is_empty() {
            f.message += &format!(
                " (upgrades to {} through the same proxy keep their headers: {path} falls into a location/route without them)",
                others.join(", ")
            );
        }
        f.detail["paths_with_headers_intact"] = json!(others);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Config, Detectors, handshake::Handshake};
    use super::Location;
    use crate::proto::Version;

    fn run(live: bool) -> One {
        let cfg = Config { live, ..Config::default() };
        One(Detectors {
            list: vec![
                Box::new(<Handshake as super::Detector>::new(&cfg)),
                Box::new(<Location as super::Detector>::new(&cfg)),
            ],
            cx: super::Context::new(&cfg),
        })
    }

    fn pair(id: u64, path: &str, stripped: bool, at: f64) -> (crate::facts::HopRequest, crate::facts::HopRequest) {
        let c = hop(id, "198.51.100.7:51000->10.0.0.1:80", request("GET", path, Version::Http11, UPGRADE), at)
            .answered(response(if stripped { 400 } else { 101 }, &[]), at + 0.1);
        let up: &[(&str, &str)] = if stripped { &[("Host", "app.example")] } else { UPGRADE };
        let u = hop(id + 1, "10.0.0.1:40000->10.0.0.2:3000", request("GET", path, Version::Http11, up), at + 0.01)
            .forwarded()
            .answered(response(if stripped { 400 } else { 101 }, &[]), at + 0.09);
        (c, u)
    }

    /// Offline, the fault waits 10 s for other paths through the same front:
    /// /chat kept its headers, so /ws falls into a location without them.
    #[test]
    fn a_stripped_path_beside_an_intact_one_is_a_location_mistake() {
        let mut d = run(false);
        let (c, u) = pair(1, "/ws", true, 1.0);
        assert!(d.exchange(&exchange(Some(1), Some(&c), Some(&u))).is_empty(), "held");
        let (c, u) = pair(3, "/chat", false, 3.0);
        assert!(d.exchange(&exchange(Some(2), Some(&c), Some(&u))).is_empty());
        assert!(d.tick(5.0, &[]).is_empty(), "still waiting");
        assert_eq!(d.0.pending_since(), Some(t(1.0)), "its stamp holds the output back");
        let fs = d.tick(11.0, &[]);
        assert_eq!(kinds(&fs), ["upgrade-stripped"]);
        assert!(fs[0].message.ends_with("(upgrades to /chat through the same proxy keep their headers: /ws falls into a location/route without them)"), "{}", fs[0].message);
        assert_eq!(fs[0].detail["paths_with_headers_intact"], serde_json::json!(["/chat"]));
    }

    /// Live, the fault is reported at once, with what is known by then.
    #[test]
    fn live_it_goes_at_once() {
        let mut d = run(true);
        let (c, u) = pair(1, "/ws", true, 1.0);
        let fs = d.exchange(&exchange(Some(1), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["upgrade-stripped"]);
        assert_eq!(fs[0].detail["paths_with_headers_intact"], serde_json::json!([]));
    }
}
