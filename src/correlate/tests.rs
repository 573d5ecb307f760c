//! Hop correlation from hand-built events: what pairs, what must not.

use super::*;
use crate::facts::Collect;
use crate::flow::Endpoint;
use crate::proto::{Headers, Version};
use crate::proto::{Request, Response};
use crate::record::{Handshake, Outcome};

fn ep(s: &str) -> Endpoint {
    let sa: std::net::SocketAddr = s.parse().unwrap();
    Endpoint::new(sa.ip(), sa.port())
}

fn flow(src: &str, dst: &str) -> FlowKey {
    FlowKey { src: ep(src), dst: ep(dst) }
}

fn req(target: &str, h: &[(&str, &str)]) -> Box<Request> {
    Box::new(Request {
        method: "GET".into(),
        target: target.into(),
        version: Version::Http11,
        headers: Headers::from_pairs(h.iter().copied()),
        head_len: 0,
    })
}

fn resp(status: u16) -> Box<Response> {
    Box::new(Response {
        version: Version::Http11,
        status,
        reason: String::new(),
        headers: Headers::default(),
        head_len: 0,
    })
}

struct Run {
    a: Correlator,
    /// What correlation raised: its records, and how many facts.
    out: Collect,
    t: i64,
}

impl Run {
    fn new(roles: Roles) -> Run {
        let cfg = Config { verbose: false, redact: Redactor { enabled: true }, roles, timeouts: vec![], live: false };
        Run { a: Correlator::new(cfg), out: Collect::default(), t: 1_000_000 }
    }
    fn ev(&mut self, conn: ConnId, kind: EventKind) {
        self.t += 1000;
        self.a.event(Event { conn, ts: Ts(self.t), kind }, &mut self.out);
    }
    fn open(&mut self, conn: ConnId, f: FlowKey) {
        self.ev(conn, EventKind::Open { flow: f, syn: true });
        self.ev(conn, EventKind::Established);
    }
    fn handshakes(&mut self) -> Vec<Handshake> {
        self.a.finish(Ts(self.t + 1000), &mut self.out);
        std::mem::take(&mut self.out.records)
            .into_iter()
            .filter_map(|r| match r {
                Record::Handshake(h) => Some(h),
                _ => None,
            })
            .collect()
    }
}

const WS: &[(&str, &str)] = &[("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13")];

fn ws(key: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = WS.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.push(("Sec-WebSocket-Key".into(), key.into()));
    v.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    v
}

fn wsreq(target: &str, key: &str, extra: &[(&str, &str)]) -> Box<Request> {
    let h = ws(key, extra);
    let refs: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    req(target, &refs)
}

#[test]
fn pairs_by_key_on_loopback() {
    let mut r = Run::new(Roles::default());
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    r.ev(1, EventKind::Request(wsreq("/ws", "K1", &[])));
    r.open(2, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(2, EventKind::Request(wsreq("/ws", "K1", &[("X-Forwarded-For", "127.0.0.1")])));
    r.ev(2, EventKind::Response(resp(101)));
    r.ev(1, EventKind::Response(resp(101)));
    let h = r.handshakes();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].paired_by.map(|x| x.name()), Some("key"));
    assert_eq!(h[0].client.as_ref().unwrap().flow.to_string(), "127.0.0.1:50000->127.0.0.1:8080");
    assert_eq!(h[0].upstream.as_ref().unwrap().flow.to_string(), "127.0.0.1:50002->127.0.0.1:3000");
    assert_eq!(h[0].outcome, Outcome::Upgraded);
}

#[test]
fn a_minted_key_still_pairs_on_forwarded_for_and_headers() {
    let mut r = Run::new(Roles::default());
    r.open(1, flow("10.0.0.7:50000", "192.0.2.1:443"));
    r.ev(1, EventKind::Request(wsreq("/chat", "CLIENTKEY", &[("User-Agent", "Firefox")])));
    r.open(2, flow("10.1.0.1:40000", "10.1.0.2:3000"));
    r.ev(
        2,
        EventKind::Request(wsreq("/chat", "PROXYKEY", &[("User-Agent", "Firefox"), ("X-Forwarded-For", "10.0.0.7")])),
    );
    r.ev(2, EventKind::Response(resp(101)));
    r.ev(1, EventKind::Response(resp(101)));
    let h = r.handshakes();
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h[0].upstream.is_some(), "paired despite the new key");
    assert_eq!(h[0].paired_by.map(|x| x.name()), Some("headers"));
}

#[test]
fn another_host_without_strong_evidence_is_not_a_forward() {
    // Same path, no key, no X-Forwarded-For, and the "forward" leaves from
    // a host that is not the one the client connected to.
    let mut r = Run::new(Roles::default());
    r.open(1, flow("10.0.0.7:50000", "192.0.2.1:80"));
    r.ev(1, EventKind::Request(req("/api", &[("User-Agent", "curl")])));
    r.open(2, flow("10.9.9.9:40000", "10.1.0.2:3000"));
    r.ev(2, EventKind::Request(req("/api", &[("User-Agent", "curl")])));
    r.ev(2, EventKind::Response(resp(200)));
    r.ev(1, EventKind::Response(resp(200)));
    r.a.finish(Ts(r.t + 1), &mut r.out);
    assert_eq!(r.a.stats.exchanges, 2, "two lone requests, not one pair");
}

#[test]
fn a_later_client_request_is_not_chained_behind_a_backend_request() {
    let mut r = Run::new(Roles::default());
    // A plain request through the proxy, to learn who is the backend.
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    r.ev(1, EventKind::Request(req("/api", &[("User-Agent", "lab")])));
    r.open(2, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(2, EventKind::Request(req("/api", &[("User-Agent", "lab"), ("X-Forwarded-For", "127.0.0.1")])));
    // While that upstream request waits, another client asks the same path.
    r.open(3, flow("127.0.0.1:50004", "127.0.0.1:8080"));
    r.ev(3, EventKind::Request(req("/api", &[("User-Agent", "lab")])));
    let t3 = r.a.txns.values().find(|t| t.conn == 3).expect("request 3 is open");
    assert_eq!(t3.from, None, "client request 3 must not hang off the backend request");
    let t2 = r.a.txns.values().find(|t| t.conn == 2).expect("request 2 is open");
    assert!(t2.from.is_some(), "request 2 is the forward of request 1");
    r.ev(2, EventKind::Response(resp(200)));
    r.ev(1, EventKind::Response(resp(200)));
    r.ev(3, EventKind::Response(resp(200)));
    // And a WebSocket handshake never hangs off a plain request.
    r.open(4, flow("127.0.0.1:50006", "127.0.0.1:8080"));
    r.ev(4, EventKind::Request(wsreq("/api", "K9", &[("User-Agent", "lab")])));
    let h = r.handshakes();
    assert!(h.iter().all(|h| h.hop_index == 0 && h.upstream.is_none()), "{h:?}");
}

#[test]
fn a_chain_of_proxies_gives_linked_records() {
    let mut r = Run::new(Roles::default());
    r.open(1, flow("10.0.0.7:50000", "10.0.0.1:443"));
    r.ev(1, EventKind::Request(wsreq("/ws", "K", &[])));
    r.open(2, flow("10.0.0.1:41000", "10.0.0.2:8080"));
    r.ev(2, EventKind::Request(wsreq("/ws", "K", &[("X-Forwarded-For", "10.0.0.7")])));
    r.open(3, flow("10.0.0.2:42000", "10.0.0.3:3000"));
    r.ev(3, EventKind::Request(wsreq("/ws", "K", &[("X-Forwarded-For", "10.0.0.7, 10.0.0.1")])));
    r.ev(3, EventKind::Response(resp(101)));
    r.ev(2, EventKind::Response(resp(101)));
    r.ev(1, EventKind::Response(resp(101)));
    let mut h = r.handshakes();
    h.sort_by_key(|x| x.hop_index);
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].chain, h[1].chain);
    assert_eq!((h[0].hop_index, h[1].hop_index), (0, 1));
    assert_eq!(h[0].upstream.as_ref().unwrap().flow, h[1].client.as_ref().unwrap().flow);
}

#[test]
fn a_retry_to_another_backend_replaces_the_failed_forward() {
    let mut r = Run::new(Roles::default());
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    r.ev(1, EventKind::Request(wsreq("/ws", "K", &[])));
    r.open(2, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(2, EventKind::Request(wsreq("/ws", "K", &[])));
    r.ev(2, EventKind::Rst { dir: Dir::ToClient });
    r.open(3, flow("127.0.0.1:50004", "127.0.0.1:3001"));
    r.ev(3, EventKind::Request(wsreq("/ws", "K", &[])));
    r.ev(3, EventKind::Response(resp(101)));
    r.ev(1, EventKind::Response(resp(101)));
    let h = r.handshakes();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].upstream.as_ref().unwrap().flow.to_string(), "127.0.0.1:50004->127.0.0.1:3001");
}

#[test]
fn upstream_option_places_a_lone_request_behind_the_proxy() {
    let roles = Roles::new(vec![], vec![roles::UpstreamSpec::parse("127.0.0.1:3000").unwrap()]);
    let mut r = Run::new(roles);
    r.open(1, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(1, EventKind::Request(wsreq("/ws", "K", &[])));
    r.ev(1, EventKind::Response(resp(403)));
    let h = r.handshakes();
    assert!(h[0].client.is_none());
    assert_eq!(h[0].upstream.as_ref().unwrap().status, Some(403));
    assert_eq!(h[0].outcome, Outcome::Rejected);
}

#[test]
fn outcomes_of_unanswered_requests() {
    let mut r = Run::new(Roles::default());
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    r.ev(1, EventKind::Request(wsreq("/a", "K1", &[])));
    r.ev(1, EventKind::Fin { dir: Dir::ToClient });
    r.open(2, flow("127.0.0.1:50001", "127.0.0.1:8080"));
    r.ev(2, EventKind::Request(wsreq("/b", "K2", &[])));
    let mut h = r.handshakes();
    h.sort_by_key(|x| x.id);
    assert_eq!(h[0].outcome, Outcome::Failed);
    assert_eq!(h[0].client.as_ref().unwrap().end.map(|e| e.name()), Some("closed-by-server"));
    assert_eq!(h[1].outcome, Outcome::Incomplete);
}

#[test]
fn a_rewritten_prefix_with_the_same_query_pairs() {
    // location /rt/ { proxy_pass http://app/socket.io/; }: the path changes,
    // the Engine.IO query does not.
    let mut r = Run::new(Roles::default());
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    let q = "?EIO=4&transport=polling&t=4vtv8by3&sid=tGTUCp386-qYTn3ZAAAB";
    r.ev(1, EventKind::Request(req(&format!("/rt/{q}"), &[("User-Agent", "node")])));
    r.open(2, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(2, EventKind::Request(req(&format!("/socket.io/{q}"), &[("User-Agent", "node")])));
    r.ev(2, EventKind::Response(resp(200)));
    r.ev(1, EventKind::Response(resp(200)));
    r.a.finish(Ts(r.t + 1), &mut r.out);
    assert_eq!(r.a.stats.exchanges, 1, "one exchange across the rewrite");
    // A short query alone is not enough.
    let mut r = Run::new(Roles::default());
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    r.ev(1, EventKind::Request(req("/a/?p=1", &[("User-Agent", "node")])));
    r.open(2, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(2, EventKind::Request(req("/b/?p=1", &[("User-Agent", "node")])));
    r.ev(2, EventKind::Response(resp(200)));
    r.ev(1, EventKind::Response(resp(200)));
    r.a.finish(Ts(r.t + 1), &mut r.out);
    assert_eq!(r.a.stats.exchanges, 2);
}

impl Run {
    fn tls(&mut self, conn: ConnId, f: FlowKey) {
        self.open(conn, f);
        self.ev(conn, EventKind::Tls { sni: None });
    }
    fn turn(&mut self, conn: ConnId, dir: Dir) {
        self.ev(conn, EventKind::TlsTurn { dir });
    }
}

/// Each forwarded request pairs with the TLS connection whose encrypted
/// request preceded it and is still unanswered, oldest first, one to one.
#[test]
fn tls_client_hops_pair_one_to_one_by_their_turns() {
    let mut r = Run::new(Roles::default());
    r.tls(1, flow("127.0.0.1:41786", "127.0.0.1:443"));
    r.tls(2, flow("127.0.0.1:41796", "127.0.0.1:443"));
    // TLS 1.3: connection 2's Finished (application data) answered by a
    // session ticket: not a request.
    r.turn(2, Dir::ToServer);
    r.turn(2, Dir::ToClient);
    r.turn(1, Dir::ToServer); // connection 1 sends its request
    r.open(3, flow("127.0.0.1:35890", "127.0.0.1:3000"));
    r.ev(3, EventKind::Request(wsreq("/ws", "K1", &[])));
    r.ev(3, EventKind::Response(resp(101)));
    r.ev(3, EventKind::Upgraded { websocket: true });
    r.turn(1, Dir::ToClient);
    r.turn(2, Dir::ToServer); // then connection 2
    r.open(4, flow("127.0.0.1:35894", "127.0.0.1:3000"));
    r.ev(4, EventKind::Request(wsreq("/ws", "K2", &[])));
    r.ev(4, EventKind::Response(resp(101)));
    r.ev(4, EventKind::Upgraded { websocket: true });
    let h = r.handshakes();
    let pairs: Vec<(String, String, Option<&str>)> = h
        .iter()
        .map(|h| {
            (
                h.client.as_ref().unwrap().flow.to_string(),
                h.upstream.as_ref().unwrap().flow.to_string(),
                h.pair_confidence.map(|x| x.name()),
            )
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("127.0.0.1:41786->127.0.0.1:443".into(), "127.0.0.1:35890->127.0.0.1:3000".into(), Some("high")),
            ("127.0.0.1:41796->127.0.0.1:443".into(), "127.0.0.1:35894->127.0.0.1:3000".into(), Some("high")),
        ]
    );
}

/// Two requests in flight at once: the oldest turn goes first, and the
/// pairing says it is less sure.
#[test]
fn concurrent_tls_turns_pair_oldest_first_with_medium_confidence() {
    let mut r = Run::new(Roles::default());
    r.tls(1, flow("127.0.0.1:41000", "127.0.0.1:443"));
    r.tls(2, flow("127.0.0.1:41002", "127.0.0.1:443"));
    r.turn(1, Dir::ToServer);
    r.turn(2, Dir::ToServer);
    r.open(3, flow("127.0.0.1:35000", "127.0.0.1:3000"));
    r.ev(3, EventKind::Request(wsreq("/ws", "A", &[])));
    r.open(4, flow("127.0.0.1:35002", "127.0.0.1:3000"));
    r.ev(4, EventKind::Request(wsreq("/ws", "B", &[])));
    r.ev(3, EventKind::Response(resp(101)));
    r.ev(4, EventKind::Response(resp(101)));
    let h = r.handshakes();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0].client.as_ref().unwrap().flow.to_string(), "127.0.0.1:41000->127.0.0.1:443");
    assert_eq!(h[0].pair_confidence.map(|x| x.name()), Some("medium"));
    assert_eq!(h[1].client.as_ref().unwrap().flow.to_string(), "127.0.0.1:41002->127.0.0.1:443");
    assert_eq!(h[1].pair_confidence.map(|x| x.name()), Some("high"), "the only turn left");
}

/// The proxy's FIN before the backend's: the hop ended "closed-by-client".
#[test]
fn who_closed_first_names_the_end() {
    let mut r = Run::new(Roles::default());
    r.open(1, flow("127.0.0.1:50000", "127.0.0.1:8080"));
    r.ev(1, EventKind::Request(wsreq("/ws", "K1", &[])));
    r.open(2, flow("127.0.0.1:50002", "127.0.0.1:3000"));
    r.ev(2, EventKind::Request(wsreq("/ws", "K1", &[])));
    r.ev(2, EventKind::Fin { dir: Dir::ToServer }); // the proxy gives up
    r.ev(2, EventKind::Fin { dir: Dir::ToClient }); // the backend answers the FIN
    r.ev(1, EventKind::Response(resp(504)));
    let h = r.handshakes();
    assert_eq!(h[0].upstream.as_ref().unwrap().end.map(|e| e.name()), Some("closed-by-client"));
}

// ---- Facts: what correlation raises, with no detector behind it ----

impl Run {
    /// The connection ends: `closer` sent the first FIN, the other answered.
    fn close(&mut self, conn: ConnId, f: FlowKey, closer: Dir) {
        let t = Ts(self.t + 1000);
        let mut fin = [None, None];
        fin[closer.index()] = Some(t);
        fin[closer.flip().index()] = Some(Ts(t.0 + 1));
        let mut ws = WsActivity::new(Ts(self.t));
        ws.closing(t, closer, "fin");
        let summary = ConnSummary {
            flow: f,
            end: EndReason::Closed,
            first_ts: Ts(0),
            last_ts: Ts(t.0 + 1),
            syn: true,
            established: true,
            packets: [4, 4],
            bytes: [100, 100],
            last_data: [Some(Ts(self.t)), None],
            fin,
            rst: [None, None],
            keepalives: 0,
            gaps: 0,
            ws: Some(Box::new(ws)),
            h2: None,
        };
        self.ev(conn, EventKind::Close(Box::new(summary)));
    }
}

/// A paired upgrade: one exchange fact with both hops (after its
/// handshake record), then, once both hops closed, the session's end
/// (with its record), each settled for policy to judge.
#[test]
fn a_paired_upgrade_raises_its_exchange_then_its_session_end() {
    use crate::facts::ExchangeSeen;
    use crate::record::{CloseHow, Closer};
    let (cf, uf) = (flow("127.0.0.1:50000", "127.0.0.1:8080"), flow("127.0.0.1:50002", "127.0.0.1:3000"));
    let mut r = Run::new(Roles::default());
    r.open(1, cf);
    r.ev(1, EventKind::Request(wsreq("/ws", "K1", &[])));
    r.open(2, uf);
    r.ev(2, EventKind::Request(wsreq("/ws", "K1", &[])));
    // As the HTTP parser reports a 101: the switch first, then the response.
    r.ev(2, EventKind::Upgraded { websocket: true });
    r.ev(2, EventKind::Response(resp(101)));
    assert!(r.out.exchanges.is_empty(), "reported when the client's request finished");
    r.ev(1, EventKind::Upgraded { websocket: true });
    r.ev(1, EventKind::Response(resp(101)));
    assert_eq!(
        r.out.exchanges,
        [ExchangeSeen {
            handshake: Some(1),
            client: Some(cf),
            upstream: Some(uf),
            outcome: Outcome::Upgraded,
            tls_front: None
        }]
    );
    assert!(matches!(r.out.records[..], [Record::Handshake(_)]));
    assert!(r.out.sessions.is_empty(), "still open");
    // The client says goodbye first, on the client hop; the proxy closes upstream.
    r.close(1, cf, Dir::ToServer);
    assert!(r.out.sessions.is_empty(), "one hop still open");
    r.close(2, uf, Dir::ToServer);
    assert_eq!(r.out.sessions.len(), 1);
    let s = &r.out.sessions[0];
    assert_eq!((s.handshake, s.client_flow, s.upstream_flow), (1, Some(cf), Some(uf)));
    assert_eq!((s.close.by, s.close.how), (Some(Closer::Client), CloseHow::Fin));
    assert!(matches!(r.out.records[..], [Record::Handshake(_), Record::Session(_)]));
    assert!(r.out.settled >= 2, "the exchange and the session's end were settled");
    assert_eq!(r.a.live_state(), (0, 0, 0, 0), "nothing left once both are reported");
}

/// A lone forwarded request after a TLS client's application data: the
/// exchange names the TLS connection as its client hop.
#[test]
fn a_lone_forward_behind_tls_names_its_tls_front() {
    let mut r = Run::new(Roles::default());
    r.tls(1, flow("127.0.0.1:41786", "127.0.0.1:443"));
    r.turn(1, Dir::ToServer);
    r.open(3, flow("127.0.0.1:35890", "127.0.0.1:3000"));
    r.ev(3, EventKind::Request(wsreq("/ws", "K1", &[])));
    r.ev(3, EventKind::Response(resp(101)));
    let x = &r.out.exchanges[0];
    assert_eq!((x.client, x.upstream), (None, Some(flow("127.0.0.1:35890", "127.0.0.1:3000"))));
    assert_eq!(x.tls_front, Some(flow("127.0.0.1:41786", "127.0.0.1:443")));
}

/// HTTP/2 connections: a fact on each SETTINGS or GOAWAY, and at the end.
#[test]
fn an_http2_connection_raises_its_settings_and_its_end() {
    use crate::proto::h2::{ConnFact, Settings};
    let f = flow("127.0.0.1:50000", "127.0.0.1:443");
    let mut r = Run::new(Roles::default());
    r.open(1, f);
    r.ev(1, EventKind::H2(ConnFact::Settings { dir: Dir::ToClient, settings: Settings::default() }));
    r.close(1, f, Dir::ToServer);
    assert_eq!(r.out.h2, [(f, Some(false), false), (f, Some(false), true)]);
}
