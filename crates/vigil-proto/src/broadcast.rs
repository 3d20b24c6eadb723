//! The dissemination queue: state changes waiting to ride on outgoing packets.
//!
//! At most one change per member is queued (a newer one replaces the older);
//! the least-sent changes go first, newest first among equals; a change is
//! dropped after it was sent the retransmit limit.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use crate::member::Name;

#[derive(Debug)]
struct Queued {
    name: Name,
    bytes: Vec<u8>,
    /// Sent twice the retransmit limit: news that nothing else repairs soon.
    boosted: bool,
}

/// Smallest possible encoded update (a `left` with a 1-byte name).
const MIN_UPDATE_LEN: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct BroadcastQueue {
    /// Ordered by (times sent, newest first).
    queue: BTreeMap<(u32, Reverse<u64>), Queued>,
    by_name: BTreeMap<Name, (u32, Reverse<u64>)>,
    next_id: u64,
    /// The keys the last fill took, kept for its allocation (a fill runs
    /// for every packet sent).
    taken: Vec<(u32, Reverse<u64>)>,
}

impl BroadcastQueue {
    /// Queues an encoded change about `name`, replacing any older one; a
    /// `boosted` change is sent twice the retransmit limit.
    pub(crate) fn push(&mut self, name: Name, bytes: Vec<u8>, boosted: bool) {
        if let Some(key) = self.by_name.remove(&name) {
            self.queue.remove(&key);
        }
        self.next_id += 1;
        let key = (0, Reverse(self.next_id));
        self.by_name.insert(name.clone(), key);
        self.queue.insert(key, Queued { name, bytes, boosted });
    }

    /// Number of queued changes.
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// How many times the change about `name` was sent, if it is still queued.
    pub(crate) fn transmits(&self, name: &Name) -> Option<u32> {
        self.by_name.get(name).map(|k| k.0)
    }

    /// Appends queued changes to `buf` while it stays within `max_len` bytes and
    /// holds at most `max_count` of them. Each change appended counts as one
    /// transmission; a change sent `limit` times leaves the queue. `skip` names
    /// a member whose change was already written. Returns how many were appended.
    pub(crate) fn fill(
        &mut self,
        buf: &mut Vec<u8>,
        max_len: usize,
        max_count: usize,
        limit: u32,
        skip: Option<&Name>,
    ) -> usize {
        let mut taken = std::mem::take(&mut self.taken);
        taken.clear();
        for (key, q) in &self.queue {
            let room = max_len.saturating_sub(buf.len());
            if room < MIN_UPDATE_LEN || taken.len() >= max_count {
                break;
            }
            if q.bytes.len() > room || skip == Some(&q.name) {
                continue;
            }
            buf.extend_from_slice(&q.bytes);
            taken.push(*key);
        }
        for key in &taken {
            if let Some(q) = self.queue.remove(key) {
                let sent = key.0 + 1;
                let limit = if q.boosted { limit.saturating_mul(2) } else { limit };
                if sent >= limit {
                    self.by_name.remove(&q.name);
                } else {
                    let new_key = (sent, key.1);
                    if let Some(k) = self.by_name.get_mut(&q.name) {
                        *k = new_key;
                    }
                    self.queue.insert(new_key, q);
                }
            }
        }
        let n = taken.len();
        self.taken = taken;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s).unwrap()
    }

    #[test]
    fn newer_change_replaces_older_and_least_sent_goes_first() {
        let mut q = BroadcastQueue::default();
        q.push(n("a"), vec![1; 10], false);
        q.push(n("b"), vec![2; 10], false);
        let mut buf = Vec::new();
        // Room for one: the newest (b) goes first.
        assert_eq!(q.fill(&mut buf, 10, 255, 3, None), 1);
        assert_eq!(buf, vec![2; 10]);
        // a has been sent fewer times now, so it goes next.
        buf.clear();
        assert_eq!(q.fill(&mut buf, 10, 255, 3, None), 1);
        assert_eq!(buf, vec![1; 10]);
        // Replacing a resets its count and drops the old bytes.
        q.push(n("a"), vec![3; 5], false);
        assert_eq!(q.len(), 2);
        assert_eq!(q.transmits(&n("a")), Some(0));
        buf.clear();
        q.fill(&mut buf, 100, 255, 3, None);
        assert_eq!(&buf[..5], &[3; 5]);
    }

    #[test]
    fn changes_leave_after_the_retransmit_limit() {
        let mut q = BroadcastQueue::default();
        q.push(n("a"), vec![1; 4], false);
        for _ in 0..3 {
            let mut buf = Vec::new();
            assert_eq!(q.fill(&mut buf, 100, 255, 3, None), 1);
        }
        assert!(q.is_empty());
    }

    #[test]
    fn boosted_changes_go_out_twice_the_limit() {
        let mut q = BroadcastQueue::default();
        q.push(n("a"), vec![1; 4], true);
        for _ in 0..6 {
            let mut buf = Vec::new();
            assert_eq!(q.fill(&mut buf, 100, 255, 3, None), 1);
        }
        assert!(q.is_empty());
    }

    #[test]
    fn too_large_changes_are_skipped_not_blocking() {
        let mut q = BroadcastQueue::default();
        q.push(n("small"), vec![1; 4], false);
        q.push(n("big"), vec![2; 50], false);
        let mut buf = Vec::new();
        assert_eq!(q.fill(&mut buf, 20, 255, 3, None), 1);
        assert_eq!(buf, vec![1; 4]);
        assert_eq!(q.transmits(&n("big")), Some(0));
    }
}
