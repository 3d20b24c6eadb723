//! Membership events and the evidence behind suspicions and failures.

use std::time::Duration;

use std::fmt;

use crate::kernel::Unreachable;
use crate::member::{Member, Name};

/// What happened to a member, as this member saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A member became known, or came back after it was dead or had left.
    Joined,
    /// A member is suspected of having failed.
    Suspected,
    /// A suspect member refuted the suspicion and is alive again.
    Recovered,
    /// A member was declared failed (dead).
    Failed,
    /// A member left gracefully.
    Left,
    /// A member's metadata, health or address changed.
    Updated,
}

impl EventKind {
    /// Lower-case name used in APIs: `joined`, `suspected`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Joined => "joined",
            EventKind::Suspected => "suspected",
            EventKind::Recovered => "recovered",
            EventKind::Failed => "failed",
            EventKind::Left => "left",
            EventKind::Updated => "updated",
        }
    }
}

/// What this member's own failed probe showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEvidence {
    /// How long the direct probe waited for an ack.
    pub timeout: Duration,
    /// Members asked to probe indirectly.
    pub indirect: Vec<Name>,
    /// Those of them that answered that they could not reach it either (nacks).
    pub nacks: Vec<Name>,
}

/// Kernel evidence that a member's process exited, confirmed by another
/// member: who saw it, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitEvidence {
    /// Each witness once, in the order they saw it (the declaring member
    /// first if it saw it itself).
    pub witnesses: Vec<(Name, Unreachable)>,
}

impl fmt::Display for ExitEvidence {
    /// `process exited: stream closed at m1; connection refused at m3 and m7`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("process exited:")?;
        let mut kinds: Vec<Unreachable> = Vec::new();
        for (_, how) in &self.witnesses {
            if !kinds.contains(how) {
                kinds.push(*how);
            }
        }
        for (k, how) in kinds.iter().enumerate() {
            let at: Vec<&str> =
                self.witnesses.iter().filter(|(_, h)| h == how).map(|(n, _)| n.as_str()).collect();
            let list = match at.split_last() {
                Some((last, [])) => (*last).to_string(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
                None => String::new(),
            };
            write!(f, "{} {how} at {list}", if k == 0 { "" } else { ";" })?;
        }
        Ok(())
    }
}

/// Two processes claim the same member name. The one at `kept` keeps it;
/// the one at `refused` was refused (a join) or yields (both were running).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameConflict {
    /// The name both claim.
    pub name: Name,
    /// The address of the process that keeps the name.
    pub kept: std::net::SocketAddr,
    /// The address of the process refused.
    pub refused: std::net::SocketAddr,
}

/// Why a member was suspected or declared failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    /// Who suspected it: the first suspecter, then those who confirmed
    /// independently (including intermediaries whose indirect probes failed).
    pub suspected_by: Vec<Name>,
    /// Independent confirmations beyond the first suspecter.
    pub confirmations: u32,
    /// How long the suspicion lasted (zero when suspected).
    pub suspicion_duration: Duration,
    /// Who declared it failed (this member when its suspicion timed out).
    pub declared_by: Option<Name>,
    /// This member's own failed probe of it, if one led to the suspicion.
    pub probe: Option<ProbeEvidence>,
    /// For a failure declared on kernel evidence: who saw the process gone.
    pub exit: Option<ExitEvidence>,
}

/// A membership event with the member's snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The member after the change.
    pub member: Member,
    /// For `Suspected` and `Failed`: why. Boxed: it is most of an event's
    /// size and most events have none (every buffered event slot of a
    /// subscriber channel pays for the largest).
    pub evidence: Option<Box<Evidence>>,
}
