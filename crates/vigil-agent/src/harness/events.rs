//! The events every agent of a harness cluster printed (`--events-json` on
//! its stdout), in arrival order, for waits and for reports.

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One event line, as one agent (the observer) printed it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The agent that printed it.
    pub by: String,
    /// When the harness read the line.
    pub at: Instant,
    /// `time_ms` from the line (Unix milliseconds, the agent's clock).
    pub time_ms: u64,
    /// `joined`, `suspected`, `recovered`, `failed`, `left`, `updated`.
    pub kind: String,
    /// The member the event is about.
    pub member: String,
    /// The member's incarnation in the event.
    pub incarnation: u64,
    /// The whole event (evidence fields and all).
    pub event: Value,
}

impl Seen {
    /// Parses one `--events-json` line; other lines are not events.
    pub fn parse(by: &str, line: &str) -> Option<Seen> {
        let event: Value = serde_json::from_str(line.trim()).ok()?;
        Some(Seen {
            by: by.to_string(),
            at: Instant::now(),
            time_ms: event.get("time_ms")?.as_u64()?,
            kind: event.get("kind")?.as_str()?.to_string(),
            member: event.get("member")?.as_str()?.to_string(),
            incarnation: event.get("incarnation").and_then(Value::as_u64).unwrap_or(0),
            event,
        })
    }

    /// True for a `kind` event about `member`.
    pub fn is(&self, kind: &str, member: &str) -> bool {
        self.kind == kind && self.member == member
    }
}

/// All events of a cluster, from every agent, in arrival order. Clones share
/// the log.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    inner: Arc<(Mutex<Vec<Seen>>, Condvar)>,
}

impl EventLog {
    fn lock(&self) -> MutexGuard<'_, Vec<Seen>> {
        self.inner.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A copy of every event so far.
    pub fn all(&self) -> Vec<Seen> {
        self.lock().clone()
    }

    /// How many events arrived so far (the position of the next one).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True before the first event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events from position `from` on.
    pub fn since(&self, from: usize) -> Vec<Seen> {
        self.lock().get(from..).map(<[Seen]>::to_vec).unwrap_or_default()
    }

    /// Events of `kind` stamped at or after `since_ms`.
    pub fn of_kind_since(&self, kind: &str, since_ms: u64) -> Vec<Seen> {
        self.lock().iter().filter(|e| e.kind == kind && e.time_ms >= since_ms).cloned().collect()
    }

    /// The first time `by` reported `kind` for `member` at or after `since_ms`.
    pub fn first(&self, by: &str, kind: &str, member: &str, since_ms: u64) -> Option<u64> {
        self.lock()
            .iter()
            .filter(|e| e.by == by && e.is(kind, member) && e.time_ms >= since_ms)
            .map(|e| e.time_ms)
            .min()
    }

    /// Waits until `done` holds over the events from position `from` on, for
    /// at most `within`. Returns those events: `Ok` when `done` held, `Err`
    /// at the deadline.
    pub fn wait_for(
        &self,
        from: usize,
        within: Duration,
        mut done: impl FnMut(&[Seen]) -> bool,
    ) -> Result<Vec<Seen>, Vec<Seen>> {
        let deadline = Instant::now() + within;
        let mut all = self.lock();
        loop {
            let seen = all.get(from..).unwrap_or_default();
            if done(seen) {
                return Ok(seen.to_vec());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(seen.to_vec());
            }
            all = self.inner.1.wait_timeout(all, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// A reader of the events that arrive from now on.
    pub fn cursor(&self) -> Cursor {
        Cursor { log: self.clone(), next: self.len() }
    }

    fn push(&self, e: Seen) {
        self.lock().push(e);
        self.inner.1.notify_all();
    }

    /// Reads JSON lines from `out` until it closes, recording them as seen by
    /// `by`; the returned channel gets a message when the reader is done.
    pub(crate) fn capture(
        &self,
        by: String,
        out: impl Read + Send + 'static,
    ) -> std::io::Result<(JoinHandle<()>, mpsc::Receiver<()>)> {
        let log = self.clone();
        let (done_tx, done_rx) = mpsc::channel();
        let thread = std::thread::Builder::new().name(format!("events-{by}")).spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(e) = Seen::parse(&by, &line) {
                    log.push(e);
                }
            }
            let _ = done_tx.send(());
        })?;
        Ok((thread, done_rx))
    }
}

/// Reads a cluster's events in order, from where it was made on.
#[derive(Clone, Debug)]
pub struct Cursor {
    log: EventLog,
    next: usize,
}

impl Cursor {
    /// The next event, waiting for it at most `within`.
    pub fn next_within(&mut self, within: Duration) -> Option<Seen> {
        let e = self.log.wait_for(self.next, within, |s| !s.is_empty()).ok()?.into_iter().next()?;
        self.next += 1;
        Some(e)
    }

    /// Every event that arrived since the last read, without waiting.
    pub fn drain(&mut self) -> Vec<Seen> {
        let new = self.log.since(self.next);
        self.next += new.len();
        new
    }

    /// Waits until `done` holds over the events from this cursor on, for at
    /// most `within`, without consuming them.
    pub fn wait_for(
        &self,
        within: Duration,
        done: impl FnMut(&[Seen]) -> bool,
    ) -> Result<Vec<Seen>, Vec<Seen>> {
        self.log.wait_for(self.next, within, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_event_line_and_ignores_others() {
        let line = r#"{"time_ms":1700000000123,"kind":"failed","member":"m3","addr":"198.18.1.4:7950","incarnation":7,"suspected_by":["m1"]}"#;
        let e = Seen::parse("m0", line).expect("an event");
        assert_eq!(
            (e.time_ms, e.kind.as_str(), e.member.as_str(), e.incarnation),
            (1_700_000_000_123, "failed", "m3", 7)
        );
        assert_eq!(e.event["suspected_by"][0], "m1");
        assert!(Seen::parse("m0", "2026-11-24 INFO started").is_none());
    }

    #[test]
    fn cursors_read_in_order_and_waits_see_later_events() {
        let log = EventLog::default();
        let ev = |n: u64| Seen::parse("a", &format!(r#"{{"time_ms":{n},"kind":"joined","member":"m{n}"}}"#));
        log.push(ev(1).unwrap());
        let mut c = log.cursor();
        assert!(c.drain().is_empty(), "a cursor starts at the end");
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for n in 2..=4 {
                    log.push(ev(n).unwrap());
                }
            })
        };
        let got = c.wait_for(Duration::from_secs(10), |s| s.len() == 3).expect("three more");
        writer.join().unwrap();
        assert_eq!(got.iter().map(|e| e.time_ms).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(c.next_within(Duration::ZERO).map(|e| e.time_ms), Some(2));
        assert_eq!(c.drain().len(), 2);
        assert!(c.next_within(Duration::from_millis(1)).is_none());
        assert_eq!(log.first("a", "joined", "m3", 0), Some(3));
        assert_eq!(log.of_kind_since("joined", 3).len(), 2);
    }
}
