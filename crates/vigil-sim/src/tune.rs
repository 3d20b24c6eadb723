//! QoS tuning: search protocol parameters in the simulator for the cheapest
//! configuration (bytes per member per second) that detects failures within
//! the targets and raises no more false failures than allowed.
//!
//! The search is a bounded grid over the parameters that trade bandwidth
//! against detection time (probe interval, suspicion multiplier, gossip
//! interval), evaluated cheapest-first by a short simulation each: the given
//! size and loss, with every failure class in it. Process exits (kernel
//! evidence) must be detected within the target; hosts going down (silence)
//! within theirs, if given; pauses as long as the one to tolerate must never
//! be failed, and a CPU-starved member must accuse no one and be failed at
//! most once by anyone. `pause_tolerance` is sized from the pause to tolerate
//! (that pause plus one protocol period: the woken member's refutation must
//! arrive in time), unless it is set. The search stops when the wall-clock
//! budget is spent, and returns the cheapest candidate that met the targets
//! (the faster on silence if two cost the same), or the fastest one if none
//! did.

use std::time::{Duration, Instant as WallInstant};

use serde::Serialize;

use crate::run::{NoProgress, run};
use crate::scenario::{Crashes, FreezeSpec, Preset, Scenario, StarveSpec, config_toml};
use crate::select::Select;
use crate::units::{Dur, Frac};

/// What to search for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TuneOptions {
    /// Median full-detection time of process exits to reach.
    pub target_detection: Duration,
    /// Median full-detection time of hosts going down (silent) to reach, if any.
    pub target_host_down: Option<Duration>,
    /// The longest pause (stop signal, GC, swap) that must never be failed:
    /// `pause_tolerance` is sized from it.
    pub tolerate_pause: Duration,
    /// Protocol overrides applied to every candidate (`--set`).
    pub overrides: Vec<(String, String)>,
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
            target_host_down: None,
            tolerate_pause: Duration::from_secs(3),
            overrides: Vec::new(),
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
    /// Measured median full detection of process exits, seconds.
    pub median_full_detection_s: Option<f64>,
    /// Crashes (exits and hosts down) not detected by everyone.
    pub undetected: usize,
    /// False failures (never-paused members) extrapolated to a day.
    pub false_failures_per_day: f64,
    /// Met the target.
    pub meets: bool,
    /// Measured median full detection of hosts going down, seconds.
    pub host_down_full_detection_s: Option<f64>,
    /// The pause tolerance of this candidate, seconds.
    pub pause_tolerance_s: f64,
    /// Pauses as long as the one to tolerate that were failed anyway.
    pub pauses_failed: usize,
    /// Healthy members the CPU-starved member declared failed.
    pub starved_accused: usize,
    /// Most times one member declared the starved member failed.
    pub starved_failed_by_one: u32,
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
    /// The chosen configuration as an agent configuration file (`vigil
    /// agent --config FILE` loads it as it is; a scenario file too).
    pub agent_config: String,
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

/// The scenario one candidate is measured with: every failure class.
fn candidate_scenario(o: &TuneOptions, overrides: &[(String, String)]) -> Scenario {
    let mut s = Scenario {
        name: "tune".to_owned(),
        seed: o.seed,
        members: o.members,
        duration: Dur(o.per_candidate),
        warmup: Dur::secs(10),
        quiet: Dur::secs(30),
        preset: o.preset,
        crashes: Some(Crashes { count: 4, restart_after: Dur::secs(20) }),
        host_downs: Some(Crashes { count: 4, restart_after: Dur::secs(20) }),
        freeze: vec![FreezeSpec {
            at: Some(Dur::secs(12)),
            duration: Dur(o.tolerate_pause),
            members: Select::Random(1),
            every: Some(Dur(o.tolerate_pause.max(Duration::from_secs(5)) * 3)),
        }],
        starve: vec![StarveSpec { duration: Dur::secs(30), ..StarveSpec::new(Some(Dur::secs(20))) }],
        joins: 0,
        updates_per_minute: 0.0,
        check_invariants: false,
        ..Scenario::default()
    };
    s.network.loss = Frac(o.loss);
    s.config = o.overrides.iter().chain(overrides).cloned().collect();
    if !s.config.contains_key("pause_tolerance") {
        // The pause to tolerate plus one protocol period: the woken member
        // must have time to hear of its suspicion and refute it.
        let period = s.protocol_config().map(|c| c.probe_interval).unwrap_or(Duration::from_secs(1));
        let tolerance = o.tolerate_pause + period;
        s.config.insert("pause_tolerance".to_owned(), Dur(tolerance).to_string());
    }
    s
}

/// Searches the grid within the options' budget.
pub fn tune_with(o: &TuneOptions) -> TuneResult {
    let start = WallInstant::now();
    let grid = grid();
    let mut tried = Vec::new();
    let mut chosen = Vec::new();
    let sim_s = o.per_candidate.as_secs_f64();
    let chaos_s = (sim_s - 40.0).max(1.0);
    for overrides in &grid {
        if start.elapsed() > o.budget {
            break;
        }
        let s = candidate_scenario(o, overrides);
        let Ok(r) = run(&s, &mut NoProgress) else { continue };
        let per_day = r.false_failures.never_paused as f64 / chaos_s * 86_400.0;
        let c = &r.by_class;
        let median = c.exit.full.median;
        let host_down = c.host_down.full.median;
        let pauses_failed = c.pause.below_tolerance_failed;
        let meets = r.detection.undetected == 0
            && median.is_some_and(|m| m <= o.target_detection.as_secs_f64())
            && o.target_host_down.is_none_or(|t| host_down.is_some_and(|m| m <= t.as_secs_f64()))
            && pauses_failed == 0
            && c.starve.accused == 0
            && c.starve.max_failed_by_one <= 1
            && per_day <= o.max_false_failures_per_day;
        chosen.push(s.config.clone());
        tried.push(Candidate {
            overrides: overrides.clone(),
            bytes_per_member_per_sec: r.traffic.bytes_per_member_per_sec_mean,
            median_full_detection_s: median,
            undetected: r.detection.undetected,
            false_failures_per_day: per_day,
            meets,
            host_down_full_detection_s: host_down,
            pause_tolerance_s: c.pause_tolerance_s,
            pauses_failed,
            starved_accused: c.starve.accused as usize,
            starved_failed_by_one: c.starve.max_failed_by_one,
        });
    }
    let slowest = |c: &Candidate| c.host_down_full_detection_s.unwrap_or(f64::MAX);
    let best = tried
        .iter()
        .enumerate()
        .filter(|(_, c)| c.meets)
        .min_by(|(_, a), (_, b)| {
            let cost = |c: &Candidate| c.bytes_per_member_per_sec.round();
            cost(a).total_cmp(&cost(b)).then(slowest(a).total_cmp(&slowest(b)))
        })
        .or_else(|| {
            tried.iter().enumerate().min_by(|(_, a), (_, b)| {
                let k = |c: &Candidate| c.median_full_detection_s.unwrap_or(f64::MAX) + slowest(c);
                k(a).total_cmp(&k(b))
            })
        })
        .map(|(i, c)| (i, c.clone()));
    let config = best.as_ref().and_then(|(i, _)| {
        let mut s = Scenario { preset: o.preset, members: o.members, ..Scenario::default() };
        s.config = chosen[*i].clone();
        s.protocol_config().ok()
    });
    let config_toml = config.as_ref().map_or_else(String::new, config_toml);
    let agent_config = config.as_ref().map_or_else(String::new, |_| {
        let preset = match o.preset {
            Preset::Lan => "lan",
            Preset::Wan => "wan",
            Preset::Local => "local",
        };
        format!("preset = \"{preset}\"\n\n[protocol]\n{config_toml}")
    });
    let best = best.map(|(_, c)| c);
    TuneResult {
        met: best.as_ref().is_some_and(|b| b.meets),
        best,
        config_toml,
        agent_config,
        untried: grid.len() - tried.len(),
        tried,
        zero_seen_bound_per_day: 3.0 / chaos_s * 86_400.0,
        wall_s: start.elapsed().as_secs_f64(),
    }
}
