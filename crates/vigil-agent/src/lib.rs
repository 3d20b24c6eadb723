//! The `vigil` agent: a member of a vigil cluster that operators run on each
//! host, with a config file, an HTTP JSON API, an event stream, Prometheus
//! metrics and a snapshot of the members it knew.
//!
//! The binary (`src/main.rs`) only parses arguments and calls [`cli::run`].
//!
//! # Map
//!
//! Imports run one way, down this table: a module reaches only those below
//! it (the command line reaches the commands; the agent's lifetime wires the
//! server, the actions and the event log; leaves reach nothing).
//!
//! | module | what |
//! | --- | --- |
//! | [`cli`] | the command tree (clap) and [`cli::run`], which hands each subcommand to its module |
//! | [`demo`] | `vigil demo`: five agents on loopback, one killed and restarted |
//! | [`harness`] | real agent processes (loopback here, network namespaces in vigil-chaos): `vigil demo`, tests, figures |
//! | [`agent`] | [`agent::run`]: the member, API, event pump, actions and snapshot writer for one lifetime |
//! | [`client`] | `vigil members`, `join`, `leave`, `events`, `info`, `keys`, `watch`, `top` |
//! | [`logging`] | logs on stderr (text or JSON) |
//! | [`config`] | `vigil agent` flags, the TOML file, and the one typed [`config::AgentConfig`] |
//! | [`server`] | the HTTP API as a value ([`server::app`]): members, events (SSE), feeds, groups, keys, metrics, dashboard |
//! | [`act`] | the wiring of `vigil_act`: the check/handler/failover tables and their tasks |
//! | [`snapshot`] | `members.json` under `--data-dir` |
//! | [`events`] | event JSON (`--events-json`, SSE) and the resumable history |
//! | [`secrets`] | the cluster key file and the API token file |
//! | [`meta`] | the `key=value` lines encoding of metadata |
//! | [`faults`] | test-only fault injection (feature `testing`) |
//!
//! # Example
//!
//! The API without a socket: a member, its router, one request.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use axum::body::Body;
//! use axum::http::Request;
//! use tower::ServiceExt;
//! use vigil_agent::events::EventLog;
//! use vigil_agent::server::{AppState, app};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = vigil::Config::new("a", "127.0.0.1:0".parse()?).with_protocol(vigil_proto::Config::local());
//! let member = Arc::new(vigil::Vigil::start(config).await?);
//! let state = AppState::new(member.clone(), Arc::new(EventLog::default()), 0, Duration::from_secs(1));
//! let resp = app(state).oneshot(Request::get("/v1/members?state=bogus").body(Body::empty())?).await?;
//! assert_eq!(resp.status(), 400);
//! member.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod act;
pub mod agent;
pub mod args;
pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod events;
pub mod faults;
pub mod harness;
pub mod logging;
pub mod meta;
pub mod secrets;
pub mod server;
pub mod snapshot;
