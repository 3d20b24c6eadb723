//! Sockets: the UDP socket with explicit buffer sizes and the TCP listener
//! on the same port, outbound stream connections from the same IP, and the
//! stream framing (a 4-byte big-endian length, then the packet; the length
//! [`BUSY`] alone says that the other side refused the connection for want
//! of room).

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

/// A frame length that is no frame: "refused, no room now; try later".
pub(crate) const BUSY: u32 = u32::MAX;

use crate::error::StartError;

/// Binds the UDP socket and the TCP listener on the same port. With port 0
/// the kernel picks a free UDP port, which TCP may already use (an outgoing
/// connection's port, say): then both are dropped and another port is tried.
pub(crate) fn bind_both(
    addr: SocketAddr,
    buffer: usize,
) -> Result<(UdpSocket, TcpListener, usize, usize), StartError> {
    let attempts = if addr.port() == 0 { 32 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let (udp, recv, send) = bind_udp(addr, buffer).map_err(|source| StartError::Bind { addr, source })?;
        let bound = udp.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        match bind_tcp(bound) {
            Ok(listener) => return Ok((udp, listener, recv, send)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && addr.port() == 0 => last = Some(e),
            Err(source) => return Err(StartError::Bind { addr: bound, source }),
        }
    }
    Err(StartError::Bind { addr, source: last.unwrap_or_else(|| std::io::Error::other("no free port")) })
}

/// Binds the UDP socket and returns it with the buffer sizes the kernel granted.
fn bind_udp(addr: SocketAddr, buffer: usize) -> io::Result<(UdpSocket, usize, usize)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Listen on IPv6 only when asked for IPv6, so that [::] and 0.0.0.0 can coexist.
        socket.set_only_v6(true)?;
    }
    // Ask; the kernel may cap (net.core.rmem_max) or double what it grants.
    let _ = socket.set_recv_buffer_size(buffer);
    let _ = socket.set_send_buffer_size(buffer);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let (recv, send) = (socket.recv_buffer_size()?, socket.send_buffer_size()?);
    Ok((UdpSocket::from_std(socket.into())?, recv, send))
}

/// Binds the TCP listener on the same address as the UDP socket.
fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(128)?;
    TcpListener::from_std(socket.into())
}

/// Opens a stream connection to `dst`, from `source` when given (the IP the
/// member is bound to, so that members see its streams come from the
/// address they know it by) and of the same family.
pub(crate) async fn connect(dst: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(ip) = source.filter(|ip| ip.is_ipv4() == dst.is_ipv4()) else {
        return TcpStream::connect(dst).await;
    };
    let socket = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(dst).await
}

/// Writes one frame.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(payload).await?;
    w.flush().await
}

/// Reads a frame's length; `None` at a clean end of stream.
pub(crate) async fn read_len<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<usize>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => Ok(Some(u32::from_be_bytes(len) as usize)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads `len` more bytes onto `buf`: memory grows only as they arrive.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
) -> io::Result<()> {
    let want = buf.len() + len;
    buf.reserve(len.min(64 << 10));
    r.take(len as u64).read_to_end(buf).await?;
    if buf.len() != want {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended inside a frame"));
    }
    Ok(())
}

/// The error for a frame of `len` bytes where at most `max` are allowed
/// (or for [`BUSY`]).
pub(crate) fn too_long(len: usize, max: usize) -> io::Error {
    if len == BUSY as usize {
        return io::Error::new(io::ErrorKind::ResourceBusy, "the peer has no room for this connection now");
    }
    io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes exceeds {max}"))
}

/// Reads one frame of at most `max` bytes; `None` at a clean end of stream.
/// Memory grows only as bytes arrive, whatever length the peer announces.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    let Some(len) = read_len(r).await? else { return Ok(None) };
    if len > max {
        return Err(too_long(len, max));
    }
    let mut buf = Vec::new();
    read_body(r, &mut buf, len).await?;
    Ok(Some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversized_frames_are_refused() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").await.unwrap();
        write_frame(&mut buf, b"").await.unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r, 100).await.unwrap(), Some(b"hello".to_vec()));
        assert_eq!(read_frame(&mut r, 100).await.unwrap(), Some(Vec::new()));
        assert_eq!(read_frame(&mut r, 100).await.unwrap(), None);

        let hostile = [0xff, 0xff, 0xff, 0xfe, 1, 2, 3];
        let err = read_frame(&mut &hostile[..], 1 << 20).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let busy = BUSY.to_be_bytes();
        let err = read_frame(&mut &busy[..], 1 << 20).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);

        let short = [0, 0, 0, 10, 1, 2];
        let err = read_frame(&mut &short[..], 100).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
