//! Behaviour of whole clusters in virtual time, on the simulator's engine
//! driven by hand ([`Cluster`]), with fixed seeds: a failure replays exactly.
//! Every test ends with [`clean`]: no member refused a packet as malformed and
//! no invariant of the simulator broke.

use std::collections::BTreeSet;
use std::time::Duration;

use vigil_proto::{Config, EventKind, State};
use vigil_sim::detection::{detection_run, median};
use vigil_sim::{Cluster, member_name as name};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Members send only valid packets, and the simulator's invariants held.
fn clean(c: &Cluster) {
    assert_eq!(c.decode_errors(), 0, "members only send valid packets");
    assert!(c.violations().is_empty(), "{:#?}", c.violations());
}

fn converged_cluster(n: usize, seed: u64) -> Cluster {
    let mut c = Cluster::joined(n, Config::lan(), seed, secs(2));
    assert!(
        c.run_until_true(secs(60), Duration::from_millis(500), Cluster::converged),
        "seed {seed}: no convergence"
    );
    c
}

#[test]
fn three_members_converge() {
    let c = Cluster::joined(3, Config::lan(), 1, secs(5));
    assert!(c.converged(), "3 members must all see each other alive");
    assert!(c.events().iter().all(|s| s.event.kind == EventKind::Joined), "only joins");
    clean(&c);
}

#[test]
fn fifty_members_converge() {
    let mut c = Cluster::joined(50, Config::lan(), 2, secs(2));
    assert!(
        c.run_until_true(secs(30), Duration::from_millis(500), Cluster::converged),
        "50 members must converge"
    );
    assert!(c.events().iter().all(|s| s.event.kind == EventKind::Joined), "only joins while converging");
    // Each of 50 members learned of 49 others.
    assert_eq!(c.events().len(), 50 * 49);
    clean(&c);
}

#[test]
fn member_whose_host_goes_down_is_declared_failed_by_every_other_member() {
    // Silence only (a process exit leaves evidence: see failure_classes.rs).
    let mut c = converged_cluster(10, 3);
    c.host_down(3);
    c.run_for(secs(20));
    for o in c.up() {
        assert_eq!(c.view(o, 3), Some(State::Dead), "member {o} must see node 3 dead");
    }
    let failed = c.events_about(3, EventKind::Failed);
    let observers: BTreeSet<usize> = failed.iter().map(|s| s.observer).collect();
    assert_eq!(observers.len(), 9, "each survivor reports the failure once: {failed:#?}");
    // Every failure can be explained: who declared it, who suspected it.
    for s in &failed {
        let ev = s.event.evidence.as_ref().expect("failed carries evidence");
        assert!(ev.declared_by.is_some());
    }
    let declarer = failed
        .iter()
        .find(|s| {
            s.event.evidence.as_ref().unwrap().declared_by.as_ref().unwrap().as_str() == name(s.observer)
        })
        .expect("someone's own suspicion timed out");
    let ev = declarer.event.evidence.as_ref().unwrap();
    assert!(!ev.suspected_by.is_empty() && ev.suspicion_duration > Duration::ZERO, "{ev:#?}");
    assert_eq!(c.false_failures(&BTreeSet::from([3])).len(), 0);
    clean(&c);
}

#[test]
fn member_with_late_acks_refutes_and_is_never_declared_failed() {
    let mut c = converged_cluster(20, 4);
    // Everything node 5 sends arrives 1.05 s late: later than a protocol period.
    c.delay_sends(5, Duration::from_millis(1050));
    c.run_for(secs(60));
    assert!(
        c.events_about(5, EventKind::Failed).is_empty(),
        "a slow but live member must not be declared failed"
    );
    assert!(!c.events_about(5, EventKind::Suspected).is_empty(), "the delay must actually cause suspicions");
    assert!(c.core(5).stats().refutations > 0, "node 5 refuted");
    c.delay_sends(5, Duration::ZERO);
    assert!(c.run_until_true(secs(30), secs(1), Cluster::converged));
    clean(&c);
}

#[test]
fn member_whose_direct_path_drops_packets_is_saved_by_indirect_probes() {
    let mut c = converged_cluster(10, 5);
    c.block(0, 3);
    c.block(3, 0);
    c.run_for(secs(60));
    assert!(c.core(0).stats().indirect_probes_sent > 0, "node 0's probes of node 3 went indirect");
    let suspected: Vec<_> = c.events().iter().filter(|s| s.event.kind == EventKind::Suspected).collect();
    assert!(suspected.is_empty(), "indirect probes must save node 3: {suspected:#?}");
    assert!(c.converged());
    clean(&c);
}

#[test]
fn partitioned_member_comes_back_and_merges() {
    let mut c = converged_cluster(10, 6);
    c.partition(&[7]);
    // Cut off, node 7 blames itself (Lifeguard) and probes ever more slowly;
    // hearing no one, it declares no one failed: it holds them suspect.
    c.run_for(secs(120));
    for o in c.up() {
        if o != 7 {
            assert_eq!(c.view(o, 7), Some(State::Dead), "member {o} declares the cut-off member failed");
            assert_eq!(c.view(7, o), Some(State::Suspect), "the cut-off member holds member {o} suspect");
        }
    }
    c.heal();
    assert!(
        c.run_until_true(secs(60), Duration::from_millis(500), Cluster::converged),
        "the partition must heal by itself"
    );
    assert!(c.core(7).incarnation() > 1, "node 7 refuted its death");
    // Its suspicions, heard by the others once healed, were refuted: no
    // member but the cut-off one was failed anywhere.
    let failed: Vec<_> = c
        .events()
        .iter()
        .filter(|s| s.event.kind == EventKind::Failed && s.event.member.name != c.core(7).name().clone())
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    clean(&c);
}

#[test]
fn two_halves_partition_heals_without_operator() {
    let mut c = converged_cluster(12, 7);
    c.partition(&[0, 1, 2, 3, 4, 5]);
    c.run_for(secs(60));
    assert_eq!(c.view(0, 11), Some(State::Dead));
    assert_eq!(c.view(11, 0), Some(State::Dead));
    c.heal();
    let healed = c.run_until_true(secs(120), Duration::from_millis(500), Cluster::converged);
    assert!(healed, "both halves must merge by themselves");
    clean(&c);
}

#[test]
fn graceful_leave_is_left_everywhere_and_never_failed() {
    let mut c = converged_cluster(10, 8);
    c.leave(4);
    assert!(c.run_until_true(secs(5), Duration::from_millis(50), |c| c.core(4).leave_disseminated()));
    c.crash(4); // the process exits after leaving
    c.run_for(secs(30));
    for o in c.up() {
        assert_eq!(c.view(o, 4), Some(State::Left), "member {o} must see node 4 as left");
    }
    assert!(c.events_about(4, EventKind::Failed).is_empty(), "a leave is never a failure");
    assert!(c.events_about(4, EventKind::Suspected).is_empty(), "nor a suspicion");
    assert_eq!(c.events_about(4, EventKind::Left).len(), 9 + 1, "9 observers and node 4 itself");
    clean(&c);
}

#[test]
fn metadata_change_reaches_everyone() {
    let mut c = converged_cluster(10, 9);
    c.set_metadata(2, b"role=db");
    c.run_for(secs(5));
    for o in c.up() {
        let m = c.core(o).member(&name(2), c.now()).unwrap();
        assert_eq!(m.meta.as_bytes(), b"role=db", "member {o}");
        assert_eq!(m.state, State::Alive);
    }
    let updated = c.events_about(2, EventKind::Updated);
    assert_eq!(updated.iter().filter(|s| s.observer != 2).count(), 9);
    clean(&c);
}

#[test]
fn restart_with_the_same_name_supersedes_the_old_entry() {
    let mut c = converged_cluster(10, 10);
    c.crash(6);
    c.run_for(secs(20));
    assert_eq!(c.view(0, 6), Some(State::Dead));
    // Restarts with the incarnation it had: it must learn it was declared dead and refute.
    let mark = c.events().len();
    c.restart(6, 1, &[0]);
    assert!(
        c.run_until_true(secs(30), Duration::from_millis(500), Cluster::converged),
        "restarted member must be alive everywhere"
    );
    assert!(c.core(6).incarnation() > 1);
    let rejoined = c.events()[mark..]
        .iter()
        .filter(|s| s.event.kind == EventKind::Joined && s.event.member.name.as_str() == name(6))
        .count();
    assert_eq!(rejoined, 9, "each survivor sees it join again");
    clean(&c);
}

#[test]
fn member_that_missed_a_return_learns_it_from_the_returned_members_next_packet() {
    // No periodic exchange within the test: only the fix can bring the news.
    let mut config = Config::lan();
    config.push_pull_interval = secs(3600);
    config.reconnect_interval = secs(3600);
    let mut c = Cluster::joined(10, config, 12, secs(2));
    assert!(c.run_until_true(secs(60), Duration::from_millis(500), Cluster::converged));
    c.leave(3);
    assert!(c.run_until_true(secs(5), Duration::from_millis(50), |c| c.core(3).leave_disseminated()));
    c.crash(3);
    c.run_for(secs(10));
    assert_eq!(c.view(5, 3), Some(State::Left));
    // Node 3 comes back while nothing reaches node 5: 5 misses the news.
    for j in 0..10 {
        c.block(j, 5);
    }
    c.restart(3, 2, &[0]);
    c.run_for(Duration::from_millis(2500));
    c.unblock_all();
    for o in c.up().into_iter().filter(|&o| o != 5) {
        assert_eq!(c.view(o, 3), Some(State::Alive), "member {o} saw node 3 return");
    }
    assert_eq!(c.view(5, 3), Some(State::Left), "node 5 missed the return");
    // Node 3 probes everyone within one round (9 periods): its first packet
    // to node 5 makes 5 ask it for its state.
    assert!(
        c.run_until_true(secs(15), Duration::from_millis(100), |c| c.view(5, 3) == Some(State::Alive)),
        "node 5 must learn that node 3 returned from node 3's own packets"
    );
    assert!(c.core(5).stats().returned_checks >= 1);
    clean(&c);
}

#[test]
fn rolling_restart_of_fifty_members_each_back_everywhere_within_seconds() {
    // Seeds 2 and 6 each leave one member holding a restarted member `left`
    // for more than 5 s when a return is gossiped like any other change (22
    // of the seeds 1 to 60 do; none does with returns boosted).
    for seed in [2, 6] {
        let mut c = converged_cluster(50, seed);
        for i in 0..50 {
            c.leave(i);
            assert!(c.run_until_true(secs(5), Duration::from_millis(50), |c| c.core(i).leave_disseminated()));
            c.crash(i);
            c.run_for(Duration::from_millis(300));
            let incarnation = c.incarnation(i) + 100;
            c.restart(i, incarnation, &[(i + 1) % 50]);
            let back = c.run_until_true(secs(5), Duration::from_millis(100), |c| {
                (0..50).all(|o| o == i || c.view(o, i) == Some(State::Alive))
            });
            let missing: Vec<usize> =
                (0..50).filter(|&o| o != i && c.view(o, i) != Some(State::Alive)).collect();
            assert!(back, "seed {seed}: member {i} not alive after 5 s in the views of {missing:?}");
        }
        assert!(c.events().iter().all(|s| s.event.kind != EventKind::Failed), "seed {seed}: nobody failed");
        clean(&c);
    }
}

#[test]
fn fifty_members_one_percent_loss_detects_every_crash_without_false_failures() {
    let f = detection_run(50, Config::lan(), 0.01, 6, secs(30), 11);
    assert_eq!(f.undetected, 0, "{f:#?}");
    assert_eq!(f.false_failures, 0, "{f:#?}");
    assert!(median(&f.full) <= secs(6), "median full detection {:?}", median(&f.full));
    assert_eq!((f.decode_errors, f.violations), (0, 0), "{f:#?}");
}

/// What one member holds about another: name, state, incarnation, metadata.
type View = (String, State, u64, Vec<u8>);

/// Every live member's view of every member.
fn views(c: &Cluster) -> Vec<Vec<View>> {
    c.up()
        .iter()
        .map(|&o| {
            c.core(o)
                .members(c.now())
                .into_iter()
                .map(|m| (m.name.to_string(), m.state, m.incarnation, m.meta.as_bytes().to_vec()))
                .collect()
        })
        .collect()
}

#[test]
fn replayed_packets_change_nobodys_view() {
    // A seed whose history holds more than 1 000 packets (about 1 250).
    let mut c = converged_cluster(8, 3);
    c.record();
    // Capture a history: a metadata change, a suspicion refuted, a leave, a crash.
    c.set_metadata(1, b"v=1");
    c.run_for(secs(3));
    c.delay_sends(2, Duration::from_millis(1200));
    c.run_for(secs(6));
    c.delay_sends(2, Duration::ZERO);
    c.leave(3);
    c.run_for(secs(3));
    c.crash(3);
    c.crash(4);
    c.run_for(secs(20));
    c.set_metadata(1, b"v=2");
    c.run_for(secs(5));
    let captured = c.take_recorded();
    assert!(captured.len() > 1000, "{} packets captured", captured.len());
    let before = views(&c);
    let mark = c.events().len();
    c.replay(&captured);
    c.run_for(secs(30));
    let after = views(&c);
    assert_eq!(before, after, "replays must not roll back incarnations, resurrect or fail anyone");
    let changes: Vec<_> = c.events()[mark..].iter().collect();
    assert!(changes.is_empty(), "{changes:#?}");
    clean(&c);
}
