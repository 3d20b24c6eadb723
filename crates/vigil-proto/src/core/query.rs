//! What the core tells about itself and the membership, read by the caller
//! at any time: no input, no state change.

use super::Core;
use std::net::SocketAddr;

use crate::config::Config;
use crate::hash::{claim_digest, name_hash};
use crate::member::{Member, Name, State};
use crate::stats::Stats;
use crate::time::Instant;

impl Core {
    /// This member's name.
    pub fn name(&self) -> &Name {
        self.cx.local.name()
    }

    /// This member's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.cx.local.incarnation()
    }

    /// Lifeguard local health score: 0 is healthy; each point stretches this
    /// member's probe interval and timeout by one more multiple.
    pub fn local_health(&self) -> u32 {
        self.cx.local.health()
    }

    /// When this member last noticed it had not been running, and for how
    /// long (see [`Core::handle_timeout`]).
    pub fn last_stall(&self) -> Option<(Instant, std::time::Duration)> {
        self.cx.local.last_stall()
    }

    /// The members this member watches (the addresses to hold a silent
    /// stream open to; see [`Config::watch_count`]). It follows the
    /// membership: compare it after every input.
    pub fn watched(&self) -> &[SocketAddr] {
        self.cx.watches.addrs()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.cx.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cx.config
    }

    /// Alive and suspect members, this one included.
    pub fn num_members(&self) -> usize {
        self.cx.num_members()
    }

    /// Changes waiting to be gossiped.
    pub fn pending_updates(&self) -> usize {
        self.cx.out.pending()
    }

    /// Snapshot of this member. Its `since` is when it started or last
    /// changed what it says of itself (metadata, health, a refutation).
    pub fn local_member(&self, _now: Instant) -> Member {
        self.cx.local.member()
    }

    /// Snapshot of one member (this one included), if known.
    pub fn member(&self, name: &str, now: Instant) -> Option<Member> {
        if name == self.cx.local.name().as_str() {
            return Some(self.local_member(now));
        }
        let i = self.cx.table.get(name)?;
        Some(self.cx.snapshot(i, now))
    }

    /// Snapshots of every known member, this one first, then by name.
    pub fn members(&self, now: Instant) -> Vec<Member> {
        let mut out = Vec::with_capacity(self.cx.table.len() + 1);
        out.push(self.local_member(now));
        out.extend(self.cx.table.by_name().map(|(i, _)| self.cx.snapshot(i, now)));
        out
    }

    /// A 64-bit digest of this member's view: every member it holds alive or
    /// suspect (itself included, unless leaving), with its incarnation and
    /// state. Two members with equal digests hold the same view; compare it
    /// across members (in metrics, or in the simulator) to see that views
    /// converged, and with [`view_digest`](crate::view_digest) of the members
    /// known to be up.
    pub fn membership_digest(&self) -> u64 {
        let local = &self.cx.local;
        let own = if local.leaving() {
            0
        } else {
            claim_digest(name_hash(local.name().as_str()), local.incarnation(), State::Alive)
        };
        // Kept up to date by the table at every change: O(1), not O(n).
        own.wrapping_add(self.cx.table.digest())
    }
}
