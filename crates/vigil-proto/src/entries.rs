//! The membership table's entries: a vector that copies of a snapshot share,
//! and each copy's own changes by slot.
//!
//! A simulation of n members holds n copies of a table of n entries, and a
//! member changes a handful of them (the members that crashed, the one that
//! refuted a suspicion). A copy therefore keeps one pointer to the shared
//! vector and the entries it changed, one by one, in a map by slot: a change
//! costs one entry, not a copy of the vector or of a block of it. A copy that
//! is not shared (a running agent's one table) writes into its vector in
//! place and keeps no map.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Entries by slot, `0..len()`, as a shared vector and this copy's own
/// changes on top of it.
#[derive(Debug, Clone)]
pub(crate) struct Entries<T> {
    /// Shared with other copies, or this copy's alone. Places at `len` and
    /// beyond are stale (left by [`Entries::pop`]) and never read.
    base: Arc<Vec<T>>,
    /// Entries that differ from `base` or lie past its end, by slot: only
    /// while `base` is shared.
    own: BTreeMap<u32, T>,
    len: usize,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries { base: Arc::default(), own: BTreeMap::new(), len: 0 }
    }
}

fn key(i: usize) -> u32 {
    u32::try_from(i).expect("fewer than 2^32 members")
}

impl<T: Clone> Entries<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Entries this copy holds apart from the shared vector.
    #[cfg(test)]
    pub(crate) fn own_len(&self) -> usize {
        self.own.len()
    }

    /// The entry in slot `i` (`i < len()`).
    pub(crate) fn get(&self, i: usize) -> &T {
        assert!(i < self.len, "slot {i} of {}", self.len);
        if !self.own.is_empty()
            && let Some(e) = self.own.get(&key(i))
        {
            return e;
        }
        &self.base[i]
    }

    /// The entry in slot `i` (`i < len()`), to change: copied into this
    /// copy's own map first when the vector is shared.
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut T {
        assert!(i < self.len, "slot {i} of {}", self.len);
        self.settle();
        // Not shared: settled, so no map; changed in place.
        if Arc::get_mut(&mut self.base).is_some() {
            return &mut Arc::get_mut(&mut self.base).expect("just checked")[i];
        }
        let base = &self.base;
        self.own.entry(key(i)).or_insert_with(|| base[i].clone())
    }

    /// Puts `e` in slot `i` (`i <= len()`; `i == len()` appends).
    pub(crate) fn set(&mut self, i: usize, e: T) {
        assert!(i <= self.len, "slot {i} of {}", self.len);
        self.settle();
        if i == self.len {
            self.len += 1;
        }
        match Arc::get_mut(&mut self.base) {
            Some(base) if i < base.len() => base[i] = e,
            Some(base) if i == base.len() => base.push(e),
            _ => {
                self.own.insert(key(i), e);
            }
        }
    }

    /// Appends `e`; returns its slot.
    pub(crate) fn push(&mut self, e: T) -> usize {
        let i = self.len;
        self.set(i, e);
        i
    }

    /// Takes the last entry out.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let i = self.len.checked_sub(1)?;
        self.len = i;
        if let Some(e) = self.own.remove(&key(i)) {
            return Some(e);
        }
        match Arc::get_mut(&mut self.base) {
            Some(base) if i + 1 == base.len() => base.pop(),
            _ => Some(self.base[i].clone()),
        }
    }

    /// Entries in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        let mut own = self.own.iter().peekable();
        (0..self.len).map(move |i| match own.peek() {
            Some(&(&k, _)) if k as usize == i => own.next().expect("peeked").1,
            _ => &self.base[i],
        })
    }

    /// Folds this copy's own changes into its vector once no other copy
    /// shares it, so that a table that stopped being shared (a clone
    /// dropped) does not keep a map.
    fn settle(&mut self) {
        if self.own.is_empty() {
            return;
        }
        let Some(base) = Arc::get_mut(&mut self.base) else { return };
        base.truncate(self.len);
        for (k, e) in std::mem::take(&mut self.own) {
            let k = k as usize;
            if k < base.len() {
                base[k] = e;
            } else {
                // Slots past the vector's end are all in the map, in order.
                debug_assert_eq!(k, base.len());
                base.push(e);
            }
        }
    }

    /// Folds this copy's own changes into a vector of its own (copying the
    /// shared one if need be), for copies to share.
    pub(crate) fn freeze(&mut self) {
        if self.own.is_empty() && self.base.len() == self.len {
            return;
        }
        Arc::make_mut(&mut self.base);
        self.settle();
        Arc::get_mut(&mut self.base).expect("made unique").truncate(self.len);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, u32),
        Push(u32),
        Pop,
        /// Change an entry in place.
        Bump(usize),
        /// Share the vector with a clone kept alive, or drop the clones.
        Share,
        Unshare,
        Freeze,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..40usize, any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
            any::<u32>().prop_map(Op::Push),
            Just(Op::Pop),
            (0..40usize).prop_map(Op::Bump),
            Just(Op::Share),
            Just(Op::Unshare),
            Just(Op::Freeze),
        ]
    }

    proptest! {
        /// Whatever the sharing, a copy reads as a plain vector does, and the
        /// clones it shared with read as they did when taken.
        #[test]
        fn copies_read_as_plain_vectors(ops in prop::collection::vec(op(), 0..120)) {
            let mut e: Entries<u32> = Entries::default();
            let mut model: Vec<u32> = Vec::new();
            let mut clones: Vec<(Entries<u32>, Vec<u32>)> = Vec::new();
            for op in ops {
                match op {
                    Op::Set(i, v) if i <= model.len() => {
                        e.set(i, v);
                        if i == model.len() { model.push(v) } else { model[i] = v }
                    }
                    Op::Set(..) => {}
                    Op::Push(v) => {
                        prop_assert_eq!(e.push(v), model.len());
                        model.push(v);
                    }
                    Op::Pop => prop_assert_eq!(e.pop(), model.pop()),
                    Op::Bump(i) if i < model.len() => {
                        let v = e.get_mut(i);
                        *v = v.wrapping_add(1);
                        model[i] = model[i].wrapping_add(1);
                    }
                    Op::Bump(_) => {}
                    Op::Share => clones.push((e.clone(), model.clone())),
                    Op::Unshare => clones.clear(),
                    Op::Freeze => e.freeze(),
                }
                prop_assert_eq!(e.len(), model.len());
                prop_assert_eq!(e.iter().copied().collect::<Vec<_>>(), model.clone());
                for (i, v) in model.iter().enumerate() {
                    prop_assert_eq!(e.get(i), v);
                }
                for (c, m) in &clones {
                    prop_assert_eq!(c.iter().copied().collect::<Vec<_>>(), m.clone());
                }
            }
        }
    }

    #[test]
    fn a_shared_copy_pays_for_the_entries_it_changed_only() {
        let mut base: Entries<u64> = Entries::default();
        for k in 0..1000 {
            base.push(k);
        }
        base.freeze();
        let mut a = base.clone();
        let b = base.clone();
        *a.get_mut(500) = 7;
        a.push(1000);
        assert_eq!(a.own_len(), 2);
        assert!(Arc::ptr_eq(&a.base, &b.base), "the vector still shared");
        assert_eq!((*a.get(500), *b.get(500), *a.get(1000)), (7, 500, 1000));
        // Once no other copy shares it, changes go back in place.
        drop((base, b));
        *a.get_mut(3) = 9;
        assert_eq!(a.own_len(), 0);
        assert_eq!((*a.get(3), *a.get(500), *a.get(1000), a.len()), (9, 7, 1000, 1001));
    }
}
