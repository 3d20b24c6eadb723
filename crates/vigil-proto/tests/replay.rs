//! Freshness: an ack proves the member probed is alive only if it answers
//! this probe, from that member, once. Recorded acks (from an earlier run of
//! the same cluster, or from another member) prove nothing.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use vigil_proto::codec::Message;
use vigil_proto::{Config, Core, EventKind, Health, Identity, Instant, Meta, State};

/// "me" (a new process each time: another seed, as the runtime draws one per
/// process) knowing p2 and p3.
fn process(seed: u64) -> Core {
    let identity = Identity { name: name("me"), addr: addr(1), meta: Meta::default(), health: Health::ok() };
    let mut core = Core::new(Config::lan(), identity, 1, seed, Instant::ZERO).unwrap();
    with_peers(&mut core, &[2, 3]);
    core
}

/// Runs `core` for `secs` seconds; every ping it sends to p2 is answered by
/// `answer(seq)` from `from`, if it gives one. Returns the seqs of those pings.
fn run_answering(
    core: &mut Core,
    until: Instant,
    from: SocketAddr,
    mut answer: impl FnMut(u32) -> Vec<Vec<u8>>,
) -> Vec<u32> {
    let mut pinged = Vec::new();
    run_until(core, until, |core, now, t| {
        if let Message::Ping { seq, .. } = decoded(t).message
            && t.dst == addr(2)
        {
            pinged.push(seq);
            for bytes in answer(seq) {
                let _ = core.handle_datagram(now, from, &bytes);
            }
        }
    });
    pinged
}

#[test]
fn acks_recorded_from_earlier_runs_answer_no_probe_of_a_later_one() {
    // Earlier runs (six restarts of "me"): p2 is alive, and every ack it
    // sends is recorded.
    let end = Instant::from_millis(60_000);
    let mut recorded = Vec::new();
    for seed in 1..=6 {
        let mut earlier = process(seed);
        run_answering(&mut earlier, end, addr(2), |seq| {
            let ack = packet(Message::Ack { seq }, vec![]);
            recorded.push(ack.clone());
            vec![ack]
        });
        assert_eq!(earlier.member("p2", end).unwrap().state, State::Alive);
    }
    assert!(recorded.len() > 50, "{} acks recorded", recorded.len());

    // A later run: p2 is dead, and an attacker answers every ping to p2 with
    // every ack it recorded, from p2's own address.
    let mut later = process(9);
    let pinged = run_answering(&mut later, end, addr(2), |_| recorded.clone());
    assert!(!pinged.is_empty());
    let ev = events(&mut later);
    assert!(
        ev.iter().any(|e| e.kind == EventKind::Failed && e.member.name.as_str() == "p2"),
        "replayed acks must not keep p2 alive: {:?}",
        kinds(&ev)
    );
}

#[test]
fn an_ack_from_another_address_answers_no_probe() {
    let mut core = process(1);
    // Every ping to p2 is acked, but from p3's address (a reflection).
    let end = Instant::from_millis(30_000);
    run_answering(&mut core, end, addr(3), |seq| vec![packet(Message::Ack { seq }, vec![])]);
    let ev = events(&mut core);
    assert!(
        ev.iter().any(|e| e.kind == EventKind::Suspected && e.member.name.as_str() == "p2"),
        "{:?}",
        kinds(&ev)
    );
}

#[test]
fn an_ack_answers_a_probe_once() {
    let mut core = process(1);
    let (t0, sent) = run_until_sent(&mut core, is_ping);
    let ping = sent.into_iter().find(is_ping).unwrap();
    let Message::Ping { seq, .. } = decoded(&ping).message else { unreachable!() };
    let ack = packet(Message::Ack { seq }, vec![]);
    core.handle_datagram(t0, ping.dst, &ack).unwrap();
    let probes_acked = core.local_health();
    // The same ack again (a replay within the run) changes nothing.
    core.handle_datagram(t0 + Duration::from_millis(1), ping.dst, &ack).unwrap();
    assert_eq!(core.local_health(), probes_acked);
    assert!(transmits(&mut core).is_empty(), "nothing answers a duplicate ack");
}
