//! What the agent's integration tests share: the agent binary, a loopback
//! cluster of it, and the one bounded wait.
#![allow(dead_code)] // each test file uses a part

pub(crate) mod openmetrics;

use std::path::Path;
use std::time::{Duration, Instant};

use vigil_agent::config::Preset;
use vigil_agent::harness::{Cluster, Loopback, Seen};

/// The `vigil` binary cargo built for these tests (with fault injection).
pub(crate) const EXE: &str = env!("CARGO_BIN_EXE_vigil");

/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `done` until it holds or `within` passes; true if it held.
pub(crate) fn try_wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `done` until it holds; panics with `what` after `within`.
pub(crate) fn wait_until(what: &str, within: Duration, done: impl FnMut() -> bool) {
    assert!(try_wait_until(within, done), "{what}: not within {within:?}");
}

/// An empty cluster of agents on loopback (local preset: 200 ms periods),
/// with data and logs under `dir`; every agent is killed when it drops.
pub(crate) fn cluster(dir: &Path) -> Cluster {
    Cluster::new(EXE, dir, Preset::Local, Loopback)
}

/// Waits until every running agent sees every running agent alive.
pub(crate) fn converged(c: &mut Cluster) {
    if let Err(e) = c.wait_converged(Duration::from_secs(20)) {
        panic!("the agents did not converge: {e}");
    }
}

/// The agents that reported `kind` about `member`, sorted, once each.
pub(crate) fn observers(seen: &[Seen], kind: &str, member: &str) -> Vec<String> {
    let mut by: Vec<String> = seen.iter().filter(|s| s.is(kind, member)).map(|s| s.by.clone()).collect();
    by.sort();
    by.dedup();
    by
}
