//! Who a member is: its name, address, incarnation, metadata, health and state,
//! and the precedence rule that orders claims about it.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::error::MemberError;

/// Longest member name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 128;
/// Longest metadata blob, in bytes.
pub const MAX_META_LEN: usize = 512;
/// Longest health reason, in bytes of UTF-8.
pub const MAX_REASON_LEN: usize = 128;

/// A member's unique name: non-empty UTF-8 of at most [`MAX_NAME_LEN`] bytes.
///
/// Cheap to clone (shared).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(Arc<str>);

impl Name {
    /// Checks and wraps a name.
    pub fn new(name: &str) -> Result<Self, MemberError> {
        if name.is_empty() {
            return Err(MemberError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(MemberError::NameTooLong { len: name.len() });
        }
        if let Some((at, ch)) = name.char_indices().find(|&(_, c)| !printable(c)) {
            return Err(MemberError::NameNotPrintable { ch, at });
        }
        Ok(Name(Arc::from(name)))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A 32-bit FNV-1a hash of the name, carried by pings so that a different
    /// member now at the target's address does not answer for it.
    pub fn hash32(&self) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in self.0.as_bytes() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h
    }
}

/// Whether `c` may appear in a name: not a control character, and not one of
/// the invisible formatting characters (zero-width, bidirectional controls,
/// byte-order mark).
fn printable(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

impl TryFrom<&str> for Name {
    type Error = MemberError;
    fn try_from(s: &str) -> Result<Self, MemberError> {
        Name::new(s)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Opaque metadata a member publishes about itself: at most [`MAX_META_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct Meta(Arc<[u8]>);

impl Meta {
    /// Checks and wraps metadata; more than [`MAX_META_LEN`] bytes is refused.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, MemberError> {
        let bytes = bytes.into();
        if bytes.len() > MAX_META_LEN {
            return Err(MemberError::MetaTooLong { len: bytes.len() });
        }
        Ok(Meta(Arc::from(bytes)))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) => write!(f, "Meta({s:?})"),
            Err(_) => write!(f, "Meta({} bytes)", self.0.len()),
        }
    }
}

/// How a member judges its own service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum HealthStatus {
    /// Serving normally.
    #[default]
    Ok,
    /// Serving, with trouble.
    Degraded,
    /// Up, but its service is broken: alive, yet out of healthy sets.
    Failing,
}

impl HealthStatus {
    /// Lower-case name used in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Failing => "failing",
        }
    }
}

/// A member's health: a status and a short reason (at most [`MAX_REASON_LEN`] bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Health {
    status: HealthStatus,
    reason: Arc<str>,
}

impl Health {
    /// Checks and builds a health value.
    pub fn new(status: HealthStatus, reason: &str) -> Result<Self, MemberError> {
        if reason.len() > MAX_REASON_LEN {
            return Err(MemberError::ReasonTooLong { len: reason.len() });
        }
        Ok(Health { status, reason: Arc::from(reason) })
    }

    /// Healthy, no reason.
    pub fn ok() -> Self {
        Health::default()
    }

    /// The status.
    pub fn status(&self) -> HealthStatus {
        self.status
    }

    /// The reason (may be empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What the cluster believes about a member.
///
/// At equal incarnation the later variant wins: `Left` > `Dead` > `Suspect` >
/// `Alive`. A graceful leave outranks a failure so that a member that left is
/// never reported failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum State {
    /// Answering.
    Alive,
    /// Failed a probe; will be declared dead unless it refutes in time.
    Suspect,
    /// Declared failed.
    Dead,
    /// Left gracefully.
    Left,
}

impl State {
    /// Lower-case name used in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Alive => "alive",
            State::Suspect => "suspect",
            State::Dead => "dead",
            State::Left => "left",
        }
    }

    /// Alive or suspect: still a member that is probed and gossiped to.
    pub fn is_active(self) -> bool {
        matches!(self, State::Alive | State::Suspect)
    }

    pub(crate) fn to_wire(self) -> u8 {
        match self {
            State::Alive => 0,
            State::Suspect => 1,
            State::Dead => 2,
            State::Left => 3,
        }
    }

    pub(crate) fn from_wire(b: u8) -> Option<State> {
        Some(match b {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Dead,
            3 => State::Left,
            _ => return None,
        })
    }
}

/// What a member says about itself: everything but its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Unique name.
    pub name: Name,
    /// Address other members reach it at.
    pub addr: SocketAddr,
    /// Its metadata.
    pub meta: Meta,
    /// Its health.
    pub health: Health,
}

/// A snapshot of one member as this member sees it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Member {
    /// Unique name.
    pub name: Name,
    /// Address.
    pub addr: SocketAddr,
    /// Incarnation of the latest claim.
    pub incarnation: u64,
    /// Metadata.
    pub meta: Meta,
    /// Health.
    pub health: Health,
    /// State.
    pub state: State,
    /// Phi-accrual suspicion level from the arrival of this member's own
    /// messages; 0 when too little is known.
    pub phi: f64,
    /// Smoothed round-trip time of direct probes, if measured.
    pub rtt: Option<std::time::Duration>,
    /// When this member's state last changed (in the caller's time).
    pub since: crate::Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(Name::new("a").is_ok());
        assert_eq!(Name::new(""), Err(MemberError::EmptyName));
        let long = "x".repeat(129);
        assert_eq!(Name::new(&long), Err(MemberError::NameTooLong { len: 129 }));
        assert!(Name::new(&"é".repeat(64)).is_ok());
    }

    #[test]
    fn names_that_would_rewrite_a_terminal_or_pass_for_another_are_refused() {
        assert!(Name::new("web-01.eu west").is_ok());
        assert_eq!(Name::new("a\nb"), Err(MemberError::NameNotPrintable { ch: '\n', at: 1 }));
        assert_eq!(Name::new("\u{1b}[2Jx"), Err(MemberError::NameNotPrintable { ch: '\u{1b}', at: 0 }));
        assert!(matches!(Name::new("db\u{202E}1"), Err(MemberError::NameNotPrintable { at: 2, .. })));
        assert!(matches!(Name::new("db\u{200B}1"), Err(MemberError::NameNotPrintable { .. })));
        let e = Name::new("a\tb").unwrap_err().to_string();
        assert!(e.contains("unprintable") && e.contains("byte 1"), "{e}");
    }

    #[test]
    fn metadata_over_512_bytes_is_refused_with_a_typed_error() {
        assert!(Meta::new(vec![0u8; 512]).is_ok());
        assert_eq!(Meta::new(vec![0u8; 513]), Err(MemberError::MetaTooLong { len: 513 }));
    }

    #[test]
    fn health_reason_is_bounded() {
        assert!(Health::new(HealthStatus::Degraded, &"r".repeat(128)).is_ok());
        assert_eq!(
            Health::new(HealthStatus::Failing, &"r".repeat(129)),
            Err(MemberError::ReasonTooLong { len: 129 })
        );
    }

    #[test]
    fn precedence_orders_incarnation_then_state() {
        // The core compares claims as (incarnation, state) tuples.
        assert!((2, State::Alive) > (1, State::Dead));
        assert!((1, State::Suspect) > (1, State::Alive));
        assert!((1, State::Dead) > (1, State::Suspect));
        assert!((1, State::Left) > (1, State::Dead));
    }
}
