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
