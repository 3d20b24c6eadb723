//! Checks a request passes before any handler runs: the bearer token for
//! calls that change the agent. Request-level guards (origin, host, content
//! type) belong here too, as one middleware layer.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::AppState;

/// Refuses mutating calls (`POST`, `PUT`, `DELETE`) without the bearer token,
/// when the agent has one.
pub(crate) async fn require_token(State(s): State<AppState>, req: Request, next: Next) -> Response {
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
