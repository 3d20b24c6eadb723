//! The modelled network: latency distributions, loss, link rules (one-way
//! loss, slower links; described by [`crate::scenario::LinkRule`], resolved
//! here), partitions, and streams.
//!
//! What is modelled, and what is not:
//! - A datagram is delivered once after a latency drawn from its link's
//!   distribution, or lost with the link's probability. No duplication; no
//!   reordering beyond what independent latencies produce.
//! - A stream (TCP) message is reliable but delayed: a new connection costs a
//!   handshake (three one-way latencies before the data arrives); a reply on
//!   the same connection costs one. Each segment is lost with the link's loss
//!   probability and then retransmitted after the RTO, doubling each time; six
//!   losses in a row fail the stream. Across a partition or a blocked link the
//!   connection fails. Bandwidth, congestion and socket buffers are not
//!   modelled (a frozen member's datagram backlog is capped, see `engine`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::ScenarioError;
use crate::units::{Dur, parse_duration};

/// Longest latency any distribution yields (heavy tails are cut here).
pub const MAX_LATENCY: Duration = Duration::from_secs(10);

/// A one-way latency distribution.
///
/// Text forms: `0.3ms` or `constant:0.3ms`; `uniform:0.1ms..0.5ms`;
/// `lognormal:0.25ms,0.4` (median, sigma of the log); `pareto:0.2ms,2.5`
/// (scale = minimum, shape; a heavy tail, cut at 10 s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Latency {
    /// Always this.
    Constant(Duration),
    /// Uniform between the two.
    Uniform(Duration, Duration),
    /// Log-normal with this median and log standard deviation.
    LogNormal {
        /// Median.
        median: Duration,
        /// Standard deviation of ln(latency).
        sigma: f64,
    },
    /// Pareto: `scale / U^(1/shape)`.
    Pareto {
        /// Minimum.
        scale: Duration,
        /// Shape (smaller: heavier tail).
        shape: f64,
    },
}

impl Latency {
    /// One draw, in microseconds.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let v = match self {
            Latency::Constant(d) => us(*d),
            Latency::Uniform(a, b) => us(*a) + (us(*b) - us(*a)) * rng.random::<f64>(),
            Latency::LogNormal { median, sigma } => {
                // Box-Muller.
                let u1 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2 = rng.random::<f64>();
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                us(*median) * (sigma * z).exp()
            }
            Latency::Pareto { scale, shape } => {
                let u = rng.random::<f64>().max(1e-12);
                us(*scale) / u.powf(1.0 / shape)
            }
        };
        (v.max(0.0) as u64).min(MAX_LATENCY.as_micros() as u64)
    }

    /// The median, for reports and bounds.
    pub fn median(&self) -> Duration {
        match self {
            Latency::Constant(d) => *d,
            Latency::Uniform(a, b) => (*a + *b) / 2,
            Latency::LogNormal { median, .. } => *median,
            Latency::Pareto { scale, shape } => scale.mul_f64(2f64.powf(1.0 / shape)),
        }
    }
}

impl FromStr for Latency {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        let bad = || ScenarioError::Value {
            field: "latency",
            value: s.to_owned(),
            reason: "like 0.3ms, uniform:0.1ms..0.5ms, lognormal:0.25ms,0.4 or pareto:0.2ms,2.5",
        };
        let (kind, rest) = s.trim().split_once(':').unwrap_or(("constant", s.trim()));
        let two = |sep: &str| rest.split_once(sep).ok_or_else(bad);
        match kind {
            "constant" => Ok(Latency::Constant(parse_duration(rest).map_err(|_| bad())?)),
            "uniform" => {
                let (a, b) = two("..")?;
                let (a, b) = (parse_duration(a).map_err(|_| bad())?, parse_duration(b).map_err(|_| bad())?);
                if a > b { Err(bad()) } else { Ok(Latency::Uniform(a, b)) }
            }
            "lognormal" => {
                let (m, sg) = two(",")?;
                let median = parse_duration(m).map_err(|_| bad())?;
                let sigma: f64 = sg.trim().parse().map_err(|_| bad())?;
                if !(0.0..=5.0).contains(&sigma) {
                    return Err(bad());
                }
                Ok(Latency::LogNormal { median, sigma })
            }
            "pareto" => {
                let (m, sh) = two(",")?;
                let scale = parse_duration(m).map_err(|_| bad())?;
                let shape: f64 = sh.trim().parse().map_err(|_| bad())?;
                if !(shape.is_finite() && shape > 0.1) {
                    return Err(bad());
                }
                Ok(Latency::Pareto { scale, shape })
            }
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for Latency {
    type Error = ScenarioError;
    fn try_from(s: String) -> Result<Self, ScenarioError> {
        s.parse()
    }
}

impl From<Latency> for String {
    fn from(l: Latency) -> String {
        l.to_string()
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| format!("{}", Dur(*d));
        match self {
            Latency::Constant(x) => write!(f, "{}", d(x)),
            Latency::Uniform(a, b) => write!(f, "uniform:{}..{}", d(a), d(b)),
            Latency::LogNormal { median, sigma } => write!(f, "lognormal:{},{sigma}", d(median)),
            Latency::Pareto { scale, shape } => write!(f, "pareto:{},{shape}", d(scale)),
        }
    }
}

/// A link rule resolved to member ids and microseconds.
#[derive(Debug, Clone)]
pub(crate) struct ActiveRule {
    pub(crate) from: std::ops::Range<usize>,
    pub(crate) to: std::ops::Range<usize>,
    pub(crate) loss: Option<f64>,
    pub(crate) latency: Option<Latency>,
    pub(crate) both_ways: bool,
    pub(crate) at: u64,
    pub(crate) until: u64,
}

impl ActiveRule {
    fn covers(&self, now: u64, a: usize, b: usize) -> bool {
        now >= self.at
            && now < self.until
            && ((self.from.contains(&a) && self.to.contains(&b))
                || (self.both_ways && self.from.contains(&b) && self.to.contains(&a)))
    }
}

/// How a packet fares on its link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Delivered after this many microseconds.
    After(u64),
    /// Lost (datagram) or failed (stream).
    Lost,
}

/// The network at run time.
#[derive(Debug)]
pub(crate) struct Net {
    pub(crate) latency: Latency,
    pub(crate) loss: f64,
    pub(crate) rto: u64,
    pub(crate) rules: Vec<ActiveRule>,
    /// Partition group of each member (0 when there is no partition).
    pub(crate) group: Vec<u16>,
    pub(crate) partitioned: bool,
    /// When the last partition healed.
    pub(crate) healed_at: Option<u64>,
    pub(crate) rng: ChaCha8Rng,
}

impl Net {
    /// `latency` and `loss` on every link (a stream segment lost costs `rto`
    /// microseconds, doubling), no link rules, no partition; its randomness
    /// is its own stream of the scenario's `seed`.
    pub(crate) fn new(latency: Latency, loss: f64, rto: u64, seed: u64) -> Net {
        Net {
            latency,
            loss,
            rto,
            rules: Vec::new(),
            group: Vec::new(),
            partitioned: false,
            healed_at: None,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x4E45_5457_4F52_4B00),
        }
    }

    /// Whether a partition is in force, or healed less than `grace` ago.
    pub(crate) fn recently_cut(&self, now: u64, grace: u64) -> bool {
        self.partitioned || self.healed_at.is_some_and(|h| now <= h.saturating_add(grace))
    }

    /// Whether `a` can reach `b` at all now (partition, fully blocked links).
    pub(crate) fn connected(&self, now: u64, a: usize, b: usize) -> bool {
        if self.partitioned && self.group.get(a) != self.group.get(b) {
            return false;
        }
        !self.rules.iter().any(|r| r.loss == Some(1.0) && r.covers(now, a, b))
    }

    fn link(&self, now: u64, a: usize, b: usize) -> (f64, &Latency) {
        let mut loss = self.loss;
        let mut lat = &self.latency;
        for r in &self.rules {
            if r.covers(now, a, b) {
                if let Some(l) = r.loss {
                    loss = l;
                }
                if let Some(l) = &r.latency {
                    lat = l;
                }
            }
        }
        (loss, lat)
    }

    /// One datagram from `a` to `b`.
    pub(crate) fn datagram(&mut self, now: u64, a: usize, b: usize) -> Fate {
        if self.partitioned && self.group.get(a) != self.group.get(b) {
            return Fate::Lost;
        }
        let (loss, lat) = self.link(now, a, b);
        let lat = lat.clone();
        if loss > 0.0 && self.rng.random::<f64>() < loss {
            return Fate::Lost;
        }
        Fate::After(lat.sample(&mut self.rng))
    }

    /// One stream message from `a` to `b`: `legs` one-way trips (3 for a new
    /// connection, 1 for a reply), each segment retransmitted after loss.
    pub(crate) fn stream(&mut self, now: u64, a: usize, b: usize, legs: u32) -> Fate {
        if !self.connected(now, a, b) {
            return Fate::Lost;
        }
        let (loss_ab, lat_ab) = self.link(now, a, b);
        let (loss_ba, lat_ba) = self.link(now, b, a);
        let (lat_ab, lat_ba) = (lat_ab.clone(), lat_ba.clone());
        let mut total = 0u64;
        for leg in 0..legs {
            // Legs alternate direction: a->b, b->a, a->b.
            let (loss, lat) = if leg % 2 == 0 { (loss_ab, &lat_ab) } else { (loss_ba, &lat_ba) };
            let mut rto = self.rto;
            let mut losses = 0;
            while loss > 0.0 && self.rng.random::<f64>() < loss {
                losses += 1;
                if losses >= 6 {
                    return Fate::Lost;
                }
                total += rto;
                rto *= 2;
            }
            total += lat.sample(&mut self.rng);
        }
        Fate::After(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_forms_parse_and_print_back() {
        for s in ["300us", "uniform:100us..500us", "lognormal:250us,0.4", "pareto:200us,2.5"] {
            let l: Latency = s.parse().unwrap();
            assert_eq!(l.to_string(), s);
        }
        assert!("gauss:1ms".parse::<Latency>().is_err());
    }

    #[test]
    fn samples_stay_within_their_distribution() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let u = Latency::Uniform(Duration::from_micros(100), Duration::from_micros(200));
        let p = Latency::Pareto { scale: Duration::from_micros(100), shape: 1.5 };
        for _ in 0..1000 {
            assert!((100..=200).contains(&u.sample(&mut rng)));
            assert!(p.sample(&mut rng) >= 100);
        }
        let l = Latency::LogNormal { median: Duration::from_micros(1000), sigma: 0.5 };
        let mut v: Vec<u64> = (0..2001).map(|_| l.sample(&mut rng)).collect();
        v.sort_unstable();
        assert!((850..1150).contains(&v[1000]), "median {}", v[1000]);
    }
}
