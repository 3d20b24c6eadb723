//! A pause shorter than `pause_tolerance` is never failed: a member frozen
//! (stopped, paused by a long GC, swapped out) for less than the tolerance
//! is suspected at most, and refutes when it wakes.
//!
//! The core counts silence from the first probe left unanswered. With loss,
//! that can be a probe sent just before the pause whose ack was lost: the
//! silence then began up to one probe timeout (`margin`, the longest) before
//! the pause. So it is checked for freezes shorter than the tolerance less
//! that margin (lan: 4.5 s), of a member that nobody had suspected in the
//! tolerance before (its silence began earlier still), and only for
//! failures on silence; a failure is the freeze's doing when it is declared
//! while the freeze lasts or within `grace` after.

use super::{Violation, secs};

/// Feed it every freeze, every suspicion and every failure on silence of a
/// member that was not down.
#[derive(Debug, Default)]
pub struct PausesBelowToleranceNeverFailed {
    tolerance: u64,
    margin: u64,
    grace: u64,
    /// member -> its last freeze (start, end), if it is checked.
    freezes: Vec<Option<(u64, u64)>>,
    /// member -> when it was last suspected by anyone (+1; 0: never).
    suspected: Vec<u64>,
}

impl PausesBelowToleranceNeverFailed {
    /// `tolerance`: the core's `pause_tolerance`; `margin`: its longest
    /// probe timeout (`probe_timeout_max`); `grace`: how long after a freeze
    /// a failure is still attributed to it (all in microseconds).
    pub fn new(tolerance: u64, margin: u64, grace: u64) -> Self {
        PausesBelowToleranceNeverFailed { tolerance, margin, grace, ..Default::default() }
    }

    fn grow(&mut self, member: u32) -> usize {
        let m = member as usize;
        if self.suspected.len() <= m {
            self.suspected.resize(m + 1, 0);
            self.freezes.resize(m + 1, None);
        }
        m
    }

    /// Someone suspected `member` at `at`.
    pub fn on_suspected(&mut self, member: u32, at: u64) {
        let m = self.grow(member);
        self.suspected[m] = at + 1;
    }

    /// `member` is frozen from `start` to `end`.
    pub fn on_freeze(&mut self, member: u32, start: u64, end: u64) {
        let m = self.grow(member);
        let suspected_before = self.suspected[m] > 0 && self.suspected[m] - 1 + self.tolerance >= start;
        let short = end - start + self.margin < self.tolerance;
        self.freezes[m] = (short && !suspected_before).then_some((start, end));
    }

    /// `observer` declared `member` failed on silence (no kernel evidence) at `at`.
    pub fn on_failed(&mut self, at: u64, observer: u32, member: u32) -> Option<Violation> {
        let (start, end) = (*self.freezes.get(member as usize)?)?;
        (start <= at && at <= end.saturating_add(self.grace)).then(|| Violation {
            invariant: "pause_tolerated",
            at_s: secs(at),
            detail: format!(
                "member {observer} declared member {member} failed; it was only paused, for {:.3} s from {:.3} s, less than the {:.3} s tolerance by more than a probe timeout ({:.3} s)",
                secs(end - start),
                secs(start),
                secs(self.tolerance),
                secs(self.margin)
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn catches_a_short_pause_declared_failed() {
        let mut inv = PausesBelowToleranceNeverFailed::new(5 * S, S / 2, 10 * S);
        inv.on_freeze(3, 20 * S, 23 * S);
        assert!(inv.on_failed(19 * S, 1, 3).is_none(), "before the freeze");
        let v = inv.on_failed(25 * S, 1, 3).expect("a 3 s pause failed");
        assert_eq!(v.invariant, "pause_tolerated");
        assert!(inv.on_failed(40 * S, 1, 3).is_none(), "long after it: not the pause's doing");
        // A pause as long as the tolerance may be failed, and one within a
        // probe timeout of it (a lost ack just before it starts the silence).
        inv.on_freeze(4, 20 * S, 25 * S);
        assert!(inv.on_failed(26 * S, 1, 4).is_none());
        inv.on_freeze(4, 30 * S, 34 * S + S * 6 / 10);
        assert!(inv.on_failed(34 * S + S / 2, 1, 4).is_none());
        // A member suspected just before its pause was silent before it.
        inv.on_suspected(5, 18 * S);
        inv.on_freeze(5, 20 * S, 23 * S);
        assert!(inv.on_failed(25 * S, 1, 5).is_none());
    }
}
