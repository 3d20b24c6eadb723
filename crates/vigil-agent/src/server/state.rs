//! What every handler shares: [`AppState`], one per agent lifetime.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use vigil::{CommandError, Member, Vigil};

use super::json::MemberJson;
use super::options::ApiOptions;
use crate::act::ActShared;
use crate::events::EventLog;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vigil: Arc<Vigil>,
    log: Arc<EventLog>,
    origin_ms: u64,
    leave_timeout: Duration,
    left: AtomicBool,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    /// Bearer token required for mutating calls, if any.
    token: Option<String>,
    /// Traffic is not encrypted (shown as a warning).
    plaintext: bool,
    /// Checks, handlers and failover ([`crate::act`]), if started.
    /// Replaced when a reload restarts them.
    act: std::sync::Mutex<Option<Arc<ActShared>>>,
    /// Accepted `Host` names and limits.
    api: ApiOptions,
    /// One permit per event-stream subscriber, `api.max_subscribers` in all.
    subscribers: Arc<Semaphore>,
    /// Connections and requests refused by a limit, by [`Refusal`].
    refused: [AtomicU64; Refusal::ALL.len()],
}

/// Why the HTTP side refused a connection or a request (the label of
/// `vigil_http_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `http_max_connections`: answered 503 at accept and closed.
    Connections,
    /// Over `http_max_subscribers`: an event stream answered 503.
    Subscribers,
    /// A request body that did not arrive within `http_idle_timeout`: 408.
    SlowBody,
    /// A request body over the API's limit: 413.
    LargeBody,
}

impl Refusal {
    /// Every reason, in label order.
    pub const ALL: [Refusal; 4] =
        [Refusal::Connections, Refusal::Subscribers, Refusal::SlowBody, Refusal::LargeBody];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::Subscribers => "subscribers",
            Refusal::SlowBody => "slow_body",
            Refusal::LargeBody => "large_body",
        }
    }
}

impl AppState {
    /// State over a running member. `origin_ms` is the Unix time (ms) at which
    /// the member started: its `Member::since` instants count from there.
    pub fn new(vigil: Arc<Vigil>, log: Arc<EventLog>, origin_ms: u64, leave_timeout: Duration) -> Self {
        let (stop_tx, stop_rx) = watch::channel(false);
        AppState {
            inner: Arc::new(Inner {
                vigil,
                log,
                origin_ms,
                leave_timeout,
                left: AtomicBool::new(false),
                stop_tx,
                stop_rx,
                token: None,
                plaintext: false,
                act: std::sync::Mutex::new(None),
                subscribers: Arc::new(Semaphore::new(ApiOptions::default().max_subscribers)),
                api: ApiOptions::default(),
                refused: Default::default(),
            }),
        }
    }

    /// Sets the API token and whether traffic is plaintext; call before sharing.
    pub fn with_security(mut self, token: Option<String>, plaintext: bool) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.token = token;
            inner.plaintext = plaintext;
        }
        self
    }

    /// Attaches the running checks, handlers and failover; call before sharing.
    pub fn with_act(self, act: Arc<ActShared>) -> Self {
        self.set_act(act);
        self
    }

    /// Attaches the checks, handlers and failover that replace the running
    /// ones (a reload).
    pub fn set_act(&self, act: Arc<ActShared>) {
        *self.inner.act.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(act);
    }

    /// Sets the accepted `Host` names and the limits; call before sharing.
    pub fn with_api(mut self, api: ApiOptions) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.subscribers = Arc::new(Semaphore::new(api.max_subscribers));
            inner.api = api;
        }
        self
    }

    /// The accepted `Host` names and the limits.
    pub fn api(&self) -> &ApiOptions {
        &self.inner.api
    }

    /// A place for one more event-stream subscriber, held until it leaves;
    /// none when `max_subscribers` are connected.
    pub fn subscriber(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.subscribers.clone().try_acquire_owned().ok()
    }

    /// Counts one connection or request refused for `why`; returns how
    /// many were refused for it before.
    pub fn refuse(&self, why: Refusal) -> u64 {
        self.inner.refused[why as usize].fetch_add(1, Ordering::Relaxed)
    }

    /// Connections and requests refused so far, by reason label.
    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Refusal::ALL.iter().map(|r| (r.label(), self.inner.refused[*r as usize].load(Ordering::Relaxed)))
    }

    /// The running checks, handlers and failover, if attached.
    pub fn act(&self) -> Option<Arc<ActShared>> {
        self.inner.act.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The bearer token mutating calls need, if any.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// Whether traffic is sent unencrypted (`--insecure-plaintext`).
    pub fn plaintext(&self) -> bool {
        self.inner.plaintext
    }

    /// The member.
    pub fn vigil(&self) -> &Arc<Vigil> {
        &self.inner.vigil
    }

    /// The event history and live feed.
    pub fn log(&self) -> &EventLog {
        &self.inner.log
    }

    /// The event history and live feed, shared.
    pub fn log_arc(&self) -> &Arc<EventLog> {
        &self.inner.log
    }

    /// Unix time (ms) at which the member started.
    pub fn origin_ms(&self) -> u64 {
        self.inner.origin_ms
    }

    /// Turns true when the agent should stop (after `POST /v1/leave`, or
    /// when [`AppState::stop`] was called).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stop_rx.clone()
    }

    /// Asks the agent to stop; ends the SSE streams.
    pub fn stop(&self) {
        self.inner.stop_tx.send_replace(true);
    }

    /// Whether the member has already left (through the API).
    pub fn has_left(&self) -> bool {
        self.inner.left.load(Ordering::SeqCst)
    }

    /// A member as the API shows it.
    pub fn member_json(&self, m: &Member) -> MemberJson {
        let mut json = MemberJson::new(m, self.inner.origin_ms);
        if m.name.as_str() == self.inner.vigil.name() {
            json.local_health = Some(self.inner.vigil.metrics().local_health);
        }
        json
    }

    /// Leaves once; later calls return at once.
    pub async fn leave(&self) -> Result<bool, CommandError> {
        if self.inner.left.swap(true, Ordering::SeqCst) {
            return Ok(true);
        }
        self.inner.vigil.leave(self.inner.leave_timeout).await
    }
}
