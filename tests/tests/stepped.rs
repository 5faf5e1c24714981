//! Stepped clusters (`tests::stepped`): whole clusters of real servers
//! driven by one thread from a seed, with the invariants checked after
//! every step.

use std::collections::BTreeMap;
use std::time::Duration;

use meta::{LockLease, Priority, RequestId, ServerId, ShardId, TxnId};
use spanserver::config::{GcConfig, UnsafeTestingConfig};
use tests::stepped::{Faults, Setup, SteppedCluster};
use tests::stepped_list_append;
use truetime::Timestamp;
use txn::{LockMode, LockTarget};

fn write(key: &str, value: &str) -> txn::Input {
    txn::Input::Write {
        req: RequestId(0),
        writes: vec![txn::Write { key: key.as_bytes().to_vec(), value: Some(value.as_bytes().to_vec()) }],
        conditions: Vec::new(),
    }
}

/// Runs a cluster of 3 servers and 2 shards from `seed` under message
/// loss, a partition of the first shard's leader, then a server killed
/// and restarted, writing through the leaders; returns the cluster and
/// how many of the first three writes were acknowledged.
fn scenario(seed: u64) -> (SteppedCluster, usize) {
    scenario_with(seed, Setup::default())
}

fn scenario_with(seed: u64, setup: Setup) -> (SteppedCluster, usize) {
    let mut c = SteppedCluster::with(seed, setup);
    c.faults = Faults { loss_percent: 5, delay_max: Duration::from_millis(4) };
    c.run_until(Duration::from_secs(2));
    let mut answers = Vec::new();
    for (i, shard) in [ShardId(1), ShardId(2), ShardId(1)].into_iter().enumerate() {
        let leader = c.leader(shard).unwrap_or_else(|| panic!("seed {seed}: no leader of {shard} after 2 s"));
        let key = if shard == ShardId(1) { format!("a{i}") } else { format!("z{i}") };
        answers.push(c.submit(leader, shard, write(&key, "v")));
        let until = c.now() + Duration::from_millis(300);
        c.run_until(until);
    }
    if let Some(leader) = c.leader(ShardId(1)) {
        for other in [ServerId(1), ServerId(2), ServerId(3)] {
            if other != leader {
                c.partition(leader, other);
            }
        }
    }
    let until = c.now() + Duration::from_secs(2);
    c.run_until(until);
    c.heal();
    let until = c.now() + Duration::from_secs(2);
    c.run_until(until);
    // Kill a server the seed picks, write while it is down, restart it.
    let victim = ServerId(1 + seed % 3);
    c.crash(victim);
    for shard in [ShardId(1), ShardId(2)] {
        let until = c.now() + Duration::from_millis(400);
        c.run_until(until);
        if let Some(leader) = c.leader(shard) {
            let key = if shard == ShardId(1) { "b" } else { "y" };
            drop(c.submit(leader, shard, write(key, "v")));
        }
    }
    let until = c.now() + Duration::from_millis(500);
    c.run_until(until);
    c.restart(victim);
    let until = c.now() + Duration::from_secs(1);
    c.run_until(until);
    let acknowledged = answers
        .into_iter()
        .filter_map(|mut a| a.try_recv().ok())
        .filter(|a| matches!(a, Ok(txn::Answer::Committed { applied: true, .. })))
        .count();
    (c, acknowledged)
}

/// Goal: a run is a function of its seed: the same seed gives the same
/// elections, in the same order at the same simulated instants, and the
/// same Raft progress on every replica; the writes through the leaders
/// are acknowledged.
/// Method: the scenario twice with one seed, once with another.
#[test]
fn the_same_seed_gives_the_same_run() {
    let (a, acked_a) = scenario(7);
    let (b, acked_b) = scenario(7);
    assert_eq!(a.trace, b.trace, "same seed, different runs");
    assert_eq!(a.progress(), b.progress());
    assert_eq!(a.digest(), b.digest(), "the same messages, delivered in the same order");
    assert!(a.digest().0 > 1_000, "a run delivers many messages: {:?}", a.digest());
    // Two shards' leader no-ops and three writes, at least.
    assert!(a.entries_checked() >= 5, "applied entries are compared: {}", a.entries_checked());
    assert_eq!((acked_a, acked_b), (3, 3), "writes through a leader are acknowledged");
    let (other, _) = scenario(8);
    assert_ne!(a.digest(), other.digest(), "another seed, another schedule");
}

/// Goal: Raft's safety holds at every step (one leader per shard per
/// term; committed indexes never go back) whatever the schedule: loss,
/// reordering and a partitioned leader, over many seeds; after the heal
/// every shard has a leader.
/// Method: SPANDB_STEPPED_SEEDS seeds (default 6) of the scenario; the
/// cluster checks the invariants after each step and names the seed
/// that broke one.
#[test]
fn raft_safety_holds_at_every_step_across_seeds() {
    let seeds: u64 = std::env::var("SPANDB_STEPPED_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    for seed in 100..100 + seeds {
        let (c, _) = scenario(seed);
        for shard in [ShardId(1), ShardId(2)] {
            assert!(c.leader(shard).is_some(), "seed {seed}: {shard} has no leader");
        }
    }
}

/// The panic message of `scenario_with(seed, setup)`, if it panicked.
fn failure(seed: u64, setup: &Setup) -> Option<String> {
    let setup = setup.clone();
    let run = std::panic::catch_unwind(move || {
        scenario_with(seed, setup);
    });
    run.err().map(|p| p.downcast_ref::<String>().cloned().unwrap_or_else(|| "a panic".into()))
}

/// Goal: the explorer finds a bug planted on purpose — a new shard
/// leader that forgets the timestamps in its log and assigns from its
/// clock alone, which is behind (clocks skewed up to 300 ms) — within a
/// small seed budget, names the seed, and the same seed replays the same
/// failure; with the bug switched off, the same seeds and skews pass.
/// Method: seeds 1000.. of the scenario with the switch on until one
/// fails; the failure is the servers' own assertion that timestamps
/// strictly increase in a shard's log, reported by the cluster with the
/// seed.
#[test]
fn the_explorer_finds_a_planted_timestamp_bug_and_its_seed_replays_it() {
    let skewed = Setup { clock_skew_max: Duration::from_millis(300), ..Setup::default() };
    let planted = Setup {
        unsafe_testing: UnsafeTestingConfig { new_leader_forgets_timestamps: true, ..Default::default() },
        ..skewed.clone()
    };
    let budget = 20;
    let found = (1000..1000 + budget).find_map(|seed| failure(seed, &planted).map(|message| (seed, message)));
    let (seed, message) = found.unwrap_or_else(|| panic!("the planted bug survived {budget} seeds"));
    assert!(message.contains(&format!("seed {seed}:")), "{message}");
    assert!(message.contains("does not exceed the applied"), "{message}");
    assert_eq!(failure(seed, &planted), Some(message), "the seed replays its failure");
    for seed in 1000..=seed {
        assert_eq!(failure(seed, &skewed), None, "seed {seed} fails without the planted bug");
    }
}

/// Goal: a server killed and started again from its directory comes
/// back with what it had (the applied entries it shows again agree with
/// every other replica's), catches up with the writes it missed, and
/// the writes acknowledged meanwhile stay: whether the killed server was
/// a follower or the leader.
/// Method: per seed, writes through shard 1's leader; kill a follower
/// (then, in a second round, the leader), more writes, restart, run; the
/// restarted replica's applied index reaches the leader's. Invariants
/// are checked after every step throughout.
#[test]
fn a_killed_server_restarts_from_its_directory_and_catches_up() {
    for seed in 300..303 {
        let mut c = SteppedCluster::new(seed, 3, 1);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let shard = ShardId(1);
        let mut acknowledged = 0;
        for round in 0..2 {
            let leader = c.leader(shard).unwrap_or_else(|| panic!("seed {seed}: no leader"));
            let victim = match round {
                0 => [ServerId(1), ServerId(2), ServerId(3)].into_iter().find(|s| *s != leader).expect("a follower"),
                _ => leader,
            };
            c.crash(victim);
            let until = c.now() + Duration::from_millis(500);
            c.run_until(until);
            for i in 0..3 {
                let leader = c.leader(shard).unwrap_or_else(|| panic!("seed {seed}: no leader after a crash"));
                let mut answer = c.submit(leader, shard, write(&format!("r{round}k{i}"), "v"));
                let until = c.now() + Duration::from_millis(200);
                c.run_until(until);
                if matches!(answer.try_recv(), Ok(Ok(txn::Answer::Committed { applied: true, .. }))) {
                    acknowledged += 1;
                }
            }
            c.restart(victim);
            let until = c.now() + Duration::from_secs(1);
            c.run_until(until);
            let progress = c.progress();
            let applied = |server: ServerId| progress.iter().find(|p| p.0 == server).map(|p| p.3).unwrap_or(0);
            let leader = c.leader(shard).expect("a leader");
            assert_eq!(applied(victim), applied(leader), "seed {seed}: {victim} caught up with {leader}: {progress:?}");
        }
        assert!(acknowledged >= 5, "seed {seed}: writes are acknowledged while a server is down ({acknowledged})");
        assert!(c.entries_checked() >= 7, "seed {seed}: {} entries compared", c.entries_checked());
    }
}

/// Goal: a replica that was down while the others compacted their log
/// catches up by snapshot (sent by the leader, its data file copied
/// into the receiver's snapshot directory, installed by ingesting it),
/// then has every acknowledged write, and keeps them across another
/// restart (the install is durable); then the other follower does the
/// same, though the leader still holds the snapshot it built for the
/// first (older than what the second has: the regression of a loop
/// resending it, which the cluster reports).
/// Method: per seed, a 3-server cluster; for each follower in turn:
/// kill it, write more than the log keeps through the leader, restart
/// it, run; it must have been sent a snapshot, and it must show every
/// write acknowledged so far in its own RocksDB; kill and restart it
/// again and look again. Invariants are checked after every step
/// throughout (entries the snapshot brought are compared where they
/// were applied).
#[test]
fn a_replica_behind_a_compacted_log_catches_up_by_snapshot() {
    for seed in 320..323 {
        let mut c = SteppedCluster::new(seed, 3, 1);
        c.faults = Faults { loss_percent: 1, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let shard = ShardId(1);
        let leader = c.leader(shard).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        let followers: Vec<ServerId> = c.server_ids().into_iter().filter(|s| *s != leader).collect();
        let mut acknowledged: Vec<String> = Vec::new();
        for (round, victim) in followers.into_iter().enumerate() {
            c.crash(victim);
            let writes = 2 * tests::stepped::LOG_COMPACT_ENTRIES as usize;
            let mut answers = Vec::new();
            for i in 0..writes {
                let Some(leader) = c.leader(shard) else { continue };
                let key = format!("r{round}k{i:04}");
                answers.push((key.clone(), c.submit(leader, shard, write(&key, "v"))));
                let until = c.now() + Duration::from_millis(5);
                c.run_until(until);
            }
            let until = c.now() + Duration::from_millis(500);
            c.run_until(until);
            let before = acknowledged.len();
            acknowledged.extend(answers.into_iter().filter_map(|(key, mut a)| {
                matches!(a.try_recv(), Ok(Ok(txn::Answer::Committed { applied: true, .. }))).then_some(key)
            }));
            let acked = acknowledged.len() - before;
            assert!(acked > writes / 2, "seed {seed}: {acked} of {writes} acknowledged");
            let snapshots = c.snapshots_delivered();
            c.restart(victim);
            let until = c.now() + Duration::from_secs(2);
            c.run_until(until);
            assert!(c.snapshots_delivered() > snapshots, "seed {seed}: {victim} caught up without a snapshot");
            assert!(
                c.trace
                    .iter()
                    .any(|e| e.contains(&format!("snapshot {shard}")) && e.ends_with(&format!("-> {victim}"))),
                "seed {seed}: the snapshot went to {victim}"
            );
            for restart in 0..2 {
                let missing: Vec<&String> =
                    acknowledged.iter().filter(|k| c.latest(victim, k.as_bytes()).is_none()).collect();
                assert!(missing.is_empty(), "seed {seed} restart {restart}: {victim} lacks acknowledged {missing:?}");
                c.crash(victim);
                c.restart(victim);
                let until = c.now() + Duration::from_millis(500);
                c.run_until(until);
            }
        }
    }
}

fn put(key: &str, value: &str) -> txn::Write {
    txn::Write { key: key.as_bytes().to_vec(), value: Some(value.as_bytes().to_vec()) }
}

/// A transaction that read `a` on shard 1 (its coordinator) and prepared
/// a write of `z` on shard 2, as the client drives one: the read's
/// lease and the participant's prepare timestamp.
struct Prepared {
    txn: TxnId,
    priority: Priority,
    lease: LockLease,
    prepare_ts: Timestamp,
}

/// A transaction's first read of `key` (no lease yet, no deadline).
fn first_read(txn: TxnId, priority: Priority, key: &str) -> txn::Input {
    let target = LockTarget::Key(key.as_bytes().to_vec());
    txn::Input::Read {
        req: RequestId(0),
        txn,
        priority,
        target,
        mode: LockMode::Shared,
        lease: None,
        deadline: None,
        no_wait: false,
    }
}

fn read_a_and_prepare_z(c: &mut SteppedCluster, seed: u64, value: &str) -> Prepared {
    let txn = TxnId::random(u128::from(seed) << 64 | 1);
    let priority = Priority::new(Timestamp::from_nanos(1), txn);
    let read = first_read(txn, priority, "a");
    let lease = match c.call(ShardId(1), read, Duration::from_secs(1)) {
        Ok(txn::Answer::Locked { lease }) => lease,
        other => panic!("seed {seed}: the read of a: {other:?}"),
    };
    let prepare = txn::Input::Prepare {
        req: RequestId(0),
        txn,
        priority,
        writes: vec![put("z", value)],
        reads: Vec::new(),
        lease: None,
        coordinator: ShardId(1),
        conditions: Vec::new(),
    };
    let prepare_ts = match c.call(ShardId(2), prepare, Duration::from_secs(1)) {
        Ok(txn::Answer::Prepared { prepare_ts }) => prepare_ts,
        other => panic!("seed {seed}: the prepare of z: {other:?}"),
    };
    Prepared { txn, priority, lease, prepare_ts }
}

fn commit_input(p: &Prepared, value: &str) -> txn::Input {
    txn::Input::Commit {
        req: RequestId(0),
        txn: p.txn,
        priority: p.priority,
        writes: vec![put("a", value)],
        reads: vec![LockTarget::Key(b"a".to_vec())],
        lease: Some(p.lease),
        participants: vec![(ShardId(2), p.prepare_ts)],
        conditions: Vec::new(),
        deadline: None,
    }
}

const SERVERS: [ServerId; 3] = [ServerId(1), ServerId(2), ServerId(3)];

/// Crashes `victim`, runs 3 s, restarts it, runs 3 s more.
fn kill_and_restart(c: &mut SteppedCluster, victim: ServerId) {
    c.crash(victim);
    let until = c.now() + Duration::from_secs(3);
    c.run_until(until);
    c.restart(victim);
    let until = c.now() + Duration::from_secs(3);
    c.run_until(until);
}

/// Every server's RocksDB holds `value` at `commit_ts` as the latest
/// version of each of `keys`.
fn assert_everywhere(c: &SteppedCluster, seed: u64, keys: &[&str], commit_ts: Timestamp, value: &[u8]) {
    for server in SERVERS {
        for key in keys {
            assert_eq!(
                c.latest(server, key.as_bytes()),
                Some((commit_ts, Some(value.to_vec()))),
                "seed {seed}: {server}'s {key}"
            );
        }
    }
}

/// Runs until `shard` has a leader (at most 2 s: a split's child elects
/// one at once).
fn run_until_led(c: &mut SteppedCluster, shard: ShardId) {
    let deadline = c.now() + Duration::from_secs(2);
    while c.leader(shard).is_none() && c.now() < deadline {
        let until = c.now() + Duration::from_millis(10);
        c.run_until(until);
    }
}

/// Goal: a two-shard commit reaches every replica of both shards even
/// when the participant's leader is killed right after the coordinator
/// committed (before it was told),
/// and the killed server restarts: the decision travels as the peer
/// calls do (told by the coordinator, asked by the participant), and
/// both writes end up at the commit timestamp on all three servers.
/// Method: per seed, read `a` on shard 1, prepare `z` on shard 2,
/// commit at shard 1, crash shard 2's leader, run, restart it, run;
/// read each server's RocksDB.
#[test]
fn a_cross_shard_commit_reaches_every_replica_when_the_participants_leader_is_killed() {
    for seed in 400..403 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let p = read_a_and_prepare_z(&mut c, seed, "t");
        let commit_ts = match c.call(ShardId(1), commit_input(&p, "t"), Duration::from_secs(1)) {
            Ok(txn::Answer::Committed { commit_ts, applied: true }) => commit_ts,
            other => panic!("seed {seed}: the commit: {other:?}"),
        };
        let victim = c.leader(ShardId(2)).expect("shard 2 has a leader");
        kill_and_restart(&mut c, victim);
        assert_everywhere(&c, seed, &["a", "z"], commit_ts, b"t");
        assert!(c.peer_calls() > 0, "seed {seed}: the decision travelled as peer calls");
    }
}

/// Goal: a participant prepared for a transaction whose client never
/// commits asks the coordinator, which decides abort (durably: a late
/// commit is refused); the participant then drops the prepared write
/// and frees its lock, so a later write of the key commits, and the
/// aborted value is on no replica.
/// Method: per seed, read `a` on shard 1 and prepare `z` on shard 2,
/// then go silent; write `z` plainly (it waits for the prepared lock);
/// then the late commit.
#[test]
fn a_participant_whose_transaction_was_never_committed_asks_and_aborts_it() {
    for seed in 500..503 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let p = read_a_and_prepare_z(&mut c, seed, "never");
        let write = txn::Input::Write { req: RequestId(0), writes: vec![put("z", "later")], conditions: Vec::new() };
        let written_at = match c.call(ShardId(2), write, Duration::from_secs(4)) {
            Ok(txn::Answer::Committed { commit_ts, applied: true }) => commit_ts,
            other => panic!("seed {seed}: the write of z after the silent transaction: {other:?}"),
        };
        let late = c.call(ShardId(1), commit_input(&p, "never"), Duration::from_secs(1));
        assert!(late.as_ref().is_err_and(|e| e.contains("abort")), "seed {seed}: the late commit: {late:?}");
        let until = c.now() + Duration::from_secs(1);
        c.run_until(until);
        for server in SERVERS {
            assert_eq!(
                c.latest(server, b"z"),
                Some((written_at, Some(b"later".to_vec()))),
                "seed {seed}: {server}'s z"
            );
            assert_eq!(c.latest(server, b"a"), None, "seed {seed}: {server}'s a");
        }
    }
}

/// Prepares a write of `x` and `z` on shard 2 for a transaction that
/// read `a` on shard 1 (its coordinator), then splits shard 2 at `y`: the
/// two keys end up on different halves, shard 2 and shard 10.
fn prepare_x_and_z_then_split_at_y(c: &mut SteppedCluster, seed: u64, value: &str) -> Prepared {
    let txn = TxnId::random(u128::from(seed) << 64 | 2);
    let priority = Priority::new(Timestamp::from_nanos(1), txn);
    let read = first_read(txn, priority, "a");
    let lease = match c.call(ShardId(1), read, Duration::from_secs(1)) {
        Ok(txn::Answer::Locked { lease }) => lease,
        other => panic!("seed {seed}: the read of a: {other:?}"),
    };
    let prepare = txn::Input::Prepare {
        req: RequestId(0),
        txn,
        priority,
        writes: vec![put("x", value), put("z", value)],
        reads: Vec::new(),
        lease: None,
        coordinator: ShardId(1),
        conditions: Vec::new(),
    };
    let prepare_ts = match c.call(ShardId(2), prepare, Duration::from_secs(1)) {
        Ok(txn::Answer::Prepared { prepare_ts }) => prepare_ts,
        other => panic!("seed {seed}: the prepare of x and z: {other:?}"),
    };
    let child_replicas = (101..=103).map(meta::ReplicaId).collect();
    let split = c.split(ShardId(2), b"y", ShardId(10), child_replicas, Duration::from_secs(2));
    assert!(split.is_ok(), "seed {seed}: a split between prepare and commit is refused: {split:?}");
    assert_eq!(c.shard_of(b"z"), ShardId(10), "seed {seed}: z moved to the new shard");
    run_until_led(c, ShardId(10));
    Prepared { txn, priority, lease, prepare_ts }
}

/// Goal: a participant that splits between prepare and commit commits
/// on both halves: the coordinator's decision names only the shard it
/// knows, which relays it to the half split off it, so both written keys
/// end up at the commit timestamp on every replica, even with the new
/// half's leader killed meanwhile.
/// Method: per seed, read `a` on shard 1, prepare `x` and `z` on shard 2,
/// split shard 2 between them, commit at shard 1 naming shard 2 only,
/// crash the new shard's leader, run, restart it, run; read each
/// server's RocksDB.
#[test]
fn a_participant_split_between_prepare_and_commit_commits_on_both_halves() {
    for seed in 450..453 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let p = prepare_x_and_z_then_split_at_y(&mut c, seed, "t");
        let commit_ts = match c.call(ShardId(1), commit_input(&p, "t"), Duration::from_secs(1)) {
            Ok(txn::Answer::Committed { commit_ts, applied: true }) => commit_ts,
            other => panic!("seed {seed}: the commit: {other:?}"),
        };
        let victim = c.leader(ShardId(10)).expect("shard 10 has a leader");
        kill_and_restart(&mut c, victim);
        assert_everywhere(&c, seed, &["a", "x", "z"], commit_ts, b"t");
    }
}

/// Goal: a participant that splits between prepare and a commit that
/// never comes aborts on both halves: the half split off it asks it, it
/// asks the coordinator, which decides abort; both prepared locks go, so
/// later writes of both keys commit, a late commit is refused, and the
/// aborted value is on no replica.
/// Method: per seed, read `a` on shard 1, prepare `x` and `z` on shard 2,
/// split shard 2 between them, go silent; write `z` plainly (it waits for
/// the inherited lock), then `x`, then the late commit.
#[test]
fn a_participant_split_between_prepare_and_a_lost_commit_aborts_on_both_halves() {
    for seed in 460..463 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let p = prepare_x_and_z_then_split_at_y(&mut c, seed, "never");
        let mut written_at = BTreeMap::new();
        for (key, shard) in [("z", ShardId(10)), ("x", ShardId(2))] {
            let write =
                txn::Input::Write { req: RequestId(0), writes: vec![put(key, "later")], conditions: Vec::new() };
            match c.call(shard, write, Duration::from_secs(5)) {
                Ok(txn::Answer::Committed { commit_ts, applied: true }) => written_at.insert(key, commit_ts),
                other => panic!("seed {seed}: the write of {key} after the silent transaction: {other:?}"),
            };
        }
        let late = c.call(ShardId(1), commit_input(&p, "never"), Duration::from_secs(1));
        assert!(late.as_ref().is_err_and(|e| e.contains("abort")), "seed {seed}: the late commit: {late:?}");
        let until = c.now() + Duration::from_secs(1);
        c.run_until(until);
        for server in SERVERS {
            for (key, at) in &written_at {
                assert_eq!(
                    c.latest(server, key.as_bytes()),
                    Some((*at, Some(b"later".to_vec()))),
                    "seed {seed}: {server}'s {key}"
                );
            }
            assert_eq!(c.latest(server, b"a"), None, "seed {seed}: {server}'s a");
        }
    }
}

/// Runs `c` until `answer` comes (or `within` passes).
fn answer_within<T>(
    c: &mut SteppedCluster,
    answer: &mut tokio::sync::oneshot::Receiver<T>,
    within: Duration,
) -> Option<T> {
    let deadline = c.now() + within;
    while c.now() < deadline {
        let until = c.now() + Duration::from_millis(1);
        c.run_until(until);
        if let Ok(a) = answer.try_recv() {
            return Some(a);
        }
    }
    None
}

fn child_replicas() -> Vec<meta::ReplicaId> {
    (101..=103).map(meta::ReplicaId).collect()
}

/// Goal: a coordinator that splits mid-commit, its own written key moving
/// to the new half right after its decision is replicated and before its
/// participant hears of it, still answers for the transaction: the
/// participant (its leader killed meanwhile) learns the commit, and every
/// replica ends with both writes at the commit timestamp.
/// Method: per seed, read `a` on shard 1, prepare `z` on shard 2, move
/// shard 2's leadership off shard 1's leader; hand shard 1's leader the
/// commit and, right behind it, a split at `a`; kill shard 2's leader,
/// run, restart it, run; read each server's RocksDB.
#[test]
fn a_coordinator_split_mid_commit_still_answers_for_the_transaction() {
    for seed in 470..473 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let p = read_a_and_prepare_z(&mut c, seed, "t");
        let leader = c.leader(ShardId(1)).expect("shard 1 has a leader");
        // The participant's leader, to be killed, must be elsewhere.
        let elsewhere = SERVERS.into_iter().find(|s| *s != leader).expect("three servers");
        let deadline = c.now() + Duration::from_secs(2);
        while c.leader(ShardId(2)) == Some(leader) && c.now() < deadline {
            c.transfer_leader(ShardId(2), elsewhere);
            let until = c.now() + Duration::from_millis(100);
            c.run_until(until);
        }
        let mut commit = c.submit(leader, ShardId(1), commit_input(&p, "t"));
        let mut split = c.submit_split(ShardId(1), b"a", ShardId(10), child_replicas()).expect("a split");
        let victim = c.leader(ShardId(2)).filter(|l| *l != leader).expect("shard 2 has a leader of its own");
        c.crash(victim);
        let commit_ts = match answer_within(&mut c, &mut commit, Duration::from_secs(2)) {
            Some(Ok(txn::Answer::Committed { commit_ts, applied: true })) => commit_ts,
            other => panic!("seed {seed}: the commit: {other:?}\n{}", c.take_events().join("\n")),
        };
        let split = answer_within(&mut c, &mut split, Duration::from_secs(2));
        assert!(matches!(split, Some(Ok(_))), "seed {seed}: the split: {split:?}");
        assert_eq!(c.shard_of(b"a"), ShardId(10), "seed {seed}: a moved to the new shard");
        let until = c.now() + Duration::from_secs(3);
        c.run_until(until);
        c.restart(victim);
        let until = c.now() + Duration::from_secs(3);
        c.run_until(until);
        for server in SERVERS {
            for key in ["a", "z"] {
                assert_eq!(
                    c.latest(server, key.as_bytes()),
                    Some((commit_ts, Some(b"t".to_vec()))),
                    "seed {seed}: {server}'s {key} (the killed server was {victim})"
                );
            }
        }
    }
}

/// Goal: a prepare admitted while a split that moves its key is already
/// in the log (proposed, not yet applied) is refused as it applies, on
/// every replica alike: the participant answers an abort, nothing is
/// prepared (a plain write of the key on the new half commits at once),
/// and the prepared value is on no replica.
/// Method: per seed, hand shard 2's leader a split at `y` and, right
/// behind it, a prepare writing `z`; then write `z` on the new half.
#[test]
fn a_prepare_admitted_before_a_split_is_refused_when_it_applies() {
    for seed in 480..483 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let txn = TxnId::random(u128::from(seed) << 64 | 3);
        let priority = Priority::new(Timestamp::from_nanos(1), txn);
        let leader = c.leader(ShardId(2)).expect("shard 2 has a leader");
        let mut split = c.submit_split(ShardId(2), b"y", ShardId(10), child_replicas()).expect("a split");
        let prepare = txn::Input::Prepare {
            req: RequestId(0),
            txn,
            priority,
            writes: vec![put("z", "never")],
            reads: Vec::new(),
            lease: None,
            coordinator: ShardId(1),
            conditions: Vec::new(),
        };
        let mut prepared = c.submit(leader, ShardId(2), prepare);
        let answer = answer_within(&mut c, &mut prepared, Duration::from_secs(2));
        assert!(
            matches!(answer, Some(Err(txn::TxnError::Aborted(txn::AbortReason::ProposalDropped)))),
            "seed {seed}: the prepare behind the split: {answer:?}"
        );
        let split = answer_within(&mut c, &mut split, Duration::from_secs(2));
        assert!(matches!(split, Some(Ok(_))), "seed {seed}: the split: {split:?}");
        run_until_led(&mut c, ShardId(10));
        let write = txn::Input::Write { req: RequestId(0), writes: vec![put("z", "later")], conditions: Vec::new() };
        let written = c.call(ShardId(10), write, Duration::from_millis(500));
        assert!(matches!(written, Ok(txn::Answer::Committed { applied: true, .. })), "seed {seed}: {written:?}");
        let until = c.now() + Duration::from_secs(1);
        c.run_until(until);
        for server in SERVERS {
            let values: Vec<_> = c.versions(server, b"z").into_iter().map(|(_, v)| v).collect();
            assert_eq!(values, vec![Some(b"later".to_vec())], "seed {seed}: {server}'s versions of z");
        }
    }
}

/// Goal: a commit admitted while a split that moves a key it read (not
/// one it writes) is already in the log is refused as it applies: the new
/// shard never knew of that read's lock, so a write there could slip
/// under it. The transaction aborts, retryably; its write is on no
/// replica.
/// Method: per seed, read `z` on shard 2; hand shard 2's leader a split
/// at `y` and, right behind it, the commit of that transaction writing
/// `x` (which stays) with `z` among its reads.
#[test]
fn a_commit_whose_read_moved_before_it_applied_is_refused() {
    for seed in 485..488 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.faults = Faults { loss_percent: 2, delay_max: Duration::from_millis(3) };
        c.run_until(Duration::from_secs(1));
        let txn = TxnId::random(u128::from(seed) << 64 | 4);
        let priority = Priority::new(Timestamp::from_nanos(1), txn);
        let read = first_read(txn, priority, "z");
        let lease = match c.call(ShardId(2), read, Duration::from_secs(1)) {
            Ok(txn::Answer::Locked { lease }) => lease,
            other => panic!("seed {seed}: the read of z: {other:?}"),
        };
        let leader = c.leader(ShardId(2)).expect("shard 2 has a leader");
        let mut split = c.submit_split(ShardId(2), b"y", ShardId(10), child_replicas()).expect("a split");
        let commit = txn::Input::Commit {
            req: RequestId(0),
            txn,
            priority,
            writes: vec![put("x", "never")],
            reads: vec![LockTarget::Key(b"z".to_vec())],
            lease: Some(lease),
            participants: Vec::new(),
            conditions: Vec::new(),
            deadline: None,
        };
        let mut committed = c.submit(leader, ShardId(2), commit);
        let answer = answer_within(&mut c, &mut committed, Duration::from_secs(2));
        assert!(
            matches!(answer, Some(Err(txn::TxnError::Aborted(txn::AbortReason::ProposalDropped)))),
            "seed {seed}: the commit behind the split: {answer:?}"
        );
        let split = answer_within(&mut c, &mut split, Duration::from_secs(2));
        assert!(matches!(split, Some(Ok(_))), "seed {seed}: the split: {split:?}");
        let until = c.now() + Duration::from_secs(1);
        c.run_until(until);
        for server in SERVERS {
            assert_eq!(c.versions(server, b"x"), vec![], "seed {seed}: {server}'s versions of x");
        }
    }
}

/// Goal: the half a split makes never assigns a timestamp at or below
/// one its shard assigned before the split, even from a leader whose
/// clock has gone back: it starts above everything the shard applied.
/// Method: per seed, write `x` on shard 2; split shard 2 at `y`; set the
/// new half's leader's clock back by a second (stepped servers do not
/// watch their clocks); write `z` there: its commit timestamp must exceed
/// x's (starting from its clock alone, it would be a second below).
#[test]
fn a_new_half_never_assigns_below_its_shards_timestamps() {
    for seed in 490..493 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.run_until(Duration::from_secs(1));
        let write =
            |key: &str| txn::Input::Write { req: RequestId(0), writes: vec![put(key, "v")], conditions: vec![] };
        let x_ts = match c.call(ShardId(2), write("x"), Duration::from_secs(1)) {
            Ok(txn::Answer::Committed { commit_ts, applied: true }) => commit_ts,
            other => panic!("seed {seed}: the write of x: {other:?}"),
        };
        let split = c.split(ShardId(2), b"y", ShardId(10), child_replicas(), Duration::from_secs(2));
        assert!(split.is_ok(), "seed {seed}: the split: {split:?}");
        run_until_led(&mut c, ShardId(10));
        let leader = c.leader(ShardId(10)).expect("the new half has a leader");
        let back = c.clock_offset(leader) - 1_000_000_000;
        c.set_clock_offset(leader, back);
        let z_ts = match c.call(ShardId(10), write("z"), Duration::from_secs(3)) {
            Ok(txn::Answer::Committed { commit_ts, applied: true }) => commit_ts,
            other => panic!("seed {seed}: the write of z: {other:?}"),
        };
        assert!(z_ts > x_ts, "seed {seed}: the new half wrote z at {z_ts:?}, not above x's {x_ts:?}");
    }
}

/// Goal: read-write transactions over two shards stay strictly
/// serializable (the jepsen list-append checker: no G0, G1, G-single or
/// G2 cycle, with or without real-time edges; no aborted or garbage
/// reads) while the seed pauses, crashes (between steps or inside one)
/// and restarts shard leaders,
/// partitions them away, moves leaderships, and skews and jumps clocks
/// within epsilon; enough transactions commit for that to mean
/// something; and a seed replays its run exactly.
/// Method: SPANDB_STEPPED_TXN_SEEDS seeds (default 6, which include 604:
/// without the fix of 2026-12-02 it stops on `txn::shard`'s assertion
/// that a committing transaction's keys are locked by it alone) of
/// `stepped_list_append::run`, the first one twice (the same history,
/// op for op, at the same simulated instants); the verdict names the
/// anomaly.
#[test]
fn transactions_stay_strictly_serializable_under_faults_across_seeds() {
    let seeds: u64 = std::env::var("SPANDB_STEPPED_TXN_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    for seed in 600..600 + seeds {
        let (history, cluster) = stepped_list_append::run(&stepped_list_append::Run::new(seed));
        if seed == 600 {
            let (again, _) = stepped_list_append::run(&stepped_list_append::Run::new(seed));
            assert!(history.ops() == again.ops(), "seed {seed} ran differently the second time");
        }
        let verdict = jepsen::checker::list_append::check(&history, jepsen::ConsistencyModel::StrictSerializable);
        assert!(verdict.is_valid(), "seed {seed}: {verdict}: {:#?}", verdict.anomalies);
        let ok = history.pairs().filter(|p| p.outcome() == jepsen::OpType::Ok).count();
        eprintln!(
            "seed {seed}: {ok} of {} transactions committed, {} writes acknowledged and checked in every replica, {} snapshots, {} crashes inside a step; {:?}",
            history.pairs().len(),
            cluster.writes_acknowledged(),
            cluster.snapshots_delivered(),
            cluster.crashes_in_step(),
            verdict.stats
        );
        assert!(cluster.writes_acknowledged() >= 100, "seed {seed}: the commits' writes are watched");
        assert!(ok >= 100, "seed {seed}: only {ok} transactions committed of {}", history.pairs().len());
        for edge in ["edges-ww", "edges-wr", "edges-rw", "edges-rt"] {
            assert!(verdict.stats.get(edge).is_some_and(|n| *n > 10), "seed {seed}: {:?}", verdict.stats);
        }
    }
}

/// Goal: read-write transactions stay strictly serializable while shards
/// split under them, among the faults above: a transaction whose locked
/// key moves aborts (retryably), one routed by the old map is refused, a
/// commit admitted before a split that names a moved key is refused when
/// it applies, and writes acknowledged before the split are read from
/// the child after it. Enough splits take place, and enough commit, for
/// that to mean something.
/// Method: SPANDB_STEPPED_SPLIT_SEEDS seeds (default 4) from 700 of
/// `stepped_list_append::run` with `splits` on (a split of a shard the
/// seed picks, at a key in use, about every other second), checked by the
/// list-append checker; the splits that took place are counted.
#[test]
fn transactions_stay_strictly_serializable_across_splits() {
    let seeds: u64 = std::env::var("SPANDB_STEPPED_SPLIT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let mut splits = 0;
    for seed in 700..700 + seeds {
        let run = stepped_list_append::Run { splits: true, ..stepped_list_append::Run::new(seed) };
        let (history, cluster) = stepped_list_append::run(&run);
        let verdict = jepsen::checker::list_append::check(&history, jepsen::ConsistencyModel::StrictSerializable);
        assert!(verdict.is_valid(), "seed {seed}: {verdict}: {:#?}", verdict.anomalies);
        let ok = history.pairs().filter(|p| p.outcome() == jepsen::OpType::Ok).count();
        let split_here = cluster.trace.iter().filter(|e| e.contains(" split ") && !e.contains("refused")).count();
        splits += split_here;
        eprintln!(
            "seed {seed}: {ok} of {} transactions committed, {split_here} splits, {} shards at the end, {} writes acknowledged and checked; {:?}",
            history.pairs().len(),
            cluster.shard_ids().len(),
            cluster.writes_acknowledged(),
            verdict.stats
        );
        assert!(ok >= 100, "seed {seed}: only {ok} transactions committed of {}", history.pairs().len());
    }
    assert!(splits >= seeds as usize, "only {splits} splits took place in {seeds} seeds");
}

/// Goal: read-write transactions stay strictly serializable while
/// replicas move between servers under the faults above (loss, pauses,
/// crashes, partitions, leadership moves, clock jumps): concurrent
/// membership changes keep every acknowledged write and lose no
/// transaction; enough moves finish for that to mean something; at the
/// end every shard has three voters on distinct servers and no joint
/// configuration.
/// Method: SPANDB_STEPPED_MOVE_SEEDS seeds (default 3: the faults refuse
/// or abandon nearly every move of some seeds, such as 800 and 801) from 800 of
/// `stepped_list_append::run` on 4 servers with `moves` on (a move of a
/// replica the seed picks, driven step by step beside the clients),
/// checked by the list-append checker; then the cluster runs 3 s more
/// without faults, and the descriptors are read.
#[test]
fn transactions_stay_strictly_serializable_while_replicas_move() {
    let seeds: u64 = std::env::var("SPANDB_STEPPED_MOVE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut moved = 0;
    for seed in 800..800 + seeds {
        let mut run = stepped_list_append::Run { moves: true, ..stepped_list_append::Run::new(seed) };
        run.setup.servers = 4;
        let (history, mut cluster) = stepped_list_append::run(&run);
        let verdict = jepsen::checker::list_append::check(&history, jepsen::ConsistencyModel::StrictSerializable);
        assert!(verdict.is_valid(), "seed {seed}: {verdict}: {:#?}", verdict.anomalies);
        let ok = history.pairs().filter(|p| p.outcome() == jepsen::OpType::Ok).count();
        let moves: Vec<&String> = cluster.trace.iter().filter(|e| e.contains(" move ")).collect();
        let done = moves.iter().filter(|e| e.ends_with(": done")).count();
        moved += done;
        eprintln!("seed {seed}: {ok} of {} transactions committed; moves: {moves:#?}", history.pairs().len());
        assert!(ok >= 100, "seed {seed}: only {ok} transactions committed of {}", history.pairs().len());
        let until = cluster.now() + Duration::from_secs(3);
        cluster.run_until(until);
        for d in cluster.descriptors().values() {
            let voters: BTreeMap<ServerId, usize> =
                d.replicas.iter().filter(|r| r.role == meta::ReplicaRole::Voter).fold(BTreeMap::new(), |mut m, r| {
                    *m.entry(r.server_id).or_default() += 1;
                    m
                });
            assert!(voters.len() == 3 && voters.values().all(|n| *n == 1), "seed {seed}: {d:?}");
            assert!(
                d.replicas.iter().all(|r| matches!(r.role, meta::ReplicaRole::Voter | meta::ReplicaRole::Learner)),
                "seed {seed}: a joint configuration remains: {d:?}"
            );
        }
    }
    assert!(moved >= seeds as usize, "only {moved} moves finished in {seeds} seeds");
}

/// Goal: garbage collection removes what it may on every replica, though
/// it skips the rounds that can find nothing (`spanserver::shard::gc`):
/// in a cluster bootstrapped empty, in a split's new half (which knows
/// what its parent knew), and after a restart (which forgets what was
/// written).
/// Method: per seed, GC every second, keeping one second of versions;
/// write `k` twice and split its shard at `k` (the new half holds it),
/// write `m` twice on the other half; run 4 s: every server holds only
/// the newer version of each. Then restart a server, write `k` once
/// more, run 4 s: only that version is left.
#[test]
fn garbage_is_collected_on_every_replica() {
    for seed in 800..802 {
        let setup = Setup { gc: GcConfig { retention_s: 1, interval_s: 1 }, ..Setup::default() };
        let mut c = SteppedCluster::with(seed, setup);
        c.run_until(Duration::from_secs(1));
        let put_twice = |c: &mut SteppedCluster, key: &str, values: [&str; 2]| {
            for value in values {
                let shard = c.shard_of(key.as_bytes());
                match c.call(shard, write(key, value), Duration::from_secs(2)) {
                    Ok(txn::Answer::Committed { .. }) => {}
                    other => panic!("seed {seed}: the write of {key}={value}: {other:?}"),
                }
            }
        };
        put_twice(&mut c, "k", ["k1", "k2"]);
        let shard = c.shard_of(b"k");
        let split = c.split(shard, b"k", ShardId(10), child_replicas(), Duration::from_secs(2));
        assert!(split.is_ok(), "seed {seed}: the split: {split:?}");
        assert_eq!(c.shard_of(b"k"), ShardId(10), "seed {seed}: the new half holds k");
        run_until_led(&mut c, ShardId(10));
        put_twice(&mut c, "a", ["a1", "a2"]);
        let only = |c: &SteppedCluster, key: &str, value: &str| {
            for s in c.server_ids() {
                let versions = c.versions(s, key.as_bytes());
                let values: Vec<_> = versions.iter().map(|(_, v)| v.clone()).collect();
                assert_eq!(values, vec![Some(value.as_bytes().to_vec())], "seed {seed}: {s}'s versions of {key}");
            }
        };
        let later = c.now() + Duration::from_secs(4);
        c.run_until(later);
        only(&c, "k", "k2");
        only(&c, "a", "a2");
        kill_and_restart(&mut c, ServerId(1));
        put_twice(&mut c, "k", ["k3", "k4"]);
        let later = c.now() + Duration::from_secs(4);
        c.run_until(later);
        only(&c, "k", "k4");
    }
}

/// Reads `a` in a new transaction on shard 1, then commits it with no
/// writes; returns the answer and by how much shard 1's committed index
/// at `leader` moved over the commit.
fn read_a_and_commit_nothing(c: &mut SteppedCluster, seed: u64, n: u64, leader: ServerId) -> (txn::Answer, u64) {
    let shard = ShardId(1);
    // A write first: the shard is not idle, so no closed timestamp is
    // proposed during the commit (`raft.close_timestamp_ms` is 200).
    c.call(shard, write("b", "v"), Duration::from_secs(1)).unwrap_or_else(|e| panic!("seed {seed}: a write: {e}"));
    let txn = TxnId::random(u128::from(seed) << 64 | u128::from(n));
    let priority = Priority::new(Timestamp::from_nanos(n), txn);
    let lease = match c.call(shard, first_read(txn, priority, "a"), Duration::from_secs(1)) {
        Ok(txn::Answer::Locked { lease }) => lease,
        other => panic!("seed {seed}: the read of a: {other:?}"),
    };
    let committed = |c: &SteppedCluster| c.raft_state(leader, shard).expect("the leader's replica").committed_index;
    let before = committed(c);
    let commit = txn::Input::Commit {
        req: RequestId(0),
        txn,
        priority,
        writes: Vec::new(),
        reads: vec![LockTarget::Key(b"a".to_vec())],
        lease: Some(lease),
        participants: Vec::new(),
        conditions: Vec::new(),
        deadline: None,
    };
    let answer = c.call(shard, commit, Duration::from_secs(1)).unwrap_or_else(|e| panic!("seed {seed}: commit: {e}"));
    (answer, committed(c) - before)
}

/// Goal: a transaction that only read commits without a Raft entry once
/// its leader holds a lease (`txn::shard`, "A commit that wrote
/// nothing"), and such a commit asks for the lease when it is missing.
/// Method: per seed, a fresh cluster (no read has given its leader a
/// lease yet): a transaction reads `a` and commits nothing, which is
/// replicated; 50 ms later another does the same and the leader's
/// committed index does not move; a writer then takes `a` at once.
#[test]
fn a_commit_that_only_read_needs_no_raft_entry_once_the_leader_holds_a_lease() {
    for seed in 0..4 {
        let mut c = SteppedCluster::new(seed, 3, 2);
        c.run_until(Duration::from_secs(2));
        let leader = c.leader(ShardId(1)).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        let (answer, entries) = read_a_and_commit_nothing(&mut c, seed, 1, leader);
        assert!(matches!(answer, txn::Answer::Committed { applied: true, .. }), "seed {seed}: {answer:?}");
        assert!(entries >= 1, "seed {seed}: without a lease the commit is replicated");
        let until = c.now() + Duration::from_millis(50);
        c.run_until(until);
        let (answer, entries) = read_a_and_commit_nothing(&mut c, seed, 2, leader);
        assert!(matches!(answer, txn::Answer::Committed { applied: true, .. }), "seed {seed}: {answer:?}");
        assert_eq!(entries, 0, "seed {seed}: under the lease the commit needs no entry");
        // Its lock is gone: a write of `a` commits.
        let wrote = c.call(ShardId(1), write("a", "x"), Duration::from_secs(1));
        assert!(matches!(wrote, Ok(txn::Answer::Committed { applied: true, .. })), "seed {seed}: {wrote:?}");
    }
}
