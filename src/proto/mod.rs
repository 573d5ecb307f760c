//! Application-layer analyzers fed by connection reassembly (as Zeek's are):
//! each receives stream bytes, gaps and FINs per direction and reports facts
//! as [`ProtoEvent`]s. They never decide findings.

pub mod activity;
pub mod http;
pub mod message;
pub mod tls;
pub mod turns;
pub mod ws;

use crate::time::Ts;
pub use message::{Headers, Request, Response, Version};
pub use ws::Frame;

/// Direction within a connection, relative to its HTTP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// From the initiator (HTTP client) to the responder.
    ToServer = 0,
    /// From the responder to the initiator.
    ToClient = 1,
}

impl Dir {
    pub fn flip(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProtoEvent {
    /// A complete request head; `ts` is its first byte.
    Request { ts: Ts, req: Box<Request> },
    /// A complete response head (interim ones included); `ts` is its first byte.
    Response { ts: Ts, resp: Box<Response> },
    /// A 101 (or CONNECT 2xx) switched the connection away from HTTP.
    Upgraded { ts: Ts, websocket: bool },
    /// Every frame, only when asked for (`-v`); the connection keeps its
    /// own counters otherwise.
    Frame { dir: Dir, ts: Ts, frame: Frame },
    /// Every 8th frame of a direction (its ordinal counts every frame since
    /// the upgrade): a proxy relays frames in order, so the same ordinal on
    /// the other hop is the same frame.
    RelaySample { dir: Dir, ts: Ts, ordinal: u64 },
    /// Input the parser could not make sense of (counted in the summary).
    Anomaly { dir: Dir, ts: Ts, what: &'static str },
    /// A TLS ClientHello: this hop is encrypted and cannot be read.
    Tls { ts: Ts, sni: Option<String> },
    /// On a TLS connection: the client began sending application data after
    /// the server spoke (`ToServer`), or the server answered (`ToClient`).
    TlsTurn { dir: Dir, ts: Ts },
}

/// What a connection carries, decided from its first payload bytes.
#[derive(Debug, Default)]
pub enum App {
    #[default]
    Detect,
    /// Like Detect, with WebSocket frames reported one by one (`-v`).
    DetectVerbose,
    Http(Box<http::HttpConn>),
    /// After a 101 to a WebSocket upgrade: frames only.
    Ws(Box<http::WsState>),
    /// TLS: record headers only, for the turns of the conversation.
    Tls(Box<turns::Turns>),
    /// TLS, SSH, a non-WebSocket tunnel, anything not HTTP: not parsed.
    Opaque,
}

impl App {
    /// True when nothing more will be parsed on this connection, so the
    /// connection layer can stop reassembling it.
    pub fn is_opaque(&self) -> bool {
        match self {
            App::Opaque => true,
            App::Http(h) => h.is_tunnel(),
            App::Tls(t) => t.is_done(),
            App::Ws(_) | App::Detect | App::DetectVerbose => false,
        }
    }

    pub fn is_websocket(&self) -> bool {
        matches!(self, App::Ws(_))
    }

    pub fn data(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        if data.is_empty() {
            return;
        }
        if let App::Detect | App::DetectVerbose = self {
            let verbose = matches!(self, App::DetectVerbose);
            let http = || Box::new(http::HttpConn::new(verbose));
            *self = match dir {
                Dir::ToServer if tls::is_client_hello(data) => {
                    out.push(ProtoEvent::Tls { ts, sni: tls::sni(data) });
                    App::Tls(Box::default())
                }
                Dir::ToServer if http::looks_like_request(data) => App::Http(http()),
                Dir::ToClient if http::looks_like_response(data) => App::Http(http()),
                _ => App::Opaque,
            };
        }
        match self {
            App::Ws(w) => w.feed(dir, ts, data, out),
            App::Tls(t) => t.data(dir, ts, data, out),
            App::Http(h) => {
                h.data(dir, ts, data, out);
                // After a 101 the connection carries frames only: keep just
                // the WebSocket state, one pointer away from the connection.
                if h.is_websocket()
                    && let Some(w) = h.take_ws()
                {
                    *self = App::Ws(w);
                }
            }
            _ => {}
        }
    }

    /// The sender in `dir` began closing the connection (FIN, RST).
    pub fn closing(&mut self, dir: Dir, ts: Ts, how: &'static str) {
        if let App::Ws(w) = self
            && let Some(a) = w.activity_mut()
        {
            a.closing(ts, dir, how);
        }
    }

    /// The WebSocket activity, if the connection was upgraded.
    pub fn activity(&self) -> Option<&activity::WsActivity> {
        match self {
            App::Ws(w) => w.activity(),
            _ => None,
        }
    }

    pub fn take_activity(&mut self) -> Option<Box<activity::WsActivity>> {
        match self {
            App::Ws(w) => w.take_activity(),
            _ => None,
        }
    }

    pub fn gap(&mut self, dir: Dir, ts: Ts, len: u32, out: &mut Vec<ProtoEvent>) {
        match self {
            App::Http(h) => h.gap(dir, len, out, ts),
            App::Ws(w) => w.gap(dir, len, ts, out),
            App::Tls(t) => t.gap(),
            _ => {}
        }
    }
}
