//! `vigil-chaos bench`: the idle footprint of real agents. N agents
//! (encrypted, `lan` preset), each in its own namespace on the lab's bridge,
//! join, converge and settle; then, over a window in which the harness sends
//! them nothing, each member's CPU time, resident memory and the bytes its
//! interface transmitted are measured:
//!
//! - **CPU**: utime + stime from `/proc/PID/stat` (all threads, dead ones
//!   included), in clock ticks, as a share of one core over the window;
//! - **RSS**: `VmRSS` (and its anonymous / file split) from `/proc/PID/status`
//!   at the end of the window;
//! - **bytes sent**: the transmit bytes of the member's `eth0` from
//!   `/proc/PID/net/dev` (the same counter as
//!   `/sys/class/net/eth0/statistics/tx_bytes` inside its namespace): whole
//!   frames, Ethernet, IP and UDP/TCP headers included;
//! - **by kind**: the agent's own `vigil_sent_bytes_total{kind}` (envelope
//!   included, IP/UDP headers not), read just before and just after the window.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::{self, Cluster, Preset};
use crate::error::{Error, Result};

/// How the benchmark runs.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Agents.
    pub members: usize,
    /// The measured window.
    pub window: Duration,
    /// Idle time between convergence and the window.
    pub settle: Duration,
    /// The `vigil` binary.
    pub bin: PathBuf,
    /// Print one line per member too.
    pub per_member: bool,
}

/// One member's figures over the window.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Member name.
    pub name: String,
    /// CPU time as a percentage of one core.
    pub cpu_pct: f64,
    /// CPU clock ticks over the window.
    pub ticks: u64,
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Anonymous resident memory, KiB.
    pub rss_anon_kib: u64,
    /// File-backed resident memory (code and read-only data), KiB.
    pub rss_file_kib: u64,
    /// Threads at the end of the window.
    pub threads: u64,
    /// Bytes its interface transmitted per second.
    pub tx_bytes_per_s: f64,
    /// Frames its interface transmitted per second.
    pub tx_packets_per_s: f64,
    /// What the agent counted as sent per second, by message kind.
    pub by_kind: BTreeMap<String, f64>,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Agents.
    pub members: usize,
    /// Convergence time after the last agent started.
    pub converged: Duration,
    /// The measured window (actual length).
    pub window: Duration,
    /// Per member.
    pub samples: Vec<Sample>,
}

/// Counters read at one instant.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    ticks: u64,
    tx_bytes: u64,
    tx_packets: u64,
}

/// Starts the cluster, waits for convergence, settles, measures.
pub fn run(opts: &BenchOptions) -> Result<BenchReport> {
    if opts.members < 2 {
        return Err(Error::Environment(format!("bench needs at least 2 members, got {}", opts.members)));
    }
    let mut c = cluster::start(opts.members, Preset::Lan, &opts.bin)?;
    let converged = c.wait_converged(Duration::from_secs(60)).inspect_err(|_| {
        eprintln!("vigil-chaos: cluster did not converge; m0's log:\n{}", c.log_tail(0, 30));
    })?;
    eprintln!(
        "vigil-chaos: {} agents converged in {:.1} s; settling {} s",
        opts.members,
        converged.as_secs_f64(),
        opts.settle.as_secs()
    );
    crate::signal::sleep(opts.settle)?;
    let pids = pids(&c)?;
    let kinds_before = sent_by_kind(&c);
    let before = read_all(&pids)?;
    let t0 = Instant::now();
    eprintln!("vigil-chaos: measuring for {} s", opts.window.as_secs());
    crate::signal::sleep(opts.window)?;
    let after = read_all(&pids)?;
    let window = t0.elapsed();
    let kinds_after = sent_by_kind(&c);
    let tck = clock_ticks_per_second();
    let secs = window.as_secs_f64();
    let mut samples = Vec::new();
    for (i, &pid) in pids.iter().enumerate() {
        let (b, a) = (before[i], after[i]);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| status_kib(&status, name);
        let ticks = a.ticks.saturating_sub(b.ticks);
        let mut by_kind = BTreeMap::new();
        if let (Some(kb), Some(ka)) = (kinds_before.get(i).and_then(Option::as_ref), kinds_after[i].as_ref())
        {
            for (k, v) in ka {
                let d = v - kb.get(k).copied().unwrap_or(0.0);
                if d > 0.0 {
                    by_kind.insert(k.clone(), d / secs);
                }
            }
        }
        samples.push(Sample {
            name: c.name(i),
            cpu_pct: ticks as f64 / tck / secs * 100.0,
            ticks,
            rss_kib: field("VmRSS:"),
            rss_anon_kib: field("RssAnon:"),
            rss_file_kib: field("RssFile:"),
            threads: field("Threads:"),
            tx_bytes_per_s: a.tx_bytes.saturating_sub(b.tx_bytes) as f64 / secs,
            tx_packets_per_s: a.tx_packets.saturating_sub(b.tx_packets) as f64 / secs,
            by_kind,
        });
    }
    // Every agent must still run: one that died would make the figures lie.
    for i in 0..c.len() {
        if !c.is_running(i) {
            return Err(Error::Assertion(format!(
                "{} exited during the window; its log:\n{}",
                c.name(i),
                c.log_tail(i, 20)
            )));
        }
    }
    Ok(BenchReport { members: opts.members, converged, window, samples })
}

fn pids(c: &Cluster) -> Result<Vec<u32>> {
    (0..c.len())
        .map(|i| c.pid(i).ok_or_else(|| Error::Assertion(format!("{} is not running", c.name(i)))))
        .collect()
}

fn read_all(pids: &[u32]) -> Result<Vec<Counters>> {
    pids.iter().map(|&p| read(p)).collect()
}

fn read(pid: u32) -> Result<Counters> {
    let io = |what: &str| {
        let what = format!("reading /proc/{pid}/{what}");
        move |source| Error::Io { context: what, source }
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(io("stat"))?;
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).map_err(io("net/dev"))?;
    let ticks = stat_ticks(&stat)
        .ok_or_else(|| Error::Assertion(format!("/proc/{pid}/stat: cannot parse {stat:?}")))?;
    let (tx_bytes, tx_packets) = net_dev_tx(&dev, "eth0")
        .ok_or_else(|| Error::Assertion(format!("/proc/{pid}/net/dev has no eth0: {dev:?}")))?;
    Ok(Counters { ticks, tx_bytes, tx_packets })
}

/// utime + stime from a `/proc/PID/stat` line (fields 14 and 15; the command
/// name in parentheses may hold spaces).
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) is index 11.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Transmit bytes and packets of interface `dev` from `/proc/net/dev` text.
fn net_dev_tx(text: &str, dev: &str) -> Option<(u64, u64)> {
    let line = text.lines().find_map(|l| l.trim_start().strip_prefix(dev)?.strip_prefix(':'))?;
    let f: Vec<u64> = line.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
    Some((*f.get(8)?, *f.get(9)?))
}

/// A `Name:   123 kB` field of `/proc/PID/status` (a plain number for `Threads:`).
fn status_kib(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// Each agent's `vigil_sent_bytes_total` by kind (None where it did not answer).
fn sent_by_kind(c: &Cluster) -> Vec<Option<BTreeMap<String, f64>>> {
    (0..c.len())
        .map(|i| {
            let base = format!("http://{}", c.http(i));
            let text = c
                .place()
                .in_hub(Duration::from_secs(5), move || vigil_agent::client::get_text(&base, "/metrics"))
                .ok()?
                .ok()?;
            Some(parse_sent(&text))
        })
        .collect()
}

/// `vigil_sent_bytes_total{kind="K"} V` lines.
fn parse_sent(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("vigil_sent_bytes_total{kind=\"")?;
            let (kind, rest) = rest.split_once('"')?;
            let value = rest.rsplit(' ').next()?.parse().ok()?;
            Some((kind.to_string(), value))
        })
        .collect()
}

/// Median, minimum and maximum.
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    Some((median, v[0], v[n - 1]))
}

impl BenchReport {
    /// The figures as text: a summary (median, min–max over members, and
    /// the mean CPU, finer than one member's ticks), and optionally one
    /// line per member.
    pub fn render(&self, per_member: bool) -> String {
        let mut s = String::new();
        let secs = self.window.as_secs_f64();
        let _ = writeln!(
            s,
            "{} agents (encrypted, lan preset), converged in {:.1} s, window {:.0} s",
            self.members,
            self.converged.as_secs_f64(),
            secs
        );
        let col = |f: &dyn Fn(&Sample) -> f64| {
            let v: Vec<f64> = self.samples.iter().map(f).collect();
            spread(&v).unwrap_or((0.0, 0.0, 0.0))
        };
        let cpu = col(&|x| x.cpu_pct);
        let mean_cpu = self.samples.iter().map(|x| x.cpu_pct).sum::<f64>() / self.samples.len().max(1) as f64;
        let rss = col(&|x| x.rss_kib as f64 / 1024.0);
        let anon = col(&|x| x.rss_anon_kib as f64 / 1024.0);
        let file = col(&|x| x.rss_file_kib as f64 / 1024.0);
        let tx = col(&|x| x.tx_bytes_per_s);
        let pk = col(&|x| x.tx_packets_per_s);
        let th = col(&|x| x.threads as f64);
        let _ = writeln!(s, "per member: median (min–max)");
        let _ = writeln!(
            s,
            "  CPU, % of one core     {:.3} ({:.3}–{:.3}); mean {:.4}",
            cpu.0, cpu.1, cpu.2, mean_cpu
        );
        let _ = writeln!(s, "  RSS                    {:.2} MiB ({:.2}–{:.2})", rss.0, rss.1, rss.2);
        let _ = writeln!(s, "    anonymous            {:.2} MiB ({:.2}–{:.2})", anon.0, anon.1, anon.2);
        let _ = writeln!(s, "    file (code, data)    {:.2} MiB ({:.2}–{:.2})", file.0, file.1, file.2);
        let _ = writeln!(s, "  threads                {:.0} ({:.0}–{:.0})", th.0, th.1, th.2);
        let _ = writeln!(s, "  sent on eth0, B/s      {:.1} ({:.1}–{:.1})", tx.0, tx.1, tx.2);
        let _ = writeln!(s, "  frames sent /s         {:.2} ({:.2}–{:.2})", pk.0, pk.1, pk.2);
        let mut kinds: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for x in &self.samples {
            for k in x.by_kind.keys() {
                kinds.entry(k).or_default();
            }
        }
        for (k, v) in &mut kinds {
            v.extend(self.samples.iter().map(|x| x.by_kind.get(*k).copied().unwrap_or(0.0)));
        }
        if !kinds.is_empty() {
            let _ =
                writeln!(s, "  counted by the agent (envelope, no IP/UDP headers), B/s, mean over members:");
            for (k, v) in &kinds {
                let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
                let _ = writeln!(s, "    {k:<20} {mean:.1}");
            }
        }
        if per_member {
            let _ = writeln!(s, "\nmember  cpu%    ticks  rss_MiB  anon_MiB  threads  tx_B/s  frames/s");
            for x in &self.samples {
                let _ = writeln!(
                    s,
                    "{:<7} {:.3}  {:>5}  {:>7.2}  {:>8.2}  {:>7}  {:>6.1}  {:>8.2}",
                    x.name,
                    x.cpu_pct,
                    x.ticks,
                    x.rss_kib as f64 / 1024.0,
                    x.rss_anon_kib as f64 / 1024.0,
                    x.threads,
                    x.tx_bytes_per_s,
                    x.tx_packets_per_s
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_and_metrics() {
        let stat = "1234 (vigil agent) S 1 1234 1234 0 -1 4194560 500 0 0 0 17 5 0 0 20 0 3 0 100 1000 200";
        assert_eq!(stat_ticks(stat), Some(22));
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
                   eth0:  123456     789    0    0    0     0          0         0    98765     432    0    0    0     0       0          0\n";
        assert_eq!(net_dev_tx(dev, "eth0"), Some((98765, 432)));
        assert_eq!(net_dev_tx(dev, "eth1"), None);
        assert_eq!(status_kib("Name:\tvigil\nVmRSS:\t    4096 kB\nThreads:\t2\n", "VmRSS:"), 4096);
        assert_eq!(status_kib("Threads:\t2\n", "Threads:"), 2);
        let m = parse_sent(
            "# TYPE vigil_sent_bytes_total counter\nvigil_sent_bytes_total{kind=\"ping\"} 90\nvigil_sent_bytes_total{kind=\"ack\"} 12.5\nvigil_sent_packets_total{kind=\"ping\"} 3\n",
        );
        assert_eq!(m.get("ping"), Some(&90.0));
        assert_eq!(m.get("ack"), Some(&12.5));
        assert_eq!(m.len(), 2);
        assert_eq!(spread(&[3.0, 1.0, 2.0, 10.0]), Some((2.5, 1.0, 10.0)));
        assert_eq!(spread(&[]), None);
    }
}
