//! Joining: the seeds (addresses or DNS names, resolved again at each
//! attempt by a helper task, since DNS may be slow), the attempts with
//! doubling backoff, and the callers waiting for the answer. A join ends
//! when a seed answers the full-state exchange; a leave abandons it. A seed
//! that reads the join and closes without a word could not authenticate it
//! (another key or cluster name): that is logged at once, and when every
//! seed of an attempt did so the callers are told, while attempts go on.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant as TokioInstant;
use vigil_proto::{Core, Instant};

use crate::error::CommandError;

/// Longest wait for one seed's name resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A caller waiting for the join; told the number of members once joined.
pub(crate) type JoinReply = oneshot::Sender<Result<usize, CommandError>>;

/// Seeds resolved for attempt `attempt`.
#[derive(Debug)]
pub(crate) struct Resolved {
    attempt: u32,
    addrs: Vec<SocketAddr>,
    errors: Vec<String>,
}

#[derive(Debug)]
struct Joining {
    seeds: Vec<String>,
    attempt: u32,
    addrs: Vec<SocketAddr>,
    next_at: Option<TokioInstant>,
    backoff: Duration,
    waiters: Vec<JoinReply>,
    last_error: String,
    /// Seeds of this attempt that closed without answering.
    rejected_by: BTreeSet<SocketAddr>,
}

/// The join state of a member: idle, or joining through its seeds.
#[derive(Debug)]
pub(crate) struct Join {
    joining: Option<Joining>,
    /// Shortest and longest wait between attempts.
    backoff: (Duration, Duration),
    /// This member's own address, never a seed of its own.
    local: SocketAddr,
    tx: mpsc::Sender<Resolved>,
    rx: mpsc::Receiver<Resolved>,
}

impl Join {
    pub(crate) fn new(backoff: (Duration, Duration), local: SocketAddr) -> Join {
        let (tx, rx) = mpsc::channel(8);
        Join { joining: None, backoff, local, tx, rx }
    }

    /// Adds `seeds` (and a waiter) and starts an attempt at once.
    pub(crate) fn start(&mut self, seeds: Vec<String>, reply: Option<JoinReply>) {
        let j = self.joining.get_or_insert_with(|| Joining {
            seeds: Vec::new(),
            attempt: 0,
            addrs: Vec::new(),
            next_at: None,
            backoff: self.backoff.0,
            waiters: Vec::new(),
            last_error: String::new(),
            rejected_by: BTreeSet::new(),
        });
        for s in seeds {
            if !j.seeds.contains(&s) {
                j.seeds.push(s);
            }
        }
        j.waiters.extend(reply);
        j.backoff = self.backoff.0;
        self.attempt();
    }

    /// Gives up joining (the member leaves); waiters learn it stopped.
    pub(crate) fn abandon(&mut self) {
        self.joining = None;
    }

    /// When the next attempt is due, if one is.
    pub(crate) fn next_at(&self) -> Option<TokioInstant> {
        self.joining.as_ref().and_then(|j| j.next_at)
    }

    /// Starts the next attempt if it is due at `now`.
    pub(crate) fn tick(&mut self, now: TokioInstant) {
        if self.next_at().is_some_and(|at| at <= now) {
            self.attempt();
        }
    }

    /// The next resolution of seeds.
    pub(crate) async fn resolved(&mut self) -> Resolved {
        // `self` holds a sender: the channel never closes.
        self.rx.recv().await.unwrap_or(Resolved { attempt: 0, addrs: Vec::new(), errors: Vec::new() })
    }

    /// Resolves the seeds in a helper task; the result comes back through
    /// [`Join::resolved`].
    fn attempt(&mut self) {
        let Some(j) = self.joining.as_mut() else { return };
        j.attempt += 1;
        j.next_at = None;
        let (attempt, seeds, tx) = (j.attempt, j.seeds.clone(), self.tx.clone());
        tokio::spawn(async move {
            let mut addrs = Vec::new();
            let mut errors = Vec::new();
            for seed in seeds {
                match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(seed.as_str())).await {
                    Ok(Ok(found)) => addrs.extend(found),
                    Ok(Err(e)) => errors.push(format!("{seed}: {e}")),
                    Err(_) => errors.push(format!("{seed}: name resolution timed out")),
                }
            }
            let _ = tx.send(Resolved { attempt, addrs, errors }).await;
        });
    }

    /// Asks the core to join the resolved seeds, and schedules the next
    /// attempt in case none answers. Stale resolutions are ignored.
    pub(crate) fn on_resolved(&mut self, r: Resolved, core: &mut Core, now: Instant) {
        let local = self.local;
        let Some(j) = self.joining.as_mut() else { return };
        if r.attempt != j.attempt {
            return;
        }
        j.addrs = r.addrs.into_iter().filter(|a| *a != local).collect();
        j.last_error = r.errors.join("; ");
        j.rejected_by.clear();
        let sent = core.join(now, &j.addrs);
        if sent == 0 && j.last_error.is_empty() {
            j.last_error = "no seed address other than this member's own".into();
        }
        tracing::debug!(attempt = r.attempt, seeds = ?j.addrs, "join attempt");
        // The answer (a push-pull reply) ends the join; otherwise try again later.
        j.next_at = Some(TokioInstant::now() + j.backoff);
        j.backoff = (j.backoff * 2).min(self.backoff.1);
        if r.attempt > 1 && !j.last_error.is_empty() {
            tracing::warn!(attempt = r.attempt, "join: {}", j.last_error);
        }
    }

    /// Fails every caller waiting (the join stops: this member stopped).
    pub(crate) fn fail(&mut self, error: impl Fn() -> CommandError) {
        if let Some(j) = self.joining.take() {
            for w in j.waiters {
                let _ = w.send(Err(error()));
            }
        }
    }

    /// `peer` read what this member sent on a stream and closed without a
    /// word. If it is a seed, it rejected the join: say so, and when every
    /// seed of this attempt did, tell the callers (attempts go on).
    pub(crate) fn on_unanswered(&mut self, peer: SocketAddr) {
        let Some(j) = self.joining.as_mut() else { return };
        if !j.addrs.contains(&peer) || !j.rejected_by.insert(peer) {
            return;
        }
        let error = CommandError::Rejected { seed: peer };
        tracing::warn!(attempt = j.attempt, "join: {error}");
        j.last_error = error.to_string();
        if j.rejected_by.len() == j.addrs.len() {
            for w in j.waiters.drain(..) {
                let _ = w.send(Err(CommandError::Rejected { seed: peer }));
            }
        }
    }

    /// A stream reply from `from` was accepted by the core: if it is a seed's
    /// full-state answer, the join is done and the waiters are told.
    pub(crate) fn on_reply(&mut self, from: SocketAddr, plain: &[u8], core: &Core) {
        let is_answer = self.joining.as_ref().is_some_and(|j| j.addrs.contains(&from))
            && vigil_proto::codec::message_kind(plain) == Some("push_pull");
        if !is_answer {
            return;
        }
        if let Some(j) = self.joining.take() {
            let n = core.num_members();
            tracing::info!(members = n, "joined the cluster");
            for w in j.waiters {
                let _ = w.send(Ok(n));
            }
        }
    }
}
