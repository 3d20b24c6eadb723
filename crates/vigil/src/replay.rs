//! The replay window of version-2 envelopes: per sender session and lane,
//! the highest counter seen and a 64-bit map of the counters just below it
//! (the sliding window of IPsec and WireGuard). A receiver checks a header
//! against it before decrypting, and records the counter only once the
//! envelope authenticated, so that forged headers cannot move a window.
//!
//! Sessions are bounded ([`SESSIONS`]); the least recently used is
//! forgotten. A session that is unknown (never seen, or forgotten) is
//! accepted from its first packet: a recording replayed to a receiver that
//! never saw, or forgot, that session gets through once, packet by packet,
//! as long as it replays them in order (docs/SECURITY.md says why the core
//! makes that harmless).

use std::collections::HashMap;

/// Length of a version-2 sender session.
pub const SESSION_LEN: usize = 8;
/// Messages sealed per lane and session; then a new session is drawn.
pub(crate) const COUNTER_SPAN: u32 = 1 << 31;

/// Whether a packet travels as a datagram or on a stream: bound into the
/// associated data (and, in version 2, the counter's top bit) so that one
/// cannot be replayed as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// A UDP datagram.
    Datagram = 1,
    /// A frame on a TCP stream.
    Stream = 2,
}

impl Lane {
    /// The counter's top bit for this lane.
    pub(crate) fn bit(self) -> u32 {
        match self {
            Lane::Datagram => 0,
            Lane::Stream => COUNTER_SPAN,
        }
    }
}

/// Sender sessions remembered at once.
pub const SESSIONS: usize = 4096;
/// Counters below the highest that a window still tells apart.
const WIDTH: u32 = 64;

/// Who sealed a version-2 envelope: session, lane, counter (without the lane bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// The sender process's session.
    pub session: [u8; SESSION_LEN],
    /// The lane it was sealed for.
    pub lane: Lane,
    /// Its counter on that lane.
    pub counter: u32,
}

/// Why a header was refused by the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// This counter was seen.
    Seen,
    /// This counter is more than 64 below the highest seen: it may have been.
    TooOld,
}

#[derive(Debug, Default, Clone, Copy)]
struct Window {
    highest: u32,
    /// Bit `i` set: `highest - i` was seen.
    seen: u64,
}

impl Window {
    fn first(counter: u32) -> Window {
        Window { highest: counter, seen: 1 }
    }

    fn check(&self, counter: u32) -> Result<(), Replay> {
        if counter > self.highest {
            return Ok(());
        }
        let behind = self.highest - counter;
        if behind >= WIDTH {
            return Err(Replay::TooOld);
        }
        if self.seen & (1 << behind) != 0 { Err(Replay::Seen) } else { Ok(()) }
    }

    fn record(&mut self, counter: u32) {
        if counter > self.highest {
            let ahead = counter - self.highest;
            self.seen = if ahead >= WIDTH { 0 } else { self.seen << ahead };
            self.seen |= 1;
            self.highest = counter;
        } else if self.highest - counter < WIDTH {
            self.seen |= 1 << (self.highest - counter);
        }
    }
}

#[derive(Debug)]
struct Entry {
    lanes: [Option<Window>; 2],
    used: u64,
}

/// The windows of every sender session seen, bounded.
#[derive(Debug)]
pub struct ReplayWindow {
    sessions: HashMap<[u8; SESSION_LEN], Entry>,
    capacity: usize,
    tick: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new(SESSIONS)
    }
}

fn lane_index(lane: Lane) -> usize {
    usize::from(lane == Lane::Stream)
}

impl ReplayWindow {
    /// Windows for at most `capacity` sessions (at least one).
    pub fn new(capacity: usize) -> ReplayWindow {
        ReplayWindow { sessions: HashMap::new(), capacity: capacity.max(1), tick: 0 }
    }

    /// Whether an envelope from `sender` may be new. Changes nothing.
    pub fn check(&self, sender: &Sender) -> Result<(), Replay> {
        match self.sessions.get(&sender.session).and_then(|e| e.lanes[lane_index(sender.lane)]) {
            Some(w) => w.check(sender.counter),
            None => Ok(()),
        }
    }

    /// Records an envelope from `sender` that authenticated. Returns what
    /// [`ReplayWindow::check`] would have said before.
    pub fn record(&mut self, sender: &Sender) -> Result<(), Replay> {
        self.tick += 1;
        let tick = self.tick;
        if !self.sessions.contains_key(&sender.session) && self.sessions.len() >= self.capacity {
            let oldest = self.sessions.iter().min_by_key(|(_, e)| e.used).map(|(s, _)| *s);
            if let Some(s) = oldest {
                self.sessions.remove(&s);
            }
        }
        let entry = self.sessions.entry(sender.session).or_insert(Entry { lanes: [None, None], used: tick });
        entry.used = tick;
        let slot = &mut entry.lanes[lane_index(sender.lane)];
        match slot {
            None => {
                *slot = Some(Window::first(sender.counter));
                Ok(())
            }
            Some(w) => {
                let verdict = w.check(sender.counter);
                if verdict.is_ok() {
                    w.record(sender.counter);
                }
                verdict
            }
        }
    }

    /// Sessions remembered now.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is remembered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(session: u8, counter: u32) -> Sender {
        Sender { session: [session; SESSION_LEN], lane: Lane::Datagram, counter }
    }

    #[test]
    fn each_counter_passes_once_in_any_order_within_the_window() {
        let mut w = ReplayWindow::default();
        for c in [10, 12, 11, 9, 74, 20] {
            assert_eq!(w.check(&from(1, c)), Ok(()), "{c}");
            assert_eq!(w.record(&from(1, c)), Ok(()), "{c}");
            assert_eq!(w.check(&from(1, c)), Err(Replay::Seen), "{c} again");
        }
        assert_eq!(w.check(&from(1, 10)), Err(Replay::TooOld), "64 below the highest (74)");
        assert_eq!(w.check(&from(1, 13)), Ok(()), "61 below and never seen");
        assert_eq!(w.check(&from(1, 11)), Err(Replay::Seen), "63 below and seen");
        assert_eq!(w.record(&from(1, 20)), Err(Replay::Seen), "record says so too, and changes nothing");
    }

    #[test]
    fn lanes_and_sessions_have_windows_of_their_own() {
        let mut w = ReplayWindow::default();
        w.record(&from(1, 5)).unwrap();
        let stream = Sender { lane: Lane::Stream, ..from(1, 5) };
        assert_eq!(w.check(&stream), Ok(()));
        assert_eq!(w.check(&from(2, 5)), Ok(()));
    }

    #[test]
    fn a_jump_past_the_window_clears_it() {
        let mut w = ReplayWindow::default();
        w.record(&from(1, 0)).unwrap();
        w.record(&from(1, 1_000)).unwrap();
        assert_eq!(w.check(&from(1, 999)), Ok(()));
        assert_eq!(w.check(&from(1, 937)), Ok(()), "63 below");
        assert_eq!(w.check(&from(1, 936)), Err(Replay::TooOld));
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recently_used_is_forgotten() {
        let mut w = ReplayWindow::new(3);
        for s in 1..=3 {
            w.record(&from(s, 7)).unwrap();
        }
        w.record(&from(1, 8)).unwrap(); // 1 used again: 2 is now the oldest
        w.record(&from(4, 7)).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(w.check(&from(2, 7)), Ok(()), "forgotten: accepted again, once");
        assert_eq!(w.check(&from(1, 7)), Err(Replay::Seen));
        assert_eq!(w.check(&from(3, 7)), Err(Replay::Seen));
    }
}
