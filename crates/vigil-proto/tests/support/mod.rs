//! Driving one `Core` by hand, for the exact-output tests: a core called
//! "me" at 10.0.0.1:7900, fake peers `p{host}` at 10.0.0.`host`:7900 that send
//! it hand-made packets, and timers run one by one. Virtual time moves only
//! when a test moves it; every core uses the same fixed seed.
//!
//! Shared by several test files, each of which uses only some helpers.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use vigil_proto::codec::{self, MemberState, Message, Packet, Update};
use vigil_proto::{
    Channel, Config, Core, Event, EventKind, Health, Identity, Instant, Meta, Name, State, Transmit,
};

/// The seed of every core.
pub(crate) const SEED: u64 = 7;

pub(crate) fn name(s: &str) -> Name {
    Name::new(s).unwrap()
}

/// 10.0.0.`host`:7900.
pub(crate) fn addr(host: u8) -> SocketAddr {
    ([10, 0, 0, host], 7900).into()
}

/// The last byte of a 10.0.0.x address.
pub(crate) fn host_of(a: SocketAddr) -> u8 {
    match a.ip() {
        IpAddr::V4(ip) => ip.octets()[3],
        IpAddr::V6(_) => panic!("fake peers are IPv4"),
    }
}

/// The fake peer at 10.0.0.`host` is called `p{host}`.
pub(crate) fn peer(host: u8) -> String {
    format!("p{host}")
}

pub(crate) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// This member, "me" at 10.0.0.1:7900 with no metadata, on the LAN preset.
pub(crate) fn me_at(incarnation: u64) -> Core {
    let identity = Identity { name: name("me"), addr: addr(1), meta: Meta::default(), health: Health::ok() };
    Core::new(Config::lan(), identity, incarnation, SEED, Instant::ZERO).unwrap()
}

pub(crate) fn me() -> Core {
    me_at(1)
}

pub(crate) fn alive(who: &str, incarnation: u64, host: u8) -> Update {
    Update::Alive {
        name: name(who),
        incarnation,
        addr: addr(host),
        meta: Meta::default(),
        health: Health::ok(),
    }
}

/// What "me" says of itself at `incarnation`.
pub(crate) fn me_alive(incarnation: u64) -> Update {
    alive("me", incarnation, 1)
}

pub(crate) fn suspect(who: &str, incarnation: u64, from: &str) -> Update {
    Update::Suspect { name: name(who), incarnation, from: name(from) }
}

pub(crate) fn dead(who: &str, incarnation: u64, from: &str) -> Update {
    Update::Dead { name: name(who), incarnation, from: name(from) }
}

pub(crate) fn left(who: &str, incarnation: u64) -> Update {
    Update::Left { name: name(who), incarnation }
}

pub(crate) fn packet(message: Message, updates: Vec<Update>) -> Vec<u8> {
    codec::encode(&Packet { message, updates })
}

pub(crate) fn gossip(updates: Vec<Update>) -> Vec<u8> {
    packet(Message::Gossip, updates)
}

pub(crate) fn ping_to(who: &str, seq: u32) -> Message {
    Message::Ping { seq, target: name(who).hash32() }
}

pub(crate) fn transmits(core: &mut Core) -> Vec<Transmit> {
    std::iter::from_fn(|| core.poll_transmit()).collect()
}

pub(crate) fn events(core: &mut Core) -> Vec<Event> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// Each event as (kind, member name).
pub(crate) fn kinds(events: &[Event]) -> Vec<(EventKind, String)> {
    events.iter().map(|e| (e.kind, e.member.name.to_string())).collect()
}

pub(crate) fn decoded(t: &Transmit) -> Packet {
    codec::decode(&t.payload).unwrap()
}

pub(crate) fn is_ping(t: &Transmit) -> bool {
    t.channel == Channel::Datagram && matches!(decoded(t).message, Message::Ping { .. })
}

/// Tells `core`, by one gossip datagram from the first of them, of the peers
/// `p{host}` at 10.0.0.`host`, all alive at incarnation 0; drains what followed.
pub(crate) fn with_peers(core: &mut Core, hosts: &[u8]) {
    let updates = hosts.iter().map(|&h| alive(&peer(h), 0, h)).collect();
    core.handle_datagram(Instant::ZERO, addr(hosts[0]), &gossip(updates)).unwrap();
    events(core);
    transmits(core);
}

/// Runs the next due timer; returns its instant and what it sent.
pub(crate) fn step(core: &mut Core) -> (Instant, Vec<Transmit>) {
    let now = core.poll_timeout().expect("a core always has a timer");
    core.handle_timeout(now);
    (now, transmits(core))
}

/// Runs timers until one sends a transmit `wanted` picks; returns that instant
/// and everything sent then.
pub(crate) fn run_until_sent(
    core: &mut Core,
    wanted: impl Fn(&Transmit) -> bool,
) -> (Instant, Vec<Transmit>) {
    for _ in 0..10_000 {
        let (now, sent) = step(core);
        if sent.iter().any(&wanted) {
            return (now, sent);
        }
    }
    panic!("nothing wanted was sent in 10 000 timer steps");
}

/// Runs timers due up to `until`, handing each transmit to `answer` (which may
/// reply by calling the core) and returning them all with when they were sent.
pub(crate) fn run_until(
    core: &mut Core,
    until: Instant,
    mut answer: impl FnMut(&mut Core, Instant, &Transmit),
) -> Vec<(Instant, Transmit)> {
    let mut sent = Vec::new();
    while let Some(now) = core.poll_timeout()
        && now <= until
    {
        core.handle_timeout(now);
        while let Some(t) = core.poll_transmit() {
            answer(core, now, &t);
            sent.push((now, t));
        }
    }
    sent
}

/// Fake peers that never answer.
pub(crate) fn silent(_: &mut Core, _: Instant, _: &Transmit) {}

/// Fake peers that ack every datagram ping at once.
pub(crate) fn acking(core: &mut Core, now: Instant, t: &Transmit) {
    if t.channel == Channel::Datagram
        && let Message::Ping { seq, .. } = decoded(t).message
    {
        core.handle_datagram(now, t.dst, &packet(Message::Ack { seq }, vec![])).unwrap();
    }
}

/// Answers a datagram ping as a live peer does: an ack, carrying a
/// refutation if the ping carried a suspicion of that peer.
pub(crate) fn acking_alive(core: &mut Core, now: Instant, t: &Transmit) {
    let p = decoded(t);
    if t.channel == Channel::Datagram
        && let Message::Ping { seq, .. } = p.message
    {
        // A live peer refutes a suspicion of itself that rides the ping.
        let host = host_of(t.dst);
        let refutation = p.updates.iter().find_map(|u| match u {
            Update::Suspect { name, incarnation, .. } if name.as_str() == peer(host) => {
                Some(alive(&peer(host), incarnation + 1, host))
            }
            _ => None,
        });
        core.handle_datagram(now, t.dst, &packet(Message::Ack { seq }, refutation.into_iter().collect()))
            .unwrap();
    }
}

/// `who` at 10.0.0.`host`, alive at `incarnation`, as push-pull carries it.
pub(crate) fn state_of(who: &str, incarnation: u64, host: u8) -> MemberState {
    MemberState {
        name: name(who),
        incarnation,
        state: State::Alive,
        addr: addr(host),
        meta: Meta::default(),
        health: Health::ok(),
    }
}
