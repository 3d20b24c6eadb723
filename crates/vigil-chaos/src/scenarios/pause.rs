//! Scenario 2 (SIGSTOP shorter and longer than the suspicion window) and
//! scenario 3 (a CPU hog pinned beside one member).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::{Options, cluster, count, false_failures, full_detection, progress, settle};
use crate::error::Result;
use crate::events::now_ms;
use crate::hog::{Hog, HogPriority};
use crate::report::{Report, secs, secs_ms};

/// A stop this short ends before any suspicion can expire: the LAN preset's
/// shortest suspicion timeout is one protocol period (1 s), and it starts
/// only after a probe and its indirect probes failed.
const SHORT_STOP: Duration = Duration::from_millis(800);
const SHORT_STOPS: usize = 3;
/// Longer than the longest suspicion timeout (3 s at N ≤ 10, 5.1 s at N = 50) plus detection.
const LONG_STOP: Duration = Duration::from_secs(15);
/// After SIGCONT, the member must be alive in every view within this.
const REFUTE_BOUND: Duration = Duration::from_secs(10);

pub(super) fn stop(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (mut c, _) = cluster(opts, |_| {})?;
    let mut r = Report::new(2, "SIGSTOP short, then long", n, super::PRESET);
    r.fault =
        format!("{}× SIGSTOP {} ms; SIGSTOP {} s", SHORT_STOPS, SHORT_STOP.as_millis(), LONG_STOP.as_secs());
    r.bound = format!(
        "short: never failed; long: failed by all, alive everywhere ≤ {} s after SIGCONT",
        REFUTE_BOUND.as_secs()
    );
    let v = n - 1;
    let victim = c.name(v);
    let victim_set = BTreeSet::from([victim.clone()]);
    let others: Vec<usize> = (0..n - 1).collect();
    let other_names: Vec<String> = others.iter().map(|&i| c.name(i)).collect();
    let start_ms = now_ms();
    for _ in 0..SHORT_STOPS {
        c.pause(v)?;
        crate::signal::sleep(SHORT_STOP)?;
        c.resume(v)?;
        crate::signal::sleep(Duration::from_secs(4))?;
    }
    settle()?;
    let short_failed = c.events().of_kind_since("failed", start_ms).len();
    let short_suspected = count(c.events(), "suspected", start_ms, &victim_set);
    r.expect(short_failed == 0, format!("{short_failed} `failed` event(s) during short stops"));
    r.figure("short stops: suspicions of victim", short_suspected.to_string());
    r.figure("failed", short_failed.to_string());
    progress(opts, format!("short stops: {short_suspected} suspicion(s), {short_failed} failure(s)"));

    let t0 = now_ms();
    let stopped_at = Instant::now();
    c.pause(v)?;
    let dead = c.wait_state(&others, &[v], "dead", LONG_STOP);
    r.expect(
        dead.is_ok(),
        format!("not declared dead by all during the long stop: {:?}", dead.as_ref().err()),
    );
    crate::signal::sleep(LONG_STOP.saturating_sub(stopped_at.elapsed()))?;
    c.resume(v)?;
    let t_cont = now_ms();
    let all: Vec<usize> = (0..n).collect();
    let back = c.wait_state(&all, &[v], "alive", REFUTE_BOUND);
    r.expect(back.is_ok(), format!("not alive everywhere after SIGCONT: {:?}", back.as_ref().err()));
    let everyone = c.wait_state(&all, &all, "alive", REFUTE_BOUND);
    r.expect(everyone.is_ok(), format!("cluster not all alive after SIGCONT: {:?}", everyone.as_ref().err()));
    settle()?;
    match full_detection(c.events(), &other_names, &victim, t0) {
        Ok(ms) => r.figure("long stop: full detection", secs_ms(ms)),
        Err(missing) => r.expect(false, format!("no `failed` event for {victim} from {missing:?}")),
    }
    if let Ok(d) = back {
        r.figure("alive everywhere after SIGCONT in", secs(d));
    }
    // Only the victim, and only during the long stop, may be declared failed.
    r.false_failures = false_failures(c.events(), start_ms, |e| {
        e.member == victim && e.time_ms >= t0 && e.time_ms <= t_cont
    });
    r.expect(r.false_failures.is_empty(), "a live member was declared failed");
    Ok(r)
}

/// Busy loops beside the slow member. Ordinary ones, even at nice -20,
/// barely delay a mostly idle process (measured: no suspicion at all), so
/// the hog is real-time: the member gets only the ~5% of the CPU the kernel
/// keeps for ordinary tasks, in slices, like a badly overloaded host.
const HOGS: usize = 1;
const HOG_PRIORITY: HogPriority = HogPriority::RealTime;

pub(super) fn cpu_hog(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let cpus = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let cpu = cpus - 1;
    let v = n - 1;
    let (c, _) = cluster(opts, |s| {
        if s.name == format!("m{v}") {
            s.cpu = Some(cpu);
        }
    })?;
    let hold = if opts.long { Duration::from_secs(180) } else { Duration::from_secs(60) };
    let mut r = Report::new(3, "CPU hog beside one member", n, super::PRESET);
    r.fault =
        format!("{HOGS} busy loop ({HOG_PRIORITY:?}) pinned with m{v} on CPU {cpu}, {} s", hold.as_secs());
    r.bound = "no member but the slow one declared failed".into();
    let victim = c.name(v);
    let start_ms = now_ms();
    {
        let _hogs: Vec<Hog> = (0..HOGS)
            .map(|_| Hog::start(cpu, HOG_PRIORITY, hold + Duration::from_secs(30)))
            .collect::<Result<_>>()?;
        progress(opts, format!("{HOGS} hogs on CPU {cpu} for {} s", hold.as_secs()));
        crate::signal::sleep(hold)?;
    }
    settle()?;
    let healthy: BTreeSet<String> = (0..n - 1).map(|i| c.name(i)).collect();
    let slow = BTreeSet::from([victim.clone()]);
    r.false_failures = false_failures(c.events(), start_ms, |e| e.member == victim);
    r.expect(r.false_failures.is_empty(), "a healthy member was declared failed");
    r.figure("suspicions of healthy members", count(c.events(), "suspected", start_ms, &healthy).to_string());
    r.figure("of the slow one", count(c.events(), "suspected", start_ms, &slow).to_string());
    r.figure("slow one declared failed", count(c.events(), "failed", start_ms, &slow).to_string());
    let all: Vec<usize> = (0..n).collect();
    let after = c.wait_state(&all, &all, "alive", Duration::from_secs(20));
    r.expect(after.is_ok(), format!("not all alive after the hog: {:?}", after.err()));
    Ok(r)
}
