//! The event loop's driver in a running server: the thread that gives the
//! loop ([`crate::event_loop`]) its inputs and the time, and carries out
//! what each step returns.
//!
//! ```text
//!   wait on the inbox until a message or the step's wake-up time
//!   persist = loop.step(Instant::now(), messages)
//!   transport <- persist.send_first;  RocksDB <- persist.batch (synced)
//!   effects = loop.persisted()
//!   transport <- effects.send;  peers.rs <- effects.peer_calls;
//!   reply channels <- effects.replies;  wake at effects.next
//! ```
//!
//! # Yielding
//!
//! Woken by a message, the driver yields the CPU once before it drains
//! the inbox. On an idle machine the yield returns at once. On a busy one
//! the threads that were ready to run go first: connection threads with
//! their next request, transport tasks with the next Raft batch. Their
//! messages then join this iteration instead of each waking the loop for
//! one of its own, so the loop takes more per iteration, syncs and sends
//! less often, and context-switches less. The cost is at most one time
//! slice of delay, and only when other threads want the CPU anyway.
//!
//! Only this module (with the transport and `peers.rs` it hands work to)
//! meets threads, sockets and the wall clock; the stepped simulation
//! (`tests::stepped`) is another driver of the same loop.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

use crate::event_loop::{self, EventLoop, Next, Outgoing};
use crate::inbox::LoopMsg;
use crate::limits;
use crate::peers::Peers;
use crate::storage::Engine;
use crate::transport::Transport;

/// Runs `event_loop` on this thread until `Shutdown` (or every inbox
/// handle is dropped); then answers what is left in the inbox.
pub fn run(
    mut event_loop: EventLoop,
    inbox: Receiver<LoopMsg>,
    engine: Engine,
    transport: Arc<dyn Transport>,
    peers: Arc<Peers>,
) {
    let mut wake = Instant::now();
    loop {
        let timeout = wake.saturating_duration_since(Instant::now());
        let mut messages = Vec::new();
        match inbox.recv_timeout(timeout) {
            Ok(msg) => {
                messages.push(msg);
                // Woken by one message: let the threads that are ready
                // to run first (module docs, "Yielding").
                std::thread::yield_now();
            }
            Err(RecvTimeoutError::Timeout) => {}
            // No handle is left: stop as if told to (answering all).
            Err(RecvTimeoutError::Disconnected) => messages.push(LoopMsg::Shutdown),
        }
        while !messages.is_empty() && messages.len() < limits::INBOX_DRAIN_PER_ITERATION_MAX {
            match inbox.try_recv() {
                Ok(msg) => messages.push(msg),
                Err(_) => break,
            }
        }
        let persist = event_loop.step(Instant::now(), messages);
        send(&*transport, persist.send_first);
        if !persist.batch.is_empty() {
            engine.write_or_stop(persist.batch, persist.sync);
        }
        let effects = event_loop.persisted();
        for c in effects.replies {
            c.send();
        }
        send(&*transport, effects.send);
        for call in effects.peer_calls {
            peers.call(call);
        }
        match effects.next {
            Next::Stopped => break,
            Next::WakeAt(at) => wake = at,
        }
    }
    for c in event_loop::refuse(std::iter::from_fn(|| inbox.try_recv().ok())) {
        c.send();
    }
}

/// Hands a step's outgoing Raft messages to the transport.
fn send(transport: &dyn Transport, outgoing: Outgoing) {
    for (server, messages) in outgoing.messages {
        transport.send(server, messages);
    }
    for s in outgoing.snapshots {
        transport.send_snapshot(s.to, s.shard, s.message, s.file);
    }
}
