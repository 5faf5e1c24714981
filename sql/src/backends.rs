//! What a gateway's sessions are doing (`pg_stat_activity`), and how one
//! session stops another's statement or connection (`pg_cancel_backend`,
//! `pg_terminate_backend`).
//!
//! An operator's first questions about a stuck database are "who is
//! connected, what is each running, and since when", and the first
//! remedy is to cancel a runaway statement or end an abandoned
//! connection. PostgreSQL answers from shared memory that every backend
//! writes as it works; here every session owns a [`Backend`] that it
//! updates as its statements start and end, and the gateway's
//! [`Registry`] lists its sessions' backends:
//!
//! ```text
//!   session 4711: SELECT pg_sleep(60)        backend 4711: active, query, query_start
//!   session 4712: SELECT pid, state, query FROM pg_stat_activity
//!     -> Registry::backends()                 4711 active ..., 4712 active ...
//!   session 4712: SELECT pg_cancel_backend(4711)
//!     -> 4711's cancel flag set               its statement ends with 57014
//!   session 4712: SELECT pg_terminate_backend(4711)
//!     -> 4711 marked terminated: its statement stops, and whatever its
//!        client sends next (a COMMIT too) is refused with 57P01 and
//!        rolls its transaction back; the gateway closes the connection
//! ```
//!
//! The listing is one gateway's: a SpanDB cluster has a gateway on every
//! server, and `pg_stat_activity` shows the sessions of the one the client
//! is connected to (PostgreSQL shows one server's; a session on another
//! gateway cannot be cancelled from here either). A session that is not a
//! gateway's (`spandb sql`, tests) lists only itself, and a connection
//! not yet logged in (pid 0) is not listed: pid 0 is no session's.
//!
//! Invariants:
//! - A backend is listed while its session lives: the registry holds it
//!   weakly, and a dropped session's entry is gone at the next listing.
//! - Stopping a backend only sets flags its session and gateway already
//!   watch (the cancel flag, the hang-up flag): no session reaches into
//!   another's state, and a stopped session rolls back as one whose
//!   client hung up does.
//! - The query text kept is at most [`limits::ACTIVITY_QUERY_BYTES_MAX`]
//!   bytes (PostgreSQL's `track_activity_query_size`), cut at a character.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::limits;

/// What a backend is doing, as `pg_stat_activity.state` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting for a statement, outside a transaction block.
    Idle,
    /// Running a statement.
    Active,
    /// Waiting for a statement inside a transaction block.
    IdleInTransaction,
    /// Inside a failed transaction block (waiting for ROLLBACK).
    IdleInTransactionAborted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Active => "active",
            State::IdleInTransaction => "idle in transaction",
            State::IdleInTransactionAborted => "idle in transaction (aborted)",
        }
    }
}

/// One backend as `pg_stat_activity` shows it; times in microseconds
/// since the Unix epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendInfo {
    pub pid: i32,
    pub user: String,
    pub application_name: String,
    /// The client's address and port (`None`: not a network client).
    pub client: Option<std::net::SocketAddr>,
    pub backend_start_us: i64,
    /// When the running transaction began (`None`: none).
    pub xact_start_us: Option<i64>,
    /// When the running or last statement began (`None`: none yet).
    pub query_start_us: Option<i64>,
    pub state_change_us: i64,
    pub state: State,
    /// The running or last statement's text.
    pub query: String,
}

/// A session's entry: what `pg_stat_activity` shows of it, and the flags
/// that stop it.
pub struct Backend {
    activity: Mutex<BackendInfo>,
    /// Where it is listed, with its gateway's other sessions (`None`:
    /// nowhere; it sees only itself).
    registry: Option<Arc<Registry>>,
    /// The session's cancel flag (its running statement stops with 57014).
    cancel: Arc<AtomicBool>,
    /// The session's hang-up flag: every statement stops, as if the client
    /// had gone.
    hung_up: Arc<AtomicBool>,
    /// Set by `pg_terminate_backend`: the gateway closes the connection.
    terminated: AtomicBool,
}

impl Backend {
    /// A backend for a session with these flags, started at `now_us`,
    /// listed nowhere.
    pub fn new(cancel: Arc<AtomicBool>, hung_up: Arc<AtomicBool>, user: &str, now_us: i64) -> Backend {
        let info = BackendInfo {
            pid: 0,
            user: user.to_string(),
            application_name: String::new(),
            client: None,
            backend_start_us: now_us,
            xact_start_us: None,
            query_start_us: None,
            state_change_us: now_us,
            state: State::Idle,
            query: String::new(),
        };
        Backend::with_info(info, cancel, hung_up, None)
    }

    fn with_info(
        info: BackendInfo,
        cancel: Arc<AtomicBool>,
        hung_up: Arc<AtomicBool>,
        registry: Option<Arc<Registry>>,
    ) -> Backend {
        Backend { activity: Mutex::new(info), registry, cancel, hung_up, terminated: AtomicBool::new(false) }
    }

    /// This backend again, with these flags, listed in `registry` (the
    /// old one leaves the listing when dropped).
    pub fn renewed(
        &self,
        cancel: Arc<AtomicBool>,
        hung_up: Arc<AtomicBool>,
        registry: Option<Arc<Registry>>,
    ) -> Arc<Backend> {
        let backend = Arc::new(Backend::with_info(self.info(), cancel, hung_up, registry));
        if let Some(r) = &backend.registry {
            r.register(&backend);
        }
        backend
    }

    /// Where it is listed ([`Backend::renewed`]).
    pub fn registry(&self) -> Option<&Arc<Registry>> {
        self.registry.as_ref()
    }

    /// The backends its session sees: its gateway's logged-in sessions,
    /// or itself alone.
    pub fn visible(self: &Arc<Backend>) -> Vec<Arc<Backend>> {
        match &self.registry {
            Some(r) => r.backends(),
            None => vec![self.clone()],
        }
    }

    /// The backends with process id `pid` that `pg_cancel_backend` and
    /// `pg_terminate_backend` reach from this one: none for pid 0 or
    /// less (no session's).
    pub fn find(self: &Arc<Backend>, pid: i32) -> Vec<Arc<Backend>> {
        if pid <= 0 {
            return Vec::new();
        }
        self.visible().into_iter().filter(|b| b.pid() == pid).collect()
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, BackendInfo> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn info(&self) -> BackendInfo {
        self.activity().clone()
    }

    pub fn pid(&self) -> i32 {
        self.activity().pid
    }

    pub fn set_pid(&self, pid: i32) {
        self.activity().pid = pid;
    }

    pub fn set_user(&self, user: &str) {
        self.activity().user = user.to_string();
    }

    pub fn set_client(&self, client: Option<std::net::SocketAddr>) {
        self.activity().client = client;
    }

    pub fn set_application_name(&self, name: &str) {
        let mut a = self.activity();
        if a.application_name != name {
            a.application_name = name.to_string();
        }
    }

    /// A statement starts at `now_us`: active, running `query`, in a
    /// transaction since `xact_start_us` (a block's start, or now).
    pub fn statement_started(&self, query: &str, now_us: i64, xact_start_us: i64) {
        let mut a = self.activity();
        a.query.clear();
        a.query.push_str(truncated(query, limits::ACTIVITY_QUERY_BYTES_MAX));
        a.query_start_us = Some(now_us);
        a.xact_start_us = Some(xact_start_us);
        a.state = State::Active;
        a.state_change_us = now_us;
    }

    /// A statement ended at `now_us`, leaving the session in `state`
    /// (not [`State::Active`]) with `application_name` (a SET may have
    /// changed it); `in_transaction`: a block is still open.
    pub fn statement_ended(&self, state: State, now_us: i64, in_transaction: bool, application_name: &str) {
        let mut a = self.activity();
        a.state = state;
        a.state_change_us = now_us;
        if !in_transaction {
            a.xact_start_us = None;
        }
        if a.application_name != application_name {
            a.application_name = application_name.to_string();
        }
    }

    /// Cancels the running statement (57014), as a CancelRequest does.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Ends the session: its statements stop as if its client had gone,
    /// and its gateway closes the connection ([`Backend::is_terminated`]),
    /// which rolls its transaction back.
    pub fn terminate(&self) {
        self.terminated.store(true, Ordering::SeqCst);
        // The hang-up flag before the cancel flag: a statement starting in
        // between sees the first and stops (`Session::clear_cancel`).
        self.hung_up.store(true, Ordering::SeqCst);
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Whether [`Backend::terminate`] was called: its gateway should close
    /// the connection.
    pub fn is_terminated(&self) -> bool {
        self.terminated.load(Ordering::SeqCst)
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A gateway's backends, one per connected session.
#[derive(Default)]
pub struct Registry {
    backends: Mutex<Vec<Weak<Backend>>>,
}

impl Registry {
    /// Lists `backend` while it lives.
    pub fn register(&self, backend: &Arc<Backend>) {
        let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        backends.retain(|b| b.strong_count() > 0);
        backends.push(Arc::downgrade(backend));
    }

    /// Every live backend whose session has logged in (has a pid), in the
    /// order they registered.
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        let live: Vec<Arc<Backend>> = {
            let mut backends = self.backends.lock().unwrap_or_else(|p| p.into_inner());
            backends.retain(|b| b.strong_count() > 0);
            backends.iter().filter_map(Weak::upgrade).collect()
        };
        // (Each backend's own lock is taken with the registry's released.)
        live.into_iter().filter(|b| b.pid() != 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> (Arc<Backend>, Arc<AtomicBool>, Arc<AtomicBool>) {
        let (cancel, hung_up) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        (Arc::new(Backend::new(cancel.clone(), hung_up.clone(), "alice", 1_000)), cancel, hung_up)
    }

    fn listed(registry: &Arc<Registry>) -> Arc<Backend> {
        let (b, cancel, hung_up) = backend();
        b.renewed(cancel, hung_up, Some(registry.clone()))
    }

    /// Goal: a dropped session leaves the listing; pids find their
    /// backend; a session not logged in (pid 0) is not listed, and pid 0
    /// reaches no one.
    #[test]
    fn backends_are_listed_while_they_live() {
        let registry = Arc::new(Registry::default());
        let (a, b, unnamed) = (listed(&registry), listed(&registry), listed(&registry));
        a.set_pid(7);
        b.set_pid(9);
        let pids = |r: &Registry| r.backends().iter().map(|b| b.pid()).collect::<Vec<_>>();
        assert_eq!(pids(&registry), [7, 9]);
        assert_eq!(a.find(9).len(), 1);
        assert!(a.find(0).is_empty() && unnamed.find(0).is_empty());
        drop(b);
        assert_eq!(pids(&registry), [7]);
        assert!(a.find(9).is_empty());
        let renewed = a.renewed(Arc::default(), Arc::default(), Some(registry.clone()));
        drop(a);
        assert_eq!(pids(&registry), [7], "a renewed backend is listed in its place");
        assert_eq!(renewed.find(7).len(), 1);
        let (alone, _, _) = backend();
        alone.set_pid(5);
        assert_eq!(alone.find(5).len(), 1, "a session listed nowhere sees itself");
        assert!(alone.find(7).is_empty());
    }

    /// Goal: states and times follow statements; a transaction's start
    /// is kept while a block is open and dropped when it ends.
    #[test]
    fn statements_move_the_state() {
        let (b, _, _) = backend();
        b.set_application_name("psql");
        b.statement_started("BEGIN", 2_000, 2_000);
        assert_eq!(b.info().state, State::Active);
        b.statement_ended(State::IdleInTransaction, 2_100, true, "psql");
        b.statement_started("SELECT 1", 3_000, 2_000);
        b.statement_ended(State::IdleInTransaction, 3_100, true, "psql");
        let s = b.info();
        assert_eq!((s.state, s.xact_start_us, s.query_start_us), (State::IdleInTransaction, Some(2_000), Some(3_000)));
        assert_eq!((s.query.as_str(), s.application_name.as_str()), ("SELECT 1", "psql"));
        b.statement_started("COMMIT", 4_000, 2_000);
        b.statement_ended(State::Idle, 4_100, false, "psql");
        assert_eq!(b.info().xact_start_us, None);
    }

    /// Goal: a long query is kept cut at a character boundary.
    #[test]
    fn long_queries_are_cut_at_a_character() {
        let (b, _, _) = backend();
        let query = format!("SELECT '{}'", "é".repeat(limits::ACTIVITY_QUERY_BYTES_MAX));
        b.statement_started(&query, 1, 1);
        let kept = b.info().query;
        assert!(kept.len() <= limits::ACTIVITY_QUERY_BYTES_MAX && kept.len() >= limits::ACTIVITY_QUERY_BYTES_MAX - 1);
        assert!(query.starts_with(&kept));
    }

    /// Goal: a terminated session runs nothing more: its block's COMMIT
    /// is refused with 57P01 and its write is rolled back; the session
    /// that ended it sees it in `pg_stat_activity` until then, idle in its
    /// block, with the client's query.
    #[test]
    fn a_terminated_session_commits_nothing() {
        use crate::{Collected, Session, SqlState, TxnStatus, Value};
        let engine = Arc::new(crate::memory::MemoryEngine::new());
        let run = |s: &mut Session, sql: &str| {
            let mut out = Collected::default();
            s.execute(sql, &mut out).map(|()| out.rows)
        };
        let mut setup = Session::new(engine.clone());
        run(&mut setup, "CREATE TABLE t (id INT PRIMARY KEY)").expect("created");
        let registry = Arc::new(Registry::default());
        let (mut victim, entry) = Session::new(engine.clone()).with_backends(registry.clone(), None);
        victim.set_backend_pid(42);
        let (mut admin, _) = Session::new(engine.clone()).with_backends(registry, None);
        admin.set_backend_pid(43);
        run(&mut victim, "BEGIN").expect("began");
        run(&mut victim, "INSERT INTO t VALUES (1)").expect("inserted");
        let seen = run(&mut admin, "SELECT state, query FROM pg_stat_activity WHERE pid = 42").expect("listed");
        let want = [Value::Text("idle in transaction".into()), Value::Text("INSERT INTO t VALUES (1)".into())];
        assert_eq!(seen, [want]);
        let ended = run(&mut admin, "SELECT pg_terminate_backend(42), pg_terminate_backend(0)").expect("ran");
        assert_eq!(ended, [[Value::Bool(true), Value::Bool(false)]]);
        assert!(entry.is_terminated());
        let e = run(&mut victim, "COMMIT").expect_err("a terminated session commits nothing");
        assert_eq!(e.state, SqlState::AdminShutdown);
        assert_eq!(victim.status(), TxnStatus::Idle, "its block was rolled back");
        assert_eq!(run(&mut setup, "SELECT count(*) FROM t").expect("read"), [[Value::Int8(0)]]);
        assert!(run(&mut victim, "SELECT 1").is_err_and(|e| e.state == SqlState::AdminShutdown));
    }

    /// Goal: terminating sets the flags the session and gateway watch.
    #[test]
    fn terminate_stops_statements_and_marks_the_backend() {
        let (b, cancel, hung_up) = backend();
        b.cancel();
        assert!(cancel.load(Ordering::SeqCst) && !hung_up.load(Ordering::SeqCst) && !b.is_terminated());
        cancel.store(false, Ordering::SeqCst);
        b.terminate();
        assert!(cancel.load(Ordering::SeqCst) && hung_up.load(Ordering::SeqCst) && b.is_terminated());
    }
}
