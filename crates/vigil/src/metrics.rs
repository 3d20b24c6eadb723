//! Counters of traffic and protocol activity. The agent exports them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use vigil_proto::codec::MESSAGE_KINDS;
use vigil_proto::{Core, Unreachable};

const KINDS: usize = MESSAGE_KINDS.len() + 1;

/// Traffic counters, by message kind (`other` for what does not decode).
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    packets_in: [AtomicU64; KINDS],
    bytes_in: [AtomicU64; KINDS],
    packets_out: [AtomicU64; KINDS],
    bytes_out: [AtomicU64; KINDS],
}

fn kind_index(bytes: &[u8]) -> usize {
    vigil_proto::codec::message_kind(bytes)
        .and_then(|k| MESSAGE_KINDS.iter().position(|x| *x == k))
        .unwrap_or(MESSAGE_KINDS.len())
}

impl Traffic {
    pub(crate) fn count_in(&self, bytes: &[u8], wire_len: usize) {
        let i = kind_index(bytes);
        self.packets_in[i].fetch_add(1, Ordering::Relaxed);
        self.bytes_in[i].fetch_add(wire_len as u64, Ordering::Relaxed);
    }

    pub(crate) fn count_out(&self, bytes: &[u8], wire_len: usize) {
        let i = kind_index(bytes);
        self.packets_out[i].fetch_add(1, Ordering::Relaxed);
        self.bytes_out[i].fetch_add(wire_len as u64, Ordering::Relaxed);
    }
}

/// Packets and bytes of one message kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    /// Message kind: `ping`, `ack`, `ping_req`, `nack`, `gossip`, `push_pull`, `other`.
    pub kind: &'static str,
    /// Packets received.
    pub packets_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// A snapshot of every counter.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Traffic by message kind.
    pub traffic: Vec<KindCounts>,
    /// Packets rejected, by reason (`version`, `truncated`, `malformed`, ...).
    pub rejected: Vec<(&'static str, u64)>,
    /// Datagrams that could not be sent (socket buffer full, unreachable).
    pub send_errors: u64,
    /// Stream exchanges that failed (connect, timeout, reset).
    pub stream_errors: u64,
    /// Kernel evidence that a process is gone, handed to the core, by kind:
    /// `port_unreachable` (ICMP, Linux only), `refused` (a stream connection
    /// refused), `stream_closed` (a watch stream ended). Every kind is listed,
    /// zero included.
    pub evidence: Vec<(&'static str, u64)>,
    /// Packets opened, by envelope: `legacy` (version 1, from members of the
    /// previous release during a rolling upgrade) and `current` (version 2).
    /// Every version listed, zero included.
    pub envelopes: Vec<(&'static str, u64)>,
    /// Inbound stream connections refused or dropped before their first
    /// frame authenticated, by reason: `busy` (no slot free), `per_ip` (its
    /// source IP holds its share of slots), `budget` (the bytes of
    /// unauthenticated first frames being read are at their cap), `too_large`
    /// (a first frame longer than 64 KiB), `deadline` (no first frame that
    /// authenticated within 2 s). Every reason listed, zero included.
    pub streams_refused: Vec<(&'static str, u64)>,
    /// Watch streams open now to the members this one watches.
    pub watching: usize,
    /// Watch streams held now for the members that watch this one.
    pub watched_by: usize,
    /// Farewells read on watch streams (a watched member left).
    pub farewells_received: u64,
    /// Datagrams and stream frames found already queued when timers fell
    /// due, and handed in before them (after a stall: the backlog).
    pub backlog_drained: u64,
    /// The last time this member noticed it had not been running (see
    /// [`Stall`]); the count and total are in `protocol.stalls` and
    /// `protocol.stalled_for`.
    pub last_stall: Option<Stall>,
    /// Packets dropped on purpose by fault injection (feature `testing` only).
    #[cfg(feature = "testing")]
    pub fault_drops: u64,
    /// The protocol core's counters (probes, failed probes, suspicions,
    /// refutations, flaps, ...) and histograms (probe round trips,
    /// suspicion durations until refuted or failed).
    pub protocol: vigil_proto::Stats,
    /// Lifeguard local health score (0 is healthy).
    pub local_health: u32,
    /// Alive and suspect members, this one included.
    pub members: usize,
}

/// A time this member was not running (stopped, paused, starved of CPU):
/// its timers fired far later than asked. It accuses no one of what the
/// stall caused, and its local health score rises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stall {
    /// When it noticed (on waking).
    pub at: std::time::Instant,
    /// How long it had not been running.
    pub lasted: Duration,
}

/// Counter labels of kernel evidence, in the order [`Metrics::evidence`] lists them.
const EVIDENCE_KINDS: [&str; 3] = ["port_unreachable", "refused", "stream_closed"];

fn evidence_index(how: Unreachable) -> Option<usize> {
    match how {
        Unreachable::PortUnreachable => Some(0),
        Unreachable::Refused => Some(1),
        Unreachable::StreamClosed => Some(2),
        _ => None,
    }
}

impl Traffic {
    pub(crate) fn snapshot(&self) -> Vec<KindCounts> {
        (0..KINDS)
            .map(|i| KindCounts {
                kind: MESSAGE_KINDS.get(i).copied().unwrap_or("other"),
                packets_in: self.packets_in[i].load(Ordering::Relaxed),
                bytes_in: self.bytes_in[i].load(Ordering::Relaxed),
                packets_out: self.packets_out[i].load(Ordering::Relaxed),
                bytes_out: self.bytes_out[i].load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// The driver's own counters: rejections, errors, evidence.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    rejected: BTreeMap<&'static str, u64>,
    send_errors: u64,
    stream_errors: u64,
    evidence: [u64; EVIDENCE_KINDS.len()],
    farewells: u64,
    backlog: u64,
}

impl Counters {
    /// A packet was refused, for `reason`.
    pub(crate) fn reject(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    /// A datagram could not be sent.
    pub(crate) fn send_error(&mut self) {
        self.send_errors += 1;
    }

    /// A stream exchange failed.
    pub(crate) fn stream_error(&mut self) {
        self.stream_errors += 1;
    }

    /// Kernel evidence was handed to the core.
    pub(crate) fn evidence(&mut self, how: Unreachable) {
        if let Some(i) = evidence_index(how) {
            self.evidence[i] += 1;
        }
    }

    /// A farewell was read on a watch stream.
    pub(crate) fn farewell(&mut self) {
        self.farewells += 1;
    }

    /// A datagram or stream frame from the backlog was handed in before timers.
    pub(crate) fn drained(&mut self) {
        self.backlog += 1;
    }

    /// Every counter but traffic (which the publisher adds) and what the
    /// driver's parts know (watch streams, the last stall's instant).
    pub(crate) fn snapshot(&self, core: &Core) -> Metrics {
        Metrics {
            rejected: self.rejected.iter().map(|(k, v)| (*k, *v)).collect(),
            send_errors: self.send_errors,
            stream_errors: self.stream_errors,
            evidence: EVIDENCE_KINDS.iter().copied().zip(self.evidence).collect(),
            farewells_received: self.farewells,
            backlog_drained: self.backlog,
            protocol: core.stats().clone(),
            local_health: core.local_health(),
            members: core.num_members(),
            ..Metrics::default()
        }
    }
}
