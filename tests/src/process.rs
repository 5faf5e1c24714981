//! Clusters of real `spandb` processes on loopback, for end-to-end tests.
//!
//! The cluster is what a user starts: `spandb demo --no-shell --dir DIR
//! --port-base P`, which runs three `spandb start` children and prints
//! `ready ...` once every shard has a leader. Tests kill servers with
//! SIGKILL (by the pid in `DIR/sN/spandb.pid`) and restart them with
//! `spandb start --config DIR/sN.toml`, exactly as an operator would,
//! through the one launcher of server processes
//! (`harness::servers::ServerProcesses`, which the demo uses too).
//!
//! Every process started here is killed when the [`ProcessCluster`] is
//! dropped, so a failing test leaves nothing running.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use harness::servers::ServerProcesses;
use meta::ServerId;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the cluster may take to print `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// Lines of each server's log a failed test prints
/// ([`ProcessCluster::log_warnings`]).
pub const LOG_LINES_SHOWN: usize = 40;

pub struct ProcessCluster {
    dir: tempfile::TempDir,
    demo: Child,
    /// Servers this harness restarted (no longer children of the demo).
    restarted: ServerProcesses,
    pub addrs: Vec<String>,
    /// Where the first server takes PostgreSQL clients (HOST:PORT).
    pub sql_addr: Option<String>,
}

impl ProcessCluster {
    /// Starts `spandb demo --no-shell` with `binary` and waits for `ready`.
    pub async fn start(binary: &Path) -> anyhow::Result<ProcessCluster> {
        Self::start_with(binary, &[]).await
    }

    /// Like [`ProcessCluster::start`], with more arguments for the demo.
    pub async fn start_with(binary: &Path, demo_args: &[&std::ffi::OsStr]) -> anyhow::Result<ProcessCluster> {
        let dir = tempfile::Builder::new().prefix("spandb-e2e-").tempdir()?;
        let port_base = harness::servers::free_random_ports(3)?;
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
        let restarted = ServerProcesses::with_binary(dir.path(), binary.to_path_buf());
        Ok(ProcessCluster { dir, demo, restarted, addrs, sql_addr })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster description the servers run with (its peer secret is
    /// what `spandb admin --cluster` needs).
    pub fn spec_path(&self) -> std::path::PathBuf {
        self.dir.path().join("cluster.toml")
    }

    /// The warnings and errors in the servers' logs (`DIR/sN.log`), the
    /// last [`LOG_LINES_SHOWN`] of each: what a failed test prints, since
    /// the logs go with the cluster's directory.
    pub fn log_warnings(&self) -> String {
        let mut out = String::new();
        for id in 1..=self.addrs.len() {
            let path = self.dir().join(format!("s{id}.log"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ") || l.contains(" ERROR ")).collect();
            out.push_str(&format!("--- s{id}.log: {} warnings and errors, the last ones:\n", lines.len()));
            for line in &lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// The pid of server `id`, from its pid file.
    pub fn pid(&self, id: u64) -> anyhow::Result<i32> {
        let path = self.dir().join(format!("s{id}")).join("spandb.pid");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().parse()?)
    }

    /// SIGKILLs server `id` and waits until it is gone.
    pub async fn kill9(&mut self, id: u64) -> anyhow::Result<()> {
        if self.restarted.is_running(ServerId(id)) {
            return self.restarted.kill(ServerId(id)).await;
        }
        let pid = self.pid(id)?;
        anyhow::ensure!(harness::process::signal(pid, libc::SIGKILL), "kill -9 {pid}: no such process");
        crate::wait::wait_until(Duration::from_secs(10), || {
            // Reaped by its parent, or a zombie: either way not serving.
            !Path::new(&format!("/proc/{pid}/status")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("State:\tZ"))
        })
        .await
    }

    /// Starts server `id` again from its configuration file.
    pub async fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let server = ServerId(id);
        if !self.restarted.ids().contains(&server) {
            let addr = self.addrs.get(id as usize - 1).with_context(|| format!("no server {id}"))?;
            self.restarted.adopt(server, addr)?;
        }
        self.restarted.start(server)
    }

    /// Stops the demo (which stops its children) and the restarted servers.
    pub async fn stop(mut self) {
        if let Some(pid) = self.demo.id() {
            harness::process::signal(pid as i32, libc::SIGTERM);
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.demo.wait()).await;
        self.restarted.stop_all(Duration::from_secs(10)).await;
    }
}

impl Drop for ProcessCluster {
    /// A test that fails before `stop` drops the cluster: the demo dies
    /// with its handle (`kill_on_drop`), but its servers run in process
    /// groups of their own, so each still running is killed here by its
    /// pid file (if that pid is still a `spandb`: pids are reused).
    fn drop(&mut self) {
        for id in 1..=self.addrs.len() as u64 {
            let Ok(pid) = self.pid(id) else { continue };
            let is_spandb = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("spandb"));
            if is_spandb {
                harness::process::signal(pid, libc::SIGKILL);
            }
        }
    }
}
