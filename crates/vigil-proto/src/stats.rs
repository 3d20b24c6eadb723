//! Plain counters kept by the core; the runtime exports them.

/// Plain counters kept by the core; the runtime exports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Direct probes sent.
    pub probes_sent: u64,
    /// Probes that got no ack within the protocol period.
    pub probes_failed: u64,
    /// Ping-reqs sent to intermediaries.
    pub indirect_probes_sent: u64,
    /// Pings sent on behalf of another member.
    pub relayed_pings: u64,
    /// Nacks received from intermediaries.
    pub nacks_received: u64,
    /// Nacks sent as an intermediary.
    pub nacks_sent: u64,
    /// Suspicions this member started (its own probe failed).
    pub suspicions_started: u64,
    /// Times this member refuted a claim about itself.
    pub refutations: u64,
    /// Members this member declared dead (its suspicion timed out).
    pub failures_declared: u64,
    /// Suspicion deadlines passed while this member heard from no one but
    /// the suspect: it held the declaration (it is likelier the one cut off).
    pub deaf_holds: u64,
    /// Piggybacked updates sent.
    pub updates_sent: u64,
    /// Push-pull exchanges started.
    pub push_pulls_sent: u64,
    /// Pings addressed to another name (a different member at this address).
    pub misdirected_pings: u64,
    /// Ping-reqs refused because too many relays were pending.
    pub relays_refused: u64,
    /// Fallback probes sent over a stream after a datagram probe timed out.
    pub stream_probes_sent: u64,
    /// Digest exchanges started because a member held left or dead sent a
    /// datagram (it came back and this member had missed it).
    pub returned_checks: u64,
    /// Digests (asked or answered) sent in a datagram rather than over a
    /// stream.
    pub digest_datagrams_sent: u64,
    /// Digest exchanges started by datagram that drew no answer within a
    /// probe interval and were started again over a stream.
    pub digest_fallbacks: u64,
    /// Kernel evidence handed in by the runtime (`handle_unreachable`).
    pub evidence_received: u64,
    /// Verifications of kernel evidence started (intermediaries asked to confirm).
    pub verifications_started: u64,
    /// Verifications refuted: the member answered after all.
    pub evidence_refuted: u64,
    /// Process exits confirmed by another member and declared failed at once.
    pub exits_confirmed: u64,
    /// Evidence not verified because too many verifications were running.
    pub evidence_ignored: u64,
    /// Kernel evidence sent to a member whose ping-req or confirm this member ran.
    pub refusals_sent: u64,
    /// Times this member noticed it had not been running (a stall).
    pub stalls: u64,
    /// Name conflicts: joins refused because a live member has the name, and
    /// alive claims about this member from another address.
    pub name_conflicts: u64,
    /// Total time of those stalls.
    pub stalled_for: std::time::Duration,
}
