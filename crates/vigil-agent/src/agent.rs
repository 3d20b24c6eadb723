//! `vigil agent`: one member plus its HTTP API, event stream and snapshot,
//! for the lifetime given by a shutdown future.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
#[cfg(feature = "testing")]
use vigil::Faults;
use vigil::Vigil;

use crate::api::{AppState, app};
use crate::config::AgentConfig;
use crate::events::{EventLog, pump, unix_ms};
use crate::{meta, snapshot};

/// The agent could not start. Nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The member could not start (bad value, or its address is taken).
    #[error("cannot start the member: {0}")]
    Start(#[from] vigil::StartError),
    /// The HTTP API address could not be bound.
    #[error("cannot bind the HTTP API on {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// `VIGIL_FAULTS` could not be parsed (feature `testing` only).
    #[cfg(feature = "testing")]
    #[error("invalid VIGIL_FAULTS: {0}")]
    Faults(String),
    /// The key file or token file was refused.
    #[error("{0}")]
    Secret(String),
}

/// Parses the test-only `VIGIL_FAULTS` value: comma-separated
/// `delay=DURATION`, `drop_in=P`, `drop_out=P` (probabilities 0 to 1),
/// `block=IP:PORT` (both ways, repeatable). Feature `testing` only.
#[cfg(feature = "testing")]
pub fn parse_faults(s: &str) -> Result<Faults, String> {
    let mut f = Faults::default();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}` is not KEY=VALUE"))?;
        let prob = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| format!("`{k}` must be a probability between 0 and 1, not `{v}`"))
        };
        match k {
            "delay" => f.delay = humantime::parse_duration(v).map_err(|e| format!("`delay`: {e}"))?,
            "drop_in" => f.drop_inbound = prob(v)?,
            "drop_out" => f.drop_outbound = prob(v)?,
            "block" => f = f.block(v.parse().map_err(|e| format!("`block`: {v}: {e}"))?),
            _ => return Err(format!("unknown key `{k}`: expected delay, drop_in, drop_out or block")),
        }
    }
    Ok(f)
}

/// Runs the agent until `shutdown` completes, `POST /v1/leave` is called, or
/// (with `exit_on_stdin_eof`) standard input closes; then leaves gracefully
/// within the configured time and stops.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let snap = config.data_dir.as_deref().and_then(snapshot::load);
    let mut lib = vigil::Config::new(config.name.clone(), config.bind).with_protocol(config.protocol());
    lib.advertise = config.advertise;
    // Validated in AgentConfig::merge.
    lib.meta = meta::encode(&config.meta).unwrap_or_default();
    let clock_secs = unix_ms() / 1000;
    lib.incarnation = Some(match &snap {
        Some(s) if s.name == config.name => clock_secs.max(s.incarnation + 1),
        _ => clock_secs,
    });
    #[cfg(feature = "testing")]
    if let Ok(spec) = std::env::var("VIGIL_FAULTS")
        && !spec.trim().is_empty()
    {
        let faults = parse_faults(&spec).map_err(RunError::Faults)?;
        tracing::warn!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        tracing::warn!("!!! VIGIL_FAULTS={spec}: FAULT INJECTION IS ON. TEST USE ONLY.");
        tracing::warn!("!!! This agent drops and delays its own packets ON PURPOSE.");
        tracing::warn!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
        lib = lib.with_faults(faults);
    }
    #[cfg(not(feature = "testing"))]
    if std::env::var_os("VIGIL_FAULTS").is_some() || std::env::var_os("VIGIL_FAULTS_FILE").is_some() {
        tracing::warn!(
            "VIGIL_FAULTS/VIGIL_FAULTS_FILE ignored: this binary has no fault injection (feature `testing`)"
        );
    }

    let token = match &config.http_token_file {
        Some(path) => {
            let t = crate::security::read_secret(path, "token file").map_err(RunError::Secret)?;
            let t = t.trim().to_string();
            if t.len() < 16 {
                return Err(RunError::Secret(format!(
                    "token file {}: use a token of at least 16 characters",
                    path.display()
                )));
            }
            Some(t)
        }
        None => None,
    };
    match &config.key_file {
        Some(path) => {
            let ring = crate::security::load_keyring(path, &config.cluster_name).map_err(RunError::Secret)?;
            tracing::info!(cluster = %config.cluster_name, keys = ring.list().len(), "traffic is encrypted");
            lib = lib.with_keyring(ring);
        }
        None => tracing::warn!(
            "--insecure-plaintext: traffic is NOT encrypted or authenticated; anyone on the network can join or lie"
        ),
    }

    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .map_err(|source| RunError::Http { addr: config.http, source })?;
    let http_addr = listener.local_addr().map_err(|source| RunError::Http { addr: config.http, source })?;
    let origin_ms = unix_ms();
    let vigil = Arc::new(Vigil::start(lib).await?);
    tracing::info!(
        name = %config.name,
        gossip = %vigil.local_addr(),
        http = %http_addr,
        preset = ?config.preset,
        "vigil agent started"
    );

    let log = Arc::new(EventLog::default());
    let changed = Arc::new(Notify::new());
    let pump_task = tokio::spawn(pump(vigil.clone(), log.clone(), config.events_json, changed.clone()));
    let act = crate::act::start(&config.act, vigil.clone(), &log, !config.join.is_empty() || snap.is_some());
    #[cfg(feature = "testing")]
    let faults_file = crate::act::watch_faults_file(vigil.clone());
    let (stop_snap_tx, stop_snap_rx) = watch::channel(false);
    let writer = config
        .data_dir
        .clone()
        .map(|dir| tokio::spawn(snapshot::writer(vigil.clone(), dir, changed.clone(), stop_snap_rx)));

    let seeds = if !config.join.is_empty() {
        config.join.clone()
    } else if let Some(s) = &snap {
        let seeds = s.seeds();
        if !seeds.is_empty() {
            tracing::info!(known = seeds.len(), "no --join given: rejoining the members in the snapshot");
        }
        seeds
    } else {
        Vec::new()
    };
    if !seeds.is_empty() {
        let v = vigil.clone();
        tokio::spawn(async move {
            match v.join(&seeds, Duration::from_secs(60)).await {
                Ok(n) => tracing::info!(members = n, "joined the cluster"),
                Err(e) => tracing::warn!("{e}; still trying in the background"),
            }
        });
    }

    let state = AppState::new(vigil.clone(), log, origin_ms, config.leave_timeout)
        .with_security(token, config.insecure_plaintext)
        .with_act(act.shared());
    if config.exit_on_stdin_eof {
        watch_stdin(state.clone());
    }
    let mut stopping = state.stopping();
    let server_state = state.clone();
    let mut server_stop = state.stopping();
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app(server_state))
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = result {
            tracing::error!("HTTP server failed: {e}");
        }
    });

    tokio::select! {
        () = shutdown => tracing::info!("signal received: leaving the cluster"),
        _ = stopping.wait_for(|s| *s) => tracing::info!("stop requested: leaving the cluster"),
    }
    // An active failover member demotes before it tells the cluster it leaves.
    act.shutdown().await;
    #[cfg(feature = "testing")]
    faults_file.inspect(tokio::task::JoinHandle::abort);
    let left = state.leave().await;
    match left {
        Ok(true) => tracing::info!("left: the cluster was told"),
        Ok(false) => tracing::warn!("left, but not every member may have been told in time"),
        Err(e) => tracing::warn!("leave failed: {e}"),
    }
    state.stop();
    let _ = stop_snap_tx.send(true);
    if let Some(w) = writer {
        let _ = w.await;
    }
    if let Some(dir) = &config.data_dir {
        snapshot::write_now(&vigil, dir).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), vigil.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    pump_task.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Stops the agent when standard input reaches its end (the parent is gone).
fn watch_stdin(state: AppState) {
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        handle.spawn(async move { state.stop() });
    });
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(feature = "testing")]
    fn faults_parse_and_bad_ones_are_named() {
        let f = parse_faults("delay=200ms, drop_in=0.1,drop_out=0.2,block=127.0.0.1:9").unwrap();
        assert_eq!(f.delay, Duration::from_millis(200));
        assert_eq!((f.drop_inbound, f.drop_outbound), (0.1, 0.2));
        assert_eq!(f.blocked_inbound.len(), 1);
        assert!(parse_faults("drop_in=2").unwrap_err().contains("drop_in"));
        assert!(parse_faults("jitter=1ms").unwrap_err().contains("jitter"));
    }
}
