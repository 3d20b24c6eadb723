//! Detection by failure class, in virtual time (exact), on the lan preset:
//! a process exit leaves kernel evidence and is condemned at once; a host
//! gone silent is condemned on silence, patiently; a pause or CPU
//! starvation is never taken for a failure unless it outlasts the pause
//! tolerance. Fixed seeds; several where one seed could be lucky.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vigil_proto::{Config, EventKind, State};
use vigil_sim::{Cluster, Seen, member_name as name};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Members send only valid packets, and the simulator's invariants held.
fn clean(c: &Cluster) {
    assert_eq!(c.decode_errors(), 0, "members only send valid packets");
    assert!(c.violations().is_empty(), "{:#?}", c.violations());
}

fn converged(n: usize, seed: u64) -> Cluster {
    let mut c = Cluster::joined(n, Config::lan(), seed, secs(2));
    assert!(c.run_until_true(secs(60), ms(500), Cluster::converged), "seed {seed}: no convergence");
    // Past the joins' own gossip, so that what follows is the steady state.
    c.run_for(secs(10));
    c
}

/// The first `failed` event about `about` of each member, from event `mark` on.
fn first_failed(c: &Cluster, mark: usize, about: usize) -> BTreeMap<usize, &Seen> {
    let mut by = BTreeMap::new();
    for s in &c.events()[mark..] {
        if s.event.kind == EventKind::Failed && s.event.member.name.as_str() == name(about) {
            by.entry(s.observer).or_insert(s);
        }
    }
    by
}

/// `failed` events from event `mark` on about members other than `except`.
fn others_failed<'a>(c: &'a Cluster, mark: usize, except: &[usize]) -> Vec<&'a Seen> {
    let except: BTreeSet<String> = except.iter().map(|&i| name(i)).collect();
    c.events()[mark..]
        .iter()
        .filter(|s| s.event.kind == EventKind::Failed && !except.contains(s.event.member.name.as_str()))
        .collect()
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

#[test]
fn a_process_exit_is_declared_failed_by_every_member_on_exit_evidence_within_a_fraction_of_a_second() {
    for seed in [1, 2, 3] {
        let mut c = converged(50, seed);
        let victim = 17;
        let (mark, at) = (c.events().len(), c.now());
        c.crash(victim);
        c.run_for(secs(2));
        let failed = first_failed(&c, mark, victim);
        let live = c.up();
        assert_eq!(failed.len(), live.len(), "seed {seed}: every live member declares it failed");
        // The declarers saw the exit evidence; everyone else took their word.
        let declarers: BTreeSet<String> = failed
            .values()
            .filter(|s| s.event.evidence.as_ref().is_some_and(|e| e.exit.is_some()))
            .map(|s| name(s.observer))
            .collect();
        assert!(!declarers.is_empty(), "seed {seed}: someone saw the process gone");
        for s in failed.values() {
            let ev = s.event.evidence.as_ref().expect("a failure carries evidence");
            let by = ev.declared_by.as_ref().map(|n| n.to_string()).unwrap_or_default();
            assert!(
                ev.exit.is_some() || declarers.contains(&by),
                "seed {seed}: member {} failed it on {ev:?}, not on exit evidence",
                s.observer
            );
        }
        let times = sorted(failed.values().map(|s| s.at - at).collect());
        let (first, full) = (times[0], times[times.len() - 1]);
        println!(
            "seed {seed}: exit of 1 of 50: first {first:?}, median {:?}, full {full:?}",
            times[times.len() / 2]
        );
        assert!(full < ms(250), "seed {seed}: full detection {full:?}");
        assert!(others_failed(&c, mark, &[victim]).is_empty(), "seed {seed}: nobody else accused");
        clean(&c);
    }
}

#[test]
fn a_pause_below_the_tolerance_is_never_failed() {
    let tolerance = Config::lan().pause_tolerance;
    assert_eq!(tolerance, secs(5));
    for n in [20, 50] {
        for seed in [1, 2, 3, 4, 5] {
            let mut c = converged(n, seed);
            let victim = 3;
            let mark = c.events().len();
            c.freeze(victim, secs(3));
            c.run_for(secs(3));
            let back = c.run_until_true(secs(1), ms(10), |c| {
                c.up().iter().all(|&o| c.view(o, victim) == Some(State::Alive))
            });
            c.run_for(secs(20));
            let suspected = c.events()[mark..]
                .iter()
                .filter(|s| {
                    s.event.kind == EventKind::Suspected && s.event.member.name.as_str() == name(victim)
                })
                .count();
            println!("{n} members, seed {seed}: a 3 s pause drew {suspected} suspicions");
            assert!(
                first_failed(&c, mark, victim).is_empty(),
                "{n} members, seed {seed}: a 3 s pause was failed"
            );
            assert!(back, "{n} members, seed {seed}: alive everywhere within 1 s of waking");
            assert!(others_failed(&c, mark, &[]).is_empty(), "{n} members, seed {seed}: nobody failed");
            clean(&c);
        }
    }
}

#[test]
fn a_ten_second_pause_is_failed_by_all_and_back_alive_within_a_second_with_nobody_else_accused() {
    for seed in [1, 2, 3] {
        let mut c = converged(20, seed);
        let victim = 5;
        let (mark, at) = (c.events().len(), c.now());
        c.freeze(victim, secs(10));
        c.run_for(secs(10));
        let failed = first_failed(&c, mark, victim);
        let others: Vec<usize> = c.up().into_iter().filter(|&o| o != victim).collect();
        assert_eq!(failed.len(), others.len(), "seed {seed}: failed by all: {failed:?}");
        for s in failed.values() {
            assert!(s.at - at >= Config::lan().pause_tolerance, "seed {seed}: failed before the tolerance");
        }
        let woke = c.now();
        let back = c.run_until_true(secs(1), ms(10), |c| {
            others.iter().all(|&o| c.view(o, victim) == Some(State::Alive))
        });
        println!("seed {seed}: a 10 s pause back alive everywhere {:?} after it ended", c.now() - woke);
        assert!(back, "seed {seed}: not alive everywhere within 1 s of waking");
        c.run_for(secs(20));
        assert!(others_failed(&c, mark, &[victim]).is_empty(), "seed {seed}: nobody else accused");
        clean(&c);
    }
}

#[test]
fn a_host_that_goes_silent_is_failed_after_the_pause_tolerance_and_within_a_second_and_a_half_more() {
    let tolerance = Config::lan().pause_tolerance;
    for n in [20, 50] {
        for seed in [1, 2, 3] {
            let mut c = converged(n, seed);
            let victim = 7;
            let (mark, at) = (c.events().len(), c.now());
            c.host_down(victim);
            c.run_for(secs(15));
            let failed = first_failed(&c, mark, victim);
            assert_eq!(failed.len(), c.up().len(), "{n} members, seed {seed}: failed by all");
            let times = sorted(failed.values().map(|s| s.at - at).collect());
            let median = times[times.len() / 2];
            println!(
                "{n} members, seed {seed}: host down: first {:?}, median {median:?}, full {:?}",
                times[0],
                times[times.len() - 1]
            );
            assert!(
                times[0] >= tolerance,
                "{n} members, seed {seed}: failed {:?} after, before the tolerance",
                times[0]
            );
            assert!(median <= tolerance + ms(1500), "{n} members, seed {seed}: median {median:?}");
            assert!(
                others_failed(&c, mark, &[victim]).is_empty(),
                "{n} members, seed {seed}: nobody else accused"
            );
            clean(&c);
        }
    }
}

#[test]
fn a_cpu_starved_member_declares_no_healthy_member_failed_and_is_itself_failed_at_most_once() {
    for seed in [1, 2, 3] {
        let mut c = converged(20, seed);
        let victim = 2;
        let mark = c.events().len();
        c.starve(victim, ms(1), secs(1), secs(60));
        c.run_for(secs(60));
        c.run_for(secs(30));
        let accused: Vec<_> = c.events()[mark..]
            .iter()
            .filter(|s| s.event.kind == EventKind::Failed && s.observer == victim)
            .map(|s| (s.at, s.event.member.name.to_string()))
            .collect();
        let mut times_failed: BTreeMap<usize, usize> = BTreeMap::new();
        for s in &c.events()[mark..] {
            if s.event.kind == EventKind::Failed && s.event.member.name.as_str() == name(victim) {
                *times_failed.entry(s.observer).or_default() += 1;
            }
        }
        println!(
            "seed {seed}: starved member failed by {} members, at most {} times by one; it failed {accused:?}",
            times_failed.len(),
            times_failed.values().max().copied().unwrap_or(0)
        );
        assert!(accused.is_empty(), "seed {seed}: the starved member failed {accused:?}");
        assert!(times_failed.values().all(|&t| t <= 1), "seed {seed}: flapping: {times_failed:?}");
        assert!(others_failed(&c, mark, &[victim]).is_empty(), "seed {seed}: nobody else accused");
        assert!(c.converged(), "seed {seed}: back in every view after the starvation");
        clean(&c);
    }
}

#[test]
fn a_pause_shorter_than_the_tolerance_less_a_probe_timeout_is_never_failed_even_with_loss() {
    // With loss, the ack of a probe sent just before the pause can be lost:
    // the silence then starts up to a probe timeout (lan: 0.5 s) before the
    // pause (a 4.9 s pause at 1% loss is failed: `vigil-sim --members 50
    // --duration 5m --seed 6 --loss 1% --freeze duration=4.9s,every=20s`).
    let margin = Config::lan().pause_tolerance - Config::lan().probe_timeout_max;
    let pause = margin - ms(100);
    for seed in [1, 2, 3, 4] {
        let mut c = converged(50, seed);
        c.set_loss(0.05);
        let mark = c.events().len();
        for victim in [4, 9, 14] {
            c.freeze(victim, pause);
            c.run_for(pause + secs(10));
        }
        c.set_loss(0.0);
        c.run_for(secs(10));
        let failed = others_failed(&c, mark, &[]);
        assert!(failed.is_empty(), "seed {seed}: a {pause:?} pause at 5% loss was failed: {failed:?}");
        clean(&c);
    }
}

/// Loss on every link for 60 s, with a process exit 30 s in; then no loss.
/// Returns the exit's detection time at each member and the false failures.
fn exit_at_thirty_percent_loss(c: &mut Cluster, victim: usize) -> (Vec<Duration>, Vec<String>) {
    let mark = c.events().len();
    c.set_loss(0.3);
    c.run_for(secs(30));
    let (crash_mark, at) = (c.events().len(), c.now());
    c.crash(victim);
    c.run_for(secs(30));
    c.set_loss(0.0);
    c.run_for(secs(10));
    let times = sorted(first_failed(c, crash_mark, victim).values().map(|s| s.at - at).collect());
    let false_failures = others_failed(c, mark, &[victim])
        .iter()
        .map(|s| format!("{} failed {} at {:?}", s.observer, s.event.member.name, s.at))
        .collect();
    (times, false_failures)
}

#[test]
fn a_process_exit_is_detected_by_everyone_within_a_second_at_thirty_percent_loss() {
    for seed in [1, 2, 3, 4, 5] {
        let mut c = converged(20, seed);
        let (times, _) = exit_at_thirty_percent_loss(&mut c, 11);
        println!(
            "seed {seed}: exit at 30% loss: first {:?}, median {:?}, full {:?}",
            times[0],
            times[times.len() / 2],
            times[times.len() - 1]
        );
        assert_eq!(times.len(), c.up().len(), "seed {seed}: detected by everyone");
        assert!(times[times.len() - 1] < secs(1), "seed {seed}: full detection {:?}", times.last());
        clean(&c);
    }
}

#[test]
fn at_thirty_percent_loss_for_a_minute_nobody_is_falsely_failed() {
    // Found by this test (seed 24): node 14's probe of node 12 failed, 14
    // suspected 12, 12 refuted and every member but 14 took it, 12's late
    // stream ack carried no refutation, and 14 declared 12 failed. The core
    // now asks a suspect again in the two periods before the deadline (over
    // a stream once, and three datagrams), its stream acks carry its
    // refutation, and a suspect heard from without refuting is reminded.
    let mut bad = Vec::new();
    for seed in 1..=30 {
        let mut c = converged(20, seed);
        let (times, false_failures) = exit_at_thirty_percent_loss(&mut c, 11);
        assert_eq!(times.len(), c.up().len(), "seed {seed}: the exit is detected by everyone");
        if !false_failures.is_empty() {
            bad.push((seed, false_failures));
        }
        clean(&c);
    }
    assert!(bad.is_empty(), "false failures at 30% loss: {bad:?}");
}
