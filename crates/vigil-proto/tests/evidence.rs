//! Kernel evidence, verification, patience on silence and stalls: one `Core`
//! driven by hand, fake peers at 10.0.0.x:7900, virtual time, a fixed seed.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use vigil_proto::codec::{Message, Update};
use vigil_proto::{
    Channel, Config, Core, Event, EventKind, Health, Identity, Instant, Meta, State, Transmit, Unreachable,
};

/// "me" at 10.0.0.1:7900 on the LAN preset, knowing p2..=p`last`.
fn me_with_peers(last: u8) -> Core {
    let mut core = me();
    with_peers(&mut core, &(2..=last).collect::<Vec<u8>>());
    core
}

/// The confirm requests among `sent`: (intermediary host, seq).
fn confirms(sent: &[Transmit], target: u8) -> Vec<(u8, u32)> {
    sent.iter()
        .filter_map(|t| match decoded(t).message {
            Message::Confirm { seq, target: who, addr: a, .. } => {
                assert_eq!((who, a), (name(&peer(target)), addr(target)));
                Some((host_of(t.dst), seq))
            }
            _ => None,
        })
        .collect()
}

/// Runs timers up to `until`, dropping what they send; returns the events.
fn events_until(core: &mut Core, until: Instant) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(at) = core.poll_timeout()
        && at <= until
    {
        core.handle_timeout(at);
        transmits(core);
        out.extend(events(core));
    }
    out
}

/// As [`events_until`], with every member but `silent_host` up: their
/// datagram pings are acked (a member that hears no one declares no one).
fn events_until_others_answer(core: &mut Core, until: Instant, silent_host: u8) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(at) = core.poll_timeout()
        && at <= until
    {
        core.handle_timeout(at);
        for t in transmits(core) {
            if host_of(t.dst) != silent_host {
                acking(core, at, &t);
            }
        }
        out.extend(events(core));
    }
    out
}

fn at_ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

#[test]
fn a_refused_stream_confirmed_by_an_intermediary_fails_the_member_at_once() {
    let mut core = me_with_peers(5);
    let t = at_ms(10);
    // The runtime's watch stream to p3 ended: p3's kernel closed it.
    core.handle_unreachable(t, addr(3), Unreachable::StreamClosed);
    assert!(events(&mut core).is_empty(), "one member's evidence condemns no one");
    let sent = transmits(&mut core);
    // p3 itself is tried over both paths, and the others are asked to confirm.
    let direct: Vec<Channel> = sent
        .iter()
        .filter(|t| t.dst == addr(3) && matches!(decoded(t).message, Message::Ping { .. }))
        .map(|t| t.channel)
        .collect();
    assert_eq!(direct, vec![Channel::Datagram, Channel::Stream]);
    let asked = confirms(&sent, 3);
    let mut hosts: Vec<u8> = asked.iter().map(|(h, _)| *h).collect();
    hosts.sort();
    assert_eq!(hosts, vec![2, 4, 5]);
    assert_eq!(core.stats().verifications_started, 1);

    // p4's own stream to p3 is refused: confirmed, failed at once.
    let seq = asked[0].1;
    let refused = packet(Message::Refused { seq, how: Unreachable::Refused }, vec![]);
    core.handle_datagram(t + Duration::from_millis(1), addr(4), &refused).unwrap();
    let ev = events(&mut core);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!((ev[0].kind, ev[0].member.name.as_str()), (EventKind::Failed, "p3"));
    let evidence = ev[0].evidence.as_ref().unwrap();
    assert_eq!(evidence.declared_by, Some(name("me")));
    let exit = evidence.exit.as_ref().expect("the kernel evidence is in the event");
    assert_eq!(
        exit.witnesses,
        vec![(name("me"), Unreachable::StreamClosed), (name("p4"), Unreachable::Refused)]
    );
    assert_eq!(exit.to_string(), "process exited: stream closed at me; connection refused at p4");
    assert_eq!(core.member("p3", t).unwrap().state, State::Dead);
    assert_eq!(core.stats().exits_confirmed, 1);
    // Gossiped at once.
    let due = core.poll_timeout().unwrap();
    assert!(due <= t + Duration::from_millis(1), "gossip of the failure waits for nothing");
}

#[test]
fn a_refusal_contradicted_by_an_ack_does_not_fail_the_member() {
    let mut core = me_with_peers(5);
    let t = at_ms(10);
    core.handle_unreachable(t, addr(3), Unreachable::PortUnreachable);
    let sent = transmits(&mut core);
    let seq = confirms(&sent, 3)[0].1;
    // p3 answers the direct ping: it is alive, whatever the ICMP error said.
    core.handle_datagram(t, addr(3), &packet(Message::Ack { seq }, vec![])).unwrap();
    assert_eq!(core.stats().evidence_refuted, 1);
    // A refusal arriving afterwards changes nothing.
    let refused = packet(Message::Refused { seq, how: Unreachable::Refused }, vec![]);
    core.handle_datagram(t, addr(4), &refused).unwrap();
    let ev = events_until(&mut core, t + Duration::from_secs(2));
    assert!(ev.iter().all(|e| e.member.name.as_str() != "p3"), "{ev:#?}");
    assert_eq!(core.member("p3", t).unwrap().state, State::Alive);
}

#[test]
fn evidence_seen_only_by_this_member_becomes_a_patient_suspicion() {
    let mut core = me_with_peers(5);
    let t = at_ms(10);
    core.handle_unreachable(t, addr(3), Unreachable::StreamClosed);
    // Its own stream is refused too: still only one witness.
    core.handle_unreachable(t, addr(3), Unreachable::Refused);
    let sent = transmits(&mut core);
    let asked = confirms(&sent, 3);
    for (host, seq) in &asked {
        core.handle_datagram(t, addr(*host), &packet(Message::Nack { seq: *seq }, vec![])).unwrap();
    }
    // Nobody confirms in time: p3 is suspected, not failed...
    let wait = Config::lan().probe_timeout_max * 2;
    let ev = events_until(&mut core, t + wait);
    let p3: Vec<EventKind> = ev.iter().filter(|e| e.member.name.as_str() == "p3").map(|e| e.kind).collect();
    assert_eq!(p3, vec![EventKind::Suspected]);
    // ...and failed only once the pause tolerance has passed since the evidence.
    let tolerance = Config::lan().pause_tolerance;
    let ev = events_until_others_answer(&mut core, t + tolerance - Duration::from_millis(1), 3);
    assert!(ev.iter().all(|e| e.kind != EventKind::Failed), "{ev:#?}");
    let ev = events_until_others_answer(&mut core, t + tolerance + Duration::from_secs(2), 3);
    let failed = ev.iter().find(|e| e.kind == EventKind::Failed).expect("silent past the tolerance: failed");
    assert_eq!(failed.member.name.as_str(), "p3");
    assert_eq!(failed.evidence.as_ref().unwrap().exit, None, "unconfirmed evidence is not claimed");
}

#[test]
fn an_intermediary_passes_on_strong_evidence_about_the_member_it_probes_for_another() {
    let mut core = me_with_peers(5);
    let t = at_ms(10);
    // p2 asks "me" to confirm that p3 is gone.
    let confirm = Message::Confirm { seq: 77, target: name("p3"), addr: addr(3), nack_after_ms: 500 };
    core.handle_datagram(t, addr(2), &packet(confirm, vec![])).unwrap();
    let sent = transmits(&mut core);
    let tried: Vec<(Channel, SocketAddr)> = sent
        .iter()
        .filter(|t| matches!(decoded(t).message, Message::Ping { .. }))
        .map(|t| (t.channel, t.dst))
        .collect();
    assert_eq!(tried, vec![(Channel::Datagram, addr(3)), (Channel::Stream, addr(3))]);
    // Its stream is refused: p2 is told, and "me" starts no verification of its own.
    core.handle_unreachable(t, addr(3), Unreachable::Refused);
    let sent = transmits(&mut core);
    let answers: Vec<(SocketAddr, Message)> = sent.iter().map(|t| (t.dst, decoded(t).message)).collect();
    assert_eq!(answers, vec![(addr(2), Message::Refused { seq: 77, how: Unreachable::Refused })]);
    assert_eq!(core.stats().verifications_started, 0);
    // No nack follows the refusal.
    let later: Vec<Transmit> = {
        let mut all = Vec::new();
        while let Some(at) = core.poll_timeout()
            && at <= t + Duration::from_secs(1)
        {
            core.handle_timeout(at);
            all.extend(transmits(&mut core));
        }
        all
    };
    assert!(later.iter().all(|t| !matches!(decoded(t).message, Message::Nack { seq: 77 })));
}

#[test]
fn evidence_about_an_unknown_address_or_a_member_already_failed_is_ignored() {
    let mut core = me_with_peers(3);
    core.handle_unreachable(at_ms(1), addr(9), Unreachable::Refused);
    assert!(transmits(&mut core).is_empty());
    let dead = Update::Dead { name: name("p3"), incarnation: 0, from: name("p2") };
    core.handle_datagram(at_ms(1), addr(2), &packet(Message::Gossip, vec![dead])).unwrap();
    transmits(&mut core);
    core.handle_unreachable(at_ms(2), addr(3), Unreachable::Refused);
    assert!(transmits(&mut core).iter().all(|t| !matches!(decoded(t).message, Message::Confirm { .. })));
    assert_eq!(core.stats().verifications_started, 0);
}

#[test]
fn each_member_watches_the_next_members_on_the_ring_so_every_member_is_watched_as_often() {
    // Ten members, each knowing all others: each watches two, and each is
    // watched by two.
    let names: Vec<String> = (1..=10).map(|h| format!("n{h}")).collect();
    let mut watched_by = std::collections::BTreeMap::<SocketAddr, usize>::new();
    for (k, me) in names.iter().enumerate() {
        let host = u8::try_from(k + 1).unwrap();
        let identity =
            Identity { name: name(me), addr: addr(host), meta: Meta::default(), health: Health::ok() };
        let mut core = Core::new(Config::lan(), identity, 1, SEED, Instant::ZERO).unwrap();
        let updates = names
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(j, n)| Update::Alive {
                name: name(n),
                incarnation: 0,
                addr: addr(u8::try_from(j + 1).unwrap()),
                meta: Meta::default(),
                health: Health::ok(),
            })
            .collect();
        let from = addr(if k == 0 { 2 } else { 1 });
        core.handle_datagram(Instant::ZERO, from, &packet(Message::Gossip, updates)).unwrap();
        let watched = core.watched().to_vec();
        assert_eq!(watched.len(), 2, "{me} watches {watched:?}");
        assert!(!watched.contains(&addr(host)), "{me} does not watch itself");
        for a in watched {
            *watched_by.entry(a).or_default() += 1;
        }
    }
    assert_eq!(watched_by.len(), 10, "everyone is watched: {watched_by:?}");
    assert!(watched_by.values().all(|&n| n == 2), "{watched_by:?}");
}

#[test]
fn a_watched_member_that_fails_is_replaced_by_the_next_on_the_ring() {
    let mut core = me_with_peers(6);
    let before = core.watched().to_vec();
    assert_eq!(before.len(), 2);
    let gone = host_of(before[0]);
    let dead = Update::Dead { name: name(&peer(gone)), incarnation: 0, from: name("p2") };
    let from = addr(if gone == 2 { 3 } else { 2 });
    core.handle_datagram(at_ms(1), from, &packet(Message::Gossip, vec![dead])).unwrap();
    let after = core.watched().to_vec();
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&before[0]), "the failed member is no longer watched");
    assert_eq!(after[0], before[1], "the next one moves up");
    core.leave(at_ms(2));
    assert!(core.watched().is_empty(), "a member that leaves watches no one");
}

#[test]
fn a_member_that_stalled_moves_its_timers_on_and_accuses_no_one_of_its_own_stall() {
    let mut core = me_with_peers(3);
    // The first ping goes out.
    let (t0, ping) = loop {
        let at = core.poll_timeout().unwrap();
        core.handle_timeout(at);
        if let Some(p) = transmits(&mut core)
            .into_iter()
            .find(|t| t.channel == Channel::Datagram && matches!(decoded(t).message, Message::Ping { .. }))
        {
            break (at, p);
        }
    };
    let Message::Ping { seq, .. } = decoded(&ping).message else { unreachable!() };
    // Then the process is not scheduled for 3 s. The ack arrived meanwhile and
    // is handed in first on waking, as the runtime drains before timers.
    let woke = t0 + Duration::from_secs(3);
    core.handle_datagram(woke, ping.dst, &packet(Message::Ack { seq }, vec![])).unwrap();
    assert_eq!(core.stats().stalls, 1);
    let (_, by) = core.last_stall().unwrap();
    assert!(by > Duration::from_secs(2), "stalled for {by:?}");
    assert_eq!(core.local_health(), 3, "a stall of 3 periods is a sign of this member's own slowness");
    // Its timers were moved on: nothing is overdue, and nobody is suspected.
    assert!(core.poll_timeout().unwrap() >= woke);
    let ev = events_until(&mut core, woke + Duration::from_secs(2));
    assert!(ev.iter().all(|e| e.kind != EventKind::Suspected), "{ev:#?}");
}

#[test]
fn a_stall_extends_the_suspicions_this_member_holds() {
    let mut core = me_with_peers(4);
    let t = at_ms(100);
    let suspect = Update::Suspect { name: name("p3"), incarnation: 0, from: name("p2") };
    core.handle_datagram(t, addr(2), &packet(Message::Gossip, vec![suspect])).unwrap();
    transmits(&mut core);
    events(&mut core);
    // Not run for 10 s, past every deadline of that suspicion.
    let woke = t + Duration::from_secs(10);
    core.handle_datagram(woke, addr(4), &packet(Message::Gossip, vec![])).unwrap();
    let ev = events_until(&mut core, woke + Duration::from_millis(500));
    assert!(ev.iter().all(|e| e.kind != EventKind::Failed), "the stall counts for no suspicion: {ev:#?}");
    assert_eq!(core.member("p3", woke).unwrap().state, State::Suspect);
}

#[test]
fn a_member_that_leaves_says_so_on_its_watch_streams_and_its_watchers_take_it() {
    let identity = Identity { name: name("p3"), addr: addr(3), meta: Meta::default(), health: Health::ok() };
    let mut leaving = Core::new(Config::lan(), identity, 4, SEED, Instant::ZERO).unwrap();
    assert_eq!(leaving.farewell(), None, "nothing to say before leaving");
    leaving.leave(at_ms(5));
    let farewell = leaving.farewell().expect("a leaving member has a farewell");
    let mut watcher = me_with_peers(5);
    let alive = Update::Alive {
        name: name("p3"),
        incarnation: 4,
        addr: addr(3),
        meta: Meta::default(),
        health: Health::ok(),
    };
    watcher.handle_datagram(at_ms(5), addr(3), &packet(Message::Gossip, vec![alive])).unwrap();
    events(&mut watcher);
    watcher.handle_stream(at_ms(6), addr(3), &farewell).unwrap();
    assert_eq!(watcher.member("p3", at_ms(6)).unwrap().state, State::Left);
    // The stream's end that follows is no evidence against a member that left.
    watcher.handle_unreachable(at_ms(7), addr(3), Unreachable::StreamClosed);
    assert_eq!(watcher.stats().verifications_started, 0);
}

#[test]
fn a_refusal_from_an_intermediary_of_an_ordinary_probe_is_verified_and_confirmed_by_this_member() {
    let mut core = me_with_peers(4);
    // The period's ping goes unanswered: intermediaries are asked.
    let (t0, sent) = run_until_sent(&mut core, is_ping);
    let ping = sent.into_iter().find(is_ping).unwrap();
    let Message::Ping { seq, .. } = decoded(&ping).message else { unreachable!() };
    let target = host_of(ping.dst);
    let (t1, sent) = run_until_sent(&mut core, |t| matches!(decoded(t).message, Message::PingReq { .. }));
    assert!(t1 > t0);
    let helper = sent.iter().find(|t| matches!(decoded(t).message, Message::PingReq { .. })).unwrap().dst;
    // That intermediary's kernel refused its stream: a verification starts...
    let refused = packet(Message::Refused { seq, how: Unreachable::Refused }, vec![]);
    core.handle_datagram(t1, helper, &refused).unwrap();
    assert!(events(&mut core).is_empty(), "one witness is not enough");
    assert_eq!(core.stats().verifications_started, 1);
    transmits(&mut core);
    // ...and this member's own stream, refused too, confirms it.
    core.handle_unreachable(t1, addr(target), Unreachable::Refused);
    let ev = events(&mut core);
    assert_eq!(kinds(&ev), vec![(EventKind::Failed, peer(target))]);
    let exit = ev[0].evidence.as_ref().unwrap().exit.clone().unwrap();
    assert_eq!(
        exit.witnesses,
        vec![(name(&peer(host_of(helper))), Unreachable::Refused), (name("me"), Unreachable::Refused)]
    );
}
