//! A TCP proxy per directed Raft link, so that partitions are cut where a
//! real network would cut them: at the TCP level, outside the servers.
//!
//! ```text
//!   s1 ──dials peer_addrs["2"]──► proxy 1->2 (127.0.0.1:P12) ──► s2's address
//!   s2 ──dials peer_addrs["1"]──► proxy 2->1 (127.0.0.1:P21) ──► s1's address
//! ```
//!
//! Server `a` sends its Raft messages to `b` on a connection it opens to
//! `b`, so the proxy `a->b` carries exactly "`b` hears `a`". Each server's
//! configuration points `peer_addrs` at its outgoing proxies; clients and
//! admin calls go to the servers directly and are never cut.
//!
//! A cut link closes its live connections and accepts new ones only to
//! close them at once (the dialer sees the connection drop, as after a
//! reset); a restored link forwards again. Dropping [`Proxies`] closes
//! everything: the per-connection tasks watch the link's state and stop
//! when its sender is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::limits::{ACCEPT_RETRY_PAUSE, PROXY_CONNECT_TIMEOUT};

/// A directed Raft link: `from`'s messages to `to` (one proxy each).
pub type Link = (u64, u64);

struct ProxyLink {
    listen: SocketAddr,
    cut: watch::Sender<bool>,
    acceptor: JoinHandle<()>,
}

/// Every directed link between the servers, each with its proxy.
pub struct Proxies {
    links: BTreeMap<Link, ProxyLink>,
}

impl Proxies {
    /// Starts a proxy for every ordered pair of distinct servers
    /// (`servers`: id -> the address it listens on).
    pub async fn start(servers: &BTreeMap<u64, String>) -> anyhow::Result<Proxies> {
        let mut links = BTreeMap::new();
        for &from in servers.keys() {
            for (&to, target) in servers {
                if from == to {
                    continue;
                }
                let listener = TcpListener::bind("127.0.0.1:0").await.context("binding a link proxy")?;
                let listen = listener.local_addr()?;
                let (cut, _) = watch::channel(false);
                let acceptor = tokio::spawn(accept_loop(listener, target.clone(), cut.subscribe()));
                links.insert((from, to), ProxyLink { listen, cut, acceptor });
            }
        }
        Ok(Proxies { links })
    }

    /// Where server `from` must dial to reach server `to`.
    pub fn listen_addr(&self, link: Link) -> Option<SocketAddr> {
        self.links.get(&link).map(|l| l.listen)
    }

    /// Cuts exactly the links in `cut` and restores every other one.
    pub fn set_cut(&self, cut: &BTreeSet<Link>) {
        for (link, proxy) in &self.links {
            proxy.cut.send_replace(cut.contains(link));
        }
    }

    /// The links cut now.
    pub fn cut_links(&self) -> BTreeSet<Link> {
        self.links.iter().filter(|(_, p)| *p.cut.borrow()).map(|(l, _)| *l).collect()
    }
}

impl Drop for Proxies {
    fn drop(&mut self) {
        for proxy in self.links.values() {
            proxy.acceptor.abort();
        }
        // Dropping the senders ends every connection task.
    }
}

async fn accept_loop(listener: TcpListener, target: String, cut: watch::Receiver<bool>) {
    loop {
        let inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(_) => {
                // Out of file descriptors or similar: back off, try again.
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        if *cut.borrow() {
            drop(inbound);
            continue;
        }
        tokio::spawn(forward(inbound, target.clone(), cut.clone()));
    }
}

/// Copies bytes both ways until either side closes or the link is cut.
async fn forward(mut inbound: TcpStream, target: String, mut cut: watch::Receiver<bool>) {
    let connect = tokio::time::timeout(PROXY_CONNECT_TIMEOUT, TcpStream::connect(&target));
    let mut outbound = match connect.await {
        Ok(Ok(s)) => s,
        _ => return, // the server is down: the dialer sees its connection close
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        // Cut, or the proxies are gone (the sender dropped).
        _ = cut.wait_for(|cut| *cut) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server; returns its address.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    /// True if a round trip through `addr` works.
    async fn round_trip(stream: &mut TcpStream) -> bool {
        let attempt = async {
            stream.write_all(b"ping").await?;
            let mut buf = [0u8; 4];
            stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(&buf == b"ping")
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), attempt).await, Ok(Ok(true)))
    }

    /// Goal: a link forwards; cutting it closes its live connection and
    /// refuses new ones; restoring it forwards again; other links are
    /// untouched. Method: two "servers" (echo), the proxies between them.
    #[tokio::test]
    async fn cut_closes_and_refuses_then_heal_restores() {
        let a = echo().await;
        let b = echo().await;
        let servers = BTreeMap::from([(1, a.to_string()), (2, b.to_string())]);
        let proxies = Proxies::start(&servers).await.unwrap();
        let p12 = proxies.listen_addr((1, 2)).unwrap();
        let p21 = proxies.listen_addr((2, 1)).unwrap();
        assert!(proxies.listen_addr((1, 1)).is_none());

        let mut live = TcpStream::connect(p12).await.unwrap();
        assert!(round_trip(&mut live).await);
        let mut other = TcpStream::connect(p21).await.unwrap();

        proxies.set_cut(&BTreeSet::from([(1, 2)]));
        assert_eq!(proxies.cut_links(), BTreeSet::from([(1, 2)]));
        assert!(!round_trip(&mut live).await, "the live connection must close");
        let mut fresh = TcpStream::connect(p12).await.unwrap();
        assert!(!round_trip(&mut fresh).await, "new connections must be closed");
        assert!(round_trip(&mut other).await, "the reverse link is not cut");

        proxies.set_cut(&BTreeSet::new());
        let mut again = TcpStream::connect(p12).await.unwrap();
        assert!(round_trip(&mut again).await);

        drop(proxies);
        assert!(!round_trip(&mut again).await, "dropping the proxies closes connections");
    }
}
