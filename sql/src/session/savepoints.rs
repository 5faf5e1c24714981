//! Savepoints: `SAVEPOINT`, `ROLLBACK TO SAVEPOINT` and `RELEASE
//! SAVEPOINT` inside a transaction block, as PostgreSQL has them, so that
//! a block survives a statement's error (psycopg's nested
//! `transaction()`, Django's nested `atomic()`, psql's
//! `ON_ERROR_ROLLBACK` all send them).
//!
//! ```text
//!   BEGIN
//!   INSERT INTO t VALUES (1)
//!   SAVEPOINT a                 mark 0 of the block's writes
//!   INSERT INTO t VALUES (1)    ERROR 23505: the block is failed
//!   ROLLBACK TO SAVEPOINT a     the writes since mark 0 undone; in block
//!   INSERT INTO t VALUES (2)
//!   COMMIT                      1 and 2
//! ```
//!
//! The model: a read-write transaction buffers its writes until it
//! commits, so going back is undoing buffered writes
//! ([`crate::kv::Transaction::rollback_to`]). What it read, and the locks
//! those reads took, stay until the block ends: a rolled-back statement
//! may have locked rows it no longer writes (PostgreSQL releases them;
//! keeping them only makes others wait longer, never lets a conflict
//! through).
//!
//! Invariants:
//! - The session's list of savepoints is oldest first; a name may repeat,
//!   and the newest of a name is the one named (as in PostgreSQL).
//!   ROLLBACK TO keeps the savepoint and drops every later one; RELEASE
//!   drops it and every later one (the last one: the transaction stops
//!   keeping what its writes replace).
//! - ROLLBACK TO never revives a transaction the servers ended: after an
//!   error that ended it (aborted, wounded, its outcome unknown, the
//!   cluster unreachable) the block can only be rolled back, and ROLLBACK
//!   TO says so with 40001, which clients take as "run it again".
//! - ROLLBACK TO never undoes a schema change: the session keeps what it
//!   learned of a changed schema (plans, descriptors, work for after the
//!   commit) outside the transaction's writes, so ROLLBACK TO a savepoint
//!   taken before a schema change is refused (0A000). So is one taken
//!   before rows loaded in batches that committed on their own (COPY in a
//!   block into a table it created).

use sqlparser::ast;

use super::{in_failed_block, Session, TxnStatus};
use crate::error::{Error, Result, SqlState};
use crate::kv::SavepointMark;
use crate::parser::ident;
use crate::sink::Sink;
use crate::sql_err;

/// One savepoint of a transaction block.
#[derive(Debug, Clone)]
pub(super) struct Savepoint {
    name: String,
    mark: SavepointMark,
    /// How many of the block's statements had done what ROLLBACK TO
    /// cannot undo (changed a schema, loaded rows in batches) when the
    /// savepoint was taken.
    irreversible_steps: u64,
    /// The number the block's next deferred foreign key check was to get,
    /// and when it checked its deferrable keys (SET CONSTRAINTS).
    next_deferred_check: u64,
    constraint_mode: crate::plan::ConstraintMode,
    /// The settings (ROLLBACK TO puts them back, as PostgreSQL does).
    settings: std::sync::Arc<std::collections::BTreeMap<String, String>>,
    /// How many cursors the session had declared (ROLLBACK TO closes the
    /// later ones, as PostgreSQL does).
    cursors_declared: u64,
}

impl Session {
    /// `SAVEPOINT name`.
    pub(super) fn savepoint(&mut self, name: &ast::Ident, sink: &mut dyn Sink) -> Result<()> {
        self.check_block_in_progress("SAVEPOINT")?;
        let txn = self.txn.as_mut().expect("a transaction in a block");
        let mark = match txn.savepoint() {
            Ok(mark) => mark,
            Err(e) => return Err(self.fail_block(Error::from(e))),
        };
        let irreversible_steps = self.irreversible_steps;
        self.savepoints.push(Savepoint {
            name: ident(name),
            mark,
            irreversible_steps,
            next_deferred_check: self.next_deferred_check,
            constraint_mode: self.constraint_mode,
            settings: self.settings.clone(),
            cursors_declared: self.cursors_declared(),
        });
        sink.complete("SAVEPOINT")
    }

    /// `RELEASE [SAVEPOINT] name`: forgets it and every later one (their
    /// writes stay).
    pub(super) fn release_savepoint(&mut self, name: &ast::Ident, sink: &mut dyn Sink) -> Result<()> {
        self.check_block_in_progress("RELEASE SAVEPOINT")?;
        let at = self.find_savepoint(name)?;
        self.savepoints.truncate(at);
        if self.savepoints.is_empty() {
            // Nothing left to go back to: the transaction stops keeping
            // what its writes replace.
            let txn = self.txn.as_mut().expect("a transaction in a block");
            if let Err(e) = txn.forget_savepoints() {
                return Err(self.fail_block(Error::from(e)));
            }
        }
        sink.complete("RELEASE")
    }

    /// `ROLLBACK TO [SAVEPOINT] name`: undoes the writes since it and
    /// leaves the block in progress, failed or not.
    pub(super) fn rollback_to_savepoint(&mut self, name: &ast::Ident, sink: &mut dyn Sink) -> Result<()> {
        if self.status == TxnStatus::Idle {
            return sql_err!(NoActiveSqlTransaction, "ROLLBACK TO SAVEPOINT can only be used in transaction blocks");
        }
        let at = self.find_savepoint(name)?;
        let savepoint = self.savepoints[at].clone();
        if let Some(why) = &self.txn_lost {
            let e = Error::new(
                SqlState::SerializationFailure,
                format!("the transaction ended ({why}): ROLLBACK TO SAVEPOINT cannot go back into it; roll it back"),
            );
            return Err(self.fail_block(e));
        }
        if self.irreversible_steps > savepoint.irreversible_steps {
            let e = Error::new(
                SqlState::FeatureNotSupported,
                format!(
                    "the transaction changed a schema or loaded rows in batches after savepoint \"{}\", which \
                     ROLLBACK TO SAVEPOINT cannot undo; roll the transaction back",
                    savepoint.name
                ),
            );
            return Err(self.fail_block(e));
        }
        let txn = self.txn.as_mut().expect("a transaction in a block");
        if let Err(e) = txn.rollback_to(savepoint.mark) {
            return Err(self.fail_block(Error::from(e)));
        }
        self.savepoints.truncate(at + 1);
        self.deferred_checks.retain(|(n, _)| *n < savepoint.next_deferred_check);
        self.constraint_mode = savepoint.constraint_mode;
        self.settings = savepoint.settings;
        self.close_cursors_since(savepoint.cursors_declared);
        self.status = TxnStatus::InBlock;
        sink.complete("ROLLBACK")
    }

    /// Refuses `statement` outside a block (25P01) and in a failed one
    /// (25P02).
    fn check_block_in_progress(&self, statement: &str) -> Result<()> {
        match self.status {
            TxnStatus::Idle => sql_err!(NoActiveSqlTransaction, "{statement} can only be used in transaction blocks"),
            TxnStatus::Failed => in_failed_block(),
            TxnStatus::InBlock => Ok(()),
        }
    }

    /// Where the newest savepoint called `name` is; else the block fails
    /// with 3B001.
    fn find_savepoint(&mut self, name: &ast::Ident) -> Result<usize> {
        let name = ident(name);
        match self.savepoints.iter().rposition(|s| s.name == name) {
            Some(at) => Ok(at),
            None => Err(self.fail_block(Error::new(
                SqlState::InvalidSavepointSpecification,
                format!("savepoint \"{name}\" does not exist"),
            ))),
        }
    }

    /// A statement of the block failed with `e`: the block is failed and,
    /// if `e` ended the transaction itself, lost to ROLLBACK TO. Returns `e`.
    pub(super) fn fail_block(&mut self, e: Error) -> Error {
        self.status = TxnStatus::Failed;
        if ends_transaction(&e) && self.txn_lost.is_none() {
            self.txn_lost = Some(e.message.clone());
        }
        e
    }
}

/// Does an error in this state mean the transaction itself ended at the
/// servers (or may have), not only the statement?
fn ends_transaction(e: &Error) -> bool {
    if e.state == SqlState::LockNotAvailable && e.message.starts_with(crate::exec::NO_WAIT_REFUSAL) {
        // NOWAIT's refusal: the read was answered, and took no lock.
        return false;
    }
    matches!(
        e.state,
        SqlState::SerializationFailure
            | SqlState::DeadlockDetected
            | SqlState::StatementCompletionUnknown
            | SqlState::SystemError
            // A cancelled read (or one given up on at `lock_timeout`)
            // may yet take its lock: the transaction cannot commit
            // (`client::Txn`'s abandoned reads).
            | SqlState::QueryCanceled
            | SqlState::LockNotAvailable
    )
}
