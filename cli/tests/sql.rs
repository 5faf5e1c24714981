//! SQL against a real three-server cluster: `spandb demo` processes, the
//! client, gRPC, Raft and RocksDB underneath.

use std::sync::Arc;

use tests::process::ProcessCluster;

#[path = "../src/sql_engine.rs"]
#[allow(dead_code)]
mod sql_engine;

const BINARY: &str = env!("CARGO_BIN_EXE_spandb");

fn spandb(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BINARY).args(args).output().expect("running spandb")
}

/// Goal: the SQL goldenscripts that do not depend on the engine's clock,
/// shard layout or concurrency control give, on a real cluster, exactly
/// what they give on the in-memory engine.
/// Method: one cluster; each script on a fresh database would need a
/// fresh cluster, so the scripts run in turn against one, each using its
/// own tables (they create what they use).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goldenscripts_pass_on_a_real_cluster() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let client = client::Client::connect(cluster.addrs.clone()).await?;
    let handle = tokio::runtime::Handle::current();
    let engine = Arc::new(sql_engine::ClientEngine::new(client, handle, cluster.addrs[0].clone()));
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for script in ["writes", "aggregates", "subqueries", "types", "errors"] {
            // Each script creates its own tables; drop what an earlier
            // one left under the same names first.
            let mut runner = sql::testing::ScriptRunner::new(engine.clone());
            let path = tests::package_dir().join(format!("../sql/src/testscripts/{script}"));
            goldenscript::run(&mut runner, &path)?;
            drop_every_table(&engine);
        }
        Ok(())
    })
    .await??;
    cluster.stop().await;
    Ok(())
}

/// Drops every table, in one statement (each schema change waits out
/// descriptor leases once, however many tables it drops).
fn drop_every_table(engine: &Arc<sql_engine::ClientEngine>) {
    let names: Vec<String> =
        sql::session::list_tables(engine.as_ref()).expect("tables").iter().map(|t| t.name.clone()).collect();
    if names.is_empty() {
        return;
    }
    let mut session = sql::Session::new(engine.clone());
    session.execute(&format!("DROP TABLE {}", names.join(", ")), &mut sql::Collected::default()).expect("drop");
}

/// Goal: the sqllogictest files of queries (whose expected rows are
/// PostgreSQL 15's) give the same answers on a real cluster as on the
/// in-memory engine.
/// Method: one cluster; before each file, drop every table (each file
/// expects a fresh database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqllogictest_files_pass_on_a_real_cluster() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let client = client::Client::connect(cluster.addrs.clone()).await?;
    let handle = tokio::runtime::Handle::current();
    let engine = Arc::new(sql_engine::ClientEngine::new(client, handle, cluster.addrs[0].clone()));
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = Vec::new();
        for file in ["select", "join", "aggregate", "subquery", "setop", "dml", "cte_view"] {
            drop_every_table(&engine);
            let path = tests::package_dir().join(format!("../sql/tests/slt/{file}.slt"));
            failures
                .extend(sql::testing::run_slt_file(&path, engine.clone()).into_iter().map(|f| format!("{file}: {f}")));
        }
        failures
    })
    .await?;
    cluster.stop().await;
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

/// Goal: the shell does what its help says on a real cluster: statements
/// from -e and -f, formats, EXPLAIN naming the shards a scan touches, a
/// transaction's commit timestamp readable AS OF SYSTEM TIME, and a
/// failing statement's SQLSTATE, caret and non-zero exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_shell_commands() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let a = cluster.addrs[0].clone();
    let run = |args: &[&str]| {
        let mut all = vec!["sql", "--addr", a.as_str()];
        all.extend_from_slice(args);
        spandb(&all)
    };
    let out = run(&[
        "-e",
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
        "-e",
        "INSERT INTO t VALUES (1, 'a'), (2, 'b,c')",
        "--format",
        "csv",
        "-e",
        "SELECT * FROM t ORDER BY id",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "id,v\n1,a\n2,\"b,c\"\n");

    let out = run(&["-e", "EXPLAIN SELECT v FROM t WHERE id = 2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Scan t@t_pkey") && text.contains("span /Table/100/1/2"), "{text}");
    assert!(text.contains("on shard") && text.contains("(leader s"), "{text}");

    // EXPLAIN ANALYZE of a write: work per operator and the commit's
    // commit-wait, measured on the cluster.
    let out = run(&["-e", "EXPLAIN ANALYZE UPDATE t SET v = 'b,c' WHERE id = 2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rows updated: 1") && text.contains("kv requests"), "{text}");
    assert!(text.contains("commit-wait") && text.contains("1 participant shard(s)"), "{text}");

    // A committed change, then the state before it, AS OF its timestamp.
    let script = tempfile::NamedTempFile::new()?;
    std::fs::write(script.path(), "BEGIN;\nUPDATE t SET v = 'z' WHERE id = 1;\nCOMMIT;\nSHOW COMMIT TIMESTAMP;\n")?;
    let out = run(&["--format", "tsv", "-f", script.path().to_str().expect("utf-8")]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ts = text.lines().nth(1).expect("a timestamp").trim().to_string();
    let nanos = chrono::DateTime::parse_from_rfc3339(&ts)?.timestamp_nanos_opt().expect("in range") as u64;
    let before = format!("SELECT v FROM t AS OF SYSTEM TIME {} WHERE id = 1", nanos - 1);
    let out = run(&["--format", "tsv", "-e", &before]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\na\n", "{out:?}");
    let at = format!("SELECT v FROM t AS OF SYSTEM TIME '{ts}' WHERE id = 1");
    let out = run(&["--format", "tsv", "-e", &at]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\nz\n", "{out:?}");

    // Errors: SQLSTATE, caret, exit code; later statements do not run.
    let out = run(&["-e", "SELECT nope FROM t", "-e", "INSERT INTO t VALUES (3, 'never')"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ERROR:  column \"nope\" does not exist"), "{err}");
    assert!(err.contains("SQLSTATE: 42703") && err.contains("       ^"), "{err}");
    let out = run(&["--format", "csv", "-e", "SELECT count(*) FROM t"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "count\n2\n");
    cluster.stop().await;
    Ok(())
}

/// Goal: Ctrl-C cancels the running statement (SQLSTATE 57014), not the
/// shell, which then runs the next statement.
/// Method: the shell reading statements from a pipe; a statement that
/// runs for minutes; SIGINT every 100 ms until the shell reports the
/// cancellation (the statement may not have started at the first one);
/// then another statement and `\q`: answered, exit code 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_the_statement_not_the_shell() -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let mut child = Command::new(BINARY)
        .args(["sql", "--addr", &cluster.addrs[0]])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let collect = |mut pipe: Box<dyn Read + Send>| {
        let buffer = Arc::new(Mutex::new(String::new()));
        let out = buffer.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                out.lock().expect("buffer").push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        buffer
    };
    let stdout = collect(Box::new(child.stdout.take().expect("stdout")));
    let stderr = collect(Box::new(child.stderr.take().expect("stderr")));
    let mut stdin = child.stdin.take().expect("stdin");
    let deadline = Instant::now() + Duration::from_secs(60);
    let wait_for = |buffer: &Arc<Mutex<String>>, what: &str, on_poll: &mut dyn FnMut()| {
        while !buffer.lock().expect("buffer").contains(what) {
            assert!(Instant::now() < deadline, "no {what:?} in time; stderr: {}", stderr.lock().expect("buffer"));
            on_poll();
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The banner: the signal handler is in place.
    wait_for(&stdout, "SpanDB SQL shell", &mut || {});
    writeln!(stdin, "SELECT count(*) FROM generate_series(1, 10000000000);")?;
    let pid = child.id() as i32;
    wait_for(&stderr, "57014", &mut || {
        send_sigint(pid);
    });
    assert!(stderr.lock().expect("buffer").contains("canceling statement due to user request"));
    writeln!(stdin, "SELECT 40 + 2;")?;
    wait_for(&stdout, "42", &mut || {});
    writeln!(stdin, "\\q")?;
    drop(stdin);
    let status = child.wait()?;
    assert!(status.success(), "{status:?}");
    cluster.stop().await;
    Ok(())
}

/// Sends SIGINT to `pid` with the `kill` command (the workspace forbids
/// unsafe code, so no libc::kill here).
fn send_sigint(pid: i32) {
    let _ = std::process::Command::new("kill").args(["-INT", &pid.to_string()]).status();
}

/// Goal: concurrent DDL and DML never leave a row without its index
/// entries, or an index entry without its row (the catalog module says
/// why: writes share-lock the descriptor that DDL writes).
/// Method: a real cluster; four clients insert, update and delete rows of
/// one table while a fifth creates and drops indexes on it, over and
/// over; every index is checked against the rows in one snapshot after
/// each schema change and at the end. Errors the clients get (aborts,
/// duplicates) are fine; inconsistency is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ddl_and_dml_keep_indexes_consistent() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let client = client::Client::connect(cluster.addrs.clone()).await?;
    let engine =
        Arc::new(sql_engine::ClientEngine::new(client, tokio::runtime::Handle::current(), cluster.addrs[0].clone()));
    let exec = |s: &mut sql::Session, q: &str| s.execute(q, &mut sql::Collected::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    {
        let mut s = sql::Session::new(engine.clone());
        let e = engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut s2 = sql::Session::new(e);
            exec(&mut s2, "CREATE TABLE t (id INT PRIMARY KEY, a INT, b TEXT)").expect("create");
            exec(&mut s, "INSERT INTO t SELECT g, g % 7, 'b' || g FROM generate_series(1, 50) AS g").expect("load");
        })
        .await?;
    }
    for w in 0..4u64 {
        let (engine, stop) = (engine.clone(), stop.clone());
        writers.push(tokio::task::spawn_blocking(move || {
            let mut s = sql::Session::new(engine);
            let mut n = w;
            let mut ok = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let id = (n >> 33) % 80;
                let q = match (n >> 20) % 3 {
                    0 => format!("INSERT INTO t VALUES ({id}, {}, 'w{w}') ON CONFLICT DO NOTHING", n % 7),
                    1 => format!("UPDATE t SET a = a + 1, b = b || 'x' WHERE id = {id}"),
                    _ => format!("DELETE FROM t WHERE id = {id}"),
                };
                if exec(&mut s, &q).is_ok() {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let checker = {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || -> Result<u32, String> {
            let mut s = sql::Session::new(engine.clone());
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut changes = 0;
            while Instant::now() < deadline {
                for ddl in [
                    "CREATE INDEX t_a ON t (a)",
                    "CREATE INDEX t_b ON t (b DESC, a)",
                    "DROP INDEX t_a",
                    "DROP INDEX t_b",
                ] {
                    // A schema change may lose to a writer and abort: try again.
                    let mut tries = 0;
                    while let Err(e) = exec(&mut s, ddl) {
                        tries += 1;
                        if !e.is_retryable() || tries > 20 {
                            return Err(format!("{ddl}: {} {}", e.state.code(), e.message));
                        }
                    }
                    changes += 1;
                    sql::testing::check_indexes(engine.as_ref(), "t")?;
                }
            }
            Ok(changes)
        })
    };
    let changes = checker.await?;
    stop.store(true, Ordering::SeqCst);
    let mut writes = 0;
    for w in writers {
        writes += w.await?;
    }
    let changes = changes.map_err(|e| anyhow::anyhow!("inconsistent: {e}"))?;
    {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = sql::Session::new(engine.clone());
            exec(&mut s, "CREATE INDEX t_a ON t (a)").expect("final index");
            sql::testing::check_indexes(engine.as_ref(), "t").expect("consistent at the end");
        })
        .await?;
    }
    assert!(changes >= 8 && writes >= 50, "too little happened: {changes} schema changes, {writes} writes");
    cluster.stop().await;
    Ok(())
}

/// Goal: on a real cluster, once a schema change returns, no statement
/// that starts afterwards plans with the schema from before it, even on a
/// gateway that leased the old descriptor a moment earlier (the change
/// drained the table and waited out the lease; `sql::catalog`, "Leases").
/// Method: one session reads `SELECT c FROM t WHERE id = 1` in a loop
/// (leased, single-shard reads), noting when each statement started and
/// whether it saw column `c`; another drops `c`. No read that started
/// after the DROP returned may have seen `c`; reads before it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statement_after_a_schema_change_uses_the_old_schema() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let client = client::Client::connect(cluster.addrs.clone()).await?;
    let engine =
        Arc::new(sql_engine::ClientEngine::new(client, tokio::runtime::Handle::current(), cluster.addrs[0].clone()));
    let exec = |s: &mut sql::Session, q: &str| s.execute(q, &mut sql::Collected::default());
    let setup = engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = sql::Session::new(setup);
        exec(&mut s, "CREATE TABLE t (id INT PRIMARY KEY, c INT, d INT)").expect("create");
        exec(&mut s, "INSERT INTO t VALUES (1, 10, 20)").expect("insert");
    })
    .await?;

    let stop = Arc::new(AtomicBool::new(false));
    let (reader_engine, reader_stop) = (engine.clone(), stop.clone());
    let reader = tokio::task::spawn_blocking(move || {
        let mut s = sql::Session::new(reader_engine);
        let mut reads = Vec::new();
        while !reader_stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let saw_c = match exec(&mut s, "SELECT c FROM t WHERE id = 1") {
                Ok(()) => true,
                Err(e) if e.state.code() == "42703" => false,
                Err(e) => panic!("a read failed: {} {}", e.state.code(), e.message),
            };
            reads.push((started, saw_c));
        }
        reads
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ddl_engine = engine.clone();
    let returned = tokio::task::spawn_blocking(move || {
        let mut s = sql::Session::new(ddl_engine);
        exec(&mut s, "ALTER TABLE t DROP COLUMN c").expect("drop column");
        Instant::now()
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let reads = reader.await?;
    let before = reads.iter().filter(|(started, saw)| *started < returned && *saw).count();
    let after: Vec<_> = reads.iter().filter(|(started, _)| *started > returned).collect();
    assert!(before > 10, "too few reads saw c before the change: {before}");
    assert!(after.len() > 10, "too few reads after the change: {}", after.len());
    let stale = after.iter().filter(|(_, saw)| *saw).count();
    assert_eq!(stale, 0, "{stale} of {} reads begun after DROP COLUMN returned still saw c", after.len());
    cluster.stop().await;
    Ok(())
}

/// Goal: every table created gets shards of its own: the first key of a
/// new table and the first key after it begin shards, so `spandb status`
/// shows a shard `[/Table/N, /Table/N+1)` per table (CockroachDB splits at
/// table boundaries the same way), and the tables' rows read back.
/// Method: a demo cluster; two tables created, a row in each; status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_new_table_gets_shards_of_its_own() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let a = cluster.addrs[0].clone();
    let spec = cluster.spec_path();
    let out = spandb(&[
        "sql",
        "--addr",
        &a,
        "--split-tables",
        "--cluster",
        spec.to_str().expect("a UTF-8 path"),
        "-e",
        "CREATE TABLE fruit (id INT PRIMARY KEY, name TEXT)",
        "-e",
        "CREATE TABLE veg (id INT PRIMARY KEY, name TEXT)",
        "-e",
        "INSERT INTO fruit VALUES (1, 'apple')",
        "-e",
        "INSERT INTO veg VALUES (2, 'leek')",
    ]);
    assert!(out.status.success(), "{out:?}");
    let status = String::from_utf8_lossy(&spandb(&["status", "--addr", &a]).stdout).to_string();
    let own: Vec<(u64, u64)> = status
        .lines()
        .filter_map(|l| {
            let rest = l.split("[/Table/").nth(1)?;
            let (start, rest) = rest.split_once(", /Table/")?;
            let end = rest.split(')').next()?;
            Some((start.parse().ok()?, end.parse().ok()?))
        })
        .collect();
    let tables: std::collections::BTreeSet<u64> = own.iter().filter(|(s, e)| *e == s + 1).map(|(s, _)| *s).collect();
    assert!(tables.len() >= 2, "no shard of its own for each table: {status}");
    let rows = spandb(&["sql", "--addr", &a, "-e", "SELECT name FROM fruit", "-e", "SELECT name FROM veg"]);
    let text = String::from_utf8_lossy(&rows.stdout);
    assert!(text.contains("apple") && text.contains("leek"), "{text}");
    cluster.stop().await;
    Ok(())
}
