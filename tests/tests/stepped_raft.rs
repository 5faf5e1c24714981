//! The 6.824 Raft scenarios (labs 2A to 2C: election, replication,
//! persistence) on stepped clusters (`tests::stepped`): real servers,
//! one thread, simulated time, a seed. Each scenario runs 3 seeds
//! (`make sim RAFT_SEEDS=N` runs N: 100 pass in about 80 s), and the
//! cluster checks Raft's rules after every step (one leader per shard per
//! term, committed indexes never going back, the same entry applied at
//! each index), so a double leader cannot slip between two samples as it
//! could on real threads.
//!
//! What the scenarios look at afterwards is what a user sees: which
//! writes were acknowledged, and what every replica's RocksDB holds.

use std::collections::BTreeMap;
use std::time::Duration;

use meta::{RequestId, ServerId, ShardId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tests::stepped::{CrashPoint, Faults, Setup, SteppedCluster};
use tokio::sync::oneshot;
use truetime::Timestamp;
use txn::{Answer, TxnError};

const SHARD: ShardId = ShardId(1);
/// How long a leader may take to appear after a fault heals.
const ELECTION_WITHIN: Duration = Duration::from_secs(3);
/// How long a write may take through a working leader.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// The seeds each scenario runs: 3, or `SPANDB_STEPPED_RAFT_SEEDS`
/// (`make sim RAFT_SEEDS=N`).
fn seeds() -> std::ops::Range<u64> {
    let n = std::env::var("SPANDB_STEPPED_RAFT_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    0..n
}

type Reply = oneshot::Receiver<Result<Answer, TxnError>>;

/// `servers` servers and one shard with `replication` replicas.
fn cluster(seed: u64, servers: u64, replication: usize) -> SteppedCluster {
    SteppedCluster::with(seed, Setup { servers, shards: 1, replication, ..Setup::default() })
}

fn write(key: &str, value: &str) -> txn::Input {
    txn::Input::Write {
        req: RequestId(0),
        writes: vec![txn::Write { key: key.as_bytes().to_vec(), value: Some(value.as_bytes().to_vec()) }],
        conditions: Vec::new(),
    }
}

fn run_for(c: &mut SteppedCluster, d: Duration) {
    let until = c.now() + d;
    c.run_until(until);
}

/// Runs until a replica on one of `among` leads the shard (it is up and
/// its own Raft state says so), at most `within`.
fn leader_among(c: &mut SteppedCluster, among: &[ServerId], within: Duration) -> Option<ServerId> {
    let deadline = c.now() + within;
    loop {
        let leading = among.iter().copied().find(|s| c.raft_state(*s, SHARD).is_some_and(|st| st.leader));
        if leading.is_some() || c.now() >= deadline {
            return leading;
        }
        run_for(c, Duration::from_millis(10));
    }
}

/// Runs until `server`'s replica no longer leads, at most `within`.
fn steps_down(c: &mut SteppedCluster, server: ServerId, within: Duration) -> bool {
    let deadline = c.now() + within;
    while c.raft_state(server, SHARD).is_some_and(|st| st.leader) {
        if c.now() >= deadline {
            return false;
        }
        run_for(c, Duration::from_millis(10));
    }
    true
}

/// A write through the shard's leader; its commit timestamp if acknowledged.
fn put(c: &mut SteppedCluster, key: &str, value: &str) -> Option<Timestamp> {
    let shard = c.shard_of(key.as_bytes());
    match c.call(shard, write(key, value), ANSWER_WITHIN) {
        Ok(Answer::Committed { commit_ts, applied: true }) => Some(commit_ts),
        _ => None,
    }
}

/// Runs until `reply` is answered, at most `within`; `None` if it was not.
fn answer_within(c: &mut SteppedCluster, reply: &mut Reply, within: Duration) -> Option<Result<Answer, TxnError>> {
    let deadline = c.now() + within;
    loop {
        match reply.try_recv() {
            Ok(answer) => return Some(answer),
            Err(oneshot::error::TryRecvError::Closed) => return Some(Err(TxnError::Unavailable("dropped".into()))),
            Err(oneshot::error::TryRecvError::Empty) if c.now() >= deadline => return None,
            Err(oneshot::error::TryRecvError::Empty) => run_for(c, Duration::from_millis(10)),
        }
    }
}

fn acknowledged(answer: &Option<Result<Answer, TxnError>>) -> bool {
    matches!(answer, Some(Ok(Answer::Committed { applied: true, .. })))
}

/// The value of `key` in `server`'s RocksDB (its latest version).
fn value_on(c: &SteppedCluster, server: ServerId, key: &str) -> Option<String> {
    c.latest(server, key.as_bytes()).and_then(|(_, v)| v).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Isolates `server` from every other server.
fn isolate(c: &mut SteppedCluster, server: ServerId) {
    for other in c.server_ids().into_iter().filter(|o| *o != server) {
        c.partition(server, other);
    }
}

/// Elects a leader among 3 servers and cuts it off from the others;
/// returns it and the others.
fn cut_off_the_leader(c: &mut SteppedCluster, seed: u64) -> (ServerId, Vec<ServerId>) {
    let all = c.server_ids();
    let old = leader_among(c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
    isolate(c, old);
    (old, all.into_iter().filter(|s| *s != old).collect())
}

/// Goal (6.824 TestInitialElection2A): a fresh cluster elects one leader
/// that every replica follows, and without faults keeps it: no further
/// election, no replica in another term.
/// Method: per seed, elect, then watch three more seconds (many election
/// timeouts).
#[test]
fn a_leader_is_elected_and_kept_without_faults() {
    for seed in seeds() {
        let mut c = cluster(seed, 3, 3);
        let all = c.server_ids();
        let leader = leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        let term = c.raft_state(leader, SHARD).expect("the leader is up").term;
        c.take_events();
        run_for(&mut c, Duration::from_secs(3));
        assert_eq!(c.take_events(), Vec::<String>::new(), "seed {seed}: elections without faults");
        for s in &all {
            let st = c.raft_state(*s, SHARD).expect("up");
            assert_eq!((st.term, st.leader), (term, *s == leader), "seed {seed}: {s} moved on without a fault");
        }
    }
}

/// Goal (6.824 TestReElection2A): when the leader is cut off, the others
/// elect a new one and take writes; when the old leader returns it
/// follows the new one without forcing an election (pre-vote and check
/// quorum), and every replica ends with the new write.
#[test]
fn a_cut_off_leader_is_replaced_and_returns_as_a_follower() {
    for seed in seeds() {
        let mut c = cluster(seed, 3, 3);
        let all = c.server_ids();
        let (old, rest) = cut_off_the_leader(&mut c, seed);
        let new = leader_among(&mut c, &rest, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no new leader"));
        assert!(steps_down(&mut c, old, ELECTION_WITHIN), "seed {seed}: the cut-off {old} still leads");
        assert!(put(&mut c, "k", "during").is_some(), "seed {seed}: the majority takes writes");
        let term = c.raft_state(new, SHARD).expect("up").term;

        c.heal();
        run_for(&mut c, Duration::from_secs(2));
        let st = c.raft_state(new, SHARD).expect("up");
        assert_eq!((st.leader, st.term), (true, term), "seed {seed}: the returning {old} disturbed {new}");
        let st = c.raft_state(old, SHARD).expect("up");
        assert_eq!((st.leader, st.term), (false, term), "seed {seed}: {old} follows in the new term");
        assert!(put(&mut c, "k", "after").is_some(), "seed {seed}");
        run_for(&mut c, Duration::from_millis(300));
        for s in &all {
            assert_eq!(value_on(&c, *s, "k").as_deref(), Some("after"), "seed {seed}: {s}");
        }
    }
}

/// Goal (6.824 TestManyElections2A): with 7 replicas and 3 of them cut
/// off at random, again and again, the other 4 always elect a leader and
/// take a write; never two leaders in a term (checked at every step);
/// after the last heal every replica has every round's write.
#[test]
fn many_elections_among_seven_replicas_with_three_cut_off() {
    for seed in seeds() {
        let mut c = cluster(seed, 7, 7);
        let mut rng = StdRng::seed_from_u64(seed);
        let all = c.server_ids();
        leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        for round in 0..8 {
            let mut rest = all.clone();
            let cut: Vec<ServerId> = (0..3).map(|_| rest.remove(rng.random_range(0..rest.len()))).collect();
            for s in &cut {
                isolate(&mut c, *s);
            }
            leader_among(&mut c, &rest, ELECTION_WITHIN)
                .unwrap_or_else(|| panic!("seed {seed} round {round}: no leader among {rest:?}"));
            for s in &cut {
                assert!(steps_down(&mut c, *s, ELECTION_WITHIN), "seed {seed} round {round}: cut-off {s} leads");
            }
            assert!(put(&mut c, &format!("round{round}"), "done").is_some(), "seed {seed} round {round}");
            c.heal();
        }
        run_for(&mut c, Duration::from_secs(1));
        for s in &all {
            for round in 0..8 {
                assert_eq!(value_on(&c, *s, &format!("round{round}")).as_deref(), Some("done"), "seed {seed}: {s}");
            }
        }
    }
}

/// Goal (6.824 TestFailNoAgree2B): with 3 of 5 replicas cut off, a
/// write to the leader does not commit (not answered, the committed index
/// stays, the leader steps down); after the heal the cluster agrees again
/// and the write's answer is definite: acknowledged and on every replica,
/// or failed and on none.
#[test]
fn no_write_commits_without_a_quorum() {
    for seed in seeds() {
        let mut c = cluster(seed, 5, 5);
        let all = c.server_ids();
        let leader = leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        assert!(put(&mut c, "before", "1").is_some(), "seed {seed}");
        let others: Vec<ServerId> = all.iter().copied().filter(|s| *s != leader).collect();
        for s in &others[1..] {
            isolate(&mut c, *s);
        }
        let committed = c.raft_state(leader, SHARD).expect("up").committed_index;
        let mut reply = c.submit(leader, SHARD, write("nq", "1"));
        assert!(steps_down(&mut c, leader, ELECTION_WITHIN), "seed {seed}: a leader without a quorum stays");
        assert!(reply.try_recv().is_err(), "seed {seed}: a write was answered without a quorum");
        assert_eq!(c.raft_state(leader, SHARD).expect("up").committed_index, committed, "seed {seed}");

        c.heal();
        let answer = answer_within(&mut c, &mut reply, Duration::from_secs(5));
        leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader after the heal"));
        assert!(put(&mut c, "after", "1").is_some(), "seed {seed}: the cluster agrees again");
        run_for(&mut c, Duration::from_millis(300));
        let want = acknowledged(&answer).then(|| "1".to_string());
        assert!(acknowledged(&answer) || matches!(answer, Some(Err(_))), "seed {seed}: not definite: {answer:?}");
        for s in &all {
            assert_eq!(value_on(&c, *s, "nq"), want, "seed {seed}: {s}, answered {answer:?}");
            assert_eq!(value_on(&c, *s, "after").as_deref(), Some("1"), "seed {seed}: {s}");
        }
    }
}

/// Goal (6.824 TestRejoin2B and TestBackup2B): a leader cut off from the
/// majority accepts writes it can never commit; the majority elects
/// another and moves on; after the heal the cut-off writes are never
/// acknowledged, the old leader's conflicting log is replaced (many
/// entries of it), and every replica holds exactly the majority's writes.
#[test]
fn a_cut_off_leaders_writes_are_discarded() {
    for seed in seeds() {
        let mut c = cluster(seed, 3, 3);
        let all = c.server_ids();
        let (old, rest) = cut_off_the_leader(&mut c, seed);
        let mut stale: Vec<Reply> = (0..30).map(|i| c.submit(old, SHARD, write(&format!("old{i}"), "x"))).collect();
        leader_among(&mut c, &rest, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no new leader"));
        for i in 0..30 {
            assert!(put(&mut c, &format!("new{i}"), "y").is_some(), "seed {seed}: new{i}");
        }

        c.heal();
        for (i, reply) in stale.iter_mut().enumerate() {
            let answer = answer_within(&mut c, reply, Duration::from_secs(5));
            assert!(matches!(answer, Some(Err(_))), "seed {seed}: old{i} only the cut-off leader saw: {answer:?}");
        }
        leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader after the heal"));
        run_for(&mut c, Duration::from_millis(500));
        for s in &all {
            for i in 0..30 {
                assert_eq!(value_on(&c, *s, &format!("old{i}")), None, "seed {seed}: {s} has old{i}");
                assert_eq!(value_on(&c, *s, &format!("new{i}")).as_deref(), Some("y"), "seed {seed}: {s} new{i}");
            }
        }
    }
}

/// Goal (6.824 TestPersist12C): acknowledged writes survive a crash of
/// every server at once; after the restart leaders are elected again and
/// new writes get timestamps above every earlier one (timestamps stay
/// monotonic across restarts).
#[test]
fn acknowledged_writes_survive_a_crash_of_every_server() {
    for seed in seeds() {
        let mut c = SteppedCluster::with(seed, Setup { servers: 3, shards: 2, ..Setup::default() });
        let all = c.server_ids();
        leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        run_for(&mut c, Duration::from_millis(500));
        let mut acked = BTreeMap::new();
        let mut last_ts = Timestamp::ZERO;
        for i in 0..40 {
            let key = format!("{}{i:03}", if i % 2 == 0 { "a" } else { "z" });
            if let Some(ts) = put(&mut c, &key, &format!("v{i}")) {
                last_ts = last_ts.max(ts);
                acked.insert(key, format!("v{i}"));
            }
        }
        assert_eq!(acked.len(), 40, "seed {seed}: writes without faults are acknowledged");
        for s in &all {
            c.crash(*s);
        }
        for s in &all {
            c.restart(*s);
        }
        for shard in c.shard_ids() {
            let deadline = c.now() + ELECTION_WITHIN;
            while c.leader(shard).is_none_or(|l| !c.raft_state(l, shard).is_some_and(|st| st.leader)) {
                assert!(c.now() < deadline, "seed {seed}: no leader of {shard} after the restart");
                run_for(&mut c, Duration::from_millis(10));
            }
        }
        run_for(&mut c, Duration::from_millis(300));
        for s in &all {
            for (key, value) in &acked {
                assert_eq!(value_on(&c, *s, key).as_ref(), Some(value), "seed {seed}: {s} lost {key}");
            }
        }
        for key in ["a-after", "z-after"] {
            let ts = put(&mut c, key, "x").unwrap_or_else(|| panic!("seed {seed}: {key} not acknowledged"));
            assert!(ts > last_ts, "seed {seed}: a timestamp went back across the restart: {ts} <= {last_ts}");
        }
    }
}

/// Goal (6.824 TestFigure8Unreliable2C): on a lossy, reordering network
/// (10% loss, up to 20 ms delay) and slow disks (up to 8 ms a write),
/// with servers crashing and restarting at
/// random, leaders most often, between steps or inside one (after a
/// leader's early sends, or after the write), every acknowledged write
/// survives (and no read from a lease misses what a replica applied):
/// once
/// the cluster is whole again, every replica holds a version of every
/// acknowledged write (writers count up, so each value is one write).
#[test]
fn acknowledged_writes_survive_random_crashes_on_a_bad_network() {
    const KEYS: usize = 3;
    let mut crashes_in_step = 0;
    for seed in seeds() {
        let mut c = cluster(seed, 5, 5);
        let mut rng = StdRng::seed_from_u64(seed);
        let all = c.server_ids();
        leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        c.faults = Faults { loss_percent: 10, delay_max: Duration::from_millis(20) };
        // Slow disks, some slower than the network: followers may apply
        // entries before their leader does.
        for s in &all {
            c.set_write_latency(*s, Duration::from_micros(rng.random_range(0..8_000)));
        }
        let mut counter = [0u64; KEYS];
        let mut acked: Vec<(usize, u64)> = Vec::new();
        let mut waiting: Vec<(usize, u64, Reply)> = Vec::new();
        let mut down: Vec<ServerId> = Vec::new();
        let mut crashes = 0;
        for _ in 0..12 {
            if let Some(leader) = c.leader(SHARD).filter(|l| c.is_up(*l)) {
                for (k, n) in counter.iter_mut().enumerate() {
                    *n += 1;
                    waiting.push((k, *n, c.submit(leader, SHARD, write(&format!("w{k}"), &n.to_string()))));
                }
                // A read gives the leader a lease, which the cluster's
                // checks then hold against every replica's applied state.
                drop(c.read_index(leader, SHARD));
            }
            run_for(&mut c, Duration::from_millis(rng.random_range(100..1000)));
            waiting.retain_mut(|(k, n, reply)| match reply.try_recv() {
                Ok(Ok(Answer::Committed { applied: true, .. })) => {
                    acked.push((*k, *n));
                    false
                }
                Err(oneshot::error::TryRecvError::Empty) => true,
                _ => false,
            });
            if down.len() < 2 && rng.random_bool(0.7) {
                let leader = c.leader(SHARD).filter(|l| c.is_up(*l));
                let victim = leader.filter(|_| rng.random_bool(0.7)).unwrap_or(all[rng.random_range(0..all.len())]);
                if !down.contains(&victim) {
                    // At once, or inside its next step that writes.
                    match rng.random_range(0..3) {
                        0 => c.crash(victim),
                        1 => c.crash_in_step(victim, CrashPoint::AfterEarlySends),
                        _ => c.crash_in_step(victim, CrashPoint::AfterWrite),
                    }
                    down.push(victim);
                    crashes += 1;
                }
            } else if !down.is_empty() {
                let s = down.remove(rng.random_range(0..down.len()));
                c.restart(s);
            }
        }
        for s in down.drain(..) {
            c.restart(s);
        }
        c.faults = Faults::default();
        let leader =
            leader_among(&mut c, &all, Duration::from_secs(10)).unwrap_or_else(|| panic!("seed {seed}: no leader"));
        assert!(put(&mut c, "after", "1").is_some(), "seed {seed}: a write after the chaos");
        let committed = c.raft_state(leader, SHARD).expect("up").committed_index;
        let deadline = c.now() + Duration::from_secs(5);
        while !all.iter().all(|s| c.raft_state(*s, SHARD).is_some_and(|st| st.applied_index >= committed)) {
            assert!(c.now() < deadline, "seed {seed}: replicas did not catch up: {:?}", c.progress());
            run_for(&mut c, Duration::from_millis(10));
        }
        assert!(crashes >= 3 && acked.len() >= 6, "seed {seed}: {crashes} crashes, {} acknowledged", acked.len());
        crashes_in_step += c.crashes_in_step();
        for s in &all {
            for (k, n) in &acked {
                let versions = c.versions(*s, format!("w{k}").as_bytes());
                let held = versions.iter().any(|(_, v)| v.as_deref() == Some(n.to_string().as_bytes()));
                assert!(held, "seed {seed}: {s} lost w{k} = {n}, which was acknowledged");
            }
        }
    }
    assert!(crashes_in_step > 0, "no crash happened inside a step in {:?} seeds", seeds());
}

/// What [`reads_at_a_cut_off_leader`] saw.
struct CutOffReads {
    /// When each read answered `Ok` was issued, and when it was answered.
    served: Vec<(Duration, Duration)>,
    /// When a request handler would have served a read from the lease
    /// without asking the loop (checked every millisecond).
    handler_served: Vec<Duration>,
    /// When a replica on `others` first led, if one did.
    elected: Option<Duration>,
}

/// Reads issued at `leader` every millisecond for `watch`, while the
/// other servers may elect another leader.
fn reads_at_a_cut_off_leader(
    c: &mut SteppedCluster,
    leader: ServerId,
    others: &[ServerId],
    watch: Duration,
) -> CutOffReads {
    let deadline = c.now() + watch;
    let mut served = Vec::new();
    let mut handler_served = Vec::new();
    let mut elected = None;
    let mut reading: Option<(Duration, oneshot::Receiver<spanserver::error::Result<Timestamp>>)> = None;
    while c.now() < deadline {
        if elected.is_none() && others.iter().any(|s| c.raft_state(*s, SHARD).is_some_and(|st| st.leader)) {
            elected = Some(c.now());
        }
        match reading.as_mut().map(|(at, rx)| (*at, rx.try_recv())) {
            Some((_, Err(oneshot::error::TryRecvError::Empty))) => {}
            Some((at, Ok(Ok(_)))) => {
                served.push((at, c.now()));
                reading = None;
            }
            _ => reading = None,
        }
        if reading.is_none() {
            reading = Some((c.now(), c.read_index(leader, SHARD)));
        }
        if c.lease_reads_cover(leader, SHARD) {
            handler_served.push(c.now());
        }
        run_for(c, Duration::from_millis(1));
    }
    CutOffReads { served, handler_served, elected }
}

/// Checks that no read, through the loop or straight from a handler,
/// was served at the cut-off leader once another replica led.
fn assert_no_read_after_another_led(seed: &str, reads: &CutOffReads) -> Duration {
    let elected = reads.elected.unwrap_or_else(|| panic!("seed {seed}: the others elected no leader"));
    let (last, _) = *reads.served.last().unwrap_or_else(|| panic!("seed {seed}: no read served from the lease"));
    assert!(last < elected, "seed {seed}: a read issued at {last:?}, after another leader at {elected:?}");
    if let Some(last) = reads.handler_served.last() {
        assert!(*last < elected, "seed {seed}: a handler read at {last:?}, after another leader at {elected:?}");
    }
    elected
}

/// Three servers, one shard, a write, and a read that gave the leader
/// its lease: the cluster, its servers and the leader.
fn cluster_with_a_leased_leader(seed: u64) -> (SteppedCluster, Vec<ServerId>, ServerId) {
    let mut c = cluster(seed, 3, 3);
    let all = c.server_ids();
    let leader = leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
    assert!(put(&mut c, "k", "v").is_some(), "seed {seed}");
    assert!(read_confirmed(&mut c, leader), "seed {seed}: a read at the leader");
    (c, all, leader)
}

/// Runs the cluster for `watch`, a millisecond at a time; returns when a
/// request handler at `leader` would have served a read from the lease.
fn handler_lease_reads_during(c: &mut SteppedCluster, leader: ServerId, watch: Duration) -> Vec<Duration> {
    let until = c.now() + watch;
    let mut covered = Vec::new();
    while c.now() < until {
        run_for(c, Duration::from_millis(1));
        if c.lease_reads_cover(leader, SHARD) {
            covered.push(c.now());
        }
    }
    covered
}

/// Waits for `server`'s answer to a read it was just asked.
fn read_confirmed(c: &mut SteppedCluster, server: ServerId) -> bool {
    let mut rx = c.read_index(server, SHARD);
    let deadline = c.now() + ANSWER_WITHIN;
    while c.now() < deadline {
        match rx.try_recv() {
            Ok(answer) => return answer.is_ok(),
            Err(oneshot::error::TryRecvError::Closed) => return false,
            Err(oneshot::error::TryRecvError::Empty) => run_for(c, Duration::from_millis(1)),
        }
    }
    false
}

/// Goal: a leader's lease (`spanserver::shard::lease`) lets it answer
/// linearizable reads without a heartbeat round, and ends before any
/// other leader can be elected, so a leader cut off from everyone serves
/// reads for a while and then none: never one issued after another
/// replica led (which could have committed writes it would miss).
/// Method: per seed, a read confirms the lease; the leader is cut off;
/// a read every millisecond until the others have elected a leader.
#[test]
fn a_cut_off_leader_serves_reads_from_its_lease_only_until_another_could_lead() {
    for seed in seeds() {
        let (mut c, all, leader) = cluster_with_a_leased_leader(seed);
        let others: Vec<ServerId> = all.iter().copied().filter(|s| *s != leader).collect();
        isolate(&mut c, leader);
        let cut_at = c.now();
        let reads = reads_at_a_cut_off_leader(&mut c, leader, &others, Duration::from_millis(600));
        // The first read after the cut is answered from the lease, in
        // the step that takes it: no round, no waiting for another Ready;
        // and a handler needs no step at all.
        let served = &reads.served;
        assert!(
            served.first().is_some_and(|(at, answered)| *at == cut_at && *answered <= *at + Duration::from_millis(1)),
            "seed {seed}: the first read after the cut was not answered at once from the lease: {served:?}"
        );
        assert_eq!(reads.handler_served.first(), Some(&cut_at), "seed {seed}: no handler read from the lease");
        assert_no_read_after_another_led(&seed.to_string(), &reads);
    }
}

/// Goal: a follower that answered the heartbeat behind a lease and then
/// restarted does not let another leader in while the lease holds.
/// raft-rs forgets the leader it heard from and would vote at once; the
/// event loop keeps a restarted replica from voting for one election
/// timeout. (Here raft-rs protects too: F2 misses the leader's closed
/// timestamp entries while it is cut off, so F1 refuses it for its
/// shorter log, and F1's own election clock starts at its restart. The
/// quiet matters when the candidate's log is current: an idle leader
/// whose clock is distrusted proposes nothing.)
/// Method: the leader L is cut off from F2 first, so F2 keeps
/// campaigning and only F1 answers L's heartbeats; a read gives L its
/// lease (confirmed by F1 alone); then L is cut off from F1 too and F1
/// crashes and restarts at once, at a different point of F2's campaigns
/// in each run; no read may be served at L after F2 (or F1) leads.
#[test]
fn a_follower_restarted_under_a_lease_does_not_elect_another_leader_while_it_holds() {
    for seed in seeds() {
        for offset_ms in [0, 25, 50, 75] {
            let mut c = cluster(seed, 3, 3);
            let all = c.server_ids();
            let leader =
                leader_among(&mut c, &all, ELECTION_WITHIN).unwrap_or_else(|| panic!("seed {seed}: no leader"));
            assert!(put(&mut c, "k", "v").is_some(), "seed {seed}");
            let others: Vec<ServerId> = all.iter().copied().filter(|s| *s != leader).collect();
            let (f1, f2) = (others[0], others[1]);
            c.partition(leader, f2);
            run_for(&mut c, Duration::from_millis(200 + offset_ms));
            assert!(read_confirmed(&mut c, leader), "seed {seed}: a read at the leader, confirmed by {f1}");
            c.partition(leader, f1);
            c.crash(f1);
            c.restart(f1);
            let reads = reads_at_a_cut_off_leader(&mut c, leader, &others, Duration::from_millis(600));
            assert_no_read_after_another_led(&format!("{seed}+{offset_ms}"), &reads);
        }
    }
}

/// Goal: a leadership transfer ends reads from the old leader's lease,
/// also the ones request handlers serve without the loop, before its
/// TimeoutNow can elect the target: the target's vote needs no expired
/// election clock, so the lease's time bound does not protect here.
/// Method: per seed, a read gives the leader its lease; the target's
/// messages are held (the TimeoutNow stays in flight) while a transfer
/// is asked; every millisecond, is a handler at the old leader still
/// allowed to read? Never from the step after the ask: not while the
/// transfer waits (the TimeoutNow may be in flight), nor after the
/// target hears again (the term never leases again, even if raft-rs
/// gave the transfer up).
#[test]
fn a_transfer_ends_handler_reads_from_the_lease_before_the_target_can_lead() {
    for seed in seeds() {
        let (mut c, all, leader) = cluster_with_a_leased_leader(seed);
        assert!(c.lease_reads_cover(leader, SHARD), "seed {seed}: a confirmed lease, and handlers may use it");
        let target = all.iter().copied().find(|s| *s != leader).expect("three servers");
        c.hold(target);
        c.transfer_leader(SHARD, target);
        let mut covered = handler_lease_reads_during(&mut c, leader, Duration::from_millis(100));
        c.deliver(target);
        covered.extend(handler_lease_reads_during(&mut c, leader, Duration::from_millis(500)));
        assert!(
            covered.is_empty(),
            "seed {seed}: handler reads from the lease after the transfer was asked: {covered:?}"
        );
    }
}

/// Goal: a handler reading from the lease at the leader never misses an
/// entry a follower has applied, which the follower could already have
/// served (a bounded-staleness read). A follower applies an entry as soon
/// as it hears the commit index, and the leader's appends carry it before
/// the leader's own write is done (they leave first), so a leader with a
/// slow disk applies it after its followers. Found by `spandb jepsen`: a
/// linearizable read 1.7 ms below a commit that a bounded-staleness read
/// had returned before it began.
/// Method: per seed, a leased leader whose writes take 20 ms; a write;
/// every half millisecond until it is acknowledged, whenever a follower
/// holds the new version and a handler at the leader would read from the
/// lease, the leader's published time must be at or above the version.
#[test]
fn a_lease_read_at_a_slow_leader_sees_what_its_followers_applied() {
    for seed in seeds() {
        let (mut c, all, leader) = cluster_with_a_leased_leader(seed);
        let followers: Vec<ServerId> = all.iter().copied().filter(|s| *s != leader).collect();
        c.set_write_latency(leader, Duration::from_millis(20));
        let mut reply = c.submit(leader, SHARD, write("k", "v2"));
        let deadline = c.now() + ANSWER_WITHIN;
        let mut followers_ahead = 0;
        let answer = loop {
            match reply.try_recv() {
                Ok(answer) => break Some(answer),
                Err(oneshot::error::TryRecvError::Closed) => break None,
                Err(oneshot::error::TryRecvError::Empty) if c.now() >= deadline => break None,
                Err(oneshot::error::TryRecvError::Empty) => run_for(&mut c, Duration::from_micros(500)),
            }
            let applied_at_a_follower = followers
                .iter()
                .filter_map(|f| c.latest(*f, b"k"))
                .filter(|(_, v)| v.as_deref() == Some(b"v2".as_slice()))
                .map(|(ts, _)| ts)
                .max();
            let Some(version) = applied_at_a_follower else { continue };
            let leader_time = c.raft_state(leader, SHARD).map(|st| st.published_max_applied);
            if leader_time.is_some_and(|t| t < version) {
                followers_ahead += 1;
                assert!(
                    !c.lease_reads_cover(leader, SHARD),
                    "seed {seed}: a handler at the leader would read at {leader_time:?} from its lease, \
                     below the version at {version:?} a follower holds"
                );
            }
        };
        assert!(matches!(answer, Some(Ok(Answer::Committed { .. }))), "seed {seed}: the write: {answer:?}");
        assert!(followers_ahead > 0, "seed {seed}: no follower applied the write before the slow leader did");
        // Once the leader has applied it, handlers read from the lease again.
        c.set_write_latency(leader, Duration::ZERO);
        let back = c.now() + Duration::from_millis(500);
        while !c.lease_reads_cover(leader, SHARD) && c.now() < back {
            run_for(&mut c, Duration::from_millis(1));
        }
        assert!(c.lease_reads_cover(leader, SHARD), "seed {seed}: the lease never served handlers again");
    }
}
