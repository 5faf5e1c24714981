//! SQL cursors: `DECLARE ... CURSOR FOR query`, `FETCH`, `CLOSE`, as
//! PostgreSQL has them, for clients that read a large result in parts:
//! psycopg's named (server-side) cursors, which Django's
//! `QuerySet.iterator()` and SQLAlchemy's `stream_results` use, and psql's
//! `FETCH_COUNT`.
//!
//! ```text
//!   BEGIN
//!   DECLARE c CURSOR FOR SELECT id FROM t ORDER BY id    DECLARE CURSOR
//!   FETCH FORWARD 2 FROM c                                1, 2; FETCH 2
//!   FETCH NEXT FROM c                                     3; FETCH 1
//!   FETCH PRIOR FROM c                                    2; FETCH 1
//!   CLOSE c                                               CLOSE CURSOR
//!   COMMIT
//! ```
//!
//! The model: a cursor is its query's result, read whole when it is
//! declared, in the block's transaction (so it sees what the block wrote
//! before, as PostgreSQL's does, and nothing after), and a position in
//! it: 0 before the first row, `n + 1` after the last of `n`. FETCH moves
//! the position and returns the rows it passes, as PostgreSQL's does;
//! since the rows are kept, every direction works (a cursor declared `NO
//! SCROLL` refuses to move back, 55000, as PostgreSQL's).
//!
//! Invariants:
//! - A cursor lives until CLOSE, or until its transaction ends: at
//!   COMMIT, unless declared `WITH HOLD`; at ROLLBACK, if declared in the
//!   transaction rolled back (a `WITH HOLD` cursor from an earlier one
//!   stays). DISCARD ALL closes every cursor.
//! - The rows all of a session's cursors hold are counted
//!   ([`crate::exec::row_bytes`]) and bounded by
//!   [`limits::MEMORY_BYTES_MAX`] and [`limits::MEMORY_ROWS_MAX`] rows
//!   each: a DECLARE past either fails with 53200 and declares nothing.
//!
//! Departures from PostgreSQL: the rows are read at DECLARE, not as
//! FETCH asks for them, so a cursor over a table larger than the bound
//! cannot be declared (PostgreSQL reads lazily); `BINARY` cursors
//! (0A000), `FETCH ... INTO` (a syntax error) and cursors in PL/pgSQL are
//! not supported.
//!
//! `MOVE` moves as the same FETCH would and returns no rows (psycopg's
//! `ServerCursor.scroll()` sends it); counts may be negative (`FETCH -2`,
//! `MOVE ABSOLUTE -1`): `crate::parser` reads both in PostgreSQL's
//! grammar.
//!
//! `pg_cursors` lists the session's cursors. A ROLLBACK TO SAVEPOINT
//! closes the cursors declared since the savepoint, and leaves the others
//! where their FETCHes moved them, as PostgreSQL does.

use sqlparser::ast;

use super::{Session, TxnStatus};
use crate::error::{Error, Result, SqlState};
use crate::parser::Parsed;
use crate::plan::OutputColumn;
use crate::sink::Sink;
use crate::types::Row;
use crate::{limits, sql_err};

/// A declared cursor: its rows and where it stands in them.
pub(super) struct Cursor {
    columns: Vec<OutputColumn>,
    rows: Vec<Row>,
    /// 0: before the first row; `rows.len() + 1`: after the last.
    position: usize,
    /// What its rows take ([`crate::exec::row_bytes`]).
    bytes: usize,
    /// Declared `NO SCROLL`: it may not move back.
    forward_only: bool,
    /// Declared `WITH HOLD`: it outlives its transaction's commit.
    hold: bool,
    /// Declared in the transaction now open (a ROLLBACK closes it).
    in_open_transaction: bool,
    /// Its place in the session's declarations (`Session::cursors_declared`).
    number: u64,
    /// What `pg_cursors` shows: the query text that declared it, and when.
    statement: String,
    created_us: i64,
}

/// Where a FETCH goes, from PostgreSQL's forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Movement {
    /// `n` rows forward (`i64::MAX`: ALL), or back if negative; 0 is the
    /// current row again.
    By(i64),
    /// To row `n` (negative: from the end), returning it.
    Absolute(i64),
    /// `n` rows on (or back), returning the row there.
    Relative(i64),
}

impl Session {
    /// `DECLARE name [NO] [SCROLL] CURSOR [WITH[OUT] HOLD] FOR query`.
    /// `sql`: the query text it came in (`pg_cursors.statement`).
    pub(super) fn declare_cursor(&mut self, sql: &str, declares: &[ast::Declare], sink: &mut dyn Sink) -> Result<()> {
        let [declare] = declares else {
            return sql_err!(FeatureNotSupported, "DECLARE declares one cursor");
        };
        let (Some(ast::DeclareType::Cursor), Some(query), [name]) =
            (&declare.declare_type, &declare.for_query, declare.names.as_slice())
        else {
            return sql_err!(FeatureNotSupported, "DECLARE is supported for cursors only");
        };
        if declare.binary == Some(true) {
            return sql_err!(FeatureNotSupported, "binary cursors are not supported");
        }
        let hold = declare.hold == Some(true);
        if self.status == TxnStatus::Idle && !hold {
            return sql_err!(NoActiveSqlTransaction, "DECLARE CURSOR can only be used in transaction blocks");
        }
        if super::modifies(query) {
            return sql_err!(FeatureNotSupported, "DECLARE CURSOR must not contain data-modifying statements in WITH");
        }
        let name = crate::parser::ident(name);
        if self.cursors.contains_key(&name) {
            return sql_err!(DuplicateCursor, "cursor \"{name}\" already exists");
        }
        // The query runs as a statement of its own (in the block, if any),
        // its rows kept here.
        let text = query.to_string();
        let parsed = Parsed::plain(ast::Statement::Query(query.clone()));
        let room = self.cursor_room().saturating_sub(sql.len());
        let mut rows = Kept { inner: sink, columns: Vec::new(), rows: Vec::new(), bytes: 0, room };
        self.run_statement(&text, &parsed, &mut rows)?;
        let Kept { columns, rows, bytes, .. } = rows;
        self.cursors_declared += 1;
        let cursor = Cursor {
            columns,
            rows,
            position: 0,
            bytes: bytes + sql.len(),
            forward_only: declare.scroll == Some(false),
            hold,
            in_open_transaction: self.status != TxnStatus::Idle,
            number: self.cursors_declared,
            statement: sql.to_string(),
            created_us: self.now_us(),
        };
        self.cursors.insert(name, cursor);
        sink.complete("DECLARE CURSOR")
    }

    /// What more the session's cursors may hold, in bytes.
    fn cursor_room(&self) -> usize {
        limits::MEMORY_BYTES_MAX.saturating_sub(self.cursors.values().map(|c| c.bytes).sum())
    }

    /// `FETCH [direction] [FROM | IN] name`: the rows the move passes;
    /// `moves`: a MOVE, which moves the same way and returns none.
    pub(super) fn fetch_cursor(
        &mut self,
        name: &ast::Ident,
        direction: &ast::FetchDirection,
        moves: bool,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let movement = movement(direction)?;
        let described = self.described.take();
        let cursor = self.cursor_mut(name)?;
        if described.is_some_and(|d| d != cursor.columns) {
            // Prepared against a cursor of that name since declared again.
            return sql_err!(FeatureNotSupported, "cached plan must not change result type");
        }
        let passed = cursor.fetch(movement)?;
        if moves {
            return sink.complete(&format!("MOVE {}", passed.len()));
        }
        sink.columns(&cursor.columns)?;
        for &i in &passed {
            sink.row(cursor.rows[i].clone())?;
        }
        sink.complete(&format!("FETCH {}", passed.len()))
    }

    /// `CLOSE name | ALL`.
    pub(super) fn close_cursor(&mut self, cursor: &ast::CloseCursor, sink: &mut dyn Sink) -> Result<()> {
        match cursor {
            ast::CloseCursor::All => {
                self.cursors.clear();
                sink.complete("CLOSE CURSOR ALL")
            }
            ast::CloseCursor::Specific { name } => {
                let name = crate::parser::ident(name);
                if self.cursors.remove(&name).is_none() {
                    return sql_err!(InvalidCursorName, "cursor \"{name}\" does not exist");
                }
                sink.complete("CLOSE CURSOR")
            }
        }
    }

    /// The columns a FETCH from `name` returns (what Describe says of it),
    /// if `statement` is a FETCH and the cursor exists; none if not, as
    /// PostgreSQL describes a FETCH from a cursor not declared yet.
    pub(super) fn describe_fetch(&self, statement: &ast::Statement) -> Option<Vec<OutputColumn>> {
        let ast::Statement::Fetch { name, .. } = statement else { return None };
        self.cursor_columns(&crate::parser::ident(name)).ok()
    }

    /// The columns of cursor `name` (the protocol's Describe of a portal
    /// by that name); 34000 if there is none.
    pub fn cursor_columns(&self, name: &str) -> Result<Vec<OutputColumn>> {
        match self.cursors.get(name) {
            Some(c) => Ok(c.columns.clone()),
            None => sql_err!(InvalidCursorName, "cursor \"{name}\" does not exist"),
        }
    }

    fn cursor_mut(&mut self, name: &ast::Ident) -> Result<&mut Cursor> {
        let name = crate::parser::ident(name);
        match self.cursors.get_mut(&name) {
            Some(c) => Ok(c),
            None => sql_err!(InvalidCursorName, "cursor \"{name}\" does not exist"),
        }
    }

    /// How many cursors the session has declared so far (a savepoint's
    /// mark for [`Session::close_cursors_since`]).
    pub(super) fn cursors_declared(&self) -> u64 {
        self.cursors_declared
    }

    /// ROLLBACK TO SAVEPOINT: closes the cursors declared after the
    /// `declared`th.
    pub(super) fn close_cursors_since(&mut self, declared: u64) {
        self.cursors.retain(|_, c| c.number <= declared);
    }

    /// The transaction ended (committed or not): its cursors go, but
    /// those declared WITH HOLD that it committed.
    pub(super) fn end_cursors(&mut self, committed: bool) {
        self.cursors.retain(|_, c| c.hold && (committed || !c.in_open_transaction));
        for c in self.cursors.values_mut() {
            c.in_open_transaction = false;
        }
    }
}

/// What `pg_cursors` lists of a session's `cursors`, by name.
pub(super) fn list(cursors: &std::collections::BTreeMap<String, Cursor>) -> Vec<crate::system::CursorInfo> {
    let info = |(name, c): (&String, &Cursor)| crate::system::CursorInfo {
        name: name.clone(),
        statement: c.statement.clone(),
        hold: c.hold,
        scrollable: !c.forward_only,
        created_us: c.created_us,
    };
    cursors.iter().map(info).collect()
}

impl Cursor {
    /// Moves as `movement` says; returns the rows passed (their places in
    /// `rows`), in the order met: a MOVE copies none.
    fn fetch(&mut self, movement: Movement) -> Result<Vec<usize>> {
        let n = self.rows.len() as i64;
        let position = self.position as i64;
        let (target, step_rows) = match movement {
            Movement::By(0) => (position, false),
            Movement::By(k) if k > 0 => (position.saturating_add(k).min(n + 1), true),
            Movement::By(k) => (position.saturating_add(k).max(0), true),
            Movement::Absolute(k) if k >= 0 => (k.min(n + 1), false),
            Movement::Absolute(k) => ((n + 1).saturating_add(k).max(0), false),
            Movement::Relative(k) => (position.saturating_add(k).clamp(0, n + 1), false),
        };
        // PostgreSQL's rule: no move back, no second read of the row it
        // is on, and no count from the end (it reads to the end first).
        let moves_on = matches!(movement, Movement::By(k) if k > 0);
        let rereads = target == position && (1..=n).contains(&position) && !moves_on;
        let from_end = matches!(movement, Movement::Absolute(k) if k < 0);
        if self.forward_only && (target < position || rereads || from_end) {
            return Err(Error {
                hint: Some("Declare it with SCROLL option to enable backward scan.".into()),
                ..Error::new(SqlState::ObjectNotInPrerequisiteState, "cursor can only scan forward")
            });
        }
        let row = |p: i64| (1..=n).contains(&p).then(|| (p - 1) as usize);
        let passed: Vec<usize> = if step_rows && target > position {
            (position + 1..=target.min(n)).filter_map(row).collect()
        } else if step_rows {
            (target.max(1)..position.min(n + 1)).rev().filter_map(row).collect()
        } else {
            row(target).into_iter().collect()
        };
        self.position = target as usize;
        Ok(passed)
    }
}

/// PostgreSQL's FETCH directions as movements.
fn movement(direction: &ast::FetchDirection) -> Result<Movement> {
    use ast::FetchDirection as D;
    let count = |v: &ast::ValueWithSpan| -> Result<i64> {
        let text = v.to_string();
        text.parse::<i64>().map_err(|_| Error::new(SqlState::SyntaxError, format!("invalid FETCH count \"{text}\"")))
    };
    Ok(match direction {
        D::Next | D::Forward { limit: None } => Movement::By(1),
        D::Prior | D::Backward { limit: None } => Movement::By(-1),
        D::Count { limit } | D::Forward { limit: Some(limit) } => Movement::By(count(limit)?),
        D::Backward { limit: Some(limit) } => Movement::By(count(limit)?.saturating_neg()),
        D::All | D::ForwardAll => Movement::By(i64::MAX),
        D::BackwardAll => Movement::By(i64::MIN + 1),
        D::First => Movement::Absolute(1),
        D::Last => Movement::Absolute(-1),
        D::Absolute { limit } => Movement::Absolute(count(limit)?),
        D::Relative { limit } => Movement::Relative(count(limit)?),
    })
}

/// The sink a cursor's query writes to: its rows kept (within `room`
/// bytes and `MEMORY_ROWS_MAX` rows), its notices passed on.
struct Kept<'s> {
    inner: &'s mut dyn Sink,
    columns: Vec<OutputColumn>,
    rows: Vec<Row>,
    bytes: usize,
    room: usize,
}

impl Sink for Kept<'_> {
    fn columns(&mut self, columns: &[OutputColumn]) -> Result<()> {
        self.columns = columns.to_vec();
        self.rows.clear();
        self.bytes = 0;
        Ok(())
    }

    fn row(&mut self, row: Row) -> Result<()> {
        self.bytes = self.bytes.saturating_add(crate::exec::row_bytes(&row));
        if self.bytes > self.room || self.rows.len() >= limits::MEMORY_ROWS_MAX {
            return sql_err!(
                OutOfMemory,
                "the session's cursors would hold more than {} MiB or a cursor more than {} rows (SpanDB reads a \
                 cursor's rows when it is declared)",
                limits::MEMORY_BYTES_MAX / (1024 * 1024),
                limits::MEMORY_ROWS_MAX
            );
        }
        self.rows.push(row);
        Ok(())
    }

    fn complete(&mut self, _tag: &str) -> Result<()> {
        Ok(())
    }

    fn notice(&mut self, message: &str) -> Result<()> {
        self.inner.notice(message)
    }

    fn warning(&mut self, state: SqlState, message: &str) -> Result<()> {
        self.inner.warning(state, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Value;

    fn cursor(n: i64, forward_only: bool) -> Cursor {
        Cursor {
            columns: Vec::new(),
            rows: (1..=n).map(|i| vec![Value::Int8(i)]).collect(),
            position: 0,
            bytes: 0,
            forward_only,
            hold: false,
            in_open_transaction: true,
            number: 1,
            statement: String::new(),
            created_us: 0,
        }
    }

    /// The ids of the rows passed: row `i` of [`cursor`]'s holds `i + 1`.
    fn ids(passed: Vec<usize>) -> Vec<i64> {
        passed.into_iter().map(|i| i as i64 + 1).collect()
    }

    /// Goal: every FETCH form moves and returns rows as PostgreSQL's do
    /// (the expectations are PostgreSQL 15's answers over five rows).
    #[test]
    fn fetches_move_as_postgresql_s() {
        let mut c = cursor(5, false);
        let mut go = |m: Movement| ids(c.fetch(m).expect("a scrollable cursor moves"));
        assert_eq!(go(Movement::By(2)), [1, 2]);
        assert_eq!(go(Movement::By(0)), [2], "FETCH 0 is the current row");
        assert_eq!(go(Movement::By(-1)), [1]);
        assert_eq!(go(Movement::By(-1)), Vec::<i64>::new(), "before the first row");
        assert_eq!(go(Movement::By(i64::MAX)), [1, 2, 3, 4, 5]);
        assert_eq!(go(Movement::By(1)), Vec::<i64>::new(), "after the last row");
        assert_eq!(go(Movement::By(-2)), [5, 4], "back from after the last");
        assert_eq!(go(Movement::Absolute(-1)), [5]);
        assert_eq!(go(Movement::Absolute(2)), [2]);
        assert_eq!(go(Movement::Relative(2)), [4]);
        assert_eq!(go(Movement::Relative(9)), Vec::<i64>::new());
        assert_eq!(go(Movement::By(i64::MIN + 1)), [5, 4, 3, 2, 1]);
        assert_eq!(go(Movement::Absolute(0)), Vec::<i64>::new());
        assert_eq!(go(Movement::Absolute(9)), Vec::<i64>::new());
        assert_eq!(go(Movement::Absolute(-9)), Vec::<i64>::new());
        assert_eq!(go(Movement::By(1)), [1]);
    }

    /// Goal: a NO SCROLL cursor moves forward only (55000 otherwise).
    #[test]
    fn a_no_scroll_cursor_moves_forward_only() {
        let mut c = cursor(3, true);
        assert!(c.fetch(Movement::By(0)).expect("nothing to read again yet").is_empty());
        assert_eq!(ids(c.fetch(Movement::By(1)).expect("forward")), [1]);
        let e = c.fetch(Movement::By(-1)).expect_err("backward");
        assert_eq!(e.state, SqlState::ObjectNotInPrerequisiteState);
        assert!(c.fetch(Movement::By(0)).is_err(), "the current row again");
        assert!(c.fetch(Movement::Absolute(-1)).is_err(), "LAST reads to the end and back");
        assert_eq!(ids(c.fetch(Movement::Absolute(3)).expect("forward")), [3]);
        assert!(c.fetch(Movement::Absolute(1)).is_err());
        assert!(c.fetch(Movement::Absolute(9)).expect("past the end").is_empty());
        assert!(c.fetch(Movement::Absolute(9)).expect("past the end, again").is_empty());
    }
}
