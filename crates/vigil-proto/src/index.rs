//! Hash indexes for point lookups (a member table's slots by name and by
//! address), shared between copies of a table like the table's ordered
//! overlays.
//!
//! The crate bans `HashMap` and `HashSet` because their iteration order is
//! random (here, with [`FixedState`], fixed but arbitrary): this module
//! holds them privately and offers no way to iterate, so no order of theirs
//! can reach behaviour. Lookups answer the same as a B-tree would.

#![allow(clippy::disallowed_types)]

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use crate::hash::FixedState;

/// A map shared by many tables, with each table's own changes on top (as
/// the table's ordered `Overlay`), for point lookups only: hash maps with
/// the fixed [`FixedState`] hasher instead of B-trees.
#[derive(Debug, Clone)]
pub(crate) struct Index<K, V> {
    base: Arc<HashMap<K, V, FixedState>>,
    /// Keys added or changed since the base was shared.
    added: HashMap<K, V, FixedState>,
    /// Keys of the base removed since.
    removed: HashSet<K, FixedState>,
}

impl<K, V> Default for Index<K, V> {
    fn default() -> Self {
        Index { base: Arc::default(), added: HashMap::default(), removed: HashSet::default() }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Index<K, V> {
    pub(crate) fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        if !self.added.is_empty()
            && let Some(v) = self.added.get(k)
        {
            return Some(v);
        }
        if !self.removed.is_empty() && self.removed.contains(k) {
            return None;
        }
        self.base.get(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) {
        self.removed.remove(&k);
        self.added.insert(k, v);
    }

    pub(crate) fn remove(&mut self, k: &K) {
        self.added.remove(k);
        if self.base.contains_key(k) {
            self.removed.insert(k.clone());
        }
    }

    /// Folds this table's changes into a new base that copies share.
    pub(crate) fn freeze(&mut self) {
        if self.added.is_empty() && self.removed.is_empty() {
            return;
        }
        let base = Arc::make_mut(&mut self.base);
        // The order of these two loops does not matter: each key is removed
        // or inserted once, and a hash map's contents do not depend on the
        // order of insertion.
        for k in std::mem::take(&mut self.removed) {
            base.remove(&k);
        }
        base.extend(std::mem::take(&mut self.added));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_see_their_own_changes_and_freeze_folds_them() {
        let mut base: Index<String, u32> = Index::default();
        base.insert("a".into(), 1);
        base.insert("b".into(), 2);
        base.freeze();
        let (mut x, y) = (base.clone(), base.clone());
        x.remove(&"a".to_string());
        x.insert("b".into(), 20);
        x.insert("c".into(), 3);
        assert_eq!((x.get("a"), x.get("b"), x.get("c")), (None, Some(&20), Some(&3)));
        assert_eq!((y.get("a"), y.get("b"), y.get("c")), (Some(&1), Some(&2), None));
        x.freeze();
        assert_eq!((x.get("a"), x.get("b"), x.get("c")), (None, Some(&20), Some(&3)));
        assert_eq!(y.get("a"), Some(&1), "the shared base untouched");
        // Re-adding a key removed from the base.
        x.insert("a".into(), 10);
        assert_eq!(x.get("a"), Some(&10));
    }
}
