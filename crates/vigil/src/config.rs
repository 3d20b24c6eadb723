//! The runtime's configuration: who this member is, where it listens, and the
//! protocol settings it runs with.

use std::net::SocketAddr;
use std::time::Duration;

use vigil_proto::{Health, Meta, Name};

use crate::crypto::Keyring;
use crate::error::StartError;
#[cfg(feature = "testing")]
use crate::fault::Faults;

/// Everything needed to start a member.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Unique name in the cluster (at most 128 bytes of UTF-8).
    pub name: String,
    /// Address to bind, UDP and TCP (port 0 picks a free port).
    pub bind: SocketAddr,
    /// Address other members reach this one at, when it differs from `bind`
    /// (containers, NAT, or binding 0.0.0.0). Port 0 means the bound port.
    pub advertise: Option<SocketAddr>,
    /// Metadata published to the cluster (at most 512 bytes).
    pub meta: Vec<u8>,
    /// Initial health.
    pub health: Health,
    /// Protocol settings (timers, limits); see [`vigil_proto::Config`].
    pub protocol: vigil_proto::Config,
    /// First incarnation. Default: the current Unix time in seconds, so a
    /// restarted member starts above what it used before and supersedes its
    /// old entry without having to refute it.
    pub incarnation: Option<u64>,
    /// Socket receive and send buffer size requested, in bytes (the kernel may
    /// grant a different size; the granted one is logged). Default 4 MiB.
    pub socket_buffer: usize,
    /// How long to wait for a stream (TCP) connection, write and reply. Default 5 s.
    pub stream_timeout: Duration,
    /// Shortest and longest wait between join attempts. Default 1 s and 30 s.
    pub join_backoff: (Duration, Duration),
    /// Fault injection for tests: dropped, delayed and blocked packets. Off
    /// by default; only with the cargo feature `testing`.
    #[cfg(feature = "testing")]
    pub faults: Option<Faults>,
    /// Keys that encrypt and authenticate all traffic (AES-256-GCM-SIV, in
    /// the version-2 envelope), with the cluster name bound in. `None` sends
    /// plaintext: only for trusted networks and tests (a warning is logged
    /// at start).
    pub keyring: Option<Keyring>,
    /// Read the version-1 envelope of the previous release (and answer a
    /// member that reads nothing else in it), so that a cluster can be
    /// upgraded one member at a time. Default true for this release; turn
    /// it off once every member runs this release: version-1 envelopes
    /// carry no replay protection.
    pub legacy_envelope: bool,
    /// Tests of the rolling upgrade (cargo feature `testing` only): seal and
    /// read only the version-1 envelope, without the mark, as a member of
    /// the previous release does. Default false.
    #[cfg(feature = "testing")]
    pub previous_envelope: bool,
    /// Replace a live member of the same name (its process is gone but not
    /// yet declared failed) instead of being refused. Default false.
    pub takeover: bool,
    /// Seed for the protocol's randomness (and its first probe sequence
    /// number: a fixed seed makes acks recorded from an earlier run match
    /// again, so set one only in tests). Default: from the operating
    /// system's generator.
    pub seed: Option<u64>,
}

impl Config {
    /// A member named `name` bound to `bind`, with the `lan()` protocol preset.
    pub fn new(name: impl Into<String>, bind: SocketAddr) -> Self {
        Config {
            name: name.into(),
            bind,
            advertise: None,
            meta: Vec::new(),
            health: Health::ok(),
            protocol: vigil_proto::Config::lan(),
            incarnation: None,
            socket_buffer: 4 << 20,
            stream_timeout: Duration::from_secs(5),
            join_backoff: (Duration::from_secs(1), Duration::from_secs(30)),
            #[cfg(feature = "testing")]
            faults: None,
            keyring: None,
            legacy_envelope: true,
            #[cfg(feature = "testing")]
            previous_envelope: false,
            takeover: false,
            seed: None,
        }
    }

    /// Replaces the protocol settings.
    pub fn with_protocol(mut self, protocol: vigil_proto::Config) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the metadata.
    pub fn with_meta(mut self, meta: impl Into<Vec<u8>>) -> Self {
        self.meta = meta.into();
        self
    }

    /// Sets the advertised address.
    pub fn with_advertise(mut self, advertise: SocketAddr) -> Self {
        self.advertise = Some(advertise);
        self
    }

    /// Encrypts all traffic with this keyring.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Turns on fault injection (cargo feature `testing` only).
    #[cfg(feature = "testing")]
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = Some(faults);
        self
    }

    pub(crate) fn checked_name(&self) -> Result<Name, StartError> {
        Name::new(&self.name).map_err(|e| StartError::Config { field: "name", reason: e.to_string() })
    }

    pub(crate) fn checked_meta(&self) -> Result<Meta, StartError> {
        Meta::new(self.meta.clone()).map_err(|e| StartError::Config { field: "meta", reason: e.to_string() })
    }

    pub(crate) fn validate(&self) -> Result<(), StartError> {
        self.checked_name()?;
        self.checked_meta()?;
        self.protocol.validate().map_err(|e| StartError::Config { field: e.field, reason: e.reason })?;
        if let Some(a) = self.advertise
            && a.ip().is_unspecified()
        {
            return Err(StartError::Config {
                field: "advertise",
                reason: format!("{a} is not an address others can reach"),
            });
        }
        if self.socket_buffer < 64 << 10 || self.socket_buffer > 256 << 20 {
            return Err(StartError::Config {
                field: "socket_buffer",
                reason: "must be 64 KiB to 256 MiB".into(),
            });
        }
        if self.stream_timeout < Duration::from_millis(10) {
            return Err(StartError::Config {
                field: "stream_timeout",
                reason: "must be at least 10ms".into(),
            });
        }
        if self.join_backoff.0.is_zero() || self.join_backoff.1 < self.join_backoff.0 {
            return Err(StartError::Config {
                field: "join_backoff",
                reason: "needs 0 < shortest <= longest".into(),
            });
        }
        Ok(())
    }
}
