//! TLS for a passive observer: the record layer, the handshake messages
//! that carry what a decryptor needs (randoms, version, suite, SNI, ALPN),
//! the session keys from a key log, and the decryption of application data,
//! which is then handed to the same parsers as plaintext (HTTP/1.x and
//! WebSocket; the ALPN says which: an HTTP/2 parser would sit at
//! [`inner_for_alpn`]).
//!
//! What is not decrypted is said, per connection, with a reason
//! ([`Undecrypted`]); wstap then falls back to inferring the hop from the
//! other side of the proxy, as without keys. Records arriving before their
//! keys (live capture, key log written after the packets) are held, bounded
//! by [`HOLD_LIMIT`] bytes per connection.

pub mod build;
pub mod crypto;
pub mod hello;
mod info;
pub mod keylog;

use std::collections::VecDeque;

pub use info::{TlsInfo, TlsStats, Undecrypted};
pub use keylog::{KeyLogStats, Keys};

use self::crypto::{OpenError, RecordKey, Suite};
use self::hello::Reader;
use super::{App, Dir, ProtoEvent, turns};
use crate::time::Ts;

/// Record bytes held per connection while its keys are awaited.
pub const HOLD_LIMIT: usize = 256 * 1024;
/// Largest record: 2^14 plaintext plus TLS 1.2's 2048 bytes of expansion.
const MAX_RECORD: usize = (1 << 14) + 2048;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APP: u8 = 23;
const CT_HEARTBEAT: u8 = 24;

/// Key epoch of a TLS 1.3 direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Epoch {
    #[default]
    Plain,
    Handshake,
    Application,
}

#[derive(Debug, Default)]
struct Half {
    /// Bytes of a record not complete yet.
    buf: Vec<u8>,
    /// Records are protected (TLS 1.2: after ChangeCipherSpec; TLS 1.3:
    /// after the ServerHello).
    encrypted: bool,
    epoch: Epoch,
    key: Option<RecordKey>,
    /// TLS 1.3: the current application traffic secret (for KeyUpdate).
    app_secret: Option<Vec<u8>>,
    msgs: hello::Messages,
    /// No more records can be read in this direction.
    dead: bool,
    /// TLS 1.3 handshake records skipped for want of the handshake secret.
    skipped: u32,
}

/// One TLS connection: parses records, decrypts them when keys are known,
/// and feeds the plaintext to `inner`.
pub struct TlsConn {
    keys: Keys,
    verbose: bool,
    info: TlsInfo,
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    suite: Option<Suite>,
    tls13: bool,
    /// The ServerHello was seen (version and suite known).
    negotiated: bool,
    halves: [Half; 2],
    inner: App,
    failed: Option<Undecrypted>,
    /// The generation of the key store last looked at.
    seen_generation: u64,
    keys_found: bool,
    held: VecDeque<(Dir, Ts, Vec<u8>)>,
    held_bytes: usize,
    /// Closes (a FIN) that came behind records held for keys from a live
    /// key log: the plaintext's parser hears of them after those records
    /// ([`Self::replay_closings`]), as the stream ordered them.
    closings: Vec<(Dir, Ts, &'static str)>,
    was_held: bool,
    announced: bool,
    stats: TlsStats,
    rec: Vec<u8>,
    /// Record headers followed for the turns of the conversation (when the
    /// client sent application data), reported while the connection is not
    /// being read: hop correlation pairs it by them, as without keys.
    turns: turns::Turns,
}

impl std::fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConn").field("info", &self.info).field("failed", &self.failed).finish_non_exhaustive()
    }
}

/// The parser for decrypted application data, by ALPN: HTTP/2 for "h2",
/// HTTP/1.x (and WebSocket after a 101) when no other protocol was chosen.
pub fn inner_for_alpn(alpn: Option<&str>, keys: &Keys, verbose: bool) -> App {
    match alpn {
        Some("h2") => App::H2(Box::new(super::h2::H2Conn::new(verbose))),
        None | Some("http/1.1") | Some("http/1.0") => {
            if verbose {
                App::DetectVerbose(keys.clone())
            } else {
                App::Detect(keys.clone())
            }
        }
        Some(_) => App::Opaque,
    }
}

impl TlsConn {
    pub fn new(keys: Keys, verbose: bool) -> TlsConn {
        TlsConn {
            seen_generation: keys.generation(),
            keys,
            verbose,
            info: TlsInfo::default(),
            client_random: None,
            server_random: None,
            suite: None,
            tls13: false,
            negotiated: false,
            halves: Default::default(),
            inner: App::Opaque,
            failed: None,
            keys_found: false,
            held: VecDeque::new(),
            held_bytes: 0,
            closings: Vec::new(),
            was_held: false,
            announced: false,
            stats: TlsStats { connections: 1, ..Default::default() },
            rec: Vec::new(),
            turns: turns::Turns::default(),
        }
    }

    /// A connection picked up after its handshake: recognised, not readable.
    pub fn midstream(keys: Keys, verbose: bool, ts: Ts, out: &mut Vec<ProtoEvent>) -> TlsConn {
        let mut t = TlsConn::new(keys, verbose);
        t.fail(Undecrypted::HandshakeNotCaptured, ts, out);
        // Without its ClientHello it is no candidate client hop: its turns
        // are not followed.
        t.turns.gap();
        t
    }

    pub fn info(&self) -> &TlsInfo {
        &self.info
    }

    pub fn inner(&self) -> &App {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut App {
        &mut self.inner
    }

    /// Nothing more will be read on this connection: neither its plaintext
    /// (decrypted) nor, when it is not read, its turns.
    #[inline(never)]
    pub fn is_opaque(&self) -> bool {
        let dead = self.halves[0].dead && self.halves[1].dead;
        if self.info.decrypted {
            dead || self.inner.is_opaque()
        } else {
            (self.failed.is_some() || dead) && self.turns.is_done()
        }
    }

    /// Its application data is being read (or will be: its keys are known
    /// and nothing failed yet). Such a connection reports no turns: the
    /// requests themselves pair it.
    fn reading(&self) -> bool {
        self.info.decrypted || (self.keys_found && self.failed.is_none())
    }

    /// Follows the record headers for the turns of a connection not read.
    fn turns(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        if self.turns.is_done() {
            return;
        }
        if self.info.decrypted {
            self.turns.gap();
            return;
        }
        let mark = out.len();
        self.turns.data(dir, ts, data, out);
        if self.reading() {
            out.truncate(mark);
        }
    }

    /// This connection's counters, as it ends.
    pub fn stats(&self) -> TlsStats {
        let mut s = self.stats;
        if self.info.decrypted || (self.keys_found && self.failed.is_none() && self.negotiated) {
            s.decrypted = 1;
        } else {
            let r = self.failed.unwrap_or(if self.negotiated {
                Undecrypted::NoKey
            } else {
                Undecrypted::HandshakeNotCaptured
            });
            s.not_decrypted[r.index()] = 1;
        }
        s.held_dropped += self.held_bytes as u64;
        s
    }

    fn fail(&mut self, why: Undecrypted, ts: Ts, out: &mut Vec<ProtoEvent>) {
        if self.failed.is_some() || self.info.decrypted {
            // Once read, a connection stays "decrypted"; later trouble
            // (a gap, a bad record) stops that direction only.
            return;
        }
        self.failed = Some(why);
        self.info.reason = Some(why);
        self.stats.held_dropped += self.held_bytes as u64;
        self.held.clear();
        self.held_bytes = 0;
        self.halves[0].buf = Vec::new();
        self.halves[1].buf = Vec::new();
        out.push(ProtoEvent::TlsInfo { ts, info: Box::new(self.info.clone()) });
        // The records held are gone: closes that waited behind them go on.
        self.replay_closings(out);
    }

    pub fn data(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        self.decrypt(dir, ts, data, out);
        self.turns(dir, ts, data, out);
    }

    fn decrypt(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        if self.failed.is_some() && !self.info.decrypted {
            return;
        }
        let d = dir.index();
        if self.halves[d].dead {
            return;
        }
        if self.halves[d].buf.is_empty() {
            // Whole records straight from the segment; only a cut one is kept.
            if let Some(used) = self.records(dir, ts, data, out) {
                self.halves[d].buf.extend_from_slice(&data[used..]);
            }
        } else {
            let mut buf = std::mem::take(&mut self.halves[d].buf);
            buf.extend_from_slice(data);
            if let Some(used) = self.records(dir, ts, &buf, out) {
                buf.drain(..used);
                self.halves[d].buf = buf;
            }
        }
    }

    /// Reads the complete records at the start of `src`; returns how many
    /// bytes they took, or None when this direction (or the connection)
    /// can be read no further.
    fn records(&mut self, dir: Dir, ts: Ts, src: &[u8], out: &mut Vec<ProtoEvent>) -> Option<usize> {
        let d = dir.index();
        let mut at = 0;
        loop {
            let buf = &src[at..];
            if buf.len() < 5 {
                return Some(at);
            }
            let (ty, major, len) = (buf[0], buf[1], u16::from_be_bytes([buf[3], buf[4]]) as usize);
            if !(CT_CCS..=CT_HEARTBEAT).contains(&ty) || major != 3 || len > MAX_RECORD {
                self.halves[d].dead = true;
                self.halves[d].buf = Vec::new();
                let why = if self.negotiated { Undecrypted::StreamGap } else { Undecrypted::Malformed };
                self.fail(why, ts, out);
                return None;
            }
            if buf.len() < 5 + len {
                return Some(at);
            }
            let mut rec = std::mem::take(&mut self.rec);
            rec.clear();
            rec.extend_from_slice(&buf[..5 + len]);
            at += 5 + len;
            self.record(dir, ts, &mut rec, out);
            self.rec = rec;
            if self.halves[d].dead || (self.failed.is_some() && !self.info.decrypted) {
                return None;
            }
        }
    }

    /// Bytes of this direction were lost: records cannot be delimited any
    /// more (no resynchronisation: a record header cannot be told from
    /// ciphertext).
    pub fn gap(&mut self, dir: Dir, ts: Ts, len: u32, out: &mut Vec<ProtoEvent>) {
        self.turns.gap();
        let h = &mut self.halves[dir.index()];
        h.dead = true;
        h.buf = Vec::new();
        if self.info.decrypted {
            self.inner.gap(dir, ts, len, out);
        } else {
            self.fail(Undecrypted::StreamGap, ts, out);
        }
    }

    /// Memory this connection holds beyond its fixed state, for the
    /// budget: records held for their keys, a record or handshake message
    /// cut across segments, and what the parser of its plaintext holds.
    /// A few additions of fields: called after every packet with data.
    #[inline]
    pub fn buffered(&self) -> usize {
        let h = |x: &Half| x.buf.capacity() + x.msgs.held();
        self.held_bytes
            + self.held.capacity() * std::mem::size_of::<(Dir, Ts, Vec<u8>)>()
            + h(&self.halves[0])
            + h(&self.halves[1])
            + self.rec.capacity()
            + self.inner.buffered()
    }

    /// Memory pressure: records held for keys are given up (the
    /// connection then counts as not decrypted for want of its keys, as
    /// when its records overflow [`HOLD_LIMIT`]), then what the parser of
    /// its plaintext can give up. Returns the bytes freed.
    pub fn shed(&mut self, ts: Ts, out: &mut Vec<ProtoEvent>) -> usize {
        let mut freed = 0;
        if !self.held.is_empty() {
            freed += self.held_bytes + self.held.capacity() * std::mem::size_of::<(Dir, Ts, Vec<u8>)>();
            self.fail(Undecrypted::NoKey, ts, out);
            self.held = VecDeque::new();
        }
        if self.rec.capacity() > 0 {
            freed += self.rec.capacity();
            self.rec = Vec::new();
        }
        freed + self.inner.shed(ts, out)
    }

    /// Records are held for keys not known yet.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// The key store changed: read the held records if their keys came.
    pub fn keys_changed(&mut self, ts: Ts, out: &mut Vec<ProtoEvent>) {
        if !self.held.is_empty() {
            self.release_held(ts, out);
        }
    }

    /// The sender in `dir` closed: a last look for late keys (the key log
    /// read now: once the parsers hear of the close, an exchange still
    /// waiting for the records held here ends without them).
    pub fn closing(&mut self, dir: Dir, ts: Ts, how: &'static str, out: &mut Vec<ProtoEvent>) {
        if !self.held.is_empty() {
            if self.keys.growing() {
                self.keys.read_now();
            }
            self.release_held(ts, out);
            // Still held, and the keys may yet come (a live key log): the
            // close waits behind the records it follows, and so does the
            // connection's end (flow/conn: `close_waits_for_keys`).
            if !self.held.is_empty() && self.keys.growing() {
                self.closings.push((dir, ts, how));
                return;
            }
        }
        self.inner.closing(dir, ts, how, out);
    }

    /// A close waits behind records held for keys ([`Self::closing`]).
    pub fn close_waits_for_keys(&self) -> bool {
        !self.closings.is_empty()
    }

    /// The closes that waited go to the plaintext's parser: the records
    /// they followed were read, or are given up.
    pub fn replay_closings(&mut self, out: &mut Vec<ProtoEvent>) {
        for (dir, ts, how) in std::mem::take(&mut self.closings) {
            self.inner.closing(dir, ts, how, out);
        }
    }

    fn record(&mut self, dir: Dir, ts: Ts, rec: &mut [u8], out: &mut Vec<ProtoEvent>) {
        if !self.held.is_empty() {
            self.hold(dir, ts, rec, out);
            self.release_held(ts, out);
            return;
        }
        let d = dir.index();
        let ty = rec[0];
        let encrypted = self.halves[d].encrypted;
        match ty {
            CT_HANDSHAKE if !encrypted => self.handshake_plain(dir, ts, &rec[5..], out),
            CT_CCS => {
                if self.negotiated && !self.tls13 && !encrypted {
                    self.halves[d].encrypted = true;
                    self.tls12_key(dir);
                }
            }
            CT_ALERT | CT_HEARTBEAT if !encrypted => {}
            CT_APP if !encrypted => {
                // TLS 1.3 early data before the ServerHello, or records of
                // a handshake the capture missed.
                if !self.negotiated && self.client_random.is_none() {
                    self.fail(Undecrypted::HandshakeNotCaptured, ts, out);
                }
            }
            _ => self.protected(dir, ts, rec, out),
        }
    }

    fn handshake_plain(&mut self, dir: Dir, ts: Ts, body: &[u8], out: &mut Vec<ProtoEvent>) {
        let d = dir.index();
        let mut msgs = std::mem::take(&mut self.halves[d].msgs);
        let mut found: Vec<(u8, Vec<u8>)> = Vec::new();
        let ok = msgs.push(body, &mut |ty, m| {
            if ty == hello::CLIENT_HELLO || ty == hello::SERVER_HELLO {
                found.push((ty, m.to_vec()));
            }
        });
        self.halves[d].msgs = msgs;
        if !ok {
            self.fail(Undecrypted::Malformed, ts, out);
            return;
        }
        for (ty, m) in found {
            match (ty, dir) {
                (hello::CLIENT_HELLO, Dir::ToServer) => {
                    if let Some(ch) = hello::client_hello(&m) {
                        let first = self.client_random.is_none();
                        self.client_random = Some(ch.random);
                        if first {
                            self.info.sni = ch.sni.clone();
                            out.push(ProtoEvent::Tls { ts, sni: ch.sni });
                        }
                    }
                }
                (hello::SERVER_HELLO, Dir::ToClient) => {
                    if let Some(sh) = hello::server_hello(&m) {
                        self.server_hello(sh, ts, out);
                    }
                }
                _ => {}
            }
        }
    }

    fn server_hello(&mut self, sh: hello::ServerHello, ts: Ts, out: &mut Vec<ProtoEvent>) {
        self.info.version = Some(hello::version_name(sh.version));
        self.info.cipher = Some(crypto::suite_name(sh.suite));
        if sh.retry {
            return; // HelloRetryRequest: the real ServerHello follows
        }
        self.server_random = Some(sh.random);
        self.negotiated = true;
        self.tls13 = sh.version == 0x0304;
        if sh.alpn.is_some() {
            self.info.alpn = sh.alpn;
        }
        if sh.version < 0x0303 || sh.version > 0x0304 {
            self.fail(Undecrypted::UnsupportedVersion, ts, out);
            return;
        }
        match crypto::suite(sh.suite) {
            Some(s) if s.tls13 == self.tls13 => self.suite = Some(s),
            _ => {
                self.fail(Undecrypted::UnsupportedSuite, ts, out);
                return;
            }
        }
        if self.client_random.is_none() {
            self.fail(Undecrypted::HandshakeNotCaptured, ts, out);
            return;
        }
        if self.tls13 {
            for h in &mut self.halves {
                h.encrypted = true;
            }
            self.tls13_keys();
        }
    }

    /// Looks the connection's secrets up (again, if the store changed).
    fn secrets(&mut self) -> Option<keylog::Secrets> {
        let cr = self.client_random?;
        self.seen_generation = self.keys.generation();
        let s = self.keys.lookup(&cr);
        if s.is_some() {
            self.keys_found = true;
        }
        s
    }

    /// TLS 1.3: each direction starts with its handshake key (or, when only
    /// the traffic secrets were logged, its application key).
    fn tls13_keys(&mut self) {
        let (Some(suite), Some(sec)) = (self.suite, self.secrets()) else { return };
        for (d, hs, ap) in [(0, &sec.client_hs, &sec.client_ap), (1, &sec.server_hs, &sec.server_ap)] {
            let h = &mut self.halves[d];
            if h.key.is_some() {
                continue;
            }
            if h.app_secret.is_none() {
                h.app_secret = ap.clone();
            }
            if h.epoch != Epoch::Application
                && let Some(k) = hs.as_deref().and_then(|s| RecordKey::tls13(suite, s))
            {
                h.key = Some(k);
                h.epoch = Epoch::Handshake;
            } else if let Some(k) = ap.as_deref().and_then(|s| RecordKey::tls13(suite, s)) {
                h.key = Some(k);
                h.epoch = Epoch::Application;
            }
        }
    }

    /// TLS 1.2: the direction's key from the master secret, at its
    /// ChangeCipherSpec.
    fn tls12_key(&mut self, dir: Dir) {
        let (Some(suite), Some(cr), Some(sr)) = (self.suite, self.client_random, self.server_random) else { return };
        let Some(master) = self.secrets().and_then(|s| s.master) else { return };
        if let Some([c, s]) = crypto::tls12_keys(suite, &master, &cr, &sr) {
            self.halves[dir.index()].key = Some(if dir == Dir::ToServer { c } else { s });
        }
    }

    fn has_key(&mut self, dir: Dir) -> bool {
        if self.halves[dir.index()].key.is_some() {
            return true;
        }
        if self.keys.generation() != self.seen_generation || !self.keys_found {
            if self.tls13 {
                self.tls13_keys();
            } else if self.halves[dir.index()].encrypted {
                self.tls12_key(dir);
            }
        }
        self.halves[dir.index()].key.is_some()
    }

    fn hold(&mut self, dir: Dir, ts: Ts, rec: &[u8], out: &mut Vec<ProtoEvent>) {
        if self.held_bytes + rec.len() > HOLD_LIMIT {
            self.fail(Undecrypted::NoKey, ts, out);
            return;
        }
        self.held_bytes += rec.len();
        if !self.was_held {
            // Say so: a hop waiting for its keys is not inferred yet.
            out.push(ProtoEvent::TlsInfo { ts, info: Box::new(self.info.clone()) });
        }
        self.was_held = true;
        self.held.push_back((dir, ts, rec.to_vec()));
    }

    /// Keys arrived: the held records are read in their order.
    fn release_held(&mut self, now: Ts, out: &mut Vec<ProtoEvent>) {
        if self.keys.generation() == self.seen_generation && self.keys_found {
            return;
        }
        let Some(&(d0, ..)) = self.held.front() else { return };
        if !self.has_key(d0) {
            return;
        }
        self.stats.late_keys = 1;
        let held = std::mem::take(&mut self.held);
        self.held_bytes = 0;
        for (dir, ts, mut rec) in held {
            if self.failed.is_some() && !self.info.decrypted {
                break;
            }
            self.record(dir, ts, &mut rec, out);
        }
        if self.held.is_empty() {
            self.replay_closings(out);
        }
        let _ = now;
    }

    /// A protected record: decrypt, then act on its content.
    fn protected(&mut self, dir: Dir, ts: Ts, rec: &mut [u8], out: &mut Vec<ProtoEvent>) {
        if !self.negotiated {
            self.fail(Undecrypted::HandshakeNotCaptured, ts, out);
            return;
        }
        if !self.has_key(dir) {
            // The key line may be in the file already and not yet read by
            // the key log's thread (it looks every 5 ms, later on a busy
            // host): read it now rather than hold, when the log grows.
            if !(self.keys.growing() && self.keys.catch_up(ts) && self.has_key(dir)) {
                if self.keys.growing() {
                    self.hold(dir, ts, rec, out);
                } else {
                    self.fail(Undecrypted::NoKey, ts, out);
                }
                return;
            }
        }
        let d = dir.index();
        let hdr: [u8; 5] = rec[..5].try_into().expect("5 bytes");
        let body = &mut rec[5..];
        // A copy to retry with the next epoch's key when TLS 1.3's switch
        // point was missed (the handshake secret was not logged).
        let backup = (self.tls13 && self.halves[d].epoch == Epoch::Handshake).then(|| body.to_vec());
        let key = self.halves[d].key.as_mut().expect("has_key");
        let mut res = key.open(&hdr, body);
        if res.is_err()
            && let Some(b) = backup
            && let Some(k) = self.next_epoch_key(dir)
        {
            body.copy_from_slice(&b);
            let mut k = k;
            if let Ok(r) = k.open(&hdr, body) {
                let h = &mut self.halves[d];
                h.key = Some(k);
                h.epoch = Epoch::Application;
                res = Ok(r);
            }
        }
        let range = match res {
            Ok(r) => r,
            Err(OpenError::Short) | Err(OpenError::Auth) => {
                let h = &mut self.halves[d];
                if self.tls13
                    && h.epoch == Epoch::Application
                    && !self.info.decrypted
                    && h.skipped < 16
                    && h.app_secret.is_some()
                    && self.keys.lookup(&self.client_random.unwrap_or_default()).is_some_and(|s| {
                        if dir == Dir::ToServer { s.client_hs.is_none() } else { s.server_hs.is_none() }
                    })
                {
                    // Only the traffic secrets were logged: the handshake
                    // records before them cannot be read, and are skipped.
                    h.skipped += 1;
                    return;
                }
                self.stats.auth_failures += 1;
                h.dead = true;
                h.buf = Vec::new();
                self.fail(Undecrypted::AuthFailed, ts, out);
                return;
            }
        };
        self.stats.records += 1;
        let (ty, plain) = if self.tls13 {
            let p = &body[range];
            let Some(end) = p.iter().rposition(|&b| b != 0) else { return };
            (p[end], &p[..end])
        } else {
            (hdr[0], &body[range])
        };
        match ty {
            CT_APP => {
                if !self.announced {
                    self.announced = true;
                    self.info.decrypted = true;
                    self.info.reason = None;
                    self.failed = None;
                    self.inner = inner_for_alpn(self.info.alpn.as_deref(), &self.keys, self.verbose);
                    out.push(ProtoEvent::TlsInfo { ts, info: Box::new(self.info.clone()) });
                }
                self.stats.bytes += plain.len() as u64;
                self.inner.data(dir, ts, plain, out);
            }
            CT_HANDSHAKE if self.tls13 => self.handshake13(dir, plain),
            _ => {} // Finished (TLS 1.2), alerts
        }
    }

    fn next_epoch_key(&self, dir: Dir) -> Option<RecordKey> {
        let s = self.halves[dir.index()].app_secret.as_deref()?;
        RecordKey::tls13(self.suite?, s)
    }

    /// TLS 1.3 handshake messages under protection: ALPN, the switch to
    /// application keys after Finished, KeyUpdate.
    fn handshake13(&mut self, dir: Dir, plain: &[u8]) {
        let d = dir.index();
        let mut msgs = std::mem::take(&mut self.halves[d].msgs);
        let mut found: Vec<(u8, Option<String>)> = Vec::new();
        msgs.push(plain, &mut |ty, m| match ty {
            hello::ENCRYPTED_EXTENSIONS => found.push((ty, hello::encrypted_extensions_alpn(m))),
            hello::FINISHED | hello::KEY_UPDATE => found.push((ty, None)),
            _ => {}
        });
        self.halves[d].msgs = msgs;
        let Some(suite) = self.suite else { return };
        for (ty, alpn) in found {
            let h = &mut self.halves[d];
            match ty {
                hello::ENCRYPTED_EXTENSIONS if alpn.is_some() => self.info.alpn = alpn,
                hello::FINISHED if h.epoch == Epoch::Handshake => {
                    h.key = h.app_secret.as_deref().and_then(|s| RecordKey::tls13(suite, s));
                    h.epoch = Epoch::Application;
                    if h.key.is_none() {
                        h.dead = true;
                    }
                }
                hello::KEY_UPDATE if h.epoch == Epoch::Application => {
                    let next = h
                        .app_secret
                        .as_deref()
                        .and_then(|s| crypto::expand_label(suite.hash, s, "traffic upd", suite.hash.output_len()));
                    h.key = next.as_deref().and_then(|s| RecordKey::tls13(suite, s));
                    h.app_secret = next;
                    self.stats.key_updates += 1;
                }
                _ => {}
            }
        }
    }
}

/// A TLS handshake record carrying a ClientHello.
pub fn is_client_hello(d: &[u8]) -> bool {
    d.len() >= 6 && d[0] == 0x16 && d[1] == 0x03 && d[2] <= 0x04 && d[5] == 0x01
}

/// Looks like a TLS record header (a connection picked up mid-way).
pub fn looks_like_record(d: &[u8]) -> bool {
    d.len() >= 5
        && (CT_CCS..=CT_APP).contains(&d[0])
        && d[1] == 0x03
        && d[2] <= 0x04
        && (u16::from_be_bytes([d[3], d[4]]) as usize) <= MAX_RECORD
}

/// The SNI host name, if the ClientHello (in this first segment) has one.
pub fn sni(d: &[u8]) -> Option<String> {
    let mut r = Reader { d, at: 5 };
    if r.u8()? != 1 {
        return None;
    }
    r.skip(3)?; // handshake length
    r.skip(2 + 32)?; // version, random
    let sid = r.u8()? as usize;
    r.skip(sid)?;
    let cs = r.u16()? as usize;
    r.skip(cs)?;
    let comp = r.u8()? as usize;
    r.skip(comp)?;
    let ext_len = r.u16()? as usize;
    let end = r.at.checked_add(ext_len)?.min(d.len());
    while r.at + 4 <= end {
        let ty = r.u16()?;
        let len = r.u16()? as usize;
        if ty == 0 {
            r.skip(2)?; // list length
            if r.u8()? != 0 {
                return None;
            }
            let n = r.u16()? as usize;
            let name = r.take(n)?;
            return Some(hello::printable(name));
        }
        r.skip(len)?;
    }
    None
}

/// Encodes a minimal TLS 1.3 ClientHello record naming `name` (SNI), for
/// tests and the fuzzer's seeds.
pub fn encode_client_hello(name: &str) -> Vec<u8> {
    build::client_hello(&[0; 32], name, &[])
}

#[cfg(test)]
mod tests;
