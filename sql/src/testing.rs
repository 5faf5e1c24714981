//! The goldenscript runner for SQL scripts, shared by the sql crate's
//! tests (in-memory engine) and the cli's tests (a real cluster).
//!
//! Syntax (goldenscript): `> SQL` runs a statement in the default
//! session; `a:> SQL` in session `a` (sessions are independent clients of
//! one database); `!>` expects an error, printed with its SQLSTATE;
//! `[header]>` prints column names and types before the rows; `[tag]>`
//! prints the command tag even after rows; `dump` prints every SQL
//! key-value pair (keys decoded). Rows print as comma-separated values,
//! NULL as `NULL`; statements that return no rows print their command
//! tag.
//!
//! Also the sqllogictest driver (`run_slt_file`): the corpus in
//! `tests/slt/` holds PostgreSQL 15's answers (see `tests/slt.rs`).

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;

use std::path::Path;

use sqllogictest::{DBOutput, DefaultColumnType, Record, Runner, DB};

use crate::encoding;
use crate::kv::{scan_prefix, Engine, Mode};
use crate::{Collected, DataType, Session, Value};

/// Runs SQL goldenscripts against one database.
pub struct ScriptRunner {
    engine: Arc<dyn Engine>,
    sessions: HashMap<String, Session>,
}

impl ScriptRunner {
    pub fn new(engine: Arc<dyn Engine>) -> ScriptRunner {
        ScriptRunner { engine, sessions: HashMap::new() }
    }

    /// Every SQL pair, read at the latest timestamp.
    /// Every pair of the database, or those whose printed key starts
    /// with `prefix`.
    fn dump(&self, prefix: Option<&str>) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        let mut txn = self.engine.begin(Mode::ReadOnly)?;
        for (k, v) in scan_prefix(txn.as_mut(), &[encoding::SQL_PREFIX], crate::limits::SCAN_PAGE_ROWS)? {
            let value = match encoding::decode_row(&v) {
                Ok(cols) if !v.is_empty() => {
                    let cols: Vec<String> = cols.iter().map(|(id, v)| format!("{id}:{}", show(v))).collect();
                    format!("{{{}}}", cols.join(", "))
                }
                _ => format!("{:?}", String::from_utf8_lossy(&v)),
            };
            let key = encoding::pretty_key(&k);
            if prefix.is_some_and(|p| !key.starts_with(p)) {
                continue;
            }
            writeln!(out, "{key} → {value}")?;
        }
        Ok(out)
    }
}

/// A value as the scripts print it.
pub fn show(v: &Value) -> String {
    match crate::ops::to_text(v) {
        None => "NULL".into(),
        Some(s) => s,
    }
}

impl goldenscript::Runner for ScriptRunner {
    type Command = goldenscript::Command;

    fn run(
        &mut self,
        command: &goldenscript::Command,
        context: &goldenscript::Context,
    ) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        if command.name == "dump" {
            let mut args = command.consume_args();
            let prefix = args.take_key("prefix");
            args.reject_next()?;
            return self.dump(prefix);
        }
        let name = context.prefix.clone().unwrap_or_default();
        let engine = self.engine.clone();
        let session = self.sessions.entry(name).or_insert_with(|| Session::new(engine));
        let mut sink = Collected::default();
        let result = session.execute(&command.name, &mut sink);
        for (state, w) in &sink.warnings {
            writeln!(out, "WARNING: {} {w}", state.code())?;
        }
        for n in &sink.notices {
            writeln!(out, "NOTICE: {n}")?;
        }
        if let Err(e) = result {
            let mut msg = format!("{} {}", e.state.code(), e.message);
            if let Some(d) = &e.detail {
                msg.push_str(&format!(" ({d})"));
            }
            if let Some(p) = e.position {
                msg.push_str(&format!(" at {p}"));
            }
            return Err(msg.into());
        }
        if context.tags.contains("header") {
            let cols: Vec<String> = sink.columns.iter().map(|c| format!("{} {}", c.name, c.data_type)).collect();
            writeln!(out, "{}", cols.join(", "))?;
        }
        for row in &sink.rows {
            writeln!(out, "{}", row.iter().map(show).collect::<Vec<_>>().join(", "))?;
        }
        let last_is_select = sink.tags.last().is_some_and(|t| t.starts_with("SELECT"));
        if sink.rows.is_empty() && !last_is_select || context.tags.contains("tag") {
            for t in &sink.tags {
                writeln!(out, "{t}")?;
            }
        }
        Ok(out)
    }
}

// ---- sqllogictest --------------------------------------------------------

/// The label `skipif`/`onlyif` conditions name.
pub const ENGINE_NAME: &str = "spandb";

/// A statement's failure as the runner sees it: SQLSTATE, then message
/// (inline `error <regex>` expectations match against this text).
#[derive(Debug)]
pub struct SltError(crate::Error);

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
pub struct SpanDb {
    session: Session,
}

fn column_type(t: DataType) -> DefaultColumnType {
    match t {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => DefaultColumnType::Integer,
        DataType::Float4 | DataType::Float8 | DataType::Numeric(_) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

fn cell(v: &Value) -> String {
    match crate::ops::to_text(v) {
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

/// Runs every record of the sqllogictest `file` against `engine` (one
/// session per connection), all of them even after a failure; returns
/// the failures. `SLT_TRACE=1` prints each record before it runs.
pub fn run_slt_file(file: &Path, engine: Arc<dyn Engine>) -> Vec<String> {
    let records = match sqllogictest::parse_file::<DefaultColumnType>(file) {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot parse: {e}")],
    };
    let mut runner = Runner::new(move || {
        let engine = engine.clone();
        async move { Ok::<_, SltError>(SpanDb { session: Session::new(engine) }) }
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

// ---- consistency of indexes ---------------------------------------------------

/// Checks, in one snapshot, that every secondary index of `table` holds
/// exactly the entries its rows call for: no row without its entries, no
/// entry without its row. `Err` lists the differences.
pub fn check_indexes(engine: &dyn Engine, table: &str) -> Result<(), String> {
    use std::collections::BTreeMap;

    let mut txn = engine.begin(Mode::ReadOnly).map_err(|e| e.to_string())?;
    let txn = txn.as_mut();
    let desc = crate::catalog::Catalog::must_table(txn, table).map_err(|e| e.message)?;
    let page = crate::limits::SCAN_PAGE_ROWS;
    let scan = |txn: &mut dyn crate::kv::Transaction, prefix: Vec<u8>| {
        scan_prefix(txn, &prefix, page).map_err(|e| e.to_string())
    };
    let rows = scan(txn, encoding::index_prefix(desc.id, crate::catalog::PRIMARY_INDEX_ID))?;
    let mut problems = Vec::new();
    for index in &desc.indexes {
        let mut expected = BTreeMap::new();
        for (k, v) in &rows {
            let row = crate::layout::decode_row(&desc, k, v).map_err(|e| e.message)?;
            let (key, value) = crate::layout::index_entry(&desc, index, &row).map_err(|e| e.message)?;
            expected.insert(key, value);
        }
        let actual: BTreeMap<Vec<u8>, Vec<u8>> =
            scan(txn, encoding::index_prefix(desc.id, index.id))?.into_iter().collect();
        for (k, v) in &expected {
            match actual.get(k) {
                None => problems.push(format!("{}: no entry {} for its row", index.name, encoding::pretty_key(k))),
                Some(a) if a != v => {
                    problems.push(format!("{}: entry {} points elsewhere", index.name, encoding::pretty_key(k)))
                }
                Some(_) => {}
            }
        }
        for k in actual.keys().filter(|k| !expected.contains_key(*k)) {
            problems.push(format!("{}: entry {} without its row", index.name, encoding::pretty_key(k)));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}
