//! Real agent processes on 127.0.0.1, on ports they pick themselves. Every
//! agent is a child of this test process, killed when its cluster guard
//! drops (panics included), and exits by itself if this process dies (its
//! stdin closes). Every wait is bounded and waits for the event that proves
//! its point.

mod support;

use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use support::{EXE, converged, observers, wait_until};
use vigil_agent::harness::Cluster;

fn cluster(dir: &std::path::Path, n: usize) -> Cluster {
    let mut c = support::cluster(dir);
    let seed = c.add_agent("n1", &[]).unwrap();
    for i in 2..=n {
        c.add_agent(&format!("n{i}"), &[seed]).unwrap();
    }
    converged(&mut c);
    c
}

/// Waits until every running agent but `victim` shows it in `state`.
fn wait_state(c: &mut Cluster, victim: usize, state: &str, within: Duration) {
    let others: Vec<usize> = c.answering().into_iter().filter(|&i| i != victim).collect();
    if let Err(e) = c.wait_state(&others, &[victim], state, within) {
        panic!("not every agent shows {} {state}: {e}", c.name(victim));
    }
}

/// Probe rounds agent `i` has run (its `vigil_probes_total`).
fn probes(c: &Cluster, i: usize) -> f64 {
    let text = vigil_agent::client::get_text(&c.url(i), "/metrics").unwrap_or_default();
    vigil_agent::client::metric_sum("vigil_probes_total", &text)
}

#[test]
fn five_agents_converge_a_killed_one_fails_everywhere_and_rejoins_from_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), 5);
    let events = c.events().cursor();
    // n3's snapshot lists the four others (written within a second of a change).
    let snapshot = c.spec(2).data_dir.join("members.json");
    wait_until("n3 writes a snapshot with 4 members", Duration::from_secs(10), || {
        std::fs::read(&snapshot)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["members"].as_array().map_or(0, Vec::len) >= 4)
    });

    c.kill(2); // SIGKILL n3
    wait_state(&mut c, 2, "dead", Duration::from_secs(15));
    let seen = events
        .wait_for(Duration::from_secs(10), |s| observers(s, "failed", "n3").len() == 4)
        .unwrap_or_else(|seen| seen);
    assert_eq!(
        observers(&seen, "failed", "n3"),
        vec!["n1", "n2", "n4", "n5"],
        "every survivor emits `failed`"
    );
    let failed = seen.iter().find(|s| s.is("failed", "n3")).unwrap();
    for key in ["time_ms", "addr", "incarnation", "suspected_by", "confirmations", "declared_by"] {
        assert!(failed.event.get(key).is_some(), "`{key}` missing in {}", failed.event);
    }
    // A SIGKILL closes n3's sockets: the kernel's evidence is in the event.
    let causes: Vec<&str> =
        seen.iter().filter(|s| s.is("failed", "n3")).filter_map(|s| s.event["cause"].as_str()).collect();
    assert!(
        causes.iter().any(|c| c.starts_with("process exited:")),
        "no `failed` event of n3 carries the exit evidence: {causes:?}"
    );
    let witnessed =
        seen.iter().filter(|s| s.is("failed", "n3")).find(|s| s.event["exit"].is_array()).unwrap();
    assert!(witnessed.event["exit"][0]["by"].is_string() && witnessed.event["exit"][0]["how"].is_string());

    // Restart without --join: it rejoins the members in its snapshot.
    let saved: Value = serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    assert_eq!(saved["members"].as_array().unwrap().len(), 4, "{saved}");
    c.spec_mut(2).join.clear();
    c.start(2).unwrap();
    wait_state(&mut c, 2, "alive", Duration::from_secs(15));
    assert!(c.wait_converged(Duration::from_secs(15)).is_ok(), "n3 sees everyone again");
}

#[test]
fn a_terminated_agent_leaves_and_is_never_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), 3);
    let mut events = c.events().cursor();
    c.signal(2, Signal::SIGTERM).unwrap();
    let status = c.wait_exit(2, Duration::from_secs(10)).expect("SIGTERM: exits within the leave timeout");
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    wait_state(&mut c, 2, "left", Duration::from_secs(10));
    // Watch a little longer, on the survivors' own clock: ten more probe
    // rounds each (several suspicion timeouts plus the pause tolerance of
    // the local preset), by which any suspicion of n3 would have ended.
    let start = [probes(&c, 0), probes(&c, 1)];
    wait_until("both survivors probe ten more rounds", Duration::from_secs(20), || {
        probes(&c, 0) >= start[0] + 10.0 && probes(&c, 1) >= start[1] + 10.0
    });
    let seen = events.drain();
    assert!(observers(&seen, "failed", "n3").is_empty(), "left, never failed: {seen:?}");
    let log = std::fs::read_to_string(c.log_path(2)).unwrap();
    assert!(log.contains("left"), "the agent logs its leave: {log}");

    // A bad API request to a live agent gets a 400 that says what was wrong.
    let base = c.url(0);
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

#[test]
fn a_member_that_joins_a_running_cluster_prints_every_member_joined_fifty_starts_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), 6);
    let base = c.names();
    let mut spec = c.new_spec("newcomer").unwrap();
    spec.join = vec![c.gossip(0)];
    let joined_by_newcomer = |seen: &[vigil_agent::harness::Seen]| {
        let mut joined: Vec<String> = seen
            .iter()
            .filter(|s| s.by == "newcomer" && s.kind == "joined" && base.contains(&s.member))
            .map(|s| s.member.clone())
            .collect();
        joined.sort();
        joined.dedup();
        joined
    };
    let mut newcomer = None;
    for start in 1..=50 {
        // Everything the newcomer prints from its start on.
        let from = c.events().len();
        match newcomer {
            None => newcomer = Some(c.add(spec.clone()).unwrap()),
            Some(i) => c.start(i).unwrap(),
        }
        let i = newcomer.unwrap();
        let seen = c.events().wait_for(from, Duration::from_secs(15), |s| joined_by_newcomer(s) == base);
        if let Err(seen) = seen {
            panic!(
                "start {start}: the newcomer printed `joined` only for {:?} of {base:?}\n{}",
                joined_by_newcomer(&seen),
                c.log_tail(i, 20)
            );
        }
        c.stop(i, Duration::from_secs(10)).unwrap();
    }
}

#[test]
fn sighup_reloads_checks_and_log_level_and_nobody_reports_the_member_failed() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("n3.toml");
    std::fs::write(&conf, "log_level = \"info\"\n").unwrap();
    let mut c = support::cluster(&dir.path().join("agents"));
    let seed = c.add_agent("n1", &[]).unwrap();
    c.add_agent("n2", &[seed]).unwrap();
    let mut spec = c.new_spec("n3").unwrap();
    spec.join = vec![c.gossip(seed)];
    spec.env.push(("VIGIL_CONFIG".into(), conf.display().to_string()));
    let n3 = c.add(spec).unwrap();
    converged(&mut c);
    let events = c.events().cursor();

    // A check that fails, and a finer log level: in effect after SIGHUP.
    std::fs::write(
        &conf,
        "log_level = \"info,vigil_agent=debug\"\n\n[[check]]\nname = \"reloaded\"\nscript = \"exit 2\"\ninterval = \"200ms\"\n",
    )
    .unwrap();
    for _ in 0..3 {
        c.signal(n3, Signal::SIGHUP).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_until("the reloaded check's health reaches every member", Duration::from_secs(10), || {
        (0..3).all(|i| {
            vigil_agent::client::get(&c.url(i), "/v1/members/n3").is_ok_and(|m| {
                m["health"]["status"] == "failing"
                    && m["health"]["reason"].as_str().is_some_and(|r| r.starts_with("reloaded"))
            })
        })
    });
    assert!(c.is_running(n3), "SIGHUP must not end the agent:\n{}", c.log_tail(n3, 20));
    let log = std::fs::read_to_string(c.log_path(n3)).unwrap();
    assert!(log.contains("SIGHUP: reloading the configuration"), "{}", c.log_tail(n3, 20));
    assert!(log.contains("checks, handlers and failover reloaded"), "{}", c.log_tail(n3, 20));

    // A refused configuration keeps the running one.
    std::fs::write(&conf, "log_level = \"info\"\nno_such_key = 1\n").unwrap();
    c.signal(n3, Signal::SIGHUP).unwrap();
    wait_until("the refusal is logged", Duration::from_secs(5), || {
        std::fs::read_to_string(c.log_path(n3)).is_ok_and(|l| l.contains("configuration refused"))
    });
    assert!(c.is_running(n3));
    let seen = events.wait_for(Duration::from_millis(500), |_| false).unwrap_or_else(|seen| seen);
    let bad: Vec<_> = seen.iter().filter(|s| s.kind == "failed" || s.kind == "left").collect();
    assert!(bad.is_empty(), "a reload is no failure and no leave: {bad:?}");
}

/// `vigil SUBCOMMAND --http URL ARGS...`: its exit success and output.
fn vigil(url: &str, sub: &[&str], rest: &[&str]) -> (bool, String) {
    // `--http` belongs to the first word (`vigil meta --http URL set ...`).
    let out =
        Command::new(EXE).arg(sub[0]).args(["--http", url]).args(&sub[1..]).args(rest).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_cli_sets_meta_and_health_filters_members_and_forces_a_failed_member_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cluster(dir.path(), 3);
    let n1 = c.url(0);

    // meta set merges, meta delete removes only the keys named.
    assert!(vigil(&n1, &["meta", "set"], &["role=web", "zone=a"]).0);
    let (ok, out) = vigil(&n1, &["meta", "delete"], &["zone"]);
    assert!(ok, "{out}");
    let me = vigil_agent::client::get(&n1, "/v1/self").unwrap();
    assert_eq!(me["meta"], serde_json::json!({"role": "web"}), "{me}");

    let (ok, out) = vigil(&n1, &["health", "set"], &["degraded", "draining"]);
    assert!(ok, "{out}");
    wait_until("n1's health and meta reach n2", Duration::from_secs(10), || {
        vigil_agent::client::get(&c.url(1), "/v1/members/n1")
            .is_ok_and(|m| m["health"]["status"] == "degraded" && m["meta"]["role"] == "web")
    });
    let (ok, out) = vigil(&c.url(1), &["members"], &["--health", "degraded", "--meta", "role=web", "--json"]);
    assert!(ok, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        listed.as_array().map(|a| a.iter().map(|m| m["name"].clone()).collect::<Vec<_>>()),
        Some(vec!["n1".into()])
    );

    let (ok, out) = vigil(&n1, &["info"], &["--json"]);
    assert!(ok, "{out}");
    let info: Value = serde_json::from_str(&out).unwrap();
    assert!(info["local_health"].is_u64() && info["name"] == "n1", "{info}");

    // A live member is not forced out; a failed one is, everywhere.
    let (ok, out) = vigil(&n1, &["force-leave"], &["n2"]);
    assert!(!ok && out.contains("only a failed member"), "{out}");
    c.kill(2);
    wait_state(&mut c, 2, "dead", Duration::from_secs(15));
    let (ok, out) = vigil(&n1, &["force-leave"], &["n3"]);
    assert!(ok && out.contains("n3 is now left"), "{out}");
    wait_state(&mut c, 2, "left", Duration::from_secs(10));
    let (ok, out) = vigil(&n1, &["force-leave"], &["nobody"]);
    assert!(!ok && out.contains("no member named"), "{out}");
}

/// A wrapper that fails the agent's start the way a port taken by another
/// process does, `fails` times (counted in `count`), then runs the agent.
fn taken_port_wrapper(count: &std::path::Path, fails: usize) -> Vec<std::ffi::OsString> {
    let script = format!(
        "n=$(cat '{c}' 2>/dev/null || echo 0); echo $((n + 1)) > '{c}'; \
         if [ \"$n\" -lt {fails} ]; then \
         echo 'error: cannot start the member: cannot bind 127.0.0.1:25003: \
         Address already in use (os error 98)' >&2; exit 1; fi; exec \"$@\"",
        c = count.display()
    );
    vec!["sh".into(), "-c".into(), script.into(), "sh".into()]
}

#[test]
fn an_agent_whose_picked_port_was_taken_meanwhile_is_started_again_on_others() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("starts");
    let mut c = support::cluster(dir.path());
    let mut spec = c.new_spec("a1").unwrap();
    spec.wrapper = taken_port_wrapper(&count, 1);
    c.add(spec).unwrap();
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "2", "started twice");
    let health = vigil_agent::client::get_text(&c.url(0), "/healthz");
    assert!(health.is_ok(), "{health:?}");

    // Taken on every try: the start fails after three, saying why.
    let count = dir.path().join("starts-b");
    let mut spec = c.new_spec("b1").unwrap();
    spec.wrapper = taken_port_wrapper(&count, 1000);
    let err = c.add(spec).unwrap_err().to_string();
    assert!(err.contains("Address already in use"), "{err}");
    assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "3", "three tries");
}
