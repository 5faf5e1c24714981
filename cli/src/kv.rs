//! `spandb kv`: one key-value command against a running cluster; the shell
//! runs the same commands.

use std::io::Write;

use anyhow::Context;
use client::{Client, ReadMode, Timestamp};

use crate::display;

#[derive(clap::Args)]
pub struct KvArgs {
    /// Any server of the cluster (host:port).
    #[arg(long)]
    addr: String,
    #[command(subcommand)]
    command: KvCommand,
}

#[derive(clap::Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum KvCommand {
    /// Set KEY to VALUE; prints the commit timestamp.
    Put { key: String, value: String },
    /// Print KEY's value (nothing if it has none).
    Get {
        key: String,
        /// Read a snapshot at this timestamp (RFC 3339 or nanoseconds)
        /// instead of the latest value.
        #[arg(long)]
        at: Option<String>,
    },
    /// Delete KEY; prints the commit timestamp.
    Del { key: String },
    /// Print the pairs with keys in [START, END), one per line, tab-separated.
    Scan {
        start: Option<String>,
        end: Option<String>,
        /// Read a snapshot at this timestamp (RFC 3339 or nanoseconds).
        #[arg(long)]
        at: Option<String>,
        /// At most this many pairs.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
}

fn read_mode(at: &Option<String>) -> anyhow::Result<ReadMode> {
    match at {
        None => Ok(ReadMode::Latest),
        Some(text) => Ok(ReadMode::At(text.parse::<Timestamp>()?)),
    }
}

/// Runs one command, printing results to `out` (and "(not found)" notes to
/// stderr).
pub async fn execute(client: &Client, command: &KvCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match command {
        KvCommand::Put { key, value } => {
            let ts = client.put(key.as_bytes(), value.as_bytes()).await?;
            writeln!(out, "OK {ts}")?;
        }
        KvCommand::Del { key } => {
            let ts = client.delete(key.as_bytes()).await?;
            writeln!(out, "OK {ts}")?;
        }
        KvCommand::Get { key, at } => {
            let mode = read_mode(at)?;
            match client.get_with(key.as_bytes(), mode).await?.value {
                Some(v) => writeln!(out, "{}", display::bytes(&v.value))?,
                None => eprintln!("(not found)"),
            }
        }
        KvCommand::Scan { start, end, at, limit } => {
            let mode = read_mode(at)?;
            let start = start.as_deref().unwrap_or("").as_bytes();
            let end = end.as_deref().unwrap_or("").as_bytes();
            for kv in client.scan(start, end, *limit, mode).await? {
                writeln!(out, "{}\t{}", display::bytes(&kv.key), display::bytes(&kv.value))?;
            }
        }
    }
    Ok(())
}

pub async fn run(args: KvArgs) -> anyhow::Result<()> {
    crate::init_logging("error");
    let client = Client::connect([args.addr.clone()]).await.with_context(|| format!("connecting to {}", args.addr))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    execute(&client, &args.command, &mut out).await
}
