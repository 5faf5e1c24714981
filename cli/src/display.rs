//! Printing keys, values and timestamps for people.

/// Printable ASCII as is; anything else (and the backslash) escaped as
/// `\xNN`, so binary keys print on one line and unambiguously.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            out.push(c as char);
        } else {
            out.push_str(&format!("\\x{c:02x}"));
        }
    }
    out
}

/// A shard range, `[start, end)`, with `-inf`/`+inf` for open ends; SQL
/// keys as `/Table/ID/...`.
pub fn range(start: &[u8], end: &[u8]) -> String {
    let s = if start.is_empty() { "-inf".to_string() } else { key(start) };
    let e = if end.is_empty() { "+inf".to_string() } else { key(end) };
    format!("[{s}, {e})")
}

/// A key quoted, or a SQL key decoded (`/Table/5/1/...`).
fn key(k: &[u8]) -> String {
    if k.first() == Some(&sql::encoding::SQL_PREFIX) {
        sql::encoding::pretty_key(k)
    } else {
        format!("{:?}", bytes(k))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_is_not_printable() {
        assert_eq!(super::bytes(b"ab c"), "ab c");
        assert_eq!(super::bytes(b"a\x00\\\xff"), "a\\x00\\x5c\\xff");
        assert_eq!(super::range(b"", b"g"), "[-inf, \"g\")");
        let table = sql::encoding::table_prefix(7);
        assert_eq!(super::range(&table, b""), "[/Table/7, +inf)");
    }
}
