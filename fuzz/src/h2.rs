//! The `h2` target: one HTTP/2 connection (cleartext, prior knowledge)
//! driven through wstap's connection application layer: frames cut
//! anywhere, HPACK blocks (valid and not), streams opened past the caps,
//! RFC 8441 extended CONNECTs whose DATA reaches the WebSocket parser,
//! resets, gaps and closes.
//!
//! Input: steps `[u8 op][u16 len][len bytes]` until the input ends; `op & 1`
//! is the direction (0: to the server). `op >> 1`: 0 raw bytes, 1 the bytes
//! as one frame (type, flags and stream from its first three bytes), 2 a
//! HEADERS frame on stream `2n+1` with an extended CONNECT (the bytes as
//! the `:path`, literal fields: valid HPACK), 3 `:status 200` on that
//! stream, 4 the bytes as one DATA frame on that stream, 5 a gap of `len`
//! bytes, 6 the sender closes, other: raw bytes again.

use wstap::proto::h2::frame::{self, PREFACE, flag, ty};
use wstap::proto::{App, Dir, ProtoEvent};
use wstap::time::Ts;

use crate::Reader;

/// A literal header field without indexing, new name (RFC 7541 6.2.2).
fn literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0);
    for s in [name, value] {
        let n = s.len().min(126);
        out.push(n as u8);
        out.extend_from_slice(&s[..n]);
    }
}

pub fn run(data: &[u8]) {
    let mut r = Reader::new(data);
    let mut app = App::Detect(Default::default());
    let mut out: Vec<ProtoEvent> = Vec::new();
    app.data(Dir::ToServer, Ts(0), PREFACE, &mut out);
    let mut t = 1i64;
    let mut stream = 1u32;
    while !r.is_empty() {
        let op = r.u8();
        let len = r.u16() as usize;
        let b = r.bytes(len);
        let dir = if op & 1 == 0 { Dir::ToServer } else { Dir::ToClient };
        t += 1000;
        let ts = Ts(t);
        match op >> 1 {
            1 => {
                let (f, rest) = (b.first().copied().unwrap_or(0), b.get(3..).unwrap_or(&[]));
                let fl = b.get(1).copied().unwrap_or(0);
                let s = b.get(2).copied().unwrap_or(0) as u32;
                app.data(dir, ts, &frame::encode(f % 10, fl, s, rest), &mut out);
            }
            2 => {
                stream = 2 * (b.first().copied().unwrap_or(0) as u32) + 1;
                let mut block = Vec::new();
                literal(&mut block, b":method", b"CONNECT");
                literal(&mut block, b":protocol", b"websocket");
                literal(&mut block, b":path", b);
                app.data(Dir::ToServer, ts, &frame::encode(ty::HEADERS, flag::END_HEADERS, stream, &block), &mut out);
            }
            3 => {
                let mut block = Vec::new();
                literal(&mut block, b":status", b"200");
                app.data(Dir::ToClient, ts, &frame::encode(ty::HEADERS, flag::END_HEADERS, stream, &block), &mut out);
            }
            4 => app.data(dir, ts, &frame::encode(ty::DATA, 0, stream, b), &mut out),
            5 => app.gap(dir, ts, len as u32, &mut out),
            6 => app.closing(dir, ts, if len % 2 == 0 { "fin" } else { "rst" }, &mut out),
            _ => app.data(dir, ts, b, &mut out),
        }
        if out.len() > 10_000 {
            out.clear();
        }
    }
    app.finish(&mut out);
}
