//! The system tables: every key space SpanDB keeps beside the user
//! tables, by table id (`/Table/<id>/...`, below
//! [`crate::catalog::FIRST_USER_TABLE_ID`]).
//!
//! One list, so that no two modules take one id: sequences once took the
//! sweeper's, and each read the other's keys as its own.

/// The descriptors of tables and views (`catalog`).
pub const DESCRIPTORS_TABLE: u32 = 1;
/// Table names, to ids (`catalog`).
pub const NAMES_TABLE: u32 = 2;
/// Id counters (`catalog`).
pub const COUNTERS_TABLE: u32 = 3;
/// Sweep jobs: spans of dropped tables and indexes (`sweep`).
pub const SWEEPS_TABLE: u32 = 4;
/// Advisory locks (`advisory`).
pub const LOCKS_TABLE: u32 = 5;
/// Sequences: descriptors, names and states (`sequence`).
pub const SEQUENCES_TABLE: u32 = 6;

/// Where sequence `name`'s id is kept (`sequence`): also read by the
/// catalog, to say that a name it does not have is a sequence's.
pub fn sequence_name_key(name: &str) -> Vec<u8> {
    let mut key = crate::encoding::index_prefix(SEQUENCES_TABLE, SEQUENCE_NAMES_INDEX);
    crate::encoding::encode_key_value(
        &mut key,
        &crate::types::Value::Text(name.to_string()),
        crate::encoding::Direction::Asc,
    );
    key
}

/// The index of [`SEQUENCES_TABLE`] keeping ids by name.
pub const SEQUENCE_NAMES_INDEX: u32 = 2;
