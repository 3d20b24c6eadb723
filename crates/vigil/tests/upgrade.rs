//! A rolling upgrade of the envelope, with real members on 127.0.0.1:
//! members of the previous release (`Config::previous_envelope`: version 1
//! only, unmarked) replaced one at a time, each at its own address, by
//! members of this release.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::{drain, periods, wait_until};
use vigil::{Config, EventKind, Key, Keyring, State, Vigil};

fn member(name: &str, bind: SocketAddr, previous: bool, incarnation: u64) -> Config {
    let mut c = Config::new(name, bind)
        .with_protocol(vigil_proto::Config::local())
        .with_keyring(Keyring::new(Key::from_bytes([9; 32]), "prod"));
    c.previous_envelope = previous;
    c.incarnation = Some(incarnation);
    c.join_backoff = (Duration::from_millis(200), Duration::from_secs(1));
    c
}

fn opened(v: &Vigil, version: &str) -> u64 {
    v.metrics().envelopes.iter().find(|(k, _)| *k == version).map_or(0, |(_, n)| *n)
}

async fn all_alive(ms: &[Vigil]) {
    wait_until("all members alive everywhere", Duration::from_secs(20), || {
        ms.iter().all(|m| m.members().iter().filter(|x| x.state == State::Alive).count() == ms.len())
    })
    .await;
}

/// Nobody is suspected while the cluster is mixed, a member of this release
/// joins through a seed of the previous one, and once all are upgraded no
/// member opens a version-1 envelope any more: two members of this release
/// never stay on version 1, though each restarted at an address the others
/// had heard version 1 from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_upgrades_its_envelope_one_member_at_a_time() {
    let n = 3;
    let mut ms = Vec::new();
    for i in 0..n {
        ms.push(
            Vigil::start(member(&format!("m{i}"), "127.0.0.1:0".parse().unwrap(), true, 1)).await.unwrap(),
        );
    }
    let seed = ms[0].local_addr().to_string();
    for m in &ms[1..] {
        m.join(std::slice::from_ref(&seed), Duration::from_secs(10)).await.unwrap();
    }
    all_alive(&ms).await;
    assert_eq!(opened(&ms[0], "current"), 0, "the previous release reads version 1 only");
    let mut events: Vec<_> = ms.iter().map(Vigil::subscribe).collect();
    for i in 0..n {
        let addr = ms[i].bound_addr();
        assert!(ms[i].leave(Duration::from_secs(3)).await.unwrap());
        ms[i].shutdown().await;
        // The port is free once the old member's tasks are gone (soon after).
        let mut tries = 0;
        let upgraded = loop {
            match Vigil::start(member(&format!("m{i}"), addr, false, 100 + i as u64)).await {
                Ok(v) => break v,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        // Through a member that has not been upgraded yet, while there is one.
        let seed = ms[(i + 1) % n].local_addr().to_string();
        upgraded
            .join(&[seed], Duration::from_secs(10))
            .await
            .expect("joins through a seed of either release");
        events[i] = upgraded.subscribe();
        ms[i] = upgraded;
        all_alive(&ms).await;
        periods(&ms.iter().collect::<Vec<_>>(), 2 * n as u64).await;
        for (m, rx) in ms.iter().zip(events.iter_mut()) {
            let bad: Vec<_> = drain(rx)
                .into_iter()
                .filter(|e| matches!(e.kind, EventKind::Suspected | EventKind::Failed))
                .collect();
            assert!(bad.is_empty(), "step {i}: {} saw {bad:#?}", m.name());
        }
    }
    // Every member runs this release: version 1 is over.
    periods(&ms.iter().collect::<Vec<_>>(), 3).await;
    let legacy: Vec<u64> = ms.iter().map(|m| opened(m, "legacy")).collect();
    let current: Vec<u64> = ms.iter().map(|m| opened(m, "current")).collect();
    periods(&ms.iter().collect::<Vec<_>>(), 10).await;
    for (i, m) in ms.iter().enumerate() {
        assert_eq!(opened(m, "legacy"), legacy[i], "{} still opens version 1", m.name());
        assert!(opened(m, "current") > current[i] + 10, "{} opens version 2", m.name());
    }
    for m in &ms {
        m.shutdown().await;
    }
}
