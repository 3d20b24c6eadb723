//! vigil: heartbeat failure detection and cluster membership for Rust services.
//!
//! A [`Vigil`] is one member of a cluster. It runs the vigil protocol
//! (SWIM with Lifeguard's refinements, from [`vigil_proto`]) over UDP, with
//! TCP for full-state exchanges and as a fallback probe path, in one tokio
//! task that owns the protocol state. From it a service learns which other
//! members are alive, suspect, failed or gone, and publishes its own metadata
//! and health.
//!
//! # Map
//!
//! | item | what |
//! | --- | --- |
//! | [`Vigil`] | start, join, members, subscribe, set metadata and health, leave, shut down |
//! | [`Config`] | name, addresses, protocol preset ([`vigil_proto::Config::lan`] etc.) |
//! | [`Metrics`] | counters: traffic by message kind, rejections, probes, suspicions, flaps, kernel evidence, stalls ([`Stall`]); histograms of probe round trips and suspicion durations |
//! | [`Keyring`], [`Key`], [`KeyOp`] | encryption keys, and their rotation across a running cluster |
//! | `Faults` | fault injection for tests (drops, delays, blocked peers): only with the cargo feature `testing` |
//!
//! What a service does *with* membership (health checks, scripts and
//! webhooks on events, failover groups) is in the `vigil-act` crate.
//!
//! # Inside
//!
//! One task, the driver, owns the protocol core; the handle talks to it
//! through commands and reads the snapshots it publishes. A datagram goes
//! socket → rate limit (per source IP) → checks before decryption (size,
//! header, replay window) → decrypt → core → events on a broadcast channel.
//! A stream connection is admitted (slots, per-IP caps, reserved slots for
//! members) and its first frame, at most 64 KiB, must authenticate within
//! 2 s before anything larger is read.
//! Besides packets, the driver hands the core the kernel's evidence that a
//! member's process is gone ([`Unreachable`]): a watch stream that ended, a
//! stream connection refused, a datagram that drew an ICMP port unreachable.
//!
//! | file | what |
//! | --- | --- |
//! | `handle.rs` | [`Vigil`]: starts the driver, sends it commands (`command.rs`) |
//! | `driver.rs` | the event loop: commands, datagrams, stream frames, timers; dispatch to the files below |
//! | `link.rs` | the UDP socket; in `testing` builds the one place faults apply (`fault.rs`) |
//! | `icmp.rs` | ICMP port-unreachable errors for sent datagrams (Linux, `IP_RECVERR`) |
//! | `limit.rs` | per-source-IP rate limit of datagrams, before any decryption |
//! | `crypto.rs` | the envelope (version 2: AES-256-GCM-SIV, session and counter; version 1 read for one release) under a keyring |
//! | `replay.rs` | the replay window: per sender session and lane, a 64-counter sliding window |
//! | `envelope.rs` | the envelope as the runtime uses it: checks before decryption, which version each peer reads |
//! | `stream.rs` | TCP: accept loop, the first frame read and authenticated, outbound exchanges, replies on inbound connections |
//! | `admit.rs` | admission of inbound streams: slots, reserved slots for members, per-IP caps, the unauthenticated byte budget |
//! | `watch.rs`, `watchers.rs` | watch streams: held open to the members this one watches; held for those that watch it, and the farewell on leaving |
//! | `transport.rs` | binding the sockets, and stream framing |
//! | `join.rs` | seeds, DNS resolution, attempts with backoff |
//! | `keys.rs` | key operations here and across the cluster |
//! | `publish.rs`, `metrics.rs` | member and counter snapshots the handle reads |
//! | `fuzzing.rs` | entry points for the fuzz targets (cargo feature `fuzzing`) |
//!
//! # Example
//!
//! The whole cycle: two members on loopback, one joins the other, both see
//! each other, one leaves gracefully and the other sees it `left`.
//!
//! ```
//! use std::time::Duration;
//! use vigil::{Config, EventKind, State, Vigil};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let local = || vigil_proto::Config::local();
//! let a = Vigil::start(Config::new("a", "127.0.0.1:0".parse()?).with_protocol(local())).await?;
//! let b = Vigil::start(
//!     Config::new("b", "127.0.0.1:0".parse()?).with_protocol(local()).with_meta(b"role=db".to_vec()),
//! )
//! .await?;
//! let mut events = a.subscribe();
//!
//! // Seeds are addresses or DNS names; join retries until one answers.
//! b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).await?;
//! let joined = events.recv().await?;
//! assert_eq!((joined.kind, joined.member.name.as_str()), (EventKind::Joined, "b"));
//! assert_eq!(a.member("b").unwrap().meta.as_bytes(), b"role=db");
//!
//! b.set_health(vigil::Health::new(vigil::HealthStatus::Degraded, "disk 91% full")?).await?;
//! assert_eq!(events.recv().await?.kind, EventKind::Updated);
//!
//! b.leave(Duration::from_secs(2)).await?;
//! b.shutdown().await;
//! let left = events.recv().await?;
//! assert_eq!((left.kind, left.member.state), (EventKind::Left, State::Left));
//! assert_eq!(a.members().len(), 2); // a itself, and b (left)
//! a.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod admit;
mod command;
mod config;
pub mod crypto;
mod driver;
mod envelope;
mod error;
#[cfg(feature = "testing")]
mod fault;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod handle;
#[cfg(target_os = "linux")]
mod icmp;
mod join;
mod keys;
mod limit;
mod link;
mod metrics;
mod publish;
mod replay;
mod stream;
mod transport;
mod watch;
mod watchers;

pub use config::Config;
pub use crypto::{Key, KeyError, Keyring};
pub use error::{CommandError, StartError};
#[cfg(feature = "testing")]
pub use fault::{Faults, IpOrAddr};
pub use handle::Vigil;
pub use keys::{KeyOp, KeyReport};
pub use metrics::{KindCounts, Metrics, Stall};
pub use vigil_proto::{
    Event, EventKind, Evidence, ExitEvidence, Health, HealthStatus, Member, Meta, Name, ProbeEvidence, State,
    Unreachable,
};
