//! Workloads: what the workers do, and which checkers judge it.
//!
//! A workload is three things: a generator of [`Invocation`]s (what to do
//! next; pure, seeded), an executor that runs one against the cluster and
//! turns the answer into a [`Completion`] (the I/O), and the checkers of
//! its history (`harness/src/check.rs`). Its ops follow the shapes the `jepsen`
//! crate's checkers read:
//!
//! | workload | ops | checkers |
//! |---|---|---|
//! | `register` | `write`, `cas`, and reads of every kind (`read` at the leader, `read-only` at a follower first, `read-at` a snapshot, `read-bounded`) on integer keys | linearizable (per key), timestamped (every read against the commit timestamps), external (write `commit_ts`) |
//! | `set` | `add` of unique integers; one final `read` | set, external (add `commit_ts`) |
//! | `bank` | transfer transactions; read-only and bounded-staleness reads of every balance, half of them from followers | bank, external (transfer `commit_ts`) |
//! | `list-append` | transactions of appends and reads | strict serializability (Elle), external |
//! | `timestamps` | blind-write transactions over one or several shards | external |
//!
//! # From answers to completions
//!
//! ```text
//!   client answer            write (write, cas, add)   read
//!   Ok                       ok (+ commit_ts)          ok (+ value; single-key reads
//!                                                          + read_ts, version_ts)
//!   cas not applied          fail                      -
//!   Error::Ambiguous         info                      fail
//!   our own timeout          info                      fail
//!   Error::Unavailable       fail                      fail
//!   any other error          fail                      fail
//! ```
//!
//! `Unavailable` means the client knows nothing was applied (it retries
//! only failures that prove that). A read that did not return observed
//! nothing, so it is `fail` whatever the reason, as in Jepsen.
//!
//! # Keys
//!
//! Every key a run touches is `L/RUN/WORKLOAD/ID` ([`spread_key`]): `L`, a
//! letter chosen by the id, spreads keys evenly over the shards (a started
//! cluster splits at `g`, `n`, `t`); `RUN` is a fresh random id per run, so
//! runs against the same cluster (`--addr`) never see each other's data,
//! and every register starts absent, as the checker assumes.
//!
//! # Transactions
//!
//! `bank`, `list-append` and `timestamps` run each op as one read-write
//! transaction, attempted once (an aborted one, wounded by an older
//! transaction, is `fail`: nothing applied). A commit that is
//! `Ambiguous`, or still running at the guard's timeout, is `info`. A
//! transaction that fails before its commit is dropped, which rolls it
//! back in the background.

pub mod bank;
pub mod list_append;
pub mod register;
pub mod set;
pub mod timestamps;

use std::time::Duration;

use client::Client;
use jepsen::OpType;
use rand::rngs::StdRng;
use serde_json::Value;

use crate::limits::OP_TIMEOUT;

/// Every workload the design names (`--workload`: their kebab-case
/// names, `list-append`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadName {
    Register,
    Set,
    Bank,
    ListAppend,
    Timestamps,
}

impl WorkloadName {
    pub const ALL: [WorkloadName; 5] = [
        WorkloadName::Register,
        WorkloadName::Set,
        WorkloadName::Bank,
        WorkloadName::ListAppend,
        WorkloadName::Timestamps,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadName::Register => "register",
            WorkloadName::Set => "set",
            WorkloadName::Bank => "bank",
            WorkloadName::ListAppend => "list-append",
            WorkloadName::Timestamps => "timestamps",
        }
    }

    /// The workload a saved summary names (the command line parses its
    /// own through clap's `ValueEnum`, with the same names).
    pub fn parse(name: &str) -> Result<WorkloadName, String> {
        WorkloadName::ALL.into_iter().find(|w| w.as_str() == name).ok_or_else(|| {
            format!("unknown workload {name:?}; known: {}", WorkloadName::ALL.map(WorkloadName::as_str).join(", "))
        })
    }
}

/// An op a worker is about to invoke: its `f` and argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub f: &'static str,
    pub value: Value,
}

/// What became of an op.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` or `Info`.
    pub op_type: OpType,
    pub value: Value,
    pub commit_ts: Option<u64>,
    /// A read's timestamp, as the server reported it.
    pub read_ts: Option<u64>,
    /// The commit timestamp of the version a single-key read returned.
    pub version_ts: Option<u64>,
    pub error: Option<String>,
}

impl Completion {
    fn new(op_type: OpType, value: Value) -> Completion {
        Completion { op_type, value, commit_ts: None, read_ts: None, version_ts: None, error: None }
    }

    pub fn ok(value: Value, commit_ts: Option<u64>) -> Completion {
        Completion { commit_ts, ..Completion::new(OpType::Ok, value) }
    }

    /// A single-key read that returned `value`, served at `read_ts`, from
    /// the version committed at `version_ts` (none: no version).
    pub fn read(value: Value, read_ts: u64, version_ts: Option<u64>) -> Completion {
        Completion { read_ts: Some(read_ts), version_ts, ..Completion::new(OpType::Ok, value) }
    }

    pub fn fail(value: Value, error: impl Into<String>) -> Completion {
        Completion { error: Some(error.into()), ..Completion::new(OpType::Fail, value) }
    }

    pub fn info(value: Value, error: impl Into<String>) -> Completion {
        Completion { error: Some(error.into()), ..Completion::new(OpType::Info, value) }
    }

    /// A write that returned an error: `info` when its fate is unknown,
    /// `fail` when the client knows it was not applied (module docs).
    pub fn write_error(value: Value, error: &client::Error) -> Completion {
        match error {
            client::Error::Ambiguous(_) => Completion::info(value, error.to_string()),
            client::Error::Unavailable(_)
            | client::Error::InvalidArgument(_)
            | client::Error::SnapshotTooOld { .. }
            | client::Error::Aborted(_)
            | client::Error::PermissionDenied(_)
            | client::Error::ConditionNotMet(_)
            | client::Error::LockNotAvailable(_)
            | client::Error::Connect(_) => Completion::fail(value, error.to_string()),
        }
    }
}

/// Whether an op changes data (its timeout is `info`) or only reads it
/// (its timeout is `fail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Write,
    Read,
}

/// Runs one client call under [`OP_TIMEOUT`]; a timeout becomes `info` for
/// a write and `fail` for a read.
pub async fn guarded(effect: Effect, value: &Value, call: impl std::future::Future<Output = Completion>) -> Completion {
    guarded_for(OP_TIMEOUT, effect, value, call).await
}

async fn guarded_for(
    timeout: Duration,
    effect: Effect,
    value: &Value,
    call: impl std::future::Future<Output = Completion>,
) -> Completion {
    match tokio::time::timeout(timeout, call).await {
        Ok(c) => c,
        Err(_) => {
            let why = format!("no answer within {timeout:?}");
            match effect {
                Effect::Write => Completion::info(value.clone(), why),
                Effect::Read => Completion::fail(value.clone(), why),
            }
        }
    }
}

/// The key of item `id` of `workload` in run `run` (module docs).
pub fn spread_key(run: &str, workload: &str, id: u64) -> Vec<u8> {
    let letter = (b'a' + (id % 26) as u8) as char;
    format!("{letter}/{run}/{workload}/{id}").into_bytes()
}

/// The range `[start, end)` holding every key of `workload` in `run` that
/// begins with `letter`.
pub fn spread_range(run: &str, workload: &str, letter: char) -> (Vec<u8>, Vec<u8>) {
    let start = format!("{letter}/{run}/{workload}/");
    // '/' + 1 == '0': the end is the prefix with its last byte bumped.
    let end = format!("{letter}/{run}/{workload}0");
    (start.into_bytes(), end.into_bytes())
}

/// Decodes a stored integer; anything else comes back as a string, which
/// no checker accepts as a value that was written.
pub fn decode_int(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes).ok().and_then(|s| s.parse::<i64>().ok()) {
        Some(n) => Value::from(n),
        None => Value::from(String::from_utf8_lossy(bytes).into_owned()),
    }
}

pub fn encode_int(n: i64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// A runnable workload.
pub enum Workload {
    Register(register::Register),
    Set(set::SetWorkload),
    Bank(bank::Bank),
    ListAppend(list_append::ListAppend),
    Timestamps(timestamps::Timestamps),
}

impl Workload {
    /// The workload `name` for a run with `concurrency` workers, its keys
    /// under run id `run`.
    pub fn new(name: WorkloadName, run: &str, concurrency: usize) -> Workload {
        match name {
            WorkloadName::Register => Workload::Register(register::Register::new(run, concurrency)),
            WorkloadName::Set => Workload::Set(set::SetWorkload::new(run)),
            WorkloadName::Bank => Workload::Bank(bank::Bank::new(run)),
            WorkloadName::ListAppend => Workload::ListAppend(list_append::ListAppend::new(run)),
            WorkloadName::Timestamps => Workload::Timestamps(timestamps::Timestamps::new(run)),
        }
    }

    /// Prepares the data before the workers start (the bank opens its
    /// accounts); not recorded in the history.
    pub async fn setup(&self, client: &Client) -> client::Result<()> {
        match self {
            Workload::Bank(w) => w.setup(client).await,
            _ => Ok(()),
        }
    }

    /// The next op for `worker`.
    pub fn next(&self, worker: usize, rng: &mut StdRng) -> Invocation {
        match self {
            Workload::Register(w) => w.next(worker, rng),
            Workload::Set(w) => w.next(),
            Workload::Bank(w) => w.next(rng),
            Workload::ListAppend(w) => w.next(rng),
            Workload::Timestamps(w) => w.next(rng),
        }
    }

    /// Runs `op` against the cluster.
    pub async fn execute(&self, client: &Client, op: &Invocation) -> Completion {
        match self {
            Workload::Register(w) => w.execute(client, op).await,
            Workload::Set(w) => w.execute(client, op).await,
            Workload::Bank(w) => w.execute(client, op).await,
            Workload::ListAppend(w) => w.execute(client, op).await,
            Workload::Timestamps(w) => w.execute(client, op).await,
        }
    }

    /// The ops to run once the cluster has healed and recovered, each
    /// retried until it is `ok` (or time runs out).
    pub fn final_ops(&self) -> Vec<Invocation> {
        match self {
            Workload::Set(w) => vec![w.final_read()],
            // A last read-only total, so a run always has one to check.
            Workload::Bank(_) => vec![Invocation { f: "read", value: serde_json::json!({ "mode": "read-only" }) }],
            Workload::Register(_) | Workload::ListAppend(_) | Workload::Timestamps(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Goal: workload names parse, as the command line spells them
    /// (clap's names and ours agree); unknown names list the known ones.
    #[test]
    fn workload_names() {
        use clap::ValueEnum;
        assert_eq!(WorkloadName::parse("list-append"), Ok(WorkloadName::ListAppend));
        for w in WorkloadName::ALL {
            assert_eq!(WorkloadName::parse(w.as_str()), Ok(w));
            assert_eq!(WorkloadName::from_str(w.as_str(), false), Ok(w));
        }
        assert_eq!(WorkloadName::value_variants().len(), WorkloadName::ALL.len());
        assert_eq!(
            WorkloadName::parse("banana").unwrap_err(),
            "unknown workload \"banana\"; known: register, set, bank, list-append, timestamps"
        );
    }

    /// Goal: errors map to completions as the module docs' table says.
    #[test]
    fn write_errors_map_to_info_or_fail() {
        let v = json!([1, 2]);
        let c = Completion::write_error(v.clone(), &client::Error::Ambiguous("lost".into()));
        assert_eq!(c.op_type, OpType::Info);
        assert!(c.error.unwrap().contains("lost"));
        for e in [
            client::Error::Unavailable("x".into()),
            client::Error::Connect("x".into()),
            client::Error::InvalidArgument("x".into()),
        ] {
            assert_eq!(Completion::write_error(v.clone(), &e).op_type, OpType::Fail, "{e}");
        }
    }

    /// Goal: a call that outlives the guard is `info` if it writes, `fail`
    /// if it reads. Method: a call that never finishes, under a 10 ms guard.
    #[tokio::test]
    async fn timeouts_are_info_for_writes_and_fail_for_reads() {
        let v = json!([1, null]);
        let never = || std::future::pending::<Completion>();
        let w = guarded_for(Duration::from_millis(10), Effect::Write, &v, never()).await;
        assert_eq!((w.op_type, w.value), (OpType::Info, v.clone()));
        let r = guarded_for(Duration::from_millis(10), Effect::Read, &v, never()).await;
        assert_eq!(r.op_type, OpType::Fail);
    }

    /// Goal: keys spread over the letters (so over the shards) and each
    /// letter's range holds exactly that workload's keys of that run.
    #[test]
    fn keys_spread_and_ranges_hold_them() {
        let letters: std::collections::BTreeSet<u8> = (0..26).map(|id| spread_key("r1", "set", id)[0]).collect();
        assert_eq!(letters.len(), 26);
        assert_eq!(spread_key("r1", "set", 27), b"b/r1/set/27".to_vec());
        let (start, end) = spread_range("r1", "set", 'b');
        for id in [1, 27, 26_001] {
            let k = spread_key("r1", "set", id);
            assert!(start <= k && k < end, "{}", String::from_utf8_lossy(&k));
        }
        for other in [spread_key("r1", "register", 27), spread_key("r2", "set", 27), b"b/r1/set0".to_vec()] {
            assert!(!(start <= other && other < end), "{}", String::from_utf8_lossy(&other));
        }
        assert_eq!(decode_int(&encode_int(-42)), json!(-42));
        assert_eq!(decode_int(b"x1"), json!("x1"));
    }
}
