//! Failure detection: SWIM probes with indirect probes, Lifeguard nacks and
//! local health, adaptive per-peer timeouts, and the relays this member
//! runs for others' indirect probes.
//!
//! A failed probe does not suspect anyone here: [`Prober`] reports it as a
//! [`Failure`] and the core starts the suspicion.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::{Message, Update};
use crate::core::ctx::Ctx;
use crate::core::timers::{Timer, TimerKey};
use crate::event::ProbeEvidence;
use crate::kernel::Unreachable;
use crate::member::{Name, State};
use crate::refute::Refutations;
use crate::time::Instant;

/// Share of what remains of the protocol period after which an intermediary
/// that got no ack from the target sends a nack.
const NACK_FRACTION: f64 = 0.6;

/// Most ping-reqs served at once; more are refused (counted).
pub(crate) const MAX_RELAYS: usize = 1024;

/// This member's probe of the current protocol period.
#[derive(Debug)]
struct Probe {
    target: Name,
    seq: u32,
    sent_at: Instant,
    period_end: Instant,
    timeout: Duration,
    indirect: Vec<Name>,
    nacks: Vec<Name>,
    /// This member stalled while the probe was out: its round trip says nothing.
    stalled: bool,
    /// The direct probe's timeout, cancelled by the ack.
    timeout_timer: Option<TimerKey>,
}

/// A ping this member sends on behalf of another member's indirect probe
/// or confirm.
#[derive(Debug)]
struct Relay {
    requester: SocketAddr,
    seq: u32,
    /// The target's address (kernel evidence about it is passed on).
    addr: SocketAddr,
    /// A nack or a refusal was sent: nothing more is.
    answered: bool,
    /// The target was also tried over a stream.
    stream_pinged: bool,
}

/// A ping-req or confirm as received: probe `target` at `addr`, nack after `nack_after_ms`.
#[derive(Debug)]
pub(crate) struct PingReq {
    pub(crate) seq: u32,
    pub(crate) target: Name,
    pub(crate) addr: SocketAddr,
    pub(crate) nack_after_ms: u32,
}

/// A probe that ended without an ack: suspect `index` at `incarnation`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) index: usize,
    pub(crate) incarnation: u64,
    /// Intermediaries that could not reach it either.
    pub(crate) confirmers: BTreeSet<Name>,
    pub(crate) evidence: ProbeEvidence,
    /// When the unanswered probe was sent: the target is silent since.
    pub(crate) since: Instant,
}

/// The probing state: this period's probe, and the relays served for others.
#[derive(Debug, Default)]
pub(crate) struct Prober {
    probe: Option<Probe>,
    relays: BTreeMap<u32, Relay>,
}

impl Prober {
    /// Stops probing (this member is leaving).
    pub(crate) fn stop(&mut self) {
        self.probe = None;
    }

    /// The end of a protocol period: the probe of the period that ends, if
    /// it got no ack, as a failure to suspect.
    pub(crate) fn conclude(&mut self, cx: &mut Ctx) -> Option<Failure> {
        let p = self.probe.take()?;
        failed(cx, p)
    }

    /// Starts this period's probe: pings the next member of the round.
    /// `period` is the length of the period (stretched by local health).
    pub(crate) fn start(&mut self, cx: &mut Ctx, now: Instant, period: Duration) {
        let Some(i) = cx.round.next_target(&mut cx.rng, &cx.table) else { return };
        let seq = cx.next_seq();
        let e = cx.table.entry(i);
        let (target, addr) = (e.name.clone(), e.addr());
        let (mult, min, max) =
            (cx.config.rtt_deviation_mult, cx.config.probe_timeout_min, cx.config.probe_timeout_max);
        let timeout = cx.peers.get(target.as_str()).map_or(max, |p| p.rtt.timeout(mult, min, max))
            * cx.local.health_multiplier();
        // Lifeguard: a suspect hears of its suspicion first, on the probe itself.
        let buddy = (e.state == State::Suspect).then(|| buddy(cx, i));
        cx.send(addr, &Message::Ping { seq, target: target.hash32() }, buddy.as_ref());
        cx.stats.probes_sent += 1;
        self.probe = Some(Probe {
            target,
            seq,
            sent_at: now,
            period_end: now + period,
            timeout,
            indirect: Vec::new(),
            nacks: Vec::new(),
            stalled: false,
            timeout_timer: None,
        });
        let key = cx.schedule(now + timeout, Timer::ProbeTimeout { seq });
        if let Some(p) = self.probe.as_mut() {
            p.timeout_timer = Some(key);
        }
    }

    /// The direct probe timed out: ask intermediaries (and try a stream).
    pub(crate) fn on_timeout(&mut self, cx: &mut Ctx, now: Instant, seq: u32) {
        let Some(p) = self.probe.as_mut() else { return };
        if p.seq != seq || !p.indirect.is_empty() {
            return;
        }
        let Some(ti) = cx.table.get(&p.target) else { return };
        let target = p.target.clone();
        let addr = cx.table.entry(ti).addr();
        let remaining = p.period_end - now;
        // Nacks arrive well before the period ends; an ack later than that
        // still counts if it arrives within the period.
        let nack_after_ms = u32::try_from(remaining.mul_f64(NACK_FRACTION).as_millis()).unwrap_or(u32::MAX);
        let helpers = cx.sample(cx.config.indirect_checks, |e| e.state == State::Alive && e.name != target);
        let mut asked = Vec::with_capacity(helpers.len());
        for h in helpers {
            let e = cx.table.entry(h);
            let dst = e.addr();
            asked.push(e.name.clone());
            cx.send(dst, &Message::PingReq { seq, target: target.clone(), addr, nack_after_ms }, None);
            cx.stats.indirect_probes_sent += 1;
        }
        p.indirect = asked;
        if cx.config.tcp_fallback {
            // Another path, in case only datagrams are lost between us: the
            // runtime sends this ping over a stream and hands back the ack.
            let buddy = (cx.table.entry(ti).state == State::Suspect).then(|| buddy(cx, ti));
            cx.stream_ping(ti, seq, buddy);
            cx.stats.stream_probes_sent += 1;
        }
    }

    /// An ack: of this period's probe (the target is alive; its round trip
    /// is measured), or of a ping relayed for another member (passed on).
    /// Only the member probed (from its address), or an intermediary asked
    /// to probe it, can answer a probe, and only once; only the target of a
    /// relay can answer the relay.
    pub(crate) fn on_ack(&mut self, cx: &mut Ctx, now: Instant, from: SocketAddr, seq: u32) {
        let sender = cx.table.by_addr(&from).map(|i| &cx.table.entry(i).name);
        let from_probed =
            |p: &Probe| p.seq == seq && sender.is_some_and(|n| *n == p.target || p.indirect.contains(n));
        if let Some(p) = self.probe.take_if(|p| from_probed(p)) {
            if let Some(key) = p.timeout_timer {
                cx.timers.cancel(key);
            }
            if let Some(i) = cx.table.get(&p.target)
                && cx.table.entry(i).addr() == from
                && !p.stalled
            {
                let hash = cx.table.entry(i).hash;
                let rtt = now - p.sent_at;
                cx.stats.histograms.probe_rtt.observe(rtt);
                let peer = cx.peers.touch(hash, &p.target, now);
                peer.rtt.sample(rtt);
                peer.phi.heartbeat(now, cx.config.phi_window);
            }
            // An ack that waited out this member's own stall says nothing
            // of its health.
            if !p.stalled {
                cx.local.lower_health();
            }
            return;
        }
        if self.relays.get(&seq).is_some_and(|r| r.addr == from)
            && let Some(relay) = self.relays.remove(&seq)
        {
            cx.send(relay.requester, &Message::Ack { seq: relay.seq }, None);
        }
    }

    /// A nack from an intermediary; when every intermediary has nacked, the
    /// probe fails at once.
    pub(crate) fn on_nack(&mut self, cx: &mut Ctx, from: SocketAddr, seq: u32) -> Option<Failure> {
        let i = cx.table.by_addr(&from)?;
        let name = cx.table.entry(i).name.clone();
        let p = self.probe.as_mut()?;
        if p.seq != seq || !p.indirect.contains(&name) || p.nacks.contains(&name) {
            return None;
        }
        p.nacks.push(name);
        cx.stats.nacks_received += 1;
        if p.nacks.len() < p.indirect.len() {
            return None;
        }
        // Every intermediary tried and failed: no need to wait out the period.
        let p = self.probe.take()?;
        failed(cx, p)
    }

    /// Answers a ping; returns whether the ack carried a refutation.
    pub(crate) fn on_ping(
        cx: &mut Ctx,
        refute: &Refutations,
        from: SocketAddr,
        seq: u32,
        target: u32,
    ) -> bool {
        if target != cx.local.name().hash32() {
            cx.stats.misdirected_pings += 1;
            return false;
        }
        let refutation = refute.source.then(|| cx.local.alive());
        cx.send(from, &Message::Ack { seq }, refutation.as_ref());
        refutation.is_some()
    }

    /// A ping over a stream (another member's fallback probe) is answered on
    /// it; the ack carries this member's refutation if the ping carried a
    /// claim against it.
    pub(crate) fn on_stream_ping(
        cx: &mut Ctx,
        refute: &Refutations,
        from: SocketAddr,
        seq: u32,
        target: u32,
    ) {
        if target == cx.local.name().hash32() {
            let refutation = refute.source.then(|| cx.local.alive());
            cx.out.stream(from, Message::Ack { seq }, refutation.into_iter().collect());
        } else {
            cx.stats.misdirected_pings += 1;
        }
    }

    /// Another member (at `from`) asks this one to probe a member for it
    /// (`confirm`: it has kernel evidence that the member's process exited,
    /// so the member is tried over a stream at once as well).
    pub(crate) fn on_ping_req(
        &mut self,
        cx: &mut Ctx,
        now: Instant,
        from: SocketAddr,
        req: PingReq,
        confirm: bool,
    ) {
        let PingReq { seq, target, addr, nack_after_ms } = req;
        let target = &target;
        if self.relays.len() >= MAX_RELAYS {
            cx.stats.relays_refused += 1;
            return;
        }
        // A member that left is not probed on anyone's behalf: the requester
        // is told it left, which ends its probe without a suspicion.
        if let Some(i) = cx.table.get(target)
            && cx.table.entry(i).state == State::Left
        {
            let left = Update::Left { name: target.clone(), incarnation: cx.table.entry(i).incarnation };
            cx.send(from, &Message::Gossip, Some(&left));
            return;
        }
        let local = cx.next_seq();
        self.relays
            .insert(local, Relay { requester: from, seq, addr, answered: false, stream_pinged: confirm });
        let buddy = cx
            .table
            .get(target)
            .and_then(|i| (cx.table.entry(i).state == State::Suspect).then(|| buddy(cx, i)));
        cx.send(addr, &Message::Ping { seq: local, target: target.hash32() }, buddy.as_ref());
        if confirm {
            cx.send_stream(addr, Message::Ping { seq: local, target: target.hash32() });
        }
        cx.stats.relayed_pings += 1;
        let nack_after = Duration::from_millis(u64::from(nack_after_ms)).min(cx.config.probe_interval);
        cx.schedule(now + nack_after, Timer::RelayNack { seq: local });
        cx.schedule(now + nack_after + cx.config.probe_interval, Timer::RelayExpire { seq: local });
    }

    /// A relayed ping got no ack in time: tell the requester.
    pub(crate) fn on_relay_nack(&mut self, cx: &mut Ctx, seq: u32) {
        let Some(relay) = self.relays.get_mut(&seq) else { return };
        if relay.answered {
            return;
        }
        relay.answered = true;
        let (dst, seq) = (relay.requester, relay.seq);
        cx.send(dst, &Message::Nack { seq }, None);
        cx.stats.nacks_sent += 1;
    }

    /// Kernel evidence about `addr`. Where this member relays a probe of it
    /// for another, strong evidence is passed on to the requester, and weak
    /// evidence (an ICMP error) makes it try a stream too. Returns whether
    /// any relay was for `addr` (this member is then an intermediary, not an
    /// observer, of that member).
    pub(crate) fn on_unreachable(&mut self, cx: &mut Ctx, addr: SocketAddr, how: Unreachable) -> bool {
        let mut relayed = false;
        let target = cx.table.by_addr(&addr).map(|i| cx.table.entry(i).name.hash32());
        for (&local, relay) in self.relays.iter_mut().filter(|(_, r)| r.addr == addr) {
            relayed = true;
            if relay.answered {
                continue;
            }
            if how.is_strong() {
                relay.answered = true;
                cx.send(relay.requester, &Message::Refused { seq: relay.seq, how }, None);
                cx.stats.refusals_sent += 1;
            } else if !relay.stream_pinged
                && let Some(target) = target
            {
                relay.stream_pinged = true;
                cx.send_stream(addr, Message::Ping { seq: local, target });
            }
        }
        relayed
    }

    /// An intermediary of this period's probe (`seq`) saw the target's
    /// process gone: the target's entry, to verify.
    pub(crate) fn on_refused(&self, cx: &Ctx, seq: u32, from: &Name) -> Option<usize> {
        let p = self.probe.as_ref()?;
        if p.seq != seq || !p.indirect.contains(from) {
            return None;
        }
        cx.table.get(&p.target)
    }

    /// The caller did not run for `by` (a stall): this period's probe is
    /// moved on by as much, and its round trip is not measured.
    pub(crate) fn postpone(&mut self, by: Duration) {
        if let Some(p) = self.probe.as_mut() {
            p.sent_at += by;
            p.period_end += by;
            p.stalled = true;
        }
    }

    /// A relay's time is up: forget it.
    pub(crate) fn on_relay_expire(&mut self, seq: u32) {
        self.relays.remove(&seq);
    }
}

/// The suspicion of member `i` as the buddy system sends it to the suspect.
pub(crate) fn buddy(cx: &Ctx, i: usize) -> Update {
    let e = cx.table.entry(i);
    let from = cx.suspicions.originator(&e.name).unwrap_or(cx.local.name()).clone();
    Update::Suspect { name: e.name.clone(), incarnation: e.incarnation, from }
}

/// No ack within the period (or every intermediary nacked): Lifeguard
/// health accounting, then the failure to suspect.
fn failed(cx: &mut Ctx, p: Probe) -> Option<Failure> {
    // A target that left (or was declared dead) meanwhile explains the silence.
    let i = cx.table.get(&p.target)?;
    if !cx.table.entry(i).state.is_active() {
        return None;
    }
    cx.stats.probes_failed += 1;
    let expected = p.indirect.len();
    // Missing nacks mean our own path may be the problem, not the target.
    let penalty = if expected > 0 { expected - p.nacks.len() } else { 1 };
    cx.local.raise_health(u32::try_from(penalty).unwrap_or(u32::MAX));
    let incarnation = cx.table.entry(i).incarnation;
    let evidence = ProbeEvidence { timeout: p.timeout, indirect: p.indirect, nacks: p.nacks };
    let confirmers = evidence.nacks.iter().cloned().collect();
    Some(Failure { index: i, incarnation, confirmers, evidence, since: p.sent_at })
}

/// Small groups: members whose phi level passed the threshold, to be
/// suspected without waiting for their turn to be probed.
pub(crate) fn late_by_phi(cx: &Ctx, now: Instant) -> Vec<(usize, u64)> {
    let Some(threshold) = cx.config.phi_threshold else { return Vec::new() };
    // Only members with measurements can be late; in a small group that is all of them.
    cx.peers
        .iter()
        .filter(|(_, p)| p.phi.phi(now) > threshold)
        .filter_map(|(name, _)| cx.table.get(name))
        .map(|i| (i, cx.table.entry(i)))
        .filter(|(_, e)| e.state == State::Alive)
        .map(|(i, e)| (i, e.incarnation))
        .collect()
}
