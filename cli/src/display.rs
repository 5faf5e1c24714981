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

/// A size for people: `512 B`, `3.2 KiB`, `64.0 MiB`, `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
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

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(super::size(0), "0 B");
        assert_eq!(super::size(1023), "1023 B");
        assert_eq!(super::size(1536), "1.5 KiB");
        assert_eq!(super::size(64 << 20), "64.0 MiB");
        assert_eq!(super::size(3 << 40), "3.0 TiB");
        assert_eq!(super::size(5000 << 40), "5000.0 TiB");
    }
}
