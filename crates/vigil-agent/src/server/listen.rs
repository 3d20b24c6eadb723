//! The HTTP server loop ([`serve`]): HTTP/1 connections, each closed when it
//! stays silent (or sends a request's headers too slowly) for
//! `http_idle_timeout`, at most `http_max_connections` open at once; one
//! more is answered `503` at once and closed, so that a flood of idle
//! connections costs a bounded number of descriptors and never starves the
//! snapshot file, the gossip streams or the handlers.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::state::{AppState, Refusal};

/// How long connections in flight may take to finish once the agent stops.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves [`super::app`] on `listener` until [`AppState::stop`] is called,
/// then lets the requests in flight finish (for up to 2 s).
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let api = state.api().clone();
    let router = super::app(state.clone());
    let slots = Arc::new(Semaphore::new(api.max_connections));
    let busy = busy_response(api.max_connections);
    let mut stop = state.stopping();
    // Each connection's task holds a receiver: all gone, all finished.
    let (done_tx, done_rx) = tokio::sync::watch::channel(());
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors (EMFILE) or the like: try again soon,
                    // without spinning.
                    tracing::warn!("HTTP API: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refuse(stream, &busy);
            let n = state.refuse(Refusal::Connections);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(
                    limit = api.max_connections,
                    refused = n + 1,
                    "HTTP API: too many open connections: refusing new ones (http_max_connections)"
                );
            }
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = state.stopping();
        let done = done_rx.clone();
        let idle = api.idle_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _done = done;
            let mut builder = hyper::server::conn::http1::Builder::new();
            // The header timeout also runs while a kept-alive connection
            // waits for its next request: it is the idle timeout.
            builder.timer(TokioTimer::new()).header_read_timeout(idle);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    drop(listener);
    drop(done_rx);
    let _ = tokio::time::timeout(DRAIN, done_tx.closed()).await;
    Ok(())
}

/// Completes when the agent stops.
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The answer to a connection over the limit: a 503 in JSON, closing.
fn busy_response(limit: usize) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!("too many open connections ({limit}, the limit of http_max_connections): try again later")
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Writes `busy` if the socket takes it at once (never waits), then closes.
fn refuse(stream: TcpStream, busy: &[u8]) {
    let _ = stream.try_write(busy);
    drop(stream);
}
