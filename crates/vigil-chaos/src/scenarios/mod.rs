//! The eight scenarios of the fault-injection suite, and the five
//! benchmarks by failure class of issue 13 (9–13, in `classes`). Each
//! starts its own cluster, applies one kind of fault, checks outcomes
//! through the agents' HTTP APIs and event streams, and returns a
//! [`Report`].

mod classes;
mod crash;
mod loss;
mod partition;
mod pause;
mod restart;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::{self, Cluster, Preset};
use crate::error::{Error, Result};
use crate::events::{Event, EventLog};
use crate::report::Report;

/// Every reliability scenario (`--scenario all`).
pub const ALL: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
/// The benchmarks by failure class (`--scenario classes`): process exit,
/// host silent, pauses, CPU starvation, 30% loss. Long (1–2 minutes each):
/// not in CI.
pub const CLASSES: [u8; 5] = [9, 10, 11, 12, 13];
/// The highest scenario number.
pub const LAST: u8 = 13;
/// The scenarios CI runs (with N = 10).
pub const CI: [u8; 4] = [1, 2, 4, 7];

/// How scenarios run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Members per cluster.
    pub members: usize,
    /// Long durations (5 minutes of loss, 3 minutes of CPU hog and one-way loss).
    pub long: bool,
    /// The `vigil` binary.
    pub bin: PathBuf,
    /// Print progress on stderr.
    pub verbose: bool,
}

/// Runs scenario `id`. An `Err` means the harness could not run it (or was
/// interrupted); expectations that did not hold are in the report.
pub fn run(id: u8, opts: &Options) -> Result<Report> {
    if opts.members < 4 {
        return Err(Error::Environment(format!("scenarios need at least 4 members, got {}", opts.members)));
    }
    let t = Instant::now();
    let mut r = match id {
        1 => crash::run(opts),
        2 => pause::stop(opts),
        3 => pause::cpu_hog(opts),
        4 => partition::halves(opts),
        5 => partition::one_way(opts),
        6 => loss::everywhere(opts),
        7 => restart::rolling(opts),
        8 => restart::mass(opts),
        9 => classes::exit(opts),
        10 => classes::silent(opts),
        11 => classes::pause(opts),
        12 => classes::starve(opts),
        13 => classes::loss(opts),
        _ => Err(Error::Environment(format!("no scenario {id} (1–{LAST})"))),
    }?;
    r.wall = t.elapsed();
    Ok(r)
}

/// The preset every scenario uses: the LAN preset operators deploy (1 s
/// protocol period, suspicion 1–3 s at N ≤ 10, 1.7–5.1 s at N = 50).
pub const PRESET: Preset = Preset::Lan;

/// Time for a fresh cluster to converge.
const CONVERGE: Duration = Duration::from_secs(40);

fn progress(opts: &Options, msg: impl AsRef<str>) {
    if opts.verbose {
        eprintln!("vigil-chaos: {}", msg.as_ref());
    }
}

/// Starts a converged cluster of `opts.members` agents; `customize` may
/// adjust member specs before anything starts (CPU pinning, faults).
fn cluster(
    opts: &Options,
    customize: impl Fn(&mut vigil_agent::harness::AgentSpec),
) -> Result<(Cluster, Duration)> {
    let mut c = cluster::start_with(opts.members, PRESET, &opts.bin, customize)?;
    let t = c.wait_converged(CONVERGE).inspect_err(|_| {
        eprintln!("vigil-chaos: cluster did not converge; m0's log:\n{}", c.log_tail(0, 30));
    })?;
    progress(opts, format!("{} agents converged in {:.1} s", c.len(), t.as_secs_f64()));
    Ok((c, t))
}

/// `failed` events since `since_ms` about members not in `allowed`, as text.
fn false_failures(events: &EventLog, since_ms: u64, allowed: impl Fn(&Event) -> bool) -> Vec<String> {
    events
        .of_kind_since("failed", since_ms)
        .into_iter()
        .filter(|e| !allowed(e))
        .map(|e| format!("{} declared {} failed at {} ({})", e.by, e.member, e.time_ms, e.event))
        .collect()
}

/// How many `kind` events since `since_ms` are about `members`.
fn count(events: &EventLog, kind: &str, since_ms: u64, members: &BTreeSet<String>) -> usize {
    events.of_kind_since(kind, since_ms).iter().filter(|e| members.contains(&e.member)).count()
}

/// Full-detection time of `victim` (killed at `t0_ms`) over `observers`:
/// the latest of their first `failed` events, or the names that never sent one.
fn full_detection(
    events: &EventLog,
    observers: &[String],
    victim: &str,
    t0_ms: u64,
) -> Result<u64, Vec<String>> {
    let mut worst = 0;
    let mut missing = Vec::new();
    for o in observers {
        match events.first(o, "failed", victim, t0_ms) {
            Some(t) => worst = worst.max(t.saturating_sub(t0_ms)),
            None => missing.push(o.clone()),
        }
    }
    if missing.is_empty() { Ok(worst) } else { Err(missing) }
}

/// Waits a little for event lines to reach the log (they trail the API).
fn settle() -> Result<()> {
    crate::signal::sleep(Duration::from_millis(1500))
}
