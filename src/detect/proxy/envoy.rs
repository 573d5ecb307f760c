//! Envoy (and Istio's sidecars): named by `Server: envoy`, by
//! `x-envoy-upstream-service-time` on its responses, and by the
//! `x-envoy-*` headers its router adds to what it forwards.

use super::{FixContext, Product, Signature, generic};
use crate::proto::{Request, Response};
use crate::record::FindingKind;

pub struct Envoy;

impl Product for Envoy {
    fn name(&self) -> &'static str {
        "envoy"
    }

    fn named_in(&self, l: &str) -> bool {
        l.contains("envoy") || l.contains("istio")
    }

    fn response_signature(&self, r: &Response) -> Option<String> {
        r.headers
            .has("x-envoy-upstream-service-time")
            .then(|| "x-envoy-upstream-service-time on the response to the client".into())
    }

    fn forwarded_signature(&self, q: &Request) -> Option<Signature> {
        ["x-envoy-expected-rq-timeout-ms", "x-envoy-internal", "x-envoy-attempt-count", "x-envoy-original-path"]
            .into_iter()
            .find(|name| q.headers.has(name))
            .map(|name| Signature {
                why: format!("{name} on the forwarded request (envoy's router adds it)"),
                unique: true,
            })
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        Some(match kind {
            K::UpgradeStripped => "enable upgrades on the HttpConnectionManager (or the route):\n    upgrade_configs:\n    - upgrade_type: websocket".into(),
            K::IdleTimeoutClose | K::HeartbeatRace => cx.raise_or_heartbeat(format_args!("raise the route's idle_timeout / the HttpConnectionManager's stream_idle_timeout to {}s", cx.keep())),
            generic_fix![UpstreamHttp10, UpstreamConnectFailed, UpstreamTimeout, UpgradeFailed, ConnectionUpgradeOnPlain, SocketioNoUpgrade, ForwardedProtoMissing, MassClose, ProxyProtocolViolation, FalseUpgradeSuccess, H2WebsocketNotOffered] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, forwarded, named, req, resp};
    use super::super::{Proxy, fix};
    use crate::record::FindingKind;

    #[test]
    fn named_by_its_server_header_and_its_router_headers() {
        assert_eq!(named(None, Some(&resp(&[("server", "envoy")])), None), Some("envoy"));
        assert_eq!(named(None, Some(&resp(&[("x-envoy-upstream-service-time", "3")])), None), Some("envoy"));
        let q =
            req(&[("x-forwarded-proto", "https"), ("x-request-id", "1"), ("x-envoy-expected-rq-timeout-ms", "15000")]);
        assert_eq!(forwarded(&q), Some("envoy"));
        assert_eq!(forwarded(&req(&[("x-envoy-internal", "true")])), Some("envoy"));
    }

    #[test]
    fn fixes_name_the_settings() {
        let p = Proxy::named("envoy").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::UpgradeStripped).contains("upgrade_type: websocket"));
        assert!(f(FindingKind::IdleTimeoutClose).contains("idle_timeout"));
    }
}
