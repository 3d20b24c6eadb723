//! A member that left never shows as failed: once a member has called
//! `leave`, no member declares it failed at the incarnation it left at (or
//! below).

use std::collections::HashMap;

use super::{Violation, secs};

/// Feed it every leave and every `failed` event.
#[derive(Debug, Default)]
pub struct LeftNeverFailed {
    /// member -> incarnation it left at.
    left: HashMap<u32, u64>,
}

impl LeftNeverFailed {
    /// `member` left gracefully at `incarnation`.
    pub fn on_leave(&mut self, member: u32, incarnation: u64) {
        self.left.insert(member, incarnation);
    }

    /// `observer` declared `member` failed at `incarnation`.
    pub fn on_failed(&mut self, at: u64, observer: u32, member: u32, incarnation: u64) -> Option<Violation> {
        let left_at = *self.left.get(&member)?;
        (incarnation <= left_at).then(|| Violation {
            invariant: "left_not_failed",
            at_s: secs(at),
            detail: format!(
                "member {observer} declared member {member} failed at incarnation {incarnation}, after it left at {left_at}"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_a_failure_of_a_member_that_left() {
        let mut inv = LeftNeverFailed::default();
        assert!(inv.on_failed(1, 0, 5, 2).is_none(), "not left yet: a crash is fine");
        inv.on_leave(5, 2);
        assert!(inv.on_failed(2, 0, 5, 2).is_some());
        assert!(inv.on_failed(3, 0, 5, 3).is_none(), "a later incarnation is a new life");
    }
}
