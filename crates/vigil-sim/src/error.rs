//! Typed errors of the simulator library.

use thiserror::Error;

/// A scenario (file or flags) was refused. Nothing ran.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The TOML did not parse, or named an unknown field.
    #[error("scenario: {0}")]
    Toml(String),
    /// A value is out of range or malformed.
    #[error("{field}: {value:?} is not valid ({reason})")]
    Value {
        /// Which field.
        field: &'static str,
        /// The text given.
        value: String,
        /// What is expected.
        reason: &'static str,
    },
    /// A `config` override names no protocol field.
    #[error("config: unknown protocol field {0:?}")]
    UnknownConfig(String),
    /// The protocol configuration is invalid.
    #[error("config: {0}")]
    Config(vigil_proto::ConfigError),
    /// The run would need more memory than this machine has.
    #[error(
        "{members} members need about {need_mib} MiB (every member knows every other one); {avail_mib} MiB available"
    )]
    TooLarge {
        /// Members asked for.
        members: usize,
        /// Estimated need.
        need_mib: u64,
        /// Available.
        avail_mib: u64,
    },
}
