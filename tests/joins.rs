//! Records join with other logs: the client address and port a handshake
//! carries are the ones the real client logged as its own (what the proxy
//! logs as `$remote_addr:$remote_port`), and request ids the proxy added
//! appear on the records of the request they travelled with.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

/// Every bundled capture whose client logged its local address: the
/// addresses its handshakes went out from are the records' remote
/// address and port, one for one.
#[test]
fn remote_addr_and_port_are_the_clients_own() {
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("captures")).unwrap() {
        let log = entry.unwrap().path();
        let Some(name) = log.file_name().unwrap().to_str().unwrap().strip_suffix(".client.jsonl") else { continue };
        let events: Vec<Value> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["event"] == "handshake")
            .collect();
        // The client logs its address for the upgrades that succeeded.
        // (Its log writes an IPv6 address without brackets: the port is
        // after the last colon.)
        let theirs: BTreeSet<(String, u64)> = events
            .iter()
            .filter_map(|e| e["local"].as_str()?.rsplit_once(':').map(|(a, p)| (a.to_string(), p.parse().unwrap())))
            .collect();
        if theirs.is_empty() || log.with_file_name(format!("{name}.keys")).exists() {
            continue;
        }
        let rs = records(name);
        let ours: BTreeSet<(String, u64)> = of_type(&rs, "handshake")
            .iter()
            .filter(|h| h["remote_from"] == "capture")
            .map(|h| (h["remote_addr"].as_str().unwrap().to_string(), h["remote_port"].as_u64().unwrap()))
            .collect();
        // A chain's second record names the first proxy as its client:
        // the client's own addresses are the records at hop 0.
        let front: BTreeSet<(String, u64)> = of_type(&rs, "handshake")
            .iter()
            .filter(|h| h["hop_index"] == 0 && h["remote_from"] == "capture")
            .map(|h| (h["remote_addr"].as_str().unwrap().to_string(), h["remote_port"].as_u64().unwrap()))
            .collect();
        assert!(ours.is_superset(&front));
        assert!(theirs.is_subset(&front), "{name}: the client's own addresses {theirs:?}, the records' {front:?}");
        let upgraded: BTreeSet<String> = of_type(&rs, "handshake")
            .iter()
            .filter(|h| h["hop_index"] == 0 && h["outcome"] == "upgraded")
            .map(|h| format!("{}:{}", h["remote_addr"], h["remote_port"]))
            .collect();
        assert_eq!(upgraded.len(), theirs.len(), "{name}: one client address per upgrade");
        // The session of each upgrade carries its handshake's.
        for s in of_type(&rs, "session") {
            let h = of_type(&rs, "handshake").into_iter().find(|h| h["id"] == s["handshake"]).unwrap();
            assert_eq!((&s["remote_addr"], &s["remote_port"]), (&h["remote_addr"], &h["remote_port"]), "{name}");
        }
        checked += theirs.len();
    }
    assert!(checked >= 50, "{checked} client addresses checked");
}

/// HAProxy adds `X-Request-ID` (its `unique-id-header`) to what it
/// forwards: the handshake, its upstream hop and its session carry the
/// same id, and each request's id is its own.
#[test]
fn a_request_id_the_proxy_added_is_on_the_handshake_and_its_session() {
    let keys = root().join("captures/haproxy-h2.keys");
    let rs = records_of(&capture("haproxy-h2"), &["--keylog", keys.to_str().unwrap()]);
    let hs = of_type(&rs, "handshake");
    assert!(!hs.is_empty());
    let mut ids = BTreeSet::new();
    for h in &hs {
        let id = h["request_ids"]["x-request-id"].as_str().expect("an id on every handshake");
        assert_eq!(h["upstream"]["request_ids"]["x-request-id"], id, "the forwarded request carried it");
        assert!(ids.insert(id.to_string()), "ids are per request: {id} twice");
    }
    for s in of_type(&rs, "session") {
        let h = hs.iter().find(|h| h["id"] == s["handshake"]).unwrap();
        assert_eq!(s["request_ids"], h["request_ids"]);
    }
    // Captures without ids have no `request_ids` at all.
    let rs = records("nginx-healthy");
    assert!(rs.iter().all(|r| r.get("request_ids").is_none()));
}

/// The summary names the contract's version and, for a file, no host.
#[test]
fn the_summary_names_its_schema_and_host() {
    let rs = records("nginx-healthy");
    let s = summary(&rs);
    assert_eq!(s["schema"], "1.2");
    assert!(s["host"].is_null(), "a pcap file records no host name");
    assert!(s.get("system").is_none(), "classic pcap says nothing of its system");
    let doc = std::fs::read_to_string(root().join("docs/json.md")).unwrap();
    assert!(doc.contains(&format!("| `{}` |", s["schema"].as_str().unwrap())), "docs/json.md lists this version");
}

/// nginx's own access log (recorded with the capture: client address and
/// port, `$request_id`, the client's traceparent) joins wstap's records:
/// each handshake and its session find exactly their line.
#[test]
fn records_join_nginx_access_log_lines() {
    let log = std::fs::read_to_string(root().join("captures/nginx-request-id.access.log")).unwrap();
    // "127.0.0.1:40742 4ad5... \"00-4bf9...-01\" 101 \"GET /ws HTTP/1.1\""
    let lines: Vec<(String, String, String, String)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            let status = f[3].split(' ').next().unwrap().to_string();
            (f[0].to_string(), f[1].to_string(), f[2].trim_matches('"').to_string(), status)
        })
        .collect();
    let ws: Vec<_> = lines.iter().filter(|l| l.3 == "101").collect();
    assert_eq!(ws.len(), 3, "{log}");
    let rs = records("nginx-request-id");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 3);
    for h in &hs {
        let addr = format!("{}:{}", h["remote_addr"].as_str().unwrap(), h["remote_port"]);
        let ids = &h["request_ids"];
        let line = ws.iter().find(|l| l.0 == addr).unwrap_or_else(|| panic!("no access log line for {addr}:\n{log}"));
        assert_eq!(ids["x-request-id"], line.1.as_str(), "nginx's $request_id, as it forwarded it");
        assert_eq!(h["upstream"]["request_ids"]["x-request-id"], line.1.as_str());
        assert!(h["client"]["request_ids"].get("x-request-id").is_none(), "the client sent none");
        assert_eq!(ids["traceparent"], line.2.as_str(), "the client's traceparent, as nginx logged it");
        let s = of_type(&rs, "session").into_iter().find(|s| s["handshake"] == h["id"]).unwrap();
        assert_eq!(
            (&s["remote_addr"], &s["remote_port"], &s["request_ids"]),
            (&h["remote_addr"], &h["remote_port"], ids)
        );
    }
    // The plain request is not a handshake, and its line names no record.
    assert_eq!(lines.iter().filter(|l| l.3 == "200").count(), 1);
}

/// Text output shows what joins a record to nginx's access log where a
/// reader looks for it: each handshake line and its session line end with
/// the request ids nginx logged (the address read from the capture is
/// the client flow's source, already on the line).
#[test]
fn text_lines_carry_the_ids_of_the_access_log() {
    let log = std::fs::read_to_string(root().join("captures/nginx-request-id.access.log")).unwrap();
    let out = wstap(&["-r", capture("nginx-request-id").to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for l in log.lines().filter(|l| l.contains("\" 101 \"")) {
        let f: Vec<&str> = l.splitn(4, ' ').collect();
        let (addr, id, trace) = (f[0], f[1], f[2].trim_matches('"'));
        for what in ["handshake #", "session #"] {
            let line = text
                .lines()
                .find(|t| t.contains(what) && t.contains(&format!("{addr}->")))
                .unwrap_or_else(|| panic!("no {what} line for {addr}:\n{text}"));
            assert!(
                line.ends_with(&format!(" | traceparent {trace}, x-request-id {id}")),
                "{what} line for {addr} lacks its ids: {line}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    // Records without ids keep their lines as they were.
    let out = wstap(&["-r", capture("nginx-healthy").to_str().unwrap()]);
    assert!(!String::from_utf8(out.stdout).unwrap().contains(" | x-request-id"));
}

/// A proxy's forward seen alone (the client hop not in the capture): the
/// text names the client address the proxy wrote (X-Real-IP) and the
/// original client behind another proxy (X-Forwarded-For's first entry),
/// on the handshake line and in its finding's block; request ids are
/// redacted as in the JSON (a JSON Web Token) and escaped (a C1 control,
/// CSI, from the wire).
#[test]
fn text_names_the_remote_address_a_forward_carries_redacted_and_escaped() {
    let dir = Scratch::new("joins");
    let pcap = dir.join("forward.pcap");
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let mut b = PcapBuilder::default();
    let (mut c, mut s) = b.connect(([10, 0, 0, 2], 40000), ([10, 0, 0, 3], 8080));
    let req = format!(
        "GET /ws HTTP/1.0\r\nHost: app\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Connection: close\r\nX-Real-IP: 192.0.2.7\r\nX-Forwarded-For: 203.0.113.9, 192.0.2.7\r\n\
         X-Request-ID: ab\u{9b}31mcd\r\nTraceparent: {jwt}\r\n\r\n"
    );
    b.send(&mut c, &s, req.as_bytes());
    b.advance_ms(2);
    b.send(&mut s, &c, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    b.fin(&mut s, &c);
    b.fin(&mut c, &s);
    b.write(&pcap);

    // Named as an upstream: the one hop in view is the proxy's forward.
    let up = ["--upstream", "10.0.0.3:8080"];
    let rs = records_of(&pcap, &up);
    let h = of_type(&rs, "handshake")[0].clone();
    assert_eq!((h["remote_addr"].as_str(), h["remote_from"].as_str()), (Some("192.0.2.7"), Some("x-real-ip")));
    assert_eq!(h["forwarded_for"], "203.0.113.9");
    assert_eq!(h["request_ids"]["traceparent"], "REDACTED", "a token by its shape");
    assert_eq!(h["request_ids"]["x-request-id"], "ab\u{9b}31mcd", "JSON keeps the value (its \\u escape)");

    let out = wstap(&["-r", pcap.to_str().unwrap(), up[0], up[1]]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{9b}') && !text.contains(jwt), "{text}");
    let join = "remote 192.0.2.7 from x-real-ip, for 203.0.113.9, x-request-id ab\\u009b31mcd, traceparent REDACTED";
    let hs = text.lines().find(|l| l.contains("handshake #1")).unwrap();
    assert!(hs.contains("client not seen") && hs.ends_with(&format!(" | {join}")), "{hs}");
    let finding =
        text.lines().find(|l| l.starts_with("  logs as  ")).unwrap_or_else(|| panic!("no logs line:\n{text}"));
    assert_eq!(finding, format!("  logs as  {join}"));
    // --no-redact shows the token, still escaped.
    let out = wstap(&["-r", pcap.to_str().unwrap(), up[0], up[1], "--no-redact"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("traceparent {jwt}")) && !text.contains('\u{9b}'), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
