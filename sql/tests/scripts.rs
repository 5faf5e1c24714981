//! The SQL goldenscripts in `src/testscripts/`, run against the
//! in-memory engine. They are the specification by example: each file is
//! one area (schema, writes, queries, joins, transactions, anomalies...).
//!
//! Syntax (goldenscript): `> SQL` runs a statement in the default
//! session; `a:> SQL` in session `a` (sessions are independent clients of
//! one database); `!>` expects an error, printed with its SQLSTATE;
//! `[header]>` prints column names and types before the rows; `dump`
//! prints every key-value pair (keys decoded). Rows print as
//! comma-separated values, NULL as `NULL`; statements that return no rows
//! print their command tag.

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::sync::Arc;

use sql::memory::MemoryEngine;
use sql::{Collected, Session};

struct Runner {
    engine: MemoryEngine,
    sessions: HashMap<String, Session>,
}

impl Runner {
    fn new() -> Runner {
        Runner { engine: MemoryEngine::new(), sessions: HashMap::new() }
    }
}

fn show(v: &sql::Value) -> String {
    match sql::ops::to_text(v) {
        None => "NULL".into(),
        Some(s) => s,
    }
}

impl goldenscript::Runner for Runner {
    type Command = goldenscript::Command;

    fn run(&mut self, command: &goldenscript::Command, context: &goldenscript::Context) -> Result<String, Box<dyn Error>> {
        let mut out = String::new();
        if command.name == "dump" {
            for (k, v) in self.engine.dump() {
                let value = match sql::encoding::decode_row(&v) {
                    Ok(cols) if !v.is_empty() => {
                        let cols: Vec<String> = cols.iter().map(|(id, v)| format!("{id}:{}", show(v))).collect();
                        format!("{{{}}}", cols.join(", "))
                    }
                    _ => format!("{:?}", String::from_utf8_lossy(&v)),
                };
                writeln!(out, "{} → {value}", sql::encoding::pretty_key(&k))?;
            }
            return Ok(out);
        }
        let name = context.prefix.clone().unwrap_or_default();
        let engine = self.engine.clone();
        let session = self.sessions.entry(name).or_insert_with(|| Session::new(Arc::new(engine)));
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

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() -> std::io::Result<()> {
            goldenscript::run(&mut Runner::new(), concat!("src/testscripts/", stringify!($name)))
        }
    )*};
}

scripts!(schema, writes, queries, joins, aggregates, subqueries, transactions, anomalies, types, indexes, errors, time);
