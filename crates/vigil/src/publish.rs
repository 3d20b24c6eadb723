//! Snapshots the handle reads without asking the driver: the member list and
//! the counters, refreshed within 50 ms of a change and every 500 ms (phi and
//! round-trip times move all the time), plus live traffic counters.
//!
//! The periodic refresh wakes the driver only while someone reads the
//! snapshots: a reader marks them wanted, and the next refresh is then due
//! 500 ms after the last. Unread, they are refreshed at the driver's own
//! wake-ups (its probes, packets received: at least once per protocol
//! period) once 500 ms old, so an idle member is not woken for them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant as TokioInstant;
use vigil_proto::Member;

use crate::metrics::{Metrics, Traffic};

/// How often snapshots are refreshed at the least.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Longest delay before a change made by a command shows in the snapshot.
const PUBLISH_MIN_GAP: Duration = Duration::from_millis(50);

/// What the driver publishes and the handle reads.
#[derive(Debug)]
pub(crate) struct Shared {
    members: RwLock<Arc<Vec<Member>>>,
    metrics: RwLock<Metrics>,
    traffic: Traffic,
    local_addr: SocketAddr,
    /// Set when this member stopped because a live member at that address
    /// has its name.
    name_taken: tokio::sync::watch::Sender<Option<SocketAddr>>,
    /// The snapshots were read since the last refresh.
    wanted: AtomicBool,
}

impl Shared {
    pub(crate) fn new(local_addr: SocketAddr) -> Shared {
        Shared {
            members: RwLock::new(Arc::new(Vec::new())),
            metrics: RwLock::new(Metrics::default()),
            traffic: Traffic::default(),
            local_addr,
            name_taken: tokio::sync::watch::Sender::new(None),
            wanted: AtomicBool::new(false),
        }
    }

    /// The address other members reach this one at.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the live member that has this member's name is, once this one
    /// stopped for it.
    pub(crate) fn name_taken(&self) -> Option<SocketAddr> {
        *self.name_taken.borrow()
    }

    /// Completes once this member stopped because its name is taken, with
    /// where the live member is (no polling: the driver's set wakes it).
    pub(crate) async fn name_taken_at(&self) -> SocketAddr {
        let mut rx = self.name_taken.subscribe();
        loop {
            if let Some(at) = *rx.borrow_and_update() {
                return at;
            }
            // The sender lives as long as `self`.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// This member stopped: the live member at `at` has its name.
    pub(crate) fn set_name_taken(&self, at: SocketAddr) {
        self.name_taken.send_replace(Some(at));
    }

    /// Traffic counters, updated as packets pass.
    pub(crate) fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The latest member list.
    pub(crate) fn members(&self) -> Arc<Vec<Member>> {
        self.wanted.store(true, Ordering::Relaxed);
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The latest counters, with live traffic.
    pub(crate) fn metrics(&self) -> Metrics {
        self.wanted.store(true, Ordering::Relaxed);
        let mut m = self.metrics.read().map(|m| m.clone()).unwrap_or_default();
        m.traffic = self.traffic.snapshot();
        m
    }
}

/// When to publish next, and publishing.
#[derive(Debug)]
pub(crate) struct Publisher {
    shared: Arc<Shared>,
    /// The last refresh.
    last: TokioInstant,
    /// A change made by a command: refresh by then.
    soon: Option<TokioInstant>,
}

impl Publisher {
    pub(crate) fn new(shared: Arc<Shared>) -> Publisher {
        let now = TokioInstant::now();
        Publisher { shared, last: now, soon: Some(now) }
    }

    /// The shared state it publishes to.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// When the driver must wake for a refresh: after a change, or 500 ms
    /// after the last while the snapshots are read; `None`: only at its
    /// own wake-ups ([`Publisher::stale`]).
    pub(crate) fn due(&self) -> Option<TokioInstant> {
        let periodic = self.shared.wanted.load(Ordering::Relaxed).then(|| self.last + PUBLISH_EVERY);
        [self.soon, periodic].into_iter().flatten().min()
    }

    /// Whether a refresh is due at `now`: a change waits, or the last is 500 ms old.
    pub(crate) fn stale(&self, now: TokioInstant) -> bool {
        self.soon.is_some_and(|s| now >= s) || now >= self.last + PUBLISH_EVERY
    }

    /// Something changed: publish within [`PUBLISH_MIN_GAP`].
    pub(crate) fn changed(&mut self) {
        let soon = TokioInstant::now() + PUBLISH_MIN_GAP;
        if self.soon.is_none_or(|s| s > soon) {
            self.soon = Some(soon);
        }
    }

    /// Publishes a new snapshot.
    pub(crate) fn publish(&mut self, members: Vec<Member>, mut metrics: Metrics) {
        self.shared.wanted.store(false, Ordering::Relaxed);
        if let Ok(mut m) = self.shared.members.write() {
            *m = Arc::new(members);
        }
        metrics.traffic = self.shared.traffic.snapshot();
        if let Ok(mut m) = self.shared.metrics.write() {
            *m = metrics;
        }
        self.last = TokioInstant::now();
        self.soon = None;
    }
}
