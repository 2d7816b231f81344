//! A TCP link that can be cut: one instance reaches a server (NATS) through
//! it, and cutting it drops that instance's connections at once and refuses
//! its reconnects — what the server and the other instances see when the
//! instance's process is killed or its host falls off the network, while the
//! test keeps the instance itself to look at.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

pub struct CutLink {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl CutLink {
    /// Forward every connection made to [`CutLink::addr`] to `to`. Needs a
    /// tokio runtime (it may be called from synchronous code inside one).
    pub fn start(to: SocketAddr) -> CutLink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("link bind");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let task = tokio::spawn(async move {
            // Owned by this task: aborting it drops every piped connection.
            let mut pipes = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                pipes.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CutLink { addr, task }
    }

    /// `nats://<addr>`.
    pub fn nats_url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Drop every connection through the link and stop accepting new ones.
    pub fn cut(&self) {
        self.task.abort();
    }
}

impl Drop for CutLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
