//! Every bound the spanserver enforces, in one place.
//!
//! A request that exceeds a limit is refused with `InvalidArgument` naming
//! the limit; nothing is half-applied. Internal queues that fill up shed load
//! with `Unavailable` (the caller may retry) rather than grow without bound.
//! Tunables that operators may change (tick length, retention, ...) live in
//! [`crate::config`]; these are the fixed safety bounds.

use std::time::Duration;

// --- User data -------------------------------------------------------------

/// Longest key, in bytes (the cluster-wide bound, `meta::limits`). Keys
/// are encoded twice their length in the worst case (escaped zero bytes),
/// so this keeps version keys small.
pub const KEY_BYTES_MAX: usize = meta::limits::KEY_BYTES_MAX;

/// Longest bound of a scan: a key, or just after one (a page's edge is a
/// key with a zero byte appended: the least key above it).
pub const SCAN_BOUND_BYTES_MAX: usize = KEY_BYTES_MAX + 1;

/// Largest value, in bytes.
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;

/// Most mutations in one `Write` request.
pub const WRITE_MUTATIONS_MAX: usize = 10_000;

/// Largest total of key and value bytes in one `Write` request; a write is
/// one Raft entry, so this also bounds entry size.
pub const WRITE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Most pairs returned by one `Scan` call (the client pages for more).
pub const SCAN_LIMIT_MAX: u32 = 10_000;

/// Longest drain a leadership transfer may ask for
/// (`Admin.TransferLeader`'s `drain_ms`): new work on the shard waits that
/// long at most.
pub const TRANSFER_DRAIN_MAX: Duration = Duration::from_secs(10);

/// A drained leadership transfer that would hand over at its deadline
/// gives up instead if a transaction still open there has been open this
/// long (`shard/handover.rs`): its read locks would die with the
/// leadership, and a long transaction retried loses the most work (and
/// under repeated moves might never finish).
pub const HANDOVER_SPARES_OPEN_FOR: Duration = Duration::from_secs(2);

/// Most servers that may join a cluster at run time (`Peer.Join`; the
/// record of them is one system value).
pub const JOINED_SERVERS_MAX: usize = 1_024;

/// Longest address a joining server may give, in bytes.
pub const SERVER_ADDR_BYTES_MAX: usize = 256;

/// How often every server reads the record of joined servers
/// (`directory.rs`): a new server is reachable from all within this.
pub const JOINED_SERVERS_REFRESH: Duration = Duration::from_secs(2);

/// Most participants one commit may name, and most shards one heartbeat
/// may name.
pub const PARTICIPANTS_MAX: usize = 1_024;

/// Promotions and demotions in one membership change (`ChangeReplicas`).
pub const REPLICA_CHANGES_MAX: usize = 16;

/// How often one `Admin.AllocateIds` tries to raise the id high-water
/// mark before it answers `Unavailable` (another allocation moved it
/// each time).
pub const ID_ALLOCATION_ATTEMPTS_MAX: usize = 8;

/// How long `Admin.AllocateIds` pauses between two tries.
pub const ID_ALLOCATION_RETRY_PAUSE: Duration = Duration::from_millis(5);

/// Pairs returned by one `Scan` call when the request says `limit = 0`.
pub const SCAN_LIMIT_DEFAULT: u32 = 1_000;

/// A `Scan` page stops once its keys and values reach this many bytes.
pub const SCAN_PAGE_BYTES_MAX: usize = 4 * 1024 * 1024;

// --- gRPC ------------------------------------------------------------------

/// Largest gRPC message the data and admin services accept or send.
/// Bigger than `WRITE_BYTES_MAX` plus framing.
pub const GRPC_MESSAGE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest Raft batch message between servers (several appends at most
/// `RAFT_MSG_BYTES_MAX` each).
pub const RAFT_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Snapshot data files travel in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

/// Largest snapshot data a server builds or accepts (the default and the
/// ceiling of `raft.snapshot_bytes_max`). A shard whose data exceeds it
/// cannot be sent to a lagging follower (it must be split first; the
/// placement driver's job, DESIGN.md §7). Nothing of it is held in memory:
/// it is streamed to and from disk (`storage/snapshot.rs`).
pub const SNAPSHOT_BYTES_MAX: u64 = 4 * 1024 * 1024 * 1024;

/// Snapshots one server builds at once (each reads a shard's range into a
/// file, off the event loop). Beyond it, a leader answers raft-rs "not
/// yet", and raft-rs asks again: a server that returns after long with
/// many shards behind is caught up a few shards at a time, without every
/// leader of its shards reading its whole range at once.
pub const SNAPSHOT_BUILDS_MAX: usize = 2;

/// Largest Raft snapshot message (the part beside the data file: the
/// shard's prepared transactions and decisions, bounded by the
/// transaction limits).
pub const SNAPSHOT_MESSAGE_BYTES_MAX: usize = 256 * 1024 * 1024;

// --- Raft --------------------------------------------------------------------

/// raft-rs `max_size_per_msg`: bytes of entries in one append message.
pub const RAFT_MSG_BYTES_MAX: u64 = 1024 * 1024;

/// raft-rs `max_inflight_msgs`: unacknowledged appends per follower.
pub const RAFT_INFLIGHT_MSGS_MAX: usize = 256;

/// raft-rs `max_uncommitted_size`: bytes proposed but not committed per
/// shard; beyond it proposals are dropped (`Unavailable`).
pub const RAFT_UNCOMMITTED_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// raft-rs `max_committed_size_per_ready`: bytes applied per loop iteration
/// per shard, so one busy shard cannot stall the others.
pub const RAFT_COMMITTED_BYTES_PER_READY_MAX: u64 = 16 * 1024 * 1024;

/// Bytes of a replica's newest log entries kept in memory
/// (`storage/raft_log.rs`), so that applying and replicating them does
/// not read RocksDB; the newest entry is kept whatever its size.
pub const RAFT_ENTRY_CACHE_BYTES_MAX: usize = 256 * 1024;

/// Bytes of decompressed RocksDB blocks a server keeps in memory (one
/// cache for every column family). A point read that misses it reads and
/// decompresses a block: at scale 16 pgbench's data is about 200 MB per
/// server, and with RocksDB's default (32 MiB) most reads missed.
pub const BLOCK_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// Bytes of RocksDB write-ahead log a server keeps before it flushes the
/// column families that hold the oldest log file back. RocksDB's default
/// (four times every memtable's size) kept about 1 GiB per server after a
/// pgbench load, all of it replayed at the next start.
pub const WAL_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// A split by size reads at most this many times `split.size_bytes` of
/// the shard to find its middle (`split_queue.rs`): a shard bigger than
/// that splits at the middle of what was read, and again next round.
pub const SPLIT_SCAN_SIZES_MAX: u64 = 4;

// --- The event loop ----------------------------------------------------------

/// Most replicas one server hosts; a message for a shard not hosted here
/// creates a replica only below it (`event_loop.rs`).
pub const REPLICAS_PER_SERVER_MAX: usize = 100_000;

/// Most senders an uninitialized replica remembers to answer.
pub const UNINITIALIZED_PEERS_MAX: usize = 16;

/// Messages waiting for the event loop (requests and Raft traffic). When
/// full, requests get `Unavailable` and Raft messages are dropped (Raft
/// retransmits).
pub const INBOX_MESSAGES_MAX: usize = 64 * 1024;

/// Messages the loop takes from its inbox before it handles Ready states:
/// large enough to batch, small enough to keep ticks on time.
pub const INBOX_DRAIN_PER_ITERATION_MAX: usize = 4 * 1024;

/// Proposed but not yet applied writes per shard.
pub const PENDING_WRITES_PER_SHARD_MAX: usize = 16 * 1024;

/// Writes that wait for a new leader to become ready (it must first apply
/// every entry of earlier terms, to know the timestamps in its log).
pub const WAITING_WRITES_PER_SHARD_MAX: usize = 4 * 1024;

/// A peer whose last answer to a clock sample is older than this counts
/// as down for membership changes and decommissions
/// (`clock::ClockGuard::peer_answers`): ten sampling rounds, so one sample
/// slower than `SAMPLE_RTT_MAX` on a loaded machine does not make a live
/// server look down.
pub const PEER_ANSWER_WINDOW: Duration = Duration::from_secs(2);

/// A transactional request still unanswered after this long is logged,
/// once, with what it waits for (`shard/slow.rs`): well past a lock wait
/// or a leader change that goes well, and before a client's deadline.
pub const SLOW_REQUEST_LOG_AFTER: Duration = Duration::from_secs(3);

/// Linearizable reads waiting on one shard (queued, at ReadIndex, or for
/// apply).
pub const PENDING_READS_PER_SHARD_MAX: usize = 16 * 1024;

/// Per-peer queue of outbound Raft batches.
pub const PEER_QUEUE_BATCHES_MAX: usize = 4 * 1024;

/// Closed timestamps that waiting reads ask for are proposed at most this
/// often per shard: a stream of reads at `TT.now().latest` costs at most
/// one Raft entry per interval, not one per read.
pub const FORCED_CLOSE_INTERVAL_MIN: Duration = Duration::from_millis(2);

/// Iterators a server keeps for point reads (`storage::Engine::point_iterator`):
/// about the number of reads it runs at once; more are made when needed and
/// dropped after use.
pub const POINT_ITERATORS_KEPT_MAX: usize = 64;

/// How far past `TT.now().latest` the versions a replica did not see
/// written (found at a restart, brought by a snapshot) are assumed to
/// reach, for skipping GC rounds that can find nothing (`shard/gc.rs`): a
/// commit timestamp is ahead of the clock by at most the reads that
/// pushed it (`SNAPSHOT_READ_FUTURE_MAX`) and the clocks' uncertainty.
pub const GC_UNTRACKED_MARGIN: Duration = Duration::from_secs(60);

/// Versions the garbage collector examines per shard per loop iteration,
/// at most.
pub const GC_VERSIONS_PER_STEP_MAX: usize = 1_000;

/// Versions the garbage collector examines per second on one server,
/// over all its replicas (`shard/gc.rs`, "Pacing"). A loop scans about a
/// million versions a second, so a round takes at most about a fifth of
/// its time; unpaced, the first round after a restart over a TPC-B load
/// (1.6 million accounts) took all of it for over a second, on every
/// server at once.
pub const GC_VERSIONS_PER_SECOND_MAX: u64 = 200_000;

/// The most versions the garbage collector may examine in one go after
/// an idle spell: its budget stops growing here.
pub const GC_VERSIONS_BURST_MAX: u64 = 10_000;

// --- Waiting ----------------------------------------------------------------

/// How far in the future (beyond `TT.now().latest`) a snapshot read may ask
/// for; such a read waits for the replica to catch up. Further is refused.
pub const SNAPSHOT_READ_FUTURE_MAX: Duration = Duration::from_secs(5);

// --- Operator tools ----------------------------------------------------------

/// Largest clock offset `Admin.SetClock` accepts, either way: enough for
/// the jepsen clock nemesis beyond epsilon (up to 250 epsilons, and epsilon
/// is at most a second), far from the hour or year a typo or an attack
/// would ask for. (A server whose clock is off beyond epsilon stops
/// serving timestamps anyway: `clock.rs`.)
pub const CLOCK_OFFSET_MAX: Duration = Duration::from_secs(300);

/// Largest clock drift `Admin.SetClock` accepts, in parts per million
/// (10%).
pub const CLOCK_DRIFT_PPM_MAX: i64 = 100_000;

/// Connection attempts to a peer: first and largest back-off.
pub const PEER_RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
pub const PEER_RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How long a peer connection attempt may take.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Split by load: one request in this many has its key sampled, and the
/// newest this many samples are kept per replica (the split key is their
/// median: half the sampled load on each side).
pub const LOAD_SAMPLE_EVERY: u64 = 8;
pub const LOAD_SAMPLE_KEYS: usize = 512;

/// The key count a shard's leader reports (`spandb status`) reads at most
/// this many bytes of the shard's versions each time the shard was written
/// since the last count (the split queue's round): exact up to it, beyond
/// extrapolated from the bytes per key read so far.
pub const KEY_COUNT_SCAN_BYTES_MAX: u64 = 1024 * 1024;

/// How often a replica that knows no leader asks the other servers
/// whether it still belongs to its shard (`replica_gc.rs`).
pub const REPLICA_GC_INTERVAL: Duration = Duration::from_secs(10);

/// A Raft stream to a peer whose request body has not been pulled for
/// this long while batches wait in it is torn down and dialled again.
/// HTTP/2 keep-alives only catch a peer that stopped answering; this
/// catches a call that stopped moving on our side (seen after a
/// connection reset just after the handshake: the call never resolved,
/// and the peer never heard from this server again).
pub const PEER_STREAM_STALL: Duration = Duration::from_secs(2);
