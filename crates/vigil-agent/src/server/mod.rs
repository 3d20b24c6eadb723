//! The HTTP JSON API, as a value: [`app`] builds the router from an
//! [`AppState`] (tests call it with `tower::ServiceExt::oneshot`); [`serve`]
//! runs it on a listener until the agent stops.
//!
//! Bad input gets a 4xx with `{"error": "..."}` saying what was wrong;
//! internal faults get a generic 500 (the cause is logged): [`ApiError`].
//!
//! | file | what |
//! | --- | --- |
//! | `state.rs` | [`AppState`]: the member, the event log, the stop signal, the token |
//! | `error.rs` | [`ApiError`] |
//! | `json.rs` | [`MemberJson`], the member shape several endpoints share |
//! | `options.rs` | [`ApiOptions`]: accepted `Host` names, limits |
//! | `listen.rs` | [`serve`]: the connection loop, its cap and idle timeout |
//! | `auth.rs` | request checks before any handler (Host, Origin, content type, the bearer token) |
//! | `body.rs` | request bodies read whole within the idle timeout and a size limit (408, 413) |
//! | `members.rs` | `GET /v1/members` (filters), `GET /v1/members/{name}` |
//! | `feeds.rs` | `host:port` lines for load balancers (`?format=text`) |
//! | `local.rs` | `/v1/self`, `/v1/self/meta`, `/v1/self/health`, `/v1/join`, `/v1/leave`, `/healthz` |
//! | `events.rs` | `GET /v1/events`: server-sent events, resumable |
//! | `groups.rs` | `GET /v1/groups`: failover groups |
//! | `keys.rs` | `/v1/keys`: the cluster keyring |
//! | `metrics.rs` | `GET /metrics`: one registry |
//! | `dashboard.rs` | `/` and `/assets/{file}` |

mod auth;
mod body;
mod dashboard;
mod error;
mod events;
mod feeds;
mod groups;
mod json;
mod keys;
mod listen;
mod local;
mod members;
mod metrics;
mod options;
mod state;

use axum::Router;
use axum::http::Uri;
use axum::routing::{get, post, put};

pub use body::MAX_BODY;
pub use error::{ApiError, ApiResult};
pub use groups::{GroupJson, groups_json};
pub use json::MemberJson;
pub use keys::{KeyBody, ReportJson};
pub use listen::serve;
pub use metrics::render as render_metrics;
pub use options::{ApiOptions, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_SUBSCRIBERS};
pub use state::{AppState, Refusal};

/// The router: every endpoint of docs/OPERATIONS.md.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/members", get(members::list))
        .route("/v1/members/{name}", get(members::one).delete(members::force_leave))
        .route("/v1/self", get(local::get_self))
        .route("/v1/events", get(events::stream))
        .route("/v1/join", post(local::join))
        .route("/v1/leave", post(local::leave))
        .route("/v1/self/meta", put(local::set_meta))
        .route("/v1/self/health", put(local::set_health))
        .route("/v1/groups", get(groups::list))
        .route("/metrics", get(metrics::scrape))
        .route("/healthz", get(local::healthz))
        .route("/v1/keys", get(keys::list))
        .route("/v1/keys/{op}", post(keys::op))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .fallback(not_found)
        // Inside the guard: a refused request's body is never read.
        .layer(axum::middleware::from_fn_with_state(state.clone(), body::deadline))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no endpoint at {}", uri.path()))
}
