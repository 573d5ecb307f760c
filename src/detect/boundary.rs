//! Idle timeout boundaries: the ones the user stated (`--timeout`), those
//! of well-known products, and those learned from the capture (several
//! sessions cut after the same silence). Shared by the detectors that
//! judge how sessions end.

/// Idle timeouts of well-known products, seconds, and who uses them.
pub const KNOWN_BOUNDARIES: &[(f64, &str)] = &[
    (30.0, "a common proxy/load-balancer idle timeout (HAProxy examples use 30 s)"),
    (55.0, "Heroku's 55 s idle window"),
    (60.0, "nginx proxy_read_timeout default, AWS ALB idle timeout default"),
    (90.0, "a common load-balancer idle timeout"),
    (100.0, "Cloudflare's 100 s idle timeout"),
    (240.0, "Azure Load Balancer's 4 min default"),
    (270.0, "a common load-balancer idle timeout"),
    (300.0, "Envoy's 5 min stream idle default"),
    (400.0, "a common load-balancer idle timeout"),
    (3600.0, "a common 1 h maximum"),
];

/// Timer granularity and scheduling slack allowed around a boundary.
pub fn tolerance(b: f64) -> f64 {
    (0.03 * b).max(1.0)
}

/// A heartbeat interval at or just under a boundary races it.
pub fn races(interval: f64, b: f64) -> bool {
    interval >= 0.85 * b && interval <= b + tolerance(b)
}

/// Where a boundary comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// `--timeout`.
    Configured,
    /// A product default ([`KNOWN_BOUNDARIES`]).
    Known,
    /// Learned from other sessions in this capture.
    Learned,
    /// Seen once: the proxy closed both legs together after this silence.
    Observed,
}

impl Source {
    /// The source a finding's `boundary_source` names.
    pub fn from_name(name: &str) -> Option<Source> {
        [Source::Configured, Source::Known, Source::Learned, Source::Observed].into_iter().find(|s| s.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::Configured => "configured",
            Source::Known => "known",
            Source::Learned => "learned",
            Source::Observed => "observed",
        }
    }
}

/// The idle boundary sessions are expected to hit, as the findings name
/// it: the smallest one stated (`--timeout`), else the one learned from
/// the capture, taken as the product default it is within tolerance of
/// (a cut learned at 59.9 s is nginx's 60 s `proxy_read_timeout`, as the
/// idle-timeout finding says).
pub fn expected(configured: &[f64], learned: Option<f64>) -> Option<(f64, Source)> {
    if let Some(b) = configured.iter().copied().reduce(f64::min) {
        return Some((b, Source::Configured));
    }
    let b = learned?;
    let known = KNOWN_BOUNDARIES.iter().map(|k| k.0).find(|k| (b - k).abs() <= tolerance(*k));
    Some(known.map_or((b, Source::Learned), |k| (k, Source::Known)))
}

/// A boundary in the words findings use: "60 s boundary" (whole seconds
/// for stated and known ones, tenths for learned and observed ones).
pub fn words(b: f64, src: Source) -> String {
    match src {
        Source::Configured | Source::Known => format!("{b:.0} s boundary"),
        Source::Learned | Source::Observed => format!("{b:.1} s boundary"),
    }
}

/// The boundaries stated and learned so far.
#[derive(Debug, Clone, Default)]
pub struct Boundaries {
    pub configured: Vec<f64>,
    learned: Vec<f64>,
}

impl Boundaries {
    pub fn new(configured: Vec<f64>) -> Boundaries {
        Boundaries { configured, learned: Vec::new() }
    }

    /// The smallest boundary learned from the capture, if any.
    pub fn learned(&self) -> Option<f64> {
        self.learned.iter().copied().reduce(f64::min)
    }

    /// The boundaries learned, in the order they were.
    pub fn all_learned(&self) -> &[f64] {
        &self.learned
    }

    /// Remembers a boundary (to a tenth of a second), once.
    pub fn learn(&mut self, b: f64) {
        let b = (b * 10.0).round() / 10.0;
        if !self.learned.iter().any(|&x| (x - b).abs() <= tolerance(b)) {
            self.learned.push(b);
        }
    }

    /// The boundary a silence of `idle` seconds ends at: one the user
    /// stated, else a known product default, else one learned from this
    /// capture; the closest within tolerance at the first level that has
    /// one.
    pub fn matching(&self, idle: f64) -> Option<(f64, Source)> {
        let closest = |cands: &mut dyn Iterator<Item = f64>| {
            cands
                .filter(|b| (idle - b).abs() <= tolerance(*b))
                .min_by(|a, b| (idle - a).abs().total_cmp(&(idle - b).abs()))
        };
        closest(&mut self.configured.iter().copied())
            .map(|b| (b, Source::Configured))
            .or_else(|| closest(&mut KNOWN_BOUNDARIES.iter().map(|k| k.0)).map(|b| (b, Source::Known)))
            .or_else(|| closest(&mut self.learned.iter().copied()).map(|b| (b, Source::Learned)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_boundary_is_named_as_findings_name_it() {
        assert_eq!(expected(&[75.0, 58.0], Some(59.9)), Some((58.0, Source::Configured)));
        assert_eq!(expected(&[], Some(59.9)), Some((60.0, Source::Known)));
        assert_eq!(expected(&[], Some(42.0)), Some((42.0, Source::Learned)));
        assert_eq!(expected(&[], None), None);
        assert_eq!(words(60.0, Source::Known), "60 s boundary");
        assert_eq!(words(42.04, Source::Learned), "42.0 s boundary");
    }

    #[test]
    fn stated_before_known_before_learned() {
        let mut b = Boundaries::new(vec![58.0]);
        assert_eq!(b.matching(59.0), Some((58.0, Source::Configured)));
        assert_eq!(b.matching(30.5), Some((30.0, Source::Known)));
        assert_eq!(b.matching(42.0), None);
        b.learn(41.96);
        assert_eq!(b.matching(42.5), Some((42.0, Source::Learned)));
        b.learn(42.3);
        assert_eq!(b.all_learned(), &[42.0], "within tolerance of one already learned");
        assert_eq!(b.learned(), Some(42.0));
    }

    #[test]
    fn heartbeats_race_a_boundary_from_just_under_it() {
        assert!(races(55.0, 60.0));
        assert!(races(60.5, 60.0));
        assert!(!races(30.0, 60.0));
        assert!(!races(62.0, 60.0));
    }
}
