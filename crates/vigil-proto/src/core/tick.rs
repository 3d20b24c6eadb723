//! What a timer does when it fires, and the stall a late call reveals.

use super::Core;
use std::collections::BTreeSet;

use rand::RngExt;

use super::ctx::Ctx;
use super::timers::Timer;
use super::{apply, suspect};
use crate::anti_entropy;
use crate::member::Name;
use crate::merge;
use crate::probe;
use crate::time::Instant;

impl Core {
    /// Notices a stall (see [`Core::handle_timeout`]) at the first input after it.
    pub(super) fn check_stall(&mut self, now: Instant) {
        let cx = &mut self.cx;
        let Some(due) = cx.timers.next() else { return };
        if now <= due + cx.config.stall_threshold() {
            return;
        }
        let by = now - due;
        cx.timers.postpone_overdue(now, by);
        cx.suspicions.postpone(by);
        self.prober.postpone(by);
        self.verifier.postpone(by);
        cx.local.stalled(now, by, cx.config.probe_interval);
        cx.stats.stalls += 1;
        cx.stats.stalled_for += by;
    }

    pub(super) fn on_timer(&mut self, now: Instant, timer: Timer) {
        let cx = &mut self.cx;
        match timer {
            Timer::Probe => self.on_probe_tick(now),
            Timer::ProbeTimeout { seq } => self.prober.on_timeout(cx, now, seq),
            // The periodic round runs only while something waits to be
            // gossiped: an idle member is not woken for nothing.
            Timer::Gossip => {
                if cx.out.continue_gossip_ticks() {
                    cx.schedule(now + cx.config.gossip_interval, Timer::Gossip);
                    cx.gossip_round();
                }
            }
            Timer::GossipNow => {
                cx.out.gossip_now_done();
                cx.gossip_round();
            }
            Timer::PushPull => {
                let next = cx.config.push_pull_interval_for(cx.num_members());
                let jitter = 0.75 + 0.5 * cx.rng.random::<f64>();
                cx.schedule(now + next.mul_f64(jitter), Timer::PushPull);
                if !cx.local.leaving()
                    && let Some(&i) = cx.sample(1, |e| e.state.is_active()).first()
                {
                    let dst = cx.table.entry(i).addr();
                    self.exchanges.start(cx, now, dst);
                }
            }
            Timer::Reconnect => {
                cx.schedule(now + cx.config.reconnect_interval, Timer::Reconnect);
                let (_, dead) = cx.table.dead(0);
                if !cx.local.leaving() && dead > 0 {
                    let k = cx.rng.random_range(0..dead);
                    if let (Some(i), _) = cx.table.dead(k) {
                        let dst = cx.table.entry(i).addr();
                        cx.stats.push_pulls_sent += 1;
                        anti_entropy::send_digest_stream(cx, dst);
                    }
                }
            }
            Timer::Suspicion { name, token } => merge::on_suspicion_timeout(cx, now, &name, token),
            Timer::LastChance { name, token } => merge::on_last_chance(cx, now, &name, token),
            Timer::RelayNack { seq } => self.prober.on_relay_nack(cx, seq),
            Timer::RelayExpire { seq } => self.prober.on_relay_expire(seq),
            Timer::Verify { seq } => {
                if let Some(v) = self.verifier.on_timeout(cx, now, seq) {
                    apply(cx, now, v);
                }
            }
            Timer::Reap { name, since } => reap(cx, &name, since),
        }
    }

    /// Start of a protocol period: conclude the last probe, start the next.
    fn on_probe_tick(&mut self, now: Instant) {
        let cx = &mut self.cx;
        if let Some(failure) = self.prober.conclude(cx) {
            suspect(cx, now, failure);
        }
        self.exchanges.fall_back(cx, now);
        if cx.local.leaving() {
            return;
        }
        let period = cx.config.probe_interval * cx.local.health_multiplier();
        cx.schedule(now + period, Timer::Probe);
        for (i, incarnation) in probe::late_by_phi(cx, now) {
            let me = cx.local.name().clone();
            merge::suspect(cx, now, i, incarnation, me, BTreeSet::new(), None, now);
        }
        self.prober.start(cx, now, period);
    }
}

/// Forgets a dead or left member that has stayed so since `since`.
fn reap(cx: &mut Ctx, name: &Name, since: Instant) {
    let Some(i) = cx.table.get(name) else { return };
    let e = cx.table.entry(i);
    if e.since != since || e.state.is_active() {
        return;
    }
    cx.table.remove(i);
    cx.peers.forget(name.as_str());
}
