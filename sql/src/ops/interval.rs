//! `interval`: PostgreSQL's months, days and microseconds, kept apart
//! because they are not fixed multiples of each other on a calendar (a
//! month is 28 to 31 days, a day 23 to 25 hours where clocks change:
//! `ops::zone::add_in_session`).
//!
//! ```text
//!   '1 year 2 mons 3 days 04:05:06.5'  ->  { months: 14, days: 3, micros: 14_706_500_000 }
//!   timestamp + interval: months first (the day clamped to the month's
//!   end: Jan 31 + 1 mon = Feb 28), then days, then microseconds
//!   timestamp - timestamp: microseconds, whole days split out ('28 days')
//! ```
//!
//! Comparison and grouping use one number, PostgreSQL's: a month is 30
//! days and a day 24 hours, so `'1 mon' = '30 days'` and `'1 day' = '24
//! hours'` are true, though each prints as written. Text input is
//! PostgreSQL's own style (`1 day 2 hours`, `-1:30`, `3 weeks ago`,
//! `@ 1 min`); output is IntervalStyle `postgres`, the default.

use std::cmp::Ordering;

use crate::error::Result;
use crate::sql_err;
use crate::types::Interval;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_HOUR: i64 = 60 * MICROS_PER_MINUTE;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
const DAYS_PER_MONTH: i64 = 30;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// The one number intervals compare by (PostgreSQL's
/// `interval_cmp_value`): microseconds, with 30-day months and 24-hour
/// days.
pub fn span(i: &Interval) -> i128 {
    (i128::from(i.months) * i128::from(DAYS_PER_MONTH) + i128::from(i.days)) * i128::from(MICROS_PER_DAY)
        + i128::from(i.micros)
}

pub fn compare(a: &Interval, b: &Interval) -> Ordering {
    span(a).cmp(&span(b))
}

fn out_of_range<T>() -> Result<T> {
    sql_err!(DatetimeFieldOverflow, "interval out of range")
}

/// IntervalStyle `postgres` output: `1 year 2 mons -3 days +04:05:06.5`,
/// `00:00:00` for zero. A field is signed when negative, and `+` when the
/// field before it was negative.
pub fn to_text(i: &Interval) -> String {
    let mut out = String::new();
    let mut before_negative = false;
    let (years, months) = (i.months / 12, i.months % 12);
    for (value, unit) in [(i64::from(years), "year"), (i64::from(months), "mon"), (i64::from(i.days), "day")] {
        if value == 0 {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if before_negative && value > 0 {
            out.push('+');
        }
        out.push_str(&format!("{value} {unit}{}", if value == 1 { "" } else { "s" }));
        before_negative = value < 0;
    }
    if out.is_empty() || i.micros != 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        if i.micros < 0 {
            out.push('-');
        } else if before_negative {
            out.push('+');
        }
        let us = i.micros.unsigned_abs();
        let (hours, rest) = (us / MICROS_PER_HOUR as u64, us % MICROS_PER_HOUR as u64);
        let (minutes, rest) = (rest / MICROS_PER_MINUTE as u64, rest % MICROS_PER_MINUTE as u64);
        let (seconds, fraction) = (rest / MICROS_PER_SECOND as u64, rest % MICROS_PER_SECOND as u64);
        out.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
        if fraction != 0 {
            out.push_str(format!(".{fraction:06}").trim_end_matches('0'));
        }
    }
    out
}

/// PostgreSQL's text input of an interval, in its own style, computed as
/// its `DecodeInterval` does: numbers with units (`1 day`, `2.5 hours`,
/// `-3 mons`, units from microseconds to millennia, singular, plural or
/// abbreviated), a time of day (`[-]HH:MM[:SS[.frac]]`), a bare number
/// (seconds), an `@` before and `ago` after (negating all). A unit given
/// twice (`1 day 2 days`, `5 minutes 01:02:03`) and anything else is
/// 22007.
///
/// A fraction goes down the units as PostgreSQL sends it: a fraction of a
/// year (decade, ...) becomes whole months, rounded; of a month or a
/// week, days and then microseconds; of a day, microseconds.
pub fn parse(s: &str) -> Result<Interval> {
    let bad = || sql_err!(InvalidDatetimeFormat, "invalid input syntax for type interval: \"{s}\"");
    let mut words: Vec<&str> = split_words(s);
    if words.first() == Some(&"@") {
        words.remove(0);
    }
    let ago = words.last().is_some_and(|w| w.eq_ignore_ascii_case("ago"));
    if ago {
        words.pop();
    }
    if words.is_empty() {
        return bad();
    }
    let mut fields = Fields::default();
    let mut seen = 0u32;
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        if word.contains(':') {
            if seen & TIME_MASK != 0 || !fields.time(word) {
                return bad();
            }
            seen |= TIME_MASK;
            i += 1;
            continue;
        }
        let Some((whole, fraction)) = number(word) else { return bad() };
        // A number's unit: the next word, or none (seconds) for the last
        // number of an input without `ago`.
        let (unit, step) = match words.get(i + 1).and_then(|w| unit_of(w)) {
            Some(unit) => (unit, 2),
            None if i + 1 == words.len() && !ago => (Unit::Second, 1),
            None => return bad(),
        };
        let bit = 1 << unit as u32;
        if seen & bit != 0 {
            return bad();
        }
        seen |= bit;
        if fields.add(whole, fraction, unit).is_none() {
            return out_of_range();
        }
        i += step;
    }
    let mut interval = fields.finish().map_or_else(out_of_range, Ok)?;
    if ago {
        interval = negate(&interval)?;
    }
    Ok(interval)
}

/// `[+-]digits[.digits]`: the whole part and the fraction (with the
/// number's sign), as PostgreSQL splits them.
fn number(word: &str) -> Option<(i64, f64)> {
    let (negative, unsigned) = match word.as_bytes().first()? {
        b'-' => (true, &word[1..]),
        b'+' => (false, &word[1..]),
        _ => (false, word),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
        return None;
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: f64 = if fraction.is_empty() { 0.0 } else { format!("0.{fraction}").parse().ok()? };
    Some(if negative { (-whole, -fraction) } else { (whole, fraction) })
}

/// The input's words: numbers and units apart even when glued
/// (`10days`, `1h30m` as `1 h 30 m`), a time of day kept whole.
fn split_words(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for word in s.split(|c: char| c.is_ascii_whitespace() || c == ',') {
        let mut rest = word;
        while !rest.is_empty() {
            let numeric = |c: char| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | ':');
            let first_numeric = rest.starts_with(numeric);
            let end = rest.find(|c: char| numeric(c) != first_numeric).unwrap_or(rest.len());
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Unit {
    Microsecond,
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
    Decade,
    Century,
    Millennium,
}

/// The units a time of day sets (`HH:MM:SS.frac`).
const TIME_MASK: u32 = 1 << Unit::Microsecond as u32
    | 1 << Unit::Millisecond as u32
    | 1 << Unit::Second as u32
    | 1 << Unit::Minute as u32
    | 1 << Unit::Hour as u32;

fn unit_of(word: &str) -> Option<Unit> {
    Some(match word.to_ascii_lowercase().as_str() {
        "microsecond" | "microseconds" | "us" | "usec" | "usecs" | "useconds" => Unit::Microsecond,
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "mseconds" => Unit::Millisecond,
        "second" | "seconds" | "s" | "sec" | "secs" => Unit::Second,
        "minute" | "minutes" | "m" | "min" | "mins" => Unit::Minute,
        "hour" | "hours" | "h" | "hr" | "hrs" => Unit::Hour,
        "day" | "days" | "d" => Unit::Day,
        "week" | "weeks" | "w" => Unit::Week,
        "month" | "months" | "mon" | "mons" => Unit::Month,
        "year" | "years" | "y" | "yr" | "yrs" => Unit::Year,
        "decade" | "decades" | "dec" | "decs" => Unit::Decade,
        "century" | "centuries" | "c" | "cent" => Unit::Century,
        "millennium" | "millennia" | "mil" | "mils" => Unit::Millennium,
        _ => return None,
    })
}

/// The fields as PostgreSQL's `pg_itm_in` holds them while it decodes.
#[derive(Default)]
struct Fields {
    years: i64,
    months: i64,
    days: i64,
    micros: i64,
}

impl Fields {
    /// Adds `whole + fraction` of `unit` (PostgreSQL's `Adjust*`); None
    /// on overflow.
    fn add(&mut self, whole: i64, fraction: f64, unit: Unit) -> Option<()> {
        let micros = |f: &mut Fields, scale: i64| -> Option<()> {
            f.micros = f.micros.checked_add(whole.checked_mul(scale)?)?;
            f.fraction_micros(fraction, scale)
        };
        match unit {
            Unit::Microsecond => micros(self, 1),
            Unit::Millisecond => micros(self, 1_000),
            Unit::Second => micros(self, MICROS_PER_SECOND),
            Unit::Minute => micros(self, MICROS_PER_MINUTE),
            Unit::Hour => micros(self, MICROS_PER_HOUR),
            Unit::Day => {
                self.days = self.days.checked_add(whole)?;
                self.fraction_micros(fraction, MICROS_PER_DAY)
            }
            Unit::Week => {
                self.days = self.days.checked_add(whole.checked_mul(7)?)?;
                self.fraction_days(fraction, 7)
            }
            Unit::Month => {
                self.months = self.months.checked_add(whole)?;
                self.fraction_days(fraction, DAYS_PER_MONTH)
            }
            Unit::Year => self.add_years(whole, fraction, 1),
            Unit::Decade => self.add_years(whole, fraction, 10),
            Unit::Century => self.add_years(whole, fraction, 100),
            Unit::Millennium => self.add_years(whole, fraction, 1_000),
        }
    }

    /// Whole years, and a fraction of them as whole months (rounded).
    fn add_years(&mut self, whole: i64, fraction: f64, scale: i64) -> Option<()> {
        self.years = self.years.checked_add(whole.checked_mul(scale)?)?;
        let months = (fraction * scale as f64 * 12.0).round_ties_even();
        self.months = self.months.checked_add(months as i64)?;
        Some(())
    }

    /// A fraction of `scale` days: whole days, the rest as microseconds.
    fn fraction_days(&mut self, fraction: f64, scale: i64) -> Option<()> {
        if fraction == 0.0 {
            return Some(());
        }
        let days = fraction * scale as f64;
        let whole = days.trunc();
        self.days = self.days.checked_add(whole as i64)?;
        self.fraction_micros(days - whole, MICROS_PER_DAY)
    }

    /// A fraction of `scale` microseconds, rounded to a microsecond
    /// (halves away from zero).
    fn fraction_micros(&mut self, fraction: f64, scale: i64) -> Option<()> {
        if fraction == 0.0 {
            return Some(());
        }
        let scaled = fraction * scale as f64;
        let mut micros = scaled as i64;
        let rest = scaled - micros as f64;
        if rest > 0.5 {
            micros += 1;
        } else if rest < -0.5 {
            micros -= 1;
        }
        self.micros = self.micros.checked_add(micros)?;
        Some(())
    }

    /// `[-]H[H...]:MM[:SS[.frac]]`, hours unbounded; false if malformed.
    fn time(&mut self, word: &str) -> bool {
        let (negative, digits) = match word.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, word.strip_prefix('+').unwrap_or(word)),
        };
        let int = |p: &str| -> Option<i64> {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten()
        };
        let parts: Vec<&str> = digits.split(':').collect();
        let (hours, minutes, seconds, fraction) = match parts.as_slice() {
            [h, m] => (int(h), int(m), Some(0), 0.0),
            [h, m, sec] => {
                let (whole, fraction) = sec.split_once('.').unwrap_or((sec, ""));
                let fraction = match fraction {
                    "" => Some(0.0),
                    f if f.bytes().all(|b| b.is_ascii_digit()) => format!("0.{f}").parse::<f64>().ok(),
                    _ => None,
                };
                match fraction {
                    Some(f) => (int(h), int(m), int(whole), f),
                    None => return false,
                }
            }
            _ => return false,
        };
        let (Some(h), Some(m), Some(sec)) = (hours, minutes, seconds) else { return false };
        if m >= 60 || sec >= 60 {
            return false;
        }
        let micros = h
            .checked_mul(MICROS_PER_HOUR)
            .and_then(|us| us.checked_add(m * MICROS_PER_MINUTE + sec * MICROS_PER_SECOND))
            .and_then(|us| us.checked_add((fraction * 1e6).round_ties_even() as i64));
        let Some(micros) = micros else { return false };
        match self.micros.checked_add(if negative { -micros } else { micros }) {
            Some(total) => {
                self.micros = total;
                true
            }
            None => false,
        }
    }

    fn finish(&self) -> Option<Interval> {
        let months = i32::try_from(self.years.checked_mul(12)?.checked_add(self.months)?).ok()?;
        let days = i32::try_from(self.days).ok()?;
        Some(Interval { months, days, micros: self.micros })
    }
}

pub fn negate(i: &Interval) -> Result<Interval> {
    match (i.months.checked_neg(), i.days.checked_neg(), i.micros.checked_neg()) {
        (Some(months), Some(days), Some(micros)) => Ok(Interval { months, days, micros }),
        _ => out_of_range(),
    }
}

/// `a + b` (or `a - b` when `subtract`), field by field.
pub fn add(a: &Interval, b: &Interval, subtract: bool) -> Result<Interval> {
    let b = if subtract { negate(b)? } else { *b };
    match (a.months.checked_add(b.months), a.days.checked_add(b.days), a.micros.checked_add(b.micros)) {
        (Some(months), Some(days), Some(micros)) => Ok(Interval { months, days, micros }),
        _ => out_of_range(),
    }
}

/// `i * factor` as PostgreSQL computes it (`interval_mul`): whole months
/// and days stay, their fractions cascade to days and microseconds.
pub fn multiply(i: &Interval, factor: f64) -> Result<Interval> {
    scale(i, |x| x * factor)
}

/// `i / divisor` (`interval_div`); 22012 for zero.
pub fn divide(i: &Interval, divisor: f64) -> Result<Interval> {
    if divisor == 0.0 {
        return sql_err!(DivisionByZero, "division by zero");
    }
    scale(i, |x| x / divisor)
}

fn scale(i: &Interval, f: impl Fn(f64) -> f64) -> Result<Interval> {
    let months = f(f64::from(i.months));
    let days = f(f64::from(i.days));
    if !months.is_finite()
        || !days.is_finite()
        || months.abs() > f64::from(i32::MAX)
        || days.abs() > f64::from(i32::MAX)
    {
        return out_of_range();
    }
    // Rounded to six decimals, as PostgreSQL's TSROUND does, so whole
    // numbers come out whole.
    let six_places = |x: f64| (x * 1e6).round_ties_even() / 1e6;
    let whole_months = months.trunc();
    let month_remainder_days = six_places((months - whole_months) * DAYS_PER_MONTH as f64);
    let whole_days = days.trunc();
    let mut seconds =
        six_places((days - whole_days + month_remainder_days - month_remainder_days.trunc()) * SECONDS_PER_DAY);
    let mut extra_days = 0.0;
    if seconds.abs() >= SECONDS_PER_DAY {
        extra_days = (seconds / SECONDS_PER_DAY).trunc();
        seconds -= extra_days * SECONDS_PER_DAY;
    }
    let days = whole_days + extra_days + month_remainder_days.trunc();
    let micros = (f(i.micros as f64) + seconds * 1e6).round_ties_even();
    if !micros.is_finite() || micros.abs() >= 9.2e18 || days.abs() > f64::from(i32::MAX) {
        return out_of_range();
    }
    Ok(Interval { months: whole_months as i32, days: days as i32, micros: micros as i64 })
}

/// `timestamp + interval` (microseconds since 1970, UTC): months first,
/// the day of month clamped to the new month's length, then days, then
/// microseconds. `None`: out of range.
pub fn add_to_timestamp(us: i64, i: &Interval) -> Option<i64> {
    use super::{civil_from_days, days_from_civil, days_in_month};
    if us == i64::MAX || us == i64::MIN {
        return Some(us);
    }
    let mut us = i128::from(us);
    if i.months != 0 {
        let day_number = us.div_euclid(i128::from(MICROS_PER_DAY));
        let of_day = us.rem_euclid(i128::from(MICROS_PER_DAY));
        let (year, month, day) = civil_from_days(i64::try_from(day_number).ok()?);
        let total = year.checked_mul(12)?.checked_add(month - 1)?.checked_add(i64::from(i.months))?;
        let (year, month) = (total.div_euclid(12), total.rem_euclid(12) + 1);
        let day = day.min(days_in_month(year, month));
        us = i128::from(days_from_civil(year, month, day)) * i128::from(MICROS_PER_DAY) + of_day;
    }
    us += i128::from(i.days) * i128::from(MICROS_PER_DAY) + i128::from(i.micros);
    i64::try_from(us).ok().filter(|us| *us != i64::MIN && *us != i64::MAX)
}

/// `timestamp - timestamp`: the difference in microseconds, whole days
/// split out with the same sign (PostgreSQL's `justify_hours`).
pub fn between(later: i64, earlier: i64) -> Result<Interval> {
    if [later, earlier].iter().any(|t| *t == i64::MAX || *t == i64::MIN) {
        return sql_err!(DatetimeFieldOverflow, "cannot subtract infinite timestamps");
    }
    let Some(micros) = later.checked_sub(earlier) else { return out_of_range() };
    let days = micros / MICROS_PER_DAY;
    match i32::try_from(days) {
        Ok(days) => Ok(Interval { months: 0, days, micros: micros % MICROS_PER_DAY }),
        Err(_) => out_of_range(),
    }
}

/// `age(a, b)`: the difference as years, months, days and time of day,
/// field by field, each negative field borrowing from the next larger
/// one (a day borrows the length of the earlier timestamp's month), as
/// PostgreSQL's `timestamp_age` does; negative when `a` is before `b`.
pub fn age(a: i64, b: i64) -> Result<Interval> {
    use super::{civil_from_days, days_in_month};
    if [a, b].iter().any(|t| *t == i64::MAX || *t == i64::MIN) {
        return sql_err!(DatetimeFieldOverflow, "cannot subtract infinite timestamps");
    }
    // year, month (1-12), day, hour, minute, second, microsecond
    let fields = |t: i64| {
        let (day_number, of_day) = (t.div_euclid(MICROS_PER_DAY), t.rem_euclid(MICROS_PER_DAY));
        let (y, m, d) = civil_from_days(day_number);
        let secs = of_day / MICROS_PER_SECOND;
        [y, m, d, secs / 3600, secs / 60 % 60, secs % 60, of_day % MICROS_PER_SECOND]
    };
    let (f1, f2) = (fields(a), fields(b));
    let sign = if a < b { -1 } else { 1 };
    let mut f: Vec<i64> = f1.iter().zip(&f2).map(|(x, y)| (x - y) * sign).collect();
    // Borrow into each field from the next larger (index - 1).
    for (i, unit) in [(6, MICROS_PER_SECOND), (5, 60), (4, 60), (3, 24)] {
        while f[i] < 0 {
            f[i] += unit;
            f[i - 1] -= 1;
        }
    }
    let earlier = if a < b { f1 } else { f2 };
    while f[2] < 0 {
        f[2] += days_in_month(earlier[0], earlier[1]);
        f[1] -= 1;
    }
    while f[1] < 0 {
        f[1] += 12;
        f[0] -= 1;
    }
    let months = (f[0] * 12 + f[1]) * sign;
    let micros = (((f[3] * 60 + f[4]) * 60 + f[5]) * MICROS_PER_SECOND + f[6]) * sign;
    match (i32::try_from(months), i32::try_from(f[2] * sign)) {
        (Ok(months), Ok(days)) => Ok(Interval { months, days, micros }),
        _ => out_of_range(),
    }
}

/// `justify_hours`: whole 24-hour days of the time move to the days, the
/// rest keeping the days' sign.
pub fn justify_hours(i: &Interval) -> Result<Interval> {
    let (days, micros) = days_of_time(i)?;
    let (days, micros) = time_signed_as_days(days, micros);
    Ok(Interval { months: i.months, days, micros })
}

/// `justify_days`: whole 30-day months of the days move to the months,
/// the rest keeping the months' sign.
pub fn justify_days(i: &Interval) -> Result<Interval> {
    let (months, days) = months_of_days(i.months, i.days)?;
    let (months, days) = match (months, days) {
        (m, d) if m > 0 && d < 0 => (m - 1, d + DAYS_PER_MONTH as i32),
        (m, d) if m < 0 && d > 0 => (m + 1, d - DAYS_PER_MONTH as i32),
        other => other,
    };
    Ok(Interval { months, days, micros: i.micros })
}

/// `justify_interval`: both, with one sign for all the fields.
pub fn justify_interval(i: &Interval) -> Result<Interval> {
    let (days, micros) = days_of_time(i)?;
    let (months, days) = months_of_days(i.months, days)?;
    let (months, days) = match (months, days) {
        (m, d) if m > 0 && (d < 0 || (d == 0 && micros < 0)) => (m - 1, d + DAYS_PER_MONTH as i32),
        (m, d) if m < 0 && (d > 0 || (d == 0 && micros > 0)) => (m + 1, d - DAYS_PER_MONTH as i32),
        other => other,
    };
    let (days, micros) = time_signed_as_days(days, micros);
    Ok(Interval { months, days, micros })
}

/// The interval's days with the whole 24-hour days of its time added,
/// and what is left of the time (its sign kept).
fn days_of_time(i: &Interval) -> Result<(i32, i64)> {
    let whole_days = i.micros / MICROS_PER_DAY;
    match i32::try_from(whole_days).ok().and_then(|d| i.days.checked_add(d)) {
        Some(days) => Ok((days, i.micros - whole_days * MICROS_PER_DAY)),
        None => out_of_range(),
    }
}

/// `months` with the whole 30-day months of `days` added, and the days
/// left (their sign kept).
fn months_of_days(months: i32, days: i32) -> Result<(i32, i32)> {
    let whole_months = days / DAYS_PER_MONTH as i32;
    match months.checked_add(whole_months) {
        Some(months) => Ok((months, days - whole_months * DAYS_PER_MONTH as i32)),
        None => out_of_range(),
    }
}

/// A time of the other sign than the days borrows a day from them.
fn time_signed_as_days(days: i32, micros: i64) -> (i32, i64) {
    match (days, micros) {
        (d, t) if d > 0 && t < 0 => (d - 1, t + MICROS_PER_DAY),
        (d, t) if d < 0 && t > 0 => (d + 1, t - MICROS_PER_DAY),
        other => other,
    }
}

/// `extract(epoch FROM interval)` exactly, in microseconds: 365.25-day
/// years and 30-day months, as [`part`] counts them.
pub fn epoch_micros(i: &Interval) -> i128 {
    const MICROS_PER_DAY: i128 = 86_400 * MICROS_PER_SECOND as i128;
    let (years, months) = (i128::from(i.months / 12), i128::from(i.months % 12));
    i128::from(i.micros)
        + years * (MICROS_PER_DAY * 1461 / 4)
        + months * DAYS_PER_MONTH as i128 * MICROS_PER_DAY
        + i128::from(i.days) * MICROS_PER_DAY
}

/// `date_part(field, interval)`: PostgreSQL's fields of an interval
/// (`epoch` counts 365.25-day years and 30-day months).
pub fn part(field: &str, i: &Interval) -> Result<f64> {
    let micros = i.micros as f64;
    Ok(match field {
        "epoch" => {
            micros / 1e6
                + 365.25 * SECONDS_PER_DAY * f64::from(i.months / 12)
                + DAYS_PER_MONTH as f64 * SECONDS_PER_DAY * f64::from(i.months % 12)
                + SECONDS_PER_DAY * f64::from(i.days)
        }
        "millennium" => f64::from(i.months / 12 / 1000),
        "century" => f64::from(i.months / 12 / 100),
        "decade" => f64::from(i.months / 12 / 10),
        "year" | "years" => f64::from(i.months / 12),
        "quarter" => f64::from((i.months % 12) / 3 + 1),
        "month" | "months" | "mon" | "mons" => f64::from(i.months % 12),
        "day" | "days" => f64::from(i.days),
        "hour" | "hours" => (i.micros / MICROS_PER_HOUR) as f64,
        "minute" | "minutes" => (i.micros % MICROS_PER_HOUR / MICROS_PER_MINUTE) as f64,
        "second" | "seconds" => (i.micros % MICROS_PER_MINUTE) as f64 / 1e6,
        "millisecond" | "milliseconds" => (i.micros % MICROS_PER_MINUTE) as f64 / 1e3,
        "microsecond" | "microseconds" => (i.micros % MICROS_PER_MINUTE) as f64,
        other => return sql_err!(InvalidParameterValue, "unit \"{other}\" not supported for type interval"),
    })
}
