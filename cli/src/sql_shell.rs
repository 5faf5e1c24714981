//! `spandb sql`: the SQL shell, psql-style.
//!
//! Interactive: statements may span lines and end with `;`; history is
//! kept in `~/.spandb_sql_history`; backslash meta-commands (`\?` lists
//! them) inspect the schema and change the output. Ctrl-C while a
//! statement runs cancels it (57014), not the shell; Ctrl-C at the prompt
//! clears the line; Ctrl-D or `\q` leaves.
//!
//! Scripted: `-e`/`-c STATEMENT` (repeatable) and `-f FILE` run in order
//! and stop at the first failing statement with a non-zero exit code.
//!
//! Errors print as PostgreSQL's do: `ERROR:  message`, the SQLSTATE, and
//! a caret under the position in the statement when there is one.
//!
//! The SQL layer is synchronous; it runs on a blocking thread and reaches
//! the cluster through [`crate::sql_engine::ClientEngine`].

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use rustyline::error::ReadlineError;
use sql::plan::OutputColumn;
use sql::{Session, Sink, Value};

use crate::sql_engine::ClientEngine;

#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// Any server of the cluster (host:port).
    #[arg(long)]
    pub addr: String,
    /// Run this statement and exit (repeatable; with -f, these run
    /// first, then the file).
    #[arg(short = 'e', short_alias = 'c', long = "execute", value_name = "STATEMENT")]
    pub execute: Vec<String>,
    /// Run the statements in this file.
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// How results print.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Each table this shell creates starts in shards of its own (on in
    /// `spandb demo`; see `spandb start --sql-split-tables`). Splitting
    /// changes the cluster: it needs --cluster.
    #[arg(long, requires = "cluster")]
    pub split_tables: bool,
    /// The cluster description the servers run with, for --split-tables
    /// (its peer secret).
    #[arg(long)]
    pub cluster: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Tsv,
    Json,
}

/// Rows a table-format result holds before printing a block (columns
/// are aligned within a block).
const TABLE_BLOCK_ROWS: usize = 1_000;

const HELP: &str = "\
SQL statements end with ';' and may span lines.
meta-commands:
  \\dt               list tables
  \\d                list tables
  \\d TABLE          describe a table: columns, primary key, indexes
  \\di               list indexes
  \\timing           toggle printing each statement's time
  \\x                toggle expanded output (one line per column)
  \\kv               switch to the key-value prompt
  \\?                this help
  \\q                quit (Ctrl-D works too)";

pub async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let config = match &args.cluster {
        Some(path) => crate::admin::operator_config(path)?,
        None => client::ClientConfig::default(),
    };
    let client = client::Client::connect_with([args.addr.clone()], config)
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    let engine = ClientEngine::new(client, tokio::runtime::Handle::current(), args.addr.clone());
    let cancel = Arc::new(AtomicBool::new(false));
    let engine = engine.with_table_splits(args.split_tables);
    // Advisory locks are taken and renewed (every few seconds, until the
    // shell exits) through an engine a cancel does not stop.
    let uncancelled: Arc<dyn sql::kv::Engine> = Arc::new(engine.clone());
    let registry = Arc::new(sql::advisory::Registry::default());
    crate::pg::Renewer::spawn_thread(uncancelled.clone(), registry.clone(), Arc::new(AtomicBool::new(false)));
    let engine = Arc::new(engine.with_cancel(cancel.clone()));
    let watchdog = Arc::new(sql::timeout::Watchdog::default());
    let _watchdog = crate::pg::WatchdogThread::spawn(watchdog.clone());
    let session = Session::new(engine.clone())
        .with_advisory(uncancelled, registry)
        .with_watchdog(watchdog)
        .with_cancel(cancel.clone());
    let running = Arc::new(AtomicBool::new(false));
    // Ctrl-C cancels the running statement; at the prompt the line editor
    // sees it as a key and clears the line.
    {
        let (cancel, running) = (cancel.clone(), running.clone());
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                if running.load(Ordering::SeqCst) {
                    cancel.store(true, Ordering::SeqCst);
                }
            }
        });
    }
    let scripted = !args.execute.is_empty() || args.file.is_some();
    // The session runs on a thread with a stack for the deepest statement
    // the parser lets through (`sql::limits::SESSION_STACK_BYTES`).
    let shell = std::thread::Builder::new()
        .name("spandb-sql".into())
        .stack_size(sql::limits::SESSION_STACK_BYTES)
        .spawn(move || {
            let mut shell = Shell { session, engine, format: args.format, timing: false, expanded: false, running };
            if scripted {
                shell.run_script(&args)
            } else {
                shell.interactive()
            }
        })
        .context("starting the shell thread")?;
    tokio::task::spawn_blocking(move || shell.join())
        .await
        .context("the shell thread failed")?
        .map_err(|_| anyhow::anyhow!("the shell thread panicked"))?
}

/// What the interactive loop ended with.
enum Next {
    Quit,
    KeyValue,
}

struct Shell {
    session: Session,
    engine: Arc<ClientEngine>,
    format: Format,
    timing: bool,
    expanded: bool,
    running: Arc<AtomicBool>,
}

impl Shell {
    fn run_script(&mut self, args: &SqlArgs) -> anyhow::Result<()> {
        let mut sources: Vec<(String, String)> =
            args.execute.iter().enumerate().map(|(i, s)| (format!("-e #{}", i + 1), s.clone())).collect();
        if let Some(path) = &args.file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            sources.push((path.display().to_string(), text));
        }
        for (name, text) in sources {
            if !self.run_text(&text) {
                anyhow::bail!("a statement in {name} failed");
            }
        }
        Ok(())
    }

    fn interactive(&mut self) -> anyhow::Result<()> {
        loop {
            match self.interactive_loop()? {
                Next::Quit => return Ok(()),
                Next::KeyValue => {
                    println!("key-value prompt; 'exit' returns to SQL");
                    let handle = tokio::runtime::Handle::current();
                    let addr = self.engine_addr();
                    if let Err(e) = handle.block_on(crate::shell::run(&addr)) {
                        println!("error: {e:#}");
                    }
                }
            }
        }
    }

    fn engine_addr(&self) -> String {
        self.engine.seed_addr()
    }

    fn interactive_loop(&mut self) -> anyhow::Result<Next> {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        let history = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".spandb_sql_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        println!("SpanDB SQL shell. Statements end with ';'. Type \\? for help, \\q to quit.");
        let mut buffer = String::new();
        let result = loop {
            let prompt = if buffer.is_empty() { "spandb> " } else { "     -> " };
            let line = match editor.readline(prompt) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => {
                    buffer.clear();
                    continue;
                }
                Err(ReadlineError::Eof) => break Next::Quit,
                Err(e) => return Err(e).context("reading input"),
            };
            let trimmed = line.trim();
            if buffer.is_empty() && trimmed.starts_with('\\') {
                let _ = editor.add_history_entry(trimmed);
                match self.meta(trimmed) {
                    Some(next) => break next,
                    None => continue,
                }
            }
            if trimmed.is_empty() && buffer.is_empty() {
                continue;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if statement_complete(&buffer) {
                let text = std::mem::take(&mut buffer);
                let _ = editor.add_history_entry(text.trim_end());
                self.run_text(&text);
            }
        };
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        Ok(result)
    }

    /// Runs a meta-command; Some(next) ends the loop.
    fn meta(&mut self, line: &str) -> Option<Next> {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or("");
        let arg = words.next();
        let result = match (command, arg) {
            ("\\q", _) => return Some(Next::Quit),
            ("\\kv", _) => return Some(Next::KeyValue),
            ("\\?", _) => {
                println!("{HELP}");
                Ok(())
            }
            ("\\timing", _) => {
                self.timing = !self.timing;
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
                Ok(())
            }
            ("\\x", _) => {
                self.expanded = !self.expanded;
                println!("Expanded display is {}.", if self.expanded { "on" } else { "off" });
                Ok(())
            }
            ("\\dt" | "\\d", None) => self.list_tables(),
            ("\\d", Some(table)) => self.describe(table),
            ("\\di", _) => self.list_indexes(),
            (other, _) => {
                println!("invalid command {other}; try \\? for help");
                Ok(())
            }
        };
        if let Err(e) = result {
            print_error(&e, None);
        }
        None
    }

    fn tables(&self) -> sql::Result<Vec<Arc<sql::catalog::TableDesc>>> {
        sql::session::list_tables(self.engine.as_ref())
    }

    fn list_tables(&self) -> sql::Result<()> {
        let rows: Vec<Vec<Value>> = self
            .tables()?
            .iter()
            .map(|t| vec![Value::Text("public".into()), Value::Text(t.name.clone()), Value::Text("table".into())])
            .collect();
        self.print_static(&["Schema", "Name", "Type"], rows, "List of relations");
        Ok(())
    }

    fn list_indexes(&self) -> sql::Result<()> {
        let mut rows = Vec::new();
        for t in self.tables()? {
            for i in std::iter::once(&t.primary).chain(&t.indexes) {
                rows.push(vec![
                    Value::Text("public".into()),
                    Value::Text(i.name.clone()),
                    Value::Text("index".into()),
                    Value::Text(t.name.clone()),
                ]);
            }
        }
        self.print_static(&["Schema", "Name", "Type", "Table"], rows, "List of relations");
        Ok(())
    }

    fn describe(&self, name: &str) -> sql::Result<()> {
        let name = name.trim_end_matches(';').to_lowercase();
        let Some(t) = self.tables()?.into_iter().find(|t| t.name == name) else {
            println!("Did not find any relation named \"{name}\".");
            return Ok(());
        };
        let rows = t
            .columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| {
                vec![
                    Value::Text(c.name.clone()),
                    Value::Text(c.data_type.sql_name()),
                    Value::Text(if c.nullable { String::new() } else { "not null".into() }),
                    Value::Text(c.default.clone().unwrap_or_default()),
                ]
            })
            .collect();
        self.print_static(&["Column", "Type", "Nullable", "Default"], rows, &format!("Table \"public.{}\"", t.name));
        let column_names = |cols: &[(u32, sql::encoding::Direction)]| {
            cols.iter()
                .map(|(id, dir)| {
                    let name = t.column_by_id(*id).map(|(_, c)| c.name.clone()).unwrap_or_else(|| format!("#{id}"));
                    match dir {
                        sql::encoding::Direction::Asc => name,
                        sql::encoding::Direction::Desc => format!("{name} DESC"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("Indexes:");
        if t.has_hidden_rowid() {
            println!("    (no primary key: rows are keyed by a hidden row id)");
        } else {
            println!("    \"{}\" PRIMARY KEY ({})", t.primary.name, column_names(&t.primary.columns));
        }
        for i in &t.indexes {
            println!("    \"{}\"{} ({})", i.name, if i.unique { " UNIQUE" } else { "" }, column_names(&i.columns));
        }
        println!("Table id {}, {} shard(s) hold its rows.", t.id, {
            let prefix = sql::encoding::table_prefix(t.id);
            sql::kv::Engine::shards(self.engine.as_ref(), &prefix, &sql::encoding::prefix_end(&prefix)).len()
        });
        Ok(())
    }

    fn print_static(&self, headers: &[&str], rows: Vec<Vec<Value>>, title: &str) {
        let columns: Vec<OutputColumn> =
            headers.iter().map(|h| OutputColumn { name: h.to_string(), data_type: sql::DataType::Text }).collect();
        let mut out = Printer::new(self.format, self.expanded);
        if self.format == Format::Table {
            println!("{:^width$}", title, width = 40);
        }
        let _ = out.columns(&columns);
        for r in rows {
            let _ = out.row(r);
        }
        let _ = out.complete("SELECT");
    }

    /// Runs every statement in `text`; false if one failed.
    fn run_text(&mut self, text: &str) -> bool {
        let statements = match sql::parser::parse(text) {
            Ok(s) => s,
            Err(e) => {
                print_error(&e, Some(text));
                return false;
            }
        };
        for parsed in statements {
            let started = Instant::now();
            let mut printer = Printer::new(self.format, self.expanded);
            self.running.store(true, Ordering::SeqCst);
            let result = self.session.execute_parsed(text, &parsed, &mut printer);
            self.running.store(false, Ordering::SeqCst);
            let _ = printer.flush();
            if let Err(e) = result {
                print_error(&e, Some(text));
                return false;
            }
            if self.timing {
                println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
            }
        }
        true
    }
}

/// Whether `buffer` ends a statement: a `;` outside quotes and comments,
/// followed only by whitespace.
fn statement_complete(buffer: &str) -> bool {
    let mut in_single = false;
    let mut in_double = false;
    let mut last_semicolon_end = None;
    let mut chars = buffer.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if !in_double => in_single = !in_single,
            '"' if !in_single => in_double = !in_double,
            '-' if !in_single && !in_double && chars.peek().map(|(_, n)| *n) == Some('-') => {
                // A comment to the end of the line.
                for (_, n) in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            ';' if !in_single && !in_double => last_semicolon_end = Some(i + 1),
            _ => {}
        }
    }
    match last_semicolon_end {
        Some(end) => !in_single && !in_double && buffer[end..].trim().is_empty(),
        None => false,
    }
}

fn print_error(e: &sql::Error, statement: Option<&str>) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "ERROR:  {}", e.message);
    if let Some(d) = &e.detail {
        let _ = writeln!(err, "DETAIL:  {d}");
    }
    if let Some(h) = &e.hint {
        let _ = writeln!(err, "HINT:  {h}");
    }
    if let (Some(pos), Some(text)) = (e.position, statement) {
        // The line holding the position, and a caret under it.
        let mut offset = 0usize;
        for (n, line) in text.split('\n').enumerate() {
            let len = line.chars().count() + 1;
            if pos <= offset + len {
                let prefix = format!("LINE {}: ", n + 1);
                let _ = writeln!(err, "{prefix}{line}");
                let col = pos.saturating_sub(offset + 1);
                let _ = writeln!(err, "{}^", " ".repeat(prefix.len() + col));
                break;
            }
            offset += len;
        }
    }
    let _ = writeln!(err, "SQLSTATE: {}", e.state.code());
}

/// Prints results as they arrive, in the chosen format.
struct Printer {
    format: Format,
    expanded: bool,
    columns: Vec<OutputColumn>,
    /// Table format: rows waiting to be aligned and printed.
    block: Vec<Vec<String>>,
    rows: u64,
    has_columns: bool,
    json_first: bool,
}

fn text(v: &Value) -> Option<String> {
    sql::ops::to_text(v)
}

fn csv_field(s: &str, sep: char) -> String {
    if s.contains(sep) || s.contains('"') || s.contains('\n') || s.contains('\r') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

impl Printer {
    fn new(format: Format, expanded: bool) -> Printer {
        Printer {
            format,
            expanded,
            columns: Vec::new(),
            block: Vec::new(),
            rows: 0,
            has_columns: false,
            json_first: true,
        }
    }

    fn print_block(&mut self) {
        if self.block.is_empty() && self.rows > 0 {
            return;
        }
        let mut out = std::io::stdout().lock();
        if self.expanded {
            let width = self.columns.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
            for (i, row) in self.block.iter().enumerate() {
                let _ =
                    writeln!(out, "-[ RECORD {} ]{}", self.rows as usize - self.block.len() + i + 1, "-".repeat(width));
                for (c, v) in self.columns.iter().zip(row) {
                    let _ = writeln!(out, "{:width$} | {v}", c.name);
                }
            }
            self.block.clear();
            return;
        }
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.name.chars().count()).collect();
        for row in &self.block {
            for (w, v) in widths.iter_mut().zip(row) {
                *w = (*w).max(v.chars().count());
            }
        }
        let header: Vec<String> =
            self.columns.iter().zip(&widths).map(|(c, w)| format!(" {:^w$} ", c.name, w = *w)).collect();
        let _ = writeln!(out, "{}", header.join("|"));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        let _ = writeln!(out, "{}", rule.join("+"));
        for row in &self.block {
            let cells: Vec<String> =
                row.iter()
                    .zip(&widths)
                    .zip(&self.columns)
                    .map(|((v, w), c)| {
                        if c.data_type.is_numeric() {
                            format!(" {v:>w$} ", w = *w)
                        } else {
                            format!(" {v:<w$} ", w = *w)
                        }
                    })
                    .collect();
            let _ = writeln!(out, "{}", cells.join("|").trim_end());
        }
        self.block.clear();
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl Sink for Printer {
    fn columns(&mut self, columns: &[OutputColumn]) -> sql::Result<()> {
        self.columns = columns.to_vec();
        self.has_columns = true;
        self.rows = 0;
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut out = std::io::stdout().lock();
        match self.format {
            Format::Csv => {
                let _ = writeln!(out, "{}", names.iter().map(|n| csv_field(n, ',')).collect::<Vec<_>>().join(","));
            }
            Format::Tsv => {
                let _ = writeln!(out, "{}", names.join("\t"));
            }
            Format::Json => {
                let _ = write!(out, "[");
                self.json_first = true;
            }
            Format::Table => {}
        }
        Ok(())
    }

    fn row(&mut self, row: sql::Row) -> sql::Result<()> {
        self.rows += 1;
        match self.format {
            Format::Table => {
                self.block.push(row.iter().map(|v| text(v).unwrap_or_default()).collect());
                if self.block.len() >= TABLE_BLOCK_ROWS {
                    self.print_block();
                }
            }
            Format::Csv | Format::Tsv => {
                let sep = if self.format == Format::Csv { ',' } else { '\t' };
                let cells: Vec<String> = row.iter().map(|v| csv_field(&text(v).unwrap_or_default(), sep)).collect();
                println!("{}", cells.join(&sep.to_string()));
            }
            Format::Json => {
                let fields: Vec<String> = self
                    .columns
                    .iter()
                    .zip(&row)
                    .map(|(c, v)| {
                        let value = match (v, text(v)) {
                            (_, None) => "null".to_string(),
                            (Value::Bool(b), _) => b.to_string(),
                            (Value::Int2(_) | Value::Int4(_) | Value::Int8(_), Some(t)) => t,
                            (Value::Float4(_) | Value::Float8(_), Some(t))
                                if v.as_f64().is_some_and(f64::is_finite) =>
                            {
                                t
                            }
                            (_, Some(t)) => json_string(&t),
                        };
                        format!("{}:{value}", json_string(&c.name))
                    })
                    .collect();
                print!("{}\n{{{}}}", if self.json_first { "" } else { "," }, fields.join(","));
                self.json_first = false;
            }
        }
        Ok(())
    }

    fn complete(&mut self, tag: &str) -> sql::Result<()> {
        match self.format {
            Format::Table => {
                if self.has_columns {
                    self.print_block();
                    if !self.expanded {
                        println!("({} row{})\n", self.rows, if self.rows == 1 { "" } else { "s" });
                    }
                } else {
                    println!("{tag}");
                }
            }
            Format::Json => {
                if self.has_columns {
                    println!("\n]");
                }
            }
            Format::Csv | Format::Tsv => {
                if !self.has_columns {
                    eprintln!("{tag}");
                }
            }
        }
        self.has_columns = false;
        Ok(())
    }

    fn notice(&mut self, message: &str) -> sql::Result<()> {
        eprintln!("NOTICE:  {message}");
        Ok(())
    }
    fn warning(&mut self, _state: sql::SqlState, message: &str) -> sql::Result<()> {
        eprintln!("WARNING:  {message}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a statement ends at a `;` outside quotes and comments.
    #[test]
    fn statements_end_at_a_semicolon_outside_quotes() {
        assert!(statement_complete("SELECT 1;"));
        assert!(statement_complete("SELECT 1;  \n"));
        assert!(!statement_complete("SELECT ';'"));
        assert!(!statement_complete("SELECT 1 -- ;\n"));
        assert!(statement_complete("SELECT 'a;b';"));
        assert!(!statement_complete("SELECT 1; SELECT"));
    }
}
