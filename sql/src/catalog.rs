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
//! Every statement reads the descriptors it needs in its own transaction,
//! and DDL writes them in its own, so the catalog changes transactionally
//! with everything else: a DDL statement inside BEGIN is rolled back with
//! it, and a read-only transaction at timestamp `t` sees the schema as of
//! `t`. That also keeps rows and index entries consistent under concurrent
//! DDL and DML: a read-write statement reads (and in SpanDB so share-locks)
//! the descriptor of every table it writes, and DDL writes (so exclusively
//! locks) it; the two serialize, and a write never uses an index set that
//! is not the one in force at its commit. (F1's online schema change would
//! let DDL proceed without waiting for writers; that can come later.)
//!
//! Column and index ids are per table and never reused, so a row encoded
//! before `DROP COLUMN c` and `ADD COLUMN c` cannot be misread.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::encoding::{self, Direction};
use crate::error::{Error, Result, SqlState};
use crate::kv::Transaction;
use crate::limits;
use crate::sql_err;
use crate::types::DataType;

/// The system table of descriptors.
const DESCRIPTORS_TABLE: u32 = 1;
/// The system table of table names.
const NAMES_TABLE: u32 = 2;
/// The system table of id counters.
const COUNTERS_TABLE: u32 = 3;
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
}

/// An index: the primary one (rows) or a secondary one (pointers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexDesc {
    pub id: u32,
    pub name: String,
    pub unique: bool,
    /// Key columns (column ids), each with its direction.
    pub columns: Vec<(u32, Direction)>,
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
}

impl TableDesc {
    pub fn column(&self, name: &str) -> Option<(usize, &ColumnDesc)> {
        self.columns.iter().enumerate().find(|(_, c)| c.name == name)
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
        Self::table(txn, name)?
            .ok_or_else(|| Error::new(SqlState::UndefinedTable, format!("relation \"{name}\" does not exist")))
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

    /// Writes a changed descriptor (bumping its version).
    pub fn update_table(txn: &mut dyn Transaction, desc: &mut TableDesc) -> Result<()> {
        desc.version += 1;
        Self::write_table(txn, desc)
    }

    fn write_table(txn: &mut dyn Transaction, desc: &TableDesc) -> Result<()> {
        let bytes = serde_json::to_vec(desc).map_err(|e| corrupt("descriptor", e))?;
        txn.put(&descriptor_key(desc.id), &bytes)?;
        Ok(())
    }

    /// Removes a table's descriptor and name (its data is the caller's).
    pub fn drop_table(txn: &mut dyn Transaction, desc: &TableDesc) -> Result<()> {
        txn.delete(&name_key(&desc.name))?;
        txn.delete(&descriptor_key(desc.id))?;
        Ok(())
    }
}
