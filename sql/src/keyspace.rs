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
