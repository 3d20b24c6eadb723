//! The flags of `vigil agent` (each also a `VIGIL_<KEY>` environment
//! variable), and the enums they share with the config file. Resolved with
//! the file into one [`crate::config::AgentConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;

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

impl Preset {
    /// The name, as the flag and the config file spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Lan => "lan",
            Preset::Wan => "wan",
            Preset::Local => "local",
        }
    }
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
#[derive(Debug, Clone, Args, Default)]
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
    /// Log format on stderr [default: text].
    #[arg(long, env = "VIGIL_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log level filter, e.g. `info` or `info,vigil=debug` [default: RUST_LOG, else info].
    /// Changed by a reload (SIGHUP) when set in the config file.
    #[arg(long, env = "VIGIL_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Protocol setting over the preset's and the `[protocol]` table's,
    /// KEY=VALUE (repeatable; comma-separated in the environment), e.g.
    /// `--set pause_tolerance=8s` (the names `vigil sim --set` takes).
    #[arg(long = "set", env = "VIGIL_SET", value_name = "KEY=VALUE", value_delimiter = ',')]
    pub set: Option<Vec<String>>,
    /// Time allowed for a graceful leave on SIGTERM/Ctrl-C [default: 5s].
    #[arg(long, env = "VIGIL_LEAVE_TIMEOUT", value_name = "DURATION", value_parser = vigil_sim::units::parse_duration)]
    pub leave_timeout: Option<Duration>,
    /// File holding the cluster key (base64, as `vigil keygen` prints it; more
    /// lines: more keys, the first used for sending). Must not be readable by
    /// other users. `-` reads it from standard input, at start only (so it
    /// never sits in a file). Required unless --insecure-plaintext.
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
    /// Host names the HTTP API answers to besides IP addresses and
    /// localhost (repeatable; comma-separated in the environment; `*`: any).
    /// Others get 403, so that a DNS-rebinding page cannot reach the API.
    #[arg(long, env = "VIGIL_HTTP_ALLOWED_HOSTS", value_name = "NAME", value_delimiter = ',')]
    pub http_allowed_hosts: Option<Vec<String>>,
    /// Open HTTP API connections at most; more are answered 503 and closed
    /// [default: 512].
    #[arg(long, env = "VIGIL_HTTP_MAX_CONNECTIONS", value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// `GET /v1/events` subscribers at most; more get 503 [default: 64].
    #[arg(long, env = "VIGIL_HTTP_MAX_SUBSCRIBERS", value_name = "N")]
    pub http_max_subscribers: Option<usize>,
    /// Close an HTTP connection silent this long between requests, or this
    /// slow to send a request's headers [default: 30s].
    #[arg(long, env = "VIGIL_HTTP_IDLE_TIMEOUT", value_name = "DURATION", value_parser = vigil_sim::units::parse_duration)]
    pub http_idle_timeout: Option<Duration>,
    /// Replace a live member of the same name (its process is gone but not
    /// yet declared failed) instead of being refused and exiting.
    #[arg(
        long,
        env = "VIGIL_TAKEOVER",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub takeover: Option<bool>,
    /// Exit (after a graceful leave) when standard input closes, so that an
    /// agent never outlives the process that started it (demo, tests).
    #[arg(long, env = "VIGIL_EXIT_ON_STDIN_EOF", hide = true)]
    pub exit_on_stdin_eof: bool,
}
