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

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::encoding;
use crate::kv::{Engine, Mode};
use crate::{Collected, Session, Value};

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
    fn dump(&self) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        let mut txn = self.engine.begin(Mode::ReadOnly)?;
        let mut from = vec![encoding::SQL_PREFIX];
        let end = encoding::prefix_end(&from);
        loop {
            let page = txn.scan(&from, &end, 256)?;
            let full = page.len() == 256;
            for (k, v) in &page {
                let value = match encoding::decode_row(v) {
                    Ok(cols) if !v.is_empty() => {
                        let cols: Vec<String> = cols.iter().map(|(id, v)| format!("{id}:{}", show(v))).collect();
                        format!("{{{}}}", cols.join(", "))
                    }
                    _ => format!("{:?}", String::from_utf8_lossy(v)),
                };
                writeln!(out, "{} → {value}", encoding::pretty_key(k))?;
                from = k.clone();
                from.push(0);
            }
            if !full {
                break;
            }
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

    fn run(&mut self, command: &goldenscript::Command, context: &goldenscript::Context) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        if command.name == "dump" {
            return self.dump();
        }
        let name = context.prefix.clone().unwrap_or_default();
        let engine = self.engine.clone();
        let session = self.sessions.entry(name).or_insert_with(|| Session::new(engine));
        let mut sink = Collected::default();
        let result = session.execute(&command.name, &mut sink);
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
