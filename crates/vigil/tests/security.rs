//! Encryption, authentication, key rotation and hostile input, with real
//! members on 127.0.0.1.

mod support;

use std::time::Duration;

use support::{drain, failure_window, periods, suspicion_window, wait_until};
use vigil::{Config, EventKind, Key, KeyOp, Keyring, State, Vigil};

fn member(name: &str, key: &Key, cluster: &str) -> Config {
    Config::new(name, "127.0.0.1:0".parse().unwrap())
        .with_protocol(vigil_proto::Config::local())
        .with_keyring(Keyring::new(key.clone(), cluster))
}

fn rejected(v: &Vigil, reason: &str) -> u64 {
    v.metrics().rejected.iter().filter(|(r, _)| *r == reason).map(|(_, n)| *n).sum()
}

async fn encrypted_cluster(n: usize, key: &Key) -> Vec<Vigil> {
    let mut ms = Vec::new();
    for i in 0..n {
        ms.push(Vigil::start(member(&format!("s{i}"), key, "prod")).await.unwrap());
    }
    let seed = vec![ms[0].local_addr().to_string()];
    for m in &ms[1..] {
        m.join(&seed, Duration::from_secs(10)).await.unwrap();
    }
    wait_until("all members alive everywhere", Duration::from_secs(20), || {
        ms.iter().all(|m| m.members().iter().filter(|x| x.state == State::Alive).count() == n)
    })
    .await;
    ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_another_key_or_cluster_name_never_joins() {
    let key = Key::generate();
    let a = Vigil::start(member("a", &key, "prod")).await.unwrap();
    let seed = vec![a.local_addr().to_string()];
    let wrong_key = Vigil::start(member("intruder", &Key::generate(), "prod")).await.unwrap();
    let wrong_cluster = Vigil::start(member("neighbour", &key, "staging")).await.unwrap();
    let plaintext = Vigil::start(
        Config::new("plain", "127.0.0.1:0".parse().unwrap()).with_protocol(vigil_proto::Config::local()),
    )
    .await
    .unwrap();
    // The three try at the same time, each as long as before.
    let limit = Duration::from_millis(1500);
    let (r1, r2, r3) = tokio::join!(
        wrong_key.join(&seed, limit),
        wrong_cluster.join(&seed, limit),
        plaintext.join(&seed, limit)
    );
    for (m, r) in [(&wrong_key, r1), (&wrong_cluster, r2), (&plaintext, r3)] {
        // The joiner learns why: the seed read its join and refused it.
        let err = r.expect_err(&format!("{} must not join", m.name())).to_string();
        assert_eq!(err, format!("seed {} rejected us: wrong key or cluster name", seed[0]), "{}", m.name());
    }
    assert_eq!(a.members().len(), 1, "nobody appears in a's view: {:?}", a.members());
    wait_until("the refusals are counted", Duration::from_secs(5), || {
        rejected(&a, "auth") > 0 && rejected(&a, "unencrypted") > 0
    })
    .await;
    for m in [&a, &wrong_key, &wrong_cluster, &plaintext] {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_across_a_running_cluster_without_suspicion() {
    let old = Key::generate();
    let ms = encrypted_cluster(5, &old).await;
    let all: Vec<&Vigil> = ms.iter().collect();
    let mut events: Vec<_> = ms.iter().map(Vigil::subscribe).collect();
    let new = Key::generate();
    for op in [KeyOp::Install, KeyOp::Use, KeyOp::Remove] {
        let key = if op == KeyOp::Remove { old.clone() } else { new.clone() };
        let report = ms[1].key_cluster(op, key).await.unwrap();
        assert!(report.complete(), "{op:?}: {report:?}");
        assert_eq!(report.applied.len(), 4, "{op:?}: {report:?}");
        // Every member probes again under the new keyring before the next step.
        periods(&all, 2).await;
    }
    for m in &ms {
        assert_eq!(m.keys().await.unwrap(), Some(vec![new.fingerprint()]), "{}", m.name());
    }
    // Keep running on the new key for as long as a suspicion would take to
    // show; meanwhile, the old key no longer opens the door.
    let late = Vigil::start(member("late", &old, "prod")).await.unwrap();
    let seed = [ms[0].local_addr().to_string()];
    let (late_join, ()) =
        tokio::join!(late.join(&seed, Duration::from_millis(1500)), periods(&all, suspicion_window(5)));
    assert!(late_join.is_err());
    late.shutdown().await;
    for (m, rx) in ms.iter().zip(events.iter_mut()) {
        let bad: Vec<_> = drain(rx)
            .into_iter()
            .filter(|e| matches!(e.kind, EventKind::Suspected | EventKind::Failed))
            .collect();
        assert!(bad.is_empty(), "{} saw {bad:#?}", m.name());
    }
    // A refused operation says why.
    let err = ms[0].key_local(KeyOp::Remove, new.clone()).await.unwrap_err();
    assert!(err.to_string().contains("primary"), "{err}");
    for m in &ms {
        m.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_is_counted_and_the_member_keeps_answering() {
    let key = Key::generate();
    let ms = encrypted_cluster(3, &key).await;
    let target = ms[0].local_addr();
    let mut watch = ms[1].subscribe();
    let before: u64 = ms[0].metrics().rejected.iter().map(|(_, n)| n).sum();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut sent = 0u64;
    for round in 0..100 {
        for i in 0..1000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 1400) as usize + 1;
            let mut pkt: Vec<u8> = (0..len).map(|j| (x >> (j % 56)) as u8).collect();
            if i % 3 == 0 {
                pkt[0] = vigil::crypto::ENVELOPE_VERSION; // looks encrypted, fails authentication
            }
            if sock.send_to(&pkt, target).await.is_ok() {
                sent += 1;
            }
        }
        if round % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The kernel may drop some when the socket buffer is full; the rest are counted.
    let rejected_since = || ms[0].metrics().rejected.iter().map(|(_, n)| n).sum::<u64>() - before;
    wait_until("the flood is counted", Duration::from_secs(10), || rejected_since() >= sent * 8 / 10).await;
    // Past the window in which a failure caused by the flood would show.
    periods(&ms.iter().collect::<Vec<_>>(), failure_window(3)).await;
    for m in &ms {
        assert_eq!(m.members().iter().filter(|x| x.state == State::Alive).count(), 3, "{}", m.name());
    }
    let bad: Vec<_> = drain(&mut watch).into_iter().filter(|e| e.kind == EventKind::Failed).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    for m in &ms {
        m.shutdown().await;
    }
}
