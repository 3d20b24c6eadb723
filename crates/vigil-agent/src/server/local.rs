//! The local member: `GET /v1/self`, `PUT /v1/self/meta`,
//! `PUT /v1/self/health`, `POST /v1/join`, `POST /v1/leave`, `GET /healthz`.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use vigil::Health;

use super::error::{ApiError, ApiResult};
use super::json::MemberJson;
use super::members::parse_health;
use super::state::AppState;
use crate::meta;

/// `GET /v1/self`: this member's entry, plus what only it knows: its local
/// health score, traffic totals, whether traffic is encrypted, and warnings.
pub(crate) async fn get_self(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let v = s.vigil();
    let m = v
        .member(v.name())
        .ok_or_else(|| ApiError::Unavailable("this member's entry is not published yet".into()))?;
    let mut json = serde_json::to_value(s.member_json(&m)).map_err(|e| ApiError::Internal(e.to_string()))?;
    let metrics = v.metrics();
    let (bytes_in, bytes_out) =
        metrics.traffic.iter().fold((0, 0), |(i, o), k| (i + k.bytes_in, o + k.bytes_out));
    let mut warnings = Vec::new();
    if s.plaintext() {
        warnings.push("traffic is not encrypted or authenticated (--insecure-plaintext)");
    }
    if let Some(obj) = json.as_object_mut() {
        obj.insert("local_health".into(), metrics.local_health.into());
        obj.insert("bytes_in".into(), bytes_in.into());
        obj.insert("bytes_out".into(), bytes_out.into());
        obj.insert("encrypted".into(), (!s.plaintext()).into());
        obj.insert("warnings".into(), warnings.into());
    }
    Ok(Json(json))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinBody {
    addrs: Vec<String>,
}

/// `POST /v1/join`.
pub(crate) async fn join(
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
    let n = s.vigil().join(&body.addrs, Duration::from_secs(10)).await?;
    Ok(Json(serde_json::json!({ "members": n })))
}

/// `POST /v1/leave`: leaves, then stops the agent.
pub(crate) async fn leave(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let disseminated = s.leave().await?;
    s.stop();
    Ok(Json(serde_json::json!({ "left": true, "disseminated": disseminated })))
}

/// `PUT /v1/self/meta`.
pub(crate) async fn set_meta(
    State(s): State<AppState>,
    body: Result<Json<BTreeMap<String, String>>, JsonRejection>,
) -> ApiResult<Json<MemberJson>> {
    let Json(map) = body?;
    let bytes = meta::encode(&map).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    s.vigil().set_metadata(bytes).await?;
    Ok(Json(fresh_self(&s).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthBody {
    status: String,
    #[serde(default)]
    reason: String,
}

/// `PUT /v1/self/health`.
pub(crate) async fn set_health(
    State(s): State<AppState>,
    body: Result<Json<HealthBody>, JsonRejection>,
) -> ApiResult<Json<MemberJson>> {
    let Json(body) = body?;
    let status = parse_health(&body.status)?;
    let health = Health::new(status, &body.reason).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    s.vigil().set_health(health).await?;
    Ok(Json(fresh_self(&s).await?))
}

/// This member as the protocol task sees it now (after a change).
async fn fresh_self(s: &AppState) -> ApiResult<MemberJson> {
    let v = s.vigil();
    let all = v.members_now().await?;
    all.iter()
        .find(|m| m.name.as_str() == v.name())
        .map(|m| s.member_json(m))
        .ok_or_else(|| ApiError::Internal("own entry missing from the member list".into()))
}

/// `GET /healthz`.
pub(crate) async fn healthz(State(s): State<AppState>) -> Response {
    let v = s.vigil();
    match v.member(v.name()) {
        Some(m) => Json(serde_json::json!({ "status": "ok", "name": v.name(), "state": m.state.as_str() }))
            .into_response(),
        None => ApiError::Unavailable("starting".into()).into_response(),
    }
}
