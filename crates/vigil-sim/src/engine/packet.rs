//! What travels and what is kept: a packet in flight ([`Packet`], on a
//! [`Wire`]), a packet kept to be replayed ([`Captured`]), an event kept in
//! the log ([`Seen`]). A leaf.

use vigil_proto::Unreachable;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    Datagram,
    /// A stream on a new connection.
    Stream,
    /// A reply on the connection a stream came in on.
    Reply,
    /// Not a packet: what the receiver's kernel says about the sender's
    /// address (an ICMP error, a refused connection, a stream closed). No bytes.
    Evidence(Unreachable),
}

#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub(super) from: u32,
    pub(super) wire: Wire,
    pub(super) bytes: Vec<u8>,
}

/// An event that member `observer` emitted at `at`.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When (virtual time).
    pub at: vigil_proto::Instant,
    /// The member that emitted it.
    pub observer: usize,
    /// The event.
    pub event: vigil_proto::Event,
}

/// A packet as it was handed to a member, to hand it over again later (as an
/// attacker on the path would replay it).
#[derive(Debug, Clone)]
pub struct Captured {
    pub(super) to: u32,
    pub(super) packet: Packet,
}

impl Captured {
    /// The member that sent it.
    pub fn from(&self) -> usize {
        self.packet.from as usize
    }
    /// The member it was handed to.
    pub fn to(&self) -> usize {
        self.to as usize
    }
    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.packet.bytes
    }
}
