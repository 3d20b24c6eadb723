//! The wire codec: one compact binary format with a version byte.
//!
//! docs/PROTOCOL.md specifies it field by field. Every read is checked against
//! the bytes that remain; nothing is allocated beyond what the input's length
//! justifies; unknown types, truncation and trailing bytes are typed errors.
#![deny(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::DecodeError;
use crate::member::{Health, HealthStatus, MAX_META_LEN, MAX_NAME_LEN, MAX_REASON_LEN, Meta, Name, State};

/// The protocol version this build speaks.
pub const VERSION: u8 = 1;

const MSG_PING: u8 = 1;
const MSG_ACK: u8 = 2;
const MSG_PING_REQ: u8 = 3;
const MSG_NACK: u8 = 4;
const MSG_GOSSIP: u8 = 5;
const MSG_PUSH_PULL: u8 = 6;
const MSG_DIGEST: u8 = 8;

const UPD_ALIVE: u8 = 1;
const UPD_SUSPECT: u8 = 2;
const UPD_DEAD: u8 = 3;
const UPD_LEFT: u8 = 4;

const FLAG_JOIN: u8 = 0x01;
const FLAG_REPLY: u8 = 0x02;

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
    /// Nothing but piggybacked updates.
    Gossip,
    /// A full-state exchange (sent over a stream).
    PushPull {
        /// Sent by a joining member.
        join: bool,
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
        /// 2^[`MAX_DIGEST_BUCKETS_LOG2`].
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

// ---------------------------------------------------------------- encoding

#[allow(clippy::cast_possible_truncation)] // masked to 7 bits first
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_name(buf: &mut Vec<u8>, name: &Name) {
    let bytes = name.as_str().as_bytes();
    // Name guarantees 1..=128 bytes.
    buf.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    buf.extend_from_slice(bytes);
}

fn put_addr(buf: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            buf.push(4);
            buf.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.push(6);
            buf.extend_from_slice(&ip.octets());
        }
    }
    buf.extend_from_slice(&addr.port().to_be_bytes());
}

fn put_health(buf: &mut Vec<u8>, health: &Health) {
    buf.push(match health.status() {
        HealthStatus::Ok => 0,
        HealthStatus::Degraded => 1,
        HealthStatus::Failing => 2,
    });
    let reason = health.reason().as_bytes();
    buf.push(u8::try_from(reason.len()).unwrap_or(u8::MAX));
    buf.extend_from_slice(reason);
}

fn put_meta(buf: &mut Vec<u8>, meta: &Meta) {
    put_varint(buf, meta.len() as u64);
    buf.extend_from_slice(meta.as_bytes());
}

/// Appends one update's encoding to `buf`.
pub fn encode_update(buf: &mut Vec<u8>, update: &Update) {
    match update {
        Update::Alive { name, incarnation, addr, meta, health } => {
            buf.push(UPD_ALIVE);
            put_name(buf, name);
            put_varint(buf, *incarnation);
            put_addr(buf, addr);
            put_health(buf, health);
            put_meta(buf, meta);
        }
        Update::Suspect { name, incarnation, from } | Update::Dead { name, incarnation, from } => {
            buf.push(if matches!(update, Update::Suspect { .. }) { UPD_SUSPECT } else { UPD_DEAD });
            put_name(buf, name);
            put_varint(buf, *incarnation);
            put_name(buf, from);
        }
        Update::Left { name, incarnation } => {
            buf.push(UPD_LEFT);
            put_name(buf, name);
            put_varint(buf, *incarnation);
        }
    }
}

/// Encodes a message header and body (without the update count and updates).
pub fn encode_message(buf: &mut Vec<u8>, message: &Message) {
    buf.push(VERSION);
    match message {
        Message::Ping { seq, target } => {
            buf.push(MSG_PING);
            put_varint(buf, u64::from(*seq));
            buf.extend_from_slice(&target.to_be_bytes());
        }
        Message::Ack { seq } => {
            buf.push(MSG_ACK);
            put_varint(buf, u64::from(*seq));
        }
        Message::PingReq { seq, target, addr, nack_after_ms } => {
            buf.push(MSG_PING_REQ);
            put_varint(buf, u64::from(*seq));
            put_name(buf, target);
            put_addr(buf, addr);
            put_varint(buf, u64::from(*nack_after_ms));
        }
        Message::Nack { seq } => {
            buf.push(MSG_NACK);
            put_varint(buf, u64::from(*seq));
        }
        Message::Gossip => buf.push(MSG_GOSSIP),
        Message::PushPull { join, reply, states } => {
            buf.push(MSG_PUSH_PULL);
            let mut flags = 0;
            if *join {
                flags |= FLAG_JOIN;
            }
            if *reply {
                flags |= FLAG_REPLY;
            }
            buf.push(flags);
            put_states(buf, states);
        }
        Message::Digest { reply, sums, states } => {
            buf.push(MSG_DIGEST);
            buf.push(if *reply { FLAG_REPLY } else { 0 });
            // The encoder writes the largest power of two the sums fill, at
            // most 2^MAX_DIGEST_BUCKETS_LOG2, and drops any sums beyond it.
            let mut log2 = 0u8;
            while log2 < MAX_DIGEST_BUCKETS_LOG2 && (2usize << log2) <= sums.len() {
                log2 += 1;
            }
            buf.push(log2);
            let written = 1usize << log2;
            for i in 0..written {
                buf.extend_from_slice(&sums.get(i).copied().unwrap_or(0).to_be_bytes());
            }
            put_states(buf, states);
        }
    }
}

fn put_states(buf: &mut Vec<u8>, states: &[MemberState]) {
    put_varint(buf, states.len() as u64);
    for s in states {
        put_name(buf, &s.name);
        put_varint(buf, s.incarnation);
        buf.push(s.state.to_wire());
        put_addr(buf, &s.addr);
        put_health(buf, &s.health);
        put_meta(buf, &s.meta);
    }
}

/// Encodes a whole packet. Updates beyond [`MAX_UPDATES_PER_PACKET`] are not written.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    encode_message(&mut buf, &packet.message);
    let n = packet.updates.len().min(MAX_UPDATES_PER_PACKET);
    buf.push(u8::try_from(n).unwrap_or(u8::MAX));
    for u in packet.updates.iter().take(n) {
        encode_update(&mut buf, u);
    }
    buf
}

// ---------------------------------------------------------------- decoding

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let (&b, tail) = self.buf.split_first().ok_or(DecodeError::Truncated(what))?;
        self.buf = tail;
        Ok(b)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self.u8(what)?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            v |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    fn varint_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        u32::try_from(self.varint(what)?)
            .map_err(|_| DecodeError::Invalid { field: what, reason: "exceeds 32 bits" })
    }

    fn name(&mut self, what: &'static str) -> Result<Name, DecodeError> {
        let len = usize::from(self.u8(what)?);
        if len == 0 || len > MAX_NAME_LEN {
            return Err(DecodeError::Invalid { field: what, reason: "name length out of 1..=128" });
        }
        let bytes = self.take(len, what)?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::Invalid { field: what, reason: "not UTF-8" })?;
        Name::new(s).map_err(|_| DecodeError::Invalid { field: what, reason: "bad name" })
    }

    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8("address family")? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>("IPv4 address")?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>("IPv6 address")?)),
            _ => return Err(DecodeError::Invalid { field: "address family", reason: "not 4 or 6" }),
        };
        let port = u16::from_be_bytes(self.array::<2>("port")?);
        Ok(SocketAddr::new(ip, port))
    }

    fn health(&mut self) -> Result<Health, DecodeError> {
        let status = match self.u8("health status")? {
            0 => HealthStatus::Ok,
            1 => HealthStatus::Degraded,
            2 => HealthStatus::Failing,
            _ => return Err(DecodeError::Invalid { field: "health status", reason: "not 0, 1 or 2" }),
        };
        let len = usize::from(self.u8("health reason")?);
        if len > MAX_REASON_LEN {
            return Err(DecodeError::Invalid { field: "health reason", reason: "longer than 128 bytes" });
        }
        let bytes = self.take(len, "health reason")?;
        let reason = std::str::from_utf8(bytes)
            .map_err(|_| DecodeError::Invalid { field: "health reason", reason: "not UTF-8" })?;
        Health::new(status, reason)
            .map_err(|_| DecodeError::Invalid { field: "health reason", reason: "too long" })
    }

    fn meta(&mut self) -> Result<Meta, DecodeError> {
        let len = self.varint("metadata length")?;
        if len > MAX_META_LEN as u64 {
            return Err(DecodeError::Invalid { field: "metadata", reason: "longer than 512 bytes" });
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::VarintOverflow)?;
        let bytes = self.take(len, "metadata")?;
        Meta::new(bytes).map_err(|_| DecodeError::Invalid { field: "metadata", reason: "too long" })
    }

    fn update(&mut self) -> Result<Update, DecodeError> {
        let tag = self.u8("update type")?;
        match tag {
            UPD_ALIVE => {
                let name = self.name("member name")?;
                let incarnation = self.varint("incarnation")?;
                let addr = self.addr()?;
                let health = self.health()?;
                let meta = self.meta()?;
                Ok(Update::Alive { name, incarnation, addr, meta, health })
            }
            UPD_SUSPECT | UPD_DEAD => {
                let name = self.name("member name")?;
                let incarnation = self.varint("incarnation")?;
                let from = self.name("sender name")?;
                Ok(if tag == UPD_SUSPECT {
                    Update::Suspect { name, incarnation, from }
                } else {
                    Update::Dead { name, incarnation, from }
                })
            }
            UPD_LEFT => {
                let name = self.name("member name")?;
                let incarnation = self.varint("incarnation")?;
                Ok(Update::Left { name, incarnation })
            }
            other => Err(DecodeError::UnknownUpdate(other)),
        }
    }

    /// A count, then that many member states; the count is checked against the
    /// bytes left before anything is allocated.
    fn member_states(&mut self) -> Result<Vec<MemberState>, DecodeError> {
        let count = self.varint("member count")?;
        if count > (self.buf.len() / MIN_STATE_LEN) as u64 {
            return Err(DecodeError::Truncated("member states"));
        }
        let mut states = Vec::new();
        for _ in 0..count {
            states.push(self.member_state()?);
        }
        Ok(states)
    }

    fn member_state(&mut self) -> Result<MemberState, DecodeError> {
        let name = self.name("member name")?;
        let incarnation = self.varint("incarnation")?;
        let state = State::from_wire(self.u8("member state")?)
            .ok_or(DecodeError::Invalid { field: "member state", reason: "not 0..=3" })?;
        let addr = self.addr()?;
        let health = self.health()?;
        let meta = self.meta()?;
        Ok(MemberState { name, incarnation, state, addr, meta, health })
    }
}

/// The kind of message a packet carries, from its first two bytes, without
/// decoding it: for counting traffic by kind. `None` for an unknown version or type.
pub fn message_kind(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [VERSION, kind, ..] => Some(match *kind {
            MSG_PING => "ping",
            MSG_ACK => "ack",
            MSG_PING_REQ => "ping_req",
            MSG_NACK => "nack",
            MSG_GOSSIP => "gossip",
            MSG_PUSH_PULL => "push_pull",
            MSG_DIGEST => "digest",
            _ => return None,
        }),
        _ => None,
    }
}

/// Every kind [`message_kind`] can return.
pub const MESSAGE_KINDS: [&str; 7] = ["ping", "ack", "ping_req", "nack", "gossip", "push_pull", "digest"];

/// Smallest encoding of one push-pull member state, used to bound counts.
const MIN_STATE_LEN: usize = 1 + 1 + 1 + 1 + 1 + 4 + 2 + 1 + 1 + 1;

/// Decodes one packet. Never panics; allocates at most in proportion to `bytes.len()`.
pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.u8("version").map_err(|_| DecodeError::Empty)?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let message = match r.u8("message type")? {
        MSG_PING => {
            let seq = r.varint_u32("sequence number")?;
            let target = u32::from_be_bytes(r.array::<4>("target hash")?);
            Message::Ping { seq, target }
        }
        MSG_ACK => Message::Ack { seq: r.varint_u32("sequence number")? },
        MSG_PING_REQ => {
            let seq = r.varint_u32("sequence number")?;
            let target = r.name("target name")?;
            let addr = r.addr()?;
            let nack_after_ms = r.varint_u32("nack delay")?;
            Message::PingReq { seq, target, addr, nack_after_ms }
        }
        MSG_NACK => Message::Nack { seq: r.varint_u32("sequence number")? },
        MSG_GOSSIP => Message::Gossip,
        MSG_PUSH_PULL => {
            let flags = r.u8("push-pull flags")?;
            if flags & !(FLAG_JOIN | FLAG_REPLY) != 0 {
                return Err(DecodeError::Invalid { field: "push-pull flags", reason: "unknown bits set" });
            }
            let states = r.member_states()?;
            Message::PushPull { join: flags & FLAG_JOIN != 0, reply: flags & FLAG_REPLY != 0, states }
        }
        MSG_DIGEST => {
            let flags = r.u8("digest flags")?;
            if flags & !FLAG_REPLY != 0 {
                return Err(DecodeError::Invalid { field: "digest flags", reason: "unknown bits set" });
            }
            let log2 = r.u8("digest bucket count")?;
            if log2 > MAX_DIGEST_BUCKETS_LOG2 {
                return Err(DecodeError::Invalid { field: "digest bucket count", reason: "above 2^12" });
            }
            let count = 1usize << log2;
            if count * 4 > r.buf.len() {
                return Err(DecodeError::Truncated("digest sums"));
            }
            let mut sums = Vec::with_capacity(count);
            for _ in 0..count {
                sums.push(u32::from_be_bytes(r.array::<4>("digest sums")?));
            }
            let states = r.member_states()?;
            Message::Digest { reply: flags & FLAG_REPLY != 0, sums, states }
        }
        other => return Err(DecodeError::UnknownMessage(other)),
    };
    let n = r.u8("update count")?;
    let mut updates = Vec::new();
    for _ in 0..n {
        updates.push(r.update()?);
    }
    if !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(r.buf.len()));
    }
    Ok(Packet { message, updates })
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
