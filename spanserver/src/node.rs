//! Serving data requests: validation, routing checks, waiting, reading.
//!
//! Three kinds of request, three ways to wait:
//!
//! - **Linearizable read** (`read_ts = 0`, leader only): ask the loop for a
//!   ReadIndex round; once it answers, every write acknowledged before the
//!   read began is applied here. Read at the replica's safe time, which the
//!   loop publishes before it answers (so the read sees at least that
//!   state) and which is exactly the state read (so `read_ts` is honest).
//! - **Snapshot read** at `t` (any replica): wait until safe time `>= t`
//!   (asking a leader to close a timestamp at once), take a RocksDB
//!   snapshot, then check `t` against the GC watermark (mvcc.rs explains
//!   the order), and read at `t`.
//! - **Write** (leader only): the loop proposes it at a fresh timestamp `s`
//!   and answers once it is applied; then commit-wait until `TT.after(s)`
//!   before telling the client (`commit_wait.rs`). After that, any snapshot read at a
//!   timestamp taken from `TT.now().latest` anywhere is above `s`.
//!
//! Bad input is refused here, before it reaches the loop, with
//! `InvalidArgument` naming the limit (see `limits.rs`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;
use truetime::{Timestamp, TrueTime};

use crate::commit_wait::CommitWaiter;
use crate::config::{TimeConfig, UnsafeTestingConfig};
use crate::error::{Error, Result};
use crate::ids::{ServerId, ShardId};
use crate::limits;
use crate::registry::{Registry, ReplicaShared, Role};
use crate::shard::{contains, WriteBody, WriteOutcome};
use crate::storage::mvcc::Reader;
use crate::storage::Engine;
use crate::store::{StoreHandle, StoreMsg};

/// Everything a request handler needs.
pub struct Node {
    pub server_id: ServerId,
    pub registry: Arc<Registry>,
    pub store: StoreHandle,
    /// Taken away at shutdown, so the database closes even while
    /// connections linger (see `Server::stop`).
    engine: RwLock<Option<Engine>>,
    pub tt: TrueTime,
    pub time: TimeConfig,
    commit_waiter: CommitWaiter,
    unsafe_testing: UnsafeTestingConfig,
}

/// The data of a successful get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub value: Option<(Timestamp, Vec<u8>)>,
    pub read_ts: Timestamp,
}

impl Node {
    pub fn new(
        server_id: ServerId,
        registry: Arc<Registry>,
        store: StoreHandle,
        engine: Engine,
        tt: TrueTime,
        time: TimeConfig,
        commit_waiter: CommitWaiter,
        unsafe_testing: UnsafeTestingConfig,
    ) -> Node {
        Node { server_id, registry, store, engine: RwLock::new(Some(engine)), tt, time, commit_waiter, unsafe_testing }
    }

    fn engine(&self) -> Result<Engine> {
        self.engine
            .read()
            .expect("engine lock")
            .clone()
            .ok_or_else(|| Error::Unavailable("server is shutting down".into()))
    }

    /// Stops serving reads from storage; returns the engine so the caller
    /// can close it.
    pub fn take_engine(&self) -> Option<Engine> {
        self.engine.write().expect("engine lock").take()
    }

    fn replica(&self, shard_id: u64) -> Result<Arc<ReplicaShared>> {
        self.registry.get(ShardId(shard_id)).ok_or_else(|| Error::WrongShard {
            shard_id: ShardId(shard_id),
            epoch: None,
            reason: "no replica of this shard on this server".into(),
        })
    }

    fn check_route(&self, r: &ReplicaShared, epoch: u64, keys: &mut dyn Iterator<Item = &[u8]>) -> Result<()> {
        let d = r.descriptor();
        if epoch != 0 && epoch != d.epoch {
            return Err(Error::WrongShard {
                shard_id: r.shard_id,
                epoch: Some(d.epoch),
                reason: format!("epoch {epoch} is stale, the shard is at {}", d.epoch),
            });
        }
        for key in keys {
            if !contains(&d, key) {
                return Err(Error::WrongShard {
                    shard_id: r.shard_id,
                    epoch: Some(d.epoch),
                    reason: "key outside the shard's range".into(),
                });
            }
        }
        Ok(())
    }

    fn not_leader(&self, r: &ReplicaShared) -> Error {
        let leader = r
            .progress()
            .leader_server
            .filter(|s| *s != self.server_id)
            .and_then(|s| self.registry.server_addr(s).map(|a| (s, a)));
        Error::NotLeader { shard_id: r.shard_id, leader }
    }

    /// Resolves the timestamp a read runs at, waiting as needed (module
    /// docs). `requested == 0` asks for a linearizable read.
    async fn read_ts(&self, r: &ReplicaShared, requested: u64) -> Result<Timestamp> {
        if requested == 0 {
            let ts = self.read_index(r).await?;
            // A deliberately broken server (tests only): read the past.
            let stale = Duration::from_millis(self.unsafe_testing.stale_reads_ms);
            return Ok(ts.saturating_sub(stale));
        }
        let ts = Timestamp::from_nanos(requested);
        if r.safe_ts() >= ts {
            return Ok(ts);
        }
        let now = self.tt.now();
        if ts > now.latest.saturating_add(limits::SNAPSHOT_READ_FUTURE_MAX) {
            return Err(Error::InvalidArgument(format!(
                "read timestamp {ts} is more than {:?} in the future (now is at most {})",
                limits::SNAPSHOT_READ_FUTURE_MAX,
                now.latest
            )));
        }
        if r.progress().role == Role::Leader {
            let _ = self.store.send(StoreMsg::CloseTimestampNow { shard: r.shard_id });
        }
        let mut safe = r.watch_safe_ts();
        let reached =
            tokio::time::timeout(self.time.read_timeout(), async { safe.wait_for(|s| *s >= ts).await.is_ok() }).await;
        match reached {
            Ok(true) => Ok(ts),
            Ok(false) => Err(Error::Unavailable("server is shutting down".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "replica of {} has applied up to {}, not yet {ts}; try the leader",
                r.shard_id,
                r.safe_ts()
            ))),
        }
    }

    async fn read_index(&self, r: &ReplicaShared) -> Result<Timestamp> {
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(r));
        }
        let (tx, rx) = oneshot::channel();
        self.store.send(StoreMsg::ReadIndex { shard: r.shard_id, reply: tx })?;
        match tokio::time::timeout(self.time.read_timeout(), rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Unavailable("server is shutting down".into())),
            Err(_) => Err(Error::Unavailable(format!(
                "{}: leadership not confirmed within {:?}",
                r.shard_id,
                self.time.read_timeout()
            ))),
        }
    }

    fn check_watermark(r: &ReplicaShared, read_ts: Timestamp) -> Result<()> {
        let watermark = r.gc_watermark();
        if read_ts < watermark {
            return Err(Error::SnapshotTooOld { read_ts, watermark });
        }
        Ok(())
    }

    pub async fn get(&self, req: proto::GetRequest) -> Result<GetResult> {
        check_key(&req.key)?;
        let r = self.replica(req.shard_id)?;
        self.check_route(&r, req.shard_epoch, &mut std::iter::once(req.key.as_slice()))?;
        let read_ts = self.read_ts(&r, req.read_ts).await?;
        let engine = self.engine()?;
        let reader = Reader::new(&engine);
        Self::check_watermark(&r, read_ts)?;
        let value = reader.get(&req.key, read_ts)?;
        Ok(GetResult { value, read_ts })
    }

    pub async fn scan(&self, req: proto::ScanRequest) -> Result<proto::ScanResponse> {
        if req.start_key.len() > limits::KEY_BYTES_MAX || req.end_key.len() > limits::KEY_BYTES_MAX {
            return Err(Error::InvalidArgument(format!("scan bound longer than {} bytes", limits::KEY_BYTES_MAX)));
        }
        if !req.end_key.is_empty() && req.end_key <= req.start_key {
            return Err(Error::InvalidArgument("scan end key must be after the start key".into()));
        }
        let limit = match req.limit {
            0 => limits::SCAN_LIMIT_DEFAULT,
            n if n > limits::SCAN_LIMIT_MAX => {
                return Err(Error::InvalidArgument(format!("scan limit {n} exceeds {}", limits::SCAN_LIMIT_MAX)))
            }
            n => n,
        };
        let r = self.replica(req.shard_id)?;
        self.check_route(&r, req.shard_epoch, &mut std::iter::once(req.start_key.as_slice()))?;
        // Clip the range to the shard; the client pages across shards.
        let d = r.descriptor();
        let end = match (req.end_key.is_empty(), d.end_key.is_empty()) {
            (true, _) => d.end_key.clone(),
            (false, true) => req.end_key.clone(),
            (false, false) => req.end_key.clone().min(d.end_key.clone()),
        };
        let read_ts = self.read_ts(&r, req.read_ts).await?;
        let engine = self.engine()?;
        let reader = Reader::new(&engine);
        Self::check_watermark(&r, read_ts)?;
        let page = reader.scan(&req.start_key, &end, read_ts, limit as usize, limits::SCAN_PAGE_BYTES_MAX)?;
        Ok(proto::ScanResponse {
            pairs: page
                .pairs
                .into_iter()
                .map(|(key, value, ts)| proto::KeyValue { key, value, version_ts: ts.as_nanos() })
                .collect(),
            resume_key: page.resume_key.unwrap_or_default(),
            read_ts: read_ts.as_nanos(),
        })
    }

    pub async fn write(&self, req: proto::WriteRequest) -> Result<WriteOutcome> {
        check_mutations(&req.mutations)?;
        check_conditions(&req.conditions)?;
        let r = self.replica(req.shard_id)?;
        let body = WriteBody { mutations: req.mutations, conditions: req.conditions };
        self.check_route(&r, req.shard_epoch, &mut body.keys())?;
        if r.progress().role != Role::Leader {
            return Err(self.not_leader(&r));
        }
        let (tx, rx) = oneshot::channel();
        self.store.send(StoreMsg::Write { shard: r.shard_id, epoch: req.shard_epoch, body, reply: tx })?;
        let outcome = match tokio::time::timeout(self.time.write_timeout(), rx).await {
            Ok(Ok(result)) => result?,
            Ok(Err(_)) => return Err(Error::Ambiguous("server stopped before the write's outcome was known".into())),
            Err(_) => {
                return Err(Error::Ambiguous(format!(
                    "the write was proposed but not applied within {:?}",
                    self.time.write_timeout()
                )))
            }
        };
        if !self.unsafe_testing.skip_commit_wait {
            self.commit_waiter.wait(outcome.commit_ts).await;
        }
        Ok(outcome)
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key must not be empty".into()));
    }
    if key.len() > limits::KEY_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "key of {} bytes exceeds the limit of {} bytes",
            key.len(),
            limits::KEY_BYTES_MAX
        )));
    }
    Ok(())
}

fn check_conditions(conditions: &[proto::Condition]) -> Result<()> {
    if conditions.len() > limits::WRITE_MUTATIONS_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} conditions exceed the limit of {} per write",
            conditions.len(),
            limits::WRITE_MUTATIONS_MAX
        )));
    }
    for c in conditions {
        check_key(&c.key)?;
        if c.expected.len() > limits::VALUE_BYTES_MAX {
            return Err(Error::InvalidArgument("expected value exceeds the value limit".into()));
        }
        if c.expect_absent && !c.expected.is_empty() {
            return Err(Error::InvalidArgument("a condition cannot expect both a value and absence".into()));
        }
    }
    Ok(())
}

fn check_mutations(mutations: &[proto::Mutation]) -> Result<()> {
    if mutations.is_empty() {
        return Err(Error::InvalidArgument("a write needs at least one mutation".into()));
    }
    if mutations.len() > limits::WRITE_MUTATIONS_MAX {
        return Err(Error::InvalidArgument(format!(
            "{} mutations exceed the limit of {} per write",
            mutations.len(),
            limits::WRITE_MUTATIONS_MAX
        )));
    }
    let mut bytes = 0usize;
    for m in mutations {
        check_key(&m.key)?;
        if m.value.len() > limits::VALUE_BYTES_MAX {
            return Err(Error::InvalidArgument(format!(
                "value of {} bytes exceeds the limit of {} bytes",
                m.value.len(),
                limits::VALUE_BYTES_MAX
            )));
        }
        bytes += m.key.len() + m.value.len();
    }
    if bytes > limits::WRITE_BYTES_MAX {
        return Err(Error::InvalidArgument(format!(
            "write of {bytes} bytes exceeds the limit of {} bytes",
            limits::WRITE_BYTES_MAX
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &[u8], value_len: usize) -> proto::Mutation {
        proto::Mutation { key: key.to_vec(), value: vec![b'x'; value_len], delete: false }
    }

    #[test]
    fn oversized_or_empty_input_is_refused() {
        let cases: Vec<(Vec<proto::Mutation>, &str)> = vec![
            (vec![], "at least one"),
            (vec![m(b"", 1)], "empty"),
            (vec![m(&vec![b'k'; limits::KEY_BYTES_MAX + 1], 1)], "key of"),
            (vec![m(b"k", limits::VALUE_BYTES_MAX + 1)], "value of"),
            ((0..limits::WRITE_MUTATIONS_MAX + 1).map(|_| m(b"k", 0)).collect(), "mutations exceed"),
            ((0..5).map(|_| m(b"k", limits::VALUE_BYTES_MAX)).collect(), "write of"),
        ];
        for (mutations, want) in cases {
            let err = check_mutations(&mutations).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)));
            assert!(err.to_string().contains(want), "{err} lacks {want:?}");
        }
        check_mutations(&[m(b"k", limits::VALUE_BYTES_MAX)]).unwrap();
    }
}
