//! The one launcher of `spandb start` child processes: `spandb demo` and
//! `spandb bench --local` (`cli/src/cluster.rs`) and `spandb jepsen`'s clusters
//! (`harness/src/cluster.rs`) all start, signal and stop their servers here.
//!
//! ```text
//!   ServerProcesses ── add(id, config)  writes DIR/sN.toml
//!                   ── start(id)        spandb start --config DIR/sN.toml ARGS
//!                                       (stdout and stderr appended to DIR/sN.log)
//!                   ── kill / pause / resume (SIGKILL, SIGSTOP, SIGCONT)
//!                   ── take_exited()    servers that exited on their own
//!                   ── stop_all()       SIGCONT + SIGTERM, SIGKILL after a grace period
//! ```
//!
//! Every server runs in its own process group, so a Ctrl-C at the terminal
//! reaches only the parent, which then stops them in order; every child is
//! also killed when its handle drops, so a parent that fails leaves nothing
//! running.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use meta::ServerId;
use spanserver::config::ServerConfig;
use tokio::process::{Child, Command};

/// How long a killed server gets to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

struct Node {
    addr: String,
    config_path: PathBuf,
    log_path: PathBuf,
    data_dir: PathBuf,
    /// Arguments after `start --config PATH`.
    args: Vec<OsString>,
    child: Option<Child>,
    paused: bool,
}

/// A server that exited without being asked to.
#[derive(Debug)]
pub struct Exited {
    pub id: ServerId,
    pub status: ExitStatus,
    pub log_path: PathBuf,
}

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server {} exited unexpectedly ({}); see {}", self.id.0, self.status, self.log_path.display())
    }
}

/// The `spandb start` processes of one local cluster, all under `dir`.
pub struct ServerProcesses {
    exe: PathBuf,
    dir: PathBuf,
    nodes: BTreeMap<ServerId, Node>,
}

impl ServerProcesses {
    /// No servers yet; they will run this very binary.
    pub fn new(dir: &Path) -> anyhow::Result<ServerProcesses> {
        let exe = std::env::current_exe().context("finding the spandb binary")?;
        Ok(ServerProcesses::with_binary(dir, exe))
    }

    /// No servers yet; they will run `exe` (a `spandb` binary: how tests
    /// start servers, which are not that binary themselves).
    pub fn with_binary(dir: &Path, exe: PathBuf) -> ServerProcesses {
        ServerProcesses { exe, dir: dir.to_path_buf(), nodes: BTreeMap::new() }
    }

    /// Writes server `config.id`'s configuration to `DIR/sN.toml` and
    /// registers it (not started), at `addr`, with `args` after
    /// `start --config DIR/sN.toml`.
    pub fn add(&mut self, config: &ServerConfig, addr: &str, args: Vec<OsString>) -> anyhow::Result<()> {
        let config_path = self.dir.join(format!("s{}.toml", config.id.0));
        let text = toml::to_string(config).context("encoding a server configuration")?;
        std::fs::write(&config_path, text).with_context(|| format!("writing {}", config_path.display()))?;
        self.register(config, addr, args);
        Ok(())
    }

    /// Registers server `id` (not started) from the configuration another
    /// launcher wrote to `DIR/sN.toml` (a `spandb demo`'s, which a test
    /// restarts a server of as an operator would).
    pub fn adopt(&mut self, id: ServerId, addr: &str) -> anyhow::Result<()> {
        let config_path = self.dir.join(format!("s{}.toml", id.0));
        let text =
            std::fs::read_to_string(&config_path).with_context(|| format!("reading {}", config_path.display()))?;
        let config: ServerConfig =
            toml::from_str(&text).with_context(|| format!("parsing {}", config_path.display()))?;
        anyhow::ensure!(config.id == id, "{} is server {}'s, not {}'s", config_path.display(), config.id.0, id.0);
        self.register(&config, addr, Vec::new());
        Ok(())
    }

    fn register(&mut self, config: &ServerConfig, addr: &str, args: Vec<OsString>) {
        let id = config.id;
        let config_path = self.dir.join(format!("s{}.toml", id.0));
        let node = Node {
            addr: addr.to_string(),
            config_path,
            log_path: self.dir.join(format!("s{}.log", id.0)),
            data_dir: config.data_dir.clone(),
            args,
            child: None,
            paused: false,
        };
        self.nodes.insert(id, node);
    }

    /// Server id -> address.
    pub fn addrs(&self) -> BTreeMap<ServerId, String> {
        self.nodes.iter().map(|(id, n)| (*id, n.addr.clone())).collect()
    }

    pub fn ids(&self) -> Vec<ServerId> {
        self.nodes.keys().copied().collect()
    }

    fn node(&mut self, id: ServerId) -> anyhow::Result<&mut Node> {
        self.nodes.get_mut(&id).with_context(|| format!("no server {}", id.0))
    }

    fn pid(&mut self, id: ServerId) -> anyhow::Result<i32> {
        let node = self.node(id)?;
        let pid =
            node.child.as_ref().and_then(|c| c.id()).with_context(|| format!("server {} is not running", id.0))?;
        Ok(pid as i32)
    }

    pub fn is_running(&self, id: ServerId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.child.is_some())
    }

    pub fn is_paused(&self, id: ServerId) -> bool {
        self.nodes.get(&id).is_some_and(|n| n.paused)
    }

    /// Starts server `id` from its configuration, if it is not running;
    /// its output is appended to its log.
    pub fn start(&mut self, id: ServerId) -> anyhow::Result<()> {
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
            .args(&node.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting server {}", id.0))?;
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    /// SIGKILLs server `id` and reaps it.
    pub async fn kill(&mut self, id: ServerId) -> anyhow::Result<()> {
        let node = self.node(id)?;
        let Some(mut child) = node.child.take() else { return Ok(()) };
        node.paused = false;
        child.start_kill().with_context(|| format!("kill -9 server {}", id.0))?;
        tokio::time::timeout(REAP_TIMEOUT, child.wait())
            .await
            .with_context(|| format!("server {} was not reaped within {REAP_TIMEOUT:?} after SIGKILL", id.0))??;
        Ok(())
    }

    /// SIGSTOPs server `id`.
    pub fn pause(&mut self, id: ServerId) -> anyhow::Result<()> {
        self.signal(id, libc::SIGSTOP, "SIGSTOP", true)
    }

    /// SIGCONTs server `id`.
    pub fn resume(&mut self, id: ServerId) -> anyhow::Result<()> {
        self.signal(id, libc::SIGCONT, "SIGCONT", false)
    }

    fn signal(&mut self, id: ServerId, signal: i32, name: &str, paused: bool) -> anyhow::Result<()> {
        let pid = self.pid(id)?;
        if !crate::process::signal(pid, signal) {
            bail!("{name} to server {} (pid {pid}) failed", id.0);
        }
        self.node(id)?.paused = paused;
        Ok(())
    }

    /// Servers that exited since the last call without being killed or
    /// stopped here; each is forgotten (so `start` starts it again).
    pub fn take_exited(&mut self) -> Vec<Exited> {
        let mut found = Vec::new();
        for (id, node) in self.nodes.iter_mut() {
            let exited = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                node.child = None;
                node.paused = false;
                found.push(Exited { id: *id, status, log_path: node.log_path.clone() });
            }
        }
        found
    }

    /// Stops every server: SIGCONT (a paused server cannot handle
    /// SIGTERM), SIGTERM, then SIGKILL for any still running after
    /// `grace`. Says on stderr which had to be killed.
    pub async fn stop_all(&mut self, grace: Duration) {
        for node in self.nodes.values_mut() {
            if let Some(pid) = node.child.as_ref().and_then(|c| c.id()) {
                crate::process::signal(pid as i32, libc::SIGCONT);
                crate::process::signal(pid as i32, libc::SIGTERM);
                node.paused = false;
            }
        }
        for (id, node) in self.nodes.iter_mut() {
            let Some(mut child) = node.child.take() else { continue };
            if tokio::time::timeout(grace, child.wait()).await.is_err() {
                eprintln!("server {} did not stop within {grace:?}; killing it", id.0);
                let _ = child.kill().await;
            }
        }
    }

    /// Removes the servers' data directories (logs and configurations
    /// stay). Only for stopped servers.
    pub fn remove_data(&self) {
        for node in self.nodes.values() {
            assert!(node.child.is_none(), "removing the data of a running server");
            let _ = std::fs::remove_dir_all(&node.data_dir);
        }
    }
}

/// Where a random run of free ports is looked for: below Linux's
/// ephemeral range (32768..61000 by default), from which every outgoing
/// connection takes its local port. A port picked there can be taken by
/// any client between the check and the server's bind (or a killed
/// server's restart); below it only another listener can take it. The
/// top leaves room for the PostgreSQL ports 1000 above.
pub const RANDOM_PORTS: std::ops::Range<u16> = 10_000..31_000;

/// Whether `n` ports from `base` are free on 127.0.0.1 now.
pub fn ports_free(base: u16, n: usize) -> bool {
    (0..n).all(|i| base.checked_add(i as u16).is_some_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()))
}

/// `first` if it and the `n - 1` ports after it are free, else a random
/// such run (in [`RANDOM_PORTS`]).
pub fn free_ports_from(first: u16, n: usize) -> anyhow::Result<u16> {
    if ports_free(first, n) {
        return Ok(first);
    }
    free_random_ports(n)
}

/// A random run of `n` free ports in [`RANDOM_PORTS`]; free now, so a
/// server that loses one to another listener fails to start and says so.
pub fn free_random_ports(n: usize) -> anyhow::Result<u16> {
    for _ in 0..100 {
        let base = rand::random_range(RANDOM_PORTS);
        if ports_free(base, n) {
            return Ok(base);
        }
    }
    bail!("no {n} consecutive free ports found; pass --port-base")
}
