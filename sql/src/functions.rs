//! Scalar functions: strings, math, `greatest`/`least`, as PostgreSQL 15
//! defines them.
//!
//! A function call is resolved once, by the binder, and evaluated once per
//! row, by the executor:
//!
//! ```text
//!   binder:    resolve("round", [Some(int4), Some(int4)])
//!                -> Signature { params: [float8, int4], ret: float8 }
//!              (the binder may coerce each argument to its param type)
//!   executor:  call("round", [Int4(1234), Int4(-2)]) -> Float8(1200.0)
//! ```
//!
//! [`resolve`] picks the overload the way PostgreSQL's function lookup
//! does on our types: an argument matches a parameter it converts to
//! implicitly (`int2 -> int4`, any number -> `float8`, any string type ->
//! `text`), an untyped NULL (`None`) matches anything, and the first
//! matching overload in the table wins (text before bytea, int4 before
//! int8, as PostgreSQL prefers). Nothing matching is 42883
//! `function foo(integer) does not exist`, whatever the reason: unknown
//! name, wrong number of arguments, or wrong types.
//!
//! [`call`] takes values either coerced to the signature's parameter types
//! or left as the binder typed them; both give the same answer. Most
//! functions are strict (NULL in, NULL out); `concat` and `concat_ws` skip
//! NULL arguments, `greatest` and `least` ignore them and are NULL only
//! when every argument is.
//!
//! # Invariants
//!
//! - No argument value panics: every width overflow is an error, every
//!   argument count and type is checked again by `call` itself.
//! - No function allocates without bound: a result that would exceed
//!   [`RESULT_BYTES_MAX`] (`repeat`, `lpad`, `rpad`, `replace`, `concat`)
//!   is refused with 54000 before anything is allocated.
//!
//! # Where we differ from PostgreSQL
//!
//! We have no `numeric` type, so what PostgreSQL computes in `numeric` we
//! compute in `float8`: `ceil`, `floor`, `round`, `trunc`, `sign`, `sqrt`
//! and friends on integers return `float8` (PostgreSQL's own choice for
//! integer arguments of these functions, by its preferred-type rule).
//! `round(x, n)`, `trunc(x, n)` and `log(b, x)` exist in PostgreSQL only
//! for `numeric`; ours take `float8` and work on the shortest decimal text
//! of `x`, so `round(2.675, 2)` is 2.68 as in `numeric`, rounding half away
//! from zero, while one-argument `round` on `float8` rounds half to even
//! (C's `rint`), as PostgreSQL's does. `lower`, `upper`, `initcap` and
//! ILIKE use Unicode case mapping (PostgreSQL under the C collation maps
//! ASCII only). The 2201E/2201F/22011 SQLSTATEs PostgreSQL uses for bad
//! logarithm/power/substring arguments are not in [`SqlState`]: those
//! errors carry 22023 (invalid parameter value) with PostgreSQL's message.

mod jsonb;
mod to_char;
mod to_date;

use std::f64::consts::PI;

use crate::error::{Error, Result, SqlState};
use crate::ops::{self, numeric, BinaryOp};
use crate::sql_err;
use crate::types::{DataType, Value};

/// The largest string or bytea a function may produce: a statement must
/// never allocate without bound ([`crate::limits::VALUE_BYTES_MAX`]).
pub const RESULT_BYTES_MAX: usize = crate::limits::VALUE_BYTES_MAX;

/// A resolved function: the type each argument should be coerced to, and
/// the result type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub params: Vec<DataType>,
    pub ret: DataType,
}

/// A parameter kind of a fixed-signature overload.
#[derive(Debug, Clone, Copy)]
enum Param {
    /// text (any string type converts)
    Text,
    /// int4 (int2 converts)
    Int,
    /// int8 (int2, int4 convert)
    BigInt,
    /// float8 (any number converts)
    Float,
    /// numeric (only a numeric: its overloads come before the float8 ones
    /// they would otherwise take from it)
    Numeric,
    /// numeric (an integer converts: `round(1234, -2)` is numeric, as
    /// PostgreSQL has no other)
    Exact,
    Bytea,
    /// timestamp (a string literal converts)
    Timestamp,
    /// timestamptz (a string literal converts)
    TimestampTz,
    Interval,
    Date,
    Time,
    Bool,
}

impl Param {
    fn accepts(self, arg: Option<DataType>) -> bool {
        let Some(t) = arg else { return true };
        match self {
            Param::Text => t.is_string(),
            Param::Int => matches!(t, DataType::Int2 | DataType::Int4),
            Param::BigInt => t.is_integer(),
            Param::Float => t.is_numeric(),
            Param::Numeric => t.is_decimal(),
            Param::Exact => t.is_integer() || t.is_decimal(),
            Param::Bytea => t == DataType::Bytea,
            Param::Timestamp => t == DataType::Timestamp,
            Param::TimestampTz => t == DataType::TimestampTz,
            Param::Interval => t == DataType::Interval,
            Param::Date => t == DataType::Date,
            Param::Time => t == DataType::Time,
            Param::Bool => t == DataType::Bool,
        }
    }

    fn data_type(self) -> DataType {
        match self {
            Param::Text => DataType::Text,
            Param::Int => DataType::Int4,
            Param::BigInt => DataType::Int8,
            Param::Float => DataType::Float8,
            Param::Numeric | Param::Exact => DataType::Numeric(None),
            Param::Bytea => DataType::Bytea,
            Param::Timestamp => DataType::Timestamp,
            Param::TimestampTz => DataType::TimestampTz,
            Param::Interval => DataType::Interval,
            Param::Date => DataType::Date,
            Param::Time => DataType::Time,
            Param::Bool => DataType::Bool,
        }
    }
}

use DataType as T;
use Param as P;

/// The fixed-signature overloads, in order of preference.
const OVERLOADS: &[(&str, &[Param], DataType)] = &[
    ("lower", &[P::Text], T::Text),
    ("upper", &[P::Text], T::Text),
    ("initcap", &[P::Text], T::Text),
    ("like_escape", &[P::Text, P::Text], T::Text),
    // The bitwise operators (&, |, #, <<, >>, ~), as the planner binds them.
    ("bitand", &[P::Int, P::Int], T::Int4),
    ("bitand", &[P::BigInt, P::BigInt], T::Int8),
    ("bitor", &[P::Int, P::Int], T::Int4),
    ("bitor", &[P::BigInt, P::BigInt], T::Int8),
    ("bitxor", &[P::Int, P::Int], T::Int4),
    ("bitxor", &[P::BigInt, P::BigInt], T::Int8),
    ("shiftleft", &[P::Int, P::Int], T::Int4),
    ("shiftleft", &[P::BigInt, P::Int], T::Int8),
    ("shiftright", &[P::Int, P::Int], T::Int4),
    ("shiftright", &[P::BigInt, P::Int], T::Int8),
    ("bitnot", &[P::Int], T::Int4),
    ("bitnot", &[P::BigInt], T::Int8),
    // extract(field FROM ts): date_part's fields as numeric (PostgreSQL
    // 14 and later); date_part stays double precision.
    ("extract", &[P::Text, P::Date], T::Numeric(None)),
    ("extract", &[P::Text, P::Timestamp], T::Numeric(None)),
    ("extract", &[P::Text, P::TimestampTz], T::Numeric(None)),
    ("extract", &[P::Text, P::Interval], T::Numeric(None)),
    ("extract", &[P::Text, P::Time], T::Numeric(None)),
    ("date_part", &[P::Text, P::Timestamp], T::Float8),
    ("date_part", &[P::Text, P::TimestampTz], T::Float8),
    ("date_part", &[P::Text, P::Interval], T::Float8),
    ("date_part", &[P::Text, P::Date], T::Float8),
    ("date_part", &[P::Text, P::Time], T::Float8),
    ("date_trunc", &[P::Text, P::Timestamp], T::Timestamp),
    // On the session zone's calendar.
    ("date_trunc", &[P::Text, P::TimestampTz], T::TimestampTz),
    // A date truncates as its midnight, a timestamptz (PostgreSQL's cast).
    ("date_trunc", &[P::Text, P::Date], T::TimestampTz),
    ("reverse", &[P::Text], T::Text),
    ("btrim", &[P::Text], T::Text),
    ("btrim", &[P::Text, P::Text], T::Text),
    ("trim", &[P::Text], T::Text),
    ("trim", &[P::Text, P::Text], T::Text),
    ("ltrim", &[P::Text], T::Text),
    ("ltrim", &[P::Text, P::Text], T::Text),
    ("rtrim", &[P::Text], T::Text),
    ("rtrim", &[P::Text, P::Text], T::Text),
    ("length", &[P::Text], T::Int4),
    ("length", &[P::Bytea], T::Int4),
    ("char_length", &[P::Text], T::Int4),
    ("character_length", &[P::Text], T::Int4),
    ("octet_length", &[P::Text], T::Int4),
    ("octet_length", &[P::Bytea], T::Int4),
    ("bit_length", &[P::Text], T::Int4),
    ("bit_length", &[P::Bytea], T::Int4),
    ("substr", &[P::Text, P::Int], T::Text),
    ("substr", &[P::Text, P::Int, P::Int], T::Text),
    ("substr", &[P::Bytea, P::Int], T::Bytea),
    ("substr", &[P::Bytea, P::Int, P::Int], T::Bytea),
    ("substring", &[P::Text, P::Int], T::Text),
    ("substring", &[P::Text, P::Int, P::Int], T::Text),
    ("substring", &[P::Bytea, P::Int], T::Bytea),
    ("substring", &[P::Bytea, P::Int, P::Int], T::Bytea),
    ("replace", &[P::Text, P::Text, P::Text], T::Text),
    ("left", &[P::Text, P::Int], T::Text),
    ("right", &[P::Text, P::Int], T::Text),
    ("repeat", &[P::Text, P::Int], T::Text),
    ("lpad", &[P::Text, P::Int], T::Text),
    ("lpad", &[P::Text, P::Int, P::Text], T::Text),
    ("rpad", &[P::Text, P::Int], T::Text),
    ("rpad", &[P::Text, P::Int, P::Text], T::Text),
    ("strpos", &[P::Text, P::Text], T::Int4),
    ("split_part", &[P::Text, P::Text, P::Int], T::Text),
    ("starts_with", &[P::Text, P::Text], T::Bool),
    // The session's settings (evaluated by the executor, which has them).
    ("current_setting", &[P::Text], T::Text),
    ("current_setting", &[P::Text, P::Bool], T::Text),
    ("set_config", &[P::Text, P::Text, P::Bool], T::Text),
    // Waits on the session's engine (the executor's `sleep`); void as empty text.
    ("pg_sleep", &[P::Float], T::Text),
    ("pg_sleep_for", &[P::Interval], T::Text),
    // Sequences (evaluated by the executor, which has the session's
    // values: `sequence`): by name, or by oid (`'s'::regclass`).
    ("nextval", &[P::Text], T::Int8),
    ("nextval", &[P::BigInt], T::Int8),
    ("currval", &[P::Text], T::Int8),
    ("currval", &[P::BigInt], T::Int8),
    ("setval", &[P::Text, P::BigInt], T::Int8),
    ("setval", &[P::BigInt, P::BigInt], T::Int8),
    ("setval", &[P::Text, P::BigInt, P::Bool], T::Int8),
    ("setval", &[P::BigInt, P::BigInt, P::Bool], T::Int8),
    ("lastval", &[], T::Int8),
    // The session's process id (evaluated by the executor, which has it).
    ("pg_backend_pid", &[], T::Int4),
    // Stop another session of this gateway (evaluated by the executor,
    // which has them: `backends`).
    ("pg_cancel_backend", &[P::Int], T::Bool),
    ("pg_terminate_backend", &[P::Int], T::Bool),
    ("pg_terminate_backend", &[P::Int, P::BigInt], T::Bool),
    // SERIAL and IDENTITY columns have no sequence here (`planner`).
    // Advisory locks (evaluated by the executor, which has the session's:
    // `advisory`). PostgreSQL's void results are empty text here.
    ("pg_advisory_lock", &[P::BigInt], T::Text),
    ("pg_advisory_lock", &[P::Int, P::Int], T::Text),
    ("pg_advisory_lock_shared", &[P::BigInt], T::Text),
    ("pg_advisory_lock_shared", &[P::Int, P::Int], T::Text),
    ("pg_advisory_xact_lock", &[P::BigInt], T::Text),
    ("pg_advisory_xact_lock", &[P::Int, P::Int], T::Text),
    ("pg_advisory_xact_lock_shared", &[P::BigInt], T::Text),
    ("pg_advisory_xact_lock_shared", &[P::Int, P::Int], T::Text),
    ("pg_try_advisory_lock", &[P::BigInt], T::Bool),
    ("pg_try_advisory_lock", &[P::Int, P::Int], T::Bool),
    ("pg_try_advisory_lock_shared", &[P::BigInt], T::Bool),
    ("pg_try_advisory_lock_shared", &[P::Int, P::Int], T::Bool),
    ("pg_try_advisory_xact_lock", &[P::BigInt], T::Bool),
    ("pg_try_advisory_xact_lock", &[P::Int, P::Int], T::Bool),
    ("pg_try_advisory_xact_lock_shared", &[P::BigInt], T::Bool),
    ("pg_try_advisory_xact_lock_shared", &[P::Int, P::Int], T::Bool),
    ("pg_advisory_unlock", &[P::BigInt], T::Bool),
    ("pg_advisory_unlock", &[P::Int, P::Int], T::Bool),
    ("pg_advisory_unlock_shared", &[P::BigInt], T::Bool),
    ("pg_advisory_unlock_shared", &[P::Int, P::Int], T::Bool),
    ("pg_advisory_unlock_all", &[], T::Text),
    ("md5", &[P::Text], T::Text),
    ("quote_ident", &[P::Text], T::Text),
    ("quote_literal", &[P::Text], T::Text),
    ("quote_nullable", &[P::Text], T::Text),
    ("md5", &[P::Bytea], T::Text),
    ("sha224", &[P::Bytea], T::Bytea),
    ("sha256", &[P::Bytea], T::Bytea),
    ("sha384", &[P::Bytea], T::Bytea),
    ("sha512", &[P::Bytea], T::Bytea),
    // Binary as text: hex, base64 (lines of 76 characters), escape.
    ("encode", &[P::Bytea, P::Text], T::Text),
    ("decode", &[P::Text, P::Text], T::Bytea),
    // SIMILAR TO's pattern as a regular expression (PostgreSQL's
    // function, which the binder calls for `x SIMILAR TO p`).
    ("similar_to_escape", &[P::Text], T::Text),
    ("similar_to_escape", &[P::Text, P::Text], T::Text),
    ("regexp_split_to_array", &[P::Text, P::Text], T::Array(&T::Text)),
    ("regexp_match", &[P::Text, P::Text], T::Array(&T::Text)),
    ("regexp_match", &[P::Text, P::Text, P::Text], T::Array(&T::Text)),
    // regexp_matches (set-returning) in FROM: the matches' starts
    // unnested, each match's groups at its start (planner).
    ("regexp_match_starts", &[P::Text, P::Text, P::Text], T::Array(&T::Int4)),
    ("regexp_match_at", &[P::Text, P::Text, P::Text, P::Int], T::Array(&T::Text)),
    ("regexp_replace", &[P::Text, P::Text, P::Text], T::Text),
    ("regexp_replace", &[P::Text, P::Text, P::Text, P::Text], T::Text),
    ("string_to_array", &[P::Text, P::Text], T::Array(&T::Text)),
    ("string_to_array", &[P::Text, P::Text, P::Text], T::Array(&T::Text)),
    ("to_timestamp", &[P::Float], T::TimestampTz),
    ("to_timestamp", &[P::Text, P::Text], T::TimestampTz),
    ("to_date", &[P::Text, P::Text], T::Date),
    ("make_date", &[P::Int, P::Int, P::Int], T::Date),
    ("make_timestamp", &[P::Int, P::Int, P::Int, P::Int, P::Int, P::Float], T::Timestamp),
    ("make_time", &[P::Int, P::Int, P::Float], T::Time),
    ("chr", &[P::Int], T::Text),
    ("ascii", &[P::Text], T::Int4),
    ("to_hex", &[P::Int], T::Text),
    ("to_hex", &[P::BigInt], T::Text),
    ("ceil", &[P::Numeric], T::Numeric(None)),
    ("ceiling", &[P::Numeric], T::Numeric(None)),
    ("floor", &[P::Numeric], T::Numeric(None)),
    ("gcd", &[P::Int, P::Int], T::Int4),
    ("gcd", &[P::BigInt, P::BigInt], T::Int8),
    ("lcm", &[P::Int, P::Int], T::Int4),
    ("lcm", &[P::BigInt, P::BigInt], T::Int8),
    ("width_bucket", &[P::Float, P::Float, P::Float, P::Int], T::Int4),
    ("isfinite", &[P::Date], T::Bool),
    ("isfinite", &[P::Timestamp], T::Bool),
    ("isfinite", &[P::TimestampTz], T::Bool),
    ("isfinite", &[P::Interval], T::Bool),
    ("round", &[P::Numeric], T::Numeric(None)),
    ("round", &[P::Exact, P::Int], T::Numeric(None)),
    ("trunc", &[P::Numeric], T::Numeric(None)),
    ("trunc", &[P::Exact, P::Int], T::Numeric(None)),
    ("sign", &[P::Numeric], T::Numeric(None)),
    ("ceil", &[P::Float], T::Float8),
    ("ceiling", &[P::Float], T::Float8),
    ("floor", &[P::Float], T::Float8),
    ("round", &[P::Float], T::Float8),
    ("round", &[P::Float, P::Int], T::Float8),
    ("trunc", &[P::Float], T::Float8),
    ("trunc", &[P::Float, P::Int], T::Float8),
    ("sqrt", &[P::Float], T::Float8),
    ("cbrt", &[P::Float], T::Float8),
    ("exp", &[P::Float], T::Float8),
    ("ln", &[P::Float], T::Float8),
    ("log", &[P::Float], T::Float8),
    ("log", &[P::Float, P::Float], T::Float8),
    ("log10", &[P::Float], T::Float8),
    ("power", &[P::Float, P::Float], T::Float8),
    ("pow", &[P::Float, P::Float], T::Float8),
    ("sign", &[P::Float], T::Float8),
    ("pi", &[], T::Float8),
    ("random", &[], T::Float8),
    ("gen_random_uuid", &[], T::Uuid),
    // uuid-ossp's name for the same (the extension is built in: `system`).
    ("uuid_generate_v4", &[], T::Uuid),
    ("unique_rowid", &[], T::Int8),
    ("age", &[P::Timestamp, P::Timestamp], T::Interval),
    ("age", &[P::TimestampTz, P::TimestampTz], T::Interval),
    ("age", &[P::Date, P::Date], T::Interval),
    // `ts AT TIME ZONE zone` (`ops::zone`).
    ("timezone", &[P::Text, P::TimestampTz], T::Timestamp),
    ("timezone", &[P::Text, P::Timestamp], T::TimestampTz),
    ("timezone", &[P::Interval, P::TimestampTz], T::Timestamp),
    ("timezone", &[P::Interval, P::Timestamp], T::TimestampTz),
    ("timezone", &[P::Text, P::Date], T::Timestamp),
    ("timezone", &[P::Interval, P::Date], T::Timestamp),
    // Formatting (`to_char`): numbers, dates and times.
    ("to_char", &[P::BigInt, P::Text], T::Text),
    ("to_char", &[P::Numeric, P::Text], T::Text),
    ("to_char", &[P::Float, P::Text], T::Text),
    ("to_char", &[P::TimestampTz, P::Text], T::Text),
    ("to_char", &[P::Timestamp, P::Text], T::Text),
    ("to_char", &[P::Date, P::Text], T::Text),
    ("to_char", &[P::Interval, P::Text], T::Text),
    ("justify_days", &[P::Interval], T::Interval),
    ("justify_hours", &[P::Interval], T::Interval),
    ("justify_interval", &[P::Interval], T::Interval),
    ("degrees", &[P::Float], T::Float8),
    ("radians", &[P::Float], T::Float8),
    ("sin", &[P::Float], T::Float8),
    ("cos", &[P::Float], T::Float8),
    ("tan", &[P::Float], T::Float8),
    ("asin", &[P::Float], T::Float8),
    ("acos", &[P::Float], T::Float8),
    ("atan", &[P::Float], T::Float8),
    ("atan2", &[P::Float, P::Float], T::Float8),
    // The regular-expression operators' functions.
    ("textregexeq", &[P::Text, P::Text], T::Bool),
    ("textregexne", &[P::Text, P::Text], T::Bool),
    ("texticregexeq", &[P::Text, P::Text], T::Bool),
    ("texticregexne", &[P::Text, P::Text], T::Bool),
    ("pg_size_pretty", &[P::BigInt], T::Text),
    ("to_regtype", &[P::Text], T::Int8),
    // format_type(type oid, typmod): oids are bigint here (`system`).
    ("format_type", &[P::BigInt, P::BigInt], T::Text),
];

/// `quote_literal`: `s` as a string literal; with a backslash in it, an
/// escape string (`E'a\\b'`), as PostgreSQL writes one.
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if s.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

/// PostgreSQL's `format(formatstr, args...)`: `%s` (text; NULL is empty),
/// `%I` (an identifier, `quote_ident`; NULL is 22004), `%L` (a literal,
/// `quote_literal`; NULL is `NULL`), `%%`; each with an optional
/// position `n$`, a `-` flag and a width (a number, `*` or `*n$`).
pub fn format(template: &str, args: &[Option<String>]) -> Result<String> {
    let invalid = |m: &str| Error::new(SqlState::InvalidParameterValue, m.to_string());
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut next_arg = 0usize;
    // A number at the front of `chars`, if any.
    fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<Option<usize>> {
        let mut n: Option<usize> = None;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            chars.next();
            n = Some(
                n.unwrap_or(0)
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(d as usize))
                    .ok_or_else(|| Error::new(SqlState::InvalidParameterValue, "number is out of range"))?,
            );
        }
        Ok(n)
    }
    let arg = |i: usize| -> Result<&Option<String>> {
        args.get(i).ok_or_else(|| Error::new(SqlState::InvalidParameterValue, "too few arguments for format()"))
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        // [n$][-][width | * | *n$]type
        let mut position = None;
        let first = number(&mut chars)?;
        if let Some(n) = first {
            if chars.peek() == Some(&'$') {
                chars.next();
                position = Some(n);
            }
        }
        let mut left = false;
        let mut width = if position.is_none() { first } else { None };
        if width.is_none() {
            if chars.peek() == Some(&'-') {
                chars.next();
                left = true;
            }
            if chars.peek() == Some(&'*') {
                chars.next();
                let star = number(&mut chars)?;
                let index = match star {
                    Some(n) if chars.peek() == Some(&'$') => {
                        chars.next();
                        n.checked_sub(1)
                            .ok_or_else(|| invalid("format specifies argument 0, but arguments are numbered from 1"))?
                    }
                    Some(_) => return Err(invalid("unterminated format() type specifier")),
                    None => {
                        next_arg += 1;
                        next_arg - 1
                    }
                };
                let w: i64 = match arg(index)? {
                    None => 0,
                    Some(s) => s.trim().parse().map_err(|_| invalid("width argument must be an integer"))?,
                };
                if w < 0 {
                    left = true;
                }
                width = Some(usize::try_from(w.unsigned_abs()).unwrap_or(usize::MAX));
            } else {
                width = number(&mut chars)?;
            }
        }
        let Some(kind) = chars.next() else {
            return Err(invalid("unterminated format() type specifier"));
        };
        let index = match position {
            Some(0) => return Err(invalid("format specifies argument 0, but arguments are numbered from 1")),
            Some(n) => {
                next_arg = n;
                n - 1
            }
            None => {
                next_arg += 1;
                next_arg - 1
            }
        };
        let value = arg(index)?;
        let text = match (kind, value) {
            ('s', v) => v.clone().unwrap_or_default(),
            ('I', None) => {
                return Err(Error::new(
                    SqlState::NullValueNotAllowed,
                    "null values cannot be formatted as an SQL identifier",
                ))
            }
            ('I', Some(v)) => crate::system::quote_ident(v),
            ('L', None) => "NULL".to_string(),
            ('L', Some(v)) => quote_literal(v),
            (other, _) => return Err(invalid(&format!("unrecognized format() type specifier \"{other}\""))),
        };
        let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
        if pad > crate::limits::VALUE_BYTES_MAX || out.len() + text.len() + pad > crate::limits::VALUE_BYTES_MAX {
            return sql_err!(
                ProgramLimitExceeded,
                "format()'s result exceeds {} bytes",
                crate::limits::VALUE_BYTES_MAX
            );
        }
        if !left {
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(&text);
        if left {
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    Ok(out)
}

/// PostgreSQL's `pg_size_pretty`: bytes below 10 kB, then kB, MB, GB, TB
/// and PB, each unit used while below 20479 halves of it, rounded half
/// away from zero (its shifts, exactly).
fn size_pretty(bytes: i64) -> String {
    const LIMIT: u64 = 10 * 1024;
    const LIMIT2: u64 = LIMIT * 2 - 1;
    if bytes.unsigned_abs() < LIMIT {
        return format!("{bytes} bytes");
    }
    let rounded = |half: i64| (half + if half < 0 { -1 } else { 1 }) / 2;
    let mut half = bytes >> 9;
    for unit in ["kB", "MB", "GB", "TB"] {
        if half.unsigned_abs() < LIMIT2 {
            return format!("{} {unit}", rounded(half));
        }
        half >>= 10;
    }
    format!("{} PB", rounded(half))
}

/// The most memory one compiled regular expression may take: a pattern is
/// user input and must not allocate without bound.
pub const REGEX_BYTES_MAX: usize = 1024 * 1024;

thread_local! {
    /// The last pattern compiled on this thread: a `WHERE name ~ 'x'` over
    /// many rows compiles it once.
    static LAST_REGEX: std::cell::RefCell<Option<(String, RegexOptions, regex::Regex)>> =
        const { std::cell::RefCell::new(None) };
}

/// How a pattern is read: the PostgreSQL regular expression flags SpanDB
/// takes ([`regex_flags`]). The default is PostgreSQL's: case matters,
/// `.` matches a newline, and `^` and `$` match only at the ends of the
/// string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RegexOptions {
    case_insensitive: bool,
    /// `.` matches a newline (not under `n` or `p`).
    dot_matches_newline: bool,
    /// `^` and `$` also match at the ends of lines (`n`, `w`).
    lines: bool,
    /// Whitespace and `#` comments in the pattern are ignored (`x`).
    expanded: bool,
    /// The pattern is a literal string (`q`).
    literal: bool,
}

impl RegexOptions {
    const DEFAULT: RegexOptions = RegexOptions {
        case_insensitive: false,
        dot_matches_newline: true,
        lines: false,
        expanded: false,
        literal: false,
    };

    fn case_insensitive(case_insensitive: bool) -> RegexOptions {
        RegexOptions { case_insensitive, ..RegexOptions::DEFAULT }
    }
}

/// A regular expression function's `flags` argument: its options, and
/// whether `g` (every match) was given. Flags later in the string win, as
/// in PostgreSQL. `b` and `e` (basic and extended syntax) are 0A000;
/// unknown flags 22023. Newline-sensitive matching (`n`, `p`) keeps a
/// negated bracket (`[^a]`) matching a newline, where PostgreSQL's does
/// not.
fn regex_flags(flags: &str) -> Result<(RegexOptions, bool)> {
    let (mut o, mut global) = (RegexOptions::DEFAULT, false);
    for flag in flags.chars() {
        match flag {
            'c' => o.case_insensitive = false,
            'i' => o.case_insensitive = true,
            'g' => global = true,
            'n' | 'm' => (o.dot_matches_newline, o.lines) = (false, true),
            'p' => (o.dot_matches_newline, o.lines) = (false, false),
            's' => (o.dot_matches_newline, o.lines) = (true, false),
            'w' => (o.dot_matches_newline, o.lines) = (true, true),
            't' => o.expanded = false,
            'x' => o.expanded = true,
            'q' => o.literal = true,
            'b' | 'e' => return sql_err!(FeatureNotSupported, "regular expression option \"{flag}\" is not supported"),
            other => return sql_err!(InvalidParameterValue, "invalid regular expression option: \"{other}\""),
        }
    }
    if o.literal && (o.expanded || !o.dot_matches_newline || o.lines) {
        // As PostgreSQL's regcomp: a literal has no syntax to expand, nor lines.
        return sql_err!(InvalidRegularExpression, "invalid regular expression: invalid argument to regex function");
    }
    Ok((o, global))
}

/// An expanded pattern (flag `x`) without its whitespace and `#`
/// comments, which PostgreSQL drops outside bracket expressions only (so
/// `[ ]` is a space); a backslash keeps the character after it.
fn unexpanded(pattern: &str) -> String {
    let (mut out, mut chars) = (String::with_capacity(pattern.len()), pattern.chars().peekable());
    // In a bracket expression: its members so far, and whether it began
    // with `^` (a `]` first, after any `^`, is a member, not the end).
    let mut bracket: Option<(usize, bool)> = None;
    while let Some(c) = chars.next() {
        match (bracket, c) {
            (_, '\\') => {
                out.push(c);
                out.extend(chars.next());
                bracket = bracket.map(|(n, caret)| (n + 1, caret));
            }
            (Some((0, false)), '^') => {
                out.push(c);
                bracket = Some((0, true));
            }
            (Some((n, _)), ']') if n > 0 => {
                out.push(c);
                bracket = None;
            }
            // A class, collating element or equivalence class
            // (`[:alpha:]`) is one member, whatever it holds.
            (Some((n, caret)), '[') if matches!(chars.peek(), Some(':' | '.' | '=')) => {
                let delimiter = chars.next().expect("peeked");
                out.push(c);
                out.push(delimiter);
                while let Some(d) = chars.next() {
                    out.push(d);
                    if d == delimiter && chars.peek() == Some(&']') {
                        out.extend(chars.next());
                        break;
                    }
                }
                bracket = Some((n + 1, caret));
            }
            (Some((n, caret)), c) => {
                out.push(c);
                bracket = Some((n + 1, caret));
            }
            (None, '[') => {
                out.push(c);
                bracket = Some((0, false));
            }
            (None, '#') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            (None, c) if c.is_whitespace() => {}
            (None, c) => out.push(c),
        }
    }
    out
}

/// Whether `pattern` matches somewhere in `s` (`~`; `~*` ignores case).
/// Patterns are Rust's `regex` syntax, which agrees with PostgreSQL's
/// advanced regular expressions on the common forms (classes, anchors,
/// alternation, repetition) but has no back-references or lookaround:
/// those are 2201B, as is any pattern that does not compile.
fn regex_matches(s: &str, pattern: &str, case_insensitive: bool) -> Result<bool> {
    with_regex(pattern, RegexOptions::case_insensitive(case_insensitive), |re| re.is_match(s))
}

/// `x SIMILAR TO pattern [ESCAPE e]` as a regular expression matching
/// all of `x` (PostgreSQL's `similar_to_escape`): `%` is `.*`, `_` is
/// `.`, `|`, `*`, `+`, `?`, `{m,n}`, `()` and brackets keep their
/// regular-expression meaning, and `.`, `^`, `$` and `\` are literal. The
/// escape (`\` unless given; empty: none) makes the next character
/// literal, but before a letter or digit it is the regular expression's
/// backslash, as in PostgreSQL (`\d` is a digit); one at the very end is
/// ignored, as PostgreSQL ignores it.
fn similar_to_escape(pattern: &str, escape: &str) -> Result<String> {
    let mut chars = escape.chars();
    let escape = match (chars.next(), chars.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        _ => return sql_err!(InvalidEscapeSequence, "invalid escape string"),
    };
    let pattern: Vec<char> = pattern.chars().collect();
    let mut out = String::from("^(?:");
    let (mut escaped, mut in_class) = (false, false);
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        i += 1;
        if escaped {
            escaped = false;
            // (The `regex` crate's meta characters, which it escapes.)
            if c.is_ascii_alphanumeric() || "\\.+*?()|[]{}^$#&-~".contains(c) {
                out.push('\\');
            }
            out.push(c);
        } else if Some(c) == escape {
            escaped = true;
        } else if in_class {
            match c {
                // A POSIX class (`[:digit:]`) is copied whole.
                '[' if pattern.get(i) == Some(&':') => {
                    let end = (i + 1..pattern.len()).find(|&j| pattern[j] == ':' && pattern.get(j + 1) == Some(&']'));
                    match end {
                        Some(j) => {
                            out.extend(&pattern[i - 1..j + 2]);
                            i = j + 2;
                        }
                        None => out.push_str("\\["),
                    }
                }
                ']' => {
                    out.push(']');
                    in_class = false;
                }
                // Literal here, as in POSIX brackets: the regex crate
                // reads `[`, `&&`, `~~` and `--` in a class as set
                // operations (a single `-` stays a range).
                '\\' | '[' | '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if pattern.get(i) == Some(&'-') => out.push_str("\\-"),
                c => out.push(c),
            }
        } else {
            match c {
                '[' => {
                    in_class = true;
                    out.push('[');
                    // A `]` first (after any `^`) is a member, as in POSIX.
                    if pattern.get(i) == Some(&'^') {
                        out.push('^');
                        i += 1;
                    }
                    if pattern.get(i) == Some(&']') {
                        out.push_str("\\]");
                        i += 1;
                    }
                }
                '%' => out.push_str(".*"),
                '_' => out.push('.'),
                '(' => out.push_str("(?:"),
                '.' | '^' | '$' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out.push_str(")$");
    Ok(out)
}

/// `regexp_split_to_array(s, pattern)`: `s` cut at every match of
/// `pattern` (an empty match cuts between characters, as in PostgreSQL).
fn regexp_split(s: &str, pattern: &str) -> Result<Vec<String>> {
    with_regex(pattern, RegexOptions::DEFAULT, |re| {
        let mut parts = Vec::new();
        let mut start = 0;
        for m in re.find_iter(s) {
            if m.start() == m.end() {
                // Between characters: never before the first or at the end.
                if m.start() == 0 || m.start() >= s.len() {
                    continue;
                }
            }
            // Each part is a value of its own: bound them as a result is
            // (as string_to_array does).
            if (parts.len() + 1).saturating_mul(32).saturating_add(s.len()) > RESULT_BYTES_MAX {
                return sql_err!(
                    ProgramLimitExceeded,
                    "regexp_split_to_array's result exceeds {RESULT_BYTES_MAX} bytes"
                );
            }
            parts.push(s[start..m.start()].to_string());
            start = m.end();
        }
        parts.push(s[start..].to_string());
        Ok(parts)
    })?
}

/// `gcd(a, b)` / `lcm(a, b)` of integers (int4 or int8, as the arguments):
/// 22003 when the result does not fit (`gcd(int_min, 0)`).
fn integer_gcd_lcm(name: &str, a: &Value, b: &Value) -> Result<Value> {
    let (x, y) = (a.as_i64().unwrap_or_default(), b.as_i64().unwrap_or_default());
    let (mut p, mut q) = (i128::from(x).abs(), i128::from(y).abs());
    while q != 0 {
        (p, q) = (q, p % q);
    }
    let result = match name {
        "gcd" => p,
        _ if p == 0 => 0,
        _ => (i128::from(x) / p * i128::from(y)).abs(),
    };
    // The bigint form if either argument is one (the binder chose it).
    let wide = matches!(a, Value::Int8(_)) || matches!(b, Value::Int8(_));
    let out_of_range = || {
        Error::new(SqlState::NumericValueOutOfRange, if wide { "bigint out of range" } else { "integer out of range" })
    };
    Ok(match wide {
        true => Value::Int8(i64::try_from(result).map_err(|_| out_of_range())?),
        false => Value::Int4(i32::try_from(result).map_err(|_| out_of_range())?),
    })
}

/// `width_bucket(x, low, high, count)`: which of `count` equal buckets
/// between `low` and `high` holds `x` (0 below, `count + 1` above;
/// reversed when `low > high`), as PostgreSQL's float8 form.
fn width_bucket(x: f64, low: f64, high: f64, count: i32) -> Result<Value> {
    if count <= 0 {
        return sql_err!(InvalidArgumentForWidthBucket, "count must be greater than zero");
    }
    if low == high {
        return sql_err!(InvalidArgumentForWidthBucket, "lower bound cannot equal upper bound");
    }
    if x.is_nan() || low.is_nan() || high.is_nan() || !low.is_finite() || !high.is_finite() {
        return sql_err!(InvalidArgumentForWidthBucket, "lower and upper bounds must be finite");
    }
    let n = f64::from(count);
    // Halves, where the width would overflow (bounds near ±f64::MAX).
    let share = |from: f64, to: f64, at: f64| match (to - from).is_finite() {
        true => (at - from) / (to - from),
        false => (at / 2.0 - from / 2.0) / (to / 2.0 - from / 2.0),
    };
    let bucket = if low < high {
        match x {
            x if x < low => 0.0,
            x if x >= high => n + 1.0,
            x => (share(low, high, x) * n).floor() + 1.0,
        }
    } else {
        match x {
            x if x > low => 0.0,
            x if x <= high => n + 1.0,
            x => (share(low, high, x) * n).floor() + 1.0,
        }
    };
    let bucket = bucket.min(n + 1.0);
    if bucket > f64::from(i32::MAX) {
        return sql_err!(NumericValueOutOfRange, "integer out of range");
    }
    Ok(Value::Int4(bucket as i32))
}

/// `regexp_match(s, pattern [, flags])`: the first match's groups as a
/// text array (a group that took no part: NULL), or the whole match when
/// the pattern has no groups; NULL for no match. Flags as
/// [`regex_flags`] takes them; `g` is 22023, as in PostgreSQL (that is
/// `regexp_matches`, a set-returning function).
fn regexp_match(s: &str, pattern: &str, flags: &str) -> Result<Value> {
    let (options, global) = regex_flags(flags)?;
    if global {
        return Err(Error::new(
            SqlState::InvalidParameterValue,
            "regexp_match() does not support the \"global\" option",
        )
        .with_hint("Use the regexp_matches function instead."));
    }
    with_regex(pattern, options, |re| re.captures(s).map_or(Value::Null, |c| match_groups(&c)))
}

/// A match's groups as a text array (a group that took no part: NULL),
/// or the whole match when the pattern has no groups.
fn match_groups(captures: &regex::Captures<'_>) -> Value {
    let groups: Vec<Value> = match captures.len() {
        1 => vec![Value::Text(captures[0].to_string())],
        _ => captures.iter().skip(1).map(|g| g.map_or(Value::Null, |m| Value::Text(m.as_str().to_string()))).collect(),
    };
    Value::Array(&T::Text, groups)
}

/// Where `regexp_matches(s, pattern, flags)`'s rows' matches start (byte
/// offsets): the first match's, or with `g` every match's, an empty match
/// right after another counting, as in PostgreSQL (`regexp_matches('aaa',
/// 'a*', 'g')` is `{aaa}` and `{""}`).
fn regexp_match_starts(s: &str, pattern: &str, flags: &str) -> Result<Value> {
    let (options, global) = regex_flags(flags)?;
    with_regex(pattern, options, |re| {
        let mut starts = Vec::new();
        let mut at = 0;
        while let Some(m) = re.find_at(s, at) {
            let start = i32::try_from(m.start()).map_err(|_| {
                Error::new(SqlState::ProgramLimitExceeded, "regexp_matches' string is too long".to_string())
            })?;
            starts.push(Value::Int4(start));
            at = match s[m.end()..].chars().next() {
                _ if !m.is_empty() => m.end(),
                Some(c) => m.end() + c.len_utf8(),
                None => break,
            };
            if !global {
                break;
            }
        }
        Ok(Value::Array(&T::Int4, starts))
    })?
}

/// The groups ([`match_groups`]) of the match of `pattern` in `s` that
/// starts at byte `start` (one of [`regexp_match_starts`]'s).
fn regexp_match_at(s: &str, pattern: &str, flags: &str, start: i64) -> Result<Value> {
    let (options, _) = regex_flags(flags)?;
    let Some(at) = usize::try_from(start).ok().filter(|&i| s.is_char_boundary(i)) else {
        return sql_err!(InvalidParameterValue, "regexp_match_at: no character starts at byte {start}");
    };
    with_regex(pattern, options, |re| re.captures_at(s, at).map_or(Value::Null, |c| match_groups(&c)))
}

/// `regexp_replace(source, pattern, replacement [, flags])`: the first
/// match (every one with flag `g`; other flags as [`regex_flags`] takes
/// them) replaced; in the replacement `\1` to `\9` are the groups, `\&`
/// the whole match, `\\` a backslash, and any other backslash itself.
fn regexp_replace(s: &str, pattern: &str, replacement: &str, flags: &str) -> Result<String> {
    let (options, global) = regex_flags(flags)?;
    with_regex(pattern, options, |re| {
        let mut out = String::new();
        // Every piece is measured before it is added: a replacement of
        // many `\&` over a long match must not allocate without bound.
        let push = |out: &mut String, piece: &str| {
            if out.len() + piece.len() > RESULT_BYTES_MAX {
                return sql_err!(ProgramLimitExceeded, "regexp_replace's result exceeds {RESULT_BYTES_MAX} bytes");
            }
            out.push_str(piece);
            Ok(())
        };
        let (mut copied, mut at) = (0, 0);
        // As PostgreSQL's matcher: an empty match right after another
        // match counts (`regexp_replace('aaa', 'a*', '-', 'g')` is `--`),
        // which `captures_iter` skips.
        while let Some(caps) = re.captures_at(s, at) {
            let whole = caps.get(0).expect("group 0 is the match");
            push(&mut out, &s[copied..whole.start()])?;
            let mut rest = replacement;
            while let Some(slash) = rest.find('\\') {
                push(&mut out, &rest[..slash])?;
                let after = &rest[slash + 1..];
                let (piece, skip) = match after.chars().next() {
                    Some(d @ '1'..='9') => {
                        let group = d.to_digit(10).expect("a digit") as usize;
                        (caps.get(group).map_or("", |m| m.as_str()), 1)
                    }
                    Some('&') => (whole.as_str(), 1),
                    Some('\\') => ("\\", 1),
                    _ => ("\\", 0),
                };
                push(&mut out, piece)?;
                rest = &after[skip..];
            }
            push(&mut out, rest)?;
            copied = whole.end();
            at = match s[whole.end()..].chars().next() {
                _ if !whole.is_empty() => whole.end(),
                Some(c) => whole.end() + c.len_utf8(),
                None => break,
            };
            if !global {
                break;
            }
        }
        push(&mut out, &s[copied..])?;
        Ok(out)
    })?
}

/// Runs `f` on `pattern` compiled with `options` (the thread's last
/// pattern is kept).
fn with_regex<T>(pattern: &str, options: RegexOptions, f: impl FnOnce(&regex::Regex) -> T) -> Result<T> {
    LAST_REGEX.with(|last| {
        let mut last = last.borrow_mut();
        if !matches!(&*last, Some((p, o, _)) if p == pattern && *o == options) {
            let source = match (options.literal, options.expanded) {
                (true, _) => regex::escape(pattern),
                (false, true) => unexpanded(pattern),
                (false, false) => pattern.to_string(),
            };
            let compiled = regex::RegexBuilder::new(&source)
                .case_insensitive(options.case_insensitive)
                .dot_matches_new_line(options.dot_matches_newline)
                .multi_line(options.lines)
                .size_limit(REGEX_BYTES_MAX)
                .dfa_size_limit(REGEX_BYTES_MAX)
                .build()
                .map_err(|e| {
                    let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
                    Error::new(SqlState::InvalidRegularExpression, format!("invalid regular expression: {first}"))
                })?;
            *last = Some((pattern.to_string(), options, compiled));
        }
        Ok(f(&last.as_ref().expect("just set").2))
    })
}

/// `string_to_array(s, delimiter [, null_string])`: the fields of `s`
/// (an empty `s`: none; an empty delimiter: `s` whole; a NULL one: each
/// character), fields equal to `null_string` NULL.
fn string_to_array(args: &[Value]) -> Result<Value> {
    let text = |i: usize| match args.get(i) {
        Some(Value::Text(s)) => Some(s.as_str()),
        _ => None,
    };
    let Some(s) = text(0) else { return Ok(Value::Null) };
    let fields: Vec<&str> = match text(1) {
        _ if s.is_empty() => Vec::new(),
        None => s.char_indices().map(|(i, c)| &s[i..i + c.len_utf8()]).collect(),
        Some("") => vec![s],
        Some(delimiter) => s.split(delimiter).collect(),
    };
    // Each element is a value of its own: bound them as a result is.
    if fields.len().saturating_mul(32).saturating_add(s.len()) > RESULT_BYTES_MAX {
        return sql_err!(ProgramLimitExceeded, "string_to_array's result exceeds {RESULT_BYTES_MAX} bytes");
    }
    let null = text(2);
    let items =
        fields.into_iter().map(|f| if Some(f) == null { Value::Null } else { Value::Text(f.to_string()) }).collect();
    Ok(Value::Array(&T::Text, items))
}

/// `to_timestamp(seconds)`: the instant that many seconds after the Unix
/// epoch, to the microsecond; infinities stay infinite.
fn to_timestamp(seconds: f64) -> Result<Value> {
    /// PostgreSQL's earliest timestamp (4714-11-24 BC), in seconds.
    const SECONDS_MIN: f64 = -210_866_803_200.0;
    if seconds.is_nan() {
        return sql_err!(DatetimeFieldOverflow, "timestamp cannot be NaN");
    }
    if seconds.is_infinite() {
        return Ok(Value::TimestampTz(if seconds > 0.0 { i64::MAX } else { i64::MIN }));
    }
    let micros = (seconds * 1e6).round();
    // i64::MAX and MIN are the infinities.
    if seconds < SECONDS_MIN || micros >= i64::MAX as f64 || micros <= i64::MIN as f64 {
        return sql_err!(DatetimeFieldOverflow, "timestamp out of range: \"{seconds}\"");
    }
    Ok(Value::TimestampTz(micros as i64))
}

/// `make_date(year, month, day)` as days since 1970-01-01 (a negative
/// year is BC: -1 is 1 BC; there is no year 0).
fn make_date(year: i64, month: i64, day: i64) -> Result<i32> {
    let out_of_range = || {
        Error::new(
            SqlState::DatetimeFieldOverflow,
            format!("date field value out of range: {year}-{month:02}-{day:02}"),
        )
    };
    let astronomical = match year {
        0 => return Err(out_of_range()),
        y if y < 0 => y + 1,
        y => y,
    };
    let date = i32::try_from(astronomical)
        .ok()
        .zip(u32::try_from(month).ok().zip(u32::try_from(day).ok()))
        .and_then(|(y, (m, d))| chrono::NaiveDate::from_ymd_opt(y, m, d))
        .ok_or_else(out_of_range)?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
    let days = (date - epoch).num_days();
    i32::try_from(days).ok().filter(|d| d.abs() <= crate::types::DATE_DAYS_MAX).ok_or_else(out_of_range)
}

/// `make_timestamp(year, month, day, hour, min, sec)`: hours up to 24:00:00,
/// seconds up to 60 (rolling over), fractions to the microsecond.
fn make_timestamp(args: &[Value]) -> Result<Value> {
    let days = make_date(int_arg(args, 0)?, int_arg(args, 1)?, int_arg(args, 2)?)?;
    let micros = make_clock(int_arg(args, 3)?, int_arg(args, 4)?, float_arg(args, 5)?)?;
    let ts = i64::from(days).checked_mul(86_400_000_000).and_then(|d| d.checked_add(micros));
    match ts {
        Some(ts) if ts != i64::MAX && ts != i64::MIN => Ok(Value::Timestamp(ts)),
        _ => sql_err!(DatetimeFieldOverflow, "timestamp out of range"),
    }
}

/// `encode(bytes, format)`: PostgreSQL's `hex`, `base64` (a newline after
/// every 76 characters) and `escape` (bytes that are not printable ASCII
/// as `\ooo`, a backslash doubled).
fn encode(bytes: &[u8], format: &str) -> Result<String> {
    use base64::Engine as _;
    Ok(match format.to_ascii_lowercase().as_str() {
        "hex" => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        // A newline after every full line of 76, the last too (PostgreSQL's).
        "base64" => {
            let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
            let mut out = String::with_capacity(flat.len() + flat.len() / 76);
            for line in flat.as_bytes().chunks(76) {
                out.push_str(std::str::from_utf8(line).unwrap_or_default());
                if line.len() == 76 {
                    out.push('\n');
                }
            }
            out
        }
        "escape" => {
            let mut out = String::with_capacity(bytes.len());
            for &b in bytes {
                match b {
                    b'\\' => out.push_str("\\\\"),
                    0 | 0x80..=0xFF => out.push_str(&format!("\\{b:03o}")),
                    b => out.push(char::from(b)),
                }
            }
            out
        }
        other => return sql_err!(InvalidParameterValue, "unrecognized encoding: \"{other}\""),
    })
}

/// `decode(text, format)`: the bytes [`encode`] wrote, read as bytea's
/// input reads them (22023 for an unknown format or bad hex or base64,
/// 22P02 for a bad escape, as PostgreSQL).
fn decode(text: &str, format: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    match format.to_ascii_lowercase().as_str() {
        "hex" => ops::bytea_hex(text),
        // (Bits past the last whole byte are ignored, as PostgreSQL does.)
        "base64" => {
            let flat: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let lenient = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
            );
            lenient.decode(flat).map_err(|_| Error::new(SqlState::InvalidParameterValue, "invalid base64 data"))
        }
        "escape" => ops::bytea_escape(text),
        other => sql_err!(InvalidParameterValue, "unrecognized encoding: \"{other}\""),
    }
}

/// `make_time(hour, min, sec)` and a `make_timestamp`'s time of day, in
/// microseconds: hours up to 24:00:00, seconds up to 60 (rolling over),
/// fractions to the microsecond (22008 beyond).
fn make_clock(hour: i64, minute: i64, second: f64) -> Result<i64> {
    let valid = (0..=24).contains(&hour)
        && (0..60).contains(&minute)
        && (0.0..=60.0).contains(&second)
        && (hour < 24 || (minute == 0 && second == 0.0));
    if !valid {
        return sql_err!(DatetimeFieldOverflow, "time field value out of range: {hour}:{minute:02}:{second:02}");
    }
    // PostgreSQL's rint: half to even.
    Ok((hour * 60 + minute) * 60_000_000 + (second * 1e6).round_ties_even() as i64)
}

/// The array functions ([`crate::ops::array`]): `None` if `name(args)` is not
/// one. `array` builds an array of its arguments (the binder casts the
/// result to the array type it inferred); `array_element` is `a[i]`.
fn resolve_array_function(name: &str, args: &[Option<DataType>]) -> Option<Signature> {
    let is_array = |a: Option<DataType>| a.is_none_or(|t| t.element().is_some());
    let is_int = |a: Option<DataType>| a.is_none_or(DataType::is_integer);
    let element = args.first().copied().flatten().and_then(DataType::element).unwrap_or(T::Text);
    let array = DataType::array_of(element)?;
    let ret = match (name, args) {
        ("array", _) => {
            let first = args.iter().flatten().next().copied().unwrap_or(T::Text);
            let ty = DataType::array_of(first)?;
            return Some(Signature { params: args.iter().map(|a| a.unwrap_or(first)).collect(), ret: ty });
        }
        ("array_element", [a, i]) if is_array(*a) && is_int(*i) => {
            return Some(Signature { params: vec![array, T::Int8], ret: element });
        }
        ("array_to_string", [a, sep]) if is_array(*a) && P::Text.accepts(*sep) => T::Text,
        ("array_to_string", [a, sep, null]) if is_array(*a) && P::Text.accepts(*sep) && P::Text.accepts(*null) => {
            T::Text
        }
        ("array_upper" | "array_lower" | "array_length", [a, d]) if is_array(*a) && is_int(*d) => {
            return Some(Signature { params: vec![array, T::Int4], ret: T::Int4 });
        }
        ("cardinality", [a]) if is_array(*a) => T::Int4,
        // An element compared with IS NOT DISTINCT FROM (NULL finds NULL).
        ("array_remove", [a, _]) if is_array(*a) => {
            return Some(Signature { params: vec![array, element], ret: array })
        }
        ("array_position", [a, _]) if is_array(*a) => {
            return Some(Signature { params: vec![array, element], ret: T::Int4 });
        }
        ("array_append", [a, _]) if is_array(*a) => {
            return Some(Signature { params: vec![array, element], ret: array });
        }
        ("array_prepend", [_, a]) if is_array(*a) => {
            let element = a.and_then(DataType::element).unwrap_or(T::Text);
            let array = DataType::array_of(element)?;
            return Some(Signature { params: vec![element, array], ret: array });
        }
        ("array_cat", [a, b]) if is_array(*a) && is_array(*b) => {
            let element = a.or(*b).and_then(DataType::element).unwrap_or(T::Text);
            let array = DataType::array_of(element)?;
            return Some(Signature { params: vec![array, array], ret: array });
        }
        // `@>` (and `<@`, its arguments turned round) and `&&`.
        ("arraycontains" | "arrayoverlap", [a, b]) if is_array(*a) && is_array(*b) => {
            let element = a.or(*b).and_then(DataType::element).unwrap_or(T::Text);
            let array = DataType::array_of(element)?;
            return Some(Signature { params: vec![array, array], ret: T::Bool });
        }
        _ => return None,
    };
    let mut params = vec![array];
    params.extend(args[1..].iter().map(|_| T::Text));
    Some(Signature { params, ret })
}

/// Calls an array function; `None` if `name` is not one.
fn call_array_function(name: &str, args: &[Value]) -> Option<Result<Value>> {
    let items = match args.first() {
        Some(Value::Array(_, items)) => Some(items.as_slice()),
        _ => None,
    };
    let text = |i: usize| match args.get(i) {
        Some(Value::Text(s)) => Some(s.as_str()),
        _ => None,
    };
    let int = |i: usize| args.get(i).and_then(Value::as_i64);
    Some(Ok(match name {
        "array" => {
            let element = args.iter().find_map(Value::data_type).unwrap_or(T::Text);
            match DataType::array_of(element) {
                Some(DataType::Array(e)) => Value::Array(e, args.to_vec()),
                _ => return Some(sql_err!(FeatureNotSupported, "arrays of {element} are not supported")),
            }
        }
        "array_element" => match (items, int(1)) {
            (Some(items), Some(i)) => crate::ops::array::element(items, i),
            _ => Value::Null,
        },
        "array_to_string" => match (items, text(1)) {
            (Some(items), Some(sep)) => match crate::ops::array::join(items, sep, text(2)) {
                Ok(s) => Value::Text(s),
                Err(e) => return Some(Err(e)),
            },
            _ => Value::Null,
        },
        "array_upper" | "array_lower" | "array_length" => match (items, int(1)) {
            (Some(items), Some(d)) => crate::ops::array::bound(items, d, name),
            _ => Value::Null,
        },
        "cardinality" => match items {
            Some(items) => Value::Int4(i32::try_from(items.len()).unwrap_or(i32::MAX)),
            None => Value::Null,
        },
        "array_remove" => match (&args[0], items) {
            (Value::Array(element, _), Some(items)) => {
                let target = args.get(1).unwrap_or(&Value::Null);
                Value::Array(element, items.iter().filter(|v| *v != target).cloned().collect())
            }
            _ => Value::Null,
        },
        // A NULL array is an empty one to these (PostgreSQL's).
        "array_append" | "array_prepend" | "array_cat" => {
            let (front, back) = match name {
                "array_append" => (&args[0], &args[1]),
                _ => (&args[0], args.get(1).unwrap_or(&Value::Null)),
            };
            let mut out: Vec<Value> = Vec::new();
            let mut element: Option<DataType> = None;
            for (v, is_array) in [(front, name != "array_prepend"), (back, name != "array_append")] {
                match (v, is_array) {
                    (Value::Array(e, items), true) => {
                        element = Some(**e);
                        out.extend(items.iter().cloned());
                    }
                    (Value::Null, true) => {}
                    (v, _) => {
                        element = element.or_else(|| v.data_type());
                        out.push(v.clone());
                    }
                }
            }
            if out.len() > crate::limits::MEMORY_ROWS_MAX {
                return Some(sql_err!(
                    ProgramLimitExceeded,
                    "an array may hold at most {} elements",
                    crate::limits::MEMORY_ROWS_MAX
                ));
            }
            // Only NULLs, of no known type: text's, which the binder's
            // cast to the call's type makes the right one.
            let element = element.unwrap_or(DataType::Text).base();
            match DataType::array_of(element) {
                Some(DataType::Array(e)) => Value::Array(e, out),
                _ => return Some(sql_err!(InternalError, "{name} of {element} elements")),
            }
        }
        // PostgreSQL's: a NULL element is equal to nothing, so an array
        // with one contains no other, and is contained in none.
        "arraycontains" | "arrayoverlap" => match (&args[0], args.get(1)) {
            (Value::Array(_, a), Some(Value::Array(_, b))) => {
                let mut found = b.iter().map(|x| {
                    a.iter().any(|y| {
                        !x.is_null() && crate::ops::compare(x, y).ok().flatten() == Some(std::cmp::Ordering::Equal)
                    })
                });
                Value::Bool(if name == "arraycontains" { found.all(|f| f) } else { found.any(|f| f) })
            }
            _ => Value::Null,
        },
        "array_position" => {
            let target = args.get(1).unwrap_or(&Value::Null);
            match items.and_then(|items| items.iter().position(|v| v == target)) {
                Some(i) => Value::Int4(i32::try_from(i + 1).unwrap_or(i32::MAX)),
                None => Value::Null,
            }
        }
        _ => return None,
    }))
}

/// 42883 for `name(args)`, named as PostgreSQL names it.
pub(crate) fn no_function(name: &str, args: &[Option<DataType>]) -> Error {
    let types: Vec<String> = args.iter().map(|a| a.map_or_else(|| "unknown".to_string(), ops::type_name)).collect();
    Error::new(SqlState::UndefinedFunction, format!("function {name}({}) does not exist", types.join(", ")))
}

/// Resolves scalar function `name` (lower case) on arguments of types
/// `args` (`None`: an untyped NULL): the parameter types to coerce the
/// arguments to, and the result type; 42883 if no overload fits.
pub fn resolve(name: &str, args: &[Option<DataType>]) -> Result<Signature> {
    let is_int = |a: &Option<DataType>| a.is_none_or(DataType::is_integer);
    if let Some(signature) = resolve_array_function(name, args) {
        return Ok(signature);
    }
    if let Some((params, ret)) = jsonb::resolve(name, args) {
        if params.len() != args.len() {
            return Err(no_function(name, args));
        }
        return Ok(Signature { params, ret });
    }
    match name {
        "abs" if args.len() == 1 && P::Float.accepts(args[0]) => {
            // abs keeps its argument's type; an untyped NULL is float8
            // (the preferred numeric type).
            let t = args[0].unwrap_or(T::Float8);
            return Ok(Signature { params: vec![t], ret: t });
        }
        "mod" if args.len() == 2 && args.iter().all(|a| is_int(a) || a.is_some_and(DataType::is_decimal)) => {
            let t = match (args[0], args[1]) {
                (Some(a), Some(b)) => ops::binary_result_type(BinaryOp::Mod, a, b)?,
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => T::Int4,
            };
            return Ok(Signature { params: vec![t, t], ret: t });
        }
        "greatest" | "least" if !args.is_empty() => {
            let mut t: Option<DataType> = None;
            for a in args.iter().flatten() {
                t = Some(match t {
                    None => *a,
                    Some(t) => ops::common_type(t, *a)
                        .map_err(|e| Error::new(e.state, format!("{} {}", name.to_uppercase(), e.message)))?,
                });
            }
            let t = t.unwrap_or(T::Text);
            return Ok(Signature { params: vec![t; args.len()], ret: t });
        }
        "concat" if !args.is_empty() => {
            let params = args.iter().map(|a| a.unwrap_or(T::Text)).collect();
            return Ok(Signature { params, ret: T::Text });
        }
        // (VARIADIC "any"): how many arguments are NULL, or are not.
        "num_nulls" | "num_nonnulls" if !args.is_empty() => {
            let params = args.iter().map(|a| a.unwrap_or(T::Text)).collect();
            return Ok(Signature { params, ret: T::Int4 });
        }
        // format(template, VARIADIC "any"): every argument by its text.
        "format" if !args.is_empty() && P::Text.accepts(args[0]) => {
            let params = args.iter().map(|a| a.unwrap_or(T::Text)).collect();
            return Ok(Signature { params, ret: T::Text });
        }
        "concat_ws" if !args.is_empty() && P::Text.accepts(args[0]) => {
            let mut params: Vec<DataType> = args.iter().map(|a| a.unwrap_or(T::Text)).collect();
            params[0] = T::Text;
            return Ok(Signature { params, ret: T::Text });
        }
        _ => {}
    }
    OVERLOADS
        .iter()
        .find(|(n, params, _)| {
            *n == name && params.len() == args.len() && params.iter().zip(args).all(|(p, a)| p.accepts(*a))
        })
        .map(|(_, params, ret)| Signature { params: params.iter().map(|p| p.data_type()).collect(), ret: *ret })
        .ok_or_else(|| no_function(name, args))
}

/// Whether the binder coerces `name`'s arguments to its parameters' types
/// (jsonb's functions, `pg_sleep`'s, `setval`'s, a pid's), where other functions take
/// untyped literals as text and convert what they are given.
pub fn coerces_arguments(name: &str) -> bool {
    jsonb::resolve(name, &[]).is_some()
        || matches!(name, "pg_sleep" | "pg_sleep_for" | "setval" | "pg_cancel_backend" | "pg_terminate_backend")
}

/// Whether `name` (lower case) is a scalar function, for any arguments.
pub fn exists(name: &str) -> bool {
    matches!(
        name,
        "abs" | "mod" | "greatest" | "least" | "concat" | "concat_ws" | "format" | "num_nulls" | "num_nonnulls"
    ) || jsonb::resolve(name, &[]).is_some()
        || OVERLOADS.iter().any(|(n, _, _)| *n == name)
}

/// The result type of scalar function `name` (lower case) on arguments of
/// types `args` (`None`: an untyped NULL), or 42883.
pub fn return_type(name: &str, args: &[Option<DataType>]) -> Result<DataType> {
    resolve(name, args).map(|s| s.ret)
}

/// Calls scalar function `name` on `args` (already of the types
/// `return_type` accepted).
pub fn call(name: &str, args: &[Value]) -> Result<Value> {
    let types: Vec<Option<DataType>> = args.iter().map(Value::data_type).collect();
    resolve(name, &types)?;
    if let Some(result) = call_array_function(name, args) {
        return result;
    }
    if let Some(result) = jsonb::call(name, args) {
        return result;
    }
    match name {
        "concat" => return concat(args.iter()).map(Value::Text),
        // Not strict: they count the NULLs.
        "num_nulls" => return Ok(Value::Int4(args.iter().filter(|a| a.is_null()).count() as i32)),
        "num_nonnulls" => return Ok(Value::Int4(args.iter().filter(|a| !a.is_null()).count() as i32)),
        "concat_ws" => return concat_ws(args),
        // Not strict: a NULL argument is empty (%s), NULL (%L) or an error (%I).
        "format" => {
            return match &args[0] {
                Value::Null => Ok(Value::Null),
                template => {
                    let template = ops::to_text(template).unwrap_or_default();
                    let values: Vec<Option<String>> = args[1..].iter().map(ops::to_text).collect();
                    format(&template, &values).map(Value::Text)
                }
            }
        }
        "quote_nullable" => {
            return Ok(Value::Text(match &args[0] {
                Value::Null => "NULL".into(),
                v => quote_literal(&ops::to_text(v).unwrap_or_default()),
            }))
        }
        "greatest" => return extreme(args, std::cmp::Ordering::Greater),
        // Not strict: a NULL delimiter splits into characters, a NULL
        // null string marks nothing.
        "string_to_array" => return string_to_array(args),
        "least" => return extreme(args, std::cmp::Ordering::Less),
        // Not strict: a NULL typmod means "no modifier".
        "format_type" => {
            return Ok(match args[0].as_i64() {
                None => Value::Null,
                Some(oid) => Value::Text(crate::system::format_type(oid, args[1].as_i64()).unwrap_or("???".into())),
            })
        }
        _ => {}
    }
    if args.iter().any(Value::is_null) {
        return Ok(Value::Null);
    }
    let text = |i: usize| text_arg(args, i);
    let int = |i: usize| int_arg(args, i);
    let float = |i: usize| float_arg(args, i);
    let n = args.len();
    Ok(match name {
        // Strings.
        "lower" => Value::Text(text(0)?.to_lowercase()),
        "upper" => Value::Text(text(0)?.to_uppercase()),
        "initcap" => Value::Text(initcap(text(0)?)),
        "like_escape" => Value::Text(like_escape(text(0)?, text(1)?)?),
        "bitand" | "bitor" | "bitxor" | "shiftleft" | "shiftright" | "bitnot" => bitwise(name, args)?,
        "date_part" => match args.get(1) {
            Some(Value::Interval(i)) => {
                let field = text(0)?.to_ascii_lowercase();
                Value::Float8(crate::ops::interval::part(&field, i)?)
            }
            Some(Value::Time(us)) => Value::Float8(time_part(text(0)?, *us)?),
            Some(Value::TimestampTz(us)) => Value::Float8(timestamptz_part(text(0)?, *us)?),
            _ => Value::Float8(date_part(text(0)?, timestamp_arg(args, 1)?)?),
        },
        "extract" => extract(text(0)?, &args[1])?.map_or(Value::Null, Value::Numeric),
        "date_trunc" => match args.get(1) {
            // On the session zone's calendar: a day starts at its midnight
            // (the offset then); a smaller unit keeps the input's offset,
            // so the two 01:00 hours of a fall back stay apart.
            Some(Value::TimestampTz(_) | Value::Date(_)) => {
                let zone = crate::ops::zone::session();
                let unit = text(0)?;
                let local = date_trunc(unit, timestamp_arg(args, 1)?)?;
                let small = matches!(
                    unit.to_ascii_lowercase().trim_end_matches('s'),
                    "microsecond" | "millisecond" | "second" | "minute" | "hour"
                );
                Value::TimestampTz(match &args[1] {
                    Value::TimestampTz(us) if small && *us != i64::MIN && *us != i64::MAX => {
                        let offset = zone.offset_at(*us)?;
                        local - offset * 1_000_000
                    }
                    _ => crate::ops::zone::to_utc(local, zone)?,
                })
            }
            _ => Value::Timestamp(date_trunc(text(0)?, timestamp_arg(args, 1)?)?),
        },
        "reverse" => Value::Text(text(0)?.chars().rev().collect()),
        "btrim" | "trim" | "ltrim" | "rtrim" => {
            let set = if n == 2 { text(1)? } else { " " };
            let set: Vec<char> = set.chars().collect();
            let mut s = text(0)?;
            if name != "rtrim" {
                s = s.trim_start_matches(set.as_slice());
            }
            if name != "ltrim" {
                s = s.trim_end_matches(set.as_slice());
            }
            Value::Text(s.to_string())
        }
        "length" | "char_length" | "character_length" => match &args[0] {
            Value::Bytea(b) => int4(b.len())?,
            _ => int4(text(0)?.chars().count())?,
        },
        "octet_length" | "bit_length" => {
            let bytes = match &args[0] {
                Value::Bytea(b) => b.len(),
                _ => text(0)?.len(),
            };
            let factor = if name == "bit_length" { 8 } else { 1 };
            int4(bytes.saturating_mul(factor))?
        }
        "substr" | "substring" => {
            let count = if n == 3 { Some(int(2)?) } else { None };
            match &args[0] {
                Value::Bytea(b) => {
                    let (from, to) = substring_bounds(b.len(), int(1)?, count)?;
                    Value::Bytea(b[from..to].to_vec())
                }
                _ => {
                    let s = text(0)?;
                    let (from, to) = substring_bounds(s.chars().count(), int(1)?, count)?;
                    Value::Text(s.chars().skip(from).take(to - from).collect())
                }
            }
        }
        "replace" => Value::Text(replace(text(0)?, text(1)?, text(2)?)?),
        "left" | "right" => {
            let s = text(0)?;
            let len = s.chars().count() as i64;
            let k = int(1)?;
            let keep = if k >= 0 { k.min(len) } else { (len + k).max(0) };
            Value::Text(if name == "left" {
                s.chars().take(keep as usize).collect()
            } else {
                s.chars().skip((len - keep) as usize).collect()
            })
        }
        "repeat" => Value::Text(repeat(text(0)?, int(1)?)?),
        "lpad" | "rpad" => {
            let fill = if n == 3 { text(2)? } else { " " };
            Value::Text(pad(text(0)?, int(1)?, fill, name == "lpad")?)
        }
        "strpos" => {
            let (s, sub) = (text(0)?, text(1)?);
            match s.find(sub) {
                Some(at) => int4(s[..at].chars().count() + 1)?,
                None => Value::Int4(0),
            }
        }
        "split_part" => split_part(text(0)?, text(1)?, int(2)?)?,
        "starts_with" => Value::Bool(text(0)?.starts_with(text(1)?)),
        "quote_ident" => Value::Text(crate::system::quote_ident(text(0)?)),
        "quote_literal" => Value::Text(quote_literal(text(0)?)),
        "md5" => {
            use md5::Digest as _;
            let digest = match &args[0] {
                Value::Bytea(b) => md5::Md5::digest(b),
                _ => md5::Md5::digest(text(0)?.as_bytes()),
            };
            Value::Text(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        "sha224" | "sha256" | "sha384" | "sha512" => {
            use sha2::Digest as _;
            let Value::Bytea(b) = &args[0] else { return sql_err!(InternalError, "{name} of {:?}", args[0]) };
            Value::Bytea(match name {
                "sha224" => sha2::Sha224::digest(b).to_vec(),
                "sha256" => sha2::Sha256::digest(b).to_vec(),
                "sha384" => sha2::Sha384::digest(b).to_vec(),
                _ => sha2::Sha512::digest(b).to_vec(),
            })
        }
        "encode" => {
            let Value::Bytea(b) = &args[0] else { return sql_err!(InternalError, "encode of {:?}", args[0]) };
            Value::Text(encode(b, text(1)?)?)
        }
        "decode" => Value::Bytea(decode(text(0)?, text(1)?)?),
        "regexp_replace" => {
            Value::Text(regexp_replace(text(0)?, text(1)?, text(2)?, if n == 4 { text(3)? } else { "" })?)
        }
        "similar_to_escape" => Value::Text(similar_to_escape(text(0)?, if n == 2 { text(1)? } else { "\\" })?),
        "regexp_match" => regexp_match(text(0)?, text(1)?, if n == 3 { text(2)? } else { "" })?,
        "regexp_match_starts" => regexp_match_starts(text(0)?, text(1)?, text(2)?)?,
        "regexp_match_at" => regexp_match_at(text(0)?, text(1)?, text(2)?, int(3)?)?,
        "regexp_split_to_array" => {
            let parts = regexp_split(text(0)?, text(1)?)?;
            Value::Array(&T::Text, parts.into_iter().map(Value::Text).collect())
        }
        "gcd" | "lcm" => integer_gcd_lcm(name, &args[0], &args[1])?,
        "width_bucket" => width_bucket(float(0)?, float(1)?, float(2)?, i32::try_from(int(3)?).unwrap_or(i32::MAX))?,
        "isfinite" => Value::Bool(match &args[0] {
            Value::Date(d) => *d != i32::MAX && *d != i32::MIN,
            Value::Timestamp(us) | Value::TimestampTz(us) => *us != i64::MAX && *us != i64::MIN,
            _ => true,
        }),
        "to_timestamp" if args.len() == 2 => to_date::to_timestamp(text(0)?, text(1)?)?,
        "to_timestamp" => to_timestamp(float(0)?)?,
        "to_date" => to_date::to_date(text(0)?, text(1)?)?,
        "timezone" => crate::ops::zone::timezone(&args[0], &args[1])?,
        "to_char" if args[0].as_f64().is_some() => to_char::to_char_number(&args[0], text(1)?)?,
        "to_char" => to_char::to_char(&args[0], text(1)?)?,
        "age" => Value::Interval(crate::ops::interval::age(timestamp_arg(args, 0)?, timestamp_arg(args, 1)?)?),
        "justify_days" | "justify_hours" | "justify_interval" => {
            let Value::Interval(i) = &args[0] else {
                return sql_err!(InternalError, "{name} of {:?}", args[0]);
            };
            Value::Interval(match name {
                "justify_days" => crate::ops::interval::justify_days(i)?,
                "justify_hours" => crate::ops::interval::justify_hours(i)?,
                _ => crate::ops::interval::justify_interval(i)?,
            })
        }
        "make_date" => Value::Date(make_date(int(0)?, int(1)?, int(2)?)?),
        "make_timestamp" => make_timestamp(args)?,
        "make_time" => Value::Time(make_clock(int(0)?, int(1)?, float_arg(args, 2)?)?),
        "pg_size_pretty" => Value::Text(size_pretty(int(0)?)),
        "to_regtype" => crate::system::type_oid_by_name(text(0)?).map_or(Value::Null, Value::Int8),
        "textregexeq" => Value::Bool(regex_matches(text(0)?, text(1)?, false)?),
        "textregexne" => Value::Bool(!regex_matches(text(0)?, text(1)?, false)?),
        "texticregexeq" => Value::Bool(regex_matches(text(0)?, text(1)?, true)?),
        "texticregexne" => Value::Bool(!regex_matches(text(0)?, text(1)?, true)?),
        "chr" => Value::Text(chr(int(0)?)?.to_string()),
        "ascii" => Value::Int4(text(0)?.chars().next().map_or(0, |c| c as i32)),
        "to_hex" => Value::Text(match args[0] {
            Value::Int8(i) => format!("{:x}", i as u64),
            _ => format!("{:x}", int(0)? as i32 as u32),
        }),

        // Math.
        "abs" => abs(&args[0])?,
        "mod" => ops::binary(BinaryOp::Mod, &args[0], &args[1])?,
        // numeric's own (and round and trunc to places, which only numeric has).
        "ceil" | "ceiling" | "floor" | "round" | "trunc" | "sign"
            if matches!(args[0], Value::Numeric(_))
                || (n == 2 && matches!(name, "round" | "trunc") && args[0].as_i64().is_some()) =>
        {
            let d = match args[0] {
                Value::Numeric(d) => d,
                ref i => numeric::Decimal::from(i.as_i64().unwrap_or_default()),
            };
            Value::Numeric(match name {
                "ceil" | "ceiling" => numeric::ceil(d),
                "floor" => numeric::floor(d),
                "sign" => numeric::sign(d),
                _ => numeric::round(d, if n == 2 { int(1)? } else { 0 }, name == "trunc")?,
            })
        }
        "ceil" | "ceiling" => Value::Float8(float(0)?.ceil()),
        "floor" => Value::Float8(float(0)?.floor()),
        "round" if n == 1 => Value::Float8(float(0)?.round_ties_even()),
        "round" => Value::Float8(round_decimal(float(0)?, int(1)?, false)?),
        "trunc" if n == 1 => Value::Float8(float(0)?.trunc()),
        "trunc" => Value::Float8(round_decimal(float(0)?, int(1)?, true)?),
        "sqrt" => {
            let x = float(0)?;
            if x < 0.0 {
                return sql_err!(InvalidParameterValue, "cannot take square root of a negative number");
            }
            Value::Float8(x.sqrt())
        }
        "cbrt" => Value::Float8(float(0)?.cbrt()),
        "exp" => Value::Float8(exp(float(0)?)?),
        "ln" => Value::Float8(logarithm_domain(float(0)?)?.ln()),
        "log" if n == 2 => Value::Float8(log_base(float(0)?, float(1)?)?),
        "log" | "log10" => Value::Float8(logarithm_domain(float(0)?)?.log10()),
        "power" | "pow" => Value::Float8(power(float(0)?, float(1)?)?),
        "sign" => {
            let x = float(0)?;
            Value::Float8(if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            })
        }
        "pi" => Value::Float8(PI),
        // Volatile (never folded: `optimizer::is_immutable`), from the
        // operating system's entropy through `rand`'s thread generator.
        "random" => Value::Float8(rand::random::<f64>()),
        // A SERIAL or IDENTITY column's default: positive, random (keys
        // spread over the table's shards instead of piling up at its end).
        "unique_rowid" => Value::Int8((rand::random::<u64>() >> 1) as i64),
        "gen_random_uuid" | "uuid_generate_v4" => {
            // Version 4 (random), variant 1 (RFC 9562).
            let mut bytes: [u8; 16] = rand::random();
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            Value::Uuid(bytes)
        }
        "degrees" => {
            let x = float(0)?;
            let r = x / RADIANS_PER_DEGREE;
            if r.is_infinite() && !x.is_infinite() {
                return Err(float_overflow());
            }
            Value::Float8(r)
        }
        "radians" => {
            let x = float(0)?;
            let r = x * RADIANS_PER_DEGREE;
            if r == 0.0 && x != 0.0 {
                return sql_err!(NumericValueOutOfRange, "value out of range: underflow");
            }
            Value::Float8(r)
        }
        "sin" | "cos" | "tan" => {
            let x = float(0)?;
            if x.is_infinite() {
                return Err(input_out_of_range());
            }
            Value::Float8(match name {
                "sin" => x.sin(),
                "cos" => x.cos(),
                _ => x.tan(),
            })
        }
        "asin" | "acos" => {
            let x = float(0)?;
            if !x.is_nan() && !(-1.0..=1.0).contains(&x) {
                return Err(input_out_of_range());
            }
            Value::Float8(if name == "asin" { x.asin() } else { x.acos() })
        }
        "atan" => Value::Float8(float(0)?.atan()),
        "atan2" => Value::Float8(float(0)?.atan2(float(1)?)),
        _ => return Err(no_function(name, &types)),
    })
}

const RADIANS_PER_DEGREE: f64 = PI / 180.0;

/// The bitwise operators on int4 or int8 (the first argument's type; a
/// shift's count is an int4). Shifts take the count modulo the width, as
/// PostgreSQL's C shifts do on the machines it runs on.
fn bitwise(name: &str, args: &[Value]) -> Result<Value> {
    let count = || int_arg(args, 1).map(|n| n as u32);
    Ok(match args[0] {
        Value::Int8(a) => Value::Int8(match name {
            "bitnot" => !a,
            "shiftleft" => a.wrapping_shl(count()?),
            "shiftright" => a.wrapping_shr(count()?),
            "bitand" => a & int_arg(args, 1)?,
            "bitor" => a | int_arg(args, 1)?,
            _ => a ^ int_arg(args, 1)?,
        }),
        _ => {
            let a = int_arg(args, 0)? as i32;
            let b = || int_arg(args, 1).map(|b| b as i32);
            Value::Int4(match name {
                "bitnot" => !a,
                "shiftleft" => a.wrapping_shl(count()?),
                "shiftright" => a.wrapping_shr(count()?),
                "bitand" => a & b()?,
                "bitor" => a | b()?,
                _ => a ^ b()?,
            })
        }
    })
}

/// `like_escape(pattern, e)`: a LIKE pattern whose escape character is
/// `e` (one character, or none: `''`) rewritten to use the default, `\`.
fn like_escape(pattern: &str, escape: &str) -> Result<String> {
    let mut chars = escape.chars();
    let escape = match (chars.next(), chars.next()) {
        (None, _) => None,
        (Some(c), None) => Some(c),
        _ => return sql_err!(InvalidEscapeSequence, "invalid escape string"),
    };
    if escape == Some('\\') {
        return Ok(pattern.to_string());
    }
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern.chars();
    while let Some(c) = rest.next() {
        if Some(c) == escape {
            let Some(next) = rest.next() else {
                return sql_err!(InvalidEscapeSequence, "LIKE pattern must not end with escape character");
            };
            out.push('\\');
            out.push(next);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    if out.len() > RESULT_BYTES_MAX {
        return sql_err!(ProgramLimitExceeded, "LIKE pattern is over {RESULT_BYTES_MAX} bytes once escaped");
    }
    Ok(out)
}

fn timestamp_arg(args: &[Value], i: usize) -> Result<i64> {
    match args.get(i) {
        // A timestamptz's fields are its wall clock's in the session's zone.
        Some(Value::TimestampTz(us)) => crate::ops::zone::to_local(*us, crate::ops::zone::session()),
        Some(v @ (Value::Timestamp(_) | Value::Date(_))) => Ok(v.as_micros().unwrap_or_default()),
        other => sql_err!(InternalError, "argument {i} is {other:?}, not a timestamp"),
    }
}

/// A timestamp's calendar fields (microseconds since the epoch, no time
/// zone, as `types.rs` keeps them).
fn calendar(us: i64) -> Result<chrono::NaiveDateTime> {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => Ok(t.naive_utc()),
        None => sql_err!(DatetimeFieldOverflow, "timestamp out of range"),
    }
}

/// `date_part(field, ts)` / `extract(field FROM ts)`, PostgreSQL's fields
/// and their plural spellings.
fn date_part(field: &str, us: i64) -> Result<f64> {
    use chrono::{Datelike, Timelike};
    let t = calendar(us)?;
    let seconds = f64::from(t.second()) + f64::from(t.nanosecond() / 1_000) / 1e6;
    let year = f64::from(t.year());
    Ok(match field.to_ascii_lowercase().trim_end_matches('s') {
        "microsecond" => seconds * 1e6,
        "millisecond" => seconds * 1e3,
        "second" => seconds,
        "minute" => f64::from(t.minute()),
        "hour" => f64::from(t.hour()),
        "day" => f64::from(t.day()),
        "dow" => f64::from(t.weekday().num_days_from_sunday()),
        "isodow" => f64::from(t.weekday().number_from_monday()),
        "doy" => f64::from(t.ordinal()),
        "week" => f64::from(t.iso_week().week()),
        "month" => f64::from(t.month()),
        "quarter" => f64::from((t.month() - 1) / 3 + 1),
        // chrono counts 1 BC as year 0; PostgreSQL as -1.
        "year" if t.year() > 0 => year,
        "year" => year - 1.0,
        "isoyear" if t.iso_week().year() > 0 => f64::from(t.iso_week().year()),
        "isoyear" => f64::from(t.iso_week().year()) - 1.0,
        "decade" => (year / 10.0).floor(),
        "century" if t.year() > 0 => ((year - 1.0) / 100.0).floor() + 1.0,
        "century" => -(((-year) / 100.0).floor() + 1.0),
        "millennium" if t.year() > 0 => ((year - 1.0) / 1000.0).floor() + 1.0,
        "millennium" => -(((-year) / 1000.0).floor() + 1.0),
        "epoch" => us as f64 / 1e6,
        _ => return sql_err!(InvalidParameterValue, "unit \"{field}\" not recognized for type timestamp"),
    })
}

/// `date_part(field, t)` of a timestamptz: its wall clock's fields in the
/// session's zone, its instant's `epoch`, and the zone's offset then
/// (`timezone`, `timezone_hour`, `timezone_minute`).
fn timestamptz_part(field: &str, us: i64) -> Result<f64> {
    let zone = crate::ops::zone::session();
    let offset = || zone.offset_at(us);
    match field.to_ascii_lowercase().as_str() {
        "epoch" => date_part(field, us),
        "timezone" => Ok(offset()? as f64),
        "timezone_hour" => Ok((offset()? / 3600) as f64),
        "timezone_minute" => Ok((offset()? / 60 % 60) as f64),
        _ => date_part(field, crate::ops::zone::to_local(us, zone)?),
    }
}

/// `date_part(field, t)` / `extract(field FROM t)` of a time of day: its
/// clock's fields and its seconds since midnight (`epoch`); a calendar
/// field is 0A000, as in PostgreSQL.
fn time_part(field: &str, us: i64) -> Result<f64> {
    // From the integer: a float divided and multiplied back can be an
    // ulp off.
    let micros = us % 60_000_000;
    Ok(match field.to_ascii_lowercase().trim_end_matches('s') {
        "microsecond" => micros as f64,
        "millisecond" => micros as f64 / 1e3,
        "second" => micros as f64 / 1e6,
        "minute" => (us / 60_000_000 % 60) as f64,
        "hour" => (us / 3_600_000_000) as f64,
        "epoch" => us as f64 / 1e6,
        "day" | "dow" | "isodow" | "doy" | "week" | "month" | "quarter" | "year" | "isoyear" | "decade" | "century"
        | "millennium" => {
            return sql_err!(FeatureNotSupported, "unit \"{field}\" not supported for type time without time zone")
        }
        _ => return sql_err!(InvalidParameterValue, "unit \"{field}\" not recognized for type time without time zone"),
    })
}

/// `extract(field FROM v)`: [`date_part`]'s fields as `numeric`, as
/// PostgreSQL 14 and later give them: exact, the seconds and the epoch
/// with six digits after the point (`9.500000`), milliseconds with three,
/// the others whole; a date has no time of day (0A000) and its epoch is
/// whole.
fn extract(field: &str, v: &Value) -> Result<Option<numeric::Decimal>> {
    let infinite = match v {
        Value::Timestamp(us) | Value::TimestampTz(us) => *us == i64::MIN || *us == i64::MAX,
        Value::Date(_) => matches!(v.as_micros(), Some(i64::MIN | i64::MAX)),
        _ => false,
    };
    if !infinite {
        return extract_finite(field, v).map(Some);
    }
    // As PostgreSQL: the fields that repeat have no value at infinity;
    // those that grow are infinite, which numeric here cannot hold.
    match field.to_ascii_lowercase().as_str() {
        "year" | "isoyear" | "decade" | "century" | "millennium" | "julian" | "epoch" => sql_err!(
            NumericValueOutOfRange,
            "extract({field}) of an infinite value is infinite, which numeric cannot hold here"
        ),
        _ => Ok(None),
    }
}

/// [`extract`] of a finite value.
fn extract_finite(field: &str, v: &Value) -> Result<numeric::Decimal> {
    use numeric::Decimal;
    let unit = field.to_ascii_lowercase();
    let unit = unit.trim_end_matches('s');
    // The seconds' fields, from the microseconds within the minute.
    let seconds = |micros: i64| match unit {
        "second" => Some(Decimal::new(micros, 6)),
        "millisecond" => Some(Decimal::new(micros, 3)),
        "microsecond" => Some(Decimal::new(micros, 0)),
        _ => None,
    };
    // A whole field, as date_part computes it.
    let whole = |f: f64| -> Result<Decimal> {
        match f.fract() == 0.0 && f.abs() < 9.0e15 {
            true => Ok(Decimal::from(f as i64)),
            false => sql_err!(InternalError, "extract({field}) is not whole: {f}"),
        }
    };
    let epoch = |micros: i128| {
        Decimal::try_from_i128_with_scale(micros, 6)
            .map_err(|_| Error::new(SqlState::NumericValueOutOfRange, format!("extract({field}) is out of range")))
    };
    match v {
        Value::Timestamp(us) => match (seconds(us.rem_euclid(60_000_000)), unit) {
            (Some(d), _) => Ok(d),
            (None, "epoch") => epoch(i128::from(*us)),
            (None, _) => whole(date_part(field, *us)?),
        },
        Value::TimestampTz(us) => {
            let local = crate::ops::zone::to_local(*us, crate::ops::zone::session())?;
            match (seconds(local.rem_euclid(60_000_000)), unit) {
                (Some(d), _) => Ok(d),
                (None, "epoch") => epoch(i128::from(*us)),
                (None, _) => whole(timestamptz_part(field, *us)?),
            }
        }
        Value::Date(days) => match unit {
            "hour" | "minute" | "second" | "millisecond" | "microsecond" => {
                sql_err!(FeatureNotSupported, "unit \"{field}\" not supported for type date")
            }
            "epoch" => Ok(Decimal::from(i64::from(*days) * 86_400)),
            _ => whole(date_part(field, v.as_micros().unwrap_or_default())?),
        },
        Value::Time(us) => match (seconds(us % 60_000_000), unit) {
            (Some(d), _) => Ok(d),
            (None, "epoch") => epoch(i128::from(*us)),
            (None, _) => whole(time_part(field, *us)?),
        },
        Value::Interval(i) => {
            let part = crate::ops::interval::part(&field.to_ascii_lowercase(), i)?;
            match (seconds(i.micros % 60_000_000), unit) {
                (Some(d), _) => Ok(d),
                (None, "epoch") => epoch(crate::ops::interval::epoch_micros(i)),
                (None, _) => whole(part),
            }
        }
        other => sql_err!(InternalError, "extract from {other:?}"),
    }
}

/// `date_trunc(field, ts)`: the timestamp with every smaller field at its
/// start (weeks begin on Monday, centuries and millennia in years ending
/// in 01, as PostgreSQL's do).
fn date_trunc(field: &str, us: i64) -> Result<i64> {
    use chrono::{Datelike, NaiveDate};
    let t = calendar(us)?;
    let day = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
    let year_start = |y: i32| NaiveDate::from_ymd_opt(y, 1, 1).and_then(day);
    let floor = |unit: i64| us.div_euclid(unit) * unit;
    let truncated = match field.to_ascii_lowercase().trim_end_matches('s') {
        "microsecond" => Some(us),
        "millisecond" => Some(floor(1_000)),
        "second" => Some(floor(1_000_000)),
        "minute" => Some(floor(60_000_000)),
        "hour" => Some(floor(3_600_000_000)),
        "day" => day(t.date()),
        "week" => day(t.date() - chrono::Days::new(u64::from(t.weekday().num_days_from_monday()))),
        "month" => NaiveDate::from_ymd_opt(t.year(), t.month(), 1).and_then(day),
        "quarter" => NaiveDate::from_ymd_opt(t.year(), (t.month() - 1) / 3 * 3 + 1, 1).and_then(day),
        "year" => year_start(t.year()),
        "decade" => year_start(t.year().div_euclid(10) * 10),
        "century" => year_start((t.year() - 1).div_euclid(100) * 100 + 1),
        "millennium" => year_start((t.year() - 1).div_euclid(1000) * 1000 + 1),
        _ => return sql_err!(InvalidParameterValue, "unit \"{field}\" not recognized for type timestamp"),
    };
    match truncated {
        Some(us) => Ok(us),
        None => sql_err!(DatetimeFieldOverflow, "timestamp out of range"),
    }
}

fn text_arg(args: &[Value], i: usize) -> Result<&str> {
    match args.get(i) {
        Some(Value::Text(s)) => Ok(s),
        other => sql_err!(InternalError, "function argument {i} is not text: {other:?}"),
    }
}

fn int_arg(args: &[Value], i: usize) -> Result<i64> {
    match args.get(i).and_then(Value::as_i64) {
        Some(v) => Ok(v),
        None => sql_err!(InternalError, "function argument {i} is not an integer"),
    }
}

fn float_arg(args: &[Value], i: usize) -> Result<f64> {
    match args.get(i).and_then(Value::as_f64) {
        Some(v) => Ok(v),
        None => sql_err!(InternalError, "function argument {i} is not a number"),
    }
}

fn int4(n: usize) -> Result<Value> {
    i32::try_from(n).map(Value::Int4).map_err(|_| Error::new(SqlState::NumericValueOutOfRange, "integer out of range"))
}

fn too_large() -> Error {
    Error::new(SqlState::ProgramLimitExceeded, "requested length too large")
}

fn float_overflow() -> Error {
    Error::new(SqlState::NumericValueOutOfRange, "value out of range: overflow")
}

fn input_out_of_range() -> Error {
    Error::new(SqlState::NumericValueOutOfRange, "input is out of range")
}

// ---------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------

/// The text of the non-NULL values, concatenated (their output functions,
/// so `concat(true)` is `t`).
fn concat<'a>(values: impl Iterator<Item = &'a Value>) -> Result<String> {
    let parts: Vec<String> = values.filter_map(ops::to_text).collect();
    let total = parts.iter().map(String::len).fold(0usize, usize::saturating_add);
    if total > RESULT_BYTES_MAX {
        return Err(too_large());
    }
    Ok(parts.concat())
}

fn concat_ws(args: &[Value]) -> Result<Value> {
    let Some(Value::Text(sep)) = args.first() else {
        return Ok(Value::Null);
    };
    let parts: Vec<String> = args[1..].iter().filter_map(ops::to_text).collect();
    let total = parts.iter().map(String::len).fold(sep.len().saturating_mul(parts.len()), usize::saturating_add);
    if total > RESULT_BYTES_MAX {
        return Err(too_large());
    }
    Ok(Value::Text(parts.join(sep)))
}

/// Upper-cases the first letter of each run of letters and digits,
/// lower-cases the rest (PostgreSQL's word boundary: not alphanumeric).
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        in_word = c.is_alphanumeric();
    }
    out
}

/// The 0-based `[from, to)` of PostgreSQL's substring(s, start, count) on
/// a string of `len` units: positions are 1-based, `start` may be zero or
/// negative (the count still runs from it), a negative count is an error.
fn substring_bounds(len: usize, start: i64, count: Option<i64>) -> Result<(usize, usize)> {
    if count.is_some_and(|c| c < 0) {
        return sql_err!(InvalidParameterValue, "negative substring length not allowed");
    }
    let first = start.max(1);
    let end = count.map_or(i64::MAX, |c| start.saturating_add(c));
    if end <= first {
        return Ok((0, 0));
    }
    let clamp = |pos: i64| usize::try_from(pos - 1).map_or(len, |p| p.min(len));
    Ok((clamp(first), clamp(end)))
}

fn replace(s: &str, from: &str, to: &str) -> Result<String> {
    if from.is_empty() {
        return Ok(s.to_string());
    }
    let count = s.matches(from).count();
    let len = count.checked_mul(to.len()).and_then(|added| (s.len() - count * from.len()).checked_add(added));
    match len {
        Some(len) if len <= RESULT_BYTES_MAX => Ok(s.replace(from, to)),
        _ => Err(too_large()),
    }
}

fn repeat(s: &str, count: i64) -> Result<String> {
    let Ok(count) = usize::try_from(count) else {
        return Ok(String::new());
    };
    match s.len().checked_mul(count) {
        Some(len) if len <= RESULT_BYTES_MAX => Ok(s.repeat(count)),
        _ => Err(too_large()),
    }
}

/// lpad/rpad: fill `s` to `len` characters with `fill`, repeated, on the
/// left or right; a longer `s` is cut to its first `len` characters.
fn pad(s: &str, len: i64, fill: &str, left: bool) -> Result<String> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(String::new());
    };
    let s_chars = s.chars().count();
    if s_chars >= len {
        return Ok(s.chars().take(len).collect());
    }
    if fill.is_empty() {
        return Ok(s.to_string());
    }
    let need = len - s_chars;
    let fill_chars = fill.chars().count();
    let partial: usize = fill.chars().take(need % fill_chars).map(char::len_utf8).sum();
    let bytes = (need / fill_chars)
        .checked_mul(fill.len())
        .and_then(|b| b.checked_add(partial))
        .and_then(|b| b.checked_add(s.len()));
    if bytes.is_none_or(|b| b > RESULT_BYTES_MAX) {
        return Err(too_large());
    }
    let padding: String = fill.chars().cycle().take(need).collect();
    Ok(if left { padding + s } else { s.to_string() + &padding })
}

/// split_part(s, delimiter, n): the n-th field (1-based; negative counts
/// from the end, as in PostgreSQL 14+), '' past the last.
fn split_part(s: &str, delimiter: &str, n: i64) -> Result<Value> {
    if n == 0 {
        return sql_err!(InvalidParameterValue, "field position must not be zero");
    }
    if s.is_empty() {
        return Ok(Value::Text(String::new()));
    }
    let fields: Vec<&str> = if delimiter.is_empty() { vec![s] } else { s.split(delimiter).collect() };
    let index = if n > 0 { usize::try_from(n - 1).ok() } else { usize::try_from(fields.len() as i64 + n).ok() };
    let field = index.and_then(|i| fields.get(i)).copied().unwrap_or("");
    Ok(Value::Text(field.to_string()))
}

fn chr(code: i64) -> Result<char> {
    if code == 0 {
        return sql_err!(ProgramLimitExceeded, "null character not permitted");
    }
    // PostgreSQL reads the int4 as unsigned: negative codes are huge.
    let code = code as i32 as u32;
    if code > 0x10ffff {
        return sql_err!(ProgramLimitExceeded, "requested character too large for encoding: {code}");
    }
    char::from_u32(code).ok_or_else(|| {
        Error::new(SqlState::ProgramLimitExceeded, format!("requested character not valid for encoding: {code}"))
    })
}

// ---------------------------------------------------------------------------
// Math
// ---------------------------------------------------------------------------

fn abs(v: &Value) -> Result<Value> {
    let range = |name: &str| Error::new(SqlState::NumericValueOutOfRange, format!("{name} out of range"));
    match *v {
        Value::Int2(i) => i.checked_abs().map(Value::Int2).ok_or_else(|| range("smallint")),
        Value::Int4(i) => i.checked_abs().map(Value::Int4).ok_or_else(|| range("integer")),
        Value::Int8(i) => i.checked_abs().map(Value::Int8).ok_or_else(|| range("bigint")),
        Value::Float4(f) => Ok(Value::Float4(f.abs())),
        Value::Float8(f) => Ok(Value::Float8(f.abs())),
        Value::Numeric(d) => Ok(Value::Numeric(d.abs())),
        _ => sql_err!(InternalError, "abs of a non-number"),
    }
}

/// Rounds (or truncates) `x` to `digits` decimal places (negative: to the
/// left of the point), on the shortest decimal text of `x`, half away from
/// zero, as `numeric` rounds: round(2.675, 2) = 2.68.
fn round_decimal(x: f64, digits: i64, truncate: bool) -> Result<f64> {
    if !x.is_finite() || x == 0.0 {
        return Ok(x);
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let all: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    // Digit k of `all` is worth 10^(exp - k); keep those worth at least
    // 10^-digits.
    let keep = exp.saturating_add(digits).saturating_add(1);
    let Ok(keep) = usize::try_from(keep) else {
        return Ok(0.0);
    };
    if keep >= all.len() {
        return Ok(x);
    }
    let mut kept = all[..keep].to_vec();
    if !truncate && all[keep] >= b'5' {
        let mut i = kept.len();
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    if kept.is_empty() {
        return Ok(0.0);
    }
    let scale = exp - keep as i64 + 1;
    let sign = if x < 0.0 { "-" } else { "" };
    let text = format!("{sign}{}e{scale}", String::from_utf8_lossy(&kept));
    let r: f64 = text.parse().map_err(|_| Error::new(SqlState::InternalError, format!("bad decimal {text}")))?;
    if r.is_infinite() {
        return Err(float_overflow());
    }
    Ok(r)
}

/// PostgreSQL's dexp: infinities and NaN pass through, a finite argument
/// whose result is not finite or not non-zero is out of range.
fn exp(x: f64) -> Result<f64> {
    if x.is_nan() || x.is_infinite() {
        return Ok(x.exp());
    }
    let r = x.exp();
    if r.is_infinite() {
        return Err(float_overflow());
    }
    if r == 0.0 {
        return sql_err!(NumericValueOutOfRange, "value out of range: underflow");
    }
    Ok(r)
}

/// `x` if a logarithm of it exists (PostgreSQL: 2201E; here 22023).
fn logarithm_domain(x: f64) -> Result<f64> {
    if x == 0.0 {
        return sql_err!(InvalidParameterValue, "cannot take logarithm of zero");
    }
    if x < 0.0 {
        return sql_err!(InvalidParameterValue, "cannot take logarithm of a negative number");
    }
    Ok(x)
}

/// log(b, x); exact powers of the base come out exact (log(10, 1000) = 3).
fn log_base(b: f64, x: f64) -> Result<f64> {
    logarithm_domain(b)?;
    logarithm_domain(x)?;
    if b == 1.0 {
        return sql_err!(DivisionByZero, "division by zero");
    }
    let r = if b == 10.0 {
        x.log10()
    } else if b == 2.0 {
        x.log2()
    } else {
        x.ln() / b.ln()
    };
    let n = r.round();
    if r.is_finite() && n != r && n.abs() < 1100.0 && b.powf(n) == x {
        return Ok(n);
    }
    Ok(r)
}

/// PostgreSQL's dpow.
fn power(x: f64, y: f64) -> Result<f64> {
    if x.is_nan() {
        return Ok(if y == 0.0 { 1.0 } else { f64::NAN });
    }
    if y.is_nan() {
        return Ok(if x == 1.0 { 1.0 } else { f64::NAN });
    }
    if x == 0.0 && y < 0.0 {
        return sql_err!(InvalidParameterValue, "zero raised to a negative power is undefined");
    }
    if x < 0.0 && y.floor() != y {
        return sql_err!(
            InvalidParameterValue,
            "a negative number raised to a non-integer power yields a complex result"
        );
    }
    let r = x.powf(y);
    if x.is_infinite() || y.is_infinite() {
        // POSIX's rules for infinities, which PostgreSQL follows.
        return Ok(r);
    }
    if r.is_infinite() {
        return Err(float_overflow());
    }
    if r == 0.0 && x != 0.0 {
        return sql_err!(NumericValueOutOfRange, "value out of range: underflow");
    }
    Ok(r)
}

// ---------------------------------------------------------------------------
// greatest, least
// ---------------------------------------------------------------------------

/// The greatest (`want = Greater`) or least non-NULL argument, in their
/// common type; NULL if all are NULL.
fn extreme(args: &[Value], want: std::cmp::Ordering) -> Result<Value> {
    let mut ty: Option<DataType> = None;
    for t in args.iter().filter_map(Value::data_type) {
        ty = Some(match ty {
            None => t,
            Some(u) => ops::common_type(u, t)?,
        });
    }
    let Some(ty) = ty else {
        return Ok(Value::Null);
    };
    let mut best: Option<Value> = None;
    for v in args.iter().filter(|v| !v.is_null()) {
        let v = if v.data_type() == Some(ty) { v.clone() } else { ops::cast(v, ty)? };
        if best.as_ref().is_none_or(|b| ops::sort_cmp(&v, b) == want) {
            best = Some(v);
        }
    }
    Ok(best.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// Goal: each function gives PostgreSQL's answer, errors included.
    /// Method: a table of (name, args, expected value or SQLSTATE); floats
    /// compared through their text output.
    #[test]
    fn calls() {
        use Value::*;
        let ok = |v: Value| Ok::<Value, &str>(v);
        let cases: Vec<(&str, Vec<Value>, std::result::Result<Value, &str>)> = vec![
            ("lower", vec![text("HeLLo É")], ok(text("hello é"))),
            ("upper", vec![text("straße")], ok(text("STRASSE"))),
            ("initcap", vec![text("hi THOMAS o'neil 2nd")], ok(text("Hi Thomas O'Neil 2nd"))),
            ("reverse", vec![text("abé")], ok(text("éba"))),
            ("length", vec![text("héllo")], ok(Int4(5))),
            ("char_length", vec![text("")], ok(Int4(0))),
            ("character_length", vec![text("ab")], ok(Int4(2))),
            ("length", vec![Bytea(vec![1, 2, 3])], ok(Int4(3))),
            ("octet_length", vec![text("héllo")], ok(Int4(6))),
            ("bit_length", vec![text("é")], ok(Int4(16))),
            ("substr", vec![text("alphabet"), Int4(3)], ok(text("phabet"))),
            ("substr", vec![text("alphabet"), Int4(3), Int4(2)], ok(text("ph"))),
            ("substring", vec![text("alphabet"), Int4(0), Int4(3)], ok(text("al"))),
            ("substring", vec![text("alphabet"), Int4(-2), Int4(3)], ok(text(""))),
            ("substring", vec![text("alphabet"), Int4(-2), Int4(5)], ok(text("al"))),
            ("substring", vec![text("alphabet"), Int4(7), Int4(100)], ok(text("et"))),
            ("substring", vec![text("alphabet"), Int4(20)], ok(text(""))),
            ("substring", vec![text("héllo"), Int2(2), Int4(2)], ok(text("él"))),
            ("substring", vec![text("x"), Int4(i32::MAX), Int4(i32::MAX)], ok(text(""))),
            ("substring", vec![text("abc"), Int4(1), Int4(-1)], Err("22023")),
            ("substr", vec![Bytea(vec![1, 2, 3, 4]), Int4(2), Int4(2)], ok(Bytea(vec![2, 3]))),
            ("btrim", vec![text("  ab  ")], ok(text("ab"))),
            ("trim", vec![text("xyabyx"), text("xy")], ok(text("ab"))),
            ("ltrim", vec![text("  ab  ")], ok(text("ab  "))),
            ("rtrim", vec![text("  ab  ")], ok(text("  ab"))),
            ("rtrim", vec![text("abxx"), text("x")], ok(text("ab"))),
            ("replace", vec![text("abcabc"), text("b"), text("XX")], ok(text("aXXcaXXc"))),
            ("replace", vec![text("abc"), text(""), text("X")], ok(text("abc"))),
            ("concat", vec![text("a"), Null, Int4(1), Bool(true), Float8(1.5)], ok(text("a1t1.5"))),
            ("concat", vec![Null, Null], ok(text(""))),
            ("concat_ws", vec![text(","), text("a"), Null, Int4(2)], ok(text("a,2"))),
            ("concat_ws", vec![Null, text("a")], ok(Null)),
            ("left", vec![text("abcde"), Int4(2)], ok(text("ab"))),
            ("left", vec![text("abcde"), Int4(-2)], ok(text("abc"))),
            ("left", vec![text("abcde"), Int4(-9)], ok(text(""))),
            ("right", vec![text("abcde"), Int4(2)], ok(text("de"))),
            ("right", vec![text("abcde"), Int4(-2)], ok(text("cde"))),
            ("right", vec![text("abcde"), Int4(9)], ok(text("abcde"))),
            ("lpad", vec![text("hi"), Int4(5)], ok(text("   hi"))),
            ("lpad", vec![text("hi"), Int4(5), text("xy")], ok(text("xyxhi"))),
            ("lpad", vec![text("hello"), Int4(2)], ok(text("he"))),
            ("rpad", vec![text("hi"), Int4(5), text("xy")], ok(text("hixyx"))),
            ("rpad", vec![text("hi"), Int4(5), text("")], ok(text("hi"))),
            ("rpad", vec![text("hi"), Int4(-1)], ok(text(""))),
            ("repeat", vec![text("ab"), Int4(3)], ok(text("ababab"))),
            ("repeat", vec![text("ab"), Int4(-3)], ok(text(""))),
            ("repeat", vec![text("ab"), Int4(i32::MAX)], Err("54000")),
            ("lpad", vec![text("x"), Int4(i32::MAX)], Err("54000")),
            // A long match copied many times over is refused before it is
            // built; so is one element per character of a long string.
            ("regexp_replace", vec![text(&"a".repeat(1 << 20)), text("a+"), text(&"\\&".repeat(64))], Err("54000")),
            ("regexp_replace", vec![text("abc"), text("b"), text("<\\&\\1\\>")], ok(text("a<b\\>c"))),
            ("string_to_array", vec![text(&"a".repeat(1 << 20)), Null], Err("54000")),
            ("strpos", vec![text("héllo"), text("llo")], ok(Int4(3))),
            ("strpos", vec![text("hello"), text("z")], ok(Int4(0))),
            ("strpos", vec![text("hello"), text("")], ok(Int4(1))),
            ("split_part", vec![text("a,b,c"), text(","), Int4(2)], ok(text("b"))),
            ("split_part", vec![text("a,b,c"), text(","), Int4(4)], ok(text(""))),
            ("split_part", vec![text("a,b,c"), text(","), Int4(-1)], ok(text("c"))),
            ("split_part", vec![text("a,b,c"), text(","), Int4(-4)], ok(text(""))),
            ("split_part", vec![text("abc"), text(""), Int4(1)], ok(text("abc"))),
            ("split_part", vec![text("a,b"), text(","), Int4(0)], Err("22023")),
            ("starts_with", vec![text("alphabet"), text("alph")], ok(Bool(true))),
            ("starts_with", vec![text("alphabet"), text("beta")], ok(Bool(false))),
            ("chr", vec![Int4(65)], ok(text("A"))),
            ("chr", vec![Int4(0x1F600)], ok(text("😀"))),
            ("chr", vec![Int4(0)], Err("54000")),
            ("chr", vec![Int4(-1)], Err("54000")),
            ("chr", vec![Int4(0xD800)], Err("54000")),
            ("ascii", vec![text("é!")], ok(Int4(233))),
            ("ascii", vec![text("")], ok(Int4(0))),
            ("to_hex", vec![Int4(255)], ok(text("ff"))),
            ("to_hex", vec![Int4(-1)], ok(text("ffffffff"))),
            ("to_hex", vec![Int2(-1)], ok(text("ffffffff"))),
            ("to_hex", vec![Int8(-1)], ok(text("ffffffffffffffff"))),
            ("abs", vec![Int2(-5)], ok(Int2(5))),
            ("abs", vec![Int2(i16::MIN)], Err("22003")),
            ("abs", vec![Int4(i32::MIN)], Err("22003")),
            ("abs", vec![Int8(i64::MIN)], Err("22003")),
            ("abs", vec![Float4(-1.5)], ok(Float4(1.5))),
            ("abs", vec![Float8(-0.0)], ok(Float8(0.0))),
            ("ceil", vec![Float8(-1.5)], ok(Float8(-1.0))),
            ("ceiling", vec![Int4(3)], ok(Float8(3.0))),
            ("floor", vec![Float4(-1.5)], ok(Float8(-2.0))),
            ("round", vec![Float8(2.5)], ok(Float8(2.0))),
            ("round", vec![Float8(3.5)], ok(Float8(4.0))),
            ("round", vec![Float8(-2.5)], ok(Float8(-2.0))),
            ("round", vec![Float8(2.675), Int4(2)], ok(Float8(2.68))),
            ("round", vec![Float8(2.5), Int4(0)], ok(Float8(3.0))),
            ("round", vec![Float8(-2.5), Int4(0)], ok(Float8(-3.0))),
            ("round", vec![Float8(1234.5678), Int4(-2)], ok(Float8(1200.0))),
            ("round", vec![Float8(9.99), Int4(1)], ok(Float8(10.0))),
            ("round", vec![Float8(0.04), Int4(1)], ok(Float8(0.0))),
            ("round", vec![Float8(0.05), Int4(1)], ok(Float8(0.1))),
            ("round", vec![Float8(0.5), Int4(-5)], ok(Float8(0.0))),
            ("round", vec![Float8(1.5), Int4(i32::MAX)], ok(Float8(1.5))),
            ("round", vec![Float8(1.5), Int4(i32::MIN)], ok(Float8(0.0))),
            ("round", vec![Float8(f64::MAX), Int4(-308)], Err("22003")),
            ("round", vec![Float8(f64::NAN), Int4(2)], ok(Float8(f64::NAN))),
            ("round", vec![Int4(1234), Int4(-2)], ok(Numeric(numeric::Decimal::from(1200)))),
            (
                "round",
                vec![Numeric(numeric::parse("-2.45").unwrap()), Int4(1)],
                ok(Numeric(numeric::parse("-2.5").unwrap())),
            ),
            ("trunc", vec![Numeric(numeric::parse("2.99").unwrap())], ok(Numeric(numeric::Decimal::from(2)))),
            ("abs", vec![Numeric(numeric::parse("-1.50").unwrap())], ok(Numeric(numeric::parse("1.50").unwrap()))),
            ("trunc", vec![Float8(-2.7)], ok(Float8(-2.0))),
            ("trunc", vec![Float8(-2.678), Int4(2)], ok(Float8(-2.67))),
            ("trunc", vec![Float8(1999.0), Int4(-3)], ok(Float8(1000.0))),
            ("sqrt", vec![Int4(16)], ok(Float8(4.0))),
            ("sqrt", vec![Float8(-1.0)], Err("22023")),
            ("cbrt", vec![Float8(-27.0)], ok(Float8(-3.0))),
            ("power", vec![Int4(2), Int4(10)], ok(Float8(1024.0))),
            ("pow", vec![Float8(-8.0), Float8(1.0 / 3.0)], Err("22023")),
            ("power", vec![Float8(0.0), Float8(-1.0)], Err("22023")),
            ("power", vec![Float8(10.0), Float8(400.0)], Err("22003")),
            ("power", vec![Float8(10.0), Float8(-400.0)], Err("22003")),
            ("power", vec![Float8(f64::NAN), Float8(0.0)], ok(Float8(1.0))),
            ("power", vec![Float8(2.0), Float8(f64::NEG_INFINITY)], ok(Float8(0.0))),
            ("exp", vec![Float8(0.0)], ok(Float8(1.0))),
            ("exp", vec![Float8(1000.0)], Err("22003")),
            ("exp", vec![Float8(-1000.0)], Err("22003")),
            ("exp", vec![Float8(f64::NEG_INFINITY)], ok(Float8(0.0))),
            ("ln", vec![Float8(1.0)], ok(Float8(0.0))),
            ("ln", vec![Float8(0.0)], Err("22023")),
            ("ln", vec![Float8(-1.0)], Err("22023")),
            ("log", vec![Int4(1000)], ok(Float8(3.0))),
            ("log10", vec![Float8(0.001)], ok(Float8(-3.0))),
            ("log", vec![Int4(10), Int4(1000)], ok(Float8(3.0))),
            ("log", vec![Int4(2), Int4(8)], ok(Float8(3.0))),
            ("log", vec![Float8(3.0), Float8(243.0)], ok(Float8(5.0))),
            ("log", vec![Int4(1), Int4(8)], Err("22012")),
            ("log", vec![Int4(0), Int4(8)], Err("22023")),
            ("sign", vec![Int4(-7)], ok(Float8(-1.0))),
            ("sign", vec![Float8(0.0)], ok(Float8(0.0))),
            ("pi", vec![], ok(Float8(PI))),
            ("degrees", vec![Float8(PI)], ok(Float8(180.0))),
            ("radians", vec![Float8(180.0)], ok(Float8(PI))),
            ("sin", vec![Float8(0.0)], ok(Float8(0.0))),
            ("cos", vec![Float8(f64::INFINITY)], Err("22003")),
            ("asin", vec![Float8(2.0)], Err("22003")),
            ("acos", vec![Float8(1.0)], ok(Float8(0.0))),
            ("atan2", vec![Float8(0.0), Float8(1.0)], ok(Float8(0.0))),
            ("mod", vec![Int4(-7), Int4(3)], ok(Int4(-1))),
            ("mod", vec![Int2(7), Int8(4)], ok(Int8(3))),
            ("mod", vec![Int4(1), Int4(0)], Err("22012")),
            ("mod", vec![Float8(1.0), Float8(1.0)], Err("42883")),
            ("greatest", vec![Int4(1), Int4(3), Int4(2)], ok(Int4(3))),
            ("greatest", vec![Int4(1), Float8(2.5), Int2(2)], ok(Float8(2.5))),
            ("greatest", vec![Int4(1), Null, Int4(-1)], ok(Int4(1))),
            ("greatest", vec![Null, Null], ok(Null)),
            ("least", vec![text("b"), text("B"), text("a")], ok(text("B"))),
            ("least", vec![Float8(f64::NAN), Int4(1)], ok(Float8(1.0))),
            ("greatest", vec![Float8(f64::NAN), Int4(1)], ok(Float8(f64::NAN))),
            ("greatest", vec![Int4(1), Bool(true)], Err("42804")),
            ("lower", vec![Null], ok(Null)),
            ("substr", vec![text("abc"), Null], ok(Null)),
            ("round", vec![Null, Int4(2)], ok(Null)),
            ("lower", vec![Int4(1)], Err("42883")),
            ("lower", vec![], Err("42883")),
            ("substr", vec![text("abc"), Int8(1)], Err("42883")),
            ("nosuch", vec![Int4(1)], Err("42883")),
        ];
        for (name, args, want) in cases {
            let got = call(name, &args);
            match (&got, &want) {
                (Ok(g), Ok(w)) => {
                    assert_eq!(ops::to_text(g), ops::to_text(w), "{name}({args:?})");
                    assert_eq!(g.data_type(), w.data_type(), "{name}({args:?})");
                }
                (Err(e), Err(code)) => assert_eq!(e.state.code(), *code, "{name}({args:?}): {e}"),
                _ => panic!("{name}({args:?}): got {got:?}, want {want:?}"),
            }
            // What call returns has the type return_type promised.
            if let Ok(v) = &got {
                let types: Vec<_> = args.iter().map(Value::data_type).collect();
                if let Some(t) = v.data_type() {
                    assert_eq!(return_type(name, &types), Ok(t), "{name}({args:?})");
                }
            }
        }
    }

    /// Goal: resolution gives PostgreSQL's result types and error messages,
    /// including for untyped NULL arguments. Method: table.
    #[test]
    fn resolution() {
        let rt = |name: &str, args: &[Option<DataType>]| return_type(name, args);
        assert_eq!(rt("abs", &[Some(T::Int2)]), Ok(T::Int2));
        assert_eq!(rt("abs", &[None]), Ok(T::Float8));
        assert_eq!(rt("ceil", &[Some(T::Int4)]), Ok(T::Float8));
        assert_eq!(rt("length", &[Some(T::Varchar(Some(3)))]), Ok(T::Int4));
        assert_eq!(rt("length", &[None]), Ok(T::Int4));
        assert_eq!(rt("substr", &[Some(T::Bytea), Some(T::Int2)]), Ok(T::Bytea));
        assert_eq!(rt("to_hex", &[Some(T::Int8)]), Ok(T::Text));
        assert_eq!(rt("mod", &[Some(T::Int2), Some(T::Int2)]), Ok(T::Int2));
        assert_eq!(rt("mod", &[None, Some(T::Int8)]), Ok(T::Int8));
        assert_eq!(rt("greatest", &[Some(T::Int4), None, Some(T::Float4)]), Ok(T::Float4));
        assert_eq!(rt("least", &[None]), Ok(T::Text));
        assert_eq!(rt("concat", &[Some(T::Int4), None]), Ok(T::Text));
        assert_eq!(rt("pi", &[]), Ok(T::Float8));
        assert_eq!(
            resolve("round", &[Some(T::Int4), Some(T::Int2)]),
            Ok(Signature { params: vec![T::Numeric(None), T::Int4], ret: T::Numeric(None) })
        );
        assert_eq!(
            resolve("greatest", &[Some(T::Int2), Some(T::Int8)]),
            Ok(Signature { params: vec![T::Int8, T::Int8], ret: T::Int8 })
        );
        let err = |name: &str, args: &[Option<DataType>]| rt(name, args).unwrap_err();
        assert_eq!(err("foo", &[Some(T::Int4)]).message, "function foo(integer) does not exist");
        assert_eq!(err("lower", &[Some(T::Int4), None]).message, "function lower(integer, unknown) does not exist");
        assert_eq!(err("concat", &[]).state, SqlState::UndefinedFunction);
        assert_eq!(err("pi", &[None]).state, SqlState::UndefinedFunction);
        let e = err("greatest", &[Some(T::Int4), Some(T::Bool)]);
        assert_eq!(
            (e.state, e.message.as_str()),
            (SqlState::DatatypeMismatch, "GREATEST types integer and boolean cannot be matched")
        );
    }

    /// Goal: the size cap refuses before allocating, also for results that
    /// only a product of two inputs makes large. Method: inputs whose
    /// result would be just over RESULT_BYTES_MAX (nothing that big is
    /// ever allocated by the test).
    #[test]
    fn result_size_cap() {
        let big = "x".repeat(1 << 16);
        let e = call("replace", &[text(&big), text("x"), text(&big)]).unwrap_err();
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        let e = call("rpad", &[text(""), Value::Int4(i32::MAX), text("é")]).unwrap_err();
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        let e = call("repeat", &[text("xy"), Value::Int4((1 << 29) + 1)]).unwrap_err();
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        assert_eq!(repeat("xy", 1 << 10).map(|s| s.len()), Ok(1 << 11));
    }
}
