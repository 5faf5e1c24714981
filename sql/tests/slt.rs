//! The sqllogictest corpus in `tests/slt/`, run against the in-memory
//! engine. Unlike the goldenscripts (whose expected output is whatever
//! SpanDB printed when they were written), every expected result here is
//! what PostgreSQL 15 returns for the same statements, so a difference is
//! a bug or a deliberate departure, and the file says which.
//!
//! Conventions of the files (sqllogictest's, with PostgreSQL's text
//! output): NULL prints as `NULL`, the empty string as `(empty)`, booleans
//! as `t`/`f`; column types are `I` (integers), `R` (floats) and `T`
//! (everything else), and they are checked. `statement error (23505)`
//! expects that SQLSTATE. Records marked `skipif spandb` hold
//! PostgreSQL's answer where SpanDB gives a wrong one (under a `# BUG:`
//! comment) or does not support the feature yet (`# MISSING:`); remove
//! the mark once fixed. `onlyif spandb` records hold SpanDB's answer
//! where it differs from PostgreSQL on purpose (under a comment saying
//! why).
//!
//! The expected results were produced by PostgreSQL 15.18 itself:
//! `tests/slt/pg.py check FILE...` runs the files against a PostgreSQL
//! server (as engine `postgres`) and reports any disagreement; `fill`
//! writes PostgreSQL's rows into the file.
//!
//! Each file runs in a fresh database, one session per `connection`
//! name. A file's test runs every record, even after a failure, and
//! reports all failures at once. `SLT_TRACE=1` prints each record before
//! it runs (to find the one that crashes).

use std::path::PathBuf;
use std::sync::Arc;

use sql::memory::MemoryEngine;
use sql::testing::run_slt_file;

/// The package's directory, as cargo says when it runs the test (a test
/// binary reused from a shared target directory may have been built in
/// another checkout, so the compile-time value can point elsewhere).
fn package_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn slt_dir() -> PathBuf {
    package_dir().join("tests/slt")
}

fn check(name: &str) {
    let file = slt_dir().join(format!("{name}.slt"));
    let failures = run_slt_file(&file, Arc::new(MemoryEngine::new()));
    if !failures.is_empty() {
        panic!("{} failure(s) in {}:\n\n{}", failures.len(), file.display(), failures.join("\n"));
    }
}

macro_rules! slt {
    ($($name:ident),* $(,)?) => {
        $(
            /// Goal: SpanDB answers this file's statements as PostgreSQL 15
            /// does. Method: run every record against a fresh in-memory
            /// database and collect every mismatch.
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        /// Goal: no `.slt` file is left out of the list above. Method:
        /// compare the directory's files with the list.
        #[test]
        fn every_file_runs() {
            let listed: std::collections::BTreeSet<String> = [$(stringify!($name)),*].iter().map(|s| s.to_string()).collect();
            let present: std::collections::BTreeSet<String> = std::fs::read_dir(slt_dir())
                .expect("tests/slt exists")
                .filter_map(|e| {
                    let path = e.expect("a directory entry").path();
                    (path.extension()? == "slt").then(|| path.file_stem()?.to_str().map(String::from))?
                })
                .collect();
            assert_eq!(listed, present, "tests/slt.rs must list every tests/slt/*.slt file");
        }
    };
}

slt!(
    select,
    join,
    aggregate,
    subquery,
    setop,
    dml,
    types,
    ddl,
    alter_table,
    sequences,
    skip_locked,
    extensions,
    comments,
    functions,
    index,
    cte_view,
    window,
    window_random,
    numeric,
    prepared,
    cursors,
    array_columns,
    grouping_sets,
    catalog_views,
    jsonb,
    time,
    time_zones,
    to_char,
    set_returning,
    interval_random,
    savepoint,
    foreign_key,
    settings
);
