//! RFC 6455 frame parser (section 5.2), streaming and bounded: it keeps at
//! most a 14-byte header and, for control frames, 125 bytes of payload.
//! Data payloads are skipped, never stored. Frames may be split across
//! segments at any byte and many frames may share a segment.

/// Control frame bodies larger than this violate RFC 6455 5.5.
pub const MAX_CONTROL_PAYLOAD: u64 = 125;

pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xa;

    pub fn name(op: u8) -> &'static str {
        match op {
            CONTINUATION => "continuation",
            TEXT => "text",
            BINARY => "binary",
            CLOSE => "close",
            PING => "ping",
            PONG => "pong",
            _ => "reserved",
        }
    }

    pub fn is_control(op: u8) -> bool {
        op & 0x8 != 0
    }
}

/// A close frame's body (RFC 6455 5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseBody {
    /// None when the body is empty (the peer "sees" 1005).
    pub code: Option<u16>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// RSV1..RSV3 as bits 2..0; RSV1 set means a compressed message
    /// (permessage-deflate, RFC 7692).
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub len: u64,
    /// For close frames, the decoded body.
    pub close: Option<CloseBody>,
}

impl Frame {
    pub fn compressed(&self) -> bool {
        self.rsv & 0b100 != 0
    }
    pub fn is_control(&self) -> bool {
        opcode::is_control(self.opcode)
    }
    /// A control frame longer than 125 bytes (RFC 6455 5.5).
    pub fn oversized_control(&self) -> bool {
        self.is_control() && self.len > MAX_CONTROL_PAYLOAD
    }
}

#[derive(Debug, Default)]
pub struct FrameParser {
    hdr: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// The control frame whose payload is being read (data frame payloads
    /// are only counted past).
    ctrl_frame: Option<Frame>,
    mask: [u8; 4],
    /// Control payload kept so far (<= 125 bytes), unmasked.
    ctrl: Vec<u8>,
    ctrl_pos: u64,
    /// A gap hid a frame boundary (or a header was invalid): the stream
    /// can no longer be framed.
    desync: bool,
    /// Payload bytes actually seen (not what headers claimed, not gaps).
    seen: u64,
}

/// Header length announced by a frame's second byte.
#[inline]
fn header_len_of(b1: u8) -> usize {
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

impl FrameParser {
    pub fn new() -> FrameParser {
        FrameParser::default()
    }

    pub fn desynced(&self) -> bool {
        self.desync
    }

    /// Payload bytes seen so far: a frame that claims 1 GB and is cut by
    /// the end of the connection counts what came.
    pub fn payload_seen(&self) -> u64 {
        self.seen
    }

    /// Consumes stream bytes, calling `emit` for each frame: data frames
    /// when their header is complete, control frames when their payload is.
    pub fn feed(&mut self, mut data: &[u8], emit: &mut impl FnMut(&Frame)) {
        while !data.is_empty() && !self.desync {
            if self.left > 0 {
                let n = (self.left.min(data.len() as u64)) as usize;
                self.seen += n as u64;
                if self.ctrl_frame.is_some() {
                    self.take_payload(&data[..n]);
                }
                data = &data[n..];
                self.left -= n as u64;
                // (A data frame's end is nothing to report.)
                if self.left == 0 && self.ctrl_frame.is_some() {
                    self.finish(emit);
                }
                continue;
            }
            // A whole header at hand (the usual case): no accumulation.
            if self.have == 0 && data.len() >= 2 {
                let hl = header_len_of(data[1]);
                if data.len() >= hl {
                    self.hdr[..hl].copy_from_slice(&data[..hl]);
                    data = &data[hl..];
                    self.start_frame(emit);
                    continue;
                }
            }
            // Accumulate the header: 2 bytes, then the length it announces.
            let need = if self.have < 2 { 2 } else { header_len_of(self.hdr[1]) };
            let n = (need - self.have).min(data.len());
            self.hdr[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < 2 || self.have < header_len_of(self.hdr[1]) {
                continue;
            }
            self.start_frame(emit);
        }
    }

    /// `n` stream bytes were lost. Inside a payload that is harmless;
    /// anywhere else the frame boundaries are gone.
    pub fn gap(&mut self, n: u32) {
        if self.left > 0 && n as u64 <= self.left {
            self.left -= n as u64;
            self.ctrl_pos += n as u64;
            if self.left == 0 {
                // The frame ended inside the gap; its (control) body is
                // incomplete, so drop the frame rather than guess.
                self.ctrl_frame = None;
            }
        } else {
            self.desync = true;
        }
    }

    fn start_frame(&mut self, emit: &mut impl FnMut(&Frame)) {
        let h = &self.hdr;
        let masked = h[1] & 0x80 != 0;
        let (len, at) = match h[1] & 0x7f {
            126 => (u16::from_be_bytes([h[2], h[3]]) as u64, 4),
            127 => (u64::from_be_bytes(h[2..10].try_into().unwrap()), 10),
            l => (l as u64, 2),
        };
        self.have = 0;
        if len >> 63 != 0 {
            // RFC 6455 5.2: the most significant bit MUST be 0.
            self.desync = true;
            return;
        }
        if masked {
            self.mask.copy_from_slice(&h[at..at + 4]);
        }
        let frame =
            Frame { fin: h[0] & 0x80 != 0, rsv: (h[0] >> 4) & 0x7, opcode: h[0] & 0x0f, masked, len, close: None };
        self.left = len;
        if frame.is_control() {
            self.ctrl.clear();
            self.ctrl_pos = 0;
            self.ctrl_frame = Some(frame);
            if len == 0 {
                self.finish(emit);
            }
        } else {
            emit(&frame);
        }
    }

    fn take_payload(&mut self, p: &[u8]) {
        let Some(f) = &self.ctrl_frame else { return };
        for &b in p {
            if self.ctrl.len() as u64 >= MAX_CONTROL_PAYLOAD {
                break;
            }
            let m = if f.masked { self.mask[(self.ctrl_pos % 4) as usize] } else { 0 };
            self.ctrl.push(b ^ m);
            self.ctrl_pos += 1;
        }
    }

    /// End of a frame's payload: control frames are reported now.
    fn finish(&mut self, emit: &mut impl FnMut(&Frame)) {
        let Some(mut f) = self.ctrl_frame.take() else { return };
        if f.opcode == opcode::CLOSE {
            f.close = Some(if self.ctrl.len() >= 2 {
                CloseBody {
                    code: Some(u16::from_be_bytes([self.ctrl[0], self.ctrl[1]])),
                    reason: String::from_utf8_lossy(&self.ctrl[2..]).into_owned(),
                }
            } else {
                CloseBody { code: None, reason: String::new() }
            });
        }
        emit(&f);
    }
}

/// Encodes a frame header (and payload) for tests and the fuzzer's seeds.
pub fn encode(fin: bool, rsv: u8, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(fin as u8) << 7 | (rsv & 7) << 4 | (op & 0xf)];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n <= 0xffff {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut p = FrameParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut |f| out.push(f.clone()));
        }
        out
    }

    fn sample_stream() -> (Vec<u8>, Vec<(u8, u64, bool)>) {
        let mut s = Vec::new();
        s.extend(encode(true, 0, opcode::TEXT, Some([1, 2, 3, 4]), b"hello"));
        s.extend(encode(false, 0, opcode::BINARY, None, &[7u8; 300]));
        s.extend(encode(true, 0, opcode::PING, Some([9, 9, 9, 9]), b"hb"));
        s.extend(encode(true, 0, opcode::CONTINUATION, None, &[1u8; 70000]));
        let mut close = 1001u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"going away");
        s.extend(encode(true, 0, opcode::CLOSE, Some([0xde, 0xad, 0xbe, 0xef]), &close));
        let want = vec![
            (opcode::TEXT, 5, true),
            (opcode::BINARY, 300, false),
            (opcode::PING, 2, true),
            (opcode::CONTINUATION, 70000, true),
            (opcode::CLOSE, 12, true),
        ];
        (s, want)
    }

    #[test]
    fn many_frames_in_one_segment() {
        let (s, want) = sample_stream();
        let got = parse_all(&[&s]);
        let summary: Vec<_> = got.iter().map(|f| (f.opcode, f.len, f.fin)).collect();
        assert_eq!(summary, want);
        let close = got[4].close.as_ref().unwrap();
        assert_eq!(close.code, Some(1001));
        assert_eq!(close.reason, "going away");
        assert!(got[0].masked && !got[1].masked);
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let (s, _) = sample_stream();
        let whole = parse_all(&[&s]);
        for cut in 0..s.len().min(400) {
            assert_eq!(parse_all(&[&s[..cut], &s[cut..]]), whole, "cut at {cut}");
        }
        // And the close frame at the end, cut everywhere.
        for cut in s.len() - 20..s.len() {
            assert_eq!(parse_all(&[&s[..cut], &s[cut..]]), whole, "cut at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn close_frame_bodies() {
        let empty = parse_all(&[&encode(true, 0, opcode::CLOSE, None, b"")]);
        assert_eq!(empty[0].close, Some(CloseBody { code: None, reason: String::new() }));
        let big = vec![b'r'; 258];
        let mut body = 1000u16.to_be_bytes().to_vec();
        body.extend_from_slice(&big);
        let f = &parse_all(&[&encode(true, 0, opcode::CLOSE, None, &body)])[0];
        assert!(f.oversized_control());
        assert_eq!(f.len, 260);
        assert_eq!(f.close.as_ref().unwrap().code, Some(1000));
        assert_eq!(f.close.as_ref().unwrap().reason.len(), 123);
    }

    #[test]
    fn rsv1_marks_compression() {
        let f = &parse_all(&[&encode(true, 0b100, opcode::TEXT, None, b"x")])[0];
        assert!(f.compressed());
    }

    #[test]
    fn gap_inside_payload_keeps_framing_and_outside_loses_it() {
        let mut p = FrameParser::new();
        let mut out = Vec::new();
        let a = encode(true, 0, opcode::BINARY, None, &[0u8; 1000]);
        p.feed(&a[..100], &mut |f| out.push(f.clone()));
        p.gap(800);
        p.feed(&a[900..], &mut |f| out.push(f.clone()));
        p.feed(&encode(true, 0, opcode::TEXT, None, b"ok"), &mut |f| out.push(f.clone()));
        assert_eq!(out.len(), 2);
        assert!(!p.desynced());
        p.gap(1);
        assert!(p.desynced());
        p.feed(&encode(true, 0, opcode::TEXT, None, b"ok"), &mut |f| out.push(f.clone()));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn invalid_64bit_length_desyncs() {
        let mut s = vec![0x82, 127];
        s.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut p = FrameParser::new();
        p.feed(&s, &mut |_| panic!("no frame"));
        assert!(p.desynced());
        // Top bit alone, split across calls.
        let mut p = FrameParser::new();
        p.feed(&[0x81, 0xff, 0x80], &mut |_| panic!("no frame"));
        p.feed(&[0, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4], &mut |_| panic!("no frame"));
        assert!(p.desynced());
    }

    #[test]
    fn payload_seen_counts_what_came_not_what_was_claimed() {
        let mut p = FrameParser::new();
        let f = encode(true, 0, opcode::BINARY, None, &[0u8; 1000]);
        p.feed(&f[..110], &mut |_| {});
        assert_eq!(p.payload_seen(), 106);
        p.gap(500);
        p.feed(&f[610..], &mut |_| {});
        assert_eq!(p.payload_seen(), 106 + 394);
    }
}
