//! A parser's facts as connection events: an HTTP/2 stream's facts go to
//! the stream's own id, as a connection of its own, with its summary in
//! the form of a connection's.

use crate::event::{ConnId, ConnSummary, EndReason, Event, EventKind};
use crate::flow::key::FlowKey;
use crate::proto::ProtoEvent;
use crate::proto::h2::{self, StreamEvent};

/// Turns a parser's fact into events: an HTTP/2 stream's facts go to the
/// stream's own id ([`h2::stream_conn`]), as a connection of its own;
/// `conn_end` is why a stream the connection's end closed ended.
pub(super) fn push_event(conn: ConnId, flow: FlowKey, pe: ProtoEvent, conn_end: EndReason, out: &mut Vec<Event>) {
    let (ts, kind) = match pe {
        ProtoEvent::Request { ts, req } => (ts, EventKind::Request(req)),
        ProtoEvent::Response { ts, resp } => (ts, EventKind::Response(resp)),
        ProtoEvent::Upgraded { ts, websocket } => (ts, EventKind::Upgraded { websocket }),
        ProtoEvent::Frame { dir, ts, frame } => (ts, EventKind::Frame { dir, frame }),
        ProtoEvent::RelaySample { dir, ts, ordinal } => (ts, EventKind::RelaySample { dir, ordinal }),
        ProtoEvent::Anomaly { dir, ts, what } => (ts, EventKind::Anomaly { dir, what }),
        ProtoEvent::Tls { ts, sni } => (ts, EventKind::Tls { sni }),
        ProtoEvent::TlsInfo { ts, info } => (ts, EventKind::TlsInfo(info)),
        ProtoEvent::TlsTurn { dir, ts } => (ts, EventKind::TlsTurn { dir }),
        ProtoEvent::H2 { ts, fact } => (ts, EventKind::H2(fact)),
        ProtoEvent::H2Stream { stream, ts, ev } => {
            let id = h2::stream_conn(conn, stream);
            let kind = match ev {
                StreamEvent::Open => {
                    out.push(Event { conn: id, ts, kind: EventKind::Open { flow, syn: false } });
                    EventKind::H2Stream { parent: conn, stream }
                }
                StreamEvent::Request(req) => EventKind::Request(req),
                StreamEvent::Response(resp) => EventKind::Response(resp),
                StreamEvent::Upgraded => EventKind::Upgraded { websocket: true },
                StreamEvent::Frame { dir, frame } => EventKind::Frame { dir, frame },
                StreamEvent::RelaySample { dir, ordinal } => EventKind::RelaySample { dir, ordinal },
                StreamEvent::End { dir } => EventKind::Fin { dir },
                StreamEvent::Reset { dir, .. } => EventKind::Rst { dir },
                StreamEvent::Closed(s) => EventKind::Close(Box::new(stream_summary(flow, *s, conn_end))),
            };
            out.push(Event { conn: id, ts, kind });
            return;
        }
    };
    out.push(Event { conn, ts, kind });
}

/// A stream's summary in the form of a connection's.
fn stream_summary(flow: FlowKey, s: h2::StreamSummary, conn_end: EndReason) -> ConnSummary {
    let end = if s.reset_code.is_some() {
        EndReason::Reset
    } else if s.ended_by_connection || s.fin.iter().any(Option::is_none) {
        conn_end
    } else {
        EndReason::Closed
    };
    ConnSummary {
        flow,
        end,
        first_ts: s.first_ts,
        last_ts: s.last_ts,
        syn: false,
        established: true,
        packets: s.frames,
        bytes: s.bytes,
        last_data: s.last_data,
        fin: s.fin,
        rst: s.rst,
        keepalives: 0,
        gaps: s.gaps,
        ws: s.ws,
        h2: Some(Box::new(crate::event::StreamEnd {
            stream: s.stream,
            reset_code: s.reset_code,
            reset_by: s.reset_by,
            by_connection: s.ended_by_connection,
            overruns: s.overruns,
        })),
    }
}
