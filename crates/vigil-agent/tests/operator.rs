//! An operator's paths around the core, with real agent processes on
//! 127.0.0.1: the metrics a failure and a return leave (and that the text
//! parses as OpenMetrics), keys given on standard input, a rotated keyring
//! that survives a restart, and SIGHUP with a changed key file. Every agent
//! is killed when its cluster guard drops; every wait is bounded.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use support::openmetrics::{self, Family};
use support::{EXE, converged, observers, wait_until};
use vigil::Key;
use vigil_agent::harness::Cluster;

/// Waits until every running agent but `victim` shows it in `state`.
fn wait_state(c: &mut Cluster, victim: usize, state: &str, within: Duration) {
    let others: Vec<usize> = c.answering().into_iter().filter(|&i| i != victim).collect();
    if let Err(e) = c.wait_state(&others, &[victim], state, within) {
        panic!("not every agent shows {} {state}: {e}", c.name(victim));
    }
}

/// Agent `i`'s `/metrics`, checked as OpenMetrics.
fn scrape(c: &Cluster, i: usize) -> std::collections::BTreeMap<String, Family> {
    let text = vigil_agent::client::get_text(&c.url(i), "/metrics").unwrap();
    openmetrics::parse(&text)
        .unwrap_or_else(|e| panic!("{}'s /metrics is not OpenMetrics: {e}\n{text}", c.name(i)))
}

/// The value of sample `name` whose labels include `labels`, if any.
fn sample(
    families: &std::collections::BTreeMap<String, Family>,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    families.values().flat_map(|f| &f.samples).find_map(|(n, l, v)| {
        (n == name && labels.iter().all(|(k, x)| l.iter().any(|(lk, lv)| lk == k && lv == x))).then_some(*v)
    })
}

#[test]
fn a_failed_member_back_alive_is_one_flap_its_suspicion_is_timed_and_every_scrape_parses() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("n1.toml");
    std::fs::write(
        &conf,
        "[meta]\ngroup = \"db\"\n\n[[check]]\nname = \"fine\"\nscript = \"exit 0\"\ninterval = \"200ms\"\n\n\
         [[check]]\nname = \"slow\"\nscript = \"exit 1\"\ninterval = \"200ms\"\n\n[failover]\nhold = \"200ms\"\n",
    )
    .unwrap();
    let mut c = support::cluster(&dir.path().join("agents"));
    let mut spec = c.new_spec("n1").unwrap();
    spec.args = vec!["--config".into(), conf.into()];
    let n1 = c.add(spec).unwrap();
    c.add_agent("n2", &[n1]).unwrap();
    c.add_agent("n3", &[n1]).unwrap();
    converged(&mut c);
    let events = c.events().cursor();

    // Silent first (stopped: no evidence, only silence), so that the others
    // suspect it until they declare it failed; then killed, and restarted.
    c.pause(2).unwrap();
    wait_state(&mut c, 2, "dead", Duration::from_secs(20));
    c.kill(2);
    c.start(2).unwrap();
    wait_state(&mut c, 2, "alive", Duration::from_secs(15));
    let seen = events.wait_for(Duration::from_secs(5), |s| observers(s, "joined", "n3").len() == 2);
    assert!(seen.is_ok(), "both survivors print n3 `joined` again");

    let mut failed_suspicions = 0.0;
    for i in [0, 1] {
        let m = scrape(&c, i);
        assert_eq!(sample(&m, "vigil_member_flaps_total", &[]), Some(1.0), "{}: one flap", c.name(i));
        failed_suspicions +=
            sample(&m, "vigil_suspicion_duration_seconds_count", &[("outcome", "failed")]).unwrap();
        assert!(sample(&m, "vigil_suspicion_duration_seconds_count", &[("outcome", "refuted")]).is_some());
        assert!(sample(&m, "vigil_probe_rtt_seconds_count", &[]).unwrap() > 0.0, "{}", c.name(i));
    }
    assert!(failed_suspicions >= 1.0, "a survivor timed its suspicion of n3 until it failed");

    // n1's checks and its failover role (alone in group db: active).
    wait_until("n1 shows its checks and its role", Duration::from_secs(10), || {
        let m = scrape(&c, 0);
        sample(&m, "vigil_check_status", &[("check", "slow")]) == Some(0.0)
            && sample(&m, "vigil_check_status", &[("check", "fine")]) == Some(1.0)
            && sample(&m, "vigil_failover_role", &[("group", "db"), ("role", "active")]) == Some(1.0)
            && sample(&m, "vigil_failover_role", &[("group", "db"), ("role", "standby")]) == Some(0.0)
    });
    let m = scrape(&c, 1);
    assert!(
        sample(&m, "vigil_check_status", &[]).is_none() && sample(&m, "vigil_failover_role", &[]).is_none()
    );
}

#[test]
fn the_openmetrics_reader_refuses_what_a_scraper_would() {
    let ok = "# TYPE a counter\na_total 1\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\n\
              h_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 3.5\n# EOF\n";
    assert_eq!(openmetrics::parse(ok).map(|f| f.len()), Ok(2));
    for bad in [
        ok.trim_end_matches("# EOF\n"),
        &ok.replace("a_total", "b_total"),
        &ok.replace("h_count 2", "h_count 3"),
        &ok.replace("le=\"1.0\"} 1", "le=\"1.0\"} 3"),
        &ok.replace("a_total 1", "a_total x"),
        &ok.replace("a_total 1", "a_total{k=\"v} 1"),
        &ok.replace("# EOF\n", "# TYPE a counter\n# EOF\n"),
    ] {
        assert!(openmetrics::parse(bad).is_err(), "accepted:\n{bad}");
    }
}

/// A private (0600) file holding `text`.
fn secret(path: &Path, text: &str) -> PathBuf {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path.to_path_buf()
}

/// `vigil keys --http URL ARGS...` with `stdin` on its standard input:
/// success and output.
fn keys(url: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(EXE)
        .args(["keys", "--http", url])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Agent `i`'s key fingerprints, the primary first.
fn fingerprints(c: &Cluster, i: usize) -> Vec<String> {
    let v = vigil_agent::client::get(&c.url(i), "/v1/keys").unwrap();
    v["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect()
}

/// The keys saved in agent `i`'s data directory (its `keyring`, mode 0600).
fn saved(c: &Cluster, i: usize) -> Vec<String> {
    let saved = vigil_agent::secrets::load_saved(&c.spec(i).data_dir).ok().flatten();
    saved.map(|s| s.keys.iter().map(Key::fingerprint).collect()).unwrap_or_default()
}

#[test]
fn a_rotation_fed_on_standard_input_survives_a_restart_with_the_original_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = support::cluster(dir.path());
    let n1 = c.add_agent("n1", &[]).unwrap();
    c.add_agent("n2", &[n1]).unwrap();
    converged(&mut c);
    let original = std::fs::read_to_string(c.key_file().unwrap()).unwrap();
    let old = Key::from_base64(original.trim()).unwrap();
    let new = Key::generate();
    let url = c.url(0);

    // The key comes on standard input (`-`) or from a private file, never argv.
    let (ok, out) = keys(&url, &["install", "--key-file", "-"], &format!("{}\n", new.to_base64()));
    assert!(ok && out.contains("applied by 2 member(s)"), "{out}");
    let file = secret(&dir.path().join("new.key"), &format!("{}\n", new.to_base64()));
    let (ok, out) = keys(&url, &["use", "--key-file", file.to_str().unwrap()], "");
    assert!(ok, "{out}");
    let (ok, out) = keys(&url, &["remove", "--key-file", "-"], &original);
    assert!(ok, "{out}");
    let (ok, out) = keys(&url, &["install", "--key-file", "-"], "not a key\n");
    assert!(!ok && out.contains("base64"), "{out}");
    let (ok, out) = keys(&url, &["install", "--key-file", "-", new.to_base64().as_str()], "");
    assert!(!ok && out.contains("cannot be used with"), "a key and a key file: {out}");
    for i in [0, 1] {
        assert_eq!(fingerprints(&c, i), vec![new.fingerprint()], "{}", c.name(i));
    }

    // n2 saved the rotated keyring (0600); it restarts with its original key file.
    wait_until("n2 saves the rotated keyring", Duration::from_secs(10), || {
        saved(&c, 1) == [new.fingerprint()]
    });
    assert_eq!(c.spec(1).key_file.as_deref(), Some(c.key_file().unwrap().as_path()));
    assert_eq!(std::fs::read_to_string(c.key_file().unwrap()).unwrap(), original);
    c.stop(1, Duration::from_secs(10)).unwrap();
    c.start(1).unwrap();
    wait_state(&mut c, 1, "alive", Duration::from_secs(15));
    converged(&mut c);
    assert_eq!(fingerprints(&c, 1), vec![new.fingerprint()], "n2 runs with the rotated key");
    assert!(!fingerprints(&c, 1).contains(&old.fingerprint()));
    assert!(c.log_tail(1, 200).contains("rotations survive restarts"), "{}", c.log_tail(1, 20));
}

#[test]
fn an_agent_reads_its_key_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = support::cluster(dir.path());
    let n1 = c.add_agent("n1", &[]).unwrap();
    // n2's key reaches it on standard input only: a file opened by the
    // shell that execs the agent, as a pipe or a credential would.
    let mut spec = c.new_spec("n2").unwrap();
    spec.join = vec![c.gossip(n1)];
    spec.key_file = Some("-".into());
    spec.env.push(("VIGIL_EXIT_ON_STDIN_EOF".into(), "false".into()));
    let key_file = c.key_file().unwrap();
    spec.wrapper =
        vec!["sh".into(), "-c".into(), format!("exec \"$0\" \"$@\" < '{}'", key_file.display()).into()];
    let n2 = c.add(spec).unwrap();
    converged(&mut c);
    assert_eq!(fingerprints(&c, n2), fingerprints(&c, n1));
    assert!(c.log_tail(n2, 200).contains("keys from standard input"), "{}", c.log_tail(n2, 20));
    // SIGHUP does not read standard input again, and keeps the keys.
    c.signal(n2, Signal::SIGHUP).unwrap();
    wait_until("n2 says it does not read standard input again", Duration::from_secs(5), || {
        c.log_tail(n2, 50).contains("not read again")
    });
    assert_eq!(fingerprints(&c, n2), fingerprints(&c, n1));

    // With exit_on_stdin_eof, `-` is refused (both want standard input).
    let out = Command::new(EXE)
        .args(["agent", "--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--key-file", "-"])
        .env("VIGIL_EXIT_ON_STDIN_EOF", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("exit_on_stdin_eof"), "{err}");
}

#[test]
fn sighup_adds_a_changed_key_files_key_on_this_member_only_and_removes_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = support::cluster(&dir.path().join("agents"));
    let n1 = c.add_agent("n1", &[]).unwrap();
    // n2 has a key file of its own (the same key).
    let original = std::fs::read_to_string(c.key_file().unwrap()).unwrap();
    let own = secret(&dir.path().join("n2.key"), &original);
    let mut spec = c.new_spec("n2").unwrap();
    spec.join = vec![c.gossip(n1)];
    spec.key_file = Some(own.clone());
    let n2 = c.add(spec).unwrap();
    converged(&mut c);
    let events = c.events().cursor();
    let before = fingerprints(&c, n2);
    assert_eq!(before.len(), 1);

    // The operator replaces the key in n2's file, and sends SIGHUP.
    let new = Key::generate();
    secret(&own, &format!("{}\n", new.to_base64()));
    c.signal(n2, Signal::SIGHUP).unwrap();
    wait_until("n2 adds the new key", Duration::from_secs(10), || fingerprints(&c, n2).len() == 2);
    assert_eq!(fingerprints(&c, n2), vec![before[0].clone(), new.fingerprint()], "the primary is kept");
    assert_eq!(fingerprints(&c, n1), before, "on this member only");
    let log = c.log_tail(n2, 200);
    assert!(log.contains("1 key(s) added") && log.contains(&new.fingerprint()), "{log}");
    // A second SIGHUP with the same file changes nothing.
    c.signal(n2, Signal::SIGHUP).unwrap();
    wait_until("the second reload is logged", Duration::from_secs(5), || {
        c.log_tail(n2, 200).matches("SIGHUP: reloading the configuration").count() == 2
    });
    assert_eq!(fingerprints(&c, n2).len(), 2);
    assert_eq!(c.log_tail(n2, 200).matches("key(s) added").count(), 1);

    // Still one cluster: the two keep hearing each other, nobody failed.
    converged(&mut c);
    let seen = events.wait_for(Duration::from_millis(500), |_| false).unwrap_or_else(|seen| seen);
    assert!(seen.iter().all(|s| s.kind != "failed" && s.kind != "left"), "{seen:?}");
}
