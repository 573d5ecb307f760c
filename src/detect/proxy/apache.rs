//! Apache httpd (mod_proxy, mod_proxy_wstunnel): named by its `Server`
//! header; its mod_proxy adds X-Forwarded-Server to what it forwards (as
//! traefik does, whose other headers tell them apart).

use super::{FixContext, Product, Signature, generic};
use crate::proto::Request;
use crate::record::FindingKind;

pub struct Apache;

impl Product for Apache {
    fn name(&self) -> &'static str {
        "apache"
    }

    fn named_in(&self, l: &str) -> bool {
        !l.contains("lighttpd") && (l.contains("apache") || l.contains("httpd"))
    }

    fn forwarded_signature(&self, q: &Request) -> Option<Signature> {
        q.headers.has("x-forwarded-server").then(|| Signature {
            why: "X-Forwarded-Server on the forwarded request (Apache mod_proxy adds it)".into(),
            unique: false,
        })
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        let path = cx.path;
        let keep = cx.keep();
        Some(match kind {
            K::UpgradeStripped => format!(
                "load mod_proxy_wstunnel and proxy the path as a WebSocket:\n    ProxyPass \"{path}\" \"ws://BACKEND{path}\"\nor, with Apache 2.4.47+:\n    ProxyPass \"{path}\" \"http://BACKEND{path}\" upgrade=websocket"
            ),
            K::UpstreamHttp10 => "remove 'SetEnv force-proxy-request-1.0' / 'proxy-nokeepalive' for this path: WebSocket needs HTTP/1.1 upstream".into(),
            K::ForwardedProtoMissing => "RequestHeader set X-Forwarded-Proto \"https\" (in the TLS virtual host)".into(),
            K::IdleTimeoutClose | K::HeartbeatRace => cx.raise_or_heartbeat(format_args!("ProxyTimeout {keep}   (or timeout={keep} on the ProxyPass)")),
            generic_fix![UpstreamConnectFailed, UpstreamTimeout, UpgradeFailed, ConnectionUpgradeOnPlain, SocketioNoUpgrade, MassClose, ProxyProtocolViolation, FalseUpgradeSuccess, H2WebsocketNotOffered] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, forwarded, named, req, resp};
    use super::super::{Proxy, fix};
    use crate::record::FindingKind;

    #[test]
    fn named_by_its_server_header_and_what_it_adds() {
        assert_eq!(named(None, Some(&resp(&[("Server", "Apache/2.4.57 (Debian)")])), None), Some("apache"));
        let q = req(&[("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Host", "a"), ("X-Forwarded-Server", "a")]);
        assert_eq!(forwarded(&q), Some("apache"));
    }

    #[test]
    fn fixes_name_the_directives() {
        let p = Proxy::named("apache").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::UpgradeStripped).contains("ProxyPass \"/ws\" \"ws://BACKEND/ws\""));
        assert!(f(FindingKind::UpstreamHttp10).contains("force-proxy-request-1.0"));
        assert!(f(FindingKind::IdleTimeoutClose).contains("ProxyTimeout 3600"));
    }
}
