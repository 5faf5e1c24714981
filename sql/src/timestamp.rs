//! `AS OF SYSTEM TIME` and how timestamps are written.
//!
//! Accepted forms (CockroachDB's, plus what `spandb kv` prints):
//!
//! ```text
//!   '2026-12-01T18:55:10.123456789Z'   a timestamp as spandb kv prints it
//!   '2026-12-01 18:55:10.5'            a timestamp (UTC)
//!   1764615310123456789                nanoseconds since the Unix epoch
//!   '-10s', '-1m30s', '-250ms'         that long before now
//!   with_max_staleness('10s')          a bounded-staleness read
//! ```

use sqlparser::ast;

use crate::error::Result;
use crate::kv::{Mode, Timestamp};
use crate::sql_err;

/// The read mode an `AS OF SYSTEM TIME` expression names, at `now`.
pub fn as_of_mode(e: &ast::Expr, now: Timestamp) -> Result<Mode> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Ok(Mode::AsOf(parse_time(s, now)?)),
            ast::Value::Number(n, _) => match n.parse::<u64>() {
                Ok(ns) => Ok(Mode::AsOf(ns)),
                Err(_) => sql_err!(InvalidParameterValue, "AS OF SYSTEM TIME: {n} is not a timestamp in nanoseconds"),
            },
            other => sql_err!(InvalidParameterValue, "AS OF SYSTEM TIME: unsupported value {other}"),
        },
        ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("with_max_staleness") => {
            let arg = match &f.args {
                ast::FunctionArguments::List(l) => match l.args.as_slice() {
                    [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Value(v)))] => {
                        v.value.clone().into_string()
                    }
                    _ => None,
                },
                _ => None,
            };
            let Some(arg) = arg else {
                return sql_err!(InvalidParameterValue, "with_max_staleness takes one interval string, like '10s'");
            };
            let ns = parse_duration(&arg)?;
            if ns <= 0 {
                return sql_err!(InvalidParameterValue, "with_max_staleness needs a positive interval");
            }
            Ok(Mode::BoundedStaleness(ns as u64))
        }
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => match expr.as_ref() {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) => {
                    sql_err!(
                        InvalidParameterValue,
                        "AS OF SYSTEM TIME: -{n} is not a timestamp; use an interval like '-10s'"
                    )
                }
                _ => sql_err!(InvalidParameterValue, "AS OF SYSTEM TIME: unsupported expression"),
            },
            _ => sql_err!(InvalidParameterValue, "AS OF SYSTEM TIME: unsupported expression"),
        },
        other => sql_err!(InvalidParameterValue, "AS OF SYSTEM TIME: unsupported expression {other}"),
    }
}

/// A timestamp from text: an interval before `now`, RFC 3339, a
/// `YYYY-MM-DD HH:MM:SS[.f]` in UTC, or nanoseconds.
pub fn parse_time(s: &str, now: Timestamp) -> Result<Timestamp> {
    let t = s.trim();
    if let Some(interval) = t.strip_prefix('-') {
        let ns = parse_duration(interval)?;
        return Ok(now.saturating_sub(ns as u64));
    }
    if let Ok(ns) = t.parse::<u64>() {
        return Ok(ns);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return to_nanos(dt.timestamp(), dt.timestamp_subsec_nanos());
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, format) {
            let dt = dt.and_utc();
            return to_nanos(dt.timestamp(), dt.timestamp_subsec_nanos());
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(t, format) {
            let dt = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            return to_nanos(dt.timestamp(), 0);
        }
    }
    sql_err!(InvalidDatetimeFormat, "AS OF SYSTEM TIME: cannot read \"{s}\" as a timestamp or a negative interval")
}

fn to_nanos(secs: i64, nanos: u32) -> Result<Timestamp> {
    u64::try_from(secs)
        .ok()
        .and_then(|s| s.checked_mul(1_000_000_000))
        .and_then(|n| n.checked_add(nanos.into()))
        .map_or_else(|| sql_err!(DatetimeFieldOverflow, "timestamp out of range"), Ok)
}

/// `10s`, `1m30s`, `250ms`, `2h`, `500us`, `100ns` -> nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64> {
    let s = s.trim();
    let bad = || sql_err!(InvalidParameterValue, "invalid interval \"{s}\" (use forms like 10s, 1m30s, 250ms)");
    if s.is_empty() {
        return bad();
    }
    let mut total: i64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if digits == 0 {
            return bad();
        }
        let number: f64 = match rest[..digits].parse() {
            Ok(n) => n,
            Err(_) => return bad(),
        };
        rest = rest[digits..].trim_start();
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let scale: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" | "sec" | "secs" | "second" | "seconds" => 1e9,
            "m" | "min" | "mins" | "minute" | "minutes" => 60e9,
            "h" | "hour" | "hours" => 3600e9,
            "d" | "day" | "days" => 86_400e9,
            _ => return bad(),
        };
        let ns = number * scale;
        if !ns.is_finite() || ns > 1e18 {
            return bad();
        }
        total = total.saturating_add(ns as i64);
    }
    Ok(total)
}

/// A duration setting as PostgreSQL reads one: a number of milliseconds
/// or a number with a unit (`10s`, `5min`); 0 means never (`None`).
pub fn parse_setting_duration(s: &str) -> Result<Option<std::time::Duration>> {
    let s = s.trim();
    let nanos = match s.parse::<i64>() {
        Ok(ms) if ms >= 0 => ms.saturating_mul(1_000_000),
        Ok(_) => return sql_err!(InvalidParameterValue, "invalid value \"{s}\": must not be negative"),
        Err(_) => parse_duration(s)?,
    };
    Ok((nanos > 0).then(|| std::time::Duration::from_nanos(nanos as u64)))
}

/// The value to keep for setting `name` set to `value`: refused if a
/// setting SpanDB acts on cannot take it (22023, as PostgreSQL: `SET
/// statement_timeout = 'soon'`), a time zone by its own name
/// (`europe/paris` is `Europe/Paris`); any other setting takes any text.
pub fn setting_value(name: &str, value: &str) -> Result<String> {
    match name {
        "statement_timeout" | "lock_timeout" | "idle_in_transaction_session_timeout" => {
            match parse_setting_duration(value) {
                // PostgreSQL keeps these in an int of milliseconds.
                Ok(Some(d)) if d.as_millis() > i32::MAX as u128 => sql_err!(
                    InvalidParameterValue,
                    "{} ms is outside the valid range for parameter \"{name}\" (0 .. {})",
                    d.as_millis(),
                    i32::MAX
                ),
                Ok(duration) => Ok(shown_duration(duration)),
                Err(e) => {
                    sql_err!(
                        InvalidParameterValue,
                        "invalid value for parameter \"{name}\": \"{value}\" ({})",
                        e.message
                    )
                }
            }
        }
        "timezone" => match crate::ops::zone::parse_setting(value) {
            Some((_, shown)) => Ok(shown),
            None => sql_err!(InvalidParameterValue, "invalid value for parameter \"TimeZone\": \"{value}\""),
        },
        // PostgreSQL 15's levels (the session's `wants_message` ranks them).
        "client_min_messages" => {
            let level = value.to_ascii_lowercase();
            let levels =
                ["debug5", "debug4", "debug3", "debug2", "debug1", "debug", "log", "notice", "warning", "error"];
            match levels.contains(&level.as_str()) {
                true => Ok(level),
                false => sql_err!(InvalidParameterValue, "invalid value for parameter \"{name}\": \"{value}\""),
            }
        }
        _ => Ok(value.to_string()),
    }
}

/// A duration setting as PostgreSQL shows it: whole milliseconds in the
/// largest unit that divides them (`5s`, `1500ms`, `2min`), `0` for none.
fn shown_duration(duration: Option<std::time::Duration>) -> String {
    let ms = duration.map_or(0, |d| (d.as_nanos() + 500_000) / 1_000_000);
    if ms == 0 {
        return "0".into();
    }
    let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s")];
    match units.iter().find(|(size, _)| ms.is_multiple_of(*size)) {
        Some((size, unit)) => format!("{}{unit}", ms / size),
        None => format!("{ms}ms"),
    }
}

/// A timestamp as `spandb kv` prints it (RFC 3339, nanoseconds, UTC).
pub fn format_nanos(ts: Timestamp) -> String {
    let secs = (ts / 1_000_000_000) as i64;
    let nanos = (ts % 1_000_000_000) as u32;
    match chrono::DateTime::from_timestamp(secs, nanos) {
        Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string(),
        None => format!("{ts}ns"),
    }
}

/// What `SHOW <name>` gives before any `SET` (what PostgreSQL 15 reports).
pub fn default_setting(name: &str) -> Option<&'static str> {
    DEFAULT_SETTINGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Every setting SHOW knows without a SET, with its default (SHOW ALL
/// lists these and the session's own).
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("server_version", "15.0 (SpanDB)"),
    ("server_version_num", "150000"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("transaction_isolation", "serializable"),
    ("default_transaction_isolation", "serializable"),
    ("default_transaction_read_only", "off"),
    ("application_name", ""),
    ("search_path", "\"$user\", public"),
    ("max_identifier_length", "63"),
    // PostgreSQL's default is 0 (never); SpanDB's blocks hold locks
    // others wait for, so an abandoned one ends (Spanner aborts idle
    // transactions too).
    ("idle_in_transaction_session_timeout", "1min"),
    // Off, as in PostgreSQL (`crate::timeout`, `Transaction::set_lock_timeout`).
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("client_min_messages", "notice"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every documented AS OF form reads as the right timestamp.
    /// Method: fixed `now`, each form.
    #[test]
    fn as_of_forms() {
        let now = 1_767_225_600_000_000_000;
        assert_eq!(parse_time("-10s", now).unwrap(), now - 10_000_000_000);
        assert_eq!(parse_time("-1m30s", now).unwrap(), now - 90_000_000_000);
        assert_eq!(parse_time("-250ms", now).unwrap(), now - 250_000_000);
        assert_eq!(parse_time("2026-01-01T00:00:00.000000001Z", now).unwrap(), now + 1);
        assert_eq!(parse_time("2026-01-01 00:00:00", now).unwrap(), now);
        assert_eq!(parse_time("1767225600000000000", now).unwrap(), now);
        assert_eq!(format_nanos(now + 1), "2026-01-01T00:00:00.000000001Z");
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_duration("10 parsecs").is_err());
    }
}
