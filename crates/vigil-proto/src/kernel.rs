//! Kernel evidence: what a host's kernel says when the process behind a
//! member's port is gone. A crashed, killed or exited process on a live host
//! leaves it; a paused, swapped-out or starved process, and a host that is
//! down or cut off, leave none (only silence).

use std::fmt;

/// Evidence that the process behind an address is gone, collected by the
/// runtime and handed to [`Core::handle_unreachable`](crate::Core::handle_unreachable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Unreachable {
    /// A datagram to the address drew an ICMP port-unreachable. Weak on its
    /// own: anyone who knows the two addresses can forge one, so it starts a
    /// verification but never confirms one.
    PortUnreachable,
    /// A stream (TCP) connection to the address was refused (reset).
    Refused,
    /// A watch stream to the address, open until then, ended (end of file or
    /// reset): the kernel closed it because the process exited.
    StreamClosed,
}

impl Unreachable {
    /// Short lower-case description: `port unreachable`, `connection refused`, `stream closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unreachable::PortUnreachable => "port unreachable",
            Unreachable::Refused => "connection refused",
            Unreachable::StreamClosed => "stream closed",
        }
    }

    /// True for evidence an attacker off the path cannot forge (it needs
    /// the TCP sequence numbers): it may confirm another member's evidence.
    pub fn is_strong(self) -> bool {
        !matches!(self, Unreachable::PortUnreachable)
    }

    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Unreachable::PortUnreachable => 1,
            Unreachable::Refused => 2,
            Unreachable::StreamClosed => 3,
        }
    }

    pub(crate) fn from_wire(b: u8) -> Option<Self> {
        Some(match b {
            1 => Unreachable::PortUnreachable,
            2 => Unreachable::Refused,
            3 => Unreachable::StreamClosed,
            _ => return None,
        })
    }
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
