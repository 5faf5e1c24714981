//! The replica's durable transaction records (prepared transactions and
//! the coordinator's decisions, in cf `txn`), read back when it loads.

use super::*;
use crate::storage::keycode::txn_key_id_bytes;

/// Reads a shard's records of one kind from cf txn.
pub(super) fn load_txn_records<T>(
    engine: &Engine,
    shard: ShardId,
    kind: TxnKey,
    decode: impl Fn(&[u8], &[u8]) -> std::result::Result<T, String>,
) -> std::result::Result<Vec<T>, String> {
    let (lo, hi) = txn_kind_bounds(shard, kind);
    let mut opts = rocksdb::ReadOptions::default();
    opts.set_iterate_upper_bound(hi);
    let mut it = engine.db().raw_iterator_cf_opt(engine.cf(CF_TXN), opts);
    it.seek(lo);
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let id = txn_key_id_bytes(k).ok_or_else(|| format!("{shard}: a txn record key of {} bytes", k.len()))?;
        out.push(decode(id, v)?);
        it.next();
    }
    it.status().map_err(|e| e.to_string())?;
    Ok(out)
}

pub(super) fn decode_prepared(_key: &[u8], v: &[u8]) -> std::result::Result<txn::PreparedTxn, String> {
    let p: proto::storage::PreparedTxn =
        prost::Message::decode(v).map_err(|e| format!("corrupt prepared record: {e}"))?;
    command::prepared_from_proto(p)
}

pub(super) fn decode_decision(key: &[u8], v: &[u8]) -> std::result::Result<(meta::TxnId, txn::Decision), String> {
    let d: proto::storage::DecisionRecord =
        prost::Message::decode(v).map_err(|e| format!("corrupt decision record: {e}"))?;
    Ok((command::txn_id_from(key)?, command::decision_from_proto(&d)))
}
