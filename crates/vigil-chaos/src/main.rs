//! `vigil-chaos`: runs the fault-injection scenarios against real agents in
//! network namespaces and prints (or writes to docs/RELIABILITY.md) their figures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_chaos::report::{self, Report};
use vigil_chaos::scenarios::{self, Options};

/// Fault injection across network namespaces for the `vigil` agent (needs root).
#[derive(Debug, Parser)]
#[command(name = "vigil-chaos", version)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run scenarios and print their figures as a table.
    Run {
        /// Scenario number (1–13), `all` (1–8) or `classes` (9–13: the benchmark by failure class).
        #[arg(long, default_value = "all")]
        scenario: String,
        /// Members per cluster [default: 10; 50 with --long].
        #[arg(long)]
        members: Option<usize>,
        /// Long runs: 50 members, 5 minutes of 10% loss, 3 minutes of CPU hog and one-way loss.
        #[arg(long)]
        long: bool,
        /// The `vigil` binary [default: $VIGIL_BIN, else target/{release,debug}/vigil].
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Write the table to docs/RELIABILITY.md.
        #[arg(long)]
        write_doc: bool,
        /// Less progress output.
        #[arg(long)]
        quiet: bool,
    },
    /// Idle footprint of N real agents (encrypted, lan preset): CPU, RSS and
    /// bytes sent on each member's interface over a window, per member.
    Bench {
        /// Agents.
        #[arg(long, default_value_t = 50)]
        members: usize,
        /// Length of the measured window, in seconds.
        #[arg(long, default_value_t = 60)]
        secs: u64,
        /// Idle seconds between convergence and the window.
        #[arg(long, default_value_t = 15)]
        settle: u64,
        /// The `vigil` binary [default: $VIGIL_BIN, else target/{release,debug}/vigil].
        #[arg(long)]
        bin: Option<PathBuf>,
        /// Also print one line per member.
        #[arg(long)]
        per_member: bool,
    },
    /// Remove namespaces left by runs that were killed.
    Cleanup,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vigil_chaos::signal::install();
    match cli.command {
        Cmd::Cleanup => match vigil_chaos::net::remove_stale() {
            Ok(n) => {
                println!("removed {n} stale namespace(s)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vigil-chaos: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Bench { members, secs, settle, bin, per_member } => {
            let bin = match vigil_chaos::find_agent_bin(bin.as_deref()) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("vigil-chaos: {e}");
                    return ExitCode::from(2);
                }
            };
            eprintln!("vigil-chaos: bench with {} ({members} members)", bin.display());
            let opts = vigil_chaos::bench::BenchOptions {
                members,
                window: std::time::Duration::from_secs(secs),
                settle: std::time::Duration::from_secs(settle),
                bin,
                per_member,
            };
            match vigil_chaos::bench::run(&opts) {
                Ok(r) => {
                    println!("machine: {}; {}", machine(), today());
                    print!("{}", r.render(per_member));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("vigil-chaos: bench could not run: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Run { scenario, members, long, bin, write_doc, quiet } => {
            let ids: Vec<u8> = match scenario.as_str() {
                "all" => scenarios::ALL.to_vec(),
                "classes" => scenarios::CLASSES.to_vec(),
                s => match s.parse::<u8>() {
                    Ok(n) if (1..=scenarios::LAST).contains(&n) => vec![n],
                    _ => {
                        eprintln!("vigil-chaos: --scenario takes 1–13, `all` or `classes`, not `{s}`");
                        return ExitCode::from(2);
                    }
                },
            };
            let bin = match vigil_chaos::find_agent_bin(bin.as_deref()) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("vigil-chaos: {e}");
                    return ExitCode::from(2);
                }
            };
            let members = members.unwrap_or(if long { 50 } else { 10 });
            let opts = Options { members, long, bin, verbose: !quiet };
            let mut reports: Vec<Report> = Vec::new();
            let mut broken = false;
            for id in ids {
                eprintln!("vigil-chaos: scenario {id} with {members} members");
                match scenarios::run(id, &opts) {
                    Ok(r) => {
                        println!("{}", report::table(std::slice::from_ref(&r)));
                        reports.push(r);
                    }
                    Err(e) => {
                        eprintln!("vigil-chaos: scenario {id} could not run: {e}");
                        broken = true;
                        if matches!(e, vigil_chaos::Error::Interrupted | vigil_chaos::Error::Environment(_)) {
                            break;
                        }
                    }
                }
            }
            println!("\n{}", report::table(&reports));
            let d = report::details(&reports);
            if !d.is_empty() {
                println!("{d}");
            }
            if write_doc && !reports.is_empty() {
                let mut command =
                    format!("cargo run -p vigil-chaos -- run --scenario {scenario} --members {members}");
                if long {
                    command.push_str(" --long");
                }
                command.push_str(" --write-doc");
                let text = report::document(&reports, &command, &today(), &machine());
                let path = vigil_chaos::workspace_root().join("docs/RELIABILITY.md");
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("vigil-chaos: writing {}: {e}", path.display());
                    return ExitCode::from(2);
                }
                eprintln!("vigil-chaos: wrote {}", path.display());
            }
            if broken {
                ExitCode::from(2)
            } else if reports.iter().all(Report::passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Today's date (UTC), as YYYY-MM-DD.
fn today() -> String {
    let days = i64::try_from(vigil_chaos::events::now_ms() / 86_400_000).unwrap_or(0);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// CPU model, cores and memory, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let mem_kib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores}-core {model}, {:.0} GiB RAM, Linux {}", mem_kib as f64 / 1024.0 / 1024.0, kernel.trim())
}
