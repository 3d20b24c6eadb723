//! The attacks of issue 14 against real members on loopback, one test each
//! (docs/SECURITY.md lists them with their defences). Attackers use other
//! loopback addresses (127.0.0.2 and up) than the members (127.0.0.1), as
//! they would come from other hosts.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use support::wire::Wire;
use support::{drain, failure_window, periods, state_of, wait_until};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use vigil::crypto::Lane;
use vigil::{CommandError, Config, EventKind, Key, KeyOp, Keyring, State, Vigil};

const KEY: [u8; 32] = [42; 32];

/// The attacks run one at a time: each loads the machine, and the members
/// of another test would feel it.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn encrypted(name: &str, bind: &str) -> Config {
    let mut c = Config::new(name, format!("{bind}:0").parse().unwrap())
        .with_protocol(vigil_proto::Config::local())
        .with_keyring(Keyring::new(Key::from_bytes(KEY), "prod"));
    c.join_backoff = (Duration::from_millis(200), Duration::from_secs(1));
    c
}

async fn cluster(names: &[&str]) -> Vec<Vigil> {
    let mut ms = Vec::new();
    for n in names {
        ms.push(Vigil::start(encrypted(n, "127.0.0.1")).await.unwrap());
    }
    join_all(&ms, &ms[0].local_addr().to_string()).await;
    ms
}

async fn join_all(ms: &[Vigil], seed: &str) {
    for m in &ms[1..] {
        m.join(&[seed.to_string()], Duration::from_secs(10)).await.unwrap();
    }
    let n = ms.len();
    wait_until("all members alive everywhere", Duration::from_secs(20), || {
        ms.iter().all(|m| m.members().iter().filter(|x| x.state == State::Alive).count() == n)
    })
    .await;
}

/// A member that other members reach through `wire` at relay `i`.
async fn on_wire(wire: &Wire, i: usize, name: &str) -> Vigil {
    let v = Vigil::start(encrypted(name, "127.0.0.1").with_advertise(wire.addr(i))).await.unwrap();
    wire.attach(i, v.bound_addr());
    v
}

fn rejected(v: &Vigil, reason: &str) -> u64 {
    v.metrics().rejected.iter().filter(|(r, _)| *r == reason).map(|(_, n)| *n).sum()
}

fn suspicions(events: &mut tokio::sync::broadcast::Receiver<vigil::Event>) -> Vec<vigil::Event> {
    drain(events).into_iter().filter(|e| matches!(e.kind, EventKind::Suspected | EventKind::Failed)).collect()
}

async fn shutdown(ms: &[Vigil]) {
    for m in ms {
        m.shutdown().await;
    }
}

/// Attack 1 (replayed acks hide a crash): acks that `b` sent `a` in an
/// earlier run of the cluster (same key, same addresses) are replayed to a
/// later `a` from `b`'s address once `b`'s host is gone, each at the moment
/// it would answer a probe if sequence numbers started where they did then
/// (the attacker is given `a`'s probe count). `b` is declared failed as
/// fast as without the replay: within the failure window, counted in `a`'s
/// own probes. The envelopes are new to the later `a` (another process, an
/// empty replay window): each is accepted once, and answers no probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_acks_from_an_earlier_run_do_not_keep_a_killed_member_alive() {
    let _serial = SERIAL.lock().await;
    let wire = Wire::new(2).await;
    // The earlier run: two members, every probe of `a` goes to `b`.
    let first = vec![on_wire(&wire, 0, "a").await, on_wire(&wire, 1, "b").await];
    join_all(&first, &wire.addr(0).to_string()).await;
    let probes_then = first[0].metrics().protocol.probes_sent;
    periods(&[&first[0]], 40).await;
    let probes_recorded = first[0].metrics().protocol.probes_sent - probes_then;
    shutdown(&first).await;
    // The test picks the acks out with the key; an attacker would go by size.
    let ring = Keyring::new(Key::from_bytes(KEY), "prod");
    let is_ack = |b: &[u8]| {
        ring.open(Lane::Datagram, b).is_ok_and(|p| vigil_proto::codec::message_kind(&p) == Some("ack"))
    };
    let acks: Vec<Vec<u8>> = wire.carried(1, 0).into_iter().map(|c| c.bytes).filter(|b| is_ack(b)).collect();
    assert!(acks.len() as u64 >= probes_recorded / 2, "{} acks for {probes_recorded} probes", acks.len());
    wire.record(false);

    // The later run, at the same relay addresses.
    let later = vec![on_wire(&wire, 0, "a").await, on_wire(&wire, 1, "b").await];
    join_all(&later, &wire.addr(0).to_string()).await;
    let a = &later[0];
    periods(&[a], 3).await;
    // `b`'s host is gone: no reset, no end of stream, no ICMP error.
    wire.crash(1);
    later[1].shutdown().await;
    let start = a.metrics().protocol.probes_sent;
    let crashed = Instant::now();
    let attack = async {
        // The k-th ack answered the k-th probe then: each goes out around
        // the time of the k-th probe now (the count is a snapshot, up to
        // 500 ms old: its neighbours go too).
        let mut sent = 0u64;
        while state_of(a, "b") != Some(State::Dead) && crashed.elapsed() < Duration::from_secs(20) {
            let k = usize::try_from(a.metrics().protocol.probes_sent).unwrap();
            for ack in acks.iter().skip(k.saturating_sub(4)).take(8) {
                wire.send_as(1, 0, ack).await;
                sent += 1;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    };
    let sent = attack.await;
    assert_eq!(
        state_of(a, "b"),
        Some(State::Dead),
        "b kept alive for {:?} by {sent} replayed acks",
        crashed.elapsed()
    );
    let took = a.metrics().protocol.probes_sent - start;
    assert!(took <= failure_window(2) + 2, "b failed after {took} probes of a, {:?}", crashed.elapsed());
    assert!(
        rejected(a, "replayed") > 0,
        "each replayed envelope passed once at most: {:?}",
        a.metrics().rejected
    );
    a.shutdown().await;
}

/// Attack 1, within one run: datagrams that `b` sent `a` are replayed to
/// `a` from `b`'s address while both run. The replay window drops every
/// one before decryption (counted as `replayed`): none reaches the core, so
/// a replayed ping draws no ack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_datagrams_within_a_run_are_dropped_and_draw_no_ack() {
    let _serial = SERIAL.lock().await;
    let wire = Wire::new(2).await;
    let ms = vec![on_wire(&wire, 0, "a").await, on_wire(&wire, 1, "b").await];
    join_all(&ms, &wire.addr(0).to_string()).await;
    periods(&[&ms[0], &ms[1]], 10).await;
    wire.record(false);
    let recorded = wire.carried(1, 0);
    assert!(recorded.len() >= 10, "{}", recorded.len());
    let pings_in = |v: &Vigil| v.metrics().traffic.iter().find(|k| k.kind == "ping").unwrap().packets_in;
    let acks_out = |v: &Vigil| v.metrics().traffic.iter().find(|k| k.kind == "ack").unwrap().packets_out;
    let (replayed_before, pings_before, acks_before) =
        (rejected(&ms[0], "replayed"), pings_in(&ms[0]), acks_out(&ms[0]));
    let probes_before = ms[1].metrics().protocol.probes_sent;
    for round in 0..5 {
        for c in &recorded {
            wire.send_as(1, 0, &c.bytes).await;
        }
        if round % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let sent = 5 * recorded.len() as u64;
    wait_until("every replay counted", Duration::from_secs(5), || {
        rejected(&ms[0], "replayed") - replayed_before >= sent
    })
    .await;
    assert_eq!(rejected(&ms[0], "replayed") - replayed_before, sent);
    // The only pings `a` took in, and answered, are `b`'s own new probes.
    let new_probes = ms[1].metrics().protocol.probes_sent - probes_before + 2;
    assert!(pings_in(&ms[0]) - pings_before <= new_probes, "replayed pings got through");
    assert!(acks_out(&ms[0]) - acks_before <= new_probes, "replayed pings drew acks");
    shutdown(&ms).await;
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

async fn connect_from(ip: IpAddr, dst: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(dst).await
}

/// Attack 2 (memory exhausted before authentication): 256 connections from
/// 64 addresses; half announce a 16 MiB frame and send 1 MiB of junk, half
/// announce a first frame just under 64 KiB and stall before its end. The
/// member's memory grows by less than 64 MiB, and nobody is suspected.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_on_256_connections_cost_little_memory_and_no_suspicion() {
    let _serial = SERIAL.lock().await;
    let ms = cluster(&["a", "b", "c"]).await;
    let target = ms[0].local_addr();
    let mut events: Vec<_> = ms.iter().map(Vigil::subscribe).collect();
    let baseline = rss();
    static JUNK: [u8; 1 << 20] = [0x82; 1 << 20];
    let mut held = Vec::new();
    let mut attack = tokio::task::JoinSet::new();
    for i in 0..256u32 {
        let ip = IpAddr::from([127, 0, 0, 2 + (i % 64) as u8]);
        attack.spawn(async move {
            let Ok(mut s) = connect_from(ip, target).await else { return None };
            let (len, body) =
                if i % 2 == 0 { ((16 << 20) - 1, &JUNK[..]) } else { ((64 << 10) - 1, &JUNK[..60 << 10]) };
            let _ = s.write_all(&u32::to_be_bytes(len)).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), s.write_all(body)).await;
            Some(s)
        });
    }
    let mut peak = 0;
    while let Some(done) = attack.join_next().await {
        held.extend(done.unwrap());
        peak = peak.max(rss());
    }
    // Past the window in which a suspicion caused by the attack would show.
    let all: Vec<&Vigil> = ms.iter().collect();
    let watch = async {
        loop {
            peak = peak.max(rss());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        () = periods(&all, failure_window(3)) => {},
        () = watch => {},
    }
    let grew = peak.saturating_sub(baseline);
    assert!(grew < 64 << 20, "RSS grew by {} MiB", grew >> 20);
    for (m, rx) in ms.iter().zip(events.iter_mut()) {
        let bad = suspicions(rx);
        assert!(bad.is_empty(), "{} saw {bad:#?}", m.name());
    }
    let refused = ms[0].metrics().streams_refused;
    let count = |r: &str| refused.iter().find(|(k, _)| *k == r).unwrap().1;
    // Every oversized announcement was refused before its frame was read:
    // as too large, or at accept when the stalled half held the slots (how
    // the 256 split between the two depends on the scheduler).
    assert!(count("too_large") + count("busy") >= 128, "{refused:?}");
    assert!(count("too_large") >= 32, "{refused:?}");
    drop(held);
    shutdown(&ms).await;
}

/// Attack 4 (slowloris): one address keeps 2 000 idle connections open to
/// the seed, opening again those it closes (at most 200 a second). A new
/// member joins through that seed meanwhile, and a key rotation across the
/// cluster completes at every member.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_from_one_address_stops_neither_joins_nor_key_rotation() {
    let _serial = SERIAL.lock().await;
    let ms = cluster(&["a", "b", "c"]).await;
    let seed = ms[0].local_addr();
    let attacker: IpAddr = "127.0.0.2".parse().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slowloris = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut open: Vec<TcpStream> = Vec::new();
            let mut opened = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                // Those the seed closed (it wrote BUSY, or its deadline passed) go.
                open.retain(|s| {
                    let mut b = [0u8; 8];
                    matches!(s.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                let room = 2000 - open.len().min(2000);
                let batch = if opened == 0 { room } else { room.min(20) };
                for _ in 0..batch {
                    if let Ok(s) = connect_from(attacker, seed).await {
                        open.push(s);
                        opened += 1;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            opened
        }
    });
    // Let it fill whatever it can.
    periods(&ms.iter().collect::<Vec<_>>(), 5).await;
    let late = Vigil::start(encrypted("late", "127.0.0.3")).await.unwrap();
    late.join(&[seed.to_string()], Duration::from_secs(10))
        .await
        .expect("joins through the seed under attack");
    wait_until("the new member alive at b", Duration::from_secs(10), || {
        state_of(&ms[1], "late") == Some(State::Alive)
    })
    .await;
    let new = Key::generate();
    for op in [KeyOp::Install, KeyOp::Use, KeyOp::Remove] {
        let key = if op == KeyOp::Remove { Key::from_bytes(KEY) } else { new.clone() };
        let report = ms[1].key_cluster(op, key).await.unwrap();
        assert!(report.complete(), "{op:?}: {report:?}");
        assert_eq!(report.applied.len(), 3, "{op:?}: {report:?}");
        periods(&[&ms[0], &ms[1]], 2).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let opened = slowloris.await.unwrap();
    assert!(opened >= 2000, "the attacker opened {opened}");
    let refused = ms[0].metrics().streams_refused;
    let per_ip = refused.iter().find(|(k, _)| *k == "per_ip").unwrap().1;
    assert!(per_ip >= 1000, "{refused:?}");
    late.shutdown().await;
    shutdown(&ms).await;
}

/// Attack 5 (two agents with one name flip-flop): a second process named
/// like a live member joins. It is refused with an error naming the
/// conflict and stops; the live member keeps its entry, and nobody sees
/// its entry change. With `takeover`, a process replaces an entry whose
/// process is gone but not yet declared failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_member_with_a_live_name_is_refused_and_nothing_flip_flops() {
    let _serial = SERIAL.lock().await;
    let ms = cluster(&["a", "b", "c"]).await;
    let seed = ms[0].local_addr().to_string();
    let mut events: Vec<_> = ms.iter().map(Vigil::subscribe).collect();
    let twin = Vigil::start(encrypted("b", "127.0.0.1")).await.unwrap();
    let err = twin.join(std::slice::from_ref(&seed), Duration::from_secs(5)).await.unwrap_err();
    let live_at = ms[1].local_addr();
    assert!(
        matches!(&err, CommandError::NameConflict { name, live_at: at } if name == "b" && *at == live_at),
        "{err}"
    );
    assert!(err.to_string().contains(&format!("is taken: a live member has it at {live_at}")), "{err}");
    assert_eq!(twin.name_taken(), Some(live_at));
    assert!(matches!(twin.members_now().await, Err(CommandError::Stopped)), "the twin stopped");
    periods(&ms.iter().collect::<Vec<_>>(), failure_window(3)).await;
    for (m, rx) in ms.iter().zip(events.iter_mut()) {
        assert_eq!(m.member("b").unwrap().addr, live_at, "{}", m.name());
        let about_b: Vec<_> = drain(rx).into_iter().filter(|e| e.member.name.as_str() == "b").collect();
        assert!(about_b.is_empty(), "{} saw {about_b:#?}", m.name());
    }
    assert!(ms[0].metrics().protocol.name_conflicts >= 1);
    twin.shutdown().await;

    // `b` is gone (not yet declared failed); its replacement takes over.
    ms[1].shutdown().await;
    let mut config = encrypted("b", "127.0.0.1");
    config.takeover = true;
    let replacement = Vigil::start(config).await.unwrap();
    replacement.join(&[seed], Duration::from_secs(5)).await.unwrap();
    let new_at = replacement.local_addr();
    wait_until("b replaced everywhere", Duration::from_secs(10), || {
        [&ms[0], &ms[2]]
            .iter()
            .all(|m| m.member("b").is_some_and(|b| b.addr == new_at && b.state == State::Alive))
    })
    .await;
    replacement.shutdown().await;
    ms[0].shutdown().await;
    ms[2].shutdown().await;
}
