//! The detection experiment on a driven [`Cluster`]: stop members one at a
//! time (a process exit, or a host going down) and time how long until every
//! other live member declares each of them failed; count the false failures
//! and suspicions on the way. The `detection` example prints it; a test
//! holds it to its figures.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use vigil_proto::{Config, EventKind, Instant};

use crate::cluster::Cluster;
use crate::engine::Seen;
use crate::ids::member_name;

/// How the members of a [`detection_run_with`] stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The process exits, its host stays up ([`Cluster::crash`]): kernel evidence.
    ProcessExit,
    /// The host goes down ([`Cluster::host_down`]): silence only.
    HostDown,
}

/// Figures of one [`detection_run`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DetectionFigures {
    /// Cluster size.
    pub members: usize,
    /// Datagram loss.
    pub loss: f64,
    /// Time to the first `failed` event about each crash, sorted.
    pub first: Vec<Duration>,
    /// Time to the last live member's `failed` event about each crash, sorted.
    pub full: Vec<Duration>,
    /// Crashes not detected by every live member in time.
    pub undetected: usize,
    /// `failed` events about members that were up.
    pub false_failures: usize,
    /// `suspected` events about members that were up.
    pub false_suspicions: usize,
    /// Payload bytes sent per member per second over the measured part.
    pub bytes_per_member_per_sec: f64,
    /// Packets a member refused as malformed (members send none).
    pub decode_errors: u64,
    /// Invariants of the simulator broken during the run.
    pub violations: usize,
}

/// The middle of a sorted list (zero when empty).
pub fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn down_at(downs: &[(String, Instant, Instant)], s: &Seen) -> bool {
    downs.iter().any(|(who, from, to)| who == s.event.member.name.as_str() && s.at >= *from && s.at <= *to)
}

/// `n` members with `config` join and converge without loss; then, with
/// datagram loss `loss`, `crashes` times a random member's process exits,
/// must be declared failed by every live member within `gap`, then restarts
/// (same name, its incarnation forgotten) and rejoins for 10 s.
///
/// # Panics
/// If the members do not converge within 60 s before the first crash.
pub fn detection_run(
    n: usize,
    config: Config,
    loss: f64,
    crashes: usize,
    gap: Duration,
    seed: u64,
) -> DetectionFigures {
    detection_run_with(Failure::ProcessExit, n, config, loss, crashes, gap, seed)
}

/// [`detection_run`], with members that stop as `failure` says.
///
/// # Panics
/// If the members do not converge within 60 s before the first crash.
pub fn detection_run_with(
    failure: Failure,
    n: usize,
    config: Config,
    loss: f64,
    crashes: usize,
    gap: Duration,
    seed: u64,
) -> DetectionFigures {
    let mut c = Cluster::joined(n, config, seed, Duration::from_secs(5));
    assert!(
        c.run_until_true(Duration::from_secs(60), Duration::from_millis(500), Cluster::converged),
        "seed {seed}: {n} members did not converge"
    );
    c.set_loss(loss);
    c.run_for(Duration::from_secs(10));
    let start_events = c.events().len();
    let start_time = c.now();
    let start_bytes = c.bytes_sent();
    // (member, crashed at, restarted at): events about it in between are true.
    let mut downs: Vec<(String, Instant, Instant)> = Vec::new();
    let (mut first, mut full, mut undetected) = (Vec::new(), Vec::new(), 0);
    let mut pick = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
    for _ in 0..crashes {
        let victim = pick.random_range(0..n);
        let at = c.now();
        let mark = c.events().len();
        match failure {
            Failure::ProcessExit => c.crash(victim),
            Failure::HostDown => c.host_down(victim),
        }
        downs.push((member_name(victim), at, at + gap));
        c.run_for(gap);
        let vname = member_name(victim);
        let mut by_observer: BTreeMap<usize, Instant> = BTreeMap::new();
        for s in &c.events()[mark..] {
            if s.event.kind == EventKind::Failed && s.event.member.name.as_str() == vname {
                by_observer.entry(s.observer).or_insert(s.at);
            }
        }
        let live = c.up();
        if live.iter().all(|o| by_observer.contains_key(o)) {
            let times: Vec<Duration> = live.iter().map(|o| by_observer[o] - at).collect();
            first.push(times.iter().copied().min().unwrap_or_default());
            full.push(times.iter().copied().max().unwrap_or_default());
        } else {
            undetected += 1;
        }
        // The crashed process comes back (same name, no memory of its
        // incarnation) so that every crash hits a cluster of `n`.
        let seed_member = if victim == 0 { 1 } else { 0 };
        c.restart(victim, 1, &[seed_member]);
        c.run_for(Duration::from_secs(10));
    }
    first.sort();
    full.sort();
    let evs = &c.events()[start_events..];
    let wrongly =
        |kind: EventKind| evs.iter().filter(|s| s.event.kind == kind && !down_at(&downs, s)).count();
    let secs = (c.now() - start_time).as_secs_f64();
    DetectionFigures {
        members: n,
        loss,
        first,
        full,
        undetected,
        false_failures: wrongly(EventKind::Failed),
        false_suspicions: wrongly(EventKind::Suspected),
        bytes_per_member_per_sec: (c.bytes_sent() - start_bytes) as f64 / n as f64 / secs,
        decode_errors: c.decode_errors(),
        violations: c.violations().len(),
    }
}
