//! HTTP/2 (RFC 9113) for a passive observer, on decrypted TLS hops (ALPN
//! "h2") and on cleartext connections that start with the client preface
//! (prior-knowledge h2c). Frames (frame.rs), HPACK through a crate
//! (hpack.rs), per-stream state (stream.rs) and the connection
//! (conn.rs). RFC 8441 extended CONNECT streams (`:protocol websocket`)
//! answered 2xx carry WebSocket frames in their DATA, read by the same
//! frame parser as an HTTP/1.1 upgrade.
//!
//! The parser reports facts ([`StreamEvent`], [`ConnFact`]); each stream
//! is followed by the analyzer like a connection of its own (a WebSocket
//! session per stream). Memory per connection is bounded: streams followed
//! at once ([`MAX_STREAMS`]), HPACK tables and header lists
//! ([`hpack::MAX_TABLE`], [`hpack::MAX_LIST`]), buffered control frames
//! ([`frame::MAX_CONTROL_PAYLOAD`]); whatever goes beyond is counted.

pub mod conn;
pub mod frame;
pub mod hpack;
pub mod stream;

pub use conn::H2Conn;

use crate::proto::activity::WsActivity;
use crate::proto::{Dir, Frame, Request, Response};
use crate::time::Ts;

/// Streams followed at once per connection (our cap; the peers' own
/// SETTINGS_MAX_CONCURRENT_STREAMS is checked, not relied on). Streams
/// beyond are counted (`streams_dropped`) and not followed.
pub const MAX_STREAMS: usize = 256;

/// The client preface, or its beginning, starts `d`.
pub fn is_preface(d: &[u8]) -> bool {
    let n = d.len().min(frame::PREFACE.len());
    n >= 4 && d[..n] == frame::PREFACE[..n]
}

/// A fact about one stream, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The client opened the stream (its first HEADERS).
    Open,
    /// The request head (pseudo-headers `:authority`, `:scheme`,
    /// `:protocol` kept among the headers).
    Request(Box<Request>),
    /// A response head (1xx interim ones included).
    Response(Box<Response>),
    /// A 2xx answered an extended CONNECT for `websocket`: DATA now
    /// carries WebSocket frames.
    Upgraded,
    /// `-v`: one WebSocket frame.
    Frame { dir: Dir, frame: Frame },
    /// Every 8th WebSocket frame of a direction (frame relay delay).
    RelaySample { dir: Dir, ordinal: u64 },
    /// The side sending in `dir` ended its half of a tunnel (END_STREAM
    /// after the stream was upgraded), or the server ended the stream.
    End { dir: Dir },
    /// RST_STREAM sent in `dir`, with its error code.
    Reset { dir: Dir, code: u32 },
    /// The stream is over: last event for it.
    Closed(Box<StreamSummary>),
}

/// What a stream was, when it ends (indexed by [`Dir`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamSummary {
    pub stream: u32,
    pub first_ts: Ts,
    pub last_ts: Ts,
    pub frames: [u64; 2],
    /// DATA payload bytes.
    pub bytes: [u64; 2],
    pub last_data: [Option<Ts>; 2],
    /// END_STREAM per direction (or the connection's FIN, when the
    /// connection ended the stream).
    pub fin: [Option<Ts>; 2],
    /// RST_STREAM per direction (or the connection's RST).
    pub rst: [Option<Ts>; 2],
    pub reset_code: Option<u32>,
    pub reset_by: Option<Dir>,
    /// The connection's end ended the stream (its own frames did not).
    pub ended_by_connection: bool,
    pub gaps: u64,
    /// DATA beyond the flow-control window granted (counted, not enforced).
    pub overruns: u64,
    pub ws: Option<Box<WsActivity>>,
}

/// SETTINGS one side sent (only the parameters wstap uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    pub header_table_size: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_window_size: Option<u32>,
    pub max_frame_size: Option<u32>,
    pub max_header_list_size: Option<u32>,
    /// RFC 8441: 1 offers extended CONNECT (WebSockets over HTTP/2).
    pub enable_connect_protocol: Option<u32>,
}

/// A connection-level fact.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnFact {
    /// The first SETTINGS (not an ACK) from the side sending in `dir`.
    Settings { dir: Dir, settings: Settings },
    /// GOAWAY from the side sending in `dir`.
    GoAway { dir: Dir, last_stream: u32, code: u32 },
}

/// HTTP/2 counters of connections, added up by the flow table (summary `h2`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct H2Stats {
    pub connections: u64,
    /// Connections whose server offered RFC 8441 (ENABLE_CONNECT_PROTOCOL = 1).
    pub connect_protocol_offered: u64,
    pub streams: u64,
    /// Extended CONNECT streams for `websocket`, and those answered 2xx.
    pub websocket_streams: u64,
    pub websocket_accepted: u64,
    pub frames: u64,
    pub data_bytes: u64,
    /// RST_STREAM frames by error code (index: code; the last slot: codes
    /// RFC 9113 does not define).
    pub resets: [u64; frame::ERROR_NAMES.len() + 1],
    pub goaways: u64,
    pub window_updates: u64,
    /// DATA beyond the flow-control window the receiver granted.
    pub flow_control_overruns: u64,
    pub pushes: u64,
    /// Streams not followed: over our cap per connection.
    pub streams_dropped: u64,
    /// Streams opened beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS.
    pub streams_over_limit: u64,
    /// Header blocks not decoded: HPACK failure or table beyond our cap
    /// (that direction's later blocks too), block over our cap.
    pub hpack_errors: u64,
    pub header_blocks_lost: u64,
    /// Header lists over our cap (dropped), over the receiver's
    /// SETTINGS_MAX_HEADER_LIST_SIZE (kept, counted).
    pub header_lists_dropped: u64,
    pub header_lists_over_limit: u64,
    /// Non-DATA frames over our buffer cap (skipped).
    pub oversized_frames: u64,
    /// Directions whose framing was lost to a capture gap.
    pub desyncs: u64,
}

impl H2Stats {
    pub fn add(&mut self, o: &H2Stats) {
        self.connections += o.connections;
        self.connect_protocol_offered += o.connect_protocol_offered;
        self.streams += o.streams;
        self.websocket_streams += o.websocket_streams;
        self.websocket_accepted += o.websocket_accepted;
        self.frames += o.frames;
        self.data_bytes += o.data_bytes;
        for (a, b) in self.resets.iter_mut().zip(o.resets) {
            *a += b;
        }
        self.goaways += o.goaways;
        self.window_updates += o.window_updates;
        self.flow_control_overruns += o.flow_control_overruns;
        self.pushes += o.pushes;
        self.streams_dropped += o.streams_dropped;
        self.streams_over_limit += o.streams_over_limit;
        self.hpack_errors += o.hpack_errors;
        self.header_blocks_lost += o.header_blocks_lost;
        self.header_lists_dropped += o.header_lists_dropped;
        self.header_lists_over_limit += o.header_lists_over_limit;
        self.oversized_frames += o.oversized_frames;
        self.desyncs += o.desyncs;
    }
}

/// The id the analyzer follows a stream by: a connection id of its own,
/// derived from the TCP connection's and the stream's, never equal to a
/// TCP connection's (the packet number that created it: below 2^63).
/// The TCP connection's id enters by its low 32 bits only: what the id
/// gives back ([`split_stream_conn`]) finds the connection together with
/// its 4-tuple ([`crate::flow::FlowTable::get_low`]), and correlation
/// keeps each stream's exact parent from its `H2Stream` event.
pub fn stream_conn(conn: u64, stream: u32) -> u64 {
    (1 << 63) | ((conn & 0xffff_ffff) << 31) | (stream as u64 & 0x7fff_ffff)
}

/// The low 32 bits of the TCP connection's id, and the stream, of an id
/// made by [`stream_conn`]. (A sensor numbers its packets past 2^32 within
/// a day on a busy link: the whole id is not in there.)
pub fn split_stream_conn(id: u64) -> Option<(u32, u32)> {
    (id >> 63 == 1).then_some((((id >> 31) & 0xffff_ffff) as u32, (id & 0x7fff_ffff) as u32))
}

#[cfg(test)]
mod tests;
