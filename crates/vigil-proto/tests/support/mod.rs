//! A virtual-time, in-memory cluster driver for the core's tests and examples.
//!
//! Packets sit in one queue ordered by delivery time; each member is woken at
//! its own `poll_timeout`. Loss, delay, one-way loss, partitions, crashes and
//! restarts are operations on that queue. Everything random comes from the
//! seed: the same seed gives the same run.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use vigil_proto::{Channel, Config, Core, Event, EventKind, Health, Identity, Instant, Meta, Name, State};

pub struct Node {
    pub core: Core,
    pub addr: SocketAddr,
    pub up: bool,
}

struct Packet {
    from: usize,
    to: usize,
    channel: Channel,
    bytes: Vec<u8>,
}

/// An event seen by member `observer` at `at`.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub observer: usize,
    pub event: Event,
}

pub struct Cluster {
    pub now: Instant,
    pub nodes: Vec<Node>,
    pub config: Config,
    pub seed: u64,
    queue: BTreeMap<(Instant, u64), Packet>,
    wakes: BTreeSet<(Instant, usize)>,
    wake_of: Vec<Option<Instant>>,
    by_addr: BTreeMap<SocketAddr, usize>,
    rng: ChaCha8Rng,
    seq: u64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// One-way latency of every link.
    pub latency: Duration,
    /// Uniform jitter added to the latency.
    pub jitter: Duration,
    /// Extra delay on everything a member sends.
    pub send_delay: BTreeMap<usize, Duration>,
    /// (from, to) pairs whose packets are dropped.
    blocked: BTreeSet<(usize, usize)>,
    /// Group of each member while partitioned; packets across groups are dropped.
    partition: Option<Vec<u8>>,
    pub events: Vec<Seen>,
    /// Prints every delivery to this member that carries an update about that one.
    pub trace: Option<(usize, String)>,
    /// When set, every delivered packet is recorded here (from, to, channel, bytes).
    pub recorded: Option<Vec<Captured>>,
    pub delivered: u64,
    pub bytes_sent: u64,
}

/// A delivered packet: (from, to, channel, bytes).
pub type Captured = (usize, usize, Channel, Vec<u8>);

pub fn name(i: usize) -> String {
    format!("node-{i:03}")
}

fn addr(i: usize) -> SocketAddr {
    let i = u16::try_from(i).expect("fewer than 65536 members");
    SocketAddr::from(([10, 0, (i >> 8) as u8, (i & 0xff) as u8], 7900))
}

impl Cluster {
    /// `n` members, not yet joined.
    pub fn new(n: usize, config: Config, seed: u64) -> Cluster {
        let mut c = Cluster {
            now: Instant::ZERO,
            nodes: Vec::with_capacity(n),
            config,
            seed,
            queue: BTreeMap::new(),
            wakes: BTreeSet::new(),
            wake_of: Vec::new(),
            by_addr: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            seq: 0,
            loss: 0.0,
            latency: Duration::from_micros(200),
            jitter: Duration::from_micros(100),
            send_delay: BTreeMap::new(),
            blocked: BTreeSet::new(),
            partition: None,
            events: Vec::new(),
            trace: None,
            recorded: None,
            delivered: 0,
            bytes_sent: 0,
        };
        for i in 0..n {
            let core = c.make_core(i, 1);
            c.by_addr.insert(addr(i), i);
            c.nodes.push(Node { core, addr: addr(i), up: true });
            c.wake_of.push(None);
            c.reschedule(i);
        }
        c
    }

    /// `n` members; each joins member 0 a few milliseconds apart; then runs
    /// until `settle` has passed.
    pub fn joined(n: usize, config: Config, seed: u64, settle: Duration) -> Cluster {
        let mut c = Cluster::new(n, config, seed);
        for i in 1..n {
            c.run_for(Duration::from_millis(5));
            c.join(i, &[0]);
        }
        c.run_for(settle);
        c
    }

    fn make_core(&self, i: usize, incarnation: u64) -> Core {
        let me = Identity {
            name: Name::new(&name(i)).expect("valid name"),
            addr: addr(i),
            meta: Meta::default(),
            health: Health::ok(),
        };
        let seed = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64) ^ (incarnation << 32);
        Core::new(self.config.clone(), me, incarnation, seed, self.now).expect("valid config")
    }

    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&s| addr(s)).collect();
        self.nodes[i].core.join(self.now, &addrs);
        self.flush(i);
    }

    pub fn leave(&mut self, i: usize) {
        self.nodes[i].core.leave(self.now);
        self.flush(i);
    }

    pub fn set_metadata(&mut self, i: usize, meta: &[u8]) {
        self.nodes[i].core.set_metadata(self.now, meta.to_vec()).expect("metadata fits");
        self.flush(i);
    }

    /// The process stops: nothing in or out, no timers.
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].up = false;
        if let Some(at) = self.wake_of[i].take() {
            self.wakes.remove(&(at, i));
        }
    }

    /// A new process with the same name and address, at `incarnation`, joins `seeds`.
    pub fn restart(&mut self, i: usize, incarnation: u64, seeds: &[usize]) {
        self.nodes[i].core = self.make_core(i, incarnation);
        self.nodes[i].up = true;
        self.reschedule(i);
        self.join(i, seeds);
    }

    /// Delivers captured packets again, now, as an attacker on the path would.
    pub fn replay(&mut self, packets: &[Captured]) {
        for (from, to, channel, bytes) in packets {
            self.seq += 1;
            self.queue.insert(
                (self.now, self.seq),
                Packet { from: *from, to: *to, channel: *channel, bytes: bytes.clone() },
            );
        }
    }

    pub fn block(&mut self, from: usize, to: usize) {
        self.blocked.insert((from, to));
    }

    pub fn unblock_all(&mut self) {
        self.blocked.clear();
    }

    /// Cuts the cluster: members in `side` on one side, the rest on the other.
    pub fn partition(&mut self, side: &[usize]) {
        let mut groups = vec![0u8; self.nodes.len()];
        for &i in side {
            groups[i] = 1;
        }
        self.partition = Some(groups);
    }

    pub fn heal(&mut self) {
        self.partition = None;
    }

    fn dropped(&mut self, from: usize, to: usize, channel: Channel) -> bool {
        if self.blocked.contains(&(from, to)) {
            return true;
        }
        if let Some(g) = &self.partition
            && g[from] != g[to]
        {
            return true;
        }
        channel == Channel::Datagram && self.loss > 0.0 && self.rng.random::<f64>() < self.loss
    }

    /// Drains member `i`'s transmits and events, and re-arms its wake-up.
    fn flush(&mut self, i: usize) {
        while let Some(t) = self.nodes[i].core.poll_transmit() {
            self.bytes_sent += t.payload.len() as u64;
            let Some(&to) = self.by_addr.get(&t.dst) else { continue };
            if self.dropped(i, to, t.channel) {
                continue;
            }
            let jitter = self.jitter.mul_f64(self.rng.random::<f64>());
            let extra = self.send_delay.get(&i).copied().unwrap_or_default();
            let at = self.now + self.latency + jitter + extra;
            self.seq += 1;
            self.queue.insert((at, self.seq), Packet { from: i, to, channel: t.channel, bytes: t.payload });
        }
        while let Some(event) = self.nodes[i].core.poll_event() {
            self.events.push(Seen { at: self.now, observer: i, event });
        }
        self.reschedule(i);
    }

    fn reschedule(&mut self, i: usize) {
        if let Some(at) = self.wake_of[i].take() {
            self.wakes.remove(&(at, i));
        }
        if !self.nodes[i].up {
            return;
        }
        if let Some(at) = self.nodes[i].core.poll_timeout() {
            self.wakes.insert((at, i));
            self.wake_of[i] = Some(at);
        }
    }

    /// Runs every delivery and timer up to `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.queue.first_key_value().map(|(k, _)| k.0);
            let next_wake = self.wakes.first().map(|w| w.0);
            let packet_first = match (next_packet, next_wake) {
                (None, None) => break,
                (Some(p), Some(w)) => p <= w,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            let at = if packet_first { next_packet } else { next_wake }.expect("one is set");
            if at > until {
                break;
            }
            self.now = at;
            if packet_first {
                let (_, p) = self.queue.pop_first().expect("checked");
                if !self.nodes[p.to].up {
                    continue;
                }
                self.delivered += 1;
                if let Some((to, about)) = &self.trace
                    && let Ok(pkt) = vigil_proto::codec::decode(&p.bytes)
                {
                    let about: Vec<_> = pkt.updates.iter().filter(|u| u.name().as_str() == about).collect();
                    if *to == p.to || !about.is_empty() {
                        eprintln!("{at:?} {} -> {}: {:?} {about:?}", p.from, p.to, pkt.message);
                    }
                }
                if let Some(r) = self.recorded.as_mut() {
                    r.push((p.from, p.to, p.channel, p.bytes.clone()));
                }
                let from = self.nodes[p.from].addr;
                let core = &mut self.nodes[p.to].core;
                let result = match p.channel {
                    Channel::Datagram => core.handle_datagram(at, from, &p.bytes),
                    _ => core.handle_stream(at, from, &p.bytes),
                };
                result.expect("members only send valid packets");
                self.flush(p.to);
            } else {
                let (_, i) = self.wakes.pop_first().expect("checked");
                self.wake_of[i] = None;
                self.nodes[i].core.handle_timeout(at);
                self.flush(i);
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs in steps of `step` until `done` holds or `limit` passes; returns
    /// whether it held.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        step: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.run_for(step);
        }
        done(self)
    }

    /// What member `observer` believes about member `about`.
    pub fn view(&self, observer: usize, about: usize) -> Option<State> {
        self.nodes[observer].core.member(&name(about), self.now).map(|m| m.state)
    }

    pub fn up(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].up).collect()
    }

    /// Every live member sees every live member alive, and nothing else active.
    pub fn converged(&self) -> bool {
        let up = self.up();
        up.iter().all(|&o| {
            up.iter().all(|&a| self.view(o, a) == Some(State::Alive))
                && self.nodes[o].core.num_members() == up.len()
        })
    }

    /// Events of `kind` about member `about`, seen by anyone.
    pub fn events_about(&self, about: usize, kind: EventKind) -> Vec<&Seen> {
        let n = name(about);
        self.events.iter().filter(|s| s.event.kind == kind && s.event.member.name.as_str() == n).collect()
    }

    /// `Failed` events about members that were up when the event was seen.
    pub fn false_failures(&self, crashed: &BTreeSet<usize>) -> Vec<&Seen> {
        self.events
            .iter()
            .filter(|s| s.event.kind == EventKind::Failed)
            .filter(|s| {
                let n = s.event.member.name.as_str();
                !(0..self.nodes.len()).any(|i| crashed.contains(&i) && name(i) == n)
            })
            .collect()
    }
}

/// Figures of a detection run: crash members one at a time and time how long
/// until every other live member declares each of them failed.
#[derive(Debug, Clone)]
pub struct DetectionFigures {
    pub members: usize,
    pub loss: f64,
    /// Time to the first `failed` event about each crash, sorted.
    pub first: Vec<Duration>,
    /// Time to the last live member's `failed` event about each crash, sorted.
    pub full: Vec<Duration>,
    /// Crashes not detected by every live member in time.
    pub undetected: usize,
    /// `failed` events about members that were up.
    pub false_failures: usize,
    /// `suspected` events about members that were up.
    pub false_suspicions: usize,
    /// Bytes sent per member per second over the whole run.
    pub bytes_per_member_per_sec: f64,
}

fn down_at(downs: &[(String, Instant, Instant)], s: &Seen) -> bool {
    downs.iter().any(|(who, from, to)| who == s.event.member.name.as_str() && s.at >= *from && s.at <= *to)
}

pub fn median(sorted: &[Duration]) -> Duration {
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// `n` members with `config`, datagram loss `loss`; `crashes` times a random
/// member crashes, must be detected by every live member within `gap`, then
/// restarts (same name, incarnation forgotten) and rejoins for 10 s.
pub fn detection_run(
    n: usize,
    config: Config,
    loss: f64,
    crashes: usize,
    gap: Duration,
    seed: u64,
) -> DetectionFigures {
    let mut c = Cluster::joined(n, config, seed, Duration::from_secs(5));
    assert!(
        c.run_until_true(Duration::from_secs(60), Duration::from_millis(500), Cluster::converged),
        "seed {seed}: {n} members did not converge"
    );
    c.loss = loss;
    c.run_for(Duration::from_secs(10));
    let start_events = c.events.len();
    let start_time = c.now;
    let start_bytes = c.bytes_sent;
    // (member, crashed at, restarted at): events about it in between are true.
    let mut downs: Vec<(String, Instant, Instant)> = Vec::new();
    let (mut first, mut full, mut undetected) = (Vec::new(), Vec::new(), 0);
    let mut pick = ChaCha8Rng::seed_from_u64(seed ^ 0xC0FFEE);
    for _ in 0..crashes {
        let victim = pick.random_range(0..n);
        let at = c.now;
        let mark = c.events.len();
        c.crash(victim);
        downs.push((name(victim), at, at + gap));
        c.run_for(gap);
        let vname = name(victim);
        let mut by_observer: BTreeMap<usize, Instant> = BTreeMap::new();
        for s in &c.events[mark..] {
            if s.event.kind == EventKind::Failed && s.event.member.name.as_str() == vname {
                by_observer.entry(s.observer).or_insert(s.at);
            }
        }
        let live: Vec<usize> = c.up();
        if live.iter().all(|o| by_observer.contains_key(o)) {
            let times: Vec<Duration> = live.iter().map(|o| by_observer[o] - at).collect();
            first.push(times.iter().copied().min().unwrap_or_default());
            full.push(times.iter().copied().max().unwrap_or_default());
        } else {
            undetected += 1;
        }
        // The crashed process comes back (same name, no memory of its
        // incarnation) so that every crash hits a cluster of `n`.
        let seed_member = if victim == 0 { 1 } else { 0 };
        c.restart(victim, 1, &[seed_member]);
        c.run_for(Duration::from_secs(10));
    }
    first.sort();
    full.sort();
    let evs = &c.events[start_events..];
    let wrongly =
        |kind: EventKind| evs.iter().filter(|s| s.event.kind == kind && !down_at(&downs, s)).count();
    let false_failures = wrongly(EventKind::Failed);
    let false_suspicions = wrongly(EventKind::Suspected);
    let secs = (c.now - start_time).as_secs_f64();
    DetectionFigures {
        members: n,
        loss,
        first,
        full,
        undetected,
        false_failures,
        false_suspicions,
        bytes_per_member_per_sec: (c.bytes_sent - start_bytes) as f64 / n as f64 / secs,
    }
}
