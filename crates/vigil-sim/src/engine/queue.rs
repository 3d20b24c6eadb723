//! The event queue: events in (time, sequence) order, the sequence being the
//! order they were pushed in. A leaf.
//!
//! Built for the engine's load (one pop and one or two pushes per event,
//! tens of thousands of events pending at 10 000 members): a 4-ary min-heap
//! of 16-byte keys (four children share a cache line), the events' payloads
//! apart in a slab whose slots are reused, and wake-ups, half of all events,
//! carried in the key itself with no payload at all.

/// Bits of a key's second word that hold the payload (a member id, or a slab
/// slot); the sequence number sits above them.
const PAYLOAD_BITS: u32 = 28;
/// Marks a payload that is a member to wake, not a slab slot.
const WAKE: u64 = 1 << (PAYLOAD_BITS - 1);
const PAYLOAD_MASK: u64 = (1 << PAYLOAD_BITS) - 1;
/// Children per heap node.
const ARITY: usize = 4;

/// One pending event: ordered by `at`, then by `rest`, whose high bits are
/// the push sequence (unique, so the order is total and the payload bits
/// never decide).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at: u64,
    rest: u64,
}

/// What a popped event is.
#[derive(Debug)]
pub(crate) enum Popped<T> {
    /// Wake member `0` up.
    Wake(u32),
    /// Any other event.
    Event(T),
}

/// Events of type `T` (and wake-ups of members) in (time, push order).
#[derive(Debug)]
pub(crate) struct Queue<T> {
    heap: Vec<Key>,
    slab: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u64,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Queue { heap: Vec::new(), slab: Vec::new(), free: Vec::new(), seq: 0 }
    }
}

impl<T> Queue<T> {
    /// Queues `event` at `at`, after every event already queued at `at`.
    pub(crate) fn push(&mut self, at: u64, event: T) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(event);
                s
            }
            None => {
                let s = u32::try_from(self.slab.len()).expect("fewer than 2^32 pending events");
                self.slab.push(Some(event));
                s
            }
        };
        assert!(u64::from(slot) < WAKE, "fewer than 2^27 pending events");
        self.push_key(at, u64::from(slot));
    }

    /// Queues a wake-up of `member` at `at` (no payload to store).
    pub(crate) fn push_wake(&mut self, at: u64, member: u32) {
        assert!(u64::from(member) < WAKE, "fewer than 2^27 members");
        self.push_key(at, WAKE | u64::from(member));
    }

    fn push_key(&mut self, at: u64, payload: u64) {
        self.seq += 1;
        assert!(self.seq < 1 << (64 - PAYLOAD_BITS), "fewer than 2^36 events per run");
        let key = Key { at, rest: (self.seq << PAYLOAD_BITS) | payload };
        self.heap.push(key);
        self.sift_up(self.heap.len() - 1);
    }

    /// The time of the earliest event.
    pub(crate) fn peek_at(&self) -> Option<u64> {
        self.heap.first().map(|k| k.at)
    }

    /// Removes the earliest event.
    pub(crate) fn pop(&mut self) -> Option<(u64, Popped<T>)> {
        let last = self.heap.pop()?;
        let top = match self.heap.first_mut() {
            Some(first) => {
                let top = std::mem::replace(first, last);
                self.sift_down(0);
                top
            }
            None => last,
        };
        let payload = top.rest & PAYLOAD_MASK;
        if payload & WAKE != 0 {
            return Some((top.at, Popped::Wake((payload & !WAKE) as u32)));
        }
        let event = self.slab[payload as usize].take().expect("a queued event's slot is full");
        self.free.push(payload as u32);
        Some((top.at, Popped::Event(event)))
    }

    fn sift_up(&mut self, mut i: usize) {
        let key = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / ARITY;
            if self.heap[parent] <= key {
                break;
            }
            self.heap[i] = self.heap[parent];
            i = parent;
        }
        self.heap[i] = key;
    }

    fn sift_down(&mut self, mut i: usize) {
        let key = self.heap[i];
        let n = self.heap.len();
        loop {
            let first = i * ARITY + 1;
            if first >= n {
                break;
            }
            let end = (first + ARITY).min(n);
            let mut best = first;
            for c in first + 1..end {
                if self.heap[c] < self.heap[best] {
                    best = c;
                }
            }
            if key <= self.heap[best] {
                break;
            }
            self.heap[i] = self.heap[best];
            i = best;
        }
        self.heap[i] = key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_push_order() {
        let mut q = Queue::default();
        // A pseudo-random mix of times, many equal, with wake-ups among them.
        let mut x = 7u64;
        let mut pushed = Vec::new();
        for i in 0..2000u32 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let at = (x >> 40) % 50;
            if i % 3 == 0 {
                q.push_wake(at, i);
            } else {
                q.push(at, i);
            }
            pushed.push((at, i));
            // Pop now and then, as the engine does.
            if i % 7 == 0 {
                let (at, p) = q.pop().unwrap();
                let id = match p {
                    Popped::Wake(m) => m,
                    Popped::Event(e) => e,
                };
                let min = pushed.iter().min().copied().unwrap();
                assert_eq!((at, id), min);
                pushed.retain(|&e| e != min);
            }
        }
        pushed.sort();
        let mut out = Vec::new();
        while let Some((at, p)) = q.pop() {
            out.push((
                at,
                match p {
                    Popped::Wake(m) => m,
                    Popped::Event(e) => e,
                },
            ));
        }
        assert_eq!(out, pushed);
        assert!(q.peek_at().is_none());
    }
}
