//! Cluster-wide key operations: one request per member over an encrypted
//! stream, each answered with an acknowledgement, and a report of who did
//! not answer (the way Serf's `keys` command works).
//!
//! Control frames are plaintext inside the encrypted envelope and start with
//! [`CONTROL`], which no protocol packet starts with:
//! request `[CONTROL][op][32-byte key]`, answer `[CONTROL][op | 0x80][status][message]`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::crypto::{Key, KeyError, Keyring, Lane};
use crate::envelope::{Envelope, Speaks};
use crate::error::CommandError;
use crate::stream::exchange;

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

/// Carries out a key command: applies `op` to the keyring here, then, with
/// `peers` (name and address of every other active member), on each of them
/// in a background task, each within `timeout`, connecting from `source`.
/// The report goes to `reply`.
pub(crate) fn command(
    envelope: &Envelope,
    (op, key): (KeyOp, Key),
    peers: Option<Vec<(String, SocketAddr)>>,
    (timeout, source): (Duration, Option<IpAddr>),
    reply: KeyReply,
) {
    match envelope.change_keyring(|ring| apply(ring, op, key.clone())) {
        None => {
            let _ = reply.send(Err(CommandError::Keys("encryption is off: there is no keyring".into())));
            return;
        }
        Some(Err(e)) => {
            let _ = reply.send(Err(CommandError::Keys(e.to_string())));
            return;
        }
        Some(Ok(())) => {}
    }
    tracing::info!(op = op.as_str(), key = %key.fingerprint(), cluster = peers.is_some(), "keyring changed");
    let Some(peers) = peers else {
        let _ = reply.send(Ok(KeyReport::default()));
        return;
    };
    let envelope = envelope.clone();
    tokio::spawn(async move {
        let report = broadcast(&envelope, &request(op, &key), peers, (timeout, source)).await;
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

/// Handles a control request received on a stream; returns the answer
/// (plaintext). `None` when encryption is off (no answer is due).
pub(crate) fn handle(envelope: &Envelope, frame: &[u8]) -> Option<Vec<u8>> {
    envelope.keyring()?;
    let (op, result) = match frame {
        [CONTROL, code, key @ ..] if key.len() == 32 => match KeyOp::from_code(*code) {
            Some(op) => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(key);
                let key = Key::from_bytes(bytes);
                let applied = envelope.change_keyring(|ring| apply(ring, op, key));
                (op.code(), applied.unwrap_or(Ok(())).map_err(|e| e.to_string()))
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
    Some(out)
}

/// Sends the control `request` to one member, in the envelope it reads; a
/// member not heard from that closes without a word is asked again in
/// version 1 (a member of the previous release). Its answer, opened.
async fn ask(
    envelope: &Envelope,
    addr: SocketAddr,
    request: &[u8],
    source: Option<IpAddr>,
) -> Option<Vec<u8>> {
    let unknown = envelope.speaks(&addr) == Speaks::Unknown;
    let mut legacy = envelope.speaks(&addr) == Speaks::LegacyOnly;
    loop {
        let frame = envelope.seal_as(Lane::Stream, legacy, request);
        let answers = exchange(addr, source, &[frame], 4096).await.ok()?;
        if let Some(sealed) = answers.first() {
            return envelope.open(Lane::Stream, Some(addr), sealed, 4096).ok().map(|o| o.plain.into_owned());
        }
        if legacy || !unknown {
            return None;
        }
        envelope.assume_legacy(addr);
        legacy = true;
    }
}

/// Sends a control request to every `(name, addr)` at once and collects the answers.
async fn broadcast(
    envelope: &Envelope,
    request: &[u8],
    members: Vec<(String, SocketAddr)>,
    (timeout, source): (Duration, Option<IpAddr>),
) -> KeyReport {
    let mut tasks = tokio::task::JoinSet::new();
    for (name, addr) in members {
        let (envelope, request) = (envelope.clone(), request.to_vec());
        tasks.spawn(async move {
            let answer = tokio::time::timeout(timeout, ask(&envelope, addr, &request, source)).await;
            (name, answer.ok().flatten())
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
