//! Latency distributions (hdrhistogram): one type for the summary's
//! percentiles, the dashboard's Latency view and any other sink that wants
//! them. Milliseconds in, recorded in microseconds from 1 µs to 1 hour with
//! three significant digits.

use hdrhistogram::Histogram;

use crate::record::{Handshake, Percentiles};

/// A latency distribution in microseconds, from 1 µs to 1 hour.
#[derive(Clone)]
pub struct LatencyHist(Histogram<u64>);

impl Default for LatencyHist {
    fn default() -> Self {
        LatencyHist(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
    }
}

impl LatencyHist {
    /// Records `ms` milliseconds (negative or not finite: ignored).
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

    /// The distribution itself (in microseconds).
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }

    /// p50 to max in milliseconds, to the microsecond; None when empty.
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

/// The four series wstap measures.
#[derive(Clone, Default)]
pub struct Latencies {
    /// Handshake time the client saw (request to 101 on the client hop).
    pub client: LatencyHist,
    /// Handshake time on the upstream hop.
    pub upstream: LatencyHist,
    /// Client minus upstream, for paired handshakes: what the proxy added.
    pub overhead: LatencyHist,
    /// A WebSocket frame on one hop to its copy on the other.
    pub relay: LatencyHist,
}

impl Latencies {
    /// A handshake's latencies on each hop, and what the proxy added.
    pub fn handshake(&mut self, h: &Handshake) {
        let l = h.latency_ms;
        if let Some(c) = l.client {
            self.client.record_ms(c);
        }
        if let Some(u) = l.upstream {
            self.upstream.record_ms(u);
        }
        if let (Some(c), Some(u)) = (l.client, l.upstream) {
            self.overhead.record_ms((c - u).max(0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_in_percentiles_out() {
        let mut h = LatencyHist::default();
        assert!(h.percentiles().is_none());
        for ms in [1.0, 2.0, 3.0, 4.0, 100.0] {
            h.record_ms(ms);
        }
        h.record_ms(-1.0);
        h.record_ms(f64::NAN);
        let p = h.percentiles().unwrap();
        assert_eq!(p.n, 5);
        // Three significant digits: a value reads back within 0.1%.
        assert!((3.0..=3.003).contains(&p.p50), "{}", p.p50);
        assert!((100.0..=100.1).contains(&p.max), "{}", p.max);
    }
}
