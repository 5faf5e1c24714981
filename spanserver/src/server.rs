//! Starting and stopping a spanserver: the one place that wires storage, the
//! event loop, the transport and the gRPC services together.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use truetime::{Clock, TrueTime};

use crate::auth::PeerSecret;
use crate::clock::{start_monitor as start_clock_monitor, ClockGuard};
use crate::commit_wait::CommitWaiter;
use crate::config::ResolvedConfig;
use crate::directory::Directory;
use crate::driver;
use crate::event_loop::EventLoop;
use crate::inbox::{self, LoopHandle, LoopMsg};
use crate::limits;
use crate::logger::raft_logger;
use crate::peers::Peers;
use crate::registry::Registry;
use crate::requests::DataRequests;
use crate::service::{AdminService, KvService, PeerService, TxnService};
use crate::storage::snapshot::SnapshotDir;
use crate::storage::{Engine, Identity, OpenError};
use crate::transport::grpc::GrpcTransport;
use crate::transport::Transport;
use crate::{replica_gc, split_queue};
use meta::ServerId;

/// How long shutdown waits for in-flight requests before cutting them off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Builds a transport given the handle of the server's own event loop.
pub type TransportFactory = Box<dyn FnOnce(LoopHandle) -> Arc<dyn Transport> + Send>;

/// Which transport carries Raft messages.
pub enum TransportKind {
    /// gRPC streams between the servers' listen addresses.
    Grpc,
    /// Something else, e.g. the test harness's fault-injecting network.
    Custom(TransportFactory),
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0}")]
    Config(String),
    #[error("cannot load replicas: {0}")]
    Replicas(String),
}

/// A running spanserver.
pub struct Server {
    pub server_id: ServerId,
    pub local_addr: SocketAddr,
    /// The server's gRPC services, to call directly from this process
    /// (the SQL gateway's client: `client::Transport::in_process`).
    pub routes: Routes,
    /// The key-value service of `routes`, to call with typed requests
    /// (the SQL gateway's reads: `client::Transport::with_kv`).
    pub kv: Arc<dyn proto::kv_server::Kv>,
    /// Its transaction service, likewise (`client::Transport::with_txn`).
    pub txn: Arc<dyn proto::txn_server::Txn>,
    pub registry: Arc<Registry>,
    pub event_loop: LoopHandle,
    pub truetime: TrueTime,
    /// Whether this server trusts its clock now (`clock.rs`).
    pub clock: Arc<ClockGuard>,
    requests: Arc<DataRequests>,
    commit_waiter: CommitWaiter,
    loop_thread: Option<std::thread::JoinHandle<()>>,
    grpc_shutdown: Option<oneshot::Sender<()>>,
    grpc_task: Option<tokio::task::JoinHandle<()>>,
    /// Set at shutdown: the split queue and the replica GC stop.
    split_queue_stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl Server {
    /// Opens the data directory, loads (or bootstraps) replicas, starts the
    /// event loop and serves gRPC. `listener`, if given, is used instead of
    /// binding `config.listen` (tests pre-bind port 0).
    pub async fn start(
        config: ResolvedConfig,
        clock: Arc<dyn Clock>,
        transport: TransportKind,
        listener: Option<std::net::TcpListener>,
    ) -> Result<Server, StartError> {
        let server_id = config.server_id;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| StartError::DataDir { dir: config.data_dir.display().to_string(), source })?;
        let listener = match listener {
            Some(l) => l,
            None => std::net::TcpListener::bind(config.listen)
                .map_err(|source| StartError::Listen { addr: config.listen, source })?,
        };
        let local_addr = listener.local_addr().map_err(|source| StartError::Listen { addr: config.listen, source })?;
        listener.set_nonblocking(true).map_err(|source| StartError::Listen { addr: config.listen, source })?;

        let identity = Identity {
            cluster_id: config.cluster.cluster_id.clone(),
            server_id: server_id.0,
            layout_fingerprint: config.cluster.layout_fingerprint(),
        };
        let data_dir = config.data_dir.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::open(&data_dir, &identity))
            .await
            .map_err(|e| StartError::Replicas(e.to_string()))??;
        let truetime =
            TrueTime::try_new(clock, config.time.epsilon()).map_err(|e| StartError::Config(e.to_string()))?;
        let directory = Arc::new(Directory::new(&config.cluster, &config.peer_addrs));
        if let Some(addr) = &config.joined_addr {
            directory.learn(&[(server_id.0, addr.clone())].into());
        }
        let registry = Arc::new(Registry::new(server_id, config.cluster.clone(), directory.clone()));
        let secret = PeerSecret::new(&config.cluster.peer_secret);
        if config.unsafe_testing.any() {
            tracing::warn!(settings = ?config.unsafe_testing, "UNSAFE testing switches are on: this server is wrong on purpose");
        }
        let clock = ClockGuard::new(truetime.clone(), !config.unsafe_testing.ignore_clock_health);
        let snapshots = SnapshotDir::open(&config.data_dir)
            .map_err(|source| StartError::DataDir { dir: config.data_dir.display().to_string(), source })?;
        let (loop_handle, inbox) = inbox::inbox(snapshots.clone());
        let transport = match transport {
            TransportKind::Grpc => GrpcTransport::start(
                config.cluster.cluster_id.clone(),
                server_id,
                directory.clone(),
                loop_handle.clone(),
                tokio::runtime::Handle::current(),
                secret.clone(),
            ) as Arc<dyn Transport>,
            TransportKind::Custom(factory) => factory(loop_handle.clone()),
        };
        let logger = raft_logger(server_id.0);
        let commit_waiter = CommitWaiter::start(truetime.clone())
            .map_err(|e| StartError::Replicas(format!("cannot start the commit-wait timer: {e}")))?;
        let peers = Peers::new(
            config.cluster.clone(),
            registry.clone(),
            loop_handle.clone(),
            tokio::runtime::Handle::current(),
            secret.clone(),
        );
        start_clock_monitor(clock.clone(), server_id, peers.clone(), &tokio::runtime::Handle::current());
        let event_loop = EventLoop::open(
            engine.clone(),
            registry.clone(),
            truetime.clone(),
            clock.clone(),
            config.raft.clone(),
            config.gc.clone(),
            &config.unsafe_testing,
            snapshots.clone(),
            &logger,
        )
        .map_err(StartError::Replicas)?;
        // Interrupted installs are finished: other snapshot files are stale.
        snapshots.clean(&[]);
        let loop_engine = engine.clone();
        let loop_peers = peers.clone();
        let loop_thread = std::thread::Builder::new()
            .name(format!("spandb-loop-{}", server_id.0))
            .spawn(move || {
                let run = || driver::run(event_loop, inbox, loop_engine, transport, loop_peers);
                if std::panic::catch_unwind(AssertUnwindSafe(run)).is_err() {
                    // An invariant broke (the panic message is above). Stop
                    // the whole process rather than serve from a replica
                    // whose state is in doubt.
                    eprintln!("fatal: the event loop of server {} panicked", server_id.0);
                    std::process::abort();
                }
            })
            .map_err(|e| StartError::Replicas(format!("cannot start the event loop: {e}")))?;

        let requests = Arc::new(DataRequests::new(
            server_id,
            registry.clone(),
            loop_handle.clone(),
            engine,
            truetime.clone(),
            config.time.clone(),
            commit_waiter.clone(),
            secret.clone(),
            clock.clone(),
            config.unsafe_testing.clone(),
        ));
        let split_queue_stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        split_queue::start(
            config.split.with_placement(&config.placement),
            registry.clone(),
            requests.clone(),
            peers.clone(),
            loop_handle.clone(),
            split_queue_stopped.clone(),
            &tokio::runtime::Handle::current(),
        );
        peers.clone().follow_servers(split_queue_stopped.clone());
        replica_gc::start(
            registry.clone(),
            peers.clone(),
            loop_handle.clone(),
            split_queue_stopped.clone(),
            &tokio::runtime::Handle::current(),
        );
        let kv_service = Arc::new(KvService { requests: requests.clone() });
        let kv = proto::kv_server::KvServer::from_arc(kv_service.clone())
            .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX);
        let txn = Arc::new(TxnService { requests: requests.clone(), peers: peers.clone() });
        let txn_service = proto::txn_server::TxnServer::from_arc(txn.clone())
            .max_decoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(limits::GRPC_MESSAGE_BYTES_MAX);
        let admin = proto::admin_server::AdminServer::new(AdminService {
            registry: registry.clone(),
            truetime: truetime.clone(),
            event_loop: loop_handle.clone(),
            tools: config.admin.tools,
            clock: clock.clone(),
            requests: requests.clone(),
            peers: peers.clone(),
            secret: secret.clone(),
        });
        let peer = proto::peer_server::PeerServer::new(PeerService {
            cluster_id: config.cluster.cluster_id.clone(),
            server_id,
            event_loop: loop_handle.clone(),
            requests: requests.clone(),
            peers: peers.clone(),
            secret: secret.clone(),
        })
        .max_decoding_message_size(limits::RAFT_BATCH_BYTES_MAX.max(limits::SNAPSHOT_MESSAGE_BYTES_MAX));
        let incoming = TcpIncoming::from(
            tokio::net::TcpListener::from_std(listener)
                .map_err(|source| StartError::Listen { addr: local_addr, source })?,
        )
        .with_nodelay(Some(true));
        let routes = Routes::new(kv).add_service(txn_service).add_service(admin).add_service(peer).prepare();
        let served = routes.clone();
        let (grpc_shutdown, shutdown_rx) = oneshot::channel::<()>();
        let grpc_task = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(1)))
                .http2_keepalive_timeout(Some(Duration::from_secs(3)))
                .add_routes(served)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = shutdown_rx.await;
                })
                .await;
            if let Err(e) = result {
                tracing::error!("gRPC server stopped: {e}");
            }
        });
        tracing::info!(server = %server_id, addr = %local_addr, "spanserver started");
        Ok(Server {
            server_id,
            local_addr,
            routes,
            kv: kv_service,
            txn,
            registry,
            event_loop: loop_handle,
            truetime,
            clock,
            requests,
            commit_waiter,
            loop_thread: Some(loop_thread),
            grpc_shutdown: Some(grpc_shutdown),
            grpc_task: Some(grpc_task),
            split_queue_stopped,
        })
    }

    /// Stops serving (letting requests in flight finish for a grace
    /// period), stops the event loop (answering everything that waits), and
    /// closes the database.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.grpc_shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.grpc_task.take() {
            // Peer streams never end on their own: give requests a grace
            // period, then cut them.
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
        let _ = tokio::task::spawn_blocking(move || self.stop_blocking()).await;
    }

    /// Stops at once, as a crash would (minus the lost page cache): no
    /// grace for requests in flight.
    pub async fn crash(self) {
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
    }

    /// Stops the listener and the loop, and closes the database: when this
    /// returns, the data directory can be opened again.
    fn stop_blocking(&mut self) {
        if let Some(tx) = self.grpc_shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.grpc_task.take() {
            task.abort();
        }
        let _ = self.event_loop.send(LoopMsg::Shutdown);
        if let Some(thread) = self.loop_thread.take() {
            let _ = thread.join();
        }
        self.commit_waiter.stop();
        self.clock.stop();
        self.split_queue_stopped.store(true, std::sync::atomic::Ordering::SeqCst);
        // Connection tasks may still hold the service (and so the request handlers)
        // for a moment; the engine is taken from the handlers, and reads in
        // progress hold their handle only while they read.
        if let Some(engine) = self.requests.take_engine() {
            let deadline = std::time::Instant::now() + ENGINE_RELEASE_TIMEOUT;
            while !engine.is_last_handle() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !engine.is_last_handle() {
                tracing::warn!(server = %self.server_id, "database still in use at shutdown");
            }
        }
        tracing::info!(server = %self.server_id, "spanserver stopped");
    }
}

/// How long shutdown waits for reads in progress to let go of the database.
const ENGINE_RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_blocking();
    }
}
