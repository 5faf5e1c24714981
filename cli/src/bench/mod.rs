//! `spandb bench`: closed-loop load against a running cluster (or one it
//! starts with `--local`), with latency histograms.
//!
//! Each of `--clients` workers sends one request, waits for the answer,
//! and sends the next; the first `--warmup` seconds are not measured. At
//! the end, one line per run in the form the performance anchors collect:
//!
//! ```text
//! RESULT label=spandb-kv-put-c64-v256 ops_per_s=5120.3 p50_ms=11.9 p99_ms=24.1 p999_ms=40.2 errors=0
//! ```
//!
//! Speed is measured here, never asserted in tests: compare against a peer
//! (etcd, PostgreSQL) measured in the same session on the same machine.

mod blip;
mod rereplicate;
mod statements;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use client::Client;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    kind: BenchKind,
}

#[derive(clap::Subcommand)]
enum BenchKind {
    /// Single-key puts and linearizable gets.
    Kv(KvBenchArgs),
    /// Transactions: single-shard read-write, read-only, snapshot reads,
    /// and cross-shard read-write with N participants (Spanner's Table 4).
    Txn(TxnBenchArgs),
    /// SQL statements beside their raw key-value peers.
    Sql(statements::SqlBenchArgs),
    /// The latency a split or a move of a shard adds to the writes
    /// running against it (before vs during).
    Blip(blip::BlipArgs),
    /// How long the placement driver takes to re-replicate a dead
    /// server's replicas (seconds per GiB copied).
    Rereplicate(rereplicate::RereplicateArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum TxnWorkload {
    /// Read a key and write it back, in one shard (one-phase commit).
    Rw,
    /// A read-only transaction reading one key at TT.now().latest.
    Ro,
    /// A snapshot read at a fixed past timestamp (any replica, no waiting).
    Snapshot,
    /// Write one key in each of N shards (two-phase commit with N
    /// participants; N = 1 is one-phase), as the Spanner paper's Table 4.
    Cross,
}

/// Most servers a local benchmark cluster may have.
const SERVERS_MAX: usize = 16;

/// Where a benchmark runs: an existing cluster or a local one.
#[derive(clap::Args)]
pub struct BenchTarget {
    /// Any server of the cluster (host:port).
    #[arg(long, required_unless_present = "local")]
    pub addr: Option<String>,
    /// Start a local cluster (in a temporary directory) for the run.
    #[arg(long)]
    pub local: bool,
    /// With --local: how many servers (3 replicas a shard; the placement
    /// driver spreads replicas and leaderships over them).
    #[arg(long, requires = "local", default_value_t = 3)]
    pub servers: usize,
    /// With --local: the servers' TrueTime epsilon in milliseconds.
    #[arg(long, requires = "local", default_value_t = spanserver::config::TimeConfig::default().epsilon_ms)]
    pub epsilon_ms: u64,
}

/// How many clients each run has, and how long it lasts: every kind of
/// benchmark takes these.
#[derive(clap::Args, Debug, Clone)]
pub struct Runs {
    /// Concurrent clients; a list runs each in turn (e.g. 1,64).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    clients: Vec<usize>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Unmeasured seconds at the start of each run.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
}

impl Runs {
    /// Refuses client counts outside `1..=clients_max` and a zero
    /// duration.
    fn check(&self, clients_max: usize) -> anyhow::Result<()> {
        if self.clients.iter().any(|&c| c == 0 || c > clients_max) {
            bail!("--clients must be between 1 and {clients_max}");
        }
        if self.duration == 0 {
            bail!("--duration must be at least 1 second");
        }
        Ok(())
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs(self.warmup)
    }

    fn measured(&self) -> Duration {
        Duration::from_secs(self.duration)
    }
}

#[derive(clap::Args)]
struct TxnBenchArgs {
    /// The cluster (with --addr: one whose split points are s01, s02, ...,
    /// as --local makes).
    #[command(flatten)]
    target: BenchTarget,
    /// Shards of the cluster (with --local: how many to make).
    #[arg(long, default_value_t = 10)]
    shards: usize,
    #[command(flatten)]
    runs: Runs,
    #[arg(long, value_delimiter = ',', default_value = "rw,ro,snapshot,cross")]
    workload: Vec<TxnWorkload>,
    /// Participant counts for the cross workload.
    #[arg(long, value_delimiter = ',', default_value = "1,2,5,10")]
    participants: Vec<usize>,
    /// Keys per shard, drawn uniformly.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    #[arg(long)]
    no_progress: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum KvOp {
    Put,
    Get,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum KeySpace {
    /// Keys spread over every shard of the demo layout.
    Spread,
    /// Keys in one shard (one Raft group, like etcd).
    OneShard,
}

#[derive(clap::Args)]
struct KvBenchArgs {
    #[command(flatten)]
    target: BenchTarget,
    #[command(flatten)]
    runs: Runs,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Operations; a list runs each in turn (e.g. put,get).
    #[arg(long, value_delimiter = ',', default_value = "put")]
    op: Vec<KvOp>,
    /// Distinct keys, drawn uniformly.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    #[arg(long, value_enum, default_value = "spread")]
    key_space: KeySpace,
    /// No progress bar (for logs).
    #[arg(long)]
    no_progress: bool,
}

fn default_epsilon_ms() -> u64 {
    spanserver::config::TimeConfig::default().epsilon_ms
}

/// Most concurrent clients one run may use.
const CLIENTS_MAX: usize = 4096;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    let args = match args.kind {
        BenchKind::Kv(args) => args,
        BenchKind::Txn(args) => return run_txn(args).await,
        BenchKind::Sql(args) => return statements::run(args).await,
        BenchKind::Blip(args) => return blip::run(args).await,
        BenchKind::Rereplicate(args) => return rereplicate::run(args).await,
    };
    args.runs.check(CLIENTS_MAX)?;
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    if args.value_size > spanserver::limits::VALUE_BYTES_MAX {
        bail!("--value-size exceeds the value limit of {} bytes", spanserver::limits::VALUE_BYTES_MAX);
    }
    let (addr, local) = bench_cluster(&args.target, None).await?;
    let result = run_all(&args, &addr).await;
    if let Some(cluster) = local {
        cluster.stop().await;
    }
    result
}

/// The cluster a benchmark runs against: the one at `--addr`, or, with
/// `--local`, a local one it starts (with `split_points`, or the demo's);
/// the caller stops it.
pub async fn bench_cluster(
    target: &BenchTarget,
    split_points: Option<Vec<String>>,
) -> anyhow::Result<(String, Option<crate::cluster::LocalCluster>)> {
    let addr = &target.addr;
    if !target.local {
        return Ok((addr.clone().context("give --addr or --local")?, None));
    }
    anyhow::ensure!((3..=SERVERS_MAX).contains(&target.servers), "--servers must be between 3 and {SERVERS_MAX}");
    let time = spanserver::config::TimeConfig { epsilon_ms: target.epsilon_ms, ..Default::default() };
    time.validate()?;
    let n = target.servers;
    let cluster = match split_points {
        Some(points) => crate::cluster::LocalCluster::start_with_layout(None, None, n, time, points, None).await?,
        None => crate::cluster::LocalCluster::start(None, None, n, time).await?,
    };
    eprintln!("local cluster ready at {}", cluster.addrs().join(","));
    let addr = addr.clone().unwrap_or_else(|| cluster.addrs()[0].clone());
    Ok((addr, Some(cluster)))
}

async fn run_all(args: &KvBenchArgs, addr: &str) -> anyhow::Result<()> {
    let client = Client::connect([addr.to_string()]).await.with_context(|| format!("connecting to {addr}"))?;
    let value = vec![b'v'; args.value_size];
    if args.op.contains(&KvOp::Get) {
        preload(&client, args, &value).await?;
    }
    for &op in &args.op {
        for &clients in &args.runs.clients {
            let report = run_one(&client, args, op, clients, &value).await;
            let label = format!(
                "spandb-kv-{}-c{clients}-v{}{}",
                match op {
                    KvOp::Put => "put",
                    KvOp::Get => "get",
                },
                args.value_size,
                label_suffix(args),
            );
            report.print(&label);
        }
    }
    Ok(())
}

/// `-1shard` for the one-shard key space, `-eps<N>ms` for a local cluster
/// with a non-default epsilon.
fn label_suffix(args: &KvBenchArgs) -> String {
    let mut suffix = String::new();
    if args.key_space == KeySpace::OneShard {
        suffix.push_str("-1shard");
    }
    if args.target.local && args.target.epsilon_ms != default_epsilon_ms() {
        suffix.push_str(&format!("-eps{}ms", args.target.epsilon_ms));
    }
    suffix
}

fn key(args: &KvBenchArgs, n: usize) -> Vec<u8> {
    match args.key_space {
        // 'a'..'z' first letters land in every shard of the demo layout.
        KeySpace::Spread => format!("{}{n:08}", (b'a' + (n % 26) as u8) as char).into_bytes(),
        KeySpace::OneShard => format!("a{n:08}").into_bytes(),
    }
}

async fn preload(client: &Client, args: &KvBenchArgs, value: &[u8]) -> anyhow::Result<()> {
    eprintln!("loading {} keys", args.keys);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64.min(args.keys) {
        let (client, next, value) = (client.clone(), next.clone(), value.to_vec());
        let keys: Vec<Vec<u8>> = (0..args.keys).map(|n| key(args, n)).collect();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(k) = keys.get(n) else {
                    return Ok::<_, client::Error>(());
                };
                client.put(k, &value).await?;
            }
        }));
    }
    for t in tasks {
        t.await.context("loader task")??;
    }
    Ok(())
}

pub struct Report {
    pub histogram: Histogram<u64>,
    pub errors: u64,
    pub measured: Duration,
}

impl Report {
    pub fn print(&self, label: &str) {
        let count = self.histogram.len();
        let ops = count as f64 / self.measured.as_secs_f64();
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{label}: {count} ops in {:.1}s = {ops:.1} ops/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; {} errors",
            self.measured.as_secs_f64(),
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.histogram.max() as f64 / 1000.0,
            self.errors
        );
        println!(
            "RESULT label={label} ops_per_s={ops:.1} p50_ms={:.3} p99_ms={:.3} p999_ms={:.3} errors={}",
            ms(0.5),
            ms(0.99),
            ms(0.999),
            self.errors
        );
    }
}

async fn run_one(client: &Client, args: &KvBenchArgs, op: KvOp, clients: usize, value: &[u8]) -> Report {
    let warmup = args.runs.warmup();
    let measured = args.runs.measured();
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let done = Arc::new(AtomicU64::new(0));
    let progress = progress_bar(args.no_progress, warmup + measured, &format!("{op:?} x{clients}"));
    let ticker = spawn_ticker(&progress, start, &done, "ops");
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, done, value) = (client.clone(), done.clone(), value.to_vec());
        let keys = args.keys;
        let key_of = |n| key(args, n);
        let all_keys: Arc<Vec<Vec<u8>>> = Arc::new((0..keys).map(key_of).collect());
        workers.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let mut errors = 0u64;
            while Instant::now() < end {
                let k = &all_keys[rand::random_range(0..keys)];
                let t0 = Instant::now();
                let result = match op {
                    KvOp::Put => client.put(k, &value).await.map(|_| ()),
                    KvOp::Get => client.get(k).await.map(|_| ()),
                };
                if t0 >= measure_from && t0 < end {
                    match result {
                        Ok(()) => {
                            let _ = histogram.record(t0.elapsed().as_micros().max(1) as u64);
                        }
                        Err(_) => errors += 1,
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (histogram, errors)
        }));
    }
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut errors = 0;
    for w in workers {
        if let Ok((h, e)) = w.await {
            let _ = histogram.add(h);
            errors += e;
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    Report { histogram, errors, measured }
}

/// Moves `progress` along with the clock from `start` and shows how many
/// `unit`s are `done`, until aborted.
fn spawn_ticker(
    progress: &ProgressBar,
    start: Instant,
    done: &Arc<AtomicU64>,
    unit: &'static str,
) -> tokio::task::JoinHandle<()> {
    let (progress, done) = (progress.clone(), done.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            progress.set_position(start.elapsed().as_millis() as u64);
            progress.set_message(format!("{} {unit}", done.load(Ordering::Relaxed)));
        }
    })
}

fn progress_bar(hidden: bool, total: Duration, prefix: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Most shards a local benchmark cluster may have.
const TXN_BENCH_SHARDS_MAX: usize = 64;

/// The key `n` of shard `shard` (0-based) in the s01, s02, ... layout.
fn txn_key(shard: usize, n: usize) -> Vec<u8> {
    format!("s{shard:02}/k{n:06}").into_bytes()
}

async fn run_txn(args: TxnBenchArgs) -> anyhow::Result<()> {
    args.runs.check(CLIENTS_MAX)?;
    if args.shards == 0 || args.shards > TXN_BENCH_SHARDS_MAX {
        bail!("--shards must be between 1 and {TXN_BENCH_SHARDS_MAX}");
    }
    if args.participants.iter().any(|&p| p == 0 || p > args.shards) {
        bail!("--participants must be between 1 and --shards ({})", args.shards);
    }
    if args.keys == 0 {
        bail!("--keys must be at least 1");
    }
    let split_points = (1..args.shards).map(|i| format!("s{i:02}")).collect();
    let (addr, local) = bench_cluster(&args.target, Some(split_points)).await?;
    let result = run_txn_all(&args, &addr).await;
    if let Some(cluster) = local {
        cluster.stop().await;
    }
    result
}

async fn run_txn_all(args: &TxnBenchArgs, addr: &str) -> anyhow::Result<()> {
    let client = Client::connect([addr.to_string()]).await.with_context(|| format!("connecting to {addr}"))?;
    // Every key exists, so reads read something; the last load's commit
    // timestamp is where snapshot reads read.
    eprintln!("loading {} keys in each of {} shards", args.keys, args.shards);
    let mut snapshot_ts = client::Timestamp::ZERO;
    for shard in 0..args.shards {
        for chunk in (0..args.keys).collect::<Vec<_>>().chunks(500) {
            let mutations: Vec<client::Mutation> =
                chunk.iter().map(|&n| client::Mutation::Put(txn_key(shard, n), b"0".to_vec())).collect();
            snapshot_ts = snapshot_ts.max(client.write(&mutations).await?);
        }
    }
    let mut runs = Vec::new();
    for &w in &args.workload {
        match w {
            TxnWorkload::Cross => runs.extend(args.participants.iter().map(|&p| (w, p))),
            _ => runs.push((w, 1)),
        }
    }
    for (workload, participants) in runs {
        for &clients in &args.runs.clients {
            let report = run_txn_one(&client, args, workload, participants, clients, snapshot_ts).await;
            let name = match workload {
                TxnWorkload::Rw => "rw-1shard".to_string(),
                TxnWorkload::Ro => "ro".to_string(),
                TxnWorkload::Snapshot => "snapshot".to_string(),
                TxnWorkload::Cross => format!("cross-p{participants}"),
            };
            let eps = if args.target.local && args.target.epsilon_ms != default_epsilon_ms() {
                format!("-eps{}ms", args.target.epsilon_ms)
            } else {
                String::new()
            };
            report.print(&format!("spandb-txn-{name}-c{clients}{eps}"));
        }
    }
    Ok(())
}

struct TxnReport {
    latency: Report,
    /// Commit-wait per committed transaction, microseconds.
    commit_wait: Histogram<u64>,
}

impl TxnReport {
    fn print(&self, label: &str) {
        self.latency.print(label);
        if !self.commit_wait.is_empty() {
            let wait_ms = self.commit_wait.mean() / 1000.0;
            let latency_ms = self.latency.histogram.mean() / 1000.0;
            println!(
                "RESULT label={label}-commit-wait commit_wait_ms_mean={wait_ms:.3} latency_ms_mean={latency_ms:.3} commit_wait_share={:.2}",
                if latency_ms > 0.0 { wait_ms / latency_ms } else { 0.0 }
            );
        }
    }
}

async fn run_txn_one(
    client: &Client,
    args: &TxnBenchArgs,
    workload: TxnWorkload,
    participants: usize,
    clients: usize,
    snapshot_ts: client::Timestamp,
) -> TxnReport {
    let warmup = args.runs.warmup();
    let measured = args.runs.measured();
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + measured);
    let done = Arc::new(AtomicU64::new(0));
    let progress =
        progress_bar(args.no_progress, warmup + measured, &format!("{workload:?} p{participants} x{clients}"));
    let ticker = spawn_ticker(&progress, start, &done, "txns");
    let (shards, keys) = (args.shards, args.keys);
    let mut workers = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (client, done) = (client.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let new_histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let (mut latency, mut waits, mut errors) = (new_histogram(), new_histogram(), 0u64);
            while Instant::now() < end {
                let shard = rand::random_range(0..shards);
                let key = txn_key(shard, rand::random_range(0..keys));
                let t0 = Instant::now();
                let result: client::Result<Option<Duration>> = match workload {
                    TxnWorkload::Rw => {
                        let mut txn = client.begin();
                        match txn.get(&key).await {
                            Ok(v) => {
                                let next = v.map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0) + 1);
                                txn.put(&key, next.unwrap_or(1).to_string().as_bytes());
                                txn.commit_detailed().await.map(|c| Some(c.commit_wait))
                            }
                            Err(e) => Err(e),
                        }
                    }
                    TxnWorkload::Ro => client.read_only().get(&key).await.map(|_| None),
                    TxnWorkload::Snapshot => client.snapshot(snapshot_ts).get(&key).await.map(|_| None),
                    TxnWorkload::Cross => {
                        let mut txn = client.begin();
                        // One key in each of `participants` distinct shards.
                        let first = rand::random_range(0..shards);
                        for i in 0..participants {
                            let k = txn_key((first + i) % shards, rand::random_range(0..keys));
                            txn.put(&k, b"x");
                        }
                        txn.commit_detailed().await.map(|c| Some(c.commit_wait))
                    }
                };
                if t0 >= measure_from && t0 < end {
                    match result {
                        Ok(wait) => {
                            let _ = latency.record(t0.elapsed().as_micros().max(1) as u64);
                            if let Some(w) = wait {
                                let _ = waits.record(w.as_micros().max(1) as u64);
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (latency, waits, errors)
        }));
    }
    let new_histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut latency, mut waits, mut errors) = (new_histogram(), new_histogram(), 0);
    for w in workers {
        if let Ok((l, c, e)) = w.await {
            let _ = latency.add(l);
            let _ = waits.add(c);
            errors += e;
        }
    }
    ticker.abort();
    progress.finish_and_clear();
    TxnReport { latency: Report { histogram: latency, errors, measured }, commit_wait: waits }
}
