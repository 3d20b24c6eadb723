//! `vigil demo`: five agents on 127.0.0.1; one is killed, the others detect
//! it (shown live, with who and when), it restarts and rejoins from its
//! snapshot. Ends by itself in about 15 s and leaves no process behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::Value;

use crate::config::Preset;
use crate::harness::{Cluster, Cursor, Error, Loopback, Seen};

/// `vigil demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Agents to start.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=20))]
    pub agents: u16,
}

/// The demo failed or was interrupted; every agent was stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DemoError(pub String);

impl From<Error> for DemoError {
    fn from(e: Error) -> Self {
        match e {
            Error::Interrupted => DemoError("interrupted: all agents stopped".into()),
            e => DemoError(e.to_string()),
        }
    }
}

fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                f.store(true, Ordering::SeqCst);
            }
        });
    });
    flag
}

fn secs(d: Duration) -> String {
    format!("{:>5.2}s", d.as_secs_f64())
}

fn names(e: &Value, k: &str) -> String {
    e.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    let stop = ctrl_c_flag();
    let exe = std::env::current_exe().map_err(|e| DemoError(format!("cannot find this binary: {e}")))?;
    let dir = std::env::temp_dir().join(format!("vigil-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = {
        let mut cluster = Cluster::new(exe, &dir, Preset::Lan, Loopback);
        cluster.interrupt_on(stop.clone());
        // The cluster is dropped (every agent killed) on every path out of here, panics included.
        script(&mut cluster, usize::from(args.agents), &stop)
    };
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("agent logs kept in {}", dir.display());
    }
    result
}

/// Waits for events matching `want` until `n` distinct agents showed one, or
/// the deadline; prints each as it arrives (`want` says what to print and
/// whether it counts). Returns the agents and their times.
fn watch(
    events: &mut Cursor,
    stop: &AtomicBool,
    since: Instant,
    within: Duration,
    n: usize,
    want: impl Fn(&Seen) -> Option<(String, bool)>,
) -> Result<Vec<(String, Duration)>, DemoError> {
    let mut seen: Vec<(String, Duration)> = Vec::new();
    let deadline = since + within;
    while seen.len() < n && Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            return Err(DemoError("interrupted: all agents stopped".into()));
        }
        let Some(s) = events.next_within(Duration::from_millis(100)) else { continue };
        if let Some((line, counts)) = want(&s) {
            let t = s.at.saturating_duration_since(since);
            println!("  +{}  {line}", secs(t));
            if counts && !seen.iter().any(|(b, _)| *b == s.by) {
                seen.push((s.by.clone(), t));
            }
        }
    }
    Ok(seen)
}

fn show_view(cluster: &Cluster) {
    if let Ok(view) = cluster.view(0) {
        let line: Vec<String> = view.iter().map(|m| format!("{}={}", m.name, m.state)).collect();
        println!("{} sees: {}", cluster.name(0), line.join(" "));
    }
}

fn script(cluster: &mut Cluster, n: usize, stop: &AtomicBool) -> Result<(), DemoError> {
    let start = |e: Error| DemoError(format!("cannot start an agent: {e}"));
    println!("vigil demo: {n} agents on 127.0.0.1 (preset `lan`: 1 s protocol period)\n");
    let t0 = Instant::now();
    let seed = cluster.add_agent("demo-1", &[]).map_err(start)?;
    for i in 2..=n {
        cluster.add_agent(&format!("demo-{i}"), &[seed]).map_err(start)?;
    }
    for i in 0..n {
        println!("  {:<7} gossip {}  api {}", cluster.name(i), cluster.gossip(i), cluster.url(i));
    }
    let converged = cluster.wait_converged(Duration::from_secs(15)).map_err(|e| match e {
        Error::Timeout { .. } => DemoError("the agents did not converge within 15 s".into()),
        e => e.into(),
    })?;
    println!(
        "\nall {n} agents see each other alive after {} (from the first start: {})",
        secs(converged),
        secs(t0.elapsed())
    );
    let api = cluster.url(0);
    println!("try, while it runs:  curl {api}/v1/members   or   vigil members --http {}", cluster.http(0));
    let mut events = cluster.events().cursor();

    cluster.pause_for(Duration::from_secs(3))?;
    let victim = n / 2;
    let vname = cluster.name(victim);
    println!("\nkill -9 {vname} (pid {})", cluster.pid(victim).unwrap_or(0));
    events.drain();
    let killed = Instant::now();
    cluster.kill(victim);
    let detected = watch(&mut events, stop, killed, Duration::from_secs(15), n - 1, |s| {
        let e = &s.event;
        if e.get("member").and_then(Value::as_str) != Some(vname.as_str()) {
            return None;
        }
        match e.get("kind").and_then(Value::as_str)? {
            "suspected" => Some((
                format!("{:<7} suspects {vname} (suspected by {})", s.by, names(e, "suspected_by")),
                false,
            )),
            "failed" => Some((
                match e.get("cause").and_then(Value::as_str) {
                    // Kernel evidence: the process is gone, no suspicion needed.
                    Some(cause) => format!(
                        "{:<7} declares {vname} FAILED ({cause}; declared by {})",
                        s.by,
                        e.get("declared_by").and_then(Value::as_str).unwrap_or("?"),
                    ),
                    None => format!(
                        "{:<7} declares {vname} FAILED (suspected by {}; {} confirmations; suspicion {} ms; declared by {})",
                        s.by,
                        names(e, "suspected_by"),
                        e.get("confirmations").and_then(Value::as_u64).unwrap_or(0),
                        e.get("suspicion_ms").and_then(Value::as_u64).unwrap_or(0),
                        e.get("declared_by").and_then(Value::as_str).unwrap_or("?"),
                    ),
                },
                true,
            )),
            _ => None,
        }
    })?;
    match detected.iter().map(|(_, t)| *t).max() {
        Some(full) if detected.len() == n - 1 => {
            println!("every other agent declared {vname} failed: full detection in {}", secs(full));
        }
        _ => println!("only {} of {} agents declared {vname} failed within 15 s", detected.len(), n - 1),
    }

    show_view(cluster);
    cluster.pause_for(Duration::from_secs(2))?;
    println!("\nrestart {vname} without --join: it rejoins the members in its snapshot");
    let restarted = Instant::now();
    cluster.spec_mut(victim).join.clear();
    events.drain();
    cluster.start(victim).map_err(start)?;
    let rejoined = watch(&mut events, stop, restarted, Duration::from_secs(15), n - 1, |s| {
        let e = &s.event;
        let kind = e.get("kind").and_then(Value::as_str)?;
        let member = e.get("member").and_then(Value::as_str)?;
        (s.by != vname && member == vname && matches!(kind, "joined" | "recovered")).then(|| {
            (format!("{:<7} sees {vname} {kind} again (incarnation {})", s.by, e["incarnation"]), true)
        })
    })?;
    match rejoined.iter().map(|(_, t)| *t).max() {
        Some(t) if rejoined.len() == n - 1 => {
            println!("{vname} is back in every agent's view after {}", secs(t))
        }
        _ => println!("{vname} is back in {} of {} agents' views", rejoined.len(), n - 1),
    }
    show_view(cluster);
    cluster.pause_for(Duration::from_secs(1))?;

    println!("\nstopping: every agent leaves gracefully");
    let running: Vec<usize> = (0..cluster.len()).filter(|&i| cluster.is_running(i)).collect();
    // An agent late to exit is killed; the demo is over either way.
    let _ = cluster.stop_all(&running, Duration::from_secs(4));
    println!("done in {}: no agent left running", secs(t0.elapsed()));
    Ok(())
}
