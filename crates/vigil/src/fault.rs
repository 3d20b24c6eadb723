//! Fault injection, for tests (cargo feature `testing`; not compiled into
//! other builds): dropped, delayed and blocked packets. [`Faults`] says what
//! to do; the [`Injector`] decides for each packet that the link
//! (`link.rs`) hands it, and counts what it dropped.

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

    fn outbound_blocked(&self, dst: &SocketAddr) -> bool {
        self.blocked_outbound.iter().any(|b| b.matches(dst))
    }

    fn inbound_blocked(&self, src: &SocketAddr) -> bool {
        self.blocked_inbound.iter().any(|b| b.matches(src))
    }
}

/// Which way a packet goes, and how: what the [`Injector`] decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// A datagram that arrived.
    InboundDatagram,
    /// A datagram about to be sent.
    OutboundDatagram,
    /// A stream message about to be sent (on a new connection).
    OutboundStream,
}

/// Decides the fate of each packet under the current [`Faults`]. Every
/// fault rule is applied here and nowhere else: a new kind of fault (a delay
/// for some peers, jitter) is a field of [`Faults`] and a line below.
#[derive(Debug)]
pub(crate) struct Injector {
    faults: Option<Faults>,
    dice: Dice,
    drops: u64,
}

impl Injector {
    pub(crate) fn new(faults: Option<Faults>, seed: u64) -> Self {
        Injector { faults, dice: Dice::new(seed ^ 0xD1CE), drops: 0 }
    }

    /// Replaces the faults (`None`: none).
    pub(crate) fn set(&mut self, faults: Option<Faults>) {
        self.faults = faults;
    }

    /// Packets dropped so far.
    pub(crate) fn drops(&self) -> u64 {
        self.drops
    }

    /// `None`: drop the packet to or from `peer`; `Some(delay)`: let it
    /// through after `delay` (zero: at once). Inbound datagrams are never
    /// delayed.
    pub(crate) fn decide(&mut self, peer: &SocketAddr, path: Path) -> Option<Duration> {
        let Some(f) = &self.faults else { return Some(Duration::ZERO) };
        let dropped = match path {
            Path::InboundDatagram => f.inbound_blocked(peer) || self.dice.roll(f.drop_inbound),
            Path::OutboundDatagram => f.outbound_blocked(peer) || self.dice.roll(f.drop_outbound),
            Path::OutboundStream => f.outbound_blocked(peer),
        };
        if dropped {
            self.drops += 1;
            return None;
        }
        Some(if path == Path::InboundDatagram { Duration::ZERO } else { f.delay })
    }
}

/// A small deterministic generator for drop decisions (xorshift64*).
#[derive(Debug)]
struct Dice(u64);

impl Dice {
    fn new(seed: u64) -> Self {
        Dice(seed | 1)
    }

    /// True with probability `p`.
    fn roll(&mut self, p: f64) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_peers_are_dropped_by_path_and_counted() {
        let (a, b): (SocketAddr, SocketAddr) = ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:1".parse().unwrap());
        let mut i = Injector::new(None, 1);
        assert_eq!(
            i.decide(&a, Path::OutboundDatagram),
            Some(Duration::ZERO),
            "no faults: everything passes"
        );
        let mut f = Faults::default().block(a);
        f.delay = Duration::from_millis(30);
        i.set(Some(f));
        assert_eq!(i.decide(&a, Path::InboundDatagram), None);
        assert_eq!(i.decide(&a, Path::OutboundDatagram), None);
        assert_eq!(i.decide(&a, Path::OutboundStream), None);
        assert_eq!(i.decide(&b, Path::OutboundStream), Some(Duration::from_millis(30)));
        assert_eq!(i.decide(&b, Path::InboundDatagram), Some(Duration::ZERO));
        assert_eq!(i.drops(), 3);
    }

    #[test]
    fn drop_probabilities_hold_roughly_and_repeat_with_the_seed() {
        let peer: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let run = |seed| {
            let mut i = Injector::new(Some(Faults { drop_outbound: 0.25, ..Faults::default() }), seed);
            (0..10_000).filter(|_| i.decide(&peer, Path::OutboundDatagram).is_none()).count()
        };
        let dropped = run(7);
        assert!((2_000..3_000).contains(&dropped), "{dropped}");
        assert_eq!(run(7), dropped);
    }
}
