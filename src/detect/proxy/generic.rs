//! Fixes when the proxy is not recognised (or the product has nothing of
//! its own to say about a kind): what to do, in words any proxy's
//! documentation maps to.

use super::FixContext;
use crate::record::FindingKind;

pub fn fix(kind: FindingKind, cx: &FixContext) -> Option<String> {
    use FindingKind as K;
    let path = cx.path;
    let hb = cx.heartbeat();
    Some(match kind {
        K::UpgradeStripped => "forward the hop-by-hop Upgrade and Connection headers for WebSocket requests over HTTP/1.1 (nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;)".into(),
        K::UpstreamHttp10 => "forward upgrade requests over HTTP/1.1 (nginx: proxy_http_version 1.1;)".into(),
        K::FalseUpgradeSuccess => "make the upgrade reach the backend (forward Upgrade/Connection for this path) and serve the path with a WebSocket handler; a proxy bridging HTTP/2 WebSockets should answer the client with an error, never a 2xx, unless the backend answered 101".into(),
        K::H2WebsocketNotOffered => "enable RFC 8441 on the HTTP/2 front (SETTINGS_ENABLE_CONNECT_PROTOCOL; envoy: http2_protocol_options.allow_connect, haproxy: on by default), or accept one extra HTTP/1.1 connection per WebSocket".into(),
        K::UpgradeHeadersMissing => "a hop in front of the one captured dropped Upgrade/Connection: check the load balancer, CDN or TLS terminator in front (its WebSocket support and any header rules), or capture on the host in front".into(),
        K::ConnectionUpgradeOnPlain => "set Connection: upgrade only when the request carries Upgrade (a conditional/map), not on every request".into(),
        K::ForwardedProtoMissing => "set X-Forwarded-Proto on requests forwarded from the TLS listener".into(),
        K::UpstreamConnectFailed => "the backend is not listening where the proxy connects: start it, or fix the upstream address".into(),
        K::UpstreamTimeout => "the backend accepted the connection but never answered the upgrade: fix the backend".into(),
        K::UpstreamPrematureClose => "the backend closed the connection without answering: check the backend's logs for this request (crash, rejected handshake, wrong port or protocol)".into(),
        K::UpgradeFailed => match cx.access_refused() {
            Some(s) => format!("the proxy refused {path} with {s} by one of its own access rules (deny, allow-list, authentication, Origin check) before any backend saw it: if WebSocket clients should get through, allow {path} and their Origin in the proxy's rules"),
            None => format!("the proxy answered {path} itself without forwarding it: route the path to the WebSocket backend"),
        },
        K::HandshakeRejected => "the backend refused the upgrade (the proxy forwarded it intact): fix the backend side, e.g. its allowed Origins for a 403".into(),
        K::BadAccept => "the server computed Sec-WebSocket-Accept wrongly (RFC 6455 4.2.2: base64(SHA-1(key + 258EAFA5-E914-47DA-95CA-C5AB0DC85B11))): fix the server or the hop that rewrites the key".into(),
        K::IdleTimeoutClose | K::HeartbeatRace => format!(
            "send heartbeats (WebSocket pings or messages) every {hb} s or less, or raise the idle timeout of the hop that closed (nginx proxy_read_timeout, haproxy timeout tunnel, AWS ALB idle_timeout.timeout_seconds, ...)"
        ),
        K::ProxyProtocolViolation => "the proxy sends WebSocket frames that break RFC 6455 (see detail): upgrade or reconfigure it; until then the peer closes with 1002 (protocol error)".into(),
        K::MassClose => "a proxy reload or restart closed every session at once: drain connections on reload and make clients reconnect with backoff".into(),
        K::AbnormalClose => "a connection ended without a WebSocket close handshake (the client saw 1006): check which side closed it (detail) and that side's logs".into(),
        K::SocketioNoUpgrade => "Socket.IO stays on long-polling when the upgrade to websocket fails: let the proxy forward WebSocket upgrades for /socket.io/ (and check the client's transports option)".into(),
        // A warning about what is coming: the finding says what to do.
        K::IdleTimeoutImminent => return None,
    })
}
