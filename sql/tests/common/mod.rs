//! A memory engine that lets a test watch and interleave: it logs the mode
//! of every transaction begun, and runs a hook once when a schema change
//! waits out leases, or when the n-th transaction begins (so a test can
//! act between two batches of a backfill).

#![allow(dead_code)] // each test file uses some of it

use std::sync::Mutex;

use sql::kv::{Engine, KvError, Mode, ShardSpan, Timestamp, Transaction};
use sql::memory::MemoryEngine;

pub type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
pub struct Watched {
    pub inner: MemoryEngine,
    modes: Mutex<Vec<Mode>>,
    on_wait: Mutex<Option<Hook>>,
    /// (transactions begun so far, the hook's turn, the hook)
    on_begin: Mutex<(usize, Option<(usize, Hook)>)>,
}

impl Watched {
    pub fn modes(&self) -> Vec<Mode> {
        self.modes.lock().unwrap().clone()
    }

    pub fn clear_modes(&self) {
        self.modes.lock().unwrap().clear();
    }

    /// Runs `hook` the next time a schema change waits.
    pub fn on_wait(&self, hook: Hook) {
        *self.on_wait.lock().unwrap() = Some(hook);
    }

    /// Runs `hook` when the `n`-th transaction from now begins (before it
    /// does).
    pub fn on_begin(&self, n: usize, hook: Hook) {
        let mut on_begin = self.on_begin.lock().unwrap();
        let turn = on_begin.0 + n;
        on_begin.1 = Some((turn, hook));
    }
}

impl Engine for Watched {
    fn begin(&self, mode: Mode) -> Result<Box<dyn Transaction>, KvError> {
        let hook = {
            let mut on_begin = self.on_begin.lock().unwrap();
            on_begin.0 += 1;
            let count = on_begin.0;
            match on_begin.1.take() {
                Some((turn, hook)) if turn == count => Some(hook),
                other => {
                    on_begin.1 = other;
                    None
                }
            }
        };
        if let Some(hook) = hook {
            hook();
        }
        self.modes.lock().unwrap().push(mode);
        self.inner.begin(mode)
    }

    fn shards(&self, start: &[u8], end: &[u8]) -> Vec<ShardSpan> {
        self.inner.shards(start, end)
    }

    fn now(&self) -> Timestamp {
        self.inner.now()
    }

    fn wait(&self, nanos: u64) {
        let hook = self.on_wait.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.wait(nanos);
    }
}
