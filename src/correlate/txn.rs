//! A request as correlation follows it: the facts of its hop
//! ([`HopRequest`]) and where it stands in pairing and reporting.

pub use crate::facts::{HopRequest, TlsFront, TxnId};
use crate::record::Confidence;

#[derive(Debug, Clone)]
pub struct Txn {
    /// What the hop carried and what answered it (the fact detectors see).
    pub hop: HopRequest,
    /// Shared by the hops of one request through a chain of proxies.
    pub chain: u64,
    /// 0 for the hop nearest the browser.
    pub hop_index: u32,
    /// Position of this request on its connection (keep-alive), from 0.
    pub nth_on_conn: u32,
    /// The request the proxy forwarded this one as (next hop).
    pub to: Option<TxnId>,
    /// Earlier forwards of this request that failed (proxy retries).
    pub retried: u32,
    /// A lone forwarded request: the TLS connection it likely came in on.
    pub tls_front: Option<TlsFront>,
    /// How sure the pairing with `from` is, when the pairing said more than
    /// `paired_by` does (an HTTP/2 stream: h2pair.rs).
    pub pair_confidence: Option<Confidence>,
    /// Finished: final response, or connection ended.
    pub done: bool,
    pub emitted_as_client: bool,
    pub emitted_as_upstream: bool,
}

/// A `Txn` reads as the hop request it follows (`t.req`, `t.flow`, ...).
impl std::ops::Deref for Txn {
    type Target = HopRequest;
    fn deref(&self) -> &HopRequest {
        &self.hop
    }
}

impl std::ops::DerefMut for Txn {
    fn deref_mut(&mut self) -> &mut HopRequest {
        &mut self.hop
    }
}

impl Txn {
    /// A request just seen on its hop, not paired yet.
    pub fn new(hop: HopRequest) -> Txn {
        Txn {
            hop,
            chain: 0,
            hop_index: 0,
            nth_on_conn: 0,
            to: None,
            retried: 0,
            tls_front: None,
            pair_confidence: None,
            done: false,
            emitted_as_client: false,
            emitted_as_upstream: false,
        }
    }

    pub fn needs_client_record(&self) -> bool {
        self.from.is_none() || self.to.is_some()
    }

    pub fn fully_emitted(&self) -> bool {
        (!self.needs_client_record() || self.emitted_as_client) && (self.from.is_none() || self.emitted_as_upstream)
    }
}
