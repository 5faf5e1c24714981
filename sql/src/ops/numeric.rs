//! `numeric`: exact decimal numbers, as PostgreSQL's.
//!
//! Money and quantities are declared `NUMERIC(12,2)` in every ORM's
//! schema, and `0.1 + 0.2` must be `0.3`, not a float's
//! `0.30000000000000004`. A [`Decimal`] (the `rust_decimal` crate) is a
//! 96-bit integer and a scale of 0 to 28: the number of digits after the
//! point, which `numeric` keeps and prints (`1.50` stays `1.50`).
//!
//! # The model: PostgreSQL's scales
//!
//! A result's scale is PostgreSQL's: `a + b` and `a - b` take the larger
//! scale, `a * b` the sum of the scales, and `a / b` the scale
//! [`division_scale`] picks (at least 16 significant digits, and at least
//! either operand's scale). Rounding is half away from zero, as
//! PostgreSQL's `numeric` rounds (not a float's half to even). A
//! `NUMERIC(p, s)` column rounds what it stores to `s` digits after the
//! point and refuses (22003, "numeric field overflow") a value with
//! `p - s` digits or more before it.
//!
//! ```text
//!   1.50 + 1        = 2.50          2.5 * 1.25 = 3.125
//!   1 / 3::numeric  = 0.33333333333333333333
//!   avg(1, 2)       = 1.5000000000000000
//!   2.5::numeric(2,0) = 3          -2.5::int4 = -3
//!   1000::numeric(5,2) -> 22003 numeric field overflow
//! ```
//!
//! # Where SpanDB differs from PostgreSQL
//!
//! - A value holds at most 28 significant digits ([`DIGITS_MAX`]) and
//!   at most 28 after the point; PostgreSQL's `numeric` holds 131,072
//!   before the point. Input or results beyond that are 22003 ("value
//!   overflows numeric format"), and results with more digits than fit
//!   are rounded to what fits (`1 / 3` has 20 digits, as in PostgreSQL;
//!   `1e-20 / 3` has 28 after the point where PostgreSQL shows 36).
//! - No `NaN` or `Infinity` (PostgreSQL 14 added them): their input is
//!   22P02, and a float NaN or infinity cast to numeric is 22003.
//! - A scale above 28 or below 0 in `NUMERIC(p, s)` is refused (0A000).
//!
//! # Invariants
//!
//! - Nothing here panics on any input: every operation is checked.
//! - [`encode_key`] orders as the numbers do, equal numbers of different
//!   scales (`1.0`, `1.00`) share one key (a unique index sees them as one,
//!   as PostgreSQL's does), and [`decode_key`] reads back the value
//!   (scale aside).
//! - A zero is never negative (`-0.0` prints as `0.0`).

use std::cmp::Ordering;

pub use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;

use crate::error::{Error, Result, SqlState};
use crate::sql_err;
use crate::types::NumericTypmod;

/// The most significant digits a value holds (what 96 bits always hold).
pub const DIGITS_MAX: u32 = 28;

/// The largest scale (digits after the point) a value or a column has.
pub const SCALE_MAX: u32 = Decimal::MAX_SCALE;

/// The largest precision `NUMERIC(p, s)` accepts (PostgreSQL's); values
/// stay within [`DIGITS_MAX`] whatever it says.
pub const PRECISION_MAX: u32 = 1000;

/// PostgreSQL's minimum significant digits of a division's result
/// (`NUMERIC_MIN_SIG_DIGITS`).
const DIVISION_DIGITS_MIN: i64 = 16;

fn overflow() -> Error {
    Error::new(SqlState::NumericValueOutOfRange, "value overflows numeric format")
}

fn division_by_zero() -> Error {
    Error::new(SqlState::DivisionByZero, "division by zero")
}

/// `d` with a negative zero made positive.
fn canonical(mut d: Decimal) -> Decimal {
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d
}

/// The typmod of `NUMERIC(precision[, scale])`, checked as PostgreSQL
/// checks it (22023), within what SpanDB holds (0A000).
pub fn typmod(precision: u64, scale: i64) -> Result<NumericTypmod> {
    if !(1..=u64::from(PRECISION_MAX)).contains(&precision) {
        return sql_err!(InvalidParameterValue, "NUMERIC precision {precision} must be between 1 and {PRECISION_MAX}");
    }
    if !(0..=i64::from(SCALE_MAX)).contains(&scale) {
        return sql_err!(FeatureNotSupported, "NUMERIC scale {scale} is not supported (SpanDB's is 0 to {SCALE_MAX})");
    }
    Ok(NumericTypmod { precision: precision as u16, scale: scale as u16 })
}

/// `d` stored in a `NUMERIC(p, s)`: rounded to `s` digits after the point
/// (and padded to them), fewer than `p - s` before it.
pub fn apply_typmod(d: Decimal, typmod: NumericTypmod) -> Result<Decimal> {
    let NumericTypmod { precision, scale } = typmod;
    let mut rounded = d;
    rounded.rescale(u32::from(scale));
    let integer_digits = i64::from(precision) - i64::from(scale);
    let limit_exceeded = match u32::try_from(integer_digits) {
        Ok(digits) if digits > DIGITS_MAX => false,
        Ok(digits) => rounded.abs().trunc() >= pow10(digits).unwrap_or(Decimal::MAX),
        // Fewer than no digits before the point: under 10^(p - s).
        Err(_) => {
            !rounded.is_zero() && rounded.abs() >= Decimal::new(1, (-integer_digits).min(i64::from(SCALE_MAX)) as u32)
        }
    };
    if !limit_exceeded && rounded.scale() != u32::from(scale) {
        // The digits NUMERIC(p, s) allows, but more than a value holds.
        return Err(overflow().with_detail(format!(
            "NUMERIC({precision},{scale}) holds this value with more than the {DIGITS_MAX} digits SpanDB's numeric has."
        )));
    }
    if limit_exceeded {
        let detail = if integer_digits > 0 {
            format!(
                "A field with precision {precision}, scale {scale} must round to an absolute value less than 10^{integer_digits}."
            )
        } else {
            format!("A field with precision {precision}, scale {scale} cannot hold an integer part.")
        };
        return Err(Error::new(SqlState::NumericValueOutOfRange, "numeric field overflow").with_detail(detail));
    }
    Ok(canonical(rounded))
}

/// 10^n, if it fits.
fn pow10(n: u32) -> Option<Decimal> {
    let m = 10i128.checked_pow(n)?;
    Decimal::try_from_i128_with_scale(m, 0).ok()
}

/// PostgreSQL's numeric input: `[+-]digits[.digits][e[+-]digits]`, or
/// `.digits`, spaces around; its scale is the digits after the point less
/// the exponent (`1.50` has 2, `1.5e1` 0, `15e-1` 1).
pub fn parse(s: &str) -> Result<Decimal> {
    let invalid =
        || Error::new(SqlState::InvalidTextRepresentation, format!("invalid input syntax for type numeric: \"{s}\""));
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa_text, exponent) = match t.find(['e', 'E']) {
        Some(at) => {
            let e = &t[at + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            // Beyond any value's reach: overflow, not a parse error.
            let exponent = e.parse::<i64>().map_err(|_| overflow())?;
            (&t[..at], exponent)
        }
        None => (t, 0),
    };
    let (whole, fraction) = mantissa_text.split_once('.').unwrap_or((mantissa_text, ""));
    if (whole.is_empty() && fraction.is_empty()) || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let digits = whole.trim_start_matches('0').to_string() + fraction;
    let digits = digits.trim_start_matches('0');
    let mut scale = (fraction.len() as i64).checked_sub(exponent).ok_or_else(overflow)?;
    let mut mantissa: i128 = 0;
    if !digits.is_empty() {
        if digits.len() > 38 {
            return Err(overflow());
        }
        mantissa = digits.parse::<i128>().map_err(|_| overflow())?;
    }
    if scale < 0 {
        let shift = scale.checked_neg().and_then(|s| u32::try_from(s).ok()).ok_or_else(overflow)?;
        mantissa = 10i128.checked_pow(shift).and_then(|p| mantissa.checked_mul(p)).ok_or_else(overflow)?;
        scale = 0;
    }
    if scale > i64::from(SCALE_MAX) {
        // Digits past what a value holds: zeros may go, others may not.
        let excess = u32::try_from(scale - i64::from(SCALE_MAX)).map_err(|_| overflow())?;
        match 10i128.checked_pow(excess) {
            Some(p) if mantissa % p == 0 => mantissa /= p,
            None if mantissa == 0 => {}
            _ => return Err(overflow()),
        }
        scale = i64::from(SCALE_MAX);
    }
    if negative {
        mantissa = -mantissa;
    }
    let d = Decimal::try_from_i128_with_scale(mantissa, scale as u32).map_err(|_| overflow())?;
    Ok(canonical(d))
}

/// PostgreSQL's output: every digit of the scale, no exponent.
pub fn to_text(d: Decimal) -> String {
    canonical(d).to_string()
}

/// A float as a numeric, as PostgreSQL converts one: its 15 (a `real`'s
/// 6) significant digits.
pub fn from_f64(f: f64, significant_digits: usize) -> Result<Decimal> {
    if f.is_nan() || f.is_infinite() {
        let what = if f.is_nan() { "NaN" } else { "infinity" };
        return sql_err!(NumericValueOutOfRange, "cannot convert {what} to numeric");
    }
    let text = format!("{f:.*e}", significant_digits.saturating_sub(1));
    let d = parse(&text)?;
    // `1e+20`'s digits are all significant; drop the zeros the exponent form added.
    Ok(canonical(d.normalize()))
}

/// An integer as a numeric (scale 0).
pub fn from_i128(i: i128) -> Result<Decimal> {
    Decimal::try_from_i128_with_scale(i, 0).map_err(|_| overflow())
}

/// `d` as an i64 if it is a whole number that fits one.
pub fn whole_i64(d: Decimal) -> Option<i64> {
    if d.fract().is_zero() {
        to_i64(d)
    } else {
        None
    }
}

/// `d` rounded (half away from zero) to an integer, if it fits an i64.
pub fn to_i64(d: Decimal) -> Option<i64> {
    let rounded = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i64::try_from(rounded.mantissa() / 10i128.pow(rounded.scale())).ok()
}

/// The arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// `a op b` with PostgreSQL's result scale.
pub fn arithmetic(op: Arithmetic, a: Decimal, b: Decimal) -> Result<Decimal> {
    let (r, scale) = match op {
        Arithmetic::Add => (a.checked_add(b), a.scale().max(b.scale())),
        Arithmetic::Sub => (a.checked_sub(b), a.scale().max(b.scale())),
        Arithmetic::Mul => (a.checked_mul(b), a.scale() + b.scale()),
        Arithmetic::Div => return divide(a, b, division_scale(a, b)),
        Arithmetic::Mod => {
            if b.is_zero() {
                return Err(division_by_zero());
            }
            (a.checked_rem(b), a.scale().max(b.scale()))
        }
    };
    let mut r = r.ok_or_else(overflow)?;
    // rust_decimal answers some cases early without their scale (`x + 0`,
    // `x * 0`, `1 % 2.00`): pad to PostgreSQL's (as far as it fits).
    if r.scale() < scale {
        r.rescale(scale.min(SCALE_MAX));
    }
    Ok(canonical(r))
}

/// `a / b` rounded to `scale` digits after the point (or as many as fit).
pub fn divide(a: Decimal, b: Decimal, scale: u32) -> Result<Decimal> {
    if b.is_zero() {
        return Err(division_by_zero());
    }
    let q = a.checked_div(b).ok_or_else(overflow)?;
    let mut r = q.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    r.rescale(scale);
    Ok(canonical(r))
}

/// The weight of `d`'s first base-10000 digit (the power of 10000 it
/// stands for) and that digit, as PostgreSQL's `numeric` stores it;
/// `None` for zero.
fn first_base_10000_digit(d: Decimal) -> Option<(i64, i128)> {
    if d.is_zero() {
        return None;
    }
    let m = d.mantissa().unsigned_abs();
    // The first digit's decimal exponent: 10^e <= |d| < 10^(e+1).
    let e = i64::from(m.ilog10()) - i64::from(d.scale());
    let weight = e.div_euclid(4);
    // floor(|d| / 10000^weight) = floor(m * 10^k), below 10000.
    let k = -i64::from(d.scale()) - 4 * weight;
    let group = if k >= 0 { m * 10u128.pow(k as u32) } else { m / 10u128.pow((-k) as u32) };
    Some((weight, group as i128))
}

/// PostgreSQL's `select_div_scale`: enough digits after the point for 16
/// significant digits of the quotient, and no fewer than either
/// operand's scale (at most [`SCALE_MAX`]).
pub fn division_scale(a: Decimal, b: Decimal) -> u32 {
    let (w1, f1) = first_base_10000_digit(a).unwrap_or((0, 0));
    let (w2, f2) = first_base_10000_digit(b).unwrap_or((0, 0));
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let scale = (DIVISION_DIGITS_MIN - qweight * 4).max(i64::from(a.scale())).max(i64::from(b.scale())).max(0);
    scale.min(i64::from(SCALE_MAX)) as u32
}

/// `round(d, places)`: half away from zero; negative places round left
/// of the point (`round(1234, -2)` = 1200).
pub fn round(d: Decimal, places: i64, truncate: bool) -> Result<Decimal> {
    let strategy = if truncate { RoundingStrategy::ToZero } else { RoundingStrategy::MidpointAwayFromZero };
    if places >= 0 {
        let places = places.min(i64::from(SCALE_MAX)) as u32;
        let mut r = d.round_dp_with_strategy(places, strategy);
        r.rescale(places);
        return Ok(canonical(r));
    }
    // Left of the point, in integers (no rounding twice): the whole part
    // n and its remainder below the unit decide; the fraction cannot,
    // since 2 * rem and the unit are both even.)
    let shift = u32::try_from(places.unsigned_abs()).unwrap_or(u32::MAX);
    let Some(unit) = 10i128.checked_pow(shift) else {
        return Ok(Decimal::ZERO);
    };
    let n = d.trunc().mantissa() / 10i128.pow(d.trunc().scale());
    let (q, rem) = (n / unit, n % unit);
    let away = !truncate && rem.unsigned_abs() * 2 >= unit.unsigned_abs();
    let q = if away { q + n.signum() } else { q };
    q.checked_mul(unit).and_then(|r| Decimal::try_from_i128_with_scale(r, 0).ok()).map(canonical).ok_or_else(overflow)
}

/// `ceil`, `floor` (scale 0).
pub fn ceil(d: Decimal) -> Decimal {
    canonical(d.ceil())
}

pub fn floor(d: Decimal) -> Decimal {
    canonical(d.floor())
}

/// `sign(d)`: -1, 0 or 1 (scale 0).
pub fn sign(d: Decimal) -> Decimal {
    match d.cmp(&Decimal::ZERO) {
        Ordering::Less => Decimal::NEGATIVE_ONE,
        Ordering::Equal => Decimal::ZERO,
        Ordering::Greater => Decimal::ONE,
    }
}

/// `d` as the nearest f64 (its decimal text reads back correctly rounded).
pub fn to_f64(d: Decimal) -> f64 {
    d.to_string().parse().unwrap_or(0.0)
}

/// `d` against the float `f` as PostgreSQL compares them: `d` cast to
/// float8 (so the numeric `0.1` equals the float `0.1`), NaN above every
/// number.
pub fn cmp_float(d: Decimal, f: f64) -> Ordering {
    let x = to_f64(d);
    if f.is_nan() {
        return Ordering::Less;
    }
    x.partial_cmp(&f).unwrap_or(Ordering::Equal)
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// Key bytes after the numeric marker: a sign class, then for a non-zero
/// value its decimal exponent and its significant digits (each digit + 1,
/// then a 0 terminator), all inverted for a negative value, so that a
/// larger magnitude sorts lower among negatives.
const CLASS_NEGATIVE: u8 = 0x01;
const CLASS_ZERO: u8 = 0x02;
const CLASS_POSITIVE: u8 = 0x03;

/// Appends `d`'s order-preserving key bytes (ascending). `1.0` and `1.00`
/// encode alike.
pub fn encode_key(out: &mut Vec<u8>, d: Decimal) {
    if d.is_zero() {
        out.push(CLASS_ZERO);
        return;
    }
    let negative = d.is_sign_negative();
    let digits = d.mantissa().unsigned_abs().to_string();
    let significant = digits.trim_end_matches('0');
    // |d| = 0.<significant> * 10^exponent.
    let exponent = digits.len() as i64 - i64::from(d.scale());
    let flip = if negative { 0xFF } else { 0x00 };
    out.push(if negative { CLASS_NEGATIVE } else { CLASS_POSITIVE });
    // |exponent| <= 29: one byte, its sign bit flipped.
    out.push(((exponent as i8 as u8) ^ 0x80) ^ flip);
    out.extend(significant.bytes().map(|b| (b - b'0' + 1) ^ flip));
    out.push(flip);
}

/// Reads what [`encode_key`] wrote (un-inverted by the caller's `flip`
/// for a descending column), advancing `input`.
pub fn decode_key(input: &mut &[u8], flip: u8) -> Result<Decimal> {
    let corrupt = |what: &str| Error::new(SqlState::InternalError, format!("corrupt key: a numeric's {what}"));
    let start = *input;
    let (&class, rest) = input.split_first().ok_or_else(|| corrupt("sign is missing"))?;
    *input = rest;
    let class = class ^ flip;
    if class == CLASS_ZERO {
        return Ok(Decimal::ZERO);
    }
    let negative = match class {
        CLASS_NEGATIVE => true,
        CLASS_POSITIVE => false,
        _ => return Err(corrupt("sign is not one")),
    };
    let inner = if negative { 0xFF } else { 0x00 };
    let (&exponent, rest) = input.split_first().ok_or_else(|| corrupt("exponent is missing"))?;
    let exponent = i64::from(((exponent ^ flip ^ inner) ^ 0x80) as i8);
    let end = rest.iter().position(|&b| b ^ flip ^ inner == 0).ok_or_else(|| corrupt("digits have no end"))?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > DIGITS_MAX as usize + 1 {
        return Err(corrupt("digits are too many or none"));
    }
    let mut mantissa: i128 = 0;
    for &b in digits {
        let digit = (b ^ flip ^ inner).wrapping_sub(1);
        if digit > 9 {
            return Err(corrupt("digit is not one"));
        }
        mantissa = mantissa * 10 + i128::from(digit);
    }
    if mantissa % 10 == 0 {
        return Err(corrupt("digits end in a zero"));
    }
    *input = &rest[end + 1..];
    let scale = digits.len() as i64 - exponent;
    let (mantissa, scale) = if scale < 0 {
        let shift = 10i128.checked_pow((-scale) as u32).ok_or_else(|| corrupt("exponent is out of range"))?;
        (mantissa.checked_mul(shift).ok_or_else(|| corrupt("exponent is out of range"))?, 0)
    } else {
        (mantissa, scale)
    };
    let mantissa = if negative { -mantissa } else { mantissa };
    let d = u32::try_from(scale)
        .ok()
        .and_then(|scale| Decimal::try_from_i128_with_scale(mantissa, scale).ok())
        .ok_or_else(|| corrupt("value is out of range"))?;
    // One encoding per value: a leading zero digit or a stray exponent
    // would decode, and must not.
    let mut canonical = Vec::new();
    encode_key(&mut canonical, d);
    let consumed = &start[..start.len() - input.len()];
    if canonical.len() != consumed.len() || canonical.iter().zip(consumed).any(|(c, b)| *c != b ^ flip) {
        *input = start;
        return Err(corrupt("bytes are not in canonical form"));
    }
    Ok(d)
}

// ---------------------------------------------------------------------------
// PostgreSQL's binary format
// ---------------------------------------------------------------------------

const BINARY_POSITIVE: u16 = 0x0000;
const BINARY_NEGATIVE: u16 = 0x4000;

/// The base-10000 digits PostgreSQL's binary format can carry in a value
/// SpanDB holds (28 decimal digits and the groups' padding).
const BINARY_DIGITS_MAX: usize = 10;

/// `d` in PostgreSQL's binary format (`numeric_send`): digit count,
/// weight, sign, display scale, then base-10000 digits without leading or
/// trailing zero digits.
pub fn to_binary(d: Decimal) -> Vec<u8> {
    let d = canonical(d);
    let scale = d.scale();
    let mut groups: Vec<i16> = Vec::new();
    let mut weight: i16 = 0;
    if !d.is_zero() {
        let m = d.mantissa().unsigned_abs();
        let unit = 10u128.pow(scale);
        let (mut whole, fraction) = (m / unit, m % unit);
        let mut integer_groups = Vec::new();
        while whole > 0 {
            integer_groups.push((whole % 10_000) as i16);
            whole /= 10_000;
        }
        integer_groups.reverse();
        // The fraction's digits, padded on the right to whole groups.
        let padded = scale.div_ceil(4) * 4;
        let mut fraction = fraction * 10u128.pow(padded - scale);
        let mut fraction_groups = vec![0i16; (padded / 4) as usize];
        for slot in fraction_groups.iter_mut().rev() {
            *slot = (fraction % 10_000) as i16;
            fraction /= 10_000;
        }
        weight = integer_groups.len() as i16 - 1;
        groups = integer_groups;
        groups.extend(fraction_groups);
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= leading as i16;
        while groups.last() == Some(&0) {
            groups.pop();
        }
    }
    let sign = if d.is_sign_negative() { BINARY_NEGATIVE } else { BINARY_POSITIVE };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

/// Reads PostgreSQL's binary format (`numeric_recv`); what SpanDB cannot
/// hold is 22003, what is malformed 22P03.
pub fn from_binary(bytes: &[u8]) -> Result<Decimal> {
    let malformed = |what: &str| Error::new(SqlState::InvalidBinaryRepresentation, format!("invalid numeric {what}"));
    let field = |i: usize| -> Result<u16> {
        bytes.get(2 * i..2 * i + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| malformed("length"))
    };
    let count = field(0)? as i16;
    let weight = i64::from(field(1)? as i16);
    let sign = field(2)?;
    let scale = u32::from(field(3)?);
    if count < 0 || bytes.len() != 8 + 2 * count as usize {
        return Err(malformed("length"));
    }
    let negative = match sign {
        BINARY_POSITIVE => false,
        BINARY_NEGATIVE => true,
        0xC000 | 0xD000 | 0xF000 => return sql_err!(FeatureNotSupported, "numeric NaN and infinity are not supported"),
        _ => return Err(malformed("sign")),
    };
    if count as usize > BINARY_DIGITS_MAX || scale > SCALE_MAX {
        return Err(overflow());
    }
    let mut mantissa: i128 = 0;
    for i in 0..count as usize {
        let g = field(4 + i)?;
        if g >= 10_000 {
            return Err(malformed("digit"));
        }
        mantissa = mantissa.checked_mul(10_000).and_then(|m| m.checked_add(i128::from(g))).ok_or_else(overflow)?;
    }
    // The last group stands for 10000^(weight - count + 1).
    let exponent = 4 * (weight - i64::from(count) + 1);
    let (mantissa, digits_scale) = if exponent >= 0 {
        let shift = 10i128.checked_pow(u32::try_from(exponent).map_err(|_| overflow())?).ok_or_else(overflow)?;
        (mantissa.checked_mul(shift).ok_or_else(overflow)?, 0)
    } else {
        (mantissa, u32::try_from(-exponent).map_err(|_| overflow())?)
    };
    // To the display scale: padding is exact; digits past it must be zeros.
    let mantissa = match digits_scale.cmp(&scale) {
        Ordering::Equal => mantissa,
        Ordering::Less => {
            10i128.checked_pow(scale - digits_scale).and_then(|p| mantissa.checked_mul(p)).ok_or_else(overflow)?
        }
        Ordering::Greater => {
            let p = 10i128.checked_pow(digits_scale - scale).ok_or_else(overflow)?;
            if mantissa % p != 0 {
                return Err(malformed("digits past its scale"));
            }
            mantissa / p
        }
    };
    let mantissa = if negative { -mantissa } else { mantissa };
    Decimal::try_from_i128_with_scale(mantissa, scale).map(canonical).map_err(|_| overflow())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        parse(s).unwrap()
    }

    #[test]
    fn input_and_output() {
        for (input, output) in [
            ("1.50", "1.50"),
            ("  -0.0 ", "0.0"),
            ("+.5", "0.5"),
            ("5.", "5"),
            ("1.5e1", "15"),
            ("15e-1", "1.5"),
            ("1.50e-1", "0.150"),
            ("1e3", "1000"),
            ("000123.4500", "123.4500"),
            ("79228162514264337593543950335", "79228162514264337593543950335"),
        ] {
            assert_eq!(to_text(d(input)), output, "{input}");
        }
        for bad in ["", ".", "e5", "1e", "1.2.3", "abc", "1 2", "--1", "NaN", "Infinity"] {
            assert_eq!(parse(bad).unwrap_err().state, SqlState::InvalidTextRepresentation, "{bad:?}");
        }
        for big in ["79228162514264337593543950336", "1e29", "1e999999999999999999999"] {
            assert_eq!(parse(big).unwrap_err().state, SqlState::NumericValueOutOfRange, "{big}");
        }
    }

    #[test]
    fn scales_follow_postgres() {
        let op = |a: &str, op, b: &str| to_text(arithmetic(op, d(a), d(b)).unwrap());
        assert_eq!(op("1.50", Arithmetic::Add, "1"), "2.50");
        assert_eq!(op("2.5", Arithmetic::Mul, "1.25"), "3.125");
        assert_eq!(op("1", Arithmetic::Div, "3"), "0.33333333333333333333");
        assert_eq!(op("3", Arithmetic::Div, "2"), "1.5000000000000000");
        assert_eq!(op("10", Arithmetic::Div, "4"), "2.5000000000000000");
        assert_eq!(op("1000000", Arithmetic::Div, "3"), "333333.333333333333");
        assert_eq!(op("1.000", Arithmetic::Div, "8"), "0.12500000000000000000");
        assert_eq!(op("-7.5", Arithmetic::Mod, "2"), "-1.5");
        assert_eq!(arithmetic(Arithmetic::Div, d("1"), d("0")).unwrap_err().state, SqlState::DivisionByZero);
    }

    #[test]
    fn typmods_round_and_bound() {
        let t = |p, s| typmod(p, s).unwrap();
        assert_eq!(to_text(apply_typmod(d("2.5"), t(2, 0)).unwrap()), "3");
        assert_eq!(to_text(apply_typmod(d("-2.5"), t(2, 0)).unwrap()), "-3");
        assert_eq!(to_text(apply_typmod(d("1.005"), t(5, 2)).unwrap()), "1.01");
        assert_eq!(to_text(apply_typmod(d("7"), t(5, 2)).unwrap()), "7.00");
        assert_eq!(to_text(apply_typmod(d("999.994"), t(5, 2)).unwrap()), "999.99");
        let e = apply_typmod(d("999.995"), t(5, 2)).unwrap_err();
        assert_eq!((e.state, e.message.as_str()), (SqlState::NumericValueOutOfRange, "numeric field overflow"));
        assert!(typmod(0, 0).is_err() && typmod(5, 29).is_err() && typmod(5, -1).is_err());
    }

    #[test]
    fn rounding_functions() {
        assert_eq!(to_text(round(d("2.5"), 0, false).unwrap()), "3");
        assert_eq!(to_text(round(d("-2.45"), 1, false).unwrap()), "-2.5");
        assert_eq!(to_text(round(d("1234.5"), -2, false).unwrap()), "1200");
        assert_eq!(to_text(round(d("1.2"), 3, false).unwrap()), "1.200");
        assert_eq!(to_text(round(d("-2.99"), 1, true).unwrap()), "-2.9");
        assert_eq!(to_i64(d("-2.5")), Some(-3));
        // Rounded once, from the exact value (not 0.5 then 1).
        assert_eq!(to_text(round(d("4.9999999999999999999999999995"), -1, false).unwrap()), "0");
        assert_eq!(to_text(round(d("-15"), -1, false).unwrap()), "-20");
        assert_eq!(to_text(round(d("-19.9"), -1, true).unwrap()), "-10");
        assert_eq!(to_text(round(d("5"), -40, false).unwrap()), "0");
    }

    #[test]
    fn zero_operands_keep_postgres_scales() {
        let op = |a: &str, op, b: &str| to_text(arithmetic(op, d(a), d(b)).unwrap());
        assert_eq!(op("1", Arithmetic::Add, "0.00"), "1.00");
        assert_eq!(op("2.50", Arithmetic::Mul, "0"), "0.00");
        assert_eq!(op("1", Arithmetic::Mod, "2.00"), "1.00");
        assert_eq!(op("2.00", Arithmetic::Mod, "2"), "0.00");
        assert_eq!(op("0.0", Arithmetic::Sub, "0"), "0.0");
    }

    #[test]
    fn extreme_exponents_are_errors_not_panics() {
        for s in
            ["0.5e-9223372036854775807", "1e-9223372036854775808", "1e9223372036854775807", "1.5e-99999999999999999999"]
        {
            assert_eq!(parse(s).unwrap_err().state, SqlState::NumericValueOutOfRange, "{s}");
        }
        // Zeros past the 28 places a value holds are only zeros.
        assert_eq!(to_text(d("0e-40")), "0.0000000000000000000000000000");
    }

    #[test]
    fn floats_compare_as_postgres_casts_them() {
        assert_eq!(cmp_float(d("0.1"), 0.1), Ordering::Equal);
        assert_eq!(cmp_float(d("0.0"), 1e-40), Ordering::Less);
        assert_eq!(cmp_float(d("1"), f64::NAN), Ordering::Less);
        assert_eq!(cmp_float(d("-1"), f64::NEG_INFINITY), Ordering::Greater);
    }

    #[test]
    fn floats_convert_by_their_significant_digits() {
        assert_eq!(to_text(from_f64(0.1, 15).unwrap()), "0.1");
        assert_eq!(to_text(from_f64(1.0 / 3.0, 15).unwrap()), "0.333333333333333");
        assert_eq!(to_text(from_f64(1e20, 15).unwrap()), "100000000000000000000");
        assert!(from_f64(f64::NAN, 15).is_err());
        assert_eq!(crate::types::Value::Numeric(d("0.1")).as_f64(), Some(0.1));
    }

    #[test]
    fn binary_format_matches_postgres() {
        // numeric_send's bytes for these values (PostgreSQL 15).
        assert_eq!(to_binary(d("12345.678")), vec![0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C]);
        assert_eq!(to_binary(d("0.00")), vec![0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(to_binary(d("-0.0001")), vec![0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1]);
        assert_eq!(to_binary(d("10000")), vec![0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
        for s in [
            "12345.678",
            "0.00",
            "-0.0001",
            "10000",
            "1.50",
            "-79228162514264337593543950335",
            "0.0000000000000000000000000001",
        ] {
            assert_eq!(to_text(from_binary(&to_binary(d(s))).unwrap()), s);
        }
        assert!(from_binary(&[0, 1]).is_err());
        assert!(from_binary(&[0, 1, 0, 0, 0, 0, 0, 0, 0x27, 0x10]).is_err());
    }

    fn decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..20).prop_map(|(m, s)| canonical(Decimal::new(m, s)))
    }

    proptest! {
        #[test]
        fn keys_order_as_numbers(a in decimal(), b in decimal()) {
            let (mut ka, mut kb) = (Vec::new(), Vec::new());
            encode_key(&mut ka, a);
            encode_key(&mut kb, b);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            let mut input = ka.as_slice();
            prop_assert_eq!(decode_key(&mut input, 0).unwrap(), a);
            prop_assert!(input.is_empty());
        }

        #[test]
        fn text_and_binary_round_trip(a in decimal()) {
            prop_assert_eq!(to_text(parse(&to_text(a)).unwrap()), to_text(a));
            prop_assert_eq!(to_text(from_binary(&to_binary(a)).unwrap()), to_text(a));
        }

        #[test]
        fn division_scale_is_postgres(a in decimal(), b in decimal()) {
            prop_assume!(!b.is_zero());
            let s = division_scale(a, b);
            prop_assert!(s >= a.scale().min(SCALE_MAX) && s >= b.scale().min(SCALE_MAX));
        }
    }
}
