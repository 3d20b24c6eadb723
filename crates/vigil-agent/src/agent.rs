//! `vigil agent`: one member plus its HTTP API, event stream, checks,
//! handlers, failover and snapshot, for the lifetime given by a shutdown
//! future ([`run`]); [`main`] is that lifetime as a process.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use vigil::Vigil;

use crate::config::{AgentArgs, AgentConfig};
use crate::events::{EventLog, pump, unix_ms};
use crate::server::AppState;
use crate::{act, faults, logging, meta, secrets, server, snapshot};

/// The message of the log line that says the agent started, with its
/// `name`, `gossip` and `http` addresses as fields (the process harness
/// reads the addresses an agent bound from it).
pub const STARTED: &str = "vigil agent started";

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
    /// `--data-dir` cannot be created or written.
    #[error("invalid `data_dir`: {0}")]
    DataDir(String),
    /// A live member of the cluster has this member's name: its join was
    /// refused (or, both running, it yielded), and it stopped.
    #[error(
        "the name {name:?} is taken: a live member has it at {live_at}; choose another --name, \
         or pass --takeover if that member is gone"
    )]
    NameTaken {
        /// The name.
        name: String,
        /// Where the live member that keeps it is.
        live_at: std::net::SocketAddr,
    },
}

/// Exit status of an agent refused because a live member has its name.
pub const EXIT_NAME_TAKEN: u8 = 3;

impl RunError {
    /// The process's exit status for this error: 2 for a configuration the
    /// agent refuses (key or token file, data directory), 3 when the name is
    /// taken ([`EXIT_NAME_TAKEN`]), 1 for other failures.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Secret(_) | RunError::DataDir(_) => 2,
            RunError::NameTaken { .. } => EXIT_NAME_TAKEN,
            _ => 1,
        }
    }
}

/// `vigil agent` as a process: loads the configuration (exit 2 if refused),
/// sets up logs, and runs the agent until SIGTERM or Ctrl-C.
pub fn main(args: &AgentArgs) -> ExitCode {
    let config = match AgentConfig::load(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format, config.log_level.as_deref());
    let mut config = config;
    descriptor_budget(&mut config);
    // One thread: an agent is a few sockets and timers, idle most of the
    // time, and worker threads would only add wake-ups and memory. The
    // snapshot's file writes go to the blocking pool, as before.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reload_args = args.clone();
    let reload: Reload = Box::new(move || AgentConfig::load(&reload_args).map_err(|e| e.to_string()));
    let result = rt.block_on(run_reloading(config, shutdown_signal(), Some(reload)));
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Descriptors kept for what is not the HTTP API: gossip streams (the
/// library caps them at 256), the snapshot, handlers, checks, logs.
const RESERVED_FDS: u64 = 384;

/// Raises the soft limit on open files to the hard limit, logs the result,
/// and lowers `http_max_connections` if the API could otherwise take the
/// descriptors the rest needs.
fn descriptor_budget(config: &mut AgentConfig) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        tracing::warn!("cannot read the open-file limit (RLIMIT_NOFILE)");
        return;
    };
    // Linux refuses "unlimited" (above fs.nr_open, 1 048 576 by default).
    let target = hard.min(1 << 20);
    let soft = if soft < target {
        match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => {
                tracing::info!(
                    from = soft,
                    to = target,
                    "raised the open-file limit (RLIMIT_NOFILE) to its hard limit"
                );
                target
            }
            Err(e) => {
                tracing::warn!(soft, hard, "cannot raise the open-file limit (RLIMIT_NOFILE): {e}");
                soft
            }
        }
    } else {
        tracing::info!(soft, hard, "open-file limit (RLIMIT_NOFILE)");
        soft
    };
    let room = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(16);
    if config.api.max_connections > room {
        tracing::warn!(
            limit = soft,
            "http_max_connections {} lowered to {room}: the open-file limit leaves no more room",
            config.api.max_connections
        );
        config.api.max_connections = room;
        config.api.max_subscribers = config.api.max_subscribers.min(room);
    }
}

/// Creates `dir` if needed and checks that a file can be written in it, so
/// that a snapshot directory that cannot be written stops the start, not
/// the first snapshot.
fn check_data_dir(dir: &std::path::Path) -> Result<(), RunError> {
    let fail = |what: &str, e: std::io::Error| RunError::DataDir(format!("{} {what}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot be created", e))?;
    let probe = dir.join(format!(".vigil-write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail("is not writable", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The library's configuration of the member: address, preset, metadata, an
/// incarnation above the snapshot's, test-only faults.
fn member_config(config: &AgentConfig, snap: Option<&snapshot::Snapshot>) -> Result<vigil::Config, RunError> {
    let mut lib = vigil::Config::new(config.name.clone(), config.bind).with_protocol(config.protocol());
    lib.advertise = config.advertise;
    lib.takeover = config.takeover;
    // Validated in AgentConfig::merge.
    lib.meta = meta::encode(&config.meta).unwrap_or_default();
    let clock_secs = unix_ms() / 1000;
    lib.incarnation = Some(match snap {
        Some(s) if s.name == config.name => clock_secs.max(s.incarnation + 1),
        _ => clock_secs,
    });
    #[cfg(feature = "testing")]
    if let Some(f) = faults::from_env().map_err(RunError::Faults)? {
        lib = lib.with_faults(f);
    }
    #[cfg(not(feature = "testing"))]
    faults::warn_if_requested();
    Ok(lib)
}

/// Seeds to join: `--join`, else the members of the snapshot.
fn seeds(config: &AgentConfig, snap: Option<&snapshot::Snapshot>) -> Vec<String> {
    if !config.join.is_empty() {
        return config.join.clone();
    }
    let Some(s) = snap else { return Vec::new() };
    let seeds = s.seeds();
    if !seeds.is_empty() {
        tracing::info!(known = seeds.len(), "no --join given: rejoining the members in the snapshot");
    }
    seeds
}

/// Reads the configuration again (on SIGHUP): the command line, the
/// environment and the config file, as at the start.
pub type Reload = Box<dyn Fn() -> Result<AgentConfig, String> + Send>;

/// Runs the agent until `shutdown` completes, `POST /v1/leave` is called, or
/// (with `exit_on_stdin_eof`) standard input closes; then leaves gracefully
/// within the configured time and stops.
pub async fn run(config: AgentConfig, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_reloading(config, shutdown, None).await
}

/// [`run`], and with `reload`, on every SIGHUP: reads the configuration
/// again and applies what can change while the member runs (checks,
/// handlers, failover, log level, new keys of the key file, added); a refused
/// configuration is logged and the running one kept. Settings that need a
/// restart (name, addresses, preset, protocol, data directory) are logged
/// as such.
pub async fn run_reloading(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
    reload: Option<Reload>,
) -> Result<(), RunError> {
    // Listened for before anything starts: a SIGHUP never kills the agent.
    let mut hup = match &reload {
        Some(_) => match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("cannot listen for SIGHUP: {e}");
                None
            }
        },
        None => None,
    };
    if let Some(dir) = &config.data_dir {
        check_data_dir(dir)?;
    }
    let snap = config.data_dir.as_deref().and_then(snapshot::load);
    let mut lib = member_config(&config, snap.as_ref())?;
    let token = match &config.http_token_file {
        Some(path) => Some(secrets::read_token(path).map_err(RunError::Secret)?),
        None => None,
    };
    // The fingerprints of the key file's keys as last read (the persisted
    // keyring records them).
    let (key_file_tx, key_file_rx) = watch::channel(String::new());
    match &config.key_file {
        Some(path) => {
            // Read once: `-` is standard input.
            let text = secrets::read_key_source(path, "key file").map_err(RunError::Secret)?;
            let file_keys = secrets::parse_keys(&text, path).map_err(RunError::Secret)?;
            key_file_tx.send_replace(secrets::fingerprints(&file_keys));
            let (keys, from) = secrets::start_keys_from(file_keys, path, config.data_dir.as_deref())
                .map_err(RunError::Secret)?;
            let ring = secrets::keyring_of(&keys, &config.cluster_name, path).map_err(RunError::Secret)?;
            tracing::info!(cluster = %config.cluster_name, keys = ring.list().len(), "traffic is encrypted; {from}");
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
    // Subscribed before the member runs: every event reaches the log and
    // --events-json, those of the join below included.
    let (vigil, events) = Vigil::start_with_events(lib).await?;
    let vigil = Arc::new(vigil);
    tracing::info!(
        name = %config.name,
        gossip = %vigil.local_addr(),
        http = %http_addr,
        preset = ?config.preset,
        "{STARTED}"
    );

    let log = Arc::new(EventLog::default());
    let changed = Arc::new(Notify::new());
    let pump_task = tokio::spawn(pump(events, log.clone(), config.events_json, changed.clone()));
    let act = act::start(&config.act, vigil.clone(), &log, !config.join.is_empty() || snap.is_some());
    #[cfg(feature = "testing")]
    let faults_file = faults::watch_file(vigil.clone());
    let (stop_snap_tx, stop_snap_rx) = watch::channel(false);
    let writer = config
        .data_dir
        .clone()
        .map(|dir| tokio::spawn(snapshot::writer(vigil.clone(), dir, changed.clone(), stop_snap_rx.clone())));
    let keyring_writer = match (&config.data_dir, &config.key_file) {
        (Some(dir), Some(_)) => {
            Some(tokio::spawn(secrets::keyring_writer(vigil.clone(), dir.clone(), key_file_rx, stop_snap_rx)))
        }
        _ => None,
    };

    let seeds = seeds(&config, snap.as_ref());
    if !seeds.is_empty() {
        let v = vigil.clone();
        tokio::spawn(async move {
            match v.join(&seeds, Duration::from_secs(60)).await {
                Ok(n) => tracing::info!(members = n, "joined the cluster"),
                // Said, and acted on, by `name_taken` below.
                Err(vigil::CommandError::NameConflict { .. }) => {}
                Err(e) => tracing::warn!("{e}; still trying in the background"),
            }
        });
    }

    let state = AppState::new(vigil.clone(), log, origin_ms, config.leave_timeout)
        .with_security(token, config.insecure_plaintext)
        .with_api(config.api.clone())
        .with_act(act.shared());
    if config.exit_on_stdin_eof {
        watch_stdin(state.clone());
    }
    let mut stopping = state.stopping();
    let server_state = state.clone();
    let server = tokio::spawn(async move {
        if let Err(e) = server::serve(listener, server_state).await {
            tracing::error!("HTTP server failed: {e}");
        }
    });

    let mut act = act;
    let mut running = config;
    tokio::pin!(shutdown);
    let taken = loop {
        let hangup = async {
            match hup.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("signal received: leaving the cluster");
                break None;
            }
            _ = stopping.wait_for(|s| *s) => {
                tracing::info!("stop requested: leaving the cluster");
                break None;
            }
            at = name_taken(&vigil) => break Some(at),
            Some(()) = hangup => {
                let Some(load) = &reload else { continue };
                match load() {
                    Ok(new) => {
                        act = apply_reload(&running, &new, act, &state, &key_file_tx).await;
                        running = new;
                    }
                    Err(e) => tracing::error!("SIGHUP: configuration refused, the running one is kept: {e}"),
                }
            }
        }
    };
    let config = running;
    // An active failover member demotes before it tells the cluster it leaves.
    act.shutdown().await;
    #[cfg(feature = "testing")]
    faults_file.inspect(tokio::task::JoinHandle::abort);
    // A member whose name was taken has stopped already: nothing to leave.
    if taken.is_none() {
        match state.leave().await {
            Ok(true) => tracing::info!("left: the cluster was told"),
            Ok(false) => tracing::warn!("left, but not every member may have been told in time"),
            Err(e) => tracing::warn!("leave failed: {e}"),
        }
    }
    state.stop();
    let _ = stop_snap_tx.send(true);
    if let Some(w) = writer {
        let _ = w.await;
    }
    if let Some(w) = keyring_writer {
        let _ = w.await;
    }
    if let Some(live_at) = taken {
        let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        pump_task.abort();
        return Err(RunError::NameTaken { name: config.name.clone(), live_at });
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

/// Applies a configuration read again on SIGHUP; returns the checks,
/// handlers and failover now running.
async fn apply_reload(
    old: &AgentConfig,
    new: &AgentConfig,
    act: act::Act,
    state: &AppState,
    key_file: &watch::Sender<String>,
) -> act::Act {
    tracing::info!("SIGHUP: reloading the configuration");
    let restart = [
        ("name", old.name != new.name),
        ("bind", old.bind != new.bind),
        ("advertise", old.advertise != new.advertise),
        ("http", old.http != new.http),
        ("data_dir", old.data_dir != new.data_dir),
        ("cluster_name", old.cluster_name != new.cluster_name),
        ("preset", old.preset != new.preset),
        ("protocol", old.protocol_overrides != new.protocol_overrides),
        ("meta", old.meta != new.meta),
        ("http_token_file", old.http_token_file != new.http_token_file),
        ("encryption", old.key_file.is_some() != new.key_file.is_some()),
    ];
    for (key, _) in restart.iter().filter(|(_, changed)| *changed) {
        tracing::warn!(key, "SIGHUP: this setting changed but takes effect only at a restart");
    }
    if let Err(e) = logging::set_level(new.log_level.as_deref()) {
        tracing::error!("SIGHUP: {e}");
    }
    if let (Some(_), Some(path)) = (&old.key_file, &new.key_file) {
        secrets::reload_key_file(state.vigil(), path, key_file).await;
    }
    let act = act.reload(&new.act, state.log_arc()).await;
    state.set_act(act.shared());
    act
}

/// Completes when the member has stopped because a live member has its name
/// (its join was refused, or it yielded), with that member's address.
async fn name_taken(vigil: &Vigil) -> std::net::SocketAddr {
    vigil.wait_name_taken().await
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
