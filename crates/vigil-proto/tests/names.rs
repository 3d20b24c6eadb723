//! One name, one member: a second process that claims a live member's name
//! is refused at its join, or, if both are running, one of them yields; the
//! live member keeps its entry and nobody's view flips between the two.

mod support;

use std::net::SocketAddr;

use support::*;
use vigil_proto::codec::{Message, Update};
use vigil_proto::{Channel, Config, Core, Health, Identity, Instant, Meta, NameConflict, State};

/// A member named `who` at 10.0.0.`host`, at `incarnation`.
fn member(who: &str, host: u8, incarnation: u64) -> Core {
    let identity =
        Identity { name: name(who), addr: addr(host), meta: Meta::default(), health: Health::ok() };
    Core::new(Config::lan(), identity, incarnation, SEED + u64::from(host), Instant::ZERO).unwrap()
}

/// Hands every stream transmit `from` (at `from_addr`) sends to `to`, and
/// returns the datagrams it sent.
fn deliver_streams(now: Instant, from: &mut Core, from_addr: SocketAddr, to: &mut Core) -> Vec<Vec<u8>> {
    let mut datagrams = Vec::new();
    for t in transmits(from) {
        match t.channel {
            Channel::Stream => to.handle_stream(now, from_addr, &t.payload).unwrap(),
            _ => datagrams.push(t.payload),
        }
    }
    datagrams
}

/// A seed at 10.0.0.2 that knows "x" alive at 10.0.0.5.
fn seed_knowing_x() -> Core {
    let mut seed = member("seed", 2, 1);
    let x = Update::Alive {
        name: name("x"),
        incarnation: 100,
        addr: addr(5),
        meta: Meta::default(),
        health: Health::ok(),
    };
    seed.handle_datagram(Instant::ZERO, addr(5), &gossip(vec![x])).unwrap();
    events(&mut seed);
    transmits(&mut seed);
    seed
}

#[test]
fn a_join_under_the_name_of_a_live_member_is_refused_and_the_live_member_keeps_its_entry() {
    let mut seed = seed_knowing_x();
    // A second process calls itself "x", at 10.0.0.6, with a newer incarnation.
    let mut newcomer = member("x", 6, 200);
    let t = Instant::from_millis(10);
    assert_eq!(newcomer.join(t, &[addr(2)]), 1);
    deliver_streams(t, &mut newcomer, addr(6), &mut seed);
    assert_eq!(seed.member("x", t).unwrap().addr, addr(5), "the live member keeps its entry");
    assert!(events(&mut seed).is_empty(), "no `updated` for the refused claim");
    let conflict = NameConflict { name: name("x"), kept: addr(5), refused: addr(6) };
    assert_eq!(seed.poll_conflict(), Some(conflict.clone()));
    assert_eq!(seed.stats().name_conflicts, 1);
    // The answer shows the newcomer the live member: it stops, merging nothing.
    deliver_streams(t, &mut seed, addr(2), &mut newcomer);
    assert_eq!(newcomer.yielded(), Some(addr(5)));
    assert_eq!(newcomer.poll_conflict(), Some(conflict));
    assert_eq!(newcomer.num_members(), 1, "it learned nobody");
    assert!(events(&mut newcomer).is_empty());
    // And it does nothing more.
    newcomer.handle_timeout(Instant::from_millis(60_000));
    assert!(transmits(&mut newcomer).is_empty());
}

#[test]
fn a_join_that_takes_over_replaces_the_entry() {
    let mut seed = seed_knowing_x();
    let mut newcomer = member("x", 6, 200);
    newcomer.take_over();
    let t = Instant::from_millis(10);
    newcomer.join(t, &[addr(2)]);
    deliver_streams(t, &mut newcomer, addr(6), &mut seed);
    assert_eq!(seed.member("x", t).unwrap().addr, addr(6));
    deliver_streams(t, &mut seed, addr(2), &mut newcomer);
    assert_eq!(newcomer.yielded(), None);
    assert_eq!(newcomer.member("seed", t).unwrap().state, State::Alive);
}

#[test]
fn a_member_restarted_at_a_new_address_joins_once_its_old_entry_failed() {
    let mut seed = seed_knowing_x();
    let dead = Update::Dead { name: name("x"), incarnation: 100, from: name("seed") };
    seed.handle_datagram(Instant::ZERO, addr(3), &gossip(vec![dead])).unwrap();
    let mut restarted = member("x", 6, 200);
    let t = Instant::from_millis(10);
    restarted.join(t, &[addr(2)]);
    deliver_streams(t, &mut restarted, addr(6), &mut seed);
    deliver_streams(t, &mut seed, addr(2), &mut restarted);
    assert_eq!(restarted.yielded(), None);
    assert_eq!(seed.member("x", t).unwrap().addr, addr(6));
    assert_eq!(seed.member("x", t).unwrap().state, State::Alive);
}

#[test]
fn two_running_members_with_one_name_settle_on_one_within_a_few_refutations() {
    // Both joined different parts of the cluster before meeting.
    let mut low = member("x", 5, 100);
    let mut high = member("x", 6, 100);
    let mut now = Instant::from_millis(1);
    let claim = |c: &Core, now| {
        let m = c.local_member(now);
        Update::Alive {
            name: m.name,
            incarnation: m.incarnation,
            addr: m.addr,
            meta: m.meta,
            health: m.health,
        }
    };
    let mut flips = 0;
    for _ in 0..10 {
        if low.yielded().is_some() || high.yielded().is_some() {
            break;
        }
        // Each hears the other's current claim, relayed by some member.
        let to_high = claim(&low, now);
        high.handle_datagram(now, addr(9), &gossip(vec![to_high])).unwrap();
        let to_low = claim(&high, now);
        low.handle_datagram(now, addr(9), &gossip(vec![to_low])).unwrap();
        flips += 1;
        now += std::time::Duration::from_millis(100);
    }
    assert_eq!(high.yielded(), Some(addr(5)), "the process at the higher address yields");
    assert_eq!(low.yielded(), None);
    assert!(flips <= 3, "settled after {flips} rounds");
    let c = std::iter::from_fn(|| high.poll_conflict()).last().unwrap();
    assert_eq!((c.kept, c.refused), (addr(5), addr(6)));
}

#[test]
fn a_join_refused_says_so_without_the_joiner_merging_the_cluster() {
    // The seed's answer holds other members too: the joiner learns none of them.
    let mut seed = seed_knowing_x();
    let other = Update::Alive {
        name: name("y"),
        incarnation: 1,
        addr: addr(7),
        meta: Meta::default(),
        health: Health::ok(),
    };
    seed.handle_datagram(Instant::ZERO, addr(7), &gossip(vec![other])).unwrap();
    transmits(&mut seed);
    let mut newcomer = member("x", 6, 200);
    let t = Instant::from_millis(10);
    newcomer.join(t, &[addr(2)]);
    deliver_streams(t, &mut newcomer, addr(6), &mut seed);
    let reply: Vec<_> = transmits(&mut seed).into_iter().filter(|t| t.channel == Channel::Stream).collect();
    assert_eq!(reply.len(), 1);
    match decoded(&reply[0]).message {
        Message::PushPull { reply: true, states, .. } => {
            assert!(states.iter().any(|s| s.name == name("x") && s.addr == addr(5)));
        }
        m => panic!("{m:?}"),
    }
    newcomer.handle_stream(t, addr(2), &reply[0].payload).unwrap();
    assert!(newcomer.member("y", t).is_none());
}
