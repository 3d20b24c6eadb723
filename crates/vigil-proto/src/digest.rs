//! Anti-entropy by digest, and the membership digest that compares views.
//!
//! A periodic push-pull no longer sends the whole table. The initiator sends
//! its table summed into `B` buckets by name hash (`B` a power of two, about
//! one bucket per 8 members, at most 4 096), and its own state. The receiver
//! sums its own table the same way and answers with its sums and its full
//! states in the buckets that differ. The initiator merges them, compares
//! again, and sends its states in the buckets that still differ as a
//! push-pull reply. When the two tables agree (the common case) an exchange
//! costs `4·B` bytes each way instead of the whole table; when they differ,
//! only the differing buckets (≈ 8 members each) travel. Joins still exchange
//! the whole table: the joiner knows nothing yet.

use std::net::SocketAddr;

use crate::codec::{self, MemberState, Message};
use crate::core::{Channel, Core, Transmit};
use crate::member::State;
use crate::time::Instant;

/// Members per digest bucket the initiator aims for.
const MEMBERS_PER_BUCKET: usize = 8;

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A number in [0, 1) derived from `seed` without an RNG draw.
pub(crate) fn unit_from_seed(seed: u64) -> f64 {
    (splitmix(seed ^ 0x0005_EED0_FC01_1EC7) >> 11) as f64 / (1u64 << 53) as f64
}

/// 64-bit FNV-1a of a name.
pub(crate) fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The digest of one claim `(name, incarnation, state)`, from the name's [`name_hash`].
pub(crate) fn claim_digest(name_hash: u64, incarnation: u64, state: State) -> u64 {
    splitmix(name_hash ^ splitmix(incarnation ^ (u64::from(state.to_wire()) << 60)))
}

/// The digest of a view that holds exactly these members alive, each at its
/// incarnation: what [`Core::membership_digest`] returns for such a view.
/// Order does not matter (the digest is a wrapping sum).
pub fn view_digest<'a>(members: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
    members.into_iter().fold(0u64, |acc, (name, incarnation)| {
        acc.wrapping_add(claim_digest(name_hash(name), incarnation, State::Alive))
    })
}

/// Buckets for a table of `n` entries: a power of two, about one per 8 members.
fn bucket_count(n: usize) -> usize {
    (n / MEMBERS_PER_BUCKET).max(1).next_power_of_two().min(1 << codec::MAX_DIGEST_BUCKETS_LOG2)
}

fn bucket_of(name_hash: u64, buckets: usize) -> usize {
    // `buckets` is a power of two; the low bits of FNV-1a are well mixed by splitmix.
    (splitmix(name_hash) as usize) & (buckets - 1)
}

impl Core {
    /// A 64-bit digest of this member's view: every member it holds alive or
    /// suspect (itself included, unless leaving), with its incarnation and
    /// state. Two members with equal digests hold the same view; compare it
    /// across members (in metrics, or in the simulator) to see that views
    /// converged, and with [`view_digest`] of the members known to be up.
    pub fn membership_digest(&self) -> u64 {
        let own = if self.leaving {
            0
        } else {
            claim_digest(name_hash(self.me.name.as_str()), self.incarnation, State::Alive)
        };
        // Kept up to date by the table at every change: O(1), not O(n).
        own.wrapping_add(self.table.digest())
    }

    pub(crate) fn own_state(&self) -> MemberState {
        MemberState {
            name: self.me.name.clone(),
            incarnation: self.incarnation,
            state: if self.leaving { State::Left } else { State::Alive },
            addr: self.me.addr,
            meta: self.me.meta.clone(),
            health: self.me.health.clone(),
        }
    }

    /// This member's table (itself included, dead and left members too)
    /// summed into `buckets` buckets.
    fn bucket_sums(&self, buckets: usize) -> Vec<u32> {
        let mut sums = vec![0u32; buckets];
        let mut add = |hash: u64, claim: u64| {
            let b = bucket_of(hash, buckets);
            // Truncation intended: 32 bits per bucket is enough to tell tables apart.
            #[allow(clippy::cast_possible_truncation)]
            let d = claim as u32;
            sums[b] = sums[b].wrapping_add(d);
        };
        let own = self.own_state();
        let own_hash = name_hash(own.name.as_str());
        add(own_hash, claim_digest(own_hash, own.incarnation, own.state));
        for (_, e) in self.table.iter() {
            add(e.hash, e.claim);
        }
        sums
    }

    /// This member's own state, then its states in the buckets where `sums`
    /// (another member's) differ from its own.
    fn states_differing(&self, sums: &[u32]) -> Vec<MemberState> {
        let buckets = sums.len();
        let mine = self.bucket_sums(buckets);
        let differ: Vec<bool> = mine.iter().zip(sums).map(|(a, b)| a != b).collect();
        let mut states = vec![self.own_state()];
        // Slot order: deterministic, and cheaper than name order in a shared table.
        states.extend(
            self.table
                .iter()
                .filter(|(_, e)| differ[bucket_of(e.hash, buckets)])
                .map(|(_, e)| e.wire_state()),
        );
        states
    }

    /// Starts a periodic anti-entropy exchange with `dst`: sends the digest.
    pub(crate) fn send_digest(&mut self, dst: SocketAddr) {
        let sums = self.bucket_sums(bucket_count(self.table.len() + 1));
        let states = vec![self.own_state()];
        self.stats.push_pulls_sent += 1;
        self.push_stream(dst, Message::Digest { reply: false, sums, states });
    }

    /// A digest arrived on a stream from `from`.
    pub(crate) fn on_digest(
        &mut self,
        now: Instant,
        from: SocketAddr,
        reply: bool,
        sums: Vec<u32>,
        states: Vec<MemberState>,
    ) {
        if !sums.len().is_power_of_two() {
            return;
        }
        self.merge_states(now, states);
        self.send_refutations();
        if self.leaving {
            return;
        }
        if !reply {
            // Our sums and our states where the initiator's table differs.
            let states = self.states_differing(&sums);
            let own = self.bucket_sums(sums.len());
            self.push_stream(from, Message::Digest { reply: true, sums: own, states });
        } else {
            // After merging their differing states, send ours where we still differ.
            let states = self.states_differing(&sums);
            if states.len() > 1 {
                self.push_stream(from, Message::PushPull { join: false, reply: true, states });
            }
        }
    }

    fn push_stream(&mut self, dst: SocketAddr, message: Message) {
        let payload = codec::encode(&codec::Packet { message, updates: vec![] });
        self.transmits.push_back(Transmit { dst, channel: Channel::Stream, payload });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_count_is_a_bounded_power_of_two() {
        assert_eq!(bucket_count(1), 1);
        assert_eq!(bucket_count(100), 16);
        assert_eq!(bucket_count(10_000), 2048);
        assert_eq!(bucket_count(10_000_000), 4096);
    }

    #[test]
    fn view_digest_ignores_order_and_sees_incarnations() {
        let a = view_digest([("a", 1), ("b", 2)]);
        assert_eq!(a, view_digest([("b", 2), ("a", 1)]));
        assert_ne!(a, view_digest([("a", 1), ("b", 3)]));
        assert_ne!(a, view_digest([("a", 1)]));
    }
}
