//! Replays the `config` fuzz corpus and crash reproducers kept under `fuzz/`.

use std::path::Path;

#[test]
fn config_corpus_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut seen = 0;
    for kind in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(kind).join("config")) else { continue };
        for e in entries.flatten().filter(|e| e.path().is_file()) {
            let data = std::fs::read(e.path()).unwrap();
            let Ok(text) = std::str::from_utf8(&data) else { continue };
            seen += 1;
            if let Err(message) = vigil_agent::config::parse_file(text) {
                assert!(!message.is_empty(), "{}", e.path().display());
            }
        }
    }
    assert!(seen > 0, "the seed corpus is in the repository");
    // The kind of file the corpus grew from parses.
    let valid = "name = \"db1\"\nbind = \"10.0.0.1:7950\"\njoin = [\"10.0.0.2:7950\"]\npreset = \"lan\"\n[meta]\nrole = \"db\"\n";
    vigil_agent::config::parse_file(valid).expect("a valid config");
}
