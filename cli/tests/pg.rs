//! The PostgreSQL gateway, driven by the real psql 15 (Debian's
//! postgresql-client): what a user typing at psql sees.
//!
//! ```text
//!   psql ──PostgreSQL protocol 3.0──> spandb start's gateway ──> SQL ──> cluster
//! ```
//!
//! Each test starts a real local cluster (`spandb demo --no-shell`),
//! learns the gateway's address from the demo's psql line, and runs psql
//! against it.

use std::process::{Command, Output};

use tests::process::ProcessCluster;

const BINARY: &str = env!("CARGO_BIN_EXE_spandb");

/// Runs psql once against `addr` with `args` (unaligned, tuples only,
/// no ~/.psqlrc, errors verbose: SQLSTATE in every error line).
fn psql(addr: &str, args: &[&str]) -> Output {
    Command::new("psql")
        .arg(format!("postgresql://root@{addr}/spandb"))
        .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql runs (make test installs postgresql-client)")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Goal: psql connects (trust authentication), creates, writes and reads,
/// and shows SpanDB's errors as PostgreSQL's: SQLSTATE, message, DETAIL.
/// Several statements in one query run in order and a transaction block
/// works; after an error inside a block the rest of it is refused with
/// 25P02 until ROLLBACK. Notices and warnings reach psql.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_writes_reads_and_sees_sqlstates() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let addr = cluster.sql_addr.clone().expect("the demo prints a psql line");
    let checks = tokio::task::spawn_blocking(move || {
        let out = psql(
            &addr,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "CREATE TABLE t (id INT PRIMARY KEY, v TEXT, n BIGINT)",
                "-c",
                "INSERT INTO t VALUES (1, 'one', 10), (2, NULL, 20)",
                "-c",
                "BEGIN; INSERT INTO t VALUES (3, 'three', 30); COMMIT",
                "-c",
                "SELECT id, v, n FROM t ORDER BY id",
                "-c",
                "SELECT count(*), sum(n) FROM t",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("could not interpret"),
            "a command tag psql cannot read: {}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        for line in ["1|one|10", "2||20", "3|three|30", "3|60"] {
            assert!(stdout.lines().any(|l| l == line), "no line {line:?} in:\n{stdout}");
        }

        let out = psql(&addr, &["-c", "INSERT INTO t VALUES (1, 'again', 0)"]);
        assert!(!out.status.success());
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("ERROR:  23505: duplicate key value violates unique constraint \"t_pkey\""),
            "{stderr}"
        );
        assert!(stderr.contains("DETAIL:  Key (id)=(1) already exists."), "{stderr}");

        // Command tags as PostgreSQL writes them (psql prints them, and
        // complains of one it cannot read).
        let out = psql(
            &addr,
            &["-c", "UPDATE t SET n = n + 1 WHERE id < 3", "-c", "DELETE FROM t WHERE id = 3 RETURNING id"],
        );
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(!stderr.contains("could not interpret"), "{stderr}");
        assert!(stdout.lines().any(|l| l == "UPDATE 2") && stdout.lines().any(|l| l == "DELETE 1"), "{stdout}");

        let out = psql(&addr, &["-c", "SELECT nope FROM t"]);
        assert!(text(&out.stderr).contains("ERROR:  42703:"), "{}", text(&out.stderr));
        let out = psql(&addr, &["-c", "CREATE VIEW w AS SELECT id FROM t", "-c", "DROP TABLE w"]);
        let stderr = text(&out.stderr);
        assert!(stderr.contains("ERROR:  42809: \"w\" is not a table"), "{stderr}");
        assert!(stderr.contains("HINT:  Use DROP VIEW to remove a view."), "{stderr}");

        let out =
            psql(&addr, &["-c", "BEGIN", "-c", "SELECT 1 / 0", "-c", "SELECT 1", "-c", "ROLLBACK", "-c", "SELECT 2"]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(stderr.contains("ERROR:  22012: division by zero"), "{stderr}");
        assert!(stderr.contains("ERROR:  25P02: current transaction is aborted"), "{stderr}");
        assert!(stdout.lines().any(|l| l == "2"), "after ROLLBACK the session works: {stdout}");

        // Notices and warnings reach the client, with their severity and
        // SQLSTATE, as PostgreSQL's do.
        let out = psql(&addr, &["-c", "DROP TABLE IF EXISTS nosuch", "-c", "BEGIN; BEGIN; ROLLBACK"]);
        let stderr = text(&out.stderr);
        assert!(stderr.contains("NOTICE:  00000: table \"nosuch\" does not exist, skipping"), "{stderr}");
        assert!(stderr.contains("WARNING:  25001: there is already a transaction in progress"), "{stderr}");
        let out = psql(
            &addr,
            &["-c", "SET client_min_messages = warning", "-c", "DROP TABLE IF EXISTS nosuch", "-c", "ROLLBACK"],
        );
        let stderr = text(&out.stderr);
        assert!(!stderr.contains("NOTICE"), "client_min_messages = warning keeps notices back: {stderr}");
        assert!(stderr.contains("WARNING:  25P01: there is no transaction in progress"), "{stderr}");
    });
    let result = checks.await;
    cluster.stop().await;
    result?;
    Ok(())
}

/// Goal: a dropped table's rows are swept by the gateways on their own
/// (`sql::sweep`): `SHOW JOBS` lists the sweep the DROP TABLE recorded,
/// and empties within a deadline while the cluster runs; a table beside
/// it keeps its rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tables_rows_are_swept_in_the_background() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let addr = cluster.sql_addr.clone().expect("the demo prints a psql line");
    let checks = tokio::task::spawn_blocking(move || {
        let out = psql(
            &addr,
            &[
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "CREATE TABLE gone (id INT PRIMARY KEY, v TEXT)",
                "-c",
                "INSERT INTO gone SELECT g, 'x' FROM generate_series(1, 9000) g",
                "-c",
                "CREATE TABLE kept (id INT PRIMARY KEY)",
                "-c",
                "INSERT INTO kept VALUES (1), (2)",
                "-c",
                "DROP TABLE gone",
                "-c",
                "SHOW JOBS",
            ],
        );
        // Nine batches of 1,000 keys, 100 ms apart: the job is still
        // there when the next command asks.
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(stdout.lines().any(|l| l.starts_with("SWEEP|")), "{stdout}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let out = psql(&addr, &["-c", "SHOW JOBS"]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            if text(&out.stdout).trim().is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "still to sweep: {}", text(&out.stdout));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let out = psql(&addr, &["-c", "SELECT count(*) FROM kept"]);
        assert_eq!(text(&out.stdout).trim(), "2", "{}", text(&out.stderr));
    });
    let result = checks.await;
    cluster.stop().await;
    result?;
    Ok(())
}
