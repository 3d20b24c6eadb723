//! The HTTP JSON API, as a value: [`app`] builds the router from an
//! [`AppState`]; tests call it with `tower::ServiceExt::oneshot`.
//!
//! Bad input gets a 4xx with `{"error": "..."}` saying what was wrong;
//! internal faults get a generic 500 (the cause is logged).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt, stream};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_stream::wrappers::BroadcastStream;
use vigil::{CommandError, Health, HealthStatus, Member, State as MemberState, Vigil};

use crate::events::{EventLog, HealthJson};
use crate::{meta, metrics};

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
    act: Option<Arc<crate::act::ActShared>>,
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
                act: None,
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
    pub fn with_act(mut self, act: Arc<crate::act::ActShared>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.act = Some(act);
        }
        self
    }

    /// The running checks, handlers and failover, if attached.
    pub fn act(&self) -> Option<Arc<crate::act::ActShared>> {
        self.inner.act.clone()
    }

    /// The bearer token mutating calls need, if any.
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// The member.
    pub fn vigil(&self) -> &Arc<Vigil> {
        &self.inner.vigil
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

    /// Leaves once; later calls return at once.
    pub async fn leave(&self) -> Result<bool, CommandError> {
        if self.inner.left.swap(true, Ordering::SeqCst) {
            return Ok(true);
        }
        self.inner.vigil.leave(self.inner.leave_timeout).await
    }

    /// A member as the API shows it.
    pub fn member_json(&self, m: &Member) -> MemberJson {
        MemberJson {
            name: m.name.to_string(),
            addr: m.addr.to_string(),
            state: m.state.as_str(),
            incarnation: m.incarnation,
            meta: meta::decode(m.meta.as_bytes()),
            health: HealthJson::of(&m.health),
            phi: if m.phi.is_finite() { m.phi } else { f64::MAX },
            rtt_ms: m.rtt.map(|d| d.as_secs_f64() * 1e3),
            since_ms: self.inner.origin_ms + m.since.as_micros() / 1000,
        }
    }
}

/// A member in API responses.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberJson {
    /// Unique name.
    pub name: String,
    /// Gossip address.
    pub addr: String,
    /// `alive`, `suspect`, `dead`, `left`.
    pub state: &'static str,
    /// Incarnation of the latest claim.
    pub incarnation: u64,
    /// Metadata, decoded from `key=value` lines.
    pub meta: BTreeMap<String, String>,
    /// Health.
    pub health: HealthJson,
    /// Phi-accrual suspicion level (0 when too little is known).
    pub phi: f64,
    /// Smoothed round-trip time of direct probes, if measured.
    pub rtt_ms: Option<f64>,
    /// When the member's state last changed, Unix milliseconds.
    pub since_ms: u64,
}

/// The one error type of the API.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request was wrong; the message says how.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 503: the member cannot do it now (shut down, no seed answered).
    Unavailable(String),
    /// 500: logged, not shown.
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Internal(m) => {
                tracing::error!("internal error in the API: {m}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error".to_string())
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Member(e) => ApiError::BadRequest(e.to_string()),
            CommandError::Join(m) => ApiError::Unavailable(format!("join failed: {m}")),
            CommandError::Stopped => ApiError::Unavailable("the member has shut down".into()),
            CommandError::Timeout => ApiError::Unavailable("timed out".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::BadRequest(format!("bad JSON body: {}", e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::BadRequest(format!("bad query: {}", e.body_text()))
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router: every endpoint of docs/OPERATIONS.md.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/members", get(members))
        .route("/v1/members/{name}", get(member))
        .route("/v1/self", get(self_member))
        .route("/v1/events", get(events))
        .route("/v1/join", post(join))
        .route("/v1/leave", post(leave))
        .route("/v1/self/meta", put(set_meta))
        .route("/v1/self/health", put(set_health))
        .route("/v1/groups", get(crate::act::groups))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/v1/keys", get(crate::security::list_keys))
        .route("/v1/keys/{op}", post(crate::security::key_op))
        .route("/", get(crate::dashboard::index))
        .route("/assets/{file}", get(crate::dashboard::asset))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::security::require_token))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}

fn parse_state(s: &str) -> ApiResult<MemberState> {
    Ok(match s {
        "alive" => MemberState::Alive,
        "suspect" => MemberState::Suspect,
        "dead" => MemberState::Dead,
        "left" => MemberState::Left,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "unknown state `{s}`: expected alive, suspect, dead or left"
            )));
        }
    })
}

fn parse_health(s: &str) -> ApiResult<HealthStatus> {
    Ok(match s {
        "ok" => HealthStatus::Ok,
        "degraded" => HealthStatus::Degraded,
        "failing" => HealthStatus::Failing,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "unknown health `{s}`: expected ok, degraded or failing"
            )));
        }
    })
}

/// `?state=S&health=H&meta.KEY=VALUE`, each optional, all must hold.
fn filter(query: &BTreeMap<String, String>) -> ApiResult<impl Fn(&Member) -> bool + use<>> {
    let mut state = None;
    let mut health = None;
    let mut metas = Vec::new();
    for (k, v) in query {
        match k.as_str() {
            "state" => state = Some(parse_state(v)?),
            "health" => health = Some(parse_health(v)?),
            k => match k.strip_prefix("meta.") {
                Some(key) if !key.is_empty() => metas.push((key.to_string(), v.clone())),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "unknown filter `{k}`: filters are state, health and meta.KEY"
                    )));
                }
            },
        }
    }
    Ok(move |m: &Member| {
        state.is_none_or(|s| m.state == s)
            && health.is_none_or(|h| m.health.status() == h)
            && (metas.is_empty() || {
                let decoded = meta::decode(m.meta.as_bytes());
                metas.iter().all(|(k, v)| decoded.get(k) == Some(v))
            })
    })
}

async fn members(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(mut query) = query?;
    let text = crate::feeds::wants_text(&mut query, &headers)?;
    let keep = filter(&query)?;
    let list = s.inner.vigil.members();
    let list: Vec<MemberJson> = list.iter().filter(|m| keep(m)).map(|m| s.member_json(m)).collect();
    Ok(if text { crate::feeds::text(&list) } else { Json(list).into_response() })
}

async fn member(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<MemberJson>> {
    match s.inner.vigil.member(&name) {
        Some(m) => Ok(Json(s.member_json(&m))),
        None => Err(ApiError::NotFound(format!("no member named `{name}`"))),
    }
}

/// `GET /v1/self`: this member's entry, plus what only it knows: its local
/// health score, traffic totals, whether traffic is encrypted, and warnings.
async fn self_member(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let v = &s.inner.vigil;
    let m = v
        .member(v.name())
        .ok_or_else(|| ApiError::Unavailable("this member's entry is not published yet".into()))?;
    let mut json = serde_json::to_value(s.member_json(&m)).map_err(|e| ApiError::Internal(e.to_string()))?;
    let metrics = v.metrics();
    let (bytes_in, bytes_out) =
        metrics.traffic.iter().fold((0, 0), |(i, o), k| (i + k.bytes_in, o + k.bytes_out));
    let mut warnings = Vec::new();
    if s.inner.plaintext {
        warnings.push("traffic is not encrypted or authenticated (--insecure-plaintext)");
    }
    if let Some(obj) = json.as_object_mut() {
        obj.insert("local_health".into(), metrics.local_health.into());
        obj.insert("bytes_in".into(), bytes_in.into());
        obj.insert("bytes_out".into(), bytes_out.into());
        obj.insert("encrypted".into(), (!s.inner.plaintext).into());
        obj.insert("warnings".into(), warnings.into());
    }
    Ok(Json(json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Same as the `Last-Event-ID` header.
    after: Option<u64>,
}

async fn events(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let Query(q) = query?;
    let header_id = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::BadRequest("Last-Event-ID must be an event id (a non-negative integer)".into())
        })?),
        None => None,
    };
    let (past, live) = s.inner.log.resume(header_id.or(q.after));
    let mut stop = s.stopping();
    let live = BroadcastStream::new(live)
        // A client that falls behind is cut off; it resumes with Last-Event-ID.
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok()));
    let all = stream::iter(past)
        .chain(live)
        .map(|l| Ok(SseEvent::default().id(l.id.to_string()).event("membership").data(l.json.clone())))
        .take_until(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    addrs: Vec<String>,
}

async fn join(
    State(s): State<AppState>,
    body: Result<Json<JoinBody>, JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Json(body) = body?;
    if body.addrs.is_empty() {
        return Err(ApiError::BadRequest("`addrs` is empty: give at least one IP:PORT or HOST:PORT".into()));
    }
    if let Some(bad) = body.addrs.iter().find(|a| !a.contains(':')) {
        return Err(ApiError::BadRequest(format!("`{bad}` is not IP:PORT or HOST:PORT")));
    }
    let n = s.inner.vigil.join(&body.addrs, Duration::from_secs(10)).await?;
    Ok(Json(serde_json::json!({ "members": n })))
}

async fn leave(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let disseminated = s.leave().await?;
    s.stop();
    Ok(Json(serde_json::json!({ "left": true, "disseminated": disseminated })))
}

async fn set_meta(
    State(s): State<AppState>,
    body: Result<Json<BTreeMap<String, String>>, JsonRejection>,
) -> ApiResult<Json<MemberJson>> {
    let Json(map) = body?;
    let bytes = meta::encode(&map).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    s.inner.vigil.set_metadata(bytes).await?;
    Ok(Json(fresh_self(&s).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthBody {
    status: String,
    #[serde(default)]
    reason: String,
}

async fn set_health(
    State(s): State<AppState>,
    body: Result<Json<HealthBody>, JsonRejection>,
) -> ApiResult<Json<MemberJson>> {
    let Json(body) = body?;
    let status = parse_health(&body.status)?;
    let health = Health::new(status, &body.reason).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    s.inner.vigil.set_health(health).await?;
    Ok(Json(fresh_self(&s).await?))
}

/// This member as the protocol task sees it now (after a change).
async fn fresh_self(s: &AppState) -> ApiResult<MemberJson> {
    let v = &s.inner.vigil;
    let all = v.members_now().await?;
    all.iter()
        .find(|m| m.name.as_str() == v.name())
        .map(|m| s.member_json(m))
        .ok_or_else(|| ApiError::Internal("own entry missing from the member list".into()))
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let v = &s.inner.vigil;
    let events = s.inner.log.next_id() - 1;
    let mut body = metrics::render(&v.metrics(), &v.members(), events);
    crate::act::add_metrics(&mut body, s.inner.act.as_deref());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    let v = &s.inner.vigil;
    match v.member(v.name()) {
        Some(m) => Json(serde_json::json!({ "status": "ok", "name": v.name(), "state": m.state.as_str() }))
            .into_response(),
        None => ApiError::Unavailable("starting".into()).into_response(),
    }
}
