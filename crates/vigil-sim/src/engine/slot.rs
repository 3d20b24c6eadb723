//! A member slot and its state: what the engine knows of a member besides
//! its core (status, life, pauses, the watch streams it holds). A leaf: the
//! engine's files read and change it; it reaches back to none of them.

use std::net::SocketAddr;

use vigil_proto::{Core, Name};

use super::packet::Packet;
use crate::ids::addr_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Not started yet (joins later).
    Idle,
    Up,
    /// Paused: nothing processed, everything queues.
    Frozen,
    /// Its process exited; the host is up and its kernel answers (may restart).
    Exited,
    /// Its host is down: silence (may restart).
    Down,
    /// Left gracefully and stopped (its kernel answers, as for `Exited`).
    Left,
}

impl Status {
    /// The process runs (or is paused): it holds its sockets.
    pub(crate) fn running(self) -> bool {
        matches!(self, Status::Up | Status::Frozen)
    }

    /// The process is gone but its host's kernel answers for its port.
    pub(crate) fn kernel_answers(self) -> bool {
        matches!(self, Status::Exited | Status::Left)
    }
}

/// A member's slot. The fields every event reads (delivery, wake-up,
/// flush) come first and fill the first cache line: `repr(C)` keeps that
/// order and the alignment starts each slot on a line. Before, the slot
/// spanned four lines and an event touched three of them.
#[derive(Debug)]
#[repr(C, align(64))]
pub(crate) struct Slot {
    pub(crate) core: Option<Box<Core>>,
    /// The queued wake-up, when `wake_set` (see [`Slot::wake`]).
    wake_at: u64,
    /// The own incarnation last reported in this life, when `reported_set`.
    reported_at: u64,
    /// The core's own next deadline (`poll_timeout`, without `slow`) as of
    /// its last flush, `u64::MAX` for none; 0 when not known (a new core).
    pub(super) core_due: u64,
    pub(crate) slow: u64,
    /// Added to the delivery time of everything it sends (a slow link out of
    /// it, not a slow process: its timers and inputs are on time).
    pub(crate) send_delay: u64,
    /// The core's `watched_version()` when `watching` was last compared with its list.
    pub(super) watch_version: u64,
    pub(crate) status: Status,
    pub(crate) leaving: bool,
    wake_set: bool,
    reported_set: bool,
    pub(crate) life: u32,
    // ---- second line and on: read when something changes.
    /// Highest incarnation any life of this member used.
    pub(crate) max_incarnation: u64,
    /// Last instant it was frozen or slow (for classifying failures).
    pub(crate) paused_until: Option<u64>,
    pub(super) backlog: Vec<Packet>,
    pub(super) backlog_datagrams: usize,
    pub(crate) name: Name,
    pub(crate) addr: SocketAddr,
    /// Highest incarnation of earlier lives: failures at or below it are late
    /// detections of an old crash, not false failures.
    pub(crate) prev_life_max: u64,
    pub(super) freeze_token: u64,
    /// The watch streams it holds, in step with its core's `watched()`.
    pub(super) watching: Vec<Watch>,
    /// While CPU-starved.
    pub(crate) starve: Option<Starve>,
}

/// CPU starvation in force: the member runs `run` out of every `every`
/// microseconds until `until`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Starve {
    pub(crate) run: u64,
    pub(crate) every: u64,
    pub(crate) until: u64,
}

/// One watch stream a member holds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    addr: SocketAddr,
    pub(super) to: u32,
    pub(super) state: WatchState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WatchState {
    /// Newly listed: to be opened.
    Opening,
    /// Connected to the watched member's process.
    Open,
    /// Not connected (refused, closed, or its host is down).
    Closed,
}

impl Slot {
    /// A slot for a member not started yet.
    pub(super) fn new(name: Name, addr: SocketAddr) -> Slot {
        Slot {
            core: None,
            wake_at: 0,
            reported_at: 0,
            core_due: 0,
            slow: 0,
            send_delay: 0,
            watch_version: 0,
            status: Status::Idle,
            leaving: false,
            wake_set: false,
            reported_set: false,
            life: 0,
            max_incarnation: 0,
            paused_until: None,
            backlog: Vec::new(),
            backlog_datagrams: 0,
            name,
            addr,
            prev_life_max: 0,
            freeze_token: 0,
            watching: Vec::new(),
            starve: None,
        }
    }

    /// The instant of the one useful wake-up queued for it, if any.
    pub(super) fn wake(&self) -> Option<u64> {
        self.wake_set.then_some(self.wake_at)
    }

    pub(super) fn set_wake(&mut self, at: Option<u64>) {
        self.wake_set = at.is_some();
        self.wake_at = at.unwrap_or(0);
    }

    /// The own incarnation last reported to the invariant in this life.
    pub(super) fn reported_incarnation(&self) -> Option<u64> {
        self.reported_set.then_some(self.reported_at)
    }

    pub(super) fn set_reported_incarnation(&mut self, inc: Option<u64>) {
        self.reported_set = inc.is_some();
        self.reported_at = inc.unwrap_or(0);
    }

    /// Whether `watched` differs from the streams held (and if so, takes it
    /// as the new list; newly listed members are to be opened).
    pub(super) fn watch_list_changed(&mut self, watched: &[SocketAddr]) -> bool {
        let same = self.watching.len() == watched.len()
            && self.watching.iter().zip(watched).all(|(w, a)| w.addr == *a);
        if same {
            return false;
        }
        let old = std::mem::take(&mut self.watching);
        self.watching = watched
            .iter()
            .filter_map(|&addr| {
                let to = addr_id(addr)? as u32;
                let state = old.iter().find(|w| w.to == to).map_or(WatchState::Opening, |w| w.state);
                Some(Watch { addr, to, state })
            })
            .collect();
        true
    }

    /// The member stopped: it holds no streams any more.
    pub(super) fn drop_watches(&mut self) {
        self.watching.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::ids::member_addr;

    fn slot_watching(ids: &[usize]) -> Vec<SocketAddr> {
        ids.iter().map(|&i| member_addr(i)).collect()
    }

    #[test]
    fn the_fields_every_event_reads_share_the_first_cache_line() {
        assert_eq!(std::mem::align_of::<Slot>(), 64);
        assert_eq!(std::mem::offset_of!(Slot, max_incarnation), 64, "the hot fields fill exactly one line");
    }

    #[test]
    fn a_watch_list_is_taken_only_when_it_changes_and_keeps_the_state_of_streams_still_listed() {
        let mut eng = Engine::new(
            vigil_proto::Config::lan(),
            1,
            crate::net::Net::new(
                crate::net::Latency::Constant(std::time::Duration::from_micros(100)),
                0.0,
                200_000,
                1,
            ),
            0,
            false,
        );
        for _ in 0..4 {
            eng.add_slot();
        }
        let s = &mut eng.slots[0];
        assert!(s.watch_list_changed(&slot_watching(&[1, 2])));
        assert!(!s.watch_list_changed(&slot_watching(&[1, 2])), "the same list is not taken again");
        s.watching[0].state = WatchState::Open;
        assert!(s.watch_list_changed(&slot_watching(&[1, 3])));
        assert_eq!(s.watching[0].state, WatchState::Open, "the stream to 1 stays open");
        assert_eq!(s.watching[1].state, WatchState::Opening, "3 is new");
    }
}
