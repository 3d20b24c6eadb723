//! `GET /v1/events`: the event log as server-sent events, resumable with
//! `Last-Event-ID` (or `?after=ID`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::{Stream, StreamExt, stream};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use super::error::{ApiError, ApiResult};
use super::state::{AppState, Refusal};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Same as the `Last-Event-ID` header.
    after: Option<u64>,
}

/// `GET /v1/events`.
pub(crate) async fn stream(
    State(s): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let Query(q) = query?;
    // Held by the stream: dropped, and the place given back, when the
    // subscriber goes (its connection closes) or the agent stops.
    let permit = s.subscriber().ok_or_else(|| {
        s.refuse(Refusal::Subscribers);
        ApiError::Unavailable(format!(
            "too many event subscribers ({} connected, the limit of http_max_subscribers): try again later",
            s.api().max_subscribers
        ))
    })?;
    let header_id = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()).ok_or_else(|| {
            ApiError::BadRequest("Last-Event-ID must be an event id (a non-negative integer)".into())
        })?),
        None => None,
    };
    let (past, live) = s.log().resume(header_id.or(q.after));
    let mut stop = s.stopping();
    let live = BroadcastStream::new(live)
        // A client that falls behind is cut off; it resumes with Last-Event-ID.
        .take_while(|r| std::future::ready(r.is_ok()))
        .filter_map(|r| std::future::ready(r.ok()));
    let all = stream::iter(past)
        .chain(live)
        .map(move |l| {
            let _held = &permit;
            Ok(SseEvent::default().id(l.id.to_string()).event("membership").data(l.json.clone()))
        })
        .take_until(async move {
            let _ = stop.wait_for(|s| *s).await;
        });
    Ok(Sse::new(all).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}
