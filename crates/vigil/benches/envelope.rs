//! The cost of the envelope per datagram: seal and open of a ping, an ack
//! and a full 1 400-byte datagram, in version 2 (AES-256-GCM-SIV, 29 bytes)
//! and version 1 (XChaCha20-Poly1305, 41 bytes, read for one release); and
//! opening junk that is refused before decryption. Prints the bytes of a
//! ping and an ack on the wire first.
//!
//! `cargo bench -p vigil --bench envelope`; `-- --test` runs each once (CI).
//! Wall time on a shared 2-core machine is noisy: for stable figures count
//! instructions with `valgrind --tool=callgrind` on the bench binary.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use vigil::crypto::{Key, Keyring, LEGACY_OVERHEAD, Lane, OVERHEAD};
use vigil_proto::codec::{self, Message, Packet};

/// Ethernet (14), IPv4 (20) and UDP (8) headers: what an interface counts
/// beyond the datagram.
const HEADERS: usize = 14 + 20 + 8;

fn packet(message: Message) -> Vec<u8> {
    codec::encode(&Packet { message, updates: Vec::new() })
}

fn wire_sizes() {
    // Sequence numbers start at a random 32-bit value: most take 5 bytes
    // as a varint; before issue 14 they started at 1 (1 or 2 bytes).
    for (label, seq) in [("random start", 0x9E37_79B9u32), ("from 1 (before)", 100)] {
        let ping = packet(Message::Ping { seq, target: 0x1234_5678 }).len();
        let ack = packet(Message::Ack { seq }).len();
        for (envelope, overhead) in [("v2", OVERHEAD), ("v1", LEGACY_OVERHEAD)] {
            println!(
                "seq {label:16} {envelope}: ping {ping} + {overhead} = {} B datagram, {} B on the wire; \
                 ack {ack} + {overhead} = {} B, {} B on the wire",
                ping + overhead,
                ping + overhead + HEADERS,
                ack + overhead,
                ack + overhead + HEADERS
            );
        }
    }
}

fn envelope(c: &mut Criterion) {
    wire_sizes();
    let ring = Keyring::new(Key::from_bytes([7; 32]), "prod");
    let ping = packet(Message::Ping { seq: 0x9E37_79B9, target: 0x1234_5678 });
    let ack = packet(Message::Ack { seq: 0x9E37_79B9 });
    let full = vec![0x5A; 1400];
    for (what, plain) in [("ping", &ping), ("ack", &ack), ("1400 B", &full)] {
        c.bench_function(&format!("seal+open v2 {what}"), |b| {
            b.iter(|| ring.open(Lane::Datagram, &ring.seal(Lane::Datagram, black_box(plain))).unwrap())
        });
        c.bench_function(&format!("seal+open v1 {what}"), |b| {
            b.iter(|| ring.open(Lane::Datagram, &ring.seal_legacy(Lane::Datagram, black_box(plain))).unwrap())
        });
    }
    let sealed = ring.seal(Lane::Datagram, &ping);
    c.bench_function("open v2 ping", |b| b.iter(|| ring.open(Lane::Datagram, black_box(&sealed)).unwrap()));
    let mut forged = sealed.clone();
    forged[20] ^= 1;
    c.bench_function("open v2 ping, wrong tag", |b| {
        b.iter(|| ring.open(Lane::Datagram, black_box(&forged)).unwrap_err())
    });
    // 65 507 bytes of junk in a version-2 header: refused by its size, or
    // (when the size check is not the one that stops it) by the decryption.
    let mut junk = vec![0u8; 65_507];
    junk[0] = 0x82;
    let receiver = vigil::fuzzing::Receiver::new(true);
    c.bench_function("open 64 KiB junk, refused by size", |b| {
        b.iter(|| receiver.open(Lane::Datagram, black_box(&junk), 1400).unwrap_err())
    });
    c.bench_function("open 64 KiB junk, refused by decryption", |b| {
        b.iter(|| ring.open(Lane::Datagram, black_box(&junk)).unwrap_err())
    });
}

criterion_group!(benches, envelope);
criterion_main!(benches);
