//! Watch streams that other members hold open to this one (docs/PROTOCOL.md,
//! "Watch streams"; the watching side is `watch.rs`). The accept loop
//! (`stream.rs`) hands over a connection whose first frame is the hello,
//! once the driver [admitted](Watchers::admit) it: at most [`MAX_HELD`], a
//! bound of their own, apart from the slots of short exchanges. Nothing is
//! ever written on one, until this member leaves: then the driver's
//! farewell (`Core::farewell`) is sealed in the envelope the watcher's hello
//! came in, written on each and the stream closed, so that the watchers learn it left rather than take the close for
//! a crash. When the driver stops without leaving, every held stream is
//! closed, as the process's exit would close it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::crypto::Lane;
use crate::envelope::Envelope;
use crate::transport::write_frame;

/// Watch streams held for watchers at once; more are closed.
pub(crate) const MAX_HELD: usize = 64;

/// A held stream's link to the driver: where its farewell comes from, and
/// how to seal it (version 1 for a watcher of the previous release).
#[derive(Debug)]
pub(crate) struct Hold {
    farewell: oneshot::Receiver<Farewell>,
    envelope: Envelope,
    legacy: bool,
}

/// The farewell to write (plaintext), and who to tell once it is written.
#[derive(Debug)]
struct Farewell {
    plain: Vec<u8>,
    written: oneshot::Sender<()>,
}

/// The held streams, as the driver sees them.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    /// One per held stream; closed when its stream ended.
    held: Vec<oneshot::Sender<Farewell>>,
    /// Farewells handed out and not yet written.
    writing: Vec<oneshot::Receiver<()>>,
}

impl Watchers {
    /// Admits one more watch stream, unless [`MAX_HELD`] are held; its
    /// farewell will be sealed with `envelope` (in version 1 if `legacy`).
    pub(crate) fn admit(&mut self, envelope: &Envelope, legacy: bool) -> Option<Hold> {
        self.held.retain(|h| !h.is_closed());
        if self.held.len() >= MAX_HELD {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.held.push(tx);
        Some(Hold { farewell: rx, envelope: envelope.clone(), legacy })
    }

    /// Watch streams held now.
    pub(crate) fn count(&self) -> usize {
        self.held.iter().filter(|h| !h.is_closed()).count()
    }

    /// Writes the farewell `plain` (sealed) on every held stream, then closes them.
    pub(crate) fn farewell(&mut self, plain: &[u8]) {
        for held in self.held.drain(..) {
            let (written, done) = oneshot::channel();
            if held.send(Farewell { plain: plain.to_vec(), written }).is_ok() {
                self.writing.push(done);
            }
        }
    }

    /// True when every farewell handed out was written (or its stream is gone).
    pub(crate) fn farewells_written(&mut self) -> bool {
        self.writing.retain_mut(|w| matches!(w.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        self.writing.is_empty()
    }

    /// Completes when one more farewell was written; never while none is
    /// being written. Cancel-safe.
    pub(crate) async fn farewell_written(&mut self) {
        match self.writing.last_mut() {
            Some(w) => {
                let _ = w.await;
                self.writing.pop();
            }
            None => std::future::pending().await,
        }
    }
}

/// Holds an admitted watch stream: silent until the farewell comes (written
/// within `timeout`, then the stream is closed), the watcher closes its
/// end, or the driver is gone.
pub(crate) async fn hold(mut stream: TcpStream, mut hold: Hold, timeout: Duration) {
    let mut byte = [0u8; 1];
    let farewell = tokio::select! {
        f = &mut hold.farewell => f.ok(),
        // The watcher closed its end (or wrote what it never should): let go.
        _ = stream.read(&mut byte) => None,
    };
    let Some(Farewell { plain, written }) = farewell else { return };
    let frame = hold.envelope.seal_as(Lane::Stream, hold.legacy, &plain);
    let write = async {
        write_frame(&mut stream, &frame).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("farewell not written: {e}"),
        Err(_) => tracing::debug!("farewell not written: timed out"),
    }
    let _ = written.send(());
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;
    use crate::transport::read_frame;

    fn plain() -> Envelope {
        Envelope::new(None, true)
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let watcher = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (held, _) = listener.accept().await.unwrap();
        (watcher, held)
    }

    #[tokio::test]
    async fn the_farewell_is_written_on_every_held_stream_then_they_close() {
        let mut w = Watchers::default();
        let mut watchers = Vec::new();
        for _ in 0..3 {
            let (watcher, held) = pair().await;
            tokio::spawn(hold(held, w.admit(&plain(), false).unwrap(), Duration::from_secs(5)));
            watchers.push(watcher);
        }
        assert_eq!(w.count(), 3);
        w.farewell(b"left");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !w.farewells_written() {
                w.farewell_written().await;
            }
        })
        .await
        .expect("written within 5 s");
        for mut watcher in watchers {
            assert_eq!(read_frame(&mut watcher, 16).await.unwrap(), Some(b"left".to_vec()));
            assert_eq!(read_frame(&mut watcher, 16).await.unwrap(), None, "then closed");
        }
    }

    #[tokio::test]
    async fn held_streams_close_when_the_driver_is_gone_and_are_bounded() {
        let mut w = Watchers::default();
        let (mut watcher, held) = pair().await;
        tokio::spawn(hold(held, w.admit(&plain(), false).unwrap(), Duration::from_secs(5)));
        let others: Vec<Hold> = (1..MAX_HELD).map(|_| w.admit(&plain(), false).expect("room")).collect();
        assert!(w.admit(&plain(), false).is_none(), "at most {MAX_HELD}");
        drop(others);
        assert!(w.admit(&plain(), false).is_some(), "room again once streams ended");
        drop(w);
        let end = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut watcher, 16)).await;
        assert_eq!(end.expect("closed within 5 s").unwrap(), None, "closed without a word");
    }
}
