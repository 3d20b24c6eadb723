//! Scenarios 9–13: the real-process benchmark by failure class of issue 13
//! (item 6). Each measures one class against the target, which is
//! its expectation:
//!
//! | # | class | fault | target |
//! | --- | --- | --- | --- |
//! | 9 | process exit | SIGKILL, several members one at a time | full detection median ≤ 0.5 s |
//! | 10 | host silent | nftables in its namespace drop every packet in and out | full detection ≤ pause tolerance (5 s) + 1.5 s |
//! | 11 | pause | SIGSTOP 3 s; SIGSTOP 10 s | 3 s: never failed; 10 s: failed by all, back ≤ 1 s, nobody else accused |
//! | 12 | CPU starvation | cgroup quota 1 ms per 1 s for 60 s | 0 healthy members failed; the starved one failed at most once |
//! | 13 | 30% loss | nftables numgen on every member, 60 s, crashes in it | 0 false failures; crash detection ≤ 1.5× lossless |
//!
//! Detection is read from the agents' own event timestamps (`time_ms`), not
//! from API polls: *full detection* is the fault to the last observer's
//! first `failed` event, *first detection* to the first observer's.

mod exit;
mod loss;
mod pause;
mod silent;
mod starve;

use std::time::Duration;

pub(super) use exit::run as exit;
pub(super) use loss::run as loss;
pub(super) use pause::run as pause;
pub(super) use silent::run as silent;
pub(super) use starve::run as starve;

use crate::cluster::Cluster;
use crate::error::Result;
use crate::events::{Event, EventLog};
use crate::report::{Report, median_max};

/// The pause tolerance of the `lan` preset the scenarios run.
const PAUSE_TOLERANCE: Duration = Duration::from_secs(5);
/// Quiet time between two faults, for gossip and suspicions to settle.
const QUIET: Duration = Duration::from_secs(3);

/// Seconds with two decimals, from milliseconds.
fn s2(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// Reports the median of `ms` as `label` and its max as "max" (both in
/// seconds); returns them, none when `ms` is empty.
fn median_and_max(r: &mut Report, label: &str, ms: &[u64]) -> Option<(u64, u64)> {
    let (median, max) = median_max(ms)?;
    r.figure(label, s2(median));
    r.figure("max", s2(max));
    Some((median, max))
}

/// Up to `k` members to fault, spread over the cluster and never one of
/// the three seeds: n−1, n−4, n−7, …
fn victims(n: usize, k: usize) -> Vec<usize> {
    (3..n).rev().step_by(3).take(k).collect()
}

/// Waits (at most `within`, checking for Ctrl-C) until `done` holds over
/// the events from position `from` on. True if it held.
fn wait_events(
    events: &EventLog,
    from: usize,
    within: Duration,
    mut done: impl FnMut(&[Event]) -> bool,
) -> Result<bool> {
    let end = std::time::Instant::now() + within;
    loop {
        crate::signal::check()?;
        let left = end.saturating_duration_since(std::time::Instant::now());
        let step = left.min(Duration::from_millis(250));
        if events.wait_for(from, step, &mut done).is_ok() {
            return Ok(true);
        }
        if left.is_zero() {
            return Ok(false);
        }
    }
}

/// Waits until every one of `observers` printed a `kind` event about
/// `member` (from event position `from` on), at most `within`.
fn wait_all_said(
    c: &Cluster,
    from: usize,
    observers: &[String],
    kind: &str,
    member: &str,
    within: Duration,
) -> Result<bool> {
    wait_events(c.events(), from, within, |seen| {
        observers.iter().all(|o| seen.iter().any(|e| e.by == *o && e.is(kind, member)))
    })
}

/// What the observers' events show about one member after a fault at `t0_ms`.
#[derive(Debug, Default)]
struct Detection {
    /// Fault to the last observer's first `failed` event (all observers).
    full_ms: Option<u64>,
    /// Fault to the first `failed` event from anyone.
    first_ms: Option<u64>,
    /// Observers that sent none.
    missing: Vec<String>,
    /// The last observer's `failed` event, for its evidence.
    slowest: Option<Event>,
}

impl Detection {
    /// The full-detection time; above `slow_ms`, a note names the last
    /// observer's evidence; if some observer never declared it, an unmet
    /// expectation names them (`bound`: how long the scenario waited).
    fn full_or_report(
        &self,
        r: &mut Report,
        victim: &str,
        t0_ms: u64,
        slow_ms: u64,
        bound: Duration,
    ) -> Option<u64> {
        let Some(ms) = self.full_ms else {
            r.expect(
                false,
                format!("{victim} not declared failed within {} s by {:?}", bound.as_secs(), self.missing),
            );
            return None;
        };
        if ms > slow_ms
            && let Some(e) = &self.slowest
        {
            r.notes.push(format!("{victim}: last to declare it: {}", evidence(e, t0_ms)));
        }
        Some(ms)
    }
}

fn detection(events: &EventLog, observers: &[String], victim: &str, t0_ms: u64) -> Detection {
    let failed: Vec<Event> =
        events.of_kind_since("failed", t0_ms).into_iter().filter(|e| e.member == victim).collect();
    let mut d = Detection::default();
    let mut slowest: Option<&Event> = None;
    for o in observers {
        match failed.iter().filter(|e| e.by == *o).min_by_key(|e| e.time_ms) {
            Some(e) => {
                if slowest.is_none_or(|s| e.time_ms > s.time_ms) {
                    slowest = Some(e);
                }
            }
            None => d.missing.push(o.clone()),
        }
    }
    d.first_ms = failed.iter().map(|e| e.time_ms.saturating_sub(t0_ms)).min();
    if d.missing.is_empty() {
        d.full_ms = slowest.map(|e| e.time_ms.saturating_sub(t0_ms));
    }
    d.slowest = slowest.cloned();
    d
}

/// One event's evidence in a line: who printed it when, who declared and
/// who suspected, confirmations, the suspicion's length and the probe.
fn evidence(e: &Event, t0_ms: u64) -> String {
    let v = &e.event;
    let list = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_array())
            .map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let mut s = format!(
        "{} {} {} at +{:.2} s",
        e.by,
        e.kind,
        e.member,
        e.time_ms.saturating_sub(t0_ms) as f64 / 1000.0
    );
    if let Some(d) = v.get("declared_by").and_then(|x| x.as_str()) {
        s.push_str(&format!(", declared by {d}"));
    }
    let by = list("suspected_by");
    if !by.is_empty() {
        s.push_str(&format!(", suspected by [{by}]"));
    }
    if let Some(c) = v.get("confirmations").and_then(serde_json::Value::as_u64) {
        s.push_str(&format!(", {c} confirmation(s)"));
    }
    if let Some(ms) = v.get("suspicion_ms").and_then(serde_json::Value::as_u64) {
        s.push_str(&format!(", suspicion {ms} ms"));
    }
    if let Some(p) = v.get("probe") {
        let names = |k: &str| {
            p.get(k)
                .and_then(|x| x.as_array())
                .map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        s.push_str(&format!(", own probe: indirect [{}], nacks [{}]", names("indirect"), names("nacks")));
    }
    s
}

/// Fault to the last observer's first event showing `member` alive again
/// (`joined` or `recovered`) at or after `t_ms`; or the observers without one.
fn back_alive(events: &EventLog, observers: &[String], member: &str, t_ms: u64) -> Result<u64, Vec<String>> {
    let all = events.all();
    let mut worst = 0;
    let mut missing = Vec::new();
    for o in observers {
        let first = all
            .iter()
            .filter(|e| e.by == *o && e.member == member && e.time_ms >= t_ms)
            .filter(|e| e.event.get("state").and_then(|s| s.as_str()) == Some("alive"))
            .map(|e| e.time_ms)
            .min();
        match first {
            Some(t) => worst = worst.max(t - t_ms),
            None => missing.push(o.clone()),
        }
    }
    if missing.is_empty() { Ok(worst) } else { Err(missing) }
}

/// The observers that suspected or failed `member` at or after `t0_ms`:
/// those that must see it alive again (the others never doubted it).
fn doubters(events: &EventLog, observers: &[String], member: &str, t0_ms: u64) -> Vec<String> {
    let doubted: Vec<Event> = events
        .all()
        .into_iter()
        .filter(|e| e.member == member && e.time_ms >= t0_ms && (e.kind == "suspected" || e.kind == "failed"))
        .collect();
    observers.iter().filter(|o| doubted.iter().any(|e| e.by == **o)).cloned().collect()
}

/// For observers that never showed `member` alive again: what their API
/// says of it now, and the last event they printed about it.
fn not_back(c: &Cluster, missing: &[String], member: &str) -> String {
    let all = c.events().all();
    missing
        .iter()
        .map(|o| {
            let state = c
                .names()
                .iter()
                .position(|n| n == o)
                .and_then(|i| c.view(i).ok())
                .and_then(|v| v.into_iter().find(|m| m.name == member))
                .map_or_else(|| "?".to_string(), |m| m.state);
            let last = all
                .iter()
                .rev()
                .find(|e| e.by == *o && e.member == member)
                .map_or_else(String::new, |e| format!(", last event `{}` at {}", e.kind, e.time_ms));
            format!("{o}: API says {state}{last}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// True if every observer printed an event showing `member` alive at or
/// after `t_ms`.
fn all_back(events: &[Event], observers: &[String], member: &str, t_ms: u64) -> bool {
    observers.iter().all(|o| {
        events.iter().any(|e| {
            e.by == *o
                && e.member == member
                && e.time_ms >= t_ms
                && e.event.get("state").and_then(|s| s.as_str()) == Some("alive")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn victims_are_spread_and_never_seeds() {
        assert_eq!(victims(20, 5), vec![19, 16, 13, 10, 7]);
        assert_eq!(victims(10, 5), vec![9, 6, 3]);
        assert!(victims(50, 8).iter().all(|&v| v >= 3));
    }
}
