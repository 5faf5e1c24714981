//! STUB — being written (order-preserving keys, rows with column ids).
//! Signatures here are the contract; the implementation replaces this file.

use crate::error::Result;
use crate::types::{DataType, Value};

/// The first byte of every SQL key (keeps SQL apart from raw `spandb kv`
/// keys, which are printable).
pub const SQL_PREFIX: u8 = 0xF0;

/// Ascending or descending order of a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    Asc,
    Desc,
}

/// Appends `value` to `out` so that byte order is the value order in
/// `direction` (NULL last ascending, first descending).
pub fn encode_key_value(out: &mut Vec<u8>, value: &Value, direction: Direction) {
    let _ = (out, value, direction);
    unimplemented!("stub")
}

/// Decodes one value of type `ty` from the front of `input`, advancing it.
pub fn decode_key_value(input: &mut &[u8], ty: DataType, direction: Direction) -> Result<Value> {
    let _ = (input, ty, direction);
    unimplemented!("stub")
}

/// `SQL_PREFIX /table_id/index_id/`.
pub fn index_prefix(table_id: u32, index_id: u32) -> Vec<u8> {
    let _ = (table_id, index_id);
    unimplemented!("stub")
}

/// `SQL_PREFIX /table_id/`.
pub fn table_prefix(table_id: u32) -> Vec<u8> {
    let _ = table_id;
    unimplemented!("stub")
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let _ = prefix;
    unimplemented!("stub")
}

/// A row's value: the non-NULL columns, each with its column id.
pub fn encode_row(columns: &[(u32, &Value)]) -> Vec<u8> {
    let _ = columns;
    unimplemented!("stub")
}

/// The columns a row value holds (column id, value), in the order written.
pub fn decode_row(bytes: &[u8]) -> Result<Vec<(u32, Value)>> {
    let _ = bytes;
    unimplemented!("stub")
}

/// A key for people: `/Table/52/1/'abc'/3`, raw bytes escaped where it is
/// not a SQL key.
pub fn pretty_key(key: &[u8]) -> String {
    format!("{key:?}")
}
