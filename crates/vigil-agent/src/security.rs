//! The agent's side of security: the cluster key file, the API token, the
//! `/v1/keys` endpoints, and the `vigil keygen` / `vigil keys` commands.

use std::path::Path;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil::{Key, KeyOp, KeyReport, Keyring};

use crate::api::{ApiError, AppState};
use crate::cli::{KeysArgs, KeysCommand};
use crate::client::{ClientError, base_url, get, send};

/// Longest key or token file read.
const MAX_SECRET_FILE: u64 = 4096;

/// Reads a secret file, refusing one that other users can read.
pub fn read_secret(path: &Path, what: &str) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{what} {} is readable by other users (mode {mode:o}): run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!("{what} {} is {} bytes: not a {what}", path.display(), meta.len()));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The keyring from a key file (one base64 key; more lines: more keys, the
/// first one primary) for the cluster called `cluster`.
pub fn load_keyring(path: &Path, cluster: &str) -> Result<Keyring, String> {
    let text = read_secret(path, "key file")?;
    let mut keys = text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'));
    let first = keys.next().ok_or_else(|| format!("key file {} holds no key", path.display()))?;
    let parse = |k: &str| Key::from_base64(k).map_err(|e| format!("key file {}: {e}", path.display()));
    let mut ring = Keyring::new(parse(first)?, cluster);
    for k in keys {
        ring.install(parse(k)?).map_err(|e| format!("key file {}: {e}", path.display()))?;
    }
    Ok(ring)
}

/// Refuses mutating calls (`POST`, `PUT`, `DELETE`) without the bearer token,
/// when the agent has one.
pub async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let mutating = matches!(*req.method(), Method::POST | Method::PUT | Method::DELETE | Method::PATCH);
    if let Some(token) = s.token()
        && mutating
    {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| subtle_eq(g.as_bytes(), token.as_bytes()));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(json!({"error": "this call changes the agent: send `Authorization: Bearer <token>` (the token in the agent's --http-token-file)"})),
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// Constant-time comparison of two byte strings.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

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
pub async fn list_keys(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    match s.vigil().keys().await.map_err(|e| ApiError::Unavailable(e.to_string()))? {
        Some(keys) => Ok(Json(json!({"encrypted": true, "primary": keys.first(), "keys": keys}))),
        None => Ok(Json(json!({"encrypted": false, "primary": null, "keys": []}))),
    }
}

/// `POST /v1/keys/install`, `/use`, `/remove`.
pub async fn key_op(
    State(s): State<AppState>,
    axum::extract::Path(op): axum::extract::Path<String>,
    body: Result<Json<KeyBody>, axum::extract::rejection::JsonRejection>,
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

/// `vigil keygen`.
pub fn keygen() -> Result<(), ClientError> {
    println!("{}", Key::generate().to_base64());
    Ok(())
}

/// `vigil keys list|install|use|remove`.
pub fn keys(args: &KeysArgs) -> Result<(), ClientError> {
    let base = base_url(&args.client.http);
    let (op, key) = match &args.command {
        KeysCommand::List => {
            let v = get(&base, "/v1/keys")?;
            if v["encrypted"] == Value::Bool(false) {
                println!("traffic is not encrypted (the agent runs with --insecure-plaintext)");
                return Ok(());
            }
            for (i, k) in v["keys"].as_array().into_iter().flatten().enumerate() {
                println!("{} {}", k.as_str().unwrap_or(""), if i == 0 { "(primary)" } else { "" });
            }
            return Ok(());
        }
        KeysCommand::Install { key } => ("install", key),
        KeysCommand::Use { key } => ("use", key),
        KeysCommand::Remove { key } => ("remove", key),
    };
    let body = json!({"key": key, "local": args.local});
    let r = send("POST", &base, &format!("/v1/keys/{op}"), &body)?;
    println!(
        "{op} {}: applied by {} member(s)",
        r["key"].as_str().unwrap_or(""),
        r["applied"].as_array().map_or(0, Vec::len)
    );
    for f in r["refused"].as_array().into_iter().flatten() {
        println!(
            "  refused by {}: {}",
            f["member"].as_str().unwrap_or(""),
            f["error"].as_str().unwrap_or("")
        );
    }
    for m in r["missing"].as_array().into_iter().flatten() {
        println!("  no answer from {}", m.as_str().unwrap_or(""));
    }
    if r["complete"] == Value::Bool(true) {
        Ok(())
    } else {
        Err(ClientError(format!(
            "`keys {op}` did not reach every member: repeat it, or fix those members, before the next step"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_must_be_private_and_hold_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let k = Key::generate();
        std::fs::write(&path, format!("{}\n", k.to_base64())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_keyring(&path, "c").unwrap_err();
        assert!(e.contains("readable by other users") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_keyring(&path, "c").unwrap().list(), vec![k.fingerprint()]);
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(load_keyring(&path, "c").unwrap_err().contains("base64"));
        std::fs::write(&path, "").unwrap();
        assert!(load_keyring(&path, "c").unwrap_err().contains("no key"));
    }
}
