//! `forwarded-proto-missing`: the client hop was TLS (or said it was, with
//! X-Forwarded-Proto) but the request the proxy forwarded does not tell the
//! backend, which then believes the client used plain ws://.

use super::{Config, Context, Detector, Finding, FindingKind, Severity, about, evidence};
use crate::facts::{Fact, HopRequest};
use crate::flow::FlowKey;

pub struct ForwardedProto;

impl Detector for ForwardedProto {
    fn new(_: &Config) -> ForwardedProto {
        ForwardedProto
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::ForwardedProtoMissing]
    }

    /// A WebSocket upgrade whose forwarded request is in view.
    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        let Fact::Exchange(x) = fact else { return };
        let Some(u) = x.upstream.filter(|_| x.is_websocket()) else { return };
        let c = x.client;
        let told = |t: &HopRequest| {
            t.req.headers.has("x-forwarded-proto")
                || t.req.headers.tokens("forwarded").any(|v| v.to_ascii_lowercase().contains("proto="))
        };
        // The client hop was TLS: undecrypted (inferred), or decrypted.
        let tls = x.tls_front.is_some() || c.is_some_and(|c| c.tls.is_some());
        let relayed = c.is_some_and(told) && c.is_none_or(|c| c.tls.is_none());
        if (tls || relayed) && !told(u) {
            let why = if tls { "the client hop is TLS (wss)" } else { "the client request carried X-Forwarded-Proto" };
            let msg = format!(
                "{why} but {} forwarded {} {} to {} without X-Forwarded-Proto: the backend believes the client used plain ws:// (Origin checks, redirects and cookies can break)",
                cx.here().name(),
                u.req.method,
                x.path,
                u.flow.dst
            );
            let mut fl: Vec<FlowKey> = [c, Some(u)].into_iter().flatten().map(|t| t.flow).collect();
            if let Some(tf) = x.tls_front {
                fl.insert(0, tf.flow);
            }
            out.push(about(
                x,
                cx,
                FindingKind::ForwardedProtoMissing,
                Severity::Warning,
                fl,
                msg,
                evidence::exchange(x, cx.redact),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::ForwardedProto;
    use crate::proto::Version;

    /// A TLS client hop (inferred from the other side) and a forward that
    /// does not say so: the TLS hop's flow comes first.
    #[test]
    fn a_tls_client_hop_needs_x_forwarded_proto() {
        let u = hop(2, "10.0.0.1:40000->10.0.0.2:3000", request("GET", "/ws", Version::Http11, UPGRADE), 1.01)
            .answered(response(101, &[]), 1.09);
        let front = tls_front("198.51.100.7:51000->10.0.0.1:443");
        let mut x = exchange(Some(1), None, Some(&u));
        x.tls_front = Some(&front);
        let mut d = One::new::<ForwardedProto>(Config::default());
        let fs = d.exchange(&x);
        assert_eq!(kinds(&fs), ["forwarded-proto-missing"]);
        assert_eq!(fs[0].flows, [front.flow, u.flow]);
        assert!(fs[0].message.starts_with("the client hop is TLS (wss)"));

        let mut h = UPGRADE.to_vec();
        h.push(("X-Forwarded-Proto", "https"));
        let told = hop(3, "10.0.0.1:40002->10.0.0.2:3000", request("GET", "/ws", Version::Http11, &h), 2.0)
            .answered(response(101, &[]), 2.1);
        let mut x = exchange(Some(2), None, Some(&told));
        x.tls_front = Some(&front);
        assert!(d.exchange(&x).is_empty());
    }
}
