//! Issue 14's attacks on the HTTP side, against real agents on loopback
//! (docs/SECURITY.md names each test): a web page that posts a form to the
//! API, a DNS-rebinding page, a flood of event subscribers, a flood of
//! idle connections; and the start-time refusals (bad key file, data
//! directory, name taken). Raw sockets, so that every header is the
//! attacker's choice. Every agent is killed when its cluster drops.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use support::{EXE, wait_until};
use vigil_agent::harness::Cluster;

/// One agent, plus `args`.
fn one_agent(dir: &std::path::Path, args: &[&str]) -> Cluster {
    let mut c = support::cluster(dir);
    let mut spec = c.new_spec("a1").unwrap();
    spec.args = args.iter().map(Into::into).collect();
    c.add(spec).unwrap();
    c
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body`; returns the status and the body.
fn raw(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    status_and_body(&out)
}

fn status_and_body(resp: &str) -> (u16, String) {
    let status = resp.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    v["error"].as_str().unwrap_or_else(|| panic!("no `error` in {v}")).to_string()
}

/// Open descriptors of process `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// Resident memory of process `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Lets this test process hold a few thousand sockets.
fn raise_own_fd_limit(want: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard).unwrap();
    }
}

#[test]
fn a_cross_site_form_post_to_leave_is_refused_and_the_agent_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = one_agent(dir.path(), &[]);
    let http = c.http(0);
    let host = format!("Host: {http}");

    // What a page of another site can send without the browser asking the
    // API first (a "simple" request): a form post.
    let (status, body) = raw(
        http,
        &format!(
            "POST /v1/leave HTTP/1.1\r\n{host}\r\nOrigin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\n\
             Content-Type: application/x-www-form-urlencoded"
        ),
        "x=1",
    );
    assert_eq!(status, 403, "{body}");
    assert!(error_of(&body).contains("evil.example"), "{body}");
    // The same without Origin (older browsers, curl): no JSON, no action.
    let (status, body) =
        raw(http, &format!("POST /v1/leave HTTP/1.1\r\n{host}\r\nContent-Type: text/plain"), "{}");
    assert_eq!(status, 415, "{body}");
    assert!(error_of(&body).contains("-H 'Content-Type: application/json'"), "{body}");
    let (status, body) = raw(http, &format!("POST /v1/leave HTTP/1.1\r\n{host}"), "");
    assert_eq!(status, 415, "no content type at all: {body}");
    // A wrong method says so in JSON.
    let (status, body) = raw(http, &format!("GET /v1/leave HTTP/1.1\r\n{host}"), "");
    assert_eq!(status, 405, "{body}");
    assert!(error_of(&body).contains("GET is not a method of /v1/leave"), "{body}");

    assert!(c.is_running(0), "the agent stays");
    assert_eq!(raw(http, &format!("GET /healthz HTTP/1.1\r\n{host}"), "").0, 200);
    // The API's own page, and the CLI (JSON), still change the agent.
    let (status, body) = raw(
        http,
        &format!(
            "PUT /v1/self/health HTTP/1.1\r\n{host}\r\nOrigin: http://{http}\r\nContent-Type: application/json; charset=utf-8"
        ),
        r#"{"status":"degraded","reason":"test"}"#,
    );
    assert_eq!(status, 200, "{body}");
    vigil_agent::client::send("POST", &c.url(0), "/v1/leave", &serde_json::json!({})).unwrap();
    let exit = c.wait_exit(0, Duration::from_secs(10)).unwrap();
    assert!(exit.success(), "{exit}");
}

#[test]
fn a_foreign_host_is_refused_so_a_dns_rebinding_page_cannot_read_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let c = one_agent(dir.path(), &["--http-allowed-hosts", "vigil.internal"]);
    let http = c.http(0);
    let port = http.port();
    // The rebinding page's name now resolves to 127.0.0.1; the browser sends it.
    for host in [format!("rebind.evil.example:{port}"), "localhost.evil.example".into()] {
        let (status, body) = raw(http, &format!("GET /v1/members HTTP/1.1\r\nHost: {host}"), "");
        assert_eq!(status, 403, "{host}: {body}");
        assert!(error_of(&body).contains("http_allowed_hosts"), "{body}");
    }
    for host in [http.to_string(), format!("localhost:{port}"), format!("VIGIL.internal:{port}")] {
        let (status, body) = raw(http, &format!("GET /v1/members HTTP/1.1\r\nHost: {host}"), "");
        assert_eq!(status, 200, "{host}: {body}");
    }
}

#[test]
fn event_subscribers_beyond_the_cap_are_refused_and_memory_stays_bounded() {
    raise_own_fd_limit(4096);
    let dir = tempfile::tempdir().unwrap();
    let mut c = one_agent(dir.path(), &["--http-max-subscribers", "64"]);
    let (http, pid) = (c.http(0), c.pid(0).unwrap());
    let before = rss_kib(pid);
    let request = format!("GET /v1/events?after=0 HTTP/1.1\r\nHost: {http}\r\n\r\n");
    let mut held = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..1000 {
        let Ok(mut s) = TcpStream::connect(http) else {
            refused += 1;
            continue;
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if s.write_all(request.as_bytes()).is_err() {
            refused += 1;
            continue;
        }
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        match status_and_body(&String::from_utf8_lossy(&buf[..n])).0 {
            200 => ok += 1,
            _ => refused += 1, // 503 (subscribers or connections), or closed
        }
        held.push(s); // every subscriber stays connected
    }
    assert_eq!(ok, 64, "exactly http_max_subscribers are served");
    assert_eq!(refused, 1000 - 64);
    let grown_mib = rss_kib(pid).saturating_sub(before) / 1024;
    // 64 subscribers (a receiver and a few events each) and at most 512
    // connections (hyper's read buffer, 8 KiB to start, each): a few MiB.
    assert!(grown_mib < 32, "RSS grew by {grown_mib} MiB with 1000 subscribers tried");
    // Their places come back when they leave.
    drop(held);
    wait_until("a new subscriber is served once the others left", Duration::from_secs(30), || {
        let Ok(mut s) = TcpStream::connect(http) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(request.as_bytes());
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        status_and_body(&String::from_utf8_lossy(&buf[..n])).0 == 200
    });
    assert!(c.is_running(0));
}

#[test]
fn idle_connections_beyond_the_cap_are_refused_closed_and_descriptors_stay_bounded() {
    raise_own_fd_limit(4096);
    let dir = tempfile::tempdir().unwrap();
    let mut c = one_agent(dir.path(), &["--http-max-connections", "256", "--http-idle-timeout", "1s"]);
    let (http, pid) = (c.http(0), c.pid(0).unwrap());
    let base = fds(pid);
    let mut idle = Vec::new();
    for _ in 0..2000 {
        if let Ok(s) = TcpStream::connect(http) {
            idle.push(s);
        }
    }
    let peak = fds(pid);
    assert!(peak <= base + 256 + 8, "{peak} descriptors open ({base} before 2000 idle connections)");
    // Those beyond the cap were answered 503 and closed at once (a slot
    // freed by the idle timeout meanwhile takes one more, and a slow machine
    // connects for seconds: hence no exact count).
    std::thread::sleep(Duration::from_millis(200));
    let mut busy = 0;
    let mut sample = String::new();
    for s in &mut idle {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = s.read(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if status_and_body(&text).0 == 503 {
                busy += 1;
                sample = text;
            }
        }
    }
    assert!(busy > 0, "none of 2000 was answered 503");
    assert!(error_of(&status_and_body(&sample).1).contains("http_max_connections"), "{sample}");
    // The idle ones are closed after http_idle_timeout: the API answers again.
    wait_until("the idle connections are closed", Duration::from_secs(10), || fds(pid) <= base + 4);
    let (status, _) = raw(http, &format!("GET /healthz HTTP/1.1\r\nHost: {http}"), "");
    assert_eq!(status, 200);
    let mut first = idle.swap_remove(0);
    first.set_nonblocking(false).unwrap();
    first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(first.read(&mut [0u8; 16]).unwrap_or(0), 0, "an idle connection was closed by the agent");
    drop(idle);
    // Descriptors were left for the rest: the snapshot is written at exit.
    let snapshot = c.spec(0).data_dir.join("members.json");
    let _ = std::fs::remove_file(&snapshot);
    c.terminate(0, Duration::from_secs(10)).unwrap();
    assert!(snapshot.exists(), "the snapshot is written: {}", c.log_tail(0, 10));
}

/// A request whose body trickles (or never comes) holds its connection for
/// at most `http_idle_timeout` and gets a 408; a body over the limit gets a
/// 413 without being read whole; both are counted by reason in
/// `vigil_http_refused_total`, and the API answers meanwhile.
#[test]
fn a_slow_or_oversized_request_body_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = one_agent(dir.path(), &["--http-idle-timeout", "1s"]);
    let http = c.http(0);
    let host = format!("Host: {http}");

    // Headers announce 100 bytes; one arrives, then nothing (the socket stays open).
    let mut slow = TcpStream::connect(http).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "PUT /v1/self/health HTTP/1.1\r\n{host}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    slow.write_all(head.as_bytes()).unwrap();
    assert_eq!(
        raw(http, &format!("GET /healthz HTTP/1.1\r\n{host}"), "").0,
        200,
        "the API answers meanwhile"
    );
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    let (status, body) = status_and_body(&String::from_utf8_lossy(&out));
    assert_eq!(status, 408, "{body}");
    assert!(error_of(&body).contains("http_idle_timeout"), "{body}");

    let big = format!("{{\"status\":\"ok\",\"reason\":\"{}\"}}", "x".repeat(vigil_agent::server::MAX_BODY));
    let (status, body) =
        raw(http, &format!("PUT /v1/self/health HTTP/1.1\r\n{host}\r\nContent-Type: application/json"), &big);
    assert_eq!(status, 413, "{body}");

    let (status, metrics) = raw(http, &format!("GET /metrics HTTP/1.1\r\n{host}"), "");
    assert_eq!(status, 200);
    for line in [
        "vigil_http_refused_total{reason=\"slow_body\"} 1",
        "vigil_http_refused_total{reason=\"large_body\"} 1",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
    assert!(c.is_running(0));
}

fn agent_exit(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(EXE)
        .arg("agent")
        .args(["--bind", "127.0.0.1:0", "--http", "127.0.0.1:0", "--preset", "local"])
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_names_key_files_and_data_dirs_stop_the_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = agent_exit(&["--name", "evil\n\u{1b}[31mname", "--insecure-plaintext"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`name`") && err.contains("unprintable"), "{err}");
    assert!(!err.contains('\u{1b}'), "the refused name is not printed raw: {err:?}");
    let (code, err) = agent_exit(&["--name", &"n".repeat(129), "--insecure-plaintext"]);
    assert_eq!(code, Some(2), "{err}");

    let key = dir.path().join("cluster.key");
    std::fs::write(&key, "not a key\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (code, err) = agent_exit(&["--name", "a", "--key-file", key.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("key file"), "{err}");

    // A file where the directory should be: it can be neither created nor written.
    let not_dir = dir.path().join("file");
    std::fs::write(&not_dir, "").unwrap();
    let data_dir = not_dir.join("data");
    let (code, err) =
        agent_exit(&["--name", "a", "--insecure-plaintext", "--data-dir", data_dir.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`data_dir`"), "{err}");
}

#[test]
fn a_second_agent_with_a_live_members_name_exits_3_naming_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = support::cluster(dir.path());
    c.add_agent("twin", &[]).unwrap();
    let mut spec = c.new_spec("twin").unwrap();
    spec.data_dir = dir.path().join("twin-2");
    spec.log = dir.path().join("twin-2.log");
    spec.join = vec![c.gossip(0)];
    let second = c.add(spec).unwrap();
    let exit = c.wait_exit(second, Duration::from_secs(20)).expect("the second twin exits");
    assert_eq!(exit.code(), Some(vigil_agent::agent::EXIT_NAME_TAKEN.into()), "{}", c.log_tail(second, 20));
    let log = std::fs::read_to_string(c.log_path(second)).unwrap();
    assert!(log.contains("is taken") && log.contains(&c.gossip(0).to_string()), "{log}");
    assert!(c.is_running(0), "the live member keeps its name");
}
