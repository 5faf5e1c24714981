//! `to_char(timestamp | timestamptz | date | interval, template)`:
//! PostgreSQL 15's date/time formatting; `to_char(number, template)`
//! ([`to_char_number`]) its number formatting.
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
//! - No template panics; what is not a pattern is copied. A template is
//!   at most [`limits::FORMAT_TEMPLATE_CHARS_MAX`] characters (54000
//!   past it), so the output is at most that times the widest field, and
//!   the work linear in it.
//! - An infinite timestamp gives NULL, as in PostgreSQL.
//!
//! # Where we differ from PostgreSQL
//!
//! `FX` and `SP` are not supported: `FX` is dropped, `SP` copied; nor
//! are a number's `EEEE`, `RN` and `V` (0A000). Of an interval, the calendar
//! patterns PostgreSQL computes from its fields anyway (`W`, `WW`, `J`,
//! `DDD`, `IW`, `RM`, ...) are not its numbers.

use chrono::{Datelike, NaiveDate, Timelike};

use crate::error::Result;
use crate::limits;
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

/// Refuses a template longer than [`limits::FORMAT_TEMPLATE_CHARS_MAX`]
/// (54000): the output is bounded by it.
fn check_template(template: &str) -> Result<()> {
    if template.chars().count() > limits::FORMAT_TEMPLATE_CHARS_MAX {
        return sql_err!(
            ProgramLimitExceeded,
            "to_char's template is over {} characters",
            limits::FORMAT_TEMPLATE_CHARS_MAX
        );
    }
    Ok(())
}

/// `to_char(value, template)` (NULL for an infinite timestamp or, but
/// for an interval, an empty template).
pub fn to_char(value: &Value, template: &str) -> Result<Value> {
    check_template(template)?;
    if template.is_empty() && !matches!(value, Value::Interval(_)) {
        return Ok(Value::Null);
    }
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
    if name.is_empty() {
        return String::new();
    }
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

/// Day names, lower case, from Sunday (also what `to_date` reads).
pub(super) const DAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
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
            fill = false;
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
            // FM is for the next pattern only: anything else ends it.
            fill = false;
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
        "month" => name(crate::ops::MONTH_NAMES[month], 9),
        "mon" => name(&crate::ops::MONTH_NAMES[month][..3], 3),
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
        // Fill mode keeps a fraction's width.
        "ms" => (format!("{:03}", f.micros / 1_000), Some(f.micros / 1_000)),
        "us" => (format!("{:06}", f.micros), Some(f.micros)),
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

/// One piece of a number's template (`to_char(123.45, 'FM9,999.00')`).
#[derive(Clone, Copy, PartialEq)]
enum NumPiece {
    /// `9` (a digit, or a blank where there is none) or `0` (a digit, or
    /// a zero).
    Digit {
        zero: bool,
    },
    /// `.` or `D`.
    Point,
    /// `,` or `G`.
    Group,
    /// `S`: the sign, `+` or `-`, next to the number when written first.
    Sign,
    /// `MI` (`-` or a blank), `PL` (`+` or a blank), `SG` (`+` or `-`).
    Minus,
    Plus,
    SignAlways,
    /// `PR`: a negative number in angle brackets.
    Brackets,
    /// `L`: the currency symbol (none in SpanDB's C locale: a blank).
    Currency,
    /// `TH` / `th`: the ordinal suffix, upper case or not.
    Ordinal {
        upper: bool,
    },
    Literal(char),
}

/// A number's template, read (`FM` anywhere makes it all fill mode, as
/// in PostgreSQL); 0A000 for `EEEE`, `RN` and `V`.
fn number_template(template: &str) -> Result<(Vec<NumPiece>, bool)> {
    let chars: Vec<char> = template.chars().collect();
    let upper: Vec<char> = chars.iter().map(char::to_ascii_uppercase).collect();
    let at = |i: usize, word: &str| word.chars().enumerate().all(|(k, w)| upper.get(i + k) == Some(&w));
    let mut pieces = Vec::new();
    let mut fill = false;
    let mut i = 0;
    while i < chars.len() {
        let (piece, len) = match upper[i] {
            '9' => (Some(NumPiece::Digit { zero: false }), 1),
            '0' => (Some(NumPiece::Digit { zero: true }), 1),
            '.' | 'D' => (Some(NumPiece::Point), 1),
            ',' | 'G' => (Some(NumPiece::Group), 1),
            _ if at(i, "FM") => {
                fill = true;
                (None, 2)
            }
            _ if at(i, "MI") => (Some(NumPiece::Minus), 2),
            _ if at(i, "PL") => (Some(NumPiece::Plus), 2),
            _ if at(i, "SG") => (Some(NumPiece::SignAlways), 2),
            _ if at(i, "PR") => (Some(NumPiece::Brackets), 2),
            _ if at(i, "TH") => (Some(NumPiece::Ordinal { upper: chars[i] == 'T' }), 2),
            _ if at(i, "EEEE") || at(i, "RN") || upper[i] == 'V' => {
                return sql_err!(FeatureNotSupported, "to_char of a number does not support EEEE, RN or V");
            }
            'S' => (Some(NumPiece::Sign), 1),
            'L' => (Some(NumPiece::Currency), 1),
            '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    if chars[j] == '\\' && j + 1 < chars.len() {
                        j += 1;
                    }
                    pieces.push(NumPiece::Literal(chars[j]));
                    j += 1;
                }
                (None, j + 1 - i)
            }
            '\\' if chars.get(i + 1) == Some(&'"') => (Some(NumPiece::Literal('"')), 2),
            _ => (Some(NumPiece::Literal(chars[i])), 1),
        };
        pieces.extend(piece);
        i += len;
    }
    Ok((pieces, fill))
}

/// A number's decimal text rounded to `scale` places, half away from
/// zero: whether it is negative (and not zero once rounded), its integer
/// digits without leading zeros (none for zero), its `scale` fraction
/// digits.
fn rounded(text: &str, scale: usize) -> (bool, String, String) {
    let negative = text.starts_with('-');
    let unsigned = text.trim_start_matches(['-', '+']);
    let (int, frac) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes().chain(std::iter::repeat(b'0')).take(scale)).collect();
    if frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5') {
        // Carry the rounding up through the nines.
        let mut k = digits.len();
        loop {
            if k == 0 {
                digits.insert(0, b'1');
                break;
            }
            k -= 1;
            if digits[k] == b'9' {
                digits[k] = b'0';
            } else {
                digits[k] += 1;
                break;
            }
        }
    }
    let split = digits.len() - scale;
    let int: String = String::from_utf8_lossy(&digits[..split]).trim_start_matches('0').to_string();
    let frac = String::from_utf8_lossy(&digits[split..]).to_string();
    let zero = int.is_empty() && frac.bytes().all(|d| d == b'0');
    (negative && !zero, int, frac)
}

/// `to_char(number, template)`: PostgreSQL's `9`, `0`, `.`/`D`, `,`/`G`,
/// `S`, `MI`, `PL`, `SG`, `PR`, `L`, `TH` and `FM`; a number wider than
/// the template's digits shows `#` in each.
pub fn to_char_number(value: &Value, template: &str) -> Result<Value> {
    check_template(template)?;
    let (pieces, fill) = number_template(template)?;
    let point = pieces.iter().position(|p| *p == NumPiece::Point);
    let is_digit = |p: &NumPiece| matches!(p, NumPiece::Digit { .. });
    let int_places = pieces[..point.unwrap_or(pieces.len())].iter().filter(|p| is_digit(p)).count();
    let frac_places = point.map_or(0, |at| pieces[at..].iter().filter(|p| is_digit(p)).count());
    let text = match value {
        Value::Null => return Ok(Value::Null),
        Value::Float4(v) => format!("{:.frac_places$}", f64::from(*v)),
        Value::Float8(v) => format!("{v:.frac_places$}"),
        Value::Numeric(d) => d.to_string(),
        other => match other.as_i64() {
            Some(n) => n.to_string(),
            None => return sql_err!(UndefinedFunction, "function to_char({other:?}, text) does not exist"),
        },
    };
    let finite = text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
    let (negative, int, frac) = rounded(&text, frac_places);
    let overflow = !finite || int.len() > int_places;
    // Where zeros start to be shown for missing digits: the first `0`,
    // or (a zero's integer part) the last place when nothing else shows.
    let first_zero = pieces
        .iter()
        .take_while(|p| **p != NumPiece::Point)
        .filter(|p| is_digit(p))
        .position(|p| *p == NumPiece::Digit { zero: true });
    let last_zero_frac = point.and_then(|at| {
        let fraction = pieces[at..].iter().filter(|p| is_digit(p));
        fraction.enumerate().filter(|(_, p)| **p == NumPiece::Digit { zero: true }).map(|(k, _)| k).last()
    });
    // Fill mode drops the fraction's zeros after the template's last `0`.
    let droppable = |k: usize, digit: u8| fill && digit == b'0' && last_zero_frac.is_none_or(|z| k > z);
    let no_fraction_shown = frac.bytes().enumerate().all(|(k, d)| droppable(k, d));
    let zero_from = match first_zero {
        Some(k) => k,
        None if int.is_empty() && no_fraction_shown => int_places.saturating_sub(1),
        None => int_places,
    };
    let has = |p: NumPiece| pieces.contains(&p);
    let sign_first =
        pieces.iter().position(|p| *p == NumPiece::Sign).is_some_and(|s| pieces[..s].iter().all(|p| !is_digit(p)));
    // The sign's place before the number: `-` (`+` too for a leading
    // `S`, `<` for `PR`), unless a positional sign takes it.
    // A template without digits shows no number (nor a sign for it).
    let any_digit = pieces.iter().any(is_digit);
    let slot =
        if !any_digit || has(NumPiece::Minus) || has(NumPiece::SignAlways) || (has(NumPiece::Sign) && !sign_first) {
            None
        } else if has(NumPiece::Brackets) {
            Some(if negative { '<' } else { ' ' })
        } else if sign_first {
            Some(if negative { '-' } else { '+' })
        } else {
            Some(if negative { '-' } else { ' ' })
        };
    let mut out: Vec<char> = Vec::new();
    // Where the number's places begin (after a leading literal such as
    // `$`), and where its first shown character went: the sign's place
    // is before the one, its sign just before the other.
    let mut number_at: Option<usize> = None;
    let mut started_at: Option<usize> = None;
    let (mut int_index, mut frac_index) = (0, 0);
    // The fraction's digits: where each went, and whether fill mode may
    // drop it (a zero after the template's last `0`).
    let mut frac_out: Vec<(usize, bool)> = Vec::new();
    for piece in &pieces {
        if matches!(piece, NumPiece::Digit { .. } | NumPiece::Point | NumPiece::Group) {
            number_at.get_or_insert(out.len());
        }
        match *piece {
            NumPiece::Digit { .. } if int_index < int_places => {
                let k = int_index;
                int_index += 1;
                let missing = int_places - int.len().min(int_places);
                let c = if overflow {
                    Some('#')
                } else if k >= missing {
                    Some(char::from(int.as_bytes()[k - missing]))
                } else if k >= zero_from {
                    Some('0')
                } else {
                    None
                };
                match c {
                    Some(c) => {
                        started_at.get_or_insert(out.len());
                        out.push(c);
                    }
                    None if !fill => out.push(' '),
                    None => {}
                }
            }
            NumPiece::Digit { .. } => {
                let k = frac_index;
                frac_index += 1;
                started_at.get_or_insert(out.len());
                let digit = if overflow { '#' } else { char::from(frac.as_bytes()[k]) };
                frac_out.push((out.len(), !overflow && droppable(k, frac.as_bytes()[k])));
                out.push(digit);
            }
            NumPiece::Point => {
                started_at.get_or_insert(out.len());
                out.push('.');
            }
            NumPiece::Group if started_at.is_some() => out.push(','),
            NumPiece::Group if !fill => out.push(' '),
            NumPiece::Group => {}
            NumPiece::Sign if sign_first => {}
            NumPiece::Sign | NumPiece::SignAlways => out.push(if negative { '-' } else { '+' }),
            NumPiece::Minus if negative => out.push('-'),
            NumPiece::Plus if !negative => out.push('+'),
            NumPiece::Brackets if negative => out.push('>'),
            NumPiece::Minus | NumPiece::Plus | NumPiece::Brackets if !fill => out.push(' '),
            NumPiece::Minus | NumPiece::Plus | NumPiece::Brackets => {}
            NumPiece::Currency => out.push(' '),
            // No suffix for a negative number or one with a fraction.
            NumPiece::Ordinal { upper } if !overflow && !negative && point.is_none() => {
                let suffix = ordinal(int.parse::<i64>().unwrap_or(0));
                out.extend(if upper { suffix.to_uppercase() } else { suffix.to_string() }.chars());
            }
            NumPiece::Ordinal { .. } => {}
            NumPiece::Literal(c) => out.push(c),
        }
    }
    if fill {
        // The trailing run of droppable digits goes, in one pass.
        let dropped: std::collections::HashSet<usize> =
            frac_out.iter().rev().take_while(|(_, droppable)| *droppable).map(|(at, _)| *at).collect();
        if !dropped.is_empty() {
            let kept = out.iter().enumerate().filter(|(at, _)| !dropped.contains(at)).map(|(_, c)| *c);
            out = kept.collect();
        }
    }
    if let Some(slot) = slot {
        let at = started_at.unwrap_or(out.len());
        if fill {
            if slot != ' ' {
                out.insert(at, slot);
            }
        } else {
            // One more place, before the number: the sign takes the
            // blank just before its first shown character.
            let place = number_at.unwrap_or(0);
            out.insert(place, ' ');
            let at = if at >= place { at + 1 } else { at };
            if slot != ' ' {
                if out[at - 1] == ' ' {
                    out[at - 1] = slot;
                } else {
                    out.insert(at, slot);
                }
            }
        }
    }
    let out: String = out.into_iter().collect();
    Ok(Value::Text(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: no template and no value panics either kind of to_char.
    /// Method: 20,000 templates of pattern letters, digits, signs and
    /// quotes, each on a number and a timestamp, an interval and a date
    /// at the edges of their ranges.
    #[test]
    fn no_template_panics() {
        let alphabet: Vec<char> = "9099.,DGSMIPLRTHFMYDHSUAQWJIZO\"\\ -+xth".chars().collect();
        let numbers = [
            Value::Int8(i64::MIN),
            Value::Int8(0),
            Value::Float8(f64::NAN),
            Value::Float8(f64::INFINITY),
            Value::Float8(-1e300),
            Value::Float8(-0.0049),
            Value::Float4(3.5),
            Value::Numeric("-99999999999999999999.99999999".parse().unwrap()),
        ];
        let times = [
            Value::Timestamp(0),
            Value::Timestamp(-210_000_000_000_000_000),
            Value::TimestampTz(9_000_000_000_000_000_000),
            Value::Date(-700_000),
            Value::Interval(Interval { months: i32::MIN, days: i32::MIN, micros: i64::MIN }),
            Value::Interval(Interval { months: -13, days: 5, micros: -1 }),
        ];
        let mut seed: u64 = 0x5EED;
        for _ in 0..20_000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let len = (seed >> 59) as usize;
            let template: String =
                (0..len).map(|k| alphabet[((seed >> (k * 3 % 50)) as usize + k) % alphabet.len()]).collect();
            let number = &numbers[(seed >> 20) as usize % numbers.len()];
            let time = &times[(seed >> 30) as usize % times.len()];
            let _ = to_char_number(number, &template);
            let _ = to_char(time, &template);
        }
        // Found by review: a zone pattern in mixed case on a timestamp
        // (an empty zone name), and the longest fraction a template allows.
        assert_eq!(to_char(&Value::Timestamp(0), "Tz").unwrap(), Value::Text(String::new()));
        let widest = format!("FM.{}", "9".repeat(limits::FORMAT_TEMPLATE_CHARS_MAX - 3));
        assert!(to_char_number(&Value::Float8(1.5), &widest).is_ok());
        let over = "9".repeat(limits::FORMAT_TEMPLATE_CHARS_MAX + 1);
        assert_eq!(
            to_char_number(&Value::Int8(1), &over).unwrap_err().state,
            crate::error::SqlState::ProgramLimitExceeded
        );
    }
}
