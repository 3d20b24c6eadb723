//! Failure detection: SWIM probes with indirect probes, Lifeguard nacks and
//! local health, adaptive per-peer timeouts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use rand::RngExt;

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
        let e = self.table.entry(i);
        let (target, addr) = (e.name.clone(), e.addr());
        let (mult, min, max) =
            (self.config.rtt_deviation_mult, self.config.probe_timeout_min, self.config.probe_timeout_max);
        let timeout = self.peers.get(target.as_str()).map_or(max, |p| p.rtt.timeout(mult, min, max))
            * self.health_multiplier();
        // Lifeguard: a suspect hears of its suspicion first, on the probe itself.
        let buddy = (e.state == State::Suspect).then(|| self.buddy(i));
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

    /// The suspicion of member `i` as the buddy system sends it to the suspect.
    fn buddy(&self, i: usize) -> Update {
        let e = self.table.entry(i);
        let from =
            self.suspicions.get(&e.name).map_or_else(|| self.me.name.clone(), |s| s.originator.clone());
        Update::Suspect { name: e.name.clone(), incarnation: e.incarnation, from }
    }

    /// Randomised round-robin: every active member once per round, in a fresh
    /// random order each round; members that became active mid-round are
    /// slotted in at a random later position.
    ///
    /// The order is a keyed pseudo-random permutation of the table's slots
    /// ([`ProbeRound`]), not a shuffled list: a member keeps O(1) state for it
    /// however large the cluster.
    fn next_probe_target(&mut self) -> Option<usize> {
        for _ in 0..2 {
            loop {
                let remaining = self.round.remaining();
                let late = self.round.late.len();
                if remaining + late == 0 {
                    break;
                }
                // Each late member sits at a uniformly random place among what is left.
                let i = if self.rng.random_range(0..remaining + late) < late {
                    let k = self.rng.random_range(0..late);
                    let name = self.round.late.swap_remove(k);
                    self.table.get(&name)
                } else {
                    self.round.next().filter(|&i| i < self.table.slots() && self.table.visible(i))
                };
                if let Some(i) = i
                    && self.table.entry(i).state.is_active()
                {
                    return Some(i);
                }
            }
            if self.table.active() == 0 {
                return None;
            }
            self.round = ProbeRound::new(self.table.slots(), self.rng.random());
        }
        None
    }

    /// Adds a member that became active to the current round.
    pub(crate) fn add_to_probe_order(&mut self, name: Name) {
        self.round.late.push(name);
    }

    /// The direct probe timed out: ask intermediaries.
    pub(crate) fn on_probe_timeout(&mut self, now: Instant, seq: u32) {
        let Some(p) = self.probe.as_ref() else { return };
        if p.seq != seq || !p.indirect.is_empty() {
            return;
        }
        let Some(ti) = self.table.get(&p.target) else { return };
        let target = p.target.clone();
        let addr = self.table.entry(ti).addr();
        let remaining = p.period_end - now;
        // Nacks arrive well before the period ends; an ack later than that
        // still counts if it arrives within the period.
        let nack_after_ms = u32::try_from(remaining.mul_f64(NACK_FRACTION).as_millis()).unwrap_or(u32::MAX);
        let helpers =
            self.sample(self.config.indirect_checks, |e| e.state == State::Alive && e.name != target);
        let mut asked = Vec::with_capacity(helpers.len());
        for h in helpers {
            let e = self.table.entry(h);
            let dst = e.addr();
            asked.push(e.name.clone());
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
            if let Some(i) = self.table.get(&p.target)
                && self.table.entry(i).addr() == from
            {
                let hash = self.table.entry(i).hash;
                let peer = self.peers.touch(hash, &p.target, now, self.config.phi_window);
                peer.rtt.sample(now - p.sent_at);
                peer.phi.heartbeat(now);
            }
            self.health_score = self.health_score.saturating_sub(1);
            return;
        }
        if let Some(relay) = self.relays.remove(&seq) {
            self.send(relay.requester, &Message::Ack { seq: relay.seq }, None);
        }
    }

    pub(crate) fn on_nack(&mut self, now: Instant, from: SocketAddr, seq: u32) {
        let Some(i) = self.table.by_addr(&from) else { return };
        let name = self.table.entry(i).name.clone();
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
        if let Some(i) = self.table.get(target)
            && self.table.entry(i).state == State::Left
        {
            let left = Update::Left { name: target.clone(), incarnation: self.table.entry(i).incarnation };
            self.send(from, &Message::Gossip, Some(&left));
            return;
        }
        let local = self.next_seq();
        self.relays.insert(local, Relay { requester: from, seq, nack_sent: false });
        let buddy = self
            .table
            .get(target)
            .and_then(|i| (self.table.entry(i).state == State::Suspect).then(|| self.buddy(i)));
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
        let Some(i) = self.table.get(&p.target) else { return };
        if !self.table.entry(i).state.is_active() {
            return;
        }
        self.stats.probes_failed += 1;
        let expected = p.indirect.len();
        // Missing nacks mean our own path may be the problem, not the target.
        let penalty = if expected > 0 { expected - p.nacks.len() } else { 1 };
        self.raise_health_score(u32::try_from(penalty).unwrap_or(u32::MAX));
        let incarnation = self.table.entry(i).incarnation;
        let evidence = ProbeEvidence { timeout: p.timeout, indirect: p.indirect, nacks: p.nacks };
        let me = self.me.name.clone();
        let confirmers: BTreeSet<Name> = evidence.nacks.iter().cloned().collect();
        self.suspect(now, i, incarnation, me, confirmers, Some(evidence));
    }

    /// Small groups: a member whose phi level passed the threshold is suspected
    /// without waiting for its turn to be probed.
    fn check_phi(&mut self, now: Instant) {
        let Some(threshold) = self.config.phi_threshold else { return };
        // Only members with measurements can be late; in a small group that is all of them.
        let late: Vec<(usize, u64)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.phi.phi(now) > threshold)
            .filter_map(|(name, _)| self.table.get(name))
            .map(|i| (i, self.table.entry(i)))
            .filter(|(_, e)| e.state == State::Alive)
            .map(|(i, e)| (i, e.incarnation))
            .collect();
        for (i, incarnation) in late {
            let me = self.me.name.clone();
            self.suspect(now, i, incarnation, me, BTreeSet::new(), None);
        }
    }
}

/// One round of probing: a pseudo-random permutation of the slots `0..len`,
/// keyed per round, walked one position at a time (a 4-round Feistel network
/// over the next power of four, cycle-walking past `len`), plus the members
/// that became active during the round.
#[derive(Debug, Default)]
pub(crate) struct ProbeRound {
    key: u64,
    len: usize,
    pos: usize,
    /// Bits per Feistel half.
    half: u32,
    /// Members that became active mid-round, to be slotted in.
    pub(crate) late: Vec<Name>,
}

impl ProbeRound {
    pub(crate) fn new(len: usize, key: u64) -> ProbeRound {
        let mut half = 1;
        while (1usize << (2 * half)) < len {
            half += 1;
        }
        ProbeRound { key, len, pos: 0, half, late: Vec::new() }
    }

    /// Positions not yet walked.
    pub(crate) fn remaining(&self) -> usize {
        self.len - self.pos
    }

    /// The slot at the next position.
    pub(crate) fn next(&mut self) -> Option<usize> {
        if self.pos >= self.len {
            return None;
        }
        let mut x = self.pos as u64;
        self.pos += 1;
        // A permutation of 0..4^half; walking its cycle until the value falls
        // below len keeps it a permutation of 0..len.
        loop {
            x = self.permute(x);
            if (x as usize) < self.len {
                return Some(x as usize);
            }
        }
    }

    fn permute(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half) - 1;
        let (mut l, mut r) = (x >> self.half, x & mask);
        for round in 0..4u64 {
            let f = crate::digest::splitmix(self.key ^ (round << 56) ^ r) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half) | r
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeRound;

    #[test]
    fn a_round_visits_every_slot_exactly_once() {
        for len in [1usize, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            for key in [0u64, 1, 0xDEAD_BEEF] {
                let mut round = ProbeRound::new(len, key);
                let mut seen = vec![false; len];
                while let Some(i) = round.next() {
                    assert!(!seen[i], "slot {i} twice (len {len})");
                    seen[i] = true;
                }
                assert!(seen.iter().all(|&s| s), "len {len} key {key}: a slot was skipped");
            }
        }
    }

    #[test]
    fn rounds_with_different_keys_differ() {
        let order = |key| {
            let mut r = ProbeRound::new(50, key);
            std::iter::from_fn(|| r.next()).collect::<Vec<_>>()
        };
        assert_ne!(order(1), order(2));
        assert_ne!(order(1), (0..50).collect::<Vec<_>>());
    }
}
