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
