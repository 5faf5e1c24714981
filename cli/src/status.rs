//! `spandb status`: the cluster as its servers see it.

use std::fmt::Write as _;

use anyhow::Context;
use client::{Client, Timestamp};

use crate::display;

pub async fn run(addr: &str) -> anyhow::Result<()> {
    crate::init_logging("error");
    let client = Client::connect([addr.to_string()]).await.with_context(|| format!("connecting to {addr}"))?;
    print!("{}", render(&client).await?);
    Ok(())
}

/// The status report: servers (with their disks), then one line per
/// replica (sizes and loads are the leader's alone that count: followers
/// serve only the reads sent to them), the replicas leaders find down or
/// waiting for a snapshot, then what the placement driver is doing.
pub async fn render(client: &Client) -> anyhow::Result<String> {
    let info = client.cluster_info().await?;
    // Every server's shards, not only the ones the answering server holds.
    let shards = client.shard_map().await.map_or(info.shards.len(), |m| m.len());
    // Unknown (the system shard unreachable): none shown as draining.
    let draining = client.draining_servers().await.unwrap_or_default();
    let mut out = String::new();
    writeln!(out, "cluster {}: {} servers, {shards} shards", info.cluster_id, info.servers.len())?;
    let mut statuses = Vec::new();
    writeln!(out, "\n{:<7} {:<22} STATE", "SERVER", "ADDRESS")?;
    for s in &info.servers {
        let status = client.server_status(&s.addr).await;
        let drain = if draining.contains(&meta::ServerId(s.server_id)) { "draining, " } else { "" };
        let state = match &status {
            Ok(st) => {
                let disk = match st.capacity_bytes {
                    0 => String::new(),
                    n => format!(", disk {} free of {}", display::size(st.available_bytes), display::size(n)),
                };
                format!("up, {drain}{} replicas{disk}; clock {}", st.replicas.len(), st.clock)
            }
            Err(e) => format!("unreachable, {drain}({e})"),
        };
        writeln!(out, "s{:<6} {:<22} {}", s.server_id, s.addr, state)?;
        if let Ok(st) = status {
            statuses.push(st);
        }
    }
    writeln!(
        out,
        "\n{:<6} {:<20} {:<7} {:<8} {:<7} {:<17} {:>5} {:<7} {:>9} {:>9} {:>9} {:>10} {:>8} {:>7} {:>8}  SAFE_TS",
        "SHARD",
        "RANGE",
        "EPOCH",
        "REPLICA",
        "SERVER",
        "ROLE",
        "TERM",
        "LEADER",
        "COMMITTED",
        "APPLIED",
        "SNAPSHOTS",
        "SIZE",
        "KEYS",
        "READS/S",
        "WRITES/S"
    )?;
    let mut rows = Vec::new();
    for st in &statuses {
        for r in &st.replicas {
            rows.push((r.shard_id, st.server_id, r.clone()));
        }
    }
    rows.sort_by_key(|(shard, server, _)| (*shard, *server));
    for (shard, server, r) in rows {
        let leader = if r.leader_server_id == 0 { "-".to_string() } else { format!("s{}", r.leader_server_id) };
        writeln!(
            out,
            "{:<6} {:<20} {:<7} {:<8} {:<7} {:<17} {:>5} {:<7} {:>9} {:>9} {:>9} {:>10} {:>8} {:>7.0} {:>8.0}  {}",
            shard,
            display::range(&r.start_key, &r.end_key),
            format!("rv{} cv{}", r.range_ver, r.conf_ver),
            format!("r{}", r.replica_id),
            format!("s{server}"),
            // The Raft role, and the membership role unless a voter's.
            match r.membership.as_str() {
                "voter" | "" => r.role.clone(),
                m => format!("{} {m}", r.role),
            },
            r.term,
            leader,
            r.committed_index,
            r.applied_index,
            r.snapshots_installed,
            display::size(r.estimated_bytes),
            r.keys.map_or("-".to_string(), |k| k.to_string()),
            r.reads_per_s,
            r.writes_per_s,
            Timestamp::from_nanos(r.safe_ts),
        )?;
    }
    for st in &statuses {
        for r in st.replicas.iter().filter(|r| !r.down_replica_ids.is_empty() || !r.pending_replica_ids.is_empty()) {
            let ids = |ids: &[u64]| ids.iter().map(|id| format!("r{id}")).collect::<Vec<_>>().join(", ");
            let mut seen = Vec::new();
            if !r.down_replica_ids.is_empty() {
                seen.push(format!("{} down", ids(&r.down_replica_ids)));
            }
            if !r.pending_replica_ids.is_empty() {
                seen.push(format!("{} waiting for a snapshot", ids(&r.pending_replica_ids)));
            }
            writeln!(out, "shard {}: its leader on s{} finds {}", r.shard_id, st.server_id, seen.join("; "))?;
        }
    }
    let operations: Vec<(u64, &String)> =
        statuses.iter().flat_map(|st| st.placement_operations.iter().map(move |op| (st.server_id, op))).collect();
    if operations.is_empty() {
        writeln!(out, "\nplacement: no operation running")?;
    } else {
        writeln!(out, "\nplacement: {} operation(s) running", operations.len())?;
        for (server, op) in operations {
            writeln!(out, "  {op} (driver on s{server})")?;
        }
    }
    // A replica's data leaves with it; anything else is a bug to see.
    for st in statuses.iter().filter(|st| !st.stray_keys.is_empty()) {
        let keys: Vec<String> = st.stray_keys.iter().map(|k| display::bytes(k)).collect();
        writeln!(out, "s{}: stores data outside its replicas, from keys {}", st.server_id, keys.join(", "))?;
    }
    Ok(out)
}
