//! One-dimensional arrays: their text form, order and functions.
//!
//! PostgreSQL clients meet arrays mostly in its catalogs (psql's `\d`
//! asks `pol.polroles = '{0}'`, `'d' = any(stxkind)`, `ARRAY(SELECT ...)`)
//! and in queries such as `WHERE id = ANY($1)`. SpanDB has them as values
//! of expressions and parameters, not as column types:
//!
//! ```text
//!   '{1,2,NULL}'::int4[]        text input          -> Array(int4, [1, 2, NULL])
//!   ARRAY[1, 2]  ARRAY(SELECT)  constructors (planner, exec)
//!   a[1]  array_upper(a, 1)  array_length  cardinality  array_to_string
//!   x = ANY(a)  x <> ALL(a)     quantified comparisons ([`quantified`])
//!   {1,2,NULL}  {"a b",c}       text output ([`to_text`])
//! ```
//!
//! # Invariants
//!
//! - An array's elements are NULL or of its element type, which is never
//!   an array (no multi-dimensional arrays: their input is 0A000).
//! - `parse(&to_text(a), e) == a` for every array `a` of element type `e`.
//! - Arrays compare element by element, then by length, NULL elements
//!   above all others and equal to each other (PostgreSQL's btree order
//!   for arrays), so the order is total.

use std::cmp::Ordering;

use super::{self as ops, BinaryOp};
use crate::error::{Error, Result, SqlState};
use crate::sql_err;
use crate::types::{DataType, Value};

/// PostgreSQL's array output: `{a,b}`; an element is double-quoted when it
/// is empty, spells NULL, or holds a brace, comma, quote, backslash or
/// white space; NULL elements print as `NULL`.
pub fn to_text(items: &[Value]) -> String {
    let mut out = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match ops::to_text(item) {
            None => out.push_str("NULL"),
            Some(s) => {
                let quote = s.is_empty()
                    || s.eq_ignore_ascii_case("null")
                    || s.chars().any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
                if quote {
                    out.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                } else {
                    out.push_str(&s);
                }
            }
        }
    }
    out.push('}');
    out
}

fn malformed(s: &str, detail: &str) -> Error {
    Error::new(SqlState::InvalidTextRepresentation, format!("malformed array literal: \"{s}\"")).with_detail(detail)
}

/// PostgreSQL's array input for a one-dimensional array of `element`:
/// `{1, 2}`, `{"a,b",NULL,"NULL"}`, `{}`; backslash escapes the next
/// character. 22P02 for anything else.
pub fn parse(s: &str, element: DataType) -> Result<Value> {
    let element = element.base();
    let Some(elements) = DataType::array_of(element) else {
        return sql_err!(FeatureNotSupported, "arrays of {element} are not supported");
    };
    let DataType::Array(element) = elements else { unreachable!("array_of gives an array type") };
    let body = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let Some(inner) = body.strip_prefix('{').and_then(|b| b.strip_suffix('}')) else {
        return Err(malformed(s, "Array value must start with \"{\" or dimension information."));
    };
    let mut items = Vec::new();
    let mut chars = inner.chars().peekable();
    if inner.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty() {
        return Ok(Value::Array(element, items));
    }
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut text = String::new();
        let mut quoted = false;
        let mut ended = false;
        match chars.peek() {
            Some('"') => {
                chars.next();
                quoted = true;
                loop {
                    match chars.next() {
                        None => return Err(malformed(s, "Unexpected end of input.")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => text.push(c),
                            None => return Err(malformed(s, "Unexpected end of input.")),
                        },
                        Some(c) => text.push(c),
                    }
                }
                while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
            }
            Some('{') => return sql_err!(FeatureNotSupported, "multidimensional arrays are not supported"),
            _ => {
                while let Some(&c) = chars.peek() {
                    match c {
                        ',' => break,
                        '{' | '}' | '"' => return Err(malformed(s, &format!("Unexpected \"{c}\" character."))),
                        '\\' => {
                            chars.next();
                            match chars.next() {
                                Some(c) => text.push(c),
                                None => return Err(malformed(s, "Unexpected end of input.")),
                            }
                        }
                        c => {
                            text.push(c);
                            chars.next();
                        }
                    }
                }
                let trimmed = text.trim_end_matches(|c: char| c.is_ascii_whitespace()).len();
                text.truncate(trimmed);
                if text.is_empty() {
                    return Err(malformed(s, "Unexpected \",\" character."));
                }
            }
        }
        items.push(if !quoted && text.eq_ignore_ascii_case("null") {
            Value::Null
        } else {
            ops::parse_text(&text, *element)?
        });
        match chars.next() {
            Some(',') => {}
            None => ended = true,
            Some(c) => return Err(malformed(s, &format!("Unexpected \"{c}\" character."))),
        }
        if ended {
            return Ok(Value::Array(element, items));
        }
    }
}

/// The order of two arrays (module invariants).
pub fn compare(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match ops::sort_cmp(x, y) {
            Ordering::Equal => {}
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

/// `x op ANY(array)` (`all`: `ALL`): true if the comparison holds for some
/// (every) element, else NULL if any comparison was NULL, else false.
pub fn quantified(op: BinaryOp, all: bool, x: &Value, array: &Value) -> Result<Value> {
    let items = match array {
        Value::Null => return Ok(Value::Null),
        Value::Array(_, items) => items,
        other => return sql_err!(DatatypeMismatch, "op ANY/ALL (array) requires array on right side, not {other:?}"),
    };
    let mut unknown = false;
    for item in items {
        match ops::binary(op, x, item)? {
            Value::Bool(b) if b != all => return Ok(Value::Bool(b)),
            Value::Null => unknown = true,
            _ => {}
        }
    }
    Ok(if unknown { Value::Null } else { Value::Bool(all) })
}

/// `array[i]`: the element at 1-based `i`, NULL outside the array.
pub fn element(items: &[Value], i: i64) -> Value {
    usize::try_from(i).ok().and_then(|i| i.checked_sub(1)).and_then(|i| items.get(i)).cloned().unwrap_or(Value::Null)
}

/// `array_upper`/`array_lower`/`array_length` of dimension `dim`: NULL for
/// an empty array or a dimension it does not have.
pub fn bound(items: &[Value], dim: i64, which: &str) -> Value {
    if items.is_empty() || dim != 1 {
        return Value::Null;
    }
    let n = i32::try_from(items.len()).unwrap_or(i32::MAX);
    Value::Int4(match which {
        "array_lower" => 1,
        _ => n,
    })
}

/// `array_to_string(array, separator[, null text])`: NULL elements are
/// skipped unless a text for them is given.
pub fn join(items: &[Value], separator: &str, null: Option<&str>) -> Result<String> {
    let mut out = String::new();
    let mut first = true;
    for item in items {
        let text = match (ops::to_text(item), null) {
            (Some(t), _) => t,
            (None, Some(n)) => n.to_string(),
            (None, None) => continue,
        };
        if !first {
            out.push_str(separator);
        }
        first = false;
        out.push_str(&text);
        if out.len() > crate::limits::VALUE_BYTES_MAX {
            return sql_err!(
                ProgramLimitExceeded,
                "array_to_string result is over {} bytes",
                crate::limits::VALUE_BYTES_MAX
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int4s(items: &[Option<i32>]) -> Value {
        let DataType::Array(e) = DataType::array_of(DataType::Int4).unwrap() else { panic!() };
        Value::Array(e, items.iter().map(|i| i.map_or(Value::Null, Value::Int4)).collect())
    }

    #[test]
    fn text_round_trips() {
        for (text, element) in [
            ("{}", DataType::Int4),
            ("{1,2,NULL}", DataType::Int4),
            ("{a,\"b c\",\"\",\"NULL\",NULL,\"q\\\"x\",\"{}\"}", DataType::Text),
            ("{t,f}", DataType::Bool),
        ] {
            let v = parse(text, element).unwrap();
            let Value::Array(_, items) = &v else { panic!("{v:?}") };
            assert_eq!(to_text(items), text);
            assert_eq!(parse(&to_text(items), element).unwrap(), v);
        }
        assert_eq!(parse(" { 1 , 2 } ", DataType::Int4).unwrap(), int4s(&[Some(1), Some(2)]));
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in ["1,2", "{1,,2}", "{1,2", "{\"a}", "{a\"b}", "{1}x"] {
            let e = parse(bad, DataType::Text).unwrap_err();
            assert_eq!(e.state, SqlState::InvalidTextRepresentation, "{bad}: {e:?}");
        }
        assert_eq!(parse("{{1}}", DataType::Int4).unwrap_err().state, SqlState::FeatureNotSupported);
        assert_eq!(parse("{x}", DataType::Int4).unwrap_err().state, SqlState::InvalidTextRepresentation);
    }

    #[test]
    fn any_and_all_follow_three_valued_logic() {
        let a = int4s(&[Some(1), None, Some(3)]);
        let x = |i| Value::Int4(i);
        assert_eq!(quantified(BinaryOp::Eq, false, &x(3), &a).unwrap(), Value::Bool(true));
        assert_eq!(quantified(BinaryOp::Eq, false, &x(2), &a).unwrap(), Value::Null);
        assert_eq!(quantified(BinaryOp::NotEq, true, &x(1), &a).unwrap(), Value::Bool(false));
        assert_eq!(quantified(BinaryOp::Eq, false, &x(2), &int4s(&[])).unwrap(), Value::Bool(false));
        assert_eq!(quantified(BinaryOp::Eq, true, &x(2), &int4s(&[])).unwrap(), Value::Bool(true));
    }

    #[test]
    fn order_is_elementwise_then_by_length() {
        let order = |a: &[Option<i32>], b: &[Option<i32>]| {
            let (Value::Array(_, a), Value::Array(_, b)) = (int4s(a), int4s(b)) else { panic!() };
            compare(&a, &b)
        };
        assert_eq!(order(&[Some(1), Some(2)], &[Some(1), Some(3)]), Ordering::Less);
        assert_eq!(order(&[Some(1)], &[Some(1), Some(0)]), Ordering::Less);
        assert_eq!(order(&[None], &[Some(9)]), Ordering::Greater);
        assert_eq!(order(&[None], &[None]), Ordering::Equal);
    }
}
