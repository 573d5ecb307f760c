//! HAProxy: named by its `Server`/`Via` when set; otherwise recognised by
//! what it does to the requests it forwards, with both hops in view: HAProxy
//! 2.x (HTX) lower-cases every HTTP/1 header name, and its HTTP/2 to
//! HTTP/1 WebSocket bridge makes up a key it spells `Sec-Websocket-Key`.

use super::{FixContext, Product, generic};
use crate::proto::{Headers, Request};
use crate::record::FindingKind;

pub struct Haproxy;

impl Product for Haproxy {
    fn name(&self) -> &'static str {
        "haproxy"
    }

    fn named_in(&self, l: &str) -> bool {
        l.contains("haproxy")
    }

    /// HAProxy 2.x forwards HTTP/1 header names in lower case (HTX),
    /// whatever case the client used: only telling with both hops in view.
    /// Bridging HTTP/2 WebSockets, the upgrade it forwards carries the
    /// Sec-WebSocket-Key it made up, spelled `Sec-Websocket-Key` as its
    /// HTTP/1 mux writes it, after header names all lower-cased.
    fn pair_signature(&self, c: &Request, q: &Request) -> Option<String> {
        let lower = |h: &Headers| h.iter().all(|(n, _)| !n.bytes().any(|b| b.is_ascii_uppercase()));
        if !lower(&c.headers) && lower(&q.headers) && !q.headers.is_empty() {
            return Some(
                "every header name lower-cased between the client's request and the forwarded one (HAProxy's HTX)"
                    .into(),
            );
        }
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
            "the forwarded upgrade's made-up key header spelled 'Sec-Websocket-Key' after lower-cased names (HAProxy's HTTP/2 to HTTP/1 bridge)".to_string()
        })
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        Some(match kind {
            K::UpgradeStripped => "haproxy forwards WebSocket upgrades by itself in 'mode http': remove the rules that rewrite Connection/Upgrade (http-request del-header / set-header Connection, option httpclose) for this path".into(),
            K::FalseUpgradeSuccess => "make the upgrade reach the backend (remove the http-request rules that delete or rewrite Upgrade/Connection for this path) and route the path to a WebSocket handler: haproxy relays any 2xx to an HTTP/2 extended CONNECT as success".into(),
            K::H2WebsocketNotOffered => "remove 'h2-workaround-bogus-websocket-clients' from the global section (haproxy offers RFC 8441 on h2 frontends by default), or accept the extra HTTP/1.1 connection per WebSocket".into(),
            K::ForwardedProtoMissing => "http-request set-header X-Forwarded-Proto https if { ssl_fc }".into(),
            K::IdleTimeoutClose | K::HeartbeatRace => cx.raise_or_heartbeat(format_args!("timeout tunnel {}s   (in the defaults or backend section)", cx.keep())),
            K::UpgradeFailed => match cx.access_refused() {
                Some(s) => format!("an 'http-request deny' (or 'auth', 'tarpit', 'return status {s}') rule of the frontend refused {}: relax the acl it matches on (path, Origin, source) for the WebSocket clients", cx.path),
                None => return generic::fix(kind, cx),
            },
            generic_fix![UpstreamHttp10, UpstreamConnectFailed, UpstreamTimeout, ConnectionUpgradeOnPlain, SocketioNoUpgrade, MassClose, ProxyProtocolViolation] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, named, req};
    use super::super::{Proxy, fix};
    use crate::proto::Request;
    use crate::record::FindingKind;

    /// The lower-casing is evidence only when both hops are compared.
    #[test]
    fn named_by_its_lower_cased_forward() {
        let c = req(&[("Host", "a"), ("Upgrade", "websocket")]);
        let f = req(&[("host", "a"), ("upgrade", "websocket"), ("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(named(Some(&c), None, Some(&f)), Some("haproxy"));
        assert_eq!(named(None, None, Some(&f)), None);
    }

    /// Bridging an RFC 8441 stream: a key it made up, spelled its way.
    #[test]
    fn named_by_its_http2_bridge() {
        let mut c = req(&[(":protocol", "websocket"), (":authority", "a")]);
        c.method = "CONNECT".into();
        c.version = crate::proto::Version::Http2;
        let f: Request = req(&[("host", "a"), ("Sec-Websocket-Key", "bWFkZSB1cA=="), ("upgrade", "websocket")]);
        assert_eq!(named(Some(&c), None, Some(&f)), Some("haproxy"));
    }

    #[test]
    fn fixes_name_the_directives() {
        let p = Proxy::named("haproxy").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::IdleTimeoutClose).contains("timeout tunnel 3600s"));
        assert!(f(FindingKind::H2WebsocketNotOffered).contains("h2-workaround-bogus-websocket-clients"));
        assert!(f(FindingKind::ForwardedProtoMissing).contains("ssl_fc"));
    }
}
