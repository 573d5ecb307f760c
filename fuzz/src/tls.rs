//! The `tls` target: one TLS connection driven through wstap's connection
//! application layer (`App`: record layer, handshake parsing, key lookup,
//! decryption, the HTTP/WebSocket parsers behind it), step by step.
//!
//! Input: a header byte, then steps until the input ends.
//! - header: bits 0-2 the suite (see `SUITES`), bit 3 keys in the store
//!   from the start, bit 4 the store is "growing" (records are held), bit 5
//!   keys are wrong (another session's), bit 6 only the traffic secrets.
//! - step: `[u8 op][u16 len][len bytes]`. `op & 1` is the direction (0: to
//!   the server). `op >> 1`:
//!   0 raw bytes (any record framing, any damage), 1 the payload sealed as
//!   one application-data record with the direction's current key (so
//!   decryption succeeds and the plaintext reaches the HTTP parser), 2 the
//!   same as a handshake record (payload = handshake messages: Finished,
//!   KeyUpdate, EncryptedExtensions...), 3 the ClientHello, 4 the ServerHello,
//!   5 a ChangeCipherSpec, 6 a gap of `len` bytes, 7 the sender closes,
//!   8 the keys are added now (late keys), 9 a KeyUpdate of the sender's key
//!   (sealed, then the sealing key moves on), other: raw bytes again.

use wstap::proto::tls::crypto::{self, RecordKey, Suite, expand_label};
use wstap::proto::tls::{Keys, build};
use wstap::proto::{App, Dir, ProtoEvent};
use wstap::time::Ts;

use crate::Reader;

pub const SUITES: [(u16, u16); 8] = [
    (0x0304, 0x1301),
    (0x0304, 0x1302),
    (0x0304, 0x1303),
    (0x0303, 0xc02f),
    (0x0303, 0xc030),
    (0x0303, 0xcca8),
    (0x0303, 0x009c),
    (0x0303, 0xc013), // CBC: unsupported
];

const CR: [u8; 32] = [0x42; 32];
const SR: [u8; 32] = [0x24; 32];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The secrets of the fuzzed session, as key log text.
fn keylog(suite: Suite, wrong: bool, traffic_only: bool) -> (String, [Vec<u8>; 4], Vec<u8>) {
    let n = suite.hash.output_len();
    let f = if wrong { 0x99 } else { 0 };
    let s: [Vec<u8>; 4] = [vec![1 ^ f; n], vec![2 ^ f; n], vec![3 ^ f; n], vec![4 ^ f; n]];
    let master = vec![5 ^ f; 48];
    let cr = hex(&CR);
    let mut t = format!("CLIENT_RANDOM {cr} {}\n", hex(&master));
    if !traffic_only {
        t += &format!("CLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} {}\n", hex(&s[0]));
        t += &format!("SERVER_HANDSHAKE_TRAFFIC_SECRET {cr} {}\n", hex(&s[1]));
    }
    t += &format!("CLIENT_TRAFFIC_SECRET_0 {cr} {}\nSERVER_TRAFFIC_SECRET_0 {cr} {}\n", hex(&s[2]), hex(&s[3]));
    let right: [Vec<u8>; 4] = [vec![1; n], vec![2; n], vec![3; n], vec![4; n]];
    (t, right, vec![5; 48])
}

/// The sealing side: what a real client and server would send.
struct Peer {
    suite: Suite,
    tls13: bool,
    /// Per direction: handshake key (1.3) / record key, application key, secret.
    hs: [Option<RecordKey>; 2],
    ap: [Option<RecordKey>; 2],
    ap_secret: [Vec<u8>; 2],
    finished: [bool; 2],
}

impl Peer {
    fn new(suite: Suite, secrets: &[Vec<u8>; 4], master: &[u8]) -> Peer {
        if suite.tls13 {
            Peer {
                suite,
                tls13: true,
                hs: [RecordKey::tls13(suite, &secrets[0]), RecordKey::tls13(suite, &secrets[1])],
                ap: [RecordKey::tls13(suite, &secrets[2]), RecordKey::tls13(suite, &secrets[3])],
                ap_secret: [secrets[2].clone(), secrets[3].clone()],
                finished: [false; 2],
            }
        } else {
            let [c, s] = crypto::tls12_keys(suite, master, &CR, &SR).map_or([None, None], |[c, s]| [Some(c), Some(s)]);
            Peer {
                suite,
                tls13: false,
                hs: [None, None],
                ap: [c, s],
                ap_secret: [Vec::new(), Vec::new()],
                finished: [true; 2],
            }
        }
    }

    fn key(&mut self, d: usize) -> Option<&mut RecordKey> {
        if self.tls13 && !self.finished[d] { self.hs[d].as_mut() } else { self.ap[d].as_mut() }
    }

    fn seal(&mut self, d: usize, ty: u8, payload: &[u8]) -> Vec<u8> {
        let Some(k) = self.key(d) else { return Vec::new() };
        let rec = k.seal(ty, payload);
        // A Finished under the handshake key moves the sender on (TLS 1.3).
        if self.tls13 && ty == 22 && has_finished(payload) {
            self.finished[d] = true;
        }
        rec
    }

    fn key_update(&mut self, d: usize) -> Vec<u8> {
        let rec = self.seal(d, 22, &build::message(24, &[0]));
        if self.tls13 && self.finished[d] {
            let h = self.suite.hash;
            if let Some(next) = expand_label(h, &self.ap_secret[d], "traffic upd", h.output_len()) {
                self.ap[d] = RecordKey::tls13(self.suite, &next);
                self.ap_secret[d] = next;
            }
        }
        rec
    }
}

/// The handshake messages in `p` include a Finished.
fn has_finished(mut p: &[u8]) -> bool {
    while p.len() >= 4 {
        if p[0] == 20 {
            return true;
        }
        let len = (p[1] as usize) << 16 | (p[2] as usize) << 8 | p[3] as usize;
        p = p.get(4 + len..).unwrap_or(&[]);
    }
    false
}

pub fn run(data: &[u8]) {
    run_printing(data, false)
}

/// Runs one input; with `print`, the events and the connection's outcome.
pub fn run_printing(data: &[u8], print: bool) {
    let mut r = Reader::new(data);
    let h = r.u8();
    let (version, id) = SUITES[(h & 7) as usize];
    let sealing = crypto::suite(id).unwrap_or(crypto::suite(0x1301).expect("supported"));
    let (text, secrets, master) = keylog(sealing, h & 0x20 != 0, h & 0x40 != 0);
    let keys = Keys::default();
    if h & 0x08 != 0 {
        keys.add_text(text.as_bytes());
    }
    keys.set_growing(h & 0x10 != 0);
    let mut peer = Peer::new(sealing, &secrets, &master);
    let mut app = App::Detect(keys.clone());
    let mut out: Vec<ProtoEvent> = Vec::new();
    let mut t = 1_700_000_000_000_000i64;
    let mut steps = 0;
    while !r.is_empty() && steps < 256 {
        steps += 1;
        let op = r.u8();
        let len = r.u16() as usize % 20_000;
        let payload = r.bytes(len);
        let dir = if op & 1 == 0 { Dir::ToServer } else { Dir::ToClient };
        let d = dir.index();
        t += 1000;
        let ts = Ts(t);
        let bytes = match op >> 1 {
            1 => peer.seal(d, 23, payload),
            2 => peer.seal(d, 22, payload),
            3 => build::client_hello(&CR, &String::from_utf8_lossy(&payload[..payload.len().min(64)]), &["http/1.1"]),
            4 => build::server_hello(&SR, version, id, (payload.first() == Some(&1)).then_some("h2")),
            5 => build::record(20, &[1]),
            6 => {
                app.gap(dir, ts, len as u32, &mut out);
                Vec::new()
            }
            7 => {
                app.closing(dir, ts, "fin", &mut out);
                Vec::new()
            }
            8 => {
                keys.add_text(text.as_bytes());
                app.keys_changed(ts, &mut out);
                Vec::new()
            }
            9 => peer.key_update(d),
            _ => payload.to_vec(),
        };
        if !bytes.is_empty() {
            // Cut where the input says, as TCP segments would.
            let cut = (payload.first().copied().unwrap_or(0) as usize).min(bytes.len());
            app.data(dir, ts, &bytes[..cut], &mut out);
            app.data(dir, ts, &bytes[cut..], &mut out);
        }
        if print {
            for e in &out {
                println!("{e:?}");
            }
        }
        out.clear();
        let _ = app.is_opaque();
    }
    if let Some(tls) = app.tls() {
        let s = tls.stats();
        if print {
            println!("{:?}\n{s:?}", tls.info());
        }
        assert_eq!(s.connections, 1);
        assert!(s.decrypted + s.not_decrypted.iter().sum::<u64>() == 1, "one outcome per connection");
        assert!(s.held_dropped <= wstap::proto::tls::HOLD_LIMIT as u64 * 2);
    }
}

/// Encodes a step (for the seeding example).
pub fn step(out: &mut Vec<u8>, op: u8, payload: &[u8]) {
    out.push(op);
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
}
