//! Package 0 over UDP for the whole fleet on one socket.
//!
//! Device n's notification address is `udp://127.1.0.0+n:PORT` (all of
//! 127/8 is loopback on Linux). One socket bound to `0.0.0.0:PORT` with
//! `IP_PKTINFO` learns each datagram's destination address, hence the
//! device, so 100,000 devices need one descriptor, not 100,000 (the fd
//! limit here is 20,000). Datagrams to any other address are dropped.

use std::io;
use std::io::IoSliceMut;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::sim::Inner;

/// The first device's notification address.
pub(crate) const BASE: Ipv4Addr = Ipv4Addr::new(127, 1, 0, 0);
/// Largest notification read.
const MAX_NOTIFICATION: usize = 2048;

/// Device `n`'s notification address.
pub(crate) fn device_ip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(BASE).wrapping_add(n))
}

/// The device a destination address names, if one of ours.
pub(crate) fn device_of(ip: Ipv4Addr, devices: u32) -> Option<u32> {
    let n = u32::from(ip).checked_sub(u32::from(BASE))?;
    (n < devices).then_some(n)
}

/// Binds `0.0.0.0:port` with `IP_PKTINFO` on.
pub(crate) fn bind(port: u16) -> io::Result<UdpSocket> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
    sock.set_nonblocking(true)?;
    setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
    UdpSocket::from_std(sock)
}

/// Receives notifications until the simulator stops.
pub(crate) async fn serve(inner: Arc<Inner>, sock: UdpSocket) {
    let mut stop = inner.stop_signal();
    let mut buf = vec![0u8; MAX_NOTIFICATION];
    let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = sock.readable() => {
                if let Err(e) = r {
                    tracing::warn!("notification socket: {e}");
                    return;
                }
            }
        }
        let r = sock.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<SockaddrIn>(
                sock.as_raw_fd(),
                &mut iov,
                Some(cmsg.as_mut_slice()),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let mut dst = None;
            for c in msg.cmsgs().map_err(io::Error::from)? {
                if let ControlMessageOwned::Ipv4PacketInfo(pi) = c {
                    dst = Some(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr)));
                }
            }
            Ok((msg.bytes, dst))
        });
        match r {
            Ok((n, Some(dst))) => {
                if let Some(bytes) = buf.get(..n) {
                    inner.notified(dst, bytes);
                }
            }
            Ok((_, None)) => inner.stats.error("package 0 without destination address"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => tracing::warn!("notification socket: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(device_ip(0), Ipv4Addr::new(127, 1, 0, 0));
        assert_eq!(device_ip(70_000), Ipv4Addr::new(127, 2, 17, 112));
        assert_eq!(device_of(device_ip(70_000), 100_000), Some(70_000));
        assert_eq!(device_of(device_ip(5), 5), None);
        assert_eq!(device_of(Ipv4Addr::new(127, 0, 0, 1), 5), None);
    }
}
