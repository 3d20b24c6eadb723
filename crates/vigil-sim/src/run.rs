//! Running a scenario: build the members, schedule the faults, run the
//! engine, check the invariants, and measure.

use std::time::Duration;

use crate::engine::{Engine, Ev};
use crate::error::ScenarioError;
use crate::faults::{self, Action};
use crate::net::{ActiveRule, Net};
use crate::report::{self, Memory, Report};
use crate::scenario::{Scenario, Start};

/// Told how far a run has come (simulated time).
pub trait Progress {
    /// `done` of `total` simulated seconds.
    fn update(&mut self, done: f64, total: f64);
    /// The run ended.
    fn finish(&mut self) {}
}

/// No progress output.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&mut self, _: f64, _: f64) {}
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
#[derive(Debug)]
pub struct BarProgress(indicatif::ProgressBar);

impl BarProgress {
    /// A bar labelled `label`.
    pub fn new(label: &str) -> Self {
        let bar =
            indicatif::ProgressBar::with_draw_target(Some(1000), indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {msg}")
        {
            bar.set_style(style);
        }
        bar.set_prefix(label.to_owned());
        BarProgress(bar)
    }
}

impl Progress for BarProgress {
    fn update(&mut self, done: f64, total: f64) {
        self.0.set_position(((done / total.max(1e-9)) * 1000.0) as u64);
        self.0.set_message(format!("{done:.0}/{total:.0} simulated s"));
    }
    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}

/// Resident memory of this process, bytes (Linux `/proc/self/statm`; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Estimated bytes per membership-table entry that a member holds alone
/// (measured: see docs/BENCHMARKS.md), used to refuse runs that cannot fit in
/// memory. A member that joined holds its own table; members started
/// converged share one table until their views diverge.
pub const BYTES_PER_ENTRY_ESTIMATE: u64 = 200;

/// Estimated bytes per member started converged (its copy of the shared
/// table, the entries it changed, its peer measurements, timers and
/// queues): measured 23 KiB at 10 000 members and 37-38 KiB at 100 000 with 10
/// crashes over 5 simulated minutes (peak RSS over members, 2026-11-28),
/// with a margin.
pub const BYTES_PER_CONVERGED_MEMBER: u64 = 48 << 10;

/// Memory a run needs, estimated: `joined` members that build their own
/// table of up to `total` entries, the rest sharing one.
fn memory_estimate(start: Start, n: u64, total: u64) -> u64 {
    let joined = if start == Start::Join { total } else { total - n };
    let shared = total - joined;
    joined * total * BYTES_PER_ENTRY_ESTIMATE
        + shared * BYTES_PER_CONVERGED_MEMBER
        // Each later member is one more overlay entry in every shared table.
        + shared * joined * 2 * 64
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Runs `scenario` to the end and measures it.
pub fn run(scenario: &Scenario, progress: &mut dyn Progress) -> Result<Report, ScenarioError> {
    scenario.validate()?;
    let n = scenario.members;
    let extra = scenario.joins
        + scenario
            .churn
            .as_ref()
            .map_or(0, |c| (c.joins_per_sec * scenario.duration.0.as_secs_f64()) as usize);
    let total = (n + extra) as u64;
    let need = memory_estimate(scenario.start, n as u64, total);
    if let Some(avail) = available_bytes()
        && need > avail * 9 / 10
    {
        return Err(ScenarioError::TooLarge { members: n, need_mib: need >> 20, avail_mib: avail >> 20 });
    }
    let config = scenario.protocol_config()?;
    let wall = std::time::Instant::now();
    let quiet_start = us(scenario.quiet_start());
    let end = us(scenario.duration.0);
    let rules = scenario
        .network
        .links
        .iter()
        .map(|r| ActiveRule {
            from: r.from.ids(n),
            to: r.to.ids(n),
            loss: r.loss.map(|f| f.0),
            latency: r.latency.clone(),
            both_ways: r.both_ways,
            at: r.at.map_or(0, |d| us(d.0)),
            until: r.until.map_or(quiet_start, |d| us(d.0)),
        })
        .collect();
    let mut net = Net::new(
        scenario.latency(),
        scenario.network.loss.0,
        us(scenario.network.stream_rto.0),
        scenario.seed,
    );
    net.rules = rules;
    let mut eng = Engine::new(config.clone(), scenario.seed, net, us(scenario.chaos_start()), scenario.trace);
    eng.check_invariants = scenario.check_invariants;
    let rss_before = rss_bytes();
    for _ in 0..n {
        eng.add_slot();
    }
    if scenario.start == Start::Join {
        eng.start(0, 1);
    }

    let mut actions: Vec<Option<Action>> = Vec::new();
    for (at, a) in faults::schedule(scenario, &mut eng) {
        eng.push(at, Ev::Action(actions.len() as u32));
        actions.push(Some(a));
    }
    let mut t = quiet_start;
    while t <= end {
        eng.push(t, Ev::Check);
        t += 1_000_000;
    }
    let mut counter = 0u64;
    let rss_started;
    let mut pending: Vec<(u64, Action)> = Vec::new();
    let total_s = end as f64 / 1e6;
    {
        let mut on_action = |e: &mut Engine, i: u32| {
            if let Some(a) = actions.get_mut(i as usize).and_then(Option::take) {
                pending.extend(faults::apply(e, a, n, &mut counter));
            }
            for (at, a) in pending.drain(..) {
                e.push(at, Ev::Action(actions.len() as u32));
                actions.push(Some(a));
            }
        };
        let mut on_check = |e: &mut Engine| {
            if e.quiet_alive.held_at.is_some() && e.converge.held_at.is_some() {
                return;
            }
            let (views, truth) = e.digests();
            let now = e.now;
            e.quiet_alive.check(now, &views, truth);
            e.converge.check(now, &views);
        };
        let mut on_progress = |now: u64| progress.update(now as f64 / 1e6, total_s);
        // Up to the warm start, then the rest.
        let started = us(config.probe_interval);
        eng.run_until(started, &mut on_action, &mut on_check, &mut on_progress);
        rss_started = rss_bytes();
        eng.run_until(end, &mut on_action, &mut on_check, &mut on_progress);
    }
    progress.finish();

    // Close what is still open.
    let lives = eng.up_lives();
    let open: Vec<u32> = eng.obs.crashes.iter().filter(|c| c.result.is_none()).map(|c| c.member).collect();
    for m in open {
        eng.obs.close_crash(m, &lives);
    }
    for m in 0..eng.slots.len() {
        let now = eng.now;
        eng.obs.member_down(now, m);
    }
    if scenario.check_invariants {
        let now = eng.now;
        // The example scans every view (n² lookups): only when it is needed.
        let example =
            if eng.quiet_alive.held_at.is_none() { eng.wrong_view_example() } else { String::new() };
        let v = eng.quiet_alive.finish(now, || example);
        eng.violation(v);
        let v = eng.converge.finish(now);
        eng.violation(v);
    }
    let rss_end = rss_bytes();

    let fanout = config.gossip_fanout as f64;
    let nf = n as f64;
    let hops = (nf.max(2.0).ln() / (fanout + 1.0).ln()).ceil();
    let e = std::f64::consts::E;
    let (smin, _) = config.suspicion_bounds(n);
    let bound_first = e / (e - 1.0) * config.probe_interval.as_secs_f64()
        + config.probe_timeout_min.as_secs_f64()
        + smin.as_secs_f64();
    let median_latency = scenario.latency().median().as_secs_f64();
    let bound_full = bound_first + hops * median_latency;
    let bound_dissemination = hops * config.gossip_interval.as_secs_f64();

    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let quiet_converged = match (eng.quiet_alive.held_at, eng.converge.held_at) {
        (Some(a), Some(b)) => Some((a.max(b) - quiet_start) as f64 / 1e6),
        _ => None,
    };
    let mut report = Report {
        scenario: scenario.name.clone(),
        seed: scenario.seed,
        members: n,
        members_total: eng.slots.len(),
        simulated_s: end as f64 / 1e6,
        wall_s: wall.elapsed().as_secs_f64(),
        events_processed: eng.processed,
        loss: scenario.network.loss.0,
        latency: scenario.latency().to_string(),
        config: crate::scenario::config_toml(&config),
        detection: report::detection(&eng.obs, bound_first, bound_full),
        by_class: crate::by_class::by_class(&eng.obs),
        false_failures: report::false_failures(&eng.obs),
        traffic: report::traffic(&eng.obs),
        joins: report::joins(&eng.obs),
        dissemination: report::dissemination(&eng.obs, bound_dissemination),
        memory: Memory {
            rss_before_mib: mib(rss_before),
            rss_started_mib: mib(rss_started),
            rss_end_mib: mib(rss_end),
            bytes_per_member: rss_end.saturating_sub(rss_before) as f64 / nf,
        },
        decode_errors: eng.obs.decode_errors,
        quiet_converged_after_s: quiet_converged,
        violations: std::mem::take(&mut eng.violations),
        violation_count: eng.violation_count,
        repro: None,
        trace_digest: format!("{:016x}", eng.trace_hash),
        trace: eng.trace.take(),
    };
    if !report.passed() {
        report.repro = Some(repro_command(scenario, None));
    }
    Ok(report)
}

/// A one-line command that replays `scenario`. Without a file it came from,
/// the scenario is written to a file in the temporary directory first.
pub fn repro_command(scenario: &Scenario, file: Option<&std::path::Path>) -> String {
    let path = match file {
        Some(p) => p.to_path_buf(),
        None => {
            let p = std::env::temp_dir().join(format!(
                "vigil-sim-{}-seed{}.toml",
                sanitize(&scenario.name),
                scenario.seed
            ));
            let _ = std::fs::write(&p, scenario.to_toml());
            p
        }
    };
    format!("cargo run --release -p vigil-sim -- --scenario {} --seed {}", path.display(), scenario.seed)
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converged_members_share_a_table_and_joiners_do_not() {
        // 10 000 converged members fit in a couple of GiB; the same number
        // joining one by one each build a table of 10 000 entries.
        let shared = memory_estimate(Start::Converged, 10_000, 10_002);
        assert!(shared < 2 << 30, "{shared}");
        let joined = memory_estimate(Start::Join, 10_000, 10_000);
        assert_eq!(joined, 10_000 * 10_000 * BYTES_PER_ENTRY_ESTIMATE);
        // 100 000 members measured 3.53 GiB peak: the estimate allows it
        // on a machine with 8 GiB free.
        let large = memory_estimate(Start::Converged, 100_000, 100_002);
        assert!(large > 7 << 29 && large < 6 << 30, "{large}");
    }
}
