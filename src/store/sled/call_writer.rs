//! Call records are written off the lookup path.
//!
//! `put_call` hands the record to one writer thread and keeps it in a pending
//! map until it is in sled; reads consult the map first, so every caller reads
//! its own writes. Measured: the synchronous sled write was about two thirds of
//! a resolve (see BENCHMARKS.md). Durability is unchanged: sled makes writes
//! durable at its next flush either way, and [`CallWriter::barrier`] (called by
//! `SledStore::flush`) waits for the queue.

use crate::model::{CallId, CallRecord};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// At most this many queued operations go into one sled batch.
const MAX_BATCH: usize = 512;
/// After the first record of a batch arrives, the writer waits this long for
/// more, so at steady call rates it wakes once per batch instead of once per
/// call (each wake-up and sled write competes with the servers for the CPU).
/// Durability is not delayed in effect: sled makes writes durable every 500 ms.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(5);

enum Op {
    Put(Box<CallRecord>),
    Barrier(mpsc::Sender<()>),
}

pub(super) struct CallWriter {
    /// `None` once dropping has begun.
    tx: Mutex<Option<mpsc::Sender<Op>>>,
    pending: Arc<Mutex<HashMap<CallId, CallRecord>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CallWriter {
    /// Writes what is queued and waits for the thread: it holds the database
    /// open, and a store reopened right after must find it closed.
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl CallWriter {
    /// Starts the writer thread; `write` stores records in order, as one batch.
    pub(super) fn start(write: impl Fn(&[CallRecord]) + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel::<Op>();
        let pending: Arc<Mutex<HashMap<CallId, CallRecord>>> = Arc::default();
        let shared = pending.clone();
        let thread = std::thread::Builder::new()
            .name("call-writer".into())
            .spawn(move || {
                // Everything queued while the last batch was written goes into the next one.
                while let Ok(first) = rx.recv() {
                    if !matches!(first, Op::Barrier(_)) {
                        std::thread::sleep(COALESCE);
                    }
                    let mut calls = Vec::new();
                    let mut barriers = Vec::new();
                    for op in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH)) {
                        match op {
                            Op::Put(call) => calls.push(*call),
                            Op::Barrier(done) => barriers.push(done),
                        }
                    }
                    if !calls.is_empty() {
                        write(&calls);
                        let mut p = shared.lock().expect("pending calls lock");
                        for call in &calls {
                            // A newer version queued meanwhile stays pending.
                            if p.get(&call.id) == Some(call) {
                                p.remove(&call.id);
                            }
                        }
                    }
                    for done in barriers {
                        let _ = done.send(());
                    }
                }
            })
            .expect("spawning the call writer thread");
        Self { tx: Mutex::new(Some(tx)), pending, thread: Some(thread) }
    }

    pub(super) fn put(&self, call: CallRecord) {
        self.pending.lock().expect("pending calls lock").insert(call.id.clone(), call.clone());
        // The thread lives as long as this sender; a failed send cannot happen.
        if let Some(tx) = self.tx.lock().expect("call writer lock").as_ref() {
            let _ = tx.send(Op::Put(Box::new(call)));
        }
    }

    pub(super) fn get(&self, id: &CallId) -> Option<CallRecord> {
        self.pending.lock().expect("pending calls lock").get(id).cloned()
    }

    /// Pending records that match `keep`.
    pub(super) fn pending(&self, keep: impl Fn(&CallRecord) -> bool) -> Vec<CallRecord> {
        self.pending.lock().expect("pending calls lock").values().filter(|c| keep(c)).cloned().collect()
    }

    /// Returns once everything queued before it is written.
    pub(super) fn barrier(&self) {
        let (done, wait) = mpsc::channel();
        let sent =
            self.tx.lock().expect("call writer lock").as_ref().is_some_and(|tx| tx.send(Op::Barrier(done)).is_ok());
        if sent {
            let _ = wait.recv();
        }
    }
}
