//! Fault injection around the transport, for tests: dropped, delayed and
//! blocked packets, in either direction. Off unless a test turns it on.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Faults applied to this member's traffic.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Faults {
    /// Probability that an outgoing datagram is dropped.
    pub drop_outbound: f64,
    /// Probability that an incoming datagram is dropped.
    pub drop_inbound: f64,
    /// Delay added to every outgoing datagram and stream message.
    pub delay: Duration,
    /// Peers this member's packets to are dropped (one-way: theirs still arrive).
    pub blocked_outbound: BTreeSet<IpOrAddr>,
    /// Peers whose packets to this member are dropped.
    pub blocked_inbound: BTreeSet<IpOrAddr>,
}

/// A peer named by its whole socket address or only its IP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpOrAddr {
    /// Every port of this IP.
    Ip(IpAddr),
    /// This exact address.
    Addr(SocketAddr),
}

impl IpOrAddr {
    fn matches(&self, addr: &SocketAddr) -> bool {
        match self {
            IpOrAddr::Ip(ip) => addr.ip() == *ip,
            IpOrAddr::Addr(a) => a == addr,
        }
    }
}

impl Faults {
    /// Drops every packet between this member and `peer`, both ways.
    pub fn block(mut self, peer: SocketAddr) -> Self {
        self.blocked_outbound.insert(IpOrAddr::Addr(peer));
        self.blocked_inbound.insert(IpOrAddr::Addr(peer));
        self
    }

    pub(crate) fn outbound_blocked(&self, dst: &SocketAddr) -> bool {
        self.blocked_outbound.iter().any(|b| b.matches(dst))
    }

    pub(crate) fn inbound_blocked(&self, src: &SocketAddr) -> bool {
        self.blocked_inbound.iter().any(|b| b.matches(src))
    }
}

/// A small deterministic generator for drop decisions (xorshift64*).
#[derive(Debug)]
pub(crate) struct Dice(u64);

impl Dice {
    pub(crate) fn new(seed: u64) -> Self {
        Dice(seed | 1)
    }

    /// True with probability `p`.
    pub(crate) fn roll(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (x as f64 / (1u64 << 53) as f64) < p
    }
}
