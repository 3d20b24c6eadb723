//! `vigil tune ... > t.toml` prints a file that `vigil agent --config t.toml`
//! loads as printed (and `vigil sim --scenario t.toml` too). Real processes on
//! 127.0.0.1 with free ports; the agent is killed on every exit path (a
//! guard), and exits by itself if this process dies (its stdin closes).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_vigil");

/// Kills the child when dropped (a failed assertion included).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn vigil_tune_prints_a_configuration_the_agent_starts_with_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    // One candidate (the budget is spent after the first), a small cluster:
    // deterministic, and quick in a debug build.
    let out = Command::new(EXE)
        .args(["tune", "--members", "10", "--budget", "1ms", "--seed", "3", "--tolerate-pause", "2s"])
        .args(["--set", "watch_count=3", "--target-detection", "5s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vigil tune: {}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("[protocol]") && stdout.contains("watch_count = 3"), "{stdout}");
    assert!(stdout.contains("pause_tolerance = \"5s\""), "2 s to tolerate + the 3 s period: {stdout}");
    assert!(stderr.contains("candidate"), "the search is reported on stderr: {stderr}");
    let file = dir.path().join("t.toml");
    std::fs::write(&file, &stdout).unwrap();

    let (gossip, http) = vigil_agent::cluster::free_addrs().unwrap();
    let agent = Command::new(EXE)
        .arg("agent")
        .arg("--config")
        .arg(&file)
        .args(["--name", "tuned", "--bind", &gossip.to_string(), "--http", &http.to_string()])
        .arg("--insecure-plaintext")
        .env("VIGIL_EXIT_ON_STDIN_EOF", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = Killed(agent);
    let base = format!("http://{http}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let me = loop {
        if let Ok(me) = vigil_agent::client::get(&base, "/v1/self") {
            break me;
        }
        if let Ok(Some(status)) = agent.0.try_wait() {
            let mut log = String::new();
            use std::io::Read;
            let _ = agent.0.stderr.take().unwrap().read_to_string(&mut log);
            panic!("the agent refused the tuned file ({status}): {log}\n{stdout}");
        }
        assert!(Instant::now() < deadline, "the agent did not answer within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(me["name"], "tuned", "{me}");
    drop(agent);

    // The same file is a scenario: the simulator runs the tuned settings.
    let sim = Command::new(EXE)
        .args(["sim", "--scenario", file.to_str().unwrap(), "--members", "5", "--duration", "20s", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&sim.stdout).unwrap();
    assert!(sim.status.success(), "{report}");
    let config = report["config"].as_str().unwrap();
    assert!(config.contains("watch_count = 3") && config.contains("pause_tolerance = \"5s\""), "{config}");
}
