//! Persistence under real concurrency (6.824 lab 2C's Figure 8): the
//! cluster stays correct for concurrent writers and readers while leaders
//! crash at random on a bad network. The crash of every server, and
//! Figure 8 itself step by step, run on stepped clusters
//! (`tests/tests/stepped_raft.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tests::{ClusterOptions, TestCluster};

use crate::common::{init, LEADER_TIMEOUT};

/// Goal (6.824 TestFigure8Unreliable2C): on a lossy, reordering network
/// with servers crashing and restarting at random, every acknowledged write
/// survives and reads never go back in time.
/// Method: one writer per key writes increasing counters; readers check
/// each read is at least the last value they read and at least the last
/// value acknowledged before the read began. Chaos for a while, then heal
/// and check the final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figure8_unreliable_random_crashes() -> anyhow::Result<()> {
    init();
    let mut c = TestCluster::start(ClusterOptions::new(5).replication(5).seed(8)).await?;
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    c.net.set_unreliable(0.1, Duration::from_millis(20));
    let client = c.client().await?;
    const KEYS: usize = 3;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for k in 0..KEYS {
        let (writer, writer_acked, writer_stop) = (client.clone(), acked.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut counter = 0u64;
            while !writer_stop.load(Ordering::SeqCst) {
                counter += 1;
                // Ambiguous or unavailable: move on; the counter only grows.
                if writer.put(format!("w{k}").as_bytes(), counter.to_string().as_bytes()).await.is_ok() {
                    writer_acked[k].store(counter, Ordering::SeqCst);
                }
            }
        }));
        let (reader, acked, stop, violations) = (client.clone(), acked.clone(), stop.clone(), violations.clone());
        tasks.push(tokio::spawn(async move {
            let mut last_read = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let floor = acked[k].load(Ordering::SeqCst);
                let Ok(value) = reader.get(format!("w{k}").as_bytes()).await else {
                    continue;
                };
                let v: u64 = value.map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0)).unwrap_or(0);
                if v < floor || v < last_read {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("w{k}: read {v} after reading {last_read}, with {floor} acknowledged"));
                }
                last_read = last_read.max(v);
            }
        }));
    }

    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let mut down: Vec<u64> = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1200))).await;
        if down.len() < 2 && rng.random_bool(0.7) {
            // Prefer the leader: the interesting crashes are leader crashes.
            let victim = c.leader(1).filter(|_| rng.random_bool(0.7)).unwrap_or_else(|| rng.random_range(1..=5));
            if !down.contains(&victim) {
                c.crash(victim).await;
                down.push(victim);
            }
        } else if !down.is_empty() {
            let id = down.remove(rng.random_range(0..down.len()));
            c.restart(id).await?;
        }
    }
    for id in down.drain(..) {
        c.restart(id).await?;
    }
    c.net.heal();
    c.wait_for_leaders(LEADER_TIMEOUT).await?;
    // Let the workers run a little on the healed cluster, then stop them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await?;
    }
    let client = c.client().await?;
    for (k, acked_value) in acked.iter().enumerate() {
        let acked_value = acked_value.load(Ordering::SeqCst);
        assert!(acked_value > 0, "no write to w{k} was ever acknowledged");
        let v: u64 = client
            .get(format!("w{k}").as_bytes())
            .await?
            .map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0))
            .unwrap_or(0);
        assert!(v >= acked_value, "w{k} = {v}, but {acked_value} was acknowledged");
    }
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    c.shutdown().await
}
