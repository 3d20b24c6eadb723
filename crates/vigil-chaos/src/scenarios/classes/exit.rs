//! Scenario 9: process exit. Members are SIGKILLed one at a time (their
//! hosts stay up: the kernel closes their watch streams, refuses
//! connections and answers datagrams with ICMP port unreachable), and
//! every survivor must declare each failed; target: full detection median
//! ≤ 0.5 s (issue 13, at 50 members).

use std::time::Duration;

use super::{QUIET, detection, median_and_max, s2, victims, wait_all_said};
use crate::error::Result;
use crate::events::now_ms;
use crate::report::{Report, median_max};
use crate::scenarios::{Options, PRESET, cluster, false_failures, progress};

/// Members killed, one at a time.
const KILLS: usize = 5;
/// Issue 13's target for the full detection median.
const TARGET_MS: u64 = 500;
/// How long every survivor may take to declare one exit failed.
const DETECT_BOUND: Duration = Duration::from_secs(15);

pub(crate) fn run(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (mut c, _) = cluster(opts, |_| {})?;
    let killed = victims(n, KILLS);
    let mut r = Report::new(9, "process exit (SIGKILL)", n, PRESET);
    r.fault =
        format!("SIGKILL {} members, one at a time, {} s apart at least", killed.len(), QUIET.as_secs());
    r.bound = format!("full detection median ≤ {} (issue 13); no live member failed", s2(TARGET_MS));
    let start_ms = now_ms();
    let mut gone = Vec::new();
    let (mut full, mut first) = (Vec::new(), Vec::new());
    for &v in &killed {
        gone.push(v);
        let survivors: Vec<String> = (0..n).filter(|i| !gone.contains(i)).map(|i| c.name(i)).collect();
        let victim = c.name(v);
        let from = c.events().len();
        let t0 = now_ms();
        c.kill(v);
        let all = wait_all_said(&c, from, &survivors, "failed", &victim, DETECT_BOUND)?;
        let d = detection(c.events(), &survivors, &victim, t0);
        full.extend(d.full_or_report(&mut r, &victim, t0, TARGET_MS, DETECT_BOUND));
        first.extend(d.first_ms);
        progress(
            opts,
            format!(
                "killed {victim}: first {} full {} (all said: {all})",
                d.first_ms.map_or("-".into(), s2),
                d.full_ms.map_or("-".into(), s2)
            ),
        );
        crate::signal::sleep(QUIET)?;
    }
    let names: Vec<String> = killed.iter().map(|&i| c.name(i)).collect();
    r.false_failures = false_failures(c.events(), start_ms, |e| names.contains(&e.member));
    r.expect(r.false_failures.is_empty(), "a live member was declared failed");
    if let Some((median, _)) = median_and_max(&mut r, "full detection median", &full) {
        r.expect(
            median <= TARGET_MS,
            format!("full detection median {} > target {}", s2(median), s2(TARGET_MS)),
        );
    }
    if let Some((median, _)) = median_max(&first) {
        r.figure("first detection median", format!("{} ms", median));
    }
    r.figure(
        "kills",
        format!("{} ({})", full.len(), full.iter().map(|&m| s2(m)).collect::<Vec<_>>().join(", ")),
    );
    Ok(r)
}
