//! SQL types and values.
//!
//! Types are PostgreSQL's, with its type OIDs (the PostgreSQL protocol
//! sends them in every RowDescription), so a column declared `INT` is an
//! `int4` everywhere: in the catalog, in results, on the wire.
//!
//! A [`Value`] is tagged with its runtime type. The binder gives every
//! expression a static [`DataType`]; the executor's values agree with it
//! (`Value::Int4` where the binder said `Int4`), and `NULL` is a value of
//! every type. `TEXT`, `VARCHAR(n)` and `CHAR(n)` values are all
//! [`Value::Text`]: the declared length is checked (and `CHAR` padded) when
//! a value is stored in a column, as PostgreSQL does on assignment.
//!
//! Timestamps are microseconds since the Unix epoch, without time zone, as
//! PostgreSQL's `timestamp` (which counts from 2000-01-01 internally; the
//! protocol layer converts). A `timestamptz` is the same count for an
//! instant in UTC; its text is in the session's zone (`ops::zone`:
//! input without an offset is that zone's wall clock, output shows it,
//! `2026-01-02 03:04:05+00` in a UTC session). Beside a `timestamptz`, a
//! `timestamp` is the session zone's wall clock, and a `date` its
//! midnight there, as PostgreSQL compares them. A `date` is a count of
//! days since 1970-01-01. A `time` is a time of day in microseconds,
//! `00:00:00` to `24:00:00`; it compares only with times.
//!
//! A `numeric` is an exact decimal of up to 28 significant digits that
//! keeps its scale (`1.50`); a `NUMERIC(p, s)` column's bounds are its
//! [`NumericTypmod`], applied when a value is stored
//! ([`crate::ops::numeric`]).
//!
//! A `jsonb` is a parsed [`Json`] document in jsonb's canonical form
//! (`json` is the same type); what it does is in [`crate::ops::jsonb`].
//!
//! A `uuid` is its 16 bytes, compared and ordered byte by byte as
//! PostgreSQL orders them. `gen_random_uuid()` makes version-4 ones, the
//! key a sharded table wants: new rows spread over every shard instead of
//! all landing on the last one, as increasing keys do.
//!
//! What values do (arithmetic, comparison, casts, text input and output)
//! lives in [`crate::ops`].

use serde::{Deserialize, Serialize};

/// A column's or an expression's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    /// `VARCHAR(n)`; `None`: no limit.
    Varchar(Option<u32>),
    /// `CHAR(n)`, blank-padded to `n` characters.
    Char(u32),
    Bytea,
    Timestamp,
    TimestampTz,
    Date,
    /// `time` (without time zone): a time of day.
    Time,
    /// Months, days and microseconds ([`Interval`]).
    Interval,
    Uuid,
    /// `NUMERIC(precision, scale)`; `None`: unconstrained `NUMERIC`.
    /// Values are exact decimals ([`crate::ops::numeric`]).
    Numeric(Option<NumericTypmod>),
    /// `jsonb` (and `json`, the same here): a [`Json`] document.
    Jsonb,
    /// A one-dimensional array of the element type (never itself an
    /// array), one of those [`DataType::array_of`] knows; in a
    /// descriptor, `{"Array": ELEMENT}`.
    #[serde(with = "array_element")]
    Array(&'static DataType),
}

/// An array type's element in a descriptor: the element type itself,
/// read back as the static [`DataType::array_of`] keeps (a type SpanDB
/// has no array of is a corrupt descriptor).
mod array_element {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{DataType, ARRAY_ELEMENTS};

    pub fn serialize<S: Serializer>(element: &&'static DataType, out: S) -> Result<S::Ok, S::Error> {
        (**element).serialize(out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<&'static DataType, D::Error> {
        let element = DataType::deserialize(input)?;
        ARRAY_ELEMENTS
            .iter()
            .find(|t| **t == element.base())
            .ok_or_else(|| serde::de::Error::custom(format!("no array type of {element:?}")))
    }
}

/// The element types arrays may have, one static each (so `DataType`
/// stays `Copy`).
static ARRAY_ELEMENTS: [DataType; 16] = [
    DataType::Bool,
    DataType::Int2,
    DataType::Int4,
    DataType::Int8,
    DataType::Float4,
    DataType::Float8,
    DataType::Text,
    DataType::Bytea,
    DataType::Timestamp,
    DataType::TimestampTz,
    DataType::Date,
    DataType::Time,
    DataType::Interval,
    DataType::Uuid,
    DataType::Numeric(None),
    DataType::Jsonb,
];

impl DataType {
    /// The array type of `element` (`varchar` and `char` elements are
    /// `text`); `None` for an array of arrays.
    pub fn array_of(element: DataType) -> Option<DataType> {
        let base = element.base();
        ARRAY_ELEMENTS.iter().find(|t| **t == base).map(DataType::Array)
    }

    /// The array type whose oid is `oid`, if SpanDB has it.
    pub fn array_by_oid(oid: u32) -> Option<DataType> {
        ARRAY_ELEMENTS.iter().map(DataType::Array).find(|a| a.oid() == oid)
    }

    /// The element type of an array type SpanDB has, by the element's oid
    /// (how a row value names an array's elements).
    pub fn array_element_by_oid(oid: u32) -> Option<DataType> {
        ARRAY_ELEMENTS.iter().copied().find(|e| e.oid() == oid)
    }

    /// The element type, if this is an array type.
    pub fn element(self) -> Option<DataType> {
        match self {
            DataType::Array(e) => Some(*e),
            _ => None,
        }
    }

    /// PostgreSQL's type OID (pg_type.oid).
    pub fn oid(self) -> u32 {
        match self {
            DataType::Array(e) => match e {
                DataType::Bool => 1000,
                DataType::Bytea => 1001,
                DataType::Int2 => 1005,
                DataType::Int4 => 1007,
                DataType::Int8 => 1016,
                DataType::Float4 => 1021,
                DataType::Float8 => 1022,
                DataType::Timestamp => 1115,
                DataType::TimestampTz => 1185,
                DataType::Date => 1182,
                DataType::Time => 1183,
                DataType::Interval => 1187,
                DataType::Uuid => 2951,
                DataType::Numeric(_) => 1231,
                DataType::Jsonb => 3807,
                _ => 1009,
            },
            DataType::Bool => 16,
            DataType::Bytea => 17,
            DataType::Int8 => 20,
            DataType::Int2 => 21,
            DataType::Int4 => 23,
            DataType::Text => 25,
            DataType::Float4 => 700,
            DataType::Float8 => 701,
            DataType::Char(_) => 1042,
            DataType::Varchar(_) => 1043,
            DataType::Timestamp => 1114,
            DataType::TimestampTz => 1184,
            DataType::Date => 1082,
            DataType::Time => 1083,
            DataType::Interval => 1186,
            DataType::Uuid => 2950,
            DataType::Numeric(_) => 1700,
            DataType::Jsonb => 3802,
        }
    }

    /// The type's name as PostgreSQL's `format_type` prints it.
    pub fn sql_name(self) -> String {
        match self {
            DataType::Bool => "boolean".into(),
            DataType::Int2 => "smallint".into(),
            DataType::Int4 => "integer".into(),
            DataType::Int8 => "bigint".into(),
            DataType::Float4 => "real".into(),
            DataType::Float8 => "double precision".into(),
            DataType::Text => "text".into(),
            DataType::Varchar(None) => "character varying".into(),
            DataType::Varchar(Some(n)) => format!("character varying({n})"),
            DataType::Char(n) => format!("character({n})"),
            DataType::Bytea => "bytea".into(),
            DataType::Timestamp => "timestamp without time zone".into(),
            DataType::TimestampTz => "timestamp with time zone".into(),
            DataType::Date => "date".into(),
            DataType::Time => "time without time zone".into(),
            DataType::Interval => "interval".into(),
            DataType::Uuid => "uuid".into(),
            DataType::Numeric(None) => "numeric".into(),
            DataType::Numeric(Some(NumericTypmod { precision, scale })) => format!("numeric({precision},{scale})"),
            DataType::Jsonb => "jsonb".into(),
            DataType::Array(e) => format!("{}[]", e.sql_name()),
        }
    }

    /// The fixed size PostgreSQL reports (pg_type.typlen); -1: variable.
    pub fn type_len(self) -> i16 {
        match self {
            DataType::Bool => 1,
            DataType::Int2 => 2,
            DataType::Int4 | DataType::Float4 | DataType::Date => 4,
            DataType::Int8 | DataType::Float8 | DataType::Timestamp | DataType::TimestampTz | DataType::Time => 8,
            DataType::Uuid | DataType::Interval => 16,
            DataType::Text
            | DataType::Varchar(_)
            | DataType::Char(_)
            | DataType::Bytea
            | DataType::Numeric(_)
            | DataType::Jsonb
            | DataType::Array(_) => -1,
        }
    }

    pub fn is_integer(self) -> bool {
        matches!(self, DataType::Int2 | DataType::Int4 | DataType::Int8)
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float4 | DataType::Float8)
    }

    /// `numeric` with or without a precision and scale.
    pub fn is_decimal(self) -> bool {
        matches!(self, DataType::Numeric(_))
    }

    /// A number: an integer, a `numeric` or a float.
    pub fn is_numeric(self) -> bool {
        self.is_integer() || self.is_decimal() || self.is_float()
    }

    /// `timestamp` or `timestamptz`: counts of microseconds that compare
    /// with each other.
    pub fn is_timestamp(self) -> bool {
        matches!(self, DataType::Timestamp | DataType::TimestampTz)
    }

    /// A timestamp or a date: points in time that compare with each other
    /// (a date as its midnight).
    pub fn is_datetime(self) -> bool {
        self.is_timestamp() || self == DataType::Date
    }

    pub fn is_string(self) -> bool {
        matches!(self, DataType::Text | DataType::Varchar(_) | DataType::Char(_))
    }

    /// The type without its length modifier: what values of it are.
    pub fn base(self) -> DataType {
        match self {
            DataType::Varchar(_) | DataType::Char(_) => DataType::Text,
            DataType::Numeric(_) => DataType::Numeric(None),
            DataType::Array(e) => DataType::array_of(*e).unwrap_or(DataType::Array(e)),
            t => t,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.sql_name())
    }
}

/// A `NUMERIC(precision, scale)` column's bounds: values are rounded to
/// `scale` digits after the point and must have fewer than
/// `precision - scale` before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NumericTypmod {
    pub precision: u16,
    pub scale: u16,
}

/// A value, tagged with its runtime type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Text(String),
    Bytea(Vec<u8>),
    /// Microseconds since 1970-01-01 00:00:00.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    /// Days since 1970-01-01 (`i32::MAX`/`MIN`: `infinity`/`-infinity`).
    Date(i32),
    /// Microseconds since midnight, `0..=`[`TIME_MICROS_MAX`]
    /// (`24:00:00` is a time, as in PostgreSQL).
    Time(i64),
    Interval(Interval),
    Uuid([u8; 16]),
    /// An exact decimal (`numeric`), its scale the digits it shows after
    /// the point (`1.50` has scale 2).
    Numeric(rust_decimal::Decimal),
    /// A `jsonb` document (boxed: most values are smaller).
    Jsonb(Box<Json>),
    /// A one-dimensional array: its element type (as [`DataType::Array`]
    /// holds it) and its elements, each NULL or of that type. Indexes
    /// start at 1, as in PostgreSQL.
    Array(&'static DataType, Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value's type (`None` for NULL, which has every type).
    pub fn data_type(&self) -> Option<DataType> {
        Some(match self {
            Value::Null => return None,
            Value::Bool(_) => DataType::Bool,
            Value::Int2(_) => DataType::Int2,
            Value::Int4(_) => DataType::Int4,
            Value::Int8(_) => DataType::Int8,
            Value::Float4(_) => DataType::Float4,
            Value::Float8(_) => DataType::Float8,
            Value::Text(_) => DataType::Text,
            Value::Bytea(_) => DataType::Bytea,
            Value::Timestamp(_) => DataType::Timestamp,
            Value::TimestampTz(_) => DataType::TimestampTz,
            Value::Date(_) => DataType::Date,
            Value::Time(_) => DataType::Time,
            Value::Interval(_) => DataType::Interval,
            Value::Uuid(_) => DataType::Uuid,
            Value::Numeric(_) => DataType::Numeric(None),
            Value::Jsonb(_) => DataType::Jsonb,
            Value::Array(e, _) => DataType::Array(e),
        })
    }

    /// The value as an i64 if it is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int2(v) => Some(v.into()),
            Value::Int4(v) => Some(v.into()),
            Value::Int8(v) => Some(v),
            _ => None,
        }
    }

    /// A timestamp's count of microseconds, or a date's midnight as one
    /// (infinities kept; a date beyond [`DATE_DAYS_MAX`], which no input
    /// or arithmetic makes, as the infinity on its side).
    pub fn as_micros(&self) -> Option<i64> {
        match *self {
            Value::Timestamp(us) | Value::TimestampTz(us) => Some(us),
            Value::Date(days) if days > DATE_DAYS_MAX => Some(i64::MAX),
            Value::Date(days) if days < -DATE_DAYS_MAX => Some(i64::MIN),
            Value::Date(days) => Some(i64::from(days) * 86_400_000_000),
            _ => None,
        }
    }

    /// The value as an f64 if it is a number (a `numeric` rounded to the
    /// nearest).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Float4(v) => Some(v.into()),
            Value::Float8(v) => Some(v),
            // The decimal text reads back correctly rounded (`ops::numeric::to_f64`).
            Value::Numeric(d) => d.to_string().parse().ok(),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The value as a boolean: `Some(b)`, or `None` for NULL. Not a bool:
    /// `Err` (the binder makes that unreachable for well-typed plans).
    pub fn as_bool(&self) -> Result<Option<bool>, crate::error::Error> {
        match self {
            Value::Null => Ok(None),
            Value::Bool(b) => Ok(Some(*b)),
            v => crate::sql_err!(DatatypeMismatch, "argument must be type boolean, not {v:?}"),
        }
    }
}

/// A JSON document in jsonb's canonical form (what it does is in
/// [`crate::ops::jsonb`]): an object's keys unique and in jsonb's order
/// (shorter first, then by bytes), numbers exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(rust_decimal::Decimal),
    String(String),
    Array(Vec<Json>),
    /// Unique keys, in jsonb's key order.
    Object(Vec<(String, Json)>),
}

/// An interval, as PostgreSQL keeps one: months, days and microseconds,
/// each with its own sign (`crate::ops::interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// The farthest a date may be from 1970-01-01, in days: where its
/// midnight is still a timestamp (about 292,000 years).
pub const DATE_DAYS_MAX: i32 = 106_751_990;

/// The largest `time`: `24:00:00`, in microseconds since midnight.
pub const TIME_MICROS_MAX: i64 = 86_400_000_000;

/// A row of values, in column order.
pub type Row = Vec<Value>;
