//! WebSockets over HTTP/2 (RFC 8441) on the client hop, on the real
//! haproxy 2.6 captures of captures/record.sh (haproxy-h2*): each stream a
//! session, paired with the HTTP/1.1 upgrade haproxy made for it, the
//! findings across the protocol change, checked against what the real
//! clients saw (their logs) and against tshark with the same key log.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const H2: &[&str] = &[
    "haproxy-h2",
    "haproxy-h2-stripped",
    "haproxy-h2-false-success",
    "haproxy-h2-idle",
    "haproxy-h2-no8441",
    "haproxy-h2c",
];

fn keys(name: &str) -> String {
    root().join("captures").join(format!("{name}.keys")).to_str().unwrap().to_string()
}

fn with_keys(name: &str, extra: &[&str]) -> Vec<Value> {
    if name == "haproxy-h2c" {
        return records_of(&capture(name), extra);
    }
    let k = keys(name);
    let mut args = vec!["--keylog", k.as_str()];
    args.extend_from_slice(extra);
    records_of(&capture(name), &args)
}

fn handshakes(rs: &[Value]) -> Vec<&Value> {
    of_type(rs, "handshake")
}

fn client_events<'a>(log: &'a [Value], group: &str, event: &str) -> Vec<&'a Value> {
    log.iter().filter(|e| e["group"] == group && e["event"] == event).collect()
}

/// Healthy streams sharing one connection: one session per stream, each
/// paired one to one with its own HTTP/1.1 upgrade (haproxy's made-up key),
/// confirmed by the X-Request-ID haproxy added upstream and echoed to the
/// client; chromium's wss rides the page's HTTP/2 connection.
#[test]
fn healthy_streams_are_sessions_paired_with_their_upgrades() {
    let rs = with_keys("haproxy-h2", &[]);
    let hs = handshakes(&rs);
    let log = client_log("haproxy-h2");
    let opened = client_events(&log, "h2ws", "handshake").len() + client_events(&log, "chromium", "handshake").len();
    assert_eq!(hs.len(), opened, "one handshake per stream the clients opened");
    let mut upstreams = BTreeSet::new();
    let mut streams = BTreeSet::new();
    for h in &hs {
        let c = &h["client"];
        assert_eq!(c["version"], "HTTP/2");
        assert_eq!(c["method"], "CONNECT");
        assert_eq!(c["protocol"], "websocket");
        assert_eq!(c["status"], 200);
        assert_eq!(c["tls"]["alpn"], "h2");
        assert!(c["stream_id"].as_u64().unwrap() % 2 == 1, "client streams are odd");
        assert_eq!(h["upstream"]["status"], 101);
        assert_eq!(h["upstream"]["version"], "HTTP/1.1");
        assert!(h["upstream"]["key"].is_string(), "haproxy made up a key upstream");
        assert_eq!(h["outcome"], "upgraded");
        assert_eq!(h["paired_by"], "request-id", "{h}");
        assert_eq!(h["pair_confidence"], "high");
        assert!(upstreams.insert(h["upstream"]["flow"].as_str().unwrap().to_string()), "one to one");
        streams.insert((c["flow"].as_str().unwrap().to_string(), c["stream_id"].as_u64().unwrap()));
    }
    // The scripted client's three streams share one TLS connection.
    let flows: BTreeSet<&str> = hs.iter().map(|h| h["client"]["flow"].as_str().unwrap()).collect();
    assert!(flows.len() < hs.len(), "several streams on one connection: {flows:?}");
    let ss = of_type(&rs, "session");
    assert_eq!(ss.len(), hs.len(), "a session per stream");
    for s in &ss {
        let c = s["hops"].as_array().unwrap().iter().find(|h| h["role"] == "client").unwrap();
        assert!(c["stream_id"].is_u64());
        assert_eq!(s["close"]["code"], 1000);
        assert!(s["close"]["clean"].as_bool().unwrap());
        assert!(s["upstream_flow"].is_string());
        let sent: u64 = s["messages"]["to_server"].as_u64().unwrap();
        assert_eq!(sent, 3, "3 messages per session on the client hop (its DATA, the same frame parser)");
    }
    assert!(kinds(&rs, "error").is_empty(), "{:?}", kinds(&rs, "error"));
    assert!(kinds(&rs, "warning").is_empty(), "{:?}", kinds(&rs, "warning"));
    let h2 = &summary(&rs)["h2"];
    assert_eq!(h2["websocket_streams"], hs.len() as u64);
    assert_eq!(h2["websocket_accepted"], hs.len() as u64);
    assert!(h2["streams"].as_u64().unwrap() > h2["websocket_streams"].as_u64().unwrap(), "chromium's page GET too");
    assert_eq!(h2["connect_protocol_offered"], h2["connections"]);
    assert_eq!(h2["hpack_errors"], 0);
    assert_eq!(h2["streams_dropped"], 0);
}

/// A stripped path answered 426 by the backend, relayed as :status 426:
/// upgrade-stripped with both hops' evidence, the h2 request's `:protocol`
/// against the missing Upgrade; the other path through the same front works.
#[test]
fn stripped_upgrade_answered_426_is_relayed_as_status_426() {
    let rs = with_keys("haproxy-h2-stripped", &[]);
    let log = client_log("haproxy-h2-stripped");
    let refused: Vec<&Value> =
        client_events(&log, "h2ws", "handshake").into_iter().filter(|e| e["status"] == 426).collect();
    assert_eq!(refused.len(), 2);
    let fs: Vec<&Value> = of_type(&rs, "finding").into_iter().filter(|f| f["kind"] == "upgrade-stripped").collect();
    assert_eq!(fs.len(), refused.len(), "one finding per stripped stream");
    for f in fs {
        assert_eq!(f["path"], "/stripped/ws");
        assert_eq!(f["detail"]["hops"]["client"]["status"], 426);
        assert_eq!(f["detail"]["hops"]["upstream"]["status"], 426);
        assert_eq!(f["detail"]["hops"]["client"]["request_line"], "CONNECT /stripped/ws HTTP/2");
        let up = f["detail"]["diff"].as_array().unwrap().iter().find(|d| d["header"] == "Upgrade").unwrap();
        assert_eq!(up["client"], ":protocol websocket");
        assert_eq!(up["change"], "missing");
        assert!(f["detail"]["paths_with_headers_intact"].as_array().unwrap().iter().any(|p| p == "/ws"));
    }
    let hs = handshakes(&rs);
    assert_eq!(hs.iter().filter(|h| h["outcome"] == "rejected").count(), 2);
    assert_eq!(hs.iter().filter(|h| h["outcome"] == "upgraded").count(), 1);
    for h in hs {
        assert!(h["client"]["stream_id"].is_u64() && h["upstream"].is_object(), "paired: {h}");
        assert!(matches!(h["pair_confidence"].as_str(), Some("high" | "medium")), "{h}");
    }
}

/// The false success: the upgrade stripped, a plain handler answers 200,
/// haproxy relays :status 200; chromium fired onopen and then saw 1006.
/// One fault, reported as what it is, with both hops' evidence.
#[test]
fn plain_200_relayed_as_status_200_is_a_false_success() {
    let rs = with_keys("haproxy-h2-false-success", &[]);
    let log = client_log("haproxy-h2-false-success");
    // What the browser saw: onopen, then 1006 with no message.
    assert!(client_events(&log, "chromium", "handshake")[0]["ok"].as_bool().unwrap());
    assert_eq!(client_events(&log, "chromium", "closed")[0]["code"], 1006);
    let fs: Vec<&Value> =
        of_type(&rs, "finding").into_iter().filter(|f| f["kind"] == "false-upgrade-success").collect();
    assert_eq!(fs.len(), 2, "chromium's stream and the scripted client's /plain/ws");
    for f in &fs {
        assert_eq!(f["severity"], "error");
        assert!(f["primary"].as_bool().unwrap());
        assert!(f["also"].as_array().unwrap().iter().any(|k| k == "upgrade-stripped"), "{f}");
        assert_eq!(f["path"], "/plain/ws");
        assert_eq!(f["detail"]["client_status"], 200);
        assert_eq!(f["detail"]["backend_status"], 200);
        assert_eq!(f["detail"]["hops"]["upstream"]["request_line"], "GET /plain/ws HTTP/1.1");
        assert!(f["detail"]["client_body"]["content_length"].as_u64().unwrap() > 0);
        assert_eq!(f["flows"].as_array().unwrap().len(), 2, "both hops");
        let tied = of_type(&rs, "finding")
            .into_iter()
            .filter(|g| g["fault"] == f["fault"] && g["kind"] == "upgrade-stripped")
            .count();
        assert_eq!(tied, 1, "the stripped upgrade is the same fault");
    }
    // The healthy /ws stream of the same connection is not touched.
    let ws: Vec<&Value> = handshakes(&rs).into_iter().filter(|h| h["path"] == "/ws").collect();
    assert_eq!(ws.len(), 1);
    assert_eq!(ws[0]["upstream"]["status"], 101);
    // The client hop alone (a capture on the front port only): its 2xx
    // carried a body, a plain response passed off as a tunnel.
    let front = with_keys("haproxy-h2-false-success", &["tcp port 18603"]);
    let alone: Vec<&Value> =
        of_type(&front, "finding").into_iter().filter(|f| f["kind"] == "false-upgrade-success").collect();
    assert_eq!(alone.len(), 2);
    assert!(alone.iter().all(|f| f["detail"]["backend_status"].is_null() && f["flows"].as_array().unwrap().len() == 1));
    assert_eq!(alone[0]["detail"]["client_body"]["content_type"], "application/json");
    // No session on /plain/ws ever carried a message.
    for s in of_type(&rs, "session").into_iter().filter(|s| s["path"] == "/plain/ws") {
        assert_eq!(s["messages"]["to_client"], 0);
        assert!(!s["close"]["clean"].as_bool().unwrap());
    }
}

/// Idle streams cut by haproxy's `timeout tunnel 5s`: RST_STREAM CANCEL of
/// each idle stream while the connection and its chatty stream live on;
/// idle-timeout-close per stream with the boundary learned.
#[test]
fn idle_streams_reset_with_cancel_are_idle_timeout_closes() {
    let rs = with_keys("haproxy-h2-idle", &[]);
    let log = client_log("haproxy-h2-idle");
    let cut: Vec<&Value> = client_events(&log, "h2ws", "reset").into_iter().filter(|e| e["code"] == "CANCEL").collect();
    assert_eq!(cut.len(), 2);
    let fs: Vec<&Value> = of_type(&rs, "finding").into_iter().filter(|f| f["kind"] == "idle-timeout-close").collect();
    assert_eq!(fs.len(), cut.len(), "one per idle stream");
    for f in &fs {
        let b = f["detail"]["boundary_s"].as_f64().unwrap();
        assert!((b - 5.0).abs() < 0.3, "the tunnel timeout, learned: {b}");
        let hops = f["detail"]["hops"].as_array().unwrap();
        let c = hops.iter().find(|h| h["role"] == "client").unwrap();
        assert_eq!(c["closed_with"], "rst");
        assert_eq!(c["reset"], "CANCEL");
        assert!(c["stream_id"].is_u64());
        assert!(f["message"].as_str().unwrap().contains("RST_STREAM CANCEL"), "{}", f["message"]);
    }
    let ss = of_type(&rs, "session");
    assert_eq!(ss.len(), 3);
    let clean: Vec<&&Value> = ss.iter().filter(|s| s["close"]["clean"] == true).collect();
    assert_eq!(clean.len(), 1, "the chatty stream outlived the cuts on the same connection");
    assert!(clean[0]["end"].as_f64() > fs.iter().map(|f| f["ts"].as_f64().unwrap()).reduce(f64::max));
    // haproxy also resets the chatty stream (CANCEL) once its tunnel closed.
    assert!(summary(&rs)["h2"]["resets"]["CANCEL"].as_u64().unwrap() >= cut.len() as u64);
}

/// A front without RFC 8441: chromium falls back to a separate HTTP/1.1 TLS
/// connection for its wss; wstap names the fault with both connections.
#[test]
fn a_front_that_does_not_offer_rfc8441_is_reported() {
    let rs = with_keys("haproxy-h2-no8441", &[]);
    let log = client_log("haproxy-h2-no8441");
    assert_eq!(client_events(&log, "h2ws", "settings")[0]["enable_connect_protocol"], false);
    let fs: Vec<&Value> =
        of_type(&rs, "finding").into_iter().filter(|f| f["kind"] == "h2-websocket-not-offered").collect();
    assert_eq!(fs.len(), 1, "{:?}", kinds(&rs, "warning"));
    let f = fs[0];
    assert_eq!(f["detail"]["enable_connect_protocol"], false);
    assert_eq!(f["detail"]["fallback"]["version"], "HTTP/1.1");
    assert_eq!(f["detail"]["fallback"]["alpn"], "http/1.1");
    let hs = handshakes(&rs);
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["client"]["version"], "HTTP/1.1");
    assert_eq!(f["flows"][1], hs[0]["client"]["flow"]);
    let h2 = &summary(&rs)["h2"];
    assert_eq!(h2["connect_protocol_offered"], 0);
    assert_eq!(h2["websocket_streams"], 0);
    // The same capture with a front that offers it raises nothing of the kind.
    assert!(!kinds(&with_keys("haproxy-h2", &[]), "warning").contains(&"h2-websocket-not-offered".to_string()));
}

/// tshark with the same key log is the conformance peer of the h2 side:
/// every extended CONNECT stream tshark shows is a session wstap shows (same
/// connection, same stream id), with tshark's :status on its handshake.
#[test]
fn every_connect_stream_tshark_shows_is_a_session() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tshark is a test dependency (scripts/deps.sh)");
        eprintln!("tshark not installed: skipped");
        return;
    }
    let mut checked = 0;
    for name in H2 {
        // TLS captures: the key log; h2c: decode the front port as HTTP/2.
        let how = match *name {
            "haproxy-h2c" => ["-d".to_string(), "tcp.port==18606,http2".to_string()],
            _ => ["-o".to_string(), format!("tls.keylog_file:{}", keys(name))],
        };
        let out = Command::new("tshark")
            .args(["-r", capture(name).to_str().unwrap()])
            .args(&how)
            .args([
                "-Y",
                "http2.type == 1",
                "-T",
                "fields",
                "-E",
                "separator=|",
                "-E",
                "occurrence=a",
                "-E",
                "aggregator=;",
            ])
            .args(["-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"])
            .args(["-e", "http2.streamid", "-e", "http2.header.name", "-e", "http2.header.value"])
            .stderr(Stdio::null())
            .output()
            .expect("tshark runs");
        // (client flow, stream) -> :status
        let mut connects = BTreeSet::new();
        let mut status = std::collections::BTreeMap::new();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let f: Vec<&str> = l.split('|').collect();
            let names: Vec<&str> = f[5].split(';').collect();
            let values: Vec<&str> = f[6].split(';').collect();
            let sid = f[4].split(';').next_back().unwrap_or("0");
            let get = |n: &str| names.iter().position(|x| *x == n).and_then(|i| values.get(i).copied());
            if get(":method") == Some("CONNECT") && get(":protocol") == Some("websocket") {
                connects.insert((format!("{}:{}->{}:{}", f[0], f[1], f[2], f[3]), sid.parse::<u64>().unwrap()));
            } else if let Some(s) = get(":status") {
                status.insert(
                    (format!("{}:{}->{}:{}", f[2], f[3], f[0], f[1]), sid.parse::<u64>().unwrap()),
                    s.parse::<u64>().unwrap(),
                );
            }
        }
        let rs = with_keys(name, &[]);
        let ours: BTreeSet<(String, u64)> = handshakes(&rs)
            .iter()
            .filter(|h| h["client"]["protocol"] == "websocket")
            .map(|h| (h["client"]["flow"].as_str().unwrap().to_string(), h["client"]["stream_id"].as_u64().unwrap()))
            .collect();
        assert_eq!(ours, connects, "{name}: wstap's extended CONNECT streams vs tshark's");
        for h in handshakes(&rs).iter().filter(|h| h["client"]["protocol"] == "websocket") {
            let k = (h["client"]["flow"].as_str().unwrap().to_string(), h["client"]["stream_id"].as_u64().unwrap());
            assert_eq!(h["client"]["status"].as_u64(), status.get(&k).copied(), "{name} {k:?}");
        }
        // Every accepted one is a session, on the same stream.
        let sessions: BTreeSet<(String, u64)> = of_type(&rs, "session")
            .iter()
            .filter_map(|s| {
                let c = s["hops"].as_array()?.iter().find(|h| h["role"] == "client")?;
                Some((c["flow"].as_str()?.to_string(), c["stream_id"].as_u64()?))
            })
            .collect();
        let accepted: BTreeSet<(String, u64)> =
            connects.iter().filter(|k| status.get(k).is_some_and(|s| (200..300).contains(s))).cloned().collect();
        assert_eq!(sessions, accepted, "{name}: a session per accepted CONNECT stream");
        checked += connects.len();
    }
    assert!(checked >= 12, "tshark showed {checked} CONNECT streams");
}

/// Without keys the h2 hops are not readable: the upstream upgrades are
/// paired with the TLS connection by timing, as for any TLS front, and
/// nothing claims a stream.
#[test]
fn without_keys_h2_hops_fall_back_to_tls_inference() {
    let rs = records("haproxy-h2-stripped");
    for h in handshakes(&rs) {
        assert!(h["client"]["stream_id"].is_null());
        assert_eq!(h["client"]["encrypted"], true);
    }
    assert!(summary(&rs)["h2"].is_null());
}

/// Cleartext HTTP/2 with prior knowledge (haproxy `bind ... proto h2`): the
/// client preface makes the connection HTTP/2; its streams are sessions
/// paired with their upgrades, no TLS anywhere.
#[test]
fn prior_knowledge_h2c_streams_are_sessions() {
    let rs = records("haproxy-h2c");
    let log = client_log("haproxy-h2c");
    let hs = handshakes(&rs);
    assert_eq!(hs.len(), client_events(&log, "h2c", "handshake").len());
    for h in &hs {
        assert_eq!(h["client"]["version"], "HTTP/2");
        assert!(h["client"]["tls"].is_null());
        assert!(h["client"]["stream_id"].is_u64());
        assert_eq!(h["upstream"]["status"], 101);
        assert_eq!(h["outcome"], "upgraded");
    }
    let ss = of_type(&rs, "session");
    assert_eq!(ss.len(), hs.len());
    assert!(ss.iter().all(|s| s["close"]["code"] == 1000 && s["messages"]["to_server"] == 3));
    assert!(kinds(&rs, "error").is_empty() && kinds(&rs, "warning").is_empty());
    let h2 = &summary(&rs)["h2"];
    assert_eq!((h2["connections"].as_u64(), h2["websocket_streams"].as_u64()), (Some(1), Some(2)));
}
