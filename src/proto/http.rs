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

/// Largest request or response head accepted. nginx's default
/// (`large_client_header_buffers 4 8k`) takes heads up to 32 KiB with any
/// number of header lines, Apache 100 lines of 8 KiB; 64 KiB covers both.
/// The number of header lines is bounded by this size only.
pub const MAX_HEAD: usize = 64 * 1024;
/// Bytes a client may send after an upgrade request before the server
/// decides; they are replayed as frames or as HTTP once it has.
pub const MAX_AWAIT: usize = 64 * 1024;
/// Header lines parsed without allocating (the common case); a head with
/// more is parsed again with room for every line it has.
const FAST_HEADERS: usize = 128;
/// Requests awaiting a response that are reported per connection. Beyond
/// this, pipelined requests are still framed (their responses too) but not
/// reported, and counted (`http-pipeline-limit`): no client pipelines this
/// deep, and each reported request holds its head until it is answered
/// (Suricata's HTTP parser bounds live transactions per flow the same way).
pub const MAX_PENDING: usize = 128;

/// Memory an answered-later request holds downstream of the parser (its
/// head, the exchange waiting for its response, the pairing index), as the
/// memory budget counts it.
pub fn request_cost(head_len: usize, headers: usize) -> u32 {
    (1024 + 2 * head_len + 24 * headers).min(u32::MAX as usize) as u32
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    head: bool,
    connect: bool,
    upgrade: bool,
    websocket: bool,
    /// Reported (a `Request` event was raised, a `Response` will be).
    tracked: bool,
    /// Untracked requests with the same framing, one entry for a run.
    count: u32,
    /// What the reported request holds downstream ([`request_cost`]).
    cost: u32,
}

/// After a 101 to a WebSocket upgrade: one frame parser per direction and
/// the connection's activity, in one allocation.
#[derive(Debug)]
pub struct WsState {
    parsers: [FrameParser; 2],
    act: WsActivity,
    /// Requests pipelined before the upgrade and never answered: their
    /// heads stay downstream until the connection ends (memory budget).
    pub stranded: u64,
    /// Taken at the end (moved into the connection summary).
    taken: bool,
    /// Report every frame (`-v`).
    verbose: bool,
}

impl WsState {
    /// Frames from `ts` on (an HTTP/2 stream's DATA after a 2xx to its
    /// extended CONNECT).
    pub fn new(ts: Ts, verbose: bool) -> WsState {
        WsState { parsers: Default::default(), act: WsActivity::new(ts), stranded: 0, taken: false, verbose }
    }

    pub fn feed(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        let WsState { parsers, act, verbose, .. } = self;
        let verbose = *verbose;
        let p = &mut parsers[dir as usize];
        let was = p.desynced();
        p.feed(data, &mut |frame| {
            act.frame(ts, dir, frame);
            let ordinal = act.frames[dir as usize];
            if ordinal % RELAY_SAMPLE_EVERY == 0 {
                out.push(ProtoEvent::RelaySample { dir, ts, ordinal });
            }
            if verbose {
                out.push(ProtoEvent::Frame { dir, ts, frame: frame.clone() });
            }
        });
        act.bytes[dir as usize] = p.payload_seen();
        if !was && p.desynced() {
            // An invalid header (a 64-bit length with its top bit set).
            out.push(ProtoEvent::Anomaly { dir, ts, what: "ws-desync" });
        }
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
    /// Tracked entries in `pending`, and what they hold downstream.
    tracked: u32,
    pending_cost: u64,
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
        HttpConn {
            halves: [Half::new(), Half::new()],
            pending: VecDeque::new(),
            tracked: 0,
            pending_cost: 0,
            mode: Mode::Http,
            verbose,
        }
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

    /// Memory this parser holds or makes others hold, for the budget:
    /// partial heads, bytes held during an upgrade, and the heads of the
    /// reported requests still awaiting a response.
    pub fn buffered(&self) -> usize {
        self.halves[0].buf.capacity()
            + self.halves[1].buf.capacity()
            + self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.pending_cost as usize
    }

    /// Memory pressure: gives up partial heads and bytes held during an
    /// upgrade (the stream resynchronises at the next message, as after a
    /// gap). Returns the bytes freed. Reported requests stay (their heads
    /// live downstream).
    pub fn shed(&mut self, ts: Ts, out: &mut Vec<ProtoEvent>) -> usize {
        let mut freed = 0;
        for (i, h) in self.halves.iter_mut().enumerate() {
            if h.buf.capacity() == 0 {
                continue;
            }
            freed += h.buf.capacity();
            h.buf = Vec::new();
            let dir = if i == 0 { Dir::ToServer } else { Dir::ToClient };
            if h.state == State::Head {
                h.start = None;
                h.state = State::Resync;
                out.push(ProtoEvent::Anomaly { dir, ts, what: "http-head-shed" });
            }
        }
        if self.pending.capacity() > self.pending.len() * 2 + 8 {
            self.pending.shrink_to_fit();
        }
        freed
    }

    /// Queues a request for response matching; false when it is beyond
    /// [`MAX_PENDING`] and must not be reported.
    fn push_pending(&mut self, mut p: Pending) -> bool {
        p.tracked = (self.tracked as usize) < MAX_PENDING;
        if p.tracked {
            self.tracked += 1;
            self.pending_cost += p.cost as u64;
            self.pending.push_back(p);
            return true;
        }
        p.cost = 0;
        match self.pending.back_mut() {
            Some(b) if !b.tracked && Pending { count: b.count, ..p } == *b && b.count < u32::MAX => b.count += 1,
            _ => self.pending.push_back(p),
        }
        false
    }

    /// The request the next final response answers.
    fn pop_pending(&mut self) -> Option<Pending> {
        let front = self.pending.front_mut()?;
        if !front.tracked && front.count > 1 {
            front.count -= 1;
            return Some(Pending { count: 1, ..*front });
        }
        let p = self.pending.pop_front()?;
        if p.tracked {
            self.tracked -= 1;
            self.pending_cost -= p.cost as u64;
        }
        if self.pending.is_empty() && self.pending.capacity() > 16 {
            // A burst of pipelining is over: give its memory back.
            self.pending = VecDeque::new();
        }
        Some(p)
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
                            h.await_after_body = upgrade || connect;
                            h.state = body_state(&req.headers, false);
                            if h.state == State::Head && h.await_after_body {
                                h.state = State::AwaitResponse;
                            }
                            let p = Pending {
                                head: req.method.eq_ignore_ascii_case("HEAD"),
                                connect,
                                upgrade,
                                websocket: req.is_websocket_attempt(),
                                tracked: false,
                                count: 1,
                                cost: request_cost(req.head_len, req.headers.len()),
                            };
                            if self.push_pending(p) {
                                out.push(ProtoEvent::Request { ts: start, req: Box::new(req) });
                            } else {
                                out.push(ProtoEvent::Anomaly { dir: Dir::ToServer, ts, what: "http-pipeline-limit" });
                            }
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
                                if self.pending.front().is_none_or(|p| p.tracked) {
                                    out.push(ProtoEvent::Response { ts: start, resp: Box::new(resp) });
                                }
                                continue;
                            }
                            let req = self.pop_pending();
                            // Responses to requests that were not reported
                            // are framed but not reported either.
                            let report = req.is_none_or(|p| p.tracked);
                            let h = &mut self.halves[1];
                            if status == 101 {
                                let ws =
                                    req.is_some_and(|p| p.websocket) || resp.headers.has_token("upgrade", "websocket");
                                // Upgraded first, so consumers know the connection
                                // is a WebSocket when they see its 101.
                                out.push(ProtoEvent::Upgraded { ts, websocket: ws });
                                if report {
                                    out.push(ProtoEvent::Response { ts: start, resp: Box::new(resp) });
                                }
                                self.switch(ws, ts, input, out);
                                return;
                            }
                            let connect_ok = req.is_some_and(|p| p.connect) && (200..300).contains(&status);
                            h.state = if req.is_some_and(|p| p.head) || status == 204 || status == 304 {
                                State::Head
                            } else {
                                body_state(&resp.headers, true)
                            };
                            if report {
                                out.push(ProtoEvent::Response { ts: start, resp: Box::new(resp) });
                            }
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
            stranded: self.pending_cost,
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
            release(buf);
            HeadResult::Done(m, n.saturating_sub(old))
        }
        Ok(None) if buf.len() > MAX_HEAD => {
            release(buf);
            HeadResult::Bad("http-head-too-large")
        }
        Ok(None) => HeadResult::NeedMore,
        Err(e) => {
            release(buf);
            HeadResult::Bad(e)
        }
    }
}

/// Empties a head buffer; a large one gives its memory back (a keep-alive
/// connection keeps its parser for its whole life).
fn release(buf: &mut Vec<u8>) {
    if buf.capacity() > 4096 {
        *buf = Vec::new();
    } else {
        buf.clear();
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
    let mut hs = [httparse::EMPTY_HEADER; FAST_HEADERS];
    match request_with(data, &mut hs) {
        Err(httparse::Error::TooManyHeaders) => {
            // More header lines than the fast path has room for (nginx
            // takes any number within its buffers): room for every line.
            let mut hs = vec![httparse::EMPTY_HEADER; line_count(data)];
            request_with(data, &mut hs).map_err(|e| bad(e, "http-malformed-request"))
        }
        r => r.map_err(|e| bad(e, "http-malformed-request")),
    }
}

fn request_with<'b>(
    data: &'b [u8],
    hs: &mut [httparse::Header<'b>],
) -> Result<Option<(Request, usize)>, httparse::Error> {
    let mut r = httparse::Request::new(hs);
    Ok(match r.parse(data)? {
        httparse::Status::Complete(n) => Some((
            Request {
                method: r.method.unwrap_or("").to_string(),
                target: r.path.unwrap_or("").to_string(),
                version: Version::from_minor(r.version.unwrap_or(1)),
                headers: headers_of(r.headers),
                head_len: n,
            },
            n,
        )),
        httparse::Status::Partial => None,
    })
}

fn parse_response(data: &[u8]) -> Result<Option<(Response, usize)>, &'static str> {
    let mut hs = [httparse::EMPTY_HEADER; FAST_HEADERS];
    match response_with(data, &mut hs) {
        Err(httparse::Error::TooManyHeaders) => {
            let mut hs = vec![httparse::EMPTY_HEADER; line_count(data)];
            response_with(data, &mut hs).map_err(|e| bad(e, "http-malformed-response"))
        }
        r => r.map_err(|e| bad(e, "http-malformed-response")),
    }
}

fn response_with<'b>(
    data: &'b [u8],
    hs: &mut [httparse::Header<'b>],
) -> Result<Option<(Response, usize)>, httparse::Error> {
    let mut r = httparse::Response::new(hs);
    Ok(match r.parse(data)? {
        httparse::Status::Complete(n) => Some((
            Response {
                version: Version::from_minor(r.version.unwrap_or(1)),
                status: r.code.unwrap_or(0),
                reason: r.reason.unwrap_or("").to_string(),
                headers: headers_of(r.headers),
                head_len: n,
            },
            n,
        )),
        httparse::Status::Partial => None,
    })
}

/// Upper bound of the header lines in a head (at most [`MAX_HEAD`] + one
/// segment of bytes are ever parsed at once).
fn line_count(data: &[u8]) -> usize {
    let head = &data[..data.len().min(MAX_HEAD + 1)];
    head.iter().filter(|&&b| b == b'\n').count() + 1
}

fn bad(e: httparse::Error, malformed: &'static str) -> &'static str {
    match e {
        httparse::Error::TooManyHeaders => "http-too-many-headers",
        _ => malformed,
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
    fn invalid_frame_length_raises_the_desync_anomaly() {
        let mut bad = vec![0x82, 127];
        bad.extend_from_slice(&(1u64 << 63 | 5).to_be_bytes());
        let ev = run(&[(Dir::ToServer, UPGRADE), (Dir::ToClient, OK101), (Dir::ToClient, &bad)]);
        assert_eq!(kinds(&ev), ["req GET /ws", "upgraded ws=true", "resp 101", "anomaly ws-desync"]);
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
    fn many_header_lines_are_taken_as_nginx_takes_them() {
        let mut req = b"GET /ws HTTP/1.1\r\nHost: x\r\n".to_vec();
        for i in 0..600 {
            req.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let ev = run(&[(Dir::ToServer, &req), (Dir::ToClient, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")]);
        assert_eq!(kinds(&ev), ["req GET /ws", "resp 200"]);
        match &ev[0] {
            ProtoEvent::Request { req, .. } => assert_eq!(req.headers.len(), 601),
            _ => unreachable!(),
        }
    }

    #[test]
    fn pipelining_beyond_the_limit_is_framed_counted_and_not_reported() {
        let n = MAX_PENDING + 50;
        let mut reqs = Vec::new();
        for i in 0..n {
            let m = if i == MAX_PENDING + 10 { "HEAD" } else { "GET" };
            reqs.extend_from_slice(format!("{m} /{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        }
        let mut c = HttpConn::new(false);
        let mut out = Vec::new();
        c.data(Dir::ToServer, Ts(0), &reqs, &mut out);
        let k = kinds(&out);
        assert_eq!(k.iter().filter(|x| x.starts_with("req")).count(), MAX_PENDING);
        assert_eq!(k.iter().filter(|x| *x == "anomaly http-pipeline-limit").count(), 50);
        assert!(c.pending.len() <= MAX_PENDING + 3, "untracked runs are one entry each: {}", c.pending.len());
        let held = c.buffered();
        assert!(held >= MAX_PENDING * 1024, "{held}");
        // Every response is framed in order (the HEAD one has no body),
        // only the reported requests' ones are reported.
        let mut resps = Vec::new();
        for i in 0..n {
            if i == MAX_PENDING + 10 {
                resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
            } else {
                resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        }
        resps.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n");
        out.clear();
        c.data(Dir::ToClient, Ts(1), &resps, &mut out);
        let k = kinds(&out);
        assert_eq!(k.iter().filter(|x| *x == "resp 200").count(), MAX_PENDING);
        assert_eq!(k.last().map(String::as_str), Some("resp 204"), "framing held to the end: {k:?}");
        assert!(c.pending.is_empty());
        assert!(c.buffered() < 1024);
    }

    #[test]
    fn shedding_drops_partial_heads() {
        let mut c = HttpConn::new(false);
        let mut out = Vec::new();
        c.data(Dir::ToServer, Ts(0), &[b'G'; 1], &mut out);
        c.data(Dir::ToServer, Ts(0), b"ET / HTTP/1.1\r\nX-Big: ", &mut out);
        c.data(Dir::ToServer, Ts(0), &[b'a'; 30_000], &mut out);
        assert!(c.buffered() >= 30_000);
        assert!(c.shed(Ts(1), &mut out) >= 30_000);
        assert!(c.buffered() < 1024);
        assert_eq!(kinds(&out), ["anomaly http-head-shed"]);
        c.data(Dir::ToServer, Ts(2), b"GET /next HTTP/1.1\r\n\r\n", &mut out);
        assert_eq!(kinds(&out), ["anomaly http-head-shed", "req GET /next"]);
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
