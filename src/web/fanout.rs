//! The window's live events on every replica: what one replica's handlers
//! send (a directive clicked, a chat message, …) reaches the open event
//! streams of all replicas sharing the store.
//!
//! [`Fanout::send`] delivers to this replica's streams and publishes the event
//! (JSON) on the [`EventBus`] under [`Fanout::TOPIC`]; a pump delivers the
//! other replicas' events here. Any [`WebEvent`] sent through it crosses, so a
//! new kind of event needs nothing more than to be `Deserialize`.

use super::WebEvent;
use crate::store::{BusMessage, EventBus};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// The window's event channel.
#[derive(Clone)]
pub struct Fanout {
    local: broadcast::Sender<Arc<WebEvent>>,
    bus: Option<Arc<dyn EventBus>>,
}

impl Fanout {
    /// The bus topic of the window's events.
    pub const TOPIC: &'static str = "web";

    pub fn new(capacity: usize) -> Self {
        Self { local: broadcast::channel(capacity).0, bus: None }
    }

    /// Sends to every open event stream (each filters by what its viewer may
    /// see); returns how many of this replica's got it.
    pub fn send(&self, event: Arc<WebEvent>) -> Result<usize, broadcast::error::SendError<Arc<WebEvent>>> {
        if let Some(bus) = &self.bus {
            match serde_json::to_vec(&*event) {
                Ok(payload) => {
                    if let Err(e) = bus.publish(Self::TOPIC, &payload) {
                        tracing::warn!(error = %e, "could not publish a window event to the other replicas");
                    }
                }
                Err(e) => tracing::error!(error = %e, "a window event did not serialise"),
            }
        }
        self.local.send(event)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WebEvent>> {
        self.local.subscribe()
    }

    /// Connects to the other replicas on `bus` until `stopping` turns true.
    pub fn attach(&mut self, bus: Arc<dyn EventBus>, stopping: watch::Receiver<bool>) {
        tokio::spawn(pump(self.local.clone(), bus.origin().to_string(), bus.subscribe(), stopping));
        self.bus = Some(bus);
    }
}

async fn pump(
    local: broadcast::Sender<Arc<WebEvent>>,
    origin: String,
    mut incoming: broadcast::Receiver<Arc<BusMessage>>,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            m = incoming.recv() => m,
            _ = stopping.wait_for(|s| *s) => return,
        };
        let message = match message {
            Ok(m) => m,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "the window fell behind the bus and lost events");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if message.origin == origin || message.topic != Fanout::TOPIC {
            continue;
        }
        match serde_json::from_slice::<WebEvent>(&message.payload) {
            Ok(event) => {
                let _ = local.send(Arc::new(event));
            }
            Err(e) => {
                tracing::warn!(origin = %message.origin, error = %e, "an undecodable window event from another replica was dropped")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalBus;
    use std::time::Duration;

    fn chat(text: &str) -> Arc<WebEvent> {
        Arc::new(WebEvent::Chat {
            call_id: crate::calls::CallId("c1".into()),
            user: crate::user::UserId::parse("acme.alice").unwrap(),
            text: text.into(),
            by: "acme.bob".into(),
            at: chrono::Utc::now(),
        })
    }

    /// What one replica's window sends reaches the other replica's streams once, and its own once.
    #[tokio::test]
    async fn an_event_sent_on_one_replica_reaches_the_streams_of_the_other_once() {
        let (stop, stopping) = watch::channel(false);
        let bus = LocalBus::new("a");
        let (mut a, mut b) = (Fanout::new(16), Fanout::new(16));
        a.attach(Arc::new(bus.clone()), stopping.clone());
        b.attach(Arc::new(bus.replica("b")), stopping);
        let (mut on_a, mut on_b) = (a.subscribe(), b.subscribe());
        assert_eq!(a.send(chat("hello")).unwrap(), 1, "this replica's stream");
        let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv()).await.unwrap().unwrap();
        assert!(matches!(&*got, WebEvent::Chat { text, .. } if text == "hello"), "{got:?}");
        assert!(matches!(&*on_a.recv().await.unwrap(), WebEvent::Chat { .. }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(on_a.try_recv().is_err(), "the sender's stream got its own event twice");
        assert!(on_b.try_recv().is_err());
        // Garbage from the bus is dropped; the pump goes on.
        bus.publish(Fanout::TOPIC, b"\\xff not json").unwrap();
        a.send(chat("after")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv()).await.unwrap().unwrap();
        assert!(matches!(&*got, WebEvent::Chat { text, .. } if text == "after"), "{got:?}");
        stop.send_replace(true);
    }
}
