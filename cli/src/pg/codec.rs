//! Values on the wire: SQL types as PostgreSQL's type OIDs, and values in
//! PostgreSQL's text and binary formats.
//!
//! ```text
//!   int4 42       text: "42"          binary: 00 00 00 2a
//!   timestamp     text: "2026-12-01 10:00:00"
//!                 binary: i64 microseconds since 2000-01-01 (PostgreSQL's epoch)
//! ```
//!
//! Text is what the SQL layer parses and prints (`sql::ops`), so a value
//! reads back the same whichever format carried it. Binary follows
//! PostgreSQL's send/recv functions: big-endian integers and IEEE floats,
//! one byte for bool, raw bytes for text and bytea, and for a
//! one-dimensional array a header (dimensions, a has-NULLs flag, the
//! element type, the length and lower bound 1) then each element with
//! its length (-1: NULL).

use bytes::{BufMut, BytesMut};
use pgwire::api::results::FieldFormat;
use pgwire::api::Type;
use pgwire::messages::data::DataRow;
use sql::{DataType, Value};

/// Microseconds from 1970-01-01 (SpanDB's timestamps) to 2000-01-01
/// (PostgreSQL's binary timestamps).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Days from 1970-01-01 to 2000-01-01 (PostgreSQL's binary dates).
const PG_EPOCH_OFFSET_DAYS: i32 = 10_957;

/// The version byte that starts jsonb's binary form (PostgreSQL has only 1).
const JSONB_BINARY_VERSION: u8 = 1;

/// The PostgreSQL type of a SQL type.
pub fn pg_type(t: DataType) -> Type {
    match t {
        DataType::Bool => Type::BOOL,
        DataType::Int2 => Type::INT2,
        DataType::Int4 => Type::INT4,
        DataType::Int8 => Type::INT8,
        DataType::Float4 => Type::FLOAT4,
        DataType::Float8 => Type::FLOAT8,
        DataType::Text => Type::TEXT,
        DataType::Varchar(_) => Type::VARCHAR,
        DataType::Char(_) => Type::BPCHAR,
        DataType::Bytea => Type::BYTEA,
        DataType::Timestamp => Type::TIMESTAMP,
        DataType::TimestampTz => Type::TIMESTAMPTZ,
        DataType::Interval => Type::INTERVAL,
        DataType::Date => Type::DATE,
        DataType::Time => Type::TIME,
        DataType::Uuid => Type::UUID,
        DataType::Numeric(_) => Type::NUMERIC,
        DataType::Jsonb => Type::JSONB,
        DataType::Array(_) => Type::from_oid(t.oid()).unwrap_or(Type::TEXT_ARRAY),
    }
}

/// The SQL type a client declared for a parameter: `Ok(None)` when it
/// left it to the server (OID 0, `unknown`), an error for a type SpanDB
/// does not have.
pub fn declared_type(t: Option<&Type>) -> sql::Result<Option<DataType>> {
    let Some(t) = t else { return Ok(None) };
    let array = |element| DataType::array_of(element).expect("arrays of scalar types exist");
    Ok(Some(match *t {
        Type::BOOL => DataType::Bool,
        Type::INT2 => DataType::Int2,
        Type::INT4 => DataType::Int4,
        Type::INT8 => DataType::Int8,
        Type::FLOAT4 => DataType::Float4,
        Type::FLOAT8 => DataType::Float8,
        Type::TEXT | Type::NAME => DataType::Text,
        Type::VARCHAR => DataType::Varchar(None),
        Type::BPCHAR => DataType::Text,
        Type::BYTEA => DataType::Bytea,
        Type::TIMESTAMP => DataType::Timestamp,
        Type::TIMESTAMPTZ => DataType::TimestampTz,
        Type::INTERVAL => DataType::Interval,
        Type::DATE => DataType::Date,
        Type::TIME => DataType::Time,
        Type::UUID => DataType::Uuid,
        Type::NUMERIC => DataType::Numeric(None),
        // json is jsonb here: a json parameter is read as one.
        Type::JSONB | Type::JSON => DataType::Jsonb,
        Type::UNKNOWN => return Ok(None),
        Type::BOOL_ARRAY => array(DataType::Bool),
        Type::INT2_ARRAY => array(DataType::Int2),
        Type::INT4_ARRAY => array(DataType::Int4),
        Type::INT8_ARRAY | Type::OID_ARRAY => array(DataType::Int8),
        Type::FLOAT4_ARRAY => array(DataType::Float4),
        Type::FLOAT8_ARRAY => array(DataType::Float8),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY | Type::NAME_ARRAY => array(DataType::Text),
        Type::BYTEA_ARRAY => array(DataType::Bytea),
        Type::TIMESTAMP_ARRAY => array(DataType::Timestamp),
        Type::TIMESTAMPTZ_ARRAY => array(DataType::TimestampTz),
        Type::INTERVAL_ARRAY => array(DataType::Interval),
        Type::DATE_ARRAY => array(DataType::Date),
        Type::TIME_ARRAY => array(DataType::Time),
        Type::UUID_ARRAY => array(DataType::Uuid),
        Type::NUMERIC_ARRAY => array(DataType::Numeric(None)),
        Type::JSONB_ARRAY | Type::JSON_ARRAY => array(DataType::Jsonb),
        ref other => {
            return Err(sql::Error::new(
                sql::SqlState::FeatureNotSupported,
                format!("parameter type {} is not supported", other.name()),
            ))
        }
    }))
}

/// One row as a DataRow, each column in its format.
pub fn encode_row(row: &[Value], formats: &[FieldFormat]) -> DataRow {
    let mut buf = BytesMut::with_capacity(16 * row.len());
    for (i, v) in row.iter().enumerate() {
        let binary = formats.get(i).is_some_and(|f| *f == FieldFormat::Binary);
        let start = buf.len();
        buf.put_i32(-1);
        let written = if binary { encode_binary(v, &mut buf) } else { encode_text(v, &mut buf) };
        if written {
            let len = (buf.len() - start - 4) as i32;
            buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
        }
    }
    DataRow::new(buf, row.len() as i16)
}

/// Appends `v` as text; false for NULL.
fn encode_text(v: &Value, buf: &mut BytesMut) -> bool {
    match v {
        Value::Null => false,
        v => {
            buf.put_slice(sql::ops::to_text(v).unwrap_or_default().as_bytes());
            true
        }
    }
}

/// Appends `v` in binary; false for NULL.
fn encode_binary(v: &Value, buf: &mut BytesMut) -> bool {
    match v {
        Value::Null => return false,
        Value::Bool(b) => buf.put_u8(u8::from(*b)),
        Value::Int2(n) => buf.put_i16(*n),
        Value::Int4(n) => buf.put_i32(*n),
        Value::Int8(n) => buf.put_i64(*n),
        Value::Float4(f) => buf.put_f32(*f),
        Value::Float8(f) => buf.put_f64(*f),
        Value::Text(s) => buf.put_slice(s.as_bytes()),
        Value::Bytea(b) => buf.put_slice(b),
        Value::Timestamp(us) | Value::TimestampTz(us) => buf.put_i64(us.saturating_sub(PG_EPOCH_OFFSET_US)),
        // Microseconds since midnight, as SpanDB keeps them.
        Value::Time(us) => buf.put_i64(*us),
        Value::Uuid(bytes) => buf.put_slice(bytes),
        Value::Numeric(d) => buf.put_slice(&sql::ops::numeric::to_binary(*d)),
        // jsonb's binary form: a version byte (1), then the text.
        Value::Jsonb(j) => {
            buf.put_u8(JSONB_BINARY_VERSION);
            buf.put_slice(sql::ops::jsonb::to_text(j).as_bytes());
        }
        // Days since 2000-01-01; the infinities as they are.
        Value::Date(days) => buf.put_i32(match *days {
            d @ (i32::MAX | i32::MIN) => d,
            d => d.saturating_sub(PG_EPOCH_OFFSET_DAYS),
        }),
        // PostgreSQL's binary interval: microseconds, days, months.
        Value::Interval(i) => {
            buf.put_i64(i.micros);
            buf.put_i32(i.days);
            buf.put_i32(i.months);
        }
        Value::Array(element, items) => {
            buf.put_i32(i32::from(!items.is_empty()));
            buf.put_i32(i32::from(items.iter().any(Value::is_null)));
            buf.put_u32(element.oid());
            if !items.is_empty() {
                buf.put_i32(i32::try_from(items.len()).unwrap_or(i32::MAX));
                buf.put_i32(1);
            }
            for item in items {
                let start = buf.len();
                buf.put_i32(-1);
                if encode_binary(item, buf) {
                    let len = (buf.len() - start - 4) as i32;
                    buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
        }
    }
    true
}

/// A binary one-dimensional array parameter of `element`s.
fn decode_array(mut bytes: &[u8], element: DataType) -> sql::Result<Value> {
    let bad =
        || sql::Error::new(sql::SqlState::ProtocolViolation, "incorrect binary data format in array bind parameter");
    let int = |bytes: &mut &[u8]| -> sql::Result<i32> {
        let (head, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
        *bytes = rest;
        Ok(i32::from_be_bytes(*head))
    };
    let dimensions = int(&mut bytes)?;
    let _has_nulls = int(&mut bytes)?;
    let _element_oid = int(&mut bytes)?;
    let len = match dimensions {
        0 => 0,
        1 => {
            let len = int(&mut bytes)?;
            let _lower_bound = int(&mut bytes)?;
            // Every element takes at least its 4-byte length.
            usize::try_from(len).ok().filter(|n| *n <= bytes.len() / 4).ok_or_else(bad)?
        }
        _ => {
            return Err(sql::Error::new(
                sql::SqlState::FeatureNotSupported,
                "multidimensional arrays are not supported",
            ))
        }
    };
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        let n = int(&mut bytes)?;
        if n < 0 {
            items.push(Value::Null);
            continue;
        }
        let n = usize::try_from(n).map_err(|_| bad())?;
        if n > bytes.len() {
            return Err(bad());
        }
        let (item, rest) = bytes.split_at(n);
        bytes = rest;
        items.push(decode_param(Some(item), element, true)?);
    }
    if !bytes.is_empty() {
        return Err(bad());
    }
    let Some(DataType::Array(element)) = DataType::array_of(element) else { return Err(bad()) };
    Ok(Value::Array(element, items))
}

/// A parameter's value from its bytes (`None`: NULL), of type `ty`.
pub fn decode_param(bytes: Option<&[u8]>, ty: DataType, binary: bool) -> sql::Result<Value> {
    let Some(bytes) = bytes else { return Ok(Value::Null) };
    if !binary {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| sql::Error::new(sql::SqlState::InvalidTextRepresentation, "parameter is not valid UTF-8"))?;
        return sql::ops::parse_text(text, ty);
    }
    let wrong_size = || {
        sql::Error::new(
            sql::SqlState::ProtocolViolation,
            format!("incorrect binary data format in bind parameter of type {}", pg_type(ty).name()),
        )
    };
    let fixed = |n: usize| -> sql::Result<&[u8]> {
        if bytes.len() == n {
            Ok(bytes)
        } else {
            Err(wrong_size())
        }
    };
    Ok(match ty {
        DataType::Bool => Value::Bool(fixed(1)?[0] != 0),
        DataType::Int2 => Value::Int2(i16::from_be_bytes(fixed(2)?.try_into().map_err(|_| wrong_size())?)),
        DataType::Int4 => Value::Int4(i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong_size())?)),
        DataType::Int8 => Value::Int8(i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong_size())?)),
        DataType::Float4 => Value::Float4(f32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong_size())?)),
        DataType::Float8 => Value::Float8(f64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong_size())?)),
        DataType::Timestamp => {
            let pg = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong_size())?);
            Value::Timestamp(pg.checked_add(PG_EPOCH_OFFSET_US).ok_or_else(wrong_size)?)
        }
        DataType::TimestampTz => {
            let pg = i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong_size())?);
            Value::TimestampTz(pg.checked_add(PG_EPOCH_OFFSET_US).ok_or_else(wrong_size)?)
        }
        DataType::Time => match i64::from_be_bytes(fixed(8)?.try_into().map_err(|_| wrong_size())?) {
            us @ 0..=sql::types::TIME_MICROS_MAX => Value::Time(us),
            _ => return Err(sql::Error::new(sql::SqlState::InvalidBinaryRepresentation, "time out of range")),
        },
        DataType::Bytea => Value::Bytea(bytes.to_vec()),
        DataType::Uuid => Value::Uuid(fixed(16)?.try_into().map_err(|_| wrong_size())?),
        DataType::Numeric(_) => Value::Numeric(sql::ops::numeric::from_binary(bytes)?),
        // jsonb's binary form has a version byte; json's is the text (a
        // JSON text never starts with the byte 1).
        DataType::Jsonb => {
            let text = bytes.strip_prefix(&[JSONB_BINARY_VERSION]).unwrap_or(bytes);
            let text = std::str::from_utf8(text).map_err(|_| wrong_size())?;
            Value::Jsonb(Box::new(sql::ops::jsonb::parse(text)?))
        }
        DataType::Date => match i32::from_be_bytes(fixed(4)?.try_into().map_err(|_| wrong_size())?) {
            d @ (i32::MAX | i32::MIN) => Value::Date(d),
            d => match d.checked_add(PG_EPOCH_OFFSET_DAYS).filter(|d| d.abs() <= sql::types::DATE_DAYS_MAX) {
                Some(d) => Value::Date(d),
                None => return Err(sql::Error::new(sql::SqlState::DatetimeFieldOverflow, "date out of range")),
            },
        },
        DataType::Interval => {
            let b = fixed(16)?;
            let word = |at: usize, n: usize| b[at..at + n].iter().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
            Value::Interval(sql::Interval {
                micros: word(0, 8) as i64,
                days: word(8, 4) as u32 as i32,
                months: word(12, 4) as u32 as i32,
            })
        }
        DataType::Text | DataType::Varchar(_) | DataType::Char(_) => {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                sql::Error::new(sql::SqlState::InvalidTextRepresentation, "parameter is not valid UTF-8")
            })?;
            // Through the text path: length limits and blank-padding.
            sql::ops::parse_text(text, ty)?
        }
        DataType::Array(element) => decode_array(bytes, *element)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(row: &DataRow) -> Vec<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let mut b = &row.data[..];
        for _ in 0..row.field_count {
            let len = i32::from_be_bytes(b[..4].try_into().unwrap());
            b = &b[4..];
            if len < 0 {
                out.push(None);
            } else {
                out.push(Some(b[..len as usize].to_vec()));
                b = &b[len as usize..];
            }
        }
        out
    }

    /// Goal: every type's binary value decodes to what was encoded, and
    /// its text value parses back to it; NULL is length -1 in both.
    /// Method: encode one row of every type in each format, decode each
    /// field as a parameter of its type.
    #[test]
    fn values_round_trip_in_both_formats() {
        let row = vec![
            (Value::Bool(true), DataType::Bool),
            (Value::Int2(-7), DataType::Int2),
            (Value::Int4(1 << 30), DataType::Int4),
            (Value::Int8(-(1 << 50)), DataType::Int8),
            (Value::Float4(1.5), DataType::Float4),
            (Value::Float8(-2.25e100), DataType::Float8),
            (Value::Text("héllo".into()), DataType::Text),
            (Value::Bytea(vec![0, 255, 10]), DataType::Bytea),
            (Value::Timestamp(1_796_169_559_683_367), DataType::Timestamp),
            (Value::TimestampTz(1_796_169_559_683_367), DataType::TimestampTz),
            (Value::Date(20_789), DataType::Date),
            (Value::Date(i32::MAX), DataType::Date),
            (Value::Time(14_706_500_001), DataType::Time),
            (Value::Time(sql::types::TIME_MICROS_MAX), DataType::Time),
            (Value::Numeric(sql::ops::numeric::parse("-12345.678").unwrap()), DataType::Numeric(None)),
            (Value::Jsonb(Box::new(sql::ops::jsonb::parse(r#"{"a": [1, 2.50, "é"]}"#).unwrap())), DataType::Jsonb),
            (Value::Interval(sql::Interval { months: -14, days: 3, micros: 14_706_500_000 }), DataType::Interval),
            (
                Value::Uuid([
                    0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11,
                ]),
                DataType::Uuid,
            ),
            (
                Value::Array(&DataType::Uuid, vec![Value::Uuid([7; 16]), Value::Null]),
                DataType::array_of(DataType::Uuid).unwrap(),
            ),
            (Value::Null, DataType::Int4),
            (
                Value::Array(&DataType::Int8, vec![Value::Int8(1), Value::Null, Value::Int8(-3)]),
                DataType::array_of(DataType::Int8).unwrap(),
            ),
            (
                Value::Array(&DataType::Text, vec![Value::Text("a b".into()), Value::Text(String::new())]),
                DataType::array_of(DataType::Text).unwrap(),
            ),
            (Value::Array(&DataType::Int4, vec![]), DataType::array_of(DataType::Int4).unwrap()),
        ];
        let values: Vec<Value> = row.iter().map(|(v, _)| v.clone()).collect();
        for format in [FieldFormat::Text, FieldFormat::Binary] {
            let encoded = encode_row(&values, &vec![format; values.len()]);
            for ((want, ty), got) in row.iter().zip(fields(&encoded)) {
                let back = decode_param(got.as_deref(), *ty, format == FieldFormat::Binary).unwrap();
                assert_eq!(&back, want, "{format:?} {ty:?}");
            }
        }
        // PostgreSQL's epoch: 2000-01-01 00:00:00 is binary zero.
        let y2k = encode_row(&[Value::Timestamp(PG_EPOCH_OFFSET_US)], &[FieldFormat::Binary]);
        assert_eq!(fields(&y2k), vec![Some(vec![0; 8])]);
    }

    /// Goal: a binary parameter of the wrong size is a protocol error
    /// (08P01), text that does not parse is 22P02, an unsupported
    /// declared type is 0A000: never a panic.
    #[test]
    fn malformed_parameters_are_typed_errors() {
        let e = decode_param(Some(&[1, 2, 3]), DataType::Int4, true).unwrap_err();
        assert_eq!(e.state.code(), "08P01");
        let e = decode_param(Some(b"abc"), DataType::Int4, false).unwrap_err();
        assert_eq!(e.state.code(), "22P02");
        let e = decode_param(Some(&[0xff, 0xfe]), DataType::Text, true).unwrap_err();
        assert_eq!(e.state.code(), "22P02");
        let e = declared_type(Some(&Type::XML)).unwrap_err();
        assert_eq!(e.state.code(), "0A000");
        assert_eq!(declared_type(Some(&Type::UNKNOWN)).unwrap(), None);
        let e = decode_param(Some(&i64::MAX.to_be_bytes()), DataType::Timestamp, true).unwrap_err();
        assert_eq!(e.state.code(), "08P01");
        // Arrays: a huge claimed length, a truncated element, two
        // dimensions.
        let int4s = DataType::array_of(DataType::Int4).unwrap();
        let header =
            |dims: i32, len: i32| -> Vec<u8> { [dims, 0, 23, len, 1].iter().flat_map(|i| i.to_be_bytes()).collect() };
        let e = decode_param(Some(&header(1, i32::MAX)), int4s, true).unwrap_err();
        assert_eq!(e.state.code(), "08P01");
        let mut truncated = header(1, 1);
        truncated.extend_from_slice(&[0, 0, 0, 4, 0]);
        assert_eq!(decode_param(Some(&truncated), int4s, true).unwrap_err().state.code(), "08P01");
        assert_eq!(decode_param(Some(&header(2, 1)), int4s, true).unwrap_err().state.code(), "0A000");
        assert_eq!(declared_type(Some(&Type::INT8_ARRAY)).unwrap(), DataType::array_of(DataType::Int8));
    }
}
