//! Cluster-wide key operations: one request per member over an encrypted
//! stream, each answered with an acknowledgement, and a report of who did
//! not answer (the way Serf's `keys` command works).
//!
//! Control frames are plaintext inside the encrypted envelope and start with
//! [`CONTROL`], which no protocol packet starts with:
//! request `[CONTROL][op][32-byte key]`, answer `[CONTROL][op | 0x80][status][message]`.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::crypto::{Key, KeyError, Keyring, Lane};
use crate::error::CommandError;
use crate::transport::{read_frame, write_frame};

/// First byte of a control frame.
const CONTROL: u8 = 0xC1;

/// A key operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyOp {
    /// Add a key for receiving.
    Install,
    /// Make an installed key the one used for sending.
    Use,
    /// Remove a key that is not in use for sending.
    Remove,
}

impl KeyOp {
    fn code(self) -> u8 {
        match self {
            KeyOp::Install => 1,
            KeyOp::Use => 2,
            KeyOp::Remove => 3,
        }
    }

    fn from_code(c: u8) -> Option<KeyOp> {
        Some(match c {
            1 => KeyOp::Install,
            2 => KeyOp::Use,
            3 => KeyOp::Remove,
            _ => return None,
        })
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOp::Install => "install",
            KeyOp::Use => "use",
            KeyOp::Remove => "remove",
        }
    }
}

/// Applies `op` to a keyring.
fn apply(ring: &mut Keyring, op: KeyOp, key: Key) -> Result<(), KeyError> {
    match op {
        KeyOp::Install => ring.install(key),
        KeyOp::Use => ring.use_key(&key),
        KeyOp::Remove => ring.remove(&key),
    }
}

/// The outcome of a cluster-wide key operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyReport {
    /// Members that applied it.
    pub applied: Vec<String>,
    /// Members that answered with an error, and the error.
    pub refused: Vec<(String, String)>,
    /// Members that did not answer in time.
    pub missing: Vec<String>,
}

impl KeyReport {
    /// True when every member applied it.
    pub fn complete(&self) -> bool {
        self.refused.is_empty() && self.missing.is_empty()
    }
}

/// Where the outcome of a key command goes.
pub(crate) type KeyReply = oneshot::Sender<Result<KeyReport, CommandError>>;

/// Carries out a key command: applies `op` to `ring` here, then, with
/// `peers` (name and address of every other active member), on each of them
/// in a background task, each within `timeout`. The report goes to `reply`.
pub(crate) fn command(
    ring: Option<&mut Keyring>,
    op: KeyOp,
    key: Key,
    peers: Option<Vec<(String, SocketAddr)>>,
    timeout: Duration,
    reply: KeyReply,
) {
    let Some(ring) = ring else {
        let _ = reply.send(Err(CommandError::Keys("encryption is off: there is no keyring".into())));
        return;
    };
    if let Err(e) = apply(ring, op, key.clone()) {
        let _ = reply.send(Err(CommandError::Keys(e.to_string())));
        return;
    }
    tracing::info!(op = op.as_str(), key = %key.fingerprint(), cluster = peers.is_some(), "keyring changed");
    let Some(peers) = peers else {
        let _ = reply.send(Ok(KeyReport::default()));
        return;
    };
    let ring = ring.clone();
    tokio::spawn(async move {
        let report = broadcast(ring, op, key, peers, timeout).await;
        let _ = reply.send(Ok(report));
    });
}

/// Whether a frame opened from a stream is a control request.
pub(crate) fn is_control(plain: &[u8]) -> bool {
    plain.first() == Some(&CONTROL)
}

fn request(op: KeyOp, key: &Key) -> Vec<u8> {
    let mut out = vec![CONTROL, op.code()];
    // Keys only leave the process inside an encrypted envelope.
    out.extend_from_slice(key.bytes());
    out
}

/// Handles a control request received on a stream; returns the answer.
pub(crate) fn handle(ring: &mut Keyring, frame: &[u8]) -> Vec<u8> {
    let (op, result) = match frame {
        [CONTROL, code, key @ ..] if key.len() == 32 => match KeyOp::from_code(*code) {
            Some(op) => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(key);
                (op.code(), apply(ring, op, Key::from_bytes(bytes)).map_err(|e| e.to_string()))
            }
            None => (*code, Err("unknown key operation".to_string())),
        },
        _ => (0, Err("malformed control frame".to_string())),
    };
    let mut out = vec![CONTROL, op | 0x80];
    match result {
        Ok(()) => out.push(0),
        Err(message) => {
            out.push(1);
            out.extend_from_slice(message.as_bytes());
        }
    }
    out
}

/// Sends `op` to every `(name, addr)` at once and collects the answers.
async fn broadcast(
    ring: Keyring,
    op: KeyOp,
    key: Key,
    members: Vec<(String, SocketAddr)>,
    timeout: Duration,
) -> KeyReport {
    let frame = ring.seal(Lane::Stream, &request(op, &key));
    let mut tasks = tokio::task::JoinSet::new();
    for (name, addr) in members {
        let (frame, ring) = (frame.clone(), ring.clone());
        tasks.spawn(async move {
            let exchange = async {
                let mut s = TcpStream::connect(addr).await?;
                write_frame(&mut s, &frame).await?;
                tokio::io::AsyncWriteExt::shutdown(&mut s).await?;
                read_frame(&mut s, 4096).await
            };
            let answer = match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok(Some(sealed))) => ring.open(Lane::Stream, &sealed).ok(),
                _ => None,
            };
            (name, answer)
        });
    }
    let mut report = KeyReport::default();
    while let Some(done) = tasks.join_next().await {
        let Ok((name, answer)) = done else { continue };
        match answer.as_deref() {
            Some([CONTROL, _, 0, ..]) => report.applied.push(name),
            Some([CONTROL, _, _, message @ ..]) => {
                report.refused.push((name, String::from_utf8_lossy(message).into_owned()))
            }
            _ => report.missing.push(name),
        }
    }
    report.applied.sort();
    report.refused.sort();
    report.missing.sort();
    report
}
