//! Output records: the JSON Lines contract (docs/json.md). Every line has a
//! `type`; field names and finding `kind`s are stable identifiers. Extend,
//! never rename.
//!
//! Records are typed all the way to the sinks: flows are [`FlowKey`]s, roles,
//! who closed and how, finding kinds and severities are enums. Their
//! `Serialize` impls (here) are the JSON spelling; their `Display` impls the
//! text one. No module formats a record field into text and reads it back.

use std::collections::BTreeMap;
use std::fmt;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::event::EndReason;
use crate::flow::{Endpoint, FlowKey};
use crate::proto::{Dir, Version};

/// A closed set of names: the enum, `ALL`, `name()`, `Display` and a
/// `Serialize` that writes the name (JSON values and map keys alike).
macro_rules! named {
    ($(#[$m:meta])* pub enum $T:ident { $($(#[$vm:meta])* $V:ident => $s:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $T {
            $($(#[$vm])* $V,)*
        }
        impl $T {
            /// Every value, in declaration order.
            pub const ALL: &'static [$T] = &[$($T::$V,)*];
            /// The stable name (JSON and text).
            pub fn name(self) -> &'static str {
                match self {
                    $($T::$V => $s,)*
                }
            }
        }
        impl fmt::Display for $T {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
        impl Serialize for $T {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    };
}

named! {
    /// What a finding is about: the stable identifiers of the JSON contract
    /// (documented in docs/findings.md). A new kind is a new variant here;
    /// the compiler then asks every proxy (src/detect/proxy/) for its fix.
    pub enum FindingKind {
        UpgradeStripped => "upgrade-stripped",
        UpgradeHeadersMissing => "upgrade-headers-missing",
        UpstreamHttp10 => "upstream-http10",
        HandshakeRejected => "handshake-rejected",
        UpstreamPrematureClose => "upstream-premature-close",
        UpstreamConnectFailed => "upstream-connect-failed",
        UpstreamTimeout => "upstream-timeout",
        UpgradeFailed => "upgrade-failed",
        BadAccept => "bad-accept",
        ConnectionUpgradeOnPlain => "connection-upgrade-on-plain",
        IdleTimeoutClose => "idle-timeout-close",
        AbnormalClose => "abnormal-close",
        SocketioNoUpgrade => "socketio-no-upgrade",
        ForwardedProtoMissing => "forwarded-proto-missing",
        MassClose => "mass-close",
        HeartbeatRace => "heartbeat-race",
        IdleTimeoutImminent => "idle-timeout-imminent",
        ProxyProtocolViolation => "proxy-protocol-violation",
        FalseUpgradeSuccess => "false-upgrade-success",
        H2WebsocketNotOffered => "h2-websocket-not-offered",
    }
}

/// Kinds sort by name (the summary's `findings` map is keyed by them).
impl Ord for FindingKind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for FindingKind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--fail-on`: the exit status a run ends with, from the worst severity
/// among the findings it reported (`None`: none). 1 when that is at or
/// above `level`, else 0. The one decision for the text/JSON run and the
/// dashboard alike.
pub fn exit_status(level: Option<Severity>, worst: Option<Severity>) -> i32 {
    match (level, worst) {
        (Some(level), Some(worst)) if worst >= level => 1,
        _ => 0,
    }
}

/// The version of this contract (docs/json.md, "Versions"), written in the
/// summary as `schema`. A field or value added is a minor bump; a field
/// renamed, removed or whose meaning changes is a major bump.
pub const SCHEMA: &str = "1.2";

/// The summary's `schema` field: always [`SCHEMA`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Schema;

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(SCHEMA)
    }
}

/// The seed of the Community ID hashes records carry (the default of
/// Zeek, Suricata, Arkime and Wireshark).
pub const COMMUNITY_ID_SEED: u16 = 0;

/// A connection's structured fields, as Zeek's `conn.log` names them
/// (`id.orig_h` ...), and its Community ID: written next to its `flow`.
fn conn_fields<M: SerializeMap>(m: &mut M, f: &FlowKey) -> Result<(), M::Error> {
    m.serialize_entry("orig_h", &f.src.ip)?;
    m.serialize_entry("orig_p", &f.src.port)?;
    m.serialize_entry("resp_h", &f.dst.ip)?;
    m.serialize_entry("resp_p", &f.dst.port)?;
    m.serialize_entry("community_id", &crate::flow::key::community_id(*f, COMMUNITY_ID_SEED))
}

/// `"flow":"a->b"` and, after it, the connection's structured fields
/// (used with `#[serde(flatten)]`).
fn ser_conn<S: Serializer>(f: &FlowKey, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(6))?;
    m.serialize_entry("flow", f)?;
    conn_fields(&mut m, f)?;
    m.end()
}

/// A connection's structured fields without its `flow` string.
struct ConnFields<'a>(&'a FlowKey);

impl Serialize for ConnFields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        conn_fields(&mut m, self.0)?;
        m.end()
    }
}

/// A finding's `flows` and, after them, `connections`: each flow's
/// structured fields and Community ID, in the same order.
fn ser_flows<S: Serializer>(flows: &[FlowKey], s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("flows", flows)?;
    let conns: Vec<ConnFields<'_>> = flows.iter().map(ConnFields).collect();
    m.serialize_entry("connections", &conns)?;
    m.end()
}

/// Request ids a hop carried (X-Request-ID, traceparent, ...), in the order
/// of [`crate::correlate::join::REQUEST_ID_HEADERS`]; written as an object
/// keyed by the lower-case header name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestIds(pub Vec<(&'static str, String)>);

impl RequestIds {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Adds `name` unless it is there already (the first value wins).
    pub fn add(&mut self, name: &'static str, value: String) {
        if self.get(name).is_none() {
            self.0.push((name, value));
        }
    }
}

impl Serialize for RequestIds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

named! {
    /// Where a record's `remote_addr` was read.
    pub enum RemoteFrom {
        /// The client hop's initiator, in the capture.
        Capture => "capture",
        /// Only the forwarded request was seen: its X-Real-IP.
        XRealIp => "x-real-ip",
        /// Only the forwarded request was seen: the last X-Forwarded-For
        /// entry (the address the proxy appended).
        XForwardedFor => "x-forwarded-for",
    }
}

/// What joins a handshake or session record to the proxy's and the
/// application's logs (docs/json.md, "Joining with logs"). Written inline
/// in the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Join {
    /// The client address and port as the proxy in front of the record's
    /// client hop logs them (nginx `$remote_addr:$remote_port`).
    pub remote_addr: Option<std::net::IpAddr>,
    pub remote_port: Option<u16>,
    /// Where `remote_addr` was read; null when it is unknown.
    pub remote_from: Option<RemoteFrom>,
    /// The original client named by the request the proxy received
    /// (X-Forwarded-For's first hop, else X-Real-IP, else Forwarded's
    /// `for=`), when it is another address than `remote_addr`: the request
    /// came through another proxy.
    pub forwarded_for: Option<std::net::IpAddr>,
    /// Request ids any hop carried, on its request or its response; the
    /// first value seen of each header.
    #[serde(skip_serializing_if = "RequestIds::is_empty")]
    pub request_ids: RequestIds,
    /// The client hop in view is itself a forward: its request carries
    /// what proxies add (X-Forwarded-For, X-Real-IP, Forwarded, Via) or is
    /// an upgrade over HTTP/1.0, which no WebSocket client sends. With no
    /// hop behind it in view, the capture shows a proxy's upstream leg and
    /// not the client (text says "client not seen"). Not in the JSON: the
    /// record's `client` is the hop nearest the client that was seen.
    #[serde(skip)]
    pub front_forwarded: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub kind: FindingKind,
    pub severity: Severity,
    pub ts: f64,
    #[serde(flatten, serialize_with = "ser_flows")]
    pub flows: Vec<FlowKey>,
    pub path: Option<String>,
    pub message: String,
    pub fix: Option<String>,
    pub detail: serde_json::Value,
    /// Findings about one fault share this id (assigned in output order).
    /// One fault may be filed under several kinds (an HTTP/1.0 forward
    /// that also lost the upgrade headers is both `upgrade-stripped` and
    /// `upstream-http10`): the lead finding comes first and names the
    /// others in `also`; each other one has `primary: false`. Text output
    /// prints the lead only.
    pub fault: u64,
    pub primary: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<FindingKind>,
}

impl Finding {
    /// Files `related` under the same fault as `self` (the lead).
    pub fn tie(&mut self, related: &mut Finding) {
        related.primary = false;
        if !self.also.contains(&related.kind) {
            self.also.push(related.kind);
        }
    }
}

/// A flow is written `SRC:PORT->DST:PORT` (initiator first).
impl Serialize for FlowKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An endpoint is written `IP:PORT` (`[IPv6]:PORT`).
impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

named! {
    /// A hop's role within a session: the client hop (nearest the client
    /// seen) or the upstream hop (the proxy's forward).
    pub enum Role {
        Client => "client",
        Upstream => "upstream",
    }
}

named! {
    /// One end of a TCP connection: the one that opened it, or the other.
    pub enum Side {
        Initiator => "initiator",
        Responder => "responder",
    }
}

impl Side {
    /// The side that sends in `dir`.
    pub fn sending(dir: Dir) -> Side {
        match dir {
            Dir::ToServer => Side::Initiator,
            Dir::ToClient => Side::Responder,
        }
    }
}

named! {
    /// Who is behind a session's first closing action.
    pub enum Closer {
        Client => "client",
        Server => "server",
        Proxy => "proxy",
    }
}

named! {
    /// What ended a connection (or a session) first.
    pub enum CloseHow {
        CloseFrame => "close-frame",
        Fin => "fin",
        Rst => "rst",
        EndOfCapture => "end-of-capture",
    }
}

impl CloseHow {
    /// The connection layer names a closing action in its activity
    /// counters ("close-frame", "fin", "rst"): here it becomes a type.
    pub fn of_activity(how: &str) -> CloseHow {
        match how {
            "close-frame" => CloseHow::CloseFrame,
            "rst" => CloseHow::Rst,
            _ => CloseHow::Fin,
        }
    }
}

named! {
    /// What a heartbeat is made of.
    pub enum HeartbeatKind {
        Ping => "ping",
        Pong => "pong",
        Data => "data",
    }
}

named! {
    /// An end of a session: the client's side or the server's.
    pub enum Peer {
        Client => "client",
        Server => "server",
    }
}

named! {
    /// What paired two hops of an exchange.
    pub enum PairedBy {
        /// The same Sec-WebSocket-Key.
        Key => "key",
        /// The target and headers a proxy passes through.
        Headers => "headers",
        /// Timing and order alone.
        Timing => "timing",
        /// A request id both hops carry (X-Request-ID, traceparent, ...).
        RequestId => "request-id",
    }
}

named! {
    /// How sure a pairing is.
    pub enum Confidence {
        High => "high",
        Medium => "medium",
        Low => "low",
    }
}

named! {
    /// An HTTP message line's direction (`-v`).
    pub enum MessageDir {
        Request => "request",
        Response => "response",
    }
}

/// How a request on one hop ended without a final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopEnd {
    /// The server side sent a FIN before any response.
    ServerClosed,
    /// The server side reset the connection.
    ServerReset,
    /// The client side reset the connection.
    ClientReset,
    /// The client side closed (FIN) first while waiting, then the server
    /// closed too: for an upstream hop, the proxy gave up on the backend.
    ClientClosed,
    /// The connection ended for another reason.
    Conn(EndReason),
}

impl HopEnd {
    pub fn name(self) -> &'static str {
        match self {
            HopEnd::ServerClosed => "closed-by-server",
            HopEnd::ServerReset => "reset-by-server",
            HopEnd::ClientReset => "reset-by-client",
            HopEnd::ClientClosed => "closed-by-client",
            HopEnd::Conn(r) => r.name(),
        }
    }
}

impl fmt::Display for HopEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for HopEnd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A direction as records name it.
pub fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

fn ser_version<S: Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

fn ser_opt_version<S: Serializer>(v: &Option<Version>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v.as_str()),
        None => s.serialize_none(),
    }
}

/// One output line.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Record {
    Http(HttpMessage),
    Frame(FrameLine),
    Handshake(Handshake),
    Session(Session),
    Finding(Finding),
    Summary(Summary),
}

impl Record {
    pub fn type_name(&self) -> &'static str {
        match self {
            Record::Http(_) => "http",
            Record::Frame(_) => "frame",
            Record::Handshake(_) => "handshake",
            Record::Session(_) => "session",
            Record::Finding(_) => "finding",
            Record::Summary(_) => "summary",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `-v`: one HTTP message as it completes.
#[derive(Debug, Clone, Serialize)]
pub struct HttpMessage {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub ts: f64,
    #[serde(flatten, serialize_with = "ser_conn")]
    pub flow: FlowKey,
    pub dir: MessageDir,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(serialize_with = "ser_version")]
    pub version: Version,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
    /// The HTTP/2 stream the message came on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
}

/// `-v`: one WebSocket frame. Its `flow` is written sender first; the
/// structured fields and Community ID after it are the connection's
/// (initiator first), as on every other record.
#[derive(Debug, Clone)]
pub struct FrameLine {
    pub ty: &'static str,
    pub ts: f64,
    pub flow: FlowKey,
    /// "to_server" or "to_client".
    pub dir: Dir,
    /// Its name: "text", "binary", "close", "ping", ...
    pub opcode: u8,
    pub fin: bool,
    pub rsv1: bool,
    pub masked: bool,
    pub len: u64,
    pub close_code: Option<u16>,
    pub close_reason: Option<String>,
    /// The HTTP/2 stream whose DATA carried the frame.
    pub stream_id: Option<u32>,
}

impl Serialize for FrameLine {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let conn = match self.dir {
            Dir::ToServer => self.flow,
            Dir::ToClient => self.flow.reversed(),
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", self.ty)?;
        m.serialize_entry("ts", &self.ts)?;
        m.serialize_entry("flow", &self.flow)?;
        conn_fields(&mut m, &conn)?;
        m.serialize_entry("dir", dir_name(self.dir))?;
        m.serialize_entry("opcode", crate::proto::ws::opcode::name(self.opcode))?;
        m.serialize_entry("fin", &self.fin)?;
        if self.rsv1 {
            m.serialize_entry("rsv1", &true)?;
        }
        m.serialize_entry("masked", &self.masked)?;
        m.serialize_entry("len", &self.len)?;
        if let Some(c) = self.close_code {
            m.serialize_entry("close_code", &c)?;
        }
        if let Some(r) = &self.close_reason {
            m.serialize_entry("close_reason", r)?;
        }
        if let Some(id) = self.stream_id {
            m.serialize_entry("stream_id", &id)?;
        }
        m.end()
    }
}

/// One hop of a handshake: the request as it crossed this hop and the
/// response it got there. Header fields hold the raw value or null.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    #[serde(flatten, serialize_with = "ser_conn")]
    pub flow: FlowKey,
    pub method: Option<String>,
    pub target: Option<String>,
    #[serde(serialize_with = "ser_opt_version")]
    pub version: Option<Version>,
    pub upgrade: Option<String>,
    pub connection: Option<String>,
    pub key: Option<String>,
    pub status: Option<u16>,
    pub reason: Option<String>,
    pub accept: Option<String>,
    pub server: Option<String>,
    pub request_ts: Option<f64>,
    pub response_ts: Option<f64>,
    /// How the hop ended when it got no response: "reset", "closed",
    /// "closed-by-server", "end-of-capture", ...
    pub end: Option<HopEnd>,
    /// The hop is TLS: seen, but its HTTP cannot be read.
    #[serde(skip_serializing_if = "is_false")]
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The hop is TLS: what its handshake negotiated, and whether wstap
    /// decrypted it (its HTTP fields then hold the decrypted request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsHop>,
    /// The hop is an HTTP/2 stream: its id (the WebSocket session is per
    /// stream; several share the TLS connection in `flow`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    /// RFC 8441: the extended CONNECT's `:protocol` ("websocket").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Request ids on this hop's request and response (redacted as other
    /// headers are), when any.
    #[serde(skip_serializing_if = "RequestIds::is_empty")]
    pub request_ids: RequestIds,
}

impl Hop {
    /// A hop on `flow` of which nothing else is known yet.
    pub fn new(flow: FlowKey) -> Hop {
        Hop {
            flow,
            method: None,
            target: None,
            version: None,
            upgrade: None,
            connection: None,
            key: None,
            status: None,
            reason: None,
            accept: None,
            server: None,
            request_ts: None,
            response_ts: None,
            end: None,
            encrypted: false,
            sni: None,
            tls: None,
            stream_id: None,
            protocol: None,
            request_ids: RequestIds::default(),
        }
    }
}

/// A TLS hop's handshake (docs/json.md, docs/tls.md). Never a key.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct TlsHop {
    /// "TLS 1.2", "TLS 1.3", or null when the ServerHello was not seen.
    pub version: Option<&'static str>,
    /// IANA suite name, e.g. "TLS_AES_128_GCM_SHA256".
    pub cipher: Option<String>,
    pub sni: Option<String>,
    /// The application protocol the server chose (ALPN).
    pub alpn: Option<String>,
    pub decrypted: bool,
    /// Why not: "no-key", "unsupported-suite", "unsupported-version",
    /// "handshake-not-captured", "auth-failed", "stream-gap", "malformed";
    /// null when decrypted.
    pub reason: Option<&'static str>,
}

impl TlsHop {
    pub fn of(info: Option<&crate::proto::tls::TlsInfo>, sni: Option<&str>) -> TlsHop {
        match info {
            Some(i) => TlsHop {
                version: i.version,
                cipher: i.cipher.clone(),
                sni: i.sni.clone().or(sni.map(str::to_string)),
                alpn: i.alpn.clone(),
                decrypted: i.decrypted,
                reason: i.reason.map(|r| r.name()),
            },
            None => TlsHop {
                sni: sni.map(str::to_string),
                reason: Some(crate::proto::tls::Undecrypted::NoKey.name()),
                ..TlsHop::default()
            },
        }
    }
}

/// TLS in the summary: connections by what became of them, and the keys.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsSummary {
    /// TLS connections seen.
    pub connections: u64,
    /// Connections whose records were decrypted with the keys given.
    pub decrypted: u64,
    /// Connections not decrypted, by reason (their hops are inferred from
    /// the other side of the proxy, as without keys).
    pub not_decrypted: BTreeMap<&'static str, u64>,
    /// Records decrypted, application-data plaintext bytes parsed.
    pub records: u64,
    pub bytes: u64,
    /// Records whose authentication failed (wrong keys, damage).
    pub auth_failures: u64,
    pub key_updates: u64,
    /// Connections read from records held until their keys arrived.
    pub late_keys: u64,
    /// Record bytes dropped while waiting for keys that did not come.
    pub held_dropped: u64,
    /// Key log input, when keys were given (`--keylog`, pcapng secrets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keylog: Option<KeyLogSummary>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct KeyLogSummary {
    /// Key log files given with --keylog.
    pub files: u64,
    /// pcapng Decryption Secrets Blocks read.
    pub dsb: u64,
    /// Key log lines read, secrets kept, lines not understood, lines with
    /// labels wstap does not use, connections forgotten (bound).
    pub lines: u64,
    pub secrets: u64,
    pub malformed: u64,
    pub ignored: u64,
    pub evicted: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub read_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The client got a 101.
    Upgraded,
    /// The client got another final status.
    Rejected,
    /// The connection closed or reset without a response.
    Failed,
    /// The capture ended before a response.
    Incomplete,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Upgraded, Outcome::Rejected, Outcome::Failed, Outcome::Incomplete];
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Upgraded => "upgraded",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Incomplete => "incomplete",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    pub client: Option<f64>,
    pub upstream: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Handshake {
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Unique per handshake record.
    pub id: u64,
    /// Shared by every record of one request's trip through a chain of
    /// proxies (one record per adjacent pair of hops).
    pub chain: u64,
    /// Position of this pair in the chain, 0 nearest the browser.
    pub hop_index: u32,
    pub ts: f64,
    pub path: String,
    pub client: Option<Hop>,
    pub upstream: Option<Hop>,
    pub outcome: Outcome,
    pub latency_ms: Latency,
    /// How the two hops were paired: "key", "headers", "timing"; null for
    /// a single hop.
    pub paired_by: Option<PairedBy>,
    /// How sure that pairing is: "high", "medium", "low"; null for a
    /// single hop (docs/json.md).
    pub pair_confidence: Option<Confidence>,
    /// What joins the record to the proxy's and the application's logs.
    #[serde(flatten)]
    pub join: Join,
}

#[derive(Debug, Clone, Copy, Serialize, Default, PartialEq, Eq)]
pub struct Dirs {
    pub to_server: u64,
    pub to_client: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Close {
    /// "client", "server", "proxy" or null (still open at end of capture).
    pub by: Option<Closer>,
    pub code: Option<u16>,
    pub reason: Option<String>,
    /// A close frame crossed in both directions.
    pub clean: bool,
    /// Seconds without data in either direction before the close began.
    pub idle_s: Option<f64>,
    /// What ended the connection first: "close-frame", "fin", "rst",
    /// "end-of-capture".
    pub how: CloseHow,
}

/// Per-hop detail of a session.
#[derive(Debug, Clone, Serialize)]
pub struct HopSession {
    pub role: Role,
    #[serde(flatten, serialize_with = "ser_conn")]
    pub flow: FlowKey,
    pub frames: Dirs,
    pub bytes: Dirs,
    /// Close frame codes sent in each direction (0 = close frame without code).
    pub close_frames: CloseCodes,
    /// Who closed this TCP connection first: "initiator" or "responder".
    pub closed_by: Option<Side>,
    /// "fin", "rst", or null.
    pub closed_with: Option<CloseHow>,
    pub closed_at: Option<f64>,
    pub last_data: Option<f64>,
    pub keepalives: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub unmasked_client_frames: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub oversized_control_frames: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub masked_server_frames: u64,
    /// A TLS hop: its TCP ends are known, its frames are not (counts 0).
    #[serde(skip_serializing_if = "is_false")]
    pub encrypted: bool,
    /// An HTTP/2 stream: its id; `closed_with` is then "fin" for its
    /// END_STREAM and "rst" for its RST_STREAM, whose error code is `reset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    /// RST_STREAM's error code ("CANCEL", ...), when the stream was reset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<&'static str>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct CloseCodes {
    pub to_server: Option<u16>,
    pub to_client: Option<u16>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heartbeat {
    /// "ping", "pong", "data".
    pub kind: HeartbeatKind,
    /// Median interval between heartbeats, seconds.
    pub interval_s: f64,
    /// Which side sends them: "client" or "server".
    pub from: Peer,
}

#[derive(Debug, Clone, Serialize)]
pub struct Session {
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub id: u64,
    pub chain: u64,
    /// Position of the hop pair in the chain, as in the handshake record.
    pub hop_index: u32,
    /// The handshake record this session follows.
    pub handshake: u64,
    pub path: String,
    pub start: f64,
    pub end: f64,
    pub duration_s: f64,
    pub client_flow: Option<FlowKey>,
    pub upstream_flow: Option<FlowKey>,
    pub frames: Dirs,
    pub bytes: Dirs,
    pub messages: Dirs,
    pub pings: Dirs,
    pub pongs: Dirs,
    #[serde(skip_serializing_if = "is_false")]
    pub compressed: bool,
    pub heartbeat: Option<Heartbeat>,
    pub close: Close,
    /// The capture ended with the session open.
    pub open: bool,
    pub hops: Vec<HopSession>,
    /// What joins the record to the proxy's and the application's logs
    /// (the handshake's).
    #[serde(flatten)]
    pub join: Join,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Handshakes {
    pub total: u64,
    pub upgraded: u64,
    pub rejected: u64,
    pub failed: u64,
    pub incomplete: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Reassembly {
    pub gaps: u64,
    pub gap_bytes: u64,
    pub retransmits: u64,
    pub out_of_order: u64,
    pub keepalives: u64,
    pub limit_hits: u64,
    /// Retransmitted bytes that differ from the first copy (Zeek's
    /// `rexmit_inconsistency`); the first copy is kept.
    pub rexmit_inconsistent: u64,
}

/// The memory budget (`--memcap`) and what it had to give up.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Memory {
    pub budget_bytes: u64,
    /// Highest memory charged against the budget (connection table,
    /// per-connection state, buffers).
    pub peak_bytes: u64,
    /// Connections the table holds at most under this budget.
    pub max_connections: u64,
    /// Connections no longer followed to make room: `half_open` (seen in
    /// one direction only: unanswered SYNs), `established`, `upgraded`.
    pub evicted: crate::budget::Evicted,
    /// New connections not followed at all (no room could be made).
    pub dropped_connections: u64,
    /// Connections whose buffers (held out-of-order data, partial heads)
    /// were given up, and the bytes freed.
    pub shed_connections: u64,
    pub shed_bytes: u64,
    /// Records written before an earlier-stamped one could come, to keep
    /// the output's time-order buffer within its share of the budget
    /// (nothing lost; order only).
    pub records_written_early: u64,
    /// HTTP/2 connections whose view (SETTINGS, GOAWAY, for detectors)
    /// was forgotten for the bound on views kept at once.
    pub h2_connections_forgotten: u64,
    /// Abnormal session closes judged before their time (without waiting
    /// for the closes around them) because 4096 were waiting.
    pub closes_judged_early: u64,
    /// Socket.IO sessions forgotten before they were judged (10,000 are
    /// followed at once).
    pub socketio_sessions_forgotten: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Capture {
    pub received: Option<u64>,
    pub dropped_kernel: Option<u64>,
    pub dropped_interface: Option<u64>,
    /// Packets the capture thread could not hand to analysis in time.
    pub dropped_queue: Option<u64>,
    /// `--fanout`: the packets taken from each kernel ring, in ring order
    /// (how evenly the kernel's flow hash spread them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rings: Option<Vec<u64>>,
}

/// Upgrade success for one path or upstream.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Rate {
    /// The path, or the upstream address.
    pub key: String,
    pub attempts: u64,
    pub upgraded: u64,
    pub rate: f64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Percentiles {
    pub n: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latencies {
    /// Handshake time the client saw (request to 101 on the client hop).
    pub client: Option<Percentiles>,
    /// Handshake time on the upstream hop.
    pub upstream: Option<Percentiles>,
    /// Client minus upstream: what the proxy added.
    pub overhead: Option<Percentiles>,
    /// Delay of a WebSocket frame through the proxy (same frame on both hops).
    pub relay: Option<Percentiles>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// The contract's version ([`SCHEMA`]).
    pub schema: Schema,
    /// The machine that captured: its host name for a live capture; null
    /// for a file (neither pcap nor pcapng records one: see `system`).
    pub host: Option<String>,
    /// What the capture says of the system that made it: a live capture's
    /// own; a pcapng file's section header and interface options. Absent
    /// for classic pcap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<CaptureSystem>,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_packets: u64,
    pub flows: u64,
    pub decode_errors: BTreeMap<&'static str, u64>,
    pub skipped: BTreeMap<&'static str, u64>,
    pub reassembly: Reassembly,
    pub http_anomalies: BTreeMap<&'static str, u64>,
    pub http_requests: u64,
    pub handshakes: Handshakes,
    pub sessions: u64,
    pub findings: BTreeMap<FindingKind, u64>,
    /// Upgrade success per path (hop nearest the client).
    pub paths: Vec<Rate>,
    /// Upgrade success per upstream address.
    pub upstreams: Vec<Rate>,
    pub latency_ms: Latencies,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub elapsed_s: f64,
    /// The capture file ended inside a packet record.
    pub truncated: bool,
    /// The capture file is damaged part-way (a record or block that cannot
    /// be read): what came before it was analysed, what follows was not.
    pub damaged: bool,
    pub memory: Memory,
    /// IP fragment reassembly.
    pub defrag: crate::decode::frag::DefragStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<Capture>,
    /// Present when TLS connections were seen or keys were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSummary>,
    /// Present when HTTP/2 connections were seen (docs/h2.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2: Option<H2Summary>,
}

/// The system a capture was made on, as far as the input says (pcapng
/// `shb_hardware`, `shb_os`, `shb_userappl`, `if_name`; a live capture's
/// uname and interface).
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CaptureSystem {
    pub hardware: Option<String>,
    pub os: Option<String>,
    pub application: Option<String>,
    /// Interface names, in the order the capture declares them.
    pub interfaces: Vec<String>,
}

/// HTTP/2 in the summary: connections, streams, WebSocket streams (RFC
/// 8441), how streams ended, and what the bounds dropped.
#[derive(Debug, Clone, Serialize, Default)]
pub struct H2Summary {
    pub connections: u64,
    /// Connections whose server offered RFC 8441 (ENABLE_CONNECT_PROTOCOL).
    pub connect_protocol_offered: u64,
    pub streams: u64,
    /// Extended CONNECT streams for `websocket`, and those answered 2xx.
    pub websocket_streams: u64,
    pub websocket_accepted: u64,
    pub frames: u64,
    pub data_bytes: u64,
    /// RST_STREAM frames by error code name ("CANCEL": 2).
    pub resets: BTreeMap<&'static str, u64>,
    pub goaways: u64,
    /// Flow control, counted not enforced.
    pub window_updates: u64,
    pub flow_control_overruns: u64,
    pub pushes: u64,
    /// Bounds: streams not followed (over our per-connection cap), streams
    /// opened beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS, header
    /// blocks not decoded (HPACK failure, table or block beyond our cap),
    /// header lists dropped (over our cap) or over the receiver's
    /// SETTINGS_MAX_HEADER_LIST_SIZE, non-DATA frames over our buffer cap,
    /// directions whose framing a capture gap lost.
    pub streams_dropped: u64,
    pub streams_over_limit: u64,
    pub hpack_errors: u64,
    pub header_blocks_lost: u64,
    pub header_lists_dropped: u64,
    pub header_lists_over_limit: u64,
    pub oversized_frames: u64,
    pub desyncs: u64,
}

impl H2Summary {
    pub fn of(h: &crate::proto::h2::H2Stats) -> Option<H2Summary> {
        if h.connections == 0 {
            return None;
        }
        let mut resets = BTreeMap::new();
        for (i, n) in h.resets.iter().enumerate() {
            if *n > 0 {
                let name = crate::proto::h2::frame::ERROR_NAMES.get(i).copied().unwrap_or("UNKNOWN");
                resets.insert(name, *n);
            }
        }
        Some(H2Summary {
            connections: h.connections,
            connect_protocol_offered: h.connect_protocol_offered,
            streams: h.streams,
            websocket_streams: h.websocket_streams,
            websocket_accepted: h.websocket_accepted,
            frames: h.frames,
            data_bytes: h.data_bytes,
            resets,
            goaways: h.goaways,
            window_updates: h.window_updates,
            flow_control_overruns: h.flow_control_overruns,
            pushes: h.pushes,
            streams_dropped: h.streams_dropped,
            streams_over_limit: h.streams_over_limit,
            hpack_errors: h.hpack_errors,
            header_blocks_lost: h.header_blocks_lost,
            header_lists_dropped: h.header_lists_dropped,
            header_lists_over_limit: h.header_lists_over_limit,
            oversized_frames: h.oversized_frames,
            desyncs: h.desyncs,
        })
    }
}
