//! `GET /metrics`: the library's counters and the agent's own in the
//! Prometheus (OpenMetrics) text format.
//!
//! The library and the handler dispatcher keep plain counters; at each scrape
//! they are copied into one fresh prometheus-client registry and encoded.
//! Names (all `vigil_`):
//!
//! | name | type | labels |
//! | --- | --- | --- |
//! | `vigil_received_packets_total`, `vigil_sent_packets_total` | counter | `kind` |
//! | `vigil_received_bytes_total`, `vigil_sent_bytes_total` | counter | `kind` |
//! | `vigil_packets_rejected_total` | counter | `reason` |
//! | `vigil_probes_total`, `vigil_probes_failed_total`, `vigil_indirect_probes_total`, `vigil_stream_probes_total` | counter | |
//! | `vigil_suspicions_total`, `vigil_refutations_total`, `vigil_failures_declared_total` | counter | |
//! | `vigil_push_pulls_total`, `vigil_send_errors_total`, `vigil_stream_errors_total` | counter | |
//! | `vigil_fault_drops_total` (feature `testing` only) | counter | |
//! | `vigil_events_total` | counter | |
//! | `vigil_local_health_score` | gauge | |
//! | `vigil_members` | gauge | `state` |
//! | `vigil_handler_runs_total` | counter | `handler`, `result` (`ok`, `failed`) |
//! | `vigil_handler_dropped_total` | counter | |
//! | `vigil_envelopes_total` | counter | `version` |
//! | `vigil_streams_refused_total` | counter | `reason` |
//! | `vigil_name_conflicts_total` | counter | |
//! | `vigil_evidence_total` | counter | `kind` (`port_unreachable`, `refused`, `stream_closed`) |
//! | `vigil_verifications_total`, `vigil_exits_confirmed_total`, `vigil_evidence_refuted_total` | counter | |
//! | `vigil_stalls_total`, `vigil_stalled_seconds_total` | counter | |
//! | `vigil_last_stall_seconds` | gauge | how long the last stall lasted (0: none yet) |
//! | `vigil_farewells_total`, `vigil_backlog_drained_total` | counter | |
//! | `vigil_watch_streams` | gauge | `direction` (`out`, `in`) |
//! | `vigil_build_info` | gauge (1) | `version` |

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use vigil::{Member, Metrics};

use super::state::AppState;
use crate::act::ActShared;

type Labels = Vec<(&'static str, String)>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn labelled(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    label: &'static str,
    values: impl IntoIterator<Item = (String, u64)>,
) {
    let family = Family::<Labels, Counter<u64>>::default();
    for (l, v) in values {
        family.get_or_create(&vec![(label, l)]).inc_by(v);
    }
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family),
        None => registry.register(name, help, family),
    }
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(s): State<AppState>) -> Response {
    let v = s.vigil();
    let events = s.log().next_id() - 1;
    let refused: Vec<_> = s.refusals().collect();
    let body = render(&v.metrics(), &v.members(), events, s.act().as_deref(), &refused);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

/// Renders the library's counters, the member counts, the event count and
/// the handler counters (`act`, when handlers run) from one registry
/// (OpenMetrics text, which Prometheus reads).
///
/// `http_refused`: the HTTP side's refusals by reason (`AppState::refusals`).
pub fn render(
    m: &Metrics,
    members: &[Member],
    events: u64,
    act: Option<&ActShared>,
    http_refused: &[(&'static str, u64)],
) -> String {
    let mut r = Registry::with_prefix("vigil");
    library(&mut r, m);
    let build = Family::<Labels, Gauge<i64>>::default();
    build.get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())]).set(1);
    r.register("build_info", "The agent's version (the value is 1)", build);
    counter(&mut r, "events", "Membership events seen by this agent", events);
    let health = Gauge::<i64>::default();
    health.set(i64::from(m.local_health));
    r.register("local_health_score", "Lifeguard local health score (0 is healthy)", health);
    member_states(&mut r, members);
    handlers(&mut r, act);
    labelled(
        &mut r,
        "http_refused",
        "HTTP connections and requests refused by a limit, by reason",
        None,
        "reason",
        http_refused.iter().map(|(k, n)| ((*k).to_string(), *n)),
    );
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &r);
    out
}

/// The library's traffic and protocol counters.
fn library(r: &mut Registry, m: &Metrics) {
    let packets = || Some(Unit::Other("packets".into()));
    let by_kind = |f: fn(&vigil::KindCounts) -> u64| {
        m.traffic.iter().map(move |k| (k.kind.to_string(), f(k))).collect::<Vec<_>>()
    };
    labelled(
        r,
        "received",
        "Packets received, by message kind",
        packets(),
        "kind",
        by_kind(|k| k.packets_in),
    );
    labelled(r, "sent", "Packets sent, by message kind", packets(), "kind", by_kind(|k| k.packets_out));
    labelled(
        r,
        "received",
        "Bytes received, by message kind",
        Some(Unit::Bytes),
        "kind",
        by_kind(|k| k.bytes_in),
    );
    labelled(r, "sent", "Bytes sent, by message kind", Some(Unit::Bytes), "kind", by_kind(|k| k.bytes_out));
    labelled(
        r,
        "packets_rejected",
        "Packets rejected, by reason",
        None,
        "reason",
        m.rejected.iter().map(|(reason, n)| (reason.to_string(), *n)),
    );
    let p = &m.protocol;
    counter(r, "probes", "Direct probes sent", p.probes_sent);
    counter(r, "probes_failed", "Probes without an ack within the protocol period", p.probes_failed);
    counter(r, "indirect_probes", "Indirect probe requests sent", p.indirect_probes_sent);
    counter(r, "stream_probes", "Fallback probes sent over TCP", p.stream_probes_sent);
    counter(r, "suspicions", "Suspicions this member started", p.suspicions_started);
    counter(r, "refutations", "Times this member refuted a suspicion of itself", p.refutations);
    counter(r, "failures_declared", "Members this member declared failed", p.failures_declared);
    counter(r, "push_pulls", "Full-state exchanges started", p.push_pulls_sent);
    counter(r, "digest_datagrams", "Anti-entropy digests sent in a datagram", p.digest_datagrams_sent);
    counter(
        r,
        "digest_fallbacks",
        "Digest exchanges sent again over TCP: no answer to the datagram within a probe interval",
        p.digest_fallbacks,
    );
    counter(
        r,
        "returned_checks",
        "State exchanges started because a member held left or dead sent a packet",
        p.returned_checks,
    );
    counter(
        r,
        "name_conflicts",
        "Name conflicts: joins refused and claims from another address",
        p.name_conflicts,
    );
    labelled(
        r,
        "envelopes",
        "Packets opened, by envelope version (legacy: 1, current: 2)",
        None,
        "version",
        m.envelopes.iter().map(|(v, n)| (v.to_string(), *n)),
    );
    labelled(
        r,
        "streams_refused",
        "Inbound stream connections refused or dropped before they authenticated, by reason",
        None,
        "reason",
        m.streams_refused.iter().map(|(v, n)| (v.to_string(), *n)),
    );
    evidence(r, m);
    counter(r, "send_errors", "Datagrams that could not be sent", m.send_errors);
    counter(r, "stream_errors", "TCP exchanges that failed", m.stream_errors);
    #[cfg(feature = "testing")]
    counter(r, "fault_drops", "Packets dropped by fault injection (tests only)", m.fault_drops);
}

/// Kernel evidence, its verification, stalls and watch streams.
fn evidence(r: &mut Registry, m: &Metrics) {
    let p = &m.protocol;
    labelled(
        r,
        "evidence",
        "Kernel evidence that a member's process is gone, by kind",
        None,
        "kind",
        m.evidence.iter().map(|(k, n)| (k.to_string(), *n)),
    );
    counter(r, "verifications", "Evidence verified with other members", p.verifications_started);
    counter(r, "exits_confirmed", "Process exits confirmed (declared failed at once)", p.exits_confirmed);
    counter(r, "evidence_refuted", "Evidence refuted: the member answered", p.evidence_refuted);
    counter(r, "stalls", "Times this member was not running (stopped, starved)", p.stalls);
    let stalled =
        prometheus_client::metrics::counter::Counter::<f64, std::sync::atomic::AtomicU64>::default();
    stalled.inc_by(p.stalled_for.as_secs_f64());
    r.register_with_unit("stalled", "Time this member was not running, in all", Unit::Seconds, stalled);
    let last = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    last.set(m.last_stall.map_or(0.0, |s| s.lasted.as_secs_f64()));
    r.register_with_unit("last_stall", "How long the last stall lasted (0: none yet)", Unit::Seconds, last);
    counter(r, "farewells", "Farewells read on watch streams (a watched member left)", m.farewells_received);
    counter(
        r,
        "backlog_drained",
        "Packets found queued when timers fell due, handled first",
        m.backlog_drained,
    );
    let streams = Family::<Labels, Gauge<i64>>::default();
    streams
        .get_or_create(&vec![("direction", "out".to_string())])
        .set(i64::try_from(m.watching).unwrap_or(0));
    streams
        .get_or_create(&vec![("direction", "in".to_string())])
        .set(i64::try_from(m.watched_by).unwrap_or(0));
    r.register(
        "watch_streams",
        "Watch streams open, to watched members (out) and for watchers (in)",
        streams,
    );
}

/// Known members by state.
fn member_states(r: &mut Registry, members: &[Member]) {
    use vigil::State;
    let by_state = Family::<Labels, Gauge<i64>>::default();
    for s in [State::Alive, State::Suspect, State::Dead, State::Left] {
        let n = members.iter().filter(|x| x.state == s).count();
        by_state.get_or_create(&vec![("state", s.as_str().to_string())]).set(i64::try_from(n).unwrap_or(0));
    }
    r.register("members", "Known members by state, this one included", by_state);
}

/// Event handler runs by handler and result, and events not handled.
fn handlers(r: &mut Registry, act: Option<&ActShared>) {
    let runs = Family::<Labels, Counter<u64>>::default();
    let dropped = Counter::<u64>::default();
    if let Some(d) = act.and_then(ActShared::dispatcher) {
        for (name, c) in d.counts() {
            let label =
                |result: &'static str| vec![("handler", name.to_string()), ("result", result.to_string())];
            runs.get_or_create(&label("ok")).inc_by(c.succeeded.load(Ordering::Relaxed));
            runs.get_or_create(&label("failed")).inc_by(c.failed.load(Ordering::Relaxed));
        }
        dropped.inc_by(d.stats.dropped.load(Ordering::Relaxed));
    }
    r.register("handler_runs", "Event handler runs, by handler and result", runs);
    r.register(
        "handler_dropped",
        "Events not handled: a handler queue was full or the feed fell behind",
        dropped,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_units_and_total() {
        let mut m = Metrics::default();
        m.traffic =
            vec![vigil::KindCounts { kind: "ping", packets_out: 3, bytes_out: 90, ..Default::default() }];
        m.rejected = vec![("malformed", 2)];
        let text = render(&m, &[], 0, None, &[]);
        assert!(text.contains("vigil_sent_packets_total{kind=\"ping\"} 3"), "{text}");
        assert!(text.contains("vigil_sent_bytes_total{kind=\"ping\"} 90"), "{text}");
        assert!(text.contains("vigil_packets_rejected_total{reason=\"malformed\"} 2"), "{text}");
        assert!(text.contains("vigil_members{state=\"alive\"} 0"), "{text}");
        assert!(text.contains("vigil_local_health_score 0"), "{text}");
        assert_eq!(crate::client::metric_sum("vigil_sent_bytes_total", &text), 90.0);
    }

    #[test]
    fn one_registry_renders_the_handler_counters_before_one_end_marker() {
        let text = render(&Metrics::default(), &[], 1, None, &[]);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("vigil_events_total 1"), "{text}");
        assert!(text.contains("vigil_handler_dropped_total 0"), "{text}");
        assert_eq!(text.matches("# EOF").count(), 1, "{text}");
    }

    #[test]
    fn evidence_stalls_watch_streams_and_the_build_are_rendered() {
        let mut m = Metrics::default();
        m.evidence = vec![("refused", 2), ("stream_closed", 3)];
        m.watching = 2;
        m.watched_by = 1;
        m.farewells_received = 4;
        m.protocol.exits_confirmed = 5;
        m.protocol.stalls = 1;
        m.protocol.stalled_for = std::time::Duration::from_millis(1500);
        let text = render(&m, &[], 0, None, &[]);
        for line in [
            "vigil_evidence_total{kind=\"refused\"} 2",
            "vigil_evidence_total{kind=\"stream_closed\"} 3",
            "vigil_watch_streams{direction=\"out\"} 2",
            "vigil_watch_streams{direction=\"in\"} 1",
            "vigil_farewells_total 4",
            "vigil_exits_confirmed_total 5",
            "vigil_stalls_total 1",
            "vigil_stalled_seconds_total 1.5",
            "vigil_last_stall_seconds 0.0",
            concat!("vigil_build_info{version=\"", env!("CARGO_PKG_VERSION"), "\"} 1"),
        ] {
            assert!(text.contains(line), "`{line}` missing:\n{text}");
        }
    }
}
