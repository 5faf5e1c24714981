//! In-process connections to this server's gRPC services, for its own
//! peer calls.
//!
//! A coordinator that also leads a participant shard tells it the
//! outcome through the `Peer` service, like any other participant
//! (`peers.rs`): a call to itself. Over loopback TCP that costs socket
//! writes, the kernel's TCP path and a thread wake-up on each side. A
//! local connection is an in-memory byte pipe instead
//! (`tokio::io::duplex`), accepted by the same tonic server as the TCP
//! listener:
//!
//! ```text
//!   Peers ── Channel ──connector──> duplex ──> LocalConnections queue
//!                                                 │ merged with TCP accepts
//!   other servers ─────────────────> TcpIncoming ─┴──> tonic server (same services)
//! ```
//!
//! So a local call goes through exactly the checks, limits and error
//! mapping a remote one does (HTTP/2 framing and protobuf included); only
//! the kernel is left out. (The SQL gateway in this process goes further
//! and calls the services' `Routes` directly, in its own task:
//! `Server::routes`. The peer client cannot: it exists before the
//! services it would call.)
//!
//! Invariants: a local connection is served until either end drops it,
//! like a TCP one; the server's shutdown ends both kinds together (one
//! incoming stream). Limits: [`limits::LOCAL_CONNECTION_BUFFER_BYTES`]
//! per direction, [`limits::LOCAL_CONNECTIONS_WAITING_MAX`] not yet
//! accepted.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::limits;

/// Opens in-process connections to one server (cheap to clone).
#[derive(Clone, Debug)]
pub struct LocalConnections {
    accept: mpsc::Sender<DuplexStream>,
}

/// What the server accepts: the far ends of [`LocalConnections`].
pub(crate) struct LocalAccepts(mpsc::Receiver<DuplexStream>);

/// A pair: the handle that opens connections, and the queue the server
/// accepts them from.
pub(crate) fn local_connections() -> (LocalConnections, LocalAccepts) {
    let (accept, queue) = mpsc::channel(limits::LOCAL_CONNECTIONS_WAITING_MAX);
    (LocalConnections { accept }, LocalAccepts(queue))
}

impl LocalConnections {
    /// A new connection to the server, or an error once it has stopped.
    pub async fn connect(&self) -> io::Result<DuplexStream> {
        let (near, far) = tokio::io::duplex(limits::LOCAL_CONNECTION_BUFFER_BYTES);
        self.accept
            .send(far)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "the server has stopped"))?;
        Ok(near)
    }

    /// A gRPC channel to the server over local connections. It connects
    /// at its first call, and again after a connection ends, as a TCP
    /// channel does.
    pub fn channel(&self) -> Channel {
        let connections = self.clone();
        let connector = tower::service_fn(move |_: Uri| {
            let connections = connections.clone();
            async move { connections.connect().await.map(TokioIo::new) }
        });
        // The URI is not dialled: the connector decides where calls go.
        Endpoint::from_static("http://in-process.local").connect_with_connector_lazy(connector)
    }
}

/// One accepted connection, of either kind.
pub(crate) enum Conn {
    Tcp(TcpStream),
    Local(DuplexStream),
}

/// TCP accepts and local connections as one stream, for tonic's
/// `serve_with_incoming`.
pub(crate) fn incoming(tcp: TcpIncoming, local: LocalAccepts) -> impl Stream<Item = io::Result<Conn>> {
    let tcp = tcp.map(|accepted| accepted.map(Conn::Tcp));
    let local = ReceiverStream::new(local.0).map(|pipe| Ok(Conn::Local(pipe)));
    tcp.merge(local)
}

impl Connected for Conn {
    /// The peer's address, for TCP connections.
    type ConnectInfo = Option<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        match self {
            Conn::Tcp(s) => Some(s.connect_info()),
            Conn::Local(_) => None,
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Local(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Local(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Local(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Local(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Local(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Local(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
