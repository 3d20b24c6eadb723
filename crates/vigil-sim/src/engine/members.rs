//! What happens to a member process: it starts, joins, leaves, exits (its
//! host up), goes silent (its host down), restarts, freezes and resumes, is
//! starved of CPU, slows down, or changes its metadata.

use std::net::SocketAddr;

use vigil_proto::codec::MemberState;
use vigil_proto::{Health, Meta, State};

use super::slot::{Starve, Status};
use super::{Engine, Ev};

impl Engine {
    /// Starts member `id` (a new process) at `incarnation`.
    pub(crate) fn start(&mut self, id: usize, incarnation: u64) {
        let core = self.make_core(id, incarnation);
        let s = &mut self.slots[id];
        s.core = Some(core);
        s.status = Status::Up;
        s.set_wake(None);
        // A new core: its watch list is empty at version 0, as the streams held.
        s.watch_version = 0;
        s.core_due = 0;
        s.set_reported_incarnation(None);
        s.leaving = false;
        s.starve = None;
        s.max_incarnation = s.max_incarnation.max(incarnation);
        self.live += 1;
        self.obs.member_up(self.now, id);
        self.trace(1, id as u64, incarnation, 0, || format!("start {id} inc {incarnation}"));
    }

    /// Warm start: every started member learns every other as alive.
    pub(crate) fn preload_all(&mut self) {
        let states: Vec<MemberState> = self
            .slots
            .iter()
            .filter_map(|s| {
                let c = s.core.as_ref()?;
                Some(MemberState {
                    name: s.name.clone(),
                    incarnation: c.incarnation(),
                    state: State::Alive,
                    addr: s.addr,
                    meta: Meta::default(),
                    health: Health::ok(),
                })
            })
            .collect();
        let now = vigil_proto::Instant::from_micros(self.now);
        // One table for the whole cluster; every member's copy shares its
        // memory until it changes (n tables of n entries would need n²).
        let snapshot = vigil_proto::Snapshot::new(now, states);
        for s in &mut self.slots {
            if let Some(c) = s.core.as_mut() {
                c.preload_snapshot(now, &snapshot);
            }
        }
        for id in 0..self.slots.len() {
            self.flush(id);
        }
    }

    pub(crate) fn join(&mut self, id: usize, seeds: &[usize]) {
        let addrs: Vec<SocketAddr> = seeds.iter().map(|&s| self.slots[s].addr).collect();
        let now = vigil_proto::Instant::from_micros(self.now);
        if let Some(c) = self.slots[id].core.as_mut() {
            c.join(now, &addrs);
        }
        self.flush(id);
    }

    /// The process exits; its host stays up, and its kernel answers for it
    /// from now on (refuses connections, answers datagrams with an ICMP
    /// error); the streams others held to it close.
    pub(crate) fn crash(&mut self, id: usize) {
        let farewell = self.slots[id].core.as_ref().and_then(|c| c.farewell());
        if self.stop(id, Status::Exited) {
            self.trace(10, id as u64, 0, 0, || format!("exit {id}"));
            self.close_watches_to(id, farewell);
        }
    }

    /// Its host goes down: nothing in or out, nothing comes back.
    pub(crate) fn host_down(&mut self, id: usize) {
        if self.stop(id, Status::Down) {
            self.trace(2, id as u64, 0, 0, || format!("host down {id}"));
            self.silence_watches_to(id);
        }
    }

    /// The process stops: no timers, memory gone; false if it was not running.
    fn stop(&mut self, id: usize, status: Status) -> bool {
        let s = &mut self.slots[id];
        if !s.status.running() {
            return false;
        }
        if !s.leaving {
            self.live -= 1;
        }
        s.core = None;
        s.status = status;
        s.set_wake(None);
        s.backlog.clear();
        s.backlog_datagrams = 0;
        s.starve = None;
        s.drop_watches();
        s.prev_life_max = s.max_incarnation;
        self.obs.member_down(self.now, id);
        true
    }

    /// A new process with the same name and address, one incarnation above
    /// the last it used, joining `seeds`.
    pub(crate) fn restart(&mut self, id: usize, seeds: &[usize]) {
        let inc = self.slots[id].max_incarnation + 1;
        self.restart_at(id, inc, seeds);
    }

    /// A new process of crashed member `id` (same name and address) at
    /// `incarnation`, joining `seeds`.
    pub(crate) fn restart_at(&mut self, id: usize, incarnation: u64, seeds: &[usize]) {
        if !matches!(self.slots[id].status, Status::Down | Status::Exited) {
            return;
        }
        self.slots[id].life += 1;
        self.start(id, incarnation);
        self.reopen_watches_to(id);
        self.join(id, seeds);
    }

    /// The process is paused until `until`: nothing is processed, everything
    /// queues, its streams stay open.
    pub(crate) fn freeze(&mut self, id: usize, until: u64) {
        let starved = self.slots[id].starve.is_some();
        if self.pause(id, until) {
            self.slots[id].paused_until = Some(until);
            if !starved {
                self.pauses.on_freeze(id as u32, self.now, until);
            }
            let others = self.live.saturating_sub(1);
            self.obs.on_pause(id as u32, self.now, until, false, others);
        }
    }

    /// The process runs only `run` of every `every` microseconds for
    /// `duration` (a CPU quota): paused now, it wakes at the start of each
    /// period.
    pub(crate) fn starve(&mut self, id: usize, run: u64, every: u64, duration: u64) {
        let until = self.now + duration;
        if run >= every || !self.pause(id, (self.now + every).min(until)) {
            return;
        }
        let s = &mut self.slots[id];
        s.starve = Some(Starve { run, every, until });
        s.paused_until = Some(until);
        let others = self.live.saturating_sub(1);
        self.obs.on_pause(id as u32, self.now, until, true, others);
        self.trace(11, id as u64, until, run, || {
            format!("starve {id} until {until}, running {run} us of {every}")
        });
    }

    fn pause(&mut self, id: usize, until: u64) -> bool {
        let s = &mut self.slots[id];
        if s.status != Status::Up {
            return false;
        }
        s.status = Status::Frozen;
        s.freeze_token += 1;
        let token = s.freeze_token;
        self.push(until, Ev::Resume { member: id as u32, token });
        self.trace(3, id as u64, until, 0, || format!("freeze {id} until {until}"));
        true
    }

    /// The pause ends: the member first handles everything that queued, in
    /// the order it arrived, then its timers (as the runtime does on waking).
    pub(super) fn resume(&mut self, id: usize, token: u64) {
        let s = &mut self.slots[id];
        if s.status != Status::Frozen || s.freeze_token != token {
            return;
        }
        s.status = Status::Up;
        s.paused_until = Some(self.now);
        let backlog = std::mem::take(&mut s.backlog);
        s.backlog_datagrams = 0;
        self.trace(4, id as u64, backlog.len() as u64, 0, || {
            format!("resume {id} backlog {}", backlog.len())
        });
        for p in backlog {
            self.handle(id, p);
        }
        let now = vigil_proto::Instant::from_micros(self.now);
        if let Some(c) = self.slots[id].core.as_mut() {
            c.handle_timeout(now);
        }
        self.flush(id);
        let s = &mut self.slots[id];
        if let Some(st) = s.starve {
            if self.now >= st.until {
                s.starve = None;
            } else {
                s.paused_until = Some(st.until);
                let token = s.freeze_token;
                self.push(self.now + st.run, Ev::Sleep { member: id as u32, token });
            }
        }
    }

    /// A starved member's running time in this period is up: paused until
    /// the next period (or the end of the starvation).
    pub(super) fn sleep(&mut self, id: usize, token: u64) {
        let s = &self.slots[id];
        let Some(st) = s.starve.filter(|_| s.status == Status::Up && s.freeze_token == token) else { return };
        let next = (self.now - st.run + st.every).min(st.until).max(self.now + 1);
        self.pause(id, next);
    }

    pub(crate) fn set_slow(&mut self, id: usize, delay: u64) {
        let s = &mut self.slots[id];
        s.slow = delay;
        if delay > 0 {
            s.paused_until = Some(u64::MAX);
        } else if s.paused_until == Some(u64::MAX) {
            s.paused_until = Some(self.now);
        }
    }

    /// Starts a graceful leave; the member stops once the leave went out.
    pub(crate) fn leave(&mut self, id: usize) {
        if !self.begin_leave(id) {
            return;
        }
        self.obs.on_gone(id as u32);
        let deadline = self.now + 5_000_000;
        self.push(self.now + 100_000, Ev::LeaveCheck { member: id as u32, deadline });
    }

    /// Starts a graceful leave and lets the member run on (until it is
    /// crashed); false if it was not up or already leaving.
    pub(crate) fn begin_leave(&mut self, id: usize) -> bool {
        if !self.is_live(id) || self.slots[id].status != Status::Up {
            return false;
        }
        let now = vigil_proto::Instant::from_micros(self.now);
        let Some(c) = self.slots[id].core.as_mut() else { return false };
        c.leave(now);
        let inc = c.incarnation();
        self.slots[id].leaving = true;
        self.live -= 1;
        self.left.on_leave(id as u32, inc);
        self.trace(5, id as u64, inc, 0, || format!("leave {id} inc {inc}"));
        self.flush(id);
        true
    }

    pub(super) fn leave_check(&mut self, id: usize, deadline: u64) {
        let s = &mut self.slots[id];
        let Some(c) = s.core.as_ref() else { return };
        if c.leave_disseminated() || self.now >= deadline {
            // The process exits: it writes its farewell on the watch streams
            // it accepted, then its kernel closes them.
            let farewell = c.farewell();
            s.core = None;
            s.status = Status::Left;
            s.set_wake(None);
            s.starve = None;
            s.drop_watches();
            self.obs.member_down(self.now, id);
            self.trace(6, id as u64, 0, 0, || format!("stopped {id} after leave"));
            self.close_watches_to(id, farewell);
        } else {
            self.push(self.now + 100_000, Ev::LeaveCheck { member: id as u32, deadline });
        }
    }

    /// Sets new metadata on `id`; returns its new incarnation.
    pub(crate) fn update_metadata(&mut self, id: usize, value: u64) -> Option<u64> {
        let now = vigil_proto::Instant::from_micros(self.now);
        let c = self.slots[id].core.as_mut()?;
        c.set_metadata(now, format!("v={value}").into_bytes()).ok()?;
        let inc = c.incarnation();
        self.flush(id);
        Some(inc)
    }
}
