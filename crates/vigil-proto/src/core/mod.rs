//! The membership state machine: inputs in (`handle_*`), commands, outputs
//! polled out. This file is the contract and the dispatch; the work is done
//! by the parts it holds:
//!
//! | part | where | what |
//! | --- | --- | --- |
//! | [`Ctx`] | `core/ctx.rs` | configuration, randomness, this member, table, measurements, suspicions, probe order, timers, outbox |
//! | [`Timers`](timers::Timers) | `core/timers.rs` | the one deadline table |
//! | [`Outbox`](outbox::Outbox) | `core/outbox.rs` | transmits, events, the gossip queue |
//! | [`Prober`] | `probe.rs` | this period's probe, relays for others |
//! | [`Verifier`] | `verify.rs` | kernel evidence confirmed before a member is condemned |
//! | `merge` | `merge.rs` | claims about others: joins, suspicions, failures |
//! | `refute` | `refute.rs` | claims about this member |
//! | `anti_entropy` | `anti_entropy.rs` | push-pull and digest exchanges |

pub(crate) mod ctx;
pub(crate) mod outbox;
mod query;
mod tick;
pub(crate) mod timers;

use std::net::SocketAddr;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::anti_entropy::{self, Exchanges};
use crate::codec::{self, MemberState, Message, Update};
use crate::config::Config;
use crate::error::{ConfigError, DecodeError, MemberError};
use crate::event::{Event, EventKind, NameConflict};
use crate::hash::unit_from_seed;
use crate::kernel::Unreachable;
use crate::local::Local;
use crate::member::State;
use crate::member::{Health, Identity, Meta};
use crate::merge;
use crate::probe::{Failure, PingReq, Prober};
use crate::refute::Refutations;
use crate::snapshot::{self, Snapshot};
use crate::time::Instant;
use crate::verify::{Verdict, Verifier};
use ctx::Ctx;
use outbox::Transmit;
use timers::Timer;

/// One member's view of the cluster: the sans-IO protocol state machine.
///
/// Calling contract:
/// - inputs: [`handle_datagram`](Core::handle_datagram), [`handle_stream`](Core::handle_stream),
///   [`handle_timeout`](Core::handle_timeout), each with the caller's `now`;
/// - commands: [`join`](Core::join), [`leave`](Core::leave),
///   [`set_metadata`](Core::set_metadata), [`set_health`](Core::set_health);
/// - outputs, drained after every input or command: [`poll_transmit`](Core::poll_transmit),
///   [`poll_event`](Core::poll_event), and [`poll_timeout`](Core::poll_timeout), the
///   instant at which `handle_timeout` must next be called. Calling it early or
///   twice is harmless.
///
/// `now` must not go backwards between calls.
#[derive(Debug)]
pub struct Core {
    cx: Ctx,
    prober: Prober,
    verifier: Verifier,
    exchanges: Exchanges,
}

impl Core {
    /// A member with this identity at `incarnation`, not yet joined to anyone.
    ///
    /// `seed` is the only source of randomness (probe order, intermediaries,
    /// gossip targets): the same seed and the same inputs give the same outputs.
    /// A restarted member should start from an incarnation above any it used
    /// before (for example a persisted one, or the wall clock in seconds); if
    /// it does not, it refutes its old entry as soon as it hears of it.
    pub fn new(
        config: Config,
        me: Identity,
        incarnation: u64,
        seed: u64,
        now: Instant,
    ) -> Result<Core, ConfigError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let first_probe = now + config.probe_interval.mul_f64(rng.random::<f64>());
        let first_push_pull = now + config.push_pull_interval.mul_f64(0.5 + rng.random::<f64>());
        let local = Local::new(me, incarnation, config.max_local_health, now);
        let reconnect = config.reconnect_interval;
        let mut cx = Ctx::new(config, rng, local, seed);
        cx.schedule(first_probe, Timer::Probe);
        cx.schedule(first_push_pull, Timer::PushPull);
        // Spread over one interval, so that members started together do not all
        // contact the same dead member at once. Derived from the seed without
        // drawing from the RNG, so the rest of the run is unchanged.
        let spread = unit_from_seed(seed);
        cx.schedule(now + reconnect.mul_f64(0.5 + spread), Timer::Reconnect);
        cx.out.set_gossip_epoch(now);
        cx.broadcast_self();
        let mut core = Core {
            cx,
            prober: Prober::default(),
            verifier: Verifier::default(),
            exchanges: Exchanges::default(),
        };
        core.finish(now);
        Ok(core)
    }

    // ------------------------------------------------------------ commands

    /// Starts joining: a full-state exchange (push-pull, over a stream) with
    /// each seed. Retrying, and resolving names to addresses, is the caller's.
    pub fn join(&mut self, _now: Instant, seeds: &[SocketAddr]) -> usize {
        let mut sent = 0;
        for seed in seeds {
            if *seed != self.cx.local.identity().addr {
                anti_entropy::send_push_pull(&mut self.cx, *seed, true, false);
                sent += 1;
            }
        }
        sent
    }

    /// Makes this member replace a live member of the same name: its joins
    /// say so, and receivers take its claim instead of refusing it. For an
    /// operator who knows the old process is gone but not yet declared
    /// failed; if the old one is in fact running, the two contend and the
    /// one at the higher address yields after a few refutations.
    pub fn take_over(&mut self) {
        self.cx.local.set_takeover();
    }

    /// Leaves gracefully: `left` is gossiped at once and on every gossip round;
    /// probing stops. Keep driving the core until [`Core::leave_disseminated`]
    /// (or a timeout), then drop it.
    pub fn leave(&mut self, now: Instant) {
        let cx = &mut self.cx;
        if !cx.local.start_leaving(now) {
            return;
        }
        self.prober.stop();
        cx.watches.invalidate();
        let update = Update::Left { name: cx.local.name().clone(), incarnation: cx.local.incarnation() };
        cx.enqueue(&update);
        cx.emit_self(EventKind::Left);
        cx.gossip_round();
        self.finish(now);
    }

    /// An operator's word that member `name`, held failed, is gone for good
    /// (Serf's `force-leave`): it is marked left at its incarnation (left
    /// outranks failed), and that is gossiped, so that no member lists it
    /// as failed any more; it is forgotten after `dead_retention` like any
    /// member that left. If it is in fact running, it refutes. A member in
    /// any other state is left as it is. Returns the state it was in
    /// (`None`: unknown).
    pub fn force_leave(&mut self, now: Instant, name: &str) -> Option<State> {
        let cx = &mut self.cx;
        let i = cx.table.get(name)?;
        let (state, incarnation) = (cx.table.entry(i).state, cx.table.entry(i).incarnation);
        if state == State::Dead {
            merge::declare(cx, now, i, incarnation, State::Left, None);
            self.finish(now);
        }
        Some(state)
    }

    /// While leaving: the packet to write on every watch stream this member
    /// accepted before it closes them, so that its watchers learn it left
    /// rather than mistake the closed stream for a crash.
    pub fn farewell(&self) -> Option<Vec<u8>> {
        let local = &self.cx.local;
        local.leaving().then(|| {
            let left = Update::Left { name: local.name().clone(), incarnation: local.incarnation() };
            codec::encode(&codec::Packet { message: Message::Gossip, updates: vec![left] })
        })
    }

    /// True once the `left` announcement went out as many times as any change
    /// is retransmitted (or nobody is left to tell). Members that heard it pass
    /// it on, so the leaving member may stop then.
    pub fn leave_disseminated(&self) -> bool {
        let cx = &self.cx;
        cx.local.leaving() && (cx.table.active() == 0 || cx.out.sends_of(cx.local.name()).is_none())
    }

    /// Publishes new metadata (at most 512 bytes): raises this member's
    /// incarnation and gossips the change.
    pub fn set_metadata(&mut self, now: Instant, meta: impl Into<Vec<u8>>) -> Result<(), MemberError> {
        self.cx.local.identity_mut().meta = Meta::new(meta)?;
        self.bump_self(now);
        self.finish(now);
        Ok(())
    }

    /// Publishes a new health status: raises this member's incarnation and
    /// gossips the change.
    pub fn set_health(&mut self, now: Instant, health: Health) {
        self.cx.local.identity_mut().health = health;
        self.bump_self(now);
        self.finish(now);
    }

    fn bump_self(&mut self, now: Instant) {
        let cx = &mut self.cx;
        if cx.local.leaving() {
            // Announcing it would supersede `left`: a member that is leaving
            // keeps the change to itself.
            return;
        }
        cx.local.set_incarnation(cx.local.incarnation().saturating_add(1), now);
        cx.broadcast_self();
        cx.emit_self(EventKind::Updated);
    }

    /// Adds members known from elsewhere as alive, without events and without
    /// gossiping them: a membership snapshot restored on restart, or a
    /// simulator's warm start. Members already known, this member itself, and
    /// states other than alive are skipped; the probe round picks the new
    /// members up at its next round, and probing and push-pull then verify
    /// them like any other member. Returns how many were added.
    pub fn preload(&mut self, now: Instant, states: impl IntoIterator<Item = MemberState>) -> usize {
        let cx = &mut self.cx;
        let fresh: Vec<MemberState> = snapshot::alive_by_name(states)
            .into_iter()
            .filter(|s| s.name != *cx.local.name() && cx.table.get(&s.name).is_none())
            .collect();
        let added = fresh.len();
        for s in fresh {
            cx.table.push(snapshot::entry(s, now));
        }
        cx.watches.invalidate();
        self.finish(now);
        added
    }

    /// Like [`Core::preload`] from a [`Snapshot`] shared with other members:
    /// a member that knows nobody yet takes a copy of the snapshot's table
    /// that shares its memory (its own entry hidden). A member that already
    /// knows others adds the snapshot's members one by one instead. Returns
    /// how many members were added.
    pub fn preload_snapshot(&mut self, now: Instant, snapshot: &Snapshot) -> usize {
        if self.cx.table.slots() == 0 {
            self.cx.table = snapshot.table_for(self.cx.local.name().as_str());
            self.cx.watches.invalidate();
            self.finish(now);
            return self.cx.table.len();
        }
        self.preload(now, snapshot.states())
    }

    // ------------------------------------------------------------ inputs

    /// A datagram arrived from `from`. A packet that does not decode is dropped
    /// whole, with no change of state, and the error says why (count it).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), DecodeError> {
        let max = self.cx.config.max_packet_size;
        if bytes.len() > max {
            return Err(DecodeError::TooLarge { len: bytes.len(), max });
        }
        let packet = codec::decode(bytes)?;
        if matches!(packet.message, Message::PushPull { .. }) {
            return Err(DecodeError::Invalid {
                field: "message type",
                reason: "push-pull only over a stream",
            });
        }
        if self.yielded().is_some() {
            return Ok(());
        }
        self.check_stall(now);
        let cx = &mut self.cx;
        let (slot, sender) = cx.heard_from(now, from).unzip();
        // Anything from a member is proof of life: kernel evidence against it was wrong.
        self.verifier.refute(cx, None, sender.as_ref());
        // Updates first: a suspicion of us riding on a ping is refuted in the ack.
        let mut refute = Refutations::default();
        let mut about_sender = false;
        for update in packet.updates {
            about_sender |= sender.as_ref() == Some(update.name());
            merge::apply_update(cx, &mut refute, now, update);
        }
        if let Some(i) = slot
            && !about_sender
        {
            self.exchanges.check_return(cx, now, from, i);
            merge::remind(cx, now, i, from);
        }
        let mut source_told = false;
        match packet.message {
            Message::Ping { seq, target } => source_told = Prober::on_ping(cx, &refute, from, seq, target),
            Message::Ack { seq } => {
                self.prober.on_ack(cx, now, from, seq);
                self.verifier.refute(cx, Some(seq), sender.as_ref());
            }
            Message::PingReq { seq, target, addr, nack_after_ms } => {
                let req = PingReq { seq, target, addr, nack_after_ms };
                self.prober.on_ping_req(cx, now, from, req, false);
            }
            Message::Confirm { seq, target, addr, nack_after_ms } => {
                let req = PingReq { seq, target, addr, nack_after_ms };
                self.prober.on_ping_req(cx, now, from, req, true);
            }
            Message::Nack { seq } => {
                if let Some(name) = cx.table.by_addr(&from).map(|i| cx.table.entry(i).name.clone()) {
                    self.verifier.on_nack(seq, &name);
                }
                if let Some(failure) = self.prober.on_nack(cx, from, seq) {
                    suspect(cx, now, failure);
                }
            }
            Message::Refused { seq, how } => self.on_refused(now, from, seq, how),
            Message::Digest { reply, sums, states } => {
                if reply {
                    self.exchanges.answered(from);
                }
                anti_entropy::on_digest(cx, now, from, (reply, true), sums, states);
            }
            Message::Gossip | Message::PushPull { .. } => {}
        }
        let cx = &mut self.cx;
        if refute.source && !source_told {
            refute.add(from);
        } else if source_told {
            refute.told(from);
        }
        refute.send(cx);
        self.finish(now);
        Ok(())
    }

    /// An intermediary's kernel evidence that a target's process is gone:
    /// for a verification running, or for this period's probe (which then
    /// starts one).
    fn on_refused(&mut self, now: Instant, from: SocketAddr, seq: u32, how: Unreachable) {
        let cx = &mut self.cx;
        let Some(i) = cx.table.by_addr(&from) else { return };
        let name = cx.table.entry(i).name.clone();
        let verdict = match self.verifier.on_refused(cx, seq, &name, how) {
            Some(v) => Some(v),
            // Evidence from an intermediary of this period's probe starts a
            // verification, or adds to the one running for that member.
            None => match self.prober.on_refused(cx, seq, &name) {
                Some(target) => self.verifier.evidence(cx, now, target, name, how),
                None => None,
            },
        };
        if let Some(v) = verdict {
            apply(cx, now, v);
        }
    }

    /// The runtime's kernel evidence that the process behind `addr` is gone
    /// (see [`Unreachable`]). For a member this member probes for another,
    /// it is passed on to the requester; otherwise it is verified with
    /// intermediaries, and the member is declared failed at once if another
    /// member confirms it, or merely suspected (patiently) if no one does.
    /// Evidence about an unknown address or an inactive member is ignored.
    pub fn handle_unreachable(&mut self, now: Instant, addr: SocketAddr, how: Unreachable) {
        if self.yielded().is_some() {
            return;
        }
        self.check_stall(now);
        let cx = &mut self.cx;
        cx.stats.evidence_received += 1;
        if cx.local.leaving() || self.prober.on_unreachable(cx, addr, how) {
            return;
        }
        let Some(i) = cx.table.by_addr(&addr) else { return };
        if !cx.table.entry(i).state.is_active() {
            return;
        }
        let me = cx.local.name().clone();
        if let Some(v) = self.verifier.evidence(cx, now, i, me, how) {
            apply(cx, now, v);
        }
        self.finish(now);
    }

    /// A whole push-pull stream arrived from `from`. The reply, if one is due,
    /// is a [`Channel::Stream`](outbox::Channel::Stream) transmit to `from`.
    pub fn handle_stream(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), DecodeError> {
        let max = self.cx.config.max_stream_size;
        if bytes.len() > max {
            return Err(DecodeError::TooLarge { len: bytes.len(), max });
        }
        let packet = codec::decode(bytes)?;
        if self.yielded().is_some() {
            return Ok(());
        }
        self.check_stall(now);
        let cx = &mut self.cx;
        match packet.message {
            Message::PushPull { join, takeover, reply, states } => {
                anti_entropy::on_push_pull(cx, now, from, (join, takeover, reply), states, packet.updates)
            }
            // A member that leaves writes its `left` on the watch streams it accepted.
            Message::Gossip => {
                let mut refute = Refutations::default();
                for update in packet.updates {
                    merge::apply_update(cx, &mut refute, now, update);
                }
                refute.send(cx);
            }
            // The fallback probe path: a ping over a stream is answered on it,
            // and a claim against this member it carries is refuted there.
            Message::Ping { seq, target } => {
                let mut refute = Refutations::default();
                for update in packet.updates {
                    merge::apply_update(cx, &mut refute, now, update);
                }
                Prober::on_stream_ping(cx, &refute, from, seq, target);
                // The stream's peer address is no member's: the ack told it.
                refute.told(from);
                refute.send(cx);
            }
            Message::Ack { seq } => {
                // A refutation riding the ack first: it clears the suspicion.
                let mut refute = Refutations::default();
                for update in packet.updates {
                    merge::apply_update(cx, &mut refute, now, update);
                }
                refute.send(cx);
                self.prober.on_ack(cx, now, from, seq);
                let sender = cx.table.by_addr(&from).map(|i| cx.table.entry(i).name.clone());
                self.verifier.refute(cx, Some(seq), sender.as_ref());
            }
            Message::Digest { reply, sums, states } => {
                if reply {
                    self.exchanges.answered(from);
                }
                anti_entropy::on_digest(cx, now, from, (reply, false), sums, states);
            }
            _ => {
                return Err(DecodeError::Invalid {
                    field: "message type",
                    reason: "only push-pull, digest, ping, ack and gossip over a stream",
                });
            }
        }
        self.finish(now);
        Ok(())
    }

    /// Runs every timer due at `now`.
    ///
    /// Called well after the instant [`Core::poll_timeout`] asked for (more
    /// than [`Config::stall_threshold`]), the core takes it that its caller
    /// was not running (a stop signal, a pause, CPU starvation): everything
    /// that fell due meanwhile, suspicions included, is moved on by the
    /// stall, so that it accuses no one of what its own stall caused, and its
    /// local health score rises. The caller should hand in every datagram
    /// that arrived meanwhile before calling this.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.yielded().is_some() {
            while self.cx.timers.pop_due(now).is_some() {}
            return;
        }
        self.check_stall(now);
        while let Some(timer) = self.cx.timers.pop_due(now) {
            self.on_timer(now, timer);
        }
        self.finish(now);
    }

    /// After every input and command: the watch list follows the
    /// membership, and the periodic gossip timer runs while something waits.
    fn finish(&mut self, now: Instant) {
        let cx = &mut self.cx;
        cx.watches.refresh(&cx.table, cx.local.hash(), cx.config.watch_count, cx.local.leaving());
        if let Some(at) = cx.out.start_gossip_ticks(now, cx.config.gossip_interval) {
            cx.schedule(at, Timer::Gossip);
        }
    }

    // ------------------------------------------------------------ outputs

    /// The next packet to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.cx.out.poll_transmit()
    }

    /// Hands back the payload of a transmit once it is sent: the next
    /// datagram is encoded into it instead of a new allocation. Optional; a
    /// runtime that sends each transmit before it polls the next allocates
    /// no payload in steady state. The core keeps one such buffer at most,
    /// of a few KiB at most.
    pub fn recycle(&mut self, payload: Vec<u8>) {
        self.cx.out.recycle(payload);
    }

    /// The next membership event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.cx.out.poll_event()
    }

    /// The next name conflict seen: a join refused (or this member's own
    /// join refused) because a live member already has the name, or alive
    /// claims about this member from another address. For logs.
    #[must_use]
    pub fn poll_conflict(&mut self) -> Option<NameConflict> {
        self.cx.out.poll_conflict()
    }

    /// Another live process at this address has this member's name, and this
    /// one stopped: its join was refused, or, both running, it yielded. A
    /// member that yielded does nothing more (its inputs and timers are
    /// ignored); the runtime should stop it and say why.
    pub fn yielded(&self) -> Option<SocketAddr> {
        self.cx.local.yielded()
    }

    /// When [`Core::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cx.timers.next()
    }
}

/// This member's own probe failed: suspect its target.
fn suspect(cx: &mut Ctx, now: Instant, f: Failure) {
    let me = cx.local.name().clone();
    merge::suspect(cx, now, f.index, f.incarnation, me, f.confirmers, Some(f.evidence), f.since);
}

/// A verification ended: fail the member at once, or suspect it patiently.
fn apply(cx: &mut Ctx, now: Instant, verdict: Verdict) {
    match verdict {
        Verdict::Exited { index, incarnation, evidence } => {
            merge::declare_exited(cx, now, index, incarnation, evidence)
        }
        Verdict::Silent { index, incarnation, since, probe } => {
            let me = cx.local.name().clone();
            let confirmers = probe.nacks.iter().cloned().collect();
            merge::suspect(cx, now, index, incarnation, me, confirmers, Some(probe), since);
        }
    }
}
