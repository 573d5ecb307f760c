//! The bundled captures (recorded from real proxies by captures/record.sh):
//! wstap's handshakes, sessions and findings against what the real client
//! saw (captures/NAME.client.jsonl) and the diagnosis each scenario needs.

mod common;

use common::*;
use serde_json::Value;

/// Errors expected per capture (with repeats), then warnings (kinds only).
/// Any other error-severity finding fails the test.
const EXPECTED: &[(&str, &[&str], &[&str])] = &[
    ("nginx-healthy", &[], &[]),
    ("nginx-ipv6", &[], &[]),
    ("nginx-any", &[], &[]),
    ("nginx-any-sll2", &[], &[]),
    ("haproxy-healthy", &[], &[]),
    ("apache-healthy", &[], &[]),
    ("caddy-healthy", &[], &[]),
    ("chain-haproxy-nginx", &[], &[]),
    ("nginx-pipelined-plain", &[], &[]),
    ("nginx-socketio-ok", &[], &[]),
    ("nginx-bench-uncompressed", &[], &[]),
    ("nginx-default", &["upgrade-stripped", "upgrade-stripped", "upstream-http10", "upstream-http10"], &[]),
    ("nginx-upgrade-only", &["upgrade-stripped", "upgrade-stripped"], &[]),
    ("nginx-upgrade-mangled", &["upgrade-stripped", "upgrade-stripped"], &[]),
    ("nginx-http10", &["upstream-http10", "upstream-http10"], &[]),
    ("nginx-wrong-location", &["upgrade-stripped", "upstream-http10"], &[]),
    ("haproxy-stripped", &["upgrade-stripped", "upgrade-stripped"], &[]),
    ("apache-stripped", &["upgrade-stripped", "upgrade-stripped"], &[]),
    ("caddy-stripped", &["upgrade-stripped", "upgrade-stripped"], &[]),
    ("nginx-hardcoded-connection", &[], &["connection-upgrade-on-plain"]),
    ("nginx-backend-down", &["upstream-connect-failed", "upstream-connect-failed"], &[]),
    ("nginx-backend-hang", &["upstream-timeout"], &[]),
    ("nginx-backend-close", &["upstream-premature-close"], &[]),
    ("nginx-origin-403", &[], &["handshake-rejected"]),
    ("nginx-bad-accept", &["bad-accept"], &[]),
    ("nginx-no-proxy-location", &["upgrade-failed"], &[]),
    ("nginx-tls-front", &[], &["forwarded-proto-missing"]),
    ("nginx-mass-close", &[], &["mass-close"]),
    ("nginx-backend-crash", &[], &["abnormal-close"]),
    ("nginx-idle-short", &["idle-timeout-close"], &[]),
    ("nginx-idle-60", &["idle-timeout-close", "idle-timeout-close", "idle-timeout-close"], &[]),
    ("nginx-heartbeat-race", &["heartbeat-race", "heartbeat-race", "heartbeat-race"], &[]),
    ("haproxy-idle", &["idle-timeout-close"], &[]),
    ("nginx-socketio-stuck", &["upgrade-stripped", "upstream-http10"], &["socketio-no-upgrade"]),
    ("nginx-timeout-race", &["upstream-timeout", "upstream-timeout"], &[]),
    (
        "nginx-http10-upstream-only",
        &["upgrade-headers-missing", "upgrade-headers-missing", "upstream-http10", "upstream-http10"],
        &[],
    ),
    ("nginx-tls-busy", &[], &[]),
    ("nginx-socketio-prefix", &[], &[]),
    (
        "caddy-reload",
        &["proxy-protocol-violation", "proxy-protocol-violation", "proxy-protocol-violation"],
        &["mass-close"],
    ),
    ("lighttpd-healthy", &[], &[]),
    ("lighttpd-stripped", &["upgrade-stripped", "upgrade-stripped"], &[]),
    ("direct-bad-accept", &["bad-accept"], &[]),
];

#[test]
fn every_capture_gets_exactly_its_diagnosis() {
    let mut failures = Vec::new();
    for (name, errors, warnings) in EXPECTED {
        let rs = records(name);
        let got_err = kinds(&rs, "error");
        let mut want: Vec<String> = errors.iter().map(|s| s.to_string()).collect();
        want.sort();
        if got_err != want {
            failures.push(format!("{name}: errors {got_err:?}, expected {want:?}"));
        }
        let got_warn = kinds(&rs, "warning");
        for w in *warnings {
            if !got_warn.iter().any(|k| k == w) {
                failures.push(format!("{name}: warning {w} missing (got {got_warn:?})"));
            }
        }
        if warnings.is_empty() && errors.is_empty() && !got_warn.is_empty() {
            failures.push(format!("{name}: a healthy capture produced warnings {got_warn:?}"));
        }
        // Every finding says what to do.
        for f in of_type(&rs, "finding") {
            if f["fix"].as_str().is_none_or(str::is_empty) && f["severity"] == "error" {
                failures.push(format!("{name}: {} has no fix", f["kind"]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The statuses the real client saw, one per handshake it attempted.
fn client_statuses(name: &str) -> Vec<Option<u64>> {
    let mut v: Vec<Option<u64>> = client_log(name)
        .iter()
        .filter(|e| e["event"] == "handshake")
        .map(|e| match e["status"].as_u64() {
            // The client rejected a 101 whose Accept was wrong.
            None if e["exception"] == "InvalidHeaderValue" => Some(101),
            s => s,
        })
        .collect();
    v.sort();
    v
}

/// The status each handshake record shows on the hop nearest the client
/// (the readable one when the client hop is TLS).
fn wire_statuses(rs: &[Value]) -> Vec<Option<u64>> {
    let mut v: Vec<Option<u64>> = of_type(rs, "handshake")
        .iter()
        .filter(|h| h["hop_index"] == 0)
        .map(|h| {
            let c = &h["client"];
            if c.is_null() || c["encrypted"] == true { h["upstream"]["status"].as_u64() } else { c["status"].as_u64() }
        })
        .collect();
    v.sort();
    v
}

#[test]
fn handshake_statuses_match_what_the_client_saw() {
    let mut checked = 0;
    for (name, ..) in EXPECTED {
        let log = common::root().join("captures").join(format!("{name}.client.jsonl"));
        if !log.exists() || client_log(name).iter().all(|e| e["event"] != "handshake") {
            continue;
        }
        let rs = records(name);
        assert_eq!(wire_statuses(&rs), client_statuses(name), "{name}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} captures had a client log");
}

#[test]
fn session_ends_match_the_close_codes_the_client_saw() {
    for (name, ..) in EXPECTED {
        let log = common::root().join("captures").join(format!("{name}.client.jsonl"));
        if !log.exists() || client_log(name).iter().all(|e| e["event"] != "handshake") {
            continue; // not a WebSocket client (plain HTTP, Socket.IO)
        }
        if matches!(*name, "nginx-bad-accept" | "direct-bad-accept") {
            continue; // the client refused the 101, so it never had a session to close
        }
        let mut saw: Vec<(bool, Option<u64>)> = client_log(name)
            .iter()
            .filter(|e| e["event"] == "closed")
            .map(|e| {
                let code = e["code"].as_u64();
                (code != Some(1006), code.filter(|&c| c != 1006))
            })
            .collect();
        saw.sort();
        let rs = records(name);
        let mut got: Vec<(bool, Option<u64>)> = of_type(&rs, "session")
            .iter()
            .filter(|s| s["hop_index"] == 0 && s["open"] == false)
            .map(|s| (s["close"]["clean"] == true, s["close"]["code"].as_u64()))
            .collect();
        got.sort();
        assert_eq!(got, saw, "{name}: (clean, code) per session");
    }
}

#[test]
fn healthy_proxy_pairs_both_hops_by_key() {
    let rs = records("nginx-healthy");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 3);
    for h in &hs {
        assert_eq!(h["outcome"], "upgraded");
        assert_eq!(h["paired_by"], "key");
        assert_eq!(h["client"]["status"], 101);
        assert_eq!(h["upstream"]["status"], 101);
        assert_eq!(h["client"]["key"], h["upstream"]["key"]);
        assert_eq!(h["client"]["flow"].as_str().unwrap().split("->").nth(1), Some("127.0.0.1:18081"));
        assert_eq!(h["upstream"]["flow"].as_str().unwrap().split("->").nth(1), Some("127.0.0.1:13001"));
        assert!(h["latency_ms"]["client"].as_f64().unwrap() >= h["latency_ms"]["upstream"].as_f64().unwrap());
    }
    let sessions = of_type(&rs, "session");
    assert_eq!(sessions.len(), 3);
    for s in sessions {
        assert_eq!(s["close"]["by"], "client");
        assert_eq!(s["close"]["code"], 1000);
        assert_eq!(s["close"]["clean"], true);
        assert!(s["upstream_flow"].is_string() && s["client_flow"].is_string());
        assert_eq!(s["hops"].as_array().unwrap().len(), 2);
        // 3 messages + ping + close from the client, echoes + pong + close back
        assert_eq!(s["frames"]["to_server"], 5);
        assert_eq!(s["frames"]["to_client"], 5);
    }
    let sum = summary(&rs);
    assert_eq!(sum["handshakes"]["upgraded"], 3);
    assert_eq!(sum["decode_errors"].as_object().unwrap().len(), 0);
}

#[test]
fn default_proxy_pass_message_names_the_hop_and_what_it_lost() {
    let rs = records("nginx-default");
    let f = of_type(&rs, "finding").into_iter().find(|f| f["kind"] == "upgrade-stripped").unwrap();
    let msg = f["message"].as_str().unwrap();
    assert!(msg.starts_with("nginx forwarded GET /ws to 127.0.0.1:13002 over HTTP/1.0 without Upgrade"), "{msg}");
    assert!(msg.contains("the client got 505"), "{msg}");
    assert_eq!(f["detail"]["missing"].as_array().unwrap()[0], "Upgrade");
    assert_eq!(f["detail"]["proxy"], "nginx");
    assert!(f["fix"].as_str().unwrap().contains("proxy_set_header Connection $connection_upgrade"));
    assert_eq!(f["flows"].as_array().unwrap().len(), 2);
    let diff = f["detail"]["diff"].as_array().unwrap();
    assert!(diff.iter().any(|d| d["header"] == "Upgrade" && d["change"] == "missing" && d["upstream"].is_null()));
    assert!(diff.iter().any(|d| d["header"] == "HTTP version" && d["upstream"] == "HTTP/1.0"));
}

#[test]
fn wrong_location_is_told_apart_from_a_global_mistake() {
    let rs = records("nginx-wrong-location");
    let f = of_type(&rs, "finding").into_iter().find(|f| f["kind"] == "upgrade-stripped").unwrap();
    assert_eq!(f["path"], "/app/ws");
    assert_eq!(f["detail"]["paths_with_headers_intact"][0], "/ws");
    let ok = of_type(&rs, "handshake").into_iter().filter(|h| h["outcome"] == "upgraded").count();
    assert_eq!(ok, 1, "/ws still upgrades");
}

#[test]
fn backend_rejection_is_not_blamed_on_the_proxy() {
    let rs = records("nginx-origin-403");
    let f = of_type(&rs, "finding");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["kind"], "handshake-rejected");
    assert_eq!(f[0]["severity"], "warning");
    assert_eq!(f[0]["detail"]["status"], 403);
    assert!(f[0]["message"].as_str().unwrap().contains("not a proxy problem"));
}

#[test]
fn tls_front_hides_the_client_hop_but_not_the_pairing() {
    let rs = records("nginx-tls-front");
    for h in of_type(&rs, "handshake") {
        assert_eq!(h["client"]["encrypted"], true);
        assert_eq!(h["upstream"]["status"], 101);
        assert_eq!(h["outcome"], "upgraded");
    }
}

#[test]
fn chain_of_proxies_gives_one_record_per_adjacent_pair() {
    let rs = records("chain-haproxy-nginx");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 4, "2 sessions x 2 hop pairs");
    for chain in hs.iter().map(|h| h["chain"].as_u64().unwrap()).collect::<std::collections::BTreeSet<_>>() {
        let mut pair: Vec<&&Value> = hs.iter().filter(|h| h["chain"] == chain).collect();
        pair.sort_by_key(|h| h["hop_index"].as_u64());
        assert_eq!(pair.len(), 2);
        assert_eq!(pair[0]["hop_index"], 0);
        assert_eq!(pair[1]["hop_index"], 1);
        // The middle hop is the upstream of the first record and the client of the second.
        assert_eq!(pair[0]["upstream"]["flow"], pair[1]["client"]["flow"]);
    }
}

#[test]
fn backend_down_names_the_refused_connection() {
    let rs = records("nginx-backend-down");
    for f in of_type(&rs, "finding") {
        assert_eq!(f["kind"], "upstream-connect-failed");
        assert_eq!(f["detail"]["attempts"][0]["refused"], true);
        assert!(f["message"].as_str().unwrap().contains("connection refused"));
    }
}

#[test]
fn mass_close_is_not_an_idle_timeout() {
    let rs = records("nginx-mass-close");
    let f = of_type(&rs, "finding");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["kind"], "mass-close");
    assert_eq!(f[0]["detail"]["count"], 4);
}

#[test]
fn idle_timeout_reports_boundary_and_who_closed() {
    for name in ["nginx-idle-short", "haproxy-idle"] {
        let rs = records(name);
        let f = of_type(&rs, "finding").into_iter().find(|f| f["kind"] == "idle-timeout-close").unwrap();
        let b = f["detail"]["boundary_s"].as_f64().unwrap();
        assert!((b - 5.0).abs() < 0.5, "{name}: boundary {b}");
        assert!(f["message"].as_str().unwrap().contains("closed both legs together"), "{name}");
        // The session with heartbeats is healthy and not flagged.
        let sessions = of_type(&rs, "session");
        assert!(sessions.iter().any(|s| s["heartbeat"].is_object() && s["close"]["clean"] == true), "{name}");
    }
}

#[test]
fn nginx_default_read_timeout_is_named() {
    let rs = records("nginx-idle-60");
    let f = of_type(&rs, "finding");
    assert_eq!(f.len(), 3, "three idle sessions cut; the one with 20 s pings is not flagged");
    for f in f {
        assert_eq!(f["detail"]["boundary_s"], 60.0);
        assert_eq!(f["detail"]["boundary_source"], "known");
        assert!(f["message"].as_str().unwrap().contains("nginx proxy_read_timeout default"));
        assert!(f["fix"].as_str().unwrap().contains("proxy_read_timeout"));
        let hops = f["detail"]["hops"].as_array().unwrap();
        assert_eq!(hops[0]["closed_by"], "responder", "nginx closed the client leg");
        assert_eq!(hops[1]["closed_by"], "initiator", "nginx closed the upstream leg");
    }
    // --timeout makes the boundary the user's.
    let rs = records_of(&capture("nginx-idle-60"), &["--timeout", "60"]);
    assert!(of_type(&rs, "finding").iter().all(|f| f["detail"]["boundary_source"] == "configured"));
}

#[test]
fn heartbeats_at_the_boundary_race_it() {
    let rs = records("nginx-heartbeat-race");
    for f in of_type(&rs, "finding") {
        assert_eq!(f["kind"], "heartbeat-race");
        let b = f["detail"]["boundary_s"].as_f64().unwrap();
        assert!((b - 5.0).abs() < 0.2, "{b}");
        assert!(f["message"].as_str().unwrap().contains("pings every 5."), "{}", f["message"]);
    }
}

#[test]
fn redaction_applies_to_every_output() {
    // Captures carry no secrets of their own; -v prints every header and
    // target, so check the mask logic end to end on the peers' JWT.
    let p = root().join("tests/data/peers/zeek/websocket_wstunnel-http.pcap");
    let out = wstap(&["-r", p.to_str().unwrap(), "-vv"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("REDACTED"), "{text}");
    assert!(!text.contains("authorization.bearer.eyJ"), "bearer token leaked");
    let raw = wstap(&["-r", p.to_str().unwrap(), "-vv", "--no-redact"]);
    assert!(String::from_utf8_lossy(&raw.stdout).contains("authorization.bearer."));
}

#[test]
fn busy_proxy_pairs_every_handshake_and_never_chains_unrelated_requests() {
    // 12 staggered sessions and 4 keep-alive connections of plain requests
    // through one nginx: plain upstream requests are in flight while new
    // client handshakes arrive, from the same host and User-Agent.
    let rs = records("nginx-bench");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 12);
    for h in &hs {
        assert_eq!(h["hop_index"], 0, "no false chain: {h}");
        assert_eq!(h["paired_by"], "key");
        assert_eq!(h["client"]["flow"].as_str().unwrap().split("->").nth(1), Some("127.0.0.1:18131"));
        assert_eq!(h["upstream"]["flow"].as_str().unwrap().split("->").nth(1), Some("127.0.0.1:13051"));
    }
    assert_eq!(of_type(&rs, "session").len(), 12);
    assert!(kinds(&rs, "error").is_empty() && kinds(&rs, "warning").is_empty());
}

#[test]
fn ipv6_and_cooked_captures_pair_like_ethernet_ones() {
    let rs = records("nginx-ipv6");
    let hs = of_type(&rs, "handshake");
    assert!(!hs.is_empty());
    for h in hs {
        let c = h["client"]["flow"].as_str().unwrap();
        assert!(c.starts_with("[::1]:") && c.contains("->[::1]:"), "{c}");
        assert_eq!(h["paired_by"], "key");
    }
    // -i any (Linux cooked v1 and v2): the same pairs as on Ethernet.
    for name in ["nginx-any", "nginx-any-sll2"] {
        let rs = records(name);
        let hs = of_type(&rs, "handshake");
        let attempts = client_log(name).iter().filter(|e| e["event"] == "handshake").count();
        assert!(attempts > 0);
        assert_eq!(hs.len(), attempts, "{name}");
        assert!(hs.iter().all(|h| h["outcome"] == "upgraded" && h["paired_by"] == "key"), "{name}");
    }
}

/// The backend is killed mid-session: not a timeout, not a mass close, and
/// the finding names the hop that closed first (the backend's), while the
/// real client saw 1006.
#[test]
fn backend_crash_is_an_abnormal_close_blamed_on_the_backend() {
    let rs = records("nginx-backend-crash");
    let f = of_type(&rs, "finding");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["kind"], "abnormal-close");
    assert_eq!(f[0]["detail"]["first_closed"], "backend");
    let msg = f[0]["message"].as_str().unwrap();
    assert!(msg.contains("backend 127.0.0.1:13031 closed the upstream connection first"), "{msg}");
    let s = of_type(&rs, "session");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["close"]["by"], "server");
    assert_eq!(s[0]["close"]["clean"], false);
    let closes: Vec<u64> = client_log("nginx-backend-crash")
        .iter()
        .filter(|e| e["event"] == "closed")
        .filter_map(|e| e["code"].as_u64())
        .collect();
    assert_eq!(closes, [1006]);
}

/// Only the upstream hop in view (a BPF filter on the backend port, as when
/// the front is on another host): the stripped upgrade is reported as
/// upgrade-headers-missing, never as upgrade-stripped (with upstream-http10
/// tied to it when the request line says HTTP/1.0), and a healthy proxy
/// seen the same way gives nothing.
#[test]
fn one_hop_in_view_reports_missing_upgrade_headers() {
    for (name, port, n, http10) in
        [("nginx-default", 13002, 2, true), ("haproxy-stripped", 13026, 2, false), ("nginx-healthy", 13001, 0, false)]
    {
        let rs = records_of(&capture(name), &[&format!("tcp port {port}")]);
        let mut want = vec!["upgrade-headers-missing".to_string(); n];
        if http10 {
            want.extend(vec!["upstream-http10".to_string(); n]);
        }
        assert_eq!(kinds(&rs, "error"), want, "{name}");
        for h in of_type(&rs, "handshake") {
            assert!(h["client"].is_null() || h["upstream"].is_null(), "{name}: one hop only: {h}");
        }
    }
}

/// The same misconfiguration behind four real proxies: each is recognised
/// (from its Server header or what it adds upstream) and gets the fix in
/// its own configuration language.
#[test]
fn fixes_are_written_for_the_proxy_that_is_there() {
    for (name, proxy, directive) in [
        ("nginx-upgrade-only", "nginx", "proxy_set_header Connection $connection_upgrade;"),
        ("haproxy-stripped", "haproxy", "http-request del-header"),
        ("apache-stripped", "apache", "upgrade=websocket"),
        ("caddy-stripped", "caddy", "header_up"),
    ] {
        let rs = records(name);
        let f = of_type(&rs, "finding");
        assert!(!f.is_empty(), "{name}: no finding");
        for f in f {
            assert_eq!(f["kind"], "upgrade-stripped", "{name}");
            assert_eq!(f["detail"]["proxy"], proxy, "{name}");
            assert!(f["message"].as_str().unwrap().starts_with(proxy), "{name}: {}", f["message"]);
            let fix = f["fix"].as_str().unwrap();
            assert!(fix.contains(directive), "{name}: {fix}");
        }
    }
}
