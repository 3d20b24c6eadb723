//! The membership table: one compact entry per known member, stored so that
//! tables can share memory.
//!
//! A simulation of n members holds n tables of n entries. Entries therefore
//! keep only what every member must know of every other (name, incarnation,
//! state, since, and a shared pointer to the content of the newest alive
//! claim); per-peer measurements and suspicions live beside the table, for
//! the few members they concern. Entries sit in a vector that copies share
//! ([`Entries`]: each copy's changed entries apart, by slot), and the name and
//! address indexes behind shared pointers, so a table cloned from a common
//! snapshot ([`crate::Snapshot`]) costs a few hundred bytes until it
//! diverges, and a change costs the entry it changed. A member's own
//! entry may be present but hidden (tables cloned from a snapshot of the
//! whole cluster): every lookup and iteration skips it.
//!
//! In a running agent there is one table and nothing is shared: the entries
//! are then a plain vector behind one more pointer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::ops::RangeBounds;
use std::sync::Arc;

use crate::codec::MemberState;
use crate::entries::Entries;
use crate::hash::{claim_digest, name_hash, splitmix};
use crate::index::Index;
use crate::member::{Health, Meta, Name, State};
use crate::time::Instant;

/// What the newest alive claim about a member said besides its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) addr: SocketAddr,
    pub(crate) meta: Meta,
    pub(crate) health: Health,
    /// Incarnation of the alive claim this content comes from.
    pub(crate) incarnation: u64,
}

/// One known member, as this member sees it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) name: Name,
    pub(crate) content: Arc<Content>,
    pub(crate) incarnation: u64,
    pub(crate) since: Instant,
    pub(crate) state: State,
    /// 64-bit FNV-1a of the name, for digests and buckets.
    pub(crate) hash: u64,
    /// Digest of the claim (name, incarnation, state), whatever the state;
    /// kept with the claim so that digests need no hashing.
    pub(crate) claim: u64,
}

impl Entry {
    /// A member first heard of alive at `incarnation`.
    pub(crate) fn alive(name: Name, incarnation: u64, content: Arc<Content>, now: Instant) -> Entry {
        let hash = name_hash(name.as_str());
        let claim = claim_digest(hash, incarnation, State::Alive);
        Entry { name, content, incarnation, since: now, state: State::Alive, hash, claim }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.content.addr
    }

    /// This entry as push-pull carries it.
    pub(crate) fn wire_state(&self) -> MemberState {
        MemberState {
            name: self.name.clone(),
            incarnation: self.incarnation,
            state: self.state,
            addr: self.content.addr,
            meta: self.content.meta.clone(),
            health: self.content.health.clone(),
        }
    }

    /// What this entry adds to the membership digest (0 unless active).
    fn digest(&self) -> u64 {
        if self.state.is_active() { self.claim } else { 0 }
    }
}

/// The members one member knows, indexed by name and by address.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    entries: Entries<Entry>,
    /// Slots by name, in name order: for listing the table.
    index: Overlay<Name, u32>,
    /// The same, hashed: for lookups (a B-tree of names compares names
    /// behind pointers at every level).
    names: Index<Name, u32>,
    by_addr: Index<SocketAddr, u32>,
    /// Every member by its place on the ring (see [`ring_key`]): whom to
    /// watch is "the next ones after me".
    ring: Overlay<u128, Name>,
    /// This member's own slot, when the table came from a shared snapshot.
    hidden: Option<usize>,
    /// Alive or suspect entries (the hidden one not counted).
    active: usize,
    /// Wrapping sum of the claim digests of the active entries.
    digest: u64,
    /// Slots of the entries held dead (the reconnect timer picks among them).
    dead: BTreeSet<u32>,
    /// The anti-entropy bucket sums of the visible entries, kept up to date
    /// so that a digest exchange does not sum the whole table.
    sums: BucketSums,
}

/// Buckets in which [`BucketSums`] keeps its sums: the most a digest
/// carries, so that any smaller power of two is a fold of them.
pub(crate) const SUM_BUCKETS: usize = 1 << crate::codec::MAX_DIGEST_BUCKETS_LOG2;

/// The bucket, among `buckets` (a power of two), of a member whose name
/// hashes to `name_hash`.
pub(crate) fn bucket_of(name_hash: u64, buckets: usize) -> usize {
    // `buckets` is a power of two; the low bits of FNV-1a are well mixed by splitmix.
    (splitmix(name_hash) as usize) & (buckets - 1)
}

/// Wrapping sums of the claim digests (truncated to 32 bits) of a table's
/// visible entries in [`SUM_BUCKETS`] buckets: a base that copies of a
/// snapshot share, and each copy's changes on top (a few per member in a
/// simulation, folded into a private base when there are many).
#[derive(Debug, Clone, Default)]
struct BucketSums {
    /// Empty (all zero) or [`SUM_BUCKETS`] sums.
    base: Arc<Vec<u32>>,
    /// Changes since the base was shared, by bucket.
    delta: BTreeMap<u16, u32>,
}

impl BucketSums {
    /// Changes beyond which a copy takes its own base.
    const MAX_DELTA: usize = 256;

    // Truncation intended: 32 bits per bucket is enough to tell tables apart.
    #[allow(clippy::cast_possible_truncation)]
    fn add(&mut self, hash: u64, claim: u64, negate: bool) {
        let d = if negate { (claim as u32).wrapping_neg() } else { claim as u32 };
        let b = u16::try_from(bucket_of(hash, SUM_BUCKETS)).expect("at most 2^16 buckets");
        let v = self.delta.entry(b).or_insert(0);
        *v = v.wrapping_add(d);
        if self.delta.len() > Self::MAX_DELTA {
            self.freeze();
        }
    }

    /// Folds the changes into the base.
    fn freeze(&mut self) {
        if self.delta.is_empty() {
            return;
        }
        let base = Arc::make_mut(&mut self.base);
        base.resize(SUM_BUCKETS, 0);
        for (b, d) in std::mem::take(&mut self.delta) {
            base[usize::from(b)] = base[usize::from(b)].wrapping_add(d);
        }
    }

    /// The sums in `buckets` buckets (a power of two, at most [`SUM_BUCKETS`]).
    fn fold(&self, buckets: usize) -> Vec<u32> {
        let mut out = vec![0u32; buckets];
        // Bucket b of the base folds into b mod `buckets`: add it `buckets` at a time.
        for chunk in self.base.chunks_exact(buckets) {
            for (o, &v) in out.iter_mut().zip(chunk) {
                *o = o.wrapping_add(v);
            }
        }
        for (&b, &v) in &self.delta {
            let b = usize::from(b) & (buckets - 1);
            out[b] = out[b].wrapping_add(v);
        }
        out
    }
}

/// A member's place on the watch ring: its name hash, then a second hash of
/// the name that keeps two names with the same first hash apart.
fn ring_key(e: &Entry) -> u128 {
    let second = e
        .name
        .as_str()
        .bytes()
        .fold(0x84222325_cbf29ce4u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
    (u128::from(e.hash) << 64) | u128::from(splitmix(second))
}

fn slot(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 members")
}

impl Table {
    /// Visible entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len() - usize::from(self.hidden.is_some())
    }

    /// Slots run from 0 to this, the hidden one included.
    pub(crate) fn slots(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn active(&self) -> usize {
        self.active
    }

    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// The visible entries' claim digests summed into `buckets` buckets (a
    /// power of two, at most [`SUM_BUCKETS`]) by [`bucket_of`]; what summing
    /// [`Table::iter`] gives, in O(buckets).
    pub(crate) fn bucket_sums(&self, buckets: usize) -> Vec<u32> {
        assert!(
            buckets.is_power_of_two() && buckets <= SUM_BUCKETS,
            "buckets: a power of two up to {SUM_BUCKETS}"
        );
        self.sums.fold(buckets)
    }

    /// True unless `i` is the hidden slot.
    pub(crate) fn visible(&self, i: usize) -> bool {
        self.hidden != Some(i)
    }

    pub(crate) fn get<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> Option<usize> {
        let i = *self.names.get(name.as_ref())? as usize;
        self.visible(i).then_some(i)
    }

    pub(crate) fn by_addr(&self, addr: &SocketAddr) -> Option<usize> {
        let i = *self.by_addr.get(addr)? as usize;
        self.visible(i).then_some(i)
    }

    pub(crate) fn entry(&self, i: usize) -> &Entry {
        self.entries.get(i)
    }

    fn entry_mut(&mut self, i: usize) -> &mut Entry {
        self.entries.get_mut(i)
    }

    /// The `k`-th of the entries held dead (in slot order), and how many there are.
    pub(crate) fn dead(&self, k: usize) -> (Option<usize>, usize) {
        (self.dead.iter().nth(k).map(|&i| i as usize), self.dead.len())
    }

    /// Visible entries in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.entries.iter().enumerate().filter(|(i, _)| self.visible(*i))
    }

    /// Visible entries in name order.
    pub(crate) fn by_name(&self) -> impl Iterator<Item = (usize, &Entry)> {
        self.index.iter().map(|(_, &i)| i as usize).filter(|&i| self.visible(i)).map(|i| (i, self.entry(i)))
    }

    /// Visible entries in ring order, starting after `hash` and wrapping
    /// around once (the entry at `hash` itself, if any, comes last).
    pub(crate) fn ring_after(&self, hash: u64) -> impl Iterator<Item = (usize, &Entry)> {
        let key = (u128::from(hash) << 64) | u128::from(u64::MAX);
        let after = self.ring.range((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded));
        let before = self.ring.range(..=key);
        after.chain(before).filter_map(|(_, name)| self.get(name)).map(|i| (i, self.entry(i)))
    }

    /// Adds a member not known yet; returns its slot.
    pub(crate) fn push(&mut self, e: Entry) -> usize {
        let i = self.entries.len();
        self.index.insert(e.name.clone(), slot(i));
        self.names.insert(e.name.clone(), slot(i));
        self.by_addr.insert(e.addr(), slot(i));
        self.ring.insert(ring_key(&e), e.name.clone());
        if e.state.is_active() {
            self.active += 1;
        }
        self.digest = self.digest.wrapping_add(e.digest());
        self.sums.add(e.hash, e.claim, false);
        if e.state == State::Dead {
            self.dead.insert(slot(i));
        }
        self.entries.push(e)
    }

    /// Sets what is believed of entry `i`; `since` moves when the state does.
    pub(crate) fn set_claim(&mut self, i: usize, incarnation: u64, state: State, now: Instant) {
        let hidden = !self.visible(i);
        let e = self.entry_mut(i);
        let (old_digest, old_claim, was_active) = (e.digest(), e.claim, e.state.is_active());
        if e.state != state {
            e.since = now;
        }
        e.state = state;
        e.incarnation = incarnation;
        e.claim = claim_digest(e.hash, incarnation, state);
        let (new_digest, hash, new_claim) = (e.digest(), e.hash, e.claim);
        if hidden {
            return;
        }
        if new_claim != old_claim {
            self.sums.add(hash, old_claim, true);
            self.sums.add(hash, new_claim, false);
        }
        if state == State::Dead {
            self.dead.insert(slot(i));
        } else {
            self.dead.remove(&slot(i));
        }
        self.digest = self.digest.wrapping_sub(old_digest).wrapping_add(new_digest);
        match (was_active, state.is_active()) {
            (true, false) => self.active -= 1,
            (false, true) => self.active += 1,
            _ => {}
        }
    }

    /// Replaces the content of entry `i`, keeping the address index in step.
    pub(crate) fn set_content(&mut self, i: usize, content: Arc<Content>) {
        let old = self.entry(i).addr();
        let new = content.addr;
        self.entry_mut(i).content = content;
        if old != new {
            if self.by_addr.get(&old) == Some(&slot(i)) {
                self.by_addr.remove(&old);
            }
            self.by_addr.insert(new, slot(i));
        }
    }

    /// Forgets entry `i` (an inactive one): the last entry takes its slot.
    pub(crate) fn remove(&mut self, i: usize) {
        let last = self.entries.len() - 1;
        let gone = self.entry(i).clone();
        if self.visible(i) {
            self.sums.add(gone.hash, gone.claim, true);
        }
        if gone.state.is_active() && self.visible(i) {
            self.active -= 1;
            self.digest = self.digest.wrapping_sub(gone.digest());
        }
        let moved = self.entries.pop().expect("table not empty");
        self.dead.remove(&slot(i));
        if self.dead.remove(&slot(last)) {
            self.dead.insert(slot(i));
        }
        self.index.remove(&gone.name);
        self.names.remove(&gone.name);
        self.ring.remove(&ring_key(&gone));
        if self.by_addr.get(&gone.addr()) == Some(&slot(i)) {
            self.by_addr.remove(&gone.addr());
        }
        if i != last {
            if self.by_addr.get(&moved.addr()) == Some(&slot(last)) {
                self.by_addr.insert(moved.addr(), slot(i));
            }
            self.index.insert(moved.name.clone(), slot(i));
            self.names.insert(moved.name.clone(), slot(i));
            self.entries.set(i, moved);
            if self.hidden == Some(last) {
                self.hidden = Some(i);
            }
        }
        if self.hidden == Some(i) && i == last {
            self.hidden = None;
        }
    }

    /// Folds the indexes into bases that copies share (see [`Table::shared_for`]).
    pub(crate) fn freeze(&mut self) {
        self.entries.freeze();
        self.index.freeze();
        self.names.freeze();
        self.by_addr.freeze();
        self.ring.freeze();
        self.sums.freeze();
    }

    /// A copy of this table sharing its memory, with `name`'s entry hidden:
    /// the table of member `name` in a cluster that this table describes.
    pub(crate) fn shared_for(&self, name: &str) -> Table {
        let mut t = self.clone();
        if let Some(&i) = self.names.get(name) {
            let i = i as usize;
            let e = self.entry(i);
            if e.state.is_active() {
                t.active -= 1;
                t.digest = t.digest.wrapping_sub(e.digest());
            }
            t.sums.add(e.hash, e.claim, true);
            t.hidden = Some(i);
        }
        t
    }
}

/// A map shared by many tables, with each table's own changes on top: a
/// member that joins a simulated cluster of n adds one key to n overlays
/// instead of copying n maps of n keys.
#[derive(Debug, Clone)]
struct Overlay<K, V> {
    base: Arc<BTreeMap<K, V>>,
    /// Keys added or changed since the base was shared.
    added: BTreeMap<K, V>,
    /// Keys of the base removed since.
    removed: BTreeSet<K>,
}

impl<K, V> Default for Overlay<K, V> {
    fn default() -> Self {
        Overlay { base: Arc::default(), added: BTreeMap::new(), removed: BTreeSet::new() }
    }
}

impl<K: Ord + Clone, V: Clone> Overlay<K, V> {
    fn insert(&mut self, k: K, v: V) {
        self.removed.remove(&k);
        self.added.insert(k, v);
    }

    fn remove(&mut self, k: &K) {
        self.added.remove(k);
        if self.base.contains_key(k) {
            self.removed.insert(k.clone());
        }
    }

    /// Folds this table's changes into a new base that copies share.
    fn freeze(&mut self) {
        if self.added.is_empty() && self.removed.is_empty() {
            return;
        }
        let base = Arc::make_mut(&mut self.base);
        for k in std::mem::take(&mut self.removed) {
            base.remove(&k);
        }
        base.append(&mut self.added);
    }

    /// Every key in order, with its value.
    fn iter(&self) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        self.range(..)
    }

    /// The keys in `range`, in order, with their values.
    fn range<R: RangeBounds<K> + Clone>(&self, range: R) -> Box<dyn Iterator<Item = (&K, &V)> + '_> {
        if self.added.is_empty() && self.removed.is_empty() {
            return Box::new(self.base.range(range));
        }
        if self.base.is_empty() {
            return Box::new(self.added.range(range));
        }
        let mut base = self
            .base
            .range(range.clone())
            .filter(|(k, _)| !self.removed.contains(*k) && !self.added.contains_key(*k))
            .peekable();
        let mut added = self.added.range(range).peekable();
        Box::new(std::iter::from_fn(move || match (base.peek(), added.peek()) {
            (Some((a, _)), Some((b, _))) => {
                if a < b {
                    base.next()
                } else {
                    added.next()
                }
            }
            (Some(_), None) => base.next(),
            (None, _) => added.next(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, port: u16) -> Entry {
        let content = Arc::new(Content {
            addr: ([127, 0, 0, 1], port).into(),
            meta: Meta::default(),
            health: Health::ok(),
            incarnation: 1,
        });
        Entry::alive(Name::new(name).unwrap(), 1, content, Instant::ZERO)
    }

    /// A frozen table of members `m000`, `m001`, … (`m0`, `m1`, … when `short`).
    fn table(n: u16, short: bool) -> Table {
        let mut t = Table::default();
        for k in 0..n {
            let name = if short { format!("m{k}") } else { format!("m{k:03}") };
            t.push(entry(&name, 1000 + k));
        }
        t.freeze();
        t
    }

    fn names(t: &Table) -> Vec<String> {
        t.by_name().map(|(_, e)| e.name.to_string()).collect()
    }

    #[test]
    fn push_lookup_and_remove_keep_indexes_in_step() {
        let mut t = table(200, false);
        assert_eq!((t.len(), t.active()), (200, 200));
        let i = t.get("m010").unwrap();
        t.set_claim(i, 2, State::Dead, Instant::ZERO);
        assert_eq!(t.active(), 199);
        t.remove(i);
        assert_eq!(t.len(), 199);
        assert_eq!(t.get("m010"), None);
        let j = t.get("m199").expect("the moved entry is found under its name");
        assert_eq!(t.entry(j).name.as_str(), "m199");
        assert_eq!(t.by_addr(&([127, 0, 0, 1], 1199).into()), Some(j));
        assert_eq!(t.by_addr(&([127, 0, 0, 1], 1010).into()), None);
        assert_eq!(names(&t).len(), 199);
    }

    #[test]
    fn shared_copies_diverge_without_touching_each_other() {
        let base = table(150, false);
        let mut a = base.shared_for("m007");
        let b = base.shared_for("m100");
        assert_eq!(a.get("m007"), None, "own entry hidden");
        assert!(b.get("m007").is_some());
        assert_eq!((a.len(), a.active()), (149, 149));
        assert!(!names(&a).contains(&"m007".to_string()));
        assert_eq!(a.iter().count(), 149);
        let i = a.get("m120").unwrap();
        a.set_claim(i, 1, State::Suspect, Instant::ZERO);
        assert_eq!(a.entry(i).state, State::Suspect);
        assert_eq!(b.entry(b.get("m120").unwrap()).state, State::Alive, "b unchanged");
        assert_eq!(base.entry(i).state, State::Alive, "the snapshot unchanged");
        // Only the entry that changed was copied.
        assert_eq!(a.entries.own_len(), 1);
    }

    #[test]
    fn a_member_added_to_shared_copies_stays_in_each_copy_alone() {
        let base = table(100, false);
        let mut a = base.shared_for("m000");
        let b = base.shared_for("m001");
        let i = a.push(entry("m050x", 5000));
        assert_eq!(a.get("m050x"), Some(i));
        assert_eq!(b.get("m050x"), None);
        let order = names(&a);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "in name order across base and overlay");
        assert_eq!(order.len(), 100);
        let j = a.get("m020").unwrap();
        a.set_claim(j, 2, State::Left, Instant::ZERO);
        a.remove(j);
        assert_eq!(a.get("m020"), None);
        assert!(b.get("m020").is_some());
        assert_eq!(a.get("m050x"), Some(j), "the last entry moved into the freed slot");
        assert_eq!(a.by_addr(&([127, 0, 0, 1], 5000).into()), Some(j));
        assert_eq!(names(&a).len(), 99);
    }

    #[test]
    fn digest_follows_claims_and_ignores_the_hidden_entry() {
        let base = table(10, true);
        let mut a = base.shared_for("m3");
        let mut fresh = Table::default();
        for k in (0..10u16).filter(|&k| k != 3) {
            fresh.push(entry(&format!("m{k}"), 1000 + k));
        }
        assert_eq!(a.digest(), fresh.digest());
        let (i, j) = (a.get("m5").unwrap(), fresh.get("m5").unwrap());
        a.set_claim(i, 4, State::Suspect, Instant::ZERO);
        fresh.set_claim(j, 4, State::Suspect, Instant::ZERO);
        assert_eq!(a.digest(), fresh.digest());
        a.set_claim(i, 4, State::Left, Instant::ZERO);
        fresh.set_claim(j, 4, State::Left, Instant::ZERO);
        assert_eq!(a.digest(), fresh.digest());
        assert_eq!(a.active(), 8);
    }

    /// The bucket sums as anti-entropy summed them before the table kept them.
    fn scanned_sums(t: &Table, buckets: usize) -> Vec<u32> {
        let mut sums = vec![0u32; buckets];
        for (_, e) in t.iter() {
            let b = bucket_of(e.hash, buckets);
            sums[b] = sums[b].wrapping_add(e.claim as u32);
        }
        sums
    }

    #[test]
    fn bucket_sums_follow_every_change_of_shared_copies() {
        let base = table(300, false);
        let mut a = base.shared_for("m007");
        let mut b = base.shared_for("m100");
        // Enough changes in `a` that it takes its own base (more than MAX_DELTA buckets).
        for k in (0..300u16).step_by(2).filter(|&k| k != 7) {
            let i = a.get(&format!("m{k:03}")).unwrap();
            a.set_claim(
                i,
                2 + u64::from(k),
                if k % 3 == 0 { State::Dead } else { State::Suspect },
                Instant::ZERO,
            );
        }
        let i = b.get("m042").unwrap();
        b.set_claim(i, 9, State::Left, Instant::ZERO);
        b.push(entry("new", 2000));
        let gone = b.get("m000").unwrap();
        b.remove(gone);
        // Removing the slot before the hidden one moves the hidden entry.
        let last = b.slots() - 1;
        let gone = b.get(&b.entry(last).name.clone()).unwrap_or(last);
        b.remove(gone);
        // The hidden entry changes without counting.
        let h = base.get("m100").unwrap();
        b.set_claim(h, 5, State::Dead, Instant::ZERO);
        for buckets in [1, 2, 16, 64, 1024, SUM_BUCKETS] {
            assert_eq!(a.bucket_sums(buckets), scanned_sums(&a, buckets), "a, {buckets} buckets");
            assert_eq!(b.bucket_sums(buckets), scanned_sums(&b, buckets), "b, {buckets} buckets");
            assert_eq!(base.bucket_sums(buckets), scanned_sums(&base, buckets), "base, {buckets} buckets");
        }
    }

    #[test]
    fn dead_entries_are_tracked_through_removal() {
        let mut t = table(10, true);
        let (i, j) = (t.get("m2").unwrap(), t.get("m5").unwrap());
        t.set_claim(i, 1, State::Dead, Instant::ZERO);
        t.set_claim(j, 1, State::Dead, Instant::ZERO);
        assert_eq!(t.dead(0), (Some(i), 2));
        t.set_claim(i, 2, State::Alive, Instant::ZERO);
        assert_eq!(t.dead(0), (Some(j), 1));
        // The last entry is dead, and moves into the slot of a removed one.
        let last = t.get("m9").unwrap();
        t.set_claim(last, 1, State::Dead, Instant::ZERO);
        let gone = t.get("m0").unwrap();
        t.set_claim(gone, 1, State::Left, Instant::ZERO);
        t.remove(gone);
        let moved = t.get("m9").unwrap();
        assert_eq!(moved, gone);
        let dead: Vec<usize> = (0..2).filter_map(|k| t.dead(k).0).collect();
        assert_eq!(dead, vec![moved, j]);
    }
}
