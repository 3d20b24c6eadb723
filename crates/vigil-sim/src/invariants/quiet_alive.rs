//! After the quiet phase, every live, connected member is alive in every live
//! member's view (and nothing else is): each live member's membership digest
//! equals the digest of the members that are really up.

use super::{Violation, secs};

/// Checked at intervals during the quiet phase; holds once it held at one check.
#[derive(Debug, Default)]
pub struct LiveAliveAfterQuiet {
    /// When it first held.
    pub held_at: Option<u64>,
    /// At the last check: how many live views differed from the truth.
    pub last_wrong: usize,
}

impl LiveAliveAfterQuiet {
    /// `digests`: each live member's view digest; `truth`: the digest of the
    /// members really up. Returns whether it holds now.
    pub fn check(&mut self, at: u64, digests: &[u64], truth: u64) -> bool {
        self.last_wrong = digests.iter().filter(|&&d| d != truth).count();
        if self.last_wrong == 0 && self.held_at.is_none() {
            self.held_at = Some(at);
        }
        self.last_wrong == 0
    }

    /// At the end of the run: a violation if it never held. `detail` names
    /// an example of a wrong view.
    pub fn finish(&self, at: u64, detail: impl FnOnce() -> String) -> Option<Violation> {
        self.held_at.is_none().then(|| Violation {
            invariant: "quiet_alive",
            at_s: secs(at),
            detail: format!(
                "{} live views still wrong at the end of the quiet phase; {}",
                self.last_wrong,
                detail()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_a_view_that_never_sees_a_live_member() {
        let mut inv = LiveAliveAfterQuiet::default();
        assert!(!inv.check(1, &[10, 11], 10));
        assert!(inv.finish(2, || "member 1".into()).is_some());
        assert!(inv.check(3, &[10, 10], 10));
        assert!(inv.finish(4, String::new).is_none());
    }
}
