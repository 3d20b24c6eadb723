//! ICMP errors for the datagrams this member sent (Linux): with
//! `IP_RECVERR` / `IPV6_RECVERR` on the UDP socket, the kernel queues each
//! ICMP error it receives for the socket, with the original destination.
//! A port unreachable says that nothing listens at that address any more:
//! kernel evidence ([`Unreachable::PortUnreachable`](vigil_proto::Unreachable))
//! that the member's process is gone. Other ICMP errors (host or network
//! unreachable, fragmentation needed) say nothing about the process and are
//! dropped.
//!
//! Side effect of the option: the kernel also sets the socket's pending
//! error, which the next `send_to` or `recv_from` returns instead of doing
//! its work once (`link.rs` sends again). Draining the queue clears it.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Errors read from the queue in one go at most; the rest wait for the next.
const MAX_PER_DRAIN: usize = 256;

/// ICMP (v4) destination unreachable, code port unreachable.
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_PORT_UNREACH: u8 = 3;
/// ICMPv6 destination unreachable, code port unreachable.
const ICMP6_DST_UNREACH: u8 = 1;
const ICMP6_DST_UNREACH_NOPORT: u8 = 4;

/// Asks the kernel to queue ICMP errors on `udp` (IPv4 or IPv6 by `addr`).
pub(crate) fn enable(udp: &UdpSocket, addr: SocketAddr) -> io::Result<()> {
    match addr {
        SocketAddr::V4(_) => setsockopt(udp, sockopt::Ipv4RecvErr, &true)?,
        SocketAddr::V6(_) => setsockopt(udp, sockopt::Ipv6RecvErr, &true)?,
    }
    Ok(())
}

/// Waits until the error queue holds something, then reads it: the
/// destinations of datagrams that drew a port unreachable (possibly none,
/// when only other errors came). Cancel-safe: an error read is returned.
pub(crate) async fn port_unreachable(udp: &UdpSocket) -> Vec<SocketAddr> {
    if let Err(e) = udp.ready(Interest::ERROR).await {
        tracing::debug!("udp error readiness: {e}");
        return std::future::pending().await;
    }
    drain(udp)
}

/// Reads the error queue until it is empty (or [`MAX_PER_DRAIN`] errors).
fn drain(udp: &UdpSocket) -> Vec<SocketAddr> {
    let mut found = Vec::new();
    for _ in 0..MAX_PER_DRAIN {
        match udp.try_io(Interest::ERROR, || read_one(udp)) {
            Ok(Some(dst)) => found.push(dst),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => {
                tracing::debug!("reading the udp error queue: {e}");
                break;
            }
        }
    }
    found
}

/// One message from the error queue: its original destination if it is a
/// port unreachable. Any error but "empty" is reported as empty as well, so
/// that tokio clears the readiness and the caller does not spin on it.
fn read_one(udp: &UdpSocket) -> io::Result<Option<SocketAddr>> {
    let mut data = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut data)];
    let mut cmsg = nix::cmsg_space!([u8; 128]);
    let flags = MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT;
    let msg = match recvmsg::<SockaddrStorage>(udp.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
        Ok(msg) => msg,
        Err(nix::errno::Errno::EAGAIN) => return Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => {
            tracing::debug!("udp error queue: {e}");
            return Err(io::ErrorKind::WouldBlock.into());
        }
    };
    let dst = msg.address.as_ref().and_then(to_socket_addr);
    let Ok(cmsgs) = msg.cmsgs() else { return Ok(None) };
    for c in cmsgs {
        let port_unreachable = match c {
            ControlMessageOwned::Ipv4RecvErr(err, _) => {
                err.ee_origin == libc::SO_EE_ORIGIN_ICMP
                    && (err.ee_type, err.ee_code) == (ICMP_DEST_UNREACH, ICMP_PORT_UNREACH)
            }
            ControlMessageOwned::Ipv6RecvErr(err, _) => {
                err.ee_origin == libc::SO_EE_ORIGIN_ICMP6
                    && (err.ee_type, err.ee_code) == (ICMP6_DST_UNREACH, ICMP6_DST_UNREACH_NOPORT)
            }
            _ => false,
        };
        if port_unreachable {
            return Ok(dst);
        }
    }
    Ok(None)
}

fn to_socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    let v6 = a.as_sockaddr_in6()?;
    // An IPv4-mapped address stays as the kernel gave it: members use the
    // address family they were bound with, so it matches what was sent.
    Some(SocketAddr::from((v6.ip(), v6.port())))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_datagram_to_a_closed_port_is_reported_with_its_destination() {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable(&udp, udp.local_addr().unwrap()).unwrap();
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = closed.local_addr().unwrap();
        drop(closed);
        udp.send_to(b"anyone there?", dst).await.unwrap();
        let found = tokio::time::timeout(Duration::from_secs(5), port_unreachable(&udp)).await;
        assert_eq!(found.expect("an ICMP error within 5 s"), vec![dst]);
    }
}
