//! The simulator's contract: determinism, example scenarios, faults, and
//! invariants that catch the bugs they exist for. Small clusters: debug builds
//! run this in seconds.

use std::path::Path;

use vigil_sim::invariants::{IncarnationsNeverGoBack, LeftNeverFailed};
use vigil_sim::{NoProgress, Report, Scenario, run};

fn scenario(text: &str) -> Scenario {
    Scenario::from_toml(text).unwrap()
}

fn check(r: &Report) {
    assert!(r.passed(), "{r}");
    assert_eq!(r.decode_errors, 0, "{r}");
}

#[test]
fn same_seed_gives_a_byte_identical_trace() {
    let text = r#"
        members = 16
        duration = "30s"
        warmup = "5s"
        quiet = "10s"
        trace = true
        [network]
        loss = "2%"
        latency = "lognormal:300us,0.5"
        [crashes]
        count = 2
        restart_after = "5s"
        [[freeze]]
        duration = "1s"
        every = "7s"
    "#;
    let s = scenario(text);
    let a = run(&s, &mut NoProgress).unwrap();
    let b = run(&s, &mut NoProgress).unwrap();
    let (ta, tb) = (a.trace.clone().unwrap(), b.trace.clone().unwrap());
    assert!(ta.lines().count() > 1000, "a trace of every step");
    assert!(ta == tb, "same seed, same trace");
    assert_eq!(a.trace_digest, b.trace_digest);
    let mut other = s.clone();
    other.seed = 2;
    let c = run(&other, &mut NoProgress).unwrap();
    assert_ne!(c.trace_digest, a.trace_digest, "another seed, another run");
}

#[test]
fn every_example_scenario_parses_and_runs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut seen = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let mut s = Scenario::from_toml(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Short and small, with the same faults.
        s.members = s.members.min(24);
        for p in &mut s.partition {
            p.at = vigil_sim::Dur::secs(12);
            p.heal_after = Some(vigil_sim::Dur::secs(10));
        }
        for m in &mut s.mass_failure {
            m.at = vigil_sim::Dur::secs(15);
            m.restart_after = m.restart_after.map(|_| vigil_sim::Dur::secs(10));
        }
        s.duration = vigil_sim::Dur::secs(if s.preset == vigil_sim::Preset::Wan { 90 } else { 60 });
        s.warmup = vigil_sim::Dur::secs(5);
        s.quiet = vigil_sim::Dur::secs(if s.preset == vigil_sim::Preset::Wan { 45 } else { 25 });
        if let Some(c) = &mut s.crashes {
            c.count = c.count.min(3);
        }
        let r = run(&s, &mut NoProgress).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        check(&r);
        seen += 1;
    }
    assert!(seen >= 4, "example scenarios ship with the repo");
}

#[test]
fn crashes_are_detected_by_everyone_without_false_failures() {
    let r = run(
        &scenario(
            r#"
            members = 40
            duration = "90s"
            [network]
            loss = "1%"
            [crashes]
            count = 4
            restart_after = "12s"
        "#,
        ),
        &mut NoProgress,
    )
    .unwrap();
    check(&r);
    assert_eq!(r.detection.crashes, 4);
    assert_eq!(r.detection.undetected, 0, "{r}");
    assert_eq!(r.false_failures.never_paused, 0, "{r}");
    assert!(r.detection.full.median.unwrap() < 6.0, "{r}");
    assert!(r.traffic.bytes_per_member_per_sec_mean > 0.0);
    assert_eq!(r.dissemination.reach_100.count, r.dissemination.updates, "{r}");
}

#[test]
fn a_member_frozen_for_less_than_two_periods_is_never_declared_failed() {
    let r = run(
        &scenario(
            r#"
            members = 30
            duration = "80s"
            [network]
            loss = "1%"
            [[freeze]]
            duration = "1.8s"
            every = "6s"
            members = "random:2"
        "#,
        ),
        &mut NoProgress,
    )
    .unwrap();
    check(&r);
    assert_eq!(r.false_failures.total, 0, "{r}");
}

#[test]
fn a_healed_partition_converges_and_its_failures_are_attributed_to_it() {
    let r = run(
        &scenario(
            r#"
            members = 20
            duration = "90s"
            quiet = "40s"
            [[partition]]
            at = "15s"
            groups = ["0%..40%"]
            heal_after = "20s"
        "#,
        ),
        &mut NoProgress,
    )
    .unwrap();
    check(&r);
    assert!(r.false_failures.partitioned > 0, "each side declares the other failed: {r}");
    assert_eq!(r.false_failures.never_paused, 0, "{r}");
    assert!(r.quiet_converged_after_s.is_some(), "{r}");
}

#[test]
fn churn_and_mass_failure_keep_every_invariant() {
    let r = run(
        &scenario(
            r#"
            members = 30
            duration = "90s"
            [network]
            loss = "1%"
            [churn]
            joins_per_sec = 0.3
            leaves_per_sec = 0.3
            [[mass_failure]]
            at = "20s"
            fraction = "20%"
            restart_after = "15s"
            [[slow]]
            members = "2"
            delay = "150ms"
        "#,
        ),
        &mut NoProgress,
    )
    .unwrap();
    check(&r);
    assert!(r.members_total > 30, "new members joined");
    assert!(r.joins.count > 0 && r.joins.unconverged == 0, "{r}");
    assert!(r.detection.crashes >= 4, "{r}");
}

#[test]
fn the_invariants_catch_the_bugs_they_exist_for() {
    // A view whose incarnation goes back (a stale claim accepted over a newer one).
    let mut inc = IncarnationsNeverGoBack::new(u64::MAX);
    assert!(inc.observe(10, 1, 0, 2, 7).is_none());
    let v = inc.observe(20, 1, 0, 2, 6).expect("caught");
    assert!(v.detail.contains("incarnation 6 after 7"), "{}", v.detail);
    // A member declared failed after it left gracefully.
    let mut left = LeftNeverFailed::default();
    left.on_leave(4, 3);
    assert!(left.on_failed(30, 1, 4, 3).is_some());
}

#[test]
fn a_failing_run_prints_a_command_that_replays_it() {
    let s = scenario("members = 3\nseed = 99\nname = \"replay me\"");
    let cmd = vigil_sim::repro_command(&s, None);
    assert!(cmd.contains("--seed 99") && cmd.contains("--scenario"), "{cmd}");
    let file = cmd.split_whitespace().skip_while(|w| *w != "--scenario").nth(1).unwrap();
    let back = Scenario::from_toml(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(back, s);
}
