//! Admission of inbound stream connections, decided at accept, before a
//! byte is read: slots for short exchanges, some of them reserved for
//! connections from the IP address of a known member, a cap per source IP
//! on the others, and one budget of bytes for every first frame being read
//! before it authenticated. A connection refused here is closed at once, so
//! the kernel's backlog keeps draining and the refused cost one accept each.
//!
//! | bound | value | stops |
//! | --- | --- | --- |
//! | [`SLOTS`] short exchanges at once | 256 | file descriptors, tasks |
//! | [`RESERVED`] of them only for known members' IPs | 64 | a flood locking out members (key rotation, state exchange) |
//! | [`PER_IP`] unreserved slots per source IP | 8 | one host (slowloris) taking the unreserved slots |
//! | [`BUDGET`] bytes of unauthenticated first frames | 8 MiB | memory exhaustion before authentication |
//!
//! An attacker who shares a member's IP address (same host, same NAT) is
//! taken for that member here; one with many addresses can fill the
//! unreserved slots for as long as its connections last (the stream
//! module's authentication deadline), but never the reserved ones.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Inbound short exchanges served at once.
pub(crate) const SLOTS: usize = 256;
/// Slots only connections from a known member's IP may take.
pub(crate) const RESERVED: usize = 64;
/// Unreserved slots one source IP may hold at once.
pub(crate) const PER_IP: usize = 8;
/// Bytes of first frames read at once before they authenticated.
pub(crate) const BUDGET: usize = 8 << 20;

/// Why a connection was refused, or dropped before it authenticated. Each
/// is a counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot it may take is held.
    Busy,
    /// Its IP holds [`PER_IP`] unreserved slots already.
    PerIp,
    /// Its first frame would overrun the unauthenticated byte budget.
    Budget,
    /// Its first frame announced more than a first frame may hold.
    TooLarge,
    /// It did not authenticate within the deadline.
    Deadline,
}

const REFUSALS: [Refusal; 5] =
    [Refusal::Busy, Refusal::PerIp, Refusal::Budget, Refusal::TooLarge, Refusal::Deadline];

impl Refusal {
    /// Counter label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refusal::Busy => "busy",
            Refusal::PerIp => "per_ip",
            Refusal::Budget => "budget",
            Refusal::TooLarge => "too_large",
            Refusal::Deadline => "deadline",
        }
    }
}

#[derive(Debug, Default)]
struct Held {
    reserved: usize,
    unreserved: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Inner {
    known: Mutex<Arc<BTreeSet<IpAddr>>>,
    held: Mutex<Held>,
    budget: Arc<Semaphore>,
    refused: [AtomicU64; REFUSALS.len()],
}

/// The admission state, shared by the accept loop, its connection tasks and
/// the driver (which tells it the members' addresses).
#[derive(Debug, Clone)]
pub(crate) struct Admission(Arc<Inner>);

/// A slot held by one connection; released when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    admission: Arc<Inner>,
    ip: IpAddr,
    reserved: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for Admission {
    fn default() -> Self {
        Admission(Arc::new(Inner {
            known: Mutex::new(Arc::default()),
            held: Mutex::new(Held::default()),
            budget: Arc::new(Semaphore::new(BUDGET)),
            refused: Default::default(),
        }))
    }
}

impl Admission {
    /// The IP addresses of the members in the table now.
    pub(crate) fn set_known(&self, ips: BTreeSet<IpAddr>) {
        let mut known = lock(&self.0.known);
        if **known != ips {
            *known = Arc::new(ips);
        }
    }

    /// Whether `ip` is the address of a known member.
    pub(crate) fn is_known(&self, ip: &IpAddr) -> bool {
        lock(&self.0.known).contains(ip)
    }

    /// A slot for a connection from `ip`, or why not (counted).
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let known = self.is_known(&ip);
        let mut held = lock(&self.0.held);
        let slot = |reserved| Slot { admission: self.0.clone(), ip, reserved };
        if known && held.reserved < RESERVED {
            held.reserved += 1;
            return Ok(slot(true));
        }
        let refusal = if held.unreserved >= SLOTS - RESERVED {
            Refusal::Busy
        } else if held.per_ip.get(&ip).copied().unwrap_or(0) >= PER_IP {
            Refusal::PerIp
        } else {
            held.unreserved += 1;
            *held.per_ip.entry(ip).or_default() += 1;
            return Ok(slot(false));
        };
        drop(held);
        self.refused(refusal);
        Err(refusal)
    }

    /// `bytes` of the unauthenticated budget, held until the permit drops;
    /// `None` (counted) when they are not free now.
    pub(crate) fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok().filter(|n| (*n as usize) <= BUDGET);
        match n.and_then(|n| self.0.budget.clone().try_acquire_many_owned(n).ok()) {
            Some(permit) => Some(permit),
            None => {
                self.refused(Refusal::Budget);
                None
            }
        }
    }

    /// Counts a connection refused or dropped for `why`.
    pub(crate) fn refused(&self, why: Refusal) {
        if let Some(i) = REFUSALS.iter().position(|r| *r == why) {
            self.0.refused[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Connections refused or dropped before authenticating, by reason
    /// (every reason listed, zero included).
    pub(crate) fn refusals(&self) -> Vec<(&'static str, u64)> {
        REFUSALS.iter().zip(&self.0.refused).map(|(r, n)| (r.reason(), n.load(Ordering::Relaxed))).collect()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = lock(&self.admission.held);
        if self.reserved {
            held.reserved -= 1;
            return;
        }
        held.unreserved -= 1;
        if let Some(n) = held.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn one_ip_holds_at_most_its_share_and_others_still_get_in() {
        let a = Admission::default();
        let held: Vec<Slot> = (0..PER_IP).map(|_| a.admit(ip(1)).unwrap()).collect();
        assert_eq!(a.admit(ip(1)).unwrap_err(), Refusal::PerIp);
        assert!(a.admit(ip(2)).is_ok());
        drop(held);
        assert!(a.admit(ip(1)).is_ok(), "released on drop");
        assert_eq!(a.refusals()[1], ("per_ip", 1));
    }

    #[test]
    fn known_members_get_reserved_slots_when_the_others_are_taken() {
        let a = Admission::default();
        let flood: Vec<Slot> =
            (0..(SLOTS - RESERVED) as u32).map(|i| a.admit(IpAddr::from(i.to_be_bytes())).unwrap()).collect();
        assert_eq!(a.admit(ip(200)).unwrap_err(), Refusal::Busy);
        a.set_known([ip(7)].into());
        let members: Vec<Slot> = (0..RESERVED).map(|_| a.admit(ip(7)).unwrap()).collect();
        assert_eq!(a.admit(ip(7)).unwrap_err(), Refusal::Busy, "reserved ones taken, unreserved too");
        drop(flood);
        assert!(a.admit(ip(7)).is_ok(), "then unreserved ones, within the per-IP cap");
        drop(members);
    }

    #[test]
    fn the_budget_is_shared_and_returned() {
        let a = Admission::default();
        let first = a.reserve(BUDGET - 10).unwrap();
        assert!(a.reserve(11).is_none());
        assert!(a.reserve(10).is_some());
        drop(first);
        assert!(a.reserve(BUDGET).is_some());
        assert!(a.reserve(BUDGET + 1).is_none(), "more than the whole budget, never");
    }
}
