//! Real members on 127.0.0.1 with free ports. Outcomes are asserted with
//! generous deadlines; timing figures live in benchmarks, not here.

use std::time::Duration;

use tokio::sync::broadcast;
use vigil::{Config, Event, EventKind, Faults, State, Vigil};

fn local(name: &str) -> Config {
    Config::new(name, "127.0.0.1:0".parse().unwrap()).with_protocol(vigil_proto::Config::local())
}

async fn cluster(n: usize) -> Vec<Vigil> {
    let mut members = Vec::new();
    for i in 0..n {
        members.push(Vigil::start(local(&format!("m{i}"))).await.expect("start"));
    }
    let seed = members[0].local_addr().to_string();
    for m in &members[1..] {
        m.join(std::slice::from_ref(&seed), Duration::from_secs(10)).await.expect("join");
    }
    wait_until(Duration::from_secs(20), || members.iter().all(|m| alive_count(m) == n)).await;
    members
}

fn alive_count(m: &Vigil) -> usize {
    m.members().iter().filter(|x| x.state == State::Alive).count()
}

fn state_of(m: &Vigil, name: &str) -> Option<State> {
    m.member(name).map(|x| x.state)
}

/// Polls `done` every 50 ms until it holds; panics after `limit`.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < end, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every event received so far (without waiting).
fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_converge_and_a_crash_is_detected_by_the_others() {
    let members = cluster(3).await;
    let mut events = members[0].subscribe();
    members[2].shutdown().await; // no leave: a crash, as far as the others can tell
    wait_until(Duration::from_secs(20), || {
        members[..2].iter().all(|m| state_of(m, "m2") == Some(State::Dead))
    })
    .await;
    let failed: Vec<Event> = drain(&mut events).into_iter().filter(|e| e.kind == EventKind::Failed).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0].member.name.as_str(), "m2");
    assert!(failed[0].evidence.is_some(), "a failure carries its evidence");
    let m = members[0].metrics();
    let pings = m.traffic.iter().find(|k| k.kind == "ping").unwrap();
    assert!(pings.packets_out > 0 && pings.bytes_out > 0, "{m:#?}");
    for m in &members[..2] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_is_left_everywhere_and_never_failed() {
    let members = cluster(3).await;
    let mut events = members[0].subscribe();
    assert!(members[1].leave(Duration::from_secs(3)).await.unwrap(), "left went out");
    members[1].shutdown().await;
    wait_until(Duration::from_secs(10), || state_of(&members[0], "m1") == Some(State::Left)).await;
    wait_until(Duration::from_secs(10), || state_of(&members[2], "m1") == Some(State::Left)).await;
    // Well past the suspicion window: still left, never failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state_of(&members[0], "m1"), Some(State::Left));
    let seen = drain(&mut events);
    assert!(seen.iter().any(|e| e.kind == EventKind::Left && e.member.name.as_str() == "m1"));
    assert!(!seen.iter().any(|e| e.kind == EventKind::Failed), "{seen:#?}");
    members[0].shutdown().await;
    members[2].shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_retries_until_the_seed_comes_up_and_resolves_names() {
    // Find a free port, then start the seed on it only after the joiner began.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let joiner = Vigil::start(local("joiner")).await.unwrap();
    let seeds = [format!("localhost:{port}")];
    let join = joiner.join(&seeds, Duration::from_secs(15));
    let late_seed = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Vigil::start(
            Config::new("seed", format!("127.0.0.1:{port}").parse().unwrap())
                .with_protocol(vigil_proto::Config::local()),
        )
        .await
        .expect("seed starts")
    };
    let (joined, seed) = tokio::join!(join, late_seed);
    assert_eq!(joined.expect("joined once the seed answered"), 2);
    wait_until(Duration::from_secs(5), || state_of(&seed, "joiner") == Some(State::Alive)).await;
    joiner.shutdown().await;
    seed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_direct_path_is_bridged_by_indirect_probes() {
    let members = cluster(4).await;
    let (a, c) = (&members[0], &members[2]);
    let mut events = a.subscribe();
    a.set_faults(Some(Faults::default().block(c.local_addr()))).await.unwrap();
    c.set_faults(Some(Faults::default().block(a.local_addr()))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let m = a.metrics();
    assert!(m.protocol.indirect_probes_sent > 0, "a's probes of c went indirect: {m:#?}");
    assert!(m.fault_drops > 0);
    let failed: Vec<_> = drain(&mut events).into_iter().filter(|e| e.kind == EventKind::Failed).collect();
    assert!(failed.is_empty(), "nobody fails when only one path is cut: {failed:#?}");
    assert_eq!(state_of(a, "m2"), Some(State::Alive));
    for m in &members {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_is_refused_with_the_field_named() {
    let mut c = local("x");
    c.meta = vec![0; 513];
    let e = Vigil::start(c).await.unwrap_err();
    assert!(e.to_string().contains("meta"), "{e}");
    let c = Config::new("y", "0.0.0.0:0".parse().unwrap());
    let e = Vigil::start(c).await.unwrap_err();
    assert!(e.to_string().contains("advertise"), "{e}");
    let e = Vigil::start(local("")).await.unwrap_err();
    assert!(e.to_string().contains("name"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_works() {
    let cfg =
        |n: &str| Config::new(n, "[::1]:0".parse().unwrap()).with_protocol(vigil_proto::Config::local());
    let (Ok(a), Ok(b)) = (Vigil::start(cfg("a6")).await, Vigil::start(cfg("b6")).await) else {
        eprintln!("no IPv6 loopback on this machine: skipped");
        return;
    };
    b.join(&[a.local_addr().to_string()], Duration::from_secs(10)).await.unwrap();
    wait_until(Duration::from_secs(10), || state_of(&a, "b6") == Some(State::Alive)).await;
    a.shutdown().await;
    b.shutdown().await;
}
