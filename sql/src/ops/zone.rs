//! Time zones: `ts AT TIME ZONE zone`, `timezone(zone, ts)`, and zone
//! names in timestamptz input (`'2026-01-01 12:00 Europe/Paris'`), as
//! PostgreSQL 15 reads them.
//!
//! Besides the session's own zone ([`session`]), these name one:
//!
//! ```text
//!   timestamptz AT TIME ZONE z -> timestamp    the wall-clock time in z
//!   timestamp   AT TIME ZONE z -> timestamptz  that wall-clock time in z
//!   SELECT timestamptz '2026-01-01 12:00+00' AT TIME ZONE 'Asia/Tokyo'
//!     -> 2026-01-01 21:00:00
//! ```
//!
//! A zone is written as PostgreSQL accepts it, tried in its order:
//! - an abbreviation of its default set (`PST`, `CET`, `JST`: a fixed
//!   offset, so `CET` in July is +01, not summer time);
//! - an IANA name, in any case (`America/New_York`, `utc`), with its
//!   rules (chrono-tz's copy of the IANA database);
//! - a POSIX offset, optionally after a name (`+05`, `UTC+5`, `-03:30`):
//!   POSIX counts hours **west** of Greenwich, so `'+05'` is UTC-5;
//! - or an interval (`INTERVAL '+05:30'`: east, ISO's sign), which must
//!   have no months or days.
//!
//! A wall-clock time that a zone's clocks skip (spring forward) is read
//! with the offset before the jump; one they pass twice (fall back), with
//! the offset after it: PostgreSQL's rules (its docs, "Handling of
//! Invalid or Ambiguous Timestamps").
//!
//! # Where we differ from PostgreSQL
//!
//! - Only the abbreviations in `ABBREVIATIONS` are known (PostgreSQL's
//!   default set has about 190); others are 22023.
//! - A named zone's rules reach years ±262,143 (chrono's range): beyond,
//!   moving a timestamp through one is 22008, where PostgreSQL goes on to
//!   294276.
//!
//! # Invariants
//!
//! - `infinity` and `-infinity` stay themselves; a finite result beyond
//!   the timestamp range is 22008, never a sentinel.
//! - No input panics: an unknown name is 22023 "time zone ... not
//!   recognized".

use std::cell::Cell;

use chrono::{Offset, TimeZone as _};

use crate::error::Result;
use crate::sql_err;
use crate::types::{Interval, Value};

use super::MICROS_PER_SECOND;

/// A zone a value can be moved into or out of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// A fixed offset, seconds east of UTC.
    Fixed(i64),
    /// An IANA zone, with its history of offsets.
    Named(chrono_tz::Tz),
}

thread_local! {
    /// The zone of the session running on this thread ([`session`]).
    static SESSION: Cell<Zone> = const { Cell::new(Zone::Fixed(0)) };
}

/// The running session's zone (its `TimeZone` setting; UTC until one is
/// set): what a timestamptz's text shows and what one without an offset
/// means, and where casts between timestamptz and the zone-less types
/// and timestamptz's calendar arithmetic take their wall clock.
///
/// It is the thread's, as PostgreSQL keeps it in a process global: a
/// session runs its statements, and encodes their rows, on a thread of
/// its own (a gateway connection's, a shell's), and sets it as each
/// statement starts (`Session`). Any other thread sees UTC.
pub fn session() -> Zone {
    SESSION.with(Cell::get)
}

/// Makes `zone` this thread's session zone ([`session`]).
pub fn set_session(zone: Zone) {
    SESSION.with(|z| z.set(zone));
}

/// Reads a `TimeZone` setting as PostgreSQL's setting takes it, with the
/// text SHOW gives then: a number is hours **east** (`SET TIME ZONE -7`,
/// shown `<-07>+07`), otherwise an IANA name (shown in its own spelling)
/// or a POSIX offset (`'UTC+3'`: hours west). Abbreviations are refused
/// there, as PostgreSQL refuses them.
pub fn parse_setting(spec: &str) -> Option<(Zone, String)> {
    let spec = spec.trim();
    if let Ok(hours) = spec.parse::<f64>() {
        let east = (hours * 3_600.0).round();
        if !east.is_finite() || east.abs() > (POSIX_HOURS_MAX * 3_600) as f64 {
            return None;
        }
        let east = east as i64;
        // POSIX's part is west: its sign the other way (`-00` for none).
        let west = if east == 0 { "-00".to_string() } else { offset_text(-east) };
        return Some((Zone::Fixed(east), format!("<{}>{west}", offset_text(east))));
    }
    if let Some(tz) = named(spec) {
        return Some((Zone::Named(tz), tz.name().to_string()));
    }
    posix_offset(&spec.to_ascii_lowercase()).map(|seconds| (Zone::Fixed(seconds), spec.to_string()))
}

/// PostgreSQL's default abbreviations most often written, each its fixed
/// offset in seconds east (its `Default` set; checked against PostgreSQL
/// 15 in `time_zones.slt`).
const ABBREVIATIONS: &[(&str, i64)] = &[
    ("utc", 0),
    ("gmt", 0),
    ("ut", 0),
    ("z", 0),
    ("zulu", 0),
    ("wet", 0),
    ("bst", 3_600),
    ("cet", 3_600),
    ("cest", 7_200),
    ("eet", 7_200),
    ("eest", 10_800),
    ("ist", 7_200),
    ("msk", 10_800),
    ("hkt", 28_800),
    ("awst", 28_800),
    ("jst", 32_400),
    ("kst", 32_400),
    ("acst", 34_200),
    ("aest", 36_000),
    ("aedt", 39_600),
    ("nzst", 43_200),
    ("nzdt", 46_800),
    ("hst", -36_000),
    ("akst", -32_400),
    ("akdt", -28_800),
    ("pst", -28_800),
    ("pdt", -25_200),
    ("mst", -25_200),
    ("mdt", -21_600),
    ("cst", -21_600),
    ("cdt", -18_000),
    ("est", -18_000),
    ("edt", -14_400),
];

/// The most hours a POSIX offset may name (PostgreSQL's bound).
const POSIX_HOURS_MAX: i64 = 167;

/// Reads a zone written as text (module docs, in PostgreSQL's order).
pub fn parse(spec: &str) -> Result<Zone> {
    let lower = spec.trim().to_ascii_lowercase();
    if let Some((_, seconds)) = ABBREVIATIONS.iter().find(|(name, _)| *name == lower) {
        return Ok(Zone::Fixed(*seconds));
    }
    if let Some(tz) = named(spec.trim()) {
        return Ok(Zone::Named(tz));
    }
    match posix_offset(&lower) {
        Some(seconds) => Ok(Zone::Fixed(seconds)),
        None => sql_err!(InvalidParameterValue, "time zone \"{spec}\" not recognized"),
    }
}

/// An IANA zone by name, in any case.
fn named(name: &str) -> Option<chrono_tz::Tz> {
    if let Ok(tz) = name.parse::<chrono_tz::Tz>() {
        return Some(tz);
    }
    chrono_tz::TZ_VARIANTS.iter().find(|tz| tz.name().eq_ignore_ascii_case(name)).copied()
}

/// `[name][+|-]H[H][:MM[:SS]]`, hours west (POSIX), the name letters or
/// anything in `<...>`: seconds east.
fn posix_offset(spec: &str) -> Option<i64> {
    let name_len = match spec.strip_prefix('<') {
        Some(quoted) => quoted.find('>')? + 2,
        None => spec.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(spec.len()),
    };
    let rest = &spec[name_len..];
    let (west, rest) = match rest.as_bytes().first()? {
        b'+' => (true, &rest[1..]),
        b'-' => (false, &rest[1..]),
        _ => (true, rest),
    };
    let mut parts = rest.split(':');
    let mut field = |max: i64| -> Option<Option<i64>> {
        match parts.next() {
            None => Some(None),
            Some(p) if (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().ok().filter(|v| *v <= max).map(Some)
            }
            Some(_) => None,
        }
    };
    let hours = field(POSIX_HOURS_MAX)??;
    let minutes = field(59)?.unwrap_or(0);
    let seconds = field(59)?.unwrap_or(0);
    if parts.next().is_some() {
        return None;
    }
    let west_seconds = (hours * 60 + minutes) * 60 + seconds;
    Some(if west { -west_seconds } else { west_seconds })
}

/// An interval as a zone: its time, east of UTC.
pub fn of_interval(i: &Interval) -> Result<Zone> {
    if i.months != 0 || i.days != 0 {
        return sql_err!(
            InvalidParameterValue,
            "interval time zone \"{}\" must not include months or days",
            super::interval::to_text(i)
        );
    }
    // Whole seconds, toward zero, as PostgreSQL takes them.
    Ok(Zone::Fixed(i.micros / MICROS_PER_SECOND))
}

impl Zone {
    /// Seconds east of UTC at the instant `utc_us` (`extract(timezone
    /// FROM ...)`).
    pub fn offset_at(self, utc_us: i64) -> Result<i64> {
        match self {
            Zone::Fixed(seconds) => Ok(seconds),
            Zone::Named(tz) => {
                let utc = chrono::DateTime::from_timestamp_micros(utc_us).ok_or_else(out_of_range)?;
                Ok(i64::from(tz.offset_from_utc_datetime(&utc.naive_utc()).fix().local_minus_utc()))
            }
        }
    }

    /// Seconds east of UTC for the wall-clock time `local_us`: before a
    /// skipped time's jump, after a repeated time's (module docs).
    fn offset_for_local(self, local_us: i64) -> Result<i64> {
        let Zone::Named(tz) = self else { return self.offset_at(local_us) };
        let local = chrono::DateTime::from_timestamp_micros(local_us).ok_or_else(out_of_range)?.naive_utc();
        let seconds = |o: chrono_tz::TzOffset| i64::from(o.fix().local_minus_utc());
        // A day from a transition, the offset is the one on that side of
        // it (zones change their offset at most once in a day).
        let day = 86_400 * MICROS_PER_SECOND;
        Ok(match tz.offset_from_local_datetime(&local) {
            chrono::LocalResult::Single(o) => seconds(o),
            chrono::LocalResult::None => self.offset_at(local_us.checked_sub(day).ok_or_else(out_of_range)?)?,
            chrono::LocalResult::Ambiguous(a, b) => {
                let after = self.offset_at(local_us.checked_add(day).ok_or_else(out_of_range)?)?;
                if seconds(a) == after {
                    seconds(a)
                } else {
                    seconds(b)
                }
            }
        })
    }
}

/// The wall-clock time in `zone` at the instant `utc_us` and the zone's
/// offset then (seconds east): a timestamptz as its text shows it.
pub fn local_and_offset(utc_us: i64, zone: Zone) -> Result<(i64, i64)> {
    let offset = zone.offset_at(utc_us)?;
    let local = finite(utc_us.checked_add(offset.checked_mul(MICROS_PER_SECOND).ok_or_else(out_of_range)?))?;
    Ok((local, offset))
}

/// The zone's abbreviation at the instant `utc_us`, as `to_char`'s `TZ`
/// shows it: `EST` or `EDT` for New York; a fixed offset's text (`UTC`
/// for none).
pub fn abbreviation(utc_us: i64, zone: Zone) -> String {
    use chrono_tz::OffsetName;
    match zone {
        Zone::Fixed(0) => "UTC".into(),
        Zone::Fixed(seconds) => offset_text(seconds),
        Zone::Named(tz) => chrono::DateTime::from_timestamp_micros(utc_us)
            .and_then(|t| tz.offset_from_utc_datetime(&t.naive_utc()).abbreviation().map(str::to_string))
            .unwrap_or_else(|| offset_text(zone.offset_at(utc_us).unwrap_or(0))),
    }
}

/// An offset as PostgreSQL prints it after a timestamptz: `+00`,
/// `-05`, `+05:30`, `-00:16:08`.
pub fn offset_text(seconds: i64) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    match (m, sec) {
        (0, 0) => format!("{sign}{h:02}"),
        (_, 0) => format!("{sign}{h:02}:{m:02}"),
        _ => format!("{sign}{h:02}:{m:02}:{sec:02}"),
    }
}

/// The count of `v` (a timestamp, timestamptz or date) as an instant
/// when it stands beside `other`: beside a timestamptz, a timestamp or
/// date is the session zone's wall clock (its midnight), as PostgreSQL
/// casts it; otherwise the count as it is.
pub fn instant_beside(v: &Value, other: &Value) -> Result<i64> {
    let us = v.as_micros().unwrap_or_default();
    match (v, other) {
        (Value::Timestamp(_) | Value::Date(_), Value::TimestampTz(_)) => to_utc(us, session()),
        _ => Ok(us),
    }
}

/// `us` (a timestamptz) moved by `i`'s months and days on the session
/// zone's calendar, then by its time: a day later is the same wall-clock
/// time, 23 or 25 hours on across a change of offset, as in PostgreSQL.
pub fn add_in_session(us: i64, i: &Interval) -> Option<i64> {
    let zone = session();
    let calendar = Interval { micros: 0, ..*i };
    if matches!(zone, Zone::Fixed(_)) || (i.months == 0 && i.days == 0) || us == i64::MIN || us == i64::MAX {
        return super::interval::add_to_timestamp(us, i);
    }
    let local = to_local(us, zone).ok()?;
    let moved = super::interval::add_to_timestamp(local, &calendar)?;
    let instant = to_utc(moved, zone).ok()?;
    super::interval::add_to_timestamp(instant, &Interval { months: 0, days: 0, micros: i.micros })
}

fn out_of_range() -> crate::error::Error {
    crate::error::Error::new(crate::error::SqlState::DatetimeFieldOverflow, "timestamp out of range")
}

fn finite(us: Option<i64>) -> Result<i64> {
    us.filter(|us| *us != i64::MIN && *us != i64::MAX).ok_or_else(out_of_range)
}

/// The wall-clock time in `zone` at the instant `utc_us` (a timestamptz
/// to a timestamp).
pub fn to_local(utc_us: i64, zone: Zone) -> Result<i64> {
    if utc_us == i64::MIN || utc_us == i64::MAX {
        return Ok(utc_us);
    }
    local_and_offset(utc_us, zone).map(|(local, _)| local)
}

/// The instant of the wall-clock time `local_us` in `zone` (a timestamp
/// to a timestamptz).
pub fn to_utc(local_us: i64, zone: Zone) -> Result<i64> {
    if local_us == i64::MIN || local_us == i64::MAX {
        return Ok(local_us);
    }
    let offset = zone.offset_for_local(local_us)?;
    finite(local_us.checked_sub(offset.checked_mul(MICROS_PER_SECOND).ok_or_else(out_of_range)?))
}

/// `timezone(zone, ts)`, what `ts AT TIME ZONE zone` binds to: a
/// timestamptz becomes the wall-clock timestamp in the zone, a timestamp
/// the timestamptz of its wall-clock time there. NULL in, NULL out.
pub fn timezone(zone: &Value, ts: &Value) -> Result<Value> {
    let zone = match zone {
        Value::Null => return Ok(Value::Null),
        Value::Interval(i) => of_interval(i)?,
        Value::Text(s) => parse(s)?,
        other => return sql_err!(InvalidParameterValue, "time zone must be text or an interval, not {other:?}"),
    };
    match ts {
        Value::Null => Ok(Value::Null),
        Value::TimestampTz(us) => Ok(Value::Timestamp(to_local(*us, zone)?)),
        // A date is the timestamptz of its midnight in the session's zone.
        date @ Value::Date(_) => {
            let midnight = to_utc(date.as_micros().unwrap_or_default(), session())?;
            Ok(Value::Timestamp(to_local(midnight, zone)?))
        }
        Value::Timestamp(us) => Ok(Value::TimestampTz(to_utc(*us, zone)?)),
        other => sql_err!(DatatypeMismatch, "AT TIME ZONE takes a timestamp, not {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600;

    /// Goal: each way of writing a zone reads as PostgreSQL reads it.
    /// Method: PostgreSQL 15's answers for the same specs.
    #[test]
    fn zone_specs_read_as_postgresql_reads_them() {
        assert_eq!(parse("+05").unwrap(), Zone::Fixed(-5 * HOUR));
        assert_eq!(parse("UTC+5").unwrap(), Zone::Fixed(-5 * HOUR));
        assert_eq!(parse("GMT-2").unwrap(), Zone::Fixed(2 * HOUR));
        assert_eq!(parse("-03:30").unwrap(), Zone::Fixed(3 * HOUR + 1_800));
        assert_eq!(parse("UTC+05:30:15").unwrap(), Zone::Fixed(-(5 * HOUR + 1_815)));
        assert_eq!(parse("5").unwrap(), Zone::Fixed(-5 * HOUR));
        assert_eq!(parse("pst").unwrap(), Zone::Fixed(-8 * HOUR));
        assert_eq!(parse("CET").unwrap(), Zone::Fixed(HOUR));
        assert_eq!(parse("america/new_york").unwrap(), Zone::Named(chrono_tz::America::New_York));
        assert_eq!(parse("EST5EDT").unwrap(), Zone::Named(chrono_tz::EST5EDT));
        for bad in ["", "ab", "Nowhere/Land", "+", "UTC+", "+05:", "+05:60", "+1000"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.state, crate::error::SqlState::InvalidParameterValue, "{bad:?}");
        }
    }

    /// Goal: skipped and repeated wall-clock times take PostgreSQL's
    /// offsets, and the two directions undo each other elsewhere.
    /// Method: New York's 2026 transitions; a round trip through Tokyo.
    #[test]
    fn transitions_take_postgresql_s_offsets() {
        let ny = Zone::Named(chrono_tz::America::New_York);
        let at = |s: &str| super::super::parse_timestamp(s).unwrap();
        // 02:30 on 8 March does not exist: read as EST (before the jump).
        assert_eq!(to_utc(at("2026-03-08 02:30"), ny).unwrap(), at("2026-03-08 07:30"));
        // 01:30 on 1 November happens twice: EST (after the jump back).
        assert_eq!(to_utc(at("2026-11-01 01:30"), ny).unwrap(), at("2026-11-01 06:30"));
        let tokyo = parse("Asia/Tokyo").unwrap();
        let instant = at("2026-01-01 00:00");
        assert_eq!(to_local(instant, tokyo).unwrap(), at("2026-01-01 09:00"));
        assert_eq!(to_utc(to_local(instant, tokyo).unwrap(), tokyo).unwrap(), instant);
        assert_eq!(to_local(i64::MAX, tokyo).unwrap(), i64::MAX);
        assert!(to_local(i64::MAX - 1, Zone::Fixed(HOUR)).is_err());
        assert!(to_local(i64::MAX - 1, tokyo).is_err());
    }
}
