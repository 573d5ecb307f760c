//! Aggregates for the summary and the dashboard: upgrade success per path
//! and per upstream, and handshake latency percentiles (hdrhistogram).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::record::{Handshake, Percentiles, Rate};

/// Paths (or upstreams) tracked one by one; the rest are summed as "(other)".
const MAX_KEYS: usize = 500;

/// A latency distribution in microseconds, from 1 µs to 1 hour.
#[derive(Clone)]
pub struct LatencyHist(Histogram<u64>);

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
    }
}

impl LatencyHist {
    pub fn record_ms(&mut self, ms: f64) {
        if ms.is_finite() && ms >= 0.0 {
            self.0.saturating_record(((ms * 1000.0).round() as u64).max(1));
        }
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    pub fn percentiles(&self) -> Option<Percentiles> {
        if self.0.is_empty() {
            return None;
        }
        let q = |x: f64| (self.0.value_at_quantile(x) as f64 / 1000.0 * 1000.0).round() / 1000.0;
        Some(Percentiles {
            n: self.0.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            max: (self.0.max() as f64 / 1000.0 * 1000.0).round() / 1000.0,
        })
    }
}

#[derive(Default, Clone)]
pub struct Metrics {
    pub client: LatencyHist,
    pub upstream: LatencyHist,
    pub overhead: LatencyHist,
    pub relay: LatencyHist,
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
        if let Some(c) = h.latency_ms.client {
            self.client.record_ms(c);
        }
        if let Some(u) = h.latency_ms.upstream {
            self.upstream.record_ms(u);
        }
        if let (Some(c), Some(u)) = (h.latency_ms.client, h.latency_ms.upstream) {
            self.overhead.record_ms((c - u).max(0.0));
        }
    }

    pub fn paths(&self) -> Vec<Rate> {
        rates(&self.by_path)
    }

    pub fn upstreams(&self) -> Vec<Rate> {
        rates(&self.by_upstream)
    }
}
