//! The cluster a run starts: real `spandb start` processes on loopback,
//! under the harness's full control.
//!
//! ```text
//!   OUT/cluster/cluster.toml   the cluster description (split at g, n, t;
//!                              replication = the number of nodes)
//!   OUT/cluster/sN.toml        server N's configuration: peer_addrs point at
//!                              N's outgoing link proxies
//!   OUT/cluster/sN/            server N's data directory (RocksDB, spandb.pid)
//!   OUT/cluster/sN.log         server N's log (appended across restarts)
//! ```
//!
//! Every shard has a replica on every node (replication = nodes), so node
//! majorities are Raft majorities: killing a minority of nodes never makes
//! a shard unavailable, a majority partition always can elect.
//!
//! Servers run in their own process group, so a Ctrl-C at the terminal
//! reaches only the harness, which then heals and stops them; every child
//! is also killed when its handle drops, so a failing harness leaves
//! nothing running. A server that exits without the nemesis killing it is
//! a crash: noted (`take_crashes`), restarted at the next heal, and
//! reported at the end of the run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use meta::ServerId;
use meta::{ClusterSpec, ServerSpec};
use spanserver::config::{AdminConfig, ServerConfig, TimeConfig, UnsafeTestingConfig};
use tokio::process::{Child, Command};

use crate::jepsen::admin;
use crate::jepsen::limits::{
    CLUSTER_READY_TIMEOUT, POLL_INTERVAL, SERVER_REAP_TIMEOUT, SERVER_STOP_TIMEOUT, SPLIT_POINTS,
};
use crate::jepsen::proxy::Proxies;

struct Node {
    addr: String,
    config_path: PathBuf,
    log_path: PathBuf,
    data_dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

/// How the harness configures the servers it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// TrueTime epsilon; `None`: the servers' default.
    pub epsilon_ms: Option<u64>,
    /// Deliberate bugs, for showing that the checkers can fail.
    pub unsafe_testing: UnsafeTestingConfig,
}

pub struct Cluster {
    exe: PathBuf,
    spec: ClusterSpec,
    nodes: BTreeMap<u64, Node>,
    proxies: Proxies,
    crashes: Vec<String>,
}

impl Cluster {
    /// Writes the configuration under `dir` (which must not exist yet),
    /// starts the proxies and `nodes` servers, and waits until every shard
    /// has a stable leader.
    pub async fn start(dir: &Path, nodes: usize, settings: &ServerSettings) -> anyhow::Result<Cluster> {
        std::fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        let exe = std::env::current_exe().context("finding the spandb binary")?;
        let first_port = crate::cluster::free_random_ports(nodes)?;
        let run: u32 = rand::random();
        let spec = ClusterSpec {
            cluster_id: format!("jepsen-{run:08x}"),
            replication: nodes,
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
        let servers: BTreeMap<u64, String> = spec.servers.iter().map(|s| (s.id.0, s.addr.clone())).collect();
        let proxies = Proxies::start(&servers).await?;

        let mut cluster = Cluster { exe, spec: spec.clone(), nodes: BTreeMap::new(), proxies, crashes: Vec::new() };
        for server in spec.sorted_servers() {
            let id = server.id.0;
            let peer_addrs = servers
                .keys()
                .filter(|&&to| to != id)
                .map(|&to| {
                    let proxy = cluster.proxies.listen_addr((id, to)).expect("a proxy per link");
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
                time: TimeConfig {
                    epsilon_ms: settings.epsilon_ms.unwrap_or(TimeConfig::default().epsilon_ms),
                    ..Default::default()
                },
                peer_addrs,
                // The nemeses move clocks and leaderships.
                admin: AdminConfig { tools: true },
                unsafe_testing: settings.unsafe_testing.clone(),
            };
            let config_path = dir.join(format!("s{id}.toml"));
            let text = toml::to_string(&config).context("encoding a server configuration")?;
            std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;
            let node = Node {
                addr: server.addr.clone(),
                config_path,
                log_path: dir.join(format!("s{id}.log")),
                data_dir: config.data_dir.clone(),
                child: None,
                paused: false,
            };
            cluster.nodes.insert(id, node);
            cluster.restart(id).await?;
        }
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
        self.nodes.iter().map(|(&id, n)| (id, n.addr.clone())).collect()
    }

    pub fn node_ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn shards(&self) -> usize {
        self.spec.shards().len()
    }

    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    fn node(&mut self, id: u64) -> anyhow::Result<&mut Node> {
        self.nodes.get_mut(&id).with_context(|| format!("no server {id}"))
    }

    fn pid(&mut self, id: u64) -> anyhow::Result<i32> {
        let node = self.node(id)?;
        let pid = node.child.as_ref().and_then(|c| c.id()).with_context(|| format!("server {id} is not running"))?;
        Ok(pid as i32)
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.child.is_some())
    }

    pub fn is_paused(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.paused)
    }

    /// SIGKILLs server `id` and reaps it.
    pub async fn kill(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let Some(mut child) = node.child.take() else { return Ok(()) };
        node.paused = false;
        child.start_kill().with_context(|| format!("kill -9 server {id}"))?;
        tokio::time::timeout(SERVER_REAP_TIMEOUT, child.wait())
            .await
            .with_context(|| format!("server {id} was not reaped within {SERVER_REAP_TIMEOUT:?} after SIGKILL"))??;
        Ok(())
    }

    /// Starts server `id` from its configuration, if it is not running.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let exe = self.exe.clone();
        let node = self.node(id)?;
        if node.child.is_some() {
            return Ok(());
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .with_context(|| format!("opening {}", node.log_path.display()))?;
        let child = Command::new(&exe)
            .arg("start")
            .arg("--config")
            .arg(&node.config_path)
            // No PostgreSQL gateway: the workloads speak gRPC, and every
            // port a run holds is one more to collide on.
            .args(["--sql-addr", "off"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting server {id}"))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// SIGSTOPs server `id`.
    pub fn pause(&mut self, id: u64) -> anyhow::Result<()> {
        let pid = self.pid(id)?;
        if !crate::process::signal(pid, libc::SIGSTOP) {
            bail!("SIGSTOP to server {id} (pid {pid}) failed");
        }
        self.node(id)?.paused = true;
        Ok(())
    }

    /// SIGCONTs server `id`.
    pub fn resume(&mut self, id: u64) -> anyhow::Result<()> {
        let pid = self.pid(id)?;
        if !crate::process::signal(pid, libc::SIGCONT) {
            bail!("SIGCONT to server {id} (pid {pid}) failed");
        }
        self.node(id)?.paused = false;
        Ok(())
    }

    /// Servers that exited since the last call without the harness killing
    /// them, as messages; each is forgotten (so a heal restarts it).
    pub fn take_crashes(&mut self) -> Vec<String> {
        let mut found = Vec::new();
        for (id, node) in self.nodes.iter_mut() {
            let exited = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                node.child = None;
                node.paused = false;
                found.push(format!("server {id} exited unexpectedly ({status}); see {}", node.log_path.display()));
            }
        }
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
        for node in self.nodes.values_mut() {
            if let Some(pid) = node.child.as_ref().and_then(|c| c.id()) {
                crate::process::signal(pid as i32, libc::SIGCONT);
                crate::process::signal(pid as i32, libc::SIGTERM);
                node.paused = false;
            }
        }
        for (id, node) in self.nodes.iter_mut() {
            let Some(mut child) = node.child.take() else { continue };
            if tokio::time::timeout(SERVER_STOP_TIMEOUT, child.wait()).await.is_err() {
                eprintln!("jepsen: server {id} did not stop within {SERVER_STOP_TIMEOUT:?}; killing it");
                let _ = child.kill().await;
            }
        }
    }

    /// Removes the servers' data directories (logs and configurations
    /// stay). Only for stopped clusters.
    pub fn remove_data(&self) {
        for node in self.nodes.values() {
            assert!(node.child.is_none(), "removing the data of a running server");
            let _ = std::fs::remove_dir_all(&node.data_dir);
        }
    }
}
