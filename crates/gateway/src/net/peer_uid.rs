//! The uid that owns the other end of a loopback TCP connection, asked of
//! the kernel by exact 4-tuple (NETLINK_SOCK_DIAG, `inet_diag_req_v2`): one
//! round trip, whatever the number of sockets on the host (a scan of
//! /proc/net/tcp would grow with it). Linux only; elsewhere the uid is
//! never known.

use std::io;
use std::net::SocketAddr;

/// The uid owning the socket at `peer` that is connected to our `local`
/// address. `Ok(None)`: the kernel knows no such socket (it closed already,
/// or lives in another network namespace).
pub fn tcp_peer_uid(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
    imp::tcp_peer_uid(local, peer)
}

#[cfg(target_os = "linux")]
mod imp {
    use std::cell::RefCell;
    use std::io;
    use std::net::{IpAddr, SocketAddr};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const NETLINK_SOCK_DIAG: libc::c_int = 4;
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    /// Any TCP state: the peer's socket may be closing already.
    const ALL_STATES: u32 = !0;
    const NLMSG_HDR_LEN: usize = 16;
    /// `struct inet_diag_sockid`: ports, two 16-byte addresses, interface, cookie.
    const SOCKID_LEN: usize = 48;
    const REQUEST_LEN: usize = NLMSG_HDR_LEN + 8 + SOCKID_LEN;
    /// `idiag_uid` in `struct inet_diag_msg`: after family/state/timer/retrans,
    /// the sockid, and expires/rqueue/wqueue.
    const UID_OFFSET: usize = 4 + SOCKID_LEN + 12;

    thread_local! {
        /// This thread's netlink socket and the last sequence number it
        /// used, kept between lookups: opening and closing a socket per
        /// connection cost three more syscalls and the kernel's set-up of a
        /// socket on every loopback handshake (docs/benchmarks.md, "The token
        /// handshake's own cost"). Dropped after any error, so a reply that
        /// came late can never be read as another lookup's.
        static CACHED: RefCell<Option<(OwnedFd, u32)>> = const { RefCell::new(None) };
    }

    pub fn tcp_peer_uid(local: SocketAddr, peer: SocketAddr) -> io::Result<Option<u32>> {
        // The peer's socket: its source is our peer, its destination us. A
        // v4 client reaching a dual-stack listener shows up here as
        // ::ffff:a.b.c.d, but its own socket is AF_INET.
        let (src, dst) = (peer.ip().to_canonical(), local.ip().to_canonical());
        let family = match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
            (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
            _ => return Ok(None),
        };
        let ask = |fd: &OwnedFd, seq: u32| {
            let request = request(family as u8, seq, (src, peer.port()), (dst, local.port()));
            exchange(fd, seq, &request)
        };
        let cached = CACHED.try_with(|cell| {
            let mut slot = cell.borrow_mut();
            let (fd, last_seq) = match slot.take() {
                Some(kept) => kept,
                None => (netlink_socket()?, 0),
            };
            let seq = last_seq.wrapping_add(1);
            let answer = ask(&fd, seq);
            if answer.is_ok() {
                *slot = Some((fd, seq));
            }
            answer
        });
        match cached {
            Ok(answer) => answer,
            // The thread is exiting: a socket for this one lookup.
            Err(_) => ask(&netlink_socket()?, 1),
        }
    }

    /// Send one request and read its reply: exactly one message, as the
    /// request asks for one socket, without a dump or an acknowledgement.
    fn exchange(fd: &OwnedFd, seq: u32, request: &[u8]) -> io::Result<Option<u32>> {
        // SAFETY: `request` is a live buffer of its length; the kernel address
        // is a zeroed sockaddr_nl with only the family set.
        let sent = unsafe {
            let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
            kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
            libc::sendto(
                fd.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u8; 512];
        // SAFETY: `reply` is a live buffer of its length.
        let got = unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        let reply = &reply[..got as usize];
        // The socket is reused: a reply must answer this request, never one before it.
        match reply.get(8..12) {
            Some(s) if u32::from_ne_bytes([s[0], s[1], s[2], s[3]]) != seq => {
                Err(io::Error::new(io::ErrorKind::InvalidData, "sock_diag reply to another request"))
            }
            _ => parse_reply(reply),
        }
    }

    fn netlink_socket() -> io::Result<OwnedFd> {
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, NETLINK_SOCK_DIAG) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // A reply never takes long; a kernel that does not answer must not
        // stall a handshake.
        let timeout = libc::timeval { tv_sec: 0, tv_usec: 100_000 };
        // SAFETY: `timeout` is a valid timeval for SO_RCVTIMEO.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    }

    /// `nlmsghdr` + `inet_diag_req_v2` for one socket by exact 4-tuple.
    fn request(family: u8, seq: u32, src: (IpAddr, u16), dst: (IpAddr, u16)) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
        b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        b[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        let r = NLMSG_HDR_LEN;
        b[r] = family;
        b[r + 1] = libc::IPPROTO_TCP as u8;
        b[r + 4..r + 8].copy_from_slice(&ALL_STATES.to_ne_bytes());
        let id = r + 8;
        b[id..id + 2].copy_from_slice(&src.1.to_be_bytes());
        b[id + 2..id + 4].copy_from_slice(&dst.1.to_be_bytes());
        write_addr(&mut b[id + 4..id + 20], src.0);
        write_addr(&mut b[id + 20..id + 36], dst.0);
        // Interface 0 (any); cookie INET_DIAG_NOCOOKIE: match on the tuple alone.
        b[id + 40..id + 48].copy_from_slice(&[0xff; 8]);
        b
    }

    fn write_addr(out: &mut [u8], ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
            IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
        }
    }

    fn parse_reply(reply: &[u8]) -> io::Result<Option<u32>> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag reply");
        let header = reply.get(..NLMSG_HDR_LEN).ok_or_else(bad)?;
        let kind = u16::from_ne_bytes([header[4], header[5]]);
        if kind == NLMSG_ERROR {
            let errno = reply.get(NLMSG_HDR_LEN..NLMSG_HDR_LEN + 4).ok_or_else(bad)?;
            let errno = -i32::from_ne_bytes([errno[0], errno[1], errno[2], errno[3]]);
            return if errno == libc::ENOENT { Ok(None) } else { Err(io::Error::from_raw_os_error(errno)) };
        }
        if kind != SOCK_DIAG_BY_FAMILY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag answered type {kind}")));
        }
        let at = NLMSG_HDR_LEN + UID_OFFSET;
        let uid = reply.get(at..at + 4).ok_or_else(bad)?;
        Ok(Some(u32::from_ne_bytes([uid[0], uid[1], uid[2], uid[3]])))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;

    pub fn tcp_peer_uid(_local: SocketAddr, _peer: SocketAddr) -> io::Result<Option<u32>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "peer uids are looked up on Linux only"))
    }
}

/// Can peer uids be looked up here? A loopback connection to ourselves must
/// come back as our own uid.
pub fn probe() -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no loopback socket: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let client = std::net::TcpStream::connect(local).map_err(|e| format!("no loopback connection: {e}"))?;
    let peer = client.local_addr().map_err(|e| e.to_string())?;
    match tcp_peer_uid(local, peer) {
        Ok(Some(uid)) if uid == own_uid() => Ok(()),
        Ok(Some(uid)) => Err(format!("sock_diag named uid {uid} for a socket of uid {}", own_uid())),
        Ok(None) => Err("sock_diag does not know this process's own sockets".to_owned()),
        Err(e) => Err(format!("sock_diag: {e}")),
    }
}

/// The uid this process runs as (effective).
pub fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_loopback_connection_of_this_process_is_owned_by_its_uid() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(bind) else { continue };
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, peer) = listener.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            let uid = tcp_peer_uid(server.local_addr().unwrap(), peer).unwrap();
            assert_eq!(uid, Some(own_uid()), "{bind}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lookups_on_one_thread_share_its_socket_and_each_gets_its_own_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..3 {
            let client = std::net::TcpStream::connect(local).unwrap();
            let (_server, peer) = listener.accept().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(tcp_peer_uid(local, peer).unwrap(), Some(own_uid()));
            assert_eq!(tcp_peer_uid(local, nobody).unwrap(), None);
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_socket_that_does_not_exist_is_none() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(tcp_peer_uid(local, nobody).unwrap(), None);
    }
}
