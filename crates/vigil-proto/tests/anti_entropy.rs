//! The periodic anti-entropy exchange by digest, between two cores driven in
//! virtual time (fixed seed: a failure replays exactly): the digest goes in
//! a datagram when it fits, agreeing tables answer with an empty digest,
//! differing ones with their states, and an exchange that draws no answer is
//! started again over a stream.

mod support;

use std::net::SocketAddr;

use support::*;
use vigil_proto::codec::{MemberState, Message, Packet};
use vigil_proto::{Channel, Config, Core, Health, Identity, Instant, Meta, State, Transmit};

/// "me" at 10.0.0.1 and "p2" at 10.0.0.2, each knowing the other (and `also`
/// known to p2 only), without gossip: what they exchange is what the tests
/// look at.
fn pair(also: &[MemberState]) -> [Core; 2] {
    let mut a = me();
    let identity = Identity { name: name("p2"), addr: addr(2), meta: Meta::default(), health: Health::ok() };
    let mut b = Core::new(Config::lan(), identity, 1, 7, Instant::ZERO).unwrap();
    a.preload(Instant::ZERO, [state_of("p2", 1, 2)]);
    b.preload(Instant::ZERO, [state_of("me", 1, 1)].into_iter().chain(also.iter().cloned()));
    events(&mut a);
    events(&mut b);
    [a, b]
}

/// Runs both cores until `until`, delivering what one sends to the other at
/// once unless `lost` says it is lost; pings to 10.0.0.3 are acked from
/// there. Returns every transmit with its sender's host and when it was sent.
fn run(
    cores: &mut [Core; 2],
    until: Instant,
    lost: impl Fn(u8, &Transmit) -> bool,
) -> Vec<(u8, Instant, Transmit)> {
    let mut log = Vec::new();
    for _ in 0..100_000 {
        let due = [0, 1].map(|k| cores[k].poll_timeout().unwrap());
        let k = if due[0] <= due[1] { 0 } else { 1 };
        let now = due[k];
        if now > until {
            return log;
        }
        cores[k].handle_timeout(now);
        let mut pending = vec![k];
        while let Some(k) = pending.pop() {
            while let Some(t) = cores[k].poll_transmit() {
                let from = addr(k as u8 + 1);
                deliver(cores, now, k, from, &t, &lost, &mut pending);
                log.push((k as u8 + 1, now, t));
            }
        }
    }
    panic!("did not reach {until:?} in 100 000 steps");
}

fn deliver(
    cores: &mut [Core; 2],
    now: Instant,
    k: usize,
    from: SocketAddr,
    t: &Transmit,
    lost: &impl Fn(u8, &Transmit) -> bool,
    pending: &mut Vec<usize>,
) {
    if lost(k as u8 + 1, t) {
        return;
    }
    if t.dst == addr(3) {
        if let (Channel::Datagram, Message::Ping { seq, .. }) = (t.channel, decoded(t).message) {
            cores[k].handle_datagram(now, addr(3), &packet(Message::Ack { seq }, vec![])).unwrap();
            pending.push(k);
        }
        return;
    }
    let other = 1 - k;
    assert_eq!(t.dst, addr(other as u8 + 1));
    if t.channel == Channel::Stream {
        cores[other].handle_stream(now, from, &t.payload).unwrap();
    } else {
        cores[other].handle_datagram(now, from, &t.payload).unwrap();
    }
    pending.push(other);
}

fn digests(log: &[(u8, Instant, Transmit)]) -> Vec<(u8, Channel, Message)> {
    log.iter()
        .filter_map(|(from, _, t)| match decoded(t) {
            Packet { message: m @ (Message::Digest { .. } | Message::PushPull { .. }), .. } => {
                Some((*from, t.channel, m))
            }
            _ => None,
        })
        .collect()
}

fn at(secs: u64) -> Instant {
    Instant::ZERO + ms(secs * 1_000)
}

#[test]
fn agreeing_tables_exchange_two_datagrams_the_answer_an_empty_digest() {
    let mut cores = pair(&[]);
    // The first exchange is due within 1.5 push-pull intervals (45 s).
    let log = run(&mut cores, at(50), |_, _| false);

    let d = digests(&log);
    assert!(d.len() >= 2, "{d:#?}");
    let (from, channel, Message::Digest { reply: false, sums, states }) = &d[0] else { panic!("{d:#?}") };
    assert_eq!(*channel, Channel::Datagram);
    assert!(sums.len().is_power_of_two());
    assert!(states.is_empty(), "a digest in a datagram carries no states");
    let answer = Message::Digest { reply: true, sums: vec![], states: vec![] };
    assert_eq!(d[1], (3 - from, Channel::Datagram, answer));
    assert!(log.iter().all(|(_, _, t)| t.channel == Channel::Datagram), "no stream was opened");
    for c in &cores {
        assert_eq!(c.stats().digest_fallbacks, 0);
    }
}

#[test]
fn differing_tables_are_reconciled_by_the_datagram_answer() {
    // p2 knows p3; "me" learns it from the answer to its digest (or from
    // p2's digest, whichever starts first), with no gossip and no stream.
    let mut cores = pair(&[state_of("p3", 4, 3)]);
    let log = run(&mut cores, at(50), |_, _| false);

    let d = digests(&log);
    let carried = d.iter().any(|(from, channel, m)| {
        *from == 2
            && *channel == Channel::Datagram
            && matches!(m, Message::Digest { reply: true, states, .. } if states.iter().any(|s| s.name == name("p3")))
    });
    assert!(carried, "{d:#?}");
    assert_eq!(cores[0].member("p3", at(50)).map(|m| (m.state, m.incarnation)), Some((State::Alive, 4)));
    // (A digest to the fake p3 draws no answer and goes over a stream.)
    let between = |t: &Transmit| t.dst != addr(3);
    assert!(
        log.iter().all(|(_, _, t)| !between(t) || t.channel == Channel::Datagram),
        "no stream was opened between the two: {d:#?}"
    );
}

#[test]
fn a_digest_that_draws_no_answer_goes_again_over_a_stream_within_two_probe_intervals() {
    let mut cores = pair(&[]);
    // Every digest in a datagram is lost (or ignored, as a member of an
    // earlier release ignores it).
    let lost = |_, t: &Transmit| {
        t.channel == Channel::Datagram && matches!(decoded(t).message, Message::Digest { .. })
    };
    let log = run(&mut cores, at(50), lost);

    let sent: Vec<_> =
        log.iter().filter(|(_, _, t)| matches!(decoded(t).message, Message::Digest { .. })).collect();
    let (from, sent_at, first) = sent[0];
    assert_eq!(first.channel, Channel::Datagram);
    let (_, again_at, again) = sent[1..].iter().find(|(f, _, _)| f == from).unwrap();
    assert_eq!((again.channel, again.dst), (Channel::Stream, first.dst));
    // At the first probe tick once a probe interval (1 s) has passed.
    assert!(*again_at > *sent_at && *again_at - *sent_at <= ms(2_000), "{sent_at:?} {again_at:?}");
    // Over a stream it carries the initiator's own state, as before.
    let Message::Digest { reply: false, states, .. } = decoded(again).message else { panic!() };
    assert_eq!(states.first().map(|s| s.name.as_str()), Some(if *from == 1 { "me" } else { "p2" }));
    // The answer comes back over the stream; each lost datagram falls back once.
    let answers: Vec<_> = sent
        .iter()
        .filter(|(f, _, t)| f != from && matches!(decoded(t).message, Message::Digest { reply: true, .. }))
        .collect();
    assert!(!answers.is_empty() && answers.iter().all(|(_, _, t)| t.channel == Channel::Stream));
    let by_datagram = sent.iter().filter(|(_, _, t)| t.channel == Channel::Datagram).count();
    let fallbacks: u64 = cores.iter().map(|c| c.stats().digest_fallbacks).sum();
    assert_eq!(fallbacks, by_datagram as u64, "{sent:#?}");
}

#[test]
fn a_digest_in_a_datagram_from_an_unknown_address_is_answered_over_a_stream() {
    let mut core = me();
    with_peers(&mut core, &[2]);
    let digest = Message::Digest { reply: false, sums: vec![0], states: vec![] };
    core.handle_datagram(Instant::ZERO, addr(9), &packet(digest, vec![])).unwrap();

    let sent = transmits(&mut core);
    let answers: Vec<_> =
        sent.iter().filter(|t| matches!(decoded(t).message, Message::Digest { reply: true, .. })).collect();
    assert_eq!(answers.len(), 1, "{sent:#?}");
    assert_eq!((answers[0].dst, answers[0].channel), (addr(9), Channel::Stream));
}
