//! Encoding: packets into bytes.
#![deny(clippy::indexing_slicing, clippy::cast_possible_truncation, clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use super::types::*;
use crate::member::{Health, HealthStatus, Meta, Name};

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

/// Encodes a message header and body in the current version (without
/// updates: [`finish`] adds their count, or leaves the packet at that).
pub fn encode_message(buf: &mut Vec<u8>, message: &Message) {
    put_message(buf, message, VERSION);
}

/// A sequence number: four bytes big-endian in version 2 (a random 32-bit
/// start makes a varint five bytes nearly always), a varint in version 1.
fn put_seq(buf: &mut Vec<u8>, seq: u32, version: u8) {
    if version == VERSION_1 {
        put_varint(buf, u64::from(seq));
    } else {
        buf.extend_from_slice(&seq.to_be_bytes());
    }
}

fn put_message(buf: &mut Vec<u8>, message: &Message, version: u8) {
    buf.push(version);
    match message {
        Message::Ping { seq, target } => {
            buf.push(MSG_PING);
            put_seq(buf, *seq, version);
            buf.extend_from_slice(&target.to_be_bytes());
        }
        Message::Ack { seq } => {
            buf.push(MSG_ACK);
            put_seq(buf, *seq, version);
        }
        Message::PingReq { seq, target, addr, nack_after_ms }
        | Message::Confirm { seq, target, addr, nack_after_ms } => {
            buf.push(if matches!(message, Message::PingReq { .. }) { MSG_PING_REQ } else { MSG_CONFIRM });
            put_seq(buf, *seq, version);
            put_name(buf, target);
            put_addr(buf, addr);
            put_varint(buf, u64::from(*nack_after_ms));
        }
        Message::Nack { seq } => {
            buf.push(MSG_NACK);
            put_seq(buf, *seq, version);
        }
        Message::Refused { seq, how } => {
            buf.push(MSG_REFUSED);
            put_seq(buf, *seq, version);
            buf.push(how.to_wire());
        }
        Message::Gossip => buf.push(MSG_GOSSIP),
        Message::PushPull { join, takeover, reply, states } => {
            buf.push(MSG_PUSH_PULL);
            let mut flags = 0;
            if *join {
                flags |= FLAG_JOIN;
            }
            if *takeover {
                flags |= FLAG_TAKEOVER;
            }
            if *reply {
                flags |= FLAG_REPLY;
            }
            buf.push(flags);
            put_states(buf, states);
        }
        Message::Digest { reply, sums, states } => {
            buf.push(MSG_DIGEST);
            let same = if sums.is_empty() { FLAG_SAME } else { 0 };
            buf.push(if *reply { FLAG_REPLY | same } else { same });
            if sums.is_empty() {
                put_states(buf, states);
                return;
            }
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

/// Ends a packet whose message [`encode_message`] wrote at the start of
/// `buf`, with `count` updates written after a placeholder byte at
/// `count_at`: sets the count, or, with none, takes the placeholder away
/// (version 2 writes no count when no update follows).
pub fn finish(buf: &mut Vec<u8>, count_at: usize, count: u8) {
    if count == 0 {
        buf.truncate(count_at);
        return;
    }
    if let Some(kind) = buf.get_mut(1) {
        *kind |= UPDATES_FOLLOW;
    }
    if let Some(c) = buf.get_mut(count_at) {
        *c = count;
    }
}

/// Encodes a whole packet. Updates beyond [`MAX_UPDATES_PER_PACKET`] are not written.
pub fn encode(packet: &Packet) -> Vec<u8> {
    encode_as(packet, VERSION)
}

/// Encodes a whole packet in version 1, as a member of the previous
/// release reads it.
pub fn encode_version_1(packet: &Packet) -> Vec<u8> {
    encode_as(packet, VERSION_1)
}

fn encode_as(packet: &Packet, version: u8) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    put_message(&mut buf, &packet.message, version);
    let n = packet.updates.len().min(MAX_UPDATES_PER_PACKET);
    let count_at = buf.len();
    buf.push(u8::try_from(n).unwrap_or(u8::MAX));
    for u in packet.updates.iter().take(n) {
        encode_update(&mut buf, u);
    }
    if version == VERSION {
        finish(&mut buf, count_at, u8::try_from(n).unwrap_or(u8::MAX));
    }
    buf
}

/// Rewrites a version-2 packet as version 1 into `out` (cleared first),
/// for a peer that reads nothing else: the message is decoded and written
/// again, the updates (the same bytes in both versions) are copied. A
/// version-1 packet, or anything that is not a packet (a stream's control
/// frame), is copied as it is; a version-2 packet whose message does not
/// decode is refused.
pub fn to_version_1(packet: &[u8], out: &mut Vec<u8>) -> Result<(), crate::error::DecodeError> {
    out.clear();
    let Some((message, updates)) = super::decode::split_version_2(packet)? else {
        out.extend_from_slice(packet);
        return Ok(());
    };
    put_message(out, &message, VERSION_1);
    if updates.is_empty() {
        out.push(0);
    } else {
        out.extend_from_slice(updates);
    }
    Ok(())
}
