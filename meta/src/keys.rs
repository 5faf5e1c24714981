//! The keys SpanDB keeps for itself: every key that begins with byte
//! `0x00` (CockroachDB reserves its low keys the same way). They live in
//! ordinary shards, replicated and durable like any data; user writes to
//! them are refused at the servers' edge, so only the system writes them.
//!
//! ```text
//!   0x00 "sys/ids"   the id allocator's high-water mark (u64, big-endian):
//!                    every shard and replica id at or below it is taken
//!   0x00 "sys/drain" the draining (decommissioned) servers: their ids,
//!                    ascending, each a big-endian u64
//!   0x00 "sys/joined" the servers that joined at run time (`spandb start
//!                    --join`) and their addresses ([`encode_server_addrs`])
//!   0x01 ...         user keys (SQL's start at 0xF0)
//! ```

/// The first byte of every system key.
pub const SYSTEM_PREFIX: u8 = 0x00;

/// Where the id allocator keeps its high-water mark.
pub const ID_HIGH_WATER: &[u8] = b"\x00sys/ids";

/// Where the set of draining servers is kept ([`encode_servers`]).
pub const DRAINING_SERVERS: &[u8] = b"\x00sys/drain";

/// Where the servers that joined at run time are kept
/// ([`encode_server_addrs`]); those of the cluster description are not.
pub const JOINED_SERVERS: &[u8] = b"\x00sys/joined";

/// Servers and their addresses as a system value: for each, ascending by
/// id, the id (big-endian u64), the address's length (big-endian u32) and
/// the address (UTF-8).
pub fn encode_server_addrs(servers: &std::collections::BTreeMap<u64, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, addr) in servers {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(addr.len() as u32).to_be_bytes());
        out.extend_from_slice(addr.as_bytes());
    }
    out
}

/// The servers [`encode_server_addrs`] wrote (None: not such a value).
pub fn decode_server_addrs(mut bytes: &[u8]) -> Option<std::collections::BTreeMap<u64, String>> {
    let mut servers = std::collections::BTreeMap::new();
    while !bytes.is_empty() {
        let id = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
        let addr = std::str::from_utf8(bytes.get(12..12usize.checked_add(len)?)?).ok()?;
        servers.insert(id, addr.to_string());
        bytes = &bytes[12 + len..];
    }
    Some(servers)
}

/// A set of server ids as a system value: each a big-endian u64.
pub fn encode_servers(servers: &std::collections::BTreeSet<u64>) -> Vec<u8> {
    servers.iter().flat_map(|s| s.to_be_bytes()).collect()
}

/// The set [`encode_servers`] wrote (None: not such a value).
pub fn decode_servers(bytes: &[u8]) -> Option<std::collections::BTreeSet<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(bytes.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// Is `key` one of the system's own?
pub fn is_system(key: &[u8]) -> bool {
    key.first() == Some(&SYSTEM_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sets_round_trip_and_bad_lengths_are_refused() {
        let set: std::collections::BTreeSet<u64> = [3, 1, u64::MAX].into();
        assert_eq!(decode_servers(&encode_servers(&set)), Some(set));
        assert_eq!(decode_servers(&[]), Some(Default::default()));
        assert_eq!(decode_servers(&[0; 7]), None);
    }

    #[test]
    fn server_addresses_round_trip_and_truncated_values_are_refused() {
        let servers: std::collections::BTreeMap<u64, String> =
            [(4, "127.0.0.1:7003".to_string()), (9, String::new()), (u64::MAX, "h:1".to_string())].into();
        let bytes = encode_server_addrs(&servers);
        assert_eq!(decode_server_addrs(&bytes), Some(servers));
        assert_eq!(decode_server_addrs(&[]), Some(Default::default()));
        for cut in 1..bytes.len() {
            if decode_server_addrs(&bytes[..cut]).is_some() {
                // Only at a record boundary can a prefix be whole.
                assert!(cut == 26 || cut == 38, "a prefix of {cut} bytes decoded");
            }
        }
        let mut huge = 1u64.to_be_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_server_addrs(&huge), None);
    }

    #[test]
    fn system_keys_are_those_below_0x01() {
        assert!(is_system(ID_HIGH_WATER) && is_system(DRAINING_SERVERS) && is_system(JOINED_SERVERS));
        assert!(is_system(b"\x00"));
        assert!(!is_system(b"") && !is_system(b"\x01") && !is_system(b"a") && !is_system(&[0xF0, 0]));
    }
}
