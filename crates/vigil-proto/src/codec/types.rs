//! The packet types and their wire constants.
#![deny(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::unwrap_used)]

use std::net::SocketAddr;

use crate::kernel::Unreachable;
use crate::member::{Health, Meta, Name, State};

/// The packet version this build writes: version 2, the compact form
/// (a sequence number in four bytes, no update count when no update
/// follows). docs/PROTOCOL.md, "Packet".
pub const VERSION: u8 = 2;

/// The packet version of the previous release, still read, and written by
/// [`to_version_1`](super::to_version_1) for a peer that reads nothing else.
pub const VERSION_1: u8 = 1;

/// Version 2: the message type's top bit says that an update count (at
/// least 1) and the updates follow the message.
pub(super) const UPDATES_FOLLOW: u8 = 0x80;

pub(super) const MSG_PING: u8 = 1;
pub(super) const MSG_ACK: u8 = 2;
pub(super) const MSG_PING_REQ: u8 = 3;
pub(super) const MSG_NACK: u8 = 4;
pub(super) const MSG_GOSSIP: u8 = 5;
pub(super) const MSG_PUSH_PULL: u8 = 6;
pub(super) const MSG_DIGEST: u8 = 8;
pub(super) const MSG_CONFIRM: u8 = 9;
pub(super) const MSG_REFUSED: u8 = 10;

pub(super) const UPD_ALIVE: u8 = 1;
pub(super) const UPD_SUSPECT: u8 = 2;
pub(super) const UPD_DEAD: u8 = 3;
pub(super) const UPD_LEFT: u8 = 4;

pub(super) const FLAG_JOIN: u8 = 0x01;
pub(super) const FLAG_REPLY: u8 = 0x02;
pub(super) const FLAG_TAKEOVER: u8 = 0x04;
/// A digest whose sender's sums equal the ones it answers: no sums follow.
pub(super) const FLAG_SAME: u8 = 0x04;

/// Most piggybacked updates one packet may carry (the count is one byte).
pub const MAX_UPDATES_PER_PACKET: usize = 255;

/// Most buckets a [`Message::Digest`] may carry, as a power of two: 2^12 = 4096.
pub const MAX_DIGEST_BUCKETS_LOG2: u8 = 12;

/// The primary message of a packet.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// A direct probe. `target` is the hash of the intended receiver's name
    /// ([`Name::hash32`]); a member with another name does not answer.
    Ping {
        /// Sequence number chosen by the prober, echoed in the ack.
        seq: u32,
        /// Hash of the target's name.
        target: u32,
    },
    /// The answer to a ping (or, relayed, to a ping-req).
    Ack {
        /// The probe's sequence number.
        seq: u32,
    },
    /// Ask the receiver to probe `target` on the sender's behalf.
    PingReq {
        /// The requester's sequence number, echoed in the relayed ack or nack.
        seq: u32,
        /// Whom to probe.
        target: Name,
        /// Where.
        addr: SocketAddr,
        /// Send a nack if no ack came within this many milliseconds.
        nack_after_ms: u32,
    },
    /// An intermediary could not reach the target in time (Lifeguard).
    Nack {
        /// The requester's sequence number.
        seq: u32,
    },
    /// The sender has kernel evidence that `target`'s process exited: the
    /// receiver probes it at once, over a datagram and a stream, and answers
    /// with the relayed ack, a [`Message::Refused`], or a nack.
    Confirm {
        /// The requester's sequence number, echoed in the answer.
        seq: u32,
        /// Whom to probe.
        target: Name,
        /// Where.
        addr: SocketAddr,
        /// Send a nack if neither an ack nor evidence came within this many milliseconds.
        nack_after_ms: u32,
    },
    /// An intermediary's own kernel evidence that the target's process is
    /// gone (the answer to a confirm or a ping-req).
    Refused {
        /// The requester's sequence number.
        seq: u32,
        /// What the intermediary saw.
        how: Unreachable,
    },
    /// Nothing but piggybacked updates.
    Gossip,
    /// A full-state exchange (sent over a stream).
    PushPull {
        /// Sent by a joining member.
        join: bool,
        /// A joining member that replaces a live member of the same name
        /// (the operator asked for it): receivers take its claim.
        takeover: bool,
        /// An answer to a push-pull (no further answer is due).
        reply: bool,
        /// The sender's whole membership table.
        states: Vec<MemberState>,
    },
    /// Anti-entropy by digest (sent over a stream): the sender's table summed
    /// into buckets by name hash, plus the full states of the buckets in which
    /// the receiver's table differed from the one it was answering. See
    /// docs/PROTOCOL.md, "Push-pull by digest".
    Digest {
        /// An answer to a digest: the receiver sends back the states of the
        /// buckets that still differ, as a push-pull reply.
        reply: bool,
        /// One sum per bucket; the count is a power of two, at most
        /// 2^[`MAX_DIGEST_BUCKETS_LOG2`]. None in an answer says "my sums
        /// are the same as yours" (sent only in a datagram, to a member of
        /// a release that asks by datagram).
        sums: Vec<u32>,
        /// The sender's own state first, then its states in the differing buckets.
        states: Vec<MemberState>,
    },
}

/// One member's full state, as exchanged by push-pull.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberState {
    /// Name.
    pub name: Name,
    /// Incarnation.
    pub incarnation: u64,
    /// State.
    pub state: State,
    /// Address.
    pub addr: SocketAddr,
    /// Metadata.
    pub meta: Meta,
    /// Health.
    pub health: Health,
}

/// A state change about one member, piggybacked on other messages.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Update {
    /// The member is alive at `incarnation`, with this address, metadata and health.
    Alive {
        /// Name.
        name: Name,
        /// Incarnation.
        incarnation: u64,
        /// Address.
        addr: SocketAddr,
        /// Metadata.
        meta: Meta,
        /// Health.
        health: Health,
    },
    /// `from` suspects the member at `incarnation`.
    Suspect {
        /// Name.
        name: Name,
        /// Incarnation.
        incarnation: u64,
        /// Who suspects it.
        from: Name,
    },
    /// `from` declared the member dead at `incarnation`.
    Dead {
        /// Name.
        name: Name,
        /// Incarnation.
        incarnation: u64,
        /// Who declared it.
        from: Name,
    },
    /// The member left gracefully at `incarnation`.
    Left {
        /// Name.
        name: Name,
        /// Incarnation.
        incarnation: u64,
    },
}

impl Update {
    /// The member the update is about.
    pub fn name(&self) -> &Name {
        match self {
            Update::Alive { name, .. }
            | Update::Suspect { name, .. }
            | Update::Dead { name, .. }
            | Update::Left { name, .. } => name,
        }
    }

    /// The incarnation claimed.
    pub fn incarnation(&self) -> u64 {
        match self {
            Update::Alive { incarnation, .. }
            | Update::Suspect { incarnation, .. }
            | Update::Dead { incarnation, .. }
            | Update::Left { incarnation, .. } => *incarnation,
        }
    }

    /// The state claimed.
    pub fn state(&self) -> State {
        match self {
            Update::Alive { .. } => State::Alive,
            Update::Suspect { .. } => State::Suspect,
            Update::Dead { .. } => State::Dead,
            Update::Left { .. } => State::Left,
        }
    }
}

/// A decoded packet: one message and the updates piggybacked on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// The primary message.
    pub message: Message,
    /// Piggybacked updates.
    pub updates: Vec<Update>,
}
