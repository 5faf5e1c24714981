//! Every bound the SQL layer puts on a statement, in one place.
//!
//! A statement that would cross one gets an error with SQLSTATE 54000
//! (program limit exceeded) or 53200 (out of memory) and changes nothing.

/// The longest statement text accepted (bytes).
pub const STATEMENT_BYTES_MAX: usize = 1024 * 1024;

/// The largest encoded row (its value, bytes). Below SpanDB's value limit
/// (1 MiB) with room for the encoding.
pub const ROW_BYTES_MAX: usize = 1000 * 1024;

/// The longest key an index entry may have (bytes). Below SpanDB's key
/// limit (4 KiB).
pub const KEY_BYTES_MAX: usize = 4000;

/// The largest string or bytea value an expression may produce (far
/// above what a row can store; PostgreSQL allows 1 GB, which a few
/// concurrent statements could turn into an out-of-memory gateway).
pub const VALUE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The most bytes of a statement's text `pg_stat_activity` keeps
/// (PostgreSQL's `track_activity_query_size` default): a session copies
/// its statement's text as it starts, and a 1 MiB statement need not be
/// copied whole for a listing.
pub const ACTIVITY_QUERY_BYTES_MAX: usize = 1024;

/// The longest template `to_char` takes (characters): its output is at
/// most a few times as long (PostgreSQL has no bound; real templates are
/// tens of characters).
pub const FORMAT_TEMPLATE_CHARS_MAX: usize = 10_000;

/// How deep a statement's expressions may nest, as counted from its
/// tokens (`parser`, "check_expression_depth": a run of operators such as
/// `a OR b OR ...` nests a level per operator): everything that walks a
/// statement recurses that deep.
pub const EXPRESSION_DEPTH_MAX: usize = 1_000;

/// Tables and other items one FROM clause may join (each nests the plan
/// a level deeper).
pub const FROM_ITEMS_MAX: usize = 256;

/// The stack a thread running sessions' statements needs: the deepest
/// statement [`EXPRESSION_DEPTH_MAX`] lets through recurses through well
/// under it, even in a debug build, whose frames are many times a release
/// build's (the binder's are tens of KiB there). A thread's stack is
/// reserved, not used, until touched.
pub const SESSION_STACK_BYTES: usize = 256 * 1024 * 1024;

/// The longest one step of `pg_sleep` waits before looking at the
/// session's cancel flag (a cancel or `statement_timeout` stops a sleep
/// within it).
pub const SLEEP_STEP_NS: u64 = 10_000_000;

/// Rows fetched per key-value scan call: what a streaming query holds.
pub const SCAN_PAGE_ROWS: usize = 256;

/// A query's scan reads its first page of a range this long, then pages
/// twice as long up to [`SCAN_PAGE_ROWS`]: a LIMIT that stops after a few
/// rows (a job queue's `SKIP LOCKED`) reads a few more, not a page of 256.
/// A LIMIT right above the scan (through filters and projections) sets
/// the first page to its count instead (`ORDER BY id DESC LIMIT 20`: one
/// page of 20).
pub const SCAN_FIRST_PAGE_ROWS: usize = 16;

/// Key ranges one scan may read: the items of an IN list that become
/// spans at planning, and the elements of an IN subquery or of `= ANY`'s
/// array as the scan opens. A longer list leaves the column to the
/// filter.
pub const SPANS_PER_SCAN_MAX: usize = 1_000;

/// Rows a join's side may have, known from the plan (a LIMIT, a VALUES
/// list), for the join to look up the other side's rows by key per row
/// (optimizer rule 5) rather than scan that table whole: each lookup is
/// a read at the leader, and a scan under two-phase locking locks the
/// whole table.
pub const LOOKUP_JOIN_ROWS_MAX: u64 = 1_000;

/// Rows a LIMIT (with its OFFSET) may ask of a sort of a whole table for
/// the optimizer to read them through a secondary index in the sort's
/// order instead (rule 4), each row by key: more lookups than this cost
/// more than reading the table and sorting it.
pub const INDEX_ORDER_ROWS_MAX: u64 = 1_000;

/// Rows an operator may hold in memory (sort, hash join, aggregation,
/// DISTINCT, set operations, a materialized subquery).
pub const MEMORY_ROWS_MAX: usize = 1_000_000;

/// Bytes of rows all of a statement's operators may hold in memory
/// together (sorts, hash tables, groups, subquery results, a write's
/// input), counted roughly ([`crate::exec::row_bytes`]).
pub const MEMORY_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Rows one read-write statement may write. SpanDB commits a
/// transaction's writes in one Raft proposal per shard; a bigger change
/// belongs in batches.
pub const WRITES_PER_TRANSACTION_MAX: usize = 10_000;

/// Rows one batch of a schema change's backfill or rewrite reads and
/// writes (`backfill`), each batch a transaction of its own; with its
/// index entries well below [`WRITES_PER_TRANSACTION_MAX`].
pub const BACKFILL_BATCH_ROWS: usize = 1_000;

/// Keys one batch of the sweeper deletes (`sweep`), each batch a
/// transaction of its own, below [`WRITES_PER_TRANSACTION_MAX`].
pub const SWEEP_BATCH_ROWS: usize = 1_000;

/// Sweep jobs one batch reads to find one it may take (the others are
/// claimed by other sweepers, a few at most).
pub const SWEEP_JOBS_SCANNED_MAX: usize = 64;

/// How long a sweeper's batch keeps its job from other sweepers (it
/// renews the claim with each batch): long past a batch's pause, so one
/// sweeper works a job alone while it runs, and another takes it over
/// this long after it stopped.
pub const SWEEP_CLAIM_NS: u64 = 30_000_000_000;

/// How long an advisory lock's holder keeps it without renewing
/// (`advisory`): what a stopped gateway's locks stay taken for.
pub const ADVISORY_LEASE_NS: u64 = 20_000_000_000;

/// How often a gateway renews its sessions' advisory locks: a fifth of
/// the lease, so four renewals in a row may fail before one runs out.
pub const ADVISORY_RENEW_NS: u64 = 4_000_000_000;

/// A waiting `pg_advisory_lock`'s first and longest pause between tries.
pub const ADVISORY_POLL_MIN_NS: u64 = 5_000_000;
pub const ADVISORY_POLL_MAX_NS: u64 = 200_000_000;

/// Transactions one advisory lock or unlock tries when they conflict
/// with another session's (a lock then counts as taken by it).
pub const ADVISORY_ATTEMPTS_MAX: usize = 5;

/// How many rows of a COPY FROM STDIN commit together (`copy`): one
/// batch is what a COPY holds in memory and what a failure can lose.
pub const COPY_BATCH_ROWS: usize = 1_000;

/// How many times an implicit (single-statement) transaction is retried
/// after a retryable abort, while nothing has been sent to the client.
pub const AUTOCOMMIT_RETRIES_MAX: u32 = 10;

/// Rows an implicit transaction's result buffers before streaming them to
/// the client; past it a retryable abort reaches the client (40001).
pub const RESULT_BUFFER_ROWS: usize = 1_000;

/// Bytes of rows (as [`crate::exec::row_bytes`] counts them) an implicit
/// transaction's result buffers at most, whatever their number: rows of
/// large values are passed on sooner, to the sink that bounds what a
/// result may hold.
pub const RESULT_BUFFER_BYTES: usize = 1024 * 1024;

/// How deeply expressions and subqueries may nest.
pub const NESTING_DEPTH_MAX: usize = 64;

/// How deeply foreign key actions may cascade: a DELETE whose ON DELETE
/// CASCADE deletes rows whose own foreign keys cascade, and so on (a
/// table referencing itself cascades once per level of its tree).
pub const FOREIGN_KEY_ACTION_DEPTH_MAX: usize = 64;

/// Columns a table may have.
pub const COLUMNS_MAX: usize = 1_000;

/// Index ids a table may use over its life (dropped indexes' ids are not
/// reused): each index gets an oid in the table's block of oids, so this
/// sets the block's size (`system`, "Oids").
pub const INDEX_IDS_MAX: u32 = 4_095;

/// Rows `generate_series` may produce.
pub const SERIES_ROWS_MAX: i64 = 100_000_000;

/// Table names a session remembers the ids of (the catalog module says
/// why that is safe).
pub const NAME_CACHE_ENTRIES_MAX: usize = 10_000;

/// Grouping sets one GROUP BY may expand to (ROLLUP, CUBE, GROUPING
/// SETS: `planner::grouping_sets`); each reads the query's input again.
pub const GROUPING_SETS_MAX: usize = 256;

/// Distinct expressions grouping sets may name, and arguments of one
/// `GROUPING(...)`: a row's set id has a bit per expression, in an int4
/// (PostgreSQL allows 31 arguments to GROUPING too).
pub const GROUPING_EXPRESSIONS_MAX: usize = 31;

/// The highest `$n` a statement may use: what the protocol's Bind can
/// carry (a 16-bit count).
pub const PARAMETERS_MAX: usize = 65_535;

/// Statements a session may hold prepared by SQL's `PREPARE` (the
/// protocol's Parse has its own limit, in the gateway).
pub const SQL_PREPARED_MAX: usize = 10_000;

/// Plans of prepared statements a session keeps (the session
/// module's "Kept plans"); past it, all are dropped and planned again.
pub const KEPT_PLANS_MAX: usize = 256;

/// How long a gateway may use a table descriptor it read without reading
/// it again (`catalog`, "Leases"), in nanoseconds of timestamp; every
/// schema change of an existing table waits this long between its drain
/// and its change.
pub const DESCRIPTOR_LEASE_NS: u64 = 500_000_000;

/// A gateway fetches a leased descriptor again, outside any user
/// transaction, once its lease is this old (`catalog`, "Renewal"), in
/// nanoseconds of timestamp: well before half the lease, past which no
/// statement may use it.
pub const LEASE_RENEWAL_AGE_NS: u64 = DESCRIPTOR_LEASE_NS / 4;

/// A read-write transaction that planned from leased descriptors reads
/// them under locks instead (lifting its deadline) when a statement of
/// its block, or its COMMIT, starts less than this before the deadline
/// (`catalog`, "Writers"), in nanoseconds.
pub const WRITER_DEADLINE_MARGIN_NS: u64 = 100_000_000;
