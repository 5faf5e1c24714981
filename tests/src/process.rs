//! Clusters of real `spandb` processes on loopback, for end-to-end tests.
//!
//! The cluster is what a user starts: `spandb demo --no-shell --dir DIR
//! --port-base P`, which runs three `spandb start` children and prints
//! `ready ...` once every shard has a leader. Tests kill servers with
//! SIGKILL (by the pid in `DIR/sN/spandb.pid`) and restart them with
//! `spandb start --config DIR/sN.toml`, exactly as an operator would.
//!
//! Every process started here is killed when the [`ProcessCluster`] is
//! dropped, so a failing test leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the cluster may take to print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

pub struct ProcessCluster {
    binary: PathBuf,
    dir: tempfile::TempDir,
    demo: Child,
    /// Servers this harness restarted (no longer children of the demo).
    restarted: Vec<(u64, Child)>,
    pub addrs: Vec<String>,
    /// Where the first server takes PostgreSQL clients (HOST:PORT).
    pub sql_addr: Option<String>,
}

/// Finds `servers` consecutive free loopback ports, below Linux's
/// ephemeral range (outgoing connections take their ports from there, so
/// a port picked in it can be gone by the time the server binds it) and
/// leaving room for the PostgreSQL ports 1000 above.
pub fn free_port_base(servers: u16) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let base = rand::random_range(10_000..31_000u16);
        let free = (0..servers).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return Ok(base);
        }
    }
    bail!("no {servers} consecutive free ports")
}

impl ProcessCluster {
    /// Starts `spandb demo --no-shell` with `binary` and waits for `ready`.
    pub async fn start(binary: &Path) -> anyhow::Result<ProcessCluster> {
        Self::start_with(binary, &[]).await
    }

    /// Like [`ProcessCluster::start`], with more arguments for the demo.
    pub async fn start_with(binary: &Path, demo_args: &[&std::ffi::OsStr]) -> anyhow::Result<ProcessCluster> {
        let dir = tempfile::Builder::new().prefix("spandb-e2e-").tempdir()?;
        let port_base = free_port_base(3)?;
        let mut demo = Command::new(binary)
            .args(["demo", "--no-shell", "--port-base", &port_base.to_string()])
            .args(demo_args)
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting spandb demo")?;
        let stdout = demo.stdout.take().context("demo stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // `ready ...`, then how to connect: the shell, then psql.
        let (ready, sql_addr) = tokio::time::timeout(READY_TIMEOUT, async {
            let mut ready = None;
            while let Some(line) = lines.next_line().await? {
                if line.starts_with("ready") {
                    ready = Some(line);
                } else if let (Some(ready), Some(url)) = (&ready, line.split("postgresql://").nth(1)) {
                    // postgresql://root@HOST:PORT/spandb"
                    let addr = url.split('@').nth(1).and_then(|a| a.split('/').next()).map(String::from);
                    return Ok::<_, anyhow::Error>((ready.clone(), addr));
                }
            }
            bail!("spandb demo exited without printing ready and its psql line")
        })
        .await
        .context("waiting for the cluster to be ready")??;
        // Keep draining the demo's stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addrs = (0..3).map(|i| format!("127.0.0.1:{}", port_base + i)).collect();
        tracing::info!("cluster ready: {ready}");
        Ok(ProcessCluster { binary: binary.to_path_buf(), dir, demo, restarted: Vec::new(), addrs, sql_addr })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of server `id`, from its pid file.
    pub fn pid(&self, id: u64) -> anyhow::Result<i32> {
        let path = self.dir().join(format!("s{id}")).join("spandb.pid");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().parse()?)
    }

    /// SIGKILLs server `id` and waits until it is gone.
    pub async fn kill9(&mut self, id: u64) -> anyhow::Result<()> {
        let pid = self.pid(id)?;
        send_signal(pid, libc::SIGKILL).with_context(|| format!("kill -9 {pid}"))?;
        if let Some(pos) = self.restarted.iter().position(|(s, _)| *s == id) {
            let (_, mut child) = self.restarted.remove(pos);
            let _ = child.wait().await;
        }
        crate::wait::wait_until(Duration::from_secs(10), || {
            // Reaped by its parent, or a zombie: either way not serving.
            !Path::new(&format!("/proc/{pid}/status")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("State:\tZ"))
        })
        .await
    }

    /// Starts server `id` again from its configuration file.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let config = self.dir().join(format!("s{id}.toml"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir().join(format!("s{id}.log")))?;
        let child = Command::new(&self.binary)
            .arg("start")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("restarting server {id}"))?;
        self.restarted.push((id, child));
        Ok(())
    }

    /// Stops the demo (which stops its children) and the restarted servers.
    pub async fn stop(mut self) {
        if let Some(pid) = self.demo.id() {
            let _ = send_signal(pid as i32, libc::SIGTERM);
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.demo.wait()).await;
        for (_, child) in self.restarted.iter_mut() {
            let _ = child.kill().await;
        }
    }
}

/// Sends a signal to one process (never a group: `pid` must be positive).
pub fn send_signal(pid: i32, signal: i32) -> std::io::Result<()> {
    if pid <= 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a process id"));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
