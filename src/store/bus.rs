//! The event bus beneath the live channels: what one replica publishes (a
//! directive, a ringing call, a chat message) reaches the subscribers on every
//! replica sharing the store.
//!
//! Messages are opaque bytes on a topic, tagged with the publishing replica
//! ([`BusMessage::origin`]). The live hub and the notification window deliver
//! to their own subscribers directly and publish to the bus; each replica's
//! pump delivers the messages of *other* origins to its local subscribers. A
//! publisher therefore never sees its own message twice, and a lookup never
//! waits on the bus for its own replica's watchers.
//!
//! [`LocalBus`] is the in-process bus (sled: one process; tests with several
//! in-process replicas share one channel). A database backend fans out through
//! the database (PostgreSQL: `LISTEN`/`NOTIFY`).
//!
//! Delivery is at most once and only to subscribers connected at the time: a
//! subscriber that falls more than the channel's capacity behind loses the
//! oldest messages (it is told how many), and what is published while a
//! replica's bus connection is down does not reach that replica.

use super::Result;
use std::sync::Arc;
use tokio::sync::broadcast;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The publishing replica's id.
    pub origin: String,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Publish/subscribe across replicas.
pub trait EventBus: Send + Sync {
    /// This replica's id; the messages it publishes carry it.
    fn origin(&self) -> &str;
    /// Sends `payload` on `topic` to the subscribers of every replica (this one's too).
    fn publish(&self, topic: &str, payload: &[u8]) -> Result<()>;
    /// Every message from now on.
    fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>>;
    /// Which unbroken stretch of listening this replica is in: `None` while
    /// it is not listening (what is published now does not reach it), a new
    /// number each time it listens again after a drop. A cache invalidated by
    /// bus messages ([`super::cache`]) drops everything when this changes.
    /// The default (an in-process bus): always listening, never dropped.
    fn epoch(&self) -> Option<u64> {
        Some(0)
    }
}

/// Messages a bus subscriber may fall behind before it loses the oldest.
pub const BUS_CAPACITY: usize = 1024;

/// The in-process bus.
#[derive(Debug, Clone)]
pub struct LocalBus {
    origin: String,
    tx: broadcast::Sender<Arc<BusMessage>>,
}

impl LocalBus {
    pub fn new(origin: impl Into<String>) -> Self {
        Self { origin: origin.into(), tx: broadcast::channel(BUS_CAPACITY).0 }
    }

    /// Another replica on the same channel (tests of several replicas in one process).
    pub fn replica(&self, origin: impl Into<String>) -> Self {
        Self { origin: origin.into(), tx: self.tx.clone() }
    }
}

impl EventBus for LocalBus {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn publish(&self, topic: &str, payload: &[u8]) -> Result<()> {
        let message = BusMessage { origin: self.origin.clone(), topic: topic.into(), payload: payload.to_vec() };
        let _ = self.tx.send(Arc::new(message)); // no subscriber: nobody to tell
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<BusMessage>> {
        self.tx.subscribe()
    }
}

/// The bus conformance checks (run by each backend's tests): `a` and `b` are
/// two replicas' buses on one store. Sends a payload of `large` bytes too
/// (PostgreSQL's NOTIFY carries at most 8000 bytes: a backend passes larger
/// ones another way).
#[doc(hidden)]
pub async fn conformance(a: &dyn EventBus, b: &dyn EventBus, large: usize) {
    use std::time::Duration;
    assert_ne!(a.origin(), b.origin());
    let mut on_b = b.subscribe();
    let mut on_a = a.subscribe();
    a.publish("t1", b"hello").unwrap();
    let big: Vec<u8> = (0..large).map(|i| (i % 251) as u8).collect();
    a.publish("t2", &big).unwrap();
    for (topic, payload) in [("t1", b"hello".to_vec()), ("t2", big)] {
        for rx in [&mut on_b, &mut on_a] {
            let m = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("delivered").unwrap();
            assert_eq!((m.origin.as_str(), m.topic.as_str()), (a.origin(), topic));
            assert!(m.payload == payload, "payload of {} bytes arrived as {} bytes", payload.len(), m.payload.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_bus_passes_the_bus_conformance() {
        let a = LocalBus::new("a");
        conformance(&a, &a.replica("b"), 100_000).await;
    }
}
