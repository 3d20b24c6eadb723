//! Replays the `decrypt_decode` fuzz corpus and crash reproducers kept under
//! `fuzz/` through the same checks as the fuzz target.

use std::path::{Path, PathBuf};

use vigil::crypto::{Key, Keyring, Lane};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind).join("decrypt_decode")
}

fn ring() -> Keyring {
    Keyring::new(Key::from_bytes([7u8; 32]), "fuzz")
}

#[test]
fn decrypt_decode_corpus_replays_cleanly() {
    let ring = ring();
    let mut seen = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(dir(kind)) else { continue };
        for e in entries.flatten().filter(|e| e.path().is_file()) {
            let data = std::fs::read(e.path()).unwrap();
            let Some((&mode, rest)) = data.split_first() else { continue };
            seen += 1;
            let lane = if mode & 2 == 0 { Lane::Datagram } else { Lane::Stream };
            if mode & 1 == 0 {
                if let Ok(plain) = ring.open(lane, rest) {
                    let _ = vigil_proto::codec::decode(&plain);
                }
            } else {
                assert_eq!(ring.open(lane, &ring.seal(lane, rest)).unwrap(), rest);
            }
        }
    }
    assert!(seen > 0, "the seed corpus is in the repository");
}

/// Regenerates the seeds: `cargo test -p vigil --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh the seed corpus"]
fn write_seed_corpus() {
    let ring = ring();
    let ping = [1u8, 1, 5, 0, 0, 0, 0, 0];
    std::fs::create_dir_all(dir("corpus")).unwrap();
    for (i, (mode, lane)) in [(0u8, Lane::Datagram), (2, Lane::Stream)].into_iter().enumerate() {
        let mut seed = vec![mode];
        seed.extend(ring.seal(lane, &ping));
        std::fs::write(dir("corpus").join(format!("seed-{i}")), seed).unwrap();
    }
    let mut plain = vec![1u8];
    plain.extend_from_slice(&ping);
    std::fs::write(dir("corpus").join("seed-2"), plain).unwrap();
}

/// Every input kept for the fuzz target `target`: corpus and regressions.
fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut all = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        for e in entries.flatten().filter(|e| e.path().is_file()) {
            all.push(std::fs::read(e.path()).unwrap());
        }
    }
    all
}

#[test]
fn envelope_corpus_replays_cleanly() {
    let all = inputs("envelope");
    assert!(all.len() >= 8, "the seed corpus is in the repository");
    for data in all {
        vigil::fuzzing::envelope_case(&data);
    }
}

#[test]
fn stream_first_frame_corpus_replays_cleanly() {
    let all = inputs("stream_first_frame");
    assert!(all.len() >= 6, "the seed corpus is in the repository");
    for data in all {
        vigil::fuzzing::first_frame_case(&data);
    }
}

fn framed(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Regenerates the seeds of `envelope` and `stream_first_frame`:
/// `cargo test -p vigil --test fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh the seed corpus"]
fn write_envelope_and_stream_seeds() {
    let ring = vigil::fuzzing::keyring();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let ping = [1u8, 1, 0x85, 0x80, 0x80, 0x80, 0x01, 0, 0, 0, 7, 0];
    let write = |target: &str, name: &str, bytes: Vec<u8>| {
        std::fs::create_dir_all(root.join(target)).unwrap();
        std::fs::write(root.join(target).join(name), bytes).unwrap();
    };
    let with = |mode: u8, rest: &[u8]| [&[mode][..], rest].concat();
    // envelope: open (modes 0, 1; 8: version 1 refused), seal (2, 3), window (4).
    write("envelope", "seed-open-v2", with(0, &ring.seal(Lane::Datagram, &ping)));
    write("envelope", "seed-open-v2-stream", with(1, &ring.seal(Lane::Stream, &ping)));
    write("envelope", "seed-open-v1", with(0, &ring.seal_legacy(Lane::Datagram, &ping)));
    write("envelope", "seed-open-v1-refused", with(8, &ring.seal_legacy(Lane::Datagram, &ping)));
    write("envelope", "seed-open-junk", with(0, &[0x82; 40]));
    write("envelope", "seed-seal", with(2, &ping));
    write("envelope", "seed-seal-stream", with(3, b"\xc2"));
    let ops: Vec<u8> =
        [(1u8, 0u8, 5u16), (1, 0, 3), (1, 0, 5), (1, 0, 200), (1, 0, 100), (2, 1, 0), (1, 1, 5)]
            .iter()
            .flat_map(|(s, l, c)| [*s, *l, (c >> 8) as u8, *c as u8])
            .collect();
    write("envelope", "seed-window", with(4, &ops));
    // stream_first_frame: bit 0 of byte 0 = from a known member's IP.
    let small = ring.seal(Lane::Stream, &ping);
    write("stream_first_frame", "seed-small", with(0, &framed(&[small])));
    let big = ring.seal(Lane::Stream, &vec![0u8; 70_000]);
    let mut announce = vec![0xC3];
    announce.extend_from_slice(&u32::try_from(big.len()).unwrap().to_be_bytes());
    let announce = ring.seal(Lane::Stream, &announce);
    write("stream_first_frame", "seed-large", with(0, &framed(&[announce, big])));
    let legacy_big = ring.seal_legacy(Lane::Stream, &vec![0u8; 70_000]);
    write("stream_first_frame", "seed-legacy-known", with(1, &framed(std::slice::from_ref(&legacy_big))));
    write("stream_first_frame", "seed-legacy-unknown", with(0, &framed(&[legacy_big])));
    write("stream_first_frame", "seed-too-large", with(0, &[0, 0xff, 0xff, 0xff, 0x82, 1, 2, 3]));
    write("stream_first_frame", "seed-hello", with(1, &framed(&[ring.seal(Lane::Stream, b"\xc2")])));
    write("stream_first_frame", "seed-empty", with(0, &[0, 0, 0, 0]));
}

#[test]
fn the_stream_seeds_reach_what_they_are_for() {
    use vigil::fuzzing::{FirstFrame, first_frame};
    let seed = |name: &str| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/stream_first_frame").join(name);
        let data = std::fs::read(path).unwrap();
        first_frame(&data[1..], data[0] & 1 == 1, 1 << 20)
    };
    assert!(matches!(seed("seed-small"), FirstFrame::Taken { plain } if plain.len() == 12));
    assert!(matches!(seed("seed-large"), FirstFrame::Taken { plain } if plain.len() == 70_000));
    assert!(matches!(seed("seed-legacy-known"), FirstFrame::Taken { plain } if plain.len() == 70_000));
    assert_eq!(seed("seed-legacy-unknown"), FirstFrame::Refused("too_large"));
    assert_eq!(seed("seed-too-large"), FirstFrame::Refused("too_large"));
    assert_eq!(seed("seed-empty"), FirstFrame::Rejected("truncated"));
}
