//! Application-layer analyzers fed by connection reassembly (as Zeek's are):
//! each receives stream bytes, gaps and FINs per direction and reports facts
//! as [`ProtoEvent`]s. They never decide findings.

pub mod activity;
pub mod h2;
pub mod http;
pub mod message;
pub mod sniff;
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
    /// A TLS ClientHello: this hop is encrypted (readable only with keys).
    Tls { ts: Ts, sni: Option<String> },
    /// What the TLS handshake negotiated, when its application data was
    /// first decrypted or when it was found not to be decryptable (and why).
    TlsInfo { ts: Ts, info: Box<tls::TlsInfo> },
    /// On a TLS connection: the client began sending application data after
    /// the server spoke (`ToServer`), or the server answered (`ToClient`).
    TlsTurn { dir: Dir, ts: Ts },
    /// HTTP/2: a fact about one stream (followed like a connection of its
    /// own by the analyzer).
    H2Stream { stream: u32, ts: Ts, ev: h2::StreamEvent },
    /// HTTP/2: a connection-level fact (SETTINGS, GOAWAY).
    H2 { ts: Ts, fact: h2::ConnFact },
}

/// What a connection carries, decided from its first payload bytes.
/// `Detect` carries the run's session keys, for a TLS connection.
#[derive(Debug)]
pub enum App {
    Detect(tls::Keys),
    /// Like Detect, with WebSocket frames reported one by one (`-v`).
    DetectVerbose(tls::Keys),
    Http(Box<http::HttpConn>),
    /// After a 101 to a WebSocket upgrade: frames only.
    Ws(Box<http::WsState>),
    /// TLS: records decrypted when keys are known, the plaintext parsed by
    /// an inner `App`; without keys, record headers only, for the turns of
    /// the conversation.
    Tls(Box<tls::TlsConn>),
    /// HTTP/2 (ALPN h2 after decryption, or the client preface in clear):
    /// streams, each one an exchange, RFC 8441 WebSockets among them.
    H2(Box<h2::H2Conn>),
    /// SSH, a non-WebSocket tunnel, anything not HTTP: not parsed.
    Opaque,
    /// The connection closed and lingers, reading nothing more: what its
    /// parsers counted, kept for the flow table's totals
    /// ([`App::retire`]).
    Retired(Box<Retired>),
}

/// The counters of a closed connection's parsers.
#[derive(Debug)]
pub struct Retired {
    tls: Option<tls::TlsStats>,
    h2: Option<h2::H2Stats>,
}

impl App {
    /// True when nothing more will be parsed on this connection, so the
    /// connection layer can stop reassembling it.
    #[inline]
    pub fn is_opaque(&self) -> bool {
        match self {
            App::Opaque | App::Retired(_) => true,
            App::Http(h) => h.is_tunnel(),
            App::Tls(t) => t.is_opaque(),
            App::H2(h) => h.is_dead(),
            App::Ws(_) | App::Detect(_) | App::DetectVerbose(_) => false,
        }
    }

    pub fn is_websocket(&self) -> bool {
        match self {
            App::Ws(_) => true,
            App::Tls(t) => t.inner().is_websocket(),
            _ => false,
        }
    }

    /// A TLS connection holding records until its keys arrive.
    pub fn holds_for_keys(&self) -> bool {
        matches!(self, App::Tls(t) if t.is_holding())
    }

    /// The key store changed (live key log): held records may be read now.
    pub fn keys_changed(&mut self, ts: Ts, out: &mut Vec<ProtoEvent>) {
        if let App::Tls(t) = self {
            t.keys_changed(ts, out);
        }
    }

    /// The HTTP/2 connection, when this is one (in clear or decrypted).
    pub fn h2(&self) -> Option<&h2::H2Conn> {
        match self {
            App::H2(h) => Some(h),
            App::Tls(t) => t.inner().h2(),
            _ => None,
        }
    }

    /// The connection closed: its parsers go, their counters stay.
    pub fn retire(&mut self) {
        let (tls, h2) = (self.tls_stats(), self.h2_stats());
        *self = if tls.is_some() || h2.is_some() { App::Retired(Box::new(Retired { tls, h2 })) } else { App::Opaque };
    }

    /// TLS counters, while it parses and once retired.
    pub fn tls_stats(&self) -> Option<tls::TlsStats> {
        match self {
            App::Retired(r) => r.tls,
            _ => self.tls().map(|t| t.stats()),
        }
    }

    /// HTTP/2 counters, while it parses and once retired.
    pub fn h2_stats(&self) -> Option<h2::H2Stats> {
        match self {
            App::Retired(r) => r.h2,
            _ => self.h2().map(|h| h.stats()),
        }
    }

    /// The connection ended for `reason`: an HTTP/2 connection ends its
    /// streams.
    pub fn finish(&mut self, out: &mut Vec<ProtoEvent>) {
        match self {
            App::H2(h) => h.finish(out),
            App::Tls(t) => t.inner_mut().finish(out),
            _ => {}
        }
    }

    /// A TLS connection's close waits behind records held for keys from a
    /// live key log (tls: `TlsConn::closing`).
    pub fn close_waits_for_keys(&self) -> bool {
        matches!(self, App::Tls(t) if t.close_waits_for_keys())
    }

    /// The closes that waited behind held records go on: the connection
    /// ends with its records still held.
    pub fn replay_closings(&mut self, out: &mut Vec<ProtoEvent>) {
        if let App::Tls(t) = self {
            t.replay_closings(out);
        }
    }

    /// The TLS handshake's facts, for a TLS connection.
    pub fn tls(&self) -> Option<&tls::TlsConn> {
        match self {
            App::Tls(t) => Some(t),
            _ => None,
        }
    }

    pub fn data(&mut self, dir: Dir, ts: Ts, data: &[u8], out: &mut Vec<ProtoEvent>) {
        if data.is_empty() {
            return;
        }
        if let App::Detect(keys) | App::DetectVerbose(keys) = self {
            let keys = keys.clone();
            let verbose = matches!(self, App::DetectVerbose(_));
            let http = || Box::new(http::HttpConn::new(verbose));
            *self = match sniff::first_payload(dir, data) {
                sniff::Carries::TlsHello => App::Tls(Box::new(tls::TlsConn::new(keys, verbose))),
                sniff::Carries::H2Preface => App::H2(Box::new(h2::H2Conn::new(verbose))),
                sniff::Carries::Http => App::Http(http()),
                sniff::Carries::TlsRecord => App::Tls(Box::new(tls::TlsConn::midstream(keys, verbose, ts, out))),
                sniff::Carries::Unknown => App::Opaque,
            };
        }
        match self {
            App::Ws(w) => w.feed(dir, ts, data, out),
            App::Tls(t) => t.data(dir, ts, data, out),
            App::H2(h) => h.data(dir, ts, data, out),
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

    /// Memory held by the HTTP parser for the budget (partial heads, bytes
    /// held during an upgrade, unanswered requests).
    #[inline]
    pub fn buffered(&self) -> usize {
        match self {
            App::Http(h) => h.buffered(),
            App::Ws(w) => w.stranded as usize,
            App::Tls(t) => t.buffered(),
            App::H2(h) => h.buffered(),
            _ => 0,
        }
    }

    /// Fixed state of the parser beyond the connection's own, for the
    /// budget (what HTTP/2 holds per stream and for its HPACK tables
    /// changes with them).
    #[inline]
    pub fn state_cost(&self) -> u64 {
        use crate::budget;
        match self {
            App::Http(_) => budget::PER_HTTP,
            App::Ws(_) => budget::PER_WEBSOCKET,
            App::Tls(t) => budget::PER_TLS + t.inner().state_cost(),
            App::H2(h) => h.state_cost(),
            _ => 0,
        }
    }

    /// Memory pressure: the HTTP parser gives up partial heads; a TLS
    /// connection the records it holds for keys; HTTP/2 its header blocks
    /// being assembled.
    pub fn shed(&mut self, ts: Ts, out: &mut Vec<ProtoEvent>) -> usize {
        match self {
            App::Http(h) => h.shed(ts, out),
            App::Tls(t) => t.shed(ts, out),
            App::H2(h) => h.shed(ts, out),
            _ => 0,
        }
    }

    /// The sender in `dir` began closing the connection (FIN, RST).
    pub fn closing(&mut self, dir: Dir, ts: Ts, how: &'static str, out: &mut Vec<ProtoEvent>) {
        match self {
            App::Ws(w) => {
                if let Some(a) = w.activity_mut() {
                    a.closing(ts, dir, how);
                }
            }
            App::Tls(t) => t.closing(dir, ts, how, out),
            App::H2(h) => h.closing(dir, ts, how),
            _ => {}
        }
    }

    /// The WebSocket activity, if the connection was upgraded.
    pub fn activity(&self) -> Option<&activity::WsActivity> {
        match self {
            App::Ws(w) => w.activity(),
            App::Tls(t) => t.inner().activity(),
            _ => None,
        }
    }

    pub fn take_activity(&mut self) -> Option<Box<activity::WsActivity>> {
        match self {
            App::Ws(w) => w.take_activity(),
            App::Tls(t) => t.inner_mut().take_activity(),
            _ => None,
        }
    }

    pub fn gap(&mut self, dir: Dir, ts: Ts, len: u32, out: &mut Vec<ProtoEvent>) {
        match self {
            App::Http(h) => h.gap(dir, len, out, ts),
            App::Ws(w) => w.gap(dir, len, ts, out),
            App::Tls(t) => t.gap(dir, ts, len, out),
            App::H2(h) => h.gap(dir, ts, len, out),
            _ => {}
        }
    }
}
