//! Splits by size and by load: every server looks, every
//! `split.check_interval_ms`, at the shards it leads, and splits one that
//! holds more than `split.size_bytes` (64 MiB; 0: never) at the key that
//! halves it (reading at most [`limits::SPLIT_SCAN_SIZES_MAX`] times the
//! size: a bigger shard loses that much's half, and splits again next
//! round), or one that served more than `split.load_qps` requests a
//! second (2,500; 0: never) at the median of its sampled request keys,
//! half the load on each side (CockroachDB's load-based splitter, which
//! the placement driver's balancing then spreads). The shard's leader
//! does this, not the placement driver: only it sees the shard's data and
//! requests, and it proposes the split to its own log (TiKV's split
//! checker, CockroachDB's split queue).
//!
//! ```text
//!   every interval, for each shard led here:
//!     RocksDB's estimate of its data on disk + what it applied since the
//!       server started (the memtable is not in the estimate) < size? skip
//!     scan its versions on a blocking thread, reading at most
//!       SPLIT_SCAN_SIZES_MAX x `size` bytes: the first key with half of
//!       what was read before it splits it
//!     ids from the allocator (peers.rs) -> LoopMsg::Split -> applied
//! ```
//!
//! A scan that finds the shard under the size resets the applied-bytes
//! count, so a shard is not scanned again until it has grown. A split
//! the shard refuses (a prepared transaction holds a key that would
//! move; the shard changed meanwhile) is tried again next round.
//! Only the event loop changes shards: this task only reads and asks.
//! Each round it also notes every replica's request rate, and counts the
//! keys of each shard led here that was written since its last count,
//! which `spandb status` shows (so it runs even with both splits off).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::config::SplitConfig;
use crate::inbox::{LoopHandle, LoopMsg};
use crate::limits;
use crate::peers::Peers;
use crate::registry::{Registry, ReplicaShared, Role};
use crate::requests::DataRequests;
use crate::shard::command::Split;
use crate::storage::keycode::range_bounds;
use crate::storage::mvcc::Reader;
use crate::storage::{Engine, CF_DATA};
use meta::{ReplicaId, ShardDescriptor, ShardId};

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
    // It runs even when it never splits: it measures every replica's
    // load, which `spandb status` shows.
    let splits = config.size_bytes != 0 || config.load_qps != 0;
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
                // Every replica's load starts again each round (a follower
                // that becomes leader must not bring its old count).
                let writes = r.take_writes();
                let load = r.take_load();
                let seconds = config.check_interval().as_secs_f64();
                r.set_load_rates(load.0 as f64 / seconds, writes as f64 / seconds);
                if r.progress().role != Role::Leader || !r.descriptor().is_initialized() {
                    // Writes a later leader takes are not counted here:
                    // leading again, this replica counts afresh.
                    r.forget_keys();
                    continue;
                }
                if let Err(e) = count_keys(&r, writes, &requests).await {
                    tracing::info!(shard = %r.shard_id, "key count failed: {e}");
                }
                if !splits {
                    continue;
                }
                if let Err(e) = check(&config, &r, load, &requests, &peers, &event_loop).await {
                    tracing::info!(shard = %r.shard_id, "split check failed: {e}");
                }
            }
        }
    });
}

/// Splits `r`'s shard if it served more than the configured load (`load`:
/// its requests and sampled keys over the last interval) or holds more
/// than the configured size.
async fn check(
    config: &SplitConfig,
    r: &ReplicaShared,
    (served, sampled): (u64, Vec<Vec<u8>>),
    requests: &DataRequests,
    peers: &Peers,
    event_loop: &LoopHandle,
) -> Result<(), String> {
    let d = r.descriptor();
    let qps = served as f64 / config.check_interval().as_secs_f64();
    if let Some(key) = load_split_key(&d, qps, sampled, config.load_qps) {
        return split(&d, key, &format!("by load ({qps:.0} requests/s)"), peers, event_loop).await;
    }
    let size = config.size_bytes;
    if size == 0 {
        return Ok(());
    }
    let engine = requests.engine().map_err(|e| e.to_string())?;
    if estimated_bytes(&engine, r) <= size {
        return Ok(());
    }
    let (start, end) = (d.start_key.clone(), d.end_key.clone());
    let read_max = size.saturating_mul(limits::SPLIT_SCAN_SIZES_MAX);
    let key = tokio::task::spawn_blocking(move || Reader::new(&engine).split_key(&start, &end, size, read_max))
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
    split(&d, key, &format!("by size (over {size} bytes)"), peers, event_loop).await
}

/// An upper estimate of the bytes of `r`'s versions: RocksDB's estimate
/// of them on disk (compressed, and without the memtable) plus what `r`
/// applied since that estimate was last found too high (a scan that found
/// the shard under the size resets the count).
pub fn estimated_bytes(engine: &Engine, r: &ReplicaShared) -> u64 {
    let d = r.descriptor();
    let (lower, upper) = range_bounds(&d.start_key, &d.end_key);
    let on_disk = engine.db().get_approximate_sizes_cf(&engine.cf(CF_DATA), &[rocksdb::Range::new(&lower, &upper)]);
    on_disk.first().copied().unwrap_or(0).saturating_add(r.written_bytes())
}

/// Counts the keys of `r`'s shard again if it was written (`writes`) or
/// not counted under its range yet: exact up to
/// [`limits::KEY_COUNT_SCAN_BYTES_MAX`] of versions, beyond extrapolated
/// to [`estimated_bytes`] at the bytes per key of what was read.
async fn count_keys(r: &ReplicaShared, writes: u64, requests: &DataRequests) -> Result<(), String> {
    let d = r.descriptor();
    if writes == 0 && r.keys(d.epoch.range_ver).is_some() {
        return Ok(());
    }
    let engine = requests.engine().map_err(|e| e.to_string())?;
    let (start, end) = (d.start_key.clone(), d.end_key.clone());
    let reading = engine.clone();
    let count = tokio::task::spawn_blocking(move || {
        Reader::new(&reading).count_keys(&start, &end, limits::KEY_COUNT_SCAN_BYTES_MAX)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let keys = if count.complete || count.bytes == 0 {
        count.keys
    } else {
        let per_key = count.bytes as f64 / count.keys.max(1) as f64;
        count.keys.max((estimated_bytes(&engine, r) as f64 / per_key) as u64)
    };
    r.set_keys(d.epoch.range_ver, keys);
    Ok(())
}

/// The key that halves the sampled load of shard `d`, if it served more
/// than `qps_max` requests a second (`qps`) and enough keys were sampled:
/// their median, strictly inside the shard (a split at its first key is
/// no split).
fn load_split_key(d: &ShardDescriptor, qps: f64, mut keys: Vec<Vec<u8>>, qps_max: u64) -> Option<Vec<u8>> {
    if qps_max == 0 || qps <= qps_max as f64 {
        return None;
    }
    // (A scan's continuation, a key with a zero byte appended, may be
    // longer than any key: not a split point.)
    keys.retain(|k| d.contains(k) && k.as_slice() > d.start_key.as_slice() && k.len() <= crate::limits::KEY_BYTES_MAX);
    if keys.len() < LOAD_SAMPLES_MIN {
        return None;
    }
    keys.sort_unstable();
    Some(keys.swap_remove(keys.len() / 2))
}

/// Fewer sampled keys than this say too little about where the load is.
const LOAD_SAMPLES_MIN: usize = 16;

/// Splits shard `d` at `key` (ids from the allocator, then the `Split`
/// command at the shard's leader); `why` is for the log.
async fn split(
    d: &ShardDescriptor,
    key: Vec<u8>,
    why: &str,
    peers: &Peers,
    event_loop: &LoopHandle,
) -> Result<(), String> {
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
    tracing::info!(shard = %left.shard_id, child = %right.shard_id, "split {why} at {:?}", String::from_utf8_lossy(&key));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meta::ShardEpoch;

    fn shard(start: &str, end: &str) -> ShardDescriptor {
        ShardDescriptor {
            shard_id: ShardId(1),
            start_key: start.into(),
            end_key: end.into(),
            epoch: ShardEpoch::INITIAL,
            replicas: vec![],
        }
    }

    fn keys(ks: &[&str]) -> Vec<Vec<u8>> {
        ks.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_load_split_halves_the_sampled_keys_inside_the_shard() {
        let d = shard("b", "x");
        let sampled: Vec<&str> = ["c", "d", "e", "f", "g", "h", "i", "j"].repeat(2);
        // Over the threshold: the median.
        assert_eq!(load_split_key(&d, 3000.0, keys(&sampled), 2500), Some(b"g".to_vec()));
        // Under it, or off: none.
        assert_eq!(load_split_key(&d, 2000.0, keys(&sampled), 2500), None);
        assert_eq!(load_split_key(&d, 3000.0, keys(&sampled), 0), None);
        // Too few samples: none.
        assert_eq!(load_split_key(&d, 3000.0, keys(&sampled[..8]), 2500), None);
        // Keys at the shard's first key or outside it do not count; one hot
        // key inside is split at (it gets a shard of its own from there).
        let mut hot = vec!["b"; 20];
        hot.extend(["y"; 20]);
        hot.extend(["m"; 16]);
        assert_eq!(load_split_key(&d, 3000.0, keys(&hot), 2500), Some(b"m".to_vec()));
        assert_eq!(load_split_key(&d, 3000.0, keys(&["b"; 40]), 2500), None);
    }
}
