//! Sweeping the rows of dropped tables and indexes: the space a DROP
//! TABLE, TRUNCATE, DROP INDEX, DROP COLUMN (its indexes) or ALTER TABLE
//! ADD PRIMARY KEY leaves behind comes back.
//!
//! Those statements change only descriptors (`ddl`): a dropped table's or
//! index's ids are never used again, so its pairs are unreachable by any
//! new statement, but they stay on disk as live latest versions, which
//! MVCC GC never removes. `pgbench -i` alone leaves a whole copy of every
//! table (its ADD PRIMARY KEY rewrites the rows under a new id), and each
//! run of it again another (it drops the tables first). So every such
//! statement records a **sweep job** for the key span it abandoned, in its
//! own transaction: committed with the drop, or not at all. A sweeper
//! (every PostgreSQL gateway runs one, `spandb start`) deletes the span's
//! rows in transactions of [`limits::SWEEP_BATCH_ROWS`], and the job when
//! the span is empty, as CockroachDB's schema-change GC jobs clear a
//! dropped table. The deletes are ordinary MVCC writes: a snapshot read
//! (`AS OF SYSTEM TIME`) from before the drop still sees the rows, and
//! MVCC GC reclaims them, and the deletes, once they are older than its
//! retention.
//!
//! ```text
//!   DROP TABLE t (id 107)       commit: t's descriptor and name deleted,
//!                               job /Table/4/1/<"/Table/107/"> = {next: /Table/107/, end: /Table/108/}
//!   sweeper, each batch:        a lock-free read finds the first job it may
//!                               take; one transaction: the job locked (and
//!                               checked again); up to SWEEP_BATCH_ROWS keys from next
//!                               deleted; job.next moved past them (claimed
//!                               for SWEEP_CLAIM_NS), or the job deleted
//! ```
//!
//! Invariants:
//! - A job's span holds only abandoned keys: ids are never reused, and a
//!   job is recorded in the transaction that abandons the span, so no
//!   committed statement can write there again (a transaction that began
//!   before the drop writes under a descriptor lease that ends first:
//!   `catalog`, "Writers").
//! - A batch deletes keys and moves the job's `next` in one transaction:
//!   a batch whose outcome is lost runs again from where the last
//!   committed one ended.
//! - Several sweepers share the work without contention: a batch claims
//!   its job for [`limits::SWEEP_CLAIM_NS`]; other sweepers leave a job
//!   claimed by another until the claim expires (its sweeper stopped).

use serde::{Deserialize, Serialize};

use crate::encoding;
use crate::error::{Error, Result, SqlState};
use crate::kv::{self, Engine, Mode, Transaction};
use crate::limits;

use crate::keyspace::SWEEPS_TABLE;

/// One abandoned span still to be swept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Job {
    /// The first key not yet deleted.
    next: Vec<u8>,
    /// The span's end (exclusive).
    end: Vec<u8>,
    /// Which sweeper works on it, until when.
    #[serde(default)]
    claim: Option<Claim>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    sweeper: u64,
    until_ns: u64,
}

/// What one [`sweep_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swept {
    /// No job this sweeper may take: none left, or every one claimed by
    /// another sweeper.
    Idle,
    /// Deleted this many keys; the job has more.
    Keys(usize),
    /// Deleted this many keys, the last of the job's span, and the job.
    Finished(usize),
}

fn jobs_prefix() -> Vec<u8> {
    encoding::index_prefix(SWEEPS_TABLE, 1)
}

fn job_key(start: &[u8]) -> Vec<u8> {
    let mut key = jobs_prefix();
    key.extend_from_slice(start);
    key
}

fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::new(SqlState::InternalError, format!("corrupt sweep job: {e}"))
}

/// Records that the keys of table `table_id` (every index of it) are
/// abandoned, in the transaction that abandons them.
pub fn schedule_table(txn: &mut dyn Transaction, table_id: u32) -> Result<()> {
    let start = encoding::table_prefix(table_id);
    let end = encoding::prefix_end(&start);
    schedule(txn, start, end)
}

/// Records that the entries of index `index_id` of table `table_id` are
/// abandoned, in the transaction that abandons them.
pub fn schedule_index(txn: &mut dyn Transaction, table_id: u32, index_id: u32) -> Result<()> {
    let start = encoding::index_prefix(table_id, index_id);
    let end = encoding::prefix_end(&start);
    schedule(txn, start, end)
}

fn schedule(txn: &mut dyn Transaction, start: Vec<u8>, end: Vec<u8>) -> Result<()> {
    let key = job_key(&start);
    let job = Job { next: start, end, claim: None };
    let bytes = serde_json::to_vec(&job).map_err(corrupt)?;
    txn.put(&key, &bytes)?;
    Ok(())
}

/// Runs one batch of sweeper `sweeper` (an id of its own, random): finds
/// the first job it may take in a lock-free read (an idle sweeper locks
/// nothing), then deletes up to `keys_max` keys of it in a transaction of
/// its own. Errors are the transaction's (a retryable abort when another
/// sweeper or a drop raced it: the next batch tries again).
pub fn sweep_batch(engine: &dyn Engine, sweeper: u64, keys_max: usize) -> Result<Swept> {
    let now_ns = engine.now();
    let Some(key) = free_job(engine, sweeper, now_ns)? else { return Ok(Swept::Idle) };
    let mut txn = engine.begin(Mode::ReadWrite)?;
    let ran = batch(txn.as_mut(), &key, sweeper, now_ns, keys_max.max(1));
    if matches!(ran, Ok(Swept::Idle)) {
        let _ = txn.rollback();
        return Ok(Swept::Idle);
    }
    match kv::finish(txn, ran) {
        kv::Attempt::Committed(swept, _) => Ok(swept),
        kv::Attempt::KeyTaken(m) => Err(Error::new(SqlState::InternalError, m)),
        kv::Attempt::Failed(e) => Err(e),
    }
}

fn may_take(job: &Job, sweeper: u64, now_ns: u64) -> bool {
    match job.claim {
        None => true,
        Some(c) => c.sweeper == sweeper || c.until_ns <= now_ns,
    }
}

/// The key of the first job `sweeper` may take, read lock-free.
fn free_job(engine: &dyn Engine, sweeper: u64, now_ns: u64) -> Result<Option<Vec<u8>>> {
    let mut txn = engine.begin(Mode::ReadOnly)?;
    let prefix = jobs_prefix();
    let jobs = txn.scan(&prefix, &encoding::prefix_end(&prefix), limits::SWEEP_JOBS_SCANNED_MAX);
    let _ = txn.rollback();
    for (key, value) in jobs? {
        let job: Job = serde_json::from_slice(&value).map_err(corrupt)?;
        if may_take(&job, sweeper, now_ns) {
            return Ok(Some(key));
        }
    }
    Ok(None)
}

fn batch(txn: &mut dyn Transaction, key: &[u8], sweeper: u64, now_ns: u64, keys_max: usize) -> Result<Swept> {
    // Locked for the batch: a second sweeper that found the job free too
    // waits here, then finds it claimed (or gone).
    let Some(value) = txn.get_for_update(key)? else { return Ok(Swept::Idle) };
    let mut job: Job = serde_json::from_slice(&value).map_err(corrupt)?;
    if !may_take(&job, sweeper, now_ns) {
        return Ok(Swept::Idle);
    }
    let pairs = txn.scan(&job.next, &job.end, keys_max)?;
    for (k, _) in &pairs {
        txn.delete(k)?;
    }
    match pairs.last() {
        Some((last, _)) if pairs.len() == keys_max => {
            job.next = last.iter().copied().chain([0]).collect();
            job.claim = Some(Claim { sweeper, until_ns: now_ns.saturating_add(limits::SWEEP_CLAIM_NS) });
            let bytes = serde_json::to_vec(&job).map_err(corrupt)?;
            txn.put(key, &bytes)?;
            Ok(Swept::Keys(pairs.len()))
        }
        _ => {
            txn.delete(key)?;
            Ok(Swept::Finished(pairs.len()))
        }
    }
}

/// Columns of `SHOW JOBS` (CockroachDB's name for the statement that
/// lists its schema-change GC jobs among others).
pub const SHOW_JOBS_COLUMNS: [&str; 3] = ["job_type", "status", "description"];

/// One row of `SHOW JOBS` per sweep job left, read lock-free: `SWEEP`,
/// `running` (claimed by a sweeper, until the claim expires by the
/// engine's clock) or `pending`, and the span with the last key deleted
/// so far.
pub fn show_jobs(engine: &dyn Engine) -> Result<Vec<[String; 3]>> {
    let now_ns = engine.now();
    let prefix_len = jobs_prefix().len();
    let rows = all_jobs(engine)?.into_iter().map(|(key, job)| {
        let start = key.get(prefix_len..).unwrap_or_default();
        let status = if job.claim.is_some_and(|c| c.until_ns > now_ns) { "running" } else { "pending" };
        // `next` is the last key deleted and a 0 byte after it.
        let progress = match job.next.split_last() {
            Some((0, last)) if job.next.as_slice() != start => format!("deleted up to {}", encoding::pretty_key(last)),
            _ => "nothing deleted yet".to_string(),
        };
        let description =
            format!("sweep [{}, {}), {progress}", encoding::pretty_key(start), encoding::pretty_key(&job.end));
        ["SWEEP".to_string(), status.to_string(), description]
    });
    Ok(rows.collect())
}

/// How many sweep jobs are left (for tests).
pub fn jobs_left(engine: &dyn Engine) -> Result<usize> {
    Ok(all_jobs(engine)?.len())
}

/// Every job left, with its key, read lock-free.
fn all_jobs(engine: &dyn Engine) -> Result<Vec<(Vec<u8>, Job)>> {
    let mut txn = engine.begin(Mode::ReadOnly)?;
    let pairs = kv::scan_prefix(txn.as_mut(), &jobs_prefix(), limits::SCAN_PAGE_ROWS);
    let _ = txn.rollback();
    pairs?.into_iter().map(|(key, value)| Ok((key, serde_json::from_slice(&value).map_err(corrupt)?))).collect()
}
