//! Scenario 1: SIGKILL one member, then 30% of the members at once.

use std::time::Duration;

use super::{Options, cluster, false_failures, full_detection, progress, settle};
use crate::error::Result;
use crate::events::now_ms;
use crate::report::{Report, median_max, secs_ms};

/// Detection (to `dead` in every survivor's API) must finish within this.
const DETECT_BOUND: Duration = Duration::from_secs(10);

pub(super) fn run(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (mut c, _) = cluster(opts, |_| {})?;
    let mut r = Report::new(1, "SIGKILL 1, then 30% at once", n, super::PRESET);
    let k = (n * 3).div_ceil(10);
    r.fault = format!("SIGKILL 1, then {k}");
    r.bound = format!(
        "every survivor: `failed` event and `dead` in API, full detection ≤ {} s",
        DETECT_BOUND.as_secs()
    );
    let start_ms = now_ms();
    let first = n - 1;
    // The second wave spreads over the cluster (it includes a seed).
    let wave: Vec<usize> = (0..n - 1).filter(|i| i % 3 == 1).take(k).collect();
    let mut detections = Vec::new();
    for (label, victims) in [("one", vec![first]), ("30%", wave.clone())] {
        let gone: Vec<usize> =
            if label == "one" { vec![first] } else { [vec![first], wave.clone()].concat() };
        let survivors: Vec<usize> = (0..n).filter(|i| !gone.contains(i)).collect();
        let survivor_names: Vec<String> = survivors.iter().map(|&i| c.name(i)).collect();
        let t0 = now_ms();
        for &v in &victims {
            c.kill(v);
        }
        progress(opts, format!("killed {victims:?}"));
        let waited = c.wait_state(&survivors, &victims, "dead", DETECT_BOUND + Duration::from_secs(10));
        r.expect(waited.is_ok(), format!("survivors did not all show {victims:?} dead: {:?}", waited.err()));
        settle()?;
        for &v in &victims {
            match full_detection(c.events(), &survivor_names, &c.name(v), t0) {
                Ok(ms) => {
                    detections.push(ms);
                    r.expect(
                        ms <= u64::try_from(DETECT_BOUND.as_millis()).unwrap_or(u64::MAX),
                        format!("{} full detection {ms} ms > bound", c.name(v)),
                    );
                }
                Err(missing) => {
                    r.expect(false, format!("no `failed` event for {} from {missing:?}", c.name(v)))
                }
            }
        }
    }
    let victims: Vec<String> = [vec![first], wave].concat().iter().map(|&i| c.name(i)).collect();
    r.false_failures = false_failures(c.events(), start_ms, |e| victims.contains(&e.member));
    r.expect(r.false_failures.is_empty(), "a live member was declared failed");
    if let Some((median, max)) = median_max(&detections) {
        r.figure("full detection median", secs_ms(median));
        r.figure("max", secs_ms(max));
    }
    r.figure("victims", victims.len().to_string());
    Ok(r)
}
