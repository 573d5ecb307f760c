//! Conformance with other analyzers' test captures (tests/data/peers): read
//! every one without error, and agree with what Zeek, Suricata, Arkime and
//! nDPI expect of them (handshakes, outcomes, frames, close codes).

mod common;

use common::*;
use serde_json::Value;
use std::path::PathBuf;

fn peer(p: &str) -> PathBuf {
    root().join("tests/data/peers").join(p)
}

fn run(p: &str) -> Vec<Value> {
    records_of(&peer(p), &[])
}

fn one<'a>(rs: &'a [Value], ty: &str) -> &'a Value {
    let v = of_type(rs, ty);
    assert_eq!(v.len(), 1, "expected one {ty}: {v:?}");
    v[0]
}

fn latency(h: &Value) -> f64 {
    h["latency_ms"]["client"].as_f64().unwrap()
}

#[test]
fn every_peer_capture_is_read_without_error() {
    let mut n = 0;
    for dir in ["zeek", "suricata", "arkime", "ndpi"] {
        for e in std::fs::read_dir(peer(dir)).unwrap() {
            let p = e.unwrap().path();
            if !matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")) {
                continue;
            }
            let rs = records_of(&p, &[]);
            let s = summary(&rs);
            assert!(s["packets"].as_u64().unwrap() > 0, "{}", p.display());
            // Also through text and verbose output, which format everything.
            let out = wstap(&["-r", p.to_str().unwrap(), "-vv"]);
            assert!(out.status.success(), "{}", p.display());
            n += 1;
        }
    }
    assert_eq!(n, 25);
}

#[test]
fn zeek_http_websocket_token_list_and_empty_close_bodies() {
    let rs = run("zeek/http_websocket.pcap");
    let h = one(&rs, "handshake");
    assert_eq!(h["outcome"], "upgraded");
    assert_eq!(h["client"]["connection"], "keep-alive, Upgrade");
    assert!((latency(h) - 31.6).abs() < 0.1, "{}", latency(h));
    let s = one(&rs, "session");
    // client 2 text + close; server 1 text + 4 binary + close
    assert_eq!(s["frames"]["to_server"], 3);
    assert_eq!(s["frames"]["to_client"], 6);
    assert_eq!(s["close"]["code"], Value::Null, "close frames without a body (1005)");
    assert_eq!(s["close"]["clean"], true);
    assert_eq!(s["hops"][0]["close_frames"]["to_client"], 0);
}

#[test]
fn zeek_jupyter_latency_and_frames() {
    let rs = run("zeek/websocket_jupyter-websocket.pcap");
    let h = one(&rs, "handshake");
    assert!((latency(h) - 974.0).abs() < 1.0, "{}", latency(h));
    assert!(h["upstream"].is_null(), "single hop: upstream not seen");
    let s = one(&rs, "session");
    assert_eq!((s["frames"]["to_server"].as_u64(), s["frames"]["to_client"].as_u64()), (Some(2), Some(12)));
    assert_eq!(s["close"]["clean"], true);
}

#[test]
fn zeek_broker_client_close_without_server_reply() {
    let rs = run("zeek/websocket_broker-websocket.pcap");
    let s = one(&rs, "session");
    assert_eq!(s["close"]["by"], "client");
    assert_eq!(s["close"]["code"], 1000);
    assert_eq!(s["close"]["clean"], false, "the server never sent its close frame");
    assert_eq!(s["messages"]["to_server"], 4);
    assert_eq!(s["messages"]["to_client"], 4);
}

#[test]
fn zeek_fragments_and_pings() {
    let rs = run("zeek/websocket_two-binary-fragments.pcap");
    let s = one(&rs, "session");
    assert_eq!(s["close"]["code"], 1000);
    assert_eq!(s["close"]["clean"], true);
    let rs = run("zeek/websocket_fragmented-http-reply.pcap");
    let s = one(&rs, "session");
    // 1 binary + 4 continuation frames (with a ping among them) = 1 message.
    assert_eq!(s["messages"]["to_client"], 1);
    assert_eq!(s["close"]["clean"], true);
}

#[test]
fn zeek_message_too_big_close_code() {
    let rs = run("zeek/websocket_message-too-big-status.pcap");
    let s = one(&rs, "session");
    assert_eq!(s["close"]["by"], "client");
    assert_eq!(s["close"]["code"], 1009);
    assert_eq!(s["close"]["reason"], "over size limit (4 > 2 bytes)");
    assert_eq!(s["close"]["clean"], true);
}

#[test]
fn zeek_ping_in_the_101_segment_is_a_frame() {
    let a = run("zeek/websocket_reply-ping-separate.pcap");
    let b = run("zeek/websocket_reply-ping-coalesced.pcap");
    let (sa, sb) = (one(&a, "session"), one(&b, "session"));
    for k in ["frames", "pings", "pongs", "messages"] {
        assert_eq!(sa[k], sb[k], "{k}");
    }
    assert_eq!(sb["pings"]["to_client"], 1);
    assert_eq!(sb["close"]["code"], 1000);
}

#[test]
fn zeek_wrong_accept_is_a_finding() {
    let rs = run("zeek/websocket_wrong-accept-header.pcap");
    let f = of_type(&rs, "finding").into_iter().find(|f| f["kind"] == "bad-accept").expect("bad-accept");
    assert_eq!(f["detail"]["expected"], "N8ntNYkX6Qerw4tK3s/CYzpSZNc=");
    assert_eq!(f["severity"], "error");
}

#[test]
fn zeek_oversized_close_frame_pcapng() {
    let rs = run("zeek/websocket_oversized-close-frame.pcapng");
    let s = one(&rs, "session");
    assert_eq!(s["close"]["by"], "server");
    assert_eq!(s["close"]["code"], 1000);
    assert_eq!(s["close"]["reason"].as_str().unwrap().len(), 123, "reason capped like Zeek's");
    assert_eq!(s["hops"][0]["oversized_control_frames"], 1);
}

#[test]
fn zeek_wstunnel_unmasked_client_frames_still_parse() {
    let rs = run("zeek/websocket_wstunnel-http.pcap");
    let s = one(&rs, "session");
    assert!(s["hops"][0]["unmasked_client_frames"].as_u64().unwrap() > 0);
    assert_eq!(s["close"]["code"], 1000);
    assert_eq!(s["close"]["clean"], true);
    let rs = run("zeek/websocket_wstunnel-https.pcap");
    let s = one(&rs, "session");
    assert_eq!((s["frames"]["to_server"].as_u64(), s["frames"]["to_client"].as_u64()), (Some(6), Some(32)));
    let rs = run("zeek/websocket_wstunnel-ssh.pcap");
    let hs = of_type(&rs, "handshake");
    assert_eq!(hs.len(), 2);
    assert!(hs.iter().all(|h| h["outcome"] == "upgraded"));
    assert!(of_type(&rs, "session").iter().all(|s| s["close"]["code"] == 1000));
}

#[test]
fn non_websocket_upgrades_are_not_websocket() {
    for p in
        ["zeek/http_docker-http-upgrade.pcap", "suricata/http2-keywords2.pcap", "suricata/drop-protocol-change.pcap"]
    {
        let rs = run(p);
        assert!(of_type(&rs, "handshake").is_empty(), "{p}");
        assert!(of_type(&rs, "session").is_empty(), "{p}");
        assert_eq!(summary(&rs)["handshakes"]["total"], 0, "{p}");
    }
}

#[test]
fn suricata_basic_case_variants_and_open_session() {
    let rs = run("suricata/websocket.pcap");
    let h = one(&rs, "handshake");
    assert_eq!(h["outcome"], "upgraded");
    assert!((latency(h) - 273.0).abs() < 1.0, "{}", latency(h));
    let s = one(&rs, "session");
    assert_eq!(s["open"], true, "the capture ends without a close");
    assert_eq!(s["close"]["by"], Value::Null);
    assert_eq!((s["frames"]["to_server"].as_u64(), s["frames"]["to_client"].as_u64()), (Some(3), Some(14)));
}

#[test]
fn suricata_compressed_frames() {
    let rs = run("suricata/websocket-compressed.pcap");
    let s = one(&rs, "session");
    assert_eq!(s["compressed"], true);
    assert_eq!(s["frames"]["to_client"], 10);
}

#[test]
fn suricata_control_frame_between_fragments() {
    let rs = run("suricata/websocket-control-frag.pcap");
    let s = one(&rs, "session");
    assert_eq!(s["frames"]["to_server"], 3);
    assert_eq!(s["messages"]["to_server"], 1, "text FIN=0 + ping + continuation FIN=1 is one message");
    assert_eq!(s["pings"]["to_server"], 1);
    assert_eq!(s["pongs"]["to_client"], 1);
}

#[test]
fn suricata_cooked_capture_ping_and_abnormal_end() {
    let rs = run("suricata/websocket-ping.pcap");
    assert_eq!(summary(&rs)["flows"], 2);
    let s = one(&rs, "session");
    assert_eq!(s["pings"]["to_server"], 1);
    assert_eq!(s["pongs"]["to_client"], 1);
    assert_eq!(s["close"]["clean"], false);
    assert!(of_type(&rs, "finding").iter().any(|f| f["kind"] == "abnormal-close"));
}

#[test]
fn suricata_request_without_response_is_incomplete() {
    let rs = run("suricata/http-request-header-multi.pcap");
    let h = one(&rs, "handshake");
    assert_eq!(h["outcome"], "incomplete");
    assert_eq!(h["client"]["status"], Value::Null);
}

#[test]
fn arkime_keepalives_are_not_activity() {
    let rs = run("arkime/websocket.pcap");
    let h = one(&rs, "handshake");
    assert!((latency(h) - 26.9).abs() < 0.1);
    let s = one(&rs, "session");
    assert_eq!((s["frames"]["to_server"].as_u64(), s["frames"]["to_client"].as_u64()), (Some(2), Some(3)));
    assert_eq!(s["open"], true);
    assert!(s["hops"][0]["keepalives"].as_u64().unwrap() >= 2, "Windows keep-alive probes counted, not parsed");
    assert!(summary(&rs)["reassembly"]["keepalives"].as_u64().unwrap() >= 2);
}

#[test]
fn ndpi_qinq_gtp_and_cooked_pcapng() {
    let rs = run("ndpi/http_origin_different_than_host.pcap");
    let h = one(&rs, "handshake");
    assert_eq!(h["outcome"], "upgraded");
    assert!((latency(h) - 151.4).abs() < 0.2);
    let rs = run("ndpi/tls_heur__vmess-websocket.pcapng");
    assert_eq!(summary(&rs)["flows"], 3);
    let s = one(&rs, "session");
    assert_eq!((s["frames"]["to_server"].as_u64(), s["frames"]["to_client"].as_u64()), (Some(3), Some(13)));
    // Mid-stream frames without a handshake: nothing WebSocket is claimed.
    let rs = run("ndpi/websocket.pcap");
    assert!(of_type(&rs, "handshake").is_empty());
}
