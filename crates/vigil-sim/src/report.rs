//! The figures of one run: serializable to JSON, printable as a table.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use vigil_proto::codec::MESSAGE_KINDS;

use crate::by_class::ByClass;
use crate::invariants::Violation;
use crate::observe::{ENCRYPTION_OVERHEAD, FalseClass, Observer};
use crate::quantiles::Quantiles;

/// Crash detection.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Detection {
    /// Crashes.
    pub crashes: usize,
    /// Crashes not detected by every member that stayed up until the member
    /// restarted (or the run ended).
    pub undetected: usize,
    /// Crash to the first member's `failed` event.
    pub first: Quantiles,
    /// Crash to the last live member's `failed` event.
    pub full: Quantiles,
    /// Lower bound on the mean first detection: e/(e−1) protocol periods to
    /// the first probe, plus the probe timeout floor, plus the shortest suspicion.
    pub bound_first_s: f64,
    /// Lower bound on full detection: the first-detection bound plus
    /// log_{f+1}(n) gossip hops of network latency (`dead` is gossiped at once).
    pub bound_full_s: f64,
    /// Median first detection / its bound.
    pub ratio_first: Option<f64>,
    /// Median full detection / its bound.
    pub ratio_full: Option<f64>,
    /// Every first-detection sample, seconds (for the CDF).
    pub first_samples: Vec<f64>,
    /// Every full-detection sample, seconds.
    pub full_samples: Vec<f64>,
}

/// Live members declared failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FalseFailures {
    /// All of them (by any observer; one per observer and declaration).
    pub total: usize,
    /// Of members that never paused and were connected: the accuracy target.
    pub never_paused: usize,
    /// Of members frozen or slow at the time or shortly before.
    pub paused: usize,
    /// Across a partition or blocked link.
    pub partitioned: usize,
    /// Of the `paused` ones: of members frozen once for less than
    /// `pause_tolerance` (the accuracy target for pauses).
    pub paused_below_tolerance: usize,
    /// Time until the observer saw the member alive again.
    pub cleared: Quantiles,
    /// Never seen alive again by the end.
    pub uncleared: usize,
    /// `suspected` events about members that never paused and were connected
    /// (refuted, normally: a cost, not an error).
    pub false_suspicions: u64,
    /// (time s, class) of each, for the timeline chart.
    pub timeline: Vec<(f64, FalseClass)>,
}

/// Traffic of one message kind, whole cluster, measurement window.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KindTraffic {
    /// Messages.
    pub messages: u64,
    /// Bytes on the wire (with encryption overhead and stream framing).
    pub bytes: u64,
}

/// Traffic sent, per member, after the warm-up.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Traffic {
    /// Mean over members of bytes sent per second.
    pub bytes_per_member_per_sec_mean: f64,
    /// Highest member's bytes per second.
    pub bytes_per_member_per_sec_max: f64,
    /// Mean messages per member per second.
    pub msgs_per_member_per_sec_mean: f64,
    /// Highest member's messages per second.
    pub msgs_per_member_per_sec_max: f64,
    /// Bytes added per datagram or stream message for encryption (counted above).
    pub encryption_overhead: usize,
    /// By message kind.
    pub by_kind: BTreeMap<String, KindTraffic>,
}

/// Joins into the running cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Joins {
    /// Joins.
    pub count: usize,
    /// Not seen by every live member by the end (the new member still up).
    pub unconverged: usize,
    /// The new member left or crashed before every live member held it.
    pub abandoned: usize,
    /// Join to every live member holding the new member.
    pub convergence: Quantiles,
}

/// How fast a metadata update spreads.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Dissemination {
    /// Updates.
    pub updates: usize,
    /// To 50% of the other live members.
    pub reach_50: Quantiles,
    /// To 99%.
    pub reach_99: Quantiles,
    /// To all.
    pub reach_100: Quantiles,
    /// Lower bound: ceil(log_{f+1}(n)) gossip rounds of `gossip_interval`.
    pub bound_s: f64,
    /// Median time to all / bound.
    pub ratio: Option<f64>,
}

/// Memory used by the simulated members.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memory {
    /// Resident set before the members were built, MiB.
    pub rss_before_mib: f64,
    /// After the warm start, MiB.
    pub rss_started_mib: f64,
    /// At the end, MiB.
    pub rss_end_mib: f64,
    /// (end − before) / members, bytes: one member's table of `members` entries.
    pub bytes_per_member: f64,
}

/// Everything one run measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Initial members.
    pub members: usize,
    /// Members at the end (started ever).
    pub members_total: usize,
    /// Simulated seconds.
    pub simulated_s: f64,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Events processed (deliveries, wake-ups, actions).
    pub events_processed: u64,
    /// Datagram loss.
    pub loss: f64,
    /// Latency distribution.
    pub latency: String,
    /// The protocol configuration, as TOML.
    pub config: String,
    /// Crash detection: every member stopped (process exits and hosts down).
    pub detection: Detection,
    /// Detection by failure class.
    pub by_class: ByClass,
    /// False failures.
    pub false_failures: FalseFailures,
    /// Traffic.
    pub traffic: Traffic,
    /// Joins.
    pub joins: Joins,
    /// Dissemination of updates.
    pub dissemination: Dissemination,
    /// Memory.
    pub memory: Memory,
    /// Packets a member refused to decode (should be 0).
    pub decode_errors: u64,
    /// When the quiet phase's invariants first held (seconds after it started).
    pub quiet_converged_after_s: Option<f64>,
    /// Invariant violations (the first few) and how many in all.
    pub violations: Vec<Violation>,
    /// Violations in all.
    pub violation_count: u64,
    /// A command that replays this run (set when an invariant failed).
    pub repro: Option<String>,
    /// Digest of the event trace: equal seeds give equal digests.
    pub trace_digest: String,
    /// The event trace, when asked for (not in JSON).
    #[serde(skip)]
    pub trace: Option<String>,
}

impl Report {
    /// True when no invariant failed.
    pub fn passed(&self) -> bool {
        self.violation_count == 0
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

pub(crate) fn traffic(obs: &Observer) -> Traffic {
    let total_bytes: u64 = obs.bytes.iter().sum();
    let total_msgs: u64 = obs.msgs.iter().sum();
    let total_up: u64 = obs.up_time.iter().sum();
    let longest = obs.up_time.iter().copied().max().unwrap_or(0);
    let per_sec = |v: u64, t: u64| if t == 0 { 0.0 } else { v as f64 / (t as f64 / 1e6) };
    let mut max_b: f64 = 0.0;
    let mut max_m: f64 = 0.0;
    for m in 0..obs.bytes.len() {
        // Members up for at least half the window, so a late joiner's burst does not dominate.
        if obs.up_time[m] * 2 >= longest && obs.up_time[m] > 0 {
            max_b = max_b.max(per_sec(obs.bytes[m], obs.up_time[m]));
            max_m = max_m.max(per_sec(obs.msgs[m], obs.up_time[m]));
        }
    }
    let mut by_kind = BTreeMap::new();
    for (i, name) in MESSAGE_KINDS.iter().chain(std::iter::once(&"other")).enumerate() {
        if obs.kind_msgs[i] > 0 {
            by_kind.insert(
                (*name).to_owned(),
                KindTraffic { messages: obs.kind_msgs[i], bytes: obs.kind_bytes[i] },
            );
        }
    }
    Traffic {
        bytes_per_member_per_sec_mean: per_sec(total_bytes, total_up),
        bytes_per_member_per_sec_max: max_b,
        msgs_per_member_per_sec_mean: per_sec(total_msgs, total_up),
        msgs_per_member_per_sec_max: max_m,
        encryption_overhead: ENCRYPTION_OVERHEAD,
        by_kind,
    }
}

pub(crate) fn false_failures(obs: &Observer) -> FalseFailures {
    let ff = &obs.false_failures;
    let count = |c: FalseClass| ff.iter().filter(|f| f.class == c).count();
    FalseFailures {
        total: ff.len(),
        never_paused: count(FalseClass::NeverPaused),
        paused: count(FalseClass::Paused),
        partitioned: count(FalseClass::Partitioned),
        paused_below_tolerance: obs.paused_below_tolerance,
        cleared: Quantiles::of(ff.iter().filter_map(|f| f.cleared_after).collect()),
        uncleared: ff.iter().filter(|f| f.cleared_after.is_none()).count(),
        false_suspicions: obs.false_suspicions,
        timeline: ff.iter().map(|f| (f.at as f64 / 1e6, f.class)).collect(),
    }
}

pub(crate) fn detection(obs: &Observer, bound_first_s: f64, bound_full_s: f64) -> Detection {
    let mut first = Vec::new();
    let mut full = Vec::new();
    let mut undetected = 0;
    for c in &obs.crashes {
        match c.result {
            Some((f, fl)) => {
                if let Some(f) = f {
                    first.push(f);
                }
                match fl {
                    Some(fl) if f.is_some() => full.push(fl),
                    _ => undetected += 1,
                }
            }
            None => undetected += 1,
        }
    }
    let secs = |v: &[u64]| v.iter().map(|&x| x as f64 / 1e6).collect::<Vec<_>>();
    let (first_samples, full_samples) = (secs(&first), secs(&full));
    let first = Quantiles::of(first);
    let full = Quantiles::of(full);
    Detection {
        crashes: obs.crashes.len(),
        undetected,
        ratio_first: first.median.map(|m| m / bound_first_s),
        ratio_full: full.median.map(|m| m / bound_full_s),
        first,
        full,
        bound_first_s,
        bound_full_s,
        first_samples,
        full_samples,
    }
}

pub(crate) fn joins(obs: &Observer) -> Joins {
    Joins {
        count: obs.joins.len(),
        unconverged: obs.joins.iter().filter(|j| j.done_after.is_none() && !j.abandoned).count(),
        abandoned: obs.joins.iter().filter(|j| j.abandoned).count(),
        convergence: Quantiles::of(obs.joins.iter().filter_map(|j| j.done_after).collect()),
    }
}

pub(crate) fn dissemination(obs: &Observer, bound_s: f64) -> Dissemination {
    let q = |i: usize| Quantiles::of(obs.updates.iter().filter_map(|u| u.reached[i]).collect());
    let reach_100 = q(2);
    Dissemination {
        updates: obs.updates.len(),
        reach_50: q(0),
        reach_99: q(1),
        ratio: reach_100.median.map(|m| m / bound_s),
        reach_100,
        bound_s,
    }
}

fn q(q: &Quantiles) -> String {
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}s"));
    format!("median {} p99 {} max {} (n={})", f(q.median), f(q.p99), f(q.max), q.count)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ratio = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        writeln!(f, "vigil-sim: {} (seed {})", self.scenario, self.seed)?;
        let rows: Vec<(&str, String)> = vec![
            ("members", format!("{} initial, {} started in all", self.members, self.members_total)),
            (
                "simulated / wall",
                format!(
                    "{:.0} s / {:.1} s ({} events)",
                    self.simulated_s, self.wall_s, self.events_processed
                ),
            ),
            ("network", format!("latency {}, datagram loss {:.2}%", self.latency, self.loss * 100.0)),
            (
                "crashes",
                format!(
                    "{} ({} not detected by every live member)",
                    self.detection.crashes, self.detection.undetected
                ),
            ),
            ("first detection", q(&self.detection.first)),
            ("full detection", q(&self.detection.full)),
            (
                "  vs bound",
                format!(
                    "first {} of {:.2}s, full {} of {:.2}s",
                    ratio(self.detection.ratio_first),
                    self.detection.bound_first_s,
                    ratio(self.detection.ratio_full),
                    self.detection.bound_full_s
                ),
            ),
            (
                "false failures",
                format!(
                    "{} never-paused, {} paused ({} below tolerance), {} partitioned; {} false suspicions",
                    self.false_failures.never_paused,
                    self.false_failures.paused,
                    self.false_failures.paused_below_tolerance,
                    self.false_failures.partitioned,
                    self.false_failures.false_suspicions
                ),
            ),
            (
                "  cleared after",
                format!("{}; {} uncleared", q(&self.false_failures.cleared), self.false_failures.uncleared),
            ),
            (
                "bytes/member/s",
                format!(
                    "mean {:.0}, max {:.0} (incl. {} B encryption overhead per message)",
                    self.traffic.bytes_per_member_per_sec_mean,
                    self.traffic.bytes_per_member_per_sec_max,
                    self.traffic.encryption_overhead
                ),
            ),
            (
                "msgs/member/s",
                format!(
                    "mean {:.2}, max {:.2}",
                    self.traffic.msgs_per_member_per_sec_mean, self.traffic.msgs_per_member_per_sec_max
                ),
            ),
            (
                "join convergence",
                format!(
                    "{}; {} unconverged, {} left or crashed before converging",
                    q(&self.joins.convergence),
                    self.joins.unconverged,
                    self.joins.abandoned
                ),
            ),
            ("update to 50%", q(&self.dissemination.reach_50)),
            ("update to 99%", q(&self.dissemination.reach_99)),
            (
                "update to 100%",
                format!(
                    "{} ({} of bound {:.2}s)",
                    q(&self.dissemination.reach_100),
                    ratio(self.dissemination.ratio),
                    self.dissemination.bound_s
                ),
            ),
            (
                "memory",
                format!(
                    "{:.0} MiB resident at end, {:.0} KiB per member",
                    self.memory.rss_end_mib,
                    self.memory.bytes_per_member / 1024.0
                ),
            ),
            (
                "quiet phase",
                self.quiet_converged_after_s.map_or_else(
                    || "views did not converge".to_owned(),
                    |s| format!("views converged after {s:.1} s"),
                ),
            ),
            (
                "invariants",
                if self.passed() {
                    "all held".to_owned()
                } else {
                    format!("{} violations", self.violation_count)
                },
            ),
            ("trace digest", self.trace_digest.clone()),
        ];
        let by_class = self.by_class.rows();
        let at = rows.iter().position(|(k, _)| *k == "false failures").unwrap_or(rows.len());
        let rows = rows[..at].iter().cloned().chain(by_class).chain(rows[at..].iter().cloned());
        for (k, v) in rows {
            writeln!(f, "  {k:<18} {v}")?;
        }
        if !self.traffic.by_kind.is_empty() {
            let secs = (self.simulated_s).max(1e-9);
            let parts: Vec<String> = self
                .traffic
                .by_kind
                .iter()
                .map(|(k, t)| format!("{k} {:.0}", t.bytes as f64 / secs))
                .collect();
            writeln!(f, "  {:<18} {} (cluster bytes/s)", "by kind", parts.join(", "))?;
        }
        for v in &self.violations {
            writeln!(f, "  VIOLATION {} at {:.3}s: {}", v.invariant, v.at_s, v.detail)?;
        }
        if let Some(r) = &self.repro {
            writeln!(f, "  replay: {r}")?;
        }
        Ok(())
    }
}
