//! Cluster goldenscripts: whole stepped clusters (`tests::stepped`: real
//! servers, one thread, simulated time, a seed) driven by a script, with
//! what happened printed and compared with the expected output, in the
//! style of toydb's Raft scripts. A script reads as a scenario and fails
//! on any change of behaviour, including timing: the same seed gives the
//! same run, so the output is exact.
//!
//! ```text
//! cluster seed=1 [servers=3] [shards=2] [skew_ms=1] [loss=0] [delay_ms=5]
//! run MS                     simulated time passes; prints what happened
//! stabilize                  runs until every shard has a leader and every
//!                            live replica applied as far as it (at most 10 s)
//! leaders                    each shard's leader and term
//! put KEY=VALUE...           a plain write through the key's shard leader
//! get KEY                    the key's latest version on every server
//! txn [reads=K,...] [writes="K:V,..."]
//!                            a read-write transaction as the client drives
//!                            one: locked reads, prepares, commit at the
//!                            first written shard; prints its outcome
//! partition S S | isolate S | heal | crash S | restart S | pause S | resume S
//! split KEY                  splits the shard holding KEY at KEY, with new
//!                            ids from 100 on; prints both halves
//! hold S                     S hears nothing (its messages wait in flight,
//!                            none lost) while it runs on
//! deliver S                  what was held for S arrives, in the order it
//!                            would have, and holding stops
//! crash S at=early-sends|write
//!                            S crashes in its next step that writes: after
//!                            the messages that leave before its write (a
//!                            leader's appends), or after the write, before
//!                            it applies or answers anything
//! ```
//!
//! Events print without their times: elections (`shard1 term 2 leader
//! s2`), faults, and each command's answer.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::time::Duration;

use goldenscript::{Command, Context};
use meta::{LockLease, Priority, RequestId, ServerId, ShardId, TxnId};
use tests::stepped::{CrashPoint, Faults, Setup, SteppedCluster};
use truetime::Timestamp;
use txn::{Answer, Input, LockMode, LockTarget, Write};

type Res<T> = Result<T, Box<dyn Error>>;

/// The longest a command waits for its answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// The longest `stabilize` runs.
const STABILIZE_WITHIN: Duration = Duration::from_secs(10);

struct Runner {
    cluster: Option<SteppedCluster>,
    next_txn: u128,
    /// The next id a split takes (shards and replicas), above the static
    /// layout's.
    next_id: u64,
}

fn server(s: &str) -> Res<ServerId> {
    Ok(ServerId(s.strip_prefix('s').ok_or("servers are s<n>")?.parse()?))
}

impl Runner {
    fn cluster(&mut self) -> Res<&mut SteppedCluster> {
        self.cluster.as_mut().ok_or_else(|| "no cluster: start with `cluster seed=N`".into())
    }

    /// Runs `c` for `d` and prints what happened meanwhile.
    fn run_for(c: &mut SteppedCluster, d: Duration, out: &mut String) -> Res<()> {
        let until = c.now() + d;
        c.run_until(until);
        events(c, out)
    }

    fn stabilize(c: &mut SteppedCluster) -> Res<()> {
        let deadline = c.now() + STABILIZE_WITHIN;
        while c.now() < deadline {
            let until = c.now() + Duration::from_millis(10);
            c.run_until(until);
            if stable(c) {
                return Ok(());
            }
        }
        Err(format!("not stable after {STABILIZE_WITHIN:?}").into())
    }

    fn txn(&mut self, reads: Vec<String>, writes: Vec<(String, String)>, out: &mut String) -> Res<()> {
        self.next_txn += 1;
        let txn = TxnId::random(self.next_txn);
        let c = self.cluster()?;
        let priority = Priority::new(Timestamp::from_nanos(1), txn);
        let mut leases: BTreeMap<ShardId, (LockLease, Vec<LockTarget>)> = BTreeMap::new();
        for key in &reads {
            let shard = c.shard_of(key.as_bytes());
            let lease = leases.get(&shard).map(|(l, _)| *l);
            let target = LockTarget::Key(key.as_bytes().to_vec());
            let (mode, deadline) = (LockMode::Shared, None);
            let (wanted, no_wait) = (target.clone(), false);
            let input =
                Input::Read { req: RequestId(0), txn, priority, target: wanted, mode, lease, deadline, no_wait };
            match c.call(shard, input, ANSWER_WITHIN) {
                Ok(Answer::Locked { lease }) => leases.entry(shard).or_insert((lease, Vec::new())).1.push(target),
                other => {
                    writeln!(out, "{txn}: read {key} failed: {other:?}")?;
                    return Ok(());
                }
            }
        }
        let mut parts: BTreeMap<ShardId, (Vec<Write>, Vec<LockTarget>)> = BTreeMap::new();
        for (shard, (_, targets)) in &leases {
            parts.entry(*shard).or_default().1 = targets.clone();
        }
        for (k, v) in &writes {
            let shard = c.shard_of(k.as_bytes());
            let write = Write { key: k.as_bytes().to_vec(), value: Some(v.as_bytes().to_vec()) };
            parts.entry(shard).or_default().0.push(write);
        }
        let coordinator = parts
            .iter()
            .find(|(_, (w, _))| !w.is_empty())
            .or_else(|| parts.iter().next())
            .map(|(s, _)| *s)
            .ok_or("a transaction reads or writes something")?;
        let lease_of = |shard: &ShardId, reads: &[LockTarget]| (!reads.is_empty()).then(|| leases[shard].0);
        let mut participants = Vec::new();
        for (shard, (writes, reads)) in parts.iter().filter(|(s, _)| **s != coordinator) {
            let lease = lease_of(shard, reads);
            let (writes, reads) = (writes.clone(), reads.clone());
            let conditions = Vec::new();
            let input =
                Input::Prepare { req: RequestId(0), txn, priority, writes, reads, lease, coordinator, conditions };
            match c.call(*shard, input, ANSWER_WITHIN) {
                Ok(Answer::Prepared { prepare_ts }) => participants.push((*shard, prepare_ts)),
                other => {
                    writeln!(out, "{txn}: prepare at {shard} failed: {other:?}")?;
                    return Ok(());
                }
            }
        }
        let (writes, reads) = parts[&coordinator].clone();
        let lease = lease_of(&coordinator, &reads);
        let (conditions, deadline) = (Vec::new(), None);
        let input = Input::Commit {
            req: RequestId(0),
            txn,
            priority,
            writes,
            reads,
            lease,
            participants,
            conditions,
            deadline,
        };
        match c.call(coordinator, input, ANSWER_WITHIN) {
            Ok(Answer::Committed { .. }) => writeln!(out, "{txn}: committed at {coordinator}")?,
            other => writeln!(out, "{txn}: commit at {coordinator}: {other:?}")?,
        }
        Ok(())
    }
}

/// Every shard has a leader that is up, and every live replica of it
/// applied as far as the leader's.
fn stable(c: &SteppedCluster) -> bool {
    let progress = c.progress();
    c.shard_ids().into_iter().all(|shard| {
        let Some(leader) = c.leader(shard).filter(|l| c.is_up(*l)) else { return false };
        let applied = |s: ServerId| progress.iter().find(|p| p.0 == s && p.1 == shard).map(|p| p.3);
        let Some(at) = applied(leader) else { return false };
        c.server_ids().into_iter().filter(|s| c.is_up(*s)).all(|s| applied(s) == Some(at))
    })
}

fn events(c: &mut SteppedCluster, out: &mut String) -> Res<()> {
    for e in c.take_events() {
        writeln!(out, "{e}")?;
    }
    Ok(())
}

impl goldenscript::Runner for Runner {
    type Command = Command;

    fn run(&mut self, command: &Command, _: &Context) -> Res<String> {
        let mut out = String::new();
        let mut args = command.consume_args();
        match command.name.as_str() {
            "cluster" => {
                let seed = args.take_key("seed").ok_or("cluster seed=N")?.parse()?;
                let servers = args.take_key("servers").map(str::parse).transpose()?.unwrap_or(3);
                let shards = args.take_key("shards").map(str::parse).transpose()?.unwrap_or(2);
                let skew_ms = args.take_key("skew_ms").map(str::parse).transpose()?.unwrap_or(1);
                let loss = args.take_key("loss").map(str::parse).transpose()?.unwrap_or(0);
                let delay_ms = args.take_key("delay_ms").map(str::parse).transpose()?.unwrap_or(5);
                let setup =
                    Setup { servers, shards, clock_skew_max: Duration::from_millis(skew_ms), ..Setup::default() };
                let mut c = SteppedCluster::with(seed, setup);
                c.faults = Faults { loss_percent: loss, delay_max: Duration::from_millis(delay_ms) };
                self.cluster = Some(c);
            }
            "run" => {
                let ms: u64 = args.next_pos().ok_or("run MS")?.parse()?;
                Self::run_for(self.cluster()?, Duration::from_millis(ms), &mut out)?;
            }
            "stabilize" => {
                let c = self.cluster()?;
                Self::stabilize(c)?;
                events(c, &mut out)?;
            }
            "leaders" => {
                let c = self.cluster()?;
                for shard in c.shard_ids() {
                    match c.leader_term(shard) {
                        Some((s, term)) if c.is_up(s) => writeln!(out, "{shard}: {s} (term {term})")?,
                        Some((s, term)) => writeln!(out, "{shard}: none up ({s} led term {term}, down)")?,
                        None => writeln!(out, "{shard}: none")?,
                    }
                }
            }
            "put" => {
                let pairs: Vec<(String, String)> = args
                    .by_ref()
                    .map(|a| match a {
                        goldenscript::Argument::KeyValue(k, v) => Ok((k.clone(), v.clone())),
                        other => Err(format!("put KEY=VALUE..., not {other}")),
                    })
                    .collect::<Result<_, _>>()?;
                let c = self.cluster()?;
                for (k, v) in pairs {
                    let shard = c.shard_of(k.as_bytes());
                    let writes = vec![Write { key: k.as_bytes().to_vec(), value: Some(v.as_bytes().to_vec()) }];
                    let input = Input::Write { req: RequestId(0), writes, conditions: Vec::new() };
                    match c.call(shard, input, ANSWER_WITHIN) {
                        Ok(Answer::Committed { applied: true, .. }) => writeln!(out, "put {k}={v}: committed")?,
                        other => writeln!(out, "put {k}={v}: {other:?}")?,
                    }
                }
                events(c, &mut out)?;
            }
            "get" => {
                let key = args.next_pos().ok_or("get KEY")?;
                let c = self.cluster()?;
                let mut seen = Vec::new();
                for s in c.server_ids() {
                    let value = match c.latest(s, key.as_bytes()) {
                        _ if !c.is_up(s) => "down".to_string(),
                        Some((_, Some(v))) => String::from_utf8_lossy(&v).into_owned(),
                        Some((_, None)) => "(deleted)".into(),
                        None => "-".into(),
                    };
                    seen.push(format!("{s}={value}"));
                }
                writeln!(out, "{key}: {}", seen.join(" "))?;
            }
            "txn" => {
                let reads =
                    args.take_key("reads").map(|r| r.split(',').map(String::from).collect()).unwrap_or_default();
                let writes = match args.take_key("writes") {
                    Some(w) => w
                        .split(',')
                        .map(|kv| kv.split_once(':').map(|(k, v)| (k.to_string(), v.to_string())))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("writes=K:V,...")?,
                    None => Vec::new(),
                };
                args.reject_next()?;
                self.txn(reads, writes, &mut out)?;
                events(self.cluster()?, &mut out)?;
            }
            "split" => {
                let key = args.next_pos().ok_or("split KEY")?.to_string();
                let c = self.cluster.as_mut().ok_or("no cluster")?;
                let shard = c.shard_of(key.as_bytes());
                let replicas = c.descriptors()[&shard].replicas.len() as u64;
                let child = ShardId(self.next_id);
                let child_replicas = (1..=replicas).map(|i| meta::ReplicaId(self.next_id + i)).collect();
                self.next_id += 1 + replicas;
                match c.split(shard, key.as_bytes(), child, child_replicas, ANSWER_WITHIN) {
                    Ok((left, right)) => {
                        for d in [left, right] {
                            let replicas: Vec<String> =
                                d.replicas.iter().map(|r| format!("{}@{}", r.replica_id, r.server_id)).collect();
                            let range = format!(
                                "[{:?}, {:?})",
                                String::from_utf8_lossy(&d.start_key),
                                String::from_utf8_lossy(&d.end_key)
                            );
                            writeln!(out, "{} {range} {} {}", d.shard_id, d.epoch, replicas.join(" "))?;
                        }
                    }
                    Err(e) => writeln!(out, "split {key}: refused: {e}")?,
                }
                events(c, &mut out)?;
            }
            "hold" => {
                let s = server(args.next_pos().ok_or("hold S")?)?;
                let c = self.cluster()?;
                c.hold(s);
                events(c, &mut out)?;
            }
            "deliver" => {
                let s = server(args.next_pos().ok_or("deliver S")?)?;
                let c = self.cluster()?;
                c.deliver(s);
                events(c, &mut out)?;
            }
            "partition" => {
                let (a, b) = (
                    server(args.next_pos().ok_or("partition S S")?)?,
                    server(args.next_pos().ok_or("partition S S")?)?,
                );
                self.cluster()?.partition(a, b);
                events(self.cluster()?, &mut out)?;
            }
            "isolate" => {
                let s = server(args.next_pos().ok_or("isolate S")?)?;
                let c = self.cluster()?;
                for other in c.server_ids().into_iter().filter(|o| *o != s) {
                    c.partition(s, other);
                }
                events(c, &mut out)?;
            }
            "crash"
                if command.args.iter().any(|a| matches!(a, goldenscript::Argument::KeyValue(k, _) if k == "at")) =>
            {
                let s = server(args.next_pos().ok_or("crash S at=early-sends|write")?)?;
                let at = match args.take_key("at") {
                    Some("early-sends") => CrashPoint::AfterEarlySends,
                    Some("write") => CrashPoint::AfterWrite,
                    other => return Err(format!("crash S at=early-sends|write, not {other:?}").into()),
                };
                let c = self.cluster()?;
                c.crash_in_step(s, at);
                events(c, &mut out)?;
            }
            "heal" | "crash" | "restart" | "pause" | "resume" => {
                let name = command.name.as_str();
                let target = if name == "heal" { None } else { Some(server(args.next_pos().ok_or("which server?")?)?) };
                let c = self.cluster()?;
                match (name, target) {
                    ("heal", _) => c.heal(),
                    ("crash", Some(s)) => c.crash(s),
                    ("restart", Some(s)) => c.restart(s),
                    ("pause", Some(s)) => c.pause(s),
                    ("resume", Some(s)) => c.resume(s),
                    _ => unreachable!("matched above"),
                }
                events(c, &mut out)?;
            }
            other => return Err(format!("unknown command {other}").into()),
        }
        args.reject_next()?;
        Ok(out)
    }
}

macro_rules! scripts {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() -> std::io::Result<()> {
            let mut runner = Runner { cluster: None, next_txn: 0, next_id: 100 };
            goldenscript::run(&mut runner, concat!("testscripts/cluster/", stringify!($name)))
        }
    )*};
}

scripts!(election, leader_partitioned, crash_and_restart, crash_mid_step, deliver, transactions, snapshot, split);
