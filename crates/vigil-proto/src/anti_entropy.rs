//! Anti-entropy: full-state exchanges (push-pull) on join, and periodic
//! exchanges by digest.
//!
//! A periodic push-pull does not send the whole table. The initiator sends
//! its table summed into `B` buckets by name hash (`B` a power of two, about
//! one bucket per 8 members, at most 4 096), and its own state. The receiver
//! sums its own table the same way and answers with its sums and its full
//! states in the buckets that differ. The initiator merges them, compares
//! again, and sends its states in the buckets that still differ as a
//! push-pull reply. When the two tables agree (the common case) an exchange
//! costs `4·B` bytes each way instead of the whole table; when they differ,
//! only the differing buckets (≈ 8 members each) travel. Joins still exchange
//! the whole table: the joiner knows nothing yet.
//!
//! A digest that fits in a datagram (up to 256 buckets: about 2 000
//! members) goes as one, without the initiator's own state, and is answered
//! in a datagram when the answer fits too; when the tables agree the answer
//! is an empty digest ("no difference"). A TCP connection costs some ten
//! frames with their headers; two datagrams cost two. An initiator that
//! hears no answer within a probe interval (a lost datagram, or a member of
//! an earlier release, which ignores a digest in a datagram) sends the same
//! digest over a stream.

use std::net::SocketAddr;

use crate::codec::{self, MemberState, Message, Update};
use crate::core::ctx::Ctx;
use crate::event::NameConflict;
use crate::hash::{claim_digest, name_hash};
use crate::merge::{apply_update, merge_states};
use crate::refute::Refutations;
use crate::table::{SUM_BUCKETS, bucket_of};
use crate::time::Instant;

/// Members per digest bucket the initiator aims for.
const MEMBERS_PER_BUCKET: usize = 8;

/// Buckets for a table of `n` entries: a power of two, about one per 8 members.
fn bucket_count(n: usize) -> usize {
    (n / MEMBERS_PER_BUCKET).max(1).next_power_of_two().min(1 << codec::MAX_DIGEST_BUCKETS_LOG2)
}

/// This member's table (itself included, dead and left members too)
/// summed into `buckets` buckets.
/// From [`SUM_BUCKETS`] entries on, the sums the table keeps up to date are
/// folded (O(`SUM_BUCKETS`), not O(members)); a smaller table is summed
/// entry by entry, which is then cheaper.
fn bucket_sums(cx: &Ctx, buckets: usize) -> Vec<u32> {
    let kept = buckets.is_power_of_two() && buckets <= SUM_BUCKETS && cx.table.len() >= SUM_BUCKETS;
    let mut sums = if kept {
        cx.table.bucket_sums(buckets)
    } else {
        let mut sums = vec![0u32; buckets];
        for (_, e) in cx.table.iter() {
            add_claim(&mut sums, e.hash, e.claim);
        }
        sums
    };
    let own = cx.local.wire_state();
    let own_hash = name_hash(own.name.as_str());
    add_claim(&mut sums, own_hash, claim_digest(own_hash, own.incarnation, own.state));
    sums
}

fn add_claim(sums: &mut [u32], hash: u64, claim: u64) {
    let b = bucket_of(hash, sums.len());
    // Truncation intended: 32 bits per bucket is enough to tell tables apart.
    #[allow(clippy::cast_possible_truncation)]
    let d = claim as u32;
    sums[b] = sums[b].wrapping_add(d);
}

/// This member's own state, then its states in the buckets where `sums`
/// (another member's) differ from its own.
fn states_differing(cx: &Ctx, sums: &[u32]) -> Vec<MemberState> {
    let buckets = sums.len();
    let mine = bucket_sums(cx, buckets);
    let differ: Vec<bool> = mine.iter().zip(sums).map(|(a, b)| a != b).collect();
    let mut states = vec![cx.local.wire_state()];
    // The common case: the tables agree, and no entry need be looked at.
    if !differ.contains(&true) {
        return states;
    }
    // Slot order: deterministic, and cheaper than name order in a shared table.
    states.extend(
        cx.table.iter().filter(|(_, e)| differ[bucket_of(e.hash, buckets)]).map(|(_, e)| e.wire_state()),
    );
    states
}

/// Sends this member's whole table to `dst` (a join, or the answer to one).
pub(crate) fn send_push_pull(cx: &mut Ctx, dst: SocketAddr, join: bool, reply: bool) {
    let mut states = Vec::with_capacity(cx.table.len() + 1);
    // The sender's own state goes first: receivers take it as the sender.
    states.push(cx.local.wire_state());
    states.extend(cx.table.by_name().map(|(_, e)| e.wire_state()));
    if !reply {
        cx.stats.push_pulls_sent += 1;
    }
    let takeover = join && cx.local.takeover();
    cx.send_stream(dst, Message::PushPull { join, takeover, reply, states });
}

/// A whole table arrived on a stream from `from`, with piggybacked
/// `updates`: merge both, send the refutations they call for, and answer
/// with our table unless it was itself the answer.
///
/// One name, one member: a join whose sender holds the name of a member this
/// one holds alive at another address is refused (its own state is not
/// merged, and the answer shows it the live member), unless it takes over;
/// and a joining member whose answer shows its own name alive at another
/// address stops, merging nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn on_push_pull(
    cx: &mut Ctx,
    now: Instant,
    from: SocketAddr,
    (join, takeover, reply): (bool, bool, bool),
    mut states: Vec<MemberState>,
    updates: Vec<Update>,
) {
    if reply && !cx.local.joined() {
        let me = cx.local.identity();
        let taken = states.iter().find(|s| s.name == me.name && s.state.is_active() && s.addr != me.addr);
        if let Some(s) = taken
            && !cx.local.takeover()
        {
            let conflict = NameConflict { name: me.name.clone(), kept: s.addr, refused: me.addr };
            cx.stats.name_conflicts += 1;
            cx.local.yield_to(s.addr);
            cx.out.conflict(conflict);
            return;
        }
        cx.local.set_joined();
    }
    if join
        && !takeover
        && let Some(first) = states.first()
        && let Some(i) = cx.table.get(&first.name)
        && cx.table.entry(i).state.is_active()
        && cx.table.entry(i).addr() != first.addr
    {
        let kept = cx.table.entry(i).addr();
        cx.stats.name_conflicts += 1;
        cx.out.conflict(NameConflict { name: first.name.clone(), kept, refused: first.addr });
        states.remove(0);
    }
    let mut refute = Refutations::default();
    merge_states(cx, &mut refute, now, states);
    for update in updates {
        apply_update(cx, &mut refute, now, update);
    }
    refute.send(cx);
    if !reply {
        send_push_pull(cx, from, false, true);
    }
}

/// Sends a digest over a stream, with this member's own state: the
/// reconnect to a member held dead (likely gone: a datagram to it would
/// carry gossip to no one), and the fallback.
pub(crate) fn send_digest_stream(cx: &mut Ctx, dst: SocketAddr) {
    let sums = bucket_sums(cx, bucket_count(cx.table.len() + 1));
    let states = vec![cx.local.wire_state()];
    cx.send_stream(dst, Message::Digest { reply: false, sums, states });
}

/// Whether `message`, alone, fits in a datagram.
fn fits_datagram(cx: &Ctx, message: &Message) -> bool {
    let mut buf = Vec::new();
    codec::encode_message(&mut buf, message);
    // The update count byte follows the message.
    buf.len() < cx.config.max_packet_size
}

/// A datagram digest's answer comes within a probe interval or not at all.
fn answer_due(cx: &Ctx, sent: Instant) -> Instant {
    sent + cx.config.probe_interval
}

/// A digest arrived from `from`, on a stream or in a datagram
/// (`by_datagram`). Refutations the merge calls for are sent before the
/// answer. An answer without sums says "no difference".
pub(crate) fn on_digest(
    cx: &mut Ctx,
    now: Instant,
    from: SocketAddr,
    (reply, by_datagram): (bool, bool),
    sums: Vec<u32>,
    states: Vec<MemberState>,
) {
    if !sums.len().is_power_of_two() {
        return;
    }
    let mut refute = Refutations::default();
    merge_states(cx, &mut refute, now, states);
    refute.send(cx);
    if cx.local.leaving() {
        return;
    }
    if !reply {
        // Our sums and our states where the initiator's table differs.
        let states = states_differing(cx, &sums);
        let own = bucket_sums(cx, sums.len());
        // A digest that came in a datagram, from a member, is answered in
        // one if the answer fits: "no difference" as an empty digest.
        if by_datagram && cx.table.by_addr(&from).is_some() {
            let answer = if own == sums {
                Message::Digest { reply: true, sums: Vec::new(), states: Vec::new() }
            } else {
                Message::Digest { reply: true, sums: own.clone(), states: states.clone() }
            };
            if fits_datagram(cx, &answer) {
                cx.stats.digest_datagrams_sent += 1;
                cx.send(from, &answer, None);
                return;
            }
        }
        cx.send_stream(from, Message::Digest { reply: true, sums: own, states });
    } else {
        // After merging their differing states, send ours where we still differ.
        let states = states_differing(cx, &sums);
        if states.len() > 1 {
            cx.send_stream(from, Message::PushPull { join: false, takeover: false, reply: true, states });
        }
    }
}

/// Most digest exchanges started by datagram that wait for an answer.
const MAX_WAITING: usize = 4;

/// Anti-entropy's own state: the exchanges started by datagram that wait
/// for an answer, and when a returned member was last asked.
#[derive(Debug, Default)]
pub(crate) struct Exchanges {
    /// Destination, and when its answer is due.
    waiting: Vec<(SocketAddr, Instant)>,
    last_check: Option<Instant>,
}

impl Exchanges {
    /// Starts an exchange with `dst`: its digest in a datagram when it fits
    /// (the answer awaited), over a stream otherwise.
    pub(crate) fn start(&mut self, cx: &mut Ctx, now: Instant, dst: SocketAddr) {
        cx.stats.push_pulls_sent += 1;
        let sums = bucket_sums(cx, bucket_count(cx.table.len() + 1));
        let digest = Message::Digest { reply: false, sums, states: Vec::new() };
        if !fits_datagram(cx, &digest) {
            send_digest_stream(cx, dst);
            return;
        }
        cx.stats.digest_datagrams_sent += 1;
        cx.send(dst, &digest, None);
        self.waiting.retain(|(to, _)| *to != dst);
        if self.waiting.len() == MAX_WAITING {
            self.waiting.remove(0);
        }
        self.waiting.push((dst, answer_due(cx, now)));
    }

    /// An answer to a digest arrived from `from`.
    pub(crate) fn answered(&mut self, from: SocketAddr) {
        self.waiting.retain(|(to, _)| *to != from);
    }

    /// Exchanges whose answer is overdue are started again over a stream.
    pub(crate) fn fall_back(&mut self, cx: &mut Ctx, now: Instant) {
        while let Some(k) = self.waiting.iter().position(|(_, due)| *due <= now) {
            let (dst, _) = self.waiting.remove(k);
            cx.stats.digest_fallbacks += 1;
            send_digest_stream(cx, dst);
        }
    }

    /// A member held `left` or `dead` for a while sent a datagram that says
    /// nothing about itself: it is running again and this member missed the
    /// news (the tail of infection-style gossip; nothing else contacts a
    /// member held `left` before the next periodic exchange). Ask it for its
    /// state with a digest exchange, at most once per probe interval.
    /// `i` is the sender's slot.
    pub(crate) fn check_return(&mut self, cx: &mut Ctx, now: Instant, from: SocketAddr, i: usize) {
        let e = cx.table.entry(i);
        let quiet = cx.config.probe_interval * 2;
        if cx.local.leaving() || e.state.is_active() || e.since + quiet > now {
            return;
        }
        if self.last_check.is_some_and(|at| at + cx.config.probe_interval > now) {
            return;
        }
        self.last_check = Some(now);
        cx.stats.returned_checks += 1;
        self.start(cx, now, from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_count_is_a_bounded_power_of_two() {
        assert_eq!(bucket_count(1), 1);
        assert_eq!(bucket_count(100), 16);
        assert_eq!(bucket_count(10_000), 2048);
        assert_eq!(bucket_count(10_000_000), 4096);
    }
}
