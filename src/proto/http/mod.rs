//! HTTP/1.x over a reassembled TCP connection: both directions, keep-alive
//! and pipelining (a FIFO of requests awaiting responses), bodies skipped by
//! Content-Length or chunked coding, 1xx interim responses, and the hand-off
//! to WebSocket framing after a 101 (bytes that follow the 101 in the same
//! segment are frames, as Zeek's `HTTP_Upgrade` passes them on).
//!
//! Only message heads are buffered, up to [`MAX_HEAD`] bytes; bodies are
//! counted past, never stored.
//!
//! One file per idea: [`head`] reads message heads, [`framing`] follows
//! bodies and resynchronises, [`upgrade`] is the WebSocket state handed
//! over after a 101; this file is the exchange: requests queued for their
//! responses, 1xx, upgrades and CONNECT.

mod framing;
mod head;
#[cfg(test)]
mod tests;
mod upgrade;

use std::collections::VecDeque;

use self::framing::{ChunkState, State, body_state, skip_body};
pub use self::head::MAX_HEAD;
use self::head::{HeadResult, parse_request, parse_response, read_head};
pub use self::upgrade::{RELAY_SAMPLE_EVERY, WsState};
use super::activity::WsActivity;
use super::sniff::looks_like_request;
use super::ws::FrameParser;
use super::{Dir, ProtoEvent};
use crate::time::Ts;

/// Bytes a client may send after an upgrade request before the server
/// decides; they are replayed as frames or as HTTP once it has.
pub const MAX_AWAIT: usize = 64 * 1024;
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
                    let used = skip_body(&mut h.state, input);
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
                    let used = skip_body(&mut h.state, input);
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
