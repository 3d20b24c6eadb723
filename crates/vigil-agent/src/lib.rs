//! The `vigil` agent: a member of a vigil cluster that operators run on each
//! host, with a config file, an HTTP JSON API, an event stream, Prometheus
//! metrics and a snapshot of the members it knew.
//!
//! The binary (`src/main.rs`) only parses arguments and calls [`main_with`].
//!
//! # Map
//!
//! | module | what |
//! | --- | --- |
//! | [`cli`] | flags and subcommands (clap), each agent key also a `VIGIL_*` variable |
//! | [`config`] | the TOML file and the one typed [`config::AgentConfig`] built at the edge |
//! | [`agent`] | [`agent::run`]: the member, API, event pump and snapshot writer for one lifetime |
//! | [`api`] | the HTTP API as a value: [`api::app`] |
//! | [`act`] | health checks, event handlers, failover role, `/v1/groups` |
//! | [`feeds`] | `host:port` lines for load balancers (`/v1/members?format=text`) |
//! | [`events`] | event JSON (`--events-json`, SSE) and the resumable history |
//! | [`meta`] | the `key=value` lines encoding of metadata |
//! | [`metrics`] | `GET /metrics` |
//! | [`snapshot`] | `members.json` under `--data-dir` |
//! | [`client`] | `vigil members`, `join`, `leave`, `events`, `info` |
//! | [`cluster`] | agent processes on loopback (demo, tests, figures) |
//! | [`demo`] | `vigil demo` |
//! | [`watch`] | `vigil watch`: a file rendered from the healthy set, a reload command |
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
//! use vigil_agent::api::{AppState, app};
//! use vigil_agent::events::EventLog;
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
pub mod api;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod events;
pub mod feeds;
pub mod meta;
pub mod metrics;
pub mod security;
pub mod snapshot;
pub mod top;
pub mod watch;

use std::io::IsTerminal;
use std::process::ExitCode;

use cli::{Cli, Command, LogFormat};

/// Sets up logs on stderr: `RUST_LOG` levels (default `info`), text or JSON.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
}

/// Runs one command line: the whole program.
pub fn main_with(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Sim(a) => return vigil_sim::commands::sim_command(&a),
        Command::Tune(a) => return vigil_sim::commands::tune_command(&a),
        Command::Agent(args) => return agent_main(&args),
        Command::Members(a) => client::members(&a),
        Command::Join(a) => client::join(&a),
        Command::Leave(a) => client::leave(&a),
        Command::Events(a) => client::events(&a),
        Command::Info(a) => client::info(&a),
        Command::Demo(a) => demo::run(&a).map_err(|e| client::ClientError(e.to_string())),
        Command::Keygen => security::keygen(),
        Command::Keys(a) => security::keys(&a),
        Command::Top(a) => top::run(&a.http),
        Command::Watch(a) => watch::run(&a.options()),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cmd, "vigil", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| client::ClientError(format!("writing the man page: {e}")))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn agent_main(args: &cli::AgentArgs) -> ExitCode {
    let config = match config::AgentConfig::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(agent::run(config, agent::shutdown_signal()));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
