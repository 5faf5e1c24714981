//! The sqllogictest corpus in `tests/slt/`, run against the in-memory
//! engine. Unlike the goldenscripts (whose expected output is whatever
//! SpanDB printed when they were written), every expected result here is
//! what PostgreSQL 15 returns for the same statements, so a difference is
//! a bug or a deliberate departure, and the file says which.
//!
//! Conventions of the files (sqllogictest's, with PostgreSQL's text
//! output): NULL prints as `NULL`, the empty string as `(empty)`, booleans
//! as `t`/`f`; column types are `I` (integers), `R` (floats) and `T`
//! (everything else), and they are checked. `statement error (23505)`
//! expects that SQLSTATE. Records marked `skipif spandb` hold
//! PostgreSQL's answer where SpanDB gives a wrong one (under a `# BUG:`
//! comment) or does not support the feature yet (`# MISSING:`); remove
//! the mark once fixed. `onlyif spandb` records hold SpanDB's answer
//! where it differs from PostgreSQL on purpose (under a comment saying
//! why).
//!
//! The expected results were produced by PostgreSQL 15.18 itself:
//! `tests/slt/pg.py check FILE...` runs the files against a PostgreSQL
//! server (as engine `postgres`) and reports any disagreement; `fill`
//! writes PostgreSQL's rows into the file.
//!
//! Each file runs in a fresh database, one session per `connection`
//! name. A file's test runs every record, even after a failure, and
//! reports all failures at once. `SLT_TRACE=1` prints each record before
//! it runs (to find the one that crashes).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sql::memory::MemoryEngine;
use sql::{Collected, DataType, Session};
use sqllogictest::{DBOutput, DefaultColumnType, Record, Runner, DB};

/// The label `skipif`/`onlyif` conditions name.
const ENGINE_NAME: &str = "spandb";

/// A statement's failure as the runner sees it: SQLSTATE, then message
/// (inline `error <regex>` expectations match against this text).
#[derive(Debug)]
struct SltError(sql::Error);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.state.code(), self.0.message)?;
        if let Some(d) = &self.0.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for SltError {}

/// One connection: a session of a database shared by the file.
struct SpanDb {
    session: Session,
}

fn column_type(t: DataType) -> DefaultColumnType {
    match t {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => DefaultColumnType::Integer,
        DataType::Float4 | DataType::Float8 => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn cell(v: &sql::Value) -> String {
    match sql::ops::to_text(v) {
        None => "NULL".into(),
        Some(s) if s.is_empty() => "(empty)".into(),
        Some(s) => s,
    }
}

/// The row count a command tag reports (`INSERT 0 3`, `UPDATE 2`), 0 for
/// tags without one (`CREATE TABLE`).
fn tag_count(tag: &str) -> u64 {
    tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl DB for SpanDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let mut sink = Collected::default();
        self.session.execute(sql, &mut sink).map_err(SltError)?;
        if sink.columns.is_empty() {
            return Ok(DBOutput::StatementComplete(sink.tags.last().map_or(0, |t| tag_count(t))));
        }
        Ok(DBOutput::Rows {
            types: sink.columns.iter().map(|c| column_type(c.data_type)).collect(),
            rows: sink.rows.iter().map(|r| r.iter().map(cell).collect()).collect(),
        })
    }

    fn engine_name(&self) -> &str {
        ENGINE_NAME
    }

    fn error_sql_state(err: &SltError) -> Option<String> {
        Some(err.0.state.code().to_string())
    }
}

fn slt_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt")
}

/// Runs every record of `file` in a fresh database; returns the failures.
fn run_file(file: &Path) -> Vec<String> {
    let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot parse: {e}")],
    };
    let engine = MemoryEngine::new();
    let mut runner = Runner::new(move || {
        let engine = engine.clone();
        async move { Ok::<_, SltError>(SpanDb { session: Session::new(Arc::new(engine)) }) }
    });
    runner.add_label(ENGINE_NAME);
    runner.with_column_validator(sqllogictest::strict_column_validator);
    let trace = std::env::var_os("SLT_TRACE").is_some();
    let mut failures = Vec::new();
    for record in records {
        if trace {
            eprintln!("{record}");
        }
        if let Record::Halt { .. } = record {
            break;
        }
        if let Err(e) = runner.run(record) {
            failures.push(e.display(false).to_string());
        }
    }
    failures
}

fn check(name: &str) {
    let file = slt_dir().join(format!("{name}.slt"));
    let failures = run_file(&file);
    if !failures.is_empty() {
        panic!("{} failure(s) in {}:\n\n{}", failures.len(), file.display(), failures.join("\n"));
    }
}

macro_rules! slt {
    ($($name:ident),* $(,)?) => {
        $(
            /// Goal: SpanDB answers this file's statements as PostgreSQL 15
            /// does. Method: run every record against a fresh in-memory
            /// database and collect every mismatch.
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        /// Goal: no `.slt` file is left out of the list above. Method:
        /// compare the directory's files with the list.
        #[test]
        fn every_file_runs() {
            let listed: std::collections::BTreeSet<String> = [$(stringify!($name)),*].iter().map(|s| s.to_string()).collect();
            let present: std::collections::BTreeSet<String> = std::fs::read_dir(slt_dir())
                .expect("tests/slt exists")
                .filter_map(|e| {
                    let path = e.expect("a directory entry").path();
                    (path.extension()? == "slt").then(|| path.file_stem()?.to_str().map(String::from))?
                })
                .collect();
            assert_eq!(listed, present, "tests/slt.rs must list every tests/slt/*.slt file");
        }
    };
}

slt!(select, join, aggregate, subquery, setop, dml, types, ddl, index);
