//! HTTP/2 frames (RFC 9113 section 4 and 6): the 9-byte header, types,
//! flags, settings and error codes, and a streaming per-direction reader
//! that hands DATA payloads through without copying and buffers the other
//! frames' payloads up to a bound.

/// The client connection preface (RFC 9113 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub mod ty {
    pub const DATA: u8 = 0x0;
    pub const HEADERS: u8 = 0x1;
    pub const PRIORITY: u8 = 0x2;
    pub const RST_STREAM: u8 = 0x3;
    pub const SETTINGS: u8 = 0x4;
    pub const PUSH_PROMISE: u8 = 0x5;
    pub const PING: u8 = 0x6;
    pub const GOAWAY: u8 = 0x7;
    pub const WINDOW_UPDATE: u8 = 0x8;
    pub const CONTINUATION: u8 = 0x9;
}

pub mod flag {
    pub const END_STREAM: u8 = 0x1;
    pub const ACK: u8 = 0x1;
    pub const END_HEADERS: u8 = 0x4;
    pub const PADDED: u8 = 0x8;
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers (RFC 9113 6.5.2, RFC 8441 3).
pub mod setting {
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    pub const ENABLE_PUSH: u16 = 0x2;
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
    pub const ENABLE_CONNECT_PROTOCOL: u16 = 0x8;
}

/// Error codes (RFC 9113 7), by value.
pub const ERROR_NAMES: [&str; 14] = [
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "INTERNAL_ERROR",
    "FLOW_CONTROL_ERROR",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
    "FRAME_SIZE_ERROR",
    "REFUSED_STREAM",
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "INADEQUATE_SECURITY",
    "HTTP_1_1_REQUIRED",
];

/// The name of an error code ("CANCEL"), or "UNKNOWN" for one RFC 9113
/// does not define (it is kept as a number beside it).
pub fn error_name(code: u32) -> &'static str {
    ERROR_NAMES.get(code as usize).copied().unwrap_or("UNKNOWN")
}

pub const CANCEL: u32 = 0x8;

/// The frame header (RFC 9113 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub ty: u8,
    pub flags: u8,
    pub stream: u32,
}

impl Header {
    pub fn parse(b: &[u8; 9]) -> Header {
        Header {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            ty: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// Encodes a frame (tests, the fuzzer's seeds, the benchmark's generator).
pub fn encode(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut v = Vec::with_capacity(9 + payload.len());
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(ty);
    v.push(flags);
    v.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Non-DATA frame payloads buffered at most (a larger one is skipped and
/// counted): SETTINGS, PING, GOAWAY (its debug data cut), RST_STREAM,
/// WINDOW_UPDATE and header block fragments are all far smaller in practice.
pub const MAX_CONTROL_PAYLOAD: usize = 16 * 1024;

/// What the reader hands on.
#[derive(Debug)]
pub enum Piece<'a> {
    /// A frame with its (buffered) payload; DATA frames come as
    /// `DataStart`, `Data`... and `DataEnd` instead.
    Frame(Header, &'a [u8]),
    /// A non-DATA frame too large to buffer: skipped.
    Oversized(Header),
    /// A DATA frame begins (its header; padding is removed from `Data`).
    DataStart(Header),
    /// Payload bytes of the current DATA frame (never the padding).
    Data(&'a [u8]),
    /// Bytes of the current DATA frame's payload lost to the capture.
    DataGap(u32),
    DataEnd(Header),
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Header,
    /// Buffering a non-DATA payload.
    Payload,
    /// Skipping an oversized one: bytes left.
    Skip(u32),
    /// DATA: waiting for the pad length byte.
    PadLen,
    /// DATA: payload bytes left, then padding left.
    Data { left: u32, pad: u32 },
}

/// One direction's frames, from a byte stream cut anywhere.
#[derive(Debug, Default)]
pub struct Reader {
    hdr: [u8; 9],
    have: usize,
    cur: Option<Header>,
    state: State,
    buf: Vec<u8>,
    /// A gap hid a frame boundary: no more frames in this direction.
    pub dead: bool,
}

impl Reader {
    /// Consumes stream bytes, calling `on` for each piece.
    pub fn feed(&mut self, mut d: &[u8], on: &mut impl FnMut(Piece<'_>)) {
        while !d.is_empty() && !self.dead {
            match self.state {
                State::Header => {
                    let n = (9 - self.have).min(d.len());
                    self.hdr[self.have..self.have + n].copy_from_slice(&d[..n]);
                    self.have += n;
                    d = &d[n..];
                    if self.have < 9 {
                        return;
                    }
                    self.have = 0;
                    let h = Header::parse(&self.hdr);
                    self.start(h, on);
                }
                State::Payload => {
                    let h = self.cur.expect("frame");
                    let n = (h.len as usize - self.buf.len()).min(d.len());
                    self.buf.extend_from_slice(&d[..n]);
                    d = &d[n..];
                    if self.buf.len() == h.len as usize {
                        on(Piece::Frame(h, &self.buf));
                        self.buf.clear();
                        self.state = State::Header;
                    }
                }
                State::Skip(left) => {
                    let n = (left as usize).min(d.len());
                    d = &d[n..];
                    self.state = State::Skip(left - n as u32);
                    if left as usize == n {
                        self.state = State::Header;
                    }
                }
                State::PadLen => {
                    let h = self.cur.expect("frame");
                    let pad = d[0] as u32;
                    d = &d[1..];
                    if pad > h.len - 1 {
                        // Padding longer than the frame: a connection error
                        // for the peer; for us, the frame ends here.
                        self.state = State::Skip(h.len - 1);
                        on(Piece::DataEnd(h));
                        continue;
                    }
                    self.state = State::Data { left: h.len - 1 - pad, pad };
                    self.data_end_if_done(on);
                }
                State::Data { left, pad } => {
                    if left > 0 {
                        let n = (left as usize).min(d.len());
                        on(Piece::Data(&d[..n]));
                        d = &d[n..];
                        self.state = State::Data { left: left - n as u32, pad };
                    } else {
                        let n = (pad as usize).min(d.len());
                        d = &d[n..];
                        self.state = State::Data { left: 0, pad: pad - n as u32 };
                    }
                    self.data_end_if_done(on);
                }
            }
        }
    }

    fn start(&mut self, h: Header, on: &mut impl FnMut(Piece<'_>)) {
        self.cur = Some(h);
        if h.ty == ty::DATA {
            on(Piece::DataStart(h));
            if h.has(flag::PADDED) && h.len > 0 {
                self.state = State::PadLen;
            } else {
                self.state = State::Data { left: h.len, pad: 0 };
                self.data_end_if_done(on);
            }
        } else if h.len as usize > MAX_CONTROL_PAYLOAD {
            on(Piece::Oversized(h));
            self.state = State::Skip(h.len);
        } else if h.len == 0 {
            on(Piece::Frame(h, &[]));
            self.state = State::Header;
        } else {
            self.state = State::Payload;
        }
    }

    fn data_end_if_done(&mut self, on: &mut impl FnMut(Piece<'_>)) {
        if let State::Data { left: 0, pad: 0 } = self.state {
            on(Piece::DataEnd(self.cur.expect("frame")));
            self.state = State::Header;
        }
    }

    /// `n` bytes were lost. Inside a DATA payload (or a skipped frame) the
    /// framing survives; anywhere else the boundaries are gone.
    pub fn gap(&mut self, n: u32, on: &mut impl FnMut(Piece<'_>)) {
        match self.state {
            State::Data { left, pad } if n <= left => {
                on(Piece::DataGap(n));
                self.state = State::Data { left: left - n, pad };
                self.data_end_if_done(on);
            }
            State::Data { left, pad } if n <= left + pad => {
                if left > 0 {
                    on(Piece::DataGap(left));
                }
                self.state = State::Data { left: 0, pad: pad - (n - left) };
                self.data_end_if_done(on);
            }
            State::Skip(left) if n <= left => {
                self.state = if n == left { State::Header } else { State::Skip(left - n) };
            }
            _ => {
                self.dead = true;
                self.buf = Vec::new();
            }
        }
    }

    /// Bytes held (a partial control frame).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }
}

/// The SETTINGS parameters of a frame, as (identifier, value).
pub fn settings(p: &[u8]) -> impl Iterator<Item = (u16, u32)> + '_ {
    p.chunks_exact(6).map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
}

/// A 4-byte big-endian value at the start of `p` (RST_STREAM, WINDOW_UPDATE).
pub fn u32_at(p: &[u8], at: usize) -> Option<u32> {
    p.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(chunks: &[&[u8]]) -> Vec<String> {
        let mut r = Reader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut |p| {
                out.push(match p {
                    Piece::Frame(h, b) => format!("F{}:{}:{}", h.ty, h.stream, b.len()),
                    Piece::Oversized(h) => format!("O{}", h.len),
                    Piece::DataStart(h) => format!("DS{}", h.stream),
                    Piece::Data(b) => format!("D{}", String::from_utf8_lossy(b)),
                    Piece::DataGap(n) => format!("G{n}"),
                    Piece::DataEnd(h) => format!("DE{}", h.stream),
                })
            });
        }
        out
    }

    #[test]
    fn frames_cut_anywhere_and_padding_removed() {
        let mut wire = encode(ty::SETTINGS, 0, 0, &[0, 8, 0, 0, 0, 1]);
        // PADDED DATA: pad length 2, "abc", 2 bytes of padding.
        wire.extend(encode(ty::DATA, flag::PADDED | flag::END_STREAM, 3, &[2, b'a', b'b', b'c', 0, 0]));
        wire.extend(encode(ty::RST_STREAM, 0, 3, &8u32.to_be_bytes()));
        let whole = pieces(&[&wire]);
        assert_eq!(whole, ["F4:0:6", "DS3", "Dabc", "DE3", "F3:3:4"]);
        // Byte by byte: the same frames (DATA payload in pieces).
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        let cut = pieces(&bytes);
        assert_eq!(cut.iter().filter(|p| p.starts_with('F')).count(), 2);
        assert_eq!(
            cut.iter().filter(|p| p.starts_with("D") && !p.starts_with("DS") && !p.starts_with("DE")).count(),
            3
        );
        assert!(cut.contains(&"DE3".to_string()));
    }

    #[test]
    fn oversized_control_frames_are_skipped_and_empty_data_ends() {
        let mut wire = encode(ty::GOAWAY, 0, 0, &vec![0; MAX_CONTROL_PAYLOAD + 1]);
        wire.extend(encode(ty::DATA, flag::END_STREAM, 1, b""));
        wire.extend(encode(ty::PING, 0, 0, &[0; 8]));
        assert_eq!(
            pieces(&[&wire]),
            [format!("O{}", MAX_CONTROL_PAYLOAD + 1), "DS1".into(), "DE1".into(), "F6:0:8".into()]
        );
    }

    #[test]
    fn a_gap_inside_data_keeps_framing_elsewhere_it_does_not() {
        let mut r = Reader::default();
        let f = encode(ty::DATA, 0, 1, b"0123456789");
        let mut seen = Vec::new();
        r.feed(&f[..12], &mut |p| seen.push(format!("{p:?}").chars().take(8).collect::<String>()));
        r.gap(4, &mut |p| seen.push(format!("{p:?}")));
        r.feed(&f[16..], &mut |_| {});
        assert!(!r.dead);
        assert!(seen.iter().any(|s| s == "DataGap(4)"));
        r.gap(3, &mut |_| {});
        assert!(r.dead, "a gap at a frame boundary loses the framing");
    }

    #[test]
    fn error_names() {
        assert_eq!(error_name(8), "CANCEL");
        assert_eq!(error_name(0), "NO_ERROR");
        assert_eq!(error_name(99), "UNKNOWN");
    }
}
