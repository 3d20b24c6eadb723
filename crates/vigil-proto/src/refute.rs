//! Claims about this member: anything that is not exactly what it says of
//! itself is refuted, and whoever holds the claim hears the refutation
//! straight away.

use std::net::SocketAddr;

use crate::codec::Message;
use crate::core::ctx::Ctx;
use crate::event::NameConflict;
use crate::member::{Name, State};
use crate::table::Content;
use crate::time::Instant;

/// Refutations owed while one packet is handled: to its sender, and to the
/// suspecters its claims name.
#[derive(Debug, Default)]
pub(crate) struct Refutations {
    /// The packet carried a claim against this member: its sender gets the
    /// refutation directly (on a ping, it rides the ack).
    pub(crate) source: bool,
    /// Suspecters named by the packet's claims.
    to: Vec<SocketAddr>,
}

impl Refutations {
    /// `dst` gets the refutation too.
    pub(crate) fn add(&mut self, dst: SocketAddr) {
        self.to.push(dst);
    }

    /// `dst` was told already (the refutation rode the ack).
    pub(crate) fn told(&mut self, dst: SocketAddr) {
        self.to.retain(|a| *a != dst);
    }

    /// Sends this member's alive claim to each member that holds a claim against it.
    pub(crate) fn send(self, cx: &mut Ctx) {
        if self.to.is_empty() {
            return;
        }
        let mut dsts = self.to;
        dsts.sort();
        dsts.dedup();
        let alive = cx.local.alive();
        for dst in dsts {
            cx.send(dst, &Message::Gossip, Some(&alive));
        }
    }
}

/// Someone says something about this member (`content` for an alive claim).
/// Anything that is not exactly what we say of ourselves, at our
/// incarnation or above, is refuted.
pub(crate) fn claim_about_self(
    cx: &mut Ctx,
    refute: &mut Refutations,
    now: Instant,
    incarnation: u64,
    state: State,
    content: Option<&Content>,
    from: Option<&Name>,
) {
    if cx.local.leaving() {
        return;
    }
    if incarnation >= cx.local.incarnation() {
        let me = cx.local.identity();
        let same_content =
            content.is_none_or(|c| c.addr == me.addr && c.meta == me.meta && c.health == me.health);
        if incarnation == cx.local.incarnation() && state == State::Alive && same_content {
            return;
        }
        // Another process claims this name from another address.
        if state == State::Alive
            && let Some(c) = content
            && c.addr != me.addr
        {
            let (name, mine) = (me.name.clone(), me.addr);
            cx.stats.name_conflicts += 1;
            let window = cx.config.probe_interval * 10;
            if cx.local.foreign_claim(now, c.addr, window) {
                cx.out.conflict(NameConflict { name, kept: c.addr, refused: mine });
                cx.local.yield_to(c.addr);
                return;
            }
            cx.out.conflict(NameConflict { name, kept: mine, refused: c.addr });
        }
        cx.local.set_incarnation(incarnation.saturating_add(1), now);
        cx.stats.refutations += 1;
        cx.local.raise_health(1);
        cx.broadcast_self();
        cx.gossip_soon(now);
    } else if state == State::Alive {
        return;
    }
    // Whoever holds this claim hears the refutation straight away, not when
    // gossip happens to reach it: the member that sent it, and the member
    // it names as the suspecter. A suspicion can then be short and safe.
    if state != State::Alive {
        refute.source = true;
        if let Some(from) = from
            && let Some(i) = cx.table.get(from)
            && cx.table.entry(i).state.is_active()
        {
            refute.add(cx.table.entry(i).addr());
        }
    }
}
