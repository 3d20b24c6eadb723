//! Hashes and digests: plain functions of their inputs, shared by the table,
//! the probe order, the per-peer measurements and anti-entropy.

use std::hash::{BuildHasher, Hasher};

use crate::member::State;

/// splitmix64's finaliser: a well-mixed 64-bit function of `z`.
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
/// incarnation: what [`Core::membership_digest`](crate::Core::membership_digest)
/// returns for such a view. Order does not matter (the digest is a wrapping sum).
pub fn view_digest<'a>(members: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
    members.into_iter().fold(0u64, |acc, (name, incarnation)| {
        acc.wrapping_add(claim_digest(name_hash(name), incarnation, State::Alive))
    })
}

/// The hasher of the in-memory hash indexes (table lookups by name and by
/// address): unkeyed, so every run lays the maps out alike, and fast on
/// short keys. Nothing iterates a map hashed with it, so no order of its
/// reaches behaviour; only point lookups do.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FixedState;

impl BuildHasher for FixedState {
    type Hasher = FixedHasher;

    fn build_hasher(&self) -> FixedHasher {
        FixedHasher(0)
    }
}

/// See [`FixedState`]: eight bytes at a time, mixed by splitmix at the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedHasher(u64);

impl FixedHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    }
}

impl Hasher for FixedHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.add(bytes.len() as u64);
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("eight bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, v: u8) {
        self.add(u64::from(v));
    }

    fn write_u16(&mut self, v: u16) {
        self.add(u64::from(v));
    }

    fn write_u32(&mut self, v: u32) {
        self.add(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.add(v);
    }

    fn write_usize(&mut self, v: usize) {
        self.add(v as u64);
    }

    fn finish(&self) -> u64 {
        splitmix(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_digest_ignores_order_and_sees_incarnations() {
        let a = view_digest([("a", 1), ("b", 2)]);
        assert_eq!(a, view_digest([("b", 2), ("a", 1)]));
        assert_ne!(a, view_digest([("a", 1), ("b", 3)]));
        assert_ne!(a, view_digest([("a", 1)]));
    }
}
