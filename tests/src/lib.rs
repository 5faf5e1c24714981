//! Test harnesses for SpanDB, and the scenarios that run on them.
//!
//! - [`sim`]: a fault-injecting network (loss, delay, reordering,
//!   partitions, cut links) carrying real Raft traffic between in-process
//!   servers.
//! - [`cluster`]: in-process clusters of real spanservers (RocksDB, event
//!   loop, gRPC data API) with crash and restart on the same data
//!   directory, and a built-in check of Raft's one-leader-per-term rule.
//! - [`process`]: clusters of real `spandb` processes, for end-to-end tests
//!   that kill -9 servers.
//! - [`stepped`]: every server's event loop stepped by one thread over a
//!   seeded schedule with simulated time: a run is a function of its seed.
//! - [`stepped_list_append`]: read-write transactions under faults on a
//!   stepped cluster, checked for strict serializability by the jepsen
//!   list-append checker.
//!
//! The scenarios (in `tests/`) assert what clients see: every acknowledged
//! write is readable afterwards, none is lost, and reads never go back in
//! time.

pub mod cluster;
pub mod process;
pub mod sim;
pub mod stepped;
pub mod stepped_list_append;
pub mod wait;

pub use cluster::{ClusterOptions, TestCluster};

/// Logs to the test output: `SPANDB_LOG`'s filter (e.g. `info`), else
/// [`DEFAULT_TEST_LOG`].
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SPANDB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_TEST_LOG));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_test_writer().try_init();
}

/// What tests log without `SPANDB_LOG`: requests a server left unanswered
/// for seconds, with what held them (`spanserver/src/shard/slow.rs`). The
/// test harness shows a test's output only when it fails, which is when
/// that line explains a deadline that passed.
pub const DEFAULT_TEST_LOG: &str = "spandb::slow=warn";

/// The directory of the package whose test is running, as cargo says
/// when it runs it. Not `env!("CARGO_MANIFEST_DIR")`: a test binary
/// reused from a shared target directory (`.ci/run` keeps one under
/// `$HOME/.cache`) may have been built in another checkout, and the
/// path compiled into it would point there.
pub fn package_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .expect("cargo sets CARGO_MANIFEST_DIR for tests")
}
