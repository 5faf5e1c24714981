//! Conversions between the domain types of `meta` and their protobuf
//! forms (the gRPC messages and the storage records), in one place: the
//! server's code passes `meta` types around and meets `proto` only where
//! bytes go out or come in.

use meta::{
    ConfVer, RangeVer, ReplicaDescriptor, ReplicaId, ReplicaRole, ServerId, ShardDescriptor, ShardEpoch, ShardId, TxnId,
};

pub fn descriptor_to_proto(d: &ShardDescriptor) -> proto::ShardDescriptor {
    proto::ShardDescriptor {
        shard_id: d.shard_id.0,
        start_key: d.start_key.clone(),
        end_key: d.end_key.clone(),
        range_ver: d.epoch.range_ver.0,
        conf_ver: d.epoch.conf_ver.0,
        replicas: d.replicas.iter().map(replica_to_proto).collect(),
    }
}

pub fn replica_to_proto(r: &ReplicaDescriptor) -> proto::ReplicaDescriptor {
    proto::ReplicaDescriptor {
        replica_id: r.replica_id.0,
        server_id: r.server_id.0,
        role: role_to_proto(r.role) as i32,
    }
}

pub fn replica_from_proto(r: proto::ReplicaDescriptor) -> ReplicaDescriptor {
    ReplicaDescriptor {
        replica_id: ReplicaId(r.replica_id),
        server_id: ServerId(r.server_id),
        role: role_from_proto(r.role),
    }
}

pub fn descriptor_from_proto(d: proto::ShardDescriptor) -> ShardDescriptor {
    ShardDescriptor {
        shard_id: ShardId(d.shard_id),
        start_key: d.start_key,
        end_key: d.end_key,
        epoch: ShardEpoch { range_ver: RangeVer(d.range_ver), conf_ver: ConfVer(d.conf_ver) },
        replicas: d.replicas.into_iter().map(replica_from_proto).collect(),
    }
}

fn role_to_proto(role: ReplicaRole) -> proto::ReplicaRole {
    match role {
        ReplicaRole::Voter => proto::ReplicaRole::Voter,
        ReplicaRole::Learner => proto::ReplicaRole::Learner,
        ReplicaRole::IncomingVoter => proto::ReplicaRole::IncomingVoter,
        ReplicaRole::DemotingVoter => proto::ReplicaRole::DemotingVoter,
    }
}

/// An unknown role (from a newer peer) reads as a learner: it never
/// counts as a vote.
fn role_from_proto(role: i32) -> ReplicaRole {
    match proto::ReplicaRole::try_from(role) {
        Ok(proto::ReplicaRole::Voter) => ReplicaRole::Voter,
        Ok(proto::ReplicaRole::IncomingVoter) => ReplicaRole::IncomingVoter,
        Ok(proto::ReplicaRole::DemotingVoter) => ReplicaRole::DemotingVoter,
        Ok(proto::ReplicaRole::Learner) | Err(_) => ReplicaRole::Learner,
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
            epoch: ShardEpoch { range_ver: RangeVer(7), conf_ver: ConfVer(4) },
            replicas: [
                ReplicaRole::Voter,
                ReplicaRole::Learner,
                ReplicaRole::IncomingVoter,
                ReplicaRole::DemotingVoter,
            ]
            .into_iter()
            .enumerate()
            .map(|(i, role)| ReplicaDescriptor { replica_id: ReplicaId(9 + i as u64), server_id: ServerId(2), role })
            .collect(),
        };
        assert_eq!(descriptor_from_proto(descriptor_to_proto(&d)), d);
    }
}
