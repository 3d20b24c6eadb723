//! The running side of acting on failure: [`start`] spawns the checks, the
//! handler feed and the failover task for one agent lifetime; [`Act::shutdown`]
//! stops them (an active member demotes first). [`ActShared`] is what the
//! HTTP API reads of them (`/v1/groups`, `/metrics`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use vigil::Vigil;
use vigil_act::failover::{Failover, Transition};
use vigil_act::handlers::{Action, Dispatcher, Handler, HandlerEvent};

use super::schema::{ActConfig, FailoverConfig};
use crate::events::{EventLog, Logged};

/// The local member's role in its failover group, as `/v1/groups` shows it.
#[derive(Debug, Default)]
struct Role {
    group: Option<String>,
    active: bool,
}

/// What the API reads of the running checks, handlers and failover task.
#[derive(Debug, Default)]
pub struct ActShared {
    dispatcher: Option<Dispatcher>,
    /// Shared with the failover task, which outlives a reload that keeps it.
    role: Arc<Mutex<Role>>,
    /// Events the handler feed missed because it fell behind the event log.
    lagged: AtomicU64,
    /// Each check's status in force, by name (none without checks).
    checks: vigil_act::checks::CheckStatuses,
}

impl ActShared {
    /// The handler dispatcher (its counters), when handlers are configured.
    pub fn dispatcher(&self) -> Option<&Dispatcher> {
        self.dispatcher.as_ref()
    }

    /// The failover group this member belongs to (none without `[failover]`)
    /// and whether it acts as the group's active member now.
    pub fn role(&self) -> (Option<String>, bool) {
        self.role.lock().map(|r| (r.group.clone(), r.active)).unwrap_or_default()
    }

    /// Each configured check and its status in force (its threshold
    /// applied; `ok` until its results say otherwise), by name.
    pub fn checks(&self) -> Vec<(String, vigil::HealthStatus)> {
        self.checks.lock().map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect()).unwrap_or_default()
    }
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
    start_keeping(config, vigil, log, expect_peers, None)
}

/// A running failover task, with the role it publishes.
type Kept = ((watch::Sender<bool>, JoinHandle<bool>, FailoverConfig), Arc<Mutex<Role>>);

/// [`start`], keeping a running failover task (`kept`) rather than
/// starting one from `config.failover`.
fn start_keeping(
    config: &ActConfig,
    vigil: Arc<Vigil>,
    log: &Arc<EventLog>,
    expect_peers: bool,
    kept: Option<Kept>,
) -> Act {
    let mut tasks = Vec::new();
    let checks = vigil_act::checks::CheckStatuses::default();
    if !config.checks.is_empty() {
        tracing::info!(checks = config.checks.len(), "health checks started");
        tasks.push(vigil_act::checks::spawn_reporting(vigil.clone(), config.checks.clone(), checks.clone()));
    }
    let dispatcher = (!config.handlers.is_empty()).then(|| Dispatcher::start(config.handlers.clone()));
    let (kept, role) = match kept {
        Some((f, role)) => (Some(f), role),
        None => (None, Arc::default()),
    };
    let shared = Arc::new(ActShared { dispatcher, role, checks, ..ActShared::default() });
    if shared.dispatcher.is_some() {
        let (_, rx) = log.resume(None);
        tasks.push(tokio::spawn(feed_handlers(shared.clone(), rx, vigil.name().to_string())));
    }
    let failover = kept.or_else(|| {
        config.failover.clone().map(|f| {
            if let Ok(mut role) = shared.role.lock() {
                role.group = Some(f.group.clone());
            }
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(failover_task(
                f.clone(),
                vigil.clone(),
                shared.role.clone(),
                stop_rx,
                expect_peers,
            ));
            (stop_tx, task, f)
        })
    });
    Act { shared, tasks, failover, vigil }
}

impl Act {
    /// What the API reads.
    pub fn shared(&self) -> Arc<ActShared> {
        self.shared.clone()
    }

    /// Applies a new configuration (SIGHUP): checks and handlers restart
    /// with it; the failover task is kept as it is (role and all) when
    /// `[failover]` did not change, else stopped as by [`Act::shutdown`]
    /// (an active member demotes) and started anew. Handlers receive the
    /// events logged from now on.
    pub async fn reload(mut self, config: &ActConfig, log: &Arc<EventLog>) -> Act {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let same = format!("{:?}", self.failover.as_ref().map(|f| &f.2)) == format!("{:?}", config.failover);
        let vigil = self.vigil.clone();
        let kept = if same {
            let role = self.shared.role.clone();
            self.failover.take().map(|f| (f, role))
        } else {
            self.shutdown().await;
            None
        };
        tracing::info!(
            checks = config.checks.len(),
            handlers = config.handlers.len(),
            failover = if same { "unchanged" } else { "restarted" },
            "checks, handlers and failover reloaded"
        );
        start_keeping(config, vigil, log, true, kept)
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

async fn feed_handlers(shared: Arc<ActShared>, mut rx: broadcast::Receiver<Arc<Logged>>, local: String) {
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
    shared_role: Arc<Mutex<Role>>,
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
            if let Ok(mut role) = shared_role.lock() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
