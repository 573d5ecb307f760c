//! Precision on real proxy traffic (issue 10): the right finding, the right
//! blame and the right pairs for each class of traffic that was once
//! misread. Every capture here was recorded by captures/record.sh with the
//! real proxy (captures/README.md tells how, and what the client saw).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use serde_json::Value;

fn findings<'a>(rs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    of_type(rs, "finding").into_iter().filter(|f| f["kind"] == kind).collect()
}

fn text(name: &str, extra: &[&str]) -> String {
    let p = capture(name);
    let mut args = vec!["-r", p.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = wstap(&args);
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn server(flow: &Value) -> &str {
    flow.as_str().unwrap().split("->").nth(1).unwrap()
}

/// Class 1: nginx gives up at proxy_read_timeout and closes the upstream
/// connection first; the hanging backend answers with its FIN, which lands
/// before the 504 reaches the client. Who closed first decides.
#[test]
fn the_proxys_own_timeout_is_not_blamed_on_the_backend() {
    let rs = records("nginx-timeout-race");
    assert!(findings(&rs, "upstream-premature-close").is_empty());
    let f = findings(&rs, "upstream-timeout");
    assert_eq!(f.len(), 2);
    for f in &f {
        assert_eq!(f["detail"]["first_closed"], "proxy");
        assert_eq!(f["detail"]["proxy"], "nginx");
        let waited = f["detail"]["waited_s"].as_f64().unwrap();
        assert!((waited - 2.0).abs() < 0.1, "proxy_read_timeout 2s, waited {waited}");
        assert!(f["message"].as_str().unwrap().contains("nginx gave up after 2.0 s"), "{}", f["message"]);
    }
    for h in of_type(&rs, "handshake") {
        assert_eq!(server(&h["client"]["flow"]), "127.0.0.1:18221");
        assert_eq!(server(&h["upstream"]["flow"]), "127.0.0.1:13221");
        assert_eq!(h["paired_by"], "key");
        assert_eq!(h["client"]["status"], 504);
        assert_eq!(h["upstream"]["end"], "closed-by-client", "the proxy side closed first");
    }
    // What the real client saw: 504, twice.
    let saw: Vec<u64> = client_log("nginx-timeout-race")
        .iter()
        .filter(|e| e["event"] == "handshake")
        .filter_map(|e| e["status"].as_u64())
        .collect();
    assert_eq!(saw, [504, 504]);
    // The same rule on the earlier captures: the backend that closes on its
    // own is still the one blamed; the hang without the race still a timeout.
    let close = records("nginx-backend-close");
    assert_eq!(findings(&close, "upstream-premature-close")[0]["detail"]["first_closed"], "backend");
    let hang = records("nginx-backend-hang");
    assert_eq!(findings(&hang, "upstream-timeout")[0]["detail"]["first_closed"], "proxy");
}

/// Classes 2 and 4: Only the proxy->backend hop captured: the request line says
/// HTTP/1.0, so upstream-http10 is reported, tied to upgrade-headers-missing
/// as one fault (one block in text).
#[test]
fn http10_upstream_seen_from_the_upstream_hop_alone() {
    let rs = records("nginx-http10-upstream-only");
    let lead = findings(&rs, "upgrade-headers-missing");
    let http10 = findings(&rs, "upstream-http10");
    assert_eq!((lead.len(), http10.len()), (2, 2));
    for (l, h) in lead.iter().zip(&http10) {
        assert_eq!(l["fault"], h["fault"], "one fault");
        assert_eq!(l["primary"], true);
        assert_eq!(h["primary"], false);
        assert_eq!(l["also"], serde_json::json!(["upstream-http10"]));
        assert_eq!(server(&l["flows"][0]), "127.0.0.1:13223");
        assert!(l["message"].as_str().unwrap().contains("over HTTP/1.0"));
        assert!(l["fix"].as_str().unwrap().contains("HTTP/1.1"));
        // a proxy is shown to exist (HTTP/1.0 upgrade), but not named
        assert!(l["detail"]["proxy"].is_null());
        assert!(!l["detail"]["proxy_evidence"].as_array().unwrap().is_empty());
    }
    let faults: BTreeSet<u64> = of_type(&rs, "finding").iter().map(|f| f["fault"].as_u64().unwrap()).collect();
    assert_eq!(faults.len(), 2, "two handshakes, two faults");
    let t = text("nginx-http10-upstream-only", &[]);
    assert_eq!(t.matches(" ERROR ").count(), 1, "one block (the second handshake is the same group):\n{t}");
    assert!(!t.contains("ERROR upstream-http10"), "{t}");
    assert!(t.contains("same fault, also filed as: upstream-http10"), "{t}");
}

/// Class 4: nginx's bare proxy_pass: one handshake, one fault, one block, with
/// the location hint in it; JSON keeps both kinds tied by the fault id.
#[test]
fn one_fault_one_block() {
    for name in ["nginx-default", "nginx-wrong-location", "nginx-socketio-stuck"] {
        let rs = records(name);
        let stripped = findings(&rs, "upgrade-stripped");
        let http10 = findings(&rs, "upstream-http10");
        assert_eq!(stripped.len(), http10.len(), "{name}");
        for (s, h) in stripped.iter().zip(&http10) {
            assert_eq!(s["fault"], h["fault"], "{name}");
            assert_eq!((s["primary"].as_bool(), h["primary"].as_bool()), (Some(true), Some(false)), "{name}");
            assert_eq!(s["ts"], h["ts"], "{name}");
        }
        let t = text(name, &[]);
        assert!(!t.contains("ERROR upstream-http10"), "{name}:\n{t}");
        assert!(t.contains("same fault, also filed as: upstream-http10"), "{name}");
    }
    let rs = records("nginx-wrong-location");
    let s = findings(&rs, "upgrade-stripped");
    assert!(s[0]["message"].as_str().unwrap().contains("keep their headers"), "the location hint is in the one block");
}

/// Class 3: TLS front: each upstream request is paired with the client
/// connection whose encrypted request preceded it, one to one.
#[test]
fn tls_front_pairs_each_client_with_its_own_upstream_request() {
    let rs = records("nginx-tls-front");
    let pairs: Vec<(String, String)> = of_type(&rs, "handshake")
        .iter()
        .map(|h| {
            assert_eq!(h["client"]["encrypted"], true);
            assert_eq!(h["pair_confidence"], "high");
            let turn = h["client"]["request_ts"].as_f64().unwrap();
            let up = h["upstream"]["request_ts"].as_f64().unwrap();
            assert!(turn < up && up - turn < 1.0, "the encrypted request comes first: {turn} {up}");
            (h["client"]["flow"].as_str().unwrap().to_string(), h["upstream"]["flow"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("127.0.0.1:41786->127.0.0.1:18098".to_string(), "127.0.0.1:35890->127.0.0.1:13018".to_string()),
            ("127.0.0.1:41796->127.0.0.1:18098".to_string(), "127.0.0.1:35894->127.0.0.1:13018".to_string()),
        ]
    );
    // The sessions name the client hop the handshake names.
    for s in of_type(&rs, "session") {
        let h = of_type(&rs, "handshake").into_iter().find(|h| h["id"] == s["handshake"]).unwrap();
        assert_eq!(s["client_flow"], h["client"]["flow"]);
        assert_eq!(s["hops"][0]["encrypted"], true);
        assert_eq!(s["hops"][0]["closed_by"], "responder", "nginx closed the TLS connection");
    }
    assert!(!text("nginx-tls-front", &[]).contains("client not seen"));
    // Busier: four wss sessions and keep-alive https requests at once.
    let rs = records("nginx-tls-busy");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 4);
    let clients: BTreeSet<&str> = hs.iter().map(|h| h["client"]["flow"].as_str().unwrap()).collect();
    let ups: BTreeSet<&str> = hs.iter().map(|h| h["upstream"]["flow"].as_str().unwrap()).collect();
    assert_eq!((clients.len(), ups.len()), (4, 4), "one to one");
    for h in &hs {
        let turn = h["client"]["request_ts"].as_f64().unwrap();
        let up = h["upstream"]["request_ts"].as_f64().unwrap();
        assert!(turn < up && up - turn < 0.05, "{h}");
    }
    assert!(kinds(&rs, "error").is_empty() && kinds(&rs, "warning").is_empty());
}

/// Class 5: Records in packet-time order (a session by its end), in every
/// capture; a chain's hop 0 before its hop 1; text lines likewise.
#[test]
fn records_come_out_in_packet_time_order() {
    let dir = root().join("captures");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("pcap") {
            continue;
        }
        let rs = records_of(&p, &[]);
        let mut last = 0.0f64;
        for r in &rs {
            let t = match r["type"].as_str().unwrap() {
                "session" => r["end"].as_f64(),
                "summary" => None,
                _ => r["ts"].as_f64(),
            };
            if let Some(t) = t {
                assert!(t >= last, "{}: {} at {t} after {last}", p.display(), r["type"]);
                last = t;
            }
        }
        n += 1;
    }
    assert!(n >= 40);
    let rs = records("chain-haproxy-nginx");
    let hops: Vec<u64> = of_type(&rs, "handshake").iter().map(|h| h["hop_index"].as_u64().unwrap()).collect();
    assert_eq!(hops, [0, 1, 0, 1]);
    // Text: the finding about handshake #1 comes before handshake #2.
    let t = text("nginx-default", &[]);
    let (f, h2) = (t.find("ERROR upgrade-stripped").unwrap(), t.find("handshake #2").unwrap());
    assert!(f < h2, "{t}");
}

/// Class 6: Socket.IO under a rewritten prefix (/rt/ -> /socket.io/), the
/// websocket transport on its own connection: healthy, no finding; the
/// stuck one still reported, with its proxy named.
#[test]
fn socketio_through_a_rewritten_prefix() {
    let rs = records("nginx-socketio-prefix");
    assert!(of_type(&rs, "finding").is_empty(), "{:?}", of_type(&rs, "finding"));
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 2);
    for h in &hs {
        assert_eq!(h["path"], "/rt/");
        assert_eq!(h["outcome"], "upgraded");
        assert!(h["upstream"]["target"].as_str().unwrap().starts_with("/socket.io/?"));
    }
    let log = client_log("nginx-socketio-prefix");
    let finals: Vec<&str> =
        log.iter().filter(|e| e["event"] == "final_transport").map(|e| e["transport"].as_str().unwrap()).collect();
    assert_eq!(finals, ["websocket", "websocket"]);
    let rs = records("nginx-socketio-stuck");
    let f = findings(&rs, "socketio-no-upgrade");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["detail"]["proxy"], "nginx");
    assert_eq!(f[0]["detail"]["upgrade_attempts"], 1);
}

/// Class 7: caddy's reload: close 1001 from caddy itself to both legs, unmasked
/// to the backend, which answers 1002.
#[test]
fn a_close_started_by_the_proxy_and_its_protocol_violation() {
    let rs = records("caddy-reload");
    let ss = of_type(&rs, "session");
    assert_eq!(ss.len(), 3);
    for s in &ss {
        assert_eq!(s["close"]["by"], "proxy");
        assert_eq!(s["close"]["how"], "close-frame");
        assert_eq!(s["close"]["code"], 1001);
        let up = &s["hops"][1];
        assert_eq!(up["role"], "upstream");
        assert_eq!(up["close_frames"]["to_server"], 1001);
        assert_eq!(up["close_frames"]["to_client"], 1002);
        assert!(up["unmasked_client_frames"].as_u64().unwrap() >= 1);
    }
    let v = findings(&rs, "proxy-protocol-violation");
    assert_eq!(v.len(), 3);
    for f in &v {
        assert_eq!(f["severity"], "error");
        assert_eq!(f["detail"]["proxy"], "caddy");
        assert_eq!(f["detail"]["unmasked_to_backend"], 1);
        assert_eq!(f["detail"]["client_unmasked_frames"], 0);
        assert_eq!(f["detail"]["backend_close"]["code"], 1002);
        assert_eq!(f["detail"]["proxy_close"]["code"], 1001);
        assert!(f["message"].as_str().unwrap().contains("RFC 6455 5.1"));
    }
    let m = findings(&rs, "mass-close");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["detail"]["count"], 3);
    assert_eq!(m[0]["detail"]["close_frames_by_proxy"], true);
    // What the clients saw: 1001 with a close frame, three times.
    let codes: Vec<u64> = client_log("caddy-reload")
        .iter()
        .filter(|e| e["event"] == "closed")
        .filter_map(|e| e["code"].as_u64())
        .collect();
    assert_eq!(codes, [1001, 1001, 1001]);
    // An end-to-end close is never the proxy's.
    for name in ["nginx-healthy", "haproxy-healthy", "caddy-healthy", "lighttpd-healthy", "apache-healthy"] {
        for s in of_type(&records(name), "session") {
            assert_eq!(s["close"]["by"], "client", "{name}");
        }
    }
}

/// Class 8: lighttpd recognised (X-Host on the forwarded request) and given its
/// directive; healthy lighttpd gives nothing.
#[test]
fn lighttpd_is_recognised_with_its_directive() {
    let rs = records("lighttpd-stripped");
    let f = findings(&rs, "upgrade-stripped");
    assert_eq!(f.len(), 2);
    for f in f {
        assert_eq!(f["detail"]["proxy"], "lighttpd");
        assert!(f["fix"].as_str().unwrap().contains(r#"proxy.header = ( "upgrade" => "enable" )"#));
        let ev: Vec<&str> =
            f["detail"]["proxy_evidence"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(ev.iter().any(|e| e.contains("X-Host")), "{ev:?}");
        assert!(ev.iter().any(|e| e.contains("two hops paired")), "{ev:?}");
    }
    let rs = records("lighttpd-healthy");
    assert!(of_type(&rs, "finding").is_empty());
    assert!(of_type(&rs, "handshake").iter().all(|h| h["paired_by"] == "key" && h["outcome"] == "upgraded"));
}

/// Class 9: No proxy named without evidence of one: a direct capture (recorded,
/// and Zeek's), lower-case headers and no Server header notwithstanding.
#[test]
fn no_proxy_is_named_without_evidence() {
    let zeek = root().join("tests/data/peers/zeek/websocket_wrong-accept-header.pcap");
    for rs in [records("direct-bad-accept"), records_of(&zeek, &[])] {
        let f = findings(&rs, "bad-accept");
        assert_eq!(f.len(), 1);
        assert!(f[0]["detail"]["proxy"].is_null());
        assert_eq!(f[0]["detail"]["proxy_evidence"], serde_json::json!([]));
        assert!(!f[0]["message"].as_str().unwrap().contains("proxy"), "{}", f[0]["message"]);
    }
    assert!(text("direct-bad-accept", &[]).contains("bad-accept /ws (no proxy seen)"));
    let t = String::from_utf8(wstap(&["-r", zeek.to_str().unwrap()]).stdout).unwrap();
    assert!(t.contains("(no proxy seen)") && !t.contains("via haproxy"), "{t}");
    // No finding on any direct capture of the peers corpus names a proxy.
    for e in std::fs::read_dir(root().join("tests/data/peers/zeek")).unwrap() {
        let p = e.unwrap().path();
        if !matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")) {
            continue;
        }
        for f in of_type(&records_of(&p, &[]), "finding") {
            assert!(f["detail"]["proxy"].is_null(), "{}: {f}", p.display());
        }
    }
    // Where a proxy is named, the finding says what named it.
    let mut named = BTreeMap::new();
    for (name, proxy) in [
        ("nginx-default", "nginx"),
        ("haproxy-stripped", "haproxy"),
        ("apache-stripped", "apache"),
        ("caddy-stripped", "caddy"),
        ("lighttpd-stripped", "lighttpd"),
    ] {
        for f in of_type(&records(name), "finding") {
            assert_eq!(f["detail"]["proxy"], proxy, "{name}");
            let ev = f["detail"]["proxy_evidence"].as_array().unwrap();
            assert!(ev.len() >= 2, "{name}: existence and name: {ev:?}");
            named.insert(name, ev.clone());
        }
    }
    assert_eq!(named.len(), 5);
}
