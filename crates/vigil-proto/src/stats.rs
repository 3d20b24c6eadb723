//! Plain counters kept by the core; the runtime exports them.

use std::time::Duration;

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
    /// Flaps: members this member held dead (failed) that came back alive
    /// (a return while the failure is still remembered, within
    /// `dead_retention`).
    pub flaps: u64,
    /// Round-trip times and suspicion durations, as histograms.
    pub histograms: Histograms,
}

/// Upper bounds of [`Histograms::probe_rtt`]'s buckets: 100 µs to 1 s.
pub const RTT_BUCKETS: [Duration; 13] = [
    Duration::from_micros(100),
    Duration::from_micros(250),
    Duration::from_micros(500),
    Duration::from_millis(1),
    Duration::from_micros(2500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
];

/// Upper bounds of the suspicion-duration histograms' buckets: 100 ms to 1 h.
pub const SUSPICION_BUCKETS: [Duration; 14] = [
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_millis(2500),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(25),
    Duration::from_secs(50),
    Duration::from_secs(100),
    Duration::from_secs(250),
    Duration::from_secs(600),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
];

/// The core's histograms of durations.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Histograms {
    /// Round trips of this member's direct probes, from the probe sent to
    /// its ack (the samples the probe timeout adapts to), in [`RTT_BUCKETS`].
    pub probe_rtt: Histogram,
    /// Suspicions this member held that ended with the suspect alive again
    /// (it refuted), from the suspicion's start, in [`SUSPICION_BUCKETS`].
    pub suspicion_refuted: Histogram,
    /// Suspicions this member held that ended with the suspect declared
    /// failed (here or by another member), in [`SUSPICION_BUCKETS`]. A member
    /// declared failed without a suspicion here (a confirmed process exit, a
    /// failure learned from others first) is not counted.
    pub suspicion_failed: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            probe_rtt: Histogram::new(&RTT_BUCKETS),
            suspicion_refuted: Histogram::new(&SUSPICION_BUCKETS),
            suspicion_failed: Histogram::new(&SUSPICION_BUCKETS),
        }
    }
}

/// Counts of durations in fixed buckets, with their sum (as Prometheus
/// histograms keep them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram {
    bounds: &'static [Duration],
    /// Per bucket (not cumulative); the last one above every bound.
    counts: Vec<u64>,
    sum: Duration,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub fn new(bounds: &'static [Duration]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: Duration::ZERO }
    }

    /// Counts `d` in the first bucket whose bound is at least `d`.
    pub fn observe(&mut self, d: Duration) {
        let i = self.bounds.partition_point(|b| *b < d);
        self.counts[i] += 1;
        self.sum = self.sum.saturating_add(d);
    }

    /// Each bucket's upper bound (`None`: above every bound) and how many
    /// durations fell in it (not cumulative).
    pub fn buckets(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        self.bounds.iter().map(|b| Some(*b)).chain(std::iter::once(None)).zip(self.counts.iter().copied())
    }

    /// Durations counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum.
    pub fn sum(&self) -> Duration {
        self.sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_duration_in_the_first_bucket_that_holds_it() {
        let mut h = Histogram::new(&RTT_BUCKETS);
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(Duration::from_secs(3));
        let b: Vec<_> = h.buckets().collect();
        assert_eq!(b.len(), RTT_BUCKETS.len() + 1);
        assert_eq!(b[0], (Some(Duration::from_micros(100)), 1));
        assert_eq!(b[1], (Some(Duration::from_micros(250)), 1));
        assert_eq!(b[RTT_BUCKETS.len()], (None, 1));
        assert_eq!(h.count(), 3);
        assert_eq!(h.sum(), Duration::from_micros(3_000_201));
    }
}
