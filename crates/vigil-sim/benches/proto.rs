//! Micro-benchmarks of the protocol core: encoding and decoding each message
//! kind, one protocol period of a member of a 1 000-member cluster, and
//! merging a 1 000-member push-pull table (and a digest exchange).
//!
//! `cargo bench -p vigil-sim --bench proto`; `-- --test` runs each once (CI).
//! Wall time on a shared 2-core machine is noisy: for stable figures count
//! instructions with `valgrind --tool=callgrind` on the bench binary.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use vigil_proto::codec::{self, MemberState, Message, Packet, Update};
use vigil_proto::{Config, Core, Health, Identity, Instant, Meta, Name, State};
use vigil_sim::{member_addr, member_name};

fn name(i: usize) -> Name {
    Name::new(&member_name(i)).unwrap()
}

fn state(i: usize) -> MemberState {
    MemberState {
        name: name(i),
        incarnation: 3,
        state: State::Alive,
        addr: member_addr(i),
        meta: Meta::new(b"role=web".to_vec()).unwrap(),
        health: Health::ok(),
    }
}

fn updates(k: usize) -> Vec<Update> {
    (0..k)
        .map(|i| match i % 3 {
            0 => Update::Alive {
                name: name(i),
                incarnation: 7,
                addr: member_addr(i),
                meta: Meta::default(),
                health: Health::ok(),
            },
            1 => Update::Suspect { name: name(i), incarnation: 7, from: name(i + 1) },
            _ => Update::Dead { name: name(i), incarnation: 7, from: name(i + 1) },
        })
        .collect()
}

fn messages() -> Vec<(&'static str, Packet)> {
    let p = |message, updates| Packet { message, updates };
    vec![
        ("ping", p(Message::Ping { seq: 12345, target: 0xDEAD_BEEF }, vec![])),
        ("ack", p(Message::Ack { seq: 12345 }, vec![])),
        (
            "ping_req",
            p(Message::PingReq { seq: 1, target: name(9), addr: member_addr(9), nack_after_ms: 480 }, vec![]),
        ),
        ("nack", p(Message::Nack { seq: 1 }, vec![])),
        ("gossip_30_updates", p(Message::Gossip, updates(30))),
        (
            "push_pull_100",
            p(
                Message::PushPull {
                    join: false,
                    takeover: false,
                    reply: false,
                    states: (0..100).map(state).collect(),
                },
                vec![],
            ),
        ),
        (
            "digest_128",
            p(Message::Digest { reply: true, sums: vec![0xABCD; 128], states: vec![state(0)] }, vec![]),
        ),
    ]
}

fn codec_benches(c: &mut Criterion) {
    for (kind, packet) in messages() {
        c.bench_function(&format!("encode/{kind}"), |b| b.iter(|| codec::encode(black_box(&packet))));
        let bytes = codec::encode(&packet);
        c.bench_function(&format!("decode/{kind}"), |b| b.iter(|| codec::decode(black_box(&bytes)).unwrap()));
    }
}

fn member(i: usize, now: Instant) -> Core {
    let me = Identity { name: name(i), addr: member_addr(i), meta: Meta::default(), health: Health::ok() };
    Core::new(Config::lan(), me, 1, i as u64, now).unwrap()
}

fn cluster_member(n: usize) -> Core {
    let mut core = member(0, Instant::ZERO);
    core.preload(Instant::ZERO, (1..n).map(state));
    core
}

fn period_bench(c: &mut Criterion) {
    // One protocol period of member 0 of 1 000: its timers (probe, gossip
    // ticks), acking its probe, answering a ping, merging a gossip packet.
    let mut core = cluster_member(1000);
    let mut now = Instant::ZERO;
    let gossip = codec::encode(&Packet { message: Message::Gossip, updates: updates(6) });
    let from: SocketAddr = member_addr(1);
    let mut seq = 0u32;
    c.bench_function("period/member_of_1000", |b| {
        b.iter(|| {
            let end = now + Duration::from_secs(1);
            while let Some(t) = core.poll_timeout().filter(|t| *t <= end) {
                now = t;
                core.handle_timeout(now);
                while let Some(tx) = core.poll_transmit() {
                    if let Ok(p) = codec::decode(&tx.payload)
                        && let Message::Ping { seq, .. } = p.message
                    {
                        let ack = codec::encode(&Packet { message: Message::Ack { seq }, updates: vec![] });
                        let _ = core.handle_datagram(now, tx.dst, &ack);
                    }
                }
            }
            seq = seq.wrapping_add(1);
            let ping = codec::encode(&Packet {
                message: Message::Ping { seq, target: core.name().hash32() },
                updates: vec![],
            });
            let _ = core.handle_datagram(now, from, &ping);
            let _ = core.handle_datagram(now, from, &gossip);
            while core.poll_transmit().is_some() {}
            while core.poll_event().is_some() {}
            now = end;
        })
    });
}

fn merge_bench(c: &mut Criterion) {
    let table = codec::encode(&Packet {
        message: Message::PushPull {
            join: false,
            takeover: false,
            reply: true,
            states: (1..1000).map(state).collect(),
        },
        updates: vec![],
    });
    c.bench_function("merge/push_pull_1000_into_empty", |b| {
        b.iter_batched(
            || member(0, Instant::ZERO),
            |mut core| {
                core.handle_stream(Instant::ZERO, member_addr(1), &table).unwrap();
                core
            },
            BatchSize::LargeInput,
        )
    });
    c.bench_function("merge/push_pull_1000_into_same_1000", |b| {
        b.iter_batched(
            || cluster_member(1000),
            |mut core| {
                core.handle_stream(Instant::ZERO, member_addr(1), &table).unwrap();
                core
            },
            BatchSize::LargeInput,
        )
    });
    // A digest exchange between two members of 1 000 that agree: the cost that replaced a full table.
    c.bench_function("merge/digest_round_1000_agreeing", |b| {
        b.iter_batched(
            || {
                let mut a = cluster_member(1000);
                let mut other = member(1, Instant::ZERO);
                other.preload(Instant::ZERO, (0..1000).filter(|&i| i != 1).map(state));
                // Let `a` start an exchange: its push-pull timer fires within 90 s.
                let (digest, now) = loop {
                    let now = a.poll_timeout().unwrap();
                    a.handle_timeout(now);
                    if let Some(tx) = std::iter::from_fn(|| a.poll_transmit())
                        .find(|tx| codec::message_kind(&tx.payload) == Some("digest"))
                    {
                        break (tx.payload, now);
                    }
                };
                (other, digest, now)
            },
            |(mut other, digest, now)| {
                other.handle_stream(now, member_addr(0), &digest).unwrap();
                other
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, codec_benches, period_bench, merge_bench);
criterion_main!(benches);
