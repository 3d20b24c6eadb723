//! The `sim` and `tune` commands, shared by the `vigil-sim` binary and the
//! agent's `vigil sim` / `vigil tune`: run, print (table or JSON), plot.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use anyhow::Context as _;

use crate::{BarProgress, SimArgs, TuneArgs, plot, repro_command, run, tune};

/// `sim`: runs the scenario the flags describe; exit 1 if an invariant was
/// violated (with a one-line replay command), 2 on a bad scenario.
///
/// A command-line entry point: on glibc it first execs the process's own
/// command line again with huge pages for the heap (see `with_huge_pages`),
/// so call it only from a `main` that can be started again as it was.
pub fn sim_command(args: &SimArgs) -> ExitCode {
    with_huge_pages();
    report_errors(run_sim(args))
}

/// `tune`: searches for the cheapest configuration meeting the targets and
/// prints it on stdout as an agent configuration file (the search itself on
/// stderr); exit 1 if none did (the fastest is printed then).
///
/// Like [`sim_command`], it execs the process's command line again first.
pub fn tune_command(args: &TuneArgs) -> ExitCode {
    with_huge_pages();
    report_errors(run_tune(args))
}

/// The variable glibc reads its malloc settings from.
const TUNABLES: &str = "GLIBC_TUNABLES";

/// Starts this same command line again in a fresh image of this process
/// (same pid, same arguments and environment) with glibc's malloc asked to
/// back the heap with transparent huge pages (`glibc.malloc.hugetlb=1`;
/// the kernel's setting here is "madvise"). A simulation reaches each
/// member's state at random, a few hundred MiB of it at 10 000 members:
/// with 4 KiB pages most of those reads also missed the TLB, and a
/// 10 000-member run took about 17% more CPU. Nothing that happens in the
/// simulation depends on where memory lies, so the results are the same.
///
/// Not done when `GLIBC_TUNABLES` is set already (the caller's own settings,
/// or this is the second start), nor on other C libraries; if the exec
/// fails, the command runs on as it is.
fn with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt as _;
        if std::env::var_os(TUNABLES).is_some() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else { return };
        let mut args = std::env::args_os();
        let mut cmd = std::process::Command::new(exe);
        if let Some(arg0) = args.next() {
            cmd.arg0(arg0);
        }
        // Returns only if the exec failed.
        let _ = cmd.args(args).env(TUNABLES, "glibc.malloc.hugetlb=1").exec();
    }
}

fn report_errors(r: anyhow::Result<ExitCode>) -> ExitCode {
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_sim(args: &SimArgs) -> anyhow::Result<ExitCode> {
    let base = args.scenario()?;
    let sizes: Vec<usize> = if args.sizes.is_empty() { vec![base.members] } else { args.sizes.clone() };
    let mut points = Vec::new();
    let mut failed = false;
    let mut last = None;
    for &n in &sizes {
        let mut s = base.clone();
        s.members = n;
        s.trace = args.trace.is_some();
        let mut bar = BarProgress::new(&format!("{n} members"));
        let report = run(&s, &mut bar)?;
        if let (Some(path), Some(trace)) = (&args.trace, &report.trace) {
            std::fs::write(path, trace).with_context(|| format!("writing {}", path.display()))?;
        }
        if args.json {
            println!("{}", report.to_json());
        } else {
            print!("{report}");
        }
        if !report.passed() {
            failed = true;
            let cmd = repro_command(&s, args.scenario.as_deref().filter(|_| args_are_only_file(args)));
            eprintln!("invariant violated; replay with: {cmd}");
        }
        points.push((
            n,
            report.traffic.bytes_per_member_per_sec_mean,
            report.traffic.bytes_per_member_per_sec_max,
        ));
        last = Some(report);
    }
    if let (Some(dir), Some(report)) = (&args.plot, &last) {
        if !plot::fonts_available() {
            eprintln!("vigil-sim: font {} not found: charts have no text", plot::FONT_PATH);
        }
        let files = plot::write_all(dir, report, if sizes.len() > 1 { &points } else { &[] })?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// True when the run is fully described by the scenario file and the seed.
fn args_are_only_file(a: &SimArgs) -> bool {
    a.members.is_none()
        && a.duration.is_none()
        && a.loss.is_none()
        && a.latency.is_none()
        && a.crash.is_empty()
        && a.host_down.is_empty()
        && a.freeze.is_empty()
        && a.starve.is_empty()
        && a.partition.is_empty()
        && a.slow.is_empty()
        && a.churn.is_none()
        && a.mass_failure.is_empty()
        && a.preset.is_none()
        && a.set.is_empty()
        && a.start.is_none()
        && a.warmup.is_none()
        && a.quiet.is_none()
}

fn run_tune(t: &TuneArgs) -> anyhow::Result<ExitCode> {
    let mut o = tune::TuneOptions::new(
        crate::units::parse_duration(&t.target_detection)?,
        t.max_false_failures_per_day,
        t.loss.parse::<crate::units::Frac>()?.0,
        t.members,
    );
    o.seed = t.seed;
    o.preset = t.preset.parse()?;
    o.budget = crate::units::parse_duration(&t.budget)?;
    o.tolerate_pause = crate::units::parse_duration(&t.tolerate_pause)?;
    o.target_host_down = t.target_host_down.as_deref().map(crate::units::parse_duration).transpose()?;
    for kv in &t.set {
        let (k, v) = kv.split_once('=').with_context(|| format!("--set {kv}: not KEY=VALUE"))?;
        // Refused now, by name, rather than by every candidate.
        crate::scenario::apply_override(&mut vigil_proto::Config::lan(), k.trim(), v.trim())?;
        o.overrides.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let r = tune::tune_with(&o);
    if t.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The search on stderr; on stdout only the configuration, so that
    // `vigil tune ... > vigil.toml` is a file `vigil agent --config` loads.
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |m| format!("{m:.2}s"));
    eprintln!(
        "vigil tune: {} members, {:.1}% loss; targets: process exits {} (median full detection){}, pauses of {} never failed, at most {} false failures/day",
        t.members,
        o.loss * 100.0,
        t.target_detection,
        t.target_host_down.as_ref().map_or_else(String::new, |h| format!(", hosts down {h}")),
        t.tolerate_pause,
        t.max_false_failures_per_day
    );
    eprintln!(
        "{:<44} {:>9} {:>8} {:>10} {:>7} {:>7} {:>9}",
        "candidate", "bytes/m/s", "exits", "hosts down", "pauses", "starved", "false/day"
    );
    for c in &r.tried {
        let label: Vec<String> = c.overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
        eprintln!(
            "{:<44} {:>9.0} {:>8} {:>10} {:>7} {:>7} {:>9.2}{}",
            label.join(" "),
            c.bytes_per_member_per_sec,
            secs(c.median_full_detection_s),
            secs(c.host_down_full_detection_s),
            c.pauses_failed,
            c.starved_accused,
            c.false_failures_per_day,
            if c.meets { "  ok" } else { "" }
        );
    }
    if r.untried > 0 {
        eprintln!("({} candidates left untried: budget spent)", r.untried);
    }
    let Some(b) = &r.best else {
        eprintln!("no candidate could be simulated");
        return Ok(ExitCode::from(1));
    };
    let summary = format!(
        "full detection (median) of process exits {}, of hosts down {}; pauses of {} failed {} times; {:.0} bytes/member/s",
        secs(b.median_full_detection_s),
        secs(b.host_down_full_detection_s),
        t.tolerate_pause,
        b.pauses_failed,
        b.bytes_per_member_per_sec
    );
    if r.met {
        eprintln!(
            "cheapest configuration meeting the targets: {summary}\n(no false failure seen means fewer than {:.0}/day at 95% confidence from this run length)",
            r.zero_seen_bound_per_day
        );
        println!("# vigil tune: {} members, {:.1}% loss, {} preset", t.members, o.loss * 100.0, t.preset);
    } else {
        eprintln!("no candidate met the targets; the fastest: {summary}");
        println!("# vigil tune: NO candidate met the targets; the fastest is below");
    }
    println!("# {summary}\n# load it with: vigil agent --config FILE\n{}", r.agent_config);
    Ok(if r.met { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
