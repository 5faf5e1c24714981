//! `spandb admin`: operator commands against a running cluster.

use anyhow::Context;
use client::Client;

use crate::display;

#[derive(clap::Args)]
pub struct AdminArgs {
    /// Any server of the cluster (host:port).
    #[arg(long)]
    addr: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum AdminCommand {
    /// Splits the shard holding KEY at KEY: the keys from KEY on move to a
    /// new shard, with a replica beside each of the shard's. Refused,
    /// changing nothing, at a shard's first key, or while a prepared
    /// transaction holds keys that would move.
    Split {
        /// The first key of the new shard.
        key: String,
    },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    let client = Client::connect([args.addr.clone()]).await.with_context(|| format!("connecting to {}", args.addr))?;
    match args.command {
        AdminCommand::Split { key } => {
            let (left, right) = client.split_at(key.as_bytes()).await?;
            for d in [left, right] {
                println!(
                    "shard {} {} rv{} cv{} replicas {}",
                    d.shard_id,
                    display::range(&d.start_key, &d.end_key),
                    d.range_ver,
                    d.conf_ver,
                    d.replicas
                        .iter()
                        .map(|r| format!("r{}@s{}", r.replica_id, r.server_id))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(())
        }
    }
}
