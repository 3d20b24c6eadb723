//! The probe order: randomised round-robin over the table's slots, in O(1)
//! state however large the cluster.

use rand::RngExt;
use rand::rngs::ChaCha8Rng;

use crate::hash::splitmix;
use crate::member::Name;
use crate::table::Table;

/// One round of probing: a pseudo-random permutation of the slots `0..len`,
/// keyed per round, walked one position at a time (a 4-round Feistel network
/// over the next power of four, cycle-walking past `len`), plus the members
/// that became active during the round.
#[derive(Debug, Default)]
pub(crate) struct ProbeRound {
    key: u64,
    len: usize,
    pos: usize,
    /// Bits per Feistel half.
    half: u32,
    /// Members that became active mid-round, to be slotted in.
    late: Vec<Name>,
}

impl ProbeRound {
    pub(crate) fn new(len: usize, key: u64) -> ProbeRound {
        let mut half = 1;
        while (1usize << (2 * half)) < len {
            half += 1;
        }
        ProbeRound { key, len, pos: 0, half, late: Vec::new() }
    }

    /// Adds a member that became active to the current round.
    pub(crate) fn add_late(&mut self, name: Name) {
        self.late.push(name);
    }

    /// The next member to probe: every active member once per round, in a
    /// fresh random order each round; members that became active mid-round
    /// are slotted in at a random later position.
    ///
    /// The order is a keyed pseudo-random permutation of the table's slots,
    /// not a shuffled list: a member keeps O(1) state for it however large
    /// the cluster.
    pub(crate) fn next_target(&mut self, rng: &mut ChaCha8Rng, table: &Table) -> Option<usize> {
        for _ in 0..2 {
            loop {
                let remaining = self.remaining();
                let late = self.late.len();
                if remaining + late == 0 {
                    break;
                }
                // Each late member sits at a uniformly random place among what is left.
                let i = if rng.random_range(0..remaining + late) < late {
                    let k = rng.random_range(0..late);
                    let name = self.late.swap_remove(k);
                    table.get(&name)
                } else {
                    self.next().filter(|&i| i < table.slots() && table.visible(i))
                };
                if let Some(i) = i
                    && table.entry(i).state.is_active()
                {
                    return Some(i);
                }
            }
            if table.active() == 0 {
                return None;
            }
            *self = ProbeRound::new(table.slots(), rng.random());
        }
        None
    }

    /// Positions not yet walked.
    fn remaining(&self) -> usize {
        self.len - self.pos
    }

    /// The slot at the next position.
    fn next(&mut self) -> Option<usize> {
        if self.pos >= self.len {
            return None;
        }
        let mut x = self.pos as u64;
        self.pos += 1;
        // A permutation of 0..4^half; walking its cycle until the value falls
        // below len keeps it a permutation of 0..len.
        loop {
            x = self.permute(x);
            if (x as usize) < self.len {
                return Some(x as usize);
            }
        }
    }

    fn permute(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half) - 1;
        let (mut l, mut r) = (x >> self.half, x & mask);
        for round in 0..4u64 {
            let f = splitmix(self.key ^ (round << 56) ^ r) & mask;
            (l, r) = (r, l ^ f);
        }
        (l << self.half) | r
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeRound;

    #[test]
    fn a_round_visits_every_slot_exactly_once() {
        for len in [1usize, 2, 3, 5, 16, 17, 100, 1000, 4097] {
            for key in [0u64, 1, 0xDEAD_BEEF] {
                let mut round = ProbeRound::new(len, key);
                let mut seen = vec![false; len];
                while let Some(i) = round.next() {
                    assert!(!seen[i], "slot {i} twice (len {len})");
                    seen[i] = true;
                }
                assert!(seen.iter().all(|&s| s), "len {len} key {key}: a slot was skipped");
            }
        }
    }

    #[test]
    fn rounds_with_different_keys_differ() {
        let order = |key| {
            let mut r = ProbeRound::new(50, key);
            std::iter::from_fn(|| r.next()).collect::<Vec<_>>()
        };
        assert_ne!(order(1), order(2));
        assert_ne!(order(1), (0..50).collect::<Vec<_>>());
    }
}
