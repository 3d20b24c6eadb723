//! The discrete-event engine: one queue of events keyed by (time, sequence),
//! the members (real `vigil_proto::Core`s), packet routing through the
//! modelled network, and member faults.
//!
//! Time is virtual (microseconds). Each member is woken at its own
//! `poll_timeout`; a member has at most one useful wake-up queued (a
//! later one is superseded by an earlier one, and stale ones are skipped).
//! Everything random comes from the scenario's seed: the network, the fault
//! schedule and each core have their own stream derived from it, and nothing
//! iterates a hash map, so one seed gives one byte-identical trace.
//!
//! Failure classes. A member's process can exit on a live host (`Exited`,
//! and `Left` once it stopped after a graceful leave): its kernel answers
//! for it. A datagram to its port draws an ICMP port unreachable back at
//! the sender (after the return trip, lost like any datagram on that link),
//! a new stream to it is refused (after a round trip), and the watch
//! streams other members held to it close (after one way). Its host can go
//! down (`Down`): nothing comes back. It can be paused (`Frozen`, also the
//! sleeping part of CPU starvation): nothing is processed, everything
//! queues, streams stay open; on waking it first handles everything that
//! queued, then its timers, as the runtime does. Evidence reaches a core as
//! `handle_unreachable`, like any other input.
//!
//! Here: the member slots, delivery, wake-ups and routing; `queue`: the
//! event queue; `slot`: a member's state besides its core; `members`: what
//! happens to a member process (start, exit, host down, restart, freeze,
//! starve, leave, ...); `watch`: the watch streams and the
//! kernel's answers for exited processes; `views`: events judged and views
//! compared; `packet`: packets in flight, recorded packets and logged events.

mod members;
mod packet;
mod queue;
mod slot;
mod views;
mod watch;

use std::fmt::Write as _;
use std::net::SocketAddr;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use vigil_proto::{Channel, Config, Core, Health, Identity, Meta, Name, Unreachable};

pub use self::packet::{Captured, Seen};
pub(crate) use self::packet::{Packet, Wire};
use self::queue::{Popped, Queue};
pub(crate) use self::slot::{Slot, Status};
use crate::ids::{addr_id, member_addr, member_name};
use crate::invariants::{
    IncarnationsNeverGoBack, LeftNeverFailed, LiveAliveAfterQuiet, MAX_KEPT, PausesBelowToleranceNeverFailed,
    ViewsConverge, Violation,
};
use crate::net::{Fate, Net};
use crate::observe::Observer;

/// Most datagrams queued for a frozen member (its socket buffer); more are dropped.
pub const FROZEN_BACKLOG: usize = 1024;

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug)]
pub(crate) enum Ev {
    Deliver {
        to: u32,
        packet: Packet,
        delayed: bool,
    },
    Action(u32),
    Resume {
        member: u32,
        token: u64,
    },
    /// A starved member's running time is up.
    Sleep {
        member: u32,
        token: u64,
    },
    LeaveCheck {
        member: u32,
        deadline: u64,
    },
    Check,
}

/// The simulator state.
#[derive(Debug)]
pub(crate) struct Engine {
    pub(crate) now: u64,
    pub(crate) config: Config,
    pub(crate) seed: u64,
    pub(crate) slots: Vec<Slot>,
    queue: Queue<Ev>,
    pub(crate) net: Net,
    pub(crate) fault_rng: ChaCha8Rng,
    pub(crate) obs: Observer,
    pub(crate) incarnations: IncarnationsNeverGoBack,
    pub(crate) left: LeftNeverFailed,
    pub(crate) quiet_alive: LiveAliveAfterQuiet,
    pub(crate) converge: ViewsConverge,
    pub(crate) pauses: PausesBelowToleranceNeverFailed,
    pub(crate) check_invariants: bool,
    pub(crate) violations: Vec<Violation>,
    pub(crate) violation_count: u64,
    /// While a stream request is handled: who sent it (replies go back on it).
    reply_to: Option<usize>,
    pub(crate) trace: Option<String>,
    pub(crate) trace_hash: u64,
    pub(crate) processed: u64,
    /// Grace after a pause during which a failure counts as "paused".
    pub(crate) pause_grace: u64,
    pub(crate) live: usize,
    /// Every event every member emitted, when kept (driven clusters).
    pub(crate) log: Option<Vec<Seen>>,
    /// Every packet handed to a member, when kept (to replay them).
    pub(crate) recorded: Option<Vec<Captured>>,
    /// Payload bytes of every transmit, whatever became of it.
    pub(crate) sent_bytes: u64,
}

impl Engine {
    pub(crate) fn new(config: Config, seed: u64, net: Net, measure_from: u64, trace: bool) -> Engine {
        let (_, smax) = config.suspicion_bounds(1_000_000);
        let pause_grace = (smax + config.probe_interval * 4).as_micros() as u64;
        let tolerance = config.pause_tolerance.as_micros() as u64;
        let probe_timeout = config.probe_timeout_max.as_micros() as u64;
        Engine {
            now: 0,
            incarnations: IncarnationsNeverGoBack::new(config.dead_retention.as_micros() as u64),
            config,
            seed,
            slots: Vec::new(),
            queue: Queue::default(),
            net,
            fault_rng: ChaCha8Rng::seed_from_u64(mix(seed, 0xFA17, 0)),
            obs: Observer::new(measure_from, tolerance, pause_grace),
            left: LeftNeverFailed::default(),
            quiet_alive: LiveAliveAfterQuiet::default(),
            converge: ViewsConverge::default(),
            pauses: PausesBelowToleranceNeverFailed::new(tolerance, probe_timeout, pause_grace),
            check_invariants: true,
            violations: Vec::new(),
            violation_count: 0,
            reply_to: None,
            trace: trace.then(String::new),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            processed: 0,
            pause_grace,
            live: 0,
            log: None,
            recorded: None,
            sent_bytes: 0,
        }
    }

    pub(crate) fn push(&mut self, at: u64, ev: Ev) {
        self.queue.push(at, ev);
    }

    /// Hands `packets` over again, now, each to the member it went to.
    pub(crate) fn replay(&mut self, packets: &[Captured]) {
        for c in packets {
            let packet = c.packet.clone();
            self.push(self.now, Ev::Deliver { to: c.to, packet, delayed: false });
        }
    }

    /// Folds one traced step into the trace digest (and the text trace, if kept).
    fn trace(&mut self, code: u8, a: u64, b: u64, c: u64, text: impl FnOnce() -> String) {
        for v in [self.now, u64::from(code), a, b, c] {
            self.trace_hash = (self.trace_hash ^ v).wrapping_mul(0x0000_0100_0000_01b3);
        }
        if let Some(t) = self.trace.as_mut() {
            let _ = writeln!(t, "{}.{:06} {}", self.now / 1_000_000, self.now % 1_000_000, text());
        }
    }

    pub(crate) fn violation(&mut self, v: Option<Violation>) {
        if let Some(v) = v {
            self.violation_count += 1;
            if self.violations.len() < MAX_KEPT {
                self.violations.push(v);
            }
        }
    }

    fn make_core(&self, id: usize, incarnation: u64) -> Box<Core> {
        let s = &self.slots[id];
        let me = Identity { name: s.name.clone(), addr: s.addr, meta: Meta::default(), health: Health::ok() };
        let seed = mix(self.seed, id as u64, u64::from(s.life));
        Box::new(
            Core::new(
                self.config.clone(),
                me,
                incarnation,
                seed,
                vigil_proto::Instant::from_micros(self.now),
            )
            .expect("validated config"),
        )
    }

    /// A new member slot, not started.
    pub(crate) fn add_slot(&mut self) -> usize {
        let id = self.slots.len();
        let name = Name::new(&member_name(id)).expect("valid name");
        self.slots.push(Slot::new(name, member_addr(id)));
        self.obs.add_member();
        id
    }

    pub(crate) fn is_live(&self, id: usize) -> bool {
        matches!(self.slots[id].status, Status::Up | Status::Frozen) && !self.slots[id].leaving
    }

    /// For each member: its life + 1 if it is up (or frozen), else 0.
    pub(crate) fn up_lives(&self) -> Vec<u32> {
        self.slots
            .iter()
            .map(|s| if matches!(s.status, Status::Up | Status::Frozen) { s.life + 1 } else { 0 })
            .collect()
    }

    /// Hands one packet to member `to` now.
    fn handle(&mut self, to: usize, p: Packet) {
        let now = vigil_proto::Instant::from_micros(self.now);
        let from_addr = member_addr(p.from as usize);
        let Some(core) = self.slots[to].core.as_mut() else { return };
        let result = match p.wire {
            Wire::Datagram => core.handle_datagram(now, from_addr, &p.bytes),
            Wire::Stream | Wire::Reply => core.handle_stream(now, from_addr, &p.bytes),
            Wire::Evidence(how) => {
                core.handle_unreachable(now, from_addr, how);
                Ok(())
            }
        };
        if result.is_err() {
            self.obs.decode_errors += 1;
        }
        // The answer, if any, is encoded into the datagram's buffer.
        if p.wire == Wire::Datagram {
            core.recycle(p.bytes);
        }
        self.reply_to = (p.wire == Wire::Stream).then_some(p.from as usize);
        self.flush(to);
        self.reply_to = None;
    }

    fn deliver(&mut self, to: usize, p: Packet, delayed: bool) {
        let s = &mut self.slots[to];
        match s.status {
            Status::Up => {}
            Status::Frozen => {
                if p.wire == Wire::Datagram {
                    if s.backlog_datagrams >= FROZEN_BACKLOG {
                        return;
                    }
                    s.backlog_datagrams += 1;
                }
                s.backlog.push(p);
                return;
            }
            Status::Exited | Status::Left => {
                if p.wire == Wire::Datagram {
                    self.port_unreachable(to, p.from as usize);
                }
                return;
            }
            _ => return,
        }
        if s.slow > 0 && !delayed {
            let at = self.now + s.slow;
            self.push(at, Ev::Deliver { to: to as u32, packet: p, delayed: true });
            return;
        }
        if let Wire::Evidence(how) = p.wire {
            self.trace(9, u64::from(p.from), to as u64, u64::from(evidence_code(how)), || {
                format!("evidence {} -> {to} {how}", p.from)
            });
        } else {
            self.trace(7, u64::from(p.from), to as u64, p.bytes.len() as u64, || {
                let kind = vigil_proto::codec::message_kind(&p.bytes).unwrap_or("?");
                format!("deliver {} -> {to} {kind} {:?} {} bytes", p.from, p.wire, p.bytes.len())
            });
            if let Some(r) = self.recorded.as_mut() {
                r.push(Captured { to: to as u32, packet: p.clone() });
            }
        }
        self.handle(to, p);
    }

    fn wake(&mut self, id: usize, at: u64) {
        let s = &mut self.slots[id];
        if s.wake() != Some(at) {
            return;
        }
        s.set_wake(None);
        if s.status != Status::Up {
            return;
        }
        // Nothing of the core's is due: the timer this wake-up was for went
        // away meanwhile (mostly a probe's timeout, cancelled by its ack).
        // Its `handle_timeout` would find nothing to do (no stall either: its
        // next deadline is ahead), and its outputs were drained at its last
        // flush, so only the re-arming is left, as `flush` would do it. The
        // wake-up still counts as an event; the core is not touched.
        if s.core.is_some() && s.core_due > self.now {
            if s.core_due != u64::MAX {
                let at = (s.core_due + s.slow).max(self.now);
                s.set_wake(Some(at));
                self.queue.push_wake(at, id as u32);
            }
            return;
        }
        let now = vigil_proto::Instant::from_micros(self.now);
        if let Some(c) = s.core.as_mut() {
            c.handle_timeout(now);
        }
        self.flush(id);
    }

    /// Drains member `id`'s transmits and events; re-arms its wake-up.
    pub(crate) fn flush(&mut self, id: usize) {
        let Some(mut core) = self.slots[id].core.take() else { return };
        while let Some(t) = core.poll_transmit() {
            self.route(id, t.dst, t.channel, t.payload);
        }
        while let Some(e) = core.poll_event() {
            self.on_event(id, &e);
            if let Some(log) = self.log.as_mut() {
                log.push(Seen { at: vigil_proto::Instant::from_micros(self.now), observer: id, event: e });
            }
        }
        let inc = core.incarnation();
        let due = core.poll_timeout().map(vigil_proto::Instant::as_micros);
        self.slots[id].core_due = due.unwrap_or(u64::MAX);
        let next = due.map(|t| t + self.slots[id].slow);
        // The version first: comparing the lists after every input showed in profiles.
        let version = core.watched_version();
        let watches_changed = self.slots[id].watch_version != version && {
            self.slots[id].watch_version = version;
            self.slots[id].watch_list_changed(core.watched())
        };
        self.slots[id].core = Some(core);
        if watches_changed {
            self.follow_watches(id);
        }
        let s = &mut self.slots[id];
        // Reporting the same incarnation again in the same life checks
        // nothing, and it is already in the highest: the second line of the
        // slot is not touched while the incarnation stays.
        if s.reported_incarnation() != Some(inc) {
            s.set_reported_incarnation(Some(inc));
            s.max_incarnation = s.max_incarnation.max(inc);
            if self.check_invariants {
                let life = s.life;
                let v = self.incarnations.own(self.now, id as u32, life, inc);
                self.violation(v);
            }
        }
        let s = &mut self.slots[id];
        if let Some(at) = next
            && s.wake().is_none_or(|w| at < w)
        {
            let at = at.max(self.now);
            s.set_wake(Some(at));
            self.queue.push_wake(at, id as u32);
        }
    }

    fn route(&mut self, from: usize, dst: SocketAddr, channel: Channel, bytes: Vec<u8>) {
        self.sent_bytes += bytes.len() as u64;
        let stream = channel != Channel::Datagram;
        let to = addr_id(dst).filter(|&t| t < self.slots.len());
        // A stream to a stopped process or across a cut fails at connect:
        // no payload leaves (the SYN is not counted). A frozen process's
        // kernel still accepts the connection, so that payload counts.
        let connects = to.is_some_and(|t| {
            matches!(self.slots[t].status, Status::Up | Status::Frozen)
                && self.net.connected(self.now, from, t)
                && self.net.connected(self.now, t, from)
        });
        if !stream || connects {
            self.obs.on_send(self.now, from, &bytes, stream);
        } else {
            self.obs.failed_connects += 1;
        }
        let Some(to) = to else { return };
        if stream && self.slots[to].status.kernel_answers() {
            self.refuse(from, to);
            return;
        }
        let wire = match channel {
            Channel::Datagram => Wire::Datagram,
            _ if self.reply_to == Some(to) => Wire::Reply,
            _ => Wire::Stream,
        };
        let fate = match wire {
            Wire::Datagram => self.net.datagram(self.now, from, to),
            Wire::Stream => self.net.stream(self.now, from, to, 3),
            Wire::Reply | Wire::Evidence(_) => self.net.stream(self.now, from, to, 1),
        };
        let Fate::After(delay) = fate else { return };
        let at = self.now + delay + self.slots[from].slow + self.slots[from].send_delay;
        self.push(
            at,
            Ev::Deliver { to: to as u32, packet: Packet { from: from as u32, wire, bytes }, delayed: false },
        );
    }

    /// Runs events until `until` (inclusive) or the heap empties; calls
    /// `action` for each scheduled action and `check` for each check tick.
    pub(crate) fn run_until(
        &mut self,
        until: u64,
        action: &mut dyn FnMut(&mut Engine, u32),
        check: &mut dyn FnMut(&mut Engine),
        progress: &mut dyn FnMut(u64),
    ) {
        let mut next_progress = 0u64;
        while self.queue.peek_at().is_some_and(|at| at <= until) {
            let Some((at, popped)) = self.queue.pop() else { break };
            self.now = at;
            self.processed += 1;
            match popped {
                Popped::Wake(member) => self.wake(member as usize, at),
                Popped::Event(Ev::Deliver { to, packet, delayed }) => {
                    self.deliver(to as usize, packet, delayed)
                }
                Popped::Event(Ev::Action(i)) => action(self, i),
                Popped::Event(Ev::Resume { member, token }) => self.resume(member as usize, token),
                Popped::Event(Ev::Sleep { member, token }) => self.sleep(member as usize, token),
                Popped::Event(Ev::LeaveCheck { member, deadline }) => {
                    self.leave_check(member as usize, deadline)
                }
                Popped::Event(Ev::Check) => check(self),
            }
            if self.processed & 0xFFFF == 0 && self.now >= next_progress {
                progress(self.now);
                next_progress = self.now + 1_000_000;
            }
        }
        self.now = self.now.max(until);
    }

    /// A fresh evidence "packet" about `about`'s address, for member `to`.
    pub(crate) fn push_evidence(&mut self, at: u64, about: usize, to: usize, how: Unreachable) {
        let packet = Packet { from: about as u32, wire: Wire::Evidence(how), bytes: Vec::new() };
        self.push(at, Ev::Deliver { to: to as u32, packet, delayed: false });
    }

    /// A random live member, from the fault stream.
    pub(crate) fn random_live(&mut self, exclude: Option<usize>) -> Option<usize> {
        let live: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.is_live(i) && Some(i) != exclude && self.slots[i].status == Status::Up)
            .collect();
        if live.is_empty() {
            return None;
        }
        Some(live[self.fault_rng.random_range(0..live.len())])
    }

    /// `k` distinct random live members.
    pub(crate) fn random_live_k(&mut self, k: usize) -> Vec<usize> {
        let mut live: Vec<usize> = (0..self.slots.len()).filter(|&i| self.is_live(i)).collect();
        let k = k.min(live.len());
        for i in 0..k {
            let j = self.fault_rng.random_range(i..live.len());
            live.swap(i, j);
        }
        live.truncate(k);
        live
    }
}

/// A number for each kind of evidence, for the trace digest.
fn evidence_code(how: Unreachable) -> u8 {
    match how {
        Unreachable::PortUnreachable => 1,
        Unreachable::Refused => 2,
        Unreachable::StreamClosed => 3,
        _ => 0,
    }
}
