//! vigil-act: what an operator's agent does with membership, on top of the
//! [`vigil`] runtime.
//!
//! The runtime answers "who is alive"; this crate acts on it: health checks
//! that set a member's published health, handlers that run a script or call
//! a webhook on membership events, active/standby failover groups decided
//! from each member's own view, and the `key=value` metadata convention they
//! share. The `vigil` agent wires them to its configuration file.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`checks`] | script, HTTP(S) and TCP checks, debounced, combined into the member's health |
//! | [`handlers`] | scripts and webhooks on events, filtered by kind and metadata, one queue per handler |
//! | [`failover`] | active/standby groups with a quorum guard and a hold time |
//! | [`meta`] | the `key=value` metadata convention |
//! | [`http`] | the one HTTP client (HTTP/1.1, TLS with rustls) of checks and webhooks |
//!
//! Scripts run in their own process group; one that times out is killed with
//! everything it started.
//!
//! # Example
//!
//! Two failover members decide, from the same view, which of them is active.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use vigil_act::failover::{Failover, Quorum, Transition, groups};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let start = |name: &str, meta: &str| {
//!     vigil::Vigil::start(
//!         vigil::Config::new(name, "127.0.0.1:0".parse().unwrap())
//!             .with_protocol(vigil_proto::Config::local())
//!             .with_meta(meta.as_bytes().to_vec()),
//!     )
//! };
//! let a = start("a", "group=db\npriority=200").await?;
//! let b = start("b", "group=db\npriority=100").await?;
//! b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).await?;
//! let view = b.members_now().await?;
//! assert_eq!(groups(&view)[0].active.as_deref(), Some("a"));
//!
//! let mut role = Failover::new("db", Duration::ZERO, Quorum::Group);
//! assert_eq!(role.update(Instant::now(), "a", &view), Some(Transition::Promote));
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod checks;
pub mod failover;
pub mod handlers;
pub mod http;
pub mod meta;
mod proc;
