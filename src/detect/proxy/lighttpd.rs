//! lighttpd (mod_proxy): named by its `Server` header; its mod_proxy adds
//! X-Host (beside X-Forwarded-Host) to what it forwards.

use super::{FixContext, Product, Signature, generic};
use crate::proto::Request;
use crate::record::FindingKind;

pub struct Lighttpd;

impl Product for Lighttpd {
    fn name(&self) -> &'static str {
        "lighttpd"
    }

    fn named_in(&self, l: &str) -> bool {
        l.contains("lighttpd")
    }

    fn forwarded_signature(&self, q: &Request) -> Option<Signature> {
        q.headers.has("x-host").then(|| Signature {
            why: "X-Host on the forwarded request (lighttpd mod_proxy adds it)".into(),
            unique: false,
        })
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        Some(match kind {
            K::UpgradeStripped | K::UpstreamHttp10 => "enable upgrades in mod_proxy for this path (lighttpd 1.4.46+):\n    proxy.header = ( \"upgrade\" => \"enable\" )\n(in the same scope as its proxy.server)".into(),
            K::IdleTimeoutClose | K::HeartbeatRace => cx.raise_or_heartbeat(format_args!("raise server.max-read-idle and server.max-write-idle to {} (seconds; 60 and 360 by default)", cx.keep())),
            generic_fix![UpstreamConnectFailed, UpstreamTimeout, UpgradeFailed, ConnectionUpgradeOnPlain, SocketioNoUpgrade, ForwardedProtoMissing, MassClose, ProxyProtocolViolation, FalseUpgradeSuccess, H2WebsocketNotOffered] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, forwarded, named, req, resp};
    use super::super::{Proxy, fix};
    use crate::record::FindingKind;

    /// Its name holds "httpd": it is not taken for Apache.
    #[test]
    fn named_by_its_server_header_and_what_it_adds() {
        assert_eq!(named(None, Some(&resp(&[("Server", "lighttpd/1.4.69")])), None), Some("lighttpd"));
        let q = req(&[("X-Forwarded-For", "10.0.0.1"), ("X-Host", "example.com"), ("X-Forwarded-Proto", "http")]);
        assert_eq!(forwarded(&q), Some("lighttpd"));
    }

    #[test]
    fn fixes_name_the_settings() {
        let p = Proxy::named("lighttpd").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::UpgradeStripped).contains("proxy.header = ( \"upgrade\" => \"enable\" )"));
        assert!(f(FindingKind::IdleTimeoutClose).contains("server.max-read-idle"));
    }
}
