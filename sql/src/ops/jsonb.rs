//! `jsonb`: JSON documents, as PostgreSQL's `jsonb`.
//!
//! Applications keep settings, payloads and whatever their ORM's
//! `JSONField` holds in `jsonb` columns, and query into them with `->`,
//! `->>` and `@>`. A [`Json`] is a parsed document in jsonb's canonical
//! form: an object's keys are unique (the last of duplicates wins) and
//! kept in jsonb's order (shorter keys first, then byte order), and a
//! number is a `numeric` ([`super::numeric`]), so `1.50` stays `1.50`.
//! `json` is the same type here (CockroachDB does the same): its input
//! is normalized as jsonb's is.
//!
//! ```text
//!   '{"b": 1, "a": [1, 2.50, null], "a": "x"}'::jsonb   = {"a": "x", "b": 1}
//!   '{"a": {"b": 7}}'::jsonb -> 'a' ->> 'b'            = '7' (text)
//!   '{"a": 1, "b": 2}'::jsonb @> '{"a": 1}'             = true
//!   '[1, 2]'::jsonb || '3'                             = [1, 2, 3]
//! ```
//!
//! # Why a parser of its own
//!
//! jsonb's input is JSON with PostgreSQL's rules on top: numbers are
//! exact decimals (serde_json would make `2.50` a float and print `2.5`),
//! `\u0000` is refused (text cannot hold it), duplicate keys keep the
//! last value, and nesting is bounded ([`DEPTH_MAX`]) so no document can
//! exhaust a thread's stack. The parser here is a small recursive
//! descent that does exactly that.
//!
//! # Invariants
//!
//! - An object's pairs are sorted by [`key_order`] with unique keys;
//!   every constructor here keeps them so ([`Json::object`]).
//! - Nothing panics on any input: depth is bounded when parsing and when
//!   building (`jsonb_set`, `||`), sizes by [`crate::limits::VALUE_BYTES_MAX`].
//! - [`compare`] is PostgreSQL's jsonb order (a total order); equality is
//!   by value (`1.0` equals `1`).

use std::cmp::Ordering;

use super::numeric;
use crate::error::{Error, Result, SqlState};
use crate::sql_err;
pub use crate::types::Json;
use crate::types::Value;

/// The deepest nesting of arrays and objects a document may have.
pub const DEPTH_MAX: usize = 256;

/// A path step as an array index: an int4, spaces before it allowed (C's
/// `strtol`, as PostgreSQL reads one).
fn array_index(step: &str) -> Option<i32> {
    step.trim_start().parse().ok()
}

/// What a document built by a function (not parsed) must also be: at most
/// [`DEPTH_MAX`] levels deep, at most [`crate::limits::VALUE_BYTES_MAX`]
/// bytes of text, and without `\u0000` (which text cannot hold), so that
/// it is stored and read back, and no recursion over it can run deep.
/// Its inputs met these bounds, so the walk here is at most one level
/// deeper than they were.
pub fn checked(j: Json) -> Result<Json> {
    // `depth`: the containers around `j` (a container may have fewer
    // than DEPTH_MAX around it, as the parser allows).
    fn walk(j: &Json, depth: usize, bytes: &mut usize) -> Result<()> {
        if !j.is_scalar() && depth >= DEPTH_MAX {
            return sql_err!(ProgramLimitExceeded, "jsonb nesting is deeper than {DEPTH_MAX} levels");
        }
        let text = |s: &str| -> Result<usize> {
            if s.contains('\0') {
                return Err(Error::new(SqlState::UntranslatableCharacter, "unsupported Unicode escape sequence")
                    .with_detail("\\u0000 cannot be converted to text."));
            }
            Ok(s.len() + 2)
        };
        *bytes += match j {
            Json::Null | Json::Bool(_) => 5,
            Json::Number(_) => 30,
            Json::String(s) => text(s)?,
            Json::Array(items) => {
                for item in items {
                    walk(item, depth + 1, bytes)?;
                }
                2 + 2 * items.len()
            }
            Json::Object(pairs) => {
                for (k, v) in pairs {
                    *bytes += text(k)? + 4;
                    walk(v, depth + 1, bytes)?;
                }
                2
            }
        };
        if *bytes > crate::limits::VALUE_BYTES_MAX {
            return sql_err!(ProgramLimitExceeded, "jsonb value exceeds {} bytes", crate::limits::VALUE_BYTES_MAX);
        }
        Ok(())
    }
    walk(&j, 0, &mut 0)?;
    Ok(j)
}

/// About how many bytes `j` takes in memory (for operators' memory
/// budgets).
pub fn approximate_bytes(j: &Json) -> usize {
    match j {
        Json::String(s) => 32 + s.len(),
        Json::Array(items) => 32 + items.iter().map(approximate_bytes).sum::<usize>(),
        Json::Object(pairs) => 32 + pairs.iter().map(|(k, v)| 32 + k.len() + approximate_bytes(v)).sum::<usize>(),
        _ => 32,
    }
}

/// jsonb's order of an object's keys: shorter first, then by bytes.
pub fn key_order(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

impl Json {
    /// An object of `pairs` in canonical form: sorted, the last of
    /// duplicate keys kept.
    pub fn object(mut pairs: Vec<(String, Json)>) -> Json {
        // A stable sort keeps duplicates in input order; the last wins.
        pairs.sort_by(|a, b| key_order(&a.0, &b.0));
        let mut out: Vec<(String, Json)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        Json::Object(out)
    }

    /// `jsonb_typeof`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    pub(crate) fn is_scalar(&self) -> bool {
        !matches!(self, Json::Array(_) | Json::Object(_))
    }

    /// The value under `key`, if this is an object that has it.
    pub fn field(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(pairs) => pairs.binary_search_by(|(k, _)| key_order(k, key)).ok().map(|i| &pairs[i].1),
            _ => None,
        }
    }

    /// Element `i` (negative: from the end), if this is an array that has
    /// it; a scalar is its own element 0 (and -1), as in PostgreSQL, which
    /// keeps a top-level scalar as an array of one.
    pub fn element(&self, i: i64) -> Option<&Json> {
        match self {
            Json::Array(items) => {
                let len = items.len() as i64;
                let at = if i < 0 { len + i } else { i };
                usize::try_from(at).ok().and_then(|at| items.get(at))
            }
            Json::Object(_) => None,
            scalar => (i == 0 || i == -1).then_some(scalar),
        }
    }

    /// The value at `path` (`#>`): keys into objects, indexes into arrays
    /// (a step that is not an integer finds nothing).
    pub fn at_path<S: AsRef<str>>(&self, path: &[S]) -> Option<&Json> {
        let mut at = self;
        for step in path {
            let step = step.as_ref();
            at = match at {
                Json::Object(_) => at.field(step)?,
                Json::Array(_) => at.element(array_index(step)?.into())?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// `->>`'s text: a string unquoted, JSON null as SQL NULL, anything
    /// else as its jsonb text.
    pub fn to_text_value(&self) -> Option<String> {
        match self {
            Json::Null => None,
            Json::String(s) => Some(s.clone()),
            other => Some(to_text(other)),
        }
    }
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

/// PostgreSQL's jsonb input (22P02 on bad syntax, 22P05 for `\u0000`).
pub fn parse(s: &str) -> Result<Json> {
    let mut p = Parser { s: s.as_bytes(), at: 0, text: s };
    p.skip_space();
    let value = p.value(0)?;
    p.skip_space();
    if p.at != p.s.len() {
        return Err(p.invalid("Expected end of input, but found more."));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn invalid(&self, detail: &str) -> Error {
        Error::new(SqlState::InvalidTextRepresentation, "invalid input syntax for type json").with_detail(detail)
    }

    fn skip_space(&mut self) {
        while self.s.get(self.at).is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.s.get(self.at) == Some(&b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json> {
        match self.s.get(self.at) {
            None => Err(self.invalid("The input string ended unexpectedly.")),
            Some(b'{') | Some(b'[') if depth >= DEPTH_MAX => {
                sql_err!(ProgramLimitExceeded, "jsonb nesting is deeper than {DEPTH_MAX} levels")
            }
            Some(b'{') => {
                self.at += 1;
                self.skip_space();
                let mut pairs = Vec::new();
                if !self.eat(b'}') {
                    loop {
                        self.skip_space();
                        if self.s.get(self.at) != Some(&b'"') {
                            return Err(self.invalid("Expected string or \"}\"."));
                        }
                        let key = self.string()?;
                        self.skip_space();
                        if !self.eat(b':') {
                            return Err(self.invalid("Expected \":\"."));
                        }
                        self.skip_space();
                        let v = self.value(depth + 1)?;
                        pairs.push((key, v));
                        self.skip_space();
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.invalid("Expected \",\" or \"}\"."));
                        }
                    }
                }
                Ok(Json::object(pairs))
            }
            Some(b'[') => {
                self.at += 1;
                self.skip_space();
                let mut items = Vec::new();
                if !self.eat(b']') {
                    loop {
                        self.skip_space();
                        items.push(self.value(depth + 1)?);
                        self.skip_space();
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(self.invalid("Expected \",\" or \"]\"."));
                        }
                    }
                }
                Ok(Json::Array(items))
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                for (word, value) in [("true", Json::Bool(true)), ("false", Json::Bool(false)), ("null", Json::Null)] {
                    if self.s[self.at..].starts_with(word.as_bytes())
                        && !self.s.get(self.at + word.len()).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    {
                        self.at += word.len();
                        return Ok(value);
                    }
                }
                let token: String = self.text[self.at..].chars().take_while(|c| c.is_alphanumeric()).take(20).collect();
                let token = if token.is_empty() { self.text[self.at..].chars().take(1).collect() } else { token };
                Err(self.invalid(&format!("Token \"{token}\" is invalid.")))
            }
        }
    }

    /// JSON's number grammar; the value as a numeric.
    fn number(&mut self) -> Result<Json> {
        let start = self.at;
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.s.get(p.at).is_some_and(u8::is_ascii_digit) {
                p.at += 1;
            }
            p.at - from
        };
        let whole_start = self.at;
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.s[whole_start] == b'0') {
            return Err(self.invalid("Token is invalid (a number)."));
        }
        if self.eat(b'.') && digits(self) == 0 {
            return Err(self.invalid("Token is invalid (a number)."));
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if digits(self) == 0 {
                return Err(self.invalid("Token is invalid (a number)."));
            }
        }
        if self.s.get(self.at).is_some_and(|b| b.is_ascii_alphanumeric()) {
            return Err(self.invalid("Token is invalid (a number)."));
        }
        numeric::parse(&self.text[start..self.at]).map(Json::Number)
    }

    /// A string after its opening quote's position, escapes decoded.
    fn string(&mut self) -> Result<String> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                return Err(self.invalid("The input string ended unexpectedly."));
            };
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.at + 1) else {
                        return Err(self.invalid("The input string ended unexpectedly."));
                    };
                    self.at += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let first = self.hex4()?;
                            let c = if (0xD800..0xDC00).contains(&first) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return Err(
                                        self.invalid("Unicode high surrogate must not follow a high surrogate.")
                                    );
                                }
                                let second = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&second) {
                                    return Err(self.invalid("Unicode low surrogate must follow a high surrogate."));
                                }
                                char::from_u32(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))
                            } else if (0xDC00..0xE000).contains(&first) {
                                return Err(self.invalid("Unicode low surrogate must follow a high surrogate."));
                            } else {
                                char::from_u32(first)
                            };
                            match c {
                                Some('\0') => {
                                    return Err(Error::new(
                                        SqlState::UntranslatableCharacter,
                                        "unsupported Unicode escape sequence",
                                    )
                                    .with_detail("\\u0000 cannot be converted to text."))
                                }
                                Some(c) => out.push(c),
                                None => return Err(self.invalid("Invalid Unicode escape.")),
                            }
                        }
                        _ => {
                            let c = self.text[self.at - 1..].chars().next().unwrap_or('?');
                            return Err(self.invalid(&format!("Escape sequence \"\\{c}\" is invalid.")));
                        }
                    }
                }
                0x00..=0x1F => {
                    return Err(self.invalid(&format!("Character with value 0x{b:02x} must be escaped.")));
                }
                _ => {
                    // Copy up to the next quote, escape or control byte (UTF-8 stays whole).
                    let end = self.s[self.at..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .map_or(self.s.len(), |n| self.at + n);
                    out.push_str(&self.text[self.at..end]);
                    self.at = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32> {
        let hex = self.s.get(self.at..self.at + 4).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
        let Some(hex) = hex else {
            return Err(self.invalid("\"\\u\" must be followed by four hexadecimal digits."));
        };
        self.at += 4;
        Ok(hex.iter().fold(0, |acc, h| acc * 16 + (*h as char).to_digit(16).unwrap_or(0)))
    }
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

/// PostgreSQL's jsonb output: `{"a": 1, "b": [true, null]}`.
pub fn to_text(j: &Json) -> String {
    let mut out = String::new();
    write(&mut out, j, None, 0);
    out
}

/// `jsonb_pretty`: four spaces per level, one value per line (54000 past
/// [`crate::limits::VALUE_BYTES_MAX`]: indentation can make a document
/// many times longer).
pub fn pretty(j: &Json) -> Result<String> {
    let mut out = String::new();
    write(&mut out, j, Some(4), 0);
    if out.len() > crate::limits::VALUE_BYTES_MAX {
        return sql_err!(
            ProgramLimitExceeded,
            "jsonb_pretty's result exceeds {} bytes",
            crate::limits::VALUE_BYTES_MAX
        );
    }
    Ok(out)
}

fn write(out: &mut String, j: &Json, indent: Option<usize>, level: usize) {
    // Past the limit the caller refuses the result: stop growing it.
    if out.len() > crate::limits::VALUE_BYTES_MAX {
        return;
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(d) => out.push_str(&numeric::to_text(*d)),
        Json::String(s) => write_string(out, s),
        // PostgreSQL's pretty form puts even an empty one's end on a line of its own.
        Json::Array(items) if items.is_empty() => {
            out.push('[');
            newline(out, level);
            out.push(']');
        }
        Json::Object(pairs) if pairs.is_empty() => {
            out.push('{');
            newline(out, level);
            out.push('}');
        }
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, level + 1);
                write(out, item, indent, level + 1);
            }
            newline(out, level);
            out.push(']');
        }
        Json::Object(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(separator);
                }
                newline(out, level + 1);
                write_string(out, k);
                out.push_str(": ");
                write(out, v, indent, level + 1);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

/// A JSON string literal, escaped as PostgreSQL's `escape_json`.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// Order and containment
// ---------------------------------------------------------------------------

/// The rank of a value's type in jsonb's order.
fn rank(j: &Json) -> u8 {
    match j {
        Json::Null => 0,
        Json::String(_) => 1,
        Json::Number(_) => 2,
        Json::Bool(_) => 3,
        Json::Array(_) => 4,
        Json::Object(_) => 5,
    }
}

/// PostgreSQL's jsonb order (its btree operator class): by type (null <
/// string < number < boolean < array < object), arrays and objects by
/// their length first, then element by element (an object's keys and
/// values in key order). A top-level scalar sorts as a one-element array
/// placed before true arrays of one element (so `[]` < `null` at the top).
pub fn compare(a: &Json, b: &Json) -> Ordering {
    match (a.is_scalar(), b.is_scalar(), a, b) {
        (true, false, _, Json::Array(items)) => 1.cmp(&items.len()).then(Ordering::Less),
        (false, true, Json::Array(items), _) => items.len().cmp(&1).then(Ordering::Greater),
        _ => compare_values(a, b),
    }
}

fn compare_values(a: &Json, b: &Json) -> Ordering {
    match (a, b) {
        (Json::Null, Json::Null) => Ordering::Equal,
        (Json::String(x), Json::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Json::Number(x), Json::Number(y)) => x.cmp(y),
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        (Json::Array(x), Json::Array(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter().zip(y).map(|(p, q)| compare_values(p, q)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        }),
        (Json::Object(x), Json::Object(y)) => x.len().cmp(&y.len()).then_with(|| {
            x.iter()
                .zip(y)
                .map(|((kx, vx), (ky, vy))| kx.as_bytes().cmp(ky.as_bytes()).then_with(|| compare_values(vx, vy)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        }),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// `a @> b`: every key and value of `b` is in `a`, recursively; an array
/// contains another when each of its elements is in it (in any order),
/// and a top-level array contains a scalar it has as an element.
pub fn contains(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Object(_), Json::Object(want)) => {
            want.iter().all(|(k, v)| a.field(k).is_some_and(|have| contains_value(have, v)))
        }
        (Json::Array(items), Json::Array(want)) => {
            want.iter().all(|w| items.iter().any(|have| contains_value(have, w)))
        }
        // A top-level array may contain a scalar.
        (Json::Array(items), w) if w.is_scalar() => items.iter().any(|have| have.is_scalar() && have == w),
        (x, y) if x.is_scalar() && y.is_scalar() => x == y,
        _ => false,
    }
}

/// Containment below the top: a scalar matches an equal scalar; a
/// container, a container of its kind that contains it.
fn contains_value(have: &Json, want: &Json) -> bool {
    match (have, want) {
        (Json::Object(_), Json::Object(_)) | (Json::Array(_), Json::Array(_)) => contains(have, want),
        (h, w) if h.is_scalar() && w.is_scalar() => h == w,
        _ => false,
    }
}

/// `j ? key`: a top-level key, or a string element of a top-level array
/// (or the string itself).
pub fn has_key(j: &Json, key: &str) -> bool {
    match j {
        Json::Object(_) => j.field(key).is_some(),
        Json::Array(items) => items.iter().any(|i| matches!(i, Json::String(s) if s == key)),
        Json::String(s) => s == key,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Changes
// ---------------------------------------------------------------------------

/// `a || b`: two objects merge (b's values win); otherwise both as arrays
/// (a scalar or object as a one-element one), concatenated.
pub fn concat(a: &Json, b: &Json) -> Json {
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => Json::object(x.iter().chain(y).cloned().collect()),
        _ => {
            let as_items = |j: &Json| match j {
                Json::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let mut items = as_items(a);
            items.extend(as_items(b));
            Json::Array(items)
        }
    }
}

/// `j - key`: the object without `key`, or the array without its string
/// elements equal to `key`.
pub fn delete_key(j: &Json, key: &str) -> Result<Json> {
    match j {
        Json::Object(pairs) => Ok(Json::Object(pairs.iter().filter(|(k, _)| k != key).cloned().collect())),
        Json::Array(items) => {
            Ok(Json::Array(items.iter().filter(|i| !matches!(i, Json::String(s) if s == key)).cloned().collect()))
        }
        _ => sql_err!(InvalidParameterValue, "cannot delete from scalar"),
    }
}

/// `j - index`: the array without element `index` (negative: from the end).
pub fn delete_index(j: &Json, index: i64) -> Result<Json> {
    match j {
        Json::Array(items) => {
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index };
            Ok(Json::Array(items.iter().enumerate().filter(|(i, _)| *i as i64 != at).map(|(_, v)| v.clone()).collect()))
        }
        Json::Object(_) => sql_err!(InvalidParameterValue, "cannot delete from object using integer index"),
        _ => sql_err!(InvalidParameterValue, "cannot delete from scalar"),
    }
}

/// `jsonb_set(j, path, value, create_missing)`: `value` put at `path`; a
/// missing last key (or an index past either end of an array) is added
/// when `create_missing`; a path through a missing or scalar step
/// changes nothing.
pub fn set_path(j: &Json, path: &[String], value: &Json, create_missing: bool) -> Result<Json> {
    if j.is_scalar() {
        return sql_err!(InvalidParameterValue, "cannot set path in scalar");
    }
    if path.is_empty() {
        return Ok(j.clone());
    }
    checked_path(j, path)?;
    checked(set_at(j, path, value, create_missing))
}

/// 22P02 where `path` steps into an array with a step that is not an
/// int4, as PostgreSQL's jsonb_set and `#-` refuse it.
fn checked_path(j: &Json, path: &[String]) -> Result<()> {
    let mut at = Some(j);
    for (position, step) in path.iter().enumerate() {
        at = match at {
            Some(array @ Json::Array(_)) => match array_index(step) {
                Some(i) => array.element(i.into()),
                None => {
                    return sql_err!(
                        InvalidTextRepresentation,
                        "path element at position {} is not an integer: \"{step}\"",
                        position + 1
                    )
                }
            },
            Some(object @ Json::Object(_)) => object.field(step),
            _ => return Ok(()),
        };
    }
    Ok(())
}

fn set_at(j: &Json, path: &[String], value: &Json, create_missing: bool) -> Json {
    let Some((step, rest)) = path.split_first() else {
        return value.clone();
    };
    match j {
        Json::Object(pairs) => match j.field(step) {
            Some(inner) => {
                let replaced = set_at(inner, rest, value, create_missing);
                Json::Object(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.clone(), if k == step { replaced.clone() } else { v.clone() }))
                        .collect(),
                )
            }
            None if rest.is_empty() && create_missing => {
                Json::object(pairs.iter().cloned().chain([(step.clone(), value.clone())]).collect())
            }
            None => j.clone(),
        },
        Json::Array(items) => {
            let Some(index) = array_index(step).map(i64::from) else { return j.clone() };
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index };
            let mut items = items.clone();
            if (0..len).contains(&at) {
                let slot = &mut items[at as usize];
                *slot = set_at(slot, rest, value, create_missing);
            } else if rest.is_empty() && create_missing {
                if at < 0 {
                    items.insert(0, value.clone());
                } else {
                    items.push(value.clone());
                }
            }
            Json::Array(items)
        }
        _ => j.clone(),
    }
}

/// `j #- path`: `j` without the value at `path` (unchanged when there is
/// none).
pub fn delete_path(j: &Json, path: &[String]) -> Result<Json> {
    if j.is_scalar() {
        return sql_err!(InvalidParameterValue, "cannot delete path in scalar");
    }
    checked_path(j, path)?;
    Ok(delete_at(j, path))
}

fn delete_at(j: &Json, path: &[String]) -> Json {
    let Some((step, rest)) = path.split_first() else {
        return j.clone();
    };
    match j {
        Json::Object(pairs) => Json::Object(
            pairs
                .iter()
                .filter(|(k, _)| !(rest.is_empty() && k == step))
                .map(|(k, v)| (k.clone(), if k == step { delete_at(v, rest) } else { v.clone() }))
                .collect(),
        ),
        Json::Array(items) => {
            let Some(index) = array_index(step).map(i64::from) else { return j.clone() };
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index };
            Json::Array(
                items
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !(rest.is_empty() && *i as i64 == at))
                    .map(|(i, v)| if i as i64 == at { delete_at(v, rest) } else { v.clone() })
                    .collect(),
            )
        }
        _ => j.clone(),
    }
}

/// A document's kind as a cast's error names it ("cannot cast jsonb
/// string to type integer").
pub fn type_name_for_cast(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "numeric",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// `jsonb_object_agg`'s object of its pairs, each a `[key, value]`
/// document (the key a string: 22023 if it is NULL), the last of
/// duplicate keys kept.
pub fn object_of_pairs(pairs: &[Value]) -> Result<Json> {
    let mut out = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let Value::Jsonb(doc) = pair else { return sql_err!(InternalError, "jsonb_object_agg pair {pair:?}") };
        match &**doc {
            Json::Array(kv) => match kv.as_slice() {
                [Json::String(k), v] => out.push((k.clone(), v.clone())),
                [Json::Null, _] => return sql_err!(InvalidParameterValue, "field name must not be null"),
                _ => return sql_err!(InternalError, "jsonb_object_agg pair {doc:?}"),
            },
            other => return sql_err!(InternalError, "jsonb_object_agg pair {other:?}"),
        }
    }
    Ok(Json::object(out))
}

/// `to_jsonb(v)`: numbers as numbers (a float's NaN and infinities as
/// strings, as PostgreSQL), text as strings, arrays as arrays, date and
/// time values as ISO 8601 strings, SQL NULL as JSON null.
pub fn from_value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Jsonb(j) => (**j).clone(),
        Value::Numeric(d) => Json::Number(*d),
        Value::Text(s) => Json::String(s.clone()),
        Value::Array(_, items) => Json::Array(items.iter().map(from_value).collect()),
        Value::Float4(_) | Value::Float8(_) => {
            let text = super::to_text(v).unwrap_or_default();
            match numeric::parse(&text) {
                Ok(d) => Json::Number(d),
                Err(_) => Json::String(text),
            }
        }
        Value::Timestamp(_) | Value::TimestampTz(_) => {
            let text = super::to_text(v).unwrap_or_default().replacen(' ', "T", 1);
            // PostgreSQL's JSON form of a zone offset has its minutes
            // (`+00:00`, `-05:00`; `+05:30` has them already).
            let b = text.as_bytes();
            let short_offset = matches!(v, Value::TimestampTz(_))
                && b.len() > 3
                && matches!(b[b.len() - 3], b'+' | b'-')
                && b[b.len() - 2..].iter().all(u8::is_ascii_digit);
            let text = if short_offset { format!("{text}:00") } else { text };
            Json::String(text)
        }
        other => match other.as_i64() {
            Some(i) => Json::Number(numeric::Decimal::from(i)),
            None => Json::String(super::to_text(other).unwrap_or_default()),
        },
    }
}

/// `jsonb_strip_nulls`: object fields whose value is null removed, at
/// every level (array elements stay).
pub fn strip_nulls(j: &Json) -> Json {
    match j {
        Json::Object(pairs) => Json::Object(
            pairs.iter().filter(|(_, v)| *v != Json::Null).map(|(k, v)| (k.clone(), strip_nulls(v))).collect(),
        ),
        Json::Array(items) => Json::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// Keys (grouping and hashing only)
// ---------------------------------------------------------------------------

/// Appends bytes equal exactly when the documents are equal (numbers by
/// value), for GROUP BY, DISTINCT and hash joins; not an order.
pub fn encode_key(out: &mut Vec<u8>, j: &Json) {
    match j {
        Json::Null => out.push(0x01),
        Json::Bool(b) => out.push(if *b { 0x03 } else { 0x02 }),
        Json::Number(d) => {
            out.push(0x04);
            numeric::encode_key(out, *d);
        }
        Json::String(s) => {
            out.push(0x05);
            encode_bytes(out, s.as_bytes());
        }
        Json::Array(items) => {
            out.push(0x06);
            for item in items {
                encode_key(out, item);
            }
            out.push(0x00);
        }
        Json::Object(pairs) => {
            out.push(0x07);
            // Each pair starts with 0x01, so no key (not even an empty
            // one, 00 01) reads as the object's end.
            for (k, v) in pairs {
                out.push(0x01);
                encode_bytes(out, k.as_bytes());
                encode_key(out, v);
            }
            out.push(0x00);
        }
    }
}

/// Bytes with 0x00 escaped and a terminator, so what follows cannot blur.
fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        if b == 0 {
            out.extend_from_slice(&[0x00, 0xFF]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Json {
        parse(s).unwrap()
    }

    #[test]
    fn input_is_normalized_as_postgres_does() {
        for (input, output) in [
            (r#"{"b": 1, "a": [1, 2.50, null], "a": "x"}"#, r#"{"a": "x", "b": 1}"#),
            (r#"{"bb":1,"a":2,"c":{}}"#, r#"{"a": 2, "c": {}, "bb": 1}"#),
            (" [ ] ", "[]"),
            (r#""a\u00e9\ud83d\ude00\n\"""#, "\"a\u{e9}\u{1f600}\\n\\\"\""),
            ("-0.5e2", "-50"),
            ("1.50", "1.50"),
            ("true", "true"),
            (r#"{"x\u0001": null}"#, r#"{"x\u0001": null}"#),
        ] {
            assert_eq!(to_text(&j(input)), output, "{input}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\"}",
            "01",
            "1.",
            ".5",
            "tru",
            "nul",
            "[1] 2",
            "\"\n\"",
            "\"\\x\"",
            "{'a': 1}",
            "\"\\ud800\"",
        ] {
            assert_eq!(parse(bad).unwrap_err().state, SqlState::InvalidTextRepresentation, "{bad:?}");
        }
        assert_eq!(parse(r#""\u0000""#).unwrap_err().state, SqlState::UntranslatableCharacter);
        let deep = "[".repeat(DEPTH_MAX + 1) + &"]".repeat(DEPTH_MAX + 1);
        assert_eq!(parse(&deep).unwrap_err().state, SqlState::ProgramLimitExceeded);
        let ok = "[".repeat(DEPTH_MAX) + &"]".repeat(DEPTH_MAX);
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn paths_and_operators() {
        let doc = j(r#"{"a": {"b": [10, 20, {"c": "x"}]}, "n": null}"#);
        assert_eq!(doc.at_path(&["a", "b", "1"]), Some(&j("20")));
        assert_eq!(doc.at_path(&["a", "b", "-1", "c"]), Some(&j("\"x\"")));
        assert_eq!(doc.at_path(&["a", "z"]), None);
        assert_eq!(doc.field("n").and_then(Json::to_text_value), None);
        assert!(contains(&doc, &j(r#"{"a": {"b": [20]}}"#)));
        assert!(!contains(&doc, &j(r#"{"a": {"b": 20}}"#)));
        assert!(contains(&j("[1, [2, 3]]"), &j("[[3]]")));
        assert!(contains(&j(r#"["foo", "bar"]"#), &j(r#""foo""#)));
        assert!(!contains(&j(r#""foo""#), &j(r#"["foo"]"#)));
        assert!(contains(&j("1.0"), &j("1")));
        assert!(has_key(&j(r#"["a", 1]"#), "a") && !has_key(&j(r#"{"a": {"b": 1}}"#), "b"));
        assert_eq!(to_text(&concat(&j(r#"{"a": 1}"#), &j(r#"{"a": 2, "b": 3}"#))), r#"{"a": 2, "b": 3}"#);
        assert_eq!(to_text(&concat(&j("[1]"), &j(r#"{"a": 1}"#))), r#"[1, {"a": 1}]"#);
        assert_eq!(to_text(&delete_index(&j("[1, 2, 3]"), -1).unwrap()), "[1, 2]");
        assert!(delete_index(&j(r#"{"a": 1}"#), 0).is_err());
        let set = |d: &str, p: &[&str], v: &str, c| {
            to_text(&set_path(&j(d), &p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &j(v), c).unwrap())
        };
        assert_eq!(set(r#"{"a": [1, 2]}"#, &["a", "0"], "9", true), r#"{"a": [9, 2]}"#);
        assert_eq!(set(r#"{"a": 1}"#, &["b"], "2", true), r#"{"a": 1, "b": 2}"#);
        assert_eq!(set(r#"{"a": 1}"#, &["b"], "2", false), r#"{"a": 1}"#);
        assert_eq!(set("[1]", &["-5"], "0", true), "[0, 1]");
        assert_eq!(
            pretty(&j(r#"{"a": [1, {}], "b": {"c": null}}"#)).unwrap(),
            "{\n    \"a\": [\n        1,\n        {\n        }\n    ],\n    \"b\": {\n        \"c\": null\n    }\n}"
        );
        assert_eq!(pretty(&j("[]")).unwrap(), "[\n]");
    }

    #[test]
    fn built_documents_are_bounded_as_parsed_ones() {
        let mut deep = Json::Null;
        for _ in 0..DEPTH_MAX {
            deep = Json::Array(vec![deep]);
        }
        assert!(checked(deep.clone()).is_ok());
        let e = checked(Json::Array(vec![deep])).unwrap_err();
        assert_eq!(e.state, SqlState::ProgramLimitExceeded);
        let e = checked(Json::object(vec![("k".into(), Json::String("a\0b".into()))])).unwrap_err();
        assert_eq!(e.state, SqlState::UntranslatableCharacter);
        let big = Json::Array(vec![Json::String("x".repeat(1 << 20)); 20]);
        assert_eq!(checked(big).unwrap_err().state, SqlState::ProgramLimitExceeded);
    }

    #[test]
    fn order_is_postgres_btree_order() {
        let sorted = [
            "[]",
            "null",
            r#""a""#,
            r#""b""#,
            "1",
            "1.5",
            "false",
            "true",
            "[null]",
            "[1]",
            "[1, 2]",
            r#"{"a": 1}"#,
            r#"{"b": 0}"#,
            r#"{"a": 1, "b": 2}"#,
        ];
        for (i, a) in sorted.iter().enumerate() {
            for (k, b) in sorted.iter().enumerate() {
                assert_eq!(compare(&j(a), &j(b)), i.cmp(&k), "{a} vs {b}");
            }
        }
        let (mut x, mut y) = (Vec::new(), Vec::new());
        encode_key(&mut x, &j(r#"{"a": [1.0, "x"]}"#));
        encode_key(&mut y, &j(r#"{"a": [1, "x"]}"#));
        assert_eq!(x, y);
    }
}
