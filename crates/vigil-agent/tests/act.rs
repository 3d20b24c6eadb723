//! Acting on failure with real agent processes on 127.0.0.1: failover groups
//! (kill, partition and heal), health checks taking a member out of the
//! healthy feed, and event handlers (webhook order, a hung script).
//!
//! Every agent is a child of this test process, killed when its cluster
//! guard drops (panics included). Every wait is bounded and waits for the
//! event that proves its point (a script run, an event every agent printed),
//! never a fixed time.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{EXE, converged, observers, try_wait_until, wait_until};
use vigil_agent::client;
use vigil_agent::harness::{Cluster, Seen};

/// Starts an agent with extra environment (its metadata, config file, ...).
fn add(c: &mut Cluster, name: &str, join: Option<usize>, env: &[(&str, String)]) -> usize {
    let mut spec = c.new_spec(name).unwrap();
    spec.join = join.map(|j| c.gossip(j)).into_iter().collect();
    spec.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    c.add(spec).unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

/// A failover config whose scripts append one line per run to NAME.promote /
/// NAME.demote in `dir`.
fn failover_config(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            "[failover]\nhold = \"1s\"\ntimeout = \"5s\"\n\
             on_promote = \"echo \\\"$VIGIL_GROUP $VIGIL_ROLE\\\" >> {d}/{name}.promote\"\n\
             on_demote = \"echo \\\"$VIGIL_GROUP $VIGIL_ROLE $VIGIL_REASON\\\" >> {d}/{name}.demote\"\n"
        ),
    )
    .unwrap();
    path
}

fn failover_env(dir: &Path, name: &str, priority: u32) -> Vec<(&'static str, String)> {
    vec![
        ("VIGIL_META", format!("group=db,priority={priority}")),
        ("VIGIL_CONFIG", failover_config(dir, name).display().to_string()),
        ("VIGIL_FAULTS_FILE", dir.join(format!("{name}.faults")).display().to_string()),
    ]
}

fn promotes(dir: &Path, name: &str) -> usize {
    lines(&dir.join(format!("{name}.promote"))).len()
}

fn demotes(dir: &Path, name: &str) -> usize {
    lines(&dir.join(format!("{name}.demote"))).len()
}

/// `(active by its view, its own role)` from an agent's `/v1/groups`.
fn group_view(c: &Cluster, i: usize) -> Option<(Option<String>, String)> {
    let v = client::get(&c.url(i), "/v1/groups").ok()?;
    let g = v.as_array()?.iter().find(|g| g["group"] == "db")?;
    Some((g["active"].as_str().map(str::to_string), g["local_role"].as_str()?.to_string()))
}

#[test]
fn killing_the_active_member_promotes_the_standby_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = support::cluster(&d.join("agents"));
    let db1 = add(&mut c, "db1", None, &failover_env(d, "db1", 300));
    add(&mut c, "db2", Some(db1), &failover_env(d, "db2", 200));
    add(&mut c, "db3", Some(db1), &failover_env(d, "db3", 100));
    converged(&mut c);
    wait_until("db1 promotes", Duration::from_secs(10), || promotes(d, "db1") == 1);
    assert_eq!(lines(&d.join("db1.promote")), vec!["db active"], "VIGIL_GROUP and VIGIL_ROLE are set");
    wait_until("every agent agrees db1 is active", Duration::from_secs(5), || {
        (0..3).all(|i| group_view(&c, i).is_some_and(|(a, _)| a.as_deref() == Some("db1")))
    });
    assert_eq!(group_view(&c, 1).unwrap().1, "standby");
    let groups = client::get(&c.url(1), "/v1/groups").unwrap();
    assert_eq!(groups[0]["standbys"], serde_json::json!(["db2", "db3"]), "{groups}");
    assert_eq!((groups[0]["known"].as_u64(), groups[0]["alive"].as_u64()), (Some(3), Some(3)), "{groups}");

    let events = c.events().cursor();
    let killed = Instant::now();
    c.kill(db1);
    // Detection (suspicion timeout of the local preset) plus the 1 s hold.
    wait_until("db2 promotes after db1 is killed", Duration::from_secs(15), || promotes(d, "db2") >= 1);
    let took = killed.elapsed();
    assert_eq!(group_view(&c, 1).unwrap(), (Some("db2".to_string()), "active".to_string()));
    // The transition is over once both survivors have declared db1 failed
    // and db3 too sees db2 as the active member: nothing is left that could
    // move a role again.
    let failed = events.wait_for(Duration::from_secs(15), |s| observers(s, "failed", "db1").len() == 2);
    assert!(failed.is_ok(), "db2 and db3 declare db1 failed: {failed:?}");
    wait_until("db3 sees db2 active", Duration::from_secs(5), || {
        group_view(&c, 2).is_some_and(|(a, r)| a.as_deref() == Some("db2") && r == "standby")
    });
    assert_eq!(promotes(d, "db2"), 1, "exactly once");
    assert_eq!((promotes(d, "db3"), demotes(d, "db2")), (0, 0), "no one else moves");
    eprintln!("db2 promoted {took:?} after db1 was killed");

    // A graceful stop of the active member runs on_demote before it leaves.
    assert!(c.stop(1, Duration::from_secs(10)).is_ok_and(|s| s.success()), "db2 exits 0");
    assert_eq!(lines(&d.join("db2.demote")), vec!["db standby shutdown"]);
}

fn set_partition(d: &Path, c: &Cluster, sides: &[&[usize]]) {
    for side in sides {
        for &i in *side {
            let blocked: Vec<String> = (0..c.len())
                .filter(|j| !side.contains(j))
                .map(|j| format!("block={}", c.gossip(j)))
                .collect();
            std::fs::write(d.join(format!("{}.faults", c.name(i))), blocked.join(",")).unwrap();
        }
    }
}

#[test]
fn a_partitioned_group_promotes_only_on_its_majority_side_and_heals_to_one_active() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = support::cluster(&d.join("agents"));
    let p1 = add(&mut c, "p1", None, &failover_env(d, "p1", 500));
    for (n, prio) in [("p2", 400), ("p3", 300), ("p4", 200), ("p5", 100)] {
        add(&mut c, n, Some(p1), &failover_env(d, n, prio));
    }
    converged(&mut c);
    wait_until("p1 promotes", Duration::from_secs(10), || promotes(d, "p1") == 1);

    // p1 (active) and p2 on one side, p3 p4 p5 on the other.
    let events = c.events().cursor();
    set_partition(d, &c, &[&[0, 1], &[2, 3, 4]]);
    wait_until("p1 loses its quorum and demotes", Duration::from_secs(15), || demotes(d, "p1") == 1);
    assert!(lines(&d.join("p1.demote"))[0].contains("lost quorum"));
    wait_until("p3 promotes on the majority side", Duration::from_secs(15), || promotes(d, "p3") == 1);
    // The minority side stays passive: once each side has declared every
    // member of the other failed, both hold their final view of the
    // partition, in which p1 and p2 have no quorum.
    let declared = |s: &[Seen], by: &[&str], about: &[&str]| {
        about.iter().all(|m| {
            let o = observers(s, "failed", m);
            by.iter().all(|b| o.iter().any(|x| x == b))
        })
    };
    let split = events.wait_for(Duration::from_secs(20), |s| {
        declared(s, &["p1", "p2"], &["p3", "p4", "p5"]) && declared(s, &["p3", "p4", "p5"], &["p1", "p2"])
    });
    assert!(split.is_ok(), "each side declares the other failed: {split:?}");
    assert_eq!((promotes(d, "p1"), promotes(d, "p2")), (1, 0), "the minority side never promotes");
    assert_eq!((promotes(d, "p3"), promotes(d, "p4"), promotes(d, "p5")), (1, 0, 0));
    let minority = client::get(&c.url(1), "/v1/groups").unwrap();
    assert_eq!(minority[0]["alive"], 2, "p2 sees only its side: {minority}");

    // Heal: every agent sees every other alive again; then exactly one active.
    set_partition(d, &c, &[&[0, 1, 2, 3, 4]]);
    converged(&mut c);
    let roles = || -> Vec<String> { (0..5).filter_map(|i| group_view(&c, i).map(|(_, r)| r)).collect() };
    wait_until("the group settles on p1 alone", Duration::from_secs(15), || {
        roles() == ["active", "standby", "standby", "standby", "standby"]
    });
    // The hand-back is over once both of its scripts have run: p3's demote
    // and p1's second promote. The roles are still the same after them.
    wait_until("p3 hands back and p1 takes over", Duration::from_secs(10), || {
        demotes(d, "p3") >= 1 && promotes(d, "p1") >= 2
    });
    assert_eq!(roles(), ["active", "standby", "standby", "standby", "standby"], "and stays so");
    assert_eq!((promotes(d, "p1"), demotes(d, "p3")), (2, 1), "p3 handed back once");
}

#[test]
fn a_failing_check_takes_a_member_out_of_the_healthy_feed_without_failing_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ok = d.join("w1.ok");
    std::fs::write(&ok, "").unwrap();
    let conf = d.join("w1.toml");
    std::fs::write(
        &conf,
        format!(
            "[[check]]\nname = \"file\"\nscript = \"test -f {} || exit 2\"\ninterval = \"200ms\"\ntimeout = \"1s\"\nthreshold = 2\n",
            ok.display()
        ),
    )
    .unwrap();
    let mut c = support::cluster(&d.join("agents"));
    let w1 = add(
        &mut c,
        "w1",
        None,
        &[("VIGIL_META", "role=web,port=8080".into()), ("VIGIL_CONFIG", conf.display().to_string())],
    );
    add(&mut c, "w2", Some(w1), &[("VIGIL_META", "role=web".into())]);
    add(&mut c, "w3", Some(w1), &[("VIGIL_META", "role=cache".into())]);
    converged(&mut c);
    let mut events = c.events().cursor();

    let w2 = c.url(1);
    let feed = "/v1/members?state=alive&health=ok&meta.role=web&format=text";
    let text = || client::get_text(&w2, feed).unwrap_or_default();
    let w1_line = "127.0.0.1:8080".to_string();
    let w2_line = c.gossip(1).to_string();
    wait_until("w1 and w2 in the feed", Duration::from_secs(5), || {
        text() == format!("{w1_line}\n{w2_line}\n")
    });

    // vigil watch renders the same set through a template.
    let template = d.join("upstream.tmpl");
    std::fs::write(
        &template,
        "upstream web {\n{% for m in members %}  server {{ m.host }}:{{ m.port }};\n{% endfor %}}\n",
    )
    .unwrap();
    let out = d.join("upstream.conf");
    let status = Command::new(EXE)
        .args(["watch", "--http", &w2, "--filter", "role=web", "--once"])
        .arg("--template")
        .arg(&template)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        format!("upstream web {{\n  server {w1_line};\n  server {w2_line};\n}}\n")
    );

    std::fs::remove_file(&ok).unwrap();
    wait_until("w1 leaves the healthy feed", Duration::from_secs(10), || text() == format!("{w2_line}\n"));
    for i in 0..c.len() {
        let m = client::get(&c.url(i), "/v1/members/w1").unwrap();
        assert_eq!(m["state"], "alive", "{} sees w1 alive: {m}", c.name(i));
        if c.name(i) != "w1" {
            wait_until("w1's health reaches everyone", Duration::from_secs(5), || {
                client::get(&c.url(i), "/v1/members/w1").is_ok_and(|m| m["health"]["status"] == "failing")
            });
        }
    }
    let m = client::get(&w2, "/v1/members/w1").unwrap();
    assert!(m["health"]["reason"].as_str().unwrap().starts_with("file: exit 2"), "{m}");

    std::fs::write(&ok, "").unwrap();
    wait_until("w1 comes back into the feed", Duration::from_secs(10), || {
        text() == format!("{w1_line}\n{w2_line}\n")
    });
    let seen = events.drain();
    assert!(seen.iter().any(|s| s.is("updated", "w1")), "health changes are `updated` events");
    assert!(
        !seen.iter().any(|s| s.member == "w1" && s.kind != "updated"),
        "w1 was never suspected or failed: {seen:?}"
    );
}

/// A tiny HTTP server: every POST body, in arrival order, answered 204.
fn webhook_receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_ok() {
                let _ = s.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
                if tx.send(String::from_utf8_lossy(&body).into_owned()).is_err() {
                    return;
                }
            }
        }
    });
    (url, rx)
}

#[test]
fn a_webhook_sees_every_event_once_in_order_and_a_hung_handler_is_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (url, bodies) = webhook_receiver();
    let hang = d.join("hang.log");
    let pids = d.join("hang.pids");
    let conf = d.join("h1.toml");
    std::fs::write(
        &conf,
        format!(
            "[[handler]]\nname = \"hook\"\nwebhook = \"{url}\"\ntimeout = \"2s\"\n\
             [[handler]]\nname = \"hang\"\nkinds = [\"joined\", \"failed\"]\ntimeout = \"500ms\"\n\
             script = \"echo $VIGIL_EVENT $VIGIL_MEMBER >> {}; sleep 100 & echo $! >> {}; wait\"\n",
            hang.display(),
            pids.display()
        ),
    )
    .unwrap();
    let mut c = support::cluster(&d.join("agents"));
    let h1 = add(&mut c, "h1", None, &[("VIGIL_CONFIG", conf.display().to_string())]);
    for n in ["h2", "h3", "h4"] {
        add(&mut c, n, Some(h1), &[]);
    }
    converged(&mut c);
    c.kill(3);

    // h1's own event stream (--events-json) is the reference: every event
    // h1 printed since it started.
    let h1_events = |c: &Cluster| -> Vec<Value> {
        c.events().all().into_iter().filter(|s| s.by == "h1").map(|s| s.event).collect()
    };
    let failed = c
        .events()
        .wait_for(0, Duration::from_secs(15), |s| s.iter().any(|s| s.by == "h1" && s.is("failed", "h4")));
    assert!(failed.is_ok(), "h1 never saw h4 fail: {:?}", h1_events(&c));
    // Events that still arrive reach both the stream and the webhook: wait
    // until the webhook has received exactly what the stream has.
    let mut received: Vec<Value> = Vec::new();
    let mut events = h1_events(&c);
    try_wait_until(Duration::from_secs(10), || {
        while let Ok(b) = bodies.try_recv() {
            received.push(serde_json::from_str(&b).unwrap());
        }
        events = h1_events(&c);
        received == events
    });
    assert_eq!(received, events, "every event exactly once, in order, as the event stream has it");

    // The hung handler is cut off after 500 ms per event, and its next events still run.
    let wanted: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] == "joined" || e["kind"] == "failed")
        .map(|e| format!("{} {}", e["kind"].as_str().unwrap(), e["member"].as_str().unwrap()))
        .collect();
    let kinds: Vec<String> = events.iter().map(|e| format!("{} {}", e["kind"], e["member"])).collect();
    assert!(wanted.len() >= 3, "joins and a failure: {wanted:?} of {kinds:?}");
    wait_until("the hung handler sees its events in turn", Duration::from_secs(10), || {
        lines(&hang) == wanted
    });
    let n = wanted.len();
    wait_until("each hung run is counted as failed", Duration::from_secs(5), || {
        let m = client::get_text(&c.url(h1), "/metrics").unwrap_or_default();
        m.contains(&format!("vigil_handler_runs_total{{handler=\"hang\",result=\"failed\"}} {n}"))
            && m.contains(&format!(
                "vigil_handler_runs_total{{handler=\"hook\",result=\"ok\"}} {}",
                events.len()
            ))
            && m.contains("vigil_handler_dropped_total 0")
    });
    // What the hung script started was killed with it.
    for pid in lines(&pids) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "sleep {pid} outlived its handler: {stat}");
    }
}

/// A `vigil watch` process, killed when this drops (panics included).
struct Watcher(std::process::Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_in_continuous_mode_rerenders_after_a_change_settles_and_not_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = support::cluster(&d.join("agents"));
    let w1 = add(&mut c, "w1", None, &[("VIGIL_META", "role=web".into())]);
    let w2 = add(&mut c, "w2", Some(w1), &[("VIGIL_META", "role=web".into())]);
    converged(&mut c);
    let template = d.join("names.tmpl");
    std::fs::write(&template, "{% for m in members %}{{ m.name }}\n{% endfor %}").unwrap();
    let out = d.join("names");
    let log = d.join("watch.log");
    let writes = || std::fs::read_to_string(&log).unwrap_or_default().matches("wrote the file").count();
    let _watcher = Watcher(
        Command::new(EXE)
            .args(["watch", "--http", &c.url(w1), "--filter", "role=web", "--debounce", "1s"])
            .arg("--template")
            .arg(&template)
            .arg("--out")
            .arg(&out)
            .stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the first rendering", Duration::from_secs(10), || writes() == 1);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "w1\nw2\n");

    // phi, rtt_ms and since_ms change on every poll: no rewrite for them.
    assert!(
        !try_wait_until(Duration::from_secs(4), || writes() > 1),
        "rewritten with no change:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let changed = Instant::now();
    client::send("PUT", &c.url(w2), "/v1/self/meta", &serde_json::json!({"role": "db"})).unwrap();
    // Debounce (1 s) plus one poll (1 s), with room for gossip on a busy machine.
    wait_until("w2 leaves the rendered file", Duration::from_secs(8), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t == "w1\n")
    });
    let took = changed.elapsed();
    assert!(took >= Duration::from_secs(1), "written before the debounce: {took:?}");
    assert_eq!(writes(), 2, "{}", std::fs::read_to_string(&log).unwrap_or_default());
}
