//! One HTTP/2 connection: the client preface, each direction's frames,
//! SETTINGS, HPACK per direction, the streams the client opens (each
//! followed on its own, bounded by [`MAX_STREAMS`]), RST_STREAM, GOAWAY,
//! and flow-control windows counted (never enforced: an observer only
//! notes a peer that sends beyond what it was granted).

use super::frame::{self, Header, Piece, flag, setting, ty};
use super::hpack::{self, BlockError};
use super::stream::Stream;
use super::{ConnFact, H2Stats, MAX_STREAMS, Settings, StreamEvent};
use crate::proto::activity::WsActivity;
use crate::proto::http::WsState;
use crate::proto::{Dir, Headers, ProtoEvent, Request, Response, Version};
use crate::time::Ts;

/// A header block being assembled (HEADERS or PUSH_PROMISE, then
/// CONTINUATION frames).
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    /// A PUSH_PROMISE's block: decoded for the table, then dropped.
    push: bool,
    buf: Vec<u8>,
    /// Over [`hpack::MAX_BLOCK`]: not decodable.
    lost: bool,
}

const DEFAULT_WINDOW: i64 = 65_535;

#[derive(Debug)]
pub struct H2Conn {
    verbose: bool,
    /// Client preface bytes still expected (24 at first; 0 for a
    /// connection picked up without it).
    preface_left: usize,
    readers: [frame::Reader; 2],
    /// Decoder of the header blocks sent in each direction.
    hpack: [hpack::Decoder; 2],
    block: [Option<Block>; 2],
    settings: [Option<Settings>; 2],
    /// The window each side grants new streams (its INITIAL_WINDOW_SIZE).
    initial_window: [i64; 2],
    /// The connection-level window granted to the side sending in each
    /// direction.
    conn_window: [i64; 2],
    /// The receiver's SETTINGS_MAX_HEADER_LIST_SIZE, for blocks sent in
    /// each direction.
    list_limit: [Option<u32>; 2],
    streams: Vec<Stream>,
    /// Highest stream id the client opened (a lower one is an old stream).
    max_client_stream: u32,
    /// The stream of the DATA frame being read in each direction.
    data: [Option<u32>; 2],
    conn_fin: [Option<Ts>; 2],
    conn_rst: [Option<Ts>; 2],
    stats: H2Stats,
    scratch: Vec<ProtoEvent>,
    /// What the open streams are charged to the memory budget (the sum of
    /// their `cost`), kept as they open, grow and end: no scan.
    streams_cost: u64,
}

/// A stream's fixed cost: its entry here and what the analyzer keeps for
/// it as for a connection of its own.
const PER_STREAM: u32 = std::mem::size_of::<Stream>() as u32 + crate::budget::PER_CONN as u32 + 256;

impl H2Conn {
    /// A connection whose client sends the preface first (ALPN h2, h2c
    /// with prior knowledge).
    pub fn new(verbose: bool) -> H2Conn {
        H2Conn {
            verbose,
            preface_left: frame::PREFACE.len(),
            readers: Default::default(),
            hpack: Default::default(),
            block: [None, None],
            settings: [None, None],
            initial_window: [DEFAULT_WINDOW; 2],
            conn_window: [DEFAULT_WINDOW; 2],
            list_limit: [None; 2],
            streams: Vec::new(),
            max_client_stream: 0,
            data: [None; 2],
            conn_fin: [None; 2],
            conn_rst: [None; 2],
            stats: H2Stats { connections: 1, ..Default::default() },
            scratch: Vec::new(),
            streams_cost: 0,
        }
    }

    /// Fixed state for the memory budget: the connection, its HPACK tables
    /// (as large as they are allowed to grow), its streams (their state,
    /// request heads, WebSocket parsers) and the analyzer's view of it.
    /// O(1): kept up to date as streams come and go.
    #[inline]
    pub fn state_cost(&self) -> u64 {
        crate::budget::PER_H2
            + (self.hpack[0].table_cost() + self.hpack[1].table_cost()) as u64
            + self.streams.capacity() as u64 * std::mem::size_of::<Stream>() as u64
            + self.streams_cost
    }

    /// Buffers: header blocks being assembled, frames cut across segments.
    #[inline]
    pub fn buffered(&self) -> usize {
        let b = |x: &Option<Block>| x.as_ref().map_or(0, |b| b.buf.capacity());
        b(&self.block[0]) + b(&self.block[1]) + self.readers[0].held() + self.readers[1].held()
    }

    /// Memory pressure: header blocks being assembled are given up (not
    /// decoded: counted in `header_blocks_lost`, and the direction's HPACK
    /// table is lost with them). Returns the bytes freed.
    pub fn shed(&mut self, _ts: Ts, _out: &mut Vec<ProtoEvent>) -> usize {
        let mut freed = 0;
        for b in self.block.iter_mut().flatten() {
            if b.buf.capacity() > 0 {
                freed += b.buf.capacity();
                b.buf = Vec::new();
                b.lost = true;
            }
        }
        freed
    }

    fn charge_stream(&mut self, i: usize, n: u32) {
        let s = &mut self.streams[i];
        s.cost = s.cost.saturating_add(n);
        self.streams_cost += n as u64;
    }

    pub fn stats(&self) -> H2Stats {
        self.stats
    }

    /// Both directions' framing is lost: nothing more can be read.
    pub fn is_dead(&self) -> bool {
        self.readers[0].dead && self.readers[1].dead
    }

    /// The WebSocket activity of an open stream (the dashboard).
    pub fn stream_activity(&self, id: u32) -> Option<&WsActivity> {
        self.streams.iter().find(|s| s.id == id)?.ws.as_ref()?.activity()
    }

    /// Every open stream's WebSocket activity (flow-sharded live capture:
    /// the correlator's copy at each tick).
    pub fn stream_activities(&self) -> impl Iterator<Item = (u32, &WsActivity)> {
        self.streams.iter().filter_map(|s| Some((s.id, s.ws.as_ref()?.activity()?)))
    }

    /// Streams followed now.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    pub fn data(&mut self, dir: Dir, ts: Ts, mut d: &[u8], out: &mut Vec<ProtoEvent>) {
        if dir == Dir::ToServer && self.preface_left > 0 {
            let at = frame::PREFACE.len() - self.preface_left;
            let n = self.preface_left.min(d.len());
            if d[..n] != frame::PREFACE[at..at + n] {
                out.push(ProtoEvent::Anomaly { dir, ts, what: "h2-bad-preface" });
                self.lose(dir, out, ts);
                return;
            }
            self.preface_left -= n;
            d = &d[n..];
        }
        let mut reader = std::mem::take(&mut self.readers[dir.index()]);
        reader.feed(d, &mut |p| self.piece(dir, ts, p, out));
        self.readers[dir.index()] = reader;
    }

    pub fn gap(&mut self, dir: Dir, ts: Ts, len: u32, out: &mut Vec<ProtoEvent>) {
        let mut reader = std::mem::take(&mut self.readers[dir.index()]);
        let was = reader.dead;
        reader.gap(len, &mut |p| self.piece(dir, ts, p, out));
        let now_dead = reader.dead;
        self.readers[dir.index()] = reader;
        if !was && now_dead {
            self.lose(dir, out, ts);
        }
    }

    /// This direction can be read no further (a gap at a frame boundary,
    /// a bad preface): its streams' WebSocket parsers stop too.
    fn lose(&mut self, dir: Dir, out: &mut Vec<ProtoEvent>, ts: Ts) {
        self.readers[dir.index()].dead = true;
        self.stats.desyncs += 1;
        out.push(ProtoEvent::Anomaly { dir, ts, what: "h2-desync" });
        for s in &mut self.streams {
            if let Some(w) = &mut s.ws {
                w.gap(dir, u32::MAX, ts, &mut Vec::new());
            }
        }
    }

    /// The TCP side sending in `dir` closed (FIN, RST): open WebSocket
    /// streams saw their transport end.
    pub fn closing(&mut self, dir: Dir, ts: Ts, how: &'static str) {
        let d = dir.index();
        if how == "rst" {
            self.conn_rst[d].get_or_insert(ts);
        } else {
            self.conn_fin[d].get_or_insert(ts);
        }
        for s in &mut self.streams {
            if let Some(a) = s.ws.as_mut().and_then(|w| w.activity_mut()) {
                a.closing(ts, dir, how);
            }
        }
    }

    /// The connection ended: every stream still followed ends with it.
    pub fn finish(&mut self, out: &mut Vec<ProtoEvent>) {
        let mut streams = std::mem::take(&mut self.streams);
        self.streams_cost = 0;
        streams.sort_by_key(|s| s.id);
        for mut s in streams {
            let ts = s.last;
            let sum = s.summary(self.conn_fin, self.conn_rst);
            out.push(ProtoEvent::H2Stream { stream: s.id, ts, ev: StreamEvent::Closed(Box::new(sum)) });
        }
    }

    fn emit(out: &mut Vec<ProtoEvent>, stream: u32, ts: Ts, ev: StreamEvent) {
        out.push(ProtoEvent::H2Stream { stream, ts, ev });
    }

    fn piece(&mut self, dir: Dir, ts: Ts, p: Piece<'_>, out: &mut Vec<ProtoEvent>) {
        let d = dir.index();
        match p {
            Piece::Frame(h, payload) => {
                self.stats.frames += 1;
                self.frame(dir, ts, h, payload, out);
            }
            Piece::Oversized(h) => {
                self.stats.frames += 1;
                self.stats.oversized_frames += 1;
                if matches!(h.ty, ty::HEADERS | ty::CONTINUATION | ty::PUSH_PROMISE) {
                    // The block cannot be decoded: the table is lost.
                    self.stats.header_blocks_lost += 1;
                    self.block[d] = None;
                    self.hpack[d].lose();
                }
            }
            Piece::DataStart(h) => {
                self.stats.frames += 1;
                self.conn_window[d] -= h.len as i64;
                if self.conn_window[d] < 0 {
                    self.stats.flow_control_overruns += 1;
                    self.conn_window[d] = 0;
                }
                self.data[d] = Some(h.stream);
                if let Some(s) = self.stream_mut(h.stream) {
                    s.frames[d] += 1;
                    s.last = ts;
                    s.spend(dir, h.len);
                }
            }
            Piece::Data(b) => {
                self.stats.data_bytes += b.len() as u64;
                let Some(id) = self.data[d] else { return };
                let mut scratch = std::mem::take(&mut self.scratch);
                if let Some(s) = self.stream_mut(id) {
                    s.bytes[d] += b.len() as u64;
                    s.last_data[d] = Some(ts);
                    if let Some(w) = &mut s.ws {
                        w.feed(dir, ts, b, &mut scratch);
                    }
                }
                for pe in scratch.drain(..) {
                    wrap(pe, id, out);
                }
                self.scratch = scratch;
            }
            Piece::DataGap(n) => {
                let Some(id) = self.data[d] else { return };
                let mut scratch = std::mem::take(&mut self.scratch);
                if let Some(s) = self.stream_mut(id) {
                    s.gaps += n as u64;
                    if let Some(w) = &mut s.ws {
                        w.gap(dir, n, ts, &mut scratch);
                    }
                }
                out.append(&mut scratch);
                self.scratch = scratch;
            }
            Piece::DataEnd(h) => {
                self.data[d] = None;
                if h.has(flag::END_STREAM) {
                    self.end_stream(h.stream, dir, ts, out);
                }
            }
        }
    }

    fn stream_mut(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    fn frame(&mut self, dir: Dir, ts: Ts, h: Header, p: &[u8], out: &mut Vec<ProtoEvent>) {
        let d = dir.index();
        match h.ty {
            ty::SETTINGS if h.stream == 0 && !h.has(flag::ACK) => self.settings(dir, ts, p, out),
            ty::HEADERS | ty::PUSH_PROMISE => {
                let mut frag = p;
                if h.has(flag::PADDED) {
                    let Some((&pad, rest)) = frag.split_first() else { return self.bad_block(dir) };
                    if pad as usize > rest.len() {
                        return self.bad_block(dir);
                    }
                    frag = &rest[..rest.len() - pad as usize];
                }
                if h.ty == ty::HEADERS && h.has(flag::PRIORITY) {
                    let Some(rest) = frag.get(5..) else { return self.bad_block(dir) };
                    frag = rest;
                }
                let push = h.ty == ty::PUSH_PROMISE;
                if push {
                    self.stats.pushes += 1;
                    let Some(rest) = frag.get(4..) else { return self.bad_block(dir) };
                    frag = rest;
                }
                let b = Block {
                    stream: h.stream,
                    end_stream: !push && h.has(flag::END_STREAM),
                    push,
                    buf: frag.to_vec(),
                    lost: false,
                };
                self.block[d] = Some(b);
                if h.has(flag::END_HEADERS) {
                    self.block_done(dir, ts, out);
                }
            }
            ty::CONTINUATION => {
                let Some(b) = &mut self.block[d] else { return };
                if b.stream != h.stream {
                    return self.bad_block(dir);
                }
                if b.buf.len() + p.len() > hpack::MAX_BLOCK {
                    b.lost = true;
                    b.buf = Vec::new();
                } else if !b.lost {
                    b.buf.extend_from_slice(p);
                }
                if h.has(flag::END_HEADERS) {
                    self.block_done(dir, ts, out);
                }
            }
            ty::RST_STREAM => {
                let code = frame::u32_at(p, 0).unwrap_or(0);
                let slot = (code as usize).min(frame::ERROR_NAMES.len());
                self.stats.resets[slot] += 1;
                if let Some(i) = self.streams.iter().position(|s| s.id == h.stream) {
                    let s = &mut self.streams[i];
                    s.last = ts;
                    if s.reset.is_none() {
                        s.reset = Some((ts, dir, code));
                        if let Some(a) = s.ws.as_mut().and_then(|w| w.activity_mut()) {
                            a.closing(ts, dir, "rst");
                        }
                        Self::emit(out, h.stream, ts, StreamEvent::Reset { dir, code });
                    }
                    self.close_if_done(i, ts, out);
                }
            }
            ty::GOAWAY => {
                self.stats.goaways += 1;
                let last_stream = frame::u32_at(p, 0).unwrap_or(0) & 0x7fff_ffff;
                let code = frame::u32_at(p, 4).unwrap_or(0);
                out.push(ProtoEvent::H2 { ts, fact: ConnFact::GoAway { dir, last_stream, code } });
            }
            ty::WINDOW_UPDATE => {
                self.stats.window_updates += 1;
                let inc = frame::u32_at(p, 0).unwrap_or(0) & 0x7fff_ffff;
                // Sent in `dir`: it grants the other side more window.
                let other = dir.flip();
                if h.stream == 0 {
                    self.conn_window[other.index()] += inc as i64;
                } else if let Some(s) = self.stream_mut(h.stream) {
                    s.window[other.index()] += inc as i64;
                }
            }
            _ => {} // PING, PRIORITY, SETTINGS ACK, unknown types
        }
    }

    fn bad_block(&mut self, dir: Dir) {
        self.stats.header_blocks_lost += 1;
        self.block[dir.index()] = None;
        self.hpack[dir.index()].lose();
    }

    fn settings(&mut self, dir: Dir, ts: Ts, p: &[u8], out: &mut Vec<ProtoEvent>) {
        let d = dir.index();
        let first = self.settings[d].is_none();
        let s = self.settings[d].get_or_insert_with(Settings::default);
        for (id, v) in frame::settings(p) {
            match id {
                setting::HEADER_TABLE_SIZE => s.header_table_size = Some(v),
                setting::MAX_CONCURRENT_STREAMS => s.max_concurrent_streams = Some(v),
                setting::INITIAL_WINDOW_SIZE => s.initial_window_size = Some(v),
                setting::MAX_FRAME_SIZE => s.max_frame_size = Some(v),
                setting::MAX_HEADER_LIST_SIZE => s.max_header_list_size = Some(v),
                setting::ENABLE_CONNECT_PROTOCOL => s.enable_connect_protocol = Some(v),
                _ => {}
            }
        }
        let s = *s;
        // The sender receives the blocks sent the other way: its table
        // size bounds that direction's encoder, its list size that
        // direction's header lists, its window what the other side sends.
        let other = dir.flip().index();
        if let Some(t) = s.header_table_size {
            self.hpack[other].allow(t);
        }
        self.list_limit[other] = s.max_header_list_size;
        if let Some(w) = s.initial_window_size {
            self.initial_window[other] = w as i64;
        }
        if dir == Dir::ToClient && s.enable_connect_protocol == Some(1) {
            self.stats.connect_protocol_offered = 1;
        }
        if first {
            out.push(ProtoEvent::H2 { ts, fact: ConnFact::Settings { dir, settings: s } });
        }
    }

    fn block_done(&mut self, dir: Dir, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let d = dir.index();
        let Some(b) = self.block[d].take() else { return };
        let head_len = b.buf.len();
        let fields = if b.lost {
            self.hpack[d].lose();
            Err(BlockError::TableLost)
        } else {
            self.hpack[d].decode(&b.buf)
        };
        match &fields {
            Err(BlockError::Compression) => self.stats.hpack_errors += 1,
            Err(BlockError::TableLost) => self.stats.header_blocks_lost += 1,
            Err(BlockError::TooLarge) => self.stats.header_lists_dropped += 1,
            Ok(f) => {
                let size: usize = f.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
                if self.list_limit[d].is_some_and(|l| size > l as usize) {
                    self.stats.header_lists_over_limit += 1;
                }
            }
        }
        if b.push {
            return;
        }
        match dir {
            Dir::ToServer => self.client_headers(b.stream, b.end_stream, ts, fields.ok(), head_len, out),
            Dir::ToClient => self.server_headers(b.stream, b.end_stream, ts, fields.ok(), head_len, out),
        }
    }

    fn client_headers(
        &mut self,
        id: u32,
        end_stream: bool,
        ts: Ts,
        fields: Option<Vec<(String, String)>>,
        head_len: usize,
        out: &mut Vec<ProtoEvent>,
    ) {
        let known = self.streams.iter().position(|s| s.id == id);
        let i = match known {
            Some(i) => i,
            None => {
                if id.is_multiple_of(2) || id <= self.max_client_stream {
                    return; // not a stream the client can open now
                }
                self.max_client_stream = id;
                self.stats.streams += 1;
                let limit = self.settings[Dir::ToClient.index()].and_then(|s| s.max_concurrent_streams);
                if limit.is_some_and(|l| self.streams.len() as u64 >= l as u64) {
                    self.stats.streams_over_limit += 1;
                }
                if self.streams.len() >= MAX_STREAMS {
                    self.stats.streams_dropped += 1;
                    return;
                }
                let windows = [self.initial_window[0], self.initial_window[1]];
                self.streams.push(Stream::new(id, ts, windows));
                Self::emit(out, id, ts, StreamEvent::Open);
                let i = self.streams.len() - 1;
                self.charge_stream(i, PER_STREAM);
                i
            }
        };
        if let (false, Some(f)) = (self.streams[i].req_done, &fields) {
            // The request head lives on in the analyzer while the stream does.
            let head: usize = f.iter().map(|(n, v)| n.len() + v.len() + 48).sum();
            self.charge_stream(i, head.min(u32::MAX as usize) as u32);
        }
        let s = &mut self.streams[i];
        s.last = ts;
        s.frames[0] += 1;
        if !s.req_done {
            s.req_done = true;
            if let Some(f) = fields
                && let Some(req) = request(f, head_len)
            {
                s.ws_connect = req.method.eq_ignore_ascii_case("CONNECT")
                    && req.headers.get(":protocol").is_some_and(|p| p.eq_ignore_ascii_case("websocket"));
                if s.ws_connect {
                    self.stats.websocket_streams += 1;
                }
                Self::emit(out, id, ts, StreamEvent::Request(Box::new(req)));
            }
        }
        if end_stream {
            self.end_stream(id, Dir::ToServer, ts, out);
        }
    }

    fn server_headers(
        &mut self,
        id: u32,
        end_stream: bool,
        ts: Ts,
        fields: Option<Vec<(String, String)>>,
        head_len: usize,
        out: &mut Vec<ProtoEvent>,
    ) {
        let verbose = self.verbose;
        let mut grew = 0u64;
        let Some(s) = self.stream_mut(id) else { return };
        s.last = ts;
        s.frames[1] += 1;
        if s.status.is_none()
            && let Some(f) = fields
            && let Some(resp) = response(f, head_len)
        {
            let status = resp.status;
            if status >= 200 {
                s.status = Some(status);
            }
            let upgraded = s.ws_connect && (200..300).contains(&status);
            // Upgraded first, as for HTTP/1.1: consumers know the stream
            // carries frames when its exchange is decided.
            if upgraded {
                s.ws = Some(Box::new(WsState::new(ts, verbose)));
                s.cost = s.cost.saturating_add(crate::budget::PER_WEBSOCKET as u32);
                grew = crate::budget::PER_WEBSOCKET;
                self.stats.websocket_accepted += 1;
                Self::emit(out, id, ts, StreamEvent::Upgraded);
            }
            Self::emit(out, id, ts, StreamEvent::Response(Box::new(resp)));
        }
        self.streams_cost += grew;
        if end_stream {
            self.end_stream(id, Dir::ToClient, ts, out);
        }
    }

    fn end_stream(&mut self, id: u32, dir: Dir, ts: Ts, out: &mut Vec<ProtoEvent>) {
        let Some(i) = self.streams.iter().position(|s| s.id == id) else { return };
        let s = &mut self.streams[i];
        s.last = ts;
        if s.end_stream[dir.index()].is_some() {
            return;
        }
        s.end_stream[dir.index()] = Some(ts);
        if let Some(a) = s.ws.as_mut().and_then(|w| w.activity_mut()) {
            a.closing(ts, dir, "fin");
        }
        // The server ending the stream ends the exchange; the client's
        // END_STREAM is the end of its request, a close only in a tunnel.
        if dir == Dir::ToClient || s.status.is_some() {
            Self::emit(out, id, ts, StreamEvent::End { dir });
        }
        self.close_if_done(i, ts, out);
    }

    fn close_if_done(&mut self, i: usize, ts: Ts, out: &mut Vec<ProtoEvent>) {
        if !self.streams[i].is_closed() {
            return;
        }
        let mut s = self.streams.swap_remove(i);
        self.streams_cost -= s.cost as u64;
        self.stats.flow_control_overruns += s.overruns;
        let sum = s.summary(self.conn_fin, self.conn_rst);
        Self::emit(out, s.id, ts, StreamEvent::Closed(Box::new(sum)));
    }
}

/// WebSocket parser output of a stream, as stream events.
fn wrap(pe: ProtoEvent, id: u32, out: &mut Vec<ProtoEvent>) {
    let (ts, ev) = match pe {
        ProtoEvent::RelaySample { dir, ts, ordinal } => (ts, StreamEvent::RelaySample { dir, ordinal }),
        ProtoEvent::Frame { dir, ts, frame } => (ts, StreamEvent::Frame { dir, frame }),
        other => {
            out.push(other);
            return;
        }
    };
    out.push(ProtoEvent::H2Stream { stream: id, ts, ev });
}

/// A request head from a decoded header list: `:method` and `:path`
/// become the method and target (`:authority` for a classic CONNECT);
/// `:authority`, `:scheme` and `:protocol` stay among the headers, before
/// the regular fields, as on the wire.
fn request(fields: Vec<(String, String)>, head_len: usize) -> Option<Request> {
    let mut method = None;
    let mut path = None;
    let mut authority = None;
    let mut headers = Headers::with_capacity(fields.iter().map(|(n, v)| n.len() + v.len()).sum(), fields.len());
    for (n, v) in &fields {
        match n.as_str() {
            ":method" => method = Some(v.clone()),
            ":path" => path = Some(v.clone()),
            ":authority" => {
                authority = Some(v.clone());
                headers.push(n, v);
            }
            _ => headers.push(n, v),
        }
    }
    let method = method?;
    let target = path.or(authority)?;
    Some(Request { method, target, version: Version::Http2, headers, head_len })
}

fn response(fields: Vec<(String, String)>, head_len: usize) -> Option<Response> {
    let mut status = None;
    let mut headers = Headers::with_capacity(fields.iter().map(|(n, v)| n.len() + v.len()).sum(), fields.len());
    for (n, v) in &fields {
        if n == ":status" {
            status = v.trim().parse::<u16>().ok();
        } else {
            headers.push(n, v);
        }
    }
    Some(Response { version: Version::Http2, status: status?, reason: String::new(), headers, head_len })
}
