//! Which proxy is in the path, and the fix for each finding kind written
//! for it. One file per proxy product, each a [`Product`]: how it names
//! itself (`Server`, `Via`), what it adds to what it forwards or answers,
//! and its fix for every [`FindingKind`] — an exhaustive `match`, so a new
//! kind does not compile until every proxy has its fix. [`Proxy`] is the one
//! proxy type: detection's and `--proxy`'s (its values are [`KNOWN`]).
//!
//! A new proxy is one new file here, its `mod` line, and one line in
//! [`KNOWN`].
//!
//! Recognition never guesses from what any server might send: lower-case
//! header names on a response, or no `Server` header, are how many
//! WebSocket servers answer. It looks, in this order, at the `Server` and
//! `Via` of the response to the client, at headers a proxy adds to its own
//! responses, at the request it forwarded (its `Via`, then the headers only
//! one product adds, then those some products share), and, with both hops
//! in view, at what it did to the request. Within each step the first
//! product of [`KNOWN`] that matches is taken.

use std::fmt;

use crate::proto::{Request, Response};
use crate::record::FindingKind;

/// The arm of a product's `fix` that gives the generic fix, as a `match`
/// pattern: the kinds named, and the kinds whose fix is never in a
/// proxy's configuration (a hop in front dropped the headers, the backend
/// refused or closed, a bad Accept, a close without handshake, the warning
/// before a timeout). Each product's `fix` is an exhaustive `match` whose
/// last arm is one `generic_fix![...]`, so a new kind does not compile
/// until every product has placed it: its own fix, or the generic one.
macro_rules! generic_fix {
    [$($k:ident),* $(,)?] => {
        FindingKind::UpgradeHeadersMissing
            | FindingKind::HandshakeRejected
            | FindingKind::UpstreamPrematureClose
            | FindingKind::BadAccept
            | FindingKind::AbnormalClose
            | FindingKind::IdleTimeoutImminent
            $(| FindingKind::$k)*
    };
}

mod apache;
mod caddy;
mod envoy;
mod generic;
mod haproxy;
mod lighttpd;
mod nginx;
mod traefik;

/// Every proxy product wstap knows, in the order `--proxy` lists them and
/// recognition tries them.
pub static KNOWN: [Proxy; 7] = [
    Proxy(Some(&nginx::Nginx)),
    Proxy(Some(&haproxy::Haproxy)),
    Proxy(Some(&apache::Apache)),
    Proxy(Some(&envoy::Envoy)),
    Proxy(Some(&caddy::Caddy)),
    Proxy(Some(&lighttpd::Lighttpd)),
    Proxy(Some(&traefik::Traefik)),
];

/// What a proxy product's file provides.
pub trait Product: Sync {
    /// Its name: what `--proxy` takes, and findings print.
    fn name(&self) -> &'static str;
    /// A `Server` or `Via` value (lower-cased) names it.
    fn named_in(&self, value: &str) -> bool;
    /// Headers it adds to its own responses to the client, when they name
    /// it: what named it.
    fn response_signature(&self, _r: &Response) -> Option<String> {
        None
    }
    /// Headers it adds to the requests it forwards, when they name it.
    fn forwarded_signature(&self, _q: &Request) -> Option<Signature> {
        None
    }
    /// What it does to a request it forwards, with both hops in view.
    fn pair_signature(&self, _client: &Request, _forwarded: &Request) -> Option<String> {
        None
    }
    /// Its fix for a finding of `kind`; `None` when the kind has no fix
    /// (a warning about the future).
    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String>;
}

/// Headers on a forwarded request that name a product.
pub struct Signature {
    /// What named it.
    pub why: String,
    /// Headers no other product adds (tried before the shared ones: a
    /// request through two proxies carries both's).
    pub unique: bool,
}

/// The proxy on a path: a product wstap knows, or one it does not.
#[derive(Clone, Copy)]
pub struct Proxy(Option<&'static dyn Product>);

impl Proxy {
    /// A proxy that was not recognised (or no proxy is seen at all).
    pub const UNKNOWN: Proxy = Proxy(None);

    /// The product called `name`, if wstap knows it.
    pub fn named(name: &str) -> Option<Proxy> {
        KNOWN.iter().copied().find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Its name, or "the proxy" when not recognised (messages read "the
    /// proxy forwarded ...").
    pub fn name(self) -> &'static str {
        self.0.map_or("the proxy", |p| p.name())
    }

    /// Whether it is a product wstap knows.
    pub fn is_known(self) -> bool {
        self.0.is_some()
    }
}

impl PartialEq for Proxy {
    fn eq(&self, other: &Proxy) -> bool {
        self.0.map(|p| p.name()) == other.0.map(|p| p.name())
    }
}

impl Eq for Proxy {}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.map_or("unknown", |p| p.name()))
    }
}

/// `--proxy NAME`: its values are the products wstap knows.
impl clap::ValueEnum for Proxy {
    fn value_variants<'a>() -> &'a [Proxy] {
        &KNOWN
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        self.0.map(|p| clap::builder::PossibleValue::new(p.name()))
    }
}

/// A proxy named, and what named it (kept in findings as evidence).
pub type Recognised = (Proxy, String);

/// The product a `Server` or `Via` value names.
fn named_in(value: &str) -> Option<Proxy> {
    let l = value.to_ascii_lowercase();
    KNOWN.iter().copied().find(|p| p.0.is_some_and(|p| p.named_in(&l)))
}

/// Recognises the proxy from the client hop's response (its own `Server`,
/// `Via`, headers only it adds) and the forwarded request (headers each
/// proxy adds upstream), comparing the two when both are in view.
pub fn recognise(
    client_req: Option<&Request>,
    client_resp: Option<&Response>,
    forwarded: Option<&Request>,
) -> Option<Recognised> {
    if let Some(r) = client_resp {
        for name in ["server", "via"] {
            for v in r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v) {
                if let Some(p) = named_in(v) {
                    return Some((p, format!("{name}: {v} on the response to the client")));
                }
            }
        }
        if let Some(x) = first(|p| p.response_signature(r)) {
            return Some(x);
        }
    }
    if let Some(q) = forwarded
        && let Some(x) = forwarded_signature(q)
    {
        return Some(x);
    }
    if let (Some(c), Some(q)) = (client_req, forwarded) {
        return first(|p| p.pair_signature(c, q));
    }
    None
}

/// The proxy named by what it added to a forwarded request: its `Via`,
/// then headers only one product adds, then headers some share.
pub fn forwarded_signature(q: &Request) -> Option<Recognised> {
    if let Some(v) = q.headers.get("via")
        && let Some(p) = named_in(v)
    {
        return Some((p, format!("Via: {v} on the forwarded request")));
    }
    for unique in [true, false] {
        let x = first(|p| p.forwarded_signature(q).filter(|s| s.unique == unique).map(|s| s.why));
        if x.is_some() {
            return x;
        }
    }
    None
}

/// The first known product for which `f` says something.
fn first(f: impl Fn(&dyn Product) -> Option<String>) -> Option<Recognised> {
    KNOWN.iter().find_map(|p| p.0.and_then(&f).map(|why| (*p, why)))
}

/// The fix for a finding of `kind`, written for the proxy that is there.
pub fn fix(kind: FindingKind, p: Proxy, cx: &FixContext) -> Option<String> {
    match p.0 {
        Some(d) => d.fix(kind, cx),
        None => generic::fix(kind, cx),
    }
}

/// What a fix is written for: the path, the idle timeout involved, and
/// the status the client got (for a finding about an exchange).
pub struct FixContext<'a> {
    pub path: &'a str,
    pub boundary_s: Option<f64>,
    pub status: Option<u16>,
}

impl FixContext<'_> {
    /// The status, when it refuses access (401, 403, 407): a proxy that
    /// answered so itself applied one of its own access rules.
    pub fn access_refused(&self) -> Option<u16> {
        self.status.filter(|s| matches!(s, 401 | 403 | 407))
    }

    fn boundary(&self) -> Option<u64> {
        self.boundary_s.map(|b| b.round() as u64)
    }

    /// A timeout to raise to: ten times the boundary, an hour at least.
    pub fn keep(&self) -> u64 {
        self.boundary().map_or(3600, |b| (b * 10).max(3600))
    }

    /// A heartbeat interval that beats the boundary: half of it.
    pub fn heartbeat(&self) -> u64 {
        self.boundary().map_or(30, |b| (b / 2).max(1))
    }

    /// A product's fix for an idle timeout: its setting raised (to
    /// [`keep`](Self::keep)), or heartbeats that beat the boundary.
    pub fn raise_or_heartbeat(&self, setting: impl fmt::Display) -> String {
        format!("{setting}\nor send heartbeats every {} s or less", self.heartbeat())
    }
}

#[cfg(test)]
mod tests;
