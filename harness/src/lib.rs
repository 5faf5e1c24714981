//! `spandb jepsen`: Jepsen-style verification as a product command.
//!
//! A run starts a real cluster, has client workers hammer it while a
//! nemesis kills, pauses, partitions and skews it from the outside,
//! records every operation the clients attempted, heals the cluster, and
//! asks the `jepsen` crate's checkers whether a correct database could have
//! produced that history. The answer is one line (`valid`, `invalid:
//! KINDS`, `unknown: WHY`) and the exit code is 0 only for `valid`.
//!
//! ```text
//!   spandb jepsen --workload register --nemesis partition,kill --out DIR
//!   ┌──────────────────────────── one process ─────────────────────────────┐
//!   │ workers p0..pC-1 ──client (gRPC)──────────► s1    s2    s3           │
//!   │   │ invoke / complete                       │ ▲   │ ▲   │ ▲          │
//!   │   ▼                                         ▼ │   ▼ │   ▼ │ Raft     │
//!   │ Recorder ◄── nemesis events          proxy 1->2, 1->3, 2->1, ...     │
//!   │   │            ▲                       (cut / restore, per link)     │
//!   │   │         nemesis ── SIGKILL, SIGSTOP/SIGCONT (by pid) ──► s1..s3  │
//!   │   │                 ── SetClock (admin gRPC) ──────────────► s1..s3  │
//!   └───┼──────────────────────────────────────────────────────────────────┘
//!       ▼   after the time limit: heal -> recover -> final reads -> stop
//!   DIR/history.jsonl ──► checkers ──► DIR/summary.json, DIR/report.html
//!                                  └─► stdout: "valid"  (exit 0)
//! ```
//!
//! The servers are `spandb start` child processes on loopback (`cluster.rs`);
//! each server's `peer_addrs` sends its Raft traffic to every peer through
//! a TCP proxy the harness owns (`proxy.rs`), so a partition is a cut at
//! the TCP level, outside the servers. Clients and admin calls are never
//! cut. With `--addr` the run uses a cluster it did not start: it cannot
//! signal those processes or cut their links, so only the nemeses that act
//! through the admin API (clock, leader-transfer) are allowed there.
//!
//! # A run, with numbers
//!
//! `--nemesis partition,kill --interval 5 --time-limit 30 --concurrency 5`:
//!
//! ```text
//!   t=0    5 workers start (processes 0..4), each invoking ops back to back
//!   t=5    start-partition {"shape":"ring","cut":["1->3","2->1","3->2"]}
//!   t=10   stop-partition                        (every link restored)
//!   t=15   start-kill {"nodes":[2],"targets":"leader of shard 3"}
//!   t=20   stop-kill {"restarted":[2]}           (from OUT/cluster/s2.toml)
//!   t=25   start-partition {"shape":"halves",...}
//!   t=30   workers stop invoking; stop-partition (the final heal);
//!          in-flight ops finish; wait until every shard has one stable
//!          leader; the set workload's final read; servers stopped;
//!          check -> "valid"
//! ```
//!
//! # Nemeses (acting from outside the servers)
//!
//! | nemesis | start | stop | from where |
//! |---|---|---|---|
//! | `kill` | SIGKILL one node, a minority, or a shard's leader | restart from its config | the harness, by child pid |
//! | `pause` | SIGSTOP the same choice of targets | SIGCONT | the harness, by child pid |
//! | `partition` | cut the links of a shape: isolate-one, halves, bridge, ring (overlapping majorities) | restore all links | the link proxies |
//! | `clock` | `SetClock`, in turn: a leader-ahead (one shard's leader ahead, every other server behind), bumps, 50 ms strobes; within 9/10 epsilon (`--beyond-epsilon`: 10 to 250 epsilons, a minority of the servers) | offsets and drift to 0 | the admin gRPC API |
//! | `leader-transfer` | `TransferLeader` of a random shard to a random other replica | nothing to undo | the admin gRPC API |
//! | `split` | `SplitShard` just below the most recently written workload key of a random letter | nothing to undo | the admin gRPC API |
//! | `move` | move a random shard's voter to a server without a replica (`--nodes 5`: 3 replicas a shard) | nothing to undo | the admin gRPC API (`Client::move_replica`) |
//!
//! One fault at a time, a step every `--interval` seconds, alternating
//! start and stop, the kinds round-robin (`nemesis/mod.rs`). Each step is a
//! nemesis event in the history: `process: -1`, `type: info`,
//! `f: start-KIND | stop-KIND`, a value describing the fault; `heal` (what
//! the final sweep had to fix) and `nemesis-error` (a step that failed)
//! complete the vocabulary.
//!
//! # Recording (`recorder.rs`, `workload/mod.rs`)
//!
//! A worker records `invoke` just before it sends an op and its completion
//! just after it learns the outcome, so the op took effect (if at all)
//! inside the recorded interval:
//!
//! - `ok`: it happened (writes carry the server's `commit_ts`; single-key
//!   reads the `read_ts` they were served at and the `version_ts` of the
//!   version they returned);
//! - `fail`: it certainly did not: a cas whose comparison failed, a write
//!   refused with `Unavailable` (the client retries only failures that
//!   prove nothing was applied), and every read that did not return (a read
//!   that did not return observed nothing);
//! - `info`: unknown: `Ambiguous`, or no answer in time. It may take effect
//!   at any later moment, or never.
//!
//! # Invariants
//!
//! - Process ids are never reused after `info`: worker `w` starts as
//!   process `w` and continues as `p + concurrency` (`recorder.rs`,
//!   tested); the `jepsen` crate refuses a history that breaks this.
//! - Event indexes are dense and times never decrease: both are taken
//!   under one lock (`recorder.rs`).
//! - At the end everything is healed: the active fault is stopped, then a
//!   sweep resumes every paused server, restarts every dead one, restores
//!   every link and resets every clock the nemesis set (a server killed
//!   since then runs a new process, whose clock is true)
//!   (`nemesis/driver.rs`), before recovery is awaited and final reads run.
//! - Only `valid` passes. A crash of a server the nemesis did not kill, a
//!   cluster that does not recover after healing, or a failed nemesis step
//!   also fail the run, with a line each, whatever the checkers said.
//!
//! # Limits
//!
//! Every bound is in [`limits`]: 3 or 5 nodes, at most 256 workers and
//! 24 h, client ops give up after 5 s, recovery after 60 s, at most 4
//! million history events, 100 ops per register key, 8 bank accounts, 8
//! live list-append keys of at most 32 appends each.
//!
//! # Caveats
//!
//! - Harness and servers share one machine, one clock, and (on small
//!   machines) a couple of cores: the history's real time is exact, but the
//!   load is not a production one.
//! - Partitions cut Raft traffic only; clients always reach every server.
//!   Cuts are per direction: with 3 nodes the `ring` leaves no pair that
//!   hears each other both ways, so no shard can commit while it lasts (a
//!   gap on the timeline, by design: safety under the strangest loss).
//! - A paused leader holds every op sent to it for the whole client
//!   deadline (5 s; the client has no shorter per-attempt timeout), so a
//!   pause stalls most workers for its duration.
//! - The `external` checker runs on every workload: for `register` and
//!   `set` it checks the single-key writes' `commit_ts`, for the
//!   transactional workloads the commits' (a commit acknowledged before
//!   another began must have a smaller timestamp, on any shard).
//! - `register` reads come in every kind a user can issue (leader,
//!   read-only at a follower first, snapshot at a timestamp, bounded
//!   staleness; `workload/register.rs`). The `linearizable` checker judges
//!   leader and read-only reads by real time; `timestamped` judges every
//!   read by the commit timestamps (`jepsen::checker::timestamped`).
//! - Deliberately broken servers, to show the checkers can fail:
//!   `--unsafe-stale-reads-ms` (reads served in the past; caught by
//!   `register`), `--unsafe-skip-commit-wait` (answers before
//!   `TT.after(commit_ts)`; caught by `timestamps` under `--nemesis clock
//!   --epsilon-ms 50`, where clock offsets dwarf the local commit latency
//!   that otherwise hides the missing wait), `--unsafe-skip-visibility-wait`
//!   (reads reveal a commit before its commit-wait ends; caught by
//!   `register --nemesis clock --epsilon-ms 100 --concurrency 12`: a
//!   split puts a leader ahead of its followers, and a read-only read at a
//!   follower, begun after a leader read returned a new value, returns the
//!   old one: `nonlinearizable` and `read-ts-inversion`) and
//!   `--unsafe-ignore-clock-health` (servers keep serving on a clock
//!   beyond epsilon; caught by `register --nemesis clock
//!   --beyond-epsilon`, which correct servers pass by refusing).
//! - `bank`, `list-append` and `timestamps` attempt each transaction once
//!   (`workload/mod.rs`); a wounded transaction is `fail`, so under
//!   contention many ops fail: that is wound-wait working, not an outage.
//! - `move` needs servers without a replica of a shard: `--nodes 5`
//!   (shards of 3 replicas); it is refused with one line on 3 nodes, and
//!   left out of `all`. The placement driver's nemeses (`merge`,
//!   `decommission`, `placement-kill`) wait for the driver.
//! - A Ctrl-C (or SIGTERM) during the run ends it early: the harness heals,
//!   stops the servers and checks what it recorded (and fails the run).
//!   Later signals are ignored until the check is done. A SIGKILLed
//!   harness leaves its servers running (they are in their own process
//!   group, so that a terminal's Ctrl-C reaches only the harness); their
//!   pids are in `OUT/cluster/sN/spandb.pid`.

mod admin;
mod check;
mod cluster;
pub mod limits;
mod nemesis;
mod options;
pub mod process;
mod proxy;
mod recorder;
mod runner;
pub mod servers;
mod workload;

pub use check::CheckArgs;
pub use options::RunArgs;

/// `spandb jepsen [OPTIONS] | spandb jepsen check DIR`.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JepsenArgs {
    #[command(subcommand)]
    command: Option<JepsenCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand)]
enum JepsenCommand {
    /// Re-check a saved run's history; rewrites its summary and report.
    Check(CheckArgs),
}

/// Runs `spandb jepsen` with `args` (the caller sets up logging).
pub async fn run(args: JepsenArgs) -> anyhow::Result<()> {
    match args.command {
        Some(JepsenCommand::Check(check_args)) => {
            let (line, valid) = check::recheck(&check_args)?;
            println!("{line}");
            if !valid {
                let report = check_args.dir().join(check::REPORT_FILE);
                anyhow::bail!("the history is not valid; see {}", report.display());
            }
            Ok(())
        }
        None => {
            let options = options::RunOptions::from_args(&args.run, rand::random())?;
            let report = options.out.join(check::REPORT_FILE);
            let outcome = runner::run(options).await?;
            println!("{}", outcome.verdict_line);
            for problem in &outcome.problems {
                eprintln!("jepsen: problem: {problem}");
            }
            match (outcome.valid, outcome.problems.len()) {
                (true, 0) => Ok(()),
                (false, _) => anyhow::bail!("the history is not valid; see {}", report.display()),
                (true, n) => {
                    anyhow::bail!("the history is valid, but the run had {n} problem(s); see {}", report.display())
                }
            }
        }
    }
}
