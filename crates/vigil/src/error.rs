//! Errors of the runtime, one enum per concern.

use std::io;

use thiserror::Error;

/// A member could not start. Nothing is left running.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value was refused.
    #[error("invalid config `{field}`: {reason}")]
    Config {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Binding the UDP socket or the TCP listener failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: io::Error,
    },
}

/// A command could not be carried out.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The member has shut down.
    #[error("the member has shut down")]
    Stopped,
    /// A field was refused (too long metadata, bad name, ...). Nothing changed.
    #[error(transparent)]
    Member(#[from] vigil_proto::MemberError),
    /// None of the seeds could be resolved or reached before the deadline.
    #[error("no seed answered: {0}")]
    Join(String),
    /// Every seed tried read this member's join and closed without a word:
    /// it cannot authenticate it. Attempts go on in the background.
    #[error("seed {seed} rejected us: wrong key or cluster name")]
    Rejected {
        /// A seed that did.
        seed: std::net::SocketAddr,
    },
    /// A live member already has this member's name: this one stopped,
    /// without joining (or, both running, it yielded).
    #[error(
        "the name {name:?} is taken: a live member has it at {live_at}; this member stopped \
         (choose another name, or take over the name if that member is gone)"
    )]
    NameConflict {
        /// The name.
        name: String,
        /// Where the live member that keeps it is.
        live_at: std::net::SocketAddr,
    },
    /// A key operation was refused (encryption off, unknown key, primary key).
    #[error("key operation refused: {0}")]
    Keys(String),
    /// The operation did not finish in time.
    #[error("timed out")]
    Timeout,
}
