//! QoS tuning: search protocol parameters in the simulator for the cheapest
//! configuration (bytes per member per second) that detects crashes within a
//! target and raises no more false failures than allowed.
//!
//! The search is a bounded grid over the parameters that trade bandwidth
//! against detection time (probe interval, suspicion multiplier, gossip
//! interval), evaluated cheapest-first by a short simulation each: the given
//! size and loss, crash-and-restarts spread over the run. It stops when the
//! wall-clock budget is spent, and returns the cheapest candidate that met the
//! target, or the fastest one if none did.

use std::time::{Duration, Instant as WallInstant};

use serde::Serialize;

use crate::run::{NoProgress, run};
use crate::scenario::{Crashes, Preset, Scenario, config_toml};
use crate::units::{Dur, Frac};

/// What to search for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TuneOptions {
    /// Median full-detection time to reach.
    pub target_detection: Duration,
    /// Most false failures per day (extrapolated).
    pub max_false_failures_per_day: f64,
    /// Datagram loss.
    pub loss: f64,
    /// Cluster size.
    pub members: usize,
    /// Seed.
    pub seed: u64,
    /// Preset to start from.
    pub preset: Preset,
    /// Wall-clock budget.
    pub budget: Duration,
    /// Simulated time per candidate.
    pub per_candidate: Duration,
}

impl TuneOptions {
    /// Defaults: seed 1, `lan`, 3 minutes of wall clock, 120 s simulated per candidate.
    pub fn new(
        target_detection: Duration,
        max_false_failures_per_day: f64,
        loss: f64,
        members: usize,
    ) -> Self {
        TuneOptions {
            target_detection,
            max_false_failures_per_day,
            loss,
            members,
            seed: 1,
            preset: Preset::Lan,
            budget: Duration::from_secs(180),
            per_candidate: Duration::from_secs(120),
        }
    }
}

/// One configuration tried.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// Overrides applied to the preset.
    pub overrides: Vec<(String, String)>,
    /// Measured bytes per member per second (mean).
    pub bytes_per_member_per_sec: f64,
    /// Measured median full detection, seconds.
    pub median_full_detection_s: Option<f64>,
    /// Crashes not detected by everyone.
    pub undetected: usize,
    /// False failures (never-paused members) extrapolated to a day.
    pub false_failures_per_day: f64,
    /// Met the target.
    pub meets: bool,
}

/// The outcome of a search.
#[derive(Debug, Clone, Serialize)]
pub struct TuneResult {
    /// Whether some candidate met the target.
    pub met: bool,
    /// The chosen candidate: the cheapest that met the target, else the fastest.
    pub best: Option<Candidate>,
    /// The chosen configuration as a TOML snippet (the protocol fields).
    pub config_toml: String,
    /// Every candidate tried, in order.
    pub tried: Vec<Candidate>,
    /// Candidates left untried when the budget ran out.
    pub untried: usize,
    /// Upper 95% bound on false failures per day when none were seen
    /// (rule of three over the simulated time of one candidate).
    pub zero_seen_bound_per_day: f64,
    /// Wall-clock seconds spent.
    pub wall_s: f64,
}

/// Searches with default options (see [`TuneOptions::new`]).
pub fn tune(
    target_detection: Duration,
    max_false_failures_per_day: f64,
    loss: f64,
    members: usize,
) -> TuneResult {
    tune_with(&TuneOptions::new(target_detection, max_false_failures_per_day, loss, members))
}

/// The grid, cheapest (longest periods) first.
fn grid() -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for probe in ["3s", "2s", "1.5s", "1s", "750ms", "500ms"] {
        for susp in ["2.0", "1.0", "0.5"] {
            for gossip in ["500ms", "200ms"] {
                out.push(vec![
                    ("probe_interval".to_owned(), probe.to_owned()),
                    ("suspicion_min_mult".to_owned(), susp.to_owned()),
                    ("gossip_interval".to_owned(), gossip.to_owned()),
                ]);
            }
        }
    }
    out
}

/// Searches the grid within the options' budget.
pub fn tune_with(o: &TuneOptions) -> TuneResult {
    let start = WallInstant::now();
    let grid = grid();
    let mut tried = Vec::new();
    let sim_s = o.per_candidate.as_secs_f64();
    let chaos_s = (sim_s - 40.0).max(1.0);
    for overrides in &grid {
        if start.elapsed() > o.budget {
            break;
        }
        let mut s = Scenario {
            name: "tune".to_owned(),
            seed: o.seed,
            members: o.members,
            duration: Dur(o.per_candidate),
            warmup: Dur::secs(10),
            quiet: Dur::secs(30),
            preset: o.preset,
            crashes: Some(Crashes { count: 8, restart_after: Dur::secs(20) }),
            joins: 0,
            updates_per_minute: 0.0,
            check_invariants: false,
            ..Scenario::default()
        };
        s.network.loss = Frac(o.loss);
        s.config = overrides.iter().cloned().collect();
        let Ok(r) = run(&s, &mut NoProgress) else { continue };
        let per_day = r.false_failures.never_paused as f64 / chaos_s * 86_400.0;
        let median = r.detection.full.median;
        let meets = r.detection.undetected == 0
            && median.is_some_and(|m| m <= o.target_detection.as_secs_f64())
            && per_day <= o.max_false_failures_per_day;
        tried.push(Candidate {
            overrides: overrides.clone(),
            bytes_per_member_per_sec: r.traffic.bytes_per_member_per_sec_mean,
            median_full_detection_s: median,
            undetected: r.detection.undetected,
            false_failures_per_day: per_day,
            meets,
        });
    }
    let best = tried
        .iter()
        .filter(|c| c.meets)
        .min_by(|a, b| a.bytes_per_member_per_sec.total_cmp(&b.bytes_per_member_per_sec))
        .or_else(|| {
            tried.iter().min_by(|a, b| {
                let k = |c: &Candidate| c.median_full_detection_s.unwrap_or(f64::MAX);
                k(a).total_cmp(&k(b))
            })
        })
        .cloned();
    let config_toml = best.as_ref().map_or_else(String::new, |b| {
        let mut s = Scenario { preset: o.preset, members: o.members, ..Scenario::default() };
        s.config = b.overrides.iter().cloned().collect();
        s.protocol_config().map(|c| config_toml(&c)).unwrap_or_default()
    });
    TuneResult {
        met: best.as_ref().is_some_and(|b| b.meets),
        best,
        config_toml,
        untried: grid.len() - tried.len(),
        tried,
        zero_seen_bound_per_day: 3.0 / chaos_s * 86_400.0,
        wall_s: start.elapsed().as_secs_f64(),
    }
}
