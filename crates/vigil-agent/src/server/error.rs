//! The one error type of the API: bad input gets a 4xx with
//! `{"error": "..."}` saying what was wrong; internal faults get a generic
//! 500 (the cause is logged).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vigil::CommandError;

/// The one error type of the API.
#[derive(Debug)]
pub enum ApiError {
    /// 400: the request was wrong; the message says how.
    BadRequest(String),
    /// 404.
    NotFound(String),
    /// 409: the target is not in a state that allows it.
    Conflict(String),
    /// 408: the request's body did not arrive in time.
    Timeout(String),
    /// 413: the request's body is over the limit.
    TooLarge(String),
    /// 503: the member cannot do it now (shut down, no seed answered).
    Unavailable(String),
    /// 500: logged, not shown.
    Internal(String),
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Timeout(m) => (StatusCode::REQUEST_TIMEOUT, m),
            ApiError::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
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
