//! A refused WebSocket over HTTP/2 (RFC 8441), on the real haproxy 2.6
//! capture of captures/record.sh (haproxy-h2-refused): one extended CONNECT
//! refused by the backend (its Origin check answers the HTTP/1.1 upgrade
//! 403, relayed as `:status 403`) and one refused by haproxy itself (an
//! `http-request deny` rule: nothing forwarded), then a good Origin that
//! works. What a user checks: each refusal is reported with the status the
//! client got, blamed on the right party (backend or proxy) with the fix
//! for that party, both hops paired where there are two; checked against
//! what the client logged and against tshark with the same key log.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

const NAME: &str = "haproxy-h2-refused";

fn keys() -> String {
    root().join("captures").join(format!("{NAME}.keys")).to_str().unwrap().to_string()
}

fn analysed() -> Vec<Value> {
    let k = keys();
    records_of(&capture(NAME), &["--keylog", &k])
}

/// What the client logged for each path it opened: (group, path) -> status.
fn client_statuses() -> BTreeMap<(String, String), u64> {
    client_log(NAME)
        .iter()
        .filter(|e| e["event"] == "handshake")
        .map(|e| {
            (
                (e["group"].as_str().unwrap().to_string(), e["path"].as_str().unwrap().to_string()),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn handshake<'a>(rs: &'a [Value], path: &str, outcome: &str) -> &'a Value {
    let hs: Vec<&Value> =
        of_type(rs, "handshake").into_iter().filter(|h| h["path"] == path && h["outcome"] == outcome).collect();
    assert_eq!(hs.len(), 1, "one {outcome} handshake on {path}: {hs:?}");
    hs[0]
}

fn findings_about<'a>(rs: &'a [Value], h: &Value) -> Vec<&'a Value> {
    of_type(rs, "finding").into_iter().filter(|f| f["detail"]["handshake"] == h["id"]).collect()
}

/// The backend refused the Origin: the h2 stream and the HTTP/1.1 upgrade
/// haproxy made for it are paired (its X-Request-ID), both 403, and the
/// finding blames the backend, not the proxy, with the backend's fix.
#[test]
fn the_backends_refusal_is_paired_across_the_protocol_change_and_blamed_on_the_backend() {
    let rs = analysed();
    let saw = client_statuses();
    assert_eq!(saw[&("refused".to_string(), "/ws".to_string())], 403, "what the client saw");

    let h = handshake(&rs, "/ws", "rejected");
    let (c, u) = (&h["client"], &h["upstream"]);
    assert_eq!((c["version"].as_str(), c["method"].as_str()), (Some("HTTP/2"), Some("CONNECT")));
    assert_eq!(c["protocol"], "websocket");
    assert_eq!(c["stream_id"], 1);
    assert_eq!(c["status"], 403, "the :status the client got");
    assert_eq!(c["tls"]["alpn"], "h2");
    assert_eq!((u["version"].as_str(), u["method"].as_str()), (Some("HTTP/1.1"), Some("GET")));
    assert_eq!(u["upgrade"], "websocket", "haproxy forwarded an intact upgrade");
    assert!(u["key"].is_string(), "with a key it made up");
    assert_eq!(u["status"], 403);
    assert_eq!(u["flow"].as_str().unwrap().rsplit(':').next(), Some("14010"), "to the backend");
    assert_eq!(h["paired_by"], "request-id");
    assert_eq!(h["pair_confidence"], "high");

    let fs = findings_about(&rs, h);
    assert_eq!(fs.len(), 1, "{fs:?}");
    let f = fs[0];
    assert_eq!(f["kind"], "handshake-rejected");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["flows"], serde_json::json!([c["flow"], u["flow"]]), "both hops");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.starts_with("the backend at 127.0.0.1:14010 refused the upgrade for /ws with 403"), "{msg}");
    assert!(msg.contains("not a proxy problem") && msg.ends_with("the client got 403"), "{msg}");
    assert!(f["fix"].as_str().unwrap().contains("fix the backend side, e.g. its allowed Origins"), "{f}");
    assert_eq!(f["detail"]["status"], 403);
    assert_eq!(f["detail"]["origin"], "https://evil.example", "the Origin the backend refused");
    assert_eq!(f["detail"]["proxy"], "haproxy");
    assert_eq!(f["detail"]["hops"]["client"]["request_line"], "CONNECT /ws HTTP/2");
    assert_eq!(f["detail"]["hops"]["upstream"]["request_line"], "GET /ws HTTP/1.1");
    let diff = f["detail"]["diff"].as_array().unwrap();
    let key = diff.iter().find(|d| d["header"] == "Sec-WebSocket-Key").unwrap();
    assert_eq!(key["change"], "made up by the proxy");
}

/// haproxy denied /admin itself: nothing went upstream, and the finding
/// blames haproxy's own access rule (not a missing route, not the backend)
/// with haproxy's fix.
#[test]
fn the_proxys_own_denial_is_blamed_on_the_proxy() {
    let rs = analysed();
    let saw = client_statuses();
    assert_eq!(saw[&("refused".to_string(), "/admin/ws".to_string())], 403, "what the client saw");

    let h = handshake(&rs, "/admin/ws", "rejected");
    let c = &h["client"];
    assert_eq!(c["protocol"], "websocket");
    assert_eq!(c["stream_id"], 3, "the second stream of the same connection");
    assert_eq!(c["flow"], handshake(&rs, "/ws", "rejected")["client"]["flow"]);
    assert_eq!(c["status"], 403);
    assert!(h["upstream"].is_null(), "haproxy forwarded nothing: {h}");
    assert!(h["paired_by"].is_null());

    let fs = findings_about(&rs, h);
    assert_eq!(fs.len(), 1, "{fs:?}");
    let f = fs[0];
    assert_eq!(f["kind"], "upgrade-failed", "the proxy's doing");
    assert_eq!(f["severity"], "warning", "an access rule is policy, as the backend's refusal is");
    assert_eq!(f["flows"], serde_json::json!([c["flow"]]));
    let msg = f["message"].as_str().unwrap();
    assert!(msg.starts_with("haproxy refused CONNECT /admin/ws itself with 403"), "{msg}");
    assert!(msg.contains("forwarded nothing upstream") && msg.contains("not the backend"), "{msg}");
    assert!(!msg.contains("no location/route"), "a deny is not a missing route: {msg}");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.contains("'http-request deny'") && fix.contains("/admin/ws"), "{fix}");
    assert_eq!(f["detail"]["status"], 403);
    assert_eq!(f["detail"]["proxy"], "haproxy");
}

/// The allowed Origin gets through on its own connection: a session, and
/// nothing else is reported; the summary counts what happened.
#[test]
fn the_allowed_origin_works_and_the_summary_counts_the_refusals() {
    let rs = analysed();
    let saw = client_statuses();
    assert_eq!(saw[&("good".to_string(), "/ws".to_string())], 200);
    let h = handshake(&rs, "/ws", "upgraded");
    assert_eq!((h["client"]["status"].as_u64(), h["upstream"]["status"].as_u64()), (Some(200), Some(101)));
    let ss = of_type(&rs, "session");
    assert_eq!(ss.len(), 1);
    assert_eq!(ss[0]["handshake"], h["id"]);
    assert_eq!(ss[0]["close"]["code"], 1000);
    assert!(kinds(&rs, "error").is_empty(), "{:?}", kinds(&rs, "error"));
    assert_eq!(kinds(&rs, "warning"), ["handshake-rejected", "upgrade-failed"]);
    let s = summary(&rs);
    assert_eq!(s["handshakes"]["rejected"], 2);
    assert_eq!(s["handshakes"]["upgraded"], 1);
    assert_eq!(s["h2"]["websocket_streams"], 3);
    assert_eq!(s["h2"]["websocket_accepted"], 1);
    // Warnings only: --fail-on error passes, --fail-on warning does not.
    let (p, k) = (capture(NAME), keys());
    let run = |level: &str| wstap(&["-r", p.to_str().unwrap(), "--keylog", &k, "-q", "--fail-on", level]).status.code();
    assert_eq!(run("error"), Some(0));
    assert_ne!(run("warning"), Some(0));
}

/// tshark with the same key log shows the same three extended CONNECT
/// streams with the same :status on each.
#[test]
fn tshark_shows_the_same_connect_streams_and_statuses() {
    if Command::new("tshark").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "tshark is a test dependency (scripts/deps.sh)");
        eprintln!("tshark not installed: skipped");
        return;
    }
    let out = Command::new("tshark")
        .args(["-r", capture(NAME).to_str().unwrap(), "-o", &format!("tls.keylog_file:{}", keys())])
        .args(["-Y", "http2.type == 1", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"])
        .args(["-E", "aggregator=;", "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "http2.streamid"])
        .args(["-e", "http2.header.name", "-e", "http2.header.value"])
        .stderr(Stdio::null())
        .output()
        .expect("tshark runs");
    // (client port, stream) -> (:path, :status)
    let mut streams: BTreeMap<(String, u64), (Option<String>, Option<u64>)> = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split('|').collect();
        let names: Vec<&str> = f[3].split(';').collect();
        let values: Vec<&str> = f[4].split(';').collect();
        let sid: u64 = f[2].split(';').next_back().unwrap().parse().unwrap();
        let get = |n: &str| names.iter().position(|x| *x == n).and_then(|i| values.get(i).copied());
        if get(":method") == Some("CONNECT") && get(":protocol") == Some("websocket") {
            streams.entry((f[0].to_string(), sid)).or_default().0 = get(":path").map(str::to_string);
        } else if let Some(s) = get(":status") {
            streams.entry((f[1].to_string(), sid)).or_default().1 = s.parse().ok();
        }
    }
    let theirs: Vec<(String, u64, u64)> = streams
        .into_iter()
        .filter_map(|((port, sid), (p, s))| Some((format!("{port}#{sid}:{}", p?), sid, s?)))
        .collect();
    let rs = analysed();
    let ours: Vec<(String, u64, u64)> = of_type(&rs, "handshake")
        .iter()
        .map(|h| {
            let c = &h["client"];
            let port = c["flow"].as_str().unwrap().split("->").next().unwrap().rsplit(':').next().unwrap();
            let sid = c["stream_id"].as_u64().unwrap();
            (format!("{port}#{sid}:{}", h["path"].as_str().unwrap()), sid, c["status"].as_u64().unwrap())
        })
        .collect();
    let mut ours = ours;
    ours.sort();
    assert_eq!(ours, theirs);
    assert_eq!(theirs.iter().map(|t| t.2).collect::<Vec<_>>().iter().filter(|s| **s == 403).count(), 2);
}
