//! One table of deadlines, keyed by (instant, token): the earliest is what
//! `poll_timeout` returns. Stale timers (a suspicion refuted, a probe
//! answered) stay in the table and are recognised by their token or
//! sequence number when they fire.

use std::collections::BTreeMap;

use crate::member::Name;
use crate::time::Instant;

/// What a deadline is for.
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
    /// One protocol period before a suspicion's deadline: ask the suspect.
    LastChance {
        name: Name,
        token: u64,
    },
    RelayNack {
        seq: u32,
    },
    RelayExpire {
        seq: u32,
    },
    /// A verification of kernel evidence ran out of time.
    Verify {
        seq: u32,
    },
    /// Forget a dead or left member that has stayed so since `since`.
    Reap {
        name: Name,
        since: Instant,
    },
}

/// What cancels one scheduled timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey(Instant, u64);

/// The deadlines, and the counter that orders equal ones and makes tokens.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    map: BTreeMap<(Instant, u64), Timer>,
    next_token: u64,
    /// The earliest deadline, kept beside the map: every input asks for it
    /// (stall check, `poll_timeout`), and the map's first leaf is then
    /// mostly out of the cache.
    first: Option<Instant>,
}

impl Timers {
    /// Calls for `timer` at `at`; the key cancels it.
    pub(crate) fn schedule(&mut self, at: Instant, timer: Timer) -> TimerKey {
        let token = self.token();
        self.map.insert((at, token), timer);
        self.first = Some(self.first.map_or(at, |f| f.min(at)));
        TimerKey(at, token)
    }

    /// Removes a timer that is no longer needed (an idle caller is then not
    /// woken for nothing); a key of a timer that already fired is ignored.
    pub(crate) fn cancel(&mut self, key: TimerKey) {
        if self.map.remove(&(key.0, key.1)).is_some() && self.first == Some(key.0) {
            self.refresh_first();
        }
    }

    fn refresh_first(&mut self) {
        self.first = self.map.first_key_value().map(|((at, _), _)| *at);
    }

    /// A fresh token (shared with the ordering counter, so tokens are unique).
    pub(crate) fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        if self.first.is_none_or(|f| f > now) {
            return None;
        }
        let timer = self.map.pop_first().map(|(_, t)| t);
        self.refresh_first();
        timer
    }

    /// The caller did not run for `by` (a stall): every timer that fell due
    /// meanwhile is moved on by as much, in the same order.
    pub(crate) fn postpone_overdue(&mut self, now: Instant, by: std::time::Duration) {
        let later = self.map.split_off(&(now, u64::MAX));
        let overdue = std::mem::replace(&mut self.map, later);
        for ((at, token), timer) in overdue {
            self.map.insert((at + by, token), timer);
        }
        self.refresh_first();
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        debug_assert_eq!(self.first, self.map.first_key_value().map(|((at, _), _)| *at));
        self.first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_micros(ms * 1000)
    }

    /// The kept earliest deadline against the map's (what `next` asserts too).
    fn first(t: &Timers) -> Option<Instant> {
        assert_eq!(t.first, t.map.first_key_value().map(|((at, _), _)| *at));
        t.first
    }

    #[test]
    fn the_earliest_deadline_follows_schedule_cancel_pop_and_postpone() {
        let mut t = Timers::default();
        assert_eq!(first(&t), None);
        t.schedule(at(300), Timer::Probe);
        let early = t.schedule(at(100), Timer::Gossip);
        t.schedule(at(200), Timer::PushPull);
        assert_eq!(first(&t), Some(at(100)));
        t.cancel(early);
        assert_eq!(first(&t), Some(at(200)));
        t.cancel(early);
        assert_eq!(first(&t), Some(at(200)), "a second cancel changes nothing");
        assert_eq!(t.pop_due(at(150)), None);
        assert_eq!(t.pop_due(at(250)), Some(Timer::PushPull));
        assert_eq!(first(&t), Some(at(300)));
        t.schedule(at(320), Timer::Reconnect);
        t.postpone_overdue(at(310), std::time::Duration::from_millis(50));
        assert_eq!(first(&t), Some(at(320)), "the overdue one moved after it");
        assert_eq!(t.pop_due(at(400)), Some(Timer::Reconnect));
        assert_eq!(t.pop_due(at(400)), Some(Timer::Probe));
        assert_eq!(first(&t), None);
    }
}
