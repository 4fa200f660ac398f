//! Latency samples and error tallies, merged across connection tasks.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Microseconds since the Unix epoch: the timestamp carried in payloads, so that a
/// delivery can be timed by whichever task (or process on this host) receives it.
pub fn epoch_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// Latency samples in microseconds. Exact percentiles from sorted samples: a run
/// keeps at most some tens of millions of u32, which is cheap next to its sockets.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u32>);

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Latencies {
    /// Adds a sample.
    pub fn push(&mut self, d: Duration) {
        self.push_micros(d.as_micros() as u64);
    }

    /// Adds a sample given in microseconds (saturating at ~71 minutes).
    pub fn push_micros(&mut self, us: u64) {
        self.0.push(u32::try_from(us).unwrap_or(u32::MAX));
    }

    /// Takes another task's samples.
    pub fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentiles; all zero without samples.
    pub fn summary(mut self) -> Summary {
        let n = self.0.len();
        if n == 0 {
            return Summary {
                count: 0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        self.0.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let rank = |p: f64| {
            let r = (p / 100.0 * n as f64).ceil() as usize;
            ms(self.0[r.clamp(1, n) - 1])
        };
        let sum: u64 = self.0.iter().map(|&v| u64::from(v)).sum();
        Summary {
            count: n,
            p50_ms: rank(50.0),
            p90_ms: rank(90.0),
            p99_ms: rank(99.0),
            max_ms: ms(self.0[n - 1]),
            mean_ms: sum as f64 / n as f64 / 1000.0,
        }
    }
}

/// Failures by label.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Errors(BTreeMap<String, u64>);

impl Errors {
    /// Counts one failure.
    pub fn add(&mut self, label: impl Into<String>) {
        *self.0.entry(label.into()).or_default() += 1;
    }

    /// Takes another task's failures.
    pub fn merge(&mut self, other: Errors) {
        for (k, v) in other.0 {
            *self.0.entry(k).or_default() += v;
        }
    }

    /// Total failures.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        for us in (1..=100).rev() {
            l.push_micros(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p90_ms, 90.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(Latencies::default().summary().count, 0);
    }

    #[test]
    fn errors_merge() {
        let mut a = Errors::default();
        a.add("x");
        let mut b = Errors::default();
        b.add("x");
        b.add("y");
        a.merge(b);
        assert_eq!(a.total(), 3);
        assert_eq!(serde_json::to_value(&a).ok(), Some(serde_json::json!({"x": 2, "y": 1})));
    }
}
