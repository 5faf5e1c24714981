//! How SQL rows and index entries become key-value pairs.
//!
//! SpanDB stores bytes under bytes and orders keys by comparing their bytes
//! (memcmp). SQL needs more than that from its keys: `WHERE id BETWEEN 3 AND
//! 9` must be one contiguous key range, `ORDER BY owner DESC` must come out
//! of an index already in order, and a person reading "key ... changed
//! after the transaction began" must be able to tell which row it was. This
//! module is where those needs are met, in two encodings:
//!
//! - **Keys** ([`encode_key_value`]) are *order-preserving*: the byte order
//!   of two encoded values is the SQL order of the values (reversed for a
//!   [`Direction::Desc`] column), so the KV layer sorts rows the way SQL
//!   would without knowing anything about SQL.
//! - **Row values** ([`encode_row`]) are *compact and evolvable*: each
//!   column is tagged with its column id, so the table's schema can change
//!   without rewriting the rows already stored.
//!
//! # The key layout
//!
//! Every SQL key is [`SQL_PREFIX`], the table id, the index id, then the
//! index's columns in index order. Take
//!
//! ```sql
//! CREATE TABLE accounts (id INT PRIMARY KEY, owner TEXT);  -- table id 52
//! CREATE INDEX owner_idx ON accounts (owner);              -- index id 2
//! INSERT INTO accounts VALUES (7, 'ann'), (8, NULL);
//! ```
//!
//! The primary index (id 1) holds the rows, keyed by `id`; `owner_idx`
//! holds one entry per row, keyed by `owner` and then by the primary key
//! (which keeps entries with equal owners apart) with an empty value:
//!
//! ```text
//!   pretty_key              key bytes                         value
//!   /Table/52/1/7           f0 5c 29 2f                       01 02 07 03 61 6e 6e  ({2:'ann'})
//!   /Table/52/1/8           f0 5c 29 30                       01                    ({}: owner is NULL)
//!   /Table/52/2/'ann'/7     f0 5c 2a 15 61 6e 6e 00 01 2f     ''
//!   /Table/52/2/NULL/8      f0 5c 2a ff 30                    ''
//! ```
//!
//! The bytes of the third key, one by one:
//!
//! ```text
//!   f0   5c   2a   15 61 6e 6e 00 01   2f
//!   │    │    │    │                   └ the int 7, held in its marker (0x28 + 7)
//!   │    │    │    └ text marker, 'ann', terminator 00 01 (a NULL would be ff)
//!   │    │    └ index id 2 (0x28 + 2)
//!   │    └ table id 52 (0x28 + 52)
//!   └ SQL_PREFIX
//! ```
//!
//! Table and index ids are encoded as ascending key ints, so
//! [`table_prefix`]`(52)` is a prefix of [`index_prefix`]`(52, i)` for
//! every `i`, all of table 52 is one key range, and inside it the indexes
//! follow one another in id order. [`prefix_end`] turns a prefix into the
//! exclusive end of its range (`/Table/52/2` for `/Table/52/1`).
//!
//! # Markers: every key value says what it is
//!
//! Each encoded value starts with one *marker* byte naming its type and
//! direction (CockroachDB's keys do the same). That costs a byte and buys:
//! [`pretty_key`] decodes any key without the schema (for conflict
//! messages, logs and debugging); a key decoded as the wrong type fails
//! loudly instead of yielding a plausible wrong value; NULL is a marker with
//! no payload, placed exactly where SQL wants it; and an integer carries its
//! width in the marker, so the small table ids, index ids and row ids of
//! everyday use take one byte in total.
//!
//! ```text
//!   ascending marker  type            payload
//!   0x10 / 0x11       bool            none: false / true
//!   0x12              float           8 bytes: the f64's bits, order-transformed
//!   0x13              timestamp(tz),  8 bytes: the i64, sign bit flipped, big-endian (one
//!                     date            form for all three: they compare by their counts,
//!                                     a date as its midnight's)
//!   0x14              bytea           the bytes, 0x00 escaped as 0x00 0xff, then 0x00 0x01
//!   0x15              text            the UTF-8 bytes, escaped and terminated as bytea
//!   0x17              uuid            16 bytes, as they are (fixed width: no terminator)
//!   0x19              numeric         a sign class (01 negative, 02 zero, 03 positive);
//!                                     unless zero, the decimal exponent (one byte, sign
//!                                     bit flipped) and the significant digits, each
//!                                     digit + 1, then 00; after a negative class, those
//!                                     bytes inverted (`ops::numeric::encode_key`)
//!   0x1a              jsonb           its document, node by node (`ops::jsonb::encode_key`);
//!                                     grouping and hashing only (no key column is jsonb)
//!   0x18              interval        16 bytes: its span (30-day months, 24-hour days) in
//!                                     microseconds, an i128, sign bit flipped; grouping
//!                                     and sorting only (no key column is an interval)
//!   0x20..=0x27       int < 0         8..=1 bytes: the low bytes of the two's complement
//!   0x28..=0x77       int 0..=79      none: the value is the marker minus 0x28
//!   0x78..=0x7f       int > 79        1..=8 bytes: the value, big-endian
//!   0xff              NULL            none
//!
//!   descending: every byte of the ascending encoding inverted, the marker
//!   too (so descending markers are 0x80..=0xef, and NULL is 0x00)
//! ```
//!
//! NULL aside (`0xff` ascending, `0x00` descending), ascending markers
//! live in `0x01..=0x7f` and descending ones in `0x80..=0xfe`, so the
//! marker alone tells the direction.
//!
//! # Why the order holds
//!
//! - *Integers* of every width (`int2`, `int4`, `int8`) share one form and
//!   compare by value: 7 is 7 whatever column type wrote it, and a lookup
//!   can build the key of an `int4` column from an `int8` constant. Markers
//!   order the width classes (more negative values need more bytes and get
//!   smaller markers; larger positive values need more bytes and get larger
//!   markers); inside a class, fixed-width big-endian bytes order by value.
//! - *Floats* (`real` widened exactly to `f64`, and `double precision`) use
//!   the standard transformation: flip the sign bit of a positive number,
//!   every bit of a negative one; the unsigned big-endian bits then order as
//!   the numbers do. `-0.0` is stored as `0.0` and every NaN as one NaN,
//!   which lands above `+Infinity`: PostgreSQL treats `-0 = 0` and
//!   `NaN = NaN` and sorts NaN above every other number, and a unique index
//!   must see equal values as one key.
//! - *Strings and bytes* order byte-wise (for text, that is code point
//!   order: PostgreSQL's "C" collation). They are terminated rather than
//!   running to the end of the key, because another column may follow;
//!   `0x00` inside is escaped as `0x00 0xff` so the terminator `0x00 0x01`
//!   cannot occur within, and sorts below every continuation: `'ab'` before
//!   `'ab\0'` (`00 01` < `00 ff`) before `'abc'` (`00` < `63`).
//! - *NULL* sorts after every value ascending and before every value
//!   descending, PostgreSQL's default (`NULLS LAST` for `ASC`, `NULLS
//!   FIRST` for `DESC`), so an index scan yields what `ORDER BY` means
//!   without a sort. Its marker `0xff` is above every ascending marker;
//!   inverted, `0x00` is below every descending one.
//! - *Descending* is the ascending encoding with every byte inverted. That
//!   reverses the order only because the ascending encodings of one column
//!   are **prefix-free** (no encoding is a proper prefix of another): two
//!   different encodings then differ at some byte inside both, and
//!   inverting flips exactly that comparison. Prefix-freedom is also what
//!   makes a key of several columns order like the tuple of its values: the
//!   first column whose encodings differ decides, as in the tuple.
//!
//! # Row values: column ids, not positions
//!
//! ```text
//!   version   column id  tag  payload   column id  tag  payload   ...
//!   0x01      LEB128     u8   ...       LEB128     u8   ...
//! ```
//!
//! A row value lists its non-NULL columns, each as its column id, a type tag
//! and the payload: ints as zigzag LEB128 varints, floats as their 4 or 8
//! IEEE bytes (little-endian), text and bytea as a varint length then the
//! bytes, a bool as one byte, a timestamp as a zigzag varint. Ids rather
//! than positions make schema changes cheap:
//!
//! - `ADD COLUMN` gives the column a new id. Rows written before it simply
//!   don't have that id, which reads as NULL: nothing is rewritten.
//! - `DROP COLUMN` retires the id (ids are never reused). Rows written
//!   before still carry its bytes; decoding returns them under the old id,
//!   and the reader skips ids its schema no longer has. The garbage goes
//!   away when the row is next written.
//! - A NULL column is not written at all: absence is NULL, so NULLs cost
//!   nothing and there is no NULL tag. [`encode_row`] skips any NULL it is
//!   given.
//!
//! The tags make a row readable without its schema, and decoding returns
//! the exact [`Value`] variant written (`int2` stays `Int2`, a `real` keeps
//! its `f32` bits, `-0.0` and NaN payloads included: row values are never
//! compared, so nothing is normalized). The version byte lets a future
//! format live beside this one; decoding refuses versions it doesn't know
//! rather than misreading them.
//!
//! # Invariants
//!
//! - Order: for two values `a`, `b` of one column type,
//!   `encode(a).cmp(encode(b))` is SQL's order of `a` and `b` (NULL last),
//!   reversed for `Desc`. Checked by the proptests below, per type and for
//!   two-column keys of mixed directions.
//! - One encoding per value: encoders write the canonical form (shortest
//!   int, `0.0` for `-0.0`, one NaN) and decoders reject every other form,
//!   so a key decodes to a value that encodes back to the same key.
//! - Untrusted input: decoding bytes that did not come from these encoders
//!   returns an [`Error`] with
//!   [`SqlState::InternalError`](crate::error::SqlState) (stored data is
//!   corrupt), never panics, and never allocates more than the input's
//!   length: every length read is checked against the bytes that remain.
//!   A decoder that fails leaves its `input` where it was.
//!
//! # Limits and caveats
//!
//! - Table, index and column ids are `u32`; key ints are `i64`.
//! - No collations: text orders by UTF-8 bytes (the "C" collation).
//! - A key does not name its columns; only the index's schema does, so
//!   [`pretty_key`] prints values, not column names.
//! - The direction is fixed per key column at encode time; a key column's
//!   type may not change in place (the index must be rebuilt).

use crate::error::{Error, Result, SqlState};
use crate::sql_err;
use crate::types::{DataType, Value};

/// The first byte of every SQL key (keeps SQL apart from raw `spandb kv`
/// keys, which are printable).
pub const SQL_PREFIX: u8 = 0xF0;

/// Ascending or descending order of a key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Direction {
    Asc,
    Desc,
}

/// Key markers, as written for an ascending column (a descending column's
/// marker is the bitwise inverse). See the module doc's table.
mod marker {
    /// NULL, after every ascending marker.
    pub const NULL: u8 = 0xFF;
    pub const FALSE: u8 = 0x10;
    pub const TRUE: u8 = 0x11;
    pub const FLOAT: u8 = 0x12;
    pub const TIMESTAMP: u8 = 0x13;
    pub const BYTES: u8 = 0x14;
    pub const TEXT: u8 = 0x15;
    /// A uuid: its 16 bytes.
    pub const UUID: u8 = 0x17;
    /// An interval's span (grouping and sorting only; never in a stored
    /// key: no key or index column is an interval).
    pub const INTERVAL: u8 = 0x18;
    /// A numeric: its sign, exponent and digits (`ops::numeric`).
    pub const NUMERIC: u8 = 0x19;
    /// A jsonb document (grouping and hashing only; never in a stored
    /// key: no key or index column is jsonb).
    pub const JSONB: u8 = 0x1A;
    /// An array: each element after ARRAY_ELEMENT, then ARRAY_END (a
    /// shorter array sorts first, a NULL element last). In stored keys
    /// only of arrays of types whose keys give their values back (not
    /// interval or jsonb).
    pub const ARRAY: u8 = 0x16;
    pub const ARRAY_END: u8 = 0x00;
    pub const ARRAY_ELEMENT: u8 = 0x01;
    /// A negative int of 8 bytes; `INT_ZERO - n` for one of `n` bytes.
    pub const INT_NEGATIVE_8_BYTES: u8 = 0x20;
    /// The int 0; `INT_ZERO + v` for `0 <= v <= INT_INLINE_MAX`.
    pub const INT_ZERO: u8 = 0x28;
    /// The largest int held in the marker itself.
    pub const INT_INLINE_MAX: i64 = 79;
    /// A positive int of 1 byte; `INT_POSITIVE_1_BYTE + n - 1` for `n` bytes.
    pub const INT_POSITIVE_1_BYTE: u8 = 0x78;
    /// A positive int of 8 bytes: the largest ascending marker.
    pub const INT_POSITIVE_8_BYTES: u8 = 0x7F;
}

/// Strings and bytes in keys: `0x00` is written as `ESCAPE, ESCAPED_ZERO`,
/// the end as `ESCAPE, TERMINATOR`.
const ESCAPE: u8 = 0x00;
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// The bits every NaN is stored as in a key (`f64::NAN`'s: positive, quiet),
/// which the float transformation puts above `+Infinity`.
const CANONICAL_NAN_BITS: u64 = 0x7FF8_0000_0000_0000;

const SIGN_BIT: u64 = 1 << 63;

/// Appends `value` to `out` so that byte order is the value order in
/// `direction` (NULL last ascending, first descending).
pub fn encode_key_value(out: &mut Vec<u8>, value: &Value, direction: Direction) {
    let start = out.len();
    match value {
        Value::Null => out.push(marker::NULL),
        Value::Bool(false) => out.push(marker::FALSE),
        Value::Bool(true) => out.push(marker::TRUE),
        Value::Int2(v) => encode_key_int(out, i64::from(*v)),
        Value::Int4(v) => encode_key_int(out, i64::from(*v)),
        Value::Int8(v) => encode_key_int(out, *v),
        Value::Float4(v) => encode_key_float(out, f64::from(*v)),
        Value::Float8(v) => encode_key_float(out, *v),
        Value::Text(s) => encode_key_bytes(out, marker::TEXT, s.as_bytes()),
        Value::Bytea(b) => encode_key_bytes(out, marker::BYTES, b),
        Value::Timestamp(_) | Value::TimestampTz(_) | Value::Date(_) => {
            let v = value.as_micros().unwrap_or_default();
            out.push(marker::TIMESTAMP);
            out.extend_from_slice(&((v as u64) ^ SIGN_BIT).to_be_bytes());
        }
        // A time of day as a timestamp's count (its key marker): the
        // column's type says which it is.
        Value::Time(us) => {
            out.push(marker::TIMESTAMP);
            out.extend_from_slice(&((*us as u64) ^ SIGN_BIT).to_be_bytes());
        }
        Value::Uuid(bytes) => {
            out.push(marker::UUID);
            out.extend_from_slice(bytes);
        }
        Value::Numeric(d) => {
            out.push(marker::NUMERIC);
            crate::ops::numeric::encode_key(out, *d);
        }
        Value::Jsonb(j) => {
            out.push(marker::JSONB);
            crate::ops::jsonb::encode_key(out, j);
        }
        Value::Interval(i) => {
            out.push(marker::INTERVAL);
            out.extend_from_slice(&((crate::ops::interval::span(i) as u128) ^ (1 << 127)).to_be_bytes());
        }
        Value::Array(_, items) => {
            out.push(marker::ARRAY);
            for item in items {
                out.push(marker::ARRAY_ELEMENT);
                encode_key_value(out, item, Direction::Asc);
            }
            out.push(marker::ARRAY_END);
        }
    }
    if direction == Direction::Desc {
        for byte in &mut out[start..] {
            *byte = !*byte;
        }
    }
}

/// The number of bytes (1..=8) big-endian `x` needs without leading zeros.
fn byte_width(x: u64) -> usize {
    let significant_bits = 64 - x.leading_zeros() as usize;
    significant_bits.div_ceil(8).max(1)
}

fn encode_key_int(out: &mut Vec<u8>, v: i64) {
    let bytes = (v as u64).to_be_bytes();
    if v < 0 {
        // The low `n` bytes of v's two's complement are v + 256^n, which
        // orders the negative values that fit in n bytes; `!v` is -v-1 >= 0.
        let width = byte_width(!v as u64);
        out.push(marker::INT_ZERO - width as u8);
        out.extend_from_slice(&bytes[8 - width..]);
    } else if v <= marker::INT_INLINE_MAX {
        out.push(marker::INT_ZERO + v as u8);
    } else {
        let width = byte_width(v as u64);
        out.push(marker::INT_POSITIVE_1_BYTE + (width as u8 - 1));
        out.extend_from_slice(&bytes[8 - width..]);
    }
}

fn encode_key_float(out: &mut Vec<u8>, v: f64) {
    let canonical = if v.is_nan() {
        f64::from_bits(CANONICAL_NAN_BITS)
    } else if v == 0.0 {
        0.0 // -0.0 too
    } else {
        v
    };
    let bits = canonical.to_bits();
    let ordered = if bits & SIGN_BIT != 0 { !bits } else { bits | SIGN_BIT };
    out.push(marker::FLOAT);
    out.extend_from_slice(&ordered.to_be_bytes());
}

fn encode_key_bytes(out: &mut Vec<u8>, type_marker: u8, bytes: &[u8]) {
    out.push(type_marker);
    for &byte in bytes {
        if byte == ESCAPE {
            out.extend_from_slice(&[ESCAPE, ESCAPED_ZERO]);
        } else {
            out.push(byte);
        }
    }
    out.extend_from_slice(&[ESCAPE, TERMINATOR]);
}

/// Decodes one value of type `ty` from the front of `input`, advancing it.
///
/// The value comes back as the column's variant (`Int2` for an `int2`
/// column, `Text` for `varchar`). A marker of another type or direction, a
/// value out of the column type's range, or malformed bytes are an
/// `InternalError`, and leave `input` unchanged.
pub fn decode_key_value(input: &mut &[u8], ty: DataType, direction: Direction) -> Result<Value> {
    let mut rest = *input;
    let (found_direction, value) = decode_key_value_general(&mut rest)?;
    if found_direction != direction {
        return sql_err!(
            InternalError,
            "corrupt key: expected a {} value, found a {} one",
            direction_name(direction),
            direction_name(found_direction)
        );
    }
    let value = narrow_key_value(value, ty)?;
    *input = rest;
    Ok(value)
}

/// Decodes one value from the front of `input` by its marker alone,
/// whatever its direction, advancing `input`: what [`pretty_key`] uses.
/// Ints come back as [`Value::Int8`], floats as [`Value::Float8`] and
/// timestamptz and date values as [`Value::Timestamp`] (the key doesn't record the
/// width or kind the column had).
pub fn decode_key_value_any(input: &mut &[u8]) -> Result<Value> {
    decode_key_value_with_direction(input).map(|(_, value)| value)
}

/// [`decode_key_value_any`], also saying which direction the value was
/// encoded in.
pub fn decode_key_value_with_direction(input: &mut &[u8]) -> Result<(Direction, Value)> {
    let mut rest = *input;
    let decoded = decode_key_value_general(&mut rest)?;
    *input = rest;
    Ok(decoded)
}

fn direction_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Asc => "ascending",
        Direction::Desc => "descending",
    }
}

/// The value at the front of `input` in its general form (ints as `Int8`,
/// floats as `Float8`). Advances `input` even on error; callers copy.
fn decode_key_value_general(input: &mut &[u8]) -> Result<(Direction, Value)> {
    let Some((&raw_marker, rest)) = input.split_first() else {
        return sql_err!(InternalError, "corrupt key: a value is missing (the key ends)");
    };
    *input = rest;
    // Ascending markers are 0x01..=0x7f and 0xff (NULL); descending ones are
    // their inverses. `flip` undoes the inversion of the payload bytes.
    let (direction, ascending_marker) = match raw_marker {
        0x00 | 0x80..=0xFE => (Direction::Desc, !raw_marker),
        _ => (Direction::Asc, raw_marker),
    };
    let flip = match direction {
        Direction::Asc => 0x00,
        Direction::Desc => 0xFF,
    };
    let value = match ascending_marker {
        marker::NULL => Value::Null,
        marker::FALSE => Value::Bool(false),
        marker::TRUE => Value::Bool(true),
        marker::FLOAT => Value::Float8(decode_key_float(input, flip)?),
        marker::TIMESTAMP => {
            let bits = u64::from_be_bytes(take_key_array(input, flip, "timestamp")?);
            Value::Timestamp((bits ^ SIGN_BIT) as i64)
        }
        marker::BYTES => Value::Bytea(decode_key_bytes(input, flip)?),
        marker::UUID => Value::Uuid(take_key_array(input, flip, "uuid")?),
        marker::NUMERIC => Value::Numeric(crate::ops::numeric::decode_key(input, flip)?),
        marker::INTERVAL => {
            // The span only: as days and microseconds.
            let span = (u128::from_be_bytes(take_key_array(input, flip, "interval")?) ^ (1 << 127)) as i128;
            let day = 86_400_000_000_i128;
            match (i32::try_from(span.div_euclid(day)), i64::try_from(span.rem_euclid(day))) {
                (Ok(days), Ok(micros)) => Value::Interval(crate::types::Interval { months: 0, days, micros }),
                _ => return sql_err!(InternalError, "corrupt key: an interval's span {span} is out of range"),
            }
        }
        marker::TEXT => {
            let bytes = decode_key_bytes(input, flip)?;
            match String::from_utf8(bytes) {
                Ok(s) => Value::Text(s),
                Err(e) => return sql_err!(InternalError, "corrupt key: text is not valid UTF-8 ({e})"),
            }
        }
        marker::INT_NEGATIVE_8_BYTES..=marker::INT_POSITIVE_8_BYTES => {
            Value::Int8(decode_key_int(input, ascending_marker, flip)?)
        }
        marker::ARRAY => decode_key_array(input, (direction, flip))?,
        _ => return sql_err!(InternalError, "corrupt key: unknown marker byte 0x{raw_marker:02x}"),
    };
    Ok((direction, value))
}

/// An array's elements after its marker, in their general form; its
/// element type is the first non-NULL element's (text if none): a
/// column's type narrows both ([`narrow_key_value`]).
fn decode_key_array(input: &mut &[u8], (direction, flip): (Direction, u8)) -> Result<Value> {
    let mut items = Vec::new();
    loop {
        let Some((&byte, rest)) = input.split_first() else {
            return sql_err!(InternalError, "corrupt key: an array is not terminated");
        };
        *input = rest;
        match byte ^ flip {
            marker::ARRAY_END => break,
            marker::ARRAY_ELEMENT => {
                // No array in an array (checked before decoding it: keys
                // of nested markers must not recurse deep).
                if input.first().is_some_and(|&b| b == marker::ARRAY || b == !marker::ARRAY) {
                    return sql_err!(InternalError, "corrupt key: a malformed array element");
                }
                // (The whole array was inverted: each element too.)
                let (element_direction, item) = decode_key_value_general(input)?;
                if element_direction != direction {
                    return sql_err!(InternalError, "corrupt key: a malformed array element");
                }
                items.push(item);
            }
            other => return sql_err!(InternalError, "corrupt key: byte 0x{other:02x} in an array"),
        }
    }
    let element = items
        .iter()
        .find_map(Value::data_type)
        .and_then(DataType::array_of)
        .and_then(|a| match a {
            DataType::Array(e) => Some(e),
            _ => None,
        })
        .unwrap_or(&DataType::Text);
    Ok(Value::Array(element, items))
}

/// The next `N` bytes of `input`, un-inverted by `flip`.
fn take_key_array<const N: usize>(input: &mut &[u8], flip: u8, what: &str) -> Result<[u8; N]> {
    if input.len() < N {
        return sql_err!(InternalError, "corrupt key: a {what} needs {N} bytes, {} are left", input.len());
    }
    let (head, rest) = input.split_at(N);
    let mut array = [0u8; N];
    for (slot, byte) in array.iter_mut().zip(head) {
        *slot = byte ^ flip;
    }
    *input = rest;
    Ok(array)
}

fn decode_key_int(input: &mut &[u8], ascending_marker: u8, flip: u8) -> Result<i64> {
    let zero = marker::INT_ZERO;
    if (zero..zero + marker::INT_INLINE_MAX as u8 + 1).contains(&ascending_marker) {
        return Ok(i64::from(ascending_marker - zero));
    }
    let negative = ascending_marker < zero;
    let width = if negative {
        usize::from(zero - ascending_marker)
    } else {
        usize::from(ascending_marker - marker::INT_POSITIVE_1_BYTE) + 1
    };
    if input.len() < width {
        return sql_err!(InternalError, "corrupt key: an int needs {width} bytes, {} are left", input.len());
    }
    let (payload, rest) = input.split_at(width);
    *input = rest;
    let mut bytes = [if negative { 0xFF } else { 0x00 }; 8];
    for (slot, byte) in bytes[8 - width..].iter_mut().zip(payload) {
        *slot = byte ^ flip;
    }
    let bits = u64::from_be_bytes(bytes);
    let canonical = if negative {
        let v = bits as i64;
        v < 0 && byte_width(!bits) == width
    } else {
        // `bits` fits in `width` bytes by construction; it must need all
        // of them, be above the inline range and fit an i64.
        bits > marker::INT_INLINE_MAX as u64 && bits <= i64::MAX as u64 && byte_width(bits) == width
    };
    if !canonical {
        return sql_err!(
            InternalError,
            "corrupt key: an int is not in its shortest form (marker 0x{ascending_marker:02x})"
        );
    }
    Ok(bits as i64)
}

fn decode_key_float(input: &mut &[u8], flip: u8) -> Result<f64> {
    let ordered = u64::from_be_bytes(take_key_array(input, flip, "float")?);
    let bits = if ordered & SIGN_BIT != 0 { ordered ^ SIGN_BIT } else { !ordered };
    let v = f64::from_bits(bits);
    if (v.is_nan() && bits != CANONICAL_NAN_BITS) || (v == 0.0 && v.is_sign_negative()) {
        return sql_err!(InternalError, "corrupt key: a float is not in canonical form (bits 0x{bits:016x})");
    }
    Ok(v)
}

/// Unescapes bytes up to and including their terminator. Allocates at most
/// the length of `input`.
fn decode_key_bytes(input: &mut &[u8], flip: u8) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Some(escape_at) = input.iter().position(|&b| b ^ flip == ESCAPE) else {
            return sql_err!(InternalError, "corrupt key: a string or bytea value has no terminator");
        };
        out.extend(input[..escape_at].iter().map(|b| b ^ flip));
        let Some(&escaped) = input.get(escape_at + 1) else {
            return sql_err!(InternalError, "corrupt key: a string or bytea value ends inside an escape");
        };
        *input = &input[escape_at + 2..];
        match escaped ^ flip {
            ESCAPED_ZERO => out.push(0x00),
            TERMINATOR => return Ok(out),
            other => {
                return sql_err!(InternalError, "corrupt key: invalid escape 0x00 0x{other:02x} in a string or bytea");
            }
        }
    }
}

/// `value` (general form) as a value of column type `ty`.
fn narrow_key_value(value: Value, ty: DataType) -> Result<Value> {
    let narrowed = match (ty.base(), value) {
        (_, Value::Null) => Value::Null,
        (DataType::Bool, v @ Value::Bool(_)) => v,
        (DataType::Int2, Value::Int8(v)) => match i16::try_from(v) {
            Ok(v) => Value::Int2(v),
            Err(_) => return sql_err!(InternalError, "corrupt key: {v} is out of range for smallint"),
        },
        (DataType::Int4, Value::Int8(v)) => match i32::try_from(v) {
            Ok(v) => Value::Int4(v),
            Err(_) => return sql_err!(InternalError, "corrupt key: {v} is out of range for integer"),
        },
        (DataType::Int8, v @ Value::Int8(_)) => v,
        (DataType::Float4, Value::Float8(v)) => {
            let narrow = v as f32;
            if !v.is_nan() && f64::from(narrow) != v {
                return sql_err!(InternalError, "corrupt key: {v:?} is not a real (float4) value");
            }
            Value::Float4(narrow)
        }
        (DataType::Float8, v @ Value::Float8(_)) => v,
        (DataType::Text, v @ Value::Text(_)) => v,
        (DataType::Bytea, v @ Value::Bytea(_)) => v,
        (DataType::Timestamp, v @ Value::Timestamp(_)) => v,
        (DataType::TimestampTz, Value::Timestamp(v)) => Value::TimestampTz(v),
        (DataType::Date, Value::Timestamp(v)) => match v {
            i64::MAX => Value::Date(i32::MAX),
            i64::MIN => Value::Date(i32::MIN),
            v => match i32::try_from(v / 86_400_000_000) {
                Ok(days) if v % 86_400_000_000 == 0 => Value::Date(days),
                _ => return sql_err!(InternalError, "corrupt key: {v} is not a date's midnight"),
            },
        },
        (DataType::Time, Value::Timestamp(v)) if (0..=crate::types::TIME_MICROS_MAX).contains(&v) => Value::Time(v),
        (DataType::Uuid, v @ Value::Uuid(_)) => v,
        (DataType::Array(element), Value::Array(_, items)) => {
            let items = items.into_iter().map(|i| narrow_key_value(i, *element)).collect::<Result<_>>()?;
            Value::Array(element, items)
        }
        // A key keeps a numeric's value, not its scale: a column's scale
        // comes back from its type (an unconstrained column's shows the
        // digits the value needs).
        (DataType::Numeric(_), Value::Numeric(d)) => match ty {
            DataType::Numeric(Some(typmod)) => Value::Numeric(
                crate::ops::numeric::apply_typmod(d, typmod)
                    .map_err(|e| Error::new(SqlState::InternalError, format!("corrupt key: {}", e.message)))?,
            ),
            _ => Value::Numeric(d),
        },
        (_, found) => {
            let found_type = found.data_type().map_or_else(|| "NULL".to_string(), |t| t.sql_name());
            return sql_err!(InternalError, "corrupt key: expected a {ty} value, found a {found_type} one");
        }
    };
    Ok(narrowed)
}

/// `SQL_PREFIX /table_id/index_id/`.
pub fn index_prefix(table_id: u32, index_id: u32) -> Vec<u8> {
    let mut key = table_prefix(table_id);
    encode_key_int(&mut key, i64::from(index_id));
    key
}

/// `SQL_PREFIX /table_id/`.
pub fn table_prefix(table_id: u32) -> Vec<u8> {
    let mut key = vec![SQL_PREFIX];
    encode_key_int(&mut key, i64::from(table_id));
    key
}

/// Splits a SQL key into its table id, index id and the rest (the index's
/// column values).
pub fn decode_index_prefix(key: &[u8]) -> Result<(u32, u32, &[u8])> {
    let Some((&SQL_PREFIX, mut rest)) = key.split_first() else {
        return sql_err!(InternalError, "not a SQL key: {}", pretty_key(key));
    };
    let table_id = decode_id(&mut rest, "table")?;
    let index_id = decode_id(&mut rest, "index")?;
    Ok((table_id, index_id, rest))
}

/// A table or index id: an ascending key int in `u32` range.
fn decode_id(input: &mut &[u8], what: &str) -> Result<u32> {
    let mut rest = *input;
    match decode_key_value_general(&mut rest) {
        Ok((Direction::Asc, Value::Int8(v))) => match u32::try_from(v) {
            Ok(id) => {
                *input = rest;
                Ok(id)
            }
            Err(_) => sql_err!(InternalError, "corrupt key: {what} id {v} is out of range"),
        },
        Ok((direction, v)) => {
            sql_err!(InternalError, "corrupt key: {what} id is {v:?} ({}), not an id", direction_name(direction))
        }
        Err(e) => Err(e),
    }
}

/// The smallest key greater than every key starting with `prefix`.
///
/// That is `prefix` with its last byte that is not `0xff` incremented and
/// the `0xff`s after it dropped. An empty prefix, or one of only `0xff`s,
/// has no such key (every key above it starts with it): the result is then
/// empty, which means "unbounded" as the end of a scan.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    end
}

/// The row format [`encode_row`] writes, its first byte.
pub const ROW_FORMAT_VERSION: u8 = 1;

/// Type tags of row values.
mod tag {
    pub const BOOL: u8 = 1;
    pub const INT2: u8 = 2;
    pub const INT4: u8 = 3;
    pub const INT8: u8 = 4;
    pub const FLOAT4: u8 = 5;
    pub const FLOAT8: u8 = 6;
    pub const TEXT: u8 = 7;
    pub const BYTEA: u8 = 8;
    pub const TIMESTAMP: u8 = 9;
    /// A NULL written out (for a column whose absence means something
    /// else: `ColumnDesc::missing`).
    pub const NULL: u8 = 10;
    /// An array: its element type's oid, then its text form.
    pub const ARRAY: u8 = 11;
    /// A uuid: its 16 bytes.
    pub const UUID: u8 = 12;
    pub const TIMESTAMPTZ: u8 = 13;
    /// An interval: months, days, microseconds, each a zigzag varint.
    pub const INTERVAL: u8 = 14;
    pub const DATE: u8 = 15;
    /// A numeric: its 16 bytes as `rust_decimal` serializes them (flags
    /// with sign and scale, then the 96-bit magnitude, little-endian).
    pub const NUMERIC: u8 = 16;
    /// A jsonb document: its text, length-prefixed.
    pub const JSONB: u8 = 17;
    /// A time of day: microseconds since midnight, a zigzag varint.
    pub const TIME: u8 = 18;
}

/// A row's value: the non-NULL columns, each with its column id.
///
/// NULLs in `columns` are skipped: a column the value doesn't hold is NULL.
/// Each column id should appear at most once.
pub fn encode_row(columns: &[(u32, &Value)]) -> Vec<u8> {
    encode_row_with_nulls(columns, &|_| false)
}

/// Like [`encode_row`], writing out the NULLs of the columns `explicit`
/// names (decoded as NULL, where an absent column may decode otherwise).
pub fn encode_row_with_nulls(columns: &[(u32, &Value)], explicit: &dyn Fn(u32) -> bool) -> Vec<u8> {
    debug_assert!(
        columns.iter().enumerate().all(|(i, (id, _))| columns[..i].iter().all(|(earlier, _)| earlier != id)),
        "encode_row: a column id appears twice"
    );
    let mut out = vec![ROW_FORMAT_VERSION];
    for &(column_id, value) in columns {
        let tag = match value {
            Value::Null if !explicit(column_id) => continue,
            Value::Null => tag::NULL,
            Value::Bool(_) => tag::BOOL,
            Value::Int2(_) => tag::INT2,
            Value::Int4(_) => tag::INT4,
            Value::Int8(_) => tag::INT8,
            Value::Float4(_) => tag::FLOAT4,
            Value::Float8(_) => tag::FLOAT8,
            Value::Text(_) => tag::TEXT,
            Value::Bytea(_) => tag::BYTEA,
            Value::Timestamp(_) => tag::TIMESTAMP,
            Value::TimestampTz(_) => tag::TIMESTAMPTZ,
            Value::Interval(_) => tag::INTERVAL,
            Value::Date(_) => tag::DATE,
            Value::Time(_) => tag::TIME,
            Value::Uuid(_) => tag::UUID,
            Value::Numeric(_) => tag::NUMERIC,
            Value::Jsonb(_) => tag::JSONB,
            Value::Array(..) => tag::ARRAY,
        };
        write_uvarint(&mut out, u64::from(column_id));
        out.push(tag);
        match value {
            Value::Null => {}
            Value::Bool(b) => out.push(u8::from(*b)),
            Value::Int2(v) => write_uvarint(&mut out, zigzag(i64::from(*v))),
            Value::Int4(v) | Value::Date(v) => write_uvarint(&mut out, zigzag(i64::from(*v))),
            Value::Int8(v) | Value::Timestamp(v) | Value::TimestampTz(v) | Value::Time(v) => {
                write_uvarint(&mut out, zigzag(*v))
            }
            Value::Float4(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            Value::Float8(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            Value::Text(s) => write_length_prefixed(&mut out, s.as_bytes()),
            Value::Bytea(b) => write_length_prefixed(&mut out, b),
            Value::Uuid(bytes) => out.extend_from_slice(bytes),
            Value::Numeric(d) => out.extend_from_slice(&d.serialize()),
            Value::Jsonb(j) => write_length_prefixed(&mut out, crate::ops::jsonb::to_text(j).as_bytes()),
            Value::Interval(i) => {
                write_uvarint(&mut out, zigzag(i64::from(i.months)));
                write_uvarint(&mut out, zigzag(i64::from(i.days)));
                write_uvarint(&mut out, zigzag(i.micros));
            }
            Value::Array(element, items) => {
                write_uvarint(&mut out, u64::from(element.oid()));
                write_length_prefixed(&mut out, crate::ops::array::to_text(items).as_bytes());
            }
        }
    }
    out
}

/// A row value's integer in its column type's width (`what` names the
/// type), or the corruption error.
fn narrow<T: TryFrom<i64>>(v: i64, what: &str) -> Result<T> {
    T::try_from(v)
        .map_err(|_| Error::new(SqlState::InternalError, format!("corrupt row value: {v} is out of range for {what}")))
}

/// The columns a row value holds (column id, value), in the order written.
pub fn decode_row(bytes: &[u8]) -> Result<Vec<(u32, Value)>> {
    let Some((&version, mut input)) = bytes.split_first() else {
        return sql_err!(InternalError, "corrupt row value: empty (no format version)");
    };
    if version != ROW_FORMAT_VERSION {
        return sql_err!(
            InternalError,
            "corrupt row value: unknown format version {version} (this build reads {ROW_FORMAT_VERSION})"
        );
    }
    let mut columns = Vec::new();
    while !input.is_empty() {
        let column_id = read_uvarint(&mut input)?;
        let Ok(column_id) = u32::try_from(column_id) else {
            return sql_err!(InternalError, "corrupt row value: column id {column_id} is out of range");
        };
        let tag = take_row_bytes(&mut input, 1, "type tag")?[0];
        let value = match tag {
            tag::NULL => Value::Null,
            tag::BOOL => match take_row_bytes(&mut input, 1, "bool")?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => return sql_err!(InternalError, "corrupt row value: bool byte {other}"),
            },
            tag::INT2 => Value::Int2(narrow(unzigzag(read_uvarint(&mut input)?), "smallint")?),
            tag::INT4 => Value::Int4(narrow(unzigzag(read_uvarint(&mut input)?), "integer")?),
            tag::INT8 => Value::Int8(unzigzag(read_uvarint(&mut input)?)),
            tag::TIMESTAMP => Value::Timestamp(unzigzag(read_uvarint(&mut input)?)),
            tag::TIMESTAMPTZ => Value::TimestampTz(unzigzag(read_uvarint(&mut input)?)),
            tag::DATE => Value::Date(narrow(unzigzag(read_uvarint(&mut input)?), "date")?),
            tag::TIME => match unzigzag(read_uvarint(&mut input)?) {
                us @ 0..=crate::types::TIME_MICROS_MAX => Value::Time(us),
                us => return sql_err!(InternalError, "corrupt row value: {us} is out of range for time"),
            },
            tag::INTERVAL => {
                let months = unzigzag(read_uvarint(&mut input)?);
                let days = unzigzag(read_uvarint(&mut input)?);
                let micros = unzigzag(read_uvarint(&mut input)?);
                match (i32::try_from(months), i32::try_from(days)) {
                    (Ok(months), Ok(days)) => Value::Interval(crate::types::Interval { months, days, micros }),
                    _ => {
                        return sql_err!(
                            InternalError,
                            "corrupt row value: column {column_id}'s interval is out of range"
                        )
                    }
                }
            }
            tag::FLOAT4 => {
                let mut bits = [0u8; 4];
                bits.copy_from_slice(take_row_bytes(&mut input, 4, "real")?);
                Value::Float4(f32::from_bits(u32::from_le_bytes(bits)))
            }
            tag::FLOAT8 => {
                let mut bits = [0u8; 8];
                bits.copy_from_slice(take_row_bytes(&mut input, 8, "double precision")?);
                Value::Float8(f64::from_bits(u64::from_le_bytes(bits)))
            }
            tag::TEXT => match std::str::from_utf8(read_length_prefixed(&mut input, "text")?) {
                Ok(s) => Value::Text(s.to_string()),
                Err(e) => {
                    return sql_err!(InternalError, "corrupt row value: column {column_id}'s text is not UTF-8 ({e})")
                }
            },
            tag::BYTEA => Value::Bytea(read_length_prefixed(&mut input, "bytea")?.to_vec()),
            tag::UUID => {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(take_row_bytes(&mut input, 16, "uuid")?);
                Value::Uuid(bytes)
            }
            tag::NUMERIC => {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(take_row_bytes(&mut input, 16, "numeric")?);
                // Flags: the scale in bits 16..24, the sign in bit 31, nothing else.
                let flags = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                if flags & 0x7F00_FFFF != 0 || (flags >> 16) & 0xFF > crate::ops::numeric::SCALE_MAX {
                    return sql_err!(InternalError, "corrupt row value: column {column_id}'s numeric flags {flags:#x}");
                }
                Value::Numeric(crate::ops::numeric::Decimal::deserialize(bytes))
            }
            tag::JSONB => match std::str::from_utf8(read_length_prefixed(&mut input, "jsonb")?) {
                Ok(text) => Value::Jsonb(Box::new(crate::ops::jsonb::parse(text).map_err(|e| {
                    Error::new(SqlState::InternalError, format!("corrupt row value: column {column_id}'s jsonb: {e}"))
                })?)),
                Err(e) => {
                    return sql_err!(InternalError, "corrupt row value: column {column_id}'s jsonb is not UTF-8 ({e})")
                }
            },
            tag::ARRAY => {
                let oid = read_uvarint(&mut input)?;
                let text = read_length_prefixed(&mut input, "array")?;
                let element = u32::try_from(oid).ok().and_then(DataType::array_element_by_oid);
                match (element, std::str::from_utf8(text)) {
                    (Some(e), Ok(text)) => crate::ops::array::parse(text, e)?,
                    _ => return sql_err!(InternalError, "corrupt row value: bad array in column {column_id}"),
                }
            }
            other => {
                return sql_err!(InternalError, "corrupt row value: unknown type tag {other} for column {column_id}")
            }
        };
        columns.push((column_id, value));
    }
    Ok(columns)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// LEB128: 7 bits a byte, least significant first, high bit set on every
/// byte but the last.
fn write_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The longest LEB128 encoding of a u64.
const UVARINT_BYTES_MAX: usize = 10;

fn read_uvarint(input: &mut &[u8]) -> Result<u64> {
    let mut v: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(UVARINT_BYTES_MAX) {
        let low_bits = u64::from(byte & 0x7F);
        if i == UVARINT_BYTES_MAX - 1 && byte > 0x01 {
            return sql_err!(InternalError, "corrupt row value: a varint overflows 64 bits");
        }
        v |= low_bits << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return sql_err!(InternalError, "corrupt row value: a varint is not in its shortest form");
            }
            *input = &input[i + 1..];
            return Ok(v);
        }
    }
    // Every byte of a 10-byte varint returns above, so the input ended.
    sql_err!(InternalError, "corrupt row value: the value ends inside a varint")
}

fn write_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    write_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn read_length_prefixed<'a>(input: &mut &'a [u8], what: &str) -> Result<&'a [u8]> {
    let length = read_uvarint(input)?;
    if length > input.len() as u64 {
        return sql_err!(
            InternalError,
            "corrupt row value: a {what} of {length} bytes, but only {} bytes are left",
            input.len()
        );
    }
    take_row_bytes(input, length as usize, what)
}

fn take_row_bytes<'a>(input: &mut &'a [u8], count: usize, what: &str) -> Result<&'a [u8]> {
    if input.len() < count {
        return sql_err!(InternalError, "corrupt row value: a {what} needs {count} bytes, {} are left", input.len());
    }
    let (head, rest) = input.split_at(count);
    *input = rest;
    Ok(head)
}

/// A key for people: `/Table/52/1/'abc'/3`, raw bytes escaped where it is
/// not a SQL key.
///
/// Values print as SQL literals (`7`, `1.5`, `'it''s'`, `x'00ff'`,
/// `TIMESTAMP '2024-01-01 12:00:00'`, `true`, `NULL`), prefixed `desc:` in a
/// descending column. What doesn't decode is shown after what did, as a
/// double-quoted escaped byte string: `/Table/52/1/"\xfe\x01"`. A key that
/// is not a SQL key is only that string: `"user/1"`.
pub fn pretty_key(key: &[u8]) -> String {
    let Some((&SQL_PREFIX, mut rest)) = key.split_first() else {
        return quoted_bytes(key);
    };
    let mut pretty = String::from("/Table");
    // The table and index ids, then the columns.
    for what in ["table", "index"] {
        if rest.is_empty() {
            return pretty;
        }
        match decode_id(&mut rest, what) {
            Ok(id) => pretty.push_str(&format!("/{id}")),
            Err(_) => {
                pretty.push('/');
                pretty.push_str(&quoted_bytes(rest));
                return pretty;
            }
        }
    }
    while !rest.is_empty() {
        pretty.push('/');
        match decode_key_value_with_direction(&mut rest) {
            Ok((direction, value)) => {
                if direction == Direction::Desc {
                    pretty.push_str("desc:");
                }
                pretty.push_str(&pretty_value(&value));
            }
            Err(_) => {
                pretty.push_str(&quoted_bytes(rest));
                break;
            }
        }
    }
    pretty
}

fn quoted_bytes(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// A value as a SQL literal.
fn pretty_value(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int2(v) => v.to_string(),
        Value::Int4(v) => v.to_string(),
        Value::Int8(v) => v.to_string(),
        Value::Float4(v) => pretty_float(f64::from(*v)),
        Value::Float8(v) => pretty_float(*v),
        Value::Text(s) => {
            let mut literal = String::with_capacity(s.len() + 2);
            literal.push('\'');
            for c in s.chars() {
                match c {
                    '\'' => literal.push_str("''"),
                    c if c.is_control() => literal.extend(c.escape_default()),
                    c => literal.push(c),
                }
            }
            literal.push('\'');
            literal
        }
        Value::Bytea(bytes) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!("x'{hex}'")
        }
        Value::Timestamp(micros) => match chrono::DateTime::from_timestamp_micros(*micros) {
            Some(t) => format!("TIMESTAMP '{}'", t.naive_utc().format("%Y-%m-%d %H:%M:%S%.f")),
            None => format!("TIMESTAMP {micros}"),
        },
        Value::Numeric(d) => crate::ops::numeric::to_text(*d),
        Value::Jsonb(j) => format!("'{}'::JSONB", crate::ops::jsonb::to_text(j).replace('\'', "''")),
        Value::Uuid(_) | Value::TimestampTz(_) | Value::Interval(_) | Value::Date(_) | Value::Time(_) => {
            format!(
                "{} '{}'",
                value.data_type().map(DataType::sql_name).unwrap_or_default().to_uppercase(),
                crate::ops::to_text(value).unwrap_or_default()
            )
        }
        Value::Array(_, items) => format!("ARRAY[{}]", items.iter().map(pretty_value).collect::<Vec<_>>().join(", ")),
    }
}

/// `1.0`, `-2.5e-8`, `NaN`, `Infinity`: always distinguishable from an int.
fn pretty_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SqlState;
    use proptest::prelude::*;
    use std::cmp::Ordering;

    // ---- helpers -------------------------------------------------------

    fn key_of(value: &Value, direction: Direction) -> Vec<u8> {
        let mut out = Vec::new();
        encode_key_value(&mut out, value, direction);
        out
    }

    /// SQL's order of two values of one column type, NULL last, the way
    /// PostgreSQL sorts `ORDER BY x ASC`: ints by value whatever their
    /// width, floats with -0 = 0 and NaN = NaN above everything, strings
    /// and bytes byte-wise. The oracle the encodings are checked against.
    fn sql_order(a: &Value, b: &Value) -> Ordering {
        match (a, b) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Greater,
            (_, Value::Null) => Ordering::Less,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytea(a), Value::Bytea(b)) => a.cmp(b),
            (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
            (Value::TimestampTz(a), Value::TimestampTz(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::Time(a), Value::Time(b)) => a.cmp(b),
            (Value::Uuid(a), Value::Uuid(b)) => a.cmp(b),
            (Value::Numeric(a), Value::Numeric(b)) => a.cmp(b),
            // Element by element; a prefix first.
            (Value::Array(_, a), Value::Array(_, b)) => {
                a.iter().zip(b).map(|(a, b)| sql_order(a, b)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
            }
            _ if a.as_i64().is_some() && b.as_i64().is_some() => a.as_i64().cmp(&b.as_i64()),
            _ => {
                let (a, b) = (a.as_f64().expect("a float"), b.as_f64().expect("a float"));
                match (a.is_nan(), b.is_nan()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    (false, false) => a.partial_cmp(&b).expect("not NaN"),
                }
            }
        }
    }

    fn directed(order: Ordering, direction: Direction) -> Ordering {
        match direction {
            Direction::Asc => order,
            Direction::Desc => order.reverse(),
        }
    }

    /// What a key of `value` decodes to: the value itself, with -0.0 as 0.0
    /// and every NaN as the canonical one.
    fn canonical_key_value(value: &Value) -> Value {
        match value {
            Value::Float4(v) if v.is_nan() => Value::Float4(f32::NAN),
            Value::Float4(v) if *v == 0.0 => Value::Float4(0.0),
            Value::Float8(v) if v.is_nan() => Value::Float8(f64::NAN),
            Value::Float8(v) if *v == 0.0 => Value::Float8(0.0),
            v => v.clone(),
        }
    }

    /// Value equality that tells float bits apart (so NaN equals itself,
    /// and -0.0 differs from 0.0).
    fn same_value(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Float4(a), Value::Float4(b)) => a.to_bits() == b.to_bits(),
            (Value::Float8(a), Value::Float8(b)) => a.to_bits() == b.to_bits(),
            _ => a == b,
        }
    }

    /// Floats equal in the key sense: -0.0 = 0.0, NaN = NaN.
    fn same_key_value(a: &Value, b: &Value) -> bool {
        same_value(&canonical_key_value(a), &canonical_key_value(b))
    }

    fn corrupt(result: Result<impl std::fmt::Debug>) -> String {
        let error = result.expect_err("decoding must fail");
        assert_eq!(error.state, SqlState::InternalError, "{error}");
        error.message
    }

    // ---- strategies ----------------------------------------------------

    fn direction() -> impl Strategy<Value = Direction> {
        prop_oneof![Just(Direction::Asc), Just(Direction::Desc)]
    }

    /// Ints near the class boundaries of the key form, and anything.
    fn interesting_i64() -> impl Strategy<Value = i64> {
        prop_oneof![
            any::<i64>(),
            -300i64..300,
            prop::sample::select(vec![
                i64::MIN,
                i64::MIN + 1,
                i64::MAX,
                i64::MAX - 1,
                0,
                -1,
                79,
                80,
                255,
                256,
                -256,
                -257,
                65535,
                65536,
                -65536,
                -65537,
                i64::from(i32::MIN),
                i64::from(i32::MAX),
                1 << 56,
                (1 << 56) - 1,
                -(1 << 56),
                -(1 << 56) - 1,
            ]),
            (0u32..64).prop_map(|shift| 1i64 << shift),
            (0u32..64).prop_map(|shift| (1i64 << shift).wrapping_neg()),
        ]
    }

    fn interesting_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            any::<u64>().prop_map(f64::from_bits), // NaNs of every payload and sign
            (-10i32..10).prop_map(f64::from),
            prop::sample::select(vec![
                0.0,
                -0.0,
                f64::NAN,
                -f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MIN,
                f64::MAX,
                f64::MIN_POSITIVE,
                -f64::MIN_POSITIVE,
                f64::EPSILON,
                1.0,
                -1.0,
            ]),
        ]
    }

    /// Bytes over a small alphabet rich in escape bytes, so pairs share
    /// prefixes and contain 0x00, 0x01 and 0xff often; or anything.
    fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, 0x02, 0xFE, 0xFF, b'a']), 0..6),
            prop::collection::vec(any::<u8>(), 0..20),
        ]
    }

    fn interesting_text() -> impl Strategy<Value = String> {
        prop_oneof!["[\u{0}\u{1}ab\u{7f}\u{ff}é\u{10ffff}']{0,6}", any::<String>()]
    }

    /// The column types a key can have, one per family (`Varchar` and
    /// `Char` store `Text`).
    fn key_type() -> impl Strategy<Value = DataType> {
        prop::sample::select(vec![
            DataType::Bool,
            DataType::Int2,
            DataType::Int4,
            DataType::Int8,
            DataType::Float4,
            DataType::Float8,
            DataType::Text,
            DataType::Varchar(Some(10)),
            DataType::Char(3),
            DataType::Bytea,
            DataType::Timestamp,
            DataType::TimestampTz,
            DataType::Date,
            DataType::Time,
            DataType::Uuid,
            DataType::Numeric(None),
            DataType::Array(&DataType::Int8),
            DataType::Array(&DataType::Text),
        ])
    }

    /// A value of column type `ty`, NULL one time in ten.
    fn value_of(ty: DataType) -> BoxedStrategy<Value> {
        let non_null = match ty.base() {
            DataType::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
            DataType::Int2 => any::<i16>().prop_map(Value::Int2).boxed(),
            DataType::Int4 => any::<i32>().prop_map(Value::Int4).boxed(),
            DataType::Int8 => interesting_i64().prop_map(Value::Int8).boxed(),
            DataType::Float4 => interesting_f64().prop_map(|v| Value::Float4(v as f32)).boxed(),
            DataType::Float8 => interesting_f64().prop_map(Value::Float8).boxed(),
            DataType::Bytea => interesting_bytes().prop_map(Value::Bytea).boxed(),
            DataType::Timestamp => interesting_i64().prop_map(Value::Timestamp).boxed(),
            DataType::TimestampTz => interesting_i64().prop_map(Value::TimestampTz).boxed(),
            DataType::Date => prop_oneof![
                (-crate::types::DATE_DAYS_MAX..=crate::types::DATE_DAYS_MAX).prop_map(Value::Date),
                Just(Value::Date(i32::MAX)),
                Just(Value::Date(i32::MIN)),
            ]
            .boxed(),
            DataType::Time => prop_oneof![
                (0..=crate::types::TIME_MICROS_MAX).prop_map(Value::Time),
                Just(Value::Time(0)),
                Just(Value::Time(crate::types::TIME_MICROS_MAX)),
            ]
            .boxed(),
            // Edge bytes (0x00, 0xff) often: they are what escapes would trip on.
            DataType::Uuid => {
                prop::array::uniform16(prop::sample::select(vec![0x00u8, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x42]))
                    .prop_map(Value::Uuid)
                    .boxed()
            }
            // Every scale, the extremes, and values equal at different scales.
            DataType::Numeric(_) => prop_oneof![
                (interesting_i64(), 0u32..=28)
                    .prop_map(|(m, s)| Value::Numeric(crate::ops::numeric::Decimal::new(m, s))),
                Just(Value::Numeric(crate::ops::numeric::Decimal::MAX)),
                Just(Value::Numeric(crate::ops::numeric::Decimal::MIN)),
                (-3i64..3, 0u32..3)
                    .prop_map(|(m, s)| Value::Numeric(crate::ops::numeric::Decimal::new(m * 10i64.pow(s), s))),
            ]
            .boxed(),
            DataType::Array(element) => prop::collection::vec(value_of(*element), 0..4)
                .prop_map(move |items| Value::Array(element, items))
                .boxed(),
            _ => interesting_text().prop_map(Value::Text).boxed(),
        };
        prop_oneof![1 => Just(Value::Null), 9 => non_null].boxed()
    }

    /// An int of any width: keys compare ints by value across widths.
    fn any_int() -> BoxedStrategy<Value> {
        prop_oneof![value_of(DataType::Int2), value_of(DataType::Int4), value_of(DataType::Int8)].boxed()
    }

    /// Two values that may share a key column: same type (ints of any
    /// widths, floats of either width).
    fn comparable_pair() -> impl Strategy<Value = (Value, Value)> {
        prop_oneof![
            key_type().prop_flat_map(|ty| (value_of(ty), value_of(ty))),
            (any_int(), any_int()),
            (value_of(DataType::Float4), value_of(DataType::Float8)),
        ]
    }

    fn typed_value() -> impl Strategy<Value = (DataType, Value)> {
        key_type().prop_flat_map(|ty| (Just(ty), value_of(ty)))
    }

    // ---- key order -----------------------------------------------------

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Goal: byte order of key encodings is SQL's order of the values,
        /// for every type and both directions, NULL last ascending and
        /// first descending. Method: random pairs of one column type (with
        /// NaN, -0.0, i64::MIN/MAX, width boundaries, empty strings, 0x00
        /// and 0xff bytes, ints of mixed widths) against the `sql_order`
        /// oracle.
        #[test]
        fn key_order_is_value_order((a, b) in comparable_pair(), direction in direction()) {
            let expected = directed(sql_order(&a, &b), direction);
            prop_assert_eq!(key_of(&a, direction).cmp(&key_of(&b, direction)), expected, "{:?} vs {:?}", a, b);
        }
    }

    proptest! {
        /// Goal: a string or bytea that is a prefix of another sorts first
        /// ascending and last descending, whatever bytes follow (the
        /// terminator case prefix-freedom hinges on). Method: random
        /// `a` and non-empty suffix, compare `a` with `a ++ suffix`.
        #[test]
        fn prefix_string_sorts_first_ascending_last_descending(
            a in interesting_bytes(),
            suffix in prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, 0xFF, b'x']), 1..4),
            direction in direction(),
        ) {
            let mut b = a.clone();
            b.extend(&suffix);
            let (a_key, b_key) = (key_of(&Value::Bytea(a.clone()), direction), key_of(&Value::Bytea(b), direction));
            prop_assert_eq!(a_key.cmp(&b_key), directed(Ordering::Less, direction));
            // Text, with the same bytes wherever they are UTF-8.
            let b_bytes: Vec<u8> = a.iter().chain(&suffix).copied().collect();
            if let (Ok(a_text), Ok(b_text)) = (String::from_utf8(a.clone()), String::from_utf8(b_bytes)) {
                let (a_key, b_key) = (key_of(&Value::Text(a_text), direction), key_of(&Value::Text(b_text), direction));
                prop_assert_eq!(a_key.cmp(&b_key), directed(Ordering::Less, direction));
            }
        }

        /// Goal: a key of two columns with their own directions orders like
        /// the tuple of values, compared column by column. Method: random
        /// column types and directions, two random rows, concatenated
        /// encodings against the lexicographic oracle, then again with the
        /// first columns made equal so that the second decides.
        #[test]
        fn composite_key_order_is_tuple_order(
            (first_direction, second_direction, a1, a2, b1, b2) in (key_type(), key_type(), direction(), direction())
                .prop_flat_map(|(first_type, second_type, first_direction, second_direction)| {
                    let row = (value_of(first_type), value_of(second_type));
                    (Just(first_direction), Just(second_direction), row.clone(), row)
                })
                .prop_map(|(first_direction, second_direction, (a1, a2), (b1, b2))| {
                    (first_direction, second_direction, a1, a2, b1, b2)
                }),
        ) {
            let encode = |first: &Value, second: &Value| {
                let mut key = Vec::new();
                encode_key_value(&mut key, first, first_direction);
                encode_key_value(&mut key, second, second_direction);
                key
            };
            let expected = directed(sql_order(&a1, &b1), first_direction)
                .then(directed(sql_order(&a2, &b2), second_direction));
            let found = encode(&a1, &a2).cmp(&encode(&b1, &b2));
            prop_assert_eq!(found, expected, "({:?}, {:?}) vs ({:?}, {:?})", a1, a2, b1, b2);
            // With the first columns equal, the second decides.
            let expected = directed(sql_order(&a2, &b2), second_direction);
            prop_assert_eq!(encode(&a1, &a2).cmp(&encode(&a1, &b2)), expected);
        }

        /// Goal: decode(encode(v)) gives back v as the column's variant
        /// (Int2 stays Int2, Float4 stays Float4, Varchar reads as Text),
        /// -0.0 as 0.0 and NaN as NaN; it consumes exactly the encoding and
        /// leaves what follows. `decode_key_value_any` gives the general
        /// form and the direction. Method: random typed values, both
        /// directions, a random tail after the encoding.
        #[test]
        fn key_value_round_trips(
            (ty, value) in typed_value(),
            direction in direction(),
            tail in prop::collection::vec(any::<u8>(), 0..4),
        ) {
            let mut key = key_of(&value, direction);
            let encoded_len = key.len();
            key.extend(&tail);

            let mut input = key.as_slice();
            let decoded = decode_key_value(&mut input, ty, direction).expect("decodes");
            prop_assert!(same_value(&decoded, &canonical_key_value(&value)), "{:?} decoded as {:?}", value, decoded);
            prop_assert_eq!(input, tail.as_slice());
            // Re-encoding the decoded value gives the same bytes.
            prop_assert_eq!(key_of(&decoded, direction), key[..encoded_len].to_vec());

            let mut input = key.as_slice();
            let (found_direction, general) = decode_key_value_with_direction(&mut input).expect("decodes");
            prop_assert_eq!(found_direction, direction);
            fn widen(value: &Value) -> Value {
                match value {
                    Value::Int2(_) | Value::Int4(_) => Value::Int8(value.as_i64().expect("an int")),
                    Value::Float4(v) => Value::Float8(f64::from(*v)),
                    // One form for timestamps and dates: the general one
                    // is a timestamp.
                    Value::TimestampTz(_) | Value::Date(_) => Value::Timestamp(value.as_micros().unwrap_or_default()),
                    Value::Time(us) => Value::Timestamp(*us),
                    // (The general form's element type is its first
                    // element's: text for an array of NULLs.)
                    Value::Array(_, items) => {
                        let items: Vec<Value> = items.iter().map(widen).collect();
                        let element = items.iter().find_map(Value::data_type).unwrap_or(DataType::Text);
                        Value::Array(DataType::array_of(element).and_then(|a| match a {
                            DataType::Array(e) => Some(e),
                            _ => None,
                        }).expect("an array element type"), items)
                    }
                    v => v.clone(),
                }
            }
            let widened = widen(&value);
            prop_assert!(same_key_value(&general, &widened), "{:?} decoded as {:?}", value, general);
            prop_assert_eq!(input, tail.as_slice());
        }

        /// Goal: key encodings are prefix-free: no proper prefix of an
        /// encoding decodes (it would be another value's whole encoding),
        /// and a failed decode leaves the input unmoved. Method: every
        /// truncation of random encodings.
        #[test]
        fn truncated_key_value_never_decodes((ty, value) in typed_value(), direction in direction()) {
            let key = key_of(&value, direction);
            for len in 0..key.len() {
                let mut input = &key[..len];
                prop_assert!(decode_key_value(&mut input, ty, direction).is_err(), "{:?} truncated to {}", value, len);
                prop_assert_eq!(input.len(), len);
                let mut input = &key[..len];
                prop_assert!(decode_key_value_any(&mut input).is_err());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Goal: no input makes a decoder panic: random bytes, and valid
        /// encodings with one byte changed, through every decoder and
        /// `pretty_key`. Method: proptest; a panic fails the test. What
        /// decodes must re-encode to the bytes consumed (one encoding per
        /// value).
        #[test]
        fn decoders_survive_garbage(
            garbage in prop::collection::vec(any::<u8>(), 0..40),
            (ty, value) in typed_value(),
            direction in direction(),
            (position, replacement) in (any::<prop::sample::Index>(), any::<u8>()),
        ) {
            let mut mutated = key_of(&value, direction);
            let at = position.index(mutated.len());
            mutated[at] = replacement;
            let mut row = encode_row(&[(3, &value), (9, &Value::Int2(-4))]);
            let at = position.index(row.len());
            row[at] = replacement;
            for bytes in [&garbage, &mutated, &row] {
                let mut input = bytes.as_slice();
                if let Ok(decoded) = decode_key_value(&mut input, ty, direction) {
                    let consumed = &bytes[..bytes.len() - input.len()];
                    prop_assert_eq!(key_of(&decoded, direction), consumed.to_vec());
                }
                let mut input = bytes.as_slice();
                if let Ok(decoded) = decode_key_value_with_direction(&mut input) {
                    let consumed = &bytes[..bytes.len() - input.len()];
                    prop_assert_eq!(key_of(&decoded.1, decoded.0), consumed.to_vec());
                }
                let _ = decode_row(bytes);
                let _ = decode_index_prefix(bytes);
                let _ = pretty_key(bytes);
                let mut sql_key = vec![SQL_PREFIX];
                sql_key.extend(bytes.iter());
                let _ = decode_index_prefix(&sql_key);
                let _ = pretty_key(&sql_key);
            }
        }
    }

    // ---- key decoding errors -------------------------------------------

    /// Goal: a key value decoded as the wrong type, direction or width
    /// fails with InternalError and a message saying what was wrong.
    /// Method: hand-made cases.
    #[test]
    fn key_decoding_rejects_mismatches() {
        let decode = |bytes: &[u8], ty, direction| decode_key_value(&mut &bytes[..], ty, direction);
        let text = key_of(&Value::Text("a".into()), Direction::Asc);
        assert!(
            corrupt(decode(&text, DataType::Int8, Direction::Asc)).contains("expected a bigint value, found a text")
        );
        assert!(corrupt(decode(&text, DataType::Bytea, Direction::Asc)).contains("expected a bytea value"));
        assert!(corrupt(decode(&text, DataType::Text, Direction::Desc)).contains("expected a descending value"));
        let big = key_of(&Value::Int8(70_000), Direction::Asc);
        assert!(corrupt(decode(&big, DataType::Int2, Direction::Asc)).contains("70000 is out of range for smallint"));
        assert_eq!(decode(&big, DataType::Int4, Direction::Asc), Ok(Value::Int4(70_000)));
        let precise = key_of(&Value::Float8(0.1), Direction::Desc);
        assert!(corrupt(decode(&precise, DataType::Float4, Direction::Desc)).contains("not a real"));
        // NULL is a value of every type.
        let null = key_of(&Value::Null, Direction::Desc);
        assert_eq!(null, vec![0x00]);
        assert_eq!(decode(&null, DataType::Timestamp, Direction::Desc), Ok(Value::Null));
    }

    /// Goal: malformed payloads are refused: unknown markers, invalid
    /// UTF-8, bad escapes, missing terminators, non-canonical ints and
    /// floats. Method: hand-made byte strings.
    #[test]
    fn key_decoding_rejects_malformed_bytes() {
        let any = |bytes: &[u8]| decode_key_value_any(&mut &bytes[..]);
        assert!(corrupt(any(&[])).contains("missing"));
        assert!(corrupt(any(&[0x01])).contains("unknown marker byte 0x01"));
        assert!(corrupt(any(&[0x1B])).contains("unknown marker byte 0x1b"));
        assert!(corrupt(any(&[!0x16])).contains("an array is not terminated"));
        assert!(corrupt(any(&[marker::ARRAY, 0x05])).contains("byte 0x05 in an array"));
        let nested = [marker::ARRAY, marker::ARRAY_ELEMENT, marker::ARRAY, marker::ARRAY_END, marker::ARRAY_END];
        assert!(corrupt(any(&nested)).contains("malformed array element"));
        let mixed = [marker::ARRAY, marker::ARRAY_ELEMENT, !marker::TRUE, marker::ARRAY_END];
        assert!(corrupt(any(&mixed)).contains("malformed array element"));
        let deep: Vec<u8> = [marker::ARRAY, marker::ARRAY_ELEMENT].repeat(1_000_000);
        assert!(corrupt(any(&deep)).contains("malformed array element"), "no deep recursion");
        assert!(corrupt(any(&[marker::TEXT, 0xC3, 0x28, 0x00, 0x01])).contains("not valid UTF-8"));
        assert!(corrupt(any(&[marker::BYTES, b'a', 0x00, 0x02])).contains("invalid escape"));
        assert!(corrupt(any(&[marker::BYTES, b'a', 0x00])).contains("ends inside an escape"));
        assert!(corrupt(any(&[marker::BYTES, b'a'])).contains("no terminator"));
        assert!(corrupt(any(&[marker::TIMESTAMP, 1, 2])).contains("needs 8 bytes, 2 are left"));
        // 5 fits in the marker; as a one-byte payload it is not canonical.
        assert!(corrupt(any(&[marker::INT_POSITIVE_1_BYTE, 5])).contains("shortest form"));
        // 0x00ff in two bytes: one would do.
        assert!(corrupt(any(&[marker::INT_POSITIVE_1_BYTE + 1, 0x00, 0xFF])).contains("shortest form"));
        // -1 as two bytes (0xffff): one would do.
        assert!(corrupt(any(&[marker::INT_ZERO - 2, 0xFF, 0xFF])).contains("shortest form"));
        // 2^63 does not fit an i64.
        assert!(corrupt(any(&[marker::INT_POSITIVE_8_BYTES, 0x80, 0, 0, 0, 0, 0, 0, 0])).contains("shortest form"));
        // -0.0, and a NaN other than the canonical one.
        let minus_zero_ordered = !(-0.0f64).to_bits();
        let mut bytes = vec![marker::FLOAT];
        bytes.extend(minus_zero_ordered.to_be_bytes());
        assert!(corrupt(any(&bytes)).contains("canonical"));
        let mut bytes = vec![marker::FLOAT];
        bytes.extend((0x7FF8_0000_0000_0001u64 | SIGN_BIT).to_be_bytes());
        assert!(corrupt(any(&bytes)).contains("canonical"));
    }

    /// Goal: the int form is as compact as the module doc promises and its
    /// byte layout is the documented one. Method: spot values at the class
    /// boundaries.
    #[test]
    fn key_ints_have_the_documented_bytes() {
        let asc = |v: i64| key_of(&Value::Int8(v), Direction::Asc);
        assert_eq!(asc(0), [0x28]);
        assert_eq!(asc(79), [0x77]);
        assert_eq!(asc(80), [0x78, 80]);
        assert_eq!(asc(255), [0x78, 0xFF]);
        assert_eq!(asc(256), [0x79, 0x01, 0x00]);
        assert_eq!(asc(i64::MAX), [0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(asc(-1), [0x27, 0xFF]);
        assert_eq!(asc(-256), [0x27, 0x00]);
        assert_eq!(asc(-257), [0x26, 0xFE, 0xFF]);
        assert_eq!(asc(i64::MIN), [0x20, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(key_of(&Value::Int2(7), Direction::Desc), [!0x2F]);
        assert_eq!(key_of(&Value::Int4(7), Direction::Asc), asc(7));
    }

    // ---- prefixes ------------------------------------------------------

    /// Goal: `table_prefix(t)` is a prefix of `index_prefix(t, i)`,
    /// prefixes order by (table id, index id), and `decode_index_prefix`
    /// gives back the ids and the rest of the key. Method: proptest over
    /// id pairs, including u32::MAX and the inline/one-byte boundary.
    #[test]
    fn index_prefixes_nest_and_order_by_ids() {
        let id = || prop_oneof![any::<u32>(), 0u32..300, Just(u32::MAX)];
        let rest = || prop::collection::vec(any::<u8>(), 0..4);
        proptest!(|((t1, i1) in (id(), id()), (t2, i2) in (id(), id()), rest in rest())| {
            let prefix = index_prefix(t1, i1);
            prop_assert!(prefix.starts_with(&table_prefix(t1)));
            prop_assert_eq!(prefix.cmp(&index_prefix(t2, i2)), (t1, i1).cmp(&(t2, i2)));
            prop_assert_eq!(table_prefix(t1).cmp(&table_prefix(t2)), t1.cmp(&t2));
            let mut key = prefix.clone();
            key.extend(&rest);
            prop_assert_eq!(decode_index_prefix(&key), Ok((t1, i1, rest.as_slice())));
        });
    }

    /// Goal: `decode_index_prefix` refuses keys that are not SQL keys or
    /// whose ids are not ascending u32 ints. Method: hand-made keys.
    #[test]
    fn decode_index_prefix_rejects_non_index_keys() {
        assert!(corrupt(decode_index_prefix(b"user/1")).contains("not a SQL key"));
        assert!(corrupt(decode_index_prefix(&[SQL_PREFIX])).contains("missing"));
        assert!(corrupt(decode_index_prefix(&table_prefix(52))).contains("missing"));
        let mut key = vec![SQL_PREFIX];
        encode_key_value(&mut key, &Value::Int8(-1), Direction::Asc);
        assert!(corrupt(decode_index_prefix(&key)).contains("table id -1 is out of range"));
        let mut key = table_prefix(52);
        encode_key_value(&mut key, &Value::Int8(1), Direction::Desc);
        assert!(corrupt(decode_index_prefix(&key)).contains("index id is Int8(1) (descending)"));
        let mut key = vec![SQL_PREFIX];
        encode_key_value(&mut key, &Value::Int8(1 << 32), Direction::Asc);
        assert!(corrupt(decode_index_prefix(&key)).contains("out of range"));
    }

    /// Goal: `prefix_end` gives the documented results, including the
    /// empty "unbounded" end. Method: table of cases.
    #[test]
    fn prefix_end_examples() {
        let cases: [(&[u8], &[u8]); 6] = [
            (&[0x01, 0x02], &[0x01, 0x03]),
            (&[0x01, 0xFF], &[0x02]),
            (&[0x01, 0xFE, 0xFF, 0xFF], &[0x01, 0xFF]),
            (&[0xFF, 0xFF], &[]),
            (&[], &[]),
            (&[SQL_PREFIX, 0x5C, 0x29], &[SQL_PREFIX, 0x5C, 0x2A]),
        ];
        for (prefix, end) in cases {
            assert_eq!(prefix_end(prefix), end, "prefix {prefix:02x?}");
        }
        assert_eq!(prefix_end(&index_prefix(52, 1)), index_prefix(52, 2));
        assert_eq!(prefix_end(&table_prefix(52)), table_prefix(53));
    }

    proptest! {
        /// Goal: `[prefix, prefix_end(prefix))` is exactly the set of keys
        /// starting with `prefix` (an empty end being unbounded). Method:
        /// random prefixes and keys over an alphabet where 0xff and shared
        /// prefixes are common.
        #[test]
        fn prefix_end_bounds_exactly_the_keys_with_the_prefix(
            prefix in prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, 0xFE, 0xFF]), 0..4),
            key in prop::collection::vec(prop::sample::select(vec![0x00u8, 0x01, 0xFE, 0xFF]), 0..6),
        ) {
            let end = prefix_end(&prefix);
            let in_range = key.as_slice() >= prefix.as_slice() && (end.is_empty() || key < end);
            let with_prefix = key.starts_with(&prefix);
            prop_assert_eq!(in_range, with_prefix, "prefix {:02x?} end {:02x?} key {:02x?}", prefix, end, key);
        }
    }

    // ---- rows ----------------------------------------------------------

    fn row_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            key_type().prop_flat_map(value_of),
            any::<u64>().prop_map(|bits| Value::Float8(f64::from_bits(bits))),
            any::<u32>().prop_map(|bits| Value::Float4(f32::from_bits(bits))),
            // Intervals are row values only (no key column is one).
            (any::<i32>(), any::<i32>(), interesting_i64())
                .prop_map(|(months, days, micros)| Value::Interval(crate::types::Interval { months, days, micros })),
            // Arrays (column values since array columns), NULL elements
            // and text that needs quoting in an array's text included.
            prop::collection::vec(prop::option::of(any::<i64>()), 0..5).prop_map(|items| {
                let items = items.into_iter().map(|i| i.map_or(Value::Null, Value::Int8)).collect();
                Value::Array(&DataType::Int8, items)
            }),
            prop::collection::vec(prop::option::of("[a-z{},\"\\ ]{0,6}|NULL"), 0..5).prop_map(|items| {
                let items = items.into_iter().map(|i| i.map_or(Value::Null, Value::Text)).collect();
                Value::Array(&DataType::Text, items)
            }),
        ]
    }

    proptest! {
        /// Goal: `decode_row(encode_row(columns))` gives back the non-NULL
        /// columns in the order written with their exact variants and bits
        /// (Int2 stays Int2, Float4 stays Float4, -0.0 and NaN payloads
        /// kept). Method: random rows with distinct random column ids.
        #[test]
        fn row_round_trips(
            columns in prop::collection::btree_map(any::<u32>(), row_value(), 0..8),
            reverse in any::<bool>(),
        ) {
            let mut columns: Vec<(u32, Value)> = columns.into_iter().collect();
            if reverse {
                columns.reverse();
            }
            let borrowed: Vec<(u32, &Value)> = columns.iter().map(|(id, v)| (*id, v)).collect();
            let decoded = decode_row(&encode_row(&borrowed)).expect("decodes");
            let expected: Vec<&(u32, Value)> = columns.iter().filter(|(_, v)| !v.is_null()).collect();
            prop_assert_eq!(decoded.len(), expected.len());
            for ((id, value), (expected_id, expected_value)) in decoded.iter().zip(expected) {
                prop_assert_eq!(id, expected_id);
                prop_assert!(same_value(value, expected_value), "{:?} decoded as {:?}", expected_value, value);
            }
        }
    }

    /// Goal: the row layout is the documented one: version byte, then id,
    /// tag, payload per non-NULL column; an all-NULL row is the version
    /// byte alone. Method: spot rows, byte for byte.
    #[test]
    fn rows_have_the_documented_bytes() {
        let ann = Value::Text("ann".into());
        assert_eq!(encode_row(&[(1, &Value::Null), (2, &ann)]), [0x01, 0x02, 0x07, 0x03, b'a', b'n', b'n']);
        assert_eq!(encode_row(&[(2, &Value::Null)]), [ROW_FORMAT_VERSION]);
        assert_eq!(decode_row(&[ROW_FORMAT_VERSION]), Ok(vec![]));
        assert_eq!(
            encode_row(&[(300, &Value::Int2(-1)), (1, &Value::Bool(true)), (5, &Value::Float4(1.0))]),
            [0x01, 0xAC, 0x02, tag::INT2, 0x01, 0x01, tag::BOOL, 0x01, 0x05, tag::FLOAT4, 0x00, 0x00, 0x80, 0x3F]
        );
    }

    /// Goal: malformed row values are refused with a clear message and no
    /// allocation from a lying length. Method: hand-made byte strings.
    #[test]
    fn row_decoding_rejects_malformed_bytes() {
        assert!(corrupt(decode_row(&[])).contains("no format version"));
        assert!(corrupt(decode_row(&[2])).contains("unknown format version 2"));
        // A text claiming 2^35 bytes with 3 present.
        assert!(corrupt(decode_row(&[1, 1, tag::TEXT, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, b'a', b'b', b'c']))
            .contains("of 34359738368 bytes, but only 3 bytes are left"));
        assert!(corrupt(decode_row(&[1, 1, 42])).contains("unknown type tag 42 for column 1"));
        assert!(corrupt(decode_row(&[1, 1])).contains("type tag needs 1 bytes"));
        assert!(corrupt(decode_row(&[1, 1, tag::BOOL, 2])).contains("bool byte 2"));
        assert!(corrupt(decode_row(&[1, 1, tag::INT2, 0x80, 0x80, 0x04])).contains("out of range for smallint"));
        assert!(
            corrupt(decode_row(&[1, 1, tag::INT4, 0x80, 0x80, 0x80, 0x80, 0x10])).contains("out of range for integer")
        );
        assert!(corrupt(decode_row(&[1, 1, tag::TEXT, 1, 0xFF])).contains("not UTF-8"));
        assert!(corrupt(decode_row(&[1, 1, tag::FLOAT8, 0, 0])).contains("needs 8 bytes, 2 are left"));
        assert!(corrupt(decode_row(&[1, 0x80])).contains("ends inside a varint"));
        assert!(corrupt(decode_row(&[1, 0x80, 0x00, tag::BOOL, 1])).contains("shortest form"));
        assert!(corrupt(decode_row(&[1, 0x80, 0x80, 0x80, 0x80, 0x10, tag::BOOL, 1]))
            .contains("column id 4294967296 is out of range"));
        let mut overflow = vec![1u8, 1, tag::INT8];
        overflow.extend([0xFF; 9]);
        overflow.push(0x02);
        assert!(corrupt(decode_row(&overflow)).contains("overflows 64 bits"));
        let mut too_long = vec![1u8, 1, tag::INT8];
        too_long.extend([0x80; 11]);
        assert!(corrupt(decode_row(&too_long)).contains("overflows 64 bits"));
    }

    // ---- pretty_key ----------------------------------------------------

    /// Goal: the module doc's `accounts` example is true: the keys have the
    /// bytes and pretty forms shown, and the row value the bytes shown.
    /// Method: build the keys and values as the layer above will.
    #[test]
    fn module_doc_example_holds() {
        let (table_id, primary, owner_idx) = (52, 1, 2);
        let (id, ann) = (Value::Int4(7), Value::Text("ann".into()));
        let mut row_key = index_prefix(table_id, primary);
        encode_key_value(&mut row_key, &id, Direction::Asc);
        assert_eq!(row_key, [0xF0, 0x5C, 0x29, 0x2F]);
        assert_eq!(pretty_key(&row_key), "/Table/52/1/7");
        assert_eq!(encode_row(&[(2, &ann)]), [0x01, 0x02, 0x07, 0x03, 0x61, 0x6E, 0x6E]);

        let mut entry_key = index_prefix(table_id, owner_idx);
        encode_key_value(&mut entry_key, &ann, Direction::Asc);
        encode_key_value(&mut entry_key, &id, Direction::Asc);
        assert_eq!(entry_key, [0xF0, 0x5C, 0x2A, 0x15, 0x61, 0x6E, 0x6E, 0x00, 0x01, 0x2F]);
        assert_eq!(pretty_key(&entry_key), "/Table/52/2/'ann'/7");

        let mut null_entry_key = index_prefix(table_id, owner_idx);
        encode_key_value(&mut null_entry_key, &Value::Null, Direction::Asc);
        encode_key_value(&mut null_entry_key, &Value::Int4(8), Direction::Asc);
        assert_eq!(null_entry_key, [0xF0, 0x5C, 0x2A, 0xFF, 0x30]);
        assert_eq!(pretty_key(&null_entry_key), "/Table/52/2/NULL/8");
        assert!(entry_key < null_entry_key, "NULL sorts last");
        assert_eq!(encode_row(&[(2, &Value::Null)]), [0x01]);
    }

    /// Goal: `pretty_key` prints every type as a SQL literal, marks
    /// descending values, and shows what it can't decode as escaped bytes
    /// after what it could. Method: table of keys and expected strings.
    #[test]
    fn pretty_key_examples() {
        let key = |values: &[(Value, Direction)]| {
            let mut key = index_prefix(52, 1);
            for (value, direction) in values {
                encode_key_value(&mut key, value, *direction);
            }
            key
        };
        use Direction::{Asc, Desc};
        let cases = [
            (
                key(&[
                    (Value::Text("abc".into()), Asc),
                    (Value::Int2(3), Asc),
                    (Value::Null, Asc),
                    (Value::Text("x".into()), Desc),
                ]),
                "/Table/52/1/'abc'/3/NULL/desc:'x'",
            ),
            (key(&[(Value::Null, Desc), (Value::Int8(-300), Desc)]), "/Table/52/1/desc:NULL/desc:-300"),
            (key(&[(Value::Text("it's\n".into()), Asc)]), "/Table/52/1/'it''s\\n'"),
            (
                key(&[(Value::Bytea(vec![0x01, 0x02, 0xFF]), Asc), (Value::Bytea(vec![]), Desc)]),
                "/Table/52/1/x'0102ff'/desc:x''",
            ),
            (
                key(&[(Value::Float8(1.5), Asc), (Value::Float4(-2.0), Asc), (Value::Float8(f64::NAN), Desc)]),
                "/Table/52/1/1.5/-2.0/desc:NaN",
            ),
            (
                key(&[(Value::Float8(f64::INFINITY), Asc), (Value::Float8(f64::NEG_INFINITY), Asc)]),
                "/Table/52/1/Infinity/-Infinity",
            ),
            (key(&[(Value::Bool(true), Asc), (Value::Bool(false), Desc)]), "/Table/52/1/true/desc:false"),
            (key(&[(Value::Timestamp(1_700_000_000_500_000), Asc)]), "/Table/52/1/TIMESTAMP '2023-11-14 22:13:20.500'"),
            (key(&[(Value::Timestamp(i64::MIN), Asc)]), "/Table/52/1/TIMESTAMP -9223372036854775808"),
            (
                key(&[(Value::Int4(7), Asc)]).into_iter().chain([0x16, b'z', 0xFE]).collect(),
                "/Table/52/1/7/\"\\x16z\\xfe\"",
            ),
            (key(&[(Value::Text("ab".into()), Asc)])[..6].to_vec(), "/Table/52/1/\"\\x15ab\""),
            (index_prefix(52, 1), "/Table/52/1"),
            (table_prefix(52), "/Table/52"),
            (table_prefix(70_000), "/Table/70000"),
            (vec![SQL_PREFIX], "/Table"),
            (vec![SQL_PREFIX, 0xEE, 0x01], "/Table/\"\\xee\\x01\""),
            (prefix_end(&table_prefix(u32::MAX)), "/Table/\"|\""),
            (b"user/\"1\"".to_vec(), "\"user/\\\"1\\\"\""),
            (vec![], "\"\""),
        ];
        for (key, expected) in cases {
            assert_eq!(pretty_key(&key), expected, "key {key:02x?}");
        }
    }
}
