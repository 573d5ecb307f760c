//! One HTTP/2 stream as the observer follows it: its request and response
//! heads, its end (END_STREAM per direction, RST_STREAM with its error
//! code), its DATA counted, and, for an RFC 8441 extended CONNECT answered
//! 2xx, the WebSocket frames its DATA carries, parsed by the same frame
//! parser as an HTTP/1.1 upgrade.

use super::StreamSummary;
use crate::proto::Dir;
use crate::proto::http::WsState;
use crate::time::Ts;

#[derive(Debug)]
pub struct Stream {
    pub id: u32,
    pub opened: Ts,
    pub last: Ts,
    /// The request is an extended CONNECT with `:protocol websocket`.
    pub ws_connect: bool,
    /// Its final status, when the response head came.
    pub status: Option<u16>,
    /// After a 2xx to the extended CONNECT: the WebSocket frames.
    pub ws: Option<Box<WsState>>,
    /// The request head is complete (a later HEADERS is a trailer).
    pub req_done: bool,
    pub frames: [u64; 2],
    pub bytes: [u64; 2],
    pub last_data: [Option<Ts>; 2],
    pub end_stream: [Option<Ts>; 2],
    /// RST_STREAM sent in this direction (by that side), and its code.
    pub reset: Option<(Ts, Dir, u32)>,
    /// DATA bytes lost to capture gaps.
    pub gaps: u64,
    /// Flow control, counted not enforced: the window each side granted
    /// the other for this stream (data sent in a direction spends the
    /// receiver's grant).
    pub window: [i64; 2],
    pub overruns: u64,
    /// What this stream is charged to the memory budget (its state, its
    /// request head, its WebSocket parsers): added and taken back by its
    /// connection.
    pub cost: u32,
}

impl Stream {
    pub fn new(id: u32, ts: Ts, windows: [i64; 2]) -> Stream {
        Stream {
            id,
            opened: ts,
            last: ts,
            ws_connect: false,
            status: None,
            ws: None,
            req_done: false,
            frames: [0; 2],
            bytes: [0; 2],
            last_data: [None; 2],
            end_stream: [None; 2],
            reset: None,
            gaps: 0,
            window: windows,
            overruns: 0,
            cost: 0,
        }
    }

    /// Nothing more can cross: both sides ended it, or one reset it.
    pub fn is_closed(&self) -> bool {
        self.reset.is_some() || (self.end_stream[0].is_some() && self.end_stream[1].is_some())
    }

    /// DATA sent in `dir` spends the receiver's window.
    pub fn spend(&mut self, dir: Dir, n: u32) {
        let w = &mut self.window[dir.index()];
        *w -= n as i64;
        if *w < 0 {
            self.overruns += 1;
            *w = 0;
        }
    }

    /// What the stream was, as it ends; `conn_end` are the connection's
    /// own FIN and RST times (they end a stream that had not ended).
    pub fn summary(&mut self, conn_fin: [Option<Ts>; 2], conn_rst: [Option<Ts>; 2]) -> StreamSummary {
        let mut fin = self.end_stream;
        let mut rst = [None; 2];
        if let Some((t, d, _)) = self.reset {
            rst[d.index()] = Some(t);
        }
        let mut by_conn = false;
        if !self.is_closed() {
            for d in 0..2 {
                if fin[d].is_none() && rst[d].is_none() {
                    fin[d] = conn_fin[d];
                    rst[d] = conn_rst[d];
                    by_conn |= fin[d].is_some() || rst[d].is_some();
                }
            }
        }
        StreamSummary {
            stream: self.id,
            first_ts: self.opened,
            last_ts: self.last,
            frames: self.frames,
            bytes: self.bytes,
            last_data: self.last_data,
            fin,
            rst,
            reset_code: self.reset.map(|r| r.2),
            reset_by: self.reset.map(|r| r.1),
            ended_by_connection: by_conn,
            gaps: self.gaps,
            overruns: self.overruns,
            ws: self.ws.as_mut().and_then(|w| w.take_activity()),
        }
    }
}
