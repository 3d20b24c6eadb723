//! vigil-proto: the sans-IO protocol core of vigil.
#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

pub mod codec;
mod error;
mod member;
mod time;

pub use error::{ConfigError, DecodeError, MemberError};
pub use member::{
    Health, HealthStatus, Identity, MAX_META_LEN, MAX_NAME_LEN, MAX_REASON_LEN, Member, Meta, Name, State,
};
pub use time::Instant;
mod broadcast;
mod config;
mod core;
mod detector;
mod event;
mod merge;
mod probe;

pub use config::Config;
pub use core::{Channel, Core, Stats, Transmit};
pub use event::{Event, EventKind, Evidence, ProbeEvidence};
