//! Order-preserving encodings of RocksDB keys.
//!
//! # MVCC versions (the `data` column family)
//!
//! ```text
//!   0x01 | escape(user_key) | 0x00 0x00 | !commit_ts (8 bytes, big-endian)
//! ```
//!
//! `escape` turns every `0x00` into `0x00 0xFF`, and `0x00 0x00` ends the
//! key, so for user keys `a < b` (bytewise) every version of `a` sorts
//! before every version of `b`, even when `a` is a prefix of `b`
//! (`0x00 0x00 < 0x00 0xFF` and `0x00 0x00 < any byte >= 0x01`). Within one
//! key, `!commit_ts` puts the newest version first, so a read at `t` seeks to
//! `(key, t)` and takes the first entry it finds:
//!
//! ```text
//!   key "a", versions at 5, 9; key "a\0" at 7; key "b" at 3
//!
//!   01 61 00 00 !9      "a"@9      <- seek ("a", 20) lands here: value @9
//!   01 61 00 00 !5      "a"@5      <- seek ("a", 8)  lands here: value @5
//!   01 61 00 FF 00 00 !7  "a\0"@7
//!   01 62 00 00 !3      "b"@3
//! ```
//!
//! The leading tag byte `0x01` leaves room for other record kinds and gives
//! an end bound (`0x02`) for "to the end of the key space".
//!
//! # Raft state (the `raft` column family)
//!
//! ```text
//!   shard_id (8, BE) | kind (1) [| index (8, BE) for log entries]
//! ```
//!
//! Everything of one shard is contiguous, so a shard's log is one range.

use truetime::Timestamp;

use meta::ShardId;

const VERSION_TAG: u8 = 0x01;

fn escape_into(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// The prefix shared by every version of `user_key`; also the smallest
/// encoded key of any version of any key `>= user_key`.
pub fn key_prefix(user_key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(user_key.len() + 3 + 8);
    out.push(VERSION_TAG);
    escape_into(&mut out, user_key);
    out
}

/// The encoded key of `user_key`'s version at `ts`.
pub fn version_key(user_key: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = key_prefix(user_key);
    out.extend_from_slice(&(!ts.as_nanos()).to_be_bytes());
    out
}

/// Whether `encoded` is a version key (long enough for a tag, an empty
/// user key's end and a timestamp): the domain of [`versions_prefix`].
pub fn is_version_key(encoded: &[u8]) -> bool {
    encoded.len() >= 1 + 2 + 8 && encoded[0] == VERSION_TAG
}

/// A version key without its timestamp: [`key_prefix`] of its user key,
/// shared by all its versions (RocksDB's prefix extractor for the data
/// column family's bloom filters). Only for keys [`is_version_key`] accepts.
pub fn versions_prefix(encoded: &[u8]) -> &[u8] {
    &encoded[..encoded.len().saturating_sub(8)]
}

/// Lower and upper bounds in the data column family for user keys in
/// `[start, end)`; an empty `end` means unbounded.
pub fn range_bounds(start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let lower = key_prefix(start);
    let upper = if end.is_empty() { vec![VERSION_TAG + 1] } else { key_prefix(end) };
    (lower, upper)
}

/// The encoded bound just after every version of `user_key`: where the next
/// user key's versions begin.
pub fn after_all_versions(user_key: &[u8]) -> Vec<u8> {
    let mut k = user_key.to_vec();
    k.push(0);
    key_prefix(&k)
}

/// A version key that does not decode: the data column family is corrupt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed version key {0:02x?}")]
pub struct MalformedKey(pub Vec<u8>);

/// Splits an encoded version key into the user key and the timestamp.
pub fn decode_version_key(encoded: &[u8]) -> Result<(Vec<u8>, Timestamp), MalformedKey> {
    let malformed = || MalformedKey(encoded.to_vec());
    if encoded.len() < 1 + 2 + 8 || encoded[0] != VERSION_TAG {
        return Err(malformed());
    }
    let (body, ts_bytes) = encoded.split_at(encoded.len() - 8);
    let mut user_key = Vec::with_capacity(body.len());
    let mut i = 1;
    loop {
        match body.get(i) {
            None => return Err(malformed()),
            Some(0) => match body.get(i + 1) {
                Some(0) if i + 2 == body.len() => break,
                Some(0xFF) => {
                    user_key.push(0);
                    i += 2;
                }
                _ => return Err(malformed()),
            },
            Some(&b) => {
                user_key.push(b);
                i += 1;
            }
        }
    }
    let inverted = u64::from_be_bytes(ts_bytes.try_into().map_err(|_| malformed())?);
    Ok((user_key, Timestamp::from_nanos(!inverted)))
}

/// What a key in the `raft` column family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RaftKey {
    /// One log entry (followed by the index).
    LogEntry = 0x01,
    HardState = 0x02,
    ConfState = 0x03,
    ApplyState = 0x04,
    TruncatedState = 0x05,
    /// The replica's identity and shard descriptor: its presence means the
    /// replica exists on this server.
    Replica = 0x06,
    GcWatermark = 0x07,
    /// A snapshot install whose data file is not yet ingested: the path
    /// (`storage/snapshot.rs`).
    PendingIngest = 0x08,
    /// The id of a replica of the shard destroyed on this server (its
    /// data deleted): messages for it, or older ones, are dropped.
    Tombstone = 0x09,
}

pub fn raft_key(shard: ShardId, kind: RaftKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.extend_from_slice(&shard.0.to_be_bytes());
    k.push(kind as u8);
    k
}

pub fn log_key(shard: ShardId, index: u64) -> Vec<u8> {
    let mut k = raft_key(shard, RaftKey::LogEntry);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The log index in a log entry key of `shard`, if `key` is one.
pub fn decode_log_key(shard: ShardId, key: &[u8]) -> Option<u64> {
    let prefix = raft_key(shard, RaftKey::LogEntry);
    let rest = key.strip_prefix(prefix.as_slice())?;
    Some(u64::from_be_bytes(rest.try_into().ok()?))
}

/// The shard id of any key in the `raft` column family.
pub fn decode_raft_key_shard(key: &[u8]) -> Option<ShardId> {
    Some(ShardId(u64::from_be_bytes(key.get(..8)?.try_into().ok()?)))
}

/// What a key in the `txn` column family holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TxnKey {
    /// A transaction prepared on the shard (`proto::storage::PreparedTxn`).
    Prepared = 0x01,
    /// The shard's decision as coordinator (`proto::storage::DecisionRecord`).
    Decision = 0x02,
}

/// `shard_id (8, BE) | kind (1) | txn_id (16, BE)` in the `txn` column family.
pub fn txn_key(shard: ShardId, kind: TxnKey, txn: u128) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.extend_from_slice(&shard.0.to_be_bytes());
    k.push(kind as u8);
    k.extend_from_slice(&txn.to_be_bytes());
    k
}

/// The transaction id of a [`txn_key`] (the bytes after the shard and the
/// kind), or `None` for a key shorter than that layout.
pub fn txn_key_id_bytes(key: &[u8]) -> Option<&[u8]> {
    key.get(9..)
}

/// Bounds of one kind of a shard's records in the `txn` column family.
pub fn txn_kind_bounds(shard: ShardId, kind: TxnKey) -> (Vec<u8>, Vec<u8>) {
    let mut lo = shard.0.to_be_bytes().to_vec();
    lo.push(kind as u8);
    let mut hi = shard.0.to_be_bytes().to_vec();
    hi.push(kind as u8 + 1);
    (lo, hi)
}

/// Bounds of everything a shard keeps in the `raft` column family.
pub fn raft_shard_bounds(shard: ShardId) -> (Vec<u8>, Vec<u8>) {
    (shard.0.to_be_bytes().to_vec(), (shard.0 + 1).to_be_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    #[test]
    fn versions_sort_newest_first_and_keys_in_order() {
        let mut keys = [
            version_key(b"b", ts(3)),
            version_key(b"a\0", ts(7)),
            version_key(b"a", ts(5)),
            version_key(b"a", ts(9)),
            version_key(b"", ts(1)),
        ];
        keys.sort();
        let decoded: Vec<_> = keys.iter().map(|k| decode_version_key(k).unwrap()).collect();
        assert_eq!(
            decoded,
            vec![
                (b"".to_vec(), ts(1)),
                (b"a".to_vec(), ts(9)),
                (b"a".to_vec(), ts(5)),
                (b"a\0".to_vec(), ts(7)),
                (b"b".to_vec(), ts(3)),
            ]
        );
    }

    #[test]
    fn bounds_contain_exactly_the_range() {
        let (lo, hi) = range_bounds(b"b", b"d");
        assert!(version_key(b"a\xff", ts(1)) < lo);
        assert!(lo <= version_key(b"b", Timestamp::MAX));
        assert!(version_key(b"c\0\0", ts(0)) < hi);
        assert!(version_key(b"d", Timestamp::MAX) >= hi);
        let (_, unbounded) = range_bounds(b"", b"");
        assert!(version_key(&[0xFF; 64], ts(0)) < unbounded);
        assert!(after_all_versions(b"a") > version_key(b"a", ts(0)));
        assert!(after_all_versions(b"a") <= version_key(b"a\0", Timestamp::MAX));
    }

    #[test]
    fn malformed_keys_are_errors() {
        for bad in [&b""[..], b"\x01", b"\x02a\0\0\0\0\0\0\0\0\0\0", b"\x01a\0\x05\0\0\0\0\0\0\0\0"] {
            assert!(decode_version_key(bad).is_err(), "{bad:?}");
        }
    }

    /// Goal: a txn record key gives back its transaction id, within its
    /// kind's bounds; a key shorter than the layout gives none (no panic).
    #[test]
    fn txn_keys_give_back_their_transaction() {
        let k = txn_key(ShardId(3), TxnKey::Decision, 0xabcd);
        assert_eq!(txn_key_id_bytes(&k), Some(&0xabcd_u128.to_be_bytes()[..]));
        let (lo, hi) = txn_kind_bounds(ShardId(3), TxnKey::Decision);
        assert!(lo <= k && k < hi);
        assert_eq!(txn_key_id_bytes(&k[..8]), None);
    }

    #[test]
    fn log_keys_round_trip_and_stay_within_the_shard() {
        let k = log_key(ShardId(7), 42);
        assert_eq!(decode_log_key(ShardId(7), &k), Some(42));
        assert_eq!(decode_log_key(ShardId(8), &k), None);
        let (lo, hi) = raft_shard_bounds(ShardId(7));
        assert!(lo <= k && k < hi);
        assert!(raft_key(ShardId(7), RaftKey::GcWatermark) < hi);
        assert_eq!(decode_raft_key_shard(&k), Some(ShardId(7)));
    }

    proptest! {
        /// Key order is preserved: comparing encodings equals comparing
        /// (user key ascending, timestamp descending).
        #[test]
        fn encoding_preserves_order(
            a in proptest::collection::vec(any::<u8>(), 0..12),
            b in proptest::collection::vec(any::<u8>(), 0..12),
            ta in any::<u64>(),
            tb in any::<u64>(),
        ) {
            let ea = version_key(&a, ts(ta));
            let eb = version_key(&b, ts(tb));
            let want = a.cmp(&b).then(tb.cmp(&ta));
            prop_assert_eq!(ea.cmp(&eb), want);
            prop_assert_eq!(decode_version_key(&ea).unwrap(), (a, ts(ta)));
        }
    }
}
