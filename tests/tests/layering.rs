//! The crates that hold SpanDB's decisions stay free of I/O: `truetime`,
//! `txn` and `sql` must not depend (even indirectly) on tokio, tonic,
//! prost or RocksDB, so they stay deterministic and compile fast
//! (DESIGN.md §2).

use std::process::Command;

/// Goal: the pure crates' dependency trees hold no I/O crate.
/// Method: `cargo tree -e normal` of each (offline, from Cargo.lock).
#[test]
fn pure_crates_have_no_io_dependencies() {
    let cargo = env!("CARGO");
    let workspace = tests::package_dir().join("..");
    for krate in ["truetime", "txn", "sql"] {
        let out = Command::new(cargo)
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", krate])
            .current_dir(&workspace)
            .output()
            .expect("running cargo tree");
        assert!(out.status.success(), "cargo tree -p {krate}: {}", String::from_utf8_lossy(&out.stderr));
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(tree.lines().count() > 1 || krate == "truetime", "{krate}: an empty tree proves nothing: {tree}");
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            assert!(
                !["tokio", "tonic", "prost", "rocksdb", "librocksdb-sys"].contains(&name),
                "{krate} depends on {name}"
            );
        }
    }
}
