//! The harness's one error type.

use std::time::Duration;

/// A harness operation failed. Whatever the variant, the processes the
/// harness started are killed by the guards that own them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error (spawning, pipes, files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A wait ran out of time.
    #[error("timed out after {:.1} s waiting for {what}", after.as_secs_f64())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the wait lasted.
        after: Duration,
    },
    /// The agent is not running.
    #[error("{0} is not running")]
    NotRunning(String),
    /// An agent exited at start, or did not say what it bound.
    #[error("{0}")]
    Start(String),
    /// An agent exited with a failure status when asked to stop.
    #[error("{name} exited with {status}; its log:\n{log}")]
    Exited {
        /// The agent.
        name: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// An agent's API did not answer as expected, or the harness was misused.
    #[error("{0}")]
    Agent(String),
    /// The wait was interrupted ([`Cluster::interrupt_on`](super::Cluster::interrupt_on)).
    #[error("interrupted")]
    Interrupted,
}
