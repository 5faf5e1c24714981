//! `COPY table [(columns)] FROM STDIN`: rows streamed in by the client
//! (pgbench -i, psql's `\copy`), written in batches.
//!
//! ```text
//!   CopyData "1\t1\t0\t\n2\t1" | "\t0\t\n" | "\\.\n"    (chunks need not align with rows)
//!      -> lines -> fields (tab-separated, backslash escapes, \N is NULL)
//!      -> rows of the named columns' types
//!      -> every COPY_BATCH_ROWS rows: one INSERT of the batch, committed
//! ```
//!
//! Atomicity (as CockroachDB's non-atomic COPY): each batch of
//! [`limits::COPY_BATCH_ROWS`] rows commits in a transaction of its own,
//! so a million rows load without one giant transaction and with one
//! batch in memory. A COPY that fails leaves the batches before the
//! failure in place; the error says how many rows were committed. Inside
//! a transaction block the same holds, with one exception that makes
//! pgbench's load (`BEGIN; TRUNCATE t; COPY t ...; COMMIT`) atomic: rows
//! copied into a table the block created or truncated go under the
//! table id only that block's descriptor names, so they appear when the
//! block commits and never if it rolls back. A table the block changed in
//! place (a column or index added) cannot be copied into until the block
//! ends (0A000). The same rule lets an `INSERT ... SELECT` inside a block
//! write more rows than one transaction may
//! ([`limits::WRITES_PER_TRANSACTION_MAX`]) into such a table, in batches
//! like these (pgbench's server-side load, `-I G`: `BEGIN; TRUNCATE t;
//! INSERT INTO t SELECT ... FROM generate_series(1, 100000); COMMIT`).
//! Caveat: the batches are transactions of their own, so a block that
//! scanned the table after creating or truncating it holds a lock their
//! writes wait for; they give up after the lock wait limit (40001).
//! Inside a block, a table with foreign keys takes every batch in the
//! block's own transaction instead (so at most the rows one transaction
//! may write): a batch of its own would check keys the block wrote, and
//! wait for its locks, and leave its rows committed if the block then
//! deleted or rolled back the rows they reference.
//!
//! Two formats ([`CopyFormat`]), as PostgreSQL has them:
//!
//! - text (the default): fields separated by a tab, `\N` for NULL,
//!   backslash escapes (`\t`, `\n`, `\\`, octal, `\x` hex), and a line
//!   `\.` ending the data;
//! - CSV (`FORMAT csv`, or psql's `\copy ... csv header`): fields separated
//!   by a comma, an unquoted empty field for NULL, `"` quoting a field
//!   (a quoted field may hold the delimiter, newlines, and `""` for a
//!   quote), so a record can span lines; `HEADER` skips the first record
//!   on input and writes the column names on output.
//!
//! `DELIMITER`, `NULL`, `HEADER`, `QUOTE` and `ESCAPE` work as in
//! PostgreSQL; `FORMAT binary` and the `FORCE_*` options are 0A000.
//!
//! `COPY table [(columns)] | (query) TO STDOUT` is a query whose rows the
//! gateway sends as lines of the same format ([`format_line`]); the
//! session runs it as `SELECT` (so it reads one snapshot, like any query)
//! and tags it `COPY n`.

use sqlparser::ast;

use crate::error::{Error, Result, SqlState};
use crate::limits;
use crate::sql_err;
use crate::types::{DataType, Value};

/// A COPY FROM STDIN in progress: where rows go and what is pending.
#[derive(Debug)]
pub struct CopyIn {
    pub(crate) table: String,
    /// The columns each line fills, in order.
    pub(crate) columns: Vec<String>,
    pub(crate) types: Vec<DataType>,
    /// Writes go under a table id only the enclosing block's descriptor
    /// names (module docs): batches do not check the committed one.
    pub(crate) private: bool,
    pub(crate) format: CopyFormat,
    /// The bytes of a record not yet complete.
    partial: Vec<u8>,
    /// CSV: the scan of `partial` is inside a quoted field (a newline
    /// there does not end the record), and just after its escape.
    in_quotes: bool,
    after_escape: bool,
    /// The header record was skipped.
    header_done: bool,
    /// Rows parsed and not yet written.
    pub(crate) rows: Vec<Vec<Value>>,
    /// Lines seen (for error messages).
    line: u64,
    /// Rows committed so far.
    pub(crate) committed: u64,
    /// The `\.` line was seen: anything after it is ignored.
    ended: bool,
    /// The first error; the rest of the data is ignored, and CopyDone
    /// reports it.
    pub(crate) failed: Option<Error>,
}

impl CopyIn {
    pub(crate) fn new(
        table: String,
        columns: Vec<String>,
        types: Vec<DataType>,
        private: bool,
        format: CopyFormat,
    ) -> CopyIn {
        CopyIn {
            table,
            columns,
            types,
            private,
            format,
            partial: Vec::new(),
            in_quotes: false,
            after_escape: false,
            header_done: false,
            rows: Vec::new(),
            line: 0,
            committed: 0,
            ended: false,
            failed: None,
        }
    }

    /// How many columns each line has.
    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// Takes a chunk of data: parses its complete records into rows. A
    /// record ends at a newline, unless (CSV) the newline is inside a
    /// quoted field.
    pub(crate) fn take(&mut self, chunk: &[u8]) -> Result<()> {
        let scanned = self.partial.len();
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(chunk);
        let mut start = 0;
        for i in scanned..buf.len() {
            let b = buf[i];
            if self.format.csv {
                if self.after_escape {
                    self.after_escape = false;
                    continue;
                }
                if self.in_quotes && b == self.format.escape && self.format.escape != self.format.quote {
                    self.after_escape = true;
                    continue;
                }
                if b == self.format.quote {
                    // A doubled quote closes and reopens: the state stays right.
                    self.in_quotes = !self.in_quotes;
                    continue;
                }
            }
            if b == b'\n' && !self.in_quotes {
                self.record_done(&buf[start..i])?;
                start = i + 1;
            }
        }
        if buf.len() - start > limits::ROW_BYTES_MAX {
            return sql_err!(
                ProgramLimitExceeded,
                "COPY line {} is longer than {} bytes",
                self.line + 1,
                limits::ROW_BYTES_MAX
            );
        }
        buf.drain(..start);
        self.partial = buf;
        Ok(())
    }

    /// The end of the data: a last record without its newline counts.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if self.in_quotes && !self.ended {
            return sql_err!(BadCopyFileFormat, "unterminated CSV quoted field (COPY {})", self.table);
        }
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.record_done(&line)?;
        }
        Ok(())
    }

    fn record_done(&mut self, line: &[u8]) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\." {
            self.ended = true;
            return Ok(());
        }
        if self.format.header && !self.header_done {
            self.header_done = true;
            return Ok(());
        }
        let row = self
            .format
            .parse_record(line, &self.types)
            .map_err(|e| Error { message: format!("{} (COPY {}, line {})", e.message, self.table, self.line), ..e })?;
        self.rows.push(row);
        Ok(())
    }
}

/// How COPY's data is laid out (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyFormat {
    pub csv: bool,
    pub delimiter: u8,
    /// What stands for NULL: `\N` in text, an unquoted empty field in CSV.
    pub null: String,
    /// The first record names the columns: skipped on input, written on
    /// output.
    pub header: bool,
    /// CSV only.
    pub quote: u8,
    /// CSV only: what precedes a quote (or itself) inside a quoted field.
    pub escape: u8,
}

impl CopyFormat {
    pub fn text() -> CopyFormat {
        CopyFormat { csv: false, delimiter: b'\t', null: "\\N".into(), header: false, quote: b'"', escape: b'"' }
    }

    pub fn csv() -> CopyFormat {
        CopyFormat { csv: true, delimiter: b',', null: String::new(), ..CopyFormat::text() }
    }

    /// The format a COPY statement asks for; `None` for another statement.
    pub fn of_statement(s: &ast::Statement) -> Result<Option<CopyFormat>> {
        match s {
            ast::Statement::Copy { options, legacy_options, .. } => {
                Ok(Some(CopyFormat::from_options(options, legacy_options)?))
            }
            _ => Ok(None),
        }
    }

    /// From COPY's options: the `WITH (...)` list and the pre-9.0 words
    /// psql's `\copy t from f csv header` sends. What SpanDB does not do
    /// (binary, `FORCE_*`, an encoding other than UTF-8) is 0A000; an
    /// option that makes no sense is 22023, as in PostgreSQL.
    pub fn from_options(options: &[ast::CopyOption], legacy: &[ast::CopyLegacyOption]) -> Result<CopyFormat> {
        use ast::{CopyLegacyCsvOption as Lc, CopyLegacyOption as L, CopyOption as O};
        let csv = options.iter().any(|o| matches!(o, O::Format(f) if f.value.eq_ignore_ascii_case("csv")))
            || legacy.iter().any(|o| matches!(o, L::Csv(_)));
        let mut f = if csv { CopyFormat::csv() } else { CopyFormat::text() };
        let (mut quote, mut escape) = (None, None);
        let one_byte = |what: &str, c: char| -> Result<u8> {
            match u8::try_from(c) {
                Ok(b) if b.is_ascii() && b != b'\n' && b != b'\r' => Ok(b),
                _ => sql_err!(InvalidParameterValue, "COPY {what} must be a single one-byte character"),
            }
        };
        for o in options {
            match o {
                O::Format(name) => match name.value.to_ascii_lowercase().as_str() {
                    "text" | "csv" => {}
                    "binary" => return sql_err!(FeatureNotSupported, "COPY's binary format is not supported"),
                    other => return sql_err!(InvalidParameterValue, "COPY format \"{other}\" not recognized"),
                },
                O::Freeze(_) => {}
                O::Delimiter(c) => f.delimiter = one_byte("delimiter", *c)?,
                O::Null(n) => f.null = n.clone(),
                O::Header(h) => f.header = *h,
                O::Quote(c) => quote = Some(one_byte("quote", *c)?),
                O::Escape(c) => escape = Some(one_byte("escape", *c)?),
                O::Encoding(e) if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => return sql_err!(FeatureNotSupported, "COPY option {other} is not supported"),
            }
        }
        for o in legacy {
            match o {
                L::Binary => return sql_err!(FeatureNotSupported, "COPY's binary format is not supported"),
                L::Delimiter(c) => f.delimiter = one_byte("delimiter", *c)?,
                L::Null(n) => f.null = n.clone(),
                L::Header => f.header = true,
                L::Csv(csv_options) => {
                    for c in csv_options {
                        match c {
                            Lc::Header => f.header = true,
                            Lc::Quote(q) => quote = Some(one_byte("quote", *q)?),
                            Lc::Escape(e) => escape = Some(one_byte("escape", *e)?),
                            other => return sql_err!(FeatureNotSupported, "COPY option {other} is not supported"),
                        }
                    }
                }
                other => return sql_err!(FeatureNotSupported, "COPY option {other} is not supported"),
            }
        }
        if !f.csv && (quote.is_some() || escape.is_some()) {
            return sql_err!(FeatureNotSupported, "COPY QUOTE and ESCAPE are available only in CSV mode");
        }
        f.quote = quote.unwrap_or(b'"');
        f.escape = escape.unwrap_or(f.quote);
        if f.csv && f.delimiter == f.quote {
            return sql_err!(InvalidParameterValue, "COPY delimiter and quote must be different");
        }
        if f.null.as_bytes().contains(&f.delimiter) {
            return sql_err!(InvalidParameterValue, "COPY delimiter must not appear in the NULL specification");
        }
        Ok(f)
    }

    /// One record (its newline removed) as values of `types`.
    pub fn parse_record(&self, line: &[u8], types: &[DataType]) -> Result<Vec<Value>> {
        let fields = if self.csv { self.csv_fields(line)? } else { self.text_fields(line) };
        if fields.len() != types.len() {
            let what = if fields.len() < types.len() {
                "missing data for a column"
            } else {
                "extra data after the last expected column"
            };
            return Err(Error::new(SqlState::BadCopyFileFormat, what.to_string()));
        }
        fields
            .into_iter()
            .zip(types)
            .map(|(field, ty)| {
                let Some(bytes) = field else { return Ok(Value::Null) };
                let text = String::from_utf8(bytes).map_err(|_| {
                    Error::new(
                        SqlState::CharacterNotInRepertoire,
                        "invalid byte sequence for encoding \"UTF8\"".to_string(),
                    )
                })?;
                crate::ops::parse_text(&text, *ty)
            })
            .collect()
    }

    /// Text format: split at the delimiter, NULL where the raw field is
    /// the NULL string, backslash escapes resolved.
    fn text_fields(&self, line: &[u8]) -> Vec<Option<Vec<u8>>> {
        line.split(|&b| b == self.delimiter)
            .map(|field| (field != self.null.as_bytes()).then(|| unescape(field)))
            .collect()
    }

    /// CSV: split at delimiters outside quotes; a quoted field keeps what
    /// it holds (an escaped quote as a quote); an unquoted field equal to
    /// the NULL string is NULL.
    fn csv_fields(&self, line: &[u8]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut fields = Vec::new();
        let (mut field, mut quoted, mut in_quotes) = (Vec::new(), false, false);
        let mut i = 0;
        while i < line.len() {
            let b = line[i];
            if in_quotes {
                let next = line.get(i + 1).copied();
                if b == self.escape
                    && (next == Some(self.quote) || (self.escape != self.quote && next == Some(self.escape)))
                {
                    field.push(next.expect("checked above"));
                    i += 2;
                    continue;
                }
                if b == self.quote {
                    in_quotes = false;
                } else {
                    field.push(b);
                }
            } else if b == self.quote {
                in_quotes = true;
                quoted = true;
            } else if b == self.delimiter {
                let done = std::mem::take(&mut field);
                fields.push((quoted || done != self.null.as_bytes()).then_some(done));
                quoted = false;
            } else {
                field.push(b);
            }
            i += 1;
        }
        if in_quotes {
            return sql_err!(BadCopyFileFormat, "unterminated CSV quoted field");
        }
        fields.push((quoted || field != self.null.as_bytes()).then_some(field));
        Ok(fields)
    }

    /// One row as a record of this format, newline included: the inverse
    /// of [`CopyFormat::parse_record`].
    pub fn format_row(&self, row: &[Value]) -> String {
        let fields: Vec<Option<String>> = row.iter().map(crate::ops::to_text).collect();
        self.record(fields)
    }

    /// The header record: the column names.
    pub fn header_record<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> String {
        self.record(names.into_iter().map(|n| Some(n.to_string())).collect())
    }

    fn record(&self, fields: Vec<Option<String>>) -> String {
        let delimiter = self.delimiter as char;
        let mut line = String::new();
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                line.push(delimiter);
            }
            match field {
                None => line.push_str(&self.null),
                Some(text) if self.csv => self.push_csv(&mut line, &text),
                Some(text) => {
                    for c in text.chars() {
                        match c {
                            '\\' => line.push_str("\\\\"),
                            '\t' => line.push_str("\\t"),
                            '\n' => line.push_str("\\n"),
                            '\r' => line.push_str("\\r"),
                            c if c == delimiter => {
                                line.push('\\');
                                line.push(c);
                            }
                            c => line.push(c),
                        }
                    }
                }
            }
        }
        line.push('\n');
        line
    }

    /// A CSV field, quoted when it must be: it holds the delimiter, the
    /// quote, a newline, or reads as the NULL string.
    fn push_csv(&self, line: &mut String, text: &str) {
        let (delimiter, quote, escape) = (self.delimiter as char, self.quote as char, self.escape as char);
        let must_quote =
            text == self.null || text.chars().any(|c| c == delimiter || c == quote || c == '\n' || c == '\r');
        if !must_quote {
            line.push_str(text);
            return;
        }
        line.push(quote);
        for c in text.chars() {
            if c == quote || (c == escape && escape != quote) {
                line.push(escape);
            }
            line.push(c);
        }
        line.push(quote);
    }
}

/// One line of text-format COPY data as values of `types`.
pub fn parse_line(line: &[u8], types: &[DataType]) -> Result<Vec<Value>> {
    CopyFormat::text().parse_record(line, types)
}

/// One row as a line of COPY's text format, newline included: the
/// inverse of [`parse_line`] (backslash, tab, newline and carriage return
/// escaped; NULL as `\N`).
pub fn format_line(row: &[Value]) -> String {
    CopyFormat::text().format_row(row)
}

/// A field with its backslash escapes resolved.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' || i == field.len() {
            out.push(b);
            continue;
        }
        let c = field[i];
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                if digits == 0 {
                    out.push(b'x');
                } else {
                    out.push(v as u8);
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(types: Vec<DataType>) -> CopyIn {
        let columns = (0..types.len()).map(|i| format!("c{i}")).collect();
        CopyIn::new("t".into(), columns, types, false, CopyFormat::text())
    }

    /// Goal: what COPY TO writes, COPY FROM reads back as the same row,
    /// whatever characters the values hold.
    #[test]
    fn lines_written_read_back() {
        let types = vec![DataType::Int4, DataType::Text, DataType::Bytea, DataType::Text, DataType::Bool];
        let row = vec![
            Value::Int4(-7),
            Value::Text("tab\there\nnew\\line\r\\N".into()),
            Value::Bytea(vec![0, 92, 255]),
            Value::Null,
            Value::Bool(true),
        ];
        let line = format_line(&row);
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        assert_eq!(parse_line(line.trim_end_matches('\n').as_bytes(), &types).unwrap(), row);
    }

    /// Goal: rows come out the same however the data is cut into chunks
    /// (a chunk may end mid-line, mid-field, mid-escape), `\N` is NULL,
    /// escapes resolve, and nothing after `\.` counts.
    /// Method: the same data fed whole and one byte at a time.
    #[test]
    fn rows_do_not_depend_on_chunk_boundaries() {
        let data = b"1\tone\t\\N\n2\ttab\\there\\\\x\t3\r\n3\t\\101\\x42\t4\n\\.\n9\tignored\t9\n";
        let types = vec![DataType::Int4, DataType::Text, DataType::Int8];
        let mut whole = copy(types.clone());
        whole.take(data).unwrap();
        whole.finish().unwrap();
        let mut bytes = copy(types);
        for b in data.iter() {
            bytes.take(std::slice::from_ref(b)).unwrap();
        }
        bytes.finish().unwrap();
        let want = vec![
            vec![Value::Int4(1), Value::Text("one".into()), Value::Null],
            vec![Value::Int4(2), Value::Text("tab\there\\x".into()), Value::Int8(3)],
            vec![Value::Int4(3), Value::Text("AB".into()), Value::Int8(4)],
        ];
        assert_eq!(whole.rows, want);
        assert_eq!(bytes.rows, want);
    }

    /// Goal: a bad line is an error naming the table and line, typed as
    /// PostgreSQL types it (22P04 for the shape, 22P02 for a value).
    #[test]
    fn bad_lines_are_typed_errors_with_their_line() {
        let mut c = copy(vec![DataType::Int4, DataType::Text]);
        let e = c.take(b"1\ta\n2\n").unwrap_err();
        assert_eq!(e.state.code(), "22P04");
        assert!(e.message.contains("line 2"), "{}", e.message);
        let mut c = copy(vec![DataType::Int4]);
        let e = c.take(b"x\n").unwrap_err();
        assert_eq!(e.state.code(), "22P02");
        let mut c = copy(vec![DataType::Text]);
        let e = c.take(b"\xff\n").unwrap_err();
        assert_eq!(e.state.code(), "22021");
    }
    fn format_of(sql: &str) -> Result<CopyFormat> {
        let statement = crate::parser::parse(sql).unwrap().pop().unwrap().statement;
        Ok(CopyFormat::of_statement(&statement)?.expect("a COPY statement"))
    }

    fn csv_copy(types: Vec<DataType>, format: CopyFormat) -> CopyIn {
        let columns = (0..types.len()).map(|i| format!("c{i}")).collect();
        CopyIn::new("t".into(), columns, types, false, format)
    }

    /// Goal: CSV as PostgreSQL reads it: a header skipped, quoted fields
    /// holding the delimiter, newlines (a record over several lines) and
    /// doubled quotes, an unquoted empty field NULL and a quoted one the
    /// empty string, CRLF line ends; the same rows however the data is
    /// cut into chunks.
    /// Method: one data set fed whole and one byte at a time.
    #[test]
    fn csv_records_read_with_quotes_newlines_and_nulls() {
        let data = b"id,name,n\r\n1,\"a, b\",7\n2,\"two\nlines \"\"quoted\"\"\",\n3,\"\",8\n";
        let types = vec![DataType::Int4, DataType::Text, DataType::Int8];
        let format = format_of("COPY t FROM STDIN WITH (FORMAT csv, HEADER)").unwrap();
        let mut whole = csv_copy(types.clone(), format.clone());
        whole.take(data).unwrap();
        whole.finish().unwrap();
        let mut bytes = csv_copy(types, format);
        for b in data.iter() {
            bytes.take(std::slice::from_ref(b)).unwrap();
        }
        bytes.finish().unwrap();
        let want = vec![
            vec![Value::Int4(1), Value::Text("a, b".into()), Value::Int8(7)],
            vec![Value::Int4(2), Value::Text("two\nlines \"quoted\"".into()), Value::Null],
            vec![Value::Int4(3), Value::Text(String::new()), Value::Int8(8)],
        ];
        assert_eq!(whole.rows, want);
        assert_eq!(bytes.rows, want);
    }

    /// Goal: what COPY TO writes as CSV (quoting only what needs it, NULL
    /// unquoted and empty, the empty string quoted) reads back as the
    /// same rows, with a non-default delimiter and escape too; the
    /// header record names the columns.
    #[test]
    fn csv_rows_written_read_back() {
        let types = vec![DataType::Int4, DataType::Text, DataType::Text, DataType::Text];
        let rows = vec![
            vec![Value::Int4(1), Value::Text("plain".into()), Value::Text(String::new()), Value::Null],
            vec![
                Value::Int4(2),
                Value::Text("a;b,c".into()),
                Value::Text("q\"uote\\".into()),
                Value::Text("x\ny".into()),
            ],
        ];
        for sql in
            ["COPY t TO STDOUT WITH (FORMAT csv)", "COPY t TO STDOUT WITH (FORMAT csv, DELIMITER ';', ESCAPE '\\')"]
        {
            let format = format_of(sql).unwrap();
            let mut copy = csv_copy(types.clone(), format.clone());
            for row in &rows {
                copy.take(format.format_row(row).as_bytes()).unwrap();
            }
            copy.finish().unwrap();
            assert_eq!(copy.rows, rows, "{sql}");
        }
        let plain = format_of("COPY t TO STDOUT CSV").unwrap();
        assert_eq!(plain.format_row(&rows[0]), "1,plain,\"\",\n");
        assert_eq!(plain.header_record(["id", "a,b"]), "id,\"a,b\"\n");
    }

    /// Goal: COPY's options as PostgreSQL takes them, in both spellings
    /// (psql's `\copy ... csv header` sends the old one); what SpanDB does
    /// not do is 0A000, what makes no sense 22023.
    #[test]
    fn copy_options_in_both_spellings() {
        let f = format_of("COPY t FROM STDIN WITH (FORMAT csv, HEADER, DELIMITER ';', NULL 'x', QUOTE '''')").unwrap();
        assert_eq!(
            (f.csv, f.header, f.delimiter, f.null.as_str(), f.quote, f.escape),
            (true, true, b';', "x", b'\'', b'\'')
        );
        let legacy = format_of("COPY t FROM STDIN CSV HEADER").unwrap();
        assert_eq!(legacy, CopyFormat { header: true, ..CopyFormat::csv() });
        let text = format_of("COPY t FROM STDIN WITH (DELIMITER '|', NULL '')").unwrap();
        assert_eq!((text.csv, text.delimiter, text.null.as_str()), (false, b'|', ""));
        let code = |sql: &str| format_of(sql).unwrap_err().state.code();
        assert_eq!(code("COPY t FROM STDIN WITH (FORMAT binary)"), "0A000");
        assert_eq!(code("COPY t FROM STDIN BINARY"), "0A000");
        assert_eq!(code("COPY t FROM STDIN WITH (QUOTE '\"')"), "0A000");
        assert_eq!(code("COPY t FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (a))"), "0A000");
        assert_eq!(code("COPY t FROM STDIN WITH (FORMAT csv, DELIMITER '\"')"), "22023");
        assert_eq!(code("COPY t FROM STDIN WITH (FORMAT xml)"), "22023");
    }

    /// Goal: a quoted field left open at the end of the data is an error,
    /// not a row.
    #[test]
    fn an_unterminated_quote_is_an_error() {
        let mut c = csv_copy(vec![DataType::Text], CopyFormat::csv());
        c.take(b"\"open\n").unwrap();
        assert_eq!(c.finish().unwrap_err().state.code(), "22P04");
    }
}
