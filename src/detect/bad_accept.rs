//! `bad-accept`: a hop that got a 101 with a Sec-WebSocket-Accept other
//! than the one RFC 6455 4.2.2 derives from its key (the client rejects the
//! handshake); which hop got it first says who computed it wrongly.

use super::evidence::expected_accept;
use super::{Config, Context, Detector, Finding, FindingKind, Severity, about, evidence};
use crate::facts::{Fact, HopRequest};
use serde_json::json;

pub struct BadAccept;

/// For an upgraded hop whose Sec-WebSocket-Accept is not the one its key
/// gives: (expected, received). `memo`: the last key and its accept.
fn wrong<'a>(t: &'a HopRequest, memo: &mut Option<(&'a str, String)>) -> Option<(String, Option<String>)> {
    if !t.upgraded() {
        return None;
    }
    let key = t.req.headers.get("sec-websocket-key")?;
    let want = match memo {
        Some((k, w)) if *k == key => w.clone(),
        _ => memo.insert((key, expected_accept(key))).1.clone(),
    };
    let got = t.resp.as_ref().and_then(|r| r.headers.get("sec-websocket-accept")).map(str::to_string);
    (got.as_deref() != Some(want.as_str())).then_some((want, got))
}

impl Detector for BadAccept {
    fn new(_: &Config) -> BadAccept {
        BadAccept
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::BadAccept]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        let Fact::Exchange(x) = fact else { return };
        if !x.is_websocket() {
            return;
        }
        // A proxy passes the key through: one SHA-1 for both hops.
        let mut memo = None;
        let bad_up = x.upstream.and_then(|u| wrong(u, &mut memo).map(|w| (u, w)));
        let bad_client = x.client.and_then(|c| wrong(c, &mut memo).map(|w| (c, w)));
        let (t, (want, got), msg) = match (bad_up, bad_client) {
            (Some((u, w)), _) => {
                let m = format!(
                    "the server at {} answered the upgrade for {} with a wrong Sec-WebSocket-Accept ({}, expected {}){}; the client rejects the handshake",
                    u.flow.dst,
                    x.path,
                    w.1.as_deref().unwrap_or("none"),
                    w.0,
                    if x.client.is_some() { " and the proxy relayed it" } else { "" }
                );
                (u, w, m)
            }
            (None, Some((c, w))) => {
                let m = if x.upstream.is_some() {
                    format!(
                        "the backend's Sec-WebSocket-Accept was right but the client received a wrong one ({}, expected {}): the proxy rewrote the key or the accept",
                        w.1.as_deref().unwrap_or("none"),
                        w.0
                    )
                } else {
                    format!(
                        "the server at {} answered the upgrade for {} with a wrong Sec-WebSocket-Accept ({}, expected {}); the client rejects the handshake",
                        c.flow.dst,
                        x.path,
                        w.1.as_deref().unwrap_or("none"),
                        w.0
                    )
                };
                (c, w, m)
            }
            (None, None) => return,
        };
        let mut d = evidence::exchange(x, cx.redact);
        d["expected"] = json!(want);
        d["received"] = json!(got);
        d["hop"] = json!(t.flow);
        out.push(about(
            x,
            cx,
            FindingKind::BadAccept,
            Severity::Error,
            [x.client, x.upstream].into_iter().flatten().map(|t| t.flow).collect(),
            msg,
            d,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::BadAccept;
    use crate::proto::Version;

    /// RFC 6455's example key, answered with the accept of another key.
    #[test]
    fn a_wrong_accept_is_blamed_on_the_hop_that_made_it() {
        let right = [("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")];
        let wrong = [("Sec-WebSocket-Accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=")];
        let c = hop(1, "198.51.100.7:51000->10.0.0.1:80", request("GET", "/ws", Version::Http11, UPGRADE), 1.0)
            .answered(response(101, &wrong), 1.1);
        let u = hop(2, "10.0.0.1:40000->10.0.0.2:3000", request("GET", "/ws", Version::Http11, UPGRADE), 1.01)
            .answered(response(101, &right), 1.09);
        let mut d = One::new::<BadAccept>(Config::default());
        let fs = d.exchange(&exchange(Some(1), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["bad-accept"]);
        assert!(fs[0].message.contains("the proxy rewrote the key or the accept"), "{}", fs[0].message);
        assert_eq!(fs[0].detail["expected"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let c = c.answered(response(101, &right), 1.1);
        assert!(d.exchange(&exchange(Some(2), Some(&c), Some(&u))).is_empty());
    }
}
