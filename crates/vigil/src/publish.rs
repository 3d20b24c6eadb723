//! Snapshots the handle reads without asking the driver: the member list and
//! the counters, refreshed within 50 ms of a change and every 500 ms (phi and
//! round-trip times move all the time), plus live traffic counters.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
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
    name_taken: Mutex<Option<SocketAddr>>,
}

impl Shared {
    pub(crate) fn new(local_addr: SocketAddr) -> Shared {
        Shared {
            members: RwLock::new(Arc::new(Vec::new())),
            metrics: RwLock::new(Metrics::default()),
            traffic: Traffic::default(),
            local_addr,
            name_taken: Mutex::new(None),
        }
    }

    /// The address other members reach this one at.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the live member that has this member's name is, once this one
    /// stopped for it.
    pub(crate) fn name_taken(&self) -> Option<SocketAddr> {
        self.name_taken.lock().ok().and_then(|n| *n)
    }

    /// This member stopped: the live member at `at` has its name.
    pub(crate) fn set_name_taken(&self, at: SocketAddr) {
        if let Ok(mut n) = self.name_taken.lock() {
            *n = Some(at);
        }
    }

    /// Traffic counters, updated as packets pass.
    pub(crate) fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The latest member list.
    pub(crate) fn members(&self) -> Arc<Vec<Member>> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The latest counters, with live traffic.
    pub(crate) fn metrics(&self) -> Metrics {
        let mut m = self.metrics.read().map(|m| m.clone()).unwrap_or_default();
        m.traffic = self.traffic.snapshot();
        m
    }
}

/// When to publish next, and publishing.
#[derive(Debug)]
pub(crate) struct Publisher {
    shared: Arc<Shared>,
    at: TokioInstant,
}

impl Publisher {
    pub(crate) fn new(shared: Arc<Shared>) -> Publisher {
        Publisher { shared, at: TokioInstant::now() }
    }

    /// The shared state it publishes to.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// When the next refresh is due.
    pub(crate) fn due(&self) -> TokioInstant {
        self.at
    }

    /// Something changed: publish within [`PUBLISH_MIN_GAP`].
    pub(crate) fn changed(&mut self) {
        let soon = TokioInstant::now() + PUBLISH_MIN_GAP;
        if self.at > soon {
            self.at = soon;
        }
    }

    /// Publishes a new snapshot; the next is due in [`PUBLISH_EVERY`].
    pub(crate) fn publish(&mut self, members: Vec<Member>, mut metrics: Metrics) {
        if let Ok(mut m) = self.shared.members.write() {
            *m = Arc::new(members);
        }
        metrics.traffic = self.shared.traffic.snapshot();
        if let Ok(mut m) = self.shared.metrics.write() {
            *m = metrics;
        }
        self.at = TokioInstant::now() + PUBLISH_EVERY;
    }
}
