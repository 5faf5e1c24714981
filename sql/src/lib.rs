//! SpanDB's SQL layer (being built; see the issue "SQL").

pub mod encoding;
pub mod error;
pub mod functions;
pub mod kv;
pub mod memory;
pub mod ops;
pub mod types;

pub use error::{Error, Result, SqlState};
pub use types::{DataType, Row, Value};
