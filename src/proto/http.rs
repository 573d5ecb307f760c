//! HTTP/1.x over a reassembled TCP connection: both directions, keep-alive
//! and pipelining (a FIFO of requests awaiting responses), bodies skipped by
//! Content-Length or chunked coding, 1xx interim responses, and the hand-off
//! to WebSocket framing after a 101 (bytes that follow the 101 in the same
//! segment are frames, as Zeek's `HTTP_Upgrade` passes them on).
//!
//! Only message heads are buffered, up to [`MAX_HEAD`] bytes; bodies are
//! counted past, never stored.

use std::collections::VecDeque;

use super::activity::WsActivity;
use super::message::{Headers, Request, Response, Version};
use super::ws::FrameParser;
use super::{Dir, ProtoEvent};
use crate::time::Ts;

/// Largest request or response head accepted (nginx allows 8 KiB by
/// default per header line; 64 KiB covers every real client).
pub const MAX_HEAD: usize = 64 * 1024;
/// Bytes a client may send after an upgrade request before the server
/// decides; they are replayed as frames or as HTTP once it has.
pub const MAX_AWAIT: usize = 64 * 1024;
const MAX_HEADERS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size { size: u64, digits: u8, ext: bool },
    Data(u64),
    DataEnd,
    Trailer { len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a message head.
    Head,
    Body(u64),
    Chunked(ChunkState),
    /// Response body delimited by the connection close.
    UntilClose,
    /// Client sent an Upgrade/CONNECT request; waiting for the response
    /// to know whether what follows is HTTP.
    AwaitResponse,
    /// Lost framing (gap or garbage); looking for a message start at the
    /// beginning of each chunk.
    Resync,
}

#[derive(Debug)]
struct Half {
    state: State,
    /// Partial head, or bytes held during `AwaitResponse`.
    buf: Vec<u8>,
    /// Timestamp of the first byte of the message being read.
    start: Option<Ts>,
    /// After the current request body, wait for the response.
    await_after_body: bool,
}

impl Half {
    fn new() -> Half {
        Half { state: State::Head, buf: Vec::new(), start: None, await_after_body: false }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    head: bool,
    connect: bool,
    upgrade: bool,
    websocket: bool,
}

/// After a 101 to a WebSocket upgrade: one frame parser per direction and
/// the connection's activity, in one allocation.
#[derive(Debug)]
pub struct WsState {
    parsers: [FrameParser; 2],
    act: WsActivity,
    /// Taken at the end (moved into the connection summary).
    taken: bool,
    /// Report every frame (`-v`).
    verbose: bool,
}

impl WsState {
    /// Frames from `ts` on (an HTTP/2 stream's DATA after a 2xx to its
    /// extended CONNECT).
    pub fn new(ts: Ts, verbose: bool) -> WsState {
        WsState { parsers: Default::default(), act: WsActivity::new(ts), taken: false, verbose }
    }

    pub fn feed(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        let WsState { parsers, act, verbose, .. } = self;
        let verbose = *verbose;
        parsers[dir as usize].feed(data, &mut |frame| {
            act.frame(ts, dir, frame);
            let ordinal = act.frames[dir as usize];
            if ordinal % RELAY_SAMPLE_EVERY == 0 {
                out.push(ProtoEvent::RelaySample { dir, ts, ordinal });
            }
            if verbose {
                out.push(ProtoEvent::Frame { dir, ts, frame: frame.clone() });
            }
        })
    }

    pub fn gap(&mut self, dir: Dir, len: u32, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let p = &mut self.parsers[dir as usize];
        let was = p.desynced();
        p.gap(len);
        if !was && p.desynced() {
            out.push(ProtoEvent::Anomaly { dir, ts, what: "ws-desync" });
        }
    }

    pub fn activity(&self) -> Option<&WsActivity> {
        (!self.taken).then_some(&self.act)
    }

    pub fn activity_mut(&mut self) -> Option<&mut WsActivity> {
        (!self.taken).then_some(&mut self.act)
    }

    pub fn take_activity(&mut self) -> Option<Box<WsActivity>> {
        if self.taken {
            return None;
        }
        self.taken = true;
        Some(Box::new(std::mem::take(&mut self.act)))
    }
}

#[derive(Debug)]
enum Mode {
    Http,
    WebSocket(Box<WsState>),
    /// After a 101 to anything else (h2c, tcp) or a CONNECT: opaque.
    Tunnel,
}

#[derive(Debug)]
pub struct HttpConn {
    halves: [Half; 2],
    pending: VecDeque<Pending>,
    mode: Mode,
    /// Report every WebSocket frame (`-v`).
    verbose: bool,
}

impl Default for HttpConn {
    fn default() -> Self {
        HttpConn::new(false)
    }
}

/// Every this many frames per direction, a relay sample is reported.
pub const RELAY_SAMPLE_EVERY: u64 = 8;

enum HeadResult<T> {
    Done(T, usize),
    NeedMore,
    Bad(&'static str),
}

impl HttpConn {
    pub fn new(verbose: bool) -> HttpConn {
        HttpConn { halves: [Half::new(), Half::new()], pending: VecDeque::new(), mode: Mode::Http, verbose }
    }

    /// After a 101 to a WebSocket upgrade, the frame parsers and activity
    /// (the connection no longer needs its HTTP state).
    pub fn take_ws(&mut self) -> Option<Box<WsState>> {
        match std::mem::replace(&mut self.mode, Mode::Tunnel) {
            Mode::WebSocket(w) => Some(w),
            other => {
                self.mode = other;
                None
            }
        }
    }

    pub fn is_websocket(&self) -> bool {
        matches!(self.mode, Mode::WebSocket(_))
    }

    pub fn is_tunnel(&self) -> bool {
        matches!(self.mode, Mode::Tunnel)
    }

    pub fn data(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        match &mut self.mode {
            Mode::Http => match dir {
                Dir::ToServer => self.requests(ts, data, out),
                Dir::ToClient => self.responses(ts, data, out),
            },
            Mode::WebSocket(w) => w.feed(dir, ts, data, out),
            Mode::Tunnel => {}
        }
    }

    pub fn gap(&mut self, dir: Dir, len: u32, out: &mut Vec<ProtoEvent>, ts: Ts) {
        match &mut self.mode {
            Mode::WebSocket(w) => w.gap(dir, len, ts, out),
            Mode::Tunnel => {}
            Mode::Http => {
                let h = &mut self.halves[dir as usize];
                h.state = match h.state {
                    State::Body(n) if len as u64 <= n => State::Body(n - len as u64),
                    State::Chunked(ChunkState::Data(n)) if len as u64 <= n => {
                        State::Chunked(ChunkState::Data(n - len as u64))
                    }
                    State::UntilClose => State::UntilClose,
                    // Bytes the client sent while waiting are lost; what
                    // follows is resynchronised once the server decides.
                    State::AwaitResponse => {
                        h.buf.clear();
                        State::AwaitResponse
                    }
                    _ => {
                        h.buf.clear();
                        h.start = None;
                        State::Resync
                    }
                };
                // Body/chunk counts survive; framing of a head does not.
                let _ = ts;
            }
        }
    }

    // ---- client -> server -------------------------------------------------

    fn requests(&mut self, ts: Ts, mut input: &[u8], out: &mut Vec<ProtoEvent>) {
        while !input.is_empty() {
            let h = &mut self.halves[0];
            match h.state {
                State::Head => {
                    if h.start.is_none() {
                        h.start = Some(ts);
                    }
                    match read_head(&mut h.buf, input, parse_request) {
                        HeadResult::Done(req, used) => {
                            input = &input[used..];
                            let start = h.start.take().unwrap_or(ts);
                            let upgrade = req.headers.has("upgrade");
                            let connect = req.method.eq_ignore_ascii_case("CONNECT");
                            let p = Pending {
                                head: req.method.eq_ignore_ascii_case("HEAD"),
                                connect,
                                upgrade,
                                websocket: req.is_websocket_attempt(),
                            };
                            self.pending.push_back(p);
                            h.await_after_body = upgrade || connect;
                            h.state = body_state(&req.headers, false);
                            if h.state == State::Head && h.await_after_body {
                                h.state = State::AwaitResponse;
                            }
                            out.push(ProtoEvent::Request { ts: start, req: Box::new(req) });
                        }
                        HeadResult::NeedMore => return,
                        HeadResult::Bad(what) => {
                            out.push(ProtoEvent::Anomaly { dir: Dir::ToServer, ts, what });
                            h.start = None;
                            h.state = State::Resync;
                            return;
                        }
                    }
                }
                State::Body(_) | State::Chunked(_) => {
                    let used = skip_body(h, input);
                    input = &input[used..];
                    if h.state == State::Head && h.await_after_body {
                        h.state = State::AwaitResponse;
                    }
                    if used == 0 && !input.is_empty() && h.state == State::Resync {
                        out.push(ProtoEvent::Anomaly { dir: Dir::ToServer, ts, what: "http-bad-chunk" });
                    }
                }
                State::AwaitResponse => {
                    let room = MAX_AWAIT.saturating_sub(h.buf.len());
                    h.buf.extend_from_slice(&input[..input.len().min(room)]);
                    return;
                }
                State::UntilClose => return,
                State::Resync => {
                    if looks_like_request(input) {
                        h.state = State::Head;
                    } else {
                        return;
                    }
                }
            }
        }
    }

    // ---- server -> client -------------------------------------------------

    fn responses(&mut self, ts: Ts, mut input: &[u8], out: &mut Vec<ProtoEvent>) {
        while !input.is_empty() {
            let h = &mut self.halves[1];
            match h.state {
                State::Head => {
                    if h.start.is_none() {
                        h.start = Some(ts);
                    }
                    match read_head(&mut h.buf, input, parse_response) {
                        HeadResult::Done(resp, used) => {
                            input = &input[used..];
                            let start = h.start.take().unwrap_or(ts);
                            let status = resp.status;
                            if (100..200).contains(&status) && status != 101 {
                                // Interim: the request still awaits its final response.
                                out.push(ProtoEvent::Response { ts: start, resp: Box::new(resp) });
                                continue;
                            }
                            let req = self.pending.pop_front();
                            if status == 101 {
                                let ws =
                                    req.is_some_and(|p| p.websocket) || resp.headers.has_token("upgrade", "websocket");
                                // Upgraded first, so consumers know the connection
                                // is a WebSocket when they see its 101.
                                out.push(ProtoEvent::Upgraded { ts, websocket: ws });
                                out.push(ProtoEvent::Response { ts: start, resp: Box::new(resp) });
                                self.switch(ws, ts, input, out);
                                return;
                            }
                            let connect_ok = req.is_some_and(|p| p.connect) && (200..300).contains(&status);
                            h.state = if req.is_some_and(|p| p.head) || status == 204 || status == 304 {
                                State::Head
                            } else {
                                body_state(&resp.headers, true)
                            };
                            out.push(ProtoEvent::Response { ts: start, resp: Box::new(resp) });
                            if connect_ok {
                                self.mode = Mode::Tunnel;
                                out.push(ProtoEvent::Upgraded { ts, websocket: false });
                                return;
                            }
                            if req.is_some_and(|p| p.upgrade || p.connect) {
                                // Upgrade refused: the client stream is HTTP again.
                                self.resume_requests(ts, out);
                            }
                        }
                        HeadResult::NeedMore => return,
                        HeadResult::Bad(what) => {
                            out.push(ProtoEvent::Anomaly { dir: Dir::ToClient, ts, what });
                            h.start = None;
                            h.state = State::Resync;
                            return;
                        }
                    }
                }
                State::Body(_) | State::Chunked(_) => {
                    let used = skip_body(h, input);
                    input = &input[used..];
                }
                State::UntilClose | State::AwaitResponse => return,
                State::Resync => {
                    if input.starts_with(b"HTTP/1.") {
                        h.state = State::Head;
                    } else {
                        return;
                    }
                }
            }
        }
    }

    /// After a 101: frames (or an opaque tunnel) in both directions.
    fn switch(&mut self, websocket: bool, ts: Ts, rest: &[u8], out: &mut Vec<ProtoEvent>) {
        let held = std::mem::take(&mut self.halves[0].buf);
        let lost = self.halves[0].state != State::AwaitResponse;
        if !websocket {
            self.mode = Mode::Tunnel;
            return;
        }
        let mut parsers = [FrameParser::new(), FrameParser::new()];
        if lost {
            // The client half was not waiting at a message boundary (a gap
            // or a pipelined body): its framing is unknown.
            parsers[0].gap(u32::MAX);
        }
        self.mode = Mode::WebSocket(Box::new(WsState {
            parsers,
            act: WsActivity::new(ts),
            taken: false,
            verbose: self.verbose,
        }));
        if !held.is_empty() {
            self.data(Dir::ToServer, ts, &held, out);
        }
        if !rest.is_empty() {
            self.data(Dir::ToClient, ts, rest, out);
        }
    }

    fn resume_requests(&mut self, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let h = &mut self.halves[0];
        h.await_after_body = false;
        if h.state == State::AwaitResponse {
            h.state = State::Head;
            let held = std::mem::take(&mut h.buf);
            if !held.is_empty() {
                self.requests(ts, &held, out);
            }
        }
    }
}

/// Parses a head from `buf` + `input`, buffering a partial head.
/// `used` counts bytes consumed from `input` only.
/// A head parser: Ok(None) needs more bytes, Err names the anomaly.
type HeadParser<T> = fn(&[u8]) -> Result<Option<(T, usize)>, &'static str>;

fn read_head<T>(buf: &mut Vec<u8>, input: &[u8], parse: HeadParser<T>) -> HeadResult<T> {
    if buf.is_empty() {
        return match parse(input) {
            Ok(Some((m, n))) => HeadResult::Done(m, n),
            Ok(None) if input.len() > MAX_HEAD => HeadResult::Bad("http-head-too-large"),
            Ok(None) => {
                buf.extend_from_slice(input);
                HeadResult::NeedMore
            }
            Err(e) => HeadResult::Bad(e),
        };
    }
    let old = buf.len();
    let take = input.len().min(MAX_HEAD + 1 - old.min(MAX_HEAD));
    buf.extend_from_slice(&input[..take]);
    match parse(buf) {
        Ok(Some((m, n))) => {
            buf.clear();
            HeadResult::Done(m, n.saturating_sub(old))
        }
        Ok(None) if buf.len() > MAX_HEAD => {
            buf.clear();
            HeadResult::Bad("http-head-too-large")
        }
        Ok(None) => HeadResult::NeedMore,
        Err(e) => {
            buf.clear();
            HeadResult::Bad(e)
        }
    }
}

fn headers_of(hs: &[httparse::Header<'_>]) -> Headers {
    let bytes = hs.iter().map(|h| h.name.len() + h.value.len()).sum();
    let mut out = Headers::with_capacity(bytes, hs.len());
    for h in hs {
        // Header values are ASCII nearly always; from_utf8 checks that
        // faster than the lossy decoder.
        match std::str::from_utf8(h.value) {
            Ok(v) => out.push(h.name, v.trim()),
            Err(_) => out.push(h.name, String::from_utf8_lossy(h.value).trim()),
        }
    }
    out
}

fn parse_request(data: &[u8]) -> Result<Option<(Request, usize)>, &'static str> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut hs);
    match r.parse(data) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((
            Request {
                method: r.method.unwrap_or("").to_string(),
                target: r.path.unwrap_or("").to_string(),
                version: Version::from_minor(r.version.unwrap_or(1)),
                headers: headers_of(r.headers),
                head_len: n,
            },
            n,
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err("http-too-many-headers"),
        Err(_) => Err("http-malformed-request"),
    }
}

fn parse_response(data: &[u8]) -> Result<Option<(Response, usize)>, &'static str> {
    let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(data) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((
            Response {
                version: Version::from_minor(r.version.unwrap_or(1)),
                status: r.code.unwrap_or(0),
                reason: r.reason.unwrap_or("").to_string(),
                headers: headers_of(r.headers),
                head_len: n,
            },
            n,
        ))),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err("http-too-many-headers"),
        Err(_) => Err("http-malformed-response"),
    }
}

/// Message body framing (RFC 9112 6.3).
fn body_state(h: &Headers, response: bool) -> State {
    if h.is_chunked() {
        State::Chunked(ChunkState::Size { size: 0, digits: 0, ext: false })
    } else if let Some(n) = h.content_length() {
        if n > 0 { State::Body(n) } else { State::Head }
    } else if response {
        State::UntilClose
    } else {
        State::Head
    }
}

/// Skips body bytes; returns how many were consumed. Sets the state back to
/// `Head` at the end of the body, or to `Resync` on a malformed chunk.
fn skip_body(h: &mut Half, input: &[u8]) -> usize {
    match h.state {
        State::Body(n) => {
            let k = (n.min(input.len() as u64)) as usize;
            h.state = if n - k as u64 == 0 { State::Head } else { State::Body(n - k as u64) };
            k
        }
        State::Chunked(mut cs) => {
            let mut i = 0;
            while i < input.len() {
                if let ChunkState::Data(n) = cs {
                    let k = (n.min((input.len() - i) as u64)) as usize;
                    i += k;
                    cs = if n - k as u64 == 0 { ChunkState::DataEnd } else { ChunkState::Data(n - k as u64) };
                    continue;
                }
                let b = input[i];
                i += 1;
                cs = match (cs, b) {
                    (ChunkState::Size { size, digits, ext: false }, b) if b.is_ascii_hexdigit() => {
                        if digits >= 15 {
                            h.state = State::Resync;
                            return i;
                        }
                        let v = (b as char).to_digit(16).unwrap_or(0) as u64;
                        ChunkState::Size { size: size * 16 + v, digits: digits + 1, ext: false }
                    }
                    (ChunkState::Size { size, digits, .. }, b'\n') => {
                        if digits == 0 {
                            h.state = State::Resync;
                            return i;
                        }
                        if size == 0 { ChunkState::Trailer { len: 0 } } else { ChunkState::Data(size) }
                    }
                    (s @ ChunkState::Size { .. }, b'\r') => s,
                    (ChunkState::Size { size, digits, .. }, b';' | b' ' | b'\t') => {
                        ChunkState::Size { size, digits, ext: true }
                    }
                    (s @ ChunkState::Size { ext: true, .. }, _) => s,
                    (ChunkState::Size { .. }, _) => {
                        h.state = State::Resync;
                        return i;
                    }
                    (ChunkState::DataEnd, b'\r') => ChunkState::DataEnd,
                    (ChunkState::DataEnd, b'\n') => ChunkState::Size { size: 0, digits: 0, ext: false },
                    (ChunkState::DataEnd, _) => {
                        h.state = State::Resync;
                        return i;
                    }
                    (ChunkState::Trailer { len }, b'\n') => {
                        if len == 0 {
                            h.state = State::Head;
                            return i;
                        }
                        ChunkState::Trailer { len: 0 }
                    }
                    (t @ ChunkState::Trailer { .. }, b'\r') => t,
                    (ChunkState::Trailer { len }, _) => {
                        if len > MAX_HEAD {
                            h.state = State::Resync;
                            return i;
                        }
                        ChunkState::Trailer { len: len + 1 }
                    }
                    (ChunkState::Data(_), _) => unreachable!("handled above"),
                };
            }
            h.state = State::Chunked(cs);
            i
        }
        _ => 0,
    }
}

/// A plausible start of a request: an upper-case method token and a space
/// (or the beginning of one).
pub fn looks_like_request(d: &[u8]) -> bool {
    let mut n = 0;
    for &b in d.iter().take(20) {
        if b == b' ' {
            return n > 0;
        }
        if !(b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return false;
        }
        n += 1;
    }
    n > 0 && n == d.len().min(20) && n < 20
}

/// A plausible start of a response (or a prefix of "HTTP/1.").
pub fn looks_like_response(d: &[u8]) -> bool {
    let p = b"HTTP/1.";
    let n = d.len().min(p.len());
    n > 0 && d[..n] == p[..n]
}

#[cfg(test)]
mod tests {
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
            (Dir::ToClient, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n\x00\x00\x12\x04"),
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
    fn plausibility_checks() {
        assert!(looks_like_request(b"GET / HTTP/1.1"));
        assert!(looks_like_request(b"GE"));
        assert!(!looks_like_request(b"\x16\x03\x01"));
        assert!(!looks_like_request(b"SSH-2.0-OpenSSH"));
        assert!(looks_like_response(b"HTTP/1.1 200"));
        assert!(looks_like_response(b"HT"));
        assert!(!looks_like_response(b"SSH-2.0"));
    }
}
