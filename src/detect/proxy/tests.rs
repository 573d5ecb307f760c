//! Recognition across products, and what every product owes every kind.
//! Each product's own recognition and fixes are tested in its file.

use super::*;
use crate::proto::{Headers, Version};

pub fn resp(h: &[(&str, &str)]) -> Response {
    Response {
        version: Version::Http11,
        status: 502,
        reason: String::new(),
        headers: Headers::from_pairs(h.iter().copied()),
        head_len: 0,
    }
}

pub fn req(h: &[(&str, &str)]) -> Request {
    Request {
        method: "GET".into(),
        target: "/ws".into(),
        version: Version::Http11,
        headers: Headers::from_pairs(h.iter().copied()),
        head_len: 0,
    }
}

/// The product recognised, by name.
pub fn named(c: Option<&Request>, r: Option<&Response>, f: Option<&Request>) -> Option<&'static str> {
    recognise(c, r, f).map(|x| x.0.name())
}

/// The product named by a forwarded request alone, by name.
pub fn forwarded(q: &Request) -> Option<&'static str> {
    forwarded_signature(q).map(|x| x.0.name())
}

pub fn cx() -> FixContext<'static> {
    FixContext { path: "/ws", boundary_s: Some(60.0), status: None }
}

#[test]
fn evidence_says_what_named_it() {
    assert_eq!(named(None, Some(&resp(&[("Server", "Python/3.11 websockets/17")])), None), None);
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
    assert_eq!(forwarded(&req(&[("X-Forwarded-For", "10.0.0.1")])), None);
}

/// A request through two proxies carries both's headers: one product's
/// own headers name it before headers several products add.
#[test]
fn unique_signatures_before_shared_ones() {
    let envoy_then_apache = req(&[("x-envoy-internal", "true"), ("X-Forwarded-Server", "a")]);
    assert_eq!(forwarded(&envoy_then_apache), Some("envoy"));
    let traefik_then_lighttpd = req(&[
        ("X-Forwarded-Server", "t"),
        ("X-Real-Ip", "10.0.0.1"),
        ("X-Forwarded-Port", "443"),
        ("X-Host", "example.com"),
    ]);
    assert_eq!(forwarded(&traefik_then_lighttpd), Some("traefik"));
    let apache_and_lighttpd = req(&[("X-Forwarded-Server", "a"), ("X-Host", "example.com")]);
    assert_eq!(forwarded(&apache_and_lighttpd), Some("apache"));
}

/// `--proxy` takes exactly the products wstap knows, in their order, and
/// a finding through an unrecognised proxy reads "the proxy".
#[test]
fn the_command_line_names_the_known_products() {
    use clap::ValueEnum;
    let names: Vec<&str> = Proxy::value_variants().iter().map(|p| p.name()).collect();
    assert_eq!(names, ["nginx", "haproxy", "apache", "envoy", "caddy", "lighttpd", "traefik"]);
    assert_eq!(Proxy::from_str("lighttpd", true).unwrap(), Proxy::named("lighttpd").unwrap());
    assert!(Proxy::from_str("squid", true).is_err());
    assert_eq!(Proxy::UNKNOWN.name(), "the proxy");
    assert!(!Proxy::UNKNOWN.is_known());
}

/// Every product has a fix for every kind (the compiler checks the
/// `match`; this checks none is empty), and only the warning about a
/// timeout to come has none.
#[test]
fn every_product_has_a_fix_for_every_kind() {
    for p in KNOWN.iter().copied().chain([Proxy::UNKNOWN]) {
        for &k in FindingKind::ALL {
            let f = fix(k, p, &cx());
            if k == FindingKind::IdleTimeoutImminent {
                assert!(f.is_none(), "{p:?} {k}");
            } else {
                assert!(f.is_some_and(|f| !f.trim().is_empty()), "{p:?} has no fix for {k}");
            }
        }
    }
}

#[test]
fn fixes_scale_with_the_boundary() {
    let c = FixContext { path: "/ws", boundary_s: Some(90.0), status: None };
    assert_eq!((c.keep(), c.heartbeat()), (3600, 45));
    let c = FixContext { path: "/ws", boundary_s: Some(600.0), status: None };
    assert_eq!((c.keep(), c.heartbeat()), (6000, 300));
    let c = FixContext { path: "/ws", boundary_s: None, status: None };
    assert_eq!((c.keep(), c.heartbeat()), (3600, 30));
}
