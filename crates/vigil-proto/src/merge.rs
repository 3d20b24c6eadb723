//! Applying claims about members (gossip and push-pull), suspicion and refutation.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::codec::{MemberState, Message, Update};

/// Members told directly of a disagreement per push-pull merge; later merges tell the rest.
const MAX_NOTIFY_PER_MERGE: usize = 64;
use crate::core::{Core, Suspicion, Timer};
use crate::event::{EventKind, Evidence, ProbeEvidence};
use crate::member::{Health, Meta, Name, State};
use crate::table::{self, Entry, Table};
use crate::time::Instant;

/// What an alive claim says about a member besides its state.
struct Content {
    addr: SocketAddr,
    meta: Meta,
    health: Health,
}

impl Content {
    fn at(self, incarnation: u64) -> Arc<table::Content> {
        Arc::new(table::Content { addr: self.addr, meta: self.meta, health: self.health, incarnation })
    }
}

/// Members known to a whole cluster, built once and shared by many members'
/// tables: a simulator's warm start of a large cluster.
///
/// [`Core::preload_snapshot`] gives a member a copy of this table that shares
/// its memory until it changes (copy-on-write by chunks of 64 entries), so
/// that n members knowing n members cost far less than n² entries.
#[derive(Debug, Clone)]
pub struct Snapshot {
    table: Table,
}

impl Snapshot {
    /// Members known alive, as `states` say (other states, and repeated names,
    /// are skipped), first seen at `now`.
    pub fn new(now: Instant, states: impl IntoIterator<Item = MemberState>) -> Snapshot {
        let mut alive: Vec<MemberState> = states.into_iter().filter(|s| s.state == State::Alive).collect();
        alive.sort_by(|a, b| a.name.cmp(&b.name));
        alive.dedup_by(|a, b| a.name == b.name);
        let mut table = Table::default();
        for s in alive {
            let content = Content { addr: s.addr, meta: s.meta, health: s.health }.at(s.incarnation);
            table.push(Entry::alive(s.name, s.incarnation, content, now));
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
}

impl Core {
    /// Applies one piggybacked claim.
    pub(crate) fn apply_update(&mut self, now: Instant, update: Update) {
        match update {
            Update::Alive { name, incarnation, addr, meta, health } => {
                self.apply_alive(now, name, incarnation, Content { addr, meta, health })
            }
            Update::Suspect { name, incarnation, from } => {
                if name == self.me.name {
                    self.claim_about_self(now, incarnation, State::Suspect, None, Some(&from));
                } else if let Some(i) = self.table.get(&name) {
                    self.suspect(now, i, incarnation, from, BTreeSet::new(), None);
                }
            }
            Update::Dead { name, incarnation, from } => {
                if name == self.me.name {
                    self.claim_about_self(now, incarnation, State::Dead, None, Some(&from));
                } else if let Some(i) = self.table.get(&name) {
                    self.declare(now, i, incarnation, State::Dead, Some(from));
                }
            }
            Update::Left { name, incarnation } => {
                if name == self.me.name {
                    self.claim_about_self(now, incarnation, State::Left, None, None);
                } else if let Some(i) = self.table.get(&name) {
                    self.declare(now, i, incarnation, State::Left, None);
                }
            }
        }
    }

    /// Adds members known from elsewhere as alive, without events and without
    /// gossiping them: a membership snapshot restored on restart, or a
    /// simulator's warm start. Members already known, this member itself, and
    /// states other than alive are skipped; the probe round picks the new
    /// members up at its next round, and probing and push-pull then verify
    /// them like any other member. Returns how many were added.
    pub fn preload(&mut self, now: Instant, states: impl IntoIterator<Item = MemberState>) -> usize {
        let mut fresh: Vec<MemberState> = states
            .into_iter()
            .filter(|s| {
                s.state == State::Alive && s.name != self.me.name && self.table.get(&s.name).is_none()
            })
            .collect();
        fresh.sort_by(|a, b| a.name.cmp(&b.name));
        fresh.dedup_by(|a, b| a.name == b.name);
        let added = fresh.len();
        for s in fresh {
            let content = Content { addr: s.addr, meta: s.meta, health: s.health }.at(s.incarnation);
            self.table.push(Entry::alive(s.name, s.incarnation, content, now));
        }
        added
    }

    /// Like [`Core::preload`] from a [`Snapshot`] shared with other members:
    /// a member that knows nobody yet takes a copy of the snapshot's table
    /// that shares its memory (its own entry hidden). A member that already
    /// knows others adds the snapshot's members one by one instead. Returns
    /// how many members were added.
    pub fn preload_snapshot(&mut self, now: Instant, snapshot: &Snapshot) -> usize {
        if self.table.slots() == 0 {
            self.table = snapshot.table.shared_for(self.me.name.as_str());
            return self.table.len();
        }
        self.preload(now, snapshot.table.by_name().map(|(_, e)| e.wire_state()))
    }

    /// Merges a push-pull table. The first state is the sender's own.
    ///
    /// Where the two tables disagree at the same incarnation (one holds a member
    /// alive, the other dead or suspect) neither side takes the other's word:
    /// the member itself is told of the claim, so that it refutes if it is alive
    /// and stays failed if it is not. This is how a healed partition merges: the
    /// members each side declared dead hear of it and raise their incarnation.
    pub(crate) fn merge_states(&mut self, now: Instant, states: Vec<MemberState>) {
        let sender = states.first().map(|s| s.name.clone()).unwrap_or_else(|| self.me.name.clone());
        let mut notified = 0;
        for s in states {
            if s.name == self.me.name {
                let content = Content { addr: s.addr, meta: s.meta, health: s.health };
                self.claim_about_self(now, s.incarnation, s.state, Some(content), Some(&sender));
                continue;
            }
            let Some(i) = self.table.get(&s.name) else {
                if s.state == State::Alive {
                    let content = Content { addr: s.addr, meta: s.meta, health: s.health };
                    self.apply_alive(now, s.name, s.incarnation, content);
                }
                continue;
            };
            let (held_inc, held_state) = (self.table.entry(i).incarnation, self.table.entry(i).state);
            match s.state {
                State::Alive => {
                    if held_state == State::Dead
                        && s.incarnation <= held_inc
                        && notified < MAX_NOTIFY_PER_MERGE
                    {
                        notified += 1;
                        let me = self.me.name.clone();
                        self.notify(
                            i,
                            Update::Dead { name: s.name.clone(), incarnation: held_inc, from: me },
                        );
                    }
                    let content = Content { addr: s.addr, meta: s.meta, health: s.health };
                    self.apply_alive(now, s.name, s.incarnation, content);
                }
                State::Suspect | State::Dead => {
                    if held_state == State::Alive && s.incarnation == held_inc {
                        if notified < MAX_NOTIFY_PER_MERGE {
                            notified += 1;
                            let from = sender.clone();
                            self.notify(i, Update::Suspect { name: s.name, incarnation: held_inc, from });
                        }
                    } else if s.state == State::Dead && !held_state.is_active() {
                        self.declare(now, i, s.incarnation, State::Dead, Some(sender.clone()));
                    } else {
                        self.suspect(now, i, s.incarnation, sender.clone(), BTreeSet::new(), None);
                    }
                }
                State::Left => self.declare(now, i, s.incarnation, State::Left, None),
            }
        }
    }

    /// Sends a claim straight to the member it is about.
    fn notify(&mut self, i: usize, update: Update) {
        let dst = self.table.entry(i).addr();
        self.send(dst, &Message::Gossip, Some(&update));
    }

    /// Someone says something about this member. Anything that is not exactly
    /// what we say of ourselves, at our incarnation or above, is refuted.
    fn claim_about_self(
        &mut self,
        now: Instant,
        incarnation: u64,
        state: State,
        content: Option<Content>,
        from: Option<&Name>,
    ) {
        if self.leaving {
            return;
        }
        if incarnation >= self.incarnation {
            let same_content = content.as_ref().is_none_or(|c| {
                c.addr == self.me.addr && c.meta == self.me.meta && c.health == self.me.health
            });
            if incarnation == self.incarnation && state == State::Alive && same_content {
                return;
            }
            self.incarnation = incarnation.saturating_add(1);
            self.stats.refutations += 1;
            self.raise_health_score(1);
            self.broadcast_self();
            self.gossip_soon(now);
        } else if state == State::Alive {
            return;
        }
        // Whoever holds this claim hears the refutation straight away, not when
        // gossip happens to reach it: the member that sent it, and the member
        // it names as the suspecter. A suspicion can then be short and safe.
        if state != State::Alive {
            self.refute_source = true;
            if let Some(from) = from
                && let Some(i) = self.table.get(from)
                && self.table.entry(i).state.is_active()
            {
                self.refute_to.push(self.table.entry(i).addr());
            }
        }
    }

    fn apply_alive(&mut self, now: Instant, name: Name, incarnation: u64, c: Content) {
        if name == self.me.name {
            self.claim_about_self(now, incarnation, State::Alive, Some(c), None);
            return;
        }
        let Some(i) = self.table.get(&name) else {
            self.insert(now, name, incarnation, c);
            return;
        };
        // Content (address, metadata, health) comes from the newest alive claim,
        // whatever the state: this keeps merging independent of arrival order.
        let e = self.table.entry(i);
        let mut changed = false;
        if incarnation > e.content.incarnation {
            let old = &e.content;
            changed = old.addr != c.addr || old.meta != c.meta || old.health != c.health;
            self.table.set_content(i, c.at(incarnation));
        }
        let e = self.table.entry(i);
        if (incarnation, State::Alive) <= (e.incarnation, e.state) {
            if changed && e.state.is_active() {
                self.emit(EventKind::Updated, i, now, None);
            }
            return;
        }
        let old = e.state;
        self.transition(now, i, State::Alive, incarnation);
        let kind = match old {
            State::Suspect => {
                // A refutation races suspicion timers elsewhere: pass it on now.
                self.gossip_soon(now);
                Some(EventKind::Recovered)
            }
            State::Dead | State::Left => Some(EventKind::Joined),
            State::Alive => changed.then_some(EventKind::Updated),
        };
        if let Some(kind) = kind {
            self.emit(kind, i, now, None);
        }
        let e = self.table.entry(i);
        let update = Update::Alive {
            name,
            incarnation,
            addr: e.content.addr,
            meta: e.content.meta.clone(),
            health: e.content.health.clone(),
        };
        // A return is boosted: a member that misses it holds the member dead
        // or left, and nothing contacts such a member before the next
        // periodic exchange (the tail of infection-style gossip).
        self.enqueue_with(&update, kind == Some(EventKind::Joined));
    }

    fn insert(&mut self, now: Instant, name: Name, incarnation: u64, c: Content) {
        let update = Update::Alive {
            name: name.clone(),
            incarnation,
            addr: c.addr,
            meta: c.meta.clone(),
            health: c.health.clone(),
        };
        let i = self.table.push(Entry::alive(name.clone(), incarnation, c.at(incarnation), now));
        self.peers.forget(name.as_str());
        self.add_to_probe_order(name);
        self.emit(EventKind::Joined, i, now, None);
        // Boosted like a return: a member that misses a join knows nothing of it.
        self.enqueue_with(&update, true);
    }

    /// Moves entry `i` to `state` at `incarnation`, keeping the suspicions,
    /// the probe round and the reaper in step.
    fn transition(&mut self, now: Instant, i: usize, state: State, incarnation: u64) {
        let e = self.table.entry(i);
        let (was_active, old_state) = (e.state.is_active(), e.state);
        let name = e.name.clone();
        self.table.set_claim(i, incarnation, state, now);
        if state != State::Suspect {
            self.suspicions.remove(&name);
        }
        if !state.is_active() && state != old_state {
            self.schedule(now + self.config.dead_retention, Timer::Reap { name, since: now });
        } else if !was_active && state.is_active() {
            // It restarted or returned: its old measurements say nothing now.
            self.peers.forget(name.as_str());
            self.add_to_probe_order(name);
        }
    }

    /// `from` suspects member `i` at `incarnation`: start a suspicion, or count
    /// an independent confirmation of the current one.
    pub(crate) fn suspect(
        &mut self,
        now: Instant,
        i: usize,
        incarnation: u64,
        from: Name,
        confirmers: BTreeSet<Name>,
        probe: Option<ProbeEvidence>,
    ) {
        let e = self.table.entry(i);
        if (incarnation, State::Suspect) < (e.incarnation, e.state) {
            return;
        }
        let local = from == self.me.name;
        if e.state == State::Suspect && e.incarnation == incarnation {
            let Some(s) = self.suspicions.get_mut(&e.name) else { return };
            let before = s.confirmers.len();
            for c in confirmers.into_iter().chain(std::iter::once(from.clone())) {
                if c != s.originator {
                    s.confirmers.insert(c);
                }
            }
            if local && s.probe.is_none() {
                s.probe = probe;
            }
            if s.confirmers.len() > before {
                self.schedule_suspicion(now, i);
                let name = self.table.entry(i).name.clone();
                self.enqueue(&Update::Suspect { name, incarnation, from });
            }
            return;
        }
        if local {
            self.stats.suspicions_started += 1;
        }
        let mut confirmers = confirmers;
        confirmers.remove(&from);
        let suspicion = Suspicion {
            originator: from.clone(),
            confirmers,
            started: now,
            token: 0,
            probe,
            last_chance: false,
        };
        let was_gone = !e.state.is_active();
        self.suspicions.insert(e.name.clone(), suspicion);
        self.transition(now, i, State::Suspect, incarnation);
        self.schedule_suspicion(now, i);
        if was_gone {
            // It came back at a newer incarnation (and is suspected there):
            // say so, rather than going from failed straight to suspected.
            self.emit(EventKind::Joined, i, now, None);
        }
        let evidence = self.evidence(i, now, None);
        self.emit(EventKind::Suspected, i, now, Some(evidence));
        let e = self.table.entry(i);
        let update = Update::Suspect { name: e.name.clone(), incarnation, from };
        let dst = e.addr();
        self.enqueue(&update);
        if local {
            // Tell the suspect at once: if it is alive it refutes well in time.
            self.send(dst, &Message::Gossip, Some(&update));
        }
    }

    fn schedule_suspicion(&mut self, now: Instant, i: usize) {
        let n = self.num_members();
        let token = self.token();
        let name = self.table.entry(i).name.clone();
        let Some(s) = self.suspicions.get_mut(&name) else { return };
        s.token = token;
        let confirmations = u32::try_from(s.confirmers.len()).unwrap_or(u32::MAX);
        let deadline = (s.started + self.config.suspicion_timeout(n, confirmations)).max(now);
        self.schedule(deadline, Timer::Suspicion { name, token });
    }

    pub(crate) fn on_suspicion_timeout(&mut self, now: Instant, name: &Name, token: u64) {
        let Some(i) = self.table.get(name) else { return };
        let e = self.table.entry(i);
        let suspicion = self.suspicions.get(name);
        if e.state != State::Suspect || suspicion.is_none_or(|s| s.token != token) {
            return;
        }
        let incarnation = e.incarnation;
        let addr = e.addr();
        if let Some(s) = suspicion
            && s.probe.is_none()
            && s.originator != self.me.name
            && !s.last_chance
        {
            // We have only others' word for it: ask the suspect itself once.
            // If it is alive, its ack carries its refutation.
            let buddy = Update::Suspect { name: name.clone(), incarnation, from: s.originator.clone() };
            let token = self.token();
            if let Some(s) = self.suspicions.get_mut(name) {
                s.last_chance = true;
                s.token = token;
            }
            let seq = self.next_seq();
            self.send(addr, &Message::Ping { seq, target: name.hash32() }, Some(&buddy));
            let wait = self.config.probe_interval * self.health_multiplier();
            self.schedule(now + wait, Timer::Suspicion { name: name.clone(), token });
            return;
        }
        self.stats.failures_declared += 1;
        let me = self.me.name.clone();
        self.declare(now, i, incarnation, State::Dead, Some(me));
    }

    /// Member `i` is dead or left at `incarnation`, if that outranks what we hold.
    fn declare(&mut self, now: Instant, i: usize, incarnation: u64, state: State, by: Option<Name>) {
        let e = self.table.entry(i);
        if (incarnation, state) <= (e.incarnation, e.state) {
            return;
        }
        let evidence = (state == State::Dead).then(|| self.evidence(i, now, by.clone()));
        let name = e.name.clone();
        self.transition(now, i, state, incarnation);
        let (kind, update) = match state {
            State::Left => (EventKind::Left, Update::Left { name, incarnation }),
            _ => {
                let from = by.unwrap_or_else(|| self.me.name.clone());
                (EventKind::Failed, Update::Dead { name, incarnation, from })
            }
        };
        self.emit(kind, i, now, evidence);
        self.enqueue(&update);
        self.gossip_soon(now);
    }

    fn evidence(&self, i: usize, now: Instant, declared_by: Option<Name>) -> Evidence {
        match self.suspicions.get(&self.table.entry(i).name) {
            Some(s) => Evidence {
                suspected_by: std::iter::once(s.originator.clone())
                    .chain(s.confirmers.iter().cloned())
                    .collect(),
                confirmations: u32::try_from(s.confirmers.len()).unwrap_or(u32::MAX),
                suspicion_duration: now - s.started,
                declared_by,
                probe: s.probe.clone(),
            },
            None => Evidence {
                suspected_by: Vec::new(),
                confirmations: 0,
                suspicion_duration: std::time::Duration::ZERO,
                declared_by,
                probe: None,
            },
        }
    }
}
