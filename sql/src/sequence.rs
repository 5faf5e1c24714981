//! Sequences: `CREATE SEQUENCE`, `nextval`, `currval`, `setval`,
//! `lastval`, as PostgreSQL has them.
//!
//! # The model
//!
//! ```text
//!   CREATE SEQUENCE order_no START 1000;          -- id 104, from the tables' counter
//!   /Table/6/1/104        -> {"name": "order_no", "start": 1000, ...}   the sequence
//!   /Table/6/2/'order_no' -> 104                                         its name
//!   /Table/6/3/104        -> {"last": 1000, "called": false}             its state
//!
//!   SELECT nextval('order_no');   -- 1000: a transaction of its own reads
//!   SELECT nextval('order_no');   -- 1001  the state and writes the next one
//! ```
//!
//! A sequence is a relation beside the tables: its name is taken from
//! theirs (a table and a sequence never share one), its id comes from the
//! same counter (so its oid, `system::table_oid`'s formula, is no
//! table's), and pg_class shows it with relkind `S`. Its descriptor, name
//! and state live in system table 6, next to the other descriptors, so
//! that `nextval`'s transaction stays in the catalog's shard and commits
//! in one phase.
//!
//! `nextval` and `setval` run in a transaction of their own, not the
//! statement's (`in_own_transaction`), as in PostgreSQL: a
//! value once given is never given again, even when the transaction that
//! asked for it rolls back, so a sequence has gaps, and two sessions
//! never wait on each other's open transactions for a value. `currval`
//! and `lastval` read what this session's last `nextval` (or `setval`)
//! gave ([`SessionValues`]), not the shared state.
//!
//! # Invariants
//!
//! - No two `nextval` calls of one sequence return the same value, unless
//!   a `setval` moved it back or it cycled: each reads the state under the
//!   transaction's locks and writes the next one.
//! - Every value given lies within the sequence's `[min, max]`; past the
//!   end `nextval` fails (2200H) unless the sequence cycles.
//!
//! # Departures from PostgreSQL
//!
//! - Every `nextval` is one transaction (a Raft round and a commit-wait
//!   in a cluster), so a table whose DEFAULT is `nextval` pays one per
//!   row, unless the sequence has `CACHE n`: then one in `n` is, and the
//!   session gives the rest it set aside ([`SessionValues`]; as in
//!   PostgreSQL, values then interleave between sessions, and those a
//!   session never uses are lost). SERIAL and IDENTITY columns do not use
//!   sequences (random bigints, `planner`).
//! - A sequence cannot be read as a table (`SELECT * FROM s`, 42809).
//!   ALTER SEQUENCE's `OWNED BY` is kept (the sequence goes with its
//!   column or table; `pg_get_serial_sequence` names it), CREATE
//!   SEQUENCE's is ignored; DROP SEQUENCE does not look for the DEFAULTs
//!   that use it. ALTER SEQUENCE ... RENAME and SET are refused (0A000).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
pub use crate::catalog::SequenceDesc;
use crate::encoding::{self, Direction};
use crate::error::{Error, Result, SqlState};
use crate::kv::{self, Attempt, Engine, KvError, Mode, Transaction};
use crate::limits;
use crate::sql_err;
use crate::types::{DataType, Value};

use crate::keyspace::SEQUENCES_TABLE;
/// Its index of descriptors, by id.
const BY_ID: u32 = 1;
/// Its index of states, by id.
const STATES: u32 = 3;

/// Where a sequence has got to: the last value it gave (or will give
/// first, while `called` is false).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct State {
    last: i64,
    called: bool,
}

/// What `CREATE SEQUENCE` says, options as written (`None`: the default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub data_type: Option<DataType>,
    pub increment: Option<i64>,
    /// `Some(None)`: `NO MINVALUE`.
    pub min: Option<Option<i64>>,
    pub max: Option<Option<i64>>,
    pub start: Option<i64>,
    pub cache: Option<i64>,
    pub cycle: Option<bool>,
}

impl SequenceDesc {
    /// The sequence `name` that `options` describe (its id is the
    /// caller's), with PostgreSQL's defaults and checks (22023).
    pub fn new(name: &str, options: &Options) -> Result<SequenceDesc> {
        let data_type = options.data_type.unwrap_or(DataType::Int8);
        if !matches!(data_type, DataType::Int2 | DataType::Int4 | DataType::Int8) {
            return sql_err!(InvalidParameterValue, "sequence type must be smallint, integer, or bigint");
        }
        let (type_min, type_max) = type_bounds(data_type);
        let increment = options.increment.unwrap_or(1);
        if increment == 0 {
            return sql_err!(InvalidParameterValue, "INCREMENT must not be zero");
        }
        let ascending = increment > 0;
        let min = options.min.flatten().unwrap_or(if ascending { 1 } else { type_min });
        let max = options.max.flatten().unwrap_or(if ascending { type_max } else { -1 });
        let type_name = crate::ops::type_name(data_type);
        for (what, v) in [("MINVALUE", min), ("MAXVALUE", max)] {
            if v < type_min || v > type_max {
                return sql_err!(
                    InvalidParameterValue,
                    "{what} ({v}) is out of range for sequence data type {type_name}"
                );
            }
        }
        if min >= max {
            return sql_err!(InvalidParameterValue, "MINVALUE ({min}) must be less than MAXVALUE ({max})");
        }
        let start = options.start.unwrap_or(if ascending { min } else { max });
        if start < min {
            return sql_err!(InvalidParameterValue, "START value ({start}) cannot be less than MINVALUE ({min})");
        }
        if start > max {
            return sql_err!(InvalidParameterValue, "START value ({start}) cannot be greater than MAXVALUE ({max})");
        }
        let cache = options.cache.unwrap_or(1);
        if cache < 1 {
            return sql_err!(InvalidParameterValue, "CACHE ({cache}) must be greater than zero");
        }
        Ok(SequenceDesc {
            id: 0,
            name: name.to_string(),
            data_type,
            start,
            increment,
            min,
            max,
            cache,
            cycle: options.cycle.unwrap_or(false),
            owned_by: None,
        })
    }
}

fn key(index: u32, id: u32) -> Vec<u8> {
    let mut key = encoding::index_prefix(SEQUENCES_TABLE, index);
    encoding::encode_key_value(&mut key, &Value::Int8(id.into()), Direction::Asc);
    key
}

fn name_key(name: &str) -> Vec<u8> {
    crate::keyspace::sequence_name_key(name)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(SqlState::InternalError, format!("corrupt sequence {what}: {e}"))
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(what, e))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| corrupt("value", e))
}

/// The sequence named `name`, if there is one.
pub fn by_name(txn: &mut dyn Transaction, name: &str) -> Result<Option<SequenceDesc>> {
    match txn.get(&name_key(name))? {
        Some(id) => by_id(txn, decode("name", &id)?),
        None => Ok(None),
    }
}

/// The sequence with id `id`, if there is one.
pub fn by_id(txn: &mut dyn Transaction, id: u32) -> Result<Option<SequenceDesc>> {
    match txn.get(&key(BY_ID, id))? {
        Some(bytes) => Ok(Some(decode("descriptor", &bytes)?)),
        None => Ok(None),
    }
}

/// Every sequence, by name.
pub fn all(txn: &mut dyn Transaction) -> Result<Vec<SequenceDesc>> {
    let prefix = encoding::index_prefix(SEQUENCES_TABLE, BY_ID);
    let mut out = Vec::new();
    for (_, bytes) in kv::scan_prefix(txn, &prefix, crate::limits::SCAN_PAGE_ROWS)? {
        out.push(decode::<SequenceDesc>("descriptor", &bytes)?);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every sequence as committed, read without locks (a statement in a
/// transaction block: a schema change in another session need not wait
/// for the block), with the transaction's own (`own`: ids it created or
/// dropped) as it sees them.
pub fn all_without_locks(
    engine: &dyn Engine,
    txn: &mut dyn Transaction,
    own: &std::collections::BTreeSet<u32>,
) -> Result<Vec<SequenceDesc>> {
    crate::catalog::committed_and_own(engine, txn, own, all, by_id, |q| (q.id, q.name.as_str()))
}

/// Records sequence `desc` (its id given) at its start.
pub fn create(txn: &mut dyn Transaction, desc: &SequenceDesc) -> Result<()> {
    txn.put(&key(BY_ID, desc.id), &encode(desc)?)?;
    txn.put(&name_key(&desc.name), &encode(&desc.id)?)?;
    txn.put(&key(STATES, desc.id), &encode(&State { last: desc.start, called: false })?)?;
    Ok(())
}

/// The integer type a sequence's `AS type` names (22023 for another).
pub fn data_type_named(name: &str) -> Result<DataType> {
    match name.to_lowercase().as_str() {
        "smallint" | "int2" => Ok(DataType::Int2),
        "integer" | "int" | "int4" => Ok(DataType::Int4),
        "bigint" | "int8" => Ok(DataType::Int8),
        _ => sql_err!(InvalidParameterValue, "sequence type must be smallint, integer, or bigint"),
    }
}

/// The smallest and largest values of a sequence's type.
fn type_bounds(data_type: DataType) -> (i64, i64) {
    match data_type {
        DataType::Int2 => (i64::from(i16::MIN), i64::from(i16::MAX)),
        DataType::Int4 => (i64::from(i32::MIN), i64::from(i32::MAX)),
        _ => (i64::MIN, i64::MAX),
    }
}

/// `ALTER SEQUENCE`: sequence `old` with the options `given` over its
/// own, checked as CREATE SEQUENCE checks them, its next value moved to
/// `restart` (`Some(None)`: its START), and its owner made `owned_by`
/// (`Some(None)`: none), as PostgreSQL does. A bound
/// left at its type's end follows a new type (`AS integer` after bigint
/// brings MAXVALUE down); the value it will give next must lie within the
/// new bounds, restarted or not (22023). Sessions keep the values a
/// `CACHE n` set aside for them (PostgreSQL's do too).
pub fn alter(
    txn: &mut dyn Transaction,
    old: &SequenceDesc,
    given: &Options,
    restart: Option<Option<i64>>,
    owned_by: Option<Option<(String, u32)>>,
) -> Result<()> {
    let data_type = given.data_type.unwrap_or(old.data_type);
    let (old_type_min, old_type_max) = type_bounds(old.data_type);
    let (type_min, type_max) = type_bounds(data_type);
    let retyped = data_type != old.data_type;
    // A bound at its old type's end moves to the new type's (PostgreSQL's
    // reset_min_value and reset_max_value), whatever the direction.
    let bound = |given: Option<Option<i64>>, old: i64, old_type_end: i64, type_end: i64| match given {
        Some(v) => Some(v),
        None if retyped && old == old_type_end => Some(Some(type_end)),
        None => Some(Some(old)),
    };
    let options = Options {
        data_type: Some(data_type),
        increment: Some(given.increment.unwrap_or(old.increment)),
        min: bound(given.min, old.min, old_type_min, type_min),
        max: bound(given.max, old.max, old_type_max, type_max),
        start: Some(given.start.unwrap_or(old.start)),
        cache: Some(given.cache.unwrap_or(old.cache)),
        cycle: Some(given.cycle.unwrap_or(old.cycle)),
    };
    let owned_by = owned_by.unwrap_or_else(|| old.owned_by.clone());
    let desc = SequenceDesc { id: old.id, owned_by, ..SequenceDesc::new(&old.name, &options)? };
    let state = match restart {
        Some(at) => State { last: at.unwrap_or(desc.start), called: false },
        None => state(txn, old.id)?,
    };
    if state.last < desc.min {
        return sql_err!(
            InvalidParameterValue,
            "RESTART value ({}) cannot be less than MINVALUE ({})",
            state.last,
            desc.min
        );
    }
    if state.last > desc.max {
        return sql_err!(
            InvalidParameterValue,
            "RESTART value ({}) cannot be greater than MAXVALUE ({})",
            state.last,
            desc.max
        );
    }
    txn.put(&key(BY_ID, desc.id), &encode(&desc)?)?;
    if restart.is_some() {
        txn.put(&key(STATES, desc.id), &encode(&state)?)?;
    }
    Ok(())
}

/// The last value each of `sequences` wrote (`pg_sequences.last_value`;
/// `None` if it gave none yet), read in `txn`.
pub fn last_values(txn: &mut dyn Transaction, sequences: &[SequenceDesc]) -> Result<Vec<Option<i64>>> {
    sequences
        .iter()
        .map(|q| match txn.get(&key(STATES, q.id))? {
            Some(bytes) => {
                let state: State = decode("state", &bytes)?;
                Ok(state.called.then_some(state.last))
            }
            None => Ok(None),
        })
        .collect()
}

/// Records that the column `owned_by` names (its table's name, its id)
/// owns sequence `desc` (RENAME TABLE moves it).
pub fn set_owner(txn: &mut dyn Transaction, desc: &SequenceDesc, owned_by: Option<(String, u32)>) -> Result<()> {
    txn.put(&key(BY_ID, desc.id), &encode(&SequenceDesc { owned_by, ..desc.clone() })?)?;
    Ok(())
}

/// Removes sequence `desc`, its name and its state.
pub fn drop(txn: &mut dyn Transaction, desc: &SequenceDesc) -> Result<()> {
    txn.delete(&key(BY_ID, desc.id))?;
    txn.delete(&name_key(&desc.name))?;
    txn.delete(&key(STATES, desc.id))?;
    Ok(())
}

/// What `currval` and `lastval` read: the value each sequence last gave
/// this session (`nextval`, or `setval` with `is_called`), by id, and
/// which sequence its last `nextval` used (PostgreSQL's `lastval` is
/// that sequence's value, which a later `setval` of it moves); and the
/// values a `CACHE n` sequence set aside for this session.
#[derive(Debug, Default)]
pub struct SessionValues {
    inner: Mutex<Values>,
}

#[derive(Debug, Default)]
struct Values {
    given: HashMap<u32, i64>,
    last_used: Option<u32>,
    /// Sequence id -> the next value set aside and the last one.
    cached: HashMap<u32, (i64, i64)>,
}

impl SessionValues {
    fn lock(&self) -> std::sync::MutexGuard<'_, Values> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, id: u32, value: i64, by_nextval: bool) {
        let mut values = self.lock();
        values.given.insert(id, value);
        if by_nextval {
            values.last_used = Some(id);
        }
    }

    fn current(&self, id: u32) -> Option<i64> {
        self.lock().given.get(&id).copied()
    }

    fn last(&self) -> Option<i64> {
        let values = self.lock();
        values.last_used.and_then(|id| values.given.get(&id).copied())
    }

    /// Keeps `next..=last` (by `increment`) for this session's next calls.
    fn set_aside(&self, id: u32, next: i64, last: i64) {
        self.lock().cached.insert(id, (next, last));
    }

    fn has_set_aside(&self) -> bool {
        !self.lock().cached.is_empty()
    }

    /// The next value set aside for sequence `id`, if any is left.
    fn take_set_aside(&self, id: u32, increment: i64) -> Option<i64> {
        let mut values = self.lock();
        let (next, last) = values.cached.get(&id).copied()?;
        match next == last {
            true => values.cached.remove(&id),
            false => values.cached.insert(id, (next + increment, last)),
        };
        Some(next)
    }

    fn forget_set_aside(&self, id: u32) {
        self.lock().cached.remove(&id);
    }

    /// Forgets every value (DISCARD ALL, DISCARD SEQUENCES).
    pub fn clear(&self) {
        *self.lock() = Values::default();
    }
}

/// Whether `name` is one of the sequence functions (evaluated by the
/// executor, which has the engine and the session's [`SessionValues`]).
pub fn is_function(name: &str) -> bool {
    matches!(name, "nextval" | "currval" | "setval" | "lastval")
}

/// What a sequence function needs of the statement calling it (the
/// executor's, `exec`).
pub struct Caller<'a> {
    /// The statement's transaction.
    pub txn: &'a mut dyn Transaction,
    /// For the transactions of the sequence's own (none: refused).
    pub engine: Option<Arc<dyn Engine>>,
    /// The session's values (none: refused).
    pub session: Option<Arc<SessionValues>>,
    /// The sequences the statement's transaction created or dropped.
    pub own: &'a HashSet<u32>,
    /// The session's `lock_timeout`.
    pub lock_timeout: Option<Duration>,
    /// The statement's cancel flag.
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Runs sequence function `name` on `args`: the sequence as its name
/// (text, read as `regclass` reads it) or oid (`'s'::regclass`), then
/// `setval`'s value and `is_called`.
///
/// # A sequence of the transaction's own
///
/// A sequence the statement's transaction created (or dropped and
/// created again) is in its writes alone, which a transaction of its own
/// cannot see: its steps run in the statement's transaction, and go with
/// it if it rolls back, as the sequence does. The transaction's
/// `Drains::sequences` (the caller's `own`) says which ids are its own.
pub fn call(name: &str, args: &[Value], caller: &mut Caller) -> Result<Value> {
    let Some(session) = caller.session.clone() else {
        return sql_err!(FeatureNotSupported, "sequences are not available here");
    };
    if name == "lastval" {
        return match session.last() {
            Some(v) => Ok(Value::Int8(v)),
            None => sql_err!(ObjectNotInPrerequisiteState, "lastval is not yet defined in this session"),
        };
    }
    // Strict, as PostgreSQL's are.
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    // After the transaction's own CREATE or DROP SEQUENCE, its view is
    // the one that counts: a sequence it dropped is gone, one it made is
    // there.
    let own = match caller.own.is_empty() {
        true => None,
        false => Some(find(caller.txn, &args[0])?).filter(|d| caller.own.contains(&d.id)),
    };
    let lock_timeout = caller.lock_timeout;
    match name {
        "currval" => {
            let desc = match own {
                Some(desc) => desc,
                None => in_snapshot(caller, &args[0])?,
            };
            match session.current(desc.id) {
                Some(v) => Ok(Value::Int8(v)),
                None => sql_err!(
                    ObjectNotInPrerequisiteState,
                    "currval of sequence \"{}\" is not yet defined in this session",
                    desc.name
                ),
            }
        }
        "nextval" => {
            if own.is_none() && session.has_set_aside() {
                // A value set aside for this session (CACHE n): found
                // again first, so a dropped sequence gives none.
                let desc = in_snapshot(caller, &args[0])?;
                if let Some(value) = session.take_set_aside(desc.id, desc.increment) {
                    session.note(desc.id, value, true);
                    return Ok(Value::Int8(value));
                }
            }
            let own_sequence = own.is_some();
            let mut step = |txn: &mut dyn Transaction| {
                txn.set_lock_timeout(lock_timeout);
                let desc = find(txn, &args[0])?;
                let (first, last) = match own_sequence {
                    // One value at a time (above).
                    true => next_value(&desc, state(txn, desc.id)?).map(|v| (v, v))?,
                    false => reserve(&desc, state(txn, desc.id)?)?,
                };
                txn.put(&key(STATES, desc.id), &encode(&State { last, called: true })?)?;
                Ok((desc, first, last))
            };
            // Run again after an unknown outcome, values may be skipped,
            // never given twice.
            let (desc, value, last) = match own {
                Some(_) => step(caller.txn)?,
                None => in_own_transaction(caller, true, &mut step)?,
            };
            // (Not for a sequence of the transaction's own: its state
            // goes back with a savepoint's rollback, the session's list
            // would not.)
            if last != value && own.is_none() {
                session.set_aside(desc.id, value + desc.increment, last);
            }
            session.note(desc.id, value, true);
            Ok(Value::Int8(value))
        }
        "setval" => {
            let value = args[1].as_i64().unwrap_or_default();
            let called = args.get(2).is_none_or(|c| c.as_bool().ok().flatten() != Some(false));
            let mut step = |txn: &mut dyn Transaction| {
                txn.set_lock_timeout(lock_timeout);
                let desc = find(txn, &args[0])?;
                if value < desc.min || value > desc.max {
                    return sql_err!(
                        NumericValueOutOfRange,
                        "setval: value {value} is out of bounds for sequence \"{}\" ({}..{})",
                        desc.name,
                        desc.min,
                        desc.max
                    );
                }
                txn.put(&key(STATES, desc.id), &encode(&State { last: value, called })?)?;
                Ok(desc.id)
            };
            // Run again after an unknown outcome, it could move the
            // sequence back past values given meanwhile: not run again.
            let id = match own {
                Some(_) => step(caller.txn)?,
                None => in_own_transaction(caller, false, &mut step)?,
            };
            // The values this session set aside are PostgreSQL's to drop too.
            session.forget_set_aside(id);
            if called {
                session.note(id, value, false);
            }
            Ok(Value::Int8(value))
        }
        other => sql_err!(UndefinedFunction, "function {other} does not exist"),
    }
}

/// The sequence `arg` names: a name, or an oid (`'s'::regclass`).
fn find(txn: &mut dyn Transaction, arg: &Value) -> Result<SequenceDesc> {
    match arg {
        Value::Text(text) => {
            let Some(name) = crate::parser::relation_name(text) else {
                return sql_err!(UndefinedTable, "relation \"{text}\" does not exist");
            };
            if let Some(desc) = by_name(txn, &name)? {
                return Ok(desc);
            }
            match Catalog::table(txn, &name)? {
                Some(_) => sql_err!(WrongObjectType, "\"{name}\" is not a sequence"),
                None => sql_err!(UndefinedTable, "relation \"{name}\" does not exist"),
            }
        }
        other => {
            let oid = other.as_i64().unwrap_or_default();
            let Some(id) = crate::system::table_id_of_oid(oid) else {
                return sql_err!(UndefinedTable, "relation with OID {oid} does not exist");
            };
            if let Some(desc) = by_id(txn, id)? {
                return Ok(desc);
            }
            match Catalog::table_by_id(txn, id)? {
                Some(table) => sql_err!(WrongObjectType, "\"{}\" is not a sequence", table.name),
                None => sql_err!(UndefinedTable, "relation with OID {oid} does not exist"),
            }
        }
    }
}

fn state(txn: &mut dyn Transaction, id: u32) -> Result<State> {
    match txn.get_for_update(&key(STATES, id))? {
        Some(bytes) => decode("state", &bytes),
        None => Err(corrupt("state", format!("sequence {id} has none"))),
    }
}

/// The values one `nextval` takes after `state`: the one it gives, then
/// up to `cache - 1` more for the session to give without a transaction
/// (PostgreSQL's CACHE); never past the sequence's end (a cycling one
/// cycles at the next reserve). Returns the first and the last.
fn reserve(desc: &SequenceDesc, state: State) -> Result<(i64, i64)> {
    let first = next_value(desc, state)?;
    let (inc, more) = (i128::from(desc.increment), i128::from(desc.cache.max(1) - 1));
    let wanted = i128::from(first) + more * inc;
    let end = i128::from(if inc > 0 { desc.max } else { desc.min });
    let last = match (inc > 0 && wanted > end) || (inc < 0 && wanted < end) {
        // As far as the end lets, on the sequence's steps.
        true => i128::from(first) + (end - i128::from(first)) / inc * inc,
        false => wanted,
    };
    Ok((first, i64::try_from(last).unwrap_or(first)))
}

/// The value `nextval` gives after `state`.
fn next_value(desc: &SequenceDesc, state: State) -> Result<i64> {
    if !state.called {
        return Ok(state.last);
    }
    match state.last.checked_add(desc.increment) {
        Some(next) if (desc.min..=desc.max).contains(&next) => Ok(next),
        _ if desc.cycle => Ok(if desc.increment > 0 { desc.min } else { desc.max }),
        _ if desc.increment > 0 => sql_err!(
            SequenceGeneratorLimitExceeded,
            "nextval: reached maximum value of sequence \"{}\" ({})",
            desc.name,
            desc.max
        ),
        _ => sql_err!(
            SequenceGeneratorLimitExceeded,
            "nextval: reached minimum value of sequence \"{}\" ({})",
            desc.name,
            desc.min
        ),
    }
}

/// The sequence `arg` names, as committed (a read without locks).
fn in_snapshot(caller: &Caller, arg: &Value) -> Result<SequenceDesc> {
    let Some(engine) = caller.engine.clone() else {
        return sql_err!(FeatureNotSupported, "sequences are not available here");
    };
    let mut snapshot = engine.begin(Mode::ReadOnly)?;
    let found = find(snapshot.as_mut(), arg);
    let _ = snapshot.rollback();
    found
}

/// Runs `f` in a read-write transaction of its own (module docs), with
/// the statement's transaction's priority (a transaction that waits for
/// its own nested one is never the younger of the two: wound-wait orders
/// them as one), again after a retryable abort and, if `rerun_unknown`,
/// after an unknown outcome.
fn in_own_transaction<T>(
    caller: &Caller,
    rerun_unknown: bool,
    f: &mut dyn FnMut(&mut dyn Transaction) -> Result<T>,
) -> Result<T> {
    let Some(engine) = caller.engine.clone() else {
        return sql_err!(FeatureNotSupported, "sequences are not available here");
    };
    let mut priority = caller.txn.priority();
    let mut attempt = 0;
    loop {
        attempt += 1;
        if caller.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst)) {
            return sql_err!(QueryCanceled, "canceling statement due to user request");
        }
        let mut txn = kv::begin_keeping_priority(engine.as_ref(), Mode::ReadWrite, &mut priority)?;
        let ran = f(txn.as_mut());
        let result = match kv::finish(txn, ran) {
            Attempt::Committed(v, _) => Ok(v),
            Attempt::KeyTaken(m) => Err(Error::from(KvError::ConditionNotMet(m))),
            Attempt::Failed(e) => Err(e),
        };
        let unknown = |e: &Error| matches!(e.state, SqlState::StatementCompletionUnknown | SqlState::SystemError);
        match result {
            Err(e) if e.is_retryable() && attempt <= limits::AUTOCOMMIT_RETRIES_MAX => continue,
            Err(e) if rerun_unknown && unknown(&e) && attempt <= limits::AUTOCOMMIT_RETRIES_MAX => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(options: Options) -> Result<SequenceDesc> {
        SequenceDesc::new("s", &options)
    }

    /// Goal: PostgreSQL's defaults and refusals for CREATE SEQUENCE's
    /// options. Method: build descriptors from options.
    #[test]
    fn options_take_postgresql_defaults_and_bounds() {
        let up = desc(Options::default()).unwrap();
        assert_eq!((up.start, up.min, up.max, up.increment), (1, 1, i64::MAX, 1));
        let down =
            desc(Options { increment: Some(-2), data_type: Some(DataType::Int4), ..Options::default() }).unwrap();
        assert_eq!((down.start, down.min, down.max), (-1, i64::from(i32::MIN), -1));
        for bad in [
            Options { increment: Some(0), ..Options::default() },
            Options { min: Some(Some(5)), max: Some(Some(5)), ..Options::default() },
            Options { start: Some(0), ..Options::default() },
            Options { data_type: Some(DataType::Int2), max: Some(Some(40_000)), ..Options::default() },
            Options { data_type: Some(DataType::Text), ..Options::default() },
            Options { cache: Some(0), ..Options::default() },
        ] {
            assert_eq!(desc(bad.clone()).unwrap_err().state, SqlState::InvalidParameterValue, "{bad:?}");
        }
    }

    /// Goal: nextval's arithmetic: the start first, then steps, then the
    /// end (an error, or the other end for a cycling sequence), and the
    /// values a CACHE n sequence sets aside. Method: step states by hand.
    #[test]
    fn values_step_to_the_end_then_stop_or_cycle() {
        let s = desc(Options { max: Some(Some(3)), increment: Some(2), ..Options::default() }).unwrap();
        assert_eq!(next_value(&s, State { last: 1, called: false }).unwrap(), 1);
        assert_eq!(next_value(&s, State { last: 1, called: true }).unwrap(), 3);
        let end = next_value(&s, State { last: 3, called: true }).unwrap_err();
        assert_eq!(end.state, SqlState::SequenceGeneratorLimitExceeded);
        let cycling = SequenceDesc { cycle: true, ..s };
        assert_eq!(next_value(&cycling, State { last: 3, called: true }).unwrap(), 1);
        let cached = desc(Options { cache: Some(10), max: Some(Some(25)), increment: Some(5), ..Options::default() });
        let cached = cached.unwrap();
        assert_eq!(reserve(&cached, State { last: 1, called: false }).unwrap(), (1, 21));
        // Set aside up to the end (21 is the last step below 25), and no
        // further.
        let end = reserve(&cached, State { last: 21, called: true }).unwrap_err();
        assert_eq!(end.state, SqlState::SequenceGeneratorLimitExceeded);
        let down = desc(Options { cache: Some(3), increment: Some(-1), ..Options::default() }).unwrap();
        assert_eq!(reserve(&down, State { last: -1, called: false }).unwrap(), (-1, -3));
        let big = desc(Options::default()).unwrap();
        let overflow = next_value(&big, State { last: i64::MAX, called: true }).unwrap_err();
        assert_eq!(overflow.state, SqlState::SequenceGeneratorLimitExceeded);
    }
}
