//! Membership events captured from each agent's `--events-json` stdout: the
//! process harness's [`EventLog`] of [`Event`]s (`by` is the observer).

pub use vigil_agent::events::unix_ms as now_ms;
pub use vigil_agent::harness::{EventLog, Seen as Event};
