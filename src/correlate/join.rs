//! What joins a handshake (and the session it opens) to the proxy's and
//! the application's logs: the client address and port as the proxy logs
//! them, the original client when the request came through another proxy,
//! and the request ids the hops carried (docs/json.md, "Joining with
//! logs"). Gathered once per handshake, from the hops' parsed heads.
//!
//! The client address is the one the proxy in front of the record's client
//! hop saw as its peer: nginx's `$remote_addr:$remote_port` (HAProxy's
//! `%ci:%cp`, Apache's `%a`, Caddy's `remote_ip`/`remote_port`) with the
//! default configuration, that is the client hop's initiator. A proxy that
//! takes the client from X-Forwarded-For (nginx's realip module) logs the
//! address `forwarded_for` carries instead: both are written, so either
//! configuration joins.

use std::net::IpAddr;

use super::pair::forwarded_ips;
use crate::facts::HopRequest;
use crate::flow::FlowKey;
use crate::proto::Request;
use crate::record::{Join, RemoteFrom, RequestIds};
use crate::redact::Redactor;

/// Headers that carry a request or trace id end to end, as proxies,
/// load balancers and tracing libraries name them: nginx `$request_id`
/// (usually as X-Request-ID), W3C Trace Context, AWS ALB, Zipkin B3
/// (single and multi header), Google Cloud, Cloudflare, Jaeger.
pub const REQUEST_ID_HEADERS: &[&str; 10] = &[
    "x-request-id",
    "x-correlation-id",
    "request-id",
    "traceparent",
    "x-amzn-trace-id",
    "b3",
    "x-b3-traceid",
    "x-cloud-trace-context",
    "cf-ray",
    "uber-trace-id",
];

/// Longest id value kept (ids are short; a longer value is cut, so a
/// hostile header cannot make records large).
const MAX_ID_LEN: usize = 256;

/// The request ids one head carries, redacted as other headers are.
fn ids_of(h: &crate::proto::Headers, r: Redactor, out: &mut RequestIds) {
    for (name, v) in REQUEST_ID_HEADERS.iter().zip(h.get_each(REQUEST_ID_HEADERS)) {
        if let Some(v) = v {
            let v = v.trim();
            if v.is_empty() {
                continue;
            }
            let mut end = v.len().min(MAX_ID_LEN);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            out.add(name, r.header(name, &v[..end]));
        }
    }
}

/// The request ids on a hop's request, then on its response.
pub fn hop_ids(t: &HopRequest, r: Redactor) -> RequestIds {
    let mut ids = RequestIds::default();
    ids_of(&t.req.headers, r, &mut ids);
    if let Some(resp) = &t.resp {
        ids_of(&resp.headers, r, &mut ids);
    }
    ids
}

/// The address a proxy that received `req` put in it for the peer it
/// saw: X-Real-IP, else X-Forwarded-For's last entry.
fn peer_named_by(req: &Request) -> Option<(IpAddr, RemoteFrom)> {
    let parse = |t: &str| t.trim().parse::<IpAddr>().ok();
    if let Some(ip) = req.headers.tokens("x-real-ip").filter_map(parse).next() {
        return Some((ip, RemoteFrom::XRealIp));
    }
    req.headers.tokens("x-forwarded-for").filter_map(parse).last().map(|ip| (ip, RemoteFrom::XForwardedFor))
}

/// A request a proxy forwarded, by what proxies add to it, or an upgrade
/// over HTTP/1.0 (nginx's default `proxy_http_version`; no WebSocket
/// client sends one).
fn is_forward(req: &Request) -> bool {
    let h = &req.headers;
    ["x-forwarded-for", "x-real-ip", "forwarded", "via"].iter().any(|n| h.get(n).is_some())
        || req.version == crate::proto::Version::Http10 && h.get("sec-websocket-key").is_some()
}

/// The join fields of a handshake: `client` and `upstream` are its hops in
/// view, `client_flow` the client hop's connection (a TLS one whose
/// request cannot be read included).
pub fn of(
    client: Option<&HopRequest>,
    upstream: Option<&HopRequest>,
    client_flow: Option<FlowKey>,
    r: Redactor,
) -> Join {
    let mut j = Join::default();
    match client_flow {
        Some(f) => {
            j.remote_addr = Some(f.src.ip);
            j.remote_port = Some(f.src.port);
            j.remote_from = Some(RemoteFrom::Capture);
        }
        None => {
            if let Some((ip, from)) = upstream.and_then(|u| peer_named_by(&u.req)) {
                j.remote_addr = Some(ip);
                j.remote_from = Some(from);
            }
        }
    }
    // The original client, as the request the proxy received names it
    // (the forwarded one when the client hop cannot be read).
    let received = client.or(upstream);
    j.forwarded_for = received.and_then(|t| forwarded_ips(&t.req).next()).filter(|ip| Some(*ip) != j.remote_addr);
    j.front_forwarded = client.is_some_and(|c| is_forward(&c.req));
    for t in [client, upstream].into_iter().flatten() {
        ids_of(&t.req.headers, r, &mut j.request_ids);
    }
    for t in [client, upstream].into_iter().flatten() {
        if let Some(resp) = &t.resp {
            ids_of(&resp.headers, r, &mut j.request_ids);
        }
    }
    j
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Headers, Request, Version};

    fn req(headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            target: "/ws".into(),
            version: Version::Http11,
            headers: Headers::from_pairs(headers.iter().copied()),
            head_len: 0,
        }
    }

    fn hop(flow: &str, headers: &[(&str, &str)]) -> HopRequest {
        let (a, b) = flow.split_once("->").unwrap();
        let ep = |x: &str| {
            let sa: std::net::SocketAddr = x.parse().unwrap();
            crate::flow::Endpoint::new(sa.ip(), sa.port())
        };
        HopRequest::new(
            1,
            1,
            FlowKey { src: ep(a), dst: ep(b) },
            Box::new(req(headers)),
            crate::time::Ts::from_secs_f64(1.0),
        )
    }

    const ON: Redactor = Redactor { enabled: true };

    #[test]
    fn the_client_hop_gives_the_address_the_proxy_logs() {
        let c = hop("198.51.100.7:51000->10.0.0.1:80", &[("X-Request-ID", "abc123")]);
        let u = hop(
            "10.0.0.1:40000->10.0.0.2:3000",
            &[
                ("X-Forwarded-For", "198.51.100.7"),
                ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ],
        );
        let j = of(Some(&c), Some(&u), Some(c.flow), ON);
        assert_eq!(j.remote_addr, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(j.remote_port, Some(51000));
        assert_eq!(j.remote_from, Some(RemoteFrom::Capture));
        assert_eq!(j.forwarded_for, None, "the client spoke to the proxy directly");
        assert!(!j.front_forwarded, "the browser's own request");
        assert!(of(Some(&u), None, Some(u.flow), ON).front_forwarded, "a forward seen alone");
        assert_eq!(j.request_ids.get("x-request-id"), Some("abc123"));
        assert_eq!(
            j.request_ids.get("traceparent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            "a trace id is an id, not a secret"
        );
    }

    #[test]
    fn a_request_from_another_proxy_names_the_original_client() {
        let c = hop("10.0.0.9:41000->10.0.0.1:80", &[("X-Forwarded-For", "203.0.113.5, 10.0.0.8")]);
        let j = of(Some(&c), None, Some(c.flow), ON);
        assert_eq!(j.remote_addr, Some("10.0.0.9".parse().unwrap()));
        assert_eq!(j.forwarded_for, Some("203.0.113.5".parse().unwrap()));
    }

    #[test]
    fn only_the_forward_seen_takes_the_address_the_proxy_wrote() {
        let u = hop("10.0.0.1:40000->10.0.0.2:3000", &[("X-Forwarded-For", "203.0.113.5, 198.51.100.7")]);
        let j = of(None, Some(&u), None, ON);
        assert_eq!(j.remote_addr, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(j.remote_port, None);
        assert_eq!(j.remote_from, Some(RemoteFrom::XForwardedFor));
        assert_eq!(j.forwarded_for, Some("203.0.113.5".parse().unwrap()));
        let u = hop("10.0.0.1:40000->10.0.0.2:3000", &[("X-Real-IP", "198.51.100.9")]);
        let j = of(None, Some(&u), None, ON);
        assert_eq!((j.remote_addr, j.remote_from), (Some("198.51.100.9".parse().unwrap()), Some(RemoteFrom::XRealIp)));
        assert_eq!(j.forwarded_for, None);
        assert_eq!(of(None, Some(&hop("10.0.0.1:1->10.0.0.2:2", &[])), None, ON), Join::default());
    }

    #[test]
    fn ids_are_redacted_like_headers_and_bounded() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl";
        let long = "a".repeat(1000);
        let c = hop("1.2.3.4:5->6.7.8.9:80", &[("X-Correlation-ID", jwt), ("X-Request-ID", &long)]);
        let j = of(Some(&c), None, Some(c.flow), ON);
        assert_eq!(j.request_ids.get("x-correlation-id"), Some("REDACTED"));
        assert_eq!(j.request_ids.get("x-request-id").map(str::len), Some(MAX_ID_LEN));
        let j = of(Some(&c), None, Some(c.flow), Redactor { enabled: false });
        assert_eq!(j.request_ids.get("x-correlation-id"), Some(jwt), "--no-redact keeps it");
    }
}
