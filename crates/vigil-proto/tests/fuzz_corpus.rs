//! Replays the fuzz corpus and every crash reproducer kept under `fuzz/`
//! through the same checks as the fuzz targets, in the ordinary test run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_proto::codec::{MemberState, Message, Packet, Update, decode, encode};
use vigil_proto::{Config, Core, Health, HealthStatus, Identity, Instant, Meta, Name, State};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else { continue };
        for e in entries.flatten() {
            if e.path().is_file() {
                out.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn decode_packet_corpus_replays_cleanly() {
    let inputs = inputs("decode_packet");
    assert!(!inputs.is_empty(), "the seed corpus is in the repository");
    for (path, data) in inputs {
        if let Ok(p) = decode(&data) {
            assert_eq!(decode(&encode(&p)).unwrap(), p, "{}", path.display());
        }
    }
}

#[test]
fn core_input_corpus_replays_cleanly() {
    let inputs = inputs("core_input");
    assert!(!inputs.is_empty(), "the seed corpus is in the repository");
    for (path, data) in inputs {
        let me = Identity {
            name: Name::new("me").unwrap(),
            addr: ([10, 0, 0, 1], 7900).into(),
            meta: Meta::default(),
            health: Health::ok(),
        };
        let mut c = Core::new(Config::lan(), me, 1, 1, Instant::ZERO).unwrap();
        let mut now = Instant::from_millis(1);
        for (i, chunk) in data.split(|b| *b == 0xFF).enumerate() {
            let from = ([10, 0, 0, (i % 6) as u8], 7900).into();
            let _ = if i % 2 == 0 {
                c.handle_datagram(now, from, chunk)
            } else {
                c.handle_stream(now, from, chunk)
            };
            now += Duration::from_millis(300);
            c.handle_timeout(now);
            while let Some(t) = c.poll_transmit() {
                decode(&t.payload)
                    .unwrap_or_else(|e| panic!("{}: core sent an invalid packet: {e}", path.display()));
            }
        }
    }
}

/// Regenerates the seed corpus: `cargo test -p vigil-proto --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh the seed corpus"]
fn write_seed_corpus() {
    let n = |s: &str| Name::new(s).unwrap();
    let addr = ([10, 0, 0, 2], 7900).into();
    let alive = Update::Alive {
        name: n("m2"),
        incarnation: 3,
        addr,
        meta: Meta::new(b"role=db".to_vec()).unwrap(),
        health: Health::new(HealthStatus::Degraded, "disk").unwrap(),
    };
    let seeds = [
        Packet { message: Message::Ping { seq: 1, target: n("me").hash32() }, updates: vec![] },
        Packet { message: Message::Ack { seq: 1 }, updates: vec![alive.clone()] },
        Packet {
            message: Message::PingReq { seq: 9, target: n("m3"), addr, nack_after_ms: 400 },
            updates: vec![Update::Suspect { name: n("m3"), incarnation: 1, from: n("m2") }],
        },
        Packet { message: Message::Nack { seq: 9 }, updates: vec![] },
        Packet {
            message: Message::Gossip,
            updates: vec![
                alive.clone(),
                Update::Dead { name: n("m4"), incarnation: 2, from: n("m2") },
                Update::Left { name: n("m5"), incarnation: 1 },
            ],
        },
        Packet {
            message: Message::PushPull {
                join: true,
                takeover: false,
                reply: false,
                states: vec![MemberState {
                    name: n("m2"),
                    incarnation: 3,
                    state: State::Alive,
                    addr,
                    meta: Meta::default(),
                    health: Health::ok(),
                }],
            },
            updates: vec![],
        },
    ];
    for target in ["decode_packet", "core_input"] {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, p) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), encode(p)).unwrap();
        }
    }
}
