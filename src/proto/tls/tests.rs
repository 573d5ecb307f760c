//! TLS connections end to end through `App`: handshakes, keys from key
//! log text, decrypted HTTP and WebSocket, and every reason not to decrypt.

use super::crypto::{HashAlg, RecordKey, expand_label, suite};
use super::*;
use crate::proto::{App, Dir, ProtoEvent};

const CR: [u8; 32] = [0x11; 32];
const SR: [u8; 32] = [0x22; 32];
const REQ: &[u8] = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: sid=secret\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A TLS 1.3 peer pair with fixed secrets, producing the bytes each side sends.
struct Tls13 {
    suite: u16,
    secrets: [[u8; 32]; 4], // c_hs, s_hs, c_ap, s_ap
}

impl Tls13 {
    fn new(suite: u16) -> Tls13 {
        Tls13 { suite, secrets: [[1; 32], [2; 32], [3; 32], [4; 32]] }
    }
    fn secret_len(&self) -> usize {
        if self.suite == 0x1302 { 48 } else { 32 }
    }
    fn secret(&self, i: usize) -> Vec<u8> {
        self.secrets[i].iter().cycle().take(self.secret_len()).copied().collect()
    }
    fn keylog(&self) -> String {
        let cr = hex(&CR);
        format!(
            "CLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {cr} {}\n\
             CLIENT_TRAFFIC_SECRET_0 {cr} {}\nSERVER_TRAFFIC_SECRET_0 {cr} {}\n",
            hex(&self.secret(0)),
            hex(&self.secret(1)),
            hex(&self.secret(2)),
            hex(&self.secret(3))
        )
    }
    fn key(&self, i: usize) -> RecordKey {
        RecordKey::tls13(suite(self.suite).unwrap(), &self.secret(i)).unwrap()
    }
}

fn app(keys: &Keys) -> App {
    App::Detect(keys.clone())
}

fn feed(a: &mut App, dir: Dir, data: &[u8], out: &mut Vec<ProtoEvent>) {
    a.data(dir, crate::time::Ts(1), data, out);
}

/// The decryption facts and what was read from the plaintext (the turns of
/// a connection not read are checked apart, by [`turns`]).
fn summary(ev: &[ProtoEvent]) -> Vec<String> {
    ev.iter()
        .filter(|e| !matches!(e, ProtoEvent::TlsTurn { .. }))
        .map(|e| match e {
            ProtoEvent::Request { req, .. } => format!("req {} {}", req.method, req.target),
            ProtoEvent::Response { resp, .. } => format!("resp {}", resp.status),
            ProtoEvent::Upgraded { .. } => "upgraded".into(),
            ProtoEvent::Tls { sni, .. } => format!("hello {}", sni.as_deref().unwrap_or("-")),
            ProtoEvent::TlsInfo { info, .. } => format!(
                "info {} {} {} {}",
                info.version.unwrap_or("-"),
                info.cipher.as_deref().unwrap_or("-"),
                info.alpn.as_deref().unwrap_or("-"),
                if info.decrypted { "decrypted" } else { info.reason.map_or("awaiting-keys", |r| r.name()) }
            ),
            ProtoEvent::Frame { .. } => "frame".into(),
            ProtoEvent::RelaySample { .. } => "relay".into(),
            ProtoEvent::H2Stream { stream, ev, .. } => format!("h2 stream {stream} {ev:?}").chars().take(40).collect(),
            ProtoEvent::H2 { .. } => "h2".into(),
            ProtoEvent::Anomaly { what, .. } => format!("anomaly {what}"),
            ProtoEvent::TlsTurn { .. } => unreachable!("filtered"),
        })
        .collect()
}

/// The turns reported (who began sending application data), in order.
fn turns(ev: &[ProtoEvent]) -> Vec<Dir> {
    ev.iter()
        .filter_map(|e| match e {
            ProtoEvent::TlsTurn { dir, .. } => Some(*dir),
            _ => None,
        })
        .collect()
}

/// A whole TLS 1.3 connection: handshake, an upgrade, two frames, a
/// KeyUpdate from the client, one more frame. Returns the events.
fn run13(t: &Tls13, keys: &Keys, split: usize) -> (Vec<String>, App, Vec<Dir>) {
    let mut a = app(keys);
    let mut out = Vec::new();
    let mut c_hs = t.key(0);
    let mut s_hs = t.key(1);
    let mut c_ap = t.key(2);
    let mut s_ap = t.key(3);
    let client: Vec<Vec<u8>> = {
        let mut v = vec![build::client_hello(&CR, "ws.example", &["http/1.1"])];
        v.push(build::record(20, &[1])); // compatibility CCS
        v.push(c_hs.seal(22, &build::message(20, &[0; 32])));
        v.push(c_ap.seal(23, REQ));
        v
    };
    let server: Vec<Vec<u8>> = {
        let mut v = vec![build::server_hello(&SR, 0x0304, t.suite, None)];
        v.push(build::record(20, &[1]));
        let mut flight = build::encrypted_extensions(Some("http/1.1"));
        flight.extend(build::message(11, &[0; 40])); // certificate (content irrelevant)
        flight.extend(build::message(20, &[0; 32]));
        v.push(s_hs.seal(22, &flight));
        v.push(s_ap.seal(22, &build::message(4, &[0; 20]))); // NewSessionTicket
        v.push(s_ap.seal(23, RESP));
        v
    };
    // Records may arrive cut anywhere: deliver each side in `split`-byte pieces.
    let send = |a: &mut App, dir, bytes: &[u8], out: &mut Vec<ProtoEvent>| {
        for piece in bytes.chunks(split) {
            feed(a, dir, piece, out);
        }
    };
    // The first segment decides what the connection is: it holds the hello.
    feed(&mut a, Dir::ToServer, &client[0], &mut out);
    for r in &server[..4] {
        send(&mut a, Dir::ToClient, r, &mut out);
    }
    for r in &client[1..] {
        send(&mut a, Dir::ToServer, r, &mut out);
    }
    send(&mut a, Dir::ToClient, &server[4], &mut out);
    // WebSocket frames after the 101, then a KeyUpdate and one more.
    let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    send(&mut a, Dir::ToServer, &c_ap.seal(23, &frame), &mut out);
    send(&mut a, Dir::ToClient, &s_ap.seal(23, &[0x81, 2, b'h', b'i']), &mut out);
    send(&mut a, Dir::ToServer, &c_ap.seal(22, &build::message(24, &[0])), &mut out);
    let next = expand_label(
        suite(t.suite).unwrap().hash,
        &t.secret(2),
        "traffic upd",
        if t.suite == 0x1302 { 48 } else { 32 },
    )
    .unwrap();
    let mut c_ap2 = RecordKey::tls13(suite(t.suite).unwrap(), &next).unwrap();
    send(&mut a, Dir::ToServer, &c_ap2.seal(23, &frame), &mut out);
    (summary(&out), a, turns(&out))
}

#[test]
fn tls13_every_suite_decrypts_into_the_http_and_websocket_parsers() {
    for (suite_id, name) in [
        (0x1301, "TLS_AES_128_GCM_SHA256"),
        (0x1302, "TLS_AES_256_GCM_SHA384"),
        (0x1303, "TLS_CHACHA20_POLY1305_SHA256"),
    ] {
        let t = Tls13::new(suite_id);
        let keys = Keys::default();
        keys.add_text(t.keylog().as_bytes());
        for split in [100_000, 7, 1] {
            let (ev, a, turns) = run13(&t, &keys, split);
            assert_eq!(turns, vec![], "a connection read reports no turns: its requests pair it");
            assert_eq!(
                ev,
                vec![
                    "hello ws.example".to_string(),
                    format!("info TLS 1.3 {name} http/1.1 decrypted"),
                    "req GET /ws".into(),
                    "upgraded".into(),
                    "resp 101".into(),
                ],
                "suite {suite_id:04x} split {split}"
            );
            let act = a.activity().expect("the decrypted connection is a WebSocket");
            assert_eq!(act.frames, [2, 1], "frames after the KeyUpdate are read too");
            let st = a.tls().unwrap().stats();
            assert_eq!((st.decrypted, st.key_updates, st.auth_failures), (1, 1, 0));
        }
    }
}

#[test]
fn tls13_with_only_the_traffic_secrets_skips_the_handshake_records() {
    let t = Tls13::new(0x1301);
    let cr = hex(&CR);
    let keys = Keys::default();
    keys.add_text(
        format!(
            "CLIENT_TRAFFIC_SECRET_0 {cr} {}\nSERVER_TRAFFIC_SECRET_0 {cr} {}\n",
            hex(&t.secret(2)),
            hex(&t.secret(3))
        )
        .as_bytes(),
    );
    let (ev, _, turns) = run13(&t, &keys, 1000);
    assert_eq!(turns, vec![]);
    assert!(ev.contains(&"req GET /ws".to_string()), "{ev:?}");
    assert!(ev.contains(&"resp 101".to_string()), "{ev:?}");
}

#[test]
fn no_key_wrong_key_and_unsupported_suites_are_told_apart() {
    let t = Tls13::new(0x1301);
    // No key at all.
    let (ev, mut a, turns) = run13(&t, &Keys::default(), 1000);
    assert_eq!(ev, vec!["hello ws.example", "info TLS 1.3 TLS_AES_128_GCM_SHA256 - no-key"]);
    // Not read, so followed at the record layer: the client's turns (the
    // request after its Finished; the frame after the server's first
    // flight, taken for session tickets; the KeyUpdate after the server's
    // frame) pair it with the requests the proxy forwards.
    use Dir::{ToClient as C, ToServer as S};
    assert_eq!(turns, vec![S, S, C, S]);
    assert!(!a.is_opaque(), "its turns are still followed");
    a.gap(Dir::ToServer, crate::time::Ts(3), 10, &mut Vec::new());
    assert!(a.is_opaque(), "given up on, and its record boundaries lost: nothing more to read");
    assert_eq!(a.tls().unwrap().stats().not_decrypted[Undecrypted::NoKey.index()], 1);
    // Keys of another session under this client random.
    let wrong = Tls13 { suite: 0x1301, secrets: [[9; 32]; 4] };
    let keys = Keys::default();
    keys.add_text(wrong.keylog().as_bytes());
    let (ev, a, _) = run13(&t, &keys, 1000);
    assert_eq!(ev, vec!["hello ws.example", "info TLS 1.3 TLS_AES_128_GCM_SHA256 - auth-failed"]);
    assert!(a.tls().unwrap().stats().auth_failures >= 1);
    // A CBC suite in TLS 1.2.
    let mut a = app(&keys);
    let mut out = Vec::new();
    feed(&mut a, Dir::ToServer, &build::client_hello(&CR, "", &[]), &mut out);
    feed(&mut a, Dir::ToClient, &build::server_hello(&SR, 0x0303, 0xc013, None), &mut out);
    assert_eq!(summary(&out), vec!["hello -", "info TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA - unsupported-suite"]);
    assert!(!a.is_opaque(), "not decrypted: its turns are followed");
    feed(&mut a, Dir::ToServer, b"not a TLS record", &mut out);
    assert!(a.is_opaque());
    // TLS 1.0.
    let mut a = app(&keys);
    let mut out = Vec::new();
    feed(&mut a, Dir::ToServer, &build::client_hello(&CR, "", &[]), &mut out);
    feed(&mut a, Dir::ToClient, &build::server_hello(&SR, 0x0301, 0xc013, None), &mut out);
    assert!(summary(&out)[1].ends_with("unsupported-version"));
    // Picked up mid-connection.
    let mut a = app(&keys);
    let mut out = Vec::new();
    feed(&mut a, Dir::ToClient, &[23, 3, 3, 0, 20, 1, 2, 3], &mut out);
    assert_eq!(summary(&out), vec!["info - - - handshake-not-captured"]);
    assert!(a.is_opaque());
}

#[test]
fn keys_that_arrive_later_still_decrypt_the_held_records() {
    let t = Tls13::new(0x1303);
    let keys = Keys::default();
    keys.set_growing(true);
    let mut a = app(&keys);
    let mut out = Vec::new();
    let mut s_hs = t.key(1);
    let mut c_ap = t.key(2);
    feed(&mut a, Dir::ToServer, &build::client_hello(&CR, "late", &[]), &mut out);
    feed(&mut a, Dir::ToClient, &build::server_hello(&SR, 0x0304, 0x1303, None), &mut out);
    feed(&mut a, Dir::ToClient, &s_hs.seal(22, &build::message(20, &[0; 32])), &mut out);
    let mut c_hs = t.key(0);
    feed(&mut a, Dir::ToServer, &c_hs.seal(22, &build::message(20, &[0; 32])), &mut out);
    feed(&mut a, Dir::ToServer, &c_ap.seal(23, REQ), &mut out);
    assert_eq!(
        summary(&out),
        vec!["hello late", "info TLS 1.3 TLS_CHACHA20_POLY1305_SHA256 - awaiting-keys"],
        "held, nothing decided yet"
    );
    // While its keys are awaited it is paired by its turns, as without keys.
    assert_eq!(turns(&out), vec![Dir::ToServer]);
    keys.add_text(t.keylog().as_bytes());
    // The next record (or the FIN) releases the held ones, in order.
    a.closing(Dir::ToServer, crate::time::Ts(2), "fin", &mut out);
    let ev = summary(&out);
    assert!(ev.contains(&"req GET /ws".to_string()), "{ev:?}");
    assert_eq!(a.tls().unwrap().stats().late_keys, 1);
    // Read now: no more turns.
    let n = turns(&out).len();
    feed(&mut a, Dir::ToClient, &t.key(3).seal(23, RESP), &mut out);
    feed(&mut a, Dir::ToServer, &c_ap.seal(23, REQ), &mut out);
    assert_eq!(turns(&out).len(), n);
}

#[test]
fn held_records_are_bounded() {
    let t = Tls13::new(0x1301);
    let keys = Keys::default();
    keys.set_growing(true);
    let mut a = app(&keys);
    let mut out = Vec::new();
    let mut c_ap = t.key(2);
    feed(&mut a, Dir::ToServer, &build::client_hello(&CR, "", &[]), &mut out);
    feed(&mut a, Dir::ToClient, &build::server_hello(&SR, 0x0304, 0x1301, None), &mut out);
    let big = vec![b'x'; 16_000];
    for _ in 0..20 {
        feed(&mut a, Dir::ToServer, &c_ap.seal(23, &big), &mut out);
    }
    assert!(summary(&out).last().unwrap().ends_with("no-key"));
    let st = a.tls().unwrap().stats();
    assert!(st.held_dropped > 0 && st.held_dropped <= HOLD_LIMIT as u64, "{st:?}");
    // Given up on: only its turns are followed now (the client's one turn).
    assert_eq!(turns(&out), vec![Dir::ToServer]);
    a.gap(Dir::ToClient, crate::time::Ts(3), 10, &mut out);
    assert!(a.is_opaque());
}

/// TLS 1.2 with each AEAD: CCS switches each direction to its key from
/// the master secret.
#[test]
fn tls12_aes_gcm_and_chacha20_decrypt() {
    for (id, name) in [
        (0xc02f, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
        (0xc030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        (0x009c, "TLS_RSA_WITH_AES_128_GCM_SHA256"),
        (0xcca8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
    ] {
        let s = suite(id).unwrap();
        let master = [0x5a; 48];
        let keys = Keys::default();
        keys.add_text(format!("CLIENT_RANDOM {} {}\n", hex(&CR), hex(&master)).as_bytes());
        let [mut ck, mut sk] = crypto::tls12_keys(s, &master, &CR, &SR).unwrap();
        let mut a = app(&keys);
        let mut out = Vec::new();
        feed(&mut a, Dir::ToServer, &build::client_hello(&CR, "h", &["http/1.1"]), &mut out);
        feed(&mut a, Dir::ToClient, &build::server_hello(&SR, 0x0303, id, Some("http/1.1")), &mut out);
        feed(&mut a, Dir::ToServer, &build::record(20, &[1]), &mut out);
        feed(&mut a, Dir::ToServer, &ck.seal(22, &build::message(20, &[0; 12])), &mut out);
        feed(&mut a, Dir::ToClient, &build::record(20, &[1]), &mut out);
        feed(&mut a, Dir::ToClient, &sk.seal(22, &build::message(20, &[0; 12])), &mut out);
        let mut both = ck.seal(23, &REQ[..30]);
        both.extend(ck.seal(23, &REQ[30..]));
        feed(&mut a, Dir::ToServer, &both, &mut out);
        feed(&mut a, Dir::ToClient, &sk.seal(23, RESP), &mut out);
        assert_eq!(
            summary(&out),
            vec![
                "hello h".to_string(),
                format!("info TLS 1.2 {name} http/1.1 decrypted"),
                "req GET /ws".into(),
                "upgraded".into(),
                "resp 101".into()
            ],
            "{id:04x}"
        );
        let _ = HashAlg::Sha256;
    }
}

#[test]
fn h2_is_decrypted_and_handed_to_the_http2_parser() {
    let s = suite(0xc02f).unwrap();
    let master = [0x5a; 48];
    let keys = Keys::default();
    keys.add_text(format!("CLIENT_RANDOM {} {}\n", hex(&CR), hex(&master)).as_bytes());
    let [mut ck, _] = crypto::tls12_keys(s, &master, &CR, &SR).unwrap();
    let mut a = app(&keys);
    let mut out = Vec::new();
    feed(&mut a, Dir::ToServer, &build::client_hello(&CR, "h", &["h2"]), &mut out);
    feed(&mut a, Dir::ToClient, &build::server_hello(&SR, 0x0303, 0xc02f, Some("h2")), &mut out);
    feed(&mut a, Dir::ToServer, &build::record(20, &[1]), &mut out);
    feed(&mut a, Dir::ToServer, &ck.seal(23, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), &mut out);
    let ev = summary(&out);
    assert_eq!(ev[1], "info TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 h2 decrypted");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(a.h2().is_some(), "ALPN h2: the HTTP/2 parser reads the plaintext");
}

#[test]
fn hostile_records_never_panic() {
    let t = Tls13::new(0x1301);
    let keys = Keys::default();
    keys.add_text(t.keylog().as_bytes());
    let mut c_ap = t.key(2);
    let good = {
        let mut v = build::client_hello(&CR, "x", &[]);
        v.extend(build::server_hello(&SR, 0x0304, 0x1301, None));
        v
    };
    let rec = c_ap.seal(23, REQ);
    // Every truncation and every single-byte change of a record stream.
    for cut in 0..rec.len() {
        let mut a = app(&keys);
        let mut out = Vec::new();
        feed(&mut a, Dir::ToServer, &good[..good.len() / 2], &mut out);
        feed(&mut a, Dir::ToClient, &good[good.len() / 2..], &mut out);
        feed(&mut a, Dir::ToServer, &rec[..cut], &mut out);
        let mut m = rec.clone();
        m[cut] ^= 0x80;
        feed(&mut a, Dir::ToServer, &m, &mut out);
        a.gap(Dir::ToClient, crate::time::Ts(3), 10, &mut out);
    }
    for n in 0..good.len() {
        let mut a = app(&keys);
        let mut out = Vec::new();
        feed(&mut a, Dir::ToServer, &good[..n], &mut out);
        feed(&mut a, Dir::ToClient, &good[n..], &mut out);
    }
}
