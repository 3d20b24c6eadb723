//! Acting on failure: the agent's health checks (`[[check]]`), event
//! handlers (`[[handler]]`) and failover role (`[failover]`), wired to the
//! [`vigil_act::checks`], [`vigil_act::handlers`] and [`vigil_act::failover`].
//!
//! - Checks run in the background and publish the worst status as the
//!   member's health (`/v1/members`, `vigil members`, `updated` events).
//! - Handlers receive every event of the agent's event log (the same JSON as
//!   `--events-json` and `GET /v1/events`), filtered by kind and metadata.
//! - The failover task re-decides the member's role on every membership event
//!   and every second, and runs `on_promote` / `on_demote` once per
//!   transition, one at a time; on a graceful stop an active member demotes
//!   before it leaves. `GET /v1/groups` shows every group.
//!
//! A TOML example:
//!
//! ```toml
//! [[check]]
//! name = "http"
//! http = "http://127.0.0.1:8080/health"
//! interval = "5s"
//! timeout = "2s"
//! threshold = 2
//!
//! [[handler]]
//! name = "page-db"
//! kinds = ["failed"]
//! meta = { role = "db" }
//! webhook = "http://127.0.0.1:9000/hook"
//! retries = 3
//!
//! [failover]
//! on_promote = "/etc/vigil/promote.sh"
//! on_demote = "/etc/vigil/demote.sh"
//! hold = "2s"
//! quorum = "group"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use vigil::Vigil;
use vigil_act::checks::{Check, CheckKind};
use vigil_act::failover::{Failover, GROUP_KEY, Quorum, Transition};
use vigil_act::handlers::{Action, Dispatcher, Handler, HandlerEvent};

use crate::api::AppState;
use crate::config::ConfigError;
use crate::events::EventLog;

/// Event kinds a handler may ask for.
pub const KINDS: [&str; 6] = ["joined", "suspected", "recovered", "failed", "left", "updated"];
/// Default time between runs of a check.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Default longest run of a check.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default longest run of a handler (each webhook attempt).
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default further attempts of a failed webhook.
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 3;
/// Default time an answer must hold before the member changes its role.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(2);
/// Default longest run of `on_promote` / `on_demote`.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn humantime_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom)).transpose()
}

/// A `[[check]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckFile {
    /// Name, shown in the health reason.
    pub name: Option<String>,
    /// `sh -c` command: exit 0 ok, 1 degraded, else failing.
    pub script: Option<String>,
    /// `http://` or `https://` URL: 2xx ok.
    pub http: Option<String>,
    /// `host:port`: a TCP connect.
    pub tcp: Option<String>,
    /// Time between runs [default: 10s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub interval: Option<Duration>,
    /// Longest run [default: 5s, or the interval if shorter]; runs never overlap.
    #[serde(default, deserialize_with = "humantime_opt")]
    pub timeout: Option<Duration>,
    /// Consecutive agreeing results before the status changes [default: 1].
    pub threshold: Option<u32>,
    /// HTTP checks: PEM file of the CA certificates trusted for `https://`
    /// instead of the bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// A `[[handler]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandlerFile {
    /// Name, for logs and counters.
    pub name: Option<String>,
    /// Event kinds [default: all].
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Metadata the member must carry [default: any].
    #[serde(default)]
    pub meta: BTreeMap<String, String>,
    /// `sh -c` command; the event JSON on stdin, `VIGIL_*` variables.
    pub script: Option<String>,
    /// `http://` or `https://` URL the event JSON is POSTed to.
    pub webhook: Option<String>,
    /// Longest run (each webhook attempt) [default: 30s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub timeout: Option<Duration>,
    /// Webhooks only: further attempts, backoff doubling from 500 ms [default: 3].
    pub retries: Option<u32>,
    /// Webhooks only: PEM file of the CA certificates trusted for `https://`
    /// instead of the bundled roots.
    pub ca_file: Option<PathBuf>,
}

/// The `[failover]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverFile {
    /// Run when this member becomes the group's active member.
    pub on_promote: Option<String>,
    /// Run when it stops being active (and on a graceful stop while active).
    pub on_demote: Option<String>,
    /// How long an answer must hold before acting on it [default: 2s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub hold: Option<Duration>,
    /// `group` (majority of the group's members) or `cluster` [default: group].
    pub quorum: Option<String>,
    /// Longest run of each script [default: 60s].
    #[serde(default, deserialize_with = "humantime_opt")]
    pub timeout: Option<Duration>,
}

/// Failover settings, checked.
#[derive(Debug, Clone)]
pub struct FailoverConfig {
    /// The member's group (its `group` metadata).
    pub group: String,
    /// `on_promote` script.
    pub on_promote: Option<String>,
    /// `on_demote` script.
    pub on_demote: Option<String>,
    /// Hold time.
    pub hold: Duration,
    /// Whose majority it must see.
    pub quorum: Quorum,
    /// Longest run of each script.
    pub timeout: Duration,
}

/// Checks, handlers and failover, checked.
#[derive(Debug, Clone, Default)]
pub struct ActConfig {
    /// Health checks.
    pub checks: Vec<Check>,
    /// Event handlers.
    pub handlers: Vec<Handler>,
    /// Failover, when `[failover]` is present.
    pub failover: Option<FailoverConfig>,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, reason: reason.into() }
}

fn positive(key: &'static str, who: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err(invalid(key, format!("{who}: must be between 1ms and 1h")));
    }
    Ok(d)
}

/// A `ca_file` that holds at least one PEM certificate.
fn ca_file(key: &'static str, who: &str, path: &std::path::Path) -> Result<PathBuf, ConfigError> {
    vigil_act::http::validate_ca_file(path).map_err(|e| invalid(key, format!("{who}: {e}")))?;
    Ok(path.to_path_buf())
}

impl ActConfig {
    /// Checks the file's tables; `meta` is the member's own metadata (the
    /// failover group comes from it). Errors name the key (`check.timeout`).
    pub fn from_file(
        checks: &[CheckFile],
        handlers: &[HandlerFile],
        failover: Option<&FailoverFile>,
        meta: &BTreeMap<String, String>,
    ) -> Result<ActConfig, ConfigError> {
        let mut out = ActConfig::default();
        for (i, c) in checks.iter().enumerate() {
            let name = match &c.name {
                Some(n) if !n.trim().is_empty() => n.clone(),
                _ => return Err(invalid("check.name", format!("check #{}: a name is required", i + 1))),
            };
            if out.checks.iter().any(|x: &Check| x.name == name) {
                return Err(invalid("check.name", format!("`{name}` is used twice")));
            }
            let who = format!("check `{name}`");
            let kind = match (&c.script, &c.http, &c.tcp) {
                (Some(s), None, None) => CheckKind::Script(s.clone()),
                (None, Some(u), None) => CheckKind::Http(u.clone()),
                (None, None, Some(a)) => CheckKind::Tcp(a.clone()),
                _ => return Err(invalid("check", format!("{who}: set exactly one of script, http, tcp"))),
            };
            let key = match kind {
                CheckKind::Http(_) => "check.http",
                CheckKind::Tcp(_) => "check.tcp",
                _ => "check.script",
            };
            vigil_act::checks::validate(&kind).map_err(|e| invalid(key, format!("{who}: {e}")))?;
            let interval = positive("check.interval", &who, c.interval.unwrap_or(DEFAULT_CHECK_INTERVAL))?;
            let timeout =
                positive("check.timeout", &who, c.timeout.unwrap_or(DEFAULT_CHECK_TIMEOUT.min(interval)))?;
            let threshold = c.threshold.unwrap_or(1);
            if !(1..=100).contains(&threshold) {
                return Err(invalid("check.threshold", format!("{who}: must be between 1 and 100")));
            }
            let ca_file = match (&kind, &c.ca_file) {
                (CheckKind::Http(_), Some(f)) => Some(ca_file("check.ca_file", &who, f)?),
                (_, Some(_)) => {
                    return Err(invalid("check.ca_file", format!("{who}: only http checks use it")));
                }
                (_, None) => None,
            };
            out.checks.push(Check { name, kind, interval, timeout, threshold, ca_file });
        }
        for (i, h) in handlers.iter().enumerate() {
            let name = match &h.name {
                Some(n) if !n.trim().is_empty() => n.clone(),
                _ => return Err(invalid("handler.name", format!("handler #{}: a name is required", i + 1))),
            };
            if out.handlers.iter().any(|x: &Handler| x.name == name) {
                return Err(invalid("handler.name", format!("`{name}` is used twice")));
            }
            let who = format!("handler `{name}`");
            if let Some(k) = h.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(invalid(
                    "handler.kinds",
                    format!("{who}: unknown kind `{k}`, expected {KINDS:?}"),
                ));
            }
            let action = match (&h.script, &h.webhook) {
                (Some(s), None) if !s.trim().is_empty() => Action::Script(s.clone()),
                (None, Some(u)) => {
                    vigil_act::http::validate_url(u)
                        .map_err(|e| invalid("handler.webhook", format!("{who}: {e}")))?;
                    Action::Webhook(u.clone())
                }
                _ => return Err(invalid("handler", format!("{who}: set exactly one of script, webhook"))),
            };
            let retries = match (&action, h.retries) {
                (Action::Script(_), Some(_)) => {
                    return Err(invalid("handler.retries", format!("{who}: only webhooks are retried")));
                }
                (_, Some(r)) if r > 10 => {
                    return Err(invalid("handler.retries", format!("{who}: at most 10")));
                }
                (Action::Webhook(_), r) => r.unwrap_or(DEFAULT_WEBHOOK_RETRIES),
                _ => 0,
            };
            let timeout = positive("handler.timeout", &who, h.timeout.unwrap_or(DEFAULT_HANDLER_TIMEOUT))?;
            let ca_file = match (&action, &h.ca_file) {
                (Action::Webhook(_), Some(f)) => Some(ca_file("handler.ca_file", &who, f)?),
                (_, Some(_)) => {
                    return Err(invalid("handler.ca_file", format!("{who}: only webhooks use it")));
                }
                (_, None) => None,
            };
            out.handlers.push(Handler {
                name,
                action,
                kinds: h.kinds.clone(),
                meta: h.meta.clone(),
                timeout,
                retries,
                ca_file,
            });
        }
        if let Some(f) = failover {
            let group = meta.get(GROUP_KEY).filter(|g| !g.is_empty()).ok_or_else(|| {
                invalid(
                    "failover",
                    "the member has no `group` metadata: add --meta group=NAME (and priority=N)",
                )
            })?;
            if let Some(p) = meta.get(vigil_act::failover::PRIORITY_KEY)
                && p.trim().parse::<i64>().is_err()
            {
                return Err(invalid("meta", format!("priority `{p}` is not an integer")));
            }
            let quorum = match f.quorum.as_deref() {
                None | Some("group") => Quorum::Group,
                Some("cluster") => Quorum::Cluster,
                Some(q) => {
                    return Err(invalid("failover.quorum", format!("`{q}`: expected group or cluster")));
                }
            };
            let hold = f.hold.unwrap_or(DEFAULT_HOLD);
            if hold > Duration::from_secs(3600) {
                return Err(invalid("failover.hold", "at most 1h"));
            }
            out.failover = Some(FailoverConfig {
                group: group.clone(),
                on_promote: f.on_promote.clone().filter(|s| !s.trim().is_empty()),
                on_demote: f.on_demote.clone().filter(|s| !s.trim().is_empty()),
                hold,
                quorum,
                timeout: positive(
                    "failover.timeout",
                    "failover",
                    f.timeout.unwrap_or(DEFAULT_SCRIPT_TIMEOUT),
                )?,
            });
        }
        Ok(out)
    }
}

/// The local member's role in its failover group, as `/v1/groups` shows it.
#[derive(Debug, Default)]
pub struct Role {
    group: Option<String>,
    active: bool,
}

/// What the API reads of the running checks, handlers and failover task.
#[derive(Debug, Default)]
pub struct ActShared {
    dispatcher: Option<Dispatcher>,
    role: Mutex<Role>,
    /// Events the handler feed missed because it fell behind the event log.
    lagged: std::sync::atomic::AtomicU64,
}

/// The running checks, handlers and failover task of one agent.
#[derive(Debug)]
pub struct Act {
    shared: Arc<ActShared>,
    tasks: Vec<JoinHandle<()>>,
    failover: Option<(watch::Sender<bool>, JoinHandle<bool>, FailoverConfig)>,
    vigil: Arc<Vigil>,
}

/// Starts checks, handlers and failover. `expect_peers`: the agent was given
/// seeds (or rejoins from a snapshot), so it must not decide its failover
/// role before it has met at least one other member.
pub fn start(config: &ActConfig, vigil: Arc<Vigil>, log: &Arc<EventLog>, expect_peers: bool) -> Act {
    let mut tasks = Vec::new();
    if !config.checks.is_empty() {
        tracing::info!(checks = config.checks.len(), "health checks started");
        tasks.push(vigil_act::checks::spawn(vigil.clone(), config.checks.clone()));
    }
    let dispatcher = (!config.handlers.is_empty()).then(|| Dispatcher::start(config.handlers.clone()));
    let shared = Arc::new(ActShared { dispatcher, ..ActShared::default() });
    if shared.dispatcher.is_some() {
        let (_, rx) = log.resume(None);
        tasks.push(tokio::spawn(feed_handlers(shared.clone(), rx, vigil.name().to_string())));
    }
    let failover = config.failover.clone().map(|f| {
        if let Ok(mut role) = shared.role.lock() {
            role.group = Some(f.group.clone());
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let task =
            tokio::spawn(failover_task(f.clone(), vigil.clone(), shared.clone(), stop_rx, expect_peers));
        (stop_tx, task, f)
    });
    Act { shared, tasks, failover, vigil }
}

impl Act {
    /// What the API reads.
    pub fn shared(&self) -> Arc<ActShared> {
        self.shared.clone()
    }

    /// Stops the failover task (letting a running script finish) and, if the
    /// member is active, runs `on_demote` before the member leaves; then
    /// stops the checks and the handler feed.
    pub async fn shutdown(self) {
        if let Some((stop, task, f)) = self.failover {
            let _ = stop.send(true);
            let active = tokio::time::timeout(f.timeout + Duration::from_secs(1), task).await;
            if let Ok(Ok(true)) = active {
                tracing::info!(group = %f.group, "stopping while active: demoting first");
                run_role_script(&f, &self.vigil, Transition::Demote, "shutdown").await;
                if let Ok(mut role) = self.shared.role.lock() {
                    role.active = false;
                }
            }
        }
        for t in self.tasks {
            t.abort();
        }
    }
}

fn str_of(v: &serde_json::Value, k: &str) -> String {
    match v.get(k) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// The handler's view of one logged event.
pub fn handler_event(id: u64, json: &str, local: &str) -> HandlerEvent {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let meta = v
        .get("meta")
        .and_then(|m| m.as_object())
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    let health = v.get("health").cloned().unwrap_or_default();
    HandlerEvent {
        kind: str_of(&v, "kind"),
        member: str_of(&v, "member"),
        addr: str_of(&v, "addr"),
        meta,
        json: json.to_string(),
        env: vec![
            ("VIGIL_STATE".into(), str_of(&v, "state")),
            ("VIGIL_INCARNATION".into(), str_of(&v, "incarnation")),
            ("VIGIL_HEALTH".into(), str_of(&health, "status")),
            ("VIGIL_HEALTH_REASON".into(), str_of(&health, "reason")),
            ("VIGIL_TIME_MS".into(), str_of(&v, "time_ms")),
            ("VIGIL_EVENT_ID".into(), id.to_string()),
            ("VIGIL_SELF".into(), local.to_string()),
        ],
    }
}

async fn feed_handlers(
    shared: Arc<ActShared>,
    mut rx: broadcast::Receiver<Arc<crate::events::Logged>>,
    local: String,
) {
    let Some(d) = shared.dispatcher.as_ref() else { return };
    loop {
        match rx.recv().await {
            Ok(logged) => d.dispatch(&handler_event(logged.id, &logged.json, &local)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                shared.lagged.fetch_add(n, Ordering::Relaxed);
                d.stats.dropped.fetch_add(n, Ordering::Relaxed);
                tracing::warn!(missed = n, "handlers fell behind the event log: {n} events were not handled");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn run_role_script(f: &FailoverConfig, vigil: &Vigil, t: Transition, why: &str) {
    let (role, script) = match t {
        Transition::Promote => ("active", &f.on_promote),
        Transition::Demote => ("standby", &f.on_demote),
    };
    let kind = if t == Transition::Promote { "promote" } else { "demote" };
    tracing::info!(group = %f.group, role, reason = why, "failover: {kind}");
    let Some(cmd) = script else { return };
    let json = serde_json::json!({ "kind": kind, "group": f.group, "role": role, "member": vigil.name(), "reason": why })
        .to_string();
    let handler = Handler {
        name: format!("on_{kind}"),
        action: Action::Script(cmd.clone()),
        kinds: Vec::new(),
        meta: BTreeMap::new(),
        timeout: f.timeout,
        retries: 0,
        ca_file: None,
    };
    let event = HandlerEvent {
        kind: kind.into(),
        member: vigil.name().to_string(),
        addr: vigil.local_addr().to_string(),
        meta: BTreeMap::new(),
        json,
        env: vec![
            ("VIGIL_GROUP".into(), f.group.clone()),
            ("VIGIL_ROLE".into(), role.into()),
            ("VIGIL_REASON".into(), why.into()),
        ],
    };
    match vigil_act::handlers::run(&handler, &event).await {
        Ok(()) => tracing::info!(group = %f.group, "on_{kind} succeeded"),
        Err(e) => tracing::error!(group = %f.group, "on_{kind} failed: {e}"),
    }
}

/// Re-decides on every event and every second; returns whether the member
/// was active when told to stop.
async fn failover_task(
    f: FailoverConfig,
    vigil: Arc<Vigil>,
    shared: Arc<ActShared>,
    mut stop: watch::Receiver<bool>,
    expect_peers: bool,
) -> bool {
    let mut events = vigil.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut decider = Failover::new(f.group.clone(), f.hold, f.quorum);
    let mut met_peers = !expect_peers;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return decider.is_active(),
            r = events.recv() => if let Err(broadcast::error::RecvError::Closed) = r { return decider.is_active() },
            _ = tick.tick() => {}
        }
        let members = vigil.members();
        if !met_peers {
            if members.iter().all(|m| m.name.as_str() == vigil.name()) {
                continue;
            }
            met_peers = true;
        }
        let was_quorate = decider.has_quorum(&members);
        if let Some(t) = decider.update(Instant::now(), vigil.name(), &members) {
            if let Ok(mut role) = shared.role.lock() {
                role.active = decider.is_active();
            }
            let why = match t {
                Transition::Demote if !was_quorate => "lost quorum",
                Transition::Demote => "another member is the answer",
                Transition::Promote => "highest-priority eligible member with quorum",
            };
            run_role_script(&f, &vigil, t, why).await;
        }
    }
}

/// One group in `GET /v1/groups`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupJson {
    /// Group name.
    pub group: String,
    /// The member that should be active by this agent's view, if any.
    pub active: Option<String>,
    /// The other eligible members, by descending priority.
    pub standbys: Vec<String>,
    /// Known members (left ones excepted).
    pub known: usize,
    /// Of those, alive.
    pub alive: usize,
    /// This agent's own role in the group: what it acted on (`active` or
    /// `standby`, which can lag the computed `active` by the hold time), or
    /// `none` when it is not a failover member of the group.
    pub local_role: &'static str,
}

/// The groups as one agent sees them.
pub fn groups_json(members: &[vigil::Member], shared: Option<&ActShared>) -> Vec<GroupJson> {
    let (my_group, active) =
        shared.and_then(|s| s.role.lock().ok().map(|r| (r.group.clone(), r.active))).unwrap_or_default();
    vigil_act::failover::groups(members)
        .into_iter()
        .map(|g| {
            let local_role = match &my_group {
                Some(mine) if *mine == g.group && active => "active",
                Some(mine) if *mine == g.group => "standby",
                _ => "none",
            };
            GroupJson {
                group: g.group,
                active: g.active,
                standbys: g.standbys,
                known: g.known,
                alive: g.alive,
                local_role,
            }
        })
        .collect()
}

/// `GET /v1/groups`.
pub async fn groups(State(s): State<AppState>) -> Json<Vec<GroupJson>> {
    Json(groups_json(&s.vigil().members(), s.act().as_deref()))
}

/// Adds the handler counters to a rendered OpenMetrics text (before its
/// `# EOF`): `vigil_handler_runs_total{handler,result}` (result: `ok`,
/// `failed`) and `vigil_handler_dropped_total`.
pub fn add_metrics(text: &mut String, shared: Option<&ActShared>) {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    let mut r = prometheus_client::registry::Registry::with_prefix("vigil");
    let runs = Family::<Vec<(&'static str, String)>, Counter<u64>>::default();
    let dropped = Counter::<u64>::default();
    if let Some(d) = shared.and_then(|s| s.dispatcher.as_ref()) {
        for (name, c) in d.counts() {
            let label = |result: &str| vec![("handler", name.to_string()), ("result", result.to_string())];
            runs.get_or_create(&label("ok")).inc_by(c.succeeded.load(Ordering::Relaxed));
            runs.get_or_create(&label("failed")).inc_by(c.failed.load(Ordering::Relaxed));
        }
        dropped.inc_by(d.stats.dropped.load(Ordering::Relaxed));
    }
    r.register("handler_runs", "Event handler runs, by handler and result", runs);
    r.register(
        "handler_dropped",
        "Events not handled: a handler queue was full or the feed fell behind",
        dropped,
    );
    let mut extra = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut extra, &r);
    let extra = extra.trim_end().strip_suffix("# EOF").unwrap_or(&extra).to_string();
    match text.rfind("# EOF") {
        Some(i) => text.insert_str(i, &extra),
        None => text.push_str(&extra),
    }
}

/// Test-only (feature `testing`): `VIGIL_FAULTS_FILE=PATH` makes the agent
/// re-read `PATH` (the `VIGIL_FAULTS` syntax; empty or missing: no faults)
/// every 200 ms and apply it at runtime, so a test can partition running
/// agents and heal them.
#[cfg(feature = "testing")]
pub fn watch_faults_file(vigil: Arc<Vigil>) -> Option<JoinHandle<()>> {
    let path = PathBuf::from(std::env::var_os("VIGIL_FAULTS_FILE")?);
    tracing::warn!("!!! VIGIL_FAULTS_FILE={}: RUNTIME FAULT INJECTION IS ON. TEST USE ONLY.", path.display());
    Some(tokio::spawn(async move {
        let mut applied: Option<String> = None;
        loop {
            let spec = std::fs::read_to_string(&path).unwrap_or_default().trim().to_string();
            if applied.as_deref() != Some(spec.as_str()) {
                let faults =
                    if spec.is_empty() { Ok(None) } else { crate::agent::parse_faults(&spec).map(Some) };
                match faults {
                    Ok(f) => {
                        tracing::warn!("fault injection now: `{spec}`");
                        if vigil.set_faults(f).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::error!("VIGIL_FAULTS_FILE: {e}"),
                }
                applied = Some(spec);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, meta: &[(&str, &str)]) -> Result<ActConfig, String> {
        let file = crate::config::parse_file(text)?;
        let meta = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ActConfig::from_file(&file.check, &file.handler, file.failover.as_ref(), &meta)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn checks_handlers_and_failover_parse_with_defaults() {
        let c = parse(
            "[[check]]\nname = \"web\"\nhttp = \"http://127.0.0.1:8080/h\"\ninterval = \"2s\"\nthreshold = 3\n\
             [[handler]]\nname = \"hook\"\nkinds = [\"failed\"]\nmeta = { role = \"db\" }\nwebhook = \"http://127.0.0.1:9/x\"\n\
             [failover]\non_promote = \"promote.sh\"\nquorum = \"cluster\"\n",
            &[("group", "db"), ("priority", "100")],
        )
        .unwrap();
        assert_eq!(c.checks[0].timeout, Duration::from_secs(2), "timeout defaults to at most the interval");
        assert_eq!(c.checks[0].threshold, 3);
        assert_eq!(c.handlers[0].retries, DEFAULT_WEBHOOK_RETRIES);
        assert_eq!(c.handlers[0].meta.get("role").map(String::as_str), Some("db"));
        let f = c.failover.unwrap();
        assert_eq!((f.group.as_str(), f.hold, f.quorum), ("db", DEFAULT_HOLD, Quorum::Cluster));
    }

    #[test]
    fn bad_tables_are_refused_by_key() {
        let bad = |t: &str| parse(t, &[]).unwrap_err();
        assert!(bad("[[check]]\nname = \"a\"\n").contains("`check`"));
        assert!(bad("[[check]]\nname = \"a\"\nscript = \"true\"\ntcp = \"h:1\"\n").contains("exactly one"));
        assert!(bad("[[check]]\nscript = \"true\"\n").contains("`check.name`"));
        assert!(
            bad("[[check]]\nname = \"a\"\nscript = \"true\"\ninterval = \"soon\"\n").contains("interval")
        );
        assert!(
            bad("[[check]]\nname = \"a\"\nscript = \"true\"\ntimeout = \"0s\"\n").contains("`check.timeout`")
        );
        assert!(bad("[[check]]\nname = \"a\"\nhttp = \"ftp://x\"\n").contains("`check.http`"));
        assert!(
            bad("[[check]]\nname = \"a\"\nhttp = \"https://x\"\nca_file = \"/nonexistent/ca.pem\"\n")
                .contains("`check.ca_file`")
        );
        assert!(
            bad("[[check]]\nname = \"a\"\ntcp = \"h:1\"\nca_file = \"/etc/hostname\"\n")
                .contains("only http checks")
        );
        assert!(
            bad("[[handler]]\nname = \"h\"\nscript = \"true\"\nca_file = \"/etc/hostname\"\n")
                .contains("`handler.ca_file`")
        );
        assert!(
            bad("[[check]]\nname = \"a\"\nscript = \"true\"\nthreshold = 0\n").contains("`check.threshold`")
        );
        assert!(bad("[[check]]\nname = \"a\"\nscript = \"true\"\ncolour = 1\n").contains("colour"));
        assert!(
            bad("[[handler]]\nname = \"h\"\nkinds = [\"exploded\"]\nscript = \"true\"\n")
                .contains("`handler.kinds`")
        );
        assert!(
            bad("[[handler]]\nname = \"h\"\nscript = \"true\"\nretries = 2\n").contains("`handler.retries`")
        );
        assert!(bad("[[handler]]\nname = \"h\"\n").contains("`handler`"));
        assert!(bad("[failover]\non_promote = \"x\"\n").contains("`failover`"));
        let e = parse("[failover]\nquorum = \"most\"\n", &[("group", "db")]).unwrap_err();
        assert!(e.contains("`failover.quorum`"), "{e}");
        let e = parse("[failover]\n", &[("group", "db"), ("priority", "high")]).unwrap_err();
        assert!(e.contains("priority"), "{e}");
    }

    #[test]
    fn handler_events_carry_the_event_json_and_variables() {
        let json = r#"{"time_ms":5,"kind":"failed","member":"db1","addr":"10.0.0.1:7950","incarnation":7,"state":"dead","meta":{"role":"db"},"health":{"status":"ok","reason":""}}"#;
        let e = handler_event(3, json, "me");
        assert_eq!((e.kind.as_str(), e.member.as_str(), e.addr.as_str()), ("failed", "db1", "10.0.0.1:7950"));
        assert_eq!(e.json, json);
        assert_eq!(e.meta.get("role").map(String::as_str), Some("db"));
        let env: BTreeMap<_, _> = e.env.into_iter().collect();
        assert_eq!(env["VIGIL_STATE"], "dead");
        assert_eq!(env["VIGIL_INCARNATION"], "7");
        assert_eq!(env["VIGIL_EVENT_ID"], "3");
        assert_eq!(env["VIGIL_HEALTH"], "ok");
    }

    #[test]
    fn handler_counters_go_before_the_end_marker() {
        let mut text = "# TYPE vigil_events counter\nvigil_events_total 1\n# EOF\n".to_string();
        add_metrics(&mut text, None);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("vigil_handler_dropped_total 0"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }
}
