//! Detectors: policy over facts. Each detector is one file and one
//! [`Detector`]: it gets the facts correlation completes ([`Fact`]), the
//! passage of packet time and the end of input, and reports findings
//! ([`Finding`], whose [`FindingKind`] is a closed enum). Detectors never see
//! bytes, correlation's state or formatted text; what they share is the
//! [`Context`]: the proxy recognised on a path, handshakes already found
//! faulty, the idle timeouts stated and learned, the redaction policy.
//!
//! Each fact reaches the detectors in the order of [`standard`]; a
//! detector sees what the ones before it found about the same fact (`out`)
//! and may file those under one fault with its own ([`Finding::tie`]) or
//! hold them back for more facts (the location hint holds an
//! `upgrade-stripped` fault until the other paths through the same front
//! are known).
//!
//! A new detector is one new file here, its `mod` line, and one line in
//! [`standard`].

use serde_json::Value;

use crate::facts::{Exchange, Fact, SessionRow};
use crate::flow::FlowKey;
pub use crate::record::{Finding, FindingKind, Severity};
use crate::redact::Redactor;
use crate::time::{Ts, round_us};

pub mod boundary;
pub mod context;
pub mod evidence;
pub mod proxy;

mod bad_accept;
mod closes;
mod false_success;
mod forwarded_proto;
mod h2_not_offered;
mod handshake;
mod heartbeat;
mod imminent;
mod location;
mod plain_upgrade;
mod protocol;
mod socketio;
#[cfg(test)]
mod testing;

pub use context::Context;
use proxy::Proxy;

/// What the detectors are built from (the command line's share).
#[derive(Debug, Clone)]
pub struct Config {
    /// Secrets masked in what findings quote.
    pub redact: Redactor,
    /// `--proxy`: the proxy in front, when it cannot be recognised.
    pub proxy: Option<Proxy>,
    /// `--timeout`: idle timeouts the user expects, seconds.
    pub timeouts: Vec<f64>,
    /// Live capture: warn about open sessions nearing a timeout; report
    /// `upgrade-stripped` faults at once.
    pub live: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config { redact: Redactor { enabled: true }, proxy: None, timeouts: Vec::new(), live: false }
    }
}

/// Every detector, in the order each fact reaches them.
pub fn standard(cfg: Config) -> Detectors {
    let list: Vec<Box<dyn Detector>> = vec![
        // WebSocket upgrades through the proxy, hop by hop.
        Box::new(handshake::Handshake::new(&cfg)),
        Box::new(forwarded_proto::ForwardedProto::new(&cfg)),
        Box::new(bad_accept::BadAccept::new(&cfg)),
        Box::new(h2_not_offered::H2NotOffered::new(&cfg)),
        // Ties the usual findings about an HTTP/2 upgrade under it: after them.
        Box::new(false_success::FalseSuccess::new(&cfg)),
        // Holds `upgrade-stripped` faults: after every detector that may tie them.
        Box::new(location::Location::new(&cfg)),
        // Plain HTTP through the proxy.
        Box::new(plain_upgrade::PlainUpgrade::new(&cfg)),
        // How sessions end.
        Box::new(heartbeat::Heartbeat::new(&cfg)),
        Box::new(closes::Closes::new(&cfg)),
        Box::new(imminent::Imminent::new(&cfg)),
        Box::new(protocol::ProtocolViolation::new(&cfg)),
        // Socket.IO sessions that never leave long-polling.
        Box::new(socketio::SocketIo::new(&cfg)),
    ];
    Detectors { list, cx: Context::new(&cfg) }
}

/// A detector: one family of findings. `Send`, so a pipeline can run on a
/// worker thread (the dashboard).
pub trait Detector: Send {
    /// Built from the run's configuration.
    fn new(cfg: &Config) -> Self
    where
        Self: Sized;
    /// The kinds it reports.
    fn kinds(&self) -> &'static [FindingKind];
    /// A fact correlation completed. `out` holds what the detectors before
    /// this one found about the same fact.
    fn on_fact(&mut self, _fact: &Fact<'_>, _cx: &mut Context, _out: &mut Vec<Finding>) {}
    /// Packet time advanced (at most once per second of capture time).
    /// `open` lists open sessions in live capture, else is empty.
    fn on_tick(&mut self, _now: Ts, _open: &[SessionRow], _cx: &mut Context, _out: &mut Vec<Finding>) {}
    /// End of input: report what needs the whole capture.
    fn finish(&mut self, _now: Ts, _cx: &mut Context, _out: &mut Vec<Finding>) {}
    /// The earliest time stamp a finding this detector has not decided yet
    /// may carry (output is written in time order: records stamped later
    /// wait for it). Every pending decision is taken within
    /// [`DECIDE_WITHIN_S`] of its stamp.
    fn pending_since(&self) -> Option<Ts> {
        None
    }
    /// What its bounds gave up, added to `b`.
    fn gave_up(&self, _b: &mut GaveUp) {}
}

/// What detectors' bounds gave up (the summary's `memory`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp {
    /// Abnormal closes judged before their time (4096 were waiting).
    pub closes_judged_early: u64,
    /// Socket.IO sessions forgotten before they were judged.
    pub socketio_sessions_forgotten: u64,
}

/// A finding waits at most this long (packet time) after the time it is
/// stamped with before it is decided and written.
pub const DECIDE_WITHIN_S: f64 = 60.0;

/// Every detector, in a fixed order, and what they share.
pub struct Detectors {
    list: Vec<Box<dyn Detector>>,
    cx: Context,
}

impl Default for Detectors {
    /// No detector at all (correlation alone).
    fn default() -> Detectors {
        Detectors { list: Vec::new(), cx: Context::new(&Config::default()) }
    }
}

impl Detectors {
    /// A fact correlation completed, to every detector; what they found
    /// goes to `out`. An exchange's proxy is recognised first, and every
    /// finding about it records what showed a proxy there; a handshake
    /// with an error finding is remembered (its session's end is a
    /// consequence, not a new fault).
    pub fn on_fact(&mut self, f: &Fact<'_>, out: &mut Vec<Finding>) {
        let mut found = Vec::new();
        match f {
            Fact::Exchange(x) => {
                self.cx.recognise(x);
                for d in &mut self.list {
                    d.on_fact(f, &mut self.cx, &mut found);
                    self.cx.about_exchange(x, &mut found);
                }
            }
            _ => {
                for d in &mut self.list {
                    d.on_fact(f, &mut self.cx, &mut found);
                }
                self.cx.fill_evidence(&mut found);
            }
        }
        out.append(&mut found);
    }

    pub fn on_tick(&mut self, now: Ts, open: &[SessionRow], out: &mut Vec<Finding>) {
        let before = out.len();
        for d in &mut self.list {
            d.on_tick(now, open, &mut self.cx, out);
        }
        self.cx.fill_evidence(&mut out[before..]);
    }

    pub fn finish(&mut self, now: Ts, out: &mut Vec<Finding>) {
        let before = out.len();
        for d in &mut self.list {
            d.finish(now, &mut self.cx, out);
        }
        self.cx.fill_evidence(&mut out[before..]);
    }

    pub fn pending_since(&self) -> Option<Ts> {
        self.list.iter().filter_map(|d| d.pending_since()).min()
    }

    pub fn gave_up(&self) -> GaveUp {
        let mut b = GaveUp::default();
        for d in &self.list {
            d.gave_up(&mut b);
        }
        b
    }

    /// The idle timeout learned from the capture, if any.
    pub fn learned_boundary(&self) -> Option<f64> {
        self.cx.boundaries.learned()
    }

    /// The kinds each detector reports.
    pub fn kinds(&self) -> impl Iterator<Item = FindingKind> + '_ {
        self.list.iter().flat_map(|d| d.kinds().iter().copied())
    }
}

/// Builds a finding; the fix is the one written for the proxy that is
/// there, and `detail.proxy` names it.
#[allow(clippy::too_many_arguments)]
pub fn finding(
    kind: FindingKind,
    severity: Severity,
    ts: Ts,
    flows: Vec<FlowKey>,
    path: Option<&str>,
    message: String,
    proxy: Proxy,
    boundary_s: Option<f64>,
    detail: Value,
) -> Finding {
    let fx = proxy::FixContext { path: path.unwrap_or("/"), boundary_s, status: None };
    finding_with(kind, severity, ts, flows, path, message, proxy, &fx, detail)
}

/// [`finding`] with the fix written for `fx`.
#[allow(clippy::too_many_arguments)]
fn finding_with(
    kind: FindingKind,
    severity: Severity,
    ts: Ts,
    flows: Vec<FlowKey>,
    path: Option<&str>,
    message: String,
    proxy: Proxy,
    fx: &proxy::FixContext,
    detail: Value,
) -> Finding {
    let fix = proxy::fix(kind, proxy, fx);
    let mut detail = detail;
    if let Value::Object(m) = &mut detail {
        m.insert("proxy".into(), Value::from(proxy.is_known().then(|| proxy.name())));
    }
    Finding {
        ty: "finding",
        kind,
        severity,
        ts: round_us(ts.secs()),
        flows,
        path: path.map(str::to_string),
        message,
        fix,
        detail,
        fault: 0,
        primary: true,
        also: Vec::new(),
    }
}

/// A finding about an exchange (its time and path), through the proxy
/// recognised on its path.
pub fn about(
    x: &Exchange<'_>,
    cx: &Context,
    kind: FindingKind,
    severity: Severity,
    flows: Vec<FlowKey>,
    message: String,
    detail: Value,
) -> Finding {
    let status = x.client.and_then(|c| c.status());
    let fx = proxy::FixContext { path: x.path, boundary_s: None, status };
    finding_with(kind, severity, x.ts, flows, Some(x.path), message, cx.here(), &fx, detail)
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::proto::Version;
    use crate::record::{CloseHow, Closer};

    /// Every kind is some detector's.
    #[test]
    fn every_kind_has_a_detector() {
        let d = standard(Config::default());
        let mut have: Vec<FindingKind> = d.kinds().collect();
        have.sort();
        have.dedup();
        let mut all = FindingKind::ALL.to_vec();
        all.sort();
        assert_eq!(have, all);
    }

    /// An upgrade that failed through the proxy: its session's end, cut
    /// without a close frame, is a consequence, not a second finding.
    #[test]
    fn a_faulty_handshakes_session_end_is_not_a_new_finding() {
        let mut d = One(standard(Config::default()));
        let c = hop(1, "198.51.100.7:50001->10.0.0.1:80", request("GET", "/ws", Version::Http11, UPGRADE), 1.0)
            .answered(response(101, &[("Sec-WebSocket-Accept", "wrong")]), 1.1);
        let fs = d.exchange(&exchange(Some(1), Some(&c), None));
        assert_eq!(kinds(&fs), ["bad-accept"]);
        let s = session(1, "/ws", 1.1, 2.0, cut(Closer::Client, CloseHow::Rst, 0.5));
        let a = activity(1.1, Some(1.5), 2.0, "rst");
        assert!(d.session(&s, Some(&a), None).is_empty());
        assert!(d.finish(100.0).is_empty(), "handshake 1 had its error");
    }

    /// What showed a proxy is there goes into every finding: for an
    /// exchange, its hops; for a session's end, its two hops and what named
    /// the proxy at its front.
    #[test]
    fn findings_say_what_showed_a_proxy() {
        let mut d = One(standard(Config::default()));
        let c = hop(1, "198.51.100.7:50001->10.0.0.1:80", request("GET", "/ws", Version::Http11, UPGRADE), 1.0)
            .answered(response(101, &[("Server", "nginx/1.22.1"), ACCEPT]), 1.1);
        let u = hop(2, "10.0.0.1:40001->10.0.0.2:3000", request("GET", "/ws", Version::Http11, UPGRADE), 1.01)
            .forwarded()
            .answered(response(101, &[ACCEPT]), 1.09);
        assert!(d.exchange(&exchange(Some(1), Some(&c), Some(&u))).is_empty(), "a healthy upgrade");
        let mut s = session(1, "/ws", 1.1, 100.0, cut(Closer::Proxy, CloseHow::Fin, 60.0));
        proxy_closed_both(&mut s, 100.0, CloseHow::Fin);
        let a = activity(1.1, Some(40.0), 100.0, "fin");
        d.session(&s, Some(&a), Some(&a));
        let fs = d.finish(200.0);
        assert_eq!(kinds(&fs), ["idle-timeout-close"]);
        assert_eq!(
            fs[0].detail["proxy_evidence"],
            serde_json::json!(["two hops of one session paired", "server: nginx/1.22.1 on the response to the client"])
        );
        assert_eq!(fs[0].detail["proxy"], "nginx");
        assert!(fs[0].fix.as_deref().unwrap().contains("proxy_read_timeout"));
    }
}
