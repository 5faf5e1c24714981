//! STUB — being written (PostgreSQL semantics of operators, casts, text
//! input/output, LIKE). Signatures here are the contract; the
//! implementation replaces this file.

use std::cmp::Ordering;

use crate::error::Result;
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

/// Unary operators on values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Plus,
}

/// The result type of `l op r`, or 42883 (operator does not exist).
pub fn binary_result_type(op: BinaryOp, l: DataType, r: DataType) -> Result<DataType> {
    let _ = (op, l, r);
    unimplemented!("stub")
}

/// `l op r`; NULL in, NULL out.
pub fn binary(op: BinaryOp, l: &Value, r: &Value) -> Result<Value> {
    let _ = (op, l, r);
    unimplemented!("stub")
}

pub fn unary_result_type(op: UnaryOp, t: DataType) -> Result<DataType> {
    let _ = (op, t);
    unimplemented!("stub")
}

pub fn unary(op: UnaryOp, v: &Value) -> Result<Value> {
    let _ = (op, v);
    unimplemented!("stub")
}

/// SQL comparison: `None` when either side is NULL.
pub fn compare(l: &Value, r: &Value) -> Result<Option<Ordering>> {
    let _ = (l, r);
    unimplemented!("stub")
}

/// A total order for sorting and grouping: numbers across widths by
/// value, NaN above every number, NULL above everything.
pub fn sort_cmp(l: &Value, r: &Value) -> Ordering {
    let _ = (l, r);
    unimplemented!("stub")
}

/// Whether `from` converts to `to` implicitly (in expressions).
pub fn can_coerce_implicitly(from: DataType, to: DataType) -> bool {
    let _ = (from, to);
    unimplemented!("stub")
}

/// The common type of `a` and `b` (UNION, CASE, IN, COALESCE), or 42804.
pub fn common_type(a: DataType, b: DataType) -> Result<DataType> {
    let _ = (a, b);
    unimplemented!("stub")
}

/// An explicit `CAST(v AS to)` / `v::to`.
pub fn cast(v: &Value, to: DataType) -> Result<Value> {
    let _ = (v, to);
    unimplemented!("stub")
}

/// Whether an explicit cast from `from` to `to` exists (42846 otherwise).
pub fn can_cast(from: DataType, to: DataType) -> bool {
    let _ = (from, to);
    unimplemented!("stub")
}

/// Storing `v` in a column of type `to` (INSERT, UPDATE): PostgreSQL's
/// assignment casts, range checks, VARCHAR(n) length (22001), CHAR(n)
/// padding; 42804 where no assignment cast exists.
pub fn assign(v: &Value, to: DataType) -> Result<Value> {
    let _ = (v, to);
    unimplemented!("stub")
}

/// Whether assigning a `from` to a `to` column is allowed at all.
pub fn can_assign(from: DataType, to: DataType) -> bool {
    let _ = (from, to);
    unimplemented!("stub")
}

/// PostgreSQL's text output of a value (`t`/`f`, `1.5`, `Infinity`,
/// `2026-12-01 18:55:10.123456`, `\x0102`); NULL: `None`.
pub fn to_text(v: &Value) -> Option<String> {
    let _ = v;
    unimplemented!("stub")
}

/// PostgreSQL's text input of a `ty` (22P02, 22003, 22007 on bad input).
pub fn parse_text(s: &str, ty: DataType) -> Result<Value> {
    let _ = (s, ty);
    unimplemented!("stub")
}

/// `text LIKE pattern` (`%`, `_`, `\` escapes); ILIKE when
/// `case_insensitive`. NULL in, NULL out.
pub fn like(text: &Value, pattern: &Value, case_insensitive: bool) -> Result<Value> {
    let _ = (text, pattern, case_insensitive);
    unimplemented!("stub")
}
