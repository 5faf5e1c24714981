//! Noticing a client that hung up while its statement runs.
//!
//! A connection's thread runs its statement inline and reads its socket
//! only between statements, so on its own it learns that the client has
//! gone (a FIN, a reset) only once the statement ends, and a statement
//! can run for a long time holding its transaction's locks. PostgreSQL
//! has `client_connection_check_interval` for this (off by default);
//! CockroachDB cancels the statement of a closed connection. Here one
//! thread per gateway waits on an epoll set with every connection's
//! socket registered for hang-up only (`EPOLLRDHUP`, one-shot), so no
//! query wakes it: when a client hangs up, it marks that session hung up
//! ([`sql::Session::hang_up_handle`]) and cancels its running statement,
//! which stops at its next check; the connection then reads the end of
//! its stream and drops the session, which rolls its transaction back.
//!
//! ```text
//!   client ──FIN/RST──> socket ──EPOLLRDHUP──> watcher thread
//!                                                 │ hung_up = true, cancel = true
//!                                                 v
//!   connection thread: statement ... check_cancel -> 57014 -> EOF -> rollback
//! ```
//!
//! Invariants: an event names a registration by number, not by file
//! descriptor, and the kernel drops a closed socket from the set, so a
//! descriptor number reused by a later connection never cancels that one;
//! a registration's flags are forgotten when its [`Watch`] is dropped.
//! Half-closing clients (shutdown for writing, still reading) are taken
//! as gone, as PostgreSQL does.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// How long the watcher waits for events before it checks whether its
/// gateway is gone (then it ends).
const WAIT_MS: i32 = 1_000;
/// Events taken per wait.
const EVENTS_PER_WAIT: usize = 64;

/// One gateway's watcher ([`HangUps::start`]).
pub struct HangUps {
    epoll: OwnedFd,
    /// What to set per registration.
    flags: Mutex<HashMap<u64, Flags>>,
    next: AtomicU64,
}

/// A session's flags to set when its client hangs up, in this order.
struct Flags {
    hung_up: Arc<AtomicBool>,
    cancel: Arc<AtomicBool>,
}

/// A socket watched for hang-up; dropping it ends the watch.
pub struct Watch {
    hang_ups: Arc<HangUps>,
    id: u64,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.hang_ups.flags.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

impl HangUps {
    /// Starts a watcher thread, which ends once the returned handle and
    /// every [`Watch`] are dropped.
    #[allow(unsafe_code)]
    pub fn start() -> std::io::Result<Arc<HangUps>> {
        // SAFETY: a plain system call; its result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let hang_ups = Arc::new(HangUps { epoll, flags: Mutex::default(), next: AtomicU64::new(1) });
        let weak = Arc::downgrade(&hang_ups);
        std::thread::Builder::new().name("spandb-pg-hangup".into()).spawn(move || watch_loop(weak))?;
        Ok(hang_ups)
    }

    /// Watches `socket` until the returned [`Watch`] is dropped: if the
    /// client hangs up, sets `hung_up`, then `cancel`. `None` if the
    /// kernel refused the registration (the connection then goes
    /// unwatched, as before).
    #[allow(unsafe_code)]
    pub fn watch(self: &Arc<Self>, socket: RawFd, hung_up: Arc<AtomicBool>, cancel: Arc<AtomicBool>) -> Option<Watch> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.flags.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Flags { hung_up, cancel });
        let watch = Watch { hang_ups: self.clone(), id };
        let mut event =
            libc::epoll_event { events: (libc::EPOLLRDHUP | libc::EPOLLONESHOT | libc::EPOLLET) as u32, u64: id };
        // SAFETY: both descriptors are open (the caller's socket is, while
        // it calls), and `event` is a valid epoll_event the call copies.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, socket, &mut event) };
        (rc == 0).then_some(watch)
    }
}

#[allow(unsafe_code)]
fn watch_loop(hang_ups: Weak<HangUps>) {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    loop {
        let Some(hang_ups) = hang_ups.upgrade() else { return };
        // SAFETY: `events` is writable for EVENTS_PER_WAIT entries, and
        // the epoll descriptor stays open while `hang_ups` is held.
        let n = unsafe {
            libc::epoll_wait(hang_ups.epoll.as_raw_fd(), events.as_mut_ptr(), EVENTS_PER_WAIT as i32, WAIT_MS)
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            tracing::warn!("the PostgreSQL hang-up watcher stopped: {}", std::io::Error::last_os_error());
            return;
        }
        let flags = hang_ups.flags.lock().unwrap_or_else(|p| p.into_inner());
        for event in &events[..n as usize] {
            let id = event.u64;
            if let Some(session) = flags.get(&id) {
                tracing::debug!("a PostgreSQL client hung up; cancelling its statement, if any");
                session.hung_up.store(true, Ordering::SeqCst);
                session.cancel.store(true, Ordering::SeqCst);
            }
        }
    }
}
