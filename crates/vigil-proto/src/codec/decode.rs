//! Decoding: bytes into packets. Every read is checked against the bytes
//! that remain, and nothing is allocated beyond what they justify.
#![deny(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::types::*;
use crate::error::DecodeError;
use crate::kernel::Unreachable;
use crate::member::{Health, HealthStatus, MAX_META_LEN, MAX_NAME_LEN, MAX_REASON_LEN, Meta, Name, State};

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

    /// A sequence number: four bytes in version 2, a varint32 in version 1.
    fn seq(&mut self, version: u8) -> Result<u32, DecodeError> {
        if version == VERSION_1 {
            self.varint_u32("sequence number")
        } else {
            Ok(u32::from_be_bytes(self.array::<4>("sequence number")?))
        }
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
    fn digest_sums(&mut self) -> Result<Vec<u32>, DecodeError> {
        let log2 = self.u8("digest bucket count")?;
        if log2 > MAX_DIGEST_BUCKETS_LOG2 {
            return Err(DecodeError::Invalid { field: "digest bucket count", reason: "above 2^12" });
        }
        let count = 1usize << log2;
        if count * 4 > self.buf.len() {
            return Err(DecodeError::Truncated("digest sums"));
        }
        let mut sums = Vec::with_capacity(count);
        for _ in 0..count {
            sums.push(u32::from_be_bytes(self.array::<4>("digest sums")?));
        }
        Ok(sums)
    }

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
        [VERSION_1, kind, ..] | [VERSION, kind, ..] => Some(match *kind & !UPDATES_FOLLOW {
            MSG_PING => "ping",
            MSG_ACK => "ack",
            MSG_PING_REQ => "ping_req",
            MSG_NACK => "nack",
            MSG_GOSSIP => "gossip",
            MSG_PUSH_PULL => "push_pull",
            MSG_DIGEST => "digest",
            MSG_CONFIRM => "confirm",
            MSG_REFUSED => "refused",
            _ => return None,
        }),
        _ => None,
    }
}

/// Every kind [`message_kind`] can return.
pub const MESSAGE_KINDS: [&str; 9] =
    ["ping", "ack", "ping_req", "nack", "gossip", "push_pull", "digest", "confirm", "refused"];

/// Smallest encoding of one push-pull member state, used to bound counts.
const MIN_STATE_LEN: usize = 1 + 1 + 1 + 1 + 1 + 4 + 2 + 1 + 1 + 1;

/// Decodes one packet, of version 2 or 1. Never panics; allocates at most
/// in proportion to `bytes.len()`.
pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut r = Reader { buf: bytes };
    let (version, message, updates_follow) = r.header_and_message()?;
    let n = match (version, updates_follow) {
        (VERSION_1, _) => r.u8("update count")?,
        (_, true) => match r.u8("update count")? {
            // A second encoding of the packet without updates.
            0 => {
                return Err(DecodeError::Invalid {
                    field: "update count",
                    reason: "0 after the updates bit",
                });
            }
            n => n,
        },
        (_, false) => 0,
    };
    let mut updates = Vec::new();
    for _ in 0..n {
        updates.push(r.update()?);
    }
    if !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(r.buf.len()));
    }
    Ok(Packet { message, updates })
}

/// A version-2 packet's message and the bytes after it (the update count
/// and the updates when the updates bit is set, else nothing); `None` when
/// `bytes` is not a version-2 packet.
pub(super) fn split_version_2(bytes: &[u8]) -> Result<Option<(Message, &[u8])>, DecodeError> {
    if bytes.first() != Some(&VERSION) {
        return Ok(None);
    }
    let mut r = Reader { buf: bytes };
    let (_, message, updates_follow) = r.header_and_message()?;
    if !updates_follow && !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(r.buf.len()));
    }
    Ok(Some((message, r.buf)))
}

impl Reader<'_> {
    /// The version and message type bytes, then the message: the version,
    /// the message, and (version 2) whether the updates bit is set.
    fn header_and_message(&mut self) -> Result<(u8, Message, bool), DecodeError> {
        let version = self.u8("version").map_err(|_| DecodeError::Empty)?;
        if version != VERSION && version != VERSION_1 {
            return Err(DecodeError::UnknownVersion(version));
        }
        let byte = self.u8("message type")?;
        let (kind, updates_follow) = if version == VERSION {
            (byte & !UPDATES_FOLLOW, byte & UPDATES_FOLLOW != 0)
        } else {
            (byte, false)
        };
        let message = self.message(version, kind)?;
        Ok((version, message, updates_follow))
    }

    fn message(&mut self, version: u8, kind: u8) -> Result<Message, DecodeError> {
        let r = self;
        Ok(match kind {
            MSG_PING => {
                let seq = r.seq(version)?;
                let target = u32::from_be_bytes(r.array::<4>("target hash")?);
                Message::Ping { seq, target }
            }
            MSG_ACK => Message::Ack { seq: r.seq(version)? },
            MSG_PING_REQ | MSG_CONFIRM => {
                let seq = r.seq(version)?;
                let target = r.name("target name")?;
                let addr = r.addr()?;
                let nack_after_ms = r.varint_u32("nack delay")?;
                if kind == MSG_PING_REQ {
                    Message::PingReq { seq, target, addr, nack_after_ms }
                } else {
                    Message::Confirm { seq, target, addr, nack_after_ms }
                }
            }
            MSG_NACK => Message::Nack { seq: r.seq(version)? },
            MSG_REFUSED => {
                let seq = r.seq(version)?;
                let how = Unreachable::from_wire(r.u8("evidence kind")?)
                    .ok_or(DecodeError::Invalid { field: "evidence kind", reason: "unknown kind" })?;
                Message::Refused { seq, how }
            }
            MSG_GOSSIP => Message::Gossip,
            MSG_PUSH_PULL => {
                let flags = r.u8("push-pull flags")?;
                if flags & !(FLAG_JOIN | FLAG_REPLY | FLAG_TAKEOVER) != 0 {
                    return Err(DecodeError::Invalid {
                        field: "push-pull flags",
                        reason: "unknown bits set",
                    });
                }
                let states = r.member_states()?;
                Message::PushPull {
                    join: flags & FLAG_JOIN != 0,
                    takeover: flags & FLAG_TAKEOVER != 0,
                    reply: flags & FLAG_REPLY != 0,
                    states,
                }
            }
            MSG_DIGEST => {
                let flags = r.u8("digest flags")?;
                if flags & !(FLAG_REPLY | FLAG_SAME) != 0 {
                    return Err(DecodeError::Invalid { field: "digest flags", reason: "unknown bits set" });
                }
                // "Same as yours": no bucket count, no sums.
                let sums = if flags & FLAG_SAME != 0 { Vec::new() } else { r.digest_sums()? };
                let states = r.member_states()?;
                Message::Digest { reply: flags & FLAG_REPLY != 0, sums, states }
            }
            other => return Err(DecodeError::UnknownMessage(other)),
        })
    }
}
