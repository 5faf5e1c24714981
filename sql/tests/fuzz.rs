//! Bad input never panics the SQL layer: generated statements, most of
//! them nonsense, some of them almost right, against a small database.

use std::sync::Arc;

use proptest::prelude::*;
use sql::memory::MemoryEngine;
use sql::{Collected, Session};

/// Words statements are made of: keywords, the test tables' names and
/// columns, literals of every type, operators and punctuation.
const WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "EXISTS",
    "BETWEEN",
    "LIKE",
    "ILIKE",
    "GROUP",
    "BY",
    "HAVING",
    "ORDER",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "DISTINCT",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "CROSS",
    "ON",
    "USING",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "ALL",
    "AS",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "RETURNING",
    "ON CONFLICT DO NOTHING",
    "CREATE TABLE",
    "CREATE INDEX",
    "DROP TABLE",
    "ALTER TABLE",
    "ADD COLUMN",
    "DROP COLUMN",
    "PRIMARY KEY",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "EXPLAIN",
    "ANALYZE",
    "AS OF SYSTEM TIME",
    "t",
    "u",
    "k",
    "v",
    "w",
    "t.k",
    "u.k",
    "*",
    "count(*)",
    "sum(k)",
    "max(v)",
    "generate_series(1, 3)",
    "coalesce(v, 'x')",
    "length(v)",
    "0",
    "1",
    "-1",
    "2147483647",
    "9223372036854775807",
    "1.5",
    "1e308",
    "'a'",
    "''",
    "'2026-01-01'",
    "'\\x00'",
    "true",
    "false",
    "::int",
    "::text",
    "::bigint",
    "::real",
    "::bool",
    "::timestamp",
    "::bytea",
    "::char(2)",
    "::varchar(1)",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "(",
    ")",
    ",",
    ";",
    "$1",
    "INT",
    "TEXT",
    "BIGINT",
    "SMALLINT",
    "BOOLEAN",
];

fn statement() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 1..25).prop_map(|w| w.join(" "))
}

/// Almost-right statements: a valid template with one word replaced.
fn mutated() -> impl Strategy<Value = String> {
    const TEMPLATES: &[&str] = &[
        "SELECT k , v FROM t WHERE k > 1 ORDER BY v DESC LIMIT 2",
        "SELECT v , count ( * ) FROM t GROUP BY v HAVING count ( * ) > 0",
        "SELECT t.k , u.w FROM t JOIN u ON t.k = u.k WHERE u.w IS NOT NULL",
        "INSERT INTO t VALUES ( 5 , 'e' ) ON CONFLICT DO NOTHING",
        "UPDATE t SET v = v || 'x' WHERE k IN ( SELECT k FROM u )",
        "SELECT k FROM t WHERE EXISTS ( SELECT 1 FROM u WHERE u.k = t.k )",
        "SELECT CASE WHEN k > 1 THEN v ELSE NULL END FROM t UNION SELECT w FROM u",
    ];
    (prop::sample::select(TEMPLATES), any::<prop::sample::Index>(), prop::sample::select(WORDS)).prop_map(
        |(template, at, word)| {
            let mut words: Vec<&str> = template.split(' ').collect();
            let i = at.index(words.len());
            words[i] = word;
            words.join(" ")
        },
    )
}

fn session() -> Session {
    let mut s = Session::new(Arc::new(MemoryEngine::new()));
    let mut out = Collected::default();
    for setup in [
        "CREATE TABLE t (k INT PRIMARY KEY, v TEXT)",
        "CREATE TABLE u (k INT, w TEXT)",
        "CREATE INDEX u_w ON u (w)",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, NULL)",
        "INSERT INTO u VALUES (1, 'x'), (3, NULL), (NULL, 'z')",
    ] {
        s.execute(setup, &mut out).expect("setup");
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Goal: no statement, however wrong, panics; every failure is an
    /// error with a SQLSTATE, and the session stays usable.
    /// Method: random word sequences and one-word mutations of valid
    /// statements; then a known statement must still work.
    #[test]
    fn generated_statements_never_panic(sql in prop_oneof![statement(), mutated()]) {
        let mut s = session();
        let mut out = Collected::default();
        if let Err(e) = s.execute(&sql, &mut out) {
            prop_assert_eq!(e.state.code().len(), 5);
        }
        s.abort();
        // Usable still (not `SELECT ... FROM t`: the words can spell
        // DROP TABLE t, which succeeds).
        let mut out = Collected::default();
        prop_assert!(s.execute("SELECT 1 + 1", &mut out).is_ok());
        prop_assert_eq!(&out.rows, &vec![vec![sql::Value::Int4(2)]]);
    }
}
