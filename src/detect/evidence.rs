//! Evidence attached to findings: both hops' headers, the header diff
//! between them, what the client saw. All values pass through redaction.

use base64::Engine;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::facts::{Exchange, HopRequest};
use crate::proto::{Headers, Request};
use crate::redact::Redactor;

/// RFC 6455 4.2.2: the Sec-WebSocket-Accept a server must send for `key`.
pub fn expected_accept(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn pairs(h: &Headers, r: Redactor) -> Value {
    Value::Array(h.iter().map(|(n, v)| json!([n, r.header(n, v)])).collect())
}

/// One hop as evidence: request line, every header, the response.
pub fn hop(t: &HopRequest, r: Redactor) -> Value {
    json!({
        "flow": t.flow,
        "request_line": format!("{} {} {}", t.req.method, r.target(&t.req.target), t.req.version),
        "request": pairs(&t.req.headers, r),
        "status": t.status(),
        "response": t.resp.as_ref().map(|x| pairs(&x.headers, r)),
        "end": t.how_ended(),
    })
}

/// What a finding about an exchange quotes: both hops (request line, every
/// header, the response), their difference, what the client saw, the TLS
/// of the client hop.
pub fn exchange(x: &Exchange<'_>, r: Redactor) -> Value {
    let mut d = json!({
        "handshake": x.handshake,
        "hops": {
            "client": x.client.map(|c| hop(c, r)),
            "upstream": x.upstream.map(|u| hop(u, r)),
        },
        "client_saw": x.client.map(saw),
    });
    if let (Some(c), Some(u)) = (x.client, x.upstream) {
        d["diff"] = Value::Array(diff(&c.req, &u.req, r));
    }
    if let Some(c) = x.client
        && let Some(t) = &c.tls
    {
        d["hops"]["client"]["tls"] = json!(crate::record::TlsHop::of(Some(t), None));
    }
    if let Some(tf) = x.tls_front {
        d["hops"]["client"] = json!({"flow": tf.flow, "encrypted": true, "sni": tf.sni,
            "tls": crate::record::TlsHop::of(tf.tls.as_deref(), tf.sni.as_deref())});
    }
    d
}

/// What the client got on this hop, in words.
pub fn saw(t: &HopRequest) -> String {
    match (&t.resp, t.end) {
        (Some(r), _) => format!("{} {}", r.status, r.reason).trim().to_string(),
        (None, Some((_, e))) => format!("no response ({})", e.name()),
        (None, None) => match t.how_ended() {
            Some(e) => format!("no response ({e})"),
            None => "no response yet".into(),
        },
    }
}

/// Headers that matter to an upgrade, compared between hops.
pub const COMPARED: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
    "Origin",
    "Host",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "Forwarded",
];

/// Upgrade/Connection are token lists compared case-insensitively; only
/// the token that matters (websocket, upgrade) decides "mangled".
pub fn change(name: &str, c: Option<&str>, u: Option<&str>) -> Option<&'static str> {
    match (c, u) {
        (None, None) => None,
        (Some(_), None) => Some("missing"),
        (None, Some(_)) => Some("added"),
        (Some(a), Some(b)) => {
            let token = match name {
                "Upgrade" => Some("websocket"),
                "Connection" => Some("upgrade"),
                _ => None,
            };
            match token {
                Some(t) => {
                    let has = |v: &str| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t));
                    if has(a) && !has(b) {
                        Some("mangled")
                    } else if a.eq_ignore_ascii_case(b) || (has(a) && has(b)) {
                        None
                    } else {
                        Some("changed")
                    }
                }
                None if a == b => None,
                None => Some("changed"),
            }
        }
    }
}

/// Differences between the client's request and the forwarded one.
pub fn diff(c: &Request, u: &Request, r: Redactor) -> Vec<Value> {
    if c.is_h2() && !u.is_h2() {
        return h2_diff(c, u, r);
    }
    let mut out = Vec::new();
    if c.version != u.version {
        out.push(json!({"header": "HTTP version", "client": c.version.as_str(), "upstream": u.version.as_str(), "change": "changed"}));
    }
    compare(c, u, r, COMPARED, &mut out);
    out
}

/// A diff row for each header of `names` whose value changed between the
/// hops (values redacted).
fn compare<'n>(
    c: &Request,
    u: &Request,
    r: Redactor,
    names: impl IntoIterator<Item = &'n &'n str>,
    out: &mut Vec<Value>,
) {
    for name in names {
        let a = c.headers.joined(name);
        let b = u.headers.joined(name);
        if let Some(ch) = change(name, a.as_deref(), b.as_deref()) {
            out.push(json!({
                "header": name,
                "client": a.map(|v| r.header(name, &v)),
                "upstream": b.map(|v| r.header(name, &v)),
                "change": ch,
            }));
        }
    }
}

/// What became of `:protocol` in an HTTP/1.1 header: `translated` when the
/// forward carries its meaning (`right`), `missing` when the header is
/// absent, `mangled` when wrong, `added` when the client asked nothing;
/// None when neither side has anything.
fn translation(protocol: bool, right: bool, present: bool) -> Option<&'static str> {
    match (protocol, right) {
        (true, true) => Some("translated"),
        (true, false) if !present => Some("missing"),
        (true, false) => Some("mangled"),
        (false, true) => Some("added"),
        (false, false) => None,
    }
}

/// The differences between an HTTP/2 client request and the HTTP/1.1
/// request the proxy made of it: `:protocol` against Upgrade/Connection,
/// `:authority` against Host, then the headers compared for any hop.
fn h2_diff(c: &Request, u: &Request, r: Redactor) -> Vec<Value> {
    let mut out = vec![
        json!({"header": "HTTP version", "client": c.version.as_str(), "upstream": u.version.as_str(), "change": "translated"}),
    ];
    let proto = c.headers.get(":protocol");
    let up = u.headers.joined("upgrade");
    let conn = u.headers.joined("connection");
    let ws = up.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("websocket")));
    let has_upgrade = conn.as_deref().is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    if let Some(ch) = translation(proto.is_some(), ws, up.is_some()) {
        out.push(json!({"header": "Upgrade", "client": proto.map(|p| format!(":protocol {p}")), "upstream": up, "change": ch}));
    }
    if let Some(ch) = translation(proto.is_some(), has_upgrade, conn.is_some()) {
        out.push(json!({"header": "Connection", "client": proto.map(|_| "(CONNECT)"), "upstream": conn, "change": ch}));
    }
    if let Some(k) = u.headers.get("sec-websocket-key") {
        out.push(json!({"header": "Sec-WebSocket-Key", "client": null, "upstream": r.header("sec-websocket-key", k), "change": "made up by the proxy"}));
    }
    let auth = c.headers.get(":authority");
    let host = u.headers.get("host");
    if auth.is_some() || host.is_some() {
        let ch = match (auth, host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => "translated",
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "missing",
            _ => "added",
        };
        out.push(json!({"header": "Host", "client": auth.map(|a| format!(":authority {a}")), "upstream": host, "change": ch}));
    }
    let rest = COMPARED.iter().filter(|n| !matches!(**n, "Upgrade" | "Connection" | "Host" | "Sec-WebSocket-Key"));
    compare(c, u, r, rest, &mut out);
    out
}

pub use crate::facts::{UpgradeHeaders, upgrade_headers};

/// A complete RFC 6455 upgrade request: what a backend needs to say 101.
pub fn complete_upgrade(r: &Request) -> bool {
    upgrade_headers(r).intact()
        && r.version == crate::proto::Version::Http11
        && r.headers.has("sec-websocket-key")
        && r.headers.has("sec-websocket-version")
}

/// Headers only a proxy adds: a request that has them came through one.
pub fn has_proxy_headers(r: &Request) -> bool {
    ["x-forwarded-for", "x-real-ip", "forwarded", "via", "x-forwarded-proto", "x-forwarded-host"]
        .iter()
        .any(|h| r.headers.has(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Version;

    fn req(v: Version, h: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            target: "/ws".into(),
            version: v,
            headers: Headers::from_pairs(h.iter().copied()),
            head_len: 0,
        }
    }

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(expected_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn stripped_and_mangled_headers() {
        let r = Redactor { enabled: true };
        let c =
            req(Version::Http11, &[("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"), ("Cookie", "s=1")]);
        let u = req(Version::Http10, &[("Connection", "close"), ("Cookie", "s=1")]);
        let d = diff(&c, &u, r);
        let rows: Vec<(&str, &str)> =
            d.iter().map(|x| (x["header"].as_str().unwrap(), x["change"].as_str().unwrap())).collect();
        assert_eq!(rows, [("HTTP version", "changed"), ("Upgrade", "missing"), ("Connection", "mangled")]);
        let uh = upgrade_headers(&u);
        assert_eq!(uh.missing, ["Upgrade"]);
        assert_eq!(uh.describe(), "without Upgrade and with Connection: close");
        let typo = req(Version::Http11, &[("Upgrade", "upgrade"), ("Connection", "upgrade")]);
        assert_eq!(upgrade_headers(&typo).mangled[0].0, "Upgrade");
        assert!(!complete_upgrade(&typo));
        // Case and token order do not matter.
        let same = req(Version::Http11, &[("Upgrade", "WebSocket"), ("Connection", "upgrade")]);
        assert!(diff(&c, &same, r).is_empty());
    }
}
