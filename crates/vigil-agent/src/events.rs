//! Membership events as JSON (the `--events-json` lines and the SSE stream of
//! `GET /v1/events` share one shape), and the bounded, numbered history that
//! lets an SSE client resume with `Last-Event-ID`.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{Notify, broadcast};
use vigil::Event;
#[cfg(doc)]
use vigil::Vigil;

use crate::meta;

/// Events kept for clients that resume (`Last-Event-ID`).
pub const HISTORY: usize = 1000;

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One event, as printed and streamed.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct EventJson {
    /// When this agent saw it, Unix milliseconds.
    pub time_ms: u64,
    /// `joined`, `suspected`, `recovered`, `failed`, `left`, `updated`.
    pub kind: &'static str,
    /// The member's name.
    pub member: String,
    /// Its address.
    pub addr: String,
    /// Its incarnation after the change.
    pub incarnation: u64,
    /// Its state after the change.
    pub state: &'static str,
    /// Its metadata, decoded.
    pub meta: BTreeMap<String, String>,
    /// Its health.
    pub health: HealthJson,
    /// Suspected and failed: who suspected it (the first suspecter first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspected_by: Option<Vec<String>>,
    /// Suspected and failed: independent confirmations beyond the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u32>,
    /// Failed: how long the suspicion lasted, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspicion_ms: Option<u64>,
    /// Failed: who declared it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_by: Option<String>,
    /// This agent's own failed probe of it, if one led to the suspicion.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeJson>,
    /// Failed on kernel evidence: why, in words (`process exited: connection
    /// refused at m3 and m7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Failed on kernel evidence: each witness once, in the order they saw
    /// the process gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<Vec<WitnessJson>>,
}

/// A member that saw another's process gone, and how.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WitnessJson {
    /// The witness.
    pub by: String,
    /// `stream closed`, `connection refused` or `port unreachable`.
    pub how: String,
}

/// A member's health.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HealthJson {
    /// `ok`, `degraded`, `failing`.
    pub status: &'static str,
    /// Short reason, may be empty.
    pub reason: String,
}

impl HealthJson {
    /// From the library's health.
    pub fn of(h: &vigil::Health) -> Self {
        HealthJson { status: h.status().as_str(), reason: h.reason().to_string() }
    }
}

/// A failed direct probe.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ProbeJson {
    /// How long the direct probe waited, ms.
    pub timeout_ms: u64,
    /// Members asked to probe indirectly.
    pub indirect: Vec<String>,
    /// Those that answered they could not reach it either.
    pub nacks: Vec<String>,
}

impl EventJson {
    /// The JSON of a library event seen at `time_ms`.
    pub fn new(e: &Event, time_ms: u64) -> Self {
        let m = &e.member;
        let names = |v: &[vigil::Name]| v.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let ev = e.evidence.as_ref();
        EventJson {
            time_ms,
            kind: e.kind.as_str(),
            member: m.name.to_string(),
            addr: m.addr.to_string(),
            incarnation: m.incarnation,
            state: m.state.as_str(),
            meta: meta::decode(m.meta.as_bytes()),
            health: HealthJson::of(&m.health),
            suspected_by: ev.map(|v| names(&v.suspected_by)),
            confirmations: ev.map(|v| v.confirmations),
            suspicion_ms: ev.filter(|v| !v.suspicion_duration.is_zero()).map(|v| ms(v.suspicion_duration)),
            declared_by: ev.and_then(|v| v.declared_by.as_ref()).map(|n| n.to_string()),
            probe: ev.and_then(|v| v.probe.as_ref()).map(|p| ProbeJson {
                timeout_ms: ms(p.timeout),
                indirect: names(&p.indirect),
                nacks: names(&p.nacks),
            }),
            cause: ev.and_then(|v| v.exit.as_ref()).map(ToString::to_string),
            exit: ev.and_then(|v| v.exit.as_ref()).map(|x| {
                x.witnesses
                    .iter()
                    .map(|(n, how)| WitnessJson { by: n.to_string(), how: how.to_string() })
                    .collect()
            }),
        }
    }
}

/// One numbered event, serialized once.
#[derive(Debug)]
pub struct Logged {
    /// Increasing from 1 for the life of the agent.
    pub id: u64,
    /// The JSON line (without newline).
    pub json: String,
}

#[derive(Debug)]
struct LogInner {
    next_id: u64,
    history: VecDeque<Arc<Logged>>,
}

/// The agent's event history and live feed.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<LogInner>,
    live: broadcast::Sender<Arc<Logged>>,
    capacity: usize,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog::new(HISTORY)
    }
}

impl EventLog {
    /// A log keeping the last `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(1024);
        EventLog {
            inner: Mutex::new(LogInner { next_id: 1, history: VecDeque::with_capacity(capacity) }),
            live,
            capacity: capacity.max(1),
        }
    }

    /// Numbers, keeps and broadcasts an event.
    pub fn push(&self, event: &EventJson) -> Arc<Logged> {
        let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let logged = Arc::new(Logged { id: inner.next_id, json });
        inner.next_id += 1;
        if inner.history.len() == self.capacity {
            inner.history.pop_front();
        }
        inner.history.push_back(logged.clone());
        // Under the lock, so that `resume` sees each event exactly once.
        let _ = self.live.send(logged.clone());
        logged
    }

    /// The kept events with an id above `after` (`Some(0)`: all kept events;
    /// `None`: none), and a receiver of the later ones.
    pub fn resume(&self, after: Option<u64>) -> (Vec<Arc<Logged>>, broadcast::Receiver<Arc<Logged>>) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let past = match after {
            // An id this agent never gave out: the client saw an earlier run
            // of the agent (ids restart at 1), so it gets all that is kept.
            Some(after) if after >= inner.next_id => inner.history.iter().cloned().collect(),
            Some(after) => inner.history.iter().filter(|l| l.id > after).cloned().collect(),
            None => Vec::new(),
        };
        (past, self.live.subscribe())
    }

    /// The id the next event will get.
    pub fn next_id(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).next_id
    }
}

/// Feeds the library's events (`rx`, taken when the member started:
/// [`Vigil::start_with_events`]) into the log (and stdout with
/// `--events-json`) until the member stops; pokes `changed` on each one
/// (snapshot writer).
pub async fn pump(mut rx: broadcast::Receiver<Event>, log: Arc<EventLog>, print: bool, changed: Arc<Notify>) {
    loop {
        match rx.recv().await {
            Ok(event) => {
                let logged = log.push(&EventJson::new(&event, unix_ms()));
                if print {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", logged.json);
                    let _ = out.flush();
                }
                changed.notify_one();
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "event stream lagged: {n} membership events were not recorded");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u64) -> EventJson {
        EventJson {
            time_ms: n,
            kind: "joined",
            member: format!("m{n}"),
            addr: "127.0.0.1:1".into(),
            incarnation: 1,
            state: "alive",
            meta: BTreeMap::new(),
            health: HealthJson { status: "ok", reason: String::new() },
            suspected_by: None,
            confirmations: None,
            suspicion_ms: None,
            declared_by: None,
            probe: None,
            cause: None,
            exit: None,
        }
    }

    #[test]
    fn history_is_bounded_and_resumes_after_an_id() {
        let log = EventLog::new(3);
        for n in 1..=5 {
            log.push(&ev(n));
        }
        let (past, _) = log.resume(Some(0));
        assert_eq!(past.iter().map(|l| l.id).collect::<Vec<_>>(), vec![3, 4, 5]);
        let (past, mut live) = log.resume(Some(4));
        assert_eq!(past.iter().map(|l| l.id).collect::<Vec<_>>(), vec![5]);
        log.push(&ev(6));
        assert_eq!(live.try_recv().unwrap().id, 6);
        assert!(log.resume(None).0.is_empty());
        assert_eq!(log.resume(Some(99)).0.len(), 3, "an id from an earlier run replays all");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(&ev(7)).unwrap()).unwrap();
        for k in ["time_ms", "kind", "member", "addr", "incarnation"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(v.get("suspected_by").is_none());
    }
}
