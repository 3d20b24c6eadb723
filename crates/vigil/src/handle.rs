//! The handle a service holds: [`Vigil`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use vigil_proto::{Core, Event, Health, Identity, Instant, Member};

use crate::command::Command;
use crate::config::Config;
use crate::crypto::Key;
use crate::driver::Driver;
use crate::error::{CommandError, StartError};
#[cfg(feature = "testing")]
use crate::fault::Faults;
use crate::keys::{KeyOp, KeyReport};
use crate::metrics::Metrics;
use crate::publish::Shared;
use crate::transport::bind_both;

/// Events kept for a subscriber that falls behind; beyond this it is told it
/// lagged (and how many it missed), and the protocol never waits for it.
const EVENT_BUFFER: usize = 4096;

/// One member of a cluster, running in the background.
///
/// Cheap to share behind an `Arc`; every method takes `&self`. Dropping the
/// last handle stops the member (without a graceful leave: call
/// [`Vigil::leave`] first to leave).
#[derive(Debug)]
pub struct Vigil {
    cmd: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    shared: Arc<Shared>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    name: String,
    encrypted: bool,
    bound: SocketAddr,
    keyring_changes: tokio::sync::watch::Receiver<u64>,
}

impl Vigil {
    /// Binds the sockets and starts the member. It knows nobody until it joins.
    ///
    /// Events start at once (a member that was known before may contact it
    /// first): to receive every event of the member's life, use
    /// [`Vigil::start_with_events`] rather than [`Vigil::subscribe`] after this.
    pub async fn start(config: Config) -> Result<Vigil, StartError> {
        Ok(Vigil::start_with_events(config).await?.0)
    }

    /// Like [`Vigil::start`], and returns a subscription made before the
    /// member runs: it receives every event of the member's life, from the
    /// first (the members it learns of when it joins included). A
    /// subscriber that falls behind is treated as by [`Vigil::subscribe`].
    pub async fn start_with_events(
        config: Config,
    ) -> Result<(Vigil, broadcast::Receiver<Event>), StartError> {
        config.validate()?;
        let name = config.checked_name()?;
        let meta = config.checked_meta()?;
        let (udp, listener, recv_buf, send_buf) = bind_both(config.bind, config.socket_buffer)?;
        let bound = udp.local_addr().map_err(|source| StartError::Bind { addr: config.bind, source })?;
        tracing::info!(%bound, recv_buf, send_buf, "sockets bound (kernel-granted buffer sizes)");
        let advertise = match config.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), bound.port()),
            Some(a) => a,
            None if bound.ip().is_unspecified() => {
                return Err(StartError::Config {
                    field: "advertise",
                    reason: format!("bound to {bound}: set an address other members can reach"),
                });
            }
            None => bound,
        };
        let identity = Identity { name, addr: advertise, meta, health: config.health.clone() };
        // From the operating system's generator: the core derives its first
        // probe sequence number from it, which an attacker must not guess.
        let seed = config.seed.unwrap_or_else(<u64 as aes_gcm_siv::aead::Generate>::generate);
        let incarnation = config.incarnation.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
        });
        let mut core = Core::new(config.protocol.clone(), identity, incarnation, seed, Instant::ZERO)
            .map_err(|e| StartError::Config { field: e.field, reason: e.reason })?;
        if config.takeover {
            tracing::warn!(name = %config.name, "takeover: this member replaces a live member of its name");
            core.take_over();
        }
        if config.keyring.is_none() {
            tracing::warn!(
                "traffic is NOT encrypted or authenticated: anyone on the network can join or lie"
            );
        }
        #[cfg(feature = "testing")]
        if config.faults.is_some() {
            tracing::warn!("FAULT INJECTION IS ON: this member drops or delays packets on purpose");
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(256);
        // Subscribed before the driver runs: no event can come before it.
        let (events, first) = broadcast::channel(EVENT_BUFFER);
        let shared = Arc::new(Shared::new(advertise));
        let driver =
            Driver::new(core, (udp, listener), &config, seed, cmd_rx, events.clone(), shared.clone());
        let keyring_changes = driver.keyring_changes();
        let task = tokio::spawn(driver.run());
        let vigil = Vigil {
            cmd: cmd_tx,
            events,
            shared,
            task: std::sync::Mutex::new(Some(task)),
            name: config.name,
            encrypted: config.keyring.is_some(),
            bound,
            keyring_changes,
        };
        Ok((vigil, first))
    }

    /// This member's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address other members reach this one at.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr()
    }

    /// The address the sockets are bound to (UDP and TCP, the same port):
    /// [`Vigil::local_addr`] unless another address is advertised.
    pub fn bound_addr(&self) -> SocketAddr {
        self.bound
    }

    /// Joins through `seeds` (`IP:PORT` or `HOST:PORT`, resolved again at each
    /// attempt) with a full-state exchange. Attempts repeat with backoff until a
    /// seed answers; this waits at most `timeout` for that, and the attempts go
    /// on in the background if it returns early. Returns the number of members
    /// known once joined.
    ///
    /// Fails early with [`CommandError::Rejected`] when every seed tried
    /// rejected the join (another key or cluster name; attempts go on), and
    /// with [`CommandError::NameConflict`] when a live member already has
    /// this member's name (this member then stops; see
    /// [`Config::takeover`]).
    pub async fn join(&self, seeds: &[String], timeout: Duration) -> Result<usize, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Join { seeds: seeds.to_vec(), reply: Some(tx) }).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(match self.name_taken() {
                Some(live_at) => CommandError::NameConflict { name: self.name.clone(), live_at },
                None => CommandError::Stopped,
            }),
            Err(_) => Err(CommandError::Join(format!("no seed of {seeds:?} answered within {timeout:?}"))),
        }
    }

    /// Where the live member that has this member's name is, once this member
    /// stopped for it (its join was refused, or, both running, it yielded):
    /// the member no longer runs, and a service should exit with that reason.
    pub fn name_taken(&self) -> Option<SocketAddr> {
        self.shared.name_taken()
    }

    /// Completes when [`Vigil::name_taken`] becomes known (never, if this
    /// member keeps its name): what a service awaits to exit, without
    /// polling.
    pub async fn wait_name_taken(&self) -> SocketAddr {
        self.shared.name_taken_at().await
    }

    /// Starts joining through `seeds` in the background, retrying until one answers.
    pub async fn join_in_background(&self, seeds: &[String]) -> Result<(), CommandError> {
        self.send(Command::Join { seeds: seeds.to_vec(), reply: None }).await
    }

    /// A snapshot of every known member, this one first (refreshed within
    /// 50 ms of a change, and every 500 ms for phi and round-trip times
    /// while snapshots are read; the first read after a quiet spell may see
    /// one as old as the last protocol period: use
    /// [`Vigil::members_now`] for an exact one).
    pub fn members(&self) -> Vec<Member> {
        self.shared.members().as_ref().clone()
    }

    /// One member from the latest snapshot.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.shared.members().iter().find(|m| m.name.as_str() == name).cloned()
    }

    /// An exact snapshot taken by the protocol task now.
    pub async fn members_now(&self) -> Result<Vec<Member>, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Members { reply: tx }).await?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// Marks member `name`, held failed, as left: gossiped at once, so that
    /// no member lists it as failed any more (Serf's `force-leave`; a member
    /// that is in fact running refutes it). A member in another state is
    /// left as it is. Returns the state it was in (`None`: unknown).
    pub async fn force_leave(&self, name: &str) -> Result<Option<vigil_proto::State>, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ForceLeave { name: name.to_string(), reply: tx }).await?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// A stream of membership events from now on: events before the call
    /// are not in it (use [`Vigil::start_with_events`] to miss none). A
    /// subscriber that falls more than 4 096 events behind gets
    /// `RecvError::Lagged(n)`; the protocol never waits for it.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Publishes new metadata (at most 512 bytes) to the cluster.
    pub async fn set_metadata(&self, meta: impl Into<Vec<u8>>) -> Result<(), CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::SetMeta { meta: meta.into(), reply: tx }).await?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }

    /// Publishes a new health status to the cluster.
    pub async fn set_health(&self, health: Health) -> Result<(), CommandError> {
        self.send(Command::SetHealth { health }).await
    }

    /// Replaces the fault-injection settings (`None` turns it off). Only
    /// with the cargo feature `testing`.
    #[cfg(feature = "testing")]
    pub async fn set_faults(&self, faults: Option<Faults>) -> Result<(), CommandError> {
        if faults.is_some() {
            tracing::warn!("FAULT INJECTION IS ON: this member drops or delays packets on purpose");
        }
        self.send(Command::SetFaults { faults }).await
    }

    /// Applies a key operation to this member only.
    pub async fn key_local(&self, op: KeyOp, key: Key) -> Result<(), CommandError> {
        self.key_command(op, key, false).await.map(|_| ())
    }

    /// Applies a key operation here and on every alive member, each over an
    /// encrypted stream with an acknowledgement; the report names who did not
    /// answer. Rotate with `install`, then `use`, then `remove` of the old key.
    pub async fn key_cluster(&self, op: KeyOp, key: Key) -> Result<KeyReport, CommandError> {
        self.key_command(op, key, true).await
    }

    async fn key_command(&self, op: KeyOp, key: Key, cluster: bool) -> Result<KeyReport, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Keys { op, key, cluster, reply: tx }).await?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }

    /// Fingerprints of the installed keys, the primary first; `None` when
    /// traffic is not encrypted.
    pub async fn keys(&self) -> Result<Option<Vec<String>>, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ListKeys { reply: tx }).await?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// The keys in use now, the primary first (they change with
    /// [`Vigil::key_local`], [`Vigil::key_cluster`] and with operations
    /// other members apply here), so that it can be saved and used again
    /// at the next start; `None` when traffic is not encrypted.
    pub async fn key_material(&self) -> Result<Option<Vec<crate::crypto::Key>>, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::ExportKeys { reply: tx }).await?;
        rx.await.map_err(|_| CommandError::Stopped)
    }

    /// A receiver that sees each change of the keyring from now on (a key
    /// installed, made primary or removed, here or by an operation another
    /// member applied here): await its `changed()`; the value counts the
    /// changes. For saving the keyring without polling; it never changes
    /// when traffic is not encrypted, and `changed()` fails once the member
    /// stopped.
    pub fn keyring_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        let mut rx = self.keyring_changes.clone();
        rx.borrow_and_update();
        rx
    }

    /// Whether traffic is encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Counters.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// Leaves gracefully: `left` is gossiped until enough members were told or
    /// `timeout` passed. Returns whether it went out fully. The member keeps
    /// running (answering probes) until [`Vigil::shutdown`].
    pub async fn leave(&self, timeout: Duration) -> Result<bool, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Leave { timeout, reply: tx }).await?;
        match tokio::time::timeout(timeout + Duration::from_millis(100), rx).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(_)) => Err(CommandError::Stopped),
            Err(_) => Err(CommandError::Timeout),
        }
    }

    /// Stops the member and waits for its task to end. Without a prior
    /// [`Vigil::leave`], the others will detect it as failed.
    pub async fn shutdown(&self) {
        let _ = self.cmd.send(Command::Shutdown).await;
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    async fn send(&self, cmd: Command) -> Result<(), CommandError> {
        self.cmd.send(cmd).await.map_err(|_| CommandError::Stopped)
    }
}

impl Drop for Vigil {
    fn drop(&mut self) {
        if let Ok(mut t) = self.task.lock()
            && let Some(task) = t.take()
        {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vigil_proto::EventKind;

    use super::*;

    fn local(name: &str) -> Config {
        Config::new(name, "127.0.0.1:0".parse().unwrap()).with_protocol(vigil_proto::Config::local())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_made_at_start_misses_no_event_of_the_join() {
        let a = Vigil::start(local("a")).await.unwrap();
        let (b, mut events) = Vigil::start_with_events(local("b")).await.unwrap();
        b.join(&[a.local_addr().to_string()], Duration::from_secs(5)).await.unwrap();
        // Whatever the scheduling, the subscription taken at start has it.
        let joined = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        assert_eq!((joined.kind, joined.member.name.as_str()), (EventKind::Joined, "a"));
        a.shutdown().await;
        b.shutdown().await;
    }
}
