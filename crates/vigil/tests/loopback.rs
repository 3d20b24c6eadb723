//! Real members on 127.0.0.1 with free ports. Outcomes are asserted with
//! generous deadlines; timing figures live in benchmarks, not here. What
//! must "stay so" is checked over a number of protocol periods that covers
//! the protocol's own window for it, not over a fixed time.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{drain, failure_window, local, periods, start_cluster, state_of, wait_until};
use vigil::{Config, Event, EventKind, Faults, State, Vigil};

async fn cluster(n: usize) -> Vec<Vigil> {
    start_cluster((0..n).map(|i| local(&format!("m{i}"))).collect()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_converge_and_a_crash_is_detected_by_the_others() {
    let members = cluster(3).await;
    let mut events = members[0].subscribe();
    members[2].shutdown().await; // no leave: a crash, as far as the others can tell
    wait_until("m2 dead everywhere", Duration::from_secs(20), || {
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
    wait_until("m1 left at m0", Duration::from_secs(10), || state_of(&members[0], "m1") == Some(State::Left))
        .await;
    wait_until("m1 left at m2", Duration::from_secs(10), || state_of(&members[2], "m1") == Some(State::Left))
        .await;
    // Past the window in which a wrong failure would show: still left, never failed.
    periods(&[&members[0], &members[2]], failure_window(3)).await;
    assert_eq!(state_of(&members[0], "m1"), Some(State::Left));
    let seen = drain(&mut events);
    assert!(seen.iter().any(|e| e.kind == EventKind::Left && e.member.name.as_str() == "m1"));
    assert!(!seen.iter().any(|e| e.kind == EventKind::Failed), "{seen:#?}");
    members[0].shutdown().await;
    members[2].shutdown().await;
}

/// The address a seed that is not up yet will answer at: a TCP port held
/// for the whole test (so no other socket can take it), which refuses
/// (resets at once, as a port nothing listens on does) until the seed is
/// up, then forwards to it. (A plain close would read as a seed that read
/// the join and rejected it.)
struct LateSeed {
    addr: SocketAddr,
    attempts: Arc<AtomicUsize>,
    seed: Arc<Mutex<Option<SocketAddr>>>,
}

impl LateSeed {
    async fn start() -> LateSeed {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (attempts, seed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(None::<SocketAddr>)));
        let late =
            LateSeed { addr: listener.local_addr().unwrap(), attempts: attempts.clone(), seed: seed.clone() };
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                attempts.fetch_add(1, Ordering::SeqCst);
                let Some(to) = *seed.lock().unwrap() else {
                    let _ = inbound.set_zero_linger();
                    continue;
                };
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        late
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_retries_until_the_seed_comes_up_and_resolves_names() {
    let late = LateSeed::start().await;
    let mut config = local("joiner");
    config.join_backoff = (Duration::from_millis(100), Duration::from_millis(400));
    let joiner = Vigil::start(config).await.unwrap();
    let seeds = [format!("localhost:{}", late.addr.port())];
    let join = joiner.join(&seeds, Duration::from_secs(15));
    let start_seed = async {
        // The joiner began, and its first attempt found nobody.
        wait_until("a first join attempt", Duration::from_secs(10), || {
            late.attempts.load(Ordering::SeqCst) >= 1
        })
        .await;
        let seed = Vigil::start(local("seed")).await.expect("seed starts");
        *late.seed.lock().unwrap() = Some(seed.local_addr());
        seed
    };
    let (joined, seed) = tokio::join!(join, start_seed);
    assert_eq!(joined.expect("joined once the seed answered"), 2);
    assert!(late.attempts.load(Ordering::SeqCst) >= 2, "retried");
    wait_until("seed sees the joiner", Duration::from_secs(5), || {
        state_of(&seed, "joiner") == Some(State::Alive)
    })
    .await;
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
    wait_until("a probes c indirectly", Duration::from_secs(10), || {
        a.metrics().protocol.indirect_probes_sent > 0
    })
    .await;
    // Past the window in which a wrong failure of c would show at a.
    periods(&[a], failure_window(4)).await;
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
    wait_until("b6 alive at a6", Duration::from_secs(10), || state_of(&a, "b6") == Some(State::Alive)).await;
    a.shutdown().await;
    b.shutdown().await;
}
