//! `to_date(text, template)` and `to_timestamp(text, template)`: reading a
//! date or a time out of text by a template, as PostgreSQL 15 does (the
//! inverse of `to_char`, whose patterns it shares).
//!
//! The template is read left to right, and the input with it:
//!
//! - A pattern reads its field, after any blanks. A number reads as many
//!   digits as there are when a separator (or the end, or a pattern
//!   that is not a number) follows it in the template, else exactly its
//!   width (`YYYYMMDD` reads 4, 2 and 2). A name (`Mon`, `Month`, `Dy`,
//!   `Day`, `AM`, `PM`) reads one of its values, in any case.
//! - A blank or a separator (`-`, `/`, `:`, ...) in the template skips one
//!   blank or separator of the input, if there is one there.
//! - Any other character, and each character of `"quoted"` text, skips
//!   one character of the input, whatever it is.
//! - Once the input ends the rest of the template is ignored, and so is
//!   input left over once the template ends.
//!
//! ```text
//!   to_date('3 Feb 2024', 'DD Mon YYYY')                        -> 2024-02-03
//!   to_timestamp('2024-02-03 02:05 PM', 'YYYY-MM-DD HH12:MI AM') -> 2024-02-03 14:05:00+00
//! ```
//!
//! Fields not given are those of January 1st of year 0 (1 BC), midnight.
//! Two- and three-digit years are taken near 2020 (`YY` 70-99 in the
//! 1900s, 00-69 in the 2000s). A timestamp is read in the session's zone
//! unless `TZH`/`TZM` give an offset.
//!
//! # Invariants
//!
//! - No input or template panics: a value that is not a number or not a
//!   name the field takes is 22007, a date or time that does not exist
//!   22008 (`2024-02-30`), and a template longer than
//!   [`limits::FORMAT_TEMPLATE_CHARS_MAX`] 54000.
//! - The work is linear in the template and the input.
//!
//! # Where we differ from PostgreSQL
//!
//! Only the calendar's common fields are read: years (`YYYY`, `YYY`, `YY`,
//! `Y`, `Y,YYY`), `MM`, `Mon`, `Month`, `DD`, `DDD`, `HH24`, `HH12`,
//! `HH`, `MI`, `SS`, `MS`, `US`, `AM`/`PM`, `AD`/`BC`, `TZH`, `TZM`, and
//! day names (read and ignored); any other pattern (ISO weeks, `J`, `Q`,
//! `TZ`, ...) is 0A000. `FX` is not supported (0A000).

use chrono::{Datelike, NaiveDate};

// Month and day names, lower case, as `to_char` writes them.
use super::to_char::DAYS;
use crate::error::{Error, Result, SqlState};
use crate::limits;
use crate::ops::zone;
use crate::ops::MONTH_NAMES as MONTHS;
use crate::sql_err;
use crate::types::Value;

/// Template patterns this module reads, longest first where one begins
/// another (matched without regard to case).
const PATTERNS: &[&str] = &[
    "a.d.", "a.m.", "ad", "am", "b.c.", "bc", "day", "ddd", "dd", "dy", "fx", "hh24", "hh12", "hh", "mi", "mm",
    "month", "mon", "ms", "p.m.", "pm", "ss", "tzh", "tzm", "us", "y,yyy", "yyyy", "yyy", "yy", "y",
];

/// Patterns `to_char` writes that are not read here.
const UNREAD: &[&str] =
    &["cc", "d", "iddd", "id", "iw", "iyyy", "iyy", "iy", "i", "j", "of", "q", "rm", "sssss", "ssss", "tz", "ww", "w"];

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// A pattern (lower case), as written, and whether `FM` came before it.
    Pattern { pattern: &'static str, written: String, fill: bool },
    /// A blank or a separator.
    Separator,
    /// Any other character, or one of quoted text: skips one input character.
    Char(char),
}

/// The fields read, before they are checked.
#[derive(Debug, Default)]
struct Fields {
    year: Option<i64>,
    bc: bool,
    month: Option<i64>,
    day: Option<i64>,
    day_of_year: Option<i64>,
    hour: Option<i64>,
    /// `HH12`/`HH` read it: 1-12, with `AM`/`PM`.
    twelve_hour: bool,
    pm: Option<bool>,
    minute: i64,
    second: i64,
    micros: i64,
    /// `TZH` and `TZM`: seconds from UTC, and whether west (`-`).
    offset: Option<i64>,
    offset_negative: bool,
}

/// `to_date(input, template)`.
pub fn to_date(input: &str, template: &str) -> Result<Value> {
    let fields = read(input, template)?;
    Ok(Value::Date(date_of(&fields, input)?))
}

/// `to_timestamp(input, template)`: a timestamptz.
pub fn to_timestamp(input: &str, template: &str) -> Result<Value> {
    let fields = read(input, template)?;
    let days = date_of(&fields, input)?;
    let out_of_range = || out_of_range(input);
    let mut hour = fields.hour.unwrap_or(0);
    if fields.twelve_hour {
        if !(1..=12).contains(&hour) {
            return Err(Error::new(
                SqlState::InvalidDatetimeFormat,
                format!("hour \"{hour}\" is invalid for the 12-hour clock"),
            )
            .with_hint("Use the 24-hour clock, or give an hour between 1 and 12."));
        }
        hour %= 12;
    }
    if fields.pm == Some(true) && hour < 12 {
        hour += 12;
    }
    if !(0..24).contains(&hour) || !(0..60).contains(&fields.minute) || !(0..60).contains(&fields.second) {
        return Err(out_of_range());
    }
    let clock = ((hour * 60 + fields.minute) * 60 + fields.second) * 1_000_000 + fields.micros;
    let local = i64::from(days).checked_mul(86_400_000_000).and_then(|d| d.checked_add(clock));
    let local = local.ok_or_else(out_of_range)?;
    let utc = match fields.offset {
        // West of UTC: later there.
        Some(offset) if fields.offset_negative => local.checked_add(offset * 1_000_000),
        Some(offset) => local.checked_sub(offset * 1_000_000),
        None => Some(zone::to_utc(local, zone::session())?),
    };
    Ok(Value::TimestampTz(utc.ok_or_else(out_of_range)?))
}

fn out_of_range(input: &str) -> Error {
    Error::new(SqlState::DatetimeFieldOverflow, format!("date/time field value out of range: \"{input}\""))
}

/// The date the fields name, as days since 1970-01-01.
fn date_of(f: &Fields, input: &str) -> Result<i32> {
    // BC negates the year; a year below 0 is one more in astronomical
    // numbering (where 1 BC is 0), as PostgreSQL's do_to_timestamp has it.
    let year = f.year.unwrap_or(0);
    let year = if f.bc { -year } else { year };
    let year = if year < 0 { year + 1 } else { year };
    let year = i32::try_from(year).map_err(|_| out_of_range(input))?;
    if f.day_of_year.is_some() && f.year.is_none() {
        return Err(Error::new(
            SqlState::InvalidDatetimeFormat,
            "cannot calculate day of year without year information",
        ));
    }
    let date = match (f.day_of_year, f.month, f.day) {
        (Some(ordinal), None, None) => u32::try_from(ordinal)
            .ok()
            .and_then(|o| NaiveDate::from_yo_opt(year, o))
            .ok_or_else(|| out_of_range(input))?,
        _ => {
            // 0 is "not given", as in PostgreSQL.
            let month = u32::try_from(f.month.filter(|m| *m != 0).unwrap_or(1)).map_err(|_| out_of_range(input))?;
            let day = u32::try_from(f.day.filter(|d| *d != 0).unwrap_or(1)).map_err(|_| out_of_range(input))?;
            NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| out_of_range(input))?
        }
    };
    let days = i64::from(date.num_days_from_ce()) - 719_163;
    i32::try_from(days).ok().filter(|d| d.abs() <= crate::types::DATE_DAYS_MAX).ok_or_else(|| out_of_range(input))
}

/// Splits a template into pieces.
fn pieces(template: &str) -> Result<Vec<Piece>> {
    if template.chars().count() > limits::FORMAT_TEMPLATE_CHARS_MAX {
        return sql_err!(ProgramLimitExceeded, "the template is over {} characters", limits::FORMAT_TEMPLATE_CHARS_MAX);
    }
    let chars: Vec<char> = template.chars().collect();
    let lower: Vec<char> = chars.iter().map(char::to_ascii_lowercase).collect();
    let mut out = Vec::new();
    let (mut i, mut fill) = (0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                out.push(Piece::Char(chars[i]));
                i += 1;
            }
            i += 1;
            continue;
        }
        let starts_with = |p: &str| p.chars().enumerate().all(|(k, pc)| lower.get(i + k) == Some(&pc));
        if starts_with("fm") {
            fill = true;
            i += 2;
            continue;
        }
        // The longest pattern that fits, read or not (`SSSS` is not `SS`
        // twice).
        let read = PATTERNS.iter().find(|p| starts_with(p));
        let unread = UNREAD.iter().find(|p| starts_with(p));
        let read = read.filter(|r| unread.is_none_or(|u| r.len() >= u.len()));
        if let Some(pattern) = read {
            let len = pattern.chars().count();
            let written: String = chars[i..i + len].iter().collect();
            if *pattern == "fx" {
                return sql_err!(FeatureNotSupported, "\"FX\" is not supported in to_date and to_timestamp");
            }
            out.push(Piece::Pattern { pattern, written, fill });
            i += len;
        } else if let Some(pattern) = UNREAD.iter().find(|p| starts_with(p)) {
            let written: String = chars[i..i + pattern.chars().count()].iter().collect();
            return sql_err!(
                FeatureNotSupported,
                "formatting field \"{written}\" is not supported in to_date and to_timestamp"
            );
        } else if c.is_alphanumeric() {
            out.push(Piece::Char(c));
            i += 1;
        } else {
            out.push(Piece::Separator);
            i += 1;
        }
        fill = false;
    }
    Ok(out)
}

/// Whether a pattern reads a number.
fn is_number(pattern: &str) -> bool {
    !matches!(pattern, "mon" | "month" | "dy" | "day" | "am" | "pm" | "a.m." | "p.m." | "ad" | "bc" | "a.d." | "b.c.")
}

/// A number's width in the template (where another number follows it
/// with no separator between).
fn width(pattern: &str) -> usize {
    match pattern {
        "yyyy" | "y,yyy" => 4,
        "yyy" | "ddd" | "ms" => 3,
        "us" => 6,
        "y" => 1,
        _ => 2,
    }
}

/// Reads the fields of `input` by `template`.
fn read(input: &str, template: &str) -> Result<Fields> {
    let pieces = pieces(template)?;
    let s: Vec<char> = input.chars().collect();
    let mut at = 0;
    let mut f = Fields::default();
    for (n, piece) in pieces.iter().enumerate() {
        if at >= s.len() {
            break;
        }
        match piece {
            // Blanks, one separator, blanks (`2024 / 02 / 03` by
            // `YYYY/MM/DD`); a sign before `TZH` is its own.
            Piece::Separator => {
                while at < s.len() && s[at].is_whitespace() {
                    at += 1;
                }
                let sign = matches!(s.get(at), Some('-' | '+'));
                let signed_next = matches!(pieces.get(n + 1), Some(Piece::Pattern { pattern: "tzh", .. }));
                let separator = s.get(at).is_some_and(|c| !c.is_alphanumeric() && !c.is_whitespace());
                if separator && !(sign && signed_next) {
                    at += 1;
                }
                while at < s.len() && s[at].is_whitespace() {
                    at += 1;
                }
            }
            Piece::Char(_) => at += 1,
            Piece::Pattern { pattern, written, fill } => {
                while at < s.len() && s[at].is_whitespace() {
                    at += 1;
                }
                if *pattern == "y,yyy" {
                    // Thousands, a comma, then the rest.
                    let (thousands, used) = number(&s[at..], true, 1, written)?;
                    at += used;
                    let mut year = thousands;
                    if s.get(at) == Some(&',') {
                        let (rest, used) = number(&s[at + 1..], true, 3, written)?;
                        at += used + 1;
                        year = thousands.saturating_mul(1000).saturating_add(rest);
                    }
                    f.year = Some(year);
                } else if is_number(pattern) {
                    // All its digits before a separator; else its width.
                    let next_is_separator = match pieces.get(n + 1) {
                        None | Some(Piece::Separator) => true,
                        Some(Piece::Pattern { pattern, .. }) => !is_number(pattern),
                        Some(Piece::Char(c)) => !c.is_ascii_digit(),
                    };
                    let negative = s.get(at) == Some(&'-');
                    // A sign before TZH is not one of its two digits.
                    let signed = *pattern == "tzh" && matches!(s.get(at), Some('-' | '+'));
                    let width = width(pattern) + usize::from(signed);
                    let (value, used) = number(&s[at..], *fill || next_is_separator, width, written)?;
                    at += used;
                    set_number(&mut f, pattern, value, used, negative).map_err(|e| match e.state {
                        SqlState::InvalidTimeZoneDisplacementValue => {
                            Error::new(e.state, format!("time zone displacement out of range: \"{input}\""))
                        }
                        _ => e,
                    })?;
                } else {
                    at += name(&mut f, pattern, &s[at..], written)?;
                }
            }
        }
    }
    Ok(f)
}

/// A number at the start of `s`: all its digits (after a sign), or exactly
/// `width` characters; and how many characters it took.
fn number(s: &[char], greedy: bool, width: usize, written: &str) -> Result<(i64, usize)> {
    let taken: String = if greedy {
        let sign = usize::from(matches!(s.first(), Some('-' | '+')));
        let digits = s[sign..].iter().take_while(|c| c.is_ascii_digit()).count();
        s[..sign + digits].iter().collect()
    } else {
        if s.len() < width {
            return Err(Error::new(
                SqlState::InvalidDatetimeFormat,
                format!("source string too short for \"{written}\" formatting field"),
            ));
        }
        s[..width].iter().collect()
    };
    let digits = taken.trim_start().trim_start_matches(['-', '+']);
    match taken.trim_start().parse::<i32>() {
        Ok(v) if !taken.is_empty() => Ok((i64::from(v), taken.chars().count())),
        _ if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) => Err(Error::new(
            SqlState::DatetimeFieldOverflow,
            format!("value for \"{written}\" in source string is out of range"),
        )
        .with_detail("Value must be in the range -2147483648 to 2147483647.")),
        _ => {
            let shown: String = s.iter().take(width.max(1)).collect();
            Err(Error::new(SqlState::InvalidDatetimeFormat, format!("invalid value \"{shown}\" for \"{written}\""))
                .with_detail("Value must be an integer."))
        }
    }
}

/// Stores a number read for `pattern` (`digits`: how many characters it
/// took, `negative`: written with a minus, which `-00` keeps).
fn set_number(f: &mut Fields, pattern: &str, v: i64, digits: usize, negative: bool) -> Result<()> {
    let out_of_range = || {
        Err(Error::new(
            SqlState::DatetimeFieldOverflow,
            format!("date/time field value out of range for \"{pattern}\": {v}"),
        ))
    };
    // Two and three digits near 2020, as PostgreSQL's
    // adjust_partial_year_to_2020.
    let near_2020 = |y: i64| match y {
        0..=69 => y + 2000,
        70..=99 => y + 1900,
        100..=519 => y + 2000,
        520..=999 => y + 1000,
        y => y,
    };
    match pattern {
        "yyyy" | "y,yyy" => f.year = Some(v),
        // Fewer than four characters: near 2020 (PostgreSQL's rule).
        "yyy" | "yy" | "y" if digits < 4 => f.year = Some(near_2020(v)),
        "yyy" | "yy" | "y" => f.year = Some(v),
        "mm" => f.month = Some(v),
        "dd" => f.day = Some(v),
        "ddd" => f.day_of_year = Some(v),
        "hh24" => f.hour = Some(v),
        "hh12" | "hh" => {
            f.hour = Some(v);
            f.twelve_hour = true;
        }
        "mi" => f.minute = v,
        "ss" => f.second = v,
        // Milliseconds and microseconds: a fraction's digits, no more
        // than the field has.
        "ms" | "us" => {
            let places = if pattern == "ms" { 3 } else { 6 };
            if v < 0 || digits > places {
                return out_of_range();
            }
            f.micros = scaled(v, digits, places) * if pattern == "ms" { 1_000 } else { 1 };
        }
        "tzh" => {
            if !(-15..=15).contains(&v) {
                return sql_err!(InvalidTimeZoneDisplacementValue, "time zone displacement out of range");
            }
            f.offset_negative = negative;
            f.offset = Some(v.abs() * 3600 + f.offset.map_or(0, |o| o % 3600));
        }
        "tzm" => {
            if !(0..60).contains(&v) {
                return out_of_range();
            }
            f.offset = Some(f.offset.map_or(0, |o| o - o % 3600) + v * 60);
        }
        _ => {}
    }
    Ok(())
}

/// `v`, read as `digits` digits of a fraction, in units of 10^-`places`.
fn scaled(v: i64, digits: usize, places: usize) -> i64 {
    let mut v = v;
    for _ in digits..places {
        v = v.saturating_mul(10);
    }
    for _ in places..digits {
        v /= 10;
    }
    v
}

/// Reads a name for `pattern` at the start of `s`; how many characters it
/// took.
fn name(f: &mut Fields, pattern: &str, s: &[char], written: &str) -> Result<usize> {
    let lower: String = s.iter().take(12).collect::<String>().to_lowercase();
    let found = |candidates: &[&str]| candidates.iter().position(|c| lower.starts_with(c));
    let no_match = || {
        let shown: String = s.iter().take_while(|c| c.is_alphanumeric() || **c == '.').collect();
        Error::new(SqlState::InvalidDatetimeFormat, format!("invalid value \"{shown}\" for \"{written}\""))
            .with_detail("The given value did not match any of the allowed values for this field.")
    };
    let abbreviated = |names: &[&str]| -> Vec<String> { names.iter().map(|n| n[..3].to_string()).collect() };
    match pattern {
        "month" => {
            let i = found(&MONTHS).ok_or_else(no_match)?;
            f.month = Some(i as i64 + 1);
            Ok(MONTHS[i].len())
        }
        "mon" => {
            let short = abbreviated(&MONTHS);
            let short: Vec<&str> = short.iter().map(String::as_str).collect();
            let i = found(&short).ok_or_else(no_match)?;
            f.month = Some(i as i64 + 1);
            Ok(3)
        }
        "day" => found(&DAYS).map(|i| DAYS[i].len()).ok_or_else(no_match),
        "dy" => {
            let short = abbreviated(&DAYS);
            let short: Vec<&str> = short.iter().map(String::as_str).collect();
            found(&short).map(|_| 3).ok_or_else(no_match)
        }
        "am" | "pm" | "a.m." | "p.m." => {
            let (plain, dotted) = (["am", "pm"], ["a.m.", "p.m."]);
            let names: &[&str] = if pattern.contains('.') { &dotted } else { &plain };
            let i = found(names).ok_or_else(no_match)?;
            f.pm = Some(i == 1);
            f.twelve_hour = true;
            Ok(names[i].len())
        }
        "ad" | "bc" | "a.d." | "b.c." => {
            let (plain, dotted) = (["ad", "bc"], ["a.d.", "b.c."]);
            let names: &[&str] = if pattern.contains('.') { &dotted } else { &plain };
            let i = found(names).ok_or_else(no_match)?;
            f.bc = i == 1;
            Ok(names[i].len())
        }
        _ => Err(no_match()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(input: &str, template: &str) -> String {
        match to_date(input, template) {
            Ok(Value::Date(d)) => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
                (epoch + chrono::Duration::days(i64::from(d))).to_string()
            }
            Ok(other) => format!("{other:?}"),
            Err(e) => e.state.code().to_string(),
        }
    }

    #[test]
    fn dates_read_as_postgresql_reads_them() {
        assert_eq!(date("2024-02-03", "YYYY-MM-DD"), "2024-02-03");
        assert_eq!(date("20240203", "YYYYMMDD"), "2024-02-03");
        assert_eq!(date("3 Feb 2024", "DD Mon YYYY"), "2024-02-03");
        assert_eq!(date("February 3, 2024", "Month DD, YYYY"), "2024-02-03");
        assert_eq!(date("2024/2/3", "YYYY-MM-DD"), "2024-02-03");
        assert_eq!(date("  2024-02-03", "YYYY-MM-DD"), "2024-02-03");
        assert_eq!(date("24-02-03", "YY-MM-DD"), "2024-02-03");
        assert_eq!(date("99-02-03", "YY-MM-DD"), "1999-02-03");
        assert_eq!(date("2024 034", "YYYY DDD"), "2024-02-03");
        assert_eq!(date("2024-02-03 junk", "YYYY-MM-DD"), "2024-02-03");
        assert_eq!(date("2024", "YYYY-MM-DD"), "2024-01-01");
        assert_eq!(date("12345-01-01", "YYYY-MM-DD"), "+12345-01-01");
        assert_eq!(date("2024T02", "YYYY\"T\"MM"), "2024-02-01");
        assert_eq!(date("2024-02-30", "YYYY-MM-DD"), "22008");
        assert_eq!(date("2024-2-3", "YYYYMMDD"), "22008");
        assert_eq!(date("2024-xx-03", "YYYY-MM-DD"), "22007");
        assert_eq!(date("Foo 3 2024", "Mon DD YYYY"), "22007");
        assert_eq!(date("2024", "YYYYMMDD"), "2024-01-01");
        assert_eq!(date("2024-0", "YYYY-MM"), "2024-01-01");
        assert_eq!(date("2024-02-00", "YYYY-MM-DD"), "2024-02-01");
        assert_eq!(date("2024-13", "YYYY-MM"), "22008");
        assert_eq!(date("202", "YYYYMM"), "22007");
        assert_eq!(date("2024-02-03", "YYYY-MM-DD IW"), "0A000");
        assert_eq!(date("99999999999999999999", "YYYY"), "22008");
        assert_eq!(date("2147483647", "YYYY"), "22008");
        assert_eq!(date("", ""), "0000-01-01");
        assert_eq!(date("2,024", "Y,YYY"), "2024-01-01");
        assert_eq!(date("-0005-01-01", "YYYY-MM-DD"), "-0004-01-01");
        assert_eq!(date("0000 BC", "YYYY BC"), "0000-01-01");
        assert_eq!(date("0005 BC", "YYYY BC"), "-0004-01-01");
        assert_eq!(date("24-02-03", "Y-MM-DD"), "2024-02-03");
        assert_eq!(date("999-02-03", "YY-MM-DD"), "1999-02-03");
        assert_eq!(date("2024 / 02 / 03", "YYYY/MM/DD"), "2024-02-03");
        assert_eq!(date("034", "DDD"), "22007");
        assert_eq!(date("2024-02-03", "YYYY-MM-DD SSSS"), "0A000");
    }

    fn timestamp(input: &str, template: &str) -> String {
        match to_timestamp(input, template) {
            Ok(Value::TimestampTz(us)) => {
                chrono::DateTime::from_timestamp_micros(us).map_or("?".into(), |t| t.naive_utc().to_string())
            }
            Ok(other) => format!("{other:?}"),
            Err(e) => e.state.code().to_string(),
        }
    }

    #[test]
    fn times_read_as_postgresql_reads_them() {
        let t = "2024-02-03 12:00";
        assert_eq!(timestamp(&format!("{t} -00:30"), "YYYY-MM-DD HH24:MI TZH:TZM"), "2024-02-03 12:30:00");
        assert_eq!(timestamp(&format!("{t} +05:30"), "YYYY-MM-DD HH24:MI TZH:TZM"), "2024-02-03 06:30:00");
        assert_eq!(timestamp(&format!("{t} AM"), "YYYY-MM-DD HH24:MI AM"), "2024-02-03 00:00:00");
        assert_eq!(timestamp(&format!("{t} +0530"), "YYYY-MM-DD HH24:MI TZHTZM"), "2024-02-03 06:30:00");
        assert_eq!(timestamp("2024-02-03 13:00 PM", "YYYY-MM-DD HH24:MI PM"), "22007");
        assert_eq!(timestamp("2024-02-03 00:00:00.1234", "YYYY-MM-DD HH24:MI:SS.MS"), "22008");
        assert_eq!(timestamp("2024-02-03 00:00:00.5", "YYYY-MM-DD HH24:MI:SS.MS"), "2024-02-03 00:00:00.500");
        assert_eq!(timestamp("100000 -2147483647", "YYYY TZH"), "22009");
        assert_eq!(timestamp("2024 16", "YYYY TZH"), "22009");
        assert_eq!(timestamp("200000000 12", "YYYY HH24"), "22008");
    }
}
