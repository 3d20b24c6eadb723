//! vigil-sim: a deterministic discrete-event simulator of vigil clusters.
//!
//! It runs many real protocol cores ([`vigil_proto::Core`]) over a modelled
//! network in virtual time, from one seed: the same seed gives a
//! byte-identical event trace. It injects faults (process exits, hosts going
//! down, restarts, freezes, CPU starvation, slow members, churn, partitions,
//! mass failures), checks invariants while it runs, and measures detection
//! time (by failure class), false failures, traffic, join convergence,
//! dissemination and memory. What it reports is what the real protocol code
//! did.
//!
//! The three failure classes differ in what the others can know. A process
//! that exits on a live host leaves kernel evidence (refused connections,
//! closed streams, ICMP port unreachable), which the engine delivers to the
//! cores as `handle_unreachable`; a host that goes down leaves only silence;
//! a paused or CPU-starved process leaves nothing either, but wakes up and
//! handles everything that queued before its timers.
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`units`] | durations and fractions written the human way ([`Dur`], [`Frac`], [`parse_duration`]) |
//! | `select` | which members an action applies to ([`Select`]) |
//! | [`Scenario`] (`scenario`) | what to simulate, from TOML or flags ([`SimArgs`]) |
//! | `net` | latency distributions ([`Latency`]), loss, link rules, partitions, streams |
//! | `engine` | the event heap, members, routing, faults applied, watch streams and kernel evidence |
//! | [`Cluster`] (`cluster`) | the engine driven by hand, step by step: for tests and examples |
//! | [`detection`] | crash members one at a time and time their detection, on a [`Cluster`] |
//! | `faults` | the fault schedule |
//! | [`invariants`] | one invariant per module, fed observations |
//! | [`Report`] (`report`) | the figures, JSON and table |
//! | [`Quantiles`] (`quantiles`) | median, p99 and maximum of a set of durations |
//! | [`ByClass`] (`by_class`) | detection by failure class: exits, hosts down, pauses, starvation |
//! | [`plot`] | SVG and PNG charts |
//! | [`tune`](mod@tune) | search for the cheapest configuration meeting a target |
//!
//! # Example
//!
//! ```
//! use vigil_sim::{NoProgress, Scenario, run};
//!
//! let scenario = Scenario::from_toml(r#"
//!     members = 20
//!     duration = "40s"
//!     warmup = "5s"
//!     quiet = "15s"
//!     [network]
//!     loss = "1%"
//!     [crashes]
//!     count = 2
//!     restart_after = "10s"
//! "#).unwrap();
//! let report = run(&scenario, &mut NoProgress).unwrap();
//! assert!(report.passed(), "{report}");
//! assert_eq!(report.detection.crashes, 2);
//! assert_eq!(report.false_failures.never_paused, 0);
//! ```
#![warn(missing_docs, clippy::print_stdout, clippy::print_stderr)]

mod by_class;
mod cli;
mod cluster;
pub mod commands;
pub mod detection;
mod engine;
mod error;
mod faults;
mod ids;
pub mod invariants;
mod net;
mod observe;
pub mod plot;
mod quantiles;
mod report;
mod run;
mod scenario;
mod select;
pub mod tune;
pub mod units;

pub use by_class::{ByClass, ClassDetection, PauseDetection, StarveDetection};
pub use cli::{SimArgs, TuneArgs};
pub use cluster::Cluster;
pub use engine::{Captured, FROZEN_BACKLOG, Seen};
pub use error::ScenarioError;
pub use ids::{member_addr, member_name};
pub use net::{Latency, MAX_LATENCY};
pub use observe::{ENCRYPTION_OVERHEAD, FalseClass, STREAM_FRAME};
pub use quantiles::Quantiles;
pub use report::{Detection, Dissemination, FalseFailures, Joins, KindTraffic, Memory, Report, Traffic};
pub use run::{
    BYTES_PER_CONVERGED_MEMBER, BYTES_PER_ENTRY_ESTIMATE, BarProgress, NoProgress, Progress, repro_command,
    rss_bytes, run,
};
pub use scenario::{
    Churn, CrashSpec, Crashes, FreezeSpec, LinkRule, MassFailure, Network, PartitionSpec, Preset, Scenario,
    SlowSpec, Start, StarveSpec, apply_override, config_toml,
};
pub use select::Select;
pub use tune::{TuneResult, tune};
pub use units::{Dur, Frac, parse_duration};
