//! `h2-websocket-not-offered`: an HTTP/2 front whose SETTINGS lack
//! ENABLE_CONNECT_PROTOCOL (RFC 8441), and a client of it that wanted a
//! WebSocket: it opened one over a separate HTTP/1.1 connection to the same
//! front while its HTTP/2 connection was open (the browser's fallback), or
//! it sent an extended CONNECT anyway and was refused.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde_json::json;

use super::proxy::Proxy;
use super::{Config, Context, Detector, Finding, FindingKind, Severity, about, finding};
use crate::facts::{Exchange, Fact, H2Conn, HopRequest};
use crate::flow::{Endpoint, FlowKey};
use crate::time::Ts;

/// HTTP/2 connections without RFC 8441 remembered at once.
const MAX_FRONTS: usize = 1024;

/// Connections whose server did not offer RFC 8441, to match a client's
/// fallback to HTTP/1.1 against.
#[derive(Debug, Default)]
pub struct H2NotOffered {
    not_offered: VecDeque<NotOffered>,
}

#[derive(Debug, Clone)]
struct NotOffered {
    flow: FlowKey,
    since: Ts,
    until: Option<Ts>,
    reported: bool,
    /// The client sent an extended CONNECT on it anyway.
    tried: u32,
}

impl NotOffered {
    fn client(&self) -> IpAddr {
        self.flow.src.ip
    }
    fn front(&self) -> Endpoint {
        self.flow.dst
    }
}

impl Detector for H2NotOffered {
    fn new(_: &Config) -> H2NotOffered {
        H2NotOffered::default()
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::H2WebsocketNotOffered]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        match fact {
            Fact::H2Connection(v) => self.connection(v, cx, out),
            Fact::Exchange(x) if x.is_websocket() => {
                self.fallback(x, cx, out);
                if let Some(c) = x.client.filter(|c| c.req.is_h2() && c.req.is_extended_connect() && !c.upgraded()) {
                    self.refused_connect(c);
                }
            }
            _ => {}
        }
    }
}

impl H2NotOffered {
    /// An extended CONNECT the front refused: if it never offered RFC 8441
    /// on that connection, the client wanted what it was not offered.
    fn refused_connect(&mut self, c: &HopRequest) {
        let Some(n) = self.not_offered.iter_mut().find(|n| n.flow == c.flow) else { return };
        n.tried += 1;
    }

    /// An HTTP/2 connection's facts: remember those whose server does not
    /// offer RFC 8441.
    fn connection(&mut self, v: &H2Conn, cx: &Context, out: &mut Vec<Finding>) {
        if v.offers_websocket() == Some(false) {
            match self.not_offered.iter_mut().find(|n| n.flow == v.flow) {
                Some(n) => n.until = v.closed,
                None => {
                    if self.not_offered.len() >= MAX_FRONTS {
                        self.not_offered.pop_front();
                    }
                    self.not_offered.push_back(NotOffered {
                        flow: v.flow,
                        since: v.opened,
                        until: v.closed,
                        reported: false,
                        tried: 0,
                    });
                }
            }
        }
        // A connection that ended with extended CONNECTs refused on it.
        if v.closed.is_some()
            && let Some(i) = self.not_offered.iter().position(|n| n.flow == v.flow)
        {
            let n = self.not_offered[i].clone();
            if n.tried > 0 && !n.reported {
                self.not_offered[i].reported = true;
                let proxy = cx.proxy_at(n.front()).unwrap_or(Proxy::UNKNOWN);
                let msg = format!(
                    "the HTTP/2 front at {} does not offer WebSockets over HTTP/2 (its SETTINGS lack ENABLE_CONNECT_PROTOCOL, RFC 8441), yet the client {} sent {} extended CONNECT request(s) on that connection and was refused: its WebSocket never opened",
                    n.front(),
                    n.client(),
                    n.tried
                );
                let d = json!({"h2_flow": n.flow, "enable_connect_protocol": false, "extended_connects_refused": n.tried, "fallback": null});
                out.push(finding(
                    FindingKind::H2WebsocketNotOffered,
                    Severity::Error,
                    n.since,
                    vec![n.flow],
                    None,
                    msg,
                    proxy,
                    None,
                    d,
                ));
            }
        }
    }

    /// A WebSocket upgrade over HTTP/1.1 into a front the same client has
    /// an HTTP/2 connection to, which did not offer RFC 8441: the client's
    /// fallback (a browser opens another TCP+TLS connection for it).
    fn fallback(&mut self, x: &Exchange<'_>, cx: &Context, out: &mut Vec<Finding>) {
        let Some(c) = x.client.filter(|c| !c.req.is_h2() && c.req.is_websocket_attempt()) else { return };
        let Some(i) = self.not_offered.iter().position(|n| {
            !n.reported
                && n.client() == c.flow.src.ip
                && n.front() == c.flow.dst
                && n.since <= c.req_ts
                && n.until.is_none_or(|u| c.req_ts <= u)
        }) else {
            return;
        };
        self.not_offered[i].reported = true;
        let n = self.not_offered[i].clone();
        let alpn = c.tls.as_ref().and_then(|t| t.alpn.clone());
        let msg = format!(
            "the HTTP/2 front at {} does not offer WebSockets over HTTP/2 (its SETTINGS lack ENABLE_CONNECT_PROTOCOL, RFC 8441): the client {} had an HTTP/2 connection to it ({}) but opened another {}connection ({}) to upgrade {} over HTTP/1.1 (the browser's fallback: one more TCP{} handshake and connection per WebSocket)",
            n.front(),
            n.client(),
            n.flow.src,
            if c.tls.is_some() { "TLS " } else { "" },
            c.flow.src,
            x.path,
            if c.tls.is_some() { "+TLS" } else { "" }
        );
        let mut d = json!({
            "h2_flow": n.flow,
            "enable_connect_protocol": false,
            "fallback": {"flow": c.flow, "version": c.req.version.as_str(), "alpn": alpn, "status": c.status()},
        });
        d["handshake"] = json!(x.handshake);
        out.push(about(x, cx, FindingKind::H2WebsocketNotOffered, Severity::Warning, vec![n.flow, c.flow], msg, d));
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::H2NotOffered;
    use crate::facts::Fact;
    use crate::proto::Version;

    /// The client had an HTTP/2 connection to the front, which did not
    /// offer RFC 8441, and opened an HTTP/1.1 one for its WebSocket.
    #[test]
    fn a_browser_falling_back_to_http11() {
        let mut d = One::new::<H2NotOffered>(Config::default());
        let h2 = h2_conn("198.51.100.7:50000->10.0.0.1:443", false, 1.0, None);
        assert!(d.fact(Fact::H2Connection(&h2)).is_empty());
        let c = hop(1, "198.51.100.7:50002->10.0.0.1:443", request("GET", "/ws", Version::Http11, UPGRADE), 2.0)
            .answered(response(101, &[]), 2.1);
        let fs = d.exchange(&exchange(Some(1), Some(&c), None));
        assert_eq!(kinds(&fs), ["h2-websocket-not-offered"]);
        assert!(fs[0].message.contains("opened another connection (198.51.100.7:50002)"), "{}", fs[0].message);
        // Once per HTTP/2 connection.
        assert!(d.exchange(&exchange(Some(2), Some(&c), None)).is_empty());
    }

    /// A front that offers it is not reported.
    #[test]
    fn a_front_offering_rfc8441_is_fine() {
        let mut d = One::new::<H2NotOffered>(Config::default());
        let h2 = h2_conn("198.51.100.7:50000->10.0.0.1:443", true, 1.0, Some(5.0));
        assert!(d.fact(Fact::H2Connection(&h2)).is_empty());
        let c = hop(1, "198.51.100.7:50002->10.0.0.1:443", request("GET", "/ws", Version::Http11, UPGRADE), 2.0)
            .answered(response(101, &[]), 2.1);
        assert!(d.exchange(&exchange(Some(1), Some(&c), None)).is_empty());
    }
}
