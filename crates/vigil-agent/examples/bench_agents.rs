//! Figures for docs/BENCHMARKS.md: real agents on loopback with the `lan`
//! preset. Run through `scripts/bench-agents.sh` (builds release first).
//!
//! Usage: `bench_agents PATH_TO_VIGIL [sizes=5,20] [kills=5] [idle_secs=30]`
//!
//! For each cluster size it prints: convergence time (first start until every
//! agent lists every agent alive), full-detection time of a SIGKILL (kill
//! until the last survivor emits `failed`, from the agents' own event
//! timestamps; median and maximum over the kills), CPU seconds per agent per
//! minute and RSS when idle (from /proc), and bytes sent per agent per second
//! (from `/metrics`).

use std::time::{Duration, Instant};

use vigil_agent::config::Preset;
use vigil_agent::events::unix_ms;
use vigil_agent::harness::{Cluster, Loopback};

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32, tck: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let t = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(14) + t(15)) / tck
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn sent_bytes(c: &Cluster, i: usize) -> f64 {
    let text = vigil_agent::client::get_text(&c.url(i), "/metrics").unwrap_or_default();
    vigil_agent::client::metric_sum("vigil_sent_bytes_total", &text)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn run(exe: &str, n: usize, kills: usize, idle: u64) {
    let dir = std::env::temp_dir().join(format!("vigil-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut c = Cluster::new(exe, &dir, Preset::Lan, Loopback);
    let t0 = Instant::now();
    let seed = c.add_agent("b1", &[]).expect("start");
    for i in 2..=n {
        c.add_agent(&format!("b{i}"), &[seed]).expect("start");
    }
    let converge = c.wait_converged(Duration::from_secs(60)).ok().map(|_| t0.elapsed());
    println!("\n== {n} agents, lan preset");
    match converge {
        Some(d) => println!("convergence (first start to all-alive everywhere): {:.2} s", d.as_secs_f64()),
        None => {
            println!("did not converge within 60 s");
            return;
        }
    }

    // Idle: let push-pull and joins settle, then measure.
    std::thread::sleep(Duration::from_secs(5));
    let tck = clk_tck();
    let pids: Vec<u32> = (0..n).filter_map(|i| c.pid(i)).collect();
    let cpu0: Vec<f64> = pids.iter().map(|p| cpu_secs(*p, tck)).collect();
    let bytes0: Vec<f64> = (0..n).map(|i| sent_bytes(&c, i)).collect();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(idle));
    let secs = start.elapsed().as_secs_f64();
    let mut cpu: Vec<f64> =
        pids.iter().zip(&cpu0).map(|(p, c0)| (cpu_secs(*p, tck) - c0) / secs * 60.0).collect();
    let mut bps: Vec<f64> = (0..n).map(|i| (sent_bytes(&c, i) - bytes0[i]) / secs).collect();
    let mut rss: Vec<f64> = pids.iter().map(|p| rss_mib(*p)).collect();
    let max = |v: &[f64]| v.iter().copied().fold(f64::MIN, f64::max);
    println!(
        "idle over {secs:.0} s: CPU {:.3} s/agent/min median (max {:.3}) = {:.2}% of a core; RSS {:.1} MiB median (max {:.1}); sent {:.0} B/s/agent median (max {:.0})",
        median(&mut cpu),
        max(&cpu),
        median(&mut cpu.clone()) / 60.0 * 100.0,
        median(&mut rss),
        max(&rss),
        median(&mut bps),
        max(&bps),
    );

    // Detection: SIGKILL one agent (never the seed), wait for every survivor's
    // `failed`, restart it (it rejoins from its snapshot), converge, repeat.
    let mut full = Vec::new();
    let mut first = Vec::new();
    for k in 0..kills {
        let victim = 1 + (k * 7) % (n - 1);
        let vname = c.name(victim);
        let mut events = c.events().cursor();
        let killed_ms = unix_ms();
        c.kill(victim);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut times: Vec<(String, u64)> = Vec::new();
        while times.len() < n - 1 && Instant::now() < deadline {
            let Some(s) = events.next_within(Duration::from_millis(200)) else { continue };
            if s.is("failed", &vname) && !times.iter().any(|(b, _)| *b == s.by) {
                times.push((s.by.clone(), s.time_ms));
            }
        }
        let last = times.iter().map(|(_, t)| *t).max().unwrap_or(0).saturating_sub(killed_ms);
        let earliest = times.iter().map(|(_, t)| *t).min().unwrap_or(0).saturating_sub(killed_ms);
        println!(
            "kill {} ({vname}): {} of {} survivors declared it failed; first after {:.2} s, all after {:.2} s",
            k + 1,
            times.len(),
            n - 1,
            earliest as f64 / 1e3,
            last as f64 / 1e3
        );
        if times.len() == n - 1 {
            full.push(last as f64 / 1e3);
            first.push(earliest as f64 / 1e3);
        }
        c.spec_mut(victim).join.clear();
        c.start(victim).expect("restart");
        if c.wait_converged(Duration::from_secs(60)).is_err() {
            println!("did not reconverge after restarting {vname}");
            return;
        }
        std::thread::sleep(Duration::from_secs(3));
    }
    let mx = full.iter().copied().fold(0.0, f64::max);
    println!(
        "full detection of a SIGKILL over {} kills: median {:.2} s, max {:.2} s (first detection median {:.2} s)",
        full.len(),
        median(&mut full),
        mx,
        median(&mut first)
    );
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(exe) = args.get(1) else {
        eprintln!("usage: bench_agents PATH_TO_VIGIL [sizes=5,20] [kills=5] [idle_secs=30]");
        std::process::exit(2);
    };
    let sizes: Vec<usize> = args
        .get(2)
        .map_or("5,20", String::as_str)
        .split(',')
        .filter_map(|s| s.parse().ok())
        .filter(|n| *n >= 3)
        .collect();
    let kills = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let idle = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(30);
    println!("vigil agents on loopback: sizes {sizes:?}, {kills} kills each, idle window {idle} s");
    for n in sizes {
        run(exe, n, kills, idle);
    }
}
