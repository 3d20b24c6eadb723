//! One `Core` driven by hand: fake peers at 10.0.0.x:7900 send it hand-made
//! packets, and virtual time moves only when a test moves it. Every core uses
//! the same fixed seed, so a failure replays exactly. The driving helpers are
//! in `support`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};
use support::*;
use vigil_proto::codec::{self, MemberState, Message, Packet, Update};
use vigil_proto::{
    Channel, Config, Core, DecodeError, EventKind, Evidence, Health, HealthStatus, Identity, Instant,
    MemberError, Meta, Name, ProbeEvidence, State, Transmit,
};

// ---------------------------------------------------------------- pings

#[test]
fn ping_addressed_to_this_members_name_is_acked_with_the_same_seq() {
    let mut core = me();
    core.handle_datagram(Instant::ZERO, addr(2), &packet(ping_to("me", 7), vec![])).unwrap();

    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, sent[0].channel), (addr(2), Channel::Datagram));
    // The ack also carries this member's pending news: its own alive claim.
    assert_eq!(decoded(&sent[0]), Packet { message: Message::Ack { seq: 7 }, updates: vec![me_alive(1)] });
}

#[test]
fn a_payload_handed_back_carries_the_next_datagram_without_a_new_allocation() {
    let mut core = me();
    // A buffer told apart by its capacity (a new one has at most 512
    // bytes), with leftovers of an earlier packet in it.
    let mut spare = Vec::with_capacity(3000);
    spare.extend_from_slice(&[0xab; 100]);
    core.recycle(spare);
    core.handle_datagram(Instant::ZERO, addr(2), &packet(ping_to("me", 7), vec![])).unwrap();
    let ack = core.poll_transmit().expect("an ack");
    assert_eq!(ack.payload.capacity(), 3000, "encoded into the buffer handed back");
    assert_eq!(decoded(&ack), Packet { message: Message::Ack { seq: 7 }, updates: vec![me_alive(1)] });

    // One is kept at most, and none too large to keep (a stream's).
    core.recycle(Vec::with_capacity(1 << 20));
    core.recycle(Vec::with_capacity(2000));
    core.recycle(Vec::with_capacity(3000));
    core.handle_datagram(Instant::ZERO, addr(3), &packet(ping_to("me", 8), vec![])).unwrap();
    core.handle_datagram(Instant::ZERO, addr(4), &packet(ping_to("me", 9), vec![])).unwrap();
    let caps: Vec<usize> = transmits(&mut core).iter().map(|t| t.payload.capacity()).collect();
    assert_eq!(caps.len(), 2);
    assert_eq!(caps[0], 2000, "the first buffer small enough was kept, and only it");
    assert!(caps[1] <= 512, "{caps:?}");
}

#[test]
fn ping_addressed_to_another_name_is_not_answered_and_counted_misdirected() {
    let mut core = me();
    core.handle_datagram(Instant::ZERO, addr(2), &packet(ping_to("someone-else", 7), vec![])).unwrap();

    assert_eq!(transmits(&mut core), vec![]);
    assert_eq!(core.stats().misdirected_pings, 1);
}

// ---------------------------------------------------------------- timers and determinism

#[test]
fn handle_timeout_called_early_or_twice_is_harmless() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);
    let due = core.poll_timeout().unwrap();

    core.handle_timeout(due - Duration::from_micros(1));
    assert_eq!(transmits(&mut core), vec![]);
    assert_eq!(core.poll_timeout(), Some(due));

    core.handle_timeout(due);
    transmits(&mut core);
    let next = core.poll_timeout().unwrap();
    assert!(next > due);
    let stats = core.stats().clone();
    core.handle_timeout(due);
    assert_eq!(transmits(&mut core), vec![]);
    assert_eq!((core.poll_timeout(), core.stats()), (Some(next), &stats));
}

#[test]
fn the_same_seed_and_inputs_give_the_same_outputs() {
    let run = || {
        let mut core = me();
        with_peers(&mut core, &[2, 3, 4, 5]);
        core.handle_datagram(Instant::ZERO, addr(3), &gossip(vec![suspect("p2", 0, "p3")])).unwrap();
        let sent = run_until(&mut core, Instant::from_millis(20_000), silent);
        (sent, events(&mut core), core.stats().clone())
    };
    let (sent, events, stats) = run();
    assert!(sent.len() > 20 && events.len() > 3, "{} transmits, {} events", sent.len(), events.len());
    assert_eq!((sent, events, stats), run());
}

#[test]
fn an_idle_member_wakes_only_for_its_probes_not_for_empty_gossip_rounds() {
    // Peers that ack every ping: once the start-up news is gossiped, nothing
    // waits, and the 200 ms gossip round must not wake the member (an idle
    // agent on every host should sleep between its 1 s probes).
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4, 5]);
    run_until(&mut core, Instant::from_millis(10_000), acking);
    assert_eq!(core.pending_updates(), 0, "the start-up news is out");
    let mut wakeups = 0;
    let mut now = Instant::from_millis(10_000);
    while let Some(due) = core.poll_timeout()
        && due <= Instant::from_millis(20_000)
    {
        wakeups += 1;
        now = due;
        core.handle_timeout(now);
        while let Some(t) = core.poll_transmit() {
            acking(&mut core, now, &t);
        }
    }
    // 10 probes (one per second) and their timeouts at most, a push-pull or
    // reconnect: far below the 50 rounds a free-running gossip timer takes.
    assert!(wakeups <= 25, "{wakeups} wake-ups in 10 s of idleness");
    assert!(wakeups >= 10, "{wakeups}: the probes still run");

    // News restarts the rounds at once (on the round's grid).
    core.set_health(now, vigil_proto::Health::new(vigil_proto::HealthStatus::Degraded, "disk").unwrap());
    let next = core.poll_timeout().unwrap();
    assert!(next <= now + ms(200), "the change waits at most one round: {next:?} after {now:?}");
}

fn failed_after(
    core: &mut Core,
    secs: u64,
    answer: impl FnMut(&mut Core, Instant, &Transmit),
) -> Vec<String> {
    run_until(core, Instant::from_millis(secs * 1000), answer);
    events(core)
        .into_iter()
        .filter(|e| e.kind == EventKind::Failed)
        .map(|e| e.member.name.to_string())
        .collect()
}

#[test]
fn a_member_that_hears_no_one_declares_no_one_failed() {
    // Cut off alone (its link down, its firewall): every probe fails, no
    // indirect prober answers. Declaring the others failed would spread the
    // moment its link healed, on the word of the one member that heard no
    // one; it holds its suspicions instead.
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);
    assert_eq!(failed_after(&mut core, 60, silent), Vec::<String>::new());
    assert!(core.stats().deaf_holds > 0);
    assert_eq!(core.member(&peer(2), Instant::from_millis(60_000)).unwrap().state, State::Suspect);

    // Its link heals: the others answer (and refute what rides their pings).
    // Each suspect is asked again before anything is declared, so hearing
    // one peer again does not condemn the others it held.
    assert_eq!(failed_after(&mut core, 90, acking_alive), Vec::<String>::new());
    for host in [2, 3, 4] {
        assert_eq!(core.member(&peer(host), Instant::from_millis(90_000)).unwrap().state, State::Alive);
    }
}

#[test]
fn a_member_that_hears_others_declares_the_silent_ones_and_a_pair_declares_its_peer() {
    // One peer answers: the network around this member works, so the
    // silence of the other two is theirs.
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);
    let only_four = |core: &mut Core, now: Instant, t: &Transmit| {
        if host_of(t.dst) == 4 {
            acking(core, now, t);
        }
    };
    let mut failed = failed_after(&mut core, 60, only_four);
    failed.sort();
    assert_eq!(failed, vec![peer(2), peer(3)]);

    // Two members: no one else to hear from; a silent peer is failed.
    let mut pair = me();
    with_peers(&mut pair, &[2]);
    assert_eq!(failed_after(&mut pair, 60, silent), vec![peer(2)]);
}

// ---------------------------------------------------------------- refutation

#[test]
fn suspected_at_its_own_incarnation_it_refutes_to_the_sender_at_claim_plus_one() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![suspect("me", 1, "p2")])).unwrap();

    assert_eq!(core.incarnation(), 2);
    assert_eq!(core.stats().refutations, 1);
    assert_eq!(core.local_health(), 1, "Lifeguard: having to refute is a sign of ill health");
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].dst, addr(2));
    let p = decoded(&sent[0]);
    assert_eq!(p.message, Message::Gossip);
    assert_eq!(p.updates[0], me_alive(2));
}

#[test]
fn suspicion_riding_on_a_ping_is_refuted_in_the_ack_as_its_first_update() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    let ping = packet(ping_to("me", 9), vec![suspect("me", 1, "p2")]);
    core.handle_datagram(Instant::ZERO, addr(2), &ping).unwrap();

    assert_eq!(core.incarnation(), 2);
    assert_eq!(core.stats().refutations, 1);
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "the ack alone carries the refutation: {sent:#?}");
    assert_eq!(sent[0].dst, addr(2));
    let p = decoded(&sent[0]);
    assert_eq!(p.message, Message::Ack { seq: 9 });
    assert_eq!(p.updates[0], me_alive(2));
}

#[test]
fn the_named_suspecter_also_hears_the_refutation_directly() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);

    // p2 passes on p3's suspicion.
    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![suspect("me", 1, "p3")])).unwrap();

    let sent = transmits(&mut core);
    let told: Vec<(SocketAddr, Update)> =
        sent.iter().map(|t| (t.dst, decoded(t).updates[0].clone())).collect();
    assert_eq!(told, vec![(addr(2), me_alive(2)), (addr(3), me_alive(2))]);
    assert_eq!(core.stats().refutations, 1);
}

#[test]
fn suspicion_at_an_older_incarnation_does_not_raise_it_but_the_sender_hears_the_current_alive() {
    let mut core = me_at(5);
    with_peers(&mut core, &[2]);

    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![suspect("me", 3, "p2")])).unwrap();

    assert_eq!(core.incarnation(), 5);
    assert_eq!(core.stats().refutations, 0);
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].dst, addr(2));
    assert_eq!(decoded(&sent[0]).updates[0], me_alive(5));
}

#[test]
fn declared_dead_at_its_own_incarnation_it_refutes() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![dead("me", 1, "p2")])).unwrap();

    assert_eq!(core.incarnation(), 2);
    assert_eq!(core.stats().refutations, 1);
    assert_eq!(core.member("me", Instant::ZERO).unwrap().state, State::Alive);
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, decoded(&sent[0]).updates[0].clone()), (addr(2), me_alive(2)));
}

#[test]
fn said_to_have_left_while_not_leaving_it_refutes() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![left("me", 1)])).unwrap();

    assert_eq!(core.incarnation(), 2);
    assert_eq!(core.stats().refutations, 1);
    assert_eq!(core.member("me", Instant::ZERO).unwrap().state, State::Alive);
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, decoded(&sent[0]).updates[0].clone()), (addr(2), me_alive(2)));
}

// ---------------------------------------------------------------- precedence

#[test]
fn claims_are_ordered_by_incarnation_then_left_over_dead_over_suspect_over_alive() {
    let mut core = me();
    let from = addr(9);
    let mut feed = |update: Update| -> (State, u64, Vec<EventKind>) {
        core.handle_datagram(Instant::ZERO, from, &gossip(vec![update])).unwrap();
        let m = core.member("p2", Instant::ZERO).unwrap();
        (m.state, m.incarnation, events(&mut core).iter().map(|e| e.kind).collect())
    };

    assert_eq!(feed(alive("p2", 2, 2)), (State::Alive, 2, vec![EventKind::Joined]));
    assert_eq!(feed(suspect("p2", 2, "x")), (State::Suspect, 2, vec![EventKind::Suspected]));
    assert_eq!(feed(alive("p2", 3, 2)), (State::Alive, 3, vec![EventKind::Recovered]));
    assert_eq!(feed(dead("p2", 3, "x")), (State::Dead, 3, vec![EventKind::Failed]));
    assert_eq!(feed(left("p2", 3)), (State::Left, 3, vec![EventKind::Left]), "left outranks dead");
    assert_eq!(feed(alive("p2", 1, 2)), (State::Left, 3, vec![]), "an older alive changes nothing");
    assert_eq!(feed(dead("p2", 3, "x")), (State::Left, 3, vec![]), "a failure never follows a leave");
}

#[test]
fn suspicions_are_timed_until_refuted_or_failed_and_a_failed_member_back_alive_is_a_flap() {
    let mut core = me();
    let from = addr(9);
    // Timers run up to each claim (the peers ack), so that this member
    // never finds itself stalled.
    let mut feed = |at: u64, update: Update| {
        let now = Instant::from_millis(at);
        run_until(&mut core, now, acking);
        core.handle_datagram(now, from, &gossip(vec![update])).unwrap();
    };
    feed(0, alive("p2", 2, 2));
    feed(0, suspect("p2", 2, "x"));
    feed(800, alive("p2", 3, 2)); // refuted after 0.8 s
    feed(2000, suspect("p2", 3, "x"));
    feed(2300, dead("p2", 3, "x")); // failed after 0.3 s
    feed(4000, alive("p2", 4, 2)); // back: a flap
    feed(4000, alive("p3", 1, 3));
    feed(5000, dead("p3", 1, "x")); // failed without a suspicion here: not timed
    feed(5000, left("p2", 4));
    feed(6000, alive("p2", 5, 2)); // back after a leave: no flap

    let stats = core.stats();
    let h = &stats.histograms;
    assert_eq!((h.suspicion_refuted.count(), h.suspicion_refuted.sum()), (1, ms(800)));
    assert_eq!((h.suspicion_failed.count(), h.suspicion_failed.sum()), (1, ms(300)));
    assert_eq!(h.suspicion_failed.buckets().find(|(_, n)| *n == 1).unwrap().0, Some(ms(500)));
    assert_eq!(stats.flaps, 1);
}

#[test]
fn a_member_back_after_its_failure_was_forgotten_is_no_flap() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);
    core.handle_datagram(Instant::ZERO, addr(3), &gossip(vec![dead("p2", 0, "p3")])).unwrap();
    // Past dead_retention (LAN: 30 min) the failure is forgotten.
    let later = Instant::from_millis(31 * 60 * 1000);
    run_until(&mut core, later, acking);
    assert!(core.member("p2", later).is_none(), "p2 is forgotten");
    core.handle_datagram(later, addr(2), &gossip(vec![alive("p2", 1, 2)])).unwrap();
    assert_eq!(core.stats().flaps, 0);
}

#[test]
fn every_acked_probe_counts_its_round_trip() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);
    run_until(&mut core, Instant::from_millis(3000), acking);
    let stats = core.stats();
    assert!(stats.probes_sent >= 3, "{stats:?}");
    let rtt = &stats.histograms.probe_rtt;
    // The fake peers answer at once: every round trip is in the first bucket.
    assert_eq!((rtt.count(), rtt.buckets().next().unwrap().1), (stats.probes_sent, stats.probes_sent));
}

#[test]
fn failure_declared_by_another_member_names_it() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    core.handle_datagram(Instant::ZERO, addr(9), &gossip(vec![dead("p2", 0, "x")])).unwrap();

    let ev = events(&mut core);
    assert_eq!(kinds(&ev), vec![(EventKind::Failed, "p2".to_string())]);
    assert_eq!(ev[0].evidence.as_ref().unwrap().declared_by, Some(name("x")));
}

// ---------------------------------------------------------------- probing

#[test]
fn probe_nacked_by_every_intermediary_suspects_at_once_then_fails_after_the_suspicion_timeout() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);

    // The first protocol period: a ping to one peer.
    let (t0, sent) = run_until_sent(&mut core, is_ping);
    let ping = sent.iter().find(|t| is_ping(t)).unwrap();
    let Message::Ping { seq, target } = decoded(ping).message else { unreachable!() };
    let host = (2..=4).find(|&h| name(&peer(h)).hash32() == target).expect("ping targets a peer");
    let target = peer(host);
    assert_eq!(ping.dst, addr(host));

    // No ack within the probe timeout (the maximum: no round trip measured yet):
    // the other two peers are asked to probe it, and it is pinged over a stream.
    let (t1, sent) = run_until_sent(&mut core, |t| matches!(decoded(t).message, Message::PingReq { .. }));
    assert_eq!(t1, t0 + core.config().probe_timeout_max);
    let ping_req = Message::PingReq { seq, target: name(&target), addr: addr(host), nack_after_ms: 300 };
    let mut asked: Vec<SocketAddr> = Vec::new();
    for t in &sent {
        match (t.channel, decoded(t).message) {
            (Channel::Datagram, m) if m == ping_req => asked.push(t.dst),
            (Channel::Stream, m) => assert_eq!((t.dst, m), (addr(host), ping_to(&target, seq))),
            (_, Message::Gossip) => {}
            (c, m) => panic!("unexpected {c:?} {m:?}"),
        }
    }
    let intermediaries: Vec<Name> = asked.iter().map(|a| name(&peer(host_of(*a)))).collect();
    let mut sorted = intermediaries.clone();
    sorted.sort();
    let others: Vec<Name> = (2..=4).filter(|&h| h != host).map(|h| name(&peer(h))).collect();
    assert_eq!(sorted, others, "every other peer is asked");

    // Every intermediary nacks: the target is suspected without waiting out the period.
    core.handle_datagram(t1, asked[0], &packet(Message::Nack { seq }, vec![])).unwrap();
    assert_eq!(events(&mut core), vec![], "one nack of two is not enough");
    core.handle_datagram(t1, asked[1], &packet(Message::Nack { seq }, vec![])).unwrap();
    let probe = ProbeEvidence {
        timeout: core.config().probe_timeout_max,
        indirect: intermediaries.clone(),
        nacks: intermediaries.clone(),
    };
    let suspected_by: Vec<Name> = std::iter::once(name("me")).chain(sorted.iter().cloned()).collect();
    let ev = events(&mut core);
    assert_eq!(kinds(&ev), vec![(EventKind::Suspected, target.clone())]);
    assert_eq!(
        ev[0].evidence,
        Some(Box::new(Evidence {
            suspected_by: suspected_by.clone(),
            confirmations: 2,
            suspicion_duration: Duration::ZERO,
            declared_by: None,
            probe: Some(probe.clone()),
            exit: None,
        }))
    );
    assert_eq!(core.stats().nacks_received, 2);
    assert_eq!(core.local_health(), 0, "every intermediary answered: our own path is fine");
    // The suspect itself is told at once.
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].dst, addr(host));
    assert_eq!(decoded(&sent[0]).updates[0], suspect(&target, 0, "me"));

    // Nobody refutes: failed once the suspicion timeout (four members, two
    // confirmations) has passed, and never sooner than the pause tolerance
    // after the unanswered ping was sent.
    let mut failed = None;
    for _ in 0..10_000 {
        let (now, _) = step(&mut core);
        if let Some(e) = events(&mut core).into_iter().find(|e| e.kind == EventKind::Failed) {
            failed = Some((now, e));
            break;
        }
    }
    let (t2, failed) = failed.expect("the suspect is declared failed");
    let timeout = core.config().suspicion_timeout(4, 2);
    assert_eq!(timeout, Duration::from_secs(1));
    let patience = core.config().pause_tolerance;
    assert_eq!(patience, Duration::from_secs(5));
    assert_eq!(t2, (t1 + timeout).max(t0 + patience));
    assert_eq!(t2, t0 + patience, "a silence of 1 s is within the tolerance: not yet failed");
    assert_eq!(failed.member.name, name(&target));
    assert_eq!(failed.member.state, State::Dead);
    assert_eq!(
        failed.evidence,
        Some(Box::new(Evidence {
            suspected_by,
            confirmations: 2,
            suspicion_duration: t2 - t1,
            declared_by: Some(name("me")),
            probe: Some(probe),
            exit: None,
        }))
    );
    assert_eq!(core.stats().failures_declared, 1);
}

#[test]
fn ping_to_a_suspect_carries_its_suspicion_as_the_first_update() {
    let mut core = me();
    with_peers(&mut core, &[2]);
    core.handle_datagram(Instant::ZERO, addr(3), &gossip(vec![suspect("p2", 0, "p3")])).unwrap();
    assert_eq!(core.member("p2", Instant::ZERO).unwrap().state, State::Suspect);

    // p2 acks without refuting; by its second probe the queue has drained,
    // so the suspicion rides on the ping for the ping's own sake.
    let mut pings = Vec::new();
    for _ in 0..10_000 {
        if pings.len() == 2 {
            break;
        }
        let (now, sent) = step(&mut core);
        for t in sent.iter().filter(|t| is_ping(t)) {
            pings.push((t.dst, decoded(t).updates, core.pending_updates()));
            acking(&mut core, now, t);
        }
    }
    assert_eq!(pings.len(), 2);
    let (dst, updates, _) = &pings[0];
    assert_eq!(
        (*dst, updates[0].clone()),
        (addr(2), suspect("p2", 0, "p3")),
        "the suspect hears of it first"
    );
    assert_eq!(pings[1], (addr(2), vec![suspect("p2", 0, "p3")], 0), "and again, with nothing else queued");
}

#[test]
fn failed_probes_raise_local_health_acks_lower_it_and_it_stretches_the_probe_interval() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);

    // The first ping goes unanswered (and so do the two ping-reqs); every later one is acked at once.
    let mut pings: Vec<(Instant, u32)> = Vec::new();
    let mut acked_target = None;
    for _ in 0..10_000 {
        if pings.len() == 4 {
            break;
        }
        let (now, sent) = step(&mut core);
        for t in sent.iter().filter(|t| is_ping(t)) {
            // The suspect is asked again before its deadline (a ping that
            // carries its own suspicion): not a probe.
            let to = name(&peer(host_of(t.dst)));
            let last_chance =
                decoded(t).updates.iter().any(|u| matches!(u, Update::Suspect { name, .. } if *name == to));
            if !last_chance {
                pings.push((now, core.local_health()));
            }
            if pings.len() > 1 {
                acking_alive(&mut core, now, t);
                acked_target.get_or_insert(t.dst);
            }
        }
    }
    let spacing: Vec<Duration> = pings.windows(2).map(|w| w[1].0 - w[0].0).collect();
    let health: Vec<u32> = pings.iter().map(|p| p.1).collect();
    // Unanswered with two intermediaries silent too: +2. Each ack: -1.
    assert_eq!(health, vec![0, 2, 1, 0]);
    // The period is probe_interval × (local health + 1), fixed when the period starts.
    assert_eq!(spacing, vec![ms(1000), ms(3000), ms(2000)]);
    assert_eq!(core.local_health(), 0);

    let acked = core.members(Instant::ZERO).into_iter().find(|m| Some(m.addr) == acked_target).unwrap();
    assert_eq!(acked.state, State::Alive, "an ack in time keeps the target alive");
    assert!(acked.rtt.is_some(), "and measures its round trip");
}

#[test]
fn an_ack_after_the_probe_timeout_but_within_the_period_still_counts() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);
    let (t0, sent) = run_until_sent(&mut core, is_ping);
    let ping = sent.iter().find(|t| is_ping(t)).unwrap();
    let Message::Ping { seq, .. } = decoded(ping).message else { unreachable!() };
    let (t1, _) = run_until_sent(&mut core, |t| matches!(decoded(t).message, Message::PingReq { .. }));
    assert_eq!(t1, t0 + ms(500));

    // The ack arrives late, relayed by an intermediary or direct: either way
    // before the period ends.
    let late = t0 + ms(900);
    run_until(&mut core, late, silent);
    core.handle_datagram(late, ping.dst, &packet(Message::Ack { seq }, vec![])).unwrap();
    run_until(&mut core, t0 + ms(1_000), silent);

    assert_eq!(core.stats().probes_failed, 0);
    assert_eq!(core.local_health(), 0);
    assert!(events(&mut core).iter().all(|e| e.kind != EventKind::Suspected));
}

#[test]
fn probe_acked_over_the_stream_fallback_keeps_the_target_alive() {
    let mut core = me();
    with_peers(&mut core, &[2]);
    let (_, sent) = run_until_sent(&mut core, is_ping);
    let Message::Ping { seq, .. } = decoded(sent.iter().find(|t| is_ping(t)).unwrap()).message else {
        unreachable!()
    };

    // Datagrams to p2 are lost; the fallback ping goes over a stream, and p2
    // acks on that stream.
    let (now, sent) = run_until_sent(&mut core, |t| t.channel == Channel::Stream);
    let fallback = sent.iter().find(|t| t.channel == Channel::Stream).unwrap();
    assert_eq!((fallback.dst, decoded(fallback).message), (addr(2), ping_to("p2", seq)));
    assert_eq!(core.stats().stream_probes_sent, 1);
    core.handle_stream(now, addr(2), &packet(Message::Ack { seq }, vec![])).unwrap();

    run_until(&mut core, now + ms(1_000), silent);
    assert_eq!(core.member("p2", now).unwrap().state, State::Alive);
    assert_eq!(core.stats().probes_failed, 0);
    assert_eq!(events(&mut core), vec![]);
}

#[test]
fn ping_over_a_stream_is_acked_on_the_stream() {
    let mut core = me();
    core.handle_stream(Instant::ZERO, addr(2), &packet(ping_to("me", 3), vec![])).unwrap();

    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, sent[0].channel), (addr(2), Channel::Stream));
    assert_eq!(decoded(&sent[0]), Packet { message: Message::Ack { seq: 3 }, updates: vec![] });
}

#[test]
fn ping_req_is_relayed_and_the_targets_ack_is_forwarded_with_the_requesters_seq() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);

    let ping_req = Message::PingReq { seq: 40, target: name("p3"), addr: addr(3), nack_after_ms: 300 };
    core.handle_datagram(Instant::ZERO, addr(2), &packet(ping_req, vec![])).unwrap();

    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].dst, addr(3));
    let Message::Ping { seq, target } = decoded(&sent[0]).message else { panic!("{sent:#?}") };
    assert_eq!(target, name("p3").hash32());
    assert_eq!(core.stats().relayed_pings, 1);

    core.handle_datagram(Instant::from_millis(5), addr(3), &packet(Message::Ack { seq }, vec![])).unwrap();
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, decoded(&sent[0]).message), (addr(2), Message::Ack { seq: 40 }));

    let later = run_until(&mut core, Instant::from_millis(2_000), silent);
    assert!(
        later.iter().all(|(_, t)| !matches!(decoded(t).message, Message::Nack { .. })),
        "no nack once the ack was forwarded"
    );
    assert_eq!(core.stats().nacks_sent, 0);
}

#[test]
fn ping_req_with_no_ack_is_nacked_after_nack_after_ms() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);

    let ping_req = Message::PingReq { seq: 40, target: name("p3"), addr: addr(3), nack_after_ms: 300 };
    core.handle_datagram(Instant::ZERO, addr(2), &packet(ping_req, vec![])).unwrap();
    transmits(&mut core);

    let (now, sent) = run_until_sent(&mut core, |t| matches!(decoded(t).message, Message::Nack { .. }));
    assert_eq!(now, Instant::from_millis(300));
    let nacks: Vec<(SocketAddr, Message)> = sent
        .iter()
        .map(|t| (t.dst, decoded(t).message))
        .filter(|(_, m)| matches!(m, Message::Nack { .. }))
        .collect();
    assert_eq!(nacks, vec![(addr(2), Message::Nack { seq: 40 })]);
    assert_eq!(core.stats().nacks_sent, 1);
}

// ---------------------------------------------------------------- metadata and addresses

#[test]
fn metadata_over_512_bytes_is_refused_and_changes_nothing() {
    let mut core = me();
    with_peers(&mut core, &[2]);
    let pending = core.pending_updates();

    assert_eq!(core.set_metadata(Instant::ZERO, vec![b'x'; 513]), Err(MemberError::MetaTooLong { len: 513 }));

    assert_eq!(core.incarnation(), 1);
    assert_eq!(core.local_member(Instant::ZERO).meta, Meta::default());
    assert_eq!(core.pending_updates(), pending);
    assert_eq!(events(&mut core), vec![]);
    assert_eq!(transmits(&mut core), vec![]);
}

#[test]
fn new_metadata_raises_the_incarnation_and_rides_on_the_next_datagram() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    core.set_metadata(Instant::ZERO, b"zone=b".to_vec()).unwrap();

    assert_eq!(core.incarnation(), 2);
    let ev = events(&mut core);
    assert_eq!(kinds(&ev), vec![(EventKind::Updated, "me".to_string())]);
    assert_eq!(ev[0].member.meta.as_bytes(), b"zone=b");
    let (_, sent) = run_until_sent(&mut core, |t| t.channel == Channel::Datagram);
    let expected = Update::Alive {
        name: name("me"),
        incarnation: 2,
        addr: addr(1),
        meta: Meta::new(b"zone=b".to_vec()).unwrap(),
        health: Health::ok(),
    };
    assert_eq!(decoded(&sent[0]).updates[0], expected);
}

#[test]
fn a_member_restarting_at_a_new_address_with_a_higher_incarnation_supersedes_the_old() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    // Alive at 10.0.0.2, restarted at 10.0.0.12: updated in place.
    core.handle_datagram(Instant::ZERO, addr(12), &gossip(vec![alive("p2", 1, 12)])).unwrap();
    let ev = events(&mut core);
    assert_eq!(kinds(&ev), vec![(EventKind::Updated, "p2".to_string())]);
    assert_eq!(ev[0].member.addr, addr(12));
    assert_eq!(core.member("p2", Instant::ZERO).unwrap().addr, addr(12));

    // Dead, then restarted at 10.0.0.22: joins again.
    core.handle_datagram(Instant::ZERO, addr(9), &gossip(vec![dead("p2", 1, "x")])).unwrap();
    assert_eq!(kinds(&events(&mut core)), vec![(EventKind::Failed, "p2".to_string())]);
    core.handle_datagram(Instant::ZERO, addr(22), &gossip(vec![alive("p2", 2, 22)])).unwrap();
    let ev = events(&mut core);
    assert_eq!(kinds(&ev), vec![(EventKind::Joined, "p2".to_string())]);
    assert_eq!(
        (ev[0].member.addr, ev[0].member.state, ev[0].member.incarnation),
        (addr(22), State::Alive, 2)
    );
}

#[test]
fn hearing_of_itself_alive_elsewhere_a_restarted_member_refutes_above_it_and_gossips_at_once() {
    let mut core = me();
    with_peers(&mut core, &[2]);

    // Its own claim echoed back changes nothing.
    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![me_alive(1)])).unwrap();
    assert_eq!((core.incarnation(), core.stats().refutations), (1, 0));

    // Its previous life, at another address and the same incarnation.
    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![alive("me", 1, 99)])).unwrap();
    assert_eq!((core.incarnation(), core.stats().refutations), (2, 1));
    // An older life at a higher incarnation.
    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![alive("me", 6, 99)])).unwrap();
    assert_eq!((core.incarnation(), core.stats().refutations), (7, 2));
    assert_eq!(core.local_member(Instant::ZERO).addr, addr(1));

    let (now, sent) = step(&mut core);
    assert_eq!(now, Instant::ZERO, "refutations are gossiped without waiting for the gossip tick");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, decoded(&sent[0]).updates[0].clone()), (addr(2), me_alive(7)));
}

#[test]
fn dead_and_left_members_are_forgotten_after_dead_retention() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4, 5]);
    core.handle_datagram(Instant::ZERO, addr(9), &gossip(vec![dead("p2", 0, "x"), left("p3", 0)])).unwrap();
    let retention = core.config().dead_retention;
    let names = |core: &Core| -> Vec<(String, State)> {
        core.members(Instant::ZERO).into_iter().map(|m| (m.name.to_string(), m.state)).collect()
    };

    run_until(&mut core, Instant::ZERO + retention - ms(1), acking);
    assert_eq!(
        names(&core),
        vec![
            ("me".to_string(), State::Alive),
            ("p2".to_string(), State::Dead),
            ("p3".to_string(), State::Left),
            ("p4".to_string(), State::Alive),
            ("p5".to_string(), State::Alive),
        ]
    );
    run_until(&mut core, Instant::ZERO + retention, acking);
    assert_eq!(
        names(&core),
        vec![
            ("me".to_string(), State::Alive),
            ("p4".to_string(), State::Alive),
            ("p5".to_string(), State::Alive)
        ]
    );

    // The members that remain are intact: a change of address still finds them.
    events(&mut core);
    let now = Instant::ZERO + retention;
    core.handle_datagram(now, addr(9), &gossip(vec![alive("p4", 1, 14), alive("p5", 1, 15)])).unwrap();
    let ev = events(&mut core);
    let moved: Vec<(EventKind, SocketAddr)> = ev.iter().map(|e| (e.kind, e.member.addr)).collect();
    assert_eq!(moved, vec![(EventKind::Updated, addr(14)), (EventKind::Updated, addr(15))]);
    assert_eq!(core.num_members(), 3);
}

// ---------------------------------------------------------------- dissemination

#[test]
fn no_datagram_exceeds_the_maximum_packet_size_with_300_members_of_large_metadata() {
    let mut core = me();
    let states: Vec<MemberState> = (0..300u16)
        .map(|i| MemberState {
            name: name(&format!("member-{i:03}")),
            incarnation: 0,
            state: State::Alive,
            addr: ([10, 0, 1, 1], 8000 + i).into(),
            // 250 to 512 bytes, so that packets can be packed close to the limit.
            meta: Meta::new(vec![b'm'; 250 + usize::from(i) * 37 % 263]).unwrap(),
            health: Health::ok(),
        })
        .collect();
    let push = packet(Message::PushPull { join: false, takeover: false, reply: false, states }, vec![]);
    core.handle_stream(Instant::ZERO, ([10, 0, 1, 1], 8000).into(), &push).unwrap();
    assert_eq!(core.num_members(), 301);

    let sent = run_until(&mut core, Instant::from_millis(5_000), silent);
    let max = core.config().max_packet_size;
    assert_eq!(max, 1400);
    let datagrams: Vec<&Transmit> =
        sent.iter().map(|(_, t)| t).filter(|t| t.channel == Channel::Datagram).collect();
    assert!(datagrams.len() > 50, "only {} datagrams", datagrams.len());
    for t in &datagrams {
        assert!(t.payload.len() <= max, "{} bytes to {}", t.payload.len(), t.dst);
        codec::decode(&t.payload).unwrap();
    }
    let largest = datagrams.iter().map(|t| t.payload.len()).max().unwrap();
    assert!(largest > 1300, "packets are filled, not sent near-empty: largest {largest}");
}

#[test]
fn each_change_is_sent_exactly_the_retransmit_limit_times() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);
    // Let what was already queued drain (peers ack, so nothing new happens).
    let mut now = Instant::ZERO;
    while core.pending_updates() > 0 {
        assert!(now < Instant::from_millis(60_000), "the queue never drained");
        now += ms(100);
        run_until(&mut core, now, acking);
    }
    events(&mut core);

    core.set_metadata(now, b"v2".to_vec()).unwrap();
    let change = Update::Alive {
        name: name("me"),
        incarnation: 2,
        addr: addr(1),
        meta: Meta::new(b"v2".to_vec()).unwrap(),
        health: Health::ok(),
    };
    let sent = run_until(&mut core, now + ms(10_000), acking);

    let copies: usize = sent
        .iter()
        .filter(|(_, t)| t.channel == Channel::Datagram)
        .map(|(_, t)| decoded(t).updates.iter().filter(|u| **u == change).count())
        .sum();
    assert_eq!(core.num_members(), 4);
    assert_eq!(core.config().retransmit_limit(4), 4);
    assert_eq!(copies, 4);
    assert_eq!(core.pending_updates(), 0);
}

// ---------------------------------------------------------------- malformed input

#[test]
fn malformed_datagrams_are_refused_with_a_typed_error_and_change_nothing() {
    let mut core = me();
    with_peers(&mut core, &[2]);
    let before = core.members(Instant::ZERO);

    let ping = packet(ping_to("me", 7), vec![]);
    let wrong_version = {
        let mut p = ping.clone();
        p[0] = 3;
        p
    };
    // A valid update followed by a truncated one: the whole packet is dropped.
    let half_gossip = {
        let p = gossip(vec![alive("p5", 0, 5), alive("p6", 0, 6)]);
        p[..p.len() - 1].to_vec()
    };
    let push_pull =
        packet(Message::PushPull { join: true, takeover: false, reply: false, states: vec![] }, vec![]);
    let cases: Vec<(&str, Vec<u8>, DecodeError)> = vec![
        ("empty", vec![], DecodeError::Empty),
        ("truncated ping", ping[..7].to_vec(), DecodeError::Truncated("target hash")),
        ("wrong version", wrong_version, DecodeError::UnknownVersion(3)),
        ("oversized", vec![codec::VERSION; 1401], DecodeError::TooLarge { len: 1401, max: 1400 }),
        ("truncated update", half_gossip, DecodeError::Truncated("metadata length")),
        (
            "push-pull over a datagram",
            push_pull,
            DecodeError::Invalid { field: "message type", reason: "push-pull only over a stream" },
        ),
    ];
    for (what, bytes, error) in cases {
        assert_eq!(core.handle_datagram(Instant::ZERO, addr(2), &bytes), Err(error), "{what}");
        assert_eq!(events(&mut core), vec![], "{what}");
        assert_eq!(transmits(&mut core), vec![], "{what}");
    }
    assert_eq!(core.members(Instant::ZERO), before);
}

// ---------------------------------------------------------------- push-pull

#[test]
fn join_sends_one_push_pull_over_a_stream_with_this_member_first() {
    let mut core = me();

    assert_eq!(core.join(Instant::ZERO, &[addr(1), addr(2)]), 1, "its own address is skipped");

    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, sent[0].channel), (addr(2), Channel::Stream));
    let expected =
        Message::PushPull { join: true, takeover: false, reply: false, states: vec![state_of("me", 1, 1)] };
    assert_eq!(decoded(&sent[0]), Packet { message: expected, updates: vec![] });
    assert_eq!(core.stats().push_pulls_sent, 1);
}

#[test]
fn push_pull_request_is_merged_and_answered_with_this_members_table_on_the_stream() {
    let mut core = me();
    let theirs = vec![state_of("p2", 3, 2), state_of("p3", 0, 3), state_of("p4", 1, 4)];

    let request = packet(
        Message::PushPull { join: true, takeover: false, reply: false, states: theirs.clone() },
        vec![],
    );
    core.handle_stream(Instant::ZERO, addr(2), &request).unwrap();

    assert_eq!(
        kinds(&events(&mut core)),
        vec![
            (EventKind::Joined, "p2".to_string()),
            (EventKind::Joined, "p3".to_string()),
            (EventKind::Joined, "p4".to_string()),
        ]
    );
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!((sent[0].dst, sent[0].channel), (addr(2), Channel::Stream));
    let mut ours = vec![state_of("me", 1, 1)];
    ours.extend(theirs);
    let expected = Message::PushPull { join: false, takeover: false, reply: true, states: ours };
    assert_eq!(decoded(&sent[0]), Packet { message: expected, updates: vec![] });
    assert_eq!(core.stats().push_pulls_sent, 0, "a reply is not an exchange this member started");

    // A reply is merged and not answered.
    let reply = packet(
        Message::PushPull { join: false, takeover: false, reply: true, states: vec![state_of("p5", 0, 5)] },
        vec![],
    );
    core.handle_stream(Instant::ZERO, addr(5), &reply).unwrap();
    assert_eq!(kinds(&events(&mut core)), vec![(EventKind::Joined, "p5".to_string())]);
    assert_eq!(transmits(&mut core), vec![]);
}

// ---------------------------------------------------------------- leaving

#[test]
fn a_failed_member_forced_to_leave_is_left_and_gossiped_and_a_live_one_is_untouched() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);
    core.handle_datagram(Instant::ZERO, addr(9), &gossip(vec![dead(&peer(2), 0, "x")])).unwrap();
    let _ = (events(&mut core), transmits(&mut core));

    assert_eq!(core.force_leave(Instant::ZERO, &peer(2)), Some(State::Dead));
    assert_eq!(core.member(&peer(2), Instant::ZERO).unwrap().state, State::Left);
    assert_eq!(kinds(&events(&mut core)), vec![(EventKind::Left, peer(2))]);
    let (at, _) = run_until_sent(&mut core, |t| decoded(t).updates.contains(&left(&peer(2), 0)));
    assert!(at <= Instant::from_millis(1_000), "the leave is gossiped soon: at {at:?}");

    assert_eq!(core.force_leave(Instant::ZERO, &peer(3)), Some(State::Alive));
    assert_eq!(core.member(&peer(3), Instant::ZERO).unwrap().state, State::Alive, "only a failed member");
    assert!(events(&mut core).is_empty());
    assert_eq!(core.force_leave(Instant::ZERO, "nobody"), None);
}

#[test]
fn graceful_leave_gossips_left_at_once_and_stops_probing() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4, 5, 6]);
    assert!(!core.leave_disseminated());

    core.leave(Instant::ZERO);

    assert_eq!(core.members(Instant::ZERO)[0].state, State::Left);
    assert_eq!(kinds(&events(&mut core)), vec![(EventKind::Left, "me".to_string())]);
    let sent = transmits(&mut core);
    let mut told: Vec<SocketAddr> = sent.iter().map(|t| t.dst).collect();
    told.sort();
    told.dedup();
    assert_eq!(told.len(), core.config().gossip_fanout, "{sent:#?}");
    for t in &sent {
        let p = decoded(t);
        assert_eq!(
            (t.channel, p.message, p.updates[0].clone()),
            (Channel::Datagram, Message::Gossip, left("me", 1))
        );
    }
    assert!(!core.leave_disseminated(), "one round is not enough: it goes out the retransmit limit");

    let later = run_until(&mut core, Instant::from_millis(10_000), silent);
    assert!(core.leave_disseminated(), "sent as often as any change");
    let pings: Vec<&Transmit> = later.iter().map(|(_, t)| t).filter(|t| is_ping(t)).collect();
    assert_eq!(pings, Vec::<&Transmit>::new(), "a member that left probes no one");
    assert!(core.leave_disseminated());
}

#[test]
fn a_health_change_after_leaving_does_not_bring_the_member_back() {
    let mut core = me();
    with_peers(&mut core, &[2, 3, 4]);
    // p2 is a real core that knows "me" alive.
    let p2_identity =
        Identity { name: name("p2"), addr: addr(2), meta: Meta::default(), health: Health::ok() };
    let mut p2 = Core::new(Config::lan(), p2_identity, 0, SEED, Instant::ZERO).unwrap();
    p2.handle_datagram(Instant::ZERO, addr(1), &gossip(vec![me_alive(1)])).unwrap();
    events(&mut p2);

    core.leave(Instant::ZERO);
    // Shutting down, the runtime reports the service failing.
    core.set_health(Instant::ZERO, Health::new(HealthStatus::Failing, "shutting down").unwrap());
    let mut sent = transmits(&mut core);
    sent.extend(run_until(&mut core, Instant::from_millis(2_000), silent).into_iter().map(|(_, t)| t));

    for t in sent.iter().filter(|t| t.dst == addr(2) && t.channel == Channel::Datagram) {
        p2.handle_datagram(Instant::from_millis(2_000), addr(1), &t.payload).unwrap();
    }
    assert_eq!(p2.member("me", Instant::from_millis(2_000)).unwrap().state, State::Left);
    let heard: Vec<(EventKind, u64)> = events(&mut p2)
        .iter()
        .filter(|e| e.member.name == name("me"))
        .map(|e| (e.kind, e.member.incarnation))
        .collect();
    assert_eq!(heard, vec![(EventKind::Left, 1)], "a member that left stays left");
}

// ---------------------------------------------------------------- properties

fn proptest_config() -> ProptestConfig {
    ProptestConfig { rng_seed: RngSeed::Fixed(SEED), failure_persistence: None, ..ProptestConfig::default() }
}

/// Members m0..m4; the content of m's alive claim at incarnation i is a
/// function of (m, i) alone, as it is for a real member.
fn alive_claim(m: u8, incarnation: u64) -> Update {
    let status = [HealthStatus::Ok, HealthStatus::Degraded, HealthStatus::Failing][incarnation as usize % 3];
    Update::Alive {
        name: name(&format!("m{m}")),
        incarnation,
        addr: SocketAddr::from(([10, 0, 1, m], 7900 + incarnation as u16)),
        meta: Meta::new(format!("m{m}@{incarnation}").into_bytes()).unwrap(),
        health: Health::new(status, &format!("r{incarnation}")).unwrap(),
    }
}

fn claim() -> impl Strategy<Value = Update> {
    let from = prop::sample::select(vec!["m0", "m1", "m2", "m3", "m4", "me", "x"]);
    (0u8..5, 0u64..5, 0u8..4, from).prop_map(|(m, incarnation, kind, from)| {
        let who = format!("m{m}");
        match kind {
            0 => alive_claim(m, incarnation),
            1 => suspect(&who, incarnation, from),
            2 => dead(&who, incarnation, from),
            _ => left(&who, incarnation),
        }
    })
}

/// A fresh "me" that knows m0..m4 alive at incarnation 0.
fn knowing_five() -> Core {
    let mut core = me();
    let updates = (0..5).map(|m| alive_claim(m, 0)).collect();
    core.handle_datagram(Instant::ZERO, addr(9), &gossip(updates)).unwrap();
    core
}

type View = Vec<(Name, State, u64, SocketAddr, Meta, Health)>;

fn view(core: &Core) -> View {
    core.members(Instant::ZERO)
        .into_iter()
        .map(|m| (m.name, m.state, m.incarnation, m.addr, m.meta, m.health))
        .collect()
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn the_same_claims_in_any_order_give_the_same_view(
        (first, second) in prop::collection::vec(claim(), 0..40)
            .prop_flat_map(|v| (Just(v.clone()).prop_shuffle(), Just(v).prop_shuffle()))
    ) {
        let mut a = knowing_five();
        let mut b = knowing_five();
        for u in first {
            a.handle_datagram(Instant::ZERO, addr(9), &gossip(vec![u])).unwrap();
        }
        for u in second {
            b.handle_datagram(Instant::ZERO, addr(9), &gossip(vec![u])).unwrap();
        }
        prop_assert_eq!(view(&a), view(&b));
    }

    #[test]
    fn arbitrary_datagrams_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1500)) {
        let mut core = me();
        with_peers(&mut core, &[2, 3]);
        let _ = core.handle_datagram(Instant::ZERO, addr(2), &bytes);
        let _ = core.handle_stream(Instant::ZERO, addr(2), &bytes);
        core.handle_timeout(Instant::from_millis(5_000));
    }

    #[test]
    fn datagrams_with_a_valid_version_byte_never_panic(rest in prop::collection::vec(any::<u8>(), 0..1400)) {
        let mut core = me();
        with_peers(&mut core, &[2, 3]);
        let mut bytes = vec![codec::VERSION];
        bytes.extend(rest);
        let _ = core.handle_datagram(Instant::ZERO, addr(2), &bytes);
        let _ = core.handle_stream(Instant::ZERO, addr(2), &bytes);
        core.handle_timeout(Instant::from_millis(5_000));
    }

    #[test]
    fn datagrams_with_a_valid_version_and_message_type_never_panic(
        kind in 1u8..=6,
        rest in prop::collection::vec(any::<u8>(), 0..1400),
    ) {
        let mut core = me();
        with_peers(&mut core, &[2, 3]);
        let mut bytes = vec![codec::VERSION, kind];
        bytes.extend(rest);
        let _ = core.handle_datagram(Instant::ZERO, addr(2), &bytes);
        let _ = core.handle_stream(Instant::ZERO, addr(2), &bytes);
        core.handle_timeout(Instant::from_millis(5_000));
    }
}

#[test]
fn a_ping_req_for_a_member_that_left_is_answered_with_its_leave_not_a_probe() {
    let mut core = me();
    with_peers(&mut core, &[2, 3]);
    core.handle_datagram(Instant::ZERO, addr(2), &gossip(vec![left(&peer(2), 1)])).unwrap();
    transmits(&mut core);
    let req = packet(
        Message::PingReq { seq: 7, target: name(&peer(2)), addr: addr(2), nack_after_ms: 300 },
        vec![],
    );
    core.handle_datagram(Instant::from_millis(5), addr(3), &req).unwrap();
    let sent = transmits(&mut core);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].dst, addr(3), "the requester is told, the departed member is not pinged");
    let p = decoded(&sent[0]);
    assert_eq!((p.message, p.updates[0].clone()), (Message::Gossip, left(&peer(2), 1)));
}

#[test]
fn this_member_is_in_its_state_since_it_last_changed_its_claim_not_since_now() {
    let mut core = me();
    let later = Instant::from_millis(9_000);
    assert_eq!(core.local_member(later).since, Instant::ZERO, "since it started");
    core.set_health(Instant::from_millis(5_000), Health::new(HealthStatus::Degraded, "disk").unwrap());
    assert_eq!(core.local_member(later).since, Instant::from_millis(5_000), "since its last change");
    assert_eq!(core.members(later)[0].since, Instant::from_millis(5_000));
}
