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
//!
//! Text format only (PostgreSQL's default): fields separated by a tab,
//! `\N` for NULL, backslash escapes (`\t`, `\n`, `\\`, octal, `\x` hex),
//! and a line `\.` ending the data.
//!
//! `COPY table [(columns)] | (query) TO STDOUT` is a query whose rows the
//! gateway sends as lines of the same format ([`format_line`]); the
//! session runs it as `SELECT` (so it reads one snapshot, like any query)
//! and tags it `COPY n`.

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
    /// The bytes of a line not yet complete.
    partial: Vec<u8>,
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
    pub(crate) fn new(table: String, columns: Vec<String>, types: Vec<DataType>, private: bool) -> CopyIn {
        CopyIn {
            table,
            columns,
            types,
            private,
            partial: Vec::new(),
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

    /// Takes a chunk of data: parses its complete lines into rows.
    pub(crate) fn take(&mut self, chunk: &[u8]) -> Result<()> {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.partial.is_empty() {
                self.line_done(head)?;
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.line_done(&line)?;
            }
        }
        if self.partial.len() + rest.len() > limits::ROW_BYTES_MAX {
            return sql_err!(
                ProgramLimitExceeded,
                "COPY line {} is longer than {} bytes",
                self.line + 1,
                limits::ROW_BYTES_MAX
            );
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// The end of the data: a last line without its newline counts.
    pub(crate) fn finish(&mut self) -> Result<()> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line_done(&line)?;
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        self.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"\\." {
            self.ended = true;
            return Ok(());
        }
        let row = parse_line(line, &self.types)
            .map_err(|e| Error { message: format!("{} (COPY {}, line {})", e.message, self.table, self.line), ..e })?;
        self.rows.push(row);
        Ok(())
    }
}

/// One line of text-format COPY data as values of `types`.
pub fn parse_line(line: &[u8], types: &[DataType]) -> Result<Vec<Value>> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
    if fields.len() != types.len() {
        let what = if fields.len() < types.len() {
            "missing data for a column"
        } else {
            "extra data after the last expected column"
        };
        return Err(Error::new(SqlState::BadCopyFileFormat, what.to_string()));
    }
    fields
        .iter()
        .zip(types)
        .map(|(field, ty)| {
            if *field == b"\\N" {
                return Ok(Value::Null);
            }
            let bytes = unescape(field);
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

/// One row as a line of COPY's text format, newline included: the
/// inverse of [`parse_line`] (backslash, tab, newline and carriage return
/// escaped; NULL as `\N`).
pub fn format_line(row: &[Value]) -> String {
    let mut line = String::new();
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            line.push('\t');
        }
        match crate::ops::to_text(v) {
            None => line.push_str("\\N"),
            Some(text) => {
                for c in text.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\t' => line.push_str("\\t"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        c => line.push(c),
                    }
                }
            }
        }
    }
    line.push('\n');
    line
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
        CopyIn::new("t".into(), columns, types, false)
    }

    /// Goal: rows come out the same however the data is cut into chunks
    /// (a chunk may end mid-line, mid-field, mid-escape), `\N` is NULL,
    /// escapes resolve, and nothing after `\.` counts.
    /// Method: the same data fed whole and one byte at a time.
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
}
