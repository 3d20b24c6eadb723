//! `GET /v1/keys` and `POST /v1/keys/{install,use,remove}`: the cluster
//! keyring, changed on every alive member (or only this one with `local`).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil::{Key, KeyOp, KeyReport};

use super::error::ApiError;
use super::state::AppState;

/// `POST /v1/keys/{op}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// The key, base64.
    pub key: String,
    /// Only this member (default: every alive member).
    #[serde(default)]
    pub local: bool,
}

/// A key operation's outcome as JSON.
#[derive(Debug, Serialize)]
pub struct ReportJson {
    /// Operation.
    pub op: &'static str,
    /// Fingerprint of the key.
    pub key: String,
    /// Members that applied it (this one included).
    pub applied: Vec<String>,
    /// Members that refused it, with why.
    pub refused: Vec<Value>,
    /// Members that did not answer.
    pub missing: Vec<String>,
    /// Everyone applied it.
    pub complete: bool,
}

fn report_json(op: KeyOp, key: &Key, me: &str, r: KeyReport) -> ReportJson {
    let complete = r.complete();
    let mut applied = vec![me.to_string()];
    applied.extend(r.applied);
    ReportJson {
        op: op.as_str(),
        key: key.fingerprint(),
        applied,
        refused: r.refused.into_iter().map(|(m, e)| json!({"member": m, "error": e})).collect(),
        missing: r.missing,
        complete,
    }
}

/// `GET /v1/keys`.
pub(crate) async fn list(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    match s.vigil().keys().await.map_err(|e| ApiError::Unavailable(e.to_string()))? {
        Some(keys) => Ok(Json(json!({"encrypted": true, "primary": keys.first(), "keys": keys}))),
        None => Ok(Json(json!({"encrypted": false, "primary": null, "keys": []}))),
    }
}

/// `POST /v1/keys/install`, `/use`, `/remove`.
pub(crate) async fn op(
    State(s): State<AppState>,
    Path(op): Path<String>,
    body: Result<Json<KeyBody>, JsonRejection>,
) -> Result<Json<ReportJson>, ApiError> {
    let op = match op.as_str() {
        "install" => KeyOp::Install,
        "use" => KeyOp::Use,
        "remove" => KeyOp::Remove,
        other => {
            return Err(ApiError::NotFound(format!("no key operation `{other}`: install, use or remove")));
        }
    };
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let key = Key::from_base64(&body.key).map_err(|e| ApiError::BadRequest(format!("key: {e}")))?;
    let v = s.vigil();
    let result = if body.local {
        v.key_local(op, key.clone()).await.map(|()| KeyReport::default())
    } else {
        v.key_cluster(op, key.clone()).await
    };
    let report = result.map_err(|e| match e {
        vigil::CommandError::Keys(m) => ApiError::BadRequest(m),
        other => ApiError::Unavailable(other.to_string()),
    })?;
    Ok(Json(report_json(op, &key, v.name(), report)))
}
