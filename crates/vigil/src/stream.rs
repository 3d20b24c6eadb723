//! Streams (TCP): full-state exchanges, join replies, fallback probes and key
//! operations. The accept loop admits each inbound connection (`admit.rs`)
//! and serves it in its own task; each outbound message opens its own
//! connection (an exchange) and reads the peer's answers on it; answers to
//! an inbound connection are routed back onto that connection. Everything
//! comes back to the driver as a [`FromStream`]. An inbound connection that
//! the driver answers with [`Answer::Hold`] is a watch stream: it leaves the
//! short-exchange slots and is held by `watchers.rs`. Frames are read and
//! written by `transport.rs`.
//!
//! Bounded before authentication: an inbound connection's first frame is at
//! most [`FIRST_FRAME_MAX`] bytes (checked on its length, before a buffer
//! grows), charged to the shared budget of unauthenticated bytes while it is
//! read, and must arrive and authenticate within [`AUTH_DEADLINE`]. Only then
//! may a larger frame follow, announced by the first one ([`LARGE`]): a
//! member sending more than [`FIRST_FRAME_MAX`] bytes sends the announcement
//! first. A member of the previous release, which never announces, may send
//! a large first frame from a known member's IP address, within the budget.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::admit::{Admission, Refusal, Slot};
use crate::crypto::{ENVELOPE_VERSION, Lane, OpenError, Version};
use crate::envelope::Envelope;
use crate::transport::{BUSY, connect, read_body, read_frame, read_len, too_long, write_frame};
use crate::watchers::{self, Hold};

/// Answers read on one outbound connection at most.
const MAX_ANSWERS: usize = 4;
/// Largest first frame of an inbound connection, sealed.
pub(crate) const FIRST_FRAME_MAX: usize = 64 << 10;
/// Time an inbound connection has to deliver a first frame that authenticates.
pub(crate) const AUTH_DEADLINE: Duration = Duration::from_secs(2);
/// Plaintext of the control frame `[LARGE][length: u32 be]`: the next frame
/// on this connection is that long (more than [`FIRST_FRAME_MAX`]).
pub(crate) const LARGE: u8 = 0xC3;

/// What stream tasks hand back to the driver. Inbound frames are opened
/// already (the first one must be, before anything else is read); answers
/// on outbound connections are still sealed.
#[derive(Debug)]
pub(crate) enum FromStream {
    /// A peer connected and sent a frame that authenticated, in `version`
    /// (`wire` bytes with framing); the answer goes back through `reply`
    /// (dropping it closes the connection).
    Inbound {
        from: SocketAddr,
        plain: Vec<u8>,
        version: Version,
        wire: usize,
        reply: oneshot::Sender<Answer>,
    },
    /// An inbound connection's frame did not open.
    Rejected { from: SocketAddr, error: OpenError },
    /// A frame that came back on a connection this member opened to `from`.
    Response { from: SocketAddr, bytes: Vec<u8> },
    /// The peer at `peer` read what this member sent and closed without a
    /// word: no answer was due, or it could not authenticate it (another
    /// key, another cluster name, or a member of the previous release that
    /// reads only version-1 envelopes). `retry` is the plaintext, when it
    /// went in version 2 to a peer not heard from yet: worth sending again
    /// in version 1.
    Unanswered { peer: SocketAddr, retry: Option<Vec<u8>> },
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

/// Settings of the stream tasks.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Every connect, write and answer ends within this.
    pub(crate) timeout: Duration,
    /// Frames longer than this are refused.
    pub(crate) max_frame: usize,
    /// The IP outbound connections come from (the bound IP, when specific).
    pub(crate) source: Option<IpAddr>,
}

/// The stream side of a member: the accept loop, outbound exchanges, and
/// the replies being gathered for the inbound connection being answered.
#[derive(Debug)]
pub(crate) struct Streams {
    tx: mpsc::Sender<FromStream>,
    rx: mpsc::Receiver<FromStream>,
    settings: Settings,
    admission: Admission,
    /// The inbound connection being answered: its peer, whether it spoke
    /// version 1 only, and the replies gathered.
    answering: Option<(SocketAddr, bool, Vec<Vec<u8>>)>,
    accept: JoinHandle<()>,
}

impl Streams {
    /// Starts accepting on `listener`.
    pub(crate) fn start(listener: TcpListener, settings: Settings, envelope: Envelope) -> Streams {
        let (tx, rx) = mpsc::channel(1024);
        let admission = Admission::default();
        let accept =
            tokio::spawn(accept_loop(listener, tx.clone(), settings.clone(), envelope, admission.clone()));
        Streams { tx, rx, settings, admission, answering: None, accept }
    }

    /// The admission state (the driver tells it who the members are).
    pub(crate) fn admission(&self) -> &Admission {
        &self.admission
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
    /// replies on its inbound connection rather than new connections;
    /// `legacy` when that connection spoke version 1 only.
    pub(crate) fn begin_answer(&mut self, peer: SocketAddr, legacy: bool) {
        self.answering = Some((peer, legacy, Vec::new()));
    }

    /// The replies gathered since [`Streams::begin_answer`].
    pub(crate) fn finish_answer(&mut self) -> Vec<Vec<u8>> {
        self.answering.take().map(|(_, _, replies)| replies).unwrap_or_default()
    }

    /// Whether a message to `dst` is a reply on the connection being
    /// answered, and if so whether in version 1.
    pub(crate) fn answers(&self, dst: SocketAddr) -> Option<bool> {
        self.answering.as_ref().filter(|(peer, _, _)| *peer == dst).map(|(_, legacy, _)| *legacy)
    }

    /// Sends sealed frames to `dst`: as a reply when [`Streams::answers`]
    /// says so, otherwise on a new connection opened after `delay`. `retry`:
    /// the plaintext, to hand back if the peer closes without answering.
    pub(crate) fn send(
        &mut self,
        dst: SocketAddr,
        frames: Vec<Vec<u8>>,
        delay: Duration,
        retry: Option<Vec<u8>>,
    ) {
        if let Some((peer, _, replies)) = self.answering.as_mut()
            && *peer == dst
        {
            replies.extend(frames);
            return;
        }
        let tx = self.tx.clone();
        let settings = self.settings.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let exchange = exchange(dst, settings.source, &frames, settings.max_frame);
            let report = match tokio::time::timeout(settings.timeout, exchange).await {
                Ok(Ok(answers)) if answers.is_empty() => FromStream::Unanswered { peer: dst, retry },
                Ok(Ok(answers)) => {
                    for bytes in answers {
                        let _ = tx.send(FromStream::Response { from: dst, bytes }).await;
                    }
                    return;
                }
                // Only a connect is ever refused.
                Ok(Err(e)) => FromStream::Failed {
                    peer: dst,
                    error: e.to_string(),
                    refused: e.kind() == std::io::ErrorKind::ConnectionRefused,
                },
                Err(_) => FromStream::Failed { peer: dst, error: "timed out".into(), refused: false },
            };
            let _ = tx.send(report).await;
        });
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Seals `plain` as the frames to write on a new connection: the frame
/// itself, after a [`LARGE`] announcement when it is longer than a first
/// frame may be and goes in version 2 (`legacy`: in version 1, for a member
/// of the previous release, which never needs one).
pub(crate) fn frames_for(envelope: &Envelope, legacy: bool, plain: &[u8]) -> Vec<Vec<u8>> {
    let frame = envelope.seal_as(Lane::Stream, legacy, plain);
    if frame.len() <= FIRST_FRAME_MAX || legacy {
        return vec![frame];
    }
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let mut announce = vec![LARGE];
    announce.extend_from_slice(&len.to_be_bytes());
    vec![envelope.seal_as(Lane::Stream, false, &announce), frame]
}

/// Opens a connection to `dst`, writes `frames`, and reads the answers until
/// the peer closes.
pub(crate) async fn exchange(
    dst: SocketAddr,
    source: Option<IpAddr>,
    frames: &[Vec<u8>],
    max: usize,
) -> std::io::Result<Vec<Vec<u8>>> {
    let mut s = connect(dst, source).await?;
    s.set_nodelay(true)?;
    for frame in frames {
        write_frame(&mut s, frame).await?;
    }
    tokio::io::AsyncWriteExt::shutdown(&mut s).await?;
    let mut answers = Vec::new();
    while answers.len() < MAX_ANSWERS {
        match read_frame(&mut s, max).await? {
            Some(f) => answers.push(f),
            None => break,
        }
    }
    Ok(answers)
}

/// Accepts stream connections, admits them and serves each in its own task.
/// Never waits for a slot: a connection without one is closed at once.
async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<FromStream>,
    settings: Settings,
    envelope: Envelope,
    admission: Admission,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::trace!(%peer, "stream refused: {}", why.reason());
                // Best effort: a full send buffer, or a reset, loses it.
                let _ = stream.try_write(&BUSY.to_be_bytes());
                continue;
            }
        };
        let conn = Connection {
            stream,
            peer,
            slot,
            tx: tx.clone(),
            settings: settings.clone(),
            envelope: envelope.clone(),
            admission: admission.clone(),
        };
        tokio::spawn(conn.serve());
    }
}

/// Why an inbound connection's first frame was not taken.
#[derive(Debug)]
pub(crate) enum NotTaken {
    /// Closed before a frame.
    Closed,
    Refused(Refusal),
    Rejected(OpenError),
    Io(std::io::Error),
}

impl From<std::io::Error> for NotTaken {
    fn from(e: std::io::Error) -> Self {
        NotTaken::Io(e)
    }
}

/// One inbound connection and what it needs.
struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    tx: mpsc::Sender<FromStream>,
    settings: Settings,
    envelope: Envelope,
    admission: Admission,
}

impl Connection {
    async fn serve(mut self) {
        let first = tokio::time::timeout(AUTH_DEADLINE, self.first_frame()).await;
        let (plain, version, wire) = match first {
            Ok(Ok(taken)) => taken,
            Err(_) => return self.admission.refused(Refusal::Deadline),
            Ok(Err(NotTaken::Refused(why))) => {
                return tracing::debug!(peer = %self.peer, "stream: {}", why.reason());
            }
            Ok(Err(NotTaken::Rejected(error))) => {
                let _ = self.tx.send(FromStream::Rejected { from: self.peer, error }).await;
                return;
            }
            Ok(Err(NotTaken::Closed)) => return,
            Ok(Err(NotTaken::Io(e))) => return self.failed(e.to_string()).await,
        };
        let (tx, peer, timeout) = (self.tx.clone(), self.peer, self.settings.timeout);
        let serve = async {
            let (plain, wire): (Vec<u8>, usize) = match plain.first() {
                Some(&LARGE) => self.large(&plain).await?,
                _ => (plain, wire),
            };
            let (reply_tx, reply_rx) = oneshot::channel();
            let inbound = FromStream::Inbound { from: peer, plain, version, wire, reply: reply_tx };
            if tx.send(inbound).await.is_err() {
                return Ok(None);
            }
            match reply_rx.await {
                Ok(Answer::Hold(hold)) => return Ok(Some(hold)),
                Ok(Answer::Frames(replies)) => {
                    for r in replies {
                        write_frame(&mut self.stream, &r).await?;
                    }
                }
                Err(_) => {}
            }
            tokio::io::AsyncWriteExt::shutdown(&mut self.stream).await?;
            Ok::<_, NotTaken>(None)
        };
        let error = match tokio::time::timeout(timeout, serve).await {
            Ok(Ok(None)) => return,
            Ok(Ok(Some(hold))) => {
                // A watch stream frees its short-exchange slot.
                drop(self.slot);
                return watchers::hold(self.stream, hold, timeout).await;
            }
            Ok(Err(NotTaken::Rejected(error))) => {
                let _ = tx.send(FromStream::Rejected { from: peer, error }).await;
                return;
            }
            Ok(Err(NotTaken::Io(e))) => e.to_string(),
            Ok(Err(_)) => "ended before its announced frame".into(),
            Err(_) => "timed out".into(),
        };
        self.failed(error).await;
    }

    async fn failed(&self, error: String) {
        let _ = self.tx.send(FromStream::Failed { peer: self.peer, error, refused: false }).await;
    }
    async fn first_frame(&mut self) -> Result<(Vec<u8>, Version, usize), NotTaken> {
        let known = self.admission.is_known(&self.peer.ip());
        read_first(&mut self.stream, known, &self.envelope, &self.admission, self.settings.max_frame).await
    }

    async fn large(&mut self, announce: &[u8]) -> Result<(Vec<u8>, usize), NotTaken> {
        read_large(&mut self.stream, announce, &self.envelope, self.settings.max_frame).await
    }
}

/// Reads and opens the first frame of an inbound connection: its length
/// checked before any buffer grows (at most [`FIRST_FRAME_MAX`], unless the
/// peer is at a `known` member's IP and the frame is not version 2), its
/// bytes charged to the unauthenticated budget until it opened. Returns the
/// plaintext, its envelope and its size on the wire.
pub(crate) async fn read_first<R: AsyncRead + Unpin>(
    r: &mut R,
    known: bool,
    envelope: &Envelope,
    admission: &Admission,
    max_frame: usize,
) -> Result<(Vec<u8>, Version, usize), NotTaken> {
    let Some(len) = read_len(r).await? else { return Err(NotTaken::Closed) };
    let mut version = [0u8; 1];
    if len > 0 {
        r.read_exact(&mut version).await?;
    }
    // A member of the previous release (or one without encryption) never
    // announces a large frame: from a member's IP, it may send one.
    let cap = if version[0] == ENVELOPE_VERSION || !known { FIRST_FRAME_MAX } else { max_frame };
    if len > cap {
        admission.refused(Refusal::TooLarge);
        return Err(NotTaken::Refused(Refusal::TooLarge));
    }
    let Some(_budget) = admission.reserve(len) else { return Err(NotTaken::Refused(Refusal::Budget)) };
    let mut frame = version[..len.min(1)].to_vec();
    let rest = len - frame.len();
    read_body(r, &mut frame, rest).await?;
    let opened = envelope.open(Lane::Stream, None, &frame, max_frame).map_err(NotTaken::Rejected)?;
    Ok((opened.plain.into_owned(), opened.version, len + 4))
}

/// After an announcement that authenticated: reads the large frame it
/// announced (at most `max_frame` bytes) and opens it.
pub(crate) async fn read_large<R: AsyncRead + Unpin>(
    r: &mut R,
    announce: &[u8],
    envelope: &Envelope,
    max_frame: usize,
) -> Result<(Vec<u8>, usize), NotTaken> {
    let announced = match announce {
        [LARGE, a, b, c, d] => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => return Err(NotTaken::Rejected(OpenError::Truncated)),
    };
    let max = announced.min(max_frame);
    let Some(len) = read_len(r).await? else { return Err(NotTaken::Closed) };
    if len > max {
        return Err(NotTaken::Io(too_long(len, max)));
    }
    let mut frame = Vec::new();
    read_body(r, &mut frame, len).await?;
    let opened = envelope.open(Lane::Stream, None, &frame, max_frame).map_err(NotTaken::Rejected)?;
    Ok((opened.plain.into_owned(), len + 4))
}
