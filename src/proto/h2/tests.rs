//! The HTTP/2 parser on exchanges built here (header blocks encoded by the
//! same crate's encoder): RFC 8441 streams, resets, bounds, hostile input.

use super::frame::{PREFACE, encode, flag, setting, ty};
use super::*;
use crate::proto::ws;
use crate::proto::{App, ProtoEvent};

struct Peer {
    enc: loona_hpack::Encoder<'static>,
}

impl Peer {
    fn new() -> Peer {
        Peer { enc: loona_hpack::Encoder::new() }
    }
    fn headers(&mut self, stream: u32, fl: u8, h: &[(&str, &str)]) -> Vec<u8> {
        let block = self.enc.encode(h.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        encode(ty::HEADERS, fl | flag::END_HEADERS, stream, &block)
    }
}

fn settings(pairs: &[(u16, u32)]) -> Vec<u8> {
    let mut p = Vec::new();
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    encode(ty::SETTINGS, 0, 0, &p)
}

fn connect(path: &str) -> Vec<(&'static str, String)> {
    vec![
        (":method", "CONNECT".into()),
        (":protocol", "websocket".into()),
        (":scheme", "https".into()),
        (":path", path.into()),
        (":authority", "example.com".into()),
        ("sec-websocket-version", "13".into()),
    ]
}

fn h<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, s)| (*n, s.as_str())).collect()
}

fn ts(ms: i64) -> Ts {
    Ts(1_000_000_000 + ms * 1000)
}

/// Client preface and SETTINGS both ways (the server offering RFC 8441).
fn start(app: &mut App, out: &mut Vec<ProtoEvent>) {
    let mut c = PREFACE.to_vec();
    c.extend(settings(&[(setting::HEADER_TABLE_SIZE, 4096)]));
    app.data(Dir::ToServer, ts(0), &c, out);
    let s = settings(&[(setting::ENABLE_CONNECT_PROTOCOL, 1), (setting::MAX_CONCURRENT_STREAMS, 100)]);
    app.data(Dir::ToClient, ts(1), &s, out);
}

fn stream_events(out: &[ProtoEvent], id: u32) -> Vec<String> {
    out.iter()
        .filter_map(|e| match e {
            ProtoEvent::H2Stream { stream, ev, .. } if *stream == id => Some(match ev {
                StreamEvent::Open => "open".to_string(),
                StreamEvent::Request(r) => format!("request {} {}", r.method, r.target),
                StreamEvent::Response(r) => format!("response {}", r.status),
                StreamEvent::Upgraded => "upgraded".into(),
                StreamEvent::End { dir } => format!("end {dir:?}"),
                StreamEvent::Reset { dir, code } => format!("reset {dir:?} {}", frame::error_name(*code)),
                StreamEvent::Closed(_) => "closed".into(),
                StreamEvent::Frame { .. } | StreamEvent::RelaySample { .. } => return None,
            }),
            _ => None,
        })
        .collect()
}

fn summary_of(out: &[ProtoEvent], id: u32) -> StreamSummary {
    out.iter()
        .find_map(|e| match e {
            ProtoEvent::H2Stream { stream, ev: StreamEvent::Closed(s), .. } if *stream == id => Some((**s).clone()),
            _ => None,
        })
        .expect("closed")
}

#[test]
fn prior_knowledge_h2c_carries_an_rfc8441_websocket_per_stream() {
    let mut app = App::Detect(Default::default());
    let mut out = Vec::new();
    start(&mut app, &mut out);
    assert!(matches!(app, App::H2(_)), "the preface makes it HTTP/2");
    let (mut cli, mut srv) = (Peer::new(), Peer::new());
    // Two streams at once; DATA of both interleaved.
    let mut c = cli.headers(1, 0, &h(&connect("/chat")));
    c.extend(cli.headers(3, 0, &h(&connect("/feed"))));
    app.data(Dir::ToServer, ts(2), &c, &mut out);
    let mut s = srv.headers(1, 0, &[(":status", "200")]);
    s.extend(srv.headers(3, 0, &[(":status", "200")]));
    app.data(Dir::ToClient, ts(3), &s, &mut out);
    let hello = ws::encode(true, 0, ws::opcode::TEXT, Some([1, 2, 3, 4]), b"hello");
    let mut d = encode(ty::DATA, 0, 1, &hello);
    d.extend(encode(ty::DATA, 0, 3, &hello));
    // A frame split across two DATA frames of stream 1.
    d.extend(encode(ty::DATA, 0, 1, &hello[..3]));
    d.extend(encode(ty::DATA, 0, 1, &hello[3..]));
    app.data(Dir::ToServer, ts(4), &d, &mut out);
    let close = ws::encode(true, 0, ws::opcode::CLOSE, None, &[0x03, 0xe8]);
    app.data(Dir::ToClient, ts(5), &encode(ty::DATA, flag::END_STREAM, 1, &close), &mut out);
    let cclose = ws::encode(true, 0, ws::opcode::CLOSE, Some([9, 9, 9, 9]), &[0x03, 0xe8]);
    app.data(Dir::ToServer, ts(6), &encode(ty::DATA, flag::END_STREAM, 1, &cclose), &mut out);
    assert_eq!(
        stream_events(&out, 1),
        ["open", "request CONNECT /chat", "upgraded", "response 200", "end ToClient", "end ToServer", "closed"]
    );
    let s1 = summary_of(&out, 1);
    let act = s1.ws.expect("WebSocket activity");
    assert_eq!(act.messages, [2, 0]);
    assert_eq!(act.close_frame[1].as_ref().unwrap().code, Some(1000));
    assert_eq!(s1.fin.map(|f| f.is_some()), [true, true]);
    // Stream 3 is still open, with its own frames.
    let App::H2(h2) = &app else { unreachable!() };
    assert_eq!(h2.stream_activity(3).unwrap().messages, [1, 0]);
    let st = h2.stats();
    assert_eq!((st.streams, st.websocket_streams, st.websocket_accepted), (2, 2, 2));
    assert_eq!(st.connect_protocol_offered, 1);
    // The connection ends: stream 3 ends with it.
    let mut end = Vec::new();
    app.finish(&mut end);
    let s3 = summary_of(&end, 3);
    assert!(s3.fin.iter().all(Option::is_none) && !s3.ended_by_connection);
}

#[test]
fn rst_stream_cancel_resets_one_stream_and_goaway_is_a_fact() {
    let mut app = App::H2(Box::new(H2Conn::new(false)));
    let mut out = Vec::new();
    start(&mut app, &mut out);
    let (mut cli, mut srv) = (Peer::new(), Peer::new());
    let mut c = cli.headers(1, 0, &h(&connect("/a")));
    c.extend(cli.headers(3, 0, &h(&connect("/b"))));
    app.data(Dir::ToServer, ts(2), &c, &mut out);
    let mut s = srv.headers(1, 0, &[(":status", "200")]);
    s.extend(srv.headers(3, 0, &[(":status", "200")]));
    s.extend(encode(ty::RST_STREAM, 0, 1, &frame::CANCEL.to_be_bytes()));
    app.data(Dir::ToClient, ts(5000), &s, &mut out);
    assert_eq!(stream_events(&out, 1).last().unwrap(), "closed");
    assert!(stream_events(&out, 1).contains(&"reset ToClient CANCEL".to_string()));
    let s1 = summary_of(&out, 1);
    assert_eq!((s1.reset_code, s1.reset_by), (Some(frame::CANCEL), Some(Dir::ToClient)));
    assert!(s1.rst[1].is_some());
    assert_eq!(s1.ws.unwrap().first_close.map(|c| c.2), Some("rst"));
    // Stream 3 lives on.
    assert!(!stream_events(&out, 3).contains(&"closed".to_string()));
    let mut g = 3u32.to_be_bytes().to_vec();
    g.extend_from_slice(&0u32.to_be_bytes());
    app.data(Dir::ToClient, ts(6000), &encode(ty::GOAWAY, 0, 0, &g), &mut out);
    assert!(
        out.iter().any(|e| matches!(e, ProtoEvent::H2 { fact: ConnFact::GoAway { last_stream: 3, code: 0, .. }, .. }))
    );
    let App::H2(h2) = &app else { unreachable!() };
    assert_eq!(h2.stats().resets[8], 1);
    assert_eq!(h2.open_streams(), 1);
}

#[test]
fn streams_beyond_our_cap_are_counted_not_followed() {
    let mut app = App::H2(Box::new(H2Conn::new(false)));
    let mut out = Vec::new();
    start(&mut app, &mut out);
    let mut cli = Peer::new();
    for i in 0..(MAX_STREAMS as u32 + 10) {
        let c = cli.headers(2 * i + 1, 0, &h(&connect("/x")));
        app.data(Dir::ToServer, ts(10), &c, &mut out);
    }
    let App::H2(h2) = &app else { unreachable!() };
    let st = h2.stats();
    assert_eq!(h2.open_streams(), MAX_STREAMS);
    assert_eq!(st.streams_dropped, 10);
    assert_eq!(st.streams, MAX_STREAMS as u64 + 10);
    // The server allowed 100: every stream past it is counted.
    assert_eq!(st.streams_over_limit, MAX_STREAMS as u64 + 10 - 100);
}

#[test]
fn header_bounds_and_hpack_failures_are_counted() {
    let mut app = App::H2(Box::new(H2Conn::new(false)));
    let mut out = Vec::new();
    start(&mut app, &mut out);
    let mut cli = Peer::new();
    // A header list over our cap: the stream is followed, its head dropped.
    let big = "v".repeat(1000);
    let mut fields = connect("/big");
    for _ in 0..80 {
        fields.push(("x-filler", big.clone()));
    }
    app.data(Dir::ToServer, ts(2), &cli.headers(1, 0, &h(&fields)), &mut out);
    assert_eq!(stream_events(&out, 1), ["open"]);
    // A table size update beyond what the server allowed: the client's
    // table is lost, its later header blocks are counted, not decoded.
    let bad = encode(ty::HEADERS, flag::END_HEADERS, 3, &[0x3f, 0xe1, 0x8b, 0x06, 0x82]);
    app.data(Dir::ToServer, ts(3), &bad, &mut out);
    app.data(Dir::ToServer, ts(4), &cli.headers(5, 0, &h(&connect("/later"))), &mut out);
    let App::H2(h2) = &app else { unreachable!() };
    let st = h2.stats();
    assert_eq!(st.header_lists_dropped, 1);
    assert_eq!(st.hpack_errors, 1);
    assert_eq!(st.header_blocks_lost, 1);
    assert_eq!(st.streams, 3, "streams are still counted");
}

#[test]
fn flow_control_is_counted_not_enforced() {
    let mut app = App::H2(Box::new(H2Conn::new(false)));
    let mut out = Vec::new();
    start(&mut app, &mut out);
    let (mut cli, mut srv) = (Peer::new(), Peer::new());
    app.data(Dir::ToServer, ts(2), &cli.headers(1, 0, &h(&connect("/w"))), &mut out);
    app.data(Dir::ToClient, ts(3), &srv.headers(1, 0, &[(":status", "200")]), &mut out);
    // 70 000 bytes to the server, beyond the 65 535 default window.
    let chunk = vec![0u8; 10_000];
    for _ in 0..7 {
        app.data(Dir::ToServer, ts(4), &encode(ty::DATA, 0, 1, &chunk), &mut out);
    }
    app.data(Dir::ToClient, ts(5), &encode(ty::WINDOW_UPDATE, 0, 0, &100_000u32.to_be_bytes()), &mut out);
    app.data(Dir::ToServer, ts(6), &encode(ty::RST_STREAM, 0, 1, &0u32.to_be_bytes()), &mut out);
    let s = summary_of(&out, 1);
    assert_eq!(s.bytes[0], 70_000);
    assert!(s.overruns > 0);
    let App::H2(h2) = &app else { unreachable!() };
    assert!(h2.stats().flow_control_overruns > 0);
    assert_eq!(h2.stats().window_updates, 1);
}

#[test]
fn a_plain_get_is_a_stream_without_websocket() {
    let mut app = App::H2(Box::new(H2Conn::new(false)));
    let mut out = Vec::new();
    start(&mut app, &mut out);
    let (mut cli, mut srv) = (Peer::new(), Peer::new());
    let get = [(":method", "GET"), (":path", "/api?x=1"), (":scheme", "https"), (":authority", "a")];
    app.data(Dir::ToServer, ts(2), &cli.headers(1, flag::END_STREAM, &get), &mut out);
    let mut s = srv.headers(1, 0, &[(":status", "200"), ("content-type", "text/plain")]);
    s.extend(encode(ty::DATA, flag::END_STREAM, 1, b"ok"));
    app.data(Dir::ToClient, ts(3), &s, &mut out);
    // The request's END_STREAM is not a close (no Fin before the answer).
    assert_eq!(stream_events(&out, 1), ["open", "request GET /api?x=1", "response 200", "end ToClient", "closed"]);
    assert!(summary_of(&out, 1).ws.is_none());
}

/// Hostile input: random bytes after a valid start, cut anywhere, and gaps,
/// never panic and never grow past the bounds.
#[test]
fn random_input_never_panics() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut app = App::H2(Box::new(H2Conn::new(round % 2 == 0)));
        let mut out = Vec::new();
        start(&mut app, &mut out);
        for i in 0..40 {
            let n = (rnd() % 300) as usize;
            let mut b: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
            if i % 3 == 0 && b.len() > 9 {
                // A plausible frame header with a random type and stream.
                let f = encode((rnd() % 10) as u8, (rnd() % 256) as u8, (rnd() % 8) as u32, &b[9..]);
                b = f;
            }
            let dir = if rnd() % 2 == 0 { Dir::ToServer } else { Dir::ToClient };
            if rnd() % 50 == 0 {
                app.gap(dir, ts(i), (rnd() % 100) as u32, &mut out);
            } else {
                app.data(dir, ts(i), &b, &mut out);
            }
        }
        app.closing(Dir::ToClient, ts(99), "rst", &mut out);
        app.finish(&mut out);
        let App::H2(h2) = &app else { unreachable!() };
        assert!(h2.open_streams() <= MAX_STREAMS);
    }
}

#[test]
fn stream_ids_round_trip() {
    let id = stream_conn(123_456, 0x7fff_ffff);
    assert_eq!(split_stream_conn(id), Some((123_456, 0x7fff_ffff)));
    assert_eq!(split_stream_conn(42), None);
    assert_ne!(stream_conn(1, 1), stream_conn(2, 1));
    // Past 2^32 packets: the low 32 bits of the connection's id come back.
    let big = (1u64 << 32) + 5;
    assert_eq!(split_stream_conn(stream_conn(big, 3)), Some((5, 3)));
    assert!(stream_conn(big, 3) >= 1 << 63, "never a TCP connection's id");
    assert!(is_preface(b"PRI * HTTP/2.0\r\n"));
    assert!(!is_preface(b"PRIX"));
}
