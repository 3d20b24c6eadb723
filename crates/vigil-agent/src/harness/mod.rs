//! The process harness: clusters of real `vigil agent` processes, for
//! `vigil demo`, the agent's integration tests, the figures example, and
//! (with network namespaces as the [`Place`]) the vigil-chaos suite.
//!
//! - `process.rs`: one agent process from an [`AgentSpec`] ([`AgentProcess`]),
//!   killed on drop, its stdin piped so it exits if the harness dies.
//! - `events.rs`: the `--events-json` lines of every agent ([`EventLog`],
//!   read in order with a [`Cursor`]).
//! - `cluster.rs`: agents by index ([`Cluster`]): start, restart, kill,
//!   pause, terminate, and waits on what their APIs show.
//! - `place.rs`: where agents run and how their APIs are reached ([`Place`]).
//! - `error.rs`: [`Error`].
//!
//! Where the agents run and how their APIs are reached is a [`Place`]:
//! [`Loopback`] here (127.0.0.1, ports the agents pick themselves), a lab of
//! network namespaces in vigil-chaos.
//!
//! ```no_run
//! use std::time::Duration;
//! use vigil_agent::config::Preset;
//! use vigil_agent::harness::{Cluster, Loopback};
//!
//! let dir = std::env::temp_dir().join("vigil-harness-example");
//! let mut c = Cluster::new("target/debug/vigil", &dir, Preset::Local, Loopback);
//! let seed = c.add_agent("a", &[])?;
//! c.add_agent("b", &[seed])?;
//! c.wait_converged(Duration::from_secs(20))?;
//! c.kill(1);
//! c.wait_state(&[0], &[1], "dead", Duration::from_secs(20))?;
//! # Ok::<(), vigil_agent::harness::Error>(())
//! ```

mod cluster;
mod error;
mod events;
mod place;
mod process;

pub use cluster::{Cluster, MemberView, Views, all_see, summarize};
pub use error::Error;
pub use events::{Cursor, EventLog, Seen};
pub use place::{Loopback, Place};
pub use process::{AgentProcess, AgentSpec, tail};
