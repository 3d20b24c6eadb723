//! Scenario 13: 30% loss everywhere for 60 s, with crashes in it. Three
//! members are SIGKILLed before the loss (the lossless detection time),
//! then nftables drop 30% of what every member receives (`numgen random`)
//! and three more are SIGKILLed 15 s apart. Targets (issue 13): no false
//! failure, and a crash in the loss fully detected within 1.5× the
//! lossless time (medians).

use std::time::{Duration, Instant};

use super::{QUIET, detection, median_and_max, s2, victims, wait_all_said};
use crate::error::Result;
use crate::events::now_ms;
use crate::nft::{self, Rule};
use crate::report::Report;
use crate::scenarios::{Options, PRESET, cluster, false_failures, progress};

const LOSS_PERCENT: u8 = 30;
const HOLD: Duration = Duration::from_secs(60);
const LOSSLESS_KILLS: usize = 3;
const LOSSY_KILLS: usize = 3;
/// Kills in the loss start this long after it, and this far apart.
const KILL_EVERY: Duration = Duration::from_secs(15);
/// How long every survivor may take to declare one exit failed.
const DETECT_BOUND: Duration = Duration::from_secs(14);
/// Issue 13's target: lossy median ≤ this × lossless median.
const RATIO: f64 = 1.5;

pub(crate) fn run(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (mut c, _) = cluster(opts, |_| {})?;
    let picks = victims(n, LOSSLESS_KILLS + LOSSY_KILLS);
    let mut r = Report::new(13, "30% loss, crashes in it", n, PRESET);
    r.fault = format!(
        "SIGKILL {LOSSLESS_KILLS} without loss; nft drops {LOSS_PERCENT}% of every member's incoming packets for {} s, SIGKILL {LOSSY_KILLS} in it",
        HOLD.as_secs()
    );
    r.bound = format!("0 false failures; full detection median in the loss ≤ {RATIO}× lossless (issue 13)");
    let start_ms = now_ms();
    let mut gone = Vec::new();
    let (mut lossless, mut lossy) = (Vec::new(), Vec::new());
    let mut loss_start = None;
    let mut loss_start_ms = 0;
    for (k, &v) in picks.iter().enumerate() {
        let in_loss = k >= LOSSLESS_KILLS;
        if in_loss && loss_start.is_none() {
            for i in 0..n {
                nft::set_member(c.place(), i, &[Rule::loss(LOSS_PERCENT)])?;
            }
            loss_start = Some(Instant::now());
            loss_start_ms = now_ms();
            progress(opts, format!("{LOSS_PERCENT}% loss for {} s", HOLD.as_secs()));
        }
        if let Some(s) = loss_start {
            let at = KILL_EVERY * u32::try_from(k - LOSSLESS_KILLS + 1).unwrap_or(1);
            crate::signal::sleep(at.saturating_sub(s.elapsed()))?;
        }
        gone.push(v);
        let survivors: Vec<String> = (0..n).filter(|i| !gone.contains(i)).map(|i| c.name(i)).collect();
        let victim = c.name(v);
        let from = c.events().len();
        let t0 = now_ms();
        c.kill(v);
        let all = wait_all_said(&c, from, &survivors, "failed", &victim, DETECT_BOUND)?;
        let d = detection(c.events(), &survivors, &victim, t0);
        let label = if in_loss { format!("{victim} (in loss)") } else { victim.clone() };
        let slow = if in_loss { 0 } else { u64::MAX };
        if let Some(ms) = d.full_or_report(&mut r, &label, t0, slow, DETECT_BOUND) {
            if in_loss { lossy.push(ms) } else { lossless.push(ms) }
        }
        progress(
            opts,
            format!(
                "killed {victim} ({}): full {} (all said: {all})",
                if in_loss { "in loss" } else { "lossless" },
                d.full_ms.map_or("-".into(), s2)
            ),
        );
        if !in_loss {
            crate::signal::sleep(QUIET)?;
        }
    }
    if let Some(s) = loss_start {
        crate::signal::sleep(HOLD.saturating_sub(s.elapsed()))?;
    }
    nft::clear_all(c.place())?;
    crate::signal::sleep(Duration::from_millis(1500))?;
    let names: Vec<String> = picks.iter().map(|&i| c.name(i)).collect();
    r.false_failures = false_failures(c.events(), start_ms, |e| names.contains(&e.member));
    r.expect(r.false_failures.is_empty(), "a live member was declared failed");
    let in_loss = c.events().of_kind_since("suspected", loss_start_ms).len();
    let lo = median_and_max(&mut r, "lossless full detection median", &lossless);
    let ly = median_and_max(&mut r, "in loss median", &lossy);
    if let (Some((a, _)), Some((b, _))) = (lo, ly) {
        let ratio = b as f64 / a.max(1) as f64;
        r.figure("ratio", format!("{ratio:.1}×"));
        r.expect(ratio <= RATIO, format!("in loss {} is {ratio:.1}× the lossless {}", s2(b), s2(a)));
    }
    r.figure("suspicions in the loss", in_loss.to_string());
    Ok(r)
}
