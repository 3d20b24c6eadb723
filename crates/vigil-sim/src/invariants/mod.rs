//! Invariants checked while a simulation runs, one per module. Each is a
//! small state machine fed observations (events, views); a broken one yields
//! a [`Violation`]. They hold no reference to the simulator, so a test can feed
//! them a deliberately broken observation and see them catch it.

mod converge;
mod incarnations;
mod left_not_failed;
mod pause_tolerated;
mod quiet_alive;

pub use converge::ViewsConverge;
pub use incarnations::IncarnationsNeverGoBack;
pub use left_not_failed::LeftNeverFailed;
pub use pause_tolerated::PausesBelowToleranceNeverFailed;
pub use quiet_alive::LiveAliveAfterQuiet;

use serde::Serialize;

/// An invariant that did not hold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// Which invariant (its module name).
    pub invariant: &'static str,
    /// Simulated time, in seconds.
    pub at_s: f64,
    /// What was seen.
    pub detail: String,
}

/// Most violations kept per run (the first ones; the count goes on).
pub(crate) const MAX_KEPT: usize = 20;

/// Seconds from microseconds, for reports.
pub(crate) fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}
