//! SpanDB's SQL layer (being built; see the issue "SQL").

pub mod catalog;
pub mod ddl;
pub mod encoding;
pub mod error;
pub mod exec;
pub mod explain;
pub mod functions;
pub mod kv;
pub mod layout;
pub mod limits;
pub mod memory;
pub mod ops;
pub mod optimizer;
pub mod parser;
pub mod plan;
pub mod planner;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timestamp;
pub mod types;
pub mod write;

pub use error::{Error, Result, SqlState};
pub use session::{Collected, Session, Sink, TxnStatus};
pub use types::{DataType, Row, Value};
