//! SQL's prepared statements: `PREPARE`, `EXECUTE` and `DEALLOCATE`, as
//! PostgreSQL has them, for scripts and tools that prepare in SQL rather
//! than with the protocol's Parse (psql scripts, connection poolers in
//! statement mode, stored SQL files).
//!
//! ```text
//!   PREPARE pick (int) AS SELECT v FROM t WHERE id = $1    PREPARE
//!   EXECUTE pick (2)                                       the rows; SELECT 1
//!   EXECUTE pick ('2')                                     the same ($1 is int)
//!   DEALLOCATE pick                                        DEALLOCATE
//! ```
//!
//! The model: `PREPARE` is the protocol's Parse under a name the session
//! keeps ([`Session::prepare`] infers the parameter types the statement
//! does not declare, and its columns); `EXECUTE` is Bind and Execute, its
//! arguments evaluated first, each as a value of its parameter's type
//! (an assignment cast, as PostgreSQL does: `1.0` for an int is 1,
//! `3000000000` is 22003). The statement runs as if sent itself: in the
//! block if there is one, else in a transaction of its own, with the plan
//! kept across executions ("Kept plans"). An EXECUTE prepared through the
//! protocol with parameters of its own (`EXECUTE pick($1)`) announces a
//! bare `$n` argument as its parameter's type.
//!
//! Invariants:
//! - A name names one statement until DEALLOCATE (or DISCARD ALL) frees
//!   it; PREPARE of a held name is 42P05 and changes nothing. Prepared
//!   statements outlive transactions: a PREPARE in a block that rolls
//!   back is still there (as in PostgreSQL).
//! - An argument is evaluated without reading a table (a subquery, or a
//!   cast to `regclass`, is 0A000): the statement's transaction has not
//!   begun when it is.
//! - An execution returns the columns the PREPARE announced, or fails
//!   (0A000, "cached plan must not change result type") after a schema
//!   change that altered them.
//!
//! The gateway keeps the protocol's prepared statements itself; its
//! `DEALLOCATE` frees one of those by the name, else asks the session.

use std::sync::Arc;

use sqlparser::ast;

use super::{NoReads, Session, TxnStatus};
use crate::error::Result;
use crate::exec::Cx;
use crate::kv::Mode;
use crate::plan::OutputColumn;
use crate::sink::Sink;
use crate::types::DataType;
use crate::{limits, planner, sql_err};

/// What Describe says of a statement: its parameters' types (`None`:
/// not known) and its columns.
pub(super) type Described = (Vec<Option<DataType>>, Vec<OutputColumn>);

impl Session {
    /// `PREPARE name [(type, ...)] AS statement`.
    pub(super) fn prepare_named(
        &mut self,
        name: &ast::Ident,
        data_types: &[ast::DataType],
        statement: &ast::Statement,
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let name = crate::parser::ident(name);
        use ast::Statement as S;
        if !matches!(statement, S::Query(_) | S::Insert(_) | S::Update(_) | S::Delete(_)) {
            return sql_err!(SyntaxError, "PREPARE takes a SELECT, VALUES, INSERT, UPDATE or DELETE");
        }
        if self.sql_prepared.contains_key(&name) {
            return sql_err!(DuplicatePreparedStatement, "prepared statement \"{name}\" already exists");
        }
        if self.sql_prepared.len() >= limits::SQL_PREPARED_MAX {
            return sql_err!(
                ProgramLimitExceeded,
                "a session may hold at most {} statements prepared by PREPARE",
                limits::SQL_PREPARED_MAX
            );
        }
        let declared = data_types.iter().map(|t| planner::data_type(t).map(Some)).collect::<Result<Vec<_>>>()?;
        let text = statement.to_string();
        let Some(prepared) = self.prepare(&text, &declared)? else {
            return sql_err!(SyntaxError, "PREPARE needs a statement");
        };
        self.sql_prepared.insert(name, Arc::new(prepared));
        sink.complete("PREPARE")
    }

    /// `EXECUTE name [(argument, ...)]`: the statement's rows and tag.
    pub(super) fn execute_named(
        &mut self,
        sql: &str,
        name: &ast::ObjectName,
        arguments: &[ast::Expr],
        sink: &mut dyn Sink,
    ) -> Result<()> {
        let name = planner::object_name(name)?;
        let Some(prepared) = self.sql_prepared.get(&name).cloned() else {
            return sql_err!(InvalidSqlStatementName, "prepared statement \"{name}\" does not exist");
        };
        if arguments.len() != prepared.params.len() {
            return sql_err!(
                SyntaxError,
                "wrong number of parameters for prepared statement \"{name}\": expected {}, got {}",
                prepared.params.len(),
                arguments.len()
            );
        }
        // In a block, `now()` is the block's.
        let now_us = if self.status == TxnStatus::InBlock { self.txn_now_us } else { self.now_us() };
        let mut values = Vec::with_capacity(arguments.len());
        for (argument, ty) in arguments.iter().zip(&prepared.params) {
            let mut none = NoReads { wanted: false, mode: Mode::ReadOnly };
            let types = (*ty, self.params.types.as_slice());
            let value = planner::bind_argument(&mut none, sql, argument, types).and_then(|bound| {
                if !bound.is_row_free() {
                    return sql_err!(FeatureNotSupported, "cannot use subquery in EXECUTE parameter");
                }
                let mut cx = Cx::new(&mut none, self.params.values.clone(), now_us);
                cx.settings = self.settings.clone();
                // PostgreSQL's assignment cast: 1.0 for an int is 1,
                // 3000000000 for one is 22003, 42 for a text is '42'.
                crate::ops::assign(&crate::exec::eval(&bound, &[], &mut cx)?, *ty)
            });
            match value {
                Ok(v) => values.push(v),
                Err(_) if none.wanted => {
                    return sql_err!(FeatureNotSupported, "an EXECUTE parameter cannot read a table");
                }
                Err(e) => return Err(e),
            }
        }
        self.with_bound(&prepared, values, sink, |session, prepared, sink| {
            session.run_statement(&prepared.sql, &prepared.parsed, sink)
        })
    }

    /// `DEALLOCATE [PREPARE] name | ALL`.
    pub(super) fn deallocate_named(&mut self, name: &ast::Ident, sink: &mut dyn Sink) -> Result<()> {
        if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
            self.sql_prepared.clear();
            return sink.complete("DEALLOCATE ALL");
        }
        let name = crate::parser::ident(name);
        if self.sql_prepared.remove(&name).is_none() {
            return sql_err!(InvalidSqlStatementName, "prepared statement \"{name}\" does not exist");
        }
        sink.complete("DEALLOCATE")
    }

    /// What Describe announces of an `EXECUTE` of a statement prepared by
    /// name, if `statement` is one: the types of the `$n` its arguments
    /// are (a bare `$n` takes its parameter's type), and the columns it
    /// returns. 26000 if no statement has the name.
    pub(super) fn describe_execute_named(&self, statement: &ast::Statement) -> Result<Option<Described>> {
        let ast::Statement::Execute { name: Some(name), parameters, .. } = statement else { return Ok(None) };
        if !is_execute_named(statement) {
            return Ok(None);
        }
        let name = planner::object_name(name)?;
        let Some(prepared) = self.sql_prepared.get(&name) else {
            return sql_err!(InvalidSqlStatementName, "prepared statement \"{name}\" does not exist");
        };
        let mut types = Vec::new();
        for (argument, ty) in parameters.iter().zip(&prepared.params) {
            let ast::Expr::Value(v) = argument else { continue };
            let ast::Value::Placeholder(p) = &v.value else { continue };
            let n = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok());
            let Some(n) = n.filter(|n| (1..=limits::PARAMETERS_MAX).contains(n)) else {
                continue;
            };
            if n > types.len() {
                types.resize(n, None);
            }
            types[n - 1] = Some(*ty);
        }
        Ok(Some((types, prepared.columns.clone())))
    }
}

/// Whether an EXECUTE is one of a statement prepared by name (not
/// `EXECUTE IMMEDIATE` or a procedure call of another dialect).
pub(super) fn is_execute_named(statement: &ast::Statement) -> bool {
    matches!(
        statement,
        ast::Statement::Execute { name: Some(_), immediate: false, into, using, output: false, default: false, .. }
            if into.is_empty() && using.is_empty()
    )
}
