//! Command-line flags, shared by the `vigil-sim` binary and (later) the agent's
//! `vigil sim` and `vigil tune` subcommands: flatten [`SimArgs`] or
//! [`TuneArgs`] into a clap command. The flag names are a contract.

use std::path::PathBuf;

use clap::Args;

use crate::error::ScenarioError;
use crate::scenario::{
    Churn, CrashSpec, Crashes, FreezeSpec, MassFailure, PartitionSpec, Preset, Scenario, SlowSpec, Start,
    StarveSpec,
};
use crate::select::Select;
use crate::units::{Dur, Frac};

/// Flags of a simulation run. Flags override the scenario file's values.
#[derive(Debug, Clone, Default, Args)]
pub struct SimArgs {
    /// Scenario file (TOML); flags override its values.
    #[arg(long, value_name = "FILE.toml")]
    pub scenario: Option<PathBuf>,
    /// Initial cluster size.
    #[arg(long)]
    pub members: Option<usize>,
    /// Simulated time, e.g. 5m.
    #[arg(long)]
    pub duration: Option<String>,
    /// Datagram loss on every link, e.g. 1% or 0.01.
    #[arg(long)]
    pub loss: Option<String>,
    /// One-way latency: 0.3ms, uniform:0.1ms..0.5ms, lognormal:0.25ms,0.4, pareto:0.2ms,2.5.
    #[arg(long)]
    pub latency: Option<String>,
    /// Process exits (the host stays up: its kernel refuses connections,
    /// closes the streams the process held and answers datagrams with ICMP
    /// port unreachable): N (N random exit-and-restarts spread over the run)
    /// or count=N,restart_after=30s, or at=60s,members=3[,restart_after=10s].
    /// Repeatable. (Before process exits were modelled, a crash was a silent
    /// host: that is now --host-down.)
    #[arg(long, value_name = "SPEC")]
    pub crash: Vec<String>,
    /// Hosts going down (silence: nothing to or from the member arrives,
    /// nothing comes back), same forms as --crash. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub host_down: Vec<String>,
    /// Freezes (stop signal, GC pause: nothing processed, everything
    /// queues): DURATION (one random member for that long every 60 s) or
    /// duration=5s,every=60s,members=random:1,at=20s. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub freeze: Vec<String>,
    /// CPU starvation (a cgroup quota): members=1,at=30s,duration=60s,run=1ms,every=1s
    /// (the members run `run` of every `every` for `duration`; defaults: one
    /// random member, from the chaos phase, 60 s, 1 ms of every 1 s). Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub starve: Vec<String>,
    /// Partitions: SHARE (e.g. 50%: that share against the rest, 10 s into the
    /// chaos phase, healed 30 s later) or group=0%..30%,group=30%..60%,at=60s,heal_after=30s. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub partition: Vec<String>,
    /// Slow members: members=3,delay=300ms[,at=..,until=..]. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub slow: Vec<String>,
    /// Churn: joins=0.5,leaves=0.5 (per second).
    #[arg(long, value_name = "SPEC")]
    pub churn: Option<String>,
    /// Mass failure: fraction=10%,at=60s[,restart_after=30s]. Repeatable.
    #[arg(long, value_name = "SPEC")]
    pub mass_failure: Vec<String>,
    /// Protocol and network preset: lan, wan or local.
    #[arg(long)]
    pub preset: Option<String>,
    /// Protocol override, e.g. probe_interval=500ms. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// How the cluster starts: converged (default) or join.
    #[arg(long)]
    pub start: Option<String>,
    /// Fault-free phase at the start.
    #[arg(long)]
    pub warmup: Option<String>,
    /// Fault-free phase at the end, in which views must converge.
    #[arg(long)]
    pub quiet: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write charts (SVG and PNG) into this directory.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Write the event trace to this file.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Run the scenario at each of these sizes (comma-separated) and chart
    /// bytes per member per second against size.
    #[arg(long, value_name = "N,N,..", value_delimiter = ',')]
    pub sizes: Vec<usize>,
}

/// `key=value,key=value` pairs; a bare first value is returned under `""`.
fn pairs(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_owned(), v.trim().to_owned()),
            None => (String::new(), p.trim().to_owned()),
        })
        .collect()
}

fn unknown(flag: &'static str, key: &str) -> ScenarioError {
    ScenarioError::Value { field: flag, value: key.to_owned(), reason: "unknown key in this flag" }
}

impl SimArgs {
    /// The scenario: the file's (or the default), with the flags applied.
    pub fn scenario(&self) -> Result<Scenario, ScenarioError> {
        let mut s = match &self.scenario {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ScenarioError::Toml(format!("{}: {e}", path.display())))?;
                Scenario::from_toml(&text)?
            }
            None => Scenario::default(),
        };
        if let Some(m) = self.members {
            s.members = m;
        }
        if let Some(d) = &self.duration {
            s.duration = d.parse()?;
            // Keep the phases inside a short run.
            let d = s.duration.0;
            if s.warmup.0 + s.quiet.0 > d {
                s.warmup = Dur(d / 10);
                s.quiet = Dur(d / 4);
            }
        }
        if let Some(l) = &self.loss {
            s.network.loss = l.parse()?;
        }
        if let Some(l) = &self.latency {
            s.network.latency = Some(l.parse()?);
        }
        if let Some(p) = &self.preset {
            s.preset = p.parse::<Preset>()?;
        }
        if let Some(seed) = self.seed {
            s.seed = seed;
        }
        if let Some(st) = &self.start {
            s.start = match st.as_str() {
                "converged" => Start::Converged,
                "join" => Start::Join,
                _ => {
                    return Err(ScenarioError::Value {
                        field: "start",
                        value: st.clone(),
                        reason: "converged or join",
                    });
                }
            };
        }
        if let Some(w) = &self.warmup {
            s.warmup = w.parse()?;
        }
        if let Some(q) = &self.quiet {
            s.quiet = q.parse()?;
        }
        for kv in &self.set {
            let (k, v) = kv.split_once('=').ok_or_else(|| ScenarioError::Value {
                field: "set",
                value: kv.clone(),
                reason: "KEY=VALUE",
            })?;
            s.config.insert(k.trim().to_owned(), v.trim().to_owned());
        }
        for spec in &self.crash {
            let chaos = s.chaos_start();
            parse_crash(&mut s.crashes, &mut s.crash, chaos, "crash", spec)?;
        }
        for spec in &self.host_down {
            let chaos = s.chaos_start();
            parse_crash(&mut s.host_downs, &mut s.host_down, chaos, "host-down", spec)?;
        }
        for spec in &self.starve {
            let mut st = StarveSpec::new(None);
            for (k, v) in pairs(spec) {
                match k.as_str() {
                    "members" => st.members = v.parse()?,
                    "at" => st.at = Some(v.parse()?),
                    "" | "duration" => st.duration = v.parse()?,
                    "run" => st.run = v.parse()?,
                    "every" => st.every = v.parse()?,
                    _ => return Err(unknown("starve", &k)),
                }
            }
            s.starve.push(st);
        }
        for spec in &self.freeze {
            let mut f = FreezeSpec {
                at: None,
                duration: Dur::secs(5),
                members: Select::Random(1),
                every: Some(Dur::secs(60)),
            };
            for (k, v) in pairs(spec) {
                match k.as_str() {
                    "" | "duration" => f.duration = v.parse()?,
                    "every" => f.every = Some(v.parse()?),
                    "members" => f.members = v.parse()?,
                    "at" => f.at = Some(v.parse()?),
                    _ => return Err(unknown("freeze", &k)),
                }
            }
            s.freeze.push(f);
        }
        for spec in &self.partition {
            let mut p = PartitionSpec {
                at: Dur(s.chaos_start() + std::time::Duration::from_secs(10)),
                groups: Vec::new(),
                heal_after: Some(Dur::secs(30)),
            };
            for (k, v) in pairs(spec) {
                match k.as_str() {
                    "" => p.groups.push(match v.parse::<Frac>() {
                        Ok(f) if v.ends_with('%') => Select::Share(0, (f.0 * 100.0).round() as u32),
                        _ => v.parse()?,
                    }),
                    "group" | "side" => p.groups.push(v.parse()?),
                    "at" => p.at = v.parse()?,
                    "heal_after" => p.heal_after = Some(v.parse()?),
                    _ => return Err(unknown("partition", &k)),
                }
            }
            s.partition.push(p);
        }
        for spec in &self.slow {
            let mut sl =
                SlowSpec { members: Select::Random(1), delay: Dur::millis(300), at: None, until: None };
            for (k, v) in pairs(spec) {
                match k.as_str() {
                    "members" => sl.members = v.parse()?,
                    "" | "delay" => sl.delay = v.parse()?,
                    "at" => sl.at = Some(v.parse()?),
                    "until" => sl.until = Some(v.parse()?),
                    _ => return Err(unknown("slow", &k)),
                }
            }
            s.slow.push(sl);
        }
        if let Some(spec) = &self.churn {
            let mut c = Churn { joins_per_sec: 0.0, leaves_per_sec: 0.0 };
            for (k, v) in pairs(spec) {
                let rate = v.parse::<f64>().map_err(|_| ScenarioError::Value {
                    field: "churn",
                    value: v.clone(),
                    reason: "a rate per second",
                })?;
                match k.as_str() {
                    "joins" => c.joins_per_sec = rate,
                    "leaves" => c.leaves_per_sec = rate,
                    _ => return Err(unknown("churn", &k)),
                }
            }
            s.churn = Some(c);
        }
        for spec in &self.mass_failure {
            let mut m = MassFailure { at: Dur(s.chaos_start()), fraction: Frac(0.1), restart_after: None };
            for (k, v) in pairs(spec) {
                match k.as_str() {
                    "" | "fraction" => m.fraction = v.parse()?,
                    "at" => m.at = v.parse()?,
                    "restart_after" => m.restart_after = Some(v.parse()?),
                    _ => return Err(unknown("mass-failure", &k)),
                }
            }
            s.mass_failure.push(m);
        }
        s.validate()?;
        Ok(s)
    }
}

/// A `--crash` or `--host-down` spec: into `spread` (a count) or `list`.
fn parse_crash(
    spread: &mut Option<Crashes>,
    list: &mut Vec<CrashSpec>,
    chaos_start: std::time::Duration,
    flag: &'static str,
    spec: &str,
) -> Result<(), ScenarioError> {
    let kv = pairs(spec);
    if let [(k, v)] = kv.as_slice()
        && k.is_empty()
    {
        let count = v.parse().map_err(|_| ScenarioError::Value {
            field: flag,
            value: v.clone(),
            reason: "a count, or key=value pairs",
        })?;
        *spread = Some(Crashes { count, restart_after: Dur::secs(30) });
        return Ok(());
    }
    if kv.iter().any(|(k, _)| k == "count") {
        let mut c = Crashes { count: 0, restart_after: Dur::secs(30) };
        for (k, v) in kv {
            match k.as_str() {
                "count" => {
                    c.count = v.parse().map_err(|_| ScenarioError::Value {
                        field: flag,
                        value: v.clone(),
                        reason: "a count",
                    })?
                }
                "restart_after" => c.restart_after = v.parse()?,
                _ => return Err(unknown(flag, &k)),
            }
        }
        *spread = Some(c);
        return Ok(());
    }
    let mut c = CrashSpec { at: Dur(chaos_start), members: Select::Random(1), restart_after: None };
    for (k, v) in kv {
        match k.as_str() {
            "at" => c.at = v.parse()?,
            "members" => c.members = v.parse()?,
            "restart_after" => c.restart_after = Some(v.parse()?),
            _ => return Err(unknown(flag, &k)),
        }
    }
    list.push(c);
    Ok(())
}

/// Flags of a QoS tuning search.
#[derive(Debug, Clone, Args)]
pub struct TuneArgs {
    /// Median full-detection time of a process exit (crash, kill) to reach, e.g. 3s.
    #[arg(long, default_value = "3s")]
    pub target_detection: String,
    /// Median full-detection time of a host going down (silence) to reach, e.g. 8s.
    #[arg(long, value_name = "DURATION")]
    pub target_host_down: Option<String>,
    /// The longest pause (stop signal, GC, swap) a member may take without
    /// being declared failed: pause_tolerance is sized from it (plus one
    /// protocol period) unless set with --set.
    #[arg(long, value_name = "DURATION", default_value = "3s")]
    pub tolerate_pause: String,
    /// Protocol override kept in every candidate, e.g. watch_count=3. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Most false failures per day allowed (extrapolated from the runs).
    #[arg(long, default_value_t = 0.1)]
    pub max_false_failures_per_day: f64,
    /// Datagram loss, e.g. 1%.
    #[arg(long, default_value = "1%")]
    pub loss: String,
    /// Cluster size.
    #[arg(long, default_value_t = 500)]
    pub members: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Protocol preset to start from.
    #[arg(long, default_value = "lan")]
    pub preset: String,
    /// Wall-clock budget for the search, e.g. 3m.
    #[arg(long, default_value = "3m")]
    pub budget: String,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}
