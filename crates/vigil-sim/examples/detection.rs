//! Prints, in virtual time, how fast a cluster detects crashes and how many
//! false failures it raises: 50 members, the `lan()` preset, 1% datagram
//! loss, 20 crashes one at a time (see [`vigil_sim::detection::detection_run_with`]),
//! each a process exit (`exit`, the default: kernel evidence) or a host going
//! down (`host-down`: silence).
//!
//! `cargo run --release -p vigil-sim --example detection -- [members] [loss] [crashes] [seed] [exit|host-down]`
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use vigil_proto::Config;
use vigil_sim::detection::{Failure, detection_run_with, median};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: f64| args.get(i).and_then(|a| a.parse::<f64>().ok()).unwrap_or(default);
    let members = arg(0, 50.0) as usize;
    let loss = arg(1, 0.01);
    let crashes = arg(2, 20.0) as usize;
    let seed = arg(3, 1.0) as u64;
    let failure = match args.get(4).map(String::as_str) {
        None | Some("exit") => Failure::ProcessExit,
        Some("host-down") => Failure::HostDown,
        Some(other) => {
            eprintln!("detection: {other:?} is neither exit nor host-down");
            std::process::exit(2);
        }
    };
    let config = Config::lan();
    let f =
        detection_run_with(failure, members, config.clone(), loss, crashes, Duration::from_secs(30), seed);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (smin, smax) = config.suspicion_bounds(members);
    println!("vigil-sim detection, virtual time, lan() preset, seed {seed}");
    println!("members                    {}", f.members);
    println!("datagram loss              {:.1}%", f.loss * 100.0);
    println!("crashes (one at a time)    {crashes} ({failure:?})");
    println!("suspicion timeout          {:.0}..{:.0} ms", ms(smin), ms(smax));
    println!(
        "first detection  median {:6.0} ms   max {:6.0} ms",
        ms(median(&f.first)),
        ms(f.first.last().copied().unwrap_or_default())
    );
    println!(
        "full detection   median {:6.0} ms   max {:6.0} ms",
        ms(median(&f.full)),
        ms(f.full.last().copied().unwrap_or_default())
    );
    println!("undetected crashes         {}", f.undetected);
    println!("false failures             {}", f.false_failures);
    println!("false suspicions           {}", f.false_suspicions);
    println!("bytes sent / member / s    {:.0}", f.bytes_per_member_per_sec);
}
