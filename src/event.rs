//! Events: the facts the connection and protocol layers report, in capture
//! order. Correlation and detectors consume them; they never see bytes.

use crate::flow::key::FlowKey;
use crate::proto::activity::WsActivity;
use crate::proto::{Dir, Frame, Request, Response};
use crate::time::Ts;

/// Connection identifier, unique within one run (a 4-tuple reused after a
/// close gets a new id).
pub type ConnId = u64;

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub conn: ConnId,
    pub ts: Ts,
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// First event of every connection. `syn`: its SYN was captured (the
    /// capture did not start mid-connection).
    Open {
        flow: FlowKey,
        syn: bool,
    },
    /// The responder answered the SYN (SYN-ACK).
    Established,
    Request(Box<Request>),
    Response(Box<Response>),
    /// A 101 (or CONNECT 2xx) switched the connection away from HTTP.
    Upgraded {
        websocket: bool,
    },
    /// A WebSocket frame (only with `-v`: counters live in the connection).
    Frame {
        dir: Dir,
        frame: Frame,
    },
    /// The `ordinal`-th frame sent in `dir` since the upgrade (every 8th).
    RelaySample {
        dir: Dir,
        ordinal: u64,
    },
    /// A TLS ClientHello from the initiator: this hop is encrypted.
    Tls {
        sni: Option<String>,
    },
    /// The TLS handshake's facts once the connection's application data was
    /// decrypted, or found not decryptable (with the reason).
    TlsInfo(Box<crate::proto::tls::TlsInfo>),
    /// On a TLS connection: the client began sending application data after
    /// the server spoke (`ToServer`: a request, likely), or the server
    /// answered (`ToClient`). At most `proto::turns::MAX_TURNS` per connection.
    TlsTurn {
        dir: Dir,
    },
    /// Parser could not make sense of the stream at this point.
    Anomaly {
        dir: Dir,
        what: &'static str,
    },
    /// The side sending in `dir` closed its half (FIN, in stream order).
    Fin {
        dir: Dir,
    },
    /// The side sending in `dir` reset the connection.
    Rst {
        dir: Dir,
    },
    /// This id is an HTTP/2 stream of the TCP connection `parent` (right
    /// after its `Open`, whose flow is the TCP connection's): the stream
    /// is followed like a connection of its own ([`crate::proto::h2`]).
    H2Stream {
        parent: ConnId,
        stream: u32,
    },
    /// An HTTP/2 connection-level fact (SETTINGS, GOAWAY) on this TCP
    /// connection.
    H2(crate::proto::h2::ConnFact),
    /// The connection is over; last event for this id.
    Close(Box<ConnSummary>),
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// FIN from both sides.
    Closed,
    /// RST after the connection was established (or mid-stream).
    Reset,
    /// The SYN was answered with a RST (connection refused).
    Refused,
    /// The SYN was never answered.
    Unanswered,
    /// No packet for the inactivity timeout.
    Idle,
    /// The capture ended with the connection still open.
    EndOfCapture,
    /// Still open, but no longer followed: the memory budget needed its
    /// room (counted in the summary's `memory.evicted`).
    Evicted,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            EndReason::Closed => "closed",
            EndReason::Reset => "reset",
            EndReason::Refused => "refused",
            EndReason::Unanswered => "unanswered",
            EndReason::Idle => "idle",
            EndReason::EndOfCapture => "end-of-capture",
            EndReason::Evicted => "evicted",
        }
    }

    /// The connection did not end: the capture did, or wstap stopped
    /// following it.
    pub fn is_unfinished(self) -> bool {
        matches!(self, EndReason::EndOfCapture | EndReason::Evicted)
    }
}

/// What the connection layer knows of a connection when it ends. Indexed
/// by [`Dir`] (0: from the initiator, 1: from the responder).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnSummary {
    pub flow: FlowKey,
    pub end: EndReason,
    pub first_ts: Ts,
    pub last_ts: Ts,
    pub syn: bool,
    pub established: bool,
    pub packets: [u64; 2],
    /// Payload bytes (sequence space, including bytes lost to gaps).
    pub bytes: [u64; 2],
    /// Last segment carrying new data; keep-alive probes do not count.
    pub last_data: [Option<Ts>; 2],
    pub fin: [Option<Ts>; 2],
    pub rst: [Option<Ts>; 2],
    pub keepalives: u64,
    pub gaps: u64,
    /// WebSocket activity, when the connection was upgraded.
    pub ws: Option<Box<WsActivity>>,
    /// For an HTTP/2 stream: its id and how it was reset (`fin` and `rst`
    /// above are then its END_STREAM and RST_STREAM times; `packets` its
    /// frames, `bytes` its DATA).
    pub h2: Option<Box<StreamEnd>>,
}

/// How an HTTP/2 stream ended, beside its summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEnd {
    pub stream: u32,
    /// RST_STREAM's error code, and who sent it.
    pub reset_code: Option<u32>,
    pub reset_by: Option<Dir>,
    /// The TCP connection's end ended the stream.
    pub by_connection: bool,
    /// DATA beyond the flow-control window granted (counted, not enforced).
    pub overruns: u64,
}

impl ConnSummary {
    pub fn last_data_any(&self) -> Option<Ts> {
        self.last_data[0].max(self.last_data[1])
    }

    /// The side that closed first (FIN or RST) and when.
    pub fn first_close(&self) -> Option<(Dir, Ts)> {
        let t0 = self.fin[0].into_iter().chain(self.rst[0]).min();
        let t1 = self.fin[1].into_iter().chain(self.rst[1]).min();
        match (t0, t1) {
            (Some(a), Some(b)) if b < a => Some((Dir::ToClient, b)),
            (Some(a), _) => Some((Dir::ToServer, a)),
            (None, Some(b)) => Some((Dir::ToClient, b)),
            (None, None) => None,
        }
    }
}
