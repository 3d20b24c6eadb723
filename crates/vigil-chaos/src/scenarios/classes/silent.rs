//! Scenario 10: a host gone silent. nftables rules in the member's own
//! namespace drop every packet in and out of its interface (its process
//! runs on, but nothing reaches it and nothing leaves: no reset, no ICMP),
//! as when a host loses power or its cable is cut. Target: every other
//! member declares it failed within the pause tolerance (5 s) + 1.5 s.
//! Then the rules go and the member must be back in every view.

use std::time::Duration;

use super::{
    PAUSE_TOLERANCE, QUIET, back_alive, detection, median_and_max, s2, victims, wait_all_said, wait_events,
};
use crate::error::Result;
use crate::events::now_ms;
use crate::net;
use crate::report::{Report, median_max};
use crate::scenarios::{Options, PRESET, cluster, false_failures, progress};

/// Hosts silenced, one at a time.
const ROUNDS: usize = 3;
/// Issue 13's target: the tolerance plus 1.5 s.
const TARGET_MS: u64 = PAUSE_TOLERANCE.as_millis() as u64 + 1500;
/// How long every other member may take to declare it failed.
const DETECT_BOUND: Duration = Duration::from_secs(20);
/// After the rules go, how long it may take to be alive in every view.
const BACK_BOUND: Duration = Duration::from_secs(30);

const TABLE: &str = "vigil_chaos_silent";

/// The ruleset that cuts namespace's `eth0` (ARP, outside nftables' `inet`
/// family, still answers: the silence is the IP layer's, like a host whose
/// processes all hang or a firewall that drops everything).
fn silence_rules() -> String {
    format!(
        "table inet {TABLE} {{}}\ndelete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \x20 chain input {{ type filter hook input priority -10; policy accept; iifname \"eth0\" drop; }}\n\
         \x20 chain output {{ type filter hook output priority -10; policy accept; oifname \"eth0\" drop; }}\n\
         }}\n"
    )
}

fn set_silent(ns: &str, silent: bool) -> Result<()> {
    let text = if silent {
        silence_rules()
    } else {
        format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\n")
    };
    net::exec_in(ns, "nft", &["-f", "-"], Some(&text)).map(|_| ())
}

pub(crate) fn run(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (c, _) = cluster(opts, |_| {})?;
    let silenced = victims(n, ROUNDS);
    let mut r = Report::new(10, "host silent (all its packets dropped)", n, PRESET);
    r.fault = format!(
        "nft drops every packet in and out of a member's namespace until all declare it failed; {} members, one at a time",
        silenced.len()
    );
    r.bound = format!(
        "full detection ≤ pause tolerance + 1.5 s = {} (issue 13); back in every view after",
        s2(TARGET_MS)
    );
    let start_ms = now_ms();
    let (mut full, mut first, mut back) = (Vec::new(), Vec::new(), Vec::new());
    // (member, silent from, silent until): its own accusations then are not false.
    let mut windows: Vec<(String, u64, u64)> = Vec::new();
    for &v in &silenced {
        let victim = c.name(v);
        let ns = c.place().slots()[v].ns.clone();
        let others: Vec<String> = (0..n).filter(|&i| i != v).map(|i| c.name(i)).collect();
        let from = c.events().len();
        let t0 = now_ms();
        set_silent(&ns, true)?;
        let all = wait_all_said(&c, from, &others, "failed", &victim, DETECT_BOUND);
        // Restore the host whatever the wait said (the namespace goes with the
        // lab anyway); packets may pass as soon as `nft` starts.
        let t_back = now_ms();
        let restored = set_silent(&ns, false);
        windows.push((victim.clone(), t0, t_back));
        all?;
        restored?;
        let d = detection(c.events(), &others, &victim, t0);
        full.extend(d.full_or_report(&mut r, &victim, t0, TARGET_MS, DETECT_BOUND));
        first.extend(d.first_ms);
        let doubting = super::doubters(c.events(), &others, &victim, t0);
        let came_back = wait_events(c.events(), from, BACK_BOUND, |seen| {
            super::all_back(seen, &doubting, &victim, t_back)
        })?;
        match back_alive(c.events(), &doubting, &victim, t_back) {
            Ok(ms) => back.push(ms),
            Err(missing) => {
                r.expect(
                    false,
                    format!("{victim} not alive again within {} s at {missing:?}", BACK_BOUND.as_secs()),
                );
                r.notes.push(format!("{victim} not back: {}", super::not_back(&c, &missing, &victim)));
            }
        }
        // And the silenced member sees everyone again (it heard nobody).
        let all: Vec<usize> = (0..n).collect();
        if let Err(e) = c.wait_state(&[v], &all, "alive", BACK_BOUND) {
            r.expect(false, format!("{victim} does not see everyone alive again: {e}"));
        }
        progress(
            opts,
            format!(
                "silenced {victim}: first {} full {}; back everywhere: {came_back}",
                d.first_ms.map_or("-".into(), s2),
                d.full_ms.map_or("-".into(), s2)
            ),
        );
        crate::signal::sleep(QUIET)?;
    }
    let accusations = c
        .events()
        .of_kind_since("failed", start_ms)
        .iter()
        .filter(|e| windows.iter().any(|(m, a, b)| e.by == *m && e.time_ms >= *a && e.time_ms <= b + 2000))
        .count();
    // A silenced member may be failed during its silence, and may itself fail
    // the others then (it hears nobody); anything else is a false failure.
    r.false_failures = false_failures(c.events(), start_ms, |e| {
        windows
            .iter()
            .any(|(m, a, b)| (e.member == *m || e.by == *m) && e.time_ms >= *a && e.time_ms <= b + 2000)
    });
    r.expect(r.false_failures.is_empty(), "a reachable member was declared failed");
    if let Some((median, _)) = median_and_max(&mut r, "full detection median", &full) {
        r.expect(
            median <= TARGET_MS,
            format!("full detection median {} > target {}", s2(median), s2(TARGET_MS)),
        );
    }
    if let Some((median, _)) = median_max(&first) {
        r.figure("first detection median", s2(median));
    }
    if let Some((median, max)) = median_max(&back) {
        r.figure("back in every view after the rules went, median", s2(median));
        r.figure("max", s2(max));
    }
    r.figure("failures declared by the silenced members while cut off", accusations.to_string());
    Ok(r)
}
