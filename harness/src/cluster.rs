//! The cluster a run starts: real `spandb start` processes on loopback,
//! under the harness's full control.
//!
//! ```text
//!   OUT/cluster/cluster.toml   the cluster description (split at g, n, t;
//!                              replication = the number of nodes, or 3
//!                              on 5 nodes for the move and decommission
//!                              nemeses and with --dead-after-s)
//!   OUT/cluster/sN.toml        server N's configuration: peer_addrs point at
//!                              N's outgoing link proxies
//!   OUT/cluster/sN/            server N's data directory (RocksDB, spandb.pid)
//!   OUT/cluster/sN.log         server N's log (appended across restarts)
//! ```
//!
//! Every shard has a replica on every node (replication = nodes), so node
//! majorities are Raft majorities: killing a minority of nodes never makes
//! a shard unavailable, a majority partition always can elect. The move
//! and decommission nemeses, and re-replication (`--dead-after-s`), need
//! servers without a replica to place one on: with them, a shard has 3
//! replicas (`--nodes 5`), and those guarantees hold per shard only.
//!
//! The processes themselves are `crate::servers::ServerProcesses`'s, the
//! one launcher (its own process group each, so a Ctrl-C at the terminal
//! reaches only the harness, which then heals and stops them). A server
//! that exits without the nemesis killing it is a crash: noted
//! (`take_crashes`), restarted at the next heal, and reported at the end
//! of the run.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use meta::ServerId;
use meta::{ClusterSpec, ServerSpec};
use spanserver::config::{AdminConfig, PlacementConfig, ServerConfig, TimeConfig, UnsafeTestingConfig};

use crate::admin;
use crate::limits::{CLUSTER_READY_TIMEOUT, POLL_INTERVAL, SERVER_STOP_TIMEOUT, SPLIT_POINTS};
use crate::proxy::Proxies;
use crate::servers::ServerProcesses;

/// How the harness configures the servers it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// TrueTime epsilon; `None`: the servers' default.
    pub epsilon_ms: Option<u64>,
    /// Deliberate bugs, for showing that the checkers can fail.
    pub unsafe_testing: UnsafeTestingConfig,
    /// Replicas per shard; `None`: one on every node.
    pub replication: Option<usize>,
    /// The placement driver's dead threshold; `None`: the servers' default.
    pub dead_after_s: Option<u64>,
}

pub struct Cluster {
    spec: ClusterSpec,
    servers: ServerProcesses,
    proxies: Proxies,
    crashes: Vec<String>,
}

impl Cluster {
    /// Writes the configuration under `dir` (which must not exist yet),
    /// starts the proxies and `nodes` servers, and waits until every shard
    /// has a stable leader.
    pub async fn start(dir: &Path, nodes: usize, settings: &ServerSettings) -> anyhow::Result<Cluster> {
        std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        let first_port = crate::servers::free_random_ports(nodes)?;
        let run: u32 = rand::random();
        let spec = ClusterSpec {
            cluster_id: format!("jepsen-{run:08x}"),
            replication: settings.replication.unwrap_or(nodes).min(nodes),
            split_points: SPLIT_POINTS.iter().map(|s| s.to_string()).collect(),
            servers: (0..nodes)
                .map(|i| ServerSpec {
                    id: ServerId(i as u64 + 1),
                    addr: format!("127.0.0.1:{}", first_port + i as u16),
                })
                .collect(),
            peer_secret: spanserver::auth::new_peer_secret(),
        };
        spec.validate()?;
        let spec_path = dir.join("cluster.toml");
        std::fs::write(&spec_path, spec.to_toml()).with_context(|| format!("writing {}", spec_path.display()))?;
        let addrs: BTreeMap<u64, String> = spec.servers.iter().map(|s| (s.id.0, s.addr.clone())).collect();
        let proxies = Proxies::start(&addrs).await?;
        let mut servers = ServerProcesses::new(dir)?;
        for server in spec.sorted_servers() {
            let id = server.id.0;
            let peer_addrs = addrs
                .keys()
                .filter(|&&to| to != id)
                .map(|&to| {
                    let proxy = proxies.listen_addr((id, to)).expect("a proxy per link");
                    (to.to_string(), proxy.to_string())
                })
                .collect();
            let config = ServerConfig {
                id: server.id,
                data_dir: dir.join(format!("s{id}")),
                listen: None,
                cluster: None,
                cluster_file: Some(spec_path.clone()),
                raft: Default::default(),
                gc: Default::default(),
                split: Default::default(),
                placement: PlacementConfig {
                    dead_after_s: settings.dead_after_s.unwrap_or(PlacementConfig::default().dead_after_s),
                    stray_learner_after_s: crate::limits::STRAY_LEARNER_AFTER_S,
                    ..Default::default()
                },
                time: TimeConfig {
                    epsilon_ms: settings.epsilon_ms.unwrap_or(TimeConfig::default().epsilon_ms),
                    ..Default::default()
                },
                peer_addrs,
                // The nemeses move clocks and leaderships.
                admin: AdminConfig { tools: true },
                unsafe_testing: settings.unsafe_testing.clone(),
                joined: false,
            };
            // No PostgreSQL gateway: the workloads speak gRPC, and every
            // port a run holds is one more to collide on.
            servers.add(&config, &server.addr, vec!["--sql-addr".into(), "off".into()])?;
            servers.start(server.id)?;
        }
        let mut cluster = Cluster { spec, servers, proxies, crashes: Vec::new() };
        if let Err(e) = cluster.wait_ready().await {
            cluster.stop().await;
            return Err(e);
        }
        Ok(cluster)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + CLUSTER_READY_TIMEOUT;
        let servers = self.servers();
        loop {
            if let Some(crash) = self.take_crashes().into_iter().next() {
                bail!("{crash} while starting");
            }
            let (views, silent) = admin::replica_views(&servers).await;
            let last = match admin::recovered(&views, &silent) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if tokio::time::Instant::now() >= deadline {
                bail!("the cluster did not become ready within {CLUSTER_READY_TIMEOUT:?}: {last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Server id -> address, for clients and admin calls.
    pub fn servers(&self) -> BTreeMap<u64, String> {
        self.servers.addrs().into_iter().map(|(id, addr)| (id.0, addr)).collect()
    }

    pub fn node_ids(&self) -> Vec<u64> {
        self.servers.ids().into_iter().map(|id| id.0).collect()
    }

    /// The cluster's peer secret: the admin API's changes need it.
    pub fn peer_secret(&self) -> client::PeerSecret {
        client::PeerSecret::new(&self.spec.peer_secret)
    }

    pub fn shards(&self) -> usize {
        self.spec.shards().len()
    }

    /// Replicas per shard.
    pub fn replication(&self) -> usize {
        self.spec.replication
    }

    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.servers.is_running(ServerId(id))
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.servers.is_paused(ServerId(id))
    }

    /// SIGKILLs server `id` and reaps it.
    pub async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        self.servers.kill(ServerId(id)).await
    }

    /// Starts server `id` from its configuration, if it is not running.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        self.servers.start(ServerId(id))
    }

    /// SIGSTOPs server `id`.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        self.servers.pause(ServerId(id))
    }

    /// SIGCONTs server `id`.
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        self.servers.resume(ServerId(id))
    }

    /// Servers that exited since the last call without the harness killing
    /// them, as messages; each is forgotten (so a heal restarts it).
    pub fn take_crashes(&mut self) -> Vec<String> {
        let found: Vec<String> = self.servers.take_exited().iter().map(|e| e.to_string()).collect();
        self.crashes.extend(found.iter().cloned());
        found
    }

    /// Every crash seen during the run.
    pub fn crashes(&self) -> &[String] {
        &self.crashes
    }

    /// Stops every server: SIGCONT (a paused server cannot handle SIGTERM),
    /// SIGTERM, then SIGKILL after [`SERVER_STOP_TIMEOUT`].
    pub async fn stop(&mut self) {
        self.take_crashes();
        self.servers.stop_all(SERVER_STOP_TIMEOUT).await;
    }

    /// Removes the servers' data directories (logs and configurations
    /// stay). Only for stopped clusters.
    pub fn remove_data(&self) {
        self.servers.remove_data();
    }
}
