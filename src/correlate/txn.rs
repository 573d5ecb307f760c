//! An HTTP exchange on one connection: a request, and the response or the
//! end of the connection that answered it.

use crate::event::ConnId;
use crate::flow::FlowKey;
use crate::proto::{Request, Response};
pub use crate::record::HopEnd;
use crate::record::{Confidence, PairedBy};
use crate::time::Ts;

pub type TxnId = u64;

/// A TLS connection that probably carried the request a proxy forwarded
/// (only the upstream hop is readable).
#[derive(Debug, Clone)]
pub struct TlsFront {
    pub conn: ConnId,
    pub flow: FlowKey,
    pub sni: Option<String>,
    /// Its handshake facts and why it was not decrypted, when known.
    pub tls: Option<Box<crate::proto::tls::TlsInfo>>,
    /// When the client began sending the application data this request was
    /// paired with (None: paired by its ClientHello only).
    pub turn: Option<Ts>,
    /// How sure the pairing is.
    pub confidence: Confidence,
    /// Connections that could have been the client hop.
    pub candidates: u32,
}

#[derive(Debug, Clone)]
pub struct Txn {
    pub id: TxnId,
    pub conn: ConnId,
    pub flow: FlowKey,
    /// Shared by the hops of one request through a chain of proxies.
    pub chain: u64,
    /// 0 for the hop nearest the browser.
    pub hop_index: u32,
    /// Position of this request on its connection (keep-alive), from 0.
    pub nth_on_conn: u32,
    pub req: Box<Request>,
    pub req_ts: Ts,
    pub interim: Vec<u16>,
    pub resp: Option<Box<Response>>,
    pub resp_ts: Option<Ts>,
    pub end: Option<(Ts, HopEnd)>,
    /// The client side (initiator) closed its half while the request waited
    /// for its answer: a proxy giving up on its upstream, or a client giving
    /// up on the proxy.
    pub client_fin: Option<Ts>,
    /// The request this one was forwarded from (previous hop).
    pub from: Option<TxnId>,
    /// The request the proxy forwarded this one as (next hop).
    pub to: Option<TxnId>,
    /// Earlier forwards of this request that failed (proxy retries).
    pub retried: u32,
    pub paired_by: Option<PairedBy>,
    pub tls_front: Option<TlsFront>,
    /// The request was decrypted from a TLS connection (its handshake facts).
    pub tls: Option<Box<crate::proto::tls::TlsInfo>>,
    /// How sure the pairing with `from` is, when the pairing said more than
    /// `paired_by` does (an HTTP/2 stream: h2pair.rs).
    pub pair_confidence: Option<Confidence>,
    /// Finished: final response, or connection ended.
    pub done: bool,
    pub emitted_as_client: bool,
    pub emitted_as_upstream: bool,
}

impl Txn {
    pub fn is_websocket_attempt(&self) -> bool {
        self.req.is_websocket_attempt()
    }

    pub fn status(&self) -> Option<u16> {
        self.resp.as_ref().map(|r| r.status)
    }

    /// The upgrade succeeded: 101, or a 2xx to an HTTP/2 extended CONNECT
    /// (RFC 8441).
    pub fn upgraded(&self) -> bool {
        match self.status() {
            Some(101) => true,
            Some(s) => (200..300).contains(&s) && self.req.is_extended_connect(),
            None => false,
        }
    }

    /// How the exchange ended without a response, as far as known now: its
    /// end, or the client's half-close while the server still had not
    /// answered.
    pub fn how_ended(&self) -> Option<HopEnd> {
        if self.resp.is_some() {
            return None;
        }
        self.end.map(|e| e.1).or(self.client_fin.map(|_| HopEnd::ClientClosed))
    }

    /// When the exchange finished (response head or end), if it has.
    pub fn finished_at(&self) -> Option<Ts> {
        self.resp_ts.or(self.end.map(|e| e.0))
    }

    /// Latency from the request's first byte to the response's first byte.
    pub fn latency_ms(&self) -> Option<f64> {
        self.resp_ts.map(|t| t.millis_since(self.req_ts))
    }

    /// Failed to get any response (the connection closed or reset).
    pub fn failed(&self) -> bool {
        self.resp.is_none() && self.end.is_some_and(|(_, e)| !matches!(e, HopEnd::Conn(r) if r.is_unfinished()))
    }

    pub fn needs_client_record(&self) -> bool {
        self.from.is_none() || self.to.is_some()
    }

    pub fn fully_emitted(&self) -> bool {
        (!self.needs_client_record() || self.emitted_as_client) && (self.from.is_none() || self.emitted_as_upstream)
    }
}
