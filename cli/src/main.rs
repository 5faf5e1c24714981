//! `spandb`: the one binary. Runs servers (`start`), a local cluster with a
//! SQL shell (`demo`), the SQL shell (`sql`), key-value commands (`kv`),
//! cluster status (`status`) and benchmarks (`bench`).
//!
//! Errors are printed as one line (`error: ...`) with a non-zero exit code;
//! nothing here panics on bad input.

mod admin;
mod bench;
mod cluster;
mod display;
mod kv;
mod pg;
mod shell;
mod sql_engine;
mod sql_shell;
mod start;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: a server allocates and frees small
/// buffers on many threads at once (gRPC frames, decoded requests, Raft
/// entries), where glibc spent about a tenth of the cluster's CPU under
/// pgbench (BENCHMARKS.md, 2026-12-04 (night)).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "spandb", version, about = "SpanDB: a Spanner-style sharded, replicated database")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one spanserver.
    Start(start::StartArgs),
    /// Run a local 3-server cluster and open a SQL shell on it.
    Demo(DemoArgs),
    /// The SQL shell (psql-style) against a running cluster.
    Sql(sql_shell::SqlArgs),
    /// Key-value commands against a running cluster.
    Kv(kv::KvArgs),
    /// Operator commands against a running cluster (split a shard).
    Admin(admin::AdminArgs),
    /// Servers, shards, replicas, leaders and progress.
    Status {
        /// Any server of the cluster (host:port).
        #[arg(long)]
        addr: String,
    },
    /// Benchmarks.
    Bench(bench::BenchArgs),
    /// Jepsen-style verification: a workload under faults, then a verdict
    /// (`spandb jepsen check DIR` re-checks a saved history).
    Jepsen(harness::JepsenArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Data directory (default: a fresh temporary directory, removed on exit).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run the cluster in the foreground without a shell (for scripts).
    #[arg(long)]
    no_shell: bool,
    /// Servers listen on this port and the next two (default: 7000 if free,
    /// else any free ports).
    #[arg(long)]
    port_base: Option<u16>,
    /// TrueTime epsilon of the servers, in milliseconds (commit-wait costs
    /// about twice this per write).
    #[arg(long, default_value_t = spanserver::config::TimeConfig::default().epsilon_ms)]
    epsilon_ms: u64,
    /// PostgreSQL clients must log in as a user of this file, by
    /// SCRAM-SHA-256 password (`spandb start --sql-users`); default: trust.
    #[arg(long)]
    sql_users: Option<PathBuf>,
    /// Give each table created shards of its own (`spandb start
    /// --sql-split-tables`). `false`: tables share shards until they split
    /// by size, so a transaction over small tables commits in one phase
    /// (but a long transaction block is likelier to lose its locks to a
    /// split's leadership moves: README, "Shards per table").
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    sql_split_tables: bool,
    /// Server 1, 2 or 3 leads every shard (the placement driver's
    /// `preferred_leader`, Spanner's default leader). Server 1's gateway
    /// is the one the demo prints: with `--preferred-leader 1` its reads
    /// and commits need no network hop to a leader.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=3))]
    preferred_leader: Option<u64>,
    /// A shard holding more than this many MiB of versions splits in two
    /// (the servers' `split.size_bytes`; 0: never by size). The demo's
    /// default is small, so loading a little data shows shards splitting.
    #[arg(long, default_value_t = DEMO_SPLIT_BYTES >> 20)]
    split_mib: u64,
    /// A shard serving more than this many requests a second splits at
    /// the median of its sampled keys (the servers' `split.load_qps`; 0:
    /// never by load).
    #[arg(long, default_value_t = spanserver::config::SplitConfig::default().load_qps)]
    split_load_qps: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Start(args) => start::run(args).await,
            Command::Demo(args) => demo(args).await,
            Command::Sql(args) => sql_shell::run(args).await,
            Command::Kv(args) => kv::run(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Status { addr } => status::run(&addr).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Jepsen(args) => {
                init_logging("error");
                harness::run(args).await
            }
        }
    });
    // Background tasks (peer links, connections) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where the demo's shards split by size (the servers' default is 64 MiB).
const DEMO_SPLIT_BYTES: u64 = 8 * 1024 * 1024;

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    init_logging("warn");
    let time = spanserver::config::TimeConfig { epsilon_ms: args.epsilon_ms, ..Default::default() };
    time.validate()?;
    let sql_users = args.sql_users.map(|p| std::path::absolute(&p).unwrap_or(p));
    // The demo's shards split at a size a demo's data reaches (`pgbench -i
    // -s 1`'s accounts split), so loading data shows shards splitting and
    // their leaderships spreading (`spandb status`; README, "Watching the
    // demo split and spread").
    let split = spanserver::config::SplitConfig {
        size_bytes: args.split_mib.saturating_mul(1024 * 1024),
        load_qps: args.split_load_qps,
        ..Default::default()
    };
    let placement =
        spanserver::config::PlacementConfig { preferred_leader: args.preferred_leader, ..Default::default() };
    let tuning = cluster::Tuning { split, placement };
    let mut cluster = cluster::LocalCluster::start_with_users(
        args.dir,
        args.port_base,
        3,
        time,
        sql_users,
        args.sql_split_tables,
        tuning,
    )
    .await?;
    println!(
        "ready {} (servers {}; data in {})",
        cluster.addrs()[0],
        cluster.addrs().join(","),
        cluster.dir().display()
    );
    println!("connect another shell with: spandb sql --addr {}", cluster.addrs()[0]);
    if let Some((host, port)) = cluster.sql_addrs()[0].rsplit_once(':') {
        println!("or with psql:               psql \"postgresql://root@{host}:{port}/spandb\"");
        println!(
            "load and run pgbench:       pgbench -i -s 1 \"postgresql://root@{host}:{port}/spandb\" && \
             pgbench -c 4 -T 10 -M prepared --max-tries 10 \"postgresql://root@{host}:{port}/spandb\""
        );
    }
    println!(
        "split or move shards:       spandb admin --addr {} --cluster {} split KEY",
        cluster.addrs()[0],
        cluster.dir().join("cluster.toml").display()
    );
    let last = cluster.addrs().last().cloned().unwrap_or_default();
    if let Some((host, port)) = last.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
        println!(
            "add a fourth server:        spandb start --join {last} --cluster {} --listen {host}:{} --data-dir {} \
             --sql-addr off",
            cluster.dir().join("cluster.toml").display(),
            port.saturating_add(1),
            cluster.dir().join("joined").display()
        );
    }
    let result = if args.no_shell {
        cluster.wait_for_signal().await
    } else {
        let sql = sql_shell::SqlArgs {
            addr: cluster.addrs()[0].clone(),
            execute: Vec::new(),
            file: None,
            format: sql_shell::Format::Table,
            split_tables: args.sql_split_tables,
            cluster: Some(cluster.dir().join("cluster.toml")),
        };
        sql_shell::run(sql).await
    };
    cluster.stop().await;
    result
}

/// Logs to stderr; `SPANDB_LOG` (tracing's env-filter syntax) overrides
/// the default level. Colours only on a terminal: a server's stderr is
/// usually a log file (`DIR/sN.log` in a local cluster), read and
/// searched as plain text.
pub fn init_logging(default: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPANDB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
