//! A wire between members on loopback, for attack tests: every member
//! advertises a relay address that the wire holds (UDP and TCP, one port),
//! and the wire carries each datagram on from the sender's relay, so that
//! every member sees every other at its relay address. The wire records
//! every datagram, can send any bytes from a member's relay address (an
//! attacker that spoofs that member, or holds its port once it is gone), and
//! can crash a member's host silently: from then on nothing reaches it and
//! nothing comes back, not even a reset, an end of stream or an ICMP error.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// One datagram the wire carried: when, from which member to which, what.
#[derive(Clone, Debug)]
pub struct Carried {
    pub at: Instant,
    pub from: usize,
    pub to: usize,
    pub bytes: Vec<u8>,
}

struct Relay {
    addr: SocketAddr,
    udp: Arc<UdpSocket>,
    real: Mutex<Option<SocketAddr>>,
    crashed: AtomicBool,
}

struct Shared {
    relays: Vec<Relay>,
    log: Mutex<Vec<Carried>>,
    recording: AtomicBool,
}

impl Shared {
    fn member_at(&self, real: SocketAddr) -> Option<usize> {
        self.relays.iter().position(|r| *r.real.lock().unwrap() == Some(real))
    }
}

/// The wire; its tasks stop when it is dropped.
pub struct Wire {
    shared: Arc<Shared>,
    _tasks: JoinSet<()>,
}

impl Wire {
    /// A wire with `n` relays on 127.0.0.1.
    pub async fn new(n: usize) -> Wire {
        let mut relays = Vec::new();
        let mut listeners = Vec::new();
        while relays.len() < n {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            // The same port for TCP; another try if it is taken.
            let Ok(listener) = TcpListener::bind(addr).await else { continue };
            relays.push(Relay {
                addr,
                udp: Arc::new(udp),
                real: Mutex::new(None),
                crashed: AtomicBool::new(false),
            });
            listeners.push(listener);
        }
        let shared =
            Arc::new(Shared { relays, log: Mutex::new(Vec::new()), recording: AtomicBool::new(true) });
        let mut tasks = JoinSet::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            tasks.spawn(udp_relay(shared.clone(), i));
            tasks.spawn(tcp_relay(shared.clone(), i, listener));
        }
        Wire { shared, _tasks: tasks }
    }

    /// Member `i`'s relay address: the one it advertises.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.shared.relays[i].addr
    }

    /// Member `i` runs at `real` (its bound address) from now on.
    pub fn attach(&self, i: usize, real: SocketAddr) {
        let relay = &self.shared.relays[i];
        *relay.real.lock().unwrap() = Some(real);
        relay.crashed.store(false, Ordering::SeqCst);
    }

    /// Member `i`'s host is gone: nothing reaches it, nothing comes back.
    pub fn crash(&self, i: usize) {
        self.shared.relays[i].crashed.store(true, Ordering::SeqCst);
    }

    /// Stops or resumes recording.
    pub fn record(&self, on: bool) {
        self.shared.recording.store(on, Ordering::SeqCst);
    }

    /// Every datagram carried from member `from` to member `to` while recording.
    pub fn carried(&self, from: usize, to: usize) -> Vec<Carried> {
        self.shared.log.lock().unwrap().iter().filter(|c| c.from == from && c.to == to).cloned().collect()
    }

    /// Sends `bytes` to member `to` from member `from`'s relay address.
    pub async fn send_as(&self, from: usize, to: usize, bytes: &[u8]) {
        let Some(dst) = *self.shared.relays[to].real.lock().unwrap() else { return };
        let _ = self.shared.relays[from].udp.send_to(bytes, dst).await;
    }
}

/// Datagrams to member `to`'s relay, from a member's real address: on to
/// `to`, from the sender's relay.
async fn udp_relay(shared: Arc<Shared>, to: usize) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((n, src)) = shared.relays[to].udp.recv_from(&mut buf).await else { continue };
        let Some(from) = shared.member_at(src) else { continue };
        let relay = &shared.relays[to];
        if relay.crashed.load(Ordering::SeqCst) || shared.relays[from].crashed.load(Ordering::SeqCst) {
            continue;
        }
        let Some(dst) = *relay.real.lock().unwrap() else { continue };
        if shared.recording.load(Ordering::SeqCst) {
            let carried = Carried { at: Instant::now(), from, to, bytes: buf[..n].to_vec() };
            shared.log.lock().unwrap().push(carried);
        }
        let _ = shared.relays[from].udp.send_to(&buf[..n], dst).await;
    }
}

/// Connections to member `to`'s relay: on to `to`. Once `to` crashed, a
/// connection is held open and silent instead, as a host that lost power
/// leaves it.
async fn tcp_relay(shared: Arc<Shared>, to: usize, listener: TcpListener) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let shared = shared.clone();
        conns.spawn(async move {
            let relay = &shared.relays[to];
            let real = *relay.real.lock().unwrap();
            let upstream = match real {
                Some(dst) if !relay.crashed.load(Ordering::SeqCst) => TcpStream::connect(dst).await.ok(),
                _ => None,
            };
            let Some(upstream) = upstream else { return hold(client).await };
            let (mut cr, mut cw) = client.into_split();
            let (mut ur, mut uw) = upstream.into_split();
            let up = async move {
                let _ = tokio::io::copy(&mut cr, &mut uw).await;
                let _ = uw.shutdown().await;
            };
            let down = async {
                let _ = tokio::io::copy(&mut ur, &mut cw).await;
                if !relay.crashed.load(Ordering::SeqCst) {
                    let _ = cw.shutdown().await;
                    return;
                }
                std::future::pending::<()>().await;
            };
            tokio::join!(up, down);
        });
    }
}

async fn hold(mut client: TcpStream) {
    let mut sink = [0u8; 4096];
    while let Ok(n) = client.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
    std::future::pending::<()>().await;
}
