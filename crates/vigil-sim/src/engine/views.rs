//! What members report and believe: each event judged (a true or a false
//! failure, a join seen, an update spread) and fed to the measurements and
//! the invariants; the views compared with the truth.

use vigil_proto::{EventKind, State};

use super::{Engine, Status};
use crate::ids::member_id;
use crate::observe::FalseClass;

impl Engine {
    pub(super) fn on_event(&mut self, observer: usize, e: &vigil_proto::Event) {
        self.obs.events += 1;
        let Some(m) = member_id(e.member.name.as_str()).filter(|&m| m < self.slots.len()) else { return };
        let inc = e.member.incarnation;
        let kind = e.kind;
        self.trace(8, observer as u64, m as u64, inc, || {
            format!("event {observer} {} {m} inc {inc}", kind.as_str())
        });
        if self.check_invariants {
            let life = self.slots[observer].life;
            let v = self.incarnations.observe(self.now, observer as u32, life, m as u32, inc);
            self.violation(v);
        }
        let (o32, m32) = (observer as u32, m as u32);
        match kind {
            EventKind::Failed => {
                if self.check_invariants {
                    let v = self.left.on_failed(self.now, o32, m32, inc);
                    self.violation(v);
                }
                let s = &self.slots[m];
                let down = !matches!(s.status, Status::Up | Status::Frozen);
                if down || inc <= s.prev_life_max {
                    self.obs.on_true_failure(self.now, o32, m32);
                } else if !s.leaving {
                    let class = self.classify(observer, m);
                    self.obs.on_false_failure(self.now, o32, m32, class);
                    let on_silence = e.evidence.as_ref().is_none_or(|ev| ev.exit.is_none());
                    let only_paused =
                        s.slow == 0 && s.starve.is_none() && !self.net.recently_cut(self.now, 0);
                    if self.check_invariants && class == FalseClass::Paused && on_silence && only_paused {
                        let v = self.pauses.on_failed(self.now, o32, m32);
                        self.violation(v);
                    }
                }
            }
            EventKind::Suspected => {
                if self.check_invariants {
                    self.pauses.on_suspected(m32, self.now);
                }
                let s = &self.slots[m];
                if matches!(s.status, Status::Up)
                    && inc > s.prev_life_max
                    && !s.leaving
                    && self.classify(observer, m) == FalseClass::NeverPaused
                {
                    self.obs.false_suspicions += 1;
                }
            }
            EventKind::Joined => {
                self.obs.on_alive_again(self.now, o32, m32);
                let live = self.live;
                self.obs.on_joined_seen(self.now, m32, live);
                self.obs.on_update_seen(self.now, m32, inc);
            }
            EventKind::Recovered => self.obs.on_alive_again(self.now, o32, m32),
            EventKind::Updated => self.obs.on_update_seen(self.now, m32, inc),
            _ => {}
        }
    }

    fn classify(&self, observer: usize, m: usize) -> FalseClass {
        let s = &self.slots[m];
        if s.status == Status::Frozen
            || s.paused_until.is_some_and(|u| self.now <= u.saturating_add(self.pause_grace))
        {
            return FalseClass::Paused;
        }
        if !self.net.connected(self.now, observer, m)
            || !self.net.connected(self.now, m, observer)
            || self.net.recently_cut(self.now, self.pause_grace)
        {
            return FalseClass::Partitioned;
        }
        FalseClass::NeverPaused
    }

    /// Digests of every live member's view, and the digest of the truth.
    pub(crate) fn digests(&self) -> (Vec<u64>, u64) {
        let truth = vigil_proto::view_digest(self.slots.iter().filter_map(|s| {
            let c = s.core.as_ref()?;
            (matches!(s.status, Status::Up | Status::Frozen) && !s.leaving)
                .then(|| (s.name.as_str(), c.incarnation()))
        }));
        let views = self
            .slots
            .iter()
            .filter(|s| s.status == Status::Up && !s.leaving)
            .filter_map(|s| s.core.as_ref().map(|c| c.membership_digest()))
            .collect();
        (views, truth)
    }

    /// An example of a wrong view, for a violation message.
    pub(crate) fn wrong_view_example(&self) -> String {
        let now = vigil_proto::Instant::from_micros(self.now);
        for (o, s) in self.slots.iter().enumerate() {
            let Some(c) = s.core.as_ref().filter(|_| s.status == Status::Up && !s.leaving) else { continue };
            for (m, t) in self.slots.iter().enumerate() {
                if m == o || !matches!(t.status, Status::Up | Status::Frozen) || t.leaving {
                    continue;
                }
                let seen = c.member(t.name.as_str(), now).map(|x| x.state);
                if seen != Some(State::Alive) {
                    return format!("member {o} holds live member {m} as {seen:?}");
                }
            }
            let active = c.num_members();
            if active != self.live {
                return format!("member {o} holds {active} members active, {} are live", self.live);
            }
        }
        "no single wrong entry found (incarnations differ)".to_owned()
    }
}
