//! The simulator's contract: determinism, example scenarios, faults, and
//! invariants that catch the bugs they exist for. Small clusters: debug builds
//! run this in seconds.

use std::path::Path;

use vigil_sim::invariants::{IncarnationsNeverGoBack, LeftNeverFailed, PausesBelowToleranceNeverFailed};
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
    // A member paused for 3 s, with a 5 s tolerance, declared failed when it woke.
    let mut pauses = PausesBelowToleranceNeverFailed::new(5_000_000, 500_000, 10_000_000);
    pauses.on_freeze(6, 20_000_000, 23_000_000);
    assert!(pauses.on_failed(23_000_500, 2, 6).is_some());
}

#[test]
fn every_failure_class_replays_from_its_seed_and_is_reported_on_its_own() {
    let text = r#"
        members = 20
        duration = "2m"
        warmup = "10s"
        quiet = "30s"
        [crashes]
        count = 3
        restart_after = "10s"
        [host_downs]
        count = 2
        restart_after = "15s"
        [[freeze]]
        duration = "3s"
        every = "20s"
        [[starve]]
        at = "20s"
        duration = "30s"
        run = "1ms"
        every = "1s"
        members = "4"
    "#;
    let s = scenario(text);
    let a = run(&s, &mut NoProgress).unwrap();
    let b = run(&s, &mut NoProgress).unwrap();
    assert_eq!(a.trace_digest, b.trace_digest, "same seed, same run");
    check(&a);
    let c = &a.by_class;
    assert_eq!((c.exit.faults, c.host_down.faults), (3, 2), "{a}");
    assert_eq!(a.detection.crashes, 5, "both count as crashes: {a}");
    assert_eq!((c.exit.undetected, c.host_down.undetected), (0, 0), "{a}");
    assert!(c.exit.full.median.unwrap() < 1.0, "exits leave evidence: {a}");
    assert!(c.host_down.first.max.unwrap() >= 5.0, "silence waits for the pause tolerance: {a}");
    assert_eq!((c.pause.pauses, c.pause.below_tolerance, c.pause.below_tolerance_failed), (4, 4, 0), "{a}");
    assert_eq!(c.starve.starved, 1, "{a}");
    assert_eq!((c.starve.accused, c.starve.max_failed_by_one), (0, 0), "{a}");
    assert_eq!((a.false_failures.never_paused, a.false_failures.paused_below_tolerance), (0, 0), "{a}");
    let json = a.to_json();
    for key in ["\"by_class\"", "\"host_down\"", "\"per_member\"", "\"paused_below_tolerance\""] {
        assert!(json.contains(key), "{key} in the JSON");
    }
}

#[test]
fn scenario_files_and_flags_name_the_failure_classes_alike() {
    // The protocol table as `vigil tune` prints it (typed values) is read too.
    let s = scenario(
        r#"
        members = 10
        duration = "60s"
        [[crash]]
        at = "20s"
        [[host_down]]
        at = "25s"
        members = "3"
        [[starve]]
        members = "random:2"
        [protocol]
        pause_tolerance = "7s"
        watch_count = 3
        suspicion_min_mult = 1.5
        tcp_fallback = true
    "#,
    );
    assert_eq!((s.crash.len(), s.host_down.len(), s.starve.len()), (1, 1, 1));
    assert_eq!(s.starve[0].every, vigil_sim::Dur::secs(1), "defaults: 1 ms of every second");
    let c = s.protocol_config().unwrap();
    assert_eq!((c.pause_tolerance, c.watch_count), (std::time::Duration::from_secs(7), 3));
    assert_eq!(c.suspicion_min_mult, 1.5);
    assert_eq!(Scenario::from_toml(&s.to_toml()).unwrap(), s, "written back, read back");
    assert!(Scenario::from_toml("[[starve]]\nrun = \"1s\"\nevery = \"1s\"").is_err(), "runs all the time");

    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: vigil_sim::SimArgs,
    }
    let flags = Cli::try_parse_from([
        "vigil-sim",
        "--host-down",
        "count=2,restart_after=5s",
        "--host-down",
        "at=30s,members=4",
        "--crash",
        "3",
        "--starve",
        "members=1,at=30s,duration=60s,run=1ms,every=1s",
        "--set",
        "pause_tolerance=3s",
        "--set",
        "watch_count=1",
    ])
    .unwrap();
    let s = flags.sim.scenario().unwrap();
    assert_eq!(s.host_downs.as_ref().map(|h| h.count), Some(2));
    assert_eq!((s.host_down.len(), s.crashes.as_ref().map(|c| c.count)), (1, Some(3)));
    assert_eq!(s.starve[0].duration, vigil_sim::Dur::secs(60));
    let c = s.protocol_config().unwrap();
    assert_eq!((c.pause_tolerance, c.watch_count), (std::time::Duration::from_secs(3), 1));
    let bad = Cli::try_parse_from(["vigil-sim", "--starve", "cpu=1%"]).unwrap().sim.scenario();
    assert!(bad.unwrap_err().to_string().contains("cpu"));
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
