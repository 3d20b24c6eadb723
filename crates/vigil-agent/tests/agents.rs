//! Real agent processes on 127.0.0.1 with free ports. Every agent is a child
//! of this test process, killed when its `LocalCluster` guard drops (panics
//! included), and exits by itself if this process dies (its stdin closes).
//! Every wait is a deadline loop.

use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use vigil_agent::cluster::{LocalCluster, Seen};

const EXE: &str = env!("CARGO_BIN_EXE_vigil");

fn cluster(n: usize) -> (tempfile::TempDir, LocalCluster) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LocalCluster::new(EXE, dir.path(), "local");
    let seed = c.add("n1", None).unwrap();
    let seed_addr = c.agents[seed].gossip;
    for i in 2..=n {
        c.add(&format!("n{i}"), Some(seed_addr)).unwrap();
    }
    if c.wait_converged(Duration::from_secs(20)).is_none() {
        let views: Vec<_> = c.agents.iter().map(|a| (a.name.clone(), a.states())).collect();
        panic!("{n} agents did not converge within 20 s: {views:?}");
    }
    (dir, c)
}

/// Waits until every running agent but `victim` shows it in `state`.
fn wait_state(c: &LocalCluster, victim: &str, state: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let views: Vec<_> =
            c.agents.iter().filter(|a| a.child.is_some() && a.name != victim).map(|a| a.states()).collect();
        if views.iter().all(|v| v.as_ref().and_then(|v| v.get(victim)).is_some_and(|s| s == state)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every agent shows {victim} {state} within {within:?}: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collects events until `done` holds over them or the deadline passes.
fn collect_events(c: &LocalCluster, within: Duration, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.events.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(s) => seen.push(s),
            Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => break,
        }
    }
    seen
}

fn is(s: &Seen, kind: &str, member: &str) -> bool {
    s.event["kind"] == kind && s.event["member"] == member
}

fn observers(seen: &[Seen], kind: &str, member: &str) -> Vec<String> {
    let mut by: Vec<String> = seen.iter().filter(|s| is(s, kind, member)).map(|s| s.by.clone()).collect();
    by.sort();
    by.dedup();
    by
}

#[test]
fn five_agents_converge_a_killed_one_fails_everywhere_and_rejoins_from_its_snapshot() {
    let (_dir, mut c) = cluster(5);
    while c.events.try_recv().is_ok() {}
    // n3's snapshot lists the four others (written within a second of a change).
    let snapshot = c.agents[2].data_dir.join("members.json");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(&snapshot)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_none_or(|v| v["members"].as_array().map_or(0, Vec::len) < 4)
    {
        assert!(Instant::now() < deadline, "n3 never wrote a snapshot with 4 members");
        std::thread::sleep(Duration::from_millis(50));
    }

    c.kill(2); // SIGKILL n3
    wait_state(&c, "n3", "dead", Duration::from_secs(15));
    let seen = collect_events(&c, Duration::from_secs(10), |s| observers(s, "failed", "n3").len() == 4);
    assert_eq!(
        observers(&seen, "failed", "n3"),
        vec!["n1", "n2", "n4", "n5"],
        "every survivor emits `failed`"
    );
    let failed = seen.iter().find(|s| is(s, "failed", "n3")).unwrap();
    for key in ["time_ms", "addr", "incarnation", "suspected_by", "confirmations", "declared_by"] {
        assert!(failed.event.get(key).is_some(), "`{key}` missing in {}", failed.event);
    }

    // Restart without --join: it rejoins the members in its snapshot.
    let saved: Value = serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    assert_eq!(saved["members"].as_array().unwrap().len(), 4, "{saved}");
    c.start(2, None).unwrap();
    wait_state(&c, "n3", "alive", Duration::from_secs(15));
    assert!(c.wait_converged(Duration::from_secs(15)).is_some(), "n3 sees everyone again");
}

#[test]
fn a_terminated_agent_leaves_and_is_never_failed() {
    let (_dir, mut c) = cluster(3);
    while c.events.try_recv().is_ok() {}
    let pid = c.agents[2].pid().unwrap();
    kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGTERM).unwrap();
    let status = c.wait_exit(2, Duration::from_secs(10)).expect("SIGTERM: exits within the leave timeout");
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    wait_state(&c, "n3", "left", Duration::from_secs(10));
    // Watch a little longer (several suspicion timeouts of the local preset).
    let seen = collect_events(&c, Duration::from_secs(2), |_| false);
    assert!(observers(&seen, "failed", "n3").is_empty(), "left, never failed: {seen:?}");
    let log = std::fs::read_to_string(c.log_path(2)).unwrap();
    assert!(log.contains("left"), "the agent logs its leave: {log}");

    // A bad API request to a live agent gets a 400 that says what was wrong.
    let base = c.agents[0].url();
    let err = vigil_agent::client::send("POST", &base, "/v1/join", &serde_json::json!({"adrs": ["x:1"]}))
        .unwrap_err();
    assert!(err.0.contains("400") && err.0.contains("adrs"), "{err}");
    let err = vigil_agent::client::get(&base, "/v1/members?state=sleepy").unwrap_err();
    assert!(err.0.contains("sleepy"), "{err}");
}

fn agent_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(EXE);
    cmd.arg("agent").args(args).env_remove("VIGIL_HTTP").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{args:?} must fail");
    assert_ne!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_config_files_flags_and_variables_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    let path = file.to_str().unwrap();

    std::fs::write(&file, "name = \"a\"\nbnid = \"127.0.0.1:1\"\n").unwrap();
    let err = agent_fails(&["--config", path], &[]);
    assert!(err.contains("bnid") && err.contains("unknown field"), "{err}");

    std::fs::write(&file, "preset = \"moon\"\n").unwrap();
    let err = agent_fails(&["--config", path], &[]);
    assert!(err.contains("preset") && err.contains("moon"), "{err}");

    std::fs::write(&file, "bind = \"127.0.0.1:1\"\n[meta]\n\"bad key\" = \"x\"\n").unwrap();
    let err = agent_fails(&["--config", path], &[]);
    assert!(err.contains("`meta`") && err.contains("bad key"), "{err}");

    let err = agent_fails(&["--config", dir.path().join("missing.toml").to_str().unwrap()], &[]);
    assert!(err.contains("missing.toml"), "{err}");

    let err = agent_fails(&["--bind", "nowhere"], &[]);
    assert!(err.contains("--bind") && err.contains("nowhere"), "{err}");
    let err = agent_fails(&["--frobnicate"], &[]);
    assert!(err.contains("--frobnicate"), "{err}");
    let err = agent_fails(&[], &[("VIGIL_PRESET", "moon")]);
    assert!(err.contains("--preset") && err.contains("moon"), "{err}");
    let err = agent_fails(&["--bind", "127.0.0.1:0", "--leave-timeout", "soon"], &[]);
    assert!(err.contains("--leave-timeout"), "{err}");
    let err = agent_fails(
        &["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--insecure-plaintext"],
        &[("VIGIL_FAULTS", "jitter=1")],
    );
    assert!(err.contains("VIGIL_FAULTS") && err.contains("jitter"), "{err}");

    // Encryption is not optional by accident; key files must be private.
    let err = agent_fails(&["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0"], &[]);
    assert!(err.contains("key_file") && err.contains("--insecure-plaintext"), "{err}");
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, format!("{}\n", vigil::Key::generate().to_base64())).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let err = agent_fails(
        &["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--key-file", key.to_str().unwrap()],
        &[],
    );
    assert!(err.contains("readable by other users") && err.contains("chmod 600"), "{err}");
}
