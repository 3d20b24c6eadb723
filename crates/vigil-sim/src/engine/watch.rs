//! Watch streams and what a host's kernel says for a process that exited.
//!
//! Each member holds a silent stream to each member its core lists in
//! `watched()`; after every call into the core the engine compares the
//! core's `watched_version()` with the one it last took (a list compared
//! only when that changed) and opens streams to members newly listed. What
//! is modelled:
//! - a stream to a running (or paused) process is open: a paused process's
//!   kernel keeps it open, so a pause gives no evidence;
//! - a stream to an exited process is refused: `Refused` after a round trip;
//! - when a process exits, every stream held to it closes: `StreamClosed`
//!   after one way (after its farewell, if it was leaving), unless the two
//!   are cut off from each other (the close is lost, the stream stays
//!   half-open and silent);
//! - a stream to a host that is down never connects, and one held to a host
//!   that goes down stays silent: no evidence;
//! - the runtime retries streams that did not connect: when a member comes
//!   back (a new process), the streams listed to it connect.
//!
//! And for datagrams and new streams to an exited process: a datagram
//! draws `PortUnreachable` at its sender after the return trip (lost like
//! any datagram on that link); a new stream draws `Refused` after a round
//! trip. Kernel rate limits on ICMP errors are not modelled.

use vigil_proto::Unreachable;

use super::slot::WatchState;
use super::{Engine, Wire};
use crate::net::Fate;

impl Engine {
    /// Opens the streams member `id` newly listed.
    pub(super) fn follow_watches(&mut self, id: usize) {
        for k in 0..self.slots[id].watching.len() {
            let w = self.slots[id].watching[k];
            if w.state != WatchState::Opening {
                continue;
            }
            let to = w.to as usize;
            let state = match self.slots.get(to).map(|s| s.status) {
                Some(s) if s.running() => WatchState::Open,
                Some(s) if s.kernel_answers() => {
                    self.refuse(id, to);
                    WatchState::Closed
                }
                _ => WatchState::Closed,
            };
            self.slots[id].watching[k].state = state;
        }
    }

    /// Member `gone`'s process exited: every stream held to it closes, after
    /// its `farewell` (written by a member that left) if any.
    pub(super) fn close_watches_to(&mut self, gone: usize, farewell: Option<Vec<u8>>) {
        for w in 0..self.slots.len() {
            let Some(k) = self.open_watch(w, gone) else { continue };
            self.slots[w].watching[k].state = WatchState::Closed;
            if !(self.net.connected(self.now, gone, w) && self.net.connected(self.now, w, gone)) {
                continue;
            }
            let Fate::After(delay) = self.net.stream(self.now, gone, w, 1) else { continue };
            let at = self.now + delay;
            if let Some(bytes) = &farewell {
                let packet = super::Packet { from: gone as u32, wire: Wire::Stream, bytes: bytes.clone() };
                self.push(at, super::Ev::Deliver { to: w as u32, packet, delayed: false });
            }
            self.push_evidence(at, gone, w, Unreachable::StreamClosed);
        }
    }

    /// Member `gone`'s host went down: the streams held to it go silent.
    pub(super) fn silence_watches_to(&mut self, gone: usize) {
        for w in 0..self.slots.len() {
            if let Some(k) = self.open_watch(w, gone) {
                self.slots[w].watching[k].state = WatchState::Closed;
            }
        }
    }

    /// Member `back` runs again (a new process): the streams listed to it connect.
    pub(super) fn reopen_watches_to(&mut self, back: usize) {
        for s in &mut self.slots {
            for w in s.watching.iter_mut().filter(|w| w.to as usize == back) {
                w.state = WatchState::Open;
            }
        }
    }

    fn open_watch(&self, w: usize, to: usize) -> Option<usize> {
        self.slots[w].watching.iter().position(|x| x.to as usize == to && x.state == WatchState::Open)
    }

    /// A datagram reached exited member `gone`'s host: its kernel answers
    /// `sender` with an ICMP port unreachable, over the return link.
    pub(super) fn port_unreachable(&mut self, gone: usize, sender: usize) {
        if !self.slots[sender].status.running() {
            return;
        }
        if let Fate::After(delay) = self.net.datagram(self.now, gone, sender) {
            self.push_evidence(self.now + delay, gone, sender, Unreachable::PortUnreachable);
        }
    }

    /// `from` connects to exited member `gone`: the connection is refused
    /// after a round trip (the SYN and the reset, each retransmitted if lost;
    /// nothing across a cut).
    pub(super) fn refuse(&mut self, from: usize, gone: usize) {
        if !(self.net.connected(self.now, from, gone) && self.net.connected(self.now, gone, from)) {
            return;
        }
        if let Fate::After(delay) = self.net.stream(self.now, from, gone, 2) {
            let at = self.now + delay + self.slots[from].send_delay;
            self.push_evidence(at, gone, from, Unreachable::Refused);
        }
    }
}
