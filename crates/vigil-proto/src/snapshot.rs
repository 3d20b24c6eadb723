//! Members known to a whole cluster, built once and shared by many members'
//! tables.

use std::sync::Arc;

use crate::codec::MemberState;
use crate::member::State;
use crate::table::{Content, Entry, Table};
use crate::time::Instant;

/// Members known to a whole cluster, built once and shared by many members'
/// tables: a simulator's warm start of a large cluster.
///
/// [`Core::preload_snapshot`](crate::Core::preload_snapshot) gives a member a
/// copy of this table that shares its memory until it changes (each entry
/// copied on its first change), so that n members knowing n members cost far
/// less than n² entries.
#[derive(Debug, Clone)]
pub struct Snapshot {
    table: Table,
}

impl Snapshot {
    /// Members known alive, as `states` say (other states, and repeated names,
    /// are skipped), first seen at `now`.
    pub fn new(now: Instant, states: impl IntoIterator<Item = MemberState>) -> Snapshot {
        let mut table = Table::default();
        for s in alive_by_name(states) {
            table.push(entry(s, now));
        }
        table.freeze();
        Snapshot { table }
    }

    /// Members in the snapshot.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// The table member `name` starts from: shared with the snapshot, its
    /// own entry hidden.
    pub(crate) fn table_for(&self, name: &str) -> Table {
        self.table.shared_for(name)
    }

    /// The snapshot's members as push-pull carries them, by name.
    pub(crate) fn states(&self) -> impl Iterator<Item = MemberState> + '_ {
        self.table.by_name().map(|(_, e)| e.wire_state())
    }
}

/// The alive states among `states`, by name, each name once.
pub(crate) fn alive_by_name(states: impl IntoIterator<Item = MemberState>) -> Vec<MemberState> {
    let mut alive: Vec<MemberState> = states.into_iter().filter(|s| s.state == State::Alive).collect();
    alive.sort_by(|a, b| a.name.cmp(&b.name));
    alive.dedup_by(|a, b| a.name == b.name);
    alive
}

/// A table entry for a member known alive from elsewhere, first seen at `now`.
pub(crate) fn entry(s: MemberState, now: Instant) -> Entry {
    let content = Content { addr: s.addr, meta: s.meta, health: s.health, incarnation: s.incarnation };
    Entry::alive(s.name, s.incarnation, Arc::new(content), now)
}
