//! Measurements taken while a simulation runs: traffic, crashes and their
//! detection, false failures, joins and dissemination. The engine classifies
//! and feeds; [`crate::report`] turns the records into figures.

use std::collections::HashMap;

use vigil_proto::codec::MESSAGE_KINDS;

/// Bytes the agent adds to every datagram and every stream message when it
/// encrypts (envelope version 2, docs/PROTOCOL.md "Encryption"): 1 version
/// byte + 8-byte sender session + 4-byte counter + 16-byte AES-256-GCM-SIV
/// tag. (Version 1, still read but no longer sealed, added 41.)
pub const ENCRYPTION_OVERHEAD: usize = 1 + 8 + 4 + 16;

/// Bytes of stream framing per stream message (a u32 length prefix).
pub const STREAM_FRAME: usize = 4;

/// Why a live member was declared failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FalseClass {
    /// The member never paused and could reach the observer: the protocol's fault.
    NeverPaused,
    /// The member was frozen (or slow) at the time or shortly before.
    Paused,
    /// A partition or blocked link separated them.
    Partitioned,
}

/// How a member stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its process exited on a live host (kernel evidence).
    Exit,
    /// Its host went down (silence).
    HostDown,
}

/// One crash and who detected it when.
#[derive(Debug)]
pub(crate) struct CrashRec {
    pub(crate) member: u32,
    pub(crate) class: Stop,
    pub(crate) at: u64,
    /// For each member: its life + 1 if it was up at the crash, else 0.
    pub(crate) up_at_crash: Vec<u32>,
    pub(crate) detections: Vec<(u32, u64)>,
    /// (first, full) detection delay; full is None when some live member never detected it.
    pub(crate) result: Option<(Option<u64>, Option<u64>)>,
    /// The detection delay of each member that was up throughout, once closed.
    pub(crate) per_observer: Vec<u64>,
}

/// One pause (a freeze, or a whole CPU starvation) and what it drew.
#[derive(Debug)]
pub(crate) struct PauseRec {
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// CPU starvation rather than one freeze.
    pub(crate) starve: bool,
    /// Other members live when it started.
    pub(crate) others: usize,
    /// Each member that declared it failed.
    pub(crate) failed: Vec<PauseFailure>,
    /// `failed` events about healthy members that the paused member emitted.
    pub(crate) accused: u64,
    /// Those healthy members, each once.
    pub(crate) accused_members: Vec<u32>,
}

/// One member's failures of a paused member.
#[derive(Debug)]
pub(crate) struct PauseFailure {
    pub(crate) observer: u32,
    pub(crate) first: u64,
    pub(crate) times: u32,
    /// When it saw it alive again last.
    pub(crate) cleared: Option<u64>,
}

/// A live member declared failed.
#[derive(Debug, Clone)]
pub(crate) struct FalseFailure {
    pub(crate) at: u64,
    pub(crate) class: FalseClass,
    pub(crate) cleared_after: Option<u64>,
}

/// A join, and how many members have seen it.
#[derive(Debug)]
pub(crate) struct JoinRec {
    pub(crate) at: u64,
    pub(crate) seen: usize,
    pub(crate) done_after: Option<u64>,
    /// The new member left or crashed before every live member held it.
    pub(crate) abandoned: bool,
}

/// A metadata update, and how far it has spread.
#[derive(Debug)]
pub(crate) struct UpdateRec {
    pub(crate) at: u64,
    pub(crate) incarnation: u64,
    pub(crate) expected: usize,
    pub(crate) seen: usize,
    /// Delays to 50%, 99%, 100% of the members expected.
    pub(crate) reached: [Option<u64>; 3],
}

/// Everything measured.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    pub(crate) measure_from: u64,
    pub(crate) bytes: Vec<u64>,
    pub(crate) msgs: Vec<u64>,
    pub(crate) up_since: Vec<Option<u64>>,
    pub(crate) up_time: Vec<u64>,
    pub(crate) kind_bytes: [u64; MESSAGE_KINDS.len() + 1],
    pub(crate) kind_msgs: [u64; MESSAGE_KINDS.len() + 1],
    pub(crate) crashes: Vec<CrashRec>,
    pub(crate) active_crash: HashMap<u32, usize>,
    pub(crate) false_failures: Vec<FalseFailure>,
    pending_false: HashMap<(u32, u32), usize>,
    pub(crate) false_suspicions: u64,
    /// False failures of a member only paused, for less than the pause tolerance.
    pub(crate) paused_below_tolerance: usize,
    pub(crate) pauses: Vec<PauseRec>,
    /// member -> its last pause, if any.
    pause_of: Vec<Option<u32>>,
    /// How long after a pause a failure is still the pause's doing.
    pub(crate) pause_grace: u64,
    pub(crate) pause_tolerance: u64,
    pub(crate) joins: Vec<JoinRec>,
    active_join: HashMap<u32, usize>,
    pub(crate) updates: Vec<UpdateRec>,
    active_update: HashMap<u32, usize>,
    pub(crate) decode_errors: u64,
    pub(crate) events: u64,
    /// Streams that could not connect (target down or cut off).
    pub(crate) failed_connects: u64,
}

fn kind_index(bytes: &[u8]) -> usize {
    vigil_proto::codec::message_kind(bytes)
        .and_then(|k| MESSAGE_KINDS.iter().position(|x| *x == k))
        .unwrap_or(MESSAGE_KINDS.len())
}

impl Observer {
    pub(crate) fn new(measure_from: u64, pause_tolerance: u64, pause_grace: u64) -> Self {
        Observer { measure_from, pause_tolerance, pause_grace, ..Default::default() }
    }

    /// A new member slot.
    pub(crate) fn add_member(&mut self) {
        self.bytes.push(0);
        self.msgs.push(0);
        self.up_since.push(None);
        self.up_time.push(0);
        self.pause_of.push(None);
    }

    pub(crate) fn member_up(&mut self, now: u64, m: usize) {
        if self.up_since[m].is_none() {
            self.up_since[m] = Some(now);
        }
    }

    pub(crate) fn member_down(&mut self, now: u64, m: usize) {
        if let Some(since) = self.up_since[m].take() {
            let from = since.max(self.measure_from);
            self.up_time[m] += now.saturating_sub(from);
        }
    }

    /// Member `m` sent `payload` (stream or datagram) at `now`.
    pub(crate) fn on_send(&mut self, now: u64, m: usize, payload: &[u8], stream: bool) {
        if now < self.measure_from {
            return;
        }
        let wire = payload.len() + ENCRYPTION_OVERHEAD + if stream { STREAM_FRAME } else { 0 };
        self.bytes[m] += wire as u64;
        self.msgs[m] += 1;
        let k = kind_index(payload);
        self.kind_bytes[k] += wire as u64;
        self.kind_msgs[k] += 1;
    }

    /// `member` stops (a leave begins, or a crash): a join of its that has
    /// not converged yet never will, and is not counted as unconverged.
    pub(crate) fn on_gone(&mut self, member: u32) {
        if let Some(idx) = self.active_join.remove(&member) {
            self.joins[idx].abandoned = true;
        }
    }

    pub(crate) fn on_crash(&mut self, now: u64, member: u32, class: Stop, up_lives: Vec<u32>) {
        self.on_gone(member);
        let idx = self.crashes.len();
        self.crashes.push(CrashRec {
            member,
            class,
            at: now,
            up_at_crash: up_lives,
            detections: Vec::new(),
            result: None,
            per_observer: Vec::new(),
        });
        self.active_crash.insert(member, idx);
    }

    /// `observer` declared `member` failed, and it is down (crashed).
    pub(crate) fn on_true_failure(&mut self, now: u64, observer: u32, member: u32) {
        if let Some(&idx) = self.active_crash.get(&member) {
            let rec = &mut self.crashes[idx];
            if !rec.detections.iter().any(|(o, _)| *o == observer) {
                rec.detections.push((observer, now));
            }
        }
    }

    /// Closes the crash record of `member` (it restarts, or the run ends).
    /// `up_lives`: for each member, its life + 1 if up now, else 0.
    pub(crate) fn close_crash(&mut self, member: u32, up_lives: &[u32]) {
        let Some(idx) = self.active_crash.remove(&member) else { return };
        let rec = &mut self.crashes[idx];
        let first = rec.detections.iter().map(|(_, t)| t - rec.at).min();
        let mut full = Some(0u64);
        for (o, &life) in rec.up_at_crash.iter().enumerate() {
            if life == 0 || o == member as usize || up_lives.get(o) != Some(&life) {
                continue;
            }
            match rec.detections.iter().find(|(d, _)| *d as usize == o) {
                Some((_, t)) => {
                    full = full.map(|f| f.max(t - rec.at));
                    rec.per_observer.push(t - rec.at);
                }
                None => full = None,
            }
        }
        rec.result = Some((first, full));
        rec.up_at_crash = Vec::new();
    }

    pub(crate) fn on_false_failure(&mut self, now: u64, observer: u32, member: u32, class: FalseClass) {
        let idx = self.false_failures.len();
        self.false_failures.push(FalseFailure { at: now, class, cleared_after: None });
        self.pending_false.insert((observer, member), idx);
        if class == FalseClass::NeverPaused
            && let Some(p) = self.pause_at(observer, now).filter(|p| self.pauses[*p].starve)
        {
            let rec = &mut self.pauses[p];
            rec.accused += 1;
            if !rec.accused_members.contains(&member) {
                rec.accused_members.push(member);
            }
        }
        if class != FalseClass::Paused {
            return;
        }
        let Some(p) = self.pause_at(member, now) else { return };
        let rec = &mut self.pauses[p];
        if !rec.starve && rec.end - rec.start < self.pause_tolerance {
            self.paused_below_tolerance += 1;
        }
        match rec.failed.iter_mut().find(|f| f.observer == observer) {
            Some(f) => {
                f.times += 1;
                f.cleared = None;
            }
            None => rec.failed.push(PauseFailure { observer, first: now, times: 1, cleared: None }),
        }
    }

    /// `member` pauses from `now` until `end` (a freeze, or a starvation).
    /// `others`: the other members live now.
    pub(crate) fn on_pause(&mut self, member: u32, now: u64, end: u64, starve: bool, others: usize) {
        self.pause_of[member as usize] = Some(self.pauses.len() as u32);
        self.pauses.push(PauseRec {
            start: now,
            end,
            starve,
            others,
            failed: Vec::new(),
            accused: 0,
            accused_members: Vec::new(),
        });
    }

    /// The pause of `member` that `now` falls in (or shortly after).
    fn pause_at(&self, member: u32, now: u64) -> Option<usize> {
        let p = (*self.pause_of.get(member as usize)?)? as usize;
        let rec = &self.pauses[p];
        (rec.start <= now && now <= rec.end.saturating_add(self.pause_grace)).then_some(p)
    }

    /// `observer` sees `member` alive again.
    pub(crate) fn on_alive_again(&mut self, now: u64, observer: u32, member: u32) {
        if let Some(idx) = self.pending_false.remove(&(observer, member)) {
            let f = &mut self.false_failures[idx];
            f.cleared_after = Some(now - f.at);
        }
        if let Some(Some(p)) = self.pause_of.get(member as usize)
            && let Some(f) = self.pauses[*p as usize].failed.iter_mut().find(|f| f.observer == observer)
            && f.cleared.is_none()
        {
            f.cleared = Some(now);
        }
    }

    pub(crate) fn on_join(&mut self, now: u64, member: u32) {
        let idx = self.joins.len();
        self.joins.push(JoinRec { at: now, seen: 0, done_after: None, abandoned: false });
        self.active_join.insert(member, idx);
    }

    /// `member` joined in someone's view; `live` members are up now.
    pub(crate) fn on_joined_seen(&mut self, now: u64, member: u32, live: usize) {
        if let Some(&idx) = self.active_join.get(&member) {
            let rec = &mut self.joins[idx];
            rec.seen += 1;
            if rec.seen + 1 >= live {
                rec.done_after = Some(now - rec.at);
                self.active_join.remove(&member);
            }
        }
    }

    pub(crate) fn on_update(&mut self, now: u64, member: u32, incarnation: u64, expected: usize) {
        let idx = self.updates.len();
        self.updates.push(UpdateRec { at: now, incarnation, expected, seen: 0, reached: [None; 3] });
        self.active_update.insert(member, idx);
    }

    /// `member`'s update at `incarnation` reached one more member.
    pub(crate) fn on_update_seen(&mut self, now: u64, member: u32, incarnation: u64) {
        let Some(&idx) = self.active_update.get(&member) else { return };
        let rec = &mut self.updates[idx];
        if incarnation < rec.incarnation {
            return;
        }
        rec.seen += 1;
        let share = rec.seen as f64 / rec.expected.max(1) as f64;
        for (i, bound) in [0.5, 0.99, 1.0].into_iter().enumerate() {
            if share >= bound && rec.reached[i].is_none() {
                rec.reached[i] = Some(now - rec.at);
            }
        }
        if rec.reached[2].is_some() {
            self.active_update.remove(&member);
        }
    }
}
