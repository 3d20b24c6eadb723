//! This member's envelope as the runtime uses it, shared by the driver and
//! the stream tasks: the keyring (or plaintext), the replay window, which
//! envelope each peer speaks, and the checks made before any decryption.
//!
//! Opening a packet, in order: its size against the protocol's maximum,
//! its header (version, length, lane), version 1 only while it is still
//! read, the replay window (version 2), and only then the decryption; the
//! window records the counter once the envelope authenticated.
//!
//! Rolling upgrade (docs/OPERATIONS.md, "Upgrades"): every authenticated
//! packet from a peer's address says which envelope that peer reads: version
//! 2, or a version-1 envelope with [`LEGACY_MARK`] (a peer of this release
//! that took this member for an old one); or an unmarked version-1 envelope
//! (an old peer, which reads nothing else). This member seals to each peer
//! what it reads, and version 2 to a peer it has not heard from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use vigil_proto::codec;

#[cfg(doc)]
use crate::crypto::LEGACY_MARK;
use crate::crypto::{
    Header, Keyring, LEGACY_OVERHEAD, Lane, OVERHEAD, OpenError, Opened, ReplayWindow, Version,
};

/// Peers whose envelope is remembered (two generations of half as many).
const PEERS: usize = 1 << 16;

/// What a peer is known to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Speaks {
    /// Nothing heard from it yet.
    Unknown,
    /// Version 2.
    Current,
    /// Version 1 only (a member of the previous release).
    LegacyOnly,
}

/// Which envelope each peer address reads, bounded: when the newer
/// generation is full, the older one is forgotten.
#[derive(Debug, Default)]
struct Peers {
    newer: HashMap<SocketAddr, bool>,
    older: HashMap<SocketAddr, bool>,
}

impl Peers {
    fn note(&mut self, addr: SocketAddr, reads_current: bool) {
        if self.newer.len() >= PEERS / 2 && !self.newer.contains_key(&addr) {
            self.older = std::mem::take(&mut self.newer);
        }
        self.older.remove(&addr);
        self.newer.insert(addr, reads_current);
    }

    fn get(&self, addr: &SocketAddr) -> Speaks {
        match self.newer.get(addr).or_else(|| self.older.get(addr)) {
            None => Speaks::Unknown,
            Some(true) => Speaks::Current,
            Some(false) => Speaks::LegacyOnly,
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// `None`: encryption is off.
    ring: RwLock<Option<Arc<Keyring>>>,
    /// Whether version-1 envelopes are still read (and sealed for old peers).
    legacy: bool,
    windows: Mutex<ReplayWindow>,
    peers: Mutex<Peers>,
    /// Packets opened, by envelope: version 1, version 2.
    opened: [AtomicU64; 2],
    /// How many times the keyring changed: wakes whoever saves it.
    changes: tokio::sync::watch::Sender<u64>,
    /// Tests of the rolling upgrade: behave as a member of the previous
    /// release (seal unmarked version 1, read nothing else).
    #[cfg(feature = "testing")]
    previous: std::sync::atomic::AtomicBool,
}

/// The shared envelope: cheap to clone, every clone the same.
#[derive(Debug, Clone)]
pub(crate) struct Envelope(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Envelope {
    /// Seals with `keyring` (`None`: plaintext); `legacy` keeps reading
    /// version-1 envelopes.
    pub(crate) fn new(keyring: Option<Keyring>, legacy: bool) -> Envelope {
        Envelope(Arc::new(Inner {
            ring: RwLock::new(keyring.map(Arc::new)),
            legacy,
            windows: Mutex::new(ReplayWindow::default()),
            peers: Mutex::new(Peers::default()),
            opened: [AtomicU64::new(0), AtomicU64::new(0)],
            changes: tokio::sync::watch::Sender::new(0),
            #[cfg(feature = "testing")]
            previous: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Behave as a member of the previous release: seal version 1 without
    /// the mark, refuse version 2 as not encrypted (tests of the upgrade).
    #[cfg(feature = "testing")]
    pub(crate) fn set_previous(&self) {
        self.0.previous.store(true, Ordering::Relaxed);
    }

    fn previous(&self) -> bool {
        #[cfg(feature = "testing")]
        return self.0.previous.load(Ordering::Relaxed);
        #[cfg(not(feature = "testing"))]
        false
    }

    /// The keyring now (`None` when traffic is not encrypted).
    pub(crate) fn keyring(&self) -> Option<Arc<Keyring>> {
        self.0.ring.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Changes the keyring; `None` when there is none (encryption off).
    pub(crate) fn change_keyring<R>(&self, f: impl FnOnce(&mut Keyring) -> R) -> Option<R> {
        let mut slot = self.0.ring.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let ring = slot.as_mut()?;
        let r = f(Arc::make_mut(ring));
        drop(slot);
        self.0.changes.send_modify(|n| *n += 1);
        Some(r)
    }

    /// Marks a change of the keyring each time it may have changed.
    pub(crate) fn keyring_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.changes.subscribe()
    }

    /// Packets opened so far: version 1, version 2.
    pub(crate) fn opened(&self) -> [u64; 2] {
        [self.0.opened[0].load(Ordering::Relaxed), self.0.opened[1].load(Ordering::Relaxed)]
    }

    /// What `addr` is known to read.
    pub(crate) fn speaks(&self, addr: &SocketAddr) -> Speaks {
        if self.previous() {
            return Speaks::LegacyOnly;
        }
        if !self.0.legacy {
            return Speaks::Current;
        }
        lock(&self.0.peers).get(addr)
    }

    /// `addr` did not answer version 2: take it for a member of the
    /// previous release (its next packet says otherwise if it is not).
    pub(crate) fn assume_legacy(&self, addr: SocketAddr) {
        if self.0.legacy {
            lock(&self.0.peers).note(addr, false);
        }
    }

    /// Opens a packet that came on `lane` from the peer at `from` (the
    /// address it speaks from; `None` for an inbound stream's ephemeral
    /// port). `max_plain` is the largest plaintext the protocol sends on
    /// that lane: anything larger, sealed, is refused before decryption.
    pub(crate) fn open<'a>(
        &self,
        lane: Lane,
        from: Option<SocketAddr>,
        wire: &'a [u8],
        max_plain: usize,
    ) -> Result<Opened<'a>, OpenError> {
        self.open_with(lane, from, wire, max_plain, |ring| ring.open(lane, wire).map(Cow::Owned))
    }

    /// Like [`Envelope::open`], the plaintext written into `buf` (no
    /// allocation for version 2 once `buf` has the room).
    pub(crate) fn open_into<'a>(
        &self,
        lane: Lane,
        from: Option<SocketAddr>,
        wire: &'a [u8],
        max_plain: usize,
        buf: &'a mut Vec<u8>,
    ) -> Result<Opened<'a>, OpenError> {
        self.open_with(lane, from, wire, max_plain, move |ring| {
            ring.open_into(lane, wire, buf)?;
            let plain: &'a Vec<u8> = buf;
            Ok(Cow::Borrowed(plain.as_slice()))
        })
    }

    /// The checks before decryption, `decrypt`, then the replay window and
    /// what the peer reads.
    fn open_with<'a>(
        &self,
        lane: Lane,
        from: Option<SocketAddr>,
        wire: &'a [u8],
        max_plain: usize,
        decrypt: impl FnOnce(&Keyring) -> Result<Cow<'a, [u8]>, OpenError>,
    ) -> Result<Opened<'a>, OpenError> {
        let Some(ring) = self.keyring() else {
            return Ok(Opened { plain: Cow::Borrowed(wire), version: Version::Plain });
        };
        if wire.len() > max_plain.saturating_add(LEGACY_OVERHEAD) {
            return Err(OpenError::Oversized);
        }
        let header = Header::parse(lane, wire)?;
        if self.previous() && matches!(header, Header::Current(_)) {
            return Err(OpenError::NotEncrypted);
        }
        let version = match header {
            Header::Current(sender) => {
                if wire.len() > max_plain.saturating_add(OVERHEAD) {
                    return Err(OpenError::Oversized);
                }
                lock(&self.0.windows).check(&sender).map_err(|_| OpenError::Replayed)?;
                Version::Current
            }
            Header::Legacy { .. } if !self.0.legacy => return Err(OpenError::Legacy),
            Header::Legacy { reads_current } => Version::Legacy { reads_current },
        };
        let plain = decrypt(&ring)?;
        // A member of the previous release cannot decode packet version 2
        // (its decoder refuses the version byte): nothing in a version-1
        // envelope may carry one.
        if self.previous() && plain.first() == Some(&codec::VERSION) {
            return Err(OpenError::NotEncrypted);
        }
        if let Header::Current(sender) = header {
            // Two tasks may open copies of one envelope at once: one wins.
            lock(&self.0.windows).record(&sender).map_err(|_| OpenError::Replayed)?;
        }
        if let Some(addr) = from {
            lock(&self.0.peers).note(addr, version.reads_current());
        }
        let i = usize::from(version == Version::Current);
        self.0.opened[i].fetch_add(1, Ordering::Relaxed);
        Ok(Opened { plain, version })
    }

    /// Seals `plain` for `to` in the envelope it reads (version 2 when
    /// unknown or `None`).
    pub(crate) fn seal(&self, lane: Lane, to: Option<&SocketAddr>, plain: &[u8]) -> Vec<u8> {
        let speaks = to.map_or(Speaks::Current, |a| self.speaks(a));
        self.seal_as(lane, speaks == Speaks::LegacyOnly, plain)
    }

    /// Like [`Envelope::seal`], into `out` (cleared first; no allocation
    /// for version 2 or plaintext once `out` has the room).
    pub(crate) fn seal_into(&self, lane: Lane, to: &SocketAddr, plain: &[u8], out: &mut Vec<u8>) {
        let legacy = self.speaks(to) == Speaks::LegacyOnly;
        match self.keyring() {
            None => {
                if codec::to_version_1(plain, out).is_err() {
                    out.clear();
                    out.extend_from_slice(plain);
                }
            }
            Some(_) if self.previous() || (legacy && self.0.legacy) => {
                *out = self.seal_as(lane, legacy, plain)
            }
            Some(ring) => ring.seal_into(lane, plain, out),
        }
    }

    /// Seals `plain` in version 1 (`legacy`, if still read) or version 2.
    pub(crate) fn seal_as(&self, lane: Lane, legacy: bool, plain: &[u8]) -> Vec<u8> {
        match self.keyring() {
            None => packet_version_1(plain).into_owned(),
            #[cfg(feature = "testing")]
            Some(ring) if self.previous() => ring.seal_unmarked(lane, &packet_version_1(plain)),
            Some(ring) if legacy && self.0.legacy => ring.seal_legacy(lane, &packet_version_1(plain)),
            Some(ring) => ring.seal(lane, plain),
        }
    }
}

/// `plain` as a reader of version-1 envelopes (or of plaintext) reads it:
/// a protocol packet rewritten in packet version 1. Only a version-2
/// envelope carries packets of version 2 (docs/PROTOCOL.md, "Packet"): a
/// member of the previous release reads neither, and an unencrypted
/// cluster has no envelope to say what its peers read. Anything else (a
/// control frame) as it is.
fn packet_version_1(plain: &[u8]) -> Cow<'_, [u8]> {
    if plain.first() != Some(&codec::VERSION) {
        return Cow::Borrowed(plain);
    }
    let mut out = Vec::with_capacity(plain.len() + 2);
    match codec::to_version_1(plain, &mut out) {
        Ok(()) => Cow::Owned(out),
        Err(_) => Cow::Borrowed(plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Key;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn a_replayed_envelope_is_refused_before_decryption_and_counted_once() {
        let ring = Keyring::new(Key::generate(), "c");
        let env = Envelope::new(Some(ring.clone()), true);
        let wire = ring.seal(Lane::Datagram, b"ping");
        assert_eq!(env.open(Lane::Datagram, None, &wire, 1400).unwrap().plain.as_ref(), b"ping");
        assert_eq!(env.open(Lane::Datagram, None, &wire, 1400).unwrap_err(), OpenError::Replayed);
        // A forged header that does not authenticate moves no window.
        let mut forged = ring.seal(Lane::Datagram, b"x");
        let genuine = forged.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(env.open(Lane::Datagram, None, &forged, 1400).unwrap_err(), OpenError::Auth);
        assert!(env.open(Lane::Datagram, None, &genuine, 1400).is_ok());
        assert_eq!(env.opened(), [0, 2]);
    }

    #[test]
    fn oversized_packets_are_refused_by_their_size() {
        let ring = Keyring::new(Key::generate(), "c");
        let env = Envelope::new(Some(ring.clone()), true);
        let at_max = ring.seal(Lane::Datagram, &[0; 100]);
        assert!(env.open(Lane::Datagram, None, &at_max, 100).is_ok());
        let over = ring.seal(Lane::Datagram, &[0; 101]);
        assert_eq!(env.open(Lane::Datagram, None, &over, 100).unwrap_err(), OpenError::Oversized);
        let legacy_at_max = ring.seal_legacy(Lane::Datagram, &[0; 100]);
        assert!(env.open(Lane::Datagram, None, &legacy_at_max, 100).is_ok());
        let junk = vec![0x82; 65_507];
        assert_eq!(env.open(Lane::Datagram, None, &junk, 1400).unwrap_err(), OpenError::Oversized);
    }

    #[test]
    fn packet_version_2_travels_only_in_envelope_version_2() {
        use vigil_proto::codec::{Message, Packet, decode, encode, encode_version_1};
        let ping = Packet { message: Message::Ping { seq: 0xF00D_CAFE, target: 7 }, updates: vec![] };
        let (v2, v1) = (encode(&ping), encode_version_1(&ping));
        assert_eq!((v2[0], v1[0]), (2, 1));
        let ring = Keyring::new(Key::generate(), "c");
        let env = Envelope::new(Some(ring.clone()), true);
        let (old, new) = (addr(1), addr(2));
        env.open(Lane::Datagram, Some(old), &ring.seal_unmarked(Lane::Datagram, b"a"), 1400).unwrap();
        env.open(Lane::Datagram, Some(new), &ring.seal(Lane::Datagram, b"b"), 1400).unwrap();
        let mut out = Vec::new();
        env.seal_into(Lane::Datagram, &new, &v2, &mut out);
        assert_eq!(ring.open(Lane::Datagram, &out).unwrap(), v2, "a member of this release: as it is");
        env.seal_into(Lane::Datagram, &old, &v2, &mut out);
        assert_eq!(ring.open(Lane::Datagram, &out).unwrap(), v1, "the previous release: version 1");
        let stream = env.seal_as(Lane::Stream, true, &v2);
        assert_eq!(ring.open(Lane::Stream, &stream).unwrap(), v1);
        // A control frame is never rewritten.
        assert_eq!(ring.open(Lane::Stream, &env.seal_as(Lane::Stream, true, &[0xC1, 1])).unwrap(), [0xC1, 1]);
        // Without encryption no peer says what it reads: version 1 to all.
        let plain = Envelope::new(None, true);
        plain.seal_into(Lane::Datagram, &new, &v2, &mut out);
        assert_eq!(out, v1);
        assert_eq!(plain.seal_as(Lane::Stream, false, &v2), v1);
        assert_eq!(decode(&out), Ok(ping));
    }

    #[test]
    fn each_peer_is_answered_in_the_envelope_it_reads() {
        let ring = Keyring::new(Key::generate(), "c");
        let env = Envelope::new(Some(ring.clone()), true);
        let (old, new, marked) = (addr(1), addr(2), addr(3));
        assert_eq!(env.speaks(&old), Speaks::Unknown);
        // An old member's envelope: version 1 without the mark.
        env.open(Lane::Datagram, Some(old), &ring.seal_unmarked(Lane::Datagram, b"a"), 1400).unwrap();
        env.open(Lane::Datagram, Some(new), &ring.seal(Lane::Datagram, b"b"), 1400).unwrap();
        env.open(Lane::Datagram, Some(marked), &ring.seal_legacy(Lane::Datagram, b"c"), 1400).unwrap();
        assert_eq!(env.speaks(&old), Speaks::LegacyOnly);
        assert_eq!(env.speaks(&new), Speaks::Current);
        assert_eq!(env.speaks(&marked), Speaks::Current, "a marked version-1 envelope: it reads 2");
        assert_eq!(env.seal(Lane::Datagram, Some(&old), b"x")[0], crate::crypto::LEGACY_VERSION);
        assert_eq!(env.seal(Lane::Datagram, Some(&new), b"x")[0], crate::crypto::ENVELOPE_VERSION);
        assert_eq!(env.seal(Lane::Datagram, Some(&addr(9)), b"x")[0], crate::crypto::ENVELOPE_VERSION);
        // A version-2 packet from the old address: it was upgraded.
        env.open(Lane::Datagram, Some(old), &ring.seal(Lane::Datagram, b"d"), 1400).unwrap();
        assert_eq!(env.speaks(&old), Speaks::Current);
    }

    #[test]
    fn two_members_of_this_release_leave_version_1_whoever_speaks_first() {
        // `a` heard version 1 from `b`'s address (an old member there, since
        // restarted upgraded): it speaks version 1 to `b` first, and `b`
        // must not take `a` for an old member in turn.
        let ring = Keyring::new(Key::generate(), "c");
        let (a, b) = (Envelope::new(Some(ring.clone()), true), Envelope::new(Some(ring), true));
        let (a_at, b_at) = (addr(1), addr(2));
        a.assume_legacy(b_at);
        let first = a.seal(Lane::Datagram, Some(&b_at), b"ping");
        assert_eq!(first[0], crate::crypto::LEGACY_VERSION);
        b.open(Lane::Datagram, Some(a_at), &first, 1400).unwrap();
        assert_eq!(b.speaks(&a_at), Speaks::Current, "the mark says that `a` reads version 2");
        let answer = b.seal(Lane::Datagram, Some(&a_at), b"ack");
        assert_eq!(answer[0], crate::crypto::ENVELOPE_VERSION);
        a.open(Lane::Datagram, Some(b_at), &answer, 1400).unwrap();
        assert_eq!(a.speaks(&b_at), Speaks::Current);
    }

    #[test]
    fn without_legacy_version_1_is_neither_read_nor_sealed() {
        let ring = Keyring::new(Key::generate(), "c");
        let env = Envelope::new(Some(ring.clone()), false);
        let old = ring.seal_legacy(Lane::Datagram, b"a");
        assert_eq!(env.open(Lane::Datagram, None, &old, 1400).unwrap_err(), OpenError::Legacy);
        env.assume_legacy(addr(1));
        assert_eq!(env.seal(Lane::Datagram, Some(&addr(1)), b"x")[0], crate::crypto::ENVELOPE_VERSION);
    }

    #[test]
    fn the_peer_table_is_bounded() {
        let mut p = Peers::default();
        for i in 0..(PEERS as u32 * 3) {
            p.note(SocketAddr::from((i.to_be_bytes(), 1)), false);
        }
        assert!(p.newer.len() + p.older.len() <= PEERS);
    }

    #[test]
    fn plaintext_passes_through() {
        let env = Envelope::new(None, true);
        let opened = env.open(Lane::Datagram, None, b"\x01\x01", 1400).unwrap();
        assert_eq!((opened.plain.as_ref(), opened.version), (&b"\x01\x01"[..], Version::Plain));
        assert_eq!(env.seal(Lane::Stream, None, b"abc"), b"abc");
    }
}
