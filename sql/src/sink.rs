//! Where a statement's results go: the [`Sink`] a session writes columns,
//! rows, notices and the command tag to, as they are produced. The
//! PostgreSQL gateway's sink encodes them onto the wire; [`Collected`]
//! keeps them (tests, the shell, small results).

use crate::error::{Result, SqlState};
use crate::plan::OutputColumn;
use crate::types::Row;

/// Where a statement's results go.
pub trait Sink {
    /// A statement that returns rows is about to: its columns.
    fn columns(&mut self, columns: &[OutputColumn]) -> Result<()>;
    fn row(&mut self, row: Row) -> Result<()>;
    /// The statement is done: PostgreSQL's command tag (`SELECT 3`,
    /// `INSERT 0 1`, `CREATE TABLE`, ...).
    fn complete(&mut self, tag: &str) -> Result<()>;
    /// A notice for the user (`relation "t" already exists, skipping`).
    fn notice(&mut self, _message: &str) -> Result<()> {
        Ok(())
    }
    /// A warning with its SQLSTATE (`BEGIN` inside a block: 25001 "there
    /// is already a transaction in progress"); a sink that keeps no
    /// severity takes it as a notice.
    fn warning(&mut self, _state: SqlState, message: &str) -> Result<()> {
        self.notice(message)
    }
}

/// A sink that keeps everything (tests, small results).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Collected {
    pub columns: Vec<OutputColumn>,
    pub rows: Vec<Row>,
    pub tags: Vec<String>,
    /// Notices and warnings, in order: a warning with its SQLSTATE.
    pub notices: Vec<String>,
    pub warnings: Vec<(SqlState, String)>,
}

impl Sink for Collected {
    fn columns(&mut self, columns: &[OutputColumn]) -> Result<()> {
        self.columns = columns.to_vec();
        self.rows.clear();
        Ok(())
    }
    fn row(&mut self, row: Row) -> Result<()> {
        self.rows.push(row);
        Ok(())
    }
    fn complete(&mut self, tag: &str) -> Result<()> {
        self.tags.push(tag.to_string());
        Ok(())
    }
    fn notice(&mut self, message: &str) -> Result<()> {
        self.notices.push(message.to_string());
        Ok(())
    }
    fn warning(&mut self, state: SqlState, message: &str) -> Result<()> {
        self.warnings.push((state, message.to_string()));
        Ok(())
    }
}
