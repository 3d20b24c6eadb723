//! vigil-proto: the sans-IO protocol core of vigil.
//!
//! One [`Core`] is one member's view of its cluster: SWIM failure detection
//! with Lifeguard's refinements, infection-style dissemination of state
//! changes, full-state exchange (push-pull), and the wire codec. It never
//! touches a socket, a clock, a thread or a global random number generator:
//! the caller hands it bytes and the time, and polls it for bytes to send,
//! events, and the next instant it wants to be woken. The tokio runtime
//! (crate `vigil`) and the simulator (crate `vigil-sim`) are both such callers.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`Core`] (`core/`, `probe`, `merge`, `refute`, `anti_entropy`) | the state machine: probing, suspicion, refutation, merging, anti-entropy |
//! | [`Config`] | timers and limits, presets [`Config::lan`], [`Config::wan`], [`Config::local`] |
//! | [`codec`] | the wire format (docs/PROTOCOL.md) |
//! | [`Member`], [`Name`], [`Meta`], [`Health`], [`State`] | who a member is |
//! | [`Event`], [`Evidence`] | what changed, and why a member was suspected or failed |
//! | [`Instant`] | the core's own time type (microseconds from the caller's origin) |
//!
//! # Example
//!
//! Two members, driven by hand: `b` joins `a` through a push-pull exchange,
//! then both probe each other.
//!
//! ```
//! use std::time::Duration;
//! use vigil_proto::{Channel, Config, Core, EventKind, Health, Identity, Instant, Meta, Name, State};
//!
//! let identity = |name: &str, port: u16| Identity {
//!     name: Name::new(name).unwrap(),
//!     addr: ([127, 0, 0, 1], port).into(),
//!     meta: Meta::new(b"role=web".to_vec()).unwrap(),
//!     health: Health::ok(),
//! };
//! let mut now = Instant::ZERO;
//! let mut a = Core::new(Config::local(), identity("a", 7001), 1, 42, now).unwrap();
//! let mut b = Core::new(Config::local(), identity("b", 7002), 1, 43, now).unwrap();
//! let addr_a = a.local_member(now).addr;
//!
//! /// Hands every pending transmit of `from` to `to`.
//! fn deliver(now: Instant, from: &mut Core, to: &mut Core) {
//!     let src = from.local_member(now).addr;
//!     while let Some(t) = from.poll_transmit() {
//!         match t.channel {
//!             Channel::Datagram => to.handle_datagram(now, src, &t.payload).unwrap(),
//!             _ => to.handle_stream(now, src, &t.payload).unwrap(),
//!         }
//!     }
//! }
//!
//! b.join(now, &[addr_a]);
//! // Two seconds of virtual time in 1 ms steps: deliver, then wake each core.
//! let end = now + Duration::from_secs(2);
//! while now < end {
//!     deliver(now, &mut b, &mut a);
//!     deliver(now, &mut a, &mut b);
//!     now = now + Duration::from_millis(1);
//!     a.handle_timeout(now);
//!     b.handle_timeout(now);
//! }
//!
//! let seen = a.member("b", now).unwrap();
//! assert_eq!(seen.state, State::Alive);
//! assert_eq!(seen.meta.as_bytes(), b"role=web");
//! assert!(std::iter::from_fn(|| a.poll_event()).any(|e| e.kind == EventKind::Joined));
//! assert_eq!(b.num_members(), 2);
//! ```
#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

mod anti_entropy;
mod broadcast;
pub mod codec;
mod config;
mod core;
mod detector;
mod entries;
mod error;
mod event;
mod hash;
mod index;
mod kernel;
mod local;
mod member;
mod merge;
mod probe;
mod refute;
mod round;
mod snapshot;
mod stats;
mod suspicion;
mod table;
mod time;
mod verify;
mod watch;

pub use crate::core::Core;
pub use crate::core::outbox::{Channel, Transmit};
pub use config::Config;
pub use error::{ConfigError, DecodeError, MemberError};
pub use event::{Event, EventKind, Evidence, ExitEvidence, NameConflict, ProbeEvidence};
pub use hash::view_digest;
pub use kernel::Unreachable;
pub use member::{
    Health, HealthStatus, Identity, MAX_META_LEN, MAX_NAME_LEN, MAX_REASON_LEN, Member, Meta, Name, State,
};
pub use snapshot::Snapshot;
pub use stats::{Histogram, Histograms, RTT_BUCKETS, SUSPICION_BUCKETS, Stats};
pub use time::Instant;
