//! `spandb start`: one spanserver in the foreground.
//!
//! Writes `spandb.pid` in its data directory (and refuses to start if a
//! live process already holds it), stops cleanly on SIGTERM or Ctrl-C.
//!
//! A new server joins a running cluster with `--join ADDR` (any server of
//! it) instead of `--id`: with the cluster description (for its id and
//! peer secret), its own `--listen` address (where the others will reach
//! it) and an empty data directory, it asks ADDR for an id (`Peer.Join`),
//! writes that id to [`JOINED_ID_FILE`] in the data directory, and starts.
//! Every server learns of it within `limits::JOINED_SERVERS_REFRESH`; the
//! placement driver then moves replicas to it. Started again with the
//! same flags, it finds its id in the file and does not join twice.
//!
//! ```text
//!   spandb start --join 127.0.0.1:7000 --cluster cluster.toml \
//!                --listen 127.0.0.1:7003 --data-dir data/s4
//!   joined cluster "demo" as server 13
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use meta::ServerId;
use spanserver::config::ServerConfig;
use spanserver::{Server, TransportKind};
use tokio::net::TcpListener;

#[derive(clap::Args)]
pub struct StartArgs {
    /// Server configuration (TOML). Flags given alongside override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This server's id in the cluster description.
    #[arg(long, conflicts_with = "join")]
    id: Option<u64>,
    /// Join the running cluster that the server at this address belongs
    /// to, as a new server (needs --cluster, --listen and --data-dir).
    #[arg(long)]
    join: Option<String>,
    /// The cluster description (TOML), the same file on every server.
    #[arg(long)]
    cluster: Option<PathBuf>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Listen address (default: this server's address in the cluster).
    #[arg(long)]
    listen: Option<String>,
    /// TrueTime epsilon in milliseconds.
    #[arg(long)]
    epsilon_ms: Option<u64>,
    /// Serve the operator tools of the admin API (clock offsets): for
    /// tests, nemeses and deliberate operator use.
    #[arg(long)]
    admin_tools: bool,
    /// Where PostgreSQL clients (psql, pgbench, drivers) connect: HOST:PORT,
    /// or `off`. Default: the gRPC address's port plus 1000, if free.
    #[arg(long)]
    sql_addr: Option<String>,
    /// PostgreSQL clients must log in as a user of this TOML file
    /// (`[[user]] name, password`: a SCRAM-SHA-256 verifier or a cleartext
    /// password), by SCRAM-SHA-256. Default: trust (no password).
    #[arg(long)]
    sql_users: Option<PathBuf>,
    /// Each table PostgreSQL clients create starts in shards of its own
    /// (`spandb demo` turns it on). Off by default: it makes every
    /// transaction that writes a table two-phase (its shard and the
    /// catalog's), which TPC-B pays for (BENCHMARKS.md).
    #[arg(long)]
    sql_split_tables: bool,
}

/// Where a server that joined keeps the id it was given, in its data
/// directory.
pub const JOINED_ID_FILE: &str = "joined-server-id";

/// The id of this server, which joins the cluster of the server at
/// `join`: from [`JOINED_ID_FILE`] if it joined before, else asked of
/// `join` (`Peer.Join`) and written there.
async fn join_cluster(config: &ServerConfig, join: &str) -> anyhow::Result<ServerId> {
    let listen = config
        .listen
        .clone()
        .context("--join needs --listen HOST:PORT: the address the other servers and clients will reach this one at")?;
    let file = config.data_dir.join(JOINED_ID_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let id =
                text.trim().parse::<u64>().with_context(|| format!("{} does not hold a server id", file.display()))?;
            return Ok(ServerId(id));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", file.display())),
    }
    let cluster = match (&config.cluster, &config.cluster_file) {
        (Some(c), _) => c.clone(),
        (None, Some(path)) => meta::ClusterSpec::load(path)?,
        (None, None) => bail!("--join needs the cluster description (--cluster FILE)"),
    };
    let id = spanserver::directory::ask_to_join(&cluster, join, &listen).await.map_err(anyhow::Error::msg)?.0;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{id}\n")).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
    eprintln!("joined cluster {:?} as server {id}", cluster.cluster_id);
    Ok(ServerId(id))
}

/// How far the default PostgreSQL port is from the gRPC port.
const SQL_PORT_OFFSET: u16 = 1000;

fn server_config(args: StartArgs) -> anyhow::Result<ServerConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            ServerConfig::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => {
            let (Some(id), Some(data_dir)) = (args.id.or(args.join.as_ref().map(|_| 0)), args.data_dir.clone()) else {
                bail!("give --config FILE, or --id (or --join ADDR), --cluster and --data-dir");
            };
            ServerConfig {
                id: ServerId(id),
                data_dir,
                listen: None,
                cluster: None,
                cluster_file: None,
                raft: Default::default(),
                gc: Default::default(),
                split: Default::default(),
                placement: Default::default(),
                time: Default::default(),
                peer_addrs: Default::default(),
                admin: Default::default(),
                unsafe_testing: Default::default(),
                joined: false,
            }
        }
    };
    if let Some(id) = args.id {
        config.id = ServerId(id);
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(cluster) = args.cluster {
        config.cluster = None;
        config.cluster_file = Some(cluster);
    }
    if let Some(listen) = args.listen {
        config.listen = Some(listen);
    }
    if let Some(eps) = args.epsilon_ms {
        config.time.epsilon_ms = eps;
    }
    if args.admin_tools {
        config.admin.tools = true;
    }
    Ok(config)
}

pub async fn run(args: StartArgs) -> anyhow::Result<()> {
    crate::init_logging("info,raft=warn");
    let sql_addr = args.sql_addr.clone();
    let split_tables = args.sql_split_tables;
    let users = match &args.sql_users {
        Some(path) => Some(Arc::new(crate::pg::auth::Users::load(path)?)),
        None => None,
    };
    let join = args.join.clone();
    let mut config = server_config(args)?;
    if let Some(join) = join {
        config.id = join_cluster(&config, &join).await?;
        config.joined = true;
    }
    let config = config.resolve()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let pid_file = PidFile::claim(&config.data_dir)?;
    let clock = Arc::new(truetime::SystemClock::new());
    let placement = config.placement.clone();
    // The servers measure load over this interval: let two pass after a
    // transfer for load.
    let load_settle = 2 * config.split.check_interval();
    let peer_secret = client::PeerSecret::new(&config.cluster.peer_secret);
    let server = Server::start(config, clock, TransportKind::Grpc, None).await?;
    eprintln!("spanserver {} listening on {}", server.server_id, server.local_addr);
    let driver = placement.enabled.then(|| {
        let mut settings = placement::Settings::new(placement.dead_after(), placement.operations_max, load_settle);
        settings.stray_learner_after = placement.stray_learner_after();
        settings.preferred_leader = placement.preferred_leader.map(ServerId);
        let registry = server.registry.clone();
        let publish = Box::new(move |operations| registry.set_placement_operations(operations));
        let (addr, secret) = (server.local_addr.to_string(), peer_secret.clone());
        placement::Driver::spawn(addr, secret, placement.interval(), settings, publish)
    });
    let gateway = match sql_listener(sql_addr.as_deref(), server.local_addr).await? {
        Some(listener) => {
            eprintln!("spanserver {} serving PostgreSQL clients on {}", server.server_id, listener.local_addr()?);
            let cluster = crate::pg::Cluster {
                seed: server.local_addr.to_string(),
                local: client::Transport::in_process(server.routes.clone())
                    .with_kv(server.kv.clone())
                    .with_txn(server.txn.clone()),
                peer_secret,
            };
            Some(tokio::spawn(crate::pg::serve(listener, cluster, users, split_tables)))
        }
        None => None,
    };
    harness::process::wait_for_stop_signal().await?;
    if let Some(driver) = driver {
        driver.abort();
    }
    if let Some(gateway) = gateway {
        gateway.abort();
    }
    server.shutdown().await;
    drop(pid_file);
    Ok(())
}

/// The PostgreSQL listener `--sql-addr` asks for; by default the gRPC
/// port plus [`SQL_PORT_OFFSET`] on the same host, skipped (with a
/// warning) if that port is taken.
async fn sql_listener(asked: Option<&str>, grpc: std::net::SocketAddr) -> anyhow::Result<Option<TcpListener>> {
    match asked {
        Some("off") => Ok(None),
        Some(addr) => {
            Ok(Some(TcpListener::bind(addr).await.with_context(|| format!("listening for PostgreSQL on {addr}"))?))
        }
        None => {
            let Some(port) = grpc.port().checked_add(SQL_PORT_OFFSET) else { return Ok(None) };
            let addr = std::net::SocketAddr::new(grpc.ip(), port);
            match TcpListener::bind(addr).await {
                Ok(listener) => Ok(Some(listener)),
                Err(e) => {
                    eprintln!("not serving PostgreSQL clients: cannot listen on {addr} ({e}); give --sql-addr");
                    Ok(None)
                }
            }
        }
    }
}

/// `DATA_DIR/spandb.pid`, removed when dropped.
struct PidFile {
    path: PathBuf,
}

impl PidFile {
    fn claim(dir: &Path) -> anyhow::Result<PidFile> {
        let path = dir.join("spandb.pid");
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(pid) = text.trim().parse::<i32>() {
                if pid != std::process::id() as i32 && harness::process::alive(pid) {
                    bail!("{} is in use by process {pid} (see {})", dir.display(), path.display());
                }
            }
        }
        std::fs::write(&path, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(PidFile { path })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
