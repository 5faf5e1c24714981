//! STUB — being written (scalar functions: string, math, greatest/least).
//! Signatures here are the contract; the implementation replaces this file.

use crate::error::Result;
use crate::types::{DataType, Value};

/// The result type of scalar function `name` (lower case) on arguments of
/// types `args` (`None`: an untyped NULL), or 42883.
pub fn return_type(name: &str, args: &[Option<DataType>]) -> Result<DataType> {
    let _ = (name, args);
    unimplemented!("stub")
}

/// Calls scalar function `name` on `args` (already of the types
/// `return_type` accepted).
pub fn call(name: &str, args: &[Value]) -> Result<Value> {
    let _ = (name, args);
    unimplemented!("stub")
}
