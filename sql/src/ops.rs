//! What values do by themselves: arithmetic, comparison, casts, text input
//! and output, and LIKE, each as PostgreSQL 15 does it.
//!
//! Clients point their PostgreSQL drivers and test suites at SpanDB, so an
//! expression must give PostgreSQL's answer, of PostgreSQL's type, or fail
//! with PostgreSQL's SQLSTATE. This module is a pure core: no catalog, no
//! I/O, no clock; the binder calls the `*_type` and `can_*` functions once
//! per expression, the executor calls the value functions once per row.
//!
//! # The model
//!
//! Types convert in three contexts, as PostgreSQL's `pg_cast.castcontext`
//! says, each a superset of the one before:
//!
//! ```text
//!   implicit    (expressions)     int2 -> int4 -> int8 -> numeric -> float4 -> float8
//!                                 text <-> varchar <-> char
//!   assignment  (INSERT, UPDATE)  + numeric narrowing, range-checked
//!                                 + any type -> text/varchar/char (text output)
//!   explicit    (CAST, ::)        + int4 <-> bool
//!                                 + text/varchar/char -> any type (text input)
//! ```
//!
//! [`can_coerce_implicitly`], [`can_assign`] and [`can_cast`] answer "is
//! there a conversion"; [`cast`] and [`assign`] perform one. Operators
//! resolve their result type like PostgreSQL's operator lookup does on our
//! types: mixed integer widths give the wider one, `real op real` stays
//! `real`, and any other mix with a float gives `double precision` (the
//! preferred type of the numeric category wins the tie between candidate
//! operators).
//!
//! # Example
//!
//! ```text
//!   1::int2 + 1::int4          = 2 :: integer
//!   32767::int2 + 1::int2      -> 22003 smallint out of range
//!   1::int4 + 1::float4        = 2 :: double precision
//!   -7 / 2 = -3    -7 % 2 = -1   (truncation toward zero)
//!   2.5::float8::int4 = 2      3.5::float8::int4 = 4   (half to even)
//!   'abc'::varchar(2) = 'ab'   (explicit cast truncates)
//!   INSERT 'abc' INTO varchar(2) -> 22001 value too long for type character varying(2)
//!   1e20::float8::text = '1e+20'   0.1::float4::text = '0.1'
//! ```
//!
//! # Invariants
//!
//! - No input value can panic any function here: overflow is an error
//!   (checked arithmetic everywhere, never wrapping), a value of an
//!   unexpected type is an error, and LIKE runs in O(text x pattern) time.
//! - [`sort_cmp`] is a total order (NULL last, NaN above every number,
//!   numbers by exact value across widths), and [`compare`] agrees with it
//!   on every pair of non-NULL values it accepts; a proptest checks both.
//! - `parse_text(&to_text(v), t) == v` for every non-NULL `v` of type `t`
//!   (floats print the shortest text that reads back to the same bits).
//!
//! # Where we differ from PostgreSQL
//!
//! - An `int8` compared with a float is compared by exact value;
//!   PostgreSQL rounds the integer to `float8` first, which differs only
//!   beyond 2^53 and would make the sort order intransitive.
//! - `char(n)` values are blank-padded `Value::Text`s; PostgreSQL's
//!   trailing-blank-insensitive comparison of `char(n)` and its trimming on
//!   `char -> text` are the binder's business (this module sees values,
//!   which do not remember a declared length).
//! - Timestamps are microseconds since 1970 in an `i64`: `'infinity'` and
//!   `'-infinity'` are `i64::MAX` and `i64::MIN` (PostgreSQL does the same
//!   with its own epoch), so the latest finite timestamp is in year 294246
//!   rather than 294276. Input accepts the ISO forms
//!   (`YYYY-MM-DD[( |T)HH:MM[:SS[.frac]]][ zone][ BC]`) and `epoch`; a time
//!   zone is ignored, as `timestamp without time zone` does; a
//!   timestamptz's zone name is an IANA zone or an abbreviation ([`zone`]). `now`, `today` and friends are 0A000: they need a
//!   clock, and this module has none.
//! - `numeric` holds 28 significant digits ([`numeric`]'s module doc).

pub mod array;
pub mod interval;
pub mod jsonb;
pub mod numeric;
pub mod zone;

use std::cmp::Ordering;

use crate::error::{Error, Result, SqlState};
use crate::sql_err;
use crate::types::{DataType, Value};

/// Binary operators on values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    /// `||` on strings (and bytea).
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl BinaryOp {
    /// The operator as SQL spells it (for error messages).
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
        }
    }

    /// Whether the operator compares its operands (and returns a boolean).
    pub fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq)
    }
}

/// Unary operators on values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Plus,
}

impl UnaryOp {
    /// The operator as SQL spells it (for error messages).
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Plus => "+",
        }
    }
}

// ---------------------------------------------------------------------------
// Type names and errors
// ---------------------------------------------------------------------------

/// A type's name without its length modifier, as PostgreSQL prints types
/// in "operator does not exist" and "function does not exist" messages.
pub fn type_name(t: DataType) -> String {
    match t {
        DataType::Varchar(_) => DataType::Varchar(None).sql_name(),
        DataType::Char(_) => "character".into(),
        t => t.sql_name(),
    }
}

/// The 42804 error for storing a value of type `from` in a column of type
/// `to`, worded as PostgreSQL words it (with the column's name if known).
pub fn assignment_error(column: Option<&str>, from: DataType, to: DataType) -> Error {
    let (from, to) = (type_name(from), type_name(to));
    let message = match column {
        Some(c) => format!("column \"{c}\" is of type {to} but expression is of type {from}"),
        None => format!("column is of type {to} but expression is of type {from}"),
    };
    Error::new(SqlState::DatatypeMismatch, message)
}

fn no_binary_operator(op: &str, l: DataType, r: DataType) -> Error {
    Error::new(SqlState::UndefinedFunction, format!("operator does not exist: {} {op} {}", type_name(l), type_name(r)))
}

fn int_out_of_range(t: DataType) -> Error {
    let name = match t {
        DataType::Int2 => "smallint",
        DataType::Int4 => "integer",
        _ => "bigint",
    };
    Error::new(SqlState::NumericValueOutOfRange, format!("{name} out of range"))
}

fn float_overflow() -> Error {
    Error::new(SqlState::NumericValueOutOfRange, "value out of range: overflow")
}

fn float_underflow() -> Error {
    Error::new(SqlState::NumericValueOutOfRange, "value out of range: underflow")
}

fn division_by_zero() -> Error {
    Error::new(SqlState::DivisionByZero, "division by zero")
}

fn internal(what: &str) -> Error {
    Error::new(SqlState::InternalError, format!("unexpected operand: {what}"))
}

/// The position of a numeric type on the promotion ladder
/// int2 < int4 < int8 < numeric < float4 < float8.
fn numeric_rank(t: DataType) -> Option<u8> {
    match t {
        DataType::Int2 => Some(0),
        DataType::Int4 => Some(1),
        DataType::Int8 => Some(2),
        DataType::Numeric(_) => Some(3),
        DataType::Float4 => Some(4),
        DataType::Float8 => Some(5),
        _ => None,
    }
}

fn wider(a: DataType, b: DataType) -> DataType {
    let wider = if numeric_rank(a) >= numeric_rank(b) { a } else { b };
    // Two numerics of different typmods meet as unconstrained numeric.
    wider.base()
}

// ---------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------

/// The result type of an arithmetic operator on two numeric types.
fn arithmetic_type(l: DataType, r: DataType) -> Option<DataType> {
    if (l.is_integer() || l.is_decimal()) && (r.is_integer() || r.is_decimal()) {
        Some(wider(l, r))
    } else if l == DataType::Float4 && r == DataType::Float4 {
        Some(DataType::Float4)
    } else if l.is_numeric() && r.is_numeric() {
        Some(DataType::Float8)
    } else {
        None
    }
}

/// Whether `=`, `<` etc. exist between `l` and `r`.
fn comparable(l: DataType, r: DataType) -> bool {
    (l.is_numeric() && r.is_numeric())
        || (l.is_string() && r.is_string())
        || (l.is_datetime() && r.is_datetime())
        || l.base() == r.base()
}

/// The result type of date/time arithmetic `l op r`, if it is that:
/// timestamp ± interval, interval + timestamp, timestamp - timestamp,
/// interval ± interval, interval × number, number × interval, interval ÷
/// number; time ± interval, time - time, date ± time.
pub fn temporal_result_type(op: BinaryOp, l: DataType, r: DataType) -> Option<DataType> {
    use DataType::{Date, Interval, Time, Timestamp};
    match (op, l, r) {
        // A time of day and an interval's time part (around the clock);
        // the span between two times; a date at a time.
        (BinaryOp::Add | BinaryOp::Sub, Time, Interval) | (BinaryOp::Add, Interval, Time) => Some(Time),
        (BinaryOp::Sub, Time, Time) => Some(Interval),
        (BinaryOp::Add | BinaryOp::Sub, Date, Time) | (BinaryOp::Add, Time, Date) => Some(Timestamp),
        // A date and days; a date and an interval (at midnight); two dates.
        (BinaryOp::Add | BinaryOp::Sub, Date, DataType::Int2 | DataType::Int4) => Some(Date),
        (BinaryOp::Add, DataType::Int2 | DataType::Int4, Date) => Some(Date),
        (BinaryOp::Sub, Date, Date) => Some(DataType::Int4),
        (BinaryOp::Add | BinaryOp::Sub, Date, Interval) | (BinaryOp::Add, Interval, Date) => Some(Timestamp),
        (BinaryOp::Sub, a, b) if a.is_datetime() && b.is_datetime() => Some(Interval),
        (BinaryOp::Add | BinaryOp::Sub, t, Interval) if t.is_timestamp() => Some(t),
        (BinaryOp::Add, Interval, t) if t.is_timestamp() => Some(t),
        (BinaryOp::Sub, a, b) if a.is_timestamp() && b.is_timestamp() => Some(Interval),
        (BinaryOp::Add | BinaryOp::Sub, Interval, Interval) => Some(Interval),
        (BinaryOp::Mul, Interval, n) | (BinaryOp::Mul, n, Interval) if n.is_numeric() => Some(Interval),
        (BinaryOp::Div, Interval, n) if n.is_numeric() => Some(Interval),
        _ => None,
    }
}

/// Date/time arithmetic (the cases of [`temporal_result_type`]).
fn temporal_arithmetic(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    use interval::{add, add_to_timestamp, between, divide, multiply, negate};
    let shifted = |us: i64, i: &crate::types::Interval, tz: bool| -> Result<Value> {
        let moved = if tz { zone::add_in_session(us, i) } else { add_to_timestamp(us, i) };
        match moved {
            Some(us) if tz => Ok(Value::TimestampTz(us)),
            Some(us) => Ok(Value::Timestamp(us)),
            None => sql_err!(DatetimeFieldOverflow, "timestamp out of range"),
        }
    };
    let factor = |v: &Value| v.as_f64().ok_or_else(|| internal("number expected"));
    let date = |days: Option<i64>| -> Result<Value> {
        match days.and_then(|d| i32::try_from(d).ok()) {
            Some(d) if d.abs() <= crate::types::DATE_DAYS_MAX => Ok(Value::Date(d)),
            _ => sql_err!(DatetimeFieldOverflow, "date out of range"),
        }
    };
    let days = |v: &Value| v.as_i64().ok_or_else(|| internal("integer expected"));
    match (op, l, r) {
        (BinaryOp::Add, Value::Time(t), Value::Interval(i)) | (BinaryOp::Add, Value::Interval(i), Value::Time(t)) => {
            Ok(Value::Time(time_plus(*t, i.micros)))
        }
        (BinaryOp::Sub, Value::Time(t), Value::Interval(i)) => Ok(Value::Time(time_plus(*t, i.micros.wrapping_neg()))),
        (BinaryOp::Sub, Value::Time(a), Value::Time(b)) => {
            Ok(Value::Interval(crate::types::Interval { months: 0, days: 0, micros: a - b }))
        }
        (BinaryOp::Add | BinaryOp::Sub, d @ Value::Date(_), Value::Time(t))
        | (BinaryOp::Add, Value::Time(t), d @ Value::Date(_)) => {
            let t = if op == BinaryOp::Sub { -*t } else { *t };
            match d.as_micros().unwrap_or_default() {
                us @ (i64::MAX | i64::MIN) => Ok(Value::Timestamp(us)),
                us => match us.checked_add(t).filter(|us| *us != i64::MAX && *us != i64::MIN) {
                    Some(us) => Ok(Value::Timestamp(us)),
                    None => sql_err!(DatetimeFieldOverflow, "timestamp out of range"),
                },
            }
        }
        (_, Value::Date(d @ (i32::MAX | i32::MIN)), n) | (BinaryOp::Add, n, Value::Date(d @ (i32::MAX | i32::MIN)))
            if n.as_i64().is_some() =>
        {
            Ok(Value::Date(*d))
        }
        (BinaryOp::Add, Value::Date(d), n) | (BinaryOp::Add, n, Value::Date(d)) if n.as_i64().is_some() => {
            date(i64::from(*d).checked_add(days(n)?))
        }
        (BinaryOp::Sub, Value::Date(d), n) if n.as_i64().is_some() => date(i64::from(*d).checked_sub(days(n)?)),
        (BinaryOp::Sub, Value::Date(a), Value::Date(b)) => {
            if [*a, *b].iter().any(|d| *d == i32::MAX || *d == i32::MIN) {
                return sql_err!(DatetimeFieldOverflow, "cannot subtract infinite dates");
            }
            a.checked_sub(*b)
                .map(Value::Int4)
                .ok_or_else(|| Error::new(SqlState::NumericValueOutOfRange, "integer out of range"))
        }
        (BinaryOp::Add, d @ Value::Date(_), Value::Interval(i))
        | (BinaryOp::Add, Value::Interval(i), d @ Value::Date(_)) => {
            shifted(d.as_micros().unwrap_or_default(), i, false)
        }
        (BinaryOp::Sub, d @ Value::Date(_), Value::Interval(i)) => {
            shifted(d.as_micros().unwrap_or_default(), &negate(i)?, false)
        }
        (BinaryOp::Add, Value::Timestamp(us), Value::Interval(i))
        | (BinaryOp::Add, Value::Interval(i), Value::Timestamp(us)) => shifted(*us, i, false),
        (BinaryOp::Add, Value::TimestampTz(us), Value::Interval(i))
        | (BinaryOp::Add, Value::Interval(i), Value::TimestampTz(us)) => shifted(*us, i, true),
        (BinaryOp::Sub, Value::Timestamp(us), Value::Interval(i)) => shifted(*us, &negate(i)?, false),
        (BinaryOp::Sub, Value::TimestampTz(us), Value::Interval(i)) => shifted(*us, &negate(i)?, true),
        (BinaryOp::Sub, a, b) if a.as_micros().is_some() && b.as_micros().is_some() => {
            between(zone::instant_beside(a, b)?, zone::instant_beside(b, a)?).map(Value::Interval)
        }
        (BinaryOp::Add | BinaryOp::Sub, Value::Interval(a), Value::Interval(b)) => {
            add(a, b, op == BinaryOp::Sub).map(Value::Interval)
        }
        (BinaryOp::Mul, Value::Interval(i), n) | (BinaryOp::Mul, n, Value::Interval(i)) => {
            multiply(i, factor(n)?).map(Value::Interval)
        }
        (BinaryOp::Div, Value::Interval(i), n) => divide(i, factor(n)?).map(Value::Interval),
        _ => Err(internal("date/time arithmetic on other values")),
    }
}

/// The result type of `l op r`, or 42883 (operator does not exist).
pub fn binary_result_type(op: BinaryOp, l: DataType, r: DataType) -> Result<DataType> {
    if let Some(t) = temporal_result_type(op, l, r) {
        return Ok(t);
    }
    let found = match op {
        BinaryOp::Add | BinaryOp::Mul | BinaryOp::Div => arithmetic_type(l, r),
        BinaryOp::Sub => arithmetic_type(l, r),
        BinaryOp::Mod => {
            if (l.is_integer() || l.is_decimal()) && (r.is_integer() || r.is_decimal()) {
                Some(wider(l, r))
            } else {
                None
            }
        }
        BinaryOp::Concat => {
            if l == DataType::Bytea && r == DataType::Bytea {
                Some(DataType::Bytea)
            } else if l == DataType::Jsonb && r == DataType::Jsonb {
                Some(DataType::Jsonb)
            } else if l.element().is_some() && l.base() == r.base() {
                Some(l.base())
            } else if l.is_string() || r.is_string() {
                Some(DataType::Text)
            } else {
                None
            }
        }
        BinaryOp::Eq | BinaryOp::NotEq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq => {
            comparable(l, r).then_some(DataType::Bool)
        }
    };
    found.ok_or_else(|| no_binary_operator(op.symbol(), l, r))
}

/// `l op r`; NULL in, NULL out.
pub fn binary(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    let (Some(lt), Some(rt)) = (l.data_type(), r.data_type()) else {
        return Ok(Value::Null);
    };
    if op.is_comparison() {
        let ord = compare_as(op.symbol(), l, r)?;
        let b = match ord {
            None => return Ok(Value::Null),
            Some(o) => match op {
                BinaryOp::Eq => o == Ordering::Equal,
                BinaryOp::NotEq => o != Ordering::Equal,
                BinaryOp::Lt => o == Ordering::Less,
                BinaryOp::LtEq => o != Ordering::Greater,
                BinaryOp::Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            },
        };
        return Ok(Value::Bool(b));
    }
    if temporal_result_type(op, lt, rt).is_some() {
        return temporal_arithmetic(op, l, r);
    }
    let ty = binary_result_type(op, lt, rt)?;
    match ty {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => {
            let (Some(a), Some(b)) = (l.as_i64(), r.as_i64()) else {
                return Err(internal("integer expected"));
            };
            int_arithmetic(op, a, b, ty)
        }
        DataType::Numeric(_) => {
            let (Some(a), Some(b)) = (as_decimal(l)?, as_decimal(r)?) else {
                return Err(internal("numeric expected"));
            };
            let op = match op {
                BinaryOp::Add => numeric::Arithmetic::Add,
                BinaryOp::Sub => numeric::Arithmetic::Sub,
                BinaryOp::Mul => numeric::Arithmetic::Mul,
                BinaryOp::Div => numeric::Arithmetic::Div,
                BinaryOp::Mod => numeric::Arithmetic::Mod,
                _ => return Err(internal("not an arithmetic operator")),
            };
            numeric::arithmetic(op, a, b).map(Value::Numeric)
        }
        DataType::Float4 => {
            let (Value::Float4(a), Value::Float4(b)) = (l, r) else {
                return Err(internal("real expected"));
            };
            float4_arithmetic(op, *a, *b).map(Value::Float4)
        }
        DataType::Float8 => {
            let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
                return Err(internal("number expected"));
            };
            float8_arithmetic(op, a, b).map(Value::Float8)
        }
        DataType::Bytea => {
            let (Value::Bytea(a), Value::Bytea(b)) = (l, r) else {
                return Err(internal("bytea expected"));
            };
            check_concat_size(a.len() + b.len())?;
            let mut out = Vec::with_capacity(a.len() + b.len());
            out.extend_from_slice(a);
            out.extend_from_slice(b);
            Ok(Value::Bytea(out))
        }
        DataType::Jsonb => {
            let (Value::Jsonb(a), Value::Jsonb(b)) = (l, r) else {
                return Err(internal("jsonb expected"));
            };
            Ok(Value::Jsonb(Box::new(jsonb::checked(jsonb::concat(a, b))?)))
        }
        DataType::Array(element) => {
            let (Value::Array(_, a), Value::Array(_, b)) = (l, r) else {
                return Err(internal("arrays expected"));
            };
            check_concat_size(a.len() + b.len())?;
            Ok(Value::Array(element, a.iter().chain(b).cloned().collect()))
        }
        DataType::Text => {
            // PostgreSQL's textanycat/anytextcat: the non-text side goes
            // through its output function (so true || 'x' is 'tx').
            let mut s = text_out(l);
            let right = text_out(r);
            check_concat_size(s.len() + right.len())?;
            s.push_str(&right);
            Ok(Value::Text(s))
        }
        _ => Err(internal("unexpected result type")),
    }
}

/// An integer or a numeric as a numeric (`None` for other values).
fn as_decimal(v: &Value) -> Result<Option<numeric::Decimal>> {
    match v {
        Value::Numeric(d) => Ok(Some(*d)),
        v => v.as_i64().map(|i| numeric::from_i128(i.into())).transpose(),
    }
}

/// `||` refuses results over [`crate::limits::VALUE_BYTES_MAX`] (before
/// allocating them).
fn check_concat_size(bytes: usize) -> Result<()> {
    if bytes > crate::limits::VALUE_BYTES_MAX {
        return sql_err!(
            ProgramLimitExceeded,
            "result of || would be {bytes} bytes, over the limit of {}",
            crate::limits::VALUE_BYTES_MAX
        );
    }
    Ok(())
}

/// Integer arithmetic in i64, narrowed (with PostgreSQL's range error) to
/// the result type `ty`. `i64::MIN / -1` and friends are range errors;
/// `MIN % -1` is 0, as in PostgreSQL.
fn int_arithmetic(op: BinaryOp, a: i64, b: i64, ty: DataType) -> Result<Value> {
    let r = match op {
        BinaryOp::Add => a.checked_add(b),
        BinaryOp::Sub => a.checked_sub(b),
        BinaryOp::Mul => a.checked_mul(b),
        BinaryOp::Div => {
            if b == 0 {
                return Err(division_by_zero());
            }
            a.checked_div(b)
        }
        BinaryOp::Mod => {
            if b == 0 {
                return Err(division_by_zero());
            }
            Some(a.checked_rem(b).unwrap_or(0))
        }
        _ => return Err(internal("not an arithmetic operator")),
    };
    match r {
        Some(v) => int_value(v, ty),
        None => Err(int_out_of_range(ty)),
    }
}

/// `v` as a value of integer type `ty`, or that type's range error.
fn int_value(v: i64, ty: DataType) -> Result<Value> {
    match ty {
        DataType::Int2 => i16::try_from(v).map(Value::Int2).map_err(|_| int_out_of_range(ty)),
        DataType::Int4 => i32::try_from(v).map(Value::Int4).map_err(|_| int_out_of_range(ty)),
        DataType::Int8 => Ok(Value::Int8(v)),
        _ => Err(internal("integer type expected")),
    }
}

/// Float arithmetic with PostgreSQL's checks (float.h): an infinite result
/// from finite operands is an overflow, a zero product or quotient of
/// non-zero operands is an underflow, x / 0 is a division by zero unless
/// x is NaN.
macro_rules! float_arithmetic {
    ($name:ident, $t:ty) => {
        fn $name(op: BinaryOp, a: $t, b: $t) -> Result<$t> {
            let r = match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => {
                    if b == 0.0 && !a.is_nan() {
                        return Err(division_by_zero());
                    }
                    a / b
                }
                _ => return Err(no_binary_operator(op.symbol(), DataType::Float8, DataType::Float8)),
            };
            let overflow = r.is_infinite() && !a.is_infinite() && (op == BinaryOp::Div || !b.is_infinite());
            if overflow {
                return Err(float_overflow());
            }
            let underflow = r == 0.0
                && a != 0.0
                && match op {
                    BinaryOp::Mul => b != 0.0,
                    BinaryOp::Div => !b.is_infinite(),
                    _ => false,
                };
            if underflow {
                return Err(float_underflow());
            }
            Ok(r)
        }
    };
}

float_arithmetic!(float4_arithmetic, f32);
float_arithmetic!(float8_arithmetic, f64);

pub fn unary_result_type(op: UnaryOp, t: DataType) -> Result<DataType> {
    if t.is_numeric() || t == DataType::Interval {
        Ok(t)
    } else {
        sql_err!(UndefinedFunction, "operator does not exist: {} {}", op.symbol(), type_name(t))
    }
}

pub fn unary(op: UnaryOp, v: &Value) -> Result<Value> {
    let Some(t) = v.data_type() else {
        return Ok(Value::Null);
    };
    unary_result_type(op, t)?;
    if op == UnaryOp::Plus {
        return Ok(v.clone());
    }
    match *v {
        Value::Int2(i) => i.checked_neg().map(Value::Int2).ok_or_else(|| int_out_of_range(t)),
        Value::Int4(i) => i.checked_neg().map(Value::Int4).ok_or_else(|| int_out_of_range(t)),
        Value::Int8(i) => i.checked_neg().map(Value::Int8).ok_or_else(|| int_out_of_range(t)),
        Value::Float4(f) => Ok(Value::Float4(-f)),
        Value::Float8(f) => Ok(Value::Float8(-f)),
        Value::Numeric(d) => {
            Ok(Value::Numeric(numeric::arithmetic(numeric::Arithmetic::Sub, numeric::Decimal::ZERO, d)?))
        }
        Value::Interval(ref i) => interval::negate(i).map(Value::Interval),
        _ => Err(internal("number expected")),
    }
}

// ---------------------------------------------------------------------------
// Comparison and sorting
// ---------------------------------------------------------------------------

/// A number of any width, for comparing across widths.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Decimal(numeric::Decimal),
    Float(f64),
}

fn as_num(v: &Value) -> Option<Num> {
    match *v {
        Value::Float4(f) => Some(Num::Float(f.into())),
        Value::Float8(f) => Some(Num::Float(f)),
        Value::Numeric(d) => Some(Num::Decimal(d)),
        _ => v.as_i64().map(Num::Int),
    }
}

/// PostgreSQL's float order: NaN equals NaN and is above everything,
/// -0 equals 0.
fn cmp_floats(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `i` against `f` by exact value (no rounding of `i` to f64).
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    // 2^63 is exactly representable; every f64 in [-2^63, 2^63) truncates
    // to an integer that fits in i64.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.is_nan() || f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => {
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

fn cmp_nums(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        (Num::Float(x), Num::Float(y)) => cmp_floats(x, y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(x, y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(y, x).reverse(),
        (Num::Decimal(x), Num::Decimal(y)) => x.cmp(&y),
        (Num::Decimal(x), Num::Int(y)) => x.cmp(&numeric::Decimal::from(y)),
        (Num::Int(x), Num::Decimal(y)) => numeric::Decimal::from(x).cmp(&y),
        (Num::Decimal(x), Num::Float(y)) => numeric::cmp_float(x, y),
        (Num::Float(x), Num::Decimal(y)) => numeric::cmp_float(y, x).reverse(),
    }
}

/// The order of two non-NULL values of comparable types; `None` when the
/// types are not comparable.
fn cmp_comparable(l: &Value, r: &Value) -> Option<Ordering> {
    match (l, r) {
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        // String's order is bytewise on UTF-8: PostgreSQL's C collation.
        (Value::Text(a), Value::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Value::Bytea(a), Value::Bytea(b)) => Some(a.cmp(b)),
        (Value::Date(a), Value::Date(b)) => Some(a.cmp(b)),
        (Value::Time(a), Value::Time(b)) => Some(a.cmp(b)),
        // Two timestamps compare by their counts, a date as its
        // midnight; beside a timestamptz, those are the session zone's
        // wall clock, compared as the instant they are there.
        (a, b) if a.as_micros().is_some() && b.as_micros().is_some() => {
            Some(zone::instant_beside(a, b).ok().cmp(&zone::instant_beside(b, a).ok()))
        }
        (Value::Uuid(a), Value::Uuid(b)) => Some(a.cmp(b)),
        (Value::Interval(a), Value::Interval(b)) => Some(interval::compare(a, b)),
        (Value::Jsonb(a), Value::Jsonb(b)) => Some(jsonb::compare(a, b)),
        (Value::Array(x, a), Value::Array(y, b)) if x == y => Some(array::compare(a, b)),
        _ => Some(cmp_nums(as_num(l)?, as_num(r)?)),
    }
}

fn compare_as(op: &str, l: &Value, r: &Value) -> Result<Option<Ordering>> {
    let (Some(lt), Some(rt)) = (l.data_type(), r.data_type()) else {
        return Ok(None);
    };
    match cmp_comparable(l, r) {
        Some(o) => Ok(Some(o)),
        None => Err(no_binary_operator(op, lt, rt)),
    }
}

/// SQL comparison: `None` when either side is NULL.
pub fn compare(l: &Value, r: &Value) -> Result<Option<Ordering>> {
    compare_as("=", l, r)
}

/// Where a value's kind sorts among kinds that do not compare with each
/// other (a well-typed column never mixes them; this keeps the order total).
fn sort_class(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int2(_) | Value::Int4(_) | Value::Int8(_) | Value::Numeric(_) | Value::Float4(_) | Value::Float8(_) => 1,
        Value::Text(_) => 2,
        Value::Bytea(_) => 3,
        Value::Timestamp(_) | Value::TimestampTz(_) | Value::Date(_) => 4,
        Value::Uuid(_) => 5,
        Value::Interval(_) => 6,
        Value::Array(..) => 7,
        Value::Jsonb(_) => 8,
        Value::Time(_) => 9,
        Value::Null => 10,
    }
}

/// A total order for sorting and grouping: numbers across widths by
/// value, NaN above every number, NULL above everything.
pub fn sort_cmp(l: &Value, r: &Value) -> Ordering {
    let (cl, cr) = (sort_class(l), sort_class(r));
    if cl != cr {
        return cl.cmp(&cr);
    }
    cmp_comparable(l, r).unwrap_or(Ordering::Equal)
}

// ---------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------

/// Whether `from` converts to `to` implicitly (in expressions).
pub fn can_coerce_implicitly(from: DataType, to: DataType) -> bool {
    // Arrays element by element (int[] to numeric[]).
    if let (Some(from), Some(to)) = (from.element(), to.element()) {
        return can_coerce_implicitly(from, to);
    }
    if from.base() == to.base()
        || (from == DataType::Timestamp && to == DataType::TimestampTz)
        || (from == DataType::Date && to.is_timestamp())
    {
        return true;
    }
    match (numeric_rank(from), numeric_rank(to)) {
        (Some(f), Some(t)) => f <= t,
        _ => false,
    }
}

/// The common type of `a` and `b` (UNION, CASE, IN, COALESCE), or 42804.
///
/// Numbers meet on the promotion ladder (`int8` and `real` give `real`, as
/// in PostgreSQL). Two `varchar`s of different lengths give unlimited
/// `varchar`; any other mix of string types gives `text`.
pub fn common_type(a: DataType, b: DataType) -> Result<DataType> {
    if a == b {
        return Ok(a);
    }
    if a.is_numeric() && b.is_numeric() {
        return Ok(wider(a, b));
    }
    match (a, b) {
        (DataType::Varchar(_), DataType::Varchar(_)) => Ok(DataType::Varchar(None)),
        _ if a.is_timestamp() && b.is_timestamp() => Ok(DataType::TimestampTz),
        (DataType::Date, t) | (t, DataType::Date) if t.is_timestamp() => Ok(t),
        _ if a.is_string() && b.is_string() => Ok(DataType::Text),
        _ => sql_err!(DatatypeMismatch, "types {} and {} cannot be matched", type_name(a), type_name(b)),
    }
}

/// Whether an explicit cast from `from` to `to` exists (42846 otherwise).
pub fn can_cast(from: DataType, to: DataType) -> bool {
    if let (Some(a), Some(b)) = (from.element(), to.element()) {
        return can_cast(a, b);
    }
    from.base() == to.base()
        || (from.is_numeric() && to.is_numeric())
        || matches!((from, to), (DataType::Int4, DataType::Bool) | (DataType::Bool, DataType::Int4))
        // A jsonb scalar to its SQL type (22023 if it is another).
        || (from == DataType::Jsonb && (to.is_numeric() || to == DataType::Bool))
        || (from.is_datetime() && to.is_datetime())
        || is_time_cast(from, to)
        || from.is_string()
        || to.is_string()
}

/// The casts to and from `time`: a timestamp's time of day, an interval's
/// time part (around the clock), and a time as an interval.
fn is_time_cast(from: DataType, to: DataType) -> bool {
    matches!(
        (from, to),
        (DataType::Timestamp | DataType::TimestampTz | DataType::Interval, DataType::Time)
            | (DataType::Time, DataType::Interval)
    )
}

/// Whether assigning a `from` to a `to` column is allowed at all.
pub fn can_assign(from: DataType, to: DataType) -> bool {
    if let (Some(from), Some(to)) = (from.element(), to.element()) {
        return can_assign(from, to);
    }
    can_coerce_implicitly(from, to)
        || (from.is_numeric() && to.is_numeric())
        || (from.is_datetime() && to.is_datetime())
        || is_time_cast(from, to)
        || to.is_string()
}

/// An explicit `CAST(v AS to)` / `v::to`.
pub fn cast(v: &Value, to: DataType) -> Result<Value> {
    let Some(from) = v.data_type() else {
        return Ok(Value::Null);
    };
    if !can_cast(from, to) {
        return sql_err!(CannotCoerce, "cannot cast type {} to {}", type_name(from), to.sql_name());
    }
    if to.is_string() {
        // An explicit cast to varchar(n) or char(n) truncates silently.
        let s = string_of(v);
        let s = match to {
            DataType::Varchar(Some(n)) => truncate_chars(s, n),
            DataType::Char(n) => pad_chars(truncate_chars(s, n), n),
            _ => s,
        };
        return Ok(Value::Text(s));
    }
    if let Value::Text(s) = v {
        return parse_text(s, to);
    }
    if let (Value::Array(_, items), DataType::Array(element)) = (v, to) {
        let items = items.iter().map(|i| cast(i, *element)).collect::<Result<_>>()?;
        return Ok(Value::Array(element, items));
    }
    convert(v, to)
}

/// Storing `v` in a column of type `to` (INSERT, UPDATE): PostgreSQL's
/// assignment casts, range checks, VARCHAR(n) length (22001), CHAR(n)
/// padding; 42804 where no assignment cast exists.
pub fn assign(v: &Value, to: DataType) -> Result<Value> {
    let Some(from) = v.data_type() else {
        return Ok(Value::Null);
    };
    if !can_assign(from, to) {
        return Err(assignment_error(None, from, to));
    }
    if let (Value::Array(_, items), DataType::Array(element)) = (v, to) {
        // Element by element (an int[] column takes a numeric[]).
        let items = items.iter().map(|i| assign(i, *element)).collect::<Result<_>>()?;
        return Ok(Value::Array(element, items));
    }
    if to.is_string() {
        return fit_string(string_of(v), to).map(Value::Text);
    }
    convert(v, to)
}

/// Converts between numbers (range-checked, floats rounded half to even),
/// between int4 and bool, between timestamp and timestamptz, and to the
/// same type.
fn convert(v: &Value, to: DataType) -> Result<Value> {
    if v.data_type().map(DataType::base) == Some(to.base()) && !matches!(to, DataType::Numeric(Some(_))) {
        return Ok(v.clone());
    }
    match (v, to) {
        // Between an instant and a wall-clock time: the session zone's
        // (`zone::session`).
        (Value::Timestamp(us), DataType::TimestampTz) => Ok(Value::TimestampTz(zone::to_utc(*us, zone::session())?)),
        (Value::TimestampTz(us), DataType::Timestamp) => Ok(Value::Timestamp(zone::to_local(*us, zone::session())?)),
        (Value::Date(_), DataType::Timestamp) => Ok(Value::Timestamp(v.as_micros().unwrap_or_default())),
        (Value::Date(_), DataType::TimestampTz) => {
            Ok(Value::TimestampTz(zone::to_utc(v.as_micros().unwrap_or_default(), zone::session())?))
        }
        (Value::TimestampTz(us), DataType::Time | DataType::Date) => {
            convert(&Value::Timestamp(zone::to_local(*us, zone::session())?), to)
        }
        // A timestamp's time of day (NULL for an infinite one, as in
        // PostgreSQL); an interval's time part around the clock.
        (Value::Timestamp(us), DataType::Time) => match *us {
            i64::MAX | i64::MIN => Ok(Value::Null),
            us => Ok(Value::Time(us.rem_euclid(MICROS_PER_DAY))),
        },
        (Value::Interval(i), DataType::Time) => Ok(Value::Time(i.micros.rem_euclid(MICROS_PER_DAY))),
        (Value::Time(us), DataType::Interval) => {
            Ok(Value::Interval(crate::types::Interval { months: 0, days: 0, micros: *us }))
        }
        // A timestamp's day (floor: before 1970 too).
        (Value::Timestamp(us), DataType::Date) => Ok(Value::Date(match *us {
            i64::MAX => i32::MAX,
            i64::MIN => i32::MIN,
            us => match i32::try_from(us.div_euclid(MICROS_PER_DAY)) {
                Ok(days) if days.abs() <= crate::types::DATE_DAYS_MAX => days,
                _ => return sql_err!(DatetimeFieldOverflow, "date out of range for timestamp"),
            },
        })),
        (Value::Jsonb(j), _) => {
            let scalar = match (&**j, to) {
                (crate::types::Json::Bool(b), DataType::Bool) => Value::Bool(*b),
                (crate::types::Json::Number(d), t) if t.is_numeric() => Value::Numeric(*d),
                (j, t) => {
                    return sql_err!(
                        InvalidParameterValue,
                        "cannot cast jsonb {} to type {}",
                        jsonb::type_name_for_cast(j),
                        type_name(t)
                    )
                }
            };
            convert(&scalar, to)
        }
        (Value::Bool(b), DataType::Int4) => Ok(Value::Int4(i32::from(*b))),
        (Value::Int4(i), DataType::Bool) => Ok(Value::Bool(*i != 0)),
        (_, DataType::Int2 | DataType::Int4 | DataType::Int8) => match as_num(v) {
            Some(Num::Int(i)) => int_value(i, to),
            Some(Num::Float(f)) => float_to_int(f, to),
            // Half away from zero, as PostgreSQL's numeric_int4.
            Some(Num::Decimal(d)) => numeric::to_i64(d).map_or_else(|| Err(int_out_of_range(to)), |i| int_value(i, to)),
            None => Err(internal("number expected")),
        },
        (_, DataType::Numeric(typmod)) => {
            let d = match *v {
                Value::Numeric(d) => d,
                Value::Float4(f) => numeric::from_f64(f.into(), 6)?,
                Value::Float8(f) => numeric::from_f64(f, 15)?,
                _ => as_decimal(v)?.ok_or_else(|| internal("number expected"))?,
            };
            match typmod {
                Some(typmod) => numeric::apply_typmod(d, typmod).map(Value::Numeric),
                None => Ok(Value::Numeric(d)),
            }
        }
        (_, DataType::Float8) => v.as_f64().map(Value::Float8).ok_or_else(|| internal("number expected")),
        (Value::Float8(f), DataType::Float4) => {
            let r = *f as f32;
            if r.is_infinite() && !f.is_infinite() {
                return Err(float_overflow());
            }
            if r == 0.0 && *f != 0.0 {
                return Err(float_underflow());
            }
            Ok(Value::Float4(r))
        }
        (Value::Numeric(_), DataType::Float4) => {
            let f = v.as_f64().ok_or_else(|| internal("number expected"))?;
            convert(&Value::Float8(f), to)
        }
        (_, DataType::Float4) => match v.as_i64() {
            Some(i) => Ok(Value::Float4(i as f32)),
            None => Err(internal("number expected")),
        },
        _ => sql_err!(
            CannotCoerce,
            "cannot cast type {} to {}",
            v.data_type().map_or_else(|| "unknown".into(), type_name),
            to.sql_name()
        ),
    }
}

/// PostgreSQL's float -> integer: round half to even (rint), then check
/// the range; NaN and infinities are out of range.
fn float_to_int(f: f64, to: DataType) -> Result<Value> {
    let r = f.round_ties_even();
    let (lo, hi) = match to {
        DataType::Int2 => (f64::from(i16::MIN), -f64::from(i16::MIN)),
        DataType::Int4 => (f64::from(i32::MIN), -f64::from(i32::MIN)),
        _ => (i64::MIN as f64, -(i64::MIN as f64)),
    };
    if r.is_nan() || r < lo || r >= hi {
        return Err(int_out_of_range(to));
    }
    // In range: the conversion is exact.
    int_value(r as i64, to)
}

/// The text a value becomes when cast or assigned to a string type: the
/// output function, except booleans, which become `true`/`false`
/// (PostgreSQL's bool -> text cast is not its output function).
fn string_of(v: &Value) -> String {
    match v {
        Value::Bool(b) => if *b { "true" } else { "false" }.into(),
        v => text_out(v),
    }
}

/// The output of a non-NULL value (NULL: the empty string).
fn text_out(v: &Value) -> String {
    to_text(v).unwrap_or_default()
}

fn truncate_chars(s: String, n: u32) -> String {
    match s.char_indices().nth(n as usize) {
        Some((at, _)) => s[..at].to_string(),
        None => s,
    }
}

fn pad_chars(mut s: String, n: u32) -> String {
    let len = s.chars().count();
    let n = n as usize;
    if len < n {
        s.extend(std::iter::repeat_n(' ', n - len));
    }
    s
}

/// PostgreSQL's length coercion on assignment: too long is 22001, unless
/// everything past the limit is spaces (then it is cut off); `char(n)` is
/// then padded to `n`.
fn fit_string(s: String, to: DataType) -> Result<String> {
    let n = match to {
        DataType::Varchar(Some(n)) | DataType::Char(n) => n,
        _ => return Ok(s),
    };
    let s = match s.char_indices().nth(n as usize) {
        None => s,
        Some((at, _)) => {
            if s[at..].bytes().any(|b| b != b' ') {
                return sql_err!(StringDataRightTruncation, "value too long for type {}", to.sql_name());
            }
            s[..at].to_string()
        }
    };
    Ok(match to {
        DataType::Char(n) => pad_chars(s, n),
        _ => s,
    })
}

// ---------------------------------------------------------------------------
// Text output
// ---------------------------------------------------------------------------

/// PostgreSQL's text output of a value (`t`/`f`, `1.5`, `Infinity`,
/// `2026-12-01 18:55:10.123456`, `\x0102`); NULL: `None`.
pub fn to_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => if *b { "t" } else { "f" }.into(),
        Value::Int2(i) => i.to_string(),
        Value::Int4(i) => i.to_string(),
        Value::Int8(i) => i.to_string(),
        Value::Float4(f) => {
            float_text(f.is_nan(), f.is_infinite(), f.is_sign_negative(), || format!("{:e}", f.abs()), 6)
        }
        Value::Float8(f) => {
            float_text(f.is_nan(), f.is_infinite(), f.is_sign_negative(), || format!("{:e}", f.abs()), 15)
        }
        Value::Text(s) => s.clone(),
        Value::Bytea(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push(HEX_DIGITS[usize::from(byte >> 4)] as char);
                s.push(HEX_DIGITS[usize::from(byte & 0xf)] as char);
            }
            s
        }
        Value::Timestamp(us) => timestamp_text(*us),
        Value::TimestampTz(us) => timestamptz_text(*us),
        Value::Date(days) => date_text(*days),
        Value::Time(us) => time_text(*us),
        Value::Uuid(bytes) => uuid_text(bytes),
        Value::Numeric(d) => numeric::to_text(*d),
        Value::Jsonb(j) => jsonb::to_text(j),
        Value::Interval(i) => interval::to_text(i),
        Value::Array(_, items) => array::to_text(items),
    })
}

/// A uuid as PostgreSQL prints it: lower-case hex, hyphens after the 4th,
/// 6th, 8th and 10th bytes.
fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX_DIGITS[usize::from(byte >> 4)] as char);
        s.push(HEX_DIGITS[usize::from(byte & 0xf)] as char);
    }
    s
}

/// PostgreSQL's uuid input: 32 hex digits (either case), optionally in
/// braces, with a hyphen allowed after any group of four digits
/// (`a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`, `{A0EEBC999C0B...}`,
/// `a0ee-bc99-...`).
fn parse_uuid(s: &str) -> Result<[u8; 16]> {
    let bad = || sql_err!(InvalidTextRepresentation, "invalid input syntax for type uuid: \"{s}\"");
    let mut rest = s.as_bytes();
    let braces = rest.first() == Some(&b'{');
    if braces {
        rest = &rest[1..];
    }
    let mut bytes = [0u8; 16];
    for (i, slot) in bytes.iter_mut().enumerate() {
        let (Some(hi), Some(lo)) = (rest.first().and_then(|c| hex_value(*c)), rest.get(1).and_then(|c| hex_value(*c)))
        else {
            return bad();
        };
        *slot = hi << 4 | lo;
        rest = &rest[2..];
        if i % 2 == 1 && i < 15 && rest.first() == Some(&b'-') {
            rest = &rest[1..];
        }
    }
    if braces {
        match rest.split_first() {
            Some((b'}', tail)) => rest = tail,
            _ => return bad(),
        }
    }
    match rest.is_empty() {
        true => Ok(bytes),
        false => bad(),
    }
}

fn hex_value(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// PostgreSQL 12+'s float output (extra_float_digits = 1): the shortest
/// digits that read back to the same value (Ryu; Rust's `{:e}` computes the
/// same digits), fixed notation when the decimal exponent is in
/// [-4, `exp_max`) (15 for float8, 6 for float4), else `d.ddde+XX`.
fn float_text(nan: bool, inf: bool, negative: bool, sci: impl Fn() -> String, exp_max: i32) -> String {
    if nan {
        return "NaN".into();
    }
    if inf {
        return if negative { "-Infinity" } else { "Infinity" }.into();
    }
    let sci = sci();
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if negative {
        out.push('-');
    }
    if (-4..exp_max).contains(&exp) {
        // `point`: how many digits go before the decimal point.
        let point = exp + 1;
        if point <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point as usize - digits.len()));
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year
/// numbering: 0 is 1 BC). Howard Hinnant's `days_from_civil`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A date as PostgreSQL prints it (DateStyle ISO): `2026-01-02`, ` BC`
/// for years before 1, `infinity`/`-infinity` for the sentinels.
fn date_text(days: i32) -> String {
    match days {
        // (Beyond DATE_DAYS_MAX only from a corrupt row: as the infinity
        // on its side, as `Value::as_micros` takes it.)
        d if d > crate::types::DATE_DAYS_MAX => "infinity".into(),
        d if d < -crate::types::DATE_DAYS_MAX => "-infinity".into(),
        days => {
            let text = timestamp_text(i64::from(days) * MICROS_PER_DAY);
            match text.strip_suffix(" BC") {
                Some(ad) => format!("{} BC", &ad[..ad.len() - " 00:00:00".len()]),
                None => text[..text.len() - " 00:00:00".len()].to_string(),
            }
        }
    }
}

/// A date's text input: what a timestamp's may be (a time of day is
/// allowed and dropped, as PostgreSQL drops it), its day.
fn parse_date(s: &str) -> Result<i32> {
    let (local, _) = timestamp_input(s, "date")?;
    match local {
        i64::MAX => Ok(i32::MAX),
        i64::MIN => Ok(i32::MIN),
        us => i32::try_from(us.div_euclid(MICROS_PER_DAY))
            .ok()
            .filter(|d| d.abs() <= crate::types::DATE_DAYS_MAX)
            .map_or_else(|| sql_err!(DatetimeFieldOverflow, "date out of range: \"{s}\""), Ok),
    }
}

/// A timestamptz as PostgreSQL prints it: the wall-clock time in the
/// session's zone ([`zone::session`]) and that zone's offset then, before
/// any ` BC` (`2026-01-01 07:00:00-05`). An instant whose wall-clock time
/// would leave the range shows in UTC.
fn timestamptz_text(us: i64) -> String {
    if us == i64::MAX || us == i64::MIN {
        return timestamp_text(us);
    }
    let (local, offset) = zone::local_and_offset(us, zone::session()).unwrap_or((us, 0));
    let text = timestamp_text(local);
    let offset = zone::offset_text(offset);
    match text.strip_suffix(" BC") {
        Some(ad) => format!("{ad}{offset} BC"),
        None => text + &offset,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, trailing zeros of the fraction trimmed,
/// ` BC` for years before 1, `infinity`/`-infinity` for the sentinels.
fn timestamp_text(us: i64) -> String {
    match us {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let (year, month, day) = civil_from_days(us.div_euclid(MICROS_PER_DAY));
    let of_day = us.rem_euclid(MICROS_PER_DAY);
    let (shown_year, bc) = if year <= 0 { (1 - year, true) } else { (year, false) };
    let mut s = format!("{shown_year:04}-{month:02}-{day:02} ");
    push_clock(&mut s, of_day);
    if bc {
        s.push_str(" BC");
    }
    s
}

/// Appends `HH:MM:SS[.ffffff]` for `us` microseconds into a day, the
/// fraction's trailing zeros trimmed.
fn push_clock(s: &mut String, us: i64) {
    let secs = us / MICROS_PER_SECOND;
    let frac = us % MICROS_PER_SECOND;
    s.push_str(&format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60));
    if frac != 0 {
        let f = format!(".{frac:06}");
        s.push_str(f.trim_end_matches('0'));
    }
}

/// A time of day as PostgreSQL prints it: `04:05:06.5`, `24:00:00`.
fn time_text(us: i64) -> String {
    let mut s = String::with_capacity(15);
    push_clock(&mut s, us);
    s
}

/// `t` moved by `micros` around the clock (PostgreSQL's
/// `time_pl_interval`: an interval's days and months do not move a
/// time, and `24:00:00` plus nothing is `00:00:00`).
fn time_plus(t: i64, micros: i64) -> i64 {
    (i128::from(t) + i128::from(micros)).rem_euclid(i128::from(MICROS_PER_DAY)) as i64
}

/// A `time`'s text input: `HH:MM[:SS[.frac]]`, then `AM` or `PM` or a
/// zone (ignored, as PostgreSQL ignores it, named or not), or a
/// timestamp's text with a time of day (its date checked and dropped);
/// `allballs` is midnight. 22007 for other text, 22008 for fields out of
/// range (`25:00`, `2026-02-30 10:00`); `24:00:00` is the end of the day.
fn parse_time(s: &str) -> Result<i64> {
    let syntax = || Error::new(SqlState::InvalidDatetimeFormat, format!("invalid input syntax for type time: \"{s}\""));
    let t = trim_pg(s);
    if t.eq_ignore_ascii_case("allballs") {
        return Ok(0);
    }
    let lower = t.to_ascii_lowercase();
    let (t, meridiem) = match (lower.strip_suffix("am"), lower.strip_suffix("pm")) {
        (Some(rest), _) if rest.ends_with(|c: char| c.is_ascii_digit() || c == ' ') => {
            (trim_pg(&t[..rest.len()]), Some(false))
        }
        (_, Some(rest)) if rest.ends_with(|c: char| c.is_ascii_digit() || c == ' ') => {
            (trim_pg(&t[..rest.len()]), Some(true))
        }
        _ => (t, None),
    };
    // A clock alone (`4:05`) is read as a timestamp's time on any day.
    let clock_first =
        t.split_once(':').is_some_and(|(h, _)| (1..=2).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_digit()));
    let fields = if clock_first { timestamp_fields(&format!("2000-01-01 {t}")) } else { timestamp_fields(t) };
    let f = fields.filter(|f| f.clock && !(clock_first && f.bc)).ok_or_else(syntax)?;
    if f.zone_out_of_range {
        return sql_err!(InvalidTimeZoneDisplacementValue, "time zone displacement out of range: \"{s}\"");
    }
    if !date_in_range(&f) {
        return sql_err!(DatetimeFieldOverflow, "date/time field value out of range: \"{s}\"");
    }
    let mut hour = f.hour;
    match meridiem {
        Some(_) if hour > 12 => return sql_err!(DatetimeFieldOverflow, "date/time field value out of range: \"{s}\""),
        Some(false) if hour == 12 => hour = 0,
        Some(true) if hour < 12 => hour += 12,
        _ => {}
    }
    let us = ((hour * 60 + f.minute) * 60 + f.second) * MICROS_PER_SECOND + f.micros;
    if hour > 24 || f.minute > 59 || f.second > 60 || us > crate::types::TIME_MICROS_MAX {
        return sql_err!(DatetimeFieldOverflow, "date/time field value out of range: \"{s}\"");
    }
    Ok(us)
}

// ---------------------------------------------------------------------------
// Text input
// ---------------------------------------------------------------------------

/// PostgreSQL's text input of a `ty` (22P02, 22003, 22007 on bad input).
pub fn parse_text(s: &str, ty: DataType) -> Result<Value> {
    match ty {
        DataType::Bool => parse_bool(s),
        DataType::Int2 | DataType::Int4 | DataType::Int8 => parse_int(s, ty),
        DataType::Float4 => parse_float4(s),
        DataType::Float8 => parse_float8(s),
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) => fit_string(s.to_string(), ty).map(Value::Text),
        DataType::Bytea => parse_bytea(s).map(Value::Bytea),
        DataType::Timestamp => parse_timestamp(s).map(Value::Timestamp),
        DataType::TimestampTz => parse_timestamptz(s).map(Value::TimestampTz),
        DataType::Date => parse_date(s).map(Value::Date),
        DataType::Time => parse_time(s).map(Value::Time),
        DataType::Uuid => parse_uuid(s).map(Value::Uuid),
        DataType::Numeric(typmod) => {
            let d = numeric::parse(s)?;
            match typmod {
                Some(typmod) => numeric::apply_typmod(d, typmod).map(Value::Numeric),
                None => Ok(Value::Numeric(d)),
            }
        }
        DataType::Interval => interval::parse(s).map(Value::Interval),
        DataType::Jsonb => jsonb::parse(s).map(|j| Value::Jsonb(Box::new(j))),
        DataType::Array(element) => array::parse(s, *element),
    }
}

/// C's `isspace` in the C locale, which PostgreSQL's input functions skip.
fn is_pg_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn trim_pg(s: &str) -> &str {
    s.trim_matches(is_pg_space)
}

fn invalid_syntax(ty: DataType, s: &str) -> Error {
    Error::new(SqlState::InvalidTextRepresentation, format!("invalid input syntax for type {}: \"{s}\"", type_name(ty)))
}

/// PostgreSQL's parse_bool: t/true/y/yes/on/1 and f/false/n/no/off/0, any
/// case, any unique prefix of the words (`o` alone is ambiguous).
fn parse_bool(s: &str) -> Result<Value> {
    let t = trim_pg(s).to_ascii_lowercase();
    let prefix_of = |word: &str, min: usize| t.len() >= min && word.starts_with(t.as_str());
    let b = if prefix_of("true", 1) || prefix_of("yes", 1) || prefix_of("on", 2) || t == "1" {
        Some(true)
    } else if prefix_of("false", 1) || prefix_of("no", 1) || prefix_of("off", 2) || t == "0" {
        Some(false)
    } else {
        None
    };
    b.map(Value::Bool).ok_or_else(|| invalid_syntax(DataType::Bool, s))
}

/// An optionally signed run of decimal digits between optional spaces.
fn parse_int(s: &str, ty: DataType) -> Result<Value> {
    let t = trim_pg(s);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid_syntax(ty, s));
    }
    let out_of_range = || {
        Error::new(
            SqlState::NumericValueOutOfRange,
            format!("value \"{s}\" is out of range for type {}", type_name(ty)),
        )
    };
    let mut n: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        // Accumulate negatively so i64::MIN parses.
        n = n.checked_mul(10).and_then(|n| n.checked_sub(d)).ok_or_else(out_of_range)?;
    }
    let n = if negative { n } else { n.checked_neg().ok_or_else(out_of_range)? };
    int_value(n, ty).map_err(|_| out_of_range())
}

/// What a float input is before conversion: a special word or a decimal.
fn float_special(t: &str) -> Option<f64> {
    match t.to_ascii_lowercase().as_str() {
        "nan" | "+nan" | "-nan" => Some(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Whether `t` is a decimal float literal: sign, digits with at most one
/// point (at least one digit), optional exponent with at least one digit.
fn is_decimal_float(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    i == b.len()
}

/// Whether the mantissa of a decimal literal has a non-zero digit (so a
/// zero result means underflow).
fn mantissa_nonzero(t: &str) -> bool {
    t.bytes().take_while(|b| *b != b'e' && *b != b'E').any(|b| (b'1'..=b'9').contains(&b))
}

fn float_out_of_range(ty: DataType, s: &str) -> Error {
    Error::new(SqlState::NumericValueOutOfRange, format!("\"{s}\" is out of range for type {}", type_name(ty)))
}

fn parse_float8(s: &str) -> Result<Value> {
    let t = trim_pg(s);
    if let Some(f) = float_special(t) {
        return Ok(Value::Float8(f));
    }
    if !is_decimal_float(t) {
        return Err(invalid_syntax(DataType::Float8, s));
    }
    let f: f64 = t.parse().map_err(|_| invalid_syntax(DataType::Float8, s))?;
    if f.is_infinite() || (f == 0.0 && mantissa_nonzero(t)) {
        return Err(float_out_of_range(DataType::Float8, s));
    }
    Ok(Value::Float8(f))
}

fn parse_float4(s: &str) -> Result<Value> {
    let t = trim_pg(s);
    if let Some(f) = float_special(t) {
        return Ok(Value::Float4(f as f32));
    }
    if !is_decimal_float(t) {
        return Err(invalid_syntax(DataType::Float4, s));
    }
    let f: f32 = t.parse().map_err(|_| invalid_syntax(DataType::Float4, s))?;
    if f.is_infinite() || (f == 0.0 && mantissa_nonzero(t)) {
        return Err(float_out_of_range(DataType::Float4, s));
    }
    Ok(Value::Float4(f))
}

/// bytea input: hex (`\x0aff`, whitespace allowed between bytes) or the
/// escape format (`\\` is a backslash, `\ooo` an octal byte, anything
/// else itself).
fn parse_bytea(s: &str) -> Result<Vec<u8>> {
    match s.strip_prefix("\\x") {
        Some(hex) => bytea_hex(hex),
        None => bytea_escape(s),
    }
}

/// Bytes from hex digits, in pairs, whitespace between pairs (bytea's
/// `\x` input, `decode(.., 'hex')`); 22023 for anything else.
pub(crate) fn bytea_hex(hex: &str) -> Result<Vec<u8>> {
    let hex = hex.as_bytes();
    let mut out = Vec::with_capacity(hex.len() / 2);
    let mut i = 0;
    let digit = |c: u8| -> Result<u8> {
        (c as char).to_digit(16).map(|d| d as u8).ok_or_else(|| {
            Error::new(
                SqlState::InvalidParameterValue,
                format!("invalid hexadecimal digit: \"{}\"", String::from_utf8_lossy(&[c])),
            )
        })
    };
    while i < hex.len() {
        if matches!(hex[i], b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
            continue;
        }
        let hi = digit(hex[i])?;
        let Some(&lo) = hex.get(i + 1) else {
            return sql_err!(InvalidParameterValue, "invalid hexadecimal data: odd number of digits");
        };
        out.push((hi << 4) | digit(lo)?);
        i += 2;
    }
    Ok(out)
}

/// Bytes from bytea's escape format: `\\` a backslash, `\ooo` an octal
/// byte, any other character itself (bytea's input, `decode(..,
/// 'escape')`); 22P02 for a lone backslash.
pub(crate) fn bytea_escape(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let is_octal = |c: Option<&u8>, max: u8| c.is_some_and(|c| (b'0'..=max).contains(c));
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if is_octal(b.get(i + 1), b'3') && is_octal(b.get(i + 2), b'7') && is_octal(b.get(i + 3), b'7') {
            out.push(((b[i + 1] - b'0') << 6) | ((b[i + 2] - b'0') << 3) | (b[i + 3] - b'0'));
            i += 4;
        } else {
            return Err(invalid_syntax(DataType::Bytea, s));
        }
    }
    Ok(out)
}

/// Reads 1..=`max` ASCII digits at `*i`.
fn read_digits(b: &[u8], i: &mut usize, max: usize) -> Option<i64> {
    let start = *i;
    let mut n: i64 = 0;
    while *i < b.len() && b[*i].is_ascii_digit() && *i - start < max {
        n = n * 10 + i64::from(b[*i] - b'0');
        *i += 1;
    }
    (*i > start).then_some(n)
}

fn expect_byte(b: &[u8], i: &mut usize, c: u8) -> Option<()> {
    (b.get(*i) == Some(&c)).then(|| *i += 1)
}

/// A timestamp's date, as PostgreSQL reads it with its default DateStyle
/// (ISO, MDY): `2026-01-02` (ISO), `2026/01/02`, `20260102`, `1/2/2026`
/// (month first),
/// `Jan 2 2026`, `January 2, 2026` and `2 Jan 2026`; (year, month, day),
/// before range checks.
fn date_fields(b: &[u8], i: &mut usize) -> Option<(i64, i64, i64)> {
    let start = *i;
    if b.get(*i).is_some_and(u8::is_ascii_alphabetic) {
        // Mon[th] D[,] YYYY
        let month = month_name(b, i)?;
        skip_spaces(b, i);
        let day = read_digits(b, i, 2)?;
        expect_byte(b, i, b',');
        skip_spaces(b, i);
        return Some((read_digits(b, i, 7)?, month, day));
    }
    let first = read_digits(b, i, 8)?;
    let digits = *i - start;
    match b.get(*i) {
        Some(b'-') => {
            *i += 1;
            let month = read_digits(b, i, 2)?;
            expect_byte(b, i, b'-')?;
            Some((first, month, read_digits(b, i, 2)?))
        }
        // YYYY/MM/DD, else month first: M/D/YYYY.
        Some(b'/') if digits > 2 => {
            *i += 1;
            let month = read_digits(b, i, 2)?;
            expect_byte(b, i, b'/')?;
            Some((first, month, read_digits(b, i, 2)?))
        }
        Some(b'/') => {
            *i += 1;
            let day = read_digits(b, i, 2)?;
            expect_byte(b, i, b'/')?;
            Some((read_digits(b, i, 7)?, first, day))
        }
        Some(b' ') if digits <= 2 && b.get(*i + 1).is_some_and(u8::is_ascii_alphabetic) => {
            // D Mon YYYY
            *i += 1;
            let month = month_name(b, i)?;
            skip_spaces(b, i);
            Some((read_digits(b, i, 7)?, month, first))
        }
        _ if digits == 8 => Some((first / 10_000, first / 100 % 100, first % 100)),
        _ => None,
    }
}

/// The months' names, in lower case (date input, `to_char`).
pub(crate) const MONTH_NAMES: [&str; 12] = [
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

/// A month's name or its first three letters (any case): 1 to 12.
fn month_name(b: &[u8], i: &mut usize) -> Option<i64> {
    let start = *i;
    while b.get(*i).is_some_and(u8::is_ascii_alphabetic) {
        *i += 1;
    }
    let word = std::str::from_utf8(&b[start..*i]).ok()?.to_ascii_lowercase();
    let found = MONTH_NAMES.iter().position(|m| word.len() >= 3 && m.starts_with(word.as_str()))?;
    Some(found as i64 + 1)
}

fn skip_spaces(b: &[u8], i: &mut usize) {
    while b.get(*i) == Some(&b' ') {
        *i += 1;
    }
}

/// The fields of an ISO timestamp, before range checks.
struct TimestampFields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    micros: i64,
    bc: bool,
    /// The zone's offset east of UTC in seconds, if the input names one
    /// (`+02`, `-05:30`, `Z`, `UTC`).
    zone: Option<i64>,
    /// Any other zone word, for `zone::parse` (an IANA name, an
    /// abbreviation, POSIX's `UTC+5`).
    unknown_zone: Option<String>,
    /// An offset beyond PostgreSQL's ±15:59:59.
    zone_out_of_range: bool,
    /// Whether a time of day was written (`hour` and the rest are 0 if not).
    clock: bool,
}

/// `YYYY-MM-DD[( +|T)HH:MM[:SS[.frac]]]` then any of: a zone (`Z`, a word,
/// `+HH[:MM[:SS]]`, `-HHMM`), `BC`, `AD`. `None`: not that syntax.
fn timestamp_fields(t: &str) -> Option<TimestampFields> {
    let b = t.as_bytes();
    let mut i = 0;
    let (year, month, day) = date_fields(b, &mut i)?;
    let mut f = TimestampFields {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        bc: false,
        zone: None,
        unknown_zone: None,
        zone_out_of_range: false,
        clock: false,
    };

    let mut j = i;
    if matches!(b.get(j), Some(b'T' | b't')) {
        j += 1;
    } else {
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
    }
    if j > i && b.get(j).is_some_and(u8::is_ascii_digit) {
        i = j;
        f.hour = read_digits(b, &mut i, 2)?;
        f.clock = true;
        expect_byte(b, &mut i, b':')?;
        f.minute = read_digits(b, &mut i, 2)?;
        if expect_byte(b, &mut i, b':').is_some() {
            f.second = read_digits(b, &mut i, 2)?;
            if expect_byte(b, &mut i, b'.').is_some() {
                let start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                // As PostgreSQL: the fraction read as a double, rounded to
                // microseconds by rint (half to even: .0000005 is 0,
                // .0000015 is 2; .1234565 is .123456 in binary).
                let frac = std::str::from_utf8(&b[start..i]).unwrap_or("");
                let frac: f64 = format!("0.{frac}").parse().unwrap_or(0.0);
                f.micros = (frac * 1e6).round_ties_even() as i64;
            }
        }
    }

    // The tail: a zone (`timestamp` ignores it) and the era.
    loop {
        while b.get(i).is_some_and(|c| is_pg_space(char::from(*c))) {
            i += 1;
        }
        let Some(&c) = b.get(i) else { break };
        if c == b'+' || c == b'-' {
            // `+H`, `+HH`, `+HHMM`, `+HHMMSS`, then `:MM[:SS]`.
            i += 1;
            let start = i;
            let digits = read_digits(b, &mut i, 6)?;
            let (mut hours, mut minutes, mut seconds) = match i - start {
                1 | 2 => (digits, 0, 0),
                3 | 4 => (digits / 100, digits % 100, 0),
                _ => (digits / 10_000, digits / 100 % 100, digits % 100),
            };
            if expect_byte(b, &mut i, b':').is_some() {
                minutes = read_digits(b, &mut i, 2)?;
                if expect_byte(b, &mut i, b':').is_some() {
                    seconds = read_digits(b, &mut i, 2)?;
                }
            }
            f.zone_out_of_range |= hours > 15 || minutes > 59 || seconds > 59;
            hours = (hours * 60 + minutes) * 60 + seconds;
            f.zone = Some(if c == b'-' { -hours } else { hours });
        } else if c.is_ascii_alphabetic() {
            // A word: an era, or a zone as `ops::zone` reads one (an IANA
            // name such as `America/Port-au-Prince` or `EST5EDT`, an
            // abbreviation, or POSIX's `UTC+5`, hours west).
            let start = i;
            while b.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || matches!(*c, b'/' | b'_' | b'+' | b'-')) {
                i += 1;
            }
            let word = t[start..i].to_ascii_lowercase();
            match word.as_str() {
                "bc" => f.bc = true,
                "ad" => {}
                "z" | "zulu" | "utc" | "gmt" | "ut" | "etc/utc" | "etc/gmt" | "universal" => f.zone = Some(0),
                _ => f.unknown_zone = Some(t[start..i].to_string()),
            }
        } else {
            return None;
        }
    }
    Some(f)
}

/// A `timestamp`'s text input: the fields as written; a zone is
/// ignored, as PostgreSQL ignores it.
fn parse_timestamp(s: &str) -> Result<i64> {
    timestamp_input(s, "timestamp").map(|(local, _)| local)
}

/// A `timestamptz`'s text input: the instant, in UTC. Without a zone the
/// fields are the session zone's wall clock ([`zone::session`]); a zone's
/// name is read as `AT TIME ZONE` reads it ([`zone`]).
fn parse_timestamptz(s: &str) -> Result<i64> {
    let (local, zone) = timestamp_input(s, "timestamp with time zone")?;
    match zone {
        Zone::Offset(seconds) if local != i64::MIN && local != i64::MAX => {
            match local.checked_sub(seconds * MICROS_PER_SECOND).filter(|us| *us != i64::MIN && *us != i64::MAX) {
                Some(us) => Ok(us),
                None => sql_err!(DatetimeFieldOverflow, "timestamp out of range: \"{s}\""),
            }
        }
        Zone::Unknown(name) => zone::to_utc(local, zone::parse(&name)?),
        Zone::None => zone::to_utc(local, zone::session()),
        Zone::Offset(_) => Ok(local),
    }
}

/// The zone a timestamp's text names.
enum Zone {
    None,
    /// Seconds east of UTC.
    Offset(i64),
    Unknown(String),
}

/// Whether the fields' date is a day of the calendar (no year 0).
fn date_in_range(f: &TimestampFields) -> bool {
    let year = if f.bc { 1 - f.year } else { f.year };
    f.year != 0 && (1..=12).contains(&f.month) && (1..=days_in_month(year, f.month)).contains(&f.day)
}

/// A timestamp's text: the count its fields spell (as if in UTC), and
/// the zone it names. `what` names the type in errors.
fn timestamp_input(s: &str, what: &str) -> Result<(i64, Zone)> {
    let t = trim_pg(s);
    match t.to_ascii_lowercase().as_str() {
        // An instant: the same in every zone.
        "epoch" => return Ok((0, Zone::Offset(0))),
        "infinity" | "+infinity" => return Ok((i64::MAX, Zone::None)),
        "-infinity" => return Ok((i64::MIN, Zone::None)),
        "now" | "today" | "tomorrow" | "yesterday" => {
            return sql_err!(FeatureNotSupported, "timestamp input \"{t}\" is not supported: it depends on the clock")
        }
        _ => {}
    }
    let f = timestamp_fields(t).ok_or_else(|| {
        Error::new(SqlState::InvalidDatetimeFormat, format!("invalid input syntax for type {what}: \"{s}\""))
    })?;
    if f.zone_out_of_range {
        return sql_err!(InvalidTimeZoneDisplacementValue, "time zone displacement out of range: \"{s}\"");
    }
    let field_overflow =
        || Error::new(SqlState::DatetimeFieldOverflow, format!("date/time field value out of range: \"{s}\""));
    if !date_in_range(&f) {
        return Err(field_overflow());
    }
    let year = if f.bc { 1 - f.year } else { f.year };
    let midnight_24 = f.hour == 24 && f.minute == 0 && f.second == 0 && f.micros == 0;
    if (f.hour > 23 && !midnight_24) || f.minute > 59 || f.second > 60 {
        return Err(field_overflow());
    }
    let days = i128::from(days_from_civil(year, f.month, f.day));
    let secs = i128::from((f.hour * 60 + f.minute) * 60 + f.second);
    let us = days * i128::from(MICROS_PER_DAY) + secs * i128::from(MICROS_PER_SECOND) + i128::from(f.micros);
    let zone = match (f.zone, f.unknown_zone) {
        (Some(seconds), _) => Zone::Offset(seconds),
        (None, Some(name)) => Zone::Unknown(name),
        (None, None) => Zone::None,
    };
    match i64::try_from(us) {
        Ok(us) if us != i64::MIN && us != i64::MAX => Ok((us, zone)),
        _ => sql_err!(DatetimeFieldOverflow, "timestamp out of range: \"{s}\""),
    }
}

// ---------------------------------------------------------------------------
// LIKE
// ---------------------------------------------------------------------------

/// `text LIKE pattern` (`%`, `_`, `\` escapes); ILIKE when
/// `case_insensitive`. NULL in, NULL out.
pub fn like(text: &Value, pattern: &Value, case_insensitive: bool) -> Result<Value> {
    like_with_escape(text, pattern, case_insensitive, Some('\\'))
}

/// LIKE with an explicit `ESCAPE` character (`None`: `ESCAPE ''`, no
/// escaping). Text matches by characters, bytea (LIKE only) by bytes.
///
/// The matcher is the greedy two-pointer one: on a mismatch it goes back
/// only to the most recent `%`, letting it swallow one more character. A
/// later `%` can always absorb whatever an earlier one would, so that is
/// enough, and time is O(text x pattern) whatever the pattern.
pub fn like_with_escape(text: &Value, pattern: &Value, case_insensitive: bool, escape: Option<char>) -> Result<Value> {
    match (text, pattern) {
        (Value::Null, _) | (_, Value::Null) => Ok(Value::Null),
        (Value::Text(t), Value::Text(p)) => {
            let (t, p): (Vec<char>, Vec<char>) = if case_insensitive {
                (t.to_lowercase().chars().collect(), p.to_lowercase().chars().collect())
            } else {
                (t.chars().collect(), p.chars().collect())
            };
            let tokens = like_tokens(&p, escape, '%', '_')?;
            Ok(Value::Bool(like_match(&t, &tokens)))
        }
        (Value::Bytea(t), Value::Bytea(p)) if !case_insensitive => {
            let escape = escape.and_then(|c| u8::try_from(c).ok());
            let tokens = like_tokens(p, escape, b'%', b'_')?;
            Ok(Value::Bool(like_match(t, &tokens)))
        }
        (t, p) => {
            let name = |v: &Value| v.data_type().map_or_else(|| "unknown".into(), type_name);
            let op = if case_insensitive { "~~*" } else { "~~" };
            sql_err!(UndefinedFunction, "operator does not exist: {} {op} {}", name(t), name(p))
        }
    }
}

/// A LIKE pattern element.
#[derive(Debug, PartialEq)]
enum LikeToken<T> {
    Literal(T),
    /// `_`
    One,
    /// `%` (runs of them collapse into one)
    Many,
}

fn like_tokens<T: Copy + PartialEq>(
    p: &[T],
    escape: Option<T>,
    percent: T,
    underscore: T,
) -> Result<Vec<LikeToken<T>>> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        if Some(c) == escape {
            let Some(&next) = p.get(i + 1) else {
                return sql_err!(InvalidEscapeSequence, "LIKE pattern must not end with escape character");
            };
            out.push(LikeToken::Literal(next));
            i += 2;
            continue;
        }
        if c == percent {
            if out.last() != Some(&LikeToken::Many) {
                out.push(LikeToken::Many);
            }
        } else if c == underscore {
            out.push(LikeToken::One);
        } else {
            out.push(LikeToken::Literal(c));
        }
        i += 1;
    }
    Ok(out)
}

fn like_match<T: PartialEq>(t: &[T], p: &[LikeToken<T>]) -> bool {
    let (mut ti, mut pi) = (0, 0);
    // The last `%` seen, and where in the text it currently ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(LikeToken::Many) => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(LikeToken::One) => {
                ti += 1;
                pi += 1;
            }
            Some(LikeToken::Literal(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    pi = sp + 1;
                    ti = st + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|tok| *tok == LikeToken::Many)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use DataType as T;
    use Value as V;

    fn state(r: Result<Value>) -> &'static str {
        r.err().map_or("ok", |e| e.state.code())
    }

    /// Goal: arithmetic gives PostgreSQL's result values and types at every
    /// width, and overflow is an error at every width, never a wrap.
    /// Method: a table of (op, left, right, expected value or SQLSTATE).
    #[test]
    fn arithmetic() {
        use BinaryOp::*;
        let ok = |v: Value| Ok::<Value, &str>(v);
        let cases: Vec<(BinaryOp, Value, Value, std::result::Result<Value, &str>)> = vec![
            (Add, V::Int2(1), V::Int2(2), ok(V::Int2(3))),
            (Add, V::Int2(1), V::Int4(2), ok(V::Int4(3))),
            (Add, V::Int4(1), V::Int2(2), ok(V::Int4(3))),
            (Add, V::Int2(1), V::Int8(2), ok(V::Int8(3))),
            (Add, V::Int4(1), V::Int8(2), ok(V::Int8(3))),
            (Add, V::Int4(1), V::Float4(0.5), ok(V::Float8(1.5))),
            (Add, V::Float4(1.0), V::Float4(0.5), ok(V::Float4(1.5))),
            (Add, V::Float4(1.0), V::Float8(0.5), ok(V::Float8(1.5))),
            (Add, V::Int8(1), V::Float8(0.5), ok(V::Float8(1.5))),
            (Add, V::Int2(i16::MAX), V::Int2(1), Err("22003")),
            (Sub, V::Int2(i16::MIN), V::Int2(1), Err("22003")),
            (Mul, V::Int2(200), V::Int2(200), Err("22003")),
            (Add, V::Int2(i16::MAX), V::Int4(1), ok(V::Int4(32768))),
            (Add, V::Int4(i32::MAX), V::Int4(1), Err("22003")),
            (Mul, V::Int4(65536), V::Int4(65536), Err("22003")),
            (Add, V::Int4(i32::MAX), V::Int8(1), ok(V::Int8(2147483648))),
            (Add, V::Int8(i64::MAX), V::Int8(1), Err("22003")),
            (Sub, V::Int8(i64::MIN), V::Int4(1), Err("22003")),
            (Mul, V::Int8(i64::MAX), V::Int2(2), Err("22003")),
            (Div, V::Int2(i16::MIN), V::Int2(-1), Err("22003")),
            (Div, V::Int4(i32::MIN), V::Int4(-1), Err("22003")),
            (Div, V::Int8(i64::MIN), V::Int8(-1), Err("22003")),
            (Div, V::Int4(i32::MIN), V::Int8(-1), ok(V::Int8(2147483648))),
            (Mod, V::Int8(i64::MIN), V::Int8(-1), ok(V::Int8(0))),
            (Mod, V::Int4(i32::MIN), V::Int4(-1), ok(V::Int4(0))),
            (Div, V::Int4(7), V::Int4(2), ok(V::Int4(3))),
            (Div, V::Int4(-7), V::Int4(2), ok(V::Int4(-3))),
            (Div, V::Int4(7), V::Int4(-2), ok(V::Int4(-3))),
            (Div, V::Int4(-7), V::Int4(-2), ok(V::Int4(3))),
            (Mod, V::Int4(7), V::Int4(2), ok(V::Int4(1))),
            (Mod, V::Int4(-7), V::Int4(2), ok(V::Int4(-1))),
            (Mod, V::Int4(7), V::Int4(-2), ok(V::Int4(1))),
            (Mod, V::Int4(-7), V::Int4(-2), ok(V::Int4(-1))),
            (Mod, V::Int2(7), V::Int8(4), ok(V::Int8(3))),
            (Div, V::Int4(1), V::Int4(0), Err("22012")),
            (Mod, V::Int2(1), V::Int2(0), Err("22012")),
            (Div, V::Float8(1.0), V::Float8(0.0), Err("22012")),
            (Div, V::Float8(0.0), V::Float8(0.0), Err("22012")),
            (Div, V::Float4(1.0), V::Int4(0), Err("22012")),
            (Div, V::Float8(7.0), V::Float8(2.0), ok(V::Float8(3.5))),
            (Mod, V::Float8(7.0), V::Float8(2.0), Err("42883")),
            (Mod, V::Int4(7), V::Float8(2.0), Err("42883")),
            (Mul, V::Float8(1e308), V::Float8(10.0), Err("22003")),
            (Mul, V::Float4(1e38), V::Float4(10.0), Err("22003")),
            (Mul, V::Float8(1e-308), V::Float8(1e-308), Err("22003")),
            (Add, V::Float8(f64::INFINITY), V::Float8(1.0), ok(V::Float8(f64::INFINITY))),
            (Add, V::Int4(1), V::Bool(true), Err("42883")),
            (Add, V::Int4(1), V::Null, ok(V::Null)),
            (Concat, V::Text("a".into()), V::Text("b".into()), ok(V::Text("ab".into()))),
            (Concat, V::Text("a".into()), V::Int4(1), ok(V::Text("a1".into()))),
            (Concat, V::Bool(true), V::Text("x".into()), ok(V::Text("tx".into()))),
            (Concat, V::Text("a".into()), V::Float8(0.1), ok(V::Text("a0.1".into()))),
            (Concat, V::Text("a".into()), V::Null, ok(V::Null)),
            (Concat, V::Bytea(vec![1]), V::Bytea(vec![2]), ok(V::Bytea(vec![1, 2]))),
            (Concat, V::Int4(1), V::Int4(2), Err("42883")),
            (
                Sub,
                V::Timestamp(86_400_000_001),
                V::Timestamp(0),
                ok(V::Interval(crate::types::Interval { months: 0, days: 1, micros: 1 })),
            ),
            (Eq, V::Int2(1), V::Float8(1.0), ok(V::Bool(true))),
            (Lt, V::Int8(9_007_199_254_740_993), V::Float8(9_007_199_254_740_992.0), ok(V::Bool(false))),
            (Gt, V::Int8(9_007_199_254_740_993), V::Float8(9_007_199_254_740_992.0), ok(V::Bool(true))),
            (Eq, V::Float8(f64::NAN), V::Float8(f64::NAN), ok(V::Bool(true))),
            (Gt, V::Float8(f64::NAN), V::Float8(f64::INFINITY), ok(V::Bool(true))),
            (Eq, V::Float8(-0.0), V::Int4(0), ok(V::Bool(true))),
            (LtEq, V::Text("B".into()), V::Text("a".into()), ok(V::Bool(true))),
            (NotEq, V::Bool(true), V::Bool(false), ok(V::Bool(true))),
            (GtEq, V::Timestamp(5), V::Timestamp(5), ok(V::Bool(true))),
            (Eq, V::Int4(1), V::Text("1".into()), Err("42883")),
            (Eq, V::Int4(1), V::Null, ok(V::Null)),
        ];
        for (op, l, r, want) in cases {
            let got = binary(op, &l, &r);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{l:?} {} {r:?}", op.symbol()),
                (Err(e), Err(code)) => assert_eq!(e.state.code(), *code, "{l:?} {} {r:?}: {e}", op.symbol()),
                _ => panic!("{l:?} {} {r:?}: got {got:?}, want {want:?}", op.symbol()),
            }
            // The value's type is the one the binder was promised.
            if let (Ok(v), Some(lt), Some(rt)) = (&got, l.data_type(), r.data_type()) {
                if let Some(vt) = v.data_type() {
                    assert_eq!(binary_result_type(op, lt, rt), Ok(vt), "{l:?} {} {r:?}", op.symbol());
                }
            }
        }
    }

    /// Goal: error messages read as PostgreSQL's. Method: compare texts.
    #[test]
    fn error_messages() {
        let msg = |r: Result<Value>| r.unwrap_err().message;
        assert_eq!(msg(binary(BinaryOp::Add, &V::Int2(i16::MAX), &V::Int2(1))), "smallint out of range");
        assert_eq!(msg(binary(BinaryOp::Add, &V::Int4(i32::MAX), &V::Int4(1))), "integer out of range");
        assert_eq!(msg(binary(BinaryOp::Add, &V::Int8(i64::MAX), &V::Int8(1))), "bigint out of range");
        assert_eq!(msg(binary(BinaryOp::Div, &V::Int8(1), &V::Int8(0))), "division by zero");
        assert_eq!(
            msg(binary(BinaryOp::Add, &V::Int4(1), &V::Bool(true))),
            "operator does not exist: integer + boolean"
        );
        assert_eq!(
            binary_result_type(BinaryOp::Eq, T::Varchar(Some(3)), T::Int4).unwrap_err().message,
            "operator does not exist: character varying = integer"
        );
        assert_eq!(msg(binary(BinaryOp::Mul, &V::Float8(1e308), &V::Float8(1e308))), "value out of range: overflow");
        assert_eq!(msg(parse_text("abc", T::Int4)), "invalid input syntax for type integer: \"abc\"");
        assert_eq!(msg(parse_text("99999", T::Int2)), "value \"99999\" is out of range for type smallint");
        assert_eq!(msg(parse_text("1e400", T::Float8)), "\"1e400\" is out of range for type double precision");
        assert_eq!(
            msg(assign(&V::Text("abcdef".into()), T::Varchar(Some(5)))),
            "value too long for type character varying(5)"
        );
        assert_eq!(msg(assign(&V::Text("abcdef".into()), T::Char(5))), "value too long for type character(5)");
        assert_eq!(
            msg(assign(&V::Text("1".into()), T::Int4)),
            "column is of type integer but expression is of type text"
        );
        assert_eq!(
            assignment_error(Some("x"), T::Text, T::Int4).message,
            "column \"x\" is of type integer but expression is of type text"
        );
        assert_eq!(msg(cast(&V::Bool(true), T::Timestamp)), "cannot cast type boolean to timestamp without time zone");
        assert_eq!(msg(unary(UnaryOp::Neg, &V::Bool(true))), "operator does not exist: - boolean");
        assert_eq!(
            msg(like(&V::Text("a".into()), &V::Text("a\\".into()), false)),
            "LIKE pattern must not end with escape character"
        );
    }

    /// Goal: negation overflows at each width's minimum; unary plus and
    /// minus exist only for numbers. Method: table.
    #[test]
    fn unary_ops() {
        assert_eq!(unary(UnaryOp::Neg, &V::Int2(5)), Ok(V::Int2(-5)));
        assert_eq!(state(unary(UnaryOp::Neg, &V::Int2(i16::MIN))), "22003");
        assert_eq!(state(unary(UnaryOp::Neg, &V::Int4(i32::MIN))), "22003");
        assert_eq!(state(unary(UnaryOp::Neg, &V::Int8(i64::MIN))), "22003");
        assert_eq!(unary(UnaryOp::Neg, &V::Float8(0.0)), Ok(V::Float8(-0.0)));
        assert_eq!(unary(UnaryOp::Neg, &V::Float4(1.5)), Ok(V::Float4(-1.5)));
        assert_eq!(unary(UnaryOp::Plus, &V::Int8(i64::MIN)), Ok(V::Int8(i64::MIN)));
        assert_eq!(unary(UnaryOp::Neg, &V::Null), Ok(V::Null));
        assert_eq!(state(unary(UnaryOp::Plus, &V::Text("1".into()))), "42883");
        assert_eq!(unary_result_type(UnaryOp::Neg, T::Int2), Ok(T::Int2));
    }

    /// Goal: explicit casts round floats half to even, check ranges, and
    /// exist exactly for the pairs PostgreSQL has. Method: table.
    #[test]
    fn casts() {
        let cases: Vec<(Value, DataType, std::result::Result<Value, &str>)> = vec![
            (V::Float8(2.5), T::Int4, Ok(V::Int4(2))),
            (V::Float8(3.5), T::Int4, Ok(V::Int4(4))),
            (V::Float8(-2.5), T::Int4, Ok(V::Int4(-2))),
            (V::Float8(-3.5), T::Int2, Ok(V::Int2(-4))),
            (V::Float4(0.5), T::Int8, Ok(V::Int8(0))),
            (V::Float8(2147483647.4), T::Int4, Ok(V::Int4(i32::MAX))),
            (V::Float8(2147483647.5), T::Int4, Err("22003")),
            (V::Float8(-2147483648.5), T::Int4, Ok(V::Int4(i32::MIN))),
            (V::Float8(32767.5), T::Int2, Err("22003")),
            (V::Float8(9.3e18), T::Int8, Err("22003")),
            (V::Float8(-9_223_372_036_854_775_808.0), T::Int8, Ok(V::Int8(i64::MIN))),
            (V::Float8(f64::NAN), T::Int4, Err("22003")),
            (V::Float8(f64::INFINITY), T::Int8, Err("22003")),
            (V::Float4(f32::NEG_INFINITY), T::Int2, Err("22003")),
            (V::Int8(i64::from(i32::MAX) + 1), T::Int4, Err("22003")),
            (V::Int4(-32769), T::Int2, Err("22003")),
            (V::Int4(-32768), T::Int2, Ok(V::Int2(-32768))),
            (V::Int8(3), T::Float4, Ok(V::Float4(3.0))),
            (V::Float8(1e300), T::Float4, Err("22003")),
            (V::Float8(1e-300), T::Float4, Err("22003")),
            (V::Float8(f64::INFINITY), T::Float4, Ok(V::Float4(f32::INFINITY))),
            (V::Float4(0.1), T::Float8, Ok(V::Float8(f64::from(0.1f32)))),
            (V::Int4(2), T::Bool, Ok(V::Bool(true))),
            (V::Int4(0), T::Bool, Ok(V::Bool(false))),
            (V::Bool(true), T::Int4, Ok(V::Int4(1))),
            (V::Bool(true), T::Int8, Err("42846")),
            (V::Int2(1), T::Bool, Err("42846")),
            (V::Bool(true), T::Text, Ok(V::Text("true".into()))),
            (V::Bool(false), T::Varchar(None), Ok(V::Text("false".into()))),
            (V::Int4(12345), T::Varchar(Some(3)), Ok(V::Text("123".into()))),
            (V::Text("abcdef".into()), T::Varchar(Some(3)), Ok(V::Text("abc".into()))),
            (V::Text("ab".into()), T::Char(4), Ok(V::Text("ab  ".into()))),
            (V::Text("abcdef".into()), T::Char(4), Ok(V::Text("abcd".into()))),
            (V::Text(" 42 ".into()), T::Int4, Ok(V::Int4(42))),
            (V::Text("x".into()), T::Int4, Err("22P02")),
            (V::Text("yes".into()), T::Bool, Ok(V::Bool(true))),
            (V::Text("\\x0aff".into()), T::Bytea, Ok(V::Bytea(vec![0x0a, 0xff]))),
            (V::Bytea(vec![0x0a, 0xff]), T::Text, Ok(V::Text("\\x0aff".into()))),
            (V::Timestamp(0), T::Text, Ok(V::Text("1970-01-01 00:00:00".into()))),
            (V::Text("1970-01-01 00:00:01".into()), T::Timestamp, Ok(V::Timestamp(1_000_000))),
            (V::Timestamp(0), T::Int8, Err("42846")),
            (V::Int8(0), T::Timestamp, Err("42846")),
            (V::Bytea(vec![]), T::Int4, Err("42846")),
            (V::Null, T::Int4, Ok(V::Null)),
        ];
        for (v, to, want) in cases {
            let got = cast(&v, to);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{v:?}::{to}"),
                (Err(e), Err(code)) => assert_eq!(e.state.code(), *code, "{v:?}::{to}: {e}"),
                _ => panic!("{v:?}::{to}: got {got:?}, want {want:?}"),
            }
            if let Some(from) = v.data_type() {
                assert_eq!(can_cast(from, to), !matches!(want, Err("42846")), "can_cast({from}, {to})");
            }
        }
    }

    /// Goal: assignment follows PostgreSQL's assignment casts: varchar(n)
    /// errors when too long unless the excess is spaces, char(n) pads,
    /// numbers narrow with range checks, text does not become a number.
    /// Method: table.
    #[test]
    fn assignment() {
        let cases: Vec<(Value, DataType, std::result::Result<Value, &str>)> = vec![
            (V::Text("abc".into()), T::Varchar(Some(5)), Ok(V::Text("abc".into()))),
            (V::Text("abcde".into()), T::Varchar(Some(5)), Ok(V::Text("abcde".into()))),
            (V::Text("abcdef".into()), T::Varchar(Some(5)), Err("22001")),
            (V::Text("abc   ".into()), T::Varchar(Some(3)), Ok(V::Text("abc".into()))),
            (V::Text("abc  x".into()), T::Varchar(Some(3)), Err("22001")),
            (V::Text("ééé".into()), T::Varchar(Some(3)), Ok(V::Text("ééé".into()))),
            (V::Text("ab".into()), T::Char(4), Ok(V::Text("ab  ".into()))),
            (V::Text("abcd  ".into()), T::Char(4), Ok(V::Text("abcd".into()))),
            (V::Text("abcde".into()), T::Char(4), Err("22001")),
            (V::Text("é".into()), T::Char(2), Ok(V::Text("é ".into()))),
            (V::Int4(12345), T::Varchar(Some(3)), Err("22001")),
            (V::Int4(123), T::Varchar(Some(3)), Ok(V::Text("123".into()))),
            (V::Bool(true), T::Text, Ok(V::Text("true".into()))),
            (V::Float8(0.1), T::Text, Ok(V::Text("0.1".into()))),
            (V::Timestamp(0), T::Varchar(None), Ok(V::Text("1970-01-01 00:00:00".into()))),
            (V::Int8(5), T::Int4, Ok(V::Int4(5))),
            (V::Int8(i64::MAX), T::Int4, Err("22003")),
            (V::Int4(40000), T::Int2, Err("22003")),
            (V::Float8(2.5), T::Int4, Ok(V::Int4(2))),
            (V::Float8(1.5), T::Float4, Ok(V::Float4(1.5))),
            (V::Int2(7), T::Float8, Ok(V::Float8(7.0))),
            (V::Text("1".into()), T::Int4, Err("42804")),
            (V::Text("t".into()), T::Bool, Err("42804")),
            (V::Bool(true), T::Int4, Err("42804")),
            (V::Int4(1), T::Bool, Err("42804")),
            (V::Int4(1), T::Timestamp, Err("42804")),
            (V::Null, T::Int4, Ok(V::Null)),
        ];
        for (v, to, want) in cases {
            let got = assign(&v, to);
            match (&got, &want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{v:?} -> {to}"),
                (Err(e), Err(code)) => assert_eq!(e.state.code(), *code, "{v:?} -> {to}: {e}"),
                _ => panic!("{v:?} -> {to}: got {got:?}, want {want:?}"),
            }
            if let Some(from) = v.data_type() {
                assert_eq!(can_assign(from, to), !matches!(want, Err("42804")), "can_assign({from}, {to})");
            }
        }
    }

    /// Goal: implicit coercion and common types follow the promotion
    /// ladder and the string category. Method: table.
    #[test]
    fn coercion_and_common_types() {
        assert!(can_coerce_implicitly(T::Int2, T::Float8));
        assert!(can_coerce_implicitly(T::Int8, T::Float4));
        assert!(!can_coerce_implicitly(T::Int8, T::Int4));
        assert!(!can_coerce_implicitly(T::Float4, T::Int8));
        assert!(can_coerce_implicitly(T::Varchar(Some(3)), T::Text));
        assert!(can_coerce_implicitly(T::Text, T::Char(3)));
        assert!(!can_coerce_implicitly(T::Int4, T::Text));
        assert!(!can_coerce_implicitly(T::Bool, T::Int4));
        assert_eq!(common_type(T::Int2, T::Int4), Ok(T::Int4));
        assert_eq!(common_type(T::Int8, T::Float4), Ok(T::Float4));
        assert_eq!(common_type(T::Float8, T::Int2), Ok(T::Float8));
        assert_eq!(common_type(T::Varchar(Some(2)), T::Varchar(Some(5))), Ok(T::Varchar(None)));
        assert_eq!(common_type(T::Varchar(Some(2)), T::Text), Ok(T::Text));
        assert_eq!(common_type(T::Char(2), T::Char(2)), Ok(T::Char(2)));
        assert_eq!(common_type(T::Char(2), T::Char(3)), Ok(T::Text));
        assert_eq!(common_type(T::Timestamp, T::Timestamp), Ok(T::Timestamp));
        assert_eq!(common_type(T::Int4, T::Bool).unwrap_err().state, SqlState::DatatypeMismatch);
        assert_eq!(common_type(T::Int4, T::Text).unwrap_err().state, SqlState::DatatypeMismatch);
    }

    /// Goal: floats print as PostgreSQL 12+ prints them (shortest
    /// round-trip digits, exponent past 1e15 / 1e6, below 1e-4).
    /// Method: table of float8 and float4 values against PostgreSQL's text.
    #[test]
    fn float_output() {
        let f8 = [
            (0.1, "0.1"),
            (1.5, "1.5"),
            (1.0, "1"),
            (100.0, "100"),
            (1e20, "1e+20"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (123456789012345.6, "123456789012345.6"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (1e-5, "1e-05"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e100, "1e+100"),
            (1e-300, "1e-300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (-0.0, "-0"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
            (0.1 + 0.2, "0.30000000000000004"),
        ];
        for (f, want) in f8 {
            assert_eq!(to_text(&V::Float8(f)).as_deref(), Some(want), "{f:e}");
            assert_eq!(parse_text(want, T::Float8).map(|v| to_text(&v)), Ok(Some(want.into())));
        }
        let f4 = [
            (0.1f32, "0.1"),
            (1.5, "1.5"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1e6, "1e+06"),
            (1e-5, "1e-05"),
            (3.4028235e38, "3.4028235e+38"),
            (-0.0, "-0"),
            (f32::NAN, "NaN"),
            (f32::NEG_INFINITY, "-Infinity"),
        ];
        for (f, want) in f4 {
            assert_eq!(to_text(&V::Float4(f)).as_deref(), Some(want), "{f:e}");
        }
    }

    /// Goal: other types print as PostgreSQL prints them. Method: table.
    #[test]
    fn other_output() {
        let cases = [
            (V::Bool(true), "t"),
            (V::Bool(false), "f"),
            (V::Int2(-32768), "-32768"),
            (V::Int8(i64::MIN), "-9223372036854775808"),
            (V::Text("héllo".into()), "héllo"),
            (V::Bytea(vec![]), "\\x"),
            (V::Bytea(vec![0, 0x0a, 0xab]), "\\x000aab"),
            (V::Timestamp(0), "1970-01-01 00:00:00"),
            (V::Timestamp(1_500_000), "1970-01-01 00:00:01.5"),
            (V::Timestamp(-1), "1969-12-31 23:59:59.999999"),
            (V::Timestamp(1_796_151_310_123_456), "2026-12-01 18:55:10.123456"),
            (V::Timestamp(951_782_400_000_000), "2000-02-29 00:00:00"),
            (V::Timestamp(253_402_300_800_000_000), "10000-01-01 00:00:00"),
            (V::Timestamp(-62_135_596_800_000_000), "0001-01-01 00:00:00"),
            (V::Timestamp(-62_135_596_800_000_001), "0001-12-31 23:59:59.999999 BC"),
            (V::Timestamp(i64::MAX), "infinity"),
            (V::Timestamp(i64::MIN), "-infinity"),
        ];
        for (v, want) in cases {
            assert_eq!(to_text(&v).as_deref(), Some(want), "{v:?}");
            let back = parse_text(want, v.data_type().unwrap_or(T::Text));
            assert_eq!(back, Ok(v.clone()), "{want}");
        }
        assert_eq!(to_text(&V::Null), None);
        // The extremes of the representable range print without panicking.
        assert!(to_text(&V::Timestamp(i64::MAX - 1)).is_some());
        assert!(to_text(&V::Timestamp(i64::MIN + 1)).is_some());
    }

    /// Goal: text input accepts what PostgreSQL accepts and rejects the
    /// rest with its SQLSTATE. Method: table of (text, type, expected).
    #[test]
    fn text_input() {
        let ts = |y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64, us: i64| {
            V::Timestamp((days_from_civil(y, mo, d) * 86_400 + (h * 60 + mi) * 60 + s) * 1_000_000 + us)
        };
        let cases: Vec<(&str, DataType, std::result::Result<Value, &str>)> = vec![
            ("42", T::Int4, Ok(V::Int4(42))),
            ("  -42\n", T::Int4, Ok(V::Int4(-42))),
            ("+7", T::Int2, Ok(V::Int2(7))),
            ("32767", T::Int2, Ok(V::Int2(32767))),
            ("32768", T::Int2, Err("22003")),
            ("-32768", T::Int2, Ok(V::Int2(-32768))),
            ("-2147483648", T::Int4, Ok(V::Int4(i32::MIN))),
            ("2147483648", T::Int4, Err("22003")),
            ("-9223372036854775808", T::Int8, Ok(V::Int8(i64::MIN))),
            ("9223372036854775808", T::Int8, Err("22003")),
            ("99999999999999999999999", T::Int8, Err("22003")),
            ("abc", T::Int4, Err("22P02")),
            ("", T::Int4, Err("22P02")),
            ("-", T::Int4, Err("22P02")),
            ("1 2", T::Int4, Err("22P02")),
            ("1.5", T::Int4, Err("22P02")),
            ("1.5", T::Float8, Ok(V::Float8(1.5))),
            (" -1.5e3 ", T::Float8, Ok(V::Float8(-1500.0))),
            (".5", T::Float8, Ok(V::Float8(0.5))),
            ("5.", T::Float8, Ok(V::Float8(5.0))),
            ("1E-2", T::Float4, Ok(V::Float4(0.01))),
            ("NaN", T::Float8, Ok(V::Float8(f64::NAN))),
            ("infinity", T::Float8, Ok(V::Float8(f64::INFINITY))),
            ("-Infinity", T::Float8, Ok(V::Float8(f64::NEG_INFINITY))),
            ("-INF", T::Float4, Ok(V::Float4(f32::NEG_INFINITY))),
            ("1e400", T::Float8, Err("22003")),
            ("1e-400", T::Float8, Err("22003")),
            ("0e-400", T::Float8, Ok(V::Float8(0.0))),
            ("1e39", T::Float4, Err("22003")),
            ("1e-50", T::Float4, Err("22003")),
            ("e5", T::Float8, Err("22P02")),
            ("1e", T::Float8, Err("22P02")),
            ("abc", T::Float8, Err("22P02")),
            ("infinityx", T::Float8, Err("22P02")),
            ("t", T::Bool, Ok(V::Bool(true))),
            ("TRUE", T::Bool, Ok(V::Bool(true))),
            ("tr", T::Bool, Ok(V::Bool(true))),
            (" yes ", T::Bool, Ok(V::Bool(true))),
            ("on", T::Bool, Ok(V::Bool(true))),
            ("1", T::Bool, Ok(V::Bool(true))),
            ("f", T::Bool, Ok(V::Bool(false))),
            ("fal", T::Bool, Ok(V::Bool(false))),
            ("n", T::Bool, Ok(V::Bool(false))),
            ("OFF", T::Bool, Ok(V::Bool(false))),
            ("of", T::Bool, Ok(V::Bool(false))),
            ("0", T::Bool, Ok(V::Bool(false))),
            ("o", T::Bool, Err("22P02")),
            ("truex", T::Bool, Err("22P02")),
            ("10", T::Bool, Err("22P02")),
            ("", T::Bool, Err("22P02")),
            ("\\x", T::Bytea, Ok(V::Bytea(vec![]))),
            ("\\xDEADbeef", T::Bytea, Ok(V::Bytea(vec![0xde, 0xad, 0xbe, 0xef]))),
            ("\\x de ad", T::Bytea, Ok(V::Bytea(vec![0xde, 0xad]))),
            ("\\xabc", T::Bytea, Err("22023")),
            ("\\xzz", T::Bytea, Err("22023")),
            ("abc", T::Bytea, Ok(V::Bytea(b"abc".to_vec()))),
            ("a\\\\b", T::Bytea, Ok(V::Bytea(b"a\\b".to_vec()))),
            ("\\001\\377", T::Bytea, Ok(V::Bytea(vec![1, 255]))),
            ("\\400", T::Bytea, Err("22P02")),
            ("\\", T::Bytea, Err("22P02")),
            ("abc", T::Text, Ok(V::Text("abc".into()))),
            ("ab", T::Char(3), Ok(V::Text("ab ".into()))),
            ("abcd", T::Varchar(Some(3)), Err("22001")),
            ("2024-02-29", T::Timestamp, Ok(ts(2024, 2, 29, 0, 0, 0, 0))),
            ("2024-02-29 13:45", T::Timestamp, Ok(ts(2024, 2, 29, 13, 45, 0, 0))),
            ("2024-02-29T13:45:07", T::Timestamp, Ok(ts(2024, 2, 29, 13, 45, 7, 0))),
            (" 2024-2-9 1:02:03.5 ", T::Timestamp, Ok(ts(2024, 2, 9, 1, 2, 3, 500_000))),
            // PostgreSQL 15 gives .123456: the fraction is a double (0.12345649...).
            ("2024-01-01 00:00:00.1234565", T::Timestamp, Ok(ts(2024, 1, 1, 0, 0, 0, 123_456))),
            ("2024-01-01 00:00:00.0000005", T::Timestamp, Ok(ts(2024, 1, 1, 0, 0, 0, 0))),
            ("2024-01-01 00:00:59.9999996", T::Timestamp, Ok(ts(2024, 1, 1, 0, 1, 0, 0))),
            ("2024-01-01 00:00:00.9999999", T::Timestamp, Ok(ts(2024, 1, 1, 0, 0, 1, 0))),
            ("2024-01-01 12:00:00+02", T::Timestamp, Ok(ts(2024, 1, 1, 12, 0, 0, 0))),
            ("2024-01-01 12:00:00 -05:30", T::Timestamp, Ok(ts(2024, 1, 1, 12, 0, 0, 0))),
            ("2024-01-01T12:00:00Z", T::Timestamp, Ok(ts(2024, 1, 1, 12, 0, 0, 0))),
            ("2024-01-01 12:00 Europe/Paris", T::Timestamp, Ok(ts(2024, 1, 1, 12, 0, 0, 0))),
            ("2024-01-01 24:00:00", T::Timestamp, Ok(ts(2024, 1, 2, 0, 0, 0, 0))),
            ("0044-03-15 BC", T::Timestamp, Ok(ts(-43, 3, 15, 0, 0, 0, 0))),
            ("epoch", T::Timestamp, Ok(V::Timestamp(0))),
            ("Infinity", T::Timestamp, Ok(V::Timestamp(i64::MAX))),
            ("-infinity", T::Timestamp, Ok(V::Timestamp(i64::MIN))),
            ("now", T::Timestamp, Err("0A000")),
            ("2023-02-29", T::Timestamp, Err("22008")),
            ("2024-13-01", T::Timestamp, Err("22008")),
            ("2024-01-01 24:00:01", T::Timestamp, Err("22008")),
            ("2024-01-01 12:60", T::Timestamp, Err("22008")),
            ("0000-01-01", T::Timestamp, Err("22008")),
            ("9999999-01-01", T::Timestamp, Err("22008")),
            ("2024-01-01 12", T::Timestamp, Err("22007")),
            ("2024/01/01", T::Timestamp, Ok(Value::Timestamp(1_704_067_200_000_000))),
            ("13/2/2026", T::Timestamp, Err("22008")),
            ("Jab 2 2026", T::Timestamp, Err("22007")),
            ("2 Ja 2026", T::Timestamp, Err("22007")),
            ("hello", T::Timestamp, Err("22007")),
            ("", T::Timestamp, Err("22007")),
        ];
        for (s, ty, want) in cases {
            let got = parse_text(s, ty);
            match (&got, &want) {
                // Compare floats through their text so NaN equals NaN.
                (Ok(g), Ok(w)) => assert_eq!(to_text(g), to_text(w), "{s:?}::{ty}"),
                (Err(e), Err(code)) => assert_eq!(e.state.code(), *code, "{s:?}::{ty}: {e}"),
                _ => panic!("{s:?}::{ty}: got {got:?}, want {want:?}"),
            }
        }
    }

    /// Goal: LIKE and ILIKE match as PostgreSQL's do, escapes included, and
    /// a pattern that is exponential for a backtracking matcher finishes
    /// at once. Method: table, then a timed pathological case.
    #[test]
    fn like_patterns() {
        let cases = [
            ("abc", "abc", false, Some(true)),
            ("abc", "a%", false, Some(true)),
            ("abc", "%c", false, Some(true)),
            ("abc", "%b%", false, Some(true)),
            ("abc", "a_c", false, Some(true)),
            ("abc", "a__", false, Some(true)),
            ("abc", "a___", false, Some(false)),
            ("abc", "ab", false, Some(false)),
            ("", "", false, Some(true)),
            ("", "%", false, Some(true)),
            ("", "_", false, Some(false)),
            ("abc", "%%%", false, Some(true)),
            ("aXbXc", "a%b%c", false, Some(true)),
            ("mississippi", "%iss%ppi", false, Some(true)),
            ("mississippi", "m%iss%iss%", false, Some(true)),
            ("mississippi", "m%iss%iss%x", false, Some(false)),
            ("50%", "50\\%", false, Some(true)),
            ("500", "50\\%", false, Some(false)),
            ("a_b", "a\\_b", false, Some(true)),
            ("axb", "a\\_b", false, Some(false)),
            ("a\\b", "a\\\\b", false, Some(true)),
            ("abc", "\\a\\b\\c", false, Some(true)),
            ("héllo", "h_llo", false, Some(true)),
            ("ABC", "abc", false, Some(false)),
            ("ABC", "abc", true, Some(true)),
            ("ÉTÉ", "%té", true, Some(true)),
            ("abc", "A_C", true, Some(true)),
        ];
        for (t, p, ci, want) in cases {
            let got = like(&V::Text(t.into()), &V::Text(p.into()), ci).unwrap();
            assert_eq!(got, want.map_or(V::Null, V::Bool), "{t:?} LIKE {p:?} (ci={ci})");
        }
        assert_eq!(like(&V::Null, &V::Text("%".into()), false), Ok(V::Null));
        assert_eq!(like(&V::Text("a".into()), &V::Null, true), Ok(V::Null));
        assert_eq!(state(like(&V::Text("a".into()), &V::Text("a\\".into()), false)), "22025");
        assert_eq!(state(like(&V::Int4(1), &V::Text("1".into()), false)), "42883");
        assert_eq!(like(&V::Bytea(b"a%c".to_vec()), &V::Bytea(b"a\\%_".to_vec()), false), Ok(V::Bool(true)));
        assert_eq!(like_with_escape(&V::Text("a\\b".into()), &V::Text("a\\b".into()), false, None), Ok(V::Bool(true)));
        assert_eq!(
            like_with_escape(&V::Text("a%".into()), &V::Text("a#%".into()), false, Some('#')),
            Ok(V::Bool(true))
        );

        let text = "a".repeat(100_000);
        let start = std::time::Instant::now();
        let got = like(&V::Text(text), &V::Text("%a%a%a%a%a%a%a%a%b".into()), false);
        assert_eq!(got, Ok(V::Bool(false)));
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "took {:?}", start.elapsed());
    }

    /// Goal: sort_cmp's order across kinds and within numbers, as
    /// documented. Method: sort a shuffled list and compare.
    #[test]
    fn sort_order() {
        let want = vec![
            V::Bool(false),
            V::Bool(true),
            V::Float8(f64::NEG_INFINITY),
            V::Int8(i64::MIN),
            V::Int2(-1),
            V::Float4(-0.5),
            V::Int4(0),
            V::Float8(0.5),
            V::Int8(9_007_199_254_740_992),
            V::Int8(9_007_199_254_740_993),
            V::Float8(9_007_199_254_740_994.0),
            V::Int8(i64::MAX),
            V::Float8(9_223_372_036_854_775_808.0),
            V::Float4(f32::INFINITY),
            V::Float8(f64::NAN),
            V::Text("B".into()),
            V::Text("a".into()),
            V::Text("é".into()),
            V::Bytea(vec![]),
            V::Bytea(vec![0]),
            V::Timestamp(i64::MIN),
            V::Timestamp(0),
            V::Null,
        ];
        let mut got = want.clone();
        got.reverse();
        got.swap(3, 17);
        got.sort_by(sort_cmp);
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }

    fn number() -> impl Strategy<Value = Value> {
        let edges = vec![
            V::Int8(i64::MAX),
            V::Int8(i64::MIN),
            V::Int8(9_007_199_254_740_993),
            V::Int8(-9_007_199_254_740_993),
            V::Float8(9_007_199_254_740_992.0),
            V::Float8(9_223_372_036_854_775_808.0),
            V::Float8(-9_223_372_036_854_775_808.0),
            V::Float8(f64::NAN),
            V::Float4(f32::NAN),
            V::Float8(f64::INFINITY),
            V::Float4(f32::NEG_INFINITY),
            V::Float8(-0.0),
            V::Float4(0.1),
            V::Float8(0.1),
        ];
        prop_oneof![
            any::<i16>().prop_map(V::Int2),
            any::<i32>().prop_map(V::Int4),
            any::<i64>().prop_map(V::Int8),
            any::<f32>().prop_map(V::Float4),
            any::<f64>().prop_map(V::Float8),
            // Small values, so that equal values of different widths meet.
            (-4i16..4).prop_map(V::Int2),
            (-4i64..4).prop_map(V::Int8),
            (-8i32..8).prop_map(|h| V::Float4(h as f32 / 2.0)),
            (-8i32..8).prop_map(|h| V::Float8(f64::from(h) / 2.0)),
            prop::sample::select(edges),
            Just(V::Null),
        ]
    }

    proptest! {
        /// Goal: sort_cmp is a total order on mixed-width numbers (with
        /// NaN, infinities, values beyond 2^53, NULL) and compare() agrees
        /// with it on non-NULL values. Method: random triples; check
        /// reflexivity, antisymmetry, transitivity, agreement.
        #[test]
        fn sort_cmp_is_a_total_order(a in number(), b in number(), c in number()) {
            prop_assert_eq!(sort_cmp(&a, &a), Ordering::Equal);
            prop_assert_eq!(sort_cmp(&a, &b), sort_cmp(&b, &a).reverse());
            let (ab, bc, ac) = (sort_cmp(&a, &b), sort_cmp(&b, &c), sort_cmp(&a, &c));
            if ab != Ordering::Greater && bc != Ordering::Greater {
                prop_assert_ne!(ac, Ordering::Greater, "{:?} <= {:?} <= {:?}", a, b, c);
            }
            if ab == Ordering::Equal && bc == Ordering::Equal {
                prop_assert_eq!(ac, Ordering::Equal);
            }
            if !a.is_null() && !b.is_null() {
                prop_assert_eq!(compare(&a, &b), Ok(Some(ab)));
            } else {
                prop_assert_eq!(compare(&a, &b), Ok(None));
            }
        }

        /// Goal: every float prints as text that reads back to the same
        /// value. Method: random f64 and f32 through to_text/parse_text.
        #[test]
        fn float_text_round_trips(f in any::<f64>(), g in any::<f32>()) {
            let t = to_text(&V::Float8(f)).unwrap();
            let back = parse_text(&t, T::Float8).unwrap();
            prop_assert_eq!(to_text(&back), Some(t.clone()));
            if let V::Float8(b) = back {
                prop_assert!(b.to_bits() == f.to_bits() || (b.is_nan() && f.is_nan()), "{}", t);
            }
            let t = to_text(&V::Float4(g)).unwrap();
            let back = parse_text(&t, T::Float4).unwrap();
            if let V::Float4(b) = back {
                prop_assert!(b.to_bits() == g.to_bits() || (b.is_nan() && g.is_nan()), "{}", t);
            }
        }

        /// Goal: every timestamp prints as text that reads back to itself.
        /// Method: random microseconds across the whole i64 range.
        #[test]
        fn timestamp_text_round_trips(us in any::<i64>()) {
            let t = to_text(&V::Timestamp(us)).unwrap();
            prop_assert_eq!(parse_text(&t, T::Timestamp), Ok(V::Timestamp(us)), "{}", t);
        }

        /// Goal: every time of day prints as text that reads back to it,
        /// in its binary order. Method: random times, 24:00:00 included.
        #[test]
        fn time_text_round_trips(us in 0..=crate::types::TIME_MICROS_MAX, other in 0..=crate::types::TIME_MICROS_MAX) {
            let t = to_text(&V::Time(us)).unwrap();
            prop_assert_eq!(parse_text(&t, T::Time), Ok(V::Time(us)), "{}", t);
            prop_assert_eq!(t.cmp(&to_text(&V::Time(other)).unwrap()), us.cmp(&other));
        }

        /// Goal: timestamptz, date, interval and uuid values print as text
        /// that reads back to the same value (a driver that reads a value
        /// and sends it back changes nothing). Method: random values over
        /// each type's range (intervals' microseconds within 2^62, where
        /// hours times 3,600,000,000 stay an i64).
        #[test]
        fn temporal_and_uuid_text_round_trips(
            us in any::<i64>(),
            days in -crate::types::DATE_DAYS_MAX..=crate::types::DATE_DAYS_MAX,
            months in any::<i32>(),
            interval_days in any::<i32>(),
            micros in -(1i64 << 62)..(1i64 << 62),
            uuid in any::<[u8; 16]>(),
        ) {
            let values = [
                (V::TimestampTz(us), T::TimestampTz),
                (V::Date(days), T::Date),
                (V::Interval(crate::types::Interval { months, days: interval_days, micros }), T::Interval),
                (V::Uuid(uuid), T::Uuid),
            ];
            for (value, ty) in values {
                let t = to_text(&value).unwrap();
                prop_assert_eq!(parse_text(&t, ty), Ok(value.clone()), "{}", t);
            }
        }
    }
}
