//! Verifying kernel evidence before condemning: one observer's evidence can
//! be wrong (a firewall rejecting one source, a forged ICMP), so a member
//! with evidence that another's process exited asks intermediaries to try
//! that member at once. No ack from anyone, and evidence from at least two
//! members of which one is strong and not this member's own, declares it
//! failed at once; any ack (or any datagram from it) refutes the evidence;
//! a verification that ends with neither becomes an ordinary, patient
//! suspicion.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::codec::Message;
use crate::core::ctx::Ctx;
use crate::core::timers::Timer;
use crate::event::{ExitEvidence, ProbeEvidence};
use crate::kernel::Unreachable;
use crate::member::{Name, State};
use crate::time::Instant;

/// Most verifications running at once; evidence beyond that waits for the
/// ordinary probe (a flood of forged evidence costs little).
const MAX_VERIFICATIONS: usize = 64;

/// One verification of one member's evidence.
#[derive(Debug)]
struct Verification {
    target: Name,
    started: Instant,
    /// Intermediaries asked to confirm.
    asked: Vec<Name>,
    /// Intermediaries that answered they saw nothing (nacks).
    nacks: Vec<Name>,
    /// Who saw the process gone, and how (this member included), in order.
    witnesses: Vec<(Name, Unreachable)>,
}

/// How a verification ended, for the core to act on.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Confirmed: declare `index` (at `incarnation`) failed at once.
    Exited { index: usize, incarnation: u64, evidence: ExitEvidence },
    /// Neither confirmed nor refuted in time: an ordinary suspicion, silent
    /// since the verification started.
    Silent { index: usize, incarnation: u64, since: Instant, probe: ProbeEvidence },
}

/// The verifications running, by sequence number.
#[derive(Debug, Default)]
pub(crate) struct Verifier {
    pending: BTreeMap<u32, Verification>,
}

impl Verifier {
    /// `witness` (this member, or an intermediary of an ordinary probe) saw
    /// the process of entry `i` gone: start verifying, or add to the
    /// verification running. Returns a verdict when that confirms it.
    pub(crate) fn evidence(
        &mut self,
        cx: &mut Ctx,
        now: Instant,
        i: usize,
        witness: Name,
        how: Unreachable,
    ) -> Option<Verdict> {
        let target = cx.table.entry(i).name.clone();
        if let Some((&seq, _)) = self.pending.iter().find(|(_, v)| v.target == target) {
            return self.witness(cx, seq, witness, how);
        }
        if self.pending.len() >= MAX_VERIFICATIONS {
            cx.stats.evidence_ignored += 1;
            return None;
        }
        cx.stats.verifications_started += 1;
        let seq = cx.next_seq();
        let addr = cx.table.entry(i).addr();
        let wait = cx.config.probe_timeout_max;
        let nack_after_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        // This member tries too: a datagram (an ack refutes; an ICMP error is
        // more evidence) and a stream (a refusal is strong evidence).
        cx.send(addr, &Message::Ping { seq, target: target.hash32() }, None);
        cx.send_stream(addr, Message::Ping { seq, target: target.hash32() });
        let helpers = cx.sample(cx.config.indirect_checks, |e| e.state == State::Alive && e.name != target);
        let mut asked = Vec::with_capacity(helpers.len());
        for h in helpers {
            let e = cx.table.entry(h);
            let dst = e.addr();
            asked.push(e.name.clone());
            let confirm = Message::Confirm { seq, target: target.clone(), addr, nack_after_ms };
            cx.send(dst, &confirm, None);
        }
        cx.schedule(now + wait * 2, Timer::Verify { seq });
        let v = Verification { target, started: now, asked, nacks: Vec::new(), witnesses: Vec::new() };
        self.pending.insert(seq, v);
        self.witness(cx, seq, witness, how)
    }

    /// An intermediary answered verification `seq` with its own evidence.
    pub(crate) fn on_refused(
        &mut self,
        cx: &mut Ctx,
        seq: u32,
        from: &Name,
        how: Unreachable,
    ) -> Option<Verdict> {
        let v = self.pending.get(&seq)?;
        if !v.asked.contains(from) {
            return None;
        }
        self.witness(cx, seq, from.clone(), how)
    }

    fn witness(&mut self, cx: &mut Ctx, seq: u32, witness: Name, how: Unreachable) -> Option<Verdict> {
        let v = self.pending.get_mut(&seq)?;
        match v.witnesses.iter_mut().find(|(n, _)| *n == witness) {
            // Stronger evidence from the same witness replaces the weaker.
            Some(w) if how.is_strong() && !w.1.is_strong() => w.1 = how,
            Some(_) => {}
            None => v.witnesses.push((witness, how)),
        }
        let me = cx.local.name();
        let confirmed =
            v.witnesses.len() >= 2 && v.witnesses.iter().any(|(n, how)| n != me && how.is_strong());
        if !confirmed {
            return None;
        }
        let v = self.pending.remove(&seq)?;
        let i = cx.table.get(&v.target)?;
        let e = cx.table.entry(i);
        if !e.state.is_active() {
            return None;
        }
        cx.stats.exits_confirmed += 1;
        let evidence = ExitEvidence { witnesses: v.witnesses };
        Some(Verdict::Exited { index: i, incarnation: e.incarnation, evidence })
    }

    /// Any datagram from `sender` that is the member being verified, or an
    /// ack of `seq` relayed by an intermediary asked to confirm: the member
    /// is alive and the evidence against it was wrong.
    pub(crate) fn refute(&mut self, cx: &mut Ctx, seq: Option<u32>, sender: Option<&Name>) {
        let Some(sender) = sender else { return };
        // Nothing being verified (nearly always): nothing to refute, and no
        // counter to touch (its cache line, on every datagram, showed in profiles).
        if self.pending.is_empty() {
            return;
        }
        let before = self.pending.len();
        self.pending.retain(|s, v| {
            let from_target = v.target == *sender;
            let relayed = Some(*s) == seq && v.asked.contains(sender);
            !(from_target || relayed)
        });
        cx.stats.evidence_refuted += (before - self.pending.len()) as u64;
    }

    /// An intermediary saw nothing.
    pub(crate) fn on_nack(&mut self, seq: u32, from: &Name) {
        if let Some(v) = self.pending.get_mut(&seq)
            && v.asked.contains(from)
            && !v.nacks.contains(from)
        {
            v.nacks.push(from.clone());
        }
    }

    /// Verification `seq` ran out of time with neither ack nor confirmation.
    pub(crate) fn on_timeout(&mut self, cx: &Ctx, now: Instant, seq: u32) -> Option<Verdict> {
        let v = self.pending.remove(&seq)?;
        let i = cx.table.get(&v.target)?;
        let e = cx.table.entry(i);
        if !e.state.is_active() {
            return None;
        }
        let probe = ProbeEvidence { timeout: now - v.started, indirect: v.asked, nacks: v.nacks };
        Some(Verdict::Silent { index: i, incarnation: e.incarnation, since: v.started, probe })
    }

    /// The caller did not run for `by` (a stall): verifications started
    /// before it are moved on by as much.
    pub(crate) fn postpone(&mut self, by: Duration) {
        for v in self.pending.values_mut() {
            v.started += by;
        }
    }
}
