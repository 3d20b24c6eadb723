//! Encryption and authentication of every datagram and stream frame under a
//! 32-byte cluster key, with the cluster name bound in as associated data.
//!
//! Envelope version 2, sealed by this release (docs/PROTOCOL.md,
//! "Encryption"): AES-256-GCM-SIV (RFC 8452) with the nonce carried in the
//! clear as a sender session and a counter, 29 bytes of overhead:
//!
//! `[0x82][session: 8 bytes][counter: u32 be][ciphertext][tag: 16 bytes]`
//!
//! The session is 8 random bytes drawn at start (and again whenever a
//! counter would wrap); the counter's top bit is the lane, its 31 others
//! count the messages this process sealed on that lane. A receiver keeps a
//! sliding window per session and lane ([`ReplayWindow`]) and drops a
//! (session, counter) it has seen.
//!
//! Version 1, read for one release so that a cluster can be upgraded one
//! member at a time: `[0x81][nonce: 24 bytes][ciphertext][tag: 16 bytes]`,
//! XChaCha20-Poly1305 with a random nonce, 41 bytes of overhead and no
//! replay protection. This release seals version 1 only for a peer that
//! speaks nothing else, and then starts its nonce with [`LEGACY_MARK`]: the
//! peer, if it runs this release too, learns that it may answer in version 2.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use aes_gcm_siv::Aes256GcmSiv;
use aes_gcm_siv::aead::inout::InOutBuf;
use aes_gcm_siv::aead::{AeadInOut, Generate, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::replay::COUNTER_SPAN;
pub use crate::replay::{Lane, Replay, ReplayWindow, SESSION_LEN, SESSIONS, Sender};

/// First byte of the envelope this release seals (version 2).
pub const ENVELOPE_VERSION: u8 = 0x82;
/// First byte of the version-1 envelope, read for one release.
pub const LEGACY_VERSION: u8 = 0x81;
/// Length of a version-2 header: version, session, counter.
pub const HEADER_LEN: usize = 1 + SESSION_LEN + 4;
/// Tag length (GCM-SIV and Poly1305 alike).
pub const TAG_LEN: usize = 16;
/// Bytes a version-2 envelope adds to a packet.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Version-1 nonce length.
pub const LEGACY_NONCE_LEN: usize = 24;
/// Bytes a version-1 envelope adds to a packet.
pub const LEGACY_OVERHEAD: usize = 1 + LEGACY_NONCE_LEN + TAG_LEN;
/// The first bytes of the nonce of a version-1 envelope sealed by a member
/// that also reads version 2 (the other 20 bytes stay random).
pub const LEGACY_MARK: [u8; 4] = *b"vgl2";
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
        Key(<[u8; 32]>::generate())
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

/// Why an envelope was refused. Each is a counter label. All but
/// [`OpenError::Auth`] are found before any decryption.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Not an envelope: plaintext, or another version.
    #[error("not an encrypted envelope")]
    NotEncrypted,
    /// Shorter than an empty envelope.
    #[error("envelope truncated")]
    Truncated,
    /// Longer than the largest packet the protocol sends, sealed.
    #[error("envelope larger than the protocol's maximum")]
    Oversized,
    /// A version-2 counter of the other lane (a datagram sent as a stream
    /// frame, or the reverse).
    #[error("envelope header of the other lane")]
    WrongLane,
    /// This (session, counter) was seen already, or is too old to tell.
    #[error("envelope replayed")]
    Replayed,
    /// A version-1 envelope, and this member no longer reads them.
    #[error("version-1 envelope refused")]
    Legacy,
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
            OpenError::Oversized => "oversized",
            OpenError::WrongLane => "wrong_lane",
            OpenError::Replayed => "replayed",
            OpenError::Legacy => "legacy_refused",
            OpenError::Auth => "auth",
        }
    }
}

/// What an envelope's header says, read without any key: for version 2 the
/// sender's session and counter (checked against a [`ReplayWindow`] before
/// decrypting), for version 1 whether the sender also reads version 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Version 2.
    Current(Sender),
    /// Version 1; `reads_current` when its nonce starts with [`LEGACY_MARK`].
    Legacy {
        /// The sender also reads version 2.
        reads_current: bool,
    },
}

impl Header {
    /// Parses and checks the header of an envelope that arrived on `lane`:
    /// version, length, lane. No cryptography.
    pub fn parse(lane: Lane, envelope: &[u8]) -> Result<Header, OpenError> {
        match envelope.first() {
            None => Err(OpenError::Truncated),
            Some(&ENVELOPE_VERSION) => {
                if envelope.len() < OVERHEAD {
                    return Err(OpenError::Truncated);
                }
                let mut session = [0u8; SESSION_LEN];
                session.copy_from_slice(&envelope[1..1 + SESSION_LEN]);
                let mut counter = [0u8; 4];
                counter.copy_from_slice(&envelope[1 + SESSION_LEN..HEADER_LEN]);
                let counter = u32::from_be_bytes(counter);
                if counter & COUNTER_SPAN != lane.bit() {
                    return Err(OpenError::WrongLane);
                }
                Ok(Header::Current(Sender { session, lane, counter: counter & (COUNTER_SPAN - 1) }))
            }
            Some(&LEGACY_VERSION) => {
                if envelope.len() < LEGACY_OVERHEAD {
                    return Err(OpenError::Truncated);
                }
                Ok(Header::Legacy { reads_current: envelope[1..5] == LEGACY_MARK })
            }
            Some(_) => Err(OpenError::NotEncrypted),
        }
    }
}

/// One installed key, with its ciphers for both envelope versions.
#[derive(Clone)]
struct Installed {
    key: Key,
    current: Aes256GcmSiv,
    legacy: XChaCha20Poly1305,
}

impl Installed {
    fn new(key: Key) -> Installed {
        let current = Aes256GcmSiv::new(&key.0.into());
        let legacy = XChaCha20Poly1305::new(&key.0.into());
        Installed { key, current, legacy }
    }
}

/// This process's sender session and its counters, one per lane.
#[derive(Debug)]
struct Sealing {
    session: [u8; SESSION_LEN],
    next: [u32; 2],
}

impl Sealing {
    fn new() -> Sealing {
        Sealing { session: <[u8; SESSION_LEN]>::generate(), next: [0, 0] }
    }

    /// The next (session, counter with its lane bit) to seal with.
    fn next(&mut self, lane: Lane) -> ([u8; SESSION_LEN], u32) {
        let i = usize::from(lane == Lane::Stream);
        if self.next[i] >= COUNTER_SPAN {
            *self = Sealing::new();
        }
        let counter = self.next[i];
        self.next[i] += 1;
        (self.session, counter | lane.bit())
    }
}

/// Associated data built without allocating when it fits [`Aad::INLINE`] bytes.
enum Aad {
    Inline([u8; Aad::INLINE], usize),
    Heap(Vec<u8>),
}

impl Aad {
    /// The prefix (`vigil/2/` and a cluster name of up to 128 bytes), the
    /// lane and the header fit.
    const INLINE: usize = 8 + 128 + 1 + HEADER_LEN;

    fn new(parts: &[&[u8]]) -> Aad {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > Aad::INLINE {
            return Aad::Heap(parts.concat());
        }
        let mut buf = [0u8; Aad::INLINE];
        let mut at = 0;
        for p in parts {
            buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        Aad::Inline(buf, len)
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Aad::Inline(buf, len) => &buf[..*len],
            Aad::Heap(v) => v,
        }
    }
}

/// The installed keys: one primary (used to seal), all tried to open.
///
/// Clones share one sender session and its counters: a process never seals
/// two messages with the same nonce, whichever clone seals them.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Installed>,
    /// `"vigil/2/" ++ cluster name`, and `"vigil/1/" ++ cluster name`.
    aad_current: Arc<[u8]>,
    aad_legacy: Arc<[u8]>,
    sealing: Arc<Mutex<Sealing>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("keys", &self.list()).finish()
    }
}

impl Keyring {
    /// A keyring with `primary` for the cluster called `cluster`.
    pub fn new(primary: Key, cluster: &str) -> Keyring {
        let prefix = |v: &[u8]| -> Arc<[u8]> { [v, cluster.as_bytes()].concat().into() };
        Keyring {
            keys: vec![Installed::new(primary)],
            aad_current: prefix(b"vigil/2/"),
            aad_legacy: prefix(b"vigil/1/"),
            sealing: Arc::new(Mutex::new(Sealing::new())),
        }
    }

    /// Fingerprints of the installed keys, the primary first.
    pub fn list(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.key.fingerprint()).collect()
    }

    /// The primary key.
    pub fn primary(&self) -> &Key {
        &self.keys[0].key
    }

    /// The installed keys, the primary first (to save the keyring).
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().map(|i| &i.key)
    }

    /// Adds a key for receiving (no-op if present).
    pub fn install(&mut self, key: Key) -> Result<(), KeyError> {
        if self.keys.iter().any(|k| k.key == key) {
            return Ok(());
        }
        if self.keys.len() >= MAX_KEYS {
            return Err(KeyError::TooMany);
        }
        self.keys.push(Installed::new(key));
        Ok(())
    }

    /// Makes an installed key the primary (used for sending).
    pub fn use_key(&mut self, key: &Key) -> Result<(), KeyError> {
        let i = self
            .keys
            .iter()
            .position(|k| k.key == *key)
            .ok_or_else(|| KeyError::NotInstalled(key.fingerprint()))?;
        self.keys.swap(0, i);
        Ok(())
    }

    /// Removes a key that is not the primary.
    pub fn remove(&mut self, key: &Key) -> Result<(), KeyError> {
        let i = self
            .keys
            .iter()
            .position(|k| k.key == *key)
            .ok_or_else(|| KeyError::NotInstalled(key.fingerprint()))?;
        if i == 0 {
            return Err(KeyError::Primary(key.fingerprint()));
        }
        self.keys.remove(i);
        Ok(())
    }

    /// Version-2 associated data: prefix, lane, the 13 header bytes (on
    /// the stack for cluster names of up to [`Aad::INLINE`] bytes less).
    fn aad(&self, lane: Lane, header: &[u8]) -> Aad {
        Aad::new(&[&self.aad_current, &[lane as u8], header])
    }

    fn aad_legacy(&self, lane: Lane) -> Vec<u8> {
        let mut aad = self.aad_legacy.to_vec();
        aad.push(lane as u8);
        aad
    }

    /// Seals `plain` under the primary key in a version-2 envelope.
    pub fn seal(&self, lane: Lane, plain: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        self.seal_into(lane, plain, &mut out);
        out
    }

    /// Seals `plain` under the primary key in a version-2 envelope written
    /// into `out` (cleared first): no allocation once `out` has the room.
    pub fn seal_into(&self, lane: Lane, plain: &[u8], out: &mut Vec<u8>) {
        let (session, counter) = match self.sealing.lock() {
            Ok(mut s) => s.next(lane),
            Err(poisoned) => poisoned.into_inner().next(lane),
        };
        out.clear();
        out.reserve(OVERHEAD + plain.len());
        out.push(ENVELOPE_VERSION);
        out.extend_from_slice(&session);
        out.extend_from_slice(&counter.to_be_bytes());
        let mut nonce = aes_gcm_siv::Nonce::default();
        nonce.copy_from_slice(&out[1..HEADER_LEN]);
        let aad = self.aad(lane, &out[..HEADER_LEN]);
        out.extend_from_slice(plain);
        let tag = self.keys[0].current.encrypt_inout_detached(
            &nonce,
            aad.as_slice(),
            (&mut out[HEADER_LEN..]).into(),
        );
        // Only a plaintext above 2^36 bytes fails; none is ever sealed.
        out.extend_from_slice(tag.as_ref().map(|t| t.as_slice()).unwrap_or(&[0; TAG_LEN]));
    }

    /// Seals `plain` under the primary key in a version-1 envelope, for a
    /// peer that reads nothing else; the nonce starts with [`LEGACY_MARK`].
    pub fn seal_legacy(&self, lane: Lane, plain: &[u8]) -> Vec<u8> {
        let mut nonce = XNonce::generate();
        nonce[..LEGACY_MARK.len()].copy_from_slice(&LEGACY_MARK);
        self.seal_legacy_with(lane, plain, nonce)
    }

    fn seal_legacy_with(&self, lane: Lane, plain: &[u8], nonce: XNonce) -> Vec<u8> {
        let sealed = self.keys[0]
            .legacy
            .encrypt(&nonce, Payload { msg: plain, aad: &self.aad_legacy(lane) })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(LEGACY_OVERHEAD + plain.len());
        out.push(LEGACY_VERSION);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        out
    }

    /// Seals a version-1 envelope without [`LEGACY_MARK`], as a member of
    /// the previous release does (tests of the rolling upgrade).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn seal_unmarked(&self, lane: Lane, plain: &[u8]) -> Vec<u8> {
        loop {
            let sealed = self.seal_legacy_with(lane, plain, XNonce::generate());
            if sealed[1..5] != LEGACY_MARK {
                return sealed;
            }
        }
    }

    /// Opens an envelope of either version with whichever installed key
    /// authenticates it. Checks nothing about replays: that is the
    /// [`ReplayWindow`]'s job, before this is called.
    pub fn open(&self, lane: Lane, envelope: &[u8]) -> Result<Vec<u8>, OpenError> {
        match Header::parse(lane, envelope)? {
            Header::Current(_) => self.open_current(lane, envelope),
            Header::Legacy { .. } => self.open_legacy(lane, envelope),
        }
    }

    fn open_current(&self, lane: Lane, envelope: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut plain = Vec::new();
        self.open_current_into(lane, envelope, &mut plain)?;
        Ok(plain)
    }

    /// Opens a version-2 envelope into `plain` (cleared first; no
    /// allocation once it has the room).
    fn open_current_into(&self, lane: Lane, envelope: &[u8], plain: &mut Vec<u8>) -> Result<(), OpenError> {
        if envelope.len() < OVERHEAD {
            return Err(OpenError::Truncated);
        }
        let (header, rest) = envelope.split_at(HEADER_LEN);
        let (sealed, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut nonce = aes_gcm_siv::Nonce::default();
        nonce.copy_from_slice(&header[1..]);
        let tag = aes_gcm_siv::Tag::try_from(tag).map_err(|_| OpenError::Truncated)?;
        let aad = self.aad(lane, header);
        plain.clear();
        plain.resize(sealed.len(), 0);
        for k in &self.keys {
            let buf = InOutBuf::new(sealed, plain).map_err(|_| OpenError::Truncated)?;
            if k.current.decrypt_inout_detached(&nonce, aad.as_slice(), buf, &tag).is_ok() {
                return Ok(());
            }
        }
        plain.clear();
        Err(OpenError::Auth)
    }

    /// Opens an envelope of either version into `plain` (cleared first);
    /// like [`Keyring::open`], without allocating for version 2.
    pub fn open_into(&self, lane: Lane, envelope: &[u8], plain: &mut Vec<u8>) -> Result<(), OpenError> {
        match Header::parse(lane, envelope)? {
            Header::Current(_) => self.open_current_into(lane, envelope, plain),
            Header::Legacy { .. } => {
                *plain = self.open_legacy(lane, envelope)?;
                Ok(())
            }
        }
    }

    fn open_legacy(&self, lane: Lane, envelope: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (nonce, sealed) = envelope[1..].split_at(LEGACY_NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| OpenError::Truncated)?;
        let aad = self.aad_legacy(lane);
        for k in &self.keys {
            if let Ok(plain) = k.legacy.decrypt(&nonce, Payload { msg: sealed, aad: &aad }) {
                return Ok(plain);
            }
        }
        Err(OpenError::Auth)
    }
}

/// Which envelope a packet came in, or goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// Encryption is off.
    Plain,
    /// Version 2.
    Current,
    /// Version 1 (`reads_current` when the sender reads version 2 too).
    Legacy { reads_current: bool },
}

impl Version {
    /// Whether the sender of a packet in this envelope reads version 2.
    pub(crate) fn reads_current(self) -> bool {
        !matches!(self, Version::Legacy { reads_current: false })
    }
}

/// A packet opened from the wire: the plaintext and the envelope it came in.
#[derive(Debug)]
pub(crate) struct Opened<'a> {
    pub(crate) plain: Cow<'a, [u8]>,
    pub(crate) version: Version,
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
        assert_eq!(OVERHEAD, 29);
        assert_eq!(ring.open(Lane::Datagram, &env).unwrap(), b"hello");
        assert_eq!(ring.open(Lane::Stream, &env), Err(OpenError::WrongLane), "lane is in the header");
        assert_eq!(Keyring::new(key, "staging").open(Lane::Datagram, &env), Err(OpenError::Auth));
        assert_eq!(Keyring::new(Key::generate(), "prod").open(Lane::Datagram, &env), Err(OpenError::Auth));
        let mut tampered = env.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(Lane::Datagram, &tampered), Err(OpenError::Auth));
        let mut header = env.clone();
        header[5] ^= 1;
        assert_eq!(ring.open(Lane::Datagram, &header), Err(OpenError::Auth), "the header is authenticated");
        assert_eq!(ring.open(Lane::Datagram, &env[..20]), Err(OpenError::Truncated));
        assert_eq!(ring.open(Lane::Datagram, b"\x01\x01plain"), Err(OpenError::NotEncrypted));
        assert_eq!(ring.open(Lane::Datagram, b""), Err(OpenError::Truncated));
        // Each message gets the next counter: sealing twice differs.
        assert_ne!(ring.seal(Lane::Datagram, b"x"), ring.seal(Lane::Datagram, b"x"));
    }

    #[test]
    fn counters_count_per_lane_in_one_session_shared_by_clones() {
        let ring = Keyring::new(Key::generate(), "c");
        let clone = ring.clone();
        let header = |env: &[u8], lane| match Header::parse(lane, env).unwrap() {
            Header::Current(s) => s,
            h => panic!("{h:?}"),
        };
        let a = header(&ring.seal(Lane::Datagram, b""), Lane::Datagram);
        let b = header(&clone.seal(Lane::Datagram, b""), Lane::Datagram);
        let s = header(&ring.seal(Lane::Stream, b""), Lane::Stream);
        assert_eq!((a.session, a.counter), (b.session, 0));
        assert_eq!(b.counter, 1, "clones share the counter");
        assert_eq!((s.session, s.counter, s.lane), (a.session, 0, Lane::Stream));
        let other = header(&Keyring::new(Key::generate(), "c").seal(Lane::Datagram, b""), Lane::Datagram);
        assert_ne!(other.session, a.session, "another keyring, another session");
    }

    #[test]
    fn a_counter_that_would_wrap_starts_a_new_session() {
        let mut s = Sealing::new();
        let first = s.session;
        s.next[0] = COUNTER_SPAN - 1;
        assert_eq!(s.next(Lane::Datagram), (first, COUNTER_SPAN - 1));
        let (session, counter) = s.next(Lane::Datagram);
        assert_ne!(session, first);
        assert_eq!(counter, 0);
        assert_eq!(s.next(Lane::Stream), (session, COUNTER_SPAN), "both lanes start again");
    }

    #[test]
    fn legacy_envelopes_open_and_carry_the_mark() {
        let ring = Keyring::new(Key::generate(), "prod");
        let env = ring.seal_legacy(Lane::Stream, b"old");
        assert_eq!(env.len(), 3 + LEGACY_OVERHEAD);
        assert_eq!(ring.open(Lane::Stream, &env).unwrap(), b"old");
        assert_eq!(ring.open(Lane::Datagram, &env), Err(OpenError::Auth), "lane is bound");
        assert_eq!(Header::parse(Lane::Stream, &env), Ok(Header::Legacy { reads_current: true }));
        let mut unmarked = env.clone();
        unmarked[1] = 0;
        assert_eq!(Header::parse(Lane::Stream, &unmarked), Ok(Header::Legacy { reads_current: false }));
        assert_eq!(ring.open(Lane::Stream, &unmarked), Err(OpenError::Auth), "the nonce is authenticated");
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
        let legacy_from_old = b_before.seal_legacy(Lane::Datagram, b"2");
        assert!(a.open(Lane::Datagram, &legacy_from_old).is_ok());
        a.remove(&old).unwrap();
        assert_eq!(a.open(Lane::Datagram, &from_old), Err(OpenError::Auth), "removed key no longer works");
        assert_eq!(a.open(Lane::Datagram, &legacy_from_old), Err(OpenError::Auth));
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

    #[test]
    fn the_fingerprint_of_a_key_is_what_it_was() {
        // `vigil keys list` shows the same fingerprints across the upgrade.
        assert_eq!(Key::from_bytes([7; 32]).fingerprint().len(), 16);
        assert_eq!(Key::from_bytes([7; 32]).fingerprint(), Key::from_bytes([7; 32]).fingerprint());
    }
}
