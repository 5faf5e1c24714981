//! SpanDB's SQL layer: PostgreSQL-flavoured SQL on SpanDB's transactions.
//!
//! ```text
//!   text ─parser─> statements ─planner (binds names and types against
//!        the catalog, read in the statement's transaction)─> Plan
//!        ─optimizer─> Plan ─exec/write/ddl─> rows ─> Sink
//!                                  │
//!                                  └─ kv::Transaction: get / scan page /
//!                                     put / delete / commit / rollback
//! ```
//!
//! The crate does no I/O and reads no clock: it runs over the
//! [`kv::Engine`]/[`kv::Transaction`] interface it defines, which the
//! `cli` binary implements over SpanDB's client and tests implement in
//! memory ([`memory::MemoryEngine`]). Time comes in through the engine.
//!
//! Data model ([`layout`], [`encoding`]): a table is a set of key-value
//! pairs. A row lives at `/Table/<table id>/1/<primary key>`, its other
//! columns in the value, each tagged with its column id (so `ADD COLUMN`
//! rewrites nothing and a dropped column's values are skipped); a
//! secondary index entry at `/Table/<table id>/<index id>/<columns>/<primary
//! key>`. Keys are order-preserving, so a primary-key range is a key range
//! and, in SpanDB, a set of shards. The [`catalog`] is stored the same
//! way and read and written in the statement's own transaction.
//!
//! Transactions are SpanDB's: a read-write statement takes locks as it
//! reads (serializable, externally consistent); a query outside BEGIN is a
//! lock-free read-only transaction; `AS OF SYSTEM TIME` reads a snapshot.
//! [`session`] has the statement loop, autocommit retries and the
//! transaction block states PostgreSQL clients expect.
//!
//! Invariants:
//! - A row and its index entries change in the same transaction
//!   ([`mod@write`]); DDL and DML on one table serialize through its
//!   descriptor ([`catalog`]).
//! - A read-only statement that plans from a leased descriptor reads at a
//!   timestamp where that descriptor is in force: a schema change drains
//!   the table and waits out every lease before it commits
//!   ([`catalog`], "Leases").
//! - Every error carries a SQLSTATE ([`error`]); bad input never panics
//!   and never changes data; every bound is in [`limits`].
//! - Operators stream ([`exec`]): a scan holds one page; those that must
//!   see all their input hold at most [`limits::MEMORY_ROWS_MAX`] rows.
//! - The optimizer ([`optimizer`]) never changes a result: every rule can
//!   be turned off and the rows stay the same.
//!
//! Example (the goldenscripts in `src/testscripts/` have many more):
//!
//! ```
//! use std::sync::Arc;
//! use sql::{memory::MemoryEngine, Collected, Session};
//!
//! let mut session = Session::new(Arc::new(MemoryEngine::new()));
//! let mut out = Collected::default();
//! session.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)", &mut out).unwrap();
//! session.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')", &mut out).unwrap();
//! session.execute("SELECT v FROM t WHERE id = 2", &mut out).unwrap();
//! assert_eq!(out.rows, vec![vec![sql::Value::Text("two".into())]]);
//! ```

pub mod advisory;
pub mod backends;
pub mod backfill;
pub mod catalog;
pub mod copy;
pub mod ddl;
pub mod encoding;
pub mod error;
pub mod exec;
pub mod explain;
pub mod functions;
pub mod keyspace;
pub mod kv;
pub mod layout;
pub mod limits;
pub mod memory;
pub mod ops;
pub mod optimizer;
pub mod parser;
pub mod plan;
pub mod planner;
pub mod sequence;
pub mod session;
pub mod sink;
pub mod sweep;
pub mod system;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timeout;
pub mod timestamp;
pub mod types;
pub mod write;

pub use error::{Error, Result, SqlState};
pub use session::{Prepared, Session, TxnStatus};
pub use sink::{Collected, Sink};
pub use types::{DataType, Interval, Row, Value};
