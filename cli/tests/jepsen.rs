//! `spandb jepsen` end to end: real clusters under real faults, and the
//! checkers able to say no.
//!
//! The runs that start clusters take turns (one lock), so a 2-core machine
//! runs one cluster at a time; the bad-input cases run alongside. Every run
//! has a deadline; past it the harness gets SIGINT (it then heals and stops
//! its servers) and, if that does not end it, SIGKILL.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tests::process::ProcessCluster;

const BINARY: &str = env!("CARGO_BIN_EXE_spandb");
/// The longest a run with a 30 s time limit may take, start to verdict.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
/// After SIGINT, how long the harness gets to heal and stop its servers.
const INTERRUPT_GRACE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// One cluster at a time.
static CLUSTERS: Mutex<()> = Mutex::new(());

fn lock_clusters() -> std::sync::MutexGuard<'static, ()> {
    CLUSTERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits for `child` until `deadline`; true if it exited.
fn wait_until(child: &mut Child, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

/// Runs `spandb ARGS` to completion (or its deadline) and returns its output.
fn spandb(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting spandb");
    if !wait_until(&mut child, Instant::now() + timeout) {
        harness::process::signal(child.id() as i32, libc::SIGINT);
        if !wait_until(&mut child, Instant::now() + INTERRUPT_GRACE) {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("collecting output");
        panic!(
            "spandb {args:?} ran past {timeout:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child.wait_with_output().expect("collecting output")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim_end().to_string()
}

fn summary(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    serde_json::from_str(&text).expect("summary.json is JSON")
}

/// The nemesis events of a saved history, in order.
fn nemesis_ops(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("history.jsonl")).expect("history.jsonl");
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .filter(|op| op["process"] == -1)
        .collect()
}

/// The `f`s of the nemesis events of a saved history.
fn nemesis_events(dir: &Path) -> Vec<String> {
    nemesis_ops(dir).iter().map(|op| op["f"].as_str().unwrap_or_default().to_string()).collect()
}

/// The values of the nemesis events `f` of a saved history, in order.
fn nemesis_values(dir: &Path, f: &str) -> Vec<serde_json::Value> {
    nemesis_ops(dir).into_iter().filter(|op| op["f"] == f).map(|op| op["value"].clone()).collect()
}

/// Asserts a run was valid, with its files written and its faults logged.
fn assert_valid_run(out: &Output, dir: &Path, faults: &[&str]) {
    if !out.status.success() || stdout(out) != "valid" {
        panic!(
            "exit {:?}\nstdout: {}\nstderr: {}\n{}{}{}",
            out.status,
            stdout(out),
            stderr(out),
            anomalies(dir),
            server_log_tails(dir),
            keep_for_inspection(dir)
        );
    }
    let s = summary(dir);
    assert_eq!(s["result"], "valid", "{s:#}");
    assert_eq!(s["problems"], serde_json::json!([]), "{s:#}");
    assert!(dir.join("report.html").exists());
    let events = nemesis_events(dir);
    for fault in faults {
        assert!(events.contains(&format!("start-{fault}")), "no start-{fault} in {events:?}");
        assert!(events.contains(&format!("stop-{fault}")), "no stop-{fault} in {events:?}");
    }
    assert!(!events.iter().any(|f| f == "nemesis-error"), "{events:?}");
    // The final heal leaves no fault in force.
    let starts = events.iter().filter(|f| f.starts_with("start-")).count();
    let stops = events.iter().filter(|f| f.starts_with("stop-")).count();
    assert_eq!(starts, stops, "every fault stopped: {events:?}");
}

/// The anomalies a failed run's checkers listed (from `summary.json`),
/// so CI's output says what went wrong, not only that it did.
fn anomalies(dir: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) else {
        return "no summary.json\n".into();
    };
    let Ok(summary) = serde_json::from_str::<serde_json::Value>(&text) else {
        return "summary.json is not JSON\n".into();
    };
    let mut out = String::new();
    for checker in summary["checkers"].as_array().into_iter().flatten() {
        for anomaly in checker["anomalies"].as_array().into_iter().flatten() {
            out.push_str(&format!("--- {} {}: {}\n", checker["checker"], anomaly["kind"], anomaly["message"]));
        }
    }
    out
}

/// Copies a failed run's directory (history, report, server logs and
/// data) out of the test's temporary directory, which is deleted when the
/// test ends, and says where.
fn keep_for_inspection(dir: &Path) -> String {
    let kept = std::env::temp_dir().join(format!("spandb-jepsen-failed-{}-{}", std::process::id(), unique_suffix()));
    match Command::new("cp").arg("-r").arg(dir).arg(&kept).status() {
        Ok(status) if status.success() => format!("the run's files are kept in {}\n", kept.display()),
        _ => format!("could not keep the run's files in {}\n", kept.display()),
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// The last lines of every server's log in a run's directory: a failed
/// run's temporary directory is gone after the test, and CI keeps only
/// what the test printed.
fn server_log_tails(dir: &Path) -> String {
    const LINES: usize = 60;
    let mut logs: Vec<_> = std::fs::read_dir(dir.join("cluster"))
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    logs.retain(|p| p.extension().is_some_and(|x| x == "log"));
    logs.sort();
    let mut out = String::new();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        out.push_str(&format!("--- last {} lines of {}\n{}\n", tail.len(), log.display(), tail.join("\n")));
    }
    out
}

/// One run of the harness: `workload` under `nemesis` for `time_limit`
/// seconds, a fault step every `interval` seconds, `concurrency` workers
/// (5 by default), a fixed seed; `extra` arguments appended.
struct Harness<'a> {
    workload: &'a str,
    nemesis: &'a str,
    time_limit: &'a str,
    interval: &'a str,
    seed: &'a str,
    extra: &'a [&'a str],
    concurrency: &'a str,
}

impl Default for Harness<'_> {
    fn default() -> Self {
        Harness {
            workload: "register",
            nemesis: "none",
            time_limit: "10",
            interval: "1",
            seed: "1",
            extra: &[],
            concurrency: "5",
        }
    }
}

impl Harness<'_> {
    fn run(&self, out_dir: &Path) -> Output {
        let mut args = vec![
            "jepsen",
            "--workload",
            self.workload,
            "--nemesis",
            self.nemesis,
            "--time-limit",
            self.time_limit,
            "--interval",
            self.interval,
            "--concurrency",
            self.concurrency,
            "--seed",
            self.seed,
            "--out",
            out_dir.to_str().expect("utf-8 temp path"),
        ];
        args.extend_from_slice(self.extra);
        spandb(&args, RUN_TIMEOUT)
    }
}

/// Goal: under network partitions (every shape) and kill -9 of nodes and
/// shard leaders, single-key registers stay linearizable and write
/// timestamps respect real time; `check` agrees with the run.
/// Method: a 30 s register run, a fault step every 3 s, then re-check the
/// saved history.
#[test]
fn register_under_partitions_and_kills_is_valid() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let d = out_dir.to_str().unwrap();
    let harness = Harness {
        workload: "register",
        nemesis: "partition,kill",
        time_limit: "30",
        interval: "3",
        seed: "11",
        extra: &[],
        ..Harness::default()
    };
    let out = harness.run(&out_dir);
    assert_valid_run(&out, &out_dir, &["partition", "kill"]);
    let s = summary(&out_dir);
    assert!(s["by_f"]["write"]["ok"].as_u64().unwrap() > 100, "{s:#}");

    let again = spandb(&["jepsen", "check", d], RUN_TIMEOUT);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stdout(&again), "valid");
    assert_eq!(summary(&out_dir)["run"]["seed"], 11, "check keeps the run's description");
}

/// Goal: under SIGSTOP/SIGCONT and clock bumps and strobes within
/// epsilon, every acknowledged add survives and nothing else appears.
/// Method: a 20 s set run, a fault step every 2.5 s.
#[test]
fn set_under_pauses_and_clock_skew_is_valid() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let harness = Harness {
        workload: "set",
        nemesis: "pause,clock",
        time_limit: "20",
        interval: "2.5",
        seed: "12",
        ..Harness::default()
    };
    let out = harness.run(&out_dir);
    assert_valid_run(&out, &out_dir, &["pause", "clock"]);
    let set = &summary(&out_dir)["checkers"][0];
    assert_eq!(set["checker"], "set");
    assert!(set["stats"]["acknowledged"].as_u64().unwrap() > 100, "{set:#}");
}

/// Goal: the checkers can fail: servers that serve linearizable reads
/// 500 ms in the past are caught, by the run and by `check`.
/// Method: a short register run with `--unsafe-stale-reads-ms 500` (each
/// key is read and written by the same few workers, so a read soon after
/// a write returns the older value); then re-check the saved history.
#[test]
fn stale_reads_are_caught() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let d = out_dir.to_str().unwrap();
    let args = ["jepsen", "--workload", "register", "--time-limit", "8", "--unsafe-stale-reads-ms", "500", "--out", d];
    let out = spandb(&args, RUN_TIMEOUT);
    assert!(!out.status.success(), "a stale-reading cluster passed: {}", stdout(&out));
    assert!(stdout(&out).starts_with("invalid: nonlinearizable"), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).ends_with("report.html"), "{}", stderr(&out));
    assert_eq!(summary(&out_dir)["result"], "invalid");
    // The broken cluster's data is kept for inspection.
    assert!(out_dir.join("cluster/s1").exists());

    let again = spandb(&["jepsen", "check", d, "--workload", "register"], RUN_TIMEOUT);
    assert!(!again.status.success());
    assert!(stdout(&again).starts_with("invalid: nonlinearizable"), "{}", stdout(&again));
}

/// Goal: cross-shard transfers in read-write transactions keep the total
/// in every read-only and bounded-staleness read, never overdraw, and get
/// commit timestamps in real-time order, while nodes and shard leaders are
/// killed, the network is partitioned and leaders are moved.
/// Method: a 20 s bank run, a fault step every 2 s.
#[test]
fn bank_under_kills_partitions_and_leader_transfers_is_valid() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let harness = Harness {
        workload: "bank",
        nemesis: "kill,partition,leader-transfer",
        time_limit: "20",
        interval: "2",
        seed: "13",
        extra: &[],
        ..Harness::default()
    };
    let out = harness.run(&out_dir);
    assert_valid_run(&out, &out_dir, &["kill", "partition", "leader-transfer"]);
    let s = summary(&out_dir);
    let by_f = &s["by_f"];
    assert!(by_f["transfer"]["ok"].as_u64().unwrap() > 50, "{by_f:#}");
    assert!(by_f["read"]["ok"].as_u64().unwrap() > 50, "{by_f:#}");
    let bank = &s["checkers"][0];
    assert_eq!((bank["checker"].as_str(), bank["stats"]["accounts"].as_u64()), (Some("bank"), Some(8)), "{bank:#}");
}

/// Goal: cross-shard bank transfers keep every invariant while replicas
/// move between servers (learner, joint configuration, removal) and
/// nodes are killed, and moves complete (at least one); afterwards each
/// shard has 3 voters and no joint configuration (the harness's recovery
/// check).
/// Method: a 20 s bank run on 5 nodes (3 replicas a shard), a fault step
/// every 2 s, moves and kills in turn.
#[test]
fn bank_under_moves_and_kills_is_valid() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let harness = Harness {
        workload: "bank",
        nemesis: "move,kill",
        time_limit: "20",
        interval: "2",
        seed: "15",
        extra: &[],
        ..Harness::default()
    };
    let out = harness.run(&out_dir);
    assert_valid_run(&out, &out_dir, &["move", "kill"]);
    let moved = nemesis_values(&out_dir, "stop-move").iter().filter(|v| v["outcome"]["moved"].is_object()).count();
    assert!(moved >= 1, "no move completed: {:?}", nemesis_values(&out_dir, "stop-move"));
}

/// Goal: the placement driver's own faults keep transactions strictly
/// serializable and the shard map whole: the server it acts at is killed
/// and cut off (the next leader of the system shard takes over), a server
/// is decommissioned and recommissioned, and killed servers are declared
/// dead and re-replicated while down (their stale replicas collected when
/// they return); at least one replica moved for a dead server, and one
/// decommission was accepted.
/// Method: a 40 s list-append run on 5 nodes (3 replicas a shard) with a
/// 2 s dead threshold, a fault step every 5 s (the kill first, while the
/// driver has been watching from the start; 5 s leave time for a driver
/// that fails over with the kill to declare the server dead).
#[test]
fn list_append_under_placement_faults_is_valid() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let harness = Harness {
        workload: "list-append",
        nemesis: "kill,decommission,placement-partition,placement-kill",
        time_limit: "40",
        interval: "5",
        seed: "16",
        extra: &["--nodes", "5", "--dead-after-s", "2"],
        ..Harness::default()
    };
    let out = harness.run(&out_dir);
    assert_valid_run(&out, &out_dir, &["kill", "decommission", "placement-partition", "placement-kill"]);
    let accepted =
        nemesis_values(&out_dir, "decommission-outcome").iter().filter(|v| v["outcome"]["draining"].is_array()).count();
    assert!(accepted >= 1, "no decommission accepted: {:?}", nemesis_values(&out_dir, "decommission-outcome"));
    let logs: String = (1..=5)
        .map(|n| std::fs::read_to_string(out_dir.join("cluster").join(format!("s{n}.log"))).unwrap_or_default())
        .collect();
    // (Log lines carry colour codes between a field's name and value.)
    let moved_off_dead = logs.lines().any(|l| l.contains("replica moved") && l.contains("DeadServer"));
    assert!(moved_off_dead, "no replica was moved off a dead server");
}

/// Goal: transactions of appends and reads over a few keys (most spanning
/// shards) are strictly serializable (no G0, G1, G-single, G2 cycle, with
/// or without real-time edges) under pauses, clock skew within epsilon
/// and shard splits just below recently written keys, and the shard map
/// is whole afterwards (the harness's recovery check).
/// Method: a 20 s list-append run, a fault step every 2 s; the checker
/// must have seen dependency edges of every kind (it checked something),
/// and a split must have happened.
#[test]
fn list_append_under_pauses_clock_skew_and_splits_is_valid() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let harness = Harness {
        workload: "list-append",
        nemesis: "pause,clock,split",
        time_limit: "20",
        interval: "2",
        seed: "14",
        extra: &[],
        ..Harness::default()
    };
    let out = harness.run(&out_dir);
    assert_valid_run(&out, &out_dir, &["pause", "clock", "split"]);
    let stops = nemesis_values(&out_dir, "stop-split");
    let splits = stops.iter().filter(|v| v["outcome"]["right"]["shard"].as_u64().is_some()).count();
    assert!(splits >= 1, "no split happened: {stops:?}");
    let elle = &summary(&out_dir)["checkers"][0];
    assert_eq!(elle["checker"], "strict-serializable");
    for edge in ["edges-ww", "edges-wr", "edges-rw", "edges-rt"] {
        assert!(elle["stats"][edge].as_u64().unwrap() > 50, "{elle:#}");
    }
}

/// Runs the timestamps workload for 10 s under within-epsilon clock skew
/// (offsets up to 9/10 epsilon). Correct servers get a 50 ms epsilon;
/// servers that skip commit-wait get 200 ms: an inversion needs the skew
/// between two servers to exceed a commit's latency, and on a loaded CI
/// machine a debug build's commit takes 100 ms and more (at 50 ms, a run
/// beside three busy loops found none; at 200 ms, 13 to 18).
fn timestamps_run(out_dir: &Path, skip_commit_wait: bool) -> Output {
    let epsilon: &[&str] = &["--epsilon-ms", "50"];
    let broken: &[&str] = &["--epsilon-ms", "200", "--unsafe-skip-commit-wait"];
    let extra = if skip_commit_wait { broken } else { epsilon };
    Harness {
        workload: "timestamps",
        nemesis: "clock",
        time_limit: "10",
        interval: "1",
        seed: "15",
        extra,
        ..Harness::default()
    }
    .run(out_dir)
}

/// Goal: commit-wait is what keeps commit timestamps in real-time order
/// across servers whose clocks disagree (within epsilon), and the external
/// check sees it: with commit-wait the run is valid; servers that skip it
/// are caught (a transaction that finished before another began has the
/// larger timestamp).
/// Method: the same timestamps run twice, the second with
/// `--unsafe-skip-commit-wait`.
#[test]
fn skipping_commit_wait_under_clock_skew_is_caught() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let correct = dir.path().join("correct");
    let out = timestamps_run(&correct, false);
    assert_valid_run(&out, &correct, &["clock"]);
    let external = &summary(&correct)["checkers"][0];
    assert!(external["stats"]["ops"].as_u64().unwrap() > 50, "{external:#}");

    let broken = dir.path().join("broken");
    let out = timestamps_run(&broken, true);
    assert!(
        !out.status.success(),
        "servers without commit-wait passed: {}\n{:#}\nfaults: {:?}",
        stdout(&out),
        summary(&broken)["checkers"][0]["stats"],
        nemesis_events(&broken)
    );
    assert_eq!(stdout(&out), "invalid: commit-ts-inversion", "{}", stderr(&out));
    assert_eq!(summary(&broken)["run"]["cluster"]["unsafe_skip_commit_wait"], true);
}

/// Runs the register workload under within-epsilon clock faults with a
/// 100 ms epsilon, optionally on servers that skip the visibility wait.
/// The clock faults take turns, a leader-ahead first (at 1 s, 7 s, 13 s
/// and 19 s: one shard's leader 45 to 90 ms ahead, every other server as
/// far behind); 12 workers keep a key on each of the 4 shards at once, so
/// the leader-ahead meets one. Correct servers run 8 s; broken ones 20 s,
/// because an early read is caught only when a follower's read-only
/// transaction begins within a few hundred milliseconds after it on the
/// same key: 8 s (two leader-aheads) found 0 to 5 such pairs, and CI once
/// found none, while 20 s found 8 to 13 in each of 5 seeds.
fn visibility_run(out_dir: &Path, skip_visibility_wait: bool) -> Output {
    let epsilon: &[&str] = &["--epsilon-ms", "100"];
    let broken: &[&str] = &["--epsilon-ms", "100", "--unsafe-skip-visibility-wait"];
    let (extra, time_limit) = if skip_visibility_wait { (broken, "20") } else { (epsilon, "8") };
    let harness = Harness { nemesis: "clock", time_limit, seed: "2", concurrency: "12", extra, ..Harness::default() };
    harness.run(out_dir)
}

/// Goal: no read reveals a commit before its commit-wait ends, and the
/// checkers see it when one does. With clocks skewed within epsilon
/// (a leader ahead, its followers behind), a server that answers a read
/// with a version at `s` before `TT.after(s)` lets a read-only
/// transaction begun afterwards at a follower read below `s` and return
/// the older value: time going backwards between two readers. Correct
/// servers come out valid, with reads of every kind checked; broken ones
/// come out invalid, always named by the timestamped checker
/// (`read-ts-inversion`: it sees every early read), often also by the
/// value checker (`nonlinearizable`, only when an early read and a later
/// stale one happen to overlap two writes' real-time order), while commit
/// timestamps stay in real-time order (commit-wait itself is intact).
/// Method: the same register run twice, the second longer and with
/// `--unsafe-skip-visibility-wait`.
#[test]
fn visibility_before_commit_wait_is_caught() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let correct = dir.path().join("correct");
    let out = visibility_run(&correct, false);
    assert_valid_run(&out, &correct, &["clock"]);
    let s = summary(&correct);
    let timestamped = &s["checkers"][1];
    assert_eq!(timestamped["checker"], "timestamped", "{s:#}");
    for reads in ["reads-leader", "reads-read-only", "reads-snapshot", "reads-bounded"] {
        assert!(timestamped["stats"][reads].as_u64().unwrap() > 20, "{reads}: {timestamped:#}");
    }

    let broken = dir.path().join("broken");
    let out = visibility_run(&broken, true);
    assert!(!out.status.success(), "servers that skip the visibility wait passed: {}", stdout(&out));
    let verdict = stdout(&out);
    assert!(
        verdict == "invalid: read-ts-inversion" || verdict == "invalid: nonlinearizable, read-ts-inversion",
        "{verdict}: {}",
        stderr(&out)
    );
    let s = summary(&broken);
    assert_eq!(s["checkers"][2]["checker"], "external");
    assert_eq!(s["checkers"][2]["result"], "valid", "commit-wait still orders commits: {s:#}");
    assert_eq!(s["run"]["cluster"]["unsafe_skip_visibility_wait"], true);
}

/// Runs the register workload for 6 s with clock faults of 10 to 250
/// epsilons (2 ms) on one server at a time, 12 workers; optionally on
/// servers that keep serving while their clock disagrees with their
/// peers'.
fn beyond_epsilon_run(out_dir: &Path, ignore_clock_health: bool) -> Output {
    let beyond: &[&str] = &["--beyond-epsilon"];
    let broken: &[&str] = &["--beyond-epsilon", "--unsafe-ignore-clock-health"];
    let extra = if ignore_clock_health { broken } else { beyond };
    let harness =
        Harness { nemesis: "clock", time_limit: "6", seed: "3", concurrency: "12", extra, ..Harness::default() };
    harness.run(out_dir)
}

/// Goal: a server whose clock leaves epsilon refuses timestamped work
/// (reads it refuses are `fail`, writes `fail` or, when the clock jumped
/// during commit-wait, `info`), so registers stay linearizable and every
/// read agrees with the commit timestamps; servers that ignore their
/// clock's health serve reads and commits on the wrong time, and are
/// caught (reads below commits acknowledged before they began).
/// Method: the same `--beyond-epsilon` register run twice, the second
/// with `--unsafe-ignore-clock-health`.
#[test]
fn clock_skew_beyond_epsilon_is_refused_and_ignoring_it_is_caught() {
    let _turn = lock_clusters();
    let dir = tempfile::tempdir().unwrap();
    let guarded = dir.path().join("guarded");
    let out = beyond_epsilon_run(&guarded, false);
    assert_valid_run(&out, &guarded, &["clock"]);
    let s = summary(&guarded);
    assert!(s["by_f"]["write"]["ok"].as_u64().unwrap() > 50, "{s:#}");
    assert_eq!(s["run"]["beyond_epsilon"], true);

    let ignored = dir.path().join("ignored");
    let out = beyond_epsilon_run(&ignored, true);
    assert!(!out.status.success(), "servers that ignore clock health passed: {}", stdout(&out));
    let line = stdout(&out);
    assert!(line.starts_with("invalid: ") && line.contains("read-ts-inversion"), "{line}\n{}", stderr(&out));
    assert_eq!(summary(&ignored)["run"]["cluster"]["unsafe_ignore_clock_health"], true);
}

/// Goal: `--addr` runs against a cluster the harness did not start, with
/// the one nemesis that needs no process control (clock skew through the
/// admin API), and leaves its clocks reset.
/// Method: `spandb demo --no-shell`; an 8 s register run against it.
#[test]
fn register_against_an_existing_cluster_with_clock_skew_is_valid() -> anyhow::Result<()> {
    let _turn = lock_clusters();
    let runtime = tokio::runtime::Runtime::new()?;
    let cluster = runtime.block_on(ProcessCluster::start(BINARY.as_ref()))?;
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("run");
    let addr = cluster.addrs[0].clone();
    let spec = cluster.spec_path();
    let args = [
        "jepsen",
        "--workload",
        "register",
        "--nemesis",
        "clock",
        "--time-limit",
        "8",
        "--interval",
        "1.5",
        "--addr",
        &addr,
        "--cluster",
        spec.to_str().expect("a UTF-8 path"),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let out = spandb(&args, RUN_TIMEOUT);
    assert_valid_run(&out, &out_dir, &["clock"]);
    assert!(!out_dir.join("cluster").exists(), "nothing started");
    for server in &cluster.addrs {
        let clock = runtime.block_on(async {
            let mut admin = proto::admin_client::AdminClient::connect(format!("http://{server}")).await?;
            anyhow::Ok(admin.get_clock(proto::GetClockRequest {}).await?.into_inner())
        })?;
        assert_eq!((clock.offset_ns, clock.drift_ppm), (0, 0), "{server}: clock left skewed");
    }
    runtime.block_on(cluster.stop());
    Ok(())
}

/// Goal: bad input is a one-line `error: ...` and a non-zero exit, for
/// runs and for `check`, and nothing starts (an unknown workload or
/// nemesis name gets clap's form: that line, then the possible values).
/// Method: one invocation per mistake; each must fail fast with the
/// expected reason on stderr's first line and nothing on stdout.
#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.to_str().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("something"), "x").unwrap();
    let corrupt = dir.path().join("corrupt");
    std::fs::create_dir(&corrupt).unwrap();
    std::fs::write(
        corrupt.join("history.jsonl"),
        "{\"index\":0,\"time\":1,\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n{not json\n",
    )
    .unwrap();
    let unnamed = dir.path().join("unnamed");
    std::fs::create_dir(&unnamed).unwrap();
    std::fs::write(unnamed.join("history.jsonl"), "").unwrap();
    let missing = dir.path().join("missing");

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["jepsen", "--workload", "bogus", "--out", o], "invalid value 'bogus' for '--workload"),
        (
            vec!["jepsen", "--workload", "bank", "--nemesis", "kill,move", "--nodes", "3", "--out", o],
            "nemesis move needs --nodes 5",
        ),
        (
            vec!["jepsen", "--workload", "timestamps", "--epsilon-ms", "5000", "--out", o],
            "--epsilon-ms must be at most 1000 ms",
        ),
        (
            vec!["jepsen", "--workload", "register", "--nemesis", "kill,fire", "--out", o],
            "invalid value 'fire' for '--nemesis",
        ),
        (
            vec!["jepsen", "--workload", "register", "--time-limit", "0", "--out", o],
            "--time-limit must be at least 1 second",
        ),
        (vec!["jepsen", "--workload", "register", "--nodes", "4", "--out", o], "--nodes must be 3 or 5"),
        (vec!["jepsen", "--workload", "register"], "--out DIR is required"),
        (vec!["jepsen", "--workload", "set", "--out", full.to_str().unwrap()], "is not empty"),
        (
            vec!["jepsen", "--workload", "register", "--nemesis", "kill", "--addr", "127.0.0.1:1", "--out", o],
            "nemesis kill needs to signal the server processes",
        ),
        (
            vec!["jepsen", "--workload", "register", "--addr", "127.0.0.1:1", "--time-limit", "1", "--out", o],
            "cannot reach a cluster at --addr 127.0.0.1:1",
        ),
        (vec!["jepsen", "check", missing.to_str().unwrap()], "cannot open"),
        (vec!["jepsen", "check", corrupt.to_str().unwrap(), "--workload", "register"], "line 2"),
        (vec!["jepsen", "check", unnamed.to_str().unwrap()], "pass --workload"),
        (
            vec!["jepsen", "check", unnamed.to_str().unwrap(), "--workload", "ledger"],
            "invalid value 'ledger' for '--workload",
        ),
    ];
    for (args, want) in cases {
        let out = spandb(&args, Duration::from_secs(30));
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        // One line, or clap's own form for a value it does not know (the
        // line, then the possible values and a hint).
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("error: "), "{args:?}: {err}");
        assert!(err.lines().count() == 1 || err.contains("[possible values: "), "{args:?}: {err}");
        assert!(first.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}
