//! Every bound of the crate, in one place.
//!
//! A checker that can run forever or fill memory is not a checker: each
//! search has a budget, and running out of it gives `unknown` (which the
//! harness treats as a failure), never a wrong `valid`. Output bounds keep a
//! broken database's report readable: a history with 5,000 lost adds lists
//! a few of them and counts the rest.

use std::time::Duration;

/// The longest history line `History::read_jsonl` accepts. A longer line is
/// reported as corrupt (a harness writing megabyte values is a bug, and an
/// unbounded line would let a truncated file eat all memory).
pub const HISTORY_LINE_BYTES_MAX: usize = 1 << 20;

/// Wall-clock budget of one linearizability check, over all keys.
pub const LINEARIZABILITY_DEADLINE_DEFAULT: Duration = Duration::from_secs(60);

/// Search states (cache entries: a set of linearized ops and a register
/// value) one key may explore before its check gives up as `unknown`.
pub const LINEARIZABILITY_STATES_PER_KEY_MAX: usize = 2_000_000;

/// Memory the state cache of one key may use, whatever the state count
/// (each state costs about `ops_on_key / 8 + 48` bytes).
pub const LINEARIZABILITY_CACHE_BYTES_MAX: usize = 1 << 30;

/// How much staler than its bound a bounded-staleness read may be before
/// the timestamped-register check calls it an anomaly. The harness reads
/// its wall clock just before it sends the read, the server reads its own
/// after it arrives; on one machine both are the same system clock, so
/// this covers only a clock step in between (NTP slews at most 0.5 ms a
/// second). Across machines, raise it to their clock error.
pub const STALENESS_SLACK_DEFAULT: Duration = Duration::from_millis(1);

/// How many anomalies of one kind a verdict lists; the rest are counted in
/// `Verdict::anomalies_unlisted`.
pub const ANOMALIES_PER_KIND_MAX: usize = 20;

/// How many op indexes one anomaly lists.
pub const ANOMALY_OPS_MAX: usize = 32;

/// How many elements (or accounts) one anomaly message quotes.
pub const ANOMALY_MESSAGE_ITEMS_MAX: usize = 16;

/// In the list-append checker, the G-single search (is there an rw edge
/// whose head reaches its tail without rw edges?) is exact when the graph
/// without rw edges has at most this many strongly connected components:
/// it then keeps a reachability bitset per component (`n * n / 8` bytes,
/// 8 MiB at the maximum).
pub const G_SINGLE_EXACT_COMPONENTS_MAX: usize = 8_192;

/// Beyond `G_SINGLE_EXACT_COMPONENTS_MAX`, how many rw edges of one
/// strongly connected component are tried (by BFS) as the single rw edge of
/// a G-single cycle before the search gives up on G-single there.
pub const G_SINGLE_RW_EDGES_TRIED_MAX: usize = 64;

/// Ops drawn on the HTML timeline. Offending ops are always drawn; the rest
/// are drawn in history order until the cap, and the page says so.
pub const HTML_OPS_DRAWN_MAX: usize = 5_000;

/// Offending ops listed (with their values) in the HTML report's table.
pub const HTML_OPS_LISTED_MAX: usize = 200;

/// Characters of an op's value shown in the HTML report before eliding.
pub const HTML_VALUE_CHARS_MAX: usize = 200;
