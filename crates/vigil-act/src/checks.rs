//! Health checks: is the member up *and* is its service working?
//!
//! A check runs every `interval` with a `timeout`: a script (exit 0 ok, 1
//! degraded, anything else failing), an HTTP or HTTPS GET (2xx ok, anything
//! else failing; through [`crate::http`]), or a TCP connect. A check's status changes only after
//! `threshold` consecutive results agree. The worst check sets the member's
//! health, which travels with its heartbeats: a failing member stays alive,
//! but drops out of healthy sets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use vigil::{Health, HealthStatus, Vigil};

use crate::http::{HttpClient, validate_url};

/// What a check does.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckKind {
    /// `sh -c COMMAND`: exit 0 ok, 1 degraded, anything else (or a timeout) failing.
    Script(String),
    /// `GET` of an `http://` or `https://` URL: 2xx ok, anything else failing.
    Http(String),
    /// A TCP connect to `host:port`.
    Tcp(String),
}

/// One configured check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Name, shown in the health reason.
    pub name: String,
    /// What it does.
    pub kind: CheckKind,
    /// Time between runs.
    pub interval: Duration,
    /// Longest a run may take.
    pub timeout: Duration,
    /// Consecutive agreeing results before the status changes.
    pub threshold: u32,
    /// HTTP checks: PEM certificates trusted for `https://` instead of the
    /// bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// The result of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Status.
    pub status: HealthStatus,
    /// Why, in a few words.
    pub detail: String,
}

impl Outcome {
    fn new(status: HealthStatus, detail: impl Into<String>) -> Self {
        Outcome { status, detail: detail.into() }
    }
}

/// Runs a check once.
pub async fn run_once(check: &Check) -> Outcome {
    Runner::new(check.clone()).run().await
}

/// A check with what it needs between runs (its HTTP client).
struct Runner {
    check: Check,
    http: Result<HttpClient, String>,
}

impl Runner {
    fn new(check: Check) -> Self {
        let http = match check.kind {
            CheckKind::Http(_) => HttpClient::new(check.timeout, check.ca_file.as_deref()),
            _ => Err("not an HTTP check".into()),
        };
        Runner { check, http }
    }

    async fn run(&self) -> Outcome {
        match tokio::time::timeout(self.check.timeout, probe(&self.check.kind, &self.http)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                Outcome::new(HealthStatus::Failing, format!("timed out after {:?}", self.check.timeout))
            }
        }
    }
}

async fn probe(kind: &CheckKind, http: &Result<HttpClient, String>) -> Outcome {
    match kind {
        CheckKind::Script(cmd) => {
            let child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .kill_on_drop(true)
                .spawn();
            let status = match child {
                Ok(mut child) => {
                    // Killed with its children if the check times out.
                    let guard = crate::proc::GroupGuard::new(child.id());
                    let status = child.wait().await;
                    guard.disarm();
                    status
                }
                Err(e) => Err(e),
            };
            match status.map(|s| s.code()) {
                Ok(Some(0)) => Outcome::new(HealthStatus::Ok, "exit 0"),
                Ok(Some(1)) => Outcome::new(HealthStatus::Degraded, "exit 1"),
                Ok(Some(c)) => Outcome::new(HealthStatus::Failing, format!("exit {c}")),
                Ok(None) => Outcome::new(HealthStatus::Failing, "killed by a signal"),
                Err(e) => Outcome::new(HealthStatus::Failing, format!("cannot run: {e}")),
            }
        }
        CheckKind::Tcp(addr) => match TcpStream::connect(addr.as_str()).await {
            Ok(_) => Outcome::new(HealthStatus::Ok, "connected"),
            Err(e) => Outcome::new(HealthStatus::Failing, format!("connect: {e}")),
        },
        CheckKind::Http(url) => {
            let code = match http {
                Ok(client) => client.get(url).await,
                Err(e) => Err(e.clone()),
            };
            match code {
                Ok(code) if (200..300).contains(&code) => {
                    Outcome::new(HealthStatus::Ok, format!("HTTP {code}"))
                }
                Ok(code) => Outcome::new(HealthStatus::Failing, format!("HTTP {code}")),
                Err(e) => Outcome::new(HealthStatus::Failing, e),
            }
        }
    }
}

/// A check's status with its consecutive-results threshold applied.
#[derive(Debug, Clone)]
pub struct Debounced {
    current: Outcome,
    candidate: Option<(HealthStatus, u32)>,
    threshold: u32,
}

impl Debounced {
    /// Starts at ok.
    pub fn new(threshold: u32) -> Self {
        Debounced {
            current: Outcome::new(HealthStatus::Ok, "not run yet"),
            candidate: None,
            threshold: threshold.max(1),
        }
    }

    /// Feeds one result; returns true when the status changed.
    pub fn feed(&mut self, outcome: Outcome) -> bool {
        if outcome.status == self.current.status {
            self.current.detail = outcome.detail;
            self.candidate = None;
            return false;
        }
        let count = match self.candidate {
            Some((s, n)) if s == outcome.status => n + 1,
            _ => 1,
        };
        if count >= self.threshold {
            self.current = outcome;
            self.candidate = None;
            true
        } else {
            self.candidate = Some((outcome.status, count));
            false
        }
    }

    /// The status in force.
    pub fn current(&self) -> &Outcome {
        &self.current
    }
}

/// The member's health from all checks: the worst status, with the failing
/// checks named in the reason (cut to 128 bytes).
pub fn combine(results: &BTreeMap<String, Outcome>) -> Health {
    let worst = results.values().map(|o| o.status).max().unwrap_or(HealthStatus::Ok);
    let mut reason = String::new();
    if worst != HealthStatus::Ok {
        for (name, o) in results.iter().filter(|(_, o)| o.status == worst) {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(&format!("{name}: {}", o.detail));
        }
    }
    let mut cut = reason.len().min(vigil_proto::MAX_REASON_LEN);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    reason.truncate(cut);
    Health::new(worst, &reason).unwrap_or_default()
}

/// Each check's status in force (its threshold applied), by check name, as
/// [`spawn_reporting`] keeps it.
pub type CheckStatuses = Arc<std::sync::Mutex<BTreeMap<String, HealthStatus>>>;

/// Runs every check in the background and publishes the combined health to
/// `vigil` whenever it changes. Drop the returned handle (or abort it) to stop.
pub fn spawn(vigil: Arc<Vigil>, checks: Vec<Check>) -> tokio::task::JoinHandle<()> {
    spawn_reporting(vigil, checks, CheckStatuses::default())
}

/// [`spawn`], keeping each check's status in force in `statuses` (replaced
/// at the start: every check at `ok` until its results say otherwise).
pub fn spawn_reporting(
    vigil: Arc<Vigil>,
    checks: Vec<Check>,
    statuses: CheckStatuses,
) -> tokio::task::JoinHandle<()> {
    let report = move |results: &BTreeMap<String, Outcome>| {
        if let Ok(mut s) = statuses.lock() {
            *s = results.iter().map(|(k, o)| (k.clone(), o.status)).collect();
        }
    };
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<(String, Outcome)>(64);
        let mut runners = tokio::task::JoinSet::new();
        let mut results = BTreeMap::new();
        let mut debounced = BTreeMap::new();
        for check in checks {
            results.insert(check.name.clone(), Outcome::new(HealthStatus::Ok, "not run yet"));
            debounced.insert(check.name.clone(), Debounced::new(check.threshold));
            let tx = tx.clone();
            let runner = Runner::new(check);
            runners.spawn(async move {
                let mut tick = tokio::time::interval(runner.check.interval);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let outcome = runner.run().await;
                    if tx.send((runner.check.name.clone(), outcome)).await.is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        report(&results);
        let mut published = Health::ok();
        while let Some((name, outcome)) = rx.recv().await {
            let Some(d) = debounced.get_mut(&name) else { continue };
            if d.feed(outcome) {
                tracing::info!(check = %name, status = d.current().status.as_str(), detail = %d.current().detail, "health check changed");
            }
            results.insert(name, d.current().clone());
            report(&results);
            let health = combine(&results);
            if health != published {
                published = health.clone();
                if vigil.set_health(health).await.is_err() {
                    return;
                }
            }
        }
    })
}

/// Checks a check's target, for configuration validation.
pub fn validate(kind: &CheckKind) -> Result<(), String> {
    match kind {
        CheckKind::Script(cmd) if cmd.trim().is_empty() => Err("empty script".into()),
        CheckKind::Http(url) => validate_url(url),
        CheckKind::Tcp(addr) if addr.parse::<SocketAddr>().is_err() && !addr.contains(':') => {
            Err(format!("{addr}: expected host:port"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: CheckKind) -> Check {
        Check {
            name: "c".into(),
            kind,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            threshold: 1,
            ca_file: None,
        }
    }

    #[tokio::test]
    async fn script_exit_codes_map_to_statuses() {
        assert_eq!(run_once(&check(CheckKind::Script("exit 0".into()))).await.status, HealthStatus::Ok);
        assert_eq!(run_once(&check(CheckKind::Script("exit 1".into()))).await.status, HealthStatus::Degraded);
        assert_eq!(run_once(&check(CheckKind::Script("exit 7".into()))).await.status, HealthStatus::Failing);
        let mut slow = check(CheckKind::Script("sleep 5".into()));
        slow.timeout = Duration::from_millis(100);
        let o = run_once(&slow).await;
        assert_eq!(o.status, HealthStatus::Failing);
        assert!(o.detail.contains("timed out"), "{o:?}");
    }

    #[tokio::test]
    async fn tcp_checks_connect() {
        // HTTP and HTTPS checks are tested against a local server in tests/http.rs.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(run_once(&check(CheckKind::Tcp(open.to_string()))).await.status, HealthStatus::Ok);
        // A port held by a socket that does not listen: refused, and no one else can take it.
        let held = tokio::net::TcpSocket::new_v4().unwrap();
        held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed = held.local_addr().unwrap();
        assert_eq!(run_once(&check(CheckKind::Tcp(closed.to_string()))).await.status, HealthStatus::Failing);
    }

    #[test]
    fn status_changes_only_after_consecutive_agreeing_results() {
        let mut d = Debounced::new(3);
        let fail = || Outcome::new(HealthStatus::Failing, "x");
        assert!(!d.feed(fail()));
        assert!(!d.feed(fail()));
        assert!(!d.feed(Outcome::new(HealthStatus::Ok, "ok")), "an ok in between resets the count");
        assert!(!d.feed(fail()) && !d.feed(fail()));
        assert!(d.feed(fail()));
        assert_eq!(d.current().status, HealthStatus::Failing);
    }

    #[test]
    fn the_worst_check_sets_the_health_and_is_named() {
        let mut r = BTreeMap::new();
        r.insert("disk".to_string(), Outcome::new(HealthStatus::Degraded, "91% full"));
        r.insert("http".to_string(), Outcome::new(HealthStatus::Ok, "HTTP 200"));
        let h = combine(&r);
        assert_eq!((h.status(), h.reason()), (HealthStatus::Degraded, "disk: 91% full"));
        r.insert("db".to_string(), Outcome::new(HealthStatus::Failing, "x".repeat(300)));
        let h = combine(&r);
        assert_eq!(h.status(), HealthStatus::Failing);
        assert!(h.reason().starts_with("db: ") && h.reason().len() == 128);
        assert!(validate(&CheckKind::Http("https://x/p".into())).is_ok(), "HTTPS is supported");
        assert!(validate(&CheckKind::Http("ftp://x".into())).is_err());
    }
}
