//! The parts of a member that every protocol module works with, lent to
//! one handler at a time: configuration, randomness, this member's own
//! state, the table, measurements, suspicions, the probe order, timers and
//! the outbox. Each part keeps its state private behind its own methods;
//! this type only holds them together and offers the few operations that
//! need several at once (send with the retransmit limit of the current
//! size, an event with the member's snapshot, a random sample of members).

use std::net::SocketAddr;

use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::codec::{Message, Update};
use crate::config::Config;
use crate::core::outbox::Outbox;
use crate::core::timers::{Timer, TimerKey, Timers};
use crate::detector::{MAX_PEERS, Peers};
use crate::event::{Event, EventKind, Evidence};
use crate::hash::splitmix;
use crate::local::Local;
use crate::member::{Member, Name};
use crate::round::ProbeRound;
use crate::stats::Stats;
use crate::suspicion::Suspicions;
use crate::table::{Entry, Table};
use crate::time::Instant;
use crate::watch::Watches;

/// A member's parts (see the module documentation).
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) local: Local,
    pub(crate) table: Table,
    /// Round trips and phi of the members heard from most recently.
    pub(crate) peers: Peers,
    pub(crate) suspicions: Suspicions,
    pub(crate) round: ProbeRound,
    pub(crate) timers: Timers,
    pub(crate) out: Outbox,
    pub(crate) watches: Watches,
    pub(crate) stats: Stats,
    /// Last sequence number used for a ping (probes, relays, last chances).
    seq: u32,
    /// The two members heard from most recently (distinct slots), and when.
    heard: [Option<(usize, Instant)>; 2],
}

impl Ctx {
    /// The parts of a new member. Its sequence numbers start at a random
    /// value derived from `seed` (without drawing from `rng`), so that a
    /// restarted process never reuses the numbers of an earlier one: an ack
    /// recorded from an earlier run answers no probe of this one.
    pub(crate) fn new(config: Config, rng: ChaCha8Rng, local: Local, seed: u64) -> Ctx {
        Ctx {
            config,
            rng,
            local,
            table: Table::default(),
            peers: Peers::default(),
            suspicions: Suspicions::default(),
            round: ProbeRound::default(),
            timers: Timers::default(),
            out: Outbox::default(),
            watches: Watches::default(),
            stats: Stats::default(),
            seq: (splitmix(seed ^ 0x0005_E90F_5EED) >> 32) as u32,
            heard: [None, None],
        }
    }

    pub(crate) fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.timers.schedule(at, timer)
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Alive and suspect members, this one included.
    pub(crate) fn num_members(&self) -> usize {
        self.table.active() + 1
    }

    /// Sends one datagram: `message`, then `first` if given, then as many
    /// queued changes as fit. A gossip packet with nothing to carry is not sent.
    pub(crate) fn send(&mut self, dst: SocketAddr, message: &Message, first: Option<&Update>) {
        let limit = self.config.retransmit_limit(self.num_members());
        let sent = self.out.datagram(dst, message, first, self.config.max_packet_size, limit);
        self.stats.updates_sent += sent as u64;
    }

    /// Queues one message, without piggybacked updates, for a stream.
    pub(crate) fn send_stream(&mut self, dst: SocketAddr, message: Message) {
        self.out.stream(dst, message, Vec::new());
    }

    /// Pings member `i` over a stream; a suspect hears of its suspicion on
    /// it (`buddy`), so that its ack, on the same stream, carries its
    /// refutation even when every datagram between the two is lost.
    pub(crate) fn stream_ping(&mut self, i: usize, seq: u32, buddy: Option<Update>) {
        let e = self.table.entry(i);
        let (dst, target) = (e.addr(), e.name.hash32());
        self.out.stream(dst, Message::Ping { seq, target }, buddy.into_iter().collect());
    }

    pub(crate) fn enqueue(&mut self, update: &Update) {
        self.out.enqueue(update, false);
    }

    /// Gossips pending changes now rather than at the next gossip tick:
    /// for failures and refutations, whose news should not wait.
    pub(crate) fn gossip_soon(&mut self, now: Instant) {
        if self.out.want_gossip_now() {
            self.schedule(now, Timer::GossipNow);
        }
    }

    /// Sends pending changes to `gossip_fanout` random active members.
    pub(crate) fn gossip_round(&mut self) {
        if self.out.nothing_to_gossip() {
            return;
        }
        let targets = self.sample(self.config.gossip_fanout, |e| e.state.is_active());
        for i in targets {
            let dst = self.table.entry(i).addr();
            self.send(dst, &Message::Gossip, None);
        }
    }

    /// Queues this member's own `alive` claim for dissemination.
    pub(crate) fn broadcast_self(&mut self) {
        let update = self.local.alive();
        self.enqueue(&update);
    }

    pub(crate) fn emit(&mut self, kind: EventKind, i: usize, now: Instant, evidence: Option<Evidence>) {
        let member = self.snapshot(i, now);
        self.out.event(Event { kind, member, evidence: evidence.map(Box::new) });
    }

    pub(crate) fn emit_self(&mut self, kind: EventKind) {
        let member = self.local.member();
        self.out.event(Event { kind, member, evidence: None });
    }

    /// Snapshot of entry `i`.
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

    /// Whether any member other than slot `except` was heard from at or
    /// after `since`.
    pub(crate) fn heard_other_since(&self, except: usize, since: Instant) -> bool {
        self.heard.iter().flatten().any(|&(i, at)| i != except && at >= since)
    }

    /// Liveness evidence from whoever sent a datagram from `from`; returns the
    /// slot and name of the member known at that address. The slot stays
    /// valid while the datagram is handled: only a timer (reaping) removes
    /// entries, and adding one moves none.
    pub(crate) fn heard_from(&mut self, now: Instant, from: SocketAddr) -> Option<(usize, Name)> {
        let i = self.table.by_addr(&from)?;
        match self.heard[0] {
            Some((last, _)) if last == i => self.heard[0] = Some((i, now)),
            _ => self.heard = [Some((i, now)), self.heard[0]],
        }
        let e = self.table.entry(i);
        let name = e.name.clone();
        // Beyond MAX_PEERS members, arrivals start no new measurements (acks
        // to this member's own probes do): random gossip senders would only
        // churn the bounded map.
        let window = self.config.phi_window;
        if let Some(p) = self.peers.get_mut(e.hash, &name) {
            p.heard(now, window);
        } else if self.table.len() <= MAX_PEERS {
            self.peers.touch(e.hash, &name, now).phi.heartbeat(now, window);
        }
        Some((i, name))
    }
}
