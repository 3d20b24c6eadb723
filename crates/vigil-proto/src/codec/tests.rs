//! Tests for the wire codec: size bounds, pinned bytes, typed rejections, and
//! property tests (round trip, no panics on arbitrary or mutated input).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::decode::*;
use super::encode::*;
use super::types::*;

use crate::error::DecodeError;
use crate::member::{Health, HealthStatus, MAX_META_LEN, Meta, Name, State};

// ---------------------------------------------------------------- helpers

fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// A 16-byte name, the size the size bounds are stated for.
fn name16(s: &str) -> Name {
    assert_eq!(s.len(), 16);
    name(s)
}

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port)
}

fn packet(message: Message, updates: Vec<Update>) -> Packet {
    Packet { message, updates }
}

fn update_bytes(update: &Update) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_update(&mut buf, update);
    buf
}

fn alive(n: &str, incarnation: u64) -> Update {
    Update::Alive {
        name: name(n),
        incarnation,
        addr: v4([10, 0, 0, 1], 7946),
        meta: Meta::new(b"role=db".to_vec()).unwrap(),
        health: Health::new(HealthStatus::Degraded, "disk slow").unwrap(),
    }
}

/// One packet that exercises every field kind: a push-pull with a state, and
/// one update of each type.
fn rich_packet() -> Packet {
    let state = MemberState {
        name: name("node-a"),
        incarnation: 1 << 40,
        state: State::Suspect,
        addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 7946),
        meta: Meta::new(vec![0xAB; 200]).unwrap(),
        health: Health::new(HealthStatus::Failing, "db down").unwrap(),
    };
    packet(
        Message::PushPull { join: true, takeover: false, reply: false, states: vec![state] },
        vec![
            alive("node-b", 300),
            Update::Suspect { name: name("node-c"), incarnation: 7, from: name("node-b") },
            Update::Dead { name: name("node-d"), incarnation: u64::MAX, from: name("node-a") },
            Update::Left { name: name("node-e"), incarnation: 0 },
        ],
    )
}

fn invalid_field(result: Result<Packet, DecodeError>) -> &'static str {
    match result {
        Err(DecodeError::Invalid { field, .. }) => field,
        other => panic!("expected DecodeError::Invalid, got {other:?}"),
    }
}

/// A gossip packet carrying exactly one raw update body.
fn gossip_with_raw_update(update: &[u8]) -> Vec<u8> {
    let mut bytes = vec![VERSION_1, 5, 1];
    bytes.extend_from_slice(update);
    bytes
}

// ---------------------------------------------------------------- sizes

#[test]
fn ping_and_ack_without_updates_fit_in_24_bytes() {
    let ping = encode(&packet(Message::Ping { seq: u32::MAX, target: u32::MAX }, vec![]));
    let ack = encode(&packet(Message::Ack { seq: u32::MAX }, vec![]));
    let nack = encode(&packet(Message::Nack { seq: u32::MAX }, vec![]));
    println!("ping (seq u32::MAX, no updates): {} bytes", ping.len());
    println!("ack  (seq u32::MAX, no updates): {} bytes", ack.len());
    println!("nack (seq u32::MAX, no updates): {} bytes", nack.len());
    assert!(ping.len() <= 24, "ping is {} bytes", ping.len());
    assert!(ack.len() <= 24, "ack is {} bytes", ack.len());
    assert!(nack.len() <= 24, "nack is {} bytes", nack.len());
}

#[test]
fn updates_about_a_16_byte_name_fit_in_48_bytes_at_the_largest_incarnation() {
    let member = name16("member-000000001");
    let from = name16("member-000000002");
    let updates = [
        (
            "alive (IPv4, empty meta, ok health)",
            Update::Alive {
                name: member.clone(),
                incarnation: u64::MAX,
                addr: v4([255, 255, 255, 255], u16::MAX),
                meta: Meta::default(),
                health: Health::new(HealthStatus::Ok, "").unwrap(),
            },
        ),
        ("suspect", Update::Suspect { name: member.clone(), incarnation: u64::MAX, from: from.clone() }),
        ("dead", Update::Dead { name: member.clone(), incarnation: u64::MAX, from }),
        ("left", Update::Left { name: member, incarnation: u64::MAX }),
    ];
    for (label, update) in &updates {
        let len = update_bytes(update).len();
        let in_gossip = encode(&packet(Message::Gossip, vec![update.clone()])).len();
        println!("{label} update: {len} bytes (a gossip packet carrying only it: {in_gossip} bytes)");
        assert!(len <= 48, "{label} update is {len} bytes");
    }
}

#[test]
fn ping_req_size_is_printed() {
    for addr in [v4([255; 4], u16::MAX), SocketAddr::new(IpAddr::V6(Ipv6Addr::from([0xff; 16])), u16::MAX)] {
        let p = packet(
            Message::PingReq {
                seq: u32::MAX,
                target: name16("member-000000001"),
                addr,
                nack_after_ms: u32::MAX,
            },
            vec![],
        );
        let len = encode(&p).len();
        println!("ping-req (16-byte name, {addr}, no updates): {len} bytes");
        assert!(len <= 64);
    }
}

// ---------------------------------------------------------------- pinned bytes

#[test]
fn a_small_ping_has_exactly_these_bytes() {
    let p = packet(Message::Ping { seq: 300, target: 0xDEAD_BEEF }, vec![]);
    let expected = [
        0x02, // version
        0x01, // message type: ping (top bit clear: no updates follow)
        0x00, 0x00, 0x01, 0x2C, // seq 300, big-endian
        0xDE, 0xAD, 0xBE, 0xEF, // target hash, big-endian
    ];
    assert_eq!(encode(&p), expected);
    assert_eq!(decode(&expected), Ok(p.clone()));
    // The same ping in version 1, as the previous release wrote and reads it.
    let v1 = [
        0x01, // version
        0x01, // message type: ping
        0xAC, 0x02, // seq 300 as LEB128 varint
        0xDE, 0xAD, 0xBE, 0xEF, // target hash, big-endian
        0x00, // update count
    ];
    assert_eq!(encode_version_1(&p), v1);
    assert_eq!(decode(&v1), Ok(p));
}

#[test]
fn an_ack_of_a_random_sequence_number_is_six_bytes_and_one_with_updates_sets_the_top_bit() {
    let ack = packet(Message::Ack { seq: 0x9E37_79B9 }, vec![]);
    assert_eq!(encode(&ack), [0x02, 0x02, 0x9E, 0x37, 0x79, 0xB9]);
    // Version 1 spent a varint (5 bytes for most random 32-bit values) and a count.
    assert_eq!(encode_version_1(&ack).len(), 8);
    let left = Update::Left { name: name("x"), incarnation: 1 };
    let with = packet(Message::Ack { seq: 7 }, vec![left.clone()]);
    let mut expected = vec![0x02, 0x82, 0, 0, 0, 7, 1];
    expected.extend_from_slice(&update_bytes(&left));
    assert_eq!(encode(&with), expected);
    assert_eq!(decode(&expected), Ok(with));
    // The updates bit with a count of 0 is a second encoding of "no updates": refused.
    assert_eq!(invalid_field(decode(&[0x02, 0x82, 0, 0, 0, 7, 0])), "update count");
    // Without the bit, anything after the message is trailing.
    assert_eq!(decode(&[0x02, 0x02, 0, 0, 0, 7, 0]), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn a_suspect_update_has_exactly_these_bytes() {
    let u = Update::Suspect { name: name("db-1"), incarnation: 300, from: name("web-2") };
    let expected = [
        0x02, // update type: suspect
        0x04, b'd', b'b', b'-', b'1', // name
        0xAC, 0x02, // incarnation 300
        0x05, b'w', b'e', b'b', b'-', b'2', // from
    ];
    assert_eq!(update_bytes(&u), expected);
    assert_eq!(decode(&gossip_with_raw_update(&expected)), Ok(packet(Message::Gossip, vec![u])));
}

#[test]
fn an_alive_update_has_exactly_these_bytes() {
    let u = Update::Alive {
        name: name("n1"),
        incarnation: 1,
        addr: v4([10, 0, 0, 1], 7946),
        meta: Meta::new(b"db".to_vec()).unwrap(),
        health: Health::new(HealthStatus::Degraded, "io").unwrap(),
    };
    let expected = [
        0x01, // update type: alive
        0x02, b'n', b'1', // name
        0x01, // incarnation
        0x04, 10, 0, 0, 1, 0x1F, 0x0A, // IPv4 10.0.0.1, port 7946 big-endian
        0x01, 0x02, b'i', b'o', // health: degraded, reason "io"
        0x02, b'd', b'b', // meta: varint length 2, bytes
    ];
    assert_eq!(update_bytes(&u), expected);
}

#[test]
fn a_push_pull_has_exactly_these_bytes() {
    let state = MemberState {
        name: name("a"),
        incarnation: 2,
        state: State::Dead,
        addr: SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1),
        meta: Meta::default(),
        health: Health::ok(),
    };
    let p =
        packet(Message::PushPull { join: true, takeover: false, reply: true, states: vec![state] }, vec![]);
    let mut expected = vec![0x02, 0x06, 0x03, 0x01]; // version, push-pull, flags join|reply, count 1
    expected.extend_from_slice(&[0x01, b'a', 0x02, 0x02]); // name, incarnation, state dead
    expected.push(0x06);
    expected.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    expected.extend_from_slice(&[0x00, 0x01]); // port 1
    expected.extend_from_slice(&[0x00, 0x00, 0x00]); // health ok, no reason; empty meta
    assert_eq!(encode(&p), expected);
    assert_eq!(decode(&expected), Ok(p));
}

#[test]
fn ipv6_flow_info_and_scope_id_are_not_carried() {
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let sent = SocketAddr::V6(std::net::SocketAddrV6::new(link_local, 7946, 5, 3));
    let p = packet(
        Message::Gossip,
        vec![Update::Alive {
            name: name("a"),
            incarnation: 1,
            addr: sent,
            meta: Meta::default(),
            health: Health::ok(),
        }],
    );
    let decoded = decode(&encode(&p)).unwrap();
    let Some(Update::Alive { addr, .. }) = decoded.updates.first() else { panic!("{decoded:?}") };
    assert_eq!(*addr, SocketAddr::new(IpAddr::V6(link_local), 7946));
}

#[test]
fn member_state_wire_values_are_pinned() {
    for (state, byte) in [(State::Alive, 0), (State::Suspect, 1), (State::Dead, 2), (State::Left, 3)] {
        assert_eq!(state.to_wire(), byte);
        assert_eq!(State::from_wire(byte), Some(state));
    }
    assert_eq!(State::from_wire(4), None);
}

#[test]
fn ping_target_hash_is_fnv1a_32() {
    // Published FNV-1a 32-bit test vectors.
    assert_eq!(name("a").hash32(), 0xE40C_292C);
    assert_eq!(name("foobar").hash32(), 0xBF9C_F968);
}

// ---------------------------------------------------------------- typed errors

#[test]
fn empty_input_is_empty() {
    assert_eq!(decode(&[]), Err(DecodeError::Empty));
}

#[test]
fn unknown_version_is_refused() {
    let mut bytes = encode(&packet(Message::Ack { seq: 1 }, vec![]));
    bytes[0] = 3;
    assert_eq!(decode(&bytes), Err(DecodeError::UnknownVersion(3)));
    assert_eq!(decode(&[0]), Err(DecodeError::UnknownVersion(0)));
}

#[test]
fn unknown_message_type_is_refused() {
    assert_eq!(decode(&[VERSION_1, 0, 0]), Err(DecodeError::UnknownMessage(0)));
    assert_eq!(decode(&[VERSION_1, 7, 0]), Err(DecodeError::UnknownMessage(7)));
    assert_eq!(decode(&[VERSION_1, 0xFF]), Err(DecodeError::UnknownMessage(0xFF)));
}

#[test]
fn unknown_update_type_is_refused() {
    assert_eq!(decode(&gossip_with_raw_update(&[0])), Err(DecodeError::UnknownUpdate(0)));
    assert_eq!(decode(&gossip_with_raw_update(&[5, 1, b'a', 0])), Err(DecodeError::UnknownUpdate(5)));
}

#[test]
fn every_strict_prefix_of_a_packet_is_refused() {
    let bytes = encode(&rich_packet());
    assert_eq!(decode(&bytes), Ok(rich_packet()));
    assert_eq!(decode(&bytes[..0]), Err(DecodeError::Empty));
    for n in 1..bytes.len() {
        match decode(&bytes[..n]) {
            Err(DecodeError::Truncated(_)) => {}
            other => panic!("prefix of {n}/{} bytes decoded to {other:?}", bytes.len()),
        }
    }
}

#[test]
fn one_extra_byte_is_trailing() {
    let mut bytes = encode(&rich_packet());
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    // An update count lower than the updates present leaves them as trailing bytes.
    let mut two =
        encode_version_1(&packet(Message::Gossip, vec![Update::Left { name: name("x"), incarnation: 1 }]));
    two[2] = 0;
    assert_eq!(decode(&two), Err(DecodeError::TrailingBytes(4)));
}

#[test]
fn name_length_zero_or_over_128_is_invalid() {
    // Left update: type, name length, name bytes, incarnation.
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&[4, 0, 1]))), "member name");
    let mut long = vec![4, 129];
    long.extend_from_slice(&[b'x'; 129]);
    long.push(1);
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&long))), "member name");
    // Refused on the length byte alone, before reading the bytes.
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&[4, 255]))), "member name");
    // 128 bytes is fine.
    let mut max = vec![4, 128];
    max.extend_from_slice(&[b'x'; 128]);
    max.push(1);
    assert!(decode(&gossip_with_raw_update(&max)).is_ok());
}

#[test]
fn non_utf8_name_is_invalid() {
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&[4, 2, 0xC3, 0x28, 1]))), "member name");
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&[4, 1, 0xFF, 1]))), "member name");
    // The suspicion's sender is checked too.
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&[2, 1, b'a', 1, 1, 0xFF]))), "sender name");
    // And the ping-req target.
    assert_eq!(invalid_field(decode(&[VERSION_1, 3, 1, 1, 0x80])), "target name");
}

/// An alive update for "a" at incarnation 1, 127.0.0.1:1, health ok, up to the meta field.
fn alive_head() -> Vec<u8> {
    vec![1, 1, b'a', 1, 4, 127, 0, 0, 1, 0, 1, 0, 0]
}

#[test]
fn meta_longer_than_512_bytes_is_invalid() {
    let mut ok = alive_head();
    put_varint(&mut ok, 512);
    ok.extend_from_slice(&[7; 512]);
    assert!(decode(&gossip_with_raw_update(&ok)).is_ok());

    let mut over = alive_head();
    put_varint(&mut over, 513);
    over.extend_from_slice(&[7; 513]);
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&over))), "metadata");

    // A huge declared length is refused without reading further.
    let mut huge = alive_head();
    put_varint(&mut huge, u64::MAX);
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&huge))), "metadata");
}

#[test]
fn health_reason_longer_than_128_bytes_or_bad_status_is_invalid() {
    let mut long = vec![1, 1, b'a', 1, 4, 127, 0, 0, 1, 0, 1, 1, 129];
    long.extend_from_slice(&[b'r'; 129]);
    long.push(0);
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&long))), "health reason");

    let bad_utf8 = [1, 1, b'a', 1, 4, 127, 0, 0, 1, 0, 1, 1, 1, 0xFF, 0];
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&bad_utf8))), "health reason");

    let bad_status = [1, 1, b'a', 1, 4, 127, 0, 0, 1, 0, 1, 3, 0, 0];
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&bad_status))), "health status");
}

#[test]
fn address_family_other_than_4_or_6_is_invalid() {
    let bytes = [1, 1, b'a', 1, 5, 127, 0, 0, 1, 0, 1, 0, 0, 0];
    assert_eq!(invalid_field(decode(&gossip_with_raw_update(&bytes))), "address family");
}

#[test]
fn varint_of_11_bytes_overflows() {
    let mut bytes = vec![VERSION_1, 2];
    bytes.extend_from_slice(&[0x80; 10]);
    bytes.extend_from_slice(&[0x00, 0x00]); // 11th varint byte, update count
    assert_eq!(decode(&bytes), Err(DecodeError::VarintOverflow));

    // A 10-byte varint whose last byte carries more than bit 63 also overflows.
    let mut upd = vec![4, 1, b'a'];
    upd.extend_from_slice(&[0xFF; 9]);
    upd.push(0x02);
    assert_eq!(decode(&gossip_with_raw_update(&upd)), Err(DecodeError::VarintOverflow));

    // u64::MAX itself is ten bytes and fine.
    let mut max = vec![4, 1, b'a'];
    put_varint(&mut max, u64::MAX);
    assert_eq!(max.len(), 3 + 10);
    assert_eq!(
        decode(&gossip_with_raw_update(&max)),
        Ok(packet(Message::Gossip, vec![Update::Left { name: name("a"), incarnation: u64::MAX }]))
    );
}

#[test]
fn sequence_number_over_32_bits_is_invalid() {
    let mut bytes = vec![VERSION_1, 2];
    put_varint(&mut bytes, u64::from(u32::MAX) + 1);
    bytes.push(0);
    assert_eq!(invalid_field(decode(&bytes)), "sequence number");
}

#[test]
fn push_pull_with_a_huge_member_count_is_refused_before_allocating() {
    let mut bytes = vec![VERSION_1, 6, 0];
    put_varint(&mut bytes, u64::MAX / 2);
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(DecodeError::Truncated("member states")));

    // A count larger than the bytes left could hold is refused before any state is read.
    let one = MemberState {
        name: name("a"),
        incarnation: 0,
        state: State::Alive,
        addr: v4([127, 0, 0, 1], 1),
        meta: Meta::default(),
        health: Health::ok(),
    };
    let mut two = encode(&packet(
        Message::PushPull { join: false, takeover: false, reply: false, states: vec![one] },
        vec![],
    ));
    assert_eq!(two.len(), 4 + 14); // the smallest state is 14 bytes
    assert_eq!(two[3], 1); // member count
    two[3] = 2;
    assert_eq!(decode(&two), Err(DecodeError::Truncated("member states")));
}

#[test]
fn push_pull_flags_and_member_state_are_checked() {
    assert_eq!(invalid_field(decode(&[VERSION_1, 6, 0x08, 0, 0])), "push-pull flags");
    let mut bytes = encode(&rich_packet());
    // version, type, flags, count, name length, name (6 bytes), incarnation (6 bytes), state
    let state_at = 4 + 1 + 6 + 6;
    assert_eq!(bytes[state_at], State::Suspect.to_wire());
    bytes[state_at] = 4;
    assert_eq!(invalid_field(decode(&bytes)), "member state");
}

#[test]
fn a_digest_has_exactly_these_bytes() {
    let p =
        packet(Message::Digest { reply: true, sums: vec![0x0102_0304, 0xA0B0_C0D0], states: vec![] }, vec![]);
    let bytes = encode(&p);
    assert_eq!(bytes, [VERSION, 8, 0x02, 1, 1, 2, 3, 4, 0xA0, 0xB0, 0xC0, 0xD0, 0]);
    assert_eq!(decode(&bytes), Ok(p));
    assert_eq!(message_kind(&bytes), Some("digest"));
}

#[test]
fn a_digest_that_says_same_as_yours_carries_no_sums() {
    let p = packet(Message::Digest { reply: true, sums: vec![], states: vec![] }, vec![]);
    let bytes = encode(&p);
    assert_eq!(bytes, [VERSION, 8, 0x02 | 0x04, 0]);
    assert_eq!(decode(&bytes), Ok(p));
    // The flag with a bucket count after it is not "same": the count is
    // read as the state count, and what follows does not decode.
    assert!(decode(&[VERSION_1, 8, 0x06, 1, 1, 2, 3, 4, 0, 0]).is_err());
}

#[test]
fn digest_bucket_count_and_flags_are_checked_before_allocating() {
    // 2^13 buckets: above the limit.
    assert_eq!(invalid_field(decode(&[VERSION_1, 8, 0, 13, 0, 0])), "digest bucket count");
    // 2^12 buckets announced, 8 bytes present: refused before reading or allocating.
    assert_eq!(
        decode(&[VERSION_1, 8, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(DecodeError::Truncated("digest sums"))
    );
    assert_eq!(invalid_field(decode(&[VERSION_1, 8, 0x01, 0, 0, 0, 0, 0, 0, 0])), "digest flags");
    assert_eq!(invalid_field(decode(&[VERSION_1, 8, 0x08, 0, 0, 0, 0, 0, 0, 0])), "digest flags");
    // The encoder writes a power of two: 3 sums become 2.
    let bytes =
        encode(&packet(Message::Digest { reply: false, sums: vec![1, 2, 3], states: vec![] }, vec![]));
    assert_eq!(bytes[3], 1);
    assert_eq!(bytes.len(), 4 + 8 + 1); // and the member count
}

#[test]
fn rejection_reasons_have_stable_labels() {
    let cases: [(&[u8], &str); 7] = [
        (&[], "empty"),
        (&[9], "version"),
        (&[VERSION_1, 99], "unknown_type"),
        (&[VERSION_1, 5, 1, 9], "unknown_type"),
        (&[VERSION_1, 2], "truncated"),
        (&[VERSION_1, 5, 0, 0], "trailing"),
        (&[VERSION_1, 5, 1, 4, 0], "malformed"),
    ];
    for (bytes, label) in cases {
        assert_eq!(decode(bytes).unwrap_err().reason(), label, "{bytes:?}");
    }
    assert_eq!(DecodeError::VarintOverflow.reason(), "malformed");
    assert_eq!(DecodeError::TooLarge { len: 2000, max: 1400 }.reason(), "oversized");
}

#[test]
fn encode_writes_at_most_255_updates() {
    let updates: Vec<Update> =
        (0..300).map(|i| Update::Left { name: name(&format!("m{i}")), incarnation: i }).collect();
    let bytes = encode(&packet(Message::Gossip, updates.clone()));
    assert_eq!(bytes[2], 255);
    let decoded = decode(&bytes).unwrap();
    assert_eq!(decoded.updates.len(), MAX_UPDATES_PER_PACKET);
    assert_eq!(decoded.updates[..], updates[..MAX_UPDATES_PER_PACKET]);
}

// ---------------------------------------------------------------- properties

fn arb_name() -> impl Strategy<Value = Name> {
    prop_oneof![
        4 => "[a-z0-9.-]{1,40}",
        1 => "[a-z]{128}",
        // At most 32 chars of at most 4 bytes each: never over 128 bytes.
        2 => "\\PC{1,32}",
    ]
    .prop_map(|s| Name::new(&s).unwrap())
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
    ]
}

fn arb_meta() -> impl Strategy<Value = Meta> {
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..=64),
        1 => proptest::collection::vec(any::<u8>(), 0..=MAX_META_LEN),
    ]
    .prop_map(|b| Meta::new(b).unwrap())
}

fn arb_health() -> impl Strategy<Value = Health> {
    let status =
        prop_oneof![Just(HealthStatus::Ok), Just(HealthStatus::Degraded), Just(HealthStatus::Failing)];
    let reason = prop_oneof![Just(String::new()), "[a-z ]{0,128}", "\\PC{0,32}"];
    (status, reason).prop_map(|(s, r)| Health::new(s, &r).unwrap())
}

fn arb_state() -> impl Strategy<Value = State> {
    prop_oneof![Just(State::Alive), Just(State::Suspect), Just(State::Dead), Just(State::Left)]
}

fn arb_incarnation() -> impl Strategy<Value = u64> {
    prop_oneof![any::<u64>(), 0..300u64, Just(u64::MAX)]
}

fn arb_update() -> impl Strategy<Value = Update> {
    prop_oneof![
        (arb_name(), arb_incarnation(), arb_addr(), arb_meta(), arb_health()).prop_map(
            |(name, incarnation, addr, meta, health)| Update::Alive { name, incarnation, addr, meta, health }
        ),
        (arb_name(), arb_incarnation(), arb_name()).prop_map(|(name, incarnation, from)| Update::Suspect {
            name,
            incarnation,
            from
        }),
        (arb_name(), arb_incarnation(), arb_name()).prop_map(|(name, incarnation, from)| Update::Dead {
            name,
            incarnation,
            from
        }),
        (arb_name(), arb_incarnation()).prop_map(|(name, incarnation)| Update::Left { name, incarnation }),
    ]
}

fn arb_member_state() -> impl Strategy<Value = MemberState> {
    (arb_name(), arb_incarnation(), arb_state(), arb_addr(), arb_meta(), arb_health()).prop_map(
        |(name, incarnation, state, addr, meta, health)| MemberState {
            name,
            incarnation,
            state,
            addr,
            meta,
            health,
        },
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(seq, target)| Message::Ping { seq, target }),
        any::<u32>().prop_map(|seq| Message::Ack { seq }),
        (any::<u32>(), arb_name(), arb_addr(), any::<u32>()).prop_map(
            |(seq, target, addr, nack_after_ms)| { Message::PingReq { seq, target, addr, nack_after_ms } }
        ),
        any::<u32>().prop_map(|seq| Message::Nack { seq }),
        (any::<u32>(), arb_name(), arb_addr(), any::<u32>()).prop_map(
            |(seq, target, addr, nack_after_ms)| { Message::Confirm { seq, target, addr, nack_after_ms } }
        ),
        (
            any::<u32>(),
            prop_oneof![
                Just(crate::kernel::Unreachable::PortUnreachable),
                Just(crate::kernel::Unreachable::Refused),
                Just(crate::kernel::Unreachable::StreamClosed),
            ]
        )
            .prop_map(|(seq, how)| Message::Refused { seq, how }),
        Just(Message::Gossip),
        (any::<bool>(), any::<bool>(), proptest::collection::vec(arb_member_state(), 0..20)).prop_map(
            |(join, reply, states)| Message::PushPull { join, takeover: join && reply, reply, states }
        ),
        // 7 stands for "same as yours": no sums.
        (any::<bool>(), 0u32..=7, proptest::collection::vec(arb_member_state(), 0..8)).prop_flat_map(
            |(reply, log2, states)| {
                let n = if log2 == 7 { 0 } else { 1usize << log2 };
                proptest::collection::vec(any::<u32>(), n).prop_map(move |sums| Message::Digest {
                    reply,
                    sums,
                    states: states.clone(),
                })
            }
        ),
    ]
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (arb_message(), proptest::collection::vec(arb_update(), 0..10))
        .prop_map(|(message, updates)| Packet { message, updates })
}

/// One edit to a valid encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Remove),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Mutation::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_round_trips(p in arb_packet()) {
        let bytes = encode(&p);
        prop_assert_eq!(decode(&bytes), Ok(p));
    }

    #[test]
    fn strict_prefixes_are_refused_and_one_extra_byte_is_trailing(
        p in arb_packet(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 1..16),
        extra in any::<u8>(),
    ) {
        let mut bytes = encode(&p);
        for cut in &cuts {
            let n = cut.index(bytes.len());
            let result = decode(&bytes[..n]);
            prop_assert!(
                matches!(result, Err(DecodeError::Truncated(_) | DecodeError::Empty)),
                "prefix of {}/{} bytes gave {:?}", n, bytes.len(), result
            );
        }
        bytes.push(extra);
        prop_assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn version_1_decodes_alike_and_to_version_1_rewrites_exactly_as_version_1_encodes(p in arb_packet()) {
        let v1 = encode_version_1(&p);
        prop_assert_eq!(decode(&v1), Ok(p.clone()));
        let mut out = vec![0xEE];
        to_version_1(&encode(&p), &mut out).unwrap();
        prop_assert_eq!(&out, &v1);
        // A version-1 packet (or a control frame) is left as it is.
        to_version_1(&v1, &mut out).unwrap();
        prop_assert_eq!(out, v1);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn decoding_arbitrary_bodies_never_panics(
        version in VERSION_1..=VERSION,
        message_type in prop_oneof![0u8..11, 0x80u8..0x8B],
        body in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        // Past the version check, so the message and update readers see the noise.
        let mut bytes = vec![version, message_type];
        bytes.extend_from_slice(&body);
        if let Ok(p) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(decode(&encode(&p)), Ok(p));
        }
    }

    #[test]
    fn decoding_mutated_encodings_never_panics(
        p in arb_packet(),
        mutations in proptest::collection::vec(arb_mutation(), 1..8),
    ) {
        let mut bytes = encode(&p);
        for m in &mutations {
            apply(&mut bytes, m);
            if let Ok(q) = decode(&bytes) {
                prop_assert_eq!(decode(&encode(&q)), Ok(q));
            }
        }
    }
}
