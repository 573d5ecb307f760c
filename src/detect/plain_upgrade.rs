//! `connection-upgrade-on-plain`: a plain request (no upgrade) forwarded
//! with `Connection: upgrade` but no Upgrade header: a hard-coded header on
//! a location that also serves plain HTTP. It defeats upstream keep-alive
//! and confuses backends.

use serde_json::json;

use super::{Config, Context, Detector, Finding, FindingKind, Severity, finding};
use crate::facts::Fact;

pub struct PlainUpgrade;

impl Detector for PlainUpgrade {
    fn new(_: &Config) -> PlainUpgrade {
        PlainUpgrade
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::ConnectionUpgradeOnPlain]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        let Fact::Exchange(x) = fact else { return };
        if x.is_websocket() {
            return;
        }
        // A forwarded plain request with `Connection: upgrade` but no Upgrade.
        let Some(u) = x.upstream else { return };
        let client_upgrading = x.client.is_some_and(|c| c.req.headers.has("upgrade"));
        if client_upgrading || u.req.headers.has("upgrade") || !u.req.headers.has_token("connection", "upgrade") {
            return;
        }
        let msg = format!(
            "{} forwarded the plain request {} {} to {} with Connection: {} but no Upgrade: a hard-coded header on a location that also serves plain HTTP; it defeats upstream keep-alive and confuses backends",
            cx.here().name(),
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
            FindingKind::ConnectionUpgradeOnPlain,
            Severity::Warning,
            x.ts,
            [x.client, Some(u)].into_iter().flatten().map(|t| t.flow).collect(),
            Some(x.path),
            msg,
            cx.here(),
            None,
            d,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::PlainUpgrade;
    use crate::proto::Version;

    #[test]
    fn a_hard_coded_connection_upgrade_on_a_plain_request() {
        let c =
            hop(1, "198.51.100.7:51000->10.0.0.1:80", request("GET", "/api", Version::Http11, &[("Host", "a")]), 1.0)
                .answered(response(200, &[]), 1.1);
        let u = hop(
            2,
            "10.0.0.1:40000->10.0.0.2:3000",
            request("GET", "/api", Version::Http11, &[("Host", "a"), ("Connection", "upgrade")]),
            1.01,
        )
        .forwarded()
        .answered(response(200, &[]), 1.09);
        let fs = One::new::<PlainUpgrade>(Config::default()).exchange(&exchange(None, Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["connection-upgrade-on-plain"]);
        assert_eq!(fs[0].detail["connection"], "upgrade");
        assert!(fs[0].fix.as_deref().unwrap().contains("only when the request carries Upgrade"));
    }
}
