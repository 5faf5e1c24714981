//! Every bound and tunable of `spandb jepsen`, in one place.
//!
//! A harness that can wait forever is not a harness: every wait has a
//! deadline here, and running into one is reported (an op as `info` or
//! `fail`, the run as an error), never waited out.

use std::time::Duration;

// --- Command-line bounds. ---

/// Cluster sizes a run may start (odd, so majorities are clear).
pub const NODES_ALLOWED: [usize; 2] = [3, 5];
/// With the move nemesis: this many nodes, shards of this many replicas
/// (so two servers of each shard's are free to move to).
pub const MOVE_NODES: usize = 5;
pub const MOVE_REPLICATION: usize = 3;

/// Longest `--dead-after-s` (an hour).
pub const DEAD_AFTER_S_MAX: u64 = 3_600;
/// How long one move (add, catch up, joint, leave, remove) may take.
pub const MOVE_TIMEOUT: Duration = Duration::from_secs(30);
/// The placement driver of a cluster a run starts removes a learner a
/// cut-short move left (`move` nemesis timed out, a server killed mid-move)
/// after this many seconds (`placement.stray_learner_after_s`; 75 by
/// default): short, so a run sees it happen.
pub const STRAY_LEARNER_AFTER_S: u64 = 10;
/// Most client workers.
pub const CONCURRENCY_MAX: usize = 256;
/// Longest run.
pub const TIME_LIMIT_S_MAX: u64 = 24 * 3600;
/// Default and longest time between nemesis steps (a step starts or stops
/// a fault).
pub const INTERVAL_S_DEFAULT: f64 = 5.0;
pub const INTERVAL_S_MAX: f64 = 3600.0;
/// Shortest time between nemesis steps: a fault needs a moment to bite.
pub const INTERVAL_S_MIN: f64 = 0.1;

// --- The cluster the harness starts. ---

/// Where the shards of a started cluster split: four shards. Workload keys
/// begin with a letter spread evenly over `a..=z` (`workload::spread_key`),
/// so every shard gets its share.
pub const SPLIT_POINTS: [&str; 3] = ["g", "n", "t"];
/// How long a fresh cluster may take until every shard has a leader.
pub const CLUSTER_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the cluster may take, once healed, until every shard has one
/// stable leader again and a clean map: longer than a move the driver
/// still runs waits on its slowest step (60 s) plus
/// [`STRAY_LEARNER_AFTER_S`], so a learner a move left is usually gone by
/// then (a move stuck on two steps in a row can outlast it).
pub const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server gets to stop after SIGTERM before SIGKILL.
pub const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often cluster state (leaders, a restarted server) is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

// --- Clients and admin calls. ---

/// How long one client operation may take, retries included; then a write
/// is `info` (if an attempt was in flight) and a read is `fail`.
pub const OP_DEADLINE: Duration = Duration::from_secs(5);
/// A guard around every client call, in case the client itself hangs: the
/// op is then recorded as timed out (`info` for writes, `fail` for reads).
pub const OP_TIMEOUT: Duration = Duration::from_secs(8);
pub const CLIENT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one admin call (status, clock) may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How many of a letter's workload keys the split nemesis reads to find
/// the most recently written one.
pub const SPLIT_SCAN_KEYS: usize = 1000;
/// A split the shard refuses (its membership is changing, its leader is
/// not ready) is tried this many times in all, this far apart.
pub const SPLIT_ATTEMPTS: u32 = 10;
pub const SPLIT_RETRY_AFTER: Duration = Duration::from_millis(100);

// --- The history. ---

/// Most events one run records; workers stop invoking beyond it (the run
/// ends early and says so).
pub const HISTORY_EVENTS_MAX: usize = 4_000_000;
/// How long the final reads may keep retrying after recovery.
pub const FINAL_OPS_TIMEOUT: Duration = Duration::from_secs(60);

// --- Workloads. ---

/// Register: ops one key receives before its workers move to a fresh key
/// (bounded per-key histories keep the linearizability search small).
pub const REGISTER_OPS_PER_KEY: u64 = 100;
/// Register: workers sharing one key at a time.
pub const REGISTER_WORKERS_PER_KEY: usize = 3;
/// Register: key ids advance by this much (coprime with the 26 letters
/// keys are spread over, so consecutive keys sit on different shards).
pub const REGISTER_KEY_STRIDE: u64 = 7;
/// Register: how stale a bounded-staleness read may be.
pub const REGISTER_READ_STALENESS: Duration = Duration::from_millis(500);
/// Register: timestamps remembered per live key for snapshot reads (the
/// newest ones completed ops reported).
pub const REGISTER_SNAPSHOT_TIMESTAMPS_KEPT: usize = 8;
/// Set: most elements the final read collects per key prefix.
pub const SET_READ_ELEMENTS_MAX: usize = 10_000_000;

// --- Nemeses. ---

/// Within epsilon, clock offsets stay below this fraction of epsilon
/// (numerator / denominator): TrueTime's assumption holds, with a margin
/// for the time a `SetClock` takes to land, and two clocks may disagree by
/// almost two epsilons (what commit-wait and the visibility wait are for).
pub const CLOCK_WITHIN_EPSILON_NUM: i64 = 9;
pub const CLOCK_WITHIN_EPSILON_DEN: i64 = 10;
/// Beyond epsilon (`--beyond-epsilon`), offsets are this many epsilons.
pub const CLOCK_BEYOND_EPSILON_MIN: i64 = 10;
pub const CLOCK_BEYOND_EPSILON_MAX: i64 = 250;
/// Beyond epsilon, and epsilon is zero: offsets are taken from this scale.
pub const CLOCK_BEYOND_FLOOR_NS: i64 = 1_000_000;
/// A strobe flips a node's clock between +delta and -delta this often.
pub const CLOCK_STROBE_PERIOD: Duration = Duration::from_millis(50);
/// How long connecting to a server through a link proxy may take.
pub const PROXY_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a link proxy pauses after a failed accept (say, out of file
/// descriptors) before accepting again.
pub const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(10);
/// Bank: accounts, each opened with the initial balance (the total is
/// their product), and the largest transfer.
pub const BANK_ACCOUNTS: usize = 8;
pub const BANK_INITIAL_BALANCE: i64 = 100;
pub const BANK_TRANSFER_MAX: i64 = 5;
/// Bank: how stale a bounded-staleness read of the balances may be.
pub const BANK_READ_STALENESS: Duration = Duration::from_millis(500);
/// How long a workload's setup (the bank's opening transaction) may keep
/// retrying before the run gives up.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// List-append: keys live at a time, appends a key gets before it is
/// retired, and the longest transaction (micro-ops).
pub const LIST_APPEND_ACTIVE_KEYS: usize = 8;
pub const LIST_APPEND_APPENDS_PER_KEY: u64 = 32;
pub const LIST_APPEND_TXN_OPS_MAX: usize = 4;
/// Timestamps: the keys written, and the most one transaction writes.
pub const TIMESTAMPS_KEYS: u64 = 26;
pub const TIMESTAMPS_TXN_KEYS_MAX: usize = 3;
