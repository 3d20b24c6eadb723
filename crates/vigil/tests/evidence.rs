//! Kernel evidence with real members on 127.0.0.1: watch streams, refused
//! connections, ICMP port unreachable, farewells, and a stalled member that
//! drains its backlog before its timers. Shutting a member down without
//! leaving closes its sockets as a process's exit does. Assertions are on
//! the evidence, not on how fast it came (that belongs in benchmarks).

mod support;

use std::time::{Duration, Instant};

use support::{drain, local, start_cluster, state_of, wait_until};
use vigil::{Event, EventKind, Faults, State, Vigil};

/// How much evidence of `kind` member `m` handed to its core.
fn evidence(m: &Vigil, kind: &str) -> u64 {
    m.metrics().evidence.iter().filter(|(k, _)| *k == kind).map(|(_, n)| *n).sum()
}

/// Waits until each member holds its watch streams open to `watched`
/// others, and is held open by as many.
async fn watch_streams_open(members: &[Vigil], watched: usize) {
    wait_until("watch streams open", Duration::from_secs(10), || {
        members.iter().all(|m| {
            let x = m.metrics();
            x.watching == watched && x.watched_by == watched
        })
    })
    .await;
}

/// The first event about `name` of one of `kinds` that `events` receives.
async fn first_about(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    name: &str,
    kinds: &[EventKind],
) -> Event {
    loop {
        let e = events.recv().await.expect("events");
        if e.member.name.as_str() == name && kinds.contains(&e.kind) {
            return e;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_shut_down_without_leaving_is_failed_on_exit_evidence() {
    let mut members = start_cluster((0..4).map(|i| local(&format!("m{i}"))).collect()).await;
    watch_streams_open(&members, 2).await;
    let victim = members.pop().expect("four members");
    let mut events: Vec<_> = members.iter().map(Vigil::subscribe).collect();
    let start = Instant::now();
    victim.shutdown().await; // no leave: its sockets close as at a crash
    let mut failed = Vec::new();
    for (m, rx) in members.iter().zip(events.iter_mut()) {
        let seen = tokio::time::timeout(Duration::from_secs(20), first_about(rx, "m3", &[EventKind::Failed]));
        let e = seen.await.unwrap_or_else(|_| panic!("{} never saw m3 fail", m.name()));
        let exit = e.evidence.as_ref().and_then(|x| x.exit.as_ref()).map(ToString::to_string);
        eprintln!("{} saw m3 failed after {:?} (informal): {exit:?}", m.name(), start.elapsed());
        failed.push(e);
    }
    // Whoever declared it gives the kernel's evidence: two witnesses at
    // least, all of them live members, at least one that cannot be forged
    // off the path (a closed stream or a refused connection).
    let exits: Vec<_> = failed.iter().filter_map(|e| e.evidence.as_ref()?.exit.as_ref()).collect();
    assert!(!exits.is_empty(), "failed on exit evidence: {failed:#?}");
    let live = ["m0", "m1", "m2"];
    for exit in &exits {
        assert!(exit.witnesses.len() >= 2, "{exit}");
        assert!(exit.witnesses.iter().all(|(w, _)| live.contains(&w.as_str())), "{exit}");
        assert!(exit.witnesses.iter().any(|(_, how)| how.is_strong()), "{exit}");
    }
    // Its watchers read the end of their watch streams (the one that hears
    // of the failure first stops watching before it reads its own).
    wait_until("a watch stream closed", Duration::from_secs(10), || {
        members.iter().map(|m| evidence(m, "stream_closed")).sum::<u64>() >= 1
    })
    .await;
    // One failure each, and of nobody else.
    for (m, rx) in members.iter().zip(events.iter_mut()) {
        let more: Vec<_> = drain(rx).into_iter().filter(|e| e.kind == EventKind::Failed).collect();
        assert!(more.is_empty(), "{} saw {more:#?}", m.name());
        assert_eq!(state_of(m, "m3"), Some(State::Dead));
    }
    for m in &members {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_leaves_tells_its_watchers_on_the_watch_streams() {
    let members = start_cluster((0..4).map(|i| local(&format!("m{i}"))).collect()).await;
    watch_streams_open(&members, 2).await;
    let leaver = &members[1];
    let others: Vec<&Vigil> = members.iter().filter(|m| m.name() != "m1").collect();
    let mut events: Vec<_> = others.iter().map(|m| m.subscribe()).collect();
    // Nothing it sends reaches anyone (datagrams and new streams alike): only
    // the farewell on the streams its watchers opened can tell them.
    let mut cut = Faults::default();
    for m in &others {
        cut = cut.block(m.local_addr());
    }
    cut.blocked_inbound.clear();
    leaver.set_faults(Some(cut)).await.unwrap();
    leaver.leave(Duration::from_secs(2)).await.unwrap();
    leaver.shutdown().await;
    for (m, rx) in others.iter().zip(events.iter_mut()) {
        let seen = first_about(rx, "m1", &[EventKind::Left, EventKind::Failed]);
        let e = tokio::time::timeout(Duration::from_secs(10), seen).await.expect("m1 left or failed");
        assert_eq!(e.kind, EventKind::Left, "at {}: {e:#?}", m.name());
    }
    // Its watchers heard the farewell (one that heard of it from the other
    // first may have stopped watching before reading its own), and took the
    // close that followed for no crash. Left is final: nothing can fail it
    // from now on.
    wait_until("a farewell heard", Duration::from_secs(10), || {
        others.iter().map(|m| m.metrics().farewells_received).sum::<u64>() >= 1
    })
    .await;
    for m in &others {
        assert_eq!(evidence(m, "stream_closed"), 0, "a farewell is no crash at {}", m.name());
    }
    for m in &others {
        m.shutdown().await;
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_to_a_closed_port_draws_port_unreachable_evidence() {
    // No watch streams: what is seen comes from probes alone. The kernel
    // rate-limits ICMP errors (per network namespace, shared with whatever
    // else runs on the machine): patience keeps `a` probing `b` for long
    // enough to see one, whatever the load.
    let no_watch = |name: &str| {
        let mut c = local(name);
        c.protocol.watch_count = 0;
        c.protocol.pause_tolerance = Duration::from_secs(30);
        c
    };
    let mut members = start_cluster(vec![no_watch("a"), no_watch("b")]).await;
    let b = members.pop().expect("two members");
    let a = members.pop().expect("two members");
    b.shutdown().await;
    // a's next probe of b draws an ICMP port unreachable; a tries b over a
    // stream as well, which is refused.
    wait_until("port unreachable and refused at a", Duration::from_secs(20), || {
        evidence(&a, "port_unreachable") >= 1 && evidence(&a, "refused") >= 1
    })
    .await;
    let m = a.metrics();
    assert_eq!((m.watching, m.watched_by, evidence(&a, "stream_closed")), (0, 0, 0), "{m:#?}");
    assert!(m.protocol.verifications_started >= 1, "{m:#?}");
    a.shutdown().await;
}

/// A member in a runtime of its own, on its own thread, that the test can
/// stop from running for a while (as a stop signal or CPU starvation would):
/// its sockets stay open and datagrams queue meanwhile.
struct Freezable {
    vigil: Vigil,
    freeze: tokio::sync::mpsc::UnboundedSender<Duration>,
    thread: std::thread::JoinHandle<()>,
}

impl Freezable {
    fn start(config: vigil::Config) -> Freezable {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (freeze, mut freezes) = tokio::sync::mpsc::unbounded_channel::<Duration>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                handle_tx.send(Vigil::start(config).await.expect("start")).unwrap();
                while let Some(d) = freezes.recv().await {
                    // Blocks the thread: nothing in this runtime runs.
                    std::thread::sleep(d);
                }
            });
        });
        let vigil = handle_rx.recv_timeout(Duration::from_secs(10)).expect("started");
        Freezable { vigil, freeze, thread }
    }

    async fn stop(self) {
        self.vigil.shutdown().await;
        drop(self.freeze);
        tokio::task::spawn_blocking(move || self.thread.join()).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_member_drains_its_backlog_before_its_timers_and_accuses_no_one() {
    let frozen = Freezable::start(local("x"));
    let others = start_cluster(vec![local("m0"), local("m1")]).await;
    let x = &frozen.vigil;
    x.join(&[others[0].local_addr().to_string()], Duration::from_secs(10)).await.unwrap();
    let everyone: Vec<&Vigil> = others.iter().chain([x]).collect();
    wait_until("x alive everywhere", Duration::from_secs(10), || {
        everyone.iter().all(|m| support::alive_count(m) == 3)
    })
    .await;
    wait_until("watch streams open", Duration::from_secs(10), || {
        everyone.iter().all(|m| m.metrics().watching == 2 && m.metrics().watched_by == 2)
    })
    .await;
    let mut events: Vec<_> = everyone.iter().map(|m| m.subscribe()).collect();
    // Stopped for less than the pause tolerance (1 s with `local()`), while
    // the others' pings and gossip queue up; until it was seen to hand in a
    // backlog before its timers (a few times at most).
    let freeze = Duration::from_millis(400);
    let mut stalls = 0;
    while stalls < 5 && (stalls == 0 || x.metrics().backlog_drained == 0) {
        stalls += 1;
        // A stall raises x's local health score, which stretches its probe
        // interval (200 ms × (1 + score)): until it is back to 0 a freeze
        // of 400 ms may end before any timer is overdue by the stall
        // threshold, and go unnoticed.
        wait_until("x healthy before it is stopped", Duration::from_secs(20), || {
            x.metrics().local_health == 0
        })
        .await;
        frozen.freeze.send(freeze).unwrap();
        wait_until("x noticed its stall", Duration::from_secs(10), || x.metrics().protocol.stalls >= stalls)
            .await;
        wait_until("x alive everywhere again", Duration::from_secs(10), || {
            everyone.iter().all(|m| support::alive_count(m) == 3)
        })
        .await;
    }
    let m = x.metrics();
    assert!(m.backlog_drained > 0, "{m:#?}");
    let last = m.last_stall.expect("a stall noticed");
    // Measured from the first timer that fell due during the freeze (an idle
    // member has few: the gossip timer stops when nothing waits), so it is
    // at most the freeze, give or take scheduling.
    assert!(last.lasted <= freeze + Duration::from_millis(500), "{last:?}");
    assert_eq!(m.protocol.suspicions_started, 0, "x accuses no one of its own stall: {m:#?}");
    // Its kernel kept its watch streams open all along.
    for o in &others {
        assert_eq!(evidence(o, "stream_closed"), 0, "at {}", o.name());
    }
    // Suspected and refuted perhaps, failed never; and x suspected nobody.
    for (m, rx) in everyone.iter().zip(events.iter_mut()) {
        let seen = drain(rx);
        let failed: Vec<_> = seen.iter().filter(|e| e.kind == EventKind::Failed).collect();
        assert!(failed.is_empty(), "{} saw {failed:#?}", m.name());
        if m.name() == "x" {
            let suspected: Vec<_> = seen
                .iter()
                .filter(|e| e.kind == EventKind::Suspected && e.member.name.as_str() != "x")
                .collect();
            assert!(suspected.is_empty(), "x saw {suspected:#?}");
        }
    }
    for o in &others {
        o.shutdown().await;
    }
    frozen.stop().await;
}
