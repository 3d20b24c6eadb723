//! Command-line arguments (clap derive). Every agent key is also an
//! environment variable `VIGIL_<KEY>`; see docs/OPERATIONS.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

/// vigil: heartbeat failure detection and cluster membership.
#[derive(Debug, Parser)]
#[command(name = "vigil", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: join the cluster, serve the HTTP API.
    Agent(AgentArgs),
    /// List the members the local agent knows.
    Members(MembersArgs),
    /// Ask the local agent to join through these addresses.
    Join(JoinArgs),
    /// Ask the local agent to leave the cluster gracefully and exit.
    Leave(ClientArgs),
    /// Follow the local agent's membership events.
    Events(EventsArgs),
    /// Show the local agent's own member entry and counters.
    Info(ClientArgs),
    /// Run a 5-agent cluster on 127.0.0.1, kill one, watch it detected and rejoin.
    Demo(DemoArgs),
}

/// Protocol presets (see `vigil_proto::Config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Local network: 1 s protocol period.
    Lan,
    /// Wide-area network: 5 s protocol period.
    Wan,
    /// One machine (tests, demo): 200 ms protocol period.
    Local,
}

/// Log formats on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `vigil agent` flags. Unset flags fall back to the config file, then defaults.
#[derive(Debug, Args, Default)]
pub struct AgentArgs {
    /// TOML config file; flags and environment variables override its keys.
    #[arg(long, env = "VIGIL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Member name, unique in the cluster [default: host name].
    #[arg(long, env = "VIGIL_NAME")]
    pub name: Option<String>,
    /// Gossip address, UDP and TCP [default: 0.0.0.0:7950].
    #[arg(long, env = "VIGIL_BIND", value_name = "IP:PORT")]
    pub bind: Option<SocketAddr>,
    /// Address other members reach this one at [default: the bind address, or
    /// the outbound interface's address when binding 0.0.0.0].
    #[arg(long, env = "VIGIL_ADVERTISE", value_name = "IP:PORT")]
    pub advertise: Option<SocketAddr>,
    /// Seed to join through (repeatable; comma-separated in the environment).
    /// Without any, the agent rejoins the members in its snapshot.
    #[arg(long, env = "VIGIL_JOIN", value_name = "ADDR", value_delimiter = ',')]
    pub join: Option<Vec<String>>,
    /// HTTP API address [default: 127.0.0.1:7951].
    #[arg(long, env = "VIGIL_HTTP", value_name = "IP:PORT")]
    pub http: Option<SocketAddr>,
    /// Directory for the snapshot of known members (none: no snapshot).
    #[arg(long, env = "VIGIL_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Metadata KEY=VALUE (repeatable; comma-separated in the environment).
    #[arg(long, env = "VIGIL_META", value_name = "KEY=VALUE", value_delimiter = ',')]
    pub meta: Option<Vec<String>>,
    /// Protocol preset [default: lan].
    #[arg(long, env = "VIGIL_PRESET", value_enum)]
    pub preset: Option<Preset>,
    /// Print each membership event as one JSON line on stdout.
    #[arg(
        long,
        env = "VIGIL_EVENTS_JSON",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub events_json: Option<bool>,
    /// Log format on stderr [default: text]. Levels: RUST_LOG (default info).
    #[arg(long, env = "VIGIL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Time allowed for a graceful leave on SIGTERM/Ctrl-C [default: 5s].
    #[arg(long, env = "VIGIL_LEAVE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub leave_timeout: Option<Duration>,
    /// Exit (after a graceful leave) when standard input closes, so that an
    /// agent never outlives the process that started it (demo, tests).
    #[arg(long, env = "VIGIL_EXIT_ON_STDIN_EOF", hide = true)]
    pub exit_on_stdin_eof: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 5s, 1m)"))
}

/// Where the client subcommands find the agent.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The agent's HTTP API address (IP:PORT or http://HOST:PORT).
    #[arg(long, env = "VIGIL_HTTP", default_value = "127.0.0.1:7951")]
    pub http: String,
}

/// `vigil members`.
#[derive(Debug, Args)]
pub struct MembersArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only members in this state (alive, suspect, dead, left).
    #[arg(long)]
    pub state: Option<String>,
}

/// `vigil join`.
#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Seeds: IP:PORT or HOST:PORT.
    #[arg(required = true)]
    pub addrs: Vec<String>,
}

/// `vigil events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print the events' JSON lines instead of readable lines.
    #[arg(long)]
    pub json: bool,
}

/// `vigil demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Agents to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=20))]
    pub agents: u16,
}
