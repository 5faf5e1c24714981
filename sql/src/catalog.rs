//! The catalog: tables, columns and indexes, stored in the database itself.
//!
//! A table's descriptor is one key-value pair, JSON-encoded, in a system
//! table; its name points at its id in another; ids come from a counter.
//!
//! ```text
//!   /Table/1/1/<table id>  -> TableDesc {id, name, columns, indexes, ...}
//!   /Table/2/1/'<name>'    -> <table id>
//!   /Table/3/1             -> the next table id (user tables start at 100)
//! ```
//!
//! Statements read the descriptors they need in their own transaction
//! (or use a lease instead: below), and DDL writes them in its own, so
//! the catalog changes transactionally with everything else: a DDL
//! statement inside BEGIN is rolled back with it, and a read-only
//! transaction at timestamp `t` sees the schema as of `t`. That also
//! keeps rows and index entries consistent under concurrent DDL and DML:
//! a read-write statement either reads (and in SpanDB so share-locks) the
//! descriptor of every table it writes, while DDL writes (so exclusively
//! locks) it, and the two serialize; or it uses a lease and commits before
//! the lease ends ("Writers", below). Either way a write never uses an
//! index set that is not the one in force at its commit.
//!
//! Column and index ids are per table and never reused, so a row encoded
//! before `DROP COLUMN c` and `ADD COLUMN c` cannot be misread.
//!
//! # Leases: read-only statements without a descriptor read
//!
//! Reading a descriptor per statement would double the cost of a point
//! SELECT (two round trips, the catalog's shard and the row's). So a
//! gateway keeps the descriptors its read-only statements fetched
//! ([`Leases`]) and uses one without reading it again for a while — F1's
//! and CockroachDB's leased schema, made safe by making schema changes
//! wait instead of readers:
//!
//! ```text
//!   fetch at f (a strong read: f >= the real time the fetch began)
//!   use for a statement whose first read is at t < f + LEASE
//!
//!   DDL on table T:  drain ── commit c1 (T.draining = true; nothing else)
//!                    wait LEASE (after c1 is acknowledged)
//!                    change ─ commit c2 (the real change; draining = false)
//! ```
//!
//! A gateway whose copy of T is stale fetched it before the drain, so
//! `f < c1`, and uses it only for reads at `t < f + LEASE < c1 + LEASE`,
//! while the change commits at `c2 > c1 + LEASE` (it starts after real
//! time `c1 + LEASE`, and SpanDB's commit timestamps are not below the
//! real time they are taken at). Between `c1` and `c2` the schema is the
//! same as before `c1`, so a stale copy is never used at a timestamp
//! where the schema differs from it. A draining descriptor is never
//! cached (statements read it, exactly, in their own transaction), and
//! the change checks that T is still in the drain it waited out
//! (`drain_epoch`); if another change cleared it meanwhile it fails with
//! 40001 and is run again.
//!
//! Snapshot reads (`AS OF SYSTEM TIME`) read the schema of their
//! timestamp. The cost moves to DDL: every change to an existing table
//! waits [`limits::DESCRIPTOR_LEASE_NS`].
//!
//! # Renewal: leases stay young
//!
//! A lease is handed out only in the first half of its life (a statement
//! needs room to finish before it ends). Left to age, every statement
//! after the half would read the descriptor in its own transaction — a
//! writer under a lock, making the catalog's shard a participant of its
//! commit — until one of them committed and leased it again: a burst of
//! catalog reads and two-phase commits on every table every half lease.
//! So the first statement of a gateway to find a lease older than
//! [`limits::LEASE_RENEWAL_AGE_NS`] first fetches its descriptor again, by
//! itself: a strong read-only transaction, lock-free, whose timestamp
//! (the new lease's start) is no earlier than the fetch, as a lease's
//! must be (a linearizable read at the leader would do but for its
//! timestamp, the shard's last applied one, which lags on an idle shard
//! and would start the lease in the past). One session per lease renews
//! ([`Leases::claim_renewals`]), the others go on with the current lease.
//! Only a lease some statement asked for since it was taken is renewed:
//! one of a table no longer used ages out.
//! A draining descriptor is not leased, so a drain is waited out as
//! before.
//!
//! # Writers: leases with a deadline
//!
//! Reading (and locking) the descriptor per statement costs a read-write
//! statement a round trip to the catalog's shard before its row reads,
//! and makes that shard a participant of every commit. So writers use
//! leases too, under F1's rule: a transaction that planned a statement
//! from a descriptor leased until `e` must happen before `e` — its locking
//! reads granted while the server's `TT.now().latest < e`, its commit
//! timestamp below `e` ([`Transaction::set_deadline`]; the server aborts
//! it otherwise, retryably). With the drain above, `e = f + LEASE < c1 +
//! LEASE < c2`: the writer commits while the schema is still the one it
//! planned from.
//!
//! ```text
//!   BEGIN
//!   UPDATE t ...     t leased until e: deadline e (no catalog read)
//!   SELECT ... t     same lease
//!   COMMIT           commit timestamp < e, checked by the coordinator
//! ```
//!
//! - A writer fills leases without extra reads: a descriptor it read
//!   under a lock is current at its commit timestamp `c` (a change would
//!   have waited for the lock, and commits above `c`), so it is leased
//!   from `c` once the transaction commits.
//! - A block close to its deadline (a statement or COMMIT starting less
//!   than [`limits::WRITER_DEADLINE_MARGIN_NS`] before it) reads the
//!   leased descriptors under locks instead and lifts the deadline; a
//!   version that changed meanwhile fails it with 40001. Slow blocks pay
//!   a round trip, not an abort. So does a statement that runs into the
//!   margin itself, before its next read ([`DeadlineLifting`]): a big
//!   UPDATE outlasting the lease would otherwise fail every time it ran.
//!   And so does a statement of the block that is
//!   not DML, before it runs, whatever the time left: a schema change can
//!   outlast the deadline by itself (a CREATE TABLE waiting for its
//!   table's split on a busy machine did).
//! - A transaction that ran anything but SELECT, INSERT, UPDATE or DELETE
//!   plans from no lease after it (it may have changed a schema its
//!   leases predate) and leases nothing.
//! - The other descriptor changes keep this safe: a backfilled index
//!   turning public changes nothing writers do (they maintain write-only
//!   indexes too); a failed backfill drains before dropping its index;
//!   an abandoned rewrite only makes writes possible again, so a writer
//!   with the older descriptor refuses them (55006) until its lease ends.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::encoding::{self, Direction};
use crate::error::{Error, Result, SqlState};
use crate::kv::{Committed, Engine, KvError, Mode, Pair, Timestamp, Transaction};
use crate::limits;
use crate::sql_err;
use crate::types::DataType;

use crate::keyspace::{COUNTERS_TABLE, DESCRIPTORS_TABLE, NAMES_TABLE};

/// The first id a user table gets.
pub const FIRST_USER_TABLE_ID: u32 = 100;
/// Every table's primary index has this id.
pub const PRIMARY_INDEX_ID: u32 = 1;
/// The name of the hidden row id column of a table without a primary key.
pub const ROWID_COLUMN: &str = "rowid";

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDesc {
    pub id: u32,
    pub name: String,
    pub data_type: DataType,
    pub nullable: bool,
    /// The DEFAULT expression, as SQL text (bound when used).
    pub default: Option<String>,
    /// The hidden row id: not in `SELECT *`, filled in by INSERT.
    pub hidden: bool,
    /// What rows written before the column was added hold in it: its
    /// DEFAULT then, as a row value of this column alone (PostgreSQL's
    /// `attmissingval`: ADD COLUMN with a DEFAULT rewrites nothing). Rows
    /// written since hold the column, NULLs written out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<u8>>,
    /// GENERATED ALWAYS AS IDENTITY: INSERT may not give it a value
    /// (unless OVERRIDING SYSTEM VALUE), nor UPDATE set it but to DEFAULT
    /// (428C9).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity_always: bool,
    /// The sequence (its id) an identity added by ALTER TABLE ... ADD
    /// GENERATED takes its values from: the column owns it, so it goes
    /// with the column or the table, and DROP SEQUENCE refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_sequence: Option<u32>,
    /// COMMENT ON COLUMN (pg_description, psql's `\d+`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// An index: the primary one (rows) or a secondary one (pointers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDesc {
    pub id: u32,
    pub name: String,
    pub unique: bool,
    /// Key columns (column ids), each with its direction.
    pub columns: Vec<(u32, Direction)>,
    /// Being backfilled (F1's write-only state): writers keep it (and its
    /// uniqueness), readers do not use it yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub write_only: bool,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDesc {
    pub id: u32,
    pub name: String,
    /// In declaration order (the order of `SELECT *`).
    pub columns: Vec<ColumnDesc>,
    /// The primary index (id [`PRIMARY_INDEX_ID`]).
    pub primary: IndexDesc,
    pub indexes: Vec<IndexDesc>,
    pub next_column_id: u32,
    pub next_index_id: u32,
    /// Bumped by every change; a statement planned against one version
    /// must not run against another.
    pub version: u64,
    /// A schema change is waiting out leases on this table (module docs);
    /// nobody caches it meanwhile.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// Counts drains, so a change can tell that the drain it waited for
    /// is still the one in force.
    #[serde(default)]
    pub drain_epoch: u64,
    /// The table is being rewritten into this one (ALTER TABLE ADD
    /// PRIMARY KEY, in batches): readers read this descriptor's rows,
    /// writers are refused (55006) until the rewrite ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Box<TableDesc>>,
    /// A view: the query that defines it (SQL text, planned where the view
    /// is used); its `columns` are the query's, named as the view names
    /// them. A view has no rows and no indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// CHECK constraints, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckDesc>,
    /// FOREIGN KEY constraints of this table, in declaration order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub foreign_keys: Vec<ForeignKeyDesc>,
    /// The foreign keys of tables that reference this one (each is also
    /// in its table's `foreign_keys`): writers of this table check them
    /// without reading the catalog (`constraints`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referenced_by: Vec<Reference>,
    /// COMMENT ON TABLE (or VIEW): pg_description, psql's `\dt+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A sequence (`sequence`: what it is, and its functions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceDesc {
    pub id: u32,
    pub name: String,
    /// `smallint`, `integer` or `bigint` (`AS`): bounds `min` and `max`.
    pub data_type: DataType,
    pub start: i64,
    pub increment: i64,
    pub min: i64,
    pub max: i64,
    /// How many values one `nextval` transaction takes (`sequence`).
    pub cache: i64,
    pub cycle: bool,
    /// The column that owns it (its table's name, its id): `ALTER
    /// SEQUENCE ... OWNED BY`, or an identity added by ALTER TABLE. It
    /// goes with that column or its table; `pg_get_serial_sequence` names
    /// it. By name, not table id: a table keeps its name (RENAME TABLE
    /// updates it) where its id changes (TRUNCATE, ADD PRIMARY KEY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<(String, u32)>,
}

/// A FOREIGN KEY constraint: every row whose `columns` are all non-NULL
/// has a row in `table` whose `referenced` columns hold the same values
/// (MATCH SIMPLE). `referenced` are the columns of `table`'s primary key
/// or of one of its unique indexes. Tables are named, not numbered:
/// TRUNCATE and ADD PRIMARY KEY give a table a new id, not a new name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKeyDesc {
    pub name: String,
    /// Column ids of this table.
    pub columns: Vec<u32>,
    /// The referenced table.
    pub table: String,
    /// Column ids of the referenced table, one per column of `columns`.
    pub referenced: Vec<u32>,
    /// What deleting a referenced row does (`ON DELETE`).
    pub on_delete: ReferentialAction,
    /// What changing a referenced key does (`ON UPDATE`).
    pub on_update: ReferentialAction,
    /// DEFERRABLE: SET CONSTRAINTS may put its checks off to COMMIT.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferrable: bool,
    /// INITIALLY DEFERRED: inside a transaction block its checks run at
    /// COMMIT, not at the end of each statement (`session`, "Deferred
    /// checks").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferred: bool,
}

/// A foreign key referencing a table: the referencing table and the
/// constraint's name there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    pub table: String,
    pub constraint: String,
}

/// What a change to a referenced row does to the rows referencing it,
/// at the end of the statement that made it. NO ACTION and RESTRICT both
/// refuse it if a row still references the old key (PostgreSQL checks
/// RESTRICT at once, NO ACTION at the end; with no deferred constraints
/// they differ only in rare statements that take a key away and give it
/// back); the others change the referencing rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferentialAction {
    NoAction,
    Restrict,
    /// The referencing rows are deleted (ON DELETE), or take the new key
    /// (ON UPDATE).
    Cascade,
    SetNull,
    SetDefault,
}

impl ReferentialAction {
    /// `pg_constraint.confdeltype`'s letter.
    pub fn code(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "a",
            ReferentialAction::Restrict => "r",
            ReferentialAction::Cascade => "c",
            ReferentialAction::SetNull => "n",
            ReferentialAction::SetDefault => "d",
        }
    }

    /// As SQL says it.
    pub fn sql(self) -> &'static str {
        match self {
            ReferentialAction::NoAction => "NO ACTION",
            ReferentialAction::Restrict => "RESTRICT",
            ReferentialAction::Cascade => "CASCADE",
            ReferentialAction::SetNull => "SET NULL",
            ReferentialAction::SetDefault => "SET DEFAULT",
        }
    }

    /// Whether it changes referencing rows (rather than refusing).
    pub fn writes(self) -> bool {
        matches!(self, ReferentialAction::Cascade | ReferentialAction::SetNull | ReferentialAction::SetDefault)
    }
}

/// A CHECK constraint: its name, its expression as SQL text over the
/// table's columns (bound when a write is planned, as a DEFAULT is), and
/// the ids of the columns it reads (dropping one drops it, as in
/// PostgreSQL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckDesc {
    pub name: String,
    pub expr: String,
    pub columns: Vec<u32>,
}

impl TableDesc {
    pub fn column(&self, name: &str) -> Option<(usize, &ColumnDesc)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name == name)
    }

    /// A new index id (never one used before), or 54000 once the table
    /// has used [`crate::limits::INDEX_IDS_MAX`].
    pub fn allocate_index_id(&mut self) -> Result<u32> {
        let id = self.next_index_id;
        if id > crate::limits::INDEX_IDS_MAX {
            return crate::sql_err!(
                ProgramLimitExceeded,
                "table \"{}\" has had {} indexes, the most a table may have over its life",
                self.name,
                crate::limits::INDEX_IDS_MAX
            );
        }
        self.next_index_id += 1;
        Ok(id)
    }

    pub fn column_by_id(&self, id: u32) -> Option<(usize, &ColumnDesc)> {
        self.columns.iter().enumerate().find(|(_, c)| c.id == id)
    }

    /// Positions (in `columns`) of an index's key columns.
    pub fn key_positions(&self, index: &IndexDesc) -> Result<Vec<usize>> {
        index
            .columns
            .iter()
            .map(|(id, _)| {
                self.column_by_id(*id).map(|(i, _)| i).ok_or_else(|| {
                    Error::new(SqlState::InternalError, format!("index {} names a missing column {id}", index.name))
                })
            })
            .collect()
    }

    pub fn index(&self, id: u32) -> Option<&IndexDesc> {
        if id == PRIMARY_INDEX_ID {
            return Some(&self.primary);
        }
        self.indexes.iter().find(|i| i.id == id)
    }

    /// Whether the primary key is the hidden row id.
    /// A table named `name` with no columns yet, its primary index named
    /// as PostgreSQL names it (`<name>_pkey`); id 0 until created.
    pub fn new(name: &str) -> TableDesc {
        TableDesc {
            id: 0,
            name: name.to_string(),
            columns: Vec::new(),
            primary: IndexDesc {
                id: PRIMARY_INDEX_ID,
                name: format!("{name}_pkey"),
                unique: true,
                columns: vec![],
                write_only: false,
            },
            indexes: Vec::new(),
            next_column_id: 1,
            next_index_id: PRIMARY_INDEX_ID + 1,
            version: 1,
            draining: false,
            drain_epoch: 0,
            rewrite: None,
            view: None,
            checks: Vec::new(),
            foreign_keys: Vec::new(),
            referenced_by: Vec::new(),
            comment: None,
        }
    }

    /// Refuses a view where a table is needed (42809).
    pub fn check_table(&self) -> Result<()> {
        if self.view.is_some() {
            return Err(Error::new(SqlState::WrongObjectType, format!("\"{}\" is not a table", self.name)));
        }
        Ok(())
    }

    /// Refuses writes while the table is rewritten (55006).
    pub fn check_writable(&self) -> Result<()> {
        if self.rewrite.is_some() {
            return sql_err!(
                ObjectInUse,
                "table \"{}\" is being rewritten by ALTER TABLE; it takes writes again when that ends",
                self.name
            );
        }
        Ok(())
    }

    /// The primary key, or a unique index in force, whose columns are
    /// exactly `columns` (in any order): what a foreign key referencing
    /// them needs. `except` leaves one index out (one being dropped).
    pub fn unique_key_on(&self, columns: &[u32], except: Option<u32>) -> Option<&IndexDesc> {
        std::iter::once(&self.primary).chain(self.indexes.iter()).find(|i| {
            Some(i.id) != except
                && i.unique
                && !i.write_only
                && i.columns.len() == columns.len()
                && i.columns.iter().all(|(c, _)| columns.contains(c))
        })
    }

    pub fn has_hidden_rowid(&self) -> bool {
        self.columns.iter().any(|c| c.hidden)
    }
}

fn descriptor_key(table_id: u32) -> Vec<u8> {
    let mut key = encoding::index_prefix(DESCRIPTORS_TABLE, 1);
    encoding::encode_key_value(&mut key, &crate::Value::Int8(table_id.into()), Direction::Asc);
    key
}

fn name_key(name: &str) -> Vec<u8> {
    let mut key = encoding::index_prefix(NAMES_TABLE, 1);
    encoding::encode_key_value(&mut key, &crate::Value::Text(name.to_string()), Direction::Asc);
    key
}

fn counter_key() -> Vec<u8> {
    encoding::index_prefix(COUNTERS_TABLE, 1)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(SqlState::InternalError, format!("corrupt catalog entry ({what}): {e}"))
}

/// Table names to ids, remembered by a session so a statement reads one
/// catalog entry (the descriptor, by id) instead of two. Safe without
/// invalidation: ids are never reused, and a descriptor read by a
/// remembered id is used only if it still carries the name (so a dropped,
/// truncated or recreated table, or a read at a time before it existed,
/// falls back to the name).
#[derive(Debug, Default)]
pub struct NameCache {
    ids: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl NameCache {
    fn get(&self, name: &str) -> Option<u32> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied()
    }

    fn put(&self, name: &str, id: u32) {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.len() >= limits::NAME_CACHE_ENTRIES_MAX {
            ids.clear();
        }
        ids.insert(name.to_string(), id);
    }
}

/// Descriptors this gateway fetched for read-only statements, each with
/// the timestamp it was read at (module docs, "Leases"). Shared by the
/// sessions of a gateway.
#[derive(Debug, Default)]
pub struct Leases {
    entries: std::sync::Mutex<std::collections::HashMap<String, Lease>>,
}

#[derive(Debug, Clone)]
struct Lease {
    desc: Arc<TableDesc>,
    /// When the lease ends: the fetch's read timestamp plus the lease.
    expires: Timestamp,
    /// When a session took on renewing it ([`Leases::claim_renewals`]),
    /// if one did.
    renewal_claimed: Option<Timestamp>,
    /// A statement asked for it since it was leased: only such a lease is
    /// renewed (the others age out).
    wanted: bool,
}

impl Leases {
    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Lease>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Leases {
    /// Remembers `desc`, current at `ts`: read there by a strong read, or
    /// read under a lock by a transaction that committed at `ts`.
    pub fn put(&self, name: &str, desc: &Arc<TableDesc>, ts: Timestamp) {
        if desc.draining {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= limits::NAME_CACHE_ENTRIES_MAX {
            entries.clear();
        }
        let expires = ts.saturating_add(limits::DESCRIPTOR_LEASE_NS);
        entries.insert(name.to_string(), Lease { desc: desc.clone(), expires, renewal_claimed: None, wanted: false });
    }

    /// The leases at `now` old enough to renew (module docs, "Renewal")
    /// that a statement asked for since they were leased, as `(name,
    /// table id)`, each claimed for the caller: another caller gets it
    /// again only once this claim is as old as the renewal age (a renewal
    /// that failed).
    pub fn claim_renewals(&self, now: Timestamp) -> Vec<(String, u32)> {
        let mut due = Vec::new();
        for (name, lease) in self.entries().iter_mut() {
            let renew_from = lease.expires.saturating_sub(limits::DESCRIPTOR_LEASE_NS - limits::LEASE_RENEWAL_AGE_NS);
            let claim_lapsed =
                lease.renewal_claimed.is_none_or(|claimed| claimed.saturating_add(limits::LEASE_RENEWAL_AGE_NS) <= now);
            if lease.wanted && now >= renew_from && claim_lapsed {
                lease.renewal_claimed = Some(now);
                due.push((name.clone(), lease.desc.id));
            }
        }
        due
    }
}

/// One statement's use of [`Leases`]: the lease entries it used before
/// its transaction fixed a timestamp (or, in a read-write transaction,
/// at all) bound that timestamp from above.
pub struct LeaseUse<'a> {
    pub leases: &'a Leases,
    /// The engine's clock when the statement started.
    pub now: Timestamp,
    /// The earliest end of a lease used before the first read (the first
    /// read must come back below it: [`LeaseChecked`]), or by a writer
    /// (its transaction must happen before it: [`Transaction::set_deadline`]).
    pub deadline: Arc<std::sync::Mutex<Option<Timestamp>>>,
    /// A writer's use: the leased descriptors it planned from, and the
    /// ones it read under locks ([`WriterLeases`]).
    writer: std::sync::Mutex<WriterLeases>,
    /// `(name, table id, version)` of every leased descriptor handed out.
    handed_out: std::sync::Mutex<Vec<(String, u32, u64)>>,
}

/// What a read-write transaction's statements did with [`Leases`] (module
/// docs, "Writers"), kept by the session for the transaction.
#[derive(Debug, Default)]
pub struct WriterLeases {
    /// The transaction must happen before it (the earliest end of a lease
    /// it used), unless it reads those descriptors under locks first.
    pub deadline: Option<Timestamp>,
    /// `(table id, version)` of every leased descriptor it used.
    pub used: std::collections::BTreeSet<(u32, u64)>,
    /// Descriptors it read under locks, by name: current at its commit
    /// timestamp, so leased from there.
    pub locked: Vec<(String, Arc<TableDesc>)>,
}

impl WriterLeases {
    /// Adds one statement's use.
    pub fn absorb(&mut self, statement: LeaseUse) {
        let deadline = *statement.deadline.lock().unwrap_or_else(|p| p.into_inner());
        let used = statement.writer.into_inner().unwrap_or_else(|p| p.into_inner());
        self.deadline = match (self.deadline, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.used.extend(used.used);
        self.locked.extend(used.locked);
    }

    /// Is the deadline less than [`limits::WRITER_DEADLINE_MARGIN_NS`]
    /// after `now`?
    pub fn near_deadline(&self, now: Timestamp) -> bool {
        self.deadline.is_some_and(|d| now.saturating_add(limits::WRITER_DEADLINE_MARGIN_NS) >= d)
    }

    /// Reads the leased descriptors it used under locks in `txn` and
    /// lifts the deadline (module docs, "Writers"): from then on they
    /// cannot change before the commit. One that changed since fails it
    /// (40001).
    pub fn lift(&mut self, txn: &mut dyn Transaction) -> Result<()> {
        if self.deadline.is_none() {
            return Ok(());
        }
        txn.set_deadline(None)?;
        self.deadline = None;
        for (id, version) in std::mem::take(&mut self.used) {
            match Catalog::table_by_id(txn, id)? {
                Some(desc) if desc.version == version => self.locked.push((desc.name.clone(), desc)),
                _ => {
                    return sql_err!(
                        SerializationFailure,
                        "a table's schema changed while this transaction used the schema it had cached; run the \
                         transaction again"
                    )
                }
            }
        }
        Ok(())
    }
}

/// The methods of a [`Transaction`] that watches the reads of the one it
/// wraps (`self.inner`) and passes everything else on; `$what` names it
/// in the refusal to commit (its owner commits the inner one).
macro_rules! delegate_writes {
    ($what:literal) => {
        fn mode(&self) -> Mode {
            self.inner.mode()
        }
        fn put(&mut self, key: &[u8], value: &[u8]) -> std::result::Result<(), KvError> {
            self.inner.put(key, value)
        }
        fn put_absent(&mut self, key: &[u8], value: &[u8]) -> std::result::Result<(), KvError> {
            self.inner.put_absent(key, value)
        }
        fn delete(&mut self, key: &[u8]) -> std::result::Result<(), KvError> {
            self.inner.delete(key)
        }
        fn commit(self: Box<Self>) -> std::result::Result<Committed, KvError> {
            Err(KvError::Invalid(concat!($what, " is committed by its owner").into()))
        }
        fn rollback(self: Box<Self>) -> std::result::Result<(), KvError> {
            Ok(())
        }
        fn read_ts(&self) -> Option<Timestamp> {
            self.inner.read_ts()
        }
        fn set_deadline(&mut self, deadline: Option<Timestamp>) -> std::result::Result<(), KvError> {
            self.inner.set_deadline(deadline)
        }
    };
}

/// A read-write transaction running one statement planned from leased
/// descriptors: before each read, if the deadline they set is near, it
/// lifts it ([`WriterLeases::lift`]), so a statement that takes longer
/// than what was left of the lease (a big UPDATE, a slow join) runs on
/// instead of failing at the deadline with 40001, which it would again
/// every time it ran.
pub struct DeadlineLifting<'t> {
    pub inner: &'t mut dyn Transaction,
    pub leases: &'t mut WriterLeases,
    /// Whose clock the deadline is measured by.
    pub engine: &'t dyn Engine,
    /// The statement's reads refuse a lock that is taken (`NOWAIT`); the
    /// descriptors it reads to lift the deadline wait for theirs.
    pub no_wait: bool,
}

impl DeadlineLifting<'_> {
    fn before_read(&mut self) -> std::result::Result<(), KvError> {
        if !self.leases.near_deadline(self.engine.now()) {
            return Ok(());
        }
        self.inner.set_lock_no_wait(false);
        let lifted = self.leases.lift(self.inner);
        self.inner.set_lock_no_wait(self.no_wait);
        lifted.map_err(|e| match e.state {
            SqlState::SerializationFailure => KvError::Retryable(e.message),
            // A cancel or timeout stays one (57014, 55P03).
            SqlState::QueryCanceled => KvError::Cancelled,
            SqlState::LockNotAvailable => KvError::LockTimeout,
            _ => KvError::Unavailable(e.message),
        })
    }
}

impl Transaction for DeadlineLifting<'_> {
    fn get(&mut self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, KvError> {
        self.before_read()?;
        self.inner.get(key)
    }
    fn get_for_update(&mut self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, KvError> {
        self.before_read()?;
        self.inner.get_for_update(key)
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        self.before_read()?;
        self.inner.scan(start, end, limit)
    }
    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        self.before_read()?;
        self.inner.scan_reverse(start, end, limit)
    }
    fn scan_unlocked(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        self.before_read()?;
        self.inner.scan_unlocked(start, end, limit)
    }
    fn scan_unlocked_reverse(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> std::result::Result<Vec<Pair>, KvError> {
        self.before_read()?;
        self.inner.scan_unlocked_reverse(start, end, limit)
    }
    delegate_writes!("a statement's transaction");
    fn set_lock_no_wait(&mut self, no_wait: bool) {
        self.no_wait = no_wait;
        self.inner.set_lock_no_wait(no_wait)
    }
    fn priority(&self) -> Option<crate::kv::Priority> {
        self.inner.priority()
    }
}

impl<'a> LeaseUse<'a> {
    pub fn new(leases: &'a Leases, now: Timestamp) -> LeaseUse<'a> {
        LeaseUse { leases, now, deadline: Arc::default(), writer: Default::default(), handed_out: Default::default() }
    }

    /// `(name, table id, version)` of every leased descriptor this use
    /// handed out so far.
    pub fn handed_out(&self) -> Vec<(String, u32, u64)> {
        self.handed_out.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the lease of `name` may be used by a statement whose
    /// timestamp is not fixed yet (a read-only one), or by a `writer`,
    /// and holds version `version` of table `id` (and if so, uses it: the
    /// deadline takes it in, and a writer's use is recorded).
    pub fn holds(&self, name: &str, id: u32, version: u64, writer: bool) -> bool {
        self.get(name, None, writer).is_some_and(|d| d.id == id && d.version == version)
    }

    /// The leased descriptor of `name`, if one may be used by a
    /// transaction whose timestamp is `read_ts` (None: not fixed yet), or
    /// by a `writer`.
    fn get(&self, name: &str, read_ts: Option<Timestamp>, writer: bool) -> Option<Arc<TableDesc>> {
        let lease = {
            let mut entries = self.leases.entries();
            let lease = entries.get_mut(name)?;
            lease.wanted = true;
            lease.clone()
        };
        match read_ts {
            Some(t) if !writer => {
                let desc = (t < lease.expires).then_some(lease.desc)?;
                let mut handed_out = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
                handed_out.push((name.to_string(), desc.id, desc.version));
                Some(desc)
            }
            // Not fixed yet, or a writer (whose commit comes later): the
            // first read, or the whole transaction, must happen before the
            // deadline; leave it room to.
            _ if self.now.saturating_add(limits::DESCRIPTOR_LEASE_NS / 2) < lease.expires => {
                let mut deadline = self.deadline.lock().unwrap_or_else(|p| p.into_inner());
                *deadline = Some(deadline.map_or(lease.expires, |d| d.min(lease.expires)));
                if writer {
                    let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
                    writer.used.insert((lease.desc.id, lease.desc.version));
                }
                let mut handed_out = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
                handed_out.push((name.to_string(), lease.desc.id, lease.desc.version));
                Some(lease.desc)
            }
            _ => None,
        }
    }

    /// Remembers `desc`, read under a lock by a writer, for its commit.
    fn read_under_lock(&self, name: &str, desc: &Arc<TableDesc>) {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer.locked.push((name.to_string(), desc.clone()));
    }
}

/// A read-only transaction that fails its first read (40001, so the
/// statement runs again and fetches afresh) when the read's timestamp is
/// not below the deadline of the leases the statement used.
pub struct LeaseChecked<'t> {
    pub inner: &'t mut dyn Transaction,
    pub deadline: Arc<std::sync::Mutex<Option<Timestamp>>>,
}

impl LeaseChecked<'_> {
    fn check(&self, first: bool) -> std::result::Result<(), KvError> {
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        match (first, deadline, self.inner.read_ts()) {
            (true, Some(deadline), Some(t)) if t >= deadline => Err(KvError::Retryable(format!(
                "a cached table descriptor's lease ended (at {deadline}) before the statement's first read (at {t})"
            ))),
            _ => Ok(()),
        }
    }
}

impl Transaction for LeaseChecked<'_> {
    fn get(&mut self, key: &[u8]) -> std::result::Result<Option<Vec<u8>>, KvError> {
        let first = self.inner.read_ts().is_none();
        let value = self.inner.get(key)?;
        self.check(first)?;
        Ok(value)
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        let first = self.inner.read_ts().is_none();
        let pairs = self.inner.scan(start, end, limit)?;
        self.check(first)?;
        Ok(pairs)
    }
    fn scan_reverse(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        let first = self.inner.read_ts().is_none();
        let pairs = self.inner.scan_reverse(start, end, limit)?;
        self.check(first)?;
        Ok(pairs)
    }
    fn scan_unlocked(&mut self, start: &[u8], end: &[u8], limit: usize) -> std::result::Result<Vec<Pair>, KvError> {
        let first = self.inner.read_ts().is_none();
        let pairs = self.inner.scan_unlocked(start, end, limit)?;
        self.check(first)?;
        Ok(pairs)
    }
    fn scan_unlocked_reverse(
        &mut self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> std::result::Result<Vec<Pair>, KvError> {
        let first = self.inner.read_ts().is_none();
        let pairs = self.inner.scan_unlocked_reverse(start, end, limit)?;
        self.check(first)?;
        Ok(pairs)
    }
    delegate_writes!("a lease-checked transaction");
    fn set_lock_no_wait(&mut self, no_wait: bool) {
        self.inner.set_lock_no_wait(no_wait)
    }
}

/// Reads and writes the catalog through a transaction.
pub struct Catalog;

impl Catalog {
    /// The table named `name`, if it exists.
    pub fn table(txn: &mut dyn Transaction, name: &str) -> Result<Option<Arc<TableDesc>>> {
        let Some(id) = txn.get(&name_key(name))? else {
            return Ok(None);
        };
        let id: u32 = serde_json::from_slice(&id).map_err(|e| corrupt("name", e))?;
        Self::table_by_id(txn, id)
    }

    /// The table named `name`, or 42P01.
    pub fn must_table(txn: &mut dyn Transaction, name: &str) -> Result<Arc<TableDesc>> {
        if let Some(desc) = Self::table(txn, name)? {
            return Ok(desc);
        }
        // (Looked for only once no table has the name.)
        if txn.get(&crate::keyspace::sequence_name_key(name))?.is_some() {
            return sql_err!(
                WrongObjectType,
                "\"{name}\" is a sequence, not a table; read it with currval('{name}') or nextval('{name}')"
            );
        }
        sql_err!(UndefinedTable, "relation \"{name}\" does not exist")
    }

    /// Like [`Catalog::must_table`], trying the id `names` remembers first.
    pub fn must_table_cached(txn: &mut dyn Transaction, name: &str, names: &NameCache) -> Result<Arc<TableDesc>> {
        if let Some(id) = names.get(name) {
            if let Some(desc) = Self::table_by_id(txn, id)? {
                if desc.name == name {
                    return Ok(desc);
                }
            }
        }
        let desc = Self::must_table(txn, name)?;
        names.put(name, desc.id);
        Ok(desc)
    }

    /// Like [`Catalog::must_table_cached`], using a lease when one may
    /// be used (module docs) and leasing what it reads.
    pub fn must_table_leased(
        txn: &mut dyn Transaction,
        name: &str,
        names: &NameCache,
        leases: &LeaseUse,
    ) -> Result<Arc<TableDesc>> {
        let writer = txn.mode() == Mode::ReadWrite;
        if let Some(desc) = leases.get(name, txn.read_ts(), writer) {
            return Ok(desc);
        }
        let desc = Self::must_table_cached(txn, name, names)?;
        match (writer, txn.read_ts()) {
            // Read under a lock: leased once the transaction commits.
            (true, _) => leases.read_under_lock(name, &desc),
            (false, Some(read_ts)) => leases.leases.put(name, &desc, read_ts),
            (false, None) => {}
        }
        Ok(desc)
    }

    /// Marks `desc` draining (module docs, "Leases"); returns the drain's
    /// epoch. A table already draining stays in the drain it is in.
    pub fn drain(txn: &mut dyn Transaction, desc: &TableDesc) -> Result<u64> {
        if desc.draining {
            return Ok(desc.drain_epoch);
        }
        let mut drained = desc.clone();
        drained.draining = true;
        drained.drain_epoch += 1;
        drained.version += 1;
        Self::write_table(txn, &drained)?;
        Ok(drained.drain_epoch)
    }

    /// Ends drain `epoch` of table `id` if nothing else has (a schema
    /// change that failed, or changed nothing, leaves its drain behind).
    pub fn end_drain(txn: &mut dyn Transaction, id: u32, epoch: u64) -> Result<()> {
        match Self::table_by_id(txn, id)? {
            Some(desc) if desc.draining && desc.drain_epoch == epoch => {
                let mut desc = (*desc).clone();
                Self::update_table(txn, &mut desc)
            }
            _ => Ok(()),
        }
    }

    pub fn table_by_id(txn: &mut dyn Transaction, id: u32) -> Result<Option<Arc<TableDesc>>> {
        let Some(bytes) = txn.get(&descriptor_key(id))? else {
            return Ok(None);
        };
        let desc: TableDesc = serde_json::from_slice(&bytes).map_err(|e| corrupt("descriptor", e))?;
        Ok(Some(Arc::new(desc)))
    }

    /// Every table, by name.
    pub fn tables(txn: &mut dyn Transaction) -> Result<Vec<Arc<TableDesc>>> {
        let prefix = encoding::index_prefix(DESCRIPTORS_TABLE, 1);
        let mut out = Vec::new();
        for (_, bytes) in crate::kv::scan_prefix(txn, &prefix, limits::SCAN_PAGE_ROWS)? {
            let desc: TableDesc = serde_json::from_slice(&bytes).map_err(|e| corrupt("descriptor", e))?;
            out.push(Arc::new(desc));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every table and view as committed, read lock-free through
    /// `engine`, with `txn`'s own version of each table in `own` (those
    /// its transaction created, changed or drained) in their place.
    ///
    /// For a transaction block that must look the whole catalog over (a
    /// new index's name, the views reading a table, `pg_class`): reading
    /// every descriptor in its own transaction would lock them all, and a
    /// later schema change of another table in the block drains that
    /// table first in a transaction of its own, which would wait for the
    /// block's lock while the block waits for it (until the wait gives up
    /// with 40001, on every retry). The price: what others commit
    /// meanwhile is not locked out (two sessions can each create an index
    /// of one name, on different tables).
    pub fn tables_without_locks(
        engine: &dyn Engine,
        txn: &mut dyn Transaction,
        own: &std::collections::BTreeSet<u32>,
    ) -> Result<Vec<Arc<TableDesc>>> {
        committed_and_own(engine, txn, own, Self::tables, Self::table_by_id, |t| (t.id, t.name.as_str()))
    }

    /// The table that has an index named `name`.
    pub fn table_of_index(txn: &mut dyn Transaction, name: &str) -> Result<Option<(Arc<TableDesc>, u32)>> {
        for table in Self::tables(txn)? {
            if let Some(index) = table.indexes.iter().find(|i| i.name == name) {
                let id = index.id;
                return Ok(Some((table, id)));
            }
        }
        Ok(None)
    }

    /// Allocates a table id.
    pub fn next_table_id(txn: &mut dyn Transaction) -> Result<u32> {
        let key = counter_key();
        let next: u32 = match txn.get(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt("counter", e))?,
            None => FIRST_USER_TABLE_ID,
        };
        let after =
            next.checked_add(1).ok_or_else(|| Error::new(SqlState::ProgramLimitExceeded, "out of table ids"))?;
        txn.put(&key, &serde_json::to_vec(&after).map_err(|e| corrupt("counter", e))?)?;
        Ok(next)
    }

    /// Creates `desc` (its id already allocated); 42P07 if the name is taken.
    pub fn create_table(txn: &mut dyn Transaction, desc: &TableDesc) -> Result<()> {
        if Self::table(txn, &desc.name)?.is_some() {
            return sql_err!(DuplicateTable, "relation \"{}\" already exists", desc.name);
        }
        txn.put(&name_key(&desc.name), &serde_json::to_vec(&desc.id).map_err(|e| corrupt("name", e))?)?;
        Self::write_table(txn, desc)
    }

    /// The tables referencing `tables`, and those referencing them, and
    /// so on, that are not among them, in the order found.
    pub fn referencing_closure(txn: &mut dyn Transaction, tables: &[String]) -> Result<Vec<String>> {
        let mut found: Vec<String> = Vec::new();
        let mut next: Vec<String> = tables.to_vec();
        while let Some(name) = next.pop() {
            let Some(desc) = Catalog::table(txn, &name)? else { continue };
            for r in &desc.referenced_by {
                if !tables.contains(&r.table) && !found.contains(&r.table) {
                    found.push(r.table.clone());
                    next.push(r.table.clone());
                }
            }
        }
        Ok(found)
    }

    /// Gives a table (whose descriptor the caller changed otherwise as
    /// the new name needs) the name `to`, which must be free.
    pub fn rename_table(txn: &mut dyn Transaction, desc: &mut TableDesc, to: &str) -> Result<()> {
        txn.delete(&name_key(&desc.name))?;
        txn.put(&name_key(to), &serde_json::to_vec(&desc.id).map_err(|e| corrupt("name", e))?)?;
        desc.name = to.to_string();
        Self::update_table(txn, desc)
    }

    /// Writes a changed descriptor (bumping its version; a change ends
    /// the drain it ran in).
    pub fn update_table(txn: &mut dyn Transaction, desc: &mut TableDesc) -> Result<()> {
        desc.version += 1;
        desc.draining = false;
        Self::write_table(txn, desc)
    }

    fn write_table(txn: &mut dyn Transaction, desc: &TableDesc) -> Result<()> {
        let bytes = serde_json::to_vec(desc).map_err(|e| corrupt("descriptor", e))?;
        txn.put(&descriptor_key(desc.id), &bytes)?;
        Ok(())
    }

    /// Removes a table's descriptor and name; its rows are left to the
    /// sweeper ([`crate::sweep`], a job recorded in `txn`). A rewrite
    /// under way is the caller's: it becomes the table, or is dropped too.
    pub fn drop_table(txn: &mut dyn Transaction, desc: &TableDesc) -> Result<()> {
        txn.delete(&name_key(&desc.name))?;
        txn.delete(&descriptor_key(desc.id))?;
        if desc.view.is_none() {
            crate::sweep::schedule_table(txn, desc.id)?;
        }
        Ok(())
    }
}

/// Every descriptor `all` reads, as committed and without locks, with
/// the transaction's own (`own`: ids it created, changed or dropped) as
/// it sees them (`by_id` in `txn`), by name (`key`: a descriptor's id and
/// name). Tables and sequences are read so.
pub(crate) fn committed_and_own<T>(
    engine: &dyn Engine,
    txn: &mut dyn Transaction,
    own: &std::collections::BTreeSet<u32>,
    all: fn(&mut dyn Transaction) -> Result<Vec<T>>,
    by_id: fn(&mut dyn Transaction, u32) -> Result<Option<T>>,
    key: fn(&T) -> (u32, &str),
) -> Result<Vec<T>> {
    let mut snapshot = engine.begin(crate::kv::Mode::ReadOnly)?;
    let committed = all(snapshot.as_mut());
    let _ = snapshot.rollback();
    let mut found: std::collections::BTreeMap<u32, T> = committed?.into_iter().map(|d| (key(&d).0, d)).collect();
    for &id in own {
        match by_id(txn, id)? {
            Some(d) => found.insert(id, d),
            None => found.remove(&id),
        };
    }
    let mut found: Vec<T> = found.into_values().collect();
    found.sort_by(|a, b| key(a).1.cmp(key(b).1));
    Ok(found)
}

/// The drains the session waited out before a schema change, and the
/// tables its transaction owns: created (nobody else sees them yet, so
/// they need no drain) or already changed (it holds their descriptors).
#[derive(Debug, Default, Clone)]
pub struct Drains {
    /// Table id -> the drain epoch waited out.
    pub epochs: std::collections::HashMap<u32, u64>,
    pub owned: std::collections::HashSet<u32>,
    /// The sequences the transaction created or dropped (`sequence`): in
    /// its writes alone until it commits.
    pub sequences: std::collections::HashSet<u32>,
}

impl Drains {
    /// The tables the transaction created, changed or drained, and the
    /// sequences it created or dropped (ids from one counter).
    pub fn own(&self) -> std::collections::BTreeSet<u32> {
        self.epochs.keys().chain(&self.owned).chain(&self.sequences).copied().collect()
    }

    /// Refuses to change `desc` unless its leases were waited out and no
    /// other change ended that drain since (40001, the statement runs
    /// again with a new drain).
    pub(crate) fn check(&mut self, desc: &TableDesc) -> Result<()> {
        if self.owned.contains(&desc.id) {
            return Ok(());
        }
        match self.epochs.get(&desc.id) {
            Some(&epoch) if desc.draining && desc.drain_epoch == epoch => {
                self.owned.insert(desc.id);
                Ok(())
            }
            _ => sql_err!(
                SerializationFailure,
                "table \"{}\" changed while this schema change waited for its descriptor leases to end",
                desc.name
            ),
        }
    }
}

/// Work a schema change leaves for after its own transaction commits,
/// done in batches of transactions of their own (`backfill`), so no
/// single transaction has to hold a whole table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// Fill write-only index `index` of table `table`, then make it public.
    Backfill { table: u32, index: u32 },
    /// Copy table `table`'s rows into its `rewrite`, then switch to it.
    Rewrite { table: u32 },
}
