//! Several listening sockets on one address and port (`SO_REUSEPORT`), one
//! per thread of the thread-per-core server (`per_core.rs`): the kernel
//! spreads new connections over them, each with its own accept queue, so
//! no connection is handed from one thread to another.
//!
//! `SO_REUSEPORT` would also let another program of the same user join the
//! group and take a share of the connections, or a second clawgate start on
//! a port the first one holds. So the group is bound only after a plain
//! socket (without `SO_REUSEPORT`) could be bound to the same address: a
//! port held by anyone, including another reuse-port group, fails there
//! with "address in use", exactly as the work-stealing server's bind does.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// As tokio's `TcpListener::bind`.
const BACKLOG: i32 = 1024;

/// `count` listening sockets on one address and port; the port chosen by
/// the kernel when `addr` asks for port 0.
#[derive(Debug)]
pub struct ReusePortGroup {
    listeners: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl ReusePortGroup {
    /// Bind `count` (at least 1) listening sockets to `addr`.
    pub fn bind(addr: SocketAddr, count: usize) -> std::io::Result<ReusePortGroup> {
        let addr = SocketAddr::new(addr.ip(), free_port(addr)?);
        let mut listeners = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            listeners.push(listening_socket(addr)?);
        }
        let local_addr = listeners[0].local_addr()?;
        Ok(ReusePortGroup { listeners, local_addr })
    }

    /// The address and port all of them listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many sockets (threads) the group has.
    pub fn count(&self) -> usize {
        self.listeners.len()
    }

    /// The sockets, non-blocking, one for each thread.
    pub fn into_listeners(self) -> Vec<std::net::TcpListener> {
        self.listeners
    }
}

/// Check that `addr` is free for a socket without `SO_REUSEPORT` and
/// return its port (the kernel's choice for port 0). The probe is closed
/// before the group binds; only a program binding that very port in the
/// moment between could take it, and the group's bind then fails.
fn free_port(addr: SocketAddr) -> std::io::Result<u16> {
    let probe = socket(addr)?;
    probe.set_reuse_address(true)?;
    probe.bind(&SockAddr::from(addr))?;
    let port = probe.local_addr()?.as_socket().map(|a| a.port()).unwrap_or(addr.port());
    Ok(port)
}

fn socket(addr: SocketAddr) -> std::io::Result<Socket> {
    Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
}

fn listening_socket(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket(addr)?;
    // As tokio's bind: a restart does not wait for old connections' TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SockAddr::from(addr))?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_any_port() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn every_listener_of_a_group_shares_the_port_the_first_was_given() {
        let group = ReusePortGroup::bind(loopback_any_port(), 2).unwrap();
        let addr = group.local_addr();
        assert_ne!(addr.port(), 0);
        let listeners = group.into_listeners();
        assert_eq!(listeners.len(), 2);
        for l in &listeners {
            assert_eq!(l.local_addr().unwrap(), addr);
        }
        // Every connection comes in on one socket of the group or the other.
        let clients: Vec<_> = (0..16).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
        let mut accepted = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while accepted < clients.len() && std::time::Instant::now() < deadline {
            for l in &listeners {
                while l.accept().is_ok() {
                    accepted += 1;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(accepted, clients.len());
    }

    #[test]
    fn a_port_held_by_a_group_is_refused_to_a_plain_bind_and_to_another_group() {
        let group = ReusePortGroup::bind(loopback_any_port(), 2).unwrap();
        let addr = group.local_addr();
        let plain = std::net::TcpListener::bind(addr).unwrap_err();
        assert_eq!(plain.kind(), std::io::ErrorKind::AddrInUse);
        let second = ReusePortGroup::bind(addr, 2).unwrap_err();
        assert_eq!(second.kind(), std::io::ErrorKind::AddrInUse);
    }

    #[test]
    fn a_port_held_by_a_plain_listener_is_refused_to_a_group() {
        let plain = std::net::TcpListener::bind(loopback_any_port()).unwrap();
        let err = ReusePortGroup::bind(plain.local_addr().unwrap(), 2).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    }
}
