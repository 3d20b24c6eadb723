//! The one task that owns the protocol core: it feeds it datagrams, stream
//! frames, kernel evidence, commands and timeouts, and carries out what it
//! asks for. Each concern it dispatches to lives in its own file: the link
//! (`link.rs`, ICMP errors in `icmp.rs`), streams (`stream.rs`), watch
//! streams (`watch.rs` to the members it watches, `watchers.rs` for those
//! that watch it), joining (`join.rs`), keys (`keys.rs`), snapshots
//! (`publish.rs`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use vigil_proto::{Channel, Core, Event, Instant, NameConflict, Unreachable};

use crate::command::Command;
use crate::config::Config;
use crate::crypto::{Keyring, Lane};
use crate::envelope::{Envelope, Speaks};
use crate::error::CommandError;
use crate::join::{Join, Resolved};
use crate::keys;
use crate::limit::RateLimiter;
use crate::link::{Link, PortErrors};
use crate::metrics::{Counters, Stall};
use crate::publish::{Publisher, Shared};
use crate::stream::{self, Answer, FromStream, Settings, Streams};
use crate::watch::{self, Report, Watches};
use crate::watchers::{MAX_HELD, Watchers};

/// Datagrams (and as many stream frames) read at most before the timers run.
const MAX_DRAIN: usize = 4096;
/// How long the driver sleeps when no timer is due at all (a member that
/// left, or one whose core has nothing scheduled): anything that arrives
/// wakes it sooner.
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// The protocol task: the core and everything it acts through.
pub(crate) struct Driver {
    core: Core,
    link: Link,
    port_errors: PortErrors,
    streams: Streams,
    watches: Watches,
    watchers: Watchers,
    join: Join,
    envelope: Envelope,
    limiter: RateLimiter,
    counters: Counters,
    publisher: Publisher,
    events: broadcast::Sender<Event>,
    commands: mpsc::Receiver<Command>,
    /// The instant the core's clock counts from.
    origin: TokioInstant,
    stream: Settings,
    /// The largest datagram plaintext the protocol sends.
    max_packet: usize,
    leaving: Option<(TokioInstant, oneshot::Sender<bool>)>,
    /// The IPs of the members in the table, as the stream admission knows them.
    member_ips: BTreeSet<std::net::IpAddr>,
    /// Reused for every datagram opened and sealed: none allocates.
    opened: Vec<u8>,
    sealed: Vec<u8>,
}

impl Driver {
    pub(crate) fn new(
        core: Core,
        (udp, listener): (UdpSocket, TcpListener),
        config: &Config,
        seed: u64,
        commands: mpsc::Receiver<Command>,
        events: broadcast::Sender<Event>,
        shared: Arc<Shared>,
    ) -> Driver {
        #[allow(unused_mut)]
        let mut link = Link::new(udp, seed);
        #[cfg(feature = "testing")]
        link.set_faults(config.faults.clone());
        let envelope = Envelope::new(config.keyring.clone(), config.legacy_envelope);
        #[cfg(feature = "testing")]
        if config.previous_envelope {
            envelope.set_previous();
        }
        let max_frame = config.protocol.max_stream_size;
        // Outbound streams come from the bound IP, when it is a specific one.
        let source = Some(config.bind.ip()).filter(|ip| !ip.is_unspecified());
        let settings = Settings { timeout: config.stream_timeout, max_frame, source };
        Driver {
            streams: Streams::start(listener, settings.clone(), envelope.clone()),
            watches: Watches::new(config.stream_timeout, max_frame, envelope.clone(), source),
            watchers: Watchers::default(),
            join: Join::new(config.join_backoff, shared.local_addr()),
            core,
            port_errors: link.port_errors(),
            link,
            envelope,
            limiter: RateLimiter::default(),
            counters: Counters::default(),
            publisher: Publisher::new(shared),
            events,
            commands,
            origin: TokioInstant::now(),
            stream: settings,
            max_packet: config.protocol.max_packet_size,
            leaving: None,
            member_ips: BTreeSet::new(),
            opened: Vec::with_capacity(config.protocol.max_packet_size),
            sealed: Vec::with_capacity(config.protocol.max_packet_size + crate::crypto::LEGACY_OVERHEAD),
        }
    }

    fn now(&self) -> Instant {
        let micros = TokioInstant::now().saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// Runs until shut down (or until every handle is dropped).
    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush();
            if let Some(at) = self.core.yielded() {
                self.name_taken(at);
                break;
            }
            // Snapshots are refreshed at any wake-up once old enough, so
            // that they need no wake-up of their own while nobody reads them.
            if self.publisher.stale(TokioInstant::now()) {
                self.publish();
            }
            let deadline = self.next_deadline();
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.command(cmd),
                },
                received = self.link.recv(&mut buf) => match received {
                    Ok((n, from)) => self.datagram(from, buf.get(..n).unwrap_or_default()),
                    Err(e) => tracing::debug!("udp receive error: {e}"),
                },
                dsts = self.port_errors.next() => {
                    for dst in dsts {
                        self.unreachable(dst, Unreachable::PortUnreachable);
                    }
                }
                Some(s) = self.streams.next() => self.stream(s),
                r = self.watches.next() => self.watch_report(r),
                () = self.watchers.farewell_written() => {}
                r = self.join.resolved() => self.resolved(r),
                () = tokio::time::sleep_until(deadline) => self.tick(&mut buf),
            }
        }
        // Farewells being written go out before the sockets close.
        let written = async {
            while !self.watchers.farewells_written() {
                self.watchers.farewell_written().await;
            }
        };
        let _ = tokio::time::timeout(self.stream.timeout, written).await;
        tracing::debug!(member = %self.core.name(), "driver stopped");
    }

    fn next_deadline(&self) -> TokioInstant {
        let core = self.core.poll_timeout().map(|t| self.origin + Duration::from_micros(t.as_micros()));
        let leave = self.leaving.as_ref().map(|(deadline, _)| *deadline);
        [core, self.join.next_at(), leave, self.publisher.due()]
            .into_iter()
            .flatten()
            .min()
            // Nothing due: sleep until something arrives.
            .unwrap_or_else(|| TokioInstant::now() + IDLE_SLEEP)
    }

    /// Timers are due. Whatever arrived meanwhile is handed in first: after a
    /// stall (the process was stopped or starved) a backlog waits, and the
    /// acks in it must count before the probes they answer time out.
    fn tick(&mut self, buf: &mut [u8]) {
        self.drain(buf);
        let now = self.now();
        self.core.handle_timeout(now);
        let t = TokioInstant::now();
        self.join.tick(t);
        if self.publisher.stale(t) {
            self.publish();
        }
    }

    /// Hands in every datagram, stream frame and watch report already queued
    /// (each bounded by [`MAX_DRAIN`]), without waiting for more.
    fn drain(&mut self, buf: &mut [u8]) {
        for _ in 0..MAX_DRAIN {
            match self.link.try_recv(buf) {
                Ok(Some((n, from))) => {
                    self.counters.drained();
                    self.datagram(from, buf.get(..n).unwrap_or_default());
                }
                Ok(None) => break,
                // An ICMP error pending on the socket is returned once.
                Err(e) => tracing::debug!("udp receive error: {e}"),
            }
        }
        for _ in 0..MAX_DRAIN {
            let Some(s) = self.streams.try_next() else { break };
            self.counters.drained();
            self.stream(s);
        }
        for _ in 0..MAX_DRAIN {
            let Some(r) = self.watches.try_next() else { break };
            self.watch_report(r);
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::Join { seeds, reply } => self.join.start(seeds, reply),
            Command::Leave { timeout, reply } => {
                self.core.leave(now);
                self.join.abandon();
                // Watchers learn it left rather than see their streams close.
                if let Some(farewell) = self.farewell() {
                    self.watchers.farewell(&farewell);
                }
                self.leaving = Some((TokioInstant::now() + timeout, reply));
            }
            Command::SetMeta { meta, reply } => {
                let _ = reply.send(self.core.set_metadata(now, meta).map_err(CommandError::from));
            }
            Command::SetHealth { health } => self.core.set_health(now, health),
            #[cfg(feature = "testing")]
            Command::SetFaults { faults } => self.link.set_faults(faults),
            Command::Members { reply } => {
                let _ = reply.send(self.core.members(now));
            }
            Command::Keys { op, key, cluster, reply } => {
                let me = self.core.name().clone();
                let peers = cluster.then(|| {
                    let active =
                        self.core.members(now).into_iter().filter(|m| m.state.is_active() && m.name != me);
                    active.map(|m| (m.name.to_string(), m.addr)).collect()
                });
                let settings = (self.stream.timeout, self.stream.source);
                keys::command(&self.envelope, (op, key), peers, settings, reply);
            }
            Command::ListKeys { reply } => {
                let _ = reply.send(self.envelope.keyring().map(|r| Keyring::list(&r)));
            }
            Command::ForceLeave { name, reply } => {
                let now = self.now();
                let _ = reply.send(self.core.force_leave(now, &name));
            }
            Command::ExportKeys { reply } => {
                let _ = reply.send(self.envelope.keyring().map(|r| r.keys().cloned().collect()));
            }
            Command::Shutdown => {}
        }
        self.publisher.changed();
    }

    /// While leaving: the farewell for watch streams (plaintext, each held
    /// stream seals its own), counted as sent.
    fn farewell(&mut self) -> Option<Vec<u8>> {
        let plain = self.core.farewell()?;
        let overhead = if self.envelope.keyring().is_some() { crate::crypto::OVERHEAD } else { 0 };
        self.publisher.shared().traffic().count_out(&plain, plain.len() + overhead + 4);
        Some(plain)
    }

    /// The core stopped: a live member at `at` has this member's name.
    fn name_taken(&mut self, at: SocketAddr) {
        let name = self.core.name().to_string();
        tracing::error!(
            "the name {name:?} is taken: a live member has it at {at}; this member stops \
             (choose another name, or set takeover if that member is gone)"
        );
        self.publisher.shared().set_name_taken(at);
        self.join.fail(|| CommandError::NameConflict { name: name.clone(), live_at: at });
        self.publish();
    }

    /// Logs a name conflict the core saw.
    fn conflict(&self, c: &NameConflict) {
        if c.refused == self.publisher.shared().local_addr() {
            return; // this member's own: said once, by `name_taken`
        }
        tracing::warn!(
            "refused a join of {name} from {refused}: {name} is alive at {kept}",
            name = c.name,
            refused = c.refused,
            kept = c.kept
        );
    }

    /// Kernel evidence that the process behind `addr` is gone.
    fn unreachable(&mut self, addr: SocketAddr, how: Unreachable) {
        tracing::debug!(%addr, "kernel evidence: {how}");
        self.counters.evidence(how);
        self.core.handle_unreachable(self.now(), addr, how);
    }

    fn watch_report(&mut self, r: Report) {
        match r {
            Report::Opened { addr, .. } => tracing::debug!(%addr, "watch stream open"),
            Report::Ended { addr, evidence: Some(how), .. } => self.unreachable(addr, how),
            Report::Ended { .. } => {}
            Report::Farewell { addr, frame } => {
                let Some(bytes) = self.open_frame(addr, &frame) else { return };
                self.publisher.shared().traffic().count_in(&bytes, frame.len() + 4);
                self.counters.farewell();
                if let Err(e) = self.core.handle_stream(self.now(), addr, &bytes) {
                    self.counters.reject(e.reason());
                    tracing::debug!(%addr, "rejected farewell: {e}");
                }
            }
        }
    }

    /// A watch stream's hello: hold the stream (a member that is leaving
    /// answers with its farewell instead). `legacy`: the hello came in
    /// version 1 from a member that reads nothing else.
    fn admit_watcher(&mut self, from: SocketAddr, legacy: bool, reply: oneshot::Sender<Answer>) {
        if let Some(farewell) = self.farewell() {
            let _ = reply.send(Answer::Frames(vec![self.envelope.seal_as(Lane::Stream, legacy, &farewell)]));
            return;
        }
        match self.watchers.admit(&self.envelope, legacy) {
            Some(hold) => {
                let _ = reply.send(Answer::Hold(hold));
            }
            // Dropping the reply closes the connection.
            None => tracing::debug!(%from, "watch stream closed: {MAX_HELD} held already"),
        }
    }

    fn resolved(&mut self, r: Resolved) {
        let now = self.now();
        self.join.on_resolved(r, &mut self.core, now);
    }

    /// A datagram the link let in: rate limit (per source IP), checks
    /// before decryption, open, count, then the core. One that
    /// authenticated gives its source's token back.
    fn datagram(&mut self, from: SocketAddr, wire: &[u8]) {
        if !self.limiter.allow(from.ip(), TokioInstant::now()) {
            self.counters.reject("rate_limited");
            return;
        }
        let mut buf = std::mem::take(&mut self.opened);
        let now = self.now();
        match self.envelope.open_into(Lane::Datagram, Some(from), wire, self.max_packet, &mut buf) {
            Ok(opened) => {
                let bytes = &opened.plain;
                self.publisher.shared().traffic().count_in(bytes, wire.len());
                match self.core.handle_datagram(now, from, bytes) {
                    Ok(()) => self.limiter.refund(from.ip()),
                    Err(e) => {
                        self.counters.reject(e.reason());
                        tracing::debug!(%from, "rejected datagram: {e}");
                    }
                }
            }
            Err(e) => self.counters.reject(e.reason()),
        }
        self.opened = buf;
    }

    /// Opens a stream frame that came on a connection to `from`; `None` (the
    /// rejection counted) if it does not authenticate.
    fn open_frame(&mut self, from: SocketAddr, wire: &[u8]) -> Option<Vec<u8>> {
        match self.envelope.open(Lane::Stream, Some(from), wire, self.stream.max_frame) {
            Ok(opened) => Some(opened.plain.into_owned()),
            Err(e) => {
                self.counters.reject(e.reason());
                None
            }
        }
    }

    /// Marks each change of the keyring (see [`Vigil::keyring_changed`]).
    pub(crate) fn keyring_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.envelope.keyring_changes()
    }

    fn stream(&mut self, s: FromStream) {
        let now = self.now();
        match s {
            FromStream::Inbound { from, plain: bytes, version, wire, reply } => {
                // Answer in kind: version 1 only to a member that reads nothing else.
                let legacy = !version.reads_current();
                if keys::is_control(&bytes) {
                    let Some(answer) = keys::handle(&self.envelope, &bytes) else { return };
                    tracing::info!(%from, "cluster key operation applied");
                    let _ = reply.send(Answer::Frames(vec![self.envelope.seal_as(
                        Lane::Stream,
                        legacy,
                        &answer,
                    )]));
                    return;
                }
                if watch::is_hello(&bytes) {
                    return self.admit_watcher(from, legacy, reply);
                }
                self.publisher.shared().traffic().count_in(&bytes, wire);
                if let Err(e) = self.core.handle_stream(now, from, &bytes) {
                    self.counters.reject(e.reason());
                    tracing::debug!(%from, "rejected stream: {e}");
                }
                // What the core says to `from` now goes back on this connection.
                self.streams.begin_answer(from, legacy);
                self.flush();
                let _ = reply.send(Answer::Frames(self.streams.finish_answer()));
            }
            FromStream::Rejected { from, error } => {
                self.counters.reject(error.reason());
                tracing::debug!(%from, "rejected stream: {error}");
            }
            FromStream::Response { from, bytes: wire } => {
                let Some(bytes) = self.open_frame(from, &wire) else { return };
                self.publisher.shared().traffic().count_in(&bytes, wire.len() + 4);
                match self.core.handle_stream(now, from, &bytes) {
                    // A member that stopped for a name conflict joined nothing.
                    Ok(()) if self.core.yielded().is_some() => {}
                    Ok(()) => self.join.on_reply(from, &bytes, &self.core),
                    Err(e) => {
                        self.counters.reject(e.reason());
                        tracing::debug!(%from, "rejected stream reply: {e}");
                    }
                }
            }
            FromStream::Unanswered { peer, retry: Some(plain) } => {
                // Not heard from, and version 2 went unanswered: a member of
                // the previous release, perhaps. Its next packet says.
                tracing::debug!(%peer, "no answer to version 2: trying version 1");
                self.envelope.assume_legacy(peer);
                let frames = stream::frames_for(&self.envelope, true, &plain);
                self.streams.send(peer, frames, Duration::ZERO, None);
            }
            // No answer may be due (a push-pull that answers a digest): only
            // a seed's silence means something, to the join.
            FromStream::Unanswered { peer, retry: None } => self.join.on_unanswered(peer),
            FromStream::Failed { peer, error, refused } => {
                self.counters.stream_error();
                tracing::debug!(%peer, "stream failed: {error}");
                if refused {
                    self.unreachable(peer, Unreachable::Refused);
                }
            }
        }
    }

    /// Carries out everything the core asked for, and passes events on.
    fn flush(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.transmit(t.dst, t.channel, t.payload);
        }
        while let Some(c) = self.core.poll_conflict() {
            self.conflict(&c);
        }
        let mut events = Vec::new();
        while let Some(e) = self.core.poll_event() {
            events.push(e);
        }
        if !events.is_empty() {
            // Subscribers that read the snapshot on an event find the change
            // in it: refresh first (once per batch of events).
            self.publish();
            for e in events {
                // No subscriber is fine; a slow one lags on its own side.
                let _ = self.events.send(e);
            }
        }
        if self.leaving.is_some() {
            let told = self.core.leave_disseminated() && self.watchers.farewells_written();
            if let Some((deadline, _)) = &self.leaving
                && (told || TokioInstant::now() >= *deadline)
                && let Some((_, reply)) = self.leaving.take()
            {
                let _ = reply.send(told);
            }
        }
        // The watch streams follow the membership.
        self.watches.sync(self.core.watched());
    }

    /// Seals, counts (by the plaintext's kind, at the size on the wire) and
    /// sends one packet through the link or the streams, in the envelope
    /// its destination reads.
    fn transmit(&mut self, dst: SocketAddr, channel: Channel, payload: Vec<u8>) {
        let kind = [payload.first().copied().unwrap_or(0), payload.get(1).copied().unwrap_or(0)];
        let traffic = self.publisher.shared().traffic();
        if matches!(channel, Channel::Datagram) {
            self.envelope.seal_into(Lane::Datagram, &dst, &payload, &mut self.sealed);
            traffic.count_out(&kind, self.sealed.len());
            if let Err(e) = self.link.send(dst, &self.sealed) {
                self.counters.send_error();
                tracing::debug!(%dst, "datagram not sent: {e}");
            }
            // The next datagram is encoded into this one's buffer.
            self.core.recycle(payload);
            return;
        }
        // A reply on the connection being answered bypasses the link, in
        // the envelope that connection came in.
        if let Some(legacy) = self.streams.answers(dst) {
            let wire = self.envelope.seal_as(Lane::Stream, legacy, &payload);
            traffic.count_out(&kind, wire.len() + 4);
            return self.streams.send(dst, vec![wire], Duration::ZERO, None);
        }
        let Some(delay) = self.link.stream(dst) else { return };
        let speaks = self.envelope.speaks(&dst);
        let frames = stream::frames_for(&self.envelope, speaks == Speaks::LegacyOnly, &payload);
        traffic.count_out(&kind, frames.iter().map(|f| f.len() + 4).sum());
        // Version 2 to a peer not heard from: if it closes without a word,
        // the driver tries version 1 (`FromStream::Unanswered`).
        let retry = (speaks == Speaks::Unknown && self.envelope.keyring().is_some()).then_some(payload);
        self.streams.send(dst, frames, delay, retry);
    }

    fn publish(&mut self) {
        let mut metrics = self.counters.snapshot(&self.core);
        metrics.watching = self.watches.open();
        metrics.watched_by = self.watchers.count();
        metrics.last_stall = self.core.last_stall().map(|(at, lasted)| Stall {
            at: (self.origin + Duration::from_micros(at.as_micros())).into_std(),
            lasted,
        });
        #[cfg(feature = "testing")]
        {
            metrics.fault_drops = self.link.fault_drops();
        }
        let opened = self.envelope.opened();
        metrics.envelopes = vec![("legacy", opened[0]), ("current", opened[1])];
        metrics.streams_refused = self.streams.admission().refusals();
        let members = self.core.members(self.now());
        // Streams from these IPs may take the slots reserved for members.
        let ips: BTreeSet<_> = members.iter().map(|m| m.addr.ip()).collect();
        if ips != self.member_ips {
            self.streams.admission().set_known(ips.clone());
            self.member_ips = ips;
        }
        self.publisher.publish(members, metrics);
    }
}
