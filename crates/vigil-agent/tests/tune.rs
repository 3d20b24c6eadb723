//! `vigil tune ... > t.toml` prints a file that `vigil agent --config t.toml`
//! loads as printed (and `vigil sim --scenario t.toml` too). A real process
//! on 127.0.0.1, started by the process harness.

mod support;

use std::process::Command;

use support::EXE;

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

    // The agent loads it as printed (on the process harness: it binds port 0
    // and is killed on every exit path).
    let mut c = support::cluster(dir.path());
    let mut spec = c.new_spec("tuned").unwrap();
    spec.args = vec!["--config".into(), file.clone().into()];
    let i = c.add(spec).unwrap_or_else(|e| panic!("the agent refused the tuned file: {e}\n{stdout}"));
    let me = c.get(i, "/v1/self").unwrap();
    assert_eq!(me["name"], "tuned", "{me}");
    drop(c);

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
