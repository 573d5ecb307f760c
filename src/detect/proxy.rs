//! Which proxy is in the path, recognised from what it sends (`Server` on
//! its own responses, `Via`, the headers it adds upstream), and the fix for
//! each finding kind written for that proxy.

use crate::cli::ProxyKind;
use crate::proto::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proxy {
    Nginx,
    Haproxy,
    Apache,
    Envoy,
    Caddy,
    Unknown,
}

impl Proxy {
    pub fn name(self) -> &'static str {
        match self {
            Proxy::Nginx => "nginx",
            Proxy::Haproxy => "haproxy",
            Proxy::Apache => "apache",
            Proxy::Envoy => "envoy",
            Proxy::Caddy => "caddy",
            Proxy::Unknown => "the proxy",
        }
    }

    pub fn from_kind(k: ProxyKind) -> Proxy {
        match k {
            ProxyKind::Nginx => Proxy::Nginx,
            ProxyKind::Haproxy => Proxy::Haproxy,
            ProxyKind::Apache => Proxy::Apache,
            ProxyKind::Envoy => Proxy::Envoy,
            ProxyKind::Caddy => Proxy::Caddy,
        }
    }

    fn from_product(s: &str) -> Option<Proxy> {
        let l = s.to_ascii_lowercase();
        if l.contains("nginx") || l.contains("openresty") || l.contains("tengine") {
            Some(Proxy::Nginx)
        } else if l.contains("haproxy") {
            Some(Proxy::Haproxy)
        } else if l.contains("apache") || l.contains("httpd") {
            Some(Proxy::Apache)
        } else if l.contains("envoy") || l.contains("istio") {
            Some(Proxy::Envoy)
        } else if l.contains("caddy") {
            Some(Proxy::Caddy)
        } else {
            None
        }
    }
}

/// Recognises the proxy from the client hop's response (its own `Server`,
/// `Via`) and the forwarded request (headers each proxy adds).
pub fn recognise(
    client_req: Option<&Request>,
    client_resp: Option<&Response>,
    forwarded: Option<&Request>,
) -> Option<Proxy> {
    if let Some(r) = client_resp {
        for name in ["server", "via"] {
            if let Some(p) = r.headers.get(name).and_then(Proxy::from_product) {
                return Some(p);
            }
        }
        if r.headers.has("x-envoy-upstream-service-time") {
            return Some(Proxy::Envoy);
        }
    }
    if let Some(q) = forwarded {
        if let Some(p) = q.headers.get("via").and_then(Proxy::from_product) {
            return Some(p);
        }
        if q.headers.has("x-envoy-expected-rq-timeout-ms") || q.headers.has("x-envoy-internal") {
            return Some(Proxy::Envoy);
        }
        // Apache's mod_proxy always adds X-Forwarded-Server.
        if q.headers.has("x-forwarded-server") {
            return Some(Proxy::Apache);
        }
        // HAProxy 2.x forwards HTTP/1 header names in lower case (HTX),
        // whatever case the client used.
        let lower = |h: &crate::proto::Headers| h.iter().all(|(n, _)| !n.bytes().any(|b| b.is_ascii_uppercase()));
        if let Some(c) = client_req
            && !lower(&c.headers)
            && lower(&q.headers)
            && !q.headers.is_empty()
        {
            return Some(Proxy::Haproxy);
        }
    }
    // HAProxy 2.x speaks HTTP/1 with lower-case header names on the
    // responses it generates itself (HTX normalisation) and adds no Server.
    if let Some(r) = client_resp {
        let lower = !r.headers.is_empty() && r.headers.iter().all(|(n, _)| n.chars().all(|c| !c.is_ascii_uppercase()));
        if lower && !r.headers.has("server") {
            return Some(Proxy::Haproxy);
        }
    }
    None
}

/// A fix for a finding kind, written for the proxy that is there.
pub fn fix(kind: &str, p: Proxy, ctx: &FixContext) -> Option<String> {
    let boundary = ctx.boundary_s.map(|b| b.round() as u64);
    let keep = boundary.map_or(3600, |b| (b * 10).max(3600));
    let hb = boundary.map_or(30, |b| (b / 2).max(1));
    let s = match (kind, p) {
        ("upgrade-stripped" | "upstream-http10", Proxy::Nginx) => format!(
            "in the location that serves {path}:\n    proxy_http_version 1.1;\n    proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection $connection_upgrade;\nand once in http {{}}:\n    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}",
            path = ctx.path
        ),
        ("upgrade-stripped", Proxy::Haproxy) => "haproxy forwards WebSocket upgrades by itself in 'mode http': remove the rules that rewrite Connection/Upgrade (http-request del-header / set-header Connection, option httpclose) for this path".into(),
        ("upgrade-stripped", Proxy::Apache) => format!(
            "load mod_proxy_wstunnel and proxy the path as a WebSocket:\n    ProxyPass \"{path}\" \"ws://BACKEND{path}\"\nor, with Apache 2.4.47+:\n    ProxyPass \"{path}\" \"http://BACKEND{path}\" upgrade=websocket",
            path = ctx.path
        ),
        ("upgrade-stripped", Proxy::Envoy) => "enable upgrades on the HttpConnectionManager (or the route):\n    upgrade_configs:\n    - upgrade_type: websocket".into(),
        ("upgrade-stripped", Proxy::Caddy) => "caddy's reverse_proxy forwards upgrades by itself: remove any header_up rules that rewrite Connection or Upgrade".into(),
        ("upgrade-stripped", Proxy::Unknown) => "forward the hop-by-hop Upgrade and Connection headers for WebSocket requests over HTTP/1.1 (nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)".into(),
        ("upstream-http10", Proxy::Apache) => "remove 'SetEnv force-proxy-request-1.0' / 'proxy-nokeepalive' for this path: WebSocket needs HTTP/1.1 upstream".into(),
        ("upstream-http10", _) => "forward upgrade requests over HTTP/1.1 (nginx: proxy_http_version 1.1;)".into(),
        ("upgrade-headers-missing", _) => "a hop in front of the one captured dropped Upgrade/Connection: check the load balancer, CDN or TLS terminator in front (its WebSocket support and any header rules), or capture on the host in front".into(),
        ("connection-upgrade-on-plain", Proxy::Nginx) => "do not hard-code the header; derive it from the request:\n    map $http_upgrade $connection_upgrade { default upgrade; '' close; }\n    proxy_set_header Connection $connection_upgrade;\n(with upstream keepalive, map '' to \"\" instead of close)".into(),
        ("connection-upgrade-on-plain", _) => "set Connection: upgrade only when the request carries Upgrade (a conditional/map), not on every request".into(),
        ("forwarded-proto-missing", Proxy::Nginx) => "proxy_set_header X-Forwarded-Proto $scheme;".into(),
        ("forwarded-proto-missing", Proxy::Haproxy) => "http-request set-header X-Forwarded-Proto https if { ssl_fc }".into(),
        ("forwarded-proto-missing", Proxy::Apache) => "RequestHeader set X-Forwarded-Proto \"https\" (in the TLS virtual host)".into(),
        ("forwarded-proto-missing", _) => "set X-Forwarded-Proto on requests forwarded from the TLS listener".into(),
        ("upstream-connect-failed", Proxy::Nginx) => "the backend is not listening where nginx connects: start it, or fix the address in proxy_pass / the upstream block".into(),
        ("upstream-connect-failed", _) => "the backend is not listening where the proxy connects: start it, or fix the upstream address".into(),
        ("upstream-timeout", Proxy::Nginx) => "the backend accepted the connection but never answered the upgrade: fix the backend (is the WebSocket route served, is the worker blocked?); nginx gives up after proxy_read_timeout".into(),
        ("upstream-timeout", _) => "the backend accepted the connection but never answered the upgrade: fix the backend".into(),
        ("upstream-premature-close", _) => "the backend closed the connection without answering: check the backend's logs for this request (crash, rejected handshake, wrong port or protocol)".into(),
        ("upgrade-failed", Proxy::Nginx) => format!("no location that proxies {path} matched: add one (location {path} {{ proxy_pass ...; }}) with the upgrade headers", path = ctx.path),
        ("upgrade-failed", _) => format!("the proxy answered {path} itself without forwarding it: route the path to the WebSocket backend", path = ctx.path),
        ("handshake-rejected", _) => "the backend refused the upgrade (the proxy forwarded it intact): fix the backend side, e.g. its allowed Origins for a 403".into(),
        ("bad-accept", _) => "the server computed Sec-WebSocket-Accept wrongly (RFC 6455 4.2.2: base64(SHA-1(key + 258EAFA5-E914-47DA-95CA-C5AB0DC85B11))): fix the server or the hop that rewrites the key".into(),
        ("idle-timeout-close" | "heartbeat-race", Proxy::Nginx) => format!(
            "raise the timeout in the location: proxy_read_timeout {keep}s; proxy_send_timeout {keep}s;\nor send heartbeats (WebSocket pings or messages) every {hb} s or less"
        ),
        ("idle-timeout-close" | "heartbeat-race", Proxy::Haproxy) => format!("timeout tunnel {keep}s   (in the defaults or backend section)\nor send heartbeats every {hb} s or less"),
        ("idle-timeout-close" | "heartbeat-race", Proxy::Apache) => format!("ProxyTimeout {keep}   (or timeout={keep} on the ProxyPass)\nor send heartbeats every {hb} s or less"),
        ("idle-timeout-close" | "heartbeat-race", Proxy::Envoy) => format!("raise the route's idle_timeout / the HttpConnectionManager's stream_idle_timeout to {keep}s\nor send heartbeats every {hb} s or less"),
        ("idle-timeout-close" | "heartbeat-race", _) => format!(
            "send heartbeats (WebSocket pings or messages) every {hb} s or less, or raise the idle timeout of the hop that closed (nginx proxy_read_timeout, haproxy timeout tunnel, AWS ALB idle_timeout.timeout_seconds, ...)"
        ),
        ("mass-close", Proxy::Nginx) => "nginx reloads close upgraded connections when old workers exit: raise worker_shutdown_timeout, reload less often, and make clients reconnect with backoff".into(),
        ("mass-close", _) => "a proxy reload or restart closed every session at once: drain connections on reload and make clients reconnect with backoff".into(),
        ("abnormal-close", _) => "a connection ended without a WebSocket close handshake (the client saw 1006): check which side closed it (detail) and that side's logs".into(),
        ("socketio-no-upgrade", Proxy::Nginx) => "Socket.IO stays on long-polling when the upgrade to websocket fails: give the /socket.io/ location the upgrade headers (proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)".into(),
        ("socketio-no-upgrade", _) => "Socket.IO stays on long-polling when the upgrade to websocket fails: let the proxy forward WebSocket upgrades for /socket.io/ (and check the client's transports option)".into(),
        _ => return None,
    };
    Some(s)
}

pub struct FixContext<'a> {
    pub path: &'a str,
    pub boundary_s: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Headers, Version};

    fn resp(h: &[(&str, &str)]) -> Response {
        Response {
            version: Version::Http11,
            status: 502,
            reason: String::new(),
            headers: Headers::from_pairs(h.iter().copied()),
            head_len: 0,
        }
    }

    #[test]
    fn recognises_from_server_and_signatures() {
        assert_eq!(recognise(None, Some(&resp(&[("Server", "nginx/1.22.1")])), None), Some(Proxy::Nginx));
        assert_eq!(recognise(None, Some(&resp(&[("Server", "Apache/2.4.57 (Debian)")])), None), Some(Proxy::Apache));
        assert_eq!(recognise(None, Some(&resp(&[("server", "envoy")])), None), Some(Proxy::Envoy));
        assert_eq!(
            recognise(None, Some(&resp(&[("content-length", "107"), ("content-type", "text/html")])), None),
            Some(Proxy::Haproxy)
        );
        assert_eq!(recognise(None, Some(&resp(&[("Server", "Python/3.11 websockets/17")])), None), None);
    }

    #[test]
    fn fixes_name_the_directive() {
        let c = FixContext { path: "/ws", boundary_s: Some(60.0) };
        assert!(
            fix("upgrade-stripped", Proxy::Nginx, &c)
                .unwrap()
                .contains("proxy_set_header Connection $connection_upgrade")
        );
        assert!(fix("idle-timeout-close", Proxy::Haproxy, &c).unwrap().contains("timeout tunnel"));
        assert!(fix("idle-timeout-close", Proxy::Nginx, &c).unwrap().contains("proxy_read_timeout"));
        assert!(fix("no-such-kind", Proxy::Nginx, &c).is_none());
    }
}
