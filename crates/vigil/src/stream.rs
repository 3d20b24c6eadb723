//! Streams (TCP): full-state exchanges, join replies, fallback probes and key
//! operations. The accept loop serves each inbound connection in its own
//! task; each outbound message opens its own connection (an exchange) and
//! reads the peer's answers on it; answers to an inbound connection are
//! routed back onto that connection. Everything comes back to the driver as
//! a [`FromStream`]. An inbound connection that the driver answers with
//! [`Answer::Hold`] is a watch stream: it leaves the short-exchange slots and
//! is held by `watchers.rs`. Frames are read and written by `transport.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::transport::{read_frame, write_frame};
use crate::watchers::{self, Hold};

/// Inbound stream connections served at once; more wait in the kernel backlog.
const MAX_INBOUND_STREAMS: usize = 256;
/// Answers read on one outbound connection at most.
const MAX_ANSWERS: usize = 4;

/// What stream tasks hand back to the driver (frames still sealed).
#[derive(Debug)]
pub(crate) enum FromStream {
    /// A peer connected and sent a frame; the answer goes back through `reply`
    /// (dropping it closes the connection).
    Inbound { from: SocketAddr, bytes: Vec<u8>, reply: oneshot::Sender<Answer> },
    /// A frame that came back on a connection this member opened to `from`.
    Response { from: SocketAddr, bytes: Vec<u8> },
    /// A stream exchange failed; `refused` when the connection to `peer`
    /// was refused (kernel evidence that nothing listens there).
    Failed { peer: SocketAddr, error: String, refused: bool },
}

/// The driver's answer to an inbound connection's first frame.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Write these frames (sealed), then close.
    Frames(Vec<Vec<u8>>),
    /// A watch stream: hold it open (`watchers.rs`).
    Hold(Hold),
}

/// The stream side of a member: the accept loop, outbound exchanges, and
/// the replies being gathered for the inbound connection being answered.
#[derive(Debug)]
pub(crate) struct Streams {
    tx: mpsc::Sender<FromStream>,
    rx: mpsc::Receiver<FromStream>,
    timeout: Duration,
    max_frame: usize,
    answering: Option<(SocketAddr, Vec<Vec<u8>>)>,
    accept: JoinHandle<()>,
}

impl Streams {
    /// Starts accepting on `listener`. Every connect, write and answer ends
    /// within `timeout`; frames longer than `max_frame` are refused.
    pub(crate) fn start(listener: TcpListener, timeout: Duration, max_frame: usize) -> Streams {
        let (tx, rx) = mpsc::channel(1024);
        let accept = tokio::spawn(accept_loop(listener, tx.clone(), max_frame, timeout));
        Streams { tx, rx, timeout, max_frame, answering: None, accept }
    }

    /// The next thing a stream task reports.
    pub(crate) async fn next(&mut self) -> Option<FromStream> {
        self.rx.recv().await
    }

    /// A report already waiting, if any.
    pub(crate) fn try_next(&mut self) -> Option<FromStream> {
        self.rx.try_recv().ok()
    }

    /// From now until [`Streams::finish_answer`], messages to `peer` are
    /// replies on its inbound connection rather than new connections.
    pub(crate) fn begin_answer(&mut self, peer: SocketAddr) {
        self.answering = Some((peer, Vec::new()));
    }

    /// The replies gathered since [`Streams::begin_answer`].
    pub(crate) fn finish_answer(&mut self) -> Vec<Vec<u8>> {
        self.answering.take().map(|(_, replies)| replies).unwrap_or_default()
    }

    /// Whether a message to `dst` is a reply on the connection being answered.
    pub(crate) fn answers(&self, dst: SocketAddr) -> bool {
        self.answering.as_ref().is_some_and(|(peer, _)| *peer == dst)
    }

    /// Sends a sealed frame to `dst`: as a reply when [`Streams::answers`]
    /// says so, otherwise on a new connection opened after `delay`.
    pub(crate) fn send(&mut self, dst: SocketAddr, frame: Vec<u8>, delay: Duration) {
        if let Some((peer, replies)) = self.answering.as_mut()
            && *peer == dst
        {
            replies.push(frame);
            return;
        }
        let tx = self.tx.clone();
        let (timeout, max) = (self.timeout, self.max_frame);
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let report = match tokio::time::timeout(timeout, exchange(dst, &frame, max)).await {
                Ok(Ok(frames)) => {
                    for bytes in frames {
                        let _ = tx.send(FromStream::Response { from: dst, bytes }).await;
                    }
                    return;
                }
                // Only a connect is ever refused.
                Ok(Err(e)) => (e.to_string(), e.kind() == std::io::ErrorKind::ConnectionRefused),
                Err(_) => ("timed out".into(), false),
            };
            let (error, refused) = report;
            let _ = tx.send(FromStream::Failed { peer: dst, error, refused }).await;
        });
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Opens a connection to `dst`, writes `frame`, and reads the answers until
/// the peer closes.
async fn exchange(dst: SocketAddr, frame: &[u8], max: usize) -> std::io::Result<Vec<Vec<u8>>> {
    let mut s = TcpStream::connect(dst).await?;
    s.set_nodelay(true)?;
    write_frame(&mut s, frame).await?;
    tokio::io::AsyncWriteExt::shutdown(&mut s).await?;
    let mut frames = Vec::new();
    while frames.len() < MAX_ANSWERS {
        match read_frame(&mut s, max).await? {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    Ok(frames)
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
            let serve = async {
                let Some(bytes) = read_frame(&mut stream, max).await? else { return Ok(None) };
                let (reply_tx, reply_rx) = oneshot::channel();
                if tx.send(FromStream::Inbound { from: peer, bytes, reply: reply_tx }).await.is_err() {
                    return Ok(None);
                }
                match reply_rx.await {
                    Ok(Answer::Hold(hold)) => return Ok(Some(hold)),
                    Ok(Answer::Frames(replies)) => {
                        for r in replies {
                            write_frame(&mut stream, &r).await?;
                        }
                    }
                    Err(_) => {}
                }
                tokio::io::AsyncWriteExt::shutdown(&mut stream).await.map(|()| None)
            };
            let error = match tokio::time::timeout(timeout, serve).await {
                Ok(Ok(None)) => return,
                Ok(Ok(Some(hold))) => {
                    // A watch stream frees its short-exchange slot.
                    drop(permit);
                    return watchers::hold(stream, hold, timeout).await;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "timed out".into(),
            };
            drop(permit);
            let _ = tx.send(FromStream::Failed { peer, error, refused: false }).await;
        });
    }
}
