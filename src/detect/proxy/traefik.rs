//! Traefik: named by `Via` when set, else by the headers it adds to what
//! it forwards: X-Forwarded-Server (its host name) with X-Real-Ip and
//! X-Forwarded-Port (Apache's mod_proxy adds X-Forwarded-Server too, but
//! neither of the others).

use super::{FixContext, Product, Signature, generic};
use crate::proto::Request;
use crate::record::FindingKind;

pub struct Traefik;

impl Product for Traefik {
    fn name(&self) -> &'static str {
        "traefik"
    }

    fn named_in(&self, l: &str) -> bool {
        l.contains("traefik")
    }

    fn forwarded_signature(&self, q: &Request) -> Option<Signature> {
        let h = &q.headers;
        (h.has("x-forwarded-server") && h.has("x-real-ip") && h.has("x-forwarded-port")).then(|| Signature {
            why: "X-Forwarded-Server with X-Real-Ip and X-Forwarded-Port on the forwarded request (traefik adds them)"
                .into(),
            unique: true,
        })
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        Some(match kind {
            K::UpgradeStripped => "traefik forwards WebSocket upgrades by itself: remove the headers middleware (customRequestHeaders) that sets or empties Connection or Upgrade on this router".into(),
            K::IdleTimeoutClose | K::HeartbeatRace => cx.raise_or_heartbeat(format_args!("raise the entryPoint's transport.respondingTimeouts (readTimeout / idleTimeout) to {}s", cx.keep())),
            generic_fix![UpstreamHttp10, UpstreamConnectFailed, UpstreamTimeout, UpgradeFailed, ConnectionUpgradeOnPlain, SocketioNoUpgrade, ForwardedProtoMissing, MassClose, ProxyProtocolViolation, FalseUpgradeSuccess, H2WebsocketNotOffered] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, forwarded, req};
    use super::super::{Proxy, fix};
    use crate::record::FindingKind;

    /// From its documentation of the headers it adds upstream.
    #[test]
    fn named_by_what_it_adds_or_its_via() {
        let q = req(&[
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Host", "example.com"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Server", "traefik-65bccdc4bd-tkbmn"),
            ("X-Real-Ip", "10.0.0.1"),
        ]);
        assert_eq!(forwarded(&q), Some("traefik"));
        assert_eq!(forwarded(&req(&[("Via", "1.1 traefik")])), Some("traefik"));
    }

    #[test]
    fn fixes_name_the_settings() {
        let p = Proxy::named("traefik").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::UpgradeStripped).contains("customRequestHeaders"));
        assert!(f(FindingKind::IdleTimeoutClose).contains("respondingTimeouts"));
    }
}
