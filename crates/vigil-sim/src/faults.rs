//! The fault schedule: the scenario's faults expanded into timed actions, and
//! what each action does to the engine. Random choices (which member crashes,
//! when churn happens) come from the engine's fault stream, separate from the
//! network's, so changing the loss rate does not change who crashes.

use rand::RngExt;

use crate::engine::{Engine, Status};
use crate::observe::Stop;
use crate::scenario::{Scenario, Start};
use crate::select::Select;

/// Something that happens to the cluster at a given time.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// With `start = "join"`: member starts and joins member 0.
    StartJoin(usize),
    /// With `start = "converged"`: member starts (alone).
    Start(usize),
    /// With `start = "converged"`: every member learns every other.
    Preload,
    /// A process exit, or a host going down.
    Crash {
        sel: Select,
        restart_after: Option<u64>,
        stop: Stop,
    },
    Restart(usize),
    Freeze {
        sel: Select,
        duration: u64,
    },
    Starve {
        sel: Select,
        duration: u64,
        run: u64,
        every: u64,
    },
    Slow {
        sel: Select,
        delay: u64,
    },
    Partition {
        groups: Vec<Select>,
    },
    Heal,
    /// A new member joins.
    Join,
    /// A random live member leaves gracefully.
    Leave,
    MassFailure {
        fraction: f64,
        restart_after: Option<u64>,
    },
    /// A random live member publishes new metadata.
    Update,
    /// The quiet phase starts: partitions heal, slow members recover.
    Quiet,
}

fn us(d: std::time::Duration) -> u64 {
    d.as_micros() as u64
}

/// Expands the scenario into (time, action), in a deterministic order.
pub(crate) fn schedule(s: &Scenario, eng: &mut Engine) -> Vec<(u64, Action)> {
    let mut out = Vec::new();
    let chaos = us(s.chaos_start());
    let quiet = us(s.quiet_start());
    let span = quiet.saturating_sub(chaos);
    match s.start {
        Start::Join => {
            let gap = us(s.join_interval.0);
            for i in 1..s.members {
                out.push((i as u64 * gap, Action::StartJoin(i)));
            }
        }
        Start::Converged => {
            // Members start at random instants within one protocol period, so
            // their timers are not in lock-step; then they learn each other.
            let period = us(eng.config.probe_interval);
            for i in 0..s.members {
                out.push((eng.fault_rng.random_range(0..period), Action::Start(i)));
            }
            out.push((period, Action::Preload));
        }
    }
    // Host failures a quarter of a gap after the exits when both are asked
    // for, so that the two measurements do not overlap.
    let both = s.crashes.as_ref().is_some_and(|c| c.count > 0);
    let offset = u64::from(both);
    for (spread, stop, offset) in [(&s.crashes, Stop::Exit, 0), (&s.host_downs, Stop::HostDown, offset)] {
        let Some(c) = spread.as_ref().filter(|c| c.count > 0) else { continue };
        let restart_after = (c.restart_after.0 > std::time::Duration::ZERO).then(|| us(c.restart_after.0));
        let n = c.count as u64;
        for i in 0..n {
            let at = chaos + span * (4 * i + 2 + offset) / (4 * n);
            out.push((at, Action::Crash { sel: Select::Random(1), restart_after, stop }));
        }
    }
    for (list, stop) in [(&s.crash, Stop::Exit), (&s.host_down, Stop::HostDown)] {
        for c in list {
            let restart_after = c.restart_after.map(|d| us(d.0));
            out.push((us(c.at.0), Action::Crash { sel: c.members.clone(), restart_after, stop }));
        }
    }
    for f in &s.freeze {
        let mut at = f.at.map_or(chaos, |d| us(d.0));
        loop {
            if at >= quiet {
                break;
            }
            out.push((at, Action::Freeze { sel: f.members.clone(), duration: us(f.duration.0) }));
            match f.every {
                Some(e) if e.0 > std::time::Duration::ZERO => at += us(e.0),
                _ => break,
            }
        }
    }
    for st in &s.starve {
        let at = st.at.map_or(chaos, |d| us(d.0));
        let (duration, run, every) = (us(st.duration.0), us(st.run.0), us(st.every.0));
        out.push((at, Action::Starve { sel: st.members.clone(), duration, run, every }));
    }
    for sl in &s.slow {
        let at = sl.at.map_or(0, |d| us(d.0));
        let until = sl.until.map_or(quiet, |d| us(d.0));
        out.push((at, Action::Slow { sel: sl.members.clone(), delay: us(sl.delay.0) }));
        out.push((until, Action::Slow { sel: sl.members.clone(), delay: 0 }));
    }
    for p in &s.partition {
        let at = us(p.at.0);
        out.push((at, Action::Partition { groups: p.groups.clone() }));
        let heal = p.heal_after.map_or(quiet, |d| (at + us(d.0)).min(quiet));
        out.push((heal, Action::Heal));
    }
    if let Some(ch) = &s.churn {
        for (rate, make) in [(ch.joins_per_sec, Action::Join), (ch.leaves_per_sec, Action::Leave)] {
            if rate <= 0.0 {
                continue;
            }
            let mut t = chaos as f64;
            loop {
                let u: f64 = eng.fault_rng.random::<f64>().max(1e-12);
                t += -u.ln() / rate * 1e6;
                if t >= quiet as f64 {
                    break;
                }
                out.push((t as u64, make.clone()));
            }
        }
    }
    for m in &s.mass_failure {
        out.push((
            us(m.at.0),
            Action::MassFailure { fraction: m.fraction.0, restart_after: m.restart_after.map(|d| us(d.0)) },
        ));
    }
    for i in 0..s.joins as u64 {
        out.push((chaos + span * (2 * i + 1) / (2 * s.joins as u64), Action::Join));
    }
    if s.updates_per_minute > 0.0 {
        let gap = (60e6 / s.updates_per_minute) as u64;
        let mut at = chaos + gap / 3;
        while at < quiet && gap > 0 {
            out.push((at, Action::Update));
            at += gap;
        }
    }
    out.push((quiet, Action::Quiet));
    // Stable: equal times keep the order above.
    out.sort_by_key(|(t, _)| *t);
    out
}

/// Members a selector picks now (live ones only).
fn resolve(eng: &mut Engine, sel: &Select, initial: usize) -> Vec<usize> {
    match sel {
        Select::Random(k) => eng.random_live_k(*k),
        other => other.ids(initial).filter(|&i| i < eng.slots.len() && eng.is_live(i)).collect(),
    }
}

/// A few random live members to join through.
fn seeds(eng: &mut Engine, exclude: usize) -> Vec<usize> {
    (0..2).filter_map(|_| eng.random_live(Some(exclude))).collect()
}

/// Carries out one action.
pub(crate) fn apply(
    eng: &mut Engine,
    action: Action,
    initial: usize,
    update_counter: &mut u64,
) -> Vec<(u64, Action)> {
    let mut later = Vec::new();
    match action {
        Action::Start(i) => eng.start(i, 1),
        Action::Preload => eng.preload_all(),
        Action::StartJoin(i) => {
            eng.start(i, 1);
            eng.join(i, &[0]);
        }
        Action::Crash { sel, restart_after, stop } => {
            for m in resolve(eng, &sel, initial) {
                crash_one(eng, m, restart_after, stop, &mut later);
            }
        }
        Action::MassFailure { fraction, restart_after } => {
            let k = (eng.live as f64 * fraction).round() as usize;
            for m in eng.random_live_k(k) {
                crash_one(eng, m, restart_after, Stop::HostDown, &mut later);
            }
        }
        Action::Restart(m) => {
            let lives = eng.up_lives();
            eng.obs.close_crash(m as u32, &lives);
            let seeds = seeds(eng, m);
            eng.restart(m, &seeds);
        }
        Action::Freeze { sel, duration } => {
            let until = eng.now + duration;
            for m in resolve(eng, &sel, initial) {
                eng.freeze(m, until);
            }
        }
        Action::Starve { sel, duration, run, every } => {
            for m in resolve(eng, &sel, initial) {
                eng.starve(m, run, every, duration);
            }
        }
        Action::Slow { sel, delay } => {
            let ids: Vec<usize> = match sel {
                Select::Random(k) => eng.random_live_k(k),
                other => other.ids(initial).filter(|&i| i < eng.slots.len()).collect(),
            };
            for m in ids {
                eng.set_slow(m, delay);
            }
        }
        Action::Partition { groups } => {
            let mut g = vec![0u16; eng.slots.len()];
            for (k, sel) in groups.iter().enumerate() {
                for m in sel.ids(initial) {
                    if let Some(x) = g.get_mut(m) {
                        *x = k as u16 + 1;
                    }
                }
            }
            eng.net.group = g;
            eng.net.partitioned = true;
        }
        Action::Heal => heal(eng),
        Action::Join => {
            let id = eng.add_slot();
            if eng.net.partitioned {
                eng.net.group.push(0);
            }
            let seeds = seeds(eng, id);
            eng.start(id, 1);
            eng.obs.on_join(eng.now, id as u32);
            eng.join(id, &seeds);
        }
        Action::Leave => {
            if let Some(m) = eng.random_live(None) {
                eng.leave(m);
            }
        }
        Action::Update => {
            if let Some(m) = eng.random_live(None) {
                *update_counter += 1;
                let expected = eng.live.saturating_sub(1);
                if let Some(inc) = eng.update_metadata(m, *update_counter) {
                    eng.obs.on_update(eng.now, m as u32, inc, expected);
                }
            }
        }
        Action::Quiet => {
            heal(eng);
            for m in 0..eng.slots.len() {
                if eng.slots[m].slow > 0 {
                    eng.set_slow(m, 0);
                }
            }
        }
    }
    later
}

fn heal(eng: &mut Engine) {
    if eng.net.partitioned {
        eng.net.partitioned = false;
        eng.net.healed_at = Some(eng.now);
    }
}

fn crash_one(
    eng: &mut Engine,
    m: usize,
    restart_after: Option<u64>,
    stop: Stop,
    later: &mut Vec<(u64, Action)>,
) {
    if !matches!(eng.slots[m].status, Status::Up | Status::Frozen) || eng.slots[m].leaving {
        return;
    }
    let lives = eng.up_lives();
    eng.obs.on_crash(eng.now, m as u32, stop, lives);
    match stop {
        Stop::Exit => eng.crash(m),
        Stop::HostDown => eng.host_down(m),
    }
    if let Some(after) = restart_after {
        later.push((eng.now + after, Action::Restart(m)));
    }
}
