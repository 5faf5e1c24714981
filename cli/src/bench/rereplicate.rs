//! `spandb bench rereplicate`: how long the placement driver takes to
//! put back the replicas of a server that died. A local cluster of 4
//! servers, 3 replicas a shard (so every shard of the dead server has a
//! live server without a replica of it), is loaded with `--mib` MiB of
//! values; one server is killed (SIGKILL); the clock runs from the kill
//! until every shard has three voters on live servers again. What had
//! to be copied is the dead server's share of the data (each shard it
//! held, once, to the one server without it).
//!
//! ```text
//! RESULT label=spandb-rereplicate-256mib seconds=... dead_after_s=2 copied_mib=... s_per_gib=...
//! ```
//!
//! `s_per_gib` counts from the moment the server is declared dead
//! (`dead_after_s` after the kill): the copying itself, per GiB copied
//! (estimated as the dead server's share of the shards times the data
//! loaded). The peer in the same run: copying the dead server's data
//! directory file by file on the same disk, synced (`copy_s_per_gib`).

use std::time::{Duration, Instant};

use anyhow::Context;
use client::Client;
use meta::ServerId;
use spanserver::config::PlacementConfig;

#[derive(clap::Args)]
pub struct RereplicateArgs {
    /// MiB of values loaded before the kill.
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Concurrent loaders.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// The servers' TrueTime epsilon in milliseconds.
    #[arg(long, default_value_t = spanserver::config::TimeConfig::default().epsilon_ms)]
    epsilon_ms: u64,
}

const SERVERS: usize = 4;
/// The killed server is declared dead this long after it stops answering.
const DEAD_AFTER_S: u64 = 2;
const VALUE_BYTES: usize = 16 * 1024;
/// How long the whole re-replication may take before the run gives up.
const HEAL_TIMEOUT: Duration = Duration::from_secs(1800);
/// The server killed: not the first, whose address the client was given.
const VICTIM: u64 = 4;

pub async fn run(args: RereplicateArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=super::CLIENTS_MAX).contains(&args.clients),
        "--clients must be between 1 and {}",
        super::CLIENTS_MAX
    );
    anyhow::ensure!((1..=64 * 1024).contains(&args.mib), "--mib must be between 1 and 65536");
    let time = spanserver::config::TimeConfig { epsilon_ms: args.epsilon_ms, ..Default::default() };
    time.validate()?;
    let placement = PlacementConfig { dead_after_s: DEAD_AFTER_S, ..PlacementConfig::default() };
    let tuning = crate::cluster::Tuning { placement, ..Default::default() };
    let mut cluster = crate::cluster::LocalCluster::start_tuned(SERVERS, time, tuning).await?;
    let result = run_one(&args, &mut cluster).await;
    cluster.stop().await;
    result
}

async fn run_one(args: &RereplicateArgs, cluster: &mut crate::cluster::LocalCluster) -> anyhow::Result<()> {
    let addr = cluster.addrs()[0].clone();
    let client = Client::connect([addr.clone()]).await.with_context(|| format!("connecting to {addr}"))?;
    let values = (args.mib * 1024 * 1024) as usize / VALUE_BYTES;
    let load_start = Instant::now();
    let mut loaders = Vec::new();
    for c in 0..args.clients {
        let client = client.clone();
        let clients = args.clients;
        loaders.push(tokio::spawn(async move {
            for n in (c..values).step_by(clients) {
                // Random bytes: RocksDB compresses, and a repeated byte
                // would copy almost nothing.
                let value: Vec<u8> = (0..VALUE_BYTES).map(|_| rand::random::<u8>()).collect();
                // Keys spread over the demo layout's shards.
                let key = format!("{}{n:09}", (b'a' + (n % 26) as u8) as char);
                client.put(key.as_bytes(), &value).await?;
            }
            anyhow::Ok(())
        }));
    }
    for l in loaders {
        l.await??;
    }
    eprintln!("loaded {} MiB in {:.1} s", args.mib, load_start.elapsed().as_secs_f64());

    let shards = shards_of(&client).await?;
    let held: Vec<u64> = shards.iter().filter(|(_, servers)| servers.contains(&VICTIM)).map(|(s, _)| *s).collect();
    let copied_mib = args.mib as f64 * held.len() as f64 / shards.len().max(1) as f64;
    cluster.kill(ServerId(VICTIM)).await?;
    let killed = Instant::now();
    let deadline = killed + HEAL_TIMEOUT;
    loop {
        let now = shards_of(&client).await.unwrap_or_default();
        let healed = !now.is_empty()
            && now.iter().all(|(_, servers)| servers.len() == 3 && !servers.contains(&VICTIM))
            && shards.iter().all(|(s, _)| now.iter().any(|(n, _)| n == s));
        if healed {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "not re-replicated within {HEAL_TIMEOUT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seconds = killed.elapsed().as_secs_f64();
    let copying = (seconds - DEAD_AFTER_S as f64).max(0.001);
    let (copy_bytes, copy_seconds) = copy_dir(&cluster.dir().join(format!("s{VICTIM}")))?;
    let copy_s_per_gib = copy_seconds / (copy_bytes as f64 / (1u64 << 30) as f64).max(1e-9);
    eprintln!(
        "server {VICTIM} held {} of {} shards; all back to 3 live voters {seconds:.1} s after the kill",
        held.len(),
        shards.len()
    );
    println!(
        "RESULT label=spandb-rereplicate-{}mib seconds={seconds:.1} dead_after_s={DEAD_AFTER_S} copied_mib={copied_mib:.0} s_per_gib={:.1} dir_mib={} copy_s_per_gib={copy_s_per_gib:.1}",
        args.mib,
        copying / (copied_mib / 1024.0),
        copy_bytes >> 20,
    );
    Ok(())
}

/// Every shard and the servers of its replicas, by the newest
/// descriptors (a shard mid-move counts its learners and joint voters
/// too, so it is not taken for healed).
async fn shards_of(client: &Client) -> anyhow::Result<Vec<(u64, Vec<u64>)>> {
    let map = client.shard_map().await?;
    Ok(map.into_iter().map(|(id, d)| (id.0, d.replicas.iter().map(|r| r.server_id).collect())).collect())
}

/// Copies every file under `dir` to a temporary directory on the same
/// disk, synced; the bytes copied and the seconds it took.
fn copy_dir(dir: &std::path::Path) -> anyhow::Result<(u64, f64)> {
    let target = tempfile::Builder::new().prefix("spandb-copy-").tempdir_in(dir.parent().unwrap_or(dir))?;
    let start = Instant::now();
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    let mut n = 0u64;
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                n += 1;
                let to = target.path().join(n.to_string());
                bytes += std::fs::copy(&path, &to)?;
                std::fs::File::open(&to)?.sync_all()?;
            }
        }
    }
    Ok((bytes, start.elapsed().as_secs_f64()))
}
