//! The handshake messages that matter to a passive decryptor: ClientHello
//! (random, SNI, ALPN offer), ServerHello (random, version, suite, ALPN,
//! extended master secret, HelloRetryRequest) and EncryptedExtensions
//! (TLS 1.3's ALPN). RFC 8446 4.1.2-4.1.4, 4.3.1; RFC 5246 7.4.1; RFC 7301;
//! RFC 7627; RFC 6066 3.

pub const CLIENT_HELLO: u8 = 1;
pub const SERVER_HELLO: u8 = 2;
pub const NEW_SESSION_TICKET: u8 = 4;
pub const ENCRYPTED_EXTENSIONS: u8 = 8;
pub const FINISHED: u8 = 20;
pub const KEY_UPDATE: u8 = 24;

const EXT_SNI: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_EMS: u16 = 23;
const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// The SHA-256 of "HelloRetryRequest", sent as a ServerHello's random.
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

pub struct Reader<'a> {
    pub d: &'a [u8],
    pub at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(d: &'a [u8]) -> Self {
        Reader { d, at: 0 }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.d.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    pub fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|s| u16::from_be_bytes([s[0], s[1]]))
    }
    pub fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|s| (s[0] as usize) << 16 | (s[1] as usize) << 8 | s[2] as usize)
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    pub fn rest(&self) -> &'a [u8] {
        &self.d[self.at.min(self.d.len())..]
    }
}

/// Iterates `(type, data)` over an extensions block.
fn extensions(d: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut r = Reader::new(d);
    std::iter::from_fn(move || {
        let ty = r.u16()?;
        let data = r.vec16()?;
        Some((ty, data))
    })
}

/// A name from the wire as text that is safe on a terminal: printable
/// ASCII kept, any other byte written as `\xNN`.
pub fn printable(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b.iter().take(255) {
        if (0x21..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub random: [u8; 32],
    pub sni: Option<String>,
    pub alpn: Vec<String>,
}

/// A ClientHello handshake message body (after the 4-byte header).
pub fn client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader::new(body);
    r.skip(2)?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression
    let mut ch = ClientHello { random, ..Default::default() };
    let Some(exts) = r.vec16() else { return Some(ch) };
    for (ty, data) in extensions(exts) {
        match ty {
            EXT_SNI => ch.sni = sni_ext(data),
            EXT_ALPN => ch.alpn = alpn_ext(data),
            _ => {}
        }
    }
    Some(ch)
}

fn sni_ext(d: &[u8]) -> Option<String> {
    let mut r = Reader::new(d);
    let mut list = Reader::new(r.vec16()?);
    while let Some(ty) = list.u8() {
        let name = list.vec16()?;
        if ty == 0 {
            return Some(printable(name));
        }
    }
    None
}

fn alpn_ext(d: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut r = Reader::new(d);
    if let Some(list) = r.vec16() {
        let mut l = Reader::new(list);
        while let Some(p) = l.vec8() {
            out.push(printable(p));
        }
    }
    out
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub random: [u8; 32],
    /// 0x0303 for TLS 1.2, 0x0304 for TLS 1.3 (from supported_versions).
    pub version: u16,
    pub suite: u16,
    pub alpn: Option<String>,
    pub ems: bool,
    pub retry: bool,
}

pub fn server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Reader::new(body);
    let legacy = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    r.vec8()?;
    let suite = r.u16()?;
    r.u8()?;
    let mut sh = ServerHello { random, version: legacy, suite, retry: random == HRR_RANDOM, ..Default::default() };
    if let Some(exts) = r.vec16() {
        for (ty, data) in extensions(exts) {
            match ty {
                EXT_SUPPORTED_VERSIONS if data.len() == 2 => sh.version = u16::from_be_bytes([data[0], data[1]]),
                EXT_ALPN => sh.alpn = alpn_ext(data).into_iter().next(),
                EXT_EMS => sh.ems = true,
                _ => {}
            }
        }
    }
    Some(sh)
}

/// TLS 1.3 EncryptedExtensions: the ALPN protocol the server chose.
pub fn encrypted_extensions_alpn(body: &[u8]) -> Option<String> {
    let mut r = Reader::new(body);
    let exts = r.vec16()?;
    extensions(exts).find(|(ty, _)| *ty == EXT_ALPN).and_then(|(_, d)| alpn_ext(d).into_iter().next())
}

pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0300 => "SSL 3.0",
        0x0301 => "TLS 1.0",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "unknown",
    }
}

/// Reassembles handshake messages (they may span records, and records may
/// hold several) and hands out complete ones. Bounded: a message larger
/// than any real handshake message is damage.
#[derive(Debug, Default)]
pub struct Messages {
    buf: Vec<u8>,
}

const MAX_MESSAGE: usize = 1 << 16;

impl Messages {
    /// Bytes held for a message not complete yet (memory budget).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// Adds handshake-record plaintext; calls `f(type, body)` per complete
    /// message. Returns false when the stream is not handshake messages.
    pub fn push(&mut self, data: &[u8], f: &mut dyn FnMut(u8, &[u8])) -> bool {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        let ok = loop {
            let rest = &self.buf[at..];
            if rest.len() < 4 {
                break true;
            }
            let len = (rest[1] as usize) << 16 | (rest[2] as usize) << 8 | rest[3] as usize;
            if len > MAX_MESSAGE {
                break false;
            }
            if rest.len() < 4 + len {
                break true;
            }
            f(rest[0], &rest[4..4 + len]);
            at += 4 + len;
        };
        self.buf.drain(..at);
        if !ok {
            self.buf.clear();
        }
        ok
    }
}
