//! Where a table's rows and index entries live, as key-value pairs.
//!
//! ```text
//!   CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT, balance INT);
//!   CREATE INDEX accounts_owner ON accounts (owner);   -- index id 2
//!
//!   /Table/100/1/7          -> {2:'ann', 3:50}      the row: key columns in
//!                                                   the key, the rest by id
//!   /Table/100/2/'ann'/7    -> ''                   a secondary entry: the
//!                                                   indexed columns, then
//!                                                   the primary key
//! ```
//!
//! A unique index leaves the primary key out of its entries' keys (so two
//! rows with one value collide on the key) and keeps it in the value; an
//! entry with a NULL in it keeps the primary key in the key, since NULLs
//! never collide (PostgreSQL's NULLS DISTINCT).

use crate::catalog::{ColumnDesc, IndexDesc, TableDesc, PRIMARY_INDEX_ID};
use crate::encoding::{self, decode_key_value, encode_key_value};
use crate::error::{Error, Result, SqlState};
use crate::limits;
use crate::types::{DataType, Row, Value};

fn corrupt(what: &str, key: &[u8], e: impl std::fmt::Display) -> Error {
    Error::new(SqlState::InternalError, format!("corrupt {what} at {}: {e}", encoding::pretty_key(key)))
}

/// The encoded primary-key values of `row` (the suffix of its row key).
pub fn primary_suffix(table: &TableDesc, row: &[Value]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for (id, dir) in &table.primary.columns {
        let (pos, _) = table.column_by_id(*id).ok_or_else(|| corrupt("descriptor", &[], format!("no column {id}")))?;
        encode_key_value(&mut out, &row[pos], *dir);
    }
    Ok(out)
}

/// The key of `row` in the primary index.
pub fn row_key(table: &TableDesc, row: &[Value]) -> Result<Vec<u8>> {
    let mut key = encoding::index_prefix(table.id, PRIMARY_INDEX_ID);
    key.extend(primary_suffix(table, row)?);
    check_key(table, &key)?;
    Ok(key)
}

/// The key of the row whose primary-key suffix is `suffix`.
pub fn row_key_from_suffix(table: &TableDesc, suffix: &[u8]) -> Vec<u8> {
    let mut key = encoding::index_prefix(table.id, PRIMARY_INDEX_ID);
    key.extend_from_slice(suffix);
    key
}

/// The value of `row` in the primary index: the non-key columns, and the
/// key columns the key cannot give back exactly (an unconstrained
/// numeric: the key holds `1.50` as `1.5`; decoding prefers the value's).
pub fn row_value(table: &TableDesc, row: &[Value]) -> Result<Vec<u8>> {
    let columns: Vec<(u32, &Value)> = table
        .columns
        .iter()
        .zip(row)
        .filter(|(c, _)| {
            !table.primary.columns.iter().any(|(id, _)| *id == c.id) || c.data_type == DataType::Numeric(None)
        })
        .map(|(c, v)| (c.id, v))
        .collect();
    let value = encoding::encode_row_with_nulls(&columns, &|id| {
        table.column_by_id(id).is_some_and(|(_, c)| c.missing.is_some())
    });
    if value.len() > limits::ROW_BYTES_MAX {
        return Err(Error::new(
            SqlState::ProgramLimitExceeded,
            format!("row of {} bytes is larger than the limit of {} bytes", value.len(), limits::ROW_BYTES_MAX),
        ));
    }
    Ok(value)
}

fn check_key(table: &TableDesc, key: &[u8]) -> Result<()> {
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(Error::new(
            SqlState::ProgramLimitExceeded,
            format!(
                "a key of table \"{}\" is {} bytes, over the limit of {} bytes",
                table.name,
                key.len(),
                limits::KEY_BYTES_MAX
            ),
        ));
    }
    Ok(())
}

/// Decodes a row from its primary-index pair.
pub fn decode_row(table: &TableDesc, key: &[u8], value: &[u8]) -> Result<Row> {
    let mut row = vec![Value::Null; table.columns.len()];
    let prefix_len = encoding::index_prefix(table.id, PRIMARY_INDEX_ID).len();
    let mut rest = key.get(prefix_len..).ok_or_else(|| corrupt("row key", key, "too short"))?;
    for (id, dir) in &table.primary.columns {
        let (pos, col) = table.column_by_id(*id).ok_or_else(|| corrupt("row key", key, "unknown column"))?;
        row[pos] = decode_key_value(&mut rest, col.data_type, *dir).map_err(|e| corrupt("row key", key, e))?;
    }
    let mut held = vec![false; table.columns.len()];
    for (id, _) in &table.primary.columns {
        if let Some((pos, _)) = table.column_by_id(*id) {
            held[pos] = true;
        }
    }
    for (id, v) in encoding::decode_row(value).map_err(|e| corrupt("row", key, e))? {
        // A dropped column's value is skipped.
        if let Some((pos, col)) = table.column_by_id(id) {
            row[pos] = as_column_type(v, col)?;
            held[pos] = true;
        }
    }
    // Columns added (with a DEFAULT) after the row was written.
    for (pos, col) in table.columns.iter().enumerate() {
        if let (false, Some(missing)) = (held[pos], &col.missing) {
            if let Some((_, v)) = encoding::decode_row(missing).map_err(|e| corrupt("descriptor", key, e))?.pop() {
                row[pos] = as_column_type(v, col)?;
            }
        }
    }
    Ok(row)
}

/// A stored value as a value of its column's type now. They differ only
/// after an ALTER COLUMN ... TYPE that kept the stored form (`ddl`,
/// "Changing a column's type"): an `int4` written before the column
/// became a `bigint` reads as one. The change checked that every value
/// fits.
fn as_column_type(v: Value, col: &ColumnDesc) -> Result<Value> {
    match v.data_type() {
        Some(t) if t.base() != col.data_type.base() => crate::ops::assign(&v, col.data_type),
        _ => Ok(v),
    }
}

/// The entry of `row` in secondary `index`.
pub fn index_entry(table: &TableDesc, index: &IndexDesc, row: &[Value]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut key = encoding::index_prefix(table.id, index.id);
    let mut has_null = false;
    for (id, dir) in &index.columns {
        let (pos, _) = table.column_by_id(*id).ok_or_else(|| corrupt("descriptor", &[], format!("no column {id}")))?;
        has_null |= row[pos].is_null();
        encode_key_value(&mut key, &row[pos], *dir);
    }
    let suffix = primary_suffix(table, row)?;
    let (key, value) = if index.unique && !has_null {
        (key, suffix)
    } else {
        key.extend(suffix);
        (key, Vec::new())
    };
    check_key(table, &key)?;
    Ok((key, value))
}

/// The primary-key suffix an index entry points at.
pub fn index_entry_target(table: &TableDesc, index: &IndexDesc, key: &[u8], value: &[u8]) -> Result<Vec<u8>> {
    let prefix_len = encoding::index_prefix(table.id, index.id).len();
    let mut rest = key.get(prefix_len..).ok_or_else(|| corrupt("index key", key, "too short"))?;
    for (id, dir) in &index.columns {
        let (_, col) = table.column_by_id(*id).ok_or_else(|| corrupt("index key", key, "unknown column"))?;
        decode_key_value(&mut rest, col.data_type, *dir).map_err(|e| corrupt("index key", key, e))?;
    }
    Ok(if rest.is_empty() { value.to_vec() } else { rest.to_vec() })
}

/// `(col)=(value)` for messages, as PostgreSQL's DETAIL prints keys.
pub fn describe_key(table: &TableDesc, columns: &[(u32, encoding::Direction)], row: &[Value]) -> String {
    let mut names = Vec::new();
    let mut values = Vec::new();
    for (id, _) in columns {
        if let Some((pos, col)) = table.column_by_id(*id) {
            names.push(col.name.clone());
            values.push(crate::ops::to_text(&row[pos]).unwrap_or_else(|| "null".into()));
        }
    }
    format!("Key ({})=({})", names.join(", "), values.join(", "))
}
