//! Splits by size (off unless `split.size_bytes` is set): every server
//! looks, every `split.check_interval_ms`,
//! at the shards it leads, and splits one that holds more than
//! `split.size_bytes` at the key that halves it. The shard's leader does
//! this, not the placement driver: only it sees the shard's data, and it
//! proposes the split to its own log (TiKV's split checker, CockroachDB's
//! split queue).
//!
//! ```text
//!   every interval, for each shard led here:
//!     RocksDB's estimate of its data on disk + what it applied since the
//!       server started (the memtable is not in the estimate) < size? skip
//!     scan its versions on a blocking thread, reading at most `size`
//!       bytes: the first key with half of them before it splits it
//!     ids from the allocator (peers.rs) -> LoopMsg::Split -> applied
//! ```
//!
//! A scan that finds the shard under the size resets the applied-bytes
//! count, so a shard is not scanned again until it has grown. A split
//! the shard refuses (a prepared transaction holds a key that would
//! move; the shard changed meanwhile) is tried again next round.
//! Only the event loop changes shards: this task only reads and asks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::SplitConfig;
use crate::inbox::{LoopHandle, LoopMsg};
use crate::peers::Peers;
use crate::registry::{Registry, ReplicaShared, Role};
use crate::requests::DataRequests;
use crate::shard::command::Split;
use crate::storage::keycode::range_bounds;
use crate::storage::mvcc::Reader;
use crate::storage::CF_DATA;
use meta::{ReplicaId, ShardId};

/// Starts the split queue on `runtime`; it ends when `stopped` is set.
pub fn start(
    config: SplitConfig,
    registry: Arc<Registry>,
    requests: Arc<DataRequests>,
    peers: Arc<Peers>,
    event_loop: LoopHandle,
    stopped: Arc<AtomicBool>,
    runtime: &tokio::runtime::Handle,
) {
    if config.size_bytes == 0 {
        return;
    }
    runtime.spawn(async move {
        let mut every = tokio::time::interval(config.check_interval());
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        while !stopped.load(Ordering::SeqCst) {
            every.tick().await;
            for r in registry.all() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if r.progress().role != Role::Leader || !r.descriptor().is_initialized() {
                    continue;
                }
                if let Err(e) = check(&config, &r, &requests, &peers, &event_loop).await {
                    tracing::info!(shard = %r.shard_id, "split check failed: {e}");
                }
            }
        }
    });
}

/// Splits `r`'s shard if it holds more than the configured size.
async fn check(
    config: &SplitConfig,
    r: &ReplicaShared,
    requests: &DataRequests,
    peers: &Peers,
    event_loop: &LoopHandle,
) -> Result<(), String> {
    let d = r.descriptor();
    let size = config.size_bytes;
    let engine = requests.engine().map_err(|e| e.to_string())?;
    let (lower, upper) = range_bounds(&d.start_key, &d.end_key);
    let on_disk = engine.db().get_approximate_sizes_cf(&engine.cf(CF_DATA), &[rocksdb::Range::new(&lower, &upper)]);
    if on_disk.first().copied().unwrap_or(0).saturating_add(r.written_bytes()) <= size {
        return Ok(());
    }
    let (start, end) = (d.start_key.clone(), d.end_key.clone());
    let key = tokio::task::spawn_blocking(move || Reader::new(&engine).split_key(&start, &end, size))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let Some(key) = key else {
        // Measured: under the size. What was written so far is in the
        // scan's count now, so the estimate starts again from what is
        // on disk (which alone, compressed, stays below the raw size).
        r.reset_written_bytes();
        return Ok(());
    };
    let first = peers.allocate_ids(1 + d.replicas.len() as u64).await?;
    let split = Split {
        split_key: key.clone(),
        range_ver: d.epoch.range_ver,
        child_shard: ShardId(first),
        child_replicas: (1..=d.replicas.len() as u64).map(|i| ReplicaId(first + i)).collect(),
    };
    let (reply, answer) = oneshot::channel();
    event_loop.send(LoopMsg::Split { shard: d.shard_id, split, reply }).map_err(|e| e.to_string())?;
    let (left, right) =
        answer.await.map_err(|_| "the split was not answered".to_string())?.map_err(|e| e.to_string())?;
    tracing::info!(
        shard = %left.shard_id,
        child = %right.shard_id,
        "split by size (over {size} bytes) at {:?}",
        String::from_utf8_lossy(&key)
    );
    Ok(())
}
