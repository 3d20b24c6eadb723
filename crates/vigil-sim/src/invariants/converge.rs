//! All views converge: during the quiet phase there comes a time when every
//! live member holds the same view (equal membership digests).

use super::{Violation, secs};

/// Checked at intervals during the quiet phase.
#[derive(Debug, Default)]
pub struct ViewsConverge {
    /// When the views were first equal.
    pub held_at: Option<u64>,
    /// Distinct views at the last check.
    pub last_distinct: usize,
}

impl ViewsConverge {
    /// `digests`: each live member's view digest. Returns whether all are equal.
    pub fn check(&mut self, at: u64, digests: &[u64]) -> bool {
        let mut v: Vec<u64> = digests.to_vec();
        v.sort_unstable();
        v.dedup();
        self.last_distinct = v.len();
        let equal = v.len() <= 1;
        if equal && self.held_at.is_none() {
            self.held_at = Some(at);
        }
        equal
    }

    /// At the end of the run: a violation if the views never became equal.
    pub fn finish(&self, at: u64) -> Option<Violation> {
        self.held_at.is_none().then(|| Violation {
            invariant: "converge",
            at_s: secs(at),
            detail: format!("{} distinct views at the end of the quiet phase", self.last_distinct),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_views_that_never_agree() {
        let mut inv = ViewsConverge::default();
        assert!(!inv.check(1, &[1, 2, 1]));
        assert_eq!(inv.finish(2).map(|v| v.invariant), Some("converge"));
        assert!(inv.check(3, &[4, 4]));
        assert!(inv.finish(4).is_none());
    }
}
