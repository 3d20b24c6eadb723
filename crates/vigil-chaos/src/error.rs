//! The harness's one error type.

use std::time::Duration;

/// Something went wrong while setting up, running or checking a scenario.
/// Whatever the variant, every namespace and process the harness created is
/// removed by the guards that own them as the error propagates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command (`ip`, `nft`, the agent) could not be run or failed.
    #[error("command `{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and standard error, or the spawn error.
        detail: String,
    },
    /// An I/O error outside a command (pipes, sockets, files).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The run was interrupted (Ctrl-C, SIGTERM, SIGHUP).
    #[error("interrupted by a signal; cleaning up")]
    Interrupted,
    /// A wait ran out of time.
    #[error("timed out after {:.1} s waiting for {what}", after.as_secs_f64())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the wait lasted.
        after: Duration,
    },
    /// A scenario's expectation did not hold.
    #[error("assertion failed: {0}")]
    Assertion(String),
    /// The environment cannot run the suite (not root, tools missing, no binary).
    #[error("cannot run the chaos suite here: {0}")]
    Environment(String),
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<vigil_agent::harness::Error> for Error {
    fn from(e: vigil_agent::harness::Error) -> Self {
        use vigil_agent::harness::Error as H;
        match e {
            H::Io { context, source } => Error::Io { context, source },
            H::Timeout { what, after } => Error::Timeout { what, after },
            H::Interrupted => Error::Interrupted,
            H::Start(m) => Error::Environment(m),
            other => Error::Assertion(other.to_string()),
        }
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
