//! What the runtime's integration tests share: bounded waits on a
//! condition, and waits measured in protocol periods rather than seconds.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use tokio::sync::broadcast;
use vigil::{Event, Vigil};

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
