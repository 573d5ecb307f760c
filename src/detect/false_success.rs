//! `false-upgrade-success`: WebSockets across the protocol change at a
//! proxy. An HTTP/2 client hop (RFC 8441 extended CONNECT, success = 2xx)
//! forwarded as an HTTP/1.1 upgrade (success = 101): the client's stream
//! was answered 2xx (which RFC 8441 reads as success: the browser fires
//! `onopen`) while the backend did not switch protocols (it answered a
//! plain 200, its body relayed as DATA): the browser then gets bytes that
//! are not WebSocket frames and the stream ends (1006, no message ever).
//! Decided from both hops, or from the client hop alone when its 2xx
//! carries a body (Content-Length / Content-Type: a plain response passed
//! off as an accepted tunnel).
//!
//! The other findings about such an exchange (the upgrade stripped, the
//! backend's refusal) explain it: they are filed under it, one fault, so
//! this detector comes after theirs.

use serde_json::{Value, json};

use super::{Config, Context, Detector, Finding, FindingKind, Severity, about, evidence};
use crate::facts::{Exchange, Fact, HopRequest};
use crate::redact::Redactor;

pub struct FalseSuccess;

/// A 2xx that carries a body: a plain response, not an accepted tunnel.
fn plain_body(t: &HopRequest) -> Option<(Option<String>, Option<u64>)> {
    let r = t.resp.as_deref()?;
    let ctype = r.headers.get("content-type").map(str::to_string);
    let len = r.headers.content_length();
    (ctype.is_some() || len.is_some_and(|l| l > 0)).then_some((ctype, len))
}

/// The client hop is an HTTP/2 extended CONNECT answered 2xx.
fn accepted_h2(t: &HopRequest) -> bool {
    t.req.is_extended_connect() && t.upgraded()
}

impl Detector for FalseSuccess {
    fn new(_: &Config) -> FalseSuccess {
        FalseSuccess
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::FalseUpgradeSuccess]
    }

    /// `fs` are the findings already made for this exchange (the usual
    /// ones), tied to the false success when it explains them.
    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, fs: &mut Vec<Finding>) {
        let Fact::Exchange(x) = fact else { return };
        if !x.is_websocket() {
            return;
        }
        let Some(c) = x.client.filter(|c| c.req.is_h2()) else { return };
        if !accepted_h2(c) {
            return;
        }
        let body = plain_body(c);
        let pname = cx.here().name();
        let stream = c.stream().unwrap_or(0);
        let status = c.status().unwrap_or(0);
        let (msg, mut d) = match x.upstream {
            Some(u) if !u.upgraded() => {
                let what = match u.status() {
                    Some(s) => format!(
                        "the backend at {} answered {} {}",
                        u.flow.dst,
                        s,
                        evidence::saw(u).trim_start_matches(&s.to_string()).trim()
                    ),
                    None => format!("the backend at {} never switched protocols ({})", u.flow.dst, evidence::saw(u)),
                };
                let stripped = !u.upgrade().intact();
                (
                    format!(
                        "false WebSocket success on {}: {pname} forwarded the HTTP/2 extended CONNECT (stream {stream}) as GET {}{}; {what}, not 101, yet {pname} relayed :status {status} to the client, which RFC 8441 reads as success: the browser fired onopen, then got the plain response body as DATA instead of WebSocket frames and the stream ended (1006, no message ever)",
                        x.path,
                        u.req.path(),
                        if stripped { format!(" {}", u.upgrade().describe()) } else { String::new() },
                    ),
                    json!({"backend_status": u.status(), "upgrade_stripped": stripped}),
                )
            }
            None if body.is_some() => (
                format!(
                    "false WebSocket success on {}: the HTTP/2 extended CONNECT (stream {stream}) was answered :status {status} with a body ({}), a plain HTTP response passed off as an accepted WebSocket: the browser fired onopen, then got that body as DATA instead of WebSocket frames (1006, no message ever); the backend did not switch protocols (its hop is not in this capture)",
                    x.path,
                    describe_body(&body)
                ),
                json!({"backend_status": null}),
            ),
            _ => return,
        };
        let mut dd = detail(x, cx.redact);
        if let (Value::Object(a), Value::Object(b)) = (&mut dd, &mut d) {
            a.append(b);
        }
        d = dd;
        d["stream_id"] = json!(stream);
        d["client_status"] = json!(status);
        if let Some((ctype, len)) = &body {
            d["client_body"] = json!({"content_type": ctype, "content_length": len});
        }
        let mut fl = vec![c.flow];
        if let Some(u) = x.upstream {
            fl.push(u.flow);
        }
        let mut lead = about(x, cx, FindingKind::FalseUpgradeSuccess, Severity::Error, fl, msg, d);
        // The usual findings explain it (the upgrade stripped, the backend
        // refusing): one fault, the false success first.
        for f in fs.iter_mut().filter(|f| f.primary && f.kind != FindingKind::ForwardedProtoMissing) {
            lead.tie(f);
        }
        fs.insert(0, lead);
    }
}

/// Both hops as they crossed, their difference, what the client saw.
fn detail(x: &Exchange<'_>, r: Redactor) -> Value {
    let mut d = json!({
        "handshake": x.handshake,
        "hops": {
            "client": x.client.map(|c| evidence::hop(c, r)),
            "upstream": x.upstream.map(|u| evidence::hop(u, r)),
        },
        "client_saw": x.client.map(evidence::saw),
    });
    if let (Some(c), Some(u)) = (x.client, x.upstream) {
        d["diff"] = Value::Array(evidence::diff(&c.req, &u.req, r));
    }
    d
}

fn describe_body(b: &Option<(Option<String>, Option<u64>)>) -> String {
    match b {
        Some((Some(t), Some(l))) => format!("Content-Type {t}, {l} bytes"),
        Some((Some(t), None)) => format!("Content-Type {t}"),
        Some((None, Some(l))) => format!("{l} bytes"),
        _ => "a body".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Config, Detectors, handshake::Handshake};
    use super::FalseSuccess;
    use crate::proto::Version;
    use crate::record::FindingKind;

    /// HAProxy bridging: the client's stream got 200, the backend a plain
    /// GET without the upgrade headers and answered 200. The usual finding
    /// (the upgrade stripped) is filed under the false success, which leads.
    #[test]
    fn a_2xx_to_the_client_while_the_backend_did_not_switch() {
        let cfg = Config::default();
        let mut run = One(Detectors {
            list: vec![
                Box::new(<Handshake as super::Detector>::new(&cfg)),
                Box::new(<FalseSuccess as super::Detector>::new(&cfg)),
            ],
            cx: super::Context::new(&cfg),
        });
        let c = hop(
            1,
            "198.51.100.7:50000->10.0.0.1:443",
            request("CONNECT", "/ws", Version::Http2, &[(":protocol", "websocket"), (":authority", "app.example")]),
            1.0,
        )
        .answered(response(200, &[("content-type", "text/html")]), 1.1);
        let u = hop(
            2,
            "10.0.0.1:40000->10.0.0.2:3000",
            request("GET", "/ws", Version::Http11, &[("host", "app.example")]),
            1.01,
        )
        .forwarded()
        .answered(response(200, &[("Content-Type", "text/html")]), 1.09);
        let fs = run.exchange(&exchange(Some(1), Some(&c), Some(&u)));
        assert_eq!(kinds(&fs), ["false-upgrade-success", "upgrade-stripped"]);
        assert!(fs[0].primary && !fs[1].primary);
        assert_eq!(fs[0].also, [FindingKind::UpgradeStripped]);
        assert!(fs[0].message.contains("the browser fired onopen"), "{}", fs[0].message);
        assert_eq!(fs[0].detail["upgrade_stripped"], true);
    }
}
