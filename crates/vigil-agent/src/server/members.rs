//! `GET /v1/members` (with filters, and the text feed),
//! `GET /v1/members/{name}` and `DELETE /v1/members/{name}` (force-leave).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use vigil::{HealthStatus, Member, State as MemberState};

use super::error::{ApiError, ApiResult};
use super::feeds;
use super::json::MemberJson;
use super::state::AppState;
use crate::meta;

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

/// A health status as the API spells it (`ok`, `degraded`, `failing`).
pub(crate) fn parse_health(s: &str) -> ApiResult<HealthStatus> {
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

/// `GET /v1/members`: JSON, or `host:port` lines ([`feeds`]).
pub(crate) async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(mut query) = query?;
    let text = feeds::wants_text(&mut query, &headers)?;
    let keep = filter(&query)?;
    let list = s.vigil().members();
    let list: Vec<MemberJson> = list.iter().filter(|m| keep(m)).map(|m| s.member_json(m)).collect();
    Ok(if text { feeds::text(&list) } else { Json(list).into_response() })
}

/// `DELETE /v1/members/{name}`: a failed member is marked left at once
/// and that is gossiped (Serf's `force-leave`); 409 for a member in another
/// state, 404 for an unknown one. Answers the member's entry now.
pub(crate) async fn force_leave(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<MemberJson>> {
    match s.vigil().force_leave(&name).await? {
        None => Err(ApiError::NotFound(format!("no member named `{name}`"))),
        Some(MemberState::Dead) => {
            tracing::info!(member = %name, "forced to leave (it was failed)");
            let now = s.vigil().members_now().await?;
            let m = now
                .iter()
                .find(|m| m.name.as_str() == name)
                .ok_or_else(|| ApiError::NotFound(format!("`{name}` is forgotten")))?;
            Ok(Json(s.member_json(m)))
        }
        Some(other) => Err(ApiError::Conflict(format!(
            "`{name}` is {}: only a failed member can be forced to leave",
            other.as_str()
        ))),
    }
}

/// `GET /v1/members/{name}`.
pub(crate) async fn one(State(s): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<MemberJson>> {
    match s.vigil().member(&name) {
        Some(m) => Ok(Json(s.member_json(&m))),
        None => Err(ApiError::NotFound(format!("no member named `{name}`"))),
    }
}
