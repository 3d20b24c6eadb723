//! Watch streams to the members this one watches (docs/PROTOCOL.md, "Watch
//! streams"): one long-lived TCP connection to each address the core names
//! in `Core::watched`, opened with one sealed control frame ([`HELLO`]) and
//! then silent: no keep-alive, so an idle watch costs no bandwidth. When the
//! watched process exits, its kernel closes the connection and the watcher
//! reads end-of-file or a reset within one round trip; a paused or starved
//! process keeps it open. What each task sees comes back to the driver as a
//! [`Report`]:
//!
//! | the task sees | report | evidence |
//! | --- | --- | --- |
//! | connect refused | `Ended` | `Refused` |
//! | end of file or reset on an open stream | `Ended` | `StreamClosed` |
//! | a frame (the watched member's farewell: it leaves) | `Farewell` | none, and its close is none either |
//! | connect timeout, any other error | `Ended` | none |
//!
//! A task reconnects while its address stays watched, after 1 s and then
//! twice as long each time up to 10 s (back to 1 s after a stream that
//! stayed open that long). The side that accepts watch streams is
//! `watchers.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::net::IpAddr;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use vigil_proto::Unreachable;

use crate::crypto::Lane;
use crate::envelope::Envelope;
use crate::transport::{connect, read_frame, write_frame};

/// Plaintext of the control frame that opens a watch stream.
pub(crate) const HELLO: u8 = 0xC2;
/// Shortest wait before reconnecting, and the longest.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Whether a frame opened from an inbound stream is a watch stream's hello.
pub(crate) fn is_hello(plain: &[u8]) -> bool {
    plain == [HELLO]
}

/// What a watch task saw, for the driver.
#[derive(Debug)]
pub(crate) enum Report {
    /// The stream to `addr` is open (the hello written).
    Opened { addr: SocketAddr, task: u64 },
    /// The stream to `addr` ended or could not be opened; `evidence` when
    /// the kernel said that the process behind it is gone.
    Ended { addr: SocketAddr, task: u64, evidence: Option<Unreachable> },
    /// The watched member wrote a frame (sealed): its farewell.
    Farewell { addr: SocketAddr, frame: Vec<u8> },
}

/// The watch tasks, one per watched address.
#[derive(Debug)]
pub(crate) struct Watches {
    running: BTreeMap<SocketAddr, (u64, AbortHandle)>,
    /// Addresses whose stream is open now.
    open: BTreeSet<SocketAddr>,
    next_task: u64,
    /// Seals each connection's hello (the current key, a fresh counter, the
    /// envelope the watched member reads).
    envelope: Envelope,
    tx: mpsc::Sender<Report>,
    rx: mpsc::Receiver<Report>,
    timeout: Duration,
    max_frame: usize,
    source: Option<IpAddr>,
}

impl Watches {
    /// No watch yet. Every connect and write ends within `timeout`; frames
    /// longer than `max_frame` are refused; hellos are sealed with
    /// `envelope`; connections come from `source` when given.
    pub(crate) fn new(
        timeout: Duration,
        max_frame: usize,
        envelope: Envelope,
        source: Option<IpAddr>,
    ) -> Watches {
        let (tx, rx) = mpsc::channel(256);
        Watches {
            running: BTreeMap::new(),
            open: BTreeSet::new(),
            next_task: 0,
            envelope,
            tx,
            rx,
            timeout,
            max_frame,
            source,
        }
    }

    /// Watches exactly `watched`: starts a task for each new address and
    /// stops the tasks of addresses no longer in it. Cheap when unchanged.
    pub(crate) fn sync(&mut self, watched: &[SocketAddr]) {
        if self.running.len() == watched.len() && watched.iter().all(|a| self.running.contains_key(a)) {
            return;
        }
        let gone: Vec<SocketAddr> = self.running.keys().filter(|a| !watched.contains(a)).copied().collect();
        for addr in gone {
            if let Some((_, task)) = self.running.remove(&addr) {
                task.abort();
            }
            self.open.remove(&addr);
        }
        for &addr in watched {
            if self.running.contains_key(&addr) {
                continue;
            }
            self.next_task += 1;
            let id = self.next_task;
            let task = Task {
                addr,
                id,
                tx: self.tx.clone(),
                envelope: self.envelope.clone(),
                timeout: self.timeout,
                max_frame: self.max_frame,
                source: self.source,
            };
            let handle = tokio::spawn(task.run()).abort_handle();
            self.running.insert(addr, (id, handle));
        }
    }

    /// Watch streams open now.
    pub(crate) fn open(&self) -> usize {
        self.open.len()
    }

    /// The next report. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Report {
        // `self` holds a sender: the channel never closes.
        let Some(report) = self.rx.recv().await else { return std::future::pending().await };
        self.note(&report);
        report
    }

    /// A report already waiting, if any.
    pub(crate) fn try_next(&mut self) -> Option<Report> {
        let report = self.rx.try_recv().ok()?;
        self.note(&report);
        Some(report)
    }

    /// Keeps the set of open streams (reports of stopped tasks are stale).
    fn note(&mut self, report: &Report) {
        let current = |addr, task| self.running.get(addr).is_some_and(|(id, _)| *id == task);
        match *report {
            Report::Opened { addr, task } if current(&addr, task) => {
                self.open.insert(addr);
            }
            Report::Ended { addr, task, .. } if current(&addr, task) => {
                self.open.remove(&addr);
            }
            _ => {}
        }
    }
}

impl Drop for Watches {
    /// Closes every watch stream, as the process's exit would.
    fn drop(&mut self) {
        for (_, task) in self.running.values() {
            task.abort();
        }
    }
}

/// One watched address.
struct Task {
    addr: SocketAddr,
    id: u64,
    tx: mpsc::Sender<Report>,
    envelope: Envelope,
    timeout: Duration,
    max_frame: usize,
    source: Option<IpAddr>,
}

impl Task {
    /// Watches until aborted, reconnecting with backoff.
    async fn run(self) {
        let mut wait = RETRY_MIN;
        loop {
            let opened = Instant::now();
            let (established, evidence) = self.once().await;
            let report = Report::Ended { addr: self.addr, task: self.id, evidence };
            if self.tx.send(report).await.is_err() {
                return;
            }
            wait = if established && opened.elapsed() >= RETRY_MAX { RETRY_MIN } else { wait };
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// One stream, from connect to its end: whether it was established, and
    /// the evidence its end gave.
    async fn once(&self) -> (bool, Option<Unreachable>) {
        let mut stream = match tokio::time::timeout(self.timeout, connect(self.addr, self.source)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return (false, Some(Unreachable::Refused));
            }
            Ok(Err(e)) => {
                tracing::debug!(addr = %self.addr, "watch stream not opened: {e}");
                return (false, None);
            }
            Err(_) => return (false, None),
        };
        // Sealed afresh for each connection: a replayed hello is refused.
        let hello = self.envelope.seal(Lane::Stream, Some(&self.addr), &[HELLO]);
        let _ = stream.set_nodelay(true);
        match tokio::time::timeout(self.timeout, write_frame(&mut stream, &hello)).await {
            Ok(Ok(())) => {}
            _ => return (false, None),
        }
        if self.tx.send(Report::Opened { addr: self.addr, task: self.id }).await.is_err() {
            return (true, None);
        }
        let mut farewell = false;
        loop {
            match read_frame(&mut stream, self.max_frame).await {
                Ok(Some(frame)) => {
                    farewell = true;
                    let _ = self.tx.send(Report::Farewell { addr: self.addr, frame }).await;
                }
                // After a farewell, the close is expected: no evidence.
                Ok(None) => return (true, (!farewell).then_some(Unreachable::StreamClosed)),
                Err(e) if closed(&e) => return (true, (!farewell).then_some(Unreachable::StreamClosed)),
                Err(e) => {
                    tracing::debug!(addr = %self.addr, "watch stream dropped: {e}");
                    return (true, None);
                }
            }
        }
    }
}

/// Whether a read error says the other end closed the connection (a reset,
/// or an end of file inside a frame).
fn closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    async fn report(w: &mut Watches) -> Report {
        tokio::time::timeout(Duration::from_secs(5), w.next()).await.expect("a report within 5 s")
    }

    #[tokio::test]
    async fn a_closed_stream_is_evidence_and_a_refused_reconnect_too() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut w = Watches::new(Duration::from_secs(5), 1 << 16, Envelope::new(None, true), None);
        w.sync(&[addr]);
        let (mut accepted, _) = listener.accept().await.unwrap();
        let hello = read_frame(&mut accepted, 16).await.unwrap();
        assert_eq!(hello, Some(vec![HELLO]), "the stream opens with the hello");
        assert!(matches!(report(&mut w).await, Report::Opened { .. }));
        assert_eq!(w.open(), 1);
        // The process exits: its kernel closes the stream and the port.
        drop((accepted, listener));
        let ended = report(&mut w).await;
        assert!(
            matches!(ended, Report::Ended { evidence: Some(Unreachable::StreamClosed), .. }),
            "{ended:?}"
        );
        assert_eq!(w.open(), 0);
        let again = report(&mut w).await;
        assert!(matches!(again, Report::Ended { evidence: Some(Unreachable::Refused), .. }), "{again:?}");
        w.sync(&[]);
    }

    #[tokio::test]
    async fn a_farewell_is_passed_on_and_the_close_after_it_is_no_evidence() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut w = Watches::new(Duration::from_secs(5), 1 << 16, Envelope::new(None, true), None);
        w.sync(&[addr]);
        let (mut accepted, _) = listener.accept().await.unwrap();
        read_frame(&mut accepted, 16).await.unwrap();
        write_frame(&mut accepted, b"left").await.unwrap();
        drop(accepted);
        assert!(matches!(report(&mut w).await, Report::Opened { .. }));
        let farewell = report(&mut w).await;
        assert!(matches!(&farewell, Report::Farewell { frame, .. } if frame == b"left"), "{farewell:?}");
        let ended = report(&mut w).await;
        assert!(matches!(ended, Report::Ended { evidence: None, .. }), "{ended:?}");
    }

    #[tokio::test]
    async fn an_address_no_longer_watched_is_let_go() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut w = Watches::new(Duration::from_secs(5), 1 << 16, Envelope::new(None, true), None);
        w.sync(&[addr]);
        let (mut accepted, _) = listener.accept().await.unwrap();
        read_frame(&mut accepted, 16).await.unwrap();
        assert!(matches!(report(&mut w).await, Report::Opened { .. }));
        w.sync(&[]);
        assert_eq!(w.open(), 0);
        let mut rest = Vec::new();
        let end = tokio::io::AsyncReadExt::read_to_end(&mut accepted, &mut rest);
        tokio::time::timeout(Duration::from_secs(5), end).await.expect("closed").unwrap();
        assert!(rest.is_empty(), "nothing but the hello is ever written");
    }
}
