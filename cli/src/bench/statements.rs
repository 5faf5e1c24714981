//! `spandb bench sql`: SQL statements beside the key-value operations they
//! amount to, in one run, so SQL's overhead shows as a ratio.
//!
//! ```text
//!   point-select  SELECT v FROM kv WHERE k = N          vs  kv-get (linearizable get)
//!   insert        INSERT INTO ins VALUES (N, 'v...')    vs  kv-put
//!   update        UPDATE kv SET v = v + 1 WHERE k = N   vs  txn-rw (read, write back)
//!   tpcb          pgbench's TPC-B-like transaction (5 statements, 4 tables)
//!   join10        a 10-way join chained by equalities
//! ```
//!
//! Each client is a session on its own thread (the SQL layer is
//! synchronous); statements are sent as text, as over PostgreSQL's simple
//! query protocol. A transaction aborted as retryable is run again and
//! counted once, as pgbench does with `--max-tries`.
//!
//! Each SQL run also prints where a transaction's time went, on average
//! per transaction completed (retried attempts' time included), as a
//! `BREAKDOWN` line:
//!
//! ```text
//!   txn_ms            the transaction as its client saw it (the mean)
//!   session_ms        the rest: parsing, planning, executing, retries' waits
//!   read_ms           locking reads (reads= of them), of which at the servers
//!     read_server_ms    (lock: read_lock_ms, until their locks were granted)
//!   lock_free_read_ms reads outside read-write transactions
//!   prepare_ms        two-phase commit's prepares (server: prepare_server_ms)
//!   commit_ms         the commit at the coordinator or only shard (server:
//!                     commit_server_ms, of which commit_wait_ms)
//!   network_ms        client time minus server time over all of these:
//!                     loopback TCP, gRPC at both ends, routing retries
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::Rng;
use sql::{Collected, Session};

use super::{bench_cluster, BenchTarget, Report, Runs};
use crate::sql_engine::{ClientEngine, Spent, TimeSpent};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlWorkload {
    PointSelect,
    Insert,
    Update,
    Tpcb,
    Join10,
    /// The raw peer of point-select: a linearizable key-value get.
    KvGet,
    /// The raw peer of insert: a key-value put.
    KvPut,
    /// The raw peer of update: a transaction reading a key and writing it.
    TxnRw,
}

#[derive(clap::Args)]
pub struct SqlBenchArgs {
    #[command(flatten)]
    target: BenchTarget,
    #[command(flatten)]
    runs: Runs,
    #[arg(long, value_delimiter = ',', default_value = "point-select,kv-get,insert,kv-put,update,txn-rw,tpcb,join10")]
    workload: Vec<SqlWorkload>,
    /// Rows of the kv table (and accounts, for tpcb).
    #[arg(long, default_value_t = 1000)]
    rows: usize,
}

/// Most concurrent SQL clients (each is a thread).
const SQL_CLIENTS_MAX: usize = 256;
/// Attempts of one benchmark transaction before it counts as an error.
const TRIES_MAX: u32 = 10;
/// Tables of the join10 workload, and rows in each.
const JOIN_TABLES: usize = 10;
const JOIN_ROWS: usize = 100;
/// Branches and tellers of the tpcb workload (pgbench scale 1).
const TPCB_BRANCHES: usize = 1;
const TPCB_TELLERS: usize = 10;
/// Rows inserted per statement while loading.
const LOAD_BATCH_ROWS: usize = 500;

pub async fn run(args: SqlBenchArgs) -> anyhow::Result<()> {
    args.runs.check(SQL_CLIENTS_MAX)?;
    if args.rows == 0 {
        bail!("--rows must be at least 1");
    }
    let (addr, local) = bench_cluster(&args.target, None).await?;
    let result = run_all(&args, &addr).await;
    if let Some(cluster) = local {
        cluster.stop().await;
    }
    result
}

async fn run_all(args: &SqlBenchArgs, addr: &str) -> anyhow::Result<()> {
    let client = client::Client::connect([addr.to_string()]).await.with_context(|| format!("connecting to {addr}"))?;
    let spent = Arc::new(TimeSpent::default());
    let engine = Arc::new(
        ClientEngine::new(client.clone(), tokio::runtime::Handle::current(), addr.to_string())
            .with_time_spent(spent.clone()),
    );
    let rows = args.rows;
    {
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || load(engine, rows)).await.context("loader")??;
    }
    for &workload in &args.workload {
        for &clients in &args.runs.clients {
            let name = format!("{workload:?}").to_lowercase();
            match workload {
                SqlWorkload::KvGet | SqlWorkload::KvPut | SqlWorkload::TxnRw => {
                    run_raw(&client, workload, clients, args).await.print(&format!("spandb-raw-{name}-c{clients}"));
                }
                _ => {
                    let (report, spent) = run_sql(&engine, &spent, workload, clients, args).await;
                    let label = format!("spandb-sql-{name}-c{clients}");
                    report.print(&label);
                    print_breakdown(&label, &report, &spent);
                }
            }
        }
    }
    Ok(())
}

fn run_statement(session: &mut Session, sql: &str) -> sql::Result<()> {
    session.execute(sql, &mut Collected::default())
}

/// Like `run_statement`, the error naming the statement (for loading).
fn exec(session: &mut Session, sql: &str) -> anyhow::Result<()> {
    run_statement(session, sql).map_err(|e| anyhow::anyhow!("{}: {} ({sql})", e.state.code(), e.message))
}

/// Creates and fills the tables every workload uses.
fn load(engine: Arc<ClientEngine>, rows: usize) -> anyhow::Result<()> {
    let mut s = Session::new(engine);
    for t in ["kv", "ins", "pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history"] {
        exec(&mut s, &format!("DROP TABLE IF EXISTS {t}"))?;
    }
    for i in 0..JOIN_TABLES {
        exec(&mut s, &format!("DROP TABLE IF EXISTS j{i}"))?;
    }
    exec(&mut s, "CREATE TABLE kv (k INT PRIMARY KEY, v INT)")?;
    exec(&mut s, "CREATE TABLE ins (k BIGINT PRIMARY KEY, v TEXT)")?;
    exec(&mut s, "CREATE TABLE pgbench_accounts (aid INT PRIMARY KEY, bid INT, abalance INT, filler CHAR(84))")?;
    exec(&mut s, "CREATE TABLE pgbench_branches (bid INT PRIMARY KEY, bbalance INT, filler CHAR(88))")?;
    exec(&mut s, "CREATE TABLE pgbench_tellers (tid INT PRIMARY KEY, bid INT, tbalance INT, filler CHAR(84))")?;
    exec(
        &mut s,
        "CREATE TABLE pgbench_history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler CHAR(22))",
    )?;
    for start in (0..rows).step_by(LOAD_BATCH_ROWS) {
        let end = (start + LOAD_BATCH_ROWS).min(rows);
        exec(&mut s, &format!("INSERT INTO kv SELECT g, 0 FROM generate_series({start}, {}) AS g", end - 1))?;
        exec(
            &mut s,
            &format!("INSERT INTO pgbench_accounts SELECT g, 1, 0, '' FROM generate_series({}, {end}) AS g", start + 1),
        )?;
    }
    exec(
        &mut s,
        &format!("INSERT INTO pgbench_branches SELECT g, 0, '' FROM generate_series(1, {TPCB_BRANCHES}) AS g"),
    )?;
    exec(
        &mut s,
        &format!("INSERT INTO pgbench_tellers SELECT g, 1, 0, '' FROM generate_series(1, {TPCB_TELLERS}) AS g"),
    )?;
    for i in 0..JOIN_TABLES {
        exec(&mut s, &format!("CREATE TABLE j{i} (id INT PRIMARY KEY, next INT)"))?;
        exec(&mut s, &format!("INSERT INTO j{i} SELECT g, g FROM generate_series(1, {JOIN_ROWS}) AS g"))?;
    }
    Ok(())
}

/// The statements of one operation of `workload`.
/// The statements of one transaction of `workload`: the `n`-th of client
/// `worker` of a run with `clients` clients (so inserted keys are new in
/// every run, on the same table).
fn statements(
    workload: SqlWorkload,
    rows: usize,
    (clients, worker, n): (usize, usize, u64),
    rng: &mut impl Rng,
) -> Vec<String> {
    match workload {
        SqlWorkload::PointSelect => vec![format!("SELECT v FROM kv WHERE k = {}", rng.random_range(0..rows))],
        SqlWorkload::Insert => {
            vec![format!("INSERT INTO ins VALUES ({}, 'value')", (clients as u64) << 48 | (worker as u64) << 32 | n)]
        }
        SqlWorkload::Update => vec![format!("UPDATE kv SET v = v + 1 WHERE k = {}", rng.random_range(0..rows))],
        SqlWorkload::Tpcb => {
            let aid = rng.random_range(1..=rows);
            let tid = rng.random_range(1..=TPCB_TELLERS);
            let bid = rng.random_range(1..=TPCB_BRANCHES);
            let delta = rng.random_range(-5000..=5000);
            vec![
                "BEGIN".into(),
                format!("UPDATE pgbench_accounts SET abalance = abalance + {delta} WHERE aid = {aid}"),
                format!("SELECT abalance FROM pgbench_accounts WHERE aid = {aid}"),
                format!("UPDATE pgbench_tellers SET tbalance = tbalance + {delta} WHERE tid = {tid}"),
                format!("UPDATE pgbench_branches SET bbalance = bbalance + {delta} WHERE bid = {bid}"),
                format!(
                    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES ({tid}, {bid}, {aid}, {delta}, CURRENT_TIMESTAMP)"
                ),
                "COMMIT".into(),
            ]
        }
        SqlWorkload::Join10 => {
            let tables: Vec<String> = (0..JOIN_TABLES).map(|i| format!("j{i}")).collect();
            let chain: Vec<String> = (1..JOIN_TABLES).map(|i| format!("j{}.next = j{i}.id", i - 1)).collect();
            vec![format!(
                "SELECT count(*) FROM {} WHERE {} AND j0.id = {}",
                tables.join(", "),
                chain.join(" AND "),
                rng.random_range(1..=JOIN_ROWS)
            )]
        }
        SqlWorkload::KvGet | SqlWorkload::KvPut | SqlWorkload::TxnRw => Vec::new(),
    }
}

/// Runs `workload`; returns its report and the time its transactions
/// spent (`engine` sums it into `spent`) from the measured period's start
/// until the last client stopped.
async fn run_sql(
    engine: &Arc<ClientEngine>,
    spent: &TimeSpent,
    workload: SqlWorkload,
    clients: usize,
    args: &SqlBenchArgs,
) -> (Report, Spent) {
    let warmup = args.runs.warmup();
    let measured = args.runs.measured();
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let rows = args.rows;
    let mut workers = Vec::new();
    // One gateway: its sessions share leased descriptors.
    let leases = Arc::new(sql::catalog::Leases::default());
    for worker in 0..clients {
        let engine = engine.clone();
        let leases = leases.clone();
        workers.push(tokio::task::spawn_blocking(move || {
            let mut session = Session::new(engine).with_leases(leases);
            let mut rng = rand::rng();
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut errors = 0u64;
            let mut first_error = None;
            let mut n = 0u64;
            while Instant::now() < end {
                n += 1;
                let statements = statements(workload, rows, (clients, worker, n), &mut rng);
                let t0 = Instant::now();
                let mut outcome = Ok(());
                for _ in 0..TRIES_MAX {
                    outcome = statements.iter().try_for_each(|s| run_statement(&mut session, s));
                    match &outcome {
                        Ok(()) => break,
                        // End the failed transaction; run it again if that
                        // may succeed (pgbench's --max-tries).
                        Err(e) => {
                            session.abort();
                            if !e.is_retryable() {
                                break;
                            }
                        }
                    }
                }
                if t0 >= measure_from && t0 < end {
                    match outcome {
                        Ok(()) => {
                            let _ = histogram.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{}: {}", e.state.code(), e.message));
                        }
                    }
                }
            }
            if let Some(e) = first_error {
                eprintln!("{workload:?} client {worker}: {errors} errors, the first: {e}");
            }
            (histogram, errors)
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = spent.total();
    let report = collect(workers, measured).await;
    (report, spent.total().since(&before))
}

/// The `BREAKDOWN` line (module docs): `spent` per transaction completed.
fn print_breakdown(label: &str, report: &Report, spent: &Spent) {
    let done = report.histogram.len() + report.errors;
    if done == 0 {
        return;
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / done as f64;
    let rw = &spent.rw;
    let txn = report.histogram.mean() / 1000.0;
    let (read, prepare, commit) = (per(rw.read), per(rw.prepare), per(rw.commit));
    let lock_free_read = per(spent.lock_free_read);
    let network = per(rw.read.saturating_sub(rw.read_server))
        + per(rw.prepare.saturating_sub(rw.prepare_server))
        + per(rw.commit.saturating_sub(rw.commit_server));
    println!(
        "BREAKDOWN label={label} txn_ms={txn:.3} session_ms={:.3} reads={:.2} read_ms={read:.3} \
         read_server_ms={:.3} read_lock_ms={:.3} lock_free_reads={:.2} lock_free_read_ms={lock_free_read:.3} \
         prepare_ms={prepare:.3} prepare_server_ms={:.3} commit_ms={commit:.3} commit_server_ms={:.3} \
         commit_wait_ms={:.3} network_ms={network:.3} attempts={:.2}",
        (txn - read - lock_free_read - prepare - commit).max(0.0),
        f64::from(rw.reads) / done as f64,
        per(rw.read_server),
        per(rw.read_lock),
        spent.lock_free_reads as f64 / done as f64,
        per(rw.prepare_server),
        per(rw.commit_server),
        per(rw.commit_wait),
        spent.txns as f64 / done as f64,
    );
}

async fn collect(workers: Vec<tokio::task::JoinHandle<(Histogram<u64>, u64)>>, measured: Duration) -> Report {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut errors = 0;
    for w in workers {
        if let Ok((h, e)) = w.await {
            let _ = histogram.add(h);
            errors += e;
        }
    }
    Report { histogram, errors, measured }
}

/// The raw key-value peers, on the SQL keys' neighbourhood (one shard).
async fn run_raw(client: &client::Client, workload: SqlWorkload, clients: usize, args: &SqlBenchArgs) -> Report {
    let warmup = args.runs.warmup();
    let measured = args.runs.measured();
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let rows = args.rows;
    // Next to the SQL keys (the same shard), outside their prefix.
    let key = |n: usize| {
        let mut k = vec![sql::encoding::SQL_PREFIX + 1];
        k.extend_from_slice(&(n as u64).to_be_bytes());
        k
    };
    let mut workers = Vec::new();
    for worker in 0..clients {
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut errors = 0u64;
            let mut n = 0usize;
            while Instant::now() < end {
                n += 1;
                let k = match workload {
                    SqlWorkload::KvPut => key((worker << 40) | n),
                    _ => key(rand::random_range(0..rows)),
                };
                let t0 = Instant::now();
                let result = match workload {
                    SqlWorkload::KvGet => client.get(&k).await.map(|_| ()),
                    SqlWorkload::KvPut => client.put(&k, b"value").await.map(|_| ()),
                    _ => read_write(&client, &k).await,
                };
                if t0 >= measure_from && t0 < end {
                    match result {
                        Ok(()) => {
                            let _ = histogram.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        Err(_) => errors += 1,
                    }
                }
            }
            (histogram, errors)
        }));
    }
    collect(workers, measured).await
}

/// Reads `k` and writes it back in one transaction, retried while aborted.
async fn read_write(client: &client::Client, k: &[u8]) -> Result<(), client::Error> {
    let mut last = client::Error::Aborted("not run".into());
    for _ in 0..TRIES_MAX {
        let mut txn = client.begin();
        let v = match txn.get(k).await {
            Ok(v) => v,
            Err(e) => {
                last = e;
                continue;
            }
        };
        txn.put(k, &v.unwrap_or_default());
        match txn.commit().await {
            Ok(_) => return Ok(()),
            Err(e) => last = e,
        }
    }
    Err(last)
}
