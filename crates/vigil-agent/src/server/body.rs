//! Request bodies are read whole, within `http_idle_timeout` and up to
//! [`MAX_BODY`], before any handler runs: a client that sends its headers
//! and then trickles its body (or never sends it) holds a connection slot
//! for at most the idle timeout, not forever, and gets a `408`; a body over
//! the limit gets a `413`. The API's bodies are small JSON documents.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::{AppState, Refusal};

/// Largest request body the API reads.
pub const MAX_BODY: usize = 64 << 10;

/// Middleware: buffers the request's body under the deadline and the limit.
pub(crate) async fn deadline(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let idle = s.api().idle_timeout;
    match tokio::time::timeout(idle, to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(Err(e)) if is_too_large(&e) => {
            s.refuse(Refusal::LargeBody);
            ApiError::TooLarge(format!("request body over {MAX_BODY} bytes")).into_response()
        }
        // The client closed or broke the connection mid-body.
        Ok(Err(e)) => ApiError::BadRequest(format!("request body: {e}")).into_response(),
        Err(_) => {
            s.refuse(Refusal::SlowBody);
            let secs = idle.as_secs_f64();
            ApiError::Timeout(format!("request body not received within {secs} s (http_idle_timeout)"))
                .into_response()
        }
    }
}

/// Whether `to_bytes` failed on the length limit.
fn is_too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}
