//! A SQL session: one client's connection state and the statement loop.
//!
//! ```text
//!   text ──parse──> statements ──plan (reads the catalog in the txn)──>
//!        ──optimize──> run ──rows──> Sink (shell, PostgreSQL protocol, tests)
//! ```
//!
//! Transactions: a statement outside BEGIN is its own transaction (a
//! plain SELECT a read-only one: lock-free and still strong). If it aborts
//! with a retryable error before any of its rows reached the sink (rows
//! are held back up to [`limits::RESULT_BUFFER_ROWS`]), it runs again, up
//! to [`limits::AUTOCOMMIT_RETRIES_MAX`] times. Inside BEGIN, statements
//! share one SpanDB transaction; an error aborts it, and everything but
//! COMMIT/ROLLBACK then fails with 25P02 until the client ends it (COMMIT
//! of an aborted transaction rolls back, as in PostgreSQL). A retryable
//! abort reaches the client as 40001 with the reason.
//!
//! Time: `AS OF SYSTEM TIME` reads at a past timestamp (Spanner's snapshot
//! reads) or, with `with_max_staleness('10s')`, at a bounded-stale one.
//! Where PostgreSQL and Spanner differ — `now()` is the statement's start
//! here too, but a read-write transaction's commit timestamp (shown by
//! `SHOW COMMIT TIMESTAMP`) is chosen at commit, not at BEGIN — SpanDB
//! does what Spanner does.
//!
//! # Kept plans
//!
//! A prepared statement keeps its plan for its next Execute, as
//! PostgreSQL keeps a generic plan: planning was about 7% of a gateway's
//! CPU in pgbench select-only, and 2% of the servers' CPU in TPC-B. That
//! holds for read-only statements outside a block and for the statements
//! of read-write transactions that plan from leases (the `catalog`
//! module's "Writers"), not for those of a transaction that changed a
//! schema or owns a drain. A plan does not depend on the transaction's
//! mode, so one kept plan serves both. A writer that runs a kept plan
//! uses its leases as planning would: they bind its deadline, and are
//! read under locks if the block nears it.
//! A plan is kept only if it was made from leased descriptors and nothing
//! read (the `catalog` module's "Leases"; a statement over system
//! relations reads the catalog, so its plan is never kept). It is used
//! again only if every descriptor it was planned from is still leased at
//! the same version, and for the same parameter types, optimizer rules,
//! user and time zone (a constant such as `'2026-01-01'::timestamptz` is
//! folded in it: `Session::enter_zone` drops the kept plans when the
//! zone changes). That is the condition under which planning again would
//! give the same plan: with no read, a plan depends only on those. A schema change
//! waits out every lease, so after it a kept plan fails the check and the
//! statement is planned again.
//!
//! ```text
//!   Execute p1 ($1 = 7)   plan from leases {t: v3} ── keep (p1's SQL)
//!   Execute p1 ($1 = 9)   t leased at v3? yes ── run the kept plan
//!   ALTER TABLE t ...     (waits out the leases; t is v5 now)
//!   Execute p1 ($1 = 9)   t leased at v3? no ── plan again, keep that
//! ```
//!
//! Invariant: a kept plan runs only while a fresh plan would come from
//! the same descriptors; at most [`limits::KEPT_PLANS_MAX`] per session.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use sqlparser::ast;

use crate::advisory;
use crate::backfill;
use crate::catalog::{Catalog, DeadlineLifting, IndexDesc, LeaseChecked, LeaseUse, Leases, TableDesc, WriterLeases};
use crate::catalog::{Drains, FollowUp};
use crate::copy::CopyFormat;
use crate::error::{Error, Result, SqlState};
use crate::exec::{self, Cx};
use crate::explain;
use crate::kv::{Attempt, Committed, Engine, KvError, Mode, Pair, Timestamp, Transaction};
use crate::limits;
use crate::optimizer::{self, Rules};
use crate::parser::{self, quote_name, Parsed};
use crate::plan::{Constraints, Expr, Node, OnConflict, OutputColumn, Plan, ScanSpan, WindowCall};
use crate::planner::{dml_body, Planner};
pub use crate::sink::{Collected, Sink};
use crate::sql_err;
use crate::types::{DataType, Row, Value};
use crate::write::{self, RowIds};

mod cursors;
mod prepared;
mod savepoints;

/// The transaction state, as PostgreSQL's ReadyForQuery reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// `I`: no transaction block.
    Idle,
    /// `T`: in a transaction block.
    InBlock,
    /// `E`: in a failed transaction block.
    Failed,
}

/// Row ids for tables without a primary key ([`RowIds`]): each session
/// numbers its rows (32 bits) under a prefix of its own (31 bits, drawn
/// from its start time and a process-wide count of sessions), and the
/// pair goes through a bijection of 63-bit numbers, so ids spread over
/// the key space and one session never repeats one. Two sessions can
/// only produce the same id if they draw the same prefix (one chance in
/// 2^31 for a pair) and then the same row number; after 2^32 rows a
/// session draws a new prefix.
struct RowIdSequence {
    prefix: u64,
    next: u64,
    seed: u64,
}

/// Sessions begun in this process (part of each one's prefix).
static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

const ROW_ID_BITS: u32 = 63;
const ROW_ID_MASK: u64 = (1 << ROW_ID_BITS) - 1;

impl RowIdSequence {
    fn new(now_ns: u64) -> RowIdSequence {
        let mut s = RowIdSequence { prefix: 0, next: 0, seed: now_ns };
        s.draw_prefix();
        s
    }

    fn draw_prefix(&mut self) {
        let session = SESSIONS.fetch_add(1, AtomicOrdering::Relaxed);
        self.seed = self.seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        self.prefix = scramble(self.seed ^ session.rotate_left(32)) >> 32;
        self.next = 0;
    }
}

/// A bijection of `[0, 2^63)`: xorshifts and odd multipliers modulo 2^63
/// (each step invertible), mixing every input bit into the high ones.
fn scramble(x: u64) -> u64 {
    let mut z = x & ROW_ID_MASK;
    z = ((z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9)) & ROW_ID_MASK;
    z = ((z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB)) & ROW_ID_MASK;
    z ^ (z >> 31)
}

impl RowIds for RowIdSequence {
    fn next_row_id(&mut self) -> i64 {
        if self.next > u64::from(u32::MAX) {
            self.draw_prefix();
        }
        let id = scramble((self.prefix << 32) | self.next);
        self.next += 1;
        id as i64
    }
}

/// One client's session.
pub struct Session {
    engine: Arc<dyn Engine>,
    /// The engine for what must finish after a cancel too: giving back
    /// advisory locks, undoing a failed schema change's half-built index
    /// or copy ([`Session::with_advisory`] gives it; until then the
    /// session's own).
    uncancelled: Arc<dyn Engine>,
    txn: Option<Box<dyn Transaction>>,
    status: TxnStatus,
    /// The explicit transaction's start time (its `now()`), microseconds.
    txn_now_us: i64,
    last_commit_ts: Option<Timestamp>,
    row_ids: RowIdSequence,
    settings: Arc<BTreeMap<String, String>>,
    /// Optimizer rules (all on; tests turn them off).
    pub rules: Rules,
    /// Set from another thread to cancel the running statement.
    cancel: Arc<AtomicBool>,
    /// Set from another thread when the client is gone: every statement
    /// from then on is cancelled (`cancel` is not cleared).
    hung_up: Arc<AtomicBool>,
    names: crate::catalog::NameCache,
    /// Descriptors read-only statements may use without reading them.
    leases: Arc<Leases>,
    /// The drains the running statement or transaction block waited out.
    drains: Drains,
    /// Tables the transaction block has used (a schema change of one of
    /// them cannot drain: the block holds its descriptor).
    block_tables: HashSet<String>,
    /// The read-write transaction's use of leased descriptors
    /// (`catalog`, "Writers").
    writer_leases: WriterLeases,
    /// The read-write transaction ran a statement other than SELECT,
    /// INSERT, UPDATE and DELETE (it may have changed a schema): it plans
    /// from no lease any more, and leases nothing when it commits.
    txn_changed_schema: bool,
    /// The running statement's INSERTs leave unique checks to the commit
    /// ([`Cx::defer_unique_checks`]).
    defer_unique_checks: bool,
    /// What the running schema change left for after its commit.
    followup: Option<FollowUp>,
    /// The priority of a transaction block that failed retryably: the
    /// next BEGIN (the client running it again, as pgbench's --max-tries
    /// does) keeps it, so wound-wait ages the retry instead of starting it
    /// young every time.
    retry_priority: Option<crate::kv::Priority>,
    /// The running statement is an EXPLAIN ANALYZE whose last line is
    /// its transaction's commit (added once that is known).
    explain_commit: bool,
    /// The running statement's parameters (`$1`, ...): their types and,
    /// when it executes, their values.
    params: Params,
    /// A COPY FROM STDIN taking data ([`crate::copy`]).
    copy: Option<crate::copy::CopyIn>,
    /// Who logged in: what `current_user` names.
    user: String,
    /// Plans of prepared statements ("Kept plans").
    kept_plans: HashMap<String, KeptPlan>,
    /// Statements prepared by SQL's PREPARE, by name ([`prepared`]).
    sql_prepared: HashMap<String, Arc<Prepared>>,
    /// How many executions used a kept plan.
    plans_reused: u64,
    /// The block's savepoints, oldest first ([`savepoints`]).
    savepoints: Vec<savepoints::Savepoint>,
    /// Checks of deferrable foreign keys the block's statements put off to
    /// its COMMIT ("Deferred checks" below), each numbered (a savepoint
    /// keeps the next number: ROLLBACK TO drops those from it on).
    deferred_checks: Vec<(u64, crate::plan::DeferredCheck)>,
    /// The settings when the block began: a ROLLBACK puts them back (SET
    /// and set_config are transactional, as in PostgreSQL), and a COMMIT
    /// the ones set LOCAL (`local_settings`).
    settings_at_begin: Arc<BTreeMap<String, String>>,
    /// The settings the client gave at startup: what RESET goes back to,
    /// as in PostgreSQL.
    startup_settings: BTreeMap<String, String>,
    local_settings: Vec<String>,
    /// The number the next deferred check gets.
    next_deferred_check: u64,
    /// When the block checks its deferrable keys (SET CONSTRAINTS).
    constraint_mode: crate::plan::ConstraintMode,
    /// The session's advisory locks (`pg_advisory_lock`, [`advisory`]).
    advisory: Arc<advisory::SessionLocks>,
    /// What the session's `nextval` gave, for `currval` ([`crate::sequence`]).
    sequences: Arc<crate::sequence::SessionValues>,
    /// While a prepared query, or write with RETURNING, runs: the columns
    /// Describe announced for it. A plan whose columns differ (a schema
    /// change since Parse: `SELECT *` over a table that gained a column,
    /// `RETURNING id` once `id` became a bigint) is refused before it
    /// runs, with PostgreSQL's 0A000, so no row of another shape reaches
    /// the client and no write is made.
    described: Option<Vec<OutputColumn>>,
    /// [`Session::set_backend_pid`]'s (0 for a session no client gave one).
    backend_pid: i32,
    /// What `pg_stat_activity` shows of this session, and the flags that
    /// stop it ([`crate::backends`]); listed with its gateway's sessions
    /// once [`Session::with_backends`] says where.
    backend: Arc<crate::backends::Backend>,
    /// Its SQL cursors, by name (`cursors`).
    cursors: BTreeMap<String, cursors::Cursor>,
    /// Cursors declared so far (each gets the next number: a ROLLBACK TO
    /// SAVEPOINT closes those numbered from the savepoint's on).
    cursors_declared: u64,
    /// The statements the session runs for its gateway (a multi-statement
    /// query's implicit BEGIN and COMMIT) are not its client's: its entry
    /// keeps showing the client's query.
    unlisted: bool,
    /// Why the block's transaction ended at the servers, if an error of
    /// its ended it: ROLLBACK TO SAVEPOINT cannot go back into it.
    txn_lost: Option<String>,
    /// How many statements of the block did what no ROLLBACK TO can take
    /// back: changed a schema, or loaded rows in batches committed on
    /// their own (COPY, a big INSERT ... SELECT into a table it created).
    irreversible_steps: u64,
    /// What stops statements that outrun `statement_timeout`
    /// ([`crate::timeout`]); none: they never time out.
    watchdog: Option<Arc<crate::timeout::Watchdog>>,
    /// Set when the watchdog cancelled the running statement.
    timed_out: Arc<AtomicBool>,
    /// The zone `kept_plans` were made in ([`Session::enter_zone`]).
    plans_zone: crate::ops::zone::Zone,
    /// The running COPY FROM's timeout, armed until it ends.
    copy_timeout: Option<crate::timeout::Ticket>,
}

/// A statement's parameters.
#[derive(Debug, Clone, Default)]
struct Params {
    types: Vec<DataType>,
    values: Vec<Value>,
    /// The statement was prepared (its plan may be kept).
    prepared: bool,
}

/// The plan of a prepared statement, kept by its session for
/// the statement's next executions (module docs, "Kept plans").
struct KeptPlan {
    param_types: Vec<DataType>,
    rules: Rules,
    plan: Arc<Plan>,
    /// `(name, table id, version)` of each leased descriptor it was
    /// planned from: the plan is used again only while every one of these
    /// names is leased at that version.
    tables: Vec<(String, u32, u64)>,
}

/// A statement prepared for PostgreSQL's extended protocol (Parse): what
/// Describe reports of it, and what Execute runs.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub sql: String,
    pub parsed: Parsed,
    /// The type of each `$n` parameter: as the client declared it, else
    /// as the statement's context implies (`abalance + $1`: int4), else
    /// text.
    pub params: Vec<DataType>,
    /// The columns of the rows it returns (empty: it returns none).
    pub columns: Vec<OutputColumn>,
}

/// A statement's rows and tag, held back while it may still be retried.
struct Held {
    /// Notices (`None`) and warnings it raised: a retry raises them again.
    said: Vec<(Option<SqlState>, String)>,
    columns: Option<Vec<OutputColumn>>,
    rows: Vec<Row>,
    /// What `rows` take ([`exec::row_bytes`]).
    bytes: usize,
    /// Rows already passed on (no retry after that).
    flushed: bool,
}

/// A sink that holds rows back until there are too many to keep.
struct HoldingSink<'s> {
    inner: &'s mut dyn Sink,
    held: Held,
}

impl HoldingSink<'_> {
    /// Passes on the notices and warnings held (an attempt that ends the
    /// statement, in success or not, says them once).
    fn flush_said(&mut self) -> Result<()> {
        for (state, message) in self.held.said.drain(..) {
            match state {
                Some(state) => self.inner.warning(state, &message)?,
                None => self.inner.notice(&message)?,
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.flush_said()?;
        if let Some(c) = self.held.columns.take() {
            self.inner.columns(&c)?;
        }
        for r in self.held.rows.drain(..) {
            self.inner.row(r)?;
        }
        Ok(())
    }
}

impl Sink for HoldingSink<'_> {
    fn columns(&mut self, columns: &[OutputColumn]) -> Result<()> {
        if self.held.flushed {
            return self.inner.columns(columns);
        }
        self.held.columns = Some(columns.to_vec());
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<()> {
        if self.held.flushed {
            return self.inner.row(row);
        }
        self.held.bytes = self.held.bytes.saturating_add(exec::row_bytes(&row));
        self.held.rows.push(row);
        if self.held.rows.len() > limits::RESULT_BUFFER_ROWS || self.held.bytes > limits::RESULT_BUFFER_BYTES {
            self.held.flushed = true;
            self.flush()?;
        }
        Ok(())
    }
    fn complete(&mut self, tag: &str) -> Result<()> {
        self.flush()?;
        self.inner.complete(tag)
    }
    fn notice(&mut self, message: &str) -> Result<()> {
        if self.held.flushed {
            return self.inner.notice(message);
        }
        self.held.said.push((None, message.to_string()));
        Ok(())
    }
    fn warning(&mut self, state: SqlState, message: &str) -> Result<()> {
        if self.held.flushed {
            return self.inner.warning(state, message);
        }
        self.held.said.push((Some(state), message.to_string()));
        Ok(())
    }
}

/// A session that ends gives its advisory locks back (a failure leaves
/// them to their leases' end).
impl Drop for Session {
    fn drop(&mut self) {
        // A session that ends inside a block (its client gone) rolls it
        // back and ends the drains its schema changes left, which would
        // otherwise keep those tables' writers off leases.
        if self.status != TxnStatus::Idle || !self.drains.epochs.is_empty() {
            self.abort();
        }
        self.disarm_copy_timeout();
        let _ = self.advisory.end_session();
    }
}

impl Session {
    /// A session on `engine`. Its advisory locks are its own registry's,
    /// which nothing renews: they last one lease
    /// ([`limits::ADVISORY_LEASE_NS`]) unless [`Session::with_advisory`]
    /// gives it a renewed one (a gateway's, a shell's).
    pub fn new(engine: Arc<dyn Engine>) -> Session {
        let seed = engine.now() ^ 0x005E_ED0F_5AAD_B000;
        let engine_for_locks = engine.clone();
        let (cancel, hung_up) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let started_us = (engine.now() / 1_000) as i64;
        let backend =
            crate::backends::Backend::new(cancel.clone(), hung_up.clone(), crate::system::ROLE_NAME, started_us);
        Session {
            uncancelled: engine.clone(),
            engine,
            txn: None,
            status: TxnStatus::Idle,
            txn_now_us: 0,
            last_commit_ts: None,
            row_ids: RowIdSequence::new(seed),
            settings: Arc::default(),
            rules: Rules::default(),
            cancel,
            hung_up,
            names: crate::catalog::NameCache::default(),
            leases: Arc::new(Leases::default()),
            drains: Drains::default(),
            block_tables: HashSet::new(),
            writer_leases: WriterLeases::default(),
            txn_changed_schema: false,
            defer_unique_checks: false,
            followup: None,
            retry_priority: None,
            explain_commit: false,
            params: Params::default(),
            copy: None,
            user: crate::system::ROLE_NAME.to_string(),
            kept_plans: HashMap::new(),
            sql_prepared: HashMap::new(),
            plans_reused: 0,
            savepoints: Vec::new(),
            deferred_checks: Vec::new(),
            next_deferred_check: 0,
            settings_at_begin: Arc::default(),
            startup_settings: BTreeMap::new(),
            local_settings: Vec::new(),
            constraint_mode: crate::plan::ConstraintMode::AsDeclared,
            txn_lost: None,
            irreversible_steps: 0,
            advisory: Arc::new(advisory::SessionLocks::new(engine_for_locks, Arc::default())),
            sequences: Arc::default(),
            described: None,
            backend_pid: 0,
            backend: Arc::new(backend),
            unlisted: false,
            cursors: BTreeMap::new(),
            cursors_declared: 0,
            watchdog: None,
            timed_out: Arc::default(),
            plans_zone: crate::ops::zone::Zone::Fixed(0),
            copy_timeout: None,
        }
    }

    /// Times out statements that run longer than the session's
    /// `statement_timeout` through `watchdog` (shared by a gateway's
    /// sessions, served by a thread of its own: [`crate::timeout`]).
    pub fn with_watchdog(mut self, watchdog: Arc<crate::timeout::Watchdog>) -> Session {
        self.watchdog = Some(watchdog);
        self
    }

    /// Shares `registry` with the other sessions of this gateway, whose
    /// renewer keeps their advisory locks ([`advisory::renew`]), and
    /// takes and gives back the locks through `engine`: one that a
    /// cancel or a hang-up does not stop (a session whose client hung up
    /// must still give its locks back; a waiting lock watches the cancel
    /// flag itself).
    pub fn with_advisory(mut self, engine: Arc<dyn Engine>, registry: Arc<advisory::Registry>) -> Session {
        self.uncancelled = engine.clone();
        self.advisory = Arc::new(advisory::SessionLocks::new(engine, registry));
        self
    }

    /// How many executions of prepared statements used a plan kept from
    /// an earlier one ("Kept plans").
    pub fn plans_reused(&self) -> u64 {
        self.plans_reused
    }

    /// The user this session runs as (the login's), which `current_user`
    /// and `session_user` name. Roles have no privileges yet: every user
    /// may do everything.
    pub fn set_user(&mut self, user: &str) {
        self.user = user.to_string();
        self.backend.set_user(user);
        self.kept_plans.clear();
    }

    /// Sets `name` as a client's startup packet does (a value checked as
    /// SET checks it; a bad one is ignored), before any statement.
    pub fn set_startup_parameter(&mut self, name: &str, value: &str) {
        let name = name.to_lowercase();
        if let Ok(value) = crate::timestamp::setting_value(&name, value) {
            if name == "application_name" {
                self.backend.set_application_name(&value);
            }
            self.startup_settings.insert(name.clone(), value.clone());
            Arc::make_mut(&mut self.settings).insert(name, value);
        }
    }

    /// The process id the client was given for CancelRequest (what
    /// `pg_backend_pid()` answers).
    pub fn set_backend_pid(&mut self, pid: i32) {
        self.backend_pid = pid;
        self.backend.set_pid(pid);
    }

    /// Lists the session in `registry` (its gateway's sessions:
    /// `pg_stat_activity`, `pg_cancel_backend`, `pg_terminate_backend`),
    /// as a client at `client`. Returns its entry, whose
    /// [`crate::backends::Backend::is_terminated`] tells the gateway to
    /// close the connection.
    pub fn with_backends(
        mut self,
        registry: Arc<crate::backends::Registry>,
        client: Option<std::net::SocketAddr>,
    ) -> (Session, Arc<crate::backends::Backend>) {
        self.backend.set_client(client);
        self.backend = self.backend.renewed(self.cancel.clone(), self.hung_up.clone(), Some(registry));
        let backend = self.backend.clone();
        (self, backend)
    }

    /// The session's TimeZone as SHOW gives it.
    pub fn time_zone(&self) -> String {
        let set = self.settings.get("timezone").map(String::as_str);
        set.or_else(|| crate::timestamp::default_setting("timezone")).unwrap_or("UTC").to_string()
    }

    /// Shares `leases` with the other sessions of this gateway.
    pub fn with_leases(mut self, leases: Arc<Leases>) -> Session {
        self.leases = leases;
        self
    }

    /// Makes `cancel` the session's cancel flag ([`Session::cancel_handle`]):
    /// the flag its engine also watches, so that a statement waiting in a
    /// KV call (for a lock) ends as soon as it is set, not when the wait
    /// does ([`crate::kv::KvError::Cancelled`]).
    pub fn with_cancel(mut self, cancel: Arc<AtomicBool>) -> Session {
        self.cancel = cancel;
        // Its entry stops it through this flag.
        let registry = self.backend.registry().cloned();
        self.backend = self.backend.renewed(self.cancel.clone(), self.hung_up.clone(), registry);
        self
    }

    /// A flag that cancels the running statement (57014) when set; each
    /// statement clears it when it starts.
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// A flag to set (and then the cancel flag, [`Session::cancel_handle`])
    /// when the client has gone: the running statement stops at its next
    /// check, as a cancelled one does, and so does every later one, which
    /// no longer clears the cancel flag. (Set only the cancel flag, and a
    /// statement starting just after would clear it and run to its end.)
    pub fn hang_up_handle(&self) -> Arc<AtomicBool> {
        self.hung_up.clone()
    }

    /// A statement starts: a cancel before it does not apply to it,
    /// unless the client has gone.
    fn clear_cancel(&self) {
        // The order matters against a hang-up marked meanwhile (it sets
        // `hung_up`, then `cancel`): either that `cancel` store comes
        // after this one, or this load sees `hung_up`.
        self.cancel.store(false, AtomicOrdering::SeqCst);
        if self.hung_up.load(AtomicOrdering::SeqCst) {
            self.cancel.store(true, AtomicOrdering::SeqCst);
        }
    }

    pub fn status(&self) -> TxnStatus {
        self.status
    }

    /// Whether the client takes messages of `severity` ("NOTICE" or
    /// "WARNING"), by its `client_min_messages` (PostgreSQL's levels:
    /// `debug5` to `debug1`, `log`, `notice`, `warning`, `error`; SET
    /// refuses others).
    pub fn wants_message(&self, severity: &str) -> bool {
        let level = self.settings.get("client_min_messages").map_or("notice", String::as_str).to_ascii_lowercase();
        let rank = |name: &str| match name {
            n if n.starts_with("debug") || n == "log" => 0,
            "notice" => 1,
            "warning" => 2,
            _ => 3,
        };
        rank(&severity.to_ascii_lowercase()) >= rank(&level)
    }

    /// The commit timestamp of the last read-write transaction.
    pub fn last_commit_ts(&self) -> Option<Timestamp> {
        self.last_commit_ts
    }

    /// Runs every statement in `sql`, stopping at the first error.
    pub fn execute(&mut self, sql: &str, sink: &mut dyn Sink) -> Result<()> {
        for parsed in parser::parse(sql)? {
            self.execute_parsed(sql, &parsed, sink)?;
        }
        Ok(())
    }

    /// Runs one parsed statement of `sql`.
    pub fn execute_parsed(&mut self, sql: &str, parsed: &Parsed, sink: &mut dyn Sink) -> Result<()> {
        self.params = Params::default();
        if let Some((query_sql, query)) = copy_to_stdout(&parsed.statement)? {
            // COPY ... TO STDOUT is its query; the gateway writes the rows
            // as records of its format (`copy::CopyFormat::format_row`).
            let mut out = CopyOutSink { inner: sink, rows: 0 };
            return self.execute_statement(&query_sql, &Parsed::plain(query), &mut out);
        }
        self.execute_statement(sql, parsed, sink)
    }

    /// Prepares `sql` (one statement, or none: `Ok(None)`) for the
    /// extended protocol. `declared` holds the parameter types the client
    /// gave (`None`: infer). A statement that reads or writes rows is
    /// planned now, against the catalog as this session sees it, to learn
    /// its parameters and columns; it is planned again when it runs (a
    /// schema change in between is seen then).
    pub fn prepare(&mut self, sql: &str, declared: &[Option<DataType>]) -> Result<Option<Prepared>> {
        // Describing reads the catalog, which a cancel stops too: one
        // raised during an earlier statement is not for this Parse.
        self.abandon_copy();
        self.refuse_if_terminated()?;
        self.clear_cancel();
        self.enter_zone();
        let mut statements = parser::parse(sql)?;
        if statements.len() > 1 {
            return sql_err!(SyntaxError, "cannot insert multiple commands into a prepared statement");
        }
        let Some(parsed) = statements.pop() else { return Ok(None) };
        let described = match &parsed.statement {
            ast::Statement::ShowVariable { variable } => {
                let name = show_name(variable);
                let text = |name: &str| OutputColumn { name: name.into(), data_type: DataType::Text };
                let columns = match name.as_str() {
                    "jobs" => show_jobs_columns(),
                    "all" => vec![text("name"), text("setting"), text("description")],
                    _ => vec![text(&name)],
                };
                Some((Vec::new(), columns))
            }
            s if describes_by_planning(s) => Some(self.describe(sql, &parsed, declared)?),
            s @ ast::Statement::Fetch { .. } if !parsed.moves => {
                self.describe_fetch(s).map(|columns| (Vec::new(), columns))
            }
            ast::Statement::Fetch { .. } => None,
            // A cursor's query may have parameters; DECLARE returns no rows.
            ast::Statement::Declare { stmts, .. } => match stmts.as_slice() {
                [ast::Declare { for_query: Some(query), .. }] => {
                    let inner = Parsed::plain(ast::Statement::Query(query.clone()));
                    let (types, _) = self.describe(&query.to_string(), &inner, declared)?;
                    Some((types, Vec::new()))
                }
                _ => None,
            },
            s => self.describe_execute_named(s)?,
        };
        let (inferred, columns) = described.unwrap_or_default();
        let n = declared.len().max(inferred.len());
        let params = (0..n)
            .map(|i| match declared.get(i).copied().flatten() {
                Some(t) => t,
                None => inferred.get(i).copied().flatten().unwrap_or(DataType::Text),
            })
            .collect();
        Ok(Some(Prepared { sql: sql.to_string(), parsed, params, columns }))
    }

    /// Runs a prepared statement with its parameters' values (of the
    /// types [`Prepared::params`] says).
    pub fn execute_prepared(&mut self, prepared: &Prepared, values: Vec<Value>, sink: &mut dyn Sink) -> Result<()> {
        if values.len() != prepared.params.len() {
            return sql_err!(
                ProtocolViolation,
                "bind message supplies {} parameters, but prepared statement requires {}",
                values.len(),
                prepared.params.len()
            );
        }
        self.with_bound(prepared, values, sink, |session, prepared, sink| {
            session.execute_statement(&prepared.sql, &prepared.parsed, sink)
        })
    }

    /// Runs `run` on a prepared statement with its parameters bound to
    /// `values` (as many, of its types).
    fn with_bound(
        &mut self,
        prepared: &Prepared,
        values: Vec<Value>,
        sink: &mut dyn Sink,
        run: impl FnOnce(&mut Session, &Prepared, &mut dyn Sink) -> Result<()>,
    ) -> Result<()> {
        self.params = Params { types: prepared.params.clone(), values, prepared: true };
        use ast::Statement as S;
        // (A MOVE returns no rows; a FETCH described before its cursor
        // existed announced none, NoData, as PostgreSQL's.)
        let fetch_described = !prepared.parsed.moves && !prepared.columns.is_empty();
        if matches!(prepared.parsed.statement, S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_))
            || matches!(prepared.parsed.statement, S::Fetch { .. }) && fetch_described
        {
            // Its rows (a query's, or RETURNING's) must have the columns
            // Describe announced ([`Session::described`]).
            self.described = Some(prepared.columns.clone());
        }
        let result = run(self, prepared, sink);
        self.params = Params::default();
        self.described = None;
        result
    }

    /// The parameter types and columns of a statement that reads or
    /// writes rows, planned in the block's transaction or, outside one,
    /// in a read-only transaction using leased descriptors.
    fn describe(
        &mut self,
        sql: &str,
        parsed: &Parsed,
        declared: &[Option<DataType>],
    ) -> Result<(Vec<Option<DataType>>, Vec<OutputColumn>)> {
        if self.status == TxnStatus::Failed {
            return in_failed_block();
        }
        self.params = Params::default();
        // From the committed catalog first, even inside a block: a Parse
        // must not fail on the block's transaction having been wounded
        // (PostgreSQL's Parse takes no row locks; pgbench counts on it).
        // A block that changed the schema sees its own (a column it
        // retyped, added or dropped): described there, as it will run.
        let in_block = self.status == TxnStatus::InBlock;
        let committed = match in_block && self.txn_changed_schema {
            true => None,
            false => Some(self.describe_committed(sql, parsed, declared)),
        };
        let planned = match committed {
            // (Failing on a table or column the block itself created.)
            Some(Err(e)) if in_block && matches!(e.state, SqlState::UndefinedTable | SqlState::UndefinedColumn) => None,
            other => other,
        };
        let planned = match planned {
            Some(planned) => planned,
            None => {
                let mut txn = self.txn.take().expect("a transaction in a block");
                let planned = self.plan_with_types(txn.as_mut(), sql, &parsed.statement, None, declared);
                self.txn = Some(txn);
                planned
            }
        };
        let (plan, types) = match planned {
            Err(e) if self.status == TxnStatus::InBlock => return Err(self.fail_block(e)),
            planned => planned?,
        };
        Ok((types, plan.columns()))
    }

    /// Starts `COPY table [(columns)] FROM STDIN` ([`crate::copy`]): the
    /// session then takes data ([`Session::copy_data`]) until
    /// [`Session::copy_done`]. Returns how many columns each line has.
    pub fn copy_start(&mut self, parsed: &Parsed) -> Result<usize> {
        self.disarm_copy_timeout();
        self.refuse_if_terminated()?;
        self.clear_cancel();
        self.enter_zone();
        self.copy = None;
        // Active until CopyDone or CopyFail (`copy_done`, `copy_fail`),
        // or until it fails to start.
        self.note_statement_started(&parsed.statement.to_string());
        let started = self.start_copy(parsed);
        if started.is_err() {
            self.note_statement_ended();
        }
        started
    }

    /// [`Session::copy_start`]'s checks and setup.
    fn start_copy(&mut self, parsed: &Parsed) -> Result<usize> {
        if self.status == TxnStatus::Failed {
            return in_failed_block();
        }
        let (table, columns, format) = copy_from_stdin(&parsed.statement)?;
        let (desc, private) = match self.txn.take() {
            Some(mut block) => {
                let seen = Catalog::table(block.as_mut(), &table);
                self.txn = Some(block);
                let Some(seen) = seen? else { return sql_err!(UndefinedTable, "relation \"{table}\" does not exist") };
                let private = self.private_to_block(&seen)?;
                (seen, private)
            }
            None => {
                let mut committed_txn = self.engine.begin(Mode::ReadOnly)?;
                let committed = Catalog::table(committed_txn.as_mut(), &table);
                let _ = committed_txn.rollback();
                let Some(c) = committed? else {
                    return sql_err!(UndefinedTable, "relation \"{table}\" does not exist");
                };
                (c, false)
            }
        };
        if desc.view.is_some() {
            return sql_err!(FeatureNotSupported, "cannot copy to view \"{table}\"");
        }
        let columns = match columns {
            Some(names) => names,
            None => desc.columns.iter().filter(|c| !c.hidden).map(|c| c.name.clone()).collect(),
        };
        let mut types = Vec::with_capacity(columns.len());
        for name in &columns {
            match desc.column(name) {
                Some((_, c)) if !c.hidden => types.push(c.data_type),
                _ => return sql_err!(UndefinedColumn, "column \"{name}\" of relation \"{table}\" does not exist"),
            }
        }
        let copy = crate::copy::CopyIn::new(table, columns, types, private, format);
        let width = copy.width();
        self.copy = Some(copy);
        // The COPY is one statement until its end: its timeout runs from
        // here to `copy_done`.
        self.copy_timeout = self.arm_statement_timeout();
        Ok(width)
    }

    /// Whether the block's descriptor `seen` names a table id only this
    /// block knows (it created or truncated the table), so rows can be
    /// written under it in transactions of their own ([`crate::copy`]).
    /// A table the block changed in place is refused (0A000).
    fn private_to_block(&mut self, seen: &TableDesc) -> Result<bool> {
        // By id: a table the block renamed is not under its name outside
        // the block, yet not the block's own.
        let mut committed_txn = self.engine.begin(Mode::ReadOnly)?;
        let committed = Catalog::table_by_id(committed_txn.as_mut(), seen.id);
        let _ = committed_txn.rollback();
        match committed? {
            Some(c) if *c != *seen => sql_err!(
                FeatureNotSupported,
                "cannot load table \"{}\" in batches after changing it in the same transaction block",
                seen.name
            ),
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// An INSERT inside a block: as any statement, unless its source has
    /// more rows than one transaction may write and the table is private
    /// to the block (pgbench's `BEGIN; TRUNCATE t; INSERT INTO t SELECT
    /// ... FROM generate_series(1, 200000); COMMIT`). Then the rows go in
    /// batches of their own, as COPY's do ([`crate::copy`]), and appear
    /// when the block commits.
    fn insert_in_block(
        &mut self,
        table: &TableDesc,
        source: &Node,
        constraints: &Constraints,
        cx: &mut Cx,
    ) -> Result<u64> {
        table.check_writable()?;
        let mut op = exec::build(source);
        let mut rows = Vec::new();
        while rows.len() <= limits::WRITES_PER_TRANSACTION_MAX {
            let Some(row) = op.next(cx)? else { break };
            cx.hold(exec::row_bytes(&row), "an INSERT's input")?;
            rows.push(row);
        }
        if rows.len() <= limits::WRITES_PER_TRANSACTION_MAX {
            let r = write::insert_rows(table, rows, &OnConflict::Error, &None, constraints, cx, &mut self.row_ids)?;
            return Ok(r.count);
        }
        if !self.private_to_block(table)? {
            return write::too_many_writes();
        }
        let visible: Vec<usize> = (0..table.columns.len()).filter(|&i| !table.columns[i].hidden).collect();
        let names = visible.iter().map(|&i| table.columns[i].name.clone()).collect();
        let types = visible.iter().map(|&i| table.columns[i].data_type).collect();
        let mut copy = crate::copy::CopyIn::new(table.name.clone(), names, types, true, CopyFormat::text());
        let mut next = rows.into_iter();
        loop {
            let mut row = match next.next() {
                Some(row) => row,
                None => match op.next(cx)? {
                    Some(row) => row,
                    None => break,
                },
            };
            // Cast and checked here so errors name the column; a hidden
            // row id is left to the batch.
            write::conform(table, &mut row, &mut self.row_ids)?;
            copy.rows.push(visible.iter().map(|&i| std::mem::replace(&mut row[i], Value::Null)).collect());
            if copy.rows.len() >= limits::COPY_BATCH_ROWS {
                let batch = std::mem::take(&mut copy.rows);
                self.copy_batch(&mut copy, batch, Some(cx.txn()?))?;
            }
        }
        if !copy.rows.is_empty() {
            let batch = std::mem::take(&mut copy.rows);
            self.copy_batch(&mut copy, batch, Some(cx.txn()?))?;
        }
        Ok(copy.committed)
    }

    /// Takes a chunk of COPY data; full batches are written as they fill.
    /// An error is kept for [`Session::copy_done`] (the client keeps
    /// sending until then); the rest of the data is ignored.
    pub fn copy_data(&mut self, chunk: &[u8]) {
        let Some(mut copy) = self.copy.take() else { return };
        if copy.failed.is_none() && self.backend.is_terminated() {
            copy.failed =
                Some(Error::new(SqlState::AdminShutdown, "terminating connection due to administrator command"));
        }
        if copy.failed.is_none() {
            let mut taken = copy.take(chunk);
            while taken.is_ok() && copy.rows.len() >= limits::COPY_BATCH_ROWS {
                let batch: Vec<Row> = copy.rows.drain(..limits::COPY_BATCH_ROWS).collect();
                let mut block = self.txn.take();
                taken = self.copy_batch(&mut copy, batch, block.as_deref_mut());
                self.txn = block;
            }
            if let Err(e) = taken {
                copy.rows.clear();
                copy.failed = Some(e);
            }
        }
        self.copy = Some(copy);
    }

    /// Ends the COPY: writes what is left; returns its command tag
    /// (`COPY n`) or its error, which says how many rows were committed.
    pub fn copy_done(&mut self) -> Result<String> {
        let ticket = self.copy_timeout.take();
        let result = match self.refuse_if_terminated() {
            Ok(()) => self.finish_copy(),
            Err(e) => {
                self.copy = None;
                Err(e)
            }
        };
        let result = self.disarm_statement_timeout(ticket, result);
        let result = self.terminated_instead(result);
        self.note_statement_ended();
        result
    }

    /// Forgets a COPY FROM the client left without CopyDone or CopyFail
    /// (the protocol refused what it sent instead): its timeout must not
    /// fire into the statements after it.
    fn abandon_copy(&mut self) {
        if self.copy.take().is_some() || self.copy_timeout.is_some() {
            self.disarm_copy_timeout();
            self.note_statement_ended();
        }
    }

    /// Disarms a COPY's timeout that did not reach `copy_done`.
    fn disarm_copy_timeout(&mut self) {
        if let (Some(ticket), Some(watchdog)) = (self.copy_timeout.take(), self.watchdog.as_ref()) {
            watchdog.disarm(ticket);
        }
    }

    fn finish_copy(&mut self) -> Result<String> {
        let Some(mut copy) = self.copy.take() else {
            return sql_err!(ProtocolViolation, "no COPY in progress");
        };
        if copy.failed.is_none() {
            let mut result = copy.finish();
            if result.is_ok() && !copy.rows.is_empty() {
                let batch = std::mem::take(&mut copy.rows);
                let mut block = self.txn.take();
                result = self.copy_batch(&mut copy, batch, block.as_deref_mut());
                self.txn = block;
            }
            if let Err(e) = result {
                copy.failed = Some(e);
            }
        }
        match copy.failed {
            None => Ok(format!("COPY {}", copy.committed)),
            Some(e) => {
                let e =
                    Error { detail: Some(format!("{} rows were committed before the error.", copy.committed)), ..e };
                match self.status {
                    TxnStatus::InBlock => Err(self.fail_block(e)),
                    _ => Err(e),
                }
            }
        }
    }

    /// The client gave up the COPY (CopyFail): the batches committed stay.
    pub fn copy_fail(&mut self, message: &str) -> Error {
        self.disarm_copy_timeout();
        let committed = self.copy.take().map(|c| c.committed).unwrap_or(0);
        if self.status == TxnStatus::InBlock {
            self.status = TxnStatus::Failed;
        }
        self.note_statement_ended();
        Error {
            detail: Some(format!("{committed} rows were committed before the client ended the COPY.")),
            ..Error::new(SqlState::QueryCanceled, format!("COPY from stdin failed: {message}"))
        }
    }

    /// Writes one batch of a COPY as one INSERT in a transaction of its
    /// own (retried when retryable). Inside a block the statement is
    /// planned from the block's descriptor; a batch into a table the
    /// block did not create or truncate also reads the committed
    /// descriptor and must find the same one (a schema change in between
    /// fails the COPY with 40001). `block` is the enclosing block's
    /// transaction, if any.
    fn copy_batch(
        &mut self,
        copy: &mut crate::copy::CopyIn,
        batch: Vec<Row>,
        block: Option<&mut (dyn Transaction + '_)>,
    ) -> Result<()> {
        if block.is_some() {
            self.irreversible_steps += 1;
        }
        if self.cancel.load(AtomicOrdering::Relaxed) {
            return sql_err!(QueryCanceled, "canceling statement due to user request");
        }
        let width = copy.width();
        let columns = copy.columns.iter().map(|c| quote_name(c)).collect::<Vec<_>>().join(", ");
        let rows = (0..batch.len())
            .map(|r| format!("({})", (1..=width).map(|c| format!("${}", r * width + c)).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", ");
        // COPY writes identity columns' values as given (PostgreSQL too).
        let sql = format!("INSERT INTO {} ({columns}) OVERRIDING SYSTEM VALUE VALUES {rows}", quote_name(&copy.table));
        let parsed =
            parser::parse(&sql)?.pop().ok_or_else(|| Error::new(SqlState::InternalError, "empty COPY batch"))?;
        let types: Vec<DataType> = (0..batch.len()).flat_map(|_| copy.types.iter().copied()).collect();
        let n = batch.len() as u64;
        self.params = Params { types: types.clone(), values: batch.into_iter().flatten().collect(), prepared: false };
        let result = self.copy_batch_attempts(copy, &sql, &parsed, block);
        self.params = Params::default();
        result?;
        copy.committed += n;
        Ok(())
    }

    fn copy_batch_attempts(
        &mut self,
        copy: &crate::copy::CopyIn,
        sql: &str,
        parsed: &Parsed,
        block: Option<&mut (dyn Transaction + '_)>,
    ) -> Result<()> {
        let planned = match block {
            Some(txn) => {
                let plan = self.plan(txn, sql, &parsed.statement, None)?;
                // Rows of a table with foreign keys go in the block's own
                // transaction: a batch's check of a key the block wrote
                // would wait for the block's lock, and a key the block
                // deletes later would be left referenced by rows already
                // committed. The block's limit on writes bounds them.
                if matches!(&plan, Plan::Insert { constraints, .. } if !constraints.references.is_empty()) {
                    let now_us = self.txn_now_us;
                    self.execute_plan(&plan, txn, &parsed.statement, now_us, &mut Collected::default())?;
                    return Ok(());
                }
                Some(plan)
            }
            None => None,
        };
        let seen = match planned.as_ref() {
            Some(Plan::Insert { table, .. }) => Some(table.clone()),
            _ => None,
        };
        let mut attempt = 0;
        let mut priority = None;
        loop {
            attempt += 1;
            let now_us = self.now_us();
            let mut txn = crate::kv::begin_keeping_priority(self.engine.as_ref(), Mode::ReadWrite, &mut priority)?;
            let ran = (|| {
                let plan = match &planned {
                    Some(plan) => {
                        if !copy.private {
                            let current = Catalog::table(txn.as_mut(), &copy.table)?;
                            if current.as_deref() != seen.as_deref() {
                                return sql_err!(
                                    SerializationFailure,
                                    "table \"{}\" changed while COPY was loading it",
                                    copy.table
                                );
                            }
                        }
                        plan.clone()
                    }
                    None => self.plan(txn.as_mut(), sql, &parsed.statement, None)?,
                };
                self.execute_plan(&plan, txn.as_mut(), &parsed.statement, now_us, &mut Collected::default())
            })();
            match crate::kv::finish(txn, ran) {
                Attempt::Committed(..) => return Ok(()),
                Attempt::KeyTaken(m) => return Err(Error::from(KvError::ConditionNotMet(m))),
                Attempt::Failed(e) if e.is_retryable() && attempt <= limits::AUTOCOMMIT_RETRIES_MAX => continue,
                Attempt::Failed(e) => return Err(e),
            }
        }
    }

    /// Plans `parsed` against the committed catalog (leased descriptors,
    /// else a read-only transaction).
    fn describe_committed(
        &mut self,
        sql: &str,
        parsed: &Parsed,
        declared: &[Option<DataType>],
    ) -> Result<(Plan, Vec<Option<DataType>>)> {
        let leases = self.leases.clone();
        let lease_use = LeaseUse::new(&leases, self.engine.now());
        let deadline = lease_use.deadline.clone();
        let mut txn = self.engine.begin(Mode::ReadOnly)?;
        let mut checked = LeaseChecked { inner: txn.as_mut(), deadline };
        let planned = self.plan_with_types(&mut checked, sql, &parsed.statement, Some(&lease_use), declared);
        let _ = txn.rollback();
        planned
    }

    fn execute_statement(&mut self, sql: &str, parsed: &Parsed, sink: &mut dyn Sink) -> Result<()> {
        self.abandon_copy();
        self.refuse_if_terminated()?;
        self.clear_cancel();
        self.enter_zone();
        self.note_statement_started(sql);
        let timeout = self.arm_statement_timeout();
        let result = self.run_statement(sql, parsed, sink);
        let result = self.disarm_statement_timeout(timeout, result);
        let result = self.terminated_instead(result);
        self.note_statement_ended();
        // The zone as the statement left it (a SET, a COMMIT or ROLLBACK
        // of one): what the gateway decodes the next Bind's text in.
        self.enter_zone();
        if self.status != TxnStatus::InBlock {
            // The statement's (or the block's) transaction ended, or
            // failed: its transaction-level advisory locks end with it, as
            // in PostgreSQL. (One not given back ends with its lease.)
            let _ = self.advisory.end_transaction();
        }
        result
    }

    /// Runs `sql` for the gateway, not its client (a multi-statement
    /// query's implicit BEGIN and COMMIT): the session's entry keeps
    /// showing the client's query (`pg_stat_activity`).
    pub fn execute_unlisted(&mut self, sql: &str, sink: &mut dyn Sink) -> Result<()> {
        self.unlisted = true;
        let result = self.execute(sql, sink);
        self.unlisted = false;
        result
    }

    /// A session `pg_terminate_backend` ended runs nothing more, a COMMIT
    /// included: its transaction is rolled back, and the client told why
    /// (57P01), until its gateway closes the connection.
    fn refuse_if_terminated(&mut self) -> Result<()> {
        if !self.backend.is_terminated() {
            return Ok(());
        }
        self.abort();
        sql_err!(AdminShutdown, "terminating connection due to administrator command")
    }

    /// A statement that ended because its session was terminated says so
    /// (57P01), not "canceled" (57014); its transaction is rolled back.
    fn terminated_instead<T>(&mut self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) if e.state == SqlState::QueryCanceled && self.backend.is_terminated() => {
                self.refuse_if_terminated()?;
                Err(e)
            }
            other => other,
        }
    }

    /// Tells the session's entry ([`crate::backends`]) that `sql` runs.
    fn note_statement_started(&self, sql: &str) {
        if self.unlisted {
            return;
        }
        let now_us = self.now_us();
        let xact_start_us = match self.status {
            TxnStatus::Idle => now_us,
            _ => self.txn_now_us,
        };
        self.backend.statement_started(sql, now_us, xact_start_us);
    }

    /// Tells the session's entry that its statement ended, and where that
    /// left the session.
    fn note_statement_ended(&self) {
        use crate::backends::State;
        let state = match self.status {
            TxnStatus::Idle => State::Idle,
            TxnStatus::InBlock => State::IdleInTransaction,
            TxnStatus::Failed => State::IdleInTransactionAborted,
        };
        let application = self.settings.get("application_name").map_or("", String::as_str);
        self.backend.statement_ended(state, self.now_us(), self.status != TxnStatus::Idle, application);
    }

    /// Arms the watchdog for the statement starting now, if the session
    /// has a `statement_timeout` (after [`Session::clear_cancel`]: a
    /// timeout fired before that would be cleared with it).
    fn arm_statement_timeout(&self) -> Option<crate::timeout::Ticket> {
        let watchdog = self.watchdog.as_ref()?;
        let timeout = self.setting_duration("statement_timeout")?;
        self.timed_out.store(false, AtomicOrdering::SeqCst);
        let deadline = self.engine.monotonic_ns().saturating_add(timeout.as_nanos().min(u128::from(u64::MAX)) as u64);
        let flags = crate::timeout::Flags { cancel: self.cancel.clone(), timed_out: self.timed_out.clone() };
        Some(watchdog.arm(deadline, flags))
    }

    /// Disarms the statement's timeout; a statement it cancelled fails
    /// with PostgreSQL's words for that.
    fn disarm_statement_timeout<T>(&self, ticket: Option<crate::timeout::Ticket>, result: Result<T>) -> Result<T> {
        let (Some(ticket), Some(watchdog)) = (ticket, self.watchdog.as_ref()) else { return result };
        watchdog.disarm(ticket);
        match result {
            Err(e) if e.state == SqlState::QueryCanceled && self.timed_out.load(AtomicOrdering::SeqCst) => {
                Err(Error { message: "canceling statement due to statement timeout".into(), ..e })
            }
            other => other,
        }
    }

    fn run_statement(&mut self, sql: &str, parsed: &Parsed, sink: &mut dyn Sink) -> Result<()> {
        use ast::Statement as S;
        self.explain_commit = false;
        match &parsed.statement {
            S::StartTransaction { modes, .. } => return self.begin(modes, parsed.as_of.as_ref(), sink),
            S::Commit { .. } => return self.commit(sink),
            S::Rollback { savepoint: None, .. } => {
                if self.status == TxnStatus::Idle {
                    sink.warning(SqlState::NoActiveSqlTransaction, "there is no transaction in progress")?;
                }
                self.abort();
                return sink.complete("ROLLBACK");
            }
            S::Rollback { savepoint: Some(name), .. } => return self.rollback_to_savepoint(name, sink),
            S::Savepoint { name } => return self.savepoint(name, sink),
            S::ReleaseSavepoint { name } => return self.release_savepoint(name, sink),
            _ => {}
        }
        if self.status == TxnStatus::Failed {
            return in_failed_block();
        }
        let names_prepared = matches!(
            &parsed.statement,
            S::Prepare { .. }
                | S::Execute { .. }
                | S::Deallocate { .. }
                | S::Declare { .. }
                | S::Fetch { .. }
                | S::Close { .. }
        );
        if parsed.as_of.is_some() && names_prepared {
            return sql_err!(FeatureNotSupported, "AS OF SYSTEM TIME is only allowed on SELECT and BEGIN");
        }
        if let S::Execute { name: Some(name), parameters, .. } = &parsed.statement {
            if prepared::is_execute_named(&parsed.statement) {
                return match self.execute_named(sql, name, parameters, sink) {
                    Err(e) if self.status == TxnStatus::InBlock => Err(self.fail_block(e)),
                    other => other,
                };
            }
        }
        let session_statement = match &parsed.statement {
            S::Prepare { name, data_types, statement } => Some(self.prepare_named(name, data_types, statement, sink)),
            S::Deallocate { name, .. } => Some(self.deallocate_named(name, sink)),
            S::Declare { stmts, .. } => Some(self.declare_cursor(sql, stmts, sink)),
            S::Fetch { name, direction, .. } => Some(self.fetch_cursor(name, direction, parsed.moves, sink)),
            S::Close { cursor } => Some(self.close_cursor(cursor, sink)),
            // Storage statistics and space are SpanDB's own business.
            S::Vacuum(_) => Some(sink.complete("VACUUM")),
            S::Analyze(_) => Some(sink.complete("ANALYZE")),
            S::ShowVariable { variable } => Some(self.show(variable, sink)),
            S::Set(set) => Some(self.set(set, sink)),
            S::Reset(reset) => Some(self.reset(&reset.reset, sink)),
            S::Discard { object_type } => Some(self.discard(*object_type, sink)),
            S::CreateExtension(create) => Some(self.create_extension(create, sink)),
            S::DropExtension(drop) => Some(self.drop_extension(drop, sink)),
            S::CreateSchema { schema_name, if_not_exists, .. } => {
                Some(self.create_schema(schema_name, *if_not_exists, sink))
            }
            // What pg_dump says of the built-in extensions and of public.
            S::Comment {
                object_type: object_type @ (ast::CommentObject::Extension | ast::CommentObject::Schema),
                object_name,
                ..
            } => Some(self.comment_on_builtin(object_type, object_name, sink)),
            _ => None,
        };
        if let Some(result) = session_statement {
            // In a block, its failure fails the block, as any statement's.
            return match result {
                Err(e) if self.status == TxnStatus::InBlock => Err(self.fail_block(e)),
                other => other,
            };
        }
        if parsed.as_of.is_some() && !matches!(&parsed.statement, S::Query(q) if !modifies(q)) {
            return sql_err!(FeatureNotSupported, "AS OF SYSTEM TIME is only allowed on SELECT and BEGIN");
        }
        self.renew_leases();
        if self.status == TxnStatus::InBlock {
            if parsed.as_of.is_some() {
                return sql_err!(
                    FeatureNotSupported,
                    "AS OF SYSTEM TIME inside a transaction: use BEGIN AS OF SYSTEM TIME"
                );
            }
            let targets = schema_targets(&parsed.statement);
            if let Err(e) = self.drain(&targets) {
                return Err(self.fail_block(e));
            }
            let mut txn = self.txn.take().expect("a transaction in a block");
            let now_us = self.txn_now_us;
            let result = self
                .lift_deadline(txn.as_mut(), !is_dml(&parsed.statement))
                .and_then(|()| self.run(txn.as_mut(), sql, &parsed.statement, now_us, sink));
            let priority = txn.priority();
            self.txn = Some(txn);
            return match result {
                Ok(tag) => sink.complete(&tag),
                Err(e) => {
                    if e.is_retryable() {
                        self.retry_priority = priority;
                    }
                    Err(self.fail_block(e))
                }
            };
        }
        self.autocommit(sql, parsed, sink)
    }

    fn autocommit(&mut self, sql: &str, parsed: &Parsed, sink: &mut dyn Sink) -> Result<()> {
        let mode = match &parsed.as_of {
            Some(e) => self.as_of_mode(e)?,
            None if is_read_only_statement(&parsed.statement) => Mode::ReadOnly,
            None => Mode::ReadWrite,
        };
        self.block_tables.clear();
        self.retry_priority = None;
        let settings_before = self.settings.clone();
        let result = self.autocommit_attempts(sql, parsed, mode, sink);
        if result.is_ok() {
            self.split_at_created_tables();
        } else {
            self.settings = settings_before;
        }
        self.end_drains();
        result
    }

    fn autocommit_attempts(&mut self, sql: &str, parsed: &Parsed, mode: Mode, sink: &mut dyn Sink) -> Result<()> {
        let targets = schema_targets(&parsed.statement);
        let mut attempt = 0;
        // A retry keeps the first attempt's priority (wound-wait ages it).
        let mut priority = None;
        // An INSERT first leaves its unique checks to the commit; if one
        // fails there, it runs again with reads, which name the key.
        let mut checks_at_commit = true;
        // set_config's changes are the statement's: each attempt starts
        // from the settings before it, and a failure leaves them so.
        let settings_before = self.settings.clone();
        let holds_before = self.advisory.holds_taken();
        // A read-only attempt that failed may have met a shard its routes
        // did not foresee (`run_read_only`): the next reads any shard.
        let mut single_shard = true;
        loop {
            attempt += 1;
            self.settings = settings_before.clone();
            // Each attempt of a schema change drains again (its check
            // failing is what made it retry).
            self.drains.owned.clear();
            self.drains.sequences.clear();
            self.followup = None;
            self.drain(&targets)?;
            let now_us = self.now_us();
            let held = Held { said: Vec::new(), columns: None, rows: Vec::new(), bytes: 0, flushed: false };
            let mut holding = HoldingSink { inner: &mut *sink, held };
            let result = if mode == Mode::ReadOnly {
                let ran = self.run_read_only(sql, &parsed.statement, (now_us, single_shard), &mut holding);
                single_shard &= ran.is_ok();
                ran
            } else {
                let mut txn = crate::kv::begin_keeping_priority(self.engine.as_ref(), mode, &mut priority)?;
                self.end_writer_leases(None);
                self.defer_unique_checks = checks_at_commit;
                let ran = self.run(txn.as_mut(), sql, &parsed.statement, now_us, &mut holding);
                // A commit after the deadline would fail; one near it
                // reads the leased descriptors under locks first.
                let ran = ran.and_then(|tag| self.lift_deadline(txn.as_mut(), false).map(|()| tag));
                self.defer_unique_checks = false;
                let finished = crate::kv::finish(txn, ran);
                self.end_writer_leases(match &finished {
                    Attempt::Committed(_, committed) => committed.ts,
                    _ => None,
                });
                match finished {
                    Attempt::Committed(tag, c) => Ok((tag, c)),
                    Attempt::KeyTaken(_) if checks_at_commit && !holding.held.flushed => {
                        checks_at_commit = false;
                        continue;
                    }
                    Attempt::KeyTaken(m) => Err(Error::from(KvError::ConditionNotMet(m))),
                    Attempt::Failed(e) => Err(e),
                }
            };
            let result = result.and_then(|(tag, committed)| {
                if mode == Mode::ReadWrite {
                    self.last_commit_ts = committed.ts;
                }
                if std::mem::take(&mut self.explain_commit) {
                    holding.row(vec![Value::Text(describe_commit(&committed))])?;
                }
                Ok(tag)
            });
            match result {
                Ok(tag) => {
                    if let Some(followup) = self.followup.take() {
                        if let Err(e) = self.run_followup(&followup, now_us) {
                            holding.flush_said()?;
                            return Err(e);
                        }
                    }
                    return holding.complete(&tag);
                }
                // (Not a statement that took an advisory lock: it would
                // take it again, and hold it twice.)
                Err(e)
                    if e.is_retryable()
                        && !holding.held.flushed
                        && attempt <= limits::AUTOCOMMIT_RETRIES_MAX
                        && self.advisory.holds_taken() == holds_before =>
                {
                    continue
                }
                Err(e) => {
                    holding.flush_said()?;
                    return Err(e);
                }
            }
        }
    }

    fn now_us(&self) -> i64 {
        (self.engine.now() / 1_000) as i64
    }

    fn begin(&mut self, modes: &[ast::TransactionMode], as_of: Option<&ast::Expr>, sink: &mut dyn Sink) -> Result<()> {
        if self.status != TxnStatus::Idle {
            sink.warning(SqlState::ActiveSqlTransaction, "there is already a transaction in progress")?;
            return sink.complete("BEGIN");
        }
        let read_only =
            modes.iter().any(|m| matches!(m, ast::TransactionMode::AccessMode(ast::TransactionAccessMode::ReadOnly)));
        let mode = match as_of {
            Some(e) => self.as_of_mode(e)?,
            None if read_only => Mode::ReadOnly,
            None => Mode::ReadWrite,
        };
        let txn = match self.retry_priority.take() {
            Some(priority) if mode == Mode::ReadWrite => self.engine.begin_with_priority(mode, priority)?,
            _ => self.engine.begin(mode)?,
        };
        self.txn = Some(txn);
        self.txn_now_us = self.now_us();
        self.status = TxnStatus::InBlock;
        self.settings_at_begin = self.settings.clone();
        self.local_settings.clear();
        self.end_savepoints();
        self.block_tables.clear();
        self.end_writer_leases(None);
        sink.complete("BEGIN")
    }

    fn commit(&mut self, sink: &mut dyn Sink) -> Result<()> {
        match self.status {
            TxnStatus::Idle => {
                sink.warning(SqlState::NoActiveSqlTransaction, "there is no transaction in progress")?;
                sink.complete("COMMIT")
            }
            TxnStatus::Failed => {
                self.abort();
                sink.complete("ROLLBACK")
            }
            TxnStatus::InBlock => {
                let mut txn = self.txn.take().expect("a transaction in a block");
                let deferred_checks: Vec<_> =
                    std::mem::take(&mut self.deferred_checks).into_iter().map(|(_, d)| d).collect();
                self.status = TxnStatus::Idle;
                self.end_savepoints();
                let read_write = txn.mode() == Mode::ReadWrite;
                let priority = txn.priority();
                // Deferred checks are reads under the block's leases: lift
                // its deadline first, as before a statement.
                let checked = self
                    .lift_deadline(txn.as_mut(), !deferred_checks.is_empty())
                    .and_then(|()| self.run_deferred_checks(&deferred_checks, txn.as_mut()));
                let committed = match checked {
                    Ok(()) => txn.commit(),
                    Err(e) => {
                        let _ = txn.rollback();
                        self.end_block_settings(false);
                        self.end_cursors(false);
                        self.end_writer_leases(None);
                        self.end_drains();
                        return Err(e);
                    }
                };
                self.end_block_settings(committed.is_ok());
                self.end_cursors(committed.is_ok());
                self.end_writer_leases(committed.as_ref().ok().and_then(|c| c.ts));
                if matches!(committed, Err(KvError::Retryable(_))) {
                    self.retry_priority = priority;
                }
                if committed.is_ok() {
                    self.split_at_created_tables();
                }
                self.end_drains();
                if read_write {
                    self.last_commit_ts = committed?.ts;
                }
                sink.complete("COMMIT")
            }
        }
    }

    /// How long a transaction block may sit idle between statements before
    /// the gateway ends the connection (`idle_in_transaction_session_timeout`,
    /// PostgreSQL's setting; `None`: never).
    pub fn idle_in_transaction_timeout(&self) -> Option<std::time::Duration> {
        self.setting_duration("idle_in_transaction_session_timeout")
    }

    /// A duration setting's value (`None`: 0, never).
    fn setting_duration(&self, name: &str) -> Option<std::time::Duration> {
        let text = self.settings.get(name).map(String::as_str);
        let text = text.or_else(|| crate::timestamp::default_setting(name)).unwrap_or("0");
        crate::timestamp::parse_setting_duration(text).ok().flatten()
    }

    /// Deferred checks: an INITIALLY DEFERRED foreign key's checks, in a
    /// transaction block, are put off from the end of each statement to
    /// COMMIT (PostgreSQL's deferred constraints: rows may reference rows
    /// the block inserts later), and run then in the block's transaction,
    /// before it commits; a failed one fails the COMMIT, which rolls the
    /// block back. `SET CONSTRAINTS ALL IMMEDIATE` runs those put off so
    /// far and checks the rest of the block's at each statement's end;
    /// `SET CONSTRAINTS ALL DEFERRED` puts them off again. Outside a block
    /// a statement is its own transaction: checked at its end.
    fn run_deferred_checks(&mut self, checks: &[crate::plan::DeferredCheck], txn: &mut dyn Transaction) -> Result<()> {
        if checks.is_empty() {
            return Ok(());
        }
        let mut cx = Cx::new(txn, Vec::new(), self.txn_now_us).with_cancel(self.cancel.clone());
        write::check_deferred(checks, &mut cx)
    }

    /// `SET CONSTRAINTS ALL IMMEDIATE | DEFERRED` ("Deferred checks").
    fn set_constraints(&mut self, immediate: bool, sink: &mut dyn Sink) -> Result<()> {
        if self.status != TxnStatus::InBlock {
            sink.warning(SqlState::NoActiveSqlTransaction, "SET CONSTRAINTS can only be used in transaction blocks")?;
            return sink.complete("SET CONSTRAINTS");
        }
        if immediate {
            // Kept until they pass: a failure fails the block, and a
            // ROLLBACK TO an earlier savepoint must still check them.
            let checks: Vec<_> = self.deferred_checks.iter().map(|(_, d)| d.clone()).collect();
            let mut txn = self.txn.take().expect("a transaction in a block");
            let checked = self
                .lift_deadline(txn.as_mut(), !checks.is_empty())
                .and_then(|()| self.run_deferred_checks(&checks, txn.as_mut()));
            self.txn = Some(txn);
            if let Err(e) = checked {
                return Err(self.fail_block(e));
            }
            self.deferred_checks.clear();
        }
        self.constraint_mode = match immediate {
            true => crate::plan::ConstraintMode::AllImmediate,
            false => crate::plan::ConstraintMode::AllDeferred,
        };
        sink.complete("SET CONSTRAINTS")
    }

    /// The block's settings as it ends: all as they were at BEGIN if it
    /// rolled back, else those set LOCAL.
    fn end_block_settings(&mut self, committed: bool) {
        if !committed {
            self.settings = self.settings_at_begin.clone();
        } else {
            for name in std::mem::take(&mut self.local_settings) {
                let before = self.settings_at_begin.get(&name).cloned();
                let settings = Arc::make_mut(&mut self.settings);
                match before {
                    Some(v) => settings.insert(name, v),
                    None => settings.remove(&name),
                };
            }
        }
        self.local_settings.clear();
    }

    /// Forgets the block's savepoints (it ended or begins).
    fn end_savepoints(&mut self) {
        self.savepoints.clear();
        self.deferred_checks.clear();
        self.constraint_mode = crate::plan::ConstraintMode::AsDeclared;
        self.txn_lost = None;
        self.irreversible_steps = 0;
    }

    /// Ends the transaction block, if any, rolling back.
    pub fn abort(&mut self) {
        if self.status != TxnStatus::Idle {
            self.end_block_settings(false);
            self.end_cursors(false);
        }
        if let Some(txn) = self.txn.take() {
            let _ = txn.rollback();
        }
        self.status = TxnStatus::Idle;
        self.end_savepoints();
        self.end_writer_leases(None);
        self.end_drains();
    }

    /// Drains the existing tables a schema change changes (`catalog`,
    /// "Leases"): marks them in a transaction of its own, then waits out
    /// the lease, so that the change can commit.
    fn drain(&mut self, targets: &[SchemaTarget]) -> Result<()> {
        let engine = self.engine.clone();
        self.drain_through(engine.as_ref(), targets)
    }

    /// [`Session::drain`] through `engine` (an undo's, which a cancel
    /// does not stop).
    fn drain_through(&mut self, engine: &dyn Engine, targets: &[SchemaTarget]) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let mut txn = engine.begin(Mode::ReadWrite)?;
        match self.mark_draining(txn.as_mut(), targets) {
            Ok(epochs) if epochs.is_empty() => {
                let _ = txn.rollback();
                Ok(())
            }
            Ok(epochs) => {
                txn.commit()?;
                engine.wait(limits::DESCRIPTOR_LEASE_NS);
                self.drains.epochs.extend(epochs);
                Ok(())
            }
            Err(e) => {
                let _ = txn.rollback();
                Err(e)
            }
        }
    }

    fn mark_draining(&mut self, txn: &mut dyn Transaction, targets: &[SchemaTarget]) -> Result<Vec<(u32, u64)>> {
        let mut epochs: Vec<(u32, u64)> = Vec::new();
        let mut targets: Vec<&SchemaTarget> = targets.iter().collect();
        let mut referenced = Vec::new();
        for target in &targets {
            match target {
                SchemaTarget::ReferencedBy(name, only) => {
                    if let Some(desc) = Catalog::table(txn, name)? {
                        let column = match only {
                            Some(KeyPart::Column(c)) => desc.column(c).map(|(_, c)| c.id),
                            _ => None,
                        };
                        let changed = desc.foreign_keys.iter().filter(|fk| match only {
                            None => true,
                            Some(KeyPart::Column(_)) => column.is_some_and(|id| fk.columns.contains(&id)),
                            Some(KeyPart::Constraint(n)) => fk.name == *n,
                        });
                        referenced.extend(changed.map(|fk| SchemaTarget::Table(fk.table.clone())));
                    }
                }
                SchemaTarget::Referencing { table, transitive: true } => {
                    let tables = Catalog::referencing_closure(txn, std::slice::from_ref(table))?;
                    referenced.extend(tables.into_iter().map(SchemaTarget::Table));
                }
                SchemaTarget::Referencing { table, transitive: false } => {
                    if let Some(desc) = Catalog::table(txn, table)? {
                        referenced.extend(desc.referenced_by.iter().map(|r| SchemaTarget::Table(r.table.clone())));
                    }
                }
                SchemaTarget::ViewsReading(table) => {
                    referenced.extend(self.committed_views_reading(table)?.into_iter().map(SchemaTarget::Table))
                }
                _ => {}
            }
        }
        targets.extend(&referenced);
        for target in targets {
            let desc = match target {
                SchemaTarget::Table(name) => Catalog::table(txn, name)?,
                SchemaTarget::Index(name) => match self.committed_table_of_index(name)? {
                    Some(id) => Catalog::table_by_id(txn, id)?,
                    None => None,
                },
                SchemaTarget::Id(id) => Catalog::table_by_id(txn, *id)?,
                SchemaTarget::ReferencedBy(..) | SchemaTarget::Referencing { .. } | SchemaTarget::ViewsReading(_) => {
                    None
                }
            };
            // Missing ones are the statement's to report (or skip).
            let Some(desc) = desc else { continue };
            if self.drains.owned.contains(&desc.id) || epochs.iter().any(|(id, _)| *id == desc.id) {
                continue;
            }
            if self.status == TxnStatus::InBlock && self.block_tables.contains(&desc.name) {
                return sql_err!(
                    FeatureNotSupported,
                    "cannot change table \"{}\" after using it in the same transaction: a schema change first waits \
                     for other gateways to stop using the table's descriptor; change it first, or outside a \
                     transaction block",
                    desc.name
                );
            }
            epochs.push((desc.id, Catalog::drain(txn, &desc)?));
            if self.status == TxnStatus::InBlock {
                // The block is about to lock its descriptor.
                self.block_tables.insert(desc.name.clone());
            }
        }
        Ok(epochs)
    }

    /// The names of the views that read `table`, as committed (read and
    /// planned lock-free, as [`Session::committed_table_of_index`] reads,
    /// for the same reason).
    fn committed_views_reading(&self, table: &str) -> Result<Vec<String>> {
        fn reading(txn: &mut dyn Transaction, table: &str) -> Result<Vec<String>> {
            let mut out = Vec::new();
            for view in Catalog::tables(txn)?.iter().filter(|t| t.view.is_some()) {
                match crate::planner::view_tables(txn, view) {
                    Ok(used) if used.iter().any(|t| t == table) => out.push(view.name.clone()),
                    Ok(_) => {}
                    Err(e) if crate::ddl::is_binding_error(&e) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
        let mut snapshot = self.engine.begin(Mode::ReadOnly)?;
        let found = reading(snapshot.as_mut(), table);
        let _ = snapshot.rollback();
        found
    }

    /// The id of the table with index `name`, as committed: found by a
    /// lock-free read, not by reading every descriptor in the drain's
    /// transaction, which would wait for any descriptor this session's
    /// block has changed, while the block waits for the drain. (An index
    /// the block created is on a table it owns, which needs no drain.)
    fn committed_table_of_index(&self, name: &str) -> Result<Option<u32>> {
        let mut snapshot = self.engine.begin(Mode::ReadOnly)?;
        let found = Catalog::table_of_index(snapshot.as_mut(), name);
        let _ = snapshot.rollback();
        Ok(found?.map(|(desc, _)| desc.id))
    }

    /// Asks the engine for shard boundaries around every table the
    /// statement or block just created ([`Engine::split_at`]).
    fn split_at_created_tables(&self) {
        for &id in &self.drains.owned {
            self.engine.split_at(&crate::encoding::table_prefix(id));
            if let Some(next) = id.checked_add(1) {
                self.engine.split_at(&crate::encoding::table_prefix(next));
            }
        }
    }

    /// Ends the drains a statement or block left behind (a change that
    /// failed or changed nothing); best effort: a table left draining
    /// only goes without leases until its next change.
    fn end_drains(&mut self) {
        let drains = std::mem::take(&mut self.drains);
        if drains.epochs.is_empty() {
            return;
        }
        // Ended after a cancel or timeout too: a drain left marked stops
        // the table's writers planning from leases until the next one.
        let Ok(mut txn) = self.uncancelled.begin(Mode::ReadWrite) else { return };
        if drains.epochs.iter().all(|(&id, &epoch)| Catalog::end_drain(txn.as_mut(), id, epoch).is_ok()) {
            let _ = txn.commit();
        } else {
            let _ = txn.rollback();
        }
    }

    /// The read mode an `AS OF SYSTEM TIME` expression names.
    fn as_of_mode(&self, e: &ast::Expr) -> Result<Mode> {
        let now = self.engine.now();
        crate::timestamp::as_of_mode(e, now)
    }

    fn show(&mut self, variable: &[ast::Ident], sink: &mut dyn Sink) -> Result<()> {
        let name = show_name(variable);
        if name == "jobs" {
            let rows = crate::sweep::show_jobs(self.engine.as_ref())?;
            sink.columns(&show_jobs_columns())?;
            for row in rows {
                sink.row(row.into_iter().map(Value::Text).collect())?;
            }
            return sink.complete("SHOW");
        }
        if name == "all" {
            return self.show_all(sink);
        }
        let (column, value) = match name.as_str() {
            "commit_timestamp" => {
                let Some(ts) = self.last_commit_ts else {
                    return sql_err!(UndefinedObject, "no read-write transaction has committed in this session");
                };
                ("commit_timestamp", crate::timestamp::format_nanos(ts))
            }
            "transaction_read_only" => (
                "transaction_read_only",
                if self.txn.as_ref().is_some_and(|t| t.mode().is_read_only()) { "on" } else { "off" }.to_string(),
            ),
            other => match self.settings.get(other) {
                Some(v) => (other, v.clone()),
                None => match crate::timestamp::default_setting(other) {
                    Some(v) => (other, v.to_string()),
                    None => return sql_err!(UndefinedObject, "unrecognized configuration parameter \"{other}\""),
                },
            },
        };
        let column = column.to_string();
        sink.columns(&[OutputColumn { name: column, data_type: DataType::Text }])?;
        sink.row(vec![Value::Text(value)])?;
        sink.complete("SHOW")
    }

    /// `SHOW ALL`: every setting SHOW knows, the session's value or the
    /// default, by name (PostgreSQL's spelling), as PostgreSQL lists them.
    fn show_all(&mut self, sink: &mut dyn Sink) -> Result<()> {
        let mut all: BTreeMap<String, String> =
            crate::timestamp::DEFAULT_SETTINGS.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        all.extend(self.settings.iter().map(|(n, v)| (n.clone(), v.clone())));
        let shown = |name: &str| match name {
            "datestyle" => "DateStyle".to_string(),
            "intervalstyle" => "IntervalStyle".to_string(),
            "timezone" => "TimeZone".to_string(),
            other => other.to_string(),
        };
        let text = |name: &str| OutputColumn { name: name.into(), data_type: DataType::Text };
        sink.columns(&[text("name"), text("setting"), text("description")])?;
        let mut rows: Vec<(String, String)> = all.into_iter().map(|(n, v)| (shown(&n), v)).collect();
        rows.sort_by_key(|(n, _)| n.to_lowercase());
        for (name, value) in rows {
            sink.row(vec![Value::Text(name), Value::Text(value), Value::Text(String::new())])?;
        }
        sink.complete("SHOW")
    }

    /// `RESET name` / `RESET ALL`: back to the value the client gave at
    /// startup, else the default (what SHOW gives before any SET); in a
    /// block, a ROLLBACK puts the value back, as after SET. `RESET
    /// SESSION AUTHORIZATION` changes nothing (one user per session).
    fn reset(&mut self, reset: &ast::Reset, sink: &mut dyn Sink) -> Result<()> {
        match reset {
            ast::Reset::ALL => self.settings = Arc::new(self.startup_settings.clone()),
            ast::Reset::ConfigurationParameter(name) => {
                // A quoted name is the same setting (`RESET "TimeZone"`).
                let name = name.0.iter().map(|p| p.to_string().trim_matches('"').to_string()).collect::<Vec<_>>();
                let name = name.join(".").to_lowercase();
                let name = match name.as_str() {
                    "time zone" => "timezone".to_string(),
                    _ => name,
                };
                match self.startup_settings.get(&name).cloned() {
                    Some(value) => Arc::make_mut(&mut self.settings).insert(name, value),
                    None => Arc::make_mut(&mut self.settings).remove(&name),
                };
            }
            ast::Reset::SessionAuthorization => {}
        }
        sink.complete("RESET")
    }

    /// `DISCARD ALL | PLANS | SEQUENCES | TEMP`: what connection poolers
    /// send before handing a connection to another client (PgBouncer's
    /// `server_reset_query`). ALL resets the settings (to the startup
    /// ones, as RESET ALL), forgets kept plans
    /// and gives back the session's advisory locks (the gateway frees the
    /// protocol's prepared statements); not in a block (25001). ALL and
    /// SEQUENCES forget what `currval` and `lastval` would read. SpanDB has
    /// no temporary tables to discard.
    fn discard(&mut self, object: ast::DiscardObject, sink: &mut dyn Sink) -> Result<()> {
        match object {
            ast::DiscardObject::ALL => {
                if self.status != TxnStatus::Idle {
                    return sql_err!(ActiveSqlTransaction, "DISCARD ALL cannot run inside a transaction block");
                }
                self.settings = Arc::new(self.startup_settings.clone());
                self.kept_plans.clear();
                self.cursors.clear();
                self.sql_prepared.clear();
                self.advisory.unlock_all()?;
                self.sequences.clear();
            }
            ast::DiscardObject::PLANS => self.kept_plans.clear(),
            ast::DiscardObject::SEQUENCES => self.sequences.clear(),
            ast::DiscardObject::TEMP => {}
        }
        sink.complete(&format!("DISCARD {object}"))
    }

    /// `CREATE EXTENSION`: one SpanDB has built in (`system::EXTENSIONS`)
    /// is there already, and the statement does nothing (with IF NOT
    /// EXISTS, PostgreSQL's notice); any other is refused (0A000).
    fn create_extension(&mut self, create: &ast::CreateExtension, sink: &mut dyn Sink) -> Result<()> {
        let name = crate::parser::ident(&create.name);
        if !crate::system::EXTENSIONS.iter().any(|(n, _)| *n == name) {
            return sql_err!(FeatureNotSupported, "extension \"{name}\" is not available in SpanDB");
        }
        if create.if_not_exists {
            sink.notice(&format!("extension \"{name}\" already exists, skipping"))?;
        }
        sink.complete("CREATE EXTENSION")
    }

    /// `DROP EXTENSION` of a built-in one does nothing but say so (what it
    /// brings stays), so that down-migrations (Rails' `disable_extension`)
    /// run; of any other, 42704 unless IF EXISTS.
    fn drop_extension(&mut self, drop: &ast::DropExtension, sink: &mut dyn Sink) -> Result<()> {
        for name in drop.names.iter().map(crate::parser::ident) {
            if crate::system::EXTENSIONS.iter().any(|(n, _)| *n == name) {
                sink.notice(&format!("extension \"{name}\" is built into SpanDB and stays"))?;
                continue;
            }
            if !drop.if_exists {
                return sql_err!(UndefinedObject, "extension \"{name}\" does not exist");
            }
            sink.notice(&format!("extension \"{name}\" does not exist, skipping"))?;
        }
        sink.complete("DROP EXTENSION")
    }

    /// `COMMENT ON EXTENSION` of a built-in one, or `ON SCHEMA` of one
    /// SpanDB has (pg_dump writes both): taken, not kept.
    fn comment_on_builtin(
        &mut self,
        object: &ast::CommentObject,
        name: &ast::ObjectName,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        // Folded unless quoted (`PUBLIC` is public).
        let name = match name.0.as_slice() {
            [ast::ObjectNamePart::Identifier(i)] => crate::parser::ident(i),
            _ => name.to_string(),
        };
        match object {
            ast::CommentObject::Schema if !matches!(name.as_str(), "public" | "pg_catalog" | "information_schema") => {
                return sql_err!(InvalidSchemaName, "schema \"{name}\" does not exist")
            }
            ast::CommentObject::Extension if !crate::system::EXTENSIONS.iter().any(|(n, _)| *n == name) => {
                return sql_err!(UndefinedObject, "extension \"{name}\" does not exist")
            }
            _ => {}
        }
        sink.complete("COMMENT")
    }

    /// `CREATE SCHEMA`: SpanDB has the one, `public` (IF NOT EXISTS: a
    /// notice, as PostgreSQL gives for a schema it has).
    fn create_schema(&mut self, name: &ast::SchemaName, if_not_exists: bool, sink: &mut dyn Sink) -> Result<()> {
        let ast::SchemaName::Simple(object) = name else {
            return sql_err!(FeatureNotSupported, "CREATE SCHEMA ... AUTHORIZATION is not supported");
        };
        let name = crate::planner::object_name(object)?;
        if name != "public" {
            return sql_err!(
                FeatureNotSupported,
                "schemas other than \"public\" are not supported (CREATE SCHEMA {name})"
            );
        }
        if !if_not_exists {
            return sql_err!(DuplicateSchema, "schema \"public\" already exists");
        }
        sink.notice("schema \"public\" already exists, skipping")?;
        sink.complete("CREATE SCHEMA")
    }

    fn set(&mut self, set: &ast::Set, sink: &mut dyn Sink) -> Result<()> {
        match set {
            ast::Set::SingleAssignment { variable, values, .. } if variable.to_string() == parser::SET_CONSTRAINTS => {
                let immediate = values.iter().any(|v| v.to_string().contains("immediate"));
                return self.set_constraints(immediate, sink);
            }
            ast::Set::SingleAssignment { variable, values, scope, .. } => {
                // A quoted name is the same setting (`SET "TimeZone" = ...`).
                let name = variable
                    .0
                    .iter()
                    .map(|p| p.to_string().trim_matches('"').to_string())
                    .collect::<Vec<_>>()
                    .join(".")
                    .to_lowercase();
                let local = *scope == Some(ast::ContextModifier::Local);
                return self.set_setting(name, values, local, sink);
            }
            ast::Set::SetTimeZone { local, value } => {
                // `SET TIME ZONE LOCAL` is the default zone, as DEFAULT is.
                let value = match value {
                    ast::Expr::Identifier(i) if i.value.eq_ignore_ascii_case("local") => {
                        ast::Expr::Identifier(ast::Ident::new("DEFAULT"))
                    }
                    v => v.clone(),
                };
                return self.set_setting("timezone".into(), std::slice::from_ref(&value), *local, sink);
            }
            _ => {
                // SET NAMES, ...: accepted, no effect yet.
            }
        }
        sink.complete("SET")
    }

    /// `SET [LOCAL] name = value` (`DEFAULT`: back to what RESET gives),
    /// the value checked first (a bad one changes nothing).
    fn set_setting(&mut self, name: String, values: &[ast::Expr], local: bool, sink: &mut dyn Sink) -> Result<()> {
        if local && self.status != TxnStatus::InBlock {
            sink.warning(SqlState::NoActiveSqlTransaction, "SET LOCAL can only be used in transaction blocks")?;
            return sink.complete("SET");
        }
        let is_default = matches!(values, [ast::Expr::Identifier(i)] if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("default"));
        if is_default {
            // As RESET: the value given at startup, else SpanDB's default.
            match self.startup_settings.get(&name).cloned() {
                Some(value) => Arc::make_mut(&mut self.settings).insert(name.clone(), value),
                None => Arc::make_mut(&mut self.settings).remove(&name),
            };
        } else {
            let value = values
                .iter()
                .map(|v| match v {
                    ast::Expr::Value(v) => v.clone().into_string().unwrap_or_else(|| v.to_string()),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let value = crate::timestamp::setting_value(&name, &value)?;
            Arc::make_mut(&mut self.settings).insert(name.clone(), value);
        }
        if local {
            self.local_settings.push(name);
        }
        sink.complete("SET")
    }

    /// Makes the session's `TimeZone` this thread's
    /// ([`crate::ops::zone::session`]) as a statement starts; plans kept
    /// under another zone go (a constant they folded, such as
    /// `'2026-01-01'::timestamptz`, meant another instant there).
    fn enter_zone(&mut self) {
        let zone = self
            .settings
            .get("timezone")
            .and_then(|v| crate::ops::zone::parse_setting(v))
            .map_or(crate::ops::zone::Zone::Fixed(0), |(zone, _)| zone);
        if zone != self.plans_zone {
            self.kept_plans.clear();
            self.plans_zone = zone;
        }
        crate::ops::zone::set_session(zone);
    }

    /// Plans and runs one statement in `txn`; returns its command tag.
    fn run(
        &mut self,
        txn: &mut dyn Transaction,
        sql: &str,
        statement: &ast::Statement,
        now_us: i64,
        sink: &mut dyn Sink,
    ) -> Result<String> {
        let read_write = txn.mode() == Mode::ReadWrite;
        txn.set_lock_timeout(self.setting_duration("lock_timeout"));
        if read_write && !is_dml(statement) {
            self.txn_changed_schema = true;
            self.irreversible_steps += 1;
        }
        let plan = if read_write && !self.txn_changed_schema && self.drains.owned.is_empty() {
            self.plan_writer(txn, sql, statement)?
        } else {
            Arc::new(self.plan(txn, sql, statement, None)?)
        };
        if self.writer_leases.deadline.is_none() {
            return self.execute_plan(&plan, txn, statement, now_us, sink);
        }
        // The statement may outlast the leases it planned from: it lifts
        // their deadline as it nears (executing uses no writer leases).
        let mut leases = std::mem::take(&mut self.writer_leases);
        let engine = self.engine.clone();
        let mut lifting = DeadlineLifting { inner: txn, leases: &mut leases, engine: engine.as_ref(), no_wait: false };
        let result = self.execute_plan(&plan, &mut lifting, statement, now_us, sink);
        self.writer_leases = leases;
        result
    }

    /// Fetches again the descriptors whose leases this session claimed
    /// for renewal (`catalog`, "Renewal"), each by a strong read-only
    /// transaction of its own (lock-free; its timestamp, the new lease's
    /// start, is no earlier than the fetch). A renewal that fails
    /// changes nothing: the lease ages on, and statements read the
    /// descriptor themselves once it is too old to use. A renewal waits
    /// as any read does, so while the catalog's shard cannot answer, the
    /// statement that renews waits (up to the engine's deadline) before
    /// it goes on with the lease it has.
    fn renew_leases(&mut self) {
        for (name, id) in self.leases.claim_renewals(self.engine.now()) {
            let Ok(mut txn) = self.engine.begin(Mode::ReadOnly) else { return };
            let read = Catalog::table_by_id(txn.as_mut(), id);
            let read_ts = txn.read_ts();
            let _ = txn.rollback();
            if let (Ok(Some(desc)), Some(ts)) = (read, read_ts) {
                if desc.name == name {
                    self.leases.put(&name, &desc, ts);
                }
            }
        }
    }

    /// Plans a statement of a read-write transaction from leased
    /// descriptors where it can (`catalog`, "Writers"), binding the
    /// transaction to the leases' deadline. A prepared statement's plan
    /// made from leases alone is kept, and used again while they hold
    /// ("Kept plans"); the kept plan binds the transaction to them as a
    /// fresh one would.
    fn plan_writer(&mut self, txn: &mut dyn Transaction, sql: &str, statement: &ast::Statement) -> Result<Arc<Plan>> {
        let leases = self.leases.clone();
        let from_leases = self.params.prepared.then(|| self.plan_from_leases(&leases, sql, statement, Mode::ReadWrite));
        let (lease_use, planned) = match from_leases {
            Some((lease_use, planned, false)) => (lease_use, planned),
            // Not prepared, or it needs a descriptor no lease holds: the
            // transaction reads it.
            _ => {
                let lease_use = LeaseUse::new(&leases, self.engine.now());
                let planned = self.plan(txn, sql, statement, Some(&lease_use)).map(Arc::new);
                (lease_use, planned)
            }
        };
        let before = self.writer_leases.deadline;
        self.writer_leases.absorb(lease_use);
        if self.writer_leases.deadline != before {
            txn.set_deadline(self.writer_leases.deadline)?;
        }
        planned
    }

    /// A read-write transaction about to run a statement of its block, or
    /// to commit, close to the deadline its leased descriptors set, or
    /// about to run a statement that is not DML (`always`: a schema
    /// change, which can outlast the deadline by itself, as a CREATE TABLE
    /// waiting for its table's split can on a busy machine): reads the
    /// descriptors under locks instead and lifts the deadline, so a slow
    /// block does not fail for being slow. A descriptor that changed since
    /// fails it (40001).
    fn lift_deadline(&mut self, txn: &mut dyn Transaction, always: bool) -> Result<()> {
        if always || self.writer_leases.near_deadline(self.engine.now()) {
            self.writer_leases.lift(txn)?;
        }
        Ok(())
    }

    /// A read-write transaction ended (committed at `ts`, or not: None):
    /// leases the descriptors it read under locks, current at its commit.
    fn end_writer_leases(&mut self, ts: Option<Timestamp>) {
        let writer = std::mem::take(&mut self.writer_leases);
        let changed_schema = std::mem::take(&mut self.txn_changed_schema);
        if let (Some(ts), false) = (ts, changed_schema) {
            for (name, desc) in writer.locked {
                self.leases.put(&name, &desc, ts);
            }
        }
    }

    /// Binds and optimizes one statement, reading descriptors in `txn`
    /// (or using `leases`).
    fn plan(
        &mut self,
        txn: &mut dyn Transaction,
        sql: &str,
        statement: &ast::Statement,
        leases: Option<&LeaseUse>,
    ) -> Result<Plan> {
        let types: Vec<Option<DataType>> = self.params.types.iter().copied().map(Some).collect();
        Ok(self.plan_with_types(txn, sql, statement, leases, &types)?.0)
    }

    /// [`Session::plan`] with the parameters' types known so far; returns
    /// them as the plan left them (inferred where they were `None`).
    fn plan_with_types(
        &mut self,
        txn: &mut dyn Transaction,
        sql: &str,
        statement: &ast::Statement,
        leases: Option<&LeaseUse>,
        param_types: &[Option<DataType>],
    ) -> Result<(Plan, Vec<Option<DataType>>)> {
        let engine = self.engine.clone();
        let declared = &self.cursors;
        let cursors = || cursors::list(declared);
        let view = crate::system::SessionView {
            backend: &self.backend,
            settings: &self.settings,
            startup: &self.startup_settings,
            cursors: &cursors,
        };
        let mut planner = Planner::new(txn, sql).with_names(&self.names).with_user(&self.user).with_session(view);
        if self.status == TxnStatus::InBlock {
            // A later schema change in the block must not wait for it.
            planner = planner.with_unlocked_catalog(engine.as_ref(), self.drains.own());
        }
        planner.param_types = param_types.to_vec();
        if let Some(leases) = leases {
            planner = planner.with_leases(leases);
        }
        let plan = planner.plan(statement);
        self.block_tables.extend(planner.take_used_tables());
        let types = std::mem::take(&mut planner.param_types);
        Ok((optimizer::optimize_plan(plan?, self.rules), types))
    }

    /// Runs a read-only statement outside a block (module docs of
    /// `catalog`, "Leases"): planned from leased descriptors when it can
    /// be, and then, if its reads lie in one shard, read at the shard's
    /// latest state (`Mode::SingleShard`, if `single_shard` allows it);
    /// else in a strong read-only transaction that reads the descriptors
    /// it lacks. A single-shard transaction whose reads another shard
    /// serves (the gateway's routes were stale, or the shard split) fails
    /// retryably: the caller runs the statement again without it.
    fn run_read_only(
        &mut self,
        sql: &str,
        statement: &ast::Statement,
        (now_us, single_shard): (i64, bool),
        sink: &mut dyn Sink,
    ) -> Result<(String, Committed)> {
        let leases = self.leases.clone();
        let (lease_use, planned, wanted) = self.plan_from_leases(&leases, sql, statement, Mode::ReadOnly);
        let deadline = lease_use.deadline.clone();
        let (plan, mode) = match planned {
            Ok(plan) => {
                let mode =
                    if single_shard && self.single_shard(&plan, now_us) { Mode::SingleShard } else { Mode::ReadOnly };
                (Some(plan), mode)
            }
            Err(_) if wanted => (None, Mode::ReadOnly),
            Err(e) => return Err(e),
        };
        let mut txn = self.engine.begin(mode)?;
        let mut checked = LeaseChecked { inner: txn.as_mut(), deadline };
        let result = match plan {
            Some(plan) => self.execute_plan(&plan, &mut checked, statement, now_us, sink),
            None => self
                .plan(&mut checked, sql, statement, Some(&lease_use))
                .and_then(|plan| self.execute_plan(&plan, &mut checked, statement, now_us, sink)),
        };
        match result {
            Ok(tag) => Ok((tag, txn.commit()?)),
            Err(e) => {
                let _ = txn.rollback();
                Err(e)
            }
        }
    }

    /// Plans `statement` for a transaction in `mode` from leased
    /// descriptors alone, reading nothing: a prepared statement's kept
    /// plan while it holds, else a new plan, kept if the statement is
    /// prepared ("Kept plans"). Returns the leases used, the plan, and
    /// whether planning wanted a descriptor no lease holds (then the plan
    /// is an error, and the caller plans again in a transaction that
    /// reads).
    fn plan_from_leases<'l>(
        &mut self,
        leases: &'l Leases,
        sql: &str,
        statement: &ast::Statement,
        mode: Mode,
    ) -> (LeaseUse<'l>, Result<Arc<Plan>>, bool) {
        if self.params.prepared {
            let lease_use = LeaseUse::new(leases, self.engine.now());
            if let Some(plan) = self.kept_plan(sql, &lease_use, mode == Mode::ReadWrite) {
                return (lease_use, Ok(plan), false);
            }
        }
        // A kept plan that failed its check may have used leases.
        let lease_use = LeaseUse::new(leases, self.engine.now());
        let mut probe = NoReads { wanted: false, mode };
        let planned = self.plan(&mut probe, sql, statement, Some(&lease_use)).map(Arc::new);
        if let Ok(plan) = &planned {
            if self.params.prepared && !probe.wanted {
                self.keep_plan(sql, plan, lease_use.handed_out());
            }
        }
        (lease_use, planned, probe.wanted)
    }

    /// The plan kept for prepared statement `sql` ("Kept plans"), if it
    /// was made for these parameter types and rules and every descriptor
    /// it was planned from is still leased at the same version (the
    /// leases then count for `lease_use`'s deadline, and a `writer`'s
    /// use of them is recorded, as in planning).
    fn kept_plan(&mut self, sql: &str, lease_use: &LeaseUse, writer: bool) -> Option<Arc<Plan>> {
        let kept = self.kept_plans.get(sql)?;
        if kept.param_types != self.params.types || kept.rules != self.rules {
            return None;
        }
        if !kept.tables.iter().all(|(name, id, version)| lease_use.holds(name, *id, *version, writer)) {
            return None;
        }
        let plan = kept.plan.clone();
        self.block_tables.extend(kept.tables.iter().map(|(name, _, _)| name.clone()));
        self.plans_reused += 1;
        Some(plan)
    }

    /// Keeps `plan` of prepared statement `sql`, planned from the leased
    /// descriptors `tables` and nothing read.
    fn keep_plan(&mut self, sql: &str, plan: &Arc<Plan>, tables: Vec<(String, u32, u64)>) {
        if self.kept_plans.len() >= limits::KEPT_PLANS_MAX {
            self.kept_plans.clear();
        }
        let kept = KeptPlan { param_types: self.params.types.clone(), rules: self.rules, plan: plan.clone(), tables };
        self.kept_plans.insert(sql.to_string(), kept);
    }

    /// Whether every read of `plan` lies in one shard: no subqueries,
    /// spans known now, one shard covering them all, and, for a scan of
    /// a secondary index (whose rows are read by key), the table's rows.
    fn single_shard(&self, plan: &Plan, now_us: i64) -> bool {
        let Plan::Query(q) = plan else { return false };
        let mut scans = Vec::new();
        if !collect_scans(&q.root, &mut scans) {
            return false;
        }
        let mut none = NoReads { wanted: false, mode: Mode::ReadOnly };
        let mut cx = Cx::new(&mut none, self.params.values.clone(), now_us);
        cx.settings = self.settings.clone();
        let mut shard = None;
        for (table, index, spans) in scans {
            let Ok(mut ranges) = exec::span_ranges(table, index, spans, &mut cx) else { return false };
            if index.id != table.primary.id {
                let rows = crate::encoding::index_prefix(table.id, table.primary.id);
                let end = crate::encoding::prefix_end(&rows);
                ranges.push((rows, end));
            }
            for (start, end) in ranges {
                match self.engine.shard_spanning(&start, &end) {
                    Some(id) if shard.is_none_or(|s| s == id) => shard = Some(id),
                    _ => return false,
                }
            }
        }
        shard.is_some()
    }

    /// Runs a planned statement in `txn`; returns its command tag.
    fn execute_plan(
        &mut self,
        plan: &Plan,
        txn: &mut dyn Transaction,
        statement: &ast::Statement,
        now_us: i64,
        sink: &mut dyn Sink,
    ) -> Result<String> {
        if self.described.as_ref().is_some_and(|described| *described != plan.columns()) {
            return sql_err!(FeatureNotSupported, "cached plan must not change result type");
        }
        let read_only = txn.mode().is_read_only();
        let mut cx = Cx::new(txn, self.params.values.clone(), now_us).with_cancel(self.cancel.clone());
        cx.drains = std::mem::take(&mut self.drains);
        cx.defer_unique_checks = self.defer_unique_checks;
        cx.batch_schema_changes = self.status != TxnStatus::InBlock;
        cx.read_only_block = self.status == TxnStatus::InBlock && read_only;
        cx.engine = Some(self.engine.clone());
        cx.settings = self.settings.clone();
        cx.constraint_mode = (self.status == TxnStatus::InBlock).then_some(self.constraint_mode);
        cx.advisory = Some(self.advisory.clone());
        cx.sequences = Some(self.sequences.clone());
        cx.backend_pid = self.backend_pid;
        cx.backend = Some(self.backend.clone());
        let result = self.execute_in(plan, &mut cx, statement, sink);
        if result.is_ok() {
            let in_block = self.status == TxnStatus::InBlock;
            for (name, value, local) in cx.settings_changed.drain(..) {
                match (local, in_block) {
                    // A statement that is its own transaction: gone with it.
                    (true, false) => continue,
                    (true, true) => self.local_settings.push(name.clone()),
                    _ => {}
                }
                Arc::make_mut(&mut self.settings).insert(name, value);
            }
            for check in cx.deferred_checks.drain(..) {
                self.deferred_checks.push((self.next_deferred_check, check));
                self.next_deferred_check += 1;
            }
        }
        self.block_tables.extend(cx.tables_read.drain(..));
        self.drains = std::mem::take(&mut cx.drains);
        self.followup = cx.followup.take();
        result
    }

    /// Finishes a committed schema change that fills or copies a table
    /// ([`backfill`]); its errors are the statement's.
    fn run_followup(&mut self, followup: &FollowUp, now_us: i64) -> Result<()> {
        let engine = self.engine.clone();
        // Undoing must not stop at the cancel (or timeout) that failed it.
        let undo = self.uncancelled.clone();
        match *followup {
            FollowUp::Backfill { table, index } => {
                let filled = backfill::fill_index(engine.as_ref(), table, index, now_us, &self.cancel);
                if filled.is_err() {
                    // Writers may plan from leases that have the index:
                    // drain before dropping it (`catalog`, "Writers"). If
                    // the drain fails, drop it anyway: a writer that
                    // still has it writes entries nobody reads.
                    self.end_drains();
                    let _ = self.drain_through(undo.as_ref(), &[SchemaTarget::Id(table)]);
                    backfill::drop_write_only_index(undo.as_ref(), table, index, now_us);
                }
                filled
            }
            FollowUp::Rewrite { table } => {
                let switched = backfill::copy_rows(engine.as_ref(), table, now_us, &self.cancel).and_then(|name| {
                    // Readers move to the new table: drain the old one.
                    self.end_drains();
                    self.drain(&[SchemaTarget::Table(name)])?;
                    backfill::switch_to_rewrite(engine.as_ref(), table, &self.drains, now_us)
                });
                if switched.is_err() {
                    backfill::abandon_rewrite(undo.as_ref(), table, now_us);
                }
                switched
            }
        }
    }

    fn execute_in(
        &mut self,
        plan: &Plan,
        cx: &mut Cx,
        statement: &ast::Statement,
        sink: &mut dyn Sink,
    ) -> Result<String> {
        if plan.writes() && cx.txn()?.mode().is_read_only() {
            return sql_err!(
                ReadOnlySqlTransaction,
                "cannot execute {} in a read-only transaction",
                statement_name(statement)
            );
        }
        let engine = self.engine.clone();
        match plan {
            Plan::Query(q) => {
                sink.columns(&q.columns)?;
                let mut op = exec::build(&q.root);
                let mut n = 0u64;
                while let Some(row) = op.next(cx)? {
                    sink.row(row)?;
                    n += 1;
                    if n.is_multiple_of(64) {
                        cx.check_cancel()?;
                    }
                }
                Ok(format!("SELECT {n}"))
            }
            Plan::Insert { table, source, on_conflict: OnConflict::Error, returning: None, constraints }
                if self.status == TxnStatus::InBlock =>
            {
                let count = self.insert_in_block(table, source, constraints, cx)?;
                Ok(format!("INSERT 0 {count}"))
            }
            Plan::Insert { table, source, on_conflict, returning, constraints } => {
                let r = write::insert(table, source, on_conflict, returning, constraints, cx, &mut self.row_ids)?;
                send_returning(returning, r.returned, sink)?;
                Ok(format!("INSERT 0 {}", r.count))
            }
            Plan::Update { table, source, assignments, returning, constraints } => {
                let r = write::update(table, source, assignments, returning, constraints, cx, &mut self.row_ids)?;
                send_returning(returning, r.returned, sink)?;
                Ok(format!("UPDATE {}", r.count))
            }
            Plan::Delete { table, source, returning, constraints } => {
                let r = write::delete(table, source, returning, constraints, cx, &mut self.row_ids)?;
                send_returning(returning, r.returned, sink)?;
                Ok(format!("DELETE {}", r.count))
            }
            Plan::WithModifying { steps, main } => {
                for step in steps {
                    let mut returned = Collected::default();
                    self.execute_in(&step.plan, cx, statement, &mut returned)?;
                    let bytes = returned.rows.iter().map(|r| exec::row_bytes(r)).sum();
                    cx.hold(bytes, "a data-modifying WITH query's RETURNING rows")?;
                    cx.keep_work_table(step.id, returned.rows);
                }
                self.execute_in(main, cx, statement, sink)
            }
            Plan::Explain { plan: inner, analyze: false } => {
                let lines = explain::explain(inner, engine.as_ref(), cx, None);
                send_plan(lines, sink)?;
                Ok("EXPLAIN".into())
            }
            Plan::Explain { plan: inner, analyze: true } => {
                let clock_engine = engine.clone();
                let analysis = exec::Analysis::default();
                cx.measure(analysis.clone(), Arc::new(move || clock_engine.now()));
                let started = engine.now();
                let outcome = match inner.as_ref() {
                    Plan::Query(q) => {
                        let mut op = exec::build_analyzed(&q.root, &analysis);
                        let mut n = 0u64;
                        while op.next(cx)?.is_some() {
                            n += 1;
                        }
                        format!("rows returned: {n}")
                    }
                    Plan::Insert { table, source, on_conflict, returning, constraints } => {
                        let r =
                            write::insert(table, source, on_conflict, returning, constraints, cx, &mut self.row_ids)?;
                        format!("rows inserted: {}", r.count)
                    }
                    Plan::Update { table, source, assignments, returning, constraints } => {
                        let r =
                            write::update(table, source, assignments, returning, constraints, cx, &mut self.row_ids)?;
                        format!("rows updated: {}", r.count)
                    }
                    Plan::Delete { table, source, returning, constraints } => {
                        let r = write::delete(table, source, returning, constraints, cx, &mut self.row_ids)?;
                        format!("rows deleted: {}", r.count)
                    }
                    Plan::WithModifying { .. } => {
                        return sql_err!(
                            FeatureNotSupported,
                            "EXPLAIN ANALYZE of a statement with data-modifying WITH queries is not supported"
                        )
                    }
                    _ => return sql_err!(FeatureNotSupported, "EXPLAIN ANALYZE of a schema change is not supported"),
                };
                let elapsed_ns = engine.now().saturating_sub(started);
                let stats = analysis.borrow().clone();
                let mut lines = explain::explain(inner, engine.as_ref(), cx, Some(&stats));
                let s = &cx.stats;
                lines.push(format!(
                    "{outcome}; kv requests {}, pairs {}, bytes {}, {:.3} ms",
                    s.kv_requests,
                    s.kv_pairs,
                    s.kv_bytes,
                    elapsed_ns as f64 / 1e6
                ));
                if self.status == TxnStatus::InBlock {
                    lines.push("commit: at COMMIT (inside a transaction block)".into());
                } else {
                    // The session adds the commit's line once it is known.
                    self.explain_commit = true;
                }
                send_plan(lines, sink)?;
                Ok("EXPLAIN".into())
            }
            Plan::CreateTableAs { table, query, if_not_exists } => {
                let create = Plan::CreateTable { table: table.clone(), if_not_exists: *if_not_exists };
                let existed = Catalog::table(cx.txn()?, &table.name)?.is_some();
                crate::ddl::run(&create, cx, sink)?;
                if existed {
                    return Ok("CREATE TABLE AS".into());
                }
                let created = Catalog::must_table(cx.txn()?, &table.name)?;
                // The query's rows, then the hidden row id the writer fills.
                let mut rows = exec::collect(&query.root, cx, limits::WRITES_PER_TRANSACTION_MAX + 1)?;
                if rows.len() > limits::WRITES_PER_TRANSACTION_MAX {
                    return write::too_many_writes();
                }
                rows.iter_mut().for_each(|r| r.push(Value::Null));
                let constraints = Constraints::default();
                let r =
                    write::insert_rows(&created, rows, &OnConflict::Error, &None, &constraints, cx, &mut self.row_ids)?;
                Ok(format!("SELECT {}", r.count))
            }
            ddl => crate::ddl::run(ddl, cx, sink),
        }
    }
}

/// The last line of an EXPLAIN ANALYZE: how its transaction committed.
fn describe_commit(c: &crate::kv::Committed) -> String {
    let ts = c.ts.map(crate::timestamp::format_nanos).unwrap_or_else(|| "none".into());
    if c.participants == 0 {
        return format!("commit: read-only, read at {ts}");
    }
    format!(
        "commit: at {ts}, commit-wait {:.3} ms, {} participant shard(s)",
        c.commit_wait_ns as f64 / 1e6,
        c.participants
    )
}

fn send_plan(lines: Vec<String>, sink: &mut dyn Sink) -> Result<()> {
    sink.columns(&[OutputColumn { name: "QUERY PLAN".into(), data_type: DataType::Text }])?;
    for line in lines {
        sink.row(vec![Value::Text(line)])?;
    }
    Ok(())
}

fn send_returning(
    returning: &Option<Vec<(crate::plan::Expr, OutputColumn)>>,
    rows: Vec<Row>,
    sink: &mut dyn Sink,
) -> Result<()> {
    if let Some(items) = returning {
        let columns: Vec<OutputColumn> = items.iter().map(|(_, c)| c.clone()).collect();
        sink.columns(&columns)?;
        for r in rows {
            sink.row(r)?;
        }
    }
    Ok(())
}

/// The setting `SHOW` names: its words joined by `_`, or what
/// PostgreSQL's spellings of their own stand for (`SHOW TRANSACTION
/// ISOLATION LEVEL`, which SQLAlchemy asks on connect; `SHOW TIME ZONE`).
fn show_name(variable: &[ast::Ident]) -> String {
    let name = variable.iter().map(|i| i.value.to_lowercase()).collect::<Vec<_>>().join("_");
    match name.as_str() {
        "transaction_isolation_level" => "transaction_isolation".into(),
        "time_zone" => "timezone".into(),
        _ => name,
    }
}

/// The error of any statement but COMMIT/ROLLBACK in a failed block.
fn in_failed_block<T>() -> Result<T> {
    sql_err!(InFailedSqlTransaction, "current transaction is aborted, commands ignored until end of transaction block")
}

/// The table, columns and format of `COPY table [(columns)] FROM STDIN`
/// (0A000 for any other COPY).
fn copy_from_stdin(s: &ast::Statement) -> Result<(String, Option<Vec<String>>, CopyFormat)> {
    let ast::Statement::Copy {
        source,
        to: false,
        target: ast::CopyTarget::Stdin,
        options,
        legacy_options,
        payload: None,
    } = s
    else {
        return sql_err!(FeatureNotSupported, "only COPY ... FROM STDIN is supported");
    };
    let ast::CopySource::Table { table_name, columns } = source else {
        return sql_err!(FeatureNotSupported, "COPY from a query is not supported");
    };
    let format = CopyFormat::from_options(options, legacy_options)?;
    let table = crate::planner::object_name(table_name)?;
    let columns = (!columns.is_empty()).then(|| columns.iter().map(crate::parser::ident).collect());
    Ok((table, columns, format))
}

/// `COPY table [(columns)] | (query) TO STDOUT [WITH (FORMAT text)]` as
/// the query it runs (its text, for error positions, and its statement);
/// `None` for any other statement.
fn copy_to_stdout(s: &ast::Statement) -> Result<Option<(String, ast::Statement)>> {
    let ast::Statement::Copy { source, to: true, target, options, legacy_options, .. } = s else {
        return Ok(None);
    };
    if *target != ast::CopyTarget::Stdout {
        return sql_err!(
            FeatureNotSupported,
            "COPY TO a file or program is not supported (use STDOUT, or psql's \\copy)"
        );
    }
    CopyFormat::from_options(options, legacy_options)?;
    let sql = match source {
        ast::CopySource::Query(q) if modifies(q) => {
            return sql_err!(FeatureNotSupported, "COPY of an INSERT, UPDATE or DELETE is not supported")
        }
        ast::CopySource::Query(q) => return Ok(Some((q.to_string(), ast::Statement::Query(q.clone())))),
        ast::CopySource::Table { table_name, columns } => {
            let table = crate::planner::object_name(table_name)?;
            let columns = if columns.is_empty() {
                "*".to_string()
            } else {
                columns.iter().map(|c| quote_name(&crate::parser::ident(c))).collect::<Vec<_>>().join(", ")
            };
            format!("SELECT {columns} FROM {}", quote_name(&table))
        }
    };
    let mut parsed = parser::parse(&sql)?;
    match parsed.pop() {
        Some(p) if parsed.is_empty() => Ok(Some((sql, p.statement))),
        _ => sql_err!(InternalError, "COPY TO's query did not parse as one statement: {sql}"),
    }
}

/// Passes a COPY TO's query rows on, and tags it `COPY n`.
struct CopyOutSink<'a> {
    inner: &'a mut dyn Sink,
    rows: u64,
}

impl Sink for CopyOutSink<'_> {
    fn columns(&mut self, columns: &[OutputColumn]) -> Result<()> {
        self.inner.columns(columns)
    }

    fn row(&mut self, row: Row) -> Result<()> {
        self.rows += 1;
        self.inner.row(row)
    }

    fn complete(&mut self, _tag: &str) -> Result<()> {
        self.inner.complete(&format!("COPY {}", self.rows))
    }

    fn notice(&mut self, message: &str) -> Result<()> {
        self.inner.notice(message)
    }
    fn warning(&mut self, state: SqlState, message: &str) -> Result<()> {
        self.inner.warning(state, message)
    }
}

/// Whether preparing `s` plans it: statements that read or write rows
/// (their parameters and columns come from the plan); the rest (schema
/// changes, transaction control, SET) are only parsed until they run.
fn show_jobs_columns() -> Vec<OutputColumn> {
    crate::sweep::SHOW_JOBS_COLUMNS
        .iter()
        .map(|name| OutputColumn { name: name.to_string(), data_type: DataType::Text })
        .collect()
}

fn describes_by_planning(s: &ast::Statement) -> bool {
    matches!(
        s,
        ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Update(_)
            | ast::Statement::Delete(_)
            | ast::Statement::Explain { .. }
    )
}

fn is_read_only_statement(s: &ast::Statement) -> bool {
    match s {
        // FOR UPDATE / FOR SHARE lock rows: a read-write transaction.
        ast::Statement::Query(q) => !locks_rows(q) && !modifies(q),
        ast::Statement::Explain { statement, analyze, .. } => !*analyze || is_read_only_statement(statement),
        _ => false,
    }
}

/// Whether `q` writes: an INSERT, UPDATE or DELETE itself, or with one
/// among its WITH queries.
fn modifies(q: &ast::Query) -> bool {
    dml_body(q).is_some() || q.with.as_ref().is_some_and(|w| w.cte_tables.iter().any(|c| dml_body(&c.query).is_some()))
}

/// Whether `q`, its WITH queries or its derived tables say FOR UPDATE or
/// FOR SHARE.
fn locks_rows(q: &ast::Query) -> bool {
    fn in_body(body: &ast::SetExpr) -> bool {
        match body {
            ast::SetExpr::Query(q) => locks_rows(q),
            ast::SetExpr::SetOperation { left, right, .. } => in_body(left) || in_body(right),
            ast::SetExpr::Select(select) => select.from.iter().any(|twj| {
                std::iter::once(&twj.relation)
                    .chain(twj.joins.iter().map(|j| &j.relation))
                    .any(|t| matches!(t, ast::TableFactor::Derived { subquery, .. } if locks_rows(subquery)))
            }),
            _ => false,
        }
    }
    !q.locks.is_empty()
        || q.with.as_ref().is_some_and(|w| w.cte_tables.iter().any(|c| locks_rows(&c.query)))
        || in_body(&q.body)
}

/// Whether `s` reads or writes rows only (it changes no schema).
fn is_dml(s: &ast::Statement) -> bool {
    use ast::Statement as S;
    match s {
        S::Query(_) | S::Insert(_) | S::Update { .. } | S::Delete(_) => true,
        S::Explain { statement, .. } => is_dml(statement),
        _ => false,
    }
}

fn statement_name(s: &ast::Statement) -> &'static str {
    match s {
        ast::Statement::Insert(_) => "INSERT",
        ast::Statement::Update(_) => "UPDATE",
        ast::Statement::Delete(_) => "DELETE",
        ast::Statement::CreateTable(_) => "CREATE TABLE",
        ast::Statement::CreateIndex(_) => "CREATE INDEX",
        ast::Statement::Drop { .. } => "DROP",
        ast::Statement::AlterTable(_) => "ALTER TABLE",
        ast::Statement::Truncate(_) => "TRUNCATE TABLE",
        ast::Statement::Query(q) => {
            let ctes = q.with.iter().flat_map(|w| &w.cte_tables);
            let dml = dml_body(q).or_else(|| ctes.filter_map(|c| dml_body(&c.query)).next());
            dml.map_or("this statement", statement_name)
        }
        _ => "this statement",
    }
}

/// The tables of the database (for `\dt` and tests).
pub fn list_tables(engine: &dyn Engine) -> Result<Vec<Arc<TableDesc>>> {
    let mut txn = engine.begin(Mode::ReadOnly)?;
    let tables = Catalog::tables(txn.as_mut());
    let _ = txn.commit();
    tables
}

/// What a schema change changes, as the statement names it.
enum SchemaTarget {
    Table(String),
    Index(String),
    /// A table the change already knows by id (a follow-up's).
    Id(u32),
    /// The tables this table's foreign keys reference (a change that
    /// drops them changes those tables' references): all of them, or
    /// those of the keys on a column, or of a constraint.
    ReferencedBy(String, Option<KeyPart>),
    /// The tables whose foreign keys reference this table (DROP TABLE ...
    /// CASCADE drops those keys), and with `transitive` the tables
    /// referencing those, and so on (TRUNCATE ... CASCADE empties them).
    Referencing {
        table: String,
        transitive: bool,
    },
    /// The views that read this table or view (directly or through
    /// other views), as committed: a CASCADE may drop them.
    ViewsReading(String),
}

/// Which of a table's foreign keys a change drops ([`SchemaTarget::ReferencedBy`]).
#[derive(Debug)]
enum KeyPart {
    /// Those on this column.
    Column(String),
    /// The constraint of this name.
    Constraint(String),
}

/// The existing tables (or indexes, whose tables) a statement changes the
/// schema of; empty for every other statement (and CREATE TABLE).
fn schema_targets(s: &ast::Statement) -> Vec<SchemaTarget> {
    use ast::Statement as S;
    let name = |n: &ast::ObjectName| crate::planner::object_name(n).ok();
    match s {
        S::Drop { object_type: ast::ObjectType::Table, names, cascade, .. } => names
            .iter()
            .filter_map(name)
            .flat_map(|n| {
                let referencing = cascade.then(|| SchemaTarget::Referencing { table: n.clone(), transitive: false });
                let views = cascade.then(|| SchemaTarget::ViewsReading(n.clone()));
                [SchemaTarget::Table(n.clone()), SchemaTarget::ReferencedBy(n, None)]
                    .into_iter()
                    .chain(referencing)
                    .chain(views)
            })
            .collect(),
        S::Comment { object_type: ast::CommentObject::Table | ast::CommentObject::View, object_name, .. } => {
            name(object_name).map(SchemaTarget::Table).into_iter().collect()
        }
        S::Comment { object_type: ast::CommentObject::Column, object_name, .. } => {
            let table = ast::ObjectName(object_name.0[..object_name.0.len().saturating_sub(1)].to_vec());
            name(&table).map(SchemaTarget::Table).into_iter().collect()
        }
        S::CreateTable(create) => {
            // The tables its foreign keys reference gain a reference.
            let column_keys = create.columns.iter().flat_map(|c| &c.options).filter_map(|o| match &o.option {
                ast::ColumnOption::ForeignKey(fk) => Some(fk),
                _ => None,
            });
            let table_keys = create.constraints.iter().filter_map(|c| match c {
                ast::TableConstraint::ForeignKey(fk) => Some(fk),
                _ => None,
            });
            let own = name(&create.name);
            column_keys
                .chain(table_keys)
                .filter_map(|fk| name(&fk.foreign_table))
                .filter(|n| Some(n) != own.as_ref())
                .map(SchemaTarget::Table)
                .collect()
        }
        S::Drop { object_type: ast::ObjectType::Index, names, .. } => {
            names.iter().filter_map(name).map(SchemaTarget::Index).collect()
        }
        S::Drop { object_type: ast::ObjectType::View, names, cascade, .. } => names
            .iter()
            .filter_map(name)
            .flat_map(|n| {
                let views = cascade.then(|| SchemaTarget::ViewsReading(n.clone()));
                std::iter::once(SchemaTarget::Table(n)).chain(views)
            })
            .collect(),
        S::CreateView(create) if create.or_replace => name(&create.name).map(SchemaTarget::Table).into_iter().collect(),
        S::AlterTable(alter) => {
            // OWNER TO changes nothing of the table (no owners are kept);
            // SET (...) is a sequence's ALTER (`parser::alter_sequence`).
            let changes_table = alter.operations.iter().any(|op| {
                !matches!(
                    op,
                    ast::AlterTableOperation::OwnerTo { .. } | ast::AlterTableOperation::SetOptionsParens { .. }
                )
            });
            let table = name(&alter.name).filter(|_| changes_table);
            let mut targets: Vec<SchemaTarget> = table.map(SchemaTarget::Table).into_iter().collect();
            for op in &alter.operations {
                match op {
                    ast::AlterTableOperation::AddConstraint {
                        constraint: ast::TableConstraint::ForeignKey(fk),
                        ..
                    } => targets.extend(name(&fk.foreign_table).map(SchemaTarget::Table)),
                    ast::AlterTableOperation::DropConstraint { name: constraint, .. } => {
                        let only = Some(KeyPart::Constraint(crate::parser::ident(constraint)));
                        targets.extend(name(&alter.name).map(|t| SchemaTarget::ReferencedBy(t, only)))
                    }
                    ast::AlterTableOperation::DropColumn { column_names, drop_behavior, .. } => {
                        for column in column_names {
                            let only = Some(KeyPart::Column(crate::parser::ident(column)));
                            targets.extend(name(&alter.name).map(|t| SchemaTarget::ReferencedBy(t, only)))
                        }
                        if *drop_behavior == Some(ast::DropBehavior::Cascade) {
                            targets.extend(name(&alter.name).map(SchemaTarget::ViewsReading));
                        }
                    }
                    // Its foreign keys' other tables name it.
                    ast::AlterTableOperation::RenameTable { .. } => {
                        let table = name(&alter.name);
                        targets.extend(table.clone().map(|t| SchemaTarget::ReferencedBy(t, None)));
                        targets.extend(table.map(|table| SchemaTarget::Referencing { table, transitive: false }));
                    }
                    _ => {}
                }
            }
            targets
        }
        S::Truncate(t) => {
            let cascade = t.cascade == Some(ast::CascadeOption::Cascade);
            let names: Vec<String> = t.table_names.iter().filter_map(|t| name(&t.name)).collect();
            let referencing = names
                .iter()
                .filter(|_| cascade)
                .map(|n| SchemaTarget::Referencing { table: n.clone(), transitive: true })
                .collect::<Vec<_>>();
            names.into_iter().map(SchemaTarget::Table).chain(referencing).collect()
        }
        S::CreateIndex(create) => name(&create.table_name).map(SchemaTarget::Table).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// The scans under `node`, with their tables and indexes; false if a
/// subquery hides more reads in an expression.
fn collect_scans<'n>(node: &'n Node, out: &mut Vec<(&'n TableDesc, &'n IndexDesc, &'n [ScanSpan])>) -> bool {
    let plain = |exprs: &mut dyn Iterator<Item = &Expr>| {
        let mut subquery = false;
        for e in exprs {
            e.walk(&mut |x| {
                subquery |=
                    matches!(x, Expr::Exists(_) | Expr::Subquery(_) | Expr::ArraySubquery(_) | Expr::InSubquery(..))
            });
        }
        !subquery
    };
    match node {
        Node::Scan { table, index, spans, .. } => {
            out.push((table, index, spans));
            true
        }
        Node::Values { rows, .. } => plain(&mut rows.iter().flatten()),
        Node::Filter { input, predicate } => plain(&mut std::iter::once(predicate)) && collect_scans(input, out),
        Node::Project { input, exprs } => plain(&mut exprs.iter()) && collect_scans(input, out),
        Node::Aggregate { input, group_by, aggregates } => {
            let calls =
                aggregates.iter().flat_map(|a| a.arg.iter().chain(&a.filter).chain(a.order_by.iter().map(|k| &k.expr)));
            plain(&mut group_by.iter().chain(calls)) && collect_scans(input, out)
        }
        Node::Sort { input, keys } => plain(&mut keys.iter().map(|k| &k.expr)) && collect_scans(input, out),
        Node::Limit { input, limit, offset } => {
            plain(&mut limit.iter().chain(offset.iter())) && collect_scans(input, out)
        }
        Node::Distinct { input, .. } => collect_scans(input, out),
        Node::Join { left, right, left_keys, right_keys, on, .. } => {
            plain(&mut left_keys.iter().chain(right_keys.iter()).chain(on.iter()))
                && collect_scans(left, out)
                && collect_scans(right, out)
        }
        // Its right side runs per left row, reading it: not a plain scan.
        Node::Lateral { .. } => false,
        Node::SetOp { left, right, .. } => collect_scans(left, out) && collect_scans(right, out),
        Node::Series { start, stop, step, .. } => {
            plain(&mut std::iter::once(start).chain(std::iter::once(stop)).chain(step.iter()))
        }
        Node::Unnest { array } => plain(&mut std::iter::once(array)),
        Node::Window { input, calls } => {
            plain(&mut calls.iter().flat_map(WindowCall::exprs)) && collect_scans(input, out)
        }
        // Its step runs once per round: not a plain scan.
        Node::Recursive { .. } => false,
        Node::WorkTable { .. } => true,
        // Read-write only.
        Node::LockRows { .. } => false,
    }
}

/// A transaction that reads nothing: planning from leases alone notes
/// that it wanted a read (a descriptor no lease covers) and stops.
struct NoReads {
    wanted: bool,
    /// The mode planning sees: a writer's statements use leases as
    /// writers do (`catalog`, "Writers").
    mode: Mode,
}

impl Transaction for NoReads {
    fn mode(&self) -> Mode {
        self.mode
    }
    fn get(&mut self, _key: &[u8]) -> std::result::Result<Option<Vec<u8>>, KvError> {
        self.wanted = true;
        Err(KvError::Unavailable("planning from leased descriptors reads nothing".into()))
    }
    fn scan(&mut self, _start: &[u8], _end: &[u8], _limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        self.wanted = true;
        Err(KvError::Unavailable("planning from leased descriptors reads nothing".into()))
    }
    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        self.scan(start, end, limit)
    }
    fn put(&mut self, _key: &[u8], _value: &[u8]) -> std::result::Result<(), KvError> {
        Err(KvError::ReadOnly)
    }
    fn put_absent(&mut self, _key: &[u8], _value: &[u8]) -> std::result::Result<(), KvError> {
        Err(KvError::ReadOnly)
    }
    fn delete(&mut self, _key: &[u8]) -> std::result::Result<(), KvError> {
        Err(KvError::ReadOnly)
    }
    fn commit(self: Box<Self>) -> std::result::Result<Committed, KvError> {
        Ok(Committed::default())
    }
    fn rollback(self: Box<Self>) -> std::result::Result<(), KvError> {
        Ok(())
    }
    fn read_ts(&self) -> Option<Timestamp> {
        None
    }
    fn set_deadline(&mut self, _: Option<Timestamp>) -> std::result::Result<(), KvError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: row ids are non-negative, never repeat within a session,
    /// differ between sessions, and spread (the top bits take every
    /// value, so consecutive inserts land in different shards).
    #[test]
    fn row_ids_are_fresh_and_spread() {
        let mut a = RowIdSequence::new(1_000);
        let mut b = RowIdSequence::new(1_000);
        let mut seen = HashSet::new();
        let mut high = HashSet::new();
        for _ in 0..100_000 {
            for s in [&mut a, &mut b] {
                let id = s.next_row_id();
                assert!(id >= 0);
                assert!(seen.insert(id), "{id} repeated");
                high.insert(id >> 59);
            }
        }
        assert_eq!(high.len(), 16, "the top bits take every value");
        // The scramble is a bijection: distinct inputs, distinct outputs.
        let outs: HashSet<u64> = (0..10_000u64).map(|x| scramble(x << 20)).collect();
        assert_eq!(outs.len(), 10_000);
    }
}
