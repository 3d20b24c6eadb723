//! The agent's configuration: one typed [`AgentConfig`], built once at the
//! edge from a TOML file ([`FileConfig`]), flags and environment variables
//! ([`AgentArgs`]; every key is also a `VIGIL_<KEY>` variable, see
//! docs/OPERATIONS.md).
//!
//! Precedence, per key: flag, then environment variable (`VIGIL_*`), then the
//! config file, then the default. A list (`join`, `meta`) given by flag or
//! environment replaces the file's list. An unknown or bad key is refused with
//! its name and the reason.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::act::{ActConfig, CheckFile, FailoverFile, HandlerFile};
pub use crate::args::{AgentArgs, LogFormat, Preset};
use crate::meta;
use crate::server::ApiOptions;

/// Default gossip port (UDP and TCP). Serf/Consul use 7946 (and Serf RPC 7373).
pub const DEFAULT_GOSSIP_PORT: u16 = 7950;
/// Default HTTP API port, bound on 127.0.0.1 unless configured otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 7951;
/// Default time allowed for a graceful leave on SIGTERM, Ctrl-C or `POST /v1/leave`.
pub const DEFAULT_LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A configuration value was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key, line and column).
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("invalid `{key}`: {reason}")]
    Invalid {
        /// The key (as in the config file; the flag is `--` with `-` for `_`).
        key: &'static str,
        /// Why.
        reason: String,
    },
}

impl From<crate::act::Invalid> for ConfigError {
    fn from(e: crate::act::Invalid) -> Self {
        ConfigError::Invalid { key: e.key, reason: e.reason }
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

/// The config file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Member name.
    pub name: Option<String>,
    /// Gossip address (UDP and TCP).
    pub bind: Option<SocketAddr>,
    /// Address others reach this member at.
    pub advertise: Option<SocketAddr>,
    /// Seeds.
    pub join: Option<Vec<String>>,
    /// HTTP API address.
    pub http: Option<SocketAddr>,
    /// Snapshot directory.
    pub data_dir: Option<PathBuf>,
    /// Metadata as a table of strings.
    pub meta: Option<BTreeMap<String, String>>,
    /// Protocol preset.
    pub preset: Option<Preset>,
    /// Print events as JSON lines on stdout.
    pub events_json: Option<bool>,
    /// Log format on stderr.
    pub log_format: Option<LogFormat>,
    /// Log level filter (`tracing` env-filter syntax).
    pub log_level: Option<String>,
    /// Time allowed for a graceful leave, e.g. `"5s"`.
    #[serde(default, with = "humantime_opt")]
    pub leave_timeout: Option<Duration>,
    /// Cluster key file.
    pub key_file: Option<PathBuf>,
    /// Cluster name, bound into every packet.
    pub cluster_name: Option<String>,
    /// Unencrypted traffic (tests only).
    pub insecure_plaintext: Option<bool>,
    /// Bearer token file for mutating API calls.
    pub http_token_file: Option<PathBuf>,
    /// Host names the API answers to besides IP addresses and localhost.
    pub http_allowed_hosts: Option<Vec<String>>,
    /// Open API connections at most.
    pub http_max_connections: Option<usize>,
    /// Event-stream subscribers at most.
    pub http_max_subscribers: Option<usize>,
    /// Idle and header-read timeout of API connections, e.g. `"30s"`.
    #[serde(default, with = "humantime_opt")]
    pub http_idle_timeout: Option<Duration>,
    /// Replace a live member of the same name.
    pub takeover: Option<bool>,
    /// Health checks (`[[check]]` tables), see [`crate::act`].
    #[serde(default)]
    pub check: Vec<CheckFile>,
    /// Event handlers (`[[handler]]` tables).
    #[serde(default)]
    pub handler: Vec<HandlerFile>,
    /// Failover role (`[failover]` table).
    pub failover: Option<FailoverFile>,
    /// Protocol settings over the preset's (`[protocol]` table, as `vigil
    /// tune` prints it): `probe_interval = "1s"`, `pause_tolerance = "5s"`,
    /// `watch_count = 2`, ... (the names `vigil sim --set` takes).
    pub protocol: Option<BTreeMap<String, toml::Value>>,
}

/// A small serde helper: durations as humantime strings (`"500ms"`, `"5s"`).
mod humantime_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
    }
}

/// Everything the agent runs with, checked.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Member name.
    pub name: String,
    /// Gossip address (UDP and TCP).
    pub bind: SocketAddr,
    /// Advertised address, if different from `bind`.
    pub advertise: Option<SocketAddr>,
    /// Seeds given explicitly (empty: rejoin from the snapshot, if any).
    pub join: Vec<String>,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Where the snapshot is kept; none: no snapshot.
    pub data_dir: Option<PathBuf>,
    /// Metadata, encoded with [`meta::encode`].
    pub meta: BTreeMap<String, String>,
    /// Protocol preset.
    pub preset: Preset,
    /// Print events as JSON lines on stdout.
    pub events_json: bool,
    /// Log format on stderr.
    pub log_format: LogFormat,
    /// Log level filter; none: `RUST_LOG`, else `info`.
    pub log_level: Option<String>,
    /// Time allowed for a graceful leave.
    pub leave_timeout: Duration,
    /// Exit when standard input closes (hidden; used by `vigil demo` and tests
    /// so that no agent outlives its parent).
    pub exit_on_stdin_eof: bool,
    /// Cluster key file (none only with `insecure_plaintext`).
    pub key_file: Option<PathBuf>,
    /// Cluster name.
    pub cluster_name: String,
    /// Unencrypted traffic.
    pub insecure_plaintext: bool,
    /// Bearer token file for mutating API calls.
    pub http_token_file: Option<PathBuf>,
    /// The API's accepted `Host` names and limits.
    pub api: ApiOptions,
    /// Replace a live member of the same name (`vigil::Config::takeover`).
    pub takeover: bool,
    /// Health checks, event handlers and failover.
    pub act: ActConfig,
    /// Protocol settings over the preset's, by name, as text (checked).
    pub protocol_overrides: Vec<(String, String)>,
}

impl AgentConfig {
    /// Builds the configuration from flags and environment (in `args`, as clap
    /// parsed them) and the config file they name, if any.
    pub fn load(args: &AgentArgs) -> Result<AgentConfig, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        AgentConfig::merge(args, file)
    }

    /// Merges flags and environment over a parsed file, then validates.
    pub fn merge(args: &AgentArgs, file: FileConfig) -> Result<AgentConfig, ConfigError> {
        let api = api_options(args, &file);
        let meta = match &args.meta {
            Some(pairs) if !pairs.is_empty() => {
                let mut map = BTreeMap::new();
                for pair in pairs {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| invalid("meta", format!("`{pair}` is not KEY=VALUE")))?;
                    map.insert(k.to_string(), v.to_string());
                }
                map
            }
            _ => file.meta.unwrap_or_default(),
        };
        let act = ActConfig::from_file(&file.check, &file.handler, file.failover.as_ref(), &meta)?;
        let config = AgentConfig {
            name: match args.name.clone().or(file.name) {
                Some(n) => n,
                None => host_name(),
            },
            bind: args
                .bind
                .or(file.bind)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_GOSSIP_PORT))),
            advertise: args.advertise.or(file.advertise),
            join: match &args.join {
                Some(j) if !j.is_empty() => j.clone(),
                _ => file.join.unwrap_or_default(),
            },
            http: args
                .http
                .or(file.http)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_HTTP_PORT))),
            data_dir: args.data_dir.clone().or(file.data_dir),
            meta,
            preset: args.preset.or(file.preset).unwrap_or(Preset::Lan),
            events_json: args.events_json.or(file.events_json).unwrap_or(false),
            log_format: args.log_format.or(file.log_format).unwrap_or(LogFormat::Text),
            log_level: args.log_level.clone().or(file.log_level),
            leave_timeout: args.leave_timeout.or(file.leave_timeout).unwrap_or(DEFAULT_LEAVE_TIMEOUT),
            exit_on_stdin_eof: args.exit_on_stdin_eof,
            key_file: args.key_file.clone().or(file.key_file),
            cluster_name: args.cluster_name.clone().or(file.cluster_name).unwrap_or_else(|| "vigil".into()),
            insecure_plaintext: args.insecure_plaintext.or(file.insecure_plaintext).unwrap_or(false),
            http_token_file: args.http_token_file.clone().or(file.http_token_file),
            api,
            takeover: args.takeover.or(file.takeover).unwrap_or(false),
            act,
            protocol_overrides: {
                let mut o = protocol_overrides(file.protocol.unwrap_or_default())?;
                for pair in args.set.iter().flatten() {
                    let (k, v) = pair
                        .split_once('=')
                        .ok_or_else(|| invalid("protocol", format!("--set `{pair}` is not KEY=VALUE")))?;
                    o.push((k.trim().to_string(), v.trim().to_string()));
                }
                o
            },
        };
        let mut config = config;
        if config.bind.ip().is_unspecified() && config.advertise.is_none() {
            let ip = outbound_ip(config.bind.is_ipv6()).ok_or_else(|| {
                invalid(
                    "advertise",
                    format!(
                        "bind is {} (all interfaces) and no outbound address was found: set --advertise IP:PORT",
                        config.bind
                    ),
                )
            })?;
            config.advertise = Some(SocketAddr::new(ip, config.bind.port()));
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        vigil_proto::Name::new(&self.name).map_err(|e| invalid("name", e.to_string()))?;
        meta::encode(&self.meta).map_err(|e| invalid("meta", e.to_string()))?;
        if let Some(a) = self.advertise
            && a.ip().is_unspecified()
        {
            return Err(invalid("advertise", format!("{a} is not an address other members can reach")));
        }
        for seed in &self.join {
            if seed.trim().is_empty() || !seed.contains(':') {
                return Err(invalid("join", format!("`{seed}` is not IP:PORT or HOST:PORT")));
            }
        }
        match (&self.key_file, self.insecure_plaintext) {
            (None, false) => {
                return Err(invalid(
                    "key_file",
                    "no cluster key: pass --key-file FILE (create it with `vigil keygen > FILE && chmod 600 FILE`), \
                     or --insecure-plaintext for tests on a trusted network",
                ));
            }
            (Some(_), true) => {
                return Err(invalid("insecure_plaintext", "cannot be combined with key_file: choose one"));
            }
            (Some(k), false) if crate::secrets::is_stdin(k) && self.exit_on_stdin_eof => {
                return Err(invalid(
                    "key_file",
                    "`-` (the key from standard input) cannot be combined with exit_on_stdin_eof",
                ));
            }
            _ => {}
        }
        if self.cluster_name.is_empty() || self.cluster_name.len() > 128 {
            return Err(invalid("cluster_name", "must be 1 to 128 bytes"));
        }
        if !self.http.ip().is_loopback() && self.http_token_file.is_none() {
            return Err(invalid(
                "http_token_file",
                format!(
                    "the API is bound to {} beyond loopback: set --http-token-file FILE so that mutating calls need a token",
                    self.http
                ),
            ));
        }
        if let Some(level) = &self.log_level {
            tracing_subscriber::EnvFilter::try_new(level)
                .map_err(|e| invalid("log_level", format!("`{level}`: {e}")))?;
        }
        validate_api(&self.api)?;
        if self.leave_timeout.is_zero() || self.leave_timeout > Duration::from_secs(300) {
            return Err(invalid("leave_timeout", "must be between 1ms and 5m"));
        }
        let mut protocol = self.preset_protocol();
        for (k, v) in &self.protocol_overrides {
            vigil_sim::apply_override(&mut protocol, k, v).map_err(|e| invalid("protocol", e.to_string()))?;
        }
        protocol.validate().map_err(|e| invalid("protocol", e.to_string()))?;
        Ok(())
    }

    fn preset_protocol(&self) -> vigil_proto::Config {
        match self.preset {
            Preset::Lan => vigil_proto::Config::lan(),
            Preset::Wan => vigil_proto::Config::wan(),
            Preset::Local => vigil_proto::Config::local(),
        }
    }

    /// The protocol settings: the preset's, then the `[protocol]` table's.
    pub fn protocol(&self) -> vigil_proto::Config {
        let mut protocol = self.preset_protocol();
        for (k, v) in &self.protocol_overrides {
            // Checked by `validate`.
            let _ = vigil_sim::apply_override(&mut protocol, k, v);
        }
        protocol
    }
}

/// The API's settings: flags and environment over the file over defaults.
fn api_options(args: &AgentArgs, file: &FileConfig) -> ApiOptions {
    let d = ApiOptions::default();
    ApiOptions {
        allowed_hosts: match &args.http_allowed_hosts {
            Some(h) if !h.is_empty() => h.clone(),
            _ => file.http_allowed_hosts.clone().unwrap_or_default(),
        }
        .into_iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect(),
        max_connections: args.http_max_connections.or(file.http_max_connections).unwrap_or(d.max_connections),
        max_subscribers: args.http_max_subscribers.or(file.http_max_subscribers).unwrap_or(d.max_subscribers),
        idle_timeout: args.http_idle_timeout.or(file.http_idle_timeout).unwrap_or(d.idle_timeout),
    }
}

fn validate_api(api: &ApiOptions) -> Result<(), ConfigError> {
    if let Some(h) = api.allowed_hosts.iter().find(|h| {
        h.is_empty()
            || h.contains([':', '/', '[', ']'])
            || h.chars().any(|c| c.is_whitespace() || c.is_control())
    }) {
        let reason = format!("`{}` is not a host name (give names without scheme or port)", h.escape_debug());
        return Err(invalid("http_allowed_hosts", reason));
    }
    if !(1..=100_000).contains(&api.max_connections) {
        return Err(invalid("http_max_connections", "must be between 1 and 100000"));
    }
    if !(1..=api.max_connections).contains(&api.max_subscribers) {
        return Err(invalid("http_max_subscribers", "must be between 1 and http_max_connections"));
    }
    if api.idle_timeout < Duration::from_millis(100) || api.idle_timeout > Duration::from_secs(3600) {
        return Err(invalid("http_idle_timeout", "must be between 100ms and 1h"));
    }
    Ok(())
}

/// The `[protocol]` table's values as text: strings (durations) as they
/// are, numbers and booleans written out.
fn protocol_overrides(table: BTreeMap<String, toml::Value>) -> Result<Vec<(String, String)>, ConfigError> {
    table
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => format!("{f:?}"),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    let reason = format!("`{k}` is a {}, not a string, number or boolean", other.type_str());
                    return Err(invalid("protocol", reason));
                }
            };
            Ok((k, text))
        })
        .collect()
}

/// Reads and parses a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_file(&text).map_err(|message| ConfigError::Parse { path: path.to_owned(), message })
}

/// Parses config file text; the error message names the key and why.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())
}

/// The local address of the interface that routes outward (found with a
/// connected UDP socket; nothing is sent).
fn outbound_ip(v6: bool) -> Option<std::net::IpAddr> {
    let (bind, probe) = if v6 { ("[::]:0", "[2001:db8::1]:9") } else { ("0.0.0.0:0", "192.0.2.1:9") };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(probe).ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// This host's name, from the kernel (gethostname(2): no file to read, so
/// it works under systemd's `ProcSubset=pid` and in containers); `vigil`
/// if it cannot be had.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|s| s.into_string().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "vigil".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: AgentArgs,
    }

    fn args(extra: &[&str]) -> AgentArgs {
        let mut v = vec!["agent"];
        v.extend_from_slice(extra);
        Wrap::try_parse_from(v).unwrap().args
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let file = parse_file(
            "name = \"f\"\nbind = \"127.0.0.1:9000\"\njoin = [\"127.0.0.1:9001\"]\nleave_timeout = \"2s\"\n[meta]\nrole = \"db\"\n",
        )
        .unwrap();
        let c =
            AgentConfig::merge(&args(&["--name", "cli", "--meta", "zone=a", "--insecure-plaintext"]), file)
                .unwrap();
        assert_eq!(c.name, "cli");
        assert_eq!(c.bind, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.join, vec!["127.0.0.1:9001".to_string()]);
        assert_eq!(c.meta.get("zone").map(String::as_str), Some("a"));
        assert!(!c.meta.contains_key("role"), "a list given by flag replaces the file's");
        assert_eq!(c.leave_timeout, Duration::from_secs(2));
        assert_eq!(c.http.port(), DEFAULT_HTTP_PORT);
    }

    #[test]
    fn encryption_is_required_unless_plaintext_is_asked_for_and_a_public_api_needs_a_token() {
        let e = AgentConfig::merge(&args(&["--name", "a"]), FileConfig::default()).unwrap_err();
        assert!(e.to_string().contains("key_file") && e.to_string().contains("vigil keygen"), "{e}");
        let e = AgentConfig::merge(
            &args(&["--name", "a", "--key-file", "/k", "--insecure-plaintext"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("insecure_plaintext"), "{e}");
        let e = AgentConfig::merge(
            &args(&["--name", "a", "--key-file", "/k", "--http", "0.0.0.0:7951"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("http_token_file"), "{e}");
        let c =
            AgentConfig::merge(&args(&["--name", "a", "--key-file", "/k"]), FileConfig::default()).unwrap();
        assert_eq!(c.cluster_name, "vigil");
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let e = parse_file("bnid = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.contains("unknown field `bnid`"), "{e}");
        let e = parse_file("bind = \"nowhere\"").unwrap_err();
        assert!(e.contains("bind"), "{e}");
        let e = parse_file("leave_timeout = \"soon\"").unwrap_err();
        assert!(e.contains("leave_timeout"), "{e}");
        let e = parse_file("preset = \"moon\"").unwrap_err();
        assert!(e.contains("preset") && e.contains("moon"), "{e}");
    }

    #[test]
    fn a_protocol_table_as_vigil_tune_prints_it_sets_the_protocol_over_the_preset() {
        let file = parse_file(
            "preset = \"lan\"\n[protocol]\nprobe_interval = \"2s\"\nsuspicion_min_mult = 0.5\nwatch_count = 3\npause_tolerance = \"7s\"\n",
        )
        .unwrap();
        let c = AgentConfig::merge(&args(&["--name", "a", "--insecure-plaintext"]), file).unwrap();
        let p = c.protocol();
        assert_eq!(p.probe_interval, Duration::from_secs(2));
        assert_eq!((p.suspicion_min_mult, p.watch_count), (0.5, 3));
        assert_eq!(p.pause_tolerance, Duration::from_secs(7));
        assert_eq!(p.gossip_interval, vigil_proto::Config::lan().gossip_interval, "the rest from the preset");
        let bad = |text: &str| {
            let file = parse_file(text).unwrap();
            AgentConfig::merge(&args(&["--name", "a", "--insecure-plaintext"]), file).unwrap_err().to_string()
        };
        let e = bad("[protocol]\nprobe_intervall = \"1s\"\n");
        assert!(e.contains("`protocol`") && e.contains("probe_intervall"), "{e}");
        let e = bad("[protocol]\nprobe_interval = 5\n");
        assert!(e.contains("`protocol`") && e.contains("probe_interval=5"), "{e}");
        let e = bad("[protocol]\nwatch_count = [1]\n");
        assert!(e.contains("watch_count") && e.contains("array"), "{e}");
        let e = bad("[protocol]\nwatch_count = 99\n");
        assert!(e.contains("watch_count"), "{e}");
    }

    #[test]
    fn set_flags_override_the_protocol_table_and_a_log_level_is_checked() {
        let file = parse_file("[protocol]\npause_tolerance = \"7s\"\nwatch_count = 3\n").unwrap();
        let c = AgentConfig::merge(
            &args(&[
                "--name",
                "a",
                "--insecure-plaintext",
                "--set",
                "pause_tolerance=9s",
                "--set",
                "watch_count=4",
            ]),
            file,
        )
        .unwrap();
        let p = c.protocol();
        assert_eq!((p.pause_tolerance, p.watch_count), (Duration::from_secs(9), 4), "--set wins");
        let e = AgentConfig::merge(
            &args(&["--name", "a", "--insecure-plaintext", "--set", "watch_count"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"), "{e}");
        let e = AgentConfig::merge(
            &args(&["--name", "a", "--insecure-plaintext", "--set", "watch_count=99"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("watch_count"), "{e}");
        let e = AgentConfig::merge(
            &args(&["--name", "a", "--insecure-plaintext", "--log-level", "info,=x=y"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("log_level"), "{e}");
    }

    #[test]
    fn api_limits_allowed_hosts_and_takeover_come_from_flags_or_the_file() {
        let file = parse_file(
            "http_allowed_hosts = [\"Vigil.Internal\"]\nhttp_max_connections = 100\nhttp_idle_timeout = \"5s\"\ntakeover = true\n",
        )
        .unwrap();
        let c = AgentConfig::merge(
            &args(&["--name", "a", "--insecure-plaintext", "--http-max-subscribers", "7"]),
            file,
        )
        .unwrap();
        assert_eq!(c.api.allowed_hosts, vec!["vigil.internal".to_string()]);
        assert_eq!((c.api.max_connections, c.api.max_subscribers), (100, 7));
        assert_eq!(c.api.idle_timeout, Duration::from_secs(5));
        assert!(c.takeover);
        let d = AgentConfig::merge(&args(&["--name", "a", "--insecure-plaintext"]), FileConfig::default())
            .unwrap();
        assert_eq!(d.api, ApiOptions::default());
        assert!(!d.takeover);
        let bad =
            |extra: &[&str]| AgentConfig::merge(&args(extra), FileConfig::default()).unwrap_err().to_string();
        let base = ["--name", "a", "--insecure-plaintext"];
        let with = |more: &[&'static str]| [&base[..], more].concat();
        assert!(bad(&with(&["--http-allowed-hosts", "http://x:1"])).contains("`http_allowed_hosts`"));
        assert!(bad(&with(&["--http-max-connections", "0"])).contains("`http_max_connections`"));
        assert!(bad(&with(&["--http-max-subscribers", "600"])).contains("`http_max_subscribers`"));
        assert!(bad(&with(&["--http-idle-timeout", "1ms"])).contains("`http_idle_timeout`"));
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad =
            |extra: &[&str]| AgentConfig::merge(&args(extra), FileConfig::default()).unwrap_err().to_string();
        assert!(bad(&["--bind", "127.0.0.1:1", "--meta", "novalue"]).contains("`meta`"));
        assert!(bad(&["--bind", "127.0.0.1:1", "--advertise", "0.0.0.0:1"]).contains("`advertise`"));
        let long = format!("k={}", "v".repeat(600));
        assert!(bad(&["--bind", "127.0.0.1:1", "--meta", &long]).contains("`meta`"));
        assert!(bad(&["--bind", "127.0.0.1:1", "--name", ""]).contains("`name`"));
    }
}
