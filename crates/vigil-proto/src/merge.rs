//! Applying claims about members (gossip and push-pull): joins, returns,
//! suspicions and their confirmations, failures and departures. Every change
//! of a member's state goes through [`transition`], which keeps the
//! suspicions, the probe order and the reaper in step.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::codec::{MemberState, Message, Update};
use crate::core::ctx::Ctx;
use crate::core::timers::Timer;
use crate::event::{EventKind, ExitEvidence, ProbeEvidence};
use crate::member::{Name, State};
use crate::refute::{Refutations, claim_about_self};
use crate::suspicion::Suspicion;
use crate::table::{Content, Entry};
use crate::time::Instant;

/// Members told directly of a disagreement per push-pull merge; later merges tell the rest.
const MAX_NOTIFY_PER_MERGE: usize = 64;

/// Applies one piggybacked claim.
pub(crate) fn apply_update(cx: &mut Ctx, refute: &mut Refutations, now: Instant, update: Update) {
    let me = cx.local.name().clone();
    match update {
        Update::Alive { name, incarnation, addr, meta, health } => {
            apply_alive(cx, refute, now, name, Content { addr, meta, health, incarnation })
        }
        Update::Suspect { name, incarnation, from } => {
            if name == me {
                claim_about_self(cx, refute, now, incarnation, State::Suspect, None, Some(&from));
            } else if let Some(i) = cx.table.get(&name) {
                suspect(cx, now, i, incarnation, from, BTreeSet::new(), None, now);
            }
        }
        Update::Dead { name, incarnation, from } => {
            if name == me {
                claim_about_self(cx, refute, now, incarnation, State::Dead, None, Some(&from));
            } else if let Some(i) = cx.table.get(&name) {
                declare(cx, now, i, incarnation, State::Dead, Some(from));
            }
        }
        Update::Left { name, incarnation } => {
            if name == me {
                claim_about_self(cx, refute, now, incarnation, State::Left, None, None);
            } else if let Some(i) = cx.table.get(&name) {
                declare(cx, now, i, incarnation, State::Left, None);
            }
        }
    }
}

/// Merges a push-pull table. The first state is the sender's own.
///
/// Where the two tables disagree at the same incarnation (one holds a member
/// alive, the other dead or suspect) neither side takes the other's word:
/// the member itself is told of the claim, so that it refutes if it is alive
/// and stays failed if it is not. This is how a healed partition merges: the
/// members each side declared dead hear of it and raise their incarnation.
pub(crate) fn merge_states(cx: &mut Ctx, refute: &mut Refutations, now: Instant, states: Vec<MemberState>) {
    let me = cx.local.name().clone();
    let sender = states.first().map_or_else(|| me.clone(), |s| s.name.clone());
    let mut notified = 0;
    for s in states {
        let content = Content { addr: s.addr, meta: s.meta, health: s.health, incarnation: s.incarnation };
        if s.name == me {
            claim_about_self(cx, refute, now, s.incarnation, s.state, Some(&content), Some(&sender));
            continue;
        }
        let Some(i) = cx.table.get(&s.name) else {
            if s.state == State::Alive {
                apply_alive(cx, refute, now, s.name, content);
            }
            continue;
        };
        let (held_inc, held_state) = (cx.table.entry(i).incarnation, cx.table.entry(i).state);
        match s.state {
            State::Alive => {
                if held_state == State::Dead && s.incarnation <= held_inc && notified < MAX_NOTIFY_PER_MERGE {
                    notified += 1;
                    let dead = Update::Dead { name: s.name.clone(), incarnation: held_inc, from: me.clone() };
                    notify(cx, i, dead);
                }
                apply_alive(cx, refute, now, s.name, content);
            }
            State::Suspect | State::Dead => {
                if held_state == State::Alive && s.incarnation == held_inc {
                    if notified < MAX_NOTIFY_PER_MERGE {
                        notified += 1;
                        let from = sender.clone();
                        notify(cx, i, Update::Suspect { name: s.name, incarnation: held_inc, from });
                    }
                } else if s.state == State::Dead && !held_state.is_active() {
                    declare(cx, now, i, s.incarnation, State::Dead, Some(sender.clone()));
                } else {
                    suspect(cx, now, i, s.incarnation, sender.clone(), BTreeSet::new(), None, now);
                }
            }
            State::Left => declare(cx, now, i, s.incarnation, State::Left, None),
        }
    }
}

/// Sends a claim straight to the member it is about.
fn notify(cx: &mut Ctx, i: usize, update: Update) {
    let dst = cx.table.entry(i).addr();
    cx.send(dst, &Message::Gossip, Some(&update));
}

/// An alive claim at `c.incarnation`, with the content it carries.
fn apply_alive(cx: &mut Ctx, refute: &mut Refutations, now: Instant, name: Name, c: Content) {
    let incarnation = c.incarnation;
    if name == *cx.local.name() {
        claim_about_self(cx, refute, now, incarnation, State::Alive, Some(&c), None);
        return;
    }
    let Some(i) = cx.table.get(&name) else {
        insert(cx, now, name, c);
        return;
    };
    // Content (address, metadata, health) comes from the newest alive claim,
    // whatever the state: this keeps merging independent of arrival order.
    let e = cx.table.entry(i);
    let mut changed = false;
    if incarnation > e.content.incarnation {
        let old = &e.content;
        changed = old.addr != c.addr || old.meta != c.meta || old.health != c.health;
        if old.addr != c.addr {
            cx.watches.invalidate();
        }
        cx.table.set_content(i, Arc::new(c));
    }
    let e = cx.table.entry(i);
    if (incarnation, State::Alive) <= (e.incarnation, e.state) {
        if changed && e.state.is_active() {
            cx.emit(EventKind::Updated, i, now, None);
        }
        return;
    }
    let old = e.state;
    transition(cx, now, i, State::Alive, incarnation);
    let kind = match old {
        State::Suspect => {
            // A refutation races suspicion timers elsewhere: pass it on now.
            cx.gossip_soon(now);
            Some(EventKind::Recovered)
        }
        State::Dead | State::Left => Some(EventKind::Joined),
        State::Alive => changed.then_some(EventKind::Updated),
    };
    if let Some(kind) = kind {
        cx.emit(kind, i, now, None);
    }
    let e = cx.table.entry(i);
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
    cx.out.enqueue(&update, kind == Some(EventKind::Joined));
}

fn insert(cx: &mut Ctx, now: Instant, name: Name, c: Content) {
    let update = Update::Alive {
        name: name.clone(),
        incarnation: c.incarnation,
        addr: c.addr,
        meta: c.meta.clone(),
        health: c.health.clone(),
    };
    let i = cx.table.push(Entry::alive(name.clone(), c.incarnation, Arc::new(c), now));
    cx.peers.forget(name.as_str());
    cx.round.add_late(name);
    cx.watches.invalidate();
    cx.emit(EventKind::Joined, i, now, None);
    // Boosted like a return: a member that misses a join knows nothing of it.
    cx.out.enqueue(&update, true);
}

/// Moves entry `i` to `state` at `incarnation`, keeping the suspicions,
/// the probe round and the reaper in step.
fn transition(cx: &mut Ctx, now: Instant, i: usize, state: State, incarnation: u64) {
    let e = cx.table.entry(i);
    let (was_active, old_state) = (e.state.is_active(), e.state);
    let name = e.name.clone();
    cx.table.set_claim(i, incarnation, state, now);
    if state != State::Suspect {
        // A suspicion held here ends: refuted (alive again) or failed.
        if let Some(s) = cx.suspicions.get(&name) {
            let lasted = now - s.started;
            match state {
                State::Alive => cx.stats.histograms.suspicion_refuted.observe(lasted),
                State::Dead => cx.stats.histograms.suspicion_failed.observe(lasted),
                _ => {}
            }
        }
        cx.suspicions.remove(&name);
    }
    // Failed, then alive (or suspected at a newer incarnation) again: a flap.
    if old_state == State::Dead && state.is_active() {
        cx.stats.flaps += 1;
    }
    if was_active != state.is_active() {
        cx.watches.invalidate();
    }
    if !state.is_active() && state != old_state {
        let at = now + cx.config.dead_retention;
        cx.schedule(at, Timer::Reap { name, since: now });
    } else if !was_active && state.is_active() {
        // It restarted or returned: its old measurements say nothing now.
        cx.peers.forget(name.as_str());
        cx.round.add_late(name);
    }
}

/// `from` suspects member `i` at `incarnation`: start a suspicion, or count
/// an independent confirmation of the current one. `silent_since` is when
/// the member was first known silent (see [`Suspicion::silent_since`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn suspect(
    cx: &mut Ctx,
    now: Instant,
    i: usize,
    incarnation: u64,
    from: Name,
    confirmers: BTreeSet<Name>,
    probe: Option<ProbeEvidence>,
    silent_since: Instant,
) {
    let e = cx.table.entry(i);
    if (incarnation, State::Suspect) < (e.incarnation, e.state) {
        return;
    }
    let local = from == *cx.local.name();
    if e.state == State::Suspect && e.incarnation == incarnation {
        let name = e.name.clone();
        let Some(s) = cx.suspicions.get_mut(&name) else { return };
        let more = s.confirm(confirmers, &from);
        if local && s.probe.is_none() {
            s.probe = probe;
        }
        // Silent since the earliest anyone here knew (a pause that began
        // later than that would have been answered).
        s.silent_since = s.silent_since.min(silent_since);
        if more {
            schedule_suspicion(cx, now, i);
            cx.enqueue(&Update::Suspect { name, incarnation, from });
        }
        return;
    }
    if local {
        cx.stats.suspicions_started += 1;
    }
    let mut confirmers = confirmers;
    confirmers.remove(&from);
    let was_gone = !e.state.is_active();
    let name = e.name.clone();
    cx.suspicions.insert(name.clone(), Suspicion::new(from.clone(), confirmers, now, silent_since, probe));
    transition(cx, now, i, State::Suspect, incarnation);
    schedule_suspicion(cx, now, i);
    if was_gone {
        // It came back at a newer incarnation (and is suspected there):
        // say so, rather than going from failed straight to suspected.
        cx.emit(EventKind::Joined, i, now, None);
    }
    let evidence = cx.suspicions.evidence(&name, now, None);
    cx.emit(EventKind::Suspected, i, now, Some(evidence));
    let update = Update::Suspect { name, incarnation, from };
    let dst = cx.table.entry(i).addr();
    cx.enqueue(&update);
    if local {
        // Tell the suspect at once: if it is alive it refutes well in time.
        cx.send(dst, &Message::Gossip, Some(&update));
    }
}

/// (Re)arms the suspicion timer of entry `i` for its current confirmations.
fn schedule_suspicion(cx: &mut Ctx, now: Instant, i: usize) {
    let n = cx.num_members();
    let token = cx.timers.token();
    let name = cx.table.entry(i).name.clone();
    let Some(s) = cx.suspicions.get_mut(&name) else { return };
    s.token = token;
    // Lifeguard's timeout, but never sooner than the pause tolerance after
    // the member was first known silent: a pause shorter than that is
    // refuted, not failed.
    let lifeguard = s.started + cx.config.suspicion_timeout(n, s.confirmations());
    let patient = s.silent_since + cx.config.pause_tolerance;
    let deadline = lifeguard.max(patient).max(now);
    s.deadline = deadline;
    // The suspect is asked again in the last two periods before the
    // deadline: if it is alive but its refutations to this member were lost,
    // an answer on either path carries one, in time.
    let period = cx.config.probe_interval * cx.local.health_multiplier();
    let ask = if deadline > now + period * 2 { deadline - period * 2 } else { now };
    cx.schedule(ask, Timer::LastChance { name: name.clone(), token });
    cx.schedule(deadline, Timer::Suspicion { name, token });
}

/// In the last two periods before a suspicion's deadline the suspect is
/// pinged with its suspicion, so that its acks carry its refutation: over a
/// stream once (reliable, given the time), and over datagrams three times,
/// two thirds of a period apart (a lossy path loses one round trip in two
/// at 30% loss, three in eight of them).
pub(crate) fn on_last_chance(cx: &mut Ctx, now: Instant, name: &Name, token: u64) {
    let Some(i) = cx.table.get(name) else { return };
    if cx.table.entry(i).state != State::Suspect {
        return;
    }
    let Some(s) = cx.suspicions.get_mut(name).filter(|s| s.token == token) else { return };
    let first = !std::mem::replace(&mut s.last_chance, true);
    let deadline = s.deadline;
    ask_suspect(cx, i, first);
    let next = now + (cx.config.probe_interval * cx.local.health_multiplier()).mul_f64(2.0 / 3.0);
    if next < deadline {
        cx.schedule(next, Timer::LastChance { name: name.clone(), token });
    }
}

/// Pings suspect `i` with its suspicion, over a stream too if `stream`.
fn ask_suspect(cx: &mut Ctx, i: usize, stream: bool) {
    let buddy = crate::probe::buddy(cx, i);
    let (addr, target) = (cx.table.entry(i).addr(), cx.table.entry(i).name.hash32());
    let seq = cx.next_seq();
    cx.send(addr, &Message::Ping { seq, target }, Some(&buddy));
    if stream {
        cx.stream_ping(i, seq, Some(buddy));
    }
}

/// A datagram came from suspect `i` that did not refute: remind it of its
/// suspicion (at most four times a period), so that it refutes to this member
/// directly; its earlier refutations may all have been lost.
pub(crate) fn remind(cx: &mut Ctx, now: Instant, i: usize, from: std::net::SocketAddr) {
    if cx.table.entry(i).state != State::Suspect {
        return;
    }
    let gap = cx.config.probe_interval / 4;
    let name = cx.table.entry(i).name.clone();
    let Some(s) = cx.suspicions.get_mut(&name) else { return };
    if s.reminded.is_some_and(|at| at + gap > now) {
        return;
    }
    s.reminded = Some(now);
    let buddy = crate::probe::buddy(cx, i);
    cx.send(from, &Message::Gossip, Some(&buddy));
}

/// A suspicion timer fired: a last chance for a suspicion that rests only
/// on others' word, then failure.
pub(crate) fn on_suspicion_timeout(cx: &mut Ctx, now: Instant, name: &Name, token: u64) {
    let Some(i) = cx.table.get(name) else { return };
    let e = cx.table.entry(i);
    let suspicion = cx.suspicions.get(name);
    if e.state != State::Suspect || suspicion.is_none_or(|s| s.token != token) {
        return;
    }
    let incarnation = e.incarnation;
    // Held while this member heard no one (below), and now it hears others
    // again: the suspect was asked only while nothing got through, so it is
    // asked once more before anything is declared.
    // "Hears" means recently: within the last two (stretched) periods.
    let recent = now - (cx.config.probe_interval * cx.local.health_multiplier()) * 2;
    let heard_again = suspicion.is_some_and(|s| s.held && cx.heard_other_since(i, s.started.max(recent)));
    if heard_again && let Some(s) = cx.suspicions.get_mut(name) {
        s.held = false;
        s.last_chance = false;
    }
    let suspicion = cx.suspicions.get(name);
    if suspicion.is_some_and(|s| !s.last_chance) {
        // The suspect was not asked before the deadline (it came too soon):
        // ask it now and wait one more period. If it is alive, its ack
        // carries its refutation.
        let token = cx.timers.token();
        if let Some(s) = cx.suspicions.get_mut(name) {
            s.last_chance = true;
            s.token = token;
        }
        ask_suspect(cx, i, true);
        let wait = cx.config.probe_interval * cx.local.health_multiplier();
        cx.schedule(now + wait, Timer::Suspicion { name: name.clone(), token });
        return;
    }
    // A member that heard from no one but the suspect since the suspicion
    // started, or not lately (a suspicion heard just before its link went
    // down, and refuted since where it could not hear), is more likely the
    // one cut off (its link, its firewall, its
    // host's network) than the suspect: it declares no one, and waits. Its
    // claims would otherwise reach the others the moment its link healed,
    // and they would fail a healthy member on the word of the one member
    // that could not hear anybody. Not in a pair (no one else to hear).
    let deaf = cx.table.active() >= 2
        && cx.suspicions.get(name).is_some_and(|s| !cx.heard_other_since(i, s.started.max(recent)));
    if deaf && let Some(s) = cx.suspicions.get_mut(name) {
        s.held = true;
        let token = s.token;
        cx.stats.deaf_holds += 1;
        let wait = cx.config.probe_interval * cx.local.health_multiplier();
        cx.schedule(now + wait, Timer::Suspicion { name: name.clone(), token });
        return;
    }
    cx.stats.failures_declared += 1;
    let me = cx.local.name().clone();
    declare(cx, now, i, incarnation, State::Dead, Some(me));
}

/// Kernel evidence, confirmed by another member, says member `i`'s process
/// exited: it is declared failed at once, with that evidence.
pub(crate) fn declare_exited(cx: &mut Ctx, now: Instant, i: usize, incarnation: u64, exit: ExitEvidence) {
    cx.stats.failures_declared += 1;
    let me = cx.local.name().clone();
    declare_with(cx, now, i, incarnation, State::Dead, Some(me), Some(exit));
}

/// Member `i` is dead or left at `incarnation`, if that outranks what we hold.
pub(crate) fn declare(
    cx: &mut Ctx,
    now: Instant,
    i: usize,
    incarnation: u64,
    state: State,
    by: Option<Name>,
) {
    declare_with(cx, now, i, incarnation, state, by, None);
}

fn declare_with(
    cx: &mut Ctx,
    now: Instant,
    i: usize,
    incarnation: u64,
    state: State,
    by: Option<Name>,
    exit: Option<ExitEvidence>,
) {
    let e = cx.table.entry(i);
    if (incarnation, state) <= (e.incarnation, e.state) {
        return;
    }
    let name = e.name.clone();
    let evidence = (state == State::Dead).then(|| {
        let mut evidence = cx.suspicions.evidence(&name, now, by.clone());
        evidence.exit = exit;
        evidence
    });
    transition(cx, now, i, state, incarnation);
    let (kind, update) = match state {
        State::Left => (EventKind::Left, Update::Left { name, incarnation }),
        _ => {
            let from = by.unwrap_or_else(|| cx.local.name().clone());
            (EventKind::Failed, Update::Dead { name, incarnation, from })
        }
    };
    cx.emit(kind, i, now, evidence);
    cx.enqueue(&update);
    cx.gossip_soon(now);
}
