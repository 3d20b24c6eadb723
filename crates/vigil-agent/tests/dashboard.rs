//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) against three real agents. It shows the three members
//! alive, then — without a reload — the one that was killed as failed, and
//! saves a screenshot.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` and
//! `scripts/test.sh` install them). Without them the test says so and skips,
//! except under CI (`CI` set), where it fails.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::wait_until;

struct Driver {
    child: Child,
    base: String,
    session: Option<String>,
    agent: ureq::Agent,
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = self.agent.delete(&format!("{}/session/{s}", self.base)).call();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a port it picks itself (`--port=0`) and reads
    /// the port from the line it prints: no port is chosen here and reused.
    fn start(chromedriver: &str) -> Driver {
        let mut child = Command::new(chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        // Read its output in a thread (so that it never blocks on a full
        // pipe); the port arrives on a channel, waited for with a bound.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let port = line.split("started successfully on port ").nth(1);
                if let Some(p) = port.and_then(|p| p.trim().trim_end_matches('.').parse().ok()) {
                    let _ = tx.send(p);
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(20)).ok();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let Some(port): Option<u16> = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromedriver did not say which port it listens on");
        };
        let d = Driver { child, base: format!("http://127.0.0.1:{port}"), session: None, agent };
        wait_until("chromedriver answers", Duration::from_secs(20), || {
            d.agent.get(&format!("{}/status", d.base)).call().is_ok()
        });
        d
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let mut r =
            self.agent.post(&format!("{}{path}", self.base)).send_json(&body).expect("webdriver call");
        let v: Value = r.body_mut().read_json().expect("webdriver json");
        assert!(v["value"].get("error").is_none(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    fn open(&mut self, profile: &std::path::Path) {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--no-first-run", "--window-size=1440,900", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = self.post("/session", caps);
        self.session = Some(v["sessionId"].as_str().expect("a session id").to_string());
    }

    fn s(&self) -> String {
        format!("/session/{}", self.session.as_deref().unwrap())
    }

    fn goto(&self, url: &str) {
        self.post(&format!("{}/url", self.s()), json!({"url": url}));
    }

    fn eval(&self, script: &str) -> Value {
        self.post(&format!("{}/execute/sync", self.s()), json!({"script": script, "args": []}))
    }

    fn screenshot(&self, path: &std::path::Path) {
        let mut r = self.agent.get(&format!("{}{}/screenshot", self.base, self.s())).call().unwrap();
        let v: Value = r.body_mut().read_json().unwrap();
        let png = base64_decode(v["value"].as_str().unwrap());
        std::fs::write(path, png).unwrap();
    }

    /// Rows of the members table: (name, state label).
    fn rows(&self) -> Vec<(String, String)> {
        let v = self.eval(
            "return [...document.querySelectorAll('#rows tr')].map(r => [r.dataset.name, r.children[2].textContent.trim()]);",
        );
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| (r[0].as_str().unwrap_or("").to_string(), r[1].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).expect("base64 screenshot")
}

fn which(cmd: &str) -> Option<String> {
    ["/usr/bin/", "/usr/local/bin/", "/usr/lib/chromium/"]
        .iter()
        .map(|d| format!("{d}{cmd}"))
        .find(|p| std::path::Path::new(p).exists())
}

#[test]
fn dashboard_shows_members_live_and_a_failure_without_reload() {
    let (Some(driver), Some(_)) = (which("chromedriver"), which("chromium")) else {
        assert!(std::env::var_os("CI").is_none(), "CI must have chromium and chromium-driver installed");
        eprintln!(
            "SKIPPED: chromium / chromium-driver are not installed (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = support::cluster(dir.path());
    let first = cluster.add_agent("web-1", &[]).unwrap();
    cluster.add_agent("web-2", &[first]).unwrap();
    let victim = cluster.add_agent("db-1", &[first]).unwrap();
    cluster.wait_converged(Duration::from_secs(30)).expect("3 agents converge");

    let mut d = Driver::start(&driver);
    d.open(&dir.path().join("chrome-profile"));
    d.goto(&cluster.url(first));
    wait_until("the page shows 3 members alive", Duration::from_secs(20), || {
        let rows = d.rows();
        rows.len() == 3 && rows.iter().all(|(_, s)| s == "alive")
    });
    let before = d.eval("return performance.timeOrigin;");

    cluster.kill(victim);
    wait_until("the page shows db-1 failed", Duration::from_secs(30), || {
        d.rows().iter().any(|(n, s)| n == "db-1" && s == "failed")
    });
    assert_eq!(d.eval("return performance.timeOrigin;"), before, "the page was not reloaded");
    let timeline = d.eval("return document.getElementById('timeline').textContent;");
    assert!(timeline.as_str().unwrap_or("").contains("failed"), "the timeline shows the failure: {timeline}");

    let shot = std::env::var_os("VIGIL_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"));
    d.screenshot(&shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a real screenshot");
    eprintln!("screenshot: {}", shot.display());
}
