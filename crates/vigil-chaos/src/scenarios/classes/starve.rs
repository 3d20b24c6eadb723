//! Scenario 12: CPU starvation. One member's threads go into a cgroup v1
//! group allowed 1 ms of CPU per second for 60 s: it runs in short bursts
//! up to a second apart, and everything else waits in its socket queues.
//! Targets (issue 13): no healthy member is declared failed (by it or
//! anyone), and the starved one is failed at most once (no flapping).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::evidence;
use crate::cgroup::Starve;
use crate::error::{Error, Result};
use crate::events::now_ms;
use crate::report::Report;
use crate::scenarios::{Options, PRESET, cluster, count, false_failures, progress};

const QUOTA: Duration = Duration::from_millis(1);
const PERIOD: Duration = Duration::from_secs(1);
/// How long the member starves.
const HOLD: Duration = Duration::from_secs(60);
/// After the quota goes, how long until everyone is alive everywhere.
const AFTER_BOUND: Duration = Duration::from_secs(30);

pub(crate) fn run(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (c, _) = cluster(opts, |_| {})?;
    let v = n - 1;
    let victim = c.name(v);
    let pid = c.pid(v).ok_or_else(|| Error::Environment(format!("{victim} has no process")))?;
    let mut r = Report::new(12, "CPU starvation (cgroup quota)", n, PRESET);
    r.fault = format!(
        "{victim}'s threads in a cgroup v1 group with cpu.cfs_quota_us={} cpu.cfs_period_us={}, {} s",
        QUOTA.as_micros(),
        PERIOD.as_micros(),
        HOLD.as_secs()
    );
    r.bound = "0 healthy members failed; the starved one failed at most once by each (issue 13)".into();
    let start_ms = now_ms();
    {
        let group = Starve::start(pid, QUOTA, PERIOD)?;
        progress(
            opts,
            format!("{victim} (pid {pid}) starved in {} for {} s", group.dir().display(), HOLD.as_secs()),
        );
        crate::signal::sleep(HOLD)?;
    }
    let all: Vec<usize> = (0..n).collect();
    let after = c.wait_state(&all, &all, "alive", AFTER_BOUND);
    r.expect(
        after.is_ok(),
        format!(
            "not all alive everywhere {} s after the quota went: {:?}",
            AFTER_BOUND.as_secs(),
            after.as_ref().err()
        ),
    );
    crate::signal::sleep(Duration::from_millis(1500))?;
    let ev = c.events();
    r.false_failures = false_failures(ev, start_ms, |e| e.member == victim);
    for e in ev.of_kind_since("failed", start_ms).iter().filter(|e| e.member != victim).take(5) {
        r.notes.push(evidence(e, start_ms));
    }
    r.expect(r.false_failures.is_empty(), "a healthy member was declared failed");
    let by_starved = r.false_failures.iter().filter(|f| f.starts_with(&format!("{victim} "))).count();
    let failed_it: Vec<_> =
        ev.of_kind_since("failed", start_ms).into_iter().filter(|e| e.member == victim).collect();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for e in &failed_it {
        *per.entry(e.by.clone()).or_default() += 1;
    }
    let most = per.values().copied().max().unwrap_or(0);
    r.expect(most <= 1, format!("{victim} failed up to {most} times by one observer (flapping)"));
    if most > 1 {
        // Each episode: who declared it, on what, and how long it had been suspected.
        let mut seen = BTreeSet::new();
        for e in failed_it.iter().filter(|e| seen.insert(e.event.get("incarnation").map(ToString::to_string)))
        {
            r.notes.push(format!("episode: {}", evidence(e, start_ms)));
        }
    }
    let healthy: BTreeSet<String> = (0..n - 1).map(|i| c.name(i)).collect();
    let starved = BTreeSet::from([victim.clone()]);
    r.figure("healthy members failed", r.false_failures.len().to_string());
    r.figure("of them by the starved one", by_starved.to_string());
    r.figure("starved one failed", format!("{} times by {} observers", failed_it.len(), per.len()));
    r.figure("suspicions of it", count(ev, "suspected", start_ms, &starved).to_string());
    r.figure("suspicions of healthy members", count(ev, "suspected", start_ms, &healthy).to_string());
    if let Ok(d) = after {
        r.figure("all alive everywhere after the quota went in", format!("{:.1} s", d.as_secs_f64()));
    }
    Ok(r)
}
