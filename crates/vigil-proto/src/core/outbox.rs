//! What the core has to say: packets to send, events to report, and the
//! changes waiting to ride on outgoing datagrams.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use crate::broadcast::BroadcastQueue;
use crate::codec::{self, Message, Update};
use crate::event::{Event, NameConflict};
use crate::member::Name;
use crate::time::Instant;

/// How a transmit should travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Channel {
    /// One datagram (UDP): probes, acks, gossip.
    Datagram,
    /// A reliable stream (TCP): push-pull, and fallback probes.
    Stream,
}

/// Bytes for the runtime to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub dst: SocketAddr,
    /// Datagram or stream. A stream transmit is one whole packet: the runtime
    /// opens a connection to `dst`, writes it, and hands whatever comes back on
    /// that connection to [`Core::handle_stream`](crate::Core::handle_stream)
    /// with `dst` as the sender. A stream transmit whose `dst` is the sender
    /// of a stream just handled is the reply on that stream.
    pub channel: Channel,
    /// Encoded packet.
    pub payload: Vec<u8>,
}

/// Output queues, drained by `poll_transmit` and `poll_event`, and the
/// dissemination queue.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    gossip: BroadcastQueue,
    /// A `GossipNow` timer is pending: no need for another.
    gossip_now: bool,
    /// The periodic `Gossip` timer is running (it stops while nothing waits).
    gossip_ticking: bool,
    /// The gossip rounds' grid: rounds fall on `gossip_epoch + k × interval`
    /// whether or not the timer stopped in between, so a change waits for the
    /// next round as long as it would have with a timer that never stops.
    gossip_epoch: Instant,
    /// Name conflicts seen, for the runtime to report (a few at most).
    conflicts: VecDeque<NameConflict>,
    /// A sent datagram's buffer handed back by the runtime
    /// ([`Core::recycle`](crate::Core::recycle)), for the next one to be
    /// encoded into without allocating. One is enough for a runtime that
    /// sends each packet before it polls the next.
    spare: Option<Vec<u8>>,
}

/// A buffer larger than this is not kept for reuse (a stream's payload can
/// be far larger than any datagram).
const MAX_SPARE_CAPACITY: usize = 4096;

impl Outbox {
    /// Queues one datagram: `message`, then `first` if given, then as many
    /// queued changes as fit in `max` bytes (each leaving the queue after
    /// `limit` sends). A gossip packet with nothing to carry is not sent.
    /// Returns how many updates it carries.
    pub(crate) fn datagram(
        &mut self,
        dst: SocketAddr,
        message: &Message,
        first: Option<&Update>,
        max: usize,
        limit: u32,
    ) -> usize {
        let mut buf = match self.spare.take() {
            Some(mut spare) => {
                spare.clear();
                spare
            }
            None => Vec::with_capacity(max.min(512)),
        };
        codec::encode_message(&mut buf, message);
        let count_at = buf.len();
        buf.push(0);
        let mut count = 0;
        let mut skip = None;
        if let Some(update) = first {
            let before = buf.len();
            codec::encode_update(&mut buf, update);
            if buf.len() > max {
                buf.truncate(before);
            } else {
                count = 1;
                skip = Some(update.name().clone());
            }
        }
        count += self.gossip.fill(&mut buf, max, codec::MAX_UPDATES_PER_PACKET - count, limit, skip.as_ref());
        if count == 0 && matches!(message, Message::Gossip) {
            self.recycle(buf);
            return 0;
        }
        codec::finish(&mut buf, count_at, u8::try_from(count).unwrap_or(u8::MAX));
        self.transmits.push_back(Transmit { dst, channel: Channel::Datagram, payload: buf });
        count
    }

    /// Queues one message for a stream, with `updates` (at most a few: a
    /// stream ping's suspicion, a stream ack's refutation).
    pub(crate) fn stream(&mut self, dst: SocketAddr, message: Message, updates: Vec<Update>) {
        let payload = codec::encode(&codec::Packet { message, updates });
        self.transmits.push_back(Transmit { dst, channel: Channel::Stream, payload });
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// A name conflict to report (the most recent few are kept).
    pub(crate) fn conflict(&mut self, c: NameConflict) {
        if self.conflicts.len() >= 16 {
            self.conflicts.pop_front();
        }
        self.conflicts.push_back(c);
    }

    pub(crate) fn poll_conflict(&mut self) -> Option<NameConflict> {
        self.conflicts.pop_front()
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Keeps `buf` for the next datagram, unless one is kept already or it
    /// is too large to keep.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.is_none() && buf.capacity() <= MAX_SPARE_CAPACITY {
            self.spare = Some(buf);
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Queues `update` for dissemination; a `boosted` one is gossiped twice
    /// as many times.
    pub(crate) fn enqueue(&mut self, update: &Update, boosted: bool) {
        let mut bytes = Vec::with_capacity(48);
        codec::encode_update(&mut bytes, update);
        self.gossip.push(update.name().clone(), bytes, boosted);
    }

    /// No change is waiting to be gossiped.
    pub(crate) fn nothing_to_gossip(&self) -> bool {
        self.gossip.is_empty()
    }

    /// Changes waiting to be gossiped.
    pub(crate) fn pending(&self) -> usize {
        self.gossip.len()
    }

    /// How many times the change about `name` was sent, if it is still queued.
    pub(crate) fn sends_of(&self, name: &Name) -> Option<u32> {
        self.gossip.transmits(name)
    }

    /// Marks an immediate gossip round as pending; false if one already was.
    pub(crate) fn want_gossip_now(&mut self) -> bool {
        !std::mem::replace(&mut self.gossip_now, true)
    }

    /// When the periodic gossip timer must be (re)started, if it must:
    /// something waits to be gossiped and it is not running. The round falls
    /// on the grid, strictly after `now`. Marks it running.
    pub(crate) fn start_gossip_ticks(&mut self, now: Instant, interval: Duration) -> Option<Instant> {
        if self.gossip_ticking || self.gossip.is_empty() {
            return None;
        }
        self.gossip_ticking = true;
        let step = interval.as_micros().max(1) as u64;
        let since = now.saturating_duration_since(self.gossip_epoch).as_micros() as u64;
        Some(self.gossip_epoch + Duration::from_micros((since / step + 1) * step))
    }

    /// Sets the grid's origin (the member's start).
    pub(crate) fn set_gossip_epoch(&mut self, epoch: Instant) {
        self.gossip_epoch = epoch;
    }

    /// The periodic gossip timer fired: whether it goes on (something waits).
    pub(crate) fn continue_gossip_ticks(&mut self) -> bool {
        self.gossip_ticking = !self.gossip.is_empty();
        self.gossip_ticking
    }

    /// The immediate gossip round is running.
    pub(crate) fn gossip_now_done(&mut self) {
        self.gossip_now = false;
    }
}
