//! Quantiles of a set of durations: a leaf, used by the report and by the
//! detection by failure class.

use serde::Serialize;

/// Median, 99th percentile and maximum of a set of durations, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Quantiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub median: Option<f64>,
    /// 99th percentile (nearest rank).
    pub p99: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

impl Quantiles {
    /// From samples in microseconds.
    pub fn of(mut us: Vec<u64>) -> Quantiles {
        us.sort_unstable();
        let n = us.len();
        let at = |q: f64| -> Option<f64> {
            if n == 0 {
                return None;
            }
            let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
            Some(us[rank - 1] as f64 / 1e6)
        };
        Quantiles { count: n, median: at(0.5), p99: at(0.99), max: us.last().map(|&v| v as f64 / 1e6) }
    }
}
