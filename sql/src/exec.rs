//! The executor: plan nodes become operators that pull rows from their
//! inputs (the Volcano model), so rows stream from key-value scans to the
//! client a page at a time. Operators that must see all their input
//! (sort, hash join's build side, aggregation, window functions, DISTINCT,
//! set operations)
//! hold at most [`limits::MEMORY_ROWS_MAX`] rows and fail with 53200
//! beyond.
//!
//! ```text
//!   client <- Project <- Filter <- Scan --scan(start, end, 256)--> Transaction
//! ```
//!
//! Expressions are evaluated with three-valued logic (NULL is "unknown":
//! `NULL AND false` is false, `NULL AND true` is NULL, a WHERE keeps only
//! true). Subqueries run as nested plans: an uncorrelated one once per
//! statement (its rows cached), a correlated one per outer row, with that
//! row pushed on `Cx::outer` for `Expr::Outer` to read.

mod window;

use std::cell::{OnceCell, RefCell};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;

use crate::catalog::{IndexDesc, TableDesc, PRIMARY_INDEX_ID};
use crate::encoding::{self, Direction};
use crate::error::{Error, Result, SqlState};
use crate::functions;
use crate::kv::{KvError, Pair, Transaction};
use crate::layout;
use crate::limits;
use crate::ops;
use crate::plan::*;
use crate::sql_err;
use crate::types::{DataType, Interval, Row, Value};

/// What a statement's execution counted (EXPLAIN ANALYZE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Key-value calls (gets and scan pages).
    pub kv_requests: u64,
    /// Pairs read.
    pub kv_pairs: u64,
    /// Bytes of keys and values read.
    pub kv_bytes: u64,
}

/// The execution context: the transaction and the statement's inputs.
pub struct Cx<'t> {
    txn: Option<&'t mut dyn Transaction>,
    pub params: Vec<Value>,
    /// The statement's timestamp, microseconds since the Unix epoch.
    pub now_us: i64,
    /// Rows of enclosing queries, innermost last.
    outer: Vec<Row>,
    /// What each subquery is known to be (correlated, or its rows).
    subqueries: HashMap<usize, Subquery>,
    pub stats: Stats,
    /// Set by another thread to cancel the statement (57014).
    cancel: Option<Arc<AtomicBool>>,
    /// Nanoseconds from some origin, for EXPLAIN ANALYZE (the caller's
    /// clock: this crate reads none).
    clock: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
    ticks: u64,
    /// EXPLAIN ANALYZE: plans built during the statement (a write's
    /// source) are measured into this.
    analysis: Option<Analysis>,
    /// Bytes of rows operators have kept so far (never given back: the
    /// statement's budget, [`limits::MEMORY_BYTES_MAX`]).
    held_bytes: usize,
    /// A schema change's drains (the session's, lent for the statement).
    pub drains: crate::catalog::Drains,
    /// INSERT leaves "this key is new" to the commit (`put_absent`)
    /// instead of reading each key: set by the session for a statement
    /// that is its own transaction, which reruns it with reads if the
    /// commit finds a key taken (so the error names it, as PostgreSQL's).
    pub defer_unique_checks: bool,
    /// Schema changes that fill or copy a table do it in batches after
    /// the statement commits (a statement outside a transaction block).
    pub batch_schema_changes: bool,
    /// What such a change left for after the commit.
    pub followup: Option<crate::catalog::FollowUp>,
    /// The session's engine, for what a statement does outside its
    /// transaction: new table ids, in transactions of their own (see
    /// [`Cx::next_table_id`]; none: from the statement's), and
    /// `pg_sleep`'s waits.
    pub engine: Option<Arc<dyn crate::kv::Engine>>,
    /// The table whose rows an UPDATE or DELETE is reading: its rows
    /// looked up by key are read for update ([`Cx::get_row`]).
    pub for_update: Option<u32>,
    /// Under `SKIP LOCKED`: the table whose scans read without locks (the
    /// rows it passes are locked one by one, [`Cx::lock_row_if_free`]).
    /// Reads of other tables, and subqueries', lock as ever.
    unlocked_table: Option<u32>,
    /// Whether the transaction's locking reads refuse rather than wait
    /// now (`NOWAIT`, [`Cx::lock_row_if_free`]), as the operator that set
    /// it will set it back.
    no_wait: bool,
    /// The rows each running [`Node::Recursive`] added in its last round,
    /// by id (what its step's [`Node::WorkTable`] reads).
    work_tables: HashMap<usize, Rc<Vec<Row>>>,
    /// How many foreign key actions the running write is nested in
    /// (`write`).
    pub action_depth: usize,
    /// Inside a transaction block, when its deferrable foreign keys are
    /// checked (None: outside one, at each statement); the checks put off
    /// to COMMIT go to `deferred_checks`.
    pub constraint_mode: Option<crate::plan::ConstraintMode>,
    pub deferred_checks: Vec<crate::plan::DeferredCheck>,
    /// The session's settings (`current_setting`).
    pub settings: Arc<std::collections::BTreeMap<String, String>>,
    /// Settings `set_config` changed, in order, each with whether it is
    /// for the transaction only (`is_local`); the session keeps them if
    /// the statement succeeds.
    pub settings_changed: Vec<(String, String, bool)>,
    /// Tables whose descriptors plans made while running read (their
    /// session adds them to its block's, as it does its statements').
    pub tables_read: Vec<String>,
    /// The session's advisory locks (`advisory`): none where no session
    /// runs the statement.
    pub advisory: Option<Arc<crate::advisory::SessionLocks>>,
    /// What the session's `nextval` gave (`sequence`), for `currval`.
    pub sequences: Option<Arc<crate::sequence::SessionValues>>,
    /// The statement runs in a block the client began READ ONLY (or AS
    /// OF): `nextval` and `setval`, which write through transactions of
    /// their own, are refused there, as PostgreSQL refuses them (an
    /// autocommit SELECT also runs read-only, and may call them).
    pub read_only_block: bool,
    /// The session's process id, as its client knows it (`pg_backend_pid`).
    pub backend_pid: i32,
    /// The session's own entry, through which `pg_cancel_backend` and
    /// `pg_terminate_backend` reach its gateway's sessions
    /// ([`crate::backends`]); `None` where no session runs the statement.
    pub backend: Option<Arc<crate::backends::Backend>>,
    /// Plans the statement made while running (foreign key actions'),
    /// kept until it ends: what it learns of a subquery is keyed by the
    /// plan node's address, which must not be reused meanwhile.
    pub plans_made: Vec<Rc<crate::plan::Plan>>,
}

/// How many units of work pass between two cancellation checks.
const CANCEL_CHECK_TICKS: u64 = 1024;

impl<'t> Cx<'t> {
    pub fn new(txn: &'t mut dyn Transaction, params: Vec<Value>, now_us: i64) -> Cx<'t> {
        Cx::with_txn(Some(txn), params, now_us)
    }

    fn with_txn(txn: Option<&'t mut dyn Transaction>, params: Vec<Value>, now_us: i64) -> Cx<'t> {
        Cx {
            txn,
            params,
            now_us,
            outer: Vec::new(),
            subqueries: HashMap::new(),
            stats: Stats::default(),
            cancel: None,
            clock: None,
            ticks: 0,
            analysis: None,
            held_bytes: 0,
            drains: crate::catalog::Drains::default(),
            defer_unique_checks: false,
            batch_schema_changes: false,
            followup: None,
            engine: None,
            for_update: None,
            unlocked_table: None,
            no_wait: false,
            work_tables: HashMap::new(),
            action_depth: 0,
            constraint_mode: None,
            deferred_checks: Vec::new(),
            settings: Arc::default(),
            settings_changed: Vec::new(),
            tables_read: Vec::new(),
            plans_made: Vec::new(),
            advisory: None,
            sequences: None,
            read_only_block: false,
            backend_pid: 0,
            backend: None,
        }
    }

    /// Allocates a table id. With an [`Cx::engine`], in a transaction
    /// of its own, as PostgreSQL's OIDs and CockroachDB's descriptor ids:
    /// an id a rolled-back statement took is never handed out again (a
    /// COPY inside that block may have left rows under it, `copy`), and
    /// concurrent schema changes do not queue on the counter.
    pub fn next_table_id(&mut self) -> Result<u32> {
        let Some(engine) = self.engine.clone() else {
            return crate::catalog::Catalog::next_table_id(self.txn()?);
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut txn = engine.begin(crate::kv::Mode::ReadWrite)?;
            let id = crate::catalog::Catalog::next_table_id(txn.as_mut());
            let committed = match id {
                Ok(id) => txn.commit().map(|_| id).map_err(Error::from),
                Err(e) => {
                    let _ = txn.rollback();
                    Err(e)
                }
            };
            match committed {
                Err(e) if e.is_retryable() && attempt <= limits::AUTOCOMMIT_RETRIES_MAX => continue,
                other => return other,
            }
        }
    }

    /// Measures the plans this statement runs through [`collect`].
    pub fn with_analysis(mut self, analysis: Analysis) -> Self {
        self.analysis = Some(analysis);
        self
    }

    /// Measures into `analysis`, timing operators with `clock`
    /// (nanoseconds), for EXPLAIN ANALYZE.
    /// Keeps `rows` as work table `id` (a data-modifying WITH query's
    /// RETURNING rows, [`Plan::WithModifying`]), for the statement.
    pub fn keep_work_table(&mut self, id: usize, rows: Vec<Row>) {
        self.work_tables.insert(id, Rc::new(rows));
    }

    pub fn measure(&mut self, analysis: Analysis, clock: Arc<dyn Fn() -> u64 + Send + Sync>) {
        self.analysis = Some(analysis);
        self.clock = Some(clock);
    }

    fn clock_ns(&self) -> u64 {
        self.clock.as_ref().map_or(0, |c| c())
    }

    /// The flag that cancels the statement, if one does.
    pub fn cancel_flag(&self) -> Option<Arc<AtomicBool>> {
        self.cancel.clone()
    }

    /// Makes the statement stop with 57014 once `flag` is set.
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Counts a unit of work; every `CANCEL_CHECK_TICKS` of them,
    /// checks for cancellation (operators that never reach storage, such
    /// as `generate_series` feeding an aggregate, stay cancellable).
    pub fn tick(&mut self) -> Result<()> {
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(CANCEL_CHECK_TICKS) {
            self.check_cancel()?;
        }
        Ok(())
    }

    /// Counts `bytes` an operator keeps in memory for `what` against the
    /// statement's budget (53200 beyond it).
    pub fn hold(&mut self, bytes: usize, what: &str) -> Result<()> {
        self.held_bytes = self.held_bytes.saturating_add(bytes);
        if self.held_bytes > limits::MEMORY_BYTES_MAX {
            return sql_err!(
                OutOfMemory,
                "{what} would hold more than {} MiB in memory",
                limits::MEMORY_BYTES_MAX / (1024 * 1024)
            );
        }
        Ok(())
    }

    /// Fails if the statement was cancelled.
    pub fn check_cancel(&self) -> Result<()> {
        match &self.cancel {
            Some(flag) if flag.load(AtomicOrdering::Relaxed) => {
                sql_err!(QueryCanceled, "canceling statement due to user request")
            }
            _ => Ok(()),
        }
    }

    pub fn txn(&mut self) -> Result<&mut dyn Transaction> {
        match self.txn.as_deref_mut() {
            Some(t) => Ok(t),
            None => sql_err!(InternalError, "no transaction to read from"),
        }
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read_key(key, false)
    }

    /// Reads a row of `table` by its key: for update if the statement is
    /// an UPDATE or DELETE of that table ([`Cx::for_update`]).
    pub fn get_row(&mut self, table: u32, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.unlocked_table == Some(table) {
            let mut end = key.to_vec();
            end.push(0);
            let pairs = self.scan_of(Some(table), (key, &end, false), 1)?;
            return Ok(pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v));
        }
        self.read_key(key, self.for_update == Some(table))
    }

    fn read_key(&mut self, key: &[u8], for_update: bool) -> Result<Option<Vec<u8>>> {
        self.check_cancel()?;
        self.stats.kv_requests += 1;
        let txn = self.txn()?;
        let v = if for_update { txn.get_for_update(key)? } else { txn.get(key)? };
        if let Some(v) = &v {
            self.stats.kv_pairs += 1;
            self.stats.kv_bytes += (key.len() + v.len()) as u64;
        }
        Ok(v)
    }

    /// Locks the row at `key` exclusively if no other transaction holds
    /// it, and reads it: `None` if another does (nothing waited for, no
    /// lock taken) or the row is gone. `SKIP LOCKED`'s lock.
    pub fn lock_row_if_free(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.check_cancel()?;
        self.stats.kv_requests += 1;
        let no_wait = self.no_wait;
        let txn = self.txn()?;
        txn.set_lock_no_wait(true);
        let read = txn.get_for_update(key);
        txn.set_lock_no_wait(no_wait);
        match read {
            Err(KvError::LockNotAvailable(_)) => Ok(None),
            read => Ok(read?),
        }
    }

    pub fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<Pair>> {
        self.scan_of(None, (start, end, false), limit)
    }

    /// [`Cx::scan`] of `table`'s keys (`None`: of no one table) in key
    /// order or (`reverse`) from the end down, without locks under its
    /// `SKIP LOCKED` ([`Cx::unlocked_table`]).
    fn scan_of(
        &mut self,
        table: Option<u32>,
        (start, end, reverse): (&[u8], &[u8], bool),
        limit: usize,
    ) -> Result<Vec<Pair>> {
        self.check_cancel()?;
        self.stats.kv_requests += 1;
        let unlocked = table.is_some() && self.unlocked_table == table;
        let txn = self.txn()?;
        let page = match (unlocked, reverse) {
            (false, false) => txn.scan(start, end, limit)?,
            (false, true) => txn.scan_reverse(start, end, limit)?,
            (true, false) => txn.scan_unlocked(start, end, limit)?,
            (true, true) => txn.scan_unlocked_reverse(start, end, limit)?,
        };
        self.stats.kv_pairs += page.len() as u64;
        self.stats.kv_bytes += page.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
        Ok(page)
    }
}

/// A running plan node.
pub trait Operator {
    /// The next row, or None when done.
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>>;

    /// Before its first row: the consumer (a LIMIT) will take at most
    /// `rows` rows. A scan reads its first page that long (not a short
    /// first page, then a longer one: two round trips for `LIMIT 20`);
    /// operators that pass rows through one for one pass it on.
    fn expect_rows(&mut self, rows: u64) {
        let _ = rows;
    }
}

/// Builds the operator tree of `node`.
pub fn build(node: &Node) -> Box<dyn Operator + '_> {
    build_node(node, None)
}

/// What EXPLAIN ANALYZE shows per plan node (inclusive of its inputs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub rows: u64,
    pub kv_requests: u64,
    pub kv_pairs: u64,
    pub kv_bytes: u64,
    pub time_ns: u64,
}

/// Per-node statistics, in the plan's pre-order (a node, then its inputs
/// left to right), filled in as the operators run.
pub type Analysis = Rc<RefCell<Vec<NodeStats>>>;

/// Builds the operator tree of `node`, measuring every operator into
/// `analysis` (EXPLAIN ANALYZE).
pub fn build_analyzed<'p>(node: &'p Node, analysis: &Analysis) -> Box<dyn Operator + 'p> {
    build_node(node, Some(analysis))
}

fn build_node<'p>(node: &'p Node, analysis: Option<&Analysis>) -> Box<dyn Operator + 'p> {
    let index = analysis.map(|a| {
        let mut v = a.borrow_mut();
        v.push(NodeStats::default());
        v.len() - 1
    });
    let b = |n: &'p Node| build_node(n, analysis);
    let op: Box<dyn Operator + 'p> = match node {
        Node::Scan { table, index, spans, reverse } => Box::new(Scan::new(table, index, spans, *reverse)),
        Node::Values { rows, .. } => Box::new(Values { rows, next: 0 }),
        Node::Filter { input, predicate } => Box::new(Filter { input: b(input), predicate }),
        Node::Project { input, exprs } => Box::new(Project { input: b(input), exprs }),
        Node::Aggregate { input, group_by, aggregates } => {
            Box::new(Aggregate { input: b(input), group_by, aggregates, output: None })
        }
        Node::Sort { input, keys } => Box::new(Sort { input: b(input), keys, output: None }),
        Node::Limit { input, limit, offset } => {
            Box::new(Limit { input: b(input), limit, offset, remaining: None, skipped: false })
        }
        Node::Distinct { input, on } => {
            Box::new(Distinct { input: b(input), on: on.as_deref(), seen: BTreeSet::new() })
        }
        Node::Join { left, right, kind, left_keys, right_keys, on } => {
            let left_op = b(left);
            let right_op = b(right);
            Box::new(Join {
                left: left_op,
                right: right_op,
                right_width: right.width(),
                left_width: left.width(),
                kind: *kind,
                left_keys,
                right_keys,
                on: on.as_ref(),
                state: None,
            })
        }
        Node::Lateral { left, right, kind, on } => Box::new(LateralJoin {
            left: b(left),
            right,
            correlated: is_correlated(right),
            left_kind: *kind == JoinKind::Left,
            on: on.as_ref(),
            current: None,
        }),
        Node::SetOp { op, all, left, right } => {
            let left_op = b(left);
            let right_op = b(right);
            Box::new(SetOp { op: *op, all: *all, left: left_op, right: right_op, state: None })
        }
        Node::Series { start, stop, step, data_type } => {
            Box::new(Series { start, stop, step: step.as_ref(), data_type: *data_type, state: None })
        }
        Node::Unnest { array } => Box::new(Unnest { array, items: None }),
        Node::Window { input, calls } => Box::new(window::Window { input: b(input), calls, output: None }),
        // The step is built anew for each round; EXPLAIN ANALYZE measures
        // its first.
        Node::Recursive { base, step, all, id } => Box::new(Recursive {
            base: b(base),
            step,
            first_step: Some(b(step)),
            all: *all,
            id: *id,
            base_done: false,
            running: None,
            round: Vec::new(),
            seen: std::collections::HashSet::new(),
        }),
        Node::WorkTable { id, .. } => Box::new(WorkTable { id: *id, rows: None, next: 0 }),
        Node::LockRows { input, skip_locked: Some(skip), .. } => {
            Box::new(SkipLockedRows { input: b(input), skip, checked: false })
        }
        Node::LockRows { input, table, exclusive, no_wait, skip_locked: None } => Box::new(LockRows {
            input: b(input),
            table: table.as_ref().map(|(id, _)| *id),
            relation: table.as_ref().map(|(_, name)| name.clone()),
            exclusive: *exclusive,
            no_wait: *no_wait,
            checked: false,
        }),
    };
    match (analysis, index) {
        (Some(a), Some(index)) => Box::new(Analyzed { inner: op, index, analysis: a.clone() }),
        _ => op,
    }
}

/// Measures the operator it wraps.
struct Analyzed<'p> {
    inner: Box<dyn Operator + 'p>,
    index: usize,
    analysis: Analysis,
}

impl Operator for Analyzed<'_> {
    fn expect_rows(&mut self, rows: u64) {
        self.inner.expect_rows(rows)
    }

    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        let before = cx.stats.clone();
        let started = cx.clock_ns();
        let row = self.inner.next(cx);
        let elapsed = cx.clock_ns().saturating_sub(started);
        let mut all = self.analysis.borrow_mut();
        let s = &mut all[self.index];
        s.time_ns += elapsed;
        s.kv_requests += cx.stats.kv_requests - before.kv_requests;
        s.kv_pairs += cx.stats.kv_pairs - before.kv_pairs;
        s.kv_bytes += cx.stats.kv_bytes - before.kv_bytes;
        if matches!(row, Ok(Some(_))) {
            s.rows += 1;
        }
        row
    }
}

/// Runs `node` to the end, collecting at most `limit` rows.
pub fn collect(node: &Node, cx: &mut Cx, limit: usize) -> Result<Vec<Row>> {
    let analysis = cx.analysis.take();
    let mut op = build_node(node, analysis.as_ref());
    let mut rows = Vec::new();
    while rows.len() < limit {
        match op.next(cx)? {
            Some(r) => {
                cx.hold(row_bytes(&r), "a subquery or a write's input")?;
                rows.push(r);
            }
            None => break,
        }
        if rows.len() > limits::MEMORY_ROWS_MAX {
            return too_many_rows("a subquery");
        }
    }
    Ok(rows)
}

/// About how many bytes a row takes in memory.
pub fn row_bytes(row: &[Value]) -> usize {
    const OVERHEAD: usize = 32;
    row.iter()
        .map(|v| match v {
            Value::Text(s) => s.len() + OVERHEAD,
            Value::Bytea(b) => b.len() + OVERHEAD,
            Value::Jsonb(j) => ops::jsonb::approximate_bytes(j),
            _ => OVERHEAD,
        })
        .sum::<usize>()
        + OVERHEAD
}

fn too_many_rows<T>(what: &str) -> Result<T> {
    sql_err!(OutOfMemory, "{what} would hold more than {} rows in memory", limits::MEMORY_ROWS_MAX)
}

/// All of `input`'s rows, for an operator that must see them all (`what`
/// names it in errors): counted against the statement's rows and bytes.
fn hold_all(input: &mut dyn Operator, cx: &mut Cx, what: &str) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    while let Some(row) = input.next(cx)? {
        cx.tick()?;
        if rows.len() >= limits::MEMORY_ROWS_MAX {
            return too_many_rows(what);
        }
        cx.hold(row_bytes(&row), what)?;
        rows.push(row);
    }
    Ok(rows)
}

/// `WITH RECURSIVE`'s loop ([`Node::Recursive`]): the base's rows, then
/// each round's as the step makes them, so a LIMIT above stops the loop
/// (`WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t)
/// SELECT n FROM t LIMIT 10`). It keeps the round being made (the next
/// work table) and, without ALL, every row given; both count against the
/// statement's memory budget, which is what stops a recursion that grows
/// without end.
struct Recursive<'p> {
    base: Box<dyn Operator + 'p>,
    step: &'p Node,
    first_step: Option<Box<dyn Operator + 'p>>,
    all: bool,
    id: usize,
    base_done: bool,
    /// The step running over the last round's rows.
    running: Option<Box<dyn Operator + 'p>>,
    /// The rows this round added so far: the next work table.
    round: Vec<Row>,
    /// Without ALL: every row given.
    seen: std::collections::HashSet<Vec<u8>>,
}

impl<'p> Recursive<'p> {
    /// `row`, if it is new (always, with ALL), kept for the next round.
    fn add(&mut self, row: Row, cx: &mut Cx) -> Result<Option<Row>> {
        const WHAT: &str = "WITH RECURSIVE";
        cx.tick()?;
        if !self.all && !self.seen.insert(row_key(&row)) {
            return Ok(None);
        }
        if self.round.len() >= limits::MEMORY_ROWS_MAX || self.seen.len() > limits::MEMORY_ROWS_MAX {
            return too_many_rows(WHAT);
        }
        cx.hold(row_bytes(&row) * if self.all { 1 } else { 2 }, WHAT)?;
        self.round.push(row.clone());
        Ok(Some(row))
    }
}

impl Operator for Recursive<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        loop {
            if !self.base_done {
                match self.base.next(cx)? {
                    Some(row) => match self.add(row, cx)? {
                        Some(row) => return Ok(Some(row)),
                        None => continue,
                    },
                    None => self.base_done = true,
                }
            }
            if let Some(step) = self.running.as_mut() {
                match step.next(cx)? {
                    Some(row) => match self.add(row, cx)? {
                        Some(row) => return Ok(Some(row)),
                        None => continue,
                    },
                    None => self.running = None,
                }
            }
            // The next round, over the rows the last one added.
            if self.round.is_empty() {
                cx.work_tables.remove(&self.id);
                return Ok(None);
            }
            cx.check_cancel()?;
            cx.work_tables.insert(self.id, Rc::new(std::mem::take(&mut self.round)));
            let step = self.step;
            self.running = Some(self.first_step.take().unwrap_or_else(|| build(step)));
        }
    }
}

/// The rows the enclosing [`Recursive`]'s last round added.
struct WorkTable {
    id: usize,
    rows: Option<Rc<Vec<Row>>>,
    next: usize,
}

impl Operator for WorkTable {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.rows.is_none() {
            let rows = cx.work_tables.get(&self.id).cloned();
            let rows = rows.ok_or_else(|| Error::new(SqlState::InternalError, "a work table read outside its loop"))?;
            self.rows = Some(rows);
        }
        let rows = self.rows.as_ref().expect("set");
        let row = rows.get(self.next).cloned();
        self.next += 1;
        Ok(row)
    }
}

/// How NOWAIT's error begins (PostgreSQL's words): a lock that was taken,
/// and nothing waited for, so the transaction goes on (a savepoint can
/// take the block back), unlike a lock wait given up on at `lock_timeout`.
pub const NO_WAIT_REFUSAL: &str = "could not obtain lock on row";

/// `FOR UPDATE` / `FOR SHARE` ([`Node::LockRows`]).
struct LockRows<'p> {
    input: Box<dyn Operator + 'p>,
    table: Option<u32>,
    /// The table's name, for NOWAIT's error.
    relation: Option<String>,
    exclusive: bool,
    /// `NOWAIT`: the reads under it refuse a lock that is taken (55P03).
    no_wait: bool,
    checked: bool,
}

impl Operator for LockRows<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if !self.checked {
            if cx.txn()?.mode().is_read_only() {
                let strength = if self.exclusive { "UPDATE" } else { "SHARE" };
                return sql_err!(
                    ReadOnlySqlTransaction,
                    "cannot execute SELECT FOR {strength} in a read-only transaction"
                );
            }
            self.checked = true;
        }
        let outer_no_wait = cx.no_wait;
        if self.no_wait {
            cx.no_wait = true;
            cx.txn()?.set_lock_no_wait(true);
        }
        let outer = match self.table {
            Some(table) => cx.for_update.replace(table),
            None => cx.for_update,
        };
        let row = self.input.next(cx);
        cx.for_update = outer;
        if !self.no_wait {
            return row;
        }
        // Reads outside the NOWAIT clause (a later statement's, or another
        // part of this one) wait as usual.
        cx.no_wait = outer_no_wait;
        cx.txn()?.set_lock_no_wait(outer_no_wait);
        row.map_err(|e| match e.state {
            // The refusal (not a `lock_timeout`, which waited).
            SqlState::LockNotAvailable if e.message.starts_with(NO_WAIT_REFUSAL) => Error::new(
                SqlState::LockNotAvailable,
                match &self.relation {
                    Some(name) => format!("{NO_WAIT_REFUSAL} in relation \"{name}\""),
                    None => NO_WAIT_REFUSAL.to_string(),
                },
            ),
            _ => e,
        })
    }
}

/// `FOR UPDATE SKIP LOCKED` ([`Node::LockRows`], `planner::skip_locked`):
/// its input read without locks; each row locked without waiting and
/// read again as it passes, and left out if another transaction holds it
/// or it is gone. A row that changed since is checked against the WHERE
/// again and its output computed anew (PostgreSQL's re-check of a row's
/// latest version).
struct SkipLockedRows<'p> {
    input: Box<dyn Operator + 'p>,
    skip: &'p crate::plan::SkipLocked,
    checked: bool,
}

impl Operator for SkipLockedRows<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if !self.checked {
            if cx.txn()?.mode().is_read_only() {
                return sql_err!(ReadOnlySqlTransaction, "cannot execute SELECT FOR UPDATE in a read-only transaction");
            }
            self.checked = true;
        }
        let table = &self.skip.table;
        loop {
            let outer = cx.unlocked_table.replace(table.id);
            let row = self.input.next(cx);
            cx.unlocked_table = outer;
            let Some(row) = row? else { return Ok(None) };
            let read = row.get(self.skip.row_at..).ok_or_else(|| internal("SKIP LOCKED's row is missing".into()))?;
            let key = layout::row_key(table, read)?;
            let Some(value) = cx.lock_row_if_free(&key)? else { continue };
            if layout::row_value(table, read)? == value {
                // As it was read: the WHERE held, the columns are right.
                return Ok(Some(row));
            }
            let latest = layout::decode_row(table, &key, &value)?;
            if let Some(filter) = &self.skip.filter {
                if !holds(filter, &latest, cx)? {
                    continue;
                }
            }
            return self.skip.output.iter().map(|e| eval(e, &latest, cx)).collect::<Result<Row>>().map(Some);
        }
    }
}

/// An ordered-set aggregate's value over its `sorted` non-NULL values
/// (NULL for none), as PostgreSQL's `percentile_cont_final_common`,
/// `percentile_disc_final` and `mode_final` compute it.
fn ordered_set(call: &AggCall, sorted: Vec<&Value>) -> Result<Value> {
    let Some(&first) = sorted.first() else { return Ok(Value::Null) };
    let fraction = call.fraction.unwrap_or(0.0);
    let n = sorted.len();
    Ok(match call.func {
        AggFunc::PercentileCont => {
            let at = fraction * (n - 1) as f64;
            let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
            let value = |i: usize| sorted.get(i).and_then(|v| v.as_f64()).unwrap_or(0.0);
            let (low, high) = (value(lo), value(hi));
            Value::Float8(if lo == hi { low } else { low + (at - lo as f64) * (high - low) })
        }
        AggFunc::PercentileDisc => {
            let row = ((fraction * n as f64).ceil() as usize).clamp(1, n);
            sorted[row - 1].clone()
        }
        _ => {
            // The longest run of equal values (its first), the first of
            // equally long ones.
            let (mut best, mut best_run, mut run, mut run_start) = (first, 0, 0, first);
            for (i, v) in sorted.iter().enumerate() {
                if i > 0 && ops::sort_cmp(v, sorted[i - 1]) == Ordering::Equal {
                    run += 1;
                } else {
                    (run, run_start) = (1, v);
                }
                if run > best_run {
                    (best_run, best) = (run, run_start);
                }
            }
            best.clone()
        }
    })
}

// ---- expressions -------------------------------------------------------------

/// Evaluates an expression with no row, parameters or transaction (the
/// optimizer's constant folding).
pub fn eval_constant(e: &Expr) -> Result<Value> {
    let mut cx = Cx::with_txn(None, Vec::new(), 0);
    eval(e, &[], &mut cx)
}

/// Evaluates `e` over `row`.
pub fn eval(e: &Expr, row: &[Value], cx: &mut Cx) -> Result<Value> {
    Ok(match e {
        Expr::Constant(v) => v.clone(),
        Expr::Column(i) => row.get(*i).cloned().ok_or_else(|| internal(format!("column {i} out of range")))?,
        Expr::Outer { depth, index } => {
            let r = cx.outer.len().checked_sub(*depth).and_then(|d| cx.outer.get(d));
            r.and_then(|r| r.get(*index)).cloned().ok_or_else(|| internal("outer column out of range".into()))?
        }
        Expr::Param(i) => cx
            .params
            .get(*i)
            .cloned()
            .ok_or_else(|| Error::new(SqlState::UndefinedParameter, format!("there is no parameter ${}", i + 1)))?,
        Expr::Binary(op, a, b) => {
            let a = eval(a, row, cx)?;
            let b = eval(b, row, cx)?;
            ops::binary(*op, &a, &b)?
        }
        Expr::Unary(op, a) => ops::unary(*op, &eval(a, row, cx)?)?,
        Expr::And(a, b) => {
            let a = eval(a, row, cx)?.as_bool()?;
            if a == Some(false) {
                return Ok(Value::Bool(false));
            }
            let b = eval(b, row, cx)?.as_bool()?;
            match (a, b) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        Expr::Or(a, b) => {
            let a = eval(a, row, cx)?.as_bool()?;
            if a == Some(true) {
                return Ok(Value::Bool(true));
            }
            let b = eval(b, row, cx)?.as_bool()?;
            match (a, b) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        Expr::Not(a) => match eval(a, row, cx)?.as_bool()? {
            Some(b) => Value::Bool(!b),
            None => Value::Null,
        },
        Expr::IsNull(a) => Value::Bool(eval(a, row, cx)?.is_null()),
        Expr::IsBool(a, want) => Value::Bool(eval(a, row, cx)?.as_bool()? == Some(*want)),
        Expr::IsDistinctFrom(a, b) => {
            let a = eval(a, row, cx)?;
            let b = eval(b, row, cx)?;
            Value::Bool(match (a.is_null(), b.is_null()) {
                (true, true) => false,
                (true, false) | (false, true) => true,
                (false, false) => ops::compare(&a, &b)? != Some(Ordering::Equal),
            })
        }
        Expr::Like { expr, pattern, case_insensitive } => {
            let x = eval(expr, row, cx)?;
            let p = eval(pattern, row, cx)?;
            ops::like(&x, &p, *case_insensitive)?
        }
        Expr::Case { operand, whens, otherwise } => {
            let subject = match operand {
                Some(o) => Some(eval(o, row, cx)?),
                None => None,
            };
            for (when, then) in whens {
                let w = eval(when, row, cx)?;
                let hit = match &subject {
                    Some(s) => ops::compare(s, &w)? == Some(Ordering::Equal),
                    None => w.as_bool()? == Some(true),
                };
                if hit {
                    return eval(then, row, cx);
                }
            }
            eval(otherwise, row, cx)?
        }
        Expr::Cast(a, t) => ops::cast(&eval(a, row, cx)?, *t)?,
        Expr::Function(name, args) => {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(eval(a, row, cx)?);
            }
            match name.as_str() {
                "current_setting" | "set_config" => setting_function(name, values, cx)?,
                "pg_sleep" | "pg_sleep_for" => sleep(&values[0], cx)?,
                "pg_backend_pid" => Value::Int4(cx.backend_pid),
                "pg_cancel_backend" | "pg_terminate_backend" => signal_backend(name, &values, cx)?,
                "nextval" | "setval" if cx.read_only_block => {
                    return sql_err!(ReadOnlySqlTransaction, "cannot execute {name}() in a read-only transaction")
                }
                name if crate::sequence::is_function(name) => {
                    let own = cx.drains.sequences.clone();
                    let lock_timeout = cx
                        .settings
                        .get("lock_timeout")
                        .and_then(|v| crate::timestamp::parse_setting_duration(v).ok().flatten());
                    let (engine, session, cancel) = (cx.engine.clone(), cx.sequences.clone(), cx.cancel_flag());
                    let mut caller =
                        crate::sequence::Caller { txn: cx.txn()?, engine, session, own: &own, lock_timeout, cancel };
                    crate::sequence::call(name, &values, &mut caller)?
                }
                name if crate::advisory::is_function(name) => match cx.advisory.clone() {
                    Some(locks) => {
                        let lock_timeout = cx
                            .settings
                            .get("lock_timeout")
                            .and_then(|v| crate::timestamp::parse_setting_duration(v).ok().flatten());
                        let wait = crate::advisory::Wait { cancel: cx.cancel.as_deref(), lock_timeout };
                        locks.call(name, &values, wait)?
                    }
                    None => return sql_err!(FeatureNotSupported, "advisory locks are not available here"),
                },
                _ => functions::call(name, &values)?,
            }
        }
        Expr::Coalesce(args) => {
            for a in args {
                let v = eval(a, row, cx)?;
                if !v.is_null() {
                    return Ok(v);
                }
            }
            Value::Null
        }
        Expr::NullIf(a, b) => {
            let a = eval(a, row, cx)?;
            let b = eval(b, row, cx)?;
            if ops::compare(&a, &b)? == Some(Ordering::Equal) {
                Value::Null
            } else {
                a
            }
        }
        Expr::InList(x, list) => {
            let x = eval(x, row, cx)?;
            let mut items = Vec::with_capacity(list.len());
            for item in list {
                items.push(eval(item, row, cx)?);
            }
            in_values(&x, items.iter())?
        }
        Expr::InSubquery(x, node) => {
            let x = eval(x, row, cx)?;
            let rows = subquery_rows(node, row, cx, usize::MAX)?;
            match in_set(node, cx) {
                Some(set) => set.contains(&x)?,
                None => in_values(&x, rows.iter().map(|r| &r[0]))?,
            }
        }
        Expr::Exists(node) => Value::Bool(!subquery_rows(node, row, cx, 1)?.is_empty()),
        Expr::ArraySubquery(node) => {
            let rows = subquery_rows(node, row, cx, usize::MAX)?;
            functions::call("array", &rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>())?
        }
        Expr::Quantified { op, all, left, array } => {
            let x = eval(left, row, cx)?;
            crate::ops::array::quantified(*op, *all, &x, &eval(array, row, cx)?)?
        }
        Expr::Subquery(node) => {
            let rows = subquery_rows(node, row, cx, 2)?;
            match rows.len() {
                0 => Value::Null,
                1 => rows[0][0].clone(),
                _ => {
                    return sql_err!(
                        CardinalityViolation,
                        "more than one row returned by a subquery used as an expression"
                    )
                }
            }
        }
        Expr::Now => Value::TimestampTz(cx.now_us),
    })
}

/// `x IN (items)` with SQL's NULL rules.
fn in_values<'v>(x: &Value, items: impl Iterator<Item = &'v Value>) -> Result<Value> {
    let mut items = items.peekable();
    // Nothing to compare with: false, even for NULL (so `NULL NOT IN
    // (empty subquery)` is true).
    if items.peek().is_none() {
        return Ok(Value::Bool(false));
    }
    if x.is_null() {
        return Ok(Value::Null);
    }
    let mut saw_null = false;
    for item in items {
        match ops::compare(x, item)? {
            Some(Ordering::Equal) => return Ok(Value::Bool(true)),
            None => saw_null = true,
            _ => {}
        }
    }
    Ok(if saw_null { Value::Null } else { Value::Bool(false) })
}

/// The values of an uncorrelated IN subquery whose rows are known,
/// sorted once per statement: `x IN (subquery)` over n rows then costs
/// n log m comparisons rather than n m. None for a correlated one (its
/// rows change with each outer row) or values that do not sort.
fn in_set(node: &Node, cx: &Cx) -> Option<Rc<ValueSet>> {
    match cx.subqueries.get(&(node as *const Node as usize)) {
        Some(Subquery::Rows(rows, set)) => set.get_or_init(|| ValueSet::new(rows).map(Rc::new)).clone(),
        _ => None,
    }
}

/// A subquery's non-NULL values in order, and whether it returned a NULL.
struct ValueSet {
    sorted: Vec<Value>,
    has_null: bool,
}

impl ValueSet {
    fn new(rows: &[Row]) -> Option<ValueSet> {
        let has_null = rows.iter().any(|r| r[0].is_null());
        let mut sorted: Vec<Value> = rows.iter().map(|r| r[0].clone()).filter(|v| !v.is_null()).collect();
        // A total order (no comparison fails), which `=` agrees with
        // wherever it is defined; if it is not defined between some
        // neighbours, the values are not one kind: no set.
        sorted.sort_by(ops::sort_cmp);
        let comparable = sorted.windows(2).all(|w| matches!(ops::compare(&w[0], &w[1]), Ok(Some(_))));
        comparable.then_some(ValueSet { sorted, has_null })
    }

    /// `x IN (the values)`, as [`in_values`] answers it.
    fn contains(&self, x: &Value) -> Result<Value> {
        if self.sorted.is_empty() && !self.has_null {
            return Ok(Value::Bool(false));
        }
        if x.is_null() {
            return Ok(Value::Null);
        }
        let mut failed = None;
        let found = self
            .sorted
            .binary_search_by(|item| match ops::compare(item, x) {
                Ok(Some(o)) => o,
                Ok(None) => Ordering::Less,
                Err(e) => {
                    failed.get_or_insert(e);
                    Ordering::Less
                }
            })
            .is_ok();
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(if found {
            Value::Bool(true)
        } else if self.has_null {
            Value::Null
        } else {
            Value::Bool(false)
        })
    }
}

/// Whether `node` reads a row of a query outside it.
pub(crate) fn is_correlated(node: &Node) -> bool {
    let mut found = false;
    visit_node_exprs(node, 0, &mut |e, level| {
        if let Expr::Outer { depth, .. } = e {
            if *depth > level {
                found = true;
            }
        }
    });
    found
}

/// Calls `f(expr, level)` on every expression in `node`, descending into
/// subqueries (level + 1).
fn visit_node_exprs(node: &Node, level: usize, f: &mut dyn FnMut(&Expr, usize)) {
    let on_expr = |e: &Expr, f: &mut dyn FnMut(&Expr, usize)| {
        e.walk(&mut |x| {
            f(x, level);
            match x {
                Expr::Subquery(n) | Expr::Exists(n) | Expr::InSubquery(_, n) | Expr::ArraySubquery(n) => {
                    visit_node_exprs(n, level + 1, f)
                }
                _ => {}
            }
        })
    };
    match node {
        Node::Scan { spans, .. } => {
            for e in spans.iter().flat_map(ScanSpan::exprs) {
                on_expr(e, f);
            }
        }
        Node::Values { rows, .. } => rows.iter().flatten().for_each(|e| on_expr(e, f)),
        Node::Filter { input, predicate } => {
            on_expr(predicate, f);
            visit_node_exprs(input, level, f);
        }
        Node::Project { input, exprs } => {
            exprs.iter().for_each(|e| on_expr(e, f));
            visit_node_exprs(input, level, f);
        }
        Node::Aggregate { input, group_by, aggregates } => {
            group_by.iter().for_each(|e| on_expr(e, f));
            aggregates
                .iter()
                .flat_map(|a| a.arg.iter().chain(&a.filter).chain(a.order_by.iter().map(|k| &k.expr)))
                .for_each(|e| on_expr(e, f));
            visit_node_exprs(input, level, f);
        }
        Node::Sort { input, keys } => {
            keys.iter().for_each(|k| on_expr(&k.expr, f));
            visit_node_exprs(input, level, f);
        }
        Node::Limit { input, limit, offset } => {
            limit.iter().chain(offset.iter()).for_each(|e| on_expr(e, f));
            visit_node_exprs(input, level, f);
        }
        Node::Distinct { input, .. } => visit_node_exprs(input, level, f),
        Node::Join { left, right, left_keys, right_keys, on, .. } => {
            left_keys.iter().chain(right_keys.iter()).chain(on.iter()).for_each(|e| on_expr(e, f));
            visit_node_exprs(left, level, f);
            visit_node_exprs(right, level, f);
        }
        Node::Lateral { left, right, on, .. } => {
            on.iter().for_each(|e| on_expr(e, f));
            visit_node_exprs(left, level, f);
            // The right side reads the left row as its outer row.
            visit_node_exprs(right, level + 1, f);
        }
        Node::SetOp { left, right, .. } => {
            visit_node_exprs(left, level, f);
            visit_node_exprs(right, level, f);
        }
        Node::Series { start, stop, step, .. } => {
            on_expr(start, f);
            on_expr(stop, f);
            step.iter().for_each(|e| on_expr(e, f));
        }
        Node::Unnest { array } => on_expr(array, f),
        Node::Window { input, calls } => {
            calls.iter().flat_map(WindowCall::exprs).for_each(|e| on_expr(e, f));
            visit_node_exprs(input, level, f);
        }
        Node::Recursive { base, step, .. } => {
            visit_node_exprs(base, level, f);
            visit_node_exprs(step, level, f);
        }
        Node::WorkTable { .. } => {}
        Node::LockRows { input, .. } => visit_node_exprs(input, level, f),
    }
}

/// The rows of a subquery for the current `row` (at most `limit` when it
/// is correlated; all of them, once, when it is not).
fn subquery_rows(node: &Node, row: &[Value], cx: &mut Cx, limit: usize) -> Result<Rc<Vec<Row>>> {
    let key = node as *const Node as usize;
    let correlated = match cx.subqueries.get(&key) {
        Some(Subquery::Rows(rows, _)) => return Ok(rows.clone()),
        Some(Subquery::Correlated) => true,
        None => is_correlated(node),
    };
    if cx.outer.len() >= limits::NESTING_DEPTH_MAX {
        return sql_err!(ProgramLimitExceeded, "subqueries nest too deeply");
    }
    let held_before = cx.held_bytes;
    cx.outer.push(row.to_vec());
    // A subquery under SKIP LOCKED reads as any other: with locks.
    let unlocked = cx.unlocked_table.take();
    let rows = collect(node, cx, if correlated { limit } else { usize::MAX });
    cx.unlocked_table = unlocked;
    cx.outer.pop();
    if correlated {
        // Its rows live only while this outer row is evaluated (the
        // caller drops them before the next one): they count against the
        // statement's memory while collected, not for the rest of it.
        cx.held_bytes = held_before;
    }
    let rows = Rc::new(rows?);
    let known = if correlated { Subquery::Correlated } else { Subquery::Rows(rows.clone(), OnceCell::new()) };
    cx.subqueries.insert(key, known);
    Ok(rows)
}

/// `current_setting(name [, missing_ok])`: the session's setting (as
/// SHOW gives it), NULL for one never set if `missing_ok`, else 42704;
/// `set_config(name, value, is_local)`: sets it as SET (or SET LOCAL)
/// does, once the statement succeeds, and gives the value back.
fn setting_function(name: &str, values: Vec<Value>, cx: &mut Cx) -> Result<Value> {
    let text = |v: &Value| match v {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    };
    let Some(setting) = values.first().and_then(text) else {
        return Ok(Value::Null);
    };
    let setting = setting.to_lowercase();
    if name == "set_config" {
        let value = values.get(1).and_then(text).unwrap_or_default();
        let local = values.get(2) == Some(&Value::Bool(true));
        let value = crate::timestamp::setting_value(&setting, &value)?;
        cx.settings_changed.push((setting, value.clone(), local));
        return Ok(Value::Text(value));
    }
    let changed = cx.settings_changed.iter().rev().find(|(n, _, _)| *n == setting).map(|(_, v, _)| v.clone());
    let value = changed
        .or_else(|| cx.settings.get(&setting).cloned())
        .or_else(|| crate::timestamp::default_setting(&setting).map(str::to_string));
    match value {
        Some(v) => Ok(Value::Text(v)),
        None if values.get(1) == Some(&Value::Bool(true)) => Ok(Value::Null),
        None => sql_err!(UndefinedObject, "unrecognized configuration parameter \"{setting}\""),
    }
}

/// `pg_cancel_backend(pid)`, `pg_terminate_backend(pid [, timeout])`:
/// stops the statement, or ends the session, of a session of this gateway
/// ([`crate::backends`]). True if one had that pid; false otherwise
/// (PostgreSQL also warns then). Every user may (all are superusers, as
/// `is_superuser` says). The timeout is not waited for: a terminated
/// session ends as soon as its statement stops.
fn signal_backend(name: &str, values: &[Value], cx: &Cx) -> Result<Value> {
    if values.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let Some(pid) = values.first().and_then(Value::as_i64) else { return Ok(Value::Null) };
    if let Some(Value::Int8(t)) = values.get(1) {
        if *t < 0 {
            return sql_err!(InvalidParameterValue, "\"timeout\" must not be negative");
        }
    }
    let Ok(pid) = i32::try_from(pid) else { return Ok(Value::Bool(false)) };
    let Some(own) = &cx.backend else { return Ok(Value::Bool(false)) };
    let targets = own.find(pid);
    for b in &targets {
        match name {
            "pg_cancel_backend" => b.cancel(),
            _ => b.terminate(),
        }
    }
    Ok(Value::Bool(!targets.is_empty()))
}

/// `pg_sleep(seconds)`, `pg_sleep_for(interval)`: waits on the engine's
/// clock in steps of at most [`limits::SLEEP_STEP_NS`], stopping at a
/// cancel (or a statement timeout) within one. Void, as an empty text.
fn sleep(duration: &Value, cx: &mut Cx) -> Result<Value> {
    let nanos = match duration {
        Value::Null => 0.0,
        Value::Interval(i) => ops::interval::part("epoch", i)? * 1e9,
        other => other.as_f64().unwrap_or(0.0) * 1e9,
    };
    let Some(engine) = cx.engine.clone() else {
        return sql_err!(FeatureNotSupported, "pg_sleep is not available here");
    };
    // NaN and negative durations sleep not at all, as in PostgreSQL.
    let nanos = if nanos > 0.0 { nanos.min(u64::MAX as f64 / 2.0) as u64 } else { 0 };
    let end = engine.monotonic_ns().saturating_add(nanos);
    loop {
        cx.check_cancel()?;
        let now = engine.monotonic_ns();
        if now >= end {
            return Ok(Value::Text(String::new()));
        }
        engine.wait((end - now).min(limits::SLEEP_STEP_NS));
    }
}

/// What a statement has learned about one of its subqueries (by plan
/// node address).
enum Subquery {
    /// It reads the outer row: run it for each.
    Correlated,
    /// It does not: its rows, computed once, and their first column
    /// sorted if an IN asks (`in_set`; None inside: they do not sort).
    Rows(Rc<Vec<Row>>, OnceCell<Option<Rc<ValueSet>>>),
}

fn internal(message: String) -> Error {
    Error::new(SqlState::InternalError, message)
}

/// Whether a WHERE-style predicate holds (true, not false or NULL).
fn holds(e: &Expr, row: &[Value], cx: &mut Cx) -> Result<bool> {
    Ok(eval(e, row, cx)?.as_bool()? == Some(true))
}

// ---- scans -----------------------------------------------------------------------

struct Scan<'p> {
    table: &'p TableDesc,
    index: &'p IndexDesc,
    spans: &'p [ScanSpan],
    /// How many rows a range's first page asks for
    /// ([`Operator::expect_rows`], else [`limits::SCAN_FIRST_PAGE_ROWS`]).
    first_page_rows: usize,
    /// Read from the last key down: the ranges last first, each from its
    /// end.
    reverse: bool,
    /// Key ranges still to read.
    ranges: Option<VecDeque<KeyRange>>,
    /// The part of the range being read still to read.
    current: Option<(Vec<u8>, Vec<u8>)>,
    page: VecDeque<Pair>,
    /// How many rows the next page of the range asks for.
    page_rows: usize,
}

impl<'p> Scan<'p> {
    fn new(table: &'p TableDesc, index: &'p IndexDesc, spans: &'p [ScanSpan], reverse: bool) -> Scan<'p> {
        let first_page_rows = limits::SCAN_FIRST_PAGE_ROWS;
        Scan {
            table,
            index,
            spans,
            first_page_rows,
            reverse,
            ranges: None,
            current: None,
            page: VecDeque::new(),
            page_rows: 0,
        }
    }
}

/// Whether a bound value can be encoded against a column of type `ty`
/// (same family: integers, floats, strings, ...).
fn same_family(v: &Value, ty: DataType) -> bool {
    match v.data_type() {
        None => false,
        Some(t) => (t.is_integer() && ty.is_integer()) || (t.is_float() && ty.is_float()) || t.base() == ty.base(),
    }
}

/// A key a range starts or ends at, and whether it is included.
type KeyBound = (Vec<u8>, bool);

/// The key ranges of `spans` over `index`, `[start, end)`, in key order.
pub fn span_ranges(
    table: &TableDesc,
    index: &IndexDesc,
    spans: &[ScanSpan],
    cx: &mut Cx,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(key_ranges(table, index, spans, cx)?.into_iter().map(|r| (r.start, r.end)).collect())
}

/// A key range a scan reads, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyRange {
    start: Vec<u8>,
    end: Vec<u8>,
    /// The range is one row's key, `start` (a primary-key lookup with
    /// every key column given): read with a get, which locks that key
    /// rather than a range, and which a transaction answers from its own
    /// writes without a round trip.
    row: bool,
}

/// [`span_ranges`], saying which ranges are one row's key.
fn key_ranges(table: &TableDesc, index: &IndexDesc, spans: &[ScanSpan], cx: &mut Cx) -> Result<Vec<KeyRange>> {
    let prefix = encoding::index_prefix(table.id, index.id);
    let mut out = Vec::new();
    'spans: for span in spans {
        let mut start = prefix.clone();
        for (i, e) in span.equal.iter().enumerate() {
            let (id, dir) = index.columns[i];
            let ty = table.column_by_id(id).map(|(_, c)| c.data_type).ok_or_else(|| internal("index column".into()))?;
            let v = eval(e, &[], cx)?;
            if v.is_null() {
                continue 'spans; // = NULL matches nothing
            }
            if !same_family(&v, ty) {
                // Leave the rest to the filter.
                let end = encoding::prefix_end(&start);
                out.push(KeyRange { start, end, row: false });
                continue 'spans;
            }
            encoding::encode_key_value(&mut start, &v, dir);
        }
        if let Some(each) = &span.each {
            out.extend(each_ranges(table, index, span.equal.len(), each, start, cx)?);
            continue 'spans;
        }
        // Every key column equal: one row's key at most (over the limit:
        // no row, which the range read finds without a refused get).
        let row = index.id == PRIMARY_INDEX_ID
            && span.equal.len() == index.columns.len()
            && start.len() <= limits::KEY_BYTES_MAX;
        let base = start;
        let mut lo = base.clone();
        let mut hi = encoding::prefix_end(&base);
        if let Some(&(id, dir)) = index.columns.get(span.equal.len()) {
            let ty = table.column_by_id(id).map(|(_, c)| c.data_type).ok_or_else(|| internal("index column".into()))?;
            // Some(None): no usable bound; None: matches nothing.
            let bound = |b: &Option<(Expr, bool)>, cx: &mut Cx| -> Result<Option<Option<KeyBound>>> {
                let Some((e, inclusive)) = b else { return Ok(Some(None)) };
                let v = eval(e, &[], cx)?;
                if v.is_null() {
                    return Ok(None);
                }
                if !same_family(&v, ty) {
                    return Ok(Some(None));
                }
                let mut k = base.clone();
                encoding::encode_key_value(&mut k, &v, dir);
                Ok(Some(Some((k, *inclusive))))
            };
            let (Some(lower), Some(upper)) = (bound(&span.lower, cx)?, bound(&span.upper, cx)?) else {
                continue 'spans;
            };
            // Descending columns store larger values first.
            let (from, to) = match dir {
                Direction::Asc => (lower, upper),
                Direction::Desc => (upper, lower),
            };
            if let Some((k, inclusive)) = from {
                lo = if inclusive { k } else { encoding::prefix_end(&k) };
            }
            if let Some((k, inclusive)) = to {
                hi = if inclusive { encoding::prefix_end(&k) } else { k };
            }
        }
        if hi.is_empty() || lo < hi {
            out.push(KeyRange { start: lo, end: hi, row });
        }
    }
    Ok(disjoint(out))
}

/// The ranges of a span whose key column `col` equals each element of
/// the array `each` ([`ScanSpan`]), after the key prefix `start`: one per
/// element (a row's key when `col` is the primary key's last column),
/// none for NULL; the whole prefix, left to the filter, for more elements
/// than [`limits::SPANS_PER_SCAN_MAX`] or one of another type.
fn each_ranges(
    table: &TableDesc,
    index: &IndexDesc,
    col: usize,
    each: &Expr,
    start: Vec<u8>,
    cx: &mut Cx,
) -> Result<Vec<KeyRange>> {
    let (id, dir) = *index.columns.get(col).ok_or_else(|| internal("index column".into()))?;
    let ty = table.column_by_id(id).map(|(_, c)| c.data_type).ok_or_else(|| internal("index column".into()))?;
    let elements = match eval(each, &[], cx)? {
        Value::Null => Vec::new(),
        Value::Array(_, elements) => elements,
        other => return Err(internal(format!("a span's elements are not an array: {other:?}"))),
    };
    let values: Vec<&Value> = elements.iter().filter(|v| !v.is_null()).collect();
    if values.len() > limits::SPANS_PER_SCAN_MAX || values.iter().any(|v| !same_family(v, ty)) {
        let end = encoding::prefix_end(&start);
        return Ok(vec![KeyRange { start, end, row: false }]);
    }
    let rows_are_keys = index.id == PRIMARY_INDEX_ID && col + 1 == index.columns.len();
    Ok(values
        .into_iter()
        .map(|v| {
            let mut key = start.clone();
            encoding::encode_key_value(&mut key, v, dir);
            let end = encoding::prefix_end(&key);
            let row = rows_are_keys && key.len() <= limits::KEY_BYTES_MAX;
            KeyRange { start: key, end, row }
        })
        .collect())
}

/// `ranges` in key order, with those that overlap merged, so a scan
/// reads every key once: `id IN (5, 5)` names one row twice, and a value
/// of another type (`id IN (1, 1.5)`, left to the filter) spans the
/// whole index, which covers the other ranges.
fn disjoint(mut ranges: Vec<KeyRange>) -> Vec<KeyRange> {
    ranges.sort();
    let mut out: Vec<KeyRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if *last == r => {}
            // An empty end is the end of the key space.
            Some(last) if last.end.is_empty() || r.start < last.end => {
                if !last.end.is_empty() && (r.end.is_empty() || r.end > last.end) {
                    last.end = r.end;
                }
                last.row = false;
            }
            _ => out.push(r),
        }
    }
    out
}

impl Operator for Scan<'_> {
    fn expect_rows(&mut self, rows: u64) {
        let rows = usize::try_from(rows).unwrap_or(usize::MAX);
        self.first_page_rows = rows.clamp(1, limits::SCAN_PAGE_ROWS);
    }

    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.ranges.is_none() {
            self.ranges = Some(key_ranges(self.table, self.index, self.spans, cx)?.into());
        }
        loop {
            if let Some((key, value)) = self.page.pop_front() {
                if self.index.id == PRIMARY_INDEX_ID {
                    return layout::decode_row(self.table, &key, &value).map(Some);
                }
                let target = layout::index_entry_target(self.table, self.index, &key, &value)?;
                let row_key = layout::row_key_from_suffix(self.table, &target);
                let unlocked = cx.unlocked_table == Some(self.table.id);
                let Some(row) = cx.get_row(self.table.id, &row_key)? else {
                    if unlocked {
                        // Read without locks: deleted since its entry was.
                        continue;
                    }
                    return sql_err!(
                        InternalError,
                        "index {} entry {} points at a missing row",
                        self.index.name,
                        encoding::pretty_key(&key)
                    );
                };
                let row = layout::decode_row(self.table, &row_key, &row)?;
                if unlocked && layout::index_entry(self.table, self.index, &row)?.0 != key {
                    // Read without locks: changed since its entry was
                    // read, so the entry (and the span it matched) is not
                    // the row's now.
                    continue;
                }
                return Ok(Some(row));
            }
            if let Some((start, end)) = self.current.take() {
                let range = (start.as_slice(), end.as_slice(), self.reverse);
                let page = cx.scan_of(Some(self.table.id), range, self.page_rows)?;
                if page.len() == self.page_rows {
                    self.page_rows = (self.page_rows * 2).min(limits::SCAN_PAGE_ROWS);
                    let mut last = page.last().expect("full page").0.clone();
                    // The rest of the range, unless the page ended at its
                    // edge (an empty range is no scan: engines refuse it).
                    self.current = if self.reverse {
                        (last > start).then_some((start, last))
                    } else {
                        last.push(0);
                        (end.is_empty() || last < end).then_some((last, end))
                    };
                }
                self.page = page.into();
                continue;
            }
            let ranges = self.ranges.as_mut();
            match ranges.and_then(|r| if self.reverse { r.pop_back() } else { r.pop_front() }) {
                Some(KeyRange { start, row: true, .. }) => {
                    if let Some(value) = cx.get_row(self.table.id, &start)? {
                        self.page.push_back((start, value));
                    }
                }
                Some(KeyRange { start, end, row: false }) => {
                    self.current = Some((start, end));
                    self.page_rows = self.first_page_rows;
                }
                None => return Ok(None),
            }
        }
    }
}

// ---- simple operators ---------------------------------------------------------------

struct Values<'p> {
    rows: &'p [Vec<Expr>],
    next: usize,
}

impl Operator for Values<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        let Some(exprs) = self.rows.get(self.next) else { return Ok(None) };
        self.next += 1;
        let mut row = Vec::with_capacity(exprs.len());
        for e in exprs {
            row.push(eval(e, &[], cx)?);
        }
        Ok(Some(row))
    }
}

struct Filter<'p> {
    input: Box<dyn Operator + 'p>,
    predicate: &'p Expr,
}

impl Operator for Filter<'_> {
    // At least as many rows are read as pass; for a LIMIT of fewer than a
    // first page's, a first page, in case the filter drops some, rather
    // than another round trip.
    fn expect_rows(&mut self, rows: u64) {
        self.input.expect_rows(rows.max(limits::SCAN_FIRST_PAGE_ROWS as u64))
    }

    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            cx.tick()?;
            if holds(self.predicate, &row, cx)? {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

struct Project<'p> {
    input: Box<dyn Operator + 'p>,
    exprs: &'p [Expr],
}

impl Operator for Project<'_> {
    fn expect_rows(&mut self, rows: u64) {
        self.input.expect_rows(rows)
    }

    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        let Some(row) = self.input.next(cx)? else { return Ok(None) };
        let mut out = Vec::with_capacity(self.exprs.len());
        for e in self.exprs {
            out.push(eval(e, &row, cx)?);
        }
        Ok(Some(out))
    }
}

struct Limit<'p> {
    input: Box<dyn Operator + 'p>,
    limit: &'p Option<Expr>,
    offset: &'p Option<Expr>,
    remaining: Option<Option<u64>>,
    skipped: bool,
}

fn count_value(e: &Option<Expr>, what: &str, cx: &mut Cx) -> Result<Option<u64>> {
    let Some(e) = e else { return Ok(None) };
    match eval(e, &[], cx)? {
        Value::Null => Ok(None),
        v => match v.as_i64() {
            Some(n) if n >= 0 => Ok(Some(n as u64)),
            Some(_) => {
                let state = match what {
                    "OFFSET" => SqlState::InvalidRowCountInResultOffsetClause,
                    _ => SqlState::InvalidRowCountInLimitClause,
                };
                Err(Error::new(state, format!("{what} must not be negative")))
            }
            None => sql_err!(DatatypeMismatch, "argument of {what} must be type bigint"),
        },
    }
}

impl Operator for Limit<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.remaining.is_none() {
            self.remaining = Some(count_value(self.limit, "LIMIT", cx)?);
        }
        if !self.skipped {
            self.skipped = true;
            let offset = count_value(self.offset, "OFFSET", cx)?.unwrap_or(0);
            if self.remaining == Some(Some(0)) {
                // LIMIT 0 reads nothing, its OFFSET's rows neither.
                return Ok(None);
            }
            if let Some(Some(limit)) = self.remaining {
                self.input.expect_rows(limit.saturating_add(offset));
            }
            for _ in 0..offset {
                if self.input.next(cx)?.is_none() {
                    return Ok(None);
                }
            }
        }
        match self.remaining {
            Some(Some(0)) => Ok(None),
            Some(Some(n)) => {
                self.remaining = Some(Some(n - 1));
                self.input.next(cx)
            }
            _ => self.input.next(cx),
        }
    }
}

/// A row as bytes that are equal exactly when the rows are SQL-equal
/// (NULLs equal each other), for hashing and deduplication.
pub(crate) fn row_key(values: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        encoding::encode_key_value(&mut out, &normalize(v), Direction::Asc);
    }
    out
}

/// Numbers of every width as one form, so 1 and 1.0 group together.
fn normalize(v: &Value) -> Value {
    const EXACT: i64 = 1 << 53;
    match v {
        Value::Float4(f) => Value::Float8(f64::from(*f)),
        // A numeric a float holds exactly is that float (so `1.0` meets
        // the int 1 and the float 1, `0.5` the float 0.5); others stay
        // exact (two numerics one float apart must not meet).
        Value::Numeric(d) => {
            let f = ops::numeric::to_f64(*d);
            match ops::numeric::Decimal::from_f64_retain(f) {
                Some(back) if back == *d && f.abs() <= EXACT as f64 => Value::Float8(f),
                // A whole number past 2^53 meets the bigint it equals.
                _ => match ops::numeric::whole_i64(*d) {
                    Some(i) => Value::Int8(i),
                    None => v.clone(),
                },
            }
        }
        v => match v.as_i64() {
            Some(i) if (-EXACT..=EXACT).contains(&i) => Value::Float8(i as f64),
            Some(i) => Value::Int8(i),
            None => v.clone(),
        },
    }
}

struct Distinct<'p> {
    input: Box<dyn Operator + 'p>,
    /// `DISTINCT ON`'s columns (None: the whole row).
    on: Option<&'p [usize]>,
    seen: BTreeSet<Vec<u8>>,
}

impl Operator for Distinct<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        while let Some(row) = self.input.next(cx)? {
            cx.tick()?;
            let key = match self.on {
                None => row_key(&row),
                Some(on) => row_key(&on.iter().map(|&i| row[i].clone()).collect::<Vec<_>>()),
            };
            let bytes = key.len();
            if self.seen.insert(key) {
                cx.hold(bytes, "DISTINCT")?;
                if self.seen.len() > limits::MEMORY_ROWS_MAX {
                    return too_many_rows("DISTINCT");
                }
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

// ---- sort -----------------------------------------------------------------------------

struct Sort<'p> {
    input: Box<dyn Operator + 'p>,
    keys: &'p [SortKey],
    output: Option<std::vec::IntoIter<Row>>,
}

/// Compares by `keys` (values precomputed per row).
fn compare_keys(keys: &[SortKey], a: &[Value], b: &[Value]) -> Ordering {
    for (k, (x, y)) in keys.iter().zip(a.iter().zip(b)) {
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if k.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if k.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, false) => {
                let o = ops::sort_cmp(x, y);
                if k.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

impl Operator for Sort<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.output.is_none() {
            let mut rows: Vec<(Vec<Value>, Row)> = Vec::new();
            while let Some(row) = self.input.next(cx)? {
                cx.tick()?;
                if rows.len() >= limits::MEMORY_ROWS_MAX {
                    return too_many_rows("ORDER BY");
                }
                cx.hold(row_bytes(&row), "ORDER BY")?;
                let mut key = Vec::with_capacity(self.keys.len());
                for k in self.keys {
                    key.push(eval(&k.expr, &row, cx)?);
                }
                rows.push((key, row));
            }
            // Stable: rows equal by the keys keep their input order.
            rows.sort_by(|a, b| compare_keys(self.keys, &a.0, &b.0));
            self.output = Some(rows.into_iter().map(|(_, r)| r).collect::<Vec<_>>().into_iter());
        }
        Ok(self.output.as_mut().and_then(|o| o.next()))
    }
}

// ---- aggregation ------------------------------------------------------------------------

/// One aggregate's running state.
#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    SumInt(Option<i128>),
    SumFloat(Option<f64>),
    /// sum and avg whose result is a numeric (of integers or numerics):
    /// the exact sum so far, and how many.
    SumNumeric(Option<ops::numeric::Decimal>, i64),
    /// sum and avg of intervals: the sum so far, and how many.
    SumInterval(Option<Interval>, i64),
    Avg {
        sum: f64,
        count: i64,
    },
    MinMax(Option<Value>),
    Bool(Option<bool>),
    /// array_agg's values (None: no row yet).
    Items(Option<Vec<Value>>),
    /// string_agg's text so far.
    Text(Option<String>),
    /// The spread aggregates' count, sum and sum of squared deviations,
    /// updated as PostgreSQL's `float8_accum` does (Youngs and Cramer),
    /// so the answers are PostgreSQL's to the last digit.
    Moments {
        n: f64,
        sum: f64,
        squares: f64,
    },
    /// An aggregate with ORDER BY: its values with their sort keys, fed
    /// to the aggregate in order at the end.
    Ordered {
        rows: Vec<(Vec<Value>, Value)>,
        inner: Box<Acc>,
    },
}

impl Acc {
    fn new(call: &AggCall) -> Acc {
        match call.order_by.is_empty() {
            true => Acc::plain(call),
            false => Acc::Ordered { rows: Vec::new(), inner: Box::new(Acc::plain(call)) },
        }
    }

    fn plain(call: &AggCall) -> Acc {
        match call.func {
            AggFunc::CountStar | AggFunc::Count => Acc::Count(0),
            AggFunc::Sum if call.data_type == DataType::Int8 => Acc::SumInt(None),
            AggFunc::Sum | AggFunc::Avg if call.data_type == DataType::Interval => Acc::SumInterval(None, 0),
            AggFunc::Sum | AggFunc::Avg if call.data_type.is_decimal() => Acc::SumNumeric(None, 0),
            AggFunc::Sum => Acc::SumFloat(None),
            AggFunc::Avg => Acc::Avg { sum: 0.0, count: 0 },
            AggFunc::Min | AggFunc::Max => Acc::MinMax(None),
            AggFunc::BoolAnd | AggFunc::BoolOr => Acc::Bool(None),
            AggFunc::ArrayAgg
            | AggFunc::JsonbAgg
            | AggFunc::JsonbObjectAgg
            | AggFunc::PercentileCont
            | AggFunc::PercentileDisc
            | AggFunc::Mode => Acc::Items(None),
            AggFunc::StringAgg => Acc::Text(None),
            AggFunc::Spread(_) => Acc::Moments { n: 0.0, sum: 0.0, squares: 0.0 },
        }
    }

    fn add(&mut self, call: &AggCall, v: Value) -> Result<()> {
        if call.func == AggFunc::CountStar {
            if let Acc::Count(n) = self {
                *n += 1;
            }
            return Ok(());
        }
        if let Acc::Items(items) = self {
            // array_agg keeps NULLs; its array is bounded like any
            // operator's memory.
            let items = items.get_or_insert_with(Vec::new);
            if items.len() >= limits::MEMORY_ROWS_MAX {
                return sql_err!(
                    ProgramLimitExceeded,
                    "array_agg would hold more than {} values",
                    limits::MEMORY_ROWS_MAX
                );
            }
            items.push(v);
            return Ok(());
        }
        if v.is_null() {
            return Ok(());
        }
        match self {
            Acc::Count(n) => *n += 1,
            Acc::SumInt(s) => {
                let x = v.as_i64().ok_or_else(|| internal("sum of a non-integer".into()))?;
                *s = Some(s.unwrap_or(0) + i128::from(x));
            }
            Acc::SumFloat(s) => *s = Some(s.unwrap_or(0.0) + v.as_f64().unwrap_or(0.0)),
            Acc::SumNumeric(s, n) => {
                let x = match v {
                    Value::Numeric(d) => d,
                    v => ops::numeric::Decimal::from(v.as_i64().ok_or_else(|| internal("sum of a non-number".into()))?),
                };
                *s = Some(match s {
                    None => x,
                    Some(s) => ops::numeric::arithmetic(ops::numeric::Arithmetic::Add, *s, x)?,
                });
                *n += 1;
            }
            Acc::SumInterval(s, n) => {
                let Value::Interval(x) = v else { return Err(internal("sum of a non-interval".into())) };
                *s = Some(match s {
                    None => x,
                    Some(s) => ops::interval::add(s, &x, false)?,
                });
                *n += 1;
            }
            Acc::Avg { sum, count } => {
                *sum += v.as_f64().ok_or_else(|| internal("avg of a non-number".into()))?;
                *count += 1;
            }
            Acc::Moments { n, sum, squares } => {
                let x = v.as_f64().ok_or_else(|| internal("the spread of a non-number".into()))?;
                *n += 1.0;
                *sum += x;
                if *n > 1.0 {
                    let d = x * *n - *sum;
                    *squares += d * d / (*n * (*n - 1.0));
                }
            }
            Acc::MinMax(m) => {
                let replace = match m {
                    None => true,
                    Some(cur) => {
                        let o = ops::sort_cmp(&v, cur);
                        // A tie takes the later value, as PostgreSQL's
                        // `*_larger`/`*_smaller` do (it shows for values
                        // equal but written apart: '1 day', '24 hours').
                        if call.func == AggFunc::Min {
                            o != Ordering::Greater
                        } else {
                            o != Ordering::Less
                        }
                    }
                };
                if replace {
                    *m = Some(v);
                }
            }
            Acc::Items(_) => {}
            // Fed by the Aggregate operator with their sort keys, never here.
            Acc::Ordered { .. } => return Err(internal("an ordered aggregate's value without its keys".into())),
            Acc::Text(t) => {
                let s = ops::to_text(&v).unwrap_or_default();
                let sep = call.separator.as_deref().unwrap_or("");
                match t {
                    None => *t = Some(s),
                    Some(t) => {
                        if t.len() + sep.len() + s.len() > limits::VALUE_BYTES_MAX {
                            return sql_err!(
                                ProgramLimitExceeded,
                                "string_agg result is over {} bytes",
                                limits::VALUE_BYTES_MAX
                            );
                        }
                        t.push_str(sep);
                        t.push_str(&s);
                    }
                }
            }
            Acc::Bool(b) => {
                let x = v.as_bool()?.unwrap_or(false);
                *b = Some(match (*b, call.func) {
                    (None, _) => x,
                    (Some(p), AggFunc::BoolAnd) => p && x,
                    (Some(p), _) => p || x,
                });
            }
        }
        Ok(())
    }

    fn finish(&self, call: &AggCall) -> Result<Value> {
        Ok(match self {
            Acc::Count(n) => Value::Int8(*n),
            Acc::SumInt(None)
            | Acc::SumInterval(None, _)
            | Acc::SumFloat(None)
            | Acc::MinMax(None)
            | Acc::Bool(None)
            | Acc::Items(None)
            | Acc::Text(None) => Value::Null,
            Acc::Items(Some(items)) if call.func == AggFunc::JsonbAgg => Value::Jsonb(Box::new(ops::jsonb::checked(
                ops::jsonb::Json::Array(items.iter().map(ops::jsonb::from_value).collect()),
            )?)),
            Acc::Items(Some(sorted))
                if matches!(call.func, AggFunc::PercentileCont | AggFunc::PercentileDisc | AggFunc::Mode) =>
            {
                ordered_set(call, sorted.iter().filter(|v| !v.is_null()).collect())?
            }
            Acc::Items(Some(pairs)) if call.func == AggFunc::JsonbObjectAgg => {
                Value::Jsonb(Box::new(ops::jsonb::checked(ops::jsonb::object_of_pairs(pairs)?)?))
            }
            Acc::Items(Some(items)) => match call.data_type {
                DataType::Array(element) => Value::Array(element, items.clone()),
                _ => functions::call("array", items)?,
            },
            Acc::Text(Some(t)) => Value::Text(t.clone()),
            Acc::SumInt(Some(s)) => match i64::try_from(*s) {
                Ok(v) => Value::Int8(v),
                Err(_) => return sql_err!(NumericValueOutOfRange, "bigint out of range"),
            },
            Acc::SumFloat(Some(s)) => match call.data_type {
                DataType::Float4 => Value::Float4(*s as f32),
                _ => Value::Float8(*s),
            },
            Acc::SumNumeric(None, _) => Value::Null,
            Acc::SumNumeric(Some(s), _) if call.func == AggFunc::Sum => Value::Numeric(*s),
            Acc::SumNumeric(Some(s), n) => Value::Numeric(ops::numeric::arithmetic(
                ops::numeric::Arithmetic::Div,
                *s,
                ops::numeric::Decimal::from(*n),
            )?),
            Acc::SumInterval(Some(s), _) if call.func == AggFunc::Sum => Value::Interval(*s),
            Acc::SumInterval(Some(s), n) => Value::Interval(ops::interval::divide(s, *n as f64)?),
            Acc::Avg { count: 0, .. } => Value::Null,
            Acc::Avg { sum, count } => Value::Float8(sum / *count as f64),
            Acc::Ordered { rows, inner } => {
                let mut rows = rows.clone();
                rows.sort_by(|a, b| compare_keys(&call.order_by, &a.0, &b.0));
                let mut acc = (**inner).clone();
                for (_, v) in rows {
                    acc.add(call, v)?;
                }
                acc.finish(call)?
            }
            Acc::Moments { n, squares, .. } => {
                let AggFunc::Spread(spread) = call.func else {
                    return Err(internal("moments of another aggregate".into()));
                };
                let divisor = if spread.sample { *n - 1.0 } else { *n };
                match divisor > 0.0 {
                    false => Value::Null,
                    true if spread.root => Value::Float8((squares / divisor).sqrt()),
                    true => Value::Float8(squares / divisor),
                }
            }
            Acc::MinMax(Some(v)) => v.clone(),
            Acc::Bool(Some(b)) => Value::Bool(*b),
        })
    }
}

struct Group {
    values: Row,
    accs: Vec<Acc>,
    /// DISTINCT aggregates' seen arguments.
    seen: Vec<BTreeSet<Vec<u8>>>,
}

struct Aggregate<'p> {
    input: Box<dyn Operator + 'p>,
    group_by: &'p [Expr],
    aggregates: &'p [AggCall],
    output: Option<std::vec::IntoIter<Row>>,
}

impl Operator for Aggregate<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.output.is_none() {
            let new_group = |values: Row| Group {
                values,
                accs: self.aggregates.iter().map(Acc::new).collect(),
                seen: self.aggregates.iter().map(|_| BTreeSet::new()).collect(),
            };
            // Groups in key order: deterministic output.
            let mut groups: BTreeMap<Vec<u8>, Group> = BTreeMap::new();
            while let Some(row) = self.input.next(cx)? {
                cx.tick()?;
                let mut values = Vec::with_capacity(self.group_by.len());
                for g in self.group_by {
                    values.push(eval(g, &row, cx)?);
                }
                let key = row_key(&values);
                if !groups.contains_key(&key) {
                    if groups.len() >= limits::MEMORY_ROWS_MAX {
                        return too_many_rows("GROUP BY");
                    }
                    cx.hold(row_bytes(&values) + key.len(), "GROUP BY")?;
                    groups.insert(key.clone(), new_group(values));
                }
                let group = groups.get_mut(&key).expect("inserted");
                for (i, call) in self.aggregates.iter().enumerate() {
                    if let Some(filter) = &call.filter {
                        if eval(filter, &row, cx)? != Value::Bool(true) {
                            continue;
                        }
                    }
                    let v = match &call.arg {
                        Some(a) => eval(a, &row, cx)?,
                        None => Value::Null,
                    };
                    // DISTINCT skips NULLs where the aggregate would (all
                    // but array_agg, which keeps one NULL, as PostgreSQL's).
                    let skips_null =
                        !matches!(call.func, AggFunc::ArrayAgg | AggFunc::JsonbAgg | AggFunc::JsonbObjectAgg);
                    let repeated = |seen: &mut BTreeSet<Vec<u8>>| !seen.insert(row_key(std::slice::from_ref(&v)));
                    if call.distinct && ((v.is_null() && skips_null) || repeated(&mut group.seen[i])) {
                        continue;
                    }
                    match &mut group.accs[i] {
                        Acc::Ordered { rows, .. } => {
                            if rows.len() >= limits::MEMORY_ROWS_MAX {
                                return too_many_rows("an aggregate's ORDER BY");
                            }
                            let keys =
                                call.order_by.iter().map(|k| eval(&k.expr, &row, cx)).collect::<Result<Vec<_>>>()?;
                            cx.hold(row_bytes(&keys) + row_bytes(std::slice::from_ref(&v)), "an aggregate's ORDER BY")?;
                            rows.push((keys, v));
                        }
                        acc => acc.add(call, v)?,
                    }
                }
            }
            // No input and no GROUP BY: one row of empty aggregates.
            if groups.is_empty() && self.group_by.is_empty() {
                groups.insert(Vec::new(), new_group(Vec::new()));
            }
            let mut rows = Vec::with_capacity(groups.len());
            for group in groups.into_values() {
                let mut row = group.values;
                for (acc, call) in group.accs.iter().zip(self.aggregates) {
                    row.push(acc.finish(call)?);
                }
                rows.push(row);
            }
            self.output = Some(rows.into_iter());
        }
        Ok(self.output.as_mut().and_then(|o| o.next()))
    }
}

// ---- joins ----------------------------------------------------------------------------------

struct JoinState {
    right_rows: Vec<Row>,
    /// Right rows by join key (hash join).
    table: Option<HashMap<Vec<u8>, Vec<usize>>>,
    right_matched: Vec<bool>,
    /// Rows ready to return.
    pending: VecDeque<Row>,
    left_done: bool,
    unmatched_emitted: bool,
}

struct Join<'p> {
    left: Box<dyn Operator + 'p>,
    right: Box<dyn Operator + 'p>,
    left_width: usize,
    right_width: usize,
    kind: JoinKind,
    left_keys: &'p [Expr],
    right_keys: &'p [Expr],
    on: Option<&'p Expr>,
    state: Option<JoinState>,
}

/// `left JOIN LATERAL right`: `right` runs once per left row, with that
/// row pushed as its outer row (uncorrelated, it runs once: its rows are
/// cached like any subquery's).
struct LateralJoin<'p> {
    left: Box<dyn Operator + 'p>,
    right: &'p Node,
    /// Whether the right side reads the left row: then it runs for each
    /// left row, streamed (any number of rows, none held); else once, its
    /// rows kept for every left row.
    correlated: bool,
    /// LEFT JOIN LATERAL: a left row that matches nothing is kept once.
    left_kind: bool,
    on: Option<&'p Expr>,
    /// The left row being joined, its right rows, and whether one matched.
    current: Option<(Row, RightRows<'p>, bool)>,
}

/// A lateral join's right rows for one left row.
enum RightRows<'p> {
    /// The uncorrelated side's rows, and the next to try.
    Kept(Rc<Vec<Row>>, usize),
    /// The correlated side, running with the left row as its outer row.
    Streamed(Box<dyn Operator + 'p>),
}

impl Operator for LateralJoin<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        loop {
            cx.tick()?;
            let Some((left, rights, matched)) = self.current.as_mut() else {
                let Some(left) = self.left.next(cx)? else { return Ok(None) };
                let rights = if self.correlated {
                    if cx.outer.len() >= limits::NESTING_DEPTH_MAX {
                        return sql_err!(ProgramLimitExceeded, "subqueries nest too deeply");
                    }
                    RightRows::Streamed(build_node(self.right, None))
                } else {
                    RightRows::Kept(subquery_rows(self.right, &left, cx, usize::MAX)?, 0)
                };
                self.current = Some((left, rights, false));
                continue;
            };
            let right = match rights {
                RightRows::Kept(rows, next) => rows.get(*next).inspect(|_| *next += 1).cloned(),
                RightRows::Streamed(op) => {
                    cx.outer.push(left.clone());
                    let right = op.next(cx);
                    cx.outer.pop();
                    right?
                }
            };
            if let Some(right) = right {
                let mut row = left.clone();
                row.extend(right);
                if self.on.map_or(Ok(true), |on| holds(on, &row, cx))? {
                    *matched = true;
                    return Ok(Some(row));
                }
                continue;
            }
            let (mut left, _, matched) = self.current.take().expect("a current left row");
            if self.left_kind && !matched {
                left.extend(std::iter::repeat_n(Value::Null, self.right.width()));
                return Ok(Some(left));
            }
        }
    }
}

/// A join key, or None if any part is NULL (NULL never joins).
fn join_key(exprs: &[Expr], row: &[Value], cx: &mut Cx) -> Result<Option<Vec<u8>>> {
    let mut values = Vec::with_capacity(exprs.len());
    for e in exprs {
        let v = eval(e, row, cx)?;
        if v.is_null() {
            return Ok(None);
        }
        values.push(v);
    }
    Ok(Some(row_key(&values)))
}

impl Operator for Join<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.state.is_none() {
            let right_rows = hold_all(self.right.as_mut(), cx, "a join")?;
            let table = if self.right_keys.is_empty() {
                None
            } else {
                let mut t: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
                for (i, r) in right_rows.iter().enumerate() {
                    if let Some(k) = join_key(self.right_keys, r, cx)? {
                        t.entry(k).or_default().push(i);
                    }
                }
                Some(t)
            };
            let n = right_rows.len();
            self.state = Some(JoinState {
                right_rows,
                table,
                right_matched: vec![false; n],
                pending: VecDeque::new(),
                left_done: false,
                unmatched_emitted: false,
            });
        }
        loop {
            let state = self.state.as_mut().expect("built");
            if let Some(row) = state.pending.pop_front() {
                return Ok(Some(row));
            }
            if !state.left_done {
                let Some(left) = self.left.next(cx)? else {
                    self.state.as_mut().expect("built").left_done = true;
                    continue;
                };
                let candidates: Vec<usize> = match &state.table {
                    Some(t) => match join_key(self.left_keys, &left, cx)? {
                        Some(k) => t.get(&k).cloned().unwrap_or_default(),
                        None => Vec::new(),
                    },
                    None => (0..state.right_rows.len()).collect(),
                };
                let mut matched = false;
                for i in candidates {
                    cx.tick()?;
                    let state = self.state.as_mut().expect("built");
                    let mut joined = left.clone();
                    joined.extend_from_slice(&state.right_rows[i]);
                    let ok = match self.on {
                        Some(on) => holds(on, &joined, cx)?,
                        None => true,
                    };
                    if ok {
                        let state = self.state.as_mut().expect("built");
                        matched = true;
                        state.right_matched[i] = true;
                        state.pending.push_back(joined);
                    }
                }
                if !matched && matches!(self.kind, JoinKind::Left | JoinKind::Full) {
                    let mut joined = left;
                    joined.extend(std::iter::repeat_n(Value::Null, self.right_width));
                    self.state.as_mut().expect("built").pending.push_back(joined);
                }
                continue;
            }
            if !state.unmatched_emitted {
                state.unmatched_emitted = true;
                if matches!(self.kind, JoinKind::Right | JoinKind::Full) {
                    for (i, r) in state.right_rows.iter().enumerate() {
                        if !state.right_matched[i] {
                            let mut joined = vec![Value::Null; self.left_width];
                            joined.extend_from_slice(r);
                            state.pending.push_back(joined);
                        }
                    }
                }
                continue;
            }
            return Ok(None);
        }
    }
}

// ---- set operations ---------------------------------------------------------------------------

struct SetOp<'p> {
    op: SetOpKind,
    all: bool,
    left: Box<dyn Operator + 'p>,
    right: Box<dyn Operator + 'p>,
    state: Option<SetState>,
}

struct SetState {
    /// UNION: rows seen; INTERSECT/EXCEPT: right rows' counts.
    counts: HashMap<Vec<u8>, i64>,
    left_done: bool,
}

impl Operator for SetOp<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.state.is_none() {
            let mut counts = HashMap::new();
            if self.op != SetOpKind::Union {
                while let Some(r) = self.right.next(cx)? {
                    *counts.entry(row_key(&r)).or_insert(0) += 1;
                    if counts.len() > limits::MEMORY_ROWS_MAX {
                        return too_many_rows(if self.op == SetOpKind::Intersect { "INTERSECT" } else { "EXCEPT" });
                    }
                }
            }
            self.state = Some(SetState { counts, left_done: false });
        }
        let state = self.state.as_mut().expect("built");
        loop {
            let row = if !state.left_done {
                match self.left.next(cx)? {
                    Some(r) => r,
                    None => {
                        state.left_done = true;
                        continue;
                    }
                }
            } else if self.op == SetOpKind::Union {
                match self.right.next(cx)? {
                    Some(r) => r,
                    None => return Ok(None),
                }
            } else {
                return Ok(None);
            };
            let key = row_key(&row);
            match self.op {
                SetOpKind::Union => {
                    if self.all {
                        return Ok(Some(row));
                    }
                    if state.counts.insert(key, 1).is_none() {
                        if state.counts.len() > limits::MEMORY_ROWS_MAX {
                            return too_many_rows("UNION");
                        }
                        return Ok(Some(row));
                    }
                }
                SetOpKind::Intersect => {
                    if let Some(n) = state.counts.get_mut(&key) {
                        if *n > 0 {
                            *n = if self.all { *n - 1 } else { 0 };
                            return Ok(Some(row));
                        }
                    }
                }
                SetOpKind::Except => {
                    let n = state.counts.entry(key).or_insert(0);
                    if *n > 0 {
                        if self.all {
                            *n -= 1;
                        }
                        continue;
                    }
                    if !self.all {
                        *n = 1; // emit each distinct row once
                    }
                    return Ok(Some(row));
                }
            }
        }
    }
}

// ---- unnest ----------------------------------------------------------------------------------------

struct Unnest<'p> {
    array: &'p Expr,
    /// The elements not produced yet, last first.
    items: Option<Vec<Value>>,
}

impl Operator for Unnest<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.items.is_none() {
            let mut items = match eval(self.array, &[], cx)? {
                Value::Array(_, items) => items,
                _ => Vec::new(), // NULL: no rows
            };
            items.reverse();
            self.items = Some(items);
        }
        cx.tick()?;
        Ok(self.items.as_mut().and_then(Vec::pop).map(|v| vec![v]))
    }
}

// ---- generate_series -----------------------------------------------------------------------------

struct Series<'p> {
    start: &'p Expr,
    stop: &'p Expr,
    step: Option<&'p Expr>,
    data_type: DataType,
    /// Not started (`None`), or where it is.
    state: Option<SeriesState>,
}

/// Where a series is: its next value, its stop, its step, and how many it
/// gave; `Done` after its last value (or a NULL argument: none).
enum SeriesState {
    Ints {
        next: i64,
        stop: i64,
        step: i64,
        produced: i64,
    },
    /// Timestamps: each value is the one before plus the interval (so a
    /// month's step from the 31st gives the 29th of February, then the
    /// 29th of each month after, as PostgreSQL's).
    Times {
        next: Value,
        stop: Value,
        step: Value,
        forward: bool,
        produced: i64,
    },
    Done,
}

impl Series<'_> {
    fn start(&self, cx: &mut Cx) -> Result<SeriesState> {
        let start = eval(self.start, &[], cx)?;
        let stop = eval(self.stop, &[], cx)?;
        let step = match self.step {
            Some(s) => eval(s, &[], cx)?,
            None => Value::Int8(1),
        };
        if start.is_null() || stop.is_null() || step.is_null() {
            return Ok(SeriesState::Done);
        }
        if let Value::Interval(i) = step {
            let zero = Value::Interval(crate::types::Interval { months: 0, days: 0, micros: 0 });
            let forward = match crate::ops::compare(&step, &zero)? {
                Some(std::cmp::Ordering::Equal) | None => {
                    return sql_err!(InvalidParameterValue, "step size cannot equal zero")
                }
                Some(o) => o == std::cmp::Ordering::Greater,
            };
            return Ok(SeriesState::Times { next: start, stop, step: Value::Interval(i), forward, produced: 0 });
        }
        match (start.as_i64(), stop.as_i64(), step.as_i64()) {
            (Some(_), Some(_), Some(0)) => sql_err!(InvalidParameterValue, "step size cannot equal zero"),
            (Some(next), Some(stop), Some(step)) => Ok(SeriesState::Ints { next, stop, step, produced: 0 }),
            _ => sql_err!(InternalError, "generate_series over values of other types"),
        }
    }
}

impl Operator for Series<'_> {
    fn next(&mut self, cx: &mut Cx) -> Result<Option<Row>> {
        if self.state.is_none() {
            self.state = Some(self.start(cx)?);
        }
        cx.tick()?;
        let too_many = || {
            sql_err!(ProgramLimitExceeded, "generate_series would produce more than {} rows", limits::SERIES_ROWS_MAX)
        };
        match self.state.take() {
            Some(SeriesState::Ints { next, stop, step, produced }) => {
                if (step > 0 && next > stop) || (step < 0 && next < stop) {
                    self.state = Some(SeriesState::Done);
                    return Ok(None);
                }
                if produced >= limits::SERIES_ROWS_MAX {
                    return too_many();
                }
                self.state = Some(match next.checked_add(step) {
                    Some(after) => SeriesState::Ints { next: after, stop, step, produced: produced + 1 },
                    // Past i64's range: this was the last value.
                    None => SeriesState::Done,
                });
                let v = match self.data_type {
                    DataType::Int2 => Value::Int2(next as i16),
                    DataType::Int4 => Value::Int4(next as i32),
                    _ => Value::Int8(next),
                };
                Ok(Some(vec![v]))
            }
            Some(SeriesState::Times { next, stop, step, forward, produced }) => {
                let past = match crate::ops::compare(&next, &stop)? {
                    Some(std::cmp::Ordering::Greater) => forward,
                    Some(std::cmp::Ordering::Less) => !forward,
                    _ => false,
                };
                if past {
                    self.state = Some(SeriesState::Done);
                    return Ok(None);
                }
                if produced >= limits::SERIES_ROWS_MAX {
                    return too_many();
                }
                let after = crate::ops::binary(crate::ops::BinaryOp::Add, &next, &step)?;
                self.state = Some(SeriesState::Times { next: after, stop, step, forward, produced: produced + 1 });
                Ok(Some(vec![next]))
            }
            other => {
                self.state = other;
                Ok(None)
            }
        }
    }
}
