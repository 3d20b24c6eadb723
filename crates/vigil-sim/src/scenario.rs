//! What to simulate: cluster size, protocol preset and overrides, the network,
//! and the faults. Parsed once, from TOML (`deny_unknown_fields`) or from
//! command-line flags, into [`Scenario`].

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_proto::Config;

use crate::error::ScenarioError;
use crate::net::Latency;
use crate::select::Select;
use crate::units::{Dur, Frac, parse_duration};

/// Protocol and network preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// `Config::lan()`, log-normal latency with a 0.25 ms median.
    #[default]
    Lan,
    /// `Config::wan()`, log-normal latency with a 30 ms median.
    Wan,
    /// `Config::local()`, 50 µs constant latency.
    Local,
}

impl FromStr for Preset {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, ScenarioError> {
        match s {
            "lan" => Ok(Preset::Lan),
            "wan" => Ok(Preset::Wan),
            "local" => Ok(Preset::Local),
            _ => Err(ScenarioError::Value {
                field: "preset",
                value: s.to_owned(),
                reason: "lan, wan or local",
            }),
        }
    }
}

impl Preset {
    /// The protocol configuration of this preset.
    pub fn config(self) -> Config {
        match self {
            Preset::Lan => Config::lan(),
            Preset::Wan => Config::wan(),
            Preset::Local => Config::local(),
        }
    }

    /// The default one-way latency of this preset.
    pub fn latency(self) -> Latency {
        match self {
            Preset::Lan => Latency::LogNormal { median: Duration::from_micros(250), sigma: 0.4 },
            Preset::Wan => Latency::LogNormal { median: Duration::from_millis(30), sigma: 0.3 },
            Preset::Local => Latency::Constant(Duration::from_micros(50)),
        }
    }
}

/// How the cluster starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Every member already knows every other one as alive (a restored
    /// snapshot, `Core::preload`): the run measures the steady state.
    #[default]
    Converged,
    /// Members join one seed one after another, `join_interval` apart.
    Join,
}

/// The network between members.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// One-way latency of every link (unless a link rule says otherwise).
    /// Default: the preset's.
    pub latency: Option<Latency>,
    /// Probability that a datagram is lost, on every link.
    pub loss: Frac,
    /// TCP retransmission timeout: a stream segment lost costs this, doubling
    /// on each further loss; after 6 losses the stream fails.
    pub stream_rto: Dur,
    /// Overrides for some links (latency, loss, one-way loss), optionally for a time.
    pub links: Vec<LinkRule>,
}

impl Default for Network {
    fn default() -> Self {
        Network { latency: None, loss: Frac(0.0), stream_rto: Dur::millis(200), links: Vec::new() }
    }
}

/// Overrides for the links from some members to others.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRule {
    /// Senders.
    pub from: Select,
    /// Receivers.
    pub to: Select,
    /// Loss on these links (replaces the default); `1.0` blocks them.
    #[serde(default)]
    pub loss: Option<Frac>,
    /// Latency on these links (replaces the default).
    #[serde(default)]
    pub latency: Option<Latency>,
    /// Also the reverse direction (default false: one-way).
    #[serde(default)]
    pub both_ways: bool,
    /// From (default: the start).
    #[serde(default)]
    pub at: Option<Dur>,
    /// Until (default: the start of the quiet phase).
    #[serde(default)]
    pub until: Option<Dur>,
}

/// Stop members at a given time, optionally restarting them (a new process,
/// same name and address, incarnation one above the last it used). Under
/// `[[crash]]` the process exits on a live host (its kernel answers: see
/// [`Scenario::crash`]); under `[[host_down]]` the host goes silent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrashSpec {
    /// When (from the start).
    pub at: Dur,
    /// Who. Default one random live member.
    #[serde(default = "one_random")]
    pub members: Select,
    /// Restart after this long; never if absent.
    #[serde(default)]
    pub restart_after: Option<Dur>,
}

/// `count` crashes of one random member each, spread evenly over the chaos
/// phase, each restarted after `restart_after`: the detection measurement.
/// Under `[crashes]` each is a process exit, under `[host_downs]` a host
/// going silent (spread over the same phase, a quarter of a gap later).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crashes {
    /// How many.
    pub count: usize,
    /// Restart after this long (default 30 s); `0s` never restarts.
    #[serde(default = "thirty_seconds")]
    pub restart_after: Dur,
}

/// Freeze members (the process stops, its packets queue), then resume them
/// with their backlog: Lifeguard's slow-member scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeSpec {
    /// First freeze (from the start). Default: the start of the chaos phase.
    #[serde(default)]
    pub at: Option<Dur>,
    /// How long each freeze lasts.
    pub duration: Dur,
    /// Who. Default one random live member (drawn at each freeze).
    #[serde(default = "one_random")]
    pub members: Select,
    /// Repeat this often, until the quiet phase.
    #[serde(default)]
    pub every: Option<Dur>,
}

/// CPU starvation (a cgroup quota): from `at`, for `duration`, the members
/// run only `run` out of every `every`; the rest of the time they are paused
/// like a frozen member (nothing processed, everything queues, their streams
/// stay open). On each waking they first handle what queued, then their timers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StarveSpec {
    /// When it starts (from the start). Default: the start of the chaos phase.
    #[serde(default)]
    pub at: Option<Dur>,
    /// How long it lasts (default 60 s).
    #[serde(default = "sixty_seconds")]
    pub duration: Dur,
    /// Running time per period (default 1 ms).
    #[serde(default = "one_millisecond")]
    pub run: Dur,
    /// The period (default 1 s).
    #[serde(default = "one_second")]
    pub every: Dur,
    /// Who. Default one random live member.
    #[serde(default = "one_random")]
    pub members: Select,
}

impl StarveSpec {
    /// The default: one random member, 1 ms of every second for 60 s, from `at`.
    pub fn new(at: Option<Dur>) -> StarveSpec {
        StarveSpec {
            at,
            duration: sixty_seconds(),
            run: one_millisecond(),
            every: one_second(),
            members: one_random(),
        }
    }
}

/// Members that take `delay` to handle every input (packet or timer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlowSpec {
    /// Who.
    pub members: Select,
    /// Processing delay added to every input.
    pub delay: Dur,
    /// From (default: the start).
    #[serde(default)]
    pub at: Option<Dur>,
    /// Until (default: the end).
    #[serde(default)]
    pub until: Option<Dur>,
}

/// Cut the cluster: the members of each group can reach only their own group
/// (the members in no group form one more group).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSpec {
    /// When.
    pub at: Dur,
    /// The groups.
    pub groups: Vec<Select>,
    /// Heal after this long (default: at the start of the quiet phase).
    #[serde(default)]
    pub heal_after: Option<Dur>,
}

/// Members joining and leaving at random, at these rates, during the chaos phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// New members (new names) per second; each joins a random live member.
    #[serde(default)]
    pub joins_per_sec: f64,
    /// Graceful leaves per second (a random live member leaves and stops).
    #[serde(default)]
    pub leaves_per_sec: f64,
}

/// A share of the live members' hosts going down at once (a rack or a power
/// feed lost): silent, like `[[host_down]]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MassFailure {
    /// When.
    pub at: Dur,
    /// Share of the live members.
    pub fraction: Frac,
    /// Restart them after this long; never if absent.
    #[serde(default)]
    pub restart_after: Option<Dur>,
}

fn one_random() -> Select {
    Select::Random(1)
}

fn thirty_seconds() -> Dur {
    Dur::secs(30)
}

fn sixty_seconds() -> Dur {
    Dur::secs(60)
}

fn one_second() -> Dur {
    Dur::secs(1)
}

fn one_millisecond() -> Dur {
    Dur::millis(1)
}

/// The `[config]` table: each value a string, a number or a boolean (as
/// `vigil tune` prints it), kept as text for [`apply_override`].
fn config_values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let map = BTreeMap::<String, Value>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::Text(s) => s,
                Value::Int(i) => i.to_string(),
                Value::Float(f) => format!("{f:?}"),
                Value::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// A whole simulation: who, for how long, over what network, with which faults.
///
/// Phases: `warmup` (no faults; excluded from traffic figures), chaos (every
/// fault), then `quiet` (faults stop, partitions heal, slow members recover)
/// at the end of `duration`, during which the convergence invariants must
/// come to hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Scenario {
    /// A label for reports.
    pub name: String,
    /// The only source of randomness.
    pub seed: u64,
    /// Initial members.
    pub members: usize,
    /// Total simulated time.
    pub duration: Dur,
    /// Initial phase without faults, excluded from traffic figures.
    pub warmup: Dur,
    /// Final phase without faults, in which views must converge.
    pub quiet: Dur,
    /// Protocol and network preset.
    pub preset: Preset,
    /// Apply `Config::scaled_for(members)` to the preset (default true).
    pub scale_config: bool,
    /// Protocol overrides: field name = value (`probe_interval = "500ms"`,
    /// `watch_count = 2`). Also read under the name `protocol`, as `vigil
    /// tune` prints it and the agent reads it.
    #[serde(alias = "protocol", deserialize_with = "config_values")]
    pub config: BTreeMap<String, String>,
    /// How the cluster starts.
    pub start: Start,
    /// With `start = "join"`: time between two joins.
    pub join_interval: Dur,
    /// The network.
    pub network: Network,
    /// Evenly spread crash-and-restart of random members: process exits.
    pub crashes: Option<Crashes>,
    /// Explicit crashes: process exits. The host stays up and its kernel
    /// answers for the process: a datagram to its port draws an ICMP port
    /// unreachable, a connection is refused, the streams it held close.
    pub crash: Vec<CrashSpec>,
    /// Evenly spread host failures of random members (silent; restarted like crashes).
    pub host_downs: Option<Crashes>,
    /// Explicit host failures: everything to and from the member is lost and
    /// nothing comes back (what a crash meant before process exits were modelled).
    pub host_down: Vec<CrashSpec>,
    /// Freezes (a stop signal, a long GC pause, swapping).
    pub freeze: Vec<FreezeSpec>,
    /// CPU starvation.
    pub starve: Vec<StarveSpec>,
    /// Slow members.
    pub slow: Vec<SlowSpec>,
    /// Partitions.
    pub partition: Vec<PartitionSpec>,
    /// Random joins and leaves.
    pub churn: Option<Churn>,
    /// Mass failures.
    pub mass_failure: Vec<MassFailure>,
    /// New members joining the running cluster, evenly spread over the chaos
    /// phase: the join-convergence measurement.
    pub joins: usize,
    /// Metadata changes of random members per minute of chaos: the
    /// dissemination measurement.
    pub updates_per_minute: f64,
    /// Check the invariants (default true).
    pub check_invariants: bool,
    /// Keep an event trace (every delivery, wake-up, fault and event, one per line).
    pub trace: bool,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".to_owned(),
            seed: 1,
            members: 100,
            duration: Dur::secs(120),
            warmup: Dur::secs(10),
            quiet: Dur::secs(30),
            preset: Preset::Lan,
            scale_config: true,
            config: BTreeMap::new(),
            start: Start::Converged,
            join_interval: Dur::millis(10),
            network: Network::default(),
            crashes: None,
            crash: Vec::new(),
            host_downs: None,
            host_down: Vec::new(),
            freeze: Vec::new(),
            starve: Vec::new(),
            slow: Vec::new(),
            partition: Vec::new(),
            churn: None,
            mass_failure: Vec::new(),
            joins: 2,
            updates_per_minute: 2.0,
            check_invariants: true,
            trace: false,
        }
    }
}

impl Scenario {
    /// Parses a scenario file's text.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Toml(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// The scenario as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Start of the chaos phase.
    pub fn chaos_start(&self) -> Duration {
        self.warmup.0
    }

    /// Start of the quiet phase.
    pub fn quiet_start(&self) -> Duration {
        self.duration.0.saturating_sub(self.quiet.0).max(self.warmup.0)
    }

    /// Checks sizes, phases and the protocol configuration.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        if self.members == 0 || self.members > 1_000_000 {
            return Err(ScenarioError::Value {
                field: "members",
                value: self.members.to_string(),
                reason: "between 1 and 1000000",
            });
        }
        if self.warmup.0 + self.quiet.0 > self.duration.0 {
            return Err(ScenarioError::Value {
                field: "duration",
                value: self.duration.to_string(),
                reason: "must cover warmup + quiet",
            });
        }
        for st in &self.starve {
            if st.every.0.is_zero() || st.run.0 >= st.every.0 {
                return Err(ScenarioError::Value {
                    field: "starve",
                    value: format!("run={},every={}", st.run, st.every),
                    reason: "run must be shorter than every",
                });
            }
        }
        self.protocol_config()?;
        Ok(())
    }

    /// The protocol configuration: preset, scaled for the size, then overrides.
    pub fn protocol_config(&self) -> Result<Config, ScenarioError> {
        let mut c = self.preset.config();
        if self.scale_config {
            c = c.scaled_for(self.members);
        }
        for (k, v) in &self.config {
            apply_override(&mut c, k, v)?;
        }
        // A shorter period than the preset's timeout allows: scale the timeout
        // with it unless it was set too.
        if !self.config.contains_key("probe_timeout_max") && c.probe_timeout_max >= c.probe_interval {
            c.probe_timeout_max = c.probe_interval / 2;
        }
        if !self.config.contains_key("probe_timeout_min") && c.probe_timeout_min > c.probe_timeout_max {
            c.probe_timeout_min = c.probe_timeout_max;
        }
        c.validate().map_err(ScenarioError::Config)?;
        Ok(c)
    }

    /// The default latency: the scenario's, or the preset's.
    pub fn latency(&self) -> Latency {
        self.network.latency.clone().unwrap_or_else(|| self.preset.latency())
    }
}

/// Sets one protocol field by name from text.
pub fn apply_override(c: &mut Config, key: &str, value: &str) -> Result<(), ScenarioError> {
    let bad = |reason: &'static str| ScenarioError::Value {
        field: "config",
        value: format!("{key}={value}"),
        reason,
    };
    let dur = || parse_duration(value).map_err(|_| bad("a duration, like 500ms"));
    let int = || value.trim().parse::<u64>().map_err(|_| bad("a whole number"));
    let float = || value.trim().parse::<f64>().map_err(|_| bad("a number"));
    let small = |v: u64| u32::try_from(v).map_err(|_| bad("too large"));
    match key {
        "probe_interval" => c.probe_interval = dur()?,
        "probe_timeout_min" => c.probe_timeout_min = dur()?,
        "probe_timeout_max" => c.probe_timeout_max = dur()?,
        "rtt_deviation_mult" => c.rtt_deviation_mult = small(int()?)?,
        "indirect_checks" => c.indirect_checks = int()? as usize,
        "tcp_fallback" => c.tcp_fallback = value.trim().parse().map_err(|_| bad("true or false"))?,
        "gossip_interval" => c.gossip_interval = dur()?,
        "gossip_fanout" => c.gossip_fanout = int()? as usize,
        "retransmit_mult" => c.retransmit_mult = small(int()?)?,
        "suspicion_min_mult" => c.suspicion_min_mult = float()?,
        "suspicion_max_mult" => c.suspicion_max_mult = float()?,
        "suspicion_confirmations" => c.suspicion_confirmations = small(int()?)?,
        "max_local_health" => c.max_local_health = small(int()?)?,
        "push_pull_interval" => c.push_pull_interval = dur()?,
        "reconnect_interval" => c.reconnect_interval = dur()?,
        "dead_retention" => c.dead_retention = dur()?,
        "max_packet_size" => c.max_packet_size = int()? as usize,
        "max_stream_size" => c.max_stream_size = int()? as usize,
        "phi_window" => c.phi_window = int()? as usize,
        "phi_threshold" => c.phi_threshold = Some(float()?),
        "pause_tolerance" => c.pause_tolerance = dur()?,
        "watch_count" => c.watch_count = int()? as usize,
        _ => return Err(ScenarioError::UnknownConfig(key.to_owned())),
    }
    Ok(())
}

/// The protocol fields [`apply_override`] knows, with their values in `c`, as TOML.
pub fn config_toml(c: &Config) -> String {
    let d = |d: Duration| format!("\"{}\"", humantime::format_duration(d));
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(k);
        out.push_str(" = ");
        out.push_str(&v);
        out.push('\n');
    };
    line("probe_interval", d(c.probe_interval));
    line("probe_timeout_min", d(c.probe_timeout_min));
    line("probe_timeout_max", d(c.probe_timeout_max));
    line("indirect_checks", c.indirect_checks.to_string());
    line("gossip_interval", d(c.gossip_interval));
    line("gossip_fanout", c.gossip_fanout.to_string());
    line("retransmit_mult", c.retransmit_mult.to_string());
    line("suspicion_min_mult", format!("{:?}", c.suspicion_min_mult));
    line("suspicion_max_mult", format!("{:?}", c.suspicion_max_mult));
    line("push_pull_interval", d(c.push_pull_interval));
    line("pause_tolerance", d(c.pause_tolerance));
    line("watch_count", c.watch_count.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_config_keys_are_refused() {
        assert!(Scenario::from_toml("membres = 3").is_err());
        let e = Scenario::from_toml("[config]\nprobe_intervall = \"1s\"").unwrap_err();
        assert!(e.to_string().contains("probe_intervall"), "{e}");
        let s = Scenario::from_toml("members = 5\nduration = \"60s\"\n[config]\nprobe_interval = \"500ms\"")
            .unwrap();
        assert_eq!(s.protocol_config().unwrap().probe_interval, Duration::from_millis(500));
        assert!(s.to_toml().contains("members = 5"));
    }
}
