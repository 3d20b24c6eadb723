//! Per-member measurements: adaptive probe timeout from round trips, and the
//! phi-accrual suspicion level (Hayashibara et al., 2004).

use std::collections::VecDeque;
use std::time::Duration;

use hashbrown::HashTable;

use crate::hash::{name_hash, splitmix};
use crate::member::Name;
use crate::time::Instant;

/// Smoothed round-trip time and its deviation (the TCP estimator, RFC 6298).
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    /// Smoothed round trip in microseconds; [`NO_SAMPLE`] before the first
    /// sample (a round trip is never negative). `f32`, and no `Option`
    /// beside: one of these per member per member, so it is kept small.
    srtt: f32,
    /// Its mean deviation, in microseconds.
    var: f32,
}

/// [`RttEstimator::srtt`] before any sample.
const NO_SAMPLE: f32 = -1.0;

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator { srtt: NO_SAMPLE, var: 0.0 }
    }
}

impl RttEstimator {
    fn state(&self) -> Option<(f64, f64)> {
        (self.srtt >= 0.0).then(|| (f64::from(self.srtt), f64::from(self.var)))
    }

    pub(crate) fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64() * 1e6;
        let (srtt, var) = match self.state() {
            None => (r, r / 2.0),
            Some((srtt, var)) => (0.875 * srtt + 0.125 * r, 0.75 * var + 0.25 * (srtt - r).abs()),
        };
        // Microseconds of a round trip fit an f32.
        #[allow(clippy::cast_possible_truncation)]
        {
            (self.srtt, self.var) = (srtt as f32, var as f32);
        }
    }

    pub(crate) fn smoothed(&self) -> Option<Duration> {
        self.state().map(|(s, _)| Duration::from_secs_f64(s / 1e6))
    }

    /// `srtt + mult × rttvar`, clamped to `[min, max]`; `max` before any sample.
    pub(crate) fn timeout(&self, mult: u32, min: Duration, max: Duration) -> Duration {
        match self.state() {
            None => max,
            Some((srtt, var)) => {
                let t = (srtt + f64::from(mult) * var) / 1e6;
                Duration::from_secs_f64(t.max(0.0)).clamp(min, max)
            }
        }
    }
}

/// Phi accrual: how surprising the current silence is, given the intervals at
/// which this member's own messages arrived so far (the last `window` of
/// them: the caller passes its configured window with each arrival).
#[derive(Debug, Clone, Default)]
pub(crate) struct PhiDetector {
    /// The last arrival.
    last: Option<Instant>,
    /// Allocated at the second arrival (the first interval): one detector
    /// per member per member, most of which hear one arrival or none in a
    /// large cluster, where a member is probed once per round of n.
    state: Option<Box<PhiState>>,
}

#[derive(Debug, Clone)]
struct PhiState {
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
}

/// Fewer samples than this gives phi 0.
const MIN_SAMPLES: usize = 3;
/// Floor on the standard deviation, in microseconds, so that very regular
/// arrivals do not make phi explode on a few milliseconds of jitter.
const MIN_STD_MICROS: f64 = 50_000.0;

impl PhiDetector {
    /// Records an arrival of liveness evidence, keeping the last `window`
    /// intervals.
    pub(crate) fn heartbeat(&mut self, now: Instant, window: usize) {
        if let Some(last) = self.last {
            let dt = (now - last).as_secs_f64() * 1e6;
            if dt <= 0.0 {
                return;
            }
            let s = self.state.get_or_insert_with(|| {
                Box::new(PhiState { intervals: VecDeque::new(), sum: 0.0, sum_sq: 0.0 })
            });
            s.intervals.push_back(dt);
            s.sum += dt;
            s.sum_sq += dt * dt;
            while s.intervals.len() > window {
                if let Some(old) = s.intervals.pop_front() {
                    s.sum -= old;
                    s.sum_sq -= old * old;
                }
            }
        }
        self.last = Some(now);
    }

    /// The phi level at `now`: -log10 of the probability that a message comes
    /// later than the time elapsed since the last one. 0 with too few samples.
    pub(crate) fn phi(&self, now: Instant) -> f64 {
        let (Some(s), Some(last)) = (self.state.as_deref(), self.last) else { return 0.0 };
        if s.intervals.len() < MIN_SAMPLES {
            return 0.0;
        }
        let n = s.intervals.len() as f64;
        let mean = s.sum / n;
        let var = (s.sum_sq / n - mean * mean).max(0.0);
        let std = var.sqrt().max(MIN_STD_MICROS);
        let t = (now - last).as_secs_f64() * 1e6;
        phi_normal(t, mean, std)
    }
}

/// Most members whose measurements (round trips, phi) are kept. Up to this
/// size of cluster every member has them; beyond it, those heard from most
/// recently. A bound, because a simulation holds one such map per member.
pub(crate) const MAX_PEERS: usize = 128;

/// Measurements of one member.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    name: Name,
    pub(crate) rtt: RttEstimator,
    pub(crate) phi: PhiDetector,
    /// When anything was last heard from it.
    last: Instant,
}

impl Peer {
    /// Something arrived from this peer: what [`Peers::touch`] and a
    /// heartbeat do for a peer already measured.
    pub(crate) fn heard(&mut self, now: Instant, phi_window: usize) {
        self.last = now;
        self.phi.heartbeat(now, phi_window);
    }
}

/// Measurements of the members heard from most recently (at most [`MAX_PEERS`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Peers {
    /// The measurements, in no particular order.
    slab: Vec<Peer>,
    /// The 64-bit hash of each one's name (cheaper to compare than names),
    /// by place in `slab`; the peer's name is checked on every lookup, so a
    /// collision only costs the older peer its measurements.
    keys: Vec<u64>,
    /// Places in `slab` by key: a hash table of one byte per place (one
    /// probe instead of a scan: every datagram looks its sender up here),
    /// never iterated. Small, because a simulation holds one per member:
    /// 0.5 KiB at [`MAX_PEERS`] where a map of keys to places took 4.4.
    index: HashTable<u8>,
}

const _: () = assert!(MAX_PEERS <= 256, "places in the slab fit a byte");

/// Where a key goes in the hash table (the key is already a hash; this
/// spreads its bits over the ones the table reads).
fn mix(key: u64) -> u64 {
    splitmix(key)
}

impl Peers {
    fn at(&self, key: u64) -> Option<usize> {
        let keys = &self.keys;
        self.index.find(mix(key), |&i| keys[usize::from(i)] == key).map(|&i| usize::from(i))
    }

    pub(crate) fn get<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> Option<&Peer> {
        let name = name.as_ref();
        self.at(name_hash(name)).map(|i| &self.slab[i]).filter(|p| p.name.as_str() == name)
    }

    /// The measurements of `name` (whose [`name_hash`] is `hash`), if it has any.
    pub(crate) fn get_mut(&mut self, hash: u64, name: &Name) -> Option<&mut Peer> {
        let i = self.at(hash)?;
        Some(&mut self.slab[i]).filter(|p| p.name == *name)
    }

    fn len(&self) -> usize {
        self.slab.len()
    }

    /// Adds a peer under `key` (absent).
    fn insert(&mut self, key: u64, peer: Peer) -> usize {
        let i = self.slab.len();
        let place = u8::try_from(i).expect("at most MAX_PEERS peers");
        self.slab.push(peer);
        self.keys.push(key);
        let keys = &self.keys;
        self.index.insert_unique(mix(key), place, |&j| mix(keys[usize::from(j)]));
        i
    }

    /// Removes the peer at key `key` (present).
    fn remove(&mut self, key: u64) {
        let keys = &self.keys;
        let entry = self.index.find_entry(mix(key), |&j| keys[usize::from(j)] == key);
        let i = usize::from(entry.expect("a peer at the key").remove().0);
        self.slab.swap_remove(i);
        self.keys.swap_remove(i);
        if let Some(&moved) = self.keys.get(i) {
            // The last peer moved from place `len` to `i`.
            let from = self.keys.len();
            let place = self.index.find_mut(mix(moved), |&j| usize::from(j) == from);
            *place.expect("the moved peer indexed") = u8::try_from(i).expect("at most MAX_PEERS peers");
        }
    }

    /// The measurements of `name`, created (and the oldest half forgotten
    /// when full) if it has none.
    /// `hash` is the name's [`name_hash`] (entries keep it).
    pub(crate) fn touch(&mut self, hash: u64, name: &Name, now: Instant) -> &mut Peer {
        let key = hash;
        let fresh = || Peer {
            name: name.clone(),
            rtt: RttEstimator::default(),
            phi: PhiDetector::default(),
            last: now,
        };
        let i = match self.at(key) {
            Some(i) => i,
            None => {
                if self.len() >= MAX_PEERS {
                    self.forget_oldest_half();
                }
                self.insert(key, fresh())
            }
        };
        let p = &mut self.slab[i];
        if p.name != *name {
            *p = fresh();
        }
        p.last = now;
        p
    }

    /// Forgets the half of the peers heard from least recently.
    fn forget_oldest_half(&mut self) {
        let mut lasts: Vec<(Instant, &Name, u64)> =
            self.slab.iter().zip(&self.keys).map(|(p, &k)| (p.last, &p.name, k)).collect();
        lasts.sort();
        let old: Vec<u64> = lasts.into_iter().take(MAX_PEERS / 2).map(|(_, _, k)| k).collect();
        for k in old {
            self.remove(k);
        }
    }

    /// Forgets `name`'s measurements (it restarted or returned).
    pub(crate) fn forget<Q: AsRef<str> + ?Sized>(&mut self, name: &Q) {
        let name = name.as_ref();
        let key = name_hash(name);
        if self.get(name).is_some() {
            self.remove(key);
        }
    }

    /// Every peer, in the order of its name's hash.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Name, &Peer)> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_unstable_by_key(|&i| self.keys[i]);
        order.into_iter().map(|i| {
            let p = &self.slab[i];
            (&p.name, p)
        })
    }
}

/// -log10(1 - CDF(t)) for a normal distribution, with the logistic
/// approximation of the CDF used by Akka and Cassandra (accurate to ~1e-4,
/// and finite far into the tail).
fn phi_normal(t: f64, mean: f64, std: f64) -> f64 {
    let y = (t - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p_later = if t > mean { e / (1.0 + e) } else { 1.0 - 1.0 / (1.0 + e) };
    if p_later <= 0.0 { 100.0 } else { (-p_later.log10()).clamp(0.0, 100.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_timeout_follows_round_trips_within_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(500));
        let mut r = RttEstimator::default();
        assert_eq!(r.timeout(4, min, max), max, "no sample yet: the upper bound");
        for _ in 0..20 {
            r.sample(Duration::from_millis(1));
        }
        assert_eq!(r.timeout(4, min, max), min, "fast peer: clamped to the lower bound");
        for _ in 0..20 {
            r.sample(Duration::from_millis(90));
            r.sample(Duration::from_millis(150));
        }
        let t = r.timeout(4, min, max);
        assert!(t > Duration::from_millis(150) && t <= max, "jittery peer: {t:?}");
    }

    #[test]
    fn peers_keep_the_most_recently_heard_within_the_bound() {
        let mut peers = Peers::default();
        let name = |k: usize| Name::new(&format!("m{k}")).unwrap();
        for k in 0..MAX_PEERS {
            peers.touch(name_hash(name(k).as_ref()), &name(k), Instant::from_micros(k as u64));
        }
        // m0 heard again: now the most recent.
        peers.touch(name_hash("m0"), &name(0), Instant::from_micros(10_000));
        peers.touch(name_hash(name(MAX_PEERS).as_ref()), &name(MAX_PEERS), Instant::from_micros(10_001));
        assert!(peers.iter().count() <= MAX_PEERS);
        assert!(peers.get(&name(0)).is_some(), "recently heard: kept");
        assert!(peers.get(&name(MAX_PEERS)).is_some(), "the new one: kept");
        assert!(peers.get(&name(1)).is_none(), "the oldest: forgotten");
        peers.forget(&name(0));
        assert!(peers.get(&name(0)).is_none());
    }

    #[test]
    fn peers_found_after_every_removal_and_listed_in_key_order() {
        let mut peers = Peers::default();
        let name = |k: usize| Name::new(&format!("p{k}")).unwrap();
        let mut known = std::collections::BTreeSet::new();
        // Touches and forgets in a scrambled order, past the bound twice.
        for step in 0..(3 * MAX_PEERS) {
            let k = (step * 37) % (2 * MAX_PEERS);
            if step % 5 == 4 {
                peers.forget(&name(k));
                assert!(peers.get(&name(k)).is_none(), "forgotten");
                known.remove(&k);
            } else {
                let n = name(k);
                peers.touch(name_hash(n.as_str()), &n, Instant::from_micros(step as u64));
                assert!(peers.get(&n).is_some(), "just touched");
                known.insert(k);
            }
            let listed: Vec<&Name> = peers.iter().map(|(n, _)| n).collect();
            assert!(listed.len() <= MAX_PEERS);
            let keys: Vec<u64> = listed.iter().map(|n| name_hash(n.as_str())).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "in key order");
            for n in &listed {
                assert!(peers.get(*n).is_some(), "{n} listed and found");
            }
            known.retain(|&k| peers.get(&name(k)).is_some());
            assert_eq!(known.len(), listed.len(), "every listed peer is one touched and not forgotten");
        }
    }

    #[test]
    fn a_peer_stays_small() {
        // A simulated member of a large cluster holds MAX_PEERS of these:
        // 128 x 56 bytes, where 72 were before the window left the detector
        // and the round-trip estimator lost its Option.
        assert!(std::mem::size_of::<Peer>() <= 56, "{} bytes", std::mem::size_of::<Peer>());
    }

    #[test]
    fn phi_rises_with_silence() {
        let mut d = PhiDetector::default();
        let mut now = Instant::ZERO;
        assert_eq!(d.phi(now), 0.0);
        for _ in 0..50 {
            now += Duration::from_secs(1);
            d.heartbeat(now, 100);
        }
        let on_time = d.phi(now + Duration::from_millis(900));
        let late = d.phi(now + Duration::from_millis(1200));
        let very_late = d.phi(now + Duration::from_secs(3));
        assert!(on_time < 1.0, "{on_time}");
        assert!(late > on_time && very_late > late, "{on_time} {late} {very_late}");
        assert!(very_late > 8.0, "{very_late}");
    }
}
