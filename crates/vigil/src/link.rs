//! The link: this member's UDP socket as the driver uses it, and the one
//! place where a test build's fault injection (cargo feature `testing`,
//! `fault.rs`) drops, delays or blocks packets: outbound datagrams, outbound
//! stream messages and inbound datagrams. In other builds every packet
//! passes and no fault code is compiled.

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
        #[cfg(feature = "testing")]
        loop {
            let (n, from) = self.udp.recv_from(buf).await?;
            if self.faults.decide(&from, Path::InboundDatagram).is_some() {
                return Ok((n, from));
            }
        }
        #[cfg(not(feature = "testing"))]
        self.udp.recv_from(buf).await
    }

    /// Sends a datagram (in test builds: maybe later, maybe never). An error
    /// is the socket's, for a datagram sent at once.
    pub(crate) fn send(&mut self, dst: SocketAddr, payload: Vec<u8>) -> io::Result<()> {
        #[cfg(feature = "testing")]
        match self.faults.decide(&dst, Path::OutboundDatagram) {
            None => return Ok(()),
            Some(delay) if !delay.is_zero() => {
                let udp = self.udp.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = udp.send_to(&payload, dst).await;
                });
                return Ok(());
            }
            Some(_) => {}
        }
        self.udp.try_send_to(&payload, dst).map(drop)
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
