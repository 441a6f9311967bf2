//! Waits a connector spent because the source throttled it (429/503 with `Retry-After`,
//! or a backoff the connector chose), carried out of a collection's sync to the engine
//! through [`crate::ChangeSink::throttled`] — per collection, never through a global.

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often and how long a sync waited for a throttling source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    /// Waits (each retry after a throttling answer is one).
    pub waits: u64,
    /// Their time together.
    pub waited: Duration,
}

impl Throttling {
    pub fn is_none(&self) -> bool {
        self.waits == 0
    }
}

impl std::ops::AddAssign for Throttling {
    fn add_assign(&mut self, other: Self) {
        self.waits += other.waits;
        self.waited += other.waited;
    }
}

/// Where a connector's HTTP layer counts its throttling waits for one collection's sync.
/// Clones count into the same tally.
#[derive(Debug, Clone, Default)]
pub struct ThrottleTally(Arc<Mutex<Throttling>>);

impl ThrottleTally {
    /// Counts one wait of `wait`.
    pub fn record(&self, wait: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.waits += 1;
        t.waited += wait;
    }

    /// What was counted so far.
    pub fn get(&self) -> Throttling {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
