//! Encryption and authentication of every datagram and stream frame:
//! XChaCha20-Poly1305 under a 32-byte cluster key, a random 192-bit nonce per
//! message, and the cluster name bound in as associated data.
//!
//! Envelope (docs/PROTOCOL.md, "Encryption"):
//! `[0x81][nonce: 24 bytes][ciphertext][tag: 16 bytes]` — 41 bytes of overhead.

use std::borrow::Cow;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// First byte of an encrypted envelope (distinct from the plaintext codec's version byte).
pub const ENVELOPE_VERSION: u8 = 0x81;
/// Nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to a packet.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Most keys installed at once.
pub const MAX_KEYS: usize = 16;

/// A 32-byte cluster key. Its bytes are wiped when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key([u8; 32]);

impl PartialEq for Key {
    /// Constant-time comparison.
    fn eq(&self, other: &Key) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for Key {}

impl Key {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Key {
        let k = chacha20poly1305::Key::generate();
        let mut out = [0u8; 32];
        out.copy_from_slice(k.as_slice());
        Key(out)
    }

    /// Parses the base64 form that [`Key::to_base64`] prints (surrounding
    /// whitespace allowed).
    pub fn from_base64(text: &str) -> Result<Key, KeyError> {
        let mut bytes = B64.decode(text.trim()).map_err(|_| KeyError::NotBase64)?;
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map(Key).map_err(|_| KeyError::Length(bytes.len()));
        bytes.zeroize();
        key
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as base64 (44 characters).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// A short public fingerprint to tell keys apart in listings: the first
    /// 8 bytes of an encryption of zeros, hex (reveals nothing usable).
    pub fn fingerprint(&self) -> String {
        let cipher = XChaCha20Poly1305::new(&self.0.into());
        let nonce = XNonce::default();
        let sealed = cipher.encrypt(&nonce, Payload { msg: &[0u8; 8], aad: b"vigil key fingerprint" });
        sealed.map(|s| s.iter().take(8).map(|b| format!("{b:02x}")).collect()).unwrap_or_default()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.fingerprint())
    }
}

/// A key was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// Not base64.
    #[error("key is not valid base64")]
    NotBase64,
    /// Not 32 bytes.
    #[error("key is {0} bytes; a cluster key is 32 bytes (44 characters of base64)")]
    Length(usize),
    /// The key is not installed.
    #[error("key {0} is not installed")]
    NotInstalled(String),
    /// The primary key cannot be removed.
    #[error("key {0} is the primary key: make another key primary first")]
    Primary(String),
    /// Too many keys.
    #[error("at most {MAX_KEYS} keys may be installed")]
    TooMany,
}

/// Why an envelope was refused. Each is a counter label.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not an envelope: plaintext, or another version.
    #[error("not an encrypted envelope")]
    NotEncrypted,
    /// Shorter than an empty envelope.
    #[error("envelope truncated")]
    Truncated,
    /// No installed key authenticates it (wrong key, wrong cluster name, or tampering).
    #[error("authentication failed")]
    Auth,
}

impl OpenError {
    /// Counter label.
    pub fn reason(self) -> &'static str {
        match self {
            OpenError::NotEncrypted => "unencrypted",
            OpenError::Truncated => "truncated",
            OpenError::Auth => "auth",
        }
    }
}

/// Whether a packet travels as a datagram or on a stream: bound into the
/// associated data so that one cannot be replayed as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A UDP datagram.
    Datagram = 1,
    /// A frame on a TCP stream.
    Stream = 2,
}

/// The installed keys: one primary (used to seal), all tried to open.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<(Key, XChaCha20Poly1305)>,
    aad_prefix: Vec<u8>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("keys", &self.list()).finish()
    }
}

impl Keyring {
    /// A keyring with `primary` for the cluster called `cluster`.
    pub fn new(primary: Key, cluster: &str) -> Keyring {
        let mut aad_prefix = b"vigil/1/".to_vec();
        aad_prefix.extend_from_slice(cluster.as_bytes());
        let cipher = XChaCha20Poly1305::new(&primary.0.into());
        Keyring { keys: vec![(primary, cipher)], aad_prefix }
    }

    /// Fingerprints of the installed keys, the primary first.
    pub fn list(&self) -> Vec<String> {
        self.keys.iter().map(|(k, _)| k.fingerprint()).collect()
    }

    /// The primary key.
    pub fn primary(&self) -> &Key {
        &self.keys[0].0
    }

    /// The installed keys, the primary first (to save the keyring).
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().map(|(k, _)| k)
    }

    /// Adds a key for receiving (no-op if present).
    pub fn install(&mut self, key: Key) -> Result<(), KeyError> {
        if self.keys.iter().any(|(k, _)| *k == key) {
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyError::TooMany);
        }
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        self.keys.push((key, cipher));
        Ok(())
    }

    /// Makes an installed key the primary (used for sending).
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyError> {
        let i = self
            .keys
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| KeyError::NotInstalled(key.fingerprint()))?;
        self.keys.swap(0, i);
        Ok(())
    }

    /// Removes a key that is not the primary.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyError> {
        let i = self
            .keys
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| KeyError::NotInstalled(key.fingerprint()))?;
        if i == 0 {
            return Err(KeyError::Primary(key.fingerprint()));
        }
        self.keys.remove(i);
        Ok(())
    }

    fn aad(&self, lane: Lane) -> Vec<u8> {
        let mut aad = self.aad_prefix.clone();
        aad.push(lane as u8);
        aad
    }

    /// Seals `plain` under the primary key.
    pub fn seal(&self, lane: Lane, plain: &[u8]) -> Vec<u8> {
        let nonce = XNonce::generate();
        let sealed =
            self.keys[0].1.encrypt(&nonce, Payload { msg: plain, aad: &self.aad(lane) }).unwrap_or_default();
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens an envelope with whichever installed key authenticates it.
    pub fn open(&self, lane: Lane, envelope: &[u8]) -> Result<Vec<u8>, OpenError> {
        let Some((&version, rest)) = envelope.split_first() else { return Err(OpenError::Truncated) };
        if version != ENVELOPE_VERSION {
            return Err(OpenError::NotEncrypted);
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| OpenError::Truncated)?;
        let aad = self.aad(lane);
        for (_, cipher) in &self.keys {
            if let Ok(plain) = cipher.decrypt(&nonce, Payload { msg: sealed, aad: &aad }) {
                return Ok(plain);
            }
        }
        Err(OpenError::Auth)
    }
}

/// This member's envelope: sealed with a keyring, or plaintext when
/// encryption is off.
#[derive(Debug)]
pub(crate) struct Envelope(Option<Keyring>);

impl Envelope {
    pub(crate) fn new(keyring: Option<Keyring>) -> Self {
        Envelope(keyring)
    }

    /// The keyring, when traffic is encrypted.
    pub(crate) fn keyring(&self) -> Option<&Keyring> {
        self.0.as_ref()
    }

    /// The keyring, to change it.
    pub(crate) fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.0.as_mut()
    }

    /// Opens a packet as it came off the wire.
    pub(crate) fn open<'a>(&self, lane: Lane, wire: &'a [u8]) -> Result<Cow<'a, [u8]>, OpenError> {
        match &self.0 {
            None => Ok(Cow::Borrowed(wire)),
            Some(ring) => ring.open(lane, wire).map(Cow::Owned),
        }
    }

    /// Seals a packet for the wire.
    pub(crate) fn seal(&self, lane: Lane, plain: Vec<u8>) -> Vec<u8> {
        match &self.0 {
            None => plain,
            Some(ring) => ring.seal(lane, &plain),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_packets_open_only_with_the_key_cluster_and_lane() {
        let key = Key::generate();
        let ring = Keyring::new(key.clone(), "prod");
        let env = ring.seal(Lane::Datagram, b"hello");
        assert_eq!(env.len(), 5 + OVERHEAD);
        assert_eq!(ring.open(Lane::Datagram, &env).unwrap(), b"hello");
        assert_eq!(ring.open(Lane::Stream, &env), Err(OpenError::Auth), "lane is bound");
        assert_eq!(Keyring::new(key, "staging").open(Lane::Datagram, &env), Err(OpenError::Auth));
        assert_eq!(Keyring::new(Key::generate(), "prod").open(Lane::Datagram, &env), Err(OpenError::Auth));
        let mut tampered = env.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(Lane::Datagram, &tampered), Err(OpenError::Auth));
        assert_eq!(ring.open(Lane::Datagram, &env[..20]), Err(OpenError::Truncated));
        assert_eq!(ring.open(Lane::Datagram, b"\x01\x01plain"), Err(OpenError::NotEncrypted));
        assert_eq!(ring.open(Lane::Datagram, b""), Err(OpenError::Truncated));
        // Nonces are random: sealing twice differs.
        assert_ne!(ring.seal(Lane::Datagram, b"x"), ring.seal(Lane::Datagram, b"x"));
    }

    #[test]
    fn rotation_installs_uses_and_removes_keys() {
        let (old, new) = (Key::generate(), Key::generate());
        let mut a = Keyring::new(old.clone(), "c");
        let b_before = Keyring::new(old.clone(), "c");
        a.install(new.clone()).unwrap();
        // Installed but not primary: still sends with the old key, opens both.
        assert!(b_before.open(Lane::Datagram, &a.seal(Lane::Datagram, b"1")).is_ok());
        a.use_key(&new).unwrap();
        assert_eq!(a.list()[0], new.fingerprint());
        assert_eq!(a.remove(&new), Err(KeyError::Primary(new.fingerprint())));
        let from_old = b_before.seal(Lane::Datagram, b"2");
        assert!(a.open(Lane::Datagram, &from_old).is_ok(), "old key still accepted until removed");
        a.remove(&old).unwrap();
        assert_eq!(a.open(Lane::Datagram, &from_old), Err(OpenError::Auth), "removed key no longer works");
        assert!(matches!(a.use_key(&old), Err(KeyError::NotInstalled(_))));
    }

    #[test]
    fn keys_round_trip_base64_and_bad_ones_are_refused() {
        let k = Key::generate();
        assert_eq!(Key::from_base64(&format!(" {}\n", k.to_base64())).unwrap(), k);
        assert_eq!(Key::from_base64("not base64!"), Err(KeyError::NotBase64));
        assert_eq!(Key::from_base64("AAAA"), Err(KeyError::Length(3)));
        assert!(!format!("{k:?}").contains(&k.to_base64()), "debug never prints the key");
    }
}
