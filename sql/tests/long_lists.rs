//! Long lists in one statement: a row IN list of tens of thousands of
//! rows (what an application sends for a batch of composite keys, up to
//! the statement size limit) is answered on a connection thread's stack,
//! with no recursion as deep as the list is long.

mod common;

use std::sync::Arc;

use common::{count, must};
use sql::memory::MemoryEngine;
use sql::Session;

/// Goal: `(a, b) IN ((..), ...)` with 40,000 rows runs, and finds the
/// rows it names. Method: a 2 MiB thread (the default for spawned
/// threads, as the gateway's connection threads are); each row's `=` is
/// ORed in a balanced tree, so evaluation nests about 16 deep.
#[test]
fn a_row_in_list_of_forty_thousand_rows_runs_on_a_small_stack() {
    let worker = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
        let mut session = Session::new(Arc::new(MemoryEngine::new()));
        must(&mut session, "CREATE TABLE pairs (a INT, b INT, PRIMARY KEY (a, b))");
        must(&mut session, "INSERT INTO pairs SELECT x, x * 2 FROM generate_series(1, 100) x");
        let rows: Vec<String> = (1..=40_000).map(|i| format!("({i}, {})", i * 2)).collect();
        let sql = format!("SELECT count(*) FROM pairs WHERE (a, b) IN ({})", rows.join(", "));
        assert!(sql.len() < sql::limits::STATEMENT_BYTES_MAX, "{} bytes", sql.len());
        count(&mut session, &sql)
    });
    assert_eq!(worker.expect("a thread").join().expect("no stack overflow"), 100);
}

/// Goal: a chain of 40,000 ORs (which the parser nests as deep as it is
/// long, without recursing) is refused with 54000 before anything
/// recurses through it: never a stack overflow, which would abort the
/// server. Method: a 2 MiB thread.
#[test]
fn a_chain_of_forty_thousand_ors_is_refused_not_a_stack_overflow() {
    let worker = std::thread::Builder::new().stack_size(2 << 20).spawn(|| {
        let mut session = Session::new(Arc::new(MemoryEngine::new()));
        let ors: Vec<String> = (1..=40_000).map(|i| format!("(x = {i})")).collect();
        let sql = format!("SELECT count(*) FROM generate_series(1, 10) x WHERE {}", ors.join(" OR "));
        common::run(&mut session, &sql).map(|_| ()).map_err(|e| e.state)
    });
    let outcome = worker.expect("a thread").join().expect("no stack overflow");
    assert_eq!(outcome, Err(sql::SqlState::ProgramLimitExceeded));
}

/// Goal: the deepest statements the limits let through are answered or
/// refused with 54000, never a stack overflow, on a thread of
/// `SESSION_STACK_BYTES` (the gateway's and the shell's) in this (debug)
/// build, whose frames are the largest: a run of 990 ORs (the binder
/// stops at 256 levels; what walks the tree before it does not), nested
/// parentheses, nested subqueries; and refused: a deep AS OF SYSTEM TIME
/// argument (from its tokens, before anything prints it in an error), a
/// chain hidden behind columns named `when`, 20,000 UNIONs of two-column
/// SELECTs, 5,000 FROM items.
#[test]
fn the_deepest_statements_allowed_run_or_are_refused_on_a_session_thread() {
    let worker = std::thread::Builder::new().stack_size(sql::limits::SESSION_STACK_BYTES).spawn(|| {
        let mut session = Session::new(Arc::new(MemoryEngine::new()));
        let ors = |n: usize| (1..=n).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
        let statements = [
            format!("SELECT count(*) FROM generate_series(1, 10) x WHERE {}", ors(495)),
            format!(
                "SELECT count(*) FROM generate_series(1, 10) x WHERE {}(x = 1){}",
                "(".repeat(150),
                ")".repeat(150)
            ),
            format!("SELECT {}1{}", "(SELECT ".repeat(60), ")".repeat(60)),
            format!("SELECT 1 AS OF SYSTEM TIME f({})", ors(5_000)),
            // WHEN as a name after an operator ends no run; UNIONs add up
            // whatever commas stand between them; FROM items are capped.
            format!(
                "SELECT CASE WHEN true THEN 0 {} END FROM (SELECT 1 AS \"when\") s",
                (0..100).map(|_| format!("{} +when", "+1".repeat(400))).collect::<String>()
            ),
            "SELECT 1, 1 UNION ALL ".repeat(20_000) + "SELECT 1, 1",
            format!(
                "SELECT 1 FROM {}",
                (0..5_000).map(|i| format!("generate_series(1, 1) g{i}")).collect::<Vec<_>>().join(", ")
            ),
        ];
        statements.iter().map(|sql| common::run(&mut session, sql).map(|_| ()).map_err(|e| e.state)).collect::<Vec<_>>()
    });
    let outcomes = worker.expect("a thread").join().expect("no stack overflow");
    for outcome in &outcomes {
        assert!(matches!(outcome, Ok(()) | Err(sql::SqlState::ProgramLimitExceeded)), "{outcomes:?}");
    }
    for refused in &outcomes[3..] {
        assert_eq!(refused, &Err(sql::SqlState::ProgramLimitExceeded), "{outcomes:?}");
    }
}

/// Goal: what is long but not deep is not refused: a CASE of 1,000 WHENs,
/// an IN list, a VALUES list of 5,000 rows of expressions. Method: each
/// runs on a session thread and gives its answer.
#[test]
fn long_but_shallow_statements_run() {
    let worker = std::thread::Builder::new().stack_size(sql::limits::SESSION_STACK_BYTES).spawn(|| {
        let mut session = Session::new(Arc::new(MemoryEngine::new()));
        let whens: Vec<String> = (1..=1_000).map(|i| format!("WHEN x = {i} THEN {i} + 1")).collect();
        let case = format!("SELECT sum(CASE {} ELSE 0 END) FROM generate_series(1, 10) x", whens.join(" "));
        let rows: Vec<String> = (1..=5_000).map(|i| format!("({i} + 1 * 2 - 2)")).collect();
        let values = format!("SELECT count(*), sum(v) FROM (VALUES {}) t(v)", rows.join(", "));
        (count(&mut session, &case), must(&mut session, &values).rows)
    });
    let (case, values) = worker.expect("a thread").join().expect("no stack overflow");
    assert_eq!(case, 65);
    assert_eq!(values, vec![vec![sql::Value::Int8(5_000), sql::Value::Int8(12_502_500)]]);
}
