//! Detection by failure class: process exits (kernel evidence), hosts gone
//! silent, pauses (freezes) and CPU starvation, each measured on its own.

use serde::Serialize;

use crate::observe::{Observer, PauseRec, Stop};
use crate::quantiles::Quantiles;

/// Detection of one class of stopped members (process exits, or hosts down).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ClassDetection {
    /// Members stopped this way.
    pub faults: usize,
    /// Of those, not declared failed by every member that stayed up.
    pub undetected: usize,
    /// Of those, declared failed by at least one member.
    pub members_failed: usize,
    /// To the first member's `failed` event.
    pub first: Quantiles,
    /// To the last live member's `failed` event.
    pub full: Quantiles,
    /// Every member's own detection time (median over members).
    pub per_member: Quantiles,
}

/// Pauses (freezes): nothing processed, everything queued.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PauseDetection {
    /// Freezes.
    pub pauses: usize,
    /// Of those, shorter than `pause_tolerance`: never to be failed.
    pub below_tolerance: usize,
    /// Of the short ones, declared failed by at least one member (false failures).
    pub below_tolerance_failed: usize,
    /// Freezes declared failed by at least one member.
    pub members_failed: usize,
    /// Freezes declared failed by every other member.
    pub failed_by_all: usize,
    /// `failed` events about paused members, in all.
    pub failed_events: usize,
    /// Pause start to the first `failed` event, for pauses failed by someone.
    pub first: Quantiles,
    /// Pause start to the last member's `failed` event, for pauses failed by all.
    pub full: Quantiles,
    /// Pause end to the moment every member that declared it failed holds it
    /// alive again.
    pub back_alive: Quantiles,
    /// Members that declared a paused member failed and never saw it alive again.
    pub uncleared: usize,
}

/// CPU-starved members.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StarveDetection {
    /// Members starved.
    pub starved: usize,
    /// Starved members declared failed by at least one member.
    pub members_failed: usize,
    /// `failed` events about starved members, in all observers.
    pub failed_events: usize,
    /// Most times one member declared the same starved member failed (more
    /// than 1: it flapped, failed again after it came back).
    pub max_failed_by_one: u32,
    /// `failed` events that starved members emitted about healthy members.
    pub accused: u64,
    /// Those healthy members, counted once per starvation.
    pub accused_members: usize,
}

/// Detection by failure class.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ByClass {
    /// The configured `pause_tolerance`, seconds.
    pub pause_tolerance_s: f64,
    /// Process exits (`--crash`): the host's kernel gives evidence.
    pub exit: ClassDetection,
    /// Hosts down (`--host-down`, mass failures): only silence.
    pub host_down: ClassDetection,
    /// Freezes (`--freeze`).
    pub pause: PauseDetection,
    /// CPU starvation (`--starve`).
    pub starve: StarveDetection,
}

fn class(obs: &Observer, stop: Stop) -> ClassDetection {
    let recs: Vec<_> = obs.crashes.iter().filter(|c| c.class == stop).collect();
    let mut d = ClassDetection { faults: recs.len(), ..Default::default() };
    let (mut first, mut full, mut per) = (Vec::new(), Vec::new(), Vec::new());
    for c in recs {
        d.members_failed += usize::from(!c.detections.is_empty());
        per.extend_from_slice(&c.per_observer);
        match c.result {
            Some((Some(f), Some(fl))) => {
                first.push(f);
                full.push(fl);
            }
            Some((Some(f), None)) => {
                first.push(f);
                d.undetected += 1;
            }
            _ => d.undetected += 1,
        }
    }
    d.first = Quantiles::of(first);
    d.full = Quantiles::of(full);
    d.per_member = Quantiles::of(per);
    d
}

fn pauses(obs: &Observer) -> PauseDetection {
    let recs: Vec<&PauseRec> = obs.pauses.iter().filter(|p| !p.starve).collect();
    let mut d = PauseDetection { pauses: recs.len(), ..Default::default() };
    let (mut first, mut full, mut back) = (Vec::new(), Vec::new(), Vec::new());
    for p in recs {
        let short = p.end - p.start < obs.pause_tolerance;
        d.below_tolerance += usize::from(short);
        d.failed_events += p.failed.iter().map(|f| f.times as usize).sum::<usize>();
        let Some(t0) = p.failed.iter().map(|f| f.first).min() else { continue };
        d.members_failed += 1;
        d.below_tolerance_failed += usize::from(short);
        first.push(t0 - p.start);
        if p.others > 0 && p.failed.len() >= p.others {
            d.failed_by_all += 1;
            full.push(p.failed.iter().map(|f| f.first).max().unwrap_or(t0) - p.start);
        }
        d.uncleared += p.failed.iter().filter(|f| f.cleared.is_none()).count();
        if p.failed.iter().all(|f| f.cleared.is_some()) {
            let last = p.failed.iter().filter_map(|f| f.cleared).max().unwrap_or(p.end);
            back.push(last.saturating_sub(p.end));
        }
    }
    d.first = Quantiles::of(first);
    d.full = Quantiles::of(full);
    d.back_alive = Quantiles::of(back);
    d
}

fn starved(obs: &Observer) -> StarveDetection {
    let mut d = StarveDetection::default();
    for p in obs.pauses.iter().filter(|p| p.starve) {
        d.starved += 1;
        d.members_failed += usize::from(!p.failed.is_empty());
        d.failed_events += p.failed.iter().map(|f| f.times as usize).sum::<usize>();
        d.max_failed_by_one = d.max_failed_by_one.max(p.failed.iter().map(|f| f.times).max().unwrap_or(0));
        d.accused += p.accused;
        d.accused_members += p.accused_members.len();
    }
    d
}

pub(crate) fn by_class(obs: &Observer) -> ByClass {
    ByClass {
        pause_tolerance_s: obs.pause_tolerance as f64 / 1e6,
        exit: class(obs, Stop::Exit),
        host_down: class(obs, Stop::HostDown),
        pause: pauses(obs),
        starve: starved(obs),
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}s"))
}

impl ByClass {
    /// Rows of the report's table (label, text); none for a class not simulated.
    pub(crate) fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        for (label, c) in [("process exits", &self.exit), ("hosts down", &self.host_down)] {
            if c.faults == 0 {
                continue;
            }
            rows.push((
                label,
                format!(
                    "{}: full median {} max {}, first median {}, per member median {}; {} undetected",
                    c.faults,
                    secs(c.full.median),
                    secs(c.full.max),
                    secs(c.first.median),
                    secs(c.per_member.median),
                    c.undetected
                ),
            ));
        }
        let p = &self.pause;
        if p.pauses > 0 {
            rows.push((
                "pauses",
                format!(
                    "{} ({} below the {:.1} s tolerance, {} of them failed); {} failed, {} by all: full median {}, back alive median {} max {}",
                    p.pauses,
                    p.below_tolerance,
                    self.pause_tolerance_s,
                    p.below_tolerance_failed,
                    p.members_failed,
                    p.failed_by_all,
                    secs(p.full.median),
                    secs(p.back_alive.median),
                    secs(p.back_alive.max)
                ),
            ));
        }
        let s = &self.starve;
        if s.starved > 0 {
            rows.push((
                "starved members",
                format!(
                    "{}: failed {} times (at most {} by one member); they failed {} healthy members",
                    s.starved, s.failed_events, s.max_failed_by_one, s.accused_members
                ),
            ));
        }
        rows
    }
}
