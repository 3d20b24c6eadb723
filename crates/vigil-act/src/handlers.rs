//! Event handlers: run a script or POST a webhook on membership events,
//! filtered by kind and by member metadata.
//!
//! Each handler has its own queue and runs its events one at a time, in event
//! order, each with a timeout; webhooks are retried with backoff. A slow or
//! hung handler only delays its own queue: the protocol never waits, and an
//! overflowing queue drops the event with a count and a log line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::http::HttpClient;

/// What a handler does with an event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// `sh -c COMMAND`, the event as JSON on stdin and as `VIGIL_*` variables.
    Script(String),
    /// `POST` of the event JSON to an `http://` or `https://` URL; 2xx is success.
    Webhook(String),
}

/// One configured handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    /// Name, for logs and counters.
    pub name: String,
    /// What to do.
    pub action: Action,
    /// Event kinds it wants (`failed`, `joined`, ...); empty means all.
    pub kinds: Vec<String>,
    /// Metadata the member must carry (`role=db`); empty means any.
    pub meta: BTreeMap<String, String>,
    /// Longest one run may take.
    pub timeout: Duration,
    /// Further attempts of a failed webhook, with doubling backoff from 500 ms.
    pub retries: u32,
    /// Webhooks: PEM certificates trusted for `https://` instead of the
    /// bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// An event as handlers receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerEvent {
    /// `joined`, `suspected`, `recovered`, `failed`, `left`, `updated`.
    pub kind: String,
    /// The member's name.
    pub member: String,
    /// Its address.
    pub addr: String,
    /// Its metadata.
    pub meta: BTreeMap<String, String>,
    /// The whole event as one JSON object (stdin, or the request body).
    pub json: String,
    /// Extra environment variables (`VIGIL_STATE`, `VIGIL_INCARNATION`, ...).
    pub env: Vec<(String, String)>,
}

impl Handler {
    /// Whether this handler wants `event`.
    pub fn matches(&self, event: &HandlerEvent) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&event.kind))
            && self.meta.iter().all(|(k, v)| event.meta.get(k) == Some(v))
    }
}

/// Counters of handler runs.
#[derive(Debug, Default)]
pub struct HandlerStats {
    /// Runs that succeeded.
    pub succeeded: AtomicU64,
    /// Runs that failed (after retries), or timed out.
    pub failed: AtomicU64,
    /// Events dropped because a handler's queue was full.
    pub dropped: AtomicU64,
}

/// Counters of one handler's runs.
#[derive(Debug, Default)]
pub struct HandlerCounts {
    /// Runs that succeeded.
    pub succeeded: AtomicU64,
    /// Runs that failed (after retries), or timed out.
    pub failed: AtomicU64,
    /// Events dropped because this handler's queue was full.
    pub dropped: AtomicU64,
}

/// Events waiting per handler before new ones are dropped (and counted).
pub const QUEUE: usize = 1024;

/// The running handlers: [`Dispatcher::dispatch`] never waits.
#[derive(Debug)]
pub struct Dispatcher {
    queues: Vec<(Handler, mpsc::Sender<HandlerEvent>, Arc<HandlerCounts>)>,
    /// Counters.
    pub stats: Arc<HandlerStats>,
}

impl Dispatcher {
    /// Starts one worker per handler.
    pub fn start(handlers: Vec<Handler>) -> Dispatcher {
        let stats = Arc::new(HandlerStats::default());
        let queues = handlers
            .into_iter()
            .map(|h| {
                let (tx, mut rx) = mpsc::channel::<HandlerEvent>(QUEUE);
                let counts = Arc::new(HandlerCounts::default());
                let (handler, stats, mine) = (h.clone(), stats.clone(), counts.clone());
                let http = client(&handler);
                tokio::spawn(async move {
                    while let Some(event) = rx.recv().await {
                        match run_with(&handler, &http, &event).await {
                            Ok(()) => {
                                stats.succeeded.fetch_add(1, Ordering::Relaxed);
                                mine.succeeded.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                stats.failed.fetch_add(1, Ordering::Relaxed);
                                mine.failed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(handler = %handler.name, event = %event.kind, member = %event.member, "handler failed: {e}");
                            }
                        }
                    }
                });
                (h, tx, counts)
            })
            .collect();
        Dispatcher { queues, stats }
    }

    /// Queues `event` for every handler that wants it.
    pub fn dispatch(&self, event: &HandlerEvent) {
        for (h, tx, counts) in &self.queues {
            if h.matches(event) && tx.try_send(event.clone()).is_err() {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(handler = %h.name, event = %event.kind, member = %event.member, "handler queue full: event dropped");
            }
        }
    }
}

impl Dispatcher {
    /// Each handler's name and counters, in configuration order.
    pub fn counts(&self) -> impl Iterator<Item = (&str, &HandlerCounts)> {
        self.queues.iter().map(|(h, _, c)| (h.name.as_str(), c.as_ref()))
    }
}

/// Runs one handler for one event, with its timeout (and retries for webhooks).
pub async fn run(handler: &Handler, event: &HandlerEvent) -> Result<(), String> {
    run_with(handler, &client(handler), event).await
}

/// The HTTP client of a webhook handler (built once per handler).
fn client(handler: &Handler) -> Result<HttpClient, String> {
    HttpClient::new(handler.timeout, handler.ca_file.as_deref())
}

async fn run_with(
    handler: &Handler,
    http: &Result<HttpClient, String>,
    event: &HandlerEvent,
) -> Result<(), String> {
    match &handler.action {
        Action::Script(cmd) => match tokio::time::timeout(handler.timeout, script(cmd, event)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {:?}", handler.timeout)),
        },
        Action::Webhook(url) => {
            let mut backoff = Duration::from_millis(500);
            let mut last = String::new();
            for attempt in 0..=handler.retries {
                if attempt > 0 {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                let post = async {
                    let code = http.as_ref().map_err(Clone::clone)?.post_json(url, &event.json).await?;
                    if (200..300).contains(&code) { Ok(()) } else { Err(format!("HTTP {code}")) }
                };
                match tokio::time::timeout(handler.timeout, post).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(e)) => last = e,
                    Err(_) => last = format!("timed out after {:?}", handler.timeout),
                }
            }
            Err(format!("{last} (after {} attempts)", handler.retries + 1))
        }
    }
}

async fn script(cmd: &str, event: &HandlerEvent) -> Result<(), String> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("VIGIL_EVENT", &event.kind)
        .env("VIGIL_MEMBER", &event.member)
        .env("VIGIL_ADDR", &event.addr)
        .envs(event.meta.iter().map(|(k, v)| (format!("VIGIL_META_{}", env_key(k)), v.clone())))
        .envs(event.env.iter().cloned())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    // A script that times out is killed with everything it started.
    let guard = crate::proc::GroupGuard::new(child.id());
    if let Some(mut stdin) = child.stdin.take() {
        // A script that does not read its stdin is fine.
        let _ = stdin.write_all(event.json.as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
    }
    let status = child.wait().await.map_err(|e| e.to_string())?;
    guard.disarm();
    if status.success() { Ok(()) } else { Err(format!("exited with {status}")) }
}

/// `role-name` becomes `ROLE_NAME`.
fn env_key(k: &str) -> String {
    k.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, role: &str) -> HandlerEvent {
        HandlerEvent {
            kind: kind.into(),
            member: "db1".into(),
            addr: "10.0.0.1:7950".into(),
            meta: [("role".to_string(), role.to_string())].into(),
            json: format!("{{\"kind\":\"{kind}\",\"member\":\"db1\"}}"),
            env: vec![("VIGIL_INCARNATION".into(), "7".into())],
        }
    }

    fn handler(action: Action) -> Handler {
        Handler {
            name: "h".into(),
            action,
            kinds: vec!["failed".into()],
            meta: [("role".to_string(), "db".to_string())].into(),
            timeout: Duration::from_secs(5),
            retries: 0,
            ca_file: None,
        }
    }

    #[test]
    fn filters_by_kind_and_metadata() {
        let h = handler(Action::Script("true".into()));
        assert!(h.matches(&event("failed", "db")));
        assert!(!h.matches(&event("joined", "db")));
        assert!(!h.matches(&event("failed", "web")));
    }

    #[tokio::test]
    async fn scripts_get_the_event_on_stdin_and_in_the_environment() {
        let dir = std::env::temp_dir().join(format!("vigil-handler-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let cmd = format!(
            "cat > {0}; echo \"$VIGIL_EVENT $VIGIL_MEMBER $VIGIL_ADDR $VIGIL_META_ROLE $VIGIL_INCARNATION\" >> {0}",
            out.display()
        );
        run(&handler(Action::Script(cmd)), &event("failed", "db")).await.unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text, "{\"kind\":\"failed\",\"member\":\"db1\"}\nfailed db1 10.0.0.1:7950 db 7\n");
        let mut slow = handler(Action::Script("sleep 5".into()));
        slow.timeout = Duration::from_millis(100);
        assert!(run(&slow, &event("failed", "db")).await.unwrap_err().contains("timed out"));
        assert!(run(&handler(Action::Script("exit 3".into())), &event("failed", "db")).await.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
