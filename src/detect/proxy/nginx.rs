//! nginx (and OpenResty, Tengine): named by its `Server` header; adds
//! nothing of its own to what it forwards. Its defaults are behind most
//! WebSocket faults: `proxy_pass` alone forwards over HTTP/1.0 without the
//! upgrade headers, and `proxy_read_timeout` cuts idle sessions at 60 s.

use super::{FixContext, Product, generic};
use crate::record::FindingKind;

pub struct Nginx;

impl Product for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn named_in(&self, l: &str) -> bool {
        l.contains("nginx") || l.contains("openresty") || l.contains("tengine")
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        let path = cx.path;
        let (keep, hb) = (cx.keep(), cx.heartbeat());
        Some(match kind {
            K::UpgradeStripped | K::UpstreamHttp10 => format!(
                "in the location that serves {path}:\n    proxy_http_version 1.1;\n    proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection $connection_upgrade;\nand once in http {{}}:\n    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}"
            ),
            K::H2WebsocketNotOffered => "nginx does not offer WebSockets over HTTP/2 (RFC 8441): browsers open a separate HTTP/1.1 connection for each WebSocket; put a front that supports it (haproxy, envoy) if the extra connections matter".into(),
            K::ConnectionUpgradeOnPlain => "do not hard-code the header; derive it from the request:\n    map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n    proxy_set_header Connection $connection_upgrade;\n(with upstream keepalive, map '' to \"\" instead of close)".into(),
            K::ForwardedProtoMissing => "proxy_set_header X-Forwarded-Proto $scheme;".into(),
            K::UpstreamConnectFailed => "the backend is not listening where nginx connects: start it, or fix the address in proxy_pass / the upstream block".into(),
            K::UpstreamTimeout => "the backend accepted the connection but never answered the upgrade: fix the backend (is the WebSocket route served, is the worker blocked?); nginx gives up after proxy_read_timeout".into(),
            K::UpgradeFailed => match cx.access_refused() {
                Some(s) => format!("a rule of the location that serves {path} refused it with {s} (deny/allow, auth_basic, auth_request, valid_referers, limit_except, return {s}): allow the WebSocket clients there"),
                None => format!("no location that proxies {path} matched: add one (location {path} {{ proxy_pass ...; }}) with the upgrade headers"),
            },
            K::IdleTimeoutClose | K::HeartbeatRace => format!(
                "raise the timeout in the location: proxy_read_timeout {keep}s; proxy_send_timeout {keep}s;\nor send heartbeats (WebSocket pings or messages) every {hb} s or less"
            ),
            K::MassClose => "nginx reloads close upgraded connections when old workers exit: raise worker_shutdown_timeout, reload less often, and make clients reconnect with backoff".into(),
            K::SocketioNoUpgrade => "Socket.IO stays on long-polling when the upgrade to websocket fails: give the /socket.io/ location the upgrade headers (proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)".into(),
            generic_fix![ProxyProtocolViolation, FalseUpgradeSuccess] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, named, resp};
    use super::super::{Proxy, fix};
    use crate::record::FindingKind;

    #[test]
    fn named_by_its_server_header() {
        assert_eq!(named(None, Some(&resp(&[("Server", "nginx/1.22.1")])), None), Some("nginx"));
        assert_eq!(named(None, Some(&resp(&[("Server", "openresty/1.21.4.1")])), None), Some("nginx"));
    }

    #[test]
    fn fixes_name_the_directives() {
        let p = Proxy::named("nginx").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::UpgradeStripped).contains("proxy_set_header Connection $connection_upgrade"));
        assert!(f(FindingKind::UpgradeStripped).contains("in the location that serves /ws"));
        assert_eq!(f(FindingKind::UpstreamHttp10), f(FindingKind::UpgradeStripped), "one fault, one fix");
        assert!(f(FindingKind::IdleTimeoutClose).contains("proxy_read_timeout 3600s"));
        assert!(f(FindingKind::IdleTimeoutClose).contains("every 30 s or less"));
        assert!(f(FindingKind::UpgradeFailed).contains("location /ws { proxy_pass ...; }"));
        assert!(f(FindingKind::MassClose).contains("worker_shutdown_timeout"));
    }
}
