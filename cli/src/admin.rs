//! `spandb admin`: operator commands against a running cluster.
//!
//! Each changes the cluster, so each needs the cluster's peer secret
//! (`spanserver::auth`): operators pass the cluster description the
//! servers run with (`--cluster FILE`), as `spandb start` takes it.
//!
//! ```text
//!   spandb admin --addr 127.0.0.1:7000 --cluster DIR/cluster.toml split apple
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use client::{Client, ClientConfig};

use crate::display;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Any server of the cluster (host:port).
    #[arg(long)]
    addr: String,
    /// The cluster description the servers run with (`spandb demo`
    /// writes DIR/cluster.toml): its peer secret lets these commands
    /// change the cluster.
    #[arg(long)]
    cluster: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Splits the shard holding KEY at KEY: the keys from KEY on move to a
    /// new shard, with a replica beside each of the shard's. Refused,
    /// changing nothing, at a shard's first key.
    Split {
        /// The first key of the new shard.
        key: String,
    },
    /// Moves SHARD's replica on server FROM to server TO: a learner on TO
    /// caught up by snapshot, then one joint configuration that promotes
    /// it and demotes FROM's, then FROM's removed (its data deleted).
    /// Transactions go on throughout; run it again to finish a move that
    /// was cut short.
    Move {
        /// The shard id (`spandb status` lists them).
        shard: u64,
        /// The server whose replica leaves.
        from: u64,
        /// The server that gets one (it must have none of this shard).
        to: u64,
    },
    /// Decommissions SERVER: marks it draining, so the placement driver
    /// moves every replica it holds to other servers and places none
    /// there; then waits until it holds none (unless --no-wait). Refused,
    /// changing nothing, if too few other servers answer to hold every
    /// shard's replicas. `recommission` undoes it.
    Decommission {
        server: u64,
        /// Return once marked, without waiting for the replicas to leave.
        #[arg(long)]
        no_wait: bool,
        /// How long to wait for the replicas to leave, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
    /// Marks a decommissioned SERVER active again: replicas may be placed
    /// on it (the driver balances them back over time).
    Recommission { server: u64 },
}

fn show(d: &proto::ShardDescriptor) -> String {
    let replicas: Vec<String> = d
        .replicas
        .iter()
        .map(|r| {
            let role = match r.role() {
                proto::ReplicaRole::Voter => "",
                proto::ReplicaRole::Learner => " (learner)",
                proto::ReplicaRole::IncomingVoter => " (incoming voter)",
                proto::ReplicaRole::DemotingVoter => " (demoting voter)",
            };
            format!("r{}@s{}{role}", r.replica_id, r.server_id)
        })
        .collect();
    format!(
        "shard {} {} rv{} cv{} replicas {}",
        d.shard_id,
        display::range(&d.start_key, &d.end_key),
        d.range_ver,
        d.conf_ver,
        replicas.join(" ")
    )
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    let config = operator_config(&args.cluster)?;
    let client = Client::connect_with([args.addr.clone()], config)
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    match args.command {
        AdminCommand::Split { key } => {
            let (left, right) = client.split_at(key.as_bytes()).await?;
            for d in [left, right] {
                println!("{}", show(&d));
            }
            Ok(())
        }
        AdminCommand::Decommission { server, no_wait, timeout_s } => {
            let draining = client.set_draining(meta::ServerId(server), true).await?;
            println!("draining servers: {}", servers(&draining));
            if !no_wait {
                wait_until_drained(&client, server, std::time::Duration::from_secs(timeout_s)).await?;
            }
            Ok(())
        }
        AdminCommand::Recommission { server } => {
            let draining = client.set_draining(meta::ServerId(server), false).await?;
            println!("draining servers: {}", servers(&draining));
            Ok(())
        }
        AdminCommand::Move { shard, from, to } => {
            let d = client.move_replica(meta::ShardId(shard), meta::ServerId(from), meta::ServerId(to)).await?;
            println!("{}", show(&d));
            Ok(())
        }
    }
}

/// A client configuration that may change the cluster: with the peer
/// secret of the cluster description at `cluster_file`.
pub fn operator_config(cluster_file: &Path) -> anyhow::Result<ClientConfig> {
    let spec =
        meta::ClusterSpec::load(cluster_file).with_context(|| format!("--cluster {}", cluster_file.display()))?;
    Ok(ClientConfig { peer_secret: Some(client::PeerSecret::new(&spec.peer_secret)), ..Default::default() })
}

fn servers(ids: &[meta::ServerId]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter().map(|s| format!("s{}", s.0)).collect::<Vec<_>>().join(" ")
}

/// Waits until no shard names `server`, saying how many replicas it
/// still holds whenever that changes.
async fn wait_until_drained(client: &Client, server: u64, timeout: std::time::Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        let map = client.shard_map().await?;
        let held = map.values().filter(|d| d.replicas.iter().any(|r| r.server_id == server)).count();
        if last != Some(held) {
            println!("server {server} holds {held} replicas");
            last = Some(held);
        }
        if held == 0 {
            println!("server {server} is drained: it can be stopped");
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "server {server} still holds {held} replicas after {timeout:?} (the placement driver moves them; is it running?)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
