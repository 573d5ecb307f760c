//! The HTTP/1 exchange, fed whole and at every split point.

use super::*;
use crate::proto::ws::{encode, opcode};

fn run(steps: &[(Dir, &[u8])]) -> Vec<ProtoEvent> {
    let mut c = HttpConn::new(true);
    let mut out = Vec::new();
    for (i, (d, data)) in steps.iter().enumerate() {
        c.data(*d, Ts(i as i64), data, &mut out);
    }
    out
}

fn kinds(ev: &[ProtoEvent]) -> Vec<String> {
    ev.iter()
        .map(|e| match e {
            ProtoEvent::Request { req, .. } => format!("req {} {}", req.method, req.target),
            ProtoEvent::Response { resp, .. } => format!("resp {}", resp.status),
            ProtoEvent::Upgraded { websocket, .. } => format!("upgraded ws={websocket}"),
            ProtoEvent::Frame { dir, frame, .. } => format!("frame {:?} {}", dir, opcode::name(frame.opcode)),
            ProtoEvent::Anomaly { what, .. } => format!("anomaly {what}"),
            ProtoEvent::Tls { .. } | ProtoEvent::TlsInfo { .. } => "tls".into(),
            ProtoEvent::TlsTurn { .. } => "tls-turn".into(),
            ProtoEvent::RelaySample { .. } => "relay".into(),
            ProtoEvent::H2Stream { .. } | ProtoEvent::H2 { .. } => "h2".into(),
        })
        .collect()
}

const UPGRADE: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
const OK101: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

#[test]
fn keepalive_and_pipelining_with_bodies() {
    let reqs = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloHEAD /c HTTP/1.1\r\n\r\nGET /d HTTP/1.1\r\n\r\n";
    let resps: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n";
    let ev = run(&[(Dir::ToServer, reqs), (Dir::ToClient, resps)]);
    assert_eq!(
        kinds(&ev),
        ["req GET /a", "req POST /b", "req HEAD /c", "req GET /d", "resp 200", "resp 200", "resp 200", "resp 304"]
    );
}

#[test]
fn every_split_point_gives_the_same_messages() {
    let reqs: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\nGET /c HTTP/1.0\r\n\r\n";
    let whole = kinds(&run(&[(Dir::ToServer, reqs)]));
    assert_eq!(whole, ["req GET /a", "req POST /b", "req GET /c"]);
    for cut in 0..reqs.len() {
        let got = kinds(&run(&[(Dir::ToServer, &reqs[..cut]), (Dir::ToServer, &reqs[cut..])]));
        assert_eq!(got, whole, "cut at {cut}");
    }
}

#[test]
fn invalid_frame_length_raises_the_desync_anomaly() {
    let mut bad = vec![0x82, 127];
    bad.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
    let ev = run(&[(Dir::ToServer, UPGRADE), (Dir::ToClient, OK101), (Dir::ToClient, &bad)]);
    assert_eq!(kinds(&ev), ["req GET /ws", "upgraded ws=true", "resp 101", "anomaly ws-desync"]);
}

#[test]
fn upgrade_then_frames_in_the_101_segment() {
    let mut resp = OK101.to_vec();
    resp.extend(encode(true, 0, opcode::PING, None, b"p"));
    let client_frame = encode(true, 0, opcode::TEXT, Some([1, 2, 3, 4]), b"hi");
    let ev = run(&[(Dir::ToServer, UPGRADE), (Dir::ToClient, &resp), (Dir::ToServer, &client_frame)]);
    assert_eq!(
        kinds(&ev),
        ["req GET /ws", "upgraded ws=true", "resp 101", "frame ToClient ping", "frame ToServer text"]
    );
}

#[test]
fn client_bytes_before_the_101_are_replayed_as_frames() {
    let mut req = UPGRADE.to_vec();
    req.extend(encode(true, 0, opcode::TEXT, Some([1, 2, 3, 4]), b"early"));
    let ev = run(&[(Dir::ToServer, &req), (Dir::ToClient, OK101)]);
    assert_eq!(kinds(&ev), ["req GET /ws", "upgraded ws=true", "resp 101", "frame ToServer text"]);
}

#[test]
fn refused_upgrade_resumes_http() {
    let mut req = UPGRADE.to_vec();
    req.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
    let ev = run(&[
        (Dir::ToServer, &req),
        (Dir::ToClient, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"),
        (Dir::ToClient, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ]);
    assert_eq!(kinds(&ev), ["req GET /ws", "resp 403", "req GET /next", "resp 200"]);
}

#[test]
fn interim_responses_and_non_websocket_upgrades() {
    let ev = run(&[
        (Dir::ToServer, b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"),
        (
            Dir::ToClient,
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x12\x04",
        ),
        (Dir::ToServer, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ]);
    assert_eq!(kinds(&ev), ["req GET /", "resp 100", "upgraded ws=false", "resp 101"]);
}

#[test]
fn garbage_then_resync_at_a_message_start() {
    let mut c = HttpConn::new(true);
    let mut out = Vec::new();
    c.data(Dir::ToServer, Ts(0), b"GET /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234", &mut out);
    c.gap(Dir::ToServer, 100, &mut out, Ts(1));
    c.data(Dir::ToServer, Ts(2), b"tail of something", &mut out);
    c.data(Dir::ToServer, Ts(3), b"GET /b HTTP/1.1\r\n\r\n", &mut out);
    assert_eq!(kinds(&out), ["req GET /a", "req GET /b"]);
    let mut c = HttpConn::new(true);
    let mut out = Vec::new();
    c.data(Dir::ToServer, Ts(0), b"GET /a HTTP/1.1\r\n\x01\x02\r\n\r\n", &mut out);
    assert_eq!(kinds(&out), ["anomaly http-malformed-request"]);
}

#[test]
fn head_size_is_bounded() {
    let mut c = HttpConn::new(true);
    let mut out = Vec::new();
    c.data(Dir::ToServer, Ts(0), b"GET / HTTP/1.1\r\n", &mut out);
    let line = [b'a'; 100];
    for _ in 0..2000 {
        c.data(Dir::ToServer, Ts(0), &line, &mut out);
    }
    assert!(c.halves[0].buf.len() <= MAX_HEAD + 1);
    assert_eq!(kinds(&out), ["anomaly http-head-too-large"]);
}

#[test]
fn many_header_lines_are_taken_as_nginx_takes_them() {
    let mut req = b"GET /ws HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..600 {
        req.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    let ev = run(&[(Dir::ToServer, &req), (Dir::ToClient, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
    assert_eq!(kinds(&ev), ["req GET /ws", "resp 200"]);
    match &ev[0] {
        ProtoEvent::Request { req, .. } => assert_eq!(req.headers.len(), 601),
        _ => unreachable!(),
    }
}

#[test]
fn pipelining_beyond_the_limit_is_framed_counted_and_not_reported() {
    let n = MAX_PENDING + 50;
    let mut reqs = Vec::new();
    for i in 0..n {
        let m = if i == MAX_PENDING + 10 { "HEAD" } else { "GET" };
        reqs.extend_from_slice(format!("{m} /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let mut c = HttpConn::new(false);
    let mut out = Vec::new();
    c.data(Dir::ToServer, Ts(0), &reqs, &mut out);
    let k = kinds(&out);
    assert_eq!(k.iter().filter(|x| x.starts_with("req")).count(), MAX_PENDING);
    assert_eq!(k.iter().filter(|x| *x == "anomaly http-pipeline-limit").count(), 50);
    assert!(c.pending.len() <= MAX_PENDING + 3, "untracked runs are one entry each: {}", c.pending.len());
    let held = c.buffered();
    assert!(held >= MAX_PENDING * 1024, "{held}");
    // Every response is framed in order (the HEAD one has no body),
    // only the reported requests' ones are reported.
    let mut resps = Vec::new();
    for i in 0..n {
        if i == MAX_PENDING + 10 {
            resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
        } else {
            resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    }
    resps.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
    out.clear();
    c.data(Dir::ToClient, Ts(1), &resps, &mut out);
    let k = kinds(&out);
    assert_eq!(k.iter().filter(|x| *x == "resp 200").count(), MAX_PENDING);
    assert_eq!(k.last().map(String::as_str), Some("resp 204"), "framing held to the end: {k:?}");
    assert!(c.pending.is_empty());
    assert!(c.buffered() < 1024);
}

#[test]
fn shedding_drops_partial_heads() {
    let mut c = HttpConn::new(false);
    let mut out = Vec::new();
    c.data(Dir::ToServer, Ts(0), &[b'G'; 1], &mut out);
    c.data(Dir::ToServer, Ts(0), b"ET / HTTP/1.1\r\nX-Big: ", &mut out);
    c.data(Dir::ToServer, Ts(0), &[b'a'; 30_000], &mut out);
    assert!(c.buffered() >= 30_000);
    assert!(c.shed(Ts(1), &mut out) >= 30_000);
    assert!(c.buffered() < 1024);
    assert_eq!(kinds(&out), ["anomaly http-head-shed"]);
    c.data(Dir::ToServer, Ts(2), b"GET /next HTTP/1.1\r\n\r\n", &mut out);
    assert_eq!(kinds(&out), ["anomaly http-head-shed", "req GET /next"]);
}
