//! Scenario 11: pauses (SIGSTOP). A process that is stopped keeps its
//! sockets: its kernel still accepts connections and queues datagrams, so
//! the others hear only silence. Targets (issue 13): a 3 s stop is never
//! failed (suspected and refuted is fine); a 10 s stop, longer than the
//! pause tolerance, is failed by all, the member is back in every view
//! ≤ 1 s after SIGCONT, and nobody else is accused (by it, once it wakes,
//! or by anyone).

use std::time::{Duration, Instant};

use super::{QUIET, back_alive, detection, evidence, median_and_max, s2, victims, wait_events};
use crate::error::Result;
use crate::events::now_ms;
use crate::report::Report;
use crate::scenarios::{Options, PRESET, cluster, count, false_failures, progress};

/// Short stops, each on another member.
const SHORT_STOPS: usize = 3;
const SHORT_STOP: Duration = Duration::from_secs(3);
/// Time after a short stop for its suspicions to be refuted.
const SHORT_GAP: Duration = Duration::from_secs(7);
/// Long stops, each on another member.
const LONG_STOPS: usize = 2;
const LONG_STOP: Duration = Duration::from_secs(10);
/// Issue 13's target: back in every view this soon after SIGCONT.
const BACK_TARGET_MS: u64 = 1000;
/// How long to wait for it to be back before giving up.
const BACK_BOUND: Duration = Duration::from_secs(15);

pub(crate) fn run(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (mut c, _) = cluster(opts, |_| {})?;
    // In a small cluster a member may be stopped twice.
    let picks: Vec<usize> =
        victims(n, SHORT_STOPS + LONG_STOPS).into_iter().cycle().take(SHORT_STOPS + LONG_STOPS).collect();
    let short: Vec<usize> = picks.iter().copied().take(SHORT_STOPS).collect();
    let long: Vec<usize> = picks.iter().copied().skip(SHORT_STOPS).collect();
    let mut r = Report::new(11, "pause (SIGSTOP 3 s, 10 s)", n, PRESET);
    r.fault = format!(
        "SIGSTOP {} s on {} members, one at a time; then SIGSTOP {} s on {}",
        SHORT_STOP.as_secs(),
        short.len(),
        LONG_STOP.as_secs(),
        long.len()
    );
    r.bound = format!(
        "3 s: never failed; 10 s: failed by all, back everywhere ≤ {} after SIGCONT, nobody else failed (issue 13)",
        s2(BACK_TARGET_MS)
    );
    let start_ms = now_ms();
    for &v in &short {
        c.pause(v)?;
        let paused = crate::signal::sleep(SHORT_STOP);
        c.resume(v)?;
        paused?;
        crate::signal::sleep(SHORT_GAP)?;
    }
    crate::signal::sleep(Duration::from_millis(1500))?;
    let short_names: std::collections::BTreeSet<String> = short.iter().map(|&i| c.name(i)).collect();
    let short_failed = c.events().of_kind_since("failed", start_ms);
    for e in short_failed.iter().take(5) {
        r.notes.push(format!("3 s stop: {}", evidence(e, start_ms)));
    }
    r.expect(short_failed.is_empty(), format!("{} `failed` event(s) during 3 s stops", short_failed.len()));
    r.figure(
        "3 s stops: suspicions of the stopped",
        count(c.events(), "suspected", start_ms, &short_names).to_string(),
    );
    r.figure("failed", short_failed.len().to_string());
    progress(opts, format!("3 s stops: {} failure(s)", short_failed.len()));

    let long_start = now_ms();
    let (mut full, mut back) = (Vec::new(), Vec::new());
    let mut windows = Vec::new();
    for &v in &long {
        let victim = c.name(v);
        let others: Vec<String> = (0..n).filter(|&i| i != v).map(|i| c.name(i)).collect();
        let from = c.events().len();
        let t0 = now_ms();
        let stopped = Instant::now();
        c.pause(v)?;
        let paused = crate::signal::sleep(LONG_STOP.saturating_sub(stopped.elapsed()));
        let t_cont = now_ms();
        c.resume(v)?;
        paused?;
        windows.push((victim.clone(), t0, t_cont));
        let d = detection(c.events(), &others, &victim, t0);
        // Failed by all *during* the stop (not only after it woke).
        let failed_during: Vec<String> = others
            .iter()
            .filter(|o| c.events().first(o, "failed", &victim, t0).is_some_and(|t| t <= t_cont))
            .cloned()
            .collect();
        if failed_during.len() == others.len() {
            full.extend(d.full_ms);
        } else {
            let never: Vec<&String> = others.iter().filter(|o| !failed_during.contains(o)).collect();
            r.expect(
                false,
                format!(
                    "{victim} failed by {} of {} during its {} s stop (not by {never:?})",
                    failed_during.len(),
                    others.len(),
                    LONG_STOP.as_secs()
                ),
            );
            if let Some(e) = &d.slowest {
                r.notes.push(format!("10 s stop: last to declare {victim}: {}", evidence(e, t0)));
            }
        }
        let doubting = super::doubters(c.events(), &others, &victim, t0);
        let came_back = wait_events(c.events(), from, BACK_BOUND, |seen| {
            super::all_back(seen, &doubting, &victim, t_cont)
        })?;
        match back_alive(c.events(), &doubting, &victim, t_cont) {
            Ok(ms) => {
                back.push(ms);
                r.expect(
                    ms <= BACK_TARGET_MS,
                    format!("{victim} back everywhere {} after SIGCONT > {}", s2(ms), s2(BACK_TARGET_MS)),
                );
            }
            Err(missing) => {
                r.expect(
                    false,
                    format!("{victim} not alive again within {} s at {missing:?}", BACK_BOUND.as_secs()),
                );
                r.notes.push(format!("{victim} not back: {}", super::not_back(&c, &missing, &victim)));
            }
        }
        progress(
            opts,
            format!(
                "10 s stop of {victim}: full detection {}; back everywhere: {came_back}",
                d.full_ms.map_or("-".into(), s2)
            ),
        );
        crate::signal::sleep(QUIET)?;
    }
    crate::signal::sleep(Duration::from_millis(1500))?;
    // Only a long-stopped member, during its stop, may be failed.
    r.false_failures = false_failures(c.events(), long_start, |e| {
        windows.iter().any(|(m, a, b)| e.member == *m && e.time_ms >= *a && e.time_ms <= *b)
    });
    r.expect(r.false_failures.is_empty(), "a member not stopped (or woken) was declared failed");
    median_and_max(&mut r, "10 s stops: full detection median", &full);
    median_and_max(&mut r, "back everywhere after SIGCONT, median", &back);
    Ok(r)
}
