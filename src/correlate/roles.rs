//! Which side of the proxy a connection is on. Learned from paired
//! requests (the server endpoint of a client-side request is a front, that
//! of a forwarded one an upstream), or stated with `--front`/`--upstream`.

use std::net::IpAddr;

use super::txn::Txn;
use crate::flow::Endpoint;
use crate::flow::key::FxHashSet;

/// `--upstream ADDR`: an address, optionally with a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamSpec {
    pub ip: Option<IpAddr>,
    pub port: Option<u16>,
}

impl UpstreamSpec {
    pub fn parse(s: &str) -> Result<UpstreamSpec, String> {
        if let Ok(p) = s.parse::<u16>() {
            return Ok(UpstreamSpec { ip: None, port: Some(p) });
        }
        if let Ok(ip) = s.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(UpstreamSpec { ip: Some(ip), port: None });
        }
        if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
            return Ok(UpstreamSpec { ip: Some(sa.ip()), port: Some(sa.port()) });
        }
        Err(format!("invalid --upstream '{s}': expected IP, PORT, IP:PORT or [IPv6]:PORT"))
    }

    pub fn matches(&self, e: Endpoint) -> bool {
        self.ip.is_none_or(|ip| ip == e.ip) && self.port.is_none_or(|p| p == e.port)
    }
}

/// Endpoints remembered per role at most.
const MAX_LEARNED: usize = 1024;

#[derive(Debug, Default, Clone)]
pub struct Roles {
    pub front_ports: Vec<u16>,
    pub upstreams: Vec<UpstreamSpec>,
    learned_fronts: FxHashSet<Endpoint>,
    learned_upstreams: FxHashSet<Endpoint>,
}

impl Roles {
    pub fn new(front_ports: Vec<u16>, upstreams: Vec<UpstreamSpec>) -> Roles {
        Roles { front_ports, upstreams, ..Default::default() }
    }

    /// Stated by the user: connections to this endpoint come from clients.
    pub fn is_front(&self, server: Endpoint) -> bool {
        self.front_ports.contains(&server.port)
    }

    /// Stated by the user: this endpoint is an upstream (the last hop).
    pub fn is_upstream(&self, server: Endpoint) -> bool {
        self.upstreams.iter().any(|u| u.matches(server))
    }

    /// Known to be a proxy's client-facing endpoint.
    pub fn known_front(&self, server: Endpoint) -> bool {
        self.is_front(server) || self.learned_fronts.contains(&server)
    }

    /// Seen only as an upstream (requests to it were forwarded, none of its
    /// own were forwarded on): a backend, not a proxy.
    pub fn learned_backend(&self, server: Endpoint) -> bool {
        self.learned_upstreams.contains(&server) && !self.learned_fronts.contains(&server)
    }

    pub fn learn(&mut self, front: Endpoint, upstream: Endpoint) {
        // Bounded: a proxy has few fronts and upstreams; a capture with
        // endless distinct ones (a scan, a benchmark) must not grow memory.
        if self.learned_fronts.len() >= MAX_LEARNED {
            self.learned_fronts.clear();
        }
        if self.learned_upstreams.len() >= MAX_LEARNED {
            self.learned_upstreams.clear();
        }
        self.learned_fronts.insert(front);
        self.learned_upstreams.insert(upstream);
    }

    /// Could this lone request be a forwarded one (look for a TLS front)?
    pub fn may_be_upstream(&self, t: &Txn) -> bool {
        !self.is_front(t.flow.dst) && !self.learned_fronts.contains(&t.flow.dst)
    }

    /// A request with no paired hop is the client hop (the hop nearest the
    /// browser seen in the capture) unless the user named its server an
    /// upstream, or a TLS connection in front of it was found.
    pub fn lone_is_upstream(&self, t: &Txn) -> bool {
        self.is_upstream(t.flow.dst) || t.tls_front.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_specs() {
        let e = Endpoint::new("127.0.0.1".parse().unwrap(), 3000);
        assert!(UpstreamSpec::parse("127.0.0.1:3000").unwrap().matches(e));
        assert!(UpstreamSpec::parse("3000").unwrap().matches(e));
        assert!(UpstreamSpec::parse("127.0.0.1").unwrap().matches(e));
        assert!(!UpstreamSpec::parse("127.0.0.2").unwrap().matches(e));
        assert!(UpstreamSpec::parse("[::1]:80").unwrap().matches(Endpoint::new("::1".parse().unwrap(), 80)));
        assert!(UpstreamSpec::parse("nope").is_err());
    }
}
