//! Failure detection: SWIM probes with indirect probes, Lifeguard nacks and
//! local health, adaptive per-peer timeouts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt;
use rand::seq::SliceRandom;

use crate::codec::{Message, Update};
use crate::core::{Core, MAX_RELAYS, Probe, Relay, Timer};
use crate::event::ProbeEvidence;
use crate::member::{Name, State};
use crate::time::Instant;

/// Share of what remains of the protocol period after which an intermediary
/// that got no ack from the target sends a nack.
const NACK_FRACTION: f64 = 0.6;

impl Core {
    /// Start of a protocol period: conclude the last probe, start the next.
    pub(crate) fn on_probe_tick(&mut self, now: Instant) {
        if let Some(p) = self.probe.take() {
            self.probe_failed(now, p);
        }
        if self.leaving {
            return;
        }
        let period = self.config.probe_interval * self.health_multiplier();
        self.schedule(now + period, Timer::Probe);
        self.check_phi(now);
        let Some(i) = self.next_probe_target() else { return };
        let seq = self.next_seq();
        let e = &self.entries[i];
        let (target, addr) = (e.name.clone(), e.addr);
        let timeout = e.rtt.timeout(
            self.config.rtt_deviation_mult,
            self.config.probe_timeout_min,
            self.config.probe_timeout_max,
        ) * self.health_multiplier();
        // Lifeguard: a suspect hears of its suspicion first, on the probe itself.
        let buddy = (e.state == State::Suspect).then(|| Update::Suspect {
            name: target.clone(),
            incarnation: e.incarnation,
            from: e.suspicion.as_ref().map_or_else(|| self.me.name.clone(), |s| s.originator.clone()),
        });
        self.send(addr, &Message::Ping { seq, target: target.hash32() }, buddy.as_ref());
        self.stats.probes_sent += 1;
        self.probe = Some(Probe {
            target,
            seq,
            sent_at: now,
            period_end: now + period,
            timeout,
            indirect: Vec::new(),
            nacks: Vec::new(),
        });
        self.schedule(now + timeout, Timer::ProbeTimeout { seq });
    }

    /// Randomised round-robin: every active member once per round, in a fresh
    /// random order each round; members that joined mid-round are slotted in
    /// at a random later position.
    fn next_probe_target(&mut self) -> Option<usize> {
        for _ in 0..2 {
            while let Some(name) = self.probe_order.get(self.probe_pos) {
                self.probe_pos += 1;
                if let Some(&i) = self.index.get(name)
                    && self.entries[i].state.is_active()
                {
                    return Some(i);
                }
            }
            let mut order: Vec<Name> =
                self.entries.iter().filter(|e| e.state.is_active()).map(|e| e.name.clone()).collect();
            if order.is_empty() {
                return None;
            }
            // Entries are in arrival order; sort so the shuffle depends only on the seed.
            order.sort();
            order.shuffle(&mut self.rng);
            self.probe_order = order;
            self.probe_pos = 0;
        }
        None
    }

    /// Adds a member that became active to the current round.
    pub(crate) fn add_to_probe_order(&mut self, name: Name) {
        let lo = self.probe_pos.min(self.probe_order.len());
        let at = self.rng.random_range(lo..=self.probe_order.len());
        self.probe_order.insert(at, name);
    }

    /// The direct probe timed out: ask intermediaries.
    pub(crate) fn on_probe_timeout(&mut self, now: Instant, seq: u32) {
        let Some(p) = self.probe.as_ref() else { return };
        if p.seq != seq || !p.indirect.is_empty() {
            return;
        }
        let Some(&ti) = self.index.get(&p.target) else { return };
        let target = p.target.clone();
        let addr = self.entries[ti].addr;
        let remaining = p.period_end - now;
        // Nacks arrive well before the period ends; an ack later than that
        // still counts if it arrives within the period.
        let nack_after_ms = u32::try_from(remaining.mul_f64(NACK_FRACTION).as_millis()).unwrap_or(u32::MAX);
        let helpers =
            self.sample(self.config.indirect_checks, |e| e.state == State::Alive && e.name != target);
        let mut asked = Vec::with_capacity(helpers.len());
        for h in helpers {
            let dst = self.entries[h].addr;
            asked.push(self.entries[h].name.clone());
            self.send(dst, &Message::PingReq { seq, target: target.clone(), addr, nack_after_ms }, None);
            self.stats.indirect_probes_sent += 1;
        }
        if let Some(p) = self.probe.as_mut() {
            p.indirect = asked;
        }
        if self.config.tcp_fallback {
            // Another path, in case only datagrams are lost between us: the
            // runtime sends this ping over a stream and hands back the ack.
            self.send_stream(addr, &Message::Ping { seq, target: target.hash32() });
            self.stats.stream_probes_sent += 1;
        }
    }

    pub(crate) fn on_ack(&mut self, now: Instant, from: SocketAddr, seq: u32) {
        if let Some(p) = &self.probe
            && p.seq == seq
        {
            let Some(p) = self.probe.take() else { return };
            if let Some(&i) = self.index.get(&p.target) {
                let e = &mut self.entries[i];
                if e.addr == from {
                    e.rtt.sample(now - p.sent_at);
                    e.phi.heartbeat(now);
                }
            }
            self.health_score = self.health_score.saturating_sub(1);
            return;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            self.send(relay.requester, &Message::Ack { seq: relay.seq }, None);
        }
    }

    pub(crate) fn on_nack(&mut self, now: Instant, from: SocketAddr, seq: u32) {
        let Some(name) = self.by_addr.get(&from).cloned() else { return };
        let Some(p) = self.probe.as_mut() else { return };
        if p.seq != seq || !p.indirect.contains(&name) || p.nacks.contains(&name) {
            return;
        }
        p.nacks.push(name);
        self.stats.nacks_received += 1;
        if p.nacks.len() == p.indirect.len()
            && let Some(p) = self.probe.take()
        {
            // Every intermediary tried and failed: no need to wait out the period.
            self.probe_failed(now, p);
        }
    }

    /// Answers a ping; returns whether the ack carried a refutation.
    pub(crate) fn on_ping(&mut self, from: SocketAddr, seq: u32, target: u32) -> bool {
        if target != self.me.name.hash32() {
            self.stats.misdirected_pings += 1;
            return false;
        }
        let refute = self.refute_source.then(|| self.self_alive());
        self.send(from, &Message::Ack { seq }, refute.as_ref());
        refute.is_some()
    }

    pub(crate) fn on_ping_req(
        &mut self,
        now: Instant,
        from: SocketAddr,
        seq: u32,
        target: &Name,
        addr: SocketAddr,
        nack_after_ms: u32,
    ) {
        if self.relays.len() >= MAX_RELAYS {
            self.stats.relays_refused += 1;
            return;
        }
        // A member that left is not probed on anyone's behalf: the requester
        // is told it left, which ends its probe without a suspicion.
        if let Some(&i) = self.index.get(target)
            && self.entries[i].state == State::Left
        {
            let left = Update::Left { name: target.clone(), incarnation: self.entries[i].incarnation };
            self.send(from, &Message::Gossip, Some(&left));
            return;
        }
        let local = self.next_seq();
        self.relays.insert(local, Relay { requester: from, seq, nack_sent: false });
        let buddy = self.index.get(target).and_then(|&i| {
            let e = &self.entries[i];
            (e.state == State::Suspect).then(|| Update::Suspect {
                name: e.name.clone(),
                incarnation: e.incarnation,
                from: e.suspicion.as_ref().map_or_else(|| self.me.name.clone(), |s| s.originator.clone()),
            })
        });
        self.send(addr, &Message::Ping { seq: local, target: target.hash32() }, buddy.as_ref());
        self.stats.relayed_pings += 1;
        let nack_after = Duration::from_millis(u64::from(nack_after_ms)).min(self.config.probe_interval);
        self.schedule(now + nack_after, Timer::RelayNack { seq: local });
        self.schedule(now + nack_after + self.config.probe_interval, Timer::RelayExpire { seq: local });
    }

    pub(crate) fn on_relay_nack(&mut self, seq: u32) {
        let Some(relay) = self.relays.get_mut(&seq) else { return };
        if relay.nack_sent {
            return;
        }
        relay.nack_sent = true;
        let (dst, seq) = (relay.requester, relay.seq);
        self.send(dst, &Message::Nack { seq }, None);
        self.stats.nacks_sent += 1;
    }

    /// No ack within the period (or every intermediary nacked): Lifeguard
    /// health accounting, then suspicion.
    fn probe_failed(&mut self, now: Instant, p: Probe) {
        // A target that left (or was declared dead) meanwhile explains the silence.
        let Some(&i) = self.index.get(&p.target) else { return };
        if !self.entries[i].state.is_active() {
            return;
        }
        self.stats.probes_failed += 1;
        let expected = p.indirect.len();
        // Missing nacks mean our own path may be the problem, not the target.
        let penalty = if expected > 0 { expected - p.nacks.len() } else { 1 };
        self.raise_health_score(u32::try_from(penalty).unwrap_or(u32::MAX));
        let e = &self.entries[i];
        let incarnation = e.incarnation;
        let evidence = ProbeEvidence { timeout: p.timeout, indirect: p.indirect, nacks: p.nacks };
        let me = self.me.name.clone();
        let confirmers: BTreeSet<Name> = evidence.nacks.iter().cloned().collect();
        self.suspect(now, i, incarnation, me, confirmers, Some(evidence));
    }

    /// Small groups: a member whose phi level passed the threshold is suspected
    /// without waiting for its turn to be probed.
    fn check_phi(&mut self, now: Instant) {
        let Some(threshold) = self.config.phi_threshold else { return };
        let late: Vec<(usize, u64)> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.state == State::Alive && e.phi.phi(now) > threshold)
            .map(|(i, e)| (i, e.incarnation))
            .collect();
        for (i, incarnation) in late {
            let me = self.me.name.clone();
            self.suspect(now, i, incarnation, me, BTreeSet::new(), None);
        }
    }
}
