//! Membership events captured from each agent's `--events-json` stdout.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

/// One event line, as one agent (the observer) printed it.
#[derive(Clone, Debug)]
pub struct Event {
    /// The agent that printed it.
    pub observer: String,
    /// `time_ms` from the line (Unix milliseconds).
    pub time_ms: u64,
    /// `joined`, `suspected`, `recovered`, `failed`, `left`, `updated`.
    pub kind: String,
    /// The member the event is about.
    pub member: String,
    /// The member's incarnation in the event.
    pub incarnation: u64,
    /// The whole line, for reports (evidence fields).
    pub raw: String,
}

/// All events of a cluster, from every agent, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct EventLog {
    inner: Arc<Mutex<Vec<Event>>>,
}

impl EventLog {
    /// A copy of every event so far.
    pub fn all(&self) -> Vec<Event> {
        self.inner.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Events of `kind` stamped at or after `since_ms`.
    pub fn of_kind_since(&self, kind: &str, since_ms: u64) -> Vec<Event> {
        self.all().into_iter().filter(|e| e.kind == kind && e.time_ms >= since_ms).collect()
    }

    /// The first time `observer` reported `kind` for `member` at or after `since_ms`.
    pub fn first(&self, observer: &str, kind: &str, member: &str, since_ms: u64) -> Option<u64> {
        self.all()
            .iter()
            .filter(|e| {
                e.observer == observer && e.kind == kind && e.member == member && e.time_ms >= since_ms
            })
            .map(|e| e.time_ms)
            .min()
    }

    fn push(&self, e: Event) {
        if let Ok(mut v) = self.inner.lock() {
            v.push(e);
        }
    }

    /// Reads JSON lines from `out` until it closes, recording them as seen by
    /// `observer`. Lines that are not event objects are ignored.
    pub(crate) fn capture(
        &self,
        observer: String,
        out: impl Read + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        let log = self.clone();
        std::thread::Builder::new().name(format!("events-{observer}")).spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(e) = parse(&observer, &line) {
                    log.push(e);
                }
            }
        })
    }
}

fn parse(observer: &str, line: &str) -> Option<Event> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    Some(Event {
        observer: observer.to_string(),
        time_ms: v.get("time_ms")?.as_u64()?,
        kind: v.get("kind")?.as_str()?.to_string(),
        member: v.get("member")?.as_str()?.to_string(),
        incarnation: v.get("incarnation").and_then(serde_json::Value::as_u64).unwrap_or(0),
        raw: line.trim().to_string(),
    })
}

/// Milliseconds since the Unix epoch (the events' clock).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_event_line_and_ignores_others() {
        let line = r#"{"time_ms":1700000000123,"kind":"failed","member":"m3","addr":"198.18.1.4:7950","incarnation":7,"suspected_by":["m1"]}"#;
        let e = parse("m0", line).expect("an event");
        assert_eq!(
            (e.time_ms, e.kind.as_str(), e.member.as_str(), e.incarnation),
            (1_700_000_000_123, "failed", "m3", 7)
        );
        assert!(parse("m0", "2026-11-24 INFO started").is_none());
    }
}
