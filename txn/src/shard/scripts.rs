//! Goldenscript tests of [`ShardTxns`]: `src/testscripts/shard/*`, each
//! named after the scenario it shows. Several shards can take part; each has
//! a queue of proposals that `apply` replicates (in order) and `drop` fails,
//! standing in for Raft.
//!
//! Commands (`shard=N` picks the shard, default 1; time is `[t-1, t+1]`):
//!
//! ```text
//! leader [term=T] | lost | lease on|off | time T | tick | close | state
//! split KEY child=C  (the keys from KEY on moved to the new shard C)
//! read REQ TXN prio=P KEY|"[A,B)" [mode=S|X] [lease=T.A]
//! prepare REQ TXN prio=P coord=C [writes=a:1,b:-] [reads=a,b] [lease=T.A]
//! commit REQ TXN prio=P [writes=...] [reads=...] [participants=2@1005,3@1007] [lease=T.A]
//! ```
//!
//! `leader` starts the shard's next term (or `term=T`). `lease on` says
//! the leader holds a lease at every later step, until `lease off`. A read presents
//! no lease unless given (`lease=` alone: the transaction's last lease
//! here); a prepare or commit with reads presents the last lease its reads
//! here were answered with, unless given.
//!
//! ```text
//! write REQ writes=a:1 [if=a:old|a:-]          (a plain write; "-" is absent)
//! abort REQ TXN | heartbeat TXN [committing=true] | decide REQ TXN committed@S|aborted
//! resolve REQ TXN from=P [patient=true] | ack TXN from=P   (from: the participant shard)
//! apply [n=K] [cond=false] | drop
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::error::Error;
use std::fmt::Write as _;

use goldenscript::Command;
use truetime::{Timestamp, TtInterval};

use super::*;

type Res<T> = Result<T, Box<dyn Error>>;

struct Shard {
    txns: ShardTxns,
    /// The term of the latest `leader`.
    term: u64,
    proposals: VecDeque<(Option<RequestId>, TxnCommand)>,
}

struct Runner {
    shards: BTreeMap<u64, Shard>,
    now: u64,
    /// The last lease each transaction's reads got on each shard.
    leases: BTreeMap<(u64, TxnId), LockLease>,
    /// Reads in flight: request -> (shard, transaction).
    reading: BTreeMap<RequestId, (u64, TxnId)>,
    /// Prepared records a split handed to a new shard, by shard.
    inherited: BTreeMap<u64, Vec<PreparedTxn>>,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            shards: BTreeMap::new(),
            now: 1000,
            leases: BTreeMap::new(),
            reading: BTreeMap::new(),
            inherited: BTreeMap::new(),
        }
    }
}

fn lease(s: &str) -> Res<LockLease> {
    let (term, admission) = s.split_once('.').ok_or("leases are TERM.ADMISSION")?;
    Ok(LockLease { term: Term(term.parse()?), admission: admission.parse()? })
}

fn txn(s: &str) -> Res<TxnId> {
    Ok(TxnId(s.strip_prefix('t').ok_or("transactions are t<n>")?.parse()?))
}

fn req(s: &str) -> Res<RequestId> {
    Ok(RequestId(s.strip_prefix('r').ok_or("requests are r<n>")?.parse()?))
}

fn target(s: &str) -> LockTarget {
    match s.strip_prefix('[').and_then(|t| t.strip_suffix(')')).and_then(|t| t.split_once(',')) {
        Some((a, b)) => LockTarget::Range(a.as_bytes().to_vec(), b.as_bytes().to_vec()),
        None => LockTarget::Key(s.as_bytes().to_vec()),
    }
}

/// `k:v,k2:-`: key k holds v, key k2 is absent.
fn conditions(arg: Option<&str>) -> Res<Vec<Condition>> {
    let Some(s) = arg else { return Ok(vec![]) };
    s.split(',')
        .map(|c| {
            let (k, v) = c.split_once(':').ok_or("conditions are key:value or key:-")?;
            Ok(Condition { key: k.as_bytes().to_vec(), expected: (v != "-").then(|| v.into()) })
        })
        .collect()
}

fn writes(s: Option<&str>) -> Res<Vec<Write>> {
    let Some(s) = s else { return Ok(vec![]) };
    s.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once(':').ok_or("writes are key:value,...")?;
            let value = (v != "-").then(|| v.as_bytes().to_vec());
            Ok(Write { key: k.as_bytes().to_vec(), value })
        })
        .collect()
}

/// `a,b,[k,s)`: keys and ranges (a range's comma does not separate).
fn list(s: Option<&str>) -> Vec<LockTarget> {
    let Some(s) = s else { return vec![] };
    let (mut items, mut start, mut in_range) = (vec![], 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '[' => in_range = true,
            ')' => in_range = false,
            ',' if !in_range => {
                items.push(target(&s[start..i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(target(&s[start..]));
    items
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show_writes(w: &[Write]) -> String {
    w.iter()
        .map(|w| format!("{}:{}", text(&w.key), w.value.as_deref().map(text).unwrap_or_else(|| "-".into())))
        .collect::<Vec<_>>()
        .join(",")
}

fn show_targets(t: &[LockTarget]) -> String {
    t.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",")
}

/// ` if=[k:v,k:-]`, or nothing without conditions.
fn show_conditions(conditions: &[Condition]) -> String {
    if conditions.is_empty() {
        return String::new();
    }
    let cs: Vec<String> = conditions
        .iter()
        .map(|c| format!("{}:{}", text(&c.key), c.expected.as_deref().map(text).unwrap_or("-".into())))
        .collect();
    format!(" if=[{}]", cs.join(","))
}

/// A prepared record: what it holds, and whom it asks and tells.
fn show_record(p: &PreparedTxn) -> String {
    let mut s = format!(
        "{} @{} writes=[{}] reads=[{}] coordinator={}",
        p.txn,
        p.prepare_ts.as_nanos(),
        show_writes(&p.writes),
        show_targets(&p.reads),
        p.coordinator
    );
    if !p.heirs.is_empty() {
        let hs: Vec<String> = p.heirs.iter().map(|h| h.to_string()).collect();
        s += &format!(" heirs=[{}]", hs.join(","));
    }
    s
}

fn show_command(c: &TxnCommand) -> String {
    match c {
        TxnCommand::Commit { txn, commit_ts, writes, conditions, participants, reads: _ } => {
            let mut s = format!("Commit {txn} @{} writes=[{}]", commit_ts.as_nanos(), show_writes(writes));
            s += &show_conditions(conditions);
            if !participants.is_empty() {
                let ps: Vec<String> = participants.iter().map(|p| p.to_string()).collect();
                s += &format!(" participants=[{}]", ps.join(","));
            }
            s
        }
        TxnCommand::Prepare(p) => format!(
            "Prepare {} @{} writes=[{}] reads=[{}] coordinator={}{}",
            p.txn,
            p.prepare_ts.as_nanos(),
            show_writes(&p.writes),
            show_targets(&p.reads),
            p.coordinator,
            show_conditions(&p.conditions)
        ),
        TxnCommand::Finish { txn, outcome } => format!("Finish {txn} {outcome}"),
        TxnCommand::AbortDecision { txn, decided_at } => format!("AbortDecision {txn} @{}", decided_at.as_nanos()),
        TxnCommand::ForgetDecisions { txns } => {
            format!("ForgetDecisions {}", txns.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
        }
        TxnCommand::Close { ts } => format!("Close @{}", ts.as_nanos()),
    }
}

impl Runner {
    fn now(&self) -> TtInterval {
        TtInterval::new(Timestamp::from_nanos(self.now - 1), Timestamp::from_nanos(self.now + 1))
    }

    fn shard(&mut self, id: u64) -> &mut Shard {
        self.shards.entry(id).or_insert_with(|| Shard {
            txns: ShardTxns::restore(ShardId(id), Timestamp::ZERO, vec![], vec![]),
            term: 0,
            proposals: VecDeque::new(),
        })
    }

    /// The lease a request presents: `lease=T.A` if given; `lease=`
    /// alone, or by default when `remembered`, the transaction's last
    /// lease on the shard.
    fn lease(
        &self,
        id: u64,
        t: TxnId,
        remembered: bool,
        args: &mut goldenscript::ArgumentConsumer,
    ) -> Res<Option<LockLease>> {
        match args.take_key("lease") {
            Some("") => Ok(self.leases.get(&(id, t)).copied()),
            Some(l) => Ok(Some(lease(l)?)),
            None if remembered => Ok(self.leases.get(&(id, t)).copied()),
            None => Ok(None),
        }
    }

    /// Feeds one input and prints its outputs, queueing proposals.
    fn step(&mut self, id: u64, input: Input, out: &mut String) -> Res<()> {
        let now = self.now();
        let outputs = self.shard(id).txns.step(now, input);
        for o in outputs {
            match o {
                Output::Reply { req, result } => {
                    if let (Some((shard, t)), Ok(Answer::Locked { lease })) = (self.reading.remove(&req), &result) {
                        self.leases.insert((shard, t), *lease);
                    }
                    let shown = match result {
                        Ok(Answer::Locked { lease }) => format!("locked, lease {lease}"),
                        Ok(Answer::Prepared { prepare_ts }) => format!("prepared@{}", prepare_ts.as_nanos()),
                        Ok(Answer::ConditionsFailed) => "a condition failed: nothing prepared".into(),
                        Ok(Answer::Committed { commit_ts, applied }) => {
                            let cond = if applied { "" } else { " (a condition failed: nothing written)" };
                            format!("committed@{}{cond}", commit_ts.as_nanos())
                        }
                        Ok(Answer::Done) => "done".into(),
                        Ok(Answer::Outcome(o)) => format!("outcome {o}"),
                        Ok(Answer::Pending) => "pending".into(),
                        Err(e) => format!("error: {e}"),
                    };
                    writeln!(out, "r{} ← {shown}", req.0)?;
                }
                Output::Propose { req, command } => {
                    let for_req = req.map(|r| format!(" (for r{})", r.0)).unwrap_or_default();
                    writeln!(out, "shard{id} propose {}{for_req}", show_command(&command))?;
                    self.shard(id).proposals.push_back((req, command));
                }
                Output::WriteVersions { writes, ts } => {
                    writeln!(out, "shard{id} write {} @{}", show_writes(&writes), ts.as_nanos())?
                }
                Output::StorePrepared(p) => writeln!(out, "shard{id} store prepared {}", show_record(&p))?,
                Output::Inherit { shard, record } => {
                    writeln!(out, "shard{id} hand to {shard}: prepared {}", show_record(&record))?;
                    self.inherited.entry(shard.0).or_default().push(record);
                }
                Output::DeletePrepared(t) => writeln!(out, "shard{id} delete prepared {t}")?,
                Output::StoreDecision { txn, decision } => {
                    let ps: Vec<String> = decision.participants.iter().map(|p| p.to_string()).collect();
                    writeln!(out, "shard{id} store decision {txn} {} [{}]", decision.outcome, ps.join(","))?
                }
                Output::DeleteDecision(t) => writeln!(out, "shard{id} delete decision {t}")?,
                Output::Resolve { txn, coordinator, patient } => {
                    let how = if patient { " (patient)" } else { "" };
                    writeln!(out, "shard{id} ask {coordinator} about {txn}{how}")?
                }
                Output::Decide { txn, participants, outcome } => {
                    let ps: Vec<String> = participants.iter().map(|p| p.to_string()).collect();
                    writeln!(out, "shard{id} tell {} that {txn} {outcome}", ps.join(","))?
                }
                Output::WantLease => writeln!(out, "shard{id} wants a lease")?,
            }
        }
        Ok(())
    }
}

impl goldenscript::Runner for Runner {
    type Command = Command;

    fn run(&mut self, command: &Command, _: &goldenscript::Context) -> Res<String> {
        let mut out = String::new();
        let mut args = command.consume_args();
        let id: u64 = args.take_key("shard").map(str::parse).transpose()?.unwrap_or(1);
        let prio = |args: &mut goldenscript::ArgumentConsumer, t: TxnId| -> Res<Priority> {
            let p: u64 = args.take_key("prio").ok_or("prio=P is required")?.parse()?;
            Ok(Priority::new(Timestamp::from_nanos(p), t))
        };
        match command.name.as_str() {
            "leader" => {
                let term = match args.take_key("term") {
                    Some(t) => t.parse()?,
                    None => self.shard(id).term + 1,
                };
                self.shard(id).term = term;
                self.step(id, Input::LeaderReady { term: Term(term) }, &mut out)?
            }
            "lost" => self.step(id, Input::LeaderLost, &mut out)?,
            "split" => {
                let split_key = args.next_pos().ok_or("split KEY child=C")?.as_bytes().to_vec();
                let child = ShardId(args.take_key("child").ok_or("child=C is required")?.parse()?);
                if self.shards.contains_key(&child.0) {
                    return Err(format!("{child} exists already").into());
                }
                self.step(id, Input::RangeSplit { split_key, end_key: vec![], child }, &mut out)?;
                // The child starts from what the split handed it.
                let max_applied = self.shard(id).txns.safe_time().max_applied();
                let records = self.inherited.remove(&child.0).unwrap_or_default();
                let txns = ShardTxns::restore(child, max_applied, records, vec![]);
                self.shards.insert(child.0, Shard { txns, term: 0, proposals: VecDeque::new() });
            }
            "time" => self.now = args.next_pos().ok_or("time T")?.parse()?,
            "lease" => match args.next_pos().ok_or("lease on|off")? {
                "on" => self.shard(id).txns.set_leased(true),
                "off" => self.shard(id).txns.set_leased(false),
                other => return Err(format!("lease on|off, not {other}").into()),
            },
            "tick" => self.step(id, Input::Tick, &mut out)?,
            "close" => self.step(id, Input::Close, &mut out)?,
            "read" => {
                let r = req(args.next_pos().ok_or("read REQ TXN KEY")?)?;
                let t = txn(args.next_pos().ok_or("read REQ TXN KEY")?)?;
                let priority = prio(&mut args, t)?;
                let target = target(args.next_pos().ok_or("read REQ TXN KEY")?);
                let mode = match args.take_key("mode") {
                    None | Some("S") => LockMode::Shared,
                    Some("X") => LockMode::Exclusive,
                    Some(other) => return Err(format!("mode={other}: S or X").into()),
                };
                let no_wait = args.take_key("no_wait").is_some();
                let lease = self.lease(id, t, false, &mut args)?;
                self.reading.insert(r, (id, t));
                let input = Input::Read { req: r, txn: t, priority, target, mode, lease, deadline: None, no_wait };
                self.step(id, input, &mut out)?;
            }
            "prepare" => {
                let r = req(args.next_pos().ok_or("prepare REQ TXN")?)?;
                let t = txn(args.next_pos().ok_or("prepare REQ TXN")?)?;
                let priority = prio(&mut args, t)?;
                let coordinator = ShardId(args.take_key("coord").ok_or("coord=C is required")?.parse()?);
                let w = writes(args.take_key("writes"))?;
                let reads = list(args.take_key("reads"));
                let conditions = conditions(args.take_key("if"))?;
                let lease = self.lease(id, t, !reads.is_empty(), &mut args)?;
                let input =
                    Input::Prepare { req: r, txn: t, priority, writes: w, reads, lease, coordinator, conditions };
                self.step(id, input, &mut out)?;
            }
            "commit" => {
                let r = req(args.next_pos().ok_or("commit REQ TXN")?)?;
                let t = txn(args.next_pos().ok_or("commit REQ TXN")?)?;
                let priority = prio(&mut args, t)?;
                let w = writes(args.take_key("writes"))?;
                let reads = list(args.take_key("reads"));
                let participants = match args.take_key("participants") {
                    None => vec![],
                    Some(s) => s
                        .split(',')
                        .map(|p| {
                            let (shard, ts) = p.split_once('@').ok_or("participants are shard@prepare_ts")?;
                            Ok((ShardId(shard.parse()?), Timestamp::from_nanos(ts.parse()?)))
                        })
                        .collect::<Res<_>>()?,
                };
                let conditions = conditions(args.take_key("if"))?;
                let lease = self.lease(id, t, !reads.is_empty(), &mut args)?;
                let input = Input::Commit {
                    req: r,
                    txn: t,
                    priority,
                    writes: w,
                    reads,
                    lease,
                    participants,
                    conditions,
                    deadline: None,
                };
                self.step(id, input, &mut out)?;
            }
            "write" => {
                let r = req(args.next_pos().ok_or("write REQ writes=...")?)?;
                let w = writes(args.take_key("writes"))?;
                let conditions = conditions(args.take_key("if"))?;
                self.step(id, Input::Write { req: r, writes: w, conditions }, &mut out)?;
            }
            "abort" => {
                let r = req(args.next_pos().ok_or("abort REQ TXN")?)?;
                let t = txn(args.next_pos().ok_or("abort REQ TXN")?)?;
                self.step(id, Input::Abort { req: r, txn: t }, &mut out)?;
            }
            "heartbeat" => {
                let t = txn(args.next_pos().ok_or("heartbeat TXN")?)?;
                let committing = args.take_key("committing").map(str::parse).transpose()?.unwrap_or(false);
                self.step(id, Input::Heartbeat { txn: t, committing }, &mut out)?;
            }
            "decide" => {
                let r = req(args.next_pos().ok_or("decide REQ TXN OUTCOME")?)?;
                let t = txn(args.next_pos().ok_or("decide REQ TXN OUTCOME")?)?;
                let o = args.next_pos().ok_or("decide REQ TXN OUTCOME")?;
                let outcome = match o.strip_prefix("committed@") {
                    Some(ts) => Outcome::Committed(Timestamp::from_nanos(ts.parse()?)),
                    None if o == "aborted" => Outcome::Aborted,
                    None => return Err("outcome: committed@S or aborted".into()),
                };
                self.step(id, Input::Decide { req: r, txn: t, outcome }, &mut out)?;
            }
            "resolve" => {
                let r = req(args.next_pos().ok_or("resolve REQ TXN from=P")?)?;
                let t = txn(args.next_pos().ok_or("resolve REQ TXN from=P")?)?;
                let participant = ShardId(args.take_key("from").ok_or("from=P is required")?.parse()?);
                let patient = args.take_key("patient").map(str::parse).transpose()?.unwrap_or(false);
                self.step(id, Input::Resolve { req: r, txn: t, participant, patient }, &mut out)?;
            }
            "ack" => {
                let t = txn(args.next_pos().ok_or("ack TXN from=P")?)?;
                let participant = ShardId(args.take_key("from").ok_or("from=P is required")?.parse()?);
                self.step(id, Input::Acknowledged { txn: t, participant }, &mut out)?;
            }
            "apply" => {
                let n: usize = args.take_key("n").map(str::parse).transpose()?.unwrap_or(usize::MAX);
                let held = args.take_key("cond").map(|c| c != "false").unwrap_or(true);
                for _ in 0..n {
                    let Some((r, command)) = self.shard(id).proposals.pop_front() else { break };
                    writeln!(out, "shard{id} apply {}", show_command(&command))?;
                    self.step(id, Input::Applied { req: r, command, conditions_held: held }, &mut out)?;
                }
            }
            "drop" => {
                let (r, command) = self.shard(id).proposals.pop_front().ok_or("no proposal to drop")?;
                writeln!(out, "shard{id} drop {}", show_command(&command))?;
                self.step(id, Input::ProposalFailed { req: r, command }, &mut out)?;
            }
            "explain" => {
                let r = req(args.next_pos().ok_or("explain REQ")?)?;
                let why = self.shard(id).txns.explain(r).unwrap_or_else(|| "(not parked)".into());
                writeln!(out, "{why}")?;
            }
            "state" => {
                let s = &self.shard(id).txns;
                writeln!(out, "shard{id}: leading={} active={}", s.is_leading(), s.active_count())?;
                for p in s.prepared() {
                    writeln!(out, "  prepared {} @{}", p.txn, p.prepare_ts.as_nanos())?;
                }
                for (t, d) in s.decisions() {
                    let ps: Vec<String> = d.participants.iter().map(|p| p.to_string()).collect();
                    writeln!(out, "  decision {t} {} [{}]", d.outcome, ps.join(","))?;
                }
                let safe = s.safe_time();
                writeln!(out, "  max_applied={} safe={}", safe.max_applied().as_nanos(), safe.safe().as_nanos())?;
                for line in s.locks().render().lines() {
                    writeln!(out, "  {line}")?;
                }
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
            goldenscript::run(&mut Runner::default(), concat!("src/testscripts/shard/", stringify!($name)))
        }
    )*};
}

scripts!(
    a_patient_question_waits_for_a_client_committing_with_nothing_at_its_coordinator,
    single_shard_commit,
    wound_wait_older_wounds_younger,
    reads_for_update_queue_instead_of_wounding,
    two_phase_commit,
    coordinator_crash_after_prepare,
    coordinator_crash_after_decision,
    abort_decision_beats_a_late_commit,
    prepared_locks_survive_a_leader_change,
    read_locks_die_with_the_leader,
    reread_under_a_new_leader_aborts,
    vanished_client_loses_its_locks,
    plain_writes_take_locks_and_check_conditions,
    a_commit_checks_its_conditions_when_applied,
    conditions_fail_a_two_phase_commit,
    safe_time_waits_for_prepared_transactions,
    dropped_proposals_abort,
    wounded_reader_cannot_reread,
    decide_is_checked_before_it_is_proposed,
    a_client_cannot_abort_a_prepared_transaction,
    a_patient_question_waits_for_an_open_transaction,
    no_wait_reads_refuse_instead_of_waiting,
    only_named_participants_commit,
    decisions_are_forgotten_once_acknowledged,
    relayed_prepare_timestamps_are_checked,
    parked_requests_time_out,
    cross_shard_deadlock_is_broken_by_a_push,
    a_transaction_keeps_its_priority,
    a_split_aborts_the_lock_holders_of_moved_keys,
    a_split_hands_prepared_transactions_to_both_halves,
    an_heir_of_an_aborted_transaction_aborts,
    a_commit_that_wrote_nothing_needs_no_round_under_a_lease,
);
