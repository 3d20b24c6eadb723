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
#[allow(clippy::large_enum_variant)] // parsed once per process
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
    /// Print a new random cluster key (base64), for --key-file.
    Keygen,
    /// List, install, use or remove cluster keys on every member.
    Keys(KeysArgs),
    /// A live terminal view of the cluster (members, health, recent events).
    Top(ClientArgs),
    /// Keep a file rendered from the healthy member set; run a command when it changes.
    Watch(WatchArgs),
    /// Print shell completions for bash, zsh, fish, elvish or powershell.
    Completions(CompletionsArgs),
    /// Print the man page (roff) generated from this command line.
    Man,
    /// Simulate a cluster of this configuration (up to thousands of members)
    /// in virtual time: detection times, false failures, bandwidth.
    Sim(vigil_sim::SimArgs),
    /// Search the simulator for the cheapest protocol settings that meet
    /// detection targets (process exits, hosts down, pauses); prints a
    /// configuration file for `vigil agent --config` (`vigil tune > vigil.toml`).
    Tune(vigil_sim::TuneArgs),
}

/// `vigil keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Apply to the local agent only (default: every alive member, each one acknowledging).
    #[arg(long, global = true)]
    pub local: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Key operations. Rotate with install, then use, then remove the old key.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Fingerprints of the installed keys, the primary first.
    List,
    /// Add a key for receiving.
    Install {
        /// The key, base64 (as `vigil keygen` prints it).
        key: String,
    },
    /// Make an installed key the one used for sending.
    Use {
        /// The key, base64.
        key: String,
    },
    /// Remove a key that is not used for sending.
    Remove {
        /// The key, base64.
        key: String,
    },
}

/// `vigil completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
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
    #[arg(long, env = "VIGIL_LEAVE_TIMEOUT", value_name = "DURATION", value_parser = vigil_sim::units::parse_duration)]
    pub leave_timeout: Option<Duration>,
    /// File holding the cluster key (base64, as `vigil keygen` prints it; more
    /// lines: more keys, the first used for sending). Must not be readable by
    /// other users. Required unless --insecure-plaintext.
    #[arg(long, env = "VIGIL_KEY_FILE", value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// Cluster name, bound into every packet: clusters that share a key but
    /// not a name never merge [default: vigil].
    #[arg(long, env = "VIGIL_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// Send and accept unencrypted, unauthenticated traffic (tests and
    /// isolated networks only; a warning is logged and shown in /v1/self).
    #[arg(
        long,
        env = "VIGIL_INSECURE_PLAINTEXT",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub insecure_plaintext: Option<bool>,
    /// File holding the bearer token required for every mutating API call
    /// (required when --http is not a loopback address).
    #[arg(long, env = "VIGIL_HTTP_TOKEN_FILE", value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Exit (after a graceful leave) when standard input closes, so that an
    /// agent never outlives the process that started it (demo, tests).
    #[arg(long, env = "VIGIL_EXIT_ON_STDIN_EOF", hide = true)]
    pub exit_on_stdin_eof: bool,
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

/// `vigil watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The agent.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Only members with this metadata, KEY=VALUE (repeatable, all must hold).
    #[arg(long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Template file (minijinja/Jinja2 syntax) rendered with `members`.
    #[arg(long, value_name = "FILE")]
    pub template: PathBuf,
    /// Output file, replaced atomically when the rendering changes.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Command run through `sh -c` after each change (e.g. `nginx -s reload`).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Quiet time the set must hold before the file is rewritten.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = vigil_sim::units::parse_duration)]
    pub debounce: Duration,
    /// Render once and exit.
    #[arg(long)]
    pub once: bool,
}

impl WatchArgs {
    /// The options of [`crate::watch::run`].
    pub fn options(&self) -> crate::watch::WatchOptions {
        crate::watch::WatchOptions {
            http: self.client.http.clone(),
            filters: self.filter.clone(),
            template: self.template.clone(),
            out: self.out.clone(),
            exec: self.exec.clone(),
            debounce: self.debounce,
            once: self.once,
        }
    }
}

/// `vigil demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Agents to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=20))]
    pub agents: u16,
}
