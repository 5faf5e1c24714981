//! Schema changes that fill or copy a whole table, in batches of
//! transactions of their own — so a table of any size can get an index or
//! a primary key, while no transaction holds more than a batch.
//!
//! A statement outside a transaction block does the catalog part in its
//! own transaction and leaves the rest ([`crate::catalog::FollowUp`]) to be run here after
//! it commits (F1's online schema change):
//!
//! ```text
//!   CREATE INDEX i ON t      commit: i write-only (writers keep it and its
//!                            uniqueness; readers do not use it)
//!                            batches: entries of BACKFILL_BATCH_ROWS rows each
//!                            commit: i public
//!
//!   ALTER TABLE t ADD        commit: t.rewrite = t' (a new id, the new
//!     PRIMARY KEY (c)          primary key); writers of t refused (55006),
//!                              as PostgreSQL blocks them during this ALTER
//!                            batches: t's rows copied into t'
//!                            drain t, wait out leases; commit: t' is t
//! ```
//!
//! Why it is safe: a writer always uses the state in force at its own
//! commit — it reads (and locks) the descriptor in its own transaction,
//! and so serializes with each of these commits, or it planned from a
//! lease and commits before the lease ends (`catalog`, "Writers"; the
//! commits that make an index write-only or start a rewrite drain
//! first). A batch is a serializable
//! transaction too: a row a writer changes before the batch reaches it is
//! read by the batch; after, the writer kept the index itself. So when the
//! last batch commits every row has its entry, and the index goes public.
//! Readers use leased descriptors (`catalog`, "Leases"): a write-only index
//! is invisible to them, and the switch to a rewritten table is drained
//! first, like any change of what readers read.
//!
//! If a batch finds a duplicate (or a NULL in a new primary key column),
//! the change is undone — the index dropped, the rewrite abandoned — and
//! the statement fails with PostgreSQL's error; the entries or rows
//! written so far are unreachable (their ids are never used again) and
//! swept (`sweep`).
//! Cancelling the statement (57014) between batches undoes it the same
//! way.
//!
//! A batch whose commit's outcome is unknown (the cluster did not answer
//! in time) runs again: an index batch that did commit finds its entries
//! there, the rows' own; a rewrite batch starts where the last committed
//! batch ended, which each batch records in its own transaction
//! (`rewrite_progress_key`). So a slow cluster slows a change down
//! instead of failing it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::catalog::Drains;
use crate::catalog::{Catalog, IndexDesc, TableDesc};
use crate::encoding;
use crate::error::{Error, Result, SqlState};
use crate::exec::Cx;
use crate::kv::{self, Attempt, Engine, KvError, Mode};
use crate::limits;
use crate::sql_err;
use crate::write;

/// Whether running a batch again after its commit's outcome went unknown
/// is safe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rerun {
    /// Safe: running it again after it did commit changes nothing (an
    /// index entry already there is the row's own; a rewrite batch starts
    /// where the last committed one ended). An unknown outcome, or a
    /// cluster that did not answer, is retried like an abort.
    Safe,
    /// Not safe: an unknown outcome is the statement's error.
    Unsafe,
}

/// Runs `f` in a read-write transaction of its own, again (with the same
/// priority) after a retryable abort (and, if `rerun` is safe, after an
/// unknown outcome). `f` is first told it may leave "this key is new" to
/// the commit (`Cx::defer_unique_checks`); if the commit finds a key
/// taken, it runs again told to read instead (which names the duplicate,
/// or finds the key was this row's own).
fn in_transaction<T>(
    engine: &dyn Engine,
    now_us: i64,
    cancel: &Arc<AtomicBool>,
    rerun: Rerun,
    f: &mut dyn FnMut(&mut Cx) -> Result<T>,
) -> Result<T> {
    let mut attempt = 0;
    let mut priority = None;
    let mut checks_at_commit = true;
    loop {
        attempt += 1;
        let mut txn = kv::begin_keeping_priority(engine, Mode::ReadWrite, &mut priority)?;
        let ran = {
            let mut cx = Cx::new(txn.as_mut(), Vec::new(), now_us).with_cancel(cancel.clone());
            cx.defer_unique_checks = checks_at_commit;
            cx.check_cancel().and_then(|()| f(&mut cx))
        };
        let result = match kv::finish(txn, ran) {
            Attempt::Committed(v, _) => Ok(v),
            Attempt::KeyTaken(_) if checks_at_commit => {
                checks_at_commit = false;
                continue;
            }
            Attempt::KeyTaken(m) => Err(Error::from(KvError::ConditionNotMet(m))),
            Attempt::Failed(e) => Err(e),
        };
        let unknown = |e: &Error| matches!(e.state, SqlState::StatementCompletionUnknown | SqlState::SystemError);
        match result {
            Err(e) if e.is_retryable() && attempt <= limits::AUTOCOMMIT_RETRIES_MAX => continue,
            Err(e) if rerun == Rerun::Safe && unknown(&e) && attempt <= limits::AUTOCOMMIT_RETRIES_MAX => continue,
            other => return other,
        }
    }
}

/// Table `id` with write-only index `index` (an error if a concurrent
/// change removed either).
fn table_with_write_only_index(cx: &mut Cx, id: u32, index: u32) -> Result<(TableDesc, IndexDesc)> {
    let Some(desc) = Catalog::table_by_id(cx.txn()?, id)? else {
        return sql_err!(UndefinedTable, "the table was dropped while its index was being built");
    };
    match desc.indexes.iter().find(|i| i.id == index && i.write_only) {
        Some(i) => Ok(((*desc).clone(), i.clone())),
        None => sql_err!(UndefinedObject, "the index was dropped while it was being built"),
    }
}

/// Drops write-only index `index` of table `table` (its backfill failed;
/// the caller drained the table first, so no writer still maintains it).
/// Best effort: if this fails, the index stays write-only.
pub fn drop_write_only_index(engine: &dyn Engine, table: u32, index: u32, now_us: i64) {
    let never = Arc::new(AtomicBool::new(false));
    let _ = in_transaction(engine, now_us, &never, Rerun::Unsafe, &mut |cx| {
        let Some(desc) = Catalog::table_by_id(cx.txn()?, table)? else { return Ok(()) };
        let mut desc = (*desc).clone();
        let before = desc.indexes.len();
        desc.indexes.retain(|i| !(i.id == index && i.write_only));
        if desc.indexes.len() < before {
            crate::sweep::schedule_index(cx.txn()?, table, index)?;
        }
        Catalog::update_table(cx.txn()?, &mut desc)
    });
}

/// Fills write-only index `index` of table `table` and makes it public.
/// On failure the caller drops it ([`drop_write_only_index`]).
pub fn fill_index(engine: &dyn Engine, table: u32, index: u32, now_us: i64, cancel: &Arc<AtomicBool>) -> Result<()> {
    let mut from = Some(encoding::index_prefix(table, crate::catalog::PRIMARY_INDEX_ID));
    while let Some(start) = from.take() {
        from = in_transaction(engine, now_us, cancel, Rerun::Safe, &mut |cx| {
            let (desc, index) = table_with_write_only_index(cx, table, index)?;
            write::backfill_batch(&desc, &index, &start, limits::BACKFILL_BATCH_ROWS, cx)
        })?;
    }
    in_transaction(engine, now_us, cancel, Rerun::Safe, &mut |cx| {
        let public = |d: &TableDesc| d.indexes.iter().any(|i| i.id == index && !i.write_only);
        if Catalog::table_by_id(cx.txn()?, table)?.is_some_and(|d| public(&d)) {
            // A run before this one committed (its outcome went unknown).
            return Ok(());
        }
        let (mut desc, _) = table_with_write_only_index(cx, table, index)?;
        for i in desc.indexes.iter_mut().filter(|i| i.id == index) {
            i.write_only = false;
        }
        Catalog::update_table(cx.txn()?, &mut desc)
    })
}

/// Copies table `table`'s rows into its `rewrite`; returns the table's
/// name (to drain before [`switch_to_rewrite`]). On failure abandons the
/// rewrite ([`abandon_rewrite`] is the caller's).
pub fn copy_rows(engine: &dyn Engine, table: u32, now_us: i64, cancel: &Arc<AtomicBool>) -> Result<String> {
    match copy_all_rows(engine, table, now_us, cancel) {
        // PostgreSQL checks a new primary key's NOT NULL before its
        // uniqueness (ADD PRIMARY KEY sets the columns NOT NULL first).
        // Rows are copied in row-id order, which is random, so a
        // duplicate may come before a NULL: look for one.
        Err(e) if e.state == SqlState::UniqueViolation => {
            check_not_null(engine, table, now_us, cancel)?;
            Err(e)
        }
        copied => copied,
    }
}

fn copy_all_rows(engine: &dyn Engine, table: u32, now_us: i64, cancel: &Arc<AtomicBool>) -> Result<String> {
    let mut name = String::new();
    let mut more = true;
    while more {
        more = in_transaction(engine, now_us, cancel, Rerun::Safe, &mut |cx| {
            let (old, new) = table_being_rewritten(cx, table)?;
            name.clone_from(&old.name);
            let progress = rewrite_progress_key(new.id);
            let start = match cx.txn()?.get(&progress)? {
                None => encoding::index_prefix(table, crate::catalog::PRIMARY_INDEX_ID),
                Some(done) if done.is_empty() => return Ok(false),
                Some(next) => next,
            };
            let checks = crate::planner::bind_table_checks(cx.txn()?, &new)?;
            let next = write::rewrite_batch(&old, &new, &checks, &start, limits::BACKFILL_BATCH_ROWS, cx)?;
            cx.txn()?.put(&progress, next.as_deref().unwrap_or_default())?;
            Ok(next.is_some())
        })?;
    }
    Ok(name)
}

/// Fails with 23502 if a row of table `table` has a NULL where its
/// rewrite wants none, reading it in batches.
fn check_not_null(engine: &dyn Engine, table: u32, now_us: i64, cancel: &Arc<AtomicBool>) -> Result<()> {
    let mut from = Some(encoding::index_prefix(table, crate::catalog::PRIMARY_INDEX_ID));
    while let Some(start) = from.take() {
        from = in_transaction(engine, now_us, cancel, Rerun::Safe, &mut |cx| {
            let (old, new) = table_being_rewritten(cx, table)?;
            write::check_not_null_batch(&old, &new, &start, limits::BACKFILL_BATCH_ROWS, cx)
        })?;
    }
    Ok(())
}

/// Where the rewrite into table `new_table` has got to: the key its next
/// batch starts at, empty when done. Each batch writes it in its own
/// transaction, so a batch run again after its commit's outcome went
/// unknown starts where the last committed batch ended (copying a row
/// twice would find it taken: a duplicate that is not one). It lives in
/// the new table's key space outside its indexes (index id 0 is never
/// an index's) and goes when the new table becomes the table.
fn rewrite_progress_key(new_table: u32) -> Vec<u8> {
    encoding::index_prefix(new_table, REWRITE_PROGRESS_INDEX_ID)
}

/// Not an index: where a rewrite keeps its progress.
const REWRITE_PROGRESS_INDEX_ID: u32 = 0;

fn table_being_rewritten(cx: &mut Cx, id: u32) -> Result<(TableDesc, TableDesc)> {
    match Catalog::table_by_id(cx.txn()?, id)? {
        Some(desc) => match &desc.rewrite {
            Some(new) => Ok(((*desc).clone(), (**new).clone())),
            None => sql_err!(ObjectInUse, "the rewrite of table \"{}\" was abandoned", desc.name),
        },
        None => sql_err!(UndefinedTable, "the table was dropped while it was being rewritten"),
    }
}

/// Makes the rewritten table the table (its name now names the new id),
/// once the caller drained the old one (`drains`).
pub fn switch_to_rewrite(engine: &dyn Engine, table: u32, drains: &Drains, now_us: i64) -> Result<()> {
    let never = Arc::new(AtomicBool::new(false));
    in_transaction(engine, now_us, &never, Rerun::Unsafe, &mut |cx| {
        let (old, mut new) = table_being_rewritten(cx, table)?;
        drains.clone().check(&old)?;
        cx.txn()?.delete(&rewrite_progress_key(new.id))?;
        Catalog::drop_table(cx.txn()?, &old)?;
        new.version = old.version + 1;
        new.drain_epoch = old.drain_epoch;
        // Other tables' changes during the copy may have changed the old
        // descriptor's links (a referencing table dropped, a referenced
        // one renamed): the table keeps them as they are now.
        new.foreign_keys.clone_from(&old.foreign_keys);
        new.referenced_by.clone_from(&old.referenced_by);
        Catalog::create_table(cx.txn()?, &new)
    })
}

/// Gives up a rewrite: the table takes writes again, unchanged.
pub fn abandon_rewrite(engine: &dyn Engine, table: u32, now_us: i64) {
    let never = Arc::new(AtomicBool::new(false));
    let _ = in_transaction(engine, now_us, &never, Rerun::Unsafe, &mut |cx| {
        let Some(desc) = Catalog::table_by_id(cx.txn()?, table)? else { return Ok(()) };
        let mut desc = (*desc).clone();
        if let Some(rewrite) = desc.rewrite.take() {
            // The rows copied so far, and the copy's progress key.
            crate::sweep::schedule_table(cx.txn()?, rewrite.id)?;
        }
        Catalog::update_table(cx.txn()?, &mut desc)
    });
}
