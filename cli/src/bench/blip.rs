//! `spandb bench blip`: what a split, a move or a leadership transfer of
//! a shard costs the writes running against it. Clients put random keys
//! of one shard without pause (`--workload put`), or increment two of them
//! in a transaction (`--workload txn`, retried while aborted); halfway
//! through the measured time the shard is split at its middle key, one
//! of its replicas (its leader's: the costly case, with a leadership
//! hand-over) moves to the server that has none, or its leadership moves
//! to another server: drained first, as the placement driver asks
//! (`transfer`), or at once (`transfer-now`), which aborts the
//! transactions open at the leader.
//! The latencies of the operations that started before the event and of
//! those that started while it ran (and in the second after it) are
//! reported apart:
//!
//! ```text
//! RESULT label=spandb-blip-move-c16-before ops_per_s=... p50_ms=... p99_ms=...
//! RESULT label=spandb-blip-move-c16-during ops_per_s=... p50_ms=... p99_ms=... event_ms=...
//! ```
//!
//! A local cluster of 4 servers, 3 replicas a shard (so a move has
//! somewhere to go), started for the run without the placement driver and
//! without split by load, so that the event is the only one.

use std::time::{Duration, Instant};

use anyhow::Context;
use client::Client;
use hdrhistogram::Histogram;
use meta::{ServerId, ShardId};

/// What happens halfway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Event {
    /// Split the shard at its middle key.
    Split,
    /// Move the shard's leader's replica to the server without one.
    Move,
    /// Hand the shard's leadership to another server after draining it
    /// (`placement::limits::TRANSFER_DRAIN`).
    Transfer,
    /// Hand the shard's leadership to another server at once.
    TransferNow,
}

/// What the clients run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// A plain write of one key.
    Put,
    /// A transaction reading and rewriting two keys.
    Txn,
}

#[derive(clap::Args)]
pub struct BlipArgs {
    #[arg(long, value_delimiter = ',', default_value = "split,move")]
    event: Vec<Event>,
    #[arg(long, value_enum, default_value = "put")]
    workload: Workload,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds (the event starts halfway).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Distinct keys (all in one shard).
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// The servers' TrueTime epsilon in milliseconds.
    #[arg(long, default_value_t = spanserver::config::TimeConfig::default().epsilon_ms)]
    epsilon_ms: u64,
}

/// Operations that start this long after the event ends still count as
/// during it (a new leader's first requests, routes being refreshed).
const AFTERMATH: Duration = Duration::from_secs(1);
const SERVERS: usize = 4;

pub async fn run(args: BlipArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=super::CLIENTS_MAX).contains(&args.clients),
        "--clients must be between 1 and {}",
        super::CLIENTS_MAX
    );
    anyhow::ensure!(args.duration >= 2, "--duration must be at least 2 seconds");
    anyhow::ensure!(args.keys >= 2, "--keys must be at least 2");
    for &event in &args.event {
        let time = spanserver::config::TimeConfig { epsilon_ms: args.epsilon_ms, ..Default::default() };
        time.validate()?;
        // Only the event: no placement driver moving replicas or
        // leaderships, no split by load (the clients drive the shard past
        // its threshold).
        let tuning = crate::cluster::Tuning {
            placement: spanserver::config::PlacementConfig { enabled: false, ..Default::default() },
            split: spanserver::config::SplitConfig { load_qps: 0, ..Default::default() },
        };
        let cluster = crate::cluster::LocalCluster::start_tuned(SERVERS, time, tuning).await?;
        let result = run_one(&args, event, &cluster.addrs()[0], cluster.operator_config()).await;
        cluster.stop().await;
        result?;
    }
    Ok(())
}

fn key(n: usize) -> Vec<u8> {
    format!("a{n:08}").into_bytes()
}

async fn run_one(args: &BlipArgs, event: Event, addr: &str, config: client::ClientConfig) -> anyhow::Result<()> {
    let client =
        Client::connect_with([addr.to_string()], config).await.with_context(|| format!("connecting to {addr}"))?;
    for n in 0..args.keys {
        client.put(&key(n), b"v").await?;
    }
    let measured = Duration::from_secs(args.duration);
    let start = Instant::now();
    let end = start + measured;
    let mut workers = Vec::new();
    for _ in 0..args.clients {
        let (client, keys, workload) = (client.clone(), args.keys, args.workload);
        workers.push(tokio::spawn(async move {
            // (start offset, latency, attempts aborted), latencies in
            // microseconds; failures apart.
            let mut ops: Vec<(u64, u64, u64)> = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < end {
                let t0 = Instant::now();
                let result = match workload {
                    Workload::Put => client.put(&key(rand::random_range(0..keys)), b"w").await.map(|_| 0),
                    Workload::Txn => increment_two(&client, keys).await,
                };
                match result {
                    Ok(aborted) => {
                        ops.push(((t0 - start).as_micros() as u64, t0.elapsed().as_micros().max(1) as u64, aborted))
                    }
                    Err(_) => errors += 1,
                }
            }
            (ops, errors)
        }));
    }
    tokio::time::sleep(measured / 2).await;
    let event_start = start.elapsed();
    let what = match event {
        Event::Split => {
            let (left, right) = client.split_at(&key(args.keys / 2)).await?;
            format!(
                "split shard {} at {:?}: new shard {}",
                left.shard_id,
                String::from_utf8_lossy(&right.start_key),
                right.shard_id
            )
        }
        Event::Move => {
            let (d, leader) = client.shard_descriptor(ShardId(1)).await?;
            let from = leader.context("shard 1 has no leader")?;
            let to = (1..=SERVERS as u64)
                .find(|s| !d.replicas.iter().any(|r| r.server_id == *s))
                .context("no server without a replica")?;
            let d = client.move_replica(ShardId(1), from, ServerId(to)).await?;
            format!("moved shard 1's leader's replica from {from} to s{to}: conf_ver {}", d.conf_ver)
        }
        Event::Transfer | Event::TransferNow => {
            let (d, leader) = client.shard_descriptor(ShardId(1)).await?;
            let from = leader.context("shard 1 has no leader")?;
            let to = d.replicas.iter().map(|r| ServerId(r.server_id)).find(|s| *s != from).context("one replica")?;
            let drain = if event == Event::Transfer { placement::limits::TRANSFER_DRAIN } else { Duration::ZERO };
            client.transfer_leader(ShardId(1), to, false, drain).await?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while client.shard_descriptor(ShardId(1)).await?.1 != Some(to) {
                anyhow::ensure!(Instant::now() < deadline, "the leadership did not move to {to} within 10 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            format!("handed shard 1's leadership from {from} to {to} (drain {drain:?})")
        }
    };
    let event_end = start.elapsed();
    let mut before = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut during = before.clone();
    let mut errors = 0;
    let (mut aborted_before, mut aborted_during) = (0, 0);
    let (event_from, event_to) = (event_start.as_micros() as u64, (event_end + AFTERMATH).as_micros() as u64);
    for w in workers {
        let (ops, e) = w.await?;
        errors += e;
        for (at, latency, aborted) in ops {
            if at < event_from {
                before.record(latency)?;
                aborted_before += aborted;
            } else if at < event_to {
                during.record(latency)?;
                aborted_during += aborted;
            }
        }
    }
    let workload = match args.workload {
        Workload::Put => "",
        Workload::Txn => "-txn",
    };
    let label = format!("spandb-blip-{}{workload}-c{}", format!("{event:?}").to_lowercase(), args.clients);
    let event_ms = (event_end - event_start).as_secs_f64() * 1000.0;
    eprintln!("{what}, in {event_ms:.0} ms; {errors} failed puts");
    let line = |name: &str, h: &Histogram<u64>, window: Duration, extra: String| {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "RESULT label={label}-{name} ops_per_s={:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}{extra}",
            h.len() as f64 / window.as_secs_f64().max(1e-3),
            ms(0.5),
            ms(0.99),
            h.max() as f64 / 1000.0,
        );
    };
    line("before", &before, event_start, format!(" aborted={aborted_before}"));
    let extra = format!(" event_ms={event_ms:.0} errors={errors} aborted={aborted_during}");
    line("during", &during, event_end + AFTERMATH - event_start, extra);
    Ok(())
}

/// Increments two random keys in one transaction, again while aborted;
/// says how many attempts were aborted.
async fn increment_two(client: &Client, keys: usize) -> client::Result<u64> {
    let (a, b) = (key(rand::random_range(0..keys)), key(rand::random_range(0..keys)));
    let attempts = std::sync::atomic::AtomicU64::new(0);
    client
        .run(|txn| {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (a, b) = (a.clone(), b.clone());
            Box::pin(async move {
                for k in [a, b] {
                    let v = txn.get(&k).await?.unwrap_or_default();
                    let n: u64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
                    txn.put(&k, (n + 1).to_string().as_bytes());
                }
                Ok(())
            })
        })
        .await?;
    Ok(attempts.into_inner() - 1)
}
