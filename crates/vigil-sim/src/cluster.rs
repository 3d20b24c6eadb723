//! A cluster driven step by step in virtual time: tests and examples script
//! what happens (crash this member, block that link, run for 20 s) and look
//! at what each member believes. It runs on the same engine as scenarios:
//! the same members, routing, network model and invariants.

use std::collections::BTreeSet;
use std::time::Duration;

use vigil_proto::{Config, Core, EventKind, Instant, State};

use crate::engine::{Captured, Engine, Seen, Status};
use crate::ids::member_name;
use crate::invariants::Violation;
use crate::net::{ActiveRule, Latency, Net};

/// Members `0..n` (named [`member_name`]) of one cluster in virtual time,
/// driven by hand. Nothing happens between calls; every random choice comes
/// from the seed, so a failing test replays exactly.
///
/// ```
/// use std::time::Duration;
/// use vigil_proto::{Config, State};
/// use vigil_sim::Cluster;
///
/// let mut c = Cluster::joined(5, Config::lan(), 1, Duration::from_secs(5));
/// assert!(c.converged());
/// c.crash(3);
/// c.run_for(Duration::from_secs(20));
/// assert_eq!(c.view(0, 3), Some(State::Dead));
/// ```
#[derive(Debug)]
pub struct Cluster {
    eng: Engine,
}

fn us(d: Duration) -> u64 {
    d.as_micros() as u64
}

impl Cluster {
    /// One-way latency of every link unless set: 200 to 300 µs.
    pub const DEFAULT_LATENCY: Latency =
        Latency::Uniform(Duration::from_micros(200), Duration::from_micros(300));

    /// `n` members started at incarnation 1, each knowing only itself;
    /// latency [`DEFAULT_LATENCY`](Self::DEFAULT_LATENCY), no loss.
    pub fn new(n: usize, config: Config, seed: u64) -> Cluster {
        let net = Net::new(Self::DEFAULT_LATENCY, 0.0, 200_000, seed);
        let mut eng = Engine::new(config, seed, net, 0, false);
        eng.log = Some(Vec::new());
        for _ in 0..n {
            let id = eng.add_slot();
            eng.start(id, 1);
            eng.flush(id);
        }
        Cluster { eng }
    }

    /// `n` members; each joins member 0, 5 ms after the one before; then
    /// runs for `settle`.
    pub fn joined(n: usize, config: Config, seed: u64, settle: Duration) -> Cluster {
        let mut c = Cluster::new(n, config, seed);
        for i in 1..n {
            c.run_for(Duration::from_millis(5));
            c.join(i, &[0]);
        }
        c.run_for(settle);
        c
    }

    /// Virtual time now.
    pub fn now(&self) -> Instant {
        Instant::from_micros(self.eng.now)
    }

    /// Number of members (up or not).
    pub fn len(&self) -> usize {
        self.eng.slots.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.eng.slots.is_empty()
    }

    /// The protocol core of member `i`.
    ///
    /// # Panics
    /// If member `i` is not running (crashed).
    pub fn core(&self, i: usize) -> &Core {
        self.eng.slots[i].core.as_deref().unwrap_or_else(|| panic!("member {i} is not running"))
    }

    /// The highest incarnation member `i` used, in any of its lives (also
    /// while it is down).
    pub fn incarnation(&self, i: usize) -> u64 {
        self.eng.slots[i].max_incarnation
    }

    /// Member `i` joins through `seeds`.
    pub fn join(&mut self, i: usize, seeds: &[usize]) {
        self.eng.join(i, seeds);
    }

    /// Member `i` starts a graceful leave. It keeps running (it answers
    /// probes, gossips its leave) until it is [`crash`](Self::crash)ed.
    pub fn leave(&mut self, i: usize) {
        self.eng.begin_leave(i);
    }

    /// Member `i` publishes new metadata.
    ///
    /// # Panics
    /// If it is not running or the metadata is too large.
    pub fn set_metadata(&mut self, i: usize, meta: &[u8]) {
        let now = self.now();
        let core = self.eng.slots[i].core.as_mut().unwrap_or_else(|| panic!("member {i} is not running"));
        core.set_metadata(now, meta.to_vec()).expect("metadata fits");
        self.eng.flush(i);
    }

    /// Member `i`'s process exits (killed, crashed, out of memory) while
    /// its host stays up: no timers, its memory gone, and its host's kernel
    /// answers for it. A datagram to it draws an ICMP port unreachable at
    /// the sender, a connection to it is refused, and the watch streams held
    /// to it close; each reaches the member concerned as
    /// [`Core::handle_unreachable`]. A member that was leaving writes its
    /// farewell on those streams first.
    pub fn crash(&mut self, i: usize) {
        self.eng.crash(i);
    }

    /// Member `i`'s host goes down (powered off, cable cut): nothing reaches
    /// it, nothing comes from it, nothing comes back. Only silence.
    pub fn host_down(&mut self, i: usize) {
        self.eng.host_down(i);
    }

    /// Member `i`'s process is paused for `d` (a stop signal, a long GC
    /// pause): it processes nothing, everything sent to it queues (its
    /// streams stay open: no evidence). When it resumes it first handles
    /// everything that queued, then its timers.
    pub fn freeze(&mut self, i: usize, d: Duration) {
        let until = self.eng.now + us(d);
        self.eng.freeze(i, until);
    }

    /// Member `i` is starved of CPU for `d`: it runs only `run` out of every
    /// `every` (a cgroup quota), paused the rest of the time as by
    /// [`freeze`](Self::freeze).
    ///
    /// # Panics
    /// If `run` is not shorter than `every`.
    pub fn starve(&mut self, i: usize, run: Duration, every: Duration, d: Duration) {
        assert!(run < every, "a starved member runs less than its whole period");
        self.eng.starve(i, us(run), us(every), us(d));
    }

    /// A new process of crashed member `i` (same name and address) starts at
    /// `incarnation` and joins `seeds`.
    pub fn restart(&mut self, i: usize, incarnation: u64, seeds: &[usize]) {
        self.eng.restart_at(i, incarnation, seeds);
    }

    /// Probability that a datagram (or a stream segment, then retransmitted)
    /// is lost on every link.
    pub fn set_loss(&mut self, loss: f64) {
        self.eng.net.loss = loss;
    }

    /// One-way latency of every link.
    pub fn set_latency(&mut self, latency: Latency) {
        self.eng.net.latency = latency;
    }

    /// Everything member `i` sends from now on arrives `extra` later
    /// ([`Duration::ZERO`] to stop). Its timers and inputs stay on time.
    pub fn delay_sends(&mut self, i: usize, extra: Duration) {
        self.eng.slots[i].send_delay = us(extra);
    }

    /// Nothing member `from` sends reaches member `to` (datagrams are lost,
    /// streams fail) until [`unblock_all`](Self::unblock_all).
    pub fn block(&mut self, from: usize, to: usize) {
        self.eng.net.rules.push(ActiveRule {
            from: from..from + 1,
            to: to..to + 1,
            loss: Some(1.0),
            latency: None,
            both_ways: false,
            at: 0,
            until: u64::MAX,
        });
    }

    /// Lifts every [`block`](Self::block).
    pub fn unblock_all(&mut self) {
        self.eng.net.rules.clear();
    }

    /// Cuts the cluster in two: the members in `side` against the rest.
    pub fn partition(&mut self, side: &[usize]) {
        let mut group = vec![0; self.len()];
        for &i in side {
            group[i] = 1;
        }
        self.eng.net.group = group;
        self.eng.net.partitioned = true;
    }

    /// Ends the partition.
    pub fn heal(&mut self) {
        if self.eng.net.partitioned {
            self.eng.net.partitioned = false;
            self.eng.net.healed_at = Some(self.eng.now);
        }
    }

    /// Keeps every packet handed to a member from now on, for
    /// [`take_recorded`](Self::take_recorded).
    pub fn record(&mut self) {
        self.eng.recorded = Some(Vec::new());
    }

    /// The packets kept since [`record`](Self::record); stops keeping them.
    pub fn take_recorded(&mut self) -> Vec<Captured> {
        self.eng.recorded.take().unwrap_or_default()
    }

    /// Hands `packets` over again, now, as an attacker on the path would.
    pub fn replay(&mut self, packets: &[Captured]) {
        self.eng.replay(packets);
    }

    /// Runs every delivery and timer due up to `until`.
    pub fn run_until(&mut self, until: Instant) {
        self.eng.run_until(until.as_micros(), &mut |_, _| {}, &mut |_| {}, &mut |_| {});
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now() + d);
    }

    /// Runs in steps of `step` until `done` holds or `limit` has passed;
    /// returns whether it held. The one way to wait for something here.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        step: Duration,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> bool {
        let end = self.now() + limit;
        while self.now() < end {
            if done(self) {
                return true;
            }
            self.run_for(step);
        }
        done(self)
    }

    /// What member `observer` believes of member `about` (None: it does not
    /// know it, or `observer` is not running).
    pub fn view(&self, observer: usize, about: usize) -> Option<State> {
        let core = self.eng.slots[observer].core.as_ref()?;
        core.member(&member_name(about), self.now()).map(|m| m.state)
    }

    /// Whether member `i`'s process is running (paused included).
    pub fn is_up(&self, i: usize) -> bool {
        matches!(self.eng.slots[i].status, Status::Up | Status::Frozen)
    }

    /// The members whose process is running (leaving ones included).
    pub fn up(&self) -> Vec<usize> {
        (0..self.len()).filter(|&i| self.is_up(i)).collect()
    }

    /// Every running member holds every running member alive, and no one else
    /// as active.
    pub fn converged(&self) -> bool {
        let up = self.up();
        up.iter().all(|&o| {
            up.iter().all(|&a| self.view(o, a) == Some(State::Alive))
                && self.core(o).num_members() == up.len()
        })
    }

    /// Every event every member emitted, in order.
    pub fn events(&self) -> &[Seen] {
        self.eng.log.as_deref().unwrap_or_default()
    }

    /// Events of `kind` about member `about`, seen by anyone.
    pub fn events_about(&self, about: usize, kind: EventKind) -> Vec<&Seen> {
        let name = member_name(about);
        self.events()
            .iter()
            .filter(|s| s.event.kind == kind && s.event.member.name.as_str() == name)
            .collect()
    }

    /// `Failed` events about members other than `crashed`.
    pub fn false_failures(&self, crashed: &BTreeSet<usize>) -> Vec<&Seen> {
        let crashed: BTreeSet<String> = crashed.iter().map(|&i| member_name(i)).collect();
        self.events()
            .iter()
            .filter(|s| s.event.kind == EventKind::Failed && !crashed.contains(s.event.member.name.as_str()))
            .collect()
    }

    /// Payload bytes of everything every member sent.
    pub fn bytes_sent(&self) -> u64 {
        self.eng.sent_bytes
    }

    /// Packets a member refused as malformed (members send none).
    pub fn decode_errors(&self) -> u64 {
        self.eng.obs.decode_errors
    }

    /// Invariants broken so far (incarnations never go back, a member that
    /// left is never failed): the first ones kept.
    pub fn violations(&self) -> &[Violation] {
        &self.eng.violations
    }

    /// Keeps a text trace of everything that happens from now on (one line
    /// per delivery, wake-up, fault, piece of evidence and event), for
    /// [`trace`](Self::trace): to read why a test failed.
    pub fn keep_trace(&mut self) {
        self.eng.trace.get_or_insert_with(String::new);
    }

    /// The text trace kept since [`keep_trace`](Self::keep_trace).
    pub fn trace(&self) -> Option<&str> {
        self.eng.trace.as_deref()
    }

    /// Digest of everything that happened (deliveries, wake-ups, faults,
    /// events): the same seed and the same calls give the same digest.
    pub fn trace_digest(&self) -> u64 {
        self.eng.trace_hash
    }
}
