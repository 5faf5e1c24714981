//! `to_char(timestamp | timestamptz | date | interval, template)`:
//! PostgreSQL 15's date/time formatting.
//!
//! A template is read left to right. At each place the longest template
//! pattern that fits is replaced by that field of the value, anything
//! else is copied, `"..."` is copied without its quotes (a backslash in
//! it keeps the next character), and `\` keeps the next character:
//!
//! ```text
//!   to_char(timestamp '2026-03-07 14:05:09', 'FMDay, DDth "of" FMMonth YYYY HH12:MI AM')
//!     -> Saturday, 07th of March 2026 02:05 PM
//! ```
//!
//! `FM` before a pattern drops its padding (leading zeros, the blanks
//! that make names nine wide); `TH`/`th` after a number adds its ordinal
//! suffix (`1ST`, `2nd`). A name's case follows the pattern's (`MONTH`,
//! `Month`, `month`). A timestamptz, and a date (its midnight), show
//! their wall clock in the session's zone (`TZ`, `OF`, `TZH`, `TZM` name
//! it); a timestamp's zone is none (`TZ` gives nothing, `OF` +00). An
//! interval's fields are its own (`DD` its days, `HH24` its hours, each
//! with its sign); names and zones are 22007 for it.
//!
//! # Invariants
//!
//! - Every template gives a string, none an error: what is not a pattern
//!   is copied. The output is bounded by the template's length times the
//!   widest field, and a template by the statement's size.
//! - An infinite timestamp gives NULL, as in PostgreSQL.
//!
//! # Where we differ from PostgreSQL
//!
//! Numbers (`to_char(123.45, '999.99')`), `FX` and `SP` are not
//! supported: `FX` is dropped, `SP` copied. Of an interval, the calendar
//! patterns PostgreSQL computes from its fields anyway (`W`, `WW`, `J`,
//! `DDD`, `IW`, `RM`, ...) are not its numbers.

use chrono::{Datelike, NaiveDate, Timelike};

use crate::error::Result;
use crate::ops::zone;
use crate::sql_err;
use crate::types::{Interval, Value};

/// Template patterns, longest first where one begins another (matched
/// without regard to case; a name's case is taken from the template).
const PATTERNS: &[&str] = &[
    "a.d.", "a.m.", "ad", "am", "b.c.", "bc", "cc", "day", "ddd", "dd", "dy", "d", "fx", "hh24", "hh12", "hh", "iddd",
    "id", "iw", "iyyy", "iyy", "iy", "i", "j", "mi", "mm", "month", "mon", "ms", "of", "p.m.", "pm", "q", "rm",
    "sssss", "ssss", "ss", "tzh", "tzm", "tz", "us", "ww", "w", "y,yyy", "yyyy", "yyy", "yy", "y",
];

/// The fields a template can show, of a timestamp or an interval.
struct Fields {
    /// Astronomical year (0 is 1 BC); an interval's years.
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
    /// Of a timestamp only: the calendar's other fields.
    calendar: Option<Calendar>,
    /// Of a timestamptz only: its zone's offset (seconds east) and name.
    zone: Option<(i64, String)>,
}

struct Calendar {
    day_of_year: i64,
    /// 1 (Sunday) to 7.
    day_of_week: i64,
    iso_year: i64,
    iso_week: i64,
    /// 1 (Monday) to 7.
    iso_day: i64,
    julian_day: i64,
}

/// `to_char(value, template)` (NULL for an infinite timestamp).
pub fn to_char(value: &Value, template: &str) -> Result<Value> {
    let fields = match value {
        Value::Null => return Ok(Value::Null),
        Value::Timestamp(us) | Value::TimestampTz(us) if *us == i64::MAX || *us == i64::MIN => return Ok(Value::Null),
        Value::Date(d) if *d == i32::MAX || *d == i32::MIN => return Ok(Value::Null),
        // A timestamp's zone is none, its offset 0.
        Value::Timestamp(us) => of_timestamp(*us, Some((0, String::new())))?,
        // A date is the timestamptz of its midnight, as PostgreSQL takes it.
        Value::Date(_) | Value::TimestampTz(_) => {
            let session = zone::session();
            let us = match value {
                Value::TimestampTz(us) => *us,
                date => zone::to_utc(date.as_micros().unwrap_or_default(), session)?,
            };
            let (local, offset) = zone::local_and_offset(us, session)?;
            of_timestamp(local, Some((offset, zone::abbreviation(us, session))))?
        }
        Value::Interval(i) => of_interval(i),
        other => return sql_err!(UndefinedFunction, "function to_char({other:?}, text) does not exist"),
    };
    Ok(Value::Text(format(&fields, template)?))
}

fn of_timestamp(local_us: i64, zone: Option<(i64, String)>) -> Result<Fields> {
    let Some(t) = chrono::DateTime::from_timestamp_micros(local_us).map(|t| t.naive_utc()) else {
        return sql_err!(DatetimeFieldOverflow, "timestamp out of range");
    };
    let date = t.date();
    let iso = date.iso_week();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    Ok(Fields {
        year: i64::from(t.year()),
        month: i64::from(t.month()),
        day: i64::from(t.day()),
        hour: i64::from(t.hour()),
        minute: i64::from(t.minute()),
        second: i64::from(t.second()),
        micros: i64::from(t.nanosecond() / 1_000),
        calendar: Some(Calendar {
            day_of_year: i64::from(t.ordinal()),
            day_of_week: i64::from(date.weekday().num_days_from_sunday()) + 1,
            iso_year: i64::from(iso.year()),
            iso_week: i64::from(iso.week()),
            iso_day: i64::from(date.weekday().number_from_monday()),
            julian_day: (date - epoch).num_days() + 2_440_588,
        }),
        zone,
    })
}

fn of_interval(i: &Interval) -> Fields {
    let micros = i.micros;
    Fields {
        year: i64::from(i.months / 12),
        month: i64::from(i.months % 12),
        day: i64::from(i.days),
        hour: micros / 3_600_000_000,
        minute: micros / 60_000_000 % 60,
        second: micros / 1_000_000 % 60,
        micros: micros % 1_000_000,
        calendar: None,
        zone: None,
    }
}

/// How a name's letters are cased, from the template's.
#[derive(Clone, Copy)]
enum Case {
    Upper,
    Capitalized,
    Lower,
}

fn case_of(written: &str) -> Case {
    let mut letters = written.chars().filter(char::is_ascii_alphabetic);
    match (letters.next(), letters.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_uppercase() => Case::Upper,
        (Some(a), None) if a.is_ascii_uppercase() => Case::Upper,
        (Some(a), _) if a.is_ascii_uppercase() => Case::Capitalized,
        _ => Case::Lower,
    }
}

fn cased(name: &str, case: Case) -> String {
    match case {
        Case::Upper => name.to_uppercase(),
        Case::Lower => name.to_lowercase(),
        Case::Capitalized => {
            let mut out = name[..1].to_uppercase();
            out.push_str(&name[1..].to_lowercase());
            out
        }
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const ROMAN: [&str; 12] = ["i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x", "xi", "xii"];

/// `n` zero-padded to `width` characters, a minus sign among them (C's
/// `%0*d`, as PostgreSQL prints), or as it is in fill mode.
fn padded(n: i64, width: usize, fill: bool) -> String {
    if fill {
        n.to_string()
    } else {
        format!("{n:0width$}")
    }
}

/// The ordinal suffix of `n` (`st`, `nd`, `rd`, `th`).
fn ordinal(n: i64) -> &'static str {
    let n = n.unsigned_abs();
    match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

fn format(f: &Fields, template: &str) -> Result<String> {
    let chars: Vec<char> = template.chars().collect();
    let lower: Vec<char> = chars.iter().map(char::to_ascii_lowercase).collect();
    let mut out = String::with_capacity(template.len() * 2);
    let mut i = 0;
    let mut fill = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        // Outside quotes a backslash keeps only a quote.
        if c == '\\' && chars.get(i + 1) == Some(&'"') {
            out.push('"');
            i += 2;
            continue;
        }
        let starts_with = |p: &str| p.chars().enumerate().all(|(k, pc)| lower.get(i + k) == Some(&pc));
        if starts_with("fm") {
            fill = true;
            i += 2;
            continue;
        }
        let Some(pattern) = PATTERNS.iter().find(|p| starts_with(p)) else {
            out.push(c);
            i += 1;
            continue;
        };
        let written: String = chars[i..i + pattern.chars().count()].iter().collect();
        i += pattern.chars().count();
        let (text, number) = field(f, pattern, &written, fill)?;
        out.push_str(&text);
        // A number's ordinal suffix, in the suffix's case.
        if let Some(n) = number {
            if lower.get(i) == Some(&'t') && lower.get(i + 1) == Some(&'h') {
                let suffix = ordinal(n);
                out.push_str(&if chars[i] == 'T' { suffix.to_uppercase() } else { suffix.to_string() });
                i += 2;
            }
        }
        fill = false;
    }
    Ok(out)
}

/// One pattern's text, and its number if it is one (for `TH`); 22007
/// for a pattern an interval cannot show (its names and zone).
fn field(f: &Fields, pattern: &str, written: &str, fill: bool) -> Result<(String, Option<i64>)> {
    let calendar_only = ["month", "mon", "day", "dy", "d", "id", "tz", "tzh", "tzm", "of", "ad", "bc", "a.d.", "b.c."];
    if f.calendar.is_none() && calendar_only.contains(&pattern) {
        return Err(crate::error::Error::new(
            crate::error::SqlState::InvalidDatetimeFormat,
            "invalid format specification for an interval value",
        )
        .with_hint("Intervals are not tied to specific calendar dates."));
    }
    Ok(field_text(f, pattern, written, fill))
}

fn field_text(f: &Fields, pattern: &str, written: &str, fill: bool) -> (String, Option<i64>) {
    let num = |n: i64, width: usize| (padded(n, width, fill), Some(n));
    // The clock's fields keep two digits after an interval's sign.
    let clock = |n: i64| num(n, if n < 0 { 3 } else { 2 });
    let name = |n: &str, width: usize| {
        let text = cased(n, case_of(written));
        let text = if fill { text } else { format!("{text:<width$}") };
        (text, None)
    };
    let bc = f.calendar.is_some() && f.year <= 0;
    // The year as written: 1 BC is 1.
    let year = if bc { 1 - f.year } else { f.year };
    // An interval's keeps its sign.
    let hour12 = match f.hour % 12 {
        0 => 12,
        h => h,
    };
    let month = (f.month - 1).clamp(0, 11) as usize;
    let cal = f.calendar.as_ref();
    match pattern {
        "y,yyy" => {
            let text = format!("{},{:03}", year / 1000, year % 1000);
            (text, Some(year))
        }
        "yyyy" => num(year, 4),
        "yyy" => num(year % 1000, 3),
        "yy" => num(year % 100, 2),
        "y" => num(year % 10, 1),
        "iyyy" => num(cal.map_or(year, |c| c.iso_year), 4),
        "iyy" => num(cal.map_or(year, |c| c.iso_year) % 1000, 3),
        "iy" => num(cal.map_or(year, |c| c.iso_year) % 100, 2),
        "i" => num(cal.map_or(year, |c| c.iso_year) % 10, 1),
        "mm" => num(f.month, 2),
        "month" => name(MONTHS[month], 9),
        "mon" => name(&MONTHS[month][..3], 3),
        "rm" => name(ROMAN[month], 4),
        "dd" => num(f.day, 2),
        "ddd" => num(cal.map_or(f.day, |c| c.day_of_year), 3),
        "d" => num(cal.map_or(0, |c| c.day_of_week), 1),
        "day" => name(DAYS[cal.map_or(0, |c| c.day_of_week - 1) as usize], 9),
        "dy" => name(&DAYS[cal.map_or(0, |c| c.day_of_week - 1) as usize][..3], 3),
        "id" => num(cal.map_or(0, |c| c.iso_day), 1),
        "iddd" => num(cal.map_or(0, |c| (c.iso_week - 1) * 7 + c.iso_day), 3),
        "iw" => num(cal.map_or(0, |c| c.iso_week), 2),
        "ww" => num(cal.map_or(0, |c| (c.day_of_year - 1) / 7 + 1), 2),
        "w" => num((f.day - 1) / 7 + 1, 1),
        "q" => num((f.month - 1) / 3 + 1, 1),
        "cc" => num(if bc { -((year - 1) / 100 + 1) } else { (year - 1) / 100 + 1 }, 2),
        "j" => num(cal.map_or(0, |c| c.julian_day), 1),
        "hh" | "hh12" => clock(hour12),
        "hh24" => clock(f.hour),
        "mi" => clock(f.minute),
        "ss" => clock(f.second),
        "ms" => num(f.micros / 1_000, 3),
        "us" => num(f.micros, 6),
        "ssss" | "sssss" => num((f.hour * 60 + f.minute) * 60 + f.second, 1),
        "am" | "pm" => (cased(if f.hour % 24 < 12 { "am" } else { "pm" }, case_of(written)), None),
        "a.m." | "p.m." => (cased(if f.hour % 24 < 12 { "a.m." } else { "p.m." }, case_of(written)), None),
        "ad" | "bc" => (cased(if bc { "bc" } else { "ad" }, case_of(written)), None),
        "a.d." | "b.c." => (cased(if bc { "b.c." } else { "a.d." }, case_of(written)), None),
        "tz" => (f.zone.as_ref().map_or(String::new(), |(_, name)| cased(name, case_of(written))), None),
        "of" => (f.zone.as_ref().map_or(String::new(), |(offset, _)| zone::offset_text(*offset)), None),
        "tzh" => match &f.zone {
            Some((offset, _)) => (format!("{}{:02}", if *offset < 0 { '-' } else { '+' }, offset.abs() / 3600), None),
            None => (String::new(), None),
        },
        "tzm" => (f.zone.as_ref().map_or(String::new(), |(offset, _)| format!("{:02}", offset.abs() / 60 % 60)), None),
        // Fixed-format matching (input only): nothing to show.
        _ => (String::new(), None),
    }
}
