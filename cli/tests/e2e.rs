//! End to end: real `spandb` processes on loopback, as a user runs them.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::{Client, ReadMode};
use tests::process::ProcessCluster;
use tests::wait::wait_for;

const BINARY: &str = env!("CARGO_BIN_EXE_spandb");
const TIMEOUT: Duration = Duration::from_secs(60);

/// Goal: acknowledged writes survive `kill -9` of the busiest server, and
/// the cluster heals once it is restarted.
/// Method: `spandb demo --no-shell`; write 1,000 keys from 16 workers; after
/// 500 acknowledgements SIGKILL the server leading the most shards; finish
/// the writes against the survivors; restart the server from its config;
/// wait until every shard has a leader and the restarted replicas caught
/// up; then every acknowledged key must hold its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_of_the_busiest_server() -> anyhow::Result<()> {
    tests::init_logging();
    let mut cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let client = Client::connect(cluster.addrs.clone()).await?;
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Default::default();
    let keys: Vec<String> = (0..1000).map(|i| format!("{}{i:04}", (b'a' + (i % 26) as u8) as char)).collect();

    write_all(&client, &keys[..500], &acked).await;
    assert_eq!(acked.lock().unwrap().len(), 500, "writes failed before any fault");

    let info = client.cluster_info().await?;
    let mut led: BTreeMap<u64, usize> = BTreeMap::new();
    for shard in &info.shards {
        *led.entry(shard.leader_server_id).or_default() += 1;
    }
    let (&victim, _) = led.iter().filter(|(s, _)| **s != 0).max_by_key(|(_, n)| **n).expect("some leader");
    cluster.kill9(victim).await?;

    write_all(&client, &keys[500..], &acked).await;
    cluster.restart(victim).await?;

    // Every shard led again, and the restarted server's replicas caught up.
    let victim_addr = cluster.addrs[victim as usize - 1].clone();
    wait_for(TIMEOUT, || async {
        let info = client.cluster_info().await.ok()?;
        if info.shards.iter().any(|s| s.leader_server_id == 0) {
            return None;
        }
        let restarted = client.server_status(&victim_addr).await.ok()?;
        let mut caught_up = true;
        for r in &restarted.replicas {
            let leader = info.shards.iter().find(|s| s.descriptor.as_ref().map(|d| d.shard_id) == Some(r.shard_id))?;
            let leader_addr = &cluster.addrs[leader.leader_server_id as usize - 1];
            let status = client.server_status(leader_addr).await.ok()?;
            let led = status.replicas.iter().find(|x| x.shard_id == r.shard_id)?;
            caught_up &= r.applied_index >= led.committed_index;
        }
        (caught_up && !restarted.replicas.is_empty()).then_some(())
    })
    .await?;

    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 900, "only {} of 1000 writes acknowledged", acked.len());
    let read = Client::connect(cluster.addrs.clone()).await?;
    for (key, value) in &acked {
        assert_eq!(read.get(key.as_bytes()).await?.as_deref(), Some(value.as_bytes()), "{key} lost");
    }
    let all = read.scan(b"", b"", 2000, ReadMode::Latest).await?;
    assert!(all.len() >= acked.len());
    cluster.stop().await;
    Ok(())
}

/// Writes `keys` (value = key) from 16 workers; records what was
/// acknowledged. A put of the same value is idempotent, so one of unknown
/// outcome is simply tried again, as a user would.
async fn write_all(client: &Client, keys: &[String], acked: &Arc<Mutex<BTreeMap<String, String>>>) {
    let queue = Arc::new(Mutex::new(keys.to_vec()));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (client, queue, acked) = (client.clone(), queue.clone(), acked.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(key) = queue.lock().unwrap().pop() else {
                    return;
                };
                for _attempt in 0..5 {
                    if client.put(key.as_bytes(), key.as_bytes()).await.is_ok() {
                        acked.lock().unwrap().insert(key.clone(), key.clone());
                        break;
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("writer");
    }
}

fn spandb(args: &[&str]) -> std::process::Output {
    Command::new(BINARY).args(args).output().expect("running spandb")
}

/// `spandb status` once it says `what` and every shard has a leader (a
/// new shard elects its own), within 10 s.
async fn wait_for_status(addr: &str, what: &str) -> std::process::Output {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = spandb(&["status", "--addr", addr]);
        let text = stdout(&out);
        let shards: usize = what.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        if text.contains(what) && text.matches(" leader ").count() == shards {
            return out;
        }
        assert!(tokio::time::Instant::now() < deadline, "status never said {what:?}: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// Goal: `spandb kv` does what its help says, with exit code 0 on success
/// and a one-line error with a non-zero exit otherwise; `spandb status`
/// shows every shard led.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_and_status_commands() -> anyhow::Result<()> {
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let addr = cluster.addrs[0].clone();
    let a = addr.as_str();
    let put = spandb(&["kv", "--addr", a, "put", "apple", "red"]);
    assert!(put.status.success(), "{put:?}");
    let ts1 = stdout(&put).strip_prefix("OK ").expect("OK <ts>").to_string();
    assert!(spandb(&["kv", "--addr", a, "put", "apple", "green"]).status.success());
    assert!(spandb(&["kv", "--addr", a, "put", "zebra", "stripes"]).status.success());
    assert_eq!(stdout(&spandb(&["kv", "--addr", a, "get", "apple"])), "green");
    // The printed commit timestamp reads back the state at that write.
    assert_eq!(stdout(&spandb(&["kv", "--addr", a, "get", "apple", "--at", &ts1])), "red");
    assert_eq!(stdout(&spandb(&["kv", "--addr", a, "scan"])), "apple\tgreen\nzebra\tstripes");
    assert_eq!(stdout(&spandb(&["kv", "--addr", a, "scan", "b", "zz"])), "zebra\tstripes");
    assert!(spandb(&["kv", "--addr", a, "del", "zebra"]).status.success());
    let missing = spandb(&["kv", "--addr", a, "get", "zebra"]);
    assert!(missing.status.success() && stdout(&missing).is_empty(), "{missing:?}");

    for bad in [
        vec!["kv", "--addr", a, "get", "apple", "--at", "yesterday"],
        vec!["kv", "--addr", a, "put", "", "v"],
        vec!["kv", "--addr", "127.0.0.1:1", "get", "apple"],
        vec!["status", "--addr", "not an address"],
    ] {
        let out = spandb(&bad);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad:?} succeeded");
        assert!(err.starts_with("error: ") && err.trim_end().lines().count() == 1, "{bad:?}: {err}");
    }

    let status = stdout(&spandb(&["status", "--addr", a]));
    assert!(status.contains("3 servers, 4 shards"), "{status}");
    assert_eq!(status.matches(" leader ").count(), 4, "{status}");

    // Changing the cluster needs its peer secret: a description with
    // another one is refused, with the reason, and nothing splits.
    let spec = cluster.spec_path();
    let text = std::fs::read_to_string(&spec)?;
    let secret = text.lines().find(|l| l.starts_with("peer_secret")).expect("a peer secret");
    let forged = cluster.dir().join("forged.toml");
    std::fs::write(&forged, text.replace(secret, &format!("peer_secret = \"{}\"", "f".repeat(64))))?;
    let forged = forged.to_str().expect("a UTF-8 path");
    for command in [&["split", "apple"][..], &["decommission", "2"], &["recommission", "2"]] {
        let out = spandb(&[&["admin", "--addr", a, "--cluster", forged][..], command].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("needs the cluster's peer secret"), "{command:?}: {out:?}");
    }
    let status = stdout(&spandb(&["status", "--addr", a]));
    assert!(status.contains("3 servers, 4 shards") && !status.contains("draining"), "{status}");

    // An operator splits the shard holding "apple" there; both halves
    // are printed, and the data reads back through the new map.
    let spec = spec.to_str().expect("a UTF-8 path");
    let split = spandb(&["admin", "--addr", a, "--cluster", spec, "split", "apple"]);
    assert!(split.status.success(), "{split:?}");
    let halves = stdout(&split);
    assert_eq!(halves.lines().count(), 2, "{halves}");
    assert!(halves.lines().nth(1).is_some_and(|l| l.contains("[\"apple\", ") && l.contains(" rv2 ")), "{halves}");
    assert_eq!(stdout(&spandb(&["kv", "--addr", a, "scan"])), "apple\tgreen", "no system key among the data");
    assert_eq!(stdout(&spandb(&["kv", "--addr", a, "get", "apple"])), "green");
    let again = spandb(&["admin", "--addr", a, "--cluster", spec, "split", "apple"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success() && err.contains("not strictly inside"), "{again:?}");
    let status = stdout(&wait_for_status(a, "5 shards").await);
    assert_eq!(status.matches(" leader ").count(), 5, "{status}");

    // Decommissioning a server of three (3 replicas a shard) would leave
    // its replicas nowhere to go; an unknown server is no server: both
    // refused with the reason, nothing marked draining.
    for (server, why) in [("2", "would leave 2 servers"), ("9", "no server s9")] {
        let out = spandb(&["admin", "--addr", a, "--cluster", spec, "decommission", server]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(why), "decommission {server}: {out:?}");
    }
    assert!(!stdout(&spandb(&["status", "--addr", a])).contains("draining"));
    cluster.stop().await;
    Ok(())
}

/// Goal: a new server joins a running cluster with `spandb start --join`:
/// it is given an id above the cluster description's, every server
/// learns of it, the placement driver moves replicas to it, and a client
/// that knows only the new server reads what was written before it came.
/// Started again with the same flags, it keeps its id (from its data
/// directory). Joins that cannot be right are refused with the reason:
/// another server's address, a cluster description with another secret.
/// Method: `spandb demo` (3 servers, placement on); 50 keys; start a 4th
/// server with `--join` (the second server's address) on a free port;
/// poll `Admin.ServerStatus` of the first server's view until the new
/// server holds a replica; read every key through a client of the new
/// server only; kill and restart it; check its id; then the bad joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_server_joins_a_running_cluster_and_receives_replicas() -> anyhow::Result<()> {
    tests::init_logging();
    let cluster = ProcessCluster::start(BINARY.as_ref()).await?;
    let client = Client::connect(cluster.addrs.clone()).await?;
    let keys: Vec<String> = (0..50).map(|i| format!("{}{i:02}", (b'a' + (i % 26) as u8) as char)).collect();
    for key in &keys {
        client.put(key.as_bytes(), key.as_bytes()).await?;
    }
    let port = harness::servers::free_random_ports(1)?;
    let addr = format!("127.0.0.1:{port}");
    let spec = cluster.dir().join("cluster.toml");
    let data_dir = cluster.dir().join("joined");
    let start = |data_dir: &std::path::Path, listen: &str| {
        let log = std::fs::File::create(cluster.dir().join(format!("joined-{listen}.log"))).expect("a log file");
        tokio::process::Command::new(BINARY)
            .args(["start", "--join", &cluster.addrs[1], "--listen", listen, "--sql-addr", "off", "--cluster"])
            .arg(&spec)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
    };
    let mut joined = start(&data_dir, &addr)?;
    let id_file = data_dir.join("joined-server-id");
    let id: u64 = wait_for(TIMEOUT, || async { std::fs::read_to_string(&id_file).ok()?.trim().parse().ok() }).await?;
    assert!(id > 3, "a joined server's id {id} is one of the description's");

    // Every server learns of it; the driver moves replicas there.
    wait_for(TIMEOUT, || async {
        for server in &cluster.addrs {
            let info = client.cluster_info_from(server).await.ok()?;
            info.servers.iter().find(|s| s.server_id == id && s.addr == addr)?;
        }
        let status = client.server_status(&addr).await.ok()?;
        (status.server_id == id && !status.replicas.is_empty()).then_some(())
    })
    .await?;
    let through_new = Client::connect([addr.clone()]).await?;
    for key in &keys {
        assert_eq!(through_new.get(key.as_bytes()).await?.as_deref(), Some(key.as_bytes()), "{key} through s{id}");
    }

    // Restarted with the same flags: the same server, not a second join.
    joined.kill().await?;
    let mut joined = start(&data_dir, &addr)?;
    let status = wait_for(TIMEOUT, || async { client.server_status(&addr).await.ok() }).await?;
    assert_eq!(status.server_id, id);
    assert_eq!(std::fs::read_to_string(&id_file)?.trim(), id.to_string());

    // `spandb start --join` at the first server, listening at `listen`,
    // with the description `spec`: its error, if it fails at once.
    let join_error = |listen: &str, spec: &std::path::Path, dir: &str| {
        let spec = spec.display().to_string();
        let dir = cluster.dir().join(dir).display().to_string();
        let out = spandb(&[
            "start",
            "--join",
            &cluster.addrs[0],
            "--listen",
            listen,
            "--sql-addr",
            "off",
            "--cluster",
            &spec,
            "--data-dir",
            &dir,
        ]);
        (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).to_string())
    };
    // Another server's address: refused, nothing joins.
    let err = join_error(&cluster.addrs[2], &spec, "refused");
    assert!(err.as_ref().is_some_and(|e| e.contains("is the address of server")), "{err:?}");
    // A description with another peer secret: not a server of this cluster.
    let text = std::fs::read_to_string(&spec)?;
    let forged = cluster.dir().join("forged.toml");
    let secret = text.lines().find(|l| l.starts_with("peer_secret")).expect("a peer secret");
    std::fs::write(&forged, text.replace(secret, &format!("peer_secret = \"{}\"", "f".repeat(64))))?;
    let err = join_error("127.0.0.1:1", &forged, "forged");
    assert!(err.as_ref().is_some_and(|e| e.contains("refused the join")), "{err:?}");
    let info = client.cluster_info().await?;
    assert_eq!(info.servers.len(), 4, "only the one join took: {:?}", info.servers);

    joined.kill().await?;
    cluster.stop().await;
    Ok(())
}
