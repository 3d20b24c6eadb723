//! The membership state machine: inputs in (`handle_*`), outputs polled out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::broadcast::BroadcastQueue;
use crate::codec::{self, Message, Update};
use crate::config::Config;
use crate::detector::{MAX_PEERS, Peers};
use crate::error::{ConfigError, DecodeError, MemberError};
use crate::event::{Event, EventKind, Evidence, ProbeEvidence};
use crate::member::{Health, Identity, Member, Meta, Name, State};
use crate::probe::ProbeRound;
use crate::table::{Entry, Table};
use crate::time::Instant;

/// How a transmit should travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// One datagram (UDP): probes, acks, gossip.
    Datagram,
    /// A reliable stream (TCP): push-pull, and fallback probes.
    Stream,
}

/// Bytes for the runtime to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dst: SocketAddr,
    /// Datagram or stream. A stream transmit is one whole packet: the runtime
    /// opens a connection to `dst`, writes it, and hands whatever comes back on
    /// that connection to [`Core::handle_stream`] with `dst` as the sender. A
    /// stream transmit whose `dst` is the sender of a stream just handled is
    /// the reply on that stream.
    pub channel: Channel,
    /// Encoded packet.
    pub payload: Vec<u8>,
}

/// Plain counters kept by the core; the runtime exports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Direct probes sent.
    pub probes_sent: u64,
    /// Probes that got no ack within the protocol period.
    pub probes_failed: u64,
    /// Ping-reqs sent to intermediaries.
    pub indirect_probes_sent: u64,
    /// Pings sent on behalf of another member.
    pub relayed_pings: u64,
    /// Nacks received from intermediaries.
    pub nacks_received: u64,
    /// Nacks sent as an intermediary.
    pub nacks_sent: u64,
    /// Suspicions this member started (its own probe failed).
    pub suspicions_started: u64,
    /// Times this member refuted a claim about itself.
    pub refutations: u64,
    /// Members this member declared dead (its suspicion timed out).
    pub failures_declared: u64,
    /// Piggybacked updates sent.
    pub updates_sent: u64,
    /// Push-pull exchanges started.
    pub push_pulls_sent: u64,
    /// Pings addressed to another name (a different member at this address).
    pub misdirected_pings: u64,
    /// Ping-reqs refused because too many relays were pending.
    pub relays_refused: u64,
    /// Fallback probes sent over a stream after a datagram probe timed out.
    pub stream_probes_sent: u64,
    /// Digest exchanges started because a member held left or dead sent a
    /// datagram (it came back and this member had missed it).
    pub returned_checks: u64,
}

#[derive(Debug)]
pub(crate) struct Suspicion {
    pub(crate) originator: Name,
    pub(crate) confirmers: BTreeSet<Name>,
    pub(crate) started: Instant,
    pub(crate) token: u64,
    pub(crate) probe: Option<ProbeEvidence>,
    /// The suspect was pinged once more before being declared dead.
    pub(crate) last_chance: bool,
}

impl Entry {
    /// This entry as push-pull carries it.
    pub(crate) fn wire_state(&self) -> codec::MemberState {
        codec::MemberState {
            name: self.name.clone(),
            incarnation: self.incarnation,
            state: self.state,
            addr: self.content.addr,
            meta: self.content.meta.clone(),
            health: self.content.health.clone(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) target: Name,
    pub(crate) seq: u32,
    pub(crate) sent_at: Instant,
    pub(crate) period_end: Instant,
    pub(crate) timeout: Duration,
    pub(crate) indirect: Vec<Name>,
    pub(crate) nacks: Vec<Name>,
}

#[derive(Debug)]
pub(crate) struct Relay {
    pub(crate) requester: SocketAddr,
    pub(crate) seq: u32,
    pub(crate) nack_sent: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    Probe,
    ProbeTimeout {
        seq: u32,
    },
    Gossip,
    /// An extra gossip round right away, for news that should not wait.
    GossipNow,
    PushPull,
    Reconnect,
    Suspicion {
        name: Name,
        token: u64,
    },
    RelayNack {
        seq: u32,
    },
    RelayExpire {
        seq: u32,
    },
    /// Forget a dead or left member that has stayed so since `since`.
    Reap {
        name: Name,
        since: Instant,
    },
}

/// Most ping-reqs served at once; more are refused (counted).
pub(crate) const MAX_RELAYS: usize = 1024;

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
    pub(crate) config: Config,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) me: Identity,
    pub(crate) incarnation: u64,
    pub(crate) leaving: bool,
    pub(crate) table: Table,
    /// Current suspicions, by suspect.
    pub(crate) suspicions: BTreeMap<Name, Suspicion>,
    /// Round trips and phi of the members heard from most recently.
    pub(crate) peers: Peers,
    pub(crate) round: ProbeRound,
    pub(crate) probe: Option<Probe>,
    pub(crate) relays: BTreeMap<u32, Relay>,
    pub(crate) next_seq: u32,
    timers: BTreeMap<(Instant, u64), Timer>,
    pub(crate) next_token: u64,
    pub(crate) broadcasts: BroadcastQueue,
    gossip_now_pending: bool,
    /// The packet being handled carried a claim against this member: its
    /// sender gets the refutation directly.
    pub(crate) refute_source: bool,
    /// Suspecters named in the packet being handled, to refute directly.
    pub(crate) refute_to: Vec<SocketAddr>,
    pub(crate) transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub(crate) health_score: u32,
    pub(crate) stats: Stats,
    /// When a member held left or dead that sent a datagram was last asked for its state.
    last_return_check: Option<Instant>,
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
        let mut core = Core {
            config,
            rng,
            me,
            incarnation,
            leaving: false,
            table: Table::default(),
            suspicions: BTreeMap::new(),
            peers: Peers::default(),
            round: ProbeRound::default(),
            probe: None,
            relays: BTreeMap::new(),
            next_seq: 0,
            timers: BTreeMap::new(),
            next_token: 0,
            broadcasts: BroadcastQueue::default(),
            gossip_now_pending: false,
            refute_source: false,
            refute_to: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            health_score: 0,
            stats: Stats::default(),
            last_return_check: None,
        };
        core.schedule(first_probe, Timer::Probe);
        core.schedule(now + core.config.gossip_interval, Timer::Gossip);
        core.schedule(first_push_pull, Timer::PushPull);
        // Spread over one interval, so that members started together do not all
        // contact the same dead member at once. Derived from the seed without
        // drawing from the RNG, so the rest of the run is unchanged.
        let spread = crate::digest::unit_from_seed(seed);
        core.schedule(now + core.config.reconnect_interval.mul_f64(0.5 + spread), Timer::Reconnect);
        core.broadcast_self();
        Ok(core)
    }

    // ------------------------------------------------------------ commands

    /// Starts joining: a full-state exchange (push-pull, over a stream) with
    /// each seed. Retrying, and resolving names to addresses, is the caller's.
    pub fn join(&mut self, _now: Instant, seeds: &[SocketAddr]) -> usize {
        let mut sent = 0;
        for seed in seeds {
            if *seed != self.me.addr {
                self.send_push_pull(*seed, true, false);
                sent += 1;
            }
        }
        sent
    }

    /// Leaves gracefully: `left` is gossiped at once and on every gossip round;
    /// probing stops. Keep driving the core until [`Core::leave_disseminated`]
    /// (or a timeout), then drop it.
    pub fn leave(&mut self, now: Instant) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.probe = None;
        let update = Update::Left { name: self.me.name.clone(), incarnation: self.incarnation };
        self.enqueue(&update);
        self.emit_self(now, EventKind::Left);
        self.gossip_round();
    }

    /// True once the `left` announcement went out as many times as any change
    /// is retransmitted (or nobody is left to tell). Members that heard it pass
    /// it on, so the leaving member may stop then.
    pub fn leave_disseminated(&self) -> bool {
        if !self.leaving {
            return false;
        }
        self.table.active() == 0 || self.broadcasts.transmits(&self.me.name).is_none()
    }

    /// Publishes new metadata (at most 512 bytes): raises this member's
    /// incarnation and gossips the change.
    pub fn set_metadata(&mut self, now: Instant, meta: impl Into<Vec<u8>>) -> Result<(), MemberError> {
        self.me.meta = Meta::new(meta)?;
        self.bump_self(now);
        Ok(())
    }

    /// Publishes a new health status: raises this member's incarnation and
    /// gossips the change.
    pub fn set_health(&mut self, now: Instant, health: Health) {
        self.me.health = health;
        self.bump_self(now);
    }

    fn bump_self(&mut self, now: Instant) {
        if self.leaving {
            // Announcing it would supersede `left`: a member that is leaving
            // keeps the change to itself.
            return;
        }
        self.incarnation = self.incarnation.saturating_add(1);
        self.broadcast_self();
        self.emit_self(now, EventKind::Updated);
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
        if bytes.len() > self.config.max_packet_size {
            return Err(DecodeError::TooLarge { len: bytes.len(), max: self.config.max_packet_size });
        }
        let packet = codec::decode(bytes)?;
        if matches!(packet.message, Message::PushPull { .. }) {
            return Err(DecodeError::Invalid {
                field: "message type",
                reason: "push-pull only over a stream",
            });
        }
        let sender = self.heard_from(now, from);
        // Updates first: a suspicion of us riding on a ping is refuted in the ack.
        self.refute_source = false;
        let mut about_sender = false;
        for update in packet.updates {
            about_sender |= sender.as_ref() == Some(update.name());
            self.apply_update(now, update);
        }
        if let Some(name) = sender
            && !about_sender
        {
            self.check_returned(now, from, &name);
        }
        let mut source_told = false;
        match packet.message {
            Message::Ping { seq, target } => source_told = self.on_ping(from, seq, target),
            Message::Ack { seq } => self.on_ack(now, from, seq),
            Message::PingReq { seq, target, addr, nack_after_ms } => {
                self.on_ping_req(now, from, seq, &target, addr, nack_after_ms)
            }
            Message::Nack { seq } => self.on_nack(now, from, seq),
            Message::Gossip | Message::PushPull { .. } | Message::Digest { .. } => {}
        }
        if self.refute_source && !source_told {
            self.refute_to.push(from);
        } else if source_told {
            self.refute_to.retain(|a| *a != from);
        }
        self.send_refutations();
        Ok(())
    }

    /// Sends this member's alive claim to each member that holds a claim against it.
    pub(crate) fn send_refutations(&mut self) {
        self.refute_source = false;
        if self.refute_to.is_empty() {
            return;
        }
        let mut dsts = std::mem::take(&mut self.refute_to);
        dsts.sort();
        dsts.dedup();
        let alive = self.self_alive();
        for dst in dsts {
            self.send(dst, &Message::Gossip, Some(&alive));
        }
    }

    /// A whole push-pull stream arrived from `from`. The reply, if one is due,
    /// is a [`Channel::Stream`] transmit to `from`.
    pub fn handle_stream(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> Result<(), DecodeError> {
        if bytes.len() > self.config.max_stream_size {
            return Err(DecodeError::TooLarge { len: bytes.len(), max: self.config.max_stream_size });
        }
        let packet = codec::decode(bytes)?;
        match packet.message {
            Message::PushPull { reply, states, .. } => {
                self.merge_states(now, states);
                for update in packet.updates {
                    self.apply_update(now, update);
                }
                self.send_refutations();
                if !reply {
                    self.send_push_pull(from, false, true);
                }
            }
            // The fallback probe path: a ping over a stream is answered on it.
            Message::Ping { seq, target } => {
                if target == self.me.name.hash32() {
                    self.send_stream(from, &Message::Ack { seq });
                } else {
                    self.stats.misdirected_pings += 1;
                }
            }
            Message::Ack { seq } => self.on_ack(now, from, seq),
            Message::Digest { reply, sums, states } => self.on_digest(now, from, reply, sums, states),
            _ => {
                return Err(DecodeError::Invalid {
                    field: "message type",
                    reason: "only push-pull, digest, ping and ack over a stream",
                });
            }
        }
        Ok(())
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            self.on_timer(now, timer);
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer) {
        match timer {
            Timer::Probe => self.on_probe_tick(now),
            Timer::ProbeTimeout { seq } => self.on_probe_timeout(now, seq),
            Timer::Gossip => {
                self.schedule(now + self.config.gossip_interval, Timer::Gossip);
                self.gossip_round();
            }
            Timer::GossipNow => {
                self.gossip_now_pending = false;
                self.gossip_round();
            }
            Timer::PushPull => {
                let next = self.config.push_pull_interval_for(self.num_members());
                let jitter = 0.75 + 0.5 * self.rng.random::<f64>();
                self.schedule(now + next.mul_f64(jitter), Timer::PushPull);
                if !self.leaving
                    && let Some(&i) = self.sample(1, |e| e.state.is_active()).first()
                {
                    let dst = self.table.entry(i).addr();
                    self.send_digest(dst);
                }
            }
            Timer::Reconnect => {
                self.schedule(now + self.config.reconnect_interval, Timer::Reconnect);
                let (_, dead) = self.table.dead(0);
                if !self.leaving && dead > 0 {
                    let k = self.rng.random_range(0..dead);
                    if let (Some(i), _) = self.table.dead(k) {
                        let dst = self.table.entry(i).addr();
                        self.send_digest(dst);
                    }
                }
            }
            Timer::Suspicion { name, token } => self.on_suspicion_timeout(now, &name, token),
            Timer::RelayNack { seq } => self.on_relay_nack(seq),
            Timer::RelayExpire { seq } => {
                self.relays.remove(&seq);
            }
            Timer::Reap { name, since } => self.reap(&name, since),
        }
    }

    // ------------------------------------------------------------ outputs

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next membership event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Core::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first_key_value().map(|((at, _), _)| *at)
    }

    // ------------------------------------------------------------ queries

    /// This member's name.
    pub fn name(&self) -> &Name {
        &self.me.name
    }

    /// This member's current incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Lifeguard local health score: 0 is healthy; each point stretches this
    /// member's probe interval and timeout by one more multiple.
    pub fn local_health(&self) -> u32 {
        self.health_score
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Alive and suspect members, this one included.
    pub fn num_members(&self) -> usize {
        self.table.active() + 1
    }

    /// Changes waiting to be gossiped.
    pub fn pending_updates(&self) -> usize {
        self.broadcasts.len()
    }

    /// Snapshot of this member.
    pub fn local_member(&self, now: Instant) -> Member {
        Member {
            name: self.me.name.clone(),
            addr: self.me.addr,
            incarnation: self.incarnation,
            meta: self.me.meta.clone(),
            health: self.me.health.clone(),
            state: if self.leaving { State::Left } else { State::Alive },
            phi: 0.0,
            rtt: None,
            since: now,
        }
    }

    /// Snapshot of one member (this one included), if known.
    pub fn member(&self, name: &str, now: Instant) -> Option<Member> {
        if name == self.me.name.as_str() {
            return Some(self.local_member(now));
        }
        let i = self.table.get(name)?;
        Some(self.snapshot(i, now))
    }

    /// Snapshots of every known member, this one first, then by name.
    pub fn members(&self, now: Instant) -> Vec<Member> {
        let mut out = Vec::with_capacity(self.table.len() + 1);
        out.push(self.local_member(now));
        out.extend(self.table.by_name().map(|(i, _)| self.snapshot(i, now)));
        out
    }

    pub(crate) fn snapshot(&self, i: usize, now: Instant) -> Member {
        let e = self.table.entry(i);
        let peer = self.peers.get(e.name.as_str());
        Member {
            name: e.name.clone(),
            addr: e.content.addr,
            incarnation: e.incarnation,
            meta: e.content.meta.clone(),
            health: e.content.health.clone(),
            state: e.state,
            phi: match peer {
                Some(p) if e.state.is_active() => p.phi.phi(now),
                _ => 0.0,
            },
            rtt: peer.and_then(|p| p.rtt.smoothed()),
            since: e.since,
        }
    }

    // ------------------------------------------------------------ helpers

    pub(crate) fn schedule(&mut self, at: Instant, timer: Timer) {
        self.next_token += 1;
        self.timers.insert((at, self.next_token), timer);
    }

    pub(crate) fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    pub(crate) fn emit(&mut self, kind: EventKind, i: usize, now: Instant, evidence: Option<Evidence>) {
        let member = self.snapshot(i, now);
        self.events.push_back(Event { kind, member, evidence });
    }

    fn emit_self(&mut self, now: Instant, kind: EventKind) {
        let member = self.local_member(now);
        self.events.push_back(Event { kind, member, evidence: None });
    }

    pub(crate) fn enqueue(&mut self, update: &Update) {
        self.enqueue_with(update, false);
    }

    /// Queues `update`; a `boosted` one is gossiped twice as many times.
    pub(crate) fn enqueue_with(&mut self, update: &Update, boosted: bool) {
        let mut bytes = Vec::with_capacity(48);
        codec::encode_update(&mut bytes, update);
        self.broadcasts.push(update.name().clone(), bytes, boosted);
    }

    /// Gossips pending changes now rather than at the next gossip tick:
    /// for failures and refutations, whose news should not wait.
    pub(crate) fn gossip_soon(&mut self, now: Instant) {
        if !self.gossip_now_pending {
            self.gossip_now_pending = true;
            self.schedule(now, Timer::GossipNow);
        }
    }

    pub(crate) fn self_alive(&self) -> Update {
        Update::Alive {
            name: self.me.name.clone(),
            incarnation: self.incarnation,
            addr: self.me.addr,
            meta: self.me.meta.clone(),
            health: self.me.health.clone(),
        }
    }

    pub(crate) fn broadcast_self(&mut self) {
        let update = self.self_alive();
        self.enqueue(&update);
    }

    /// Sends one datagram: `message`, then `first` if given, then as many
    /// queued changes as fit. A gossip packet with nothing to carry is not sent.
    pub(crate) fn send(&mut self, dst: SocketAddr, message: &Message, first: Option<&Update>) {
        let max = self.config.max_packet_size;
        let mut buf = Vec::with_capacity(max.min(512));
        codec::encode_message(&mut buf, message);
        let count_at = buf.len();
        buf.push(0);
        let mut count = 0;
        let mut skip = None;
        if let Some(update) = first {
            let before = buf.len();
            codec::encode_update(&mut buf, update);
            if buf.len() > max {
                buf.truncate(before);
            } else {
                count = 1;
                skip = Some(update.name().clone());
            }
        }
        let limit = self.config.retransmit_limit(self.num_members());
        count +=
            self.broadcasts.fill(&mut buf, max, codec::MAX_UPDATES_PER_PACKET - count, limit, skip.as_ref());
        if count == 0 && matches!(message, Message::Gossip) {
            return;
        }
        buf[count_at] = u8::try_from(count).unwrap_or(u8::MAX);
        self.stats.updates_sent += count as u64;
        self.transmits.push_back(Transmit { dst, channel: Channel::Datagram, payload: buf });
    }

    /// Queues one message, without piggybacked updates, for a stream.
    pub(crate) fn send_stream(&mut self, dst: SocketAddr, message: &Message) {
        let payload = codec::encode(&codec::Packet { message: message.clone(), updates: vec![] });
        self.transmits.push_back(Transmit { dst, channel: Channel::Stream, payload });
    }

    pub(crate) fn send_push_pull(&mut self, dst: SocketAddr, join: bool, reply: bool) {
        let mut states = Vec::with_capacity(self.table.len() + 1);
        // The sender's own state goes first: receivers take it as the sender.
        states.push(self.own_state());
        states.extend(self.table.by_name().map(|(_, e)| e.wire_state()));
        let payload = codec::encode(&codec::Packet {
            message: Message::PushPull { join, reply, states },
            updates: vec![],
        });
        if !reply {
            self.stats.push_pulls_sent += 1;
        }
        self.transmits.push_back(Transmit { dst, channel: Channel::Stream, payload });
    }

    /// Sends pending changes to `gossip_fanout` random active members.
    fn gossip_round(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        let targets = self.sample(self.config.gossip_fanout, |e| e.state.is_active());
        for i in targets {
            let dst = self.table.entry(i).addr();
            self.send(dst, &Message::Gossip, None);
        }
    }

    /// Up to `k` distinct random entries that pass `filter`.
    pub(crate) fn sample(&mut self, k: usize, filter: impl Fn(&Entry) -> bool) -> Vec<usize> {
        let table = &self.table;
        let filter = |i: usize| table.visible(i) && filter(table.entry(i));
        let len = table.slots();
        let mut out = Vec::with_capacity(k);
        if len == 0 || k == 0 {
            return out;
        }
        let mut attempts = 0;
        while out.len() < k && attempts < 4 * k + 8 {
            attempts += 1;
            let i = self.rng.random_range(0..len);
            if filter(i) && !out.contains(&i) {
                out.push(i);
            }
        }
        if out.len() < k {
            let mut rest: Vec<usize> = (0..len).filter(|&i| !out.contains(&i) && filter(i)).collect();
            rest.shuffle(&mut self.rng);
            rest.truncate(k - out.len());
            out.extend(rest);
        }
        out
    }

    /// Liveness evidence from whoever sent a datagram from `from`; returns the
    /// name of the member known at that address.
    fn heard_from(&mut self, now: Instant, from: SocketAddr) -> Option<Name> {
        let i = self.table.by_addr(&from)?;
        let e = self.table.entry(i);
        let name = e.name.clone();
        // Beyond MAX_PEERS members, arrivals start no new measurements (acks
        // to this member's own probes do): random gossip senders would only
        // churn the bounded map.
        if self.table.len() <= MAX_PEERS || self.peers.get(name.as_str()).is_some() {
            self.peers.touch(e.hash, &name, now, self.config.phi_window).phi.heartbeat(now);
        }
        Some(name)
    }

    /// A member held `left` or `dead` for a while sent a datagram that says
    /// nothing about itself: it is running again and this member missed the
    /// news (the tail of infection-style gossip; nothing else contacts a
    /// member held `left` before the next periodic exchange). Ask it for its
    /// state with a digest exchange, at most once per probe interval.
    fn check_returned(&mut self, now: Instant, from: SocketAddr, name: &Name) {
        let Some(i) = self.table.get(name) else { return };
        let e = self.table.entry(i);
        let quiet = self.config.probe_interval * 2;
        if self.leaving || e.state.is_active() || e.since + quiet > now {
            return;
        }
        if self.last_return_check.is_some_and(|at| at + self.config.probe_interval > now) {
            return;
        }
        self.last_return_check = Some(now);
        self.stats.returned_checks += 1;
        self.send_digest(from);
    }

    pub(crate) fn raise_health_score(&mut self, by: u32) {
        self.health_score = (self.health_score + by).min(self.config.max_local_health - 1);
    }

    /// The current protocol period and probe-timeout multiplier.
    pub(crate) fn health_multiplier(&self) -> u32 {
        self.health_score + 1
    }

    fn reap(&mut self, name: &Name, since: Instant) {
        let Some(i) = self.table.get(name) else { return };
        let e = self.table.entry(i);
        if e.since != since || e.state.is_active() {
            return;
        }
        self.table.remove(i);
        self.peers.forget(name.as_str());
    }
}
