//! Aggregates for the summary: upgrade success per path and per upstream,
//! and the latency distributions ([`crate::latency`]).

use std::collections::BTreeMap;

use crate::latency::Latencies;
use crate::record::{Handshake, Rate};

/// Paths (or upstreams) tracked one by one; the rest are summed as "(other)".
const MAX_KEYS: usize = 500;

#[derive(Default, Clone)]
pub struct Metrics {
    pub latency: Latencies,
    by_path: BTreeMap<String, (u64, u64)>,
    by_upstream: BTreeMap<String, (u64, u64)>,
}

/// Longest key kept (paths come from the wire and may be 64 KB long: 500
/// of them must not hold 32 MB).
const MAX_KEY_LEN: usize = 256;

fn bump(m: &mut BTreeMap<String, (u64, u64)>, key: &str, ok: bool) {
    let mut end = key.len().min(MAX_KEY_LEN);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    let key = &key[..end];
    let key = if m.len() >= MAX_KEYS && !m.contains_key(key) { "(other)" } else { key };
    let e = m.entry(key.to_string()).or_default();
    e.0 += 1;
    if ok {
        e.1 += 1;
    }
}

fn rates(m: &BTreeMap<String, (u64, u64)>) -> Vec<Rate> {
    m.iter()
        .map(|(k, &(a, u))| Rate {
            key: k.clone(),
            attempts: a,
            upgraded: u,
            rate: ((u as f64 / a as f64) * 1000.0).round() / 1000.0,
        })
        .collect()
}

impl Metrics {
    pub fn handshake(&mut self, h: &Handshake) {
        if h.hop_index == 0 {
            bump(&mut self.by_path, &h.path, h.outcome == crate::record::Outcome::Upgraded);
        }
        if let Some(u) = &h.upstream {
            bump(&mut self.by_upstream, &u.flow.dst.to_string(), u.status == Some(101));
        }
        self.latency.handshake(h);
    }

    pub fn paths(&self) -> Vec<Rate> {
        rates(&self.by_path)
    }

    pub fn upstreams(&self) -> Vec<Rate> {
        rates(&self.by_upstream)
    }
}
