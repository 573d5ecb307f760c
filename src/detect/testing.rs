//! Hand-built facts for the detectors' tests: requests on hops, exchanges,
//! session ends, HTTP/2 connections, and a runner with one detector.

use super::{Config, Context, Detector, Detectors, Finding};
use crate::facts::{Attempt, Exchange, Fact, H2Conn, HopRequest, SessionEnd, SessionRow, TlsFront};
use crate::flow::{Endpoint, FlowKey};
use crate::proto::activity::WsActivity;
use crate::proto::{Headers, Request, Response, Version};
use crate::record::{
    Close, CloseCodes, CloseHow, Closer, Confidence, Dirs, Heartbeat, HeartbeatKind, HopEnd, HopSession, Outcome,
    PairedBy, Peer, Role, Session, Side,
};
use crate::time::Ts;

pub fn ep(s: &str) -> Endpoint {
    let sa: std::net::SocketAddr = s.parse().unwrap();
    Endpoint::new(sa.ip(), sa.port())
}

/// "a:p->b:q"
pub fn flow(s: &str) -> FlowKey {
    let (a, b) = s.split_once("->").unwrap();
    FlowKey { src: ep(a), dst: ep(b) }
}

pub fn t(secs: f64) -> Ts {
    Ts::from_secs_f64(secs)
}

/// The upgrade headers a browser sends.
pub const UPGRADE: &[(&str, &str)] = &[
    ("Host", "app.example"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// The right answer to [`UPGRADE`]'s key (RFC 6455's example).
pub const ACCEPT: (&str, &str) = ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

pub fn request(method: &str, target: &str, version: Version, headers: &[(&str, &str)]) -> Box<Request> {
    Box::new(Request {
        method: method.into(),
        target: target.into(),
        version,
        headers: Headers::from_pairs(headers.iter().copied()),
        head_len: 0,
    })
}

pub fn response(status: u16, headers: &[(&str, &str)]) -> Box<Response> {
    Box::new(Response {
        version: Version::Http11,
        status,
        reason: String::new(),
        headers: Headers::from_pairs(headers.iter().copied()),
        head_len: 0,
    })
}

/// A request on `flow` at `at` seconds, not answered yet.
pub fn hop(id: u64, flow_: &str, req: Box<Request>, at: f64) -> HopRequest {
    HopRequest::new(id, id, flow(flow_), req, t(at))
}

impl HopRequest {
    /// Answered with `resp` at `at` seconds.
    pub fn answered(mut self, resp: Box<Response>, at: f64) -> HopRequest {
        self.resp = Some(resp);
        self.resp_ts = Some(t(at));
        self
    }

    /// Ended without an answer at `at` seconds.
    pub fn ended(mut self, end: HopEnd, at: f64) -> HopRequest {
        self.end = Some((t(at), end));
        self
    }

    /// Paired with the client hop by its key.
    pub fn forwarded(mut self) -> HopRequest {
        self.paired_by = Some(PairedBy::Key);
        self
    }
}

/// An exchange on the hops given (its path from the front one).
pub fn exchange<'a>(
    handshake: Option<u64>,
    client: Option<&'a HopRequest>,
    upstream: Option<&'a HopRequest>,
) -> Exchange<'a> {
    let front = client.or(upstream).expect("one hop");
    let outcome = match front.status() {
        Some(_) if front.upgraded() => Outcome::Upgraded,
        Some(_) => Outcome::Rejected,
        None => Outcome::Failed,
    };
    Exchange {
        handshake,
        chain: 1,
        ts: front.req_ts,
        path: front.req.path(),
        outcome,
        client,
        upstream,
        tls_front: None,
        attempts: &[],
        front_known: false,
    }
}

/// A TLS connection in front of a lone forwarded request.
pub fn tls_front(flow_: &str) -> TlsFront {
    TlsFront {
        conn: 99,
        flow: flow(flow_),
        sni: Some("app.example".into()),
        tls: None,
        turn: Some(t(1.0)),
        confidence: Confidence::High,
        candidates: 1,
    }
}

/// A refused connection attempt.
pub fn refused(flow_: &str, at: f64) -> Attempt {
    Attempt { conn: 50, flow: flow(flow_), ts: t(at), refused: true }
}

/// A session through a proxy: the client hop 198.51.100.7 -> 10.0.0.1:80,
/// the upstream hop 10.0.0.1 -> 10.0.0.2:3000, from `start` to `end`.
pub fn session(id: u64, path: &str, start: f64, end: f64, close: Close) -> Session {
    let hop = |role: Role, f: &str| HopSession {
        role,
        flow: flow(f),
        frames: Dirs::default(),
        bytes: Dirs::default(),
        close_frames: CloseCodes::default(),
        closed_by: None,
        closed_with: None,
        closed_at: None,
        last_data: None,
        keepalives: 0,
        unmasked_client_frames: 0,
        oversized_control_frames: 0,
        masked_server_frames: 0,
        encrypted: false,
        stream_id: None,
        reset: None,
    };
    let client = format!("198.51.100.7:{}->10.0.0.1:80", 50000 + id);
    let upstream = format!("10.0.0.1:{}->10.0.0.2:3000", 40000 + id);
    Session {
        ty: "session",
        id,
        chain: id,
        hop_index: 0,
        handshake: id,
        path: path.into(),
        start,
        end,
        duration_s: end - start,
        client_flow: Some(flow(&client)),
        upstream_flow: Some(flow(&upstream)),
        frames: Dirs::default(),
        bytes: Dirs::default(),
        messages: Dirs::default(),
        pings: Dirs::default(),
        pongs: Dirs::default(),
        compressed: false,
        heartbeat: None,
        close,
        open: false,
        hops: vec![hop(Role::Client, &client), hop(Role::Upstream, &upstream)],
        join: Default::default(),
    }
}

/// A close without a close handshake: `how` by `by`, after `idle_s`.
pub fn cut(by: Closer, how: CloseHow, idle_s: f64) -> Close {
    Close { by: Some(by), code: None, reason: None, clean: false, idle_s: Some(idle_s), how }
}

/// A clean close (close frames both ways) by the client.
pub fn clean() -> Close {
    Close {
        by: Some(Closer::Client),
        code: Some(1000),
        reason: None,
        clean: true,
        idle_s: None,
        how: CloseHow::CloseFrame,
    }
}

/// The proxy closed both legs at `at` (its FIN to the client, and to the
/// backend as the upstream hop's initiator).
pub fn proxy_closed_both(s: &mut Session, at: f64, how: CloseHow) {
    for h in &mut s.hops {
        h.closed_by = Some(if h.role == Role::Client { Side::Responder } else { Side::Initiator });
        h.closed_with = Some(how);
        h.closed_at = Some(at);
    }
}

pub fn pings(every_s: f64, from: Peer) -> Heartbeat {
    Heartbeat { kind: HeartbeatKind::Ping, interval_s: every_s, from }
}

/// The activity of a hop upgraded at `upgraded`, closed first at `closed`.
pub fn activity(upgraded: f64, last_frame: Option<f64>, closed: f64, how: &'static str) -> WsActivity {
    let mut a = WsActivity::new(t(upgraded));
    a.last_frame_before_close = last_frame.map(t);
    a.closing(t(closed), crate::proto::Dir::ToClient, how);
    a
}

/// An HTTP/2 connection whose server did (or did not) offer RFC 8441.
pub fn h2_conn(flow_: &str, offers: bool, opened: f64, closed: Option<f64>) -> H2Conn {
    let server = crate::proto::h2::Settings { enable_connect_protocol: offers.then_some(1), ..Default::default() };
    H2Conn {
        conn: 7,
        flow: flow(flow_),
        opened: t(opened),
        client: Some(Default::default()),
        server: Some(server),
        streams: 1,
        websocket_streams: 0,
        goaway: None,
        closed: closed.map(t),
    }
}

/// An open session row (live capture).
pub fn open_row(id: u64, path: &str, start: f64, last: f64) -> SessionRow {
    SessionRow {
        id,
        handshake: id,
        path: path.into(),
        client_flow: Some(flow("198.51.100.7:50000->10.0.0.1:80")),
        client_stream: None,
        upstream_flow: Some(flow("10.0.0.1:40000->10.0.0.2:3000")),
        start: t(start),
        last_activity: t(last),
        frames: Dirs::default(),
        bytes: Dirs::default(),
    }
}

/// The runner with `d` alone, as the pipeline drives detectors.
pub struct One(pub Detectors);

impl One {
    pub fn new<D: Detector + 'static>(cfg: Config) -> One {
        let d = D::new(&cfg);
        One(Detectors { list: vec![Box::new(d)], cx: Context::new(&cfg) })
    }

    pub fn fact(&mut self, f: Fact<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        self.0.on_fact(&f, &mut out);
        out
    }

    pub fn exchange(&mut self, x: &Exchange<'_>) -> Vec<Finding> {
        self.fact(Fact::Exchange(x))
    }

    pub fn session(&mut self, s: &Session, client: Option<&WsActivity>, upstream: Option<&WsActivity>) -> Vec<Finding> {
        self.fact(Fact::SessionEnded(&SessionEnd { session: s, client, upstream }))
    }

    pub fn tick(&mut self, now: f64, open: &[SessionRow]) -> Vec<Finding> {
        let mut out = Vec::new();
        self.0.on_tick(t(now), open, &mut out);
        out
    }

    pub fn finish(&mut self, now: f64) -> Vec<Finding> {
        let mut out = Vec::new();
        self.0.finish(t(now), &mut out);
        out
    }
}

/// The kinds found, in order.
pub fn kinds(fs: &[Finding]) -> Vec<&'static str> {
    fs.iter().map(|f| f.kind.name()).collect()
}
