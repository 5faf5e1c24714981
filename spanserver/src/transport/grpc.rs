//! The gRPC transport: one long-lived client stream per peer server.
//!
//! ```text
//!   event loop ──send(to, msgs)──> [peer queue] ──task──> Peer.Raft stream ──> peer
//!                                                  │ on error: report unreachable,
//!                                                  │ back off, reconnect
//!   event loop ──send_snapshot──> task: Peer.Snapshot (1 MiB chunks) ──> peer
//!                                  └──> SnapshotSent { ok } back to the loop
//! ```
//!
//! Each loop iteration's messages for one peer travel as one `RaftBatch`.
//! Queues are bounded; when one is full, messages are dropped (Raft
//! retransmits) rather than letting a slow peer grow memory. HTTP/2
//! keep-alives detect a peer that stopped answering (SIGSTOP, a cut
//! network), so the stream is torn down and rebuilt rather than hanging.
//! A stall watchdog catches the other way a stream can hang: a call that
//! stops pulling its request body on this side while batches wait (see
//! `limits::PEER_STREAM_STALL`). A server first named after start (one that
//! joined, `directory.rs`) gets its queue and task at the first send to it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prost011::Message as _;
use raft::eraftpb::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::auth::PeerSecret;
use crate::directory::Directory;
use crate::inbox::{LoopHandle, LoopMsg};
use crate::limits;
use crate::storage::snapshot::SnapshotFile;
use crate::transport::Transport;
use meta::{ReplicaId, ServerId, ShardId};

/// How long a whole snapshot send may take.
const SNAPSHOT_SEND_TIMEOUT: Duration = Duration::from_secs(600);
/// Chunks read ahead of the network while a snapshot streams.
const SNAPSHOT_CHUNKS_IN_FLIGHT: usize = 4;
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(3);

type Outgoing = Vec<(ShardId, Message)>;

pub struct GrpcTransport {
    cluster_id: String,
    server_id: ServerId,
    directory: Arc<Directory>,
    queues: Mutex<HashMap<ServerId, mpsc::Sender<Outgoing>>>,
    event_loop: LoopHandle,
    runtime: tokio::runtime::Handle,
    secret: PeerSecret,
}

impl GrpcTransport {
    /// Starts one sender task per peer known now on `runtime` (others at
    /// their first send).
    pub fn start(
        cluster_id: String,
        server_id: ServerId,
        directory: Arc<Directory>,
        event_loop: LoopHandle,
        runtime: tokio::runtime::Handle,
        secret: PeerSecret,
    ) -> Arc<Self> {
        let transport = GrpcTransport {
            cluster_id,
            server_id,
            directory,
            queues: Mutex::new(HashMap::new()),
            event_loop,
            runtime,
            secret,
        };
        for peer in transport.directory.others(server_id) {
            transport.queue(peer);
        }
        Arc::new(transport)
    }

    /// The queue of the link to `to`, started if it was not yet; `None`
    /// for a server the directory does not name.
    fn queue(&self, to: ServerId) -> Option<mpsc::Sender<Outgoing>> {
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(queue) = queues.get(&to) {
            return Some(queue.clone());
        }
        let addr = self.directory.peer_addr(to).filter(|_| to != self.server_id)?;
        let (tx, rx) = mpsc::channel(limits::PEER_QUEUE_BATCHES_MAX);
        queues.insert(to, tx.clone());
        let link = PeerLink {
            cluster_id: self.cluster_id.clone(),
            from: self.server_id,
            to,
            addr,
            event_loop: self.event_loop.clone(),
            secret: self.secret.clone(),
        };
        self.runtime.spawn(link.run(rx));
        Some(tx)
    }
}

fn endpoint(addr: &str) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

impl Transport for GrpcTransport {
    fn send(&self, to: ServerId, messages: Vec<(ShardId, Message)>) {
        if let Some(queue) = self.queue(to) {
            // Full or closed: drop; Raft retransmits.
            let _ = queue.try_send(messages);
        }
    }

    fn send_snapshot(&self, to: ServerId, shard: ShardId, message: Message, file: Option<SnapshotFile>) {
        let Some(addr) = self.directory.peer_addr(to) else {
            return;
        };
        let (cluster_id, from, event_loop) = (self.cluster_id.clone(), self.server_id, self.event_loop.clone());
        let secret = self.secret.clone();
        let replica = ReplicaId(message.to);
        self.runtime.spawn(async move {
            let first = proto::SnapshotChunk {
                cluster_id,
                from_server_id: from.0,
                to_server_id: to.0,
                shard_id: shard.0,
                message: message.encode_to_vec(),
                file_data: Vec::new(),
            };
            let bytes = file.as_ref().map_or(0, |f| f.bytes);
            let result =
                tokio::time::timeout(SNAPSHOT_SEND_TIMEOUT, send_snapshot_stream(&addr, secret, first, file)).await;
            let ok = matches!(result, Ok(Ok(())));
            if ok {
                tracing::info!(%shard, %to, bytes, "sent snapshot");
            } else {
                tracing::warn!(%shard, %to, "snapshot send failed: {result:?}");
            }
            let _ = event_loop.send(LoopMsg::SnapshotSent { shard, to: replica, ok });
        });
    }
}

/// Streams the message, then the data file read from disk a chunk at a
/// time (never the whole file in memory).
async fn send_snapshot_stream(
    addr: &str,
    secret: PeerSecret,
    first: proto::SnapshotChunk,
    file: Option<SnapshotFile>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (tx, rx) = mpsc::channel::<proto::SnapshotChunk>(SNAPSHOT_CHUNKS_IN_FLIGHT);
    tx.send(first).await?;
    let reader = tokio::spawn(async move {
        let Some(file) = file else { return Ok(()) };
        let mut f = tokio::fs::File::open(&file.path).await?;
        loop {
            let mut buf = vec![0; limits::SNAPSHOT_CHUNK_BYTES];
            let n = tokio::io::AsyncReadExt::read(&mut f, &mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            buf.truncate(n);
            let chunk = proto::SnapshotChunk { file_data: buf, ..Default::default() };
            if tx.send(chunk).await.is_err() {
                return Ok(()); // the call ended; its result says why
            }
        }
    });
    let channel = endpoint(addr)?.connect().await?;
    let mut client = proto::peer_client::PeerClient::with_interceptor(channel, secret)
        .max_encoding_message_size(limits::SNAPSHOT_MESSAGE_BYTES_MAX + limits::SNAPSHOT_CHUNK_BYTES);
    client.snapshot(ReceiverStream::new(rx)).await?;
    reader.await??;
    Ok(())
}

/// The sending half of one peer connection.
struct PeerLink {
    cluster_id: String,
    from: ServerId,
    to: ServerId,
    addr: String,
    event_loop: LoopHandle,
    secret: PeerSecret,
}

impl PeerLink {
    async fn run(self, mut queue: mpsc::Receiver<Outgoing>) {
        let mut backoff = limits::PEER_RECONNECT_BACKOFF_MIN;
        loop {
            match self.connect().await {
                Ok(channel) => {
                    backoff = limits::PEER_RECONNECT_BACKOFF_MIN;
                    if !self.stream(channel, &mut queue).await {
                        return; // the transport is gone
                    }
                }
                Err(e) => tracing::debug!(to = %self.to, addr = %self.addr, "cannot connect: {e}"),
            }
            let _ = self.event_loop.send(LoopMsg::PeerUnreachable { server: self.to });
            // Messages queued while disconnected are stale: drop them.
            while queue.try_recv().is_ok() {}
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(limits::PEER_RECONNECT_BACKOFF_MAX);
        }
    }

    async fn connect(&self) -> Result<Channel, Box<dyn std::error::Error + Send + Sync>> {
        // The endpoint's own timeout covers the TCP connect only; this one
        // covers the HTTP/2 handshake too.
        let endpoint = endpoint(&self.addr)?;
        Ok(tokio::time::timeout(2 * limits::PEER_CONNECT_TIMEOUT, endpoint.connect()).await??)
    }

    /// Streams batches until the connection fails (returns true) or the
    /// queue closes (returns false).
    async fn stream(&self, channel: Channel, queue: &mut mpsc::Receiver<Outgoing>) -> bool {
        let (tx, rx) = mpsc::channel::<proto::RaftBatch>(limits::PEER_QUEUE_BATCHES_MAX);
        let body = WatchedBody::new(rx);
        let last_pull = body.last_pull.clone();
        let mut client = proto::peer_client::PeerClient::with_interceptor(channel, self.secret.clone())
            .max_encoding_message_size(limits::RAFT_BATCH_BYTES_MAX);
        let call = client.raft(body);
        tokio::pin!(call);
        let mut watchdog = tokio::time::interval(limits::PEER_STREAM_STALL / 2);
        loop {
            tokio::select! {
                result = &mut call => {
                    tracing::debug!(to = %self.to, "raft stream ended: {result:?}");
                    return true;
                }
                _ = watchdog.tick() => {
                    let waiting = tx.max_capacity() - tx.capacity();
                    let idle = last_pull.lock().unwrap_or_else(PoisonError::into_inner).elapsed();
                    if waiting > 0 && idle > limits::PEER_STREAM_STALL {
                        tracing::warn!(to = %self.to, waiting, ?idle, "raft stream stalled; dialling again");
                        return true;
                    }
                }
                next = queue.recv() => match next {
                    None => return false,
                    Some(messages) => {
                        let batch = proto::RaftBatch {
                            cluster_id: self.cluster_id.clone(),
                            from_server_id: self.from.0,
                            to_server_id: self.to.0,
                            envelopes: messages
                                .into_iter()
                                .map(|(shard, m)| proto::RaftEnvelope { shard_id: shard.0, message: m.encode_to_vec() })
                                .collect(),
                        };
                        // The connection's own queue is full: drop.
                        let _ = tx.try_send(batch);
                    }
                }
            }
        }
    }
}

/// The Raft stream's request body: the connection's queue of batches,
/// noting when HTTP/2 last pulled from it (the stall watchdog's clock).
struct WatchedBody {
    batches: ReceiverStream<proto::RaftBatch>,
    last_pull: Arc<Mutex<Instant>>,
}

impl WatchedBody {
    fn new(batches: mpsc::Receiver<proto::RaftBatch>) -> Self {
        WatchedBody { batches: ReceiverStream::new(batches), last_pull: Arc::new(Mutex::new(Instant::now())) }
    }
}

impl tokio_stream::Stream for WatchedBody {
    type Item = proto::RaftBatch;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<proto::RaftBatch>> {
        *self.last_pull.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Pin::new(&mut self.batches).poll_next(cx)
    }
}
