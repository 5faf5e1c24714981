//! Conversions between the domain types of `meta` and their protobuf
//! forms (the gRPC messages and the storage records), in one place: the
//! server's code passes `meta` types around and meets `proto` only where
//! bytes go out or come in.

use meta::{Epoch, ReplicaDescriptor, ReplicaId, ServerId, ShardDescriptor, ShardId, TxnId};

pub fn descriptor_to_proto(d: &ShardDescriptor) -> proto::ShardDescriptor {
    proto::ShardDescriptor {
        shard_id: d.shard_id.0,
        start_key: d.start_key.clone(),
        end_key: d.end_key.clone(),
        epoch: d.epoch.0,
        replicas: d
            .replicas
            .iter()
            .map(|r| proto::ReplicaDescriptor { replica_id: r.replica_id.0, server_id: r.server_id.0 })
            .collect(),
    }
}

pub fn descriptor_from_proto(d: proto::ShardDescriptor) -> ShardDescriptor {
    ShardDescriptor {
        shard_id: ShardId(d.shard_id),
        start_key: d.start_key,
        end_key: d.end_key,
        epoch: Epoch(d.epoch),
        replicas: d
            .replicas
            .into_iter()
            .map(|r| ReplicaDescriptor { replica_id: ReplicaId(r.replica_id), server_id: ServerId(r.server_id) })
            .collect(),
    }
}

/// A transaction id as the protocol carries it: 16 bytes, big-endian.
pub fn txn_id_bytes(txn: TxnId) -> Vec<u8> {
    txn.0.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a descriptor survives the trip through its protobuf form.
    #[test]
    fn descriptors_round_trip() {
        let d = ShardDescriptor {
            shard_id: ShardId(3),
            start_key: b"n".to_vec(),
            end_key: b"t".to_vec(),
            epoch: Epoch(7),
            replicas: vec![ReplicaDescriptor { replica_id: ReplicaId(9), server_id: ServerId(2) }],
        };
        assert_eq!(descriptor_from_proto(descriptor_to_proto(&d)), d);
    }
}
