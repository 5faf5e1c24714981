//! One run, start to verdict (the shell around the pure parts; the module
//! essay in `harness/src/lib.rs` draws it).
//!
//! 1. set up: start the cluster (or connect to `--addr`), read epsilon;
//! 2. run: C workers and the nemesis schedule until the time limit (or
//!    Ctrl-C);
//! 3. heal everything, let in-flight ops finish, wait for recovery;
//! 4. final ops (the set's read), retried until `ok`;
//! 5. stop the cluster; write history, summary, report; check.
//!
//! Whatever fails after the cluster started, the cluster is stopped before
//! the error is returned (and its children are killed if the harness
//! itself unwinds: `kill_on_drop`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use client::{Client, ClientConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::check::{self, HISTORY_FILE, REPORT_FILE};
use crate::cluster::Cluster;
use crate::limits::{
    CLIENT_CONNECT_TIMEOUT, FINAL_OPS_TIMEOUT, HISTORY_EVENTS_MAX, OP_DEADLINE, POLL_INTERVAL, RECOVERY_TIMEOUT,
    SETUP_TIMEOUT,
};
use crate::nemesis::driver::{Nemesis, RunAccess, Target};
use crate::nemesis::{schedule, NemesisKind, Step};
use crate::options::{ClusterChoice, RunOptions};
use crate::recorder::{next_process, Recorder};
use crate::workload::Workload;
use crate::{admin, admin::recovered};

/// What a finished run tells the user.
pub struct RunOutcome {
    /// `valid`, `invalid: ...`, `unknown: ...`.
    pub verdict_line: String,
    pub valid: bool,
    /// What went wrong around the history (crashes, no recovery, nemesis
    /// errors, an interrupted or truncated run); any of them fails the run.
    pub problems: Vec<String>,
}

/// Everything the workers share.
struct Shared {
    workload: Workload,
    recorder: Recorder,
    client: Client,
    concurrency: usize,
}

pub async fn run(options: RunOptions) -> anyhow::Result<RunOutcome> {
    prepare_out_dir(&options.out)?;
    let target = match &options.cluster {
        ClusterChoice::Own { nodes, settings } => {
            eprintln!("jepsen: starting {nodes} servers in {}", options.out.join("cluster").display());
            Target::Own(Cluster::start(&options.out.join("cluster"), *nodes, settings).await?)
        }
        ClusterChoice::Given { addr, .. } => Target::Given(discover(addr).await?),
    };
    let mut target = target;
    let result = run_on(&options, &mut target).await;
    if let Target::Own(cluster) = &mut target {
        cluster.stop().await;
        if matches!(&result, Ok(o) if o.valid && o.problems.is_empty()) {
            cluster.remove_data();
        }
    }
    result
}

/// The out directory must be absent or empty: a run never mixes with
/// another's files.
fn prepare_out_dir(out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries = std::fs::read_dir(out).with_context(|| format!("--out {}", out.display()))?;
        if entries.next().is_some() {
            bail!("--out {} is not empty; give a fresh directory", out.display());
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// The servers of a running cluster, found through any one of them.
async fn discover(addr: &str) -> anyhow::Result<BTreeMap<u64, String>> {
    let config = ClientConfig { connect_timeout: CLIENT_CONNECT_TIMEOUT, ..Default::default() };
    let client = Client::connect_with([addr.to_string()], config)
        .await
        .with_context(|| format!("cannot reach a cluster at --addr {addr}"))?;
    let info = client.cluster_info().await.with_context(|| format!("asking {addr} for the cluster's servers"))?;
    Ok(info.servers.iter().map(|s| (s.server_id, s.addr.clone())).collect())
}

async fn run_on(options: &RunOptions, target: &mut Target) -> anyhow::Result<RunOutcome> {
    let servers = target.servers();
    let shards = match target {
        Target::Own(c) => c.shards(),
        Target::Given(_) => 1,
    };
    let epsilon_ns = if options.nemeses.contains(&NemesisKind::Clock) { admin::epsilon_ns(&servers).await? } else { 0 };
    // The run's client may change the cluster (the split, move, decommission,
    // clock and leader-transfer nemeses act through it or its secret).
    let peer_secret = match (&*target, &options.cluster) {
        (Target::Own(c), _) => Some(c.peer_secret()),
        (Target::Given(_), ClusterChoice::Given { peer_secret, .. }) => peer_secret.clone(),
        (Target::Given(_), ClusterChoice::Own { .. }) => None,
    };
    let config = ClientConfig {
        deadline: OP_DEADLINE,
        connect_timeout: CLIENT_CONNECT_TIMEOUT,
        peer_secret,
        ..Default::default()
    };
    let client = Client::connect_with(servers.values().cloned(), config).await.context("connecting the workers")?;
    let run_id = format!("{:08x}", rand::random::<u32>());
    let workload = Workload::new(options.workload, &run_id, options.concurrency);
    setup(&workload, &client).await?;
    let shared = Arc::new(Shared {
        workload,
        recorder: Recorder::new(HISTORY_EVENTS_MAX),
        client: client.clone(),
        concurrency: options.concurrency,
    });
    let nemesis_names: Vec<&str> = options.nemeses.iter().map(|k| k.as_str()).collect();
    eprintln!(
        "jepsen: {} with {} workers for {} s, nemesis {}, seed {}",
        options.workload.as_str(),
        options.concurrency,
        options.time_limit.as_secs(),
        if nemesis_names.is_empty() { "none".to_string() } else { nemesis_names.join(",") },
        options.seed
    );

    // Run: workers and the nemesis schedule, until the time limit.
    let started = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let workers: Vec<_> = (0..options.concurrency)
        .map(|w| {
            let rng =
                StdRng::seed_from_u64(options.seed.wrapping_add(w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            tokio::spawn(worker(shared.clone(), w, rng, started + options.time_limit, stop_rx.clone()))
        })
        .collect();
    let access = RunAccess { client: client.clone(), run_id: run_id.clone(), workload: options.workload.as_str() };
    let mut nemesis = Nemesis::new(StdRng::seed_from_u64(options.seed), shards, epsilon_ns, options.beyond_epsilon)
        .with_access(access);
    let mut problems = Vec::new();
    let interrupted = {
        let steps = schedule(&options.nemeses, options.interval, options.time_limit);
        let run = run_schedule(&steps, started, options.time_limit, &mut nemesis, target, &shared.recorder);
        let signal = async {
            if crate::process::wait_for_stop_signal().await.is_err() {
                std::future::pending::<()>().await; // no handler: cannot be interrupted
            }
        };
        tokio::select! {
            _ = run => false,
            _ = signal => true,
        }
    };
    if interrupted {
        eprintln!("jepsen: interrupted; healing and checking what was recorded");
        problems.push("the run was interrupted before its time limit".to_string());
    }
    stop_tx.send_replace(true);

    // Heal, let in-flight ops finish, wait for recovery.
    eprintln!("jepsen: healing");
    nemesis.heal(target, &shared.recorder).await;
    let mut final_processes = Vec::new();
    for w in workers {
        final_processes.push(w.await.context("a worker panicked")?);
    }
    let recovery = wait_for_recovery(target).await;
    if let Err(why) = &recovery {
        problems.push(format!("the cluster did not recover after healing: {why}"));
    }
    // Without recovery, one attempt shows what the final reads see; retrying
    // for a minute would only delay the verdict.
    let final_timeout = if recovery.is_ok() { FINAL_OPS_TIMEOUT } else { std::time::Duration::ZERO };
    let mut process = final_processes.first().copied().unwrap_or(0);
    for op in shared.workload.final_ops() {
        process = final_op(&shared, process, &op, final_timeout).await;
    }

    // Stop, write, check.
    if let Target::Own(cluster) = target {
        cluster.stop().await;
        problems.extend(cluster.crashes().iter().cloned());
    }
    problems.extend(nemesis.errors().iter().map(|e| format!("nemesis: {e}")));
    if shared.recorder.is_full() {
        problems.push(format!("the history reached {HISTORY_EVENTS_MAX} events; the workers stopped early"));
    }
    drop(client);
    let shared = Arc::into_inner(shared).context("the workers still hold the recorder")?;
    let history =
        shared.recorder.into_history().context("the recorded history breaks the history rules (a harness bug)")?;
    check::write_history(&options.out, &history)?;
    eprintln!("jepsen: checking {} events ({})", history.len(), options.out.join(HISTORY_FILE).display());
    let verdicts = check::checkers(options.workload, &history);
    let mut extra = serde_json::Map::new();
    extra.insert("workload".into(), Value::from(options.workload.as_str()));
    extra.insert("run".into(), run_description(options, &run_id, epsilon_ns, &servers));
    extra.insert("problems".into(), json!(problems));
    check::write_reports(&options.out, &history, &verdicts, extra)?;
    eprintln!("jepsen: report in {}", options.out.join(REPORT_FILE).display());
    Ok(RunOutcome {
        verdict_line: check::verdict_line(&verdicts),
        valid: jepsen::report::overall(&verdicts) == jepsen::Validity::Valid,
        problems,
    })
}

/// Runs the workload's setup, retrying what may be retried, until
/// [`SETUP_TIMEOUT`].
async fn setup(workload: &Workload, client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    loop {
        match workload.setup(client).await {
            Ok(()) => return Ok(()),
            // Setup runs before any worker: repeating it is harmless.
            Err(e) if Instant::now() < deadline => {
                eprintln!("jepsen: setup failed ({e}); retrying");
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            Err(e) => bail!("the workload's setup did not succeed within {SETUP_TIMEOUT:?}: {e}"),
        }
    }
}

/// Runs the nemesis steps at their times, until the time limit.
async fn run_schedule(
    steps: &[(std::time::Duration, Step)],
    started: Instant,
    time_limit: std::time::Duration,
    nemesis: &mut Nemesis,
    target: &mut Target,
    recorder: &Recorder,
) {
    for &(at, step) in steps {
        tokio::time::sleep_until(started + at).await;
        if let Target::Own(cluster) = target {
            for crash in cluster.take_crashes() {
                eprintln!("jepsen: {crash}");
            }
        }
        match step {
            Step::Start(kind) => nemesis.start(kind, target, recorder).await,
            Step::Stop(_) => nemesis.stop(target, recorder).await,
        }
    }
    tokio::time::sleep_until(started + time_limit).await;
}

/// One worker: invoke, execute, complete, until the deadline or the stop
/// signal; returns the process it ended as.
async fn worker(
    shared: Arc<Shared>,
    worker: usize,
    mut rng: StdRng,
    deadline: Instant,
    stop: watch::Receiver<bool>,
) -> u64 {
    let mut process = worker as u64;
    while Instant::now() < deadline && !*stop.borrow() && !shared.recorder.is_full() {
        let op = shared.workload.next(worker, &mut rng);
        shared.recorder.invoke(process, &op);
        let completion = shared.workload.execute(&shared.client, &op).await;
        let info = completion.op_type == jepsen::OpType::Info;
        shared.recorder.complete(process, &op, completion);
        if info {
            process = next_process(process, shared.concurrency);
        }
    }
    process
}

/// Runs a final op until it is `ok` or `timeout` passes (at least once);
/// returns the process to continue as.
async fn final_op(
    shared: &Shared,
    mut process: u64,
    op: &crate::workload::Invocation,
    timeout: std::time::Duration,
) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        shared.recorder.invoke(process, op);
        let completion = shared.workload.execute(&shared.client, op).await;
        let op_type = completion.op_type;
        shared.recorder.complete(process, op, completion);
        if op_type == jepsen::OpType::Info {
            process = next_process(process, shared.concurrency);
        }
        if op_type == jepsen::OpType::Ok || Instant::now() >= deadline {
            return process;
        }
        tokio::time::sleep(POLL_INTERVAL).await; // back off before retrying
    }
}

/// Polls until every shard has a stable leader, every server answers,
/// the shard map is whole (`admin::placement_problems`) and no server
/// stores data outside its replicas (`admin::stray_data`); gives up after [`RECOVERY_TIMEOUT`], or at once when a server of the
/// harness's own cluster crashes meanwhile.
async fn wait_for_recovery(target: &mut Target) -> Result<(), String> {
    let servers = target.servers();
    let voters = match target {
        Target::Own(c) => Some(c.replication()),
        Target::Given(_) => None,
    };
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        if let Target::Own(cluster) = target {
            if let Some(crash) = cluster.take_crashes().into_iter().next() {
                eprintln!("jepsen: {crash}");
                return Err(format!("{crash} while recovering"));
            }
        }
        let (views, silent) = admin::replica_views(&servers).await;
        let why = match recovered(&views, &silent) {
            Ok(()) => {
                let mut problems = admin::placement_problems(&views, voters);
                if problems.is_empty() {
                    problems = admin::stray_data(&servers).await;
                }
                if problems.is_empty() {
                    return Ok(());
                }
                format!("the shard map: {}", problems.join("; "))
            }
            Err(why) => why,
        };
        if Instant::now() >= deadline {
            return Err(format!("not within {RECOVERY_TIMEOUT:?}: {why}"));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The `run` field of summary.json: enough to repeat the run.
fn run_description(options: &RunOptions, run_id: &str, epsilon_ns: i64, servers: &BTreeMap<u64, String>) -> Value {
    let cluster = match &options.cluster {
        ClusterChoice::Own { nodes, settings } => json!({
            "started": true,
            "nodes": nodes,
            "epsilon_ms": settings.epsilon_ms,
            "unsafe_stale_reads_ms": settings.unsafe_testing.stale_reads_ms,
            "unsafe_skip_commit_wait": settings.unsafe_testing.skip_commit_wait,
            "unsafe_skip_visibility_wait": settings.unsafe_testing.skip_visibility_wait,
            "unsafe_ignore_clock_health": settings.unsafe_testing.ignore_clock_health,
        }),
        ClusterChoice::Given { addr, .. } => json!({ "started": false, "addr": addr }),
    };
    json!({
        "run_id": run_id,
        "seed": options.seed,
        "time_limit_s": options.time_limit.as_secs(),
        "concurrency": options.concurrency,
        "nemesis": options.nemeses.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "interval_s": options.interval.as_secs_f64(),
        "beyond_epsilon": options.beyond_epsilon,
        "epsilon_ns": epsilon_ns,
        "cluster": cluster,
        "servers": servers.iter().map(|(id, a)| (id.to_string(), json!(a))).collect::<serde_json::Map<_, _>>(),
    })
}
