//! The SQL goldenscripts in `src/testscripts/`, run against the
//! in-memory engine (the runner and its syntax: `sql::testing`). They are
//! the specification by example: each file is one area.

use std::sync::Arc;

use sql::memory::MemoryEngine;
use sql::testing::ScriptRunner;

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() -> std::io::Result<()> {
            let mut runner = ScriptRunner::new(Arc::new(MemoryEngine::new()));
            goldenscript::run(&mut runner, concat!("src/testscripts/", stringify!($name)))
        }
    )*};
}

scripts!(
    schema,
    catalog,
    arrays,
    writes,
    queries,
    joins,
    aggregates,
    subqueries,
    transactions,
    anomalies,
    types,
    indexes,
    errors,
    time,
    advisory
);
