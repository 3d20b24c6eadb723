//! Scenario 4 (two halves cut apart for 60 s, then healed) and scenario 5
//! (one-way loss between two members).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{Options, cluster, count, false_failures, progress, settle};
use crate::error::Result;
use crate::events::now_ms;
use crate::nft::{self, Rule};
use crate::report::{Report, secs};

const PARTITION: Duration = Duration::from_secs(60);
/// After healing, every view must show every member alive within this: the
/// LAN preset retries dead members every 10 s and pushes full state every
/// 30 s, so one retry round plus gossip fits well inside.
const HEAL_BOUND: Duration = Duration::from_secs(45);

pub(super) fn halves(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (c, _) = cluster(opts, |_| {})?;
    let mut r = Report::new(4, "partition into halves, heal", n, super::PRESET);
    r.fault = format!("nft drop between halves, {} s", PARTITION.as_secs());
    r.bound = format!(
        "each side sees the other dead; all alive everywhere ≤ {} s after healing",
        HEAL_BOUND.as_secs()
    );
    let a: Vec<usize> = (0..n / 2).collect();
    let b: Vec<usize> = (n / 2..n).collect();
    let ips = |side: &[usize]| -> Vec<Ipv4Addr> { side.iter().map(|&i| c.place().slots()[i].ip).collect() };
    let (a_ips, b_ips) = (ips(&a), ips(&b));
    let side_of = |name: &str| -> bool { a.iter().any(|&i| c.name(i) == name) };
    let start_ms = now_ms();
    let cut = Instant::now();
    for &i in &a {
        nft::set_member(c.place(), i, &[Rule::all_from(b_ips.clone())])?;
    }
    for &i in &b {
        nft::set_member(c.place(), i, &[Rule::all_from(a_ips.clone())])?;
    }
    progress(opts, "partitioned");
    let split_a = c.wait_state(&a, &b, "dead", PARTITION);
    let split_b =
        c.wait_state(&b, &a, "dead", PARTITION.saturating_sub(cut.elapsed()).max(Duration::from_secs(1)));
    r.expect(split_a.is_ok(), format!("side A did not see side B dead: {:?}", split_a.as_ref().err()));
    r.expect(split_b.is_ok(), format!("side B did not see side A dead: {:?}", split_b.as_ref().err()));
    if split_b.is_ok() {
        r.figure("both sides split after", secs(cut.elapsed()));
    }
    crate::signal::sleep(PARTITION.saturating_sub(cut.elapsed()))?;
    nft::clear_all(c.place())?;
    let healed_at = now_ms();
    progress(opts, "healed");
    let all: Vec<usize> = (0..n).collect();
    let merged = c.wait_state(&all, &all, "alive", HEAL_BOUND);
    r.expect(merged.is_ok(), format!("not merged after healing: {:?}", merged.as_ref().err()));
    if let Ok(d) = merged {
        r.figure("merged after healing in", secs(d));
    }
    settle()?;
    // Failures across the cut during the partition are expected; any other is false.
    r.false_failures = false_failures(c.events(), start_ms, |e| {
        side_of(&e.by) != side_of(&e.member) && e.time_ms <= healed_at
    });
    r.expect(r.false_failures.is_empty(), "a member was declared failed by its own side, or after healing");
    Ok(r)
}

pub(super) fn one_way(opts: &Options) -> Result<Report> {
    let n = opts.members;
    let (c, _) = cluster(opts, |_| {})?;
    let hold = if opts.long { Duration::from_secs(180) } else { Duration::from_secs(60) };
    let mut r = Report::new(5, "one-way loss A→B", n, super::PRESET);
    // A and B are not seeds, so the fault does not also hit joins.
    let (ia, ib) = (n - 2, n - 1);
    let (name_a, name_b) = (c.name(ia), c.name(ib));
    r.fault = format!("all of {name_a}'s packets to {name_b} dropped, {} s", hold.as_secs());
    r.bound = "no third member declared failed".into();
    let start_ms = now_ms();
    nft::set_member(c.place(), ib, &[Rule::all_from(vec![c.place().slots()[ia].ip])])?;
    crate::signal::sleep(hold)?;
    nft::clear_all(c.place())?;
    settle()?;
    let pair = BTreeSet::from([name_a.clone(), name_b.clone()]);
    let bystanders: BTreeSet<String> = c.names().into_iter().filter(|m| !pair.contains(m)).collect();
    r.false_failures = false_failures(c.events(), start_ms, |e| pair.contains(&e.member));
    let bystander_failures = r.false_failures.len();
    r.expect(bystander_failures == 0, "a bystander was declared failed");
    // A and B are alive too; a failure of either is reported as a figure
    // (the expectation is about bystanders).
    let pair_failed = count(c.events(), "failed", start_ms, &pair);
    r.figure("suspicions of bystanders", count(c.events(), "suspected", start_ms, &bystanders).to_string());
    r.figure(format!("of {name_a}/{name_b}"), count(c.events(), "suspected", start_ms, &pair).to_string());
    r.figure(format!("{name_a}/{name_b} declared failed"), pair_failed.to_string());
    let all: Vec<usize> = (0..n).collect();
    let after = c.wait_state(&all, &all, "alive", Duration::from_secs(30));
    r.expect(after.is_ok(), format!("not all alive after the fault: {:?}", after.err()));
    Ok(r)
}
