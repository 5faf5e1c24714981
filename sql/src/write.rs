//! INSERT, UPDATE and DELETE: rows and their index entries, together.
//!
//! Every change to a row changes its secondary index entries in the same
//! transaction, so the two never disagree (the catalog module says why
//! concurrent DDL cannot break that either). Uniqueness is checked by
//! reading the key a row or unique entry would take: in SpanDB that read
//! locks the key until commit, so two transactions cannot both see it
//! free. An INSERT that is its own transaction skips those reads: it
//! writes the keys with `put_absent`, which SpanDB checks when it applies
//! the commit, under the commit's exclusive locks (CockroachDB's
//! conditional put) — one round trip instead of one per key. If a key is
//! taken nothing is written, and the session runs the statement again
//! with reads, so the error names the constraint and the key, as
//! PostgreSQL's does, at the statement.
//!
//! The rows a statement changes are read in full before the first write
//! (bounded by [`limits::WRITES_PER_TRANSACTION_MAX`]), so a statement
//! never sees its own changes (`UPDATE t SET k = k + 1` visits each row
//! once, `INSERT INTO t SELECT * FROM t` doubles t once).

use crate::catalog::{ColumnDesc, IndexDesc, TableDesc};
use crate::error::{Error, Result, SqlState};
use crate::exec::{self, eval, Cx};
use crate::layout;
use crate::limits;
use crate::ops;
use crate::plan::{
    Check, Constraints, DeferredCheck, Expr, ForeignKeyAction, ForeignKeyCheck, Node, OnConflict, OutputColumn, Plan,
};
use crate::sql_err;
use crate::types::{DataType, Row, Value};

/// What a write statement produced: the count and RETURNING rows.
pub struct WriteResult {
    pub count: u64,
    pub returned: Vec<Row>,
}

/// Produces row ids for tables without a primary key: spread over the key
/// space (no hot shard at the end of the table), and fresh: an id it
/// produces is in no row yet, so a row inserted under it is written
/// without reading its key first (as CockroachDB writes `unique_rowid()`
/// rows).
pub trait RowIds {
    fn next_row_id(&mut self) -> i64;
}

fn read_all(source: &Node, cx: &mut Cx) -> Result<Vec<Row>> {
    let rows = exec::collect(source, cx, limits::WRITES_PER_TRANSACTION_MAX + 1)?;
    if rows.len() > limits::WRITES_PER_TRANSACTION_MAX {
        return too_many_writes();
    }
    Ok(rows)
}

/// [`read_all`] for an UPDATE or DELETE of `table`: the rows of `table`
/// it looks up by key are read for update ([`Cx::for_update`]), so that
/// two statements changing one row queue at their reads instead of both
/// reading it and then each waiting for the other's lock at commit.
fn read_for_update(table: &TableDesc, source: &Node, cx: &mut Cx) -> Result<Vec<Row>> {
    let outer = cx.for_update.replace(table.id);
    let rows = read_all(source, cx);
    cx.for_update = outer;
    rows
}

/// The error of a statement that would change more rows than one
/// transaction may ([`limits::WRITES_PER_TRANSACTION_MAX`]).
pub fn too_many_writes<T>() -> Result<T> {
    sql_err!(
        ProgramLimitExceeded,
        "a statement may change at most {} rows; change fewer at a time",
        limits::WRITES_PER_TRANSACTION_MAX
    )
}

/// Refuses `row` if a CHECK constraint is false for it (23514).
fn check_row(table: &TableDesc, checks: &[Check], row: &Row, cx: &mut Cx) -> Result<()> {
    for check in checks {
        if eval(&check.expr, row, cx)?.as_bool()? == Some(false) {
            let shown: Vec<String> = table
                .columns
                .iter()
                .zip(row)
                .filter(|(c, _)| !c.hidden)
                .map(|(_, v)| ops::to_text(v).unwrap_or_else(|| "null".into()))
                .collect();
            return Err(Error::new(
                SqlState::CheckViolation,
                format!("new row for relation \"{}\" violates check constraint \"{}\"", table.name, check.name),
            )
            .with_detail(format!("Failing row contains ({}).", shown.join(", "))));
        }
    }
    Ok(())
}

/// Casts a row's values to the column types and checks NOT NULL; true if
/// it gave the row a fresh row id.
pub(crate) fn conform(table: &TableDesc, row: &mut Row, ids: &mut dyn RowIds) -> Result<bool> {
    let mut fresh = false;
    for (v, col) in row.iter_mut().zip(&table.columns) {
        if col.hidden && v.is_null() {
            *v = Value::Int8(ids.next_row_id());
            fresh = true;
            continue;
        }
        if !v.is_null() {
            // (An assignment may make a NULL: an infinite timestamp's time.)
            *v = assigned(v, col)?;
        }
        if v.is_null() && !col.nullable {
            return Err(Error::new(
                SqlState::NotNullViolation,
                format!(
                    "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                    col.name, table.name
                ),
            ));
        }
    }
    Ok(fresh)
}

/// `v` cast for storing in `col` (`ops::assign`), 42804 naming the column.
fn assigned(v: &Value, col: &crate::catalog::ColumnDesc) -> Result<Value> {
    ops::assign(v, col.data_type).map_err(|e| match e.state {
        SqlState::DatatypeMismatch => Error::new(
            SqlState::DatatypeMismatch,
            format!(
                "column \"{}\" is of type {} but expression is of type {}",
                col.name,
                col.data_type,
                v.data_type().map(|t| t.to_string()).unwrap_or_default()
            ),
        ),
        _ => e,
    })
}

fn unique_violation(
    table: &TableDesc,
    index_name: &str,
    columns: &[(u32, crate::encoding::Direction)],
    row: &[Value],
) -> Error {
    Error::new(SqlState::UniqueViolation, format!("duplicate key value violates unique constraint \"{index_name}\""))
        .with_detail(format!("{} already exists.", layout::describe_key(table, columns, row)))
}

/// Whether `write_row` must read unique index entries before writing
/// them, or the caller just did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UniqueCheck {
    Needed,
    Done,
    /// Left to the commit: the row's key and its unique entries are
    /// written with `put_absent` ([`Cx::defer_unique_checks`]).
    AtCommit,
}

/// Writes `row` (new) in place of `old` (None: a new row), keeping every
/// index in step. Checks unique indexes unless the caller did.
fn write_row(table: &TableDesc, old: Option<&Row>, row: &Row, check: UniqueCheck, cx: &mut Cx) -> Result<()> {
    let key = layout::row_key(table, row)?;
    let value = layout::row_value(table, row)?;
    if let Some(old) = old {
        let old_key = layout::row_key(table, old)?;
        if old_key != key {
            if cx.get(&key)?.is_some() {
                return Err(unique_violation(table, &table.primary.name, &table.primary.columns, row));
            }
            cx.txn()?.delete(&old_key)?;
        }
    }
    for index in &table.indexes {
        let (entry, entry_value) = layout::index_entry(table, index, row)?;
        let old_entry = match old {
            Some(old) => Some(layout::index_entry(table, index, old)?),
            None => None,
        };
        if old_entry.as_ref().is_some_and(|(k, v)| *k == entry && *v == entry_value) {
            continue;
        }
        if index.unique && !entry_value.is_empty() && check == UniqueCheck::Needed {
            if let Some(existing) = cx.get(&entry)? {
                if existing != entry_value {
                    return Err(unique_violation(table, &index.name, &index.columns, row));
                }
            }
        }
        if let Some((old_key, _)) = old_entry {
            cx.txn()?.delete(&old_key)?;
        }
        if index.unique && !entry_value.is_empty() && check == UniqueCheck::AtCommit {
            cx.txn()?.put_absent(&entry, &entry_value)?;
        } else {
            cx.txn()?.put(&entry, &entry_value)?;
        }
    }
    if check == UniqueCheck::AtCommit {
        cx.txn()?.put_absent(&key, &value)?;
    } else {
        cx.txn()?.put(&key, &value)?;
    }
    Ok(())
}

/// The keys a new row takes that must be free: its primary key and its
/// unique entries (those without NULLs).
fn unique_keys(table: &TableDesc, row: &Row) -> Result<Vec<Vec<u8>>> {
    let mut keys = vec![layout::row_key(table, row)?];
    for index in table.indexes.iter().filter(|i| i.unique) {
        let (entry, entry_value) = layout::index_entry(table, index, row)?;
        if !entry_value.is_empty() {
            keys.push(entry);
        }
    }
    Ok(keys)
}

fn delete_row(table: &TableDesc, row: &Row, cx: &mut Cx) -> Result<()> {
    for index in &table.indexes {
        let (entry, _) = layout::index_entry(table, index, row)?;
        cx.txn()?.delete(&entry)?;
    }
    let key = layout::row_key(table, row)?;
    cx.txn()?.delete(&key)?;
    Ok(())
}

/// The existing row at `row`'s primary key, if any.
fn existing_row(table: &TableDesc, row: &Row, cx: &mut Cx) -> Result<Option<Row>> {
    let key = layout::row_key(table, row)?;
    match cx.get(&key)? {
        Some(value) => Ok(Some(layout::decode_row(table, &key, &value)?)),
        None => Ok(None),
    }
}

/// The existing row that `row` would collide with on a unique secondary
/// index, and that index, if any.
fn colliding_row<'t>(table: &'t TableDesc, row: &Row, cx: &mut Cx) -> Result<Option<(Row, &'t IndexDesc)>> {
    for index in table.indexes.iter().filter(|i| i.unique) {
        let (entry, target) = layout::index_entry(table, index, row)?;
        if target.is_empty() {
            continue; // a NULL in the key: never collides
        }
        if let Some(existing) = cx.get(&entry)? {
            let key = layout::row_key_from_suffix(table, &existing);
            let Some(value) = cx.get(&key)? else {
                return sql_err!(
                    InternalError,
                    "index {} entry {} points at a missing row",
                    index.name,
                    crate::encoding::pretty_key(&entry)
                );
            };
            return Ok(Some((layout::decode_row(table, &key, &value)?, index)));
        }
    }
    Ok(None)
}

fn returning(items: &Option<Vec<(Expr, OutputColumn)>>, row: &Row, cx: &mut Cx, out: &mut Vec<Row>) -> Result<()> {
    if let Some(items) = items {
        let mut r = Vec::with_capacity(items.len());
        for (e, _) in items {
            r.push(eval(e, row, cx)?);
        }
        out.push(r);
    }
    Ok(())
}

pub fn insert(
    table: &TableDesc,
    source: &Node,
    on_conflict: &OnConflict,
    returning_items: &Option<Vec<(Expr, OutputColumn)>>,
    constraints: &Constraints,
    cx: &mut Cx,
    ids: &mut dyn RowIds,
) -> Result<WriteResult> {
    table.check_writable()?;
    let rows = read_all(source, cx)?;
    insert_rows(table, rows, on_conflict, returning_items, constraints, cx, ids)
}

/// [`insert`] of rows already read (at most
/// [`limits::WRITES_PER_TRANSACTION_MAX`]; the caller checked the table
/// is writable).
pub fn insert_rows(
    table: &TableDesc,
    rows: Vec<Row>,
    on_conflict: &OnConflict,
    returning_items: &Option<Vec<(Expr, OutputColumn)>>,
    constraints: &Constraints,
    cx: &mut Cx,
    ids: &mut dyn RowIds,
) -> Result<WriteResult> {
    let checks = &constraints.checks;
    let mut result = WriteResult { count: 0, returned: Vec::new() };
    // Rows written (with the row each replaced), for the foreign keys.
    let mut changes = Changes::new(constraints);
    let mut written: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    // Keys this statement left for its commit to check.
    let mut deferred: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for mut row in rows {
        let fresh_row_id = conform(table, &mut row, ids)?;
        check_row(table, checks, &row, cx)?;
        if cx.defer_unique_checks && *on_conflict == OnConflict::Error {
            // No read: the commit checks the keys are free. A key this
            // statement already took is read as below (the read sees the
            // statement's own write and names the collision).
            let keys = unique_keys(table, &row)?;
            if keys.iter().all(|k| !deferred.contains(k)) {
                deferred.extend(keys);
                write_row(table, None, &row, UniqueCheck::AtCommit, cx)?;
                returning(returning_items, &row, cx, &mut result.returned)?;
                changes.push(None, &row);
                result.count += 1;
                continue;
            }
        }
        // The row's key and every unique entry it takes are read here,
        // so writing it needs no second look.
        // A fresh row id is in no row: only unique indexes need a look.
        let existing = match fresh_row_id {
            true => None,
            false => existing_row(table, &row, cx)?.map(|r| (r, &table.primary)),
        };
        let existing = match existing {
            Some(found) => Some(found),
            None => colliding_row(table, &row, cx)?,
        };
        let key = layout::row_key(table, &row)?;
        if let Some((old, index)) = existing {
            match on_conflict {
                OnConflict::Error => return Err(unique_violation(table, &index.name, &index.columns, &row)),
                OnConflict::DoNothing => continue,
                OnConflict::DoUpdate { assignments, predicate } => {
                    let old_key = layout::row_key(table, &old)?;
                    if !written.insert(old_key) {
                        return sql_err!(
                            CardinalityViolation,
                            "ON CONFLICT DO UPDATE command cannot affect row a second time"
                        );
                    }
                    // Expressions see the existing row, then `excluded`.
                    let mut both = old.clone();
                    both.extend(row.iter().cloned());
                    if let Some(p) = predicate {
                        if eval(p, &both, cx)?.as_bool()? != Some(true) {
                            continue;
                        }
                    }
                    let mut new = old.clone();
                    for (i, e) in assignments {
                        new[*i] = eval(e, &both, cx)?;
                    }
                    let _ = conform(table, &mut new, ids)?;
                    check_row(table, checks, &new, cx)?;
                    write_row(table, Some(&old), &new, UniqueCheck::Needed, cx)?;
                    returning(returning_items, &new, cx, &mut result.returned)?;
                    changes.push(Some(&old), &new);
                    result.count += 1;
                    continue;
                }
            }
        }
        written.insert(key);
        write_row(table, None, &row, UniqueCheck::Done, cx)?;
        returning(returning_items, &row, cx, &mut result.returned)?;
        changes.push(None, &row);
        result.count += 1;
    }
    changes.check(table, constraints, cx, ids)?;
    Ok(result)
}

/// The target table's rows among an UPDATE's or DELETE's source rows,
/// each with the whole source row if it is wider: with `FROM`/`USING` a
/// source row is a target row joined with others, and a target row
/// joined several times is changed once, with its first join
/// (PostgreSQL: which one is not said).
fn target_rows(table: &TableDesc, rows: Vec<Row>) -> Vec<(Row, Option<Row>)> {
    let width = table.columns.len();
    if rows.first().is_none_or(|r| r.len() == width) {
        return rows.into_iter().map(|r| (r, None)).collect();
    }
    let mut seen = std::collections::HashSet::new();
    rows.into_iter()
        .filter_map(|joined| {
            let target = joined[..width].to_vec();
            seen.insert(crate::exec::row_key(&target)).then_some((target, Some(joined)))
        })
        .collect()
}

pub fn update(
    table: &TableDesc,
    source: &Node,
    assignments: &[(usize, Expr)],
    returning_items: &Option<Vec<(Expr, OutputColumn)>>,
    constraints: &Constraints,
    cx: &mut Cx,
    ids: &mut dyn RowIds,
) -> Result<WriteResult> {
    table.check_writable()?;
    let changes = updated_rows(table, source, assignments, constraints, cx, ids)?;
    apply_update(table, changes, returning_items, constraints, cx, ids)
}

/// An UPDATE's rows, each with its new values (read, computed and
/// checked; nothing written yet).
fn updated_rows(
    table: &TableDesc,
    source: &Node,
    assignments: &[(usize, Expr)],
    constraints: &Constraints,
    cx: &mut Cx,
    ids: &mut dyn RowIds,
) -> Result<Vec<(Row, Row)>> {
    let rows = read_for_update(table, source, cx)?;
    let mut changes = Vec::with_capacity(rows.len());
    for (old, joined) in target_rows(table, rows) {
        let mut new = old.clone();
        let source_row = joined.as_ref().unwrap_or(&old);
        for (i, e) in assignments {
            new[*i] = eval(e, source_row, cx)?;
        }
        let _ = conform(table, &mut new, ids)?;
        check_row(table, &constraints.checks, &new, cx)?;
        changes.push((old, new));
    }
    Ok(changes)
}

/// Writes an UPDATE's changes: every old row out, then every new one
/// in (new values were computed for every row first, so a key that
/// moves onto another updated row's old key is not a conflict), then its
/// foreign keys.
fn apply_update(
    table: &TableDesc,
    changes: Vec<(Row, Row)>,
    returning_items: &Option<Vec<(Expr, OutputColumn)>>,
    constraints: &Constraints,
    cx: &mut Cx,
    ids: &mut dyn RowIds,
) -> Result<WriteResult> {
    let mut result = WriteResult { count: 0, returned: Vec::new() };
    for (old, _) in &changes {
        delete_row(table, old, cx)?;
    }
    for (_, new) in &changes {
        if existing_row(table, new, cx)?.is_some() {
            return Err(unique_violation(table, &table.primary.name, &table.primary.columns, new));
        }
        write_row(table, None, new, UniqueCheck::Needed, cx)?;
        returning(returning_items, new, cx, &mut result.returned)?;
        result.count += 1;
    }
    let mut written = Changes::new(constraints);
    for (old, new) in &changes {
        written.push(Some(old), new);
    }
    written.check(table, constraints, cx, ids)?;
    Ok(result)
}

pub fn delete(
    table: &TableDesc,
    source: &Node,
    returning_items: &Option<Vec<(Expr, OutputColumn)>>,
    constraints: &Constraints,
    cx: &mut Cx,
    ids: &mut dyn RowIds,
) -> Result<WriteResult> {
    table.check_writable()?;
    let rows = read_for_update(table, source, cx)?;
    let mut result = WriteResult { count: 0, returned: Vec::new() };
    let mut deleted = Changes::new(constraints);
    for (row, _) in target_rows(table, rows) {
        delete_row(table, &row, cx)?;
        returning(returning_items, &row, cx, &mut result.returned)?;
        deleted.remove(row);
        result.count += 1;
    }
    deleted.check(table, constraints, cx, ids)?;
    Ok(result)
}

/// A statement's row changes, kept for its foreign keys' checks when it
/// has any to make (`planner/foreign_keys.rs`), which run after all of
/// its writes: a statement may write a row and the row it references.
struct Changes {
    track: bool,
    /// Rows written, each with the row it replaced.
    written: Vec<(Option<Row>, Row)>,
    /// Rows deleted.
    deleted: Vec<Row>,
}

impl Changes {
    fn new(constraints: &Constraints) -> Changes {
        let track = !constraints.references.is_empty() || !constraints.referenced_by.is_empty();
        Changes { track, written: Vec::new(), deleted: Vec::new() }
    }

    fn push(&mut self, old: Option<&Row>, new: &Row) {
        if self.track {
            self.written.push((old.cloned(), new.clone()));
        }
    }

    fn remove(&mut self, old: Row) {
        if self.track {
            self.deleted.push(old);
        }
    }

    /// Refuses the statement (23503) if a row it wrote references a key
    /// no row has, or a key it took away (a row deleted, or whose key
    /// changed, and no row written with it) is still referenced.
    fn check(self, table: &TableDesc, constraints: &Constraints, cx: &mut Cx, ids: &mut dyn RowIds) -> Result<()> {
        if !self.track {
            return Ok(());
        }
        let unchanged = |fk: &ForeignKeyCheck, old: &Row, new: &Row| fk.columns.iter().all(|&i| old[i] == new[i]);
        for fk in &constraints.references {
            // Each key is looked up once: one found stays (the lookup
            // locked it), and one missing fails the statement.
            let mut found = std::collections::HashSet::new();
            for (old, new) in &self.written {
                if old.as_ref().is_some_and(|old| unchanged(fk, old, new)) {
                    continue;
                }
                let key: Vec<Value> = fk.columns.iter().map(|&i| new[i].clone()).collect();
                if !found.insert(crate::exec::row_key(&key)) {
                    continue;
                }
                if cx.constraint_mode.is_some_and(|m| m.defers(fk)) {
                    cx.deferred_checks.push(deferred(table, fk, new, true));
                    continue;
                }
                if eval(&fk.found, new, cx)?.as_bool()? != Some(true) {
                    return Err(not_present(table, fk, new));
                }
            }
        }
        for fk in &constraints.referenced_by {
            let key = |row: &Row| fk.columns.iter().map(|&i| row[i].clone()).collect::<Vec<Value>>();
            if let Some(action) = &fk.action {
                // The old key of each row deleted or changed, then its new
                // one if the action takes it.
                let mut runs: Vec<Vec<Value>> = self.deleted.iter().map(key).collect();
                for (old, new) in &self.written {
                    if let Some(old) = old.as_ref().filter(|old| !unchanged(fk, old, new)) {
                        let mut params = key(old);
                        if action.new_key {
                            params.extend(key(new));
                        }
                        runs.push(params);
                    }
                }
                runs.retain(|params| !params[..fk.columns.len()].iter().any(Value::is_null));
                run_action(action, runs, cx, ids)?;
                continue;
            }
            // Keys the statement's written rows hold now: one taken from a
            // row and given to another is still there (NO ACTION).
            let held: std::collections::HashSet<Vec<u8>> =
                self.written.iter().map(|(_, new)| crate::exec::row_key(&key(new))).collect();
            let removed = self
                .written
                .iter()
                .filter_map(|(old, new)| old.as_ref().filter(|old| !unchanged(fk, old, new)))
                .chain(&self.deleted);
            let mut looked_up = std::collections::HashSet::new();
            for old in removed {
                let old_key = key(old);
                let encoded = crate::exec::row_key(&old_key);
                if old_key.iter().any(Value::is_null) || held.contains(&encoded) || !looked_up.insert(encoded) {
                    continue;
                }
                if cx.constraint_mode.is_some_and(|m| m.defers(fk)) {
                    cx.deferred_checks.push(deferred(table, fk, old, false));
                    continue;
                }
                if eval(&fk.found, old, cx)?.as_bool()? == Some(true) {
                    return Err(still_referenced(table, fk, old));
                }
            }
        }
        Ok(())
    }
}

fn deferred(table: &TableDesc, fk: &ForeignKeyCheck, row: &Row, referencing: bool) -> DeferredCheck {
    let violation = if referencing { not_present(table, fk, row) } else { still_referenced(table, fk, row) };
    DeferredCheck { table: table.id, check: fk.clone(), row: row.clone(), referencing, violation }
}

/// Runs the foreign key checks statements of a transaction block put off
/// to its COMMIT (INITIALLY DEFERRED), in the block's transaction.
pub fn check_deferred(checks: &[DeferredCheck], cx: &mut Cx) -> Result<()> {
    let mut done = std::collections::HashSet::new();
    for d in checks {
        let key: Vec<Value> = d.check.columns.iter().map(|&i| d.row[i].clone()).collect();
        if !done.insert((d.table, d.check.name.clone(), d.referencing, crate::exec::row_key(&key))) {
            continue;
        }
        // A referencing key must be found; a referenced one must not be
        // referenced. Either way the check holds if no row of the
        // written table has the key now (the referencing row went or
        // changed since; for the referenced side, the opposite: the key is
        // back, so it may be referenced).
        let found = eval(&d.check.found, &d.row, cx)?.as_bool()? == Some(true);
        if found != d.referencing {
            let present = match &d.check.key_present {
                Some(e) => eval(e, &d.row, cx)?.as_bool()? == Some(true),
                // Not known: the check fails.
                None => d.referencing,
            };
            if present != d.referencing {
                continue;
            }
            return Err(d.violation.clone());
        }
    }
    Ok(())
}

/// 23503 for a written row whose key no row of the referenced table has.
fn not_present(table: &TableDesc, fk: &ForeignKeyCheck, row: &Row) -> Error {
    Error::new(
        SqlState::ForeignKeyViolation,
        format!("insert or update on table \"{}\" violates foreign key constraint \"{}\"", table.name, fk.name),
    )
    .with_detail(format!("Key {} is not present in table \"{}\".", shown_key(table, fk, row), fk.table))
}

/// 23503 for a row taken away whose key rows of another table reference.
fn still_referenced(table: &TableDesc, fk: &ForeignKeyCheck, row: &Row) -> Error {
    Error::new(
        SqlState::ForeignKeyViolation,
        format!(
            "update or delete on table \"{}\" violates foreign key constraint \"{}\" on table \"{}\"",
            table.name, fk.name, fk.table
        ),
    )
    .with_detail(format!("Key {} is still referenced from table \"{}\".", shown_key(table, fk, row), fk.table))
}

/// Runs a foreign key's action (`ForeignKeyAction`) once per parameter
/// list: planned here, in the statement's transaction (descriptors read
/// under its locks, not leased), the writes it makes checked and cascaded
/// in turn.
fn run_action(action: &ForeignKeyAction, runs: Vec<Vec<Value>>, cx: &mut Cx, ids: &mut dyn RowIds) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    if cx.action_depth >= limits::FOREIGN_KEY_ACTION_DEPTH_MAX {
        return sql_err!(
            ProgramLimitExceeded,
            "foreign key actions cascade more than {} levels deep",
            limits::FOREIGN_KEY_ACTION_DEPTH_MAX
        );
    }
    let (plan, read) = crate::planner::plan_internal(cx.txn()?, &action.sql, &action.param_types)?;
    cx.tables_read.extend(read);
    let plan = std::rc::Rc::new(plan);
    cx.plans_made.push(plan.clone());
    cx.action_depth += 1;
    let ran = run_action_plan(&plan, runs, cx, ids);
    cx.action_depth -= 1;
    ran
}

/// [`run_action`]'s plan, once per parameter list. An UPDATE reads and
/// computes its rows for every list before it writes any, as one
/// statement would: run list by list, a key changed from 1 to 2 and
/// another from 2 to 3 would move the rows referencing 1 to 3.
fn run_action_plan(plan: &Plan, runs: Vec<Vec<Value>>, cx: &mut Cx, ids: &mut dyn RowIds) -> Result<()> {
    let statement_params = std::mem::take(&mut cx.params);
    let ran = (|| match plan {
        Plan::Delete { table, source, constraints, .. } => {
            for params in runs {
                cx.params = params;
                delete(table, source, &None, constraints, cx, ids)?;
            }
            Ok(())
        }
        Plan::Update { table, source, assignments, constraints, .. } => {
            table.check_writable()?;
            let mut changes = Vec::new();
            for params in runs {
                cx.params = params;
                changes.extend(updated_rows(table, source, assignments, constraints, cx, ids)?);
                if changes.len() > limits::WRITES_PER_TRANSACTION_MAX {
                    return too_many_writes();
                }
            }
            apply_update(table, changes, &None, constraints, cx, ids).map(|_| ())
        }
        _ => sql_err!(InternalError, "a foreign key action is not a DELETE or an UPDATE"),
    })();
    cx.params = statement_params;
    ran
}

/// `(a, b)=(1, 2)`: a key's columns and values, as PostgreSQL's DETAIL
/// shows them.
fn shown_key(table: &TableDesc, fk: &ForeignKeyCheck, row: &Row) -> String {
    let names: Vec<&str> = fk.columns.iter().map(|&i| table.columns[i].name.as_str()).collect();
    let values: Vec<String> =
        fk.columns.iter().map(|&i| ops::to_text(&row[i]).unwrap_or_else(|| "null".into())).collect();
    format!("({})=({})", names.join(", "), values.join(", "))
}

/// Writes every row's entry of a new index in the caller's transaction
/// (CREATE INDEX inside a transaction block): [`backfill_batch`] after
/// batch, so it holds one batch, and sees its own entries when it checks
/// uniqueness. SpanDB bounds the transaction's writes.
pub fn backfill_index(table: &TableDesc, index: &IndexDesc, cx: &mut Cx) -> Result<()> {
    let mut from = Some(crate::encoding::index_prefix(table.id, table.primary.id));
    while let Some(start) = from.take() {
        from = backfill_batch(table, index, &start, limits::BACKFILL_BATCH_ROWS, cx)?;
    }
    Ok(())
}

/// Rewrites every row of `old` under `new`'s layout (a new primary key, a
/// column's new type): deletes the old pairs, writes the new; each must
/// pass `new`'s CHECK constraints, `checks`.
pub fn rewrite_table(old: &TableDesc, new: &TableDesc, checks: &[Check], cx: &mut Cx) -> Result<u64> {
    let scan = Node::full_scan(std::sync::Arc::new(old.clone()));
    let rows = read_all(&scan, cx)?;
    let mut new_rows = Vec::with_capacity(rows.len());
    for row in &rows {
        let moved = moved_row(old, new, row)?;
        check_rewritten(new, checks, &moved, cx)?;
        new_rows.push(moved);
    }
    for row in &rows {
        delete_row(old, row, cx)?;
    }
    for row in &new_rows {
        if existing_row(new, row, cx)?.is_some() {
            return Err(Error::new(
                SqlState::UniqueViolation,
                format!("could not create unique index \"{}\"", new.primary.name),
            )
            .with_detail(format!("{} is duplicated.", layout::describe_key(new, &new.primary.columns, row))));
        }
        write_row(new, None, row, UniqueCheck::Needed, cx)?;
    }
    Ok(rows.len() as u64)
}

/// An error for a new unique index (or primary key) whose rows collide.
fn duplicate_in_new_index(
    table: &TableDesc,
    index_name: &str,
    columns: &[(u32, crate::encoding::Direction)],
    row: &[Value],
) -> Error {
    Error::new(SqlState::UniqueViolation, format!("could not create unique index \"{index_name}\""))
        .with_detail(format!("{} is duplicated.", layout::describe_key(table, columns, row)))
}

/// One batch of a backfill of write-only index `index` of `table`: the
/// entries of at most `rows` rows from primary key `from` on, in the
/// caller's transaction. Returns where the next batch starts (None: the
/// table is done). Writers keep write-only indexes, so an entry may
/// already be there: for this row (fine) or another (a duplicate).
pub fn backfill_batch(
    table: &TableDesc,
    index: &IndexDesc,
    from: &[u8],
    rows: usize,
    cx: &mut Cx,
) -> Result<Option<Vec<u8>>> {
    let pairs = batch_of_rows(table, from, rows, cx)?;
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &pairs {
        let row = layout::decode_row(table, key, value)?;
        let (entry, entry_value) = layout::index_entry(table, index, &row)?;
        if index.unique && !entry_value.is_empty() && cx.defer_unique_checks {
            // Checked by the commit (a batch reads no entry); two rows of
            // the batch are compared here.
            if !seen.insert(entry.clone()) {
                return Err(duplicate_in_new_index(table, &index.name, &index.columns, &row));
            }
            cx.txn()?.put_absent(&entry, &entry_value)?;
            continue;
        }
        if index.unique && !entry_value.is_empty() {
            if let Some(existing) = cx.get(&entry)? {
                if existing != entry_value {
                    return Err(duplicate_in_new_index(table, &index.name, &index.columns, &row));
                }
                continue;
            }
        }
        cx.txn()?.put(&entry, &entry_value)?;
    }
    Ok(next_batch(&pairs, rows))
}

/// One batch of a rewrite of `old`'s rows into `new` (its `rewrite`: a
/// new primary key, under a new table id), like [`backfill_batch`].
/// Writers are refused meanwhile, so every key written here is new unless
/// two rows share a new primary key. With `cx.defer_unique_checks` the
/// commit checks that (one round trip per batch, not one per row).
pub fn rewrite_batch(
    old: &TableDesc,
    new: &TableDesc,
    checks: &[Check],
    from: &[u8],
    rows: usize,
    cx: &mut Cx,
) -> Result<Option<Vec<u8>>> {
    let pairs = batch_of_rows(old, from, rows, cx)?;
    let mut seen = std::collections::HashSet::new();
    for (key, value) in &pairs {
        let moved = moved_row(old, new, &layout::decode_row(old, key, value)?)?;
        check_rewritten(new, checks, &moved, cx)?;
        if cx.defer_unique_checks {
            // Checked by the commit (no read per row); two rows of the
            // batch are compared here, by every key they take: the
            // commit's check sees only what others committed.
            if !seen.insert(layout::row_key(new, &moved)?) {
                return Err(duplicate_in_new_index(new, &new.primary.name, &new.primary.columns, &moved));
            }
            for index in new.indexes.iter().filter(|i| i.unique) {
                let (entry, entry_value) = layout::index_entry(new, index, &moved)?;
                // (An entry with a NULL collides with none.)
                if !entry_value.is_empty() && !seen.insert(entry) {
                    return Err(duplicate_in_new_index(new, &index.name, &index.columns, &moved));
                }
            }
            write_row(new, None, &moved, UniqueCheck::AtCommit, cx)?;
            continue;
        }
        if existing_row(new, &moved, cx)?.is_some() {
            return Err(duplicate_in_new_index(new, &new.primary.name, &new.primary.columns, &moved));
        }
        write_row(new, None, &moved, UniqueCheck::Needed, cx)?;
    }
    Ok(next_batch(&pairs, rows))
}

/// `row` of `old` as a row of its rewrite `new`, each value converted to
/// its column's type there ([`converted`]); 23502 if a column `new` makes
/// NOT NULL (a new primary key's) is NULL in it.
fn moved_row(old: &TableDesc, new: &TableDesc, row: &Row) -> Result<Row> {
    let mut moved = Vec::with_capacity(new.columns.len());
    for col in &new.columns {
        let v = match old.column_by_id(col.id) {
            Some((pos, before)) => converted(&row[pos], before, col)?,
            None => Value::Null,
        };
        if v.is_null() && !col.nullable {
            return Err(Error::new(
                SqlState::NotNullViolation,
                format!("column \"{}\" of relation \"{}\" contains null values", col.name, new.name),
            ));
        }
        moved.push(v);
    }
    Ok(moved)
}

/// Refuses a rewritten row that a CHECK constraint is false for (23514,
/// as PostgreSQL words it for ALTER TABLE): converting its values may
/// have made it one (`0.3` is `0` as an integer).
fn check_rewritten(table: &TableDesc, checks: &[Check], row: &Row, cx: &mut Cx) -> Result<()> {
    for check in checks {
        if eval(&check.expr, row, cx)?.as_bool()? == Some(false) {
            return sql_err!(
                CheckViolation,
                "check constraint \"{}\" of relation \"{}\" is violated by some row",
                check.name,
                table.name
            );
        }
    }
    Ok(())
}

/// Value `v` of column `before` as a value of `after` (the same column,
/// its type changed by ALTER COLUMN ... TYPE): by the assignment cast
/// where one exists (so a string too long for a `varchar(n)` is refused,
/// 22001, even where PostgreSQL's explicit `USING c::varchar(n)` would cut
/// it), else by the explicit cast (`text` to `integer`).
fn converted(v: &Value, before: &ColumnDesc, after: &ColumnDesc) -> Result<Value> {
    let (mut from, to) = (before.data_type, after.data_type);
    let mut v = std::borrow::Cow::Borrowed(v);
    if let (DataType::Char(_), Value::Text(s)) = (from, v.as_ref()) {
        if !matches!(to, DataType::Char(_)) {
            // A char(n)'s padding is not part of its value.
            v = std::borrow::Cow::Owned(Value::Text(s.trim_end_matches(' ').to_string()));
            from = DataType::Text;
        }
    }
    match () {
        _ if from == to => Ok(v.into_owned()),
        _ if ops::can_assign(from, to) => ops::assign(&v, to),
        _ => ops::cast(&v, to),
    }
}

/// Fails as converting it would (22001, 22003, 22P02 ...) unless every
/// value of the column at `position` of `table` becomes a `to`; true if
/// every one stays as it is (ALTER COLUMN ... TYPE that rewrites no
/// row): a read of every row.
pub fn converts_in_place(table: &TableDesc, position: usize, to: DataType, cx: &mut Cx) -> Result<bool> {
    let scan = Node::full_scan(std::sync::Arc::new(table.clone()));
    let mut after = table.columns[position].clone();
    after.data_type = to;
    let mut rows = exec::build(&scan);
    let mut in_place = true;
    while let Some(row) = rows.next(cx)? {
        let v = converted(&row[position], &table.columns[position], &after)?;
        in_place &= v.is_null() || ops::compare(&v, &row[position])? == Some(std::cmp::Ordering::Equal);
    }
    Ok(in_place)
}

/// Checks one batch of `old`'s rows, from key `from`, for a NULL where its
/// rewrite `new` wants none (a new primary key's); returns where the next batch
/// starts, as [`rewrite_batch`].
pub fn check_not_null_batch(
    old: &TableDesc,
    new: &TableDesc,
    from: &[u8],
    rows: usize,
    cx: &mut Cx,
) -> Result<Option<Vec<u8>>> {
    let pairs = batch_of_rows(old, from, rows, cx)?;
    for (key, value) in &pairs {
        moved_row(old, new, &layout::decode_row(old, key, value)?)?;
    }
    Ok(next_batch(&pairs, rows))
}

/// Whether `table` has a row.
pub fn has_rows(table: &TableDesc, cx: &mut Cx) -> Result<bool> {
    let prefix = crate::encoding::index_prefix(table.id, table.primary.id);
    let end = crate::encoding::prefix_end(&prefix);
    Ok(!cx.txn()?.scan(&prefix, &end, 1)?.is_empty())
}

/// Whether a row of `table` holds NULL in the column at `position`: a
/// read of every row until one does (ALTER COLUMN SET NOT NULL).
pub fn has_null(table: &TableDesc, position: usize, cx: &mut Cx) -> Result<bool> {
    let scan = Node::full_scan(std::sync::Arc::new(table.clone()));
    let nulls = Node::Filter { input: Box::new(scan), predicate: Expr::IsNull(Box::new(Expr::Column(position))) };
    let found = exec::build(&nulls).next(cx)?.is_some();
    Ok(found)
}

/// At most `rows` rows of `table` (its primary index's pairs) from key
/// `from` on: one batch of a backfill, rewrite or check.
fn batch_of_rows(table: &TableDesc, from: &[u8], rows: usize, cx: &mut Cx) -> Result<Vec<crate::kv::Pair>> {
    let end = crate::encoding::prefix_end(&crate::encoding::index_prefix(table.id, table.primary.id));
    Ok(cx.txn()?.scan(from, &end, rows)?)
}

/// Where the batch after `pairs` starts: just after its last key, unless
/// it came back short (the end).
fn next_batch(pairs: &[crate::kv::Pair], rows: usize) -> Option<Vec<u8>> {
    if pairs.len() < rows {
        return None;
    }
    pairs.last().map(|(key, _)| {
        let mut next = key.clone();
        next.push(0);
        next
    })
}
