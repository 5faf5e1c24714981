//! The keys SpanDB keeps for itself: every key that begins with byte
//! `0x00` (CockroachDB reserves its low keys the same way). They live in
//! ordinary shards, replicated and durable like any data; user writes to
//! them are refused at the servers' edge, so only the system writes them.
//!
//! ```text
//!   0x00 "sys/ids"   the id allocator's high-water mark (u64, big-endian):
//!                    every shard and replica id at or below it is taken
//!   0x01 ...         user keys (SQL's start at 0xF0)
//! ```

/// The first byte of every system key.
pub const SYSTEM_PREFIX: u8 = 0x00;

/// Where the id allocator keeps its high-water mark.
pub const ID_HIGH_WATER: &[u8] = b"\x00sys/ids";

/// Is `key` one of the system's own?
pub fn is_system(key: &[u8]) -> bool {
    key.first() == Some(&SYSTEM_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_keys_are_those_below_0x01() {
        assert!(is_system(ID_HIGH_WATER));
        assert!(is_system(b"\x00"));
        assert!(!is_system(b"") && !is_system(b"\x01") && !is_system(b"a") && !is_system(&[0xF0, 0]));
    }
}
