//! A local cluster of `spandb start` child processes on 127.0.0.1, for
//! `spandb demo` and `spandb bench --local`.
//!
//! Layout of the data directory:
//!
//! ```text
//!   DIR/cluster.toml     the cluster description (kept: rerunning on DIR
//!                        restarts the same cluster with its data)
//!   DIR/s1.toml ...      each server's configuration
//!   DIR/s1/ ...          each server's data directory (RocksDB, spandb.pid)
//!   DIR/s1.log ...       each server's log
//! ```
//!
//! A server can be restarted by hand with `spandb start --config DIR/sN.toml`.
//! The processes are started and stopped by `harness::servers`, the one
//! launcher (`spandb jepsen`'s clusters use it too).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use meta::ServerId;
use meta::{ClusterSpec, ServerSpec};
use spanserver::config::{AdminConfig, PlacementConfig, RaftConfig, ServerConfig, SplitConfig, TimeConfig};

use harness::servers::{free_ports_from, ports_free, ServerProcesses, RANDOM_PORTS};

/// How long to wait for every shard to elect a leader.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server gets to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the demo's shards split: four shards.
const DEMO_SPLIT_POINTS: [&str; 3] = ["g", "n", "t"];
const DEFAULT_PORT_BASE: u16 = 7000;

/// The servers' placement driver and split settings.
#[derive(Clone, Debug, Default)]
pub struct Tuning {
    pub placement: PlacementConfig,
    pub split: SplitConfig,
}

/// How the servers' PostgreSQL gateways behave.
#[derive(Default)]
struct Gateway {
    /// Clients log in by password from this file (`pg::auth`).
    sql_users: Option<PathBuf>,
    /// New tables get shards of their own.
    split_tables: bool,
}

pub struct LocalCluster {
    dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    servers: ServerProcesses,
    addrs: Vec<String>,
    /// Where each server takes PostgreSQL clients.
    sql_addrs: Vec<String>,
    /// The description's peer secret, for clients that change the cluster.
    peer_secret: client::PeerSecret,
}

impl LocalCluster {
    /// Starts (or restarts, if `dir` holds one) a cluster of `servers`
    /// servers with the given time settings (TrueTime epsilon, timeouts),
    /// and waits until every shard has a leader.
    pub async fn start(
        dir: Option<PathBuf>,
        port_base: Option<u16>,
        servers: usize,
        time: TimeConfig,
    ) -> anyhow::Result<LocalCluster> {
        Self::start_with_users(dir, port_base, servers, time, None, false, Tuning::default()).await
    }

    /// Like [`LocalCluster::start`], with every gateway asking PostgreSQL
    /// clients for a password from the `sql_users` file (`pg::auth`), and
    /// giving each new table shards of its own with `split_tables`, and
    /// the servers' placement and split settings given.
    pub async fn start_with_users(
        dir: Option<PathBuf>,
        port_base: Option<u16>,
        servers: usize,
        time: TimeConfig,
        sql_users: Option<PathBuf>,
        split_tables: bool,
        tuning: Tuning,
    ) -> anyhow::Result<LocalCluster> {
        let split_points = DEMO_SPLIT_POINTS.iter().map(|s| s.to_string()).collect();
        let gateway = Gateway { sql_users, split_tables };
        Self::start_full(dir, port_base, servers, time, split_points, gateway, tuning).await
    }

    /// Like [`LocalCluster::start`] in a temporary directory, with the
    /// servers' placement driver and split settings given (benchmarks
    /// that must not be disturbed by them, or want them sooner).
    pub async fn start_tuned(servers: usize, time: TimeConfig, tuning: Tuning) -> anyhow::Result<LocalCluster> {
        let split_points = DEMO_SPLIT_POINTS.iter().map(|s| s.to_string()).collect();
        Self::start_full(None, None, servers, time, split_points, Gateway::default(), tuning).await
    }

    /// Like [`LocalCluster::start`], with the given split points (for a new
    /// cluster; an existing one keeps its layout).
    pub async fn start_with_layout(
        dir: Option<PathBuf>,
        port_base: Option<u16>,
        servers: usize,
        time: TimeConfig,
        split_points: Vec<String>,
        sql_users: Option<PathBuf>,
    ) -> anyhow::Result<LocalCluster> {
        let gateway = Gateway { sql_users, split_tables: false };
        Self::start_full(dir, port_base, servers, time, split_points, gateway, Tuning::default()).await
    }

    async fn start_full(
        dir: Option<PathBuf>,
        port_base: Option<u16>,
        servers: usize,
        time: TimeConfig,
        split_points: Vec<String>,
        gateway: Gateway,
        tuning: Tuning,
    ) -> anyhow::Result<LocalCluster> {
        let Gateway { sql_users, split_tables } = gateway;
        let (dir, temp) = match dir {
            Some(d) => {
                std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
                (d, None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("spandb-demo-")
                    .tempdir()
                    .context("creating a temporary directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let spec_path = dir.join("cluster.toml");
        let spec = if spec_path.exists() {
            let spec = ClusterSpec::load(&spec_path)?;
            if let Some(p) = port_base {
                let want = format!("127.0.0.1:{p}");
                if spec.sorted_servers().first().map(|s| s.addr.as_str()) != Some(want.as_str()) {
                    bail!("{} holds a cluster on other ports; omit --port-base or use a fresh --dir", dir.display());
                }
            }
            spec
        } else {
            let base = match port_base {
                Some(p) => p,
                None => find_free_ports(servers)?,
            };
            let spec = demo_spec(base, servers, split_points)?;
            std::fs::write(&spec_path, spec.to_toml()).with_context(|| format!("writing {}", spec_path.display()))?;
            spec
        };
        let mut cluster = LocalCluster {
            dir: dir.clone(),
            _temp: temp,
            servers: ServerProcesses::new(&dir)?,
            addrs: Vec::new(),
            sql_addrs: Vec::new(),
            peer_secret: client::PeerSecret::new(&spec.peer_secret),
        };
        // PostgreSQL ports: 1000 above the gRPC ones when free (the
        // default of `spandb start`), else any free run.
        let grpc_base = spec.sorted_servers().first().and_then(|s| s.addr.rsplit(':').next()?.parse::<u16>().ok());
        let n = spec.sorted_servers().len();
        let sql_base = match grpc_base.and_then(|p| p.checked_add(1000)) {
            Some(p) if ports_free(p, n) => p,
            _ => free_ports_from(rand::random_range(RANDOM_PORTS), n)?,
        };
        for server in spec.sorted_servers() {
            let config = ServerConfig {
                id: server.id,
                data_dir: dir.join(format!("s{}", server.id.0)),
                listen: None,
                cluster: None,
                cluster_file: Some(spec_path.clone()),
                raft: RaftConfig::default(),
                gc: Default::default(),
                split: tuning.split.clone(),
                placement: tuning.placement.clone(),
                time: time.clone(),
                peer_addrs: Default::default(),
                // A playground: the jepsen nemeses (`spandb jepsen --addr`)
                // need the operator tools.
                admin: AdminConfig { tools: true },
                unsafe_testing: Default::default(),
                joined: false,
            };
            let sql_addr = format!("127.0.0.1:{}", sql_base + cluster.sql_addrs.len() as u16);
            let mut args: Vec<OsString> = vec!["--sql-addr".into(), sql_addr.clone().into()];
            if let Some(users) = &sql_users {
                args.extend(["--sql-users".into(), users.clone().into_os_string()]);
            }
            if split_tables {
                args.push("--sql-split-tables".into());
            }
            cluster.servers.add(&config, &server.addr, args)?;
            cluster.servers.start(server.id)?;
            cluster.addrs.push(server.addr.clone());
            cluster.sql_addrs.push(sql_addr);
        }
        if let Err(e) = cluster.wait_ready().await {
            cluster.servers.stop_all(STOP_TIMEOUT).await;
            return Err(e);
        }
        Ok(cluster)
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    pub fn sql_addrs(&self) -> &[String] {
        &self.sql_addrs
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A client configuration that may change this cluster (split, move,
    /// transfer leaderships): it holds the peer secret.
    pub fn operator_config(&self) -> client::ClientConfig {
        client::ClientConfig { peer_secret: Some(self.peer_secret.clone()), ..Default::default() }
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        let mut last = String::from("no answer yet");
        while tokio::time::Instant::now() < deadline {
            if let Some(exited) = self.servers.take_exited().into_iter().next() {
                bail!("{exited} while starting");
            }
            match leaderless_shards(&self.addrs).await {
                Ok(0) => return Ok(()),
                Ok(n) => last = format!("{n} shards without a leader"),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the cluster did not become ready within {READY_TIMEOUT:?}: {last}")
    }

    /// Runs until SIGTERM or Ctrl-C, reporting servers that exit.
    pub async fn wait_for_signal(&mut self) -> anyhow::Result<()> {
        let stop = harness::process::wait_for_stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                result = &mut stop => return result,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    for exited in self.servers.take_exited() {
                        eprintln!("{exited}");
                    }
                }
            }
        }
    }

    /// Kills server `id` (SIGKILL).
    pub async fn kill(&mut self, id: ServerId) -> anyhow::Result<()> {
        self.servers.kill(id).await
    }

    pub async fn stop(mut self) {
        self.servers.stop_all(STOP_TIMEOUT).await;
    }
}

/// Counts shards without a known leader (an error if no server answers).
/// Shards of which no server's replica knows a leader (every server is
/// asked: with more servers than replicas, none hosts every shard).
async fn leaderless_shards(addrs: &[String]) -> anyhow::Result<usize> {
    let config = client::ClientConfig { connect_timeout: Duration::from_millis(500), ..Default::default() };
    let client = client::Client::connect_with(addrs.to_vec(), config).await?;
    let mut led: std::collections::BTreeMap<u64, bool> = std::collections::BTreeMap::new();
    for addr in addrs {
        for r in client.server_status(addr).await?.replicas {
            *led.entry(r.shard_id).or_default() |= r.leader_server_id != 0;
        }
    }
    let layout = client.cluster_info().await?.shards.len();
    Ok(led.values().filter(|l| !**l).count() + layout.saturating_sub(led.len()))
}

fn demo_spec(port_base: u16, servers: usize, split_points: Vec<String>) -> anyhow::Result<ClusterSpec> {
    let id: u32 = rand::random();
    let spec = ClusterSpec {
        cluster_id: format!("demo-{id:08x}"),
        replication: 3.min(servers),
        split_points,
        servers: (0..servers)
            .map(|i| {
                let port = port_base
                    .checked_add(i as u16)
                    .with_context(|| format!("port {port_base} + {i} is out of range"))?;
                Ok(ServerSpec { id: ServerId(i as u64 + 1), addr: format!("127.0.0.1:{port}") })
            })
            .collect::<anyhow::Result<_>>()?,
        peer_secret: spanserver::auth::new_peer_secret(),
    };
    spec.validate()?;
    Ok(spec)
}

/// 7000.. if free, else a random range of `n` free ports.
fn find_free_ports(n: usize) -> anyhow::Result<u16> {
    free_ports_from(DEFAULT_PORT_BASE, n)
}
