//! Incarnations never go back: what one member process believes of another's
//! incarnation never decreases, and no process's own incarnation decreases.

use std::collections::HashMap;

use super::{Violation, secs};

/// Feed it every event (observer process, member, incarnation) and every
/// member's own incarnation.
#[derive(Debug, Default)]
pub struct IncarnationsNeverGoBack {
    /// (observer, member) -> (observer's life, highest incarnation seen, when).
    views: HashMap<(u32, u32), (u32, u64, u64)>,
    /// member -> (life, own incarnation); a Vec: this is checked after every step.
    own: Vec<(u32, u64)>,
    /// Views older than this may have been forgotten (reaped) by the core.
    retention_us: u64,
}

impl IncarnationsNeverGoBack {
    /// `retention_us`: the core's `dead_retention`; a view not refreshed for
    /// that long may legitimately be forgotten and relearnt lower.
    pub fn new(retention_us: u64) -> Self {
        IncarnationsNeverGoBack { retention_us, ..Default::default() }
    }

    /// `observer` (in its process `life`) reported `member` at `incarnation`.
    pub fn observe(
        &mut self,
        at: u64,
        observer: u32,
        life: u32,
        member: u32,
        incarnation: u64,
    ) -> Option<Violation> {
        let slot = self.views.entry((observer, member)).or_insert((life, incarnation, at));
        let (seen_life, seen_inc, seen_at) = *slot;
        if seen_life == life && incarnation < seen_inc && at.saturating_sub(seen_at) < self.retention_us {
            return Some(Violation {
                invariant: "incarnations",
                at_s: secs(at),
                detail: format!(
                    "member {observer} saw member {member} at incarnation {incarnation} after {seen_inc}"
                ),
            });
        }
        if seen_life != life || incarnation >= seen_inc {
            *slot = (life, incarnation, at);
        }
        None
    }

    /// `member`'s own incarnation in its process `life`.
    pub fn own(&mut self, at: u64, member: u32, life: u32, incarnation: u64) -> Option<Violation> {
        let m = member as usize;
        if self.own.len() <= m {
            self.own.resize(m + 1, (u32::MAX, 0));
        }
        let slot = &mut self.own[m];
        if slot.0 == life && incarnation < slot.1 {
            return Some(Violation {
                invariant: "incarnations",
                at_s: secs(at),
                detail: format!("member {member}'s own incarnation went from {} to {incarnation}", slot.1),
            });
        }
        *slot = (life, incarnation);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_a_view_that_goes_back() {
        let mut inv = IncarnationsNeverGoBack::new(u64::MAX);
        assert!(inv.observe(1, 0, 0, 7, 3).is_none());
        assert!(inv.observe(2, 0, 0, 7, 5).is_none());
        let v = inv.observe(3, 0, 0, 7, 4).expect("a view went back from 5 to 4");
        assert_eq!(v.invariant, "incarnations");
        // A restarted observer (new life) starts afresh.
        assert!(inv.observe(4, 0, 1, 7, 1).is_none());
    }

    #[test]
    fn catches_an_own_incarnation_that_goes_back() {
        let mut inv = IncarnationsNeverGoBack::new(u64::MAX);
        assert!(inv.own(1, 3, 0, 2).is_none());
        assert!(inv.own(2, 3, 0, 1).is_some());
        assert!(inv.own(3, 3, 1, 1).is_none());
    }
}
