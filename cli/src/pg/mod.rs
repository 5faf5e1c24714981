//! The PostgreSQL gateway: psql, pgbench and drivers speaking PostgreSQL's
//! protocol 3.0 reach SpanDB's SQL layer through any spanserver.
//!
//! ```text
//!   client ──TCP──> frames (checks every frame) ──> pgwire (framing, startup, portals)
//!                                                     │ one Connection per client
//!                                                     ▼
//!                   Session (sql crate; on the connection's thread) ──> ClientEngine ──> cluster
//! ```
//!
//! The engine's client calls this server's own services directly
//! (`client::Transport::in_process`), other servers over gRPC: with
//! every leader here (`[placement] preferred_leader`), a statement
//! reaches no other process but through Raft.
//!
//! Each connection has a thread of its own, which reads its socket and
//! runs its session's statements inline (PostgreSQL's process per
//! connection). A statement whose reads the leader's lease answers here
//! wakes no other thread from the client's message to the reply; through
//! a shared runtime, every statement cost two thread hand-offs (to a
//! blocking thread and back).
//!
//! The model: one SQL [`Session`] per connection, which holds the
//! connection's transaction. pgwire decodes messages and keeps prepared
//! statements and portals; everything about SQL, transactions and errors
//! is the session's, and the gateway only translates. [`frames`] runs
//! pgwire's connection loop on a stream that hands pgwire whole, checked
//! frames only: pgwire's decoders trust lengths inside messages.
//!
//! - Startup: trust, or SCRAM-SHA-256 passwords when the server has a
//!   users file ([`auth`]); the ParameterStatus set a PostgreSQL 15
//!   server sends ([`server_parameters`]), and BackendKeyData whose
//!   CancelRequest cancels the running statement (57014). A connection
//!   beyond [`CONNECTIONS_MAX`] gets 53300 and is closed.
//! - Simple query: a query of several statements runs as one implicit
//!   transaction, as in PostgreSQL (the first error rolls all of it back),
//!   unless it has transaction control of its own.
//! - Extended query: Parse plans the statement to learn its parameters'
//!   types (inferred from context where the client sent none) and its
//!   columns ([`Session::prepare`]); Bind decodes parameters in text or
//!   binary; Execute runs with them, results in the formats Bind asked.
//!   Named statements are bounded per connection
//!   ([`PREPARED_STATEMENTS_MAX`]) and freed by Close or DEALLOCATE.
//!   Statements prepared by SQL's PREPARE are the session's (EXECUTE and
//!   DEALLOCATE of them too): a DEALLOCATE of a name the gateway does not
//!   hold, or of ALL, goes on to the session.
//! - ReadyForQuery reports the session's own transaction status (I, T,
//!   E), so what the client sees is what the session holds.
//! - COPY FROM STDIN (text format) loads in batches that commit on their
//!   own (`sql::copy` says what atomicity that gives); COPY TO STDOUT
//!   sends a table's or a query's rows as COPY data.
//! - A transaction block idle longer than the session's
//!   `idle_in_transaction_session_timeout` (default 1 minute) ends its
//!   connection (FATAL 25P03) and is rolled back: an abandoned block must
//!   not hold its locks.
//!
//! Invariants: no byte from a client panics the server (bad input is an
//! ErrorResponse with a SQLSTATE, or FATAL and a closed connection for
//! bytes that are not the protocol); a client that disconnects has its
//! transaction rolled back (dropping the session rolls it back) as soon
//! as its running statement, if any, ends, and a running statement is
//! cancelled when its client hangs up ([`hangup`]). Every limit is a
//! constant here or in [`frames`] or [`hangup`].
//!
//! - `pg_stat_activity` lists the gateway's sessions, and
//!   `pg_cancel_backend`/`pg_terminate_backend` stop one
//!   (`sql::backends`); a terminated session's running statement fails
//!   with 57P01, and its connection is ended with FATAL 57P01 at the next
//!   check (`IDLE_CHECK_PERIOD`), rolled back.
//!
//! - An Execute with a row limit (JDBC's `setFetchSize`, asyncpg's
//!   cursors) gets that many rows, then PortalSuspended, until the last
//!   (pgwire keeps the portal's remaining rows); the statement itself ran
//!   to its end first.
//!
//! Not yet (issue "PostgreSQL wire protocol"): TLS, COPY in binary, results
//! streamed rather than collected (a result is collected, then sent:
//! [`RESULT_BYTES_MAX`] bounds what one statement may hold,
//! [`RESULTS_HELD_BYTES_MAX`] what the gateway's connections hold
//! together).

pub mod auth;
mod codec;
mod frames;
mod hangup;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{stream, Sink, SinkExt};
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, ServerParameterProvider,
    StartupHandler,
};
use pgwire::api::copy::{send_copy_in_response, send_copy_out_response, CopyHandler};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{
    send_describe_response, send_execution_response, send_query_response, send_ready_for_query, ExtendedQueryHandler,
    SimpleQueryHandler,
};
use pgwire::api::results::{
    CopyResponse, DescribePortalResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type, DEFAULT_NAME,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::DataRow;
use pgwire::messages::extendedquery::{Close, CloseComplete, Describe, Parse, ParseComplete, Sync as PgSync};
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::{Authentication, PasswordMessageFamily};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use sql::plan::OutputColumn;
use sql::{Collected, Prepared, Session, TxnStatus, Value};
use tokio::net::TcpListener;

use crate::sql_engine::{monotonic_ns, ClientEngine};

/// How long the gateway waits after a failed accept before the next.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);
/// The most client connections one gateway serves at once (PostgreSQL's
/// default `max_connections` is 100); the next gets 53300.
pub const CONNECTIONS_MAX: usize = 200;
/// The most named prepared statements one connection may hold (each holds
/// a plan); the next Parse gets 54000 until some are closed or
/// deallocated.
pub const PREPARED_STATEMENTS_MAX: usize = 10_000;
/// How often a connection checks whether its transaction block has been
/// idle too long (`idle_in_transaction_session_timeout`, a session
/// setting: `sql::Session::idle_in_transaction_timeout`).
const IDLE_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_millis(200);
/// How long the gateway's sweeper (`sql::sweep`) pauses after a batch:
/// at most about `SWEEP_BATCH_ROWS` (1,000) deletes per pause, so
/// sweeping a dropped table is background work, not a second workload.
const SWEEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
/// How long the sweeper waits when it found nothing to sweep (or the
/// cluster did not answer) before it looks again.
const SWEEP_IDLE_POLL: std::time::Duration = std::time::Duration::from_secs(2);
/// The most bytes of rows (as `sql::exec::row_bytes` counts them) one
/// statement's result may hold. The gateway collects a result whole,
/// then sends it (results are not streamed yet), so without a bound one
/// `SELECT` of a large table, or of large values, could make its server
/// run out of memory; past it the statement fails with 53200 and changes
/// nothing (a block it ran in is failed, as after any error).
pub const RESULT_BYTES_MAX: usize = 1024 * 1024 * 1024;
/// The most bytes of results all of a gateway's connections may hold at
/// once (collected and not yet sent): a statement whose rows would pass
/// it fails with 53200 too.
pub const RESULTS_HELD_BYTES_MAX: usize = 2 * RESULT_BYTES_MAX;

/// The version reported to clients: the PostgreSQL whose protocol and
/// catalogs the gateway follows (drivers and psql adapt to it).
const SERVER_VERSION: &str = "15.0 (SpanDB)";

/// Where a gateway's sessions reach the cluster: through a client seeded
/// with `seed` (this server's own gRPC address), whose calls to this
/// server go straight to its services (`local`).
pub struct Cluster {
    pub seed: String,
    pub local: client::Transport,
    /// For the splits at new tables' boundaries (`--sql-split-tables`).
    pub peer_secret: client::PeerSecret,
}

/// Accepts PostgreSQL clients on `listener` until the task is dropped.
/// Sessions reach the cluster through one client, connected at the first
/// PostgreSQL client, and share one set of leased descriptors (one
/// gateway).
pub async fn serve(listener: TcpListener, cluster: Cluster, users: Option<Arc<auth::Users>>, split_tables: bool) {
    let gateway = Arc::new(Gateway {
        cluster,
        users,
        split_tables,
        engine: tokio::sync::OnceCell::new(),
        leases: Arc::default(),
        advisory: Arc::default(),
        watchdog: Arc::default(),
        cancels: Arc::default(),
        backends: Arc::default(),
        results: Arc::default(),
        open: Arc::new(AtomicUsize::new(0)),
        pids: RandomPidSecretKeyGenerator::default(),
        hang_ups: hangup::HangUps::start()
            .inspect_err(|e| tracing::warn!("no hang-up watcher ({e}): statements of vanished clients run on"))
            .ok(),
    });
    let _sweeper = Sweeper::start(gateway.clone());
    let _renewer = Renewer::start(gateway.clone());
    let _watchdog = WatchdogThread::spawn(gateway.watchdog.clone());
    loop {
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(_) => {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let _ = socket.set_nodelay(true);
            let open = OpenConnection::count(&gateway.open);
            // The engine's client lives on this runtime: its connections
            // and tasks must outlive any one PostgreSQL connection.
            let Ok(engine) = gateway.engine().await else {
                // No cluster yet: this connection is refused, the next
                // one tries again.
                return;
            };
            if open.over_limit {
                // Refused at startup (53300): no thread for it, so a flood
                // of connections costs tasks, not threads.
                return connection(socket, gateway, engine, open).await;
            }
            let Ok(socket) = socket.into_std() else { return };
            // A stack for the deepest statement the parser lets through
            // (`sql::limits::SESSION_STACK_BYTES`; reserved, not used).
            let thread = std::thread::Builder::new()
                .name("spandb-pg-conn".into())
                .stack_size(sql::limits::SESSION_STACK_BYTES)
                .spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                        return;
                    };
                    runtime.block_on(async move {
                        let Ok(socket) = tokio::net::TcpStream::from_std(socket) else { return };
                        connection(socket, gateway, engine, open).await
                    })
                });
            if thread.is_err() {
                tracing::warn!("no thread for a PostgreSQL connection; closed it");
            }
        });
    }
}

/// Serves one client connection, on its own thread's runtime.
async fn connection(
    socket: tokio::net::TcpStream,
    gateway: Arc<Gateway>,
    engine: Arc<ClientEngine>,
    open: OpenConnection,
) {
    // The session's cancel flag is its engine's too: a cancelled
    // statement waiting for a lock stops waiting (`sql_engine`).
    let cancel = Arc::new(AtomicBool::new(false));
    let uncancelled: Arc<dyn sql::kv::Engine> = engine.clone();
    let engine = Arc::new(ClientEngine::clone(&engine).with_cancel(cancel.clone()));
    let (session, backend) = Session::new(engine)
        .with_leases(gateway.leases.clone())
        .with_advisory(uncancelled, gateway.advisory.clone())
        .with_watchdog(gateway.watchdog.clone())
        .with_cancel(cancel.clone())
        .with_backends(gateway.backends.clone(), socket.peer_addr().ok());
    let _watch = gateway.hang_ups.as_ref().and_then(|h| {
        use std::os::fd::AsRawFd;
        h.watch(socket.as_raw_fd(), session.hang_up_handle(), cancel.clone())
    });
    let handlers = Arc::new(Connection {
        session: Arc::new(Mutex::new(session)),
        status: Arc::new(AtomicU8::new(status_byte(TxnStatus::Idle))),
        cancel,
        gateway,
        over_limit: open.over_limit,
        statements: Arc::default(),
        activity: Arc::new(Activity::new()),
        login: Arc::new(Mutex::new(Login::Open)),
        reported_zone: Arc::new(Mutex::new("UTC".into())),
    });
    // A connection's failure (a client that vanished, a protocol error)
    // ends that connection only. A transaction block left idle too long
    // ends it too, and so does pg_terminate_backend: the client is sent
    // FATAL (25P03, 57P01), its transaction rolled back.
    let ending = ending(handlers.status.clone(), handlers.activity.clone(), backend);
    if let Some(why) = frames::serve(socket, handlers.clone(), ending).await {
        tracing::info!("closing a connection ({}); rolling its transaction back", why.1);
        handlers.with_session(Session::abort);
    }
    drop(open);
}

/// What the connections of one gateway share.
struct Gateway {
    cluster: Cluster,
    /// Who may connect, by SCRAM-SHA-256 password; `None`: trust.
    users: Option<Arc<auth::Users>>,
    /// New tables get shards of their own (`--sql-split-tables`).
    split_tables: bool,
    engine: tokio::sync::OnceCell<Arc<ClientEngine>>,
    leases: Arc<sql::catalog::Leases>,
    /// The advisory locks its sessions hold, which its [`Renewer`] keeps.
    advisory: Arc<sql::advisory::Registry>,
    /// Times out its sessions' statements (`statement_timeout`), served
    /// by a [`WatchdogThread`].
    watchdog: Arc<sql::timeout::Watchdog>,
    /// The running statement's cancel flag of every logged-in connection,
    /// by its (pid, secret key), for CancelRequest.
    cancels: Arc<Mutex<HashMap<CancelKey, Arc<AtomicBool>>>>,
    /// Its sessions, for `pg_stat_activity`, `pg_cancel_backend` and
    /// `pg_terminate_backend` (`sql::backends`).
    backends: Arc<sql::backends::Registry>,
    /// The bytes of results its connections hold ([`RESULTS_HELD_BYTES_MAX`]).
    results: Arc<ResultMemory>,
    /// How many connections are open.
    open: Arc<AtomicUsize>,
    pids: RandomPidSecretKeyGenerator,
    /// Cancels the statements of clients that hung up ([`hangup`]).
    hang_ups: Option<Arc<hangup::HangUps>>,
}

impl Gateway {
    /// The engine, once the cluster answers (the gateway starts with its
    /// server, before the cluster may), trying every `poll`; `None` if
    /// `stop` is set first.
    async fn engine_when_up(&self, stop: &AtomicBool, poll: std::time::Duration) -> Option<Arc<ClientEngine>> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            match self.engine().await {
                Ok(engine) => return Some(engine),
                Err(_) => tokio::time::sleep(poll).await,
            }
        }
    }

    async fn engine(&self) -> anyhow::Result<Arc<ClientEngine>> {
        let engine = self
            .engine
            .get_or_try_init(|| async {
                let Cluster { seed, local, peer_secret } = &self.cluster;
                let in_process = Some((seed.clone(), local.clone()));
                let config = client::ClientConfig { peer_secret: Some(peer_secret.clone()), ..Default::default() };
                let client = client::Client::connect_in_process([seed.clone()], config, in_process).await?;
                let handle = tokio::runtime::Handle::current();
                let engine = ClientEngine::new(client, handle, seed.clone()).with_table_splits(self.split_tables);
                Ok::<_, anyhow::Error>(Arc::new(engine))
            })
            .await?;
        Ok(engine.clone())
    }
}

/// The gateway's advisory lock renewer: a thread renewing the leases of
/// the locks its sessions hold (`sql::advisory::renew`) every
/// `ADVISORY_RENEW_NS`. It stops when this is dropped.
pub(crate) struct Renewer {
    stop: Arc<AtomicBool>,
}

impl Renewer {
    fn start(gateway: Arc<Gateway>) -> Renewer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let period = std::time::Duration::from_nanos(sql::limits::ADVISORY_RENEW_NS);
        tokio::spawn(async move {
            let Some(engine) = gateway.engine_when_up(&stopped, period).await else { return };
            Renewer::spawn_thread(engine, gateway.advisory.clone(), stopped);
        });
        Renewer { stop }
    }

    /// The renewer's thread (the engine's calls block), until `stop`; a
    /// shell's single session uses one too.
    pub(crate) fn spawn_thread(
        engine: Arc<dyn sql::kv::Engine>,
        registry: Arc<sql::advisory::Registry>,
        stop: Arc<AtomicBool>,
    ) {
        let period = std::time::Duration::from_nanos(sql::limits::ADVISORY_RENEW_NS);
        let thread = std::thread::Builder::new().name("spandb-advisory".into()).spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match sql::advisory::renew(engine.as_ref(), &registry) {
                    Ok(0) => {}
                    Ok(lost) => tracing::warn!(lost, "advisory locks lost: their leases ran out before renewal"),
                    Err(e) => tracing::warn!("advisory lock renewal failed (tried again later): {e}"),
                }
                std::thread::sleep(period);
            }
        });
        if let Err(e) = thread {
            tracing::warn!("no advisory lock renewer ({e}): locks held past their lease are lost");
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The thread that fires a gateway's (or a shell's) statement timeouts
/// (`sql::timeout::Watchdog::serve`, on [`monotonic_ns`]'s clock, which
/// sessions take their deadlines from). It stops when this is dropped.
pub(crate) struct WatchdogThread {
    stop: Arc<AtomicBool>,
    watchdog: Arc<sql::timeout::Watchdog>,
}

impl WatchdogThread {
    pub(crate) fn spawn(watchdog: Arc<sql::timeout::Watchdog>) -> WatchdogThread {
        let stop = Arc::new(AtomicBool::new(false));
        let (stopped, served) = (stop.clone(), watchdog.clone());
        let thread = std::thread::Builder::new()
            .name("spandb-watchdog".into())
            .spawn(move || served.serve(&monotonic_ns, &stopped));
        if let Err(e) = thread {
            tracing::warn!("no statement watchdog ({e}): statement_timeout has no effect");
        }
        WatchdogThread { stop, watchdog }
    }
}

impl Drop for WatchdogThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.watchdog.wake();
    }
}

/// The gateway's sweeper: a thread deleting the rows of dropped tables
/// and indexes (`sql::sweep`), one batch per [`SWEEP_PAUSE`]; every
/// gateway runs one, and their claims keep them off each other's jobs.
/// It stops when this is dropped (with the gateway's task).
struct Sweeper {
    stop: Arc<AtomicBool>,
}

impl Sweeper {
    fn start(gateway: Arc<Gateway>) -> Sweeper {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        tokio::spawn(async move {
            let Some(engine) = gateway.engine_when_up(&stopped, SWEEP_IDLE_POLL).await else { return };
            if let Err(e) = Sweeper::spawn_thread(engine, stopped) {
                tracing::warn!("no sweeper thread ({e}): dropped tables keep their rows");
            }
        });
        Sweeper { stop }
    }

    /// The sweeper's thread (the engine's calls block), until `stop`.
    fn spawn_thread(
        engine: Arc<dyn sql::kv::Engine>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("spandb-sweep".into()).spawn(move || {
            let sweeper: u64 = rand::random();
            while !stop.load(Ordering::Relaxed) {
                let pause = match sql::sweep::sweep_batch(engine.as_ref(), sweeper, sql::limits::SWEEP_BATCH_ROWS) {
                    Ok(sql::sweep::Swept::Keys(n)) => {
                        tracing::debug!(keys = n, "swept");
                        SWEEP_PAUSE
                    }
                    Ok(sql::sweep::Swept::Finished(n)) => {
                        tracing::info!(keys = n, "swept the last keys of a dropped table or index");
                        SWEEP_PAUSE
                    }
                    Ok(sql::sweep::Swept::Idle) => SWEEP_IDLE_POLL,
                    Err(e) => {
                        tracing::debug!("sweep batch failed (tried again later): {e}");
                        SWEEP_IDLE_POLL
                    }
                };
                std::thread::sleep(pause);
            }
        })
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One open connection, counted while it lives.
struct OpenConnection {
    open: Arc<AtomicUsize>,
    over_limit: bool,
}

impl OpenConnection {
    fn count(open: &Arc<AtomicUsize>) -> OpenConnection {
        let before = open.fetch_add(1, Ordering::SeqCst);
        OpenConnection { open: open.clone(), over_limit: before >= CONNECTIONS_MAX }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One client connection and its session.
struct Connection {
    session: Arc<Mutex<Session>>,
    /// The session's transaction status after its last statement (what
    /// ReadyForQuery reports), readable without the session's lock.
    status: Arc<AtomicU8>,
    /// Cancels the session's running statement.
    cancel: Arc<AtomicBool>,
    gateway: Arc<Gateway>,
    /// Refused at startup: the gateway is full.
    over_limit: bool,
    /// The names of the connection's named prepared statements (pgwire's
    /// store cannot list them; DEALLOCATE ALL must).
    statements: Arc<Mutex<BTreeSet<String>>>,
    activity: Arc<Activity>,
    /// Where the password exchange stands (`auth`).
    login: Arc<Mutex<Login>>,
    /// The TimeZone the client was last told (a ParameterStatus goes out
    /// before ReadyForQuery when a SET changes it, as PostgreSQL sends).
    reported_zone: Arc<Mutex<String>>,
}

/// A connection's (pid, secret key): what a CancelRequest names.
type CancelKey = (i32, Vec<u8>);

/// A logged-in connection's entry in the gateway's cancel flags, removed
/// when the connection ends (it lives in the connection's session
/// extensions, which die with it, even by a panic).
struct CancelRegistration {
    key: CancelKey,
    cancels: Arc<Mutex<HashMap<CancelKey, Arc<AtomicBool>>>>,
}

impl Drop for CancelRegistration {
    fn drop(&mut self) {
        self.cancels.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// Answers a CancelRequest by raising the named connection's cancel flag,
/// which its session checks as the statement runs (57014). The flag is
/// cleared when a statement starts, so a request that arrives between
/// statements cancels nothing, as in PostgreSQL.
struct Canceller(Arc<Mutex<HashMap<CancelKey, Arc<AtomicBool>>>>);

#[async_trait]
impl pgwire::api::cancel::CancelHandler for Canceller {
    async fn on_cancel_request(&self, request: pgwire::messages::cancel::CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        if let Some(flag) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// A connection's authentication, between Startup and AuthenticationOk.
enum Login {
    /// Not asked for a password (trust), or not started.
    Open,
    /// AuthenticationSASL sent; the client-first message is next.
    AwaitingFirst { user: String },
    /// SASLContinue sent; the client-final message (the proof) is next.
    AwaitingFinal { user: String, scram: Box<pgwire::api::auth::sasl::scram::ScramServerAuthWaitingForClientFinal> },
}

/// When the session last worked, for the idle-in-transaction timeout.
struct Activity {
    /// Statements (or Parses) running now.
    running: AtomicUsize,
    /// When the last one ended.
    last: Mutex<std::time::Instant>,
    /// The session's timeout as of its last statement (0: never), ms.
    timeout_ms: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            running: AtomicUsize::new(0),
            last: Mutex::new(std::time::Instant::now()),
            timeout_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Runs `work` on `session`, noting when it ran and the session's
    /// timeout afterwards.
    fn around<T>(&self, session: &mut Session, work: impl FnOnce(&mut Session) -> T) -> T {
        self.running.fetch_add(1, Ordering::SeqCst);
        let out = work(session);
        let timeout = session.idle_in_transaction_timeout().map_or(0, |d| d.as_millis().max(1) as u64);
        self.timeout_ms.store(timeout, Ordering::SeqCst);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

/// Returns, saying why (PostgreSQL's FATAL), once the connection must
/// end: its transaction block has sat idle (no statement running) for
/// longer than the session's `idle_in_transaction_session_timeout` (never
/// while idle outside a block), or `pg_terminate_backend` ended its
/// session (whose statements stopped at once, `sql::backends`). Checked
/// every [`IDLE_CHECK_PERIOD`].
async fn ending(
    status: Arc<AtomicU8>,
    activity: Arc<Activity>,
    backend: Arc<sql::backends::Backend>,
) -> frames::Refusal {
    loop {
        tokio::time::sleep(IDLE_CHECK_PERIOD).await;
        if backend.is_terminated() {
            let message = "terminating connection due to administrator command".to_string();
            return frames::Refusal(sql::SqlState::AdminShutdown.code(), message);
        }
        let in_block = matches!(status.load(Ordering::SeqCst), b'T' | b'E');
        let timeout = activity.timeout_ms.load(Ordering::SeqCst);
        if !in_block || timeout == 0 || activity.running.load(Ordering::SeqCst) > 0 {
            continue;
        }
        let idle = activity.last.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if idle.as_millis() >= u128::from(timeout) {
            let message = "terminating connection due to idle-in-transaction timeout".to_string();
            return frames::Refusal("25P03", message);
        }
    }
}

fn status_byte(s: TxnStatus) -> u8 {
    match s {
        TxnStatus::Idle => b'I',
        TxnStatus::InBlock => b'T',
        TxnStatus::Failed => b'E',
    }
}

impl Connection {
    /// Whether the protocol's prepared statement `name` is held.
    fn holds_statement(&self, name: &str) -> bool {
        self.statements.lock().unwrap_or_else(|p| p.into_inner()).contains(name)
    }

    /// DEALLOCATE: frees one of the protocol's prepared statements (26000
    /// if there is none by that name) or all of them.
    fn deallocate<C: ClientPortalStore>(&self, client: &C, target: Option<String>) -> Response
    where
        C::PortalStore: PortalStore,
    {
        let mut names = self.statements.lock().unwrap_or_else(|p| p.into_inner());
        match target {
            None => {
                for name in std::mem::take(&mut *names) {
                    client.portal_store().rm_statement(&name);
                }
                Response::Execution(Tag::new("DEALLOCATE ALL"))
            }
            Some(name) if names.remove(&name) => {
                client.portal_store().rm_statement(&name);
                Response::Execution(Tag::new("DEALLOCATE"))
            }
            Some(name) => error_response(&sql::Error::new(
                sql::SqlState::InvalidSqlStatementName,
                format!("prepared statement \"{name}\" does not exist"),
            )),
        }
    }

    fn transaction_status(&self) -> TransactionStatus {
        match self.status.load(Ordering::SeqCst) {
            b'T' => TransactionStatus::Transaction,
            b'E' => TransactionStatus::Error,
            _ => TransactionStatus::Idle,
        }
    }

    /// Runs `work` on the session, on this connection's thread (a
    /// CancelRequest meanwhile raises the session's cancel flag:
    /// [`Canceller`]).
    fn with_session<T>(&self, work: impl FnOnce(&mut Session) -> T) -> T {
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let out = self.activity.around(&mut session, work);
        self.status.store(status_byte(session.status()), Ordering::SeqCst);
        out
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(self.clone_handle())
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(self.clone_handle())
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(self.clone_handle())
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        Arc::new(self.clone_handle())
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(Canceller(self.gateway.cancels.clone()))
    }
}

impl Connection {
    fn clone_handle(&self) -> Connection {
        Connection {
            session: self.session.clone(),
            status: self.status.clone(),
            cancel: self.cancel.clone(),
            gateway: self.gateway.clone(),
            over_limit: self.over_limit,
            statements: self.statements.clone(),
            activity: self.activity.clone(),
            login: self.login.clone(),
            reported_zone: self.reported_zone.clone(),
        }
    }

    /// Tells the client the session's TimeZone if it changed since it
    /// was last told (a SET, a ROLLBACK of one), before ReadyForQuery.
    async fn report_time_zone<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let zone = self.session.lock().unwrap_or_else(|p| p.into_inner()).time_zone();
        let changed = {
            let mut reported = self.reported_zone.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *reported != zone;
            reported.clone_from(&zone);
            changed
        };
        if changed {
            let status = pgwire::messages::startup::ParameterStatus::new("TimeZone".into(), zone);
            client.feed(PgWireBackendMessage::ParameterStatus(status)).await?;
        }
        Ok(())
    }
}

/// The ParameterStatus set of a PostgreSQL 15 server (what psql, libpq
/// and drivers read at startup), with the client's own
/// `application_name` and user echoed back.
struct ServerParameters;

impl ServerParameterProvider for ServerParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<std::collections::HashMap<String, String>>
    where
        C: ClientInfo,
    {
        Some(server_parameters(client.metadata()))
    }
}

fn server_parameters(startup: &std::collections::HashMap<String, String>) -> std::collections::HashMap<String, String> {
    let user = startup.get("user").cloned().unwrap_or_else(|| sql::system::ROLE_NAME.into());
    let application = startup.get("application_name").cloned().unwrap_or_default();
    let zone = startup_time_zone(startup).unwrap_or_else(|| "UTC".into());
    [
        ("server_version", SERVER_VERSION.to_string()),
        ("server_encoding", "UTF8".into()),
        ("client_encoding", "UTF8".into()),
        ("DateStyle", "ISO, MDY".into()),
        ("IntervalStyle", "postgres".into()),
        ("integer_datetimes", "on".into()),
        ("standard_conforming_strings", "on".into()),
        ("TimeZone", zone),
        ("application_name", application),
        ("is_superuser", "on".into()),
        ("session_authorization", user),
        ("default_transaction_read_only", "off".into()),
        ("in_hot_standby", "off".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The settings a client's startup packet sets, in order: the ones it
/// names directly (`TimeZone`, as pgjdbc sends its JVM's, or libpq from
/// `PGTZ`; the timeouts), then each `-c name=value` of its `options`
/// (libpq's `PGOPTIONS`), as PostgreSQL applies them.
fn startup_settings(startup: &std::collections::HashMap<String, String>) -> Vec<(String, String)> {
    const DIRECT: [&str; 5] =
        ["timezone", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout", "application_name"];
    let mut settings: Vec<(String, String)> = startup
        .iter()
        .filter(|(k, _)| DIRECT.contains(&k.to_lowercase().as_str()))
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    settings.sort();
    let options = startup.get("options").map(String::as_str).unwrap_or_default();
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let assignment = match word.strip_prefix("-c") {
            Some("") => words.next(),
            Some(rest) => Some(rest),
            None => word.strip_prefix("--"),
        };
        if let Some((name, value)) = assignment.and_then(|a| a.split_once('=')) {
            settings.push((name.to_lowercase().replace('-', "_"), value.to_string()));
        }
    }
    settings
}

/// The zone the startup packet's settings leave the session in, as SHOW
/// gives it; `None`: UTC (none asked for, or one SpanDB does not know).
fn startup_time_zone(startup: &std::collections::HashMap<String, String>) -> Option<String> {
    // The last one the session takes (it skips one it does not know).
    let asked = startup_settings(startup).into_iter().rev().filter(|(name, _)| name == "timezone");
    asked.filter_map(|(_, zone)| sql::ops::zone::parse_setting(&zone)).map(|(_, shown)| shown).next()
}

#[async_trait]
impl StartupHandler for Connection {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let startup = match message {
            PgWireFrontendMessage::Startup(startup) => startup,
            PgWireFrontendMessage::PasswordMessageFamily(PasswordMessageFamily::Raw(body)) => {
                return self.on_password_message(client, &body).await;
            }
            _ => {
                return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                    "FATAL".into(),
                    sql::SqlState::ProtocolViolation.code().into(),
                    "expected a startup or password message".into(),
                ))))
            }
        };
        protocol_negotiation(client, &startup).await?;
        save_startup_parameters_to_metadata(client, &startup);
        let user = client.metadata().get("user").cloned().unwrap_or_else(|| sql::system::ROLE_NAME.into());
        {
            let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
            session.set_user(&user);
            for (name, value) in startup_settings(client.metadata()) {
                session.set_startup_parameter(&name, &value);
            }
            *self.reported_zone.lock().unwrap_or_else(|p| p.into_inner()) = session.time_zone();
        }
        if self.over_limit {
            let info = ErrorInfo::new(
                "FATAL".into(),
                sql::SqlState::TooManyConnections.code().into(),
                format!("sorry, too many clients already (this gateway serves {CONNECTIONS_MAX})"),
            );
            return Err(PgWireError::UserError(Box::new(info)));
        }
        if self.gateway.users.is_some() {
            let user = client.metadata().get("user").cloned().unwrap_or_default();
            *self.login.lock().unwrap_or_else(|p| p.into_inner()) = Login::AwaitingFirst { user };
            client.set_state(PgWireConnectionState::AuthenticationInProgress);
            let mechanisms = vec![pgwire::api::auth::sasl::SCRAM_SHA_256_METHOD.to_string()];
            client.send(PgWireBackendMessage::Authentication(Authentication::SASL(mechanisms))).await?;
            return Ok(());
        }
        self.logged_in(client).await
    }
}

/// FATAL 28P01, as PostgreSQL words it.
fn auth_failed(user: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        "28P01".into(),
        format!("password authentication failed for user \"{user}\""),
    )))
}

impl Connection {
    /// A SASL message of the SCRAM exchange (`auth`).
    async fn on_password_message<C>(&self, client: &mut C, body: &[u8]) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(users) = self.gateway.users.clone() else { return Err(auth_failed("")) };
        let login = std::mem::replace(&mut *self.login.lock().unwrap_or_else(|p| p.into_inner()), Login::Open);
        match login {
            Login::AwaitingFirst { user } => {
                let (mechanism, first) = auth::sasl_initial_response(body).ok_or_else(|| auth_failed(&user))?;
                if mechanism != pgwire::api::auth::sasl::SCRAM_SHA_256_METHOD {
                    return Err(auth_failed(&user));
                }
                let scram = pgwire::api::auth::sasl::scram::ScramServerAuth::new();
                let (server_first, waiting) = scram
                    .on_client_first_message_with_secret(first, users.secret(&user))
                    .map_err(|_| auth_failed(&user))?;
                *self.login.lock().unwrap_or_else(|p| p.into_inner()) =
                    Login::AwaitingFinal { user, scram: Box::new(waiting) };
                let continued = Authentication::SASLContinue(server_first.into_bytes().into());
                client.send(PgWireBackendMessage::Authentication(continued)).await?;
                Ok(())
            }
            Login::AwaitingFinal { user, scram } => {
                let server_final = scram.on_client_final_message(body).map_err(|_| auth_failed(&user))?;
                let done = Authentication::SASLFinal(server_final.into_bytes().into());
                client.feed(PgWireBackendMessage::Authentication(done)).await?;
                self.logged_in(client).await
            }
            Login::Open => Err(auth_failed("")),
        }
    }

    /// Authenticated: a pid and secret key for CancelRequest, then
    /// AuthenticationOk, the ParameterStatus set and ReadyForQuery.
    async fn logged_in<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (pid, secret_key) = self.gateway.pids.generate(client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        self.session.lock().unwrap_or_else(|p| p.into_inner()).set_backend_pid(pid);
        let key = (pid, secret_key.to_bytes().to_vec());
        let cancels = self.gateway.cancels.clone();
        cancels.lock().unwrap_or_else(|p| p.into_inner()).insert(key.clone(), self.cancel.clone());
        client.session_extensions().insert(CancelRegistration { key, cancels });
        finish_authentication(client, &ServerParameters).await
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    /// PostgreSQL's simple query: every statement answered in turn, then
    /// ReadyForQuery with the session's status.
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        // DEALLOCATE frees one of the protocol's statements, which the
        // gateway holds; one of SQL's PREPARE, or ALL, the session frees.
        let answers = match sql::parser::deallocate_target(&query.query) {
            Some(Some(name)) if self.holds_statement(&name) => {
                vec![Answer { notices: Notices::default(), response: self.deallocate(client, Some(name)) }]
            }
            _ => {
                let (text, memory) = (query.query.clone(), self.gateway.results.clone());
                self.with_session(move |session| run_query(session, &text, &memory))
            }
        };
        // DEALLOCATE ALL and DISCARD ALL free the protocol's statements
        // too, once the session did its part.
        let frees_all =
            sql::parser::deallocate_target(&query.query) == Some(None) || sql::parser::is_discard_all(&query.query);
        if frees_all && !answers.iter().any(|a| matches!(a.response, Response::Error(_))) {
            let _ = self.deallocate(client, None);
        }
        for Answer { notices, response: r } in answers {
            send_notices(client, notices).await?;
            match r {
                Response::EmptyQuery => {
                    client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?
                }
                Response::Query(results) => send_query_response(client, results, true).await?,
                Response::Execution(tag) | Response::TransactionStart(tag) | Response::TransactionEnd(tag) => {
                    send_execution_response(client, tag).await?
                }
                Response::Error(e) => client.feed(PgWireBackendMessage::ErrorResponse((*e).into())).await?,
                Response::CopyOut(copy) => send_copy_out_response(client, copy).await?,
                Response::CopyIn(copy) => {
                    // ReadyForQuery comes after CopyDone or CopyFail.
                    send_copy_in_response(client, copy).await?;
                    client.set_state(PgWireConnectionState::CopyInProgress(false));
                    return Ok(());
                }
                _ => {}
            }
        }
        self.report_time_zone(client).await?;
        let status = self.transaction_status();
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await
    }

    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (text, memory) = (query.to_string(), self.gateway.results.clone());
        let answers = self.with_session(move |session| run_query(session, &text, &memory));
        Ok(answers.into_iter().map(|a| a.response).collect())
    }
}

/// The bytes of results a gateway's connections hold: collected, and not
/// yet sent ([`RESULTS_HELD_BYTES_MAX`]).
#[derive(Default)]
struct ResultMemory {
    held: AtomicUsize,
}

/// A statement's share of its gateway's [`ResultMemory`], given back when
/// dropped: it goes with the rows it counts, into the response that sends
/// them.
struct ResultClaim {
    memory: Arc<ResultMemory>,
    /// What its rows take.
    bytes: usize,
    /// What it took from the gateway's memory: at least `bytes`, taken
    /// in [`ResultClaim::CHUNK`]s so that a long result's rows do not
    /// each touch the counter all connections share.
    claimed: usize,
}

impl ResultClaim {
    const CHUNK: usize = 64 * 1024;

    fn new(memory: Arc<ResultMemory>) -> ResultClaim {
        ResultClaim { memory, bytes: 0, claimed: 0 }
    }

    /// Takes `n` bytes from the gateway's memory, unless that would pass
    /// its bound.
    fn claim(&mut self, n: usize) -> bool {
        let before = self.memory.held.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) > RESULTS_HELD_BYTES_MAX {
            self.memory.held.fetch_sub(n, Ordering::SeqCst);
            return false;
        }
        self.claimed += n;
        true
    }

    /// Claims `n` more bytes: 53200 if the statement's result, or all the
    /// gateway's, would pass its bound.
    fn take(&mut self, n: usize) -> sql::Result<()> {
        let mib = |b: usize| b / (1024 * 1024);
        if self.bytes.saturating_add(n) > RESULT_BYTES_MAX {
            return Err(sql::Error::new(
                sql::SqlState::OutOfMemory,
                format!(
                    "the statement's result would hold more than {} MiB in memory; read it in parts (LIMIT, or WHERE \
                     on a key)",
                    mib(RESULT_BYTES_MAX)
                ),
            ));
        }
        let short = (self.bytes + n).saturating_sub(self.claimed);
        if short > 0 && !self.claim(short.max(Self::CHUNK)) && (short >= Self::CHUNK || !self.claim(short)) {
            return Err(sql::Error::new(
                sql::SqlState::OutOfMemory,
                format!(
                    "this gateway's results being sent hold more than {} MiB in memory",
                    mib(RESULTS_HELD_BYTES_MAX)
                ),
            ));
        }
        self.bytes += n;
        Ok(())
    }

    /// Gives back every byte claimed so far.
    fn release(&mut self) {
        self.bytes = 0;
        self.memory.held.fetch_sub(std::mem::take(&mut self.claimed), Ordering::SeqCst);
    }
}

impl Drop for ResultClaim {
    fn drop(&mut self) {
        self.release();
    }
}

/// A statement's output, its rows counted against the gateway's memory
/// for results ([`ResultClaim`]).
struct Bounded {
    out: Collected,
    claim: ResultClaim,
}

impl Bounded {
    fn new(memory: &Arc<ResultMemory>) -> Bounded {
        Bounded { out: Collected::default(), claim: ResultClaim::new(memory.clone()) }
    }
}

impl sql::Sink for Bounded {
    fn columns(&mut self, columns: &[OutputColumn]) -> sql::Result<()> {
        // A new result: the rows of any earlier one are dropped.
        self.claim.release();
        self.out.columns(columns)
    }

    fn row(&mut self, row: sql::Row) -> sql::Result<()> {
        self.claim.take(sql::exec::row_bytes(&row))?;
        self.out.row(row)
    }

    fn complete(&mut self, tag: &str) -> sql::Result<()> {
        self.out.complete(tag)
    }

    fn notice(&mut self, message: &str) -> sql::Result<()> {
        self.out.notice(message)
    }

    fn warning(&mut self, state: sql::SqlState, message: &str) -> sql::Result<()> {
        self.out.warning(state, message)
    }
}

/// A statement's response, and the notices and warnings it raised (sent
/// before it).
struct Answer {
    notices: Notices,
    response: Response,
}

/// What a statement said besides its answer: warnings with their
/// SQLSTATE (`BEGIN` in a block: 25001), then notices (`DROP TABLE IF
/// EXISTS`'s "does not exist, skipping": 00000).
#[derive(Default)]
struct Notices {
    warnings: Vec<(sql::SqlState, String)>,
    notices: Vec<String>,
}

impl Notices {
    /// What `out` holds that the session's client takes
    /// (`client_min_messages`).
    fn of(out: &mut Collected, session: &Session) -> Notices {
        let (warnings, notices) = (std::mem::take(&mut out.warnings), std::mem::take(&mut out.notices));
        Notices {
            warnings: if session.wants_message("WARNING") { warnings } else { Vec::new() },
            notices: if session.wants_message("NOTICE") { notices } else { Vec::new() },
        }
    }
}

/// NoticeResponse messages for `said`, as PostgreSQL sends them before
/// the statement's own response.
async fn send_notices<C>(client: &mut C, said: Notices) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let warnings = said.warnings.into_iter().map(|(state, m)| ("WARNING", state.code(), m));
    let notices = said.notices.into_iter().map(|m| ("NOTICE", "00000", m));
    for (severity, code, message) in warnings.chain(notices) {
        let info = ErrorInfo::new(severity.into(), code.into(), message);
        client.feed(PgWireBackendMessage::NoticeResponse(info.into())).await?;
    }
    Ok(())
}

/// Parses statements for the extended protocol: prepares them in the
/// connection's session.
struct Preparer {
    session: Arc<Mutex<Session>>,
    activity: Arc<Activity>,
}

#[async_trait]
impl QueryParser for Preparer {
    type Statement = Arc<Prepared>;

    async fn parse_sql<C>(&self, _client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Arc<Prepared>>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let declared = types.iter().map(|t| codec::declared_type(t.as_ref())).collect::<sql::Result<Vec<_>>>();
        let prepared = declared.and_then(|declared| {
            let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
            self.activity.around(&mut session, |session| session.prepare(sql, &declared))
        });
        match prepared {
            Ok(p) => Ok(p.map(Arc::new)),
            Err(e) => Err(user_error(&e)),
        }
    }

    fn get_parameter_types(&self, stmt: &Arc<Prepared>) -> PgWireResult<Vec<Type>> {
        Ok(stmt.params.iter().map(|t| codec::pg_type(*t)).collect())
    }

    fn get_result_schema(&self, stmt: &Arc<Prepared>, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        let formats: Vec<FieldFormat> =
            (0..stmt.columns.len()).map(|i| format.map(|f| f.format_for(i)).unwrap_or(FieldFormat::Text)).collect();
        Ok(fields(&stmt.columns, &formats).as_ref().clone())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Arc<Prepared>;
    type QueryParser = Preparer;

    fn query_parser(&self) -> Arc<Preparer> {
        Arc::new(Preparer { session: self.session.clone(), activity: self.activity.clone() })
    }

    /// Parse: pgwire's, plus the count of named statements (bounded by
    /// [`PREPARED_STATEMENTS_MAX`]) that DEALLOCATE needs.
    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // pgwire reads an empty name as None: the unnamed statement.
        let named = message.name.clone();
        if let Some(name) = &named {
            let names = self.statements.lock().unwrap_or_else(|p| p.into_inner());
            if !names.contains(name) && names.len() >= PREPARED_STATEMENTS_MAX {
                return Err(user_error(&sql::Error::new(
                    sql::SqlState::ProgramLimitExceeded,
                    format!("a connection may hold at most {PREPARED_STATEMENTS_MAX} prepared statements"),
                )));
            }
        }
        let parser = self.query_parser();
        match StoredStatement::parse(client, &message, parser).await? {
            Some(stmt) => client.portal_store().put_statement(Arc::new(stmt)),
            None => client.portal_store().put_empty_statement(named.as_deref().unwrap_or(DEFAULT_NAME)),
        }
        if let Some(name) = named {
            self.statements.lock().unwrap_or_else(|p| p.into_inner()).insert(name);
        }
        client.send(PgWireBackendMessage::ParseComplete(ParseComplete::new())).await?;
        Ok(())
    }

    /// Describe: pgwire's; a portal pgwire does not hold may be one of
    /// the session's SQL cursors (PostgreSQL's cursors are portals, and
    /// psycopg's named cursors describe theirs by name after DECLARE).
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let (b'P', Some(name)) = (message.target_type, message.name.clone()) {
            if client.portal_store().get_portal(&name).is_none() {
                return match self.with_session(move |session| session.cursor_columns(&name)) {
                    Ok(columns) => {
                        let formats = vec![FieldFormat::Text; columns.len()];
                        let fields = fields(&columns, &formats).as_ref().clone();
                        send_describe_response(client, &DescribePortalResponse::new(fields)).await
                    }
                    Err(e) => Err(user_error(&e)),
                };
            }
        }
        self._on_describe(client, message).await
    }

    /// Close: pgwire's, keeping the count of named statements.
    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        match message.target_type {
            b'S' => {
                client.portal_store().rm_statement(name);
                self.statements.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
            }
            b'P' => client.portal_store().rm_portal(name),
            _ => {}
        }
        client.send(PgWireBackendMessage::CloseComplete(CloseComplete::new())).await?;
        Ok(())
    }

    /// Sync: ReadyForQuery with the session's own status (a COMMIT that
    /// failed ended the transaction: idle, not failed).
    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        client.portal_store().rm_portal(DEFAULT_NAME);
        self.report_time_zone(client).await?;
        let status = self.transaction_status();
        client.set_transaction_status(status);
        send_ready_for_query(client, status).await?;
        client.flush().await?;
        Ok(())
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Arc<Prepared>>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = portal.statement.statement.clone();
        if sql::parser::is_copy_in(&prepared.parsed.statement) {
            // COPY FROM STDIN through Parse/Bind/Execute (tokio-postgres'
            // copy_in): the client sends the data next, then Sync.
            let started = self.with_session(move |session| session.copy_start(&prepared.parsed));
            return Ok(match started {
                Ok(width) => Response::CopyIn(CopyResponse::new(0, width, stream::empty())),
                Err(e) => error_response(&e),
            });
        }
        let values = match bind_values(portal) {
            Ok(v) => v,
            Err(e) => return Ok(error_response(&e)),
        };
        let formats: Vec<FieldFormat> =
            (0..prepared.columns.len()).map(|i| portal.result_column_format.format_for(i)).collect();
        let memory = self.gateway.results.clone();
        let (ran, out, said) = self.with_session(move |session| {
            let mut out = Bounded::new(&memory);
            let ran = session.execute_prepared(&prepared, values, &mut out);
            let said = Notices::of(&mut out.out, session);
            (ran, out, said)
        });
        send_notices(client, said).await?;
        Ok(match ran {
            Ok(()) => response(out, &formats),
            Err(e) => error_response(&e),
        })
    }
}

/// COPY FROM STDIN: the session takes the data and writes it in batches
/// (`sql::copy`); errors wait for CopyDone, so the client is not cut
/// off mid-stream.
#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let chunk = copy_data.data;
        self.with_session(move |session| session.copy_data(&chunk));
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let done = self.with_session(|session| session.copy_done());
        client.set_transaction_status(self.transaction_status());
        match done {
            Ok(tag) => send_execution_response(client, command_tag(&tag)).await,
            Err(e) => Err(user_error(&e)),
        }
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let message = fail.message;
        let e = self.with_session(move |session| session.copy_fail(&message));
        client.set_transaction_status(self.transaction_status());
        user_error(&e)
    }
}

/// The values of a portal's parameters, decoded by the types its
/// statement was prepared with.
fn bind_values(portal: &Portal<Arc<Prepared>>) -> sql::Result<Vec<Value>> {
    let types = &portal.statement.statement.params;
    if portal.parameters.len() != types.len() {
        return Err(sql::Error::new(
            sql::SqlState::ProtocolViolation,
            format!(
                "bind message supplies {} parameters, but prepared statement \"{}\" requires {}",
                portal.parameters.len(),
                portal.statement.id,
                types.len()
            ),
        ));
    }
    portal
        .parameters
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (bytes, ty))| codec::decode_param(bytes.as_deref(), *ty, portal.parameter_format.is_binary(i)))
        .collect()
}

/// Runs one simple query. Several statements with no transaction control
/// of their own run as one implicit transaction (PostgreSQL's rule): the
/// first error rolls all of them back. The responses in order, the first
/// error last.
fn run_query(session: &mut Session, query: &str, memory: &Arc<ResultMemory>) -> Vec<Answer> {
    let plain = |response: Response| Answer { notices: Notices::default(), response };
    let statements = match sql::parser::parse(query) {
        Ok(s) => s,
        Err(e) => return vec![plain(error_response(&e))],
    };
    if statements.is_empty() {
        return vec![plain(Response::EmptyQuery)];
    }
    let implicit = statements.len() > 1
        && session.status() == TxnStatus::Idle
        && !statements
            .iter()
            .any(|p| sql::parser::controls_transaction(&p.statement) || sql::parser::is_copy_in(&p.statement));
    if implicit {
        if let Err(e) = session.execute_unlisted("BEGIN", &mut Collected::default()) {
            return vec![plain(error_response(&e))];
        }
    }
    let mut answers = Vec::new();
    let mut failed = false;
    for parsed in statements {
        if sql::parser::is_copy_in(&parsed.statement) {
            // The client sends the data next; the query ends here.
            match session.copy_start(&parsed) {
                Ok(width) => answers.push(plain(Response::CopyIn(CopyResponse::new(0, width, stream::empty())))),
                Err(e) => answers.push(plain(error_response(&e))),
            }
            break;
        }
        let mut out = Bounded::new(memory);
        let ran = session.execute_parsed(query, &parsed, &mut out);
        let notices = Notices::of(&mut out.out, session);
        let response = match ran {
            Ok(()) if sql::parser::is_copy_out(&parsed.statement) => {
                // The statement ran, so its options were checked.
                let format = sql::copy::CopyFormat::of_statement(&parsed.statement).ok().flatten();
                copy_out_response(out, format.unwrap_or_else(sql::copy::CopyFormat::text))
            }
            Ok(()) => response(out, &[]),
            Err(e) => {
                failed = true;
                error_response(&e)
            }
        };
        answers.push(Answer { notices, response });
        if failed {
            break;
        }
    }
    if implicit {
        let end = if failed { "ROLLBACK" } else { "COMMIT" };
        if let Err(e) = session.execute_unlisted(end, &mut Collected::default()) {
            answers.push(plain(error_response(&e)));
        }
    }
    answers
}

/// COPY ... TO STDOUT: the query's rows as records of `format` (after
/// a header record if it asks for one), one CopyData each (pgwire adds
/// CopyDone and `COPY n`).
fn copy_out_response(out: Bounded, format: sql::copy::CopyFormat) -> Response {
    let Bounded { out, claim } = out;
    let width = out.columns.len();
    let header = format.header.then(|| format.header_record(out.columns.iter().map(|c| c.name.as_str())));
    let records = header.into_iter().chain(out.rows.into_iter().map(move |row| format.format_row(&row)));
    // The claim goes when the rows have been sent (the stream dropped).
    let lines = records.map(move |record| {
        let _rows = &claim;
        Ok(CopyData::new(record.into_bytes().into()))
    });
    Response::CopyOut(CopyResponse::new(0, width, stream::iter(lines)))
}

fn error_info(e: &sql::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new("ERROR".into(), e.state.code().into(), e.message.clone());
    info.detail = e.detail.clone();
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    info
}

fn error_response(e: &sql::Error) -> Response {
    Response::Error(Box::new(error_info(e)))
}

fn user_error(e: &sql::Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(e)))
}

/// RowDescription fields for `columns`, each in its format.
fn fields(columns: &[OutputColumn], formats: &[FieldFormat]) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let format = formats.get(i).copied().unwrap_or(FieldFormat::Text);
                FieldInfo::new(c.name.clone(), None, None, codec::pg_type(c.data_type), format)
            })
            .collect(),
    )
}

/// A statement's result as PostgreSQL sends it: rows and a tag, or a tag.
/// `formats` gives each column's format (text where it says nothing).
fn response(out: Bounded, formats: &[FieldFormat]) -> Response {
    let Bounded { out, claim } = out;
    let tag_text = out.tags.last().cloned().unwrap_or_default();
    let tag = command_tag(&tag_text);
    match tag_text.as_str() {
        "BEGIN" => return Response::TransactionStart(tag),
        "COMMIT" | "ROLLBACK" => return Response::TransactionEnd(tag),
        _ => {}
    }
    if out.columns.is_empty() {
        return Response::Execution(tag);
    }
    let formats: Vec<FieldFormat> =
        (0..out.columns.len()).map(|i| formats.get(i).copied().unwrap_or(FieldFormat::Text)).collect();
    let fields = fields(&out.columns, &formats);
    let rows: Vec<PgWireResult<DataRow>> = out.rows.iter().map(|row| Ok(codec::encode_row(row, &formats))).collect();
    // The claim goes when the rows have been sent (the stream dropped).
    let rows = stream::iter(rows.into_iter().inspect(move |_| {
        let _rows = &claim;
    }));
    let mut query = QueryResponse::new(fields, rows);
    // pgwire appends the count of rows it sent: give it the words
    // before ours (`SELECT`, `INSERT 0`, `UPDATE`).
    query.command_tag = match tag_text.rsplit_once(' ') {
        Some((words, n)) if n.chars().all(|c| c.is_ascii_digit()) => words.to_string(),
        _ => tag_text,
    };
    Response::Query(query)
}

/// `INSERT 0 3` -> Tag("INSERT", oid 0, rows 3); `CREATE TABLE` as is.
fn command_tag(text: &str) -> Tag {
    let words: Vec<&str> = text.split(' ').collect();
    match words.as_slice() {
        ["INSERT", oid, n] => match (oid.parse(), n.parse()) {
            (Ok(oid), Ok(n)) => Tag::new("INSERT").with_oid(oid).with_rows(n),
            _ => Tag::new(text),
        },
        [command, n] if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => match n.parse() {
            Ok(n) => Tag::new(command).with_rows(n),
            Err(_) => Tag::new(text),
        },
        _ => Tag::new(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the gateway's sweeper thread deletes a dropped table's rows
    /// on its own, batch after batch, and ends when told to stop.
    #[test]
    fn the_sweeper_thread_sweeps_a_dropped_table_and_stops() {
        let engine = Arc::new(sql::memory::MemoryEngine::new());
        let mut session = Session::new(engine.clone());
        for statement in [
            "CREATE TABLE t (id INT PRIMARY KEY)",
            "INSERT INTO t SELECT g FROM generate_series(1, 2500) g",
            "DROP TABLE t",
        ] {
            session.execute(statement, &mut Collected::default()).unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        assert_eq!(sql::sweep::jobs_left(engine.as_ref()).unwrap(), 1);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = Sweeper::spawn_thread(engine.clone(), stop.clone()).expect("a thread");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while sql::sweep::jobs_left(engine.as_ref()).unwrap() > 0 {
            assert!(std::time::Instant::now() < deadline, "the sweeper did not finish");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let live_user_keys = engine.dump().into_iter().filter(|(k, _)| {
            sql::encoding::decode_index_prefix(k).is_ok_and(|(t, _, _)| t >= sql::catalog::FIRST_USER_TABLE_ID)
        });
        assert_eq!(live_user_keys.count(), 0);
        drop(Sweeper { stop });
        thread.join().expect("the sweeper ends");
    }

    /// Goal: the startup parameters are a PostgreSQL 15 server's (libpq
    /// and drivers read server_version's major number), and the client's
    /// user and application name come back.
    #[test]
    fn startup_parameters_are_a_postgresql_15_servers() {
        let startup: std::collections::HashMap<String, String> =
            [("user".to_string(), "alice".to_string()), ("application_name".to_string(), "psql".to_string())]
                .into_iter()
                .collect();
        let p = server_parameters(&startup);
        assert!(p["server_version"].starts_with("15."), "{p:?}");
        assert_eq!(p["session_authorization"], "alice");
        assert_eq!(p["application_name"], "psql");
        for key in [
            "server_encoding",
            "client_encoding",
            "DateStyle",
            "IntervalStyle",
            "integer_datetimes",
            "standard_conforming_strings",
            "TimeZone",
            "is_superuser",
            "default_transaction_read_only",
            "in_hot_standby",
        ] {
            assert!(p.contains_key(key), "{key}: {p:?}");
        }
        assert_eq!(p["TimeZone"], "UTC");
    }

    /// Goal: a result past [`RESULT_BYTES_MAX`] fails with 53200 instead
    /// of being held, gives its memory back, and the session goes on; all
    /// of a gateway's results together stay within
    /// [`RESULTS_HELD_BYTES_MAX`]; a result's claim lasts until its rows
    /// have been sent (its response dropped).
    #[test]
    fn results_are_bounded_in_memory() {
        let held = |m: &ResultMemory| m.held.load(Ordering::SeqCst);
        let memory = Arc::new(ResultMemory::default());
        let mut session = Session::new(Arc::new(sql::memory::MemoryEngine::new()));
        let value = 16_000_000;
        let big = format!("SELECT repeat('x', {value}) FROM generate_series(1, {})", RESULT_BYTES_MAX / value + 2);
        let answers = run_query(&mut session, &big, &memory);
        assert!(matches!(&answers[..], [Answer { response: Response::Error(e), .. }] if e.code == "53200"));
        assert_eq!(held(&memory), 0, "a failed result gives its memory back");

        let answers = run_query(&mut session, "SELECT 'small'", &memory);
        assert!(matches!(&answers[..], [Answer { response: Response::Query(_), .. }]));
        assert!(held(&memory) > 0, "rows not yet sent are counted");
        drop(answers);
        assert_eq!(held(&memory), 0);

        let (mut a, mut b, mut c) =
            (ResultClaim::new(memory.clone()), ResultClaim::new(memory.clone()), ResultClaim::new(memory.clone()));
        a.take(RESULT_BYTES_MAX).expect("one statement may hold its bound");
        assert!(a.take(1).is_err(), "but no more");
        b.take(RESULTS_HELD_BYTES_MAX - RESULT_BYTES_MAX).expect("within the gateway's");
        assert!(c.take(1).is_err(), "the gateway's results are at their bound");
        assert_eq!(held(&memory), RESULTS_HELD_BYTES_MAX, "a refused claim takes nothing");
        drop(a);
        c.take(1).expect("room again once a result was sent");
        drop((b, c));
        assert_eq!(held(&memory), 0);
    }

    /// Goal: a multi-statement query is listed (`pg_stat_activity`) as
    /// the client sent it, not as the implicit BEGIN and COMMIT the
    /// gateway wraps it in, and idle once it ended.
    #[test]
    fn a_multi_statement_query_is_listed_as_sent() {
        let registry = Arc::new(sql::backends::Registry::default());
        let engine = Arc::new(sql::memory::MemoryEngine::new());
        let (mut session, entry) = Session::new(engine).with_backends(registry, None);
        session.set_backend_pid(7);
        let memory = Arc::new(ResultMemory::default());
        let query = "SELECT 1; SELECT 2";
        let answers = run_query(&mut session, query, &memory);
        assert_eq!(answers.len(), 2);
        let info = entry.info();
        assert_eq!((info.query.as_str(), info.state, info.xact_start_us), (query, sql::backends::State::Idle, None));
    }

    /// Goal: the settings a startup packet carries are the session's, as
    /// PostgreSQL applies them: named directly (pgjdbc's `TimeZone`) or in
    /// `options` (`-c name=value`, `--name=value`); the TimeZone reported
    /// is the one in force, UTC for one SpanDB does not know.
    #[test]
    fn startup_settings_are_the_session_s() {
        let startup = |pairs: &[(&str, &str)]| -> std::collections::HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let jdbc = startup(&[("user", "app"), ("TimeZone", "europe/paris"), ("application_name", "psql")]);
        let want = [("application_name", "psql"), ("timezone", "europe/paris")];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(startup_settings(&jdbc), want);
        assert_eq!(server_parameters(&jdbc)["TimeZone"], "Europe/Paris");
        let libpq = startup(&[("options", "-c statement_timeout=5s -ctimezone=Asia/Tokyo --lock-timeout=1s")]);
        let want = [("statement_timeout", "5s"), ("timezone", "Asia/Tokyo"), ("lock_timeout", "1s")];
        let want: Vec<(String, String)> = want.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(startup_settings(&libpq), want);
        assert_eq!(server_parameters(&libpq)["TimeZone"], "Asia/Tokyo");
        assert_eq!(server_parameters(&startup(&[("TimeZone", "Nowhere/Land")]))["TimeZone"], "UTC");
    }
}
