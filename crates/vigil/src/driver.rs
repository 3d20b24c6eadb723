//! The one task that owns the protocol core: it feeds it datagrams, streams,
//! commands and timeouts, and carries out what it asks for.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use vigil_proto::{Channel, Core, Event, Health, Instant, Member};

use crate::crypto::{Key, Keyring, Lane};
use crate::error::CommandError;
use crate::fault::{Dice, Faults};
use crate::keys::{self, KeyOp, KeyReport};
use crate::limit::RateLimiter;
use crate::metrics::{Metrics, Traffic};
use crate::transport::{read_frame, write_frame};

/// Commands from the handle to the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Join {
        seeds: Vec<String>,
        reply: Option<oneshot::Sender<Result<usize, CommandError>>>,
    },
    /// Seeds resolved by a helper task for join attempt `attempt`.
    JoinResolved {
        attempt: u32,
        addrs: Vec<SocketAddr>,
        errors: Vec<String>,
    },
    Leave {
        timeout: Duration,
        reply: oneshot::Sender<bool>,
    },
    SetMeta {
        meta: Vec<u8>,
        reply: oneshot::Sender<Result<(), CommandError>>,
    },
    SetHealth {
        health: Health,
    },
    SetFaults {
        faults: Option<Faults>,
    },
    Members {
        reply: oneshot::Sender<Vec<Member>>,
    },
    /// A key operation, here only or on every member.
    Keys {
        op: KeyOp,
        key: Key,
        cluster: bool,
        reply: oneshot::Sender<Result<KeyReport, CommandError>>,
    },
    ListKeys {
        reply: oneshot::Sender<Option<Vec<String>>>,
    },
    Shutdown,
}

/// What stream tasks hand back to the driver.
#[derive(Debug)]
pub(crate) enum FromStream {
    /// A peer connected and sent a frame; replies go back through `reply`.
    Inbound { from: SocketAddr, bytes: Vec<u8>, reply: oneshot::Sender<Vec<Vec<u8>>> },
    /// A frame that came back on a connection this member opened to `from`.
    Response { from: SocketAddr, bytes: Vec<u8> },
    /// A stream exchange failed.
    Failed { peer: SocketAddr, error: String },
}

/// State shared between the driver and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) members: RwLock<Arc<Vec<Member>>>,
    pub(crate) metrics: RwLock<Metrics>,
    pub(crate) traffic: Traffic,
    pub(crate) local_addr: SocketAddr,
}

struct Joining {
    seeds: Vec<String>,
    attempt: u32,
    addrs: Vec<SocketAddr>,
    next_at: Option<TokioInstant>,
    backoff: Duration,
    waiters: Vec<oneshot::Sender<Result<usize, CommandError>>>,
    last_error: String,
}

pub(crate) struct Driver {
    pub(crate) core: Core,
    pub(crate) udp: Arc<UdpSocket>,
    pub(crate) listener: Option<TcpListener>,
    pub(crate) origin: TokioInstant,
    pub(crate) cmd_tx: mpsc::WeakSender<Command>,
    pub(crate) cmd_rx: mpsc::Receiver<Command>,
    pub(crate) stream_tx: mpsc::Sender<FromStream>,
    pub(crate) stream_rx: mpsc::Receiver<FromStream>,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) faults: Option<Faults>,
    pub(crate) dice: Dice,
    pub(crate) stream_timeout: Duration,
    pub(crate) join_backoff: (Duration, Duration),
    pub(crate) max_stream: usize,
    joining: Option<Joining>,
    leaving: Option<(TokioInstant, oneshot::Sender<bool>)>,
    rejected: BTreeMap<&'static str, u64>,
    send_errors: u64,
    stream_errors: u64,
    fault_drops: u64,
    /// While handling an inbound stream: its peer, and the replies for it.
    reply_to: Option<(SocketAddr, Vec<Vec<u8>>)>,
    keyring: Option<Keyring>,
    limiter: RateLimiter,
    publish_at: TokioInstant,
    dirty: bool,
}

/// How often snapshots are refreshed at the least (phi and RTT move all the time).
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Longest delay before a change made by a command shows in the snapshot.
const PUBLISH_MIN_GAP: Duration = Duration::from_millis(50);
/// Datagrams per second accepted from one source address, and its burst.
/// Members send a few per second to each other; this only stops floods.
const RATE_PER_SOURCE: f64 = 500.0;
const RATE_BURST: f64 = 1000.0;
/// Inbound stream connections served at once; more wait in the kernel backlog.
const MAX_INBOUND_STREAMS: usize = 256;

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        core: Core,
        udp: UdpSocket,
        listener: TcpListener,
        cmd_tx: mpsc::WeakSender<Command>,
        cmd_rx: mpsc::Receiver<Command>,
        events: broadcast::Sender<Event>,
        shared: Arc<Shared>,
        config: &crate::Config,
        seed: u64,
    ) -> Driver {
        let (stream_tx, stream_rx) = mpsc::channel(1024);
        let origin = TokioInstant::now();
        Driver {
            max_stream: config.protocol.max_stream_size,
            core,
            udp: Arc::new(udp),
            listener: Some(listener),
            origin,
            cmd_tx,
            cmd_rx,
            stream_tx,
            stream_rx,
            events,
            shared,
            faults: config.faults.clone(),
            dice: Dice::new(seed ^ 0xD1CE),
            stream_timeout: config.stream_timeout,
            join_backoff: config.join_backoff,
            joining: None,
            leaving: None,
            rejected: BTreeMap::new(),
            send_errors: 0,
            stream_errors: 0,
            fault_drops: 0,
            reply_to: None,
            keyring: config.keyring.clone(),
            limiter: RateLimiter::new(RATE_PER_SOURCE, RATE_BURST),
            publish_at: origin,
            dirty: true,
        }
    }

    fn now(&self) -> Instant {
        let micros = TokioInstant::now().saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn to_tokio(&self, at: Instant) -> TokioInstant {
        self.origin + Duration::from_micros(at.as_micros())
    }

    /// Runs until shut down (or until every handle is dropped).
    pub(crate) async fn run(mut self) {
        let accept = self.listener.take().map(|l| {
            tokio::spawn(accept_loop(l, self.stream_tx.clone(), self.max_stream, self.stream_timeout))
        });
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush();
            let deadline = self.next_deadline();
            tokio::select! {
                cmd = self.cmd_rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.command(cmd),
                },
                received = self.udp.recv_from(&mut buf) => match received {
                    Ok((n, from)) => {
                        let bytes = buf.get(..n).unwrap_or_default().to_vec();
                        self.datagram(from, &bytes);
                    }
                    Err(e) => tracing::debug!("udp receive error: {e}"),
                },
                Some(s) = self.stream_rx.recv() => self.stream(s),
                () = tokio::time::sleep_until(deadline) => self.tick(),
            }
        }
        if let Some(a) = accept {
            a.abort();
        }
        tracing::debug!(member = %self.core.name(), "driver stopped");
    }

    fn next_deadline(&self) -> TokioInstant {
        let mut at = self.publish_at;
        if let Some(t) = self.core.poll_timeout() {
            at = at.min(self.to_tokio(t));
        }
        if let Some(next) = self.joining.as_ref().and_then(|j| j.next_at) {
            at = at.min(next);
        }
        if let Some((deadline, _)) = &self.leaving {
            at = at.min(*deadline);
        }
        at
    }

    fn tick(&mut self) {
        let now = self.now();
        self.core.handle_timeout(now);
        let t = TokioInstant::now();
        if self.joining.as_ref().and_then(|j| j.next_at).is_some_and(|at| at <= t) {
            self.start_join_attempt();
        }
        if t >= self.publish_at {
            self.publish();
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Join { seeds, reply } => {
                let j = self.joining.get_or_insert_with(|| Joining {
                    seeds: Vec::new(),
                    attempt: 0,
                    addrs: Vec::new(),
                    next_at: None,
                    backoff: self.join_backoff.0,
                    waiters: Vec::new(),
                    last_error: String::new(),
                });
                for s in seeds {
                    if !j.seeds.contains(&s) {
                        j.seeds.push(s);
                    }
                }
                j.waiters.extend(reply);
                j.backoff = self.join_backoff.0;
                self.start_join_attempt();
            }
            Command::JoinResolved { attempt, addrs, errors } => self.join_resolved(attempt, addrs, errors),
            Command::Leave { timeout, reply } => {
                self.core.leave(now);
                self.joining = None;
                self.leaving = Some((TokioInstant::now() + timeout, reply));
            }
            Command::SetMeta { meta, reply } => {
                let result = self.core.set_metadata(now, meta).map_err(CommandError::from);
                let _ = reply.send(result);
            }
            Command::SetHealth { health } => self.core.set_health(now, health),
            Command::SetFaults { faults } => self.faults = faults,
            Command::Members { reply } => {
                let _ = reply.send(self.core.members(now));
            }
            Command::Keys { op, key, cluster, reply } => self.key_op(op, key, cluster, reply),
            Command::ListKeys { reply } => {
                let _ = reply.send(self.keyring.as_ref().map(Keyring::list));
            }
            Command::Shutdown => {}
        }
        self.dirty = true;
    }

    /// Resolves the seeds in a helper task (DNS may be slow), then joins them.
    fn start_join_attempt(&mut self) {
        let Some(j) = self.joining.as_mut() else { return };
        j.attempt += 1;
        j.next_at = None;
        let (attempt, seeds) = (j.attempt, j.seeds.clone());
        let Some(cmd_tx) = self.cmd_tx.upgrade() else { return };
        tokio::spawn(async move {
            let mut addrs = Vec::new();
            let mut errors = Vec::new();
            for seed in seeds {
                match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host(seed.as_str()))
                    .await
                {
                    Ok(Ok(found)) => addrs.extend(found),
                    Ok(Err(e)) => errors.push(format!("{seed}: {e}")),
                    Err(_) => errors.push(format!("{seed}: name resolution timed out")),
                }
            }
            let _ = cmd_tx.send(Command::JoinResolved { attempt, addrs, errors }).await;
        });
    }

    fn join_resolved(&mut self, attempt: u32, addrs: Vec<SocketAddr>, errors: Vec<String>) {
        let now = self.now();
        let local = self.shared.local_addr;
        let Some(j) = self.joining.as_mut() else { return };
        if attempt != j.attempt {
            return;
        }
        j.addrs = addrs.into_iter().filter(|a| *a != local).collect();
        j.last_error = errors.join("; ");
        let sent = self.core.join(now, &j.addrs);
        if sent == 0 && j.last_error.is_empty() {
            j.last_error = "no seed address other than this member's own".into();
        }
        tracing::debug!(attempt, seeds = ?j.addrs, "join attempt");
        // The answer (a push-pull reply) ends the join; otherwise try again later.
        j.next_at = Some(TokioInstant::now() + j.backoff);
        j.backoff = (j.backoff * 2).min(self.join_backoff.1);
        if attempt > 1 && !j.last_error.is_empty() {
            tracing::warn!(attempt, "join: {}", j.last_error);
        }
    }

    fn datagram(&mut self, from: SocketAddr, wire: &[u8]) {
        if !self.limiter.allow(from, TokioInstant::now()) {
            self.reject("rate_limited");
            return;
        }
        let opened;
        let bytes = match &self.keyring {
            None => wire,
            Some(ring) => match ring.open(Lane::Datagram, wire) {
                Ok(plain) => {
                    opened = plain;
                    &opened[..]
                }
                Err(e) => {
                    self.reject(e.reason());
                    return;
                }
            },
        };
        self.shared.traffic.count_in(bytes, wire.len());
        if let Some(f) = &self.faults
            && (f.inbound_blocked(&from) || self.dice.roll(f.drop_inbound))
        {
            self.fault_drops += 1;
            return;
        }
        let now = self.now();
        if let Err(e) = self.core.handle_datagram(now, from, bytes) {
            self.reject(e.reason());
            tracing::debug!(%from, "rejected datagram: {e}");
        }
    }

    fn reject(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    /// Opens a stream frame; `None` (counted) if it does not authenticate.
    fn open_frame(&mut self, wire: Vec<u8>) -> Option<Vec<u8>> {
        let Some(ring) = &self.keyring else { return Some(wire) };
        match ring.open(Lane::Stream, &wire) {
            Ok(plain) => Some(plain),
            Err(e) => {
                self.reject(e.reason());
                None
            }
        }
    }

    fn seal(&self, lane: Lane, plain: Vec<u8>) -> Vec<u8> {
        match &self.keyring {
            Some(ring) => ring.seal(lane, &plain),
            None => plain,
        }
    }

    fn key_op(
        &mut self,
        op: KeyOp,
        key: Key,
        cluster: bool,
        reply: oneshot::Sender<Result<KeyReport, CommandError>>,
    ) {
        let Some(ring) = self.keyring.as_mut() else {
            let _ = reply.send(Err(CommandError::Keys("encryption is off: there is no keyring".into())));
            return;
        };
        if let Err(e) = keys::apply(ring, op, key.clone()) {
            let _ = reply.send(Err(CommandError::Keys(e.to_string())));
            return;
        }
        tracing::info!(op = op.as_str(), key = %key.fingerprint(), cluster, "keyring changed");
        if !cluster {
            let _ = reply.send(Ok(KeyReport::default()));
            return;
        }
        let ring = ring.clone();
        let me = self.core.name().clone();
        let members: Vec<(String, SocketAddr)> = self
            .core
            .members(self.now())
            .into_iter()
            .filter(|m| m.state.is_active() && m.name != me)
            .map(|m| (m.name.to_string(), m.addr))
            .collect();
        let timeout = self.stream_timeout;
        tokio::spawn(async move {
            let report = keys::broadcast(ring, op, key, members, timeout).await;
            let _ = reply.send(Ok(report));
        });
    }

    fn stream(&mut self, s: FromStream) {
        let now = self.now();
        match s {
            FromStream::Inbound { from, bytes: wire, reply } => {
                let wire_len = wire.len() + 4;
                let Some(bytes) = self.open_frame(wire) else { return };
                if bytes.first() == Some(&keys::CONTROL) {
                    let answer = match self.keyring.as_mut() {
                        Some(ring) => keys::handle(ring, &bytes),
                        None => return,
                    };
                    tracing::info!(%from, "cluster key operation applied");
                    let _ = reply.send(vec![self.seal(Lane::Stream, answer)]);
                    return;
                }
                self.shared.traffic.count_in(&bytes, wire_len);
                if let Err(e) = self.core.handle_stream(now, from, &bytes) {
                    self.reject(e.reason());
                    tracing::debug!(%from, "rejected stream: {e}");
                }
                self.reply_to = Some((from, Vec::new()));
                self.flush();
                if let Some((_, replies)) = self.reply_to.take() {
                    let sealed = replies.into_iter().map(|r| self.seal(Lane::Stream, r)).collect();
                    let _ = reply.send(sealed);
                }
            }
            FromStream::Response { from, bytes: wire } => {
                let wire_len = wire.len() + 4;
                let Some(bytes) = self.open_frame(wire) else { return };
                self.shared.traffic.count_in(&bytes, wire_len);
                match self.core.handle_stream(now, from, &bytes) {
                    Ok(()) => {
                        if let Some(j) = &self.joining
                            && j.addrs.contains(&from)
                            && vigil_proto::codec::message_kind(&bytes) == Some("push_pull")
                        {
                            self.joined();
                        }
                    }
                    Err(e) => {
                        self.reject(e.reason());
                        tracing::debug!(%from, "rejected stream reply: {e}");
                    }
                }
            }
            FromStream::Failed { peer, error } => {
                self.stream_errors += 1;
                tracing::debug!(%peer, "stream failed: {error}");
            }
        }
    }

    fn joined(&mut self) {
        if let Some(j) = self.joining.take() {
            let n = self.core.num_members();
            tracing::info!(members = n, "joined the cluster");
            for w in j.waiters {
                let _ = w.send(Ok(n));
            }
        }
    }

    /// Carries out everything the core asked for, and passes events on.
    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            match t.channel {
                Channel::Datagram => self.send_datagram(t.dst, t.payload),
                _ => {
                    if let Some((peer, replies)) = self.reply_to.as_mut()
                        && *peer == t.dst
                    {
                        self.shared.traffic.count_out(&t.payload, t.payload.len() + 4);
                        replies.push(t.payload);
                        continue;
                    }
                    self.send_stream(t.dst, t.payload);
                }
            }
        }
        let mut events = Vec::new();
        while let Some(e) = self.core.poll_event() {
            events.push(e);
        }
        if !events.is_empty() {
            self.dirty = true;
            // Subscribers that read the snapshot on an event find the change
            // in it: refresh first (once per batch of events).
            self.publish();
            for e in events {
                // No subscriber is fine; a slow one lags on its own side.
                let _ = self.events.send(e);
            }
        }
        if let Some((deadline, _)) = &self.leaving
            && (self.core.leave_disseminated() || TokioInstant::now() >= *deadline)
            && let Some((_, reply)) = self.leaving.take()
        {
            let _ = reply.send(self.core.leave_disseminated());
        }
        if self.dirty {
            // Commands (metadata, faults, leave) show within this gap.
            let soon = TokioInstant::now() + PUBLISH_MIN_GAP;
            if self.publish_at > soon {
                self.publish_at = soon;
            }
        }
    }

    fn send_datagram(&mut self, dst: SocketAddr, payload: Vec<u8>) {
        let mut delay = Duration::ZERO;
        if let Some(f) = &self.faults {
            if f.outbound_blocked(&dst) || self.dice.roll(f.drop_outbound) {
                self.fault_drops += 1;
                return;
            }
            delay = f.delay;
        }
        // Counted by the plaintext's kind, at the size that goes on the wire.
        let kind = kind_prefix(&payload);
        let payload = self.seal(Lane::Datagram, payload);
        self.shared.traffic.count_out(&kind, payload.len());
        if !delay.is_zero() {
            let udp = self.udp.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = udp.send_to(&payload, dst).await;
            });
            return;
        }
        if let Err(e) = self.udp.try_send_to(&payload, dst) {
            self.send_errors += 1;
            tracing::debug!(%dst, "datagram not sent: {e}");
        }
    }

    fn send_stream(&mut self, dst: SocketAddr, payload: Vec<u8>) {
        let mut delay = Duration::ZERO;
        if let Some(f) = &self.faults {
            if f.outbound_blocked(&dst) {
                self.fault_drops += 1;
                return;
            }
            delay = f.delay;
        }
        let kind = kind_prefix(&payload);
        let payload = self.seal(Lane::Stream, payload);
        self.shared.traffic.count_out(&kind, payload.len() + 4);
        let tx = self.stream_tx.clone();
        let (timeout, max) = (self.stream_timeout, self.max_stream);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let exchange = async {
                let mut s = TcpStream::connect(dst).await?;
                s.set_nodelay(true)?;
                write_frame(&mut s, &payload).await?;
                tokio::io::AsyncWriteExt::shutdown(&mut s).await?;
                let mut frames = Vec::new();
                while frames.len() < 4 {
                    match read_frame(&mut s, max).await? {
                        Some(f) => frames.push(f),
                        None => break,
                    }
                }
                Ok::<_, std::io::Error>(frames)
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok(frames)) => {
                    for bytes in frames {
                        let _ = tx.send(FromStream::Response { from: dst, bytes }).await;
                    }
                }
                Ok(Err(e)) => {
                    let _ = tx.send(FromStream::Failed { peer: dst, error: e.to_string() }).await;
                }
                Err(_) => {
                    let _ = tx.send(FromStream::Failed { peer: dst, error: "timed out".into() }).await;
                }
            }
        });
    }

    fn publish(&mut self) {
        let now = self.now();
        let members = self.core.members(now);
        if let Ok(mut m) = self.shared.members.write() {
            *m = Arc::new(members);
        }
        if let Ok(mut m) = self.shared.metrics.write() {
            m.traffic = self.shared.traffic.snapshot();
            m.rejected = self.rejected.iter().map(|(k, v)| (*k, *v)).collect();
            m.send_errors = self.send_errors;
            m.stream_errors = self.stream_errors;
            m.fault_drops = self.fault_drops;
            m.protocol = self.core.stats().clone();
            m.local_health = self.core.local_health();
            m.members = self.core.num_members();
        }
        self.dirty = false;
        self.publish_at = TokioInstant::now() + PUBLISH_EVERY;
    }
}

/// The first two bytes of a packet: enough to tell its kind.
fn kind_prefix(payload: &[u8]) -> [u8; 2] {
    [payload.first().copied().unwrap_or(0), payload.get(1).copied().unwrap_or(0)]
}

/// Accepts stream connections and serves each in its own task.
async fn accept_loop(listener: TcpListener, tx: mpsc::Sender<FromStream>, max: usize, timeout: Duration) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND_STREAMS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let (mut stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let serve = async {
                let Some(bytes) = read_frame(&mut stream, max).await? else { return Ok(()) };
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx.send(FromStream::Inbound { from: peer, bytes, reply: reply_tx }).await.is_err() {
                    return Ok(());
                }
                if let Ok(replies) = reply_rx.await {
                    for r in replies {
                        write_frame(&mut stream, &r).await?;
                    }
                }
                tokio::io::AsyncWriteExt::shutdown(&mut stream).await
            };
            match tokio::time::timeout(timeout, serve).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let _ = tx.send(FromStream::Failed { peer, error: e.to_string() }).await;
                }
                Err(_) => {
                    let _ = tx.send(FromStream::Failed { peer, error: "timed out".into() }).await;
                }
            }
        });
    }
}
