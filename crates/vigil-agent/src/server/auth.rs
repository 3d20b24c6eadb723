//! Checks a request passes before any handler runs, as one middleware
//! layer ([`guard`]), in this order:
//!
//! 1. `Host` is an IP address, `localhost`, or a name of
//!    `http_allowed_hosts` (else 403): a DNS-rebinding page reaches the API
//!    under its own name, which is none of these.
//! 2. No cross-site caller: an `Origin` other than the API's own
//!    (`http://` + `Host`), or `Sec-Fetch-Site: cross-site` on anything but
//!    a top-level navigation, gets 403.
//! 3. A call that changes the agent (`POST`, `PUT`, `DELETE`, `PATCH`) has
//!    `Content-Type: application/json` (else 415): a form or `text/plain`
//!    body, which a page of another site may send without asking the
//!    browser's permission (CORS preflight), is refused before it acts.
//! 4. The bearer token for calls that change the agent, when it has one.
//!
//! And after the handler: a 405 (wrong method) gets a JSON message.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::state::AppState;

/// What a refused caller should send instead.
pub(crate) const SEND_JSON: &str =
    "send Content-Type: application/json (curl: -H 'Content-Type: application/json')";

/// The checks of this module's table, then the handler.
pub(crate) async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(refusal) = check(&s, req.method(), req.headers()) {
        return refusal;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
        return method_not_allowed(resp, &method, &path);
    }
    resp
}

/// A refusal, or `None` if the request may reach its handler.
fn check(s: &AppState, method: &Method, headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or(""));
    if let Some(host) = host
        && !s.api().host_allowed(host)
    {
        let msg = format!(
            "Host `{}` is not a name of this agent: use its IP address or localhost, or add the name to \
             http_allowed_hosts (--http-allowed-hosts)",
            host.escape_debug()
        );
        return Some(refuse(StatusCode::FORBIDDEN, msg));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = host.is_some_and(|h| {
            origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        });
        if !own {
            let msg = format!(
                "Origin `{}` is not this API's own: the API does not answer pages of other sites",
                origin.to_str().unwrap_or("?").escape_debug()
            );
            return Some(refuse(StatusCode::FORBIDDEN, msg));
        }
    }
    let mutating = matches!(*method, Method::POST | Method::PUT | Method::DELETE | Method::PATCH);
    let navigation = *method == Method::GET && header_is(headers, "sec-fetch-mode", "navigate");
    if header_is(headers, "sec-fetch-site", "cross-site") && !navigation {
        let msg = "Sec-Fetch-Site: cross-site: the API does not answer pages of other sites";
        return Some(refuse(StatusCode::FORBIDDEN, msg.into()));
    }
    if mutating && !is_json(headers.get(header::CONTENT_TYPE)) {
        let given = headers
            .get(header::CONTENT_TYPE)
            .map_or("none".into(), |c| format!("`{}`", c.to_str().unwrap_or("?").escape_debug()));
        let msg = format!("this call takes a JSON body (Content-Type {given}): {SEND_JSON}");
        return Some(refuse(StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
    }
    if let Some(token) = s.token()
        && mutating
    {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| subtle_eq(g.as_bytes(), token.as_bytes()));
        if !ok {
            return Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    Json(json!({"error": "this call changes the agent: send `Authorization: Bearer <token>` (the token in the agent's --http-token-file)"})),
                )
                    .into_response(),
            );
        }
    }
    None
}

/// `Content-Type: application/json`, parameters (`; charset=utf-8`) allowed.
fn is_json(ct: Option<&HeaderValue>) -> bool {
    ct.and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn header_is(headers: &HeaderMap, name: &str, value: &str) -> bool {
    headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
}

fn refuse(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The router's empty 405 with a JSON message (the router adds the `Allow`
/// header after this layer).
fn method_not_allowed(resp: Response, method: &Method, path: &str) -> Response {
    let (mut parts, _) = resp.into_parts();
    let message = json!({
        "error": format!("{method} is not a method of {path} (the Allow header lists those that are; see docs/OPERATIONS.md)")
    })
    .to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(message))
}

/// Constant-time comparison of two byte strings.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
