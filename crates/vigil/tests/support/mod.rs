//! What the runtime's integration tests share: members on loopback, bounded
//! waits on a condition, and waits measured in protocol periods rather than
//! seconds.

#![allow(dead_code, unreachable_pub)]

pub mod wire;

use std::time::Duration;

use tokio::sync::broadcast;
use vigil::{Config, Event, State, Vigil};

/// A member on 127.0.0.1 (a free port) with the `local()` protocol preset.
pub fn local(name: &str) -> Config {
    Config::new(name, "127.0.0.1:0".parse().unwrap()).with_protocol(vigil_proto::Config::local())
}

/// Starts a member from each config, joins them all through the first, and
/// waits until every one holds every other alive.
pub async fn start_cluster(configs: Vec<Config>) -> Vec<Vigil> {
    let n = configs.len();
    let mut members = Vec::new();
    for c in configs {
        members.push(Vigil::start(c).await.expect("start"));
    }
    let seed = members[0].local_addr().to_string();
    for m in &members[1..] {
        m.join(std::slice::from_ref(&seed), Duration::from_secs(10)).await.expect("join");
    }
    wait_until("all members alive everywhere", Duration::from_secs(20), || {
        members.iter().all(|m| alive_count(m) == n)
    })
    .await;
    members
}

/// Members `m` holds alive, itself included.
pub fn alive_count(m: &Vigil) -> usize {
    m.members().iter().filter(|x| x.state == State::Alive).count()
}

/// The state `m` holds `name` in.
pub fn state_of(m: &Vigil, name: &str) -> Option<State> {
    m.member(name).map(|x| x.state)
}

/// Polls `done` every 20 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + limit;
    while !done() {
        assert!(tokio::time::Instant::now() < end, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event received so far (without waiting).
pub fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Waits until each of `members` has sent `n` more probes than now: each
/// probes one member per protocol period, so at least `n - 1` periods have
/// passed for every one of them (more if Lifeguard slowed it down).
pub async fn periods(members: &[&Vigil], n: u64) {
    let probes = |m: &Vigil| m.metrics().protocol.probes_sent;
    let start: Vec<u64> = members.iter().map(|m| probes(m)).collect();
    wait_until(&format!("{n} protocol periods"), Duration::from_secs(30), || {
        members.iter().zip(&start).all(|(m, s)| probes(m) >= s + n)
    })
    .await;
}

/// Protocol periods within which a member of a cluster of `n` that is
/// wrongly about to be suspected has been: probing goes round the other
/// `n - 1` members in a random order each round, so one member can wait up
/// to `2(n - 1) - 1` periods for its next probe; one more for the probe and
/// its indirect probes, and one to spare.
pub fn suspicion_window(n: u64) -> u64 {
    2 * n
}

/// Protocol periods within which a member of a cluster of `n` that is
/// wrongly about to be declared failed has been: the suspicion window, and
/// the longest suspicion (three periods with `Config::local()` and fewer
/// than ten members).
pub fn failure_window(n: u64) -> u64 {
    suspicion_window(n) + 3
}
