//! This member as it speaks of itself: identity, incarnation, whether it is
//! leaving, and Lifeguard's local health score.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::{MemberState, Update};
use crate::hash::name_hash;
use crate::member::{Identity, Member, Name, State};
use crate::time::Instant;

/// This member's own state. Only this member raises its incarnation.
#[derive(Debug)]
pub(crate) struct Local {
    me: Identity,
    incarnation: u64,
    leaving: bool,
    /// When this member started, or last changed what it says of itself.
    since: Instant,
    /// Lifeguard local health: 0 is healthy, at most `max_health - 1`.
    health: u32,
    max_health: u32,
    /// The name's hash: this member's place on the watch ring.
    hash: u64,
    /// The last time this member noticed it had not been running, and for how long.
    last_stall: Option<(Instant, Duration)>,
    /// This member replaces a live member of the same name (its joins say so).
    takeover: bool,
    /// A table came back from a join (or any full exchange): joined.
    joined: bool,
    /// Another live process holds this member's name at this address: this
    /// one stopped (refused at its join, or it yields).
    yielded: Option<SocketAddr>,
    /// When alive claims about this member from another address were refuted.
    foreign_claims: VecDeque<Instant>,
}

impl Local {
    pub(crate) fn new(me: Identity, incarnation: u64, max_health: u32, now: Instant) -> Local {
        let hash = name_hash(me.name.as_str());
        Local {
            me,
            incarnation,
            leaving: false,
            since: now,
            health: 0,
            max_health,
            hash,
            last_stall: None,
            takeover: false,
            joined: false,
            yielded: None,
            foreign_claims: VecDeque::new(),
        }
    }

    pub(crate) fn identity(&self) -> &Identity {
        &self.me
    }

    pub(crate) fn name(&self) -> &Name {
        &self.me.name
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash
    }

    /// This member was not running for `by`, up to `now`: a sign of its own
    /// slowness, like a missed nack (Lifeguard): one point per protocol
    /// `period` lost (at least one). Remembered for operators.
    pub(crate) fn stalled(&mut self, now: Instant, by: Duration, period: Duration) {
        let periods = (by.as_secs_f64() / period.as_secs_f64().max(1e-6)).ceil();
        self.raise_health(if periods >= 64.0 { 64 } else { (periods as u32).max(1) });
        self.last_stall = Some((now, by));
    }

    pub(crate) fn last_stall(&self) -> Option<(Instant, Duration)> {
        self.last_stall
    }

    pub(crate) fn set_takeover(&mut self) {
        self.takeover = true;
    }

    pub(crate) fn takeover(&self) -> bool {
        self.takeover
    }

    pub(crate) fn joined(&self) -> bool {
        self.joined
    }

    pub(crate) fn set_joined(&mut self) {
        self.joined = true;
    }

    pub(crate) fn yielded(&self) -> Option<SocketAddr> {
        self.yielded
    }

    /// Another live process at `other` holds this member's name: stop.
    pub(crate) fn yield_to(&mut self, other: SocketAddr) {
        self.yielded = Some(other);
    }

    /// An alive claim about this member from `other` was refuted at `now`.
    /// Both processes refute each other's claims; after the third within
    /// `window`, the one at the higher address yields (a member that takes
    /// over never does). Returns whether this one must yield.
    pub(crate) fn foreign_claim(&mut self, now: Instant, other: SocketAddr, window: Duration) -> bool {
        while self.foreign_claims.front().is_some_and(|&t| t + window < now) {
            self.foreign_claims.pop_front();
        }
        self.foreign_claims.push_back(now);
        self.foreign_claims.len() >= 3 && !self.takeover && self.me.addr > other
    }

    pub(crate) fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub(crate) fn leaving(&self) -> bool {
        self.leaving
    }

    /// Marks this member as leaving at `now`; false if it already was.
    pub(crate) fn start_leaving(&mut self, now: Instant) -> bool {
        if self.leaving {
            return false;
        }
        self.leaving = true;
        self.since = now;
        true
    }

    /// Raises the incarnation to `incarnation` (a new claim about itself) at `now`.
    pub(crate) fn set_incarnation(&mut self, incarnation: u64, now: Instant) {
        self.incarnation = incarnation;
        self.since = now;
    }

    /// Changes metadata, health or address: the caller raises the incarnation.
    pub(crate) fn identity_mut(&mut self) -> &mut Identity {
        &mut self.me
    }

    /// The Lifeguard local health score.
    pub(crate) fn health(&self) -> u32 {
        self.health
    }

    /// Signs of this member's own slowness: the score rises (bounded).
    pub(crate) fn raise_health(&mut self, by: u32) {
        self.health = self.health.saturating_add(by).min(self.max_health - 1);
    }

    /// A probe succeeded: the score falls by one.
    pub(crate) fn lower_health(&mut self) {
        self.health = self.health.saturating_sub(1);
    }

    /// The current protocol period and probe-timeout multiplier.
    pub(crate) fn health_multiplier(&self) -> u32 {
        self.health + 1
    }

    /// The `alive` claim this member makes of itself.
    pub(crate) fn alive(&self) -> Update {
        Update::Alive {
            name: self.me.name.clone(),
            incarnation: self.incarnation,
            addr: self.me.addr,
            meta: self.me.meta.clone(),
            health: self.me.health.clone(),
        }
    }

    /// This member's state as push-pull carries it.
    pub(crate) fn wire_state(&self) -> MemberState {
        MemberState {
            name: self.me.name.clone(),
            incarnation: self.incarnation,
            state: self.state(),
            addr: self.me.addr,
            meta: self.me.meta.clone(),
            health: self.me.health.clone(),
        }
    }

    fn state(&self) -> State {
        if self.leaving { State::Left } else { State::Alive }
    }

    /// Snapshot of this member; `since` is when it started or last changed
    /// what it says of itself (its metadata, health, or a refutation).
    pub(crate) fn member(&self) -> Member {
        let since = self.since;
        Member {
            name: self.me.name.clone(),
            addr: self.me.addr,
            incarnation: self.incarnation,
            meta: self.me.meta.clone(),
            health: self.me.health.clone(),
            state: self.state(),
            phi: 0.0,
            rtt: None,
            since,
        }
    }
}
