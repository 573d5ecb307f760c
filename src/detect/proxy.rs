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
    Lighttpd,
    Traefik,
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
            Proxy::Lighttpd => "lighttpd",
            Proxy::Traefik => "traefik",
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
            ProxyKind::Lighttpd => Proxy::Lighttpd,
            ProxyKind::Traefik => Proxy::Traefik,
        }
    }

    fn from_product(s: &str) -> Option<Proxy> {
        let l = s.to_ascii_lowercase();
        if l.contains("nginx") || l.contains("openresty") || l.contains("tengine") {
            Some(Proxy::Nginx)
        } else if l.contains("haproxy") {
            Some(Proxy::Haproxy)
        } else if l.contains("lighttpd") {
            Some(Proxy::Lighttpd)
        } else if l.contains("apache") || l.contains("httpd") {
            Some(Proxy::Apache)
        } else if l.contains("envoy") || l.contains("istio") {
            Some(Proxy::Envoy)
        } else if l.contains("caddy") {
            Some(Proxy::Caddy)
        } else if l.contains("traefik") {
            Some(Proxy::Traefik)
        } else {
            None
        }
    }
}

/// A proxy named, and what named it (kept in findings as evidence).
pub type Recognised = (Proxy, String);

/// Recognises the proxy from the client hop's response (its own `Server`,
/// `Via`, headers only it adds) and the forwarded request (headers each
/// proxy adds upstream). `paired`: the client request and the forwarded
/// one are two hops of one exchange (needed to compare them). Nothing here
/// guesses from what any server might send: lower-case header names on a
/// response, or no `Server` header, are how many WebSocket servers answer.
pub fn recognise(
    client_req: Option<&Request>,
    client_resp: Option<&Response>,
    forwarded: Option<&Request>,
) -> Option<Recognised> {
    if let Some(r) = client_resp {
        for name in ["server", "via"] {
            for v in r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v) {
                if let Some(p) = Proxy::from_product(v) {
                    return Some((p, format!("{name}: {v} on the response to the client")));
                }
            }
        }
        if r.headers.has("x-envoy-upstream-service-time") {
            return Some((Proxy::Envoy, "x-envoy-upstream-service-time on the response to the client".into()));
        }
    }
    if let Some(q) = forwarded
        && let Some(x) = forwarded_signature(q)
    {
        return Some(x);
    }
    // HAProxy 2.x forwards HTTP/1 header names in lower case (HTX),
    // whatever case the client used: only telling with both hops in view.
    if let (Some(c), Some(q)) = (client_req, forwarded) {
        let lower = |h: &crate::proto::Headers| h.iter().all(|(n, _)| !n.bytes().any(|b| b.is_ascii_uppercase()));
        if !lower(&c.headers) && lower(&q.headers) && !q.headers.is_empty() {
            return Some((
                Proxy::Haproxy,
                "every header name lower-cased between the client's request and the forwarded one (HAProxy's HTX)"
                    .into(),
            ));
        }
    }
    h2_bridge(client_req, forwarded)
}

/// HAProxy bridging HTTP/2 WebSockets: the upgrade it forwards carries the
/// Sec-WebSocket-Key it made up, spelled `Sec-Websocket-Key` as its
/// HTTP/1 mux writes it, after header names all lower-cased (HTX).
fn h2_bridge(client: Option<&Request>, forwarded: Option<&Request>) -> Option<Recognised> {
    let (c, q) = (client?, forwarded?);
    if !c.is_extended_connect() || c.headers.has("sec-websocket-key") {
        return None;
    }
    let made_up = q.headers.iter().any(|(n, _)| n == "Sec-Websocket-Key");
    let others_lower = q
        .headers
        .iter()
        .filter(|(n, _)| *n != "Sec-Websocket-Key")
        .all(|(n, _)| !n.bytes().any(|b| b.is_ascii_uppercase()));
    (made_up && others_lower).then(|| {
        (
            Proxy::Haproxy,
            "the forwarded upgrade's made-up key header spelled 'Sec-Websocket-Key' after lower-cased names (HAProxy's HTTP/2 to HTTP/1 bridge)".to_string(),
        )
    })
}

/// The proxy named by the headers it adds to a forwarded request.
pub fn forwarded_signature(q: &Request) -> Option<Recognised> {
    let h = &q.headers;
    if let Some(v) = h.get("via")
        && let Some(p) = Proxy::from_product(v)
    {
        return Some((p, format!("Via: {v} on the forwarded request")));
    }
    for name in ["x-envoy-expected-rq-timeout-ms", "x-envoy-internal", "x-envoy-attempt-count", "x-envoy-original-path"]
    {
        if h.has(name) {
            return Some((Proxy::Envoy, format!("{name} on the forwarded request (envoy's router adds it)")));
        }
    }
    // Traefik adds X-Forwarded-Server (its host name) with X-Real-Ip and
    // X-Forwarded-Port; Apache's mod_proxy adds X-Forwarded-Server too, but
    // neither of the others.
    if h.has("x-forwarded-server") && h.has("x-real-ip") && h.has("x-forwarded-port") {
        return Some((
            Proxy::Traefik,
            "X-Forwarded-Server with X-Real-Ip and X-Forwarded-Port on the forwarded request (traefik adds them)"
                .into(),
        ));
    }
    if h.has("x-forwarded-server") {
        return Some((Proxy::Apache, "X-Forwarded-Server on the forwarded request (Apache mod_proxy adds it)".into()));
    }
    // lighttpd's mod_proxy adds X-Host (beside X-Forwarded-Host).
    if h.has("x-host") {
        return Some((Proxy::Lighttpd, "X-Host on the forwarded request (lighttpd mod_proxy adds it)".into()));
    }
    None
}

/// A fix for a finding kind, written for the proxy that is there.
pub fn fix(kind: crate::record::FindingKind, p: Proxy, ctx: &FixContext) -> Option<String> {
    let kind = kind.name();
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
        ("upgrade-stripped" | "upstream-http10", Proxy::Lighttpd) => "enable upgrades in mod_proxy for this path (lighttpd 1.4.46+):\n    proxy.header = ( \"upgrade\" => \"enable\" )\n(in the same scope as its proxy.server)".into(),
        ("upgrade-stripped", Proxy::Traefik) => "traefik forwards WebSocket upgrades by itself: remove the headers middleware (customRequestHeaders) that sets or empties Connection or Upgrade on this router".into(),
        ("upgrade-stripped", Proxy::Unknown) => "forward the hop-by-hop Upgrade and Connection headers for WebSocket requests over HTTP/1.1 (nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)".into(),
        ("upstream-http10", Proxy::Apache) => "remove 'SetEnv force-proxy-request-1.0' / 'proxy-nokeepalive' for this path: WebSocket needs HTTP/1.1 upstream".into(),
        ("upstream-http10", _) => "forward upgrade requests over HTTP/1.1 (nginx: proxy_http_version 1.1;)".into(),
        ("false-upgrade-success", Proxy::Haproxy) => "make the upgrade reach the backend (remove the http-request rules that delete or rewrite Upgrade/Connection for this path) and route the path to a WebSocket handler: haproxy relays any 2xx to an HTTP/2 extended CONNECT as success".into(),
        ("false-upgrade-success", _) => "make the upgrade reach the backend (forward Upgrade/Connection for this path) and serve the path with a WebSocket handler; a proxy bridging HTTP/2 WebSockets should answer the client with an error, never a 2xx, unless the backend answered 101".into(),
        ("h2-websocket-not-offered", Proxy::Haproxy) => "remove 'h2-workaround-bogus-websocket-clients' from the global section (haproxy offers RFC 8441 on h2 frontends by default), or accept the extra HTTP/1.1 connection per WebSocket".into(),
        ("h2-websocket-not-offered", Proxy::Nginx) => "nginx does not offer WebSockets over HTTP/2 (RFC 8441): browsers open a separate HTTP/1.1 connection for each WebSocket; put a front that supports it (haproxy, envoy) if the extra connections matter".into(),
        ("h2-websocket-not-offered", _) => "enable RFC 8441 on the HTTP/2 front (SETTINGS_ENABLE_CONNECT_PROTOCOL; envoy: http2_protocol_options.allow_connect, haproxy: on by default), or accept one extra HTTP/1.1 connection per WebSocket".into(),
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
        ("idle-timeout-close" | "heartbeat-race", Proxy::Lighttpd) => format!("raise server.max-read-idle and server.max-write-idle to {keep} (seconds; 60 and 360 by default)\nor send heartbeats every {hb} s or less"),
        ("idle-timeout-close" | "heartbeat-race", Proxy::Traefik) => format!("raise the entryPoint's transport.respondingTimeouts (readTimeout / idleTimeout) to {keep}s\nor send heartbeats every {hb} s or less"),
        ("idle-timeout-close" | "heartbeat-race", Proxy::Envoy) => format!("raise the route's idle_timeout / the HttpConnectionManager's stream_idle_timeout to {keep}s\nor send heartbeats every {hb} s or less"),
        ("idle-timeout-close" | "heartbeat-race", _) => format!(
            "send heartbeats (WebSocket pings or messages) every {hb} s or less, or raise the idle timeout of the hop that closed (nginx proxy_read_timeout, haproxy timeout tunnel, AWS ALB idle_timeout.timeout_seconds, ...)"
        ),
        ("proxy-protocol-violation", Proxy::Caddy) => "caddy closes upgraded connections itself when its config is reloaded, and 2.6 sends that close frame to the backend unmasked: upgrade caddy; from 2.7 on, stream_close_delay in reverse_proxy lets sessions outlive a reload; reload less often".into(),
        ("proxy-protocol-violation", _) => "the proxy sends WebSocket frames that break RFC 6455 (see detail): upgrade or reconfigure it; until then the peer closes with 1002 (protocol error)".into(),
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

    fn req(h: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            target: "/ws".into(),
            version: Version::Http11,
            headers: Headers::from_pairs(h.iter().copied()),
            head_len: 0,
        }
    }

    fn named(c: Option<&Request>, r: Option<&Response>, f: Option<&Request>) -> Option<Proxy> {
        recognise(c, r, f).map(|x| x.0)
    }

    #[test]
    fn recognises_from_server_and_signatures() {
        assert_eq!(named(None, Some(&resp(&[("Server", "nginx/1.22.1")])), None), Some(Proxy::Nginx));
        assert_eq!(named(None, Some(&resp(&[("Server", "Apache/2.4.57 (Debian)")])), None), Some(Proxy::Apache));
        assert_eq!(named(None, Some(&resp(&[("server", "envoy")])), None), Some(Proxy::Envoy));
        assert_eq!(named(None, Some(&resp(&[("Server", "lighttpd/1.4.69")])), None), Some(Proxy::Lighttpd));
        assert_eq!(named(None, Some(&resp(&[("Server", "Python/3.11 websockets/17")])), None), None);
        // caddy answers with its own Server beside the backend's
        let two = resp(&[("Server", "Caddy"), ("Server", "wstap-lab-backend")]);
        assert_eq!(named(None, Some(&two), None), Some(Proxy::Caddy));
        // the evidence says what named it
        let (_, why) = recognise(None, Some(&resp(&[("Server", "nginx/1.22.1")])), None).unwrap();
        assert!(why.contains("server: nginx/1.22.1"), "{why}");
    }

    /// Many servers (Python websockets behind nothing, Go, Node, embedded
    /// ones) answer with lower-case names and no Server header: that alone
    /// names no proxy.
    #[test]
    fn lower_case_response_without_server_names_nothing() {
        let r = resp(&[("upgrade", "websocket"), ("connection", "Upgrade"), ("sec-websocket-accept", "x")]);
        assert_eq!(named(None, Some(&r), None), None);
        assert_eq!(named(Some(&req(&[("Host", "a")])), Some(&r), None), None);
    }

    /// From each proxy's documentation of the headers it adds upstream.
    #[test]
    fn forwarded_request_signatures() {
        let lighttpd =
            req(&[("X-Forwarded-For", "10.0.0.1"), ("X-Host", "example.com"), ("X-Forwarded-Proto", "http")]);
        assert_eq!(forwarded_signature(&lighttpd).unwrap().0, Proxy::Lighttpd);
        let traefik = req(&[
            ("X-Forwarded-For", "10.0.0.1"),
            ("X-Forwarded-Host", "example.com"),
            ("X-Forwarded-Port", "443"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Server", "traefik-65bccdc4bd-tkbmn"),
            ("X-Real-Ip", "10.0.0.1"),
        ]);
        assert_eq!(forwarded_signature(&traefik).unwrap().0, Proxy::Traefik);
        let apache = req(&[("X-Forwarded-For", "10.0.0.1"), ("X-Forwarded-Host", "a"), ("X-Forwarded-Server", "a")]);
        assert_eq!(forwarded_signature(&apache).unwrap().0, Proxy::Apache);
        let envoy =
            req(&[("x-forwarded-proto", "https"), ("x-request-id", "1"), ("x-envoy-expected-rq-timeout-ms", "15000")]);
        assert_eq!(forwarded_signature(&envoy).unwrap().0, Proxy::Envoy);
        let envoy_internal = req(&[("x-envoy-internal", "true")]);
        assert_eq!(forwarded_signature(&envoy_internal).unwrap().0, Proxy::Envoy);
        let via = req(&[("Via", "1.1 traefik")]);
        assert_eq!(forwarded_signature(&via).unwrap().0, Proxy::Traefik);
        assert_eq!(forwarded_signature(&req(&[("X-Forwarded-For", "10.0.0.1")])), None);
        // an envoy response
        assert_eq!(named(None, Some(&resp(&[("x-envoy-upstream-service-time", "3")])), None), Some(Proxy::Envoy));
    }

    /// haproxy's lower-casing is evidence only when both hops are compared.
    #[test]
    fn haproxy_from_lower_cased_forward() {
        let c = req(&[("Host", "a"), ("Upgrade", "websocket")]);
        let f = req(&[("host", "a"), ("upgrade", "websocket"), ("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(named(Some(&c), None, Some(&f)), Some(Proxy::Haproxy));
        assert_eq!(named(None, None, Some(&f)), None);
    }

    #[test]
    fn fixes_name_the_directive() {
        let c = FixContext { path: "/ws", boundary_s: Some(60.0) };
        assert!(
            fix(crate::record::FindingKind::UpgradeStripped, Proxy::Nginx, &c)
                .unwrap()
                .contains("proxy_set_header Connection $connection_upgrade")
        );
        assert!(
            fix(crate::record::FindingKind::IdleTimeoutClose, Proxy::Haproxy, &c).unwrap().contains("timeout tunnel")
        );
        assert!(
            fix(crate::record::FindingKind::IdleTimeoutClose, Proxy::Nginx, &c).unwrap().contains("proxy_read_timeout")
        );
        assert!(fix(crate::record::FindingKind::IdleTimeoutImminent, Proxy::Nginx, &c).is_none());
        assert!(
            fix(crate::record::FindingKind::UpgradeStripped, Proxy::Lighttpd, &c)
                .unwrap()
                .contains("proxy.header = ( \"upgrade\" => \"enable\" )")
        );
        assert!(
            fix(crate::record::FindingKind::IdleTimeoutClose, Proxy::Lighttpd, &c)
                .unwrap()
                .contains("server.max-read-idle")
        );
        assert!(
            fix(crate::record::FindingKind::UpgradeStripped, Proxy::Traefik, &c)
                .unwrap()
                .contains("customRequestHeaders")
        );
        assert!(
            fix(crate::record::FindingKind::IdleTimeoutClose, Proxy::Traefik, &c)
                .unwrap()
                .contains("respondingTimeouts")
        );
        assert!(
            fix(crate::record::FindingKind::UpgradeStripped, Proxy::Envoy, &c)
                .unwrap()
                .contains("upgrade_type: websocket")
        );
        assert!(fix(crate::record::FindingKind::IdleTimeoutClose, Proxy::Envoy, &c).unwrap().contains("idle_timeout"));
    }
}
