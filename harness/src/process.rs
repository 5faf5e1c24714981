//! Signals: to processes by pid (the one place that calls `libc::kill`),
//! and the ones that ask this process to stop.

/// Sends `signal` to `pid`; false if there is no such process (or no
/// permission).
pub fn signal(pid: i32, signal: i32) -> bool {
    if pid <= 0 {
        return false; // 0 and negatives address process groups: never ours
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal) };
    rc == 0
}

/// Does a process with this pid exist?
pub fn alive(pid: i32) -> bool {
    signal(pid, 0)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn wait_for_stop_signal() -> anyhow::Result<()> {
    use anyhow::Context;
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
