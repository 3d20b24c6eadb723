//! Current suspicions, by suspect: who started each, who confirmed it, and
//! the evidence a `suspected` or `failed` event carries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::event::{Evidence, ProbeEvidence};
use crate::member::Name;
use crate::time::Instant;

/// One suspicion of one member.
#[derive(Debug)]
pub(crate) struct Suspicion {
    pub(crate) originator: Name,
    pub(crate) confirmers: BTreeSet<Name>,
    pub(crate) started: Instant,
    /// When the suspect was first known silent: the send time of this
    /// member's own probe it left unanswered, or when this member heard of
    /// the suspicion. Patience on silence counts from here.
    pub(crate) silent_since: Instant,
    /// Token of the live suspicion timer (older timers are stale).
    pub(crate) token: u64,
    pub(crate) probe: Option<ProbeEvidence>,
    /// The suspect was pinged once more, with its suspicion, before its
    /// deadline.
    pub(crate) last_chance: bool,
    /// Its deadline passed while this member heard no one else: held, not
    /// declared. Once others are heard again, the suspect gets a new last
    /// chance before anything is declared.
    pub(crate) held: bool,
    /// When the suspect, heard from without refuting, was last reminded.
    pub(crate) reminded: Option<Instant>,
    /// When the suspicion's timer will end it.
    pub(crate) deadline: Instant,
}

impl Suspicion {
    pub(crate) fn new(
        originator: Name,
        confirmers: BTreeSet<Name>,
        started: Instant,
        silent_since: Instant,
        probe: Option<ProbeEvidence>,
    ) -> Suspicion {
        Suspicion {
            originator,
            confirmers,
            started,
            silent_since,
            token: 0,
            probe,
            last_chance: false,
            held: false,
            reminded: None,
            deadline: started,
        }
    }

    /// Counts `from` and `others` as confirmations (the originator excepted);
    /// returns whether any was new.
    pub(crate) fn confirm(&mut self, others: BTreeSet<Name>, from: &Name) -> bool {
        let before = self.confirmers.len();
        for c in others.into_iter().chain(std::iter::once(from.clone())) {
            if c != self.originator {
                self.confirmers.insert(c);
            }
        }
        self.confirmers.len() > before
    }

    /// Independent confirmations beyond the originator.
    pub(crate) fn confirmations(&self) -> u32 {
        u32::try_from(self.confirmers.len()).unwrap_or(u32::MAX)
    }
}

/// The suspicions this member holds, by suspect.
#[derive(Debug, Default)]
pub(crate) struct Suspicions {
    map: BTreeMap<Name, Suspicion>,
}

impl Suspicions {
    pub(crate) fn get(&self, name: &Name) -> Option<&Suspicion> {
        self.map.get(name)
    }

    pub(crate) fn get_mut(&mut self, name: &Name) -> Option<&mut Suspicion> {
        self.map.get_mut(name)
    }

    pub(crate) fn insert(&mut self, name: Name, s: Suspicion) {
        self.map.insert(name, s);
    }

    pub(crate) fn remove(&mut self, name: &Name) {
        self.map.remove(name);
    }

    /// The caller did not run for `by` (a stall): every suspicion is moved
    /// on by as much, so that the stall counts for none of them.
    pub(crate) fn postpone(&mut self, by: Duration) {
        for s in self.map.values_mut() {
            s.started += by;
            s.silent_since += by;
        }
    }

    /// Who started the suspicion of `name`, if there is one.
    pub(crate) fn originator(&self, name: &Name) -> Option<&Name> {
        self.map.get(name).map(|s| &s.originator)
    }

    /// Why `name` is suspected (or was, until `now`), as events carry it.
    pub(crate) fn evidence(&self, name: &Name, now: Instant, declared_by: Option<Name>) -> Evidence {
        match self.map.get(name) {
            Some(s) => Evidence {
                suspected_by: std::iter::once(s.originator.clone())
                    .chain(s.confirmers.iter().cloned())
                    .collect(),
                confirmations: s.confirmations(),
                suspicion_duration: now - s.started,
                declared_by,
                probe: s.probe.clone(),
                exit: None,
            },
            None => Evidence {
                suspected_by: Vec::new(),
                confirmations: 0,
                suspicion_duration: Duration::ZERO,
                declared_by,
                probe: None,
                exit: None,
            },
        }
    }
}
