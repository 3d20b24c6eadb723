//! The link: this member's UDP socket as the driver uses it, and the one
//! place where a test build's fault injection (cargo feature `testing`,
//! `fault.rs`) drops, delays or blocks packets: outbound datagrams, outbound
//! stream messages and inbound datagrams. In other builds every packet
//! passes and no fault code is compiled. On Linux the link also reports the
//! ICMP port-unreachable errors its datagrams drew (`icmp.rs`).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;

#[cfg(feature = "testing")]
use crate::fault::{Faults, Injector, Path};

/// The UDP socket, behind the fault injector in test builds.
#[derive(Debug)]
pub(crate) struct Link {
    udp: Arc<UdpSocket>,
    #[cfg(feature = "testing")]
    faults: Injector,
}

impl Link {
    /// A link over `udp` (in test builds, with no faults yet).
    pub(crate) fn new(
        udp: UdpSocket,
        #[cfg_attr(not(feature = "testing"), allow(unused_variables))] seed: u64,
    ) -> Self {
        #[cfg(target_os = "linux")]
        if let Err(e) = udp.local_addr().and_then(|a| crate::icmp::enable(&udp, a)) {
            tracing::warn!("ICMP errors are not reported (IP_RECVERR): {e}");
        }
        Link {
            udp: Arc::new(udp),
            #[cfg(feature = "testing")]
            faults: Injector::new(None, seed),
        }
    }

    /// Replaces the faults applied from now on (`None`: none).
    #[cfg(feature = "testing")]
    pub(crate) fn set_faults(&mut self, faults: Option<Faults>) {
        self.faults.set(faults);
    }

    /// Packets dropped on purpose so far.
    #[cfg(feature = "testing")]
    pub(crate) fn fault_drops(&self) -> u64 {
        self.faults.drops()
    }

    /// The next datagram the link lets in: its length in `buf`, and its source.
    /// Cancel-safe: nothing is lost when the future is dropped.
    pub(crate) async fn recv(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.udp.recv_from(buf).await?;
            if self.lets_in(&from) {
                return Ok((n, from));
            }
        }
    }

    /// The next datagram already queued, without waiting (`None`: none).
    /// Datagrams that fault injection drops are skipped.
    pub(crate) fn try_recv(&mut self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        loop {
            let (n, from) = match self.udp.try_recv_from(buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            };
            if self.lets_in(&from) {
                return Ok(Some((n, from)));
            }
        }
    }

    /// Whether a datagram from `from` gets in (in test builds, faults drop some).
    fn lets_in(
        &mut self,
        #[cfg_attr(not(feature = "testing"), allow(unused_variables))] from: &SocketAddr,
    ) -> bool {
        #[cfg(feature = "testing")]
        return self.faults.decide(from, Path::InboundDatagram).is_some();
        #[cfg(not(feature = "testing"))]
        true
    }

    /// Where the ICMP errors drawn by this link's datagrams come out.
    pub(crate) fn port_errors(&self) -> PortErrors {
        PortErrors { udp: self.udp.clone() }
    }

    /// Sends a datagram (in test builds: maybe later, maybe never). An error
    /// is the socket's, for a datagram sent at once.
    pub(crate) fn send(&mut self, dst: SocketAddr, payload: &[u8]) -> io::Result<()> {
        #[cfg(feature = "testing")]
        match self.faults.decide(&dst, Path::OutboundDatagram) {
            None => return Ok(()),
            Some(delay) if !delay.is_zero() => {
                let udp = self.udp.clone();
                let payload = payload.to_vec();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = udp.send_to(&payload, dst).await;
                });
                return Ok(());
            }
            Some(_) => {}
        }
        match self.udp.try_send_to(payload, dst) {
            Ok(_) => Ok(()),
            // An ICMP error drawn by an earlier datagram (to any address) is
            // the socket's pending error, returned by this send instead of
            // sending it: once cleared by that, the send goes through.
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => self.udp.try_send_to(payload, dst).map(drop),
            Err(e) => Err(e),
        }
    }

    /// Whether a stream message to `dst` may go: `None` drops it, otherwise
    /// it goes after the delay (zero in builds without `testing`).
    pub(crate) fn stream(
        &mut self,
        #[cfg_attr(not(feature = "testing"), allow(unused_variables))] dst: SocketAddr,
    ) -> Option<Duration> {
        #[cfg(feature = "testing")]
        return self.faults.decide(&dst, Path::OutboundStream);
        #[cfg(not(feature = "testing"))]
        Some(Duration::ZERO)
    }
}

/// The ICMP port-unreachable errors drawn by the link's datagrams (Linux;
/// elsewhere none are ever reported).
#[derive(Debug)]
pub(crate) struct PortErrors {
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    udp: Arc<UdpSocket>,
}

impl PortErrors {
    /// The destinations of datagrams that drew a port unreachable since the
    /// last call (possibly none). Cancel-safe.
    pub(crate) async fn next(&self) -> Vec<SocketAddr> {
        #[cfg(target_os = "linux")]
        return crate::icmp::port_unreachable(&self.udp).await;
        #[cfg(not(target_os = "linux"))]
        std::future::pending().await
    }
}
