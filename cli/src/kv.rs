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
        #[arg(long, conflicts_with = "max_staleness")]
        at: Option<String>,
        /// Read the freshest snapshot any replica has that is at most this
        /// old (e.g. 500ms, 10s): no trip to the leader.
        #[arg(long)]
        max_staleness: Option<String>,
    },
    /// Delete KEY; prints the commit timestamp.
    Del { key: String },
    /// Print the pairs with keys in [START, END), one per line, tab-separated.
    Scan {
        start: Option<String>,
        end: Option<String>,
        /// Read a snapshot at this timestamp (RFC 3339 or nanoseconds).
        #[arg(long, conflicts_with = "max_staleness")]
        at: Option<String>,
        /// Read the freshest snapshot at most this old (e.g. 500ms, 10s).
        #[arg(long)]
        max_staleness: Option<String>,
        /// At most this many pairs.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Run a script of operations as one read-write transaction: one per
    /// line (or separated by ';'), from -e or stdin: `get K`, `put K V`,
    /// `del K`, `scan [START [END]]`, and `commit` (or `rollback`). Prints
    /// each read and the commit timestamp (in the form --at accepts).
    /// Retried from the start if the transaction is aborted.
    Txn {
        /// The script (default: read it from stdin).
        #[arg(short = 'e', long = "execute")]
        script: Option<String>,
    },
}

/// One operation of a `kv txn` script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TxnOp {
    Get(String),
    Put(String, String),
    Del(String),
    Scan(String, String),
    Commit,
    Rollback,
}

/// Most operations in one `kv txn` script.
const TXN_SCRIPT_OPS_MAX: usize = 10_000;

fn parse_script(text: &str) -> anyhow::Result<Vec<TxnOp>> {
    let mut ops = Vec::new();
    for (n, line) in text.split(['\n', ';']).enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let op = match words.as_slice() {
            [] => continue,
            [w, ..] if w.starts_with('#') => continue,
            ["get", k] => TxnOp::Get(k.to_string()),
            ["put", k, v] => TxnOp::Put(k.to_string(), v.to_string()),
            ["del", k] => TxnOp::Del(k.to_string()),
            ["scan"] => TxnOp::Scan(String::new(), String::new()),
            ["scan", a] => TxnOp::Scan(a.to_string(), String::new()),
            ["scan", a, b] => TxnOp::Scan(a.to_string(), b.to_string()),
            ["commit"] => TxnOp::Commit,
            ["rollback"] => TxnOp::Rollback,
            _ => anyhow::bail!(
                "script line {}: {line:?} is not get K, put K V, del K, scan [S [E]], commit or rollback",
                n + 1
            ),
        };
        if matches!(ops.last(), Some(TxnOp::Commit | TxnOp::Rollback)) {
            anyhow::bail!("script line {}: nothing may follow commit or rollback", n + 1);
        }
        ops.push(op);
        if ops.len() > TXN_SCRIPT_OPS_MAX {
            anyhow::bail!("at most {TXN_SCRIPT_OPS_MAX} operations per script");
        }
    }
    Ok(ops)
}

/// Parses durations like `250ms`, `10s`, `2m`.
fn parse_duration(text: &str) -> anyhow::Result<std::time::Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| anyhow::anyhow!("invalid duration {text:?}: expected e.g. 500ms, 10s, 2m"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        "m" => std::time::Duration::from_secs(n * 60),
        _ => anyhow::bail!("invalid duration {text:?}: units are ms, s, m"),
    })
}

fn read_mode(at: &Option<String>, max_staleness: &Option<String>) -> anyhow::Result<ReadMode> {
    match (at, max_staleness) {
        (Some(text), _) => Ok(ReadMode::At(text.parse::<Timestamp>()?)),
        (None, Some(d)) => Ok(ReadMode::MaxStaleness(parse_duration(d)?)),
        (None, None) => Ok(ReadMode::Latest),
    }
}

/// Runs a script as one transaction (again from the start if aborted).
async fn run_script(client: &Client, ops: Vec<TxnOp>, out: &mut dyn Write) -> anyhow::Result<()> {
    let commit = matches!(ops.last(), Some(TxnOp::Commit));
    for attempt in 1..=client::txn::RUN_ATTEMPTS_MAX {
        let mut txn = client.begin();
        let mut printed = Vec::new();
        let mut result: client::Result<()> = Ok(());
        for op in &ops {
            result = match op {
                TxnOp::Get(k) => txn.get(k.as_bytes()).await.map(|v| match v {
                    Some(v) => printed.push(format!("{}\t{}", display::bytes(k.as_bytes()), display::bytes(&v))),
                    None => printed.push(format!("{}\t(not found)", display::bytes(k.as_bytes()))),
                }),
                TxnOp::Scan(a, b) => txn.scan(a.as_bytes(), b.as_bytes(), 1000).await.map(|kvs| {
                    for kv in kvs {
                        printed.push(format!("{}\t{}", display::bytes(&kv.key), display::bytes(&kv.value)));
                    }
                }),
                TxnOp::Put(k, v) => {
                    txn.put(k.as_bytes(), v.as_bytes());
                    Ok(())
                }
                TxnOp::Del(k) => {
                    txn.delete(k.as_bytes());
                    Ok(())
                }
                TxnOp::Commit | TxnOp::Rollback => Ok(()),
            };
            if result.is_err() {
                break;
            }
        }
        let outcome = match result {
            Err(e) => {
                let _ = txn.rollback().await;
                Err(e)
            }
            Ok(()) if commit => txn.commit().await.map(Some),
            Ok(()) => txn.rollback().await.map(|_| None),
        };
        match outcome {
            Err(client::Error::Aborted(why)) => {
                eprintln!("attempt {attempt} aborted ({why}); running the script again");
                continue;
            }
            Err(e) => return Err(e.into()),
            Ok(ts) => {
                for line in printed {
                    writeln!(out, "{line}")?;
                }
                match ts {
                    Some(ts) => writeln!(out, "COMMITTED {ts}")?,
                    None => writeln!(out, "ROLLED BACK")?,
                }
                return Ok(());
            }
        }
    }
    anyhow::bail!("the transaction was aborted {} times in a row", client::txn::RUN_ATTEMPTS_MAX)
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
        KvCommand::Get { key, at, max_staleness } => {
            let mode = read_mode(at, max_staleness)?;
            match client.get_with(key.as_bytes(), mode).await?.value {
                Some(v) => writeln!(out, "{}", display::bytes(&v.value))?,
                None => eprintln!("(not found)"),
            }
        }
        KvCommand::Scan { start, end, at, max_staleness, limit } => {
            let mode = read_mode(at, max_staleness)?;
            let start = start.as_deref().unwrap_or("").as_bytes();
            let end = end.as_deref().unwrap_or("").as_bytes();
            for kv in client.scan(start, end, *limit, mode).await? {
                writeln!(out, "{}\t{}", display::bytes(&kv.key), display::bytes(&kv.value))?;
            }
        }
        KvCommand::Txn { script } => {
            let text = match script {
                Some(s) => s.clone(),
                None => std::io::read_to_string(std::io::stdin()).context("reading the script from stdin")?,
            };
            let ops = parse_script(&text)?;
            if ops.is_empty() {
                anyhow::bail!("the script is empty");
            }
            run_script(client, ops, out).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_and_bad_ones_say_where() {
        let ops = parse_script("get a\nput b 1; del c\n\n# note\nscan a z\ncommit").unwrap();
        assert_eq!(
            ops,
            vec![
                TxnOp::Get("a".into()),
                TxnOp::Put("b".into(), "1".into()),
                TxnOp::Del("c".into()),
                TxnOp::Scan("a".into(), "z".into()),
                TxnOp::Commit
            ]
        );
        assert!(parse_script("get").unwrap_err().to_string().contains("line 1"));
        assert!(parse_script("commit\nget a").unwrap_err().to_string().contains("nothing may follow"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), std::time::Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), std::time::Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), std::time::Duration::from_secs(120));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
