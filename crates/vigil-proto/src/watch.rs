//! Whom this member watches: the `watch_count` active members that follow it
//! on a ring ordered by name hash, so that every member is watched by as
//! many others. The runtime holds a silent stream (TCP) open to each; when
//! one ends, the watched process exited and the kernel closed it.

use std::net::SocketAddr;

use crate::table::Table;

/// The watched members' addresses, kept in step with the table.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    addrs: Vec<SocketAddr>,
    /// The membership changed since the list was computed.
    stale: bool,
    /// Bumped each time the list changes.
    version: u64,
}

impl Watches {
    /// The membership changed: recompute before the list is next read.
    pub(crate) fn invalidate(&mut self) {
        self.stale = true;
    }

    /// Recomputes the list if the membership changed: the first `k` active
    /// members after `hash` (this member's) on the ring; none while `leaving`.
    pub(crate) fn refresh(&mut self, table: &Table, hash: u64, k: usize, leaving: bool) {
        if !std::mem::take(&mut self.stale) {
            return;
        }
        let old = self.addrs.len();
        if !leaving {
            let next = table.ring_after(hash).filter(|(_, e)| e.state.is_active()).map(|(_, e)| e.addr());
            self.addrs.extend(next.take(k));
        }
        if self.addrs[..old] != self.addrs[old..] {
            self.version += 1;
        }
        self.addrs.drain(..old);
    }

    pub(crate) fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Changes whenever [`Watches::addrs`] does (and only then).
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}
