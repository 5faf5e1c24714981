//! The run's command line, and its validation into [`RunOptions`].
//!
//! Validation is pure and happens before anything starts, so every bad
//! input is one clear line and nothing half-started is left behind.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, ensure, Context};

use spanserver::config::UnsafeTestingConfig;

use crate::cluster::ServerSettings;
use crate::limits::{
    CONCURRENCY_MAX, DEAD_AFTER_S_MAX, INTERVAL_S_DEFAULT, INTERVAL_S_MAX, INTERVAL_S_MIN, MOVE_NODES,
    MOVE_REPLICATION, NODES_ALLOWED, TIME_LIMIT_S_MAX,
};
use crate::nemesis::{NemesisChoice, NemesisKind};
use crate::workload::WorkloadName;

/// `spandb jepsen --workload W ...`.
#[derive(clap::Args, Debug, Default)]
pub struct RunArgs {
    /// The workload.
    #[arg(long, value_enum)]
    pub workload: Option<WorkloadName>,
    /// Faults, comma-separated (or all, or none).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "none")]
    pub nemesis: Vec<NemesisChoice>,
    /// Seconds the workers run.
    #[arg(long, value_name = "S", default_value_t = 60)]
    pub time_limit: u64,
    /// Client workers.
    #[arg(long, value_name = "C", default_value_t = 5)]
    pub concurrency: usize,
    /// Servers to start: 3 or 5 (default 3).
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Directory for the history, summary, report and the cluster's data
    /// and logs (absent or empty).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Seed of every random choice the harness makes (default: random,
    /// printed in summary.json).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Seconds between nemesis steps (each starts or stops a fault).
    #[arg(long, value_name = "S", default_value_t = INTERVAL_S_DEFAULT)]
    pub interval: f64,
    /// Skew clocks well beyond TrueTime's epsilon (to show what breaks).
    #[arg(long)]
    pub beyond_epsilon: bool,
    /// Run against this existing cluster (host:port of any server) instead
    /// of starting one; only the clock and leader-transfer nemeses work
    /// then (they act through the admin API).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<String>,
    /// With --addr and a nemesis: the cluster description the servers run
    /// with (its peer secret lets the nemeses change clocks and move
    /// leaderships through the admin API).
    #[arg(long, value_name = "FILE", requires = "addr")]
    pub cluster: Option<PathBuf>,
    /// TESTING ONLY: start servers that serve linearizable reads this many
    /// milliseconds in the past (a broken database the checker must catch).
    #[arg(long, value_name = "MS")]
    pub unsafe_stale_reads_ms: Option<u64>,
    /// TESTING ONLY: start servers that acknowledge commits without
    /// commit-wait (a broken database the external check must catch, given
    /// clock skew: `--nemesis clock --epsilon-ms 50`).
    #[arg(long)]
    pub unsafe_skip_commit_wait: bool,
    /// TESTING ONLY: start servers whose reads return versions before
    /// their commit-wait ended (a broken database the register checks must
    /// catch, given clock skew: `--nemesis clock --epsilon-ms 100
    /// --concurrency 12`).
    #[arg(long)]
    pub unsafe_skip_visibility_wait: bool,
    /// TESTING ONLY: start servers that keep serving timestamps while their
    /// clock disagrees with their peers' (with `--beyond-epsilon`, a broken
    /// database the checkers must catch).
    #[arg(long)]
    pub unsafe_ignore_clock_health: bool,
    /// TrueTime epsilon of the servers the harness starts, in ms (default:
    /// the servers' default). Larger values make clock faults larger, and
    /// commit-wait longer.
    #[arg(long, value_name = "MS")]
    pub epsilon_ms: Option<u64>,
    /// How long a server the harness starts may be silent before the
    /// placement driver declares it dead and re-replicates its replicas,
    /// in seconds (default: the servers' default, 60). Shorter than
    /// `--interval`, a kill on 5 nodes is healed by re-replication while
    /// it lasts, and the returning server's stale replicas are collected.
    #[arg(long, value_name = "S")]
    pub dead_after_s: Option<u64>,
}

/// Which cluster a run uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterChoice {
    /// Start `nodes` servers with these settings (possibly deliberately
    /// broken).
    Own { nodes: usize, settings: ServerSettings },
    /// Use the cluster serving at this address, changing it (the
    /// nemeses) with its peer secret.
    Given { addr: String, peer_secret: Option<client::PeerSecret> },
}

/// A validated run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    pub workload: WorkloadName,
    /// Empty: no faults.
    pub nemeses: Vec<NemesisKind>,
    pub time_limit: Duration,
    pub concurrency: usize,
    pub out: PathBuf,
    pub seed: u64,
    pub interval: Duration,
    pub beyond_epsilon: bool,
    pub cluster: ClusterChoice,
}

impl RunOptions {
    /// Validates `args`; `random_seed` is the seed when none is given.
    pub fn from_args(args: &RunArgs, random_seed: u64) -> anyhow::Result<RunOptions> {
        let Some(workload) = args.workload else {
            bail!("--workload is required (register, set, bank, list-append or timestamps)");
        };
        let nemeses = NemesisKind::from_choices(&args.nemesis).map_err(anyhow::Error::msg)?;
        ensure!(args.time_limit >= 1, "--time-limit must be at least 1 second");
        ensure!(args.time_limit <= TIME_LIMIT_S_MAX, "--time-limit must be at most {TIME_LIMIT_S_MAX} seconds");
        ensure!(
            (1..=CONCURRENCY_MAX).contains(&args.concurrency),
            "--concurrency must be between 1 and {CONCURRENCY_MAX}"
        );
        ensure!(
            args.interval.is_finite() && (INTERVAL_S_MIN..=INTERVAL_S_MAX).contains(&args.interval),
            "--interval must be between {INTERVAL_S_MIN} and {INTERVAL_S_MAX} seconds"
        );
        let Some(out) = args.out.clone() else {
            bail!("--out DIR is required (where the history, summary and report go)");
        };
        if args.beyond_epsilon && !nemeses.contains(&NemesisKind::Clock) {
            bail!("--beyond-epsilon only changes the clock nemesis; add clock to --nemesis");
        }
        let cluster = match &args.addr {
            Some(addr) => {
                if let Some(kind) = nemeses.iter().find(|k| k.needs_own_cluster().is_some()) {
                    bail!(
                        "nemesis {} {}, which only a cluster the harness starts has; with --addr only clock and leader-transfer work",
                        kind.as_str(),
                        kind.needs_own_cluster().unwrap_or_default()
                    );
                }
                ensure!(args.nodes.is_none(), "--nodes applies to a cluster the harness starts, not with --addr");
                for (set, flag) in [
                    (args.unsafe_stale_reads_ms.is_some(), "--unsafe-stale-reads-ms"),
                    (args.unsafe_skip_commit_wait, "--unsafe-skip-commit-wait"),
                    (args.unsafe_skip_visibility_wait, "--unsafe-skip-visibility-wait"),
                    (args.unsafe_ignore_clock_health, "--unsafe-ignore-clock-health"),
                    (args.epsilon_ms.is_some(), "--epsilon-ms"),
                    (args.dead_after_s.is_some(), "--dead-after-s"),
                ] {
                    ensure!(!set, "{flag} configures servers the harness starts, not with --addr");
                }
                let peer_secret = match &args.cluster {
                    Some(path) => Some(client::PeerSecret::new(
                        &meta::ClusterSpec::load(path)
                            .with_context(|| format!("--cluster {}", path.display()))?
                            .peer_secret,
                    )),
                    None if nemeses.is_empty() => None,
                    None => bail!(
                        "with --addr, the nemeses need --cluster FILE, the cluster description the servers run with \
                         (its peer secret lets them change the cluster)"
                    ),
                };
                ClusterChoice::Given { addr: addr.clone(), peer_secret }
            }
            None => {
                let moves = nemeses.contains(&NemesisKind::Move);
                // Decommissions need servers to drain to, as moves do.
                let spare = moves || nemeses.contains(&NemesisKind::Decommission);
                let nodes = args.nodes.unwrap_or(if spare { MOVE_NODES } else { NODES_ALLOWED[0] });
                ensure!(NODES_ALLOWED.contains(&nodes), "--nodes must be 3 or 5");
                ensure!(
                    !moves || nodes == MOVE_NODES,
                    "nemesis move needs --nodes {MOVE_NODES} (3 replicas a shard, 2 servers to move to)"
                );
                if let Some(ms) = args.epsilon_ms {
                    ensure!(
                        Duration::from_millis(ms) <= truetime::EPSILON_MAX,
                        "--epsilon-ms must be at most {} ms",
                        truetime::EPSILON_MAX.as_millis()
                    );
                }
                if let Some(s) = args.dead_after_s {
                    ensure!(
                        (1..=DEAD_AFTER_S_MAX).contains(&s),
                        "--dead-after-s must be between 1 and {DEAD_AFTER_S_MAX}"
                    );
                }
                let settings = ServerSettings {
                    epsilon_ms: args.epsilon_ms,
                    dead_after_s: args.dead_after_s,
                    unsafe_testing: UnsafeTestingConfig {
                        stale_reads_ms: args.unsafe_stale_reads_ms.unwrap_or(0),
                        skip_commit_wait: args.unsafe_skip_commit_wait,
                        skip_visibility_wait: args.unsafe_skip_visibility_wait,
                        ignore_clock_health: args.unsafe_ignore_clock_health,
                        // Planted for the stepped clusters' explorer.
                        new_leader_forgets_timestamps: false,
                    },
                    // 3 replicas on 5 nodes leave servers to move to, to
                    // drain to and to re-replicate onto.
                    replication: (nodes == MOVE_NODES && (spare || args.dead_after_s.is_some()))
                        .then_some(MOVE_REPLICATION),
                };
                ClusterChoice::Own { nodes, settings }
            }
        };
        Ok(RunOptions {
            workload,
            nemeses,
            time_limit: Duration::from_secs(args.time_limit),
            concurrency: args.concurrency,
            out,
            seed: args.seed.unwrap_or(random_seed),
            interval: Duration::from_secs_f64(args.interval),
            beyond_epsilon: args.beyond_epsilon,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> RunArgs {
        RunArgs {
            workload: Some(WorkloadName::Register),
            nemesis: vec![NemesisChoice::Partition, NemesisChoice::Kill],
            time_limit: 30,
            concurrency: 5,
            out: Some("/tmp/x".into()),
            interval: 5.0,
            ..Default::default()
        }
    }

    fn error(change: impl FnOnce(&mut RunArgs)) -> String {
        let mut a = args();
        change(&mut a);
        format!("{:#}", RunOptions::from_args(&a, 1).unwrap_err())
    }

    /// Goal: good arguments become options with defaults filled in.
    #[test]
    fn good_arguments() {
        let o = RunOptions::from_args(&args(), 99).unwrap();
        assert_eq!(o.workload, WorkloadName::Register);
        assert_eq!(o.nemeses, vec![NemesisKind::Partition, NemesisKind::Kill]);
        assert_eq!(o.seed, 99);
        assert_eq!(o.cluster, ClusterChoice::Own { nodes: 3, settings: ServerSettings::default() });
        let mut a = args();
        (a.epsilon_ms, a.unsafe_skip_commit_wait) = (Some(50), true);
        let o = RunOptions::from_args(&a, 99).unwrap();
        let ClusterChoice::Own { settings, .. } = o.cluster else { panic!("own cluster") };
        assert_eq!((settings.epsilon_ms, settings.unsafe_testing.skip_commit_wait), (Some(50), true));
        let secret = "s".repeat(meta::cluster::PEER_SECRET_CHARS_MIN);
        let spec = std::env::temp_dir().join(format!("spandb-options-{}.toml", std::process::id()));
        let text = format!(
            "cluster_id = \"x\"\nreplication = 1\npeer_secret = \"{secret}\"\n[[servers]]\nid = 1\naddr = \"h:1\"\n"
        );
        std::fs::write(&spec, text).unwrap();
        let mut a = args();
        a.addr = Some("127.0.0.1:7000".into());
        a.nemesis = vec![NemesisChoice::Clock];
        a.cluster = Some(spec.clone());
        a.seed = Some(5);
        let o = RunOptions::from_args(&a, 99);
        std::fs::remove_file(&spec).unwrap();
        let given =
            ClusterChoice::Given { addr: "127.0.0.1:7000".into(), peer_secret: Some(client::PeerSecret::new(&secret)) };
        assert_eq!((o.as_ref().unwrap().seed, &o.unwrap().cluster), (5, &given), "the nemeses get the peer secret");
        let mut a = args();
        (a.addr, a.nemesis) = (Some("127.0.0.1:7000".into()), vec![]);
        let o = RunOptions::from_args(&a, 99).unwrap();
        let given = ClusterChoice::Given { addr: "127.0.0.1:7000".into(), peer_secret: None };
        assert_eq!(o.cluster, given, "no nemesis, no secret needed");
        let mut a = args();
        a.nemesis = vec![NemesisChoice::Move];
        let ClusterChoice::Own { nodes, settings } = RunOptions::from_args(&a, 99).unwrap().cluster else {
            panic!("own cluster")
        };
        assert_eq!((nodes, settings.replication), (5, Some(3)), "moves need servers without a replica");
    }

    /// Goal: every bad input is refused with a one-line reason.
    /// Method: one change per case; compare the message.
    #[test]
    fn bad_arguments_are_refused_with_one_line() {
        let cases: Vec<(String, &str)> = vec![
            (error(|a| a.workload = None), "--workload is required"),
            (error(|a| a.epsilon_ms = Some(5_000)), "--epsilon-ms must be at most 1000 ms"),
            (
                error(|a| {
                    a.nemesis = vec![NemesisChoice::Kill, NemesisChoice::Move];
                    a.nodes = Some(3);
                }),
                "nemesis move needs --nodes 5",
            ),
            (error(|a| a.time_limit = 0), "--time-limit must be at least 1 second"),
            (error(|a| a.concurrency = 0), "--concurrency must be between 1"),
            (error(|a| a.nodes = Some(4)), "--nodes must be 3 or 5"),
            (error(|a| a.interval = 0.0), "--interval must be between"),
            (error(|a| a.interval = f64::NAN), "--interval must be between"),
            (error(|a| a.out = None), "--out DIR is required"),
            (error(|a| a.beyond_epsilon = true), "--beyond-epsilon only changes the clock nemesis"),
            (error(|a| a.addr = Some("h:1".into())), "nemesis partition needs a proxy on every Raft link"),
            (
                error(|a| {
                    a.addr = Some("h:1".into());
                    a.nemesis = vec![NemesisChoice::Clock];
                }),
                "with --addr, the nemeses need --cluster FILE",
            ),
            (
                error(|a| {
                    a.addr = Some("h:1".into());
                    a.nemesis = vec![NemesisChoice::Clock];
                    a.cluster = Some("/nonexistent/cluster.toml".into());
                }),
                "--cluster /nonexistent/cluster.toml",
            ),
            (
                error(|a| {
                    a.addr = Some("h:1".into());
                    a.nemesis = vec![NemesisChoice::Pause];
                }),
                "nemesis pause needs to signal the server processes",
            ),
            (
                error(|a| {
                    a.addr = Some("h:1".into());
                    a.nemesis = vec![NemesisChoice::Clock];
                    a.unsafe_stale_reads_ms = Some(5);
                }),
                "--unsafe-stale-reads-ms configures servers the harness starts",
            ),
            (
                error(|a| {
                    a.addr = Some("h:1".into());
                    a.nemesis = vec![NemesisChoice::Clock];
                    a.unsafe_skip_commit_wait = true;
                }),
                "--unsafe-skip-commit-wait configures servers the harness starts",
            ),
        ];
        for (message, want) in cases {
            assert!(message.contains(want), "{message:?} lacks {want:?}");
            assert_eq!(message.lines().count(), 1, "{message:?}");
        }
    }
}
