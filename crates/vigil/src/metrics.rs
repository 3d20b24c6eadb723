//! Counters of traffic and protocol activity. The agent exports them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use vigil_proto::Core;
use vigil_proto::codec::MESSAGE_KINDS;

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
    /// Packets dropped on purpose by fault injection (feature `testing` only).
    #[cfg(feature = "testing")]
    pub fault_drops: u64,
    /// The protocol core's counters (probes, failed probes, suspicions, refutations, ...).
    pub protocol: vigil_proto::Stats,
    /// Lifeguard local health score (0 is healthy).
    pub local_health: u32,
    /// Alive and suspect members, this one included.
    pub members: usize,
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

/// The driver's own counters: rejections and errors.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    rejected: BTreeMap<&'static str, u64>,
    send_errors: u64,
    stream_errors: u64,
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

    /// Every counter but traffic (which the publisher adds).
    pub(crate) fn snapshot(&self, core: &Core) -> Metrics {
        Metrics {
            rejected: self.rejected.iter().map(|(k, v)| (*k, *v)).collect(),
            send_errors: self.send_errors,
            stream_errors: self.stream_errors,
            protocol: core.stats().clone(),
            local_health: core.local_health(),
            members: core.num_members(),
            ..Metrics::default()
        }
    }
}
